/* vdichaos: the command users drive the engine with. `list` the scenarios, `run` one under
 * a strategy for many seeds (a finding is saved as a replay file and the command to replay
 * it is printed), `replay` a file with a readable timeline. Exit status: 0 clean, 1 finding,
 * 2 usage error. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaos/scenario.h"

static int usage(void) {
    fprintf(stderr,
            "usage: vdichaos list\n"
            "       vdichaos run SCENARIO [--strategy random|pct|dfs] [--depth D] [--seed S]\n"
            "                             [--runs N] [--preemptions P] [--out DIR]\n"
            "                             [--free | --free-nodelay]\n"
            "       vdichaos replay FILE\n"
            "       vdichaos faults SCENARIO [--seed S]\n");
    return 2;
}

static int parse_u64(const char *s, unsigned long long *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return -1;
    *out = v;
    return 0;
}

static int cmd_list(void) {
    size_t n;
    const chaos_scenario *sc = chaos_scenarios(&n);
    for (size_t i = 0; i < n; i++)
        printf("%-16s %s\n", sc[i].name, sc[i].summary);
    return 0;
}

static int save(const char *dir, const char *scenario, const char *strategy,
                unsigned long long seed, const chaos_result *r, char *path, size_t cap) {
    snprintf(path, cap, "%s/vdichaos-%s-%s-%llu.replay", dir, scenario, strategy, seed);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "vdichaos-replay 1 %s\n", scenario);
    fprintf(f, "# %s %s seed %llu\n# ", scenario, strategy, seed);
    for (const char *c = r->text; *c; c++) /* the finding, as comment lines */
        fputs(*c == '\n' ? "\n# " : (char[2]){*c, 0}, f);
    fprintf(f, "\n");
    for (size_t i = 0; i < r->ndecisions; i++)
        fprintf(f, "%u%c", r->decisions[i], (i + 1) % 32 == 0 ? '\n' : ' ');
    fprintf(f, "\n");
    return fclose(f);
}

/* Bounded exhaustive search: every schedule with at most P preemptions, once each. */
static int run_dfs(const chaos_scenario *sc, unsigned long long runs, unsigned preemptions,
                   const char *dir) {
    uint32_t *prefix = NULL;
    size_t nprefix = 0;
    unsigned long long k;
    for (k = 0; k < runs; k++) {
        chaos_config cfg = {.strategy = CHAOS_DFS,
                            .decisions = prefix,
                            .ndecisions = nprefix,
                            .dfs_preemptions = preemptions};
        chaos_result r;
        if (chaos_scenario_run(sc, &cfg, &r)) {
            char path[4096];
            printf("FINDING in schedule %llu of the search:\n%s\n", k + 1, r.text);
            if (save(dir, sc->name, "dfs", k + 1, &r, path, sizeof path) == 0)
                printf("replay: vdichaos replay %s\n", path);
            chaos_result_free(&r);
            free(prefix);
            return 1;
        }
        free(prefix);
        prefix = r.dfs_next;
        nprefix = r.ndfs_next;
        r.dfs_next = NULL;
        chaos_result_free(&r);
        if (!prefix) {
            printf("%s: search complete: all %llu schedules with at most %u preemptions, no "
                   "finding\n",
                   sc->name, k + 1, preemptions);
            return 0;
        }
        if ((k + 1) % 1000 == 0)
            fprintf(stderr, "\r%s: %llu schedules, no finding", sc->name, k + 1);
    }
    free(prefix);
    printf("%s: %llu schedules with at most %u preemptions, no finding; the search is not "
           "complete (raise --runs)\n",
           sc->name, k, preemptions);
    return 0;
}

static int cmd_run(int argc, char **argv) {
    if (argc < 1)
        return usage();
    const chaos_scenario *sc = chaos_scenario_find(argv[0]);
    if (!sc) {
        fprintf(stderr, "vdichaos: no scenario '%s' (see vdichaos list)\n", argv[0]);
        return 2;
    }
    const char *strategy = "random", *dir = ".";
    unsigned long long depth = 3, seed = 1, runs = 1000, preemptions = 2;
    int free_mode = 0; /* 1: real threads with seeded delays, 2: real threads as they are */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--free") == 0 || strcmp(argv[i], "--free-nodelay") == 0) {
            free_mode = argv[i][6] ? 2 : 1;
            continue;
        }
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!val)
            return usage();
        i++;
        if (strcmp(opt, "--strategy") == 0 &&
            (!strcmp(val, "random") || !strcmp(val, "pct") || !strcmp(val, "dfs")))
            strategy = val;
        else if (strcmp(opt, "--depth") == 0 && parse_u64(val, &depth) == 0 && depth >= 1 &&
                 depth <= 16)
            ;
        else if (strcmp(opt, "--seed") == 0 && parse_u64(val, &seed) == 0)
            ;
        else if (strcmp(opt, "--runs") == 0 && parse_u64(val, &runs) == 0 && runs >= 1)
            ;
        else if (strcmp(opt, "--preemptions") == 0 && parse_u64(val, &preemptions) == 0 &&
                 preemptions <= 64)
            ;
        else if (strcmp(opt, "--out") == 0)
            dir = val;
        else {
            fprintf(stderr, "vdichaos: bad option or value: %s %s\n", opt, val);
            return usage();
        }
    }
    int pct = strcmp(strategy, "pct") == 0;
    if (strcmp(strategy, "dfs") == 0)
        return run_dfs(sc, runs, (unsigned)preemptions, dir);
    uint32_t max_steps = 0;
    int max_actors = 0;
    /* PCT needs an estimate of the steps per run: measure one run first. */
    unsigned steps_estimate = 200;
    {
        chaos_config probe = {.strategy = CHAOS_RANDOM, .seed = seed};
        chaos_result r;
        chaos_scenario_run(sc, &probe, &r);
        if (r.steps)
            steps_estimate = r.steps + r.steps / 4;
        chaos_result_free(&r);
    }
    for (unsigned long long k = 0; k < runs; k++) {
        unsigned long long s = seed + k;
        chaos_config cfg = {.strategy = pct ? CHAOS_PCT : CHAOS_RANDOM,
                            .seed = s,
                            .pct_depth = (unsigned)depth,
                            .pct_steps = steps_estimate,
                            .free_running = free_mode != 0,
                            .free_delays = free_mode == 1};
        chaos_result r;
        if (chaos_scenario_run(sc, &cfg, &r)) {
            char path[4096];
            printf("\nFINDING in run %llu (seed %llu), %u steps, %d actors:\n%s\n", k + 1, s,
                   r.steps, r.actors, r.text);
            if (save(dir, sc->name, strategy, s, &r, path, sizeof path) == 0)
                printf("replay: vdichaos replay %s\n", path);
            else
                fprintf(stderr, "vdichaos: cannot write %s\n", path);
            chaos_result_free(&r);
            return 1;
        }
        if (r.steps > max_steps)
            max_steps = r.steps;
        if (r.actors > max_actors)
            max_actors = r.actors;
        chaos_result_free(&r);
        if ((k + 1) % 1000 == 0)
            fprintf(stderr, "\r%s: %llu/%llu runs, no finding", sc->name, k + 1, runs);
    }
    if (runs >= 1000)
        fprintf(stderr, "\n");
    printf("%s: %llu %s runs (seeds %llu..%llu), no finding; up to %u steps and %d actors a run\n",
           sc->name, runs, strategy, seed, seed + runs - 1, max_steps, max_actors);
    if (pct) {
        /* PCT finds a given bug of depth d with probability at least 1 / (n k^(d-1)) per
         * run (n actors, k steps); so after N clean runs the chance that such a bug
         * exists and was missed every time is at most (1 - p)^N. */
        printf("PCT bound on having missed a bug, from n=%d actors and k=%u steps:\n", max_actors,
               max_steps);
        for (int d = 1; d <= 3; d++) {
            double p = 1.0 / ((double)max_actors * pow((double)max_steps, d - 1));
            double miss = pow(1.0 - p, (double)runs);
            printf("  depth %d: per-run p >= %.3g, missed after %llu runs <= %.3g\n", d, p, runs,
                   miss);
        }
    }
    return 0;
}

static void print_timeline(const chaos_result *r) {
    printf("%6s %-8s %-14s %s\n", "step", "time", "actor", "stopped at");
    for (size_t i = 0; i < r->nevents; i++) {
        const chaos_event *ev = &r->events[i];
        printf("%6u %-8llu %-14s %s\n", ev->step, (unsigned long long)(ev->now - 1000000u),
               r->actor_names[ev->actor], ev->point);
    }
    printf("trace hash %016llx\n", (unsigned long long)r->hash);
}

/* A crash file (or any input) of fuzz_race: decoded exactly as the target decodes it. */
static int replay_input(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "vdichaos: cannot open %s: %s\n", path, strerror(errno));
        return 2;
    }
    static uint8_t buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    chaos_config cfg;
    const chaos_scenario *sc = chaos_decode_input(buf, n, &cfg);
    chaos_result r;
    int found = chaos_scenario_run(sc, &cfg, &r);
    printf("fuzz_race input %s: scenario %s, fault plan %s, %zu decision bytes, %u steps\n", path,
           sc->name,
           cfg.fault_mode == CHAOS_FAULT_NONE   ? "none"
           : cfg.fault_mode == CHAOS_FAULT_ONCE ? "once"
                                                : "persistent",
           cfg.nbytes, r.steps);
    print_timeline(&r);
    if (found)
        printf("FINDING reproduced:\n%s\n", r.text);
    else
        printf("no finding\n");
    chaos_result_free(&r);
    return found ? 1 : 0;
}

static int cmd_replay(int argc, char **argv) {
    if (argc != 1)
        return usage();
    FILE *f = fopen(argv[0], "r");
    if (!f) {
        fprintf(stderr, "vdichaos: cannot open %s: %s\n", argv[0], strerror(errno));
        return 2;
    }
    char name[128];
    int version;
    if (fscanf(f, "vdichaos-replay %d %127s", &version, name) != 2 || version != 1) {
        fclose(f);
        return replay_input(argv[0]); /* not a replay file: a fuzz_race input */
    }
    const chaos_scenario *sc = chaos_scenario_find(name);
    if (!sc) {
        fprintf(stderr, "vdichaos: %s names an unknown scenario '%s'\n", argv[0], name);
        fclose(f);
        return 2;
    }
    size_t n = 0, cap = 256;
    uint32_t *dec = malloc(cap * sizeof *dec);
    int c;
    while (dec && (c = fgetc(f)) != EOF) {
        if (c == '#') { /* comment to the end of the line */
            while ((c = fgetc(f)) != EOF && c != '\n')
                ;
            continue;
        }
        if (c < '0' || c > '9')
            continue;
        ungetc(c, f);
        unsigned v;
        if (fscanf(f, "%u", &v) != 1)
            break;
        if (n == cap) {
            uint32_t *nd = realloc(dec, (cap *= 2) * sizeof *nd);
            if (!nd)
                break;
            dec = nd;
        }
        dec[n++] = v;
    }
    fclose(f);
    chaos_config cfg = {
        .strategy = CHAOS_REPLAY, .decisions = dec, .ndecisions = n, .record_events = 1};
    chaos_result r;
    int found = chaos_scenario_run(sc, &cfg, &r);
    printf("scenario %s, %zu decisions, %u steps\n", name, n, r.steps);
    print_timeline(&r);
    if (found)
        printf("FINDING reproduced:\n%s\n", r.text);
    else
        printf("no finding\n");
    chaos_result_free(&r);
    free(dec);
    return found ? 1 : 0;
}

/* SQLite-style sweep: fail the n-th fail-point call, n = 1, 2, ... until a run sees no
 * fault, once and then persistently; every run must end clean under the oracles. */
static int cmd_faults(int argc, char **argv) {
    if (argc != 1 && argc != 3)
        return usage();
    const chaos_scenario *sc = chaos_scenario_find(argv[0]);
    unsigned long long seed = 1;
    if (!sc || (argc == 3 && (strcmp(argv[1], "--seed") || parse_u64(argv[2], &seed))))
        return usage();
    static const chaos_fault_mode modes[] = {CHAOS_FAULT_ONCE, CHAOS_FAULT_PERSISTENT};
    static const char *mode_names[] = {"once", "persistent"};
    unsigned total = 0;
    for (int m = 0; m < 2; m++) {
        unsigned n;
        for (n = 1;; n++) {
            chaos_config cfg = {.strategy = CHAOS_RANDOM,
                                .seed = seed,
                                .fault_mode = modes[m],
                                .fault_n = n,
                                .fault_errno = ENOMEM};
            chaos_result r;
            int found = chaos_scenario_run(sc, &cfg, &r);
            total++;
            if (found) {
                printf("FINDING with the fault at call %u (%s): %s\n", n, mode_names[m], r.text);
                chaos_result_free(&r);
                return 1;
            }
            uint32_t injected = r.faults_injected;
            chaos_result_free(&r);
            if (!injected)
                break;
        }
        printf("%s: %u fail-point calls failed %s, each run clean\n", sc->name, n - 1,
               mode_names[m]);
    }
    printf("%u runs\n", total);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return usage();
    if (strcmp(argv[1], "list") == 0 && argc == 2)
        return cmd_list();
    if (strcmp(argv[1], "run") == 0)
        return cmd_run(argc - 2, argv + 2);
    if (strcmp(argv[1], "replay") == 0)
        return cmd_replay(argc - 2, argv + 2);
    if (strcmp(argv[1], "faults") == 0)
        return cmd_faults(argc - 2, argv + 2);
    return usage();
}
