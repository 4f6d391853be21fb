/* fuzz_api: sequences of calls on both sides of VDI sets in one process, every return code,
 * callback and returned field checked against the executable model (chaos/model). The
 * input is a list of ops (fuzz/fuzz_api.dict names them); the main thread makes every call,
 * and the completion agent runs on a thread of its own, so only timing-independent results
 * are compared: after each op the target waits until the callbacks the model predicts have
 * run (and joins an agent the model says returned). Blocking calls use timeouts of 0 or 1 ms;
 * the watchdog is off (serverTimeOut 0). A mismatch aborts with the op index and codes.
 * Each op is a function op_<fn> of its own, and the op byte's table of them comes from
 * chaos/model/include/vdi_api.def, so a call added there without its op does not build. */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "chaos_model.h"
#include "fuzz_check.h"
#include "fuzz_input.h"
#include "vdi/vdi.h"
#include "vdi/vdi_seams.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NCLIENT 2
#define NSERVER 2
#define NSLOT 4
#define NCMD 72 /* > 64: the queue-full row is reachable */
#define MAX_OPS 256
#define MAX_HANDLES 64
#define LOG_MAX 4096

/* The op byte, taken mod FZ_OP_COUNT: the VDI_CALL entries of vdi_api.def in its order (the
 * model's ops), then the target's own. Every stored input (corpora/fuzz_api, gen_seeds.py,
 * fuzz_api.dict) is a list of these numbers: a call added to the .def renumbers them all. */
typedef enum fz_op {
#define VDI_CALL(fn, op, ret, params) FZ_##op,
#include "vdi_api.def"
    FZ_SEND_FLOOD, /* 64 sends in a row, for the queue-full row */
    FZ_OP_COUNT
} fz_op;
_Static_assert(FZ_OP_COUNT == 26, "a new op renumbers every stored input of fuzz_api: "
                                  "regenerate its seeds and dictionary, retire its crash files");

/* The entries of vdi_api.def that are no op of this target, each with why; an entry that is
 * neither an op (a VDI_CALL has op_<fn> below) nor named here fails the build. */
enum fz_not_an_op {
    not_vdi_strerror,          /* reads a table; every failure message prints it */
    not_vdi_client_set_new,    /* each input makes its NCLIENT client objects first, */
    not_vdi_server_set_new,    /* and its NSERVER server objects, */
    not_vdi_client_set_free,   /* and frees them last, after finish() closed them: */
    not_vdi_server_set_free,   /* an object freed between ops could not be named again */
    not_vdi_client_set_create, /* create_ex with a NULL instance, one of create's choices */
    not_vdi_client_set_open_in_secondary, /* the same of open_in_secondary_ex */
};
enum {
#define VDI_ALIAS(fn, ret, params) fz_checked_##fn = not_##fn,
#define VDI_PLAIN(fn, ret, params) fz_checked_##fn = not_##fn,
#include "vdi_api.def"
};

typedef struct fz_log {
    int cmd;
    uint32_t code, bytes;
    int64_t out_position;
} fz_log;

typedef struct fz_buf {
    uint8_t *addr; /* the server's address (NULL once the server closed) */
    uint32_t size;
    int server;
} fz_buf;

typedef struct fz {
    char set_name[64], other_name[64], long_name[160];
    chaos_model *m;
    vdi_client_set *client[NCLIENT];
    vdi_server_set *server[NSERVER];
    vdi_client_device *cdev[NCLIENT][NSLOT];
    vdi_server_device *sdev[NSERVER][NSLOT];
    VDS_Command cmds[NCMD];
    int cmd_slot[NCMD];           /* device slot it was last sent on */
    VDC_Command *vdc[NCMD];       /* the client's view of it, once delivered */
    int vdc_client[NCMD];         /* the client object it was delivered to */
    int64_t expect_out_pos[NCMD]; /* model: outPosition the next routine must see */
    fz_buf bufs[CHAOS_MODEL_MAX_BUFS];
    intptr_t delta[NCLIENT];  /* client address - server address, once seen */
    int delta_known[NCLIENT]; /* per client object */
    uint32_t handles[MAX_HANDLES];
    int handle_buf[MAX_HANDLES];
    int nhandles;
    uint32_t prefix; /* prefixZoneSize of the live set (for pointer choices) */
    /* agents */
    pthread_t agent[NSERVER];
    int agent_started[NSERVER];
    atomic_int agent_waiting[NSERVER];
    atomic_int agent_rc[NSERVER];
    atomic_uintptr_t agent_tid[NSERVER];
    /* callbacks */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    fz_log log[LOG_MAX];
    int nlog;
    fz_log expect[LOG_MAX];
    int nexpect;
    int checked; /* log entries already matched */
    /* the op being run, for messages */
    int op_index;
    const char *op_name;
    uint8_t junk[64]; /* a pointer that is none of the library's */
    int trace;        /* FUZZ_API_TRACE set: print every op and its predicted code */
} fz;

/* ---- failure reporting --------------------------------------------------------------- */

__attribute__((format(printf, 2, 3), noreturn)) static void fail(fz *f, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "==fuzz_api== mismatch at op %d (%s): ", f->op_index,
            f->op_name ? f->op_name : "?");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    abort();
}

static void expect_code(fz *f, const chaos_model_outcome *o, int rc) {
    if (rc == o->code || rc == o->alt_code)
        return;
    if (o->code == o->alt_code)
        fail(f, "expected %s, got %s (rule: %s)", vdi_strerror(o->code), vdi_strerror(rc), o->why);
    fail(f, "expected %s or %s, got %s (rule: %s)", vdi_strerror(o->code),
         vdi_strerror(o->alt_code), vdi_strerror(rc), o->why);
}

/* ---- seams: a plain futex, and a note when an agent thread starts waiting ------------ */

static int fz_wait(void *ctx, uint32_t *word, uint32_t expected, long timeout_ms,
                   enum vdi_wait_kind kind) {
    (void)kind;
    fz *f = ctx;
    uintptr_t me = (uintptr_t)pthread_self();
    for (int i = 0; i < NSERVER; i++)
        if (atomic_load(&f->agent_tid[i]) == me)
            atomic_store(&f->agent_waiting[i], 1);
    struct timespec ts, *tp = NULL;
    if (timeout_ms >= 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (timeout_ms % 1000) * 1000000L;
        tp = &ts;
    }
    long r = syscall(SYS_futex, word, FUTEX_WAIT, expected, tp, NULL, 0);
    return r == -1 && errno == ETIMEDOUT ? ETIMEDOUT : 0;
}

static void fz_wake(void *ctx, uint32_t *word, int n) {
    (void)ctx;
    syscall(SYS_futex, word, FUTEX_WAKE, n, NULL, NULL, 0);
}

/* ---- callbacks and the agent ----------------------------------------------------------- */

static void routine(VDS_Command *cmd) {
    fz *f = cmd->completionContext;
    pthread_mutex_lock(&f->mu);
    if (f->nlog < LOG_MAX) {
        fz_log *l = &f->log[f->nlog++];
        l->cmd = (int)(cmd - f->cmds);
        l->code = cmd->completionCode;
        l->bytes = cmd->bytesTransferred;
        l->out_position = cmd->outPosition;
    }
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

typedef struct agent_arg {
    fz *f;
    int s;
} agent_arg;

static agent_arg g_agent_args[NSERVER];

static void *agent_main(void *arg) {
    agent_arg *a = arg;
    atomic_store(&a->f->agent_tid[a->s], (uintptr_t)pthread_self());
    int rc = vdi_server_set_execute_completion_agent(a->f->server[a->s]);
    atomic_store(&a->f->agent_rc[a->s], rc);
    return NULL;
}

/* The model says this agent runs: it must have entered its wait before the next call, so
 * that calls see it registered (a real deadline only guards against a hang). */
static void await_agent_waiting(fz *f, int s) {
    for (unsigned long i = 0; !atomic_load(&f->agent_waiting[s]); i++) {
        if (i > 200000000ul)
            fail(f, "the completion agent of server %d never started waiting", s);
        sched_yield();
    }
}

static void join_agent(fz *f, int s, int expect_rc) {
    if (!f->agent_started[s])
        fail(f, "the model says agent %d returns, but none was started", s);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 20;
    if (pthread_timedjoin_np(f->agent[s], NULL, &ts) != 0)
        fail(f, "the completion agent of server %d did not return (expected %s)", s,
             vdi_strerror(expect_rc));
    f->agent_started[s] = 0;
    atomic_store(&f->agent_waiting[s], 0);
    atomic_store(&f->agent_tid[s], 0);
    int rc = atomic_load(&f->agent_rc[s]);
    if (rc != expect_rc)
        fail(f, "the completion agent of server %d returned %s, expected %s", s, vdi_strerror(rc),
             vdi_strerror(expect_rc));
}

/* Compare the routine calls made so far with the model's: each expected one present with
 * its fields, in order per command device, and nothing else. Waits for the ones the
 * agent still owes (sync ones must already be there). */
static void check_callbacks(fz *f, const chaos_model_outcome *o) {
    for (size_t i = 0; i < o->ncallbacks && f->nexpect < LOG_MAX; i++) {
        const chaos_model_callback *cb = &o->callbacks[i];
        fz_log *e = &f->expect[f->nexpect++];
        e->cmd = cb->cmd;
        e->code = cb->code;
        e->bytes = cb->bytes;
        e->out_position = cb->out_position;
    }
    pthread_mutex_lock(&f->mu);
    int sync_needed = f->nexpect;
    for (size_t i = o->ncallbacks; i-- > 0;)
        if (!o->callbacks[i].sync)
            sync_needed--;
    if (f->nlog < sync_needed) {
        int n = f->nlog;
        pthread_mutex_unlock(&f->mu);
        fail(f, "%d routine calls expected before the call returned, %d happened", sync_needed, n);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 20;
    while (f->nlog < f->nexpect)
        if (pthread_cond_timedwait(&f->cv, &f->mu, &ts) != 0)
            break;
    int n = f->nlog;
    pthread_mutex_unlock(&f->mu);
    if (n != f->nexpect)
        fail(f, "%d routine calls expected so far, %d happened", f->nexpect, n);
    /* Match the new ones: same commands; per device, the model's order. */
    for (int i = f->checked; i < f->nexpect; i++) {
        const fz_log *e = &f->expect[i];
        int found = -1;
        for (int j = f->checked; j < n && found < 0; j++)
            if (f->log[j].cmd == e->cmd)
                found = j;
        if (found < 0)
            fail(f, "no routine call for command %d (expected code %u)", e->cmd, e->code);
        const fz_log *a = &f->log[found];
        if (a->code != e->code || a->bytes != e->bytes || a->out_position != e->out_position)
            fail(f,
                 "command %d: routine saw code %u bytes %u outPosition %lld, expected %u %u "
                 "%lld",
                 e->cmd, a->code, a->bytes, (long long)a->out_position, e->code, e->bytes,
                 (long long)e->out_position);
    }
    for (int i = f->checked; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            int ci = f->log[i].cmd, cj = f->log[j].cmd;
            if (ci == cj)
                fail(f, "command %d got two routine calls", ci);
            if (f->cmd_slot[ci] != f->cmd_slot[cj])
                continue;
            int ei = -1, ej = -1;
            for (int k = f->checked; k < f->nexpect; k++) {
                if (f->expect[k].cmd == ci)
                    ei = k;
                if (f->expect[k].cmd == cj)
                    ej = k;
            }
            if (ei > ej)
                fail(f, "commands %d and %d of one device were completed out of order", ci, cj);
        }
    f->checked = n;
}

/* ---- pointers the ops use ----------------------------------------------------------------- */

/* The live buffer whose data zone holds p (server address), as the model names it. */
static int resolve_server_ptr(fz *f, const uint8_t *p, int64_t *off) {
    for (int i = 0; i < CHAOS_MODEL_MAX_BUFS; i++) {
        if (!f->bufs[i].addr || !chaos_model_buf_live(f->m, i))
            continue;
        if (p >= f->bufs[i].addr && p < f->bufs[i].addr + f->bufs[i].size) {
            *off = p - f->bufs[i].addr;
            return i;
        }
    }
    *off = 0;
    return p ? CHAOS_MODEL_OTHER : CHAOS_MODEL_NULL;
}

/* A server pointer near a buffer that was allocated (live or not), or NULL / junk. */
static uint8_t *pick_server_ptr(fz *f, fuzz_input *in, int *buf, int64_t *off) {
    int ids[CHAOS_MODEL_MAX_BUFS], n = 0;
    for (int i = 0; i < CHAOS_MODEL_MAX_BUFS; i++)
        if (f->bufs[i].addr)
            ids[n++] = i;
    uint32_t how = fuzz_choice(in, 8);
    if (n == 0 || how == 6) {
        *buf = CHAOS_MODEL_NULL;
        *off = 0;
        return NULL;
    }
    if (how == 7) {
        *buf = CHAOS_MODEL_OTHER;
        *off = 0;
        return f->junk;
    }
    const fz_buf *b = &f->bufs[ids[fuzz_choice(in, (uint32_t)n)]];
    static const int64_t offs[] = {0, 0, 0, 1, -1, 2, 3};
    int64_t o = offs[how];
    if (how == 2)
        o = (int64_t)b->size - 1;
    if (how == 3)
        o = b->size;
    if (how == 5)
        o = -(int64_t)f->prefix;
    uint8_t *p = b->addr + o;
    *buf = resolve_server_ptr(f, p, off);
    return p;
}

static const char *pick_instance(fz *f, fuzz_input *in) {
    (void)f;
    static const char *const inst[] = {NULL, NULL, NULL, NULL, NULL, "", "a/b", "inst2"};
    return FUZZ_PICK(in, inst);
}

static const char *pick_set_name(fz *f, fuzz_input *in) {
    uint32_t c = fuzz_choice(in, 10);
    switch (c) {
    case 6:
        return "";
    case 7:
        return "x/y";
    case 8:
        return f->other_name;
    case 9:
        return f->long_name;
    default:
        return f->set_name;
    }
}

static const char *pick_dev_name(fz *f, fuzz_input *in) {
    static const char *const names[] = {"b", "c", "d", "", "x\\y"};
    uint32_t c = fuzz_choice(in, 8);
    return c < 3 ? f->set_name : names[c - 3];
}

/* ---- one op ------------------------------------------------------------------------------- */

static void after_call(fz *f, const chaos_model_outcome *o) {
    if (f->trace)
        fprintf(stderr, "fuzz_api: op %3d %-34s -> %-18s (%s)\n", f->op_index, f->op_name,
                vdi_strerror(o->code), o->why);
    check_callbacks(f, o);
    if (o->agent_returns)
        for (int s = 0; s < NSERVER; s++)
            if (f->agent_started[s] && !chaos_model_agent_running(f->m, s))
                join_agent(f, s, o->agent_code);
}

/* Run the model, then (unless it cannot answer) the call, and compare. */
#define MODEL_OR_SKIP(f, k, o)                                                                     \
    do {                                                                                           \
        chaos_model_step((f)->m, (k), (o));                                                        \
        if ((o)->unmodelled || (o)->blocks)                                                        \
            return;                                                                                \
    } while (0)

static void resolve_or_fail(fz *f, const chaos_model_call *k, chaos_model_outcome *o, int rc) {
    if (o->code == o->alt_code) {
        expect_code(f, o, rc);
        return;
    }
    chaos_model_outcome before = *o;
    if (chaos_model_resolve(f->m, k, rc, o) != 0)
        expect_code(f, &before, rc);
}

static void check_cfg(fz *f, const chaos_model_outcome *o, const VDConfig *c, const char *who) {
    const uint32_t *a = (const uint32_t *)c, *e = (const uint32_t *)&o->cfg;
    static const char *const fields[] = {
        "deviceCount",    "features",      "prefixZoneSize", "alignment",  "softFileMarkBlockSize",
        "EOMWarningSize", "serverTimeOut", "blockSize",      "maxIODepth", "maxTransferSize"};
    for (int i = 0; i < 10; i++)
        if (a[i] != e[i])
            fail(f, "%s: VDConfig.%s is %u, expected %u", who, fields[i], a[i], e[i]);
    if (c->bufferAreaSize < o->area_lo || c->bufferAreaSize > o->area_hi)
        fail(f, "%s: bufferAreaSize %u outside [%llu, %llu]", who, c->bufferAreaSize,
             (unsigned long long)o->area_lo, (unsigned long long)o->area_hi);
}

/* One op's call as the model sees it, and the handle it passes. The flags byte says NULL for
 * the handle (low nibble 0xf) or for the out-parameter (high nibble 0xf). */
typedef struct fz_call {
    chaos_model_call k;
    chaos_model_outcome o;
    int obj; /* the client or server object the input chose */
    int null_handle, null_out;
    vdi_client_set *cs; /* client ops: the set handle passed */
    vdi_server_set *ss; /* server ops */
} fz_call;

/* The start of every op: its label for messages (crash signatures are made of it) and the
 * NULLs of its flags byte. client_call and server_call then take the object it calls on
 * from the op's first argument byte. */
static void begin_call(fz *f, const char *label, chaos_model_op op, uint8_t flags, fz_call *c) {
    f->op_name = label;
    memset(c, 0, sizeof *c);
    c->k.op = op;
    c->null_handle = (flags & 0x0f) == 0x0f;
    c->null_out = (flags & 0xf0) == 0xf0;
    c->k.out_null = c->null_out;
}

static void client_call(fz *f, fuzz_input *in, const char *label, chaos_model_op op, uint8_t flags,
                        fz_call *c) {
    begin_call(f, label, op, flags, c);
    c->obj = (int)fuzz_choice(in, NCLIENT);
    c->cs = c->null_handle ? NULL : f->client[c->obj];
    c->k.obj = c->null_handle ? CHAOS_MODEL_NULL : c->obj;
}

/* The server's object: the second one now and then (a byte of 240 or more). Its agent, if
 * the model says it runs, must be waiting before the call. */
static void server_call(fz *f, fuzz_input *in, const char *label, chaos_model_op op, uint8_t flags,
                        fz_call *c) {
    begin_call(f, label, op, flags, c);
    c->obj = (int)(fuzz_u8(in) >= 240);
    c->ss = c->null_handle ? NULL : f->server[c->obj];
    c->k.obj = c->null_handle ? CHAOS_MODEL_NULL : c->obj;
    if (chaos_model_agent_running(f->m, c->obj))
        await_agent_waiting(f, c->obj);
}

/* The usual end of an op: the call's code against the model's, then callbacks and agents. */
static void conclude(fz *f, fz_call *c, int rc) {
    resolve_or_fail(f, &c->k, &c->o, rc);
    after_call(f, &c->o);
}

/* Either side's open_device: the slot the model put the new device in (-1: none to note);
 * a failed call must have left *out NULL. */
static int opened_slot(fz *f, const fz_call *c, int rc, const void *d) {
    if (rc == NOERROR && c->o.code == NOERROR && c->o.slot >= 0 && c->o.slot < NSLOT)
        return c->o.slot;
    if (rc != NOERROR && !c->null_out && d != NULL)
        fail(f, "a failed open_device left *out non-NULL");
    return -1;
}

static const uint32_t server_sizes[] = {4096, 65536, 512, 1, 100000, 0, 3000, 8192};
static const uint32_t server_aligns[] = {0, 0, 512, 4096, 65536, 3};

/* ---- client ops --------------------------------------------------------------------------- */

static void op_vdi_client_set_create_ex(fz *f, fuzz_input *in, uint8_t flags) {
    fz_call c;
    client_call(f, in, "client create", CM_C_CREATE_EX, flags, &c);
    c.k.instance = pick_instance(f, in);
    c.k.name = pick_set_name(f, in);
    static const uint32_t ndev[] = {1, 1, 2, 2, 3, 4, 0, 65};
    static const uint32_t feat[] = {
        0, VDF_RequestComplete, VDF_LikeTape, VDF_LikeDisk, VDF_WriteMedia, 0x4000};
    static const uint32_t align[] = {0, 0, 512, 4096, 65536, 3, 131072, 8192};
    static const uint32_t prefix[] = {0, 0, 64, 512, 65537, 4096};
    c.k.cfg.deviceCount = FUZZ_PICK(in, ndev);
    c.k.cfg.features = FUZZ_PICK(in, feat);
    c.k.cfg.alignment = FUZZ_PICK(in, align);
    c.k.cfg.prefixZoneSize = FUZZ_PICK(in, prefix);
    c.k.cfg.blockSize = fuzz_u8(in); /* ignored by create (8.6) */
    c.k.cfg_null = c.null_out;
    VDConfig cfg = c.k.cfg;
    MODEL_OR_SKIP(f, &c.k, &c.o);
    int rc = vdi_client_set_create_ex(c.cs, c.k.instance, c.k.name, c.null_out ? NULL : &cfg);
    if (rc == NOERROR && c.o.code == NOERROR)
        f->prefix = c.k.cfg.prefixZoneSize;
    conclude(f, &c, rc);
}

static void op_vdi_client_set_get_configuration(fz *f, fuzz_input *in, uint8_t flags) {
    fz_call c;
    client_call(f, in, "client get_configuration", CM_C_GET_CONFIGURATION, flags, &c);
    c.k.timeout = (long)fuzz_choice(in, 2);
    c.k.cfg_null = c.null_out;
    VDConfig cfg;
    memset(&cfg, 0xA5, sizeof cfg);
    VDConfig before = cfg;
    MODEL_OR_SKIP(f, &c.k, &c.o);
    int rc = vdi_client_set_get_configuration(c.cs, c.k.timeout, c.null_out ? NULL : &cfg);
    if (rc == NOERROR && c.o.code == NOERROR)
        check_cfg(f, &c.o, &cfg, "client get_configuration");
    else if (rc != NOERROR && memcmp(&cfg, &before, sizeof cfg) != 0)
        fail(f, "a failed get_configuration changed *cfg (8.1)");
    conclude(f, &c, rc);
}

static void op_vdi_client_set_open_device(fz *f, fuzz_input *in, uint8_t flags) {
    fz_call c;
    client_call(f, in, "client open_device", CM_C_OPEN_DEVICE, flags, &c);
    c.k.name = pick_dev_name(f, in);
    vdi_client_device *d = (vdi_client_device *)f->junk;
    MODEL_OR_SKIP(f, &c.k, &c.o);
    int rc = vdi_client_set_open_device(c.cs, c.k.name, c.null_out ? NULL : &d);
    int slot = opened_slot(f, &c, rc, d);
    if (slot >= 0)
        f->cdev[c.obj][slot] = d;
    conclude(f, &c, rc);
}

static void op_vdi_client_set_close(fz *f, fuzz_input *in, uint8_t flags) {
    fz_call c;
    client_call(f, in, "client close", CM_C_CLOSE, flags, &c);
    MODEL_OR_SKIP(f, &c.k, &c.o);
    int rc = vdi_client_set_close(c.cs);
    if (!c.null_handle && c.o.code == rc) {
        memset(f->cdev[c.obj], 0, sizeof f->cdev[c.obj]);
        f->delta_known[c.obj] = 0;
        for (int i = 0; i < NCMD; i++)
            if (f->vdc_client[i] == c.obj)
                f->vdc[i] = NULL;
    }
    conclude(f, &c, rc);
}

static void op_vdi_client_set_signal_abort(fz *f, fuzz_input *in, uint8_t flags) {
    fz_call c;
    client_call(f, in, "client signal_abort", CM_C_SIGNAL_ABORT, flags, &c);
    MODEL_OR_SKIP(f, &c.k, &c.o);
    conclude(f, &c, vdi_client_set_signal_abort(c.cs));
}

static void op_vdi_client_set_open_in_secondary_ex(fz *f, fuzz_input *in, uint8_t flags) {
    fz_call c;
    client_call(f, in, "client open_in_secondary", CM_C_OPEN_IN_SECONDARY, flags, &c);
    c.k.instance = pick_instance(f, in);
    c.k.name = pick_set_name(f, in);
    MODEL_OR_SKIP(f, &c.k, &c.o);
    conclude(f, &c, vdi_client_set_open_in_secondary_ex(c.cs, c.k.instance, c.k.name));
}

static void op_vdi_client_set_get_buffer_handle(fz *f, fuzz_input *in, uint8_t flags) {
    fz_call c;
    client_call(f, in, "client get_buffer_handle", CM_C_GET_BUFFER_HANDLE, flags, &c);
    int ci = c.obj;
    int64_t off;
    uint8_t *sp = pick_server_ptr(f, in, &c.k.buf, &off);
    uint8_t *cp = sp;
    if (sp && sp != f->junk) {
        if (!f->delta_known[ci] || c.null_handle) {
            cp = f->junk;
            c.k.buf = CHAOS_MODEL_OTHER;
        } else {
            cp = (uint8_t *)((uintptr_t)sp + (uintptr_t)f->delta[ci]);
        }
    }
    c.k.offset = off;
    uint32_t h = 0xdeadbeef;
    MODEL_OR_SKIP(f, &c.k, &c.o);
    int rc = vdi_client_set_get_buffer_handle(c.cs, cp, c.null_out ? NULL : &h);
    if (rc == NOERROR && c.o.code == NOERROR && f->nhandles < MAX_HANDLES) {
        f->handles[f->nhandles] = h;
        f->handle_buf[f->nhandles++] = c.k.buf;
    } else if (rc != NOERROR && !c.null_out && h != 0) {
        fail(f, "a failed get_buffer_handle left *handle %u", h);
    }
    conclude(f, &c, rc);
}

static void op_vdi_client_set_map_buffer_handle(fz *f, fuzz_input *in, uint8_t flags) {
    fz_call c;
    client_call(f, in, "client map_buffer_handle", CM_C_MAP_BUFFER_HANDLE, flags, &c);
    int ci = c.obj;
    uint32_t h;
    int which = (int)fuzz_choice(in, (uint32_t)f->nhandles + 1);
    if (which < f->nhandles) {
        h = f->handles[which];
        c.k.buf = f->handle_buf[which];
    } else {
        h = fuzz_u32(in);
        c.k.buf = CHAOS_MODEL_OTHER;
        for (int i = 0; i < f->nhandles; i++)
            if (f->handles[i] == h)
                c.k.buf = f->handle_buf[i];
    }
    uint8_t *p = f->junk;
    MODEL_OR_SKIP(f, &c.k, &c.o);
    int rc = vdi_client_set_map_buffer_handle(c.cs, h, c.null_out ? NULL : &p);
    /* A freed buffer (addr NULL) may still have a live handle: no address to compare. */
    const uint8_t *sa = c.k.buf >= 0 ? f->bufs[c.k.buf].addr : NULL;
    uintptr_t want = (uintptr_t)sa + (uintptr_t)f->delta[ci];
    if (rc == NOERROR && sa && f->delta_known[ci] && !c.null_handle && (uintptr_t)p != want)
        fail(f, "map_buffer_handle gave %p, the client's address is %p", (void *)p, (void *)want);
    if (rc != NOERROR && !c.null_out && p != NULL)
        fail(f, "a failed map_buffer_handle left *buffer non-NULL");
    conclude(f, &c, rc);
}

/* The client device in the slot the input chose; NULL both when the flags pass a NULL device
 * (then the call goes ahead) and when the slot is empty (then the op is skipped). */
static vdi_client_device *client_device(fz *f, fuzz_input *in, fz_call *c) {
    int slot = (int)fuzz_choice(in, NSLOT);
    c->k.dev = c->null_handle ? CHAOS_MODEL_NULL : slot; /* a NULL device, not a NULL set */
    c->k.obj = c->obj;
    return c->null_handle ? NULL : f->cdev[c->obj][slot];
}

/* get_command's delivered command against the one the model says was sent. */
static void check_delivered(fz *f, int ci, int c, VDC_Command *vc) {
    const VDS_Command *sc = &f->cmds[c];
    char why[160];
    if (fuzz_check_delivered(c, sc, vc, &f->delta[ci], &f->delta_known[ci], why, sizeof why))
        fail(f, "%s", why);
    f->vdc[c] = vc;
    f->vdc_client[c] = ci;
}

static void op_vdi_client_device_get_command(fz *f, fuzz_input *in, uint8_t flags) {
    fz_call c;
    client_call(f, in, "client get_command", CM_C_GET_COMMAND, flags, &c);
    vdi_client_device *d = client_device(f, in, &c);
    if (!d && !c.null_handle)
        return;
    c.k.timeout = (long)fuzz_choice(in, 2);
    VDC_Command *vc = (VDC_Command *)f->junk;
    MODEL_OR_SKIP(f, &c.k, &c.o);
    int rc = vdi_client_device_get_command(d, c.k.timeout, c.null_out ? NULL : &vc);
    if (rc == NOERROR && c.o.code == NOERROR)
        check_delivered(f, c.obj, c.o.delivered, vc);
    else if (rc != NOERROR && !c.null_out && vc != NULL)
        fail(f, "a failed get_command left *cmd non-NULL");
    conclude(f, &c, rc);
}

static void op_vdi_client_device_complete_command(fz *f, fuzz_input *in, uint8_t flags) {
    fz_call c;
    client_call(f, in, "client complete_command", CM_C_COMPLETE_COMMAND, flags, &c);
    vdi_client_device *d = client_device(f, in, &c);
    if (!d && !c.null_handle)
        return;
    int which = (int)fuzz_choice(in, NCMD + 1);
    VDC_Command *vc = which < NCMD ? f->vdc[which] : NULL;
    if (!vc)
        vc = (VDC_Command *)f->junk;
    if (c.null_out)
        vc = NULL;
    /* The pointer names whichever command is delivered there now (8, 4). */
    c.k.cmd = vc ? CHAOS_MODEL_OTHER : CHAOS_MODEL_NULL;
    for (int i = 0; i < NCMD && vc && vc != (VDC_Command *)f->junk; i++)
        if (f->vdc[i] == vc && chaos_model_cmd_outstanding(f->m, i) && f->vdc_client[i] == c.obj)
            c.k.cmd = i;
    static const uint32_t codes[] = {ERROR_SUCCESS,           ERROR_SUCCESS,     ERROR_SUCCESS,
                                     ERROR_HANDLE_EOF,        ERROR_IO_DEVICE,   ERROR_DISK_FULL,
                                     ERROR_OPERATION_ABORTED, ERROR_END_OF_MEDIA};
    c.k.completion_code = FUZZ_PICK(in, codes);
    int32_t size = c.k.cmd >= 0 ? f->cmds[c.k.cmd].size : 0;
    uint32_t sz = size > 0 ? (uint32_t)size : 0;
    uint32_t bsel = fuzz_choice(in, 4);
    c.k.bytes = bsel == 0 ? sz : bsel == 1 ? 0 : bsel == 2 ? sz + 1 : sz / 2;
    c.k.position = fuzz_u16(in);
    MODEL_OR_SKIP(f, &c.k, &c.o);
    conclude(
        f, &c,
        vdi_client_device_complete_command(d, vc, c.k.completion_code, c.k.bytes, c.k.position));
}

/* ---- server ops --------------------------------------------------------------------------- */

static void op_vdi_server_set_open(fz *f, fuzz_input *in, uint8_t flags) {
    fz_call c;
    server_call(f, in, "server open", CM_S_OPEN, flags, &c);
    c.k.instance = pick_instance(f, in);
    c.k.name = pick_set_name(f, in);
    MODEL_OR_SKIP(f, &c.k, &c.o);
    conclude(f, &c, vdi_server_set_open(c.ss, c.k.instance, c.k.name));
}

static void op_vdi_server_set_get_configuration(fz *f, fuzz_input *in, uint8_t flags) {
    fz_call c;
    server_call(f, in, "server get_configuration", CM_S_GET_CONFIGURATION, flags, &c);
    c.k.cfg_null = c.null_out;
    VDConfig cfg;
    memset(&cfg, 0x5A, sizeof cfg);
    MODEL_OR_SKIP(f, &c.k, &c.o);
    int rc = vdi_server_set_get_configuration(c.ss, c.null_out ? NULL : &cfg);
    if (rc == NOERROR && c.o.code == NOERROR)
        check_cfg(f, &c.o, &cfg, "server get_configuration");
    conclude(f, &c, rc);
}

static void op_vdi_server_set_begin_configuration(fz *f, fuzz_input *in, uint8_t flags) {
    fz_call c;
    server_call(f, in, "server begin_configuration", CM_S_BEGIN_CONFIGURATION, flags, &c);
    static const uint32_t feat[] = {VDF_WriteMedia,
                                    VDF_ReadMedia,
                                    VDF_WriteMedia | VDF_CompleteEnabled,
                                    VDF_ReadMedia | VDF_CompleteEnabled,
                                    0,
                                    VDF_WriteMedia | VDF_ReadMedia,
                                    VDF_Removable};
    static const uint32_t bs[] = {512, 512, 4096, 65536, 1024, 0, 513, 131072};
    static const uint32_t mts[] = {65536, 65536, 131072, 0, 1000};
    c.k.features = FUZZ_PICK(in, feat);
    c.k.block_size = FUZZ_PICK(in, bs);
    uint32_t asel = fuzz_choice(in, 6);
    c.k.alignment = asel == 1   ? c.k.block_size
                    : asel == 2 ? 65536u
                    : asel == 3 ? 256u
                    : asel == 4 ? 3u
                                : 0u;
    c.k.max_transfer = FUZZ_PICK(in, mts);
    c.k.timeout = (long)fuzz_choice(in, 3) - 1;
    MODEL_OR_SKIP(f, &c.k, &c.o);
    conclude(f, &c,
             vdi_server_set_begin_configuration(c.ss, c.k.features, c.k.block_size, c.k.alignment,
                                                c.k.max_transfer, c.k.timeout));
}

static void op_vdi_server_set_request_buffers(fz *f, fuzz_input *in, uint8_t flags) {
    fz_call c;
    server_call(f, in, "server request_buffers", CM_S_REQUEST_BUFFERS, flags, &c);
    static const uint32_t counts[] = {1, 2, 4, 8, 0};
    c.k.size = FUZZ_PICK(in, server_sizes);
    c.k.alignment = FUZZ_PICK(in, server_aligns);
    c.k.count = FUZZ_PICK(in, counts);
    if (fuzz_u8(in) == 0xEE) { /* far beyond VDI_MAX_AREA: refused before any backing */
        c.k.size = 1u << 30;
        c.k.count = 4;
    }
    MODEL_OR_SKIP(f, &c.k, &c.o);
    conclude(f, &c, vdi_server_set_request_buffers(c.ss, c.k.size, c.k.alignment, c.k.count));
}

static void op_vdi_server_set_query_available_buffers(fz *f, fuzz_input *in, uint8_t flags) {
    fz_call c;
    server_call(f, in, "server query_available_buffers", CM_S_QUERY_AVAILABLE, flags, &c);
    c.k.size = FUZZ_PICK(in, server_sizes);
    c.k.alignment = FUZZ_PICK(in, server_aligns);
    uint32_t n = 0xdeadbeef;
    MODEL_OR_SKIP(f, &c.k, &c.o);
    int rc = vdi_server_set_query_available_buffers(c.ss, c.k.size, c.k.alignment,
                                                    c.null_out ? NULL : &n);
    if (rc == NOERROR && (n < c.o.avail_lo || n > c.o.avail_hi))
        fail(f, "query_available_buffers gave %u, outside [%u, %u]", n, c.o.avail_lo, c.o.avail_hi);
    if (rc != NOERROR && !c.null_out && n != 0)
        fail(f, "a failed query_available_buffers left *count %u", n);
    conclude(f, &c, rc);
}

static void op_vdi_server_set_end_configuration(fz *f, fuzz_input *in, uint8_t flags) {
    fz_call c;
    server_call(f, in, "server end_configuration", CM_S_END_CONFIGURATION, flags, &c);
    MODEL_OR_SKIP(f, &c.k, &c.o);
    conclude(f, &c, vdi_server_set_end_configuration(c.ss));
}

/* An agent the model says runs gets a thread of its own, and is joined when the model says
 * it returned; one that returns at once is called on this thread. */
static void op_vdi_server_set_execute_completion_agent(fz *f, fuzz_input *in, uint8_t flags) {
    fz_call c;
    server_call(f, in, "server execute_completion_agent", CM_S_EXECUTE_AGENT, flags, &c);
    int si = c.obj;
    MODEL_OR_SKIP(f, &c.k, &c.o);
    if (!c.o.agent_starts) {
        conclude(f, &c, vdi_server_set_execute_completion_agent(c.ss));
        return;
    }
    g_agent_args[si].f = f;
    g_agent_args[si].s = si;
    atomic_store(&f->agent_waiting[si], 0);
    if (pthread_create(&f->agent[si], NULL, agent_main, &g_agent_args[si]) != 0)
        abort();
    f->agent_started[si] = 1;
    await_agent_waiting(f, si);
    after_call(f, &c.o);
}

static void op_vdi_server_set_open_device(fz *f, fuzz_input *in, uint8_t flags) {
    fz_call c;
    server_call(f, in, "server open_device", CM_S_OPEN_DEVICE, flags, &c);
    c.k.name = pick_dev_name(f, in);
    vdi_server_device *d = (vdi_server_device *)f->junk;
    MODEL_OR_SKIP(f, &c.k, &c.o);
    int rc = vdi_server_set_open_device(c.ss, c.k.name, c.null_out ? NULL : &d);
    int slot = opened_slot(f, &c, rc, d);
    if (slot >= 0)
        f->sdev[c.obj][slot] = d;
    conclude(f, &c, rc);
}

static void op_vdi_server_set_allocate_buffer(fz *f, fuzz_input *in, uint8_t flags) {
    fz_call c;
    server_call(f, in, "server allocate_buffer", CM_S_ALLOCATE_BUFFER, flags, &c);
    c.k.size = FUZZ_PICK(in, server_sizes);
    c.k.alignment = FUZZ_PICK(in, server_aligns);
    if (fuzz_u8(in) == 0xEE)
        c.k.size = 0x80000001u;
    uint8_t *p = f->junk;
    MODEL_OR_SKIP(f, &c.k, &c.o);
    int rc = vdi_server_set_allocate_buffer(c.ss, c.null_out ? NULL : &p, c.k.size, c.k.alignment);
    /* Resolved before the buffer is noted: o.buf is the model's id for it. */
    resolve_or_fail(f, &c.k, &c.o, rc);
    if (rc == NOERROR) {
        if (c.o.buf < 0 || c.o.buf >= CHAOS_MODEL_MAX_BUFS)
            fail(f, "allocate_buffer: the model kept no buffer id");
        f->bufs[c.o.buf].addr = p;
        f->bufs[c.o.buf].size = c.k.size;
        f->bufs[c.o.buf].server = c.obj;
        memset(p, (int)(0x40 + c.o.buf % 64), c.k.size); /* the bytes the client must see */
    } else if (!c.null_out && p != NULL) {
        fail(f, "a failed allocate_buffer left *buffer non-NULL");
    }
    after_call(f, &c.o);
}

static void op_vdi_server_set_free_buffer(fz *f, fuzz_input *in, uint8_t flags) {
    fz_call c;
    server_call(f, in, "server free_buffer", CM_S_FREE_BUFFER, flags, &c);
    uint8_t *p = pick_server_ptr(f, in, &c.k.buf, &c.k.offset);
    uint32_t ssel = fuzz_choice(in, 4);
    uint32_t bsize = c.k.buf >= 0 ? f->bufs[c.k.buf].size : 4096;
    c.k.size = ssel == 1 ? bsize + 1 : ssel == 2 ? 0 : bsize;
    MODEL_OR_SKIP(f, &c.k, &c.o);
    conclude(f, &c, vdi_server_set_free_buffer(c.ss, p, c.k.size));
}

/* Answers a boolean, not a code: compared here, no resolve. */
static void op_vdi_server_set_is_shared_buffer(fz *f, fuzz_input *in, uint8_t flags) {
    fz_call c;
    server_call(f, in, "server is_shared_buffer", CM_S_IS_SHARED_BUFFER, flags, &c);
    uint8_t *p = pick_server_ptr(f, in, &c.k.buf, &c.k.offset);
    MODEL_OR_SKIP(f, &c.k, &c.o);
    int r = vdi_server_set_is_shared_buffer(c.ss, p);
    if (r != c.o.is_shared && r != c.o.alt_is_shared)
        fail(f, "is_shared_buffer gave %d, expected %d", r, c.o.is_shared);
    after_call(f, &c.o);
}

static void op_vdi_server_set_signal_abort(fz *f, fuzz_input *in, uint8_t flags) {
    fz_call c;
    server_call(f, in, "server signal_abort", CM_S_SIGNAL_ABORT, flags, &c);
    MODEL_OR_SKIP(f, &c.k, &c.o);
    conclude(f, &c, vdi_server_set_signal_abort(c.ss));
}

static void op_vdi_server_set_close(fz *f, fuzz_input *in, uint8_t flags) {
    fz_call c;
    server_call(f, in, "server close", CM_S_CLOSE, flags, &c);
    MODEL_OR_SKIP(f, &c.k, &c.o);
    int rc = vdi_server_set_close(c.ss);
    if (!c.null_handle && rc == c.o.code) {
        memset(f->sdev[c.obj], 0, sizeof f->sdev[c.obj]);
        for (int i = 0; i < CHAOS_MODEL_MAX_BUFS; i++)
            if (f->bufs[i].server == c.obj)
                f->bufs[i].addr = NULL;
    }
    conclude(f, &c, rc);
}

/* The server device in the slot the input chose, as client_device. */
static vdi_server_device *server_device(fz *f, fuzz_input *in, fz_call *c, int *slot) {
    *slot = (int)fuzz_choice(in, NSLOT);
    c->k.dev = c->null_handle ? CHAOS_MODEL_NULL : *slot;
    c->k.obj = c->obj;
    return c->null_handle ? NULL : f->sdev[c->obj][*slot];
}

/* send_command, times times with consecutive commands of the pool (the flood op: 64). */
static void send_commands(fz *f, fuzz_input *in, const char *label, uint8_t flags, int times) {
    fz_call c;
    server_call(f, in, label, CM_S_SEND_COMMAND, flags, &c);
    int si = c.obj, slot;
    vdi_server_device *d = server_device(f, in, &c, &slot);
    if (!d && !c.null_handle)
        return;
    int first = (int)fuzz_choice(in, NCMD);
    static const int32_t codes[] = {VDC_Write,      VDC_Write, VDC_Write, VDC_Read, VDC_ClearError,
                                    VDC_WriteMark,  VDC_Flush, 0,         20,       999,
                                    VDC_GetPosition};
    c.k.command_code = FUZZ_PICK(in, codes);
    uint32_t zsel = fuzz_choice(in, 6);
    int64_t off = 0;
    uint8_t *bp = pick_server_ptr(f, in, &c.k.cmd_buf, &off);
    if (bp == f->junk || (bp && c.k.cmd_buf == CHAOS_MODEL_OTHER))
        c.k.cmd_buf = CHAOS_MODEL_OTHER;
    c.k.cmd_offset = off;
    uint32_t room = c.k.cmd_buf >= 0 ? f->bufs[c.k.cmd_buf].size - (uint32_t)off : 4096;
    c.k.command_size = zsel == 0   ? (int32_t)room
                       : zsel == 1 ? 1
                       : zsel == 2 ? 0
                       : zsel == 3 ? (int32_t)room + 1
                       : zsel == 4 ? 131073
                                   : 512;
    c.k.in_position = fuzz_u16(in);
    c.k.routine_null = c.null_out;
    for (int t = 0; t < times; t++) {
        c.k.cmd = (first + t) % NCMD;
        VDS_Command *vc = &f->cmds[c.k.cmd];
        if (!chaos_model_cmd_outstanding(f->m, c.k.cmd)) {
            /* Only a command not in flight is the harness's to fill. */
            vc->commandCode = c.k.command_code;
            vc->size = c.k.command_size;
            vc->inPosition = c.k.in_position;
            vc->buffer = bp;
            vc->completionRoutine = c.k.routine_null ? NULL : routine;
            vc->completionContext = f;
        }
        MODEL_OR_SKIP(f, &c.k, &c.o);
        if (chaos_model_agent_running(f->m, si))
            await_agent_waiting(f, si);
        int rc = vdi_server_device_send_command(d, vc);
        if (rc == NOERROR) {
            f->cmd_slot[c.k.cmd] = slot;
            f->vdc[c.k.cmd] = NULL; /* its old view may be another command's by now */
        }
        conclude(f, &c, rc);
    }
}

static void op_vdi_server_device_send_command(fz *f, fuzz_input *in, uint8_t flags) {
    send_commands(f, in, "server send_command", flags, 1);
}

/* Not a call of its own: 64 sends in a row reach the queue-full row. */
static void op_send_flood(fz *f, fuzz_input *in, uint8_t flags) {
    send_commands(f, in, "server send_command x64", flags, 64);
}

static void op_vdi_server_device_close(fz *f, fuzz_input *in, uint8_t flags) {
    fz_call c;
    server_call(f, in, "server close_device", CM_S_CLOSE_DEVICE, flags, &c);
    int slot;
    vdi_server_device *d = server_device(f, in, &c, &slot);
    if (!d && !c.null_handle)
        return;
    MODEL_OR_SKIP(f, &c.k, &c.o);
    conclude(f, &c, vdi_server_device_close(d));
}

/* ---- the dispatch: op byte -> op ----------------------------------------------------------- */

/* Every VDI_CALL of vdi_api.def is an op, at its place in the list: a call added there
 * without its op_<fn> here fails the build. */
static void (*const ops[FZ_OP_COUNT])(fz *f, fuzz_input *in, uint8_t flags) = {
#define VDI_CALL(fn, op, ret, params) [FZ_##op] = op_##fn,
#include "vdi_api.def"
    [FZ_SEND_FLOOD] = op_send_flood,
};

/* Every input ends the same way: both servers close (their agents drain and are joined),
 * then the clients; all through the model. */
static void finish(fz *f) {
    static const uint8_t closing[] = {FZ_S_CLOSE, 0x00, 0x00, FZ_S_CLOSE, 0x00, 0xff,
                                      FZ_C_CLOSE, 0x00, 0x00, FZ_C_CLOSE, 0x00, 0x01};
    for (size_t i = 0; i < sizeof closing; i += 3) {
        fuzz_input in;
        fuzz_input_init(&in, closing + i + 2, 1);
        f->op_index = -1;
        ops[closing[i]](f, &in, closing[i + 1]);
    }
    for (int s = 0; s < NSERVER; s++)
        if (f->agent_started[s])
            fail(f, "agent %d still running after every close", s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const vdi_seams seams_template = {0};
    static int swept; /* the sets that runs of this target which crashed left behind */
    if (!swept) {
        swept = 1;
        (void)vdi_seam_reclaim_dead("fuzz-api-");
    }
    fz *f = calloc(1, sizeof *f);
    if (!f)
        return 0;
    snprintf(f->set_name, sizeof f->set_name, "fuzz-api-%ld", (long)getpid());
    snprintf(f->other_name, sizeof f->other_name, "fuzz-api-%ld-other", (long)getpid());
    memset(f->long_name, 'n', VDI_MAX_NAME + 1);
    f->m = chaos_model_new();
    f->trace = getenv("FUZZ_API_TRACE") != NULL;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    for (int i = 0; i < NCLIENT; i++)
        f->client[i] = vdi_client_set_new();
    for (int i = 0; i < NSERVER; i++)
        f->server[i] = vdi_server_set_new();
    for (int c = 0; c < NCMD; c++)
        f->vdc_client[c] = -1;
    vdi_seams seams = seams_template;
    seams.ctx = f;
    seams.wait = fz_wait;
    seams.wake = fz_wake;
    vdi_seams_install(&seams);

    fuzz_input in;
    fuzz_input_init(&in, data, size);
    for (int i = 0; i < MAX_OPS && !fuzz_exhausted(&in); i++) {
        int op = (int)fuzz_choice(&in, FZ_OP_COUNT);
        uint8_t flags = fuzz_u8(&in);
        f->op_index = i;
        ops[op](f, &in, flags);
    }
    finish(f);

    for (int i = 0; i < NCLIENT; i++)
        vdi_client_set_free(f->client[i]);
    for (int i = 0; i < NSERVER; i++)
        vdi_server_set_free(f->server[i]);
    vdi_seams_install(NULL);
    chaos_model_free(f->m);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f);
    return 0;
}
