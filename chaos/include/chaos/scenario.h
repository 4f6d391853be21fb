/* scenario.h: the library of scenarios aimed at the hazards of Close and abort, and the
 * one function that runs any of them under a strategy and judges the run with the
 * oracles. The vdichaos CLI, the tests and the fuzz targets all go through it. */
#ifndef CHAOS_SCENARIO_H
#define CHAOS_SCENARIO_H

#include "chaos/chaos.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct chaos_scenario {
    const char *name;
    const char *summary;
    /* Build the set (seams already installed) and spawn the actors. */
    void (*setup)(chaos_engine *e);
    /* After a run that finished: the final oracles (they report with chaos_report). */
    void (*check)(chaos_engine *e);
    /* Release what setup built; clean is 0 when the run ended in a finding, leaving
     * actors stopped mid-call (then the objects are abandoned, not closed). */
    void (*cleanup)(int clean);
} chaos_scenario;

typedef struct chaos_result {
    chaos_outcome outcome;
    int finding;     /* 1 when the run ended in any finding */
    char text[1024]; /* the finding, "" when none */
    uint64_t hash;   /* trace hash */
    uint32_t steps;
    int actors;
    uint32_t faults_injected;
    uint32_t *dfs_next; /* CHAOS_DFS: the next prefix to explore (NULL when complete) */
    size_t ndfs_next;
    const char *fail_points[128]; /* the distinct fail points the run asked */
    size_t nfail_points;
    uint32_t *decisions; /* the run's decision list (replays it) */
    size_t ndecisions;
    int8_t *stays;        /* [ndecisions]: the choice that would not have preempted, or -1 */
    uint32_t preemptions; /* decisions that switched away from an actor that could go on */
    int model_checked;    /* the model oracle judged this run (0: outside what it covers) */
    chaos_event *events;  /* with cfg.record_events */
    char *notes;          /* the text of the notes among the events */
    size_t nevents;
    const char *actor_names[CHAOS_MAX_ACTORS + 1]; /* [id] */
} chaos_result;

const chaos_scenario *chaos_scenarios(size_t *count);
const chaos_scenario *chaos_scenario_find(const char *name);

/* The fuzz_race input format (chaos/src/chaos_input.c says what each byte means): byte 0
 * the scenario, bytes 1-2 an optional fault plan, then the scheduling decisions of
 * CHAOS_BYTES, one per byte, or a PCT schedule's depth and seed. Every byte string decodes;
 * cfg->bytes points into data. */
const chaos_scenario *chaos_decode_input(const uint8_t *data, size_t size, chaos_config *cfg);
/* The inverse: sc and cfg as a fuzz_race input in out, from cfg's bytes (CHAOS_BYTES), its
 * decision list (CHAOS_REPLAY, each below 256) or its PCT seed and depth. Returns the
 * length, or 0 when the format cannot say cfg (another fault plan, fault point, errno or
 * strategy, access points, free running) or cap is too small. The step bound is the
 * format's own (20000). */
size_t chaos_encode_input(const chaos_scenario *sc, const chaos_config *cfg, uint8_t *out,
                          size_t cap);

/* Run the scenario once; returns 1 when the run ended in a finding. */
int chaos_scenario_run(const chaos_scenario *sc, const chaos_config *cfg, chaos_result *r);
void chaos_result_free(chaos_result *r);

#ifdef __cplusplus
}
#endif

#endif /* CHAOS_SCENARIO_H */
