/* vdi_server.c: SQL Server's side of a virtual device set: open, configuration,
 * buffers, devices, send_command, abort and close (the completion agent is in
 * vdi_agent.c).
 * Everything the agent's drain needs (the outstanding commands) is private, so
 * a premature close can unmap the shared view at once and still deliver one 995
 * callback per outstanding command. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vdi_internal.h"

vdi_server_set *vdi_server_set_new(void) {
    vdi_server_set *s = VDI_ALLOC("server/new:alloc", sizeof *s);
    if (s) {
        s->map.fd = -1;
        s->g.validate = vdi_srv_gate_validate;
    }
    return s;
}

/* ---- small helpers (called with s->g.mu held)
 * -------------------------------------------- */

static int mapped(const vdi_server_set *s) {
    return s->map.ctl != NULL && !s->g.closing;
}

static void bump(uint32_t *word) {
    vdi_fetch_add(word, 1);
    vdi_wake_all(word);
}

/* Wake our agent: the word must end up different from the value it sleeps on, even if
 * the peer moved the word back to just below it (found by fuzz_peer). Under the lock. */
static void wake_agent(vdi_server_set *s) {
    uint32_t *w = &s->map.ctl->agent_seq;
    if (vdi_fetch_add(w, 1) + 1 == s->agent_seen)
        vdi_fetch_add(w, 1);
    vdi_wake_all(w);
}

/* Wake everyone who may wait on the shared words of the set, on both sides. */
static void bump_all(vdi_server_set *s) {
    vdi_ctl_shm *ctl = s->map.ctl;
    bump(&ctl->state_seq);
    wake_agent(s);
    for (uint32_t i = 0; i < s->ndev; i++)
        bump(&ctl->dev[i].cmd_seq);
}

void vdi_srv_abort_at(vdi_server_set *s, const char *why, const char *file, int line) {
    if (s->aborted)
        return;
    s->aborted = 1;
    vdi_gate_note_abort(&s->g, file, line, why);
    if (mapped(s)) {
        vdi_store_release(&s->map.ctl->aborted, 1); /* pairs with the client's loads of aborted */
        bump_all(s);
    }
    vdi_gate_wake(&s->g);
}

/* Learn about an abort published by the peer, or the peer's death
 * (VDI-SPEC 5.3). */
void vdi_srv_observe(vdi_server_set *s) {
    if (s->aborted || !mapped(s))
        return;
    vdi_ctl_shm *ctl = s->map.ctl;
    if (vdi_load_acquire(&ctl->aborted)) { /* pairs with the client's abort */
        /* Wake every waiter as our own abort would: a peer that set the word and died, or
         * a hostile one, may have woken nobody (found by fuzz_peer). */
        abort_because(s, "abort published in shared memory");
        return;
    }
    uint64_t now = vdi_now();
    if (s->normal || now - s->last_check < 1000) /* after NT, an exit is not a death */
        return;
    s->last_check = now;
    /* pairs with the client's close */
    if (!vdi_load_acquire(&ctl->client_closed) && !vdi_peer_alive(&s->client))
        abort_because(s, "the primary client died");
}

static int enter(vdi_server_set *s) {
    /* pairs with the bumps of vdi_gate_begin_close and _end_close */
    return vdi_gate_enter(&s->g, vdi_load_entry(&s->g.close_epoch));
}

static int leave(vdi_server_set *s, int rc) {
    return vdi_gate_leave(&s->g, rc);
}

static int in_callback(const vdi_server_set *s, uintptr_t self) {
    return s->callback_self == self;
}

/* Normally Terminated: every device opened and closed by the server, nothing outstanding
 * and no abort. The peer's abort is looked at here, at the moment NT would be reached: one
 * published before it makes the end an abort, one published after it comes after NT (and
 * the agent still returns NOERROR, VDI-SPEC 4). */
void vdi_srv_update_normal(vdi_server_set *s) {
    if (s->normal || s->aborted || s->outstanding || s->ndev == 0)
        return;
    for (uint32_t i = 0; i < s->ndev; i++)
        if (!s->dev[i].opened || !s->dev[i].closed)
            return;
    vdi_srv_observe(s);
    if (s->aborted)
        return;
    s->normal = 1;
    if (mapped(s)) {
        vdi_store_release(&s->map.ctl->normal_end, 1); /* pairs with the client's server_dead */
        bump(&s->map.ctl->agent_seq);
    }
    vdi_gate_wake(&s->g);
}

static int is_pow2(uint32_t v) {
    return v && !(v & (v - 1));
}

static uint64_t round_up(uint64_t v, uint64_t a) {
    return (v + a - 1) / a * a;
}

/* ---- open and configuration
 * -------------------------------------------------------------- */

static void unlink_if_orphaned(vdi_server_set *s);

int vdi_server_set_open(vdi_server_set *s, const char *instance, const char *name) {
    int rc;
    if (!s || !name) /* NULL required pointer first (VDI-SPEC 8.1) */
        return VD_E_INVALID;
    VDI_ENTER_AT_POINT(s, "server/open:enter");
    if (s->state != S_DNE || s->g.closing || s->agent)
        VDI_BAIL(s, VD_E_PROTOCOL, "open on an object in use");
    VDI_GUARD(s, vdi_check_instance(instance));
    VDI_GUARD(s, vdi_check_name(name));
    VDI_GUARD(s, vdi_shm_name(s->shm_name, sizeof s->shm_name, instance, name));
    VDI_GUARD(s, vdi_map_open(&s->map, s->shm_name));
    vdi_ctl_shm *ctl = s->map.ctl;
    vdi_peer_id me;
    if ((rc = vdi_self_id(&me)) != NOERROR) { /* before the claim: its window stays short */
        vdi_map_release(&s->map);
        VDI_BAIL(s, rc, "vdi_self_id");
    }
    const char *why = NULL;
    VDI_SCHED("server/open:mapped");
    int claimed = vdi_cas(&ctl->server_attached, 0, VDI_CLAIM(me.pid));
    /* pairs with the stores of the server that holds it */
    uint32_t held = claimed ? 0 : vdi_load_acquire(&ctl->server_attached);
    VDI_SCHED("server/open:claimed");
    if (!claimed && vdi_claimer_died(&ctl->server_attached, held)) {
        /* A server died inside its open: a death like any other, the set is aborted. */
        vdi_store_release(&ctl->aborted, 1); /* pairs with the client's loads of aborted */
        vdi_fetch_add(&ctl->state_seq, 1);
        vdi_wake_all(&ctl->state_seq);
        rc = VD_E_ABORT, why = "a server died inside its open";
    } else if (!claimed) {
        /* Attached: BUSY, even when the set is aborted (VDI-SPEC 8.4). A server that
         * began its close is detached; its premature close aborted the set: ABORT. */
        /* pairs with the stores of close and abort */
        int gone = vdi_load_acquire(&ctl->server_closed) && vdi_load_acquire(&ctl->aborted);
        rc = gone ? VD_E_ABORT : VD_E_BUSY;
        why = gone ? "the server before closed the set prematurely" : "a server is attached";
    } else if (vdi_load_acquire(&ctl->aborted)) /* pairs with either side's abort */
        rc = VD_E_ABORT, why = "the set is aborted";
    else if (vdi_load_acquire(&ctl->client_closed)) /* pairs with the client's close */
        rc = VD_E_INVALID, why = "the creator closed the set";
    if (rc == NOERROR) {
        s->client = ctl->client_id; /* read once, kept privately */
        if (!vdi_peer_alive(&s->client)) {
            rc = VD_E_INVALID; /* the creator died before any server came */
            why = "the creator died before any server came";
            unlink_if_orphaned(s); /* nobody else would: its name is free again */
        }
    }
    if (rc != NOERROR && claimed)
        vdi_store_release(&ctl->server_attached, 0); /* pairs with the next open's CAS */
    if (rc == NOERROR)
        ctl->server_id = me;
    if (rc == NOERROR)                               /* 2: the identity is written */
        vdi_store_release(&ctl->server_attached, 2); /* pairs with the client's learn_server */
    if (rc != NOERROR) {
        vdi_map_release(&s->map);
        VDI_BAIL(s, rc, why);
    }
    size_t n = strlen(name);
    memcpy(s->name, name, n + 1);
    uint32_t ndev = ctl->cfg.deviceCount;      /* untrusted: checked before it is kept */
    if (ndev == 0 || ndev > VDI_MAX_DEVICES) { /* abort the set */
        vdi_store_release(&ctl->aborted, 1);   /* pairs with the client's loads of aborted */
        vdi_fetch_add(&ctl->state_seq, 1);
        vdi_wake_all(&ctl->state_seq);
        vdi_map_release(&s->map);
        VDI_BAIL(s, VD_E_ABORT, "device count out of range");
    }
    s->ndev = ndev;
    for (uint32_t i = 0; i < VDI_MAX_DEVICES; i++) {
        memset(&s->dev[i], 0, sizeof s->dev[i]);
        s->dev[i].set = s;
        s->dev[i].slot = (int)i;
    }
    s->aborted = s->normal = 0;
    vdi_gate_clear_abort(&s->g);
    s->outstanding = 0;
    s->requested = 0;
    s->area_size = 0;
    s->nbufs = 0;
    s->taken_head = s->taken_n = 0;
    s->last_check = vdi_now();
    s->state = S_CONNECTED;
    bump(&ctl->state_seq);
    VDI_SCHED("server/open:exit");
    return leave(s, NOERROR);
}

int vdi_server_set_get_configuration(vdi_server_set *s, VDConfig *cfg) {
    if (!s || !cfg)
        return VD_E_INVALID;
    VDI_ENTER_OR_ABORT(s);
    vdi_srv_observe(s);
    VDI_ENSURE(s, !s->aborted && !(s->g.closing && s->state != S_DNE), VD_E_ABORT);
    VDI_ENSURE(s, s->state != S_DNE, VD_E_PROTOCOL);
    VDConfig c = s->map.ctl->cfg;
    if (s->state < S_INITIALIZING)
        c.blockSize = c.maxIODepth = c.maxTransferSize = c.bufferAreaSize = 0;
    else
        c.bufferAreaSize = s->area_size;
    *cfg = c;
    return leave(s, NOERROR);
}

int vdi_server_set_begin_configuration(vdi_server_set *s, uint32_t features, uint32_t block_size,
                                       uint32_t alignment, uint32_t max_transfer_size,
                                       long timeout_ms) {
    (void)timeout_ms; /* never blocks (VDI-SPEC 8.5) */
    if (!s)
        return VD_E_INVALID;
    VDI_ENTER_AT_POINT(s, "server/begin_configuration:enter");
    vdi_srv_observe(s);
    VDI_ENSURE(s, !s->aborted, VD_E_ABORT);
    VDI_ENSURE(s, s->state == S_CONNECTED, VD_E_PROTOCOL);
    uint32_t media = features & ~VDF_CompleteEnabled;
    VDI_ENSURE(s, media == VDF_WriteMedia || media == VDF_ReadMedia, VD_E_INVALID);
    VDI_ENSURE(s,
               is_pow2(block_size) && block_size >= VDI_MIN_BLOCK_SIZE &&
                   block_size <= VDI_MAX_BLOCK_SIZE,
               VD_E_INVALID);
    VDI_ENSURE(s,
               !alignment || (is_pow2(alignment) && alignment >= block_size &&
                              alignment <= VDI_MAX_ALIGNMENT),
               VD_E_INVALID);
    VDI_ENSURE(s,
               max_transfer_size && max_transfer_size % VDI_TRANSFER_UNIT == 0 &&
                   max_transfer_size <= VDI_MAX_AREA,
               VD_E_INVALID);
    s->features = features;
    s->block_size = block_size;
    s->alignment = alignment;
    s->max_transfer = max_transfer_size;
    uint32_t ca = s->map.ctl->cfg.alignment;
    uint32_t sa = alignment ? alignment : block_size;
    s->set_align = ca > sa ? ca : sa;
    if (s->set_align == 0 || !is_pow2(s->set_align) || s->set_align > VDI_MAX_ALIGNMENT)
        s->set_align = sa; /* the client's value is untrusted */
    s->requested = 0;
    s->state = S_CONFIGURABLE;
    return leave(s, NOERROR);
}

/* The area a buffer may need wherever it lands: prefix, data and alignment
 * slack. */
static uint64_t buffer_need(const vdi_server_set *s, uint32_t size, uint32_t a) {
    return (uint64_t)s->map.ctl->cfg.prefixZoneSize + size + a;
}

static uint32_t buffer_align(const vdi_server_set *s, uint32_t alignment) {
    return alignment > s->set_align ? alignment : s->set_align;
}

static int bad_alignment(uint32_t a) {
    return a && (!is_pow2(a) || a > VDI_MAX_ALIGNMENT);
}

/* Back the object up to ctl + size bytes and map it; the area only ever grows.
 */
static int grow_area(vdi_server_set *s, uint64_t size) {
    size = round_up(size, VDI_AREA_ALIGN);
    if (size <= s->area_size)
        return NOERROR;
    if (size > VDI_MAX_AREA)
        return VD_E_MEMORY;
    int err = VDI_FAIL("server/grow_area:fallocate");
    if (!err)
        err = posix_fallocate(s->map.fd, (off_t)vdi_ctl_size(), (off_t)size);
    if (err)
        return vdi_errno_code(err == EINVAL || err == EFBIG ? ENOSPC : err);
    int rc = vdi_map_area(&s->map, (uint32_t)size);
    if (rc != NOERROR)
        return rc;
    s->area_size = (uint32_t)size;
    VDI_SCHED("server/grow_area:before-publish");
    /* pairs with the client's follow_area */
    vdi_store_release(&s->map.ctl->area_size, s->area_size);
    s->map.ctl->cfg.bufferAreaSize = s->area_size;
    return NOERROR;
}

int vdi_server_set_request_buffers(vdi_server_set *s, uint32_t size, uint32_t alignment,
                                   uint32_t count) {
    if (!s)
        return VD_E_INVALID;
    VDI_ENTER_OR_ABORT(s);
    vdi_srv_observe(s);
    VDI_ENSURE(s, !s->aborted, VD_E_ABORT);
    VDI_ENSURE(s, s->state >= S_CONFIGURABLE && !s->normal, VD_E_PROTOCOL);
    VDI_ENSURE(s, size && !bad_alignment(alignment) && count, VD_E_INVALID);
    uint64_t need = buffer_need(s, size, buffer_align(s, alignment)) * count;
    if (s->state == S_CONFIGURABLE) {
        s->requested = s->requested + need < s->requested ? UINT64_MAX : s->requested + need;
        return leave(s, NOERROR);
    }
    uint64_t want = (uint64_t)s->area_size + need;
    VDI_GUARD(s, grow_area(s, want < need ? UINT64_MAX : want));
    return leave(s, NOERROR);
}

/* How many allocations of this geometry fit in [lo, hi), each placed first-fit.
 */
static uint64_t fit_count(const vdi_server_set *s, uint64_t lo, uint64_t hi, uint32_t size,
                          uint32_t a) {
    uint64_t n = 0, prefix = s->map.ctl->cfg.prefixZoneSize;
    if (prefix > 65536)
        prefix = 65536;
    for (;;) {
        uint64_t data = round_up(lo + prefix, a);
        if (data + size > hi)
            return n;
        n++;
        lo = data + size;
    }
}

int vdi_server_set_query_available_buffers(vdi_server_set *s, uint32_t size, uint32_t alignment,
                                           uint32_t *count) {
    if (count)
        *count = 0;
    if (!s || !count)
        return VD_E_INVALID;
    VDI_ENTER_OR_ABORT(s);
    vdi_srv_observe(s);
    VDI_ENSURE(s, !s->aborted, VD_E_ABORT);
    VDI_ENSURE(s, s->state >= S_CONFIGURABLE && !s->normal, VD_E_PROTOCOL);
    VDI_ENSURE(s, size && !bad_alignment(alignment), VD_E_INVALID);
    uint32_t a = buffer_align(s, alignment);
    uint64_t n = 0;
    if (s->state == S_CONFIGURABLE) {
        uint64_t area = round_up(s->requested > VDI_MAX_AREA ? 0 : s->requested, VDI_AREA_ALIGN);
        n = fit_count(s, 0, area, size, a);
    } else {
        uint64_t lo = 0;
        for (uint32_t i = 0; i < s->nbufs; i++) { /* bufs are kept sorted by zone */
            n += fit_count(s, lo, s->bufs[i].zone, size, a);
            lo = s->bufs[i].end;
        }
        n += fit_count(s, lo, s->area_size, size, a);
    }
    *count = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
    return leave(s, NOERROR);
}

int vdi_server_set_end_configuration(vdi_server_set *s) {
    if (!s)
        return VD_E_INVALID;
    VDI_ENTER_AT_POINT(s, "server/end_configuration:enter");
    vdi_srv_observe(s);
    VDI_ENSURE(s, !s->aborted, VD_E_ABORT);
    VDI_ENSURE(s, s->state == S_CONFIGURABLE, VD_E_PROTOCOL);
    uint64_t req = s->requested;
    s->requested = 0; /* discarded whatever happens (VDI-SPEC 8.9) */
    VDI_GUARD(s, req > VDI_MAX_AREA ? VD_E_MEMORY : grow_area(s, req));
    vdi_ctl_shm *ctl = s->map.ctl;
    uint32_t want = ctl->cfg.features;
    uint32_t f = (want & VDF_ClientRequestable) | (s->features & (VDF_WriteMedia | VDF_ReadMedia));
    if ((s->features & VDF_CompleteEnabled) && (want & VDF_RequestComplete))
        f |= VDF_CompleteEnabled;
    ctl->features_out = f; /* cfg.features stays what the client asked for */
    ctl->cfg.blockSize = s->block_size;
    ctl->cfg.maxIODepth = VDI_MAX_IO_DEPTH;
    ctl->cfg.maxTransferSize = s->max_transfer;
    ctl->cfg.bufferAreaSize = s->area_size;
    VDI_SCHED("server/end_configuration:before-publish");
    vdi_store_release(&ctl->configured, 1); /* pairs with the client's get_configuration */
    bump(&ctl->state_seq);
    s->state = S_INITIALIZING;
    return leave(s, NOERROR);
}

/* ---- buffers
 * -------------------------------------------------------------------------------
 */

/* A buffer's generation counts the buffers this process has published, in every set:
 * a handle is not given out twice within VDI_HANDLE_GEN_MAX buffers, so neither a freed
 * buffer's handle nor one of a set closed before names a buffer of today (a new set's
 * table starts from zero). Never 0. */
static uint32_t generations;

static uint32_t next_generation(void) {
    uint32_t g;
    do
        g = vdi_next_private(&generations) % (VDI_HANDLE_GEN_MAX + 1u);
    while (g == 0);
    return g;
}

static int publish_buffer(vdi_server_set *s, const vdi_buffer *b, int live) {
    vdi_ctl_shm *ctl = s->map.ctl;
    for (uint32_t i = 0; i < VDI_MAX_BUFFERS; i++) {
        vdi_buf_shm *e = &ctl->buf[i];
        if (live && e->off == 0) {
            e->size = b->size;
            vdi_store_relaxed(&e->gen, next_generation());
            vdi_fence(); /* the generation before the offset: a client reads them reversed */
            vdi_store64_relaxed(&e->off, b->data + 1);
            return NOERROR;
        }
        if (!live && e->off == b->data + 1) {
            vdi_store64_relaxed(&e->off, 0);
            return NOERROR;
        }
    }
    return live ? VD_E_MEMORY : NOERROR;
}

int vdi_server_set_allocate_buffer(vdi_server_set *s, uint8_t **buffer, uint32_t size,
                                   uint32_t alignment) {
    if (buffer)
        *buffer = NULL;
    if (!s || !buffer)
        return VD_E_INVALID;
    VDI_ENTER_OR_ABORT(s);
    vdi_srv_observe(s);
    VDI_ENSURE(s, !s->aborted, VD_E_ABORT);
    VDI_ENSURE(s, s->state >= S_INITIALIZING, VD_E_PROTOCOL);
    VDI_ENSURE(s, size && size <= (1u << 31) && !bad_alignment(alignment), VD_E_INVALID);
    uint32_t a = buffer_align(s, alignment);
    uint64_t prefix = s->map.ctl->cfg.prefixZoneSize, lo = 0;
    if (prefix > 65536)
        prefix = 65536;
    uint32_t at = s->nbufs;
    vdi_buffer b = {0};
    for (uint32_t i = 0; i <= s->nbufs; i++) {
        uint64_t hi = i < s->nbufs ? s->bufs[i].zone : s->area_size;
        uint64_t data = round_up(lo + prefix, a);
        if (data + size <= hi) {
            b.zone = data - prefix;
            b.data = data;
            b.end = data + size;
            b.size = size;
            b.live = 1;
            at = i;
            break;
        }
        if (i < s->nbufs)
            lo = s->bufs[i].end;
    }
    VDI_ENSURE(s, b.live, VD_E_MEMORY);
    if (s->nbufs == s->capbufs) {
        uint32_t cap = s->capbufs ? s->capbufs * 2 : 16;
        vdi_buffer *nb = VDI_ALLOC("server/allocate_buffer:alloc", cap * sizeof *nb);
        VDI_ENSURE(s, nb, VD_E_MEMORY);
        if (s->nbufs)
            memcpy(nb, s->bufs, s->nbufs * sizeof *nb);
        vdi_free(s->bufs);
        s->bufs = nb;
        s->capbufs = cap;
    }
    VDI_ENSURE(s, publish_buffer(s, &b, 1) == NOERROR, VD_E_MEMORY);
    memmove(&s->bufs[at + 1], &s->bufs[at], (s->nbufs - at) * sizeof *s->bufs);
    s->bufs[at] = b;
    s->nbufs++;
    *buffer = s->map.area + b.data;
    return leave(s, NOERROR);
}

int vdi_server_set_free_buffer(vdi_server_set *s, uint8_t *buffer, uint32_t size) {
    if (!s || !buffer)
        return VD_E_INVALID;
    VDI_ENTER_OR_ABORT(s);
    vdi_srv_observe(s);
    VDI_ENSURE(s, !s->aborted, VD_E_ABORT);
    VDI_ENSURE(s, s->state >= S_INITIALIZING, VD_E_PROTOCOL);
    for (uint32_t i = 0; i < s->nbufs; i++) {
        if (s->map.area + s->bufs[i].data == buffer && s->bufs[i].size == size) {
            publish_buffer(s, &s->bufs[i], 0);
            memmove(&s->bufs[i], &s->bufs[i + 1], (s->nbufs - i - 1) * sizeof *s->bufs);
            s->nbufs--;
            return leave(s, NOERROR);
        }
    }
    VDI_BAIL(s, VD_E_INVALID, "no live buffer of that address and size");
}

/* The live buffer whose data zone holds [p, p + len), or NULL. */
static const vdi_buffer *find_zone(const vdi_server_set *s, const uint8_t *p, uint64_t len) {
    if (!s->map.area || p < s->map.area)
        return NULL;
    uint64_t off = (uint64_t)(p - s->map.area);
    for (uint32_t i = 0; i < s->nbufs; i++)
        if (off >= s->bufs[i].data && off + len <= s->bufs[i].end && off < s->bufs[i].end)
            return &s->bufs[i];
    return NULL;
}

int vdi_server_set_is_shared_buffer(vdi_server_set *s, const uint8_t *buffer) {
    if (!s || !buffer)
        return 0;
    if (enter(s))
        return leave(s, 0);
    int r = mapped(s) && s->state >= S_INITIALIZING && find_zone(s, buffer, 1) != NULL;
    return leave(s, r);
}

/* ---- devices
 * --------------------------------------------------------------------------------
 */

int vdi_server_set_open_device(vdi_server_set *s, const char *name, vdi_server_device **out) {
    if (out)
        *out = NULL;
    if (!s || !name || !out)
        return VD_E_INVALID;
    VDI_ENTER_AT_POINT(s, "server/open_device:enter");
    vdi_srv_observe(s);
    VDI_ENSURE(s, !s->aborted, VD_E_ABORT);
    VDI_ENSURE(s, s->state >= S_INITIALIZING, VD_E_PROTOCOL);
    uint32_t opened = 0;
    for (uint32_t i = 0; i < s->ndev; i++)
        opened += (uint32_t)s->dev[i].opened;
    VDI_ENSURE(s, !s->normal && opened != s->ndev, VD_E_OPEN);
    VDI_ENSURE(s, vdi_check_name(name) == NOERROR, VD_E_INVALID);
    int slot;
    int rc = vdi_dev_bind(s->map.ctl, name, s->name, s->ndev, &slot, &s->client);
    if (rc == VD_E_ABORT)
        abort_because(s, "the client died holding the device table");
    if (rc != NOERROR)
        VDI_BAIL(s, rc == VD_E_ABORT ? VD_E_ABORT : VD_E_INVALID, "the name cannot bind");
    struct vdi_server_device *d = &s->dev[slot];
    VDI_ENSURE(s, !d->opened, VD_E_PROTOCOL);
    d->opened = 1;
    s->state = S_ACTIVE;
    VDI_SCHED("server/open_device:before-publish");
    /* no reader in ref/ (cmd_seq's bump wakes the client): a peer's view */
    vdi_store_release(&s->map.ctl->dev[slot].server_open, 1);
    bump(&s->map.ctl->dev[slot].cmd_seq);
    *out = d;
    return leave(s, NOERROR);
}

/* Rejected sends get their callback here, on the calling thread, while this
 * thread does not count as inside the set (so a close from the routine does not
 * wait for it). */
static int reject(vdi_server_set *s, VDS_Command *cmd, int rc, uint32_t code) {
    uintptr_t self = vdi_self(), prev = s->callback_self;
    cmd->completionCode = code;
    cmd->bytesTransferred = 0;
    vdi_gate_step_out(&s->g);
    if (!s->agent || s->agent_self != self)
        s->callback_self = self;
    vdi_unlock(&s->g.mu);
    VDI_SCHED("server/send_command:reject-callback-enter");
    cmd->completionRoutine(cmd);
    VDI_SCHED("server/send_command:reject-callback-exit");
    vdi_lock(&s->g.mu);
    if (s->callback_self == self)
        s->callback_self = prev;
    vdi_unlock(&s->g.mu);
    return rc;
}

/* A rejected send, its failure recorded where it was decided. */
#define REJECT(s, cmd, rc, code, why)                                                              \
    reject(s, cmd, vdi_gate_note(&(s)->g, rc, __FILE__, __LINE__, why), code)

int vdi_server_device_send_command(vdi_server_device *d, VDS_Command *cmd) {
    if (!d || !cmd || !cmd->completionRoutine)
        return VD_E_INVALID;
    vdi_server_set *s = d->set;
    /* pairs with the bumps of vdi_gate_begin_close and _end_close */
    uint32_t epoch = vdi_load_entry(&s->g.close_epoch);
    VDI_SCHED("server/send_command:enter");
    if (vdi_gate_enter(&s->g, epoch)) /* overlapped a close: as if concurrent with it */
        return REJECT(s, cmd, VD_E_ABORT, ERROR_OPERATION_ABORTED, "the call overlapped a close");
    for (uint32_t i = 0; i < s->ndev; i++) /* row 2: already outstanding somewhere */
        for (uint32_t k = 0; s->dev[i].outstanding && k < VDI_RING; k++)
            if (s->dev[i].s[k].state != SLOT_FREE && s->dev[i].s[k].cmd == cmd)
                VDI_BAIL(s, VD_E_INVALID, "the command is outstanding already");
    vdi_srv_observe(s);
    if (s->aborted || s->g.closing)
        return REJECT(s, cmd, VD_E_ABORT, ERROR_OPERATION_ABORTED, "the set is aborted");
    if (s->state != S_ACTIVE || s->normal || !d->opened || d->closed || !s->agent)
        return REJECT(s, cmd, VD_E_PROTOCOL, ERROR_INVALID_HANDLE,
                      "the set is not Active, the device not open, or no agent runs");
    int32_t code = cmd->commandCode;
    int bad = code < VDC_Read || code > VDC_Complete;
    if (!bad && vdi_data_command(code))
        bad = cmd->size < 1 || (uint32_t)cmd->size > s->max_transfer || !cmd->buffer ||
              !find_zone(s, cmd->buffer, (uint64_t)cmd->size);
    else if (!bad && cmd->buffer)
        bad = !find_zone(s, cmd->buffer, 1);
    if (bad)
        return REJECT(s, cmd, VD_E_INVALID, ERROR_INVALID_PARAMETER,
                      "bad command code, size or buffer");
    if (d->io_error && code != VDC_ClearError)
        return REJECT(s, cmd, VD_E_IO_ERROR, ERROR_IO_DEVICE, "the device is in I/O error");
    if (d->outstanding >= VDI_MAX_OUTSTANDING)
        return REJECT(s, cmd, VD_E_QUEUE_FULL, ERROR_NO_SYSTEM_RESOURCES,
                      "the device queue is full");
    uint32_t k = 0;
    while (d->s[k].state != SLOT_FREE)
        k++;
    vdi_slot *sl = &d->s[k];
    sl->cmd = cmd;
    sl->gen = (sl->gen + 1) & 0xffffffu;
    sl->state = SLOT_SENT;
    sl->seq = ++s->send_seq;
    d->outstanding++;
    int first = s->outstanding++ == 0;
    if (first)
        s->wd_start = vdi_now();
    vdi_dev_shm *ds = &s->map.ctl->dev[d->slot];
    uint32_t head = vdi_load_relaxed(&ds->cmd_head); /* only this side writes it */
    vdi_cmd_shm *e = &ds->cmd[head % VDI_RING];
    e->tag = k | sl->gen << 8;
    e->code = code;
    e->size = cmd->size;
    e->position = (uint64_t)cmd->inPosition;
    e->buf_off = cmd->buffer ? (uint64_t)(cmd->buffer - s->map.area) : VDI_NO_BUFFER;
    VDI_SCHED("server/send_command:before-publish");
    vdi_store_release(&ds->cmd_head, head + 1); /* pairs with the client's get_command */
    bump(&ds->cmd_seq);
    if (first && s->map.ctl->cfg.serverTimeOut)
        bump(&s->map.ctl->agent_seq); /* the agent's watchdog deadline starts now */
    VDI_SCHED("server/send_command:exit");
    return leave(s, NOERROR);
}

int vdi_server_device_close(vdi_server_device *d) {
    if (!d)
        return VD_E_INVALID;
    vdi_server_set *s = d->set;
    VDI_ENTER_AT_POINT(s, "server/close_device:enter");
    vdi_srv_observe(s);
    VDI_ENSURE(s, !s->aborted && !s->g.closing, VD_E_ABORT);
    VDI_ENSURE(s, !d->closed && !s->normal, VD_E_CLOSE);
    d->closed = 1;
    vdi_dev_shm *ds = &s->map.ctl->dev[d->slot];
    VDI_SCHED("server/close_device:before-publish");
    /* pairs with the client's get_command */
    vdi_store_release(&ds->server_closed, 1); /* after every cmd_head it follows */
    bump(&ds->cmd_seq);
    vdi_srv_update_normal(s);
    if (s->aborted) /* seen as this close would have ended the set: the abort came first */
        VDI_BAIL(s, VD_E_ABORT, "aborted before the end");
    bump(&s->map.ctl->agent_seq);
    return leave(s, NOERROR);
}

/* ---- abort and close
 * ----------------------------------------------------------------------- */

int vdi_server_set_signal_abort(vdi_server_set *s) {
    if (!s)
        return VD_E_INVALID;
    VDI_SCHED("server/signal_abort:enter");
    (void)enter(s);
    VDI_ENSURE(s, s->state != S_DNE || s->g.closing, VD_E_PROTOCOL);
    if (!s->normal && s->aborted && mapped(s))
        wake_agent(s); /* already aborted: make sure the agent is not asleep through it */
    if (!s->normal)
        abort_because(s, "signal_abort");
    return leave(s, NOERROR);
}

void vdi_srv_reset(vdi_server_set *s) {
    s->state = S_DNE;
    s->aborted = 0;
    s->normal = 0;
    s->nbufs = 0;
    s->ndev = 0;
    s->outstanding = 0;
    s->taken_head = s->taken_n = 0;
}

/* If the creator died without closing, nobody else will unlink the name: the
 * server does, provided the name still refers to the object it has mapped
 * (VDI-SPEC 8.4). */
static void unlink_if_orphaned(vdi_server_set *s) {
    struct stat mine, named;
    /* pairs with the client's close */
    if (vdi_load_acquire(&s->map.ctl->client_closed) || vdi_peer_alive(&s->client))
        return;
    int fd = vdi_shm_open(s->shm_name, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (fstat(fd, &named) == 0 && fstat(s->map.fd, &mine) == 0 && named.st_ino == mine.st_ino &&
        named.st_dev == mine.st_dev)
        vdi_shm_unlink(s->shm_name);
    close(fd);
}

int vdi_server_set_close(vdi_server_set *s) {
    if (!s)
        return VD_E_INVALID;
    VDI_SCHED("server/close:enter");
    (void)enter(s);
    uintptr_t self = vdi_self();
    int nested = in_callback(s, self);
    if (s->state == S_DNE || s->g.closing) {
        while (s->g.closing && s->agent && !nested) /* a second close waits for the first drain */
            vdi_gate_wait_outside(&s->g);
        VDI_BAIL(s, VD_E_PROTOCOL, "not open, or closed already");
    }
    vdi_srv_observe(s);
    int open_dev = 0;
    for (uint32_t i = 0; i < s->ndev; i++)
        open_dev |= s->dev[i].opened && !s->dev[i].closed;
    int rc = (!s->aborted && !s->normal && (open_dev || s->outstanding)) ? VD_E_PROTOCOL : NOERROR;
    vdi_gate_begin_close(&s->g);
    /* (1) mark: closed, and aborted unless Normally Terminated; (2) wake every
     * waiter */
    /* pairs with the client's server_dead and get_command */
    vdi_store_release(&s->map.ctl->server_closed, 1);
    if (!s->normal)
        abort_because(s, "close before Normally Terminated (VDI-SPEC 5.1)");
    bump_all(s);
    vdi_gate_mark_closing(&s->g);
    vdi_gate_wake(&s->g);
    /* (3) wait until every other thread has left its call on this side */
    VDI_SCHED("server/close:before-wait");
    vdi_gate_wait_alone(&s->g);
    /* Only now: unmap (before any further abort callback can run) and release. */
    VDI_SCHED("server/close:before-unmap");
    unlink_if_orphaned(s);
    vdi_map_release(&s->map);
    VDI_SCHED("server/close:after-unmap");
    /* (4) a close outside a callback returns only after the agent's drain */
    while (s->agent && !nested)
        vdi_gate_wait(&s->g);
    if (!s->agent) {
        vdi_srv_reset(s);
        vdi_gate_closed(&s->g);
    } else {
        s->state = S_DNE; /* the agent finishes the drain from private memory */
    }
    VDI_SCHED("server/close:exit");
    vdi_gate_wake(&s->g); /* a second close may wait for this one's end */
    vdi_gate_end_close(&s->g);
    return rc;
}

void vdi_server_set_free(vdi_server_set *s) {
    if (!s)
        return;
    if (s->state != S_DNE)
        (void)vdi_server_set_close(s);
    vdi_free(s->bufs);
    vdi_free(s->taken);
    vdi_free(s);
}

int vdi_seam_server_error_site(vdi_server_set *s, vdi_error_site *failed, vdi_error_site *aborted) {
    return s ? vdi_gate_sites(&s->g, failed, aborted) : -1;
}
