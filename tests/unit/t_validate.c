/* The invariants of a set's private state (ref/src/vdi_validate.c, vdi_seam_*_validate):
 * they hold at every stage of a whole session; each one, broken by hand here, is reported
 * by its own words and mended again; and a debug build of the library stops the process
 * at the first call that leaves with one broken (a release build, NDEBUG, does not check). */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#include "t_test.h"
#include "t_session.h"
#include "vdi_internal.h"

static int calls;

static void routine(VDS_Command *cmd) {
    (void)cmd;
    calls++;
}

static void expect_sound(t_session *s, const char *when) {
    const char *a = vdi_seam_server_validate(s->server), *b = vdi_seam_client_validate(s->client);
    T_EXPECT(a == NULL && b == NULL);
    if (a || b)
        fprintf(stderr, "  %s: %s\n", when, a ? a : b);
}

static void expect_broken(const char *got, const char *want) {
    T_EXPECT(got != NULL && strcmp(got, want) == 0);
    if (!got || strcmp(got, want) != 0)
        fprintf(stderr, "  want \"%s\", got \"%s\"\n", want, got ? got : "(sound)");
}

/* A backup of three commands, checked after each step. */
static void case_sound_session(void) {
    t_session s;
    t_session_up(&s, "vsound", (t_session_opts){0});
    expect_sound(&s, "opened");
    T_REQUIRE(vdi_server_set_begin_configuration(s.server, VDF_WriteMedia, 4096, 0, 65536, 0) ==
              NOERROR);
    T_REQUIRE(vdi_server_set_request_buffers(s.server, 65536, 0, 2) == NOERROR);
    T_REQUIRE(vdi_server_set_end_configuration(s.server) == NOERROR);
    VDConfig cfg;
    T_REQUIRE(vdi_client_set_get_configuration(s.client, 0, &cfg) == NOERROR);
    T_REQUIRE(vdi_server_set_open_device(s.server, s.name, &s.sdev) == NOERROR);
    T_REQUIRE(vdi_client_set_open_device(s.client, s.name, &s.cdev) == NOERROR);
    expect_sound(&s, "configured");
    uint8_t *buf[2];
    T_REQUIRE(vdi_server_set_allocate_buffer(s.server, &buf[0], 4096, 0) == NOERROR);
    T_REQUIRE(vdi_server_set_allocate_buffer(s.server, &buf[1], 8192, 0) == NOERROR);
    expect_sound(&s, "buffers");
    t_session_start_agent(&s);
    static VDS_Command cmd[3];
    for (int i = 0; i < 3; i++) {
        cmd[i] = (VDS_Command){.commandCode = i < 2 ? VDC_Write : VDC_Flush,
                               .size = i < 2 ? 4096 : 0,
                               .buffer = i < 2 ? buf[i] : NULL,
                               .completionRoutine = routine};
        while (vdi_server_device_send_command(s.sdev, &cmd[i]) == VD_E_PROTOCOL)
            calls = 0; /* until the agent runs */
        expect_sound(&s, "sent");
        VDC_Command *c = NULL;
        T_REQUIRE(vdi_client_device_get_command(s.cdev, VDI_INFINITE, &c) == NOERROR);
        expect_sound(&s, "delivered");
        T_REQUIRE(vdi_client_device_complete_command(s.cdev, c, ERROR_SUCCESS, (uint32_t)c->size,
                                                     0) == NOERROR);
    }
    T_EXPECT_OK(vdi_server_device_close(s.sdev));
    VDC_Command *c = NULL;
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev, VDI_INFINITE, &c), VD_E_CLOSE);
    T_EXPECT_CODE(t_session_join_agent(&s), NOERROR);
    T_EXPECT_EQ(calls, 3);
    expect_sound(&s, "agent returned");
    T_EXPECT_OK(vdi_server_set_close(s.server));
    T_EXPECT_OK(vdi_client_set_close(s.client));
    expect_sound(&s, "closed");
    T_EXPECT(vdi_seam_server_validate(NULL) == NULL && vdi_seam_client_validate(NULL) == NULL);
    t_session_free(&s);
}

/* Each invariant broken by hand, reported in its words, then mended: sound again. */
static void case_each_invariant(void) {
    t_session s;
    t_session_up(&s, "veach", (t_session_opts){.configure = 1, .buffers = 2});
    uint8_t *b0, *b1;
    T_REQUIRE(vdi_server_set_allocate_buffer(s.server, &b0, 4096, 0) == NOERROR);
    T_REQUIRE(vdi_server_set_allocate_buffer(s.server, &b1, 4096, 0) == NOERROR);
    vdi_server_set *sv = s.server;
    vdi_client_set *cl = s.client;
    expect_sound(&s, "before");

    int state = sv->state;
    sv->state = 99;
    expect_broken(vdi_seam_server_validate(sv), "server state out of range");
    sv->state = state;
    sv->dev[0].outstanding++;
    expect_broken(vdi_seam_server_validate(sv), "device outstanding count differs from its slots");
    sv->dev[0].outstanding--;
    sv->outstanding++;
    expect_broken(vdi_seam_server_validate(sv), "set outstanding count differs from its devices'");
    sv->outstanding--;
    sv->dev[0].s[3].state = SLOT_SENT; /* an outstanding slot with no command */
    sv->dev[0].outstanding++;
    sv->outstanding++;
    expect_broken(vdi_seam_server_validate(sv), "outstanding command slot without its command");
    static VDS_Command held = {.commandCode = VDC_Flush, .completionRoutine = routine};
    sv->dev[0].s[3].cmd = &held;
    expect_sound(&s, "a slot and its counts");
    sv->dev[0].s[3].state = SLOT_TAKEN; /* taken, but not in the FIFO */
    expect_broken(vdi_seam_server_validate(sv), "taken FIFO count differs from the taken slots");
    sv->taken_n = 1; /* and the FIFO not there */
    expect_broken(vdi_seam_server_validate(sv), "taken FIFO head or count out of range");
    static vdi_taken fifo[VDI_RING * VDI_MAX_DEVICES];
    sv->taken = fifo;
    fifo[0] = (vdi_taken){.dev = 0, .slot = 4};
    expect_broken(vdi_seam_server_validate(sv), "taken FIFO entry names no taken slot");
    fifo[0].slot = 3;
    expect_sound(&s, "a taken slot in the FIFO");
    sv->dev[0].s[4] = (vdi_slot){.cmd = &held, .state = SLOT_TAKEN};
    sv->dev[0].outstanding++;
    sv->outstanding++;
    sv->taken_n = 2;
    fifo[1] = fifo[0];
    expect_broken(vdi_seam_server_validate(sv), "taken FIFO names one slot twice");
    fifo[1].slot = 4;
    expect_sound(&s, "two taken slots in the FIFO");
    sv->dev[0].s[4] = (vdi_slot){0};
    sv->dev[0].outstanding--;
    sv->outstanding--;
    sv->taken_n = 1;
    sv->taken_head = VDI_RING * VDI_MAX_DEVICES;
    expect_broken(vdi_seam_server_validate(sv), "taken FIFO head or count out of range");
    sv->taken_head = 0;
    sv->dev[0].s[3] = (vdi_slot){0};
    sv->dev[0].outstanding--;
    sv->outstanding--;
    sv->taken_n = 0;
    sv->taken = NULL;
    expect_sound(&s, "mended");

    T_REQUIRE(sv->nbufs == 2);
    vdi_buffer first = sv->bufs[0];
    sv->bufs[0] = sv->bufs[1];
    sv->bufs[1] = first;
    expect_broken(vdi_seam_server_validate(sv), "buffers unsorted or overlapping");
    sv->bufs[1] = sv->bufs[0];
    sv->bufs[0] = first;
    sv->bufs[0].size = (uint32_t)(sv->bufs[0].end - sv->bufs[0].data) + 1;
    expect_broken(vdi_seam_server_validate(sv), "buffer zone, data and end out of order");
    sv->bufs[0] = first;
    uint32_t area = sv->area_size;
    sv->area_size = (uint32_t)sv->bufs[1].end - 1;
    expect_broken(vdi_seam_server_validate(sv), "buffer beyond the area");
    sv->area_size = area;
    sv->dev[5].outstanding = 1; /* the set has one device */
    sv->outstanding = 1;
    expect_broken(vdi_seam_server_validate(sv),
                  "outstanding commands on a device beyond the set's");
    sv->dev[5].outstanding = 0;
    sv->outstanding = 0;
    sv->draining = 1;
    expect_broken(vdi_seam_server_validate(sv), "draining with no agent");
    sv->draining = 0;
    expect_sound(&s, "buffers mended");

    int cstate = cl->state;
    cl->state = -1;
    expect_broken(vdi_seam_client_validate(cl), "client state out of range");
    cl->state = cstate;
    cl->dev[0].delivered[5] = 2;
    expect_broken(vdi_seam_client_validate(cl), "delivered mark out of range");
    cl->dev[0].delivered[5] = 0;
    cl->dev[0].opened = 0;
    cl->dev[0].delivered[0] = 1;
    expect_broken(vdi_seam_client_validate(cl), "a command delivered on a device never opened");
    cl->dev[0].delivered[0] = 0;
    cl->dev[0].opened = 1;
    cl->dev[0].getting = 2;
    expect_broken(vdi_seam_client_validate(cl), "two get_command calls on one device");
    cl->dev[0].getting = 0;
    cl->dev[0].last = VDI_RING;
    expect_broken(vdi_seam_client_validate(cl), "last view index out of range");
    cl->dev[0].last = 0;
    expect_sound(&s, "client mended");

    /* the lock held (a thread inside a call): not checked, never waited for */
    sv->state = 99;
    vdi_lock(&sv->g.mu);
    T_EXPECT(vdi_seam_server_validate(sv) == NULL);
    vdi_unlock(&sv->g.mu);
    sv->state = state;
    t_session_free(&s);
}

/* A call that leaves with an invariant broken: a debug build stops the process and says
 * which; a release build (NDEBUG) goes on. */
static void case_debug_build_stops(void) {
    int err[2];
    T_REQUIRE(pipe(err) == 0);
    pid_t pid = fork();
    T_REQUIRE(pid >= 0);
    if (pid == 0) {
        dup2(err[1], 2);
        t_session s;
        t_session_up(&s, "vstop", (t_session_opts){.configure = 1, .buffers = 1});
        s.server->dev[0].outstanding = 7;
        uint8_t *b;
        int rc = vdi_server_set_allocate_buffer(s.server, &b, 4096, 0);
        _exit(rc == NOERROR ? 0 : 1);
    }
    close(err[1]);
    char text[4096] = "";
    size_t n = 0;
    ssize_t got;
    while (n + 1 < sizeof text && (got = read(err[0], text + n, sizeof text - 1 - n)) > 0)
        n += (size_t)got;
    close(err[0]);
    int st;
    T_REQUIRE(waitpid(pid, &st, 0) == pid);
#ifdef NDEBUG
    T_EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
#else
    T_EXPECT(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    T_EXPECT(strstr(text, "vdi: invariant broken at ") != NULL &&
             strstr(text, "device outstanding count differs from its slots") != NULL);
    if (!strstr(text, "invariant broken"))
        fprintf(stderr, "  the child said: %s\n", text);
#endif
}

int main(void) {
    case_sound_session();
    case_each_invariant();
    case_debug_build_stops();
    return t_done();
}
