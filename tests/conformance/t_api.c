/* The API's general rules (VDI-SPEC 2, 2.1, 8.1): the pinned code values and their names
 * in vdi_strerror, NULL handles and NULL required pointers answered with VD_E_INVALID
 * before anything else, out-parameters cleared on failure, and *_free(NULL). These are
 * what every caller, the libsqlvdi layer included, relies on without reading the code. */
#include <limits.h>

#include "t_test.h"
#include "t_vdi.h"

static void case_codes(void) {
    /* 2.1: values are the 32-bit patterns of vdierror.h as negative int */
    T_EXPECT_EQ((uint32_t)VD_E_NOTOPEN, 0x80770002u);
    T_EXPECT_EQ((uint32_t)VD_E_TIMEOUT, 0x80770003u);
    T_EXPECT_EQ((uint32_t)VD_E_ABORT, 0x80770004u);
    T_EXPECT_EQ((uint32_t)VD_E_SECURITY, 0x80770005u);
    T_EXPECT_EQ((uint32_t)VD_E_INVALID, 0x80770006u);
    T_EXPECT_EQ((uint32_t)VD_E_INSTANCE_NAME, 0x80770007u);
    T_EXPECT_EQ((uint32_t)VD_E_NOTSUPPORTED, 0x80770009u);
    T_EXPECT_EQ((uint32_t)VD_E_MEMORY, 0x8077000au);
    T_EXPECT_EQ((uint32_t)VD_E_UNEXPECTED, 0x8077000bu);
    T_EXPECT_EQ((uint32_t)VD_E_PROTOCOL, 0x8077000cu);
    T_EXPECT_EQ((uint32_t)VD_E_OPEN, 0x8077000du);
    T_EXPECT_EQ((uint32_t)VD_E_CLOSE, 0x8077000eu);
    T_EXPECT_EQ((uint32_t)VD_E_BUSY, 0x8077000fu);
    T_EXPECT_EQ((uint32_t)VD_E_QUEUE_FULL, 0x80770010u);
    T_EXPECT_EQ((uint32_t)VD_E_IO_ERROR, 0x80770011u);
    T_EXPECT(VD_E_ABORT < 0);
    /* vdi_strerror: the symbolic name of each code, VD_E_UNKNOWN otherwise */
    static const struct {
        int code;
        const char *name;
    } names[] = {
        {NOERROR, "NOERROR"},
        {VD_E_NOTOPEN, "VD_E_NOTOPEN"},
        {VD_E_TIMEOUT, "VD_E_TIMEOUT"},
        {VD_E_ABORT, "VD_E_ABORT"},
        {VD_E_SECURITY, "VD_E_SECURITY"},
        {VD_E_INVALID, "VD_E_INVALID"},
        {VD_E_INSTANCE_NAME, "VD_E_INSTANCE_NAME"},
        {VD_E_NOTSUPPORTED, "VD_E_NOTSUPPORTED"},
        {VD_E_MEMORY, "VD_E_MEMORY"},
        {VD_E_UNEXPECTED, "VD_E_UNEXPECTED"},
        {VD_E_PROTOCOL, "VD_E_PROTOCOL"},
        {VD_E_OPEN, "VD_E_OPEN"},
        {VD_E_CLOSE, "VD_E_CLOSE"},
        {VD_E_BUSY, "VD_E_BUSY"},
        {VD_E_QUEUE_FULL, "VD_E_QUEUE_FULL"},
        {VD_E_IO_ERROR, "VD_E_IO_ERROR"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *got = vdi_strerror(names[i].code);
        T_REQUIRE(got != NULL);
        if (strcmp(got, names[i].name) != 0)
            fprintf(stderr, "vdi_strerror(0x%08x) = %s, want %s\n", (unsigned)names[i].code, got,
                    names[i].name);
        T_EXPECT(strcmp(got, names[i].name) == 0);
    }
    static const int unknown[] = {
        1, -1, (int)0x80770001u, (int)0x80770008u, (int)0x80770012u, (int)0x80000000u};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        T_EXPECT(strcmp(vdi_strerror(unknown[i]), "VD_E_UNKNOWN") == 0);
}

/* 8.1: NULL handles and NULL required pointers: INVALID, checked first. */
static void case_null(void) {
    VDConfig cfg;
    t_config_default(&cfg, 1);
    uint8_t *p = (uint8_t *)&cfg;
    uint32_t n = 3;
    vdi_client_device *cd = (vdi_client_device *)&cfg;
    vdi_server_device *sd = (vdi_server_device *)&cfg;
    VDC_Command *cmd = (VDC_Command *)&cfg;
    T_EXPECT_CODE(vdi_client_set_create_ex(NULL, NULL, "x", &cfg), VD_E_INVALID);
    T_EXPECT_CODE(vdi_client_set_get_configuration(NULL, 0, &cfg), VD_E_INVALID);
    T_EXPECT_CODE(vdi_client_set_open_device(NULL, "x", &cd), VD_E_INVALID);
    T_EXPECT(cd == NULL);
    T_EXPECT_CODE(vdi_client_set_close(NULL), VD_E_INVALID);
    T_EXPECT_CODE(vdi_client_set_signal_abort(NULL), VD_E_INVALID);
    T_EXPECT_CODE(vdi_client_set_open_in_secondary_ex(NULL, NULL, "x"), VD_E_INVALID);
    T_EXPECT_CODE(vdi_client_set_get_buffer_handle(NULL, p, &n), VD_E_INVALID);
    T_EXPECT_EQ(n, 0);
    T_EXPECT_CODE(vdi_client_set_map_buffer_handle(NULL, 1, &p), VD_E_INVALID);
    T_EXPECT(p == NULL);
    T_EXPECT_CODE(vdi_client_device_get_command(NULL, 0, &cmd), VD_E_INVALID);
    T_EXPECT(cmd == NULL);
    T_EXPECT_CODE(vdi_client_device_complete_command(NULL, cmd, 0, 0, 0), VD_E_INVALID);
    T_EXPECT_CODE(vdi_server_set_open(NULL, NULL, "x"), VD_E_INVALID);
    T_EXPECT_CODE(vdi_server_set_get_configuration(NULL, &cfg), VD_E_INVALID);
    T_EXPECT_CODE(vdi_server_set_begin_configuration(NULL, VDF_WriteMedia, 512, 0, 65536, 0),
                  VD_E_INVALID);
    T_EXPECT_CODE(vdi_server_set_request_buffers(NULL, 65536, 0, 1), VD_E_INVALID);
    n = 3;
    T_EXPECT_CODE(vdi_server_set_query_available_buffers(NULL, 65536, 0, &n), VD_E_INVALID);
    T_EXPECT_EQ(n, 0);
    T_EXPECT_CODE(vdi_server_set_end_configuration(NULL), VD_E_INVALID);
    T_EXPECT_CODE(vdi_server_set_execute_completion_agent(NULL), VD_E_INVALID);
    T_EXPECT_CODE(vdi_server_set_open_device(NULL, "x", &sd), VD_E_INVALID);
    T_EXPECT(sd == NULL);
    p = (uint8_t *)&cfg;
    T_EXPECT_CODE(vdi_server_set_allocate_buffer(NULL, &p, 4096, 0), VD_E_INVALID);
    T_EXPECT(p == NULL);
    T_EXPECT_CODE(vdi_server_set_free_buffer(NULL, (uint8_t *)&cfg, 4), VD_E_INVALID);
    T_EXPECT_EQ(vdi_server_set_is_shared_buffer(NULL, (uint8_t *)&cfg), 0);
    T_EXPECT_CODE(vdi_server_set_signal_abort(NULL), VD_E_INVALID);
    T_EXPECT_CODE(vdi_server_set_close(NULL), VD_E_INVALID);
    T_EXPECT_CODE(vdi_server_device_close(NULL), VD_E_INVALID);
    vdi_client_set_free(NULL);
    vdi_server_set_free(NULL);

    /* NULL before state: a DNE object with NULL pointers gives INVALID, not PROTOCOL */
    vdi_client_set *cl = vdi_client_set_new();
    vdi_server_set *sv = vdi_server_set_new();
    T_REQUIRE(cl && sv);
    T_EXPECT_CODE(vdi_client_set_get_configuration(cl, 0, NULL), VD_E_INVALID);
    T_EXPECT_CODE(vdi_client_set_open_device(cl, "x", NULL), VD_E_INVALID);
    T_EXPECT_CODE(vdi_client_set_get_buffer_handle(cl, NULL, &n), VD_E_INVALID);
    T_EXPECT_CODE(vdi_client_set_map_buffer_handle(cl, 1, NULL), VD_E_INVALID);
    T_EXPECT_CODE(vdi_server_set_get_configuration(sv, NULL), VD_E_INVALID);
    T_EXPECT_CODE(vdi_server_set_open(sv, NULL, NULL), VD_E_INVALID);
    T_EXPECT_CODE(vdi_server_set_open_device(sv, "x", NULL), VD_E_INVALID);
    T_EXPECT_CODE(vdi_server_set_allocate_buffer(sv, NULL, 4096, 0), VD_E_INVALID);
    T_EXPECT_CODE(vdi_server_set_query_available_buffers(sv, 65536, 0, NULL), VD_E_INVALID);
    /* a never-opened object is just freed */
    vdi_client_set_free(cl);
    vdi_server_set_free(sv);
}

/* 2: timeouts; a huge timeout never wraps into a negative one (it waits, it does not
 * return at once): a poll with a huge timeout on a set that then gets configured. */
typedef struct cfg_wait {
    vdi_client_set *cl;
    int rc;
} cfg_wait;

static void *wait_huge(void *arg) {
    cfg_wait *w = arg;
    VDConfig cfg;
    w->rc = vdi_client_set_get_configuration(w->cl, LONG_MAX, &cfg);
    return NULL;
}

static void case_timeouts(void) {
    t_set s;
    t_set_init(&s, "tmo", 1);
    t_set_create(&s);
    VDConfig cfg;
    T_EXPECT_CODE(vdi_client_set_get_configuration(s.client, 0, &cfg), VD_E_TIMEOUT);
    T_EXPECT_CODE(vdi_client_set_get_configuration(s.client, 1, &cfg), VD_E_TIMEOUT);
    cfg_wait w = {s.client, 1};
    pthread_t th = t_spawn(wait_huge, &w);
    t_set_server_open(&s);
    t_set_server_begin(&s);
    t_set_server_end(&s);
    t_join(th);
    T_EXPECT_OK(w.rc);
    t_set_open_devices(&s);
    t_set_start_agent(&s);
    VDC_Command *c = (VDC_Command *)&cfg;
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev[0], 0, &c), VD_E_TIMEOUT);
    T_EXPECT(c == NULL);
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev[0], 5, &c), VD_E_TIMEOUT);
    t_set_finish(&s);
}

int main(int argc, char **argv) {
    static const t_case cases[] = {
        {"codes", case_codes},
        {"null", case_null},
        {"timeouts", case_timeouts},
    };
    int rc = t_run_cases(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
    return rc ? rc : t_done();
}
