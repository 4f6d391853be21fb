/* fuzz_api: sequences of calls on both sides of VDI sets in one process, every return code,
 * callback and returned field checked against the executable model (chaos/model). The
 * input is a list of ops (fuzz/fuzz_api.dict names them); the main thread makes every call,
 * and the completion agent runs on a thread of its own, so only timing-independent results
 * are compared: after each op the target waits until the callbacks the model predicts have
 * run (and joins an agent the model says returned). Blocking calls use timeouts of 0 or 1 ms;
 * the watchdog is off (serverTimeOut 0). A mismatch aborts with the op index and codes. */
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

enum fz_op {
    OP_C_CREATE,
    OP_C_GET_CONFIG,
    OP_C_OPEN_DEVICE,
    OP_C_CLOSE,
    OP_C_ABORT,
    OP_C_SECONDARY,
    OP_C_GET_HANDLE,
    OP_C_MAP_HANDLE,
    OP_C_GET_COMMAND,
    OP_C_COMPLETE,
    OP_S_OPEN,
    OP_S_GET_CONFIG,
    OP_S_BEGIN,
    OP_S_REQUEST,
    OP_S_QUERY,
    OP_S_END,
    OP_S_AGENT,
    OP_S_OPEN_DEVICE,
    OP_S_ALLOCATE,
    OP_S_FREE,
    OP_S_IS_SHARED,
    OP_S_ABORT,
    OP_S_CLOSE,
    OP_S_SEND,
    OP_S_CLOSE_DEVICE,
    OP_S_FLOOD, /* 64 sends in a row, for the queue-full row */
    OP_COUNT
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

static void op_client(fz *f, int op, fuzz_input *in, uint8_t flags) {
    chaos_model_call k;
    chaos_model_outcome o;
    memset(&k, 0, sizeof k);
    int ci = (int)fuzz_choice(in, NCLIENT);
    int null_handle = (flags & 0x0f) == 0x0f, null_out = (flags & 0xf0) == 0xf0;
    vdi_client_set *cs = null_handle ? NULL : f->client[ci];
    k.obj = null_handle ? CHAOS_MODEL_NULL : ci;
    k.out_null = null_out;
    int rc;
    switch (op) {
    case OP_C_CREATE: {
        k.op = CM_C_CREATE_EX;
        k.instance = pick_instance(f, in);
        k.name = pick_set_name(f, in);
        static const uint32_t ndev[] = {1, 1, 2, 2, 3, 4, 0, 65};
        static const uint32_t feat[] = {
            0, VDF_RequestComplete, VDF_LikeTape, VDF_LikeDisk, VDF_WriteMedia, 0x4000};
        static const uint32_t align[] = {0, 0, 512, 4096, 65536, 3, 131072, 8192};
        static const uint32_t prefix[] = {0, 0, 64, 512, 65537, 4096};
        k.cfg.deviceCount = FUZZ_PICK(in, ndev);
        k.cfg.features = FUZZ_PICK(in, feat);
        k.cfg.alignment = FUZZ_PICK(in, align);
        k.cfg.prefixZoneSize = FUZZ_PICK(in, prefix);
        k.cfg.blockSize = fuzz_u8(in); /* ignored by create (8.6) */
        k.cfg_null = null_out;
        VDConfig cfg = k.cfg;
        MODEL_OR_SKIP(f, &k, &o);
        rc = vdi_client_set_create_ex(cs, k.instance, k.name, null_out ? NULL : &cfg);
        if (rc == NOERROR && o.code == NOERROR)
            f->prefix = k.cfg.prefixZoneSize;
        break;
    }
    case OP_C_GET_CONFIG: {
        k.op = CM_C_GET_CONFIGURATION;
        k.timeout = (long)fuzz_choice(in, 2);
        k.cfg_null = null_out;
        VDConfig cfg;
        memset(&cfg, 0xA5, sizeof cfg);
        VDConfig before = cfg;
        MODEL_OR_SKIP(f, &k, &o);
        rc = vdi_client_set_get_configuration(cs, k.timeout, null_out ? NULL : &cfg);
        if (rc == NOERROR && o.code == NOERROR)
            check_cfg(f, &o, &cfg, "client get_configuration");
        else if (rc != NOERROR && memcmp(&cfg, &before, sizeof cfg) != 0)
            fail(f, "a failed get_configuration changed *cfg (8.1)");
        break;
    }
    case OP_C_OPEN_DEVICE: {
        k.op = CM_C_OPEN_DEVICE;
        k.name = pick_dev_name(f, in);
        vdi_client_device *d = (vdi_client_device *)f->junk;
        MODEL_OR_SKIP(f, &k, &o);
        rc = vdi_client_set_open_device(cs, k.name, null_out ? NULL : &d);
        if (rc == NOERROR && o.code == NOERROR && o.slot >= 0 && o.slot < NSLOT)
            f->cdev[ci][o.slot] = d;
        else if (rc != NOERROR && !null_out && d != NULL)
            fail(f, "a failed open_device left *out non-NULL");
        break;
    }
    case OP_C_CLOSE:
        k.op = CM_C_CLOSE;
        MODEL_OR_SKIP(f, &k, &o);
        rc = vdi_client_set_close(cs);
        if (!null_handle && o.code == rc) {
            memset(f->cdev[ci], 0, sizeof f->cdev[ci]);
            f->delta_known[ci] = 0;
            for (int c = 0; c < NCMD; c++)
                if (f->vdc_client[c] == ci)
                    f->vdc[c] = NULL;
        }
        break;
    case OP_C_ABORT:
        k.op = CM_C_SIGNAL_ABORT;
        MODEL_OR_SKIP(f, &k, &o);
        rc = vdi_client_set_signal_abort(cs);
        break;
    case OP_C_SECONDARY:
        k.op = CM_C_OPEN_IN_SECONDARY;
        k.instance = pick_instance(f, in);
        k.name = pick_set_name(f, in);
        MODEL_OR_SKIP(f, &k, &o);
        rc = vdi_client_set_open_in_secondary_ex(cs, k.instance, k.name);
        break;
    case OP_C_GET_HANDLE: {
        k.op = CM_C_GET_BUFFER_HANDLE;
        int64_t off;
        uint8_t *sp = pick_server_ptr(f, in, &k.buf, &off);
        uint8_t *cp = sp;
        if (sp && sp != f->junk) {
            if (!f->delta_known[ci] || null_handle) {
                cp = f->junk;
                k.buf = CHAOS_MODEL_OTHER;
            } else {
                cp = (uint8_t *)((uintptr_t)sp + (uintptr_t)f->delta[ci]);
            }
        }
        k.offset = off;
        uint32_t h = 0xdeadbeef;
        MODEL_OR_SKIP(f, &k, &o);
        rc = vdi_client_set_get_buffer_handle(cs, cp, null_out ? NULL : &h);
        if (rc == NOERROR && o.code == NOERROR && f->nhandles < MAX_HANDLES) {
            f->handles[f->nhandles] = h;
            f->handle_buf[f->nhandles++] = k.buf;
        } else if (rc != NOERROR && !null_out && h != 0) {
            fail(f, "a failed get_buffer_handle left *handle %u", h);
        }
        break;
    }
    case OP_C_MAP_HANDLE: {
        k.op = CM_C_MAP_BUFFER_HANDLE;
        uint32_t h;
        int which = (int)fuzz_choice(in, (uint32_t)f->nhandles + 1);
        if (which < f->nhandles) {
            h = f->handles[which];
            k.buf = f->handle_buf[which];
        } else {
            h = fuzz_u32(in);
            k.buf = CHAOS_MODEL_OTHER;
            for (int i = 0; i < f->nhandles; i++)
                if (f->handles[i] == h)
                    k.buf = f->handle_buf[i];
        }
        uint8_t *p = f->junk;
        MODEL_OR_SKIP(f, &k, &o);
        rc = vdi_client_set_map_buffer_handle(cs, h, null_out ? NULL : &p);
        /* A freed buffer (addr NULL) may still have a live handle: no address to compare. */
        const uint8_t *sa = k.buf >= 0 ? f->bufs[k.buf].addr : NULL;
        uintptr_t want = (uintptr_t)sa + (uintptr_t)f->delta[ci];
        if (rc == NOERROR && sa && f->delta_known[ci] && !null_handle && (uintptr_t)p != want)
            fail(f, "map_buffer_handle gave %p, the client's address is %p", (void *)p,
                 (void *)want);
        if (rc != NOERROR && !null_out && p != NULL)
            fail(f, "a failed map_buffer_handle left *buffer non-NULL");
        break;
    }
    case OP_C_GET_COMMAND: {
        k.op = CM_C_GET_COMMAND;
        int slot = (int)fuzz_choice(in, NSLOT);
        vdi_client_device *d = null_handle ? NULL : f->cdev[ci][slot];
        if (!d && !null_handle)
            return;
        k.dev = null_handle ? CHAOS_MODEL_NULL : slot; /* a NULL device, not a NULL set */
        k.obj = ci;
        k.timeout = (long)fuzz_choice(in, 2);
        VDC_Command *vc = (VDC_Command *)f->junk;
        MODEL_OR_SKIP(f, &k, &o);
        rc = vdi_client_device_get_command(d, k.timeout, null_out ? NULL : &vc);
        if (rc == NOERROR && o.code == NOERROR) {
            int c = o.delivered;
            const VDS_Command *sc = &f->cmds[c];
            if (vc->commandCode != sc->commandCode || vc->size != sc->size ||
                vc->position != sc->inPosition)
                fail(f, "command %d delivered as code %d size %d position %lld, sent %d %d %lld", c,
                     vc->commandCode, vc->size, (long long)vc->position, sc->commandCode, sc->size,
                     (long long)sc->inPosition);
            if (!sc->buffer != !vc->buffer)
                fail(f, "command %d: buffer %p delivered as %p", c, (void *)sc->buffer,
                     (void *)vc->buffer);
            if (sc->buffer) {
                intptr_t delta = vc->buffer - sc->buffer;
                if (f->delta_known[ci] && delta != f->delta[ci])
                    fail(f, "command %d: the client's mapping moved", c);
                f->delta[ci] = delta;
                f->delta_known[ci] = 1;
                size_t n = sc->commandCode <= VDC_Write ? (size_t)sc->size : 1;
                if (memcmp(vc->buffer, sc->buffer, n) != 0)
                    fail(f, "command %d: the client sees other bytes than the server", c);
            }
            f->vdc[c] = vc;
            f->vdc_client[c] = ci;
        } else if (rc != NOERROR && !null_out && vc != NULL) {
            fail(f, "a failed get_command left *cmd non-NULL");
        }
        break;
    }
    case OP_C_COMPLETE: {
        k.op = CM_C_COMPLETE_COMMAND;
        int slot = (int)fuzz_choice(in, NSLOT);
        vdi_client_device *d = null_handle ? NULL : f->cdev[ci][slot];
        if (!d && !null_handle)
            return;
        k.dev = null_handle ? CHAOS_MODEL_NULL : slot; /* a NULL device, not a NULL set */
        k.obj = ci;
        int which = (int)fuzz_choice(in, NCMD + 1);
        VDC_Command *vc = which < NCMD ? f->vdc[which] : NULL;
        if (!vc)
            vc = (VDC_Command *)f->junk;
        if (null_out)
            vc = NULL;
        /* The pointer names whichever command is delivered there now (8, 4). */
        k.cmd = vc ? CHAOS_MODEL_OTHER : CHAOS_MODEL_NULL;
        for (int c = 0; c < NCMD && vc && vc != (VDC_Command *)f->junk; c++)
            if (f->vdc[c] == vc && chaos_model_cmd_outstanding(f->m, c) && f->vdc_client[c] == ci)
                k.cmd = c;
        static const uint32_t codes[] = {
            ERROR_SUCCESS,   ERROR_SUCCESS,   ERROR_SUCCESS,           ERROR_HANDLE_EOF,
            ERROR_IO_DEVICE, ERROR_DISK_FULL, ERROR_OPERATION_ABORTED, ERROR_END_OF_MEDIA};
        k.completion_code = FUZZ_PICK(in, codes);
        int32_t size = k.cmd >= 0 ? f->cmds[k.cmd].size : 0;
        uint32_t sz = size > 0 ? (uint32_t)size : 0;
        uint32_t bsel = fuzz_choice(in, 4);
        k.bytes = bsel == 0 ? sz : bsel == 1 ? 0 : bsel == 2 ? sz + 1 : sz / 2;
        k.position = fuzz_u16(in);
        MODEL_OR_SKIP(f, &k, &o);
        rc = vdi_client_device_complete_command(d, vc, k.completion_code, k.bytes, k.position);
        break;
    }
    default:
        return;
    }
    resolve_or_fail(f, &k, &o, rc);
    after_call(f, &o);
}

static void op_server(fz *f, int op, fuzz_input *in, uint8_t flags) {
    chaos_model_call k;
    chaos_model_outcome o;
    memset(&k, 0, sizeof k);
    int si = (int)(fuzz_u8(in) >= 240); /* the second server object, now and then */
    int null_handle = (flags & 0x0f) == 0x0f, null_out = (flags & 0xf0) == 0xf0;
    vdi_server_set *ss = null_handle ? NULL : f->server[si];
    k.obj = null_handle ? CHAOS_MODEL_NULL : si;
    k.out_null = null_out;
    if (chaos_model_agent_running(f->m, si))
        await_agent_waiting(f, si);
    static const uint32_t sizes[] = {4096, 65536, 512, 1, 100000, 0, 3000, 8192};
    static const uint32_t aligns[] = {0, 0, 512, 4096, 65536, 3};
    int rc;
    switch (op) {
    case OP_S_OPEN:
        k.op = CM_S_OPEN;
        k.instance = pick_instance(f, in);
        k.name = pick_set_name(f, in);
        MODEL_OR_SKIP(f, &k, &o);
        rc = vdi_server_set_open(ss, k.instance, k.name);
        break;
    case OP_S_GET_CONFIG: {
        k.op = CM_S_GET_CONFIGURATION;
        k.cfg_null = null_out;
        VDConfig cfg;
        memset(&cfg, 0x5A, sizeof cfg);
        MODEL_OR_SKIP(f, &k, &o);
        rc = vdi_server_set_get_configuration(ss, null_out ? NULL : &cfg);
        if (rc == NOERROR && o.code == NOERROR) {
            check_cfg(f, &o, &cfg, "server get_configuration");
        }
        break;
    }
    case OP_S_BEGIN: {
        k.op = CM_S_BEGIN_CONFIGURATION;
        static const uint32_t feat[] = {VDF_WriteMedia,
                                        VDF_ReadMedia,
                                        VDF_WriteMedia | VDF_CompleteEnabled,
                                        VDF_ReadMedia | VDF_CompleteEnabled,
                                        0,
                                        VDF_WriteMedia | VDF_ReadMedia,
                                        VDF_Removable};
        static const uint32_t bs[] = {512, 512, 4096, 65536, 1024, 0, 513, 131072};
        static const uint32_t mts[] = {65536, 65536, 131072, 0, 1000};
        k.features = FUZZ_PICK(in, feat);
        k.block_size = FUZZ_PICK(in, bs);
        uint32_t asel = fuzz_choice(in, 6);
        k.alignment = asel == 1   ? k.block_size
                      : asel == 2 ? 65536u
                      : asel == 3 ? 256u
                      : asel == 4 ? 3u
                                  : 0u;
        k.max_transfer = FUZZ_PICK(in, mts);
        k.timeout = (long)fuzz_choice(in, 3) - 1;
        MODEL_OR_SKIP(f, &k, &o);
        rc = vdi_server_set_begin_configuration(ss, k.features, k.block_size, k.alignment,
                                                k.max_transfer, k.timeout);
        break;
    }
    case OP_S_REQUEST: {
        k.op = CM_S_REQUEST_BUFFERS;
        static const uint32_t counts[] = {1, 2, 4, 8, 0};
        k.size = FUZZ_PICK(in, sizes);
        k.alignment = FUZZ_PICK(in, aligns);
        k.count = FUZZ_PICK(in, counts);
        if (fuzz_u8(in) == 0xEE) { /* far beyond VDI_MAX_AREA: refused before any backing */
            k.size = 1u << 30;
            k.count = 4;
        }
        MODEL_OR_SKIP(f, &k, &o);
        rc = vdi_server_set_request_buffers(ss, k.size, k.alignment, k.count);
        break;
    }
    case OP_S_QUERY: {
        k.op = CM_S_QUERY_AVAILABLE;
        k.size = FUZZ_PICK(in, sizes);
        k.alignment = FUZZ_PICK(in, aligns);
        uint32_t n = 0xdeadbeef;
        MODEL_OR_SKIP(f, &k, &o);
        rc = vdi_server_set_query_available_buffers(ss, k.size, k.alignment, null_out ? NULL : &n);
        if (rc == NOERROR && (n < o.avail_lo || n > o.avail_hi))
            fail(f, "query_available_buffers gave %u, outside [%u, %u]", n, o.avail_lo, o.avail_hi);
        if (rc != NOERROR && !null_out && n != 0)
            fail(f, "a failed query_available_buffers left *count %u", n);
        break;
    }
    case OP_S_END:
        k.op = CM_S_END_CONFIGURATION;
        MODEL_OR_SKIP(f, &k, &o);
        rc = vdi_server_set_end_configuration(ss);
        break;
    case OP_S_AGENT:
        k.op = CM_S_EXECUTE_AGENT;
        MODEL_OR_SKIP(f, &k, &o);
        if (o.agent_starts) {
            g_agent_args[si].f = f;
            g_agent_args[si].s = si;
            atomic_store(&f->agent_waiting[si], 0);
            if (pthread_create(&f->agent[si], NULL, agent_main, &g_agent_args[si]) != 0)
                abort();
            f->agent_started[si] = 1;
            await_agent_waiting(f, si);
            after_call(f, &o);
            return;
        }
        rc = vdi_server_set_execute_completion_agent(ss);
        break;
    case OP_S_OPEN_DEVICE: {
        k.op = CM_S_OPEN_DEVICE;
        k.name = pick_dev_name(f, in);
        vdi_server_device *d = (vdi_server_device *)f->junk;
        MODEL_OR_SKIP(f, &k, &o);
        rc = vdi_server_set_open_device(ss, k.name, null_out ? NULL : &d);
        if (rc == NOERROR && o.code == NOERROR && o.slot >= 0 && o.slot < NSLOT)
            f->sdev[si][o.slot] = d;
        else if (rc != NOERROR && !null_out && d != NULL)
            fail(f, "a failed open_device left *out non-NULL");
        break;
    }
    case OP_S_ALLOCATE: {
        k.op = CM_S_ALLOCATE_BUFFER;
        k.size = FUZZ_PICK(in, sizes);
        k.alignment = FUZZ_PICK(in, aligns);
        if (fuzz_u8(in) == 0xEE)
            k.size = 0x80000001u;
        uint8_t *p = f->junk;
        MODEL_OR_SKIP(f, &k, &o);
        rc = vdi_server_set_allocate_buffer(ss, null_out ? NULL : &p, k.size, k.alignment);
        resolve_or_fail(f, &k, &o, rc);
        if (rc == NOERROR) {
            if (o.buf < 0 || o.buf >= CHAOS_MODEL_MAX_BUFS)
                fail(f, "allocate_buffer: the model kept no buffer id");
            f->bufs[o.buf].addr = p;
            f->bufs[o.buf].size = k.size;
            f->bufs[o.buf].server = si;
            memset(p, (int)(0x40 + o.buf % 64), k.size); /* the bytes the client must see */
        } else if (!null_out && p != NULL) {
            fail(f, "a failed allocate_buffer left *buffer non-NULL");
        }
        after_call(f, &o);
        return;
    }
    case OP_S_FREE: {
        k.op = CM_S_FREE_BUFFER;
        uint8_t *p = pick_server_ptr(f, in, &k.buf, &k.offset);
        uint32_t ssel = fuzz_choice(in, 4);
        uint32_t bsize = k.buf >= 0 ? f->bufs[k.buf].size : 4096;
        k.size = ssel == 1 ? bsize + 1 : ssel == 2 ? 0 : bsize;
        MODEL_OR_SKIP(f, &k, &o);
        rc = vdi_server_set_free_buffer(ss, p, k.size);
        break;
    }
    case OP_S_IS_SHARED: {
        k.op = CM_S_IS_SHARED_BUFFER;
        uint8_t *p = pick_server_ptr(f, in, &k.buf, &k.offset);
        MODEL_OR_SKIP(f, &k, &o);
        int r = vdi_server_set_is_shared_buffer(ss, p);
        if (r != o.is_shared && r != o.alt_is_shared)
            fail(f, "is_shared_buffer gave %d, expected %d", r, o.is_shared);
        after_call(f, &o);
        return;
    }
    case OP_S_ABORT:
        k.op = CM_S_SIGNAL_ABORT;
        MODEL_OR_SKIP(f, &k, &o);
        rc = vdi_server_set_signal_abort(ss);
        break;
    case OP_S_CLOSE:
        k.op = CM_S_CLOSE;
        MODEL_OR_SKIP(f, &k, &o);
        rc = vdi_server_set_close(ss);
        if (!null_handle && rc == o.code) {
            memset(f->sdev[si], 0, sizeof f->sdev[si]);
            for (int i = 0; i < CHAOS_MODEL_MAX_BUFS; i++)
                if (f->bufs[i].server == si)
                    f->bufs[i].addr = NULL;
        }
        break;
    case OP_S_SEND:
    case OP_S_FLOOD: {
        k.op = CM_S_SEND_COMMAND;
        int slot = (int)fuzz_choice(in, NSLOT);
        vdi_server_device *d = f->sdev[si][slot];
        if (!d && !null_handle)
            return;
        k.dev = null_handle ? CHAOS_MODEL_NULL : slot;
        k.obj = si;
        int c = (int)fuzz_choice(in, NCMD);
        static const int32_t codes[] = {
            VDC_Write, VDC_Write, VDC_Write, VDC_Read, VDC_ClearError, VDC_WriteMark,
            VDC_Flush, 0,         20,        999,      VDC_GetPosition};
        k.command_code = FUZZ_PICK(in, codes);
        uint32_t zsel = fuzz_choice(in, 6);
        int64_t off = 0;
        uint8_t *bp = pick_server_ptr(f, in, &k.cmd_buf, &off);
        if (bp == f->junk || (bp && k.cmd_buf == CHAOS_MODEL_OTHER))
            k.cmd_buf = CHAOS_MODEL_OTHER;
        k.cmd_offset = off;
        uint32_t room = k.cmd_buf >= 0 ? f->bufs[k.cmd_buf].size - (uint32_t)off : 4096;
        k.command_size = zsel == 0   ? (int32_t)room
                         : zsel == 1 ? 1
                         : zsel == 2 ? 0
                         : zsel == 3 ? (int32_t)room + 1
                         : zsel == 4 ? 131073
                                     : 512;
        k.in_position = fuzz_u16(in);
        k.routine_null = (flags & 0xf0) == 0xf0;
        int times = op == OP_S_FLOOD ? 64 : 1;
        for (int t = 0; t < times; t++) {
            k.cmd = (c + t) % NCMD;
            VDS_Command *vc = &f->cmds[k.cmd];
            if (!chaos_model_cmd_outstanding(f->m, k.cmd)) {
                /* Only a command not in flight is the harness's to fill. */
                vc->commandCode = k.command_code;
                vc->size = k.command_size;
                vc->inPosition = k.in_position;
                vc->buffer = bp;
                vc->completionRoutine = k.routine_null ? NULL : routine;
                vc->completionContext = f;
            }
            chaos_model_step(f->m, &k, &o);
            if (o.unmodelled || o.blocks)
                return;
            if (chaos_model_agent_running(f->m, si))
                await_agent_waiting(f, si);
            rc = vdi_server_device_send_command(null_handle ? NULL : d, vc);
            if (rc == NOERROR) {
                f->cmd_slot[k.cmd] = slot;
                f->vdc[k.cmd] = NULL; /* its old view may be another command's by now */
            }
            resolve_or_fail(f, &k, &o, rc);
            after_call(f, &o);
        }
        return;
    }
    case OP_S_CLOSE_DEVICE: {
        k.op = CM_S_CLOSE_DEVICE;
        int slot = (int)fuzz_choice(in, NSLOT);
        vdi_server_device *d = f->sdev[si][slot];
        if (!d && !null_handle)
            return;
        k.dev = null_handle ? CHAOS_MODEL_NULL : slot;
        k.obj = si;
        MODEL_OR_SKIP(f, &k, &o);
        rc = vdi_server_device_close(null_handle ? NULL : d);
        break;
    }
    default:
        return;
    }
    resolve_or_fail(f, &k, &o, rc);
    after_call(f, &o);
}

static const char *const op_names[OP_COUNT] = {
    "client create",
    "client get_configuration",
    "client open_device",
    "client close",
    "client signal_abort",
    "client open_in_secondary",
    "client get_buffer_handle",
    "client map_buffer_handle",
    "client get_command",
    "client complete_command",
    "server open",
    "server get_configuration",
    "server begin_configuration",
    "server request_buffers",
    "server query_available_buffers",
    "server end_configuration",
    "server execute_completion_agent",
    "server open_device",
    "server allocate_buffer",
    "server free_buffer",
    "server is_shared_buffer",
    "server signal_abort",
    "server close",
    "server send_command",
    "server close_device",
    "server send_command x64",
};

/* Every input ends the same way: both servers close (their agents drain and are joined),
 * then the clients; all through the model. */
static void finish(fz *f) {
    static const uint8_t closing[] = {OP_S_CLOSE, 0x00, 0x00, OP_S_CLOSE, 0x00, 0xff,
                                      OP_C_CLOSE, 0x00, 0x00, OP_C_CLOSE, 0x00, 0x01};
    for (size_t i = 0; i < sizeof closing; i += 3) {
        fuzz_input in;
        fuzz_input_init(&in, closing + i + 2, 1);
        f->op_index = -1;
        f->op_name = op_names[closing[i]];
        if (closing[i] < OP_S_OPEN)
            op_client(f, closing[i], &in, closing[i + 1]);
        else
            op_server(f, closing[i], &in, closing[i + 1]);
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
        int op = (int)fuzz_choice(&in, OP_COUNT);
        uint8_t flags = fuzz_u8(&in);
        f->op_index = i;
        f->op_name = op_names[op];
        if (op < OP_S_OPEN)
            op_client(f, op, &in, flags);
        else
            op_server(f, op, &in, flags);
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
