/* chaos_model.c: the executable model of VDI-SPEC sections 3-5 and 8 behind chaos_model.h.
 * One function per call, each a straight column of checks in the precedence of 8.1 and the
 * tables, then the effects. Never calls the reference; everything is private memory. */
#include "chaos_model.h"

#include <stdlib.h>
#include <string.h>

enum { CMD_IDLE, CMD_QUEUED, CMD_DELIVERED, CMD_COMPLETED /* async take: not yet taken */ };

/* A forced answer after an allowed pair (chaos_model_resolve): NOERROR is 0, so say so. */
#define FORCE_OK 1

/* Slack the reference may add to the area beyond the buffers (layout is its business). */
#define AREA_SLACK (1ull << 20)

typedef struct cm_req {
    uint32_t size, align;
    uint64_t count;
} cm_req;

typedef struct cm_dev {
    char name[VDI_MAX_NAME + 1];
    int bound;
    int s_opened, s_closed;
    int holder;    /* client object holding it, -1 */
    int saw_close; /* the holder's get_command returned VD_E_CLOSE */
    int ioerr;
    int nout; /* outstanding commands (VDI-SPEC 4) */
} cm_dev;

typedef struct cm_set {
    int used;
    int has_instance;
    char instance[VDI_MAX_INSTANCE + 1];
    char name[VDI_MAX_NAME + 1];
    int linked; /* the name refers to this set (until the creator's close) */
    int aborted;
    int server; /* attached server object, -1 */
    int server_ever, server_closed;
    int primary_configured; /* the primary finished get_configuration (8.13) */
    int configured;         /* end_configuration succeeded */
    VDConfig ccfg;          /* fields 0-6 as the client gave them */
    uint32_t s_features, block_size, s_align, max_transfer, set_align;
    cm_req reqs[CHAOS_MODEL_MAX_REQS];
    size_t nreqs;
    int reqs_lost;             /* more distinct requests than remembered: guarantees are off */
    uint64_t pend_lo, pend_hi; /* summed requests during configuration (bounds) */
    uint64_t area_lo, area_hi; /* the area once configured (bounds) */
    uint32_t ndev;
    cm_dev dev[VDI_MAX_DEVICES];
} cm_set;

typedef struct cm_client {
    int set; /* -1: DNE */
    int secondary, configured, active, nt;
} cm_client;

typedef struct cm_server {
    int set;   /* -1: DNE */
    int state; /* CM_ST_CONNECTED .. CM_ST_ACTIVE */
    int nt, agent;
} cm_server;

typedef struct cm_cmd {
    int state, set, slot, holder;
    uint64_t seq;
    int32_t code, size;
    int64_t out_pos;
    uint32_t done_code, done_bytes; /* CMD_COMPLETED: the client's result */
} cm_cmd;

typedef struct cm_buf {
    int live, set;
    int kept; /* live when the server closed: the client's view of it stays (4) */
    uint32_t size, align;
} cm_buf;

struct chaos_model {
    cm_set sets[CHAOS_MODEL_MAX_SETS];
    cm_client clients[CHAOS_MODEL_MAX_CLIENTS];
    cm_server servers[CHAOS_MODEL_MAX_SERVERS];
    cm_cmd cmds[CHAOS_MODEL_MAX_CMDS];
    cm_buf bufs[CHAOS_MODEL_MAX_BUFS];
    int nbufs;
    uint64_t seq;
    int async_take;
};

/* ---- small helpers ----------------------------------------------------------------- */

static int pow2(uint64_t x) {
    return x && !(x & (x - 1));
}

static uint64_t sat_add(uint64_t a, uint64_t b) {
    return a + b < a ? UINT64_MAX : a + b;
}

static uint64_t sat_mul(uint64_t a, uint64_t b) {
    if (a && b > UINT64_MAX / a)
        return UINT64_MAX;
    return a * b;
}

static int valid_chars(const char *s, size_t max) {
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (n >= max || c < 0x20 || c > 0x7e || c == '\\' || c == '/')
            return 0;
    }
    return n >= 1;
}

static int valid_name(const char *s) {
    return s && valid_chars(s, VDI_MAX_NAME);
}

/* NULL is the default instance (valid); "" or a bad name is not (8.2). */
static int valid_instance(const char *s) {
    return !s || valid_chars(s, VDI_MAX_INSTANCE);
}

static int valid_buf_align(uint32_t a) {
    return a == 0 || (pow2(a) && a <= VDI_MAX_ALIGNMENT);
}

static void verdict(chaos_model_outcome *o, int code, const char *why) {
    o->code = o->alt_code = code;
    o->why = why;
}

static void either(chaos_model_outcome *o, int code, int alt, const char *why) {
    o->code = code;
    o->alt_code = alt;
    o->why = why;
}

/* Decide and leave the handler (a straight column of checks). */
#define VERDICT(o, code, why)                                                                      \
    do {                                                                                           \
        verdict(o, code, why);                                                                     \
        return;                                                                                    \
    } while (0)
#define EITHER(o, code, alt, why)                                                                  \
    do {                                                                                           \
        either(o, code, alt, why);                                                                 \
        return;                                                                                    \
    } while (0)

static void callback(chaos_model *m, chaos_model_outcome *o, int cmd, uint32_t code, int sync) {
    if (o->ncallbacks >= CHAOS_MODEL_MAX_CMDS)
        return;
    chaos_model_callback *cb = &o->callbacks[o->ncallbacks++];
    cb->cmd = cmd;
    cb->code = code;
    cb->bytes = 0;
    cb->out_position = m->cmds[cmd].out_pos;
    cb->sync = sync;
}

static cm_client *client_of(chaos_model *m, int obj) {
    if (obj < 0 || obj >= CHAOS_MODEL_MAX_CLIENTS)
        return NULL;
    return &m->clients[obj];
}

static cm_server *server_of(chaos_model *m, int obj) {
    if (obj < 0 || obj >= CHAOS_MODEL_MAX_SERVERS)
        return NULL;
    return &m->servers[obj];
}

static cm_set *set_by_key(chaos_model *m, const char *instance, const char *name) {
    for (int i = 0; i < CHAOS_MODEL_MAX_SETS; i++) {
        cm_set *s = &m->sets[i];
        if (!s->used || !s->linked || s->has_instance != (instance != NULL))
            continue;
        if (instance && strcmp(s->instance, instance) != 0)
            continue;
        if (strcmp(s->name, name) == 0)
            return s;
    }
    return NULL;
}

/* An abort by a side that was not Normally Terminated reaches both sides, a Normally
 * Terminated one included (5.3: the whole set enters Abort); a side's own signal_abort or
 * close in Normally Terminated changes nothing (the tables), so it never sets the flag. */
static int client_aborted(const chaos_model *m, const cm_client *c) {
    return c->set >= 0 && m->sets[c->set].aborted;
}

static int server_aborted(const chaos_model *m, const cm_server *s) {
    return s->set >= 0 && m->sets[s->set].aborted;
}

/* The slot a device name binds to on this set, or -1 (8.10, VDI-SPEC 4). */
static int slot_for(const cm_set *s, const char *name, int *is_new) {
    *is_new = 0;
    if (!valid_name(name))
        return -1;
    if (strcmp(name, s->name) == 0)
        return 0;
    for (uint32_t i = 1; i < s->ndev; i++)
        if (s->dev[i].bound && strcmp(s->dev[i].name, name) == 0)
            return (int)i;
    for (uint32_t i = 1; i < s->ndev; i++)
        if (!s->dev[i].bound) {
            *is_new = 1;
            return (int)i;
        }
    return -1;
}

static void bind_slot(cm_set *s, int slot, const char *name) {
    if (!s->dev[slot].bound) {
        s->dev[slot].bound = 1;
        strncpy(s->dev[slot].name, name, VDI_MAX_NAME);
    }
}

/* A generous upper bound of what one buffer can take in the area. */
static uint64_t footprint_hi(const cm_set *s, uint32_t size, uint32_t align) {
    uint64_t eff = align > s->set_align ? align : s->set_align;
    return (uint64_t)size + s->ccfg.prefixZoneSize + 2 * eff + 2 * VDI_MAX_ALIGNMENT;
}

static void add_req(cm_set *s, uint32_t size, uint32_t align, uint32_t count) {
    for (size_t i = 0; i < s->nreqs; i++)
        if (s->reqs[i].size == size && s->reqs[i].align == align) {
            s->reqs[i].count = sat_add(s->reqs[i].count, count);
            return;
        }
    if (s->nreqs == CHAOS_MODEL_MAX_REQS) {
        s->reqs_lost = 1;
        return;
    }
    s->reqs[s->nreqs].size = size;
    s->reqs[s->nreqs].align = align;
    s->reqs[s->nreqs].count = count;
    s->nreqs++;
}

/* How many more (size, align) buffers the requests guarantee, given the live ones: every
 * requested buffer fits at the same time (VDI-SPEC 4), so if each live buffer matches a
 * request exactly, the unmatched requests of this shape are guaranteed. */
static uint64_t guaranteed(const chaos_model *m, int set, uint32_t size, uint32_t align) {
    const cm_set *s = &m->sets[set];
    if (s->reqs_lost)
        return 0;
    uint64_t left[CHAOS_MODEL_MAX_REQS];
    for (size_t i = 0; i < s->nreqs; i++)
        left[i] = s->reqs[i].count;
    for (int b = 0; b < m->nbufs; b++) {
        const cm_buf *bu = &m->bufs[b];
        if (!bu->live || bu->set != set)
            continue;
        size_t i = 0;
        while (i < s->nreqs && !(s->reqs[i].size == bu->size && s->reqs[i].align == bu->align))
            i++;
        if (i == s->nreqs || left[i] == 0)
            return 0;
        left[i]--;
    }
    for (size_t i = 0; i < s->nreqs; i++)
        if (s->reqs[i].size == size && s->reqs[i].align == align)
            return left[i];
    return 0;
}

static uint64_t live_sum(const chaos_model *m, int set) {
    uint64_t sum = 0;
    for (int b = 0; b < m->nbufs; b++)
        if (m->bufs[b].live && m->bufs[b].set == set)
            sum += m->bufs[b].size;
    return sum;
}

static const cm_buf *live_buf(const chaos_model *m, int id, int set) {
    if (id < 0 || id >= m->nbufs || !m->bufs[id].live || m->bufs[id].set != set)
        return NULL;
    return &m->bufs[id];
}

/* A buffer as the client's buffer-handle calls see it: live, or live when the server
 * closed (the server's close frees nothing in the client's view of the area). */
static const cm_buf *client_buf(const chaos_model *m, int id, int set) {
    if (id < 0 || id >= m->nbufs || m->bufs[id].set != set ||
        !(m->bufs[id].live || m->bufs[id].kept))
        return NULL;
    return &m->bufs[id];
}

/* ---- abort, drain and the normal end ---------------------------------------------- */

/* The agent's drain: one 995 per outstanding command, per device in send order. */
static void drain(chaos_model *m, int set, chaos_model_outcome *o, int sync) {
    cm_set *s = &m->sets[set];
    for (uint32_t slot = 0; slot < s->ndev; slot++) {
        for (;;) {
            int best = -1;
            for (int c = 0; c < CHAOS_MODEL_MAX_CMDS; c++) {
                const cm_cmd *cc = &m->cmds[c];
                if (cc->state == CMD_IDLE || cc->set != set || cc->slot != (int)slot)
                    continue;
                if (best < 0 || cc->seq < m->cmds[best].seq)
                    best = c;
            }
            if (best < 0)
                break;
            if (m->cmds[best].state == CMD_COMPLETED) { /* taken now, with its real result */
                callback(m, o, best, m->cmds[best].done_code, sync);
                o->callbacks[o->ncallbacks - 1].bytes = m->cmds[best].done_bytes;
            } else {
                callback(m, o, best, ERROR_OPERATION_ABORTED, sync);
            }
            m->cmds[best].state = CMD_IDLE;
        }
        s->dev[slot].nout = 0;
    }
}

/* The whole set enters Abort (5.3): sides already Normally Terminated stay so. A running
 * agent drains and returns VD_E_ABORT. */
static void abort_set(chaos_model *m, int set, chaos_model_outcome *o, int sync) {
    cm_set *s = &m->sets[set];
    s->aborted = 1;
    if (s->server >= 0) {
        cm_server *sv = &m->servers[s->server];
        if (!sv->nt && sv->agent) {
            drain(m, set, o, sync);
            sv->agent = 0;
            o->agent_returns = 1;
            o->agent_code = VD_E_ABORT;
        }
    }
}

static int client_nt_now(const chaos_model *m, int obj) {
    const cm_client *c = &m->clients[obj];
    if (c->set < 0 || !c->active || c->nt || m->sets[c->set].aborted)
        return 0;
    const cm_set *s = &m->sets[c->set];
    for (uint32_t i = 0; i < s->ndev; i++) {
        if (!s->dev[i].s_closed)
            return 0;
        if (s->dev[i].holder == obj && !s->dev[i].saw_close)
            return 0;
    }
    for (int k = 0; k < CHAOS_MODEL_MAX_CMDS; k++)
        if (m->cmds[k].state == CMD_DELIVERED && m->cmds[k].set == c->set &&
            m->cmds[k].holder == obj)
            return 0;
    return 1;
}

static int server_nt_now(const chaos_model *m, int obj) {
    const cm_server *sv = &m->servers[obj];
    if (sv->set < 0 || sv->nt || sv->state != CM_ST_ACTIVE || m->sets[sv->set].aborted)
        return 0;
    const cm_set *s = &m->sets[sv->set];
    for (uint32_t i = 0; i < s->ndev; i++)
        if (!s->dev[i].s_opened || !s->dev[i].s_closed || s->dev[i].nout)
            return 0;
    return 1;
}

static void settle(chaos_model *m, chaos_model_outcome *o) {
    for (int i = 0; i < CHAOS_MODEL_MAX_SERVERS; i++)
        if (server_nt_now(m, i)) {
            m->servers[i].nt = 1;
            if (m->servers[i].agent) {
                m->servers[i].agent = 0;
                o->agent_returns = 1;
                o->agent_code = NOERROR;
            }
        }
    for (int i = 0; i < CHAOS_MODEL_MAX_CLIENTS; i++)
        if (client_nt_now(m, i))
            m->clients[i].nt = 1;
}

/* ---- client side ------------------------------------------------------------------- */

static void c_create(chaos_model *m, const chaos_model_call *k, chaos_model_outcome *o) {
    cm_client *c = client_of(m, k->obj);
    if (!c || !k->name || k->cfg_null)
        VERDICT(o, VD_E_INVALID, "8.1 NULL handle or pointer");
    if (c->set >= 0)
        VERDICT(o, VD_E_PROTOCOL, "3 create: object not in DNE");
    if (!valid_instance(k->instance))
        VERDICT(o, VD_E_INSTANCE_NAME, "8.2 bad instance name");
    if (!valid_name(k->name))
        VERDICT(o, VD_E_INVALID, "8.2 bad set name");
    const VDConfig *g = &k->cfg;
    if (g->deviceCount == 0 || g->deviceCount > VDI_MAX_DEVICES ||
        (g->features & ~VDF_ClientRequestable) || !valid_buf_align(g->alignment) ||
        g->prefixZoneSize > VDI_MAX_ALIGNMENT)
        VERDICT(o, VD_E_NOTSUPPORTED, "8.6 unsupported configuration");
    if (set_by_key(m, k->instance, k->name))
        VERDICT(o, VD_E_BUSY, "8.4 the name is held by a live set");
    int idx = -1;
    for (int i = 0; i < CHAOS_MODEL_MAX_SETS && idx < 0; i++)
        if (!m->sets[i].used)
            idx = i;
    if (idx < 0) {
        o->unmodelled = 1;
        VERDICT(o, NOERROR, "model: too many sets in one history");
    }
    cm_set *s = &m->sets[idx];
    memset(s, 0, sizeof *s);
    s->used = s->linked = 1;
    s->server = -1;
    s->has_instance = k->instance != NULL;
    if (k->instance)
        strncpy(s->instance, k->instance, VDI_MAX_INSTANCE);
    strncpy(s->name, k->name, VDI_MAX_NAME);
    s->ccfg = *g;
    s->ccfg.blockSize = s->ccfg.maxIODepth = s->ccfg.maxTransferSize = 0;
    s->ccfg.bufferAreaSize = 0;
    s->ndev = g->deviceCount;
    for (uint32_t i = 0; i < s->ndev; i++)
        s->dev[i].holder = -1;
    bind_slot(s, 0, k->name);
    memset(c, 0, sizeof *c);
    c->set = idx;
    verdict(o, NOERROR, "3 create: DNE -> Configurable");
}

static void fill_client_cfg(const cm_set *s, chaos_model_outcome *o) {
    o->cfg = s->ccfg;
    o->cfg.features = s->ccfg.features | (s->s_features & (VDF_WriteMedia | VDF_ReadMedia));
    if ((s->s_features & VDF_CompleteEnabled) && (s->ccfg.features & VDF_RequestComplete))
        o->cfg.features |= VDF_CompleteEnabled;
    o->cfg.blockSize = s->block_size;
    o->cfg.maxIODepth = VDI_MAX_IO_DEPTH;
    o->cfg.maxTransferSize = s->max_transfer;
    o->area_lo = s->area_lo;
    o->area_hi = s->area_hi;
}

static void c_get_configuration(chaos_model *m, const chaos_model_call *k, chaos_model_outcome *o) {
    cm_client *c = client_of(m, k->obj);
    if (!c || k->cfg_null)
        VERDICT(o, VD_E_INVALID, "8.1 NULL handle or pointer");
    if (c->set < 0)
        VERDICT(o, VD_E_PROTOCOL, "3 get_configuration in DNE");
    if (client_aborted(m, c))
        VERDICT(o, VD_E_ABORT, "3 get_configuration in Abort");
    cm_set *s = &m->sets[c->set];
    if (!c->configured && !s->configured) {
        if (k->timeout < 0) {
            o->blocks = 1;
            VERDICT(o, VD_E_TIMEOUT, "single thread: waits for end_configuration");
        }
        VERDICT(o, VD_E_TIMEOUT, "3 get_configuration waits; nothing configured");
    }
    fill_client_cfg(s, o);
    if (!c->configured) {
        c->configured = 1;
        if (!c->secondary)
            s->primary_configured = 1;
    }
    verdict(o, NOERROR, "3 get_configuration: -> Initializing");
}

static void c_open_device(chaos_model *m, const chaos_model_call *k, chaos_model_outcome *o) {
    cm_client *c = client_of(m, k->obj);
    if (!c || !k->name || k->out_null)
        VERDICT(o, VD_E_INVALID, "8.1 NULL handle or pointer");
    if (c->set < 0)
        VERDICT(o, VD_E_PROTOCOL, "3 open_device in DNE");
    if (client_aborted(m, c))
        VERDICT(o, VD_E_ABORT, "3 open_device in Abort");
    if (!c->configured || c->nt)
        VERDICT(o, VD_E_PROTOCOL, "3 open_device in Configurable or Normally Terminated");
    cm_set *s = &m->sets[c->set];
    int is_new;
    int slot = slot_for(s, k->name, &is_new);
    if (slot >= 0 && !is_new && s->dev[slot].holder == k->obj)
        VERDICT(o, VD_E_PROTOCOL, "8.10 this object already opened the device");
    if (slot >= 0 && !is_new && s->dev[slot].holder >= 0)
        VERDICT(o, VD_E_PROTOCOL, "8.10 another client object holds the device");
    int all_held = 1;
    for (uint32_t i = 0; i < s->ndev; i++)
        if (s->dev[i].holder < 0)
            all_held = 0;
    if (all_held && !valid_name(k->name))
        EITHER(o, VD_E_OPEN, VD_E_INVALID, "8.10 vs 8.2: every device held, malformed name");
    if (all_held)
        VERDICT(o, VD_E_OPEN, "8.10 every device is held");
    if (slot < 0)
        VERDICT(o, VD_E_INVALID, "8.10 the name cannot bind");
    bind_slot(s, slot, k->name);
    s->dev[slot].holder = k->obj;
    s->dev[slot].saw_close = 0;
    c->active = 1;
    o->slot = slot;
    verdict(o, NOERROR, "3 open_device: -> Active");
}

static void c_close(chaos_model *m, const chaos_model_call *k, chaos_model_outcome *o) {
    cm_client *c = client_of(m, k->obj);
    if (!c)
        VERDICT(o, VD_E_INVALID, "8.1 NULL handle");
    if (c->set < 0)
        VERDICT(o, VD_E_PROTOCOL, "5.2 close: not created");
    cm_set *s = &m->sets[c->set];
    int code = NOERROR;
    if (c->nt || s->aborted) {
        verdict(o, NOERROR, "5.2 close in Normally Terminated or Abort");
    } else {
        int unfinished = 0;
        for (uint32_t i = 0; i < s->ndev; i++)
            if (s->dev[i].holder == k->obj && !s->dev[i].saw_close)
                unfinished = 1;
        for (int i = 0; i < CHAOS_MODEL_MAX_CMDS; i++)
            if (m->cmds[i].state == CMD_DELIVERED && m->cmds[i].set == c->set &&
                m->cmds[i].holder == k->obj)
                unfinished = 1;
        code = unfinished ? VD_E_OPEN : NOERROR;
        verdict(o, code,
                unfinished ? "5.2 close with an unfinished device: OPEN, aborts"
                           : "5.2 premature close: aborts the set");
        if (unfinished || !c->secondary)
            abort_set(m, c->set, o, 0);
    }
    for (uint32_t i = 0; i < s->ndev; i++)
        if (s->dev[i].holder == k->obj) {
            s->dev[i].holder = -1;
            s->dev[i].saw_close = 0;
        }
    if (!c->secondary)
        s->linked = 0; /* 8.4: the creator's close unlinks the name */
    memset(c, 0, sizeof *c);
    c->set = -1;
}

static void c_signal_abort(chaos_model *m, const chaos_model_call *k, chaos_model_outcome *o) {
    cm_client *c = client_of(m, k->obj);
    if (!c)
        VERDICT(o, VD_E_INVALID, "8.1 NULL handle");
    if (c->set < 0)
        VERDICT(o, VD_E_PROTOCOL, "3 signal_abort in DNE");
    verdict(o, NOERROR, "5.3 signal_abort");
    if (!c->nt && !m->sets[c->set].aborted)
        abort_set(m, c->set, o, 0);
}

static void c_open_in_secondary(chaos_model *m, const chaos_model_call *k, chaos_model_outcome *o) {
    cm_client *c = client_of(m, k->obj);
    if (!c || !k->name)
        VERDICT(o, VD_E_INVALID, "8.1 NULL handle or pointer");
    if (c->set >= 0)
        VERDICT(o, VD_E_PROTOCOL, "8.13 object not in DNE");
    if (!valid_instance(k->instance))
        VERDICT(o, VD_E_INSTANCE_NAME, "8.2 bad instance name");
    if (!valid_name(k->name))
        VERDICT(o, VD_E_INVALID, "8.2 bad set name");
    cm_set *s = set_by_key(m, k->instance, k->name);
    if (!s)
        VERDICT(o, VD_E_PROTOCOL, "8.13 no live set of that name");
    if (s->aborted)
        VERDICT(o, VD_E_ABORT, "8.13 the set is aborted");
    if (!s->primary_configured)
        VERDICT(o, VD_E_PROTOCOL, "8.13 the primary has not finished get_configuration");
    memset(c, 0, sizeof *c);
    c->set = (int)(s - m->sets);
    c->secondary = c->configured = 1;
    verdict(o, NOERROR, "8.13 secondary: -> Initializing");
}

static void c_get_buffer_handle(chaos_model *m, const chaos_model_call *k, chaos_model_outcome *o) {
    cm_client *c = client_of(m, k->obj);
    if (!c || k->buf == CHAOS_MODEL_NULL || k->out_null)
        VERDICT(o, VD_E_INVALID, "8.1 NULL handle or pointer");
    if (c->set < 0 || !c->configured) {
        if (client_aborted(m, c))
            EITHER(o, VD_E_PROTOCOL, VD_E_INVALID, "3 buffer handle, aborted unmapped");
        VERDICT(o, VD_E_PROTOCOL, "3 buffer handle in DNE or Configurable");
    }
    if (!client_buf(m, k->buf, c->set) || k->offset != 0)
        VERDICT(o, VD_E_INVALID, "4 not the start of a live data zone");
    verdict(o, NOERROR, "4 get_buffer_handle");
}

static void c_map_buffer_handle(chaos_model *m, const chaos_model_call *k, chaos_model_outcome *o) {
    cm_client *c = client_of(m, k->obj);
    if (!c || k->out_null)
        VERDICT(o, VD_E_INVALID, "8.1 NULL handle or pointer");
    if (c->set < 0 || !c->configured) {
        if (client_aborted(m, c))
            EITHER(o, VD_E_PROTOCOL, VD_E_INVALID, "3 buffer handle, aborted unmapped");
        VERDICT(o, VD_E_PROTOCOL, "3 buffer handle in DNE or Configurable");
    }
    if (k->buf == CHAOS_MODEL_OTHER || k->buf == CHAOS_MODEL_NULL)
        EITHER(o, VD_E_INVALID, NOERROR, "4 a handle never given out (may collide)");
    if (!client_buf(m, k->buf, c->set))
        VERDICT(o, VD_E_INVALID, "4 the handle's buffer is not live");
    verdict(o, NOERROR, "4 map_buffer_handle");
}

static void c_get_command(chaos_model *m, const chaos_model_call *k, chaos_model_outcome *o) {
    cm_client *c = client_of(m, k->obj);
    if (!c || k->dev < 0 || k->out_null)
        VERDICT(o, VD_E_INVALID, "8.1 NULL handle or pointer");
    if (c->set < 0 || k->dev >= (int)m->sets[c->set].ndev ||
        m->sets[c->set].dev[k->dev].holder != k->obj) {
        o->unmodelled = 1;
        VERDICT(o, VD_E_INVALID, "model: not a device handle of this object");
    }
    if (client_aborted(m, c))
        VERDICT(o, VD_E_ABORT, "4 get_command in Abort");
    if (c->nt)
        VERDICT(o, VD_E_CLOSE, "3 get_command in Normally Terminated");
    cm_set *s = &m->sets[c->set];
    int best = -1;
    for (int i = 0; i < CHAOS_MODEL_MAX_CMDS; i++) {
        const cm_cmd *cc = &m->cmds[i];
        if (cc->state == CMD_QUEUED && cc->set == c->set && cc->slot == k->dev &&
            (best < 0 || cc->seq < m->cmds[best].seq))
            best = i;
    }
    if (best >= 0) {
        m->cmds[best].state = CMD_DELIVERED;
        m->cmds[best].holder = k->obj;
        o->delivered = best;
        VERDICT(o, NOERROR, "4 get_command: the oldest undelivered command");
    }
    if (s->dev[k->dev].s_closed) {
        s->dev[k->dev].saw_close = 1;
        VERDICT(o, VD_E_CLOSE, "4 get_command after close_device");
    }
    if (k->timeout < 0) {
        o->blocks = 1;
        VERDICT(o, VD_E_TIMEOUT, "single thread: waits for a command forever");
    }
    verdict(o, VD_E_TIMEOUT, "4 get_command: nothing queued");
}

static void c_complete_command(chaos_model *m, const chaos_model_call *k, chaos_model_outcome *o) {
    cm_client *c = client_of(m, k->obj);
    if (!c || k->dev < 0 || k->cmd == CHAOS_MODEL_NULL)
        VERDICT(o, VD_E_INVALID, "8.1 NULL handle or pointer");
    if (c->set < 0 || k->dev >= (int)m->sets[c->set].ndev ||
        m->sets[c->set].dev[k->dev].holder != k->obj) {
        o->unmodelled = 1;
        VERDICT(o, VD_E_INVALID, "model: not a device handle of this object");
    }
    if (client_aborted(m, c))
        VERDICT(o, VD_E_ABORT, "4 complete_command in Abort");
    if (c->nt)
        VERDICT(o, VD_E_INVALID, "3 complete_command in Normally Terminated");
    cm_set *s = &m->sets[c->set];
    if (k->cmd < 0 || k->cmd >= CHAOS_MODEL_MAX_CMDS)
        VERDICT(o, VD_E_INVALID, "4 not a delivered command");
    cm_cmd *cc = &m->cmds[k->cmd];
    if (cc->state != CMD_DELIVERED || cc->set != c->set || cc->slot != k->dev ||
        cc->holder != k->obj)
        VERDICT(o, VD_E_INVALID, "4 not a delivered, uncompleted command of this device");
    if ((cc->code == VDC_Read || cc->code == VDC_Write) && k->bytes > (uint32_t)cc->size)
        VERDICT(o, VD_E_INVALID, "4 a data command reports more bytes than its size");
    /* The agent takes it and calls the routine with the client's results. */
    cc->out_pos = (int64_t)k->position;
    if (m->async_take) { /* recorded; the agent's CM_S_AGENT_TAKE ends it */
        cc->state = CMD_COMPLETED;
        cc->done_code = k->completion_code;
        cc->done_bytes = k->bytes;
        if (k->completion_code == ERROR_IO_DEVICE)
            s->dev[k->dev].ioerr = 1;
        else if (cc->code == VDC_ClearError && k->completion_code == ERROR_SUCCESS)
            s->dev[k->dev].ioerr = 0;
        verdict(o, NOERROR, "4 complete_command: recorded, the agent will take it");
        return;
    }
    cc->state = CMD_IDLE;
    if (o->ncallbacks < CHAOS_MODEL_MAX_CMDS) {
        chaos_model_callback *cb = &o->callbacks[o->ncallbacks++];
        cb->cmd = k->cmd;
        cb->code = k->completion_code;
        cb->bytes = k->bytes;
        cb->out_position = cc->out_pos;
        cb->sync = 0;
    }
    cm_dev *d = &s->dev[k->dev];
    d->nout--;
    if (k->completion_code == ERROR_IO_DEVICE)
        d->ioerr = 1;
    else if (cc->code == VDC_ClearError && k->completion_code == ERROR_SUCCESS)
        d->ioerr = 0;
    verdict(o, NOERROR, "4 complete_command: recorded, the agent delivers it");
}

/* ---- server side ------------------------------------------------------------------- */

/* The common prefix of most server calls: NULL, DNE, Abort (8.1). */
static int s_prefix(chaos_model *m, const chaos_model_call *k, chaos_model_outcome *o,
                    int needs_out, cm_server **svp) {
    cm_server *sv = server_of(m, k->obj);
    *svp = sv;
    if (!sv || (needs_out && k->out_null)) {
        verdict(o, VD_E_INVALID, "8.1 NULL handle or pointer");
        return 1;
    }
    if (sv->set < 0) {
        verdict(o, VD_E_PROTOCOL, "3 server call in DNE");
        return 1;
    }
    if (server_aborted(m, sv)) {
        verdict(o, VD_E_ABORT, "8.1 the set is aborted");
        return 1;
    }
    return 0;
}

static int s_state(const cm_server *sv) {
    return sv->nt ? CM_ST_NORMALLY_TERMINATED : sv->state;
}

static void s_open(chaos_model *m, const chaos_model_call *k, chaos_model_outcome *o) {
    cm_server *sv = server_of(m, k->obj);
    if (!sv || !k->name)
        VERDICT(o, VD_E_INVALID, "8.1 NULL handle or pointer");
    if (sv->set >= 0)
        VERDICT(o, VD_E_PROTOCOL, "3 open: object not in DNE");
    if (!valid_instance(k->instance))
        VERDICT(o, VD_E_INSTANCE_NAME, "8.2 bad instance name");
    if (!valid_name(k->name))
        VERDICT(o, VD_E_INVALID, "8.2 bad set name");
    cm_set *s = set_by_key(m, k->instance, k->name);
    if (!s)
        VERDICT(o, VD_E_INVALID, "8.4 no set of that name");
    if (s->server >= 0)
        VERDICT(o, VD_E_BUSY, "8.4 a server is attached");
    if (s->aborted)
        VERDICT(o, VD_E_ABORT, "8.4 the set is aborted");
    if (s->server_ever) {
        o->unmodelled = 1;
        VERDICT(o, NOERROR, "model: a second server after a normal end");
    }
    memset(sv, 0, sizeof *sv);
    sv->set = (int)(s - m->sets);
    sv->state = CM_ST_CONNECTED;
    s->server = k->obj;
    s->server_ever = 1;
    verdict(o, NOERROR, "3 open: DNE -> Connected");
}

static void s_get_configuration(chaos_model *m, const chaos_model_call *k, chaos_model_outcome *o) {
    cm_server *sv = server_of(m, k->obj);
    if (!sv || k->cfg_null)
        VERDICT(o, VD_E_INVALID, "8.1 NULL handle or pointer");
    if (sv->set < 0)
        VERDICT(o, VD_E_PROTOCOL, "3 get_configuration in DNE");
    if (server_aborted(m, sv))
        VERDICT(o, VD_E_ABORT, "3 get_configuration in Abort");
    const cm_set *s = &m->sets[sv->set];
    o->cfg = s->ccfg;
    if (s->configured) {
        o->cfg.blockSize = s->block_size;
        o->cfg.maxIODepth = VDI_MAX_IO_DEPTH;
        o->cfg.maxTransferSize = s->max_transfer;
        o->area_lo = s->area_lo;
        o->area_hi = s->area_hi;
    }
    verdict(o, NOERROR, "8.7 server get_configuration");
}

static void s_begin(chaos_model *m, const chaos_model_call *k, chaos_model_outcome *o) {
    cm_server *sv;
    if (s_prefix(m, k, o, 0, &sv))
        return;
    if (s_state(sv) != CM_ST_CONNECTED)
        VERDICT(o, VD_E_PROTOCOL, "3 begin_configuration outside Connected");
    uint32_t f = k->features, media = f & (VDF_WriteMedia | VDF_ReadMedia);
    if ((f & ~(VDF_WriteMedia | VDF_ReadMedia | VDF_CompleteEnabled)) ||
        (media != VDF_WriteMedia && media != VDF_ReadMedia))
        VERDICT(o, VD_E_INVALID, "8.5 bad feature mask");
    uint32_t bs = k->block_size;
    if (!pow2(bs) || bs < VDI_MIN_BLOCK_SIZE || bs > VDI_MAX_BLOCK_SIZE)
        VERDICT(o, VD_E_INVALID, "8.5 bad block size");
    if (k->alignment &&
        (!pow2(k->alignment) || k->alignment < bs || k->alignment > VDI_MAX_ALIGNMENT))
        VERDICT(o, VD_E_INVALID, "8.5 bad alignment");
    if (k->max_transfer == 0 || k->max_transfer % VDI_TRANSFER_UNIT)
        VERDICT(o, VD_E_INVALID, "8.5 bad max transfer size");
    cm_set *s = &m->sets[sv->set];
    s->s_features = f;
    s->block_size = bs;
    s->s_align = k->alignment;
    s->max_transfer = k->max_transfer;
    uint32_t sa = k->alignment ? k->alignment : bs;
    s->set_align = s->ccfg.alignment > sa ? s->ccfg.alignment : sa;
    sv->state = CM_ST_CONFIGURABLE;
    verdict(o, NOERROR, "3 begin_configuration: -> Configurable");
}

static int s_buffer_state_ok(const cm_server *sv) {
    int st = s_state(sv);
    return st == CM_ST_CONFIGURABLE || st == CM_ST_INITIALIZING || st == CM_ST_ACTIVE;
}

static void s_request(chaos_model *m, const chaos_model_call *k, chaos_model_outcome *o,
                      int force) {
    cm_server *sv;
    if (s_prefix(m, k, o, 0, &sv))
        return;
    if (!s_buffer_state_ok(sv))
        VERDICT(o, VD_E_PROTOCOL, "3 request_buffers outside configuration/Active");
    if (k->size == 0 || !valid_buf_align(k->alignment) || k->count == 0)
        VERDICT(o, VD_E_INVALID, "8.9 size 0, count 0 or bad alignment");
    cm_set *s = &m->sets[sv->set];
    uint64_t lo = sat_mul(k->count, k->size);
    uint64_t hi = sat_mul(k->count, footprint_hi(s, k->size, k->alignment));
    if (sv->state == CM_ST_CONFIGURABLE) {
        s->pend_lo = sat_add(s->pend_lo, lo);
        s->pend_hi = sat_add(s->pend_hi, hi);
        add_req(s, k->size, k->alignment, k->count);
        VERDICT(o, NOERROR, "8.9 requests are summed during configuration");
    }
    if (force == 0) {
        if (sat_add(s->area_lo, lo) > VDI_MAX_AREA)
            VERDICT(o, VD_E_MEMORY, "8.9 the area would exceed VDI_MAX_AREA");
        if (sat_add(s->area_hi, hi) > VDI_MAX_AREA)
            EITHER(o, NOERROR, VD_E_MEMORY, "8.9 growth near VDI_MAX_AREA (bound)");
    }
    if (force && force != FORCE_OK)
        VERDICT(o, VD_E_MEMORY, "8.9 growth refused");
    s->area_lo = sat_add(s->area_lo, lo);
    s->area_hi = sat_add(s->area_hi, hi);
    add_req(s, k->size, k->alignment, k->count);
    verdict(o, NOERROR, "8.9 the area grows now");
}

static void s_query(chaos_model *m, const chaos_model_call *k, chaos_model_outcome *o) {
    cm_server *sv;
    if (s_prefix(m, k, o, 1, &sv))
        return;
    if (!s_buffer_state_ok(sv))
        VERDICT(o, VD_E_PROTOCOL, "3 query_available_buffers outside configuration");
    if (k->size == 0 || !valid_buf_align(k->alignment))
        VERDICT(o, VD_E_INVALID, "8.9 size 0 or bad alignment");
    const cm_set *s = &m->sets[sv->set];
    uint64_t area_hi =
        sv->state == CM_ST_CONFIGURABLE ? sat_add(s->pend_hi, AREA_SLACK) : s->area_hi;
    uint64_t used = live_sum(m, sv->set);
    uint64_t hi = area_hi > used ? (area_hi - used) / k->size : 0;
    uint64_t lo = guaranteed(m, sv->set, k->size, k->alignment);
    o->avail_lo = (uint32_t)(lo > UINT32_MAX ? UINT32_MAX : lo);
    o->avail_hi = (uint32_t)(hi > UINT32_MAX ? UINT32_MAX : hi);
    if (o->avail_hi < o->avail_lo)
        o->avail_hi = o->avail_lo;
    verdict(o, NOERROR, "8.9 query_available_buffers (count bounded)");
}

static void s_end(chaos_model *m, const chaos_model_call *k, chaos_model_outcome *o, int force) {
    cm_server *sv;
    if (s_prefix(m, k, o, 0, &sv))
        return;
    if (s_state(sv) != CM_ST_CONFIGURABLE)
        VERDICT(o, VD_E_PROTOCOL, "3 end_configuration outside Configurable");
    cm_set *s = &m->sets[sv->set];
    uint64_t hi = sat_add(s->pend_hi, AREA_SLACK);
    int code = force == FORCE_OK ? NOERROR : force;
    if (!force) {
        if (s->pend_lo > VDI_MAX_AREA)
            code = VD_E_MEMORY;
        else if (hi > VDI_MAX_AREA)
            EITHER(o, NOERROR, VD_E_MEMORY, "8.9 area near VDI_MAX_AREA (bound)");
        else
            code = NOERROR;
    }
    if (code == VD_E_MEMORY) {
        s->pend_lo = s->pend_hi = 0;
        s->nreqs = 0;
        s->reqs_lost = 0;
        VERDICT(o, VD_E_MEMORY, "8.9 the area cannot be made; requests discarded");
    }
    s->area_lo = s->pend_lo;
    s->area_hi = hi;
    s->configured = 1;
    sv->state = CM_ST_INITIALIZING;
    verdict(o, NOERROR, "3 end_configuration: -> Initializing");
}

static void s_agent(chaos_model *m, const chaos_model_call *k, chaos_model_outcome *o) {
    cm_server *sv = server_of(m, k->obj);
    if (!sv)
        VERDICT(o, VD_E_INVALID, "8.1 NULL handle");
    if (sv->agent)
        VERDICT(o, VD_E_PROTOCOL, "4 an agent is already running");
    if (sv->set < 0)
        VERDICT(o, VD_E_PROTOCOL, "3 agent in DNE");
    if (server_aborted(m, sv))
        VERDICT(o, VD_E_ABORT, "3 agent in Abort drains and returns");
    if (sv->nt)
        VERDICT(o, NOERROR, "3 agent in Normally Terminated returns at once");
    if (sv->state != CM_ST_INITIALIZING && sv->state != CM_ST_ACTIVE)
        VERDICT(o, VD_E_PROTOCOL, "3 agent before end_configuration");
    sv->state = CM_ST_ACTIVE;
    sv->agent = 1;
    o->agent_starts = 1;
    verdict(o, NOERROR, "3 agent runs (returns at the normal end or abort)");
}

static void s_open_device(chaos_model *m, const chaos_model_call *k, chaos_model_outcome *o) {
    cm_server *sv = server_of(m, k->obj);
    if (!sv || !k->name || k->out_null)
        VERDICT(o, VD_E_INVALID, "8.1 NULL handle or pointer");
    if (sv->set < 0)
        VERDICT(o, VD_E_PROTOCOL, "3 open_device in DNE");
    if (server_aborted(m, sv))
        VERDICT(o, VD_E_ABORT, "3 open_device in Abort");
    if (sv->nt)
        VERDICT(o, VD_E_OPEN, "3 open_device in Normally Terminated");
    if (sv->state != CM_ST_INITIALIZING && sv->state != CM_ST_ACTIVE)
        VERDICT(o, VD_E_PROTOCOL, "3 open_device before end_configuration");
    cm_set *s = &m->sets[sv->set];
    int all = 1;
    for (uint32_t i = 0; i < s->ndev; i++)
        if (!s->dev[i].s_opened)
            all = 0;
    if (all && !valid_name(k->name))
        EITHER(o, VD_E_OPEN, VD_E_INVALID, "8.10 vs 8.2: every device open, malformed name");
    if (all)
        VERDICT(o, VD_E_OPEN, "8.10 every device is open");
    int is_new;
    int slot = slot_for(s, k->name, &is_new);
    if (slot >= 0 && !is_new && s->dev[slot].s_opened)
        VERDICT(o, VD_E_PROTOCOL, "8.10 the server already opened this device");
    if (slot < 0)
        VERDICT(o, VD_E_INVALID, "8.10 the name cannot bind");
    bind_slot(s, slot, k->name);
    s->dev[slot].s_opened = 1;
    sv->state = CM_ST_ACTIVE;
    o->slot = slot;
    verdict(o, NOERROR, "3 open_device: -> Active");
}

static int alloc_state_ok(const cm_server *sv) {
    int st = s_state(sv);
    return st == CM_ST_INITIALIZING || st == CM_ST_ACTIVE || st == CM_ST_NORMALLY_TERMINATED;
}

static void s_allocate(chaos_model *m, const chaos_model_call *k, chaos_model_outcome *o,
                       int force) {
    cm_server *sv;
    if (s_prefix(m, k, o, 1, &sv))
        return;
    if (!alloc_state_ok(sv))
        VERDICT(o, VD_E_PROTOCOL, "3 allocate_buffer before end_configuration");
    if (k->size == 0 || k->size > 0x80000000u || !valid_buf_align(k->alignment))
        VERDICT(o, VD_E_INVALID, "4 allocate_buffer: bad size or alignment");
    if (m->nbufs == CHAOS_MODEL_MAX_BUFS) {
        o->unmodelled = 1;
        VERDICT(o, NOERROR, "model: too many buffers in one history");
    }
    int code = force == FORCE_OK ? NOERROR : force;
    if (!force) {
        const cm_set *s = &m->sets[sv->set];
        if (guaranteed(m, sv->set, k->size, k->alignment) > 0)
            code = NOERROR;
        else if (sat_add(live_sum(m, sv->set), k->size) > s->area_hi)
            code = VD_E_MEMORY;
        else
            EITHER(o, NOERROR, VD_E_MEMORY, "4 allocate_buffer (fit depends on layout)");
    }
    if (code == VD_E_MEMORY)
        VERDICT(o, VD_E_MEMORY, "4 allocate_buffer: the area cannot hold it");
    cm_buf *b = &m->bufs[m->nbufs];
    b->live = 1;
    b->kept = 0;
    b->set = sv->set;
    b->size = k->size;
    b->align = k->alignment;
    o->buf = m->nbufs++;
    verdict(o, NOERROR, "4 allocate_buffer");
}

static void s_free(chaos_model *m, const chaos_model_call *k, chaos_model_outcome *o) {
    cm_server *sv = server_of(m, k->obj);
    if (!sv || k->buf == CHAOS_MODEL_NULL)
        VERDICT(o, VD_E_INVALID, "8.1 NULL handle or pointer");
    if (s_prefix(m, k, o, 0, &sv))
        return;
    if (!alloc_state_ok(sv))
        VERDICT(o, VD_E_PROTOCOL, "3 free_buffer before end_configuration");
    const cm_buf *b = live_buf(m, k->buf, sv->set);
    if (!b || k->offset != 0 || k->size != b->size)
        VERDICT(o, VD_E_INVALID, "4 free_buffer: not a live zone start and its size");
    m->bufs[k->buf].live = 0;
    verdict(o, NOERROR, "4 free_buffer");
}

static void s_is_shared(chaos_model *m, const chaos_model_call *k, chaos_model_outcome *o) {
    cm_server *sv = server_of(m, k->obj);
    verdict(o, NOERROR, "4 is_shared_buffer");
    o->is_shared = 0;
    if (sv && sv->set >= 0) {
        const cm_buf *b = live_buf(m, k->buf, sv->set);
        o->is_shared = b && k->offset >= 0 && k->offset < (int64_t)b->size;
    }
    o->alt_is_shared = o->is_shared;
}

static void s_signal_abort(chaos_model *m, const chaos_model_call *k, chaos_model_outcome *o) {
    cm_server *sv = server_of(m, k->obj);
    if (!sv)
        VERDICT(o, VD_E_INVALID, "8.1 NULL handle");
    if (sv->set < 0)
        VERDICT(o, VD_E_PROTOCOL, "3 signal_abort in DNE");
    verdict(o, NOERROR, "5.3 signal_abort");
    if (!sv->nt && !m->sets[sv->set].aborted)
        abort_set(m, sv->set, o, 0);
}

static void s_close(chaos_model *m, const chaos_model_call *k, chaos_model_outcome *o) {
    cm_server *sv = server_of(m, k->obj);
    if (!sv)
        VERDICT(o, VD_E_INVALID, "8.1 NULL handle");
    if (sv->set < 0)
        VERDICT(o, VD_E_PROTOCOL, "5.1.6 close: never opened or already closed");
    int set = sv->set;
    cm_set *s = &m->sets[set];
    if (sv->nt || s->aborted) {
        verdict(o, NOERROR, "5.1.2 close in Normally Terminated or Abort");
        if (sv->agent) { /* aborted with the agent still draining: close waits for it */
            drain(m, set, o, 1);
            sv->agent = 0;
            o->agent_returns = 1;
            o->agent_code = VD_E_ABORT;
        }
    } else {
        int busy = 0;
        for (uint32_t i = 0; i < s->ndev; i++)
            if ((s->dev[i].s_opened && !s->dev[i].s_closed) || s->dev[i].nout)
                busy = 1;
        verdict(o, busy ? VD_E_PROTOCOL : NOERROR,
                busy ? "5.1.2 premature close with devices open or commands outstanding"
                     : "5.1.2 close before the normal end aborts the set");
        abort_set(m, set, o, 1); /* close waits for the agent's drain (5.1.4) */
    }
    for (int b = 0; b < m->nbufs; b++)
        if (m->bufs[b].set == set && m->bufs[b].live) {
            m->bufs[b].live = 0;
            m->bufs[b].kept = 1;
        }
    s->server = -1;
    s->server_closed = 1;
    memset(sv, 0, sizeof *sv);
    sv->set = -1;
}

static int dev_server(chaos_model *m, const chaos_model_call *k, cm_server **svp) {
    cm_server *sv = server_of(m, k->obj);
    *svp = sv;
    if (!sv || sv->set < 0 || k->dev < 0 || k->dev >= (int)m->sets[sv->set].ndev ||
        !m->sets[sv->set].dev[k->dev].s_opened)
        return 0;
    return 1;
}

static void s_send(chaos_model *m, const chaos_model_call *k, chaos_model_outcome *o) {
    cm_server *sv;
    if (k->dev == CHAOS_MODEL_NULL || k->cmd < 0 || k->routine_null)
        VERDICT(o, VD_E_INVALID, "4 send row 1: NULL device, command or routine");
    if (!dev_server(m, k, &sv) || k->cmd >= CHAOS_MODEL_MAX_CMDS) {
        o->unmodelled = 1;
        VERDICT(o, VD_E_INVALID, "model: not a device handle of this server");
    }
    cm_cmd *cc = &m->cmds[k->cmd];
    if (cc->state != CMD_IDLE)
        VERDICT(o, VD_E_INVALID, "4 send row 2: already outstanding");
    cm_set *s = &m->sets[sv->set];
    cm_dev *d = &s->dev[k->dev];
    if (server_aborted(m, sv)) {
        callback(m, o, k->cmd, ERROR_OPERATION_ABORTED, 1);
        VERDICT(o, VD_E_ABORT, "4 send row 3: aborted");
    }
    if (s_state(sv) != CM_ST_ACTIVE || d->s_closed || !sv->agent) {
        callback(m, o, k->cmd, ERROR_INVALID_HANDLE, 1);
        VERDICT(o, VD_E_PROTOCOL, "4 send row 4: not Active, device closed or no agent");
    }
    int32_t code = k->command_code;
    int malformed = code < VDC_Read || code > VDC_Complete;
    const cm_buf *b = k->cmd_buf >= 0 ? live_buf(m, k->cmd_buf, sv->set) : NULL;
    if (!malformed && (code == VDC_Read || code == VDC_Write)) {
        malformed = k->command_size < 1 || (uint32_t)k->command_size > s->max_transfer || !b ||
                    k->cmd_offset < 0 || k->cmd_offset + k->command_size > (int64_t)b->size;
    } else if (!malformed && k->cmd_buf != CHAOS_MODEL_NULL) {
        malformed = !b || k->cmd_offset < 0 || k->cmd_offset >= (int64_t)b->size;
    }
    if (malformed) {
        callback(m, o, k->cmd, ERROR_INVALID_PARAMETER, 1);
        VERDICT(o, VD_E_INVALID, "4 send row 5: malformed");
    }
    if (d->ioerr && code != VDC_ClearError) {
        callback(m, o, k->cmd, ERROR_IO_DEVICE, 1);
        VERDICT(o, VD_E_IO_ERROR, "4 send row 6: device in I/O-error state");
    }
    if (d->nout >= VDI_MAX_OUTSTANDING) {
        callback(m, o, k->cmd, ERROR_NO_SYSTEM_RESOURCES, 1);
        VERDICT(o, VD_E_QUEUE_FULL, "4 send row 7: 64 outstanding");
    }
    cc->state = CMD_QUEUED;
    cc->set = sv->set;
    cc->slot = k->dev;
    cc->holder = -1;
    cc->seq = ++m->seq;
    cc->code = code;
    cc->size = k->command_size;
    d->nout++;
    verdict(o, NOERROR, "4 send_command: queued");
}

static void s_close_device(chaos_model *m, const chaos_model_call *k, chaos_model_outcome *o) {
    cm_server *sv;
    if (k->dev == CHAOS_MODEL_NULL)
        VERDICT(o, VD_E_INVALID, "8.1 NULL device");
    if (!dev_server(m, k, &sv)) {
        o->unmodelled = 1;
        VERDICT(o, VD_E_INVALID, "model: not a device handle of this server");
    }
    if (server_aborted(m, sv))
        VERDICT(o, VD_E_ABORT, "4 close_device in Abort");
    cm_dev *d = &m->sets[sv->set].dev[k->dev];
    if (d->s_closed)
        VERDICT(o, VD_E_CLOSE, "4 close_device: already closed");
    d->s_closed = 1;
    verdict(o, NOERROR, "4 close_device");
}

/* ---- the step ----------------------------------------------------------------------- */

chaos_model *chaos_model_new(void) {
    chaos_model *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    for (int i = 0; i < CHAOS_MODEL_MAX_CLIENTS; i++)
        m->clients[i].set = -1;
    for (int i = 0; i < CHAOS_MODEL_MAX_SERVERS; i++)
        m->servers[i].set = -1;
    return m;
}

void chaos_model_free(chaos_model *m) {
    free(m);
}

void chaos_model_set_async_take(chaos_model *m, int on) {
    m->async_take = on;
}

/* The agent took a completion and called its routine (async take only). After an abort
 * drained everything, the routine calls of that drain are nothing new. */
static void s_agent_take(chaos_model *m, const chaos_model_call *k, chaos_model_outcome *o) {
    if (!m->async_take || k->cmd < 0 || k->cmd >= CHAOS_MODEL_MAX_CMDS) {
        o->unmodelled = 1;
        VERDICT(o, VD_E_INVALID, "model: a take outside the asynchronous mode");
    }
    cm_cmd *cc = &m->cmds[k->cmd];
    if (cc->state == CMD_IDLE && cc->set >= 0 && m->sets[cc->set].aborted)
        VERDICT(o, NOERROR, "5.3 a routine call of the abort's drain");
    if (cc->state != CMD_COMPLETED)
        VERDICT(o, VD_E_PROTOCOL, "model: the agent took a command the client has not completed");
    if (k->completion_code != cc->done_code)
        VERDICT(o, VD_E_INVALID, "model: the routine saw another code than the client gave");
    cc->state = CMD_IDLE;
    if (cc->set >= 0 && cc->slot >= 0)
        m->sets[cc->set].dev[cc->slot].nout--;
    verdict(o, NOERROR, "4 the agent takes the completion");
}

void chaos_model_copy(chaos_model *dst, const chaos_model *src) {
    /* Only the sets in use carry state worth copying; the rest stay as in src (unused). */
    dst->nbufs = src->nbufs;
    dst->seq = src->seq;
    dst->async_take = src->async_take;
    memcpy(dst->clients, src->clients, sizeof src->clients);
    memcpy(dst->servers, src->servers, sizeof src->servers);
    memcpy(dst->cmds, src->cmds, sizeof src->cmds);
    memcpy(dst->bufs, src->bufs, (size_t)src->nbufs * sizeof src->bufs[0]);
    for (int i = 0; i < CHAOS_MODEL_MAX_SETS; i++) {
        if (src->sets[i].used || dst->sets[i].used)
            dst->sets[i] = src->sets[i];
    }
}

/* FNV-1a over what decides the model's future answers: equal models hash equal whatever
 * their history (the parts no step reads again, such as unused sets and the devices past a
 * set's count, are left out). */
static uint64_t mix(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

#define MIX(h, x) ((h) = mix((h), &(x), sizeof(x)))

static uint64_t mix_str(uint64_t h, const char *s) {
    return mix(h, s, strlen(s) + 1);
}

uint64_t chaos_model_hash(const chaos_model *m) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < CHAOS_MODEL_MAX_SETS; i++) {
        const cm_set *s = &m->sets[i];
        MIX(h, s->used);
        if (!s->used)
            continue;
        MIX(h, s->has_instance);
        h = mix_str(h, s->instance);
        h = mix_str(h, s->name);
        MIX(h, s->linked);
        MIX(h, s->aborted);
        MIX(h, s->server);
        MIX(h, s->server_ever);
        MIX(h, s->server_closed);
        MIX(h, s->primary_configured);
        MIX(h, s->configured);
        MIX(h, s->ccfg);
        MIX(h, s->s_features);
        MIX(h, s->block_size);
        MIX(h, s->s_align);
        MIX(h, s->max_transfer);
        MIX(h, s->set_align);
        MIX(h, s->nreqs);
        for (size_t r = 0; r < s->nreqs && r < CHAOS_MODEL_MAX_REQS; r++) {
            MIX(h, s->reqs[r].size);
            MIX(h, s->reqs[r].align);
            MIX(h, s->reqs[r].count);
        }
        MIX(h, s->reqs_lost);
        MIX(h, s->pend_lo);
        MIX(h, s->pend_hi);
        MIX(h, s->area_lo);
        MIX(h, s->area_hi);
        MIX(h, s->ndev);
        for (uint32_t d = 0; d < s->ndev && d < VDI_MAX_DEVICES; d++) {
            const cm_dev *v = &s->dev[d];
            h = mix_str(h, v->name);
            MIX(h, v->bound);
            MIX(h, v->s_opened);
            MIX(h, v->s_closed);
            MIX(h, v->holder);
            MIX(h, v->saw_close);
            MIX(h, v->ioerr);
            MIX(h, v->nout);
        }
    }
    h = mix(h, m->clients, sizeof m->clients); /* ints only: no padding */
    h = mix(h, m->servers, sizeof m->servers);
    for (int c = 0; c < CHAOS_MODEL_MAX_CMDS; c++) {
        const cm_cmd *cc = &m->cmds[c];
        MIX(h, cc->state);
        MIX(h, cc->set);
        if (cc->state == CMD_IDLE)
            continue; /* of an idle command only its set is read again */
        MIX(h, cc->slot);
        MIX(h, cc->holder);
        MIX(h, cc->seq);
        MIX(h, cc->code);
        MIX(h, cc->size);
        MIX(h, cc->out_pos);
        MIX(h, cc->done_code);
        MIX(h, cc->done_bytes);
    }
    MIX(h, m->nbufs);
    for (int b = 0; b < m->nbufs && b < CHAOS_MODEL_MAX_BUFS; b++) {
        MIX(h, m->bufs[b].live);
        MIX(h, m->bufs[b].set);
        MIX(h, m->bufs[b].kept);
        MIX(h, m->bufs[b].size);
        MIX(h, m->bufs[b].align);
    }
    MIX(h, m->async_take);
    return h;
}

static void step(chaos_model *m, const chaos_model_call *k, chaos_model_outcome *o, int force) {
    memset(o, 0, sizeof *o);
    o->slot = o->buf = o->delivered = -1;
    if ((unsigned)k->op >= CM_OP_COUNT) {
        o->unmodelled = 1;
        verdict(o, VD_E_INVALID, "model: unknown call");
        return;
    }
    /* No default: an op vdi_api.def gives the model that has no case here fails the build
     * (-Wswitch), so the list and the dispatch cannot part. */
    switch (k->op) {
    case CM_C_CREATE_EX:
        c_create(m, k, o);
        break;
    case CM_C_GET_CONFIGURATION:
        c_get_configuration(m, k, o);
        break;
    case CM_C_OPEN_DEVICE:
        c_open_device(m, k, o);
        break;
    case CM_C_CLOSE:
        c_close(m, k, o);
        break;
    case CM_C_SIGNAL_ABORT:
        c_signal_abort(m, k, o);
        break;
    case CM_C_OPEN_IN_SECONDARY:
        c_open_in_secondary(m, k, o);
        break;
    case CM_C_GET_BUFFER_HANDLE:
        c_get_buffer_handle(m, k, o);
        break;
    case CM_C_MAP_BUFFER_HANDLE:
        c_map_buffer_handle(m, k, o);
        break;
    case CM_C_GET_COMMAND:
        c_get_command(m, k, o);
        break;
    case CM_C_COMPLETE_COMMAND:
        c_complete_command(m, k, o);
        break;
    case CM_S_OPEN:
        s_open(m, k, o);
        break;
    case CM_S_GET_CONFIGURATION:
        s_get_configuration(m, k, o);
        break;
    case CM_S_BEGIN_CONFIGURATION:
        s_begin(m, k, o);
        break;
    case CM_S_REQUEST_BUFFERS:
        s_request(m, k, o, force);
        break;
    case CM_S_QUERY_AVAILABLE:
        s_query(m, k, o);
        break;
    case CM_S_END_CONFIGURATION:
        s_end(m, k, o, force);
        break;
    case CM_S_EXECUTE_AGENT:
        s_agent(m, k, o);
        break;
    case CM_S_OPEN_DEVICE:
        s_open_device(m, k, o);
        break;
    case CM_S_ALLOCATE_BUFFER:
        s_allocate(m, k, o, force);
        break;
    case CM_S_FREE_BUFFER:
        s_free(m, k, o);
        break;
    case CM_S_IS_SHARED_BUFFER:
        s_is_shared(m, k, o);
        break;
    case CM_S_SIGNAL_ABORT:
        s_signal_abort(m, k, o);
        break;
    case CM_S_CLOSE:
        s_close(m, k, o);
        break;
    case CM_S_SEND_COMMAND:
        s_send(m, k, o);
        break;
    case CM_S_CLOSE_DEVICE:
        s_close_device(m, k, o);
        break;
    case CM_S_AGENT_TAKE:
        s_agent_take(m, k, o);
        break;
    case CM_OP_COUNT: /* not an op: refused above */
        break;
    }
    if (!o->unmodelled && !o->blocks && o->code == o->alt_code)
        settle(m, o);
}

/* Every path that is unmodelled, blocks or allows two codes returns before it changes
 * anything, so the step can run on the model itself. */
void chaos_model_step(chaos_model *m, const chaos_model_call *call, chaos_model_outcome *out) {
    step(m, call, out, 0);
}

int chaos_model_resolve(chaos_model *m, const chaos_model_call *call, int actual,
                        chaos_model_outcome *out) {
    chaos_model probe_model;
    chaos_model_outcome probe;
    probe_model = *m;
    step(&probe_model, call, &probe, 0);
    if (probe.unmodelled || probe.blocks || probe.code == probe.alt_code ||
        (actual != probe.code && actual != probe.alt_code)) {
        *out = probe;
        return -1;
    }
    step(m, call, out, actual == NOERROR ? FORCE_OK : actual);
    return 0;
}

/* ---- observations ------------------------------------------------------------------- */

int chaos_model_agent_running(const chaos_model *m, int server) {
    return server >= 0 && server < CHAOS_MODEL_MAX_SERVERS && m->servers[server].agent;
}

int chaos_model_server_state(const chaos_model *m, int server) {
    if (server < 0 || server >= CHAOS_MODEL_MAX_SERVERS || m->servers[server].set < 0)
        return CM_ST_DNE;
    const cm_server *sv = &m->servers[server];
    if (sv->nt)
        return CM_ST_NORMALLY_TERMINATED;
    if (m->sets[sv->set].aborted)
        return CM_ST_ABORT;
    return sv->state;
}

int chaos_model_client_state(const chaos_model *m, int client) {
    if (client < 0 || client >= CHAOS_MODEL_MAX_CLIENTS || m->clients[client].set < 0)
        return CM_ST_DNE;
    const cm_client *c = &m->clients[client];
    if (c->nt)
        return CM_ST_NORMALLY_TERMINATED;
    if (m->sets[c->set].aborted)
        return CM_ST_ABORT;
    if (c->active)
        return CM_ST_ACTIVE;
    return c->configured ? CM_ST_INITIALIZING : CM_ST_CONFIGURABLE;
}

int chaos_model_cmd_outstanding(const chaos_model *m, int cmd) {
    return cmd >= 0 && cmd < CHAOS_MODEL_MAX_CMDS && m->cmds[cmd].state != CMD_IDLE;
}

int chaos_model_buf_live(const chaos_model *m, int buf) {
    return buf >= 0 && buf < m->nbufs && m->bufs[buf].live;
}

uint32_t chaos_model_buf_size(const chaos_model *m, int buf) {
    return buf >= 0 && buf < m->nbufs ? m->bufs[buf].size : 0;
}

int chaos_model_slot_of(const chaos_model *m, int server_side, int obj, const char *name) {
    int set = -1;
    if (server_side && obj >= 0 && obj < CHAOS_MODEL_MAX_SERVERS)
        set = m->servers[obj].set;
    else if (!server_side && obj >= 0 && obj < CHAOS_MODEL_MAX_CLIENTS)
        set = m->clients[obj].set;
    if (set < 0 || !name)
        return -1;
    const cm_set *s = &m->sets[set];
    for (uint32_t i = 0; i < s->ndev; i++)
        if (s->dev[i].bound && strcmp(s->dev[i].name, name) == 0)
            return (int)i;
    return -1;
}

int chaos_model_slot_holder(const chaos_model *m, int server, int slot) {
    if (server < 0 || server >= CHAOS_MODEL_MAX_SERVERS || m->servers[server].set < 0)
        return -1;
    const cm_set *s = &m->sets[m->servers[server].set];
    if (slot < 0 || slot >= (int)s->ndev)
        return -1;
    return s->dev[slot].holder;
}

const char *chaos_model_op_name(chaos_model_op op) {
    static const char *const names[CM_OP_COUNT] = {
#define VDI_CALL(fn, op, ret, params) [CM_##op] = #fn,
#include "vdi_api.def"
        [CM_S_AGENT_TAKE] = "(agent takes a completion)",
    };
    return (unsigned)op < CM_OP_COUNT ? names[op] : "?";
}

const char *chaos_model_state_name(int state) {
    static const char *const names[] = {"DNE",          "Connected", "Configurable",
                                        "Initializing", "Active",    "Normally Terminated",
                                        "Abort"};
    return state >= 0 && state <= CM_ST_ABORT ? names[state] : "?";
}
