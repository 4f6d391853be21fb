/* Buffers (VDI-SPEC 4 "Buffers", 7): allocate_buffer's parameters and geometry (alignment,
 * prefix zones that nothing overlaps), what request_buffers and query_available_buffers
 * promise, free_buffer, is_shared_buffer, and buffer handles. The data of a backup lives
 * in these buffers; a geometry error is silent data corruption. */
#include "t_test.h"
#include "t_vdi.h"

static void to_active(t_set *s, const char *stem, uint32_t prefix) {
    t_set_init(s, stem, 1);
    s->cfg.prefixZoneSize = prefix;
    t_set_to_active(s);
}

/* allocate_buffer's parameter errors and MEMORY */
static void case_allocate_params(void) {
    t_set s;
    to_active(&s, "bparm", 0);
    uint8_t *b = (uint8_t *)&s;
    T_EXPECT_CODE(vdi_server_set_allocate_buffer(s.server, NULL, 4096, 0), VD_E_INVALID);
    T_EXPECT_CODE(vdi_server_set_allocate_buffer(NULL, &b, 4096, 0), VD_E_INVALID);
    T_EXPECT(b == NULL);
    T_EXPECT_CODE(vdi_server_set_allocate_buffer(s.server, &b, 0, 0), VD_E_INVALID);
    T_EXPECT_CODE(vdi_server_set_allocate_buffer(s.server, &b, (1u << 31) + 1u, 0), VD_E_INVALID);
    T_EXPECT_CODE(vdi_server_set_allocate_buffer(s.server, &b, 4096, 3), VD_E_INVALID);
    T_EXPECT_CODE(vdi_server_set_allocate_buffer(s.server, &b, 4096, 131072), VD_E_INVALID);
    T_EXPECT(b == NULL);
    /* 2^31 is a valid size, but more than the area can ever hold */
    T_EXPECT_CODE(vdi_server_set_allocate_buffer(s.server, &b, 1u << 31, 0), VD_E_MEMORY);
    T_EXPECT(b == NULL);
    /* alignment 65536 is honoured at both addresses */
    T_EXPECT_OK(vdi_server_set_allocate_buffer(s.server, &b, 4096, 65536));
    T_EXPECT_EQ((uintptr_t)b % 65536, 0);
    t_cmd tc;
    t_cmd_init(&tc, &s.ledger, VDC_Write, 4096, 0, b);
    T_REQUIRE(t_send(s.sdev[0], &tc) == NOERROR);
    VDC_Command *c = NULL;
    T_REQUIRE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c) == NOERROR);
    T_EXPECT_EQ((uintptr_t)c->buffer % 65536, 0);
    T_EXPECT_OK(vdi_client_device_complete_command(s.cdev[0], c, 0, 4096, 0));
    t_ledger_wait(&s.ledger, 1);
    t_set_finish(&s);
}

/* Every buffer requested can be allocated at once, in any order; then MEMORY. Prefix
 * zones: prefixZoneSize bytes below each data zone that no other buffer overlaps. */
static void case_requested_fit(void) {
    t_set s;
    t_set_init(&s, "bfit", 1);
    s.cfg.prefixZoneSize = 1024;
    s.buf_count = 0;
    t_set_create(&s);
    t_set_server_open(&s);
    t_set_server_begin(&s);
    T_REQUIRE(vdi_server_set_request_buffers(s.server, 65536, 0, 3) == NOERROR);
    T_REQUIRE(vdi_server_set_request_buffers(s.server, 4096, 8192, 4) == NOERROR);
    T_REQUIRE(vdi_server_set_request_buffers(s.server, 100, 0, 2) == NOERROR);
    T_REQUIRE(vdi_server_set_end_configuration(s.server) == NOERROR);
    enum { N = 9 };
    uint8_t *b[N];
    uint32_t size[N];
    /* smallest first, the reverse of the requests */
    for (int i = 0; i < 2; i++) {
        size[i] = 100;
        T_EXPECT_OK(vdi_server_set_allocate_buffer(s.server, &b[i], 100, 0));
    }
    for (int i = 2; i < 6; i++) {
        size[i] = 4096;
        T_EXPECT_OK(vdi_server_set_allocate_buffer(s.server, &b[i], 4096, 8192));
        T_EXPECT_EQ((uintptr_t)b[i] % 8192, 0);
    }
    for (int i = 6; i < 9; i++) {
        size[i] = 65536;
        T_EXPECT_OK(vdi_server_set_allocate_buffer(s.server, &b[i], 65536, 0));
    }
    /* [b - prefix, b + size) never overlap */
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            if (i == j)
                continue;
            uintptr_t lo_i = (uintptr_t)b[i] - 1024, hi_i = (uintptr_t)b[i] + size[i];
            uintptr_t lo_j = (uintptr_t)b[j] - 1024, hi_j = (uintptr_t)b[j] + size[j];
            T_EXPECT(hi_i <= lo_j || hi_j <= lo_i);
        }
    /* the buffers are writable over their whole length */
    for (int i = 0; i < N; i++)
        memset(b[i], i, size[i]);
    for (int i = 0; i < N; i++)
        T_EXPECT_EQ(b[i][size[i] - 1], i);
    t_set_teardown(&s);
}

/* query_available_buffers gives n: the next n allocations succeed, the one after is
 * MEMORY; after a free, the freed space is available again. */
static void case_query(void) {
    t_set s;
    t_set_init(&s, "bq", 1);
    t_set_to_initializing(&s);
    uint32_t n = 0;
    T_REQUIRE(vdi_server_set_query_available_buffers(s.server, 65536, 0, &n) == NOERROR);
    T_EXPECT(n >= 4);
    T_REQUIRE(n < 1000);
    uint8_t *b[1000];
    for (uint32_t i = 0; i < n; i++)
        T_EXPECT_OK(vdi_server_set_allocate_buffer(s.server, &b[i], 65536, 0));
    uint8_t *extra = NULL;
    T_EXPECT_CODE(vdi_server_set_allocate_buffer(s.server, &extra, 65536, 0), VD_E_MEMORY);
    uint32_t m = 9;
    T_EXPECT_OK(vdi_server_set_query_available_buffers(s.server, 65536, 0, &m));
    T_EXPECT_EQ(m, 0);
    T_EXPECT_OK(vdi_server_set_free_buffer(s.server, b[0], 65536));
    T_EXPECT_OK(vdi_server_set_query_available_buffers(s.server, 65536, 0, &m));
    T_EXPECT(m >= 1);
    T_EXPECT_OK(vdi_server_set_allocate_buffer(s.server, &b[0], 65536, 0));
    /* growing the area adds room without moving the live buffers (7) */
    memset(b[1], 0x5e, 65536);
    T_EXPECT_OK(vdi_server_set_request_buffers(s.server, 65536, 0, 2));
    T_EXPECT_OK(vdi_server_set_query_available_buffers(s.server, 65536, 0, &m));
    T_EXPECT(m >= 2);
    T_EXPECT_EQ(b[1][65535], 0x5e);
    T_EXPECT_EQ(vdi_server_set_is_shared_buffer(s.server, b[1]), 1);
    t_set_teardown(&s);
}

/* free_buffer needs the start of a live data zone and its size; is_shared_buffer is 1
 * exactly inside a live data zone and never an error code. */
static void case_free_and_shared(void) {
    t_set s;
    to_active(&s, "bfree", 0);
    uint8_t *b = NULL;
    T_REQUIRE(vdi_server_set_allocate_buffer(s.server, &b, 4096, 0) == NOERROR);
    uint8_t local = 0;
    T_EXPECT_EQ(vdi_server_set_is_shared_buffer(s.server, b), 1);
    T_EXPECT_EQ(vdi_server_set_is_shared_buffer(s.server, b + 2048), 1);
    T_EXPECT_EQ(vdi_server_set_is_shared_buffer(s.server, b + 4095), 1);
    T_EXPECT_EQ(vdi_server_set_is_shared_buffer(s.server, &local), 0);
    T_EXPECT_EQ(vdi_server_set_is_shared_buffer(s.server, NULL), 0);
    T_EXPECT_EQ(vdi_server_set_is_shared_buffer(NULL, b), 0);
    T_EXPECT_CODE(vdi_server_set_free_buffer(s.server, NULL, 4096), VD_E_INVALID);
    T_EXPECT_CODE(vdi_server_set_free_buffer(NULL, b, 4096), VD_E_INVALID);
    T_EXPECT_CODE(vdi_server_set_free_buffer(s.server, b, 4095), VD_E_INVALID);
    T_EXPECT_CODE(vdi_server_set_free_buffer(s.server, b, 8192), VD_E_INVALID);
    T_EXPECT_CODE(vdi_server_set_free_buffer(s.server, b + 512, 3584), VD_E_INVALID);
    T_EXPECT_CODE(vdi_server_set_free_buffer(s.server, &local, 1), VD_E_INVALID);
    T_EXPECT_EQ(vdi_server_set_is_shared_buffer(s.server, b), 1);
    /* freeing a buffer that is still in a command is allowed */
    t_cmd tc;
    t_cmd_init(&tc, &s.ledger, VDC_Write, 4096, 0, b);
    T_REQUIRE(t_send(s.sdev[0], &tc) == NOERROR);
    T_EXPECT_OK(vdi_server_set_free_buffer(s.server, b, 4096));
    T_EXPECT_EQ(vdi_server_set_is_shared_buffer(s.server, b), 0);
    T_EXPECT_EQ(vdi_server_set_is_shared_buffer(s.server, b + 100), 0);
    T_EXPECT_CODE(vdi_server_set_free_buffer(s.server, b, 4096), VD_E_INVALID);
    VDC_Command *c = NULL;
    T_REQUIRE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c) == NOERROR);
    T_EXPECT_OK(vdi_client_device_complete_command(s.cdev[0], c, 0, 4096, 0));
    t_ledger_wait(&s.ledger, 1);
    t_set_finish(&s);
}

/* Buffer handles: a data zone's start as the client sees it gives a handle; the same
 * object maps it to the same address; bad inputs are INVALID. */
static void case_handles(void) {
    t_set s;
    to_active(&s, "bhdl", 0);
    uint8_t *b1 = NULL, *b2 = NULL;
    T_REQUIRE(vdi_server_set_allocate_buffer(s.server, &b1, 8192, 0) == NOERROR);
    T_REQUIRE(vdi_server_set_allocate_buffer(s.server, &b2, 8192, 0) == NOERROR);
    memset(b1, 1, 8192);
    memset(b2, 2, 8192);
    t_cmd t1, t2;
    t_cmd_init(&t1, &s.ledger, VDC_Write, 8192, 0, b1);
    t_cmd_init(&t2, &s.ledger, VDC_Write, 8192, 0, b2);
    T_REQUIRE(t_send(s.sdev[0], &t1) == NOERROR);
    T_REQUIRE(t_send(s.sdev[0], &t2) == NOERROR);
    VDC_Command *c1 = NULL, *c2 = NULL;
    T_REQUIRE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c1) == NOERROR);
    T_REQUIRE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c2) == NOERROR);
    uint32_t h1 = 0, h2 = 0;
    T_EXPECT_OK(vdi_client_set_get_buffer_handle(s.client, c1->buffer, &h1));
    T_EXPECT_OK(vdi_client_set_get_buffer_handle(s.client, c2->buffer, &h2));
    T_EXPECT(h1 != h2);
    uint8_t *m = NULL;
    T_EXPECT_OK(vdi_client_set_map_buffer_handle(s.client, h2, &m));
    T_EXPECT(m == c2->buffer);
    T_EXPECT_EQ(m[8191], 2);
    T_EXPECT_OK(vdi_client_set_map_buffer_handle(s.client, h1, &m));
    T_EXPECT(m == c1->buffer);
    /* not the start of a data zone, not in the area, NULL */
    uint32_t h = 5;
    T_EXPECT_CODE(vdi_client_set_get_buffer_handle(s.client, c1->buffer + 512, &h), VD_E_INVALID);
    T_EXPECT_EQ(h, 0);
    uint8_t local = 0;
    T_EXPECT_CODE(vdi_client_set_get_buffer_handle(s.client, &local, &h), VD_E_INVALID);
    T_EXPECT_CODE(vdi_client_set_get_buffer_handle(s.client, NULL, &h), VD_E_INVALID);
    T_EXPECT_CODE(vdi_client_set_get_buffer_handle(s.client, c1->buffer, NULL), VD_E_INVALID);
    T_EXPECT_CODE(vdi_client_set_get_buffer_handle(NULL, c1->buffer, &h), VD_E_INVALID);
    /* the server's own address is not the client's (the two sides map the area twice
     * in one process, DESIGN.md): it is no data zone of the client */
    if (b1 != c1->buffer)
        T_EXPECT_CODE(vdi_client_set_get_buffer_handle(s.client, b1, &h), VD_E_INVALID);
    /* an unknown handle */
    m = &local;
    T_EXPECT_CODE(vdi_client_set_map_buffer_handle(s.client, 0xfffffff0u, &m), VD_E_INVALID);
    T_EXPECT(m == NULL);
    T_EXPECT_CODE(vdi_client_set_map_buffer_handle(s.client, h1, NULL), VD_E_INVALID);
    T_EXPECT_OK(vdi_client_device_complete_command(s.cdev[0], c1, 0, 8192, 0));
    T_EXPECT_OK(vdi_client_device_complete_command(s.cdev[0], c2, 0, 8192, 0));
    t_ledger_wait(&s.ledger, 2);
    t_set_finish(&s);
}

/* A handle names one buffer for its life (VDI-SPEC 4): once the server frees it, the handle
 * is INVALID even when a new buffer takes the freed buffer's place in the table and in the
 * area; the new buffer gets a handle of its own (found by fuzz_api: a stale handle mapped
 * to the new buffer's bytes). */
static void case_stale_handle(void) {
    t_set s;
    to_active(&s, "bstale", 0);
    uint8_t *b1 = NULL, *b2 = NULL;
    T_REQUIRE(vdi_server_set_allocate_buffer(s.server, &b1, 8192, 0) == NOERROR);
    t_cmd t1, t2;
    t_cmd_init(&t1, &s.ledger, VDC_Write, 8192, 0, b1);
    T_REQUIRE(t_send(s.sdev[0], &t1) == NOERROR);
    VDC_Command *c1 = NULL, *c2 = NULL;
    T_REQUIRE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c1) == NOERROR);
    uint8_t *seen1 = c1->buffer, *m = NULL;
    uint32_t h1 = 0, h2 = 0;
    T_EXPECT_OK(vdi_client_set_get_buffer_handle(s.client, seen1, &h1));
    T_EXPECT_OK(vdi_client_device_complete_command(s.cdev[0], c1, 0, 8192, 0));
    t_ledger_wait(&s.ledger, 1);
    T_EXPECT_OK(vdi_server_set_free_buffer(s.server, b1, 8192));
    T_EXPECT_CODE(vdi_client_set_map_buffer_handle(s.client, h1, &m), VD_E_INVALID);
    T_REQUIRE(vdi_server_set_allocate_buffer(s.server, &b2, 8192, 0) == NOERROR);
    T_EXPECT(b2 == b1); /* first fit: the freed place, which makes the test mean something */
    m = NULL;
    T_EXPECT_CODE(vdi_client_set_map_buffer_handle(s.client, h1, &m), VD_E_INVALID);
    T_EXPECT(m == NULL);
    t_cmd_init(&t2, &s.ledger, VDC_Write, 8192, 0, b2);
    T_REQUIRE(t_send(s.sdev[0], &t2) == NOERROR);
    T_REQUIRE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c2) == NOERROR);
    T_EXPECT_OK(vdi_client_set_get_buffer_handle(s.client, c2->buffer, &h2));
    T_EXPECT(h2 != h1);
    T_EXPECT_OK(vdi_client_set_map_buffer_handle(s.client, h2, &m));
    T_EXPECT(m == c2->buffer);
    T_EXPECT_OK(vdi_client_device_complete_command(s.cdev[0], c2, 0, 8192, 0));
    t_ledger_wait(&s.ledger, 2);
    t_set_finish(&s);
}

/* Nor does a handle of a set that was closed name a buffer of a set made after it, whose
 * buffer table starts afresh (found by fuzz_api once handles had generations per slot). */
static void case_handle_of_closed_set(void) {
    uint32_t old = 0;
    for (int round = 0; round < 2; round++) {
        t_set s;
        to_active(&s, "bgone", 0);
        uint8_t *b = NULL, *m = NULL;
        T_REQUIRE(vdi_server_set_allocate_buffer(s.server, &b, 8192, 0) == NOERROR);
        t_cmd t;
        t_cmd_init(&t, &s.ledger, VDC_Write, 8192, 0, b);
        T_REQUIRE(t_send(s.sdev[0], &t) == NOERROR);
        VDC_Command *c = NULL;
        T_REQUIRE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c) == NOERROR);
        if (round == 1) {
            T_EXPECT_CODE(vdi_client_set_map_buffer_handle(s.client, old, &m), VD_E_INVALID);
            T_EXPECT(m == NULL);
        }
        T_EXPECT_OK(vdi_client_set_get_buffer_handle(s.client, c->buffer, &old));
        T_EXPECT_OK(vdi_client_device_complete_command(s.cdev[0], c, 0, 8192, 0));
        t_ledger_wait(&s.ledger, 1);
        t_set_finish(&s);
    }
}

int main(int argc, char **argv) {
    static const t_case cases[] = {
        {"allocate_params", case_allocate_params},
        {"requested_fit", case_requested_fit},
        {"query", case_query},
        {"free_and_shared", case_free_and_shared},
        {"handles", case_handles},
        {"stale_handle", case_stale_handle},
        {"handle_of_closed_set", case_handle_of_closed_set},
    };
    int rc = t_run_cases(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
    return rc ? rc : t_done();
}
