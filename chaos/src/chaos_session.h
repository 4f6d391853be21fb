/* chaos_session.h: what the files of the scenario library share (internal to chaos/src).
 * A scenario runs one session: a set built with the real reference (chaos_session.c), actors
 * spawned by its family (chaos_scenarios.c), and the ledger oracle that every callback, send,
 * completion and delivery goes through (chaos_session_ledger.c, on the ledger of
 * chaos/ledger.h); chaos_run.c runs it under the engine and judges the run. There is one
 * session at a time, S. */
#ifndef CHAOS_SESSION_H
#define CHAOS_SESSION_H

#include <stdint.h>

#include "chaos/atomics.h"
#include "chaos/ledger.h"
#include "chaos/scenario.h"
#include "vdi/vdi.h"

#define NDEV 2   /* devices of the standard session */
#define MAXDEV 3 /* the most any scenario uses (backup-restore) */
#define NCMD 3
#define NALL (NDEV * NCMD + NDEV) /* data commands and one flush per device */
#define MAXCMD 16
#define BUF 4096
#define BLOCKS 2 /* backup-restore: blocks backed up and restored per device */

/* Shared by the actors on purpose: relaxed atomics keep the oracle out of TSan's view
 * without adding happens-before edges that could hide the reference's own races. */
#define LD(x) CHAOS_LOAD_RELAXED(&(x))
#define ST(x, v) CHAOS_STORE_RELAXED(&(x), (v))
/* Except where one actor hands objects to another (device handles opened during the run):
 * a real program would synchronise there, so these are release/acquire. */
#define ACQ(x) CHAOS_LOAD_ACQUIRE(&(x))
#define REL(x, v) CHAOS_STORE_RELEASE(&(x), (v))

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
    chaos_ledger ledger; /* every send and callback (chaos/ledger.h) */
    chaos_ledger_cmd ledger_cmd[MAXCMD];
    int held_cmd;  /* close-holding: the command device 0 never completed, + 1 */
    int devs_done; /* close-holding: device threads that saw VD_E_CLOSE */
    int cfg_rc;    /* server-death: what the client's get_configuration answered */
    /* the delivery oracle, per device: sends accepted, those accepted before close_device
     * was called, commands the client got */
    int sent_ok[MAXDEV], before_close[MAXDEV], close_called[MAXDEV], delivered[MAXDEV];
    int agent_rc, agent_late;
    int agent_runs; /* backup-restore runs the agent twice */
    int close_rc, close_returned;
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

/* One set of ndev devices up to Active, buffers allocated, commands filled in. */
/* One step of building a set: a failed call ends the build with its code in S.setup_rc. */
#define STEP(call)                                                                                 \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_ != NOERROR) {                                                                      \
            S.setup_rc = rc_;                                                                      \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

/* The one session of the running scenario (chaos_session.c). */
extern session chaos_session_state;
#define S chaos_session_state

/* ---- chaos_session.c: building and ending the session ------------------------------------ */
void session_signal(void);   /* a condition changed: wake every AWAIT */
void session_sleep(long ms); /* virtual time */
void session_break(void);    /* an injected fault ended the session: abort both sides */
int session_ok(int rc, const char *what); /* a call that must succeed: 1 when it did */
int session_documented_fault(int rc);     /* a code an OS failure may turn into (8.12) */
const char *session_dev_name(int d);
int session_new(chaos_engine *e, int end); /* S cleared, the objects made, no set yet */
void session_fill_command(int i, int d, int code, uint8_t *buf);
int session_fill_writes(void);
int session_setup_set(chaos_engine *e, int end); /* the standard set, Active, commands filled */
/* Build with build(e, end); a documented failure under a fault plan is a clean outcome. */
int session_setup(chaos_engine *e, int end, int (*build)(chaos_engine *, int));
void session_cleanup(int clean); /* a chaos_scenario's cleanup */

/* ---- chaos_session_ledger.c: the scenarios' side of the ledger oracle ----------------------- */
uint8_t ledger_pattern(int d, int k, int j); /* backup-restore: byte j of block k of device d */
void ledger_routine(VDS_Command *cmd);       /* every command's completion routine */
int ledger_complete(int d, VDC_Command *c);  /* the client completes c, noted first */
int ledger_check_got(int d, const VDC_Command *c); /* 0 when c is a command sent to d */
int ledger_get_command(int d, vdi_client_device *dev, long timeout_ms, VDC_Command **c);
int ledger_close_device(int d);
void ledger_reset_delivery(void);
int ledger_send(int d, int i);      /* send command i on device d */
void ledger_check(chaos_engine *e); /* the end-of-run checks */

#endif
