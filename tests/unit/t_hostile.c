/* Shared memory is untrusted (VDI-SPEC 7): a peer may write anything into the region at
 * any time. Here a third mapping of the set's object plays that peer and corrupts ring
 * indices, tags, offsets and configuration words; each time the side that reads the bad
 * value must abort the set and answer VD_E_ABORT, never crash, hang or touch memory
 * outside its mapping, and every outstanding command still gets exactly one callback. Each
 * check that refuses a hostile value says why: the abort's reason and site, read back with
 * vdi_seam_*_error_site, name the check that fired, so a test here proves it was that one. */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "chaos/atomics.h"
#include "t_test.h"
#include "t_session.h"
#include "vdi_internal.h"

/* The hostile peer's own view of the control block of the session under test. */
static vdi_ctl_shm *evil;

static int calls;
static uint32_t last_code;

static void routine(VDS_Command *cmd) {
    calls++;
    last_code = cmd->completionCode;
}

/* The set was aborted by the check that says why, at a site in the library's file. */
static void expect_abort(vdi_client_set *client, vdi_server_set *server, const char *file,
                         const char *why) {
    vdi_error_site e = {0};
    if (client)
        T_REQUIRE(vdi_seam_client_error_site(client, NULL, &e) == 0);
    else
        T_REQUIRE(vdi_seam_server_error_site(server, NULL, &e) == 0);
    T_EXPECT(e.file != NULL && strstr(e.file, file) != NULL && e.line > 0);
    T_EXPECT_CODE(e.code, VD_E_ABORT);
    T_EXPECT(e.why != NULL && strcmp(e.why, why) == 0);
    if (!e.why || strcmp(e.why, why) != 0)
        fprintf(stderr, "  want the reason \"%s\", got \"%s\"\n", why, e.why ? e.why : "(none)");
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
static void up(t_session *s, const char *stem, int with_agent, int configure) {
    t_session_up(s, stem, (t_session_opts){.configure = configure, .buffers = 2});
    evil = map_evil(s->name);
    if (!with_agent)
        return;
    t_session_start_agent(s);
    /* The agent is running once a send is no longer rejected for want of it. */
    VDS_Command probe = {.commandCode = 0, .completionRoutine = routine};
    while (vdi_server_device_send_command(s->sdev, &probe) == VD_E_PROTOCOL)
        calls = 0;
    calls = 0;
}

static void down(t_session *s) {
    vdi_server_set_close(s->server);
    t_session_join_agent(s);
    vdi_client_set_close(s->client);
    munmap(evil, sizeof(vdi_ctl_shm));
    t_session_free(s);
}

/* One VDC_Write of 4096 bytes sent on device 0 (the command outlives the call: static). */
static void send_write(t_session *s) {
    uint8_t *buf = NULL;
    T_REQUIRE(vdi_server_set_allocate_buffer(s->server, &buf, 4096, 0) == NOERROR);
    static VDS_Command w;
    w = (VDS_Command){
        .commandCode = VDC_Write, .size = 4096, .buffer = buf, .completionRoutine = routine};
    T_REQUIRE(vdi_server_device_send_command(s->sdev, &w) == NOERROR);
}

/* The server's command head jumps far ahead of the client's tail. */
static void case_cmd_head(void) {
    t_session s;
    up(&s, "hcmd", 1, 1);
    CHAOS_STORE_RELEASE(&evil->dev[0].cmd_head, 1000u);
    VDC_Command *c = NULL;
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev, 0, &c), VD_E_ABORT);
    T_EXPECT(c == NULL);
    expect_abort(s.client, NULL, "vdi_client.c", "cmd ring head out of range");
    vdi_error_site f = {0};
    T_REQUIRE(vdi_seam_client_error_site(s.client, &f, NULL) == 0);
    T_EXPECT_CODE(f.code, VD_E_ABORT); /* the call's own failure says the same */
    T_EXPECT(f.why && strcmp(f.why, "cmd ring head out of range") == 0);
    down(&s);
}

/* A command entry whose buffer offset points outside the area. */
static void case_buffer_offset(void) {
    t_session s;
    up(&s, "hbuf", 1, 1);
    /* Corrupt the entry the next send fills, after it is published but before it is read:
     * publish first, then overwrite the offset, then let the client read. */
    send_write(&s);
    evil->dev[0].cmd[0].buf_off = (uint64_t)VDI_MAX_AREA - 16;
    VDC_Command *c = NULL;
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev, 0, &c), VD_E_ABORT);
    expect_abort(s.client, NULL, "vdi_client.c", "cmd buffer offset out of range");
    down(&s);
    T_EXPECT_EQ(s.agent_rc, VD_E_ABORT);
    T_EXPECT_EQ(calls, 1); /* the outstanding write still got its one 995 */
    T_EXPECT_EQ(last_code, ERROR_OPERATION_ABORTED);
}

/* A completion carrying a tag that matches no outstanding command. */
static void case_completion_tag(void) {
    t_session s;
    up(&s, "htag", 1, 1);
    VDS_Command f = {.commandCode = VDC_Flush, .completionRoutine = routine};
    T_REQUIRE(vdi_server_device_send_command(s.sdev, &f) == NOERROR);
    VDC_Command *c = NULL;
    T_REQUIRE(vdi_client_device_get_command(s.cdev, 0, &c) == NOERROR);
    /* The hostile peer publishes a forged completion instead of the real one. */
    vdi_dev_shm *d = &evil->dev[0];
    d->cpl[0].tag = 0x00ffff3fu;
    d->cpl[0].code = ERROR_SUCCESS;
    CHAOS_STORE_RELEASE(&d->cpl_head, 1u);
    CHAOS_ADD_SEQ(&evil->agent_seq, 1u);
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev, VDI_INFINITE, &c), VD_E_ABORT);
    T_EXPECT_CODE(t_session_join_agent(&s), VD_E_ABORT);
    expect_abort(NULL, s.server, "vdi_agent.c", "cpl tag names no outstanding command");
    expect_abort(s.client, NULL, "vdi_client.c", "abort published in shared memory");
    T_EXPECT_EQ(calls, 1);
    T_EXPECT_EQ(last_code, ERROR_OPERATION_ABORTED);
    down(&s);
}

/* A configuration the server never wrote: an impossible block size. */
static void case_config(void) {
    t_session s;
    up(&s, "hcfg", 0, 0);
    evil->cfg.blockSize = 3;
    evil->area_size = 0;
    CHAOS_STORE_RELEASE(&evil->configured, 1u);
    VDConfig cfg;
    memset(&cfg, 0x77, sizeof cfg);
    T_EXPECT_CODE(vdi_client_set_get_configuration(s.client, 0, &cfg), VD_E_ABORT);
    T_EXPECT_EQ(cfg.deviceCount, 0x77777777u); /* a failed call leaves *cfg unchanged */
    expect_abort(s.client, NULL, "vdi_client.c",
                 "configuration: block size or max transfer size out of range");
    down(&s);
}

/* An area size beyond the maximum; one in range but beyond the object's real size (a touch
 * would be SIGBUS). */
static void case_area_size(void) {
    static const struct {
        uint32_t size;
        const char *why;
    } bad[] = {{0xffff0000u, "area size out of range"},
               {64u << 20, "area size beyond the shared object"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        t_session s;
        up(&s, "harea", 0, 0);
        evil->area_size = bad[i].size;
        evil->cfg.blockSize = 4096;
        evil->cfg.maxTransferSize = 65536;
        CHAOS_STORE_RELEASE(&evil->configured, 1u);
        VDConfig cfg;
        T_EXPECT_CODE(vdi_client_set_get_configuration(s.client, 0, &cfg), VD_E_ABORT);
        expect_abort(s.client, NULL, "vdi_client.c", bad[i].why);
        down(&s);
    }
}

/* Forge the next command entry of device 0 and publish it. */
static void forge_command(uint32_t at, uint32_t tag, int32_t code, int32_t size, uint64_t buf_off) {
    vdi_dev_shm *d = &evil->dev[0];
    d->cmd[at % VDI_RING] =
        (vdi_cmd_shm){.tag = tag, .code = code, .size = size, .buf_off = buf_off};
    CHAOS_STORE_RELEASE(&d->cmd_head, at + 1);
}

/* Forged command entries, one check each: a slot the client still holds, an unknown code,
 * a data command of size 0, a buffer in range but beyond the area. */
static void case_forged_commands(void) {
    static const struct {
        const char *why;
        int held;
        int32_t code, size;
        uint64_t buf_off; /* UINT64_MAX - 1: just beyond the area */
    } forged[] = {
        {"cmd tag names a bad or held slot", 1, VDC_Flush, 0, VDI_NO_BUFFER},
        {"cmd code unknown", 0, 99, 0, VDI_NO_BUFFER},
        {"cmd entry size out of range, or a data command without a buffer", 0, VDC_Write, 0, 0},
        {"cmd buffer beyond the area", 0, VDC_Flush, 0, UINT64_MAX - 1},
    };
    for (size_t i = 0; i < sizeof forged / sizeof forged[0]; i++) {
        t_session s;
        up(&s, "hforge", 1, 1);
        VDC_Command *c = NULL;
        uint32_t at = 0;
        VDS_Command f = {.commandCode = VDC_Flush, .completionRoutine = routine};
        if (forged[i].held) { /* the client holds slot 0: a second entry names it again */
            T_REQUIRE(vdi_server_device_send_command(s.sdev, &f) == NOERROR);
            T_REQUIRE(vdi_client_device_get_command(s.cdev, 0, &c) == NOERROR);
            at = 1;
        }
        uint64_t off = forged[i].buf_off;
        if (off == UINT64_MAX - 1)
            off = evil->area_size + (uint64_t)VDI_AREA_ALIGN;
        forge_command(at, forged[i].held ? evil->dev[0].cmd[0].tag : 0, forged[i].code,
                      forged[i].size, off);
        T_EXPECT_CODE(vdi_client_device_get_command(s.cdev, 0, &c), VD_E_ABORT);
        expect_abort(s.client, NULL, "vdi_client.c", forged[i].why);
        down(&s);
    }
}

/* The completion ring: a head far beyond its tail; a completion of more bytes than its
 * command carried; on the client, a tail that leaves the ring no room. */
static void case_forged_completions(void) {
    for (int which = 0; which < 3; which++) {
        t_session s;
        up(&s, "hcpl", 1, 1);
        send_write(&s);
        VDC_Command *c = NULL;
        T_REQUIRE(vdi_client_device_get_command(s.cdev, 0, &c) == NOERROR);
        vdi_dev_shm *d = &evil->dev[0];
        if (which == 2) {
            CHAOS_STORE_RELEASE(&d->cpl_tail, 0u - 100u);
            T_EXPECT_CODE(vdi_client_device_complete_command(s.cdev, c, 0, 4096, 0), VD_E_ABORT);
            expect_abort(s.client, NULL, "vdi_client.c", "cpl ring full: its tail is out of range");
            down(&s);
            continue;
        }
        if (which == 0) {
            CHAOS_STORE_RELEASE(&d->cpl_head, 1000u);
        } else {
            d->cpl[0] = (vdi_cpl_shm){.tag = d->cmd[0].tag, .bytes = 1u << 20};
            CHAOS_STORE_RELEASE(&d->cpl_head, 1u);
        }
        CHAOS_ADD_SEQ(&evil->agent_seq, 1u);
        CHAOS_ADD_SEQ(&evil->agent_seq, 1u);
        T_EXPECT_CODE(t_session_join_agent(&s), VD_E_ABORT);
        expect_abort(NULL, s.server, "vdi_agent.c",
                     which == 0 ? "cpl ring head out of range" : "cpl entry size out of range");
        T_EXPECT_EQ(calls, 1); /* the write still got its one 995 */
        T_EXPECT_EQ(last_code, ERROR_OPERATION_ABORTED);
        down(&s);
    }
}

/* A device count the creator never wrote: the server refuses the set. */
static void case_device_count(void) {
    const char *name = t_set_name("hdev");
    vdi_client_set *client = vdi_client_set_new();
    vdi_server_set *server = vdi_server_set_new();
    VDConfig cfg = {.deviceCount = 1};
    T_REQUIRE(vdi_client_set_create(client, name, &cfg) == NOERROR);
    vdi_ctl_shm *peer = map_evil(name);
    peer->cfg.deviceCount = 1000;
    T_EXPECT_CODE(vdi_server_set_open(server, NULL, name), VD_E_ABORT);
    vdi_error_site f = {0};
    T_REQUIRE(vdi_seam_server_error_site(server, &f, NULL) == 0);
    T_EXPECT(f.file && strstr(f.file, "vdi_server.c") && f.why &&
             strcmp(f.why, "device count out of range") == 0);
    /* the hostile count was not kept (debug builds stop at the open's exit otherwise) */
    T_EXPECT(vdi_seam_server_validate(server) == NULL);
    munmap(peer, sizeof *peer);
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
        vdi_ctl_shm *peer = map_evil(name);
        CHAOS_STORE_SEQ(&peer->dev_lock, 1u); /* taken, and never given back */
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
    expect_abort(NULL, server, "vdi_server.c", "the client died holding the device table");
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
    case_forged_commands();
    case_forged_completions();
    case_device_count();
    return t_done();
}
