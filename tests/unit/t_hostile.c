/* Shared memory is untrusted (VDI-SPEC 7): a peer may write anything into the region at
 * any time. Here a third mapping of the set's object plays that peer and corrupts ring
 * indices, tags, offsets and configuration words; each time the side that reads the bad
 * value must abort the set and answer VD_E_ABORT, never crash, hang or touch memory
 * outside its mapping, and every outstanding command still gets exactly one callback. */
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "t_test.h"
#include "vdi_internal.h"

typedef struct {
    const char *name;
    vdi_client_set *client;
    vdi_server_set *server;
    vdi_client_device *cdev;
    vdi_server_device *sdev;
    vdi_ctl_shm *evil; /* the hostile peer's own view of the control block */
    pthread_t agent;
    int agent_rc;
    int agent_started;
} session;

static int calls;
static uint32_t last_code;

static void routine(VDS_Command *cmd) {
    calls++;
    last_code = cmd->completionCode;
}

static void *agent_main(void *arg) {
    session *s = arg;
    s->agent_rc = vdi_server_set_execute_completion_agent(s->server);
    return NULL;
}

static vdi_ctl_shm *map_evil(const char *name) {
    char path[256];
    T_REQUIRE(vdi_seam_shm_name(path, sizeof path, NULL, name) == 0);
    int fd = shm_open(path, O_RDWR, 0);
    T_REQUIRE(fd >= 0);
    void *p = mmap(NULL, sizeof(vdi_ctl_shm), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    T_REQUIRE(p != MAP_FAILED);
    return p;
}

/* Up to Active with one device and (optionally) a running agent. */
static void up(session *s, const char *stem, int with_agent, int configure) {
    memset(s, 0, sizeof *s);
    s->name = t_set_name(stem);
    s->client = vdi_client_set_new();
    s->server = vdi_server_set_new();
    VDConfig cfg = {.deviceCount = 1};
    T_REQUIRE(vdi_client_set_create(s->client, s->name, &cfg) == NOERROR);
    T_REQUIRE(vdi_server_set_open(s->server, NULL, s->name) == NOERROR);
    s->evil = map_evil(s->name);
    if (!configure)
        return;
    T_REQUIRE(vdi_server_set_begin_configuration(s->server, VDF_WriteMedia, 4096, 0, 65536, 0) ==
              NOERROR);
    T_REQUIRE(vdi_server_set_request_buffers(s->server, 65536, 0, 2) == NOERROR);
    T_REQUIRE(vdi_server_set_end_configuration(s->server) == NOERROR);
    T_REQUIRE(vdi_client_set_get_configuration(s->client, 0, &cfg) == NOERROR);
    T_REQUIRE(vdi_server_set_open_device(s->server, s->name, &s->sdev) == NOERROR);
    T_REQUIRE(vdi_client_set_open_device(s->client, s->name, &s->cdev) == NOERROR);
    if (with_agent) {
        T_REQUIRE(pthread_create(&s->agent, NULL, agent_main, s) == 0);
        s->agent_started = 1;
        /* The agent is running once a send is no longer rejected for want of it. */
        VDS_Command probe = {.commandCode = 0, .completionRoutine = routine};
        while (vdi_server_device_send_command(s->sdev, &probe) == VD_E_PROTOCOL)
            calls = 0;
        calls = 0;
    }
}

static void down(session *s) {
    vdi_server_set_close(s->server);
    if (s->agent_started)
        pthread_join(s->agent, NULL);
    vdi_client_set_close(s->client);
    munmap(s->evil, sizeof(vdi_ctl_shm));
    vdi_server_set_free(s->server);
    vdi_client_set_free(s->client);
}

/* The server's command head jumps far ahead of the client's tail. */
static void case_cmd_head(void) {
    session s;
    up(&s, "hcmd", 1, 1);
    __atomic_store_n(&s.evil->dev[0].cmd_head, 1000u, __ATOMIC_RELEASE);
    VDC_Command *c = NULL;
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev, 0, &c), VD_E_ABORT);
    T_EXPECT(c == NULL);
    down(&s);
}

/* A command entry whose buffer offset points outside the area. */
static void case_buffer_offset(void) {
    session s;
    up(&s, "hbuf", 1, 1);
    uint8_t *buf = NULL;
    T_REQUIRE(vdi_server_set_allocate_buffer(s.server, &buf, 4096, 0) == NOERROR);
    VDS_Command w = {
        .commandCode = VDC_Write, .size = 4096, .buffer = buf, .completionRoutine = routine};
    /* Corrupt the entry the next send fills, after it is published but before it is read:
     * publish first, then overwrite the offset, then let the client read. */
    T_REQUIRE(vdi_server_device_send_command(s.sdev, &w) == NOERROR);
    s.evil->dev[0].cmd[0].buf_off = (uint64_t)VDI_MAX_AREA - 16;
    VDC_Command *c = NULL;
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev, 0, &c), VD_E_ABORT);
    down(&s);
    T_EXPECT_EQ(s.agent_rc, VD_E_ABORT);
    T_EXPECT_EQ(calls, 1); /* the outstanding write still got its one 995 */
    T_EXPECT_EQ(last_code, ERROR_OPERATION_ABORTED);
}

/* A completion carrying a tag that matches no outstanding command. */
static void case_completion_tag(void) {
    session s;
    up(&s, "htag", 1, 1);
    VDS_Command f = {.commandCode = VDC_Flush, .completionRoutine = routine};
    T_REQUIRE(vdi_server_device_send_command(s.sdev, &f) == NOERROR);
    VDC_Command *c = NULL;
    T_REQUIRE(vdi_client_device_get_command(s.cdev, 0, &c) == NOERROR);
    /* The hostile peer publishes a forged completion instead of the real one. */
    vdi_dev_shm *d = &s.evil->dev[0];
    d->cpl[0].tag = 0x00ffff3fu;
    d->cpl[0].code = ERROR_SUCCESS;
    __atomic_store_n(&d->cpl_head, 1u, __ATOMIC_RELEASE);
    __atomic_fetch_add(&s.evil->agent_seq, 1u, __ATOMIC_SEQ_CST);
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev, VDI_INFINITE, &c), VD_E_ABORT);
    pthread_join(s.agent, NULL);
    s.agent_started = 0;
    T_EXPECT_CODE(s.agent_rc, VD_E_ABORT);
    T_EXPECT_EQ(calls, 1);
    T_EXPECT_EQ(last_code, ERROR_OPERATION_ABORTED);
    down(&s);
}

/* A configuration the server never wrote: an impossible block size. */
static void case_config(void) {
    session s;
    up(&s, "hcfg", 0, 0);
    s.evil->cfg.blockSize = 3;
    s.evil->area_size = 0;
    __atomic_store_n(&s.evil->configured, 1u, __ATOMIC_RELEASE);
    VDConfig cfg;
    memset(&cfg, 0x77, sizeof cfg);
    T_EXPECT_CODE(vdi_client_set_get_configuration(s.client, 0, &cfg), VD_E_ABORT);
    T_EXPECT_EQ(cfg.deviceCount, 0x77777777u); /* a failed call leaves *cfg unchanged */
    down(&s);
}

/* An area size beyond the maximum. */
static void case_area_size(void) {
    session s;
    up(&s, "harea", 0, 0);
    s.evil->area_size = 0xffff0000u;
    s.evil->cfg.blockSize = 4096;
    s.evil->cfg.maxTransferSize = 65536;
    __atomic_store_n(&s.evil->configured, 1u, __ATOMIC_RELEASE);
    VDConfig cfg;
    T_EXPECT_CODE(vdi_client_set_get_configuration(s.client, 0, &cfg), VD_E_ABORT);
    down(&s);
}

/* A device count the creator never wrote: the server refuses the set. */
static void case_device_count(void) {
    const char *name = t_set_name("hdev");
    vdi_client_set *client = vdi_client_set_new();
    vdi_server_set *server = vdi_server_set_new();
    VDConfig cfg = {.deviceCount = 1};
    T_REQUIRE(vdi_client_set_create(client, name, &cfg) == NOERROR);
    vdi_ctl_shm *evil = map_evil(name);
    evil->cfg.deviceCount = 1000;
    T_EXPECT_CODE(vdi_server_set_open(server, NULL, name), VD_E_ABORT);
    munmap(evil, sizeof *evil);
    vdi_client_set_close(client);
    vdi_server_set_free(server);
    vdi_client_set_free(client);
}

/* The creator (a child process) dies holding the device-table lock in the shared region:
 * the server's open_device of a second device must not wait forever but notice the death
 * (its liveness slices) and answer VD_E_ABORT. Without that, this test hangs. */
static void case_dead_holder_of_device_lock(void) {
    const char *name = t_set_name("hlock");
    int up_[2], down_[2];
    T_REQUIRE(pipe(up_) == 0 && pipe(down_) == 0);
    pid_t pid = fork();
    T_REQUIRE(pid >= 0);
    char c = 0;
    if (pid == 0) {
        vdi_client_set *client = vdi_client_set_new();
        VDConfig cfg = {.deviceCount = 2};
        if (vdi_client_set_create(client, name, &cfg) != NOERROR)
            _exit(1);
        if (write(up_[1], "c", 1) != 1 || read(down_[0], &c, 1) != 1)
            _exit(1);
        vdi_ctl_shm *evil = map_evil(name);
        __atomic_store_n(&evil->dev_lock, 1u, __ATOMIC_SEQ_CST); /* taken, and never given back */
        _exit(0);
    }
    T_REQUIRE(read(up_[0], &c, 1) == 1);
    vdi_server_set *server = vdi_server_set_new();
    T_REQUIRE(vdi_server_set_open(server, NULL, name) == NOERROR);
    T_REQUIRE(vdi_server_set_begin_configuration(server, VDF_WriteMedia, 4096, 0, 65536, 0) ==
              NOERROR);
    T_REQUIRE(vdi_server_set_request_buffers(server, 65536, 0, 1) == NOERROR);
    T_REQUIRE(vdi_server_set_end_configuration(server) == NOERROR);
    T_REQUIRE(write(down_[1], "g", 1) == 1);
    int st = 0;
    T_REQUIRE(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    vdi_server_device *dev = NULL;
    T_EXPECT_CODE(vdi_server_set_open_device(server, "second", &dev), VD_E_ABORT);
    T_EXPECT(dev == NULL);
    T_EXPECT_OK(vdi_server_set_close(server)); /* and unlinks the dead creator's name */
    vdi_server_set_free(server);
    close(up_[0]);
    close(up_[1]);
    close(down_[0]);
    close(down_[1]);
}

int main(void) {
    case_dead_holder_of_device_lock();
    case_cmd_head();
    case_buffer_offset();
    case_completion_tag();
    case_config();
    case_area_size();
    case_device_count();
    return t_done();
}
