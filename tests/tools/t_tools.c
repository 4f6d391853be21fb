/* t_tools: runs vdi-client and vdi-server as two processes, the way an operator would,
 * and checks what they promise: a backup followed by a restore gives back the file byte
 * for byte with one or several devices and whichever side starts first, and each failure
 * (bad option, no peer, a peer killed mid-stream, an unreadable file) ends with its own
 * documented exit code. Start order and mid-stream kills are sequenced through the tools'
 * --ready-fd progress lines, never by sleeping. A third program, hostile_server, plays a
 * server that sends commands after VDC_Complete, the client paths vdi-server never takes.
 *
 * usage: t_tools VDI_CLIENT VDI_SERVER CASE HOSTILE_SERVER (tests/tools/hostile_server.c) */
#include "t_test.h"

#include <dirent.h>
#include <grp.h>
#include <pwd.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* The tools' exit codes (ref/tools/README.md). */
enum { TX_OK = 0, TX_FAILURE = 1, TX_USAGE = 2, TX_TIMEOUT = 3, TX_ABORT = 4, TX_IO = 5 };

#define READY_FD 3
#define MAXARGS 32

static const char *client_bin;
static const char *server_bin;
static char dir[256];
/* When set, the tools spawned run as this user (a test that root's privileges would void). */
static struct {
    int on;
    uid_t uid;
    gid_t gid;
} run_as;
static char set_name[96];

typedef struct proc {
    pid_t pid;
    int ready; /* read end of the child's --ready-fd pipe, or -1 */
} proc;

/* Starts bin with args (NULL-terminated); with want_ready, the child gets --ready-fd 3 on
 * a pipe whose read end comes back in proc.ready. The child's stdout goes to out_file and
 * its stderr to err_file when they are given (else /dev/null and ours). */
static proc spawn_to(const char *bin, const char *const *args, int want_ready, const char *out_file,
                     const char *err_file) {
    const char *argv[MAXARGS + 4];
    int n = 0;
    argv[n++] = bin;
    for (int i = 0; args[i]; i++) {
        T_REQUIRE(n < MAXARGS);
        argv[n++] = args[i];
    }
    if (want_ready) {
        argv[n++] = "--ready-fd";
        argv[n++] = "3";
    }
    argv[n] = NULL;
    int p[2] = {-1, -1};
    if (want_ready)
        T_REQUIRE(pipe2(p, O_CLOEXEC) == 0);
    pid_t pid = fork();
    T_REQUIRE(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
        }
        int out = out_file ? open(out_file, O_WRONLY | O_CREAT | O_TRUNC, 0600) : -1;
        int err = err_file ? open(err_file, O_WRONLY | O_CREAT | O_TRUNC, 0600) : -1;
        if ((out_file && (out < 0 || dup2(out, 1) < 0)) ||
            (err_file && (err < 0 || dup2(err, 2) < 0)))
            _exit(127);
        if (want_ready)
            dup2(p[1], READY_FD); /* dup2 clears close-on-exec on the copy */
        if (run_as.on &&
            (setgroups(0, NULL) != 0 || setgid(run_as.gid) != 0 || setuid(run_as.uid) != 0))
            _exit(126);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    proc pr = {pid, -1};
    if (want_ready) {
        close(p[1]);
        pr.ready = p[0];
    }
    return pr;
}

static proc spawn(const char *bin, const char *const *args, int want_ready) {
    return spawn_to(bin, args, want_ready, NULL, NULL);
}

/* Blocks until the child writes the line `want` on its --ready-fd; fails if it exits
 * without doing so. */
static void expect_line(proc *p, const char *want) {
    char line[64];
    size_t n = 0;
    for (;;) {
        char ch;
        ssize_t r = read(p->ready, &ch, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            T_FAILED_AT("child %ld closed its ready pipe before '%s'", (long)p->pid, want);
            return;
        }
        if (ch == '\n')
            break;
        if (n + 1 < sizeof line)
            line[n++] = ch;
    }
    line[n] = '\0';
    if (strcmp(line, want) != 0)
        T_FAILED_AT("child %ld said '%s', want '%s'", (long)p->pid, line, want);
}

/* The exit code of the child, or 128 + the signal that ended it. */
static int reap(proc *p) {
    int st;
    while (waitpid(p->pid, &st, 0) < 0)
        T_REQUIRE(errno == EINTR);
    if (p->ready >= 0)
        close(p->ready);
    p->ready = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int run_alone(const char *bin, const char *const *args) {
    proc p = spawn(bin, args, 0);
    return reap(&p);
}

static const char *path(const char *leaf) {
    static char bufs[4][512];
    static unsigned k;
    char *b = bufs[k++ % 4];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, leaf);
    return b;
}

/* Deterministic contents: a fixed multiplicative hash of the 4-byte word index, so that
 * misplaced chunks, swapped devices and short writes all show. */
static void make_data(const char *file, size_t size) {
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    T_REQUIRE(fd >= 0);
    uint8_t buf[4096];
    for (size_t off = 0; off < size; off += sizeof buf) {
        size_t len = size - off < sizeof buf ? size - off : sizeof buf;
        for (size_t i = 0; i < len; i++) {
            uint64_t at = off + i;
            uint32_t w = (uint32_t)(at / 4) * 2654435761u ^ 0x5bd1e995u;
            buf[i] = (uint8_t)(w >> (8 * (at % 4)));
        }
        T_REQUIRE(write(fd, buf, len) == (ssize_t)len);
    }
    T_REQUIRE(close(fd) == 0);
}

static void expect_same(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    t_checks++;
    if (!fa || !fb) {
        T_FAILED_AT("cannot open %s or %s", a, b);
    } else {
        long long at = 0;
        int ca, cb;
        do {
            ca = getc(fa);
            cb = getc(fb);
            if (ca != cb) {
                T_FAILED_AT("%s and %s differ at byte %lld", a, b, at);
                break;
            }
            at++;
        } while (ca != EOF);
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
}

/* Appends the common arguments: mode SET FILE then the option string opts. */
static void build_args(const char **args, const char *mode, const char *file,
                       const char *const *opts) {
    int n = 0;
    args[n++] = mode;
    args[n++] = set_name;
    args[n++] = file;
    for (int i = 0; opts && opts[i]; i++)
        args[n++] = opts[i];
    args[n] = NULL;
}

/* Appends the option pair a b to a NULL-terminated argument list. */
static void append_args(const char **args, const char *a, const char *b) {
    int n = 0;
    while (args[n])
        n++;
    T_REQUIRE(n + 2 < MAXARGS);
    args[n++] = a;
    args[n++] = b;
    args[n] = NULL;
}

/* One transfer with both tools; client_first picks who starts, sequenced through the
 * ready lines so that the second one really starts after the first is waiting. */
static void transfer(const char *mode, const char *client_file, const char *server_file,
                     const char *const *opts, int client_first) {
    const char *cargs[MAXARGS], *sargs[MAXARGS];
    build_args(cargs, mode, client_file, opts);
    build_args(sargs, mode, server_file, opts);
    proc c, s;
    if (client_first) {
        c = spawn(client_bin, cargs, 1);
        expect_line(&c, "created");
        s = spawn(server_bin, sargs, 0);
    } else {
        s = spawn(server_bin, sargs, 1);
        expect_line(&s, "waiting");
        c = spawn(client_bin, cargs, 0);
    }
    int sx = reap(&s), cx = reap(&c);
    T_EXPECT_EQ(sx, TX_OK);
    T_EXPECT_EQ(cx, TX_OK);
}

static void round_trip(size_t size, const char *const *opts, int client_first) {
    make_data(path("db"), size);
    transfer("backup", path("media"), path("db"), opts, client_first);
    expect_same(path("db"), path("media"));
    transfer("restore", path("media"), path("restored"), opts, client_first);
    expect_same(path("db"), path("restored"));
}

static const char *const one_dev[] = {"--timeout", "30000", NULL};
static const char *const four_dev[] = {
    "--devices", "4", "--max-transfer", "64K", "--buffers", "3", "--timeout", "30000", NULL};
static const char *const four_small[] = {"--devices",      "4",         "--block-size", "512",
                                         "--max-transfer", "64K",       "--buffers",    "1",
                                         "--no-complete",  "--timeout", "30000",        NULL};

/* A restore of an empty file with 64 devices: the server learns the end from device 0's
 * first read and closes the 63 others at once; the client must still succeed (it opens
 * every device before serving any, VDI-SPEC 3). */
static void case_restore_empty_64dev(void) {
    static const char *const opts[] = {"--devices", "64",    "--buffers", "1",
                                       "--timeout", "30000", NULL};
    make_data(path("media"), 0);
    for (int round = 0; round < 5; round++) {
        transfer("restore", path("media"), path("restored"), opts, round % 2);
        expect_same(path("media"), path("restored"));
    }
}

static void case_bad_options(void) {
    static const char *const bad[][6] = {
        {NULL},
        {"backup", "s", NULL},
        {"copy", "s", "f", NULL},
        {"backup", "s", "f", "--frobnicate", NULL},
        {"backup", "s", "f", "--devices", "0", NULL},
        {"backup", "s", "f", "--devices", "65", NULL},
        {"backup", "s", "f", "--block-size", "1000", NULL},
        {"backup", "s", "f", "--max-transfer", "1000", NULL},
        {"backup", "s", "f", "--buffers", "0", NULL},
        {"backup", "s", "f", "--timeout", "soon", NULL},
        {"backup", "s", "f", "--timeout", NULL},
        {"backup", "a/b", "f", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        T_EXPECT_EQ(run_alone(client_bin, bad[i]), TX_USAGE);
        T_EXPECT_EQ(run_alone(server_bin, bad[i]), TX_USAGE);
    }
    static const char *const help[] = {"--help", NULL};
    T_EXPECT_EQ(run_alone(client_bin, help), TX_OK);
    T_EXPECT_EQ(run_alone(server_bin, help), TX_OK);
}

static void case_no_peer(void) {
    static const char *const quick[] = {"--timeout", "200", NULL};
    const char *args[MAXARGS];
    build_args(args, "backup", path("media"), quick);
    T_EXPECT_EQ(run_alone(client_bin, args), TX_TIMEOUT);
    make_data(path("db"), 1000);
    build_args(args, "backup", path("db"), quick);
    proc s = spawn(server_bin, args, 1);
    expect_line(&s, "waiting");
    T_EXPECT_EQ(reap(&s), TX_TIMEOUT);
}

static void case_io_error(void) {
    const char *args[MAXARGS];
    build_args(args, "backup", path("missing"), one_dev);
    T_EXPECT_EQ(run_alone(server_bin, args), TX_IO);
    build_args(args, "restore", path("missing"), one_dev);
    T_EXPECT_EQ(run_alone(client_bin, args), TX_IO);
    build_args(args, "backup", path("no-such-dir/media"), one_dev);
    T_EXPECT_EQ(run_alone(client_bin, args), TX_IO);
}

/* The client's backup meets a server doing a restore: the client refuses the
 * configuration, and its close aborts the set for the server. */
static void case_mode_mismatch(void) {
    const char *cargs[MAXARGS], *sargs[MAXARGS];
    build_args(cargs, "backup", path("media"), one_dev);
    build_args(sargs, "restore", path("restored"), one_dev);
    proc c = spawn(client_bin, cargs, 1);
    expect_line(&c, "created");
    proc s = spawn(server_bin, sargs, 0);
    T_EXPECT_EQ(reap(&c), TX_FAILURE);
    T_EXPECT_EQ(reap(&s), TX_ABORT);
}

/* One side stops answering mid-stream and is killed with SIGKILL; the other must see the
 * abort (peer death, VDI-SPEC 5.3) rather than wait for its --timeout. */
static void case_killed(int kill_client) {
    static const char *const stall[] = {"--stall-after", "2", NULL};
    const char *opts[] = {"--max-transfer", "64K", "--timeout", "60000", NULL};
    const char *cargs[MAXARGS], *sargs[MAXARGS];
    make_data(path("db"), 1u << 20);
    build_args(cargs, "backup", path("media"), opts);
    build_args(sargs, "backup", path("db"), opts);
    append_args(kill_client ? cargs : sargs, stall[0], stall[1]);

    proc c = spawn(client_bin, cargs, 1);
    expect_line(&c, "created");
    proc s = spawn(server_bin, sargs, !kill_client);
    proc *v = kill_client ? &c : &s, *other = kill_client ? &s : &c;
    expect_line(v, "stalled");
    T_REQUIRE(kill(v->pid, SIGKILL) == 0);
    T_EXPECT_EQ(reap(v), 128 + SIGKILL);
    T_EXPECT_EQ(reap(other), TX_ABORT);
}

/* Nothing stays behind (VDI-SPEC 5.3), whoever died: every shared object of a set has
 * the set name in its name (8.3), and POSIX shared memory lives in /dev/shm on Linux. */
static void scan_leftovers(int remove) {
    DIR *d = opendir("/dev/shm");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strstr(e->d_name, set_name))
            continue;
        if (!remove)
            T_FAILED_AT("shared-memory object %s left behind", e->d_name);
        else if (unlinkat(dirfd(d), e->d_name, 0) != 0)
            T_FAILED_AT("cannot remove /dev/shm/%s", e->d_name);
    }
    closedir(d);
}

static void expect_no_leftovers(void) {
    scan_leftovers(0);
}

static void remove_leftovers(void) {
    scan_leftovers(1);
}

/* A server that exits 0 called the backup done: the media must be whole and named then,
 * although the client, hung after its last command (so before its Close), is killed. The
 * client answers exactly every command: 16 writes of 64K, then a VDC_Flush and a
 * VDC_Complete per device. */
static void case_killed_after_complete(const char *devices) {
    const size_t size = 1u << 20, chunk = 64u << 10;
    char total[24];
    snprintf(total, sizeof total, "%zu", size / chunk + 2 * (size_t)atoi(devices));
    const char *opts[] = {"--max-transfer", "64K",   "--devices", devices,
                          "--timeout",      "60000", NULL};
    const char *cargs[MAXARGS], *sargs[MAXARGS];
    make_data(path("db"), size);
    build_args(cargs, "backup", path("media"), opts);
    build_args(sargs, "backup", path("db"), opts);
    append_args(cargs, "--stall-after", total);

    proc c = spawn(client_bin, cargs, 1);
    expect_line(&c, "created");
    proc s = spawn(server_bin, sargs, 0);
    T_EXPECT_EQ(reap(&s), TX_OK);
    expect_line(&c, "stalled");
    expect_same(path("db"), path("media"));
    T_REQUIRE(kill(c.pid, SIGKILL) == 0);
    T_EXPECT_EQ(reap(&c), 128 + SIGKILL);
    expect_same(path("db"), path("media"));
    /* the set's object was the killed client's to unlink at its Close (VDI-SPEC 8.4) */
    remove_leftovers();
}

/* A device that fails every write (ENOSPC) in the middle of the stream: the side that
 * fails reports I/O (5); its peer sees either that code or the abort that follows (the
 * server decides the outcome of each command, VDI-SPEC 5.3). */
static void case_io_error_midstream(void) {
    if (access("/dev/full", W_OK) != 0)
        T_SKIP("no /dev/full");
    const char *opts[] = {"--max-transfer", "64K", "--timeout", "30000", NULL};
    const char *cargs[MAXARGS], *sargs[MAXARGS];
    make_data(path("db"), 300000);

    build_args(cargs, "backup", "/dev/full", opts);
    build_args(sargs, "backup", path("db"), opts);
    proc c = spawn(client_bin, cargs, 1);
    expect_line(&c, "created");
    proc s = spawn(server_bin, sargs, 0);
    int sx = reap(&s);
    T_EXPECT(sx == TX_IO || sx == TX_ABORT);
    T_EXPECT_EQ(reap(&c), TX_IO);

    transfer("backup", path("media"), path("db"), opts, 1);
    build_args(cargs, "restore", path("media"), opts);
    build_args(sargs, "restore", "/dev/full", opts);
    c = spawn(client_bin, cargs, 1);
    expect_line(&c, "created");
    s = spawn(server_bin, sargs, 0);
    T_EXPECT_EQ(reap(&s), TX_IO);
    T_EXPECT_EQ(reap(&c), TX_ABORT);
}

/* Instances are separate namespaces: the same set name under two instances never meets. */
static void case_instance(void) {
    static const char *const inst[] = {"--instance", "tools1", "--devices", "2",
                                       "--timeout",  "30000",  NULL};
    round_trip(200000, inst, 1);
    static const char *const in_a[] = {"--instance", "a", "--timeout", "300", NULL};
    static const char *const in_b[] = {"--instance", "b", "--timeout", "300", NULL};
    const char *cargs[MAXARGS], *sargs[MAXARGS];
    build_args(cargs, "backup", path("media"), in_a);
    build_args(sargs, "backup", path("db"), in_b);
    proc c = spawn(client_bin, cargs, 1);
    expect_line(&c, "created");
    proc s = spawn(server_bin, sargs, 1);
    expect_line(&s, "waiting");
    T_EXPECT_EQ(reap(&s), TX_TIMEOUT);
    T_EXPECT_EQ(reap(&c), TX_TIMEOUT);
}

static void write_text(const char *file, const char *text) {
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    T_REQUIRE(fd >= 0);
    T_REQUIRE(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    T_REQUIRE(close(fd) == 0);
}

/* The first cap - 1 bytes of file as a string; 0, or -1 (and an empty string) when it
 * cannot be read. */
static int read_text(const char *file, char *buf, size_t cap) {
    buf[0] = '\0';
    int fd = open(file, O_RDONLY);
    if (fd < 0)
        return -1;
    size_t got = 0;
    ssize_t n;
    while (got + 1 < cap && (n = read(fd, buf + got, cap - 1 - got)) > 0)
        got += (size_t)n;
    close(fd);
    buf[got] = '\0';
    return 0;
}

static void expect_text(const char *file, const char *text) {
    char buf[4096];
    t_checks++;
    if (read_text(file, buf, sizeof buf) != 0)
        T_FAILED_AT("%s: %s", file, strerror(errno));
    else if (strcmp(buf, text) != 0)
        T_FAILED_AT("%s holds '%s', want '%s'", file, buf, text);
}

/* The scratch folder holds exactly the given leaves (NULL-terminated): no temporary file
 * of a failed or killed run is left beside them. */
static void expect_only(const char *const *leaves) {
    DIR *d = opendir(dir);
    T_REQUIRE(d != NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        size_t i = 0;
        while (leaves[i] && strcmp(leaves[i], e->d_name) != 0)
            i++;
        t_checks++;
        if (!leaves[i])
            T_FAILED_AT("%s left in the scratch folder", e->d_name);
    }
    closedir(d);
}

/* A run that fails (no peer, the name in use, a peer killed mid-stream) leaves the file it
 * would have written as it was: the output is written under no name and named only when
 * the run succeeded, and nothing temporary stays behind. */
static void case_keep_old_file(void) {
    static const char *const quick[] = {"--timeout", "200", NULL};
    const char *opts[] = {"--max-transfer", "64K", "--timeout", "30000", NULL};
    const char *cargs[MAXARGS], *sargs[MAXARGS], *xargs[MAXARGS];
    static const char *const all[] = {"db", "media", "restored", "other", NULL};
    make_data(path("db"), 1u << 20);
    write_text(path("media"), "old media");
    write_text(path("restored"), "old restored");
    write_text(path("other"), "old other");

    /* No peer. */
    build_args(cargs, "backup", path("media"), quick);
    T_EXPECT_EQ(run_alone(client_bin, cargs), TX_TIMEOUT);
    expect_text(path("media"), "old media");
    build_args(sargs, "restore", path("restored"), quick);
    T_EXPECT_EQ(run_alone(server_bin, sargs), TX_TIMEOUT);
    expect_text(path("restored"), "old restored");
    expect_only(all);

    /* The name in use by a live client: the second client fails, the first succeeds. */
    build_args(cargs, "backup", path("media"), opts);
    build_args(xargs, "backup", path("other"), opts);
    proc c = spawn(client_bin, cargs, 1);
    expect_line(&c, "created");
    T_EXPECT_EQ(run_alone(client_bin, xargs), TX_FAILURE);
    expect_text(path("other"), "old other");
    build_args(sargs, "backup", path("db"), opts);
    T_EXPECT_EQ(run_alone(server_bin, sargs), TX_OK);
    T_EXPECT_EQ(reap(&c), TX_OK);
    expect_same(path("db"), path("media"));

    /* The name in use by a live server: the second server fails; the first is killed
     * mid-stream, and neither output file changed. */
    static const char *const stall[] = {"--max-transfer", "64K", "--timeout", "30000",
                                        "--stall-after",  "1",   NULL};
    build_args(cargs, "restore", path("media"), opts);
    build_args(sargs, "restore", path("restored"), stall);
    build_args(xargs, "restore", path("other"), opts);
    c = spawn(client_bin, cargs, 1);
    expect_line(&c, "created");
    proc s = spawn(server_bin, sargs, 1);
    expect_line(&s, "stalled");
    T_EXPECT_EQ(run_alone(server_bin, xargs), TX_FAILURE);
    expect_text(path("other"), "old other");
    T_REQUIRE(kill(s.pid, SIGKILL) == 0);
    T_EXPECT_EQ(reap(&s), 128 + SIGKILL);
    T_EXPECT_EQ(reap(&c), TX_ABORT);
    expect_text(path("restored"), "old restored");

    /* A backup whose server dies mid-stream keeps the old media. */
    write_text(path("media"), "old media");
    build_args(cargs, "backup", path("media"), opts);
    build_args(sargs, "backup", path("db"), stall);
    c = spawn(client_bin, cargs, 1);
    expect_line(&c, "created");
    s = spawn(server_bin, sargs, 1);
    expect_line(&s, "stalled");
    T_REQUIRE(kill(s.pid, SIGKILL) == 0);
    T_EXPECT_EQ(reap(&s), 128 + SIGKILL);
    T_EXPECT_EQ(reap(&c), TX_ABORT);
    expect_text(path("media"), "old media");
    expect_only(all);
}

/* Every argument is checked before any file is touched: a bad --ready-fd or --instance is
 * a usage error that leaves FILE as it was, and a directory (or, for the client's restore,
 * a FIFO or a character device such as /dev/zero) is refused at once, before any set
 * exists, instead of a run that waits for its peer. */
static void case_bad_arguments(void) {
    static const char *const too_big[] = {"--ready-fd", "4294967297", "--timeout", "200", NULL};
    static const char *const not_open[] = {"--ready-fd", "77", "--timeout", "200", NULL};
    static const char *const bad_inst[] = {"--instance", "a/b", "--timeout", "200", NULL};
    static const char *const ctl_inst[] = {"--instance", "a\tb", "--timeout", "200", NULL};
    static const char *const long_inst[] = {"--instance", "abcdefghijklmnopq", "--timeout", "200",
                                            NULL};
    static const char *const quick[] = {"--timeout", "200", NULL};
    static const char *const *const bad[] = {too_big, not_open, bad_inst, ctl_inst, long_inst};
    static const char *const modes[] = {"backup", "restore"};
    const char *args[MAXARGS];
    write_text(path("media"), "old media");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        for (int m = 0; m < 2; m++) {
            build_args(args, modes[m], path("media"), bad[i]);
            T_EXPECT_EQ(run_alone(client_bin, args), TX_USAGE);
            T_EXPECT_EQ(run_alone(server_bin, args), TX_USAGE);
            expect_text(path("media"), "old media");
        }
    /* A directory, wherever a FILE is taken. */
    T_REQUIRE(mkdir(path("folder"), 0700) == 0);
    for (int m = 0; m < 2; m++) {
        build_args(args, modes[m], path("folder"), quick);
        T_EXPECT_EQ(run_alone(client_bin, args), TX_IO);
        T_EXPECT_EQ(run_alone(server_bin, args), TX_IO);
    }
    /* The client's restore reads by position: no FIFO, no endless character device. */
    T_REQUIRE(mkfifo(path("fifo"), 0600) == 0);
    build_args(args, "restore", path("fifo"), quick);
    T_EXPECT_EQ(run_alone(client_bin, args), TX_IO);
    build_args(args, "restore", "/dev/zero", quick);
    T_EXPECT_EQ(run_alone(client_bin, args), TX_IO);
    /* The server's backup reads the database by position too: a FIFO (without blocking in
     * open), /dev/zero and a pipe are refused, never backed up as nothing with exit 0. */
    build_args(args, "backup", path("fifo"), quick);
    T_EXPECT_EQ(run_alone(server_bin, args), TX_IO);
    build_args(args, "backup", "/dev/zero", quick);
    T_EXPECT_EQ(run_alone(server_bin, args), TX_IO);
    int pp[2];
    T_REQUIRE(pipe(pp) == 0);
    char pipe_path[32];
    snprintf(pipe_path, sizeof pipe_path, "/dev/fd/%d", pp[0]);
    build_args(args, "backup", pipe_path, quick);
    T_EXPECT_EQ(run_alone(server_bin, args), TX_IO);
    close(pp[0]);
    close(pp[1]);
    static const char *const left[] = {"media", "folder", "fifo", NULL};
    expect_only(left);
    rmdir(path("folder"));
    unlink(path("fifo"));
}

/* ---- a server that misbehaves after VDC_Complete -----------------------------------------
 * hostile_server plays a backup like vdi-server, but device after device with one command
 * in flight, so the client sees a fixed order, and then sends one more command on one
 * device after that device's VDC_Complete; it prints every completion code it got. These
 * are the client's paths that vdi-server never takes: the client names its media at the
 * last device's VDC_Complete (ref/tools/README.md), and what comes after must not touch it. */

#define H_SIZE 200000u /* three chunks of 64K and a short one */
#define H_CHUNK 65536u

static const char *hostile_bin;

static void cleanup(void);

typedef struct hostile_run {
    unsigned devices;
    const char *after;      /* --after-complete */
    int late_device;        /* --late-device, or -1 for the server's default (the last device) */
    int names_taken;        /* every temporary name the client could link its media under exists */
    const char *media;      /* the client's FILE in the scratch folder, NULL: "media" */
    void (*at_hold)(void);  /* called while the server holds before the last VDC_Complete */
    unsigned last_complete; /* the code of the last device's VDC_Complete, if not the late one */
    int server_exit, client_exit;
} hostile_run;

/* The temporary names tool_output_commit tries for a client of that pid (FILE.tmp-PID-K,
 * K < 100): created, so that naming the media fails with EEXIST, or removed again. (Not
 * through path(), whose few buffers hold the arguments of the running tools.) */
static void take_names(pid_t pid, int create) {
    for (unsigned k = 0; k < 100; k++) {
        char name[512];
        snprintf(name, sizeof name, "%s/media.tmp-%ld-%u", dir, (long)pid, k);
        if (create)
            write_text(name, "taken");
        else
            T_REQUIRE(unlink(name) == 0);
    }
}

/* The client backs up into "media" (or r->media) from hostile_server reading "db"; the
 * server's codes go to "codes", the client's stderr to "client.err". */
static void run_hostile(hostile_run *r) {
    char ndev[16], late[16];
    snprintf(ndev, sizeof ndev, "%u", r->devices);
    snprintf(late, sizeof late, "%d", r->late_device);
    const char *opts[] = {"--max-transfer", "64K", "--devices", ndev, "--timeout", "30000", NULL};
    const char *cargs[MAXARGS], *sargs[MAXARGS];
    build_args(cargs, "backup", path(r->media ? r->media : "media"), opts);
    build_args(sargs, "backup", path("db"), opts);
    append_args(sargs, "--after-complete", r->after);
    if (r->late_device >= 0)
        append_args(sargs, "--late-device", late);
    proc c = spawn_to(client_bin, cargs, 1, NULL, path("client.err"));
    expect_line(&c, "created");
    if (r->names_taken)
        take_names(c.pid, 1);
    int hold[2] = {-1, -1}; /* made after the client started: only the server gets hold[0] */
    char hold_arg[16];
    if (r->at_hold) {
        T_REQUIRE(pipe2(hold, O_CLOEXEC) == 0 && hold[0] != READY_FD);
        T_REQUIRE(fcntl(hold[0], F_SETFD, 0) == 0);
        snprintf(hold_arg, sizeof hold_arg, "%d", hold[0]);
        append_args(sargs, "--hold-fd", hold_arg);
    }
    proc s = spawn_to(hostile_bin, sargs, r->at_hold != NULL, path("codes"), NULL);
    if (r->at_hold) {
        close(hold[0]);
        expect_line(&s, "holding");
        r->at_hold();
        T_REQUIRE(write(hold[1], "g", 1) == 1);
        close(hold[1]);
    }
    r->server_exit = reap(&s);
    r->client_exit = reap(&c);
    if (r->names_taken)
        take_names(c.pid, 0);
}

/* What hostile_server prints when every command is answered ERROR_SUCCESS, except that
 * device late_dev's VDC_Complete is answered complete_code and followed by the line
 * "late_dev late" when late is not NULL. Device d carries chunks d, d + N, ... */
static void expect_codes(const hostile_run *r, unsigned late_dev, unsigned complete_code,
                         const char *late) {
    char *want = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&want, &len);
    T_REQUIRE(f != NULL);
    for (unsigned d = 0; d < r->devices; d++) {
        for (size_t off = (size_t)d * H_CHUNK; off < H_SIZE; off += r->devices * H_CHUNK)
            fprintf(f, "%u VDC_Write 0\n", d);
        unsigned code = d == late_dev ? complete_code : d + 1 == r->devices ? r->last_complete : 0;
        fprintf(f, "%u VDC_Flush 0\n%u VDC_Complete %u\n", d, d, code);
        if (d == late_dev && late)
            fprintf(f, "%u %s\n", d, late);
    }
    T_REQUIRE(fclose(f) == 0);
    expect_text(path("codes"), want);
    free(want);
}

/* The client's stderr holds `want` (NULL: nothing at all). */
static void expect_client_said(const char *want) {
    char buf[4096];
    T_REQUIRE(read_text(path("client.err"), buf, sizeof buf) == 0);
    t_checks++;
    if (want ? strstr(buf, want) == NULL : buf[0] != '\0')
        T_FAILED_AT("the client said '%s', want %s%s%s", buf, want ? "'" : "nothing",
                    want ? want : "", want ? "'" : "");
}

static const char *const hostile_leaves[] = {"db", "media", "codes", "client.err", NULL};
static const char *const hostile_no_media[] = {"db", "codes", "client.err", NULL};

/* One more command after the last device's VDC_Complete, on 1 and 2 devices: the codes
 * the server saw, the client's exit and words, and the named media whole. */
static void after_last_complete(const char *after, int client_exit, const char *late,
                                const char *said) {
    for (unsigned devices = 1; devices <= 2; devices++) {
        hostile_run r = {.devices = devices, .after = after, .late_device = -1};
        run_hostile(&r);
        T_EXPECT_EQ(r.server_exit, TX_OK);
        T_EXPECT_EQ(r.client_exit, client_exit);
        expect_codes(&r, devices - 1, ERROR_SUCCESS, late);
        expect_client_said(said);
        expect_same(path("db"), path("media"));
        expect_only(hostile_leaves);
    }
}

/* No media under FILE's name, nothing else but the run's files. */
static void expect_no_media(void) {
    t_checks++;
    if (access(path("media"), F_OK) == 0 || errno != ENOENT)
        T_FAILED_AT("a media file exists after a failed backup");
    expect_only(hostile_no_media);
}

/* A VDC_Write after the last device's VDC_Complete: the media was named then and the server
 * was told the backup is done, so the client refuses the write (ERROR_INVALID_PARAMETER),
 * leaves the named media as it was, whole and equal to the database, and exits 1: the
 * server broke the protocol, the media is good. */
static void case_write_after_complete(void) {
    make_data(path("db"), H_SIZE);
    after_last_complete("write", TX_FAILURE, "VDC_Write 87",
                        "VDC_Write after every device's VDC_Complete");
    /* On device 0 of two, after its own VDC_Complete but before device 1's data: refused
     * too, and the backup fails: device 1's VDC_Complete is answered ERROR_IO_DEVICE and
     * no media is named (the server must not call it done). */
    T_REQUIRE(unlink(path("media")) == 0); /* the runs above named theirs */
    hostile_run r = {
        .devices = 2, .after = "write", .late_device = 0, .last_complete = ERROR_IO_DEVICE};
    run_hostile(&r);
    T_EXPECT_EQ(r.server_exit, TX_OK);
    T_EXPECT_EQ(r.client_exit, TX_FAILURE);
    expect_codes(&r, 0, ERROR_SUCCESS, "VDC_Write 87");
    expect_client_said("VDC_Write after its VDC_Complete");
    expect_no_media();
}

/* A VDC_Flush after the last VDC_Complete: the media was synced when it was named, so it
 * is answered ERROR_SUCCESS and the backup succeeds. */
static void case_flush_after_complete(void) {
    make_data(path("db"), H_SIZE);
    after_last_complete("flush", TX_OK, "VDC_Flush 0", NULL);
}

/* A second VDC_Complete on one device counts once: on device 0 of two, before device 1
 * sent its data, it must not make the client name the media early (device 1's writes
 * would then be refused); on the last device, after the naming, it must not name it
 * again. Either way ERROR_SUCCESS and a whole media. */
static void case_complete_twice(void) {
    make_data(path("db"), H_SIZE);
    static const struct {
        unsigned devices;
        int late;
    } runs[] = {{2, 0}, {2, 1}, {1, 0}};
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        hostile_run r = {
            .devices = runs[i].devices, .after = "complete", .late_device = runs[i].late};
        run_hostile(&r);
        T_EXPECT_EQ(r.server_exit, TX_OK);
        T_EXPECT_EQ(r.client_exit, TX_OK);
        expect_codes(&r, (unsigned)runs[i].late, ERROR_SUCCESS, "VDC_Complete 0");
        expect_client_said(NULL);
        expect_same(path("db"), path("media"));
        expect_only(hostile_leaves);
    }
}

/* The media cannot be named at the last VDC_Complete (every temporary name it could be
 * linked under exists: EEXIST): that VDC_Complete is answered ERROR_IO_DEVICE, the client
 * exits 5, an old media keeps its contents, no media appears where there was none, and
 * nothing temporary is left. The client leaves the end of the set to the server: a
 * VDC_ClearError sent after the failed VDC_Complete is still answered (50, not supported),
 * where a client that aborted the set would have it drained with 995. */
static void case_name_fails_at_complete(void) {
    make_data(path("db"), H_SIZE);
    for (unsigned round = 0; round < 4; round++) {
        unsigned devices = round < 2 ? 1 : 2;
        int old = round == 0 || round == 2, clear = round == 0 || round == 3;
        if (old)
            write_text(path("media"), "old media");
        hostile_run r = {.devices = devices,
                         .after = clear ? "clear" : "none",
                         .late_device = -1,
                         .names_taken = 1};
        run_hostile(&r);
        T_EXPECT_EQ(r.server_exit, TX_OK);
        T_EXPECT_EQ(r.client_exit, TX_IO);
        expect_codes(&r, devices - 1, ERROR_IO_DEVICE, clear ? "VDC_ClearError 50" : NULL);
        expect_client_said("naming");
        if (old) {
            expect_text(path("media"), "old media");
            expect_only(hostile_leaves);
            T_REQUIRE(unlink(path("media")) == 0);
        } else {
            expect_no_media();
        }
    }
}

/* The media's directory is removed while the server holds before the last VDC_Complete
 * (the media, written under no name, is no entry in it): the naming fails (ENOENT), that
 * VDC_Complete is answered ERROR_IO_DEVICE, the client exits 5, no media appears anywhere,
 * and the client is still there for a VDC_ClearError. */
static int out_removed;

static void remove_out(void) {
    out_removed = rmdir(path("out")) == 0;
}

static void case_dir_gone_at_complete(void) {
    make_data(path("db"), H_SIZE);
    T_REQUIRE(mkdir(path("out"), 0700) == 0);
    hostile_run r = {.devices = 1,
                     .after = "clear",
                     .late_device = -1,
                     .media = "out/media",
                     .at_hold = remove_out};
    run_hostile(&r);
    if (!out_removed) { /* no O_TMPFILE here: the media had a temporary name in out/ */
        unlink(path("out/media"));
        rmdir(path("out"));
        cleanup();
        T_SKIP("the media's directory was not empty (no O_TMPFILE)");
    }
    T_EXPECT_EQ(r.server_exit, TX_OK);
    T_EXPECT_EQ(r.client_exit, TX_IO);
    expect_codes(&r, 0, ERROR_IO_DEVICE, "VDC_ClearError 50");
    expect_client_said("naming");
    t_checks++;
    if (access(path("out"), F_OK) == 0 || errno != ENOENT)
        T_FAILED_AT("the media's directory is back");
    expect_only(hostile_no_media);
}

/* The same with the directory made read-only instead (EACCES). Root writes anywhere, so
 * under root both tools run as the user nobody, which owns the scratch files they use. */
static int out_locked;

static void lock_out(void) {
    out_locked = chmod(path("out"), 0500) == 0;
}

static void case_dir_unwritable_at_complete(void) {
    make_data(path("db"), H_SIZE);
    T_REQUIRE(mkdir(path("out"), 0700) == 0);
    if (geteuid() == 0) {
        const struct passwd *pw = getpwnam("nobody");
        if (!pw) {
            cleanup();
            T_SKIP("no user nobody to run the tools as");
        }
        run_as.on = 1;
        run_as.uid = pw->pw_uid;
        run_as.gid = pw->pw_gid;
        T_REQUIRE(chmod(dir, 0755) == 0);
        T_REQUIRE(chown(path("out"), pw->pw_uid, pw->pw_gid) == 0);
        T_REQUIRE(chown(path("db"), pw->pw_uid, pw->pw_gid) == 0);
    }
    hostile_run r = {.devices = 1,
                     .after = "clear",
                     .late_device = -1,
                     .media = "out/media",
                     .at_hold = lock_out};
    run_hostile(&r);
    run_as.on = 0;
    T_REQUIRE(out_locked);
    T_EXPECT_EQ(r.server_exit, TX_OK);
    T_EXPECT_EQ(r.client_exit, TX_IO);
    expect_codes(&r, 0, ERROR_IO_DEVICE, "VDC_ClearError 50");
    expect_client_said("naming"); /* "naming", or "renaming" without O_TMPFILE */
    T_REQUIRE(chmod(path("out"), 0700) == 0);
    DIR *d = opendir(path("out"));
    T_REQUIRE(d != NULL);
    int left = 0;
    for (const struct dirent *e; (e = readdir(d)) != NULL;)
        left += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    t_checks++;
    if (left)
        T_FAILED_AT("%d file(s) left in the media's directory", left);
    T_REQUIRE(rmdir(path("out")) == 0);
    expect_only(hostile_no_media);
}

static void cleanup(void) {
    static const char *const leaves[] = {"db",    "media", "restored",  "missing",
                                         "other", "codes", "client.err"};
    for (size_t i = 0; i < sizeof leaves / sizeof leaves[0]; i++)
        unlink(path(leaves[i]));
    rmdir(dir);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: t_tools VDI_CLIENT VDI_SERVER CASE HOSTILE_SERVER\n");
        return 2;
    }
    client_bin = argv[1];
    server_bin = argv[2];
    hostile_bin = argv[4];
    const char *name = argv[3];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/t-tools-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    T_REQUIRE(mkdtemp(dir) != NULL);
    snprintf(set_name, sizeof set_name, "%s", t_set_name(name));
    /* A child killed on purpose must not take us with it through a broken pipe. */
    signal(SIGPIPE, SIG_IGN);

    const size_t odd = (3u << 20) + 777; /* not a multiple of any block or transfer size */
    if (strcmp(name, "backup_restore_1dev_client_first") == 0)
        round_trip(odd, one_dev, 1);
    else if (strcmp(name, "backup_restore_1dev_server_first") == 0)
        round_trip(odd, one_dev, 0);
    else if (strcmp(name, "backup_restore_4dev_client_first") == 0)
        round_trip(odd, four_dev, 1);
    else if (strcmp(name, "backup_restore_4dev_server_first") == 0)
        round_trip(odd, four_dev, 0);
    else if (strcmp(name, "backup_restore_4dev_small_no_complete") == 0)
        round_trip(odd, four_small, 1);
    else if (strcmp(name, "backup_restore_empty") == 0)
        round_trip(0, four_dev, 0);
    else if (strcmp(name, "restore_empty_64dev") == 0)
        case_restore_empty_64dev();
    else if (strcmp(name, "bad_options") == 0)
        case_bad_options();
    else if (strcmp(name, "no_peer") == 0)
        case_no_peer();
    else if (strcmp(name, "io_error") == 0)
        case_io_error();
    else if (strcmp(name, "io_error_midstream") == 0)
        case_io_error_midstream();
    else if (strcmp(name, "instance") == 0)
        case_instance();
    else if (strcmp(name, "keep_old_file") == 0)
        case_keep_old_file();
    else if (strcmp(name, "bad_arguments") == 0)
        case_bad_arguments();
    else if (strcmp(name, "mode_mismatch") == 0)
        case_mode_mismatch();
    else if (strcmp(name, "client_killed") == 0)
        case_killed(1);
    else if (strcmp(name, "server_killed") == 0)
        case_killed(0);
    else if (strcmp(name, "client_killed_after_complete") == 0)
        case_killed_after_complete("1");
    else if (strcmp(name, "client_killed_after_complete_4dev") == 0)
        case_killed_after_complete("4");
    else if (strcmp(name, "write_after_complete") == 0)
        case_write_after_complete();
    else if (strcmp(name, "flush_after_complete") == 0)
        case_flush_after_complete();
    else if (strcmp(name, "complete_twice") == 0)
        case_complete_twice();
    else if (strcmp(name, "name_fails_at_complete") == 0)
        case_name_fails_at_complete();
    else if (strcmp(name, "dir_gone_at_complete") == 0)
        case_dir_gone_at_complete();
    else if (strcmp(name, "dir_unwritable_at_complete") == 0)
        case_dir_unwritable_at_complete();
    else
        T_FAILED_AT("unknown case '%s'", name);
    expect_no_leftovers();
    cleanup();
    return t_done();
}
