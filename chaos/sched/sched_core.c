/* sched_core.c: libvdichaos_sched.so, the controlled scheduler for programs we did not
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
 *   VDICHAOS_SCHED_ARRIVAL_MS  real ms a process announced may take to arrive, or one that
 *                           left to end, before it is given up (default 10000)
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
 * thread runs free (pthread_create says how it is told apart).
 *
 * This file is the scheduler proper: the hand-off of the token between threads, the
 * report, the choice of the next thread (the strategies), the interface a library under
 * the scheduler calls, and a process's set-up in its session and its leaving. The calls it
 * interposes are in sched_time.c (virtual time, sleeps, waits it cannot see the end of),
 * sched_proc.c (fork, exec, spawn, waits for a child, signals) and sched_sync.c (threads,
 * locks, semaphores, condition variables, futexes); sched_internal.h is what they share. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sched_internal.h"

struct session *G;

/* This process's own part. */
struct process P;

__thread int self = -1; /* this thread's slot; -1: not controlled */

/* The C library's functions, looked up once. */
int (*real_create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
int (*real_join)(pthread_t, void **);
void (*real_exit)(void *) __attribute__((noreturn));
int (*real_mtrylock)(pthread_mutex_t *);
int (*real_munlock)(pthread_mutex_t *);
int (*real_mlock)(pthread_mutex_t *);
int (*real_mtimedlock)(pthread_mutex_t *, const struct timespec *);
int (*real_rdtry)(pthread_rwlock_t *);
int (*real_wrtry)(pthread_rwlock_t *);
int (*real_rwunlock)(pthread_rwlock_t *);
int (*real_rdlock)(pthread_rwlock_t *);
int (*real_wrlock)(pthread_rwlock_t *);
int (*real_semtry)(sem_t *);
int (*real_sempost)(sem_t *);
int (*real_semwait)(sem_t *);
int (*real_semtimedwait)(sem_t *, const struct timespec *);
int (*real_cwait)(pthread_cond_t *, pthread_mutex_t *);
int (*real_ctimedwait)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *);
int (*real_cclockwait)(pthread_cond_t *, pthread_mutex_t *, clockid_t, const struct timespec *);
int (*real_csignal)(pthread_cond_t *);
int (*real_cbroadcast)(pthread_cond_t *);
int (*real_nanosleep)(const struct timespec *, struct timespec *);
int (*real_clock_nanosleep)(clockid_t, int, const struct timespec *, struct timespec *);
int (*real_clock_gettime)(clockid_t, struct timespec *);
int (*real_poll)(struct pollfd *, nfds_t, int);
int (*real_sigsuspend)(const sigset_t *);
int (*real_pause)(void);
int (*real_sigwaitinfo)(const sigset_t *, siginfo_t *);
int (*real_sigwait)(const sigset_t *, int *);
int (*real_sigtimedwait)(const sigset_t *, siginfo_t *, const struct timespec *);
int (*real_select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
int (*real_pselect)(int, fd_set *, fd_set *, fd_set *, const struct timespec *, const sigset_t *);
int (*real_ppoll)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
int (*real_epoll_wait)(int, struct epoll_event *, int, int);
int (*real_epoll_pwait)(int, struct epoll_event *, int, int, const sigset_t *);
pid_t (*real_wait4)(pid_t, int *, int, struct rusage *);
int (*real_waitid)(idtype_t, id_t, siginfo_t *, int);
pid_t (*real_fork)(void);
int (*real_execve)(const char *, char *const[], char *const[]);
int (*real_execvpe)(const char *, char *const[], char *const[]);
int (*real_spawn)(pid_t *, const char *, const posix_spawn_file_actions_t *,
                  const posix_spawnattr_t *, char *const[], char *const[]);
int (*real_spawnp)(pid_t *, const char *, const posix_spawn_file_actions_t *,
                   const posix_spawnattr_t *, char *const[], char *const[]);
int (*real_usleep)(useconds_t);
long (*real_syscall)(long, ...);
int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);
unsigned (*real_sleep)(unsigned);

/* dlsym's object pointer copied into a function pointer, as POSIX allows and ISO C does not
 * say (a cast would be refused by -Wpedantic). */
#define LOOKUP(var, name)                                                                          \
    do {                                                                                           \
        void *sym_ = dlsym(RTLD_NEXT, name);                                                       \
        memcpy(&(var), &sym_, sizeof sym_);                                                        \
    } while (0)

void lookup_all(void) {
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

int ready(void) {
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
void lock_sched(void) {
    while (CHAOS_EXCHANGE_ACQUIRE(&G->lock, 1)) /* pairs with unlock_sched's store */
        real_syscall(SYS_sched_yield);
}
void unlock_sched(void) {
    CHAOS_STORE_RELEASE(&G->lock, 0); /* pairs with lock_sched's exchange */
}

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

uint64_t real_ms(void) {
    struct timespec ts;
    real_clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void set_point(struct thread *t, const char *point) {
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
uint64_t proc_start(pid_t pid) {
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
    unsigned long sigs = CHAOS_LOAD_RELAXED(&G->signals);
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
    unsigned long sigs = CHAOS_LOAD_RELAXED(&G->signals);
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
    CHAOS_STORE_RELEASE(&G->hung, 1); /* pairs with wait_turn's load of hung */
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
void wake_key(const void *key, int n) {
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
            if (now - t->since_ms < G->arrival_ms)
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
int pick(int yielding) {
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
void hand_to(int to) {
    G->running = to;
    if (to >= 0) {
        /* pairs with wait_turn's load of go: the turn, and running, handed over */
        CHAOS_STORE_RELEASE(&G->t[to].go, 1);
        futex_wake(&G->t[to].go);
    }
}

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
    if (t->arriving ? now - t->since_ms >= G->arrival_ms
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
    CHAOS_STORE_RELAXED(&t->go, 0);
    hand_to(pick(0));
}

/* A thread whose token was taken (watch) at its next point, with the lock: it is runnable
 * again, takes the token back if nobody holds it, else waits for its turn (the lock let go).
 */
void token_back(void) {
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
 * for a child) is the same in every run. A process that takes longer than the arrival time
 * to end is not waited for further. */
static void await_gone(void) {
    uint64_t until = real_ms() + G->arrival_ms;
    struct timespec ms = {0, 1000000};
    while (proc_start(G->gone_pid) == G->gone_start && real_ms() < until)
        real_nanosleep(&ms, NULL);
    lock_sched();
    if (G->running == self && G->gone_pid) {
        if (proc_start(G->gone_pid) == G->gone_start)
            note_uncontrolled("a process slow to end after it left");
        G->gone_pid = 0;
        CHAOS_STORE_RELEASE(&G->t[self].go, 1); /* pairs with wait_turn's load of go */
    }
    unlock_sched();
}

/* Waits for this thread's turn. A hang declared elsewhere ends the process (not one that
 * is already on its way out: its own exit status stands). */
void wait_turn(void) {
    struct thread *me = &G->t[self];
    /* pairs with the stores of go by the thread that hands the turn over */
    while (!CHAOS_LOAD_ACQUIRE(&me->go)) {
        if (CHAOS_LOAD_ACQUIRE(&G->hung) && !P.exiting) /* pairs with the hang report's store */
            exit_now(HANG_EXIT);
        /* pairs with the stores of go (running written before) and leave()'s unlock */
        if (CHAOS_LOAD_ACQUIRE(&G->running) == self && CHAOS_LOAD_ACQUIRE(&G->gone_pid)) {
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

void reschedule_as(const char *point, int yielding) {
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
    CHAOS_STORE_RELAXED(&me->go, 0);
    hand_to(next);
    unlock_sched();
    wait_turn();
}

void reschedule(const char *point) {
    reschedule_as(point, 0);
}

/* Blocks on key until woken or until the deadline (virtual ns, 0: none). Returns 1 when
 * the deadline ended it. */
int block_on(uintptr_t key, uint64_t deadline, const char *where) {
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
int block_on_obj(const void *obj, uint64_t deadline, const char *where) {
    return block_on((uintptr_t)obj, deadline, where);
}

/* An uncontrolled blocking call: the token is let go around it. */
void external_begin(const char *what) {
    lock_sched();
    token_back();
    note_uncontrolled(what);
    G->t[self].state = T_EXTERNAL;
    set_point(&G->t[self], what);
    CHAOS_STORE_RELAXED(&G->t[self].go, 0);
    hand_to(pick(0));
    unlock_sched();
}
void external_end(void) {
    lock_sched();
    G->t[self].state = T_RUN;
    if (G->running < 0) { /* nobody was running: take the token back */
        G->running = self;
        CHAOS_STORE_RELAXED(&G->t[self].go, 1);
    }
    unlock_sched();
    wait_turn();
}

/* A slot for a new thread or process (runnable, its PCT priority drawn now). Called with
 * the lock; -1 when the table is full. */
int new_slot(pid_t pid, pid_t ppid, const char *point) {
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
static int set_up(const char *spec, unsigned procs, int declared, long arrival) {
    if (configure(spec) != 0)
        return -1;
    G->arrival_ms = (uint64_t)arrival;
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
    long arrival = env_long("VDICHAOS_SCHED_ARRIVAL_MS", ARRIVAL_MS, 1, ARRIVAL_MS_MAX);
    if (procs < 0 || slot == -1) {
        fprintf(stderr, "vdi-sched: VDICHAOS_SCHED_PROCS or _SLOT is not a small number; "
                        "running uncontrolled\n");
        return -1;
    }
    if (arrival < 0) {
        fprintf(stderr,
                "vdi-sched: VDICHAOS_SCHED_ARRIVAL_MS is not 1..%d (ms); running "
                "uncontrolled\n",
                (int)ARRIVAL_MS_MAX);
        return -1;
    }
    uint32_t fresh = 0;
    /* pairs with the loads of init by the processes that lose the race */
    if (CHAOS_CAS_ACQ_REL(&G->init, &fresh, 1)) {
        int ok = set_up(spec, (unsigned)procs, P.declared, arrival) == 0;
        CHAOS_STORE_RELEASE(&G->init, ok ? 2 : 3); /* pairs with the loads of init below */
        if (!ok)
            goto bad_spec;
        if (slot == -2)
            slot = 0;
    } else {
        /* pairs with the first process's store of init */
        for (uint64_t until = real_ms() + (uint64_t)arrival; CHAOS_LOAD_ACQUIRE(&G->init) == 1;)
            if (real_ms() > until)
                break;
            else
                real_syscall(SYS_sched_yield);
        if (CHAOS_LOAD_ACQUIRE(&G->init) != 2) /* pairs with the first process's store of init */
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
