/* vdichaos: the command users drive the engine with. `list` the scenarios, `run` one under
 * a strategy for many seeds (a finding is saved as a replay file and the command to replay
 * it is printed), `replay` a file with a readable timeline, `shrink` a finding to fewer
 * preemptions and a shorter schedule, `faults` sweeps the fail points. Exit status: 0 clean, 1
 * finding, 2 usage error (or an input that cannot be read), 3 `shrink` given an input that
 * replays clean (nothing to shrink), 4 `shrink` could not save a file that replays to its
 * finding. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chaos/scenario.h"

static int usage_to(FILE *out, int code) {
    fprintf(out,
            "usage: vdichaos list\n"
            "       vdichaos run SCENARIO [--strategy random|pct|dfs] [--depth D] [--seed S]\n"
            "                             [--runs N] [--preemptions P] [--out DIR]\n"
            "                             [--free | --free-nodelay] [--access-points 0|1|2]\n"
            "       vdichaos replay FILE [--target fuzz_NAME]\n"
            "       vdichaos shrink FILE [--out FILE] [--budget RUNS]\n"
            "       vdichaos faults SCENARIO [--seed S]\n"
            "       vdichaos client [OPTIONS] -- COMMAND...   (an unmodified VDI client's audit:\n"
            "                                                 vdichaos client --help)\n"
            "       vdichaos --help | --version\n"
            "exit status: 0 clean, 1 finding, 2 usage error or unreadable input, 3 shrink:\n"
            "nothing to shrink, 4 shrink: the shrunk file does not replay\n");
    return code;
}

static int usage(void) {
    return usage_to(stderr, 2);
}

/* Progress on stderr every 1000 runs: on a terminal one line rewritten in place and ended
 * before anything else is printed; in a log one whole line each time. */
static int progress_open;

static void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void progress(const char *fmt, ...) {
    int tty = isatty(2);
    va_list ap;
    va_start(ap, fmt);
    fputs(tty ? "\r" : "", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(tty ? "\033[K" : "\n", stderr);
    progress_open = tty;
}

static void progress_end(void) {
    if (progress_open)
        fputc('\n', stderr);
    progress_open = 0;
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

static int save_file(const char *path, const chaos_scenario *sc, const chaos_config *cfg,
                     const char *comment, const chaos_result *r);

static int save(const char *dir, const char *scenario, const char *strategy,
                unsigned long long seed, int access_points, const chaos_result *r, char *path,
                size_t cap) {
    snprintf(path, cap, "%s/vdichaos-%s-%s-%llu.replay", dir, scenario, strategy, seed);
    char comment[256];
    snprintf(comment, sizeof comment, "%s %s seed %llu", scenario, strategy, seed);
    chaos_config none = {.strategy = CHAOS_REPLAY, .access_points = access_points};
    return save_file(path, chaos_scenario_find(scenario), &none, comment, r);
}

/* Where a run that kills the process (a sanitizer report, a fatal signal, the unmap guard)
 * leaves its replay file: the engine writes it as it dies (chaos.h, crash_file). */
static void crash_path(char *path, size_t cap, const char *dir, const char *scenario,
                       const char *strategy, unsigned long long seed) {
    snprintf(path, cap, "%s/vdichaos-%s-%s-%llu.crash.replay", dir, scenario, strategy, seed);
}

/* Bounded exhaustive search: every schedule with at most P preemptions, once each. */
static int run_dfs(const chaos_scenario *sc, unsigned long long runs, unsigned preemptions,
                   int access_points, const char *dir) {
    uint32_t *prefix = NULL;
    size_t nprefix = 0;
    unsigned long long k;
    char crash[4096];
    crash_path(crash, sizeof crash, dir, sc->name, "dfs", 0);
    for (k = 0; k < runs; k++) {
        chaos_config cfg = {.strategy = CHAOS_DFS,
                            .decisions = prefix,
                            .ndecisions = nprefix,
                            .dfs_preemptions = preemptions,
                            .crash_file = crash,
                            .access_points = access_points};
        chaos_result r;
        if (chaos_scenario_run(sc, &cfg, &r)) {
            char path[4096];
            progress_end();
            printf("FINDING in schedule %llu of the search:\n%s\n", k + 1, r.text);
            if (save(dir, sc->name, "dfs", k + 1, access_points, &r, path, sizeof path) == 0)
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
            progress_end();
            printf("%s: search complete: all %llu schedules with at most %u preemptions, no "
                   "finding\n",
                   sc->name, k + 1, preemptions);
            return 0;
        }
        if ((k + 1) % 1000 == 0)
            progress("%s: %llu schedules, no finding", sc->name, k + 1);
    }
    free(prefix);
    progress_end();
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
    unsigned long long depth = 3, seed = 1, runs = 1000, preemptions = 2, access = 0;
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
        else if (strcmp(opt, "--access-points") == 0 && parse_u64(val, &access) == 0 && access <= 2)
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
        return run_dfs(sc, runs, (unsigned)preemptions, (int)access, dir);
    uint32_t max_steps = 0;
    int max_actors = 0;
    unsigned long long judged = 0; /* runs the model oracle could judge */
    /* PCT needs an estimate of the steps per run: measure one run first. */
    unsigned steps_estimate = 200;
    {
        chaos_config probe = {.strategy = CHAOS_RANDOM, .seed = seed, .access_points = (int)access};
        chaos_result r;
        chaos_scenario_run(sc, &probe, &r);
        if (r.steps)
            steps_estimate = r.steps + r.steps / 4;
        chaos_result_free(&r);
    }
    for (unsigned long long k = 0; k < runs; k++) {
        unsigned long long s = seed + k;
        char crash[4096];
        crash_path(crash, sizeof crash, dir, sc->name, strategy, s);
        chaos_config cfg = {.strategy = pct ? CHAOS_PCT : CHAOS_RANDOM,
                            .seed = s,
                            .pct_depth = (unsigned)depth,
                            .pct_steps = steps_estimate,
                            .free_running = free_mode != 0,
                            .free_delays = free_mode == 1,
                            .crash_file = crash,
                            .access_points = (int)access};
        chaos_result r;
        if (chaos_scenario_run(sc, &cfg, &r)) {
            char path[4096];
            progress_end();
            printf("\nFINDING in run %llu (seed %llu), %u steps, %d actors:\n%s\n", k + 1, s,
                   r.steps, r.actors, r.text);
            if (save(dir, sc->name, strategy, s, (int)access, &r, path, sizeof path) == 0)
                printf("replay: vdichaos replay %s\n", path);
            else
                fprintf(stderr, "vdichaos: cannot write %s\n", path);
            chaos_result_free(&r);
            return 1;
        }
        judged += r.model_checked != 0;
        if (r.steps > max_steps)
            max_steps = r.steps;
        if (r.actors > max_actors)
            max_actors = r.actors;
        chaos_result_free(&r);
        if ((k + 1) % 1000 == 0)
            progress("%s: %llu/%llu runs, no finding", sc->name, k + 1, runs);
    }
    progress_end();
    printf("%s: %llu %s runs (seeds %llu..%llu), no finding; up to %u steps and %d actors a run\n",
           sc->name, runs, strategy, seed, seed + runs - 1, max_steps, max_actors);
    printf("the model oracle judged %llu of the %llu runs (the others: injected faults "
           "or calls from synchronous callbacks, which it leaves out)\n",
           judged, runs);
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
    printf("%6s %-8s %-14s %s\n", "step", "time", "actor",
           "stopped at  (> call, < its result, fault: an injected failure)");
    for (size_t i = 0; i < r->nevents; i++) {
        const chaos_event *ev = &r->events[i];
        printf("%6u %-8llu %-14s %s%s\n", ev->step, (unsigned long long)(ev->now - 1000000u),
               r->actor_names[ev->actor], ev->note ? "    " : "", ev->point);
    }
    printf("trace hash %016llx\n", (unsigned long long)r->hash);
}

/* A loaded reproducer: a replay file (scenario, optional fault plan, decisions) or a
 * fuzz_race input (decoded exactly as the target decodes it). */
typedef struct loaded {
    const chaos_scenario *sc;
    chaos_config cfg;
    uint32_t *dec; /* replay file: its decisions (cfg points at them) */
    uint8_t *bytes;
    int is_input; /* a fuzz_race input */
} loaded;

static const char *fault_name(chaos_fault_mode m) {
    static const char *const names[] = {"none", "once", "persistent", "random"};
    return (unsigned)m < sizeof names / sizeof names[0] ? names[m] : "?";
}

static void unload(loaded *l) {
    free(l->dec);
    free(l->bytes);
    memset(l, 0, sizeof *l);
}

/* 1 (printed) when PATH is not a regular file: a directory would read as an empty input. */
static int not_a_file(const char *path, int fd) {
    struct stat st;
    int r = fd >= 0 ? fstat(fd, &st) : stat(path, &st);
    if (r != 0) {
        fprintf(stderr, "vdichaos: cannot open %s: %s\n", path, strerror(errno));
        return 1;
    }
    if (S_ISREG(st.st_mode))
        return 0;
    fprintf(stderr, "vdichaos: %s is %s, not a replay file or fuzz input\n", path,
            S_ISDIR(st.st_mode) ? "a directory" : "not a regular file");
    return 1;
}

/* 0 loaded, 2 error (printed). */
static int load(const char *path, loaded *l) {
    memset(l, 0, sizeof *l);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "vdichaos: cannot open %s: %s\n", path, strerror(errno));
        return 2;
    }
    if (not_a_file(path, fileno(f))) {
        fclose(f);
        return 2;
    }
    char line[4096], name[128];
    int version;
    if (!fgets(line, sizeof line, f) ||
        sscanf(line, "vdichaos-replay %d %127s", &version, name) != 2 || version != 1) {
        /* Not a replay file: a fuzz_race input. */
        rewind(f);
        size_t cap = 1 << 20;
        l->bytes = malloc(cap + 1);
        size_t n = l->bytes ? fread(l->bytes, 1, cap + 1, f) : 0;
        int bad = !l->bytes || ferror(f) || n > cap;
        fclose(f);
        if (bad) {
            fprintf(stderr, "vdichaos: %s: %s\n", path,
                    n > cap ? "over 1 MiB: not a replay file, and too long for a fuzz input"
                            : "cannot read it");
            unload(l);
            return 2;
        }
        l->sc = chaos_decode_input(l->bytes, n, &l->cfg);
        l->is_input = 1;
        return 0;
    }
    l->sc = chaos_scenario_find(name);
    if (!l->sc) {
        fprintf(stderr, "vdichaos: %s names an unknown scenario '%s'\n", path, name);
        fclose(f);
        return 2;
    }
    size_t n = 0, cap = 256;
    l->dec = malloc(cap * sizeof *l->dec);
    l->cfg.strategy = CHAOS_REPLAY;
    l->cfg.record_events = 1;
    while (l->dec && fgets(line, sizeof line, f)) {
        char mode[16];
        unsigned fn, fe, ms;
        if (line[0] == '#')
            continue;
        if (sscanf(line, "faults %15s %u %u", mode, &fn, &fe) == 3) {
            l->cfg.fault_mode = !strcmp(mode, "once")         ? CHAOS_FAULT_ONCE
                                : !strcmp(mode, "persistent") ? CHAOS_FAULT_PERSISTENT
                                : !strcmp(mode, "random")     ? CHAOS_FAULT_RANDOM
                                                              : CHAOS_FAULT_NONE;
            l->cfg.fault_n = fn;
            l->cfg.fault_errno = (int)fe;
            continue;
        }
        unsigned long long fs;
        if (sscanf(line, "fault-seed %llu", &fs) == 1) {
            l->cfg.seed = fs; /* a random fault plan's decisions (the schedule is the list) */
            continue;
        }
        if (sscanf(line, "max-steps %u", &ms) == 1) {
            l->cfg.max_steps = ms;
            continue;
        }
        if (sscanf(line, "access-points %u", &ms) == 1) {
            if (ms > 2) {
                fprintf(stderr, "vdichaos: %s: access-points %u (0, 1 or 2)\n", path, ms);
                fclose(f);
                free(l->dec);
                l->dec = NULL;
                return 2;
            }
            l->cfg.access_points = (int)ms;
            continue;
        }
        for (char *c = line, *end; *c;) {
            unsigned long v = strtoul(c, &end, 10);
            if (end == c) {
                c++;
                continue;
            }
            c = end;
            if (n == cap) {
                uint32_t *nd = realloc(l->dec, (cap *= 2) * sizeof *nd);
                if (!nd)
                    break;
                l->dec = nd;
            }
            l->dec[n++] = (uint32_t)v;
        }
    }
    fclose(f);
    if (!l->dec) {
        fprintf(stderr, "vdichaos: out of memory reading %s\n", path);
        return 2;
    }
    l->cfg.decisions = l->dec;
    l->cfg.ndecisions = n;
    return 0;
}

/* Write a replay file: scenario, fault plan, the finding as comments, the decisions. */
static int save_file(const char *path, const chaos_scenario *sc, const chaos_config *cfg,
                     const char *comment, const chaos_result *r) {
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "vdichaos-replay 1 %s\n# %s\n# ", sc->name, comment);
    for (const char *c = r->text; *c; c++) /* the finding, as comment lines */
        fputs(*c == '\n' ? "\n# " : (char[2]){*c, 0}, f);
    fprintf(f, "\n");
    if (cfg->fault_mode != CHAOS_FAULT_NONE)
        fprintf(f, "faults %s %u %d\n", fault_name(cfg->fault_mode), cfg->fault_n,
                cfg->fault_errno);
    if (cfg->fault_mode == CHAOS_FAULT_RANDOM)
        fprintf(f, "fault-seed %llu\n", (unsigned long long)cfg->seed);
    if (cfg->max_steps)
        fprintf(f, "max-steps %u\n", cfg->max_steps);
    if (cfg->access_points)
        fprintf(f, "access-points %d\n", cfg->access_points);
    for (size_t i = 0; i < r->ndecisions; i++)
        fprintf(f, "%u%c", r->decisions[i], (i + 1) % 32 == 0 ? '\n' : ' ');
    fprintf(f, "\n");
    return fclose(f);
}

/* The fuzz target a crash file belongs to: --target, else the corpora/<target>/ folder in
 * its path, else fuzz_race (whose inputs this program decodes itself). */
static const char *target_of(const char *path, const char *given, char *buf, size_t cap) {
    if (given)
        return given;
    for (const char *p = strstr(path, "fuzz_"); p; p = strstr(p + 1, "fuzz_")) {
        size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyz_");
        if (n < cap && (p == path || p[-1] == '/') && p[n] == '/') {
            memcpy(buf, p, n);
            buf[n] = 0;
            return buf;
        }
    }
    return "fuzz_race";
}

/* Another target's input: its plain replay driver, built beside this program
 * (<build>/fuzz/<target>_replay), with the target's trace on (FUZZ_<TARGET>_TRACE), which
 * prints the decoded program op by op. Exit 1 when the driver reports a finding. */
static int replay_with_driver(const char *target, const char *file) {
    char self[4096], driver[4200], env[64];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        fprintf(stderr, "vdichaos: cannot find my own path\n");
        return 2;
    }
    self[n] = 0;
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = 0;
    snprintf(driver, sizeof driver, "%s/../fuzz/%s_replay", self, target);
    if (access(driver, X_OK) != 0) {
        fprintf(stderr, "vdichaos: no replay driver for %s (%s); build the target %s_replay\n",
                target, driver, target);
        return 2;
    }
    size_t k = (size_t)snprintf(env, sizeof env, "FUZZ_");
    for (const char *c = target + 5; *c && k + 7 < sizeof env; c++)
        env[k++] = (char)(*c >= 'a' && *c <= 'z' ? *c - 'a' + 'A' : *c);
    snprintf(env + k, sizeof env - k, "_TRACE");
    printf("%s input %s, replayed by %s_replay with %s=1:\n", target, file, target, env);
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "vdichaos: fork: %s\n", strerror(errno));
        return 2;
    }
    if (pid == 0) {
        setenv(env, "1", 1);
        execl(driver, driver, file, (char *)NULL);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    int clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    printf("%s\n", clean ? "no finding" : "FINDING reproduced (the driver's report is above)");
    return clean ? 0 : 1;
}

static int cmd_replay(int argc, char **argv) {
    const char *given = NULL;
    if (argc == 3 && strcmp(argv[1], "--target") == 0 && strncmp(argv[2], "fuzz_", 5) == 0)
        given = argv[2];
    else if (argc != 1)
        return usage();
    if (not_a_file(argv[0], -1))
        return 2;
    char tbuf[64];
    const char *target = target_of(argv[0], given, tbuf, sizeof tbuf);
    if (strcmp(target, "fuzz_race") != 0)
        return replay_with_driver(target, argv[0]);
    loaded l;
    int rc = load(argv[0], &l);
    if (rc)
        return rc;
    chaos_result r;
    l.cfg.record_events = l.cfg.record_notes = 1; /* the timeline, calls and faults in it */
    int found = chaos_scenario_run(l.sc, &l.cfg, &r);
    if (l.is_input)
        printf("fuzz_race input %s: scenario %s, fault plan %s, %zu decision bytes, %u steps\n",
               argv[0], l.sc->name, fault_name(l.cfg.fault_mode), l.cfg.nbytes, r.steps);
    else
        printf("scenario %s, fault plan %s, %zu decisions, %u steps\n", l.sc->name,
               fault_name(l.cfg.fault_mode), l.cfg.ndecisions, r.steps);
    print_timeline(&r);
    if (found)
        printf("FINDING reproduced:\n%s\n", r.text);
    else
        printf("no finding\n");
    chaos_result_free(&r);
    unload(&l);
    return found ? 1 : 0;
}

/* ---- shrink: the same finding with fewer preemptions and a shorter schedule ---------------
 * A candidate is a decision prefix run under CHAOS_DFS: the prefix is replayed, then every
 * actor runs on without preemption. It is kept when the run ends in a finding of the same
 * oracle with fewer preemptions (or as many and a shorter prefix). */
typedef struct shrinker {
    const chaos_scenario *sc;
    chaos_config base;
    char oracle[64];
    unsigned long long runs, budget;
    uint32_t *best; /* the kept prefix */
    size_t nbest;
    uint32_t best_preemptions, best_steps;
    chaos_result last; /* the run of the last kept candidate */
} shrinker;

static void oracle_of(const char *text, char *out, size_t cap) {
    size_t n = strcspn(text, ":\n");
    if (n >= cap)
        n = cap - 1;
    memcpy(out, text, n);
    out[n] = 0;
}

/* Run a candidate; 1 (and it becomes the best) when it keeps the finding and is smaller. */
static int try_prefix(shrinker *k, const uint32_t *pre, size_t n) {
    if (k->runs >= k->budget)
        return 0;
    chaos_config cfg = k->base;
    cfg.strategy = CHAOS_DFS;
    cfg.decisions = pre;
    cfg.ndecisions = n;
    cfg.bytes = NULL;
    cfg.nbytes = 0;
    cfg.dfs_preemptions = 0;
    chaos_result r;
    int found = chaos_scenario_run(k->sc, &cfg, &r);
    k->runs++;
    char o[64];
    oracle_of(r.text, o, sizeof o);
    int better = found && strcmp(o, k->oracle) == 0 &&
                 (r.preemptions < k->best_preemptions ||
                  (r.preemptions == k->best_preemptions && n < k->nbest));
    if (!better) {
        chaos_result_free(&r);
        return 0;
    }
    uint32_t *copy = malloc((n + 1) * sizeof *copy);
    if (!copy) {
        chaos_result_free(&r);
        return 0;
    }
    memcpy(copy, pre, n * sizeof *copy);
    free(k->best);
    k->best = copy;
    k->nbest = n;
    k->best_preemptions = r.preemptions;
    k->best_steps = r.steps;
    chaos_result_free(&k->last);
    k->last = r;
    return 1;
}

static void shrink_pass(shrinker *k) {
    /* 1. The shortest prefix (bisection over lengths, then a linear walk back). */
    size_t lo = 0, hi = k->nbest;
    while (lo < hi && k->runs < k->budget) {
        size_t mid = lo + (hi - lo) / 2;
        if (try_prefix(k, k->best, mid))
            hi = k->nbest;
        else
            lo = mid + 1;
    }
    /* 2. Each remaining preemption, last first: let the previous actor go on instead. */
    uint32_t *cand = malloc((k->nbest + 1) * sizeof *cand);
    for (size_t i = k->nbest; cand && i-- > 0 && k->runs < k->budget;) {
        if (i >= k->nbest || i >= k->last.ndecisions)
            continue;
        int8_t st = k->last.stays[i];
        if (st < 0 || (uint32_t)st == k->best[i])
            continue;
        memcpy(cand, k->best, k->nbest * sizeof *cand);
        cand[i] = (uint32_t)st;
        (void)try_prefix(k, cand, k->nbest);
    }
    /* 3. Drop chunks of decisions, halving the chunk size down to one. */
    for (size_t chunk = k->nbest / 2; cand && chunk >= 1 && k->runs < k->budget; chunk /= 2) {
        for (size_t at = 0; at + chunk <= k->nbest && k->runs < k->budget;) {
            size_t n = k->nbest - chunk;
            memcpy(cand, k->best, at * sizeof *cand);
            memcpy(cand + at, k->best + at + chunk, (k->nbest - at - chunk) * sizeof *cand);
            if (!try_prefix(k, cand, n))
                at += chunk;
        }
    }
    free(cand);
}

/* The shrunk schedule as a fuzz_race input (PATH.fuzz_race, chaos/src/chaos_input.c's
 * format), so the stored crash of the target is minimized in its schedule too. Checked by
 * running it: written only when it ends in the same oracle's finding. */
static void write_input(const char *path, const chaos_scenario *sc, const chaos_config *cfg,
                        const chaos_result *r, const char *oracle) {
    chaos_config as_list = *cfg;
    as_list.strategy = CHAOS_REPLAY;
    as_list.decisions = r->decisions;
    as_list.ndecisions = r->ndecisions;
    size_t cap = r->ndecisions + 16;
    uint8_t *buf = malloc(cap);
    size_t len = buf ? chaos_encode_input(sc, &as_list, buf, cap) : 0;
    if (!len) {
        free(buf);
        return;
    }
    chaos_config dec;
    const chaos_scenario *back = chaos_decode_input(buf, len, &dec);
    chaos_result rr;
    char o[64] = "";
    int same = back == sc && chaos_scenario_run(back, &dec, &rr);
    if (back == sc) {
        oracle_of(rr.text, o, sizeof o);
        chaos_result_free(&rr);
    }
    char out[4200];
    snprintf(out, sizeof out, "%s.fuzz_race", path);
    FILE *f = same && strcmp(o, oracle) == 0 ? fopen(out, "wb") : NULL;
    if (f && fwrite(buf, 1, len, f) == len && fclose(f) == 0)
        printf("as a fuzz_race input: %s (%zu bytes)\n", out, len);
    else if (f)
        fclose(f);
    free(buf);
}

static int cmd_shrink(int argc, char **argv) {
    if (argc != 1 && argc != 3 && argc != 5)
        return usage();
    const char *out = NULL;
    unsigned long long budget = 5000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--out") == 0)
            out = argv[i + 1];
        else if (strcmp(argv[i], "--budget") != 0 || parse_u64(argv[i + 1], &budget) || !budget)
            return usage();
    }
    loaded l;
    int rc = load(argv[0], &l);
    if (rc)
        return rc;
    shrinker k = {.sc = l.sc, .base = l.cfg, .budget = budget};
    chaos_result r0;
    if (!chaos_scenario_run(l.sc, &l.cfg, &r0)) {
        printf("%s: no finding to shrink (the run is clean)\n", argv[0]);
        chaos_result_free(&r0);
        unload(&l);
        return 3;
    }
    oracle_of(r0.text, k.oracle, sizeof k.oracle);
    printf("%s: %s finding, %u steps, %u preemptions, %zu decisions\n", argv[0], k.oracle, r0.steps,
           r0.preemptions, r0.ndecisions);
    /* The starting point: the run's own decisions, as a DFS prefix. */
    k.best_preemptions = UINT32_MAX;
    k.nbest = SIZE_MAX;
    if (!try_prefix(&k, r0.decisions, r0.ndecisions)) {
        printf("%s: the finding does not reproduce from its own decisions; nothing shrunk\n",
               argv[0]);
        chaos_result_free(&r0);
        unload(&l);
        return 1;
    }
    for (;;) {
        uint32_t p = k.best_preemptions;
        size_t n = k.nbest;
        shrink_pass(&k);
        if ((k.best_preemptions == p && k.nbest == n) || k.runs >= k.budget)
            break;
    }
    char path[4096];
    if (out)
        snprintf(path, sizeof path, "%s", out);
    else
        snprintf(path, sizeof path, "%s.shrunk", argv[0]);
    char comment[256];
    snprintf(comment, sizeof comment, "shrunk from %s: %u -> %u preemptions, %u -> %u steps",
             argv[0], r0.preemptions, k.best_preemptions, r0.steps, k.best_steps);
    chaos_config saved = k.base;
    rc = save_file(path, l.sc, &saved, comment, &k.last);
    /* The saved file must replay to the same finding and trace. */
    loaded back;
    int ok = rc == 0 && load(path, &back) == 0;
    if (ok) {
        chaos_result r;
        char o[64] = "";
        ok = chaos_scenario_run(back.sc, &back.cfg, &r) && r.hash == k.last.hash;
        oracle_of(r.text, o, sizeof o);
        ok = ok && strcmp(o, k.oracle) == 0;
        chaos_result_free(&r);
        unload(&back);
    }
    printf("shrunk in %llu runs: preemptions %u -> %u, steps %u -> %u, schedule prefix %zu -> "
           "%zu decisions\n%s\n",
           k.runs, r0.preemptions, k.best_preemptions, r0.steps, k.best_steps, r0.ndecisions,
           k.nbest, k.last.text);
    if (!ok)
        fprintf(stderr, "vdichaos: %s does not replay to the same finding\n", path);
    else
        printf("replay: vdichaos replay %s\n", path);
    if (ok && l.is_input)
        write_input(path, l.sc, &k.base, &k.last, k.oracle);
    chaos_result_free(&r0);
    chaos_result_free(&k.last);
    free(k.best);
    unload(&l);
    return ok ? 1 : 4;
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

/* chaos/client/: linked into vdichaos, not into the seeded-bug copies of tests/meta. */
int vdichaos_client_main(int argc, char **argv) __attribute__((weak));

int main(int argc, char **argv) {
    if (argc < 2)
        return usage();
    if (strcmp(argv[1], "client") == 0) {
        if (!vdichaos_client_main) {
            fprintf(stderr, "vdichaos: this build has no client audit (vdichaos-client has it)\n");
            return 2;
        }
        return vdichaos_client_main(argc - 1, argv + 1);
    }
    /* --help anywhere (vdichaos run --help): the usage, on stdout, and success */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return usage_to(stdout, 0);
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("vdichaos %s\n", VDICHAOS_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "list") == 0 && argc == 2)
        return cmd_list();
    if (strcmp(argv[1], "run") == 0)
        return cmd_run(argc - 2, argv + 2);
    if (strcmp(argv[1], "replay") == 0)
        return cmd_replay(argc - 2, argv + 2);
    if (strcmp(argv[1], "shrink") == 0)
        return cmd_shrink(argc - 2, argv + 2);
    if (strcmp(argv[1], "faults") == 0)
        return cmd_faults(argc - 2, argv + 2);
    return usage();
}
