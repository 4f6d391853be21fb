/* sched_preload.c: libvdichaos_sched.so, the controlled scheduler for programs we did not
 * write. Loaded with LD_PRELOAD, it takes over the scheduling of the program's threads:
 * one thread runs at a time, and at every schedule point (each pthread create, join, exit,
 * mutex, rwlock, condition variable and semaphore call, each sleep and timed wait,
 * sched_yield, fork, exec and spawn) a strategy picks which thread runs next. Waiting on
 * timeouts is virtual: the clock jumps to the next deadline when every thread is blocked,
 * and every thread blocked with no deadline is a hang, reported with each thread's
 * blocking point.
 *
 * A session is several processes under one scheduler: its state (the thread table, the
 * token, the clock, the decisions) lives in shared memory, so a client and the server it
 * talks to are one decision list. The processes of a session are declared before they
 * start (VDICHAOS_SCHED_PROCS, each told its slot), and the children a process forks,
 * executes or spawns join in the slot their parent reserved, so that when a process
 * arrives changes nothing. In a session, futex waits are the scheduler's too (every
 * process that can wake one is under it).
 *
 * Configured by the environment (README.md beside this file has the whole story):
 *   VDICHAOS_SCHED          random:SEED | pct:DEPTH:SEED[:STEPS] | replay:FILE
 *   VDICHAOS_SCHED_OUT      the report file: strategy, steps, trace hash, decisions, what
 *                           was not controlled, a hang's blocking points (replay reads it)
 *   VDICHAOS_SCHED_SESSION  the session's file (absent or empty before its first process)
 *   VDICHAOS_SCHED_PROCS    how many processes the session starts with (default 1)
 *   VDICHAOS_SCHED_SLOT     this process's slot among them, 0..PROCS-1 (default 0)
 * Without VDICHAOS_SCHED every interposed call goes straight to the C library.
 *
 * It creates no happens-before edge between threads that the program does not have: the
 * hand-off is a raw futex and plain atomics in uninstrumented code, invisible to TSan, and
 * every lock the program takes is still taken in the C library (our mutex_lock is a
 * trylock loop), so a sanitizer in the program sees the program's own synchronisation.
 *
 * Not controlled, and reported once per kind as "not fully controlled": blocking waits on
 * file descriptors and on processes outside the session, futex waits outside a session
 * (another process may end them), signal handlers, threads the scheduler did not see
 * start, processes started without a call it sees (system, popen). ThreadSanitizer's own
 * thread runs free (pthread_create says how it is told apart). */
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
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

enum { MAX_THREADS = 256, MAX_DECISIONS = 1 << 20, MAX_UNCONTROLLED = 16, PCT_MAX_DEPTH = 8 };
enum { POINT_LEN = 48, NAME_LEN = 16 };
enum { HANG_EXIT = 86 }; /* the process's status when every thread is blocked for good */
/* Real time (ms): how often a thread waiting for its turn looks whether the token's holder
 * is still there, and how long a process announced to the session may take to arrive. */
enum { WATCH_MS = 100, ARRIVAL_MS = 10000 };
/* Real time (ms) a thread may hold the token without reaching a schedule point while
 * others wait: longer, and it is taken to be blocked in a call the scheduler does not see
 * (a read of a pipe, sigsuspend), and the token is taken from it. */
enum { STEAL_MS = 3000 };

enum tstate { T_FREE = 0, T_RUN, T_BLOCKED, T_EXTERNAL, T_EXITED };
enum strategy { S_RANDOM = 1, S_PCT, S_REPLAY };

/* What a blocked thread waits for: an object's address in its own process, or one of
 * these, which the session's other processes can end. */
#define KEY_FUTEX ((uintptr_t)1) /* any futex wake (a spurious one is allowed) */
#define KEY_CHILD ((uintptr_t)2) /* a child process leaving the session */

struct thread {
    enum tstate state;
    uint32_t go;        /* futex: 1 when this thread holds the token */
    uintptr_t key;      /* what it waits for when blocked */
    uint64_t deadline;  /* virtual ns; 0: none */
    int timed_out;      /* the last block ended by its deadline */
    int stolen;         /* the token was taken from it in a call the scheduler does not see */
    int arriving;       /* reserved for a process image that has yet to join */
    uint64_t since_ms;  /* real ms: when the arrival was announced */
    pid_t pid, ppid;    /* its process (0: not known yet) and that process's parent */
    uint64_t pid_start; /* the process's start time, which tells a reused pid apart */
    pid_t tid;
    uint64_t priority; /* PCT */
    pthread_t handle;
    char point[POINT_LEN]; /* where it is (the last schedule point), for hang reports */
    char prog[NAME_LEN];   /* its program's name */
};

/* The session: one per run, shared by its processes (a file or a memfd, mapped shared). */
struct session {
    uint32_t init; /* 0 new, 1 being set up, 2 ready */
    uint32_t lock; /* the scheduler's lock, a spin lock of plain atomics */
    char spec[128];
    unsigned procs; /* the processes it was declared with */
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
    int hung;                       /* a hang was declared: every process ends */
    int futex_ctl;                  /* futex waits are the scheduler's (every waker is under it) */
    unsigned long signals;          /* deliveries to the program's signal handlers */
    uint64_t watch_steps, watch_ms; /* the step count a watcher last saw change, and when */
    pid_t gone_pid;      /* a process that left the session and has yet to end: the token */
    uint64_t gone_start; /* holder goes on once it has (its start time tells it apart) */
    char unc_name[MAX_UNCONTROLLED][POINT_LEN];
    unsigned long unc_count[MAX_UNCONTROLLED];
    unsigned nunc;
    size_t ndecisions, nreplay, replay_at;
    int replay_diverged;
    struct thread t[MAX_THREADS];
    uint16_t decisions[MAX_DECISIONS]; /* what the strategy chose where it had a choice */
    uint16_t replay[MAX_DECISIONS];
};

static struct session *G;

/* This process's own part. */
static struct {
    int on;
    int exiting; /* in the exit path: a hang found now is the other processes' */
    int tsan;    /* the program is built with ThreadSanitizer (pthread_create says how) */
    int timeline;
    pid_t pid;
    char out[512];
    char path[512]; /* the session's file, for the children that execute a program */
    char prog[NAME_LEN];
    int declared;            /* the session was declared (VDICHAOS_SCHED_SESSION), not our own */
    int exit_watch;          /* exit_phase's handler is registered */
    volatile int exit_phase; /* exit() has begun: the exit handlers and destructors run */
} P;

static __thread int self = -1; /* this thread's slot; -1: not controlled */

/* The C library's functions, looked up once. */
static int (*real_create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
static int (*real_join)(pthread_t, void **);
static void (*real_exit)(void *) __attribute__((noreturn));
static int (*real_mtrylock)(pthread_mutex_t *);
static int (*real_munlock)(pthread_mutex_t *);
static int (*real_mlock)(pthread_mutex_t *);
static int (*real_mtimedlock)(pthread_mutex_t *, const struct timespec *);
static int (*real_rdtry)(pthread_rwlock_t *);
static int (*real_wrtry)(pthread_rwlock_t *);
static int (*real_rwunlock)(pthread_rwlock_t *);
static int (*real_rdlock)(pthread_rwlock_t *);
static int (*real_wrlock)(pthread_rwlock_t *);
static int (*real_semtry)(sem_t *);
static int (*real_sempost)(sem_t *);
static int (*real_semwait)(sem_t *);
static int (*real_semtimedwait)(sem_t *, const struct timespec *);
static int (*real_cwait)(pthread_cond_t *, pthread_mutex_t *);
static int (*real_ctimedwait)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *);
static int (*real_cclockwait)(pthread_cond_t *, pthread_mutex_t *, clockid_t,
                              const struct timespec *);
static int (*real_csignal)(pthread_cond_t *);
static int (*real_cbroadcast)(pthread_cond_t *);
static int (*real_nanosleep)(const struct timespec *, struct timespec *);
static int (*real_clock_nanosleep)(clockid_t, int, const struct timespec *, struct timespec *);
static int (*real_clock_gettime)(clockid_t, struct timespec *);
static int (*real_poll)(struct pollfd *, nfds_t, int);
static int (*real_sigsuspend)(const sigset_t *);
static int (*real_pause)(void);
static int (*real_sigwaitinfo)(const sigset_t *, siginfo_t *);
static int (*real_sigwait)(const sigset_t *, int *);
static int (*real_sigtimedwait)(const sigset_t *, siginfo_t *, const struct timespec *);
static int (*real_select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
static int (*real_pselect)(int, fd_set *, fd_set *, fd_set *, const struct timespec *,
                           const sigset_t *);
static int (*real_ppoll)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
static int (*real_epoll_wait)(int, struct epoll_event *, int, int);
static int (*real_epoll_pwait)(int, struct epoll_event *, int, int, const sigset_t *);
static pid_t (*real_wait4)(pid_t, int *, int, struct rusage *);
static int (*real_waitid)(idtype_t, id_t, siginfo_t *, int);
static pid_t (*real_fork)(void);
static int (*real_execve)(const char *, char *const[], char *const[]);
static int (*real_execvpe)(const char *, char *const[], char *const[]);
static int (*real_spawn)(pid_t *, const char *, const posix_spawn_file_actions_t *,
                         const posix_spawnattr_t *, char *const[], char *const[]);
static int (*real_spawnp)(pid_t *, const char *, const posix_spawn_file_actions_t *,
                          const posix_spawnattr_t *, char *const[], char *const[]);
static int (*real_usleep)(useconds_t);
static long (*real_syscall)(long, ...);
static int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);
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
    LOOKUP(real_mtimedlock, "pthread_mutex_timedlock");
    LOOKUP(real_rdtry, "pthread_rwlock_tryrdlock");
    LOOKUP(real_wrtry, "pthread_rwlock_trywrlock");
    LOOKUP(real_rwunlock, "pthread_rwlock_unlock");
    LOOKUP(real_rdlock, "pthread_rwlock_rdlock");
    LOOKUP(real_wrlock, "pthread_rwlock_wrlock");
    LOOKUP(real_semtry, "sem_trywait");
    LOOKUP(real_sempost, "sem_post");
    LOOKUP(real_semwait, "sem_wait");
    LOOKUP(real_semtimedwait, "sem_timedwait");
    LOOKUP(real_cwait, "pthread_cond_wait");
    LOOKUP(real_ctimedwait, "pthread_cond_timedwait");
    LOOKUP(real_cclockwait, "pthread_cond_clockwait");
    LOOKUP(real_csignal, "pthread_cond_signal");
    LOOKUP(real_cbroadcast, "pthread_cond_broadcast");
    LOOKUP(real_nanosleep, "nanosleep");
    LOOKUP(real_clock_nanosleep, "clock_nanosleep");
    LOOKUP(real_clock_gettime, "clock_gettime");
    LOOKUP(real_poll, "poll");
    LOOKUP(real_sigsuspend, "sigsuspend");
    LOOKUP(real_pause, "pause");
    LOOKUP(real_sigwaitinfo, "sigwaitinfo");
    LOOKUP(real_sigwait, "sigwait");
    LOOKUP(real_sigtimedwait, "sigtimedwait");
    LOOKUP(real_select, "select");
    LOOKUP(real_pselect, "pselect");
    LOOKUP(real_ppoll, "ppoll");
    LOOKUP(real_epoll_wait, "epoll_wait");
    LOOKUP(real_epoll_pwait, "epoll_pwait");
    LOOKUP(real_wait4, "wait4");
    LOOKUP(real_waitid, "waitid");
    LOOKUP(real_fork, "fork");
    LOOKUP(real_execve, "execve");
    LOOKUP(real_execvpe, "execvpe");
    LOOKUP(real_spawn, "posix_spawn");
    LOOKUP(real_spawnp, "posix_spawnp");
    LOOKUP(real_usleep, "usleep");
    LOOKUP(real_sleep, "sleep");
    LOOKUP(real_syscall, "syscall");
    LOOKUP(real_sigaction, "sigaction");
}

static int ready(void) {
    if (!real_create)
        lookup_all();
    return P.on && self >= 0;
}

/* ---- the hand-off: a futex per thread in the shared table, no library synchronisation ---- */

/* Not private: the word is in memory the session's processes share. */
static int futex_wait_ms(uint32_t *w, uint32_t v, long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    long r = real_syscall(SYS_futex, w, FUTEX_WAIT, v, &ts, NULL, 0);
    return r == -1 && errno == ETIMEDOUT ? ETIMEDOUT : 0;
}
static void futex_wake(uint32_t *w) {
    real_syscall(SYS_futex, w, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* The scheduler's own lock: taken by the token holder and by threads coming back from an
 * uncontrolled wait. A spin lock of plain atomics, so no sanitizer sees an edge. */
static void lock_sched(void) {
    while (__atomic_exchange_n(&G->lock, 1, __ATOMIC_ACQUIRE))
        real_syscall(SYS_sched_yield);
}
static void unlock_sched(void) {
    __atomic_store_n(&G->lock, 0, __ATOMIC_RELEASE);
}

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint64_t real_ms(void) {
    struct timespec ts;
    real_clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void set_point(struct thread *t, const char *point) {
    snprintf(t->point, sizeof t->point, "%s", point);
}

static void note_uncontrolled(const char *what) {
    for (unsigned i = 0; i < G->nunc; i++)
        if (strcmp(G->unc_name[i], what) == 0) {
            G->unc_count[i]++;
            return;
        }
    if (G->nunc < MAX_UNCONTROLLED) {
        snprintf(G->unc_name[G->nunc], POINT_LEN, "%s", what);
        G->unc_count[G->nunc++] = 1;
    }
}

/* Field 22 of /proc/PID/stat, the process's start time; 0 when it is gone or a zombie. */
static uint64_t proc_start(pid_t pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
    if (!p || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X')
        return 0;
    p += 2;
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (!p)
            return 0;
        p++;
    }
    return strtoull(p, NULL, 10);
}

static int proc_alive(const struct thread *t) {
    return t->pid > 0 && proc_start(t->pid) == t->pid_start;
}

/* ---- the report ---- */

#define SIGNALS_KIND "a signal delivered to a handler"

static void report(FILE *f, const char *outcome) {
    fprintf(f, "vdi-sched %s\n", G->spec);
    fprintf(f, "outcome %s\n", outcome);
    fprintf(f, "steps %llu\n", (unsigned long long)G->steps);
    fprintf(f, "threads %d\n", G->nthreads);
    fprintf(f, "trace %016llx\n", (unsigned long long)G->trace);
    fprintf(f, "virtual-ms %llu\n", (unsigned long long)(G->vnow / 1000000u));
    if (G->strategy == S_REPLAY && (G->replay_diverged || G->replay_at != G->nreplay))
        fprintf(f, "replay diverged\n");
    unsigned long sigs = __atomic_load_n(&G->signals, __ATOMIC_RELAXED);
    fprintf(f, "controlled %s\n", G->nunc || sigs ? "no" : "yes");
    for (unsigned i = 0; i < G->nunc; i++)
        fprintf(f, "uncontrolled %s %lu\n", G->unc_name[i], G->unc_count[i]);
    if (sigs)
        fprintf(f, "uncontrolled %s %lu\n", SIGNALS_KIND, sigs);
    if (strcmp(outcome, "hang") == 0)
        for (int i = 0; i < G->nthreads; i++)
            if (G->t[i].state != T_EXITED)
                fprintf(f, "blocked %d %s (%s)\n", i, G->t[i].point, G->t[i].prog);
    fprintf(f, "decisions %zu\n", G->ndecisions);
    for (size_t i = 0; i < G->ndecisions; i++)
        fprintf(f, "%u%c", G->decisions[i],
                (i + 1) % 32 == 0 || i + 1 == G->ndecisions ? '\n' : ' ');
}

/* Written by each process as it leaves (the last one has the whole session) and by the
 * one that finds a hang. */
static void write_report(const char *outcome) {
    if (P.out[0]) {
        FILE *f = fopen(P.out, "w");
        if (f) {
            report(f, outcome);
            fclose(f);
        } else {
            fprintf(stderr, "vdi-sched: cannot write %s: %s\n", P.out, strerror(errno));
        }
    }
    unsigned long sigs = __atomic_load_n(&G->signals, __ATOMIC_RELAXED);
    fprintf(stderr, "vdi-sched %s: %s, %llu steps, %zu decisions, trace %016llx%s\n", G->spec,
            outcome, (unsigned long long)G->steps, G->ndecisions, (unsigned long long)G->trace,
            G->nunc || sigs ? ", not fully controlled" : "");
    for (unsigned i = 0; i < G->nunc; i++)
        fprintf(stderr, "vdi-sched: not controlled: %s (%lu times)\n", G->unc_name[i],
                G->unc_count[i]);
    if (sigs)
        fprintf(stderr, "vdi-sched: not controlled: %s (%lu times)\n", SIGNALS_KIND, sigs);
}

static const char *state_name(const struct thread *t) {
    switch (t->state) {
    case T_RUN:
        return t->arriving ? "not yet started" : "runnable";
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

__attribute__((noreturn)) static void exit_now(int status) {
    real_syscall(SYS_exit_group, status);
    for (;;)
        ;
}

/* Every thread of the session blocked with no deadline and none in an uncontrolled wait:
 * the session can never go on. Says where each thread is, and every process ends with
 * HANG_EXIT (this one too, unless it is already on its way out). */
static void declare_hang(void) {
    fprintf(stderr, "vdi-sched: hang: every thread is blocked with no deadline\n");
    for (int i = 0; i < G->nthreads; i++)
        if (G->t[i].state != T_EXITED)
            fprintf(stderr, "vdi-sched:   thread %d (%s, tid %d) %s at %s\n", i, G->t[i].prog,
                    (int)G->t[i].tid, state_name(&G->t[i]), G->t[i].point);
    write_report("hang");
    __atomic_store_n(&G->hung, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < G->nthreads; i++)
        futex_wake(&G->t[i].go);
    if (!P.exiting)
        exit_now(HANG_EXIT);
}

/* ---- the threads of a process, as a whole ---- */

/* Makes the threads of process pid blocked on key runnable (at most n, lowest slot first). */
static void wake_in(pid_t pid, uintptr_t key, int n) {
    for (int i = 0; i < G->nthreads && n > 0; i++)
        if (G->t[i].state == T_BLOCKED && G->t[i].key == key && G->t[i].pid == pid) {
            G->t[i].state = T_RUN;
            n--;
        }
}
static void wake_key(const void *key, int n) {
    wake_in(P.pid, (uintptr_t)key, n);
}

/* Every thread of process pid but `keep` leaves the table: the process ended, died, or
 * executed a new program (keep: the slot the new image goes on in). A parent waiting for
 * its children hears of it. */
static void process_left(pid_t pid, int keep) {
    pid_t ppid = 0;
    for (int i = 0; i < G->nthreads; i++)
        if (G->t[i].pid == pid && i != keep && G->t[i].state != T_EXITED) {
            ppid = G->t[i].ppid;
            G->t[i].state = T_EXITED;
            G->t[i].arriving = 0;
        }
    if (ppid && keep < 0)
        wake_in(ppid, KEY_CHILD, INT_MAX);
}

/* Futex waits go back to the kernel (a process outside the scheduler may wake one): those
 * blocked here now are woken (a spurious wake, which every futex user allows). */
static void futex_control_off(void) {
    if (!G->futex_ctl)
        return;
    G->futex_ctl = 0;
    for (int i = 0; i < G->nthreads; i++)
        if (G->t[i].state == T_BLOCKED && G->t[i].key == KEY_FUTEX)
            G->t[i].state = T_RUN;
}

/* The processes that are gone without leaving (killed, crashed) leave now, and a process
 * announced long ago that never arrived is given up. Returns 1 when anything changed. */
static int sweep(void) {
    int changed = 0;
    uint64_t now = 0;
    for (int i = 0; i < G->nthreads; i++) {
        struct thread *t = &G->t[i];
        if (t->state == T_EXITED || t->state == T_FREE || t->pid == P.pid)
            continue;
        if (t->arriving) {
            if (!now)
                now = real_ms();
            if (now - t->since_ms < ARRIVAL_MS)
                continue;
            note_uncontrolled("a process that did not come under the scheduler");
            futex_control_off();
            t->state = T_EXITED;
            t->arriving = 0;
            changed = 1;
        } else if (!proc_alive(t)) {
            process_left(t->pid, -1);
            changed = 1;
        }
    }
    return changed;
}

/* ---- choosing ---- */

static void record(unsigned choice) {
    if (G->ndecisions < MAX_DECISIONS)
        G->decisions[G->ndecisions++] = (uint16_t)choice;
}

/* Wakes the blocked threads whose deadline has come. */
static void expire(void) {
    for (int i = 0; i < G->nthreads; i++)
        if (G->t[i].state == T_BLOCKED && G->t[i].deadline && G->t[i].deadline <= G->vnow) {
            G->t[i].state = T_RUN;
            G->t[i].timed_out = 1;
        }
}

/* Picks the next thread among the runnable ones, by the strategy. Called with the lock.
 * Returns -1 when nobody is runnable but some thread is in an uncontrolled wait, or when
 * nobody is left. */
static int pick(int yielding) {
    for (;;) {
        int en[MAX_THREADS], n = 0, external = 0, live = 0;
        for (int i = 0; i < G->nthreads; i++) {
            if (G->t[i].state == T_RUN && !(yielding && i == self))
                en[n++] = i;
            external |= G->t[i].state == T_EXTERNAL;
            live |= G->t[i].state != T_EXITED && G->t[i].state != T_FREE;
        }
        if (n == 0 && yielding) /* nobody else can run: the yield returns */
            return self;
        if (n == 1)
            return en[0];
        if (n > 1) {
            unsigned c = 0;
            if (G->strategy == S_REPLAY) {
                /* Past the list's end, or a choice that does not exist here: the run
                 * is not the recorded one; it goes on with the first thread. */
                if (G->replay_at < G->nreplay && G->replay[G->replay_at] < (unsigned)n)
                    c = G->replay[G->replay_at];
                else
                    G->replay_diverged = 1;
                G->replay_at++;
            } else if (G->strategy == S_RANDOM) {
                c = (unsigned)(splitmix(&G->rng) % (uint64_t)n);
            } else { /* PCT: the highest priority runs */
                for (int j = 1; j < n; j++)
                    if (G->t[en[j]].priority > G->t[en[c]].priority)
                        c = (unsigned)j;
            }
            record(c);
            return en[c];
        }
        /* Nobody can run: jump to the earliest deadline; with none, wait for a thread in
         * an uncontrolled call to come back, and with none of those it is a hang (unless a
         * process went away without a word: its threads leave and the choice is made
         * again). */
        uint64_t next = 0;
        for (int i = 0; i < G->nthreads; i++)
            if (G->t[i].state == T_BLOCKED && G->t[i].deadline &&
                (next == 0 || G->t[i].deadline < next))
                next = G->t[i].deadline;
        if (next == 0 && (external || !live))
            return -1;
        if (next == 0) {
            if (sweep())
                continue;
            declare_hang();
            return -1;
        }
        if (next > G->vnow)
            G->vnow = next;
        expire();
    }
}

static int other_runnable(void) {
    for (int i = 0; i < G->nthreads; i++)
        if (i != self && G->t[i].state == T_RUN)
            return 1;
    return 0;
}

/* Gives the token to `to` (or to nobody, -1). Called with the lock. */
static void hand_to(int to) {
    G->running = to;
    if (to >= 0) {
        __atomic_store_n(&G->t[to].go, 1, __ATOMIC_RELEASE);
        futex_wake(&G->t[to].go);
    }
}

static void wait_turn(void);

/* A thread tired of waiting for its turn: is the token's holder still there? A process
 * killed with the token, or announced and never arrived, must not stop the session. */
static void watch(void) {
    int r = G->running;
    if (r < 0 || r == self || G->gone_pid)
        return;
    struct thread *t = &G->t[r];
    uint64_t now = real_ms();
    if (G->watch_steps != G->steps || !G->watch_ms) {
        G->watch_steps = G->steps;
        G->watch_ms = now;
    }
    if (t->arriving ? now - t->since_ms >= ARRIVAL_MS
                    : t->pid != P.pid && t->pid != 0 && !proc_alive(t)) {
        if (sweep())
            hand_to(pick(0));
        return;
    }
    if (t->arriving || t->state != T_RUN || now - G->watch_ms < STEAL_MS)
        return;
    /* Alive, and no step for STEAL_MS: blocked where the scheduler does not see. It goes on
     * as if in an uncontrolled wait, and waits for its turn at its next point. */
    note_uncontrolled("a call that blocked with the token");
    t->state = T_EXTERNAL;
    t->stolen = 1;
    G->watch_ms = now;
    __atomic_store_n(&t->go, 0, __ATOMIC_RELAXED);
    hand_to(pick(0));
}

/* A thread whose token was taken (watch) at its next point, with the lock: it is runnable
 * again, takes the token back if nobody holds it, else waits for its turn (the lock let go).
 */
static void token_back(void) {
    struct thread *me = &G->t[self];
    if (!me->stolen)
        return;
    me->stolen = 0;
    if (me->state == T_EXTERNAL)
        me->state = T_RUN;
    if (G->running < 0 && me->state == T_RUN) {
        hand_to(self);
        return;
    }
    unlock_sched();
    wait_turn();
    lock_sched();
}

/* The token was handed to this thread by a process on its way out: it goes on once that
 * process has ended, so that what the others see of it (alive or not, in /proc, in a wait
 * for a child) is the same in every run. A process that takes longer than ARRIVAL_MS to
 * end is not waited for further. */
static void await_gone(void) {
    uint64_t until = real_ms() + ARRIVAL_MS;
    struct timespec ms = {0, 1000000};
    while (proc_start(G->gone_pid) == G->gone_start && real_ms() < until)
        real_nanosleep(&ms, NULL);
    lock_sched();
    if (G->running == self && G->gone_pid) {
        if (proc_start(G->gone_pid) == G->gone_start)
            note_uncontrolled("a process slow to end after it left");
        G->gone_pid = 0;
        __atomic_store_n(&G->t[self].go, 1, __ATOMIC_RELEASE);
    }
    unlock_sched();
}

/* Waits for this thread's turn. A hang declared elsewhere ends the process (not one that
 * is already on its way out: its own exit status stands). */
static void wait_turn(void) {
    struct thread *me = &G->t[self];
    while (!__atomic_load_n(&me->go, __ATOMIC_ACQUIRE)) {
        if (__atomic_load_n(&G->hung, __ATOMIC_ACQUIRE) && !P.exiting)
            exit_now(HANG_EXIT);
        if (__atomic_load_n(&G->running, __ATOMIC_ACQUIRE) == self &&
            __atomic_load_n(&G->gone_pid, __ATOMIC_ACQUIRE)) {
            await_gone();
            continue;
        }
        if (futex_wait_ms(&me->go, 0, WATCH_MS) == ETIMEDOUT) {
            lock_sched();
            watch();
            unlock_sched();
        }
    }
}

/* The scheduler proper: this thread (runnable or not) stops here, the strategy picks who
 * goes on, and this thread returns when it is picked again. */
static void mark_exit_phase(void) {
    P.exit_phase = 1;
}

static void reschedule_as(const char *point, int yielding) {
    struct thread *me = &G->t[self];
    /* Registered at the first point, after the C library's and the program's own exit
     * handlers: it runs before them, and says that what follows is the process's end. */
    if (!P.exit_watch) {
        P.exit_watch = 1;
        atexit(mark_exit_phase);
    }
    lock_sched();
    token_back();
    if (yielding && !other_runnable()) { /* no one to yield to: not a step of the run */
        unlock_sched();
        return;
    }
    set_point(me, point);
    G->steps++;
    G->vnow += 1000; /* a microsecond a step: code that spins on the clock sees it move */
    expire();
    uint64_t h = G->trace ^ (uint64_t)self;
    for (const char *p = point; *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3u;
    G->trace = h * 0x100000001b3u;
    if (G->strategy == S_PCT)
        for (unsigned i = 0; i + 1 < G->depth; i++)
            if (G->change[i] == G->steps)
                me->priority = i + 1; /* below every starting priority */
    int next = pick(yielding);
    if (P.timeline)
        fprintf(stderr, "vdi-sched: step %llu thread %d (%s) %s -> thread %d\n",
                (unsigned long long)G->steps, self, P.prog, point, next);
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

/* Blocks on key until woken or until the deadline (virtual ns, 0: none). Returns 1 when
 * the deadline ended it. */
static int block_on(uintptr_t key, uint64_t deadline, const char *where) {
    struct thread *me = &G->t[self];
    me->state = T_BLOCKED;
    me->key = key;
    me->deadline = deadline;
    me->timed_out = 0;
    reschedule(where);
    me->key = 0;
    me->deadline = 0;
    return me->timed_out;
}
static int block_on_obj(const void *obj, uint64_t deadline, const char *where) {
    return block_on((uintptr_t)obj, deadline, where);
}

/* An uncontrolled blocking call: the token is let go around it. */
static void external_begin(const char *what) {
    lock_sched();
    token_back();
    note_uncontrolled(what);
    G->t[self].state = T_EXTERNAL;
    set_point(&G->t[self], what);
    __atomic_store_n(&G->t[self].go, 0, __ATOMIC_RELAXED);
    hand_to(pick(0));
    unlock_sched();
}
static void external_end(void) {
    lock_sched();
    G->t[self].state = T_RUN;
    if (G->running < 0) { /* nobody was running: take the token back */
        G->running = self;
        __atomic_store_n(&G->t[self].go, 1, __ATOMIC_RELAXED);
    }
    unlock_sched();
    wait_turn();
}

/* A slot for a new thread or process (runnable, its PCT priority drawn now). Called with
 * the lock; -1 when the table is full. */
static int new_slot(pid_t pid, pid_t ppid, const char *point) {
    if (G->nthreads >= MAX_THREADS) {
        note_uncontrolled("a thread beyond the table");
        return -1;
    }
    int slot = G->nthreads++;
    struct thread *t = &G->t[slot];
    memset(t, 0, sizeof *t);
    t->state = T_RUN;
    t->pid = pid;
    t->ppid = ppid;
    set_point(t, point);
    snprintf(t->prog, sizeof t->prog, "%s", P.prog);
    t->priority = PCT_MAX_DEPTH + 1 + splitmix(&G->rng) % 1000000u;
    return slot;
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

/* Around a wait the scheduler cannot see the end of: the token is let go before it and
 * taken back after; the run is then not fully controlled. */
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
    const struct timespec *base = clk == CLOCK_REALTIME ? &G->real_base : &G->mono_base;
    uint64_t b = ts_ns(base), a = ts_ns(abs);
    uint64_t rel = a > b ? a - b : 0;
    return rel > G->vnow ? rel : G->vnow + 1;
}

static int is_virtual_clock(clockid_t clk) {
    return clk == CLOCK_MONOTONIC || clk == CLOCK_MONOTONIC_RAW || clk == CLOCK_MONOTONIC_COARSE ||
           clk == CLOCK_BOOTTIME || clk == CLOCK_REALTIME || clk == CLOCK_REALTIME_COARSE;
}

EXPORT int clock_gettime(clockid_t clk, struct timespec *ts) {
    if (!real_clock_gettime)
        lookup_all();
    if (!P.on || !is_virtual_clock(clk))
        return real_clock_gettime(clk, ts);
    const struct timespec *base =
        clk == CLOCK_REALTIME || clk == CLOCK_REALTIME_COARSE ? &G->real_base : &G->mono_base;
    __atomic_add_fetch(&G->vnow, 1000, __ATOMIC_RELAXED);
    ns_ts(ts_ns(base) + __atomic_load_n(&G->vnow, __ATOMIC_RELAXED), ts);
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
        block_on(0, G->vnow + ns, where);
    return 0;
}

EXPORT int nanosleep(const struct timespec *req, struct timespec *rem) {
    if (!ready())
        return real_nanosleep(req, rem);
    if (!req || req->tv_nsec < 0 || req->tv_nsec >= 1000000000) {
        errno = EINVAL;
        return -1;
    }
    uint64_t ns = ts_ns(req); /* before rem is written: it may be req (libstdc++'s sleep_for) */
    if (rem)
        rem->tv_sec = rem->tv_nsec = 0;
    return sleep_ns(ns, "nanosleep");
}

EXPORT int clock_nanosleep(clockid_t clk, int flags, const struct timespec *req,
                           struct timespec *rem) {
    if (!ready() || !is_virtual_clock(clk))
        return real_clock_nanosleep(clk, flags, req, rem);
    if (!req || req->tv_nsec < 0 || req->tv_nsec >= 1000000000)
        return EINVAL;
    if (flags & TIMER_ABSTIME) {
        uint64_t d = abs_deadline(clk, req);
        block_on(0, d, "clock_nanosleep");
        return 0;
    }
    uint64_t ns = ts_ns(req);
    if (rem)
        rem->tv_sec = rem->tv_nsec = 0;
    return sleep_ns(ns, "clock_nanosleep");
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
    if (!ready() || P.exit_phase) /* the end's spinning (a leak checker's) is no part of the run */
        return (int)real_syscall(SYS_sched_yield);
    reschedule_as("sched_yield", 1);
    return 0;
}

EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout) {
    if (!ready())
        return real_poll(fds, n, timeout);
    if (n == 0) {
        if (timeout < 0)
            return block_on_obj(G, 0, "poll"), 0;
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

/* The children pid names (pid > 0: that one; otherwise any of ours) in the session: 1 when
 * one is still in it, 0 when they were and have all left (their end is at hand), -1 when
 * none is a process of the session. */
static int children_in_session(pid_t pid) {
    int seen = 0;
    for (int i = 0; i < G->nthreads; i++) {
        const struct thread *t = &G->t[i];
        int match = pid > 0 ? t->pid == pid : t->ppid == P.pid && t->pid != P.pid;
        if (t->state == T_FREE || !match)
            continue;
        seen = 1;
        if (t->state != T_EXITED)
            return 1;
    }
    return seen ? 0 : -1;
}

/* Calls that block until something outside the scheduler's sight happens (a signal, a
 * file descriptor): run with the token let go, unless they cannot block. */
#define EXTERNAL_CALL(what, real, ...)                                                             \
    do {                                                                                           \
        if (!real)                                                                                 \
            lookup_all();                                                                          \
        if (!ready())                                                                              \
            return real(__VA_ARGS__);                                                              \
        external_begin(what);                                                                      \
        __typeof__(real(__VA_ARGS__)) r_ = real(__VA_ARGS__);                                      \
        int e_ = errno;                                                                            \
        external_end();                                                                            \
        errno = e_;                                                                                \
        return r_;                                                                                 \
    } while (0)

static int zero_ts(const struct timespec *ts) {
    return ts && ts->tv_sec == 0 && ts->tv_nsec == 0;
}

EXPORT int sigsuspend(const sigset_t *mask) {
    EXTERNAL_CALL("a wait for a signal", real_sigsuspend, mask);
}
EXPORT int pause(void) {
    if (!ready())
        return real_pause ? real_pause() : (int)real_syscall(SYS_pause);
    external_begin("a wait for a signal");
    int r = real_pause();
    int e = errno;
    external_end();
    errno = e;
    return r;
}
EXPORT int sigwaitinfo(const sigset_t *set, siginfo_t *info) {
    EXTERNAL_CALL("a wait for a signal", real_sigwaitinfo, set, info);
}
EXPORT int sigwait(const sigset_t *set, int *sig) {
    EXTERNAL_CALL("a wait for a signal", real_sigwait, set, sig);
}
EXPORT int sigtimedwait(const sigset_t *set, siginfo_t *info, const struct timespec *ts) {
    if (zero_ts(ts) && real_sigtimedwait)
        return real_sigtimedwait(set, info, ts);
    EXTERNAL_CALL("a wait for a signal", real_sigtimedwait, set, info, ts);
}
EXPORT int select(int n, fd_set *r, fd_set *w, fd_set *x, struct timeval *tv) {
    if (tv && tv->tv_sec == 0 && tv->tv_usec == 0 && real_select)
        return real_select(n, r, w, x, tv);
    EXTERNAL_CALL("select on file descriptors", real_select, n, r, w, x, tv);
}
EXPORT int pselect(int n, fd_set *r, fd_set *w, fd_set *x, const struct timespec *ts,
                   const sigset_t *mask) {
    if (zero_ts(ts) && real_pselect)
        return real_pselect(n, r, w, x, ts, mask);
    EXTERNAL_CALL("select on file descriptors", real_pselect, n, r, w, x, ts, mask);
}
EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask) {
    if (zero_ts(ts) && real_ppoll)
        return real_ppoll(fds, n, ts, mask);
    EXTERNAL_CALL("poll on file descriptors", real_ppoll, fds, n, ts, mask);
}
EXPORT int epoll_wait(int ep, struct epoll_event *ev, int n, int ms) {
    if (ms == 0 && real_epoll_wait)
        return real_epoll_wait(ep, ev, n, ms);
    EXTERNAL_CALL("epoll_wait", real_epoll_wait, ep, ev, n, ms);
}
EXPORT int epoll_pwait(int ep, struct epoll_event *ev, int n, int ms, const sigset_t *mask) {
    if (ms == 0 && real_epoll_pwait)
        return real_epoll_pwait(ep, ev, n, ms, mask);
    EXTERNAL_CALL("epoll_wait", real_epoll_pwait, ep, ev, n, ms, mask);
}

/* One wait for a child (waitpid, wait4, waitid): the C library's call with WNOHANG added
 * or not. Returns the child's pid, 0 when none is ready (WNOHANG), -1 on an error. */
struct child_wait {
    int kind; /* 0 wait4 (waitpid, wait, wait3), 1 waitid */
    pid_t pid;
    int *status, options;
    struct rusage *usage;
    idtype_t idtype;
    id_t id;
    siginfo_t *info;
};

static pid_t child_wait_once(struct child_wait *w, int nohang) {
    if (w->kind == 0)
        return real_wait4(w->pid, w->status, w->options | nohang, w->usage);
    if (w->info)
        w->info->si_pid = 0;
    int rc = real_waitid(w->idtype, w->id, w->info, w->options | nohang);
    return rc != 0 ? -1 : w->info ? w->info->si_pid : 1;
}

/* A wait for a child of the session is the scheduler's: the parent is blocked until the
 * child leaves the session, then waits in the C library for the moment it takes to end.
 * A wait for any other child runs with the token let go. */
static pid_t child_wait(struct child_wait *w) {
    if (!ready())
        return child_wait_once(w, 0);
    reschedule("waitpid");
    for (;;) {
        pid_t r = child_wait_once(w, WNOHANG);
        if (r != 0 || (w->options & WNOHANG))
            return r;
        lock_sched();
        int in = children_in_session(w->pid);
        unlock_sched();
        if (in == 1) {
            block_on(KEY_CHILD, 0, "waitpid:wait");
            continue;
        }
        if (in == 0)
            return child_wait_once(w, 0);
        break;
    }
    external_begin("waitpid for a process outside the session");
    pid_t r = child_wait_once(w, 0);
    int e = errno;
    external_end();
    errno = e;
    return r;
}

EXPORT pid_t wait4(pid_t pid, int *status, int options, struct rusage *usage) {
    struct child_wait w = {0, pid, status, options, usage, P_ALL, 0, NULL};
    return child_wait(&w);
}
EXPORT pid_t waitpid(pid_t pid, int *status, int options) {
    return wait4(pid, status, options, NULL);
}
EXPORT pid_t wait3(int *status, int options, struct rusage *usage) {
    return wait4(-1, status, options, usage);
}
EXPORT pid_t wait(int *status) {
    return wait4(-1, status, 0, NULL);
}
EXPORT int waitid(idtype_t idtype, id_t id, siginfo_t *info, int options) {
    struct child_wait w = {1,   idtype == P_PID ? (pid_t)id : -1, NULL, options, NULL, idtype, id,
                           info};
    return child_wait(&w) < 0 ? -1 : 0;
}

/* ---- futexes ---- */

/* Makes every thread of the session blocked in a futex wait runnable: a wake reaches the
 * word's waiters, and the others wake spuriously and wait again. */
static void wake_futex_waiters(void) {
    for (int i = 0; i < G->nthreads; i++)
        if (G->t[i].state == T_BLOCKED && G->t[i].key == KEY_FUTEX)
            G->t[i].state = T_RUN;
}

/* A futex wait in the kernel, with the token let go: another process may end it. */
static long external_futex_wait(const long *a) {
    external_begin("a raw futex wait");
    long r = real_syscall(SYS_futex, a[0], a[1], a[2], a[3], a[4], a[5]);
    int e = errno;
    external_end();
    errno = e;
    return r;
}

/* A futex wait under the scheduler (in a session, where every waker is under it): the word
 * is compared and the thread blocked with nobody else running in between, and a timeout
 * is a virtual deadline. */
static long futex_wait_controlled(const long *a) {
    const uint32_t *word = (const uint32_t *)a[0];
    const struct timespec *ts = (const struct timespec *)a[3];
    int op = (int)a[1] & FUTEX_CMD_MASK;
    uint64_t deadline = 0;
    if (ts) {
        if (ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000) {
            errno = EINVAL;
            return -1;
        }
        if (op == FUTEX_WAIT)
            deadline = G->vnow + ts_ns(ts) + 1;
        else
            deadline =
                abs_deadline(a[1] & FUTEX_CLOCK_REALTIME ? CLOCK_REALTIME : CLOCK_MONOTONIC, ts);
    }
    reschedule("futex_wait");
    if (!G->futex_ctl) /* given back to the kernel while this thread waited for its turn */
        return external_futex_wait(a);
    if (__atomic_load_n(word, __ATOMIC_SEQ_CST) != (uint32_t)a[2]) {
        errno = EAGAIN;
        return -1;
    }
    if (block_on(KEY_FUTEX, deadline, "futex_wait:wait")) {
        errno = ETIMEDOUT;
        return -1;
    }
    return 0;
}

/* The futex calls a program (or a library without the scheduler's seam) makes itself. In a
 * session, waits and wakes are the scheduler's; outside one, a wait runs with the token let
 * go, since another process may end it. Every other system call goes straight through. */
EXPORT long syscall(long nr, ...) {
    va_list ap;
    long a[6];
    va_start(ap, nr);
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    if (!real_syscall)
        lookup_all();
    if (nr != SYS_futex || !ready() || G->t[self].state != T_RUN)
        return real_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    int op = (int)a[1] & FUTEX_CMD_MASK;
    int wait = op == FUTEX_WAIT || op == FUTEX_WAIT_BITSET;
    if (wait && G->futex_ctl)
        return futex_wait_controlled(a);
    if (wait || op == FUTEX_LOCK_PI || op == FUTEX_WAIT_REQUEUE_PI)
        return external_futex_wait(a);
    long r = real_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    if (P.declared && (op == FUTEX_WAKE || op == FUTEX_WAKE_BITSET || op == FUTEX_WAKE_OP ||
                       op == FUTEX_REQUEUE || op == FUTEX_CMP_REQUEUE)) {
        int e = errno;
        lock_sched();
        wake_futex_waiters();
        unlock_sched();
        reschedule("futex_wake");
        errno = e;
    }
    return r;
}

/* ---- signals ---- */

/* A handler runs when the kernel delivers its signal, not when the strategy says: a run in
 * which one ran is not fully controlled. The program's handlers are installed behind one of
 * ours that counts each delivery, so a handler installed and never run (a clean-up on
 * SIGTERM) changes nothing. The synchronous fault signals (a crash, an abort, a sanitizer's
 * or an audit's fault handler) change no schedule and are left alone. */
static struct sigaction user_sa[NSIG]; /* the program's handler behind ours */
static int wrapped[NSIG];

static int fault_signal(int sig) {
    return sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL || sig == SIGABRT ||
           sig == SIGTRAP;
}

static void counted_handler(int sig, siginfo_t *si, void *uc) {
    if (P.on)
        __atomic_add_fetch(&G->signals, 1, __ATOMIC_RELAXED);
    const struct sigaction *u = &user_sa[sig];
    if (u->sa_flags & SA_SIGINFO)
        u->sa_sigaction(sig, si, uc);
    else if (u->sa_handler != SIG_DFL && u->sa_handler != SIG_IGN)
        u->sa_handler(sig);
}

EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
    if (!real_sigaction)
        lookup_all();
    if (sig <= 0 || sig >= NSIG)
        return real_sigaction(sig, act, old);
    int was = wrapped[sig];
    struct sigaction prev = user_sa[sig], mine;
    int wrap = act && P.on && !fault_signal(sig) && act->sa_handler != SIG_DFL &&
               act->sa_handler != SIG_IGN;
    if (wrap) {
        user_sa[sig] = *act; /* before ours is in place: a delivery finds it */
        mine = *act;
        mine.sa_flags |= SA_SIGINFO;
        mine.sa_sigaction = counted_handler;
    }
    int rc = real_sigaction(sig, wrap ? &mine : act, old);
    if (rc != 0) {
        user_sa[sig] = prev;
        return rc;
    }
    if (old && was && old->sa_sigaction == counted_handler) { /* the program sees its own */
        old->sa_flags = prev.sa_flags;
        if (prev.sa_flags & SA_SIGINFO)
            old->sa_sigaction = prev.sa_sigaction;
        else
            old->sa_handler = prev.sa_handler;
    }
    if (act)
        wrapped[sig] = wrap;
    return rc;
}

/* signal(): the C library's meaning (BSD: the call restarted, the signal held during its
 * handler), through sigaction above. */
EXPORT __sighandler_t signal(int sig, __sighandler_t h) {
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = h;
    sigemptyset(&sa.sa_mask);
    if (sig > 0 && sig < NSIG)
        sigaddset(&sa.sa_mask, sig);
    sa.sa_flags = SA_RESTART;
    if (sigaction(sig, &sa, &old) != 0)
        return SIG_ERR;
    return old.sa_handler;
}

/* ---- processes: a child joins the session in the slot its parent reserved ---- */

/* A slot for a process the caller starts (fork, spawn): runnable, arriving. */
static int reserve_child(const char *point) {
    lock_sched();
    int slot = new_slot(0, P.pid, point);
    if (slot >= 0) {
        G->t[slot].arriving = 1;
        G->t[slot].since_ms = real_ms();
    }
    unlock_sched();
    return slot;
}

/* After the start of the child of slot (rc: 0 it started, as pid; else it did not). */
static void child_started(int slot, int rc, pid_t pid) {
    if (slot < 0)
        return;
    lock_sched();
    struct thread *t = &G->t[slot];
    if (rc != 0) {
        t->state = T_EXITED;
        t->arriving = 0;
    } else if (pid > 0 && t->pid == 0) {
        t->pid = pid;
    }
    unlock_sched();
}

/* This process's identity, in this process (the first one, a forked child, a new image). */
static void identify(void) {
    P.pid = (pid_t)real_syscall(SYS_getpid);
    const char *name = program_invocation_short_name;
    snprintf(P.prog, sizeof P.prog, "%s", name && *name ? name : "?");
}

/* This thread takes slot (reserved for it by its parent, or its own before an exec). */
static void take_slot(int slot) {
    struct thread *t = &G->t[slot];
    t->pid = P.pid;
    t->ppid = (pid_t)real_syscall(SYS_getppid);
    t->pid_start = proc_start(P.pid);
    t->tid = (pid_t)real_syscall(SYS_gettid);
    t->handle = pthread_self();
    snprintf(t->prog, sizeof t->prog, "%s", P.prog);
    t->arriving = 0;
    self = slot;
}

EXPORT pid_t fork(void) {
    if (!real_fork)
        lookup_all();
    if (!ready()) {
        pid_t p = real_fork();
        if (p == 0 && P.on) { /* forked by a thread outside control: the child runs free */
            P.on = 0;
            self = -1;
        }
        return p;
    }
    int slot = reserve_child("fork:child");
    pid_t p = real_fork();
    if (p == 0) {
        identify();
        if (slot < 0) {
            P.on = 0;
            self = -1;
            return 0;
        }
        lock_sched();
        take_slot(slot);
        unlock_sched();
        wait_turn();
        return 0;
    }
    int e = errno;
    child_started(slot, p < 0, p);
    reschedule("fork");
    errno = e;
    return p;
}

/* vfork's child shares its parent's memory and thread until it executes a program, which
 * would have it write the parent's slot: under the scheduler it is a fork (which POSIX
 * allows: a program may only execute or _exit in the child). */
EXPORT pid_t vfork(void) {
    return fork();
}

/* The environment a program executed under the session gets: the caller's, with the
 * scheduler's settings (its slot among them) and the library in LD_PRELOAD put back if the
 * caller left them out. Freed by the caller. */
static char **session_env(char *const envp[], int slot) {
    static const char lib_var[] = "LD_PRELOAD=";
    size_t n = 0;
    while (envp && envp[n])
        n++;
    char **out = malloc((n + 8) * sizeof *out);
    char *buf = malloc(4 * PATH_MAX + 256);
    if (!out || !buf) {
        free(out);
        free(buf);
        return NULL;
    }
    size_t k = 0, at = 0;
    const char *preload = "";
    for (size_t i = 0; i < n; i++) {
        if (strncmp(envp[i], "VDICHAOS_SCHED=", 15) == 0 ||
            strncmp(envp[i], "VDICHAOS_SCHED_SESSION=", 23) == 0 ||
            strncmp(envp[i], "VDICHAOS_SCHED_SLOT=", 20) == 0 ||
            strncmp(envp[i], "VDICHAOS_SCHED_OUT=", 19) == 0 ||
            (P.timeline && strncmp(envp[i], "VDICHAOS_SCHED_TIMELINE=", 24) == 0))
            continue;
        if (strncmp(envp[i], lib_var, sizeof lib_var - 1) == 0) {
            preload = envp[i] + sizeof lib_var - 1;
            continue;
        }
        out[k++] = envp[i];
    }
    Dl_info info;
    const char *lib = dladdr((void *)&G, &info) && info.dli_fname ? info.dli_fname : "";
#define PUT(...)                                                                                   \
    do {                                                                                           \
        out[k++] = buf + at;                                                                       \
        at += (size_t)snprintf(buf + at, 4 * PATH_MAX + 256 - at, __VA_ARGS__) + 1;                \
    } while (0)
    if (*lib && !strstr(preload, lib))
        PUT("LD_PRELOAD=%s%s%s", lib, *preload ? ":" : "", preload);
    else
        PUT("LD_PRELOAD=%s", preload);
    PUT("VDICHAOS_SCHED=%s", G->spec);
    PUT("VDICHAOS_SCHED_SESSION=%s", P.path);
    PUT("VDICHAOS_SCHED_SLOT=%d", slot);
    if (P.out[0])
        PUT("VDICHAOS_SCHED_OUT=%s", P.out);
    if (P.timeline)
        PUT("VDICHAOS_SCHED_TIMELINE=1");
#undef PUT
    out[k] = NULL;
    /* the strings live in buf: one block for the caller to free, after the array */
    char **block = realloc(out, (k + 2) * sizeof *out);
    if (block)
        out = block;
    out[k + 1] = buf;
    return out;
}

static void free_env(char **env) {
    if (!env)
        return;
    size_t k = 0;
    while (env[k])
        k++;
    free(env[k + 1]);
    free(env);
}

/* exec: the new program goes on in this thread's slot, with the token, when it arrives. */
static int exec_in_session(const char *file, char *const argv[], char *const envp[], int search) {
    if (!real_execve)
        lookup_all();
    /* not a process of ours: the child of a raw clone (a vfork of some other library) */
    if (!ready() || (pid_t)real_syscall(SYS_getpid) != P.pid)
        return search ? real_execvpe(file, argv, envp) : real_execve(file, argv, envp);
    reschedule("exec");
    char **env = session_env(envp, self);
    if (!env) {
        errno = ENOMEM;
        return -1;
    }
    lock_sched();
    G->t[self].arriving = 1;
    G->t[self].since_ms = real_ms();
    unlock_sched();
    int rc = search ? real_execvpe(file, argv, env) : real_execve(file, argv, env);
    int e = errno;
    lock_sched();
    G->t[self].arriving = 0;
    unlock_sched();
    free_env(env);
    errno = e;
    return rc;
}

EXPORT int execve(const char *path, char *const argv[], char *const envp[]) {
    return exec_in_session(path, argv, envp, 0);
}
EXPORT int execv(const char *path, char *const argv[]) {
    return exec_in_session(path, argv, environ, 0);
}
EXPORT int execvpe(const char *file, char *const argv[], char *const envp[]) {
    return exec_in_session(file, argv, envp, 1);
}
EXPORT int execvp(const char *file, char *const argv[]) {
    return exec_in_session(file, argv, environ, 1);
}

/* execl, execlp, execle: the arguments gathered into a vector. */
static int exec_list(const char *file, const char *arg, va_list ap, int search, int with_env) {
    size_t n = 1;
    va_list count;
    va_copy(count, ap);
    while (va_arg(count, const char *))
        n++;
    va_end(count);
    char **argv = malloc((n + 1) * sizeof *argv);
    if (!argv) {
        errno = ENOMEM;
        return -1;
    }
    argv[0] = (char *)arg;
    for (size_t i = 1; i <= n; i++)
        argv[i] = va_arg(ap, char *); /* the last is the NULL that ends the list */
    char *const *envp = with_env ? va_arg(ap, char *const *) : environ;
    int rc = exec_in_session(file, argv, envp, search);
    int e = errno;
    free(argv);
    errno = e;
    return rc;
}

EXPORT int execl(const char *path, const char *arg, ...) {
    va_list ap;
    va_start(ap, arg);
    int rc = exec_list(path, arg, ap, 0, 0);
    va_end(ap);
    return rc;
}
EXPORT int execlp(const char *file, const char *arg, ...) {
    va_list ap;
    va_start(ap, arg);
    int rc = exec_list(file, arg, ap, 1, 0);
    va_end(ap);
    return rc;
}
EXPORT int execle(const char *path, const char *arg, ...) {
    va_list ap;
    va_start(ap, arg);
    int rc = exec_list(path, arg, ap, 0, 1);
    va_end(ap);
    return rc;
}

/* posix_spawn: the new program joins in a slot reserved now. */
static int spawn_in_session(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
                            const posix_spawnattr_t *attr, char *const argv[], char *const envp[],
                            int search) {
    if (!real_spawn)
        lookup_all();
    if (!ready())
        return search ? real_spawnp(pid, file, fa, attr, argv, envp)
                      : real_spawn(pid, file, fa, attr, argv, envp);
    int slot = reserve_child("spawn:child");
    if (slot < 0)
        return search ? real_spawnp(pid, file, fa, attr, argv, envp)
                      : real_spawn(pid, file, fa, attr, argv, envp);
    char **env = session_env(envp, slot);
    if (!env) {
        child_started(slot, 1, 0);
        return ENOMEM;
    }
    pid_t got = 0;
    int rc = search ? real_spawnp(&got, file, fa, attr, argv, env)
                    : real_spawn(&got, file, fa, attr, argv, env);
    free_env(env);
    child_started(slot, rc, got);
    if (rc == 0 && pid)
        *pid = got;
    reschedule("posix_spawn");
    return rc;
}

EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                       const posix_spawnattr_t *attr, char *const argv[], char *const envp[]) {
    return spawn_in_session(pid, path, fa, attr, argv, envp, 0);
}
EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
                        const posix_spawnattr_t *attr, char *const argv[], char *const envp[]) {
    return spawn_in_session(pid, file, fa, attr, argv, envp, 1);
}

/* ---- threads ---- */

struct start {
    void *(*fn)(void *);
    void *arg;
    int slot;
};

static void thread_gone(void) {
    lock_sched();
    token_back();
    struct thread *me = &G->t[self];
    me->state = T_EXITED;
    set_point(me, "exit");
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
    G->t[self].tid = (pid_t)real_syscall(SYS_gettid);
    wait_turn();
    void *ret = st.fn(st.arg);
    if (self >= 0)
        thread_gone();
    return ret;
}

EXPORT int pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *),
                          void *arg) {
    if (!ready() || (P.tsan && !arg)) /* the sanitizer's own thread runs free */
        return real_create(th, attr, fn, arg);
    lock_sched();
    int slot = new_slot(P.pid, G->t[self].ppid, "start");
    if (slot >= 0)
        G->t[slot].pid_start = G->t[self].pid_start;
    unlock_sched();
    if (slot < 0)
        return real_create(th, attr, fn, arg);
    struct start *st = malloc(sizeof *st);
    if (!st) {
        G->t[slot].state = T_EXITED;
        return EAGAIN;
    }
    int rc;
    if (P.tsan) {
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
        G->t[slot].state = T_EXITED;
        return rc;
    }
    G->t[slot].handle = *th;
    /* Under ThreadSanitizer its pthread_create has yet to hand the new thread its start:
     * no other thread may run before it returns, so the point is the caller's next one. */
    if (!P.tsan)
        reschedule("pthread_create");
    return 0;
}

EXPORT int pthread_join(pthread_t th, void **ret) {
    if (!ready())
        return real_join(th, ret);
    reschedule("pthread_join");
    for (int i = G->nthreads - 1; i >= 0; i--) /* the newest thread of a reused handle */
        if (G->t[i].pid == P.pid && G->t[i].handle == th && i != self && G->t[i].state != T_FREE) {
            while (G->t[i].state != T_EXITED)
                block_on_obj(&G->t[i], 0, "pthread_join:wait");
            break;
        }
    return real_join(th, ret); /* the thread is past its last point: this ends at once */
}

EXPORT void pthread_exit(void *ret) {
    if (!real_exit)
        lookup_all();
    if (P.on && self >= 0)
        thread_gone();
    real_exit(ret);
}

/* ---- mutexes, rwlocks, semaphores: try in the C library, block here ---- */

static int mutex_acquire(pthread_mutex_t *m, uint64_t deadline) {
    for (;;) {
        int rc = real_mtrylock(m);
        if (rc != EBUSY)
            return rc;
        if (block_on_obj(m, deadline, "pthread_mutex_lock:wait"))
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
    if (!ready())
        return real_mtimedlock(m, abs);
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
        block_on_obj(l, 0, write ? "pthread_rwlock_wrlock:wait" : "pthread_rwlock_rdlock:wait");
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
        if (block_on_obj(s, deadline, "sem_wait:wait")) {
            errno = ETIMEDOUT;
            return -1;
        }
    }
}

EXPORT int sem_wait(sem_t *s) {
    return ready() ? sem_acquire(s, 0, "sem_wait") : real_semwait(s);
}
EXPORT int sem_timedwait(sem_t *s, const struct timespec *abs) {
    if (!ready())
        return real_semtimedwait(s, abs);
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
    int timed = block_on_obj(c, deadline, "pthread_cond_wait:wait");
    rc = mutex_acquire(m, 0);
    return rc ? rc : timed ? ETIMEDOUT : 0;
}

EXPORT int pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m) {
    if (!ready())
        return real_cwait(c, m);
    return cond_wait(c, m, 0, "pthread_cond_wait");
}

EXPORT int pthread_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m,
                                  const struct timespec *abs) {
    if (!ready())
        return real_ctimedwait(c, m, abs);
    /* The condition's clock attribute is the C library's secret (realtime by default, or
     * monotonic): an absolute time below half the realtime clock's start is a monotonic
     * one, since the machine has not been up for decades. */
    clockid_t clk = ts_ns(abs) < ts_ns(&G->real_base) / 2 ? CLOCK_MONOTONIC : CLOCK_REALTIME;
    return cond_wait(c, m, abs_deadline(clk, abs), "pthread_cond_timedwait");
}

EXPORT int pthread_cond_clockwait(pthread_cond_t *c, pthread_mutex_t *m, clockid_t clk,
                                  const struct timespec *abs) {
    if (!ready())
        return real_cclockwait(c, m, clk, abs);
    return cond_wait(c, m, abs_deadline(clk, abs), "pthread_cond_clockwait");
}

EXPORT int pthread_cond_signal(pthread_cond_t *c) {
    if (!ready())
        return real_csignal(c);
    wake_key(c, 1);
    reschedule("pthread_cond_signal");
    return 0;
}

EXPORT int pthread_cond_broadcast(pthread_cond_t *c) {
    if (!ready())
        return real_cbroadcast(c);
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
            if (errno || v >= MAX_THREADS || G->nreplay >= want) {
                fprintf(stderr, "vdi-sched: %s: bad decision list\n", path);
                fclose(f);
                return -1;
            }
            G->replay[G->nreplay++] = (uint16_t)v;
            p = end;
        }
    }
    fclose(f);
    if (!in_list || G->nreplay != want) {
        fprintf(stderr, "vdi-sched: %s: no complete decision list (want %zu, have %zu)\n", path,
                want, G->nreplay);
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
    snprintf(G->spec, sizeof G->spec, "%s", spec);
    uint64_t seed = 0, depth = 0, steps = 2000;
    if (strncmp(spec, "random:", 7) == 0) {
        G->strategy = S_RANDOM;
        if (parse_u64(spec + 7, &seed) || strchr(spec + 7, ':'))
            return -1;
    } else if (strncmp(spec, "pct:", 4) == 0) {
        G->strategy = S_PCT;
        const char *p = spec + 4;
        if (parse_u64(p, &depth) || depth < 1 || depth > PCT_MAX_DEPTH || !(p = strchr(p, ':')))
            return -1;
        if (parse_u64(++p, &seed))
            return -1;
        if ((p = strchr(p, ':')) && (parse_u64(++p, &steps) || steps < 1 || strchr(p, ':')))
            return -1;
    } else if (strncmp(spec, "replay:", 7) == 0) {
        G->strategy = S_REPLAY;
        if (!spec[7] || read_replay(spec + 7) != 0)
            return -1;
    } else {
        return -1;
    }
    G->rng = seed * 0x2545f4914f6cdd1du + 1;
    G->depth = (unsigned)depth;
    for (unsigned i = 0; i + 1 < G->depth; i++)
        G->change[i] = 1 + splitmix(&G->rng) % steps;
    return 0;
}

/* This process leaves the session (its exit, or _exit): its threads leave the table, the
 * token goes on to another process, and the report says where the session is. Before the
 * exit handlers registered ahead of ours (a leak checker's, whose own spinning is no part of
 * the run). A hang found now is the other processes': this one's exit status stands. */
static void leave(void) {
    if (!P.on)
        return;
    lock_sched();
    P.exiting = 1;
    int r = G->running, holder = r < 0 || G->t[r].pid == P.pid;
    process_left(P.pid, -1);
    if (holder) { /* the next holder goes on when this process has ended (await_gone) */
        int next = pick(0);
        G->running = next;
        if (next >= 0) {
            G->gone_pid = P.pid;
            G->gone_start = proc_start(P.pid);
            futex_wake(&G->t[next].go);
        }
    }
    if (!G->hung)
        write_report("exit");
    P.on = 0;
    unlock_sched();
}

static void sched_at_exit(void) {
    leave();
}

EXPORT void _exit(int status) {
    if (!real_syscall)
        lookup_all();
    leave();
    exit_now(status);
}
EXPORT void _Exit(int status) {
    _exit(status);
}

static long env_long(const char *name, long dflt, long lo, long hi) {
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    return errno || *end || n < lo || n > hi ? -1 : n;
}

/* Maps the session: the file VDICHAOS_SCHED_SESSION names (made if absent), or a memfd of
 * this process's own, named in its environment so that what it starts can find it. */
static int map_session(void) {
    const char *path = getenv("VDICHAOS_SCHED_SESSION");
    int fd, own = !path || !*path;
    P.declared = !own;
    if (own) {
        fd = memfd_create("vdichaos-sched", 0); /* inherited by what it executes */
        if (fd >= 0)
            snprintf(P.path, sizeof P.path, "/proc/self/fd/%d", fd);
    } else {
        snprintf(P.path, sizeof P.path, "%s", path);
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    }
    if (fd < 0) {
        fprintf(stderr, "vdi-sched: session %s: %s; running uncontrolled\n", own ? "(memfd)" : path,
                strerror(errno));
        return -1;
    }
    struct stat st;
    void *m = MAP_FAILED;
    if (fstat(fd, &st) == 0 &&
        ((size_t)st.st_size >= sizeof *G || ftruncate(fd, (off_t)sizeof *G) == 0))
        m = mmap(NULL, sizeof *G, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int e = errno;
    if (!own)
        close(fd);
    if (m == MAP_FAILED) {
        fprintf(stderr, "vdi-sched: session %s: %s; running uncontrolled\n", P.path, strerror(e));
        if (own)
            close(fd);
        return -1;
    }
    G = m;
    if (own)
        setenv("VDICHAOS_SCHED_SESSION", P.path, 1);
    return 0;
}

/* The first process of the session sets it up: the strategy, the clocks, a runnable slot
 * for the main thread of each of the procs processes it starts with (slot 0 holds the
 * token). Returns -1 on a bad strategy. */
static int set_up(const char *spec, unsigned procs, int declared) {
    if (configure(spec) != 0)
        return -1;
    real_clock_gettime(CLOCK_REALTIME, &G->real_base);
    real_clock_gettime(CLOCK_MONOTONIC, &G->mono_base);
    G->procs = procs;
    G->futex_ctl = declared;
    uint64_t now = real_ms();
    for (unsigned i = 0; i < procs; i++) {
        int slot = new_slot(0, 0, "main");
        G->t[slot].arriving = 1;
        G->t[slot].since_ms = now;
        snprintf(G->t[slot].prog, sizeof G->t[slot].prog, "?");
    }
    G->running = 0;
    G->t[0].go = 1;
    return 0;
}

/* Joins the session as VDICHAOS_SCHED_SLOT (or as its first process). Returns -1 when
 * this process runs uncontrolled (said on stderr, and in the session's report). */
static int join(const char *spec) {
    long procs = env_long("VDICHAOS_SCHED_PROCS", 1, 1, MAX_THREADS / 2);
    long slot = env_long("VDICHAOS_SCHED_SLOT", -2, 0, MAX_THREADS - 1);
    if (procs < 0 || slot == -1) {
        fprintf(stderr, "vdi-sched: VDICHAOS_SCHED_PROCS or _SLOT is not a small number; "
                        "running uncontrolled\n");
        return -1;
    }
    uint32_t fresh = 0;
    if (__atomic_compare_exchange_n(&G->init, &fresh, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        int ok = set_up(spec, (unsigned)procs, P.declared) == 0;
        __atomic_store_n(&G->init, ok ? 2 : 3, __ATOMIC_RELEASE);
        if (!ok)
            goto bad_spec;
        if (slot == -2)
            slot = 0;
    } else {
        for (uint64_t until = real_ms() + ARRIVAL_MS;
             __atomic_load_n(&G->init, __ATOMIC_ACQUIRE) == 1;)
            if (real_ms() > until)
                break;
            else
                real_syscall(SYS_sched_yield);
        if (__atomic_load_n(&G->init, __ATOMIC_ACQUIRE) != 2)
            goto bad_spec;
    }
    if (strcmp(G->spec, spec) != 0) {
        fprintf(stderr, "vdi-sched: the session runs '%s', not '%.60s'; running uncontrolled\n",
                G->spec, spec);
        slot = -2;
    }
    lock_sched();
    if (slot < 0 || slot >= G->nthreads || !G->t[slot].arriving ||
        (G->t[slot].pid && G->t[slot].pid != P.pid)) {
        note_uncontrolled("a process started out of the scheduler's sight");
        futex_control_off();
        unlock_sched();
        fprintf(stderr,
                "vdi-sched: %s is not one of the session's processes (started by "
                "system or popen?); running uncontrolled\n",
                P.prog);
        return -1;
    }
    process_left(P.pid, (int)slot); /* an executed image: the old one's threads are gone */
    take_slot((int)slot);
    unlock_sched();
    return 0;
bad_spec:
    fprintf(stderr,
            "vdi-sched: VDICHAOS_SCHED='%.60s' is not random:SEED, pct:DEPTH:SEED[:STEPS] "
            "(DEPTH 1..%d) or replay:FILE; running uncontrolled\n",
            spec, PCT_MAX_DEPTH);
    return -1;
}

__attribute__((constructor)) static void sched_init(void) {
    lookup_all();
    const char *spec = getenv("VDICHAOS_SCHED");
    if (!spec || !*spec)
        return;
    identify();
    const char *tl = getenv("VDICHAOS_SCHED_TIMELINE");
    P.timeline = tl && strcmp(tl, "1") == 0;
    const char *out = getenv("VDICHAOS_SCHED_OUT");
    if (out)
        snprintf(P.out, sizeof P.out, "%s", out);
    P.tsan = dlsym(RTLD_DEFAULT, "__tsan_init") != NULL;
    if (map_session() != 0 || join(spec) != 0)
        return;
    unsetenv("VDICHAOS_SCHED_SLOT"); /* what this process starts is given a slot of its own */
    P.on = 1;
    atexit(sched_at_exit);
    wait_turn();
}
