/* The completion agent (VDI-SPEC 4, "The agent"): at most one per set, checked before
 * anything else and from a callback too; NOERROR at the normal end and not before; the
 * drain after an abort (taken completions first, then 995s per device in send order);
 * and that routines may call the server. The agent is the only road completions take. */
#include "t_test.h"
#include "t_vdi.h"

/* execute_completion_agent from inside a callback: PROTOCOL (an agent is running). */
static int nested_rc;
static vdi_server_set *nested_set;
static void nested_agent_hook(t_cmd *tc) {
    (void)tc;
    nested_rc = vdi_server_set_execute_completion_agent(nested_set);
}

static void case_one_agent(void) {
    t_set s;
    t_set_init(&s, "one", 1);
    t_set_to_active(&s);
    /* from another thread while it runs */
    T_EXPECT_CODE(vdi_server_set_execute_completion_agent(s.server), VD_E_PROTOCOL);
    /* from a callback of this set */
    nested_set = s.server;
    nested_rc = 1;
    t_cmd a;
    t_cmd_init(&a, &s.ledger, VDC_Flush, 0, 0, NULL);
    a.hook = nested_agent_hook;
    T_REQUIRE(t_send(s.sdev[0], &a) == NOERROR);
    VDC_Command *c = NULL;
    T_REQUIRE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c) == NOERROR);
    T_REQUIRE(vdi_client_device_complete_command(s.cdev[0], c, 0, 0, 0) == NOERROR);
    t_ledger_wait(&s.ledger, 1);
    T_EXPECT_CODE(nested_rc, VD_E_PROTOCOL);
    /* "checked before anything else": also after an abort */
    T_REQUIRE(vdi_client_set_signal_abort(s.client) == NOERROR);
    T_EXPECT_CODE(t_set_join_agent(&s), VD_E_ABORT);
    t_set_teardown(&s);
}

/* The agent returns NOERROR exactly when the set reaches Normally Terminated: not while
 * a device is open, not while a command is outstanding; no callback after it returned. */
static void case_normal_end(void) {
    t_set s;
    t_set_init(&s, "nend", 2);
    t_set_to_active(&s);
    t_cmd a;
    t_cmd_init(&a, &s.ledger, VDC_Flush, 0, 0, NULL);
    T_REQUIRE(t_send(s.sdev[1], &a) == NOERROR);
    T_REQUIRE(vdi_server_device_close(s.sdev[0]) == NOERROR);
    T_REQUIRE(vdi_server_device_close(s.sdev[1]) == NOERROR);
    VDC_Command *c = NULL;
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c), VD_E_CLOSE);
    T_REQUIRE(vdi_client_device_get_command(s.cdev[1], VDI_INFINITE, &c) == NOERROR);
    /* every device closed, one command outstanding: the agent is still running */
    T_EXPECT_EQ(atomic_load(&s.agent_done), 0);
    T_EXPECT_CODE(vdi_server_set_execute_completion_agent(s.server), VD_E_PROTOCOL);
    T_EXPECT_OK(vdi_client_device_complete_command(s.cdev[1], c, ERROR_SUCCESS, 0, 0));
    T_EXPECT_OK(t_set_join_agent(&s));
    T_EXPECT_EQ(t_cmd_snapshot(&a).calls, 1);
    T_EXPECT_EQ(t_cmd_snapshot(&a).agent_returned, 0);
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev[1], 0, &c), VD_E_CLOSE);
    /* NT: a new agent returns NOERROR at once */
    T_EXPECT_OK(vdi_server_set_execute_completion_agent(s.server));
    T_EXPECT_OK(vdi_server_set_close(s.server));
    T_EXPECT_OK(vdi_client_set_close(s.client));
    t_set_teardown(&s);
}

/* Normally Terminated reached before any agent ran: the agent returns NOERROR at once. */
static void case_late_agent(void) {
    t_set s;
    t_set_init(&s, "late", 1);
    t_set_to_initializing(&s);
    t_set_open_devices(&s);
    T_REQUIRE(vdi_server_device_close(s.sdev[0]) == NOERROR);
    T_EXPECT_OK(vdi_server_set_execute_completion_agent(s.server));
    VDC_Command *c = NULL;
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev[0], 0, &c), VD_E_CLOSE);
    T_EXPECT_OK(vdi_server_set_close(s.server));
    T_EXPECT_OK(vdi_client_set_close(s.client));
    t_set_teardown(&s);
}

/* The drain after an abort: exactly one callback per command; the commands the client
 * never completed get 995, per device in send order, after any completion the agent
 * had already taken; the agent returns ABORT and no callback runs after it returned. */
static void case_drain(void) {
    t_set s;
    t_set_init(&s, "drain", 2);
    t_set_to_active(&s);
    enum { N0 = 5, N1 = 3 };
    t_cmd d0[N0], d1[N1];
    t_gate gate;
    t_gate_init(&gate);
    for (int i = 0; i < N0; i++) {
        t_cmd_init(&d0[i], &s.ledger, VDC_Flush, 0, i, NULL);
        if (i == 0) {
            d0[0].hook = t_gate_hook;
            d0[0].hook_ctx = &gate;
        }
        T_REQUIRE(t_send(s.sdev[0], &d0[i]) == NOERROR);
    }
    for (int i = 0; i < N1; i++) {
        t_cmd_init(&d1[i], &s.ledger, VDC_Flush, 0, 10 + i, NULL);
        T_REQUIRE(t_send(s.sdev[1], &d1[i]) == NOERROR);
    }
    VDC_Command *c[N0];
    for (int i = 0; i < N0; i++)
        T_REQUIRE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c[i]) == NOERROR);
    T_REQUIRE(vdi_client_device_complete_command(s.cdev[0], c[0], ERROR_SUCCESS, 0, 0) == NOERROR);
    t_gate_wait_inside(&gate, 1);
    /* the agent is inside d0[0]'s routine; d0[2] completes now, then the abort */
    T_EXPECT_OK(vdi_client_device_complete_command(s.cdev[0], c[2], ERROR_SUCCESS, 0, 0));
    T_REQUIRE(vdi_server_set_signal_abort(s.server) == NOERROR);
    /* 5.3: a client call after the abort returns ABORT and implies 995 */
    T_EXPECT_CODE(vdi_client_device_complete_command(s.cdev[0], c[3], ERROR_SUCCESS, 0, 0),
                  VD_E_ABORT);
    /* "agent already running" is checked before Abort */
    T_EXPECT_CODE(vdi_server_set_execute_completion_agent(s.server), VD_E_PROTOCOL);
    t_gate_open(&gate);
    T_EXPECT_CODE(t_set_join_agent(&s), VD_E_ABORT);
    T_EXPECT_EQ(t_ledger_finished(&s.ledger), N0 + N1);
    T_EXPECT_EQ(t_cmd_snapshot(&d0[0]).code, ERROR_SUCCESS);
    t_cmd snap2 = t_cmd_snapshot(&d0[2]);
    T_EXPECT(snap2.code == ERROR_SUCCESS || snap2.code == ERROR_OPERATION_ABORTED);
    int last = -1, first995 = N0 + N1;
    for (int i = 0; i < N0; i++) {
        t_cmd sn = t_cmd_snapshot(&d0[i]);
        T_EXPECT_EQ(sn.calls, 1);
        T_EXPECT_EQ(sn.agent_returned, 0);
        if (sn.code == ERROR_OPERATION_ABORTED) {
            T_EXPECT_EQ(sn.bytes, 0);
            T_EXPECT(sn.order > last); /* per device in send order */
            last = sn.order;
            first995 = sn.order < first995 ? sn.order : first995;
        }
    }
    T_EXPECT_EQ(t_cmd_snapshot(&d0[1]).code, ERROR_OPERATION_ABORTED);
    T_EXPECT_EQ(t_cmd_snapshot(&d0[3]).code, ERROR_OPERATION_ABORTED);
    T_EXPECT_EQ(t_cmd_snapshot(&d0[4]).code, ERROR_OPERATION_ABORTED);
    if (snap2.code == ERROR_SUCCESS)
        T_EXPECT(snap2.order < first995); /* taken completions come first */
    last = -1;
    for (int i = 0; i < N1; i++) {
        t_cmd sn = t_cmd_snapshot(&d1[i]);
        T_EXPECT_EQ(sn.calls, 1);
        T_EXPECT_EQ(sn.code, ERROR_OPERATION_ABORTED);
        T_EXPECT(sn.order > last);
        last = sn.order;
    }
    t_set_teardown(&s);
}

/* Routines may call any server function the other rules allow. */
typedef struct in_cb {
    vdi_server_set *sv;
    vdi_server_device *dev;
    int rc_alloc, rc_free, rc_cfg, rc_shared, rc_close_dev, rc_open;
} in_cb;
static in_cb g_cb;

static void server_calls_hook(t_cmd *tc) {
    (void)tc;
    uint8_t *b = NULL;
    VDConfig cfg;
    vdi_server_device *d = NULL;
    g_cb.rc_alloc = vdi_server_set_allocate_buffer(g_cb.sv, &b, 4096, 0);
    g_cb.rc_shared = vdi_server_set_is_shared_buffer(g_cb.sv, b);
    g_cb.rc_free = vdi_server_set_free_buffer(g_cb.sv, b, 4096);
    g_cb.rc_cfg = vdi_server_set_get_configuration(g_cb.sv, &cfg);
    g_cb.rc_open = vdi_server_set_open_device(g_cb.sv, "d1", &d);
    g_cb.rc_close_dev = vdi_server_device_close(g_cb.dev);
    if (d)
        (void)vdi_server_device_close(d);
}

static void case_callback_calls(void) {
    t_set s;
    t_set_init(&s, "cbcalls", 2);
    t_set_to_initializing(&s);
    T_REQUIRE(vdi_server_set_open_device(s.server, s.name, &s.sdev[0]) == NOERROR);
    T_REQUIRE(vdi_client_set_open_device(s.client, s.name, &s.cdev[0]) == NOERROR);
    t_set_start_agent(&s);
    g_cb.sv = s.server;
    g_cb.dev = s.sdev[0];
    t_cmd a;
    t_cmd_init(&a, &s.ledger, VDC_Flush, 0, 0, NULL);
    a.hook = server_calls_hook;
    T_REQUIRE(t_send(s.sdev[0], &a) == NOERROR);
    VDC_Command *c = NULL;
    T_REQUIRE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c) == NOERROR);
    T_REQUIRE(vdi_client_device_complete_command(s.cdev[0], c, 0, 0, 0) == NOERROR);
    /* the routine closed both devices: the set reaches Normally Terminated */
    T_EXPECT_OK(t_set_join_agent(&s));
    T_EXPECT_OK(g_cb.rc_alloc);
    T_EXPECT_EQ(g_cb.rc_shared, 1);
    T_EXPECT_OK(g_cb.rc_free);
    T_EXPECT_OK(g_cb.rc_cfg);
    T_EXPECT_OK(g_cb.rc_open);
    T_EXPECT_OK(g_cb.rc_close_dev);
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c), VD_E_CLOSE);
    T_EXPECT_OK(vdi_server_set_close(s.server));
    T_EXPECT_OK(vdi_client_set_close(s.client));
    t_set_teardown(&s);
}

/* The last command's routine closes the set, which that very completion made Normally
 * Terminated (every device closed, nothing else outstanding): Close returns NOERROR and
 * the agent NOERROR too, since the normal end came before the close (VDI-SPEC 4). */
static int last_close_rc;
static vdi_server_set *last_close_set;
static void close_set_hook(t_cmd *tc) {
    (void)tc;
    last_close_rc = vdi_server_set_close(last_close_set);
}

static void case_close_in_last_callback(void) {
    t_set s;
    t_set_init(&s, "lastcb", 2);
    t_set_to_active(&s);
    last_close_set = s.server;
    last_close_rc = 1;
    t_cmd a;
    t_cmd_init(&a, &s.ledger, VDC_Flush, 0, 0, NULL);
    a.hook = close_set_hook;
    T_REQUIRE(t_send(s.sdev[1], &a) == NOERROR);
    T_REQUIRE(vdi_server_device_close(s.sdev[0]) == NOERROR);
    T_REQUIRE(vdi_server_device_close(s.sdev[1]) == NOERROR);
    VDC_Command *c = NULL;
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c), VD_E_CLOSE);
    T_REQUIRE(vdi_client_device_get_command(s.cdev[1], VDI_INFINITE, &c) == NOERROR);
    T_REQUIRE(vdi_client_device_complete_command(s.cdev[1], c, ERROR_SUCCESS, 0, 0) == NOERROR);
    T_EXPECT_OK(t_set_join_agent(&s));
    T_EXPECT_OK(last_close_rc);
    T_EXPECT_EQ(t_cmd_snapshot(&a).calls, 1);
    T_EXPECT_EQ(t_cmd_snapshot(&a).code, ERROR_SUCCESS);
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev[1], 0, &c), VD_E_CLOSE);
    T_EXPECT_OK(vdi_client_set_close(s.client));
    t_set_teardown(&s);
}

int main(int argc, char **argv) {
    static const t_case cases[] = {
        {"one_agent", case_one_agent},
        {"normal_end", case_normal_end},
        {"late_agent", case_late_agent},
        {"drain", case_drain},
        {"callback_calls", case_callback_calls},
        {"close_in_last_callback", case_close_in_last_callback},
    };
    int rc = t_run_cases(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
    return rc ? rc : t_done();
}
