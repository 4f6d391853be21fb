/* chaos_scenarios.c: the library of scenarios. Each family builds its session
 * (chaos_session.c), spawns its actors (client device threads, the completion agent, server
 * threads, aborters, killers) and, after a finished run, checks what the contract promises
 * for its end: the return codes of the agent, the closes and the device threads. Every
 * callback and send goes through the ledger oracle (chaos_session_ledger.c); chaos_run.c
 * runs one. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "chaos/atomics.h"
#include "chaos_session.h"

static void agent_actor(void *arg) {
    (void)arg;
    ST(S.agent_late, LD(S.close_returned)); /* started on a closed set: PROTOCOL is right */
    ST(S.agent_runs, 1);
    ST(S.agent_rc, vdi_server_set_execute_completion_agent(S.server));
    chaos_ledger_agent_done(&S.ledger);
    session_signal();
}

static void client_actor(void *arg) {
    int d = (int)(intptr_t)arg;
    VDC_Command *c, *held[NCMD];
    int nheld = 0, rc;
    while ((rc = ledger_get_command(d, LD(S.cdev[d]), VDI_INFINITE, &c)) == NOERROR) {
        if (LD(S.dead))
            return; /* a dead process makes no more calls */
        if (ledger_check_got(d, c))
            break;
        if (S.end == END_WATCHDOG)
            continue; /* a hung client: takes commands, never completes them */
        if (S.end == END_OUT_OF_ORDER && c->commandCode == VDC_Write) {
            held[nheld++] = c; /* views stay valid until completed (VDI-SPEC 4) */
            if (nheld < NCMD)
                continue;
            while (nheld) /* all of them, last received first */
                ledger_complete(d, held[--nheld]);
            continue;
        }
        ledger_complete(d, c);
    }
    ST(S.client_rc[d], rc);
    if (rc != VD_E_ABORT && rc != VD_E_CLOSE && rc != NOERROR)
        chaos_report(S.e, "contract", "get_command ended with %s", vdi_strerror(rc));
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
        chaos_report(S.e, "contract", "server signal_abort failed");
    ST(S.abort_returned, 1);
}

static void client_abort_actor(void *arg) {
    (void)arg;
    chaos_point(S.e, "scenario/client:before-abort");
    if (vdi_client_set_signal_abort(S.client) != NOERROR)
        chaos_report(S.e, "contract", "client signal_abort failed");
    ST(S.abort_returned, 1);
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
    while (!chaos_ledger_agent_returned(&S.ledger) && !LD(S.broken) &&
           vdi_server_device_send_command(S.sdev[d], &probe) == VD_E_PROTOCOL)
        chaos_wait(S.e, &never, 0u, 1);
}

static void await_agent(void) {
    await_agent_on(0);
}

static void close_devices(void) {
    for (int d = 0; d < S.ndev; d++) {
        ledger_send(d, S.ndev * NCMD + d); /* a flush on each device, then the normal end */
        int rc = ledger_close_device(d);
        if (rc != NOERROR && rc != VD_E_ABORT)
            chaos_report(S.e, "contract", "close_device returned %s", vdi_strerror(rc));
    }
}

static void server_actor(void *arg) {
    (void)arg;
    if (S.end == END_WATCHDOG || S.end == END_OUT_OF_ORDER || S.end == END_SECONDARY ||
        S.end == END_CLOSE_IN_LAST || S.end == END_CLOSE_HOLDING || S.end == END_WATCHDOG_BUSY)
        await_agent(); /* the commands must be accepted for these scenarios to mean much */
    for (int k = 0; k < NCMD; k++)
        for (int d = 0; d < NDEV; d++)
            ledger_send(d, k * NDEV + d);
    if (S.end == END_WATCHDOG) {
        if (chaos_ledger_agent_returned(
                &S.ledger)) /* no agent (it could not start): end it ourselves */
            (void)vdi_server_set_close(S.server);
        return; /* otherwise the agent's watchdog must end the session */
    }
    if (S.end == END_CLOSE_IN_CALLBACK && chaos_ledger_accepted(&S.ledger)) {
        /* wait for the callback that closes the set */
        while (!LD(S.nested))
            chaos_wait(S.e, &S.nested, 0u, -1);
        return;
    }
    if (S.end == END_CLOSE || S.end == END_CLOSE_IN_CALLBACK) {
        ST(S.close_rc, vdi_server_set_close(S.server)); /* premature: devices still open */
        ST(S.close_returned, 1);
        if (LD(S.close_rc) != VD_E_PROTOCOL)
            chaos_report(S.e, "contract", "premature close returned %s", vdi_strerror(S.close_rc));
        return;
    }
    close_devices();
}

static int spawn_agent(chaos_engine *e) {
    int id = chaos_spawn(e, "agent", agent_actor, NULL);
    chaos_ledger_agent(&S.ledger, id);
    return id;
}

static void spawn_common(chaos_engine *e) {
    spawn_agent(e);
    chaos_spawn(e, "client-dev0", client_actor, (void *)0);
    chaos_spawn(e, "client-dev1", client_actor, (void *)1);
    chaos_spawn(e, "server", server_actor, NULL);
}

static void setup_end(chaos_engine *e, int end) {
    if (session_setup(e, end, session_setup_set) == 0)
        spawn_common(e);
}

static void setup_close_race(chaos_engine *e) {
    setup_end(e, END_CLOSE);
}

static void setup_close_in_callback(chaos_engine *e) {
    setup_end(e, END_CLOSE_IN_CALLBACK);
}

static void setup_server_abort(chaos_engine *e) {
    if (session_setup(e, END_SERVER_ABORT, session_setup_set) == 0) {
        spawn_common(e);
        chaos_spawn(e, "server-aborter", server_abort_actor, NULL);
    }
}

static void setup_client_death(chaos_engine *e) {
    if (session_setup(e, END_CLIENT_DEATH, session_setup_set) == 0) {
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
    if (session_setup(e, END_CLIENT_ABORT, session_setup_set) == 0) {
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
        int rc = ledger_get_command(d, LD(S.cdev[d]), VDI_INFINITE, &c);
        ST(S.in_get[d], 0);
        if (LD(S.client_closed) && rc != VD_E_ABORT)
            chaos_report(S.e, "contract", "get_command overlapping the client's close returned %s",
                         vdi_strerror(rc));
        if (rc != NOERROR) {
            ST(S.client_rc[d], rc);
            if (rc != VD_E_ABORT)
                chaos_report(S.e, "contract", "get_command ended with %s", vdi_strerror(rc));
            return;
        }
        if (LD(S.closing)) /* the view dies with the close: not even read */
            return;
        if (ledger_check_got(d, c))
            return;
        if ((c->position / NDEV) % 2) /* every other command stays in hand, uncompleted */
            continue;
        ledger_complete(d, c);
    }
}

static void cc_server(void *arg) {
    (void)arg;
    for (int k = 0; k < NCMD; k++)
        for (int d = 0; d < NDEV; d++)
            ledger_send(d, k * NDEV + d);
    ST(S.server_idle, 1);
    AWAIT(LD(S.closing));
    for (int d = 0; d < NDEV; d++)
        ledger_send(d, NDEV * NCMD + d); /* racing the client's close */
}

static void client_closer_actor(void *arg) {
    (void)arg;
    /* A sleep ends only when every actor is blocked: then the device threads that are in
     * get_command wait inside it (bounded, in case they never get there). */
    for (int k = 0; k < CLOSER_POLLS; k++) {
        session_sleep(1);
        if (LD(S.server_idle) && LD(S.in_get[0]) && LD(S.in_get[1]))
            break;
    }
    ST(S.closing, 1);
    session_signal();
    int rc = vdi_client_set_close(S.client);
    ST(S.client_closed, 1);
    if (rc != VD_E_OPEN)
        chaos_report(S.e, "contract", "client close with devices open returned %s",
                     vdi_strerror(rc));
}

static void setup_client_close(chaos_engine *e) {
    if (session_setup(e, END_CLIENT_CLOSE, session_setup_set) == 0) {
        spawn_agent(e);
        chaos_spawn(e, "client-dev0", cc_client_actor, (void *)0);
        chaos_spawn(e, "client-dev1", cc_client_actor, (void *)1);
        chaos_spawn(e, "server", cc_server, NULL);
        chaos_spawn(e, "client-closer", client_closer_actor, NULL);
    }
}

/* ---- send-abort: one sender per device sends its writes, a flush and closes the device,
 * while signal_abort comes from both sides. Every send's code must agree with its callbacks
 * (see ledger_send) and a send or close_device that starts after an abort returned must answer
 * VD_E_ABORT. */

static void sender_actor(void *arg) {
    int d = (int)(intptr_t)arg;
    await_agent_on(d);
    for (int k = 0; k < NCMD; k++)
        ledger_send(d, k * NDEV + d);
    ledger_send(d, NDEV * NCMD + d);
    int after_abort = LD(S.abort_returned);
    int rc = ledger_close_device(d);
    if (rc != NOERROR && rc != VD_E_ABORT)
        chaos_report(S.e, "contract", "close_device returned %s", vdi_strerror(rc));
    if (after_abort && rc != VD_E_ABORT)
        chaos_report(S.e, "contract", "close_device after signal_abort returned gave %s",
                     vdi_strerror(rc));
}

static void setup_send_abort(chaos_engine *e) {
    if (session_setup(e, END_SEND_ABORT, session_setup_set) == 0) {
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
        if (!session_ok(vdi_client_set_open_device(S.client, session_dev_name(d), &dv),
                        "open_device"))
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
                chaos_report(S.e, "contract",
                             "get_configuration timed out after %llu ms (configured: %d)",
                             (unsigned long long)spent, was_configured);
            continue;
        }
        if (!session_ok(rc, "get_configuration"))
            return;
        if (spent > (uint64_t)CFG_TIMEOUT_MS)
            chaos_report(S.e, "contract", "get_configuration returned after its timeout");
        break;
    }
    if (open_client_devices())
        return;
    REL(S.devs_open, 1);
    session_signal();
}

static void tm_client_dev(void *arg) {
    int d = (int)(intptr_t)arg;
    AWAIT(ACQ(S.devs_open));
    while (!LD(S.broken)) {
        VDC_Command *c;
        /* (a command is there before its send returns: pending may be negative) */
        int pending = LD(S.sent_n[d]) - LD(S.got_n[d]), closed = LD(S.dev_closed[d]);
        uint64_t t0 = chaos_now(S.e);
        int rc = ledger_get_command(d, LD(S.cdev[d]), CMD_TIMEOUT_MS, &c);
        uint64_t spent = chaos_now(S.e) - t0;
        if (rc == VD_E_TIMEOUT) {
            ST(S.cmd_timeouts, LD(S.cmd_timeouts) + 1);
            if (spent < (uint64_t)CMD_TIMEOUT_MS || pending > 0 || closed)
                chaos_report(S.e, "contract",
                             "get_command timed out after %llu ms with %d commands waiting "
                             "(device closed: %d)",
                             (unsigned long long)spent, pending, closed);
            continue;
        }
        if (spent > (uint64_t)CMD_TIMEOUT_MS)
            chaos_report(S.e, "contract", "get_command returned %s after its timeout",
                         vdi_strerror(rc));
        if (rc == VD_E_CLOSE) {
            ST(S.client_rc[d], rc);
            if (pending > 0)
                chaos_report(S.e, "contract", "VD_E_CLOSE with %d commands undelivered", pending);
            return;
        }
        if (!session_ok(rc, "get_command"))
            return;
        ST(S.got_n[d], LD(S.got_n[d]) + 1);
        if (ledger_check_got(d, c))
            return;
        ledger_complete(d, c);
    }
}

static void tm_send(int d, int i) {
    if (ledger_send(d, i) == NOERROR)
        ST(S.sent_n[d], LD(S.sent_n[d]) + 1);
}

static void tm_server(void *arg) {
    (void)arg;
    session_sleep(SERVER_IDLE_MS);
    if (!session_ok(vdi_server_set_begin_configuration(S.server, VDF_WriteMedia, BUF, 0, 65536, 0),
                    "begin_configuration") ||
        !session_ok(vdi_server_set_request_buffers(S.server, BUF, 0, NDEV * NCMD),
                    "request_buffers") ||
        !session_ok(vdi_server_set_end_configuration(S.server), "end_configuration"))
        return;
    ST(S.configured, 1);
    session_signal();
    for (int d = 0; d < S.ndev; d++)
        if (!session_ok(vdi_server_set_open_device(S.server, session_dev_name(d), &S.sdev[d]),
                        "open_device"))
            return;
    if (session_fill_writes()) {
        (void)session_ok(S.setup_rc, "allocate_buffer");
        return;
    }
    await_agent();
    for (int k = 0; k < NCMD && !LD(S.broken); k++) {
        session_sleep(SEND_PAUSE_MS);
        for (int d = 0; d < S.ndev; d++)
            tm_send(d, k * NDEV + d);
    }
    for (int d = 0; d < S.ndev && !LD(S.broken); d++) {
        tm_send(d, S.ndev * NCMD + d);
        if (!session_ok(ledger_close_device(d), "close_device"))
            return;
        ST(S.dev_closed[d], 1);
    }
}

static int setup_timeouts_set(chaos_engine *e, int end) {
    if (session_new(e, end))
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
    if (session_setup(e, END_TIMEOUTS, setup_timeouts_set) == 0) {
        chaos_ledger_agent(&S.ledger, chaos_spawn(e, "agent", tm_agent_actor, NULL));
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
    chaos_ledger_agent(&S.ledger, chaos_actor_id(S.e)); /* the same actor, again */
    ST(S.agent_runs, 2);
    session_signal();
    ST(S.agent_rc2, vdi_server_set_execute_completion_agent(S.server));
    chaos_ledger_agent_done(&S.ledger);
    session_signal();
}

static int br_serve(int d, int restore) {
    VDC_Command *c;
    int rc;
    while ((rc = ledger_get_command(d, LD(S.cdev[d]), VDI_INFINITE, &c)) == NOERROR) {
        if (ledger_check_got(d, c))
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
        ledger_complete(d, c);
    }
    ST(S.client_rc[d], rc);
    if (rc == VD_E_CLOSE)
        return 0;
    return session_ok(rc, "get_command") ? 0 : -1;
}

static void br_client_dev(void *arg) {
    int d = (int)(intptr_t)arg;
    if (br_serve(d, 0))
        return;
    ST(S.backup_done, LD(S.backup_done) + 1);
    session_signal();
    AWAIT(ACQ(S.restore_open));
    if (!LD(S.broken))
        br_serve(d, 1);
}

static void br_client_main(void *arg) {
    (void)arg;
    AWAIT(LD(S.backup_done) == S.ndev);
    if (LD(S.broken) ||
        !session_ok(vdi_client_set_close(S.client), "client close after the backup"))
        return;
    REL(S.client_ended, 1);
    session_signal();
    AWAIT(ACQ(S.server_ended));
    VDConfig cfg = {.deviceCount = (uint32_t)S.ndev};
    if (!session_ok(vdi_client_set_create(S.client, S.name, &cfg), "create for the restore"))
        return;
    REL(S.recreated, 1);
    session_signal();
    if (!session_ok(vdi_client_set_get_configuration(S.client, VDI_INFINITE, &cfg),
                    "get_configuration"))
        return;
    if (open_client_devices())
        return;
    REL(S.restore_open, 1);
    session_signal();
}

/* The server's side of the restore: the set opened again and configured for reading, one
 * read per block backed up, into buffers first filled with other bytes. */
static int br_restore_set(void) {
    ledger_reset_delivery();
    STEP(vdi_server_set_open(S.server, NULL, S.name));
    STEP(vdi_server_set_begin_configuration(S.server, VDF_ReadMedia, BUF, 0, 65536, 0));
    STEP(vdi_server_set_request_buffers(S.server, BUF, 0, (uint32_t)(S.ndev * BLOCKS)));
    STEP(vdi_server_set_end_configuration(S.server));
    for (int d = 0; d < S.ndev; d++)
        STEP(vdi_server_set_open_device(S.server, session_dev_name(d), &S.sdev[d]));
    for (int r = 0; r < S.ndev * BLOCKS; r++) {
        int i = S.ndev * BLOCKS + r;
        STEP(vdi_server_set_allocate_buffer(S.server, &S.buf[i], BUF, 0));
        memset(S.buf[i], 0xee, BUF);
        S.blk_of[i] = r / S.ndev;
        session_fill_command(i, r % S.ndev, VDC_Read, S.buf[i]);
    }
    return 0;
}

static void br_server(void *arg) {
    (void)arg;
    await_agent();
    for (int i = 0; i < S.ndev * BLOCKS; i++)
        ledger_send(S.dev_of[i], i);
    for (int d = 0; d < S.ndev; d++)
        if (!session_ok(ledger_close_device(d), "close_device"))
            return;
    AWAIT(chaos_ledger_agent_returned(&S.ledger));
    if (LD(S.broken) || !session_ok(LD(S.agent_rc), "the backup's agent"))
        return;
    /* The closes are ordered, client first, and the set is created again only after both:
     * two actors that unmap in one run must be ordered for TSan (the unmap guard's
     * quarantine is not synchronised), and while the old object lives the engine may take
     * the new one for it (futex keys of objects with neighbouring inode numbers collide),
     * which makes runs differ. */
    AWAIT(ACQ(S.client_ended));
    if (LD(S.broken) ||
        !session_ok(vdi_server_set_close(S.server), "server close after the backup"))
        return;
    REL(S.server_ended, 1);
    session_signal();
    AWAIT(ACQ(S.recreated));
    if (LD(S.broken))
        return;
    if (br_restore_set()) {
        session_ok(S.setup_rc, "configuring the restore");
        return;
    }
    ST(S.restore_ready, 1);
    session_signal();
    AWAIT(LD(S.agent_runs) == 2);
    await_agent();
    for (int i = S.ndev * BLOCKS; i < 2 * S.ndev * BLOCKS; i++)
        ledger_send(S.dev_of[i], i);
    for (int d = 0; d < S.ndev; d++)
        if (!session_ok(ledger_close_device(d), "close_device"))
            return;
}

static void setup_backup_restore(chaos_engine *e) {
    if (session_setup(e, END_BACKUP_RESTORE, session_setup_set) == 0) {
        chaos_ledger_agent(&S.ledger, chaos_spawn(e, "agent", br_agent, NULL));
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
    if (!session_ok(vdi_client_set_open_in_secondary(sc, S.name), "open_in_secondary") ||
        !session_ok(vdi_client_set_get_configuration(sc, 0, &cfg), "secondary get_configuration"))
        return;
    if (cfg.deviceCount != NDEV || cfg.blockSize != BUF)
        chaos_report(S.e, "contract", "the secondary sees %u devices of block size %u",
                     cfg.deviceCount, cfg.blockSize);
    if (!session_ok(vdi_client_set_open_device(sc, session_dev_name(1), &dv),
                    "secondary open_device"))
        return;
    ST(S.cdev[1], dv);
    VDC_Command *c;
    int rc;
    while ((rc = ledger_get_command(1, dv, VDI_INFINITE, &c)) == NOERROR) {
        if (ledger_check_got(1, c))
            return;
        if (c->commandCode == VDC_Write) {
            uint32_t h;
            uint8_t *mine, *primary;
            if (!session_ok(vdi_client_set_get_buffer_handle(sc, c->buffer, &h),
                            "get_buffer_handle") ||
                !session_ok(vdi_client_set_map_buffer_handle(sc, h, &mine), "map_buffer_handle") ||
                !session_ok(vdi_client_set_map_buffer_handle(S.client, h, &primary),
                            "map_buffer_handle in the primary"))
                return;
            if (mine != c->buffer || memcmp(primary, c->buffer, BUF) != 0)
                chaos_report(S.e, "data", "buffer handle %u does not map the command's bytes", h);
        }
        ledger_complete(1, c);
    }
    ST(S.client_rc[1], rc);
    if (rc != VD_E_CLOSE) {
        (void)session_ok(rc, "secondary get_command");
        return;
    }
    (void)session_ok(vdi_client_set_close(sc), "secondary close after its device ended");
}

static void setup_secondary(chaos_engine *e) {
    if (session_setup(e, END_SECONDARY, session_setup_set) == 0) {
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
        rc = ledger_get_command(d, LD(S.cdev[d]), VDI_INFINITE, &c);
        if (rc == VD_E_CLOSE && flush && S.end == END_CLOSE_HOLDING && d == 0) {
            ST(S.held_cmd, (int)flush->position + 1); /* kept, never completed */
            break;
        }
        if (rc == VD_E_CLOSE && flush) {
            VDC_Command *f = flush;
            flush = NULL;
            if (ledger_complete(d, f) != NOERROR)
                break;
            continue; /* and VD_E_CLOSE again */
        }
        if (rc != NOERROR)
            break;
        if (ledger_check_got(d, c))
            return;
        if (c->commandCode == VDC_Flush && !flush)
            flush = c; /* held across the end of the device */
        else
            ledger_complete(d, c);
    }
    ST(S.client_rc[d], rc);
    if (rc != VD_E_CLOSE)
        chaos_report(S.e, "contract", "get_command ended with %s", vdi_strerror(rc));
    /* released: the client's close, on another actor, frees this thread's views next */
    CHAOS_ADD_RELEASE(&S.devs_done, 1); /* (an RMW: both threads' count) */
    session_signal();
}

static void setup_close_in_last(chaos_engine *e) {
    if (session_setup(e, END_CLOSE_IN_LAST, session_setup_set) == 0) {
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
    if (session_setup(e, END_CLOSE_HOLDING, session_setup_set) == 0) {
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
    while ((rc = ledger_get_command(d, LD(S.cdev[d]), VDI_INFINITE, &c)) == NOERROR) {
        if (ledger_check_got(d, c))
            return;
        session_sleep(BUSY_PAUSE_MS);
        if (ledger_complete(d, c) != NOERROR)
            break;
    }
    ST(S.client_rc[d], rc);
}

static void setup_watchdog_busy(chaos_engine *e) {
    if (session_setup(e, END_WATCHDOG_BUSY, session_setup_set) == 0) {
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
        !session_ok(vdi_server_set_begin_configuration(S.server, VDF_WriteMedia, BUF, 0, 65536, 0),
                    "begin_configuration"))
        return;
    chaos_point(S.e, "scenario/server:configuring");
    if (!LD(S.dead) && !session_ok(vdi_server_set_request_buffers(S.server, BUF, 0, NDEV * NCMD),
                                   "request_buffers"))
        return;
    AWAIT(LD(S.dead)); /* it never ends its configuration */
}

static void sd_killer(void *arg) {
    (void)arg;
    for (int k = 0; k < 4; k++) /* one of several moments */
        chaos_point(S.e, "scenario/killer:before");
    ST(S.dead, 1);
    chaos_kill_server_peer(S.e);
    session_signal();
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
        chaos_report(S.e, "contract", "the client's close after the server died returned %s",
                     vdi_strerror(closed));
    ST(S.client_closed, 1);
}

static int setup_server_death_set(chaos_engine *e, int end) {
    if (session_new(e, end))
        return -1;
    VDConfig cfg = {.deviceCount = NDEV};
    STEP(vdi_client_set_create(S.client, S.name, &cfg));
    STEP(vdi_server_set_open(S.server, NULL, S.name));
    return 0;
}

static void setup_server_death(chaos_engine *e) {
    if (session_setup(e, END_SERVER_DEATH, setup_server_death_set) == 0) {
        chaos_spawn(e, "client-main", sd_client, NULL);
        chaos_spawn(e, "server", sd_server, NULL);
        chaos_spawn(e, "killer", sd_killer, NULL);
    }
}

static void check_common(chaos_engine *e) {
    if (S.setup_failed)
        return;
    ledger_check(e);
    int agent = LD(S.agent_rc), broke = LD(S.broken), aborted = 0;
    for (int i = 0; i < S.ncmd; i++)
        aborted |= S.cmd[i].completionCode == ERROR_OPERATION_ABORTED;
    if (chaos_faults_armed(e) &&
        (broke || session_documented_fault(agent) || session_documented_fault(LD(S.agent_rc2))))
        return; /* an injected fault ended the session early; the ledger held */
    if (S.end == END_WATCHDOG) {
        if (chaos_ledger_accepted(&S.ledger) && agent != VD_E_ABORT)
            chaos_report(e, "contract", "the watchdog did not abort: agent %s",
                         vdi_strerror(agent));
        if (chaos_ledger_accepted(&S.ledger) && chaos_now(e) - S.start_ms < 2 * WATCHDOG_MS)
            chaos_report(e, "contract", "aborted after %llu ms, before 2T",
                         (unsigned long long)(chaos_now(e) - S.start_ms));
        return;
    }
    if (S.end == END_SERVER_DEATH) {
        if (!broke && LD(S.cfg_rc) != VD_E_ABORT)
            chaos_report(e, "contract",
                         "get_configuration returned %s after the server died configuring",
                         vdi_strerror(LD(S.cfg_rc)));
        return;
    }
    if (S.end == END_CLOSE_HOLDING) {
        int held = LD(S.held_cmd) - 1;
        if (held < 0)
            chaos_report(e, "contract", "device 0 never held a command past VD_E_CLOSE");
        else if (S.cmd[held].completionCode != ERROR_OPERATION_ABORTED)
            chaos_report(e, "contract", "the flush held past the close ended with code %u, not 995",
                         S.cmd[held].completionCode);
        if (LD(S.close_rc) != VD_E_OPEN)
            chaos_report(e, "contract", "the client's close holding a command returned %s",
                         vdi_strerror(LD(S.close_rc)));
        if (agent != VD_E_ABORT)
            chaos_report(e, "contract",
                         "the agent returned %s after the client closed holding a "
                         "command",
                         vdi_strerror(agent));
        return;
    }
    if (S.end == END_CLOSE || S.end == END_CLOSE_IN_CALLBACK) {
        if (agent != (LD(S.agent_late) ? VD_E_PROTOCOL : VD_E_ABORT))
            chaos_report(e, "contract", "the agent returned %s", vdi_strerror(agent));
        for (int d = 0; d < NDEV; d++)
            if (LD(S.client_rc[d]) != VD_E_ABORT)
                chaos_report(e, "contract", "device %d ended with %s, not VD_E_ABORT", d,
                             vdi_strerror(LD(S.client_rc[d])));
    } else if (S.end == END_CLIENT_CLOSE) {
        if (agent != VD_E_ABORT)
            chaos_report(e, "contract", "the client's premature close left the agent with %s",
                         vdi_strerror(agent));
        for (int d = 0; d < NDEV; d++)
            if (LD(S.client_rc[d]) != VD_E_ABORT && LD(S.client_rc[d]) != NOERROR)
                chaos_report(e, "contract", "device %d ended with %s", d,
                             vdi_strerror(LD(S.client_rc[d])));
    } else if (S.end == END_TIMEOUTS || S.end == END_BACKUP_RESTORE || S.end == END_SECONDARY ||
               S.end == END_CLOSE_IN_LAST || S.end == END_WATCHDOG_BUSY) {
        if (S.end == END_WATCHDOG_BUSY && chaos_now(e) - S.start_ms <= 2 * WATCHDOG_MS)
            chaos_report(e, "contract", "the session lasted %llu ms, not past 2T = %u ms",
                         (unsigned long long)(chaos_now(e) - S.start_ms), 2 * WATCHDOG_MS);
        if (S.end == END_CLOSE_IN_LAST && (!LD(S.close_returned) || LD(S.close_rc) != NOERROR))
            chaos_report(e, "contract", "the close in the last routine %s %s",
                         LD(S.close_returned) ? "returned" : "never ran:",
                         LD(S.close_returned) ? vdi_strerror(LD(S.close_rc)) : "");
        /* nothing aborts these sessions: every command is completed by the client */
        if (agent != NOERROR || (S.end == END_BACKUP_RESTORE && LD(S.agent_rc2) != NOERROR))
            chaos_report(e, "contract", "the agent returned %s%s%s%s", vdi_strerror(agent),
                         S.end == END_BACKUP_RESTORE ? " (restore: " : "",
                         S.end == END_BACKUP_RESTORE ? vdi_strerror(LD(S.agent_rc2)) : "",
                         S.end == END_BACKUP_RESTORE ? ")" : "");
        for (int i = 0; i < S.ncmd; i++)
            if (S.cmd[i].completionCode != ERROR_SUCCESS)
                chaos_report(e, "contract",
                             "command %d ended with code %u in a session nobody "
                             "aborted",
                             i, S.cmd[i].completionCode);
        if (S.end == END_TIMEOUTS && (!LD(S.cfg_timeouts) || !LD(S.cmd_timeouts)))
            chaos_report(e, "contract",
                         "no timeout expired (%d of get_configuration, %d of get_command)",
                         LD(S.cfg_timeouts), LD(S.cmd_timeouts));
        for (int d = 0; d < S.ndev; d++)
            if (LD(S.client_rc[d]) != VD_E_CLOSE)
                chaos_report(e, "contract", "device %d ended with %s, not VD_E_CLOSE", d,
                             vdi_strerror(LD(S.client_rc[d])));
    } else if (aborted && agent != VD_E_ABORT) {
        chaos_report(e, "contract", "a 995 was delivered but the agent returned %s",
                     vdi_strerror(agent));
    } else if (agent != NOERROR && agent != VD_E_ABORT) {
        chaos_report(e, "contract", "the agent returned %s", vdi_strerror(agent));
    }
}

static const chaos_scenario scenarios[] = {
    {"close-race",
     "premature server close racing two devices of three commands, their completions and "
     "the agent's callbacks",
     setup_close_race, check_common, session_cleanup},
    {"close-in-callback",
     "the server closes the set from inside the agent's first callback while commands are "
     "outstanding on two devices",
     setup_close_in_callback, check_common, session_cleanup},
    {"watchdog",
     "a client that takes commands and never completes them; the serverTimeOut watchdog "
     "must abort in virtual time",
     setup_watchdog, check_common, session_cleanup},
    {"server-abort",
     "server signal_abort from a thread of its own racing sends, completions, device closes "
     "and the agent's normal end",
     setup_server_abort, check_common, session_cleanup},
    {"out-of-order",
     "clients hold every write of a device and complete them last first; the agent must "
     "deliver each device's completions in the order the client made them",
     setup_out_of_order, check_common, session_cleanup},
    {"client-death",
     "the client process dies at a random point (simulated: its actors stop and the "
     "liveness seam says it is gone); the server must notice and drain with 995",
     setup_client_death, check_common, session_cleanup},
    {"client-abort",
     "client signal_abort racing completions, device closes and the agent's normal end",
     setup_client_abort, check_common, session_cleanup},
    {"client-close",
     "the client closes with two devices open while their threads block in get_command; "
     "they wake with VD_E_ABORT, close answers VD_E_OPEN and the server drains with 995",
     setup_client_close, check_common, session_cleanup},
    {"send-abort",
     "a sender per device racing signal_abort from both sides; each send's code must agree "
     "with its callback, and no send is accepted after an abort returned",
     setup_send_abort, check_common, session_cleanup},
    {"timeouts",
     "the server configures and sends after pauses; get_configuration and get_command time "
     "out in virtual time only when they must",
     setup_timeouts, check_common, session_cleanup},
    {"backup-restore",
     "three devices back up two blocks each, the set is created again under the same name "
     "and restored; restored data must equal the backup",
     setup_backup_restore, check_common, session_cleanup},
    {"secondary",
     "device 1 served by a secondary client object (open_in_secondary, buffer handles) "
     "while the primary serves device 0; both end normally",
     setup_secondary, check_common, session_cleanup},
    {"close-in-last-callback",
     "both devices end normally while each holds its flush past VD_E_CLOSE; the routine of "
     "the last callback, which ends the set normally, closes it: NOERROR, and the agent "
     "returns NOERROR",
     setup_close_in_last, check_common, session_cleanup},
    {"close-holding",
     "device 0's thread keeps its flush past VD_E_CLOSE, then the client closes: VD_E_OPEN, "
     "the set aborts for the server and the agent drains the held command with 995",
     setup_close_holding, check_common, session_cleanup},
    {"watchdog-busy",
     "serverTimeOut 50 ms and a client that completes each command 35 ms after it got it, "
     "for longer than 2T in all: each completion taken restarts the watchdog, which must "
     "never fire",
     setup_watchdog_busy, check_common, session_cleanup},
    {"server-death",
     "the server's process dies during its configuration (before end_configuration) while "
     "the client waits in get_configuration without a timeout: VD_E_ABORT, not for ever",
     setup_server_death, check_common, session_cleanup},
};

const chaos_scenario *chaos_scenarios(size_t *count) {
    *count = sizeof scenarios / sizeof scenarios[0];
    return scenarios;
}

const chaos_scenario *chaos_scenario_find(const char *name) {
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++)
        if (strcmp(scenarios[i].name, name) == 0)
            return &scenarios[i];
    return NULL;
}
