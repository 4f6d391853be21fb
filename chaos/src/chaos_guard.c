/* chaos_guard.c: the unmap guard. ASan does not track munmap, and a real munmap lets the
 * address be reused, so a late touch of an unmapped view may silently succeed. Instead
 * the view is replaced by a PROT_NONE reservation and poisoned, kept in a quarantine, and
 * a SIGSEGV inside it is reported as use-after-unmap with the stack that unmapped it. */
#include <execinfo.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "chaos/chaos.h"
#include "chaos/sanitizer.h"
#include "chaos_internal.h"

/* Poisoning costs shadow memory in proportion to the length, and a view reserves 1 GiB of
 * address space of which tests map a few MiB: the first POISON_MAX bytes are poisoned (the
 * control block and the start of the area), the rest relies on PROT_NONE alone. */
#define POISON_MAX ((size_t)16 << 20)

#define QUARANTINE 64
#define FRAMES 24

typedef struct view {
    uintptr_t start;
    size_t len;
    size_t used; /* the poisoned prefix */
    void *frames[FRAMES];
    int nframes;
    int reservation; /* the whole of a mapping, PROT_NONE (a spare when it leaves) */
} view;

/* Written only by the thread that runs the engine; read by the signal handler, which
 * runs on that thread when it touches a quarantined view. */
static view quarantine[QUARANTINE];
static int qhead, qn;
static int installed;
static struct sigaction previous;
static uint8_t altstack[1 << 16];

static pthread_mutex_t guard_mu = PTHREAD_MUTEX_INITIALIZER;

static void report(const view *v, uintptr_t addr) {
    char line[256];
    int n =
        snprintf(line, sizeof line,
                 "==chaos== use-after-unmap: touch of %#lx inside the unmapped view "
                 "[%#lx, %#lx)\n==chaos== the view was unmapped here:\n",
                 (unsigned long)addr, (unsigned long)v->start, (unsigned long)(v->start + v->len));
    if (n > 0)
        (void)!write(2, line, (size_t)n);
    backtrace_symbols_fd(v->frames, v->nframes, 2);
}

static const view *find(uintptr_t addr) {
    for (int i = 0; i < qn; i++) {
        const view *v = &quarantine[(qhead + i) % QUARANTINE];
        if (addr >= v->start && addr < v->start + v->len)
            return v;
    }
    return NULL;
}

static void on_segv(int sig, siginfo_t *si, void *uc) {
    uintptr_t addr = (uintptr_t)si->si_addr;
    const view *v = find(addr);
    if (v) {
        report(v, addr);
        chaos_dying();
        signal(SIGABRT, SIG_DFL);
        abort();
    }
    /* Not ours: hand it to whoever was there before (ASan's handler, which reports and
     * calls back, or the default: then the engine says which run dies first). */
    if (!(previous.sa_flags & SA_SIGINFO) &&
        (previous.sa_handler == SIG_DFL || previous.sa_handler == SIG_IGN))
        chaos_dying();
    if (previous.sa_flags & SA_SIGINFO) {
        previous.sa_sigaction(sig, si, uc);
    } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
        previous.sa_handler(sig);
    } else {
        signal(sig, SIG_DFL);
        raise(sig);
    }
}

#ifdef CHAOS_ASAN
/* ASan sees an instrumented touch first (use-after-poison): name it and add the stack
 * that unmapped the view. */
static void on_asan_report(const char *text) {
    (void)text;
    const view *v = find((uintptr_t)__asan_get_report_address());
    if (v)
        report(v, (uintptr_t)__asan_get_report_address());
}
#endif

void chaos_guard_install(void) {
    if (installed)
        return;
#ifdef CHAOS_ASAN
    __asan_set_error_report_callback(on_asan_report);
#endif
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
    sigaltstack(&ss, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &previous);
    installed = 1;
}

#ifdef CHAOS_ASAN
static size_t poisoned(size_t len) {
    return len < POISON_MAX ? len : POISON_MAX;
}
#endif

/* A view that leaves the quarantine is, like every quarantined one, a PROT_NONE anonymous
 * reservation with no pages: what the reference asks for when it reserves a view's range.
 * A few are kept (unpoisoned) and handed out for the next reservation of the same length,
 * which saves a 1 GiB mmap and munmap per view. The address would be reused after a real
 * munmap just the same (the kernel picks the hole it left); the quarantine's depth, which
 * is what catches a late touch, does not change. */
#define SPARES 4
static struct {
    uintptr_t start;
    size_t len;
} spare[SPARES];
static int nspare;

static void release(view *v) {
#ifdef CHAOS_ASAN
    __asan_unpoison_memory_region((void *)v->start, poisoned(v->used));
#endif
    if (v->reservation && nspare < SPARES) {
        spare[nspare].start = v->start;
        spare[nspare++].len = v->len;
        return;
    }
    munmap((void *)v->start, v->len);
}

void *chaos_guard_reserve(size_t len) {
    void *p = NULL;
    pthread_mutex_lock(&guard_mu);
    for (int i = 0; i < nspare; i++) {
        if (spare[i].len == len) {
            p = (void *)spare[i].start;
            spare[i] = spare[--nspare];
            break;
        }
    }
    pthread_mutex_unlock(&guard_mu);
    return p;
}

int chaos_guard_unmap(void *addr, size_t len) {
    return chaos_guard_unmap_used(addr, len, len);
}

static int unmap_view(void *addr, size_t len, size_t used, int reservation);

int chaos_guard_unmap_used(void *addr, size_t len, size_t used) {
    return unmap_view(addr, len, used, 0);
}

int chaos_guard_unmap_reservation(void *addr, size_t len, size_t used) {
    return unmap_view(addr, len, used, 1);
}

static int unmap_view(void *addr, size_t len, size_t used, int reservation) {
    /* The range stays reserved: a fixed PROT_NONE anonymous mapping replaces the view. */
    void *p =
        mmap(addr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return munmap(addr, len);
#ifdef CHAOS_ASAN
    __asan_poison_memory_region(addr, poisoned(used < len ? used : len));
#endif
    /* Two actors may unmap at once (real threads in free-running mode): the quarantine is
     * the guard's, under its own lock (the SIGSEGV handler only reads it). */
    pthread_mutex_lock(&guard_mu);
    if (qn == QUARANTINE) { /* the oldest view leaves the quarantine for real */
        release(&quarantine[qhead]);
        qhead = (qhead + 1) % QUARANTINE;
        qn--;
    }
    view *v = &quarantine[(qhead + qn) % QUARANTINE];
    v->start = (uintptr_t)addr;
    v->len = len;
    v->used = used < len ? used : len;
    v->reservation = reservation;
    v->nframes = backtrace(v->frames, FRAMES);
    qn++;
    pthread_mutex_unlock(&guard_mu);
    return 0;
}

void chaos_guard_release_all(void) {
    pthread_mutex_lock(&guard_mu);
    while (qn) {
        release(&quarantine[qhead]);
        qhead = (qhead + 1) % QUARANTINE;
        qn--;
    }
    while (nspare) {
        nspare--;
        munmap((void *)spare[nspare].start, spare[nspare].len);
    }
    pthread_mutex_unlock(&guard_mu);
}

size_t chaos_guard_quarantined(void) {
    pthread_mutex_lock(&guard_mu);
    size_t n = (size_t)qn;
    pthread_mutex_unlock(&guard_mu);
    return n;
}
