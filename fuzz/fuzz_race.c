/* fuzz_race: multi-actor VDI sessions under the controlled engine, every oracle on. The
 * input carries everything, so every crash file is a complete reproducer: byte 0 picks the
 * scenario, bytes 1-2 an optional fault plan, the rest are the scheduling decisions (one
 * byte per choice; when they run out the lowest runnable actor goes). Every byte string
 * decodes. New orderings count as coverage: each pair of consecutive schedule points with
 * an actor switch between them bumps a counter libFuzzer treats as a feature. */
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
        if (a->actor == b->actor)
            continue; /* only switches make an ordering */
        uint32_t h = hash_str(a->point) * 31u ^ hash_str(b->point);
        uint8_t *c = &pair_counters[h & (PAIRS - 1)];
        if (*c < 255)
            (*c)++;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t n;
    const chaos_scenario *sc = chaos_scenarios(&n);
    const chaos_scenario *s = &sc[size > 0 ? data[0] % n : 0];
    chaos_config cfg = {.strategy = CHAOS_BYTES, .record_events = 1, .max_steps = 20000};
    if (size > 2 && (data[1] & 0x80)) { /* a fault plan: once or persistent, at call n */
        cfg.fault_mode = (data[1] & 1) ? CHAOS_FAULT_PERSISTENT : CHAOS_FAULT_ONCE;
        cfg.fault_n = 1u + data[2] % 32u;
        cfg.fault_errno = 12; /* ENOMEM */
    }
    cfg.bytes = size > 3 ? data + 3 : NULL;
    cfg.nbytes = size > 3 ? size - 3 : 0;
    chaos_result r;
    int found = chaos_scenario_run(s, &cfg, &r);
    feed_interleavings(&r);
    if (found) {
        fprintf(stderr, "==vdichaos== finding in scenario %s after %u steps:\n%s\n", s->name,
                r.steps, r.text);
        abort();
    }
    chaos_result_free(&r);
    return 0;
}
