/* vdi_seams.h: the control surface through which a harness (the chaos engine, the fuzz
 * targets, tests) installs behaviour into the reference library at run time. Kept apart
 * from vdi.h so that production users never see it. Every hook is optional: a NULL hook
 * (or no table at all) means the library's default, which is the real operating system.
 *
 * The table is process-wide. Install it only while no thread is inside the library. */
#ifndef VDI_VDI_SEAMS_H
#define VDI_VDI_SEAMS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct vdi_client_set; /* vdi/vdi.h: this header stands on its own */
struct vdi_server_set;

/* The identity one side writes into the control block at create/open (VDI-SPEC 5.3). */
typedef struct vdi_peer_id {
    int32_t pid;
    uint32_t reserved;   /* zero */
    uint64_t start_time; /* process start time in clock ticks since boot (proc(5) field 22) */
} vdi_peer_id;

/* What a wait is for; the controlled engine does not count liveness slices as timers. */
enum vdi_wait_kind {
    VDI_WAIT_PLAIN = 0,   /* an ordinary wait with the caller's own timeout */
    VDI_WAIT_LIVENESS = 1 /* a slice (<= 500 ms) cut out of a longer wait to poll peer_alive */
};

/* Which kind of point a name belongs to, for vdi_seam_points(). */
enum vdi_point_kind {
    VDI_POINT_SCHED = 0, /* sched_point names */
    VDI_POINT_FAIL = 1   /* fail_point names */
};

typedef struct vdi_seams {
    void *ctx; /* passed back to every hook */

    /* A schedule point: before and after every publication or consumption of shared
     * state, before every wait, at callback entry and exit, at API entry and exit.
     * name is a string literal "module/function:where", each used at one place only. */
    void (*sched_point)(void *ctx, const char *name);

    /* Block while *word == expected, for at most timeout_ms (negative: forever).
     * Return 0 when woken, spuriously or not, or when *word != expected; ETIMEDOUT when
     * the timeout passed. The word may live in memory shared with another process. */
    int (*wait)(void *ctx, uint32_t *word, uint32_t expected, long timeout_ms,
                enum vdi_wait_kind kind);
    /* Wake up to n waiters of word (INT32_MAX: all). */
    void (*wake)(void *ctx, uint32_t *word, int n);

    /* The clock of every timeout and of the watchdog: monotonic milliseconds. */
    uint64_t (*now_ms)(void *ctx);

    /* Every operation that can fail for real asks first: return 0 to let it proceed, or
     * an errno value (ENOMEM, EINTR, ...) to make it fail as if the system said so. */
    int (*fail_point)(void *ctx, const char *name);

    /* Every mapping and unmapping of shared memory (mmap(2) / munmap(2) shaped). The
     * harness can keep unmapped views reserved and poisoned to catch late touches.
     * map returns MAP_FAILED with errno set on failure. */
    void *(*map)(void *ctx, void *addr, size_t len, int prot, int flags, int fd, off_t off);
    int (*unmap)(void *ctx, void *addr, size_t len);

    /* Who is calling: a non-zero token unique among the live callers (default: the
     * calling thread). The library keeps no thread-local state, so fibers work. */
    uintptr_t (*self)(void *ctx);

    /* Is the process of that identity still the same live process? 1 alive, 0 dead. */
    int (*peer_alive)(void *ctx, const vdi_peer_id *peer);

    /* Called before every atomic access of a word the library shares between threads or
     * processes: ring indices, state and sequence words, the gate and the private lock.
     * A harness that makes it a schedule decision reaches the windows between two accesses
     * that no named point separates (word tells which; it may lie in shared memory). NULL,
     * the default, costs one predicted branch per access. */
    void (*access_point)(void *ctx, const void *word);

    /* Every opening and unlinking of a set's named object (shm_open(3) / shm_unlink(3)
     * shaped: the fd returned, -1 with errno set). Everything else is done on the fd as
     * usual (fchmod, ftruncate, fstat, pread, mmap through map), so a harness can hand out
     * objects it keeps between runs instead of the system's, provided they behave as fresh
     * ones: zero-filled, the size ftruncate gives them, the mode fchmod gives them. */
    int (*shm_open)(void *ctx, const char *name, int oflag, mode_t mode);
    int (*shm_unlink)(void *ctx, const char *name);
} vdi_seams;

/* Install a copy of *seams (NULL: back to the defaults). Not thread-safe by design. */
void vdi_seams_install(const vdi_seams *seams);

/* The name of the shared-memory object of set NAME of INSTANCE (NULL: the default one), as
 * the library names it: for shm_open, and /dev/shm/ plus the name after its '/' is its
 * file. 0, or -1 when it does not fit in cap bytes. */
int vdi_seam_shm_name(char *out, size_t cap, const char *instance, const char *name);
/* What the names of every set of this user start with ("/vdichaos-UID-"), in any instance:
 * for a scan of /dev/shm. 0, or -1 when it does not fit. */
int vdi_seam_shm_prefix(char *out, size_t cap);

/* Removes this user's shared memory of sets of the default instance whose name begins
 * with prefix and whose creator is dead, by the rule create reclaims a name with
 * (VDI-SPEC 8.4): what a harness's processes left when they died with sets open (a fuzz
 * target's crash, a test's deliberate leak), which nobody else would ever create again.
 * Returns how many objects it removed. Call it with no seams installed: the creators are
 * judged alive or dead by the real system. */
size_t vdi_seam_reclaim_dead(const char *prefix);
/* Every point name of the given kind compiled into the library, so a harness can prove
 * that each one is reached. Returns the count and sets *names to a static array. */
size_t vdi_seam_points(enum vdi_point_kind kind, const char *const **names);

/* Where a failure of a call of a set was raised: the file and line in the library, the code
 * the call answered, and what went wrong in a few words. file is NULL when none was. */
typedef struct vdi_error_site {
    const char *file;
    int line;
    int code;
    const char *why;
} vdi_error_site;

/* The error sites of a set object, for a test or a finding to print: *failed, the last
 * failure raised by a call of the object (a NULL handle or argument is never recorded);
 * *aborted, what put the set into Abort as this object saw it (a hostile peer's value, the
 * peer's death, the watchdog, signal_abort, a premature close), kept after close and
 * cleared when the object is created or opened again. file is the library's source file
 * name. Either pointer may be NULL. Takes the object's lock if it is free, and never waits
 * for it: call it from no routine of the set. 0; 1 when the lock was held (by a thread in
 * a call of the object, or stopped there), nothing read; -1 for a NULL object. */
int vdi_seam_client_error_site(struct vdi_client_set *c, vdi_error_site *failed,
                               vdi_error_site *aborted);
int vdi_seam_server_error_site(struct vdi_server_set *s, vdi_error_site *failed,
                               vdi_error_site *aborted);

/* The invariants of a set object's private state (ref/src/vdi_validate.c: sorted buffer
 * zones, outstanding counts that match the command slots, a taken FIFO that names taken
 * slots, states in range): NULL when they hold, or when the object is NULL or its lock is
 * held (never waits), else the one that is broken. Debug builds of the library check them
 * after every call and every step of the agent, and stop the process when one breaks. */
const char *vdi_seam_server_validate(struct vdi_server_set *s);
const char *vdi_seam_client_validate(struct vdi_client_set *c);
/* Debug builds' checks on (1, the default) or off (0), for the whole process: a harness
 * that proves another oracle on a seeded bug turns them off, since a bug that breaks an
 * invariant is stopped by them first (vdichaos: VDICHAOS_NO_INVARIANTS=1). The seams'
 * checks above are not affected. */
void vdi_seam_debug_invariants(int on);

#ifdef __cplusplus
}
#endif

#endif /* VDI_VDI_SEAMS_H */
