/* Every cell of the client state table (VDI-SPEC 3), one case per column: the call is
 * made with the object in exactly that state and the code and the resulting state are
 * checked. A wrong cell here is a backup client that works against the reference and
 * fails against SQL Server, or the reverse. */
#include "t_test.h"
#include "t_vdi.h"

/* A Write of 4096 bytes from a fresh shared buffer on device 0, taken by the client:
 * gives the client a delivered command and its own address of a data zone. */
static VDC_Command *deliver_write(t_set *s, t_cmd *tc, uint8_t **sbuf) {
    T_REQUIRE(vdi_server_set_allocate_buffer(s->server, sbuf, 4096, 0) == NOERROR);
    t_cmd_init(tc, &s->ledger, VDC_Write, 4096, 0, *sbuf);
    T_REQUIRE(t_send(s->sdev[0], tc) == NOERROR);
    VDC_Command *c = NULL;
    T_REQUIRE(vdi_client_device_get_command(s->cdev[0], VDI_INFINITE, &c) == NOERROR);
    T_REQUIRE(c != NULL && c->buffer != NULL);
    return c;
}

static void case_dne(void) {
    vdi_client_set *c = vdi_client_set_new();
    T_REQUIRE(c != NULL);
    VDConfig cfg;
    memset(&cfg, 0xab, sizeof cfg);
    VDConfig before = cfg;
    /* VDI-SPEC 3, client table, get_configuration / DNE: PROTOCOL (8.1: *cfg unchanged) */
    T_EXPECT_CODE(vdi_client_set_get_configuration(c, 0, &cfg), VD_E_PROTOCOL);
    T_EXPECT(memcmp(&cfg, &before, sizeof cfg) == 0);
    /* open_device / DNE: PROTOCOL, and the out-parameter is NULLed (2) */
    vdi_client_device *dev = (vdi_client_device *)&cfg;
    T_EXPECT_CODE(vdi_client_set_open_device(c, "x", &dev), VD_E_PROTOCOL);
    T_EXPECT(dev == NULL);
    /* get_buffer_handle / map_buffer_handle / DNE: PROTOCOL, out-parameters zeroed */
    uint8_t byte = 0;
    uint32_t h = 77;
    T_EXPECT_CODE(vdi_client_set_get_buffer_handle(c, &byte, &h), VD_E_PROTOCOL);
    T_EXPECT_EQ(h, 0);
    uint8_t *p = &byte;
    T_EXPECT_CODE(vdi_client_set_map_buffer_handle(c, 1, &p), VD_E_PROTOCOL);
    T_EXPECT(p == NULL);
    /* signal_abort / DNE: PROTOCOL */
    T_EXPECT_CODE(vdi_client_set_signal_abort(c), VD_E_PROTOCOL);
    /* close / DNE: PROTOCOL (5.2 "not created") */
    T_EXPECT_CODE(vdi_client_set_close(c), VD_E_PROTOCOL);
    /* create / DNE: OK -> Configurable (a second create is then PROTOCOL) */
    VDConfig cc;
    t_config_default(&cc, 1);
    const char *name = t_set_name("cdne");
    T_EXPECT_OK(vdi_client_set_create(c, name, &cc));
    T_EXPECT_CODE(vdi_client_set_create(c, t_set_name("cdne2"), &cc), VD_E_PROTOCOL);
    /* close of Configurable returns the object to DNE: calls are PROTOCOL again, and
     * create works again (5.2) */
    T_EXPECT_OK(vdi_client_set_close(c));
    T_EXPECT_CODE(vdi_client_set_get_configuration(c, 0, &cfg), VD_E_PROTOCOL);
    T_EXPECT_OK(vdi_client_set_create(c, t_set_name("cdne3"), &cc));
    T_EXPECT_OK(vdi_client_set_close(c));
    vdi_client_set_free(c);
}

static void *get_config_thread(void *arg) {
    t_set *s = arg;
    VDConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    intptr_t rc = vdi_client_set_get_configuration(s->client, VDI_INFINITE, &cfg);
    return (void *)rc;
}

static void case_configurable(void) {
    t_set s;
    t_set_init(&s, "ccfg", 2);
    t_set_create(&s);
    VDConfig cfg;
    memset(&cfg, 0x5a, sizeof cfg);
    VDConfig before = cfg;
    /* client table, create / Configurable: PROTOCOL */
    T_EXPECT_CODE(vdi_client_set_create(s.client, t_set_name("other"), &s.cfg), VD_E_PROTOCOL);
    /* open_in_secondary / Configurable: PROTOCOL */
    T_EXPECT_CODE(vdi_client_set_open_in_secondary(s.client, s.name), VD_E_PROTOCOL);
    /* get_configuration / Configurable: waits; a poll with no server times out and
     * changes nothing (4: VD_E_TIMEOUT; 8.1: *cfg unchanged) */
    T_EXPECT_CODE(vdi_client_set_get_configuration(s.client, 0, &cfg), VD_E_TIMEOUT);
    T_EXPECT(memcmp(&cfg, &before, sizeof cfg) == 0);
    /* open_device / Configurable: PROTOCOL */
    vdi_client_device *dev = NULL;
    T_EXPECT_CODE(vdi_client_set_open_device(s.client, s.name, &dev), VD_E_PROTOCOL);
    T_EXPECT(dev == NULL);
    /* buffer handles / Configurable: PROTOCOL */
    uint8_t byte = 0;
    uint32_t h = 1;
    T_EXPECT_CODE(vdi_client_set_get_buffer_handle(s.client, &byte, &h), VD_E_PROTOCOL);
    uint8_t *p = NULL;
    T_EXPECT_CODE(vdi_client_set_map_buffer_handle(s.client, 0, &p), VD_E_PROTOCOL);
    /* get_configuration / Configurable: a blocked call returns OK once the server ends
     * its configuration, and the object is then Initializing (open_device works) */
    pthread_t th = t_spawn(get_config_thread, &s);
    t_set_server_open(&s);
    t_set_server_begin(&s);
    t_set_server_end(&s);
    T_EXPECT_OK((int)(intptr_t)t_join(th));
    T_EXPECT_OK(vdi_client_set_open_device(s.client, s.name, &dev));
    t_set_teardown(&s);

    /* signal_abort / Configurable: OK -> Abort (get_configuration then ABORT) */
    t_set_init(&s, "ccfg-abort", 1);
    t_set_create(&s);
    T_EXPECT_OK(vdi_client_set_signal_abort(s.client));
    T_EXPECT_CODE(vdi_client_set_get_configuration(s.client, 0, &cfg), VD_E_ABORT);
    t_set_teardown(&s);
}

static void case_initializing(void) {
    /* The primary reaches Active to obtain a buffer handle; a secondary (Initializing,
     * 8.13: it follows the client table) is the object under test for the buffer cells. */
    t_set s;
    t_set_init(&s, "cinit", 2);
    t_set_to_initializing(&s);
    VDConfig cfg;
    /* create / Initializing: PROTOCOL; open_in_secondary / Initializing: PROTOCOL */
    T_EXPECT_CODE(vdi_client_set_create(s.client, t_set_name("other"), &s.cfg), VD_E_PROTOCOL);
    T_EXPECT_CODE(vdi_client_set_open_in_secondary(s.client, s.name), VD_E_PROTOCOL);
    /* get_configuration / Initializing: OK */
    T_EXPECT_OK(vdi_client_set_get_configuration(s.client, 0, &cfg));
    T_EXPECT_EQ(cfg.deviceCount, 2);
    /* buffer handles / Initializing: allowed by state; a bogus address is a parameter
     * error (INVALID), not PROTOCOL */
    uint8_t byte = 0;
    uint32_t h = 1;
    T_EXPECT_CODE(vdi_client_set_get_buffer_handle(s.client, &byte, &h), VD_E_INVALID);
    /* open_device / Initializing: OK -> Active */
    t_set_open_devices(&s);
    t_set_start_agent(&s);

    t_cmd tc;
    uint8_t *sbuf = NULL;
    VDC_Command *c = deliver_write(&s, &tc, &sbuf);
    memset(c->buffer, 0x3c, 4096);
    T_EXPECT_OK(vdi_client_set_get_buffer_handle(s.client, c->buffer, &h));

    vdi_client_set *sec = vdi_client_set_new();
    T_REQUIRE(sec != NULL);
    T_REQUIRE(vdi_client_set_open_in_secondary(sec, s.name) == NOERROR);
    /* map_buffer_handle / Initializing (secondary): OK, the same bytes */
    uint8_t *mine = NULL;
    T_EXPECT_OK(vdi_client_set_map_buffer_handle(sec, h, &mine));
    T_REQUIRE(mine != NULL);
    T_EXPECT_EQ(mine[0], 0x3c);
    T_EXPECT_EQ(mine[4095], 0x3c);
    /* get_buffer_handle / Initializing (secondary): OK, the handle maps back */
    uint32_t h2 = 0;
    T_EXPECT_OK(vdi_client_set_get_buffer_handle(sec, mine, &h2));
    uint8_t *again = NULL;
    T_EXPECT_OK(vdi_client_set_map_buffer_handle(sec, h2, &again));
    T_EXPECT(again == mine);
    /* signal_abort / Initializing: OK -> Abort (the secondary's get_configuration now
     * says ABORT, and so does the primary's: the whole set is aborted) */
    T_EXPECT_OK(vdi_client_set_signal_abort(sec));
    T_EXPECT_CODE(vdi_client_set_get_configuration(sec, 0, &cfg), VD_E_ABORT);
    T_EXPECT_CODE(vdi_client_set_get_configuration(s.client, 0, &cfg), VD_E_ABORT);
    T_EXPECT_CODE(t_set_join_agent(&s), VD_E_ABORT);
    T_EXPECT_OK(vdi_client_set_close(sec));
    vdi_client_set_free(sec);
    t_set_teardown(&s);
}

static void case_active(void) {
    t_set s;
    t_set_init(&s, "cact", 3);
    t_set_to_initializing(&s);
    /* open_device / Initializing -> Active, then another device: OK (choice, 6.6) */
    T_EXPECT_OK(vdi_server_set_open_device(s.server, s.name, &s.sdev[0]));
    T_EXPECT_OK(vdi_client_set_open_device(s.client, s.name, &s.cdev[0]));
    T_EXPECT_OK(vdi_client_set_open_device(s.client, "d1", &s.cdev[1]));
    T_EXPECT_OK(vdi_server_set_open_device(s.server, "d1", &s.sdev[1]));
    T_EXPECT_OK(vdi_server_set_open_device(s.server, "d2", &s.sdev[2]));
    T_EXPECT_OK(vdi_client_set_open_device(s.client, "d2", &s.cdev[2]));
    t_set_start_agent(&s);
    VDConfig cfg;
    /* create / Active, open_in_secondary / Active: PROTOCOL */
    T_EXPECT_CODE(vdi_client_set_create(s.client, t_set_name("other"), &s.cfg), VD_E_PROTOCOL);
    T_EXPECT_CODE(vdi_client_set_open_in_secondary(s.client, s.name), VD_E_PROTOCOL);
    /* get_configuration / Active: OK */
    T_EXPECT_OK(vdi_client_set_get_configuration(s.client, 0, &cfg));
    /* buffer handles / Active: OK */
    t_cmd tc;
    uint8_t *sbuf = NULL;
    VDC_Command *c = deliver_write(&s, &tc, &sbuf);
    uint32_t h = 0;
    T_EXPECT_OK(vdi_client_set_get_buffer_handle(s.client, c->buffer, &h));
    uint8_t *mapped = NULL;
    T_EXPECT_OK(vdi_client_set_map_buffer_handle(s.client, h, &mapped));
    T_EXPECT(mapped == c->buffer); /* 4: the same address for the object that made it */
    T_EXPECT_OK(vdi_client_device_complete_command(s.cdev[0], c, ERROR_SUCCESS, 4096, 0));
    t_ledger_wait(&s.ledger, 1);
    T_EXPECT_EQ(t_cmd_snapshot(&tc).code, ERROR_SUCCESS);
    /* signal_abort / Active: OK -> Abort; the agent drains and returns ABORT */
    T_EXPECT_OK(vdi_client_set_signal_abort(s.client));
    T_EXPECT_CODE(vdi_client_set_get_configuration(s.client, 0, &cfg), VD_E_ABORT);
    T_EXPECT_CODE(t_set_join_agent(&s), VD_E_ABORT);
    t_set_teardown(&s);
}

/* Two devices, the client opens only device 0, the server opens and closes both: the
 * client object is Normally Terminated once device 0 returned VD_E_CLOSE. */
static void case_normterm(void) {
    t_set s;
    t_set_init(&s, "cnt", 2);
    t_set_to_initializing(&s);
    T_REQUIRE(vdi_server_set_open_device(s.server, s.name, &s.sdev[0]) == NOERROR);
    T_REQUIRE(vdi_server_set_open_device(s.server, "d1", &s.sdev[1]) == NOERROR);
    T_REQUIRE(vdi_client_set_open_device(s.client, s.name, &s.cdev[0]) == NOERROR);
    t_set_start_agent(&s);
    t_cmd tc;
    uint8_t *sbuf = NULL;
    VDC_Command *c = deliver_write(&s, &tc, &sbuf);
    uint8_t *cbuf = c->buffer;
    T_EXPECT_OK(vdi_client_device_complete_command(s.cdev[0], c, ERROR_SUCCESS, 4096, 0));
    T_REQUIRE(vdi_server_device_close(s.sdev[0]) == NOERROR);
    T_REQUIRE(vdi_server_device_close(s.sdev[1]) == NOERROR);
    VDC_Command *c2 = NULL;
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c2), VD_E_CLOSE);
    T_EXPECT(c2 == NULL);
    T_EXPECT_OK(t_set_join_agent(&s));

    VDConfig cfg;
    /* create / NT, open_in_secondary / NT: PROTOCOL */
    T_EXPECT_CODE(vdi_client_set_create(s.client, t_set_name("other"), &s.cfg), VD_E_PROTOCOL);
    T_EXPECT_CODE(vdi_client_set_open_in_secondary(s.client, s.name), VD_E_PROTOCOL);
    /* get_configuration / NT: OK */
    T_EXPECT_OK(vdi_client_set_get_configuration(s.client, 0, &cfg));
    /* open_device / NT: PROTOCOL (device d1 was never opened by this client) */
    vdi_client_device *dev = NULL;
    T_EXPECT_CODE(vdi_client_set_open_device(s.client, "d1", &dev), VD_E_PROTOCOL);
    /* get_command / NT: CLOSE, again and again (choice, 6.6) */
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev[0], 0, &c2), VD_E_CLOSE);
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c2), VD_E_CLOSE);
    /* complete_command / NT: INVALID (the only command is already completed) */
    T_EXPECT_CODE(vdi_client_device_complete_command(s.cdev[0], c, ERROR_SUCCESS, 0, 0),
                  VD_E_INVALID);
    /* buffer handles / NT: OK */
    uint32_t h = 0;
    T_EXPECT_OK(vdi_client_set_get_buffer_handle(s.client, cbuf, &h));
    uint8_t *mapped = NULL;
    T_EXPECT_OK(vdi_client_set_map_buffer_handle(s.client, h, &mapped));
    /* signal_abort / NT: OK, no change (get_configuration still OK) */
    T_EXPECT_OK(vdi_client_set_signal_abort(s.client));
    T_EXPECT_OK(vdi_client_set_get_configuration(s.client, 0, &cfg));
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev[0], 0, &c2), VD_E_CLOSE);
    /* close / NT: OK -> DNE */
    T_EXPECT_OK(vdi_server_set_close(s.server));
    T_EXPECT_OK(vdi_client_set_close(s.client));
    T_EXPECT_CODE(vdi_client_set_get_configuration(s.client, 0, &cfg), VD_E_PROTOCOL);
    vdi_server_set_free(s.server);
    vdi_client_set_free(s.client);
    s.server = NULL;
    s.client = NULL;
    t_ledger_destroy(&s.ledger);
}

static void case_abort(void) {
    t_set s;
    t_set_init(&s, "cab", 2);
    t_set_to_initializing(&s);
    T_REQUIRE(vdi_server_set_open_device(s.server, s.name, &s.sdev[0]) == NOERROR);
    T_REQUIRE(vdi_client_set_open_device(s.client, s.name, &s.cdev[0]) == NOERROR);
    T_REQUIRE(vdi_server_set_open_device(s.server, "d1", &s.sdev[1]) == NOERROR);
    t_set_start_agent(&s);
    t_cmd tc;
    uint8_t *sbuf = NULL;
    VDC_Command *c = deliver_write(&s, &tc, &sbuf);
    uint8_t *cbuf = c->buffer;
    T_REQUIRE(vdi_client_set_signal_abort(s.client) == NOERROR);

    VDConfig cfg;
    /* create / Abort, open_in_secondary / Abort: PROTOCOL */
    T_EXPECT_CODE(vdi_client_set_create(s.client, t_set_name("other"), &s.cfg), VD_E_PROTOCOL);
    T_EXPECT_CODE(vdi_client_set_open_in_secondary(s.client, s.name), VD_E_PROTOCOL);
    /* get_configuration / Abort: ABORT */
    T_EXPECT_CODE(vdi_client_set_get_configuration(s.client, 0, &cfg), VD_E_ABORT);
    /* open_device / Abort: ABORT */
    vdi_client_device *dev = NULL;
    T_EXPECT_CODE(vdi_client_set_open_device(s.client, "d1", &dev), VD_E_ABORT);
    T_EXPECT(dev == NULL);
    /* get_command / Abort: ABORT */
    VDC_Command *c2 = NULL;
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c2), VD_E_ABORT);
    /* complete_command / Abort: ABORT, and the server sees 995 for that command (5.3) */
    T_EXPECT_CODE(vdi_client_device_complete_command(s.cdev[0], c, ERROR_SUCCESS, 4096, 0),
                  VD_E_ABORT);
    T_EXPECT_CODE(t_set_join_agent(&s), VD_E_ABORT);
    T_EXPECT_EQ(t_cmd_snapshot(&tc).calls, 1);
    T_EXPECT_EQ(t_cmd_snapshot(&tc).code, ERROR_OPERATION_ABORTED);
    /* buffer handles / Abort: OK */
    uint32_t h = 0;
    T_EXPECT_OK(vdi_client_set_get_buffer_handle(s.client, cbuf, &h));
    uint8_t *mapped = NULL;
    T_EXPECT_OK(vdi_client_set_map_buffer_handle(s.client, h, &mapped));
    T_EXPECT(mapped == cbuf);
    /* signal_abort / Abort: OK (no change) */
    T_EXPECT_OK(vdi_client_set_signal_abort(s.client));
    T_EXPECT_CODE(vdi_client_set_get_configuration(s.client, 0, &cfg), VD_E_ABORT);
    /* close / Abort: OK -> DNE (5.2: NOERROR even with a device open) */
    T_EXPECT_OK(vdi_client_set_close(s.client));
    T_EXPECT_CODE(vdi_client_set_get_configuration(s.client, 0, &cfg), VD_E_PROTOCOL);
    T_EXPECT_OK(vdi_server_set_close(s.server));
    vdi_server_set_free(s.server);
    vdi_client_set_free(s.client);
    s.server = NULL;
    s.client = NULL;
    t_ledger_destroy(&s.ledger);
}

int main(int argc, char **argv) {
    static const t_case cases[] = {
        {"dne", case_dne},
        {"configurable", case_configurable},
        {"initializing", case_initializing},
        {"active", case_active},
        {"normterm", case_normterm},
        {"abort", case_abort},
    };
    int rc = t_run_cases(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
    return rc ? rc : t_done();
}
