/* Operating-system failures (VDI-SPEC 8.12), injected through the fail_point seam: each
 * errno maps to its VD_E_* code, the failing call changes no state and leaks nothing,
 * and EINTR/EAGAIN never surface. Every injection asserts that a point was reached, so a
 * renamed point cannot make this pass vacuously. */
#include <errno.h>

#include "t_test.h"
#include "t_vdi.h"
#include "vdi/vdi_seams.h"

/* The injector: fail the nth call (1-based) of a point whose name contains target
 * (NULL: any point), once or from then on. Used only while one thread is in the library. */
static struct {
    const char *target;
    int nth;
    int persistent;
    int err;
    int seen;
    int injected;
    char first[160]; /* the first point that failed */
    char hit[64][160];
    int nhit;
} g;

static int fail_point(void *ctx, const char *name) {
    (void)ctx;
    if (g.nhit < 64)
        snprintf(g.hit[g.nhit++], sizeof g.hit[0], "%s", name);
    if (g.target && !strstr(name, g.target))
        return 0;
    g.seen++;
    if (g.nth && (g.seen == g.nth || (g.persistent && g.seen > g.nth))) {
        if (!g.injected)
            snprintf(g.first, sizeof g.first, "%s", name);
        g.injected++;
        return g.err;
    }
    return 0;
}

static void arm(const char *target, int nth, int err, int persistent) {
    memset(&g, 0, sizeof g);
    g.target = target;
    g.nth = nth;
    g.err = err;
    g.persistent = persistent;
    vdi_seams seams;
    memset(&seams, 0, sizeof seams);
    seams.fail_point = fail_point;
    vdi_seams_install(&seams);
}

static void disarm(void) {
    vdi_seams_install(NULL);
}

static int create_once(vdi_client_set *c, const char *name) {
    VDConfig cfg;
    t_config_default(&cfg, 1);
    return vdi_client_set_create(c, name, &cfg);
}

/* The first point create hits whose name contains one of want[] (in preference order),
 * else the first point at all. */
static void pick_point(char *out, size_t len, const char *const *want, size_t nwant) {
    vdi_client_set *c = vdi_client_set_new();
    const char *name = t_set_name("probe");
    arm(NULL, 0, 0, 0);
    int rc = create_once(c, name);
    disarm();
    T_REQUIRE(rc == NOERROR);
    (void)vdi_client_set_close(c);
    vdi_client_set_free(c);
    T_REQUIRE(g.nhit > 0); /* create reaches at least one fail point */
    snprintf(out, len, "%s", g.hit[0]);
    for (size_t w = 0; w < nwant; w++)
        for (int i = 0; i < g.nhit; i++)
            if (strstr(g.hit[i], want[w])) {
                snprintf(out, len, "%s", g.hit[i]);
                return;
            }
}

/* 8.12: errno -> code at a system call of create; no state change. shm_open is avoided:
 * an EEXIST there means "the name exists" and takes the reclaim path of 8.4. */
static void case_mapping(void) {
    char point[160];
    static const char *const prefer[] = {"mmap", "ftruncate", "fallocate", "map"};
    pick_point(point, sizeof point, prefer, sizeof prefer / sizeof prefer[0]);
    fprintf(stderr, "injecting at %s\n", point);
    static const struct {
        int err;
        int code;
    } map[] = {
        {ENOMEM, VD_E_MEMORY},  {ENOSPC, VD_E_MEMORY},  {EMFILE, VD_E_MEMORY},
        {ENFILE, VD_E_MEMORY},  {EEXIST, VD_E_BUSY},    {EACCES, VD_E_SECURITY},
        {EPERM, VD_E_SECURITY}, {EIO, VD_E_UNEXPECTED}, {EINVAL, VD_E_UNEXPECTED},
    };
    int fds = t_fd_count();
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        vdi_client_set *c = vdi_client_set_new();
        const char *name = t_set_name("map");
        char nm[96];
        snprintf(nm, sizeof nm, "%s", name);
        arm(point, 1, map[i].err, 0);
        int rc = create_once(c, nm);
        disarm();
        T_EXPECT_EQ(g.injected, 1);
        if (rc != map[i].code)
            fprintf(stderr, "errno %d at %s: got %s\n", map[i].err, point, vdi_strerror(rc));
        T_EXPECT_CODE(rc, map[i].code);
        /* no state change: the object is DNE, nothing left behind */
        T_EXPECT_CODE(vdi_client_set_close(c), VD_E_PROTOCOL);
        T_EXPECT_EQ(t_shm_count(nm), 0);
        T_EXPECT_OK(create_once(c, nm));
        T_EXPECT_OK(vdi_client_set_close(c));
        vdi_client_set_free(c);
    }
    T_EXPECT_EQ(t_fd_count(), fds);
}

/* Sweep: fail call n of create, then n+1, ..., once and then persistently, until a run
 * sees no fault. Each run gives NOERROR or VD_E_MEMORY and leaks nothing. */
static void sweep_create(int persistent) {
    int fds = t_fd_count();
    int failures = 0;
    for (int n = 1; n < 200; n++) {
        vdi_client_set *c = vdi_client_set_new();
        char nm[96];
        snprintf(nm, sizeof nm, "%s", t_set_name("sweep"));
        arm(NULL, n, ENOMEM, persistent);
        int rc = create_once(c, nm);
        disarm();
        int injected = g.injected;
        if (rc != NOERROR && rc != VD_E_MEMORY)
            fprintf(stderr, "create with ENOMEM at %s: %s\n", g.first, vdi_strerror(rc));
        T_EXPECT(rc == NOERROR || rc == VD_E_MEMORY);
        if (rc != NOERROR) {
            failures++;
            T_EXPECT_CODE(vdi_client_set_close(c), VD_E_PROTOCOL);
            T_EXPECT_EQ(t_shm_count(nm), 0);
        } else {
            T_EXPECT_OK(vdi_client_set_close(c));
        }
        vdi_client_set_free(c);
        if (!injected)
            break;
    }
    T_EXPECT(failures > 0);
    T_EXPECT_EQ(t_fd_count(), fds);
}

static void case_sweep_create_once(void) {
    sweep_create(0);
}

static void case_sweep_create_persistent(void) {
    sweep_create(1);
}

/* Sweep of the server's open and configuration: each failure leaves the server where it
 * was (open: DNE; end_configuration: Configurable) and nothing leaks. */
static void case_sweep_server(void) {
    int fds = t_fd_count();
    int failures = 0;
    for (int n = 1; n < 200; n++) {
        t_set s;
        t_set_init(&s, "ssweep", 1);
        t_set_create(&s);
        arm(NULL, n, ENOMEM, 0);
        int rc = vdi_server_set_open(s.server, NULL, s.name);
        int rc_begin = NOERROR, rc_end = NOERROR;
        if (rc == NOERROR) {
            rc_begin =
                vdi_server_set_begin_configuration(s.server, VDF_WriteMedia, 512, 0, 65536, 0);
            if (rc_begin == NOERROR) {
                rc_end = vdi_server_set_request_buffers(s.server, 65536, 0, 2);
                if (rc_end == NOERROR)
                    rc_end = vdi_server_set_end_configuration(s.server);
            }
        }
        disarm();
        int injected = g.injected;
        T_EXPECT(rc == NOERROR || rc == VD_E_MEMORY);
        T_EXPECT(rc_begin == NOERROR || rc_begin == VD_E_MEMORY);
        T_EXPECT(rc_end == NOERROR || rc_end == VD_E_MEMORY);
        VDConfig cfg;
        if (rc != NOERROR) {
            failures++;
            T_EXPECT_CODE(vdi_server_set_get_configuration(s.server, &cfg), VD_E_PROTOCOL);
            T_EXPECT_OK(vdi_server_set_open(s.server, NULL, s.name)); /* may try again */
        } else if (rc_end != NOERROR) {
            failures++;
            /* stays Configurable: end_configuration may be retried */
            T_EXPECT_OK(vdi_server_set_end_configuration(s.server));
        }
        t_set_teardown(&s);
        T_EXPECT_EQ(t_shm_count(s.name), 0);
        if (!injected)
            break;
    }
    T_EXPECT(failures > 0);
    T_EXPECT_EQ(t_fd_count(), fds);
}

/* EINTR and EAGAIN never surface: injected once at every point of create, open and
 * configuration in turn, the calls still succeed. */
static void case_eintr(void) {
    static const int errs[] = {EINTR, EAGAIN};
    for (size_t e = 0; e < 2; e++) {
        int injected_total = 0;
        for (int n = 1; n < 200; n++) {
            t_set s;
            t_set_init(&s, "eintr", 1);
            arm(NULL, n, errs[e], 0);
            int rc = vdi_client_set_create(s.client, s.name, &s.cfg);
            if (rc == NOERROR)
                rc = vdi_server_set_open(s.server, NULL, s.name);
            if (rc == NOERROR)
                rc = vdi_server_set_begin_configuration(s.server, VDF_WriteMedia, 512, 0, 65536, 0);
            if (rc == NOERROR)
                rc = vdi_server_set_request_buffers(s.server, 65536, 0, 1);
            if (rc == NOERROR)
                rc = vdi_server_set_end_configuration(s.server);
            if (rc == NOERROR)
                rc = vdi_client_set_get_configuration(s.client, 0, &s.cfg);
            disarm();
            if (rc != NOERROR)
                fprintf(stderr, "errno %d at %s surfaced as %s\n", errs[e], g.first,
                        vdi_strerror(rc));
            T_EXPECT_OK(rc);
            int injected = g.injected;
            injected_total += injected;
            t_set_teardown(&s);
            if (!injected)
                break;
        }
        T_EXPECT(injected_total > 0);
    }
}

int main(int argc, char **argv) {
    static const t_case cases[] = {
        {"mapping", case_mapping},
        {"sweep_create_once", case_sweep_create_once},
        {"sweep_create_persistent", case_sweep_create_persistent},
        {"sweep_server", case_sweep_server},
        {"eintr", case_eintr},
    };
    int rc = t_run_cases(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
    return rc ? rc : t_done();
}
