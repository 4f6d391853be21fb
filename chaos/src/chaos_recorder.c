/* The recorder (see chaos_recorder.h): the link routes every vdi_* call of the scenario
 * through __wrap_vdi_* below, which notes the arguments at entry, and the return code and
 * out-parameters at return, each stamped with a sequence number (the engine runs one actor
 * at a time, so the stamps are a total order of entries and returns). It records whether or
 * not the model oracle will judge the run: the replay's timeline is made of its notes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaos_internal.h"
#include "chaos_recorder.h"
#include "chaos/sanitizer.h"
#include "chaos_model.h"
#include "vdi/vdi.h"

/* The recorder is the engine's bookkeeping, not the scenario's memory: under TSan its
 * accesses are not instrumented (the fibers it runs on have no happens-before between them
 * on purpose, so that the scenario's own races show). The real calls stay instrumented:
 * they live in the reference's objects. */
#if defined(__clang__) && defined(CHAOS_TSAN)
#pragma clang attribute push(__attribute__((no_sanitize("thread"))), apply_to = function)
#define CHAOS_RECORDER_TSAN_POP 1
#endif

/* The record (chaos_recorder.h), and the recorder's own account of the run so far. */
static chaos_history H;
static struct {
    chaos_engine *e;
    int on, notes;
    uint32_t seq;
    const void *clients[CHAOS_MODEL_MAX_CLIENTS], *servers[CHAOS_MODEL_MAX_SERVERS];
    const void *vds[CHAOS_MODEL_MAX_CMDS];
    void (*routine[CHAOS_MODEL_MAX_CMDS])(VDS_Command *); /* the scenario's, by vds index */
    uint8_t swapped[CHAOS_MODEL_MAX_CMDS]; /* route() stands in that command's routine now */
    int depth[CHAOS_MAX_ACTORS + 1];
    int in_agent[CHAOS_MAX_ACTORS + 1];   /* the actor is inside execute_completion_agent */
    int in_routine[CHAOS_MAX_ACTORS + 1]; /* ... and inside a routine the agent called */
    uint32_t mark[CHAOS_MAX_ACTORS + 1];  /* the last sequence number the actor was seen at */
} R;

static int actor_now(void) {
    if (!R.on || !R.e)
        return 0;
    int a = chaos_actor_id(R.e);
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

void chaos_recorder_start(chaos_engine *e) {
    /* Everything but the big call table, whose entries begin() clears one by one. */
    R.e = e;
    H.undecidable = NULL;
    R.seq = 0;
    H.n = H.nclients = H.nservers = H.ndevs = H.nvds = 0;
    memset(R.routine, 0, sizeof R.routine);
    memset(R.swapped, 0, sizeof R.swapped);
    memset(R.depth, 0, sizeof R.depth);
    memset(R.in_agent, 0, sizeof R.in_agent);
    memset(R.in_routine, 0, sizeof R.in_routine);
    memset(R.mark, 0, sizeof R.mark);
    R.notes = chaos_notes_on(e); /* building the timeline's lines costs: only when kept */
    R.on = 1;
    chaos_engine_observe(e, &observer);
}

static void route(VDS_Command *cmd);

void chaos_recorder_stop(void) {
    R.on = 0;
    if (R.e)
        chaos_engine_observe(R.e, NULL);
    R.e = NULL; /* the engine is freed next */
    /* Give every command still in the library's hands its own routine back (callbacks
     * after this go straight to it). Only those: a command whose send was rejected had it
     * back at once, and may have lived on a stack that is gone (a run that ended in a hang
     * leaves actors suspended with such frames behind them). */
    for (int i = 0; i < H.nvds; i++) {
        VDS_Command *cmd = (VDS_Command *)(uintptr_t)R.vds[i];
        if (R.swapped[i] && cmd->completionRoutine == route)
            cmd->completionRoutine = R.routine[i];
        R.swapped[i] = 0;
    }
}

const hdev *chaos_history_dev(const chaos_history *h, const void *handle, uint32_t before) {
    const hdev *best = NULL;
    for (int i = 0; i < h->ndevs; i++)
        if (h->devs[i].h == handle && h->devs[i].since < before)
            best = &h->devs[i];
    return best;
}

chaos_history *chaos_recorder_end(void) {
    R.on = 0;
    return &H;
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
    c->entry = ++R.seq;
    c->actor = actor_now();
}

static void watchdog_event(void) {
    pending_abort(1);
}

/* The peer process died (chaos_kill_peer): to the model, an abort by the dead side that the
 * other learns of at some later moment, or never. */
static void peer_death(void *ctx, int side) {
    (void)ctx;
    if (R.on)
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
    if (!R.on)
        return -1;
    int a = actor_now();
    /* A call from inside another call is out of the model's reach, except a call the
     * agent's completion routine makes: the routine runs between two agent steps. */
    if (R.depth[a]++ > 0 && !(R.in_routine[a] && R.depth[a] == 2)) {
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
    c->k.obj = side ? index_of(R.servers, &H.nservers, CHAOS_MODEL_MAX_SERVERS, set)
                    : index_of(R.clients, &H.nclients, CHAOS_MODEL_MAX_CLIENTS, set);
    c->entry = ++R.seq;
    c->actor = a;
    if (R.notes)
        chaos_note(R.e, "> %s", short_name(op));
    return H.n++;
}

/* The timeline's line for a call that returned (cfg.record_notes). */
static void note_return(const hcall *c, int rc) {
    const hdev *d = c->dev ? chaos_history_dev(&H, c->dev, c->entry) : NULL;
    const char *what = c->has_name ? c->name : d ? d->name : NULL;
    /* The set's own name holds a process id: the timeline says "set" instead, so
     * that it reads the same in every replay. */
    for (int i = 0; what && i < H.n; i++)
        if (H.calls[i].k.op == CM_C_CREATE_EX && H.calls[i].has_name &&
            strcmp(H.calls[i].name, what) == 0)
            what = "set";
    if (c->k.op == CM_S_IS_SHARED_BUFFER && rc >= 0)
        chaos_note(R.e, "< %s = %d", short_name(c->k.op), rc);
    else
        chaos_note(R.e, "< %s%s%s%s = %s", short_name(c->k.op), what ? "(" : "", what ? what : "",
                   what ? ")" : "", c->any_rc ? "(freed)" : vdi_strerror(rc));
}

static int finish(int t, int rc) {
    if (t == -1)
        return rc;
    int a = actor_now();
    R.depth[a]--;
    if (t >= 0) {
        hcall *c = &H.calls[t];
        c->rc = rc;
        c->returned = 1;
        c->ret = ++R.seq;
        if (R.notes)
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
    if (!R.on)
        return -1;
    const hdev *d = dev ? chaos_history_dev(&H, dev, R.seq + 1) : NULL;
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
/* The link's names for the real functions and their wrappers, declared from vdi_api.def:
 * each as vdi.h declares the function (checked here), so a wrapper cannot drift from it. */
#define DECLARE(f, ret, params)                                                                    \
    ret REAL(f) params;                                                                            \
    ret WRAP(f) params;                                                                            \
    _Static_assert(__builtin_types_compatible_p(__typeof__(&f), ret(*) params),                    \
                   #f " is declared in vdi_api.def as in vdi.h");
#define VDI_CALL(fn, op, ret, params) DECLARE(fn, ret, params)
#define VDI_ALIAS(fn, ret, params) DECLARE(fn, ret, params)
#include "vdi_api.def"

/* The wrappers with nothing to note but the handle they pass: the set's, or the device's. */
#define WRAP_HANDLE_ONLY(f, op, side, type)                                                        \
    int WRAP(f)(type * s) {                                                                        \
        int t = begin(op, side, s);                                                                \
        return finish(t, REAL(f)(s));                                                              \
    }
#define WRAP_DEVICE_ONLY(f, op, side, type)                                                        \
    int WRAP(f)(type * d) {                                                                        \
        int t = dev_begin(op, side, d);                                                            \
        return finish(t, REAL(f)(d));                                                              \
    }
/* A free closes an object not in DNE: to the model a close, whose answer any state allows. */
#define WRAP_FREE(f, op, side, type)                                                               \
    void WRAP(f)(type * s) {                                                                       \
        int t = s ? begin(op, side, s) : -1;                                                       \
        if (t >= 0)                                                                                \
            H.calls[t].any_rc = 1;                                                                 \
        REAL(f)(s);                                                                                \
        (void)finish(t, NOERROR);                                                                  \
    }

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

WRAP_HANDLE_ONLY(vdi_client_set_close, CM_C_CLOSE, 0, vdi_client_set)

WRAP_FREE(vdi_client_set_free, CM_C_CLOSE, 0, vdi_client_set)

WRAP_HANDLE_ONLY(vdi_client_set_signal_abort, CM_C_SIGNAL_ABORT, 0, vdi_client_set)

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

WRAP_HANDLE_ONLY(vdi_server_set_end_configuration, CM_S_END_CONFIGURATION, 1, vdi_server_set)

int WRAP(vdi_server_set_execute_completion_agent)(vdi_server_set *s) {
    /* The completion routine runs inside this call: a call it makes is nested, and each
     * routine call is the agent taking a completion (see route()). */
    int t = begin(CM_S_EXECUTE_AGENT, 1, s), a = t >= 0 ? actor_now() : 0;
    if (t >= 0) {
        R.in_agent[a] = 1;
        R.mark[a] = R.seq;
    }
    int rc = REAL(vdi_server_set_execute_completion_agent)(s);
    if (t >= 0)
        R.in_agent[a] = 0;
    return finish(t, rc);
}

/* Every routine call comes through here while recording (the send wrapper swaps it in).
 * On the agent, it is the agent taking a completion: an event placed anywhere between the
 * agent's previous visible moment and this call. */
static void route(VDS_Command *cmd) {
    int i = 0;
    while (i < H.nvds && R.vds[i] != cmd)
        i++;
    void (*own)(VDS_Command *) = i < H.nvds ? R.routine[i] : NULL;
    int a = actor_now();
    int taken = R.on && R.in_agent[a] && R.depth[a] == 1 && i < H.nvds;
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
            c->entry = R.mark[a];
            c->ret = ++R.seq;
            c->actor = a;
            if (R.notes)
                chaos_note(R.e, "agent calls the routine of command %d with code %u", i,
                           cmd->completionCode);
        }
    }
    if (taken)
        R.in_routine[a] = 1;
    if (own)
        own(cmd);
    if (taken)
        R.in_routine[a] = 0;
    if (R.on)
        R.mark[a] = ++R.seq;
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

WRAP_HANDLE_ONLY(vdi_server_set_signal_abort, CM_S_SIGNAL_ABORT, 1, vdi_server_set)

WRAP_HANDLE_ONLY(vdi_server_set_close, CM_S_CLOSE, 1, vdi_server_set)

WRAP_FREE(vdi_server_set_free, CM_S_CLOSE, 1, vdi_server_set)

int WRAP(vdi_server_device_send_command)(vdi_server_device *d, VDS_Command *cmd) {
    int t = dev_begin(CM_S_SEND_COMMAND, 1, d), here = -1;
    if (t >= 0) {
        hcall *c = &H.calls[t];
        c->cmd = cmd;
        c->k.cmd = cmd ? index_of(R.vds, &H.nvds, CHAOS_MODEL_MAX_CMDS, cmd) : CHAOS_MODEL_NULL;
        if (cmd) {
            c->k.command_code = cmd->commandCode;
            c->k.command_size = cmd->size;
            c->k.in_position = (int64_t)cmd->inPosition;
            c->ptr = cmd->buffer;
            int mine = c->k.cmd >= 0 && R.vds[c->k.cmd] == cmd; /* (not when the table is full) */
            if (mine && cmd->completionRoutine != route)
                R.routine[c->k.cmd] = cmd->completionRoutine;
            c->k.routine_null = !cmd->completionRoutine;
            if (mine && cmd->completionRoutine && cmd->completionRoutine != route) {
                cmd->completionRoutine = route;
                R.swapped[c->k.cmd] = 1;
                here = c->k.cmd; /* swapped by this send */
            }
        }
    }
    int rc = finish(t, REAL(vdi_server_device_send_command)(d, cmd));
    /* Not accepted: its one callback (if any) has run, nothing will call it again. */
    if (here >= 0 && rc != NOERROR) {
        cmd->completionRoutine = R.routine[here];
        R.swapped[here] = 0;
    }
    return rc;
}

WRAP_DEVICE_ONLY(vdi_server_device_close, CM_S_CLOSE_DEVICE, 1, vdi_server_device)

#ifdef CHAOS_RECORDER_TSAN_POP
#pragma clang attribute pop
#endif
