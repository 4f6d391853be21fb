/* The engine on toy programs, before any VDI: a run is a function of its strategy and seed,
 * its decision list replays it exactly (same trace hash), virtual time jumps to the next
 * deadline, every actor blocked forever is a hang that names each blocking point, and PCT
 * and random walks find a simple ordering bug. Everything the harness claims rests on these. */
#include <errno.h>
#include <string.h>

#include "chaos/atomics.h"
#include "chaos/chaos.h"
#include "t_test.h"

/* Actors share these on purpose; relaxed atomics keep TSan (which sees actors as
 * unsynchronised threads, as it must) from reporting the toys themselves. */
#define LD(x) CHAOS_LOAD_RELAXED(&(x))
#define ST(x, v) CHAOS_STORE_RELAXED(&(x), (v))

/* ---- a toy program: three actors bumping counters between schedule points ---- */

typedef struct {
    chaos_engine *e;
    int counter;
    int order[64];
    int norder;
} toy;

static toy g_toy;

static void toy_actor(void *arg) {
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < 4; i++) {
        chaos_point(g_toy.e, "toy:step");
        ST(g_toy.counter, LD(g_toy.counter) + id);
        int k = LD(g_toy.norder);
        if (k < 64) {
            ST(g_toy.order[k], id);
            ST(g_toy.norder, k + 1);
        }
    }
}

typedef struct {
    uint64_t hash;
    uint32_t dec[4096];
    size_t ndec;
    int order[64];
} run_result;

static chaos_outcome run_toy(const chaos_config *cfg, run_result *r) {
    memset(&g_toy, 0, sizeof g_toy);
    chaos_engine *e = chaos_engine_new(cfg);
    T_REQUIRE(e != NULL);
    g_toy.e = e;
    for (intptr_t i = 1; i <= 3; i++)
        T_REQUIRE(chaos_spawn(e, "toy", toy_actor, (void *)i) > 0);
    chaos_outcome out = chaos_run(e);
    const uint32_t *d;
    r->ndec = chaos_decisions(e, &d);
    T_REQUIRE(r->ndec <= 4096);
    memcpy(r->dec, d, r->ndec * sizeof *d);
    r->hash = chaos_trace_hash(e);
    memcpy(r->order, g_toy.order, sizeof r->order);
    chaos_engine_free(e);
    return out;
}

static void case_determinism(void) {
    static const chaos_strategy kinds[] = {CHAOS_RANDOM, CHAOS_PCT, CHAOS_BYTES};
    static const uint8_t bytes[] = {7, 1, 200, 3, 3, 9, 0, 42, 17, 5, 250, 11};
    int distinct = 0;
    uint64_t first_hash = 0;
    for (size_t k = 0; k < 3; k++) {
        for (uint64_t seed = 1; seed <= 5; seed++) {
            chaos_config cfg = {.strategy = kinds[k],
                                .seed = seed,
                                .pct_depth = 2,
                                .pct_steps = 12,
                                .bytes = bytes,
                                .nbytes = (size_t)seed * 2};
            run_result a, b, c;
            T_EXPECT_EQ(run_toy(&cfg, &a), CHAOS_DONE);
            T_EXPECT_EQ(run_toy(&cfg, &b), CHAOS_DONE);
            /* the same configuration gives the same run */
            T_EXPECT_EQ(a.hash, b.hash);
            T_EXPECT_EQ(a.ndec, b.ndec);
            T_EXPECT(memcmp(a.order, b.order, sizeof a.order) == 0);
            /* its decision list replays it exactly */
            chaos_config rep = {.strategy = CHAOS_REPLAY, .decisions = a.dec, .ndecisions = a.ndec};
            T_EXPECT_EQ(run_toy(&rep, &c), CHAOS_DONE);
            T_EXPECT_EQ(c.hash, a.hash);
            T_EXPECT(memcmp(c.order, a.order, sizeof a.order) == 0);
            if (first_hash == 0)
                first_hash = a.hash;
            distinct += a.hash != first_hash;
        }
    }
    /* and different seeds explore different interleavings */
    T_EXPECT(distinct > 0);
    T_EXPECT_EQ(g_toy.counter, 4 * (1 + 2 + 3));
}

/* ---- virtual time ---- */

static uint32_t g_word;
static uint64_t g_woke_at;
static int g_rc;

static void sleeper(void *arg) {
    chaos_engine *e = arg;
    ST(g_rc, chaos_wait(e, &g_word, 0, 5000));
    ST(g_woke_at, chaos_now(e));
}

static void case_virtual_time(void) {
    chaos_config cfg = {.strategy = CHAOS_RANDOM, .seed = 3};
    chaos_engine *e = chaos_engine_new(&cfg);
    uint64_t start = chaos_now(e);
    g_word = 0;
    chaos_spawn(e, "sleeper", sleeper, e);
    T_EXPECT_EQ(chaos_run(e), CHAOS_DONE);
    /* nobody woke it: the clock jumped straight to its deadline */
    T_EXPECT_EQ(g_rc, ETIMEDOUT);
    T_EXPECT_EQ(g_woke_at, start + 5000);
    T_EXPECT(chaos_steps(e) <= 3);
    chaos_engine_free(e);
}

/* ---- a wake before the deadline ---- */

static void waker(void *arg) {
    chaos_engine *e = arg;
    chaos_point(e, "waker:before");
    CHAOS_STORE_SEQ(&g_word, 1u);
    chaos_wake(e, &g_word);
}

static void case_wake(void) {
    for (uint64_t seed = 1; seed <= 20; seed++) {
        chaos_config cfg = {.strategy = CHAOS_RANDOM, .seed = seed};
        chaos_engine *e = chaos_engine_new(&cfg);
        g_word = 0;
        g_rc = -1;
        chaos_spawn(e, "sleeper", sleeper, e);
        chaos_spawn(e, "waker", waker, e);
        uint64_t start = chaos_now(e);
        T_EXPECT_EQ(chaos_run(e), CHAOS_DONE);
        T_EXPECT_EQ(g_rc, 0); /* woken (or the value had already changed) */
        T_EXPECT_EQ(g_woke_at, start);
        chaos_engine_free(e);
    }
}

/* ---- hang detection ---- */

static uint32_t g_a, g_b;

static void stuck_a(void *arg) {
    chaos_wait(arg, &g_a, 0, -1);
}

static void stuck_b(void *arg) {
    chaos_wait(arg, &g_b, 0, -1);
}

static void case_hang(void) {
    chaos_config cfg = {.strategy = CHAOS_RANDOM, .seed = 9};
    chaos_engine *e = chaos_engine_new(&cfg);
    g_a = g_b = 0;
    chaos_spawn(e, "stuck-a", stuck_a, e);
    chaos_spawn(e, "stuck-b", stuck_b, e);
    T_EXPECT_EQ(chaos_run(e), CHAOS_HANG);
    const char *f = chaos_finding(e);
    T_EXPECT(strstr(f, "hang") != NULL);
    T_EXPECT(strstr(f, "stuck-a") != NULL);
    T_EXPECT(strstr(f, "stuck-b") != NULL);
    chaos_engine_free(e);
}

/* ---- finding an ordering bug ---- */

static int g_ready, g_bug;

static void init_actor(void *arg) {
    chaos_engine *e = arg;
    chaos_point(e, "init:a");
    chaos_point(e, "init:b");
    ST(g_ready, 1);
}

static void use_actor(void *arg) {
    chaos_engine *e = arg;
    chaos_point(e, "use:a");
    if (!LD(g_ready))
        ST(g_bug, 1); /* used before initialised: needs "use" to overtake "init" */
}

static int runs_to_find(chaos_strategy s) {
    for (uint64_t seed = 1; seed <= 200; seed++) {
        chaos_config cfg = {.strategy = s, .seed = seed, .pct_depth = 1, .pct_steps = 6};
        chaos_engine *e = chaos_engine_new(&cfg);
        g_ready = g_bug = 0;
        chaos_spawn(e, "init", init_actor, e);
        chaos_spawn(e, "use", use_actor, e);
        chaos_run(e);
        chaos_engine_free(e);
        if (g_bug)
            return (int)seed;
    }
    return 0;
}

static void case_find_bug(void) {
    int r = runs_to_find(CHAOS_RANDOM), p = runs_to_find(CHAOS_PCT);
    printf("ordering bug found after %d random runs, %d PCT runs\n", r, p);
    T_EXPECT(r > 0);
    T_EXPECT(p > 0 && p <= 10); /* depth 1 with two actors: probability 1/2 per run */
}

/* ---- bounded exhaustive search ---- */

static void two_step(void *arg) {
    chaos_engine *e = arg;
    chaos_point(e, "two:a");
    chaos_point(e, "two:b");
}

/* DFS over two actors of three segments each (start..a, a..b, b..end): with no bound it
 * enumerates every interleaving once, C(6,3) = 20; with at most one preemption, fewer. */
static unsigned dfs_count(unsigned bound) {
    uint32_t prefix[256];
    size_t nprefix = 0;
    uint64_t seen[256];
    unsigned runs = 0, distinct = 0;
    for (;;) {
        chaos_config cfg = {.strategy = CHAOS_DFS,
                            .decisions = prefix,
                            .ndecisions = nprefix,
                            .dfs_preemptions = bound};
        chaos_engine *e = chaos_engine_new(&cfg);
        chaos_spawn(e, "one", two_step, e);
        chaos_spawn(e, "two", two_step, e);
        T_EXPECT_EQ(chaos_run(e), CHAOS_DONE);
        uint64_t h = chaos_trace_hash(e);
        int dup = 0;
        for (unsigned i = 0; i < distinct; i++)
            dup |= seen[i] == h;
        if (!dup && distinct < 256)
            seen[distinct++] = h;
        T_EXPECT(!dup); /* never the same schedule twice */
        runs++;
        uint32_t next[256];
        size_t n = chaos_dfs_next(e, next, 256);
        chaos_engine_free(e);
        if (n == 0 || runs > 1000)
            break;
        memcpy(prefix, next, n * sizeof *next);
        nprefix = n;
    }
    return distinct;
}

static void case_dfs(void) {
    unsigned all = dfs_count(100), one = dfs_count(1), none = dfs_count(0);
    printf("dfs: %u schedules unbounded, %u with <= 1 preemption, %u with none\n", all, one, none);
    T_EXPECT_EQ(all, 20);
    T_EXPECT(one < all && one > none);
    T_EXPECT_EQ(none, 2); /* who goes first; then nobody is preempted */
}

/* ---- fault plans ---- */

static void case_fault_plan(void) {
    chaos_config cfg = {.strategy = CHAOS_RANDOM,
                        .fault_mode = CHAOS_FAULT_ONCE,
                        .fault_n = 2,
                        .fault_errno = ENOSPC};
    chaos_engine *e = chaos_engine_new(&cfg);
    chaos_seams_install(e);
    /* Outside a run the hooks answer too: the plan counts every fail-point call. */
    vdi_client_set *c = vdi_client_set_new();
    VDConfig vc = {.deviceCount = 1};
    int rc = vdi_client_set_create(c, t_set_name("plan"), &vc);
    T_EXPECT(rc == VD_E_MEMORY); /* the 2nd fail point of create got ENOSPC */
    T_EXPECT_EQ(chaos_faults_injected(e), 1);
    T_EXPECT(chaos_fault_calls(e) >= 2);
    T_EXPECT_CODE(vdi_client_set_close(c), VD_E_PROTOCOL); /* it changed no state */
    vdi_client_set_free(c);
    chaos_seams_install(NULL);
    chaos_guard_release_all();
    chaos_engine_free(e);
}

int main(void) {
    case_determinism();
    case_virtual_time();
    case_wake();
    case_hang();
    case_find_bug();
    case_dfs();
    case_fault_plan();
    return t_done();
}
