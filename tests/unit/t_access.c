/* The access points (vdi_seams.access_point): a hook before every atomic access of a shared
 * word. Here it proves two things. It reaches the accesses a caller makes between its named
 * schedule points (get_command's reads of the device's words). And acting at one of them
 * finds the window such reads leave: the server sends a command and closes the device just
 * before the client reads server_closed; the command sent before the close must still be
 * delivered before VD_E_CLOSE (VDI-SPEC 4, close_device). A get_command that looked at the ring
 * first and at the close flag second would answer VD_E_CLOSE with the command never delivered. */
#include <pthread.h>

#include "t_test.h"
#include "t_session.h"
#include "vdi_internal.h"

static int expected; /* callbacks due before the set is closed */
static pthread_t main_thread;
static pthread_mutex_t calls_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t calls_cv = PTHREAD_COND_INITIALIZER;
static int calls; /* callbacks delivered by the agent, under calls_mu */

/* What the hook does; touched by the main thread only (the agent's accesses are skipped). */
static struct {
    const void *seen[3]; /* words whose access was reported */
    int hits[3];
    const void *trigger; /* act before this word's next access, once */
    vdi_server_device *sdev;
    int acted;
    int inside;
    long accesses;
} h;

static void routine(VDS_Command *cmd) {
    (void)cmd;
    pthread_mutex_lock(&calls_mu);
    calls++;
    pthread_cond_broadcast(&calls_cv);
    pthread_mutex_unlock(&calls_mu);
}

/* Wait until the agent has delivered n callbacks in all, so nothing is outstanding. */
static int wait_calls(int n) {
    pthread_mutex_lock(&calls_mu);
    while (calls < n)
        pthread_cond_wait(&calls_cv, &calls_mu);
    int seen = calls;
    pthread_mutex_unlock(&calls_mu);
    return seen;
}

static void on_access(void *ctx, const void *word) {
    (void)ctx;
    if (!pthread_equal(pthread_self(), main_thread) || h.inside)
        return;
    h.accesses++;
    for (int i = 0; i < 3; i++)
        if (word == h.seen[i])
            h.hits[i]++;
    if (h.trigger && word == h.trigger && !h.acted) {
        h.acted = 1;
        h.inside = 1;         /* the server's own accesses below are not points of this test */
        static VDS_Command f; /* the server holds it until its callback */
        f = (VDS_Command){.commandCode = VDC_Flush, .completionRoutine = routine};
        T_EXPECT_CODE(vdi_server_device_send_command(h.sdev, &f), NOERROR);
        T_EXPECT_CODE(vdi_server_device_close(h.sdev), NOERROR);
        h.inside = 0;
    }
}

static void up(t_session *s, const char *stem) {
    pthread_mutex_lock(&calls_mu);
    calls = 0; /* no agent runs yet */
    pthread_mutex_unlock(&calls_mu);
    t_session_up(s, stem, (t_session_opts){.configure = 1});
    t_session_start_agent(s);
    /* The agent is running once a send is no longer rejected for want of it. */
    static VDS_Command probe; /* the server holds it until its callback */
    probe = (VDS_Command){.commandCode = VDC_Flush, .completionRoutine = routine};
    int rc;
    while ((rc = vdi_server_device_send_command(s->sdev, &probe)) == VD_E_PROTOCOL)
        ;
    T_REQUIRE(rc == NOERROR);
    pthread_mutex_lock(&calls_mu);
    calls = 0; /* the rejected sends' callbacks ran on this thread */
    pthread_mutex_unlock(&calls_mu);
    VDC_Command *c = NULL;
    T_REQUIRE(vdi_client_device_get_command(s->cdev, VDI_INFINITE, &c) == NOERROR);
    T_REQUIRE(vdi_client_device_complete_command(s->cdev, c, ERROR_SUCCESS, 0, 0) == NOERROR);
    expected = wait_calls(1);
}

static void down(t_session *s) {
    int rc = vdi_server_device_close(s->sdev); /* VD_E_CLOSE: the case closed it */
    T_EXPECT(rc == NOERROR || rc == VD_E_CLOSE);
    VDC_Command *c = NULL; /* the client sees the end of the stream (again) */
    T_EXPECT_CODE(vdi_client_device_get_command(s->cdev, VDI_INFINITE, &c), VD_E_CLOSE);
    T_EXPECT_EQ(wait_calls(expected), expected); /* nothing outstanding */
    T_EXPECT_CODE(vdi_server_set_close(s->server), NOERROR);
    t_session_join_agent(s);
    T_EXPECT_CODE(vdi_client_set_close(s->client), NOERROR);
    t_session_free(s);
}

/* A get_command that finds nothing reports the device's words it reads. */
static void case_reaches_ring_reads(void) {
    t_session s;
    up(&s, "acc-reach");
    memset(&h, 0, sizeof h);
    vdi_dev_shm *ds = &s.client->map.ctl->dev[0]; /* the client's own view */
    h.seen[0] = &ds->cmd_seq;
    h.seen[1] = &ds->server_closed;
    h.seen[2] = &ds->cmd_head;
    VDC_Command *c = NULL;
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev, 0, &c), VD_E_TIMEOUT);
    for (int i = 0; i < 3; i++)
        T_EXPECT(h.hits[i] >= 1);
    T_EXPECT(h.accesses >= 3);
    down(&s);
}

/* The window between the reads: a send and a close land just before server_closed is read. */
static void case_send_and_close_in_window(void) {
    t_session s;
    up(&s, "acc-window");
    memset(&h, 0, sizeof h);
    h.trigger = &s.client->map.ctl->dev[0].server_closed;
    h.sdev = s.sdev;
    VDC_Command *c = NULL;
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev, 0, &c), NOERROR);
    T_REQUIRE(h.acted);
    T_REQUIRE(c != NULL);
    T_EXPECT_EQ(c->commandCode, VDC_Flush);
    T_EXPECT_CODE(vdi_client_device_complete_command(s.cdev, c, ERROR_SUCCESS, 0, 0), NOERROR);
    VDC_Command *next = NULL;
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev, 0, &next), VD_E_CLOSE);
    expected++; /* the flush sent in the window gets its one callback */
    down(&s);
}

/* Installing a table without the hook turns the points off again. */
static void case_off_again(void) {
    vdi_seams none = {0};
    vdi_seams_install(&none);
    t_session s;
    up(&s, "acc-off");
    memset(&h, 0, sizeof h);
    VDC_Command *c = NULL;
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev, 0, &c), VD_E_TIMEOUT);
    T_EXPECT_EQ(h.accesses, 0);
    down(&s);
}

int main(void) {
    main_thread = pthread_self();
    vdi_seams seams = {.access_point = on_access};
    vdi_seams_install(&seams); /* before any thread is inside the library */
    case_reaches_ring_reads();
    case_send_and_close_in_window();
    case_off_again();
    vdi_seams_install(NULL);
    return t_done();
}
