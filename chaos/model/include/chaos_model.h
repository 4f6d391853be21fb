/* chaos_model.h: an executable model of VDI-SPEC sections 3-5 and 8. Given the next call of
 * a SEQUENTIAL history over both sides of one set (client objects, secondaries, server
 * objects, devices, commands, buffers), it predicts the return code and the effects, so a
 * harness can compare every call of the reference with it. Pure, deterministic, no I/O. */
#ifndef CHAOS_MODEL_H
#define CHAOS_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "vdi/vdi.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CHAOS_MODEL_MAX_CLIENTS 4 /* client objects (primary or secondary) */
#define CHAOS_MODEL_MAX_SERVERS 2 /* server objects */
#define CHAOS_MODEL_MAX_SETS 8    /* sets created over one history (re-creation) */
#define CHAOS_MODEL_MAX_CMDS 96   /* VDS_Command pool entries */
#define CHAOS_MODEL_MAX_BUFS 256  /* buffers allocated over one history */
#define CHAOS_MODEL_MAX_REQS 32   /* distinct request_buffers entries remembered per set */

/* References the harness resolves from real pointers before calling the model. */
#define CHAOS_MODEL_NULL (-1)  /* a NULL handle or pointer */
#define CHAOS_MODEL_OTHER (-2) /* a non-NULL pointer that is none of the known objects */

/* The calls: one op for each function of vdi_api.def that the model has as its own (the
 * others are these calls to it), in that list's order, and the agent's taking of a
 * completion. What each reads of chaos_model_call:
 *   client side (obj = client object index)
 *     CREATE_EX: instance, name, cfg        GET_CONFIGURATION: timeout, cfg (cfg_null)
 *     OPEN_DEVICE: name, out_null           CLOSE, SIGNAL_ABORT: nothing more
 *     OPEN_IN_SECONDARY: instance, name
 *     GET_BUFFER_HANDLE: buf (+offset): the client's address of that buffer
 *     MAP_BUFFER_HANDLE: buf: the buffer whose handle is passed (OTHER: unknown)
 *     GET_COMMAND: dev (slot held by obj), timeout, out_null
 *     COMPLETE_COMMAND: dev, cmd (pool index delivered at that pointer, or OTHER)
 *   server side (obj = server object index)
 *     OPEN: instance, name                  GET_CONFIGURATION: cfg_null
 *     BEGIN_CONFIGURATION: features, block_size, alignment, max_transfer, timeout
 *     REQUEST_BUFFERS: size, alignment, count
 *     QUERY_AVAILABLE: size, alignment, out_null
 *     END_CONFIGURATION, EXECUTE_AGENT, SIGNAL_ABORT, CLOSE: nothing more
 *     OPEN_DEVICE: name, out_null           ALLOCATE_BUFFER: size, alignment, out_null
 *     FREE_BUFFER: buf (+offset), size      IS_SHARED_BUFFER: buf (+offset)
 *     SEND_COMMAND: dev (slot), cmd (pool index), routine_null, command fields
 *     CLOSE_DEVICE: dev (slot) */
typedef enum chaos_model_op {
#define VDI_CALL(fn, op, ret, params) CM_##op,
#include "vdi_api.def"
    /* the agent (only with chaos_model_set_async_take): it takes a completion and calls the
     * routine; cmd = pool index, completion_code = the code the routine saw */
    CM_S_AGENT_TAKE,
    CM_OP_COUNT
} chaos_model_op;

typedef struct chaos_model_call {
    chaos_model_op op;
    int obj; /* client or server object index; CHAOS_MODEL_NULL for a NULL set handle */
    int dev; /* device slot whose handle is passed; CHAOS_MODEL_NULL for NULL */
    const char *instance, *name; /* NULL is NULL */
    VDConfig cfg;                /* create: the client's configuration */
    int cfg_null, out_null;      /* a NULL cfg / out-parameter */
    long timeout;
    uint32_t features, block_size, alignment, max_transfer; /* begin_configuration */
    uint32_t size, count;                                   /* buffers */
    int buf;        /* buffer id (live or not), CHAOS_MODEL_NULL, or CHAOS_MODEL_OTHER */
    int64_t offset; /* byte offset from that buffer's data zone start */
    int cmd;        /* VDS_Command pool index, or NULL / OTHER */
    int routine_null;
    int32_t command_code, command_size;
    int64_t in_position;
    int cmd_buf;                     /* send: buffer id of cmd->buffer, NULL or OTHER */
    int64_t cmd_offset;              /* send: offset of cmd->buffer from that zone's start */
    uint32_t completion_code, bytes; /* complete_command */
    uint64_t position;
} chaos_model_call;

/* One completion routine call the history implies. */
typedef struct chaos_model_callback {
    int cmd;              /* pool index */
    uint32_t code;        /* completionCode */
    uint32_t bytes;       /* bytesTransferred */
    int64_t out_position; /* outPosition the routine must see */
    int sync;             /* must have run when the call returned (else: soon, by the agent) */
} chaos_model_callback;

/* The model's verdict on one call. Outputs are EXACT unless said otherwise:
 * - code: the return code; alt_code is a second allowed code (== code when exact);
 * - unmodelled: the model has no single answer (the harness must not make the call);
 * - blocks: the call would block forever in a single-threaded history (same);
 * - callbacks: every routine call this step implies, in per-device order;
 * - agent_returns: a running agent returns now with agent_code (after its callbacks).
 * BOUNDS only: avail_lo..avail_hi (query_available_buffers), area_lo..area_hi
 * (bufferAreaSize); see chaos/model/README.md. */
typedef struct chaos_model_outcome {
    int code, alt_code;
    int unmodelled, blocks;
    const char *why;  /* the rule that decided, for messages */
    int slot;         /* open_device: the device slot bound */
    int buf;          /* allocate_buffer: the new buffer id */
    int delivered;    /* get_command: the pool index delivered */
    int agent_starts; /* execute_completion_agent keeps running (the harness threads it) */
    int agent_returns, agent_code;
    size_t ncallbacks;
    chaos_model_callback callbacks[CHAOS_MODEL_MAX_CMDS];
    VDConfig cfg; /* get_configuration: expected fields (bufferAreaSize: bounds) */
    uint32_t avail_lo, avail_hi;
    uint64_t area_lo, area_hi;
    int is_shared; /* is_shared_buffer: 1/0; alt_is_shared another allowed answer */
    int alt_is_shared;
} chaos_model_outcome;

typedef struct chaos_model chaos_model;

/* A fresh model: no set exists, every object is in DNE. NULL when memory is exhausted. */
chaos_model *chaos_model_new(void);
void chaos_model_free(chaos_model *m);
/* Asynchronous completions (for concurrent histories): complete_command only records the
 * client's result, and the command stays outstanding until a CM_S_AGENT_TAKE; the set can
 * be Normally Terminated only after that, and an abort before it delivers the client's
 * result, not 995. Off by default: then complete_command takes at once. */
void chaos_model_set_async_take(chaos_model *m, int on);

/* dst becomes a copy of src (both from chaos_model_new): for searches that branch. */
void chaos_model_copy(chaos_model *dst, const chaos_model *src);

/* A hash of everything that decides the model's later answers: two models that hash
 * equal answer every later history alike (up to collisions). For searches that memoize. */
uint64_t chaos_model_hash(const chaos_model *m);

/* Predict one call and apply its effects. out is filled in full. When the outcome is
 * unmodelled or blocks, the model's state is unchanged. */
void chaos_model_step(chaos_model *m, const chaos_model_call *call, chaos_model_outcome *out);

/* When an outcome allows two codes (alt_code != code), the step applied nothing; after
 * making the call, the harness tells the model which one happened and the model applies
 * that (out is refilled, exact). Returns 0, or -1 when actual was not allowed. */
int chaos_model_resolve(chaos_model *m, const chaos_model_call *call, int actual,
                        chaos_model_outcome *out);

/* Observations for the harness and for tests. */
int chaos_model_agent_running(const chaos_model *m, int server);
int chaos_model_server_state(const chaos_model *m, int server); /* CM_ST_* */
int chaos_model_client_state(const chaos_model *m, int client); /* CM_ST_* */
int chaos_model_cmd_outstanding(const chaos_model *m, int cmd);
int chaos_model_buf_live(const chaos_model *m, int buf);
uint32_t chaos_model_buf_size(const chaos_model *m, int buf);
/* Device slot of that name on the object's set, or -1 (not bound). */
int chaos_model_slot_of(const chaos_model *m, int server_side, int obj, const char *name);
/* The client object that holds slot (-1 none), on that server's set. */
int chaos_model_slot_holder(const chaos_model *m, int server, int slot);

enum chaos_model_state {
    CM_ST_DNE,
    CM_ST_CONNECTED, /* server only */
    CM_ST_CONFIGURABLE,
    CM_ST_INITIALIZING,
    CM_ST_ACTIVE,
    CM_ST_NORMALLY_TERMINATED,
    CM_ST_ABORT
};

const char *chaos_model_op_name(chaos_model_op op);
const char *chaos_model_state_name(int state);

#ifdef __cplusplus
}
#endif

#endif /* CHAOS_MODEL_H */
