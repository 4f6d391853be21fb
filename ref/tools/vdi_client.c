/* vdi-client: plays the backup application. It creates a virtual device set, waits for a
 * server (vdi-server, or anything speaking VDI) to open it, and serves each device on its
 * own thread: VDC_Write is written to FILE at the command's position, VDC_Read is read
 * from FILE at the command's position (ERROR_HANDLE_EOF past its end).
 *
 * A backup's media takes its name before the last device's VDC_Complete is completed:
 * a server that saw every VDC_Complete succeed reports the backup done, so the media must
 * be whole and named by then, even if this process is killed a moment later. Nothing the
 * server sends afterwards changes it (a VDC_Write is refused); a naming that fails answers
 * that VDC_Complete ERROR_IO_DEVICE and leaves the end of the set to the server. Without
 * VDC_Complete (--no-complete) the server cannot know, and the media is named at the end. */
#include "tool_common.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct client client;

typedef struct cdev {
    client *c;
    uint32_t index;
    char name[VDI_MAX_NAME + 1];
    vdi_client_device *dev;
    pthread_t thread;
    int saw_complete;
} cdev;

struct client {
    tool_opts o;
    vdi_client_set *set;
    int fd;
    tool_output out; /* backup: the media file */
    VDConfig cfg;
    atomic_long commands; /* commands taken, all devices (for --stall-after) */
    atomic_int aborted;
    atomic_uint completes; /* devices that saw VDC_Complete */
    /* the media was named (by the last VDC_Complete); writes and flushes hold the lock
     * shared, the naming exclusive, so that none touches the closed descriptor */
    pthread_rwlock_t commit_lock;
    int committed;
    cdev devs[VDI_MAX_DEVICES];
};

static const char client_help[] =
    "Plays the backup application: creates the virtual device set SET and serves it.\n"
    "  backup:  stores the stream the server sends (VDC_Write at its position) in FILE\n"
    "  restore: serves VDC_Read from FILE at the asked position, ERROR_HANDLE_EOF at its end\n"
    "Start vdi-server with the same SET and options, before or after this program; the\n"
    "client waits up to --timeout for it in GetConfiguration.\n";

static void client_abort(client *c) {
    if (atomic_exchange(&c->aborted, 1) == 0)
        (void)vdi_client_set_signal_abort(c->set);
}

/* Writes all of [buf, buf+len) at off; 0 or an errno value. */
static int write_at(int fd, const uint8_t *buf, size_t len, off_t off) {
    while (len > 0) {
        ssize_t n = pwrite(fd, buf, len, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? errno : EIO;
        buf += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

/* Reads up to len bytes at off, short only at the end of the file; bytes read or -errno. */
static ssize_t read_at(int fd, uint8_t *buf, size_t len, off_t off) {
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, buf + got, len - got, off + (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* Performs one command; returns the Win32 completion code and sets *bytes. */
static uint32_t perform(cdev *d, const VDC_Command *cmd, uint32_t *bytes) {
    client *c = d->c;
    *bytes = 0;
    switch (cmd->commandCode) {
    case VDC_Write: {
        if (c->o.mode != TOOL_BACKUP || cmd->position < 0 || cmd->size < 0 || !cmd->buffer)
            return ERROR_INVALID_PARAMETER;
        /* After this device's VDC_Complete the server said its data was all sent: a write
         * then is refused (and fails the backup), whether or not the media is named yet. */
        pthread_rwlock_rdlock(&c->commit_lock);
        int late = c->committed ? 2 : d->saw_complete;
        int err = late ? 0 : write_at(c->fd, cmd->buffer, (size_t)cmd->size, (off_t)cmd->position);
        pthread_rwlock_unlock(&c->commit_lock);
        if (late) {
            tool_fail(TOOL_EXIT_FAILURE, "device '%s': VDC_Write after %s VDC_Complete", d->name,
                      late == 2 ? "every device's" : "its");
            return ERROR_INVALID_PARAMETER;
        }
        if (err) {
            tool_fail(TOOL_EXIT_IO, "writing %s at offset %lld: %s", c->o.file,
                      (long long)cmd->position, strerror(err));
            return err == ENOSPC ? ERROR_DISK_FULL : ERROR_IO_DEVICE;
        }
        *bytes = (uint32_t)cmd->size;
        return ERROR_SUCCESS;
    }
    case VDC_Read: {
        if (c->o.mode != TOOL_RESTORE || cmd->position < 0 || cmd->size < 0 || !cmd->buffer)
            return ERROR_INVALID_PARAMETER;
        ssize_t n = read_at(c->fd, cmd->buffer, (size_t)cmd->size, (off_t)cmd->position);
        if (n < 0) {
            tool_fail(TOOL_EXIT_IO, "reading %s at offset %lld: %s", c->o.file,
                      (long long)cmd->position, strerror((int)-n));
            return ERROR_IO_DEVICE;
        }
        if (n == 0)
            return ERROR_HANDLE_EOF;
        *bytes = (uint32_t)n;
        return ERROR_SUCCESS;
    }
    case VDC_Flush: {
        if (c->o.mode != TOOL_BACKUP)
            return ERROR_SUCCESS;
        pthread_rwlock_rdlock(&c->commit_lock);
        int err = c->committed || fdatasync(c->fd) == 0 ? 0 : errno; /* named: synced */
        pthread_rwlock_unlock(&c->commit_lock);
        if (err) {
            tool_fail(TOOL_EXIT_IO, "flushing %s: %s", c->o.file, strerror(err));
            return ERROR_IO_DEVICE;
        }
        return ERROR_SUCCESS;
    }
    case VDC_Complete:
        if (d->saw_complete)
            return ERROR_SUCCESS;
        d->saw_complete = 1;
        if (c->o.mode == TOOL_BACKUP && atomic_fetch_add(&c->completes, 1) + 1 == c->o.devices) {
            /* every other device completed its VDC_Complete after its last write; a backup
             * that already failed here (a refused write) is not named, and the server must
             * not take it for done */
            if (tool_status() != TOOL_EXIT_OK)
                return ERROR_IO_DEVICE;
            pthread_rwlock_wrlock(&c->commit_lock);
            c->committed = 1;
            int rc = tool_output_commit(&c->out);
            pthread_rwlock_unlock(&c->commit_lock);
            if (rc != 0)
                return ERROR_IO_DEVICE; /* the failure is recorded */
        }
        return ERROR_SUCCESS;
    default:
        return ERROR_NOT_SUPPORTED;
    }
}

static void *device_main(void *arg) {
    cdev *d = arg;
    client *c = d->c;
    vdi_client_device *dev = d->dev;
    int rc;
    for (;;) {
        VDC_Command *cmd;
        rc = vdi_client_device_get_command(dev, c->o.timeout_ms, &cmd);
        if (rc == VD_E_CLOSE && c->o.stall_after >= 0 &&
            atomic_load(&c->commands) >= c->o.stall_after)
            tool_stall(&c->o); /* a peer hung after its last command never closes either */
        if (rc == VD_E_CLOSE)
            break;
        if (rc == VD_E_TIMEOUT) {
            tool_fail(TOOL_EXIT_TIMEOUT, "no command from the server on device '%s' within %ld ms",
                      d->name, c->o.timeout_ms);
            client_abort(c);
            break;
        }
        if (rc != NOERROR) {
            tool_fail(tool_exit_of(rc), "device '%s': get_command: %s%s", d->name, vdi_strerror(rc),
                      rc == VD_E_ABORT ? " (the set was aborted)" : "");
            client_abort(c);
            break;
        }
        long n = atomic_fetch_add(&c->commands, 1);
        if (c->o.stall_after >= 0 && n >= c->o.stall_after)
            tool_stall(&c->o);
        uint32_t bytes;
        uint32_t code = perform(d, cmd, &bytes);
        uint64_t pos = (uint64_t)cmd->position + bytes;
        int32_t what = cmd->commandCode;
        rc = vdi_client_device_complete_command(dev, cmd, code, bytes, pos);
        if (rc != NOERROR) {
            tool_fail(tool_exit_of(rc), "device '%s': complete_command: %s", d->name,
                      vdi_strerror(rc));
            client_abort(c);
            break;
        }
        /* A failed write or flush ends this side: abort, so the server stops sending. A
         * failed VDC_Complete (the media could not be named) is the server's last word to
         * hear: an abort right after it races the answer, and an agent that sees the abort
         * first completes the command with 995 (VDI-SPEC 5.3), so the server would report an
         * abort, not the I/O error. The server ends the set; this device waits for that. */
        if ((code == ERROR_IO_DEVICE || code == ERROR_DISK_FULL) && what != VDC_Complete) {
            client_abort(c); /* the failure is already recorded by perform() */
            break;
        }
    }
    return NULL;
}

/* A backup's media is written unnamed and takes FILE's name only on success (see
 * tool_output), so a failed backup never empties an existing FILE. */
static int open_file(client *c) {
    if (c->o.mode == TOOL_BACKUP)
        return tool_output_open(&c->out, c->o.file);
    uint64_t size;
    return tool_input_open_positional(c->o.file, &size);
}

/* Checks what the server negotiated against this side's mode and explicit options. */
static int check_config(client *c) {
    const VDConfig *g = &c->cfg;
    uint32_t want = c->o.mode == TOOL_BACKUP ? VDF_WriteMedia : VDF_ReadMedia;
    if (!(g->features & want)) {
        tool_fail(TOOL_EXIT_FAILURE, "the server opened '%s' for a %s, this client does a %s",
                  c->o.set, (g->features & VDF_WriteMedia) ? "backup" : "restore",
                  c->o.mode == TOOL_BACKUP ? "backup" : "restore");
        return -1;
    }
    if (c->o.block_size_set && g->blockSize != c->o.block_size) {
        tool_fail(TOOL_EXIT_FAILURE, "the server chose block size %u, not --block-size %u",
                  g->blockSize, c->o.block_size);
        return -1;
    }
    if (c->o.max_transfer_set && g->maxTransferSize != c->o.max_transfer) {
        tool_fail(TOOL_EXIT_FAILURE, "the server chose max transfer %u, not --max-transfer %u",
                  g->maxTransferSize, c->o.max_transfer);
        return -1;
    }
    return 0;
}

static void run(client *c) {
    memset(&c->cfg, 0, sizeof c->cfg);
    c->cfg.deviceCount = c->o.devices;
    c->cfg.features = c->o.no_complete ? 0 : VDF_RequestComplete;
    int rc = vdi_client_set_create_ex(c->set, c->o.instance, c->o.set, &c->cfg);
    if (rc != NOERROR) {
        tool_fail(tool_exit_of(rc), "creating set '%s': %s%s", c->o.set, vdi_strerror(rc),
                  rc == VD_E_BUSY ? " (a live client already holds the name)" : "");
        return;
    }
    tool_notify(&c->o, "created");
    rc = vdi_client_set_get_configuration(c->set, c->o.timeout_ms, &c->cfg);
    if (rc == VD_E_TIMEOUT)
        tool_fail(TOOL_EXIT_TIMEOUT, "no server opened set '%s' within %ld ms", c->o.set,
                  c->o.timeout_ms);
    else if (rc != NOERROR)
        tool_fail(tool_exit_of(rc), "waiting for the server: %s", vdi_strerror(rc));
    if (rc != NOERROR || check_config(c) != 0)
        return; /* close aborts the set for a server that may be there */

    /* Every device is opened before any is served: the set ends normally once the server
     * closed every device and each one this side opened said VD_E_CLOSE (VDI-SPEC 3), so a
     * device opened late, after the others ended, would be refused. A restore shorter than
     * the device count closes the unused devices at once. */
    for (uint32_t i = 0; i < c->o.devices; i++) {
        cdev *d = &c->devs[i];
        d->c = c;
        d->index = i;
        tool_device_name(&c->o, i, d->name, sizeof d->name);
        rc = vdi_client_set_open_device(c->set, d->name, &d->dev);
        if (rc != NOERROR) {
            tool_fail(tool_exit_of(rc), "opening device '%s': %s", d->name, vdi_strerror(rc));
            client_abort(c);
            return;
        }
    }
    uint32_t started = 0;
    for (uint32_t i = 0; i < c->o.devices; i++) {
        cdev *d = &c->devs[i];
        if (pthread_create(&d->thread, NULL, device_main, d) != 0) {
            tool_fail(TOOL_EXIT_FAILURE, "cannot start a device thread");
            client_abort(c);
            break;
        }
        started++;
    }
    for (uint32_t i = 0; i < started; i++)
        pthread_join(c->devs[i].thread, NULL);

    if (tool_status() == TOOL_EXIT_OK && c->o.mode == TOOL_BACKUP &&
        (c->cfg.features & VDF_CompleteEnabled)) {
        for (uint32_t i = 0; i < c->o.devices; i++)
            if (!c->devs[i].saw_complete)
                tool_fail(TOOL_EXIT_FAILURE, "device '%s' ended without VDC_Complete",
                          c->devs[i].name);
    }
}

int main(int argc, char **argv) {
    static client c; /* large (64 devices), and the threads point into it */
    pthread_rwlock_init(&c.commit_lock, NULL);
    tool_parse(argc, argv, "vdi-client", client_help, &c.o);
    c.fd = open_file(&c);
    if (c.fd < 0)
        return tool_status();
    c.set = vdi_client_set_new();
    if (!c.set) {
        tool_fail(TOOL_EXIT_FAILURE, "out of memory");
        if (c.o.mode == TOOL_BACKUP)
            tool_output_discard(&c.out);
        return tool_status();
    }
    run(&c);
    int rc = vdi_client_set_close(c.set);
    if (rc != NOERROR && rc != VD_E_PROTOCOL)
        tool_fail(tool_exit_of(rc), "closing the set: %s", vdi_strerror(rc));
    vdi_client_set_free(c.set);
    if (c.o.mode == TOOL_BACKUP && c.committed) {
        /* named by the last VDC_Complete, it stays: the server called it done */
    } else if (c.o.mode == TOOL_BACKUP) {
        if (tool_status() == TOOL_EXIT_OK)
            (void)tool_output_commit(&c.out); /* a failure is recorded */
        else
            tool_output_discard(&c.out);
    } else if (close(c.fd) != 0) {
        tool_fail(TOOL_EXIT_IO, "%s: %s", c.o.file, strerror(errno));
    }
    return tool_status();
}
