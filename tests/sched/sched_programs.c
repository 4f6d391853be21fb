/* sched_programs.c: small multi-threaded programs for the controlled scheduler's tests
 * (libvdichaos_sched.so). Each racy one has a bug that needs one interleaving; under the
 * operating system's scheduling it almost never shows. Built once per program:
 *
 *   SCHED_LOST_UPDATE  two threads add to one counter as load, a locked statistic, store:
 *                      a preemption inside the window loses an update (exit 1)
 *   SCHED_LOST_WAKEUP  a worker sets its done flag without the mutex, then signals; the
 *                      main thread's check-then-wait can miss it and wait forever (a hang)
 *   SCHED_LATE_FINISH  a worker finishes its item after the main thread declared the
 *                      work closed on a timeout-free hand-off (exit 1)
 *   SCHED_CORRECT      the same shapes done right, with timed waits and sleeps whose
 *                      virtual time must pass, and a SIGTERM handler that never runs
 *                      (exit 0; 1 when a timeout misbehaves)
 *   SCHED_UNCONTROLLED a signal delivered to a handler and a raw futex wait: what the
 *                      scheduler cannot control, and must say so (exit 0)
 *
 * usage: sched-NAME  (prints one line saying what happened) */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t m __attribute__((unused)) = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv __attribute__((unused)) = PTHREAD_COND_INITIALIZER;

#if defined(SCHED_LOST_UPDATE)
enum { THREADS = 2, ADDS = 3 };
static atomic_ulong total;
static unsigned long writes;

static void *adder(void *arg) {
    (void)arg;
    for (int i = 0; i < ADDS; i++) {
        unsigned long v = atomic_load_explicit(&total, memory_order_relaxed);
        pthread_mutex_lock(&m);
        writes++;
        pthread_mutex_unlock(&m);
        atomic_store_explicit(&total, v + 1, memory_order_relaxed);
    }
    return NULL;
}

int main(void) {
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, adder, NULL) != 0)
            return 2;
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    unsigned long got = atomic_load(&total);
    printf("total %lu of %d\n", got, THREADS * ADDS);
    return got == THREADS * ADDS ? 0 : 1;
}

#elif defined(SCHED_LOST_WAKEUP)
static atomic_bool done;

static void *worker(void *arg) {
    (void)arg;
    pthread_mutex_lock(&m); /* some bookkeeping of its own */
    pthread_mutex_unlock(&m);
    atomic_store(&done, 1); /* the bug: not under m */
    pthread_cond_signal(&cv);
    return NULL;
}

int main(void) {
    pthread_t t;
    if (pthread_create(&t, NULL, worker, NULL) != 0)
        return 2;
    pthread_mutex_lock(&m);
    while (!atomic_load(&done))
        pthread_cond_wait(&cv, &m);
    pthread_mutex_unlock(&m);
    pthread_join(t, NULL);
    printf("woken\n");
    return 0;
}

#elif defined(SCHED_LATE_FINISH)
enum { WORKERS = 2 };
static atomic_bool closed;
static atomic_int late;
static int failed;

static void *worker(void *arg) {
    long id = (long)arg;
    if (id == 0) { /* the failing one: reports, and the main thread closes at once */
        pthread_mutex_lock(&m);
        failed = 1;
        pthread_cond_signal(&cv);
        pthread_mutex_unlock(&m);
        return NULL;
    }
    pthread_mutex_lock(&m); /* the item in hand: a progress update, then its completion */
    pthread_mutex_unlock(&m);
    if (atomic_load(&closed))
        atomic_store(&late, 1);
    return NULL;
}

int main(void) {
    pthread_t t[WORKERS];
    for (long i = 0; i < WORKERS; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)i) != 0)
            return 2;
    pthread_mutex_lock(&m);
    while (!failed)
        pthread_cond_wait(&cv, &m);
    pthread_mutex_unlock(&m);
    atomic_store(&closed, 1); /* the bug: closed before the workers are joined */
    for (int i = 0; i < WORKERS; i++)
        pthread_join(t[i], NULL);
    printf("%s\n", atomic_load(&late) ? "finished after close" : "finished before close");
    return atomic_load(&late) ? 1 : 0;
}

#elif defined(SCHED_CORRECT)
static int ready;

static double mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *worker(void *arg) {
    (void)arg;
    struct timespec ten = {10, 0};
    nanosleep(&ten, &ten); /* ten seconds, virtual; rem is req, as in libstdc++'s sleep_for */
    pthread_mutex_lock(&m);
    ready = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&m);
    return NULL;
}

static void on_term(int sig) {
    (void)sig;
    _exit(3);
}

int main(void) {
    signal(SIGTERM, on_term); /* installed, never run: the run stays fully controlled */
    double t0 = mono();
    pthread_t t;
    if (pthread_create(&t, NULL, worker, NULL) != 0)
        return 2;
    /* A timed wait that must time out first (1 s), then a wait that the worker ends. */
    struct timespec abs;
    clock_gettime(CLOCK_REALTIME, &abs);
    abs.tv_sec += 1;
    pthread_mutex_lock(&m);
    int rc = ready ? 0 : pthread_cond_timedwait(&cv, &m, &abs);
    int timed_out = rc == ETIMEDOUT;
    /* The same on a condition of the monotonic clock: 2 s, then it times out. */
    pthread_condattr_t ca;
    pthread_cond_t mono_cv;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&mono_cv, &ca);
    double before = mono();
    clock_gettime(CLOCK_MONOTONIC, &abs);
    abs.tv_sec += 2;
    rc = pthread_cond_timedwait(&mono_cv, &m, &abs);
    double mono_waited = mono() - before;
    timed_out &= rc == ETIMEDOUT && mono_waited >= 2.0 && mono_waited < 3.0;
    pthread_cond_destroy(&mono_cv);
    pthread_condattr_destroy(&ca);
    while (!ready)
        pthread_cond_wait(&cv, &m);
    pthread_mutex_unlock(&m);
    pthread_join(t, NULL);
    usleep(1000);
    double waited = mono() - t0;
    printf("timed out %d, waited %.3f s\n", timed_out, waited);
    return timed_out && waited >= 10.0 ? 0 : 1;
}
#elif defined(SCHED_UNCONTROLLED)
static volatile sig_atomic_t got;

static void on_usr1(int sig) {
    got = sig;
}

int main(void) {
    signal(SIGUSR1, on_usr1); /* a handler: runs when the kernel says */
    raise(SIGUSR1);
    if (got != SIGUSR1)
        return 1;
    uint32_t word = 0; /* a raw futex wait of 1 ms that nobody ends */
    struct timespec ms = {0, 1000000};
    long r = syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, &ms, NULL, 0);
    printf("futex %ld\n", r);
    return r == -1 ? 0 : 1;
}
#else
#error                                                                                             \
    "one of SCHED_LOST_UPDATE, SCHED_LOST_WAKEUP, SCHED_LATE_FINISH, SCHED_CORRECT, SCHED_UNCONTROLLED"
#endif
