/* vdi_client.c: the backup application's side of a virtual device set: create,
 * the configuration wait, devices, get_command / complete_command, secondaries,
 * buffer handles, abort and close. Every value read from the shared region is
 * checked before use. */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vdi_internal.h"

vdi_client_set *vdi_client_set_new(void) {
    vdi_client_set *c = VDI_ALLOC("client/new:alloc", sizeof *c);
    if (c) {
        c->map.fd = -1;
        c->g.validate = vdi_cli_gate_validate;
    }
    return c;
}

static void bump(uint32_t *word) {
    vdi_fetch_add(word, 1);
    vdi_wake_all(word);
}

static uint32_t ndev(const vdi_client_set *c) {
    return c->cfg.deviceCount;
}

static void bump_all(vdi_client_set *c) {
    vdi_ctl_shm *ctl = c->map.ctl;
    bump(&ctl->state_seq);
    bump(&ctl->agent_seq);
    for (uint32_t i = 0; i < ndev(c); i++)
        bump(&ctl->dev[i].cmd_seq);
}

/* Enter Abort (through abort_because, which says why): publish it and wake every waiter
 * of the set, on both sides. */
void vdi_cli_abort_at(vdi_client_set *c, const char *why, const char *file, int line) {
    if (c->aborted)
        return;
    c->aborted = 1;
    vdi_gate_note_abort(&c->g, file, line, why);
    if (c->map.ctl) {
        vdi_store_release(&c->map.ctl->aborted, 1); /* pairs with the server's loads of aborted */
        bump_all(c);
    }
}

/* Learn whether the server is known yet; its identity is read once and kept. Until
 * then, a claim (a server inside its open) is remembered, to watch that server by pid. */
static void learn_server(vdi_client_set *c) {
    if (c->server_known)
        return;
    /* pairs with open's store of 2 (the identity is written) */
    uint32_t v = vdi_load_acquire(&c->map.ctl->server_attached);
    if (v == 2) {
        c->server = c->map.ctl->server_id;
        c->server_known = 1;
        c->claim = 0;
        c->last_check = vdi_now();
    } else if (VDI_CLAIMER(v) > 0) {
        if (c->claim != v)
            c->last_check = vdi_now();
        c->claim = v;
    } else {
        c->claim = 0;
    }
}

static int server_dead(vdi_client_set *c) {
    vdi_ctl_shm *ctl = c->map.ctl;
    if (!c->server_known) /* a server that died inside its open, if any */
        return c->claim && vdi_claimer_died(&ctl->server_attached, c->claim);
    /* pairs with the server's close and normal end */
    return !vdi_load_acquire(&ctl->server_closed) && !vdi_load_acquire(&ctl->normal_end) &&
           !vdi_peer_alive(&c->server);
}

static void observe(vdi_client_set *c) {
    if (c->aborted || !c->map.ctl)
        return;
    if (vdi_load_acquire(&c->map.ctl->aborted)) { /* pairs with the server's abort */
        /* and wake every waiter: the peer may have woken nobody */
        abort_because(c, "abort published in shared memory");
        return;
    }
    learn_server(c);
    uint64_t now = vdi_now();
    if ((!c->server_known && !c->claim) || now - c->last_check < 1000)
        return;
    c->last_check = now;
    if (server_dead(c))
        abort_because(c, "the server died");
}

static int enter(vdi_client_set *c) {
    /* pairs with the bumps of vdi_gate_begin_close and _end_close */
    return vdi_gate_enter(&c->g, vdi_load_entry(&c->g.close_epoch));
}

static int leave(vdi_client_set *c, int rc) {
    return vdi_gate_leave(&c->g, rc);
}

/* Abort observed, or this object is being closed: only Close is useful. */
static int aborted(vdi_client_set *c) {
    observe(c);
    return c->aborted || c->g.closing;
}

static uint64_t deadline_of(long timeout_ms) {
    if (timeout_ms < 0)
        return UINT64_MAX;
    uint64_t now = vdi_now();
    return now + (uint64_t)timeout_ms < now ? UINT64_MAX : now + (uint64_t)timeout_ms;
}

static long left_until(uint64_t deadline) {
    if (deadline == UINT64_MAX)
        return -1;
    uint64_t now = vdi_now();
    if (now >= deadline)
        return 0;
    uint64_t d = deadline - now;
    return d > (uint64_t)INT32_MAX ? INT32_MAX : (long)d;
}

/* Wait on a shared word with the lock released (VDI_WOKEN, VDI_TIMED_OUT, or
 * VDI_PEER_DEAD: the server died and the set is aborted). Before the
 * server is known the wait is cut into liveness slices as well: a server may claim the
 * set and die inside its open, and nothing else would tell (VDI-SPEC 5.3). A slice that
 * ends with news returns VDI_WOKEN, "look again", as a wake-up does. */
static int wait_on(vdi_client_set *c, uint32_t *word, uint32_t seen, long timeout_ms) {
    learn_server(c);
    if (c->server_known) {
        vdi_unlock(&c->g.mu);
        int w = vdi_wait_live(word, seen, timeout_ms, &c->server);
        vdi_lock(&c->g.mu);
        if (w == VDI_PEER_DEAD && !c->g.closing && server_dead(c))
            abort_because(c, "the server died while a call waited");
        return w;
    }
    uint64_t deadline = deadline_of(timeout_ms);
    for (;;) {
        long left = left_until(deadline);
        int slice = left < 0 || left > 500;
        vdi_unlock(&c->g.mu);
        int w =
            vdi_wait(word, seen, slice ? 500 : left, slice ? VDI_WAIT_LIVENESS : VDI_WAIT_PLAIN);
        vdi_lock(&c->g.mu);
        if (w == 0 || !slice)
            return w == 0 ? VDI_WOKEN : VDI_TIMED_OUT;
        learn_server(c);
        if (!c->g.closing && server_dead(c)) {
            abort_because(c, "the server died inside its open");
            return VDI_PEER_DEAD;
        }
        /* pairs with the bumps of the word */
        if (c->server_known || c->g.closing || vdi_load_acquire(word) != seen)
            return VDI_WOKEN;
    }
}

/* ---- create and configuration
 * --------------------------------------------------------------- */

static int is_pow2(uint32_t v) {
    return v && !(v & (v - 1));
}

/* VDI-SPEC 8.6: what create accepts of the client's VDConfig. */
static int config_supported(const VDConfig *cfg) {
    return cfg->deviceCount != 0 && cfg->deviceCount <= VDI_MAX_DEVICES &&
           !(cfg->features & ~VDF_ClientRequestable) &&
           (!cfg->alignment || (is_pow2(cfg->alignment) && cfg->alignment <= VDI_MAX_ALIGNMENT)) &&
           cfg->prefixZoneSize <= 65536;
}

int vdi_client_set_create_ex(vdi_client_set *c, const char *instance, const char *name,
                             VDConfig *cfg) {
    int rc, reclaimed;
    if (!c || !name || !cfg) /* NULL required pointers first (VDI-SPEC 8.1) */
        return VD_E_INVALID;
    VDI_ENTER_AT_POINT(c, "client/create:enter");
    VDI_ENSURE(c, c->state == C_DNE && !c->g.closing, VD_E_PROTOCOL);
    VDI_GUARD(c, vdi_check_instance(instance));
    VDI_GUARD(c, vdi_check_name(name));
    VDI_ENSURE(c, config_supported(cfg), VD_E_NOTSUPPORTED);
    VDI_GUARD(c, vdi_shm_name(c->shm_name, sizeof c->shm_name, instance, name));
    VDI_GUARD(c, vdi_map_create(&c->map, c->shm_name, &reclaimed));
    vdi_ctl_shm *ctl = c->map.ctl;
    if ((rc = vdi_self_id(&ctl->client_id)) != NOERROR) {
        vdi_map_release(&c->map);
        vdi_shm_unlink(c->shm_name);
        VDI_BAIL(c, rc, "vdi_self_id");
    }
    VDConfig in = *cfg;
    in.blockSize = in.maxIODepth = in.maxTransferSize = in.bufferAreaSize = 0;
    c->cfg = in;
    ctl->cfg = in;
    ctl->ctl_size = (uint32_t)vdi_ctl_size();
    ctl->version = VDI_SHM_VERSION;
    ctl->next_owner = 1;
    size_t n = strlen(name);
    memcpy(ctl->dev[0].name, name, n);
    ctl->dev[0].name_len = (uint32_t)n;
    ctl->dev[0].bound = 2;
    VDI_SCHED("client/create:before-publish");
    vdi_store64_relaxed(&ctl->magic, VDI_SHM_MAGIC);
    vdi_fence(); /* the magic is the last thing an opener checks */
    memcpy(c->name, name, n + 1);
    memset(c->dev, 0, sizeof c->dev);
    for (int i = 0; i < VDI_MAX_DEVICES; i++) {
        c->dev[i].set = c;
        c->dev[i].slot = i;
    }
    c->owner = 1;
    c->secondary = 0;
    c->aborted = 0;
    vdi_gate_clear_abort(&c->g);
    c->server_known = 0;
    c->claim = 0;
    c->state = C_CONFIGURABLE;
    return leave(c, NOERROR);
}

int vdi_client_set_create(vdi_client_set *c, const char *name, VDConfig *cfg) {
    return vdi_client_set_create_ex(c, NULL, name, cfg);
}

/* Map the area as far as the server says it reaches; the value is untrusted: beyond the
 * object's real size a touch would be SIGBUS, so such a size aborts the set (found by
 * fuzz_peer). VD_E_ABORT says why in *why. */
static int follow_area(vdi_client_set *c, const char **why) {
    /* pairs with the server's grow_area */
    uint32_t size = vdi_load_acquire(&c->map.ctl->area_size);
    *why = "area size out of range";
    if (size > VDI_MAX_AREA || size % VDI_AREA_ALIGN)
        return VD_E_ABORT;
    struct stat st;
    *why = "area size beyond the shared object";
    if (size > c->map.mapped &&
        (fstat(c->map.fd, &st) != 0 || (uint64_t)st.st_size < vdi_ctl_size() + (uint64_t)size))
        return VD_E_ABORT;
    *why = "the area cannot be mapped";
    return vdi_map_area(&c->map, size);
}

static void fill_config(const vdi_client_set *c, VDConfig *out) {
    const VDConfig *s = &c->map.ctl->cfg;
    VDConfig r = c->cfg;
    uint32_t f = vdi_load_relaxed(&c->map.ctl->features_out);
    r.features = c->cfg.features | (f & (VDF_WriteMedia | VDF_ReadMedia));
    if ((f & VDF_CompleteEnabled) && (c->cfg.features & VDF_RequestComplete))
        r.features |= VDF_CompleteEnabled;
    r.blockSize = s->blockSize;
    r.maxIODepth = VDI_MAX_IO_DEPTH;
    r.maxTransferSize = c->max_transfer;
    r.bufferAreaSize = c->map.mapped;
    *out = r;
}

int vdi_client_set_get_configuration(vdi_client_set *c, long timeout_ms, VDConfig *cfg) {
    if (!c || !cfg)
        return VD_E_INVALID;
    VDI_ENTER_AT_POINT(c, "client/get_configuration:enter");
    uint64_t deadline = deadline_of(timeout_ms);
    for (;;) {
        /* The sequence is read before any check of what it guards (no lost wake-up). */
        /* pairs with the server's bumps of state_seq */
        uint32_t seen = c->map.ctl ? vdi_load_acquire(&c->map.ctl->state_seq) : 0;
        VDI_ENSURE(c, !aborted(c), VD_E_ABORT);
        VDI_ENSURE(c, c->state != C_DNE, VD_E_PROTOCOL);
        vdi_ctl_shm *ctl = c->map.ctl;
        if (vdi_load_acquire(&ctl->configured)) { /* pairs with end_configuration */
            const char *why;
            int rc = follow_area(c, &why);
            if (rc == VD_E_ABORT) {
                abort_because(c, why);
                VDI_BAIL(c, VD_E_ABORT, why);
            }
            if (rc != NOERROR)
                VDI_BAIL(c, c->state == C_CONFIGURABLE ? VD_E_MEMORY : rc, why);
            uint32_t bs = ctl->cfg.blockSize, mt = ctl->cfg.maxTransferSize;
            if (!is_pow2(bs) || bs < VDI_MIN_BLOCK_SIZE || bs > VDI_MAX_BLOCK_SIZE || !mt ||
                mt % VDI_TRANSFER_UNIT) {
                abort_because(c, "configuration: block size or max transfer size out of range");
                VDI_BAIL(c, VD_E_ABORT, "configuration out of range");
            }
            if (!c->max_transfer)
                c->max_transfer = mt; /* later changes of the shared word are not ours */
            fill_config(c, cfg);
            if (c->state == C_CONFIGURABLE) {
                c->state = C_INITIALIZING;
                if (!c->secondary)
                    /* pairs with open_in_secondary's load */
                    vdi_store_release(&ctl->primary_ready, 1);
            }
            return leave(c, NOERROR);
        }
        long left = left_until(deadline);
        VDI_ENSURE(c, left != 0, VD_E_TIMEOUT);
        learn_server(c);
        VDI_SCHED("client/get_configuration:before-wait");
        wait_on(c, &ctl->state_seq, seen, left);
    }
}

/* ---- devices
 * ----------------------------------------------------------------------------------
 */

/* Normally Terminated (VDI-SPEC 3) for this object. */
static int normal(vdi_client_set *c) {
    if (!c->map.ctl || c->state != C_ACTIVE)
        return 0;
    for (uint32_t i = 0; i < ndev(c); i++) {
        /* pairs with the server's close_device */
        if (!vdi_load_acquire(&c->map.ctl->dev[i].server_closed))
            return 0;
        struct vdi_client_device *d = &c->dev[i];
        if (d->opened && !d->closed_seen)
            return 0;
        for (uint32_t k = 0; d->opened && k < VDI_RING; k++)
            if (d->delivered[k])
                return 0;
    }
    return 1;
}

int vdi_client_set_open_device(vdi_client_set *c, const char *name, vdi_client_device **out) {
    if (out)
        *out = NULL;
    if (!c || !name || !out)
        return VD_E_INVALID;
    VDI_ENTER_AT_POINT(c, "client/open_device:enter");
    VDI_ENSURE(c, !aborted(c), VD_E_ABORT);
    VDI_ENSURE(c, c->state >= C_INITIALIZING && !normal(c), VD_E_PROTOCOL);
    VDI_ENSURE(c, vdi_check_name(name) == NOERROR, VD_E_INVALID);
    vdi_ctl_shm *ctl = c->map.ctl;
    /* Look the name up before binding: ownership errors come before VD_E_OPEN. */
    int slot = -1;
    size_t len = strlen(name);
    if (strcmp(name, c->name) == 0)
        slot = 0;
    for (uint32_t i = 1; slot < 0 && i < ndev(c); i++) {
        vdi_dev_shm *d = &ctl->dev[i];
        /* pairs with vdi_dev_bind's store of 2 */
        if (vdi_load_acquire(&d->bound) == 2 && d->name_len == len &&
            memcmp(d->name, name, len) == 0)
            slot = (int)i;
    }
    if (slot >= 0) {
        /* pairs with the CAS that takes the device */
        uint32_t owner = vdi_load_acquire(&ctl->dev[slot].client_owner);
        VDI_ENSURE(c, !owner, VD_E_PROTOCOL); /* this object's, or another client object's */
    } else {
        uint32_t held = 0;
        for (uint32_t i = 0; i < ndev(c); i++)
            /* pairs with the CAS that takes a device */
            held += vdi_load_acquire(&ctl->dev[i].client_owner) != 0;
        VDI_ENSURE(c, held != ndev(c), VD_E_OPEN);
        int rc =
            vdi_dev_bind(ctl, name, c->name, ndev(c), &slot, c->server_known ? &c->server : NULL);
        if (rc == VD_E_ABORT)
            abort_because(c, "the server died holding the device table");
        if (rc != NOERROR)
            VDI_BAIL(c, rc == VD_E_ABORT ? VD_E_ABORT : VD_E_INVALID, "the name cannot bind");
    }
    VDI_ENSURE(c, vdi_cas(&ctl->dev[slot].client_owner, 0, c->owner),
               VD_E_PROTOCOL); /* another client object won the race */
    struct vdi_client_device *d = &c->dev[slot];
    d->opened = 1;
    d->closed_seen = 0;
    c->state = C_ACTIVE;
    *out = d;
    return leave(c, NOERROR);
}

/* Copy the entry at tail out of the ring: 1, 0 when the ring is empty, or -1 when the
 * head the server published is out of the ring. */
static VDI_MUST_USE int read_entry(vdi_dev_shm *ds, uint32_t head, uint32_t tail,
                                   vdi_cmd_shm *out) {
    if (head == tail)
        return 0;
    if (head - tail > VDI_RING)
        return -1;
    vdi_cmd_shm e = ds->cmd[tail % VDI_RING];
    *out = e;
    return 1;
}

/* What take_command found in the ring. */
enum vdi_take { TAKE_FORGED = -1, TAKE_NONE = 0, TAKE_ONE = 1 };

/* The server wrote nonsense: the set is aborted, saying why. */
#define FORGED(c, why) (abort_because(c, why), TAKE_FORGED)

/* Take the next command out of the ring into a private view. */
static VDI_MUST_USE enum vdi_take take_command(vdi_client_set *c, struct vdi_client_device *d,
                                               VDC_Command **out) {
    vdi_dev_shm *ds = &c->map.ctl->dev[d->slot];
    uint32_t tail = vdi_load_relaxed(&ds->cmd_tail);
    uint32_t head = vdi_load_acquire(&ds->cmd_head); /* pairs with send_command */
    vdi_cmd_shm e;
    int got = read_entry(ds, head, tail, &e);
    if (got == 0)
        return TAKE_NONE;
    if (got < 0)
        return FORGED(c, "cmd ring head out of range");
    uint32_t k = e.tag & 0xffu;
    if (k >= VDI_RING || d->delivered[k] || e.code < VDC_Read || e.code > VDC_Complete)
        return FORGED(c, k >= VDI_RING || d->delivered[k] ? "cmd tag names a bad or held slot"
                                                          : "cmd code unknown");
    if (vdi_data_command(e.code) &&
        (e.size < 1 || (uint32_t)e.size > c->max_transfer || e.buf_off == VDI_NO_BUFFER))
        return FORGED(c, "cmd entry size out of range, or a data command without a buffer");
    uint8_t *buf = NULL;
    if (e.buf_off != VDI_NO_BUFFER) {
        uint64_t len = vdi_data_command(e.code) ? (uint64_t)e.size : 1;
        const char *why;
        if (e.buf_off >= VDI_MAX_AREA || e.buf_off + len > VDI_MAX_AREA)
            return FORGED(c, "cmd buffer offset out of range");
        if (e.buf_off + len > c->map.mapped && follow_area(c, &why) != NOERROR)
            return FORGED(c, why);
        if (e.buf_off + len > c->map.mapped)
            return FORGED(c, "cmd buffer beyond the area");
        buf = c->map.area + e.buf_off;
    }
    VDC_Command *v = &d->view[k];
    v->commandCode = e.code;
    v->size = e.size;
    v->position = (int64_t)e.position;
    v->buffer = buf;
    d->tag[k] = e.tag;
    d->delivered[k] = 1;
    VDI_SCHED("client/get_command:before-consume");
    /* no reader in ref/ (sends are bounded by outstanding): a peer's view */
    vdi_store_release(&ds->cmd_tail, tail + 1);
    *out = v;
    return TAKE_ONE;
}

int vdi_client_device_get_command(vdi_client_device *d, long timeout_ms, VDC_Command **cmd) {
    if (cmd)
        *cmd = NULL;
    if (!d || !cmd)
        return VD_E_INVALID;
    vdi_client_set *c = d->set;
    VDI_ENTER_AT_POINT(c, "client/get_command:enter");
    VDI_ENSURE(c, !aborted(c), VD_E_ABORT);
    VDI_ENSURE(c, d->opened && c->state == C_ACTIVE, VD_E_PROTOCOL);
    VDI_ENSURE(c, !d->getting, VD_E_PROTOCOL);
    d->getting = 1;
    uint64_t deadline = deadline_of(timeout_ms);
    int rc;
    for (;;) {
        vdi_dev_shm *ds = &c->map.ctl->dev[d->slot];
        /* The sequence is read before any check of what it guards: an abort published
         * between the check and the wait would otherwise be slept through. */
        /* pairs with the server's bumps of cmd_seq */
        uint32_t seen = vdi_load_acquire(&ds->cmd_seq);
        if (aborted(c)) {
            rc = VD_E_ABORT;
            break;
        }
        if (d->closed_seen) {
            rc = VD_E_CLOSE;
            break;
        }
        /* pairs with the server's close_device */
        uint32_t closed = vdi_load_acquire(&ds->server_closed);
        enum vdi_take t = take_command(c, d, cmd);
        if (t == TAKE_FORGED) {
            rc = vdi_gate_note(&c->g, VD_E_ABORT, __FILE__, __LINE__, c->g.aborted.why);
            break;
        }
        if (t == TAKE_ONE) {
            rc = NOERROR;
            break;
        }
        if (closed) {
            d->closed_seen = 1;
            rc = VD_E_CLOSE;
            break;
        }
        long left = left_until(deadline);
        if (left == 0) {
            rc = VD_E_TIMEOUT;
            break;
        }
        learn_server(c);
        VDI_SCHED("client/get_command:before-wait");
        wait_on(c, &ds->cmd_seq, seen, left);
    }
    d->getting = 0;
    VDI_SCHED("client/get_command:exit");
    return leave(c, rc);
}

int vdi_client_device_complete_command(vdi_client_device *d, VDC_Command *cmd,
                                       uint32_t completion_code, uint32_t bytes_transferred,
                                       uint64_t position) {
    if (!d || !cmd)
        return VD_E_INVALID;
    vdi_client_set *c = d->set;
    VDI_ENTER_AT_POINT(c, "client/complete_command:enter");
    VDI_ENSURE(c, !aborted(c), VD_E_ABORT);
    VDI_ENSURE(c, d->opened && c->state == C_ACTIVE, VD_E_INVALID);
    /* Identified by its address alone; the fields of *cmd are never read. */
    uintptr_t p = (uintptr_t)cmd, base = (uintptr_t)d->view;
    VDI_ENSURE(c, p >= base && p < base + sizeof d->view && (p - base) % sizeof d->view[0] == 0,
               VD_E_INVALID);
    uint32_t k = (uint32_t)((p - base) / sizeof d->view[0]);
    VDI_ENSURE(c, d->delivered[k], VD_E_INVALID);
    VDI_ENSURE(c,
               !(vdi_data_command(d->view[k].commandCode) &&
                 bytes_transferred > (uint32_t)d->view[k].size),
               VD_E_INVALID);
    vdi_dev_shm *ds = &c->map.ctl->dev[d->slot];
    uint32_t head = vdi_load_relaxed(&ds->cpl_head);
    /* pairs with the agent's store of cpl_tail */
    if (head - vdi_load_acquire(&ds->cpl_tail) >= VDI_RING) { /* impossible unless corrupt */
        abort_because(c, "cpl ring full: its tail is out of range");
        VDI_BAIL(c, VD_E_ABORT, "cpl ring full");
    }
    vdi_cpl_shm *e = &ds->cpl[head % VDI_RING];
    e->tag = d->tag[k];
    e->code = completion_code;
    e->bytes = bytes_transferred;
    e->position = position;
    d->delivered[k] = 0;
    VDI_SCHED("client/complete_command:before-publish");
    vdi_store_release(&ds->cpl_head, head + 1); /* pairs with the agent's take */
    bump(&c->map.ctl->agent_seq);
    VDI_SCHED("client/complete_command:exit");
    return leave(c, NOERROR);
}

/* ---- secondaries and buffer handles
 * ------------------------------------------------------------ */

int vdi_client_set_open_in_secondary_ex(vdi_client_set *c, const char *instance, const char *name) {
    int rc;
    char shm_name[256];
    if (!c || !name)
        return VD_E_INVALID;
    VDI_ENTER_OR_ABORT(c);
    VDI_ENSURE(c, c->state == C_DNE && !c->g.closing, VD_E_PROTOCOL);
    VDI_GUARD(c, vdi_check_instance(instance));
    VDI_GUARD(c, vdi_check_name(name));
    VDI_GUARD(c, vdi_shm_name(shm_name, sizeof shm_name, instance, name));
    rc = vdi_map_open(&c->map, shm_name);
    if (rc == VD_E_INVALID)
        rc = VD_E_PROTOCOL;
    if (rc != NOERROR)
        VDI_BAIL(c, rc, "no live set of that name (vdi_map_open)");
    vdi_ctl_shm *ctl = c->map.ctl;
    rc = NOERROR;
    const char *why = NULL;
    if (vdi_load_acquire(&ctl->aborted)) /* pairs with either side's abort */
        rc = VD_E_ABORT, why = "the set is aborted";
    /* pairs with the primary's open and close */
    else if (!vdi_load_acquire(&ctl->primary_ready) || vdi_load_acquire(&ctl->client_closed))
        rc = VD_E_PROTOCOL, why = "the primary is not configured yet, or closed";
    else if (ctl->cfg.deviceCount == 0 || ctl->cfg.deviceCount > VDI_MAX_DEVICES)
        rc = VD_E_ABORT, why = "device count out of range";
    else
        rc = follow_area(c, &why);
    if (rc != NOERROR) {
        vdi_map_release(&c->map);
        VDI_BAIL(c, rc, why);
    }
    c->cfg = ctl->cfg;
    c->cfg.blockSize = c->cfg.maxIODepth = c->cfg.maxTransferSize = c->cfg.bufferAreaSize = 0;
    c->max_transfer = vdi_load_relaxed(&ctl->cfg.maxTransferSize); /* configured already */
    c->owner = vdi_fetch_add(&ctl->next_owner, 1) + 1;
    memcpy(c->name, name, strlen(name) + 1);
    memcpy(c->shm_name, shm_name, sizeof shm_name);
    memset(c->dev, 0, sizeof c->dev);
    for (int i = 0; i < VDI_MAX_DEVICES; i++) {
        c->dev[i].set = c;
        c->dev[i].slot = i;
    }
    c->secondary = 1;
    c->aborted = 0;
    vdi_gate_clear_abort(&c->g);
    c->server_known = 0;
    c->claim = 0;
    learn_server(c);
    c->state = C_INITIALIZING;
    return leave(c, NOERROR);
}

int vdi_client_set_open_in_secondary(vdi_client_set *c, const char *name) {
    return vdi_client_set_open_in_secondary_ex(c, NULL, name);
}

int vdi_client_set_get_buffer_handle(vdi_client_set *c, uint8_t *buffer, uint32_t *handle) {
    if (handle)
        *handle = 0;
    if (!c || !buffer || !handle)
        return VD_E_INVALID;
    VDI_ENTER_OR_ABORT(c);
    VDI_ENSURE(c, c->state >= C_INITIALIZING && !c->g.closing, VD_E_PROTOCOL);
    /* A buffer in a part of the area the server grew since this side last looked: follow
     * the area first (found by fuzz_api: after an abort nothing else had followed it). */
    const char *why;
    if (buffer >= c->map.area + c->map.mapped && buffer < c->map.area + VDI_MAX_AREA)
        (void)follow_area(c, &why); /* the check below answers */
    VDI_ENSURE(c, buffer >= c->map.area && buffer < c->map.area + c->map.mapped, VD_E_INVALID);
    uint64_t off = (uint64_t)(buffer - c->map.area) + 1;
    for (uint32_t i = 0; i < VDI_MAX_BUFFERS; i++) {
        vdi_buf_shm *e = &c->map.ctl->buf[i];
        if (vdi_load64_relaxed(&e->off) != off)
            continue;
        /* The generation of the buffer still there after it was read (else the slot
         * changed hands meanwhile, and the buffer asked for was freed). */
        vdi_fence();
        uint32_t gen = vdi_load_relaxed(&e->gen);
        vdi_fence();
        if (gen == 0 || gen > VDI_HANDLE_GEN_MAX || vdi_load64_relaxed(&e->off) != off)
            break;
        *handle = gen << VDI_HANDLE_SLOT_BITS | i;
        return leave(c, NOERROR);
    }
    VDI_BAIL(c, VD_E_INVALID, "no live buffer there");
}

int vdi_client_set_map_buffer_handle(vdi_client_set *c, uint32_t handle, uint8_t **buffer) {
    if (buffer)
        *buffer = NULL;
    if (!c || !buffer)
        return VD_E_INVALID;
    VDI_ENTER_OR_ABORT(c);
    VDI_ENSURE(c, c->state >= C_INITIALIZING && !c->g.closing, VD_E_PROTOCOL);
    uint32_t gen = handle >> VDI_HANDLE_SLOT_BITS;
    vdi_buf_shm *e = &c->map.ctl->buf[handle & (VDI_MAX_BUFFERS - 1)];
    VDI_ENSURE(c, gen != 0, VD_E_INVALID);
    /* The offset, then the generation: a slot that took a new buffer since the handle was
     * made shows a new generation (the server writes it before the offset). */
    uint64_t off = vdi_load64_relaxed(&e->off);
    vdi_fence();
    VDI_ENSURE(c, off != 0 && off <= VDI_MAX_AREA && vdi_load_relaxed(&e->gen) == gen,
               VD_E_INVALID);
    const char *why;
    if (off - 1 >= c->map.mapped && follow_area(c, &why) != NOERROR)
        VDI_BAIL(c, VD_E_INVALID, why);
    VDI_ENSURE(c, off - 1 < c->map.mapped, VD_E_INVALID);
    *buffer = c->map.area + off - 1;
    return leave(c, NOERROR);
}

/* ---- abort and close
 * ---------------------------------------------------------------------------
 */

int vdi_client_set_signal_abort(vdi_client_set *c) {
    if (!c)
        return VD_E_INVALID;
    VDI_SCHED("client/signal_abort:enter");
    (void)enter(c);
    VDI_ENSURE(c, c->state != C_DNE, VD_E_PROTOCOL);
    if (!normal(c))
        abort_because(c, "signal_abort");
    return leave(c, NOERROR);
}

int vdi_client_set_close(vdi_client_set *c) {
    if (!c)
        return VD_E_INVALID;
    VDI_SCHED("client/close:enter");
    (void)enter(c);
    VDI_ENSURE(c, c->state != C_DNE && !c->g.closing, VD_E_PROTOCOL);
    observe(c);
    vdi_ctl_shm *ctl = c->map.ctl;
    int is_normal = normal(c), unfinished = 0;
    for (uint32_t i = 0; i < ndev(c); i++) {
        struct vdi_client_device *d = &c->dev[i];
        if (!d->opened)
            continue;
        unfinished |= !d->closed_seen;
        for (uint32_t k = 0; k < VDI_RING; k++)
            unfinished |= d->delivered[k];
    }
    int rc = (!is_normal && !c->aborted && unfinished) ? VD_E_OPEN : NOERROR;
    if (!c->secondary)
        /* pairs with the server's loads of client_closed */
        vdi_store_release(&ctl->client_closed, 1);
    if (!is_normal && !c->aborted && (!c->secondary || rc == VD_E_OPEN))
        abort_because(c, "close before the end (VDI-SPEC 5.2)");
    vdi_gate_mark_closing(&c->g);
    vdi_gate_begin_close(&c->g);
    bump_all(c); /* wake this object's waiters (and, harmlessly, the server's) */
    VDI_SCHED("client/close:before-wait");
    vdi_gate_wait_alone(&c->g);
    for (uint32_t i = 0; i < ndev(c); i++) /* close frees everything: holds too (5.2) */
        if (c->dev[i].opened)
            vdi_cas(&ctl->dev[i].client_owner, c->owner, 0);
    VDI_SCHED("client/close:before-unmap");
    vdi_map_release(&c->map);
    if (!c->secondary)
        vdi_shm_unlink(c->shm_name); /* the creator's close unlinks the name (VDI-SPEC 8.4) */
    c->state = C_DNE;
    vdi_gate_closed(&c->g);
    c->aborted = 0;
    c->server_known = 0;
    c->claim = 0;
    c->max_transfer = 0;
    /* Not set or slot: a device call that overlaps this close reads them before it takes
     * the lock (and then answers VD_E_ABORT); they never change over the object's life. */
    for (int i = 0; i < VDI_MAX_DEVICES; i++)
        memset(&c->dev[i].opened, 0, sizeof c->dev[i] - offsetof(struct vdi_client_device, opened));
    VDI_SCHED("client/close:exit");
    vdi_gate_end_close(&c->g);
    return rc;
}

void vdi_client_set_free(vdi_client_set *c) {
    if (!c)
        return;
    if (c->state != C_DNE)
        (void)vdi_client_set_close(c);
    vdi_free(c);
}

int vdi_seam_client_error_site(vdi_client_set *c, vdi_error_site *failed, vdi_error_site *aborted) {
    return c ? vdi_gate_sites(&c->g, failed, aborted) : -1;
}
