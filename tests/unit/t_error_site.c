/* Error sites (vdi_seam_*_error_site): every failure a call raises is recorded in its set
 * object with the file, line, code and why, and every abort says what caused it. This is
 * what a failed test or a finding prints to say where the library refused, so each reason
 * below is made to fire and read back; a renamed or silent site would fail here. (The
 * hostile peer's reasons are in t_hostile.c.) */
#include <string.h>

#include "t_test.h"
#include "t_session.h"

static int calls;

static void routine(VDS_Command *cmd) {
    (void)cmd;
    calls++;
}

static void expect_site(const vdi_error_site *e, const char *file, int code, const char *why) {
    T_EXPECT(e->file != NULL && strcmp(e->file, file) == 0 && e->line > 0);
    T_EXPECT_CODE(e->code, code);
    T_EXPECT(e->why != NULL && strstr(e->why, why) != NULL);
    if (!e->why || !strstr(e->why, why))
        fprintf(stderr, "  want a reason with \"%s\", got \"%s\"\n", why, e->why ? e->why : "");
}

static void expect_client_abort(vdi_client_set *c, const char *why) {
    vdi_error_site e;
    T_REQUIRE(vdi_seam_client_error_site(c, NULL, &e) == 0);
    expect_site(&e, "vdi_client.c", VD_E_ABORT, why);
}

static void expect_server_abort(vdi_server_set *s, const char *file, const char *why) {
    vdi_error_site e;
    T_REQUIRE(vdi_seam_server_error_site(s, NULL, &e) == 0);
    expect_site(&e, file, VD_E_ABORT, why);
}

static void up(t_session *s, const char *stem, uint32_t server_timeout, int configure) {
    t_session_up(s, stem,
                 (t_session_opts){.configure = configure, .server_timeout = server_timeout});
}

/* An ordinary refusal: the failure, its code and the condition that did not hold. A NULL
 * handle has nowhere to be recorded. */
static void case_failure_site(void) {
    vdi_server_set *s = vdi_server_set_new();
    T_REQUIRE(s != NULL);
    vdi_error_site f, a;
    T_EXPECT_EQ(vdi_seam_server_error_site(NULL, &f, &a), -1);
    T_REQUIRE(vdi_seam_server_error_site(s, &f, &a) == 0);
    T_EXPECT(f.file == NULL && a.file == NULL); /* nothing failed yet */
    T_EXPECT_CODE(vdi_server_set_begin_configuration(s, VDF_WriteMedia, 4096, 0, 65536, 0),
                  VD_E_PROTOCOL);
    T_REQUIRE(vdi_seam_server_error_site(s, &f, &a) == 0);
    expect_site(&f, "vdi_server.c", VD_E_PROTOCOL, "S_CONNECTED");
    T_EXPECT(a.file == NULL);
    T_EXPECT_CODE(vdi_server_set_execute_completion_agent(s), VD_E_PROTOCOL);
    T_REQUIRE(vdi_seam_server_error_site(s, &f, NULL) == 0);
    expect_site(&f, "vdi_agent.c", VD_E_PROTOCOL, "not configured");
    vdi_server_set_free(s);
}

/* signal_abort on either side, and the other side learning it from shared memory. */
static void case_signal_abort(void) {
    t_session s;
    up(&s, "esig", 0, 0);
    T_EXPECT_OK(vdi_client_set_signal_abort(s.client));
    expect_client_abort(s.client, "signal_abort");
    VDConfig cfg;
    T_EXPECT_CODE(vdi_server_set_get_configuration(s.server, &cfg), VD_E_ABORT);
    expect_server_abort(s.server, "vdi_server.c", "abort published in shared memory");
    t_session_free(&s);

    up(&s, "esig2", 0, 0);
    T_EXPECT_OK(vdi_server_set_signal_abort(s.server));
    expect_server_abort(s.server, "vdi_server.c", "signal_abort");
    T_EXPECT_CODE(vdi_client_set_get_configuration(s.client, 0, &cfg), VD_E_ABORT);
    expect_client_abort(s.client, "abort published in shared memory");
    t_session_free(&s);
}

/* A close before the end aborts the set and says so, on each side; the reason stays after
 * the close (a create or open starts anew). */
static void case_premature_close(void) {
    t_session s;
    up(&s, "eclose", 0, 1);
    T_EXPECT_CODE(vdi_client_set_close(s.client), VD_E_OPEN);
    expect_client_abort(s.client, "close before the end");
    t_session_free(&s);

    up(&s, "eclose2", 0, 1);
    T_EXPECT_CODE(vdi_server_set_close(s.server), VD_E_PROTOCOL);
    expect_server_abort(s.server, "vdi_server.c", "close before Normally Terminated");
    t_session_free(&s);
}

/* A send with no agent running is refused, its callback on this thread, and says why. */
static void case_rejected_send(void) {
    t_session s;
    up(&s, "esend", 0, 1);
    calls = 0;
    VDS_Command f = {.commandCode = VDC_Flush, .completionRoutine = routine};
    T_EXPECT_CODE(vdi_server_device_send_command(s.sdev, &f), VD_E_PROTOCOL);
    T_EXPECT_EQ(calls, 1);
    vdi_error_site e;
    T_REQUIRE(vdi_seam_server_error_site(s.server, &e, NULL) == 0);
    expect_site(&e, "vdi_server.c", VD_E_PROTOCOL, "no agent runs");
    t_session_free(&s);
}

/* The watchdog: a command the client never completes, serverTimeOut 1 ms. */
static void case_watchdog(void) {
    t_session s;
    up(&s, "ewd", 1, 1);
    t_session_start_agent(&s);
    calls = 0;
    VDS_Command f = {.commandCode = VDC_Flush, .completionRoutine = routine};
    while (vdi_server_device_send_command(s.sdev, &f) == VD_E_PROTOCOL) /* until the agent runs */
        calls = 0;
    T_EXPECT_CODE(t_session_join_agent(&s), VD_E_ABORT);
    T_EXPECT_EQ(calls, 1); /* its 995 */
    expect_server_abort(s.server, "vdi_agent.c", "watchdog");
    t_session_free(&s);
}

int main(void) {
    case_failure_site();
    case_signal_abort();
    case_premature_close();
    case_rejected_send();
    case_watchdog();
    return t_done();
}
