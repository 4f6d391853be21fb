/* The model oracle (see chaos_history.h). Recording: the link routes every vdi_* call of
 * the scenario through __wrap_vdi_* below, which notes the arguments at entry, and the
 * return code and out-parameters at return, each stamped with a sequence number (the
 * engine runs one actor at a time, so the stamps are a total order of entries and
 * returns). Checking: a depth-first search for a linearization, in the manner of Wing and
 * Gong: at each point any call that entered before the earliest pending return may take
 * effect next; the model is copied only where the search branches. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaos_history.h"
#include "chaos_internal.h"
#include "chaos_model.h"
#include "vdi/vdi.h"

/* The recorder is the engine's bookkeeping, not the scenario's memory: under TSan its
 * accesses are not instrumented (the fibers it runs on have no happens-before between them
 * on purpose, so that the scenario's own races show). The real calls stay instrumented:
 * they live in the reference's objects. */
#if defined(__clang__) && defined(__has_feature)
#if __has_feature(thread_sanitizer)
#pragma clang attribute push(__attribute__((no_sanitize("thread"))), apply_to = function)
#define CHAOS_HISTORY_TSAN_POP 1
#endif
#endif

#define H_MAX_CALLS 384
#define H_MAX_DEVS 64
#define H_MAX_MAP 96
#define H_NODE_BUDGET 20000

typedef struct hcall {
    chaos_model_call k; /* op and plain arguments; handles are resolved at check time */
    const void *dev;    /* device handle passed */
    const void *cmd;    /* send: the VDS_Command; complete: the VDC_Command */
    const void *ptr;    /* free / is_shared: the buffer; send: cmd->buffer at entry */
    void *out;          /* what the call gave back: VDC_Command, buffer or device handle */
    char name[VDI_MAX_NAME + 1], instance[VDI_MAX_INSTANCE + 1];
    int has_name, has_instance, side; /* side: 1 server, 0 client */
    int rc, returned, any_rc;
    uint32_t entry, ret;
    int actor;
} hcall;

typedef struct hdev { /* a device handle, known from the open_device that gave it */
    const void *h;
    int side, obj;
    uint32_t since; /* the sequence number of that open_device's return */
    char name[VDI_MAX_NAME + 1];
} hdev;

static struct {
    chaos_engine *e;
    int on, notes;
    const char *undecidable; /* why the model cannot judge this history, or NULL */
    uint32_t seq;
    int n;
    hcall calls[H_MAX_CALLS];
    const void *clients[CHAOS_MODEL_MAX_CLIENTS], *servers[CHAOS_MODEL_MAX_SERVERS];
    int nclients, nservers;
    hdev devs[H_MAX_DEVS];
    int ndevs;
    const void *vds[CHAOS_MODEL_MAX_CMDS];
    int nvds;
    void (*routine[CHAOS_MODEL_MAX_CMDS])(VDS_Command *); /* the scenario's, by vds index */
    uint8_t swapped[CHAOS_MODEL_MAX_CMDS]; /* route() stands in that command's routine now */
    int depth[CHAOS_MAX_ACTORS + 1];
    int in_agent[CHAOS_MAX_ACTORS + 1];   /* the actor is inside execute_completion_agent */
    int in_routine[CHAOS_MAX_ACTORS + 1]; /* ... and inside a routine the agent called */
    uint32_t mark[CHAOS_MAX_ACTORS + 1];  /* the last sequence number the actor was seen at */
} H;

static int actor_now(void) {
    if (!H.on || !H.e)
        return 0;
    int a = chaos_actor_id(H.e);
    return a >= 0 && a <= CHAOS_MAX_ACTORS ? a : 0;
}

static void undecidable(const char *why) {
    if (!H.undecidable)
        H.undecidable = why;
}

static int index_of(const void **table, int *n, int max, const void *h) {
    if (!h)
        return CHAOS_MODEL_NULL;
    for (int i = 0; i < *n; i++)
        if (table[i] == h)
            return i;
    if (*n == max) {
        undecidable("more objects than the model holds");
        return 0;
    }
    table[*n] = h;
    return (*n)++;
}

static void peer_death(void *ctx, int side);
static const chaos_observer observer = {NULL, peer_death};

void chaos_history_start(chaos_engine *e) {
    /* Everything but the big call table, whose entries begin() clears one by one. */
    H.e = e;
    H.undecidable = NULL;
    H.seq = 0;
    H.n = H.nclients = H.nservers = H.ndevs = H.nvds = 0;
    memset(H.routine, 0, sizeof H.routine);
    memset(H.swapped, 0, sizeof H.swapped);
    memset(H.depth, 0, sizeof H.depth);
    memset(H.in_agent, 0, sizeof H.in_agent);
    memset(H.in_routine, 0, sizeof H.in_routine);
    memset(H.mark, 0, sizeof H.mark);
    H.notes = chaos_notes_on(e); /* building the timeline's lines costs: only when kept */
    H.on = 1;
    chaos_engine_observe(e, &observer);
}

static void route(VDS_Command *cmd);

void chaos_history_stop(void) {
    H.on = 0;
    if (H.e)
        chaos_engine_observe(H.e, NULL);
    H.e = NULL; /* the engine is freed next */
    /* Give every command still in the library's hands its own routine back (callbacks
     * after this go straight to it). Only those: a command whose send was rejected had it
     * back at once, and may have lived on a stack that is gone (a run that ended in a hang
     * leaves actors suspended with such frames behind them). */
    for (int i = 0; i < H.nvds; i++) {
        VDS_Command *cmd = (VDS_Command *)(uintptr_t)H.vds[i];
        if (H.swapped[i] && cmd->completionRoutine == route)
            cmd->completionRoutine = H.routine[i];
        H.swapped[i] = 0;
    }
}

/* A device handle's owner (side, object) and name as of the call's entry. */
static const hdev *dev_of(const void *h, uint32_t before) {
    const hdev *best = NULL;
    for (int i = 0; i < H.ndevs; i++)
        if (H.devs[i].h == h && H.devs[i].since < before)
            best = &H.devs[i];
    return best;
}

/* A set with a serverTimeOut: its watchdog may abort the set from the server side. The
 * model has no clock, so this is an optional event anywhere after the create: the other
 * oracles (the ledger, the hang detector) judge when it fires. */
/* An abort the library makes by itself, as a pending call from now on: it never returns,
 * so the search may place it at any later moment, or leave it out (see search). */
static void pending_abort(int side) {
    if (H.n == H_MAX_CALLS) {
        undecidable("more calls than the history holds");
        return;
    }
    hcall *c = &H.calls[H.n++];
    memset(c, 0, sizeof *c);
    c->k.op = side ? CM_S_SIGNAL_ABORT : CM_C_SIGNAL_ABORT;
    c->side = side;
    c->k.obj = 0; /* the first object of that side: the creator, or the server */
    c->any_rc = 1;
    c->entry = ++H.seq;
    c->actor = actor_now();
}

static void watchdog_event(void) {
    pending_abort(1);
}

/* The peer process died (chaos_kill_peer): to the model, an abort by the dead side that the
 * other learns of at some later moment, or never. */
static void peer_death(void *ctx, int side) {
    (void)ctx;
    if (H.on)
        pending_abort(side);
}

/* The API name without its prefix, for the timeline. */
static const char *short_name(chaos_model_op op) {
    const char *n = chaos_model_op_name(op);
    static const char *const prefixes[] = {"vdi_client_set_", "vdi_client_device_",
                                           "vdi_server_set_", "vdi_server_device_"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (strncmp(n, prefixes[i], strlen(prefixes[i])) == 0)
            return n + strlen(prefixes[i]);
    return n;
}

/* ---- recording ------------------------------------------------------------------------------
 * begin() returns the call's index, -1 when nothing is recorded, -2 when the call is
 * inside another (a callback's call: the model cannot say what it answers there). */

static int begin(chaos_model_op op, int side, const void *set) {
    if (!H.on)
        return -1;
    int a = actor_now();
    /* A call from inside another call is out of the model's reach, except a call the
     * agent's completion routine makes: the routine runs between two agent steps. */
    if (H.depth[a]++ > 0 && !(H.in_routine[a] && H.depth[a] == 2)) {
        undecidable("a call made from inside another call (a synchronous callback)");
        return -2;
    }
    if (H.n == H_MAX_CALLS) {
        undecidable("more calls than the history holds");
        return -2;
    }
    hcall *c = &H.calls[H.n];
    memset(c, 0, sizeof *c);
    c->k.op = op;
    c->side = side;
    c->k.obj = side ? index_of(H.servers, &H.nservers, CHAOS_MODEL_MAX_SERVERS, set)
                    : index_of(H.clients, &H.nclients, CHAOS_MODEL_MAX_CLIENTS, set);
    c->entry = ++H.seq;
    c->actor = a;
    if (H.notes)
        chaos_note(H.e, "> %s", short_name(op));
    return H.n++;
}

/* The timeline's line for a call that returned (cfg.record_notes). */
static void note_return(const hcall *c, int rc) {
    const hdev *d = c->dev ? dev_of(c->dev, c->entry) : NULL;
    const char *what = c->has_name ? c->name : d ? d->name : NULL;
    /* The set's own name holds a process id: the timeline says "set" instead, so
     * that it reads the same in every replay. */
    for (int i = 0; what && i < H.n; i++)
        if (H.calls[i].k.op == CM_C_CREATE_EX && H.calls[i].has_name &&
            strcmp(H.calls[i].name, what) == 0)
            what = "set";
    if (c->k.op == CM_S_IS_SHARED_BUFFER && rc >= 0)
        chaos_note(H.e, "< %s = %d", short_name(c->k.op), rc);
    else
        chaos_note(H.e, "< %s%s%s%s = %s", short_name(c->k.op), what ? "(" : "", what ? what : "",
                   what ? ")" : "", c->any_rc ? "(freed)" : vdi_strerror(rc));
}

static int finish(int t, int rc) {
    if (t == -1)
        return rc;
    int a = actor_now();
    H.depth[a]--;
    if (t >= 0) {
        hcall *c = &H.calls[t];
        c->rc = rc;
        c->returned = 1;
        c->ret = ++H.seq;
        if (H.notes)
            note_return(c, rc);
    }
    return rc;
}

static void names(int t, const char *instance, const char *name) {
    if (t < 0)
        return;
    hcall *c = &H.calls[t];
    if (instance) {
        snprintf(c->instance, sizeof c->instance, "%s", instance);
        c->has_instance = 1;
        if (strlen(instance) >= sizeof c->instance)
            undecidable("an instance name longer than the model keeps");
    }
    if (name) {
        snprintf(c->name, sizeof c->name, "%s", name);
        c->has_name = 1;
        if (strlen(name) >= sizeof c->name)
            undecidable("a name longer than the model keeps");
    }
}

static void device_opened(int t, int side, void *h) {
    if (t < 0 || !h || H.calls[t].rc != NOERROR)
        return;
    if (H.ndevs == H_MAX_DEVS) {
        undecidable("more device handles than the history holds");
        return;
    }
    hdev *d = &H.devs[H.ndevs++];
    d->h = h;
    d->side = side;
    d->obj = H.calls[t].k.obj;
    d->since = H.calls[t].ret;
    memcpy(d->name, H.calls[t].name, sizeof d->name); /* both VDI_MAX_NAME + 1, terminated */
}

static int dev_begin(chaos_model_op op, int side, const void *dev) {
    if (!H.on)
        return -1;
    const hdev *d = dev ? dev_of(dev, H.seq + 1) : NULL;
    int t = begin(op, side, NULL);
    if (t < 0)
        return t;
    hcall *c = &H.calls[t];
    c->dev = dev;
    c->k.obj = d ? d->obj : 0;
    if (dev && !d)
        undecidable("a device handle the history did not see opened");
    return t;
}

/* ---- the wrappers -------------------------------------------------------------------------- */

#define REAL(f) __real_##f
#define WRAP(f) __wrap_##f
/* Declared here: these are the link's names for the real functions and their wrappers. */
#define DECLARE(ret, f, ...)                                                                       \
    ret REAL(f)(__VA_ARGS__);                                                                      \
    ret WRAP(f)(__VA_ARGS__)

DECLARE(int, vdi_client_set_create_ex, vdi_client_set *s, const char *instance, const char *name,
        VDConfig *cfg);
DECLARE(int, vdi_client_set_create, vdi_client_set *s, const char *name, VDConfig *cfg);
DECLARE(int, vdi_client_set_get_configuration, vdi_client_set *s, long timeout_ms, VDConfig *cfg);
DECLARE(int, vdi_client_set_open_device, vdi_client_set *s, const char *name,
        vdi_client_device **out);
DECLARE(int, vdi_client_set_close, vdi_client_set *s);
DECLARE(void, vdi_client_set_free, vdi_client_set *s);
DECLARE(int, vdi_client_set_signal_abort, vdi_client_set *s);
DECLARE(int, vdi_client_set_open_in_secondary_ex, vdi_client_set *s, const char *instance,
        const char *name);
DECLARE(int, vdi_client_set_open_in_secondary, vdi_client_set *s, const char *name);
DECLARE(int, vdi_client_set_get_buffer_handle, vdi_client_set *s, uint8_t *buffer,
        uint32_t *handle);
DECLARE(int, vdi_client_set_map_buffer_handle, vdi_client_set *s, uint32_t handle,
        uint8_t **buffer);
DECLARE(int, vdi_client_device_get_command, vdi_client_device *d, long timeout_ms,
        VDC_Command **cmd);
DECLARE(int, vdi_client_device_complete_command, vdi_client_device *d, VDC_Command *cmd,
        uint32_t code, uint32_t bytes, uint64_t position);
DECLARE(int, vdi_server_set_open, vdi_server_set *s, const char *instance, const char *name);
DECLARE(int, vdi_server_set_get_configuration, vdi_server_set *s, VDConfig *cfg);
DECLARE(int, vdi_server_set_begin_configuration, vdi_server_set *s, uint32_t features,
        uint32_t block_size, uint32_t alignment, uint32_t max_transfer_size, long timeout_ms);
DECLARE(int, vdi_server_set_request_buffers, vdi_server_set *s, uint32_t size, uint32_t alignment,
        uint32_t count);
DECLARE(int, vdi_server_set_query_available_buffers, vdi_server_set *s, uint32_t size,
        uint32_t alignment, uint32_t *count);
DECLARE(int, vdi_server_set_end_configuration, vdi_server_set *s);
DECLARE(int, vdi_server_set_execute_completion_agent, vdi_server_set *s);
DECLARE(int, vdi_server_set_open_device, vdi_server_set *s, const char *name,
        vdi_server_device **out);
DECLARE(int, vdi_server_set_allocate_buffer, vdi_server_set *s, uint8_t **buffer, uint32_t size,
        uint32_t alignment);
DECLARE(int, vdi_server_set_free_buffer, vdi_server_set *s, uint8_t *buffer, uint32_t size);
DECLARE(int, vdi_server_set_is_shared_buffer, vdi_server_set *s, const uint8_t *buffer);
DECLARE(int, vdi_server_set_signal_abort, vdi_server_set *s);
DECLARE(int, vdi_server_set_close, vdi_server_set *s);
DECLARE(void, vdi_server_set_free, vdi_server_set *s);
DECLARE(int, vdi_server_device_send_command, vdi_server_device *d, VDS_Command *cmd);
DECLARE(int, vdi_server_device_close, vdi_server_device *d);

int WRAP(vdi_client_set_create_ex)(vdi_client_set *s, const char *instance, const char *name,
                                   VDConfig *cfg) {
    int t = begin(CM_C_CREATE_EX, 0, s);
    names(t, instance, name);
    if (t >= 0) {
        H.calls[t].k.cfg_null = !cfg;
        if (cfg)
            H.calls[t].k.cfg = *cfg;
    }
    int rc = finish(t, REAL(vdi_client_set_create_ex)(s, instance, name, cfg));
    if (t >= 0 && rc == NOERROR && cfg && cfg->serverTimeOut)
        watchdog_event();
    return rc;
}

int WRAP(vdi_client_set_create)(vdi_client_set *s, const char *name, VDConfig *cfg) {
    return WRAP(vdi_client_set_create_ex)(s, NULL, name, cfg);
}

int WRAP(vdi_client_set_get_configuration)(vdi_client_set *s, long timeout_ms, VDConfig *cfg) {
    int t = begin(CM_C_GET_CONFIGURATION, 0, s);
    if (t >= 0) {
        H.calls[t].k.timeout = timeout_ms;
        H.calls[t].k.cfg_null = !cfg;
    }
    return finish(t, REAL(vdi_client_set_get_configuration)(s, timeout_ms, cfg));
}

int WRAP(vdi_client_set_open_device)(vdi_client_set *s, const char *name, vdi_client_device **out) {
    int t = begin(CM_C_OPEN_DEVICE, 0, s);
    names(t, NULL, name);
    if (t >= 0)
        H.calls[t].k.out_null = !out;
    int rc = finish(t, REAL(vdi_client_set_open_device)(s, name, out));
    if (out)
        device_opened(t, 0, *out);
    return rc;
}

int WRAP(vdi_client_set_close)(vdi_client_set *s) {
    int t = begin(CM_C_CLOSE, 0, s);
    return finish(t, REAL(vdi_client_set_close)(s));
}

void WRAP(vdi_client_set_free)(vdi_client_set *s) {
    int t = s ? begin(CM_C_CLOSE, 0, s) : -1; /* a free closes an object not in DNE */
    if (t >= 0)
        H.calls[t].any_rc = 1;
    REAL(vdi_client_set_free)(s);
    (void)finish(t, NOERROR);
}

int WRAP(vdi_client_set_signal_abort)(vdi_client_set *s) {
    int t = begin(CM_C_SIGNAL_ABORT, 0, s);
    return finish(t, REAL(vdi_client_set_signal_abort)(s));
}

int WRAP(vdi_client_set_open_in_secondary_ex)(vdi_client_set *s, const char *instance,
                                              const char *name) {
    int t = begin(CM_C_OPEN_IN_SECONDARY, 0, s);
    names(t, instance, name);
    return finish(t, REAL(vdi_client_set_open_in_secondary_ex)(s, instance, name));
}

int WRAP(vdi_client_set_open_in_secondary)(vdi_client_set *s, const char *name) {
    return WRAP(vdi_client_set_open_in_secondary_ex)(s, NULL, name);
}

/* Buffer handles: the client's addresses are translated to the server's through the
 * offset between the two views, learnt from a delivered command's buffer (see apply). */
int WRAP(vdi_client_set_get_buffer_handle)(vdi_client_set *s, uint8_t *buffer, uint32_t *handle) {
    int t = begin(CM_C_GET_BUFFER_HANDLE, 0, s);
    if (t >= 0) {
        H.calls[t].ptr = buffer;
        H.calls[t].k.out_null = !handle;
    }
    int rc = finish(t, REAL(vdi_client_set_get_buffer_handle)(s, buffer, handle));
    if (t >= 0 && handle)
        H.calls[t].k.count = *handle; /* the handle it gave */
    return rc;
}

int WRAP(vdi_client_set_map_buffer_handle)(vdi_client_set *s, uint32_t handle, uint8_t **buffer) {
    int t = begin(CM_C_MAP_BUFFER_HANDLE, 0, s);
    if (t >= 0) {
        H.calls[t].k.count = handle;
        H.calls[t].k.out_null = !buffer;
    }
    return finish(t, REAL(vdi_client_set_map_buffer_handle)(s, handle, buffer));
}

int WRAP(vdi_client_device_get_command)(vdi_client_device *d, long timeout_ms, VDC_Command **cmd) {
    int t = dev_begin(CM_C_GET_COMMAND, 0, d);
    if (t >= 0) {
        H.calls[t].k.timeout = timeout_ms;
        H.calls[t].k.out_null = !cmd;
    }
    int rc = finish(t, REAL(vdi_client_device_get_command)(d, timeout_ms, cmd));
    if (t >= 0 && cmd) {
        H.calls[t].out = *cmd;
        H.calls[t].ptr = *cmd ? (*cmd)->buffer : NULL; /* the client's address of the bytes */
    }
    return rc;
}

int WRAP(vdi_client_device_complete_command)(vdi_client_device *d, VDC_Command *cmd, uint32_t code,
                                             uint32_t bytes, uint64_t position) {
    int t = dev_begin(CM_C_COMPLETE_COMMAND, 0, d);
    if (t >= 0) {
        hcall *c = &H.calls[t];
        c->cmd = cmd;
        c->k.completion_code = code;
        c->k.bytes = bytes;
        c->k.position = position;
    }
    return finish(t, REAL(vdi_client_device_complete_command)(d, cmd, code, bytes, position));
}

int WRAP(vdi_server_set_open)(vdi_server_set *s, const char *instance, const char *name) {
    int t = begin(CM_S_OPEN, 1, s);
    names(t, instance, name);
    return finish(t, REAL(vdi_server_set_open)(s, instance, name));
}

int WRAP(vdi_server_set_get_configuration)(vdi_server_set *s, VDConfig *cfg) {
    int t = begin(CM_S_GET_CONFIGURATION, 1, s);
    if (t >= 0)
        H.calls[t].k.cfg_null = !cfg;
    return finish(t, REAL(vdi_server_set_get_configuration)(s, cfg));
}

int WRAP(vdi_server_set_begin_configuration)(vdi_server_set *s, uint32_t features,
                                             uint32_t block_size, uint32_t alignment,
                                             uint32_t max_transfer_size, long timeout_ms) {
    int t = begin(CM_S_BEGIN_CONFIGURATION, 1, s);
    if (t >= 0) {
        chaos_model_call *k = &H.calls[t].k;
        k->features = features;
        k->block_size = block_size;
        k->alignment = alignment;
        k->max_transfer = max_transfer_size;
        k->timeout = timeout_ms;
    }
    return finish(t, REAL(vdi_server_set_begin_configuration)(s, features, block_size, alignment,
                                                              max_transfer_size, timeout_ms));
}

int WRAP(vdi_server_set_request_buffers)(vdi_server_set *s, uint32_t size, uint32_t alignment,
                                         uint32_t count) {
    int t = begin(CM_S_REQUEST_BUFFERS, 1, s);
    if (t >= 0) {
        H.calls[t].k.size = size;
        H.calls[t].k.alignment = alignment;
        H.calls[t].k.count = count;
    }
    return finish(t, REAL(vdi_server_set_request_buffers)(s, size, alignment, count));
}

int WRAP(vdi_server_set_query_available_buffers)(vdi_server_set *s, uint32_t size,
                                                 uint32_t alignment, uint32_t *count) {
    int t = begin(CM_S_QUERY_AVAILABLE, 1, s);
    if (t >= 0) {
        H.calls[t].k.size = size;
        H.calls[t].k.alignment = alignment;
        H.calls[t].k.out_null = !count;
    }
    return finish(t, REAL(vdi_server_set_query_available_buffers)(s, size, alignment, count));
}

int WRAP(vdi_server_set_end_configuration)(vdi_server_set *s) {
    int t = begin(CM_S_END_CONFIGURATION, 1, s);
    return finish(t, REAL(vdi_server_set_end_configuration)(s));
}

int WRAP(vdi_server_set_execute_completion_agent)(vdi_server_set *s) {
    /* The completion routine runs inside this call: a call it makes is nested, and each
     * routine call is the agent taking a completion (see route()). */
    int t = begin(CM_S_EXECUTE_AGENT, 1, s), a = t >= 0 ? actor_now() : 0;
    if (t >= 0) {
        H.in_agent[a] = 1;
        H.mark[a] = H.seq;
    }
    int rc = REAL(vdi_server_set_execute_completion_agent)(s);
    if (t >= 0)
        H.in_agent[a] = 0;
    return finish(t, rc);
}

/* Every routine call comes through here while recording (the send wrapper swaps it in).
 * On the agent, it is the agent taking a completion: an event placed anywhere between the
 * agent's previous visible moment and this call. */
static void route(VDS_Command *cmd) {
    int i = 0;
    while (i < H.nvds && H.vds[i] != cmd)
        i++;
    void (*own)(VDS_Command *) = i < H.nvds ? H.routine[i] : NULL;
    int a = actor_now();
    int taken = H.on && H.in_agent[a] && H.depth[a] == 1 && i < H.nvds;
    if (taken) {
        if (H.n == H_MAX_CALLS) {
            undecidable("more calls than the history holds");
        } else {
            hcall *c = &H.calls[H.n++];
            memset(c, 0, sizeof *c);
            c->k.op = CM_S_AGENT_TAKE;
            c->side = 1;
            c->k.cmd = i;
            c->k.completion_code = cmd->completionCode;
            c->rc = NOERROR;
            c->returned = 1;
            c->entry = H.mark[a];
            c->ret = ++H.seq;
            c->actor = a;
            if (H.notes)
                chaos_note(H.e, "agent calls the routine of command %d with code %u", i,
                           cmd->completionCode);
        }
    }
    if (taken)
        H.in_routine[a] = 1;
    if (own)
        own(cmd);
    if (taken)
        H.in_routine[a] = 0;
    if (H.on)
        H.mark[a] = ++H.seq;
}

int WRAP(vdi_server_set_open_device)(vdi_server_set *s, const char *name, vdi_server_device **out) {
    int t = begin(CM_S_OPEN_DEVICE, 1, s);
    names(t, NULL, name);
    if (t >= 0)
        H.calls[t].k.out_null = !out;
    int rc = finish(t, REAL(vdi_server_set_open_device)(s, name, out));
    if (out)
        device_opened(t, 1, *out);
    return rc;
}

int WRAP(vdi_server_set_allocate_buffer)(vdi_server_set *s, uint8_t **buffer, uint32_t size,
                                         uint32_t alignment) {
    int t = begin(CM_S_ALLOCATE_BUFFER, 1, s);
    if (t >= 0) {
        H.calls[t].k.size = size;
        H.calls[t].k.alignment = alignment;
        H.calls[t].k.out_null = !buffer;
    }
    int rc = finish(t, REAL(vdi_server_set_allocate_buffer)(s, buffer, size, alignment));
    if (t >= 0 && buffer)
        H.calls[t].out = *buffer;
    return rc;
}

int WRAP(vdi_server_set_free_buffer)(vdi_server_set *s, uint8_t *buffer, uint32_t size) {
    int t = begin(CM_S_FREE_BUFFER, 1, s);
    if (t >= 0) {
        H.calls[t].ptr = buffer;
        H.calls[t].k.size = size;
    }
    return finish(t, REAL(vdi_server_set_free_buffer)(s, buffer, size));
}

int WRAP(vdi_server_set_is_shared_buffer)(vdi_server_set *s, const uint8_t *buffer) {
    int t = begin(CM_S_IS_SHARED_BUFFER, 1, s);
    if (t >= 0)
        H.calls[t].ptr = buffer;
    int rc = REAL(vdi_server_set_is_shared_buffer)(s, buffer);
    /* It answers 1 or 0, not a code: compared through the model's is_shared. */
    return finish(t, rc);
}

int WRAP(vdi_server_set_signal_abort)(vdi_server_set *s) {
    int t = begin(CM_S_SIGNAL_ABORT, 1, s);
    return finish(t, REAL(vdi_server_set_signal_abort)(s));
}

int WRAP(vdi_server_set_close)(vdi_server_set *s) {
    int t = begin(CM_S_CLOSE, 1, s);
    return finish(t, REAL(vdi_server_set_close)(s));
}

void WRAP(vdi_server_set_free)(vdi_server_set *s) {
    int t = s ? begin(CM_S_CLOSE, 1, s) : -1;
    if (t >= 0)
        H.calls[t].any_rc = 1;
    REAL(vdi_server_set_free)(s);
    (void)finish(t, NOERROR);
}

int WRAP(vdi_server_device_send_command)(vdi_server_device *d, VDS_Command *cmd) {
    int t = dev_begin(CM_S_SEND_COMMAND, 1, d), here = -1;
    if (t >= 0) {
        hcall *c = &H.calls[t];
        c->cmd = cmd;
        c->k.cmd = cmd ? index_of(H.vds, &H.nvds, CHAOS_MODEL_MAX_CMDS, cmd) : CHAOS_MODEL_NULL;
        if (cmd) {
            c->k.command_code = cmd->commandCode;
            c->k.command_size = cmd->size;
            c->k.in_position = (int64_t)cmd->inPosition;
            c->ptr = cmd->buffer;
            int mine = c->k.cmd >= 0 && H.vds[c->k.cmd] == cmd; /* (not when the table is full) */
            if (mine && cmd->completionRoutine != route)
                H.routine[c->k.cmd] = cmd->completionRoutine;
            c->k.routine_null = !cmd->completionRoutine;
            if (mine && cmd->completionRoutine && cmd->completionRoutine != route) {
                cmd->completionRoutine = route;
                H.swapped[c->k.cmd] = 1;
                here = c->k.cmd; /* swapped by this send */
            }
        }
    }
    int rc = finish(t, REAL(vdi_server_device_send_command)(d, cmd));
    /* Not accepted: its one callback (if any) has run, nothing will call it again. */
    if (here >= 0 && rc != NOERROR) {
        cmd->completionRoutine = H.routine[here];
        H.swapped[here] = 0;
    }
    return rc;
}

int WRAP(vdi_server_device_close)(vdi_server_device *d) {
    int t = dev_begin(CM_S_CLOSE_DEVICE, 1, d);
    return finish(t, REAL(vdi_server_device_close)(d));
}

/* ---- checking -------------------------------------------------------------------------------- */

typedef struct hmap {
    const void *p;
    uint32_t size;
    int id;
} hmap;

typedef struct hstate {
    chaos_model *m;
    hmap vdc[H_MAX_MAP]; /* a delivered VDC_Command's address -> the command */
    hmap buf[H_MAX_MAP]; /* an allocated buffer -> its id */
    int nvdc, nbuf;
    int agent_started, agent_returns, agent_code;
    int agent_call; /* the execute_completion_agent the model runs now (index), or -1 */
    int client_closes[CHAOS_MODEL_MAX_CLIENTS], server_closes[CHAOS_MODEL_MAX_SERVERS];
    const void *sent_buf[CHAOS_MODEL_MAX_CMDS]; /* the server buffer each command was sent with */
    intptr_t delta[CHAOS_MODEL_MAX_CLIENTS];    /* client address - server address, per object */
    int delta_known[CHAOS_MODEL_MAX_CLIENTS];
    hmap handles[H_MAX_MAP]; /* a buffer handle given out -> the buffer */
    int nhandles;
} hstate;

/* States are kept for reuse (a model is large, and zeroing one per branch is what the
 * search would otherwise spend its time on); chaos_model_copy overwrites all that counts. */
static hstate *pool[64];
static int npool;

static hstate *state_take(void) {
    if (npool > 0)
        return pool[--npool];
    hstate *st = calloc(1, sizeof *st);
    if (st && !(st->m = chaos_model_new())) {
        free(st);
        return NULL;
    }
    return st;
}

static void state_free(hstate *st) {
    if (!st)
        return;
    if (npool < (int)(sizeof pool / sizeof pool[0])) {
        pool[npool++] = st;
        return;
    }
    chaos_model_free(st->m);
    free(st);
}

static hstate *state_clone(const hstate *src) {
    hstate *st = state_take();
    if (!st)
        return NULL;
    chaos_model *m = st->m;
    *st = *src;
    st->m = m;
    chaos_model_copy(m, src->m);
    return st;
}

/* A state with a fresh model: a copy of one kept pristine. */
static hstate *state_new(void) {
    static chaos_model *pristine;
    if (!pristine && !(pristine = chaos_model_new()))
        return NULL;
    hstate *st = state_take();
    if (!st)
        return NULL;
    chaos_model *m = st->m;
    memset(st, 0, sizeof *st);
    st->m = m;
    st->agent_call = -1;
    chaos_model_copy(m, pristine);
    return st;
}

static void map_put(hmap *map, int *n, const void *p, uint32_t size, int id) {
    for (int i = 0; i < *n; i++)
        if (map[i].p == p) { /* the address is reused: the newest meaning wins */
            map[i].size = size;
            map[i].id = id;
            return;
        }
    if (*n < H_MAX_MAP)
        map[(*n)++] = (hmap){p, size, id};
    else
        undecidable("more commands or buffers than the history maps");
}

/* The buffer an address lies in (id and offset), else OTHER (or NULL for NULL). */
static int buf_of(const hstate *st, const void *p, int64_t *off) {
    *off = 0;
    if (!p)
        return CHAOS_MODEL_NULL;
    for (int i = st->nbuf; i-- > 0;) {
        uintptr_t a = (uintptr_t)st->buf[i].p, q = (uintptr_t)p;
        if (q >= a && q - a < st->buf[i].size) {
            *off = (int64_t)(q - a);
            return st->buf[i].id;
        }
    }
    return CHAOS_MODEL_OTHER;
}

static int trace_level; /* VDICHAOS_HISTORY */

static struct { /* the furthest the search got, for the report */
    int placed, call, code, alt;
    const char *why;
} far;

/* VDI-SPEC 5.0: a call of an object that overlaps that object's close may wake with
 * VD_E_ABORT and leave before the close frees anything, having done nothing. The search
 * tries such a call both ways: as the model's call, and as this no-op. */
static int aborted_by_close(const hcall *c) {
    if (c->rc != VD_E_ABORT || c->k.op == CM_C_CLOSE || c->k.op == CM_S_CLOSE)
        return 0;
    chaos_model_op close = c->side ? CM_S_CLOSE : CM_C_CLOSE;
    for (int i = 0; i < H.n; i++) {
        const hcall *x = &H.calls[i];
        if (x->k.op == close && x->k.obj == c->k.obj && x->entry < c->ret && c->entry < x->ret)
            return 1;
    }
    return 0;
}

static int agent_judged; /* one server object: each agent's return code is judged as it ends */

/* Why a call does not fit, for the report (see far). */
static void missed(const hcall *c, int placed, int code, int alt, const char *why) {
    if (placed >= far.placed) {
        far.placed = placed;
        far.call = (int)(c - H.calls);
        far.code = code;
        far.alt = alt;
        far.why = why;
    }
}

/* 1: the call fits here (state updated); 0: it does not; -1: the model cannot say. */
static int apply(hstate *st, const hcall *c, int placed) {
    /* The agent the model runs returned in reality before this call entered: in this
     * order the model lets it run past its real return. */
    if (agent_judged && st->agent_call >= 0 && H.calls[st->agent_call].returned &&
        H.calls[st->agent_call].ret < c->entry) {
        missed(&H.calls[st->agent_call], placed, 1, 1,
               "the model's agent is still running when the real one had returned");
        return 0;
    }
    chaos_model_call k = c->k;
    k.name = c->has_name ? c->name : NULL;
    k.instance = c->has_instance ? c->instance : NULL;
    chaos_model_outcome o;
    if (k.op == CM_C_GET_COMMAND || k.op == CM_C_COMPLETE_COMMAND || k.op == CM_S_SEND_COMMAND ||
        k.op == CM_S_CLOSE_DEVICE) {
        const hdev *d = c->dev ? dev_of(c->dev, c->entry) : NULL;
        k.dev = d ? chaos_model_slot_of(st->m, d->side, d->obj, d->name) : CHAOS_MODEL_NULL;
        if (c->dev && k.dev < 0) {
            /* Its object closed before, in this order: a handle used after its set's
             * close is the caller's misuse, undefined (8.1), so any answer fits. */
            int st_now = d->side ? chaos_model_server_state(st->m, d->obj)
                                 : chaos_model_client_state(st->m, d->obj);
            int closes = d->side ? st->server_closes[d->obj] : st->client_closes[d->obj];
            return st_now == CM_ST_DNE && closes > 0 ? 1 : 0;
        }
    }
    if (k.op == CM_C_COMPLETE_COMMAND) {
        k.cmd = c->cmd ? CHAOS_MODEL_OTHER : CHAOS_MODEL_NULL;
        for (int i = 0; c->cmd && i < st->nvdc; i++)
            if (st->vdc[i].p == c->cmd)
                k.cmd = st->vdc[i].id;
    }
    if (k.op == CM_S_SEND_COMMAND)
        k.cmd_buf = buf_of(st, c->ptr, &k.cmd_offset);
    if (k.op == CM_S_FREE_BUFFER || k.op == CM_S_IS_SHARED_BUFFER)
        k.buf = buf_of(st, c->ptr, &k.offset);
    if (k.op == CM_C_GET_BUFFER_HANDLE) {
        int o_ = k.obj >= 0 && k.obj < CHAOS_MODEL_MAX_CLIENTS;
        if (!c->ptr)
            k.buf = CHAOS_MODEL_NULL;
        else if (o_ && st->delta_known[k.obj])
            k.buf = buf_of(st, (const void *)((uintptr_t)c->ptr - (uintptr_t)st->delta[k.obj]),
                           &k.offset);
        else
            return -1; /* the client's view is not known yet in this order */
    }
    if (k.op == CM_C_MAP_BUFFER_HANDLE) {
        k.buf = CHAOS_MODEL_OTHER; /* a handle never given out */
        for (int i = 0; i < st->nhandles; i++)
            if (st->handles[i].size == k.count)
                k.buf = st->handles[i].id;
    }
    chaos_model_step(st->m, &k, &o);
    if (o.unmodelled)
        return -1;
    int ok;
    if (o.blocks)
        ok = 0;
    else if (k.op == CM_S_EXECUTE_AGENT && o.agent_starts)
        ok = ++st->agent_started > 0; /* what it returns: checked as the model's ends */
    else if (k.op == CM_S_IS_SHARED_BUFFER && o.code == NOERROR)
        ok = c->rc == o.is_shared || c->rc == o.alt_is_shared;
    else if (c->any_rc)
        ok = o.code == o.alt_code || chaos_model_resolve(st->m, &k, o.code, &o) == 0;
    else if (o.code != o.alt_code)
        ok = (c->rc == o.code || c->rc == o.alt_code) &&
             chaos_model_resolve(st->m, &k, c->rc, &o) == 0;
    else
        ok = c->rc == o.code;
    if (trace_level >= 2)
        fprintf(stderr, "  try #%d after %d: %s (model %s%s%s, %s)\n", (int)(c - H.calls), placed,
                ok ? "fits" : "no", o.blocks ? "blocks" : vdi_strerror(o.code),
                o.alt_code != o.code ? " or " : "",
                o.alt_code != o.code ? vdi_strerror(o.alt_code) : "", o.why ? o.why : "");
    if (!ok) {
        missed(c, placed, o.blocks ? 1 : o.code, o.alt_code,
               o.blocks ? "the call would block here" : o.why);
        return 0;
    }
    if (o.agent_returns) {
        st->agent_returns++;
        st->agent_code = o.agent_code;
        const hcall *a = st->agent_call >= 0 ? &H.calls[st->agent_call] : NULL;
        if (agent_judged && a && a->returned && !a->any_rc && a->rc != o.agent_code) {
            missed(a, placed, o.agent_code, o.agent_code,
                   "the agent ends here in the model, with another code");
            return 0;
        }
        st->agent_call = -1;
    }
    if (k.op == CM_S_EXECUTE_AGENT && o.agent_starts)
        st->agent_call = (int)(c - H.calls);
    if (k.op == CM_C_CLOSE && k.obj >= 0 && k.obj < CHAOS_MODEL_MAX_CLIENTS)
        st->client_closes[k.obj]++;
    if (k.op == CM_S_CLOSE && k.obj >= 0 && k.obj < CHAOS_MODEL_MAX_SERVERS)
        st->server_closes[k.obj]++;
    if (c->rc == NOERROR && k.op == CM_S_SEND_COMMAND && k.cmd >= 0 && k.cmd < CHAOS_MODEL_MAX_CMDS)
        st->sent_buf[k.cmd] = c->ptr;
    if (c->rc == NOERROR && k.op == CM_C_GET_COMMAND && c->ptr && o.delivered >= 0 &&
        st->sent_buf[o.delivered] && k.obj >= 0 && k.obj < CHAOS_MODEL_MAX_CLIENTS) {
        st->delta[k.obj] = (intptr_t)((uintptr_t)c->ptr - (uintptr_t)st->sent_buf[o.delivered]);
        st->delta_known[k.obj] = 1;
    }
    if (c->rc == NOERROR && k.op == CM_C_GET_BUFFER_HANDLE && k.buf >= 0 &&
        st->nhandles < H_MAX_MAP)
        st->handles[st->nhandles++] = (hmap){NULL, c->k.count, k.buf};
    if (c->rc == NOERROR && k.op == CM_C_GET_COMMAND && c->out && o.delivered >= 0)
        map_put(st->vdc, &st->nvdc, c->out, 0, o.delivered);
    if (c->rc == NOERROR && k.op == CM_S_ALLOCATE_BUFFER && c->out && o.buf >= 0)
        map_put(st->buf, &st->nbuf, c->out, k.size, o.buf);
    return 1;
}

/* Every call placed: an agent that returned in reality must have ended in the model too
 * (with its code: judged as it ended, see apply). */
static int final_check(const hstate *st) {
    if (!agent_judged || st->agent_call < 0 || !H.calls[st->agent_call].returned)
        return 1;
    missed(&H.calls[st->agent_call], H.n, 1, 1, "the model's agent never ends");
    return 0;
}

/* ---- memo: an order that failed from a state fails from the same state again ----------------
 * Orders of overlapping calls that commute reach the same state by many paths; without
 * this the search for a history that no order explains is exponential (a wrong return code
 * of the agent at its end, tried after every order of the calls before it). Keyed by the
 * set of calls placed (a sum of one constant per call) and the state's hash. */
#define MEMO_BITS 18
static uint64_t memo[1u << MEMO_BITS];
static uint32_t memo_used;
static uint64_t memo_gen = 1; /* entries of older checks are stale (their low bits) */

static uint64_t splitmix64(uint64_t z) {
    z *= 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t call_key(int i) {
    return splitmix64((uint64_t)(unsigned)i + 1u);
}

static uint64_t mix64(uint64_t h, uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h;
}

static uint64_t map_hash(const hmap *map, int n) { /* order-free: a map is a function of p */
    uint64_t h = 0;
    for (int i = 0; i < n; i++)
        h += splitmix64((uint64_t)(uintptr_t)map[i].p * 31u + map[i].size * 7u +
                        (uint32_t)map[i].id);
    return h;
}

static uint64_t state_hash(const hstate *st) {
    uint64_t h = chaos_model_hash(st->m);
    h = mix64(h, map_hash(st->vdc, st->nvdc));
    h = mix64(h, map_hash(st->buf, st->nbuf));
    h = mix64(h, (uint64_t)st->agent_started << 40 ^ (uint64_t)st->agent_returns << 20 ^
                     (uint64_t)(uint32_t)st->agent_code);
    h = mix64(h, (uint64_t)(uint32_t)st->agent_call);
    for (int i = 0; i < CHAOS_MODEL_MAX_CLIENTS; i++)
        h = mix64(h, (uint64_t)st->client_closes[i] << 32 ^ (uint64_t)st->delta[i] ^
                         (uint64_t)st->delta_known[i] << 63);
    for (int i = 0; i < CHAOS_MODEL_MAX_SERVERS; i++)
        h = mix64(h, (uint64_t)st->server_closes[i]);
    for (int i = 0; i < H.nvds; i++)
        h = mix64(h, (uint64_t)(uintptr_t)st->sent_buf[i]);
    for (int i = 0; i < st->nhandles; i++)
        h = mix64(h, (uint64_t)st->handles[i].size << 32 ^ (uint64_t)(uint32_t)st->handles[i].id);
    return h;
}

/* The memo holds 46 bits of key and 18 bits of generation: a new check needs no clearing. */
static int memo_slot(uint64_t key, uint64_t **slot) {
    uint64_t want = (key << MEMO_BITS) | (memo_gen & ((1u << MEMO_BITS) - 1));
    uint32_t mask = (1u << MEMO_BITS) - 1;
    for (uint32_t i = (uint32_t)(key >> 20) & mask, probes = 0; probes < 64;
         i = (i + 1) & mask, probes++) {
        uint64_t v = memo[i];
        if (v == want) {
            *slot = &memo[i];
            return 1;
        }
        if ((v & mask) != (memo_gen & mask)) { /* empty, or of an older check */
            *slot = &memo[i];
            return 0;
        }
    }
    *slot = NULL;
    return 0;
}

static int memo_seen(uint64_t key) {
    uint64_t *slot;
    return memo_slot(key, &slot);
}

static void memo_put(uint64_t key) {
    uint64_t *slot;
    if (!memo_slot(key, &slot) && slot && memo_used < (3u << MEMO_BITS) / 4) {
        *slot = (key << MEMO_BITS) | (memo_gen & ((1u << MEMO_BITS) - 1));
        memo_used++;
    }
}

static long nodes;
static int required; /* the calls that returned: every order must place them all */

/* 1 found an order, 0 none, -1 undecidable. done[] marks the calls placed; a call that
 * never returned (its actor died with the peer) may be placed or left out. */
static int search(hstate *st, uint8_t *done, int placed, int placed_required, uint64_t dkey) {
    if (placed_required == required)
        return final_check(st);
    uint32_t minret = UINT32_MAX;
    int first = -1, ncand = 0;
    for (int i = 0; i < H.n; i++)
        if (!done[i] && H.calls[i].ret < minret) {
            minret = H.calls[i].ret;
            first = i;
        }
    for (int i = 0; i < H.n; i++)
        if (!done[i] && H.calls[i].entry < minret)
            ncand += 1 + aborted_by_close(&H.calls[i]);
    /* The memo prunes a state met again by another order. Only the states with more than
     * one way on are kept in it: a state with one way on leads to the next state that has
     * more, which the memo holds, so hashing it too would only cost (most states of a run
     * have one way on, and hashing the model is the search's largest cost). */
    uint64_t key = 0;
    if (ncand > 1) {
        key = mix64(dkey, state_hash(st));
        if (memo_seen(key))
            return 0;
    }
    /* The call that returns first goes first; then the others that overlap it. Where there
     * is one way on, the state is changed in place; else each way works on a copy. */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < H.n; i++) {
            if (done[i] || H.calls[i].entry >= minret || (pass == 0) != (i == first))
                continue;
            for (int noop = 0; noop <= aborted_by_close(&H.calls[i]); noop++) {
                if (++nodes > H_NODE_BUDGET) {
                    undecidable("the search for an order is too large");
                    return -1;
                }
                hstate *next = ncand == 1 ? st : state_clone(st);
                if (!next) {
                    undecidable("out of memory in the search");
                    return -1;
                }
                int r = noop ? 1 : apply(next, &H.calls[i], placed);
                if (r == 1) {
                    done[i] = 1;
                    r = search(next, done, placed + 1, placed_required + H.calls[i].returned,
                               dkey + call_key(i) + (uint64_t)noop);
                    done[i] = 0;
                }
                if (next != st)
                    state_free(next);
                if (r != 0)
                    return r;
            }
        }
    if (ncand > 1)
        memo_put(key);
    return 0;
}

/* VDICHAOS_HISTORY=1: print the recorded history (one call a line) to stderr. */
static void dump(chaos_engine *e) {
    const char *v = getenv("VDICHAOS_HISTORY");
    trace_level = v ? atoi(v) : 0;
    if (trace_level <= 0)
        return;
    fprintf(stderr, "history: %d calls%s%s\n", H.n, H.undecidable ? ", not judged: " : "",
            H.undecidable ? H.undecidable : "");
    for (int i = 0; i < H.n; i++) {
        const hcall *c = &H.calls[i];
        const hdev *d = c->dev ? dev_of(c->dev, c->entry) : NULL;
        fprintf(stderr, "  #%-3d [%4u,%4u] %-10s %s %-24s obj %d%s%s -> %s\n", i, c->entry, c->ret,
                chaos_actor_name(e, c->actor), c->side ? "server" : "client",
                chaos_model_op_name(c->k.op), c->k.obj, c->has_name || d ? " " : "",
                c->has_name ? c->name
                : d         ? d->name
                            : "",
                c->returned ? vdi_strerror(c->rc) : "(no return)");
    }
}

int chaos_history_check(chaos_engine *e) {
    H.on = 0;
    if (chaos_faults_injected(e))
        undecidable("an injected fault, which the model leaves out");
    required = 0;
    for (int i = 0; i < H.n; i++) {
        hcall *c = &H.calls[i];
        required += c->returned;
        if (!c->returned) { /* optional, and whatever it would have answered */
            c->ret = UINT32_MAX;
            c->any_rc = 1;
        }
    }
    dump(e);
    if (H.undecidable || H.n == 0)
        return 0;
    hstate *st = state_new();
    if (st)
        chaos_model_set_async_take(st->m, 1); /* completions are taken by the agent, later */
    uint8_t *done = calloc((size_t)H.n, 1);
    memset(&far, 0, sizeof far);
    far.call = -1;
    nodes = 0;
    memo_used = 0;
    memo_gen++;
    agent_judged = H.nservers <= 1;
    int r = st && done ? search(st, done, 0, 0, 0) : -1;
    state_free(st);
    free(done);
    if (r == 0) {
        if (far.call < 0) {
            chaos_report(e, "model", "the completion agent's return code is not the model's");
            return 1;
        }
        const hcall *c = &H.calls[far.call];
        char want[80];
        if (far.code == 1)
            snprintf(want, sizeof want, "would block");
        else if (far.alt != far.code)
            snprintf(want, sizeof want, "says %s or %s", vdi_strerror(far.code),
                     vdi_strerror(far.alt));
        else
            snprintf(want, sizeof want, "says %s", vdi_strerror(far.code));
        chaos_report(e, "model",
                     "%s %s by actor %d (%s) returned %s; no order of the %d calls explains it "
                     "(after %d of them the model %s: %s)",
                     c->side ? "server" : "client", chaos_model_op_name(c->k.op), c->actor,
                     chaos_actor_name(e, c->actor), vdi_strerror(c->rc), H.n, far.placed, want,
                     far.why ? far.why : "?");
    }
    return r >= 0;
}

#ifdef CHAOS_HISTORY_TSAN_POP
#pragma clang attribute pop
#endif
