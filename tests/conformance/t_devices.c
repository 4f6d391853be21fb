/* Devices (VDI-SPEC 4 and 8.10): device 0 is named after the set, other names bind free
 * slots first-come from either side, a device is usable once both sides opened it, and
 * open_device reports its errors in one fixed order. Multi-stream backups depend on both
 * sides agreeing on which name is which stream. */
#include "t_test.h"
#include "t_vdi.h"

/* The example of section 4: three devices; the server opens "b", the client opens "c",
 * the server opens "d": INVALID (no free slot). */
static void case_binding(void) {
    t_set s;
    t_set_init(&s, "bind", 3);
    t_set_to_initializing(&s);
    vdi_server_device *sb = NULL, *sc = NULL, *sd = NULL, *s0 = NULL;
    vdi_client_device *cb = NULL, *cc = NULL, *c0 = NULL;
    T_EXPECT_OK(vdi_server_set_open_device(s.server, "b", &sb));
    T_EXPECT_OK(vdi_client_set_open_device(s.client, "c", &cc));
    T_EXPECT_CODE(vdi_server_set_open_device(s.server, "d", &sd), VD_E_INVALID);
    T_EXPECT(sd == NULL);
    /* names are case-sensitive: "B" is another name, and there is no slot for it */
    vdi_client_device *cB = NULL;
    T_EXPECT_CODE(vdi_client_set_open_device(s.client, "B", &cB), VD_E_INVALID);
    T_EXPECT_OK(vdi_server_set_open_device(s.server, "c", &sc));
    T_EXPECT_OK(vdi_client_set_open_device(s.client, "b", &cb));
    T_EXPECT_OK(vdi_server_set_open_device(s.server, s.name, &s0));
    T_EXPECT_OK(vdi_client_set_open_device(s.client, s.name, &c0));
    s.sdev[0] = s0;
    t_set_start_agent(&s);
    /* the pairs are the names: a command on the server's "c" reaches the client's "c" */
    t_cmd a;
    t_cmd_init(&a, &s.ledger, VDC_Flush, 0, 77, NULL);
    T_REQUIRE(t_send(sc, &a) == NOERROR);
    VDC_Command *c = NULL;
    T_EXPECT_CODE(vdi_client_device_get_command(cb, 0, &c), VD_E_TIMEOUT);
    T_EXPECT_CODE(vdi_client_device_get_command(c0, 0, &c), VD_E_TIMEOUT);
    T_REQUIRE(vdi_client_device_get_command(cc, VDI_INFINITE, &c) == NOERROR);
    T_EXPECT_EQ(c->position, 77);
    T_EXPECT_OK(vdi_client_device_complete_command(cc, c, 0, 0, 0));
    t_ledger_wait(&s.ledger, 1);
    s.sdev[0] = s0;
    s.sdev[1] = sb;
    s.sdev[2] = sc;
    s.cdev[0] = c0;
    s.cdev[1] = cb;
    s.cdev[2] = cc;
    t_set_finish(&s);
}

/* A command sent before the client opened the device is delivered once it does; a
 * get_command on a device the server has not opened simply waits. */
static void case_early(void) {
    t_set s;
    t_set_init(&s, "early", 2);
    t_set_to_initializing(&s);
    T_REQUIRE(vdi_server_set_open_device(s.server, s.name, &s.sdev[0]) == NOERROR);
    T_REQUIRE(vdi_client_set_open_device(s.client, "d1", &s.cdev[1]) == NOERROR);
    t_set_start_agent(&s);
    t_cmd a, b;
    t_cmd_init(&a, &s.ledger, VDC_Flush, 0, 1, NULL);
    T_REQUIRE(t_send(s.sdev[0], &a) == NOERROR);
    VDC_Command *c = NULL;
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev[1], 0, &c), VD_E_TIMEOUT);
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev[1], 20, &c), VD_E_TIMEOUT);
    T_REQUIRE(vdi_client_set_open_device(s.client, s.name, &s.cdev[0]) == NOERROR);
    T_REQUIRE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c) == NOERROR);
    T_EXPECT_EQ(c->position, 1);
    T_EXPECT_OK(vdi_client_device_complete_command(s.cdev[0], c, 0, 0, 0));
    T_REQUIRE(vdi_server_set_open_device(s.server, "d1", &s.sdev[1]) == NOERROR);
    t_cmd_init(&b, &s.ledger, VDC_Flush, 0, 2, NULL);
    T_REQUIRE(t_send(s.sdev[1], &b) == NOERROR);
    T_REQUIRE(vdi_client_device_get_command(s.cdev[1], VDI_INFINITE, &c) == NOERROR);
    T_EXPECT_EQ(c->position, 2);
    T_EXPECT_OK(vdi_client_device_complete_command(s.cdev[1], c, 0, 0, 0));
    t_ledger_wait(&s.ledger, 2);
    t_set_finish(&s);
}

/* 8.10, client: this object already opened it PROTOCOL; another client object holds it
 * PROTOCOL; every device held OPEN; cannot bind INVALID; bad names INVALID. */
static void case_client_errors(void) {
    t_set s;
    t_set_init(&s, "cerr", 2);
    t_set_to_initializing(&s);
    vdi_client_device *d = NULL;
    T_EXPECT_CODE(vdi_client_set_open_device(s.client, NULL, &d), VD_E_INVALID);
    T_EXPECT_CODE(vdi_client_set_open_device(s.client, s.name, NULL), VD_E_INVALID);
    T_EXPECT_CODE(vdi_client_set_open_device(NULL, s.name, &d), VD_E_INVALID);
    T_EXPECT_CODE(vdi_client_set_open_device(s.client, "", &d), VD_E_INVALID);
    T_EXPECT_CODE(vdi_client_set_open_device(s.client, "a/b", &d), VD_E_INVALID);
    char longname[VDI_MAX_NAME + 2];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    T_EXPECT_CODE(vdi_client_set_open_device(s.client, longname, &d), VD_E_INVALID);
    T_REQUIRE(vdi_client_set_open_device(s.client, s.name, &s.cdev[0]) == NOERROR);
    T_EXPECT_CODE(vdi_client_set_open_device(s.client, s.name, &d), VD_E_PROTOCOL);
    T_EXPECT(d == NULL);
    /* a secondary: device 0 is held by the primary */
    vdi_client_set *sec = vdi_client_set_new();
    T_REQUIRE(vdi_client_set_open_in_secondary(sec, s.name) == NOERROR);
    T_EXPECT_CODE(vdi_client_set_open_device(sec, s.name, &d), VD_E_PROTOCOL);
    vdi_client_device *sd = NULL;
    T_EXPECT_OK(vdi_client_set_open_device(sec, "x", &sd));
    /* every device held: OPEN, for a new name, from either object */
    T_EXPECT_CODE(vdi_client_set_open_device(s.client, "y", &d), VD_E_OPEN);
    T_EXPECT_CODE(vdi_client_set_open_device(sec, "y", &d), VD_E_OPEN);
    /* PROTOCOL precedes OPEN */
    T_EXPECT_CODE(vdi_client_set_open_device(sec, "x", &d), VD_E_PROTOCOL);
    T_EXPECT_CODE(vdi_client_set_open_device(s.client, "x", &d), VD_E_PROTOCOL);
    T_REQUIRE(vdi_client_set_signal_abort(s.client) == NOERROR);
    T_EXPECT_OK(vdi_client_set_close(sec));
    vdi_client_set_free(sec);
    t_set_teardown(&s);
}

/* 8.10, server: a name it already opened while others are unopened PROTOCOL; all open
 * OPEN; cannot bind INVALID. */
static void case_server_errors(void) {
    t_set s;
    t_set_init(&s, "serr", 3);
    t_set_to_initializing(&s);
    vdi_server_device *d = NULL;
    T_EXPECT_CODE(vdi_server_set_open_device(s.server, NULL, &d), VD_E_INVALID);
    T_EXPECT_CODE(vdi_server_set_open_device(s.server, s.name, NULL), VD_E_INVALID);
    T_EXPECT_CODE(vdi_server_set_open_device(NULL, s.name, &d), VD_E_INVALID);
    T_EXPECT_CODE(vdi_server_set_open_device(s.server, "", &d), VD_E_INVALID);
    T_EXPECT_CODE(vdi_server_set_open_device(s.server, "a\\b", &d), VD_E_INVALID);
    T_REQUIRE(vdi_server_set_open_device(s.server, s.name, &s.sdev[0]) == NOERROR);
    T_EXPECT_CODE(vdi_server_set_open_device(s.server, s.name, &d), VD_E_PROTOCOL);
    T_REQUIRE(vdi_server_set_open_device(s.server, "p", &s.sdev[1]) == NOERROR);
    T_EXPECT_CODE(vdi_server_set_open_device(s.server, "p", &d), VD_E_PROTOCOL);
    /* the client binds the last slot first: the server cannot bind "r" */
    vdi_client_device *cq = NULL;
    T_REQUIRE(vdi_client_set_open_device(s.client, "q", &cq) == NOERROR);
    T_EXPECT_CODE(vdi_server_set_open_device(s.server, "r", &d), VD_E_INVALID);
    T_REQUIRE(vdi_server_set_open_device(s.server, "q", &s.sdev[2]) == NOERROR);
    /* all open: OPEN, for a known name too */
    T_EXPECT_CODE(vdi_server_set_open_device(s.server, "r", &d), VD_E_OPEN);
    T_EXPECT_CODE(vdi_server_set_open_device(s.server, s.name, &d), VD_E_OPEN);
    T_EXPECT(d == NULL);
    t_set_teardown(&s);
}

/* The largest set: 64 devices, all opened by both sides, a command through each. */
static void case_64(void) {
    t_set s;
    t_set_init(&s, "d64", VDI_MAX_DEVICES);
    t_set_to_active(&s);
    static t_cmd tc[VDI_MAX_DEVICES];
    for (int i = 0; i < VDI_MAX_DEVICES; i++) {
        t_cmd_init(&tc[i], &s.ledger, VDC_Flush, 0, i, NULL);
        T_EXPECT_OK(t_send(s.sdev[i], &tc[i]));
    }
    for (int i = 0; i < VDI_MAX_DEVICES; i++) {
        VDC_Command *c = NULL;
        T_REQUIRE(vdi_client_device_get_command(s.cdev[i], VDI_INFINITE, &c) == NOERROR);
        T_EXPECT_EQ(c->position, i);
        T_EXPECT_OK(vdi_client_device_complete_command(s.cdev[i], c, 0, 0, 0));
    }
    t_ledger_wait(&s.ledger, VDI_MAX_DEVICES);
    t_set_finish(&s);
}

int main(int argc, char **argv) {
    static const t_case cases[] = {
        {"binding", case_binding},
        {"early", case_early},
        {"client_errors", case_client_errors},
        {"server_errors", case_server_errors},
        {"max_devices", case_64},
    };
    int rc = t_run_cases(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
    return rc ? rc : t_done();
}
