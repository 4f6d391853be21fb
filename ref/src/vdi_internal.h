/* vdi_internal.h: what the parts of the reference share: the seam calls, the
 * private lock, the error macros, the shared-memory layout (every *_shm struct
 * says who writes what) and the private objects of both sides. Nothing here is
 * public. */
#ifndef VDI_INTERNAL_H
#define VDI_INTERNAL_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vdi/vdi.h"
#include "vdi/vdi_seams.h"
#include "vdi_atomic.h"

/* Internal functions whose result is the outcome (a code, a verdict) say so. */
#define VDI_MUST_USE __attribute__((warn_unused_result))

/* ---- seams
 * ------------------------------------------------------------------------- */

extern vdi_seams vdi_hooks;

/* A schedule or fail point: the name is a string literal kept in a linker
 * section, so vdi_seam_points() can list every point compiled in without a list
 * kept by hand. */
#define VDI_SCHED(lit)                                                                             \
    do {                                                                                           \
        static const char *const vdi_sp_name_ __attribute__((section("vdi_sched_points"), used)) = \
            lit;                                                                                   \
        vdi_sched(vdi_sp_name_);                                                                   \
    } while (0)
#define VDI_FAIL(lit)                                                                              \
    __extension__({                                                                                \
        static const char *const vdi_fp_name_ __attribute__((section("vdi_fail_points"), used)) =  \
            lit;                                                                                   \
        vdi_fail(vdi_fp_name_);                                                                    \
    })

void vdi_sched(const char *name);
int vdi_fail(const char *name); /* 0 or the errno to fail with */
uint64_t vdi_now(void);
uintptr_t vdi_self(void);
/* Wait while *word == expected, at most timeout_ms (< 0: forever); 0 or
 * ETIMEDOUT. */
int vdi_wait(uint32_t *word, uint32_t expected, long timeout_ms, enum vdi_wait_kind kind);
void vdi_wake_all(uint32_t *word);
void *vdi_map(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int vdi_unmap(void *addr, size_t len);
int vdi_shm_open(const char *name, int oflag, mode_t mode);
int vdi_shm_unlink(const char *name);
int vdi_peer_alive(const vdi_peer_id *peer);
int vdi_self_id(vdi_peer_id *out) VDI_MUST_USE;
void *vdi_alloc(const char *why_lit_unused, size_t size); /* zeroed; NULL when failing */
void vdi_free(void *p);
#define VDI_ALLOC(lit, size) (VDI_FAIL(lit) ? NULL : vdi_alloc(lit, size))

/* ---- errors
 * -------------------------------------------------------------------------- */

int vdi_errno_code(int err) VDI_MUST_USE; /* VDI-SPEC 8.12 */

/* The failure macros of a call that went through the gate of set x: each records where it
 * was raised, with the code and why, in x's gate (vdi_seam_*_error_site reads it back),
 * then leaves the gate with the code. The first failure of a call is where it returns:
 * a helper's code comes back through VDI_GUARD, which records the call that failed.
 * A NULL handle or argument, refused before the gate, is a plain return: there is no set
 * to record it in, or not yet its lock. */
#define VDI_BAIL(x, code, why)                                                                     \
    return vdi_gate_leave(&(x)->g, vdi_gate_note(&(x)->g, (code), __FILE__, __LINE__, (why)))
#define VDI_ENSURE(x, cond, code)                                                                  \
    do {                                                                                           \
        if (!(cond))                                                                               \
            VDI_BAIL(x, code, "expected " #cond);                                                  \
    } while (0)
#define VDI_GUARD(x, expr)                                                                         \
    do {                                                                                           \
        int vdi_rc_ = (expr);                                                                      \
        if (vdi_rc_ != NOERROR)                                                                    \
            VDI_BAIL(x, vdi_rc_, #expr);                                                           \
    } while (0)
/* The same for a call that holds the lock without counting in the gate (the agent's
 * entry): record, unlock, return. */
#define VDI_BAIL_UNCOUNTED(x, code, why)                                                           \
    do {                                                                                           \
        int vdi_rc_ = vdi_gate_note(&(x)->g, (code), __FILE__, __LINE__, (why));                   \
        vdi_gate_check(&(x)->g);                                                                   \
        vdi_unlock(&(x)->g.mu);                                                                    \
        return vdi_rc_;                                                                            \
    } while (0)

/* ---- the private lock: a futex word through the wait seam (fibers can block
 * on it) ---- */

typedef struct vdi_mutex {
    uint32_t word; /* 0 free, 1 locked, 2 locked with waiters */
} vdi_mutex;
void vdi_lock(vdi_mutex *m);
void vdi_unlock(vdi_mutex *m);

/* The gate every call of one side passes: the private lock, the threads inside calls
 * (a close waits for them to leave), the word that wakes that close, and the close epoch.
 * Only the operations below change its fields; the close protocol (VDI-SPEC 5.0) is
 * begin_close, mark_closing, wake, wait_alone, then end_close, and a thread that runs a
 * routine or waits for another close steps out of the gate meanwhile.
 * vdi_gate_enter returns 1 when a close began after the call started (epoch read at its
 * very entry) and has finished by the time it gets the lock: the call overlapped the close
 * and must answer as one concurrent with it does (VD_E_ABORT), not as one on a closed
 * object (VD_E_PROTOCOL). */
typedef struct vdi_gate {
    vdi_mutex mu;
    uint32_t active;        /* threads inside calls of this side */
    uint32_t ev;            /* private futex: bumped when a thread leaves during a close */
    uint32_t close_epoch;   /* odd while a close runs: bumped at its start and at its end */
    int closing;            /* a close (or the drain it left to the agent) is under way */
    vdi_error_site failed;  /* the last failure raised by a call (under the lock) */
    vdi_error_site aborted; /* what aborted the set, as this side saw it */
    /* the side's invariants (vdi_validate.c): NULL when they hold, else the broken one */
    const char *(*validate)(const struct vdi_gate *g);
} vdi_gate;
int vdi_gate_enter(vdi_gate *g, uint32_t epoch); /* lock, count in; 1: overlapped a close */
int vdi_gate_overlapped(vdi_gate *g, uint32_t epoch) VDI_MUST_USE; /* a close began since */
int vdi_gate_leave(vdi_gate *g, int rc); /* count out, unlock; returns rc */
void vdi_gate_step_out(vdi_gate *g);     /* stop counting (lock held), waking a closer */
void vdi_gate_step_in(vdi_gate *g);      /* count again (lock held) */
void vdi_gate_count_out(vdi_gate *g);    /* stop counting, waking nobody (the caller does) */
void vdi_gate_wake(vdi_gate *g);         /* wake whoever waits on the gate */
void vdi_gate_wait(vdi_gate *g);         /* one wait for a wake, the lock released meanwhile */
void vdi_gate_wait_outside(vdi_gate *g); /* the same, not counted meanwhile (waking nobody) */
void vdi_gate_begin_close(vdi_gate *g);  /* the epoch turns odd: a close runs */
void vdi_gate_mark_closing(vdi_gate *g); /* threads that leave from now on wake the closer */
void vdi_gate_wait_alone(vdi_gate *g);   /* until no other thread is inside */
void vdi_gate_closed(vdi_gate *g);       /* the close and any drain it left are over */
void vdi_gate_end_close(vdi_gate *g);    /* count out, unlock, and the epoch turns even */
/* Record a failure in g->failed (lock held); returns code. */
int vdi_gate_note(vdi_gate *g, int code, const char *file, int line, const char *why);
/* Record what aborted the set in g->aborted (lock held; the first abort of the set). */
void vdi_gate_note_abort(vdi_gate *g, const char *file, int line, const char *why);
void vdi_gate_clear_abort(vdi_gate *g); /* the set starts anew */
int vdi_gate_sites(vdi_gate *g, vdi_error_site *failed, vdi_error_site *aborted);
int vdi_gate_try_quiet(vdi_gate *g);      /* the lock if free: 1; never waits, no point */
void vdi_gate_release_quiet(vdi_gate *g); /* its unlock, waking a waiter */

/* Invariants (vdi_validate.c). vdi_gate_check: in debug builds (no NDEBUG), as a call
 * leaves the gate and at each turn of the agent, a broken one stops the process. */
const char *vdi_srv_validate(const vdi_server_set *s);
const char *vdi_cli_validate(const vdi_client_set *c);
const char *vdi_srv_gate_validate(const vdi_gate *g);
const char *vdi_cli_gate_validate(const vdi_gate *g);
void vdi_gate_check_at(const vdi_gate *g, const char *file, int line);
#ifdef NDEBUG
#define vdi_gate_check(g) ((void)(g))
#else
#define vdi_gate_check(g) vdi_gate_check_at((g), __FILE__, __LINE__)
#endif

/* Every internal abort says why: abort_because(set, "cpl entry size out of range") enters
 * Abort (vdi_cli_abort_at / vdi_srv_abort_at) and, if it is the set's first, records the
 * reason and the site. */
#define abort_because(x, why)                                                                      \
    _Generic((x), vdi_client_set *                                                                 \
             : vdi_cli_abort_at, vdi_server_set *                                                  \
             : vdi_srv_abort_at)((x), (why), __FILE__, __LINE__)
void vdi_cli_abort_at(vdi_client_set *c, const char *why, const char *file, int line);
void vdi_srv_abort_at(vdi_server_set *s, const char *why, const char *file, int line);

/* Enter a call of set x (a struct with a gate g). The epoch is read first of all: the
 * call's invocation is its entry, before the schedule point that may let a close run. */
#define VDI_ENTER_AT_POINT(x, point)                                                               \
    do {                                                                                           \
        /* pairs with the bumps of vdi_gate_begin_close and _end_close */                          \
        uint32_t epoch_ = vdi_load_entry(&(x)->g.close_epoch);                                     \
        VDI_SCHED(point);                                                                          \
        if (vdi_gate_enter(&(x)->g, epoch_))                                                       \
            VDI_BAIL(x, VD_E_ABORT, "the call overlapped a close");                                \
    } while (0)
#define VDI_ENTER_OR_ABORT(x)                                                                      \
    do {                                                                                           \
        /* pairs with the bumps of vdi_gate_begin_close and _end_close */                          \
        if (vdi_gate_enter(&(x)->g, vdi_load_entry(&(x)->g.close_epoch)))                          \
            VDI_BAIL(x, VD_E_ABORT, "the call overlapped a close");                                \
    } while (0)

/* What a wait with liveness slices ends in. */
enum vdi_wait_end {
    VDI_WOKEN = 0,             /* woken, or the word changed: look again */
    VDI_TIMED_OUT = ETIMEDOUT, /* the timeout passed */
    VDI_PEER_DEAD = -1         /* a liveness slice found the peer dead */
};
/* Wait on a sequence word with the set's liveness rules: slices of at most 500
 * ms, the peer checked after each. */
int vdi_wait_live(uint32_t *word, uint32_t seen, long timeout_ms,
                  const vdi_peer_id *peer) VDI_MUST_USE;

/* ---- shared memory layout
 * -------------------------------------------------------------- */

/* The structs come from the tables of vdi_layout.h, which say who writes each field. */
#include "vdi_layout.h"

/* A buffer handle: the slot in the low bits, the buffer's generation above them, so that
 * a freed buffer's handle does not name the buffer that takes its slot (VDI-SPEC 4). The
 * generation is never 0, so no handle is 0. */
#define VDI_HANDLE_SLOT_BITS 12u /* VDI_MAX_BUFFERS */
#define VDI_HANDLE_GEN_MAX ((1u << (32u - VDI_HANDLE_SLOT_BITS)) - 1u)
_Static_assert(VDI_MAX_BUFFERS == 1u << VDI_HANDLE_SLOT_BITS, "a handle holds every slot");

/* One side's view of the object. */
typedef struct vdi_view {
    int fd;
    uint8_t *reserve; /* PROT_NONE reservation: control block + VDI_MAX_AREA +
                         alignment */
    size_t reserve_len;
    vdi_ctl_shm *ctl; /* at a 64 KiB-aligned address inside the reservation */
    uint8_t *area;    /* ctl + ctl_size */
    uint32_t mapped;  /* bytes of the area mapped by this side */
} vdi_view;

/* server_attached while a server's open runs: odd, with the claimer's pid above bit 1, so
 * that a server killed inside its open is noticed by its pid (VDI-SPEC 5.3). */
#define VDI_CLAIM(pid) (((uint32_t)(pid) << 2) | 1u)
#define VDI_CLAIMER(v) (((v)&1u) ? (int32_t)((v) >> 2) : 0)
int vdi_claimer_died(uint32_t *attached, uint32_t seen) VDI_MUST_USE;

size_t vdi_ctl_size(void);
int vdi_shm_name(char *out, size_t cap, const char *instance, const char *name) VDI_MUST_USE;
int vdi_check_instance(const char *instance) VDI_MUST_USE;
int vdi_check_name(const char *name) VDI_MUST_USE;
int vdi_map_create(vdi_view *m, const char *shm_name, int *reclaimed) VDI_MUST_USE;
int vdi_map_open(vdi_view *m, const char *shm_name) VDI_MUST_USE;
int vdi_map_area(vdi_view *m, uint32_t size) VDI_MUST_USE; /* the area up to size bytes */
void vdi_map_release(vdi_view *m);
int vdi_dev_bind(vdi_ctl_shm *ctl, const char *name, const char *set_name, uint32_t ndev, int *slot,
                 const vdi_peer_id *peer) VDI_MUST_USE; /* VD_E_ABORT: the peer died in it */

/* ---- private objects
 * ---------------------------------------------------------------- */

enum vdi_cstate { C_DNE, C_CONFIGURABLE, C_INITIALIZING, C_ACTIVE };
enum vdi_sstate { S_DNE, S_CONNECTED, S_CONFIGURABLE, S_INITIALIZING, S_ACTIVE };

struct vdi_client_device {
    struct vdi_client_set *set;
    int slot;
    int opened;
    int closed_seen;  /* get_command returned VD_E_CLOSE */
    uint32_t getting; /* a get_command is running */
    VDC_Command view[VDI_RING];
    uint32_t tag[VDI_RING];
    uint8_t delivered[VDI_RING]; /* delivered and not completed */
    uint32_t last;               /* index of the last view handed out */
};

struct vdi_client_set {
    vdi_gate g;
    int state;
    int secondary;
    int aborted;    /* observed abort: sticky */
    uint32_t owner; /* this object's id in dev[].client_owner */
    char name[VDI_MAX_NAME + 1];
    char shm_name[256];
    VDConfig cfg;          /* as given at create */
    uint32_t max_transfer; /* as negotiated, kept at the first get_configuration (7) */
    vdi_view map;
    vdi_peer_id server; /* read once when the server is known */
    int server_known;
    uint32_t claim; /* server_attached as last seen while a server's open runs, else 0 */
    uint64_t last_check;
    struct vdi_client_device dev[VDI_MAX_DEVICES];
};

typedef struct vdi_slot {
    VDS_Command *cmd;
    uint32_t gen;
    uint8_t state; /* 0 free, 1 outstanding, 2 taken by the agent */
    uint64_t seq;  /* send order */
} vdi_slot;

struct vdi_server_device {
    struct vdi_server_set *set;
    int slot;
    int opened;
    int closed;
    int io_error;
    uint32_t outstanding;
    vdi_slot s[VDI_RING];
};

typedef struct vdi_taken {
    int dev;
    int slot;
    uint32_t code;
    uint32_t bytes;
    uint64_t position;
} vdi_taken;

typedef struct vdi_buffer {
    uint64_t zone; /* start of the reserved prefix zone (area offset) */
    uint64_t data; /* data offset */
    uint64_t end;  /* end of the data (exclusive) */
    uint32_t size;
    int live;
} vdi_buffer;

struct vdi_server_set {
    vdi_gate g;
    int state;
    int aborted;         /* observed abort: sticky */
    int normal;          /* Normally Terminated */
    int agent;           /* an agent is running */
    int draining;        /* the agent is draining from private memory */
    uint32_t agent_seen; /* the agent_seq value the agent last went to sleep on */
    uintptr_t agent_self;
    uintptr_t callback_self; /* thread inside a callback of this set, 0 none */
    char name[VDI_MAX_NAME + 1];
    char shm_name[256];
    vdi_view map;
    vdi_peer_id client;
    uint64_t last_check;
    /* configuration */
    uint32_t features, block_size, alignment, max_transfer;
    uint64_t requested; /* summed request_buffers during configuration */
    uint32_t set_align;
    uint32_t area_size;
    vdi_buffer *bufs;
    uint32_t nbufs, capbufs;
    /* commands */
    struct vdi_server_device dev[VDI_MAX_DEVICES];
    uint32_t ndev;
    uint64_t send_seq;
    uint32_t outstanding;
    uint64_t wd_start;
    vdi_taken *taken;
    uint32_t taken_head, taken_n; /* FIFO of completions taken, capacity 64 * 64 */
};

/* Read and Write carry data: a size up to maxTransferSize and a buffer. */
static inline int vdi_data_command(int32_t code) {
    return code == VDC_Read || code == VDC_Write;
}

/* ---- the server's own, shared by vdi_server.c and the agent (vdi_agent.c); called with
 * the gate's lock held ---- */

enum vdi_slot_state { SLOT_FREE, SLOT_SENT, SLOT_TAKEN };
void vdi_srv_abort(vdi_server_set *s);         /* enter Abort, publish it, wake everyone */
void vdi_srv_observe(vdi_server_set *s);       /* the peer's abort or death, if any */
void vdi_srv_update_normal(vdi_server_set *s); /* Normally Terminated, decided here only */
void vdi_srv_reset(vdi_server_set *s);         /* back to DNE, the private state dropped */

#endif /* VDI_INTERNAL_H */
