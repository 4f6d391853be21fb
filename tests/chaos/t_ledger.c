/* The ledger oracle (chaos/ledger.h) on its own: every check it makes fires on the
 * misbehaviour it names, and stays quiet on the behaviour VDI-SPEC 4 prescribes. The
 * library's side is played two ways: sends rejected by the real reference (a set with no
 * agent answers VD_E_PROTOCOL and calls the routine on the sending thread), and callbacks
 * made by hand, as a broken agent would make them, for commands the ledger is told were
 * accepted (what chaos_ledger_send records for a send that returned NOERROR). No run is
 * needed: outside one, the calling thread is actor 0, and findings are kept all the same. */
#include <string.h>

#include "chaos/chaos.h"
#include "chaos/ledger.h"
#include "t_test.h"
#include "t_session.h"

#define NCMD 4

static chaos_engine *g_e;
static chaos_ledger g_l;
static chaos_ledger_cmd g_cmd[NCMD];
static int g_calls_per_routine; /* how often the routine tells the ledger (1: as it should) */
static uint32_t g_code_seen;    /* 0: as the library wrote it; else what the routine reports */
static chaos_ledger_kind g_kind;

/* A new ledger of NCMD commands on a new engine: its finding is the ledger's first. */
static void fresh(int flags) {
    if (g_e)
        chaos_engine_free(g_e);
    chaos_config cfg = {.strategy = CHAOS_RANDOM, .seed = 1};
    g_e = chaos_engine_new(&cfg);
    T_REQUIRE(g_e != NULL);
    chaos_ledger_init(&g_l, g_e, g_cmd, NCMD, flags);
    g_calls_per_routine = 1;
    g_code_seen = 0;
}

static int finds(const char *text) {
    const char *f = chaos_finding(g_e);
    if (strstr(f, text))
        return 1;
    fprintf(stderr, "  finding \"%s\", wanted one saying \"%s\"\n", f, text);
    return 0;
}

static int quiet(void) {
    const char *f = chaos_finding(g_e);
    if (!f[0])
        return 1;
    fprintf(stderr, "  unexpected finding \"%s\"\n", f);
    return 0;
}

static void routine(VDS_Command *cmd) {
    int i = (int)(intptr_t)cmd->completionContext;
    if (g_code_seen)
        cmd->completionCode = g_code_seen;
    for (int k = 0; k < g_calls_per_routine; k++)
        g_kind = chaos_ledger_callback(&g_l, i, cmd);
}

/* What chaos_ledger_send records for command i when the send returns NOERROR. */
static void accepted(int i) {
    g_l.cmd[i].sends++;
    g_l.cmd[i].owed++;
    g_l.cmd[i].accepts++;
    g_l.accepted++;
}

/* The agent's callback of command i (the agent is this thread, actor 0). */
static chaos_ledger_kind agent_calls(int i, uint32_t code, uint32_t bytes, int64_t pos) {
    VDS_Command c = {.completionCode = code, .bytesTransferred = bytes, .outPosition = pos};
    return chaos_ledger_callback(&g_l, i, &c);
}

/* ---- rejected sends, through the real reference -------------------------------------- */

static void test_rejected_sends(void) {
    t_session s;
    t_session_up(&s, "ledger", (t_session_opts){.configure = 1});
    VDS_Command cmd = {.commandCode = VDC_Flush,
                       .completionRoutine = routine,
                       .completionContext = (void *)(intptr_t)0};

    fresh(CHAOS_LEDGER_COMPLETIONS); /* as the contract says: one callback, here, code 6 */
    chaos_ledger_agent(&g_l, 9);
    T_EXPECT_CODE(chaos_ledger_send(&g_l, 0, s.sdev, &cmd), VD_E_PROTOCOL);
    T_EXPECT_EQ(g_kind, CHAOS_LEDGER_SYNC);
    chaos_ledger_check(&g_l, 1);
    T_EXPECT(quiet());
    T_EXPECT_EQ(chaos_ledger_calls(&g_l, 0), 1);
    T_EXPECT_EQ(chaos_ledger_accepted(&g_l), 0);

    fresh(0); /* the routine never reached the ledger: no callback on the thread */
    g_calls_per_routine = 0;
    T_EXPECT_CODE(chaos_ledger_send(&g_l, 0, s.sdev, &cmd), VD_E_PROTOCOL);
    T_EXPECT(finds("ledger: ") && finds("returned VD_E_PROTOCOL with 0 callbacks on its thread"));

    fresh(0); /* called twice */
    g_calls_per_routine = 2;
    T_EXPECT_CODE(chaos_ledger_send(&g_l, 0, s.sdev, &cmd), VD_E_PROTOCOL);
    T_EXPECT_EQ(g_kind, CHAOS_LEDGER_AGAIN);
    T_EXPECT(finds("command 0 got a second callback (a rejected send's)"));

    fresh(0); /* the callback carries another row's code */
    g_code_seen = ERROR_INVALID_PARAMETER;
    T_EXPECT_CODE(chaos_ledger_send(&g_l, 0, s.sdev, &cmd), VD_E_PROTOCOL);
    T_EXPECT(finds("returned VD_E_PROTOCOL with 1 callbacks on its thread (code 87"));

    fresh(0); /* row 1: no device, nothing called back and nothing owed */
    T_EXPECT_CODE(chaos_ledger_send(&g_l, 0, NULL, &cmd), VD_E_INVALID);
    chaos_ledger_check(&g_l, 0);
    T_EXPECT(quiet());
    chaos_ledger_check(&g_l, 1); /* ... but a harness that had to send it misses its callback */
    T_EXPECT(finds("command 0 got 0 callbacks"));

    fresh(0); /* a command number the session does not have */
    T_EXPECT_CODE(chaos_ledger_send(&g_l, NCMD, NULL, &cmd), VD_E_INVALID);
    T_EXPECT(finds("send of command 4, which is not one of the 4"));

    (void)vdi_server_set_close(s.server); /* a premature close: whatever it answers */
    (void)vdi_client_set_close(s.client);
    t_session_free(&s);
}

/* ---- the agent's callbacks, by hand ---------------------------------------------------- */

static void test_agent_callbacks(void) {
    fresh(CHAOS_LEDGER_COMPLETIONS); /* completed, taken, called back with the results */
    chaos_ledger_agent(&g_l, 0);
    accepted(0);
    accepted(1);
    chaos_ledger_completed(&g_l, 0, ERROR_SUCCESS, 4096, 17);
    T_EXPECT_EQ(agent_calls(0, ERROR_SUCCESS, 4096, 17), CHAOS_LEDGER_AGENT);
    T_EXPECT_EQ(agent_calls(1, ERROR_OPERATION_ABORTED, 0, -1), CHAOS_LEDGER_AGENT); /* drained */
    chaos_ledger_agent_done(&g_l);
    chaos_ledger_check(&g_l, 2);
    T_EXPECT(quiet());
    T_EXPECT_EQ(chaos_ledger_callbacks(&g_l), 2);
    T_EXPECT_EQ(chaos_ledger_agent_returned(&g_l), 1);

    fresh(0);
    chaos_ledger_agent(&g_l, 0);
    accepted(0);
    agent_calls(0, ERROR_SUCCESS, 0, 0);
    T_EXPECT_EQ(agent_calls(0, ERROR_SUCCESS, 0, 0), CHAOS_LEDGER_AGAIN);
    T_EXPECT(finds("command 0 got a second callback (the agent's)"));

    fresh(0);
    chaos_ledger_agent(&g_l, 0);
    accepted(0);
    chaos_ledger_agent_done(&g_l);
    agent_calls(0, ERROR_OPERATION_ABORTED, 0, 0);
    T_EXPECT(finds("callback of command 0 after the agent returned"));

    fresh(0);
    chaos_ledger_agent(&g_l, 0);
    accepted(2);
    agent_calls(2, ERROR_OPERATION_ABORTED, 512, 0);
    T_EXPECT(finds("failed command 2 reports 512 bytes"));

    fresh(0); /* not this thread's to call back: the agent is actor 3, no send runs here */
    chaos_ledger_agent(&g_l, 3);
    accepted(0);
    agent_calls(0, ERROR_OPERATION_ABORTED, 0, 0);
    T_EXPECT(finds("callback of command 0 on a thread not sending it"));

    fresh(0); /* no agent named: a callback off any send is taken for the agent's */
    accepted(0);
    T_EXPECT_EQ(agent_calls(0, ERROR_OPERATION_ABORTED, 0, 0), CHAOS_LEDGER_AGENT);
    T_EXPECT(quiet());

    fresh(CHAOS_LEDGER_COMPLETIONS);
    chaos_ledger_agent(&g_l, 0);
    accepted(0);
    agent_calls(0, ERROR_SUCCESS, 0, 0);
    T_EXPECT(finds("command 0 completed with a code the client never gave"));

    fresh(0); /* unless the harness notes completions, the codes are its own business */
    chaos_ledger_agent(&g_l, 0);
    accepted(0);
    agent_calls(0, ERROR_SUCCESS, 0, 0);
    T_EXPECT(quiet());

    /* The client completed command 1 one way, the agent called it back another. */
    static const struct {
        uint32_t code, bytes; /* the client's */
        int64_t pos;
        uint32_t cb_code, cb_bytes; /* the callback's */
        int64_t cb_pos;
        const char *finding;
    } differ[] = {
        {ERROR_SUCCESS, 0, 0, ERROR_IO_DEVICE, 0, 0,
         "command 1 got code 1117, which the client never gave it"},
        {ERROR_HANDLE_EOF, 100, 7, ERROR_HANDLE_EOF, 99, 7,
         "command 1: results (99 bytes, position 7) differ from what the client completed "
         "(100, 7)"},
        {ERROR_SUCCESS, 100, 7, ERROR_SUCCESS, 100, 8, "results (100 bytes, position 8)"},
    };
    for (size_t k = 0; k < sizeof differ / sizeof differ[0]; k++) {
        fresh(CHAOS_LEDGER_COMPLETIONS);
        chaos_ledger_agent(&g_l, 0);
        accepted(1);
        chaos_ledger_completed(&g_l, 1, differ[k].code, differ[k].bytes, differ[k].pos);
        agent_calls(1, differ[k].cb_code, differ[k].cb_bytes, differ[k].cb_pos);
        T_EXPECT(finds(differ[k].finding));
    }

    fresh(CHAOS_LEDGER_COMPLETIONS); /* complete_command refused it: the client gave nothing */
    chaos_ledger_agent(&g_l, 0);
    accepted(0);
    chaos_ledger_completed(&g_l, 0, ERROR_SUCCESS, 0, 0);
    chaos_ledger_uncompleted(&g_l, 0);
    agent_calls(0, ERROR_SUCCESS, 0, 0);
    T_EXPECT(finds("command 0 completed with a code the client never gave"));

    fresh(0);
    chaos_ledger_agent(&g_l, 0);
    T_EXPECT_EQ(agent_calls(-1, 0, 0, 0), CHAOS_LEDGER_AGAIN);
    T_EXPECT(finds("callback of command -1, which is not one of the 4"));
}

/* ---- the end of the run ---------------------------------------------------------------- */

static void test_check(void) {
    fresh(0); /* accepted, never called back */
    chaos_ledger_agent(&g_l, 0);
    accepted(3);
    chaos_ledger_check(&g_l, 0);
    T_EXPECT(finds("command 3 got 0 callbacks"));

    fresh(0); /* sent twice, called back once */
    chaos_ledger_agent(&g_l, 0);
    accepted(1);
    accepted(1);
    agent_calls(1, ERROR_OPERATION_ABORTED, 0, 0);
    chaos_ledger_check(&g_l, 0);
    T_EXPECT(finds("command 1 got 1 callbacks for 2 sends"));

    fresh(0); /* a command reused after its callback owes one more */
    chaos_ledger_agent(&g_l, 0);
    accepted(1);
    agent_calls(1, ERROR_OPERATION_ABORTED, 0, 0);
    accepted(1);
    T_EXPECT_EQ(agent_calls(1, ERROR_OPERATION_ABORTED, 0, 0), CHAOS_LEDGER_AGENT);
    chaos_ledger_check(&g_l, 2);
    T_EXPECT(finds("command 0 got 0 callbacks")); /* must_send 2: command 0 was never sent */
}

static void test_reject_codes(void) {
    static const struct {
        int rc;
        uint32_t code;
    } row[] = {{VD_E_ABORT, ERROR_OPERATION_ABORTED},
               {VD_E_PROTOCOL, ERROR_INVALID_HANDLE},
               {VD_E_INVALID, ERROR_INVALID_PARAMETER},
               {VD_E_IO_ERROR, ERROR_IO_DEVICE},
               {VD_E_QUEUE_FULL, ERROR_NO_SYSTEM_RESOURCES}};
    for (size_t i = 0; i < sizeof row / sizeof row[0]; i++) {
        int known = 0;
        T_EXPECT_EQ(chaos_ledger_reject_code(row[i].rc, &known), row[i].code);
        T_EXPECT_EQ(known, 1);
    }
    int known = 1;
    T_EXPECT_EQ(chaos_ledger_reject_code(VD_E_TIMEOUT, &known), 0);
    T_EXPECT_EQ(known, 0);
}

int main(void) {
    test_rejected_sends();
    test_agent_callbacks();
    test_check();
    test_reject_codes();
    chaos_engine_free(g_e);
    return t_done();
}
