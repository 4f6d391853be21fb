/* tool_common.h: what vdi-client and vdi-server share: the command line, the exit codes,
 * the device names, the one-line error reporting and the monotonic clock. Both tools take
 * the same options so that one option string drives both sides of a backup or restore. */
#ifndef VDI_TOOL_COMMON_H
#define VDI_TOOL_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "vdi/vdi.h"

/* Exit codes, documented in --help and README.md. The first failure decides. */
enum {
    TOOL_EXIT_OK = 0,
    TOOL_EXIT_FAILURE = 1, /* any other VDI or protocol failure */
    TOOL_EXIT_USAGE = 2,   /* bad command line */
    TOOL_EXIT_TIMEOUT = 3, /* the peer did not show up or stopped answering within --timeout */
    TOOL_EXIT_ABORT = 4,   /* the set was aborted (VD_E_ABORT, 995): peer abort or death */
    TOOL_EXIT_IO = 5       /* I/O error on FILE, or a device command failed with an I/O code */
};

enum tool_mode { TOOL_BACKUP = 1, TOOL_RESTORE = 2 };

typedef struct tool_opts {
    enum tool_mode mode;
    const char *set;
    const char *file;
    const char *instance; /* NULL: the default instance */
    uint32_t devices;
    uint32_t block_size;
    uint32_t max_transfer;
    uint32_t buffers;   /* commands in flight per device (server) */
    long timeout_ms;    /* how long to wait for the peer; negative: forever */
    int no_complete;    /* do not negotiate VDC_Complete */
    int ready_fd;       /* -1, or a descriptor that receives progress lines (tests) */
    long stall_after;   /* -1, or stop answering after this many commands (tests) */
    int block_size_set; /* given explicitly on the command line */
    int max_transfer_set;
} tool_opts;

/* Parses argv; on a bad command line prints one line and exits TOOL_EXIT_USAGE, on --help
 * prints the usage and exits 0. */
void tool_parse(int argc, char **argv, const char *prog, const char *role_help, tool_opts *o);

/* Device i's name: the set name for device 0, "SET.i" for the others. */
void tool_device_name(const tool_opts *o, uint32_t i, char *buf, size_t cap);

/* Records a failure with its exit code and prints it as one line on stderr; only the
 * first failure is printed (later ones are usually its consequences) and decides the
 * exit status. Thread-safe. */
void tool_fail(int exit_code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The exit code of a VDI return code that ended an operation. */
int tool_exit_of(int vdi_code);
/* The recorded exit status (TOOL_EXIT_OK when nothing failed). */
int tool_status(void);

/* Writes one line to --ready-fd if one was given (a progress mark for tests). */
void tool_notify(const tool_opts *o, const char *line);
/* Blocks forever: the --stall-after behaviour, a hung peer for the tests. */
_Noreturn void tool_stall(const tool_opts *o);

uint64_t tool_now_ms(void);

/* Opens FILE for reading by position (pread): a regular file or a block device. A
 * directory, FIFO, socket or character device is refused before anything else happens,
 * without blocking in open (a character device such as /dev/zero has no end to read up to;
 * a pipe's end is known only once it is read). The descriptor with *size, or -1 with the
 * failure recorded. */
int tool_input_open_positional(const char *file, uint64_t *size);

/* The file a run writes: the client's backup media, the server's restore output. A
 * regular file (or a new one) is written under no name (O_TMPFILE in its directory, or a
 * temporary name beside it where the file system has no O_TMPFILE) and takes FILE's name
 * only when the whole run succeeded, so a failed or killed run leaves an existing FILE as
 * it was and no temporary file behind. A device (/dev/null, /dev/full, a disk) is written
 * in place. A FIFO or socket is refused: the stream is written by position. */
typedef struct tool_output {
    int fd;
    int direct;      /* a device, written in place */
    int named;       /* the fallback: tmp is a name beside FILE, removed on discard */
    char path[4096]; /* FILE, its symbolic links resolved */
    char tmp[4096 + 32];
} tool_output;

/* Opens FILE for writing as above; the descriptor, or -1 with the failure recorded. */
int tool_output_open(tool_output *out, const char *file);
/* Gives the written file FILE's name (syncing it first); 0, or -1 with the failure recorded
 * and nothing left behind. Closes the descriptor either way. */
int tool_output_commit(tool_output *out);
/* Drops what was written: FILE keeps whatever it held. Closes the descriptor. */
void tool_output_discard(tool_output *out);

#endif /* VDI_TOOL_COMMON_H */
