/* fuzz_race: multi-actor VDI sessions under the controlled engine, every oracle on. The
 * input carries everything, so every crash file is a complete reproducer: byte 0 picks the
 * scenario, bytes 1-2 an optional fault plan, the rest are the scheduling decisions (one
 * byte per choice; when they run out the lowest runnable actor goes). Every byte string
 * decodes; chaos/src/chaos_input.c is the format, both ways. New orderings count as coverage: each
 * pair of consecutive schedule points with an actor switch between them bumps a counter libFuzzer
 * treats as a feature. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaos/scenario.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PAIRS (1u << 16)
/* libFuzzer reads this section as extra coverage counters (ignored elsewhere). */
__attribute__((section("__libfuzzer_extra_counters"), used)) static uint8_t pair_counters[PAIRS];

static uint32_t hash_str(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static void feed_interleavings(const chaos_result *r) {
    for (size_t i = 1; i < r->nevents; i++) {
        const chaos_event *a = &r->events[i - 1], *b = &r->events[i];
        if (a->note || b->note)
            continue; /* calls and faults are notes, not schedule points */
        if (a->actor == b->actor)
            continue; /* only switches make an ordering */
        uint32_t h = hash_str(a->point) * 31u ^ hash_str(b->point);
        /* Presence only: counting how often a pair occurs multiplied the features (the
         * counts fall in buckets) and bloated the corpus; see fuzz/NOTES.md. */
        pair_counters[h & (PAIRS - 1)] = 1;
    }
}

/* VDICHAOS_NO_PAIR_FEEDBACK=1 turns the ordering feedback off (to measure what it buys). */
static int pair_feedback(void) {
    static int on = -1;
    if (on < 0) {
        const char *v = getenv("VDICHAOS_NO_PAIR_FEEDBACK");
        on = !(v && *v && strcmp(v, "0") != 0);
    }
    return on;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    chaos_config cfg;
    const chaos_scenario *s = chaos_decode_input(data, size, &cfg);
    chaos_result r;
    int found = chaos_scenario_run(s, &cfg, &r);
    if (pair_feedback())
        feed_interleavings(&r);
    if (found) {
        fprintf(stderr, "==vdichaos== finding in scenario %s after %u steps:\n%s\n", s->name,
                r.steps, r.text);
        abort();
    }
    chaos_result_free(&r);
    return 0;
}
