/* sqlvdi_audit.cpp: libsqlvdi's audit mode (sqlvdi_audit.h says what it judges). */
#include "sqlvdi_audit.h"

#include "vdi/vdi_seams.h"

#include <cerrno>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <dlfcn.h>
#include <execinfo.h>
#include <linux/futex.h>
#include <fcntl.h>
#include <atomic>
#include <mutex>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#pragma GCC visibility push(hidden)
namespace sqlvdi_audit {

bool on;

namespace {

int out_fd = -1;
std::mutex &mu() {
    static std::mutex *m = new std::mutex; /* never freed: used from atexit */
    return *m;
}
set_state *live; /* created sets, under mu() */

void put(const char *s, size_t n) {
    while (n > 0) {
        ssize_t w = write(out_fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        s += w;
        n -= static_cast<size_t>(w);
    }
}

void put(const char *s) {
    put(s, strlen(s));
}

/* The stack, one frame a line ("    #N ..."), without this file's own frames. */
void put_stack(void *const *frames, int n, int skip) {
    for (int i = skip; i < n; i++) {
        char line[48];
        snprintf(line, sizeof line, "    #%d ", i - skip);
        put(line);
        char **sym = backtrace_symbols(&frames[i], 1); /* not in the signal handler */
        put(sym ? sym[0] : "?");
        free(sym);
        put("\n");
    }
}

/* Async-signal-safe: the symbols straight to the descriptor. */
void put_stack_raw(void *const *frames, int n, int skip) {
    for (int i = skip; i < n; i++) {
        char line[48];
        snprintf(line, sizeof line, "    #%d ", i - skip);
        put(line);
        backtrace_symbols_fd(&frames[i], 1, out_fd);
    }
}

/* ---- the unmap guard: views a Close unmapped stay reserved, inaccessible ---------------- */

constexpr int max_views = 1024;
constexpr int max_frames = 32;
struct view {
    uintptr_t start;
    size_t len;
    int nframes;
    void *frames[max_frames]; /* the stack that unmapped it */
};
view views[max_views]; /* appended under mu(), read by the signal handler */
volatile sig_atomic_t nviews;
struct sigaction previous_segv, previous_bus;

void *guard_map(void *, void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    return mmap(addr, len, prot, flags, fd, off);
}

int guard_unmap(void *, void *addr, size_t len) {
    /* Replaced, not removed: a late touch faults here instead of hitting whatever the
     * address is reused for. */
    void *r =
        mmap(addr, len, PROT_NONE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r == MAP_FAILED)
        return munmap(addr, len);
    std::lock_guard<std::mutex> lk(mu());
    if (nviews < max_views) {
        view *v = &views[nviews];
        v->start = reinterpret_cast<uintptr_t>(addr);
        v->len = len;
        v->nframes = backtrace(v->frames, max_frames);
        nviews = nviews + 1;
    }
    return 0;
}

void on_fault(int sig, siginfo_t *si, void *uc) {
    uintptr_t a = reinterpret_cast<uintptr_t>(si->si_addr);
    for (int i = 0; i < nviews; i++) {
        const view *v = &views[i];
        if (a < v->start || a - v->start >= v->len)
            continue;
        char line[200];
        snprintf(line, sizeof line,
                 "vdi-audit use-after-close: the client touched %p, %zu bytes into a view "
                 "its set's Close unmapped\n",
                 si->si_addr, static_cast<size_t>(a - v->start));
        put(line);
        void *frames[max_frames];
        int n = backtrace(frames, max_frames);
        put_stack_raw(frames, n, 2);
        put("  the Close that unmapped it:\n");
        put_stack_raw(v->frames, v->nframes, 2);
        /* The default action: the process dies of this signal, as it would have. */
        signal(sig, SIG_DFL);
        return;
    }
    const struct sigaction *p = sig == SIGSEGV ? &previous_segv : &previous_bus;
    if (p->sa_flags & SA_SIGINFO) {
        p->sa_sigaction(sig, si, uc);
    } else if (p->sa_handler == SIG_DFL || p->sa_handler == SIG_IGN) {
        signal(sig, SIG_DFL);
    } else {
        p->sa_handler(sig);
    }
}

/* ---- shaking: seeded yields and delays of the client's threads at every schedule point -- */

uint64_t shake_seed;                 /* VDI_AUDIT_SHAKE=SEED[:MAX_US]; 0: off */
uint32_t shake_max_us;               /* the longest delay */
std::atomic<uint64_t> shake_threads; /* threads seen so far: each its own stream */
std::atomic<uint64_t> shake_points, shake_yields, shake_sleeps; /* for the exit line */
thread_local uint64_t shake_state;
thread_local bool shake_started;

uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* A quarter of the points yield, an eighth sleep up to shake_max_us; the decisions of a
 * thread are its seed's (SEED and the order the thread first reached a point). */
void shake_point(void *, const char *) {
    if (!shake_started) {
        shake_started = true;
        shake_state = shake_seed ^ (shake_threads.fetch_add(1) + 1) * 0xd1b54a32d192ed03u;
    }
    uint64_t r = splitmix(&shake_state);
    unsigned pick = static_cast<unsigned>(r & 15u);
    shake_points.fetch_add(1, std::memory_order_relaxed);
    if (pick < 4) {
        shake_yields.fetch_add(1, std::memory_order_relaxed);
        sched_yield();
    } else if (pick < 6) {
        shake_sleeps.fetch_add(1, std::memory_order_relaxed);
        uint64_t us = (r >> 8) % (static_cast<uint64_t>(shake_max_us) + 1);
        timespec ts = {static_cast<time_t>(us / 1000000u), static_cast<long>(us % 1000000u) * 1000};
        nanosleep(&ts, nullptr); /* an interrupted delay is a shorter one */
    }
}

/* "SEED" or "SEED:MAX_US" (SEED 1..2^64-1, MAX_US 1..1000000, default 1000): 0, else -1. */
int parse_shake(const char *v) {
    char *end;
    errno = 0;
    if (!v || *v < '0' || *v > '9')
        return -1;
    unsigned long long seed = strtoull(v, &end, 10);
    unsigned long long max = 1000;
    if (errno || seed == 0)
        return -1;
    if (*end == ':') {
        const char *m = end + 1;
        if (*m < '0' || *m > '9')
            return -1;
        max = strtoull(m, &end, 10);
        if (errno || max == 0 || max > 1000000)
            return -1;
    }
    if (*end)
        return -1;
    shake_seed = seed;
    shake_max_us = static_cast<uint32_t>(max);
    return 0;
}

uint64_t now_ms() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000u + static_cast<uint64_t>(ts.tv_nsec) / 1000000u;
}

void at_exit() {
    std::lock_guard<std::mutex> lk(mu());
    if (shake_seed) { /* not a finding: "vdi-shake", not "vdi-audit" */
        char line[200];
        snprintf(line, sizeof line,
                 "vdi-shake %llu:%u: %llu points, %llu yields, %llu sleeps, %llu threads\n",
                 static_cast<unsigned long long>(shake_seed), shake_max_us,
                 static_cast<unsigned long long>(shake_points.load()),
                 static_cast<unsigned long long>(shake_yields.load()),
                 static_cast<unsigned long long>(shake_sleeps.load()),
                 static_cast<unsigned long long>(shake_threads.load()));
        put(line);
    }
    for (set_state *s = live; s; s = s->next_live)
        if (s->created && !s->closed) {
            char line[VDI_MAX_NAME + 160];
            snprintf(line, sizeof line,
                     "vdi-audit protocol never-closed: the process ends with set '%s' created "
                     "and never closed; its Create:\n",
                     s->name);
            put(line);
            put_stack(s->created_at, s->ncreated_at, 2);
        }
}

/* ---- under vdichaos's controlled scheduler (libvdichaos_sched.so, preloaded) ---------
 * Every schedule point of the library is one of the scheduler's. A wait on a shared word is
 * the futex system call made through syscall(), which the scheduler takes: in a session
 * (the server's process under the same scheduler) the wait is its own, and outside one it
 * lets the token go around it, since the server's process ends it. Found by name, so the
 * library needs nothing of the scheduler's. */

void (*sched_point_fn)(const char *);

void sched_point(void *, const char *name) {
    sched_point_fn(name);
}

int sched_wait(void *, uint32_t *word, uint32_t expected, long timeout_ms, vdi_wait_kind) {
    struct timespec ts, *tp = nullptr;
    if (timeout_ms >= 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (timeout_ms % 1000) * 1000000L;
        tp = &ts;
    }
    long rc = syscall(SYS_futex, word, FUTEX_WAIT, expected, tp, nullptr, 0);
    return rc == -1 && errno == ETIMEDOUT ? ETIMEDOUT : 0;
}

template <typename F>
bool find(F *&f, const char *name) {
    void *sym = dlsym(RTLD_DEFAULT, name);
    memcpy(&f, &sym, sizeof sym);
    return f != nullptr;
}

bool find_sched() {
    int (*active)() = nullptr;
    return find(active, "vdichaos_sched_active") && active() &&
           find(sched_point_fn, "vdichaos_sched_point");
}

const vdi_seams guard_seams = {
    nullptr,     nullptr, nullptr, nullptr, nullptr, nullptr, guard_map,
    guard_unmap, nullptr, nullptr, nullptr, nullptr, nullptr,
};

} // namespace

void init() {
    static std::once_flag once;
    std::call_once(once, [] {
        const char *file = getenv("VDI_AUDIT_FILE");
        const char *flag = getenv("VDI_AUDIT");
        if (file && *file)
            out_fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        else if (flag && strcmp(flag, "1") == 0)
            out_fd = 2;
        if (out_fd < 0)
            return;
        void *warm[1];
        (void)backtrace(warm, 1); /* loads the unwinder now, not inside the handler */
        vdi_seams seams = guard_seams;
        const char *shake = getenv("VDI_AUDIT_SHAKE");
        if (shake && *shake && parse_shake(shake) != 0) {
            char line[160];
            snprintf(line, sizeof line,
                     "vdi-audit usage shake: VDI_AUDIT_SHAKE='%.40s' is not SEED[:MAX_US] "
                     "(SEED 1.., MAX_US 1..1000000)\n",
                     shake);
            put(line);
        }
        if (shake_seed)
            seams.sched_point = shake_point;
        if (find_sched()) { /* the scheduler decides; shaking has nothing left to shake */
            seams.sched_point = sched_point;
            seams.wait = sched_wait;
        }
        vdi_seams_install(&seams);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_fault;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, &previous_segv);
        sigaction(SIGBUS, &sa, &previous_bus);
        atexit(at_exit);
        on = true;
    });
}

void report(const char *rule, const char *fmt, ...) {
    char line[512];
    int k = snprintf(line, sizeof line, "vdi-audit protocol %s: ", rule);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + k, sizeof line - static_cast<size_t>(k), fmt, ap);
    va_end(ap);
    void *frames[max_frames];
    int n = backtrace(frames, max_frames);
    std::lock_guard<std::mutex> lk(mu());
    put(line);
    put("\n");
    put_stack(frames, n, 2); /* without report() and the hook that called it */
}

void set_created(set_state *st, const char *name) {
    int n = backtrace(st->created_at, 16);
    std::lock_guard<std::mutex> lk(mu());
    st->ncreated_at = n;
    snprintf(st->name, sizeof st->name, "%s", name ? name : "");
    if (!st->created) {
        st->next_live = live;
        live = st;
    }
    st->created = true;
    st->closed = st->aborted = st->reported_busy = false;
}

void set_closed(set_state *st) {
    std::lock_guard<std::mutex> lk(mu());
    st->closed = true;
}

void set_deleted(set_state *st) {
    std::lock_guard<std::mutex> lk(mu());
    for (set_state **p = &live; *p; p = &(*p)->next_live)
        if (*p == st) {
            *p = st->next_live;
            break;
        }
}

void answered(set_state *st, int rc, bool zero_timeout) {
    if (rc != VD_E_ABORT && !(rc == VD_E_TIMEOUT && zero_timeout))
        return;
    bool busy = false;
    {
        std::lock_guard<std::mutex> lk(mu());
        if (rc == VD_E_ABORT)
            st->aborted = true;
        uint64_t t = now_ms();
        if (t - st->window_ms >= 1000) {
            st->window_ms = t;
            st->window_count = 0;
        }
        busy = ++st->window_count > 1000 && !st->reported_busy;
        st->reported_busy |= busy;
    }
    if (busy)
        report("busy-loop",
               "set '%s': more than 1000 calls answered %s within one second: the client "
               "retries without waiting",
               st->name, rc == VD_E_ABORT ? "VD_E_ABORT" : "VD_E_TIMEOUT to a zero timeout");
}

void delivered(device_state *d, VDC_Command *cmd) {
    std::lock_guard<std::mutex> lk(mu());
    if (d->nheld < VDI_MAX_OUTSTANDING)
        d->held[d->nheld++] = cmd;
}

unsigned get_begin(device_state *d) {
    std::lock_guard<std::mutex> lk(mu());
    return d->getting++;
}

void get_end(device_state *d) {
    std::lock_guard<std::mutex> lk(mu());
    d->getting--;
}

bool take(device_state *d, VDC_Command *cmd) {
    std::lock_guard<std::mutex> lk(mu());
    for (unsigned i = 0; i < d->nheld; i++)
        if (d->held[i] == cmd) {
            d->held[i] = d->held[--d->nheld];
            return true;
        }
    return false;
}

} // namespace sqlvdi_audit
#pragma GCC visibility pop
