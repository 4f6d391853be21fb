/* vdi-server: plays SQL Server. It opens a virtual device set that vdi-client created
 * (retrying until it exists or --timeout passes), configures it, runs the completion agent
 * on a thread of its own and drives every device from a thread that keeps up to --buffers
 * commands in flight: a backup streams FILE as position-addressed VDC_Write commands, then
 * VDC_Flush (and VDC_Complete when negotiated); a restore issues VDC_Read by position until
 * ERROR_HANDLE_EOF and writes FILE. */
#include "tool_common.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define QCAP 128 /* completion queue of a device: more than its slots */

typedef struct server server;
typedef struct sdev sdev;

/* One VDS_Command and the buffer it carries; a device owns --buffers of them plus one
 * for the control commands (flush, complete). */
typedef struct slot {
    VDS_Command cmd;
    sdev *d;
    uint8_t *buf;
    uint64_t off;
    uint32_t len;
    int busy;
    int queued; /* set by the routine, under d->mu */
    unsigned idx;
} slot;

struct sdev {
    server *s;
    uint32_t index;
    char name[VDI_MAX_NAME + 1];
    vdi_server_device *dev;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned q[QCAP]; /* completed slots, filled by the routine on the agent's thread */
    unsigned qhead, qtail;
    unsigned inflight; /* touched by the device thread only */
    slot slots[VDI_MAX_OUTSTANDING + 1];
};

struct server {
    tool_opts o;
    vdi_server_set *set;
    int fd;
    tool_output out;    /* restore: the output file */
    uint64_t file_size; /* backup */
    int complete;       /* VDC_Complete negotiated */
    atomic_ulong next_chunk;
    atomic_ullong eof_at; /* restore: first offset known to be past the end */
    atomic_long completions;
    atomic_int stopped;
    int agent_rc;
    pthread_t agent;
    sdev devs[VDI_MAX_DEVICES];
};

static const char server_help[] =
    "Plays SQL Server: opens the virtual device set SET that vdi-client created.\n"
    "  backup:  streams FILE to the client as VDC_Write commands, then VDC_Flush and\n"
    "           (when negotiated) VDC_Complete on every device\n"
    "  restore: issues VDC_Read until ERROR_HANDLE_EOF and writes what it gets to FILE\n"
    "Start it before or after vdi-client; it retries the open until the set exists or\n"
    "--timeout passes, and gives up on a client that stops completing for --timeout.\n";

static void server_stop(server *s) {
    if (atomic_exchange(&s->stopped, 1) == 0)
        (void)vdi_server_set_signal_abort(s->set);
}

static int stopped(server *s) {
    return atomic_load(&s->stopped);
}

/* The completion routine: runs on the agent's thread (or synchronously inside a rejected
 * send); it only queues the slot so that the device thread does the work. */
static void on_done(VDS_Command *cmd) {
    slot *sl = cmd->completionContext;
    sdev *d = sl->d;
    pthread_mutex_lock(&d->mu);
    sl->queued = 1;
    d->q[d->qtail++ % QCAP] = sl->idx;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

static void send_slot(sdev *d, slot *sl, int32_t code, int64_t pos, uint32_t len) {
    memset(&sl->cmd, 0, sizeof sl->cmd);
    sl->cmd.commandCode = code;
    sl->cmd.size = (int32_t)len;
    sl->cmd.inPosition = pos;
    sl->cmd.buffer = (code == VDC_Write || code == VDC_Read) ? sl->buf : NULL;
    sl->cmd.completionRoutine = on_done;
    sl->cmd.completionContext = sl;
    sl->busy = 1;
    sl->queued = 0;
    d->inflight++;
    int rc = vdi_server_device_send_command(d->dev, &sl->cmd);
    if (rc == NOERROR)
        return;
    pthread_mutex_lock(&d->mu);
    int called_back = sl->queued;
    pthread_mutex_unlock(&d->mu);
    if (!called_back) { /* rejected before any callback: nothing will come */
        d->inflight--;
        sl->busy = 0;
        tool_fail(tool_exit_of(rc), "device '%s': send_command: %s", d->name, vdi_strerror(rc));
        server_stop(d->s);
    }
}

/* Waits for the next completed slot; NULL when timeout_ms passed without one. */
static slot *wait_done(sdev *d, long timeout_ms) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    if (timeout_ms >= 0) {
        until.tv_sec += timeout_ms / 1000;
        until.tv_nsec += (timeout_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&d->mu);
    while (d->qhead == d->qtail) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&d->cv, &d->mu);
        } else if (pthread_cond_timedwait(&d->cv, &d->mu, &until) == ETIMEDOUT &&
                   d->qhead == d->qtail) {
            pthread_mutex_unlock(&d->mu);
            return NULL;
        }
    }
    slot *sl = &d->slots[d->q[d->qhead++ % QCAP]];
    pthread_mutex_unlock(&d->mu);
    d->inflight--;
    sl->busy = 0;
    return sl;
}

/* The next chunk of the stream: offset and length; 0 when there is none. */
static int next_chunk(server *s, uint64_t *off, uint32_t *len) {
    uint64_t xfer = s->o.max_transfer;
    uint64_t i = atomic_fetch_add(&s->next_chunk, 1);
    *off = i * xfer;
    if (s->o.mode == TOOL_BACKUP) {
        if (*off >= s->file_size)
            return 0;
        uint64_t left = s->file_size - *off;
        *len = (uint32_t)(left < xfer ? left : xfer);
        return 1;
    }
    *len = (uint32_t)xfer;
    return *off < atomic_load(&s->eof_at);
}

static void note_eof(server *s, uint64_t at) {
    unsigned long long cur = atomic_load(&s->eof_at);
    while (at < cur && !atomic_compare_exchange_weak(&s->eof_at, &cur, at)) {
    }
}

static int fill(sdev *d, slot *sl) {
    server *s = d->s;
    size_t got = 0;
    while (got < sl->len) {
        ssize_t n = pread(s->fd, sl->buf + got, sl->len - got, (off_t)(sl->off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            tool_fail(TOOL_EXIT_IO, "reading %s at offset %llu: %s", s->o.file,
                      (unsigned long long)(sl->off + got), n < 0 ? strerror(errno) : "file shrank");
            return -1;
        }
        got += (size_t)n;
    }
    return 0;
}

static int store(sdev *d, slot *sl, uint32_t bytes) {
    server *s = d->s;
    size_t put = 0;
    while (put < bytes) {
        ssize_t n = pwrite(s->fd, sl->buf + put, bytes - put, (off_t)(sl->off + put));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            tool_fail(TOOL_EXIT_IO, "writing %s at offset %llu: %s", s->o.file,
                      (unsigned long long)(sl->off + put), n < 0 ? strerror(errno) : "no space");
            return -1;
        }
        put += (size_t)n;
    }
    return 0;
}

static const char *code_name(int32_t code) {
    return code == VDC_Write   ? "VDC_Write"
           : code == VDC_Read  ? "VDC_Read"
           : code == VDC_Flush ? "VDC_Flush"
                               : "VDC_Complete";
}

/* Acts on one completion; -1 stops the device. */
static int handle(sdev *d, slot *sl) {
    server *s = d->s;
    uint32_t code = sl->cmd.completionCode;
    uint32_t bytes = sl->cmd.bytesTransferred;
    int32_t what = sl->cmd.commandCode;
    if (code == ERROR_OPERATION_ABORTED) {
        tool_fail(TOOL_EXIT_ABORT, "device '%s': %s aborted (the set was aborted)", d->name,
                  code_name(what));
        return -1;
    }
    if (what == VDC_Read && (code == ERROR_SUCCESS || code == ERROR_HANDLE_EOF)) {
        if (bytes > sl->len) { /* the library refuses this; never trust it blindly */
            tool_fail(TOOL_EXIT_FAILURE, "device '%s': VDC_Read of %u bytes answered %u", d->name,
                      sl->len, bytes);
            return -1;
        }
        if (bytes < sl->len || code == ERROR_HANDLE_EOF)
            note_eof(s, sl->off + bytes);
        if (bytes > 0 && store(d, sl, bytes) != 0)
            return -1;
    } else if (code != ERROR_SUCCESS || (what == VDC_Write && bytes != sl->len)) {
        tool_fail(code == ERROR_INVALID_HANDLE || code == ERROR_INVALID_PARAMETER
                      ? TOOL_EXIT_FAILURE
                      : TOOL_EXIT_IO,
                  "device '%s': %s at offset %llu failed: code %u, %u of %u bytes", d->name,
                  code_name(what), (unsigned long long)sl->off, code, bytes, sl->len);
        return -1;
    }
    long n = atomic_fetch_add(&s->completions, 1) + 1;
    if (s->o.stall_after >= 0 && n >= s->o.stall_after)
        tool_stall(&s->o);
    return 0;
}

/* Waits for one completion, turning a silent client into a timeout failure. */
static slot *wait_or_stop(sdev *d) {
    server *s = d->s;
    slot *sl = wait_done(d, s->o.timeout_ms);
    if (!sl && !stopped(s)) {
        tool_fail(TOOL_EXIT_TIMEOUT, "device '%s': the client completed nothing within %ld ms",
                  d->name, s->o.timeout_ms);
        server_stop(s);
        sl = wait_done(d, s->o.timeout_ms); /* the drain answers promptly */
    }
    return sl;
}

static void control(sdev *d, int32_t code) {
    slot *ctl = &d->slots[d->s->o.buffers];
    ctl->off = 0;
    ctl->len = 0;
    send_slot(d, ctl, code, 0, 0);
    while (d->inflight > 0) {
        slot *sl = wait_or_stop(d);
        if (!sl || handle(d, sl) != 0) {
            server_stop(d->s);
            return;
        }
    }
}

static void *device_main(void *arg) {
    sdev *d = arg;
    server *s = d->s;
    uint32_t nbuf = s->o.buffers;
    for (uint32_t k = 0; k < nbuf; k++) {
        int rc = vdi_server_set_allocate_buffer(s->set, &d->slots[k].buf, s->o.max_transfer, 0);
        if (rc != NOERROR) {
            tool_fail(tool_exit_of(rc), "allocate_buffer: %s", vdi_strerror(rc));
            server_stop(s);
            return NULL;
        }
    }
    for (;;) {
        for (uint32_t k = 0; k < nbuf && !stopped(s); k++) {
            slot *sl = &d->slots[k];
            if (sl->busy || !next_chunk(s, &sl->off, &sl->len))
                continue;
            if (s->o.mode == TOOL_BACKUP && fill(d, sl) != 0) {
                server_stop(s);
                break;
            }
            send_slot(d, sl, s->o.mode == TOOL_BACKUP ? VDC_Write : VDC_Read, (int64_t)sl->off,
                      sl->len);
        }
        if (d->inflight == 0)
            break;
        slot *sl = wait_or_stop(d);
        if (!sl)
            return NULL; /* even the drain did not come; close sorts it out */
        if (handle(d, sl) != 0)
            server_stop(s);
    }
    if (stopped(s))
        return NULL;
    if (s->o.mode == TOOL_BACKUP) {
        control(d, VDC_Flush);
        if (s->complete && !stopped(s))
            control(d, VDC_Complete);
    }
    if (stopped(s))
        return NULL;
    int rc = vdi_server_device_close(d->dev);
    if (rc != NOERROR) {
        tool_fail(tool_exit_of(rc), "closing device '%s': %s", d->name, vdi_strerror(rc));
        server_stop(s);
    }
    return NULL;
}

static void *agent_main(void *arg) {
    server *s = arg;
    s->agent_rc = vdi_server_set_execute_completion_agent(s->set);
    return NULL;
}

static void ignore_routine(VDS_Command *cmd) {
    (void)cmd;
}

/* Nothing in the API says that the agent runs; a malformed command (code 999) is
 * answered PROTOCOL while none runs and INVALID once one does, with a synchronous
 * callback and nothing queued either way. */
static int wait_agent_running(server *s) {
    for (int tries = 0; tries < 10000; tries++) {
        VDS_Command probe;
        memset(&probe, 0, sizeof probe);
        probe.commandCode = 999;
        probe.completionRoutine = ignore_routine;
        int rc = vdi_server_device_send_command(s->devs[0].dev, &probe);
        if (rc == VD_E_INVALID)
            return 0;
        if (rc != VD_E_PROTOCOL) {
            tool_fail(tool_exit_of(rc), "starting the completion agent: %s", vdi_strerror(rc));
            return -1;
        }
        poll(NULL, 0, 1);
    }
    tool_fail(TOOL_EXIT_FAILURE, "the completion agent did not start");
    return -1;
}

/* Retries the open while the set does not exist yet, in slices of at most 100 ms. */
static int open_set(server *s) {
    uint64_t start = tool_now_ms();
    int step = 5, said = 0;
    for (;;) {
        int rc = vdi_server_set_open(s->set, s->o.instance, s->o.set);
        if (rc == NOERROR)
            return 0;
        if (rc != VD_E_INVALID) {
            tool_fail(tool_exit_of(rc), "opening set '%s': %s%s", s->o.set, vdi_strerror(rc),
                      rc == VD_E_BUSY ? " (another server holds it)" : "");
            return -1;
        }
        if (!said) {
            tool_notify(&s->o, "waiting");
            said = 1;
        }
        uint64_t waited = tool_now_ms() - start;
        if (s->o.timeout_ms >= 0 && waited >= (uint64_t)s->o.timeout_ms) {
            tool_fail(TOOL_EXIT_TIMEOUT, "no client created set '%s' within %ld ms", s->o.set,
                      s->o.timeout_ms);
            return -1;
        }
        long left = s->o.timeout_ms < 0 ? step : s->o.timeout_ms - (long)waited;
        poll(NULL, 0, (int)(left < step ? left : step));
        step = step < 100 ? step * 2 : 100;
    }
}

static int configure(server *s) {
    VDConfig cfg;
    int rc = vdi_server_set_get_configuration(s->set, &cfg);
    if (rc != NOERROR) {
        tool_fail(tool_exit_of(rc), "get_configuration: %s", vdi_strerror(rc));
        return -1;
    }
    if (cfg.deviceCount != s->o.devices) {
        tool_fail(TOOL_EXIT_FAILURE, "the client created %u device(s), --devices says %u",
                  cfg.deviceCount, s->o.devices);
        return -1;
    }
    int backup = s->o.mode == TOOL_BACKUP;
    uint32_t features = backup ? VDF_WriteMedia : VDF_ReadMedia;
    if (backup && !s->o.no_complete)
        features |= VDF_CompleteEnabled;
    s->complete = (features & VDF_CompleteEnabled) && (cfg.features & VDF_RequestComplete);
    rc = vdi_server_set_begin_configuration(s->set, features, s->o.block_size, 0, s->o.max_transfer,
                                            s->o.timeout_ms);
    if (rc == NOERROR)
        rc = vdi_server_set_request_buffers(s->set, s->o.max_transfer, 0,
                                            s->o.devices * s->o.buffers);
    if (rc == NOERROR)
        rc = vdi_server_set_end_configuration(s->set);
    if (rc != NOERROR) {
        tool_fail(tool_exit_of(rc), "configuring the set: %s%s", vdi_strerror(rc),
                  rc == VD_E_MEMORY ? " (--devices x --buffers x --max-transfer too large?)" : "");
        return -1;
    }
    for (uint32_t i = 0; i < s->o.devices; i++) {
        sdev *d = &s->devs[i];
        tool_device_name(&s->o, i, d->name, sizeof d->name);
        rc = vdi_server_set_open_device(s->set, d->name, &d->dev);
        if (rc != NOERROR) {
            tool_fail(tool_exit_of(rc), "opening device '%s': %s", d->name, vdi_strerror(rc));
            return -1;
        }
    }
    return 0;
}

static void run(server *s) {
    if (open_set(s) != 0 || configure(s) != 0)
        return;
    if (pthread_create(&s->agent, NULL, agent_main, s) != 0) {
        tool_fail(TOOL_EXIT_FAILURE, "cannot start the agent thread");
        return;
    }
    uint32_t started = 0;
    if (wait_agent_running(s) == 0) {
        for (uint32_t i = 0; i < s->o.devices; i++) {
            sdev *d = &s->devs[i];
            if (pthread_create(&d->thread, NULL, device_main, d) != 0) {
                tool_fail(TOOL_EXIT_FAILURE, "cannot start a device thread");
                break;
            }
            started++;
        }
    }
    if (started < s->o.devices)
        server_stop(s); /* wakes the agent, which cannot finish normally any more */
    for (uint32_t i = 0; i < started; i++)
        pthread_join(s->devs[i].thread, NULL);
    pthread_join(s->agent, NULL);
    if (s->agent_rc != NOERROR)
        tool_fail(tool_exit_of(s->agent_rc), "completion agent: %s%s", vdi_strerror(s->agent_rc),
                  s->agent_rc == VD_E_ABORT ? " (the set was aborted)" : "");
}

static int open_file(server *s) {
    const tool_opts *o = &s->o;
    if (o->mode == TOOL_BACKUP) {
        /* Read by position, striped over the devices: a pipe, /dev/stdin on a pipe or
         * /dev/zero is refused at once (a FIFO without blocking in open), never backed up
         * as nothing. */
        s->fd = tool_input_open_positional(o->file, &s->file_size);
        return s->fd >= 0 ? 0 : -1;
    }
    /* Written unnamed, named FILE only on success (tool_output): a failed restore never
     * empties an existing FILE. */
    s->fd = tool_output_open(&s->out, o->file);
    return s->fd >= 0 ? 0 : -1;
}

int main(int argc, char **argv) {
    static server s; /* large (64 devices x 65 slots), and the threads point into it */
    tool_parse(argc, argv, "vdi-server", server_help, &s.o);
    atomic_init(&s.eof_at, UINT64_MAX);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    for (uint32_t i = 0; i < VDI_MAX_DEVICES; i++) {
        sdev *d = &s.devs[i];
        d->s = &s;
        d->index = i;
        pthread_mutex_init(&d->mu, NULL);
        pthread_cond_init(&d->cv, &ca);
        for (unsigned k = 0; k <= VDI_MAX_OUTSTANDING; k++) {
            d->slots[k].d = d;
            d->slots[k].idx = k;
        }
    }
    pthread_condattr_destroy(&ca);
    if (open_file(&s) != 0)
        return tool_status();
    s.set = vdi_server_set_new();
    if (!s.set) {
        tool_fail(TOOL_EXIT_FAILURE, "out of memory");
        if (s.o.mode == TOOL_RESTORE)
            tool_output_discard(&s.out);
        return tool_status();
    }
    run(&s);
    int rc = vdi_server_set_close(s.set);
    if (rc != NOERROR && !stopped(&s))
        tool_fail(tool_exit_of(rc), "closing the set: %s", vdi_strerror(rc));
    vdi_server_set_free(s.set);
    if (s.o.mode == TOOL_RESTORE) {
        if (tool_status() == TOOL_EXIT_OK)
            (void)tool_output_commit(&s.out); /* a failure is recorded */
        else
            tool_output_discard(&s.out);
    } else if (close(s.fd) != 0) {
        tool_fail(TOOL_EXIT_IO, "%s: %s", s.o.file, strerror(errno));
    }
    return tool_status();
}
