/* chaos_input.c: the fuzz_race input format, both ways. The one place that says what each
 * byte of a fuzz_race input means: the fuzz target and vdichaos replay decode with it, and
 * vdichaos shrink encodes its shrunk schedule with it, so a crash file and a minimized
 * reproducer are one format by construction.
 *
 *   byte 0     the scenario, an index into chaos_scenarios() (taken modulo their count)
 *   byte 1     0x80: a fault plan follows in byte 2 (bit 0: persistent, else once);
 *              0x40: a PCT schedule (bits 1-2: its depth, 1 to 3) instead of decision bytes
 *   byte 2     with 0x80: the call the plan fails, 1 + byte % 32 (errno ENOMEM, every point)
 *   bytes 3..  without 0x40: one scheduling decision per byte (taken modulo the actors that
 *              can run; when they run out the lowest runnable actor goes);
 *              with 0x40: bytes 3-10 the PCT seed, little-endian (missing bytes are 0)
 *
 * Every byte string decodes. Encoding is the inverse on the configurations the format can
 * say (chaos_encode_input refuses the others), and decoding what it encodes gives the same
 * run. */
#include <errno.h>
#include <string.h>

#include "chaos/scenario.h"

#define HDR 3        /* the scenario byte and the two plan bytes */
#define SEED_BYTES 8 /* a PCT seed */
#define MAX_STEPS 20000u
#define PCT_STEPS 200u /* the change points of a decoded PCT schedule fall in these steps */
#define MAX_FAULT_N 32u

const chaos_scenario *chaos_decode_input(const uint8_t *data, size_t size, chaos_config *cfg) {
    size_t n;
    const chaos_scenario *all = chaos_scenarios(&n);
    memset(cfg, 0, sizeof *cfg);
    cfg->strategy = CHAOS_BYTES;
    cfg->record_events = 1;
    cfg->max_steps = MAX_STEPS;
    if (size >= HDR && (data[1] & 0x80)) {
        cfg->fault_mode = (data[1] & 1) ? CHAOS_FAULT_PERSISTENT : CHAOS_FAULT_ONCE;
        cfg->fault_n = 1u + data[2] % MAX_FAULT_N;
        cfg->fault_errno = ENOMEM;
    }
    cfg->bytes = size > HDR ? data + HDR : NULL;
    cfg->nbytes = size > HDR ? size - HDR : 0;
    if (size > 1 && (data[1] & 0x40)) {
        /* Compact, and good at the depth-d orderings a byte-per-decision schedule reaches
         * slowly. */
        uint64_t seed = 0;
        for (size_t i = 0; i < SEED_BYTES && HDR + i < size; i++)
            seed |= (uint64_t)data[HDR + i] << (8 * i);
        cfg->strategy = CHAOS_PCT;
        cfg->seed = seed;
        cfg->pct_depth = 1u + ((data[1] >> 1) & 3u) % 3u;
        cfg->pct_steps = PCT_STEPS;
        cfg->bytes = NULL;
        cfg->nbytes = 0;
    }
    return &all[size > 0 ? data[0] % n : 0];
}

/* 1 when the format can say cfg's fault plan and run mode: what decoding sets, or the
 * defaults it leaves (errno 0 is ENOMEM). The step bound is the format's own. */
static int sayable(const chaos_config *cfg) {
    if (cfg->free_running || cfg->access_points || cfg->fault_point)
        return 0;
    if (cfg->fault_mode == CHAOS_FAULT_NONE)
        return 1;
    if (cfg->fault_mode != CHAOS_FAULT_ONCE && cfg->fault_mode != CHAOS_FAULT_PERSISTENT)
        return 0;
    return cfg->fault_n >= 1 && cfg->fault_n <= MAX_FAULT_N &&
           (cfg->fault_errno == 0 || cfg->fault_errno == ENOMEM);
}

size_t chaos_encode_input(const chaos_scenario *sc, const chaos_config *cfg, uint8_t *out,
                          size_t cap) {
    size_t n, idx = 0;
    const chaos_scenario *all = chaos_scenarios(&n);
    while (idx < n && &all[idx] != sc)
        idx++;
    if (idx == n || idx > 255 || !sayable(cfg))
        return 0;
    size_t len;
    switch (cfg->strategy) {
    case CHAOS_PCT:
        if (cfg->pct_depth < 1 || cfg->pct_depth > 3 || cfg->pct_steps != PCT_STEPS)
            return 0;
        len = HDR + SEED_BYTES;
        break;
    case CHAOS_BYTES:
        len = HDR + cfg->nbytes;
        break;
    case CHAOS_REPLAY:
        for (size_t i = 0; i < cfg->ndecisions; i++)
            if (cfg->decisions[i] > 255)
                return 0;
        len = HDR + cfg->ndecisions;
        break;
    default:
        return 0; /* random and dfs runs are said by their decision lists (CHAOS_REPLAY) */
    }
    if (len > cap || len < HDR)
        return 0;
    out[0] = (uint8_t)idx;
    out[1] = 0;
    out[2] = 0;
    if (cfg->fault_mode != CHAOS_FAULT_NONE) {
        out[1] = (uint8_t)(0x80u | (cfg->fault_mode == CHAOS_FAULT_PERSISTENT ? 1u : 0u));
        out[2] = (uint8_t)(cfg->fault_n - 1);
    }
    if (cfg->strategy == CHAOS_PCT) {
        out[1] |= (uint8_t)(0x40u | ((cfg->pct_depth - 1) << 1));
        for (size_t i = 0; i < SEED_BYTES; i++)
            out[HDR + i] = (uint8_t)(cfg->seed >> (8 * i));
    } else if (cfg->strategy == CHAOS_BYTES) {
        if (cfg->nbytes)
            memcpy(out + HDR, cfg->bytes, cfg->nbytes);
    } else {
        for (size_t i = 0; i < cfg->ndecisions; i++)
            out[HDR + i] = (uint8_t)cfg->decisions[i];
    }
    return len;
}
