/* The fuzz_race input format both ways (chaos/src/chaos_input.c): every configuration it
 * can say encodes and decodes back to itself, for every scenario; what it cannot say is
 * refused, not written wrong; and any byte string decodes to a configuration whose encoding
 * decodes to the same one again. Finally, a shrunk schedule as encoded replays: a run's
 * decision list through the format gives the run's trace. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chaos/scenario.h"
#include "t_test.h"

/* The parts of a configuration the format carries. */
static int same(const chaos_config *a, const chaos_config *b) {
    if (a->strategy != b->strategy || a->fault_mode != b->fault_mode ||
        a->max_steps != b->max_steps)
        return 0;
    if (a->fault_mode != CHAOS_FAULT_NONE &&
        (a->fault_n != b->fault_n || a->fault_errno != b->fault_errno))
        return 0;
    if (a->strategy == CHAOS_PCT)
        return a->seed == b->seed && a->pct_depth == b->pct_depth && a->pct_steps == b->pct_steps;
    return a->nbytes == b->nbytes && (a->nbytes == 0 || memcmp(a->bytes, b->bytes, a->nbytes) == 0);
}

static uint64_t next(uint64_t *x) { /* splitmix64: a fixed stream, no clock */
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Encode sc and cfg, decode, and expect sc and cfg's carried parts back (as CHAOS_BYTES
 * when cfg is a decision list). */
static void round_trip(const chaos_scenario *sc, const chaos_config *cfg) {
    uint8_t buf[256];
    size_t len = chaos_encode_input(sc, cfg, buf, sizeof buf);
    T_REQUIRE(len >= 3);
    chaos_config back;
    T_EXPECT(chaos_decode_input(buf, len, &back) == sc);
    chaos_config want = *cfg;
    want.max_steps = 20000;
    if (want.fault_mode != CHAOS_FAULT_NONE && want.fault_errno == 0)
        want.fault_errno = ENOMEM;
    if (cfg->strategy == CHAOS_REPLAY) {
        uint8_t as_bytes[256];
        for (size_t i = 0; i < cfg->ndecisions; i++)
            as_bytes[i] = (uint8_t)cfg->decisions[i];
        want.strategy = CHAOS_BYTES;
        want.bytes = as_bytes;
        want.nbytes = cfg->ndecisions;
        T_EXPECT(same(&want, &back));
        return;
    }
    T_EXPECT(same(&want, &back));
}

int main(void) {
    size_t n;
    const chaos_scenario *sc = chaos_scenarios(&n);
    T_REQUIRE(n >= 2 && n <= 256);
    static const uint8_t bytes[] = {0, 1, 2, 7, 255, 128, 3};
    static const uint32_t decisions[] = {0, 1, 15, 2, 255, 3};
    for (size_t i = 0; i < n; i++) {
        for (int f = 0; f < 5; f++) {
            static const chaos_fault_mode modes[] = {CHAOS_FAULT_NONE, CHAOS_FAULT_ONCE,
                                                     CHAOS_FAULT_ONCE, CHAOS_FAULT_PERSISTENT,
                                                     CHAOS_FAULT_PERSISTENT};
            static const uint32_t calls[] = {0, 1, 32, 5, 32};
            chaos_config c = {.strategy = CHAOS_BYTES,
                              .bytes = bytes,
                              .nbytes = sizeof bytes,
                              .fault_mode = modes[f],
                              .fault_n = calls[f],
                              .fault_errno = f == 2 ? 0 : ENOMEM};
            round_trip(&sc[i], &c);
            c.nbytes = 0;
            c.bytes = NULL;
            round_trip(&sc[i], &c);
            chaos_config r = c;
            r.strategy = CHAOS_REPLAY;
            r.decisions = decisions;
            r.ndecisions = sizeof decisions / sizeof decisions[0];
            round_trip(&sc[i], &r);
            for (unsigned d = 1; d <= 3; d++) {
                chaos_config p = c;
                p.strategy = CHAOS_PCT;
                p.pct_depth = d;
                p.pct_steps = 200;
                p.seed = 0x0123456789abcdefull * d;
                round_trip(&sc[i], &p);
            }
        }
    }

    /* What the format cannot say is refused. */
    uint8_t buf[64];
    chaos_config ok = {.strategy = CHAOS_BYTES, .bytes = bytes, .nbytes = sizeof bytes};
    T_EXPECT(chaos_encode_input(&sc[0], &ok, buf, sizeof buf) == 3 + sizeof bytes);
    T_EXPECT_EQ(chaos_encode_input(&sc[0], &ok, buf, 3 + sizeof bytes - 1), 0);
    chaos_scenario stranger = sc[0];
    T_EXPECT_EQ(chaos_encode_input(&stranger, &ok, buf, sizeof buf), 0);
    chaos_config bad[] = {
        {.strategy = CHAOS_BYTES, .fault_mode = CHAOS_FAULT_ONCE, .fault_n = 33},
        {.strategy = CHAOS_BYTES, .fault_mode = CHAOS_FAULT_ONCE, .fault_n = 0},
        {.strategy = CHAOS_BYTES, .fault_mode = CHAOS_FAULT_RANDOM, .fault_n = 3},
        {.strategy = CHAOS_BYTES, .fault_mode = CHAOS_FAULT_ONCE, .fault_n = 1, .fault_errno = EIO},
        {.strategy = CHAOS_BYTES, .fault_mode = CHAOS_FAULT_ONCE, .fault_n = 1, .fault_point = "x"},
        {.strategy = CHAOS_BYTES, .access_points = 1},
        {.strategy = CHAOS_BYTES, .free_running = 1},
        {.strategy = CHAOS_PCT, .pct_depth = 4, .pct_steps = 200},
        {.strategy = CHAOS_PCT, .pct_depth = 0, .pct_steps = 200},
        {.strategy = CHAOS_PCT, .pct_depth = 2, .pct_steps = 100},
        {.strategy = CHAOS_RANDOM, .seed = 1},
        {.strategy = CHAOS_DFS},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        size_t len = chaos_encode_input(&sc[0], &bad[k], buf, sizeof buf);
        if (len)
            fprintf(stderr, "configuration %zu encoded (%zu bytes), not refused\n", k, len);
        T_EXPECT_EQ(len, 0);
    }
    static const uint32_t wide[] = {1, 256};
    chaos_config w = {.strategy = CHAOS_REPLAY, .decisions = wide, .ndecisions = 2};
    T_EXPECT_EQ(chaos_encode_input(&sc[0], &w, buf, sizeof buf), 0);

    /* Any byte string: decode, encode, decode gives the same configuration, and the
     * encoding is stable. */
    uint64_t x = 42;
    for (int k = 0; k < 5000; k++) {
        uint8_t in[24], e1[32], e2[32];
        size_t len = (size_t)(next(&x) % sizeof in);
        for (size_t j = 0; j < len; j++)
            in[j] = (uint8_t)next(&x);
        chaos_config a, b;
        const chaos_scenario *s1 = chaos_decode_input(in, len, &a);
        size_t l1 = chaos_encode_input(s1, &a, e1, sizeof e1);
        T_REQUIRE(l1 >= 3);
        T_EXPECT(chaos_decode_input(e1, l1, &b) == s1);
        T_EXPECT(same(&a, &b));
        size_t l2 = chaos_encode_input(s1, &b, e2, sizeof e2);
        T_EXPECT(l2 == l1 && memcmp(e1, e2, l1) == 0);
    }

    /* A run's decision list through the format replays the run (vdichaos shrink's use). */
    for (size_t i = 0; i < n; i++) {
        chaos_config cfg = {.strategy = CHAOS_RANDOM, .seed = 5, .max_steps = 20000};
        chaos_result a, b;
        chaos_scenario_run(&sc[i], &cfg, &a);
        chaos_config list = {
            .strategy = CHAOS_REPLAY, .decisions = a.decisions, .ndecisions = a.ndecisions};
        size_t cap = a.ndecisions + 3;
        uint8_t *in = malloc(cap);
        T_REQUIRE(in);
        size_t len = chaos_encode_input(&sc[i], &list, in, cap);
        T_EXPECT_EQ(len, cap);
        chaos_config dec;
        T_EXPECT(chaos_decode_input(in, len, &dec) == &sc[i]);
        chaos_scenario_run(&sc[i], &dec, &b);
        if (b.hash != a.hash)
            fprintf(stderr, "%s: the encoded decision list replays to another trace\n", sc[i].name);
        T_EXPECT_EQ(b.hash, a.hash);
        chaos_result_free(&a);
        chaos_result_free(&b);
        free(in);
    }
    chaos_guard_release_all();
    return t_done();
}
