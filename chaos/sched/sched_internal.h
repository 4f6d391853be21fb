/* sched_internal.h: what the files of libvdichaos_sched.so share: the session's shared
 * state (struct session, struct thread), this process's own part, the C library's functions
 * it calls on to, and the scheduler's internal functions. Nothing here is exported: the
 * library is built with -fvisibility=hidden, and only the EXPORT functions are seen. */
#ifndef VDICHAOS_SCHED_INTERNAL_H
#define VDICHAOS_SCHED_INTERNAL_H

#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chaos/atomics.h"

/* The declarations are hidden too, as the definitions are: the files reach each other's
 * functions and data directly, not through the dynamic linker. */
#pragma GCC visibility push(hidden)

/* What the program sees: the calls it makes that land here. */
#define EXPORT __attribute__((visibility("default")))

enum { MAX_THREADS = 256, MAX_DECISIONS = 1 << 20, MAX_UNCONTROLLED = 16, PCT_MAX_DEPTH = 8 };
enum { POINT_LEN = 48, NAME_LEN = 16 };
enum { HANG_EXIT = 86 }; /* the process's status when every thread is blocked for good */
/* Real time (ms): how often a thread waiting for its turn looks whether the token's holder
 * is still there, and by default how long a process announced to the session may take to
 * arrive, or to end once it has left (VDICHAOS_SCHED_ARRIVAL_MS sets it per session). */
enum { WATCH_MS = 100, ARRIVAL_MS = 10000, ARRIVAL_MS_MAX = 3600000 };
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
    uint64_t arrival_ms; /* VDICHAOS_SCHED_ARRIVAL_MS, or ARRIVAL_MS */
    struct thread t[MAX_THREADS];
    uint16_t decisions[MAX_DECISIONS]; /* what the strategy chose where it had a choice */
    uint16_t replay[MAX_DECISIONS];
};

extern struct session *G; /* mapped by map_session */

/* This process's own part. */
struct process {
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
};
extern struct process P;

extern __thread int self; /* this thread's slot; -1: not controlled */

/* The C library's functions, looked up once (lookup_all). */
extern int (*real_create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
extern int (*real_join)(pthread_t, void **);
extern void (*real_exit)(void *) __attribute__((noreturn));
extern int (*real_mtrylock)(pthread_mutex_t *);
extern int (*real_munlock)(pthread_mutex_t *);
extern int (*real_mlock)(pthread_mutex_t *);
extern int (*real_mtimedlock)(pthread_mutex_t *, const struct timespec *);
extern int (*real_rdtry)(pthread_rwlock_t *);
extern int (*real_wrtry)(pthread_rwlock_t *);
extern int (*real_rwunlock)(pthread_rwlock_t *);
extern int (*real_rdlock)(pthread_rwlock_t *);
extern int (*real_wrlock)(pthread_rwlock_t *);
extern int (*real_semtry)(sem_t *);
extern int (*real_sempost)(sem_t *);
extern int (*real_semwait)(sem_t *);
extern int (*real_semtimedwait)(sem_t *, const struct timespec *);
extern int (*real_cwait)(pthread_cond_t *, pthread_mutex_t *);
extern int (*real_ctimedwait)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *);
extern int (*real_cclockwait)(pthread_cond_t *, pthread_mutex_t *, clockid_t,
                              const struct timespec *);
extern int (*real_csignal)(pthread_cond_t *);
extern int (*real_cbroadcast)(pthread_cond_t *);
extern int (*real_nanosleep)(const struct timespec *, struct timespec *);
extern int (*real_clock_nanosleep)(clockid_t, int, const struct timespec *, struct timespec *);
extern int (*real_clock_gettime)(clockid_t, struct timespec *);
extern int (*real_poll)(struct pollfd *, nfds_t, int);
extern int (*real_sigsuspend)(const sigset_t *);
extern int (*real_pause)(void);
extern int (*real_sigwaitinfo)(const sigset_t *, siginfo_t *);
extern int (*real_sigwait)(const sigset_t *, int *);
extern int (*real_sigtimedwait)(const sigset_t *, siginfo_t *, const struct timespec *);
extern int (*real_select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
extern int (*real_pselect)(int, fd_set *, fd_set *, fd_set *, const struct timespec *,
                           const sigset_t *);
extern int (*real_ppoll)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
extern int (*real_epoll_wait)(int, struct epoll_event *, int, int);
extern int (*real_epoll_pwait)(int, struct epoll_event *, int, int, const sigset_t *);
extern pid_t (*real_wait4)(pid_t, int *, int, struct rusage *);
extern int (*real_waitid)(idtype_t, id_t, siginfo_t *, int);
extern pid_t (*real_fork)(void);
extern int (*real_execve)(const char *, char *const[], char *const[]);
extern int (*real_execvpe)(const char *, char *const[], char *const[]);
extern int (*real_spawn)(pid_t *, const char *, const posix_spawn_file_actions_t *,
                         const posix_spawnattr_t *, char *const[], char *const[]);
extern int (*real_spawnp)(pid_t *, const char *, const posix_spawn_file_actions_t *,
                          const posix_spawnattr_t *, char *const[], char *const[]);
extern int (*real_usleep)(useconds_t);
extern long (*real_syscall)(long, ...);
extern int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);
extern unsigned (*real_sleep)(unsigned);

/* sched_core.c: looking the C library up, and the scheduler itself. Functions "called with
 * the lock" expect lock_sched's. */
void lookup_all(void);
int ready(void);
void lock_sched(void);
void unlock_sched(void);
uint64_t real_ms(void);
void set_point(struct thread *t, const char *point);
uint64_t proc_start(pid_t pid);
void wake_key(const void *key, int n);
int pick(int yielding); /* called with the lock */
void hand_to(int to);   /* called with the lock */
void token_back(void);  /* called with the lock */
void wait_turn(void);
void reschedule_as(const char *point, int yielding);
void reschedule(const char *point);
int block_on(uintptr_t key, uint64_t deadline, const char *where);
int block_on_obj(const void *obj, uint64_t deadline, const char *where);
void external_begin(const char *what);
void external_end(void);
int new_slot(pid_t pid, pid_t ppid, const char *point); /* called with the lock */

/* sched_time.c: virtual time. */
uint64_t ts_ns(const struct timespec *ts);
uint64_t abs_deadline(clockid_t clk, const struct timespec *abs);

/* sched_proc.c: a process taking its place in the session. */
void identify(void);
void take_slot(int slot);

#pragma GCC visibility pop

#endif
