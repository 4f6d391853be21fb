/* chaos_scenarios.c: scenarios and the ledger oracle. Every scenario builds one set with
 * the real reference, runs client device actors, the completion agent and server actors
 * under the engine, and checks after every callback and at the end: exactly one callback
 * per command, a real code only for a command the client completed, results equal to what
 * the client completed, a synchronous callback exactly for a rejected send, nothing after
 * the agent or Close returned, data as sent (and restored data as backed up), return codes
 * the contract allows. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "chaos/scenario.h"
#include "chaos_linearizer.h"
#include "chaos_recorder.h"
#include "vdi/vdi.h"
#include "vdi/vdi_seams.h"

#define NDEV 2   /* devices of the standard session */
#define MAXDEV 3 /* the most any scenario uses (backup-restore) */
#define NCMD 3
#define NALL (NDEV * NCMD + NDEV) /* data commands and one flush per device */
#define MAXCMD 16
#define BUF 4096
#define BLOCKS 2 /* backup-restore: blocks backed up and restored per device */

/* Shared by the actors on purpose: relaxed atomics keep the oracle out of TSan's view
 * without adding happens-before edges that could hide the reference's own races. */
#define LD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define ST(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
/* Except where one actor hands objects to another (device handles opened during the run):
 * a real program would synchronise there, so these are release/acquire. */
#define ACQ(x) __atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define REL(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELEASE)

/* How the session ends: the server closes the set prematurely, or the server ends
 * normally (a flush and close_device on each device) while the client aborts. Sends may
 * come before the agent runs; they are then rejected with their callback (code 6), which
 * the ledger accepts like any other single callback. */
enum {
    END_CLOSE,
    END_CLIENT_ABORT,
    END_CLOSE_IN_CALLBACK,
    END_WATCHDOG,
    END_SERVER_ABORT,
    END_OUT_OF_ORDER,
    END_CLIENT_DEATH,
    END_CLIENT_CLOSE,   /* the client closes with devices open, its threads in get_command */
    END_SEND_ABORT,     /* two senders race an abort from each side */
    END_TIMEOUTS,       /* configuration during the run; finite timeouts on both waits */
    END_BACKUP_RESTORE, /* three devices backed up, then restored from the same name */
    END_SECONDARY,      /* device 1 served by a secondary client object */
    END_CLOSE_IN_LAST,  /* the routine of the command that ends the set normally closes it */
    END_CLOSE_HOLDING,  /* the client closes holding a command past its device's VD_E_CLOSE */
    END_WATCHDOG_BUSY,  /* a watchdog set whose client completes steadily for longer than 2T */
    END_SERVER_DEATH    /* the server's process dies during configuration */
};

#define WATCHDOG_MS 50u
#define BUSY_PAUSE_MS 35L /* watchdog-busy: the client's pause before each completion (< 2T) */
#define CFG_TIMEOUT_MS 5L /* timeouts: the client's get_configuration */
#define CMD_TIMEOUT_MS 3L /* timeouts: the device threads' get_command */
#define SERVER_IDLE_MS 7L /* timeouts: the server's pause before configuring */
#define SEND_PAUSE_MS 4L  /* timeouts: the server's pause before each round of sends */
#define CLOSER_POLLS 100  /* client-close: how long the closer waits for blocked threads */

typedef struct {
    chaos_engine *e;
    int end;  /* how the server side ends the session */
    int ndev; /* devices of this session */
    vdi_client_set *client;
    vdi_server_set *server;
    vdi_client_set *secondary;
    vdi_client_device *cdev[MAXDEV];
    vdi_server_device *sdev[MAXDEV];
    uint8_t *buf[MAXCMD];
    VDS_Command cmd[MAXCMD];
    int dev_of[MAXCMD]; /* the device each command is sent on */
    int blk_of[MAXCMD]; /* backup-restore: the block a command writes or reads */
    int ncmd;
    int calls[MAXCMD];
    int ncallbacks; /* callbacks of every command, in all */
    int held_cmd;   /* close-holding: the command device 0 never completed, + 1 */
    int devs_done;  /* close-holding: device threads that saw VD_E_CLOSE */
    int cfg_rc;     /* server-death: what the client's get_configuration answered */
    /* the delivery oracle, per device: sends accepted, those accepted before close_device
     * was called, commands the client got */
    int sent_ok[MAXDEV], before_close[MAXDEV], close_called[MAXDEV], delivered[MAXDEV];
    int client_ok[MAXCMD];
    uint32_t client_bytes[MAXCMD]; /* what the client completed each command with */
    uint64_t client_pos[MAXCMD];
    int sends[MAXCMD];                 /* send_command calls per command */
    int sync_calls[MAXCMD];            /* callbacks on the sending thread, during the send */
    int in_send[CHAOS_MAX_ACTORS + 1]; /* per actor: the command it is sending, + 1 */
    int agent_actor;                   /* the agent's actor id */
    int agent_rc, agent_returned, agent_late;
    int agent_runs; /* backup-restore runs the agent twice */
    int close_rc, close_returned;
    int accepted;       /* sends that returned NOERROR */
    int abort_returned; /* a signal_abort returned: later sends must answer VD_E_ABORT */
    uint32_t nested;    /* 1 once the server closed from inside a callback (a futex word) */
    uint64_t start_ms;  /* virtual time at the start of the run */
    int client_rc[MAXDEV];
    int setup_failed;
    int setup_rc;
    int dead;                     /* the client process "died": its actors stop where they are */
    int broken;                   /* an injected fault ended the session early (see broken) */
    uint32_t ev;                  /* futex word of the scenario's own conditions (AWAIT) */
    int cb_order[MAXDEV][MAXCMD]; /* per device: commands in callback order (real completions) */
    int ncb[MAXDEV];
    int cp_order[MAXDEV][MAXCMD]; /* per device: commands in the order the client completed */
    int ncp[MAXDEV];
    /* client-close */
    int in_get[MAXDEV]; /* device thread inside get_command */
    int closing;        /* the client's close has begun: no new call from device threads */
    int server_idle;    /* the server sent its commands and waits for the close */
    int client_closed;  /* the client's close returned: its device handles are gone */
    /* timeouts */
    int configured;     /* end_configuration returned */
    int devs_open;      /* the client opened its devices */
    int sent_n[MAXDEV]; /* sends accepted per device */
    int got_n[MAXDEV];  /* commands the client got per device */
    int dev_closed[MAXDEV];
    int cfg_timeouts, cmd_timeouts;
    /* backup-restore */
    int backup_done;   /* device threads that saw the end of the backup */
    int client_ended;  /* the client closed the backup's set */
    int server_ended;  /* the server closed it too */
    int recreated;     /* the client created the set again for the restore */
    int restore_ready; /* the server configured the restore */
    int restore_open;  /* the client opened the restore's devices */
    int agent_rc2;
    int ntape[MAXDEV], nserved[MAXDEV];
    uint8_t tape[MAXDEV][BLOCKS][BUF]; /* the client's storage: what each device backed up */
    char name[64];
} session;

static session S;

/* Objects of runs that ended in a finding (see cleanup_common). */
static void *abandoned[256] __attribute__((used));
static unsigned nabandoned;
/* LeakSanitizer's: an object (and what it reaches) left on purpose. */
void __lsan_ignore_object(const void *p) __attribute__((weak));

static void abandon(void *p) {
    if (!p)
        return;
    abandoned[nabandoned++ % 256] = p; /* reachable, for the last 256 ... */
    if (__lsan_ignore_object)
        __lsan_ignore_object(p); /* ... and ignored, for a process with more findings */
}

static int documented_fault(int rc);

/* The scenario's own conditions between actors: a waiter reads the word, then tests its
 * condition, then waits for the word to change; whoever changes a condition bumps it. The
 * engine switches only at schedule points, so nothing is lost in between. */
#define AWAIT(cond)                                                                                \
    do {                                                                                           \
        for (;;) {                                                                                 \
            uint32_t v_ = LD(S.ev);                                                                \
            if ((cond) || LD(S.broken))                                                            \
                break;                                                                             \
            chaos_wait(S.e, &S.ev, v_, -1);                                                        \
        }                                                                                          \
    } while (0)

static void signal_all(void) {
    ST(S.ev, LD(S.ev) + 1);
    chaos_wake(S.e, &S.ev);
}

static void sleep_ms(long ms) {
    uint32_t never = 0;
    chaos_wait(S.e, &never, 0u, ms);
}

/* An injected fault made a call of the run fail with a documented code: the session cannot
 * go on. Abort it from both sides (blocked threads return, the agent drains) and release
 * every actor waiting on a condition; the final oracles then check only what still holds. */
static void broken(void) {
    ST(S.broken, 1);
    if (S.server)
        (void)vdi_server_set_signal_abort(S.server);
    if (S.client)
        (void)vdi_client_set_signal_abort(S.client);
    signal_all();
}

/* A call of the run that must succeed: 1 when it did; a documented code under a fault plan
 * breaks the session, anything else is a finding. */
static int ok(int rc, const char *what) {
    if (rc == NOERROR)
        return 1;
    if (LD(S.broken) && rc == VD_E_ABORT)
        return 0;
    if (!(chaos_faults_armed(S.e) && documented_fault(rc)))
        chaos_report(S.e, "model", "%s returned %s", what, vdi_strerror(rc));
    broken();
    return 0;
}

/* backup-restore: the bytes of block k of device d. */
static uint8_t pattern(int d, int k, int j) {
    return (uint8_t)(d * 67 + k * 13 + j * 7 + (j >> 8));
}

static void check_restored(int i, const VDS_Command *cmd) {
    int d = S.dev_of[i], k = S.blk_of[i];
    if (cmd->bytesTransferred != BUF) {
        chaos_report(S.e, "data", "restore of block %d of device %d read %u bytes", k, d,
                     cmd->bytesTransferred);
        return;
    }
    for (int j = 0; j < BUF; j++)
        if (cmd->buffer[j] != pattern(d, k, j)) {
            chaos_report(S.e, "data",
                         "restored block %d of device %d differs from the backup at byte %d", k, d,
                         j);
            return;
        }
}

static void routine(VDS_Command *cmd) {
    int i = (int)(cmd - S.cmd);
    int me = chaos_actor_id(S.e);
    int sync = me != LD(S.agent_actor); /* a rejected send calls back itself */
    ST(S.calls[i], LD(S.calls[i]) + 1);
    ST(S.ncallbacks, LD(S.ncallbacks) + 1);
    if (LD(S.calls[i]) > 1) {
        /* Not one more look at the command: two threads of the library may be writing
         * its results now, a race TSan would report before this finding. */
        chaos_report(S.e, "ledger", "command %d got a second callback (%s)", i,
                     sync ? "a rejected send's" : "the agent's");
        return;
    }
    if (sync) {
        ST(S.sync_calls[i], LD(S.sync_calls[i]) + 1);
        if (LD(S.in_send[me]) != i + 1)
            chaos_report(S.e, "ledger", "callback of command %d on a thread not sending it", i);
    }
    if (LD(S.agent_returned) && !sync)
        chaos_report(S.e, "ledger", "callback of command %d after the agent returned", i);
    if (LD(S.close_returned))
        chaos_report(S.e, "ledger", "callback of command %d after Close returned", i);
    if (cmd->completionCode == ERROR_SUCCESS && !LD(S.client_ok[i]))
        chaos_report(S.e, "ledger", "command %d completed with a code the client never gave", i);
    if (cmd->completionCode == ERROR_SUCCESS && (cmd->bytesTransferred != LD(S.client_bytes[i]) ||
                                                 cmd->outPosition != (int64_t)LD(S.client_pos[i])))
        chaos_report(S.e, "ledger",
                     "command %d: results (%u bytes, position %lld) differ from what the client "
                     "completed (%u, %llu)",
                     i, cmd->bytesTransferred, (long long)cmd->outPosition, LD(S.client_bytes[i]),
                     (unsigned long long)LD(S.client_pos[i]));
    if (cmd->completionCode != ERROR_SUCCESS && cmd->completionCode != ERROR_OPERATION_ABORTED &&
        cmd->completionCode != ERROR_INVALID_HANDLE)
        chaos_report(S.e, "ledger", "command %d got unexpected code %u", i, cmd->completionCode);
    if (cmd->completionCode != ERROR_SUCCESS && cmd->bytesTransferred != 0)
        chaos_report(S.e, "ledger", "failed command %d reports %u bytes", i, cmd->bytesTransferred);
    if (cmd->completionCode == ERROR_SUCCESS) {
        int d = S.dev_of[i];
        int k = LD(S.ncb[d]);
        ST(S.cb_order[d][k], i);
        ST(S.ncb[d], k + 1);
        if (cmd->commandCode == VDC_Read)
            check_restored(i, cmd);
    }
    if (S.end == END_WATCHDOG && cmd->completionCode == ERROR_SUCCESS)
        chaos_report(S.e, "ledger", "command %d completed although the client never did", i);
    if (S.end == END_CLOSE_IN_CALLBACK && !sync && !LD(S.nested)) {
        /* Close from inside the agent's callback: it must not wait for this callback
         * (VDI-SPEC 5.1.4); the drain goes on when the routine returns. */
        ST(S.nested, 1u);
        ST(S.close_rc, vdi_server_set_close(S.server));
        if (LD(S.close_rc) != VD_E_PROTOCOL)
            chaos_report(S.e, "model", "close in a callback returned %s",
                         vdi_strerror(LD(S.close_rc)));
        chaos_wake(S.e, &S.nested);
    }
    if (S.end == END_CLOSE_IN_LAST && !sync && LD(S.ncallbacks) == S.ncmd) {
        /* The last callback: the set is Normally Terminated as its routine runs (every
         * device closed, nothing else outstanding), so the close nested here answers
         * NOERROR, and the agent still returns NOERROR (VDI-SPEC 4: NT came first). */
        ST(S.close_rc, vdi_server_set_close(S.server));
        ST(S.close_returned, 1);
    }
}

static void agent_actor(void *arg) {
    (void)arg;
    ST(S.agent_late, LD(S.close_returned)); /* started on a closed set: PROTOCOL is right */
    ST(S.agent_runs, 1);
    ST(S.agent_rc, vdi_server_set_execute_completion_agent(S.server));
    ST(S.agent_returned, 1);
    signal_all();
}

static int complete(int d, VDC_Command *c) {
    int i = (int)c->position;
    int data = c->commandCode == VDC_Write || c->commandCode == VDC_Read;
    uint32_t bytes = data ? (uint32_t)c->size : 0;
    uint64_t pos = (uint64_t)i * 1000u + 7u;
    /* before the call: the agent may take it at once */
    ST(S.client_ok[i], 1);
    ST(S.client_bytes[i], bytes);
    ST(S.client_pos[i], pos);
    int k = LD(S.ncp[d]);
    ST(S.cp_order[d][k], i);
    ST(S.ncp[d], k + 1);
    int rc = vdi_client_device_complete_command(LD(S.cdev[d]), c, ERROR_SUCCESS, bytes, pos);
    if (rc != NOERROR) {
        ST(S.client_ok[i], 0);
        ST(S.ncp[d], k);
    }
    if (rc != NOERROR && rc != VD_E_ABORT)
        chaos_report(S.e, "model", "complete_command returned %s", vdi_strerror(rc));
    return rc;
}

/* The command a device got: one that was sent (its position is its index), carrying the
 * data that was sent. 0 when it is fine. */
static int check_got(int d, const VDC_Command *c) {
    int i = (int)c->position;
    if (i < 0 || i >= S.ncmd || S.dev_of[i] != d) {
        chaos_report(S.e, "data", "device %d got a command that was not sent to it", d);
        return -1;
    }
    if (c->commandCode == VDC_Write && S.end == END_BACKUP_RESTORE) {
        for (int j = 0; j < BUF; j += 97)
            if (c->buffer == NULL || c->buffer[j] != pattern(d, S.blk_of[i], j)) {
                chaos_report(S.e, "data", "write %d carries other data than was sent", i);
                return -1;
            }
    } else if (c->commandCode == VDC_Write && (c->buffer == NULL || c->buffer[0] != (uint8_t)i ||
                                               c->buffer[BUF - 1] != (uint8_t)i)) {
        chaos_report(S.e, "data", "command %d carries other data than was sent", i);
        return -1;
    }
    return 0;
}

/* The delivery oracle (VDI-SPEC 4): get_command answers VD_E_CLOSE only once every command
 * sent before close_device was delivered. Every get_command of the scenarios goes through
 * here; every close_device through close_dev. */
static int get_cmd(int d, vdi_client_device *dev, long timeout_ms, VDC_Command **c) {
    int rc = vdi_client_device_get_command(dev, timeout_ms, c);
    if (rc == NOERROR)
        ST(S.delivered[d], LD(S.delivered[d]) + 1);
    if (rc == VD_E_CLOSE && LD(S.close_called[d]) && LD(S.delivered[d]) < LD(S.before_close[d]))
        chaos_report(S.e, "ledger",
                     "device %d answered VD_E_CLOSE having delivered %d of the %d commands "
                     "sent before its close_device",
                     d, LD(S.delivered[d]), LD(S.before_close[d]));
    return rc;
}

static int close_dev(int d) {
    if (!LD(S.close_called[d])) {
        ST(S.before_close[d], LD(S.sent_ok[d]));
        ST(S.close_called[d], 1);
    }
    return vdi_server_device_close(S.sdev[d]);
}

/* backup-restore: the restore's devices start again. */
static void delivery_reset(void) {
    for (int d = 0; d < MAXDEV; d++) {
        ST(S.sent_ok[d], 0);
        ST(S.before_close[d], 0);
        ST(S.close_called[d], 0);
        ST(S.delivered[d], 0);
    }
}

static void client_actor(void *arg) {
    int d = (int)(intptr_t)arg;
    VDC_Command *c, *held[NCMD];
    int nheld = 0, rc;
    while ((rc = get_cmd(d, LD(S.cdev[d]), VDI_INFINITE, &c)) == NOERROR) {
        if (LD(S.dead))
            return; /* a dead process makes no more calls */
        if (check_got(d, c))
            break;
        if (S.end == END_WATCHDOG)
            continue; /* a hung client: takes commands, never completes them */
        if (S.end == END_OUT_OF_ORDER && c->commandCode == VDC_Write) {
            held[nheld++] = c; /* views stay valid until completed (VDI-SPEC 4) */
            if (nheld < NCMD)
                continue;
            while (nheld) /* all of them, last received first */
                complete(d, held[--nheld]);
            continue;
        }
        complete(d, c);
    }
    ST(S.client_rc[d], rc);
    if (rc != VD_E_ABORT && rc != VD_E_CLOSE && rc != NOERROR)
        chaos_report(S.e, "model", "get_command ended with %s", vdi_strerror(rc));
}

/* The client process dies at a random point: its threads stop, it never closes, and the
 * server must notice through the liveness checks (VDI-SPEC 5.3) and abort. */
static void killer_actor(void *arg) {
    (void)arg;
    chaos_point(S.e, "scenario/killer:before");
    ST(S.dead, 1);
    chaos_kill_peer(S.e);
}

static void server_abort_actor(void *arg) {
    (void)arg;
    chaos_point(S.e, "scenario/server:before-abort");
    if (vdi_server_set_signal_abort(S.server) != NOERROR)
        chaos_report(S.e, "model", "server signal_abort failed");
    ST(S.abort_returned, 1);
}

static void client_abort_actor(void *arg) {
    (void)arg;
    chaos_point(S.e, "scenario/client:before-abort");
    if (vdi_client_set_signal_abort(S.client) != NOERROR)
        chaos_report(S.e, "model", "client signal_abort failed");
    ST(S.abort_returned, 1);
}

/* Send command i on device d and check what the send itself promises (VDI-SPEC 4): an
 * accepted send calls nothing back on this thread; a rejected one calls its routine once,
 * here, before returning, with the code of its row; a send that starts after a
 * signal_abort returned on a set still running is rejected with VD_E_ABORT. */
static int send(int d, int i) {
    int me = chaos_actor_id(S.e);
    int after_abort = LD(S.abort_returned);
    ST(S.sends[i], LD(S.sends[i]) + 1);
    ST(S.in_send[me], i + 1);
    int rc = vdi_server_device_send_command(S.sdev[d], &S.cmd[i]);
    ST(S.in_send[me], 0);
    int sync = LD(S.sync_calls[i]);
    if (rc == NOERROR) {
        ST(S.accepted, LD(S.accepted) + 1);
        ST(S.sent_ok[d], LD(S.sent_ok[d]) + 1);
        if (sync)
            chaos_report(S.e, "ledger", "accepted command %d was also called back at once", i);
    } else if (rc == VD_E_ABORT || rc == VD_E_PROTOCOL) {
        uint32_t want = rc == VD_E_ABORT ? ERROR_OPERATION_ABORTED : ERROR_INVALID_HANDLE;
        if (sync != 1 || S.cmd[i].completionCode != want)
            chaos_report(S.e, "ledger",
                         "send of command %d returned %s with %d callbacks on its thread "
                         "(code %u)",
                         i, vdi_strerror(rc), sync, S.cmd[i].completionCode);
    } else {
        chaos_report(S.e, "model", "send_command returned %s", vdi_strerror(rc));
    }
    if (after_abort && rc != VD_E_ABORT)
        chaos_report(S.e, "model", "send_command after signal_abort returned gave %s",
                     vdi_strerror(rc));
    return rc;
}

static void probe_routine(VDS_Command *cmd) {
    (void)cmd;
}

/* Nothing in the API says when the agent runs; a command with an unknown code is rejected
 * with VD_E_PROTOCOL before it does and VD_E_INVALID after (send_command rows 4 and 5).
 * Between probes the server sleeps 1 ms of virtual time, so the agent gets to run. */
static void await_agent_on(int d) {
    uint32_t never = 0;
    VDS_Command probe = {.commandCode = 0, .completionRoutine = probe_routine};
    while (!LD(S.agent_returned) && !LD(S.broken) &&
           vdi_server_device_send_command(S.sdev[d], &probe) == VD_E_PROTOCOL)
        chaos_wait(S.e, &never, 0u, 1);
}

static void await_agent(void) {
    await_agent_on(0);
}

static void close_devices(void) {
    for (int d = 0; d < S.ndev; d++) {
        send(d, S.ndev * NCMD + d); /* a flush on each device, then the normal end */
        int rc = close_dev(d);
        if (rc != NOERROR && rc != VD_E_ABORT)
            chaos_report(S.e, "model", "close_device returned %s", vdi_strerror(rc));
    }
}

static void server_actor(void *arg) {
    (void)arg;
    if (S.end == END_WATCHDOG || S.end == END_OUT_OF_ORDER || S.end == END_SECONDARY ||
        S.end == END_CLOSE_IN_LAST || S.end == END_CLOSE_HOLDING || S.end == END_WATCHDOG_BUSY)
        await_agent(); /* the commands must be accepted for these scenarios to mean much */
    for (int k = 0; k < NCMD; k++)
        for (int d = 0; d < NDEV; d++)
            send(d, k * NDEV + d);
    if (S.end == END_WATCHDOG) {
        if (LD(S.agent_returned)) /* no agent (it could not start): end it ourselves */
            (void)vdi_server_set_close(S.server);
        return; /* otherwise the agent's watchdog must end the session */
    }
    if (S.end == END_CLOSE_IN_CALLBACK && LD(S.accepted)) {
        /* wait for the callback that closes the set */
        while (!LD(S.nested))
            chaos_wait(S.e, &S.nested, 0u, -1);
        return;
    }
    if (S.end == END_CLOSE || S.end == END_CLOSE_IN_CALLBACK) {
        ST(S.close_rc, vdi_server_set_close(S.server)); /* premature: devices still open */
        ST(S.close_returned, 1);
        if (LD(S.close_rc) != VD_E_PROTOCOL)
            chaos_report(S.e, "model", "premature close returned %s", vdi_strerror(S.close_rc));
        return;
    }
    close_devices();
}

/* One set of ndev devices up to Active, buffers allocated, commands filled in. */
#define STEP(call)                                                                                 \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_ != NOERROR) {                                                                      \
            S.setup_rc = rc_;                                                                      \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

static const char *dev_name(int d) {
    static const char *const names[MAXDEV] = {NULL, "dev1", "dev2"};
    return d == 0 ? S.name : names[d];
}

static int new_objects(chaos_engine *e, int end) {
    memset(&S, 0, sizeof S);
    S.e = e;
    S.end = end;
    S.ndev = end == END_BACKUP_RESTORE ? MAXDEV : NDEV;
    static unsigned seq;
    snprintf(S.name, sizeof S.name, "chaos-%ld-%u", (long)getpid(), seq++);
    S.client = vdi_client_set_new();
    S.server = vdi_server_set_new();
    if (end == END_SECONDARY)
        S.secondary = vdi_client_set_new();
    if (!S.client || !S.server || (end == END_SECONDARY && !S.secondary)) {
        S.setup_rc = VD_E_MEMORY; /* a constructor answers NULL when memory is exhausted */
        return -1;
    }
    S.start_ms = chaos_now(e);
    return 0;
}

static void fill_command(int i, int d, int code, uint8_t *buf) {
    S.dev_of[i] = d;
    S.cmd[i] = (VDS_Command){.commandCode = code,
                             .size = buf ? BUF : 0,
                             .inPosition = i,
                             .buffer = buf,
                             .completionRoutine = routine};
}

/* The standard commands: NCMD writes per device (command k * ndev + d), then a flush per
 * device; backup-restore: BLOCKS writes per device carrying its pattern. */
static int fill_writes(void) {
    int nw = S.end == END_BACKUP_RESTORE ? BLOCKS : NCMD;
    for (int i = 0; i < S.ndev * nw; i++) {
        int d = i % S.ndev;
        STEP(vdi_server_set_allocate_buffer(S.server, &S.buf[i], BUF, 0));
        S.blk_of[i] = i / S.ndev;
        if (S.end == END_BACKUP_RESTORE)
            for (int j = 0; j < BUF; j++)
                S.buf[i][j] = pattern(d, S.blk_of[i], j);
        else
            memset(S.buf[i], i, BUF);
        fill_command(i, d, VDC_Write, S.buf[i]);
    }
    if (S.end != END_BACKUP_RESTORE)
        for (int d = 0; d < S.ndev; d++)
            fill_command(S.ndev * NCMD + d, d, VDC_Flush, NULL);
    return 0;
}

static int setup_set(chaos_engine *e, int end) {
    if (new_objects(e, end))
        return -1;
    const char *name = S.name;
    int nw = end == END_BACKUP_RESTORE ? BLOCKS : NCMD;
    VDConfig cfg = {.deviceCount = (uint32_t)S.ndev,
                    .serverTimeOut =
                        end == END_WATCHDOG || end == END_WATCHDOG_BUSY ? WATCHDOG_MS : 0};
    STEP(vdi_client_set_create(S.client, name, &cfg));
    STEP(vdi_server_set_open(S.server, NULL, name));
    STEP(vdi_server_set_begin_configuration(S.server, VDF_WriteMedia, BUF, 0, 65536, 0));
    STEP(vdi_server_set_request_buffers(S.server, BUF, 0, (uint32_t)(S.ndev * nw)));
    STEP(vdi_server_set_end_configuration(S.server));
    STEP(vdi_client_set_get_configuration(S.client, 0, &cfg));
    for (int d = 0; d < S.ndev; d++) {
        STEP(vdi_server_set_open_device(S.server, dev_name(d), &S.sdev[d]));
        if (end == END_SECONDARY && d == 1)
            continue; /* the secondary opens it during the run */
        STEP(vdi_client_set_open_device(S.client, dev_name(d), &S.cdev[d]));
    }
    if (fill_writes())
        return -1;
    S.ncmd = end == END_CLIENT_ABORT || end == END_SERVER_ABORT || end == END_OUT_OF_ORDER ||
                     end == END_CLIENT_DEATH || end == END_SEND_ABORT || end == END_SECONDARY ||
                     end == END_CLIENT_CLOSE || end == END_CLOSE_IN_LAST ||
                     end == END_CLOSE_HOLDING || end == END_WATCHDOG_BUSY
                 ? NALL
                 : NDEV * NCMD;
    if (end == END_BACKUP_RESTORE)
        S.ncmd = 2 * S.ndev * BLOCKS; /* the writes, then as many reads */
    return 0;
}

/* The codes an operating-system failure may turn into (VDI-SPEC 8.12). */
static int documented_fault(int rc) {
    return rc == VD_E_MEMORY || rc == VD_E_BUSY || rc == VD_E_SECURITY || rc == VD_E_UNEXPECTED;
}

/* A setup that failed under an injected fault is a clean outcome when the code is one
 * the contract documents; the objects are released (and must leak nothing). */
static int setup_or_report(chaos_engine *e, int end, int (*build)(chaos_engine *, int)) {
    if (build(e, end) == 0)
        return 0;
    S.setup_failed = 1;
    if (chaos_faults_armed(e) && documented_fault(S.setup_rc)) {
        vdi_server_set_free(S.server);
        vdi_client_set_free(S.client);
        vdi_client_set_free(S.secondary);
        S.client = NULL;
        S.server = NULL;
        S.secondary = NULL;
        return -1;
    }
    chaos_report(e, "setup", "could not build the set: %s", vdi_strerror(S.setup_rc));
    return -1;
}

static int spawn_agent(chaos_engine *e) {
    int id = chaos_spawn(e, "agent", agent_actor, NULL);
    ST(S.agent_actor, id);
    return id;
}

static void spawn_common(chaos_engine *e) {
    spawn_agent(e);
    chaos_spawn(e, "client-dev0", client_actor, (void *)0);
    chaos_spawn(e, "client-dev1", client_actor, (void *)1);
    chaos_spawn(e, "server", server_actor, NULL);
}

static void setup_end(chaos_engine *e, int end) {
    if (setup_or_report(e, end, setup_set) == 0)
        spawn_common(e);
}

static void setup_close_race(chaos_engine *e) {
    setup_end(e, END_CLOSE);
}

static void setup_close_in_callback(chaos_engine *e) {
    setup_end(e, END_CLOSE_IN_CALLBACK);
}

static void setup_server_abort(chaos_engine *e) {
    if (setup_or_report(e, END_SERVER_ABORT, setup_set) == 0) {
        spawn_common(e);
        chaos_spawn(e, "server-aborter", server_abort_actor, NULL);
    }
}

static void setup_client_death(chaos_engine *e) {
    if (setup_or_report(e, END_CLIENT_DEATH, setup_set) == 0) {
        spawn_common(e);
        chaos_spawn(e, "killer", killer_actor, NULL);
    }
}

static void setup_out_of_order(chaos_engine *e) {
    setup_end(e, END_OUT_OF_ORDER);
}

static void setup_watchdog(chaos_engine *e) {
    setup_end(e, END_WATCHDOG);
}

static void setup_client_abort(chaos_engine *e) {
    if (setup_or_report(e, END_CLIENT_ABORT, setup_set) == 0) {
        spawn_common(e);
        chaos_spawn(e, "client-main", client_abort_actor, NULL);
    }
}

/* ---- client-close: the client gives up mid-backup: its device threads hold some commands
 * uncompleted and block in get_command, and the client closes with its devices open
 * (VDI-SPEC 5.2, 5.0), while the server sends a last flush on each device. Close must wake
 * the threads with VD_E_ABORT, wait for them to leave, answer VD_E_OPEN and abort the set
 * for the server, whose agent drains with 995; a call still running when the close returns
 * must answer VD_E_ABORT, and a send racing the close is accepted or rejected with its
 * callback. The close begins only once the device threads are blocked inside get_command,
 * and they start no new call after it began (the engine switches only at schedule points,
 * so a check and the call after it are one step): the reference's get_command and
 * complete_command read the device handle before their gate while the client's close
 * clears the device table, a data race TSan reports for a call that starts during the
 * close. */

static void cc_client_actor(void *arg) {
    int d = (int)(intptr_t)arg;
    for (;;) {
        if (LD(S.closing))
            return;
        VDC_Command *c;
        ST(S.in_get[d], 1);
        int rc = get_cmd(d, LD(S.cdev[d]), VDI_INFINITE, &c);
        ST(S.in_get[d], 0);
        if (LD(S.client_closed) && rc != VD_E_ABORT)
            chaos_report(S.e, "model", "get_command overlapping the client's close returned %s",
                         vdi_strerror(rc));
        if (rc != NOERROR) {
            ST(S.client_rc[d], rc);
            if (rc != VD_E_ABORT)
                chaos_report(S.e, "model", "get_command ended with %s", vdi_strerror(rc));
            return;
        }
        if (LD(S.closing)) /* the view dies with the close: not even read */
            return;
        if (check_got(d, c))
            return;
        if ((c->position / NDEV) % 2) /* every other command stays in hand, uncompleted */
            continue;
        complete(d, c);
    }
}

static void cc_server(void *arg) {
    (void)arg;
    for (int k = 0; k < NCMD; k++)
        for (int d = 0; d < NDEV; d++)
            send(d, k * NDEV + d);
    ST(S.server_idle, 1);
    AWAIT(LD(S.closing));
    for (int d = 0; d < NDEV; d++)
        send(d, NDEV * NCMD + d); /* racing the client's close */
}

static void client_closer_actor(void *arg) {
    (void)arg;
    /* A sleep ends only when every actor is blocked: then the device threads that are in
     * get_command wait inside it (bounded, in case they never get there). */
    for (int k = 0; k < CLOSER_POLLS; k++) {
        sleep_ms(1);
        if (LD(S.server_idle) && LD(S.in_get[0]) && LD(S.in_get[1]))
            break;
    }
    ST(S.closing, 1);
    signal_all();
    int rc = vdi_client_set_close(S.client);
    ST(S.client_closed, 1);
    if (rc != VD_E_OPEN)
        chaos_report(S.e, "model", "client close with devices open returned %s", vdi_strerror(rc));
}

static void setup_client_close(chaos_engine *e) {
    if (setup_or_report(e, END_CLIENT_CLOSE, setup_set) == 0) {
        spawn_agent(e);
        chaos_spawn(e, "client-dev0", cc_client_actor, (void *)0);
        chaos_spawn(e, "client-dev1", cc_client_actor, (void *)1);
        chaos_spawn(e, "server", cc_server, NULL);
        chaos_spawn(e, "client-closer", client_closer_actor, NULL);
    }
}

/* ---- send-abort: one sender per device sends its writes, a flush and closes the device,
 * while signal_abort comes from both sides. Every send's code must agree with its callbacks
 * (see send) and a send or close_device that starts after an abort returned must answer
 * VD_E_ABORT. */

static void sender_actor(void *arg) {
    int d = (int)(intptr_t)arg;
    await_agent_on(d);
    for (int k = 0; k < NCMD; k++)
        send(d, k * NDEV + d);
    send(d, NDEV * NCMD + d);
    int after_abort = LD(S.abort_returned);
    int rc = close_dev(d);
    if (rc != NOERROR && rc != VD_E_ABORT)
        chaos_report(S.e, "model", "close_device returned %s", vdi_strerror(rc));
    if (after_abort && rc != VD_E_ABORT)
        chaos_report(S.e, "model", "close_device after signal_abort returned gave %s",
                     vdi_strerror(rc));
}

static void setup_send_abort(chaos_engine *e) {
    if (setup_or_report(e, END_SEND_ABORT, setup_set) == 0) {
        spawn_agent(e);
        chaos_spawn(e, "client-dev0", client_actor, (void *)0);
        chaos_spawn(e, "client-dev1", client_actor, (void *)1);
        chaos_spawn(e, "sender-dev0", sender_actor, (void *)0);
        chaos_spawn(e, "sender-dev1", sender_actor, (void *)1);
        chaos_spawn(e, "server-aborter", server_abort_actor, NULL);
        chaos_spawn(e, "client-aborter", client_abort_actor, NULL);
    }
}

/* ---- timeouts: the server configures during the run after a pause and sends at intervals;
 * the client waits in get_configuration and get_command with finite timeouts. Time is
 * virtual: a timeout expires when every actor is blocked. VD_E_TIMEOUT only once the
 * timeout passed and only when nothing was there to return at the call; any other answer
 * before it passed. */

/* The client opens its devices during the run, for device threads that wait for them. */
static int open_client_devices(void) {
    for (int d = 0; d < S.ndev; d++) {
        vdi_client_device *dv;
        if (!ok(vdi_client_set_open_device(S.client, dev_name(d), &dv), "open_device"))
            return -1;
        ST(S.cdev[d], dv);
    }
    return 0;
}

static void tm_agent_actor(void *arg) {
    AWAIT(LD(S.configured));
    if (!LD(S.broken))
        agent_actor(arg);
}

static void tm_client_main(void *arg) {
    (void)arg;
    VDConfig cfg;
    for (;;) {
        int was_configured = LD(S.configured);
        uint64_t t0 = chaos_now(S.e);
        int rc = vdi_client_set_get_configuration(S.client, CFG_TIMEOUT_MS, &cfg);
        uint64_t spent = chaos_now(S.e) - t0;
        if (rc == VD_E_TIMEOUT) {
            ST(S.cfg_timeouts, LD(S.cfg_timeouts) + 1);
            if (spent < (uint64_t)CFG_TIMEOUT_MS || was_configured)
                chaos_report(S.e, "model",
                             "get_configuration timed out after %llu ms (configured: %d)",
                             (unsigned long long)spent, was_configured);
            continue;
        }
        if (!ok(rc, "get_configuration"))
            return;
        if (spent > (uint64_t)CFG_TIMEOUT_MS)
            chaos_report(S.e, "model", "get_configuration returned after its timeout");
        break;
    }
    if (open_client_devices())
        return;
    REL(S.devs_open, 1);
    signal_all();
}

static void tm_client_dev(void *arg) {
    int d = (int)(intptr_t)arg;
    AWAIT(ACQ(S.devs_open));
    while (!LD(S.broken)) {
        VDC_Command *c;
        /* (a command is there before its send returns: pending may be negative) */
        int pending = LD(S.sent_n[d]) - LD(S.got_n[d]), closed = LD(S.dev_closed[d]);
        uint64_t t0 = chaos_now(S.e);
        int rc = get_cmd(d, LD(S.cdev[d]), CMD_TIMEOUT_MS, &c);
        uint64_t spent = chaos_now(S.e) - t0;
        if (rc == VD_E_TIMEOUT) {
            ST(S.cmd_timeouts, LD(S.cmd_timeouts) + 1);
            if (spent < (uint64_t)CMD_TIMEOUT_MS || pending > 0 || closed)
                chaos_report(S.e, "model",
                             "get_command timed out after %llu ms with %d commands waiting "
                             "(device closed: %d)",
                             (unsigned long long)spent, pending, closed);
            continue;
        }
        if (spent > (uint64_t)CMD_TIMEOUT_MS)
            chaos_report(S.e, "model", "get_command returned %s after its timeout",
                         vdi_strerror(rc));
        if (rc == VD_E_CLOSE) {
            ST(S.client_rc[d], rc);
            if (pending > 0)
                chaos_report(S.e, "model", "VD_E_CLOSE with %d commands undelivered", pending);
            return;
        }
        if (!ok(rc, "get_command"))
            return;
        ST(S.got_n[d], LD(S.got_n[d]) + 1);
        if (check_got(d, c))
            return;
        complete(d, c);
    }
}

static void tm_send(int d, int i) {
    if (send(d, i) == NOERROR)
        ST(S.sent_n[d], LD(S.sent_n[d]) + 1);
}

static void tm_server(void *arg) {
    (void)arg;
    sleep_ms(SERVER_IDLE_MS);
    if (!ok(vdi_server_set_begin_configuration(S.server, VDF_WriteMedia, BUF, 0, 65536, 0),
            "begin_configuration") ||
        !ok(vdi_server_set_request_buffers(S.server, BUF, 0, NDEV * NCMD), "request_buffers") ||
        !ok(vdi_server_set_end_configuration(S.server), "end_configuration"))
        return;
    ST(S.configured, 1);
    signal_all();
    for (int d = 0; d < S.ndev; d++)
        if (!ok(vdi_server_set_open_device(S.server, dev_name(d), &S.sdev[d]), "open_device"))
            return;
    if (fill_writes()) {
        (void)ok(S.setup_rc, "allocate_buffer");
        return;
    }
    await_agent();
    for (int k = 0; k < NCMD && !LD(S.broken); k++) {
        sleep_ms(SEND_PAUSE_MS);
        for (int d = 0; d < S.ndev; d++)
            tm_send(d, k * NDEV + d);
    }
    for (int d = 0; d < S.ndev && !LD(S.broken); d++) {
        tm_send(d, S.ndev * NCMD + d);
        if (!ok(close_dev(d), "close_device"))
            return;
        ST(S.dev_closed[d], 1);
    }
}

static int setup_timeouts_set(chaos_engine *e, int end) {
    if (new_objects(e, end))
        return -1;
    VDConfig cfg = {.deviceCount = NDEV};
    STEP(vdi_client_set_create(S.client, S.name, &cfg));
    STEP(vdi_server_set_open(S.server, NULL, S.name));
    S.ncmd = NALL;
    for (int i = 0; i < NALL; i++) /* filled in by the server once it has buffers */
        S.dev_of[i] = i < NDEV * NCMD ? i % NDEV : i - NDEV * NCMD;
    return 0;
}

static void setup_timeouts(chaos_engine *e) {
    if (setup_or_report(e, END_TIMEOUTS, setup_timeouts_set) == 0) {
        ST(S.agent_actor, chaos_spawn(e, "agent", tm_agent_actor, NULL));
        chaos_spawn(e, "client-main", tm_client_main, NULL);
        chaos_spawn(e, "client-dev0", tm_client_dev, (void *)0);
        chaos_spawn(e, "client-dev1", tm_client_dev, (void *)1);
        chaos_spawn(e, "server", tm_server, NULL);
    }
}

/* ---- backup-restore: three devices back up BLOCKS blocks each into the client's storage;
 * both sides end normally and close; the client creates the set again under the same name,
 * the server opens and configures it for reading, and the same blocks are restored. Every
 * restored block must equal what was backed up (the data oracle, in the callback). */

static void br_agent(void *arg) {
    agent_actor(arg);
    AWAIT(LD(S.restore_ready));
    if (LD(S.broken))
        return;
    ST(S.agent_returned, 0);
    ST(S.agent_runs, 2);
    signal_all();
    ST(S.agent_rc2, vdi_server_set_execute_completion_agent(S.server));
    ST(S.agent_returned, 1);
    signal_all();
}

static int br_serve(int d, int restore) {
    VDC_Command *c;
    int rc;
    while ((rc = get_cmd(d, LD(S.cdev[d]), VDI_INFINITE, &c)) == NOERROR) {
        if (check_got(d, c))
            return -1;
        if (!restore && c->commandCode == VDC_Write) {
            int k = LD(S.ntape[d]);
            if (k >= BLOCKS || c->size != BUF) {
                chaos_report(S.e, "data", "device %d: an unexpected write", d);
                return -1;
            }
            memcpy(S.tape[d][k], c->buffer, BUF);
            ST(S.ntape[d], k + 1);
        } else if (restore && c->commandCode == VDC_Read) {
            int k = LD(S.nserved[d]);
            if (k >= LD(S.ntape[d]) || c->size != BUF || c->buffer == NULL) {
                chaos_report(S.e, "data", "device %d: a read past the backup", d);
                return -1;
            }
            memcpy(c->buffer, S.tape[d][k], BUF);
            ST(S.nserved[d], k + 1);
        }
        complete(d, c);
    }
    ST(S.client_rc[d], rc);
    if (rc == VD_E_CLOSE)
        return 0;
    return ok(rc, "get_command") ? 0 : -1;
}

static void br_client_dev(void *arg) {
    int d = (int)(intptr_t)arg;
    if (br_serve(d, 0))
        return;
    ST(S.backup_done, LD(S.backup_done) + 1);
    signal_all();
    AWAIT(ACQ(S.restore_open));
    if (!LD(S.broken))
        br_serve(d, 1);
}

static void br_client_main(void *arg) {
    (void)arg;
    AWAIT(LD(S.backup_done) == S.ndev);
    if (LD(S.broken) || !ok(vdi_client_set_close(S.client), "client close after the backup"))
        return;
    REL(S.client_ended, 1);
    signal_all();
    AWAIT(ACQ(S.server_ended));
    VDConfig cfg = {.deviceCount = (uint32_t)S.ndev};
    if (!ok(vdi_client_set_create(S.client, S.name, &cfg), "create for the restore"))
        return;
    REL(S.recreated, 1);
    signal_all();
    if (!ok(vdi_client_set_get_configuration(S.client, VDI_INFINITE, &cfg), "get_configuration"))
        return;
    if (open_client_devices())
        return;
    REL(S.restore_open, 1);
    signal_all();
}

/* The server's side of the restore: the set opened again and configured for reading, one
 * read per block backed up, into buffers first filled with other bytes. */
static int br_restore_set(void) {
    delivery_reset();
    STEP(vdi_server_set_open(S.server, NULL, S.name));
    STEP(vdi_server_set_begin_configuration(S.server, VDF_ReadMedia, BUF, 0, 65536, 0));
    STEP(vdi_server_set_request_buffers(S.server, BUF, 0, (uint32_t)(S.ndev * BLOCKS)));
    STEP(vdi_server_set_end_configuration(S.server));
    for (int d = 0; d < S.ndev; d++)
        STEP(vdi_server_set_open_device(S.server, dev_name(d), &S.sdev[d]));
    for (int r = 0; r < S.ndev * BLOCKS; r++) {
        int i = S.ndev * BLOCKS + r;
        STEP(vdi_server_set_allocate_buffer(S.server, &S.buf[i], BUF, 0));
        memset(S.buf[i], 0xee, BUF);
        S.blk_of[i] = r / S.ndev;
        fill_command(i, r % S.ndev, VDC_Read, S.buf[i]);
    }
    return 0;
}

static void br_server(void *arg) {
    (void)arg;
    await_agent();
    for (int i = 0; i < S.ndev * BLOCKS; i++)
        send(S.dev_of[i], i);
    for (int d = 0; d < S.ndev; d++)
        if (!ok(close_dev(d), "close_device"))
            return;
    AWAIT(LD(S.agent_returned));
    if (LD(S.broken) || !ok(LD(S.agent_rc), "the backup's agent"))
        return;
    /* The closes are ordered, client first, and the set is created again only after both:
     * two actors that unmap in one run must be ordered for TSan (the unmap guard's
     * quarantine is not synchronised), and while the old object lives the engine may take
     * the new one for it (futex keys of objects with neighbouring inode numbers collide),
     * which makes runs differ. */
    AWAIT(ACQ(S.client_ended));
    if (LD(S.broken) || !ok(vdi_server_set_close(S.server), "server close after the backup"))
        return;
    REL(S.server_ended, 1);
    signal_all();
    AWAIT(ACQ(S.recreated));
    if (LD(S.broken))
        return;
    if (br_restore_set()) {
        ok(S.setup_rc, "configuring the restore");
        return;
    }
    ST(S.restore_ready, 1);
    signal_all();
    AWAIT(LD(S.agent_runs) == 2);
    await_agent();
    for (int i = S.ndev * BLOCKS; i < 2 * S.ndev * BLOCKS; i++)
        send(S.dev_of[i], i);
    for (int d = 0; d < S.ndev; d++)
        if (!ok(close_dev(d), "close_device"))
            return;
}

static void setup_backup_restore(chaos_engine *e) {
    if (setup_or_report(e, END_BACKUP_RESTORE, setup_set) == 0) {
        ST(S.agent_actor, chaos_spawn(e, "agent", br_agent, NULL));
        chaos_spawn(e, "client-dev0", br_client_dev, (void *)0);
        chaos_spawn(e, "client-dev1", br_client_dev, (void *)1);
        chaos_spawn(e, "client-dev2", br_client_dev, (void *)2);
        chaos_spawn(e, "client-main", br_client_main, NULL);
        chaos_spawn(e, "server", br_server, NULL);
    }
}

/* ---- secondary: device 1 is served by a second client object that attaches with
 * open_in_secondary (VDI-SPEC 8.13) while the primary serves device 0. The secondary checks
 * the data, maps each buffer through a handle (its own address back, and the same bytes
 * through the primary), and closes once its device ended: VD_E_CLOSE, then NOERROR. */

static void secondary_actor(void *arg) {
    (void)arg;
    vdi_client_set *sc = S.secondary;
    VDConfig cfg;
    vdi_client_device *dv;
    if (!ok(vdi_client_set_open_in_secondary(sc, S.name), "open_in_secondary") ||
        !ok(vdi_client_set_get_configuration(sc, 0, &cfg), "secondary get_configuration"))
        return;
    if (cfg.deviceCount != NDEV || cfg.blockSize != BUF)
        chaos_report(S.e, "model", "the secondary sees %u devices of block size %u",
                     cfg.deviceCount, cfg.blockSize);
    if (!ok(vdi_client_set_open_device(sc, dev_name(1), &dv), "secondary open_device"))
        return;
    ST(S.cdev[1], dv);
    VDC_Command *c;
    int rc;
    while ((rc = get_cmd(1, dv, VDI_INFINITE, &c)) == NOERROR) {
        if (check_got(1, c))
            return;
        if (c->commandCode == VDC_Write) {
            uint32_t h;
            uint8_t *mine, *primary;
            if (!ok(vdi_client_set_get_buffer_handle(sc, c->buffer, &h), "get_buffer_handle") ||
                !ok(vdi_client_set_map_buffer_handle(sc, h, &mine), "map_buffer_handle") ||
                !ok(vdi_client_set_map_buffer_handle(S.client, h, &primary),
                    "map_buffer_handle in the primary"))
                return;
            if (mine != c->buffer || memcmp(primary, c->buffer, BUF) != 0)
                chaos_report(S.e, "data", "buffer handle %u does not map the command's bytes", h);
        }
        complete(1, c);
    }
    ST(S.client_rc[1], rc);
    if (rc != VD_E_CLOSE) {
        (void)ok(rc, "secondary get_command");
        return;
    }
    (void)ok(vdi_client_set_close(sc), "secondary close after its device ended");
}

static void setup_secondary(chaos_engine *e) {
    if (setup_or_report(e, END_SECONDARY, setup_set) == 0) {
        spawn_agent(e);
        chaos_spawn(e, "client-dev0", client_actor, (void *)0);
        chaos_spawn(e, "secondary", secondary_actor, NULL);
        chaos_spawn(e, "server", server_actor, NULL);
    }
}

/* ---- close-in-last-callback: a normal end whose last completion comes after both devices
 * closed: each device thread holds its flush until get_command answers VD_E_CLOSE, then
 * completes it (complete_command keeps working after VD_E_CLOSE, VDI-SPEC 4). The routine
 * of the last callback, the one whose take makes the set Normally Terminated, closes the
 * set: close answers NOERROR and the agent returns NOERROR (NT came before the close). */

static void lc_client_actor(void *arg) {
    int d = (int)(intptr_t)arg;
    VDC_Command *c, *flush = NULL;
    int rc;
    for (;;) {
        rc = get_cmd(d, LD(S.cdev[d]), VDI_INFINITE, &c);
        if (rc == VD_E_CLOSE && flush && S.end == END_CLOSE_HOLDING && d == 0) {
            ST(S.held_cmd, (int)flush->position + 1); /* kept, never completed */
            break;
        }
        if (rc == VD_E_CLOSE && flush) {
            VDC_Command *f = flush;
            flush = NULL;
            if (complete(d, f) != NOERROR)
                break;
            continue; /* and VD_E_CLOSE again */
        }
        if (rc != NOERROR)
            break;
        if (check_got(d, c))
            return;
        if (c->commandCode == VDC_Flush && !flush)
            flush = c; /* held across the end of the device */
        else
            complete(d, c);
    }
    ST(S.client_rc[d], rc);
    if (rc != VD_E_CLOSE)
        chaos_report(S.e, "model", "get_command ended with %s", vdi_strerror(rc));
    /* released: the client's close, on another actor, frees this thread's views next */
    __atomic_fetch_add(&S.devs_done, 1, __ATOMIC_RELEASE); /* (an RMW: both threads' count) */
    signal_all();
}

static void setup_close_in_last(chaos_engine *e) {
    if (setup_or_report(e, END_CLOSE_IN_LAST, setup_set) == 0) {
        spawn_agent(e);
        chaos_spawn(e, "client-dev0", lc_client_actor, (void *)0);
        chaos_spawn(e, "client-dev1", lc_client_actor, (void *)1);
        chaos_spawn(e, "server", server_actor, NULL);
    }
}

/* ---- close-holding: as close-in-last-callback, but device 0's thread keeps its flush past
 * VD_E_CLOSE and never completes it; once both device threads ended, the client closes.
 * The object holds a delivered, uncompleted command, so it is not Normally Terminated
 * (VDI-SPEC 3): close answers VD_E_OPEN and aborts the set for the server (5.2), whose
 * agent drains the held flush with 995 and returns VD_E_ABORT, never waiting for it. */

static void ch_client_main(void *arg) {
    (void)arg;
    AWAIT(ACQ(S.devs_done) == NDEV);
    ST(S.close_rc, vdi_client_set_close(S.client));
    ST(S.client_closed, 1);
}

static void setup_close_holding(chaos_engine *e) {
    if (setup_or_report(e, END_CLOSE_HOLDING, setup_set) == 0) {
        spawn_agent(e);
        chaos_spawn(e, "client-dev0", lc_client_actor, (void *)0);
        chaos_spawn(e, "client-dev1", lc_client_actor, (void *)1);
        chaos_spawn(e, "client-main", ch_client_main, NULL);
        chaos_spawn(e, "server", server_actor, NULL);
    }
}

/* ---- watchdog-busy: a set with serverTimeOut T whose client completes every command after
 * a pause shorter than 2T, for longer than 2T in all. The watchdog's start is reset
 * whenever the agent takes a completion (VDI-SPEC 4), so it must never fire: the session
 * ends normally. (The model lets a watchdog fire at any moment; this one is judged here.) */

static void wb_client_actor(void *arg) {
    int d = (int)(intptr_t)arg;
    VDC_Command *c;
    int rc;
    while ((rc = get_cmd(d, LD(S.cdev[d]), VDI_INFINITE, &c)) == NOERROR) {
        if (check_got(d, c))
            return;
        sleep_ms(BUSY_PAUSE_MS);
        if (complete(d, c) != NOERROR)
            break;
    }
    ST(S.client_rc[d], rc);
}

static void setup_watchdog_busy(chaos_engine *e) {
    if (setup_or_report(e, END_WATCHDOG_BUSY, setup_set) == 0) {
        spawn_agent(e);
        chaos_spawn(e, "client-dev0", wb_client_actor, (void *)0);
        chaos_spawn(e, "client-dev1", wb_client_actor, (void *)1);
        chaos_spawn(e, "server", server_actor, NULL);
    }
}

/* ---- server-death: the set is created and opened, and the server's process dies during
 * its configuration (before end_configuration: after nothing, after begin_configuration, or
 * after request_buffers too) while the client waits in get_configuration without a
 * timeout. The client watches the server from its open on (VDI-SPEC 5.3): it must notice
 * and answer VD_E_ABORT, never wait for ever. */

static void sd_server(void *arg) {
    (void)arg;
    if (!LD(S.dead) &&
        !ok(vdi_server_set_begin_configuration(S.server, VDF_WriteMedia, BUF, 0, 65536, 0),
            "begin_configuration"))
        return;
    chaos_point(S.e, "scenario/server:configuring");
    if (!LD(S.dead) &&
        !ok(vdi_server_set_request_buffers(S.server, BUF, 0, NDEV * NCMD), "request_buffers"))
        return;
    AWAIT(LD(S.dead)); /* it never ends its configuration */
}

static void sd_killer(void *arg) {
    (void)arg;
    for (int k = 0; k < 4; k++) /* one of several moments */
        chaos_point(S.e, "scenario/killer:before");
    ST(S.dead, 1);
    chaos_kill_server_peer(S.e);
    signal_all();
}

static void sd_client(void *arg) {
    (void)arg;
    VDConfig cfg;
    int rc = VD_E_TIMEOUT;
    for (int k = 0; k < 3 && rc == VD_E_TIMEOUT; k++) /* a few short waits first */
        rc = vdi_client_set_get_configuration(S.client, CFG_TIMEOUT_MS, &cfg);
    if (rc == VD_E_TIMEOUT)
        rc = vdi_client_set_get_configuration(S.client, VDI_INFINITE, &cfg);
    ST(S.cfg_rc, rc);
    /* In Abort: close answers NOERROR and frees everything (5.2). */
    int closed = vdi_client_set_close(S.client);
    if (rc == VD_E_ABORT && closed != NOERROR)
        chaos_report(S.e, "model", "the client's close after the server died returned %s",
                     vdi_strerror(closed));
    ST(S.client_closed, 1);
}

static int setup_server_death_set(chaos_engine *e, int end) {
    if (new_objects(e, end))
        return -1;
    VDConfig cfg = {.deviceCount = NDEV};
    STEP(vdi_client_set_create(S.client, S.name, &cfg));
    STEP(vdi_server_set_open(S.server, NULL, S.name));
    return 0;
}

static void setup_server_death(chaos_engine *e) {
    if (setup_or_report(e, END_SERVER_DEATH, setup_server_death_set) == 0) {
        chaos_spawn(e, "client-main", sd_client, NULL);
        chaos_spawn(e, "server", sd_server, NULL);
        chaos_spawn(e, "killer", sd_killer, NULL);
    }
}

static void check_common(chaos_engine *e) {
    if (S.setup_failed)
        return;
    int aborted = 0;
    int agent = LD(S.agent_rc), broke = LD(S.broken);
    for (int i = 0; i < S.ncmd; i++) {
        /* a session broken by a fault may not have sent everything */
        int want = broke && !LD(S.sends[i]) ? 0 : 1;
        if (LD(S.calls[i]) != want)
            chaos_report(e, "ledger", "command %d got %d callbacks", i, LD(S.calls[i]));
        aborted |= S.cmd[i].completionCode == ERROR_OPERATION_ABORTED;
    }
    for (int d = 0; d < S.ndev; d++) { /* per device, callbacks in completion order */
        int ncb = LD(S.ncb[d]), ncp = LD(S.ncp[d]);
        for (int k = 0; k < ncb; k++)
            if (k >= ncp || LD(S.cb_order[d][k]) != LD(S.cp_order[d][k])) {
                chaos_report(e, "ledger",
                             "device %d: callback %d is command %d, but the client "
                             "completed command %d at that rank",
                             d, k, LD(S.cb_order[d][k]), k < ncp ? LD(S.cp_order[d][k]) : -1);
                break;
            }
    }
    if (S.end == END_OUT_OF_ORDER && agent == NOERROR)
        for (int d = 0; d < NDEV; d++)
            if (LD(S.ncb[d]) != NCMD + 1)
                chaos_report(e, "ledger", "device %d: %d real completions of %d", d, LD(S.ncb[d]),
                             NCMD + 1);
    if (chaos_faults_armed(e) &&
        (broke || documented_fault(agent) || documented_fault(LD(S.agent_rc2))))
        return; /* an injected fault ended the session early; the ledger held */
    if (S.end == END_WATCHDOG) {
        if (LD(S.accepted) && agent != VD_E_ABORT)
            chaos_report(e, "model", "the watchdog did not abort: agent %s", vdi_strerror(agent));
        if (LD(S.accepted) && chaos_now(e) - S.start_ms < 2 * WATCHDOG_MS)
            chaos_report(e, "model", "aborted after %llu ms, before 2T",
                         (unsigned long long)(chaos_now(e) - S.start_ms));
        return;
    }
    if (S.end == END_SERVER_DEATH) {
        if (!broke && LD(S.cfg_rc) != VD_E_ABORT)
            chaos_report(e, "model",
                         "get_configuration returned %s after the server died configuring",
                         vdi_strerror(LD(S.cfg_rc)));
        return;
    }
    if (S.end == END_CLOSE_HOLDING) {
        int held = LD(S.held_cmd) - 1;
        if (held < 0)
            chaos_report(e, "model", "device 0 never held a command past VD_E_CLOSE");
        else if (S.cmd[held].completionCode != ERROR_OPERATION_ABORTED)
            chaos_report(e, "model", "the flush held past the close ended with code %u, not 995",
                         S.cmd[held].completionCode);
        if (LD(S.close_rc) != VD_E_OPEN)
            chaos_report(e, "model", "the client's close holding a command returned %s",
                         vdi_strerror(LD(S.close_rc)));
        if (agent != VD_E_ABORT)
            chaos_report(e, "model",
                         "the agent returned %s after the client closed holding a "
                         "command",
                         vdi_strerror(agent));
        return;
    }
    if (S.end == END_CLOSE || S.end == END_CLOSE_IN_CALLBACK) {
        if (agent != (LD(S.agent_late) ? VD_E_PROTOCOL : VD_E_ABORT))
            chaos_report(e, "model", "the agent returned %s", vdi_strerror(agent));
        for (int d = 0; d < NDEV; d++)
            if (LD(S.client_rc[d]) != VD_E_ABORT)
                chaos_report(e, "model", "device %d ended with %s, not VD_E_ABORT", d,
                             vdi_strerror(LD(S.client_rc[d])));
    } else if (S.end == END_CLIENT_CLOSE) {
        if (agent != VD_E_ABORT)
            chaos_report(e, "model", "the client's premature close left the agent with %s",
                         vdi_strerror(agent));
        for (int d = 0; d < NDEV; d++)
            if (LD(S.client_rc[d]) != VD_E_ABORT && LD(S.client_rc[d]) != NOERROR)
                chaos_report(e, "model", "device %d ended with %s", d,
                             vdi_strerror(LD(S.client_rc[d])));
    } else if (S.end == END_TIMEOUTS || S.end == END_BACKUP_RESTORE || S.end == END_SECONDARY ||
               S.end == END_CLOSE_IN_LAST || S.end == END_WATCHDOG_BUSY) {
        if (S.end == END_WATCHDOG_BUSY && chaos_now(e) - S.start_ms <= 2 * WATCHDOG_MS)
            chaos_report(e, "model", "the session lasted %llu ms, not past 2T = %u ms",
                         (unsigned long long)(chaos_now(e) - S.start_ms), 2 * WATCHDOG_MS);
        if (S.end == END_CLOSE_IN_LAST && (!LD(S.close_returned) || LD(S.close_rc) != NOERROR))
            chaos_report(e, "model", "the close in the last routine %s %s",
                         LD(S.close_returned) ? "returned" : "never ran:",
                         LD(S.close_returned) ? vdi_strerror(LD(S.close_rc)) : "");
        /* nothing aborts these sessions: every command is completed by the client */
        if (agent != NOERROR || (S.end == END_BACKUP_RESTORE && LD(S.agent_rc2) != NOERROR))
            chaos_report(e, "model", "the agent returned %s%s%s%s", vdi_strerror(agent),
                         S.end == END_BACKUP_RESTORE ? " (restore: " : "",
                         S.end == END_BACKUP_RESTORE ? vdi_strerror(LD(S.agent_rc2)) : "",
                         S.end == END_BACKUP_RESTORE ? ")" : "");
        for (int i = 0; i < S.ncmd; i++)
            if (S.cmd[i].completionCode != ERROR_SUCCESS)
                chaos_report(e, "model",
                             "command %d ended with code %u in a session nobody "
                             "aborted",
                             i, S.cmd[i].completionCode);
        if (S.end == END_TIMEOUTS && (!LD(S.cfg_timeouts) || !LD(S.cmd_timeouts)))
            chaos_report(e, "model",
                         "no timeout expired (%d of get_configuration, %d of get_command)",
                         LD(S.cfg_timeouts), LD(S.cmd_timeouts));
        for (int d = 0; d < S.ndev; d++)
            if (LD(S.client_rc[d]) != VD_E_CLOSE)
                chaos_report(e, "model", "device %d ended with %s, not VD_E_CLOSE", d,
                             vdi_strerror(LD(S.client_rc[d])));
    } else if (aborted && agent != VD_E_ABORT) {
        chaos_report(e, "model", "a 995 was delivered but the agent returned %s",
                     vdi_strerror(agent));
    } else if (agent != NOERROR && agent != VD_E_ABORT) {
        chaos_report(e, "model", "the agent returned %s", vdi_strerror(agent));
    }
}

static void cleanup_common(int clean) {
    if (clean && !S.setup_failed) {
        if (S.end != END_CLOSE && S.end != END_CLOSE_IN_CALLBACK &&
            !(S.end == END_CLOSE_IN_LAST && LD(S.close_returned)))
            (void)vdi_server_set_close(S.server);
        (void)vdi_client_set_close(S.client);
        vdi_client_set_free(S.secondary);
        vdi_client_set_free(S.client);
        vdi_server_set_free(S.server);
    }
    /* After a finding, actors stopped mid-call: the objects cannot be closed and are
     * abandoned, but kept reachable so that LeakSanitizer reports only real leaks. */
    if (!clean && !S.setup_failed) {
        abandon(S.client);
        abandon(S.server);
        abandon(S.secondary);
        /* Nobody will close it: remove the set's name so nothing stays in /dev/shm (the
         * naming is the reference's, see ref/NOTES.md). */
        char path[160];
        if (vdi_seam_shm_name(path, sizeof path, NULL, S.name) == 0)
            chaos_shm_unlink(path); /* the engine's pooled object, or the system's */
    }
    memset(&S, 0, sizeof S);
}

static const chaos_scenario scenarios[] = {
    {"close-race",
     "premature server close racing two devices of three commands, their completions and "
     "the agent's callbacks",
     setup_close_race, check_common, cleanup_common},
    {"close-in-callback",
     "the server closes the set from inside the agent's first callback while commands are "
     "outstanding on two devices",
     setup_close_in_callback, check_common, cleanup_common},
    {"watchdog",
     "a client that takes commands and never completes them; the serverTimeOut watchdog "
     "must abort in virtual time",
     setup_watchdog, check_common, cleanup_common},
    {"server-abort",
     "server signal_abort from a thread of its own racing sends, completions, device closes "
     "and the agent's normal end",
     setup_server_abort, check_common, cleanup_common},
    {"out-of-order",
     "clients hold every write of a device and complete them last first; the agent must "
     "deliver each device's completions in the order the client made them",
     setup_out_of_order, check_common, cleanup_common},
    {"client-death",
     "the client process dies at a random point (simulated: its actors stop and the "
     "liveness seam says it is gone); the server must notice and drain with 995",
     setup_client_death, check_common, cleanup_common},
    {"client-abort",
     "client signal_abort racing completions, device closes and the agent's normal end",
     setup_client_abort, check_common, cleanup_common},
    {"client-close",
     "the client closes with two devices open while their threads block in get_command; "
     "they wake with VD_E_ABORT, close answers VD_E_OPEN and the server drains with 995",
     setup_client_close, check_common, cleanup_common},
    {"send-abort",
     "a sender per device racing signal_abort from both sides; each send's code must agree "
     "with its callback, and no send is accepted after an abort returned",
     setup_send_abort, check_common, cleanup_common},
    {"timeouts",
     "the server configures and sends after pauses; get_configuration and get_command time "
     "out in virtual time only when they must",
     setup_timeouts, check_common, cleanup_common},
    {"backup-restore",
     "three devices back up two blocks each, the set is created again under the same name "
     "and restored; restored data must equal the backup",
     setup_backup_restore, check_common, cleanup_common},
    {"secondary",
     "device 1 served by a secondary client object (open_in_secondary, buffer handles) "
     "while the primary serves device 0; both end normally",
     setup_secondary, check_common, cleanup_common},
    {"close-in-last-callback",
     "both devices end normally while each holds its flush past VD_E_CLOSE; the routine of "
     "the last callback, which ends the set normally, closes it: NOERROR, and the agent "
     "returns NOERROR",
     setup_close_in_last, check_common, cleanup_common},
    {"close-holding",
     "device 0's thread keeps its flush past VD_E_CLOSE, then the client closes: VD_E_OPEN, "
     "the set aborts for the server and the agent drains the held command with 995",
     setup_close_holding, check_common, cleanup_common},
    {"watchdog-busy",
     "serverTimeOut 50 ms and a client that completes each command 35 ms after it got it, "
     "for longer than 2T in all: each completion taken restarts the watchdog, which must "
     "never fire",
     setup_watchdog_busy, check_common, cleanup_common},
    {"server-death",
     "the server's process dies during its configuration (before end_configuration) while "
     "the client waits in get_configuration without a timeout: VD_E_ABORT, not for ever",
     setup_server_death, check_common, cleanup_common},
};

const chaos_scenario *chaos_scenarios(size_t *count) {
    *count = sizeof scenarios / sizeof scenarios[0];
    return scenarios;
}

const chaos_scenario *chaos_decode_input(const uint8_t *data, size_t size, chaos_config *cfg) {
    size_t n = sizeof scenarios / sizeof scenarios[0];
    memset(cfg, 0, sizeof *cfg);
    cfg->strategy = CHAOS_BYTES;
    cfg->record_events = 1;
    cfg->max_steps = 20000;
    if (size > 2 && (data[1] & 0x80)) {
        cfg->fault_mode = (data[1] & 1) ? CHAOS_FAULT_PERSISTENT : CHAOS_FAULT_ONCE;
        cfg->fault_n = 1u + data[2] % 32u;
        cfg->fault_errno = ENOMEM;
    }
    cfg->bytes = size > 3 ? data + 3 : NULL;
    cfg->nbytes = size > 3 ? size - 3 : 0;
    if (size > 1 && (data[1] & 0x40)) {
        /* A PCT schedule: the next eight bytes are its seed, bits 1-2 of byte 1 its depth
         * (1-3). Compact, and good at the depth-d orderings a byte-per-decision schedule
         * reaches slowly. */
        uint64_t seed = 0;
        for (size_t i = 0; i < 8 && 3 + i < size; i++)
            seed |= (uint64_t)data[3 + i] << (8 * i);
        cfg->strategy = CHAOS_PCT;
        cfg->seed = seed;
        cfg->pct_depth = 1u + ((data[1] >> 1) & 3u) % 3u;
        cfg->pct_steps = 200;
        cfg->bytes = NULL;
        cfg->nbytes = 0;
    }
    return &scenarios[size > 0 ? data[0] % n : 0];
}

const chaos_scenario *chaos_scenario_find(const char *name) {
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++)
        if (strcmp(scenarios[i].name, name) == 0)
            return &scenarios[i];
    return NULL;
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* The resources oracle: after a run that ended clean (or a setup that failed under an
 * injected fault), no file descriptor, thread or shared-memory name is left behind: not
 * bound in the engine's pool of objects, nor in /dev/shm. fds counts the process's
 * descriptors before the run less the pool's own, which may grow or shrink in a run. */
static void check_resources(chaos_engine *e, int fds, int threads, const char *name,
                            int free_mode) {
    int fds_after = count_entries("/proc/self/fd") - chaos_shm_pool_fds(),
        threads_after = count_entries("/proc/self/task");
    if (fds >= 0 && fds_after > fds)
        chaos_report(e, "resources", "%d file descriptors left open", fds_after - fds);
    /* (in free-running mode the actors' own threads may linger an instant after join) */
    if (threads >= 0 && threads_after > threads && !free_mode)
        chaos_report(e, "resources", "%d threads left running", threads_after - threads);
    char path[160];
    int fd =
        vdi_seam_shm_name(path, sizeof path, NULL, name) == 0 ? shm_open(path, O_RDONLY, 0) : -1;
    if (fd >= 0) {
        close(fd);
        chaos_report(e, "resources", "the set's name %s is left in /dev/shm", path);
    } else if (chaos_shm_bound(path)) {
        chaos_report(e, "resources", "the set's name %s is left (never unlinked)", path);
    }
}

static void add_site(char *out, size_t cap, const char *set, const char *what,
                     const vdi_error_site *e) {
    size_t n = strlen(out);
    if (e->file && n < cap)
        snprintf(out + n, cap - n, "\n  %s %s: %s:%d: %s (%s)", set, what, e->file, e->line,
                 e->why ? e->why : "", vdi_strerror(e->code));
}

/* The library's own account of a run that ended in a finding, for its text: where the
 * sets' last failures were raised and what aborted each (vdi_seam_*_error_site). A set
 * whose lock a stopped thread holds says so. */
static void error_sites(char *out, size_t cap) {
    struct {
        const char *name;
        int rc;
        vdi_error_site failed, aborted;
    } sides[3] = {{.name = "client set"}, {.name = "server set"}, {.name = "secondary set"}};
    sides[0].rc =
        S.client ? vdi_seam_client_error_site(S.client, &sides[0].failed, &sides[0].aborted) : -1;
    sides[1].rc =
        S.server ? vdi_seam_server_error_site(S.server, &sides[1].failed, &sides[1].aborted) : -1;
    sides[2].rc = S.secondary
                      ? vdi_seam_client_error_site(S.secondary, &sides[2].failed, &sides[2].aborted)
                      : -1;
    char body[480] = "";
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(body);
        if (sides[i].rc == 1 && n < sizeof body)
            snprintf(body + n, sizeof body - n, "\n  %s: its lock is held by a stopped thread",
                     sides[i].name);
        if (sides[i].rc != 0)
            continue;
        add_site(body, sizeof body, sides[i].name, "last failure", &sides[i].failed);
        add_site(body, sizeof body, sides[i].name, "aborted by", &sides[i].aborted);
    }
    if (body[0])
        snprintf(out, cap, "\nerror sites (the library's own account):%s", body);
}

int chaos_scenario_run(const chaos_scenario *sc, const chaos_config *cfg, chaos_result *r) {
    static int swept; /* the sets of runs that died with the process, in an earlier one */
    if (!swept) {
        swept = 1;
        (void)vdi_seam_reclaim_dead("chaos-");
    }
    memset(r, 0, sizeof *r);
    chaos_config named = *cfg;
    if (!named.label)
        named.label = sc->name; /* for the note a death of the process leaves */
    /* The sets' objects from the engine's pool, kept between runs (VDICHAOS_SHM_POOL=0:
     * the system's, in /dev/shm, to compare). */
    const char *pool = getenv("VDICHAOS_SHM_POOL");
    named.shm_pool = !cfg->free_running && !(pool && strcmp(pool, "0") == 0);
    chaos_engine *e = chaos_engine_new(&named);
    if (!e)
        abort();
    int fds = count_entries("/proc/self/fd") - chaos_shm_pool_fds(),
        threads = count_entries("/proc/self/task");
    chaos_seams_install(e);
    /* The reference's own invariant checks (debug builds) stop a run that breaks one
     * before any oracle sees it; VDICHAOS_NO_INVARIANTS=1 leaves the bug to the oracles. */
    const char *no_inv = getenv("VDICHAOS_NO_INVARIANTS");
    vdi_seam_debug_invariants(!(no_inv && *no_inv && strcmp(no_inv, "0")));
    /* Every call is recorded (chaos_recorder.h: the history, and the timeline's lines),
     * whether the model oracle judges the history or not: VDICHAOS_NO_MODEL=1 turns the
     * judgement off, to measure what it costs. */
    const char *no_model = getenv("VDICHAOS_NO_MODEL");
    int model = !cfg->free_running && !(no_model && *no_model && strcmp(no_model, "0"));
    if (!cfg->free_running) /* real threads: one actor at a time no more */
        chaos_recorder_start(e);
    sc->setup(e);
    chaos_outcome out = chaos_run(e);
    if (out == CHAOS_DONE) {
        sc->check(e);
        if (!chaos_finding(e)[0] && model)
            r->model_checked = chaos_linearize(e, chaos_recorder_end());
        if (chaos_finding(e)[0])
            out = CHAOS_FINDING;
    }
    chaos_recorder_stop();
    chaos_seams_install(NULL);
    char sites[512] = "";
    if (out != CHAOS_DONE || chaos_finding(e)[0])
        error_sites(sites, sizeof sites);
    char name[sizeof S.name];
    memcpy(name, S.name, sizeof name);
    if (named.shm_pool)
        chaos_seams_install_pool(); /* the closes unlink and unmap pooled objects */
    sc->cleanup(out == CHAOS_DONE);
    chaos_seams_install(NULL);
    if (out == CHAOS_DONE) {
        check_resources(e, fds, threads, name, cfg->free_running);
        if (chaos_finding(e)[0])
            out = CHAOS_FINDING;
    }
    r->outcome = out;
    r->finding = out != CHAOS_DONE;
    snprintf(r->text, sizeof r->text, "%s%s", chaos_finding(e), sites);
    r->hash = chaos_trace_hash(e);
    r->steps = chaos_steps(e);
    r->faults_injected = chaos_faults_injected(e);
    const char *const *fp;
    r->nfail_points = chaos_fail_points_seen(e, &fp);
    memcpy(r->fail_points, fp, r->nfail_points * sizeof *fp);
    r->actors = chaos_actor_count(e);
    for (int id = 0; id <= r->actors; id++)
        r->actor_names[id] = chaos_actor_name(e, id);
    const uint32_t *d;
    r->ndecisions = chaos_decisions(e, &d);
    r->decisions = malloc((r->ndecisions + 1) * sizeof *d);
    if (r->decisions && r->ndecisions)
        memcpy(r->decisions, d, r->ndecisions * sizeof *d);
    const int8_t *st;
    (void)chaos_stays(e, &st);
    r->stays = malloc(r->ndecisions + 1);
    for (size_t i = 0; r->stays && i < r->ndecisions; i++) {
        r->stays[i] = st[i];
        r->preemptions += st[i] >= 0 && (uint32_t)st[i] != d[i];
    }
    const chaos_event *ev;
    r->nevents = chaos_events(e, &ev);
    r->events = malloc((r->nevents + 1) * sizeof *ev);
    if (r->events && r->nevents)
        memcpy(r->events, ev, r->nevents * sizeof *ev);
    /* Notes are the engine's strings: the result keeps its own copies in one block. */
    size_t text = 0;
    for (size_t i = 0; r->events && i < r->nevents; i++)
        text += ev[i].note ? strlen(ev[i].point) + 1 : 0;
    r->notes = text ? malloc(text) : NULL;
    for (size_t i = 0, at = 0; r->events && i < r->nevents; i++) {
        if (!ev[i].note)
            continue;
        size_t n = strlen(ev[i].point) + 1;
        if (r->notes)
            memcpy(r->notes + at, ev[i].point, n);
        r->events[i].point = r->notes ? r->notes + at : "";
        at += n;
    }
    if (cfg->strategy == CHAOS_DFS) {
        size_t cap = r->ndecisions + 1;
        r->dfs_next = malloc(cap * sizeof *r->dfs_next);
        r->ndfs_next = r->dfs_next ? chaos_dfs_next(e, r->dfs_next, cap) : 0;
        if (!r->ndfs_next) {
            free(r->dfs_next);
            r->dfs_next = NULL;
        }
    }
    chaos_engine_free(e);
    return r->finding;
}

void chaos_result_free(chaos_result *r) {
    free(r->decisions);
    free(r->stays);
    free(r->events);
    free(r->notes);
    free(r->dfs_next);
    memset(r, 0, sizeof *r);
}
