/* sched_time.c: virtual time for the program under the scheduler (the clocks, the sleeps,
 * sched_yield), and the calls that wait for what the scheduler cannot see the end of (poll,
 * select, epoll and the waits for a signal), run with the token let go unless they cannot
 * block. */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>

#include "sched_internal.h"

/* ---- virtual time ---- */

uint64_t ts_ns(const struct timespec *ts) {
    return (uint64_t)ts->tv_sec * 1000000000u + (uint64_t)ts->tv_nsec;
}
static void ns_ts(uint64_t ns, struct timespec *ts) {
    ts->tv_sec = (time_t)(ns / 1000000000u);
    ts->tv_nsec = (long)(ns % 1000000000u);
}

/* An absolute time of the given clock as a virtual deadline (at least now + 1 ns). */
uint64_t abs_deadline(clockid_t clk, const struct timespec *abs) {
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
    CHAOS_ADD_RELAXED(&G->vnow, 1000);
    ns_ts(ts_ns(base) + CHAOS_LOAD_RELAXED(&G->vnow), ts);
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
