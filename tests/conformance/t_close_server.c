/* Server close (VDI-SPEC 5.1): a premature close returns VD_E_PROTOCOL and aborts the set,
 * the agent drains every outstanding command with 995, Close waits for that drain unless
 * it is called from inside a callback, and a second close is PROTOCOL. Close is the
 * hardest code of the library; each case is its own test so that one hang hides nothing. */
#include "t_test.h"
#include "t_vdi.h"

/* Premature close with open devices and outstanding commands (delivered and not):
 * PROTOCOL; when Close returns, every command already had its one 995 callback (5.1.4)
 * and the agent returns ABORT; the client sees ABORT. */
static void case_premature(void) {
    t_set s;
    t_set_init(&s, "prem", 2);
    t_set_to_active(&s);
    enum { N = 4 };
    t_cmd tc[N];
    for (int i = 0; i < N; i++) {
        t_cmd_init(&tc[i], &s.ledger, VDC_Flush, 0, i, NULL);
        T_REQUIRE(t_send(s.sdev[i % 2], &tc[i]) == NOERROR);
    }
    VDC_Command *c = NULL;
    T_REQUIRE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c) == NOERROR);
    T_EXPECT_CODE(vdi_server_set_close(s.server), VD_E_PROTOCOL);
    int seen = t_ledger_finished(&s.ledger);
    T_EXPECT_EQ(seen, N);
    for (int i = 0; i < N; i++) {
        T_EXPECT_EQ(t_cmd_snapshot(&tc[i]).calls, 1);
        T_EXPECT_EQ(t_cmd_snapshot(&tc[i]).code, ERROR_OPERATION_ABORTED);
    }
    T_EXPECT_CODE(t_set_join_agent(&s), VD_E_ABORT);
    T_EXPECT_EQ(t_ledger_finished(&s.ledger), N); /* nothing after Close returned */
    /* the client: the set is aborted */
    T_EXPECT_CODE(vdi_client_device_complete_command(s.cdev[0], c, ERROR_SUCCESS, 0, 0),
                  VD_E_ABORT);
    VDC_Command *c2 = NULL;
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev[1], VDI_INFINITE, &c2), VD_E_ABORT);
    /* 5.1.6: a second close is PROTOCOL and nothing happens */
    T_EXPECT_CODE(vdi_server_set_close(s.server), VD_E_PROTOCOL);
    T_EXPECT_OK(vdi_client_set_close(s.client));
    vdi_server_set_free(s.server);
    vdi_client_set_free(s.client);
    s.server = NULL;
    s.client = NULL;
    t_ledger_destroy(&s.ledger);
}

/* Premature close with a device open and no agent: PROTOCOL, client aborted. */
static void case_premature_no_agent(void) {
    t_set s;
    t_set_init(&s, "prem-na", 1);
    t_set_to_initializing(&s);
    t_set_open_devices(&s);
    T_EXPECT_CODE(vdi_server_set_close(s.server), VD_E_PROTOCOL);
    VDC_Command *c = NULL;
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c), VD_E_ABORT);
    VDConfig cfg;
    T_EXPECT_CODE(vdi_client_set_get_configuration(s.client, 0, &cfg), VD_E_ABORT);
    /* the closed server object is DNE again */
    T_EXPECT_CODE(vdi_server_set_get_configuration(s.server, &cfg), VD_E_PROTOCOL);
    t_set_teardown(&s);
}

typedef struct blocked_cfg {
    vdi_client_set *cl;
    int rc;
} blocked_cfg;

static void *config_forever(void *arg) {
    blocked_cfg *b = arg;
    VDConfig cfg;
    b->rc = vdi_client_set_get_configuration(b->cl, VDI_INFINITE, &cfg);
    return NULL;
}

/* Close before any device was opened: NOERROR, but any server close before Normally
 * Terminated aborts the set for the client (a waiter in get_configuration wakes). */
static void case_early_close(void) {
    t_set s;
    t_set_init(&s, "early", 1);
    t_set_create(&s);
    t_set_server_open(&s);
    blocked_cfg b = {s.client, 0};
    pthread_t th = t_spawn(config_forever, &b);
    T_EXPECT_OK(vdi_server_set_close(s.server));
    t_join(th);
    T_EXPECT_CODE(b.rc, VD_E_ABORT);
    t_set_teardown(&s);

    /* the same from Initializing, the client past get_configuration */
    t_set_init(&s, "early2", 1);
    t_set_to_initializing(&s);
    T_EXPECT_OK(vdi_server_set_close(s.server));
    vdi_client_device *dev = NULL;
    T_EXPECT_CODE(vdi_client_set_open_device(s.client, s.name, &dev), VD_E_ABORT);
    t_set_teardown(&s);
}

/* Close after an abort: NOERROR even with devices open and commands outstanding. */
static void case_after_abort(void) {
    t_set s;
    t_set_init(&s, "aftab", 1);
    t_set_to_active(&s);
    t_cmd a;
    t_cmd_init(&a, &s.ledger, VDC_Flush, 0, 0, NULL);
    T_REQUIRE(t_send(s.sdev[0], &a) == NOERROR);
    T_REQUIRE(vdi_client_set_signal_abort(s.client) == NOERROR);
    T_EXPECT_OK(vdi_server_set_close(s.server));
    T_EXPECT_EQ(t_cmd_snapshot(&a).calls, 1); /* drained before Close returned */
    T_EXPECT_EQ(t_cmd_snapshot(&a).code, ERROR_OPERATION_ABORTED);
    T_EXPECT_CODE(t_set_join_agent(&s), VD_E_ABORT);
    t_set_teardown(&s);
}

/* Close from inside a callback on the agent thread: it returns (PROTOCOL: devices are
 * open) without waiting for the callback it is nested in; the drain continues when the
 * callback returns and the agent returns ABORT after it. */
static vdi_server_set *cb_set;
static int cb_close_rc = 1;
static int cb_signal_rc = 1;
static void close_hook(t_cmd *tc) {
    (void)tc;
    cb_close_rc = vdi_server_set_close(cb_set);
}

static void signal_hook(t_cmd *tc) {
    (void)tc;
    cb_signal_rc = vdi_server_set_signal_abort(cb_set);
}

static void nested(int do_close) {
    t_set s;
    t_set_init(&s, do_close ? "inclose" : "inabort", 1);
    t_set_to_active(&s);
    enum { N = 4 };
    t_cmd tc[N];
    /* hooks are set before the sends: the callback may run as soon as it completes */
    cb_set = s.server;
    for (int i = 0; i < N; i++) {
        t_cmd_init(&tc[i], &s.ledger, VDC_Flush, 0, i, NULL);
        tc[i].hook = i == 0 ? (do_close ? close_hook : signal_hook) : NULL;
        T_REQUIRE(t_send(s.sdev[0], &tc[i]) == NOERROR);
    }
    VDC_Command *c = NULL;
    T_REQUIRE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c) == NOERROR);
    T_REQUIRE(vdi_client_device_complete_command(s.cdev[0], c, ERROR_SUCCESS, 0, 0) == NOERROR);
    T_EXPECT_CODE(t_set_join_agent(&s), VD_E_ABORT);
    if (do_close)
        T_EXPECT_CODE(cb_close_rc, VD_E_PROTOCOL);
    else
        T_EXPECT_OK(cb_signal_rc);
    T_EXPECT_EQ(t_ledger_finished(&s.ledger), N);
    T_EXPECT_EQ(t_cmd_snapshot(&tc[0]).code, ERROR_SUCCESS);
    for (int i = 1; i < N; i++) {
        T_EXPECT_EQ(t_cmd_snapshot(&tc[i]).calls, 1);
        T_EXPECT_EQ(t_cmd_snapshot(&tc[i]).code, ERROR_OPERATION_ABORTED);
        T_EXPECT_EQ(t_cmd_snapshot(&tc[i]).agent_returned, 0);
    }
    if (do_close) {
        T_EXPECT_CODE(vdi_server_set_close(s.server), VD_E_PROTOCOL);
        vdi_server_set_free(s.server);
        s.server = NULL;
    }
    t_set_teardown(&s);
}

static void case_in_callback(void) {
    nested(1);
}

static void case_abort_in_callback(void) {
    nested(0);
}

/* Close from inside the synchronous callback of a rejected send: it does not wait for
 * the send it is nested in (5.0, 5.1.4), and the send returns its own code. */
static vdi_server_set *sync_set;
static int sync_close_rc = 1;
static int sync_calls;
static void sync_close_routine(VDS_Command *cmd) {
    (void)cmd;
    sync_calls++;
    sync_close_rc = vdi_server_set_close(sync_set);
}

static void case_in_sync_callback(void) {
    t_set s;
    t_set_init(&s, "insync", 1);
    t_set_to_active(&s);
    t_cmd a;
    t_cmd_init(&a, &s.ledger, VDC_Flush, 0, 0, NULL);
    T_REQUIRE(t_send(s.sdev[0], &a) == NOERROR);
    sync_set = s.server;
    VDS_Command bad;
    memset(&bad, 0, sizeof bad);
    bad.commandCode = 999;
    bad.completionRoutine = sync_close_routine;
    T_EXPECT_CODE(vdi_server_device_send_command(s.sdev[0], &bad), VD_E_INVALID);
    T_EXPECT_EQ(sync_calls, 1);
    T_EXPECT_EQ(bad.completionCode, ERROR_INVALID_PARAMETER);
    T_EXPECT_CODE(sync_close_rc, VD_E_PROTOCOL);
    T_EXPECT_CODE(t_set_join_agent(&s), VD_E_ABORT);
    T_EXPECT_EQ(t_cmd_snapshot(&a).calls, 1);
    T_EXPECT_EQ(t_cmd_snapshot(&a).code, ERROR_OPERATION_ABORTED);
    T_EXPECT_CODE(vdi_server_set_close(s.server), VD_E_PROTOCOL);
    vdi_server_set_free(s.server);
    s.server = NULL;
    t_set_teardown(&s);
}

/* Two closes at once: one returns PROTOCOL (premature), the other PROTOCOL (second
 * close, 5.1.6); when each returns, the drain is complete. */
typedef struct closer {
    vdi_server_set *sv;
    t_ledger *l;
    int rc;
    int seen;
} closer;

static void *close_main(void *arg) {
    closer *c = arg;
    c->rc = vdi_server_set_close(c->sv);
    c->seen = t_ledger_finished(c->l);
    return NULL;
}

static void case_concurrent_close(void) {
    t_set s;
    t_set_init(&s, "conc", 1);
    t_set_to_active(&s);
    enum { N = 8 };
    t_cmd tc[N];
    for (int i = 0; i < N; i++) {
        t_cmd_init(&tc[i], &s.ledger, VDC_Flush, 0, i, NULL);
        T_REQUIRE(t_send(s.sdev[0], &tc[i]) == NOERROR);
    }
    closer a = {s.server, &s.ledger, 0, 0}, b = {s.server, &s.ledger, 0, 0};
    pthread_t ta = t_spawn(close_main, &a);
    pthread_t tb = t_spawn(close_main, &b);
    t_join(ta);
    t_join(tb);
    T_EXPECT_CODE(a.rc, VD_E_PROTOCOL);
    T_EXPECT_CODE(b.rc, VD_E_PROTOCOL);
    T_EXPECT_EQ(a.seen, N);
    T_EXPECT_EQ(b.seen, N);
    T_EXPECT_CODE(t_set_join_agent(&s), VD_E_ABORT);
    t_set_teardown(&s);
}

int main(int argc, char **argv) {
    static const t_case cases[] = {
        {"premature", case_premature},
        {"premature_no_agent", case_premature_no_agent},
        {"early_close", case_early_close},
        {"after_abort", case_after_abort},
        {"in_callback", case_in_callback},
        {"abort_in_callback", case_abort_in_callback},
        {"in_sync_callback", case_in_sync_callback},
        {"concurrent_close", case_concurrent_close},
    };
    int rc = t_run_cases(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
    return rc ? rc : t_done();
}
