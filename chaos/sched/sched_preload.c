/* sched_preload.c: libvdichaos_sched.so, the controlled scheduler for a program we did not
 * write. Loaded with LD_PRELOAD, it takes over the scheduling of the program's threads:
 * one thread runs at a time, and at every schedule point (each pthread create, join, exit,
 * mutex, rwlock, condition variable and semaphore call, each sleep and timed wait,
 * sched_yield) a strategy picks which thread runs next. Waiting on timeouts is virtual:
 * the clock jumps to the next deadline when every thread is blocked, and every thread
 * blocked with no deadline is a hang, reported with each thread's blocking point.
 *
 * Configured by the environment (README.md beside this file has the whole story):
 *   VDICHAOS_SCHED      random:SEED | pct:DEPTH:SEED[:STEPS] | replay:FILE
 *   VDICHAOS_SCHED_OUT  the report file: strategy, steps, trace hash, decisions, what was
 *                       not controlled, a hang's blocking points (replay reads it back)
 * Without VDICHAOS_SCHED every interposed call goes straight to the C library.
 *
 * It creates no happens-before edge between threads that the program does not have: the
 * hand-off is a raw futex and plain atomics in uninstrumented code, invisible to TSan, and
 * every lock the program takes is still taken in the C library (our mutex_lock is a
 * trylock loop), so a sanitizer in the program sees the program's own synchronisation.
 *
 * Not controlled, and reported once per kind as "not fully controlled": blocking waits on
 * file descriptors, on child processes and raw futex waits (they run with the token let
 * go), signal handlers, and threads the scheduler did not see start. A forked child runs
 * uncontrolled, and ThreadSanitizer's own thread runs free (pthread_create says how it is told
 * apart). */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

enum { MAX_THREADS = 256, MAX_DECISIONS = 1 << 20, MAX_UNCONTROLLED = 16, PCT_MAX_DEPTH = 8 };
enum { HANG_EXIT = 86 }; /* the process's status when every thread is blocked for good */

enum tstate { T_FREE = 0, T_RUN, T_BLOCKED, T_EXTERNAL, T_EXITED };
enum strategy { S_RANDOM = 1, S_PCT, S_REPLAY };

struct thread {
    enum tstate state;
    uint32_t go;       /* futex: 1 when this thread holds the token */
    const void *key;   /* what a blocked thread waits for (an object's address) */
    uint64_t deadline; /* virtual ns; 0: none */
    int timed_out;     /* the last block ended by its deadline */
    const char *point; /* where it is (the last schedule point), for hang reports */
    pid_t tid;
    uint64_t priority; /* PCT */
    pthread_t handle;
};

static struct {
    int on;
    enum strategy strategy;
    uint64_t rng;
    unsigned depth;                 /* PCT */
    uint64_t change[PCT_MAX_DEPTH]; /* PCT priority change points (steps) */
    uint64_t steps;                 /* schedule points passed */
    uint64_t trace;                 /* FNV-1a of (thread, point) at each step */
    uint64_t vnow;                  /* virtual ns since start */
    struct timespec real_base, mono_base;
    int running; /* who holds the token; -1: nobody */
    int nthreads;
    struct thread t[MAX_THREADS];
    uint16_t *decisions; /* what the strategy chose where it had a choice */
    size_t ndecisions, nreplay, replay_at;
    uint16_t *replay;
    int replay_diverged;
    const char *unc_name[MAX_UNCONTROLLED];
    unsigned long unc_count[MAX_UNCONTROLLED];
    unsigned nunc;
    char spec[128];
    char out[512];
    int reported;
    int timeline; /* VDICHAOS_SCHED_TIMELINE=1: every step on stderr */
    int tsan;     /* the program is built with ThreadSanitizer (pthread_create says how) */
} S;

static __thread int self = -1; /* this thread's slot; -1: not controlled */

/* The C library's functions, looked up once. */
static int (*real_create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
static int (*real_join)(pthread_t, void **);
static void (*real_exit)(void *) __attribute__((noreturn));
static int (*real_mtrylock)(pthread_mutex_t *);
static int (*real_munlock)(pthread_mutex_t *);
static int (*real_mlock)(pthread_mutex_t *);
static int (*real_rdtry)(pthread_rwlock_t *);
static int (*real_wrtry)(pthread_rwlock_t *);
static int (*real_rwunlock)(pthread_rwlock_t *);
static int (*real_rdlock)(pthread_rwlock_t *);
static int (*real_wrlock)(pthread_rwlock_t *);
static int (*real_semtry)(sem_t *);
static int (*real_sempost)(sem_t *);
static int (*real_semwait)(sem_t *);
static int (*real_nanosleep)(const struct timespec *, struct timespec *);
static int (*real_clock_nanosleep)(clockid_t, int, const struct timespec *, struct timespec *);
static int (*real_clock_gettime)(clockid_t, struct timespec *);
static int (*real_poll)(struct pollfd *, nfds_t, int);
static pid_t (*real_waitpid)(pid_t, int *, int);
static pid_t (*real_fork)(void);
static int (*real_usleep)(useconds_t);
static long (*real_syscall)(long, ...);
static int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);
static __sighandler_t (*real_signal)(int, __sighandler_t);
static unsigned (*real_sleep)(unsigned);

/* dlsym's object pointer copied into a function pointer, as POSIX allows and ISO C does not
 * say (a cast would be refused by -Wpedantic). */
#define LOOKUP(var, name)                                                                          \
    do {                                                                                           \
        void *sym_ = dlsym(RTLD_NEXT, name);                                                       \
        memcpy(&(var), &sym_, sizeof sym_);                                                        \
    } while (0)

static void lookup_all(void) {
    LOOKUP(real_create, "pthread_create");
    LOOKUP(real_join, "pthread_join");
    LOOKUP(real_exit, "pthread_exit");
    LOOKUP(real_mtrylock, "pthread_mutex_trylock");
    LOOKUP(real_munlock, "pthread_mutex_unlock");
    LOOKUP(real_mlock, "pthread_mutex_lock");
    LOOKUP(real_rdtry, "pthread_rwlock_tryrdlock");
    LOOKUP(real_wrtry, "pthread_rwlock_trywrlock");
    LOOKUP(real_rwunlock, "pthread_rwlock_unlock");
    LOOKUP(real_rdlock, "pthread_rwlock_rdlock");
    LOOKUP(real_wrlock, "pthread_rwlock_wrlock");
    LOOKUP(real_semtry, "sem_trywait");
    LOOKUP(real_sempost, "sem_post");
    LOOKUP(real_semwait, "sem_wait");
    LOOKUP(real_nanosleep, "nanosleep");
    LOOKUP(real_clock_nanosleep, "clock_nanosleep");
    LOOKUP(real_clock_gettime, "clock_gettime");
    LOOKUP(real_poll, "poll");
    LOOKUP(real_waitpid, "waitpid");
    LOOKUP(real_fork, "fork");
    LOOKUP(real_usleep, "usleep");
    LOOKUP(real_sleep, "sleep");
    LOOKUP(real_syscall, "syscall");
    LOOKUP(real_sigaction, "sigaction");
    LOOKUP(real_signal, "signal");
}

static int ready(void) {
    if (!real_create)
        lookup_all();
    return S.on && self >= 0;
}

/* ---- the hand-off: a private futex per thread, no library synchronisation ---- */

static void futex_wait(uint32_t *w, uint32_t v) {
    real_syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0);
}
static void futex_wake(uint32_t *w) {
    real_syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* The scheduler's own lock: taken by the token holder and by threads coming back from an
 * uncontrolled wait. A spin lock of plain atomics, so no sanitizer sees an edge. */
static uint32_t glock;
static void lock_sched(void) {
    while (__atomic_exchange_n(&glock, 1, __ATOMIC_ACQUIRE))
        real_syscall(SYS_sched_yield);
}
static void unlock_sched(void) {
    __atomic_store_n(&glock, 0, __ATOMIC_RELEASE);
}

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static void note_uncontrolled(const char *what) {
    for (unsigned i = 0; i < S.nunc; i++)
        if (strcmp(S.unc_name[i], what) == 0) {
            S.unc_count[i]++;
            return;
        }
    if (S.nunc < MAX_UNCONTROLLED) {
        S.unc_name[S.nunc] = what;
        S.unc_count[S.nunc++] = 1;
    }
}

/* ---- the report ---- */

static void report(FILE *f, const char *outcome) {
    fprintf(f, "vdi-sched %s\n", S.spec);
    fprintf(f, "outcome %s\n", outcome);
    fprintf(f, "steps %llu\n", (unsigned long long)S.steps);
    fprintf(f, "threads %d\n", S.nthreads);
    fprintf(f, "trace %016llx\n", (unsigned long long)S.trace);
    fprintf(f, "virtual-ms %llu\n", (unsigned long long)(S.vnow / 1000000u));
    if (S.strategy == S_REPLAY && (S.replay_diverged || S.replay_at != S.nreplay))
        fprintf(f, "replay diverged\n");
    fprintf(f, "controlled %s\n", S.nunc ? "no" : "yes");
    for (unsigned i = 0; i < S.nunc; i++)
        fprintf(f, "uncontrolled %s %lu\n", S.unc_name[i], S.unc_count[i]);
    if (strcmp(outcome, "hang") == 0)
        for (int i = 0; i < S.nthreads; i++)
            if (S.t[i].state != T_EXITED)
                fprintf(f, "blocked %d %s\n", i, S.t[i].point ? S.t[i].point : "(start)");
    fprintf(f, "decisions %zu\n", S.ndecisions);
    for (size_t i = 0; i < S.ndecisions; i++)
        fprintf(f, "%u%c", S.decisions[i], (i + 1) % 32 == 0 || i + 1 == S.ndecisions ? '\n' : ' ');
}

static void write_report(const char *outcome) {
    if (S.reported)
        return;
    S.reported = 1;
    if (S.out[0]) {
        FILE *f = fopen(S.out, "w");
        if (f) {
            report(f, outcome);
            fclose(f);
        } else {
            fprintf(stderr, "vdi-sched: cannot write %s: %s\n", S.out, strerror(errno));
        }
    }
    fprintf(stderr, "vdi-sched %s: %s, %llu steps, %zu decisions, trace %016llx%s\n", S.spec,
            outcome, (unsigned long long)S.steps, S.ndecisions, (unsigned long long)S.trace,
            S.nunc ? ", not fully controlled" : "");
    for (unsigned i = 0; i < S.nunc; i++)
        fprintf(stderr, "vdi-sched: not controlled: %s (%lu times)\n", S.unc_name[i],
                S.unc_count[i]);
}

static const char *state_name(const struct thread *t) {
    switch (t->state) {
    case T_RUN:
        return "runnable";
    case T_BLOCKED:
        return t->deadline ? "blocked with a deadline" : "blocked";
    case T_EXTERNAL:
        return "in an uncontrolled wait";
    case T_EXITED:
        return "exited";
    default:
        return "free";
    }
}

/* Every thread blocked with no deadline and none in an uncontrolled wait: the program can
 * never go on. Say where each thread is and end the process. */
__attribute__((noreturn)) static void hang(void) {
    fprintf(stderr, "vdi-sched: hang: every thread is blocked with no deadline\n");
    for (int i = 0; i < S.nthreads; i++)
        if (S.t[i].state != T_EXITED)
            fprintf(stderr, "vdi-sched:   thread %d (tid %d) %s at %s\n", i, (int)S.t[i].tid,
                    state_name(&S.t[i]), S.t[i].point ? S.t[i].point : "(start)");
    write_report("hang");
    _exit(HANG_EXIT);
}

/* ---- choosing ---- */

static void record(unsigned choice) {
    if (S.ndecisions < MAX_DECISIONS)
        S.decisions[S.ndecisions++] = (uint16_t)choice;
}

/* Wakes the blocked threads whose deadline has come; 1 when it woke any. */
static int expire(void) {
    int woke = 0;
    for (int i = 0; i < S.nthreads; i++)
        if (S.t[i].state == T_BLOCKED && S.t[i].deadline && S.t[i].deadline <= S.vnow) {
            S.t[i].state = T_RUN;
            S.t[i].timed_out = 1;
            woke = 1;
        }
    return woke;
}

/* Picks the next thread among the runnable ones, by the strategy. Called with the lock.
 * Returns -1 when nobody is runnable but some thread is in an uncontrolled wait. */
static int pick(int yielding) {
    for (;;) {
        int en[MAX_THREADS], n = 0, external = 0;
        for (int i = 0; i < S.nthreads; i++) {
            if (S.t[i].state == T_RUN && !(yielding && i == self))
                en[n++] = i;
            external |= S.t[i].state == T_EXTERNAL;
        }
        if (n == 0 && yielding) /* nobody else can run: the yield returns */
            return self;
        if (n == 1)
            return en[0];
        if (n > 1) {
            unsigned c = 0;
            if (S.strategy == S_REPLAY) {
                /* Past the list's end, or a choice that does not exist here: the run
                 * is not the recorded one; it goes on with the first thread. */
                if (S.replay_at < S.nreplay && S.replay[S.replay_at] < (unsigned)n)
                    c = S.replay[S.replay_at];
                else
                    S.replay_diverged = 1;
                S.replay_at++;
            } else if (S.strategy == S_RANDOM) {
                c = (unsigned)(splitmix(&S.rng) % (uint64_t)n);
            } else { /* PCT: the highest priority runs */
                for (int j = 1; j < n; j++)
                    if (S.t[en[j]].priority > S.t[en[c]].priority)
                        c = (unsigned)j;
            }
            record(c);
            return en[c];
        }
        /* Nobody can run: jump to the earliest deadline; with none, wait for a thread in
         * an uncontrolled call to come back, and with none of those it is a hang. */
        uint64_t next = 0;
        for (int i = 0; i < S.nthreads; i++)
            if (S.t[i].state == T_BLOCKED && S.t[i].deadline &&
                (next == 0 || S.t[i].deadline < next))
                next = S.t[i].deadline;
        if (next == 0 && external)
            return -1;
        if (next == 0)
            hang();
        if (next > S.vnow)
            S.vnow = next;
        expire();
    }
}

static int other_runnable(void) {
    for (int i = 0; i < S.nthreads; i++)
        if (i != self && S.t[i].state == T_RUN)
            return 1;
    return 0;
}

/* Gives the token to `to` (or to nobody, -1). Called with the lock, which it releases. */
static void hand_to(int to) {
    S.running = to;
    if (to >= 0) {
        __atomic_store_n(&S.t[to].go, 1, __ATOMIC_RELEASE);
        futex_wake(&S.t[to].go);
    }
}

/* Waits for this thread's turn. */
static void wait_turn(void) {
    struct thread *me = &S.t[self];
    while (!__atomic_load_n(&me->go, __ATOMIC_ACQUIRE))
        futex_wait(&me->go, 0);
}

/* The scheduler proper: this thread (runnable or not) stops here, the strategy picks who
 * goes on, and this thread returns when it is picked again. */
static void reschedule_as(const char *point, int yielding) {
    struct thread *me = &S.t[self];
    lock_sched();
    if (yielding && !other_runnable()) { /* no one to yield to: not a step of the run */
        unlock_sched();
        return;
    }
    me->point = point;
    S.steps++;
    S.vnow += 1000; /* a microsecond a step: code that spins on the clock sees it move */
    expire();
    uint64_t h = S.trace ^ (uint64_t)self;
    for (const char *p = point; *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3u;
    S.trace = h * 0x100000001b3u;
    if (S.strategy == S_PCT)
        for (unsigned i = 0; i + 1 < S.depth; i++)
            if (S.change[i] == S.steps)
                me->priority = i + 1; /* below every starting priority */
    int next = pick(yielding);
    if (S.timeline)
        fprintf(stderr, "vdi-sched: step %llu thread %d %s -> thread %d\n",
                (unsigned long long)S.steps, self, point, next);
    if (next == self) {
        unlock_sched();
        return;
    }
    __atomic_store_n(&me->go, 0, __ATOMIC_RELAXED);
    hand_to(next);
    unlock_sched();
    wait_turn();
}

static void reschedule(const char *point) {
    reschedule_as(point, 0);
}

/* Blocks on key until woken (wake_key) or until the deadline (virtual ns, 0: none).
 * Returns 1 when the deadline ended it. */
static int block_on(const void *key, uint64_t deadline, const char *where) {
    struct thread *me = &S.t[self];
    me->state = T_BLOCKED;
    me->key = key;
    me->deadline = deadline;
    me->timed_out = 0;
    reschedule(where);
    me->key = NULL;
    me->deadline = 0;
    return me->timed_out;
}

/* Makes the threads blocked on key runnable (at most n of them, lowest slot first). */
static void wake_key(const void *key, int n) {
    for (int i = 0; i < S.nthreads && n > 0; i++)
        if (S.t[i].state == T_BLOCKED && S.t[i].key == key) {
            S.t[i].state = T_RUN;
            n--;
        }
}

/* An uncontrolled blocking call: the token is let go around it. */
static void external_begin(const char *what) {
    lock_sched();
    note_uncontrolled(what);
    S.t[self].state = T_EXTERNAL;
    S.t[self].point = what;
    __atomic_store_n(&S.t[self].go, 0, __ATOMIC_RELAXED);
    hand_to(pick(0));
    unlock_sched();
}
static void external_end(void) {
    lock_sched();
    S.t[self].state = T_RUN;
    if (S.running < 0) { /* nobody was running: take the token back */
        S.running = self;
        __atomic_store_n(&S.t[self].go, 1, __ATOMIC_RELAXED);
    }
    unlock_sched();
    wait_turn();
}

/* ---- the interface a library under the scheduler calls (libsqlvdi's audit mode) ---- */

EXPORT int vdichaos_sched_active(void);
EXPORT void vdichaos_sched_point(const char *name);
EXPORT void vdichaos_sched_external_begin(const char *what);
EXPORT void vdichaos_sched_external_end(void);

/* 1 when the calling thread runs under the scheduler. */
EXPORT int vdichaos_sched_active(void) {
    return ready();
}

/* A schedule point of the library's own (name: a string literal). */
EXPORT void vdichaos_sched_point(const char *name) {
    if (ready())
        reschedule(name);
}

/* Around a wait the scheduler cannot see the end of (a futex another process wakes): the
 * token is let go before it and taken back after; the run is then not fully controlled. */
EXPORT void vdichaos_sched_external_begin(const char *what) {
    if (ready())
        external_begin(what);
}
EXPORT void vdichaos_sched_external_end(void) {
    if (ready())
        external_end();
}

/* ---- virtual time ---- */

static uint64_t ts_ns(const struct timespec *ts) {
    return (uint64_t)ts->tv_sec * 1000000000u + (uint64_t)ts->tv_nsec;
}
static void ns_ts(uint64_t ns, struct timespec *ts) {
    ts->tv_sec = (time_t)(ns / 1000000000u);
    ts->tv_nsec = (long)(ns % 1000000000u);
}

/* An absolute time of the given clock as a virtual deadline (at least now + 1 ns). */
static uint64_t abs_deadline(clockid_t clk, const struct timespec *abs) {
    const struct timespec *base = clk == CLOCK_REALTIME ? &S.real_base : &S.mono_base;
    uint64_t b = ts_ns(base), a = ts_ns(abs);
    uint64_t rel = a > b ? a - b : 0;
    return rel > S.vnow ? rel : S.vnow + 1;
}

static int is_virtual_clock(clockid_t clk) {
    return clk == CLOCK_MONOTONIC || clk == CLOCK_MONOTONIC_RAW || clk == CLOCK_MONOTONIC_COARSE ||
           clk == CLOCK_BOOTTIME || clk == CLOCK_REALTIME || clk == CLOCK_REALTIME_COARSE;
}

EXPORT int clock_gettime(clockid_t clk, struct timespec *ts) {
    if (!real_clock_gettime)
        lookup_all();
    if (!S.on || !is_virtual_clock(clk))
        return real_clock_gettime(clk, ts);
    const struct timespec *base =
        clk == CLOCK_REALTIME || clk == CLOCK_REALTIME_COARSE ? &S.real_base : &S.mono_base;
    __atomic_add_fetch(&S.vnow, 1000, __ATOMIC_RELAXED);
    ns_ts(ts_ns(base) + __atomic_load_n(&S.vnow, __ATOMIC_RELAXED), ts);
    return 0;
}

EXPORT int gettimeofday(struct timeval *tv, void *tz) {
    (void)tz;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
    return 0;
}

EXPORT time_t time(time_t *out) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (out)
        *out = ts.tv_sec;
    return ts.tv_sec;
}

static int sleep_ns(uint64_t ns, const char *where) {
    if (ns == 0)
        reschedule(where);
    else
        block_on(NULL, S.vnow + ns, where);
    return 0;
}

EXPORT int nanosleep(const struct timespec *req, struct timespec *rem) {
    if (!ready())
        return real_nanosleep(req, rem);
    if (!req || req->tv_nsec < 0 || req->tv_nsec >= 1000000000) {
        errno = EINVAL;
        return -1;
    }
    if (rem)
        rem->tv_sec = rem->tv_nsec = 0;
    return sleep_ns(ts_ns(req), "nanosleep");
}

EXPORT int clock_nanosleep(clockid_t clk, int flags, const struct timespec *req,
                           struct timespec *rem) {
    if (!ready() || !is_virtual_clock(clk))
        return real_clock_nanosleep(clk, flags, req, rem);
    if (!req || req->tv_nsec < 0 || req->tv_nsec >= 1000000000)
        return EINVAL;
    if (flags & TIMER_ABSTIME) {
        uint64_t d = abs_deadline(clk, req);
        block_on(NULL, d, "clock_nanosleep");
        return 0;
    }
    if (rem)
        rem->tv_sec = rem->tv_nsec = 0;
    return sleep_ns(ts_ns(req), "clock_nanosleep");
}

EXPORT int usleep(useconds_t us) {
    if (!ready())
        return real_usleep(us);
    return sleep_ns((uint64_t)us * 1000u, "usleep");
}

EXPORT unsigned sleep(unsigned s) {
    if (!ready())
        return real_sleep(s);
    sleep_ns((uint64_t)s * 1000000000u, "sleep");
    return 0;
}

/* A yield is a thread saying it waits for another (a spin loop: the sanitizers' own thread
 * start hand-shake is one): another runnable thread goes first, whatever the strategy. */
EXPORT int sched_yield(void) {
    if (!ready())
        return (int)real_syscall(SYS_sched_yield);
    reschedule_as("sched_yield", 1);
    return 0;
}

EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout) {
    if (!ready())
        return real_poll(fds, n, timeout);
    if (n == 0) {
        if (timeout < 0)
            return block_on(&S, 0, "poll"), 0;
        return sleep_ns((uint64_t)timeout * 1000000u, "poll"), 0;
    }
    reschedule("poll");
    int r = real_poll(fds, n, 0);
    if (r != 0 || timeout == 0)
        return r;
    external_begin("poll on file descriptors");
    r = real_poll(fds, n, timeout);
    int e = errno;
    external_end();
    errno = e;
    return r;
}

EXPORT pid_t waitpid(pid_t pid, int *status, int options) {
    if (!ready())
        return real_waitpid(pid, status, options);
    reschedule("waitpid");
    pid_t r = real_waitpid(pid, status, options | WNOHANG);
    if (r != 0 || (options & WNOHANG))
        return r;
    external_begin("waitpid for a child");
    r = real_waitpid(pid, status, options);
    int e = errno;
    external_end();
    errno = e;
    return r;
}

/* A futex wait the program makes itself (or a library without the scheduler's seam): it
 * runs with the token let go, since the scheduler cannot know who ends it. Every other
 * system call goes straight through. */
EXPORT long syscall(long nr, ...) {
    va_list ap;
    long a[6];
    va_start(ap, nr);
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    if (!real_syscall)
        lookup_all();
    if (nr == SYS_futex && ready() && S.t[self].state == T_RUN) {
        int op = (int)a[1] & FUTEX_CMD_MASK;
        if (op == FUTEX_WAIT || op == FUTEX_WAIT_BITSET || op == FUTEX_LOCK_PI ||
            op == FUTEX_WAIT_REQUEUE_PI) {
            external_begin("a raw futex wait");
            long r = real_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
            int e = errno;
            external_end();
            errno = e;
            return r;
        }
    }
    return real_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

/* Signal handlers run when the kernel says, not the strategy: a run with one is not fully
 * controlled. The synchronous fault signals (a crash, an abort, a sanitizer's or an audit's
 * fault handler) change no schedule and are not counted. */
static void note_handler(int sig, void (*h)(int)) {
    if (!ready() || h == SIG_DFL || h == SIG_IGN || sig == SIGSEGV || sig == SIGBUS ||
        sig == SIGFPE || sig == SIGILL || sig == SIGABRT || sig == SIGTRAP)
        return;
    lock_sched();
    note_uncontrolled("a signal handler");
    unlock_sched();
}

EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
    if (!real_sigaction)
        lookup_all();
    if (act)
        note_handler(sig, act->sa_handler);
    return real_sigaction(sig, act, old);
}

EXPORT __sighandler_t signal(int sig, __sighandler_t h) {
    if (!real_signal)
        lookup_all();
    note_handler(sig, h);
    return real_signal(sig, h);
}

EXPORT pid_t fork(void) {
    if (!real_fork)
        lookup_all();
    pid_t p = real_fork();
    if (p == 0) { /* the child has one thread left: it runs free */
        S.on = 0;
        self = -1;
        unsetenv("VDICHAOS_SCHED");
    } else if (p > 0 && ready()) {
        lock_sched();
        note_uncontrolled("a forked child process");
        unlock_sched();
    }
    return p;
}

/* ---- threads ---- */

struct start {
    void *(*fn)(void *);
    void *arg;
    int slot;
};

static void thread_gone(void) {
    lock_sched();
    struct thread *me = &S.t[self];
    me->state = T_EXITED;
    me->point = "exit";
    wake_key(me, INT_MAX); /* joiners */
    int next = pick(0);
    hand_to(next);
    unlock_sched();
    self = -1;
}

/* ThreadSanitizer's pthread_create calls ours with its own start routine and, as its
 * argument, a block whose first two words are the program's function and argument (its
 * ThreadParam); its own thread gets none. It waits for the new thread to start before it
 * returns, so the new thread may not wait for its turn before that start: the program's
 * function is swapped for user_start in the block, which waits there instead. Without
 * TSan, user_start is the new thread's start routine itself. */
struct tsan_param {
    void *(*fn)(void *);
    void *arg;
};

static void *user_start(void *p) {
    struct start st = *(struct start *)p;
    free(p);
    self = st.slot;
    S.t[self].tid = gettid();
    wait_turn();
    void *ret = st.fn(st.arg);
    if (self >= 0)
        thread_gone();
    return ret;
}

EXPORT int pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *),
                          void *arg) {
    if (!ready() || (S.tsan && !arg)) /* the sanitizer's own thread runs free */
        return real_create(th, attr, fn, arg);
    lock_sched();
    int slot = S.nthreads < MAX_THREADS ? S.nthreads : -1;
    if (slot >= 0) {
        S.nthreads++;
        memset(&S.t[slot], 0, sizeof S.t[slot]);
        S.t[slot].state = T_RUN;
        S.t[slot].point = "start";
        S.t[slot].priority = PCT_MAX_DEPTH + 1 + splitmix(&S.rng) % 1000000u;
    } else {
        note_uncontrolled("a thread beyond the table");
    }
    unlock_sched();
    if (slot < 0)
        return real_create(th, attr, fn, arg);
    struct start *st = malloc(sizeof *st);
    if (!st) {
        S.t[slot].state = T_EXITED;
        return EAGAIN;
    }
    int rc;
    if (S.tsan) {
        struct tsan_param *tp = arg, saved = *tp;
        *st = (struct start){tp->fn, tp->arg, slot};
        tp->fn = user_start;
        tp->arg = st;
        rc = real_create(th, attr, fn, arg);
        if (rc != 0)
            *tp = saved;
    } else {
        *st = (struct start){fn, arg, slot};
        rc = real_create(th, attr, user_start, st);
    }
    if (rc != 0) {
        free(st);
        S.t[slot].state = T_EXITED;
        return rc;
    }
    S.t[slot].handle = *th;
    /* Under ThreadSanitizer its pthread_create has yet to hand the new thread its start:
     * no other thread may run before it returns, so the point is the caller's next one. */
    if (!S.tsan)
        reschedule("pthread_create");
    return 0;
}

EXPORT int pthread_join(pthread_t th, void **ret) {
    if (!ready())
        return real_join(th, ret);
    reschedule("pthread_join");
    for (int i = S.nthreads - 1; i >= 0; i--) /* the newest thread of a reused handle */
        if (S.t[i].handle == th && i != self && S.t[i].state != T_FREE) {
            while (S.t[i].state != T_EXITED)
                block_on(&S.t[i], 0, "pthread_join:wait");
            break;
        }
    return real_join(th, ret); /* the thread is past its last point: this ends at once */
}

EXPORT void pthread_exit(void *ret) {
    if (!real_exit)
        lookup_all();
    if (S.on && self >= 0)
        thread_gone();
    real_exit(ret);
}

/* ---- mutexes, rwlocks, semaphores: try in the C library, block here ---- */

static int mutex_acquire(pthread_mutex_t *m, uint64_t deadline) {
    for (;;) {
        int rc = real_mtrylock(m);
        if (rc != EBUSY)
            return rc;
        if (block_on(m, deadline, "pthread_mutex_lock:wait"))
            return ETIMEDOUT;
    }
}

EXPORT int pthread_mutex_lock(pthread_mutex_t *m) {
    if (!ready())
        return real_mlock(m);
    reschedule("pthread_mutex_lock");
    return mutex_acquire(m, 0);
}

EXPORT int pthread_mutex_trylock(pthread_mutex_t *m) {
    if (ready())
        reschedule("pthread_mutex_trylock");
    return real_mtrylock(m);
}

EXPORT int pthread_mutex_timedlock(pthread_mutex_t *m, const struct timespec *abs) {
    if (!ready()) {
        static int (*real)(pthread_mutex_t *, const struct timespec *);
        if (!real)
            LOOKUP(real, "pthread_mutex_timedlock");
        return real(m, abs);
    }
    reschedule("pthread_mutex_timedlock");
    return mutex_acquire(m, abs_deadline(CLOCK_REALTIME, abs));
}

/* After a release in the C library (rc its answer): the threads blocked on the object
 * retry, and the release is a schedule point. */
static int released(int rc, const void *key, const char *point) {
    if (rc == 0) {
        wake_key(key, INT_MAX);
        reschedule(point);
    }
    return rc;
}

EXPORT int pthread_mutex_unlock(pthread_mutex_t *m) {
    if (!ready())
        return real_munlock(m);
    return released(real_munlock(m), m, "pthread_mutex_unlock");
}

static int rw_acquire(pthread_rwlock_t *l, int write, const char *where) {
    reschedule(where);
    for (;;) {
        int rc = write ? real_wrtry(l) : real_rdtry(l);
        if (rc != EBUSY)
            return rc;
        block_on(l, 0, write ? "pthread_rwlock_wrlock:wait" : "pthread_rwlock_rdlock:wait");
    }
}

EXPORT int pthread_rwlock_rdlock(pthread_rwlock_t *l) {
    return ready() ? rw_acquire(l, 0, "pthread_rwlock_rdlock") : real_rdlock(l);
}
EXPORT int pthread_rwlock_wrlock(pthread_rwlock_t *l) {
    return ready() ? rw_acquire(l, 1, "pthread_rwlock_wrlock") : real_wrlock(l);
}
EXPORT int pthread_rwlock_unlock(pthread_rwlock_t *l) {
    if (!ready())
        return real_rwunlock(l);
    return released(real_rwunlock(l), l, "pthread_rwlock_unlock");
}

static int sem_acquire(sem_t *s, uint64_t deadline, const char *where) {
    reschedule(where);
    for (;;) {
        if (real_semtry(s) == 0)
            return 0;
        if (errno != EAGAIN)
            return -1;
        if (block_on(s, deadline, "sem_wait:wait")) {
            errno = ETIMEDOUT;
            return -1;
        }
    }
}

EXPORT int sem_wait(sem_t *s) {
    return ready() ? sem_acquire(s, 0, "sem_wait") : real_semwait(s);
}
EXPORT int sem_timedwait(sem_t *s, const struct timespec *abs) {
    if (!ready()) {
        static int (*real)(sem_t *, const struct timespec *);
        if (!real)
            LOOKUP(real, "sem_timedwait");
        return real(s, abs);
    }
    return sem_acquire(s, abs_deadline(CLOCK_REALTIME, abs), "sem_timedwait");
}
EXPORT int sem_post(sem_t *s) {
    if (!ready())
        return real_sempost(s);
    return released(real_sempost(s), s, "sem_post");
}

/* ---- condition variables: entirely ours (the C library's object is never used) ---- */

static int cond_wait(pthread_cond_t *c, pthread_mutex_t *m, uint64_t deadline, const char *where) {
    reschedule(where); /* a preemption before the wait starts: where lost wake-ups live */
    int rc = real_munlock(m);
    if (rc != 0)
        return rc;
    wake_key(m, INT_MAX);
    int timed = block_on(c, deadline, "pthread_cond_wait:wait");
    rc = mutex_acquire(m, 0);
    return rc ? rc : timed ? ETIMEDOUT : 0;
}

EXPORT int pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m) {
    if (!ready()) {
        static int (*real)(pthread_cond_t *, pthread_mutex_t *);
        if (!real)
            LOOKUP(real, "pthread_cond_wait");
        return real(c, m);
    }
    return cond_wait(c, m, 0, "pthread_cond_wait");
}

EXPORT int pthread_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m,
                                  const struct timespec *abs) {
    if (!ready()) {
        static int (*real)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *);
        if (!real)
            LOOKUP(real, "pthread_cond_timedwait");
        return real(c, m, abs);
    }
    /* The condition's clock attribute is the C library's secret (realtime by default, or
     * monotonic): an absolute time below half the realtime clock's start is a monotonic
     * one, since the machine has not been up for decades. */
    clockid_t clk = ts_ns(abs) < ts_ns(&S.real_base) / 2 ? CLOCK_MONOTONIC : CLOCK_REALTIME;
    return cond_wait(c, m, abs_deadline(clk, abs), "pthread_cond_timedwait");
}

EXPORT int pthread_cond_clockwait(pthread_cond_t *c, pthread_mutex_t *m, clockid_t clk,
                                  const struct timespec *abs) {
    if (!ready()) {
        static int (*real)(pthread_cond_t *, pthread_mutex_t *, clockid_t, const struct timespec *);
        if (!real)
            LOOKUP(real, "pthread_cond_clockwait");
        return real(c, m, clk, abs);
    }
    return cond_wait(c, m, abs_deadline(clk, abs), "pthread_cond_clockwait");
}

EXPORT int pthread_cond_signal(pthread_cond_t *c) {
    if (!ready()) {
        static int (*real)(pthread_cond_t *);
        if (!real)
            LOOKUP(real, "pthread_cond_signal");
        return real(c);
    }
    wake_key(c, 1);
    reschedule("pthread_cond_signal");
    return 0;
}

EXPORT int pthread_cond_broadcast(pthread_cond_t *c) {
    if (!ready()) {
        static int (*real)(pthread_cond_t *);
        if (!real)
            LOOKUP(real, "pthread_cond_broadcast");
        return real(c);
    }
    wake_key(c, INT_MAX);
    reschedule("pthread_cond_broadcast");
    return 0;
}

/* ---- set-up ---- */

static int read_replay(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "vdi-sched: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[256];
    size_t want = 0;
    int in_list = 0;
    S.replay = malloc(MAX_DECISIONS * sizeof *S.replay);
    if (!S.replay) {
        fclose(f);
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        if (!in_list) {
            unsigned long long n;
            if (sscanf(line, "decisions %llu", &n) == 1) {
                if (n > MAX_DECISIONS) {
                    fprintf(stderr, "vdi-sched: %s: more than %d decisions\n", path, MAX_DECISIONS);
                    fclose(f);
                    return -1;
                }
                want = (size_t)n;
                in_list = 1;
            }
            continue;
        }
        if (strncmp(line, "blocked ", 8) == 0)
            break;
        char *p = line, *end;
        for (;;) {
            errno = 0;
            unsigned long v = strtoul(p, &end, 10);
            if (end == p)
                break;
            if (errno || v >= MAX_THREADS || S.nreplay >= want) {
                fprintf(stderr, "vdi-sched: %s: bad decision list\n", path);
                fclose(f);
                return -1;
            }
            S.replay[S.nreplay++] = (uint16_t)v;
            p = end;
        }
    }
    fclose(f);
    if (!in_list || S.nreplay != want) {
        fprintf(stderr, "vdi-sched: %s: no complete decision list (want %zu, have %zu)\n", path,
                want, S.nreplay);
        return -1;
    }
    return 0;
}

static int parse_u64(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || (*end && *end != ':'))
        return -1;
    *out = v;
    return 0;
}

/* random:SEED | pct:DEPTH:SEED[:STEPS] | replay:FILE */
static int configure(const char *spec) {
    snprintf(S.spec, sizeof S.spec, "%s", spec);
    uint64_t seed = 0, depth = 0, steps = 2000;
    if (strncmp(spec, "random:", 7) == 0) {
        S.strategy = S_RANDOM;
        if (parse_u64(spec + 7, &seed) || strchr(spec + 7, ':'))
            return -1;
    } else if (strncmp(spec, "pct:", 4) == 0) {
        S.strategy = S_PCT;
        const char *p = spec + 4;
        if (parse_u64(p, &depth) || depth < 1 || depth > PCT_MAX_DEPTH || !(p = strchr(p, ':')))
            return -1;
        if (parse_u64(++p, &seed))
            return -1;
        if ((p = strchr(p, ':')) && (parse_u64(++p, &steps) || steps < 1 || strchr(p, ':')))
            return -1;
    } else if (strncmp(spec, "replay:", 7) == 0) {
        S.strategy = S_REPLAY;
        if (!spec[7] || read_replay(spec + 7) != 0)
            return -1;
    } else {
        return -1;
    }
    S.rng = seed * 0x2545f4914f6cdd1du + 1;
    S.depth = (unsigned)depth;
    for (unsigned i = 0; i + 1 < S.depth; i++)
        S.change[i] = 1 + splitmix(&S.rng) % steps;
    return 0;
}

/* The program's end: the report is written and control stops, before the exit handlers
 * registered ahead of ours (a leak checker's, whose own spinning is no part of the run). */
static void sched_at_exit(void) {
    if (S.on && self >= 0) {
        lock_sched();
        write_report("exit");
        S.on = 0;
        unlock_sched();
    }
}

__attribute__((constructor)) static void sched_init(void) {
    lookup_all();
    const char *spec = getenv("VDICHAOS_SCHED");
    if (!spec || !*spec)
        return;
    const char *tl = getenv("VDICHAOS_SCHED_TIMELINE");
    S.timeline = tl && strcmp(tl, "1") == 0;
    const char *out = getenv("VDICHAOS_SCHED_OUT");
    if (out)
        snprintf(S.out, sizeof S.out, "%s", out);
    S.tsan = dlsym(RTLD_DEFAULT, "__tsan_init") != NULL;
    S.decisions = malloc(MAX_DECISIONS * sizeof *S.decisions);
    if (!S.decisions || configure(spec) != 0) {
        fprintf(stderr,
                "vdi-sched: VDICHAOS_SCHED='%.60s' is not random:SEED, pct:DEPTH:SEED[:STEPS] "
                "(DEPTH 1..%d) or replay:FILE; running uncontrolled\n",
                spec, PCT_MAX_DEPTH);
        return;
    }
    real_clock_gettime(CLOCK_REALTIME, &S.real_base);
    real_clock_gettime(CLOCK_MONOTONIC, &S.mono_base);
    S.nthreads = 1;
    S.t[0].state = T_RUN;
    S.t[0].go = 1;
    S.t[0].point = "main";
    S.t[0].tid = gettid();
    S.t[0].handle = pthread_self();
    S.t[0].priority = PCT_MAX_DEPTH + 1 + splitmix(&S.rng) % 1000000u;
    S.running = 0;
    self = 0;
    S.on = 1;
    atexit(sched_at_exit);
}
