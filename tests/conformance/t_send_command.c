/* The seven-row check table of send_command (VDI-SPEC 4), one case per row plus the
 * precedence between neighbouring rows: the code returned, the callback code, and that a
 * rejected send calls its routine exactly once, on the calling thread, before returning.
 * A server that relies on "exactly one callback per command" leaks or double-frees when
 * any row is wrong. */
#include "t_test.h"
#include "t_vdi.h"

/* A command rejected synchronously records its callback here. */
typedef struct sync_rec {
    VDS_Command cmd;
    int calls;
    uint32_t code;
    uint32_t bytes;
    int64_t out_position;
    pthread_t thread;
} sync_rec;

static void sync_routine(VDS_Command *cmd) {
    sync_rec *r = cmd->completionContext;
    r->calls++;
    r->code = cmd->completionCode;
    r->bytes = cmd->bytesTransferred;
    r->out_position = cmd->outPosition;
    r->thread = pthread_self();
}

static void rec_init(sync_rec *r, int32_t code, int32_t size, uint8_t *buffer) {
    memset(r, 0, sizeof *r);
    r->cmd.commandCode = code;
    r->cmd.size = size;
    r->cmd.inPosition = 7;
    r->cmd.outPosition = 12345;
    r->cmd.buffer = buffer;
    r->cmd.bytesTransferred = 99;
    r->cmd.completionRoutine = sync_routine;
    r->cmd.completionContext = r;
}

/* Send and expect a rejection with a synchronous callback carrying code (4: "calls the
 * routine itself, on the calling thread, before returning"; a failed command gets
 * bytesTransferred 0 and outPosition unchanged). */
#define EXPECT_REJECT(dev, r, want_rc, want_code)                                                  \
    do {                                                                                           \
        T_EXPECT_CODE(vdi_server_device_send_command((dev), &(r)->cmd), (want_rc));                \
        T_EXPECT_EQ((r)->calls, 1);                                                                \
        T_EXPECT_EQ((r)->code, (want_code));                                                       \
        T_EXPECT((r)->calls == 1 && pthread_equal((r)->thread, pthread_self()));                   \
        T_EXPECT_EQ((r)->bytes, 0);                                                                \
        T_EXPECT_EQ((r)->out_position, 12345);                                                     \
    } while (0)

/* Nothing was queued: the client sees no command. */
static void expect_nothing_queued(vdi_client_device *dev) {
    VDC_Command *c = NULL;
    T_EXPECT_CODE(vdi_client_device_get_command(dev, 0, &c), VD_E_TIMEOUT);
}

/* row 1: NULL device, NULL cmd or NULL completionRoutine: INVALID, no callback */
static void case_row1(void) {
    t_set s;
    t_set_init(&s, "row1", 1);
    t_set_to_active(&s);
    sync_rec r;
    rec_init(&r, VDC_Flush, 0, NULL);
    T_EXPECT_CODE(vdi_server_device_send_command(NULL, &r.cmd), VD_E_INVALID);
    T_EXPECT_EQ(r.calls, 0);
    T_EXPECT_CODE(vdi_server_device_send_command(s.sdev[0], NULL), VD_E_INVALID);
    r.cmd.completionRoutine = NULL;
    T_EXPECT_CODE(vdi_server_device_send_command(s.sdev[0], &r.cmd), VD_E_INVALID);
    T_EXPECT_EQ(r.calls, 0);
    /* row 1 precedes row 3: aborted, and still no callback without a routine */
    T_REQUIRE(vdi_server_set_signal_abort(s.server) == NOERROR);
    T_EXPECT_CODE(vdi_server_device_send_command(s.sdev[0], &r.cmd), VD_E_INVALID);
    T_EXPECT_EQ(r.calls, 0);
    T_EXPECT_CODE(t_set_join_agent(&s), VD_E_ABORT);
    t_set_teardown(&s);
}

/* row 2: cmd outstanding on any device of the set: INVALID, no callback */
static void case_row2(void) {
    t_set s;
    t_set_init(&s, "row2", 2);
    t_set_to_active(&s);
    t_cmd tc;
    t_cmd_init(&tc, &s.ledger, VDC_Flush, 0, 0, NULL);
    T_REQUIRE(t_send(s.sdev[0], &tc) == NOERROR);
    T_EXPECT_CODE(t_send(s.sdev[0], &tc), VD_E_INVALID);
    T_EXPECT_CODE(t_send(s.sdev[1], &tc), VD_E_INVALID);
    expect_nothing_queued(s.cdev[1]);
    VDC_Command *c = NULL;
    T_REQUIRE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c) == NOERROR);
    expect_nothing_queued(s.cdev[0]); /* sent once, delivered once */
    T_EXPECT_OK(vdi_client_device_complete_command(s.cdev[0], c, ERROR_SUCCESS, 0, 0));
    t_ledger_wait(&s.ledger, 1);
    T_EXPECT_EQ(t_cmd_snapshot(&tc).calls, 1);
    /* once its callback ran, the command is no longer outstanding: it may be re-sent */
    T_EXPECT_OK(t_send(s.sdev[1], &tc));
    T_REQUIRE(vdi_client_device_get_command(s.cdev[1], VDI_INFINITE, &c) == NOERROR);
    T_EXPECT_OK(vdi_client_device_complete_command(s.cdev[1], c, ERROR_SUCCESS, 0, 0));
    t_ledger_wait(&s.ledger, 2);
    T_EXPECT_EQ(t_cmd_snapshot(&tc).calls, 2);
    t_set_finish(&s);
}

/* Blocks the agent inside a callback until released. */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int inside;
    int open;
} gate;
static gate g_gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};

static void gate_hook(t_cmd *tc) {
    (void)tc;
    pthread_mutex_lock(&g_gate.mu);
    g_gate.inside = 1;
    pthread_cond_broadcast(&g_gate.cv);
    while (!g_gate.open)
        pthread_cond_wait(&g_gate.cv, &g_gate.mu);
    pthread_mutex_unlock(&g_gate.mu);
}

static void gate_wait_inside(void) {
    pthread_mutex_lock(&g_gate.mu);
    while (!g_gate.inside)
        pthread_cond_wait(&g_gate.cv, &g_gate.mu);
    pthread_mutex_unlock(&g_gate.mu);
}

static void gate_release(void) {
    pthread_mutex_lock(&g_gate.mu);
    g_gate.open = 1;
    pthread_cond_broadcast(&g_gate.cv);
    pthread_mutex_unlock(&g_gate.mu);
}

/* row 3: the set is aborted: ABORT, callback 995; row 2 precedes it */
static void case_row3(void) {
    t_set s;
    t_set_init(&s, "row3", 1);
    t_set_to_active(&s);
    /* A is completed and its callback blocks the agent; B stays outstanding. */
    t_cmd a, b;
    t_cmd_init(&a, &s.ledger, VDC_Flush, 0, 0, NULL);
    t_cmd_init(&b, &s.ledger, VDC_Flush, 0, 0, NULL);
    a.hook = gate_hook;
    T_REQUIRE(t_send(s.sdev[0], &a) == NOERROR);
    T_REQUIRE(t_send(s.sdev[0], &b) == NOERROR);
    VDC_Command *c = NULL;
    T_REQUIRE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c) == NOERROR);
    T_REQUIRE(vdi_client_device_complete_command(s.cdev[0], c, ERROR_SUCCESS, 0, 0) == NOERROR);
    gate_wait_inside();
    T_REQUIRE(vdi_server_set_signal_abort(s.server) == NOERROR);
    /* row 2 before row 3: B is still outstanding, so INVALID and no callback */
    T_EXPECT_CODE(t_send(s.sdev[0], &b), VD_E_INVALID);
    T_EXPECT_EQ(t_cmd_snapshot(&b).calls, 0);
    /* row 3: a fresh command on the aborted set */
    sync_rec r;
    rec_init(&r, VDC_Flush, 0, NULL);
    EXPECT_REJECT(s.sdev[0], &r, VD_E_ABORT, ERROR_OPERATION_ABORTED);
    /* row 3 before row 5: a malformed command on the aborted set */
    rec_init(&r, 999, 0, NULL);
    EXPECT_REJECT(s.sdev[0], &r, VD_E_ABORT, ERROR_OPERATION_ABORTED);
    gate_release();
    T_EXPECT_CODE(t_set_join_agent(&s), VD_E_ABORT);
    T_EXPECT_EQ(t_cmd_snapshot(&a).calls, 1);
    T_EXPECT_EQ(t_cmd_snapshot(&a).code, ERROR_SUCCESS);
    T_EXPECT_EQ(t_cmd_snapshot(&b).calls, 1);
    T_EXPECT_EQ(t_cmd_snapshot(&b).code, ERROR_OPERATION_ABORTED);
    t_set_teardown(&s);
}

/* row 4: not Active, device closed, or no agent running: PROTOCOL, callback 6 */
static void case_row4(void) {
    t_set s;
    t_set_init(&s, "row4", 2);
    t_set_to_initializing(&s);
    t_set_open_devices(&s);
    sync_rec r;
    /* no agent running */
    rec_init(&r, VDC_Flush, 0, NULL);
    EXPECT_REJECT(s.sdev[0], &r, VD_E_PROTOCOL, ERROR_INVALID_HANDLE);
    expect_nothing_queued(s.cdev[0]);
    /* row 4 before row 5: no agent and a malformed command */
    rec_init(&r, 999, 0, NULL);
    EXPECT_REJECT(s.sdev[0], &r, VD_E_PROTOCOL, ERROR_INVALID_HANDLE);
    t_set_start_agent(&s);
    /* device closed by the server */
    T_REQUIRE(vdi_server_device_close(s.sdev[1]) == NOERROR);
    rec_init(&r, VDC_Flush, 0, NULL);
    EXPECT_REJECT(s.sdev[1], &r, VD_E_PROTOCOL, ERROR_INVALID_HANDLE);
    rec_init(&r, 999, 0, NULL);
    EXPECT_REJECT(s.sdev[1], &r, VD_E_PROTOCOL, ERROR_INVALID_HANDLE);
    /* the other device still works */
    t_cmd tc;
    t_cmd_init(&tc, &s.ledger, VDC_Flush, 0, 0, NULL);
    T_EXPECT_OK(t_send(s.sdev[0], &tc));
    VDC_Command *c = NULL;
    T_REQUIRE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c) == NOERROR);
    T_EXPECT_OK(vdi_client_device_complete_command(s.cdev[0], c, ERROR_SUCCESS, 0, 0));
    T_REQUIRE(vdi_server_device_close(s.sdev[0]) == NOERROR);
    t_set_drain_client(&s);
    t_set_end(&s);
}

/* row 5: malformed commands: INVALID, callback 87 */
static void case_row5(void) {
    t_set s;
    t_set_init(&s, "row5", 1);
    t_set_to_active(&s);
    uint8_t *buf = NULL, *dead = NULL;
    T_REQUIRE(vdi_server_set_allocate_buffer(s.server, &buf, 8192, 0) == NOERROR);
    T_REQUIRE(vdi_server_set_allocate_buffer(s.server, &dead, 4096, 0) == NOERROR);
    T_REQUIRE(vdi_server_set_free_buffer(s.server, dead, 4096) == NOERROR);
    uint8_t local[64];
    sync_rec r;
    static const int32_t bad_codes[] = {0, -1, 20, 999};
    for (size_t i = 0; i < sizeof bad_codes / sizeof bad_codes[0]; i++) {
        rec_init(&r, bad_codes[i], 0, NULL);
        EXPECT_REJECT(s.sdev[0], &r, VD_E_INVALID, ERROR_INVALID_PARAMETER);
    }
    static const int32_t data_codes[] = {VDC_Read, VDC_Write};
    for (size_t i = 0; i < 2; i++) {
        int32_t code = data_codes[i];
        rec_init(&r, code, 0, buf); /* size 0 */
        EXPECT_REJECT(s.sdev[0], &r, VD_E_INVALID, ERROR_INVALID_PARAMETER);
        rec_init(&r, code, -512, buf); /* negative size */
        EXPECT_REJECT(s.sdev[0], &r, VD_E_INVALID, ERROR_INVALID_PARAMETER);
        rec_init(&r, code, 65536 + 512, buf); /* above maxTransferSize */
        EXPECT_REJECT(s.sdev[0], &r, VD_E_INVALID, ERROR_INVALID_PARAMETER);
        rec_init(&r, code, 512, NULL); /* no buffer */
        EXPECT_REJECT(s.sdev[0], &r, VD_E_INVALID, ERROR_INVALID_PARAMETER);
        rec_init(&r, code, 64, local); /* not in the buffer area */
        EXPECT_REJECT(s.sdev[0], &r, VD_E_INVALID, ERROR_INVALID_PARAMETER);
        rec_init(&r, code, 8192, buf + 512); /* runs past the end of the data zone */
        EXPECT_REJECT(s.sdev[0], &r, VD_E_INVALID, ERROR_INVALID_PARAMETER);
        rec_init(&r, code, 4096, dead); /* a freed buffer */
        EXPECT_REJECT(s.sdev[0], &r, VD_E_INVALID, ERROR_INVALID_PARAMETER);
    }
    /* a non-data command with a buffer outside any live data zone */
    rec_init(&r, VDC_Flush, 0, local);
    EXPECT_REJECT(s.sdev[0], &r, VD_E_INVALID, ERROR_INVALID_PARAMETER);
    rec_init(&r, VDC_WriteMark, 1, dead);
    EXPECT_REJECT(s.sdev[0], &r, VD_E_INVALID, ERROR_INVALID_PARAMETER);
    expect_nothing_queued(s.cdev[0]);
    /* the limits themselves are accepted: size 1, size maxTransferSize, a tail slice */
    t_cmd ok1, ok2, ok3;
    uint8_t *big = NULL;
    T_REQUIRE(vdi_server_set_allocate_buffer(s.server, &big, 65536, 0) == NOERROR);
    t_cmd_init(&ok1, &s.ledger, VDC_Write, 1, 0, buf);
    t_cmd_init(&ok2, &s.ledger, VDC_Read, 65536, 0, big);
    t_cmd_init(&ok3, &s.ledger, VDC_Write, 512, 0, buf + 8192 - 512);
    T_EXPECT_OK(t_send(s.sdev[0], &ok1));
    T_EXPECT_OK(t_send(s.sdev[0], &ok2));
    T_EXPECT_OK(t_send(s.sdev[0], &ok3));
    t_worker w = {0};
    t_worker_start(&w, s.cdev[0], ERROR_SUCCESS);
    t_ledger_wait(&s.ledger, 3);
    T_EXPECT_EQ(t_ledger_count_code(&s.ledger, ERROR_SUCCESS), 3);
    T_REQUIRE(vdi_server_device_close(s.sdev[0]) == NOERROR);
    T_EXPECT_CODE(t_worker_join(&w), VD_E_CLOSE);
    t_set_end(&s);
}

/* Completes the next command on dev with code, and waits for its callback. */
static void complete_next(t_set *s, vdi_client_device *dev, uint32_t code, int nth_callback) {
    VDC_Command *c = NULL;
    T_REQUIRE(vdi_client_device_get_command(dev, VDI_INFINITE, &c) == NOERROR);
    T_REQUIRE(vdi_client_device_complete_command(dev, c, code, 0, 0) == NOERROR);
    t_ledger_wait(&s->ledger, nth_callback);
}

/* row 6: device in I/O-error state, code not ClearError: IO_ERROR, callback 1117 */
static void case_row6(void) {
    t_set s;
    t_set_init(&s, "row6", 2);
    t_set_to_active(&s);
    t_cmd cmds[8];
    sync_rec r;
    t_cmd_init(&cmds[0], &s.ledger, VDC_Flush, 0, 0, NULL);
    T_REQUIRE(t_send(s.sdev[0], &cmds[0]) == NOERROR);
    complete_next(&s, s.cdev[0], ERROR_IO_DEVICE, 1);
    T_EXPECT_EQ(t_cmd_snapshot(&cmds[0]).code, ERROR_IO_DEVICE);
    /* the device is now in I/O-error state */
    rec_init(&r, VDC_Flush, 0, NULL);
    EXPECT_REJECT(s.sdev[0], &r, VD_E_IO_ERROR, ERROR_IO_DEVICE);
    rec_init(&r, VDC_WriteMark, 0, NULL);
    EXPECT_REJECT(s.sdev[0], &r, VD_E_IO_ERROR, ERROR_IO_DEVICE);
    /* row 5 before row 6 */
    rec_init(&r, 999, 0, NULL);
    EXPECT_REJECT(s.sdev[0], &r, VD_E_INVALID, ERROR_INVALID_PARAMETER);
    /* the state is per device */
    t_cmd_init(&cmds[1], &s.ledger, VDC_Flush, 0, 0, NULL);
    T_EXPECT_OK(t_send(s.sdev[1], &cmds[1]));
    complete_next(&s, s.cdev[1], ERROR_SUCCESS, 2);
    /* a ClearError that fails leaves the device in the I/O-error state */
    t_cmd_init(&cmds[2], &s.ledger, VDC_ClearError, 0, 0, NULL);
    T_EXPECT_OK(t_send(s.sdev[0], &cmds[2]));
    complete_next(&s, s.cdev[0], ERROR_IO_DEVICE, 3);
    rec_init(&r, VDC_Flush, 0, NULL);
    EXPECT_REJECT(s.sdev[0], &r, VD_E_IO_ERROR, ERROR_IO_DEVICE);
    /* a ClearError completed with ERROR_SUCCESS leaves it */
    t_cmd_init(&cmds[3], &s.ledger, VDC_ClearError, 0, 0, NULL);
    T_EXPECT_OK(t_send(s.sdev[0], &cmds[3]));
    complete_next(&s, s.cdev[0], ERROR_SUCCESS, 4);
    t_cmd_init(&cmds[4], &s.ledger, VDC_Flush, 0, 0, NULL);
    T_EXPECT_OK(t_send(s.sdev[0], &cmds[4]));
    complete_next(&s, s.cdev[0], ERROR_SUCCESS, 5);
    T_EXPECT_EQ(t_cmd_snapshot(&cmds[4]).code, ERROR_SUCCESS);
    t_set_finish(&s);
}

/* row 7: 64 outstanding on the device: QUEUE_FULL, callback 1450; row 6 precedes it */
static void case_row7(void) {
    t_set s;
    t_set_init(&s, "row7", 2);
    t_set_to_active(&s);
    static t_cmd cmds[VDI_MAX_OUTSTANDING + 2];
    for (int i = 0; i < VDI_MAX_OUTSTANDING; i++) {
        t_cmd_init(&cmds[i], &s.ledger, VDC_Flush, 0, i, NULL);
        T_EXPECT_OK(t_send(s.sdev[0], &cmds[i]));
    }
    sync_rec r;
    rec_init(&r, VDC_Flush, 0, NULL);
    EXPECT_REJECT(s.sdev[0], &r, VD_E_QUEUE_FULL, ERROR_NO_SYSTEM_RESOURCES);
    /* the limit is per device */
    t_cmd other;
    t_cmd_init(&other, &s.ledger, VDC_Flush, 0, 0, NULL);
    T_EXPECT_OK(t_send(s.sdev[1], &other));
    complete_next(&s, s.cdev[1], ERROR_SUCCESS, 1);
    /* the client completing is not enough: the slot frees when the agent takes it;
     * after the callback there is room for exactly one more */
    complete_next(&s, s.cdev[0], ERROR_IO_DEVICE, 2);
    /* device 0: 63 outstanding and in I/O-error state; a ClearError fills it to 64 */
    t_cmd_init(&cmds[VDI_MAX_OUTSTANDING], &s.ledger, VDC_ClearError, 0, 0, NULL);
    T_EXPECT_OK(t_send(s.sdev[0], &cmds[VDI_MAX_OUTSTANDING]));
    /* row 6 before row 7: full and in I/O-error state gives IO_ERROR */
    rec_init(&r, VDC_Flush, 0, NULL);
    EXPECT_REJECT(s.sdev[0], &r, VD_E_IO_ERROR, ERROR_IO_DEVICE);
    /* a ClearError on the full device: QUEUE_FULL */
    rec_init(&r, VDC_ClearError, 0, NULL);
    EXPECT_REJECT(s.sdev[0], &r, VD_E_QUEUE_FULL, ERROR_NO_SYSTEM_RESOURCES);
    /* drain: the client completes the rest (the ClearError with success) */
    t_worker w = {0};
    t_worker_start(&w, s.cdev[0], ERROR_SUCCESS);
    t_ledger_wait(&s.ledger, VDI_MAX_OUTSTANDING + 2);
    for (int i = 0; i <= VDI_MAX_OUTSTANDING; i++)
        T_EXPECT_EQ(t_cmd_snapshot(&cmds[i]).calls, 1);
    T_REQUIRE(vdi_server_device_close(s.sdev[0]) == NOERROR);
    T_REQUIRE(vdi_server_device_close(s.sdev[1]) == NOERROR);
    T_EXPECT_CODE(t_worker_join(&w), VD_E_CLOSE);
    VDC_Command *c = NULL;
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev[1], VDI_INFINITE, &c), VD_E_CLOSE);
    t_set_end(&s);
}

/* A routine called for a rejected send may call the server again; and an accepted
 * command's routine runs on the agent thread, not the sender's. */
static void case_threads(void) {
    t_set s;
    t_set_init(&s, "sthr", 1);
    t_set_to_active(&s);
    t_cmd tc;
    t_cmd_init(&tc, &s.ledger, VDC_Flush, 0, 0, NULL);
    T_REQUIRE(t_send(s.sdev[0], &tc) == NOERROR);
    complete_next(&s, s.cdev[0], ERROR_SUCCESS, 1);
    t_cmd snap = t_cmd_snapshot(&tc);
    T_EXPECT(!pthread_equal(snap.thread, pthread_self()));
    T_EXPECT(pthread_equal(snap.thread, s.agent));
    t_set_finish(&s);
}

int main(int argc, char **argv) {
    static const t_case cases[] = {
        {"row1", case_row1}, {"row2", case_row2}, {"row3", case_row3}, {"row4", case_row4},
        {"row5", case_row5}, {"row6", case_row6}, {"row7", case_row7}, {"threads", case_threads},
    };
    int rc = t_run_cases(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
    return rc ? rc : t_done();
}
