/* fuzz_peer: a hostile peer writes arbitrary values into the shared region between the
 * steps of a VDI session, and the reference must abort cleanly: every call returns one of
 * the codes documented for it, every command sent gets exactly one callback, the agent
 * returns, nothing crashes, hangs, spins or touches memory outside the mappings
 * (VDI-SPEC 7). The session (client configuration wait, devices, Write/Read/Flush commands,
 * completions with success or error codes, the agent, a normal end) runs under the
 * controlled engine, every actor a fiber, the schedule read from the input. The hostile
 * writes come from the input too: at the n-th schedule point of the run, a field of the
 * control block, of a device's rings or of the buffer table is set, xored or bumped. The
 * input's mode byte picks whose fields the peer forges: the server's (the client is under
 * test), the client's (the server is under test), or both. A fourth mode (mode byte 0xc0 and
 * up) makes the peer the server of the command rings itself: the real server configures,
 * opens the devices and allocates the buffers, and from then on a forger actor writes every
 * command entry (tag, slot, code, size, position, buffer offset) and publishes the heads,
 * valid entries and forged ones as the input says, jumps a head, closes devices and takes
 * the completions; the client, which holds some of its commands before completing them,
 * must deliver each valid entry exactly as written and reject each invalid one with
 * VD_E_ABORT (VDI-SPEC 7), and never abort a ring with no forged entry. A stall the peer caused is
 * not a finding: a reaper actor aborts both sides when virtual time reaches its deadline, after
 * which every blocked call must return; a hang after that, or a spin (the step bound), is.
 *
 * Input: bytes 0-1 give the length S of the schedule (the last S bytes of the input); the
 * bytes between are the session (mode, devices, commands, outcomes) and then the hostile
 * writes (see decode()). Every byte string decodes. The layout of the shared region comes
 * from the reference's internal header, and the fields forged from its tables, one decision
 * a field (fuzz_peer_fields.h); the target reads no private state through it. */
#include <dirent.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../ref/src/vdi_internal.h"
#include "chaos/atomics.h"
#include "chaos/chaos.h"
#include "chaos/ledger.h"
#include "chaos/sanitizer.h"
#include "fuzz_check.h"
#include "fuzz_input.h"
#include "fuzz_peer_fields.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The peer's writes race with the reference by design (another process in real life):
 * TSan is told to look away from them, as from any write of a foreign process. */
#define FOREIGN_BEGIN() CHAOS_TSAN_IGNORE_BEGIN()
#define FOREIGN_END() CHAOS_TSAN_IGNORE_END()

/* Memory orders (chaos/atomics.h): the words one actor hands another (the futex words
 * stage, opened, server_ready, agent_done; the ring words the forger and the client's
 * device exchange) are release stores read by acquire loads, as a peer in another process
 * would publish them; a forged field is read and written relaxed (it orders nothing, the
 * peer only lies); live and cmd_seq are futex words (seq_cst); client_codes is a relaxed
 * flag set between the device actors of the engine's one thread. */

#define NDEV 2
#define NCMD 6
#define NWRITES 16
#define REAPER_MS 30000L

#define NENT 48 /* command entries the forger writes per device, at most */
#define NHOLD 8 /* commands a client device holds before it completes one */

enum { MODE_SERVER_LIES, MODE_CLIENT_LIES, MODE_BOTH_LIE, MODE_FORGED_RING };

/* ---- the fields a peer can forge -------------------------------------------------------- */

/* Every field of the layout that the peer forges, in the layout's order; which ones and why
 * not the others: fuzz_peer_fields.h. */
static const field fields[] = {
    PEER_FIELDS(VDI_CTL_SHM, VDI_DEV_SHM, VDI_CMD_SHM, VDI_CPL_SHM, VDI_BUF_SHM)};
#define NFIELDS (sizeof fields / sizeof fields[0])

typedef struct hostile {
    uint32_t at; /* the schedule point (counted from the start of the run) */
    const field *f;
    uint8_t dev, idx, op;
    uint64_t value;
} hostile;

/* ---- the session -------------------------------------------------------------------------- */

typedef struct cmd_rec {
    VDS_Command cmd;
    uint8_t *buf;
} cmd_rec;

/* MODE_FORGED_RING: one device's command ring as the forger wrote it, and the client's
 * side of it as its device actor saw it (every entry by its absolute index). */
typedef struct held_cmd {
    VDC_Command *view;
    uint32_t idx, tag;
} held_cmd;

typedef struct ring_shadow {
    vdi_cmd_shm e[NENT];           /* every entry written */
    uint32_t pub;                  /* entries published (the head as written, jumps aside) */
    uint32_t consumed;             /* completions taken (the forger's cpl_tail) */
    int jumped, closed;            /* a head forged out of the ring; server_closed set */
    uint8_t outstanding[VDI_RING]; /* slot published, its completion not taken yet */
    uint32_t gen[VDI_RING];
    /* the client's side */
    uint32_t delivered; /* get_command NOERROR */
    held_cmd held[NHOLD];
    int nheld;
    vdi_cpl_shm cpl[NENT]; /* what complete_command was given, in call order */
    uint32_t ncpl;
} ring_shadow;

typedef struct peer {
    chaos_engine *e;
    vdi_seams inner; /* the engine's hooks, which peer_* forward to */
    int mode;
    uint32_t ndev, ncmd, bufsize, timeout;
    int32_t code[NDEV][NCMD];
    uint8_t outcome[NDEV][NCMD];
    hostile w[NWRITES];
    int nw, next_w, cpl_forged;
    int forged_abort; /* the plan writes the shared aborted word (see reaper) */
    int strict;       /* unless FUZZ_PEER_LENIENT: the former findings are findings */
    int reaper_closed;
    uint32_t points; /* schedule points seen during the run */
    int running;
    int trace; /* FUZZ_PEER_TRACE set: print every hostile write */
    char name[64], devname[NDEV][80];
    vdi_client_set *client;
    vdi_server_set *server;
    vdi_client_device *cdev[NDEV];
    vdi_server_device *sdev[NDEV];
    cmd_rec cmds[NDEV][NCMD];
    chaos_ledger ledger; /* every send and callback, command d * NCMD + k */
    chaos_ledger_cmd ledger_cmd[NDEV * NCMD];
    uint32_t client_codes; /* bit i: a client code used (relaxed: several device actors) */
    int server_actor;
    /* where the client's view lies (from the map seam) */
    uint8_t *cctl, *carea;
    size_t cctl_len;
    uint64_t cmapped;
    uint32_t negotiated_transfer; /* maxTransferSize as the client's get_configuration said */
    /* futex words between actors */
    uint32_t stage;  /* 0, 1 configured (the agent may start), 9 the server gave up */
    uint32_t opened; /* 0, 1 the client opened its devices, 9 it could not */
    uint32_t agent_done, live;
    int agent_rc, agent_ran;
    /* MODE_FORGED_RING */
    fuzz_input plan;       /* the forger's actions, read as it goes */
    uint32_t server_ready; /* 1 the server opened its devices and buffers, 9 it could not */
    int bad_published;     /* an entry was forged or a head jumped: an abort is allowed */
    int reaper_fired;
    ring_shadow ring[NDEV];
} peer;

static peer *g_peer; /* the hooks' way back to the input being run (NULL between inputs) */

/* One line, and the process ends (fuzz_check.h: an oracle of the engine that reported
 * first is the finding). */
__attribute__((format(printf, 1, 2), noreturn)) static void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fuzz_vfail("fuzz_peer", g_peer ? g_peer->e : NULL, fmt, ap);
}

/* A return code the contract documents for this call. */
static void allowed(int rc, const char *call, int n, ...) {
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        if (va_arg(ap, int) == rc) {
            va_end(ap);
            return;
        }
    va_end(ap);
    fail("%s returned %s, not a code documented for it here", call, vdi_strerror(rc));
}

/* ---- the hostile writes, at schedule points ---------------------------------------------- */

static uint8_t *field_addr(peer *p, const hostile *h) {
    vdi_ctl_shm *ctl = (vdi_ctl_shm *)p->cctl;
    vdi_dev_shm *d = &ctl->dev[h->dev % VDI_MAX_DEVICES];
    switch (h->f->where) {
    case W_CTL:
        return (uint8_t *)ctl + h->f->off;
    case W_DEV:
        return (uint8_t *)d + h->f->off;
    case W_CMD:
        return (uint8_t *)&d->cmd[h->idx % VDI_RING] + h->f->off;
    case W_CPL:
        return (uint8_t *)&d->cpl[h->idx % VDI_RING] + h->f->off;
    default:
        return (uint8_t *)&ctl->buf[h->idx] + h->f->off;
    }
}

static void forge(peer *p, const hostile *h) {
    uint8_t *a = field_addr(p, h);
    FOREIGN_BEGIN();
    uint64_t v = 0;
    if (h->f->size == 1)
        v = CHAOS_LOAD_RELAXED(a);
    else if (h->f->size == 4)
        v = CHAOS_LOAD_RELAXED((uint32_t *)a);
    else
        v = CHAOS_LOAD_RELAXED((uint64_t *)a);
    switch (h->op) {
    case 0:
        v = h->value;
        break;
    case 1:
        v += h->value; /* a bump: small, or (as a two's complement) a step back */
        break;
    default:
        v ^= h->value;
        break;
    }
    if (h->f->size == 1)
        CHAOS_STORE_RELAXED(a, (uint8_t)v);
    else if (h->f->size == 4)
        CHAOS_STORE_RELAXED((uint32_t *)a, (uint32_t)v);
    else
        CHAOS_STORE_RELAXED((uint64_t *)a, v);
    FOREIGN_END();
    if (p->trace)
        fprintf(stderr,
                "fuzz_peer: point %u: %s (device %u, entry %u) op %u value %#llx -> %#llx\n",
                p->points, h->f->name, h->dev % VDI_MAX_DEVICES, h->idx, h->op,
                (unsigned long long)h->value, (unsigned long long)v);
    if (h->f->where == W_CPL)
        p->cpl_forged = 1;
}

static void peer_sched(void *ctx, const char *name) {
    peer *p = g_peer;
    int running = 0;
    FOREIGN_BEGIN(); /* the peer's bookkeeping, like its writes, is not the reference's */
    if (p && p->running) {
        running = 1;
        p->points++;
        while (p->next_w < p->nw && p->w[p->next_w].at <= p->points)
            forge(p, &p->w[p->next_w++]);
    }
    FOREIGN_END();
    /* After every step the sets' private state still holds (a set whose lock its actor
     * holds is looked at by a later point): a forged word must never reach it. */
    if (running) {
        const char *why = vdi_seam_server_validate(p->server);
        const char *side = "server";
        if (!why) {
            why = vdi_seam_client_validate(p->client);
            side = "client";
        }
        if (why)
            fail("invariant broken at point %s: the %s set: %s", name, side, why);
    }
    if (p && p->inner.sched_point)
        p->inner.sched_point(ctx, name);
}

static void *peer_map(void *ctx, void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    peer *p = g_peer;
    void *r = p->inner.map(ctx, addr, len, prot, flags, fd, off);
    if (r == MAP_FAILED || !(flags & MAP_SHARED) || fd < 0)
        return r;
    uint8_t *u = r;
    if (off == 0 && !p->cctl) { /* the first view mapped is the client's (create) */
        p->cctl = u;
        p->cctl_len = len;
        p->carea = u + len;
    } else if (p->carea && u >= p->carea && u < p->carea + VDI_MAX_AREA) {
        uint64_t end = (uint64_t)(u - p->carea) + len;
        if (end > p->cmapped)
            p->cmapped = end;
    }
    return r;
}

/* ---- decoding ------------------------------------------------------------------------------ */

static uint64_t pick_value(fuzz_input *in, const field *f, uint8_t op) {
    static const uint64_t magic[] = {0,
                                     1,
                                     2,
                                     3,
                                     64,
                                     65,
                                     0xffffffffu,
                                     0x80000000u,
                                     65536,
                                     VDI_MAX_AREA,
                                     VDI_MAX_AREA - 65536u,
                                     0x7fffffff,
                                     4096,
                                     19,
                                     20,
                                     UINT64_MAX};
    if (op == 1) { /* a bump by -4..+4 or by a ring's length */
        static const int64_t steps[] = {1, 1, -1, 2, 64, -64, 4, -4, 65};
        return (uint64_t)FUZZ_PICK(in, steps);
    }
    if (op == 2)
        return 1ull << (fuzz_u8(in) % (f->size * 8u));
    uint32_t sel = fuzz_choice(in, 17);
    if (sel < 16)
        return magic[sel];
    return fuzz_u32(in);
}

static void decode(peer *p, fuzz_input *in) {
    static const uint32_t bufsizes[] = {4096, 65536, 5000};
    static const uint32_t timeouts[] = {0, 0, 0, 100};
    static const int32_t codes[] = {VDC_Write,      VDC_Write,     VDC_Read,       VDC_Flush,
                                    VDC_ClearError, VDC_WriteMark, VDC_GetPosition};
    uint8_t mode = fuzz_u8(in); /* below 0xc0: mode % 3, as before the fourth mode */
    p->mode = mode >= 0xc0 ? MODE_FORGED_RING : mode % 3;
    p->ndev = 1 + fuzz_u8(in) % NDEV;
    p->ncmd = 1 + fuzz_u8(in) % NCMD;
    p->bufsize = FUZZ_PICK(in, bufsizes);
    p->timeout = FUZZ_PICK(in, timeouts);
    for (uint32_t d = 0; d < p->ndev; d++)
        for (uint32_t k = 0; k < p->ncmd; k++) {
            p->code[d][k] = FUZZ_PICK(in, codes);
            p->outcome[d][k] = fuzz_u8(in);
        }
    if (p->mode == MODE_FORGED_RING) { /* the rest is the forger's plan */
        fuzz_input_init(&p->plan, in->data + in->pos, in->size - in->pos);
        return;
    }
    /* the fields the mode lets the peer forge */
    const field *pool[NFIELDS];
    uint32_t npool = 0;
    int mask = p->mode == MODE_SERVER_LIES   ? BY_SERVER
               : p->mode == MODE_CLIENT_LIES ? BY_CLIENT
                                             : BY_EITHER;
    for (size_t i = 0; i < NFIELDS; i++)
        if (fields[i].writer & mask)
            pool[npool++] = &fields[i];
    uint32_t at = 0;
    while (p->nw < NWRITES && !fuzz_exhausted(in)) {
        hostile *h = &p->w[p->nw++];
        at += fuzz_u8(in);
        h->at = at;
        h->f = pool[fuzz_choice(in, npool)];
        h->dev = fuzz_u8(in);
        h->idx = fuzz_u8(in);
        h->op = (uint8_t)fuzz_choice(in, 3);
        h->value = pick_value(in, h->f, h->op);
        /* the abort word, or a sequence word the peer may roll back under a waiter */
        p->forged_abort |= h->f->waited;
    }
}

/* ---- actors -------------------------------------------------------------------------------- */

static void done(peer *p) {
    CHAOS_SUB_SEQ(&p->live, 1u);
    chaos_wake(p->e, &p->live);
}

static void wait_word(peer *p, uint32_t *word) {
    while (CHAOS_LOAD_ACQUIRE(word) == 0)
        chaos_wait(p->e, word, 0u, -1);
}

static void routine(VDS_Command *cmd) {
    cmd_rec *r = cmd->completionContext;
    peer *p = g_peer;
    /* One callback per send, on the right thread, a rejected send's with its row's code
     * and a drained command's with no bytes: the ledger's. What the forged peer may have
     * made of the rest is judged here. */
    if (chaos_ledger_callback(&p->ledger, (int)(r - &p->cmds[0][0]), cmd) == CHAOS_LEDGER_AGAIN)
        return;
    int data = cmd->commandCode == VDC_Read || cmd->commandCode == VDC_Write;
    if (data && cmd->bytesTransferred > (uint32_t)cmd->size)
        fail("a callback reports %u bytes for a command of %d", cmd->bytesTransferred, cmd->size);
    uint32_t c = cmd->completionCode;
    static const uint32_t lib_codes[] = {ERROR_OPERATION_ABORTED, ERROR_INVALID_HANDLE,
                                         ERROR_INVALID_PARAMETER, ERROR_IO_DEVICE,
                                         ERROR_NO_SYSTEM_RESOURCES};
    int known = 0;
    for (size_t i = 0; i < sizeof lib_codes / sizeof lib_codes[0]; i++)
        known |= c == lib_codes[i];
    static const uint32_t client_codes[] = {ERROR_SUCCESS, ERROR_IO_DEVICE, ERROR_HANDLE_EOF,
                                            ERROR_DISK_FULL, ERROR_INVALID_PARAMETER};
    for (size_t i = 0; i < sizeof client_codes / sizeof client_codes[0]; i++)
        known |= c == client_codes[i] && (CHAOS_LOAD_RELAXED(&p->client_codes) & (1u << i));
    if (!known && !p->cpl_forged)
        fail("a callback with code %u, which neither the client nor the library gave", c);
}

static void agent_actor(void *arg) {
    peer *p = arg;
    wait_word(p, &p->stage);
    if (CHAOS_LOAD_ACQUIRE(&p->stage) == 1) {
        p->agent_ran = 1;
        p->agent_rc = vdi_server_set_execute_completion_agent(p->server);
        chaos_ledger_agent_done(&p->ledger);
        allowed(p->agent_rc, "execute_completion_agent", 2, NOERROR, VD_E_ABORT);
    }
    CHAOS_STORE_RELEASE(&p->agent_done, 1u);
    chaos_wake(p->e, &p->agent_done);
    done(p);
}

static void probe_routine(VDS_Command *cmd) {
    (void)cmd;
}

/* Returns 0 once the agent is registered, -1 when the set went down meanwhile. */
static int await_agent(peer *p) {
    uint32_t never = 0;
    for (int tries = 0; tries < 10000; tries++) {
        VDS_Command probe = {.commandCode = 0, .completionRoutine = probe_routine};
        int rc = vdi_server_device_send_command(p->sdev[0], &probe);
        allowed(rc, "send_command (probe)", 4, VD_E_INVALID, VD_E_PROTOCOL, VD_E_ABORT,
                VD_E_IO_ERROR);
        if (rc == VD_E_INVALID)
            return 0;
        if (rc == VD_E_ABORT || CHAOS_LOAD_ACQUIRE(&p->agent_done))
            return -1;
        chaos_wait(p->e, &never, 0u, 1);
    }
    fail("the agent never registered");
}

static void server_actor(void *arg) {
    peer *p = arg;
    int rc = vdi_server_set_begin_configuration(p->server, VDF_WriteMedia, 512, 0, 65536, 0);
    allowed(rc, "begin_configuration", 2, NOERROR, VD_E_ABORT);
    if (rc == NOERROR) {
        rc = vdi_server_set_request_buffers(p->server, p->bufsize, 0, p->ndev * p->ncmd);
        allowed(rc, "request_buffers", 3, NOERROR, VD_E_ABORT, VD_E_MEMORY);
    }
    if (rc == NOERROR) {
        rc = vdi_server_set_end_configuration(p->server);
        allowed(rc, "end_configuration", 3, NOERROR, VD_E_ABORT, VD_E_MEMORY);
    }
    int forging = p->mode == MODE_FORGED_RING; /* no agent: the forger takes completions */
    CHAOS_STORE_RELEASE(&p->stage, rc != NOERROR ? 9u : forging ? 8u : 1u);
    chaos_wake(p->e, &p->stage);
    for (uint32_t d = 0; rc == NOERROR && d < p->ndev; d++) {
        rc = vdi_server_set_open_device(p->server, p->devname[d], &p->sdev[d]);
        allowed(rc, "server open_device", 5, NOERROR, VD_E_ABORT, VD_E_INVALID, VD_E_PROTOCOL,
                VD_E_OPEN);
    }
    for (uint32_t d = 0; rc == NOERROR && d < p->ndev; d++)
        for (uint32_t k = 0; rc == NOERROR && k < p->ncmd; k++) {
            rc = vdi_server_set_allocate_buffer(p->server, &p->cmds[d][k].buf, p->bufsize, 0);
            allowed(rc, "allocate_buffer", 3, NOERROR, VD_E_ABORT, VD_E_MEMORY);
        }
    if (forging) {
        CHAOS_STORE_RELEASE(&p->server_ready, rc == NOERROR ? 1u : 9u);
        chaos_wake(p->e, &p->server_ready);
        done(p);
        return;
    }
    if (rc == NOERROR && await_agent(p) == 0) {
        for (uint32_t k = 0; k < p->ncmd; k++)
            for (uint32_t d = 0; d < p->ndev; d++) {
                cmd_rec *r = &p->cmds[d][k];
                int32_t code = p->code[d][k];
                int data = code == VDC_Read || code == VDC_Write;
                if (code == VDC_Write)
                    memset(r->buf, (int)(d * 16 + k), p->bufsize);
                r->cmd = (VDS_Command){.commandCode = code,
                                       .size = data ? (int32_t)p->bufsize : 0,
                                       .inPosition = (int64_t)(d * 100 + k),
                                       .buffer = data ? r->buf : NULL,
                                       .completionRoutine = routine,
                                       .completionContext = r};
                int src =
                    chaos_ledger_send(&p->ledger, (int)(r - &p->cmds[0][0]), p->sdev[d], &r->cmd);
                allowed(src, "send_command", 4, NOERROR, VD_E_ABORT, VD_E_PROTOCOL, VD_E_IO_ERROR);
            }
        for (uint32_t d = 0; d < p->ndev; d++)
            allowed(vdi_server_device_close(p->sdev[d]), "close_device", 2, NOERROR, VD_E_ABORT);
    }
    if (CHAOS_LOAD_ACQUIRE(&p->stage) == 1)
        wait_word(p, &p->agent_done);
    done(p);
}

static void client_main(void *arg) {
    peer *p = arg;
    VDConfig cfg;
    int rc = vdi_client_set_get_configuration(p->client, VDI_INFINITE, &cfg);
    allowed(rc, "client get_configuration", 2, NOERROR, VD_E_ABORT);
    if (rc == NOERROR)
        p->negotiated_transfer = cfg.maxTransferSize;
    for (uint32_t d = 0; rc == NOERROR && d < p->ndev; d++) {
        rc = vdi_client_set_open_device(p->client, p->devname[d], &p->cdev[d]);
        allowed(rc, "client open_device", 5, NOERROR, VD_E_ABORT, VD_E_PROTOCOL, VD_E_OPEN,
                VD_E_INVALID);
    }
    CHAOS_STORE_RELEASE(&p->opened, rc == NOERROR ? 1u : 9u);
    chaos_wake(p->e, &p->opened);
    done(p);
}

/* The file of set name's shared-memory object. 0, or -1 when it does not fit. */
static int shm_file(char *out, size_t cap, const char *name) {
    char shm[112];
    if (vdi_seam_shm_name(shm, sizeof shm, NULL, name) != 0)
        return -1;
    int n = snprintf(out, cap, "/dev/shm%s", shm);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* Bytes of the area the shared object really holds (the peer cannot forge this). */
static uint64_t backed_area(const peer *p) {
    char path[128];
    struct stat st;
    if (shm_file(path, sizeof path, p->name) != 0 || stat(path, &st) != 0 ||
        (uint64_t)st.st_size < p->cctl_len)
        return 0;
    return (uint64_t)st.st_size - p->cctl_len;
}

/* The client's side of the contract: what get_command hands out is usable as promised.
 * Two former findings (corpora/fuzz_peer/crash/) are let through only with
 * FUZZ_PEER_LENIENT set: a size above the negotiated maxTransferSize, and a buffer in a
 * part of the area the object does not hold (its bytes are then not touched). */
static void check_delivered(peer *p, const VDC_Command *c) {
    if (c->commandCode < VDC_Read || c->commandCode > VDC_Complete)
        fail("get_command delivered command code %d", c->commandCode);
    int data = c->commandCode == VDC_Read || c->commandCode == VDC_Write;
    uint64_t len = data ? (uint64_t)(uint32_t)c->size : 1;
    if (data && c->size < 1)
        fail("get_command delivered a data command of %d bytes", c->size);
    if (data && (uint32_t)c->size > p->negotiated_transfer && p->strict)
        fail("get_command delivered a data command of %d bytes; maxTransferSize is %u", c->size,
             p->negotiated_transfer);
    if (data && !c->buffer)
        fail("get_command delivered a data command without a buffer");
    if (!c->buffer)
        return;
    if (c->buffer < p->carea || (uint64_t)(c->buffer - p->carea) + len > p->cmapped)
        fail("get_command delivered a buffer at area offset %lld, %llu bytes, outside the "
             "client's %llu mapped bytes",
             (long long)(c->buffer - p->carea), (unsigned long long)len,
             (unsigned long long)p->cmapped);
    uint64_t backed = backed_area(p), off = (uint64_t)(c->buffer - p->carea);
    if (off + len > backed) {
        if (p->strict)
            fail("get_command delivered a buffer at area offset %llu, %llu bytes, beyond the "
                 "%llu bytes the shared object holds",
                 (unsigned long long)off, (unsigned long long)len, (unsigned long long)backed);
        return;
    }
    /* the bytes are the client's to read and (for a Read) to write */
    volatile uint8_t sum = 0;
    for (uint64_t i = 0; i < len; i += 512)
        sum = (uint8_t)(sum + c->buffer[i]);
    sum = (uint8_t)(sum + c->buffer[len - 1]);
    (void)sum;
    if (c->commandCode == VDC_Read)
        memset(c->buffer, 0x5a, len);
}

/* ---- MODE_FORGED_RING: the peer serves the command rings ----------------------------------- */

static vdi_dev_shm *client_dev(peer *p, uint32_t d) {
    return &((vdi_ctl_shm *)p->cctl)->dev[d];
}

/* What the client must reject in the entry at its tail (VDI-SPEC 7), given the slots it
 * holds: NULL when the entry is a command it must deliver as written. */
static const char *entry_fault(const peer *p, const ring_shadow *r, const vdi_cmd_shm *e) {
    uint32_t k = e->tag & 0xffu;
    if (k >= VDI_RING)
        return "a tag whose slot is past the ring";
    for (int i = 0; i < r->nheld; i++)
        if ((r->held[i].tag & 0xffu) == k)
            return "a tag whose slot the client still holds";
    if (e->code < VDC_Read || e->code > VDC_Complete)
        return "a command code out of range";
    int data = e->code == VDC_Read || e->code == VDC_Write;
    if (data && (e->size < 1 || (uint32_t)e->size > p->negotiated_transfer))
        return "a data size outside 1..maxTransferSize";
    if (data && e->buf_off == VDI_NO_BUFFER)
        return "a data command without a buffer";
    if (e->buf_off != VDI_NO_BUFFER) {
        uint64_t len = data ? (uint64_t)e->size : 1;
        uint64_t area = CHAOS_LOAD_ACQUIRE(&((vdi_ctl_shm *)p->cctl)->area_size);
        if (e->buf_off >= VDI_MAX_AREA || e->buf_off + len > area)
            return "a buffer outside the area";
    }
    return NULL;
}

/* Check and take every completion the client published on device d: each is what its
 * complete_command was given, for the tag of the entry it had delivered. */
static void take_client_completions(peer *p, uint32_t d) {
    ring_shadow *r = &p->ring[d];
    vdi_dev_shm *ds = client_dev(p, d);
    FOREIGN_BEGIN();
    uint32_t head = CHAOS_LOAD_ACQUIRE(&ds->cpl_head);
    if (head - r->consumed > VDI_RING)
        fail("device %u: the client published %u completions past the server's tail", d,
             head - r->consumed);
    for (; r->consumed != head; r->consumed++) {
        vdi_cpl_shm got = ds->cpl[r->consumed % VDI_RING];
        if (r->consumed >= r->ncpl)
            fail("device %u: completion %u published, the client completed %u commands", d,
                 r->consumed, r->ncpl);
        const vdi_cpl_shm *want = &r->cpl[r->consumed];
        if (got.tag != want->tag || got.code != want->code || got.bytes != want->bytes ||
            got.position != want->position)
            fail("device %u: completion %u is tag %#x code %u bytes %u position %llu; "
                 "complete_command was given tag %#x code %u bytes %u position %llu",
                 d, r->consumed, got.tag, got.code, got.bytes, (unsigned long long)got.position,
                 want->tag, want->code, want->bytes, (unsigned long long)want->position);
        if ((got.tag & 0xffu) < VDI_RING)
            r->outstanding[got.tag & 0xffu] = 0;
    }
    CHAOS_STORE_RELEASE(&ds->cpl_tail, head);
    FOREIGN_END();
}

static void wake_device(peer *p, uint32_t d) {
    vdi_dev_shm *ds = client_dev(p, d);
    FOREIGN_BEGIN();
    CHAOS_ADD_SEQ(&ds->cmd_seq, 1u);
    FOREIGN_END();
    chaos_wake(p->e, &ds->cmd_seq);
}

/* A buffer offset inside the area for len bytes: a live buffer of the server's, or (sel
 * odd) any place that fits. */
static uint64_t pick_buf_off(peer *p, uint8_t sel, uint64_t len) {
    vdi_ctl_shm *ctl = (vdi_ctl_shm *)p->cctl;
    uint64_t area = CHAOS_LOAD_ACQUIRE(&ctl->area_size);
    uint32_t nb = p->ndev * p->ncmd;
    uint64_t off = CHAOS_LOAD_ACQUIRE(&ctl->buf[(sel >> 1) % nb].off);
    if ((sel & 1) || off + len > area)
        off = area > len ? ((uint64_t)sel * 4097u) % (area - len + 1) : 0;
    return off;
}

/* Write the next entry of device d (valid, or forged as the plan says) and count it in
 * the head to publish. 0 when the ring or the slots are full (nothing written). */
static int write_entry(peer *p, uint32_t d, fuzz_input *in) {
    static const int32_t codes[] = {VDC_Write,  VDC_Write,       VDC_Read,        VDC_Read,
                                    VDC_Flush,  VDC_ClearError,  VDC_GetPosition, VDC_WriteMark,
                                    VDC_Rewind, VDC_SetPosition, VDC_Complete};
    ring_shadow *r = &p->ring[d];
    int32_t code = FUZZ_PICK(in, codes);
    uint8_t mut = fuzz_u8(in), size_sel = fuzz_u8(in), buf_sel = fuzz_u8(in), pos = fuzz_u8(in);
    uint32_t tail = CHAOS_LOAD_ACQUIRE(&client_dev(p, d)->cmd_tail);
    uint32_t slot = 0;
    while (slot < VDI_RING && r->outstanding[slot])
        slot++;
    if (r->pub >= NENT || r->pub - tail >= VDI_RING || slot == VDI_RING)
        return 0;
    uint32_t forged = mut >= 176 ? (mut - 176u) % 16u : 16u;
    if (forged >= 8 && forged < 12)
        code = (mut & 1) ? VDC_Read : VDC_Write; /* the size and buffer checks apply */
    int data = code == VDC_Read || code == VDC_Write;
    vdi_cmd_shm e = {.code = code, .position = (uint64_t)pos * 512u, .buf_off = VDI_NO_BUFFER};
    if (data) {
        uint32_t sizes[] = {p->bufsize, 1, p->bufsize / 2, 512};
        e.size = (int32_t)sizes[size_sel % 4];
    }
    if (data || (buf_sel & 0x80))
        e.buf_off = pick_buf_off(p, buf_sel, data ? (uint64_t)e.size : 1);
    r->gen[slot] = (r->gen[slot] + 1) & 0xffffffu;
    e.tag = slot | r->gen[slot] << 8;
    uint64_t len = data ? (uint64_t)e.size : 1;
    uint64_t area = CHAOS_LOAD_ACQUIRE(&((vdi_ctl_shm *)p->cctl)->area_size);
    switch (forged) {
    case 0:
        e.tag = (e.tag & ~0xffu) | VDI_RING;
        break;
    case 1:
        e.tag |= 0xffu;
        break;
    case 2: /* a slot the client holds (else one published and not yet completed) */
    case 3:
        for (uint32_t k = 0; k < VDI_RING; k++)
            if (r->outstanding[k])
                e.tag = (e.tag & ~0xffu) | k;
        if (forged == 2 && r->nheld)
            e.tag = (e.tag & ~0xffu) | (r->held[r->nheld - 1].tag & 0xffu);
        break;
    case 4:
        e.code = 0;
        break;
    case 5:
        e.code = VDC_Complete + 1;
        break;
    case 6:
        e.code = -1;
        break;
    case 7:
        e.code = INT32_MAX;
        break;
    case 8:
        e.size = 0;
        break;
    case 9:
        e.size = -(int32_t)p->bufsize;
        break;
    case 10:
        e.size = (int32_t)p->negotiated_transfer + 1;
        break;
    case 11:
        e.buf_off = VDI_NO_BUFFER;
        break;
    case 12:
        e.buf_off = area - len + 1;
        break;
    case 13:
        e.buf_off = VDI_MAX_AREA - 1;
        break;
    case 14:
        e.buf_off = UINT64_MAX - len + 2; /* the end wraps past zero */
        break;
    case 15:
        e.buf_off = area;
        break;
    default:
        break;
    }
    if (forged < 16)
        p->bad_published = 1;
    if ((e.tag & 0xffu) < VDI_RING)
        r->outstanding[e.tag & 0xffu] = 1;
    r->e[r->pub] = e;
    vdi_cmd_shm *at = &client_dev(p, d)->cmd[r->pub % VDI_RING];
    at->tag = e.tag;
    at->code = e.code;
    at->size = e.size;
    at->position = e.position;
    at->buf_off = e.buf_off;
    if (p->trace)
        fprintf(stderr,
                "fuzz_peer: forger: device %u entry %u: tag %#x code %d size %d position %llu "
                "buffer %#llx%s\n",
                d, r->pub, e.tag, e.code, e.size, (unsigned long long)e.position,
                (unsigned long long)e.buf_off, forged < 16 ? " (forged)" : "");
    r->pub++;
    return 1;
}

/* The hostile server: each action of the plan, with a schedule point before it. */
static void forger(void *arg) {
    peer *p = arg;
    wait_word(p, &p->opened);
    wait_word(p, &p->server_ready);
    int ok = CHAOS_LOAD_ACQUIRE(&p->opened) == 1 && CHAOS_LOAD_ACQUIRE(&p->server_ready) == 1;
    fuzz_input *in = &p->plan;
    for (int act = 0; ok && act < 32 && !fuzz_exhausted(in); act++) {
        chaos_point(p->e, "peer/forge");
        uint8_t kind = fuzz_u8(in);
        uint32_t d = fuzz_u8(in) % p->ndev;
        ring_shadow *r = &p->ring[d];
        FOREIGN_BEGIN();
        for (uint32_t i = 0; i < p->ndev; i++)
            take_client_completions(p, i);
        int dead = r->jumped || r->closed;
        FOREIGN_END();
        switch (kind % 8) {
        case 0:
        case 1:
        case 2:
        case 3: { /* publish 1..4 entries (1..16 for kind 3) at once, then wake */
            uint32_t n = 1 + fuzz_u8(in) % (kind % 8 == 3 ? 16u : 4u), wrote = 0;
            FOREIGN_BEGIN();
            for (uint32_t i = 0; i < n && !dead; i++)
                wrote += (uint32_t)write_entry(p, d, in);
            if (wrote)
                CHAOS_STORE_RELEASE(&client_dev(p, d)->cmd_head, r->pub);
            FOREIGN_END();
            if (wrote)
                wake_device(p, d);
            break;
        }
        case 4: { /* the head jumps out of the ring (never back: the ring is broken) */
            static const uint32_t jumps[] = {66, 100, 0x80000000u, 0xffffffffu};
            uint32_t j = FUZZ_PICK(in, jumps);
            if (dead)
                break;
            FOREIGN_BEGIN();
            uint32_t tail = CHAOS_LOAD_ACQUIRE(&client_dev(p, d)->cmd_tail);
            r->jumped = 1;
            p->bad_published = 1;
            CHAOS_STORE_RELEASE(&client_dev(p, d)->cmd_head, tail + j);
            if (p->trace)
                fprintf(stderr, "fuzz_peer: forger: device %u head %u -> %u (tail %u)\n", d, r->pub,
                        tail + j, tail);
            FOREIGN_END();
            wake_device(p, d);
            break;
        }
        case 5: /* close the device: after the last entry, as close_device does */
            if (dead)
                break;
            FOREIGN_BEGIN();
            r->closed = 1;
            CHAOS_STORE_RELEASE(&client_dev(p, d)->server_closed, 1u);
            FOREIGN_END();
            wake_device(p, d);
            break;
        case 6: { /* let the others run */
            uint32_t n = fuzz_u8(in) % 8u;
            for (uint32_t i = 0; i < n; i++)
                chaos_point(p->e, "peer/yield");
            break;
        }
        default: /* only take the completions (done above) */
            break;
        }
    }
    for (uint32_t d = 0; ok && d < p->ndev; d++) { /* the end of every stream */
        FOREIGN_BEGIN();
        int dead = p->ring[d].jumped || p->ring[d].closed;
        if (!dead) {
            p->ring[d].closed = 1;
            CHAOS_STORE_RELEASE(&client_dev(p, d)->server_closed, 1u);
        }
        FOREIGN_END();
        if (!dead)
            wake_device(p, d);
    }
    done(p);
}

/* The judge of one get_command of device d in MODE_FORGED_RING (rc, *c), started when
 * the ring had jumped or not. */
static void judge_take(peer *p, uint32_t d, int rc, VDC_Command *c, int jumped_before) {
    ring_shadow *r = &p->ring[d];
    FOREIGN_BEGIN();
    uint32_t idx = r->delivered;
    if (rc == NOERROR) {
        if (idx >= r->pub)
            fail("device %u: get_command delivered entry %u, but the server published %u "
                 "(and forged the head %s)",
                 d, idx, r->pub, r->jumped ? "out of the ring" : "nowhere");
        if (jumped_before)
            fail("device %u: get_command delivered a command from a ring whose head is out "
                 "of it (more than %u entries past the tail)",
                 d, VDI_RING);
        const vdi_cmd_shm *e = &r->e[idx];
        const char *why = entry_fault(p, r, e);
        if (why)
            fail("device %u: get_command delivered entry %u (tag %#x code %d size %d buffer "
                 "%#llx), which it must reject: %s",
                 d, idx, e->tag, e->code, e->size, (unsigned long long)e->buf_off, why);
        uint8_t *buf = e->buf_off == VDI_NO_BUFFER ? NULL : p->carea + e->buf_off;
        if (c->commandCode != e->code || c->size != e->size ||
            c->position != (int64_t)e->position || c->buffer != buf)
            fail("device %u: entry %u written as code %d size %d position %llu buffer %p, "
                 "delivered as code %d size %d position %lld buffer %p",
                 d, idx, e->code, e->size, (unsigned long long)e->position, (void *)buf,
                 c->commandCode, c->size, (long long)c->position, (void *)c->buffer);
        for (int i = 0; i < r->nheld; i++)
            if (r->held[i].view == c)
                fail("device %u: get_command handed out the command of entry %u again for "
                     "entry %u, before it was completed",
                     d, r->held[i].idx, idx);
        r->held[r->nheld++] = (held_cmd){.view = c, .idx = idx, .tag = e->tag};
        r->delivered++;
    } else if (rc == VD_E_CLOSE) {
        if (!r->closed || r->jumped || idx != r->pub)
            fail("device %u: get_command returned VD_E_CLOSE after %u of %u entries (device "
                 "%s)",
                 d, idx, r->pub, r->closed ? "closed" : "not closed");
    } else if (!p->bad_published && !p->reaper_fired) {
        fail("device %u: get_command returned %s on a ring with no forged entry", d,
             vdi_strerror(rc));
    }
    FOREIGN_END();
}

/* Completes held command i of device d with the outcome o. */
static void complete_held(peer *p, uint32_t d, int i, uint8_t o) {
    static const uint32_t fails[] = {ERROR_IO_DEVICE, ERROR_HANDLE_EOF, ERROR_DISK_FULL,
                                     ERROR_INVALID_PARAMETER};
    ring_shadow *r = &p->ring[d];
    FOREIGN_BEGIN();
    held_cmd h = r->held[i];
    r->held[i] = r->held[--r->nheld];
    const vdi_cmd_shm *e = &r->e[h.idx];
    uint32_t code = o < 224 ? ERROR_SUCCESS : fails[o % 4];
    int data = e->code == VDC_Read || e->code == VDC_Write;
    uint32_t bytes = code == ERROR_SUCCESS && data ? (uint32_t)e->size : 0;
    uint64_t position = e->position + bytes;
    uint32_t n = r->ncpl++;
    r->cpl[n] = (vdi_cpl_shm){.tag = h.tag, .code = code, .bytes = bytes, .position = position};
    FOREIGN_END();
    int rc = vdi_client_device_complete_command(p->cdev[d], h.view, code, bytes, position);
    allowed(rc, "complete_command", 2, NOERROR, VD_E_ABORT);
    if (rc != NOERROR) {
        FOREIGN_BEGIN();
        r->ncpl--; /* nothing published */
        FOREIGN_END();
    }
}

/* A client device of MODE_FORGED_RING: takes commands, holds some (up to NHOLD) and
 * completes them out of order as the outcome bytes say, then the held ones at the end. */
static void client_device_forged(peer *p, uint32_t d) {
    ring_shadow *r = &p->ring[d];
    for (uint32_t k = 0; CHAOS_LOAD_ACQUIRE(&p->opened) == 1; k++) {
        uint8_t o = p->outcome[d][k % p->ncmd];
        FOREIGN_BEGIN();
        int nheld = r->nheld, jumped = r->jumped;
        FOREIGN_END();
        /* complete before the next take: when the hold is full, or as the outcome says */
        while (nheld && (nheld == NHOLD || !(o & 0x40))) {
            complete_held(p, d, (o & 0x20) ? 0 : nheld - 1, o);
            nheld--;
            if (o & 0x10)
                break;
        }
        VDC_Command *c = NULL;
        int rc = vdi_client_device_get_command(p->cdev[d], VDI_INFINITE, &c);
        allowed(rc, "get_command", 3, NOERROR, VD_E_CLOSE, VD_E_ABORT);
        judge_take(p, d, rc, c, jumped);
        if (rc != NOERROR)
            break;
        FOREIGN_BEGIN(); /* the bytes are the client's; the forger may point two at one */
        check_delivered(p, c);
        FOREIGN_END();
    }
    for (;;) {
        FOREIGN_BEGIN();
        int nheld = r->nheld;
        FOREIGN_END();
        if (!nheld)
            break;
        complete_held(p, d, 0, p->outcome[d][(uint32_t)nheld % p->ncmd]);
    }
}

static void client_device(void *arg) {
    peer *p = g_peer;
    int d = (int)(intptr_t)arg;
    wait_word(p, &p->opened);
    if (p->mode == MODE_FORGED_RING) {
        client_device_forged(p, (uint32_t)d);
        done(p);
        return;
    }
    static const uint32_t fails[] = {ERROR_IO_DEVICE, ERROR_HANDLE_EOF, ERROR_DISK_FULL,
                                     ERROR_INVALID_PARAMETER};
    for (uint32_t k = 0; CHAOS_LOAD_ACQUIRE(&p->opened) == 1; k++) {
        VDC_Command *c;
        int rc = vdi_client_device_get_command(p->cdev[d], VDI_INFINITE, &c);
        allowed(rc, "get_command", 3, NOERROR, VD_E_CLOSE, VD_E_ABORT);
        if (rc != NOERROR)
            break;
        check_delivered(p, c);
        uint8_t o = p->outcome[d][k % p->ncmd];
        uint32_t code = o < 224 ? ERROR_SUCCESS : fails[o % 4];
        int data = c->commandCode == VDC_Read || c->commandCode == VDC_Write;
        uint32_t bytes = code == ERROR_SUCCESS && data ? (uint32_t)c->size : 0;
        for (uint32_t i = 0; i < 5; i++) /* before the call: the agent may take it at once */
            if (code == (i == 0 ? ERROR_SUCCESS : fails[i - 1]))
                CHAOS_OR_RELAXED(&p->client_codes, 1u << i);
        rc = vdi_client_device_complete_command(p->cdev[d], c, code, bytes,
                                                (uint64_t)c->position + bytes);
        allowed(rc, "complete_command", 2, NOERROR, VD_E_ABORT);
    }
    done(p);
}

/* Every stall a hostile peer can cause ends here: at the deadline both sides abort, and
 * from then on every blocked call must return (VDI-SPEC 5.3).
 *
 * Once a finding (corpora/fuzz_peer/crash/forged-abort-agent-sleeps, now fixed): a forged
 * aborted word put a side in Abort without waking its sleepers, and its own signal_abort
 * then woke nobody. Also fixed (sequence-rollback-agent-sleeps): a peer that rolled a
 * sequence word back under a waiter made it sleep through its own side's abort. With
 * FUZZ_PEER_LENIENT set, for a plan that forges the abort word or a sequence word the
 * reaper still closes both sides after signal_abort (close wakes every waiter of its side);
 * by default every plan must end with signal_abort alone. */
static void reaper(void *arg) {
    peer *p = arg;
    uint64_t deadline = chaos_now(p->e) + (uint64_t)REAPER_MS;
    int fired = 0;
    for (;;) {
        uint32_t seen = CHAOS_LOAD_ACQUIRE(&p->live);
        if (seen == 0)
            return;
        long left = (long)(deadline - chaos_now(p->e));
        if (fired == 2 || (fired == 1 && !p->forged_abort))
            left = -1;
        if (fired == 0 && left <= 0) {
            fired = 1;
            FOREIGN_BEGIN();
            p->reaper_fired = 1;
            FOREIGN_END();
            deadline = chaos_now(p->e) + 1000u;
            allowed(vdi_client_set_signal_abort(p->client), "client signal_abort", 1, NOERROR);
            allowed(vdi_server_set_signal_abort(p->server), "server signal_abort", 1, NOERROR);
            continue;
        }
        if (fired == 1 && left == 0 && p->forged_abort) {
            fired = 2;
            p->reaper_closed = 1;
            FOREIGN_BEGIN();
            p->next_w = p->nw; /* the views go away: the peer writes no more */
            FOREIGN_END();
            allowed(vdi_server_set_close(p->server), "server close (reaper)", 2, NOERROR,
                    VD_E_PROTOCOL);
            allowed(vdi_client_set_close(p->client), "client close (reaper)", 2, NOERROR,
                    VD_E_OPEN);
            continue;
        }
        chaos_wait(p->e, &p->live, seen, left < 0 ? -1 : left);
    }
}

/* ---- one input ------------------------------------------------------------------------------ */

static int count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    while (d && readdir(d))
        n++;
    if (d)
        closedir(d);
    return n;
}

static void run(peer *p, const uint8_t *sched, size_t nsched) {
    chaos_config cfg = {
        .strategy = CHAOS_BYTES, .bytes = sched, .nbytes = nsched, .record_events = p->trace};
    p->e = chaos_engine_new(&cfg);
    p->client = vdi_client_set_new();
    p->server = vdi_server_set_new();
    if (!p->e || !p->client || !p->server)
        fail("out of memory");
    chaos_seams_install(p->e);
    chaos_ledger_init(&p->ledger, p->e, p->ledger_cmd, NDEV * NCMD, 0);
    p->inner = vdi_hooks; /* the engine's table, wrapped: points and maps come here first */
    vdi_seams wrapped = p->inner;
    wrapped.sched_point = peer_sched;
    wrapped.map = peer_map;
    vdi_seams_install(&wrapped);

    VDConfig c = {.deviceCount = p->ndev, .serverTimeOut = p->timeout};
    int rc = vdi_client_set_create(p->client, p->name, &c);
    if (rc != NOERROR)
        fail("setup: create returned %s", vdi_strerror(rc));
    rc = vdi_server_set_open(p->server, NULL, p->name);
    if (rc != NOERROR)
        fail("setup: server open returned %s", vdi_strerror(rc));
    p->live = 3 + p->ndev + (p->mode == MODE_FORGED_RING);
    chaos_ledger_agent(&p->ledger, chaos_spawn(p->e, "agent", agent_actor, p));
    if (p->mode == MODE_FORGED_RING)
        chaos_spawn(p->e, "forger", forger, p);
    p->server_actor = chaos_spawn(p->e, "server", server_actor, p);
    chaos_spawn(p->e, "client-main", client_main, p);
    for (uint32_t d = 0; d < p->ndev; d++)
        chaos_spawn(p->e, "client-device", client_device, (void *)(intptr_t)d);
    chaos_spawn(p->e, "reaper", reaper, p);
    p->running = 1;
    chaos_outcome out = chaos_run(p->e);
    p->running = 0;
    if (p->trace)
        fprintf(stderr, "fuzz_peer: %u schedule points, %d of %d hostile writes, agent %s\n",
                p->points, p->next_w, p->nw, p->agent_ran ? vdi_strerror(p->agent_rc) : "not run");
    if (out != CHAOS_DONE) {
        const chaos_event *ev;
        size_t nev = chaos_events(p->e, &ev);
        for (size_t i = 0; p->trace && i < nev; i++) /* the timeline of the run */
            fprintf(stderr, "fuzz_peer: step %4u t=%llu %-13s %s\n", ev[i].step,
                    (unsigned long long)ev[i].now, chaos_actor_name(p->e, ev[i].actor),
                    ev[i].point);
        const char *text = chaos_finding(p->e);
        const char *nl = strchr(text, '\n');
        fprintf(stderr, "==fuzz_peer== %.*s (after %d hostile writes)\n%s\n",
                nl ? (int)(nl - text) : (int)strlen(text), text, p->next_w, nl ? nl + 1 : "");
        abort();
    }
    /* The completions the forger has not taken yet, checked while the views are mapped. */
    for (uint32_t d = 0; p->mode == MODE_FORGED_RING && p->cctl && d < p->ndev; d++)
        take_client_completions(p, d);
    /* Both closes on the main thread (one unmapper at a time for the engine's guard). */
    rc = vdi_server_set_close(p->server);
    allowed(rc, "server close", 2, NOERROR, VD_E_PROTOCOL);
    rc = vdi_client_set_close(p->client);
    if (p->reaper_closed)
        allowed(rc, "client close", 1, VD_E_PROTOCOL);
    else
        allowed(rc, "client close", 2, NOERROR, VD_E_OPEN);
    chaos_ledger_check(&p->ledger, 0); /* every command sent got its one callback */
    if (chaos_finding(p->e)[0])
        fail("the check after the run (agent %s)",
             p->agent_ran ? vdi_strerror(p->agent_rc) : "not run");
    chaos_seams_install(NULL);
    vdi_client_set_free(p->client);
    vdi_server_set_free(p->server);
    chaos_engine_free(p->e);
    p->e = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int swept; /* the sets that runs of this target which crashed left behind */
    if (!swept) {
        swept = 1;
        (void)vdi_seam_reclaim_dead("fuzz-peer-");
    }
    fuzz_input in;
    fuzz_input_init(&in, data, size);
    size_t nsched = fuzz_u16(&in);
    nsched %= size - in.pos + 1;
    in.size = size - nsched;
    peer *p = calloc(1, sizeof *p);
    if (!p)
        fail("out of memory");
    decode(p, &in);
    p->trace = getenv("FUZZ_PEER_TRACE") != NULL;
    /* The findings the workarounds were for are fixed (corpora/fuzz_peer/crash/README.md):
     * strict unless FUZZ_PEER_LENIENT asks for the old way around them. */
    p->strict = getenv("FUZZ_PEER_LENIENT") == NULL;
    if (p->strict)
        p->forged_abort = 0;
    snprintf(p->name, sizeof p->name, "fuzz-peer-%ld", (long)getpid());
    snprintf(p->devname[0], sizeof p->devname[0], "%s", p->name); /* device 0: the set's name */
    for (uint32_t d = 1; d < p->ndev; d++)
        snprintf(p->devname[d], sizeof p->devname[d], "dev%u", d);
    int fds = count_fds();
    g_peer = p;
    run(p, data + in.size, nsched);
    g_peer = NULL;
    if (count_fds() != fds)
        fail("%d file descriptors left open after both closes", count_fds() - fds);
    char path[128];
    if (shm_file(path, sizeof path, p->name) == 0 && access(path, F_OK) == 0)
        fail("the set's name is left in /dev/shm after both closes");
    free(p);
    return 0;
}
