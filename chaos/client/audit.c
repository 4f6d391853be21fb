/* audit.c: one run of a client under a plan, and the oracles that judge it: it ends (no
 * hang, no busy loop), it tells the truth (success exactly when the server's session
 * succeeded), no crash or sanitizer report, nothing left behind (the set's shared memory,
 * processes, temporary files). vdichaos is a subreaper, so whatever the client leaves
 * running comes back to it and is seen, then killed. Real time is used only for the run's
 * limits. */
#include "audit.h"
#include "vdi/vdi_seams.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void path_join(char *out, size_t cap, const char *a, const char *b) {
    int n = snprintf(out, cap, "%s/%s", a, b);
    if (n < 0 || (size_t)n >= cap)
        out[0] = '\0';
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : 0;
}

static void rm_tree(const char *dir) {
    if (dir[0])
        (void)nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int audit_setup(audit_ctx *c) {
    const char *tmp = getenv("TMPDIR");
    snprintf(c->work, sizeof c->work, "%s/vdichaos-client-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(c->work)) {
        fprintf(stderr, "vdichaos client: cannot make %s: %s\n", c->work, strerror(errno));
        c->work[0] = '\0';
        return -1;
    }
    char p[PATH_MAX + 32];
    path_join(p, sizeof p, c->work, "bin");
    if (mkdir(p, 0700) != 0)
        return -1;
    path_join(p, sizeof p, c->work, "bin/sqlcmd");
    if (symlink(c->sqlcmd, p) != 0) {
        fprintf(stderr, "vdichaos client: cannot link %s: %s\n", p, strerror(errno));
        return -1;
    }
    path_join(p, sizeof p, c->work, "data");
    if (mkdir(p, 0700) != 0)
        return -1;
    /* Orphans of the client come back to us: a process it leaves behind is seen. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0)
        fprintf(stderr, "vdichaos client: warning: not a subreaper (%s)\n", strerror(errno));
    return 0;
}

void audit_cleanup(audit_ctx *c) {
    rm_tree(c->work);
}

static audit_finding *add_finding(audit_result *r, const char *oracle, const char *cls,
                                  const char *fmt, ...) {
    for (int i = 0; i < r->nfindings; i++)
        if (strcmp(r->findings[i].oracle, oracle) == 0)
            return NULL; /* one finding per oracle and run: the first is the story */
    if (r->nfindings >= AUDIT_MAX_FINDINGS)
        return NULL;
    audit_finding *f = &r->findings[r->nfindings++];
    memset(f, 0, sizeof *f);
    snprintf(f->oracle, sizeof f->oracle, "%s", oracle);
    snprintf(f->cls, sizeof f->cls, "%s", cls);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->detail, sizeof f->detail, fmt, ap);
    va_end(ap);
    return f;
}

void audit_signature(const audit_finding *f, char *buf, size_t cap) {
    snprintf(buf, cap, "%s:%s%s%s", f->oracle, f->cls, f->where[0] ? ":" : "", f->where);
}

/* s with "{set}" replaced by set and "{run}" by run (the run's own directory). */
static char *substitute(const char *s, const char *set, const char *run) {
    size_t n = strlen(s), sl = strlen(set), rl = strlen(run);
    char *out = malloc(n * (sl > rl ? sl : rl) / 5 + n + 1); /* each token is 5 bytes */
    if (!out)
        return NULL;
    char *o = out;
    for (const char *q = s; *q;) {
        const char *with = strncmp(q, "{set}", 5) == 0   ? set
                           : strncmp(q, "{run}", 5) == 0 ? run
                                                         : NULL;
        if (with) {
            size_t wl = strlen(with);
            memcpy(o, with, wl);
            o += wl;
            q += 5;
        } else {
            *o++ = *q++;
        }
    }
    *o = '\0';
    return out;
}

static void free_words(char **v) {
    for (int i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* A NULL-terminated copy of words with the run's substitutions; NULL when out of memory. */
static char **substitute_words(char *const *words, int n, const char *set, const char *run) {
    char **v = calloc((size_t)n + 1, sizeof *v);
    for (int i = 0; v && i < n; i++)
        if (!(v[i] = substitute(words[i], set, run))) {
            free_words(v);
            return NULL;
        }
    return v;
}

static int write_file(const char *path, const char *data, size_t n) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    ssize_t w = write(fd, data, n);
    close(fd);
    return w == (ssize_t)n ? 0 : -1;
}

/* At most cap - 1 bytes of the file (the first ones), NUL-terminated; length read. */
static size_t read_head(const char *path, char *buf, size_t cap) {
    buf[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    size_t got = 0;
    while (got + 1 < cap) {
        ssize_t n = read(fd, buf + got, cap - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    for (size_t i = 0; i < got; i++)
        if (buf[i] == '\0')
            buf[i] = ' ';
    return got;
}

typedef struct {
    const audit_ctx *c;
    const char *run;    /* the run's directory */
    const char *plan;   /* its plan file */
    const char *report; /* vdi-sqlcmd's report */
    const vdi_plan *p;  /* the run's plan: its shake, for libsqlvdi */
    int sched_slot;     /* under the plan's `schedule`: its slot in the session; -1 not */
    int sched_procs;    /* the session's processes (the client, and our server if we run it) */
} child_env;

/* In the child: the environment every run gets, then stdio into the run's files. */
static void child_setup(const child_env *e, const char *out_name, const char *err_name) {
    char buf[PATH_MAX * 2 + 64];
    const char *path = getenv("PATH");
    snprintf(buf, sizeof buf, "%s/bin:%s", e->c->work, path ? path : "/usr/bin:/bin");
    setenv("PATH", buf, 1);
    const char *ld = getenv("LD_LIBRARY_PATH");
    if (e->c->libdir) {
        snprintf(buf, sizeof buf, "%s%s%s", e->c->libdir, ld && *ld ? ":" : "", ld ? ld : "");
        setenv("LD_LIBRARY_PATH", buf, 1);
    }
    static const char *const knobs[] = {"VDI_SQLCMD_ABORT_AFTER", "VDI_SQLCMD_CLOSE_AFTER",
                                        "VDI_SQLCMD_DELAY_MS",    "VDI_SQLCMD_FAIL_COMMAND",
                                        "VDI_SQLCMD_DIE_AT",      "VDI_SQLCMD_DIE_HOW",
                                        "VDI_SQLCMD_FLUSHES",     "VDI_SQLCMD_COMPLETE",
                                        "VDI_SQLCMD_TIMEOUT",     "VDI_SQLCMD_DB_SIZE"};
    for (size_t i = 0; i < sizeof knobs / sizeof knobs[0]; i++)
        unsetenv(knobs[i]);
    setenv("VDI_SQLCMD_PLAN", e->plan, 1);
    setenv("VDI_SQLCMD_REPORT", e->report, 1);
    path_join(buf, sizeof buf, e->c->work, "data");
    setenv("VDI_SQLCMD_DATA_DIR", buf, 1);
    path_join(buf, sizeof buf, e->run, "tmp");
    setenv("TMPDIR", buf, 1);
    /* libsqlvdi's audit mode: the library reports the client's protocol mistakes */
    path_join(buf, sizeof buf, e->run, "vdi-audit");
    setenv("VDI_AUDIT_FILE", buf, 1);
    unsetenv("VDI_AUDIT_SHAKE");
    if (e->p->shake_seed) { /* the client's threads, delayed at every schedule point */
        snprintf(buf, sizeof buf, "%llu:%u", (unsigned long long)e->p->shake_seed,
                 e->p->shake_max_us);
        setenv("VDI_AUDIT_SHAKE", buf, 1);
    }
    unsetenv("VDICHAOS_SCHED");
    unsetenv("VDICHAOS_SCHED_OUT");
    unsetenv("VDICHAOS_SCHED_TIMELINE");
    unsetenv("VDICHAOS_SCHED_SESSION");
    unsetenv("VDICHAOS_SCHED_PROCS");
    unsetenv("VDICHAOS_SCHED_SLOT");
    if (e->sched_slot >= 0 && e->p->sched && e->c->schedlib) {
        /* The client and our server, one session under one scheduler: their threads (and
         * what they start) are scheduled together, one decision list for the whole run. */
        const char *pre = getenv("LD_PRELOAD");
        snprintf(buf, sizeof buf, "%s%s%s", e->c->schedlib, pre && *pre ? ":" : "", pre ? pre : "");
        setenv("LD_PRELOAD", buf, 1);
        if (e->c->sched_replay)
            snprintf(buf, sizeof buf, "replay:%s", e->c->sched_replay);
        else if (e->p->sched == 1)
            snprintf(buf, sizeof buf, "random:%llu", (unsigned long long)e->p->sched_seed);
        else if (e->p->sched_steps)
            snprintf(buf, sizeof buf, "pct:%u:%llu:%u", e->p->sched_depth,
                     (unsigned long long)e->p->sched_seed, e->p->sched_steps);
        else
            snprintf(buf, sizeof buf, "pct:%u:%llu", e->p->sched_depth,
                     (unsigned long long)e->p->sched_seed);
        setenv("VDICHAOS_SCHED", buf, 1);
        path_join(buf, sizeof buf, e->run, "vdi-sched");
        setenv("VDICHAOS_SCHED_OUT", buf, 1);
        path_join(buf, sizeof buf, e->run, "vdi-sched.session");
        setenv("VDICHAOS_SCHED_SESSION", buf, 1);
        snprintf(buf, sizeof buf, "%d", e->sched_procs);
        setenv("VDICHAOS_SCHED_PROCS", buf, 1);
        snprintf(buf, sizeof buf, "%d", e->sched_slot);
        setenv("VDICHAOS_SCHED_SLOT", buf, 1);
    }
    int in = open("/dev/null", O_RDONLY);
    path_join(buf, sizeof buf, e->run, out_name);
    int out = open(buf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    path_join(buf, sizeof buf, e->run, err_name);
    int err = open(buf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in < 0 || out < 0 || err < 0)
        _exit(126);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
}

static pid_t spawn(const child_env *e, char **argv, const char *out, const char *err) {
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        child_setup(e, out, err);
        execvp(argv[0], argv);
        fprintf(stderr, "vdichaos client: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    if (pid > 0)
        setpgid(pid, pid); /* both sides: no window where the group does not exist */
    return pid;
}

typedef struct {
    pid_t pid;
    int done, status;
} proc;

/* Reaps every child that ended (ours and the orphans that came back to us). */
static void reap(proc *ps, int n) {
    for (;;) {
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid <= 0)
            return;
        for (int i = 0; i < n; i++)
            if (ps[i].pid == pid) {
                ps[i].done = 1;
                ps[i].status = st;
            }
    }
}

/* A `schedule` run: reads the scheduler's report (rundir/vdi-sched). Sets r->sched and its
 * note; a hang it saw (every thread of the client blocked with no deadline) is the finding
 * `ends: hang` with each thread's blocking point, and returns 1. */
static int judge_schedule(const audit_ctx *c, const char *rundir, audit_result *r) {
    char f[PATH_MAX + 16], buf[4096];
    path_join(f, sizeof f, rundir, "vdi-sched");
    size_t n = read_head(f, buf, sizeof buf);
    if (n == 0) {
        r->sched = 3;
        snprintf(r->sched_note, sizeof r->sched_note,
                 "no scheduler report: the client was not under the scheduler (a static or "
                 "set-uid binary, or started by a wrapper that forks)");
        return 0;
    }
    r->sched = strstr(buf, "\ncontrolled yes\n") ? 1 : 2;
    const char *st = strstr(buf, "\nsteps ");
    r->sched_steps = st ? strtoul(st + 7, NULL, 10) : 0;
    const char *tr = strstr(buf, "\ntrace ");
    if (tr && sscanf(tr + 7, "%16[0-9a-f]", r->sched_trace) == 1) {
        /* the decisions outlive the run's directory: a finding keeps them */
        char keep[PATH_MAX + 64];
        path_join(keep, sizeof keep, c->work, "schedules");
        (void)mkdir(keep, 0700);
        snprintf(keep + strlen(keep), sizeof keep - strlen(keep), "/%s.sched", r->sched_trace);
        if (rename(f, keep) != 0)
            r->sched_trace[0] = '\0';
    }
    size_t l = 0;
    for (char *u = strstr(buf, "\nuncontrolled "); u && l < sizeof r->sched_note;
         u = strstr(u + 1, "\nuncontrolled ")) {
        char *e = strchr(u + 1, '\n');
        int len = e ? (int)(e - u - 14) : (int)strlen(u + 14);
        l += (size_t)snprintf(r->sched_note + l, sizeof r->sched_note - l, "%s%.*s",
                              l ? "; " : "not controlled: ", len, u + 14);
    }
    if (strstr(buf, "\nreplay diverged\n")) {
        r->sched = 2;
        l = strlen(r->sched_note);
        snprintf(r->sched_note + l, sizeof r->sched_note - l,
                 "%sthe decisions replayed do not fit "
                 "this run (replay diverged)",
                 l ? "; " : "");
    }
    if (!strstr(buf, "\noutcome hang\n"))
        return 0;
    char where[700] = "";
    size_t w = 0;
    for (char *b = strstr(buf, "\nblocked "); b && w < sizeof where;
         b = strstr(b + 1, "\nblocked ")) {
        char *e = strchr(b + 1, '\n');
        int len = e ? (int)(e - b - 9) : (int)strlen(b + 9);
        w += (size_t)snprintf(where + w, sizeof where - w, "\n  thread %.*s", len, b + 9);
    }
    add_finding(r, "ends", "hang",
                "under the scheduler every thread of the client was blocked with no deadline "
                "(a deadlock or a lost wake-up); where each waited:%s",
                where);
    return 1;
}

/* Waits for a child to change state, at most ms (SIGCHLD blocked by the caller). */
void audit_wait_child(long ms) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    (void)sigtimedwait(&set, NULL, &ts);
}

static int group_alive(pid_t pgid) {
    return kill(-pgid, 0) == 0;
}

/* CPU seconds the process used, from /proc/PID/stat (utime + stime). */
static double cpu_seconds(pid_t pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    if (read_head(path, buf, sizeof buf) == 0)
        return 0;
    const char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    unsigned long long ut = 0, stt = 0;
    /* after ") ": state, then fields 4..13, then utime (14) and stime (15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &stt) != 2)
        return 0;
    long hz = sysconf(_SC_CLK_TCK);
    return hz > 0 ? (double)(ut + stt) / (double)hz : 0;
}

/* The client's thread stacks into FILE (gdb, or the kernel's /proc stacks); the function
 * names of the first frames that are not libc's or the sanitizer's go to where. */
static void dump_stacks(const audit_ctx *c, pid_t pid, const char *file, char *where, size_t wcap) {
    where[0] = '\0';
    if (c->stacks == 2) {
        char cmd[PATH_MAX + 256];
        snprintf(cmd, sizeof cmd,
                 "timeout 20 gdb -batch -nx -p %ld -ex 'thread apply all bt 12' >'%s' 2>&1 "
                 "</dev/null",
                 (long)pid, file);
        if (system(cmd) != 0) {
            /* gdb missing or refused: fall back to the kernel's view */
        }
    }
    FILE *out = fopen(file, "a");
    if (out && (c->stacks >= 1)) {
        char dir[64];
        snprintf(dir, sizeof dir, "/proc/%ld/task", (long)pid);
        DIR *d = opendir(dir);
        struct dirent *de;
        while (d && (de = readdir(d)) != NULL) {
            if (de->d_name[0] == '.')
                continue;
            char p[PATH_MAX], buf[2048];
            snprintf(p, sizeof p, "%s/%s/wchan", dir, de->d_name);
            read_head(p, buf, sizeof buf);
            fprintf(out, "task %s wchan %s\n", de->d_name, buf);
            snprintf(p, sizeof p, "%s/%s/stack", dir, de->d_name);
            if (read_head(p, buf, sizeof buf))
                fprintf(out, "%s", buf);
        }
        if (d)
            closedir(d);
    }
    if (out)
        fclose(out);
    /* "#N  0x... in NAME (" lines: the first two names outside libc and the runtime */
    static char text[1 << 16];
    read_head(file, text, sizeof text);
    int names = 0;
    for (char *line = text; line && *line && names < 2;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        char *in = strstr(line, " in ");
        if (line[0] == '#' && in) {
            char name[96];
            if (sscanf(in + 4, "%95[^ (]", name) == 1 && strncmp(name, "__", 2) != 0 &&
                !strstr(line, "libc.so") && !strstr(line, "libpthread") && !strstr(line, "nptl/") &&
                !strstr(line, "sysdeps/") && !strstr(line, " at /usr/") &&
                strncmp(name, "futex", 5) != 0 && strncmp(name, "syscall", 7) != 0 &&
                strncmp(name, "pthread_", 8) != 0 && strstr(name, "sanitizer") == NULL &&
                strncmp(name, "clock_nanosleep", 15) != 0 && strncmp(name, "std::", 5) != 0) {
                size_t l = strlen(where);
                snprintf(where + l, wcap - l, "%s%s", l ? "<" : "", name);
                names++;
            }
        }
        line = nl ? nl + 1 : NULL;
    }
}

/* What vdi-sqlcmd's report says about the last session. */
static void read_report(const char *path, audit_result *r, char *set, size_t setcap) {
    static char text[1 << 16];
    r->server = -2;
    if (read_head(path, text, sizeof text) == 0)
        return;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (strncmp(line, "set ", 4) == 0) {
            snprintf(set, setcap, "%s", line + 4);
            r->server = -1; /* started; an outcome line says how it ended */
        } else if (strncmp(line, "backup ", 7) == 0) {
            r->restore = 0;
        } else if (strncmp(line, "restore ", 8) == 0) {
            r->restore = 1;
        } else if (strncmp(line, "sent ", 5) == 0) {
            r->sent = atol(line + 5);
        } else if (strncmp(line, "completed ", 10) == 0) {
            r->completed = atol(line + 10);
        } else if (strncmp(line, "outcome ", 8) == 0) {
            r->server = strcmp(line + 8, "success") == 0 ? 1 : 0;
        }
        line = nl ? nl + 1 : NULL;
    }
}

static const char *server_story(int server) {
    switch (server) {
    case 1:
        return "the server's session succeeded";
    case 0:
        return "the server's session failed";
    case -1:
        return "the server died during the session";
    default:
        return "no session was run";
    }
}

static const char *signame(int sig) {
    switch (sig) {
    case SIGSEGV:
        return "SIGSEGV";
    case SIGBUS:
        return "SIGBUS";
    case SIGILL:
        return "SIGILL";
    case SIGFPE:
        return "SIGFPE";
    case SIGABRT:
        return "SIGABRT";
    case SIGKILL:
        return "SIGKILL";
    case SIGTERM:
        return "SIGTERM";
    default:
        return "a signal";
    }
}

/* Sanitizer reports in the client's stderr: the first one's kind and top frames. */
static void judge_sanitizer(const char *errfile, audit_result *r) {
    static char text[1 << 18];
    read_head(errfile, text, sizeof text);
    static const char *const marks[] = {
        "ERROR: AddressSanitizer: ",  "ERROR: LeakSanitizer: ",
        "WARNING: ThreadSanitizer: ", "ERROR: ThreadSanitizer: ",
        ": runtime error: ",          "ERROR: UndefinedBehaviorSanitizer: "};
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++) {
        char *at = strstr(text, marks[i]);
        if (!at)
            continue;
        char kind[64] = "";
        if (sscanf(at + strlen(marks[i]), "%63[a-zA-Z- ]", kind) != 1)
            snprintf(kind, sizeof kind, "report");
        for (char *k = kind; *k; k++)
            if (*k == ' ')
                *k = '-';
        size_t kl = strlen(kind);
        while (kl && kind[kl - 1] == '-')
            kind[--kl] = '\0';
        char *eol = strchr(at, '\n');
        int len = eol ? (int)(eol - at) : (int)strlen(at);
        audit_finding *f = add_finding(r, "sanitizer", kind, "%.*s", len > 300 ? 300 : len, at);
        if (!f)
            return;
        /* the first two frames of the report's stack with a name */
        int names = 0;
        for (char *q = at; q && names < 2 && (q = strstr(q, " in ")) != NULL; q += 4) {
            char name[96];
            if (sscanf(q + 4, "%95[^ (\n]", name) == 1 && strncmp(name, "__", 2) != 0 &&
                strstr(name, "sanitizer") == NULL && strncmp(name, "std::", 5) != 0) {
                size_t l = strlen(f->where);
                snprintf(f->where + l, sizeof f->where - l, "%s%s", l ? "<" : "", name);
                names++;
            }
        }
        return;
    }
}

/* Oracles 3 and 4, judged inside libsqlvdi (audit mode): its first report, "vdi-audit
 * ORACLE [RULE]: detail" and the client's stack. */
static void judge_library_audit(const char *file, audit_result *r) {
    static char text[1 << 16];
    if (read_head(file, text, sizeof text) == 0)
        return;
    char *at = strstr(text, "vdi-audit ");
    if (!at)
        return;
    char oracle[24] = "", rule[64] = "";
    if (sscanf(at + 10, "%23[a-z-]", oracle) != 1)
        return;
    const char *after = at + 10 + strlen(oracle);
    if (*after == ' ' && sscanf(after + 1, "%63[a-z-]", rule) == 1)
        ;
    else
        snprintf(rule, sizeof rule, "%s", oracle);
    int len = 0;
    for (const char *q = at; *q && len < 900; q++, len++) {
        if (*q == '\n' && strncmp(q + 1, "    #", 5) != 0)
            break;
    }
    add_finding(r, oracle, rule, "%.*s", len, at);
}

/* Entries of dir (but . and ..), comma-separated into buf; their count. */
static int list_dir(const char *dir, char *buf, size_t cap) {
    buf[0] = '\0';
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        size_t l = strlen(buf);
        snprintf(buf + l, cap - l, "%s%s", n ? ", " : "", de->d_name);
        n++;
    }
    closedir(d);
    return n;
}

/* The set's shared-memory objects still there, in any instance (the reference names them
 * PREFIX INSTANCE-SET, vdi_seam_shm_prefix); removed once seen. */
static int shm_left(const char *set, char *buf, size_t cap) {
    buf[0] = '\0';
    if (!set[0])
        return 0;
    DIR *d = opendir("/dev/shm");
    if (!d)
        return 0;
    char slashed[64];
    if (vdi_seam_shm_prefix(slashed, sizeof slashed) != 0) {
        closedir(d);
        return 0;
    }
    const char *prefix = slashed + 1; /* the file's name: the object's without its '/' */
    size_t sl = strlen(set);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (strncmp(de->d_name, prefix, strlen(prefix)) != 0 || l < sl + 1 ||
            strcmp(de->d_name + l - sl, set) != 0 || de->d_name[l - sl - 1] != '-')
            continue;
        size_t bl = strlen(buf);
        snprintf(buf + bl, cap - bl, "%s/dev/shm/%s", n ? ", " : "", de->d_name);
        char p[PATH_MAX];
        snprintf(p, sizeof p, "/dev/shm/%s", de->d_name);
        unlink(p);
        n++;
    }
    closedir(d);
    return n;
}

static int r_exited_now(int status) {
    return WIFEXITED(status);
}

/* The lines of a stack dump that say something: gdb's "Thread" and "#N" lines, the
 * kernel's task, wchan and frame lines. */
static void stack_excerpt(const char *file, char *buf, size_t cap) {
    static char text[1 << 16];
    read_head(file, text, sizeof text);
    buf[0] = '\0';
    size_t l = 0;
    for (char *line = text; line && *line && l + 1 < cap;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (strncmp(line, "Thread ", 7) == 0 || line[0] == '#' || strncmp(line, "task ", 5) == 0 ||
            strncmp(line, "[<", 2) == 0)
            l += (size_t)snprintf(buf + l, cap - l, "%s\n", line);
        line = nl ? nl + 1 : NULL;
    }
}

static void kill_group(pid_t pgid) {
    if (pgid > 0)
        (void)kill(-pgid, SIGKILL);
}

/* The second half of the truth: a backup that succeeded restores byte for byte. The
 * restore command runs under the plan's settings without its faults; vdi-sqlcmd's restore
 * checks the media's checksum and compares the restored image with the original (Msg 3183
 * otherwise). 1 when it restored, 0 when not (why in buf). */
static int run_clean(const audit_ctx *c, const vdi_plan *p, const char *rundir, char **argv,
                     int want_restore, char *why, size_t cap) {
    static vdi_plan clean;
    clean = *p;
    clean.nfaults = 0;
    clean.statement[0] = '\0';
    clean.shake_seed = 0; /* the judge's restore: the client's threads run as they will */
    char planf[PATH_MAX + 32], reportf[PATH_MAX + 32];
    path_join(planf, sizeof planf, rundir, "restore.plan");
    path_join(reportf, sizeof reportf, rundir, "restore.report");
    static char text[VDI_PLAN_MAX_STATEMENT + 8192];
    size_t tn = vdi_plan_print(&clean, text, sizeof text);
    if (tn >= sizeof text || write_file(planf, text, tn) != 0) {
        snprintf(why, cap, "the restore plan could not be written");
        return 0;
    }
    child_env env = {c, rundir, planf, reportf, &clean, -1, 0};
    proc ps[1] = {{0, 0, 0}};
    ps[0].pid = spawn(&env, argv, "restore.out", "restore.err");
    if (ps[0].pid < 0) {
        snprintf(why, cap, "the restore command could not start");
        return 0;
    }
    double t0 = now_s();
    int hung = 0;
    while (!ps[0].done) {
        reap(ps, 1);
        if (ps[0].done)
            break;
        if ((now_s() - t0) * 1000.0 >= (double)c->hang_ms) {
            hung = 1;
            kill_group(ps[0].pid);
        }
        audit_wait_child(20);
    }
    kill_group(ps[0].pid);
    audit_result rr;
    char set[160] = "";
    memset(&rr, 0, sizeof rr);
    read_report(reportf, &rr, set, sizeof set);
    int st = ps[0].status;
    if (!hung && WIFEXITED(st) && WEXITSTATUS(st) == 0 && rr.server == 1 &&
        rr.restore == want_restore)
        return 1;
    char out[400];
    path_join(planf, sizeof planf, rundir, "restore.out");
    read_head(planf, out, sizeof out);
    snprintf(why, cap, "%s; the %s command %s %d, %s%s:\n%s", hung ? "it did not end" : "it failed",
             want_restore ? "restore" : "backup", WIFEXITED(st) ? "exited" : "was killed by signal",
             WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
             rr.restore == want_restore || rr.server == -2 ? "" : "it ran the other statement: ",
             server_story(rr.server), out);
    return 0;
}

int audit_prepare(audit_ctx *c, const vdi_plan *p, char **argv) {
    char rundir[PATH_MAX], tmpd[PATH_MAX + 16], why[800];
    path_join(rundir, sizeof rundir, c->work, "prepare");
    path_join(tmpd, sizeof tmpd, rundir, "tmp");
    rm_tree(rundir);
    if (mkdir(rundir, 0700) != 0 || mkdir(tmpd, 0700) != 0)
        return -1;
    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &old);
    int ok = run_clean(c, p, rundir, argv, 0, why, sizeof why);
    sigprocmask(SIG_SETMASK, &old, NULL);
    rm_tree(rundir);
    if (!ok) {
        fprintf(stderr, "vdichaos client: the clean backup for the restore audit failed: %s\n",
                why);
        return -1;
    }
    return 0;
}

int audit_run(audit_ctx *c, const vdi_plan *p, audit_result *r) {
    memset(r, 0, sizeof *r);
    r->server = -2;
    unsigned long run = ++c->runs;
    char rundir[PATH_MAX], name[64], planf[PATH_MAX + 16], reportf[PATH_MAX + 16];
    char errf[PATH_MAX + 16], tmpd[PATH_MAX + 16];
    snprintf(name, sizeof name, "run-%lu", run);
    path_join(rundir, sizeof rundir, c->work, name);
    rm_tree(rundir);
    if (mkdir(rundir, 0700) != 0) {
        fprintf(stderr, "vdichaos client: cannot make %s: %s\n", rundir, strerror(errno));
        return -1;
    }
    path_join(planf, sizeof planf, rundir, "plan");
    path_join(reportf, sizeof reportf, rundir, "report");
    path_join(errf, sizeof errf, rundir, "client.err");
    path_join(tmpd, sizeof tmpd, rundir, "tmp");
    if (mkdir(tmpd, 0700) != 0)
        return -1;
    static char text[VDI_PLAN_MAX_STATEMENT + 8192];
    size_t tn = vdi_plan_print(p, text, sizeof text);
    if (tn >= sizeof text || write_file(planf, text, tn) != 0) {
        fprintf(stderr, "vdichaos client: cannot write %s\n", planf);
        return -1;
    }
    char set[160];
    snprintf(set, sizeof set, "vdichaos-%ld-%lu", (long)getpid(), run);
    const char *stmt = p->statement[0] ? p->statement : c->statement;
    int nrestore = 0;
    while (c->restore_argv && c->restore_argv[nrestore])
        nrestore++;
    char **argv = substitute_words(c->argv, c->argc, set, rundir);
    char **restore_argv =
        c->restore_argv ? substitute_words(c->restore_argv, nrestore, set, rundir) : NULL;
    char *sql = stmt ? substitute(stmt, set, rundir) : NULL;
    char *media = c->media ? substitute(c->media, set, rundir) : NULL;
    if (!argv || (stmt && !sql) || (c->media && !media) || (c->restore_argv && !restore_argv)) {
        free_words(argv);
        free_words(restore_argv);
        free(sql);
        free(media);
        return -1;
    }
    if (media)
        unlink(media);
    child_env env = {c, rundir, planf, reportf, p, 0, sql ? 2 : 1};
    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &old);

    double t0 = now_s();
    proc ps[2] = {{0, 0, 0}, {0, 0, 0}};
    char sessionf[PATH_MAX + 32];
    path_join(sessionf, sizeof sessionf, rundir, "vdi-sched.session");
    unlink(sessionf); /* a session starts from an empty file */
    ps[0].pid = spawn(&env, argv, "client.out", "client.err");
    if (sql) {
        char *sargv[] = {(char *)c->sqlcmd, "-S", "localhost", "-b", "-Q", sql, NULL};
        env.sched_slot = 1;
        ps[1].pid = spawn(&env, sargv, "server.out", "server.err");
    }
    free_words(argv);
    free(sql);
    if (ps[0].pid < 0) {
        free_words(restore_argv);
        free(media);
        sigprocmask(SIG_SETMASK, &old, NULL);
        fprintf(stderr, "vdichaos client: fork: %s\n", strerror(errno));
        return -1;
    }
    int hung = 0;
    while (!ps[0].done) {
        reap(ps, 2);
        if (ps[0].done)
            break;
        double waited = (now_s() - t0) * 1000.0;
        if (waited >= (double)c->hang_ms) {
            hung = 1;
            break;
        }
        audit_wait_child(20);
    }
    audit_finding *hang = NULL;
    if (hung) {
        /* Busy or blocked: the CPU the client takes over a short window. A blocked client
         * takes next to none (the library waits in 500 ms slices); a spinning one gets
         * some share even on a loaded machine, and under a sanitizer. */
        double cpu0 = cpu_seconds(ps[0].pid), w0 = now_s();
        audit_wait_child(300);
        double cpu = cpu_seconds(ps[0].pid), wall = now_s() - t0;
        double window_cpu = cpu - cpu0, window = now_s() - w0;
        char stackf[PATH_MAX + 16], where[160];
        path_join(stackf, sizeof stackf, rundir, "stacks");
        (void)kill(ps[0].pid, SIGSTOP);
        dump_stacks(c, ps[0].pid, stackf, where, sizeof where);
        int busy = window_cpu >= 0.02 && window_cpu > 0.05 * window;
        char stacks[900];
        stack_excerpt(stackf, stacks, sizeof stacks);
        /* the frames vary with the moment of the dump: in the detail, not the signature */
        hang = add_finding(r, "ends", busy ? "busy-loop" : "hang",
                           "the client did not end within %ld ms (%.1f s of CPU in %.1f s%s)%s%s; "
                           "its threads:\n%s",
                           c->hang_ms, cpu, wall, busy ? ": spinning" : "", where[0] ? ", in " : "",
                           where, stacks);
        kill_group(ps[0].pid);
        (void)kill(ps[0].pid, SIGCONT);
        while (!ps[0].done) {
            reap(ps, 2);
            if (!ps[0].done)
                audit_wait_child(20);
        }
    }
    r->seconds = now_s() - t0;
    int st = ps[0].status;
    r->exited = WIFEXITED(st);
    r->status = r->exited ? WEXITSTATUS(st) : -1;
    r->sig = WIFSIGNALED(st) ? WTERMSIG(st) : 0;

    /* Our own server (a statement run for the client): it ends by itself once the set is
     * closed or its creator died (peer death within 2 s); give it that, then stop it. */
    if (ps[1].pid > 0) {
        double until = now_s() + 5.0;
        while (!ps[1].done && now_s() < until) {
            reap(ps, 2);
            if (!ps[1].done)
                audit_wait_child(20);
        }
        if (!ps[1].done) {
            kill_group(ps[1].pid);
            while (!ps[1].done) {
                reap(ps, 2);
                if (!ps[1].done)
                    audit_wait_child(20);
            }
        }
    }
    /* The scheduler's report is the session's once both processes have left it. */
    if (!hung && p->sched && judge_schedule(c, rundir, r))
        hung = 1; /* the scheduler saw every thread blocked for good: the run is over */
    /* The client's process group: whatever it started and left running. */
    int left_procs = 0;
    /* Leftovers are judged only for a client that ended by itself: one we killed, or one
     * that crashed, cannot clean up, and its hang or crash is the story. */
    int ended_itself = !hung && r_exited_now(ps[0].status);
    if (ended_itself) {
        double until = now_s() + 0.5;
        while (group_alive(ps[0].pid) && now_s() < until) {
            reap(ps, 2);
            audit_wait_child(10);
        }
        reap(ps, 2);
        left_procs = group_alive(ps[0].pid);
    }
    kill_group(ps[0].pid);
    for (int i = 0; i < 100 && group_alive(ps[0].pid); i++) {
        reap(ps, 2);
        audit_wait_child(10);
    }
    reap(ps, 2);
    sigprocmask(SIG_SETMASK, &old, NULL);

    char sset[160] = "";
    read_report(reportf, r, sset, sizeof sset);
    if (!sset[0] && stmt)
        snprintf(sset, sizeof sset, "%s", set);

    /* Oracle 5: no crash, no sanitizer report. */
    if (!hung && r->sig && r->sig != SIGKILL && r->sig != SIGTERM)
        add_finding(r, "crash", signame(r->sig), "the client was killed by %s (%d)",
                    signame(r->sig), r->sig);
    judge_sanitizer(errf, r);
    char auditf[PATH_MAX + 16];
    path_join(auditf, sizeof auditf, rundir, "vdi-audit");
    judge_library_audit(auditf, r);
    /* Oracle 2: the truth. */
    int ok = r->exited && r->status == 0;
    if (!hung && ok && r->server != 1)
        add_finding(r, "truth", "success-after-failure",
                    "the client exited 0, but %s: it presents a %s that did not happen as done",
                    server_story(r->server), r->restore ? "restore" : "backup");
    if (!hung && !ok && vdi_plan_benign(p))
        add_finding(r, "truth", "failed-benign",
                    "the plan has no fault (pauses and ClearError at most), yet the client "
                    "%s%d and %s",
                    r->exited ? "exited " : "was killed by signal ", r->exited ? r->status : r->sig,
                    server_story(r->server));
    char why[800];
    sigprocmask(SIG_BLOCK, &chld, NULL);
    if (!hung && ok && r->server == 1 && !r->restore && restore_argv &&
        !run_clean(c, p, rundir, restore_argv, 1, why, sizeof why))
        add_finding(r, "truth", "backup-does-not-restore",
                    "the backup succeeded, but it does not restore byte for byte: %s", why);
    sigprocmask(SIG_SETMASK, &old, NULL);
    struct stat sb;
    if (media && r->server != 1 && !r->restore && stat(media, &sb) == 0)
        add_finding(r, "truth", "partial-media",
                    "%s, yet the media %s exists (%lld bytes), as a complete backup would",
                    server_story(r->server), c->media, (long long)sb.st_size);
    free_words(restore_argv);
    free(media);
    /* Oracle 6: nothing left behind. */
    char what[900];
    if (ended_itself && left_procs)
        add_finding(r, "leftover", "process",
                    "processes of the client's group were still running after it exited");
    if (shm_left(sset, what, sizeof what) && ended_itself)
        add_finding(r, "leftover", "shm",
                    "the set's shared memory is still there after the client exited: %s (it "
                    "never closed the set)",
                    what);
    if (ended_itself && list_dir(tmpd, what, sizeof what))
        add_finding(r, "leftover", "temp-file", "the client left in its TMPDIR: %s", what);
    (void)hang;
    rm_tree(rundir);
    return 0;
}
