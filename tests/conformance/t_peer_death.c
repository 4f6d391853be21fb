/* Peer death (VDI-SPEC 5.3 "Peer death", 8.4): SIGKILL of either side while the other is
 * blocked makes the survivor's blocked call return VD_E_ABORT and its commands end in
 * 995; the survivor's close leaves no shared object behind; a peer that exits normally
 * after a finished backup is not dead. Processes synchronise with pipes, never sleeps. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "t_test.h"
#include "t_vdi.h"
#include "vdi/vdi_seams.h"

typedef struct blocked_get {
    vdi_client_device *dev;
    int rc;
} blocked_get;

static void *get_forever(void *arg) {
    blocked_get *b = arg;
    VDC_Command *c = NULL;
    b->rc = vdi_client_device_get_command(b->dev, VDI_INFINITE, &c);
    return NULL;
}

static char g_name[96];

/* The server (child) is killed while the client (parent, the creator) waits in
 * get_command and holds a delivered Write. */
static void case_server_dies(void) {
    snprintf(g_name, sizeof g_name, "%s", t_set_name("pd-srv"));
    vdi_client_set *cl = vdi_client_set_new();
    VDConfig cfg;
    t_config_default(&cfg, 2);
    T_REQUIRE(vdi_client_set_create(cl, g_name, &cfg) == NOERROR);
    int up[2];
    T_REQUIRE(pipe(up) == 0);
    pid_t pid = fork();
    T_REQUIRE(pid >= 0);
    if (pid == 0) {
        close(up[0]);
        t_set s;
        t_set_init(&s, "unused", 2);
        snprintf(s.name, sizeof s.name, "%s", g_name);
        t_set_server_open(&s);
        t_set_server_begin(&s);
        t_set_server_end(&s);
        t_must(vdi_server_set_open_device(s.server, g_name, &s.sdev[0]), NOERROR, "open_device");
        t_set_start_agent(&s);
        uint8_t *b = NULL;
        t_must(vdi_server_set_allocate_buffer(s.server, &b, 4096, 0), NOERROR, "allocate");
        memset(b, 0x6b, 4096);
        t_cmd tc;
        t_cmd_init(&tc, &s.ledger, VDC_Write, 4096, 0, b);
        t_must(t_send(s.sdev[0], &tc), NOERROR, "send");
        t_put(up[1], 'r');
        t_park();
    }
    close(up[1]);
    T_REQUIRE(t_get(up[0]) == 'r');
    T_REQUIRE(vdi_client_set_get_configuration(cl, VDI_INFINITE, &cfg) == NOERROR);
    vdi_client_device *dev = NULL;
    T_REQUIRE(vdi_client_set_open_device(cl, g_name, &dev) == NOERROR);
    VDC_Command *held = NULL;
    T_REQUIRE(vdi_client_device_get_command(dev, VDI_INFINITE, &held) == NOERROR);
    /* a secondary watches the server too (5.3) */
    vdi_client_set *sec = vdi_client_set_new();
    T_REQUIRE(vdi_client_set_open_in_secondary(sec, g_name) == NOERROR);
    vdi_client_device *sdev = NULL;
    T_REQUIRE(vdi_client_set_open_device(sec, "d1", &sdev) == NOERROR);
    blocked_get bg = {dev, 0}, bs = {sdev, 0};
    pthread_t th = t_spawn(get_forever, &bg);
    pthread_t ts = t_spawn(get_forever, &bs);
    T_REQUIRE(kill(pid, SIGKILL) == 0);
    T_EXPECT_EQ(t_wait_child(pid), 128 + SIGKILL);
    t_join(th);
    t_join(ts);
    T_EXPECT_CODE(bg.rc, VD_E_ABORT);
    T_EXPECT_CODE(bs.rc, VD_E_ABORT);
    T_EXPECT_OK(vdi_client_set_close(sec));
    vdi_client_set_free(sec);
    /* mid-command: the client's mapping stays valid until its own close */
    T_EXPECT_EQ(held->buffer[0], 0x6b);
    T_EXPECT_EQ(held->buffer[4095], 0x6b);
    T_EXPECT_CODE(vdi_client_device_complete_command(dev, held, ERROR_SUCCESS, 4096, 0),
                  VD_E_ABORT);
    T_EXPECT_CODE(vdi_client_set_get_configuration(cl, 0, &cfg), VD_E_ABORT);
    T_EXPECT_OK(vdi_client_set_close(cl));
    vdi_client_set_free(cl);
    T_EXPECT_EQ(t_shm_count(g_name), 0);
    close(up[0]);
}

/* The server (child) opens and dies before ending its configuration: the client
 * waiting in get_configuration wakes with ABORT. */
static void case_server_dies_configuring(void) {
    snprintf(g_name, sizeof g_name, "%s", t_set_name("pd-cfg"));
    vdi_client_set *cl = vdi_client_set_new();
    VDConfig cfg;
    t_config_default(&cfg, 1);
    T_REQUIRE(vdi_client_set_create(cl, g_name, &cfg) == NOERROR);
    int up[2];
    T_REQUIRE(pipe(up) == 0);
    pid_t pid = fork();
    T_REQUIRE(pid >= 0);
    if (pid == 0) {
        close(up[0]);
        vdi_server_set *sv = vdi_server_set_new();
        t_must(vdi_server_set_open(sv, NULL, g_name), NOERROR, "server open");
        t_put(up[1], 'o');
        t_park();
    }
    close(up[1]);
    T_REQUIRE(t_get(up[0]) == 'o');
    T_REQUIRE(kill(pid, SIGKILL) == 0);
    T_EXPECT_EQ(t_wait_child(pid), 128 + SIGKILL);
    T_EXPECT_CODE(vdi_client_set_get_configuration(cl, VDI_INFINITE, &cfg), VD_E_ABORT);
    T_EXPECT_OK(vdi_client_set_close(cl));
    vdi_client_set_free(cl);
    T_EXPECT_EQ(t_shm_count(g_name), 0);
    close(up[0]);
}

/* The client (child, the creator) is killed while the server's agent waits for the
 * completion of a command the client holds: the agent drains it with 995 and returns
 * ABORT; the server's close removes the dead creator's object. */
static void case_client_dies(void) {
    snprintf(g_name, sizeof g_name, "%s", t_set_name("pd-cli"));
    int up[2], down[2];
    T_REQUIRE(pipe(up) == 0 && pipe(down) == 0);
    pid_t pid = fork();
    T_REQUIRE(pid >= 0);
    if (pid == 0) {
        close(up[0]);
        close(down[1]);
        vdi_client_set *cl = vdi_client_set_new();
        VDConfig cfg;
        t_config_default(&cfg, 1);
        t_must(vdi_client_set_create(cl, g_name, &cfg), NOERROR, "create");
        t_put(up[1], 'c');
        t_must(vdi_client_set_get_configuration(cl, VDI_INFINITE, &cfg), NOERROR, "get_config");
        vdi_client_device *dev = NULL;
        t_must(vdi_client_set_open_device(cl, g_name, &dev), NOERROR, "open_device");
        VDC_Command *c = NULL;
        t_must(vdi_client_device_get_command(dev, VDI_INFINITE, &c), NOERROR, "get_command");
        t_put(up[1], 'g');
        t_park();
    }
    close(up[1]);
    close(down[0]);
    T_REQUIRE(t_get(up[0]) == 'c');
    t_set s;
    t_set_init(&s, "unused", 1);
    snprintf(s.name, sizeof s.name, "%s", g_name);
    t_set_server_open(&s);
    t_set_server_begin(&s);
    t_set_server_end(&s);
    T_REQUIRE(vdi_server_set_open_device(s.server, g_name, &s.sdev[0]) == NOERROR);
    t_set_start_agent(&s);
    t_cmd a, b;
    t_cmd_init(&a, &s.ledger, VDC_Flush, 0, 0, NULL);
    t_cmd_init(&b, &s.ledger, VDC_Flush, 0, 1, NULL);
    T_REQUIRE(t_send(s.sdev[0], &a) == NOERROR);
    T_REQUIRE(t_send(s.sdev[0], &b) == NOERROR);
    T_REQUIRE(t_get(up[0]) == 'g');
    T_REQUIRE(kill(pid, SIGKILL) == 0);
    T_EXPECT_EQ(t_wait_child(pid), 128 + SIGKILL);
    T_EXPECT_CODE(t_set_join_agent(&s), VD_E_ABORT);
    T_EXPECT_EQ(t_cmd_snapshot(&a).calls, 1);
    T_EXPECT_EQ(t_cmd_snapshot(&a).code, ERROR_OPERATION_ABORTED);
    T_EXPECT_EQ(t_cmd_snapshot(&b).calls, 1);
    T_EXPECT_EQ(t_cmd_snapshot(&b).code, ERROR_OPERATION_ABORTED);
    /* any later call that can return ABORT does */
    VDConfig cfg;
    T_EXPECT_CODE(vdi_server_set_get_configuration(s.server, &cfg), VD_E_ABORT);
    T_EXPECT_OK(vdi_server_set_close(s.server));
    T_EXPECT_EQ(t_shm_count(g_name), 0);
    vdi_server_set_free(s.server);
    vdi_client_set_free(s.client);
    s.server = NULL;
    s.client = NULL;
    close(up[0]);
    close(down[1]);
}

/* The client (child) finishes a backup, closes and exits: not a death. The server's
 * calls afterwards still succeed and its agent returned NOERROR. */
static void case_normal_exit(void) {
    snprintf(g_name, sizeof g_name, "%s", t_set_name("pd-ok"));
    int up[2];
    T_REQUIRE(pipe(up) == 0);
    pid_t pid = fork();
    T_REQUIRE(pid >= 0);
    if (pid == 0) {
        close(up[0]);
        vdi_client_set *cl = vdi_client_set_new();
        VDConfig cfg;
        t_config_default(&cfg, 1);
        t_must(vdi_client_set_create(cl, g_name, &cfg), NOERROR, "create");
        t_put(up[1], 'c');
        t_must(vdi_client_set_get_configuration(cl, VDI_INFINITE, &cfg), NOERROR, "get_config");
        vdi_client_device *dev = NULL;
        t_must(vdi_client_set_open_device(cl, g_name, &dev), NOERROR, "open_device");
        for (;;) {
            VDC_Command *c = NULL;
            int rc = vdi_client_device_get_command(dev, VDI_INFINITE, &c);
            if (rc == VD_E_CLOSE)
                break;
            t_must(rc, NOERROR, "get_command");
            t_must(vdi_client_device_complete_command(dev, c, ERROR_SUCCESS, (uint32_t)c->size, 0),
                   NOERROR, "complete");
        }
        t_must(vdi_client_set_close(cl), NOERROR, "client close");
        vdi_client_set_free(cl);
        _exit(0);
    }
    close(up[1]);
    T_REQUIRE(t_get(up[0]) == 'c');
    t_set s;
    t_set_init(&s, "unused", 1);
    snprintf(s.name, sizeof s.name, "%s", g_name);
    t_set_server_open(&s);
    t_set_server_begin(&s);
    t_set_server_end(&s);
    T_REQUIRE(vdi_server_set_open_device(s.server, g_name, &s.sdev[0]) == NOERROR);
    t_set_start_agent(&s);
    uint8_t *b = NULL;
    T_REQUIRE(vdi_server_set_allocate_buffer(s.server, &b, 4096, 0) == NOERROR);
    t_cmd tc[4];
    for (int i = 0; i < 4; i++) {
        t_cmd_init(&tc[i], &s.ledger, VDC_Write, 4096, 4096 * i, b);
        T_REQUIRE(t_send(s.sdev[0], &tc[i]) == NOERROR);
        t_ledger_wait(&s.ledger, i + 1);
    }
    T_REQUIRE(vdi_server_device_close(s.sdev[0]) == NOERROR);
    T_EXPECT_OK(t_set_join_agent(&s));
    T_EXPECT_EQ(t_wait_child(pid), 0);
    VDConfig cfg;
    T_EXPECT_OK(vdi_server_set_get_configuration(s.server, &cfg));
    uint8_t *b2 = NULL;
    T_EXPECT_OK(vdi_server_set_allocate_buffer(s.server, &b2, 4096, 0));
    T_EXPECT_OK(vdi_server_set_close(s.server));
    for (int i = 0; i < 4; i++)
        T_EXPECT_EQ(t_cmd_snapshot(&tc[i]).code, ERROR_SUCCESS);
    T_EXPECT_EQ(t_shm_count(g_name), 0);
    vdi_server_set_free(s.server);
    vdi_client_set_free(s.client);
    close(up[0]);
}

/* 8.4: the creator (child) dies while a server is attached; a new creator reclaims the
 * name; the old server's close must not unlink the new object. */
static void case_reclaim_attached(void) {
    snprintf(g_name, sizeof g_name, "%s", t_set_name("pd-recl"));
    int up[2];
    T_REQUIRE(pipe(up) == 0);
    pid_t pid = fork();
    T_REQUIRE(pid >= 0);
    if (pid == 0) {
        close(up[0]);
        vdi_client_set *cl = vdi_client_set_new();
        VDConfig cfg;
        t_config_default(&cfg, 1);
        t_must(vdi_client_set_create(cl, g_name, &cfg), NOERROR, "create");
        t_put(up[1], 'c');
        t_park();
    }
    close(up[1]);
    T_REQUIRE(t_get(up[0]) == 'c');
    vdi_server_set *old = vdi_server_set_new();
    T_REQUIRE(vdi_server_set_open(old, NULL, g_name) == NOERROR);
    T_REQUIRE(kill(pid, SIGKILL) == 0);
    T_EXPECT_EQ(t_wait_child(pid), 128 + SIGKILL);
    vdi_client_set *cl = vdi_client_set_new();
    VDConfig cfg;
    t_config_default(&cfg, 1);
    T_EXPECT_OK(vdi_client_set_create(cl, g_name, &cfg));
    T_EXPECT_OK(vdi_server_set_close(old)); /* aborted by the death: NOERROR */
    T_EXPECT(t_shm_count(g_name) > 0);
    vdi_server_set *fresh = vdi_server_set_new();
    T_EXPECT_OK(vdi_server_set_open(fresh, NULL, g_name));
    T_EXPECT_OK(vdi_server_set_begin_configuration(fresh, VDF_WriteMedia, 512, 0, 65536, 0));
    T_EXPECT_OK(vdi_server_set_end_configuration(fresh));
    T_EXPECT_OK(vdi_client_set_get_configuration(cl, 0, &cfg));
    T_EXPECT_OK(vdi_server_set_close(fresh));
    T_EXPECT_OK(vdi_client_set_close(cl));
    vdi_server_set_free(old);
    vdi_server_set_free(fresh);
    vdi_client_set_free(cl);
    T_EXPECT_EQ(t_shm_count(g_name), 0);
    close(up[0]);
}

/* A client that exits without its close after the set reached Normally Terminated has
 * not died (VDI-SPEC 5.3: a normal exit after a finished backup is not a death): the
 * server's calls keep their Normally Terminated answers, however late they come. */
static uint64_t g_clock_skew;
static uint64_t skewed_now(void *ctx) {
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u + g_clock_skew;
}

static void case_exit_after_normal_end(void) {
    snprintf(g_name, sizeof g_name, "%s", t_set_name("pd-nt"));
    int up[2];
    T_REQUIRE(pipe(up) == 0);
    pid_t pid = fork();
    T_REQUIRE(pid >= 0);
    if (pid == 0) {
        close(up[0]);
        vdi_client_set *cl = vdi_client_set_new();
        VDConfig cfg;
        t_config_default(&cfg, 1);
        t_must(vdi_client_set_create(cl, g_name, &cfg), NOERROR, "create");
        t_put(up[1], 'c');
        t_must(vdi_client_set_get_configuration(cl, VDI_INFINITE, &cfg), NOERROR, "get_config");
        vdi_client_device *dev = NULL;
        t_must(vdi_client_set_open_device(cl, g_name, &dev), NOERROR, "open_device");
        VDC_Command *c = NULL;
        t_must(vdi_client_device_get_command(dev, VDI_INFINITE, &c), VD_E_CLOSE, "get_command");
        _exit(0); /* no close */
    }
    close(up[1]);
    T_REQUIRE(t_get(up[0]) == 'c');
    t_set s;
    t_set_init(&s, "unused", 1);
    snprintf(s.name, sizeof s.name, "%s", g_name);
    t_set_server_open(&s);
    t_set_server_begin(&s);
    t_set_server_end(&s);
    T_REQUIRE(vdi_server_set_open_device(s.server, g_name, &s.sdev[0]) == NOERROR);
    T_REQUIRE(vdi_server_device_close(s.sdev[0]) == NOERROR);
    T_EXPECT_OK(vdi_server_set_execute_completion_agent(s.server));
    T_EXPECT_EQ(t_wait_child(pid), 0);
    g_clock_skew = 60000; /* every liveness check is due now */
    vdi_seams seams = {.now_ms = skewed_now};
    vdi_seams_install(&seams);
    VDConfig cfg;
    T_EXPECT_OK(vdi_server_set_get_configuration(s.server, &cfg));
    T_EXPECT_CODE(vdi_server_device_close(s.sdev[0]), VD_E_CLOSE);
    T_EXPECT_OK(vdi_server_set_execute_completion_agent(s.server));
    vdi_seams_install(NULL);
    T_EXPECT_OK(vdi_server_set_close(s.server));
    T_EXPECT_EQ(t_shm_count(g_name), 0);
    vdi_server_set_free(s.server);
    vdi_client_set_free(s.client);
    close(up[0]);
}

/* The early windows of peer death (VDI-SPEC 5.3, 8.4): each is noticed, none leaves the
 * name blocked. The child dies at a chosen point through the seams, the way a SIGKILL at
 * the worst moment would. */
static const char *g_die_at;
static void die_at_point(void *ctx, const char *name) {
    (void)ctx;
    if (g_die_at && strcmp(name, g_die_at) == 0)
        raise(SIGKILL);
}
static int die_at_fail_point(void *ctx, const char *name) {
    die_at_point(ctx, name);
    return 0;
}
static void die_at(const char *point) {
    g_die_at = point;
    vdi_seams seams = {.sched_point = die_at_point, .fail_point = die_at_fail_point};
    vdi_seams_install(&seams);
}

typedef struct blocked_cfg {
    vdi_client_set *cl;
    int rc;
} blocked_cfg;
static void *get_config_forever(void *arg) {
    blocked_cfg *b = arg;
    VDConfig cfg;
    b->rc = vdi_client_set_get_configuration(b->cl, VDI_INFINITE, &cfg);
    return NULL;
}

/* A server killed inside its open, after it claimed the set and before it wrote who it
 * is: the client waiting in get_configuration is told (ABORT), and the next server gets
 * ABORT, not BUSY for ever. */
static void case_server_dies_in_open(void) {
    snprintf(g_name, sizeof g_name, "%s", t_set_name("pd-open"));
    vdi_client_set *cl = vdi_client_set_new();
    VDConfig cfg;
    t_config_default(&cfg, 1);
    T_REQUIRE(vdi_client_set_create(cl, g_name, &cfg) == NOERROR);
    blocked_cfg bc = {cl, 0};
    pthread_t th = t_spawn(get_config_forever, &bc);
    pid_t pid = fork();
    T_REQUIRE(pid >= 0);
    if (pid == 0) {
        die_at("server/open:claimed");
        vdi_server_set *sv = vdi_server_set_new();
        int rc = vdi_server_set_open(sv, NULL, g_name);
        _exit(rc == NOERROR ? 3 : 4); /* not reached: the point kills */
    }
    T_EXPECT_EQ(t_wait_child(pid), 128 + SIGKILL);
    t_join(th);
    T_EXPECT_CODE(bc.rc, VD_E_ABORT);
    vdi_server_set *next = vdi_server_set_new();
    T_EXPECT_CODE(vdi_server_set_open(next, NULL, g_name), VD_E_ABORT);
    vdi_server_set_free(next);
    T_EXPECT_OK(vdi_client_set_close(cl));
    vdi_client_set_free(cl);
    T_EXPECT_EQ(t_shm_count(g_name), 0);
}

/* A client killed before any server came: the server's open answers INVALID at once and
 * removes the dead creator's object, so the name is free. */
static void case_client_dies_before_server(void) {
    snprintf(g_name, sizeof g_name, "%s", t_set_name("pd-early"));
    int up[2];
    T_REQUIRE(pipe(up) == 0);
    pid_t pid = fork();
    T_REQUIRE(pid >= 0);
    if (pid == 0) {
        close(up[0]);
        vdi_client_set *cl = vdi_client_set_new();
        VDConfig cfg;
        t_config_default(&cfg, 1);
        t_must(vdi_client_set_create(cl, g_name, &cfg), NOERROR, "create");
        t_put(up[1], 'c');
        t_park();
    }
    close(up[1]);
    T_REQUIRE(t_get(up[0]) == 'c');
    T_REQUIRE(kill(pid, SIGKILL) == 0);
    T_EXPECT_EQ(t_wait_child(pid), 128 + SIGKILL);
    T_EXPECT_EQ(t_shm_count(g_name), 1);
    vdi_server_set *sv = vdi_server_set_new();
    T_EXPECT_CODE(vdi_server_set_open(sv, NULL, g_name), VD_E_INVALID);
    vdi_server_set_free(sv);
    T_EXPECT_EQ(t_shm_count(g_name), 0);
    close(up[0]);
}

/* Make the one object whose name holds the needle look last changed long ago. */
static void age_object(const char *needle) {
    DIR *d = opendir("/dev/shm");
    T_REQUIRE(d != NULL);
    struct dirent *e;
    int found = 0;
    while ((e = readdir(d)) != NULL) {
        if (!strstr(e->d_name, needle))
            continue;
        char path[512];
        snprintf(path, sizeof path, "/dev/shm/%s", e->d_name);
        struct timespec old[2] = {{.tv_sec = 1000000}, {.tv_sec = 1000000}};
        T_EXPECT_EQ(utimensat(AT_FDCWD, path, old, 0), 0);
        found++;
    }
    closedir(d);
    T_EXPECT_EQ(found, 1);
}

/* A client killed between its exclusive create and writing who it is leaves an object
 * with no identity: busy while it may still be a creator at work, reclaimed by the next
 * create once it is older than that could take. */
static void case_stale_empty_object(void) {
    snprintf(g_name, sizeof g_name, "%s", t_set_name("pd-empty"));
    pid_t pid = fork();
    T_REQUIRE(pid >= 0);
    if (pid == 0) {
        die_at("transport/create:fchmod");
        vdi_client_set *cl = vdi_client_set_new();
        VDConfig cfg;
        t_config_default(&cfg, 1);
        int rc = vdi_client_set_create(cl, g_name, &cfg);
        _exit(rc == NOERROR ? 3 : 4); /* not reached: the point kills */
    }
    T_EXPECT_EQ(t_wait_child(pid), 128 + SIGKILL);
    T_EXPECT_EQ(t_shm_count(g_name), 1);
    vdi_client_set *cl = vdi_client_set_new();
    VDConfig cfg;
    t_config_default(&cfg, 1);
    T_EXPECT_CODE(vdi_client_set_create(cl, g_name, &cfg), VD_E_BUSY);
    age_object(g_name);
    T_EXPECT_OK(vdi_client_set_create(cl, g_name, &cfg));
    T_EXPECT_OK(vdi_client_set_close(cl));
    vdi_client_set_free(cl);
    T_EXPECT_EQ(t_shm_count(g_name), 0);
}

int main(int argc, char **argv) {
    static const t_case cases[] = {
        {"server_dies", case_server_dies},
        {"server_dies_configuring", case_server_dies_configuring},
        {"client_dies", case_client_dies},
        {"normal_exit", case_normal_exit},
        {"reclaim_attached", case_reclaim_attached},
        {"server_dies_in_open", case_server_dies_in_open},
        {"client_dies_before_server", case_client_dies_before_server},
        {"stale_empty_object", case_stale_empty_object},
        {"exit_after_normal_end", case_exit_after_normal_end},
    };
    int rc = t_run_cases(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
    return rc ? rc : t_done();
}
