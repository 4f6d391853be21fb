/* The watchdog (VDI-SPEC 4, "Watchdog"): with serverTimeOut T > 0, a command left
 * outstanding for 2T aborts the set; T = 0 never does; an idle set with nothing
 * outstanding never does. Only outcomes are asserted; time passes through get_command
 * timeouts, never sleeps. A hung client must not hang SQL Server forever. */
#include "t_test.h"
#include "t_vdi.h"

/* T = 1 ms, one command never completed: the agent aborts the set; a client blocked
 * forever in get_command wakes with ABORT; the command gets 995. */
static void case_fires(void) {
    t_set s;
    t_set_init(&s, "wdf", 2);
    s.cfg.serverTimeOut = 1;
    t_set_to_active(&s);
    t_cmd a;
    t_cmd_init(&a, &s.ledger, VDC_Flush, 0, 0, NULL);
    T_REQUIRE(t_send(s.sdev[0], &a) == NOERROR);
    /* the watchdog may fire before the client takes the command */
    VDC_Command *c = NULL;
    int got = vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c);
    T_EXPECT(got == NOERROR || got == VD_E_ABORT);
    VDC_Command *c2 = NULL;
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev[1], VDI_INFINITE, &c2), VD_E_ABORT);
    T_EXPECT_CODE(t_set_join_agent(&s), VD_E_ABORT);
    T_EXPECT_EQ(t_cmd_snapshot(&a).calls, 1);
    T_EXPECT_EQ(t_cmd_snapshot(&a).code, ERROR_OPERATION_ABORTED);
    if (got == NOERROR)
        T_EXPECT_CODE(vdi_client_device_complete_command(s.cdev[0], c, ERROR_SUCCESS, 0, 0),
                      VD_E_ABORT);
    T_EXPECT_OK(vdi_server_set_close(s.server));
    T_EXPECT_OK(vdi_client_set_close(s.client));
    t_set_teardown(&s);
}

/* The same with an undelivered command: the client never took it. */
static void case_fires_undelivered(void) {
    t_set s;
    t_set_init(&s, "wdu", 1);
    s.cfg.serverTimeOut = 1;
    t_set_to_active(&s);
    t_cmd a;
    t_cmd_init(&a, &s.ledger, VDC_Flush, 0, 0, NULL);
    T_REQUIRE(t_send(s.sdev[0], &a) == NOERROR);
    T_EXPECT_CODE(t_set_join_agent(&s), VD_E_ABORT);
    T_EXPECT_EQ(t_cmd_snapshot(&a).code, ERROR_OPERATION_ABORTED);
    VDC_Command *c = NULL;
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c), VD_E_ABORT);
    t_set_teardown(&s);
}

/* Let real time pass without sleeping: get_command timeouts on an idle device. */
static void let_time_pass(vdi_client_device *idle, int slices, long ms) {
    for (int i = 0; i < slices; i++) {
        VDC_Command *c = NULL;
        T_EXPECT_CODE(vdi_client_device_get_command(idle, ms, &c), VD_E_TIMEOUT);
    }
}

/* T = 0 disables it: a command held while time passes is completed normally. */
static void case_disabled(void) {
    t_set s;
    t_set_init(&s, "wd0", 2);
    s.cfg.serverTimeOut = 0;
    t_set_to_active(&s);
    t_cmd a;
    t_cmd_init(&a, &s.ledger, VDC_Flush, 0, 0, NULL);
    T_REQUIRE(t_send(s.sdev[0], &a) == NOERROR);
    VDC_Command *c = NULL;
    T_REQUIRE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c) == NOERROR);
    let_time_pass(s.cdev[1], 3, 50);
    T_EXPECT_OK(vdi_client_device_complete_command(s.cdev[0], c, ERROR_SUCCESS, 0, 0));
    t_ledger_wait(&s.ledger, 1);
    T_EXPECT_EQ(t_cmd_snapshot(&a).code, ERROR_SUCCESS);
    t_set_finish(&s);
}

/* T = 20 ms and nothing outstanding for much longer than 2T: no abort (the deadline
 * only runs while a command is outstanding). */
static void case_idle(void) {
    t_set s;
    t_set_init(&s, "wdi", 2);
    s.cfg.serverTimeOut = 20;
    t_set_to_active(&s);
    let_time_pass(s.cdev[1], 4, 50);
    VDConfig cfg;
    T_EXPECT_OK(vdi_server_set_get_configuration(s.server, &cfg));
    T_EXPECT_EQ(cfg.serverTimeOut, 20);
    t_set_finish(&s);
}

int main(int argc, char **argv) {
    static const t_case cases[] = {
        {"fires", case_fires},
        {"fires_undelivered", case_fires_undelivered},
        {"disabled", case_disabled},
        {"idle", case_idle},
    };
    int rc = t_run_cases(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
    return rc ? rc : t_done();
}
