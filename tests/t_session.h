/* One set, both sides in this process, for the unit tests that drive the reference by
 * hand: t_session_up creates the client's set and opens the server's (watched by t_test.h,
 * so a failed check prints their error sites), and with a configuration, configures it
 * and opens device 0 on both sides. The agent runs on a thread of its own when a test
 * starts it. Include after t_test.h. */
#ifndef T_SESSION_H
#define T_SESSION_H

#include <pthread.h>
#include <string.h>

typedef struct t_session {
    const char *name;
    vdi_client_set *client;
    vdi_server_set *server;
    vdi_client_device *cdev;
    vdi_server_device *sdev;
    pthread_t agent;
    int agent_rc;
    int agent_started;
} t_session;

typedef struct t_session_opts {
    int configure;           /* configure and open device 0 on both sides */
    uint32_t server_timeout; /* VDConfig.serverTimeOut (0: the default) */
    uint32_t buffers;        /* request_buffers of 64 KiB, when not 0 */
} t_session_opts;

static inline void t_session_up(t_session *s, const char *stem, t_session_opts o) {
    memset(s, 0, sizeof *s);
    s->name = t_set_name(stem);
    s->client = vdi_client_set_new();
    s->server = vdi_server_set_new();
    T_REQUIRE(s->client != NULL && s->server != NULL);
    t_watch(s->client, s->server);
    VDConfig cfg = {.deviceCount = 1, .serverTimeOut = o.server_timeout};
    T_REQUIRE(vdi_client_set_create(s->client, s->name, &cfg) == NOERROR);
    T_REQUIRE(vdi_server_set_open(s->server, NULL, s->name) == NOERROR);
    if (!o.configure)
        return;
    T_REQUIRE(vdi_server_set_begin_configuration(s->server, VDF_WriteMedia, 4096, 0, 65536, 0) ==
              NOERROR);
    if (o.buffers)
        T_REQUIRE(vdi_server_set_request_buffers(s->server, 65536, 0, o.buffers) == NOERROR);
    T_REQUIRE(vdi_server_set_end_configuration(s->server) == NOERROR);
    T_REQUIRE(vdi_client_set_get_configuration(s->client, 0, &cfg) == NOERROR);
    T_REQUIRE(vdi_server_set_open_device(s->server, s->name, &s->sdev) == NOERROR);
    T_REQUIRE(vdi_client_set_open_device(s->client, s->name, &s->cdev) == NOERROR);
}

static inline void *t_session_agent_main(void *arg) {
    t_session *s = arg;
    s->agent_rc = vdi_server_set_execute_completion_agent(s->server);
    return NULL;
}

/* The agent on a thread; the test knows it runs once a send is no longer VD_E_PROTOCOL. */
static inline void t_session_start_agent(t_session *s) {
    T_REQUIRE(pthread_create(&s->agent, NULL, t_session_agent_main, s) == 0);
    s->agent_started = 1;
}

/* The agent's return code, once it has returned. */
static inline int t_session_join_agent(t_session *s) {
    if (s->agent_started)
        pthread_join(s->agent, NULL);
    s->agent_started = 0;
    return s->agent_rc;
}

/* Unwatched and freed (a test closes what it wants closed first). */
static inline void t_session_free(t_session *s) {
    t_watch(NULL, NULL);
    vdi_server_set_free(s->server);
    vdi_client_set_free(s->client);
}

#endif
