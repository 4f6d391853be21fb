/* tool_common.c: the command line, exit codes and error reporting shared by vdi-client
 * and vdi-server (see tool_common.h and README.md). */
#include "tool_common.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char common_help[] =
    "Options (both programs take the same ones; give both sides the same values):\n"
    "  --devices N         data streams, 1..64 (default 1)\n"
    "  --block-size B      power of two, 512..65536 (default 65536)\n"
    "  --max-transfer M    bytes per command, a multiple of 65536, at most 64M (default 1M)\n"
    "  --buffers K         commands in flight per device, 1..64 (default 4; server only)\n"
    "  --timeout MS        how long to wait for the peer, ms; -1 waits forever (default 30000)\n"
    "  --instance NAME     VDI instance (default: the default instance)\n"
    "  --no-complete       do not negotiate VDC_Complete (VDF_RequestComplete/CompleteEnabled)\n"
    "  --ready-fd FD       write progress lines to FD (for tests): client 'created' after the\n"
    "                      set exists, server 'waiting' after its first failed open,\n"
    "                      'stalled' when --stall-after takes effect\n"
    "  --stall-after N     stop answering after N commands, as a hung peer would (for tests);\n"
    "                      a client that answered all N also stalls at the set's end\n"
    "  --help              this text\n"
    "  --version           the version\n"
    "Sizes accept K, M and G suffixes (binary).\n"
    "\n"
    "Stream layout: FILE is cut into chunks of --max-transfer bytes; chunk i, at offset\n"
    "i*max-transfer, travels on whichever device is free as one VDC_Write whose position is\n"
    "that offset; the client writes it at that offset of its file. A restore reads by the\n"
    "same positions (VDC_Read, position = offset) until ERROR_HANDLE_EOF. So a backup and a\n"
    "restore with any device counts give back FILE byte for byte.\n"
    "\n"
    "Exit status: 0 success; 1 other VDI failure; 2 bad command line; 3 the peer did not\n"
    "show up or stopped answering within --timeout; 4 the set was aborted (VD_E_ABORT: the\n"
    "peer aborted, closed early or died); 5 I/O error on FILE or a failed device command.\n";

static pthread_mutex_t status_mu = PTHREAD_MUTEX_INITIALIZER;
static int status_code;
static const char *status_prog = "vdi-tool";

static _Noreturn void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static _Noreturn void usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", status_prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (try --help)\n");
    va_end(ap);
    exit(TOOL_EXIT_USAGE);
}

/* A size with an optional binary suffix; rejects anything that does not fit in 32 bits. */
static uint32_t parse_size(const char *opt, const char *s) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *s == '-')
        usage_error("%s: '%s' is not a size", opt, s);
    unsigned shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10;
    else if (*end == 'M' || *end == 'm')
        shift = 20;
    else if (*end == 'G' || *end == 'g')
        shift = 30;
    if (shift)
        end++;
    if (*end != '\0' || v > (UINT32_MAX >> shift))
        usage_error("%s: '%s' is not a size below 4G", opt, s);
    return (uint32_t)(v << shift);
}

static long parse_long(const char *opt, const char *s, long min) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < min)
        usage_error("%s: '%s' is not a number >= %ld", opt, s, min);
    return v;
}

/* VDI-SPEC 2: names are bytes in 0x20..0x7e other than / and \\. */
static int printable_name(const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p > 0x7e || *p == '/' || *p == '\\')
            return 0;
    return 1;
}

static int is_pow2(uint32_t v) {
    return v != 0 && (v & (v - 1)) == 0;
}

void tool_parse(int argc, char **argv, const char *prog, const char *role_help, tool_opts *o) {
    enum {
        O_DEV = 256,
        O_BS,
        O_MT,
        O_BUF,
        O_TMO,
        O_INST,
        O_NOC,
        O_READY,
        O_STALL,
        O_HELP,
        O_VERSION
    };
    static const struct option longopts[] = {
        {"devices", required_argument, NULL, O_DEV},
        {"block-size", required_argument, NULL, O_BS},
        {"max-transfer", required_argument, NULL, O_MT},
        {"buffers", required_argument, NULL, O_BUF},
        {"timeout", required_argument, NULL, O_TMO},
        {"instance", required_argument, NULL, O_INST},
        {"no-complete", no_argument, NULL, O_NOC},
        {"ready-fd", required_argument, NULL, O_READY},
        {"stall-after", required_argument, NULL, O_STALL},
        {"help", no_argument, NULL, O_HELP},
        {"version", no_argument, NULL, O_VERSION},
        {NULL, 0, NULL, 0},
    };
    status_prog = prog;
    memset(o, 0, sizeof *o);
    o->devices = 1;
    o->block_size = 65536;
    o->max_transfer = 1u << 20;
    o->buffers = 4;
    o->timeout_ms = 30000;
    o->ready_fd = -1;
    o->stall_after = -1;

    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        const char *name = optind > 1 ? argv[optind - 1] : "option";
        switch (c) {
        case O_DEV: {
            long v = parse_long("--devices", optarg, 1);
            if (v > VDI_MAX_DEVICES)
                usage_error("--devices: %ld is above %d", v, VDI_MAX_DEVICES);
            o->devices = (uint32_t)v;
            break;
        }
        case O_BS:
            o->block_size = parse_size("--block-size", optarg);
            o->block_size_set = 1;
            if (!is_pow2(o->block_size) || o->block_size < VDI_MIN_BLOCK_SIZE ||
                o->block_size > VDI_MAX_BLOCK_SIZE)
                usage_error("--block-size: %s is not a power of two from 512 to 65536", optarg);
            break;
        case O_MT:
            o->max_transfer = parse_size("--max-transfer", optarg);
            o->max_transfer_set = 1;
            if (o->max_transfer == 0 || o->max_transfer % VDI_TRANSFER_UNIT != 0 ||
                o->max_transfer > (64u << 20))
                usage_error("--max-transfer: %s is not a multiple of 65536 up to 64M", optarg);
            break;
        case O_BUF: {
            long v = parse_long("--buffers", optarg, 1);
            if (v > VDI_MAX_OUTSTANDING)
                usage_error("--buffers: %ld is above %d", v, VDI_MAX_OUTSTANDING);
            o->buffers = (uint32_t)v;
            break;
        }
        case O_TMO:
            o->timeout_ms = parse_long("--timeout", optarg, -1);
            break;
        case O_INST:
            if (optarg[0] == '\0' || strlen(optarg) > VDI_MAX_INSTANCE)
                usage_error("--instance: '%s' is not 1..%d bytes", optarg, VDI_MAX_INSTANCE);
            if (!printable_name(optarg))
                usage_error("--instance may hold printable ASCII other than / and \\ only");
            o->instance = optarg;
            break;
        case O_NOC:
            o->no_complete = 1;
            break;
        case O_READY: {
            long v = parse_long("--ready-fd", optarg, 0);
            if (v > INT_MAX || fcntl((int)v, F_GETFD) < 0)
                usage_error("--ready-fd: %s is not an open file descriptor", optarg);
            o->ready_fd = (int)v;
            break;
        }
        case O_STALL:
            o->stall_after = parse_long("--stall-after", optarg, 0);
            break;
        case 'h':
        case O_HELP:
            printf("usage: %s backup|restore SET FILE [options]\n%s\n%s", prog, role_help,
                   common_help);
            exit(TOOL_EXIT_OK);
        case O_VERSION:
            printf("%s (vdichaos) %s\n", prog, VDICHAOS_VERSION);
            exit(TOOL_EXIT_OK);
        case ':':
            usage_error("%s needs a value", name);
        default:
            usage_error("unknown option '%s'", name);
        }
    }
    if (argc - optind != 3)
        usage_error("expected backup|restore SET FILE, got %d argument(s)", argc - optind);
    const char *mode = argv[optind];
    if (strcmp(mode, "backup") == 0)
        o->mode = TOOL_BACKUP;
    else if (strcmp(mode, "restore") == 0)
        o->mode = TOOL_RESTORE;
    else
        usage_error("'%s' is neither backup nor restore", mode);
    o->set = argv[optind + 1];
    o->file = argv[optind + 2];
    size_t len = strlen(o->set);
    /* Device names are SET.i: the longest must still be a valid name. */
    size_t suffix = o->devices > 10 ? 3 : o->devices > 1 ? 2 : 0;
    if (len == 0 || len + suffix > VDI_MAX_NAME)
        usage_error("set name must be 1..%zu bytes with %u devices", VDI_MAX_NAME - suffix,
                    o->devices);
    if (!printable_name(o->set))
        usage_error("set name may hold printable ASCII other than / and \\ only");
    if (o->file[0] == '\0')
        usage_error("FILE is empty");
}

void tool_device_name(const tool_opts *o, uint32_t i, char *buf, size_t cap) {
    if (i == 0)
        snprintf(buf, cap, "%s", o->set);
    else
        snprintf(buf, cap, "%s.%" PRIu32, o->set, i);
}

void tool_fail(int exit_code, const char *fmt, ...) {
    pthread_mutex_lock(&status_mu);
    if (status_code == TOOL_EXIT_OK) {
        status_code = exit_code;
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "%s: ", status_prog);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
    pthread_mutex_unlock(&status_mu);
}

int tool_exit_of(int vdi_code) {
    switch (vdi_code) {
    case NOERROR:
        return TOOL_EXIT_OK;
    case VD_E_TIMEOUT:
        return TOOL_EXIT_TIMEOUT;
    case VD_E_ABORT:
        return TOOL_EXIT_ABORT;
    case VD_E_IO_ERROR:
        return TOOL_EXIT_IO;
    default:
        return TOOL_EXIT_FAILURE;
    }
}

int tool_status(void) {
    pthread_mutex_lock(&status_mu);
    int s = status_code;
    pthread_mutex_unlock(&status_mu);
    return s;
}

void tool_notify(const tool_opts *o, const char *line) {
    if (o->ready_fd < 0)
        return;
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%s\n", line);
    /* A test that stopped listening is not our failure. */
    if (n > 0 && write(o->ready_fd, buf, (size_t)n) < 0)
        return;
}

_Noreturn void tool_stall(const tool_opts *o) {
    tool_notify(o, "stalled");
    for (;;)
        pause();
}

uint64_t tool_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- the input file --------------------------------------------------------------------- */

int tool_input_open_positional(const char *file, uint64_t *size) {
    /* O_NONBLOCK: a FIFO must not block the open; it is refused below anyway. */
    int fd = open(file, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        tool_fail(TOOL_EXIT_IO, "%s: %s", file, strerror(errno));
        goto fail;
    }
    if (S_ISDIR(st.st_mode)) {
        tool_fail(TOOL_EXIT_IO, "%s: is a directory", file);
        goto fail;
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        tool_fail(TOOL_EXIT_IO,
                  "%s: is a %s; it is read by position, give a regular file or a block device",
                  file, S_ISCHR(st.st_mode) ? "character device" : "FIFO or socket");
        goto fail;
    }
    int fl = fcntl(fd, F_GETFL);
    /* A block device's st_size is 0: its size is where its end is. */
    off_t end = S_ISBLK(st.st_mode) ? lseek(fd, 0, SEEK_END) : st.st_size;
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0 || end < 0) {
        tool_fail(TOOL_EXIT_IO, "%s: %s", file, strerror(errno));
        goto fail;
    }
    *size = (uint64_t)end;
    return fd;
fail:
    if (fd >= 0)
        close(fd);
    return -1;
}

/* ---- the output file: written unnamed, named on success ---------------------------------- */

/* The named fallback: a temporary name beside FILE (same file system, so rename works). */
static int open_named_tmp(tool_output *out, mode_t mode) {
    snprintf(out->tmp, sizeof out->tmp, "%s.tmp-XXXXXX", out->path);
    int fd = mkostemp(out->tmp, O_CLOEXEC);
    if (fd < 0)
        return -1;
    out->named = 1;
    if (fchmod(fd, mode) != 0) {
        /* mkostemp's 0600 is the safe side of any mode FILE could have had */
    }
    return fd;
}

int tool_output_open(tool_output *out, const char *file) {
    memset(out, 0, sizeof *out);
    out->fd = -1;
    struct stat st;
    int exists = stat(file, &st) == 0;
    if (!exists && errno != ENOENT) {
        tool_fail(TOOL_EXIT_IO, "%s: %s", file, strerror(errno));
        return -1;
    }
    if (exists && S_ISDIR(st.st_mode)) {
        tool_fail(TOOL_EXIT_IO, "%s: is a directory", file);
        return -1;
    }
    if (exists && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) {
        tool_fail(TOOL_EXIT_IO,
                  "%s: is a FIFO or socket; the stream is written by position, give a regular "
                  "file or a device",
                  file);
        return -1;
    }
    if (exists && (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))) {
        out->direct = 1;
        out->fd = open(file, O_WRONLY | O_CLOEXEC);
        if (out->fd < 0)
            tool_fail(TOOL_EXIT_IO, "%s: %s", file, strerror(errno));
        return out->fd;
    }
    /* A regular file or a new one. An existing FILE we may not write stays refused, as the
     * open for writing that this replaces would have refused it. */
    if (exists && access(file, W_OK) != 0) {
        tool_fail(TOOL_EXIT_IO, "%s: %s", file, strerror(errno));
        return -1;
    }
    if (exists ? realpath(file, out->path) == NULL
               : snprintf(out->path, sizeof out->path, "%s", file) >= (int)sizeof out->path) {
        tool_fail(TOOL_EXIT_IO, "%s: %s", file, exists ? strerror(errno) : "path too long");
        return -1;
    }
    mode_t mask = umask(0);
    umask(mask);
    mode_t mode = exists ? (st.st_mode & 07777) : (0644 & ~mask);
    char dir[sizeof out->path];
    snprintf(dir, sizeof dir, "%s", out->path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    /* O_TMPFILE is named later through /proc/self/fd (linkat with AT_EMPTY_PATH needs a
     * privilege); without /proc, or on a file system without O_TMPFILE, a named fallback. */
    int fd = -1, unnamed = access("/proc/self/fd", X_OK) == 0;
    if (unnamed) {
        fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, mode);
        if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL))
            unnamed = 0;
        if (fd >= 0 && exists && fchmod(fd, mode) != 0) {
            /* the umask's mode then; the data is the same */
        }
    }
    if (!unnamed)
        fd = open_named_tmp(out, mode);
    if (fd < 0) {
        tool_fail(TOOL_EXIT_IO, "%s: %s", file, strerror(errno));
        return -1;
    }
    out->fd = fd;
    return fd;
}

int tool_output_commit(tool_output *out) {
    int fd = out->fd;
    out->fd = -1;
    if (out->direct) {
        if (close(fd) == 0)
            return 0;
        tool_fail(TOOL_EXIT_IO, "%s: %s", out->path, strerror(errno));
        return -1;
    }
    const char *what = "syncing";
    if (fdatasync(fd) != 0)
        goto fail;
    if (!out->named) {
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        what = "naming";
        for (unsigned k = 0;; k++) {
            snprintf(out->tmp, sizeof out->tmp, "%s.tmp-%ld-%u", out->path, (long)getpid(), k);
            if (linkat(AT_FDCWD, proc, AT_FDCWD, out->tmp, AT_SYMLINK_FOLLOW) == 0)
                break;
            if (errno != EEXIST || k == 99)
                goto fail;
        }
        out->named = 1;
    }
    what = "closing";
    int rc = close(fd);
    fd = -1;
    if (rc != 0)
        goto fail;
    what = "renaming";
    if (rename(out->tmp, out->path) != 0)
        goto fail;
    out->named = 0;
    return 0;
fail:
    tool_fail(TOOL_EXIT_IO, "%s %s: %s", what, out->path, strerror(errno));
    if (fd >= 0)
        close(fd);
    if (out->named)
        unlink(out->tmp);
    out->named = 0;
    return -1;
}

void tool_output_discard(tool_output *out) {
    if (out->fd >= 0)
        close(out->fd);
    out->fd = -1;
    if (out->named)
        unlink(out->tmp);
    out->named = 0;
}
