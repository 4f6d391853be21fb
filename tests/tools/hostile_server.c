/* hostile_server: a server for the vdi-client tests that plays a backup the way vdi-server
 * does (position-addressed VDC_Write chunks, then VDC_Flush and VDC_Complete on every
 * device) and then misbehaves: with --after-complete it sends one more command on one
 * device once that device's VDC_Complete has completed, which vdi-server never does. It
 * prints every completion code it got on stdout, one line per command ("DEVICE COMMAND
 * CODE"), so that a test can assert exactly what the client answered.
 *
 * It drives the devices one after the other, one command in flight, so that the order of
 * the commands the client sees is fixed: device 0's chunks (0, N, 2N, ...), its flush, its
 * VDC_Complete, then device 1's, and so on; the extra command follows the VDC_Complete of
 * --late-device (default: the last device, so after the client named its media).
 *
 * With --hold-fd FD it says "holding" on --ready-fd before the last device's VDC_Complete
 * and waits for one byte on FD, so that a test can change the media's directory then.
 *
 * "clear" sends VDC_ClearError, the one command a device in the I/O-error state (its
 * VDC_Complete answered ERROR_IO_DEVICE) still takes: it shows whether the client is still
 * there to answer after a failed VDC_Complete.
 *
 * usage: hostile_server backup SET FILE [vdi-server options]
 *            [--after-complete write|flush|complete|clear|none] [--late-device K]
 *            [--hold-fd FD] */
#include "tool_common.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LATE_WRITE_SIZE 4096 /* the late VDC_Write: bytes of 0xEE at position 0 */

typedef struct hostile {
    tool_opts o;
    int32_t late_code; /* 0: none, else the command sent after the VDC_Complete */
    uint32_t late_device;
    int hold_fd; /* -1, or where a byte comes from before the last device's VDC_Complete */
    vdi_server_set *set;
    vdi_server_device *dev[VDI_MAX_DEVICES];
    int fd;
    uint64_t file_size;
    uint8_t *buf;
    pthread_t agent;
    int agent_rc;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done; /* the command in flight was called back; under mu */
} hostile;

static hostile h;

static const char *name_of(int32_t code) {
    return code == VDC_Write      ? "VDC_Write"
           : code == VDC_Flush    ? "VDC_Flush"
           : code == VDC_Complete ? "VDC_Complete"
                                  : "VDC_ClearError";
}

/* Runs on the agent's thread, or synchronously inside a rejected send. */
static void on_done(VDS_Command *cmd) {
    (void)cmd;
    pthread_mutex_lock(&h.mu);
    h.done = 1;
    pthread_cond_signal(&h.cv);
    pthread_mutex_unlock(&h.mu);
}

/* Waits up to timeout_ms for the callback; 0 once it came. */
static int wait_done(long timeout_ms) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&h.mu);
    int rc = 0;
    while (!h.done && rc != ETIMEDOUT)
        rc = timeout_ms < 0 ? pthread_cond_wait(&h.cv, &h.mu)
                            : pthread_cond_timedwait(&h.cv, &h.mu, &until);
    int got = h.done;
    pthread_mutex_unlock(&h.mu);
    return got ? 0 : -1;
}

/* Sends one command on device i, waits for its completion and prints its code; the code,
 * or -1 when the send was refused without a callback (a failure is recorded). */
static long command(uint32_t i, int32_t code, uint64_t pos, uint32_t len) {
    VDS_Command cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.commandCode = code;
    cmd.size = (int32_t)len;
    cmd.inPosition = (int64_t)pos;
    cmd.buffer = code == VDC_Write ? h.buf : NULL;
    cmd.completionRoutine = on_done;
    h.done = 0; /* nothing is in flight: the agent does not touch it now */
    int rc = vdi_server_device_send_command(h.dev[i], &cmd);
    if (rc != NOERROR && !h.done) {
        tool_fail(tool_exit_of(rc), "device %u: send_command: %s", i, vdi_strerror(rc));
        return -1;
    }
    if (wait_done(h.o.timeout_ms) != 0) {
        tool_fail(TOOL_EXIT_TIMEOUT, "device %u: no completion within %ld ms", i, h.o.timeout_ms);
        (void)vdi_server_set_signal_abort(h.set);
        (void)wait_done(-1); /* the drain answers it, promptly */
    }
    printf("%u %s %u\n", i, name_of(code), cmd.completionCode);
    return cmd.completionCode;
}

/* Device i's share of the stream (chunks i, i+N, ...), its flush, its VDC_Complete and, on
 * the late device, the extra command. A failed write or flush ends the play, as vdi-server
 * would stop; whatever VDC_Complete is answered, the play goes on (the codes are the
 * test's to judge). */
static int play_device(uint32_t i) {
    uint64_t xfer = h.o.max_transfer;
    for (uint64_t off = i * xfer; off < h.file_size; off += h.o.devices * xfer) {
        uint32_t len = (uint32_t)(h.file_size - off < xfer ? h.file_size - off : xfer);
        if (pread(h.fd, h.buf, len, (off_t)off) != (ssize_t)len) {
            tool_fail(TOOL_EXIT_IO, "reading %s at offset %llu", h.o.file, (unsigned long long)off);
            return -1;
        }
        if (command(i, VDC_Write, off, len) != ERROR_SUCCESS)
            return -1;
    }
    if (command(i, VDC_Flush, 0, 0) != ERROR_SUCCESS)
        return -1;
    if (h.hold_fd >= 0 && i + 1 == h.o.devices) {
        char go;
        tool_notify(&h.o, "holding");
        if (read(h.hold_fd, &go, 1) != 1) {
            tool_fail(TOOL_EXIT_FAILURE, "--hold-fd: no go");
            return -1;
        }
    }
    if (command(i, VDC_Complete, 0, 0) < 0)
        return -1;
    if (h.late_code && i == h.late_device) {
        memset(h.buf, 0xEE, LATE_WRITE_SIZE);
        if (command(i, h.late_code, 0, h.late_code == VDC_Write ? LATE_WRITE_SIZE : 0) < 0)
            return -1;
    }
    return 0;
}

static void *agent_main(void *arg) {
    (void)arg;
    h.agent_rc = vdi_server_set_execute_completion_agent(h.set);
    return NULL;
}

static void ignore_routine(VDS_Command *cmd) {
    (void)cmd;
}

/* A malformed command (code 999) is answered PROTOCOL while no agent runs and INVALID
 * once one does, with a synchronous callback and nothing queued either way. */
static int wait_agent_running(void) {
    for (unsigned long tries = 0; tries < 50000000ul; tries++) {
        VDS_Command probe;
        memset(&probe, 0, sizeof probe);
        probe.commandCode = 999;
        probe.completionRoutine = ignore_routine;
        int rc = vdi_server_device_send_command(h.dev[0], &probe);
        if (rc == VD_E_INVALID)
            return 0;
        if (rc != VD_E_PROTOCOL)
            break;
        sched_yield();
    }
    tool_fail(TOOL_EXIT_FAILURE, "the completion agent did not start");
    return -1;
}

/* Open (the client is already there), configure for a backup with VDC_Complete, open
 * every device; 0 or -1 with the failure recorded. */
static int set_up(void) {
    VDConfig cfg;
    int rc = vdi_server_set_open(h.set, h.o.instance, h.o.set);
    if (rc == NOERROR)
        rc = vdi_server_set_get_configuration(h.set, &cfg);
    if (rc == NOERROR &&
        (cfg.deviceCount != h.o.devices || !(cfg.features & VDF_RequestComplete))) {
        tool_fail(TOOL_EXIT_FAILURE, "the client's set is not a %u-device set with VDC_Complete",
                  h.o.devices);
        return -1;
    }
    if (rc == NOERROR)
        rc =
            vdi_server_set_begin_configuration(h.set, VDF_WriteMedia | VDF_CompleteEnabled,
                                               h.o.block_size, 0, h.o.max_transfer, h.o.timeout_ms);
    if (rc == NOERROR)
        rc = vdi_server_set_request_buffers(h.set, h.o.max_transfer, 0, 1);
    if (rc == NOERROR)
        rc = vdi_server_set_end_configuration(h.set);
    for (uint32_t i = 0; rc == NOERROR && i < h.o.devices; i++) {
        char name[VDI_MAX_NAME + 1];
        tool_device_name(&h.o, i, name, sizeof name);
        rc = vdi_server_set_open_device(h.set, name, &h.dev[i]);
    }
    if (rc == NOERROR)
        rc = vdi_server_set_allocate_buffer(h.set, &h.buf, h.o.max_transfer, 0);
    if (rc != NOERROR) {
        tool_fail(tool_exit_of(rc), "setting up set '%s': %s", h.o.set, vdi_strerror(rc));
        return -1;
    }
    return 0;
}

static void run(void) {
    if (set_up() != 0)
        return;
    if (pthread_create(&h.agent, NULL, agent_main, NULL) != 0) {
        tool_fail(TOOL_EXIT_FAILURE, "cannot start the agent thread");
        return;
    }
    int ok = wait_agent_running() == 0;
    for (uint32_t i = 0; ok && i < h.o.devices; i++)
        ok = play_device(i) == 0;
    for (uint32_t i = 0; ok && i < h.o.devices; i++) {
        int rc = vdi_server_device_close(h.dev[i]);
        if (rc != NOERROR) {
            tool_fail(tool_exit_of(rc), "closing device %u: %s", i, vdi_strerror(rc));
            ok = 0;
        }
    }
    if (!ok)
        (void)vdi_server_set_signal_abort(h.set); /* the agent cannot end normally any more */
    pthread_join(h.agent, NULL);
    if (h.agent_rc != NOERROR)
        tool_fail(tool_exit_of(h.agent_rc), "completion agent: %s", vdi_strerror(h.agent_rc));
}

/* Takes this program's own options out of argv (the rest is vdi-server's command line). */
static int take_options(int *argc, char **argv) {
    int n = 1;
    h.late_device = UINT32_MAX;
    h.hold_fd = -1;
    for (int i = 1; i < *argc; i++) {
        if (strcmp(argv[i], "--after-complete") == 0 && i + 1 < *argc) {
            const char *v = argv[++i];
            h.late_code = strcmp(v, "write") == 0      ? VDC_Write
                          : strcmp(v, "flush") == 0    ? VDC_Flush
                          : strcmp(v, "complete") == 0 ? VDC_Complete
                          : strcmp(v, "clear") == 0    ? VDC_ClearError
                          : strcmp(v, "none") == 0     ? 0
                                                       : -1;
            if (h.late_code < 0)
                return -1;
        } else if (strcmp(argv[i], "--late-device") == 0 && i + 1 < *argc) {
            char *end;
            h.late_device = (uint32_t)strtoul(argv[++i], &end, 10);
            if (*end)
                return -1;
        } else if (strcmp(argv[i], "--hold-fd") == 0 && i + 1 < *argc) {
            char *end;
            h.hold_fd = (int)strtol(argv[++i], &end, 10);
            if (*end || h.hold_fd < 0)
                return -1;
        } else {
            argv[n++] = argv[i];
        }
    }
    argv[n] = NULL;
    *argc = n;
    return 0;
}

int main(int argc, char **argv) {
    if (take_options(&argc, argv) != 0) {
        fprintf(stderr, "hostile_server: bad --after-complete, --late-device or --hold-fd\n");
        return TOOL_EXIT_USAGE;
    }
    tool_parse(argc, argv, "hostile_server", "A misbehaving backup server for tests.\n", &h.o);
    if (h.late_device == UINT32_MAX)
        h.late_device = h.o.devices - 1;
    if (h.o.mode != TOOL_BACKUP || h.late_device >= h.o.devices) {
        fprintf(stderr, "hostile_server: plays a backup only, on --late-device < --devices\n");
        return TOOL_EXIT_USAGE;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* each line out as it happens */
    pthread_mutex_init(&h.mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h.cv, &ca);
    pthread_condattr_destroy(&ca);
    h.fd = tool_input_open_positional(h.o.file, &h.file_size);
    if (h.fd < 0)
        return tool_status();
    h.set = vdi_server_set_new();
    if (!h.set) {
        tool_fail(TOOL_EXIT_FAILURE, "out of memory");
        return tool_status();
    }
    run();
    int rc = vdi_server_set_close(h.set);
    if (rc != NOERROR)
        tool_fail(tool_exit_of(rc), "closing the set: %s", vdi_strerror(rc));
    vdi_server_set_free(h.set);
    close(h.fd);
    fflush(stdout);
    return tool_status();
}
