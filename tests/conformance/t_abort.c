/* Abort (VDI-SPEC 5.3): from either side it reaches the whole set, wakes blocked
 * get_command and get_configuration with VD_E_ABORT, stops delivery, gives every
 * outstanding command exactly one 995, and is sticky and idempotent. Abort is the path
 * every failure takes, so a hole here is a hung or corrupted backup. */
#include "t_test.h"
#include "t_vdi.h"

typedef struct blocked_get {
    vdi_client_device *dev;
    int rc;
} blocked_get;

static void *get_forever(void *arg) {
    blocked_get *b = arg;
    VDC_Command *c = NULL;
    b->rc = vdi_client_device_get_command(b->dev, VDI_INFINITE, &c);
    return NULL;
}

/* signal_abort from the client or from the server wakes a get_command blocked forever
 * on another thread, and the agent drains and returns ABORT. */
static void abort_wakes_get(int from_server) {
    t_waitspy_install();
    t_set s;
    t_set_init(&s, from_server ? "wake-s" : "wake-c", 2);
    t_set_to_active(&s);
    blocked_get b0 = {s.cdev[0], 0}, b1 = {s.cdev[1], 0};
    pthread_t t0 = t_spawn(get_forever, &b0);
    pthread_t t1 = t_spawn(get_forever, &b1);
    t_waitspy_until_blocked(t0);
    t_waitspy_until_blocked(t1);
    if (from_server)
        T_EXPECT_OK(vdi_server_set_signal_abort(s.server));
    else
        T_EXPECT_OK(vdi_client_set_signal_abort(s.client));
    t_join(t0);
    t_join(t1);
    T_EXPECT_CODE(b0.rc, VD_E_ABORT);
    T_EXPECT_CODE(b1.rc, VD_E_ABORT);
    T_EXPECT_CODE(t_set_join_agent(&s), VD_E_ABORT);
    /* sticky, and signal_abort is idempotent on both sides */
    T_EXPECT_OK(vdi_client_set_signal_abort(s.client));
    T_EXPECT_OK(vdi_server_set_signal_abort(s.server));
    VDC_Command *c = NULL;
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev[0], 0, &c), VD_E_ABORT);
    T_EXPECT_OK(vdi_server_set_close(s.server));
    T_EXPECT_OK(vdi_client_set_close(s.client));
    t_set_teardown(&s);
    t_waitspy_remove();
}

static void case_client_wakes_get(void) {
    abort_wakes_get(0);
}

static void case_server_wakes_get(void) {
    abort_wakes_get(1);
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

/* A server abort wakes the client blocked in get_configuration (the server is
 * Connected, so the client waits for end_configuration). */
static void case_wakes_config(void) {
    t_waitspy_install();
    t_set s;
    t_set_init(&s, "wake-cfg", 1);
    t_set_create(&s);
    t_set_server_open(&s);
    blocked_cfg b = {s.client, 0};
    pthread_t th = t_spawn(config_forever, &b);
    t_waitspy_until_blocked(th);
    T_EXPECT_OK(vdi_server_set_signal_abort(s.server));
    t_join(th);
    T_EXPECT_CODE(b.rc, VD_E_ABORT);
    /* the client's own abort from Configurable also wakes a waiter */
    t_set_teardown(&s);
    t_set_init(&s, "wake-cfg2", 1);
    t_set_create(&s);
    b.cl = s.client;
    th = t_spawn(config_forever, &b);
    t_waitspy_until_blocked(th);
    T_EXPECT_OK(vdi_client_set_signal_abort(s.client));
    t_join(th);
    T_EXPECT_CODE(b.rc, VD_E_ABORT);
    /* a server that comes after the abort: open says ABORT and stays DNE (8.4) */
    T_EXPECT_CODE(vdi_server_set_open(s.server, NULL, s.name), VD_E_ABORT);
    VDConfig cfg;
    T_EXPECT_CODE(vdi_server_set_get_configuration(s.server, &cfg), VD_E_PROTOCOL);
    t_set_teardown(&s);
    t_waitspy_remove();
}

/* Nothing new is delivered after an abort; every outstanding command (undelivered,
 * delivered, completed-but-not-yet-taken) gets exactly one callback, and a command whose
 * complete_command returned ABORT gets 995. */
static void case_outstanding(void) {
    t_set s;
    t_set_init(&s, "outst", 1);
    t_set_to_active(&s);
    enum { N = 6 };
    t_cmd tc[N];
    for (int i = 0; i < N; i++) {
        t_cmd_init(&tc[i], &s.ledger, VDC_Flush, 0, i, NULL);
        T_REQUIRE(t_send(s.sdev[0], &tc[i]) == NOERROR);
    }
    VDC_Command *c0 = NULL, *c1 = NULL;
    T_REQUIRE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c0) == NOERROR);
    T_REQUIRE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c1) == NOERROR);
    int rc0 = vdi_client_device_complete_command(s.cdev[0], c0, ERROR_SUCCESS, 0, 0);
    T_EXPECT_OK(rc0);
    T_REQUIRE(vdi_client_set_signal_abort(s.client) == NOERROR);
    /* undelivered commands are never delivered */
    VDC_Command *c = NULL;
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c), VD_E_ABORT);
    T_EXPECT(c == NULL);
    T_EXPECT_CODE(vdi_client_device_complete_command(s.cdev[0], c1, ERROR_SUCCESS, 0, 0),
                  VD_E_ABORT);
    T_EXPECT_CODE(t_set_join_agent(&s), VD_E_ABORT);
    T_EXPECT_EQ(t_ledger_finished(&s.ledger), N);
    for (int i = 0; i < N; i++) {
        t_cmd sn = t_cmd_snapshot(&tc[i]);
        T_EXPECT_EQ(sn.calls, 1);
        if (i == 0)
            T_EXPECT(sn.code == ERROR_SUCCESS || sn.code == ERROR_OPERATION_ABORTED);
        else
            T_EXPECT_EQ(sn.code, ERROR_OPERATION_ABORTED);
    }
    t_set_teardown(&s);
}

/* close_device then abort before the client got the commands sent before it: they are
 * never delivered (995), and abort takes precedence over close for get_command. */
static void case_close_then_abort(void) {
    t_set s;
    t_set_init(&s, "clab", 1);
    t_set_to_active(&s);
    t_cmd a;
    t_cmd_init(&a, &s.ledger, VDC_Flush, 0, 0, NULL);
    T_REQUIRE(t_send(s.sdev[0], &a) == NOERROR);
    T_REQUIRE(vdi_server_device_close(s.sdev[0]) == NOERROR);
    T_REQUIRE(vdi_server_set_signal_abort(s.server) == NOERROR);
    VDC_Command *c = NULL;
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev[0], 0, &c), VD_E_ABORT);
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c), VD_E_ABORT);
    /* close_device in Abort: ABORT */
    T_EXPECT_CODE(vdi_server_device_close(s.sdev[0]), VD_E_ABORT);
    T_EXPECT_CODE(t_set_join_agent(&s), VD_E_ABORT);
    T_EXPECT_EQ(t_cmd_snapshot(&a).calls, 1);
    T_EXPECT_EQ(t_cmd_snapshot(&a).code, ERROR_OPERATION_ABORTED);
    t_set_teardown(&s);
}

/* A device that already returned VD_E_CLOSE answers ABORT after an abort (abort takes
 * precedence over close, 4). */
static void case_abort_over_close(void) {
    t_set s;
    t_set_init(&s, "aoc", 2);
    t_set_to_active(&s);
    T_REQUIRE(vdi_server_device_close(s.sdev[0]) == NOERROR);
    VDC_Command *c = NULL;
    T_REQUIRE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c) == VD_E_CLOSE);
    T_REQUIRE(vdi_client_set_signal_abort(s.client) == NOERROR);
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev[0], 0, &c), VD_E_ABORT);
    T_EXPECT_CODE(t_set_join_agent(&s), VD_E_ABORT);
    t_set_teardown(&s);
}

int main(int argc, char **argv) {
    static const t_case cases[] = {
        {"client_wakes_get", case_client_wakes_get}, {"server_wakes_get", case_server_wakes_get},
        {"wakes_config", case_wakes_config},         {"outstanding", case_outstanding},
        {"close_then_abort", case_close_then_abort}, {"abort_over_close", case_abort_over_close},
    };
    int rc = t_run_cases(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
    return rc ? rc : t_done();
}
