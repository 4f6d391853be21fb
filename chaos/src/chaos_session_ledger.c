/* chaos_session_ledger.c: the scenarios' side of the ledger oracle. Every send, callback,
 * completion and delivery of a scenario goes through here. The ledger (chaos_ledger.c)
 * checks one callback per command, on the right thread, with the code its send or its
 * client gave it; here, what only a scenario knows: nothing after Close returned, data as
 * sent (and restored data as backed up), each device's completions called back in the
 * order the client made them, and VD_E_CLOSE only once every command sent before
 * close_device was delivered. */
#include <stdint.h>

#include "chaos_session.h"

/* backup-restore: the bytes of block k of device d. */
uint8_t ledger_pattern(int d, int k, int j) {
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
        if (cmd->buffer[j] != ledger_pattern(d, k, j)) {
            chaos_report(S.e, "data",
                         "restored block %d of device %d differs from the backup at byte %d", k, d,
                         j);
            return;
        }
}

void ledger_routine(VDS_Command *cmd) {
    int i = (int)(cmd - S.cmd);
    chaos_ledger_kind kind = chaos_ledger_callback(&S.ledger, i, cmd);
    if (kind == CHAOS_LEDGER_AGAIN)
        return;
    int sync = kind == CHAOS_LEDGER_SYNC; /* a rejected send calls back itself */
    if (LD(S.close_returned))
        chaos_report(S.e, "ledger", "callback of command %d after Close returned", i);
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
            chaos_report(S.e, "contract", "close in a callback returned %s",
                         vdi_strerror(LD(S.close_rc)));
        chaos_wake(S.e, &S.nested);
    }
    if (S.end == END_CLOSE_IN_LAST && !sync && chaos_ledger_callbacks(&S.ledger) == S.ncmd) {
        /* The last callback: the set is Normally Terminated as its routine runs (every
         * device closed, nothing else outstanding), so the close nested here answers
         * NOERROR, and the agent still returns NOERROR (VDI-SPEC 4: NT came first). */
        ST(S.close_rc, vdi_server_set_close(S.server));
        ST(S.close_returned, 1);
    }
}

int ledger_complete(int d, VDC_Command *c) {
    int i = (int)c->position;
    int data = c->commandCode == VDC_Write || c->commandCode == VDC_Read;
    uint32_t bytes = data ? (uint32_t)c->size : 0;
    uint64_t pos = (uint64_t)i * 1000u + 7u;
    chaos_ledger_completed(&S.ledger, i, ERROR_SUCCESS, bytes, (int64_t)pos);
    int k = LD(S.ncp[d]);
    ST(S.cp_order[d][k], i);
    ST(S.ncp[d], k + 1);
    int rc = vdi_client_device_complete_command(LD(S.cdev[d]), c, ERROR_SUCCESS, bytes, pos);
    if (rc != NOERROR) {
        chaos_ledger_uncompleted(&S.ledger, i);
        ST(S.ncp[d], k);
    }
    if (rc != NOERROR && rc != VD_E_ABORT)
        chaos_report(S.e, "contract", "complete_command returned %s", vdi_strerror(rc));
    return rc;
}

/* The command a device got: one that was sent (its position is its index), carrying the
 * data that was sent. 0 when it is fine. */
int ledger_check_got(int d, const VDC_Command *c) {
    int i = (int)c->position;
    if (i < 0 || i >= S.ncmd || S.dev_of[i] != d) {
        chaos_report(S.e, "data", "device %d got a command that was not sent to it", d);
        return -1;
    }
    if (c->commandCode == VDC_Write && S.end == END_BACKUP_RESTORE) {
        for (int j = 0; j < BUF; j += 97)
            if (c->buffer == NULL || c->buffer[j] != ledger_pattern(d, S.blk_of[i], j)) {
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
int ledger_get_command(int d, vdi_client_device *dev, long timeout_ms, VDC_Command **c) {
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

int ledger_close_device(int d) {
    if (!LD(S.close_called[d])) {
        ST(S.before_close[d], LD(S.sent_ok[d]));
        ST(S.close_called[d], 1);
    }
    return vdi_server_device_close(S.sdev[d]);
}

/* backup-restore: the restore's devices start again. */
void ledger_reset_delivery(void) {
    for (int d = 0; d < MAXDEV; d++) {
        ST(S.sent_ok[d], 0);
        ST(S.before_close[d], 0);
        ST(S.close_called[d], 0);
        ST(S.delivered[d], 0);
    }
}

/* Send command i on device d: the ledger checks what the send itself promises (VDI-SPEC
 * 4); here, what these sessions promise besides: a send is accepted or refused because the
 * set is aborted or not (or no longer) running, and a send that starts after a signal_abort
 * returned on a set still running is rejected with VD_E_ABORT. */
int ledger_send(int d, int i) {
    int after_abort = LD(S.abort_returned);
    int rc = chaos_ledger_send(&S.ledger, i, S.sdev[d], &S.cmd[i]);
    if (rc == NOERROR)
        ST(S.sent_ok[d], LD(S.sent_ok[d]) + 1);
    else if (rc != VD_E_ABORT && rc != VD_E_PROTOCOL) /* (a code with no row: the ledger's) */
        chaos_report(S.e, "contract", "send_command returned %s", vdi_strerror(rc));
    if (after_abort && rc != VD_E_ABORT)
        chaos_report(S.e, "contract", "send_command after signal_abort returned gave %s",
                     vdi_strerror(rc));
    return rc;
}

/* At the end of a run that finished: one callback per command sent (a session broken by a
 * fault may not have sent everything), each device's real completions called back in the
 * order the client made them, and out-of-order's every completion delivered. */
void ledger_check(chaos_engine *e) {
    int agent = LD(S.agent_rc);
    chaos_ledger_check(&S.ledger, LD(S.broken) ? 0 : S.ncmd);
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
}
