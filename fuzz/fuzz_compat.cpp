/* fuzz_compat: libsqlvdi's client classes (ref/compat: ClientVirtualDeviceSet,
 * ClientVirtualDevice) driven by the input against the reference server, every HRESULT and
 * out-parameter checked against the executable model (chaos/model) for the equivalent C
 * call, through the layer's mapping: timeouts (time_t; negative waits forever), codes (the
 * reference's, unchanged), device object lifetime (after the set's Close a device object
 * answers VD_E_PROTOCOL; it may be deleted before or after Close, or outlive its set).
 * The structure is fuzz_api's; the main thread makes every call, the agent has a thread.
 * Time is virtual: a client wait inside GetConfiguration / GetCommand advances the clock
 * seam instead of sleeping, so a timeout is checked to the millisecond (a wait beyond it,
 * or a return before it, is a mismatch). A wait the model says lasts longer than
 * RESCUE_MS (INFINITE included) is ended there by an abort from the client itself or from
 * the attached server, and must then return VD_E_ABORT. */
#include "chaos/atomics.h"
#include "vdi/vdi.h" /* the reference C API first: the SDK header reuses its types */
#include "vdi.h"     /* the SDK surface (ref/compat/include) */

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "chaos_model.h"
#include "fuzz_check.h"
#include "fuzz_input.h"
#include "vdi/vdi_seams.h"

/* The SDK's codes are the reference's (libsqlvdi passes them through). */
static_assert(VD_E_TIMEOUT == VD_ERROR(3) && VD_E_ABORT == VD_ERROR(4), "SDK codes");
static_assert(VD_E_INVALID == VD_ERROR(6) && VD_E_MEMORY == VD_ERROR(10), "SDK codes");
static_assert(VD_E_PROTOCOL == VD_ERROR(12) && VD_E_OPEN == VD_ERROR(13), "SDK codes");
static_assert(VD_E_CLOSE == VD_ERROR(14) && VD_E_BUSY == VD_ERROR(15), "SDK codes");
static_assert(sizeof(time_t) == sizeof(long), "time_t timeouts reach the C API unchanged");

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

namespace {

constexpr int NCLIENT = 2;
constexpr int NSERVER = 2;
constexpr int NSLOT = 4;
constexpr int NCMD = 72; /* > 64: the queue-full row is reachable */
constexpr int MAX_OPS = 256;
constexpr int MAX_HANDLES = 64;
constexpr int MAX_DOBJ = 12; /* device objects held at once */
constexpr int LOG_MAX = 4096;
constexpr uint64_t RESCUE_MS = 120000; /* a longer wait is ended by an abort at this point */
constexpr uint64_t CLOCK_BASE = 1000000;

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
    OP_C_DELETE_DEVICE, /* delete a ClientVirtualDevice (live or orphaned) */
    OP_C_RENEW_SET,     /* delete the ClientVirtualDeviceSet (its destructor closes), new one */
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

struct fz_log {
    int cmd;
    uint32_t code, bytes;
    int64_t out_position;
};

struct fz_buf {
    uint8_t *addr; /* the server's address (NULL once the server closed) */
    uint32_t size;
    int server;
};

/* A ClientVirtualDevice the target holds: current while gen equals its set's. */
struct fz_dobj {
    ClientVirtualDevice *obj;
    int client, slot;
    unsigned gen;
};

/* How a wait that outlasts RESCUE_MS ends: an abort from inside the wait (the client's own,
 * or the attached server's), or the set's Close or delete on another thread, which must wait
 * for the blocked call to leave (VDI-SPEC 5.0, 5.2) before it returns or frees anything. */
enum { RESCUE_CLIENT_ABORT, RESCUE_SERVER_ABORT, RESCUE_CLOSE, RESCUE_DELETE, RESCUE_KINDS };

/* The client call that may wait: what the model allows it. */
struct fz_timed {
    int active;
    uint64_t start, limit; /* limit: the most it may wait (unless rescue) */
    int rescue;            /* the model says it waits beyond RESCUE_MS: end it there */
    int how;               /* RESCUE_*: how */
    int rescuer;           /* RESCUE_SERVER_ABORT: that server */
    int rescued, rescue_rc;
    int ci;
};

struct fz {
    char set_name[64], other_name[64], long_name[160];
    chaos_model *m;
    ClientVirtualDeviceSet *client[NCLIENT];
    int broken[NCLIENT]; /* the constructor could not allocate: every call VD_E_MEMORY */
    unsigned gen[NCLIENT];
    fz_dobj dobj[MAX_DOBJ];
    int ndobj;
    vdi_server_set *server[NSERVER];
    vdi_server_device *sdev[NSERVER][NSLOT];
    /* which set each object is on, for the rescuer: ids of live sets by name */
    int c_set[NCLIENT], s_set[NSERVER], live_set[2], next_set;
    int c_creator[NCLIENT];
    VDS_Command cmds[NCMD];
    int cmd_slot[NCMD];
    VDC_Command *vdc[NCMD];
    int vdc_client[NCMD];
    fz_buf bufs[CHAOS_MODEL_MAX_BUFS];
    intptr_t delta[NCLIENT];
    int delta_known[NCLIENT];
    uint32_t handles[MAX_HANDLES];
    int handle_buf[MAX_HANDLES];
    int handle_set[MAX_HANDLES]; /* c_set of the client that got it */
    int nhandles;
    uint32_t prefix;
    /* agents */
    pthread_t agent[NSERVER];
    int agent_started[NSERVER];
    std::atomic<int> agent_waiting[NSERVER];
    std::atomic<int> agent_rc[NSERVER];
    std::atomic<uintptr_t> agent_tid[NSERVER];
    /* time and seams */
    pthread_t main_thread;
    std::atomic<uint64_t> clock;
    fz_timed timed;
    int in_rescue;
    /* the closing thread of RESCUE_CLOSE / RESCUE_DELETE */
    pthread_t closer;
    std::atomic<uintptr_t> closer_tid;
    std::atomic<int> closer_waiting, closer_done;
    int closer_rc;
    int fail_new; /* the next ClientVirtualDeviceSet constructor's allocation fails */
    /* callbacks */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    fz_log log[LOG_MAX];
    int nlog;
    fz_log expect[LOG_MAX];
    int nexpect;
    int checked;
    int op_index;
    const char *op_name;
    uint8_t junk[64];
    int trace;
};

/* ---- failure reporting --------------------------------------------------------------- */

__attribute__((format(printf, 2, 3), noreturn)) void fail(fz *f, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "==fuzz_compat== mismatch at op %d (%s): ", f->op_index,
            f->op_name ? f->op_name : "?");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    abort();
}

void expect_code(fz *f, const chaos_model_outcome *o, int rc) {
    if (rc == o->code || rc == o->alt_code)
        return;
    if (o->code == o->alt_code)
        fail(f, "expected %s, got %s (rule: %s)", vdi_strerror(o->code), vdi_strerror(rc), o->why);
    fail(f, "expected %s or %s, got %s (rule: %s)", vdi_strerror(o->code),
         vdi_strerror(o->alt_code), vdi_strerror(rc), o->why);
}

void expect_layer(fz *f, int want, int rc, const char *rule) {
    if (f->trace)
        fprintf(stderr, "fuzz_compat: op %3d %-34s -> %-18s (libsqlvdi: %s)\n", f->op_index,
                f->op_name, vdi_strerror(want), rule);
    if (rc != want)
        fail(f, "expected %s, got %s (libsqlvdi: %s)", vdi_strerror(want), vdi_strerror(rc), rule);
}

/* ---- seams: virtual time for the client's waits, a plain futex elsewhere -------------- */

int futex_wait(uint32_t *word, uint32_t expected, long timeout_ms) {
    struct timespec ts, *tp = nullptr;
    if (timeout_ms >= 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (timeout_ms % 1000) * 1000000L;
        tp = &ts;
    }
    long r = syscall(SYS_futex, word, FUTEX_WAIT, expected, tp, nullptr, 0);
    return r == -1 && errno == ETIMEDOUT ? ETIMEDOUT : 0;
}

void rescue(fz *f);

/* A wait of the main thread inside a timed client call takes no real time: the clock
 * jumps by the slice. Waiting forever (a lock, close waiting for the agent) is real. */
int fz_wait(void *ctx, uint32_t *word, uint32_t expected, long timeout_ms,
            enum vdi_wait_kind kind) {
    (void)kind;
    fz *f = static_cast<fz *>(ctx);
    if (!pthread_equal(pthread_self(), f->main_thread)) {
        uintptr_t me = (uintptr_t)pthread_self();
        for (int i = 0; i < NSERVER; i++)
            if (f->agent_tid[i].load() == me)
                f->agent_waiting[i].store(1);
        if (f->closer_tid.load() == me)
            f->closer_waiting.store(1);
        return futex_wait(word, expected, timeout_ms);
    }
    fz_timed *t = &f->timed;
    if (timeout_ms < 0 || !t->active || f->in_rescue)
        return futex_wait(word, expected, timeout_ms);
    if (CHAOS_LOAD_ACQUIRE(word) != expected)
        return 0;
    uint64_t now = f->clock.load(), waited = now - t->start, step = (uint64_t)timeout_ms;
    if (t->rescued)
        fail(f, "the call waits again after the set was aborted (%llu ms waited)",
             (unsigned long long)waited);
    if (t->rescue) {
        if (waited + step >= RESCUE_MS) {
            f->clock.store(t->start + RESCUE_MS);
            rescue(f);
            return 0;
        }
    } else if (waited + step > t->limit) {
        fail(f,
             "the call waits past %llu ms (a slice of %ld ms after %llu ms), the most the "
             "model allows it",
             (unsigned long long)t->limit, timeout_ms, (unsigned long long)waited);
    }
    f->clock.store(now + step);
    return ETIMEDOUT;
}

void fz_wake(void *ctx, uint32_t *word, int n) {
    (void)ctx;
    syscall(SYS_futex, word, FUTEX_WAKE, n, nullptr, nullptr, 0);
}

uint64_t fz_now(void *ctx) {
    return static_cast<fz *>(ctx)->clock.load();
}

int fz_alive(void *ctx, const vdi_peer_id *peer) {
    (void)ctx;
    (void)peer;
    return 1; /* every party lives in this process */
}

int fz_fail_point(void *ctx, const char *name) {
    fz *f = static_cast<fz *>(ctx);
    return f->fail_new && strcmp(name, "client/new:alloc") == 0 ? ENOMEM : 0;
}

/* ---- callbacks and the agent ----------------------------------------------------------- */

void routine(VDS_Command *cmd) {
    fz *f = static_cast<fz *>(cmd->completionContext);
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

struct agent_arg {
    fz *f;
    int s;
};

agent_arg g_agent_args[NSERVER];

void *agent_main(void *arg) {
    agent_arg *a = static_cast<agent_arg *>(arg);
    a->f->agent_tid[a->s].store((uintptr_t)pthread_self());
    int rc = vdi_server_set_execute_completion_agent(a->f->server[a->s]);
    a->f->agent_rc[a->s].store(rc);
    return nullptr;
}

void await_agent_waiting(fz *f, int s) {
    for (unsigned long i = 0; !f->agent_waiting[s].load(); i++) {
        if (i > 200000000ul)
            fail(f, "the completion agent of server %d never started waiting", s);
        sched_yield();
    }
}

void join_agent(fz *f, int s, int expect_rc) {
    if (!f->agent_started[s])
        fail(f, "the model says agent %d returns, but none was started", s);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 20;
    if (pthread_timedjoin_np(f->agent[s], nullptr, &ts) != 0)
        fail(f, "the completion agent of server %d did not return (expected %s)", s,
             vdi_strerror(expect_rc));
    f->agent_started[s] = 0;
    f->agent_waiting[s].store(0);
    f->agent_tid[s].store(0);
    int rc = f->agent_rc[s].load();
    if (rc != expect_rc)
        fail(f, "the completion agent of server %d returned %s, expected %s", s, vdi_strerror(rc),
             vdi_strerror(expect_rc));
}

/* The routine calls so far against the model's: each expected one with its fields, in
 * order per device, nothing else (fuzz_api's check). */
void check_callbacks(fz *f, const chaos_model_outcome *o) {
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

void after_call(fz *f, const chaos_model_outcome *o) {
    if (f->trace)
        fprintf(stderr, "fuzz_compat: op %3d %-34s -> %-18s (%s)\n", f->op_index, f->op_name,
                vdi_strerror(o->code), o->why);
    check_callbacks(f, o);
    if (o->agent_returns)
        for (int s = 0; s < NSERVER; s++)
            if (f->agent_started[s] && !chaos_model_agent_running(f->m, s))
                join_agent(f, s, o->agent_code);
}

void resolve_or_fail(fz *f, const chaos_model_call *k, chaos_model_outcome *o, int rc) {
    if (o->code == o->alt_code) {
        expect_code(f, o, rc);
        return;
    }
    chaos_model_outcome before = *o;
    if (chaos_model_resolve(f->m, k, rc, o) != 0)
        expect_code(f, &before, rc);
}

/* ---- pointers and names the ops use -------------------------------------------------------- */

int resolve_server_ptr(fz *f, const uint8_t *p, int64_t *off) {
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

uint8_t *pick_server_ptr(fz *f, fuzz_input *in, int *buf, int64_t *off) {
    int ids[CHAOS_MODEL_MAX_BUFS], n = 0;
    for (int i = 0; i < CHAOS_MODEL_MAX_BUFS; i++)
        if (f->bufs[i].addr)
            ids[n++] = i;
    uint32_t how = fuzz_choice(in, 8);
    if (n == 0 || how == 6) {
        *buf = CHAOS_MODEL_NULL;
        *off = 0;
        return nullptr;
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

const char *pick_instance(fuzz_input *in) {
    static const char *const inst[] = {nullptr, nullptr, nullptr, nullptr,
                                       nullptr, "",      "a/b",   "inst2"};
    return FUZZ_PICK(in, inst);
}

/* 0 and 8 are the two names a set can live under (live_set[]); NULL at 10. */
const char *pick_set_name(fz *f, fuzz_input *in, int *which) {
    uint32_t c = fuzz_choice(in, 11);
    *which = -1;
    switch (c) {
    case 6:
        return "";
    case 7:
        return "x/y";
    case 8:
        *which = 1;
        return f->other_name;
    case 9:
        return f->long_name;
    case 10:
        return nullptr;
    default:
        *which = 0;
        return f->set_name;
    }
}

const char *pick_dev_name(fz *f, fuzz_input *in) {
    static const char *const names[] = {"b", "c", "d", "", "x\\y", nullptr};
    uint32_t c = fuzz_choice(in, 9);
    return c < 3 ? f->set_name : names[c - 3];
}

/* The SDK takes names as char *: a writable copy (NULL stays NULL). */
struct name_copy {
    char buf[200];
    char *p;
    explicit name_copy(const char *s) : buf(), p(nullptr) {
        if (s) {
            snprintf(buf, sizeof buf, "%s", s);
            p = buf;
        }
    }
};

/* time_t timeouts: every class, and what the C API receives for each (negative: forever). */
time_t pick_timeout(fuzz_input *in) {
    static const time_t t[] = {0,        0,        1,      2,      499,
                               500,      501,      1000,   1501,   -1,
                               -1,       -2,       5001,   60000,  (time_t)1 << 32 | 1,
                               LONG_MAX, LONG_MIN, 120001, 3600000};
    return FUZZ_PICK(in, t);
}

long c_timeout_of(time_t t) {
    return t < 0 ? VDI_INFINITE : (long)t;
}

void check_cfg(fz *f, const chaos_model_outcome *o, const VDConfig *c, const char *who) {
    const uint32_t *a = reinterpret_cast<const uint32_t *>(c);
    const uint32_t *e = reinterpret_cast<const uint32_t *>(&o->cfg);
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

/* ---- the client's set and device objects ------------------------------------------------------
 */

/* The C set closed (Close or the destructor): its device objects are orphans now, every
 * pointer into its mapping is gone. */
void client_closed(fz *f, int ci) {
    f->gen[ci]++;
    f->delta_known[ci] = 0;
    for (int c = 0; c < NCMD; c++)
        if (f->vdc_client[c] == ci)
            f->vdc[c] = nullptr;
    if (f->c_creator[ci] && f->c_set[ci])
        for (int w = 0; w < 2; w++)
            if (f->live_set[w] == f->c_set[ci])
                f->live_set[w] = 0;
    f->c_set[ci] = 0;
    f->c_creator[ci] = 0;
}

void add_dobj(fz *f, ClientVirtualDevice *obj, int ci, int slot) {
    if (f->ndobj == MAX_DOBJ) { /* no room: released at once, the set keeps the device */
        delete obj;
        return;
    }
    f->dobj[f->ndobj].obj = obj;
    f->dobj[f->ndobj].client = ci;
    f->dobj[f->ndobj].slot = slot;
    f->dobj[f->ndobj].gen = f->gen[ci];
    f->ndobj++;
}

void remove_dobj(fz *f, int i) {
    delete f->dobj[i].obj;
    f->dobj[i] = f->dobj[--f->ndobj];
}

void *closer_main(void *arg) {
    fz *f = static_cast<fz *>(arg);
    f->closer_tid.store((uintptr_t)pthread_self());
    if (f->timed.how == RESCUE_CLOSE)
        f->closer_rc = f->client[f->timed.ci]->Close();
    else
        delete f->client[f->timed.ci];
    f->closer_done.store(1);
    return nullptr;
}

/* End the waiting call from inside its wait: an abort made here, as another thread would,
 * or a thread that closes (or deletes) the set; the wait returns once that thread waits for
 * the call to leave. */
void rescue(fz *f) {
    fz_timed *t = &f->timed;
    f->in_rescue = 1;
    if (t->how == RESCUE_CLIENT_ABORT) {
        t->rescue_rc = f->client[t->ci]->SignalAbort();
    } else if (t->how == RESCUE_SERVER_ABORT) {
        t->rescue_rc = vdi_server_set_signal_abort(f->server[t->rescuer]);
    } else {
        f->closer_tid.store(0);
        f->closer_waiting.store(0);
        f->closer_done.store(0);
        if (pthread_create(&f->closer, nullptr, closer_main, f) != 0)
            abort();
        for (unsigned long i = 0; !f->closer_waiting.load() && !f->closer_done.load(); i++) {
            if (i > 200000000ul)
                fail(f, "the closing thread never waited nor returned");
            sched_yield();
        }
        if (f->closer_done.load())
            fail(f, "the set's %s returned while a call was still inside it",
                 t->how == RESCUE_CLOSE ? "Close" : "delete");
    }
    f->in_rescue = 0;
    t->rescued = 1;
}

/* Before a call that may wait: what the model's first answer lets it do. */
void timed_begin(fz *f, fuzz_input *in, int ci, const chaos_model_outcome *o, long timeout) {
    fz_timed *t = &f->timed;
    memset(t, 0, sizeof *t);
    t->active = 1;
    t->ci = ci;
    t->start = f->clock.load();
    if (o->blocks || (o->code == VD_E_TIMEOUT && (uint64_t)timeout > RESCUE_MS))
        t->rescue = 1;
    else if (o->code == VD_E_TIMEOUT)
        t->limit = (uint64_t)timeout;
    t->how = (int)fuzz_choice(in, RESCUE_KINDS);
    if (t->how == RESCUE_SERVER_ABORT) {
        t->how = RESCUE_CLIENT_ABORT; /* unless a server is attached */
        for (int s = 0; s < NSERVER; s++)
            if (f->c_set[ci] && f->s_set[s] == f->c_set[ci] &&
                chaos_model_server_state(f->m, s) != CM_ST_DNE) {
                t->how = RESCUE_SERVER_ABORT;
                t->rescuer = s;
                break;
            }
    }
}

/* The set was closed or deleted under the blocked call (RESCUE_CLOSE / RESCUE_DELETE): the
 * closing thread is joined and its Close given to the model; the call itself must answer
 * VD_E_ABORT (VDI-SPEC 5.2), which timed_end's caller checks. */
void closer_end(fz *f) {
    fz_timed *t = &f->timed;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 20;
    if (pthread_timedjoin_np(f->closer, nullptr, &ts) != 0)
        fail(f, "the set's %s did not return after the blocked call left",
             t->how == RESCUE_CLOSE ? "Close" : "delete");
    chaos_model_call a;
    memset(&a, 0, sizeof a);
    a.op = CM_C_CLOSE;
    a.obj = t->ci;
    chaos_model_outcome co;
    chaos_model_step(f->m, &a, &co);
    if (t->how == RESCUE_CLOSE && f->closer_rc != co.code)
        fail(f, "Close on the other thread returned %s, expected %s (rule: %s)",
             vdi_strerror(f->closer_rc), vdi_strerror(co.code), co.why);
    if (co.code != VD_E_PROTOCOL)
        client_closed(f, t->ci);
    if (t->how == RESCUE_DELETE)
        f->client[t->ci] = new ClientVirtualDeviceSet();
    after_call(f, &co);
}

/* After it: the time it took, and for a rescued call the abort, then the call again, in
 * the model. Returns 1 when the model was stepped again (o is the new outcome), 2 when the
 * set was closed under the call (the call must answer VD_E_ABORT; the model has no answer). */
int timed_end(fz *f, const chaos_model_call *k, chaos_model_outcome *o, int rc) {
    fz_timed *t = &f->timed;
    t->active = 0;
    uint64_t waited = f->clock.load() - t->start;
    if (!t->rescue) {
        if (rc == VD_E_TIMEOUT && o->code == VD_E_TIMEOUT && waited != t->limit)
            fail(f, "VD_E_TIMEOUT after %llu ms of a %llu ms timeout", (unsigned long long)waited,
                 (unsigned long long)t->limit);
        return 0;
    }
    if (!t->rescued)
        fail(f, "returned %s after %llu ms; the model says it waits past %llu ms (timeout %ld)",
             vdi_strerror(rc), (unsigned long long)waited, (unsigned long long)RESCUE_MS,
             k->timeout);
    if (t->how == RESCUE_CLOSE || t->how == RESCUE_DELETE) {
        closer_end(f);
        expect_layer(f, VD_E_ABORT, rc, "a call blocked when another thread closes its set");
        return 2;
    }
    chaos_model_call a;
    memset(&a, 0, sizeof a);
    int by_client = t->how == RESCUE_CLIENT_ABORT;
    a.op = by_client ? CM_C_SIGNAL_ABORT : CM_S_SIGNAL_ABORT;
    a.obj = by_client ? t->ci : t->rescuer;
    chaos_model_outcome ao;
    chaos_model_step(f->m, &a, &ao);
    if (t->rescue_rc != ao.code)
        fail(f, "the rescuing %s signal_abort returned %s, expected %s",
             by_client ? "client" : "server", vdi_strerror(t->rescue_rc), vdi_strerror(ao.code));
    after_call(f, &ao);
    chaos_model_step(f->m, k, o);
    if (o->unmodelled || o->blocks)
        fail(f, "the model has no answer for the call after its set was aborted");
    return 1;
}

/* Which held device object an op uses: a current one (its C device), or an orphan. One
 * byte whenever one is held, so that inputs keep their shape as objects come and go. */
int pick_dobj(fz *f, fuzz_input *in) {
    if (f->ndobj == 0)
        return -1;
    return (int)(fuzz_u8(in) % (uint32_t)f->ndobj);
}

#define MODEL_OR_SKIP(f, k, o)                                                                     \
    do {                                                                                           \
        chaos_model_step((f)->m, (k), (o));                                                        \
        if ((o)->unmodelled || (o)->blocks)                                                        \
            return;                                                                                \
    } while (0)

void op_get_command(fz *f, fuzz_input *in, uint8_t flags) {
    int di = pick_dobj(f, in);
    if (di < 0)
        return;
    fz_dobj *d = &f->dobj[di];
    int ci = d->client, null_out = (flags & 0xf0) == 0xf0;
    time_t timeout = pick_timeout(in);
    VDC_Command *vc = reinterpret_cast<VDC_Command *>(f->junk);
    if (d->gen != f->gen[ci]) { /* an orphan: its set closed */
        int rc = d->obj->GetCommand(timeout, null_out ? nullptr : &vc);
        expect_layer(f, VD_E_PROTOCOL, rc, "a device object after its set's Close");
        if (!null_out && vc)
            fail(f, "GetCommand on an orphan left *ppCmd non-NULL");
        return;
    }
    chaos_model_call k;
    chaos_model_outcome o;
    memset(&k, 0, sizeof k);
    k.op = CM_C_GET_COMMAND;
    k.obj = ci;
    k.dev = d->slot;
    k.out_null = null_out;
    k.timeout = c_timeout_of(timeout);
    chaos_model_step(f->m, &k, &o);
    if (o.unmodelled)
        return;
    timed_begin(f, in, ci, &o, k.timeout);
    int rc = d->obj->GetCommand(timeout, null_out ? nullptr : &vc);
    if (timed_end(f, &k, &o, rc) == 2) {
        if (!null_out && vc)
            fail(f, "GetCommand ended by a Close left *ppCmd non-NULL");
        return;
    }
    resolve_or_fail(f, &k, &o, rc);
    if (rc == NOERROR) {
        int c = o.delivered;
        const VDS_Command *sc = &f->cmds[c];
        char why[160];
        if (fuzz_check_delivered(c, sc, vc, &f->delta[ci], &f->delta_known[ci], why, sizeof why))
            fail(f, "%s", why);
        f->vdc[c] = vc;
        f->vdc_client[c] = ci;
    } else if (!null_out && vc != nullptr) {
        fail(f, "a failed GetCommand left *ppCmd non-NULL");
    }
    after_call(f, &o);
}

void op_complete(fz *f, fuzz_input *in, uint8_t flags) {
    int di = pick_dobj(f, in);
    if (di < 0)
        return;
    fz_dobj *d = &f->dobj[di];
    int ci = d->client;
    int which = (int)fuzz_choice(in, NCMD + 1);
    VDC_Command *vc = which < NCMD ? f->vdc[which] : nullptr;
    if (!vc)
        vc = reinterpret_cast<VDC_Command *>(f->junk);
    if ((flags & 0xf0) == 0xf0)
        vc = nullptr;
    chaos_model_call k;
    chaos_model_outcome o;
    memset(&k, 0, sizeof k);
    k.op = CM_C_COMPLETE_COMMAND;
    k.obj = ci;
    k.dev = d->slot;
    k.cmd = vc ? CHAOS_MODEL_OTHER : CHAOS_MODEL_NULL;
    for (int c = 0; c < NCMD && vc && vc != reinterpret_cast<VDC_Command *>(f->junk); c++)
        if (f->vdc[c] == vc && chaos_model_cmd_outstanding(f->m, c) && f->vdc_client[c] == ci)
            k.cmd = c;
    static const uint32_t codes[] = {ERROR_SUCCESS,           ERROR_SUCCESS,      ERROR_SUCCESS,
                                     ERROR_HANDLE_EOF,        ERROR_IO_DEVICE,    ERROR_DISK_FULL,
                                     ERROR_OPERATION_ABORTED, ERROR_END_OF_MEDIA, 0xFFFFFFFFu};
    k.completion_code = FUZZ_PICK(in, codes);
    int32_t size = k.cmd >= 0 ? f->cmds[k.cmd].size : 0;
    uint32_t sz = size > 0 ? (uint32_t)size : 0;
    uint32_t bsel = fuzz_choice(in, 5);
    unsigned long bytes = bsel == 0 ? sz : bsel == 1 ? 0 : bsel == 2 ? sz + 1ul : sz / 2;
    if (bsel == 4) /* beyond what the C call can carry */
        bytes = 0x100000000ul + sz;
    k.bytes = (uint32_t)bytes;
    uint16_t p = fuzz_u16(in);
    int64_t position = p == 0xFFFF ? -1 : (int64_t)p;
    k.position = (uint64_t)position;
    int code = (int)k.completion_code;
    if (bytes > UINT32_MAX) { /* the layer refuses it before anything else */
        int rc = d->obj->CompleteCommand(vc, code, bytes, position);
        expect_layer(f, VD_E_INVALID, rc, "bytesTransferred above 32 bits");
        return;
    }
    if (d->gen != f->gen[ci]) {
        int rc = d->obj->CompleteCommand(vc, code, bytes, position);
        expect_layer(f, VD_E_PROTOCOL, rc, "a device object after its set's Close");
        return;
    }
    MODEL_OR_SKIP(f, &k, &o);
    int rc = d->obj->CompleteCommand(vc, code, bytes, position);
    resolve_or_fail(f, &k, &o, rc);
    after_call(f, &o);
}

void op_client(fz *f, int op, fuzz_input *in, uint8_t flags) {
    if (op == OP_C_GET_COMMAND) {
        op_get_command(f, in, flags);
        return;
    }
    if (op == OP_C_COMPLETE) {
        op_complete(f, in, flags);
        return;
    }
    if (op == OP_C_DELETE_DEVICE) {
        int di = pick_dobj(f, in);
        if (di >= 0)
            remove_dobj(f, di); /* the C device stays open in its set (model: nothing) */
        return;
    }
    chaos_model_call k;
    chaos_model_outcome o;
    memset(&k, 0, sizeof k);
    int ci = (int)fuzz_choice(in, NCLIENT);
    int null_out = (flags & 0xf0) == 0xf0;
    ClientVirtualDeviceSet *cs = f->client[ci];
    k.obj = ci;
    k.out_null = null_out;
    int rc;
    if (op == OP_C_RENEW_SET) {
        k.op = CM_C_CLOSE;
        chaos_model_step(f->m, &k, &o);
        delete cs; /* closes it */
        if (!f->broken[ci] && o.code != VD_E_PROTOCOL)
            client_closed(f, ci);
        f->fail_new = (flags & 0x0f) == 0x0f;
        f->client[ci] = new ClientVirtualDeviceSet();
        f->fail_new = 0;
        f->broken[ci] = (flags & 0x0f) == 0x0f;
        if (f->broken[ci])
            f->gen[ci]++;
        after_call(f, &o);
        return;
    }
    if (f->broken[ci]) { /* its constructor could not allocate */
        switch (op) {
        case OP_C_CREATE: {
            VDConfig cfg{};
            cfg.deviceCount = 1;
            rc = cs->Create(name_copy(f->set_name).p, &cfg);
            break;
        }
        case OP_C_GET_CONFIG: {
            VDConfig cfg{};
            rc = cs->GetConfiguration(0, &cfg);
            break;
        }
        case OP_C_OPEN_DEVICE: {
            ClientVirtualDevice *dv = reinterpret_cast<ClientVirtualDevice *>(f->junk);
            rc = cs->OpenDevice(name_copy(f->set_name).p, &dv);
            if (dv)
                fail(f, "a failed OpenDevice left *ppVirtualDevice non-NULL");
            break;
        }
        case OP_C_CLOSE:
            rc = cs->Close();
            break;
        case OP_C_ABORT:
            rc = cs->SignalAbort();
            break;
        case OP_C_SECONDARY:
            rc = cs->OpenInSecondary(name_copy(f->set_name).p);
            break;
        case OP_C_GET_HANDLE: {
            unsigned h = 0;
            rc = cs->GetBufferHandle(f->junk, &h);
            break;
        }
        default: {
            uint8_t *p = nullptr;
            rc = cs->MapBufferHandle(1, &p);
            break;
        }
        }
        expect_layer(f, VD_E_MEMORY, rc, "a set object whose constructor could not allocate");
        return;
    }
    switch (op) {
    case OP_C_CREATE: {
        k.op = CM_C_CREATE_EX; /* Create is create_ex with the default instance */
        int which;
        k.name = pick_set_name(f, in, &which);
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
        rc = cs->Create(name_copy(k.name).p, null_out ? nullptr : &cfg);
        if (rc == NOERROR && o.code == NOERROR) {
            f->prefix = k.cfg.prefixZoneSize;
            f->c_set[ci] = ++f->next_set;
            f->c_creator[ci] = 1;
            if (which >= 0)
                f->live_set[which] = f->c_set[ci];
        }
        break;
    }
    case OP_C_GET_CONFIG: {
        k.op = CM_C_GET_CONFIGURATION;
        time_t timeout = pick_timeout(in);
        k.timeout = c_timeout_of(timeout);
        k.cfg_null = null_out;
        VDConfig cfg;
        memset(&cfg, 0xA5, sizeof cfg);
        VDConfig before = cfg;
        chaos_model_step(f->m, &k, &o);
        if (o.unmodelled)
            return;
        timed_begin(f, in, ci, &o, k.timeout);
        rc = cs->GetConfiguration(timeout, null_out ? nullptr : &cfg);
        if (timed_end(f, &k, &o, rc) == 2) { /* cs may be gone */
            if (memcmp(&cfg, &before, sizeof cfg) != 0)
                fail(f, "GetConfiguration ended by a Close changed *cfg");
            return;
        }
        if (rc == NOERROR && o.code == NOERROR)
            check_cfg(f, &o, &cfg, "GetConfiguration");
        else if (rc != NOERROR && memcmp(&cfg, &before, sizeof cfg) != 0)
            fail(f, "a failed GetConfiguration changed *cfg (8.1)");
        break;
    }
    case OP_C_OPEN_DEVICE: {
        k.op = CM_C_OPEN_DEVICE;
        k.name = pick_dev_name(f, in);
        ClientVirtualDevice *dv = reinterpret_cast<ClientVirtualDevice *>(f->junk);
        MODEL_OR_SKIP(f, &k, &o);
        rc = cs->OpenDevice(name_copy(k.name).p, null_out ? nullptr : &dv);
        if (rc == NOERROR && o.code == NOERROR) {
            if (!dv)
                fail(f, "OpenDevice succeeded without a device object");
            for (int i = 0; i < f->ndobj; i++)
                if (f->dobj[i].obj == dv)
                    fail(f, "OpenDevice gave a device object the client still holds");
            if (o.slot >= 0 && o.slot < NSLOT)
                add_dobj(f, dv, ci, o.slot);
            else
                delete dv;
        } else if (rc != NOERROR && !null_out && dv != nullptr) {
            fail(f, "a failed OpenDevice left *ppVirtualDevice non-NULL");
        }
        break;
    }
    case OP_C_CLOSE:
        k.op = CM_C_CLOSE;
        MODEL_OR_SKIP(f, &k, &o);
        rc = cs->Close();
        if (rc == o.code && rc != VD_E_PROTOCOL)
            client_closed(f, ci);
        break;
    case OP_C_ABORT:
        k.op = CM_C_SIGNAL_ABORT;
        MODEL_OR_SKIP(f, &k, &o);
        rc = cs->SignalAbort();
        break;
    case OP_C_SECONDARY: {
        k.op = CM_C_OPEN_IN_SECONDARY; /* OpenInSecondary: the default instance */
        int which;
        k.name = pick_set_name(f, in, &which);
        MODEL_OR_SKIP(f, &k, &o);
        rc = cs->OpenInSecondary(name_copy(k.name).p);
        if (rc == NOERROR && o.code == NOERROR && which >= 0)
            f->c_set[ci] = f->live_set[which];
        break;
    }
    case OP_C_GET_HANDLE: {
        k.op = CM_C_GET_BUFFER_HANDLE;
        int64_t off;
        uint8_t *sp = pick_server_ptr(f, in, &k.buf, &off);
        uint8_t *cp = sp;
        if (sp && sp != f->junk) {
            if (!f->delta_known[ci]) {
                cp = f->junk;
                k.buf = CHAOS_MODEL_OTHER;
            } else {
                cp = reinterpret_cast<uint8_t *>((uintptr_t)sp + (uintptr_t)f->delta[ci]);
            }
        }
        k.offset = off;
        unsigned int h = 0xdeadbeef;
        MODEL_OR_SKIP(f, &k, &o);
        rc = cs->GetBufferHandle(cp, null_out ? nullptr : &h);
        if (rc == NOERROR && o.code == NOERROR && f->nhandles < MAX_HANDLES) {
            f->handles[f->nhandles] = h;
            f->handle_set[f->nhandles] = f->c_set[ci];
            f->handle_buf[f->nhandles++] = k.buf;
        } else if (rc != NOERROR && !null_out && h != 0) {
            fail(f, "a failed GetBufferHandle left *pBufferHandle %u", h);
        }
        break;
    }
    case OP_C_MAP_HANDLE: {
        k.op = CM_C_MAP_BUFFER_HANDLE;
        uint32_t h;
        int which = (int)fuzz_choice(in, (uint32_t)f->nhandles + 1), hset = 0;
        if (which < f->nhandles) {
            h = f->handles[which];
            k.buf = f->handle_buf[which];
            hset = f->handle_set[which];
        } else {
            h = fuzz_u32(in);
            k.buf = CHAOS_MODEL_OTHER;
            for (int i = 0; i < f->nhandles; i++)
                if (f->handles[i] == h && f->handle_set[i] == f->c_set[ci]) {
                    k.buf = f->handle_buf[i];
                    hset = f->handle_set[i];
                }
        }
        /* A handle names a slot of the set's buffer table: once its buffer is freed, or on
         * another set, the same value may name another buffer (the model's "never given
         * out, may collide"). */
        if (k.buf >= 0 && (!chaos_model_buf_live(f->m, k.buf) || hset != f->c_set[ci]))
            k.buf = CHAOS_MODEL_OTHER;
        uint8_t *p = f->junk;
        MODEL_OR_SKIP(f, &k, &o);
        rc = cs->MapBufferHandle((int)h, null_out ? nullptr : &p);
        const uint8_t *sa = k.buf >= 0 ? f->bufs[k.buf].addr : nullptr;
        uintptr_t want = (uintptr_t)sa + (uintptr_t)f->delta[ci];
        if (rc == NOERROR && sa && f->delta_known[ci] && (uintptr_t)p != want)
            fail(f, "MapBufferHandle gave %p, the client's address is %p", (void *)p, (void *)want);
        if (rc != NOERROR && !null_out && p != nullptr)
            fail(f, "a failed MapBufferHandle left *ppBuffer non-NULL");
        break;
    }
    default:
        return;
    }
    resolve_or_fail(f, &k, &o, rc);
    after_call(f, &o);
}

/* ---- the server: the C API, as fuzz_api drives it -----------------------------------------------
 */

void op_server(fz *f, int op, fuzz_input *in, uint8_t flags) {
    chaos_model_call k;
    chaos_model_outcome o;
    memset(&k, 0, sizeof k);
    int si = (int)(fuzz_u8(in) >= 240);
    int null_handle = (flags & 0x0f) == 0x0f, null_out = (flags & 0xf0) == 0xf0;
    vdi_server_set *ss = null_handle ? nullptr : f->server[si];
    k.obj = null_handle ? CHAOS_MODEL_NULL : si;
    k.out_null = null_out;
    if (chaos_model_agent_running(f->m, si))
        await_agent_waiting(f, si);
    static const uint32_t sizes[] = {4096, 65536, 512, 1, 100000, 0, 3000, 8192};
    static const uint32_t aligns[] = {0, 0, 512, 4096, 65536, 3};
    int rc;
    switch (op) {
    case OP_S_OPEN: {
        k.op = CM_S_OPEN;
        k.instance = pick_instance(in);
        int which;
        k.name = pick_set_name(f, in, &which);
        MODEL_OR_SKIP(f, &k, &o);
        rc = vdi_server_set_open(ss, k.instance, k.name);
        if (rc == NOERROR && o.code == NOERROR)
            f->s_set[si] = which >= 0 && !k.instance ? f->live_set[which] : 0;
        break;
    }
    case OP_S_GET_CONFIG: {
        k.op = CM_S_GET_CONFIGURATION;
        k.cfg_null = null_out;
        VDConfig cfg;
        memset(&cfg, 0x5A, sizeof cfg);
        MODEL_OR_SKIP(f, &k, &o);
        rc = vdi_server_set_get_configuration(ss, null_out ? nullptr : &cfg);
        if (rc == NOERROR && o.code == NOERROR)
            check_cfg(f, &o, &cfg, "server get_configuration");
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
        rc = vdi_server_set_query_available_buffers(ss, k.size, k.alignment,
                                                    null_out ? nullptr : &n);
        if (rc == NOERROR && (n < o.avail_lo || n > o.avail_hi))
            fail(f, "query_available_buffers gave %u, outside [%u, %u]", n, o.avail_lo, o.avail_hi);
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
            f->agent_waiting[si].store(0);
            if (pthread_create(&f->agent[si], nullptr, agent_main, &g_agent_args[si]) != 0)
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
        vdi_server_device *d = reinterpret_cast<vdi_server_device *>(f->junk);
        MODEL_OR_SKIP(f, &k, &o);
        rc = vdi_server_set_open_device(ss, k.name, null_out ? nullptr : &d);
        if (rc == NOERROR && o.code == NOERROR && o.slot >= 0 && o.slot < NSLOT)
            f->sdev[si][o.slot] = d;
        break;
    }
    case OP_S_ALLOCATE: {
        k.op = CM_S_ALLOCATE_BUFFER;
        k.size = FUZZ_PICK(in, sizes);
        k.alignment = FUZZ_PICK(in, aligns);
        uint8_t *p = f->junk;
        MODEL_OR_SKIP(f, &k, &o);
        rc = vdi_server_set_allocate_buffer(ss, null_out ? nullptr : &p, k.size, k.alignment);
        resolve_or_fail(f, &k, &o, rc);
        if (rc == NOERROR) {
            if (o.buf < 0 || o.buf >= CHAOS_MODEL_MAX_BUFS)
                fail(f, "allocate_buffer: the model kept no buffer id");
            f->bufs[o.buf].addr = p;
            f->bufs[o.buf].size = k.size;
            f->bufs[o.buf].server = si;
            memset(p, 0x40 + o.buf % 64, k.size);
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
                    f->bufs[i].addr = nullptr;
            if (rc != VD_E_PROTOCOL)
                f->s_set[si] = 0;
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
                vc->commandCode = k.command_code;
                vc->size = k.command_size;
                vc->inPosition = k.in_position;
                vc->buffer = bp;
                vc->completionRoutine = k.routine_null ? nullptr : routine;
                vc->completionContext = f;
            }
            chaos_model_step(f->m, &k, &o);
            if (o.unmodelled || o.blocks)
                return;
            if (chaos_model_agent_running(f->m, si))
                await_agent_waiting(f, si);
            rc = vdi_server_device_send_command(null_handle ? nullptr : d, vc);
            if (rc == NOERROR) {
                f->cmd_slot[k.cmd] = slot;
                f->vdc[k.cmd] = nullptr;
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
        rc = vdi_server_device_close(null_handle ? nullptr : d);
        break;
    }
    default:
        return;
    }
    resolve_or_fail(f, &k, &o, rc);
    after_call(f, &o);
}

const char *const op_names[OP_COUNT] = {
    "Create",
    "GetConfiguration",
    "OpenDevice",
    "Close",
    "SignalAbort",
    "OpenInSecondary",
    "GetBufferHandle",
    "MapBufferHandle",
    "GetCommand",
    "CompleteCommand",
    "delete ClientVirtualDevice",
    "delete and new ClientVirtualDeviceSet",
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

void run_op(fz *f, int op, fuzz_input *in, uint8_t flags) {
    f->op_name = op_names[op];
    if (op < OP_S_OPEN)
        op_client(f, op, in, flags);
    else
        op_server(f, op, in, flags);
}

/* Every input ends the same way: both servers close (their agents drain and are joined),
 * then the client sets, all through the model; then the objects are deleted, the device
 * objects last (they outlive their sets). */
void finish(fz *f) {
    static const uint8_t closing[] = {OP_S_CLOSE, 0x00, 0x00, OP_S_CLOSE, 0x00, 0xff,
                                      OP_C_CLOSE, 0x00, 0x00, OP_C_CLOSE, 0x00, 0x01};
    for (size_t i = 0; i < sizeof closing; i += 3) {
        fuzz_input in;
        fuzz_input_init(&in, closing + i + 2, 1);
        f->op_index = -1;
        run_op(f, closing[i], &in, closing[i + 1]);
    }
    for (int s = 0; s < NSERVER; s++)
        if (f->agent_started[s])
            fail(f, "agent %d still running after every close", s);
    for (int i = 0; i < NCLIENT; i++)
        delete f->client[i];
    /* Each device object answers VD_E_PROTOCOL after its set object is gone. */
    f->op_name = "GetCommand after the set object's delete";
    for (int i = 0; i < f->ndobj; i++) {
        VDC_Command *vc = nullptr;
        expect_layer(f, VD_E_PROTOCOL, f->dobj[i].obj->GetCommand(0, &vc),
                     "a device object after its set's delete");
    }
    while (f->ndobj)
        remove_dobj(f, f->ndobj - 1);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int swept; /* the sets that runs of this target which crashed left behind */
    if (!swept) {
        swept = 1;
        (void)vdi_seam_reclaim_dead("fuzz-compat-");
    }
    fz *f = new fz();
    snprintf(f->set_name, sizeof f->set_name, "fuzz-compat-%ld", (long)getpid());
    snprintf(f->other_name, sizeof f->other_name, "fuzz-compat-%ld-other", (long)getpid());
    memset(f->long_name, 'n', VDI_MAX_NAME + 1);
    f->m = chaos_model_new();
    f->trace = getenv("FUZZ_COMPAT_TRACE") != nullptr;
    f->main_thread = pthread_self();
    f->clock.store(CLOCK_BASE);
    pthread_mutex_init(&f->mu, nullptr);
    pthread_cond_init(&f->cv, nullptr);
    for (int c = 0; c < NCMD; c++)
        f->vdc_client[c] = -1;
    vdi_seams seams;
    memset(&seams, 0, sizeof seams);
    seams.ctx = f;
    seams.wait = fz_wait;
    seams.wake = fz_wake;
    seams.now_ms = fz_now;
    seams.peer_alive = fz_alive;
    seams.fail_point = fz_fail_point;
    vdi_seams_install(&seams);
    for (int i = 0; i < NCLIENT; i++)
        f->client[i] = new ClientVirtualDeviceSet();
    for (int i = 0; i < NSERVER; i++)
        f->server[i] = vdi_server_set_new();

    fuzz_input in;
    fuzz_input_init(&in, data, size);
    for (int i = 0; i < MAX_OPS && !fuzz_exhausted(&in); i++) {
        int op = (int)fuzz_choice(&in, OP_COUNT);
        uint8_t flags = fuzz_u8(&in);
        f->op_index = i;
        run_op(f, op, &in, flags);
    }
    finish(f);

    for (int i = 0; i < NSERVER; i++)
        vdi_server_set_free(f->server[i]);
    vdi_seams_install(nullptr);
    chaos_model_free(f->m);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    delete f;
    return 0;
}
