/* vdi_core.c: the machinery both sides stand on: the seam table and its
 * defaults (futex, monotonic clock, mmap, process liveness), the private lock,
 * error codes, and the shared memory object (naming, exclusive creation,
 * ownership checks, mapping, growth). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "vdi_internal.h"

vdi_seams vdi_hooks;
#ifdef VDI_TSAN
char vdi_tsan_alias[VDI_VIEW_ALIGN];
#endif

int vdi_access_points_on;

void vdi_seams_install(const vdi_seams *seams) {
    if (seams)
        vdi_hooks = *seams;
    else
        memset(&vdi_hooks, 0, sizeof vdi_hooks);
    vdi_access_points_on = vdi_hooks.access_point != NULL;
}

void vdi_access_point(const void *word) {
    if (vdi_hooks.access_point)
        vdi_hooks.access_point(vdi_hooks.ctx, word);
}

/* Weak: a program that links no object with points of one kind has an empty list. */
extern const char *const __start_vdi_sched_points[] __attribute__((weak));
extern const char *const __stop_vdi_sched_points[] __attribute__((weak));
extern const char *const __start_vdi_fail_points[] __attribute__((weak));
extern const char *const __stop_vdi_fail_points[] __attribute__((weak));

size_t vdi_seam_points(enum vdi_point_kind kind, const char *const **names) {
    const char *const *b =
        kind == VDI_POINT_FAIL ? __start_vdi_fail_points : __start_vdi_sched_points;
    const char *const *e =
        kind == VDI_POINT_FAIL ? __stop_vdi_fail_points : __stop_vdi_sched_points;
    if (names)
        *names = b;
    return (size_t)(e - b);
}

void vdi_sched(const char *name) {
    if (vdi_hooks.sched_point)
        vdi_hooks.sched_point(vdi_hooks.ctx, name);
}

int vdi_fail(const char *name) {
    if (!vdi_hooks.fail_point)
        return 0;
    /* EINTR and EAGAIN never surface (VDI-SPEC 8.12): the call is tried again, a bounded
     * number of times so that a plan failing forever still ends. */
    for (int tries = 0; tries < 64; tries++) {
        int err = vdi_hooks.fail_point(vdi_hooks.ctx, name);
        if (err != EINTR && err != EAGAIN)
            return err;
    }
    return EIO;
}

uint64_t vdi_now(void) {
    struct timespec ts;
    if (vdi_hooks.now_ms)
        return vdi_hooks.now_ms(vdi_hooks.ctx);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uintptr_t vdi_self(void) {
    if (vdi_hooks.self)
        return vdi_hooks.self(vdi_hooks.ctx);
    return (uintptr_t)pthread_self();
}

int vdi_wait(uint32_t *word, uint32_t expected, long timeout_ms, enum vdi_wait_kind kind) {
    struct timespec ts, *tp = NULL;
    if (vdi_hooks.wait)
        return vdi_hooks.wait(vdi_hooks.ctx, word, expected, timeout_ms, kind);
    if (timeout_ms >= 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (timeout_ms % 1000) * 1000000L;
        tp = &ts;
    }
    /* Not FUTEX_PRIVATE_FLAG: the word may be shared with another process, or
     * mapped twice by this one. EINTR, EAGAIN and spurious wake-ups all read as
     * "woken". */
    if (syscall(SYS_futex, word, FUTEX_WAIT, expected, tp, NULL, 0) == -1 && errno == ETIMEDOUT)
        return ETIMEDOUT;
    return 0;
}

void vdi_wake_all(uint32_t *word) {
    if (vdi_hooks.wake) {
        vdi_hooks.wake(vdi_hooks.ctx, word, INT32_MAX);
        return;
    }
    syscall(SYS_futex, word, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

void *vdi_map(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    if (vdi_hooks.map)
        return vdi_hooks.map(vdi_hooks.ctx, addr, len, prot, flags, fd, off);
    return mmap(addr, len, prot, flags, fd, off);
}

int vdi_unmap(void *addr, size_t len) {
    if (vdi_hooks.unmap)
        return vdi_hooks.unmap(vdi_hooks.ctx, addr, len);
    return munmap(addr, len);
}

int vdi_shm_open(const char *name, int oflag, mode_t mode) {
    if (vdi_hooks.shm_open)
        return vdi_hooks.shm_open(vdi_hooks.ctx, name, oflag, mode);
    return shm_open(name, oflag, mode);
}

int vdi_shm_unlink(const char *name) {
    if (vdi_hooks.shm_unlink)
        return vdi_hooks.shm_unlink(vdi_hooks.ctx, name);
    return shm_unlink(name);
}

/* Field 22 of /proc/<pid>/stat: the start time that tells a reused pid apart.
 */
static int proc_start_time(int32_t pid, uint64_t *out) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command name may contain spaces */
    if (!p)
        return -1;
    int field = 2;
    for (; *p && field < 22; p++)
        if (*p == ' ')
            field++;
    *out = strtoull(p, NULL, 10);
    return 0;
}

/* This process's start time, read once per process (a forked child has a pid, and a start
 * time, of its own): every create and open names its caller, and /proc costs three calls. */
static struct {
    uint32_t pid; /* 0: not known yet */
    uint64_t start_time;
} self_cache;

int vdi_self_id(vdi_peer_id *out) {
    memset(out, 0, sizeof *out);
    out->pid = (int32_t)getpid();
    if (vdi_load_private(&self_cache.pid) == (uint32_t)out->pid) {
        out->start_time = vdi_load64_relaxed(&self_cache.start_time);
        return NOERROR;
    }
    if (proc_start_time(out->pid, &out->start_time) != 0)
        return VD_E_UNEXPECTED;
    vdi_store64_relaxed(&self_cache.start_time, out->start_time);
    vdi_store_private(&self_cache.pid, (uint32_t)out->pid);
    return NOERROR;
}

int vdi_peer_alive(const vdi_peer_id *peer) {
    uint64_t st;
    if (vdi_hooks.peer_alive)
        return vdi_hooks.peer_alive(vdi_hooks.ctx, peer);
    if (peer->pid <= 0)
        return 0;
    if (kill(peer->pid, 0) != 0 && errno != EPERM)
        return 0;
    if (proc_start_time(peer->pid, &st) != 0)
        return 0;
    if (peer->start_time && st != peer->start_time) /* 0: known by its pid alone */
        return 0;
    /* A zombie has not been reaped yet but is dead for our purposes. */
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)peer->pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n > 0) {
            buf[n] = 0;
            char *p = strrchr(buf, ')');
            if (p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'))
                return 0;
        }
    }
    return 1;
}

void *vdi_alloc(const char *why, size_t size) {
    (void)why;
    return calloc(1, size);
}

void vdi_free(void *p) {
    free(p);
}

/* ---- errors
 * ----------------------------------------------------------------------------
 */

int vdi_errno_code(int err) {
    switch (err) {
    case ENOMEM:
    case ENOSPC:
    case EMFILE:
    case ENFILE:
        return VD_E_MEMORY;
    case EEXIST:
        return VD_E_BUSY;
    case EACCES:
    case EPERM:
        return VD_E_SECURITY;
    default:
        return VD_E_UNEXPECTED;
    }
}

const char *vdi_strerror(int code) {
    switch (code) {
    case NOERROR:
        return "NOERROR";
    case VD_E_NOTOPEN:
        return "VD_E_NOTOPEN";
    case VD_E_TIMEOUT:
        return "VD_E_TIMEOUT";
    case VD_E_ABORT:
        return "VD_E_ABORT";
    case VD_E_SECURITY:
        return "VD_E_SECURITY";
    case VD_E_INVALID:
        return "VD_E_INVALID";
    case VD_E_INSTANCE_NAME:
        return "VD_E_INSTANCE_NAME";
    case VD_E_NOTSUPPORTED:
        return "VD_E_NOTSUPPORTED";
    case VD_E_MEMORY:
        return "VD_E_MEMORY";
    case VD_E_UNEXPECTED:
        return "VD_E_UNEXPECTED";
    case VD_E_PROTOCOL:
        return "VD_E_PROTOCOL";
    case VD_E_OPEN:
        return "VD_E_OPEN";
    case VD_E_CLOSE:
        return "VD_E_CLOSE";
    case VD_E_BUSY:
        return "VD_E_BUSY";
    case VD_E_QUEUE_FULL:
        return "VD_E_QUEUE_FULL";
    case VD_E_IO_ERROR:
        return "VD_E_IO_ERROR";
    default:
        return "VD_E_UNKNOWN";
    }
}

/* ---- the private lock
 * ------------------------------------------------------------------- */

void vdi_lock(vdi_mutex *m) {
    /* Three states so that unlock wakes only when someone may wait (a classic
     * futex mutex); every block goes through the wait seam, so fibers can contend
     * too. */
    if (vdi_cas(&m->word, 0, 1))
        return;
    while (vdi_exchange(&m->word, 2) != 0)
        vdi_wait(&m->word, 2, -1, VDI_WAIT_PLAIN);
}

void vdi_unlock(vdi_mutex *m) {
    if (vdi_exchange(&m->word, 0) == 2)
        vdi_wake_all(&m->word);
}

/* ---- the gate
 * ------------------------------------------------------------------------------ */

int vdi_gate_enter(vdi_gate *g, uint32_t epoch) {
    vdi_lock(&g->mu);
    vdi_gate_step_in(g);
    return vdi_gate_overlapped(g, epoch);
}

int vdi_gate_overlapped(vdi_gate *g, uint32_t epoch) {
    /* pairs with the bumps of a close */
    return (epoch & 1) || epoch != vdi_load_acquire(&g->close_epoch); /* odd: a close ran */
}

int vdi_gate_leave(vdi_gate *g, int rc) {
    vdi_gate_step_out(g);
    vdi_gate_check(g);
    vdi_unlock(&g->mu);
    return rc;
}

/* Around a routine (the agent's, or a rejected send's), and for good when the agent turns
 * to its drain: a thread that does not count is not waited for by a close. */
void vdi_gate_step_out(vdi_gate *g) {
    vdi_gate_count_out(g);
    if (g->closing) /* a close waits for the threads inside to leave */
        vdi_gate_wake(g);
}

void vdi_gate_step_in(vdi_gate *g) {
    g->active++;
}

void vdi_gate_count_out(vdi_gate *g) {
    g->active--;
}

void vdi_gate_wake(vdi_gate *g) {
    vdi_fetch_add(&g->ev, 1);
    vdi_wake_all(&g->ev);
}

/* The word is read under the lock, so a wake that comes after the unlock changes it. */
void vdi_gate_wait(vdi_gate *g) {
    uint32_t seen = g->ev;
    vdi_unlock(&g->mu);
    vdi_wait(&g->ev, seen, -1, VDI_WAIT_PLAIN);
    vdi_lock(&g->mu);
}

/* A second close waiting for the first one's drain: not counted, so the first close does
 * not wait for it. Quiet: the first close waits for the agent, which wakes it. */
void vdi_gate_wait_outside(vdi_gate *g) {
    vdi_gate_count_out(g);
    vdi_gate_wait(g);
    vdi_gate_step_in(g);
}

void vdi_gate_begin_close(vdi_gate *g) {
    vdi_fetch_add(&g->close_epoch, 1); /* odd: a close runs */
}

void vdi_gate_mark_closing(vdi_gate *g) {
    g->closing = 1;
}

/* VDI-SPEC 5.0 (3): every other thread has left its call on this side. */
void vdi_gate_wait_alone(vdi_gate *g) {
    while (g->active > 1)
        vdi_gate_wait(g);
}

void vdi_gate_closed(vdi_gate *g) {
    g->closing = 0;
}

/* Last of all, after the unlock: a call that started before this point overlapped the
 * close (see vdi_gate_enter). */
void vdi_gate_end_close(vdi_gate *g) {
    vdi_gate_count_out(g);
    vdi_gate_check(g);
    vdi_unlock(&g->mu);
    vdi_fetch_add(&g->close_epoch, 1);
}

int vdi_gate_note(vdi_gate *g, int code, const char *file, int line, const char *why) {
    g->failed = (vdi_error_site){.file = file, .line = line, .code = code, .why = why};
    return code;
}

void vdi_gate_note_abort(vdi_gate *g, const char *file, int line, const char *why) {
    if (!g->aborted.file)
        g->aborted = (vdi_error_site){.file = file, .line = line, .code = VD_E_ABORT, .why = why};
}

void vdi_gate_clear_abort(vdi_gate *g) {
    memset(&g->aborted, 0, sizeof g->aborted);
}

static vdi_error_site site_named(vdi_error_site e) {
    const char *slash = e.file ? strrchr(e.file, '/') : NULL;
    if (slash)
        e.file = slash + 1; /* the file's name, not where it was built */
    return e;
}

/* A look from outside the calls (the seams' reads): the lock if it is free, never a wait
 * (a finding may stop a run with a thread inside a call, lock held), and no access point
 * (a harness may look from inside one). */
int vdi_gate_try_quiet(vdi_gate *g) {
    return vdi_trylock_quiet(&g->mu.word);
}

void vdi_gate_release_quiet(vdi_gate *g) {
    if (vdi_unlock_quiet(&g->mu.word) == 2)
        vdi_wake_all(&g->mu.word); /* a thread came to wait meanwhile */
}

int vdi_gate_sites(vdi_gate *g, vdi_error_site *failed, vdi_error_site *aborted) {
    if (!vdi_gate_try_quiet(g))
        return 1;
    if (failed)
        *failed = site_named(g->failed);
    if (aborted)
        *aborted = site_named(g->aborted);
    vdi_gate_release_quiet(g);
    return 0;
}

int vdi_wait_live(uint32_t *word, uint32_t seen, long timeout_ms, const vdi_peer_id *peer) {
    uint64_t start = vdi_now();
    for (;;) {
        long left = -1;
        if (timeout_ms >= 0) {
            uint64_t spent = vdi_now() - start;
            if (spent >= (uint64_t)timeout_ms)
                return VDI_TIMED_OUT;
            left = timeout_ms - (long)spent;
        }
        long slice = left;
        enum vdi_wait_kind kind = VDI_WAIT_PLAIN;
        if (peer && (left < 0 || left > 500)) {
            slice = 500;
            kind = VDI_WAIT_LIVENESS;
        }
        if (vdi_wait(word, seen, slice, kind) == 0)
            return VDI_WOKEN;
        if (peer && !vdi_peer_alive(peer))
            return VDI_PEER_DEAD;
        if (kind == VDI_WAIT_PLAIN)
            return VDI_TIMED_OUT;
    }
}

/* Did the server that claimed the set (server_attached == seen, odd) die inside its
 * open? Only if the claim is still there after its death was seen: a server that gave the
 * claim up did so before it could exit. */
int vdi_claimer_died(uint32_t *attached, uint32_t seen) {
    vdi_peer_id claimer = {.pid = VDI_CLAIMER(seen), .start_time = 0};
    if (claimer.pid <= 0 || vdi_peer_alive(&claimer))
        return 0;
    return vdi_load_acquire(attached) == seen; /* pairs with open's stores of server_attached */
}

/* ---- names
 * ---------------------------------------------------------------------------------
 */

static int name_ok(const char *s, size_t max) {
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (n >= max || c < 0x20 || c > 0x7e || c == '/' || c == '\\')
            return 0;
    }
    return n >= 1;
}

int vdi_check_instance(const char *instance) {
    return !instance || name_ok(instance, VDI_MAX_INSTANCE) ? NOERROR : VD_E_INSTANCE_NAME;
}

int vdi_check_name(const char *name) {
    return name && name_ok(name, VDI_MAX_NAME) ? NOERROR : VD_E_INVALID;
}

/* What every object of this user starts with: "/vdichaos-UID-". */
static int shm_prefix(char *out, size_t cap) {
    int n = snprintf(out, cap, "/vdichaos-%u-", (unsigned)getuid());
    return n > 0 && (size_t)n < cap ? n : -1;
}

int vdi_shm_name(char *out, size_t cap, const char *instance, const char *name) {
    /* the prefix, the instance ("." for the default one, which no valid instance name can
     * be confused with since names are prefixed by "i") and the set name. */
    int p = shm_prefix(out, cap);
    if (p < 0)
        return VD_E_INVALID;
    int n = snprintf(out + p, cap - (size_t)p, "%s%s-%s", instance ? "i" : ".",
                     instance ? instance : "", name);
    return n > 0 && (size_t)n < cap - (size_t)p ? NOERROR : VD_E_INVALID;
}

int vdi_seam_shm_name(char *out, size_t cap, const char *instance, const char *name) {
    return name && vdi_shm_name(out, cap, instance, name) == NOERROR ? 0 : -1;
}

int vdi_seam_shm_prefix(char *out, size_t cap) {
    return shm_prefix(out, cap) < 0 ? -1 : 0;
}

_Static_assert(sizeof(vdi_ctl_shm) < VDI_VIEW_ALIGN, "the control block fits one alias window");

size_t vdi_ctl_size(void) {
    return (sizeof(vdi_ctl_shm) + VDI_AREA_ALIGN - 1) & ~(size_t)(VDI_AREA_ALIGN - 1);
}

/* ---- mapping
 * ------------------------------------------------------------------------------
 */

static int map_reserve(vdi_view *m) {
    size_t ctl = vdi_ctl_size();
    m->reserve_len = ctl + VDI_MAX_AREA + VDI_VIEW_ALIGN;
    int err = VDI_FAIL("transport/map:reserve");
    if (err)
        return vdi_errno_code(err);
    void *p = vdi_map(NULL, m->reserve_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                      -1, 0);
    if (p == MAP_FAILED)
        return vdi_errno_code(errno);
    m->reserve = p;
    /* 1 MiB-aligned (VDI_VIEW_ALIGN, see vdi_atomic.h), hence 64 KiB-aligned too. */
    uintptr_t base = ((uintptr_t)p + VDI_VIEW_ALIGN - 1) & ~(uintptr_t)(VDI_VIEW_ALIGN - 1);
    err = VDI_FAIL("transport/map:control");
    void *c =
        err ? MAP_FAILED
            : vdi_map((void *)base, ctl, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, m->fd, 0);
    if (c == MAP_FAILED) {
        if (!err)
            err = errno;
        vdi_unmap(m->reserve, m->reserve_len);
        m->reserve = NULL;
        return vdi_errno_code(err);
    }
    m->ctl = c;
    m->area = (uint8_t *)c + ctl;
    m->mapped = 0;
    return NOERROR;
}

int vdi_map_area(vdi_view *m, uint32_t size) {
    if (size <= m->mapped)
        return NOERROR;
    if (size > VDI_MAX_AREA)
        return VD_E_MEMORY;
    int err = VDI_FAIL("transport/map_area:mmap");
    void *p = err ? MAP_FAILED
                  : vdi_map(m->area + m->mapped, size - m->mapped, PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_FIXED, m->fd, (off_t)(vdi_ctl_size() + m->mapped));
    if (p == MAP_FAILED)
        return vdi_errno_code(err ? err : errno);
    m->mapped = size;
    return NOERROR;
}

void vdi_map_release(vdi_view *m) {
    if (m->reserve)
        vdi_unmap(m->reserve, m->reserve_len); /* failures at teardown are ignored */
    if (m->fd >= 0)
        close(m->fd);
    m->reserve = NULL;
    m->ctl = NULL;
    m->area = NULL;
    m->fd = -1;
    m->mapped = 0;
}

/* Is the creator recorded in an existing object alive? An object without a creator's
 * identity yet is either being set up (a matter of microseconds) or was left by a
 * creator killed between its exclusive create and the identity: it counts as live
 * until it is VDI_CREATE_GRACE_S old by its last write (VDI-SPEC 8.4, a dead
 * creator's object is reclaimed). */
#define VDI_CREATE_GRACE_S 1
static int creator_alive(int fd, const struct stat *st) {
    vdi_peer_id id;
    if (pread(fd, &id, sizeof id, (off_t)offsetof(vdi_ctl_shm, client_id)) == (ssize_t)sizeof id &&
        id.pid > 0)
        return vdi_peer_alive(&id);
    struct timespec now;
    if (clock_gettime(CLOCK_REALTIME, &now) != 0)
        return 1;
    return now.tv_sec - st->st_mtim.tv_sec <= VDI_CREATE_GRACE_S;
}

/* NOERROR when the object of that name is ours and its creator is dead (reclaimable),
 * VD_E_BUSY while the creator lives, VD_E_SECURITY when it is another user's. */
static int left_by_the_dead(const char *shm_name) {
    int fd = vdi_shm_open(shm_name, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return errno == EACCES ? VD_E_SECURITY : VD_E_BUSY;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_uid != getuid()) {
        close(fd);
        return VD_E_SECURITY;
    }
    int alive = creator_alive(fd, &st);
    close(fd);
    return alive ? VD_E_BUSY : NOERROR;
}

size_t vdi_seam_reclaim_dead(const char *prefix) {
    char stem[64], path[300];
    if (!prefix || vdi_shm_name(stem, sizeof stem, NULL, "") != NOERROR)
        return 0;
    DIR *d = opendir("/dev/shm");
    if (!d)
        return 0;
    size_t removed = 0, sl = strlen(stem + 1), pl = strlen(prefix);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strncmp(e->d_name, stem + 1, sl) != 0 || strncmp(e->d_name + sl, prefix, pl) != 0)
            continue;
        int n = snprintf(path, sizeof path, "/%s", e->d_name);
        if (n > 0 && (size_t)n < sizeof path && left_by_the_dead(path) == NOERROR &&
            vdi_shm_unlink(path) == 0)
            removed++;
    }
    closedir(d);
    return removed;
}

int vdi_map_create(vdi_view *m, const char *shm_name, int *reclaimed) {
    int err, rc;
    *reclaimed = 0;
    m->fd = -1;
    for (int attempt = 0;; attempt++) {
        err = VDI_FAIL("transport/create:shm_open");
        m->fd = err ? -1 : vdi_shm_open(shm_name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (m->fd >= 0)
            break;
        if (!err)
            err = errno;
        if (err != EEXIST || attempt > 0)
            return vdi_errno_code(err);
        /* The name exists: busy if its creator lives, reclaimed if it is ours and
         * dead. */
        rc = left_by_the_dead(shm_name);
        if (rc != NOERROR)
            return rc;
        vdi_shm_unlink(shm_name);
        *reclaimed = 1;
    }
    /* 0600 whatever the umask. */
    err = VDI_FAIL("transport/create:fchmod");
    if (err || fchmod(m->fd, 0600) != 0) {
        rc = vdi_errno_code(err ? err : errno);
        goto fail;
    }
    err = VDI_FAIL("transport/create:ftruncate");
    if (err || ftruncate(m->fd, (off_t)vdi_ctl_size()) != 0) {
        rc = vdi_errno_code(err ? err : errno);
        goto fail;
    }
    rc = map_reserve(m);
    if (rc != NOERROR)
        goto fail;
    return NOERROR;
fail:
    close(m->fd);
    m->fd = -1;
    vdi_shm_unlink(shm_name);
    return rc;
}

int vdi_map_open(vdi_view *m, const char *shm_name) {
    struct stat st;
    int err = VDI_FAIL("transport/open:shm_open");
    m->fd = err ? -1 : vdi_shm_open(shm_name, O_RDWR | O_CLOEXEC, 0);
    if (m->fd < 0) {
        if (!err)
            err = errno;
        return err == ENOENT ? VD_E_INVALID : vdi_errno_code(err);
    }
    err = VDI_FAIL("transport/open:fstat");
    if (err || fstat(m->fd, &st) != 0) {
        close(m->fd);
        m->fd = -1;
        return vdi_errno_code(err ? err : errno);
    }
    if (st.st_uid != getuid() || (st.st_mode & 0777) != 0600) {
        close(m->fd);
        m->fd = -1;
        return VD_E_SECURITY;
    }
    if ((uint64_t)st.st_size < vdi_ctl_size()) { /* a creator still setting it up, or junk */
        close(m->fd);
        m->fd = -1;
        return VD_E_INVALID;
    }
    int rc = map_reserve(m);
    if (rc != NOERROR) {
        close(m->fd);
        m->fd = -1;
        return rc;
    }
    if (m->ctl->magic != VDI_SHM_MAGIC || m->ctl->version != VDI_SHM_VERSION ||
        m->ctl->ctl_size != vdi_ctl_size()) {
        vdi_map_release(m);
        return VD_E_INVALID;
    }
    return NOERROR;
}

/* ---- the device table
 * ---------------------------------------------------------------------- */

/* Device names bind slots first-come (VDI-SPEC 4): slot 0 carries the set's
 * name, others the first free slot. Binding happens under a futex lock that
 * lives in the control block; its critical section is a few stores and never
 * waits. */
int vdi_dev_bind(vdi_ctl_shm *ctl, const char *name, const char *set_name, uint32_t ndev, int *slot,
                 const vdi_peer_id *peer) {
    size_t len = strlen(name);
    *slot = -1;
    if (strcmp(name, set_name) == 0) {
        *slot = 0;
        return NOERROR;
    }
    /* The lock is in shared memory: a peer may die holding it. Wait for it in liveness
     * slices, and give up (VD_E_ABORT) when the peer is dead. */
    vdi_mutex *lk = (vdi_mutex *)&ctl->dev_lock;
    if (!vdi_cas(&lk->word, 0, 1))
        while (vdi_exchange(&lk->word, 2) != 0)
            if (vdi_wait_live(&lk->word, 2, -1, peer) == VDI_PEER_DEAD)
                return VD_E_ABORT;
    int free_slot = -1;
    for (uint32_t i = 1; i < ndev; i++) {
        vdi_dev_shm *d = &ctl->dev[i];
        /* pairs with the store of 2 below, by either side */
        if (vdi_load_acquire(&d->bound) == 2) {
            uint32_t n = d->name_len;
            if (n == len && n < sizeof d->name && memcmp(d->name, name, len) == 0) {
                *slot = (int)i;
                break;
            }
        } else if (free_slot < 0) {
            free_slot = (int)i;
        }
    }
    if (*slot < 0 && free_slot >= 0) {
        vdi_dev_shm *d = &ctl->dev[free_slot];
        memcpy(d->name, name, len);
        d->name_len = (uint32_t)len;
        vdi_store_release(&d->bound, 2); /* pairs with the acquire load above, either side */
        *slot = free_slot;
    }
    vdi_unlock(lk);
    return *slot >= 0 ? NOERROR : VD_E_INVALID;
}
