/* fuzz_stream: a backup then a restore through the reference, end to end, under the
 * controlled engine (every actor a fiber, the schedule read from the input). In the backup
 * session the server writes a stream of Write commands of random sizes on each device, with
 * bytes generated from the input; the client checks each command's bytes, stores them, and
 * completes some with errors (I/O error, disk full, end of media with a partial count, EOF),
 * which end that device's stream. A second session reads every device back with Read
 * commands until ERROR_HANDLE_EOF, and the server checks each Read against the bytes it
 * committed. Every callback is matched with what the client completed for that command, and
 * held by the ledger oracle (chaos/ledger.h) to one per send on the right thread; the
 * I/O-error state (VDI-SPEC 4) is checked after an ERROR_IO_DEVICE; both sessions must end
 * normally (the agent NOERROR, both closes NOERROR). A finding aborts with one line.
 *
 * Input: bytes 0-1 give the length S of the schedule, the last S bytes of the input (one
 * byte per scheduling decision); the bytes between are the program: the geometry, then
 * the backup chunks, then the restore chunks (see decode()). Every byte string decodes. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chaos/atomics.h"
#include "chaos/chaos.h"
#include "chaos/ledger.h"
#include "fuzz_check.h"
#include "fuzz_input.h"
#include "vdi/vdi.h"
#include "vdi/vdi_seams.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NDEV_MAX 3
#define DEPTH_MAX 4
#define NSLOT (NDEV_MAX * DEPTH_MAX)
#define NCHUNK 64
#define NREC 256                 /* commands per device and session */
#define STREAM_MAX (256u << 10)  /* bytes per device */
#define CTL_POS (1ll << 40)      /* inPosition of the non-data commands */
#define OUTCOME_FAIL_BACKUP 200  /* backup outcome bytes from here on fail the Write */
#define OUTCOME_FAIL_RESTORE 224 /* restore outcome bytes from here on fail the Read */

enum { BACKUP, RESTORE };
enum { SL_FREE, SL_SENT, SL_DONE };

#define LOAD(p) CHAOS_LOAD_ACQUIRE((p))
#define STORE(p, v) CHAOS_STORE_RELEASE((p), (v))

/* One command of the plan: a Write of the backup or a Read of the restore. */
typedef struct chunk {
    int dev;
    uint32_t off, size; /* where in its buffer, how many bytes */
    int64_t pos;        /* backup: the stream offset it writes */
    uint8_t seed;       /* backup: the bytes */
    uint8_t outcome;    /* what the client answers */
    uint8_t flags;      /* bit 0: the client completes its batch last first; bit 1: I/O test */
} chunk;

/* What the client completed, per device in delivery order. Written by the client actor
 * before complete_command, read by the callback (ordered by the reference's own ring). */
typedef struct rec {
    int valid;
    int32_t command;
    int64_t position;
    uint32_t code, bytes;
    int64_t out;
    uint8_t flags;
} rec;

/* What the server learned of each accepted command, per device in send order. */
typedef struct res {
    int valid;
    int32_t command;
    int64_t pos;
    uint32_t size, code, bytes;
} res;

typedef struct geom {
    uint32_t ndev, block, max_transfer, depth, hold, prefix, calign, salign, bufsize, flags;
} geom;

struct fs;

typedef struct slot {
    VDS_Command cmd;
    struct fs *f;
    uint8_t *buf;
    int dev, chunk;
    uint32_t ordinal; /* accepted sends on its device before it */
    uint32_t state;   /* SL_*: release/acquire between the callback and the server actor */
    uint32_t off, size;
    int64_t pos;
} slot;

typedef struct dev_arg {
    struct fs *f;
    int d;
} dev_arg;

typedef struct fs {
    chaos_engine *e;
    int phase;
    geom g;
    chunk back[NCHUNK], rest[NCHUNK];
    int nback, nrest;
    char name[64], devname[NDEV_MAX][80];
    vdi_client_set *client;
    vdi_server_set *server;
    vdi_client_device *cdev[NDEV_MAX];
    vdi_server_device *sdev[NDEV_MAX];
    slot slots[NSLOT];
    chaos_ledger ledger; /* every send and callback, a slot's command by its index */
    chaos_ledger_cmd ledger_cmd[NSLOT];
    dev_arg args[NDEV_MAX];
    /* server actor */
    uint32_t ordinal[NDEV_MAX], outstanding[NDEV_MAX], endcode[NDEV_MAX];
    int ended[NDEV_MAX], end_chunk[NDEV_MAX];
    int64_t pos[NDEV_MAX];
    res res[NDEV_MAX][NREC];
    uint8_t *expect[NDEV_MAX]; /* the bytes the server wrote, by stream offset */
    uint32_t expect_len[NDEV_MAX];
    /* futex words and flags between actors */
    uint32_t cb_seq, agent_done, opened;
    int agent_rc;
    /* client actors (device d touches index d only) */
    rec recs[NDEV_MAX][NREC];
    uint32_t nrec[NDEV_MAX], cursor[NDEV_MAX], io_completed[NDEV_MAX];
    uint8_t *store[NDEV_MAX]; /* the client's medium, kept from the backup to the restore */
    uint32_t stored[NDEV_MAX], failed[NDEV_MAX];
    uint32_t cap[NDEV_MAX];
    int trace; /* FUZZ_STREAM_TRACE set (vdichaos replay sets it): the program and timelines */
} fs;

static chaos_engine *g_engine; /* the session's, while it has one (for fail) */

/* One line, and the process ends (fuzz_check.h: an oracle of the engine that reported
 * first is the finding). */
__attribute__((format(printf, 1, 2), noreturn)) static void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fuzz_vfail("fuzz_stream", g_engine, fmt, ap);
}

static const char *phase_name(const fs *f) {
    return f->phase == BACKUP ? "backup" : "restore";
}

/* ---- the data ---------------------------------------------------------------------------- */

/* A chunk's bytes repeat a pattern of PATTERN bytes (a prime, so a shift by a few bytes or
 * by a power of two shows) drawn by xorshift from the chunk's device, index and seed. Whole
 * pattern copies keep the per-byte work out of the instrumented code. */
#define PATTERN 251

static void gen_pattern(uint8_t *p, int d, int k, uint8_t seed) {
    uint32_t x = (0x9e3779b9u * (uint32_t)(k + 1)) ^ ((uint32_t)d << 24) ^ ((uint32_t)seed << 8);
    x |= 1u;
    for (int i = 0; i < PATTERN; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)(x >> 24);
    }
}

static void gen_fill(uint8_t *dst, uint32_t n, const uint8_t *pat) {
    for (uint32_t i = 0; i < n; i += PATTERN)
        memcpy(dst + i, pat, n - i < PATTERN ? n - i : PATTERN);
}

/* The first byte where src differs from the pattern, or n. */
static uint32_t gen_diff(const uint8_t *src, uint32_t n, const uint8_t *pat) {
    for (uint32_t i = 0; i < n; i += PATTERN) {
        uint32_t m = n - i < PATTERN ? n - i : PATTERN;
        if (memcmp(src + i, pat, m) != 0)
            return i;
    }
    return n;
}

/* ---- decoding ---------------------------------------------------------------------------- */

static void decode_extent(fuzz_input *in, const geom *g, uint32_t *off, uint32_t *size) {
    static const uint32_t offs[] = {0, 0, 0, 1, 7, 512, 4096};
    uint32_t o = FUZZ_PICK(in, offs);
    if (o >= g->bufsize)
        o = 0;
    uint32_t room = g->bufsize - o;
    if (room > g->max_transfer)
        room = g->max_transfer;
    uint32_t s;
    switch (fuzz_choice(in, 4)) {
    case 0:
        s = room;
        break;
    case 1:
        s = 1 + fuzz_u16(in) % room;
        break;
    case 2:
        s = 1 + fuzz_u8(in) % 16u;
        break;
    default:
        s = g->block * (1u + fuzz_u8(in) % 4u);
        break;
    }
    *off = o;
    *size = s < room ? s : room;
}

static void decode(fs *f, fuzz_input *in) {
    geom *g = &f->g;
    static const uint32_t blocks[] = {512, 4096, 65536, 1024, 2048};
    static const uint32_t transfers[] = {65536, 131072, 262144};
    static const uint32_t prefixes[] = {0, 0, 64, 512, 4096, 65536};
    static const uint32_t caligns[] = {0, 0, 512, 4096, 65536};
    static const uint32_t bufsizes[] = {65536, 4096, 131072, 5000, 262144};
    g->ndev = 1 + fuzz_u8(in) % NDEV_MAX;
    g->block = FUZZ_PICK(in, blocks);
    g->max_transfer = FUZZ_PICK(in, transfers);
    g->depth = 1 + fuzz_u8(in) % DEPTH_MAX;
    g->hold = 1 + fuzz_u8(in) % DEPTH_MAX;
    g->prefix = FUZZ_PICK(in, prefixes);
    g->calign = FUZZ_PICK(in, caligns);
    uint32_t s = fuzz_choice(in, 3);
    g->salign = s == 0 ? 0 : s == 1 ? g->block : 65536u;
    g->bufsize = FUZZ_PICK(in, bufsizes);
    g->flags = fuzz_u8(in);
    uint32_t nback = fuzz_u8(in) % (NCHUNK + 1);
    int64_t pos[NDEV_MAX] = {0};
    for (uint32_t i = 0; i < nback && !fuzz_exhausted(in); i++) {
        chunk c = {0};
        c.dev = (int)fuzz_choice(in, g->ndev);
        decode_extent(in, g, &c.off, &c.size);
        c.seed = fuzz_u8(in);
        c.outcome = fuzz_u8(in);
        c.flags = fuzz_u8(in);
        if (pos[c.dev] + c.size > STREAM_MAX)
            c.size = (uint32_t)(STREAM_MAX - pos[c.dev]);
        if (c.size == 0)
            continue;
        c.pos = pos[c.dev];
        pos[c.dev] += c.size;
        f->back[f->nback++] = c;
    }
    while (f->nrest < NCHUNK && !fuzz_exhausted(in)) {
        chunk c = {0};
        c.dev = (int)fuzz_choice(in, g->ndev);
        decode_extent(in, g, &c.off, &c.size);
        c.outcome = fuzz_u8(in);
        c.flags = fuzz_u8(in);
        f->rest[f->nrest++] = c;
    }
    for (uint32_t d = 0; d < g->ndev; d++)
        f->cap[d] = (uint32_t)pos[d];
}

/* ---- the completion routine (the agent's actor, or the sender's for a rejected send) ---- */

static void check_read(fs *f, const slot *s, const VDS_Command *cmd) {
    uint32_t len = f->expect_len[s->dev];
    if (cmd->completionCode == ERROR_HANDLE_EOF && s->pos < len)
        fail("restore: device %d gave EOF at %lld, but %u bytes were committed", s->dev,
             (long long)s->pos, len);
    if (cmd->completionCode != ERROR_SUCCESS)
        return;
    if (s->pos >= len)
        fail("restore: device %d read %u bytes at %lld, past the %u committed", s->dev,
             cmd->bytesTransferred, (long long)s->pos, len);
    uint64_t left = len - (uint64_t)s->pos;
    uint32_t want = left < s->size ? (uint32_t)left : s->size;
    if (cmd->bytesTransferred != want)
        fail("restore: device %d read %u bytes at %lld, expected %u", s->dev, cmd->bytesTransferred,
             (long long)s->pos, want);
    if (memcmp(s->buf + s->off, f->expect[s->dev] + s->pos, want) != 0)
        fail("restore: device %d: the bytes read at %lld differ from those backed up", s->dev,
             (long long)s->pos);
}

static void routine(VDS_Command *cmd) {
    slot *s = cmd->completionContext;
    fs *f = s->f;
    /* A rejected send's callback is judged by the ledger as the send returns; a second
     * callback is reported there. */
    if (chaos_ledger_callback(&f->ledger, (int)(s - f->slots), cmd) != CHAOS_LEDGER_AGENT)
        return;
    if (LOAD(&s->state) != SL_SENT)
        fail("%s: device %d: a callback for a command that is not outstanding (code %u)",
             phase_name(f), s->dev, cmd->completionCode);
    const rec *r = &f->recs[s->dev][s->ordinal];
    if (!r->valid)
        fail("%s: device %d: callback (code %u) for command %u, which the client never "
             "completed",
             phase_name(f), s->dev, cmd->completionCode, s->ordinal);
    if (r->position != s->pos || r->command != cmd->commandCode)
        fail("%s: device %d: command %u (code %d at %lld) reached the client as code %d at %lld",
             phase_name(f), s->dev, s->ordinal, cmd->commandCode, (long long)s->pos, r->command,
             (long long)r->position);
    if (cmd->completionCode != r->code || cmd->bytesTransferred != r->bytes ||
        cmd->outPosition != r->out)
        fail("%s: device %d command %u: routine saw code %u bytes %u outPosition %lld, the "
             "client completed %u %u %lld",
             phase_name(f), s->dev, s->ordinal, cmd->completionCode, cmd->bytesTransferred,
             (long long)cmd->outPosition, r->code, r->bytes, (long long)r->out);
    if (f->phase == RESTORE && cmd->commandCode == VDC_Read)
        check_read(f, s, cmd);
    STORE(&s->state, SL_DONE);
    CHAOS_ADD_SEQ(&f->cb_seq, 1u);
    chaos_wake(f->e, &f->cb_seq);
}

static void agent_actor(void *arg) {
    fs *f = arg;
    int rc = vdi_server_set_execute_completion_agent(f->server);
    chaos_ledger_agent_done(&f->ledger);
    f->agent_rc = rc;
    STORE(&f->agent_done, 1u);
    chaos_wake(f->e, &f->agent_done);
}

/* ---- the server actor ----------------------------------------------------------------- */

/* Take the results of every command whose callback ran. */
static void reap(fs *f) {
    for (int i = 0; i < (int)(f->g.ndev * f->g.depth); i++) {
        slot *s = &f->slots[i];
        if (LOAD(&s->state) != SL_DONE)
            continue;
        int d = s->dev;
        res *r = &f->res[d][s->ordinal];
        r->valid = 1;
        r->command = s->cmd.commandCode;
        r->pos = s->pos;
        r->size = s->size;
        r->code = s->cmd.completionCode;
        r->bytes = s->cmd.bytesTransferred;
        f->outstanding[d]--;
        if (r->code != ERROR_SUCCESS && !f->ended[d]) {
            f->ended[d] = 1;
            f->endcode[d] = r->code;
            f->end_chunk[d] = s->chunk;
        }
        STORE(&s->state, SL_FREE);
    }
}

/* A free slot of device d, waiting for callbacks; NULL when the stream ended meanwhile
 * (unless the caller wants one anyway). */
static slot *free_slot(fs *f, int d, int even_if_ended) {
    for (;;) {
        uint32_t seen = LOAD(&f->cb_seq);
        reap(f);
        if (f->ended[d] && !even_if_ended)
            return NULL;
        for (uint32_t j = 0; j < f->g.depth; j++) {
            slot *s = &f->slots[(uint32_t)d * f->g.depth + j];
            if (LOAD(&s->state) == SL_FREE)
                return s;
        }
        chaos_wait(f->e, &f->cb_seq, seen, -1);
    }
}

static void drain(fs *f, int d) {
    for (;;) {
        uint32_t seen = LOAD(&f->cb_seq);
        reap(f);
        int busy = 0;
        for (uint32_t i = 0; i < f->g.ndev; i++)
            busy |= (d < 0 || (int)i == d) && f->outstanding[i] != 0;
        if (!busy)
            return;
        chaos_wait(f->e, &f->cb_seq, seen, -1);
    }
}

static int send(fs *f, slot *s, int32_t code, uint32_t off, uint32_t size, int64_t pos, int ck) {
    int d = s->dev;
    s->cmd = (VDS_Command){.commandCode = code,
                           .size = (int32_t)size,
                           .inPosition = pos,
                           .outPosition = -1,
                           .buffer = code == VDC_Read || code == VDC_Write ? s->buf + off : NULL,
                           .completionRoutine = routine,
                           .completionContext = s};
    s->off = off;
    s->size = size;
    s->pos = pos;
    s->chunk = ck;
    s->ordinal = f->ordinal[d];
    if (s->ordinal >= NREC)
        fail("%s: device %d: more than %d commands", phase_name(f), d, NREC);
    STORE(&s->state, SL_SENT); /* before the send: the agent may call back before it returns */
    /* The ledger checks what the send itself promises: no callback of an accepted send on
     * this thread, exactly one of a rejected send, with its row's code. */
    int rc = chaos_ledger_send(&f->ledger, (int)(s - f->slots), f->sdev[d], &s->cmd);
    if (rc == NOERROR) {
        f->ordinal[d]++;
        f->outstanding[d]++;
        return rc;
    }
    STORE(&s->state, SL_FREE);
    return rc;
}

/* A send the server made after an ERROR_IO_DEVICE it has not reaped yet may be refused
 * (VDI-SPEC 4: the agent took it); anything else must be accepted. */
static void expect_sent(fs *f, int d, int rc) {
    if (rc == NOERROR)
        return;
    if (rc == VD_E_IO_ERROR && f->io_completed[d]) {
        f->ended[d] = 1;
        f->endcode[d] = ERROR_IO_DEVICE;
        return;
    }
    fail("%s: device %d: send_command returned %s", phase_name(f), d, vdi_strerror(rc));
}

static void probe_routine(VDS_Command *cmd) {
    (*(int *)cmd->completionContext)++;
}

/* Nothing says when the agent's actor gets to run: an unknown command code is refused with
 * PROTOCOL before it registers and INVALID after (send_command rows 4 and 5). */
static void await_agent(fs *f) {
    uint32_t never = 0;
    for (int tries = 0;; tries++) {
        int calls = 0;
        VDS_Command probe = {
            .commandCode = 0, .completionRoutine = probe_routine, .completionContext = &calls};
        int rc = vdi_server_device_send_command(f->sdev[0], &probe);
        if (calls != 1)
            fail("%s: a refused probe made %d routine calls", phase_name(f), calls);
        if (rc == VD_E_INVALID && probe.completionCode == ERROR_INVALID_PARAMETER)
            return;
        if (rc != VD_E_PROTOCOL || probe.completionCode != ERROR_INVALID_HANDLE || tries > 1000)
            fail("%s: probe send returned %s (code %u)", phase_name(f), vdi_strerror(rc),
                 probe.completionCode);
        chaos_wait(f->e, &never, 0u, 1); /* 1 ms of virtual time */
    }
}

/* After an ERROR_IO_DEVICE, with nothing outstanding: a Write is refused with
 * VD_E_IO_ERROR, a ClearError is accepted and, completed with success, ends the state. */
static void io_test(fs *f, int d) {
    drain(f, d);
    if (f->endcode[d] != ERROR_IO_DEVICE)
        return;
    slot *s = free_slot(f, d, 1);
    int rc = send(f, s, VDC_Write, 0, 1, f->pos[d], -1);
    if (rc != VD_E_IO_ERROR)
        fail("backup: device %d: a Write after ERROR_IO_DEVICE returned %s", d, vdi_strerror(rc));
    rc = send(f, free_slot(f, d, 1), VDC_ClearError, 0, 0, CTL_POS, -1);
    if (rc != NOERROR)
        fail("backup: device %d: ClearError in the I/O-error state returned %s", d,
             vdi_strerror(rc));
    drain(f, d);
    rc = send(f, free_slot(f, d, 1), VDC_Flush, 0, 0, CTL_POS + 1, -1);
    if (rc != NOERROR)
        fail("backup: device %d: a Flush after a successful ClearError returned %s", d,
             vdi_strerror(rc));
    drain(f, d);
}

static void fill(fs *f, slot *s, const chunk *c, int k) {
    uint8_t pat[PATTERN];
    gen_pattern(pat, c->dev, k, c->seed);
    gen_fill(s->buf + c->off, c->size, pat);
    memcpy(f->expect[c->dev] + c->pos, s->buf + c->off, c->size);
}

static void server_backup(fs *f) {
    for (int i = 0; i < f->nback; i++) {
        const chunk *c = &f->back[i];
        int d = c->dev;
        slot *s = f->ended[d] ? NULL : free_slot(f, d, 0);
        if (!s)
            continue;
        fill(f, s, c, i);
        expect_sent(f, d, send(f, s, VDC_Write, c->off, c->size, c->pos, i));
        f->pos[d] = c->pos + c->size;
    }
    for (uint32_t d = 0; d < f->g.ndev; d++) {
        int wants = 0;
        for (int i = 0; i < f->nback; i++)
            wants |= f->back[i].dev == (int)d && (f->back[i].flags & 2);
        if (wants)
            io_test(f, (int)d);
    }
}

static void read_once(fs *f, int d, uint32_t off, uint32_t size, int ck) {
    slot *s = free_slot(f, d, 0);
    if (!s)
        return;
    if (f->ordinal[d] + 1 >= NREC)
        fail("restore: device %d never reached EOF in %u reads", d, f->ordinal[d]);
    expect_sent(f, d, send(f, s, VDC_Read, off, size, f->pos[d], ck));
    f->pos[d] += size;
}

static void server_restore(fs *f) {
    for (int i = 0; i < f->nrest; i++) {
        const chunk *c = &f->rest[i];
        if (!f->ended[c->dev])
            read_once(f, c->dev, c->off, c->size, i);
    }
    uint32_t room = f->g.bufsize < f->g.max_transfer ? f->g.bufsize : f->g.max_transfer;
    for (int more = 1; more;) { /* then whole buffers until every device ended */
        more = 0;
        for (uint32_t d = 0; d < f->g.ndev; d++) {
            if (f->ended[d])
                continue;
            read_once(f, (int)d, 0, room, -1);
            more = 1;
        }
    }
}

static void server_actor(void *arg) {
    fs *f = arg;
    for (uint32_t d = 0; d < f->g.ndev; d++) {
        int rc = vdi_server_set_open_device(f->server, f->devname[d], &f->sdev[d]);
        if (rc != NOERROR)
            fail("%s: server open_device(%s) returned %s", phase_name(f), f->devname[d],
                 vdi_strerror(rc));
    }
    await_agent(f);
    if (f->phase == BACKUP)
        server_backup(f);
    else
        server_restore(f);
    for (uint32_t d = 0; d < f->g.ndev; d++) {
        int rc = vdi_server_device_close(f->sdev[d]);
        if (rc != NOERROR)
            fail("%s: close_device %u returned %s", phase_name(f), d, vdi_strerror(rc));
    }
    drain(f, -1);
    while (!LOAD(&f->agent_done))
        chaos_wait(f->e, &f->agent_done, 0u, -1);
    if (f->agent_rc != NOERROR)
        fail("%s: the agent returned %s after a normal end", phase_name(f),
             vdi_strerror(f->agent_rc));
    int rc = vdi_server_set_close(f->server);
    if (rc != NOERROR)
        fail("%s: server close after the normal end returned %s", phase_name(f), vdi_strerror(rc));
}

/* ---- the client's device actors ---------------------------------------------------------- */

/* The next chunk of device d in the plan, from the client's cursor. */
static const chunk *next_chunk(fs *f, int d, const chunk *plan, int n, int *k) {
    for (uint32_t i = f->cursor[d]; i < (uint32_t)n; i++)
        if (plan[i].dev == d) {
            f->cursor[d] = i + 1;
            *k = (int)i;
            return &plan[i];
        }
    f->cursor[d] = (uint32_t)n;
    return NULL;
}

static void client_write(fs *f, int d, const VDC_Command *c, rec *r) {
    int k;
    const chunk *ck = next_chunk(f, d, f->back, f->nback, &k);
    if (!ck || c->position != ck->pos || (uint32_t)c->size != ck->size || !c->buffer)
        fail("backup: device %d: a Write of %d bytes at %lld is not the next chunk", d, c->size,
             (long long)c->position);
    uint8_t pat[PATTERN];
    gen_pattern(pat, d, k, ck->seed);
    uint32_t at = gen_diff(c->buffer, ck->size, pat);
    if (at < ck->size)
        fail("backup: device %d: the Write at %lld differs from the one sent near byte %u", d,
             (long long)c->position, at);
    r->flags = ck->flags;
    if (f->failed[d]) { /* a broken medium fails every later Write the same way */
        r->code = f->failed[d];
        r->bytes = 0;
        return;
    }
    if (f->stored[d] != c->position)
        fail("backup: device %d: a Write at %lld, the medium holds %u", d, (long long)c->position,
             f->stored[d]);
    static const uint32_t codes[] = {ERROR_IO_DEVICE,    ERROR_DISK_FULL,  ERROR_END_OF_MEDIA,
                                     ERROR_EOM_OVERFLOW, ERROR_HANDLE_EOF, ERROR_NOT_SUPPORTED};
    uint32_t n = ck->size;
    r->code = ERROR_SUCCESS;
    if (ck->outcome >= OUTCOME_FAIL_BACKUP) {
        r->code = codes[(ck->outcome - OUTCOME_FAIL_BACKUP) % 6];
        n = r->code == ERROR_END_OF_MEDIA ? (uint32_t)((uint64_t)n * (ck->outcome & 7u) / 8u) : 0;
        f->failed[d] = r->code;
    }
    memcpy(f->store[d] + f->stored[d], c->buffer, n);
    f->stored[d] += n;
    r->bytes = n;
}

static void client_read(fs *f, int d, const VDC_Command *c, rec *r) {
    int k;
    const chunk *ck = next_chunk(f, d, f->rest, f->nrest, &k);
    static const uint32_t codes[] = {ERROR_IO_DEVICE, ERROR_NO_DATA_DETECTED,
                                     ERROR_FILEMARK_DETECTED, ERROR_INVALID_PARAMETER};
    r->flags = ck ? ck->flags : 0;
    if (!c->buffer || c->size < 1 || c->position < 0)
        fail("restore: device %d: a Read of %d bytes at %lld without a usable buffer", d, c->size,
             (long long)c->position);
    if (ck && ck->outcome >= OUTCOME_FAIL_RESTORE) {
        r->code = codes[ck->outcome % 4];
        r->bytes = 0;
    } else if ((uint64_t)c->position >= f->stored[d]) {
        r->code = ERROR_HANDLE_EOF;
        r->bytes = 0;
    } else {
        uint64_t left = f->stored[d] - (uint64_t)c->position;
        r->code = ERROR_SUCCESS;
        r->bytes = left < (uint32_t)c->size ? (uint32_t)left : (uint32_t)c->size;
        memcpy(c->buffer, f->store[d] + c->position, r->bytes);
    }
}

/* Record what the client answers for a delivered command (before it completes it). */
static void client_take(fs *f, int d, const VDC_Command *c) {
    if (f->nrec[d] >= NREC)
        fail("%s: device %d: more than %d commands delivered", phase_name(f), d, NREC);
    rec *r = &f->recs[d][f->nrec[d]++];
    r->command = c->commandCode;
    r->position = c->position;
    if (c->commandCode == VDC_Write && f->phase == BACKUP) {
        client_write(f, d, c, r);
    } else if (c->commandCode == VDC_Read && f->phase == RESTORE) {
        client_read(f, d, c, r);
    } else if (c->commandCode == VDC_ClearError || c->commandCode == VDC_Flush) {
        if (c->buffer || c->position < CTL_POS)
            fail("%s: device %d: command %d delivered with a buffer or at %lld", phase_name(f), d,
                 c->commandCode, (long long)c->position);
        r->code = ERROR_SUCCESS;
        r->bytes = 0;
    } else {
        fail("%s: device %d: the client got command code %d, never sent", phase_name(f), d,
             c->commandCode);
    }
    if (r->code == ERROR_IO_DEVICE)
        f->io_completed[d] = 1;
    r->out = c->position + (int64_t)r->bytes;
    r->valid = 1;
}

static void complete_batch(fs *f, int d, VDC_Command **held, rec **recs, int *n) {
    int rev = *n > 0 && (recs[0]->flags & 1);
    for (int i = 0; i < *n; i++) {
        int j = rev ? *n - 1 - i : i;
        const rec *r = recs[j];
        int rc = vdi_client_device_complete_command(f->cdev[d], held[j], r->code, r->bytes,
                                                    (uint64_t)r->out);
        if (rc != NOERROR)
            fail("%s: device %d: complete_command returned %s", phase_name(f), d, vdi_strerror(rc));
    }
    *n = 0;
}

static void client_actor(void *arg) {
    dev_arg *a = arg;
    fs *f = a->f;
    int d = a->d;
    if (d == 0) { /* every device is opened before any get_command (no early normal end) */
        for (uint32_t i = 0; i < f->g.ndev; i++) {
            int rc = vdi_client_set_open_device(f->client, f->devname[i], &f->cdev[i]);
            if (rc != NOERROR)
                fail("%s: client open_device(%s) returned %s", phase_name(f), f->devname[i],
                     vdi_strerror(rc));
        }
        STORE(&f->opened, 1u);
        chaos_wake(f->e, &f->opened);
    }
    while (!LOAD(&f->opened))
        chaos_wait(f->e, &f->opened, 0u, -1);
    VDC_Command *held[DEPTH_MAX];
    rec *recs[DEPTH_MAX];
    int n = 0;
    for (;;) {
        VDC_Command *c;
        int rc = vdi_client_device_get_command(f->cdev[d], n ? 0 : VDI_INFINITE, &c);
        if (rc == VD_E_TIMEOUT && n) {
            complete_batch(f, d, held, recs, &n);
            continue;
        }
        if (rc == VD_E_CLOSE)
            break;
        if (rc != NOERROR)
            fail("%s: device %d: get_command returned %s", phase_name(f), d, vdi_strerror(rc));
        if (n >= DEPTH_MAX)
            fail("%s: device %d: more than %d commands delivered at once", phase_name(f), d,
                 DEPTH_MAX);
        client_take(f, d, c);
        held[n] = c;
        recs[n++] = &f->recs[d][f->nrec[d] - 1];
        if ((uint32_t)n >= f->g.hold)
            complete_batch(f, d, held, recs, &n);
    }
    complete_batch(f, d, held, recs, &n); /* still allowed after VD_E_CLOSE (VDI-SPEC 4) */
    VDC_Command *c;
    int rc = vdi_client_device_get_command(f->cdev[d], 0, &c);
    if (rc != VD_E_CLOSE)
        fail("%s: device %d: get_command after VD_E_CLOSE returned %s", phase_name(f), d,
             vdi_strerror(rc));
}

/* ---- one session -------------------------------------------------------------------------- */

#define SETUP(call)                                                                                \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_ != NOERROR)                                                                        \
            fail("%s setup: %s returned %s", phase_name(f), #call, vdi_strerror(rc_));             \
    } while (0)

static void setup(fs *f, uint8_t **bufs) {
    const geom *g = &f->g;
    uint32_t media = f->phase == BACKUP ? VDF_WriteMedia : VDF_ReadMedia;
    VDConfig cfg = {.deviceCount = g->ndev,
                    .features = (g->flags & 2) ? VDF_RequestComplete : 0,
                    .prefixZoneSize = g->prefix,
                    .alignment = g->calign};
    SETUP(vdi_client_set_create(f->client, f->name, &cfg));
    SETUP(vdi_server_set_open(f->server, NULL, f->name));
    uint32_t offer = media | ((g->flags & 1) ? VDF_CompleteEnabled : 0);
    SETUP(vdi_server_set_begin_configuration(f->server, offer, g->block, g->salign, g->max_transfer,
                                             0));
    SETUP(vdi_server_set_request_buffers(f->server, g->bufsize, 0, g->ndev * g->depth));
    SETUP(vdi_server_set_end_configuration(f->server));
    VDConfig got;
    SETUP(vdi_client_set_get_configuration(f->client, 0, &got));
    uint32_t want = cfg.features | media;
    if ((g->flags & 3) == 3)
        want |= VDF_CompleteEnabled;
    if (got.blockSize != g->block || got.maxTransferSize != g->max_transfer ||
        got.features != want || got.maxIODepth != VDI_MAX_IO_DEPTH || got.deviceCount != g->ndev)
        fail("%s: the client's configuration: block %u transfer %u features %#x depth %u "
             "devices %u",
             phase_name(f), got.blockSize, got.maxTransferSize, got.features, got.maxIODepth,
             got.deviceCount);
    for (uint32_t i = 0; i < g->ndev * g->depth; i++)
        SETUP(vdi_server_set_allocate_buffer(f->server, &bufs[i], g->bufsize, 0));
}

/* The trace: the decoded program, then each session's timeline (step, actor, point or note). */
static void print_program(const fs *f) {
    const geom *g = &f->g;
    printf("fuzz_stream: %u device(s), block %u, max transfer %u, depth %u, hold %u, buffer %u, "
           "flags %#x\n",
           g->ndev, g->block, g->max_transfer, g->depth, g->hold, g->bufsize, g->flags);
    static const char *const names[] = {"backup", "restore"};
    const chunk *const lists[] = {f->back, f->rest};
    const int counts[] = {f->nback, f->nrest};
    for (int p = 0; p < 2; p++)
        for (int i = 0; i < counts[p]; i++) {
            const chunk *c = &lists[p][i];
            printf("  %s chunk %d: device %d, %u bytes at buffer offset %u, position %lld, "
                   "outcome %u, flags %#x\n",
                   names[p], i, c->dev, c->size, c->off, (long long)c->pos, c->outcome, c->flags);
        }
}

static void print_timeline(const fs *f) {
    const chaos_event *ev;
    size_t n = chaos_events(f->e, &ev);
    printf("fuzz_stream %s: %zu events\n", phase_name(f), n);
    for (size_t i = 0; i < n; i++)
        printf("%6u %-14s %s%s\n", ev[i].step, chaos_actor_name(f->e, ev[i].actor),
               ev[i].note ? "    " : "", ev[i].point);
}

static void session(fs *f, int phase, const uint8_t *sched, size_t nsched) {
    f->phase = phase;
    memset(f->slots, 0, sizeof f->slots);
    memset(f->ordinal, 0, sizeof f->ordinal);
    memset(f->outstanding, 0, sizeof f->outstanding);
    memset(f->endcode, 0, sizeof f->endcode);
    memset(f->ended, 0, sizeof f->ended);
    memset(f->pos, 0, sizeof f->pos);
    memset(f->res, 0, sizeof f->res);
    memset(f->recs, 0, sizeof f->recs);
    memset(f->nrec, 0, sizeof f->nrec);
    memset(f->cursor, 0, sizeof f->cursor);
    memset(f->io_completed, 0, sizeof f->io_completed);
    memset(f->cdev, 0, sizeof f->cdev);
    memset(f->sdev, 0, sizeof f->sdev);
    f->cb_seq = f->agent_done = f->opened = 0;
    f->agent_rc = 0;

    chaos_config cfg = {.strategy = CHAOS_BYTES,
                        .bytes = sched,
                        .nbytes = nsched,
                        .record_events = f->trace,
                        .record_notes = f->trace};
    f->e = chaos_engine_new(&cfg);
    g_engine = f->e;
    f->client = vdi_client_set_new();
    f->server = vdi_server_set_new();
    if (!f->e || !f->client || !f->server)
        fail("out of memory");
    chaos_seams_install(f->e);
    chaos_ledger_init(&f->ledger, f->e, f->ledger_cmd, NSLOT, 0);
    uint8_t *bufs[NSLOT];
    setup(f, bufs);
    for (uint32_t i = 0; i < f->g.ndev * f->g.depth; i++) {
        slot *s = &f->slots[i];
        s->f = f;
        s->buf = bufs[i];
        s->dev = (int)(i / f->g.depth);
    }
    chaos_ledger_agent(&f->ledger, chaos_spawn(f->e, "agent", agent_actor, f));
    chaos_spawn(f->e, "server", server_actor, f);
    for (uint32_t d = 0; d < f->g.ndev; d++) {
        f->args[d] = (dev_arg){f, (int)d};
        chaos_spawn(f->e, "client-device", client_actor, &f->args[d]);
    }
    chaos_outcome out = chaos_run(f->e);
    if (out == CHAOS_DONE) /* every command sent got its one callback */
        chaos_ledger_check(&f->ledger, 0);
    if (f->trace)
        print_timeline(f);
    if (out != CHAOS_DONE || chaos_finding(f->e)[0]) {
        const char *text = chaos_finding(f->e);
        const char *nl = strchr(text, '\n');
        fprintf(stderr, "==fuzz_stream== %s: %.*s\n%s\n", phase_name(f),
                nl ? (int)(nl - text) : (int)strlen(text), text, nl ? nl + 1 : "");
        abort();
    }
    /* The client closes after the run: the unmap guard's quarantine is not hidden from
     * TSan, so views are unmapped by one actor (the server's) and the main thread only. */
    int rc = vdi_client_set_close(f->client);
    if (rc != NOERROR)
        fail("%s: client close after the normal end returned %s", phase_name(f), vdi_strerror(rc));
    chaos_seams_install(NULL);
    vdi_client_set_free(f->client);
    vdi_server_set_free(f->server);
    g_engine = NULL;
    chaos_engine_free(f->e);
    f->client = NULL;
    f->server = NULL;
    f->e = NULL;
}

/* What the backup committed per device: the Writes in send order while they succeeded in
 * full, then the bytes of the first one that did not; the client's medium must hold exactly
 * those bytes. */
static void check_backup(fs *f) {
    for (uint32_t d = 0; d < f->g.ndev; d++) {
        uint64_t len = 0;
        for (uint32_t k = 0; k < f->ordinal[d]; k++) {
            const res *r = &f->res[d][k];
            if (!r->valid)
                fail("backup: device %d: command %u never got its callback", d, k);
            if (r->command != VDC_Write)
                break;
            if (r->pos != (int64_t)len)
                fail("backup: device %d: Write %u at %lld after %llu committed bytes", d, k,
                     (long long)r->pos, (unsigned long long)len);
            len += r->bytes;
            if (r->code != ERROR_SUCCESS || r->bytes != r->size)
                break;
        }
        if (f->stored[d] != len || memcmp(f->store[d], f->expect[d], len) != 0)
            fail("backup: device %d: the client stored %u bytes, the server committed %llu%s", d,
                 f->stored[d], (unsigned long long)len,
                 f->stored[d] == len ? " (different bytes)" : "");
        f->expect_len[d] = (uint32_t)len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int swept; /* the sets that runs of this target which crashed left behind */
    if (!swept) {
        swept = 1;
        (void)vdi_seam_reclaim_dead("fuzz-stream-");
    }
    fuzz_input in;
    fuzz_input_init(&in, data, size);
    size_t nsched = fuzz_u16(&in);
    size_t left = size - in.pos;
    nsched %= left + 1;
    in.size = size - nsched; /* the program ends where the schedule begins */
    const uint8_t *sched = data + in.size;

    fs *f = calloc(1, sizeof *f);
    if (!f)
        fail("out of memory");
    decode(f, &in);
    f->trace = getenv("FUZZ_STREAM_TRACE") != NULL;
    if (f->trace)
        print_program(f);
    snprintf(f->name, sizeof f->name, "fuzz-stream-%ld", (long)getpid());
    for (uint32_t d = 0; d < f->g.ndev; d++) {
        if (d == 0)
            snprintf(f->devname[d], sizeof f->devname[d], "%s", f->name);
        else
            snprintf(f->devname[d], sizeof f->devname[d], "dev%u", d);
        f->store[d] = malloc(f->cap[d] + 1);
        f->expect[d] = malloc(f->cap[d] + 1);
        if (!f->store[d] || !f->expect[d])
            fail("out of memory");
    }
    session(f, BACKUP, sched, nsched);
    check_backup(f);
    session(f, RESTORE, sched, nsched);
    for (uint32_t d = 0; d < f->g.ndev; d++) {
        free(f->store[d]);
        free(f->expect[d]);
    }
    free(f);
    return 0;
}
