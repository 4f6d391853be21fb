/* chaos_engine.c: actors as fibers (chaos_fiber.h) in one OS thread, a strategy choosing
 * the next actor at every schedule point, virtual time that jumps to the next deadline when
 * every actor is blocked, the seam table that routes the reference into all of this, and
 * the fault plan. Exactly one actor runs at a time; the run is a function of its
 * decision list. The free-running mode, real threads in real time, is chaos_free.c.
 *
 * Sanitizers: every switch is announced to ASan (stack bounds) and to TSan as a switch
 * WITHOUT synchronisation, so two actors racing on plain memory are still reported. The
 * engine's own bookkeeping touched from actor context is hidden from TSan (ignore
 * annotations), since it is ordered by the switches that TSan is told not to see. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sched.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "chaos/atomics.h"
#include "chaos/chaos.h"
#include "chaos_engine.h"
#include "chaos_internal.h"
#include "vdi/vdi.h"
#include "vdi/vdi_seams.h"

static word_key key_of(const chaos_engine *e, const uint32_t *word) {
    uintptr_t p = (uintptr_t)word;
    for (int i = 0; i < e->nmaps; i++) {
        const mapping *m = &e->maps[i];
        if (p >= m->start && p < m->start + m->len)
            return (word_key){1, m->dev, m->ino, m->off + (p - m->start)};
    }
    return (word_key){0, 0, 0, p};
}

static _Thread_local chaos_engine *g_engine;

/* Fiber stacks are reused across engines: mapping, guarding and unmapping four stacks per
 * run cost more than the run itself. */
#define STACK_POOL 32
static _Thread_local uint8_t *stack_pool[STACK_POOL];
static _Thread_local int nstack_pool;

static uint8_t *stack_get(size_t len) {
    if (nstack_pool)
        return stack_pool[--nstack_pool];
    void *st = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (st == MAP_FAILED)
        return NULL;
    mprotect(st, (size_t)getpagesize(), PROT_NONE); /* guard page below the stack */
    return st;
}

static void stack_put(uint8_t *st, size_t len) {
    if (nstack_pool < STACK_POOL)
        stack_pool[nstack_pool++] = st;
    else
        munmap(st, len);
}

chaos_engine *chaos_current(void) {
    return g_engine;
}

void chaos_engine_bind_thread(chaos_engine *e) {
    g_engine = e;
}

static void hash_in(chaos_engine *e, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        e->hash ^= b[i];
        e->hash *= 0x100000001b3ull; /* FNV-1a */
    }
}

chaos_engine *chaos_engine_new(const chaos_config *cfg) {
    chaos_engine *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->cfg = *cfg;
    if (!e->cfg.access_points) {
        const char *ap = getenv("VDICHAOS_ACCESS_POINTS");
        e->cfg.access_points = ap ? atoi(ap) : 0;
    }
    if (e->cfg.access_points < 0 || e->cfg.free_running)
        e->cfg.access_points = 0;
    if (!e->cfg.max_steps)
        e->cfg.max_steps = 100000;
    if (!e->cfg.fault_errno)
        e->cfg.fault_errno = ENOMEM;
    e->cur = -1;
    e->last = -1;
    e->now = START_TIME;
    e->rng = cfg->seed;
    e->fault_rng = cfg->seed ^ 0x6a09e667f3bcc909ull;
    e->hash = 0xcbf29ce484222325ull;
    pthread_mutex_init(&e->free_mu, NULL);
    return e;
}

void chaos_engine_free(chaos_engine *e) {
    if (!e)
        return;
    for (int i = 0; i < e->n; i++) {
#ifdef CHAOS_ASAN
        /* An actor left suspended (a hang, a finding) leaves its frames' redzones poisoned
         * on a stack the next engine reuses. */
        if (e->a[i].stack && e->a[i].state != A_DONE)
            __asan_unpoison_memory_region(e->a[i].stack, e->a[i].stack_len);
#endif
        if (e->a[i].stack)
            stack_put(e->a[i].stack, e->a[i].stack_len);
#ifdef CHAOS_TSAN
        if (e->a[i].tsan_fiber)
            __tsan_destroy_fiber(e->a[i].tsan_fiber);
#endif
    }
    if (g_engine == e)
        g_engine = NULL;
    if (e->cfg.shm_pool)
        chaos_shm_recycle();
    pthread_mutex_destroy(&e->free_mu);
    free(e->dec);
    free(e->alts);
    free(e->stay);
    for (size_t i = 0; i < e->nev; i++)
        if (e->ev[i].note)
            free((char *)(uintptr_t)e->ev[i].point);
    free(e->ev);
    free(e);
}

/* Append to the timeline (cfg.record_events). */
static void push_event(chaos_engine *e, chaos_event ev) {
    if (e->nev == e->capev) {
        size_t cap = e->capev ? e->capev * 2 : 256;
        chaos_event *ne = realloc(e->ev, cap * sizeof *ne);
        if (!ne)
            abort();
        e->ev = ne;
        e->capev = cap;
    }
    e->ev[e->nev++] = ev;
}

int chaos_notes_on(const chaos_engine *e) {
    return e && e->cfg.record_events && e->cfg.record_notes && !e->cfg.free_running;
}

void chaos_note(chaos_engine *e, const char *fmt, ...) {
    if (!chaos_notes_on(e))
        return;
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ENGINE_BEGIN();
    size_t n = strlen(buf) + 1;
    char *text = malloc(n);
    if (text) {
        memcpy(text, buf, n);
        push_event(e, (chaos_event){e->steps, chaos_actor_id(e), text, e->now, 1});
    }
    ENGINE_END();
}

/* ---- switching ---------------------------------------------------------------------- */

static void to_scheduler(chaos_engine *e, actor *a, int dying) {
    /* Engine fields are read with TSan looking away, but no ignore is held across the
     * switch: a suspended fiber may be destroyed without ever resuming (a hang). */
    ENGINE_BEGIN();
    chaos_fiber *from = &a->ctx, *to = &e->sched;
    const void *bottom = e->sched_bottom;
    size_t size = e->sched_size;
#ifdef CHAOS_TSAN
    void *fiber = e->sched_fiber;
#endif
    ENGINE_END();
#ifdef CHAOS_ASAN
    __sanitizer_start_switch_fiber(dying ? NULL : &a->fake_stack, bottom, size);
#endif
#ifdef CHAOS_TSAN
    /* A finished actor synchronises with the scheduler, like a joined thread, so what
     * the scenario checks after the run is ordered after every actor's work. */
    /* Each switch orders this actor's work before the scheduler (never before the next
     * actor, which starts without synchronisation), so what the main thread does after
     * a run, even one that ended with actors suspended, races with none of it. */
    __tsan_release(a);
    __tsan_switch_to_fiber(fiber, dying ? 0u : TSAN_NO_SYNC);
#endif
    (void)dying;
    (void)bottom;
    (void)size;
    chaos_fiber_swap(from, to);
#ifdef CHAOS_ASAN
    __sanitizer_finish_switch_fiber(a->fake_stack, &e->sched_bottom, &e->sched_size);
#endif
}

static void trampoline(void) {
    ENGINE_BEGIN();
    chaos_engine *e = g_engine;
    actor *a = &e->a[e->cur];
#ifdef CHAOS_ASAN
    __sanitizer_finish_switch_fiber(NULL, &e->sched_bottom, &e->sched_size);
#endif
    void (*fn)(void *) = a->fn;
    void *arg = a->arg;
    ENGINE_END();
    fn(arg);
    ENGINE_BEGIN();
    a->state = A_DONE;
    a->point = "chaos/actor:done";
    ENGINE_END();
    to_scheduler(e, a, 1);
    abort(); /* a finished actor is never resumed */
}

static void run_actor(chaos_engine *e, int i) {
    actor *a = &e->a[i];
    e->cur = i;
#ifdef CHAOS_ASAN
    __sanitizer_start_switch_fiber(&e->sched_fake, a->stack + getpagesize(),
                                   a->stack_len - (size_t)getpagesize());
#endif
#ifdef CHAOS_TSAN
    __tsan_switch_to_fiber(a->tsan_fiber, TSAN_NO_SYNC);
#endif
    chaos_fiber_swap(&e->sched, &a->ctx);
#ifdef CHAOS_ASAN
    __sanitizer_finish_switch_fiber(e->sched_fake, NULL, NULL);
#endif
#ifdef CHAOS_TSAN
    __tsan_acquire(a);
#endif
    e->cur = -1;
    e->last = i;
}

int chaos_spawn(chaos_engine *e, const char *name, void (*fn)(void *), void *arg) {
    if (e->n >= CHAOS_MAX_ACTORS)
        return -1;
    actor *a = &e->a[e->n];
    memset(a, 0, sizeof *a);
    a->id = e->n + 1;
    a->name = name;
    a->fn = fn;
    a->arg = arg;
    a->stack_len = STACK_SIZE + (size_t)getpagesize();
    a->stack = stack_get(a->stack_len);
    if (!a->stack)
        return -1;
    chaos_fiber_make(&a->ctx, a->stack + getpagesize(), a->stack_len - (size_t)getpagesize(),
                     trampoline);
#ifdef CHAOS_TSAN
    a->tsan_fiber = __tsan_create_fiber(0);
#endif
    a->state = A_RUNNABLE;
    a->point = "chaos/actor:start";
    e->n++;
    return a->id;
}

/* ---- strategies ------------------------------------------------------------------------ */

static void record(chaos_engine *e, uint32_t d, int n, int stay) {
    if (e->ndec == e->capdec) {
        size_t cap = e->capdec ? e->capdec * 2 : 256;
        uint32_t *nd = realloc(e->dec, cap * sizeof *nd);
        uint8_t *na = realloc(e->alts, cap);
        int8_t *ns = realloc(e->stay, cap);
        if (!nd || !na || !ns)
            abort();
        e->dec = nd;
        e->alts = na;
        e->stay = ns;
        e->capdec = cap;
    }
    e->alts[e->ndec] = (uint8_t)n;
    e->stay[e->ndec] = (int8_t)stay;
    e->dec[e->ndec++] = d;
}

static void pct_setup(chaos_engine *e) {
    unsigned d = e->cfg.pct_depth ? e->cfg.pct_depth : 1;
    unsigned k = e->cfg.pct_steps ? e->cfg.pct_steps : 1000;
    /* Distinct random initial priorities above d; d - 1 change points in [1, k]. */
    unsigned perm[CHAOS_MAX_ACTORS];
    for (int i = 0; i < e->n; i++)
        perm[i] = (unsigned)i;
    for (int i = e->n - 1; i > 0; i--) {
        int j = (int)(chaos_splitmix(&e->rng) % (uint64_t)(i + 1));
        unsigned t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (int i = 0; i < e->n; i++)
        e->a[i].prio = d + perm[i];
    e->nchange = d - 1 < 16 ? d - 1 : 16;
    for (unsigned i = 0; i < e->nchange; i++)
        e->change[i] = 1 + (uint32_t)(chaos_splitmix(&e->rng) % k);
}

/* Choose among the runnable actors (their indexes in list[0..n)). */
static int choose(chaos_engine *e, const int *list, int n) {
    uint32_t pick = 0;
    int stay = -1; /* the choice that would not preempt the actor that ran last */
    for (int i = 0; i < n; i++)
        if (list[i] == e->last)
            stay = i;
    switch (e->cfg.strategy) {
    case CHAOS_DFS:
        if (e->replay_pos < e->cfg.ndecisions)
            pick = e->cfg.decisions[e->replay_pos++] % (uint32_t)n;
        else if (stay >= 0)
            pick = (uint32_t)stay;
        break;
    case CHAOS_RANDOM:
        pick = (uint32_t)(chaos_splitmix(&e->rng) % (uint64_t)n);
        break;
    case CHAOS_PCT: {
        for (unsigned i = 0; i < e->nchange; i++)
            if (e->change[i] == e->steps && e->last >= 0)
                e->a[e->last].prio = i + 1; /* below every initial priority */
        for (int i = 1; i < n; i++)
            if (e->a[list[i]].prio > e->a[list[pick]].prio)
                pick = (uint32_t)i;
        break;
    }
    case CHAOS_REPLAY:
        if (e->replay_pos < e->cfg.ndecisions)
            pick = e->cfg.decisions[e->replay_pos++] % (uint32_t)n;
        break;
    case CHAOS_BYTES:
        if (e->byte_pos < e->cfg.nbytes)
            pick = e->cfg.bytes[e->byte_pos++] % (uint32_t)n;
        break;
    }
    record(e, pick, n, stay);
    return list[pick];
}

/* ---- the run ------------------------------------------------------------------------------ */

/* Every live actor blocked: jump to the earliest deadline, or it is a hang. */
static int advance_time(chaos_engine *e) {
    uint64_t next = UINT64_MAX;
    for (int i = 0; i < e->n; i++) {
        actor *a = &e->a[i];
        if (a->state == A_BLOCKED && a->has_deadline && (!a->liveness || e->peer_dead) &&
            a->deadline < next)
            next = a->deadline;
    }
    if (next == UINT64_MAX)
        return 0;
    if (next > e->now)
        e->now = next;
    for (int i = 0; i < e->n; i++) {
        actor *a = &e->a[i];
        if (a->state == A_BLOCKED && a->has_deadline && (!a->liveness || e->peer_dead) &&
            a->deadline <= e->now) {
            a->state = A_RUNNABLE;
            a->wake_rc = ETIMEDOUT;
        }
    }
    return 1;
}

/* ---- a death during the run ----------------------------------------------------------------
 * Every way a run can end must end in a report: the outcomes of chaos_run are reported by
 * the caller; a death of the process (the reference faults or aborts, a sanitizer reports,
 * the unmap guard ends it) is reported here, once, with what replays it. */

static chaos_engine *volatile dying_engine; /* the run in progress on the engine's thread */

/* A report in the middle of a sanitizer's report: TSan must not look (it would report the
 * engine's own bookkeeping, from inside its report, and wait on itself). */
#if defined(__clang__) && defined(CHAOS_TSAN)
#define DYING __attribute__((no_sanitize("thread")))
#else
#define DYING
#endif
static volatile sig_atomic_t death_noted;

DYING static const char *strategy_name(chaos_strategy s) {
    switch (s) {
    case CHAOS_RANDOM:
        return "random";
    case CHAOS_PCT:
        return "pct";
    case CHAOS_REPLAY:
        return "replay";
    case CHAOS_BYTES:
        return "bytes";
    case CHAOS_DFS:
        return "dfs";
    }
    return "?";
}

DYING static void put(int fd, const char *text) {
    size_t n = strlen(text);
    while (n) {
        ssize_t w = write(fd, text, n);
        if (w <= 0)
            return;
        text += w;
        n -= (size_t)w;
    }
}

DYING static int write_replay(const chaos_engine *e, const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    char line[512];
    snprintf(line, sizeof line,
             "vdichaos-replay 1 %s\n# the process died in this run (%s seed %llu, step %u)\n",
             e->cfg.label ? e->cfg.label : "?", strategy_name(e->cfg.strategy),
             (unsigned long long)e->cfg.seed, e->steps);
    put(fd, line);
    if (e->cfg.fault_mode == CHAOS_FAULT_ONCE || e->cfg.fault_mode == CHAOS_FAULT_PERSISTENT ||
        e->cfg.fault_mode == CHAOS_FAULT_RANDOM) {
        static const char *const names[] = {"none", "once", "persistent", "random"};
        snprintf(line, sizeof line, "faults %s %u %d\n", names[e->cfg.fault_mode], e->cfg.fault_n,
                 e->cfg.fault_errno);
        put(fd, line);
        if (e->cfg.fault_mode == CHAOS_FAULT_RANDOM) { /* its decisions come from the seed */
            snprintf(line, sizeof line, "fault-seed %llu\n", (unsigned long long)e->cfg.seed);
            put(fd, line);
        }
    }
    snprintf(line, sizeof line, "max-steps %u\n", e->cfg.max_steps);
    put(fd, line);
    if (e->cfg.access_points > 0) { /* a decision list replays only in its own mode */
        snprintf(line, sizeof line, "access-points %d\n", e->cfg.access_points);
        put(fd, line);
    }
    for (size_t i = 0; i < e->ndec; i++) {
        snprintf(line, sizeof line, "%u%c", e->dec[i], (i + 1) % 32 == 0 ? '\n' : ' ');
        put(fd, line);
    }
    put(fd, "\n");
    return close(fd);
}

DYING void chaos_dying(void) {
    chaos_engine *e = dying_engine;
    if (!e || death_noted)
        return;
    death_noted = 1;
    ENGINE_BEGIN(); /* and what the interceptors of the calls below see (never ended) */
    char line[768];
    const actor *a = e->cur >= 0 ? &e->a[e->cur] : NULL;
    snprintf(line, sizeof line,
             "==chaos== the process dies in a run of %s (strategy %s, seed %llu), step %u, in "
             "actor %d (%s) after %s\n",
             e->cfg.label ? e->cfg.label : "?", strategy_name(e->cfg.strategy),
             (unsigned long long)e->cfg.seed, e->steps, a ? a->id : 0, a ? a->name : "main",
             a && a->point ? a->point : "?");
    put(2, line);
    const char *path = e->cfg.crash_file ? e->cfg.crash_file : getenv("VDICHAOS_CRASH_FILE");
    if (path && *path) {
        if (write_replay(e, path) == 0)
            snprintf(line, sizeof line, "==chaos== replay: vdichaos replay %s\n", path);
        else
            snprintf(line, sizeof line, "==chaos== cannot write the replay file %s\n", path);
        put(2, line);
    }
}

/* Sanitizers call this when they end the process (after their report). */
void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

static const int fatal_signals[] = {SIGABRT, SIGBUS, SIGFPE, SIGILL};
#define NFATAL ((int)(sizeof fatal_signals / sizeof fatal_signals[0]))
static struct sigaction fatal_previous[NFATAL];

static void on_fatal(int sig) {
    chaos_dying();
    for (int i = 0; i < NFATAL; i++) /* the previous disposition, then the signal again */
        if (fatal_signals[i] == sig)
            sigaction(sig, &fatal_previous[i], NULL);
    raise(sig);
}

static void death_watch(chaos_engine *e) {
    static int callback_set;
    if (!callback_set && __sanitizer_set_death_callback) {
        __sanitizer_set_death_callback(chaos_dying);
        callback_set = 1;
    }
    death_noted = 0;
    dying_engine = e;
    /* Sanitizers handle the signals of real faults themselves (and then call back): take
     * only abort() from them; without one, every fatal signal. */
#if defined(CHAOS_ASAN) || defined(CHAOS_TSAN)
    int n = 1;
#else
    int n = NFATAL;
#endif
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal;
    sa.sa_flags = SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < n; i++)
        sigaction(fatal_signals[i], &sa, &fatal_previous[i]);
    for (int i = n; i < NFATAL; i++)
        sigaction(fatal_signals[i], NULL, &fatal_previous[i]);
}

static void death_unwatch(void) {
    dying_engine = NULL;
    for (int i = 0; i < NFATAL; i++)
        sigaction(fatal_signals[i], &fatal_previous[i], NULL);
}

static chaos_outcome run_engine(chaos_engine *e);

chaos_outcome chaos_run(chaos_engine *e) {
    if (e->cfg.free_running)
        return chaos_free_run(e);
    death_watch(e);
    chaos_outcome out = run_engine(e);
    death_unwatch();
    return out;
}

static chaos_outcome run_engine(chaos_engine *e) {
    g_engine = e;
    if (e->cfg.strategy == CHAOS_PCT)
        pct_setup(e);
#ifdef CHAOS_TSAN
    e->sched_fiber = __tsan_get_current_fiber();
#endif
    chaos_outcome out = CHAOS_DONE;
    for (;;) {
        if (e->has_finding) {
            out = CHAOS_FINDING;
            break;
        }
        int list[CHAOS_MAX_ACTORS], n = 0, live = 0;
        for (int i = 0; i < e->n; i++) {
            live += e->a[i].state != A_DONE;
            if (e->a[i].state == A_RUNNABLE)
                list[n++] = i;
        }
        if (!live)
            break;
        if (!n) {
            if (advance_time(e))
                continue;
            out = CHAOS_HANG;
            break;
        }
        if (e->steps >= e->cfg.max_steps) {
            out = CHAOS_STEP_LIMIT;
            break;
        }
        int i = n == 1 ? list[0] : choose(e, list, n);
        e->steps++;
        uint32_t id = (uint32_t)e->a[i].id;
        hash_in(e, &id, sizeof id);
        run_actor(e, i);
        const char *p = e->a[i].point ? e->a[i].point : "";
        hash_in(e, p, strlen(p));
        if (e->cfg.record_events)
            push_event(e, (chaos_event){e->steps, e->a[i].id, p, e->now, 0});
    }
    if (out == CHAOS_HANG && !e->has_finding) {
        char buf[768];
        chaos_describe_blocked(e, buf, sizeof buf);
        snprintf(e->finding, sizeof e->finding, "hang: every actor blocked with no deadline\n%s",
                 buf);
    } else if (out == CHAOS_STEP_LIMIT && !e->has_finding) {
        snprintf(e->finding, sizeof e->finding, "step-limit: %u steps", e->steps);
    }
    g_engine = NULL;
    return out;
}

void chaos_describe_blocked(const chaos_engine *e, char *buf, size_t cap) {
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < e->n && used < cap; i++) {
        const actor *a = &e->a[i];
        if (a->state == A_DONE)
            continue;
        int w = snprintf(buf + used, cap - used, "  actor %d (%s) %s at %s\n", a->id, a->name,
                         a->state == A_BLOCKED ? "blocked" : "runnable", a->point ? a->point : "?");
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

static actor *running(chaos_engine *e) {
    ENGINE_BEGIN();
    actor *a = e && g_engine == e && e->cur >= 0 ? &e->a[e->cur] : NULL;
    ENGINE_END();
    return a;
}

void chaos_point(chaos_engine *e, const char *name) {
    if (e && e->cfg.free_running) {
        (void)name;
        chaos_free_point(e);
        return;
    }
    actor *a = running(e);
    if (!a)
        return;
    ENGINE_BEGIN();
    a->point = name;
    ENGINE_END();
    to_scheduler(e, a, 0);
}

int chaos_actor_id(const chaos_engine *e) {
    if (e && e->cfg.free_running)
        return chaos_free_actor_id();
    ENGINE_BEGIN();
    int id = e && g_engine == e && e->cur >= 0 ? e->a[e->cur].id : 0;
    ENGINE_END();
    return id;
}

const char *chaos_actor_name(const chaos_engine *e, int id) {
    return id >= 1 && id <= e->n ? e->a[id - 1].name : "main";
}

uint64_t chaos_now(const chaos_engine *e) {
    if (e->cfg.free_running)
        return chaos_free_now(e);
    ENGINE_BEGIN();
    uint64_t t = e->now;
    ENGINE_END();
    return t;
}

void chaos_engine_observe(chaos_engine *e, const chaos_observer *obs) {
    e->observer = obs;
}

static void peer_died(chaos_engine *e, int side) {
    ENGINE_BEGIN();
    e->peer_dead = 1;
    const chaos_observer *o = e->observer;
    ENGINE_END();
    if (o && o->peer_death) /* the recorder: to the model, the dead side's abort */
        o->peer_death(o->ctx, side);
}

void chaos_kill_peer(chaos_engine *e) {
    peer_died(e, 0);
}

void chaos_kill_server_peer(chaos_engine *e) {
    peer_died(e, 1);
}

int chaos_peer_dead(const chaos_engine *e) {
    return e->peer_dead;
}

void chaos_report(chaos_engine *e, const char *oracle, const char *fmt, ...) {
    if (e->cfg.free_running)
        pthread_mutex_lock(&e->free_mu);
    ENGINE_BEGIN();
    if (!e->has_finding) {
        e->has_finding = 1;
        int id = chaos_actor_id(e);
        int w = snprintf(e->finding, sizeof e->finding, "%s: actor %d (%s), step %u: ", oracle, id,
                         chaos_actor_name(e, id), e->steps);
        if (w > 0 && (size_t)w < sizeof e->finding) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(e->finding + w, sizeof e->finding - (size_t)w, fmt, ap);
            va_end(ap);
        }
    }
    ENGINE_END();
    if (e->cfg.free_running)
        pthread_mutex_unlock(&e->free_mu);
}

uint64_t chaos_trace_hash(const chaos_engine *e) {
    return e->hash;
}
uint32_t chaos_steps(const chaos_engine *e) {
    return e->steps;
}
size_t chaos_decisions(const chaos_engine *e, const uint32_t **out) {
    *out = e->dec;
    return e->ndec;
}
size_t chaos_stays(const chaos_engine *e, const int8_t **out) {
    *out = e->stay;
    return e->ndec;
}
const char *chaos_finding(const chaos_engine *e) {
    return e->has_finding || e->finding[0] ? e->finding : "";
}
size_t chaos_events(const chaos_engine *e, const chaos_event **out) {
    *out = e->ev;
    return e->nev;
}
/* The alternatives at decision i in search order: the non-preempting one first. */
static uint32_t alt_at(const chaos_engine *e, size_t i, uint32_t rank) {
    int stay = e->stay[i];
    if (stay < 0)
        return rank;
    if (rank == 0)
        return (uint32_t)stay;
    return rank - 1 < (uint32_t)stay ? rank - 1 : rank;
}

static uint32_t rank_of(const chaos_engine *e, size_t i, uint32_t choice) {
    int stay = e->stay[i];
    if (stay < 0)
        return choice;
    if (choice == (uint32_t)stay)
        return 0;
    return choice < (uint32_t)stay ? choice + 1 : choice;
}

size_t chaos_dfs_next(const chaos_engine *e, uint32_t *out, size_t cap) {
    unsigned bound = e->cfg.dfs_preemptions;
    for (size_t i = e->ndec; i-- > 0;) {
        uint32_t r = rank_of(e, i, e->dec[i]) + 1;
        if (r >= e->alts[i])
            continue;     /* every alternative at this point explored */
        unsigned pre = 0; /* preemptions in the prefix before i, plus the new choice */
        for (size_t j = 0; j < i; j++)
            pre += e->stay[j] >= 0 && e->dec[j] != (uint32_t)e->stay[j];
        pre += e->stay[i] >= 0; /* any rank >= 1 preempts when staying was possible */
        if (pre > bound || i + 1 > cap)
            continue;
        memcpy(out, e->dec, i * sizeof *out);
        out[i] = alt_at(e, i, r);
        return i + 1;
    }
    return 0;
}

int chaos_actor_count(const chaos_engine *e) {
    return e->n;
}
uint32_t chaos_faults_injected(const chaos_engine *e) {
    return e->faults;
}
int chaos_faults_armed(const chaos_engine *e) {
    return e->cfg.fault_mode != CHAOS_FAULT_NONE;
}
size_t chaos_fail_points_seen(const chaos_engine *e, const char *const **names) {
    *names = e->fail_seen;
    return e->nfail_seen;
}
uint32_t chaos_fault_calls(const chaos_engine *e) {
    return e->fault_calls;
}

/* ---- the seams ------------------------------------------------------------------------------ */

static void h_sched(void *ctx, const char *name) {
    chaos_point(ctx, name);
}

static int h_wait(void *ctx, uint32_t *word, uint32_t expected, long timeout_ms,
                  enum vdi_wait_kind kind) {
    chaos_engine *e = ctx;
    actor *a = running(e);
    if (!a) { /* outside the run: the real futex */
        struct timespec ts = {timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
        if (syscall(SYS_futex, word, FUTEX_WAIT, expected, timeout_ms < 0 ? NULL : &ts, NULL, 0) ==
                -1 &&
            errno == ETIMEDOUT)
            return ETIMEDOUT;
        return 0;
    }
    if (CHAOS_LOAD_SEQ(word) != expected)
        return 0;
    if (timeout_ms == 0) {
        chaos_point(e, "chaos/wait:poll");
        return ETIMEDOUT;
    }
    ENGINE_BEGIN();
    a->state = A_BLOCKED;
    a->word = word;
    a->key = key_of(e, word);
    a->has_deadline = timeout_ms > 0;
    a->deadline = timeout_ms > 0 ? e->now + (uint64_t)timeout_ms : 0;
    a->liveness = kind == VDI_WAIT_LIVENESS;
    a->wake_rc = 0;
    ENGINE_END();
    to_scheduler(e, a, 0);
    ENGINE_BEGIN();
    int rc = a->wake_rc;
    a->word = NULL;
    ENGINE_END();
    return rc;
}

static void h_wake(void *ctx, uint32_t *word, int n) {
    chaos_engine *e = ctx;
    if (!running(e)) {
        syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
        if (g_engine != e)
            return;
    }
    ENGINE_BEGIN();
    word_key k = key_of(e, word);
    for (int i = 0; i < e->n && n > 0; i++) {
        actor *a = &e->a[i];
        if (a->state == A_BLOCKED && a->key.shared == k.shared && a->key.dev == k.dev &&
            a->key.ino == k.ino && a->key.where == k.where) {
            a->state = A_RUNNABLE;
            a->wake_rc = 0;
            n--;
        }
    }
    ENGINE_END();
}

int chaos_wait(chaos_engine *e, uint32_t *word, uint32_t expected, long timeout_ms) {
    return h_wait(e, word, expected, timeout_ms, VDI_WAIT_PLAIN);
}

void chaos_wake(chaos_engine *e, uint32_t *word) {
    h_wake(e, word, INT_MAX);
}

static uint64_t h_now(void *ctx) {
    chaos_engine *e = ctx;
    ENGINE_BEGIN();
    uint64_t t = e->now;
    ENGINE_END();
    return t;
}

static uintptr_t h_self(void *ctx) {
    int id = chaos_actor_id(ctx);
    return id ? (uintptr_t)id : MAIN_SELF;
}

static int h_fail(void *ctx, const char *name) {
    chaos_engine *e = ctx;
    int err = 0;
    if (e->cfg.free_running)
        pthread_mutex_lock(&e->free_mu);
    ENGINE_BEGIN();
    size_t k0 = 0;
    while (k0 < e->nfail_seen && strcmp(e->fail_seen[k0], name) != 0)
        k0++;
    if (k0 == e->nfail_seen && e->nfail_seen < 128)
        e->fail_seen[e->nfail_seen++] = name;
    if (e->cfg.fault_mode != CHAOS_FAULT_NONE &&
        (!e->cfg.fault_point || strcmp(e->cfg.fault_point, name) == 0)) {
        uint32_t k = ++e->fault_calls;
        switch (e->cfg.fault_mode) {
        case CHAOS_FAULT_ONCE:
            err = k == e->cfg.fault_n;
            break;
        case CHAOS_FAULT_PERSISTENT:
            err = k >= e->cfg.fault_n;
            break;
        case CHAOS_FAULT_RANDOM:
            err = e->cfg.fault_n && chaos_splitmix(&e->fault_rng) % e->cfg.fault_n == 0;
            break;
        default:
            break;
        }
        if (err) {
            e->faults++;
            err = e->cfg.fault_errno;
        }
    }
    ENGINE_END();
    if (err)
        chaos_note(e, "fault: %s fails with errno %d", name, err);
    if (e->cfg.free_running)
        pthread_mutex_unlock(&e->free_mu);
    return err;
}

/* ---- the pool of shared-memory objects
 * A set's named object is created, sized, mapped twice, unmapped and unlinked in every
 * run; creating and destroying a tmpfs file each time was a large part of a run's system
 * time. The shm_open and shm_unlink seams hand out memfds instead, kept between runs: a
 * name is bound to an object from its exclusive create to its unlink, and an unlinked
 * object goes back to the pool once nothing maps it, emptied (size 0, so the next
 * ftruncate gives zeros) at its next create. Everything else (fchmod, ftruncate, fstat,
 * pread, mmap) is the reference's own code on the fd. None of these objects is in
 * /dev/shm; a name left bound at the end of a run is the resources oracle's leak, as a
 * file left in /dev/shm was (chaos_shm_bound). One pool per thread, like the fiber stacks:
 * the engine's hooks run on its thread only. */
#define SHM_POOL 16
enum { SHM_FREE, SHM_BOUND, SHM_RETIRED };
typedef struct pooled {
    int state;
    int fd;         /* the pool's own descriptor of the memfd */
    int maps;       /* live shared mappings of it made through the map seam */
    int pinned;     /* a mapping of it was not counted: never reused */
    int emptied;    /* size 0 since its last use */
    uint64_t ino;   /* to find it from a mapping's fstat */
    char name[256]; /* while SHM_BOUND */
} pooled;
static _Thread_local pooled shm_pool[SHM_POOL];
static _Thread_local int nshm_pool;
static _Thread_local unsigned long shm_created, shm_reused;
static _Thread_local int shm_umask = -1;

static pooled *pool_by_name(const char *name) {
    for (int i = 0; i < nshm_pool; i++)
        if (shm_pool[i].state == SHM_BOUND && strcmp(shm_pool[i].name, name) == 0)
            return &shm_pool[i];
    return NULL;
}

static pooled *pool_by_ino(uint64_t ino) {
    for (int i = 0; i < nshm_pool; i++)
        if (shm_pool[i].state != SHM_FREE && shm_pool[i].ino == ino)
            return &shm_pool[i];
    return NULL;
}

/* A fresh object for a create: a free one emptied, or a new memfd. NULL when full. */
static pooled *pool_take(void) {
    for (int i = 0; i < nshm_pool; i++) {
        pooled *p = &shm_pool[i];
        if (p->state != SHM_FREE)
            continue;
        if (!p->emptied && ftruncate(p->fd, 0) != 0)
            continue;
        p->emptied = 0;
        shm_reused++;
        return p;
    }
    if (nshm_pool == SHM_POOL)
        return NULL;
    int fd = memfd_create("vdichaos-pool", MFD_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    pooled *p = &shm_pool[nshm_pool++];
    *p = (pooled){.state = SHM_FREE, .fd = fd, .ino = (uint64_t)st.st_ino};
    shm_created++;
    return p;
}

/* The descriptor a caller gets: a duplicate for read-write (the reference reads and
 * writes at offsets, never through the file position), a new open of the object in the
 * access mode asked for otherwise. */
static int pool_fd(const pooled *p, int oflag) {
    if ((oflag & O_ACCMODE) == O_RDWR)
        return fcntl(p->fd, (oflag & O_CLOEXEC) ? F_DUPFD_CLOEXEC : F_DUPFD, 0);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", p->fd);
    return open(path, oflag & (O_ACCMODE | O_CLOEXEC));
}

int chaos_shm_open(const char *name, int oflag, unsigned mode) {
    ENGINE_BEGIN();
    int fd = -1, err = 0;
    pooled *p = pool_by_name(name);
    if (p) {
        if ((oflag & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL))
            err = EEXIST;
        else if ((fd = pool_fd(p, oflag)) < 0)
            err = errno;
    } else if (!(oflag & O_CREAT)) {
        err = ENOENT;
    } else if ((p = pool_take()) == NULL) {
        /* The pool is full (names leaked by earlier runs): the system's object. */
        ENGINE_END();
        return shm_open(name, oflag, (mode_t)mode);
    } else {
        if (shm_umask < 0) {
            shm_umask = (int)umask(0);
            umask((mode_t)shm_umask);
        }
        /* The mode a creating shm_open gives: mode less the umask. */
        if (fchmod(p->fd, (mode_t)(mode & 07777) & (mode_t)~shm_umask) != 0 ||
            (fd = pool_fd(p, oflag)) < 0) {
            err = errno;
            p->emptied = 1;
        } else {
            p->state = SHM_BOUND;
            p->maps = p->pinned = 0;
            snprintf(p->name, sizeof p->name, "%s", name);
        }
    }
    ENGINE_END();
    if (err)
        errno = err;
    return fd;
}

int chaos_shm_unlink(const char *name) {
    ENGINE_BEGIN();
    pooled *p = pool_by_name(name);
    if (p) {
        p->state = SHM_RETIRED;
        p->name[0] = 0;
    }
    ENGINE_END();
    if (!p)
        return shm_unlink(name); /* not ours: the system's (or ENOENT) */
    return 0;
}

int chaos_shm_bound(const char *name) {
    ENGINE_BEGIN();
    int bound = pool_by_name(name) != NULL;
    ENGINE_END();
    return bound;
}

void chaos_shm_recycle(void) {
    ENGINE_BEGIN();
    for (int i = 0; i < nshm_pool;) {
        pooled *p = &shm_pool[i];
        if (p->state == SHM_RETIRED && p->maps == 0 && !p->pinned) {
            /* Emptied now, so that its pages go back to the system between runs. */
            p->state = SHM_FREE;
            p->emptied = ftruncate(p->fd, 0) == 0;
        } else if (p->state == SHM_RETIRED) {
            /* Still mapped (an object abandoned after a finding): it stays alive through
             * its mappings, as an unlinked object does; the pool lets it go. */
            close(p->fd);
            *p = shm_pool[--nshm_pool];
            continue;
        }
        i++;
    }
    ENGINE_END();
}

int chaos_shm_pool_fds(void) {
    return nshm_pool;
}

void chaos_shm_pool_stats(unsigned long *created, unsigned long *reused) {
    *created = shm_created;
    *reused = shm_reused;
}

static int h_shm_open(void *ctx, const char *name, int oflag, mode_t mode) {
    (void)ctx;
    return chaos_shm_open(name, oflag, (unsigned)mode);
}

static int h_shm_unlink(void *ctx, const char *name) {
    (void)ctx;
    return chaos_shm_unlink(name);
}

/* The pool's own account of the live mappings of its objects (the engine's table is a
 * run's; a scenario's cleanup unmaps after it). */
#define POOL_MAPS 64
static _Thread_local struct {
    uintptr_t start;
    size_t len;
    uint64_t ino; /* the object (an index would move when the pool lets one go) */
} pool_maps[POOL_MAPS];
static _Thread_local int npool_maps;

static void pool_note_map(void *addr, size_t len, uint64_t ino) {
    ENGINE_BEGIN();
    pooled *p = pool_by_ino(ino);
    if (p && npool_maps < POOL_MAPS) {
        pool_maps[npool_maps].start = (uintptr_t)addr;
        pool_maps[npool_maps].len = len;
        pool_maps[npool_maps++].ino = ino;
        p->maps++;
    } else if (p) {
        p->pinned = 1; /* a mapping the pool cannot see go: never reused */
    }
    ENGINE_END();
}

static void pool_forget(void *addr, size_t len) {
    uintptr_t start = (uintptr_t)addr;
    ENGINE_BEGIN();
    for (int i = 0; i < npool_maps;) {
        if (pool_maps[i].start < start + len && start < pool_maps[i].start + pool_maps[i].len) {
            pooled *p = pool_by_ino(pool_maps[i].ino);
            if (p)
                p->maps--;
            pool_maps[i] = pool_maps[--npool_maps];
        } else {
            i++;
        }
    }
    ENGINE_END();
}

/* The pool's hooks alone, for a scenario's cleanup, which runs with no engine. */
static void *h_pool_map(void *ctx, void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    (void)ctx;
    void *p = mmap(addr, len, prot, flags, fd, off);
    struct stat st;
    if (p != MAP_FAILED)
        pool_forget(p, len);
    if (p != MAP_FAILED && (flags & MAP_SHARED) && fd >= 0 && fstat(fd, &st) == 0)
        pool_note_map(p, len, (uint64_t)st.st_ino);
    return p;
}

static int h_pool_unmap(void *ctx, void *addr, size_t len) {
    (void)ctx;
    pool_forget(addr, len);
    return munmap(addr, len);
}

void chaos_seams_install_pool(void) {
    vdi_seams s = {.map = h_pool_map,
                   .unmap = h_pool_unmap,
                   .shm_open = h_shm_open,
                   .shm_unlink = h_shm_unlink};
    vdi_seams_install(&s);
}

static void forget_range(chaos_engine *e, uintptr_t start, size_t len) {
    for (int i = 0; i < e->nmaps;) {
        mapping *m = &e->maps[i];
        if (m->start < start + len && start < m->start + m->len)
            *m = e->maps[--e->nmaps];
        else
            i++;
    }
}

static void *h_map(void *ctx, void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    chaos_engine *e = ctx;
    /* A view's reservation: one the guard kept from an earlier view if it has one. */
    int reserve = !addr && prot == PROT_NONE && flags == RESERVE_FLAGS && fd < 0;
    void *p = reserve ? chaos_guard_reserve(len) : NULL;
    if (!p)
        p = mmap(addr, len, prot, flags, fd, off);
    if (p == MAP_FAILED)
        return p;
    ENGINE_BEGIN();
    if (reserve && e->nresv < MAX_RESERVATIONS) {
        e->resv[e->nresv].start = (uintptr_t)p;
        e->resv[e->nresv++].len = len;
    }
    forget_range(e, (uintptr_t)p, len);
    struct stat st;
    pool_forget(p, len);
    if ((flags & MAP_SHARED) && fd >= 0 && fstat(fd, &st) == 0) {
        if (e->nmaps < MAX_MAPPINGS)
            e->maps[e->nmaps++] = (mapping){(uintptr_t)p, len, (uint64_t)st.st_dev,
                                            (uint64_t)st.st_ino, (uint64_t)off};
        pool_note_map(p, len, (uint64_t)st.st_ino);
    }
    ENGINE_END();
    return p;
}

static int h_unmap(void *ctx, void *addr, size_t len) {
    chaos_engine *e = ctx;
    ENGINE_BEGIN();
    /* Only the part that was really mapped needs poisoning (a view reserves 1 GiB). */
    uintptr_t start = (uintptr_t)addr, used = start;
    for (int i = 0; i < e->nmaps; i++) {
        const mapping *m = &e->maps[i];
        if (m->start >= start && m->start < start + len && m->start + m->len > used)
            used = m->start + m->len;
    }
    forget_range(e, start, len);
    pool_forget(addr, len);
    int whole = 0;
    for (int i = 0; i < e->nresv && !whole; i++) {
        if (e->resv[i].start == start && e->resv[i].len == len) {
            whole = 1;
            e->resv[i] = e->resv[--e->nresv];
        } else if (e->resv[i].start < start + len && start < e->resv[i].start + e->resv[i].len) {
            e->resv[i--] = e->resv[--e->nresv]; /* part of it goes: no longer whole */
        }
    }
    ENGINE_END();
    size_t u = used > start ? used - start : len;
    return whole ? chaos_guard_unmap_reservation(addr, len, u)
                 : chaos_guard_unmap_used(addr, len, u);
}

static void h_access(void *ctx, const void *word) {
    chaos_engine *e = ctx;
    if (!running(e))
        return;
    ENGINE_BEGIN();
    int shared = key_of(e, word).shared, mode = e->cfg.access_points;
    ENGINE_END();
    if (shared)
        chaos_point(e, "chaos/access:shared");
    else if (mode >= 2)
        chaos_point(e, "chaos/access:private");
}

static int h_alive(void *ctx, const vdi_peer_id *peer) {
    chaos_engine *e = ctx;
    (void)peer;
    ENGINE_BEGIN();
    int dead = e->peer_dead;
    ENGINE_END();
    return !dead;
}

void chaos_seams_install(chaos_engine *e) {
    if (!e) {
        vdi_seams_install(NULL);
        return;
    }
    if (e->cfg.free_running) {
        /* Real threads, real time, real futexes and mappings: only the schedule points
         * (for the seeded delays), the fault plan and liveness go through the engine. */
        vdi_seams f = {
            .ctx = e, .sched_point = h_sched, .fail_point = h_fail, .peer_alive = h_alive};
        vdi_seams_install(&f);
        return;
    }
    chaos_guard_install();
    vdi_seams s = {
        .ctx = e,
        .sched_point = h_sched,
        .wait = h_wait,
        .wake = h_wake,
        .now_ms = h_now,
        .fail_point = h_fail,
        .map = h_map,
        .unmap = h_unmap,
        .self = h_self,
        .peer_alive = h_alive,
        .access_point = e->cfg.access_points > 0 ? h_access : NULL,
        .shm_open = e->cfg.shm_pool ? h_shm_open : NULL,
        .shm_unlink = e->cfg.shm_pool ? h_shm_unlink : NULL,
    };
    vdi_seams_install(&s);
}
