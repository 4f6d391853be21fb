/* vdi_agent.c: the server's completion agent (execute_completion_agent), the one place
 * where completions reach the server. Its loop is five steps: take what the client
 * completed into a private FIFO, deliver it (the routine runs with the lock released),
 * drain from private memory once the set is aborted or closed (one 995 per outstanding
 * command), fire the watchdog, and wait for news. */
#include "vdi_internal.h"

/* Take: move every published completion into the private FIFO. A value that does not
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
            abort_because(s, "cpl ring head out of range");
            return;
        }
        VDI_SCHED("server/agent:take");
        for (; tail != head; tail++) {
            vdi_cpl_shm e = ds->cpl[tail % VDI_RING];
            uint32_t k = e.tag & 0xffu;
            const char *bad = NULL;
            if (k >= VDI_RING || d->s[k].state != SLOT_SENT || d->s[k].gen != e.tag >> 8)
                bad = "cpl tag names no outstanding command";
            else if (vdi_data_command(d->s[k].cmd->commandCode) &&
                     e.bytes > (uint32_t)d->s[k].cmd->size)
                bad = "cpl entry size out of range";
            else if (s->taken_n >= VDI_RING * VDI_MAX_DEVICES)
                bad = "cpl entries beyond the taken FIFO";
            if (bad) {
                abort_because(s, bad);
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
        /* pairs with complete_command's check of ring space */
        vdi_store_release(&ds->cpl_tail, tail);
    }
}

/* Deliver: write the results into the command and run its routine with the lock released;
 * a counted agent steps out of the gate meanwhile, so a close from the routine does not
 * wait for it. */
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
    vdi_srv_update_normal(s);
    s->callback_self = s->agent_self;
    if (counted)
        vdi_gate_step_out(&s->g);
    vdi_unlock(&s->g.mu);
    VDI_SCHED("server/agent:callback-enter");
    cmd->completionRoutine(cmd);
    VDI_SCHED("server/agent:callback-exit");
    vdi_lock(&s->g.mu);
    s->callback_self = 0;
}

/* The oldest completion taken, first in first out. */
static void deliver_taken(vdi_server_set *s, int counted) {
    vdi_taken t = s->taken[s->taken_head];
    s->taken_head = (s->taken_head + 1) % (VDI_RING * VDI_MAX_DEVICES);
    s->taken_n--;
    deliver(s, t.dev, t.slot, t.code, t.bytes, &t.position, counted);
}

/* Drain: one 995 for the next outstanding command, per device in send order, from private
 * memory only. 0 when none is left. */
static int drain_one(vdi_server_set *s) {
    int dev = -1, k = -1;
    for (uint32_t i = 0; i < VDI_MAX_DEVICES && dev < 0; i++) /* per device, send order */
        for (uint32_t j = 0; s->dev[i].outstanding && j < VDI_RING; j++)
            if (s->dev[i].s[j].state == SLOT_SENT &&
                (k < 0 || s->dev[i].s[j].seq < s->dev[i].s[k].seq)) {
                dev = (int)i;
                k = (int)j;
            }
    if (dev < 0)
        return 0;
    deliver(s, dev, k, ERROR_OPERATION_ABORTED, 0, NULL, 0);
    return 1;
}

/* Watchdog (VDI-SPEC 4): with commands outstanding, no completion taken for twice the
 * client's serverTimeOut aborts the set. 1 when it fired; else 0 and how long the agent
 * may sleep (-1: no deadline). */
static int watchdog(vdi_server_set *s, long *wait_ms) {
    *wait_ms = -1;
    uint32_t t = s->map.ctl->cfg.serverTimeOut;
    if (!t || !s->outstanding)
        return 0;
    uint64_t deadline = s->wd_start + 2 * (uint64_t)t, now = vdi_now();
    if (now >= deadline) {
        abort_because(s, "watchdog: no completion for twice serverTimeOut");
        return 1;
    }
    *wait_ms = (long)(deadline - now);
    return 0;
}

/* Wait: sleep until the client completes, aborts or dies, or the watchdog's deadline. */
static void wait_for_news(vdi_server_set *s, long wait_ms) {
    uint32_t *word = &s->map.ctl->agent_seq;
    /* Read the sequence first, then look at the shared state it guards: an abort or
     * completion published after this read changes the word, so the wait returns at once
     * (found by the chaos engine: a lost wake-up on abort). */
    uint32_t seen = vdi_load_acquire(word); /* pairs with each bump of agent_seq (a full barrier) */
    vdi_srv_observe(s);
    take_completions(s);
    if (s->taken_n || s->aborted || s->normal)
        return;
    s->agent_seen = seen; /* a local wake makes the word differ from it */
    vdi_unlock(&s->g.mu);
    VDI_SCHED("server/agent:before-wait");
    int w = vdi_wait_live(word, seen, wait_ms, &s->client);
    vdi_lock(&s->g.mu);
    if (w == VDI_PEER_DEAD && !s->aborted && !s->g.closing &&
        !vdi_load_acquire(&s->map.ctl->client_closed)) /* pairs with the client's close */
        abort_because(s, "the primary client died while the agent waited");
}

int vdi_server_set_execute_completion_agent(vdi_server_set *s) {
    if (!s)
        return VD_E_INVALID;
    /* pairs with the bumps of vdi_gate_begin_close and _end_close */
    uint32_t epoch = vdi_load_entry(&s->g.close_epoch);
    VDI_SCHED("server/agent:enter");
    vdi_lock(&s->g.mu);
    if (s->agent)
        VDI_BAIL_UNCOUNTED(s, VD_E_PROTOCOL, "an agent runs already");
    if (vdi_gate_overlapped(&s->g, epoch))
        VDI_BAIL_UNCOUNTED(s, VD_E_ABORT, "the call overlapped a close");
    vdi_srv_observe(s);
    if (!s->aborted && !s->g.closing) {
        if (s->state < S_INITIALIZING)
            VDI_BAIL_UNCOUNTED(s, VD_E_PROTOCOL, "the set is not open, or not configured");
        if (s->normal) {
            vdi_unlock(&s->g.mu);
            return NOERROR;
        }
        s->state = S_ACTIVE;
    } else if (s->state == S_DNE && !s->g.closing) {
        VDI_BAIL_UNCOUNTED(s, VD_E_PROTOCOL, "the set is not open");
    }
    if (!s->taken) {
        s->taken = VDI_ALLOC("server/agent:alloc", VDI_RING * VDI_MAX_DEVICES * sizeof *s->taken);
        if (!s->taken)
            VDI_BAIL_UNCOUNTED(s, VD_E_MEMORY, "server/agent:alloc");
    }
    s->agent = 1;
    s->agent_self = vdi_self();
    int normal_before = s->normal; /* NT, then an abort, before this agent started */
    int counted = 1;               /* this thread counts as inside the set until it drains */
    vdi_gate_step_in(&s->g);
    int rc = NOERROR;
    for (;;) {
        vdi_gate_check(&s->g); /* after each step: take, deliver, drain, watchdog, wait */
        if (counted && !s->draining)
            vdi_srv_observe(s);
        if (counted && (s->aborted || s->g.closing)) {
            counted = 0; /* from here on, nothing but private memory */
            s->draining = 1;
            vdi_gate_count_out(&s->g);
            vdi_gate_wake(&s->g);
        }
        if (counted)
            take_completions(s);
        long wait_ms;
        if (s->taken_n) {
            deliver_taken(s, counted);
            /* Back from the routine: count as inside again, unless an abort or a close
             * came meanwhile, in which case the rest is a drain from private memory. */
            if (counted && (s->aborted || s->g.closing)) {
                counted = 0;
                s->draining = 1;
                vdi_gate_wake(&s->g);
            } else if (counted) {
                vdi_gate_step_in(&s->g);
            }
        } else if (!counted) {
            if (!drain_one(s)) {
                /* NT reached while this agent ran (update_normal looked for an abort as it
                 * was reached) is the agent's end, at that moment: an abort or a close
                 * since, even one nested in the routine of the command that ended the set,
                 * does not make it an abort (VDI-SPEC 4). An agent started after NT and an
                 * abort starts in Abort. */
                rc = s->normal && !normal_before ? NOERROR : VD_E_ABORT;
                break;
            }
        } else if (s->normal) {
            break;
        } else if (!watchdog(s, &wait_ms)) {
            wait_for_news(s, wait_ms);
        }
    }
    if (counted)
        vdi_gate_count_out(&s->g);
    s->agent = 0;
    s->agent_self = 0;
    s->draining = 0;
    if (s->g.closing && s->state == S_DNE) { /* a nested close left the rest to the agent */
        vdi_srv_reset(s);
        vdi_gate_closed(&s->g);
    }
    vdi_gate_wake(&s->g);
    vdi_gate_check(&s->g);
    vdi_unlock(&s->g.mu);
    return rc;
}
