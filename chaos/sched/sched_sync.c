/* sched_sync.c: the synchronisation of the program's threads as schedule points: thread
 * create, join and exit, mutexes, rwlocks and semaphores (tried in the C library, blocked
 * here), condition variables (entirely ours), and the futex calls a program makes through
 * syscall(). */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/syscall.h>

#include "sched_internal.h"

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
    if (CHAOS_LOAD_SEQ(word) != (uint32_t)a[2]) {
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
