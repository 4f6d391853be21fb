/* Error sites (vdi_seam_*_error_site): every failure a call raises is recorded in its set
 * object with the file, line, code and why, and every abort says what caused it. This is
 * what a failed test or a finding prints to say where the library refused, so each reason
 * below is made to fire and read back; a renamed or silent site would fail here. (The
 * hostile peer's reasons are in t_hostile.c.) */
#include <pthread.h>
#include <string.h>

#include "t_test.h"

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

typedef struct {
    const char *name;
    vdi_client_set *client;
    vdi_server_set *server;
    vdi_client_device *cdev;
    vdi_server_device *sdev;
    pthread_t agent;
    int agent_rc;
} session;

static void *agent_main(void *arg) {
    session *s = arg;
    s->agent_rc = vdi_server_set_execute_completion_agent(s->server);
    return NULL;
}

/* Created and opened; configured with devices open when asked. */
static void up(session *s, const char *stem, uint32_t server_timeout, int configure) {
    memset(s, 0, sizeof *s);
    s->name = t_set_name(stem);
    s->client = vdi_client_set_new();
    s->server = vdi_server_set_new();
    t_watch(s->client, s->server);
    VDConfig cfg = {.deviceCount = 1, .serverTimeOut = server_timeout};
    T_REQUIRE(vdi_client_set_create(s->client, s->name, &cfg) == NOERROR);
    T_REQUIRE(vdi_server_set_open(s->server, NULL, s->name) == NOERROR);
    if (!configure)
        return;
    T_REQUIRE(vdi_server_set_begin_configuration(s->server, VDF_WriteMedia, 4096, 0, 65536, 0) ==
              NOERROR);
    T_REQUIRE(vdi_server_set_end_configuration(s->server) == NOERROR);
    T_REQUIRE(vdi_client_set_get_configuration(s->client, 0, &cfg) == NOERROR);
    T_REQUIRE(vdi_server_set_open_device(s->server, s->name, &s->sdev) == NOERROR);
    T_REQUIRE(vdi_client_set_open_device(s->client, s->name, &s->cdev) == NOERROR);
}

static void down(session *s) {
    t_watch(NULL, NULL);
    vdi_server_set_free(s->server);
    vdi_client_set_free(s->client);
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
    session s;
    up(&s, "esig", 0, 0);
    T_EXPECT_OK(vdi_client_set_signal_abort(s.client));
    expect_client_abort(s.client, "signal_abort");
    VDConfig cfg;
    T_EXPECT_CODE(vdi_server_set_get_configuration(s.server, &cfg), VD_E_ABORT);
    expect_server_abort(s.server, "vdi_server.c", "abort published in shared memory");
    down(&s);

    up(&s, "esig2", 0, 0);
    T_EXPECT_OK(vdi_server_set_signal_abort(s.server));
    expect_server_abort(s.server, "vdi_server.c", "signal_abort");
    T_EXPECT_CODE(vdi_client_set_get_configuration(s.client, 0, &cfg), VD_E_ABORT);
    expect_client_abort(s.client, "abort published in shared memory");
    down(&s);
}

/* A close before the end aborts the set and says so, on each side; the reason stays after
 * the close (a create or open starts anew). */
static void case_premature_close(void) {
    session s;
    up(&s, "eclose", 0, 1);
    T_EXPECT_CODE(vdi_client_set_close(s.client), VD_E_OPEN);
    expect_client_abort(s.client, "close before the end");
    down(&s);

    up(&s, "eclose2", 0, 1);
    T_EXPECT_CODE(vdi_server_set_close(s.server), VD_E_PROTOCOL);
    expect_server_abort(s.server, "vdi_server.c", "close before Normally Terminated");
    down(&s);
}

/* A send with no agent running is refused, its callback on this thread, and says why. */
static void case_rejected_send(void) {
    session s;
    up(&s, "esend", 0, 1);
    calls = 0;
    VDS_Command f = {.commandCode = VDC_Flush, .completionRoutine = routine};
    T_EXPECT_CODE(vdi_server_device_send_command(s.sdev, &f), VD_E_PROTOCOL);
    T_EXPECT_EQ(calls, 1);
    vdi_error_site e;
    T_REQUIRE(vdi_seam_server_error_site(s.server, &e, NULL) == 0);
    expect_site(&e, "vdi_server.c", VD_E_PROTOCOL, "no agent runs");
    down(&s);
}

/* The watchdog: a command the client never completes, serverTimeOut 1 ms. */
static void case_watchdog(void) {
    session s;
    up(&s, "ewd", 1, 1);
    T_REQUIRE(pthread_create(&s.agent, NULL, agent_main, &s) == 0);
    calls = 0;
    VDS_Command f = {.commandCode = VDC_Flush, .completionRoutine = routine};
    while (vdi_server_device_send_command(s.sdev, &f) == VD_E_PROTOCOL) /* until the agent runs */
        calls = 0;
    pthread_join(s.agent, NULL);
    T_EXPECT_CODE(s.agent_rc, VD_E_ABORT);
    T_EXPECT_EQ(calls, 1); /* its 995 */
    expect_server_abort(s.server, "vdi_agent.c", "watchdog");
    down(&s);
}

int main(void) {
    case_failure_site();
    case_signal_abort();
    case_premature_close();
    case_rejected_send();
    case_watchdog();
    return t_done();
}
