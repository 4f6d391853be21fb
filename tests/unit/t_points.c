/* Every schedule point and every fail point compiled into the reference is reached by an
 * ordinary session (plus an aborted one). This is what keeps the chaos engine honest: a
 * point that no run reaches can never be scheduled or failed, and a renamed point would
 * otherwise make the harness tests pass vacuously. */
#include <pthread.h>
#include <string.h>

#include "t_test.h"
#include "vdi/vdi_seams.h"

#define MAX_POINTS 256

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static const char *seen_name[MAX_POINTS];
static unsigned seen_count[MAX_POINTS];
static int nseen;

static void count(const char *name) {
    pthread_mutex_lock(&mu);
    int i = 0;
    while (i < nseen && strcmp(seen_name[i], name) != 0)
        i++;
    if (i == nseen && nseen < MAX_POINTS)
        seen_name[nseen++] = name;
    if (i < MAX_POINTS)
        seen_count[i]++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static unsigned hits(const char *name) {
    unsigned n = 0;
    for (int i = 0; i < nseen; i++)
        if (strcmp(seen_name[i], name) == 0)
            n = seen_count[i];
    return n;
}

/* Block until some thread has reached the point: a handshake, not a sleep. */
static void await_point(const char *name) {
    pthread_mutex_lock(&mu);
    while (hits(name) == 0)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static void on_sched(void *ctx, const char *name) {
    (void)ctx;
    count(name);
}

static int on_fail(void *ctx, const char *name) {
    (void)ctx;
    count(name);
    return 0;
}

static void routine(VDS_Command *cmd) {
    int *calls = cmd->completionContext;
    (*calls)++;
}

typedef struct {
    vdi_client_set *client;
    vdi_client_device *dev;
    VDConfig cfg;
    int rc;
} client_thread;

static void *client_config(void *arg) {
    client_thread *t = arg;
    t->rc = vdi_client_set_get_configuration(t->client, VDI_INFINITE, &t->cfg);
    return NULL;
}

/* Serve commands until the server closes the device. */
static void *client_serve(void *arg) {
    client_thread *t = arg;
    VDC_Command *c;
    int rc;
    while ((rc = vdi_client_device_get_command(t->dev, VDI_INFINITE, &c)) == NOERROR)
        rc = vdi_client_device_complete_command(
            t->dev, c, ERROR_SUCCESS, (uint32_t)(c->commandCode == VDC_Write ? c->size : 0), 0);
    t->rc = rc;
    return NULL;
}

typedef struct {
    vdi_server_set *set;
    int rc;
} agent_thread;

static void *agent(void *arg) {
    agent_thread *a = arg;
    a->rc = vdi_server_set_execute_completion_agent(a->set);
    return NULL;
}

static void normal_session(void) {
    const char *name = t_set_name("points");
    vdi_client_set *client = vdi_client_set_new();
    vdi_server_set *server = vdi_server_set_new();
    T_REQUIRE(client && server);
    VDConfig cfg = {.deviceCount = 1, .features = VDF_RequestComplete, .prefixZoneSize = 512};
    T_EXPECT_OK(vdi_client_set_create(client, name, &cfg));

    /* The client waits for the configuration before the server gives it. */
    client_thread ct = {.client = client};
    pthread_t th;
    T_REQUIRE(pthread_create(&th, NULL, client_config, &ct) == 0);
    await_point("client/get_configuration:before-wait");
    T_EXPECT_OK(vdi_server_set_open(server, NULL, name));
    T_EXPECT_OK(vdi_server_set_begin_configuration(server, VDF_WriteMedia | VDF_CompleteEnabled,
                                                   4096, 0, 65536, 0));
    T_EXPECT_OK(vdi_server_set_request_buffers(server, 65536, 0, 2));
    T_EXPECT_OK(vdi_server_set_end_configuration(server));
    pthread_join(th, NULL);
    T_EXPECT_OK(ct.rc);

    vdi_server_device *sd = NULL;
    T_EXPECT_OK(vdi_server_set_open_device(server, name, &sd));
    T_EXPECT_OK(vdi_client_set_open_device(client, name, &ct.dev));

    /* A send before any agent runs is rejected with its callback on this thread. */
    int calls = 0;
    VDS_Command early = {
        .commandCode = VDC_Flush, .completionRoutine = routine, .completionContext = &calls};
    T_EXPECT_CODE(vdi_server_device_send_command(sd, &early), VD_E_PROTOCOL);
    T_EXPECT_EQ(calls, 1);

    /* The agent starts and waits; the area grows after configuration. */
    agent_thread ag = {.set = server};
    pthread_t ath;
    T_REQUIRE(pthread_create(&ath, NULL, agent, &ag) == 0);
    await_point("server/agent:before-wait");
    T_EXPECT_OK(vdi_server_set_request_buffers(server, 65536, 0, 1));

    /* The client waits for a command before one is sent. */
    pthread_t cth;
    T_REQUIRE(pthread_create(&cth, NULL, client_serve, &ct) == 0);
    await_point("client/get_command:before-wait");
    uint8_t *buf = NULL;
    T_EXPECT_OK(vdi_server_set_allocate_buffer(server, &buf, 65536, 0));
    T_REQUIRE(buf != NULL);
    memset(buf, 0x5a, 65536);
    VDS_Command w = {.commandCode = VDC_Write,
                     .size = 65536,
                     .buffer = buf,
                     .completionRoutine = routine,
                     .completionContext = &calls};
    T_EXPECT_OK(vdi_server_device_send_command(sd, &w));
    T_EXPECT_OK(vdi_server_device_close(sd));
    pthread_join(cth, NULL);
    T_EXPECT_CODE(ct.rc, VD_E_CLOSE);
    pthread_join(ath, NULL);
    T_EXPECT_OK(ag.rc);
    T_EXPECT_EQ(calls, 2);
    T_EXPECT_EQ(w.completionCode, ERROR_SUCCESS);
    T_EXPECT_OK(vdi_server_set_free_buffer(server, buf, 65536));

    /* A secondary attaches and maps a buffer handle. */
    vdi_client_set *sec = vdi_client_set_new();
    T_EXPECT_OK(vdi_client_set_open_in_secondary(sec, name));
    T_EXPECT_OK(vdi_client_set_close(sec));
    vdi_client_set_free(sec);

    T_EXPECT_OK(vdi_server_set_close(server));
    T_EXPECT_OK(vdi_client_set_close(client));
    vdi_server_set_free(server);
    vdi_client_set_free(client);
}

/* An aborted session: signal_abort on both sides, closes that wait and unmap. */
static void aborted_session(void) {
    const char *name = t_set_name("points-abort");
    vdi_client_set *client = vdi_client_set_new();
    vdi_server_set *server = vdi_server_set_new();
    VDConfig cfg = {.deviceCount = 1};
    T_EXPECT_OK(vdi_client_set_create(client, name, &cfg));
    T_EXPECT_OK(vdi_server_set_open(server, NULL, name));
    T_EXPECT_OK(vdi_server_set_signal_abort(server));
    T_EXPECT_OK(vdi_client_set_signal_abort(client));
    T_EXPECT_OK(vdi_server_set_close(server));
    T_EXPECT_OK(vdi_client_set_close(client));
    vdi_server_set_free(server);
    vdi_client_set_free(client);
}

static int check_all_reached(enum vdi_point_kind kind, const char *what) {
    const char *const *names = NULL;
    size_t n = vdi_seam_points(kind, &names);
    T_EXPECT(n > 0);
    int missing = 0;
    for (size_t i = 0; i < n; i++) {
        T_EXPECT(names[i] != NULL && strchr(names[i], '/') && strchr(names[i], ':'));
        for (size_t j = 0; j < i; j++)
            if (strcmp(names[i], names[j]) == 0)
                T_FAILED_AT("%s point '%s' is used at two places", what, names[i]);
        if (hits(names[i]) == 0) {
            T_FAILED_AT("%s point '%s' was never reached", what, names[i]);
            missing++;
        }
    }
    printf("%zu %s points, %d never reached\n", n, what, missing);
    return missing;
}

int main(void) {
    vdi_seams seams = {.sched_point = on_sched, .fail_point = on_fail};
    vdi_seams_install(&seams);
    normal_session();
    aborted_session();
    vdi_seams_install(NULL);
    check_all_reached(VDI_POINT_SCHED, "schedule");
    check_all_reached(VDI_POINT_FAIL, "fail");
    /* Every point the hooks saw is one the library lists: no unlisted point exists. */
    for (int i = 0; i < nseen; i++) {
        const char *const *names = NULL;
        size_t n = vdi_seam_points(VDI_POINT_SCHED, &names), k = 0;
        while (k < n && strcmp(names[k], seen_name[i]) != 0)
            k++;
        if (k == n) {
            n = vdi_seam_points(VDI_POINT_FAIL, &names);
            for (k = 0; k < n && strcmp(names[k], seen_name[i]) != 0;)
                k++;
            if (k == n)
                T_FAILED_AT("point '%s' reached but not listed", seen_name[i]);
        }
    }
    return t_done();
}
