/* Client close (VDI-SPEC 5.2): NOERROR after the normal end or an abort; before the end
 * it aborts the set for the server and says VD_E_OPEN when a device of this object is not
 * finished; a thread blocked in the object wakes with VD_E_ABORT; the creator's close
 * unlinks the name. A client that closes early must never leave the server hanging. */
#include "t_test.h"
#include "t_vdi.h"

/* Normally Terminated: NOERROR, aborts nothing, and the object may create again. */
static void case_normal(void) {
    t_set s;
    t_set_init(&s, "cnorm", 1);
    t_set_to_active(&s);
    T_REQUIRE(vdi_server_device_close(s.sdev[0]) == NOERROR);
    t_set_drain_client(&s);
    T_EXPECT_OK(vdi_client_set_close(s.client));
    /* the server still ends normally: nothing was aborted */
    T_EXPECT_OK(t_set_join_agent(&s));
    T_EXPECT_OK(vdi_server_set_close(s.server));
    VDConfig cfg;
    t_config_default(&cfg, 1);
    T_EXPECT_OK(vdi_client_set_create(s.client, t_set_name("again"), &cfg));
    T_EXPECT_OK(vdi_client_set_close(s.client));
    t_set_teardown(&s);
}

/* Configurable (no server yet): NOERROR; a server arriving later finds no set. */
static void case_configurable(void) {
    t_set s;
    t_set_init(&s, "ccfg", 1);
    t_set_create(&s);
    T_EXPECT_OK(vdi_client_set_close(s.client));
    T_EXPECT_CODE(vdi_server_set_open(s.server, NULL, s.name), VD_E_INVALID);
    t_set_teardown(&s);

    /* Configurable with the server Connected: NOERROR and the server is aborted */
    t_set_init(&s, "ccfg2", 1);
    t_set_create(&s);
    t_set_server_open(&s);
    T_EXPECT_OK(vdi_client_set_close(s.client));
    T_EXPECT_CODE(vdi_server_set_begin_configuration(s.server, VDF_WriteMedia, 512, 0, 65536, 0),
                  VD_E_ABORT);
    t_set_teardown(&s);
}

/* Initializing, no device: NOERROR, the server is aborted. */
static void case_initializing(void) {
    t_set s;
    t_set_init(&s, "cinit", 1);
    t_set_to_initializing(&s);
    T_EXPECT_OK(vdi_client_set_close(s.client));
    vdi_server_device *dev = NULL;
    T_EXPECT_CODE(vdi_server_set_open_device(s.server, s.name, &dev), VD_E_ABORT);
    t_set_teardown(&s);
}

/* Active, a device not finished: VD_E_OPEN, everything freed, the server is aborted
 * and its agent drains the outstanding commands with 995. */
static void case_open_device(void) {
    t_set s;
    t_set_init(&s, "copen", 1);
    t_set_to_active(&s);
    t_cmd a, b;
    t_cmd_init(&a, &s.ledger, VDC_Flush, 0, 0, NULL);
    t_cmd_init(&b, &s.ledger, VDC_Flush, 0, 1, NULL);
    T_REQUIRE(t_send(s.sdev[0], &a) == NOERROR);
    T_REQUIRE(t_send(s.sdev[0], &b) == NOERROR);
    VDC_Command *c = NULL;
    T_REQUIRE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c) == NOERROR);
    uint8_t *buf = NULL;
    T_REQUIRE(vdi_server_set_allocate_buffer(s.server, &buf, 4096, 0) == NOERROR);
    T_EXPECT_CODE(vdi_client_set_close(s.client), VD_E_OPEN);
    T_EXPECT_CODE(t_set_join_agent(&s), VD_E_ABORT);
    T_EXPECT_EQ(t_cmd_snapshot(&a).code, ERROR_OPERATION_ABORTED);
    T_EXPECT_EQ(t_cmd_snapshot(&b).code, ERROR_OPERATION_ABORTED);
    /* 5.3: the server's mapping stays valid until its own close */
    memset(buf, 0x11, 4096);
    T_EXPECT_EQ(buf[4095], 0x11);
    /* the object is DNE again */
    VDConfig cfg;
    T_EXPECT_CODE(vdi_client_set_get_configuration(s.client, 0, &cfg), VD_E_PROTOCOL);
    t_set_teardown(&s);
}

/* A device that returned VD_E_CLOSE but holds a delivered, uncompleted command is not
 * finished: VD_E_OPEN. */
static void case_held_command(void) {
    t_set s;
    t_set_init(&s, "cheld", 1);
    t_set_to_active(&s);
    t_cmd a;
    t_cmd_init(&a, &s.ledger, VDC_Flush, 0, 0, NULL);
    T_REQUIRE(t_send(s.sdev[0], &a) == NOERROR);
    T_REQUIRE(vdi_server_device_close(s.sdev[0]) == NOERROR);
    VDC_Command *c = NULL, *c2 = NULL;
    T_REQUIRE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c) == NOERROR);
    T_REQUIRE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c2) == VD_E_CLOSE);
    T_EXPECT_CODE(vdi_client_set_close(s.client), VD_E_OPEN);
    T_EXPECT_CODE(t_set_join_agent(&s), VD_E_ABORT);
    T_EXPECT_EQ(t_cmd_snapshot(&a).calls, 1);
    T_EXPECT_EQ(t_cmd_snapshot(&a).code, ERROR_OPERATION_ABORTED);
    t_set_teardown(&s);
}

/* Every device of this object finished, but the server has not closed them all: not
 * Normally Terminated, so NOERROR and an abort for the server. */
static void case_finished_devices(void) {
    t_set s;
    t_set_init(&s, "cfin", 2);
    t_set_to_initializing(&s);
    T_REQUIRE(vdi_server_set_open_device(s.server, s.name, &s.sdev[0]) == NOERROR);
    T_REQUIRE(vdi_server_set_open_device(s.server, "d1", &s.sdev[1]) == NOERROR);
    T_REQUIRE(vdi_client_set_open_device(s.client, s.name, &s.cdev[0]) == NOERROR);
    t_set_start_agent(&s);
    T_REQUIRE(vdi_server_device_close(s.sdev[0]) == NOERROR);
    VDC_Command *c = NULL;
    T_REQUIRE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c) == VD_E_CLOSE);
    T_EXPECT_OK(vdi_client_set_close(s.client));
    T_EXPECT_CODE(t_set_join_agent(&s), VD_E_ABORT);
    T_EXPECT_CODE(vdi_server_device_close(s.sdev[1]), VD_E_ABORT);
    t_set_teardown(&s);
}

/* A thread blocked in get_command when another thread closes the object wakes with
 * VD_E_ABORT and has left before close returns (5.0). */
typedef struct blocked {
    vdi_client_device *dev;
    int rc;
} blocked;

static void *get_forever(void *arg) {
    blocked *b = arg;
    VDC_Command *c = NULL;
    b->rc = vdi_client_device_get_command(b->dev, VDI_INFINITE, &c);
    return NULL;
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

static void case_blocked_thread(void) {
    /* a thread in get_configuration (Configurable, no server) */
    t_waitspy_install();
    t_set s0;
    t_set_init(&s0, "cblk0", 1);
    t_set_create(&s0);
    blocked_cfg bc = {s0.client, 0};
    pthread_t tc = t_spawn(config_forever, &bc);
    t_waitspy_until_blocked(tc);
    T_EXPECT_OK(vdi_client_set_close(s0.client));
    t_join(tc);
    T_EXPECT_CODE(bc.rc, VD_E_ABORT);
    t_set_teardown(&s0);

    t_set s;
    t_set_init(&s, "cblk", 1);
    t_set_to_active(&s);
    blocked b = {s.cdev[0], 0};
    pthread_t th = t_spawn(get_forever, &b);
    t_waitspy_until_blocked(th); /* a handle is invalid once close returned */
    /* OPEN: the device has not returned VD_E_CLOSE */
    T_EXPECT_CODE(vdi_client_set_close(s.client), VD_E_OPEN);
    t_join(th);
    T_EXPECT_CODE(b.rc, VD_E_ABORT);
    T_EXPECT_CODE(t_set_join_agent(&s), VD_E_ABORT);
    t_set_teardown(&s);
    t_waitspy_remove();
}

/* The creator's close unlinks the set's name (8.4): the shared object is gone from
 * /dev/shm, a new server open says INVALID, and the name can be created again while the
 * old server still holds its mapping. */
static void case_unlink(void) {
    t_set s;
    t_set_init(&s, "cunl", 1);
    t_set_to_active(&s);
    T_EXPECT(t_shm_count(s.name) > 0);
    T_REQUIRE(vdi_server_device_close(s.sdev[0]) == NOERROR);
    t_set_drain_client(&s);
    T_EXPECT_OK(vdi_client_set_close(s.client));
    T_EXPECT_EQ(t_shm_count(s.name), 0);
    vdi_server_set *sv2 = vdi_server_set_new();
    T_EXPECT_CODE(vdi_server_set_open(sv2, NULL, s.name), VD_E_INVALID);
    vdi_server_set_free(sv2);
    vdi_client_set *c2 = vdi_client_set_new();
    VDConfig fresh; /* s.cfg now holds server outputs (WriteMedia): not a create input */
    t_config_default(&fresh, 1);
    T_EXPECT_OK(vdi_client_set_create(c2, s.name, &fresh));
    T_EXPECT_OK(t_set_join_agent(&s));
    T_EXPECT_OK(vdi_server_set_close(s.server));
    T_EXPECT_OK(vdi_client_set_close(c2));
    vdi_client_set_free(c2);
    T_EXPECT_EQ(t_shm_count(s.name), 0);
    t_set_teardown(&s);
}

/* *_free on a still-open set closes it first (5.0): the server sees the abort. */
static void case_free_open(void) {
    t_set s;
    t_set_init(&s, "cfree", 1);
    t_set_to_active(&s);
    vdi_client_set_free(s.client);
    s.client = NULL;
    T_EXPECT_CODE(t_set_join_agent(&s), VD_E_ABORT);
    T_EXPECT_EQ(t_shm_count(s.name), 0);
    vdi_client_set_free(NULL); /* does nothing */
    vdi_server_set_free(NULL);
    t_set_teardown(&s);
    T_EXPECT_EQ(t_shm_count(s.name), 0);
}

int main(int argc, char **argv) {
    static const t_case cases[] = {
        {"normal", case_normal},
        {"configurable", case_configurable},
        {"initializing", case_initializing},
        {"open_device", case_open_device},
        {"held_command", case_held_command},
        {"finished_devices", case_finished_devices},
        {"blocked_thread", case_blocked_thread},
        {"unlink", case_unlink},
        {"free_open", case_free_open},
    };
    int rc = t_run_cases(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
    return rc ? rc : t_done();
}
