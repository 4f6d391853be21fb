/* Configuration (VDI-SPEC 2.3, 8.5 to 8.9): what create and begin_configuration accept,
 * the VDConfig each side reads back, the set alignment, and how request_buffers sums
 * during configuration and grows the area after it. A wrong negotiation is a backup
 * that SQL Server refuses or, worse, misaligns. */
#include <limits.h>

#include "t_test.h"
#include "t_vdi.h"

static int try_create(const VDConfig *cfg) {
    vdi_client_set *c = vdi_client_set_new();
    VDConfig copy = *cfg;
    int rc = vdi_client_set_create(c, t_set_name("cfg"), &copy);
    (void)vdi_client_set_close(c);
    vdi_client_set_free(c);
    return rc;
}

/* 8.6: create rejects with NOTSUPPORTED; fields 7-10 are ignored; the limits pass. */
static void case_create(void) {
    VDConfig cfg;
    t_config_default(&cfg, 1);
    T_EXPECT_OK(try_create(&cfg));
    cfg.deviceCount = 0;
    T_EXPECT_CODE(try_create(&cfg), VD_E_NOTSUPPORTED);
    cfg.deviceCount = 65;
    T_EXPECT_CODE(try_create(&cfg), VD_E_NOTSUPPORTED);
    cfg.deviceCount = 64;
    T_EXPECT_OK(try_create(&cfg));
    t_config_default(&cfg, 1);
    static const uint32_t bad_features[] = {
        0x4u, 0x8u, 0x4000u, VDF_WriteMedia, VDF_ReadMedia, VDF_CompleteEnabled, 0x100000u};
    for (size_t i = 0; i < sizeof bad_features / sizeof bad_features[0]; i++) {
        cfg.features = bad_features[i];
        T_EXPECT_CODE(try_create(&cfg), VD_E_NOTSUPPORTED);
    }
    cfg.features = VDF_ClientRequestable;
    T_EXPECT_OK(try_create(&cfg));
    t_config_default(&cfg, 1);
    static const uint32_t bad_align[] = {3, 48, 131072, 0x80000000u};
    for (size_t i = 0; i < sizeof bad_align / sizeof bad_align[0]; i++) {
        cfg.alignment = bad_align[i];
        T_EXPECT_CODE(try_create(&cfg), VD_E_NOTSUPPORTED);
    }
    cfg.alignment = 1;
    T_EXPECT_OK(try_create(&cfg));
    cfg.alignment = 65536;
    T_EXPECT_OK(try_create(&cfg));
    t_config_default(&cfg, 1);
    cfg.prefixZoneSize = 65537;
    T_EXPECT_CODE(try_create(&cfg), VD_E_NOTSUPPORTED);
    cfg.prefixZoneSize = 65536;
    T_EXPECT_OK(try_create(&cfg));
    /* fields 7-10 are server outputs: garbage there is ignored */
    t_config_default(&cfg, 1);
    cfg.blockSize = 3;
    cfg.maxIODepth = 999;
    cfg.maxTransferSize = 1;
    cfg.bufferAreaSize = UINT32_MAX;
    T_EXPECT_OK(try_create(&cfg));
    /* NULL arguments (8.1) */
    vdi_client_set *c = vdi_client_set_new();
    T_EXPECT_CODE(vdi_client_set_create(c, t_set_name("n"), NULL), VD_E_INVALID);
    T_EXPECT_CODE(vdi_client_set_create(c, NULL, &cfg), VD_E_INVALID);
    T_EXPECT_CODE(vdi_client_set_create(NULL, t_set_name("n"), &cfg), VD_E_INVALID);
    vdi_client_set_free(c);
}

/* 8.5: begin_configuration rejects with INVALID and the set stays Connected. */
static void case_begin(void) {
    t_set s;
    t_set_init(&s, "begin", 1);
    t_set_create(&s);
    t_set_server_open(&s);
    vdi_server_set *sv = s.server;
    static const uint32_t bad_block[] = {0, 256, 511, 1000, 131072, 3};
    for (size_t i = 0; i < sizeof bad_block / sizeof bad_block[0]; i++)
        T_EXPECT_CODE(
            vdi_server_set_begin_configuration(sv, VDF_WriteMedia, bad_block[i], 0, 65536, 0),
            VD_E_INVALID);
    /* alignment: 0, or a power of two from the block size to 65536 */
    static const uint32_t bad_align[] = {256, 4096 + 512, 131072, 1};
    for (size_t i = 0; i < sizeof bad_align / sizeof bad_align[0]; i++)
        T_EXPECT_CODE(
            vdi_server_set_begin_configuration(sv, VDF_WriteMedia, 4096, bad_align[i], 65536, 0),
            VD_E_INVALID);
    static const uint32_t bad_max[] = {0, 4096, 65537, 65536 + 4096};
    for (size_t i = 0; i < sizeof bad_max / sizeof bad_max[0]; i++)
        T_EXPECT_CODE(vdi_server_set_begin_configuration(sv, VDF_WriteMedia, 512, 0, bad_max[i], 0),
                      VD_E_INVALID);
    static const uint32_t bad_feat[] = {0,
                                        VDF_WriteMedia | VDF_ReadMedia,
                                        VDF_CompleteEnabled,
                                        VDF_WriteMedia | VDF_Removable,
                                        VDF_ReadMedia | VDF_RequestComplete,
                                        VDF_LikeTape};
    for (size_t i = 0; i < sizeof bad_feat / sizeof bad_feat[0]; i++)
        T_EXPECT_CODE(vdi_server_set_begin_configuration(sv, bad_feat[i], 512, 0, 65536, 0),
                      VD_E_INVALID);
    /* still Connected: request_buffers is PROTOCOL, a good begin works; the timeout is
     * accepted and never blocks */
    T_EXPECT_CODE(vdi_server_set_request_buffers(sv, 65536, 0, 1), VD_E_PROTOCOL);
    T_EXPECT_OK(vdi_server_set_begin_configuration(sv, VDF_ReadMedia | VDF_CompleteEnabled, 65536,
                                                   65536, 65536 * 16, VDI_INFINITE));
    t_set_teardown(&s);

    /* the limits are accepted */
    t_set_init(&s, "begin2", 1);
    t_set_create(&s);
    t_set_server_open(&s);
    T_EXPECT_OK(vdi_server_set_begin_configuration(s.server, VDF_WriteMedia, 512, 512, 65536, 0));
    t_set_teardown(&s);
}

/* 8.7: the server reads fields 0-6 as the client gave them. */
static void expect_client_fields(const VDConfig *got, const VDConfig *given) {
    T_EXPECT_EQ(got->deviceCount, given->deviceCount);
    T_EXPECT_EQ(got->features, given->features);
    T_EXPECT_EQ(got->prefixZoneSize, given->prefixZoneSize);
    T_EXPECT_EQ(got->alignment, given->alignment);
    T_EXPECT_EQ(got->softFileMarkBlockSize, given->softFileMarkBlockSize);
    T_EXPECT_EQ(got->EOMWarningSize, given->EOMWarningSize);
    T_EXPECT_EQ(got->serverTimeOut, given->serverTimeOut);
}

static void negotiate(uint32_t client_features, uint32_t server_features, uint32_t want) {
    t_set s;
    t_set_init(&s, "neg", 2);
    s.cfg.features = client_features;
    s.cfg.prefixZoneSize = 512;
    s.cfg.alignment = 1024;
    s.cfg.softFileMarkBlockSize = 7;
    s.cfg.EOMWarningSize = 9;
    s.cfg.serverTimeOut = 0;
    s.features = server_features;
    s.block_size = 4096;
    s.max_transfer = 2 * 65536;
    VDConfig given = s.cfg;
    t_set_create(&s);
    t_set_server_open(&s);
    VDConfig sc;
    /* 8.7: the server reads fields 0-6 as given, 7-10 zero before end_configuration */
    T_REQUIRE(vdi_server_set_get_configuration(s.server, &sc) == NOERROR);
    expect_client_fields(&sc, &given);
    T_EXPECT_EQ(sc.blockSize, 0);
    T_EXPECT_EQ(sc.maxIODepth, 0);
    T_EXPECT_EQ(sc.maxTransferSize, 0);
    T_EXPECT_EQ(sc.bufferAreaSize, 0);
    t_set_server_begin(&s);
    T_REQUIRE(vdi_server_set_get_configuration(s.server, &sc) == NOERROR);
    T_EXPECT_EQ(sc.blockSize, 0);
    t_set_server_end(&s);
    t_set_client_config(&s);
    VDConfig *cc = &s.cfg;
    T_EXPECT_EQ(cc->deviceCount, 2);
    T_EXPECT_EQ(cc->prefixZoneSize, 512);
    T_EXPECT_EQ(cc->alignment, 1024);
    T_EXPECT_EQ(cc->softFileMarkBlockSize, 7);
    T_EXPECT_EQ(cc->EOMWarningSize, 9);
    T_EXPECT_EQ(cc->serverTimeOut, 0);
    T_EXPECT_EQ(cc->features, want);
    T_EXPECT_EQ(cc->blockSize, 4096);
    T_EXPECT_EQ(cc->maxIODepth, VDI_MAX_IO_DEPTH);
    T_EXPECT_EQ(cc->maxTransferSize, 2 * 65536);
    T_EXPECT(cc->bufferAreaSize >= 4u * 65536u);
    /* the server sees the same negotiated fields 7-10 after end_configuration */
    T_REQUIRE(vdi_server_set_get_configuration(s.server, &sc) == NOERROR);
    expect_client_fields(&sc, &given); /* features included: as the client gave it */
    T_EXPECT_EQ(sc.blockSize, 4096);
    T_EXPECT_EQ(sc.maxIODepth, VDI_MAX_IO_DEPTH);
    T_EXPECT_EQ(sc.maxTransferSize, 2 * 65536);
    T_EXPECT_EQ(sc.bufferAreaSize, cc->bufferAreaSize);
    t_set_teardown(&s);
}

/* 8.7: negotiated features */
static void case_negotiate(void) {
    negotiate(VDF_LikeTape | VDF_RequestComplete, VDF_WriteMedia | VDF_CompleteEnabled,
              VDF_LikeTape | VDF_RequestComplete | VDF_WriteMedia | VDF_CompleteEnabled);
    negotiate(VDF_LikeDisk, VDF_ReadMedia | VDF_CompleteEnabled, VDF_LikeDisk | VDF_ReadMedia);
    negotiate(VDF_RequestComplete, VDF_WriteMedia, VDF_RequestComplete | VDF_WriteMedia);
    negotiate(VDF_LikePipe | VDF_LatchStats, VDF_ReadMedia, VDF_LatchStats | VDF_ReadMedia);
}

/* 8.8: set alignment = max(client alignment, server alignment or the block size); a
 * buffer allocated with alignment 0 is aligned to it at both addresses (4). */
static void alignment(uint32_t client_align, uint32_t block, uint32_t server_align, uint32_t want) {
    t_set s;
    t_set_init(&s, "align", 1);
    s.cfg.alignment = client_align;
    s.block_size = block;
    t_set_create(&s);
    t_set_server_open(&s);
    T_REQUIRE(vdi_server_set_begin_configuration(s.server, VDF_WriteMedia, block, server_align,
                                                 65536, 0) == NOERROR);
    t_set_server_end(&s);
    t_set_client_config(&s);
    t_set_open_devices(&s);
    t_set_start_agent(&s);
    enum { N = 3 };
    uint8_t *b[N];
    t_cmd tc[N];
    for (int i = 0; i < N; i++) {
        T_REQUIRE(vdi_server_set_allocate_buffer(s.server, &b[i], 100, 0) == NOERROR);
        T_EXPECT_EQ((uintptr_t)b[i] % want, 0);
        t_cmd_init(&tc[i], &s.ledger, VDC_Write, 100, 0, b[i]);
        T_REQUIRE(t_send(s.sdev[0], &tc[i]) == NOERROR);
        VDC_Command *c = NULL;
        T_REQUIRE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c) == NOERROR);
        T_EXPECT_EQ((uintptr_t)c->buffer % want, 0);
        T_EXPECT_OK(vdi_client_device_complete_command(s.cdev[0], c, 0, 100, 0));
    }
    t_ledger_wait(&s.ledger, N);
    t_set_finish(&s);
}

static void case_alignment(void) {
    alignment(4096, 512, 0, 4096);
    alignment(0, 8192, 0, 8192);
    alignment(0, 512, 32768, 32768);
    alignment(65536, 4096, 8192, 65536);
}

/* 8.9: request_buffers parameters; sums during configuration never fail; an
 * end_configuration that cannot build the area is MEMORY, stays Configurable and
 * discards the sums; after configuration each request grows the area or says MEMORY. */
static void case_request(void) {
    t_set s;
    t_set_init(&s, "req", 1);
    t_set_create(&s);
    t_set_server_open(&s);
    t_set_server_begin(&s);
    vdi_server_set *sv = s.server;
    uint32_t n = 7;
    T_EXPECT_CODE(vdi_server_set_request_buffers(sv, 0, 0, 1), VD_E_INVALID);
    T_EXPECT_CODE(vdi_server_set_request_buffers(sv, 65536, 0, 0), VD_E_INVALID);
    T_EXPECT_CODE(vdi_server_set_request_buffers(sv, 65536, 3, 1), VD_E_INVALID);
    T_EXPECT_CODE(vdi_server_set_request_buffers(sv, 65536, 131072, 1), VD_E_INVALID);
    T_EXPECT_CODE(vdi_server_set_query_available_buffers(sv, 65536, 0, NULL), VD_E_INVALID);
    /* before end_configuration, query answers for the summed requests */
    T_EXPECT_OK(vdi_server_set_request_buffers(sv, 65536, 0, 3));
    T_EXPECT_OK(vdi_server_set_query_available_buffers(sv, 65536, 0, &n));
    T_EXPECT(n >= 3);
    /* huge sums never fail during configuration (64-bit, saturating) */
    T_EXPECT_OK(vdi_server_set_request_buffers(sv, UINT32_MAX, 0, UINT32_MAX));
    T_EXPECT_OK(vdi_server_set_request_buffers(sv, UINT32_MAX, 0, UINT32_MAX));
    T_EXPECT_CODE(vdi_server_set_end_configuration(sv), VD_E_MEMORY);
    /* stays Configurable with the sums discarded: a small request now ends fine */
    T_EXPECT_CODE(vdi_server_set_begin_configuration(sv, VDF_WriteMedia, 512, 0, 65536, 0),
                  VD_E_PROTOCOL);
    T_EXPECT_OK(vdi_server_set_request_buffers(sv, 65536, 0, 2));
    T_EXPECT_OK(vdi_server_set_end_configuration(sv));
    VDConfig cfg;
    T_REQUIRE(vdi_server_set_get_configuration(sv, &cfg) == NOERROR);
    T_EXPECT(cfg.bufferAreaSize >= 2u * 65536u);
    T_EXPECT(cfg.bufferAreaSize < 64u * 65536u);
    /* after configuration: a request beyond VDI_MAX_AREA is MEMORY, no state change */
    T_EXPECT_CODE(vdi_server_set_request_buffers(sv, 1u << 30, 0, 2), VD_E_MEMORY);
    VDConfig cfg2;
    T_REQUIRE(vdi_server_set_get_configuration(sv, &cfg2) == NOERROR);
    T_EXPECT_EQ(cfg2.bufferAreaSize, cfg.bufferAreaSize);
    T_EXPECT_OK(vdi_server_set_request_buffers(sv, 65536, 0, 1));
    T_REQUIRE(vdi_server_set_get_configuration(sv, &cfg2) == NOERROR);
    T_EXPECT(cfg2.bufferAreaSize >= cfg.bufferAreaSize + 65536u);
    /* the client reads the area's current size */
    t_set_client_config(&s);
    T_EXPECT_EQ(s.cfg.bufferAreaSize, cfg2.bufferAreaSize);
    t_set_teardown(&s);
}

/* No buffers requested at all: end_configuration still succeeds (an empty area). */
static void case_no_buffers(void) {
    t_set s;
    t_set_init(&s, "nobuf", 1);
    s.buf_count = 0;
    t_set_to_active(&s);
    t_cmd a;
    t_cmd_init(&a, &s.ledger, VDC_Flush, 0, 0, NULL);
    T_REQUIRE(t_send(s.sdev[0], &a) == NOERROR);
    VDC_Command *c = NULL;
    T_REQUIRE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c) == NOERROR);
    T_EXPECT_OK(vdi_client_device_complete_command(s.cdev[0], c, 0, 0, 0));
    t_ledger_wait(&s.ledger, 1);
    t_set_finish(&s);
}

int main(int argc, char **argv) {
    static const t_case cases[] = {
        {"create", case_create},       {"begin", case_begin},     {"negotiate", case_negotiate},
        {"alignment", case_alignment}, {"request", case_request}, {"no_buffers", case_no_buffers},
    };
    int rc = t_run_cases(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
    return rc ? rc : t_done();
}
