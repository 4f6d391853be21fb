/* t_model: the executable model (chaos/model) against hand-written sequences from the
 * VDI-SPEC tables: the thin path, the send_command table, abort drains, premature closes,
 * client close codes. The fuzz targets trust the model as their oracle, so it is checked
 * here on its own, without the reference. */
#include "chaos_model.h"
#include "t_test.h"

static chaos_model_outcome o;

static int step(chaos_model *m, chaos_model_call k) {
    chaos_model_step(m, &k, &o);
    return o.code;
}

#define CALL(...) ((chaos_model_call){__VA_ARGS__})

static void to_active(chaos_model *m, uint32_t ndev) {
    VDConfig cfg = {.deviceCount = ndev};
    T_EXPECT_OK(step(m, CALL(.op = CM_C_CREATE_EX, .obj = 0, .name = "s", .cfg = cfg)));
    T_EXPECT_OK(step(m, CALL(.op = CM_S_OPEN, .obj = 0, .name = "s")));
    T_EXPECT_OK(step(m, CALL(.op = CM_S_BEGIN_CONFIGURATION, .obj = 0, .features = VDF_WriteMedia,
                             .block_size = 512, .max_transfer = 65536)));
    T_EXPECT_OK(step(m, CALL(.op = CM_S_REQUEST_BUFFERS, .obj = 0, .size = 65536, .count = 2)));
    T_EXPECT_OK(step(m, CALL(.op = CM_S_END_CONFIGURATION, .obj = 0)));
    T_EXPECT_OK(step(m, CALL(.op = CM_C_GET_CONFIGURATION, .obj = 0)));
    T_EXPECT_EQ(o.cfg.features, VDF_WriteMedia);
    T_EXPECT_EQ(o.cfg.maxIODepth, 4);
    T_EXPECT_OK(step(m, CALL(.op = CM_S_OPEN_DEVICE, .obj = 0, .name = "s")));
    T_EXPECT_OK(step(m, CALL(.op = CM_C_OPEN_DEVICE, .obj = 0, .name = "s")));
    T_EXPECT_OK(step(m, CALL(.op = CM_S_EXECUTE_AGENT, .obj = 0)));
    T_EXPECT(o.agent_starts);
    T_EXPECT_OK(step(m, CALL(.op = CM_S_ALLOCATE_BUFFER, .obj = 0, .size = 65536)));
    T_EXPECT_EQ(o.buf, 0);
}

static chaos_model_call send(int cmd, int32_t code, int32_t size) {
    return CALL(.op = CM_S_SEND_COMMAND, .obj = 0, .dev = 0, .cmd = cmd, .command_code = code,
                .command_size = size, .cmd_buf = 0);
}

static void thin_path(void) {
    chaos_model *m = chaos_model_new();
    to_active(m, 1);
    T_EXPECT_OK(step(m, send(0, VDC_Write, 65536)));
    T_EXPECT_OK(step(m, CALL(.op = CM_C_GET_COMMAND, .obj = 0, .dev = 0)));
    T_EXPECT_EQ(o.delivered, 0);
    T_EXPECT_OK(step(m, CALL(.op = CM_C_COMPLETE_COMMAND, .obj = 0, .dev = 0, .cmd = 0,
                             .bytes = 65536, .position = 9)));
    T_REQUIRE(o.ncallbacks == 1);
    T_EXPECT_EQ(o.callbacks[0].code, ERROR_SUCCESS);
    T_EXPECT_EQ(o.callbacks[0].out_position, 9);
    T_EXPECT_OK(step(m, CALL(.op = CM_S_CLOSE_DEVICE, .obj = 0, .dev = 0)));
    T_EXPECT(o.agent_returns && o.agent_code == NOERROR);
    T_EXPECT_EQ(chaos_model_server_state(m, 0), CM_ST_NORMALLY_TERMINATED);
    T_EXPECT_CODE(step(m, CALL(.op = CM_C_GET_COMMAND, .obj = 0, .dev = 0)), VD_E_CLOSE);
    T_EXPECT_EQ(chaos_model_client_state(m, 0), CM_ST_NORMALLY_TERMINATED);
    T_EXPECT_CODE(step(m, CALL(.op = CM_S_OPEN_DEVICE, .obj = 0, .name = "s")), VD_E_OPEN);
    T_EXPECT_CODE(step(m, send(1, VDC_Write, 1)), VD_E_PROTOCOL); /* NT: callback 6 */
    T_EXPECT(o.ncallbacks == 1 && o.callbacks[0].code == ERROR_INVALID_HANDLE);
    T_EXPECT_OK(step(m, CALL(.op = CM_S_CLOSE, .obj = 0)));
    T_EXPECT_OK(step(m, CALL(.op = CM_C_CLOSE, .obj = 0)));
    chaos_model_free(m);
}

static void send_table(void) {
    chaos_model *m = chaos_model_new();
    to_active(m, 1);
    T_EXPECT_CODE(step(m, CALL(.op = CM_S_SEND_COMMAND, .obj = 0, .dev = 0, .cmd = 0,
                               .command_code = VDC_Write, .routine_null = 1)),
                  VD_E_INVALID); /* row 1 */
    T_EXPECT_EQ(o.ncallbacks, 0);
    T_EXPECT_OK(step(m, send(0, VDC_Write, 512)));
    T_EXPECT_CODE(step(m, send(0, VDC_Write, 512)), VD_E_INVALID); /* row 2 */
    T_EXPECT_EQ(o.ncallbacks, 0);
    T_EXPECT_CODE(step(m, send(1, 99, 512)), VD_E_INVALID); /* row 5 */
    T_EXPECT(o.ncallbacks == 1 && o.callbacks[0].code == ERROR_INVALID_PARAMETER &&
             o.callbacks[0].sync);
    T_EXPECT_CODE(step(m, send(1, VDC_Write, 65537)), VD_E_INVALID); /* beyond the zone */
    T_EXPECT_OK(step(m, CALL(.op = CM_C_GET_COMMAND, .obj = 0, .dev = 0)));
    T_EXPECT_OK(step(m, CALL(.op = CM_C_COMPLETE_COMMAND, .obj = 0, .dev = 0, .cmd = 0,
                             .completion_code = ERROR_IO_DEVICE)));
    T_EXPECT_CODE(step(m, send(1, VDC_Write, 512)), VD_E_IO_ERROR); /* row 6 */
    T_EXPECT(o.ncallbacks == 1 && o.callbacks[0].code == ERROR_IO_DEVICE);
    for (int i = 0; i < 64; i++)
        T_EXPECT_OK(step(m, send(2 + i, VDC_ClearError, 0) /* no buffer needed */));
    T_EXPECT_CODE(step(m, send(70, VDC_ClearError, 0)), VD_E_QUEUE_FULL); /* row 7 */
    T_EXPECT(o.ncallbacks == 1 && o.callbacks[0].code == ERROR_NO_SYSTEM_RESOURCES);
    T_EXPECT_OK(step(m, CALL(.op = CM_S_SIGNAL_ABORT, .obj = 0)));
    T_EXPECT_EQ(o.ncallbacks, 64); /* the drain: one 995 each, in send order */
    T_EXPECT(o.callbacks[0].cmd == 2 && o.callbacks[63].cmd == 65);
    T_EXPECT(o.callbacks[5].code == ERROR_OPERATION_ABORTED && !o.callbacks[5].sync);
    T_EXPECT(o.agent_returns && o.agent_code == VD_E_ABORT);
    T_EXPECT_CODE(step(m, send(70, VDC_Write, 512)), VD_E_ABORT); /* row 3 */
    T_EXPECT(o.ncallbacks == 1 && o.callbacks[0].code == ERROR_OPERATION_ABORTED);
    T_EXPECT_CODE(step(m, CALL(.op = CM_S_EXECUTE_AGENT, .obj = 0)), VD_E_ABORT);
    T_EXPECT_CODE(step(m, CALL(.op = CM_C_GET_COMMAND, .obj = 0, .dev = 0)), VD_E_ABORT);
    T_EXPECT_OK(step(m, CALL(.op = CM_S_CLOSE, .obj = 0)));
    T_EXPECT_OK(step(m, CALL(.op = CM_C_CLOSE, .obj = 0)));
    chaos_model_free(m);
}

static void premature_closes(void) {
    chaos_model *m = chaos_model_new();
    to_active(m, 1);
    T_EXPECT_OK(step(m, send(0, VDC_Write, 512)));
    T_EXPECT_CODE(step(m, CALL(.op = CM_S_CLOSE, .obj = 0)), VD_E_PROTOCOL); /* 5.1.2 */
    T_EXPECT(o.ncallbacks == 1 && o.callbacks[0].sync && o.agent_returns);
    T_EXPECT_CODE(step(m, CALL(.op = CM_S_CLOSE, .obj = 0)), VD_E_PROTOCOL); /* 5.1.6 */
    T_EXPECT_CODE(step(m, CALL(.op = CM_C_GET_CONFIGURATION, .obj = 0)), VD_E_ABORT);
    T_EXPECT_OK(step(m, CALL(.op = CM_C_CLOSE, .obj = 0))); /* Abort: NOERROR */
    T_EXPECT_CODE(step(m, CALL(.op = CM_C_CLOSE, .obj = 0)), VD_E_PROTOCOL);
    chaos_model_free(m);

    m = chaos_model_new(); /* client close with its device unfinished: OPEN, aborts */
    to_active(m, 1);
    T_EXPECT_OK(step(m, send(0, VDC_Write, 512)));
    T_EXPECT_CODE(step(m, CALL(.op = CM_C_CLOSE, .obj = 0)), VD_E_OPEN);
    T_EXPECT(o.ncallbacks == 1 && o.agent_returns && o.agent_code == VD_E_ABORT);
    T_EXPECT_CODE(step(m, CALL(.op = CM_S_OPEN_DEVICE, .obj = 0, .name = "x")), VD_E_ABORT);
    T_EXPECT_OK(step(m, CALL(.op = CM_S_CLOSE, .obj = 0)));
    T_EXPECT_CODE(step(m, CALL(.op = CM_S_OPEN, .obj = 0, .name = "s")), VD_E_INVALID);
    chaos_model_free(m);
}

static void precedence(void) {
    chaos_model *m = chaos_model_new();
    VDConfig bad = {.deviceCount = 0};
    T_EXPECT_CODE(
        step(m, CALL(.op = CM_C_CREATE_EX, .obj = 0, .instance = "", .name = "s", .cfg = bad)),
        VD_E_INSTANCE_NAME); /* the first bad parameter in the signature */
    T_EXPECT_CODE(step(m, CALL(.op = CM_C_CREATE_EX, .obj = 0, .name = "a/b", .cfg = bad)),
                  VD_E_INVALID);
    T_EXPECT_CODE(step(m, CALL(.op = CM_C_CREATE_EX, .obj = 0, .name = "s", .cfg = bad)),
                  VD_E_NOTSUPPORTED);
    T_EXPECT_CODE(step(m, CALL(.op = CM_C_CREATE_EX, .obj = CHAOS_MODEL_NULL, .name = "s")),
                  VD_E_INVALID);
    T_EXPECT_CODE(step(m, CALL(.op = CM_C_GET_CONFIGURATION, .obj = 0, .timeout = -1)),
                  VD_E_PROTOCOL);
    VDConfig ok = {.deviceCount = 3};
    T_EXPECT_OK(step(m, CALL(.op = CM_C_CREATE_EX, .obj = 0, .name = "s", .cfg = ok)));
    T_EXPECT_CODE(step(m, CALL(.op = CM_C_GET_CONFIGURATION, .obj = 0)), VD_E_TIMEOUT);
    step(m, CALL(.op = CM_C_GET_CONFIGURATION, .obj = 0, .timeout = -1));
    T_EXPECT(o.blocks);
    T_EXPECT_CODE(step(m, CALL(.op = CM_C_CREATE_EX, .obj = 1, .name = "s", .cfg = ok)), VD_E_BUSY);
    chaos_model_free(m);
}

/* The hash the history search memoizes on: a copy hashes equal, a step that changes the
 * state changes it, and two orders of commuting steps (two devices) meet again. */
static void hashing(void) {
    chaos_model *a = chaos_model_new(), *b = chaos_model_new();
    T_REQUIRE(a && b);
    to_active(a, 2);
    T_EXPECT_OK(step(a, CALL(.op = CM_S_OPEN_DEVICE, .obj = 0, .name = "d1")));
    T_EXPECT_OK(step(a, CALL(.op = CM_C_OPEN_DEVICE, .obj = 0, .name = "d1")));
    chaos_model_copy(b, a);
    T_EXPECT(chaos_model_hash(a) == chaos_model_hash(b));
    uint64_t before = chaos_model_hash(a);
    T_EXPECT_OK(step(a, CALL(.op = CM_S_CLOSE_DEVICE, .obj = 0, .dev = 0)));
    T_EXPECT(chaos_model_hash(a) != before);
    T_EXPECT_OK(step(a, CALL(.op = CM_S_CLOSE_DEVICE, .obj = 0, .dev = 1)));
    T_EXPECT_OK(step(b, CALL(.op = CM_S_CLOSE_DEVICE, .obj = 0, .dev = 1)));
    T_EXPECT(chaos_model_hash(a) != chaos_model_hash(b));
    T_EXPECT_OK(step(b, CALL(.op = CM_S_CLOSE_DEVICE, .obj = 0, .dev = 0)));
    T_EXPECT(chaos_model_hash(a) == chaos_model_hash(b));
    chaos_model_free(a);
    chaos_model_free(b);
}

int main(void) {
    hashing();
    thin_path();
    send_table();
    premature_closes();
    precedence();
    return t_failures ? 1 : (t_checks ? 0 : 1);
}
