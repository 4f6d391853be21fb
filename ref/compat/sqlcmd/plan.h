/* plan.h: a server plan, what vdi-sqlcmd does in one session, misbehaviour included, as
 * a small text format (one step a line, PLAN.md). vdi-sqlcmd executes a plan (--plan FILE);
 * vdichaos client generates, saves and replays them. The parser accepts any byte string:
 * a line it cannot read is skipped (or, in strict mode, reported with its number), so a
 * fuzzer may mutate plan files freely. Plain C11, no allocation. */
#ifndef VDI_PLAN_H
#define VDI_PLAN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VDI_PLAN_MAX_FAULTS 16
#define VDI_PLAN_MAX_DEVICES 64
#define VDI_PLAN_MAX_STATEMENT 4096 /* bytes, the terminating NUL included */
#define VDI_PLAN_MAX_MS 3600000u    /* an hour: the longest pause, delay or timeout */
#define VDI_PLAN_MAX_DB_SIZE (UINT64_C(1) << 32)

enum vdi_plan_kind {
    VDI_PLAN_ABORT = 1,  /* SignalAbort once `after` commands completed */
    VDI_PLAN_CLOSE,      /* Close the set, devices still open, once `after` completed */
    VDI_PLAN_FAIL,       /* completion number `after` taken as failed with `code` */
    VDI_PLAN_DIE,        /* the server dies at `point` (after sending `after` commands) */
    VDI_PLAN_PAUSE,      /* `ms` of silence before the command after the `after`-th sent */
    VDI_PLAN_STALL,      /* nothing more sent after `after`; the server times out, aborts */
    VDI_PLAN_CLEARERROR, /* a VDC_ClearError after the `after`-th command of each device */
    VDI_PLAN_KIND_END
};

enum vdi_plan_point {
    VDI_PLAN_AT_COMMAND = 0,
    VDI_PLAN_AT_OPEN,
    VDI_PLAN_AT_CONFIGURED,
    VDI_PLAN_AT_END
};
enum vdi_plan_how { VDI_PLAN_EXIT = 0, VDI_PLAN_KILL, VDI_PLAN_SIGABRT, VDI_PLAN_TERM };

typedef struct vdi_plan_fault {
    uint8_t kind;   /* enum vdi_plan_kind */
    uint8_t point;  /* DIE: enum vdi_plan_point */
    uint8_t how;    /* DIE: enum vdi_plan_how */
    int8_t device;  /* -1: counted over every device, else the device's index */
    uint32_t after; /* the command count the fault fires at (1-based) */
    uint32_t code;  /* FAIL: the completion code */
    uint32_t ms;    /* PAUSE */
} vdi_plan_fault;

typedef struct vdi_plan {
    char statement[VDI_PLAN_MAX_STATEMENT];  /* "" = the client's own statement */
    uint32_t block_size;                     /* BLOCKSIZE, 0 = the statement's */
    uint32_t max_transfer;                   /* MAXTRANSFERSIZE, 0 = the statement's */
    uint32_t buffer_count;                   /* BUFFERCOUNT, 0 = the statement's */
    uint64_t db_size;                        /* a generated image's size, 0 = default */
    uint32_t timeout_ms;                     /* the server's waits, 0 = default */
    uint32_t delay_ms;                       /* before every command */
    int32_t flushes;                         /* VDC_Flush per device, -1 = default */
    int8_t complete;                         /* VDC_Complete: -1 auto, 0 never, 1 always */
    uint32_t transfer[VDI_PLAN_MAX_DEVICES]; /* data command size per device, 0 = max */
    uint8_t reverse[VDI_PLAN_MAX_DEVICES];   /* 1: the device's data commands last first */
    uint64_t shake_seed;   /* the client's threads shaken with this seed, 0 = not */
    uint32_t shake_max_us; /* their longest delay (VDI_AUDIT_SHAKE=SEED:MAX_US) */
    uint8_t sched;         /* the client's threads under the scheduler: 0 no, 1 random, 2 pct */
    uint8_t sched_depth;   /* pct: 1..8 */
    uint32_t sched_steps;  /* pct: the run's expected steps, 0 = the scheduler's default */
    uint64_t sched_seed;   /* (VDICHAOS_SCHED, chaos/sched/README.md) */
    uint32_t nfaults;
    vdi_plan_fault faults[VDI_PLAN_MAX_FAULTS];
} vdi_plan;

/* The empty plan: the server's defaults, no fault. */
void vdi_plan_init(vdi_plan *p);

/* Parses len bytes (any bytes). strict: the first line that is not a valid step fails
 * the parse: -1, with "line N: why" in err. Otherwise such lines are skipped and the
 * result is the number of lines skipped (the first one's reason in err, if any). */
int vdi_plan_parse(const char *text, size_t len, int strict, vdi_plan *out, char *err,
                   size_t errcap);

/* Writes the plan in its canonical form; like snprintf, returns the length it needs
 * (without the NUL) and truncates to cap. vdi_plan_parse of the result gives back a plan
 * equal to p (vdi_plan_equal) for every plan the parser can produce. */
size_t vdi_plan_print(const vdi_plan *p, char *buf, size_t cap);

/* 1 when the two plans say the same. */
int vdi_plan_equal(const vdi_plan *a, const vdi_plan *b);

/* A fault on one line, as the plan writes it ("abort after 3 device 1"). */
size_t vdi_plan_fault_print(const vdi_plan_fault *f, char *buf, size_t cap);

/* 1 when the plan contains only steps under which a server completes the session
 * (geometry, delays, pauses, flushes, ClearError, order, transfer sizes, no fault that
 * fails it): a correct client must then succeed. A pause or delay of the timeout or
 * longer, or a stall, counts as a failure. */
int vdi_plan_benign(const vdi_plan *p);

#ifdef __cplusplus
}
#endif

#endif /* VDI_PLAN_H */
