/* chaos/ledger.h: the ledger oracle, for any harness that plays the server side of a set
 * under the engine (the scenarios, fuzz_stream, fuzz_peer). The harness numbers its
 * commands 0..n-1, sends each through chaos_ledger_send and calls chaos_ledger_callback
 * first thing in every completion routine; the ledger reports (chaos_report, oracle
 * "ledger") what VDI-SPEC 4 rules out:
 *   - a second callback of one command, or none for a command sent (chaos_ledger_check);
 *   - an accepted send that called its routine itself; a rejected send whose routine was not
 *     called exactly once, on the sending thread, before the send returned, with the code
 *     of its row and 0 bytes (VD_E_INVALID of rows 1 and 2 owes none: no routine to call,
 *     or the command is outstanding already); a command sent again after its callback owes
 *     one more;
 *   - a callback on a thread that is neither the agent's nor sending that command;
 *   - an agent's callback after the agent returned;
 *   - a drained command (995) that reports bytes;
 *   - with CHAOS_LEDGER_COMPLETIONS (the harness notes every completion its client makes,
 *     chaos_ledger_completed): an agent's callback with a code the client never gave the
 *     command, or with other bytes or position than the client completed it with.
 * A send_command result with no row in the table is reported as "contract".
 *
 * Every field is read and written with relaxed atomics: the actors share the ledger on
 * purpose, and a stronger order would hide the reference's own races from TSan. Read them
 * through the accessors below. The ledger is plain data: embed it and an array of one
 * chaos_ledger_cmd per command in the harness's state, and chaos_ledger_init them at the
 * start of every session. */
#ifndef CHAOS_LEDGER_H
#define CHAOS_LEDGER_H

#include <stdint.h>

#include "chaos/chaos.h"
#include "vdi/vdi.h"

enum {
    CHAOS_LEDGER_COMPLETIONS = 1 /* every client completion is noted: check the results */
};

/* What chaos_ledger_callback says of a callback. */
typedef enum {
    CHAOS_LEDGER_AGAIN = -1, /* a second callback, reported: do not look at the command */
    CHAOS_LEDGER_AGENT = 0,  /* the agent's callback */
    CHAOS_LEDGER_SYNC = 1    /* a rejected send's, on the sending thread */
} chaos_ledger_kind;

typedef struct chaos_ledger_cmd {
    int sends;       /* send_command calls */
    int owed;        /* callbacks its sends owe (all but a VD_E_INVALID row 1 or 2) */
    int accepts;     /* sends that returned NOERROR */
    int calls;       /* routine calls */
    int agent_calls; /* of them, the agent's */
    int sync_calls;  /* of them, on the sending thread during its send */
    uint32_t sync_code, sync_bytes;
    int completed; /* the client completed it (and the library took it) */
    uint32_t code, bytes;
    int64_t pos;
} chaos_ledger_cmd;

typedef struct chaos_ledger {
    chaos_engine *e;
    int n;     /* commands 0..n-1 */
    int flags; /* CHAOS_LEDGER_* */
    int agent; /* the agent's actor id, -1 before chaos_ledger_agent */
    int agent_returned;
    int callbacks;                     /* of every command, in all */
    int accepted;                      /* sends that returned NOERROR */
    int in_send[CHAOS_MAX_ACTORS + 1]; /* per actor: the command it is sending, + 1 */
    chaos_ledger_cmd *cmd;             /* n of them, the harness's */
} chaos_ledger;

/* A new session of n commands, each with its entry in cmd[0..n-1] (cleared here). */
void chaos_ledger_init(chaos_ledger *l, chaos_engine *e, chaos_ledger_cmd *cmd, int n, int flags);
/* The agent runs on this actor (again: a second agent of the session). */
void chaos_ledger_agent(chaos_ledger *l, int actor);
/* execute_completion_agent returned: no callback of the agent may follow. */
void chaos_ledger_agent_done(chaos_ledger *l);

/* send_command(dev, cmd) for command i, checked. Returns what send_command returned. */
int chaos_ledger_send(chaos_ledger *l, int i, vdi_server_device *dev, VDS_Command *cmd);
/* Command i's routine was called with cmd: first thing in every completion routine. */
chaos_ledger_kind chaos_ledger_callback(chaos_ledger *l, int i, const VDS_Command *cmd);
/* The client completes command i with these results (before complete_command: the agent
 * may take it at once); chaos_ledger_uncompleted when complete_command refused it. */
void chaos_ledger_completed(chaos_ledger *l, int i, uint32_t code, uint32_t bytes, int64_t pos);
void chaos_ledger_uncompleted(chaos_ledger *l, int i);
/* After the run: every command sent got exactly one callback, and each of the first
 * must_send commands was sent (0: the harness may have stopped short). */
void chaos_ledger_check(chaos_ledger *l, int must_send);

/* The expected callback code of a send rejected with rc (VDI-SPEC 4's table); 0 with
 * *known 0 when rc has no row. */
uint32_t chaos_ledger_reject_code(int rc, int *known);

int chaos_ledger_calls(const chaos_ledger *l, int i);
int chaos_ledger_accepted(const chaos_ledger *l);
int chaos_ledger_callbacks(const chaos_ledger *l);
int chaos_ledger_agent_returned(const chaos_ledger *l);

#endif
