/* The linearizer (see chaos_linearizer.h): a depth-first search for an order of the
 * recorded calls, in the manner of Wing and Gong: at each point any call that entered before
 * the earliest pending return may take effect next; the model is copied only where the
 * search branches. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaos_linearizer.h"
#include "chaos/sanitizer.h"
#include "chaos_model.h"
#include "vdi/vdi.h"

/* Like the recorder, the engine's bookkeeping: not instrumented under TSan. */
#if defined(__clang__) && defined(CHAOS_TSAN)
#pragma clang attribute push(__attribute__((no_sanitize("thread"))), apply_to = function)
#define CHAOS_LINEARIZER_TSAN_POP 1
#endif

#define H_MAX_MAP 96
#define H_NODE_BUDGET 20000

static chaos_history *H; /* the history being judged */

static void undecidable(const char *why) {
    if (!H->undecidable)
        H->undecidable = why;
}

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
    for (int i = 0; i < H->n; i++) {
        const hcall *x = &H->calls[i];
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
        far.call = (int)(c - H->calls);
        far.code = code;
        far.alt = alt;
        far.why = why;
    }
}

/* 1: the call fits here (state updated); 0: it does not; -1: the model cannot say. */
static int apply(hstate *st, const hcall *c, int placed) {
    /* The agent the model runs returned in reality before this call entered: in this
     * order the model lets it run past its real return. */
    if (agent_judged && st->agent_call >= 0 && H->calls[st->agent_call].returned &&
        H->calls[st->agent_call].ret < c->entry) {
        missed(&H->calls[st->agent_call], placed, 1, 1,
               "the model's agent is still running when the real one had returned");
        return 0;
    }
    chaos_model_call k = c->k;
    k.name = c->has_name ? c->name : NULL;
    k.instance = c->has_instance ? c->instance : NULL;
    chaos_model_outcome o;
    if (k.op == CM_C_GET_COMMAND || k.op == CM_C_COMPLETE_COMMAND || k.op == CM_S_SEND_COMMAND ||
        k.op == CM_S_CLOSE_DEVICE) {
        const hdev *d = c->dev ? chaos_history_dev(H, c->dev, c->entry) : NULL;
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
        fprintf(stderr, "  try #%d after %d: %s (model %s%s%s, %s)\n", (int)(c - H->calls), placed,
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
        const hcall *a = st->agent_call >= 0 ? &H->calls[st->agent_call] : NULL;
        if (agent_judged && a && a->returned && !a->any_rc && a->rc != o.agent_code) {
            missed(a, placed, o.agent_code, o.agent_code,
                   "the agent ends here in the model, with another code");
            return 0;
        }
        st->agent_call = -1;
    }
    if (k.op == CM_S_EXECUTE_AGENT && o.agent_starts)
        st->agent_call = (int)(c - H->calls);
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
    if (!agent_judged || st->agent_call < 0 || !H->calls[st->agent_call].returned)
        return 1;
    missed(&H->calls[st->agent_call], H->n, 1, 1, "the model's agent never ends");
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
    for (int i = 0; i < H->nvds; i++)
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
    for (int i = 0; i < H->n; i++)
        if (!done[i] && H->calls[i].ret < minret) {
            minret = H->calls[i].ret;
            first = i;
        }
    for (int i = 0; i < H->n; i++)
        if (!done[i] && H->calls[i].entry < minret)
            ncand += 1 + aborted_by_close(&H->calls[i]);
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
        for (int i = 0; i < H->n; i++) {
            if (done[i] || H->calls[i].entry >= minret || (pass == 0) != (i == first))
                continue;
            for (int noop = 0; noop <= aborted_by_close(&H->calls[i]); noop++) {
                if (++nodes > H_NODE_BUDGET) {
                    undecidable("the search for an order is too large");
                    return -1;
                }
                hstate *next = ncand == 1 ? st : state_clone(st);
                if (!next) {
                    undecidable("out of memory in the search");
                    return -1;
                }
                int r = noop ? 1 : apply(next, &H->calls[i], placed);
                if (r == 1) {
                    done[i] = 1;
                    r = search(next, done, placed + 1, placed_required + H->calls[i].returned,
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
    fprintf(stderr, "history: %d calls%s%s\n", H->n, H->undecidable ? ", not judged: " : "",
            H->undecidable ? H->undecidable : "");
    for (int i = 0; i < H->n; i++) {
        const hcall *c = &H->calls[i];
        const hdev *d = c->dev ? chaos_history_dev(H, c->dev, c->entry) : NULL;
        fprintf(stderr, "  #%-3d [%4u,%4u] %-10s %s %-24s obj %d%s%s -> %s\n", i, c->entry, c->ret,
                chaos_actor_name(e, c->actor), c->side ? "server" : "client",
                chaos_model_op_name(c->k.op), c->k.obj, c->has_name || d ? " " : "",
                c->has_name ? c->name
                : d         ? d->name
                            : "",
                c->returned ? vdi_strerror(c->rc) : "(no return)");
    }
}

int chaos_linearize(chaos_engine *e, chaos_history *h) {
    H = h;
    if (chaos_faults_injected(e))
        undecidable("an injected fault, which the model leaves out");
    required = 0;
    for (int i = 0; i < H->n; i++) {
        hcall *c = &H->calls[i];
        required += c->returned;
        if (!c->returned) { /* optional, and whatever it would have answered */
            c->ret = UINT32_MAX;
            c->any_rc = 1;
        }
    }
    dump(e);
    if (H->undecidable || H->n == 0)
        return 0;
    hstate *st = state_new();
    if (st)
        chaos_model_set_async_take(st->m, 1); /* completions are taken by the agent, later */
    uint8_t *done = calloc((size_t)H->n, 1);
    memset(&far, 0, sizeof far);
    far.call = -1;
    nodes = 0;
    memo_used = 0;
    memo_gen++;
    agent_judged = H->nservers <= 1;
    int r = st && done ? search(st, done, 0, 0, 0) : -1;
    state_free(st);
    free(done);
    if (r == 0) {
        if (far.call < 0) {
            chaos_report(e, "model", "the completion agent's return code is not the model's");
            return 1;
        }
        const hcall *c = &H->calls[far.call];
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
                     chaos_actor_name(e, c->actor), vdi_strerror(c->rc), H->n, far.placed, want,
                     far.why ? far.why : "?");
    }
    return r >= 0;
}

#ifdef CHAOS_LINEARIZER_TSAN_POP
#pragma clang attribute pop
#endif
