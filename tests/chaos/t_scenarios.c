/* Every scenario of the library, under the random and PCT strategies for a fixed range of
 * seeds, must end clean under all the oracles; the same seed must give the same trace,
 * and a run's decision list must replay it. The engine found two reference bugs this way
 * (a call overlapping close answered PROTOCOL; an abort published while the agent was
 * between reading its wake-up word and waiting was slept through), so these seeds are
 * also their regression tests. */
#include <stdlib.h>
#include <string.h>

#include "chaos/scenario.h"
#include "t_test.h"
#include "vdi/vdi_seams.h"

int main(int argc, char **argv) {
    unsigned runs = argc > 1 ? (unsigned)atoi(argv[1]) : 200;
    size_t n;
    const chaos_scenario *sc = chaos_scenarios(&n);
    T_REQUIRE(n >= 2);
    unsigned long random_faults = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned findings = 0;
        for (unsigned k = 1; k <= runs; k++) {
            chaos_config cfgs[2] = {
                {.strategy = CHAOS_RANDOM, .seed = k},
                {.strategy = CHAOS_PCT, .seed = k, .pct_depth = 3, .pct_steps = 200}};
            for (int c = 0; c < 2; c++) {
                chaos_result r;
                if (chaos_scenario_run(&sc[i], &cfgs[c], &r)) {
                    if (findings++ < 3)
                        fprintf(stderr, "%s seed %u strategy %d: %s\n", sc[i].name, k, c, r.text);
                }
                chaos_result_free(&r);
            }
        }
        printf("%s: %u runs, %u findings\n", sc[i].name, 2 * runs, findings);
        T_EXPECT_EQ(findings, 0);

        /* determinism: the same seed twice, then the decision list */
        chaos_config cfg = {.strategy = CHAOS_RANDOM, .seed = 77};
        chaos_result a, b, c;
        chaos_scenario_run(&sc[i], &cfg, &a);
        chaos_scenario_run(&sc[i], &cfg, &b);
        T_EXPECT_EQ(a.hash, b.hash);
        chaos_config rep = {
            .strategy = CHAOS_REPLAY, .decisions = a.decisions, .ndecisions = a.ndecisions};
        chaos_scenario_run(&sc[i], &rep, &c);
        T_EXPECT_EQ(c.hash, a.hash);
        /* the scenario really ran its actors (server-death is short: a configuration cut) */
        T_EXPECT(a.steps > (strcmp(sc[i].name, "server-death") == 0 ? 8u : 20u));
        chaos_result_free(&a);
        chaos_result_free(&b);
        chaos_result_free(&c);

        /* a random fault plan replays too: its decisions come from the seed alone, not
         * from the schedule strategy's stream */
        chaos_config rf = {.strategy = CHAOS_RANDOM,
                           .seed = 77,
                           .fault_mode = CHAOS_FAULT_RANDOM,
                           .fault_n = 3,
                           .fault_errno = 12};
        chaos_scenario_run(&sc[i], &rf, &a);
        chaos_config rfr = {.strategy = CHAOS_REPLAY,
                            .seed = 77,
                            .decisions = a.decisions,
                            .ndecisions = a.ndecisions,
                            .fault_mode = CHAOS_FAULT_RANDOM,
                            .fault_n = 3,
                            .fault_errno = 12};
        chaos_scenario_run(&sc[i], &rfr, &c);
        T_EXPECT_EQ(c.hash, a.hash);
        T_EXPECT_EQ(c.faults_injected, a.faults_injected);
        random_faults += a.faults_injected;
        chaos_result_free(&a);
        chaos_result_free(&c);
    }
    T_EXPECT(random_faults > 0);
    /* Every fail point of the reference is asked during the scenarios (so the fault sweep
     * of `vdichaos faults` can reach each one). */
    const char *const *all;
    size_t nall = vdi_seam_points(VDI_POINT_FAIL, &all);
    T_EXPECT(nall > 0);
    for (size_t p = 0; p < nall; p++) {
        int seen = 0;
        for (size_t i = 0; i < n && !seen; i++) {
            chaos_config cfg = {.strategy = CHAOS_RANDOM, .seed = 1};
            chaos_result r;
            chaos_scenario_run(&sc[i], &cfg, &r);
            for (size_t k = 0; k < r.nfail_points; k++)
                seen |= strcmp(r.fail_points[k], all[p]) == 0;
            chaos_result_free(&r);
        }
        if (!seen)
            fprintf(stderr, "fail point %s is never asked under the scenarios\n", all[p]);
        T_EXPECT(seen);
    }
    chaos_guard_release_all();
    return t_done();
}
