/* vdi_server.c: SQL Server's side of a virtual device set: open, configuration,
 * buffers, devices, send_command, the completion agent, abort and close.
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

enum { SLOT_FREE, SLOT_SENT, SLOT_TAKEN };

vdi_server_set *vdi_server_set_new(void) {
    vdi_server_set *s = VDI_ALLOC("server/new:alloc", sizeof *s);
    if (s)
        s->map.fd = -1;
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

static void abort_locked(vdi_server_set *s) {
    if (s->aborted)
        return;
    s->aborted = 1;
    if (mapped(s)) {
        vdi_store_release(&s->map.ctl->aborted, 1);
        bump_all(s);
    }
    bump(&s->g.ev);
}

/* Learn about an abort published by the peer, or the peer's death
 * (VDI-SPEC 5.3). */
static void observe(vdi_server_set *s) {
    if (s->aborted || !mapped(s))
        return;
    vdi_ctl_shm *ctl = s->map.ctl;
    if (vdi_load_acquire(&ctl->aborted)) {
        /* Wake every waiter as our own abort would: a peer that set the word and died, or
         * a hostile one, may have woken nobody (found by fuzz_peer). */
        abort_locked(s);
        return;
    }
    uint64_t now = vdi_now();
    if (s->normal || now - s->last_check < 1000) /* after NT, an exit is not a death */
        return;
    s->last_check = now;
    if (!vdi_load_acquire(&ctl->client_closed) && !vdi_peer_alive(&s->client))
        abort_locked(s);
}

static int enter(vdi_server_set *s) {
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
static void update_normal(vdi_server_set *s) {
    if (s->normal || s->aborted || s->outstanding || s->ndev == 0)
        return;
    for (uint32_t i = 0; i < s->ndev; i++)
        if (!s->dev[i].opened || !s->dev[i].closed)
            return;
    observe(s);
    if (s->aborted)
        return;
    s->normal = 1;
    if (mapped(s)) {
        vdi_store_release(&s->map.ctl->normal_end, 1);
        bump(&s->map.ctl->agent_seq);
    }
    bump(&s->g.ev);
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
        VDI_BAIL(VD_E_INVALID);
    VDI_ENTER_AT_POINT(s, "server/open:enter");
    if (s->state != S_DNE || s->g.closing || s->agent)
        return leave(s, vdi_note_error(VD_E_PROTOCOL, __FILE__, __LINE__));
    if ((rc = vdi_check_instance(instance)) != NOERROR || (rc = vdi_check_name(name)) != NOERROR ||
        (rc = vdi_shm_name(s->shm_name, sizeof s->shm_name, instance, name)) != NOERROR)
        return leave(s, rc);
    rc = vdi_map_open(&s->map, s->shm_name);
    if (rc != NOERROR)
        return leave(s, rc);
    vdi_ctl_shm *ctl = s->map.ctl;
    vdi_peer_id me;
    if ((rc = vdi_self_id(&me)) != NOERROR) { /* before the claim: its window stays short */
        vdi_map_release(&s->map);
        return leave(s, rc);
    }
    VDI_SCHED("server/open:mapped");
    int claimed = vdi_cas(&ctl->server_attached, 0, VDI_CLAIM(me.pid));
    uint32_t held = claimed ? 0 : vdi_load_acquire(&ctl->server_attached);
    VDI_SCHED("server/open:claimed");
    if (!claimed && vdi_claimer_died(&ctl->server_attached, held)) {
        /* A server died inside its open: a death like any other, the set is aborted. */
        vdi_store_release(&ctl->aborted, 1);
        vdi_fetch_add(&ctl->state_seq, 1);
        vdi_wake_all(&ctl->state_seq);
        rc = VD_E_ABORT;
    } else if (!claimed) {
        /* Attached: BUSY, even when the set is aborted (VDI-SPEC 8.4). A server that
         * began its close is detached; its premature close aborted the set: ABORT. */
        int gone = vdi_load_acquire(&ctl->server_closed) && vdi_load_acquire(&ctl->aborted);
        rc = gone ? VD_E_ABORT : VD_E_BUSY;
    } else if (vdi_load_acquire(&ctl->aborted))
        rc = VD_E_ABORT;
    else if (vdi_load_acquire(&ctl->client_closed))
        rc = VD_E_INVALID;
    if (rc == NOERROR) {
        s->client = ctl->client_id; /* read once, kept privately */
        if (!vdi_peer_alive(&s->client)) {
            rc = VD_E_INVALID;     /* the creator died before any server came */
            unlink_if_orphaned(s); /* nobody else would: its name is free again */
        }
    }
    if (rc != NOERROR && claimed)
        vdi_store_release(&ctl->server_attached, 0);
    if (rc == NOERROR)
        ctl->server_id = me;
    if (rc == NOERROR) /* 2: the identity is written (pairs with the client's learn_server) */
        vdi_store_release(&ctl->server_attached, 2);
    if (rc != NOERROR) {
        vdi_map_release(&s->map);
        return leave(s, rc);
    }
    size_t n = strlen(name);
    memcpy(s->name, name, n + 1);
    s->ndev = ctl->cfg.deviceCount;
    if (s->ndev == 0 || s->ndev > VDI_MAX_DEVICES) { /* untrusted: abort the set */
        vdi_store_release(&ctl->aborted, 1);
        vdi_fetch_add(&ctl->state_seq, 1);
        vdi_wake_all(&ctl->state_seq);
        vdi_map_release(&s->map);
        return leave(s, VD_E_ABORT);
    }
    for (uint32_t i = 0; i < VDI_MAX_DEVICES; i++) {
        memset(&s->dev[i], 0, sizeof s->dev[i]);
        s->dev[i].set = s;
        s->dev[i].slot = (int)i;
    }
    s->aborted = s->normal = 0;
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
        VDI_BAIL(VD_E_INVALID);
    VDI_ENTER_OR_ABORT(s);
    observe(s);
    if (s->aborted || (s->g.closing && s->state != S_DNE))
        return leave(s, VD_E_ABORT);
    if (s->state == S_DNE)
        return leave(s, VD_E_PROTOCOL);
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
        VDI_BAIL(VD_E_INVALID);
    VDI_ENTER_AT_POINT(s, "server/begin_configuration:enter");
    observe(s);
    if (s->aborted)
        return leave(s, VD_E_ABORT);
    if (s->state != S_CONNECTED)
        return leave(s, VD_E_PROTOCOL);
    uint32_t media = features & ~VDF_CompleteEnabled;
    if (media != VDF_WriteMedia && media != VDF_ReadMedia)
        return leave(s, VD_E_INVALID);
    if (!is_pow2(block_size) || block_size < VDI_MIN_BLOCK_SIZE || block_size > VDI_MAX_BLOCK_SIZE)
        return leave(s, VD_E_INVALID);
    if (alignment &&
        (!is_pow2(alignment) || alignment < block_size || alignment > VDI_MAX_ALIGNMENT))
        return leave(s, VD_E_INVALID);
    if (!max_transfer_size || max_transfer_size % VDI_TRANSFER_UNIT ||
        max_transfer_size > VDI_MAX_AREA)
        return leave(s, VD_E_INVALID);
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
    vdi_store_release(&s->map.ctl->area_size, s->area_size);
    s->map.ctl->cfg.bufferAreaSize = s->area_size;
    return NOERROR;
}

int vdi_server_set_request_buffers(vdi_server_set *s, uint32_t size, uint32_t alignment,
                                   uint32_t count) {
    if (!s)
        VDI_BAIL(VD_E_INVALID);
    VDI_ENTER_OR_ABORT(s);
    observe(s);
    if (s->aborted)
        return leave(s, VD_E_ABORT);
    if (s->state < S_CONFIGURABLE || s->normal)
        return leave(s, VD_E_PROTOCOL);
    if (!size || bad_alignment(alignment) || !count)
        return leave(s, VD_E_INVALID);
    uint64_t need = buffer_need(s, size, buffer_align(s, alignment)) * count;
    if (s->state == S_CONFIGURABLE) {
        s->requested = s->requested + need < s->requested ? UINT64_MAX : s->requested + need;
        return leave(s, NOERROR);
    }
    uint64_t want = (uint64_t)s->area_size + need;
    return leave(s, grow_area(s, want < need ? UINT64_MAX : want));
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
        VDI_BAIL(VD_E_INVALID);
    VDI_ENTER_OR_ABORT(s);
    observe(s);
    if (s->aborted)
        return leave(s, VD_E_ABORT);
    if (s->state < S_CONFIGURABLE || s->normal)
        return leave(s, VD_E_PROTOCOL);
    if (!size || bad_alignment(alignment))
        return leave(s, VD_E_INVALID);
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
        VDI_BAIL(VD_E_INVALID);
    VDI_ENTER_AT_POINT(s, "server/end_configuration:enter");
    observe(s);
    if (s->aborted)
        return leave(s, VD_E_ABORT);
    if (s->state != S_CONFIGURABLE)
        return leave(s, VD_E_PROTOCOL);
    uint64_t req = s->requested;
    s->requested = 0; /* discarded whatever happens (VDI-SPEC 8.9) */
    int rc = req > VDI_MAX_AREA ? VD_E_MEMORY : grow_area(s, req);
    if (rc != NOERROR)
        return leave(s, rc);
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
        VDI_BAIL(VD_E_INVALID);
    VDI_ENTER_OR_ABORT(s);
    observe(s);
    if (s->aborted)
        return leave(s, VD_E_ABORT);
    if (s->state < S_INITIALIZING)
        return leave(s, VD_E_PROTOCOL);
    if (!size || size > (1u << 31) || bad_alignment(alignment))
        return leave(s, VD_E_INVALID);
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
    if (!b.live)
        return leave(s, VD_E_MEMORY);
    if (s->nbufs == s->capbufs) {
        uint32_t cap = s->capbufs ? s->capbufs * 2 : 16;
        vdi_buffer *nb = VDI_ALLOC("server/allocate_buffer:alloc", cap * sizeof *nb);
        if (!nb)
            return leave(s, VD_E_MEMORY);
        if (s->nbufs)
            memcpy(nb, s->bufs, s->nbufs * sizeof *nb);
        vdi_free(s->bufs);
        s->bufs = nb;
        s->capbufs = cap;
    }
    if (publish_buffer(s, &b, 1) != NOERROR)
        return leave(s, VD_E_MEMORY);
    memmove(&s->bufs[at + 1], &s->bufs[at], (s->nbufs - at) * sizeof *s->bufs);
    s->bufs[at] = b;
    s->nbufs++;
    *buffer = s->map.area + b.data;
    return leave(s, NOERROR);
}

int vdi_server_set_free_buffer(vdi_server_set *s, uint8_t *buffer, uint32_t size) {
    if (!s || !buffer)
        VDI_BAIL(VD_E_INVALID);
    VDI_ENTER_OR_ABORT(s);
    observe(s);
    if (s->aborted)
        return leave(s, VD_E_ABORT);
    if (s->state < S_INITIALIZING)
        return leave(s, VD_E_PROTOCOL);
    for (uint32_t i = 0; i < s->nbufs; i++) {
        if (s->map.area + s->bufs[i].data == buffer && s->bufs[i].size == size) {
            publish_buffer(s, &s->bufs[i], 0);
            memmove(&s->bufs[i], &s->bufs[i + 1], (s->nbufs - i - 1) * sizeof *s->bufs);
            s->nbufs--;
            return leave(s, NOERROR);
        }
    }
    return leave(s, VD_E_INVALID);
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
        VDI_BAIL(VD_E_INVALID);
    VDI_ENTER_AT_POINT(s, "server/open_device:enter");
    observe(s);
    if (s->aborted)
        return leave(s, VD_E_ABORT);
    if (s->state < S_INITIALIZING)
        return leave(s, VD_E_PROTOCOL);
    uint32_t opened = 0;
    for (uint32_t i = 0; i < s->ndev; i++)
        opened += (uint32_t)s->dev[i].opened;
    if (s->normal || opened == s->ndev)
        return leave(s, VD_E_OPEN);
    if (vdi_check_name(name) != NOERROR)
        return leave(s, VD_E_INVALID);
    int slot;
    int rc = vdi_dev_bind(s->map.ctl, name, s->name, s->ndev, &slot, &s->client);
    if (rc == VD_E_ABORT) /* the client died holding the device table */
        abort_locked(s);
    if (rc != NOERROR)
        return leave(s, rc == VD_E_ABORT ? VD_E_ABORT : VD_E_INVALID);
    struct vdi_server_device *d = &s->dev[slot];
    if (d->opened)
        return leave(s, VD_E_PROTOCOL);
    d->opened = 1;
    s->state = S_ACTIVE;
    VDI_SCHED("server/open_device:before-publish");
    vdi_store_release(&s->map.ctl->dev[slot].server_open, 1);
    bump(&s->map.ctl->dev[slot].cmd_seq);
    *out = d;
    return leave(s, NOERROR);
}

static int data_command(int32_t code) {
    return code == VDC_Read || code == VDC_Write;
}

/* Rejected sends get their callback here, on the calling thread, while this
 * thread does not count as inside the set (so a close from the routine does not
 * wait for it). */
static int reject(vdi_server_set *s, VDS_Command *cmd, int rc, uint32_t code) {
    uintptr_t self = vdi_self(), prev = s->callback_self;
    cmd->completionCode = code;
    cmd->bytesTransferred = 0;
    s->g.active--;
    if (s->g.closing)
        bump(&s->g.ev);
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

int vdi_server_device_send_command(vdi_server_device *d, VDS_Command *cmd) {
    if (!d || !cmd || !cmd->completionRoutine)
        VDI_BAIL(VD_E_INVALID);
    vdi_server_set *s = d->set;
    uint32_t epoch = vdi_load_entry(&s->g.close_epoch);
    VDI_SCHED("server/send_command:enter");
    if (vdi_gate_enter(&s->g, epoch)) /* overlapped a close: as if concurrent with it */
        return reject(s, cmd, VD_E_ABORT, ERROR_OPERATION_ABORTED);
    for (uint32_t i = 0; i < s->ndev; i++) /* row 2: already outstanding somewhere */
        for (uint32_t k = 0; s->dev[i].outstanding && k < VDI_RING; k++)
            if (s->dev[i].s[k].state != SLOT_FREE && s->dev[i].s[k].cmd == cmd)
                return leave(s, VD_E_INVALID);
    observe(s);
    if (s->aborted || s->g.closing)
        return reject(s, cmd, VD_E_ABORT, ERROR_OPERATION_ABORTED);
    if (s->state != S_ACTIVE || s->normal || !d->opened || d->closed || !s->agent)
        return reject(s, cmd, VD_E_PROTOCOL, ERROR_INVALID_HANDLE);
    int32_t code = cmd->commandCode;
    int bad = code < VDC_Read || code > VDC_Complete;
    if (!bad && data_command(code))
        bad = cmd->size < 1 || (uint32_t)cmd->size > s->max_transfer || !cmd->buffer ||
              !find_zone(s, cmd->buffer, (uint64_t)cmd->size);
    else if (!bad && cmd->buffer)
        bad = !find_zone(s, cmd->buffer, 1);
    if (bad)
        return reject(s, cmd, VD_E_INVALID, ERROR_INVALID_PARAMETER);
    if (d->io_error && code != VDC_ClearError)
        return reject(s, cmd, VD_E_IO_ERROR, ERROR_IO_DEVICE);
    if (d->outstanding >= VDI_MAX_OUTSTANDING)
        return reject(s, cmd, VD_E_QUEUE_FULL, ERROR_NO_SYSTEM_RESOURCES);
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
        VDI_BAIL(VD_E_INVALID);
    vdi_server_set *s = d->set;
    VDI_ENTER_AT_POINT(s, "server/close_device:enter");
    observe(s);
    if (s->aborted || s->g.closing)
        return leave(s, VD_E_ABORT);
    if (d->closed || s->normal)
        return leave(s, VD_E_CLOSE);
    d->closed = 1;
    vdi_dev_shm *ds = &s->map.ctl->dev[d->slot];
    VDI_SCHED("server/close_device:before-publish");
    vdi_store_release(&ds->server_closed, 1); /* after every cmd_head it follows */
    bump(&ds->cmd_seq);
    update_normal(s);
    if (s->aborted) /* seen as this close would have ended the set: the abort came first */
        return leave(s, VD_E_ABORT);
    bump(&s->map.ctl->agent_seq);
    return leave(s, NOERROR);
}

static void reset(vdi_server_set *s);

/* ---- the completion agent
 * --------------------------------------------------------------------- */

/* Move every published completion into the private FIFO. A value that does not
 * match an outstanding command is corruption by the peer: abort. */
static void take_completions(vdi_server_set *s) {
    vdi_ctl_shm *ctl = s->map.ctl;
    for (uint32_t i = 0; i < s->ndev && !s->aborted; i++) {
        struct vdi_server_device *d = &s->dev[i];
        if (!d->opened)
            continue;
        vdi_dev_shm *ds = &ctl->dev[i];
        uint32_t tail = vdi_load_relaxed(&ds->cpl_tail);
        uint32_t head = vdi_load_acquire(&ds->cpl_head); /* pairs with complete_command */
        if (head - tail > VDI_RING) {
            abort_locked(s);
            return;
        }
        VDI_SCHED("server/agent:take");
        for (; tail != head; tail++) {
            vdi_cpl_shm e = ds->cpl[tail % VDI_RING];
            uint32_t k = e.tag & 0xffu;
            if (k >= VDI_RING || d->s[k].state != SLOT_SENT || d->s[k].gen != e.tag >> 8 ||
                (data_command(d->s[k].cmd->commandCode) && e.bytes > (uint32_t)d->s[k].cmd->size) ||
                s->taken_n >= VDI_RING * VDI_MAX_DEVICES) {
                abort_locked(s);
                return;
            }
            d->s[k].state = SLOT_TAKEN;
            vdi_taken *t = &s->taken[(s->taken_head + s->taken_n++) % (VDI_RING * VDI_MAX_DEVICES)];
            t->dev = (int)i;
            t->slot = (int)k;
            t->code = e.code;
            t->bytes = e.bytes;
            t->position = e.position;
            s->wd_start = vdi_now();
        }
        vdi_store_release(&ds->cpl_tail, tail);
    }
}

/* Write the results into the command and run its routine with the lock
 * released. */
static void deliver(vdi_server_set *s, int dev, int k, uint32_t code, uint32_t bytes,
                    const uint64_t *position, int counted) {
    struct vdi_server_device *d = &s->dev[dev];
    VDS_Command *cmd = d->s[k].cmd;
    cmd->completionCode = code;
    cmd->bytesTransferred = bytes;
    if (position)
        cmd->outPosition = (int64_t)*position;
    d->s[k].state = SLOT_FREE;
    d->s[k].cmd = NULL;
    d->outstanding--;
    s->outstanding--;
    if (code == ERROR_IO_DEVICE)
        d->io_error = 1;
    else if (cmd->commandCode == VDC_ClearError && code == ERROR_SUCCESS)
        d->io_error = 0;
    update_normal(s);
    s->callback_self = s->agent_self;
    if (counted) {
        s->g.active--;
        if (s->g.closing)
            bump(&s->g.ev);
    }
    vdi_unlock(&s->g.mu);
    VDI_SCHED("server/agent:callback-enter");
    cmd->completionRoutine(cmd);
    VDI_SCHED("server/agent:callback-exit");
    vdi_lock(&s->g.mu);
    s->callback_self = 0;
}

int vdi_server_set_execute_completion_agent(vdi_server_set *s) {
    if (!s)
        VDI_BAIL(VD_E_INVALID);
    uint32_t epoch = vdi_load_entry(&s->g.close_epoch);
    VDI_SCHED("server/agent:enter");
    vdi_lock(&s->g.mu);
    if (s->agent) {
        vdi_unlock(&s->g.mu);
        VDI_BAIL(VD_E_PROTOCOL);
    }
    if ((epoch & 1) || epoch != vdi_load_acquire(&s->g.close_epoch)) { /* overlapped a close */
        vdi_unlock(&s->g.mu);
        VDI_BAIL(VD_E_ABORT);
    }
    observe(s);
    if (!s->aborted && !s->g.closing) {
        if (s->state < S_INITIALIZING) {
            vdi_unlock(&s->g.mu);
            VDI_BAIL(VD_E_PROTOCOL);
        }
        if (s->normal) {
            vdi_unlock(&s->g.mu);
            return NOERROR;
        }
        s->state = S_ACTIVE;
    } else if (s->state == S_DNE && !s->g.closing) {
        vdi_unlock(&s->g.mu);
        VDI_BAIL(VD_E_PROTOCOL);
    }
    if (!s->taken) {
        s->taken = VDI_ALLOC("server/agent:alloc", VDI_RING * VDI_MAX_DEVICES * sizeof *s->taken);
        if (!s->taken) {
            vdi_unlock(&s->g.mu);
            VDI_BAIL(VD_E_MEMORY);
        }
    }
    s->agent = 1;
    s->agent_self = vdi_self();
    int normal_before = s->normal; /* NT, then an abort, before this agent started */
    int counted = 1;               /* this thread counts as inside the set until it drains */
    s->g.active++;
    int rc = NOERROR;
    for (;;) {
        if (counted && !s->draining)
            observe(s);
        if (counted && (s->aborted || s->g.closing)) {
            counted = 0; /* from here on, nothing but private memory */
            s->draining = 1;
            s->g.active--;
            bump(&s->g.ev);
        }
        if (counted)
            take_completions(s);
        int was_counted = counted;
        if (s->taken_n) {
            vdi_taken t = s->taken[s->taken_head];
            s->taken_head = (s->taken_head + 1) % (VDI_RING * VDI_MAX_DEVICES);
            s->taken_n--;
            deliver(s, t.dev, t.slot, t.code, t.bytes, &t.position, counted);
        } else if (!counted) {
            int dev = -1, k = -1;
            for (uint32_t i = 0; i < VDI_MAX_DEVICES && dev < 0; i++) /* per device, send order */
                for (uint32_t j = 0; s->dev[i].outstanding && j < VDI_RING; j++)
                    if (s->dev[i].s[j].state == SLOT_SENT &&
                        (k < 0 || s->dev[i].s[j].seq < s->dev[i].s[k].seq)) {
                        dev = (int)i;
                        k = (int)j;
                    }
            if (dev < 0) {
                /* NT reached while this agent ran (update_normal looked for an abort as it
                 * was reached) is the agent's end, at that moment: an abort or a close
                 * since, even one nested in the routine of the command that ended the set,
                 * does not make it an abort (VDI-SPEC 4). An agent started after NT and an
                 * abort starts in Abort. */
                rc = s->normal && !normal_before ? NOERROR : VD_E_ABORT;
                break;
            }
            deliver(s, dev, k, ERROR_OPERATION_ABORTED, 0, NULL, 0);
            continue;
        } else if (s->normal) {
            break;
        } else {
            long wait_ms = -1;
            uint32_t t = s->map.ctl->cfg.serverTimeOut;
            if (t && s->outstanding) {
                uint64_t deadline = s->wd_start + 2 * (uint64_t)t, now = vdi_now();
                if (now >= deadline) {
                    abort_locked(s); /* the watchdog (VDI-SPEC 4) */
                    continue;
                }
                wait_ms = (long)(deadline - now);
            }
            uint32_t *word = &s->map.ctl->agent_seq;
            /* Read the sequence first, then look at the shared state it guards: an abort
             * or completion published after this read changes the word, so the wait
             * returns at once (found by the chaos engine: a lost wake-up on abort). */
            uint32_t seen = vdi_load_acquire(word);
            observe(s);
            take_completions(s);
            if (s->taken_n || s->aborted || s->normal)
                continue;
            s->agent_seen = seen; /* a local wake makes the word differ from it */
            vdi_unlock(&s->g.mu);
            VDI_SCHED("server/agent:before-wait");
            int w = vdi_wait_live(word, seen, wait_ms, &s->client);
            vdi_lock(&s->g.mu);
            if (w == -1 && !s->aborted && !s->g.closing &&
                !vdi_load_acquire(&s->map.ctl->client_closed))
                abort_locked(s); /* the primary client died */
            continue;
        }
        /* Back from a callback: count as inside again, unless an abort or a close
         * came meanwhile, in which case the rest is a drain from private memory. */
        if (was_counted) {
            if (s->aborted || s->g.closing) {
                counted = 0;
                s->draining = 1;
                bump(&s->g.ev);
            } else {
                s->g.active++;
            }
        }
    }
    if (counted)
        s->g.active--;
    s->agent = 0;
    s->agent_self = 0;
    s->draining = 0;
    if (s->g.closing && s->state == S_DNE) { /* a nested close left the rest to the agent */
        reset(s);
        s->g.closing = 0;
    }
    bump(&s->g.ev);
    vdi_unlock(&s->g.mu);
    return rc;
}

/* ---- abort and close
 * ----------------------------------------------------------------------- */

int vdi_server_set_signal_abort(vdi_server_set *s) {
    if (!s)
        VDI_BAIL(VD_E_INVALID);
    VDI_SCHED("server/signal_abort:enter");
    (void)enter(s);
    if (s->state == S_DNE && !s->g.closing)
        return leave(s, VD_E_PROTOCOL);
    if (!s->normal && s->aborted && mapped(s))
        wake_agent(s); /* already aborted: make sure the agent is not asleep through it */
    if (!s->normal)
        abort_locked(s);
    return leave(s, NOERROR);
}

static void reset(vdi_server_set *s) {
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
        VDI_BAIL(VD_E_INVALID);
    VDI_SCHED("server/close:enter");
    (void)enter(s);
    uintptr_t self = vdi_self();
    int nested = in_callback(s, self);
    if (s->state == S_DNE || s->g.closing) {
        while (s->g.closing && s->agent && !nested) { /* a second close waits for the first drain */
            uint32_t seen = s->g.ev;
            s->g.active--;
            vdi_unlock(&s->g.mu);
            vdi_wait(&s->g.ev, seen, -1, VDI_WAIT_PLAIN);
            vdi_lock(&s->g.mu);
            s->g.active++;
        }
        return leave(s, VD_E_PROTOCOL);
    }
    observe(s);
    int open_dev = 0;
    for (uint32_t i = 0; i < s->ndev; i++)
        open_dev |= s->dev[i].opened && !s->dev[i].closed;
    int rc = (!s->aborted && !s->normal && (open_dev || s->outstanding)) ? VD_E_PROTOCOL : NOERROR;
    vdi_fetch_add(&s->g.close_epoch, 1); /* odd: a close runs */
    /* (1) mark: closed, and aborted unless Normally Terminated; (2) wake every
     * waiter */
    vdi_store_release(&s->map.ctl->server_closed, 1);
    if (!s->normal)
        abort_locked(s);
    bump_all(s);
    s->g.closing = 1;
    bump(&s->g.ev);
    /* (3) wait until every other thread has left its call on this side */
    VDI_SCHED("server/close:before-wait");
    while (s->g.active > 1) {
        uint32_t seen = s->g.ev;
        vdi_unlock(&s->g.mu);
        vdi_wait(&s->g.ev, seen, -1, VDI_WAIT_PLAIN);
        vdi_lock(&s->g.mu);
    }
    /* Only now: unmap (before any further abort callback can run) and release. */
    VDI_SCHED("server/close:before-unmap");
    unlink_if_orphaned(s);
    vdi_map_release(&s->map);
    VDI_SCHED("server/close:after-unmap");
    /* (4) a close outside a callback returns only after the agent's drain */
    while (s->agent && !nested) {
        uint32_t seen = s->g.ev;
        vdi_unlock(&s->g.mu);
        vdi_wait(&s->g.ev, seen, -1, VDI_WAIT_PLAIN);
        vdi_lock(&s->g.mu);
    }
    if (!s->agent) {
        reset(s);
        s->g.closing = 0;
    } else {
        s->state = S_DNE; /* the agent finishes the drain from private memory */
    }
    VDI_SCHED("server/close:exit");
    s->g.active--;
    bump(&s->g.ev);
    vdi_unlock(&s->g.mu);
    /* Last of all, after the unlock: a call that started before this point overlapped the
     * close (see enter). */
    vdi_fetch_add(&s->g.close_epoch, 1);
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
