/* Invariants of a set object's private state, checked under its lock: what every call,
 * and every step of the completion agent, must leave true. A broken one is a bug of this
 * library (a hostile peer can only reach shared memory, which none of these reads). Debug
 * builds check them as each call leaves the gate and at each turn of the agent's loop
 * (vdi_gate_check); fuzz_peer and the tests ask directly (vdi_seam_*_validate). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "vdi_internal.h"

#define TAKEN_CAP (VDI_RING * VDI_MAX_DEVICES)

const char *vdi_srv_validate(const vdi_server_set *s) {
    if (s->state < S_DNE || s->state > S_ACTIVE)
        return "server state out of range";
    if (s->ndev > VDI_MAX_DEVICES)
        return "more devices than a set has";
    /* the buffers: sorted by area offset, apart, inside the area */
    if (s->nbufs > s->capbufs || (s->nbufs && !s->bufs))
        return "buffer table count beyond its capacity";
    for (uint32_t i = 0; i < s->nbufs; i++) {
        const vdi_buffer *b = &s->bufs[i];
        if (b->zone > b->data || b->data > b->end || b->end - b->data < b->size)
            return "buffer zone, data and end out of order";
        if (s->area_size && b->end > s->area_size)
            return "buffer beyond the area";
        if (i + 1 < s->nbufs && b->end > s->bufs[i + 1].zone)
            return "buffers unsorted or overlapping";
    }
    /* the commands: outstanding counts match the slots, the taken FIFO names taken slots */
    uint32_t outstanding = 0, taken = 0;
    for (uint32_t i = 0; i < VDI_MAX_DEVICES; i++) {
        const struct vdi_server_device *d = &s->dev[i];
        if (i >= s->ndev) { /* no command is ever sent on a device the set does not have */
            if (d->outstanding)
                return "outstanding commands on a device beyond the set's";
            continue;
        }
        uint32_t held = 0;
        for (uint32_t k = 0; k < VDI_RING; k++) {
            if (d->s[k].state > SLOT_TAKEN)
                return "command slot state out of range";
            if (d->s[k].state == SLOT_FREE)
                continue;
            if (!d->s[k].cmd)
                return "outstanding command slot without its command";
            held++;
            taken += d->s[k].state == SLOT_TAKEN;
        }
        if (held != d->outstanding)
            return "device outstanding count differs from its slots";
        outstanding += held;
    }
    if (outstanding != s->outstanding)
        return "set outstanding count differs from its devices'";
    if (s->taken_n > TAKEN_CAP || s->taken_head >= TAKEN_CAP || (s->taken_n && !s->taken))
        return "taken FIFO head or count out of range";
    if (taken != s->taken_n)
        return "taken FIFO count differs from the taken slots";
    for (uint32_t i = 0; i < s->taken_n; i++) {
        const vdi_taken *t = &s->taken[(s->taken_head + i) % TAKEN_CAP];
        if (t->dev < 0 || t->dev >= (int)VDI_MAX_DEVICES || t->slot < 0 ||
            t->slot >= (int)VDI_RING || s->dev[t->dev].s[t->slot].state != SLOT_TAKEN)
            return "taken FIFO entry names no taken slot";
        for (uint32_t j = 0; j < i; j++) {
            const vdi_taken *u = &s->taken[(s->taken_head + j) % TAKEN_CAP];
            if (u->dev == t->dev && u->slot == t->slot)
                return "taken FIFO names one slot twice";
        }
    }
    if (s->draining && !s->agent)
        return "draining with no agent";
    return NULL;
}

const char *vdi_cli_validate(const vdi_client_set *c) {
    if (c->state < C_DNE || c->state > C_ACTIVE)
        return "client state out of range";
    uint32_t ndev = c->cfg.deviceCount < VDI_MAX_DEVICES ? c->cfg.deviceCount : VDI_MAX_DEVICES;
    for (uint32_t i = 0; i < ndev; i++) {
        const struct vdi_client_device *d = &c->dev[i];
        if (d->last >= VDI_RING)
            return "last view index out of range";
        if (d->getting > 1)
            return "two get_command calls on one device";
        for (uint32_t k = 0; k < VDI_RING; k++)
            if (d->delivered[k] > 1)
                return "delivered mark out of range";
        if (!d->opened) {
            for (uint32_t k = 0; k < VDI_RING; k++)
                if (d->delivered[k])
                    return "a command delivered on a device never opened";
        }
    }
    return NULL;
}

const char *vdi_srv_gate_validate(const vdi_gate *g) {
    return vdi_srv_validate(
        (const vdi_server_set *)((const char *)g - offsetof(vdi_server_set, g)));
}

const char *vdi_cli_gate_validate(const vdi_gate *g) {
    return vdi_cli_validate(
        (const vdi_client_set *)((const char *)g - offsetof(vdi_client_set, g)));
}

/* The seams' check: under the object's lock if it is free (vdi_gate_try_quiet). */
static const char *validate_unlocked(vdi_gate *g) {
    if (!vdi_gate_try_quiet(g))
        return NULL;
    const char *why = g->validate ? g->validate(g) : NULL;
    vdi_gate_release_quiet(g);
    return why;
}

const char *vdi_seam_server_validate(struct vdi_server_set *s) {
    return s ? validate_unlocked(&s->g) : NULL;
}

const char *vdi_seam_client_validate(struct vdi_client_set *c) {
    return c ? validate_unlocked(&c->g) : NULL;
}

static int checks_off; /* vdi_seam_debug_invariants(0): a harness isolating another oracle */

void vdi_seam_debug_invariants(int on) {
    vdi_set_flag_quiet(&checks_off, !on);
}

/* Debug builds: a broken invariant stops the process, saying which and where. */
void vdi_gate_check_at(const vdi_gate *g, const char *file, int line) {
    if (vdi_flag_quiet(&checks_off))
        return;
    const char *why = g->validate ? g->validate(g) : NULL;
    if (!why)
        return;
    fprintf(stderr, "vdi: invariant broken at %s:%d: %s\n", file, line, why);
    abort();
}
