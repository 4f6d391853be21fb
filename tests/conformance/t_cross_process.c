/* A backup and a restore across two processes, and a buffer handle shared by a primary
 * and a secondary in two more (VDI-SPEC 1, 4 "Buffers", 8.13): the bytes the server
 * writes are the bytes the client reads, and the reverse. This is the path every real
 * deployment takes: SQL Server and the backup tool never share a process. */
#include <signal.h>

#include "t_test.h"
#include "t_vdi.h"

enum { NDEV = 2, NCMD = 24, CHUNK = 65536 };

static char g_name[96];

static uint8_t pattern(int dev, int i, int k) {
    return (uint8_t)(dev * 131 + i * 7 + k * 13 + (k >> 8));
}

/* Child: the client. Counts and hashes every Write per device, fills every Read with
 * a byte derived from its position, and reports the hashes through the pipe. */
static void client_child(int up, int restore) {
    vdi_client_set *cl = vdi_client_set_new();
    VDConfig cfg;
    t_config_default(&cfg, NDEV);
    t_must(vdi_client_set_create(cl, g_name, &cfg), NOERROR, "create");
    t_put(up, 'c');
    t_must(vdi_client_set_get_configuration(cl, VDI_INFINITE, &cfg), NOERROR, "get_config");
    t_worker w[NDEV];
    vdi_client_device *dev[NDEV];
    for (int d = 0; d < NDEV; d++) {
        t_must(vdi_client_set_open_device(cl, d == 0 ? g_name : "d1", &dev[d]), NOERROR,
               "open_device");
        memset(&w[d], 0, sizeof w[d]);
        w[d].fill = (uint8_t)(0xa0 + d);
        t_worker_start(&w[d], dev[d], ERROR_SUCCESS);
    }
    for (int d = 0; d < NDEV; d++) {
        t_must(t_worker_join(&w[d]), VD_E_CLOSE, "device loop end");
        if (w[d].ncmds != NCMD)
            _exit(4);
        t_put_u32(up, (uint32_t)w[d].hash);
        t_put_u32(up, (uint32_t)(w[d].hash >> 32));
    }
    t_must(vdi_client_set_close(cl), NOERROR, "client close");
    vdi_client_set_free(cl);
    (void)restore;
    _exit(0);
}

static void run(int restore) {
    snprintf(g_name, sizeof g_name, "%s", t_set_name(restore ? "xp-r" : "xp-b"));
    int up[2];
    T_REQUIRE(pipe(up) == 0);
    pid_t pid = fork();
    T_REQUIRE(pid >= 0);
    if (pid == 0) {
        close(up[0]);
        client_child(up[1], restore);
    }
    close(up[1]);
    T_REQUIRE(t_get(up[0]) == 'c');
    t_set s;
    t_set_init(&s, "unused", NDEV);
    snprintf(s.name, sizeof s.name, "%s", g_name);
    s.features = restore ? VDF_ReadMedia : VDF_WriteMedia;
    s.buf_size = CHUNK;
    s.buf_count = NDEV * NCMD;
    s.max_transfer = CHUNK;
    t_set_server_open(&s);
    t_set_server_begin(&s);
    t_set_server_end(&s);
    for (int d = 0; d < NDEV; d++)
        T_REQUIRE(vdi_server_set_open_device(s.server, t_devname(&s, d), &s.sdev[d]) == NOERROR);
    t_set_start_agent(&s);
    static t_cmd tc[NDEV][NCMD];
    static uint8_t *buf[NDEV][NCMD];
    uint64_t want[NDEV] = {0, 0};
    for (int i = 0; i < NCMD; i++)
        for (int d = 0; d < NDEV; d++) {
            T_REQUIRE(vdi_server_set_allocate_buffer(s.server, &buf[d][i], CHUNK, 0) == NOERROR);
            if (!restore) {
                for (int k = 0; k < CHUNK; k++)
                    buf[d][i][k] = pattern(d, i, k);
                want[d] = t_fnv(want[d], buf[d][i], CHUNK);
            }
            t_cmd_init(&tc[d][i], &s.ledger, restore ? VDC_Read : VDC_Write, CHUNK,
                       (int64_t)i * CHUNK, buf[d][i]);
            T_REQUIRE(t_send(s.sdev[d], &tc[d][i]) == NOERROR);
        }
    t_ledger_wait(&s.ledger, NDEV * NCMD);
    t_set_close_devices(&s);
    T_EXPECT_OK(t_set_join_agent(&s));
    for (int d = 0; d < NDEV; d++) {
        uint64_t lo = t_get_u32(up[0]);
        uint64_t hi = t_get_u32(up[0]);
        if (!restore)
            T_EXPECT_EQ(lo | hi << 32, want[d]);
    }
    int bad = 0;
    for (int d = 0; d < NDEV; d++)
        for (int i = 0; i < NCMD; i++) {
            t_cmd sn = t_cmd_snapshot(&tc[d][i]);
            bad += sn.calls != 1 || sn.code != ERROR_SUCCESS || sn.bytes != CHUNK ||
                   sn.out_position != (int64_t)i * CHUNK;
            if (restore)
                for (int k = 0; k < CHUNK; k += 4099)
                    bad += buf[d][i][k] != (uint8_t)(0xa0 + d);
        }
    T_EXPECT_EQ(bad, 0);
    T_EXPECT_EQ(t_wait_child(pid), 0);
    T_EXPECT_OK(vdi_server_set_close(s.server));
    vdi_server_set_free(s.server);
    vdi_client_set_free(s.client);
    T_EXPECT_EQ(t_shm_count(g_name), 0);
    close(up[0]);
}

static void case_backup(void) {
    run(0);
}

static void case_restore(void) {
    run(1);
}

/* Three processes: the server (parent), the primary (child A, device 0) and a secondary
 * (child B, device d1). A passes a buffer handle to B; B maps it to its own address and
 * reads the bytes the server wrote. */
static void case_handles(void) {
    snprintf(g_name, sizeof g_name, "%s", t_set_name("xp-h"));
    int to_parent[2], a_to_b[2], p_to_a[2];
    T_REQUIRE(pipe(to_parent) == 0 && pipe(a_to_b) == 0 && pipe(p_to_a) == 0);
    pid_t a = fork();
    T_REQUIRE(a >= 0);
    if (a == 0) {
        close(to_parent[0]);
        close(a_to_b[0]);
        close(p_to_a[1]);
        vdi_client_set *cl = vdi_client_set_new();
        VDConfig cfg;
        t_config_default(&cfg, 2);
        t_must(vdi_client_set_create(cl, g_name, &cfg), NOERROR, "A create");
        t_put(to_parent[1], 'c');
        t_must(vdi_client_set_get_configuration(cl, VDI_INFINITE, &cfg), NOERROR, "A config");
        t_put(a_to_b[1], 'g');
        vdi_client_device *dev = NULL;
        t_must(vdi_client_set_open_device(cl, g_name, &dev), NOERROR, "A open_device");
        VDC_Command *c = NULL;
        t_must(vdi_client_device_get_command(dev, VDI_INFINITE, &c), NOERROR, "A get_command");
        uint32_t h = 0;
        t_must(vdi_client_set_get_buffer_handle(cl, c->buffer, &h), NOERROR, "A handle");
        t_put_u32(a_to_b[1], h);
        t_must(vdi_client_device_complete_command(dev, c, ERROR_SUCCESS, (uint32_t)c->size, 0),
               NOERROR, "A complete");
        t_must(vdi_client_device_get_command(dev, VDI_INFINITE, &c), VD_E_CLOSE, "A end");
        /* Normally Terminated needs every device closed by the server, d1 included:
         * closing earlier would abort the set (5.2) */
        if (t_get(p_to_a[0]) != 'z')
            _exit(6);
        t_must(vdi_client_set_close(cl), NOERROR, "A close");
        vdi_client_set_free(cl);
        _exit(0);
    }
    pid_t b = fork();
    T_REQUIRE(b >= 0);
    if (b == 0) {
        close(to_parent[0]);
        close(a_to_b[1]);
        close(p_to_a[0]);
        close(p_to_a[1]);
        if (t_get(a_to_b[0]) != 'g')
            _exit(5);
        vdi_client_set *sec = vdi_client_set_new();
        t_must(vdi_client_set_open_in_secondary(sec, g_name), NOERROR, "B open_in_secondary");
        vdi_client_device *dev = NULL;
        t_must(vdi_client_set_open_device(sec, "d1", &dev), NOERROR, "B open_device");
        t_put(to_parent[1], 'b');
        uint32_t h = t_get_u32(a_to_b[0]);
        uint8_t *p = NULL;
        t_must(vdi_client_set_map_buffer_handle(sec, h, &p), NOERROR, "B map");
        int ok = p != NULL;
        for (int k = 0; ok && k < 8192; k++)
            ok = p[k] == (uint8_t)(k * 5 + 3);
        t_put(to_parent[1], ok ? 'y' : 'n');
        VDC_Command *c = NULL;
        t_must(vdi_client_device_get_command(dev, VDI_INFINITE, &c), NOERROR, "B get_command");
        t_must(vdi_client_device_complete_command(dev, c, ERROR_SUCCESS, 0, 0), NOERROR,
               "B complete");
        t_must(vdi_client_device_get_command(dev, VDI_INFINITE, &c), VD_E_CLOSE, "B end");
        t_must(vdi_client_set_close(sec), NOERROR, "B close");
        vdi_client_set_free(sec);
        _exit(0);
    }
    close(to_parent[1]);
    close(a_to_b[0]);
    close(a_to_b[1]);
    close(p_to_a[0]);
    T_REQUIRE(t_get(to_parent[0]) == 'c');
    t_set s;
    t_set_init(&s, "unused", 2);
    snprintf(s.name, sizeof s.name, "%s", g_name);
    t_set_server_open(&s);
    t_set_server_begin(&s);
    t_set_server_end(&s);
    for (int d = 0; d < 2; d++)
        T_REQUIRE(vdi_server_set_open_device(s.server, t_devname(&s, d), &s.sdev[d]) == NOERROR);
    t_set_start_agent(&s);
    T_REQUIRE(t_get(to_parent[0]) == 'b'); /* B holds d1 */
    uint8_t *buf = NULL;
    T_REQUIRE(vdi_server_set_allocate_buffer(s.server, &buf, 8192, 0) == NOERROR);
    for (int k = 0; k < 8192; k++)
        buf[k] = (uint8_t)(k * 5 + 3);
    t_cmd w, f;
    t_cmd_init(&w, &s.ledger, VDC_Write, 8192, 0, buf);
    t_cmd_init(&f, &s.ledger, VDC_Flush, 0, 0, NULL);
    T_REQUIRE(t_send(s.sdev[0], &w) == NOERROR);
    T_EXPECT_EQ(t_get(to_parent[0]), 'y');
    T_REQUIRE(t_send(s.sdev[1], &f) == NOERROR);
    t_ledger_wait(&s.ledger, 2);
    t_set_close_devices(&s);
    t_put(p_to_a[1], 'z');
    close(p_to_a[1]);
    T_EXPECT_OK(t_set_join_agent(&s));
    T_EXPECT_EQ(t_wait_child(a), 0);
    T_EXPECT_EQ(t_wait_child(b), 0);
    T_EXPECT_OK(vdi_server_set_close(s.server));
    vdi_server_set_free(s.server);
    vdi_client_set_free(s.client);
    T_EXPECT_EQ(t_shm_count(g_name), 0);
    close(to_parent[0]);
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    static const t_case cases[] = {
        {"backup", case_backup},
        {"restore", case_restore},
        {"handles", case_handles},
    };
    int rc = t_run_cases(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
    return rc ? rc : t_done();
}
