/* Secondary client objects (VDI-SPEC 8.13, 5.2, 8.10): when open_in_secondary succeeds,
 * that a secondary follows the client table and can run devices of its own, that its
 * close never unlinks the name and aborts the set only when it returns VD_E_OPEN.
 * Secondaries are how multi-process backup tools spread streams over workers. */
#include "t_test.h"
#include "t_vdi.h"

/* 8.13: PROTOCOL before the primary finished get_configuration, for a name with no live
 * set, and on an object not in DNE; NOERROR afterwards. */
static void case_open(void) {
    t_set s;
    t_set_init(&s, "sopen", 2);
    vdi_client_set *sec = vdi_client_set_new();
    T_EXPECT_CODE(vdi_client_set_open_in_secondary(sec, s.name), VD_E_PROTOCOL); /* no set */
    T_EXPECT_CODE(vdi_client_set_open_in_secondary(sec, NULL), VD_E_INVALID);
    T_EXPECT_CODE(vdi_client_set_open_in_secondary(NULL, s.name), VD_E_INVALID);
    T_EXPECT_CODE(vdi_client_set_open_in_secondary(sec, ""), VD_E_INVALID);
    t_set_create(&s);
    T_EXPECT_CODE(vdi_client_set_open_in_secondary(sec, s.name), VD_E_PROTOCOL);
    t_set_server_open(&s);
    t_set_server_begin(&s);
    t_set_server_end(&s);
    /* the server is configured, the primary has not read it yet */
    T_EXPECT_CODE(vdi_client_set_open_in_secondary(sec, s.name), VD_E_PROTOCOL);
    t_set_client_config(&s);
    T_EXPECT_OK(vdi_client_set_open_in_secondary_ex(sec, NULL, s.name));
    /* not in DNE any more */
    T_EXPECT_CODE(vdi_client_set_open_in_secondary(sec, s.name), VD_E_PROTOCOL);
    T_EXPECT_CODE(vdi_client_set_create(sec, t_set_name("x"), &s.cfg), VD_E_PROTOCOL);
    /* Initializing: get_configuration OK with the negotiated values */
    VDConfig cfg;
    T_EXPECT_OK(vdi_client_set_get_configuration(sec, 0, &cfg));
    T_EXPECT_EQ(cfg.deviceCount, 2);
    T_EXPECT_EQ(cfg.blockSize, s.cfg.blockSize);
    T_EXPECT_EQ(cfg.maxIODepth, VDI_MAX_IO_DEPTH);
    /* a secondary close with no device: NOERROR and the set is not aborted */
    T_EXPECT_OK(vdi_client_set_close(sec));
    T_EXPECT_OK(vdi_client_set_get_configuration(s.client, 0, &cfg));
    T_EXPECT(t_shm_count(s.name) > 0); /* never unlinks */
    vdi_client_set_free(sec);
    t_set_teardown(&s);
}

/* A secondary runs a device of its own through a whole backup next to the primary; its
 * close never unlinks the name and does not disturb the primary. */
static void case_backup(void) {
    t_set s;
    t_set_init(&s, "sback", 2);
    t_set_to_initializing(&s);
    vdi_client_set *sec = vdi_client_set_new();
    T_REQUIRE(vdi_client_set_open_in_secondary(sec, s.name) == NOERROR);
    T_REQUIRE(vdi_server_set_open_device(s.server, s.name, &s.sdev[0]) == NOERROR);
    T_REQUIRE(vdi_server_set_open_device(s.server, "d1", &s.sdev[1]) == NOERROR);
    T_REQUIRE(vdi_client_set_open_device(s.client, s.name, &s.cdev[0]) == NOERROR);
    vdi_client_device *sd = NULL;
    T_REQUIRE(vdi_client_set_open_device(sec, "d1", &sd) == NOERROR);
    t_set_start_agent(&s);
    uint8_t *b = NULL;
    T_REQUIRE(vdi_server_set_allocate_buffer(s.server, &b, 4096, 0) == NOERROR);
    memset(b, 0x77, 4096);
    t_cmd tc;
    t_cmd_init(&tc, &s.ledger, VDC_Write, 4096, 0, b);
    T_REQUIRE(t_send(s.sdev[1], &tc) == NOERROR);
    VDC_Command *c = NULL;
    T_REQUIRE(vdi_client_device_get_command(sd, VDI_INFINITE, &c) == NOERROR);
    T_EXPECT_EQ(c->buffer[4095], 0x77);
    /* the secondary's handle maps in the primary to the primary's address of the bytes */
    uint32_t h = 0;
    T_EXPECT_OK(vdi_client_set_get_buffer_handle(sec, c->buffer, &h));
    uint8_t *mine = NULL;
    T_EXPECT_OK(vdi_client_set_map_buffer_handle(s.client, h, &mine));
    T_REQUIRE(mine != NULL);
    T_EXPECT_EQ(mine[0], 0x77);
    T_EXPECT_OK(vdi_client_device_complete_command(sd, c, ERROR_SUCCESS, 4096, 0));
    t_ledger_wait(&s.ledger, 1);
    T_EXPECT_EQ(t_cmd_snapshot(&tc).code, ERROR_SUCCESS);
    T_REQUIRE(vdi_server_device_close(s.sdev[0]) == NOERROR);
    T_REQUIRE(vdi_server_device_close(s.sdev[1]) == NOERROR);
    T_EXPECT_CODE(vdi_client_device_get_command(sd, VDI_INFINITE, &c), VD_E_CLOSE);
    T_EXPECT_OK(vdi_client_set_close(sec));
    T_EXPECT(t_shm_count(s.name) > 0);
    vdi_client_set_free(sec);
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c), VD_E_CLOSE);
    t_set_end(&s);
    T_EXPECT_EQ(t_shm_count(s.name), 0);
}

/* A secondary closing with an unfinished device: VD_E_OPEN and the set is aborted. */
static void case_close_open(void) {
    t_set s;
    t_set_init(&s, "sclo", 2);
    t_set_to_initializing(&s);
    vdi_client_set *sec = vdi_client_set_new();
    T_REQUIRE(vdi_client_set_open_in_secondary(sec, s.name) == NOERROR);
    vdi_client_device *sd = NULL;
    T_REQUIRE(vdi_client_set_open_device(sec, "d1", &sd) == NOERROR);
    T_EXPECT_CODE(vdi_client_set_close(sec), VD_E_OPEN);
    VDConfig cfg;
    T_EXPECT_CODE(vdi_client_set_get_configuration(s.client, 0, &cfg), VD_E_ABORT);
    T_EXPECT_CODE(vdi_server_set_get_configuration(s.server, &cfg), VD_E_ABORT);
    T_EXPECT(t_shm_count(s.name) > 0);
    /* a set that is aborted: open_in_secondary says ABORT */
    T_EXPECT_CODE(vdi_client_set_open_in_secondary(sec, s.name), VD_E_ABORT);
    vdi_client_set_free(sec);
    t_set_teardown(&s);
}

/* After the creator's close unlinked the name, open_in_secondary is PROTOCOL (8.4). */
static void case_after_unlink(void) {
    t_set s;
    t_set_init(&s, "sunl", 1);
    t_set_to_active(&s);
    T_REQUIRE(vdi_server_device_close(s.sdev[0]) == NOERROR);
    t_set_drain_client(&s);
    T_REQUIRE(vdi_client_set_close(s.client) == NOERROR);
    vdi_client_set *sec = vdi_client_set_new();
    T_EXPECT_CODE(vdi_client_set_open_in_secondary(sec, s.name), VD_E_PROTOCOL);
    vdi_client_set_free(sec);
    T_EXPECT_OK(t_set_join_agent(&s));
    t_set_teardown(&s);
}

int main(int argc, char **argv) {
    static const t_case cases[] = {
        {"open", case_open},
        {"backup", case_backup},
        {"close_open", case_close_open},
        {"after_unlink", case_after_unlink},
    };
    int rc = t_run_cases(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
    return rc ? rc : t_done();
}
