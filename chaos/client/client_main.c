/* client_main.c: `vdichaos client`, the audit of an unmodified VDI client: each run is one
 * server plan (ref/compat/sqlcmd/PLAN.md) played by vdi-sqlcmd against the client, judged
 * by the oracles of audit.c. Strategies: clean (one run, no fault), sweep (from a clean
 * run's command count, each single fault at each index, once), random (seeded
 * combinations), fuzz (AFL++ mutates plans, led by the client's own coverage); `replay
 * PLAN` runs one saved plan. Findings are deduplicated by signature,
 * saved once under the findings directory as their plan, and printed with the command that
 * replays them. Exit 0 clean, 1 finding, 2 usage. */
#include "audit.h"
#include "client_main.h"
#include "pool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Where this build put vdi-sqlcmd and libsqlvdi.so, and where an install puts the library
 * relative to its bin/ (the lookup in find_server() tries an install's layout first). */
#ifndef VDICHAOS_SQLCMD
#define VDICHAOS_SQLCMD ""
#endif
#ifndef VDICHAOS_SCHED_LIB
#define VDICHAOS_SCHED_LIB ""
#endif
#define SCHED_NAME "libvdichaos_sched.so"
#ifndef VDICHAOS_SQLVDI_DIR
#define VDICHAOS_SQLVDI_DIR ""
#endif
#ifndef VDICHAOS_INSTALL_LIBDIR
#define VDICHAOS_INSTALL_LIBDIR "lib"
#endif
#define SQLCMD_NAME "vdi-sqlcmd"
#define SQLVDI_NAME "libsqlvdi.so"

static int client_usage(void) {
    fprintf(stderr,
            "usage: vdichaos client [OPTIONS] -- COMMAND [ARG...]\n"
            "       vdichaos client replay PLAN [OPTIONS] -- COMMAND [ARG...]\n"
            "       vdichaos client shrink PLAN [OPTIONS] -- COMMAND [ARG...]\n"
            "Runs COMMAND (a VDI client, unchanged) against vdi-sqlcmd playing SQL Server from\n"
            "a plan: as sqlcmd on PATH, or, with --statement, started here with the statement\n"
            "('{set}' in it and in COMMAND's arguments is the run's set name).\n"
            "  --plans clean|sweep|random|fuzz  one clean run (default), every single fault,\n"
            "                           seeded combinations, or AFL++ (afl-fuzz on PATH)\n"
            "                           mutating plans, led by the coverage of a client\n"
            "                           built with afl-clang-fast (--budget, 60s)\n"
            "  --statement SQL          the statement vdichaos runs for the client\n"
            "  --seed N --runs N        random: the seed (1) and number of runs (100);\n"
            "                           sweep: at most N runs; clean, replay: N runs of\n"
            "                           the plan (each its own --sched and --shake seed)\n"
            "  --jobs N                 sweep, random: N runs at once (1..64; 1), for\n"
            "                           plans that mostly wait (pause, stall); each run\n"
            "                           in a directory of its own, '{run}' in COMMAND's\n"
            "                           arguments, --media and --restore-command\n"
            "  --shake SEED[:MAX_US]    shake the client's threads: libsqlvdi yields or\n"
            "                           sleeps (up to MAX_US, 1000) at every VDI schedule\n"
            "                           point, seeded per run (a plan's `shake` step)\n"
            "  --sched random:SEED|pct:DEPTH:SEED[:STEPS]  run the client and the server\n"
            "                           under the controlled scheduler (libvdichaos_sched.so),\n"
            "                           a schedule per run (a plan's `schedule` step)\n"
            "  --sched replay:FILE      every run takes the decisions of FILE (a finding's\n"
            "                           .sched), whatever the plan's schedule seed\n"
            "  --budget DURATION        start no run after this long (90s, 10m, 1h)\n"
            "  --faults LIST            abort,close,fail,die-exit,die-kill,pause,stall (all)\n"
            "  --max-index N            sweep: fault indices 1..N only\n"
            "  --media PATH             the file the client presents as a complete backup\n"
            "  --restore-command \"CMD ARG...\"  restores a backup that succeeded (words split\n"
            "                           on spaces): it must restore byte for byte\n"
            "  --backup-command \"CMD ARG...\"   a restore audit: COMMAND restores what this\n"
            "                           backup (run once, clean) wrote\n"
            "  --findings DIR           where findings are saved (findings)\n"
            "  --hang-ms MS             a run longer than this is a hang (30000)\n"
            "  --pause-ms MS            a pause fault's length (1500)\n"
            "  --server-timeout MS      the server's wait in every plan (5000)\n"
            "  --dbsize N --maxtransfersize N  the base plan's geometry (300001, 65536)\n"
            "  --stacks gdb|proc|none   thread stacks on a hang (gdb)\n"
            "  --sqlcmd PATH --lib DIR  vdi-sqlcmd and our libsqlvdi.so's directory (also\n"
            "                           VDICHAOS_SQLCMD, VDICHAOS_LIB; default: beside vdichaos,\n"
            "                           its bin/ and ../lib, or its build tree; then PATH)\n"
            "  --json                   the summary as JSON on stdout\n"
            "  --quiet                  no line per run\n"
            "  --first                  stop at the first finding\n"
            "  --afl                    (internal, replay) fuzz's target: one run; a plan\n"
            "                           beyond the run's limits is skipped, a finding not\n"
            "                           yet in --afl-known FILE aborts\n"
            "Exit status: 0 clean, 1 finding, 2 usage.\n");
    return 2;
}

enum {
    F_ABORT = 1,
    F_CLOSE = 2,
    F_FAIL = 4,
    F_DIE_EXIT = 8,
    F_DIE_KILL = 16,
    F_PAUSE = 32,
    F_STALL = 64,
    F_ALL = 127
};
static const char *const fault_names[] = {"abort",    "close", "fail", "die-exit",
                                          "die-kill", "pause", "stall"};

typedef struct {
    char signature[300];
    char oracle[24], cls[64];
    char file[PATH_MAX];
    char detail[1200];
    unsigned long runs, first_run;
    int is_new;
    char trace[17]; /* the first run's schedule (a scheduled run): its trace hash */
} finding_entry;

/* What afl-fuzz said it did (its fuzzer_stats), for the summary. */
typedef struct {
    int ran;                 /* afl-fuzz ran and wrote its stats */
    unsigned long execs;     /* execs_done */
    double execs_per_second; /* execs_per_sec */
    unsigned long paths;     /* corpus_count: the seeds and what it found */
    unsigned long found;     /* corpus_found: inputs kept for new coverage */
    unsigned long edges;     /* edges_found: the client's edges seen */
    unsigned long crashes;   /* saved_crashes: plans with a new finding */
    unsigned long hangs;     /* saved_hangs: runs over afl-fuzz's timeout */
    unsigned long seconds;   /* run_time */
    unsigned long replayed;  /* crash and hang inputs run again here */
    unsigned long no_repro;  /* ... of which gave no finding */
    long first_crash_ms;     /* afl-fuzz's time to its first crash (its name's time:), -1 */
    int failed;              /* afl-fuzz could not run, or failed */
} fuzz_stats;

typedef struct {
    audit_ctx ctx;
    const char *strategy, *findings_dir, *replay;
    const char *sched_arg; /* --sched as given (the fuzz target gets it again) */
    int afl;               /* --afl: the fuzz strategy's target, one run of the plan */
    const char *afl_known; /* --afl-known: the signatures that are no crash for AFL */
    fuzz_stats fuzz;
    uint64_t seed;
    uint64_t shake_seed;    /* --shake: the client's threads delayed and yielded, 0 = not */
    uint32_t shake_max_us;  /* their longest delay */
    vdi_plan sched;         /* --sched: its `schedule` fields (sched 0: none) */
    uint32_t learned_steps; /* pct without STEPS: the steps of the first scheduled run */
    long runs, max_index, pause_ms, server_timeout;
    uint64_t db_size;
    uint32_t max_transfer;
    double budget;
    unsigned faults;
    int json, quiet, first;
    int pause_given;    /* --pause-ms given (the fuzz seeds' pause is otherwise short) */
    int cannot_run;     /* the command could not be started (exit 127, no session) */
    char **backup_argv; /* a restore audit: the backup that makes its media */
    finding_entry *found;
    int nfound, capfound;
    unsigned long total_runs, runs_with_findings;
    unsigned long planned; /* plans given to runs so far (each --shake seed derives from it) */
    int jobs;              /* --jobs: runs side by side */
    audit_pool *pool;      /* jobs > 1: where sweep and random plans run */
    int stopped;           /* a run could not be made: no further plan */
    double t0;
} session;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_num(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_duration(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || v < 0)
        return -1;
    double mul = 1;
    if (strcmp(end, "ms") == 0)
        mul = 0.001;
    else if (strcmp(end, "m") == 0)
        mul = 60;
    else if (strcmp(end, "h") == 0)
        mul = 3600;
    else if (*end && strcmp(end, "s") != 0)
        return -1;
    *out = v * mul;
    return 0;
}

static int parse_faults(const char *s, unsigned *out) {
    *out = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        unsigned bit = 0;
        for (unsigned i = 0; i < 7; i++)
            if (strcmp(t, fault_names[i]) == 0)
                bit = 1u << i;
        if (strcmp(t, "all") == 0)
            bit = F_ALL;
        if (!bit)
            return -1;
        *out |= bit;
    }
    return *out ? 0 : -1;
}

/* splitmix64: the random strategy's only source of choices. */
static uint64_t next_u64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint32_t fnv32(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

/* The command line that replays a plan. */
static void replay_command(const session *s, const char *plan, char *buf, size_t cap) {
    size_t l = (size_t)snprintf(buf, cap, "vdichaos client replay %s", plan);
    if (s->ctx.media && l < cap)
        l += (size_t)snprintf(buf + l, cap - l, " --media '%s'", s->ctx.media);
    for (int i = 0; s->backup_argv && s->backup_argv[i] && l < cap; i++)
        l += (size_t)snprintf(buf + l, cap - l, "%s%s%s", i ? " " : " --backup-command '",
                              s->backup_argv[i], s->backup_argv[i + 1] ? "" : "'");
    for (int i = 0; s->ctx.restore_argv && s->ctx.restore_argv[i] && l < cap; i++)
        l += (size_t)snprintf(buf + l, cap - l, "%s%s%s", i ? " " : " --restore-command '",
                              s->ctx.restore_argv[i], s->ctx.restore_argv[i + 1] ? "" : "'");
    if (s->ctx.hang_ms != 30000 && l < cap)
        l += (size_t)snprintf(buf + l, cap - l, " --hang-ms %ld", s->ctx.hang_ms);
    if (l < cap)
        l += (size_t)snprintf(buf + l, cap - l, " --");
    for (int i = 0; i < s->ctx.argc && l < cap; i++)
        l += (size_t)snprintf(buf + l, cap - l, " '%s'", s->ctx.argv[i]);
}

static void describe(const vdi_plan *p, char *buf, size_t cap) {
    buf[0] = '\0';
    size_t l = 0;
    if (p->nfaults == 0)
        l = (size_t)snprintf(buf, cap, "%s", vdi_plan_benign(p) ? "clean" : "");
    for (uint32_t i = 0; i < p->nfaults && l < cap; i++) {
        char f[128];
        vdi_plan_fault_print(&p->faults[i], f, sizeof f);
        l += (size_t)snprintf(buf + l, cap - l, "%s%s", i ? "; " : "", f);
    }
    if (p->shake_seed && l < cap)
        l += (size_t)snprintf(buf + l, cap - l, ", shaken");
    if (p->sched && l < cap)
        snprintf(buf + l, cap - l, ", scheduled");
}

/* Records a finding: new signatures are saved as their plan (once: a file already there
 * from an earlier session is known, not new). */
/* A copy of the file from to the file to (made or replaced); 0 when it was made. */
static int copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb");
    if (!in)
        return -1;
    FILE *out = fopen(to, "wb");
    int rc = out ? 0 : -1;
    char buf[8192];
    size_t n;
    while (out && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            rc = -1;
    if (ferror(in))
        rc = -1;
    fclose(in);
    if (out && fclose(out) != 0)
        rc = -1;
    return rc;
}

static void record(session *s, const vdi_plan *p, const audit_finding *f, unsigned long run,
                   const char *trace) {
    char sig[300];
    audit_signature(f, sig, sizeof sig);
    for (int i = 0; i < s->nfound; i++)
        if (strcmp(s->found[i].signature, sig) == 0) {
            s->found[i].runs++;
            return;
        }
    if (s->nfound == s->capfound) {
        int cap = s->capfound ? s->capfound * 2 : 8;
        finding_entry *n = realloc(s->found, (size_t)cap * sizeof *n);
        if (!n)
            return;
        s->found = n;
        s->capfound = cap;
    }
    finding_entry *e = &s->found[s->nfound++];
    memset(e, 0, sizeof *e);
    snprintf(e->signature, sizeof e->signature, "%s", sig);
    snprintf(e->oracle, sizeof e->oracle, "%s", f->oracle);
    snprintf(e->cls, sizeof e->cls, "%s", f->cls);
    snprintf(e->detail, sizeof e->detail, "%s", f->detail);
    e->runs = 1;
    e->first_run = run;
    snprintf(e->trace, sizeof e->trace, "%s", trace);
    (void)mkdir(s->findings_dir, 0755);
    snprintf(e->file, sizeof e->file, "%s/%s-%s-%08x.plan", s->findings_dir, f->oracle, f->cls,
             fnv32(sig));
    struct stat st;
    e->is_new = stat(e->file, &st) != 0;
    char replay[PATH_MAX + 1024], what[600];
    replay_command(s, e->file, replay, sizeof replay);
    describe(p, what, sizeof what);
    if (e->is_new) {
        FILE *out = fopen(e->file, "w");
        static char text[VDI_PLAN_MAX_STATEMENT + 8192];
        size_t n = vdi_plan_print(p, text, sizeof text);
        /* A scheduled run's decisions beside the plan (FINDING.sched): the plan's seed
         * replays the session, and the list is what the scheduler chose, step by step. */
        char kept[PATH_MAX + 64], sched[PATH_MAX + 16];
        snprintf(kept, sizeof kept, "%s/schedules/%s.sched", s->ctx.work, trace);
        snprintf(sched, sizeof sched, "%.*s.sched", (int)(strlen(e->file) - 5), e->file);
        int has_sched = trace[0] && copy_file(kept, sched) == 0;
        if (out) {
            fprintf(out, "# vdichaos client finding: %s\n# signature: %s\n# replay: %s\n", f->cls,
                    sig, replay);
            if (has_sched)
                fprintf(out, "# schedule: trace %s, its decisions in %s\n", trace, sched);
            fwrite(text, 1, n < sizeof text ? n : sizeof text - 1, out);
            fclose(out);
        }
    }
    if (!s->json || !s->quiet) {
        fprintf(stderr, "FINDING %s: %s (run %lu: %s)\n", f->oracle, f->cls, run,
                what[0] ? what : "no fault");
        /* the detail, indented, first lines only */
        const char *d = f->detail;
        for (int lines = 0; *d && lines < 8; lines++) {
            const char *nl = strchr(d, '\n');
            int len = nl ? (int)(nl - d) : (int)strlen(d);
            fprintf(stderr, "  %.*s\n", len, d);
            d = nl ? nl + 1 : d + len;
        }
        fprintf(stderr, "  %s %s\n  replay: %s\n", e->is_new ? "saved" : "known", e->file, replay);
    }
}

/* The plan as it runs: with --shake, each run gets decisions of its own, in its plan. */
static void plan_as_run(session *s, const vdi_plan *plan, vdi_plan *out) {
    *out = *plan;
    if (s->shake_seed && !plan->shake_seed) {
        uint64_t x = s->shake_seed ^ (s->planned + 1) * 0x9e3779b97f4a7c15u;
        out->shake_seed = next_u64(&x) | 1u;
        out->shake_max_us = s->shake_max_us;
    }
    if (s->sched.sched && !plan->sched) { /* a schedule of its own, in the plan */
        uint64_t x = s->sched.sched_seed ^ (s->planned + 1) * 0xbf58476d1ce4e5b9u;
        out->sched = s->sched.sched;
        out->sched_depth = s->sched.sched_depth;
        out->sched_seed = next_u64(&x);
        out->sched_steps = s->sched.sched_steps ? s->sched.sched_steps : s->learned_steps;
    }
    s->planned++;
}

/* A run made: counted, printed, its findings recorded; -1 when it could not run. */
static int account(session *s, const vdi_plan *p, int rc, const audit_result *r) {
    if (rc != 0)
        return -1;
    if (r->exited && r->status == 127 && r->server == -2) {
        fprintf(stderr, "vdichaos client: cannot run %s (exit 127)\n", s->ctx.argv[0]);
        s->cannot_run = 1;
        return -1;
    }
    unsigned long run = ++s->total_runs;
    if (r->nfindings)
        s->runs_with_findings++;
    if (!s->quiet) {
        char what[600];
        describe(p, what, sizeof what);
        fprintf(stderr, "[%4lu] %-40s exit %-4d %-28s %6.2f s%s\n", run,
                what[0] ? what : "no fault", r->exited ? r->status : -r->sig,
                r->server == 1    ? "server: success"
                : r->server == 0  ? "server: failed"
                : r->server == -1 ? "server: died"
                                  : "server: none",
                r->seconds, r->nfindings ? "  FINDING" : "");
    }
    if (r->sched >= 2 && !s->quiet)
        fprintf(stderr, "       %s\n", r->sched_note);
    if (p->sched == 2 && !s->learned_steps && r->sched_steps)
        s->learned_steps = r->sched_steps > 100000000 ? 100000000 : (uint32_t)r->sched_steps;
    for (int i = 0; i < r->nfindings; i++)
        record(s, p, &r->findings[i], run, r->sched_trace);
    return 0;
}

/* One run, here and now: the plan played, judged and accounted. */
static int run_plan(session *s, const vdi_plan *plan, audit_result *r) {
    static vdi_plan p;
    plan_as_run(s, plan, &p);
    return account(s, &p, audit_run(&s->ctx, &p, r), r);
}

/* Does some argument of the client name a run's own file ({run}, or the set name {set},
 * which is the run's too)? */
static int own_files(const session *s) {
    for (int i = 0; i < s->ctx.argc; i++)
        if (strstr(s->ctx.argv[i], "{run}") || strstr(s->ctx.argv[i], "{set}"))
            return 1;
    return 0;
}

static void pool_done(void *arg, const vdi_plan *p, int rc, const audit_result *r) {
    session *s = arg;
    if (account(s, p, rc, r) != 0)
        s->stopped = 1;
}

/* A plan of a strategy: run now, or (--jobs) started beside the others; -1 once a run
 * could not be made. */
static int submit(session *s, const vdi_plan *plan) {
    if (!s->pool) {
        audit_result r;
        return run_plan(s, plan, &r);
    }
    static vdi_plan p;
    plan_as_run(s, plan, &p);
    if (s->stopped || audit_pool_submit(s->pool, &p) != 0)
        return -1;
    return s->stopped ? -1 : 0;
}

static int over_budget(const session *s) {
    if (s->first && s->nfound)
        return 1;
    return s->budget > 0 && now_s() - s->t0 >= s->budget;
}

static void base_plan(const session *s, vdi_plan *p) {
    vdi_plan_init(p);
    if (s->ctx.statement)
        snprintf(p->statement, sizeof p->statement, "%s", s->ctx.statement);
    p->db_size = s->db_size;
    p->max_transfer = s->max_transfer;
    p->timeout_ms = (uint32_t)s->server_timeout;
}

static vdi_plan_fault make_fault(unsigned bit, uint32_t at, uint32_t pause_ms) {
    vdi_plan_fault f;
    memset(&f, 0, sizeof f);
    f.device = -1;
    f.after = at;
    switch (bit) {
    case F_ABORT:
        f.kind = VDI_PLAN_ABORT;
        break;
    case F_CLOSE:
        f.kind = VDI_PLAN_CLOSE;
        break;
    case F_FAIL:
        f.kind = VDI_PLAN_FAIL;
        f.code = 1117; /* ERROR_IO_DEVICE */
        break;
    case F_DIE_EXIT:
    case F_DIE_KILL:
        f.kind = VDI_PLAN_DIE;
        f.how = bit == F_DIE_KILL ? VDI_PLAN_KILL : VDI_PLAN_EXIT;
        break;
    case F_PAUSE:
        f.kind = VDI_PLAN_PAUSE;
        f.ms = pause_ms;
        break;
    default:
        f.kind = VDI_PLAN_STALL;
        break;
    }
    return f;
}

/* The clean run every strategy starts from: its command count sizes the sweep. */
static int clean_run(session *s, long *commands) {
    vdi_plan p;
    audit_result r;
    base_plan(s, &p);
    if (run_plan(s, &p, &r) != 0)
        return -1;
    *commands = r.completed;
    if (r.server != 1)
        fprintf(stderr,
                "vdichaos client: the clean run's session did not succeed (%s); check the "
                "command, and that it runs sqlcmd or uses --statement\n",
                r.server == -2 ? "no session was run" : "the server failed");
    return r.server == 1 ? 0 : -1;
}

/* --plans clean or replay with --runs N: the plan N times, each run with a schedule (and a
 * shake) of its own when --sched (--shake) is given: a stress test otherwise. */
static void repeat_runs(session *s, const vdi_plan *replayed) {
    long commands = 0;
    if (!replayed && clean_run(s, &commands) != 0)
        return;
    for (long done = replayed ? 0 : 1; done < s->runs; done++) {
        if (over_budget(s) || (s->first && s->nfound) || s->stopped)
            return;
        vdi_plan p;
        audit_result r;
        if (replayed)
            p = *replayed;
        else
            base_plan(s, &p);
        if (run_plan(s, &p, &r) != 0)
            return;
    }
}

static void sweep(session *s) {
    long commands = 0;
    if (clean_run(s, &commands) != 0)
        return;
    long top = s->max_index > 0 && s->max_index < commands ? s->max_index : commands;
    long limit = s->runs > 0 ? s->runs : LONG_MAX;
    long done = 1;
    for (unsigned i = 0; i < 7; i++) {
        unsigned bit = 1u << i;
        if (!(s->faults & bit))
            continue;
        for (long at = 1; at <= top; at++) {
            if (over_budget(s) || done >= limit)
                return;
            vdi_plan p;
            base_plan(s, &p);
            p.faults[p.nfaults++] = make_fault(bit, (uint32_t)at, (uint32_t)s->pause_ms);
            if (submit(s, &p) != 0)
                return;
            done++;
        }
        if (bit == F_DIE_EXIT || bit == F_DIE_KILL) {
            for (uint8_t point = VDI_PLAN_AT_OPEN; point <= VDI_PLAN_AT_END; point++) {
                if (over_budget(s) || done >= limit)
                    return;
                vdi_plan p;
                base_plan(s, &p);
                vdi_plan_fault f = make_fault(bit, 0, 0);
                f.point = point;
                p.faults[p.nfaults++] = f;
                if (submit(s, &p) != 0)
                    return;
                done++;
            }
        }
    }
}

static void random_plans(session *s) {
    long commands = 0;
    if (clean_run(s, &commands) != 0)
        return;
    uint64_t rng = s->seed;
    unsigned kinds[7], nk = 0;
    for (unsigned i = 0; i < 7; i++)
        if (s->faults & (1u << i))
            kinds[nk++] = 1u << i;
    for (long run = 1; run < s->runs && !over_budget(s); run++) {
        vdi_plan p;
        base_plan(s, &p);
        if (next_u64(&rng) % 4 == 0)
            p.buffer_count = (uint32_t)(1 + next_u64(&rng) % 6);
        if (next_u64(&rng) % 4 == 0)
            p.delay_ms = (uint32_t)(next_u64(&rng) % 3);
        unsigned n = (unsigned)(1 + next_u64(&rng) % 3);
        for (unsigned i = 0; i < n; i++) {
            unsigned bit = kinds[next_u64(&rng) % nk];
            uint32_t at = (uint32_t)(1 + next_u64(&rng) % (uint64_t)(commands + 1));
            uint64_t pause = (uint64_t)s->pause_ms / 2 + 1 + next_u64(&rng) % (uint64_t)s->pause_ms;
            vdi_plan_fault f = make_fault(bit, at, (uint32_t)pause);
            if (f.kind == VDI_PLAN_DIE && next_u64(&rng) % 4 == 0)
                f.point = (uint8_t)(1 + next_u64(&rng) % 3), f.after = 0;
            p.faults[p.nfaults++] = f;
        }
        if (submit(s, &p) != 0)
            return;
    }
}

/* 1 when plan p, run once, gives a finding with signature sig. */
static int reproduces(session *s, const vdi_plan *p, const char *sig) {
    static audit_result r;
    if (audit_run(&s->ctx, p, &r) != 0)
        return 0;
    s->total_runs++;
    for (int i = 0; i < r.nfindings; i++) {
        char got[300];
        audit_signature(&r.findings[i], got, sizeof got);
        if (strcmp(got, sig) == 0)
            return 1;
    }
    return 0;
}

/* shrink: the fewest faults, earliest, and no incidental delay or BUFFERCOUNT, that still
 * give the plan's first finding; written to PLAN.shrunk. Greedy, like the chaos shrinker:
 * drop each fault, then move each one as early as it still reproduces (1 first, then
 * halving the distance). */
static int shrink_plan(session *s, const vdi_plan *start) {
    static vdi_plan best, cand;
    static audit_result r;
    best = *start;
    if (audit_run(&s->ctx, &best, &r) != 0)
        return 2;
    s->total_runs++;
    if (r.nfindings == 0) {
        fprintf(stderr, "vdichaos client: %s gives no finding: nothing to shrink\n", s->replay);
        return 0;
    }
    char sig[300];
    audit_signature(&r.findings[0], sig, sizeof sig);
    fprintf(stderr, "vdichaos client: shrinking %s (%u faults) for %s\n", s->replay, best.nfaults,
            sig);
    for (int changed = 1; changed && !over_budget(s);) {
        changed = 0;
        for (uint32_t i = 0; i < best.nfaults && !over_budget(s); i++) {
            cand = best;
            memmove(&cand.faults[i], &cand.faults[i + 1],
                    (cand.nfaults - i - 1) * sizeof cand.faults[0]);
            cand.nfaults--;
            if (reproduces(s, &cand, sig)) {
                best = cand;
                changed = 1;
                i--;
            }
        }
        for (uint32_t i = 0; i < best.nfaults && !over_budget(s); i++) {
            vdi_plan_fault *f = &best.faults[i];
            if (f->kind == VDI_PLAN_DIE && f->point != VDI_PLAN_AT_COMMAND)
                continue;
            uint32_t lo = 1, hi = f->after; /* hi reproduces */
            while (lo < hi && !over_budget(s)) {
                uint32_t mid = lo + (hi - lo) / 2;
                cand = best;
                cand.faults[i].after = mid;
                if (reproduces(s, &cand, sig)) {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            if (hi < f->after) {
                f->after = hi;
                changed = 1;
            }
        }
        if (best.delay_ms || best.buffer_count) {
            cand = best;
            cand.delay_ms = 0;
            cand.buffer_count = 0;
            if (reproduces(s, &cand, sig)) {
                best = cand;
                changed = 1;
            }
        }
    }
    char out[PATH_MAX];
    snprintf(out, sizeof out, "%s.shrunk", s->replay);
    static char text[VDI_PLAN_MAX_STATEMENT + 8192];
    size_t n = vdi_plan_print(&best, text, sizeof text);
    FILE *f = fopen(out, "w");
    if (!f || fprintf(f, "# vdichaos client finding, shrunk: %s\n", sig) < 0 ||
        fwrite(text, 1, n, f) != n) {
        if (f)
            fclose(f);
        fprintf(stderr, "vdichaos client: cannot write %s\n", out);
        return 2;
    }
    fclose(f);
    char replay[PATH_MAX + 1024], what[600];
    replay_command(s, out, replay, sizeof replay);
    describe(&best, what, sizeof what);
    fprintf(stderr, "vdichaos client: shrunk to %u fault%s (%s) in %lu runs: %s\n  replay: %s\n",
            best.nfaults, best.nfaults == 1 ? "" : "s", what[0] ? what : "no fault", s->total_runs,
            out, replay);
    return 1;
}

static void json_string(const char *t) {
    putchar('"');
    for (; *t; t++) {
        unsigned char ch = (unsigned char)*t;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void summary(const session *s) {
    double secs = now_s() - s->t0;
    double rate = secs > 0 ? (double)s->total_runs / secs : 0;
    if (s->json) {
        printf("{\"strategy\":");
        json_string(s->replay ? "replay" : s->strategy);
        printf(",\"sqlcmd\":");
        json_string(s->ctx.sqlcmd);
        printf(",\"lib\":");
        json_string(s->ctx.libdir);
        printf(",\"runs\":%lu,\"seconds\":%.3f,\"plans_per_second\":%.2f,\"findings\":[",
               s->total_runs, secs, rate);
        for (int i = 0; i < s->nfound; i++) {
            const finding_entry *e = &s->found[i];
            char replay[PATH_MAX + 1024];
            replay_command(s, e->file, replay, sizeof replay);
            printf("%s{\"oracle\":", i ? "," : "");
            json_string(e->oracle);
            printf(",\"class\":");
            json_string(e->cls);
            printf(",\"signature\":");
            json_string(e->signature);
            printf(",\"runs\":%lu,\"first_run\":%lu,\"new\":%s,\"plan\":", e->runs, e->first_run,
                   e->is_new ? "true" : "false");
            json_string(e->file);
            printf(",\"replay\":");
            json_string(replay);
            printf(",\"detail\":");
            json_string(e->detail);
            if (e->trace[0])
                printf(",\"schedule_trace\":\"%s\"", e->trace);
            printf("}");
        }
        printf("]");
        if (s->fuzz.ran) {
            printf(",\"afl\":{\"execs\":%lu,\"execs_per_second\":%.2f,\"seconds\":%lu,"
                   "\"paths\":%lu,\"paths_found\":%lu,\"edges\":%lu,\"crashes\":%lu,"
                   "\"hangs\":%lu,\"first_crash_seconds\":",
                   s->fuzz.execs, s->fuzz.execs_per_second, s->fuzz.seconds, s->fuzz.paths,
                   s->fuzz.found, s->fuzz.edges, s->fuzz.crashes, s->fuzz.hangs);
            if (s->fuzz.first_crash_ms >= 0)
                printf("%.1f", (double)s->fuzz.first_crash_ms / 1000.0);
            else
                printf("null");
            printf(",\"replayed\":%lu,\"not_reproduced\":%lu}", s->fuzz.replayed, s->fuzz.no_repro);
        }
        printf("}\n");
        return;
    }
    fprintf(stderr, "vdichaos client: %lu runs in %.2f s (%.1f plans/s), %d finding%s\n",
            s->total_runs, secs, rate, s->nfound, s->nfound == 1 ? "" : "s");
    if (s->fuzz.ran) {
        char first[64] = "";
        if (s->fuzz.first_crash_ms >= 0)
            snprintf(first, sizeof first, " (the first crash after %.1f s)",
                     (double)s->fuzz.first_crash_ms / 1000.0);
        fprintf(stderr,
                "  afl-fuzz: %lu execs (%.1f/s), %lu paths (%lu found), %lu edges, %lu crashes, "
                "%lu hangs%s; %lu run again here, %lu without a finding\n",
                s->fuzz.execs, s->fuzz.execs_per_second, s->fuzz.paths, s->fuzz.found,
                s->fuzz.edges, s->fuzz.crashes, s->fuzz.hangs, first, s->fuzz.replayed,
                s->fuzz.no_repro);
    }
    if (s->nfound) {
        fprintf(stderr, "  %-10s %-24s %5s %6s  %s\n", "oracle", "class", "runs", "first", "plan");
        for (int i = 0; i < s->nfound; i++)
            fprintf(stderr, "  %-10s %-24s %5lu %6lu  %s%s\n", s->found[i].oracle, s->found[i].cls,
                    s->found[i].runs, s->found[i].first_run, s->found[i].file,
                    s->found[i].is_new ? "" : " (known)");
    }
}

/* A plan file (any bytes: lines that are no step are skipped, and said so unless quiet). */
static int read_plan(const char *path, vdi_plan *p, int quiet) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (!quiet)
            fprintf(stderr, "vdichaos client: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return -1;
    }
    n = fread(buf, 1, cap, f);
    fclose(f);
    char err[200];
    int skipped = vdi_plan_parse(buf, n, 0, p, err, sizeof err);
    free(buf);
    if (skipped > 0 && !quiet)
        fprintf(stderr, "vdichaos client: %s: %d line(s) skipped; the first: %s\n", path, skipped,
                err);
    return 0;
}

/* "CMD ARG..." split on spaces (no quoting) into a NULL-terminated argv. */
static int split_words(const char *text, char ***out, int which) {
    static char bufs[2][8192];
    static char *wordss[2][256];
    char *buf = bufs[which], **words = wordss[which];
    if (strlen(text) >= sizeof bufs[0])
        return -1;
    snprintf(buf, sizeof bufs[0], "%s", text);
    int n = 0;
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        if (n == 255)
            return -1;
        words[n++] = t;
    }
    words[n] = NULL;
    *out = words;
    return n ? 0 : -1;
}

/* out = DIR/NAME when that is an executable file (X_OK) or a readable one: 0, else -1. */
static int try_path(char *out, size_t cap, const char *dir, const char *name, int mode) {
    struct stat st;
    int w = snprintf(out, cap, "%s/%s", dir, name);
    if (!*dir || w < 0 || (size_t)w >= cap || stat(out, &st) != 0 || !S_ISREG(st.st_mode) ||
        access(out, mode) != 0) {
        out[0] = '\0';
        return -1;
    }
    return 0;
}

/* vdi-sqlcmd and libsqlvdi.so, when neither --sqlcmd/--lib nor VDICHAOS_SQLCMD/VDICHAOS_LIB
 * name them: beside this program (an install: bin/vdi-sqlcmd and bin/../lib), then in the
 * build tree this program lives in, then where this build put them, then vdi-sqlcmd on PATH.
 * A name given without a slash is looked up on PATH. 0, or -1 with the reason printed. */
static int find_server(audit_ctx *c, int lib_given) {
    static char sq[PATH_MAX], lib[PATH_MAX];
    char exe[PATH_MAX], dir[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = '\0';
    int searched = !c->sqlcmd || !*c->sqlcmd;
    if (searched) {
        int w = snprintf(dir, sizeof dir, "%s/../ref/compat/sqlcmd", exe);
        if (try_path(sq, sizeof sq, exe, SQLCMD_NAME, X_OK) == 0 ||
            (w > 0 && (size_t)w < sizeof dir &&
             try_path(sq, sizeof sq, dir, SQLCMD_NAME, X_OK) == 0) ||
            (VDICHAOS_SQLCMD[0] && access(VDICHAOS_SQLCMD, X_OK) == 0 &&
             snprintf(sq, sizeof sq, "%s", VDICHAOS_SQLCMD) > 0))
            c->sqlcmd = sq;
        else
            c->sqlcmd = SQLCMD_NAME;
    }
    if (!strchr(c->sqlcmd, '/')) { /* a name: PATH */
        const char *path = getenv("PATH");
        char entry[PATH_MAX];
        int found = 0;
        while (path && *path && !found) {
            size_t len = strcspn(path, ":");
            snprintf(entry, sizeof entry, "%.*s", (int)(len ? len : 1), len ? path : ".");
            found = try_path(sq, sizeof sq, entry, c->sqlcmd, X_OK) == 0;
            path += len + (path[len] == ':');
        }
        if (!found) {
            fprintf(stderr, "vdichaos client: cannot find %s %son PATH; give --sqlcmd PATH\n",
                    c->sqlcmd, searched ? "beside vdichaos, in its build tree or " : "");
            return -1;
        }
        c->sqlcmd = sq;
    }
    if (access(c->sqlcmd, X_OK) != 0) {
        fprintf(stderr, "vdichaos client: vdi-sqlcmd %s: %s; give --sqlcmd PATH\n", c->sqlcmd,
                strerror(errno));
        return -1;
    }
    if (c->sqlcmd[0] != '/') {
        static char absq[PATH_MAX];
        if (realpath(c->sqlcmd, absq))
            c->sqlcmd = absq;
    }
    if (c->libdir && *c->libdir) {
        if (try_path(lib, sizeof lib, c->libdir, SQLVDI_NAME, R_OK) != 0) {
            fprintf(stderr, "vdichaos client: no readable %s in %s (%s)\n", SQLVDI_NAME, c->libdir,
                    lib_given ? "--lib" : "VDICHAOS_LIB");
            return -1;
        }
        return 0;
    }
    const char *rel[] = {VDICHAOS_INSTALL_LIBDIR, "lib", "lib64", "ref/compat"};
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        int w = snprintf(dir, sizeof dir, "%s/../%s", exe, rel[i]);
        if (w > 0 && (size_t)w < sizeof lib &&
            try_path(lib, sizeof lib, dir, SQLVDI_NAME, R_OK) == 0) {
            memcpy(lib, dir, (size_t)w + 1);
            c->libdir = lib;
            return 0;
        }
    }
    if (try_path(lib, sizeof lib, VDICHAOS_SQLVDI_DIR, SQLVDI_NAME, R_OK) == 0) {
        c->libdir = VDICHAOS_SQLVDI_DIR;
        return 0;
    }
    fprintf(stderr,
            "vdichaos client: cannot find our %s beside vdichaos (../%s) or in its build "
            "tree; give --lib DIR\n",
            SQLVDI_NAME, VDICHAOS_INSTALL_LIBDIR);
    return -1;
}

/* libvdichaos_sched.so: VDICHAOS_SCHED_LIB, else beside our libsqlvdi.so (an install's
 * lib/), else the build tree's. */
static int find_scheduler(audit_ctx *c) {
    static char lib[PATH_MAX];
    const char *env = getenv("VDICHAOS_SCHED_LIB");
    if (env && *env) {
        if (access(env, R_OK) != 0) {
            fprintf(stderr, "vdichaos client: VDICHAOS_SCHED_LIB=%s: %s\n", env, strerror(errno));
            return -1;
        }
        c->schedlib = env;
        return 0;
    }
    if (c->libdir && try_path(lib, sizeof lib, c->libdir, SCHED_NAME, R_OK) == 0) {
        c->schedlib = lib;
        return 0;
    }
    if (VDICHAOS_SCHED_LIB[0] && access(VDICHAOS_SCHED_LIB, R_OK) == 0) {
        c->schedlib = VDICHAOS_SCHED_LIB;
        return 0;
    }
    fprintf(stderr,
            "vdichaos client: --sched: cannot find %s beside %s or in the build tree; set "
            "VDICHAOS_SCHED_LIB\n",
            SCHED_NAME, SQLVDI_NAME);
    return -1;
}

/* ---- fuzz: AFL++ mutates plans, led by the client's coverage. afl-fuzz runs this program
 * once per plan (`replay FILE --afl`, the target); the client, built with afl-clang-fast,
 * inherits afl-fuzz's coverage map (__AFL_SHM_ID) from it, so the edges afl-fuzz counts are
 * the client's. No fork server (AFL_NO_FORKSRV): the client runs as it always does, its
 * instrumentation finding no fork server to talk to. A run with a finding not seen before
 * aborts, which afl-fuzz keeps as a crash; afterwards every crash is run again here, so its
 * finding is recorded like any other strategy's. */

/* The sanitizer options afl-fuzz imposes on its target (symbolize=0 among them, which would
 * take the frames out of the client's reports) are kept from the client: afl-fuzz's child
 * sets the caller's aside in VDICHAOS_AFL_NAME ("=VALUE", or "-" for none), the target puts
 * them back. */
static const char *const afl_env_kept[] = {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS",
                                           "MSAN_OPTIONS", "TSAN_OPTIONS",  "LD_BIND_NOW"};

static void afl_save_env(void) {
    for (size_t i = 0; i < sizeof afl_env_kept / sizeof afl_env_kept[0]; i++) {
        char key[64], kept[8192];
        const char *v = getenv(afl_env_kept[i]);
        snprintf(key, sizeof key, "VDICHAOS_AFL_%s", afl_env_kept[i]);
        snprintf(kept, sizeof kept, "%s%s", v ? "=" : "-", v ? v : "");
        setenv(key, kept, 1);
        unsetenv(afl_env_kept[i]);
    }
}

static void afl_restore_env(void) {
    for (size_t i = 0; i < sizeof afl_env_kept / sizeof afl_env_kept[0]; i++) {
        char key[64];
        snprintf(key, sizeof key, "VDICHAOS_AFL_%s", afl_env_kept[i]);
        const char *v = getenv(key);
        if (!v)
            continue;
        if (v[0] == '=')
            setenv(afl_env_kept[i], v + 1, 1);
        else
            unsetenv(afl_env_kept[i]);
        unsetenv(key);
    }
}

/* NAME in a directory of PATH, into out: 0 when found. */
static int on_path(const char *name, char *out, size_t cap) {
    const char *path = getenv("PATH");
    char entry[PATH_MAX];
    while (path && *path) {
        size_t len = strcspn(path, ":");
        snprintf(entry, sizeof entry, "%.*s", (int)(len ? len : 1), len ? path : ".");
        if (try_path(out, cap, entry, name, X_OK) == 0)
            return 0;
        path += len + (path[len] == ':');
    }
    return -1;
}

static const char *afl_fuzz_path(void) {
    static char path[PATH_MAX];
    return on_path("afl-fuzz", path, sizeof path) == 0 ? path : NULL;
}

/* The fuzz seeds' pause: short, so that afl-fuzz's runs of it stay fast (--pause-ms when
 * given); the stall seed's server gives up after a second. */
static uint32_t fuzz_pause_ms(const session *s) {
    return s->pause_given ? (uint32_t)s->pause_ms : 100;
}

/* A plan afl-fuzz wrote, made a run of this session: the session's statement (a mutated one
 * would start a server of our own beside the client's sqlcmd), its --shake and --sched and
 * not the plan's, the base plan's geometry where the plan sets none. -1 when the plan is
 * beyond what a run may take: a server silent or waiting longer than a quarter of
 * --hang-ms (its hang would be taken for the client's), a database more than 16 times the
 * base plan's, or more than 4096 commands a device. */
static int fuzz_fit(const session *s, vdi_plan *p) {
    vdi_plan base;
    base_plan(s, &base);
    memcpy(p->statement, base.statement, sizeof p->statement);
    p->shake_seed = 0;
    p->shake_max_us = 0;
    p->sched = 0;
    p->sched_depth = 0;
    p->sched_seed = 0;
    p->sched_steps = 0;
    if (!p->db_size)
        p->db_size = base.db_size;
    if (!p->max_transfer)
        p->max_transfer = base.max_transfer;
    if (!p->timeout_ms)
        p->timeout_ms = base.timeout_ms;
    uint64_t quarter = (uint64_t)s->ctx.hang_ms / 4, unit = p->max_transfer;
    for (int d = 0; d < VDI_PLAN_MAX_DEVICES; d++)
        if (p->transfer[d] && p->transfer[d] < unit)
            unit = p->transfer[d];
    uint64_t commands = p->db_size / unit + 8 + (p->flushes > 0 ? (uint64_t)p->flushes : 0);
    uint64_t paused = 0;
    for (uint32_t i = 0; i < p->nfaults; i++)
        if (p->faults[i].kind == VDI_PLAN_PAUSE)
            paused += p->faults[i].ms;
    uint64_t pause_limit = quarter > fuzz_pause_ms(s) ? quarter : fuzz_pause_ms(s);
    uint64_t timeout_limit = quarter > base.timeout_ms ? quarter : base.timeout_ms;
    if (p->db_size > base.db_size * 16 || commands > 4096 || paused > pause_limit ||
        p->timeout_ms > timeout_limit || (uint64_t)p->delay_ms * commands > quarter)
        return -1;
    return 0;
}

/* 1 when the file (one signature a line) holds sig. */
static int known_has(const char *file, const char *sig) {
    FILE *f = file ? fopen(file, "r") : NULL;
    char line[512];
    int has = 0;
    while (f && !has && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        has = strcmp(line, sig) == 0;
    }
    if (f)
        fclose(f);
    return has;
}

/* --afl: the plan once, for afl-fuzz. 1 when the run gave a finding whose signature is not
 * in --afl-known; it is added there, so that afl-fuzz keeps one crash a finding and fuzzes
 * on past it (a plan of a known finding is an ordinary input, its coverage the client's
 * error path). 0 otherwise. */
static int afl_target(session *s, const vdi_plan *plan) {
    static audit_result r;
    static vdi_plan p;
    plan_as_run(s, plan, &p);
    if (audit_run(&s->ctx, &p, &r) != 0)
        return 0;
    int fresh = 0;
    for (int i = 0; i < r.nfindings; i++) {
        char sig[300];
        audit_signature(&r.findings[i], sig, sizeof sig);
        if (known_has(s->afl_known, sig))
            continue;
        FILE *f = s->afl_known ? fopen(s->afl_known, "a") : NULL;
        if (f) {
            fprintf(f, "%s\n", sig);
            fclose(f);
        }
        fresh = 1;
    }
    return fresh;
}

/* The seeds: the base plan, and the first plan of each fault of --faults (after command 1,
 * the deaths at command 1), short ones (fuzz_pause_ms). Their count. */
static int fuzz_seeds(const session *s, vdi_plan *seeds, const char **names) {
    int n = 0;
    base_plan(s, &seeds[n]);
    names[n++] = "clean";
    for (unsigned i = 0; i < 7; i++) {
        unsigned bit = 1u << i;
        if (!(s->faults & bit))
            continue;
        vdi_plan *p = &seeds[n];
        base_plan(s, p);
        p->faults[p->nfaults++] = make_fault(bit, 1, fuzz_pause_ms(s));
        if (bit == F_STALL && p->timeout_ms > 1000)
            p->timeout_ms = 1000;
        names[n++] = fault_names[i];
    }
    return n;
}

/* What AFL may put into plans (its dictionary): whole steps of PLAN.md, a line each, so
 * that one insertion is one more step (the lines it splits are skipped); havoc varies
 * their numbers. Words alone would seldom make a step. */
static const char *const fuzz_tokens[] = {"\nabort after 1\n",
                                          "\nabort after 2 device 0\n",
                                          "\nclose after 1\n",
                                          "\nclose after 3 device 1\n",
                                          "\nfail at 1 code 1117\n",
                                          "\nfail at 2 code 5 device 0\n",
                                          "\ndie at 1 how exit\n",
                                          "\ndie at 2 how kill\n",
                                          "\ndie at open how kill\n",
                                          "\ndie at configured how abort\n",
                                          "\ndie at end how term\n",
                                          "\npause after 1 ms 1500\n",
                                          "\npause after 2 ms 50 device 0\n",
                                          "\nstall after 1\n",
                                          "\nstall after 2 device 1\n",
                                          "\nclearerror after 1\n",
                                          "\nflushes 2\n",
                                          "\ncomplete never\n",
                                          "\ncomplete always\n",
                                          "\nbuffercount 1\n",
                                          "\nbuffercount 6\n",
                                          "\norder 0 reverse\n",
                                          "\ntransfer 0 512\n",
                                          "\nblocksize 512\n",
                                          "\nmaxtransfersize 131072\n",
                                          "\ndelay 2\n",
                                          "\ntimeout 1000\n"};

/* fuzz-in/ (the seeds), fuzz.dict and fuzz-known (the signatures found so far) in the
 * session's directory; 0, or -1 with the reason printed. */
static int fuzz_files(const session *s, const vdi_plan *seeds, const char **names, int n) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/fuzz-in", s->ctx.work);
    if (mkdir(path, 0700) != 0)
        goto fail;
    snprintf(path, sizeof path, "%s/fuzz-tmp", s->ctx.work);
    if (mkdir(path, 0700) != 0)
        goto fail;
    static char text[VDI_PLAN_MAX_STATEMENT + 8192];
    for (int i = 0; i < n; i++) {
        size_t len = vdi_plan_print(&seeds[i], text, sizeof text);
        snprintf(path, sizeof path, "%s/fuzz-in/%02d-%s.plan", s->ctx.work, i, names[i]);
        FILE *f = fopen(path, "w");
        int ok = f && len < sizeof text && fwrite(text, 1, len, f) == len;
        if (f && fclose(f) != 0)
            ok = 0;
        if (!ok)
            goto fail;
    }
    snprintf(path, sizeof path, "%s/fuzz.dict", s->ctx.work);
    FILE *f = fopen(path, "w");
    for (size_t i = 0; f && i < sizeof fuzz_tokens / sizeof fuzz_tokens[0]; i++) {
        fputc('"', f);
        for (const char *t = fuzz_tokens[i]; *t; t++)
            fprintf(f, *t == '\n' ? "\\x0a" : "%c", *t);
        fputs("\"\n", f);
    }
    if (!f || fclose(f) != 0)
        goto fail;
    snprintf(path, sizeof path, "%s/fuzz-known", s->ctx.work);
    f = fopen(path, "w");
    for (int i = 0; f && i < s->nfound; i++)
        fprintf(f, "%s\n", s->found[i].signature);
    if (!f || fclose(f) != 0)
        goto fail;
    return 0;
fail:
    fprintf(stderr, "vdichaos client: cannot write %s: %s\n", path, strerror(errno));
    return -1;
}

/* afl-fuzz's exec timeout: a run's hang limit (twice with a restore), the stacks of a hang
 * (gdb may take 20 s), the wait for our server and the kill of the client's group. */
static long fuzz_timeout_ms(const session *s) {
    return s->ctx.hang_ms * (s->ctx.restore_argv ? 2 : 1) + (s->ctx.stacks == 2 ? 25000 : 1000) +
           10000;
}

/* The target's command line: this program, `client replay @@ --afl`, the options that
 * make a run of this session, the client. NULL-terminated, into av (cap entries). */
static int fuzz_target_argv(const session *s, const char *known, char **av, int cap) {
    static char exe[PATH_MAX], hang[32], timeout[32], dbsize[32], mts[32], shake[64];
    static char restore[8192];
    ssize_t l = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[l > 0 ? l : 0] = '\0';
    snprintf(hang, sizeof hang, "%ld", s->ctx.hang_ms);
    snprintf(timeout, sizeof timeout, "%ld", s->server_timeout);
    snprintf(dbsize, sizeof dbsize, "%llu", (unsigned long long)s->db_size);
    snprintf(mts, sizeof mts, "%u", s->max_transfer);
    int n = 0;
    const char *fixed[] = {exe,
                           "client",
                           "replay",
                           "@@",
                           "--afl",
                           "--afl-known",
                           known,
                           "--quiet",
                           "--sqlcmd",
                           s->ctx.sqlcmd,
                           "--lib",
                           s->ctx.libdir,
                           "--hang-ms",
                           hang,
                           "--server-timeout",
                           timeout,
                           "--dbsize",
                           dbsize,
                           "--maxtransfersize",
                           mts,
                           "--stacks",
                           s->ctx.stacks == 2   ? "gdb"
                           : s->ctx.stacks == 1 ? "proc"
                                                : "none"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        av[n++] = (char *)fixed[i];
    if (s->ctx.statement) {
        av[n++] = "--statement";
        av[n++] = (char *)s->ctx.statement;
    }
    if (s->ctx.media) {
        av[n++] = "--media";
        av[n++] = (char *)s->ctx.media;
    }
    if (s->ctx.restore_argv) { /* split on spaces: joined with spaces, it is the same */
        size_t rl = 0;
        restore[0] = '\0';
        for (int i = 0; s->ctx.restore_argv[i] && rl < sizeof restore; i++)
            rl += (size_t)snprintf(restore + rl, sizeof restore - rl, "%s%s", i ? " " : "",
                                   s->ctx.restore_argv[i]);
        av[n++] = "--restore-command";
        av[n++] = restore;
    }
    if (s->shake_seed) {
        snprintf(shake, sizeof shake, "%llu:%u", (unsigned long long)s->shake_seed,
                 s->shake_max_us);
        av[n++] = "--shake";
        av[n++] = shake;
    }
    if (s->sched_arg) {
        av[n++] = "--sched";
        av[n++] = (char *)s->sched_arg;
    }
    av[n++] = "--";
    for (int i = 0; i < s->ctx.argc && n < cap - 1; i++)
        av[n++] = s->ctx.argv[i];
    av[n] = NULL;
    return n;
}

/* Runs afl-fuzz for secs seconds, its output into log; its exit status (-1 when it could not
 * start, 128 + N when killed by signal N). A run afl-fuzz still has going when its time is
 * well over is stopped: SIGINT (afl-fuzz writes its stats), then SIGKILL. */
static int fuzz_exec_afl(const session *s, const char *afl, long secs, const char *log) {
    char in[PATH_MAX + 16], out[PATH_MAX + 16], dict[PATH_MAX + 16], known[PATH_MAX + 16];
    char tmp[PATH_MAX + 16], vs[32], ts[32];
    snprintf(in, sizeof in, "%s/fuzz-in", s->ctx.work);
    snprintf(out, sizeof out, "%s/fuzz-out", s->ctx.work);
    snprintf(dict, sizeof dict, "%s/fuzz.dict", s->ctx.work);
    snprintf(known, sizeof known, "%s/fuzz-known", s->ctx.work);
    snprintf(tmp, sizeof tmp, "%s/fuzz-tmp", s->ctx.work);
    snprintf(vs, sizeof vs, "%ld", secs);
    snprintf(ts, sizeof ts, "%ld", fuzz_timeout_ms(s));
    int cap = s->ctx.argc + 64;
    char **av = calloc((size_t)cap + 16, sizeof *av);
    if (!av)
        return -1;
    const char *head[] = {afl,  "-i", in,   "-o", out,  "-x",   dict,
                          "-V", vs,   "-t", ts,   "-m", "none", "--"};
    int n = 0;
    for (size_t i = 0; i < sizeof head / sizeof head[0]; i++)
        av[n++] = (char *)head[i];
    fuzz_target_argv(s, known, av + n, cap);
    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &old);
    pid_t pid = fork();
    if (pid == 0) {
        int nul = open("/dev/null", O_RDONLY), fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (nul < 0 || fd < 0)
            _exit(126);
        dup2(nul, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        sigprocmask(SIG_SETMASK, &old, NULL);
        afl_save_env();
        static const char *const knobs[] = {
            "AFL_NO_FORKSRV",   "AFL_SKIP_BIN_CHECK",     "AFL_NO_UI",
            "AFL_NO_COLOR",     "AFL_SKIP_CPUFREQ",       "AFL_NO_AFFINITY",
            "AFL_SKIP_CRASHES", "AFL_NO_CRASH_README",    "AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES",
            "AFL_FAST_CAL",     "AFL_IGNORE_UNKNOWN_ENVS"};
        for (size_t i = 0; i < sizeof knobs / sizeof knobs[0]; i++)
            setenv(knobs[i], "1", 1);
        if (s->first)
            setenv("AFL_BENCH_UNTIL_CRASH", "1", 1);
        setenv("TMPDIR", tmp, 1); /* what a target killed mid-run leaves goes with the session */
        execv(afl, av);
        fprintf(stderr, "vdichaos client: cannot run %s: %s\n", afl, strerror(errno));
        _exit(127);
    }
    free(av);
    int status = -1;
    if (pid > 0) {
        double until = now_s() + (double)secs + (double)fuzz_timeout_ms(s) / 1000.0 + 60;
        int stopping = 0;
        for (;;) {
            int st;
            pid_t got;
            while ((got = waitpid(-1, &st, WNOHANG)) > 0 && got != pid) {
                /* an orphan of a killed target, come back to us */
            }
            if (got == pid) {
                status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                break;
            }
            if (now_s() > until) {
                (void)kill(pid, stopping ? SIGKILL : SIGINT);
                stopping = 1;
                until = now_s() + 15;
            }
            audit_wait_child(200);
        }
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    return status;
}

/* What a target afl-fuzz killed left running (the client's group: it came back to us, a
 * subreaper) is killed and reaped. */
static void fuzz_reap_orphans(void) {
    pid_t me = getpid(), mygroup = getpgrp();
    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &old);
    for (int round = 0; round < 100; round++) {
        int found = 0;
        DIR *d = opendir("/proc");
        struct dirent *de;
        while (d && (de = readdir(d)) != NULL) {
            char path[300], text[512];
            if (de->d_name[0] < '1' || de->d_name[0] > '9')
                continue;
            snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
            FILE *f = fopen(path, "r");
            size_t len = f ? fread(text, 1, sizeof text - 1, f) : 0;
            if (f)
                fclose(f);
            text[len] = '\0';
            char *paren = strrchr(text, ')');
            int ppid = 0, pgrp = 0;
            if (!paren || sscanf(paren + 2, "%*c %d %d", &ppid, &pgrp) != 2 || ppid != me)
                continue;
            found = 1;
            if (pgrp > 1 && pgrp != mygroup)
                (void)kill(-pgrp, SIGKILL);
            (void)kill((pid_t)atol(de->d_name), SIGKILL);
        }
        if (d)
            closedir(d);
        while (waitpid(-1, NULL, WNOHANG) > 0) {
        }
        if (!found)
            break;
        audit_wait_child(20);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
}

static void read_fuzzer_stats(const char *path, fuzz_stats *st) {
    FILE *f = fopen(path, "r");
    char line[256], key[64], val[64];
    while (f && fgets(line, sizeof line, f)) {
        if (sscanf(line, "%63[a-z_] : %63s", key, val) != 2)
            continue;
        unsigned long v = strtoul(val, NULL, 10);
        if (strcmp(key, "execs_done") == 0)
            st->execs = v;
        else if (strcmp(key, "execs_per_sec") == 0)
            st->execs_per_second = strtod(val, NULL);
        else if (strcmp(key, "corpus_count") == 0)
            st->paths = v;
        else if (strcmp(key, "corpus_found") == 0)
            st->found = v;
        else if (strcmp(key, "edges_found") == 0)
            st->edges = v;
        else if (strcmp(key, "saved_crashes") == 0)
            st->crashes = v;
        else if (strcmp(key, "saved_hangs") == 0)
            st->hangs = v;
        else if (strcmp(key, "run_time") == 0)
            st->seconds = v;
    }
    if (f) {
        fclose(f);
        st->ran = 1;
    }
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Each input afl-fuzz kept in dir (crashes/, hangs/), in its order, run again here: its
 * findings recorded, deduplicated and saved as every strategy's are. */
static void fuzz_replay_dir(session *s, const char *dir) {
    DIR *d = opendir(dir);
    char *names[4096];
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL && n < 4096)
        if (strncmp(de->d_name, "id:", 3) == 0 && (names[n] = strdup(de->d_name)) != NULL)
            n++;
    const char *t;
    for (int i = 0; i < n && strstr(dir, "/crashes"); i++)
        if ((t = strstr(names[i], ",time:")) != NULL &&
            (s->fuzz.first_crash_ms < 0 || atol(t + 6) < s->fuzz.first_crash_ms))
            s->fuzz.first_crash_ms = atol(t + 6);
    if (d)
        closedir(d);
    qsort(names, (size_t)n, sizeof names[0], compare_names);
    for (int i = 0; i < n; i++) {
        char path[PATH_MAX + 300];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        vdi_plan p;
        audit_result r;
        if (!s->stopped && read_plan(path, &p, 1) == 0 && fuzz_fit(s, &p) == 0) {
            s->fuzz.replayed++;
            if (run_plan(s, &p, &r) != 0)
                s->stopped = 1;
            else if (r.nfindings == 0) {
                s->fuzz.no_repro++;
                if (!s->quiet)
                    fprintf(stderr, "       afl-fuzz's %s gave no finding this time\n", names[i]);
            }
        }
        free(names[i]);
    }
}

/* The text without terminal escapes (afl-fuzz colours its output whatever it is told). */
static size_t strip_escapes(char *t, size_t n) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i] == 0x1b && i + 1 < n && t[i + 1] == '[') { /* CSI: parameters, a letter */
            for (i += 2; i < n && !((t[i] >= 'A' && t[i] <= 'Z') || (t[i] >= 'a' && t[i] <= 'z'));)
                i++;
        } else if (t[i] == 0x1b) { /* ESC ( B (a character set): two more bytes, else one */
            i += i + 1 < n && (t[i + 1] == '(' || t[i + 1] == ')') ? 2 : 1;
        } else if (t[i] != 0x0f && t[i] != '\r') {
            t[o++] = t[i];
        }
    }
    t[o] = '\0';
    return o;
}

/* afl-fuzz failed: its log kept as FINDINGS/fuzz-afl.log (the session's directory goes),
 * its last lines shown. */
static void fuzz_failed(session *s, const char *log, int status) {
    static char text[1 << 20];
    FILE *f = fopen(log, "r");
    size_t len = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f)
        fclose(f);
    len = strip_escapes(text, len);
    char kept[PATH_MAX + 32];
    (void)mkdir(s->findings_dir, 0755);
    snprintf(kept, sizeof kept, "%s/fuzz-afl.log", s->findings_dir);
    FILE *out = fopen(kept, "w");
    int have = out && fwrite(text, 1, len, out) == len;
    if (out && fclose(out) != 0)
        have = 0;
    fprintf(stderr, "vdichaos client: afl-fuzz failed (%s %d); its log: %s\n",
            status > 128 ? "killed by signal" : "exit", status > 128 ? status - 128 : status,
            have ? kept : log);
    int lines = 0;
    char *at = text + len;
    while (at > text && lines < 6)
        if (*--at == '\n' && at[1] && at[1] != '\n')
            lines++;
    fprintf(stderr, "%s%s", at == text ? "" : "  ...\n", at == text ? at : at + 1);
    if (strstr(text, "No instrumentation detected"))
        fprintf(stderr, "vdichaos client: afl-fuzz saw no coverage: build the client with "
                        "afl-clang-fast / afl-clang-fast++ (chaos/client/README.md)\n");
    s->fuzz.failed = 1;
}

static void fuzz_plans(session *s) {
    long commands = 0;
    if (clean_run(s, &commands) != 0)
        return;
    static vdi_plan seeds[8];
    const char *names[8];
    int n = fuzz_seeds(s, seeds, names);
    for (int i = 1; i < n && !over_budget(s); i++) {
        audit_result r;
        if (run_plan(s, &seeds[i], &r) != 0)
            return;
    }
    if (s->first && s->nfound)
        return;
    const char *afl = afl_fuzz_path();
    char log[PATH_MAX + 32], stats[PATH_MAX + 32], dir[PATH_MAX + 32];
    snprintf(log, sizeof log, "%s/fuzz-afl.log", s->ctx.work);
    if (!afl || fuzz_files(s, seeds, names, n) != 0) {
        s->fuzz.failed = 1;
        return;
    }
    long left = (long)(s->budget - (now_s() - s->t0));
    long secs = left > 10 ? left : 10;
    if (!s->quiet)
        fprintf(stderr,
                "vdichaos client: afl-fuzz for %ld s from %d seeds, on the client's coverage "
                "(its log, while it runs: %s)\n",
                secs, n, log);
    int status = fuzz_exec_afl(s, afl, secs, log);
    fuzz_reap_orphans();
    snprintf(stats, sizeof stats, "%s/fuzz-out/default/fuzzer_stats", s->ctx.work);
    s->fuzz.first_crash_ms = -1;
    read_fuzzer_stats(stats, &s->fuzz);
    if (status != 0 || !s->fuzz.ran) {
        fuzz_failed(s, log, status);
        return;
    }
    fprintf(stderr,
            "vdichaos client: afl-fuzz: %lu execs in %lu s (%.1f/s), %lu paths (%lu found), "
            "%lu edges of the client, %lu crashes, %lu hangs\n",
            s->fuzz.execs, s->fuzz.seconds, s->fuzz.execs_per_second, s->fuzz.paths, s->fuzz.found,
            s->fuzz.edges, s->fuzz.crashes, s->fuzz.hangs);
    if (s->fuzz.edges <= 1)
        fprintf(stderr,
                "vdichaos client: warning: afl-fuzz saw %lu edge%s: is the client built "
                "with afl-clang-fast?\n",
                s->fuzz.edges, s->fuzz.edges == 1 ? "" : "s");
    snprintf(dir, sizeof dir, "%s/fuzz-out/default/crashes", s->ctx.work);
    fuzz_replay_dir(s, dir);
    snprintf(dir, sizeof dir, "%s/fuzz-out/default/hangs", s->ctx.work);
    fuzz_replay_dir(s, dir);
}

int vdichaos_client_main(int argc, char **argv) {
    session s;
    memset(&s, 0, sizeof s);
    s.strategy = "clean";
    s.findings_dir = "findings";
    s.seed = 1;
    s.runs = 0;
    s.pause_ms = 1500;
    s.server_timeout = 5000;
    s.db_size = 300001;
    s.max_transfer = 65536;
    s.faults = F_ALL;
    s.ctx.hang_ms = 30000;
    s.ctx.stacks = 2;
    const char *env_sqlcmd = getenv("VDICHAOS_SQLCMD"), *env_lib = getenv("VDICHAOS_LIB");
    s.ctx.sqlcmd = env_sqlcmd && *env_sqlcmd ? env_sqlcmd : NULL;
    s.ctx.libdir = env_lib && *env_lib ? env_lib : NULL;
    int lib_given = 0;
    int i = 1;
    int shrink = 0;
    if (i < argc && (strcmp(argv[i], "replay") == 0 || strcmp(argv[i], "shrink") == 0)) {
        if (i + 1 >= argc)
            return client_usage();
        shrink = argv[i][0] == 's';
        s.replay = argv[i + 1];
        i += 2;
    }
    for (; i < argc; i++) {
        const char *a = argv[i];
        long v;
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = strcmp(a, "--json") != 0 && strcmp(a, "--quiet") != 0 &&
                    strcmp(a, "--help") != 0 && strcmp(a, "--first") != 0 &&
                    strcmp(a, "--afl") != 0;
        if (takes && !val)
            return client_usage();
        if (strcmp(a, "--help") == 0) {
            (void)client_usage();
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            s.json = 1;
        } else if (strcmp(a, "--quiet") == 0) {
            s.quiet = 1;
        } else if (strcmp(a, "--first") == 0) {
            s.first = 1;
        } else if (strcmp(a, "--afl") == 0) {
            s.afl = 1;
        } else if (strcmp(a, "--afl-known") == 0 && *val) {
            s.afl_known = val;
        } else if (strcmp(a, "--plans") == 0) {
            if (strcmp(val, "clean") && strcmp(val, "sweep") && strcmp(val, "random") &&
                strcmp(val, "fuzz"))
                return client_usage();
            s.strategy = val;
        } else if (strcmp(a, "--statement") == 0) {
            if (!*val || strlen(val) >= VDI_PLAN_MAX_STATEMENT)
                return client_usage();
            s.ctx.statement = val;
        } else if (strcmp(a, "--seed") == 0) {
            char *end;
            errno = 0;
            unsigned long long sv = strtoull(val, &end, 10);
            if (!*val || *end || errno || val[0] == '-')
                return client_usage();
            s.seed = sv;
        } else if (strcmp(a, "--shake") == 0) {
            /* SEED[:MAX_US] is the plan's step `shake SEED [MAX_US]`: its parser judges it */
            char step[96];
            vdi_plan sp;
            int n = snprintf(step, sizeof step, "shake %s\n", val);
            char *colon = strchr(step, ':');
            if (colon)
                *colon = ' ';
            const char *vc = strchr(val, ':');
            if (val[0] < '0' || val[0] > '9' || (vc && (vc[1] < '0' || vc[1] > '9')) || n < 0 ||
                (size_t)n >= sizeof step || strchr(val, ' ') || strchr(val, '\t') ||
                vdi_plan_parse(step, (size_t)n, 1, &sp, NULL, 0) != 0 || !sp.shake_seed) {
                fprintf(stderr,
                        "vdichaos client: --shake %s: SEED (1..) or SEED:MAX_US "
                        "(MAX_US 1..1000000)\n",
                        val);
                return client_usage();
            }
            s.shake_seed = sp.shake_seed;
            s.shake_max_us = sp.shake_max_us;
        } else if (strcmp(a, "--sched") == 0 && strncmp(val, "replay:", 7) == 0) {
            /* a finding's decisions (FINDING.sched): the runs replay them */
            static char path[PATH_MAX];
            char head[64];
            FILE *f = val[7] ? fopen(val + 7, "r") : NULL;
            int ok = f && fgets(head, sizeof head, f) && strncmp(head, "vdi-sched ", 10) == 0;
            if (f)
                fclose(f);
            if (!ok || !realpath(val + 7, path)) {
                fprintf(stderr,
                        "vdichaos client: --sched %s: not a scheduler report (a finding's "
                        ".sched file)\n",
                        val);
                return client_usage();
            }
            s.ctx.sched_replay = path;
            s.sched.sched = 1; /* the runs are scheduled; the decisions come from the file */
            s.sched_arg = val;
        } else if (strcmp(a, "--sched") == 0) {
            /* random:SEED | pct:DEPTH:SEED[:STEPS] is the plan's step `schedule ...` */
            char step[128];
            int n = snprintf(step, sizeof step, "schedule %s\n", val);
            for (char *q = step; n > 0 && (size_t)n < sizeof step && *q; q++)
                if (*q == ':')
                    *q = ' ';
            if (n < 0 || (size_t)n >= sizeof step || strchr(val, ' ') || strchr(val, '\t') ||
                vdi_plan_parse(step, (size_t)n, 1, &s.sched, NULL, 0) != 0 || !s.sched.sched) {
                fprintf(stderr,
                        "vdichaos client: --sched %s: random:SEED or pct:DEPTH:SEED[:STEPS] "
                        "(DEPTH 1..8)\n",
                        val);
                return client_usage();
            }
            s.sched_arg = val;
        } else if (strcmp(a, "--runs") == 0 && parse_num(val, 1, 100000000, &v) == 0) {
            s.runs = v;
        } else if (strcmp(a, "--jobs") == 0 && parse_num(val, 1, AUDIT_POOL_MAX_JOBS, &v) == 0) {
            s.jobs = (int)v;
        } else if (strcmp(a, "--budget") == 0 && parse_duration(val, &s.budget) == 0) {
        } else if (strcmp(a, "--faults") == 0 && parse_faults(val, &s.faults) == 0) {
        } else if (strcmp(a, "--max-index") == 0 && parse_num(val, 1, 1000000000, &v) == 0) {
            s.max_index = v;
        } else if (strcmp(a, "--media") == 0 && *val) {
            s.ctx.media = val;
        } else if (strcmp(a, "--restore-command") == 0 && *val) {
            if (split_words(val, &s.ctx.restore_argv, 0) != 0)
                return client_usage();
        } else if (strcmp(a, "--backup-command") == 0 && *val) {
            if (strstr(val, "{run}")) { /* its media outlive every run */
                fprintf(stderr, "vdichaos client: --backup-command: {run} is a run's own "
                                "directory; the media of a restore audit need a path of "
                                "their own\n");
                return client_usage();
            }
            if (split_words(val, &s.backup_argv, 1) != 0)
                return client_usage();
        } else if (strcmp(a, "--findings") == 0 && *val) {
            s.findings_dir = val;
        } else if (strcmp(a, "--hang-ms") == 0 && parse_num(val, 1, 86400000, &v) == 0) {
            s.ctx.hang_ms = v;
        } else if (strcmp(a, "--pause-ms") == 0 && parse_num(val, 1, VDI_PLAN_MAX_MS, &v) == 0) {
            s.pause_ms = v;
            s.pause_given = 1;
        } else if (strcmp(a, "--server-timeout") == 0 &&
                   parse_num(val, 1, VDI_PLAN_MAX_MS, &v) == 0) {
            s.server_timeout = v;
        } else if (strcmp(a, "--dbsize") == 0 && parse_num(val, 1, LONG_MAX, &v) == 0 &&
                   (uint64_t)v <= VDI_PLAN_MAX_DB_SIZE) {
            s.db_size = (uint64_t)v;
        } else if (strcmp(a, "--maxtransfersize") == 0 && parse_num(val, 65536, 4194304, &v) == 0 &&
                   v % 65536 == 0) {
            s.max_transfer = (uint32_t)v;
        } else if (strcmp(a, "--stacks") == 0 &&
                   (!strcmp(val, "gdb") || !strcmp(val, "proc") || !strcmp(val, "none"))) {
            s.ctx.stacks = !strcmp(val, "gdb") ? 2 : !strcmp(val, "proc") ? 1 : 0;
        } else if (strcmp(a, "--sqlcmd") == 0 && *val) {
            s.ctx.sqlcmd = val;
        } else if (strcmp(a, "--lib") == 0) {
            s.ctx.libdir = val;
            lib_given = *val != '\0';
        } else {
            fprintf(stderr, "vdichaos client: bad option or value: %s%s%s\n", a, takes ? " " : "",
                    takes ? val : "");
            return client_usage();
        }
        if (takes)
            i++;
    }
    if (i >= argc || ((s.afl || s.afl_known) && (!s.replay || shrink)) || (s.afl_known && !s.afl))
        return client_usage();
    if (strcmp(s.strategy, "random") == 0 && s.runs == 0)
        s.runs = 100;
    s.ctx.argv = argv + i;
    s.ctx.argc = argc - i;
    int fuzz = !s.replay && strcmp(s.strategy, "fuzz") == 0;
    if (fuzz && s.budget <= 0)
        s.budget = 60;
    if (fuzz && !afl_fuzz_path()) {
        fprintf(stderr, "vdichaos client: --plans fuzz needs afl-fuzz (AFL++) on PATH: install "
                        "the afl++ package (apt-get install afl++)\n");
        return 2;
    }
    if (s.afl)
        afl_restore_env();
    if (find_server(&s.ctx, lib_given) != 0)
        return 2;
    vdi_plan replay_plan;
    if (s.replay && read_plan(s.replay, &replay_plan, s.afl) != 0)
        return s.afl ? 0 : 2; /* for AFL, a plan that cannot be read is no crash */
    if (s.afl && fuzz_fit(&s, &replay_plan) != 0)
        return 0; /* beyond the run's limits: uninteresting */
    /* --sched, or a plan replayed with its `schedule` step: the runs need the scheduler */
    if ((s.sched.sched || (s.replay && replay_plan.sched)) && find_scheduler(&s.ctx) != 0)
        return 2;
    if (audit_setup(&s.ctx) != 0) {
        audit_cleanup(&s.ctx);
        return 2;
    }
    s.t0 = now_s();
    if (s.afl) { /* the restore audit's media were made once, by the fuzz session */
        int rc = afl_target(&s, &replay_plan);
        audit_cleanup(&s.ctx);
        if (rc > 0)
            abort(); /* a new finding: AFL records the plan as a crash */
        return 0;
    }
    if (s.backup_argv) {
        vdi_plan clean;
        base_plan(&s, &clean);
        if (s.replay)
            clean = replay_plan;
        if (audit_prepare(&s.ctx, &clean, s.backup_argv) != 0) {
            audit_cleanup(&s.ctx);
            return 2;
        }
    }
    if (shrink) {
        if (!replay_plan.statement[0] && s.ctx.statement)
            snprintf(replay_plan.statement, sizeof replay_plan.statement, "%s", s.ctx.statement);
        int rc = shrink_plan(&s, &replay_plan);
        audit_cleanup(&s.ctx);
        free(s.found);
        return rc;
    }
    if (s.replay) {
        audit_result r;
        if (!replay_plan.statement[0] && s.ctx.statement)
            snprintf(replay_plan.statement, sizeof replay_plan.statement, "%s", s.ctx.statement);
        if (s.runs > 1)
            repeat_runs(&s, &replay_plan);
        else
            (void)run_plan(&s, &replay_plan, &r);
    } else if (strcmp(s.strategy, "sweep") == 0 || strcmp(s.strategy, "random") == 0) {
        if (s.jobs > 1) {
            s.pool = audit_pool_new(&s.ctx, s.jobs, pool_done, &s);
            if (!s.pool) {
                fprintf(stderr, "vdichaos client: out of memory\n");
                audit_cleanup(&s.ctx);
                return 2;
            }
            if (!own_files(&s))
                fprintf(stderr,
                        "vdichaos client: note: with --jobs %d, %d runs overlap; a client "
                        "that writes a fixed path needs {run} (the run's own directory) in "
                        "its arguments, e.g. {run}/out.bak\n",
                        s.jobs, s.jobs);
        }
        if (strcmp(s.strategy, "sweep") == 0)
            sweep(&s);
        else
            random_plans(&s);
        audit_pool_free(s.pool);
        s.pool = NULL;
    } else if (fuzz) {
        fuzz_plans(&s);
    } else if (s.runs > 1) {
        repeat_runs(&s, NULL);
    } else {
        long commands;
        (void)clean_run(&s, &commands);
    }
    summary(&s);
    audit_cleanup(&s.ctx);
    int rc = s.nfound ? 1 : 0;
    if (s.total_runs == 0 || s.cannot_run || s.fuzz.failed)
        rc = 2;
    free(s.found);
    return rc;
}
