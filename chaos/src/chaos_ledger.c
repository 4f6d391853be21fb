/* chaos_ledger.c: the ledger oracle (chaos/ledger.h): one callback per command sent, on
 * the right thread, at the right time, with the code its send or its client gave it. The
 * scenarios (chaos_session_ledger.c), fuzz_stream and fuzz_peer judge their callbacks
 * through it; what only one of them can know stays with it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaos/atomics.h"
#include "chaos/ledger.h"

/* Relaxed on purpose (see chaos/ledger.h). */
#define LD(x) CHAOS_LOAD_RELAXED(&(x))
#define ST(x, v) CHAOS_STORE_RELAXED(&(x), (v))
#define INC(x) ST(x, LD(x) + 1)

void chaos_ledger_init(chaos_ledger *l, chaos_engine *e, chaos_ledger_cmd *cmd, int n, int flags) {
    memset(l, 0, sizeof *l);
    memset(cmd, 0, (size_t)n * sizeof *cmd);
    l->e = e;
    l->n = n;
    l->flags = flags;
    l->agent = -1;
    l->cmd = cmd;
}

void chaos_ledger_agent(chaos_ledger *l, int actor) {
    ST(l->agent, actor);
    ST(l->agent_returned, 0);
}

void chaos_ledger_agent_done(chaos_ledger *l) {
    ST(l->agent_returned, 1);
}

uint32_t chaos_ledger_reject_code(int rc, int *known) {
    *known = 1;
    switch (rc) {
    case VD_E_ABORT:
        return ERROR_OPERATION_ABORTED;
    case VD_E_PROTOCOL:
        return ERROR_INVALID_HANDLE;
    case VD_E_INVALID:
        return ERROR_INVALID_PARAMETER;
    case VD_E_IO_ERROR:
        return ERROR_IO_DEVICE;
    case VD_E_QUEUE_FULL:
        return ERROR_NO_SYSTEM_RESOURCES;
    default:
        *known = 0;
        return 0;
    }
}

/* 1 when i names a command of the session; else reported. */
static int valid(chaos_ledger *l, int i, const char *what) {
    if (i >= 0 && i < l->n)
        return 1;
    chaos_report(l->e, "ledger", "%s of command %d, which is not one of the %d sent", what, i,
                 l->n);
    return 0;
}

int chaos_ledger_send(chaos_ledger *l, int i, vdi_server_device *dev, VDS_Command *cmd) {
    if (!valid(l, i, "send"))
        return vdi_server_device_send_command(dev, cmd);
    chaos_ledger_cmd *c = &l->cmd[i];
    int me = chaos_actor_id(l->e);
    /* Outstanding: accepted more often than the agent called it back (an accepted send's
     * callback may come before the send returns, so the count is taken before it). */
    int outstanding = LD(c->accepts) > LD(c->agent_calls);
    int sync_before = LD(c->sync_calls);
    INC(c->sends);
    INC(c->owed);                  /* until the send says it owes nothing */
    int prev = LD(l->in_send[me]); /* a routine that sends: the sends nest */
    ST(l->in_send[me], i + 1);
    int rc = vdi_server_device_send_command(dev, cmd);
    ST(l->in_send[me], prev);
    int sync = LD(c->sync_calls) - sync_before;
    if (rc == NOERROR) {
        INC(c->accepts);
        INC(l->accepted);
        if (sync)
            chaos_report(l->e, "ledger", "accepted command %d was also called back at once", i);
        return rc;
    }
    int known;
    uint32_t want = chaos_ledger_reject_code(rc, &known);
    if (!known) {
        chaos_report(l->e, "contract", "send_command returned %s", vdi_strerror(rc));
        return rc;
    }
    /* Rows 1 and 2 call nothing back: no routine to call, or the command is outstanding
     * (its callback belongs to the first send). */
    if (rc == VD_E_INVALID && sync == 0 &&
        (!dev || !cmd || !cmd->completionRoutine || outstanding)) {
        ST(c->owed, LD(c->owed) - 1);
        return rc;
    }
    uint32_t code = sync ? LD(c->sync_code) : cmd ? cmd->completionCode : 0;
    if (sync != 1 || code != want || LD(c->sync_bytes) != 0)
        chaos_report(l->e, "ledger",
                     "send of command %d returned %s with %d callbacks on its thread (code %u, "
                     "%u bytes)",
                     i, vdi_strerror(rc), sync, code, sync ? LD(c->sync_bytes) : 0u);
    return rc;
}

/* An agent's callback: a code the client gave the command, with its results, or 995 with
 * no bytes (VDI-SPEC 4: a failed or drained command gets bytesTransferred 0). */
static void check_agent_results(chaos_ledger *l, int i, const VDS_Command *cmd) {
    const chaos_ledger_cmd *c = &l->cmd[i];
    uint32_t code = cmd->completionCode;
    if (code == ERROR_OPERATION_ABORTED) {
        if (cmd->bytesTransferred != 0)
            chaos_report(l->e, "ledger", "failed command %d reports %u bytes", i,
                         cmd->bytesTransferred);
        return;
    }
    if (!(l->flags & CHAOS_LEDGER_COMPLETIONS))
        return;
    if (!LD(c->completed) || LD(c->code) != code) {
        if (code == ERROR_SUCCESS)
            chaos_report(l->e, "ledger", "command %d completed with a code the client never gave",
                         i);
        else
            chaos_report(l->e, "ledger", "command %d got code %u, which the client never gave it",
                         i, code);
        return;
    }
    if (cmd->bytesTransferred != LD(c->bytes) || cmd->outPosition != LD(c->pos))
        chaos_report(l->e, "ledger",
                     "command %d: results (%u bytes, position %lld) differ from what the client "
                     "completed (%u, %lld)",
                     i, cmd->bytesTransferred, (long long)cmd->outPosition, LD(c->bytes),
                     (long long)LD(c->pos));
}

chaos_ledger_kind chaos_ledger_callback(chaos_ledger *l, int i, const VDS_Command *cmd) {
    if (!valid(l, i, "callback"))
        return CHAOS_LEDGER_AGAIN;
    chaos_ledger_cmd *c = &l->cmd[i];
    int me = chaos_actor_id(l->e);
    INC(c->calls);
    INC(l->callbacks);
    if (LD(c->calls) > LD(c->owed)) {
        /* Not one more look at the command: two threads of the library may be writing
         * its results now, a race TSan would report before this finding. */
        chaos_report(l->e, "ledger", "command %d got a second callback (%s)", i,
                     LD(l->in_send[me]) == i + 1 ? "a rejected send's" : "the agent's");
        return CHAOS_LEDGER_AGAIN;
    }
    int agent = LD(l->agent);
    if (LD(l->in_send[me]) == i + 1 || (agent >= 0 && me != agent)) {
        if (LD(l->in_send[me]) != i + 1)
            chaos_report(l->e, "ledger", "callback of command %d on a thread not sending it", i);
        INC(c->sync_calls);
        ST(c->sync_code, cmd->completionCode);
        ST(c->sync_bytes, cmd->bytesTransferred);
        return CHAOS_LEDGER_SYNC;
    }
    INC(c->agent_calls);
    if (LD(l->agent_returned))
        chaos_report(l->e, "ledger", "callback of command %d after the agent returned", i);
    check_agent_results(l, i, cmd);
    return CHAOS_LEDGER_AGENT;
}

void chaos_ledger_completed(chaos_ledger *l, int i, uint32_t code, uint32_t bytes, int64_t pos) {
    if (!valid(l, i, "completion"))
        return;
    chaos_ledger_cmd *c = &l->cmd[i];
    ST(c->code, code);
    ST(c->bytes, bytes);
    ST(c->pos, pos);
    ST(c->completed, 1);
}

void chaos_ledger_uncompleted(chaos_ledger *l, int i) {
    if (valid(l, i, "completion"))
        ST(l->cmd[i].completed, 0);
}

void chaos_ledger_check(chaos_ledger *l, int must_send) {
    for (int i = 0; i < l->n; i++) {
        int owed = LD(l->cmd[i].owed), calls = LD(l->cmd[i].calls);
        if (i < must_send && owed == 0)
            owed = 1; /* never sent: its callback is missing all the same */
        if (calls == owed)
            continue;
        if (owed > 1)
            chaos_report(l->e, "ledger", "command %d got %d callbacks for %d sends", i, calls,
                         owed);
        else
            chaos_report(l->e, "ledger", "command %d got %d callbacks", i, calls);
    }
}

int chaos_ledger_calls(const chaos_ledger *l, int i) {
    return i >= 0 && i < l->n ? LD(l->cmd[i].calls) : 0;
}
int chaos_ledger_accepted(const chaos_ledger *l) {
    return LD(l->accepted);
}
int chaos_ledger_callbacks(const chaos_ledger *l) {
    return LD(l->callbacks);
}
int chaos_ledger_agent_returned(const chaos_ledger *l) {
    return LD(l->agent_returned);
}
