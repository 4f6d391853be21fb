/* Every cell of the server state table (VDI-SPEC 3), one case per column: each call is
 * made with the server object in exactly that state. The server table is what a chaos
 * server and the executable model are checked against, so every cell must be pinned. */
#include "t_test.h"
#include "t_vdi.h"

static pthread_t sync_thread;

static void record_thread(VDS_Command *cmd) {
    t_cmd *tc = cmd->completionContext;
    tc->calls++;
    tc->code = cmd->completionCode;
    tc->thread = pthread_self();
}

/* send_command whose callback must run synchronously on this thread (4, "A rejected
 * send calls the routine itself, on the calling thread, before returning"). */
static void expect_sync_reject(vdi_server_device *dev, int want_rc, uint32_t want_code) {
    t_cmd tc;
    memset(&tc, 0, sizeof tc);
    tc.cmd.commandCode = VDC_Flush;
    tc.cmd.completionRoutine = record_thread;
    tc.cmd.completionContext = &tc;
    sync_thread = pthread_self();
    T_EXPECT_CODE(vdi_server_device_send_command(dev, &tc.cmd), want_rc);
    T_EXPECT_EQ(tc.calls, 1);
    T_EXPECT_EQ(tc.code, want_code);
    T_EXPECT(tc.calls == 1 && pthread_equal(tc.thread, sync_thread));
}

/* Calls of the configuration and buffer rows, expected to give one code. */
static void expect_config_calls(vdi_server_set *sv, int begin, int reqq, int end) {
    uint32_t n = 99;
    T_EXPECT_CODE(vdi_server_set_begin_configuration(sv, VDF_WriteMedia, 512, 0, 65536, 0), begin);
    T_EXPECT_CODE(vdi_server_set_request_buffers(sv, 65536, 0, 1), reqq);
    T_EXPECT_CODE(vdi_server_set_query_available_buffers(sv, 65536, 0, &n), reqq);
    if (reqq != NOERROR)
        T_EXPECT_EQ(n, 0); /* 2: a failed call zeroes its numeric out-parameter */
    T_EXPECT_CODE(vdi_server_set_end_configuration(sv), end);
}

static void case_dne(void) {
    vdi_server_set *sv = vdi_server_set_new();
    T_REQUIRE(sv != NULL);
    VDConfig cfg;
    /* server table, DNE column: everything but open is PROTOCOL */
    T_EXPECT_CODE(vdi_server_set_get_configuration(sv, &cfg), VD_E_PROTOCOL);
    expect_config_calls(sv, VD_E_PROTOCOL, VD_E_PROTOCOL, VD_E_PROTOCOL);
    T_EXPECT_CODE(vdi_server_set_execute_completion_agent(sv), VD_E_PROTOCOL);
    vdi_server_device *dev = (vdi_server_device *)&cfg;
    T_EXPECT_CODE(vdi_server_set_open_device(sv, "x", &dev), VD_E_PROTOCOL);
    T_EXPECT(dev == NULL);
    uint8_t *buf = (uint8_t *)&cfg;
    T_EXPECT_CODE(vdi_server_set_allocate_buffer(sv, &buf, 4096, 0), VD_E_PROTOCOL);
    T_EXPECT(buf == NULL);
    uint8_t byte;
    T_EXPECT_CODE(vdi_server_set_free_buffer(sv, &byte, 1), VD_E_PROTOCOL);
    T_EXPECT_CODE(vdi_server_set_signal_abort(sv), VD_E_PROTOCOL);
    /* close / DNE: PROTOCOL (5.1.6: on a set never opened) */
    T_EXPECT_CODE(vdi_server_set_close(sv), VD_E_PROTOCOL);
    /* open / DNE: OK -> Connected (a second open on the object is PROTOCOL) */
    vdi_client_set *cl = vdi_client_set_new();
    VDConfig cc;
    t_config_default(&cc, 1);
    const char *name = t_set_name("sdne");
    T_REQUIRE(vdi_client_set_create(cl, name, &cc) == NOERROR);
    T_EXPECT_OK(vdi_server_set_open(sv, NULL, name));
    T_EXPECT_OK(vdi_server_set_get_configuration(sv, &cfg));
    T_EXPECT_CODE(vdi_server_set_open(sv, NULL, name), VD_E_PROTOCOL);
    (void)vdi_server_set_close(sv);
    (void)vdi_client_set_close(cl);
    vdi_client_set_free(cl);
    vdi_server_set_free(sv);
}

static void case_connected(void) {
    t_set s;
    t_set_init(&s, "scon", 1);
    t_set_create(&s);
    t_set_server_open(&s);
    VDConfig cfg;
    /* open / Connected: PROTOCOL */
    T_EXPECT_CODE(vdi_server_set_open(s.server, NULL, s.name), VD_E_PROTOCOL);
    /* get_configuration / Connected: OK */
    T_EXPECT_OK(vdi_server_set_get_configuration(s.server, &cfg));
    T_EXPECT_EQ(cfg.deviceCount, 1);
    /* request/query, end_configuration, agent, open_device, buffers / Connected: PROTOCOL */
    uint32_t n = 5;
    T_EXPECT_CODE(vdi_server_set_request_buffers(s.server, 65536, 0, 1), VD_E_PROTOCOL);
    T_EXPECT_CODE(vdi_server_set_query_available_buffers(s.server, 65536, 0, &n), VD_E_PROTOCOL);
    T_EXPECT_CODE(vdi_server_set_end_configuration(s.server), VD_E_PROTOCOL);
    T_EXPECT_CODE(vdi_server_set_execute_completion_agent(s.server), VD_E_PROTOCOL);
    vdi_server_device *dev = NULL;
    T_EXPECT_CODE(vdi_server_set_open_device(s.server, s.name, &dev), VD_E_PROTOCOL);
    uint8_t *buf = NULL;
    T_EXPECT_CODE(vdi_server_set_allocate_buffer(s.server, &buf, 4096, 0), VD_E_PROTOCOL);
    uint8_t byte;
    T_EXPECT_CODE(vdi_server_set_free_buffer(s.server, &byte, 1), VD_E_PROTOCOL);
    /* begin_configuration / Connected: OK -> Configurable (then PROTOCOL) */
    T_EXPECT_OK(vdi_server_set_begin_configuration(s.server, VDF_WriteMedia, 512, 0, 65536, 0));
    T_EXPECT_CODE(vdi_server_set_begin_configuration(s.server, VDF_WriteMedia, 512, 0, 65536, 0),
                  VD_E_PROTOCOL);
    t_set_teardown(&s);

    /* signal_abort / Connected: OK -> Abort */
    t_set_init(&s, "scon-abort", 1);
    t_set_create(&s);
    t_set_server_open(&s);
    T_EXPECT_OK(vdi_server_set_signal_abort(s.server));
    T_EXPECT_CODE(vdi_server_set_get_configuration(s.server, &cfg), VD_E_ABORT);
    T_EXPECT_CODE(vdi_client_set_get_configuration(s.client, 0, &cfg), VD_E_ABORT);
    t_set_teardown(&s);
}

static void case_configurable(void) {
    t_set s;
    t_set_init(&s, "scfg", 1);
    t_set_create(&s);
    t_set_server_open(&s);
    t_set_server_begin(&s);
    VDConfig cfg;
    /* open, begin_configuration / Configurable: PROTOCOL; get_configuration OK */
    T_EXPECT_CODE(vdi_server_set_open(s.server, NULL, s.name), VD_E_PROTOCOL);
    T_EXPECT_OK(vdi_server_set_get_configuration(s.server, &cfg));
    T_EXPECT_CODE(vdi_server_set_begin_configuration(s.server, VDF_WriteMedia, 512, 0, 65536, 0),
                  VD_E_PROTOCOL);
    /* request_buffers / query_available_buffers / Configurable: OK (summed) */
    T_EXPECT_OK(vdi_server_set_request_buffers(s.server, 65536, 0, 2));
    uint32_t n = 0;
    T_EXPECT_OK(vdi_server_set_query_available_buffers(s.server, 65536, 0, &n));
    T_EXPECT(n >= 2);
    /* agent, open_device, allocate/free / Configurable: PROTOCOL */
    T_EXPECT_CODE(vdi_server_set_execute_completion_agent(s.server), VD_E_PROTOCOL);
    vdi_server_device *dev = NULL;
    T_EXPECT_CODE(vdi_server_set_open_device(s.server, s.name, &dev), VD_E_PROTOCOL);
    uint8_t *buf = NULL;
    T_EXPECT_CODE(vdi_server_set_allocate_buffer(s.server, &buf, 4096, 0), VD_E_PROTOCOL);
    uint8_t byte;
    T_EXPECT_CODE(vdi_server_set_free_buffer(s.server, &byte, 1), VD_E_PROTOCOL);
    /* end_configuration / Configurable: OK -> Initializing (then PROTOCOL) */
    T_EXPECT_OK(vdi_server_set_end_configuration(s.server));
    T_EXPECT_CODE(vdi_server_set_end_configuration(s.server), VD_E_PROTOCOL);
    t_set_teardown(&s);

    /* signal_abort / Configurable: OK -> Abort */
    t_set_init(&s, "scfg-abort", 1);
    t_set_create(&s);
    t_set_server_open(&s);
    t_set_server_begin(&s);
    T_EXPECT_OK(vdi_server_set_signal_abort(s.server));
    T_EXPECT_CODE(vdi_server_set_end_configuration(s.server), VD_E_ABORT);
    t_set_teardown(&s);
}

static void case_initializing(void) {
    t_set s;
    t_set_init(&s, "sinit", 1);
    t_set_create(&s);
    t_set_server_open(&s);
    t_set_server_begin(&s);
    t_set_server_end(&s);
    VDConfig cfg;
    /* open, begin, end / Initializing: PROTOCOL; get_configuration OK */
    T_EXPECT_CODE(vdi_server_set_open(s.server, NULL, s.name), VD_E_PROTOCOL);
    T_EXPECT_OK(vdi_server_set_get_configuration(s.server, &cfg));
    uint32_t area0 = cfg.bufferAreaSize;
    T_EXPECT_CODE(vdi_server_set_begin_configuration(s.server, VDF_WriteMedia, 512, 0, 65536, 0),
                  VD_E_PROTOCOL);
    T_EXPECT_CODE(vdi_server_set_end_configuration(s.server), VD_E_PROTOCOL);
    /* request_buffers / Initializing: OK and the area grows now */
    T_EXPECT_OK(vdi_server_set_request_buffers(s.server, 65536, 0, 2));
    T_EXPECT_OK(vdi_server_set_get_configuration(s.server, &cfg));
    T_EXPECT(cfg.bufferAreaSize >= area0 + 2u * 65536u);
    uint32_t n = 0;
    T_EXPECT_OK(vdi_server_set_query_available_buffers(s.server, 65536, 0, &n));
    T_EXPECT(n >= 6);
    /* allocate_buffer / free_buffer / Initializing: OK */
    uint8_t *buf = NULL;
    T_EXPECT_OK(vdi_server_set_allocate_buffer(s.server, &buf, 4096, 0));
    T_EXPECT_OK(vdi_server_set_free_buffer(s.server, buf, 4096));
    /* execute_completion_agent / Initializing: runs (-> Active); open_device OK */
    t_set_client_config(&s);
    t_set_start_agent(&s);
    T_EXPECT_OK(vdi_server_set_open_device(s.server, s.name, &s.sdev[0]));
    T_REQUIRE(s.sdev[0] != NULL);
    t_wait_agent_running(s.sdev[0]);
    /* the agent returns NOERROR at Normally Terminated (device opened and closed) */
    T_EXPECT_OK(vdi_server_device_close(s.sdev[0]));
    T_EXPECT_OK(t_set_join_agent(&s));
    t_set_teardown(&s);

    /* open_device / Initializing: OK -> Active, without an agent; send_command then
     * says no agent is running (row 4) */
    t_set_init(&s, "sinit2", 1);
    t_set_to_initializing(&s);
    T_EXPECT_OK(vdi_server_set_open_device(s.server, s.name, &s.sdev[0]));
    expect_sync_reject(s.sdev[0], VD_E_PROTOCOL, ERROR_INVALID_HANDLE);
    /* signal_abort / Initializing: OK -> Abort */
    T_EXPECT_OK(vdi_server_set_signal_abort(s.server));
    T_EXPECT_CODE(vdi_server_set_get_configuration(s.server, &cfg), VD_E_ABORT);
    t_set_teardown(&s);
}

static void case_active(void) {
    t_set s;
    t_set_init(&s, "sact", 2);
    t_set_to_initializing(&s);
    T_REQUIRE(vdi_server_set_open_device(s.server, s.name, &s.sdev[0]) == NOERROR);
    t_set_start_agent(&s);
    VDConfig cfg;
    /* open, begin, end / Active: PROTOCOL; get_configuration OK */
    T_EXPECT_CODE(vdi_server_set_open(s.server, NULL, s.name), VD_E_PROTOCOL);
    T_EXPECT_OK(vdi_server_set_get_configuration(s.server, &cfg));
    uint32_t area0 = cfg.bufferAreaSize;
    T_EXPECT_CODE(vdi_server_set_begin_configuration(s.server, VDF_WriteMedia, 512, 0, 65536, 0),
                  VD_E_PROTOCOL);
    T_EXPECT_CODE(vdi_server_set_end_configuration(s.server), VD_E_PROTOCOL);
    /* request_buffers / Active: OK, grows now (the client sees the new size too) */
    T_EXPECT_OK(vdi_server_set_request_buffers(s.server, 65536, 0, 1));
    T_EXPECT_OK(vdi_server_set_get_configuration(s.server, &cfg));
    T_EXPECT(cfg.bufferAreaSize >= area0 + 65536u);
    uint32_t n = 0;
    T_EXPECT_OK(vdi_server_set_query_available_buffers(s.server, 65536, 0, &n));
    T_EXPECT(n >= 1);
    /* execute_completion_agent / Active while one runs: PROTOCOL (4, the agent) */
    T_EXPECT_CODE(vdi_server_set_execute_completion_agent(s.server), VD_E_PROTOCOL);
    /* open_device / Active: OK for another device */
    T_EXPECT_OK(vdi_server_set_open_device(s.server, "d1", &s.sdev[1]));
    /* allocate_buffer / free_buffer / Active: OK */
    uint8_t *buf = NULL;
    T_EXPECT_OK(vdi_server_set_allocate_buffer(s.server, &buf, 4096, 0));
    T_EXPECT_OK(vdi_server_set_free_buffer(s.server, buf, 4096));
    /* close_device / Active (4): a second close of the same device is CLOSE */
    T_EXPECT_OK(vdi_server_device_close(s.sdev[1]));
    T_EXPECT_CODE(vdi_server_device_close(s.sdev[1]), VD_E_CLOSE);
    T_EXPECT_EQ(atomic_load(&s.agent_done), 0); /* device 0 is still open */
    /* signal_abort / Active: OK -> Abort; the agent returns ABORT */
    T_EXPECT_OK(vdi_server_set_signal_abort(s.server));
    T_EXPECT_CODE(t_set_join_agent(&s), VD_E_ABORT);
    t_set_teardown(&s);
}

static void case_normterm(void) {
    t_set s;
    t_set_init(&s, "snt", 1);
    t_set_to_active(&s);
    uint8_t *buf = NULL;
    T_REQUIRE(vdi_server_set_allocate_buffer(s.server, &buf, 4096, 0) == NOERROR);
    T_REQUIRE(vdi_server_device_close(s.sdev[0]) == NOERROR);
    T_EXPECT_OK(t_set_join_agent(&s));
    VDConfig cfg;
    /* open, begin, request/query, end / NT: PROTOCOL; get_configuration OK */
    T_EXPECT_CODE(vdi_server_set_open(s.server, NULL, s.name), VD_E_PROTOCOL);
    T_EXPECT_OK(vdi_server_set_get_configuration(s.server, &cfg));
    expect_config_calls(s.server, VD_E_PROTOCOL, VD_E_PROTOCOL, VD_E_PROTOCOL);
    /* execute_completion_agent / NT: returns NOERROR at once */
    T_EXPECT_OK(vdi_server_set_execute_completion_agent(s.server));
    /* open_device / NT: OPEN */
    vdi_server_device *dev = NULL;
    T_EXPECT_CODE(vdi_server_set_open_device(s.server, s.name, &dev), VD_E_OPEN);
    T_EXPECT(dev == NULL);
    /* allocate_buffer / free_buffer / NT: OK */
    uint8_t *buf2 = NULL;
    T_EXPECT_OK(vdi_server_set_allocate_buffer(s.server, &buf2, 4096, 0));
    T_EXPECT_OK(vdi_server_set_free_buffer(s.server, buf2, 4096));
    T_EXPECT_OK(vdi_server_set_free_buffer(s.server, buf, 4096));
    /* send_command / NT: PROTOCOL with callback 6, synchronously */
    expect_sync_reject(s.sdev[0], VD_E_PROTOCOL, ERROR_INVALID_HANDLE);
    /* close_device / NT: CLOSE */
    T_EXPECT_CODE(vdi_server_device_close(s.sdev[0]), VD_E_CLOSE);
    /* signal_abort / NT: OK, no change (the agent still returns NOERROR at once, the
     * client still ends normally) */
    T_EXPECT_OK(vdi_server_set_signal_abort(s.server));
    T_EXPECT_OK(vdi_server_set_execute_completion_agent(s.server));
    T_EXPECT_OK(vdi_server_set_get_configuration(s.server, &cfg));
    VDC_Command *c = NULL;
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev[0], 0, &c), VD_E_CLOSE);
    /* close / NT: OK -> DNE (then PROTOCOL, 5.1.6) */
    T_EXPECT_OK(vdi_server_set_close(s.server));
    T_EXPECT_CODE(vdi_server_set_close(s.server), VD_E_PROTOCOL);
    T_EXPECT_CODE(vdi_server_set_get_configuration(s.server, &cfg), VD_E_PROTOCOL);
    T_EXPECT_OK(vdi_client_set_close(s.client));
    vdi_server_set_free(s.server);
    vdi_client_set_free(s.client);
    s.server = NULL;
    s.client = NULL;
    t_ledger_destroy(&s.ledger);
}

static void case_abort(void) {
    VDConfig cfg;
    uint8_t *buf = NULL;
    /* Abort entered from Connected: begin_configuration ABORT (choice, 6.6) etc. */
    t_set s;
    t_set_init(&s, "sab1", 1);
    t_set_create(&s);
    t_set_server_open(&s);
    T_REQUIRE(vdi_server_set_signal_abort(s.server) == NOERROR);
    T_EXPECT_CODE(vdi_server_set_open(s.server, NULL, s.name), VD_E_PROTOCOL);
    T_EXPECT_CODE(vdi_server_set_get_configuration(s.server, &cfg), VD_E_ABORT);
    expect_config_calls(s.server, VD_E_ABORT, VD_E_ABORT, VD_E_ABORT);
    /* execute_completion_agent / Abort: drains (nothing) and returns ABORT */
    T_EXPECT_CODE(vdi_server_set_execute_completion_agent(s.server), VD_E_ABORT);
    vdi_server_device *dev = NULL;
    T_EXPECT_CODE(vdi_server_set_open_device(s.server, s.name, &dev), VD_E_ABORT);
    T_EXPECT_CODE(vdi_server_set_allocate_buffer(s.server, &buf, 4096, 0), VD_E_ABORT);
    T_EXPECT_OK(vdi_server_set_signal_abort(s.server));
    /* close / Abort: OK -> DNE */
    T_EXPECT_OK(vdi_server_set_close(s.server));
    T_EXPECT_CODE(vdi_server_set_get_configuration(s.server, &cfg), VD_E_PROTOCOL);
    t_set_teardown(&s);

    /* Abort entered from Configurable: request/query/end_configuration ABORT */
    t_set_init(&s, "sab2", 1);
    t_set_create(&s);
    t_set_server_open(&s);
    t_set_server_begin(&s);
    T_REQUIRE(vdi_client_set_signal_abort(s.client) == NOERROR);
    expect_config_calls(s.server, VD_E_ABORT, VD_E_ABORT, VD_E_ABORT);
    T_EXPECT_OK(vdi_server_set_close(s.server));
    t_set_teardown(&s);

    /* Abort entered from Active, agent running */
    t_set_init(&s, "sab3", 2);
    t_set_to_initializing(&s);
    T_REQUIRE(vdi_server_set_open_device(s.server, s.name, &s.sdev[0]) == NOERROR);
    T_REQUIRE(vdi_client_set_open_device(s.client, s.name, &s.cdev[0]) == NOERROR);
    t_set_start_agent(&s);
    T_REQUIRE(vdi_server_set_allocate_buffer(s.server, &buf, 4096, 0) == NOERROR);
    T_REQUIRE(vdi_server_set_signal_abort(s.server) == NOERROR);
    T_EXPECT_CODE(vdi_server_set_get_configuration(s.server, &cfg), VD_E_ABORT);
    T_EXPECT_CODE(vdi_server_set_request_buffers(s.server, 65536, 0, 1), VD_E_ABORT);
    T_EXPECT_CODE(vdi_server_set_open_device(s.server, "d1", &dev), VD_E_ABORT);
    uint8_t *buf2 = NULL;
    T_EXPECT_CODE(vdi_server_set_allocate_buffer(s.server, &buf2, 4096, 0), VD_E_ABORT);
    T_EXPECT_CODE(vdi_server_set_free_buffer(s.server, buf, 4096), VD_E_ABORT);
    /* send_command / Abort: ABORT with callback 995, synchronously */
    expect_sync_reject(s.sdev[0], VD_E_ABORT, ERROR_OPERATION_ABORTED);
    /* close_device / Abort: ABORT */
    T_EXPECT_CODE(vdi_server_device_close(s.sdev[0]), VD_E_ABORT);
    /* signal_abort / Abort: OK */
    T_EXPECT_OK(vdi_server_set_signal_abort(s.server));
    T_EXPECT_CODE(t_set_join_agent(&s), VD_E_ABORT);
    /* a second agent after the drain also returns ABORT */
    T_EXPECT_CODE(vdi_server_set_execute_completion_agent(s.server), VD_E_ABORT);
    T_EXPECT_OK(vdi_server_set_close(s.server));
    t_set_teardown(&s);
}

int main(int argc, char **argv) {
    static const t_case cases[] = {
        {"dne", case_dne},
        {"connected", case_connected},
        {"configurable", case_configurable},
        {"initializing", case_initializing},
        {"active", case_active},
        {"normterm", case_normterm},
        {"abort", case_abort},
    };
    int rc = t_run_cases(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
    return rc ? rc : t_done();
}
