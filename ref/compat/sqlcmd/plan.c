/* plan.c: the plan format (PLAN.md): a tolerant line parser, the canonical printer and
 * the equality the round trip is checked with. Every number is read digit by digit with
 * an overflow check and a range, every line is read in place (no copy, no allocation), so
 * no input, however long or strange, can make the parser misbehave. */
#include "plan.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const kind_names[VDI_PLAN_KIND_END] = {"",    "abort", "close", "fail",
                                                          "die", "pause", "stall", "clearerror"};
static const char *const point_names[] = {"", "open", "configured", "end"};
static const char *const how_names[] = {"exit", "kill", "abort", "term"};

void vdi_plan_init(vdi_plan *p) {
    memset(p, 0, sizeof *p);
    p->flushes = -1;
    p->complete = -1;
}

/* ---- tokens: a line is [begin, end); tokens are runs of bytes other than space/tab */

typedef struct {
    const char *p, *end;
} cursor;

static int is_blank(char c) {
    return c == ' ' || c == '\t';
}

/* The next token into *t / *tn; 0 at the end of the line. */
static int next_token(cursor *c, const char **t, size_t *tn) {
    while (c->p < c->end && is_blank(*c->p))
        c->p++;
    if (c->p == c->end)
        return 0;
    *t = c->p;
    while (c->p < c->end && !is_blank(*c->p))
        c->p++;
    *tn = (size_t)(c->p - *t);
    return 1;
}

static int tok_is(const char *t, size_t tn, const char *word) {
    size_t n = strlen(word);
    return tn == n && memcmp(t, word, n) == 0;
}

/* A decimal number in [lo, hi]; at most 20 digits, checked for overflow. */
static int tok_u64(const char *t, size_t tn, uint64_t lo, uint64_t hi, uint64_t *out) {
    if (tn == 0 || tn > 20)
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < tn; i++) {
        if (t[i] < '0' || t[i] > '9')
            return 0;
        uint64_t d = (uint64_t)(t[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    if (v < lo || v > hi)
        return 0;
    *out = v;
    return 1;
}

static int is_pow2(uint64_t v) {
    return v && (v & (v - 1)) == 0;
}

typedef struct {
    char *buf;
    size_t cap;
} errbuf;

static int bad(errbuf *e, const char *fmt, ...) {
    if (e->cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->buf, e->cap, fmt, ap);
        va_end(ap);
    }
    return 0;
}

/* One number argument: `key VALUE`. */
static int arg_u64(cursor *c, errbuf *e, const char *key, uint64_t lo, uint64_t hi, uint64_t *out) {
    const char *t;
    size_t tn;
    if (!next_token(c, &t, &tn))
        return bad(e, "%s needs a number", key);
    if (!tok_u64(t, tn, lo, hi, out))
        return bad(e, "%s: not a number from %llu to %llu", key, (unsigned long long)lo,
                   (unsigned long long)hi);
    return 1;
}

static int end_of_line(cursor *c, errbuf *e) {
    const char *t;
    size_t tn;
    return next_token(c, &t, &tn) ? bad(e, "unexpected '%.*s'", (int)(tn > 32 ? 32 : tn), t) : 1;
}

/* A fault line after its keyword: `KEY VALUE` pairs in any order. */
static int parse_fault(cursor *c, errbuf *e, uint8_t kind, vdi_plan_fault *f) {
    memset(f, 0, sizeof *f);
    f->kind = kind;
    f->device = -1;
    int have_after = 0, have_code = 0, have_ms = 0;
    const char *t;
    size_t tn;
    uint64_t v;
    while (next_token(c, &t, &tn)) {
        if (tok_is(t, tn, "after") || (tok_is(t, tn, "at") && kind != VDI_PLAN_DIE)) {
            if (!arg_u64(c, e, "after", 1, UINT32_MAX, &v))
                return 0;
            f->after = (uint32_t)v;
            have_after = 1;
        } else if (tok_is(t, tn, "at")) { /* die at open|configured|end|N */
            const char *a;
            size_t an;
            if (!next_token(c, &a, &an))
                return bad(e, "die at needs open, configured, end or a command count");
            f->point = 0;
            for (uint8_t i = 1; i < 4; i++)
                if (tok_is(a, an, point_names[i]))
                    f->point = i;
            if (f->point == VDI_PLAN_AT_COMMAND) {
                if (!tok_u64(a, an, 1, UINT32_MAX, &v))
                    return bad(e, "die at: not open, configured, end or a command count");
                f->after = (uint32_t)v;
            }
            have_after = 1;
        } else if (tok_is(t, tn, "device")) {
            if (!arg_u64(c, e, "device", 0, VDI_PLAN_MAX_DEVICES - 1, &v))
                return 0;
            f->device = (int8_t)v;
        } else if (tok_is(t, tn, "code") && kind == VDI_PLAN_FAIL) {
            if (!arg_u64(c, e, "code", 1, UINT32_MAX, &v))
                return 0;
            f->code = (uint32_t)v;
            have_code = 1;
        } else if (tok_is(t, tn, "ms") && kind == VDI_PLAN_PAUSE) {
            if (!arg_u64(c, e, "ms", 0, VDI_PLAN_MAX_MS, &v))
                return 0;
            f->ms = (uint32_t)v;
            have_ms = 1;
        } else if (tok_is(t, tn, "how") && kind == VDI_PLAN_DIE) {
            const char *a;
            size_t an;
            int found = 0;
            if (next_token(c, &a, &an))
                for (uint8_t i = 0; i < 4; i++)
                    if (tok_is(a, an, how_names[i])) {
                        f->how = i;
                        found = 1;
                    }
            if (!found)
                return bad(e, "how: not exit, kill, abort or term");
        } else {
            return bad(e, "%s: unknown word '%.*s'", kind_names[kind], (int)(tn > 32 ? 32 : tn), t);
        }
    }
    if (!have_after)
        return bad(e, "%s needs %s", kind_names[kind], kind == VDI_PLAN_DIE ? "at" : "after");
    if (kind == VDI_PLAN_FAIL && !have_code)
        return bad(e, "fail needs code C");
    if (kind == VDI_PLAN_PAUSE && !have_ms)
        return bad(e, "pause needs ms M");
    if (kind == VDI_PLAN_DIE && f->point != VDI_PLAN_AT_COMMAND && f->device >= 0)
        return bad(e, "die at %s takes no device", point_names[f->point]);
    if (kind == VDI_PLAN_DIE && f->point != VDI_PLAN_AT_COMMAND)
        f->after = 0; /* the point says when */
    return 1;
}

/* One line (no newline in it). 1: a step or nothing (blank, comment); 0: not valid. */
static int parse_line(const char *b, const char *end, vdi_plan *p, errbuf *e) {
    while (end > b && (end[-1] == '\r' || is_blank(end[-1])))
        end--;
    for (const char *q = b; q < end; q++)
        if (!((unsigned char)*q >= 0x20 && (unsigned char)*q <= 0x7e) && *q != '\t')
            return bad(e, "byte 0x%02x is not printable ASCII", (unsigned)(unsigned char)*q);
    cursor c = {b, end};
    const char *t;
    size_t tn;
    uint64_t v;
    if (!next_token(&c, &t, &tn) || t[0] == '#')
        return 1;
    if (tok_is(t, tn, "vdichaos-plan")) {
        if (!arg_u64(&c, e, "vdichaos-plan", 1, 1, &v))
            return 0;
        return end_of_line(&c, e);
    }
    if (tok_is(t, tn, "statement")) {
        while (c.p < c.end && is_blank(*c.p))
            c.p++;
        size_t n = (size_t)(c.end - c.p);
        if (n == 0 || n >= VDI_PLAN_MAX_STATEMENT)
            return bad(e, "statement: 1 to %d bytes", VDI_PLAN_MAX_STATEMENT - 1);
        for (size_t i = 0; i < n; i++)
            if (c.p[i] == '\t')
                return bad(e, "statement: a tab (write spaces)");
        memcpy(p->statement, c.p, n);
        p->statement[n] = '\0';
        return 1;
    }
    if (tok_is(t, tn, "blocksize")) {
        if (!arg_u64(&c, e, "blocksize", 512, 65536, &v) || !end_of_line(&c, e))
            return 0;
        if (!is_pow2(v))
            return bad(e, "blocksize: a power of two");
        p->block_size = (uint32_t)v;
        return 1;
    }
    if (tok_is(t, tn, "maxtransfersize")) {
        if (!arg_u64(&c, e, "maxtransfersize", 65536, 4194304, &v) || !end_of_line(&c, e))
            return 0;
        if (v % 65536)
            return bad(e, "maxtransfersize: a multiple of 65536");
        p->max_transfer = (uint32_t)v;
        return 1;
    }
    if (tok_is(t, tn, "buffercount")) {
        if (!arg_u64(&c, e, "buffercount", 1, 4096, &v) || !end_of_line(&c, e))
            return 0;
        p->buffer_count = (uint32_t)v;
        return 1;
    }
    if (tok_is(t, tn, "dbsize")) {
        if (!arg_u64(&c, e, "dbsize", 1, VDI_PLAN_MAX_DB_SIZE, &v) || !end_of_line(&c, e))
            return 0;
        p->db_size = v;
        return 1;
    }
    if (tok_is(t, tn, "timeout") || tok_is(t, tn, "delay")) {
        int is_timeout = t[0] == 't';
        if (!arg_u64(&c, e, is_timeout ? "timeout" : "delay", is_timeout ? 1 : 0, VDI_PLAN_MAX_MS,
                     &v) ||
            !end_of_line(&c, e))
            return 0;
        *(is_timeout ? &p->timeout_ms : &p->delay_ms) = (uint32_t)v;
        return 1;
    }
    if (tok_is(t, tn, "flushes")) {
        if (!arg_u64(&c, e, "flushes", 0, 64, &v) || !end_of_line(&c, e))
            return 0;
        p->flushes = (int32_t)v;
        return 1;
    }
    if (tok_is(t, tn, "complete")) {
        const char *a;
        size_t an;
        if (!next_token(&c, &a, &an))
            return bad(e, "complete: auto, always or never");
        if (tok_is(a, an, "auto"))
            p->complete = -1;
        else if (tok_is(a, an, "never"))
            p->complete = 0;
        else if (tok_is(a, an, "always"))
            p->complete = 1;
        else
            return bad(e, "complete: auto, always or never");
        return end_of_line(&c, e);
    }
    if (tok_is(t, tn, "transfer")) { /* transfer DEVICE BYTES */
        uint64_t d;
        if (!arg_u64(&c, e, "transfer device", 0, VDI_PLAN_MAX_DEVICES - 1, &d) ||
            !arg_u64(&c, e, "transfer bytes", 512, 4194304, &v) || !end_of_line(&c, e))
            return 0;
        if (v % 512)
            return bad(e, "transfer: a multiple of 512 bytes");
        p->transfer[d] = (uint32_t)v;
        return 1;
    }
    if (tok_is(t, tn, "order")) { /* order DEVICE sequential|reverse */
        uint64_t d;
        const char *a;
        size_t an;
        if (!arg_u64(&c, e, "order device", 0, VDI_PLAN_MAX_DEVICES - 1, &d))
            return 0;
        if (!next_token(&c, &a, &an) || !(tok_is(a, an, "sequential") || tok_is(a, an, "reverse")))
            return bad(e, "order: sequential or reverse");
        p->reverse[d] = a[0] == 'r';
        return end_of_line(&c, e);
    }
    if (tok_is(t, tn, "shake")) { /* shake SEED [MAX_US] */
        uint64_t us = 1000;
        if (!arg_u64(&c, e, "shake seed", 1, UINT64_MAX, &v))
            return 0;
        const char *save = c.p;
        const char *a;
        size_t an;
        if (next_token(&c, &a, &an)) {
            c.p = save;
            if (!arg_u64(&c, e, "shake max_us", 1, 1000000, &us))
                return 0;
        }
        p->shake_seed = v;
        p->shake_max_us = (uint32_t)us;
        return end_of_line(&c, e);
    }
    if (tok_is(t, tn, "schedule")) { /* schedule random SEED | schedule pct DEPTH SEED [STEPS] */
        const char *a;
        size_t an;
        uint64_t depth = 0, steps = 0;
        if (!next_token(&c, &a, &an) || !(tok_is(a, an, "random") || tok_is(a, an, "pct")))
            return bad(e, "schedule: random SEED or pct DEPTH SEED [STEPS]");
        int pct = a[0] == 'p';
        if (pct && !arg_u64(&c, e, "schedule depth", 1, 8, &depth))
            return 0;
        if (!arg_u64(&c, e, "schedule seed", 0, UINT64_MAX, &v))
            return 0;
        const char *save = c.p;
        if (pct && next_token(&c, &a, &an)) {
            c.p = save;
            if (!arg_u64(&c, e, "schedule steps", 1, 100000000, &steps))
                return 0;
        }
        p->sched = pct ? 2 : 1;
        p->sched_depth = (uint8_t)depth;
        p->sched_seed = v;
        p->sched_steps = (uint32_t)steps;
        return end_of_line(&c, e);
    }
    for (uint8_t k = 1; k < VDI_PLAN_KIND_END; k++) {
        if (!tok_is(t, tn, kind_names[k]))
            continue;
        if (p->nfaults >= VDI_PLAN_MAX_FAULTS)
            return bad(e, "more than %d faults", VDI_PLAN_MAX_FAULTS);
        vdi_plan_fault f;
        if (!parse_fault(&c, e, k, &f))
            return 0;
        p->faults[p->nfaults++] = f;
        return 1;
    }
    return bad(e, "unknown step '%.*s'", (int)(tn > 32 ? 32 : tn), t);
}

int vdi_plan_parse(const char *text, size_t len, int strict, vdi_plan *out, char *err,
                   size_t errcap) {
    vdi_plan_init(out);
    if (errcap)
        err[0] = '\0';
    int skipped = 0;
    size_t line = 1;
    const char *p = text, *end = text + len;
    char why[160];
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        errbuf e = {why, sizeof why};
        why[0] = '\0';
        if (!parse_line(p, le, out, &e)) {
            if (skipped == 0 && errcap)
                snprintf(err, errcap, "line %zu: %s", line, why);
            if (strict)
                return -1;
            if (skipped < 0x7fffffff)
                skipped++;
        }
        line++;
        p = nl ? nl + 1 : end;
    }
    return skipped;
}

/* ---- printing */

typedef struct {
    char *buf;
    size_t cap, len;
} out;

static void put(out *o, const char *fmt, ...) {
    char tmp[VDI_PLAN_MAX_STATEMENT + 64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    for (int i = 0; i < n && (size_t)i < sizeof tmp - 1; i++, o->len++)
        if (o->len + 1 < o->cap)
            o->buf[o->len] = tmp[i];
    if (o->cap)
        o->buf[o->len < o->cap ? o->len : o->cap - 1] = '\0';
}

size_t vdi_plan_fault_print(const vdi_plan_fault *f, char *buf, size_t cap) {
    out o = {buf, cap, 0};
    if (cap)
        buf[0] = '\0';
    if (f->kind == 0 || f->kind >= VDI_PLAN_KIND_END)
        return 0;
    put(&o, "%s", kind_names[f->kind]);
    if (f->kind == VDI_PLAN_DIE) {
        if (f->point == VDI_PLAN_AT_COMMAND)
            put(&o, " at %u", f->after);
        else
            put(&o, " at %s", point_names[f->point < 4 ? f->point : 0]);
        put(&o, " how %s", how_names[f->how < 4 ? f->how : 0]);
    } else {
        put(&o, f->kind == VDI_PLAN_FAIL ? " at %u" : " after %u", f->after);
    }
    if (f->kind == VDI_PLAN_FAIL)
        put(&o, " code %u", f->code);
    if (f->kind == VDI_PLAN_PAUSE)
        put(&o, " ms %u", f->ms);
    if (f->device >= 0)
        put(&o, " device %d", f->device);
    return o.len;
}

size_t vdi_plan_print(const vdi_plan *p, char *buf, size_t cap) {
    out o = {buf, cap, 0};
    if (cap)
        buf[0] = '\0';
    put(&o, "vdichaos-plan 1\n");
    if (p->statement[0])
        put(&o, "statement %s\n", p->statement);
    if (p->block_size)
        put(&o, "blocksize %u\n", p->block_size);
    if (p->max_transfer)
        put(&o, "maxtransfersize %u\n", p->max_transfer);
    if (p->buffer_count)
        put(&o, "buffercount %u\n", p->buffer_count);
    if (p->db_size)
        put(&o, "dbsize %llu\n", (unsigned long long)p->db_size);
    if (p->timeout_ms)
        put(&o, "timeout %u\n", p->timeout_ms);
    if (p->delay_ms)
        put(&o, "delay %u\n", p->delay_ms);
    if (p->flushes >= 0)
        put(&o, "flushes %d\n", p->flushes);
    if (p->complete >= 0)
        put(&o, "complete %s\n", p->complete ? "always" : "never");
    for (int d = 0; d < VDI_PLAN_MAX_DEVICES; d++)
        if (p->transfer[d])
            put(&o, "transfer %d %u\n", d, p->transfer[d]);
    for (int d = 0; d < VDI_PLAN_MAX_DEVICES; d++)
        if (p->reverse[d])
            put(&o, "order %d reverse\n", d);
    if (p->shake_seed)
        put(&o, "shake %llu %u\n", (unsigned long long)p->shake_seed, p->shake_max_us);
    if (p->sched == 1)
        put(&o, "schedule random %llu\n", (unsigned long long)p->sched_seed);
    else if (p->sched == 2 && p->sched_steps)
        put(&o, "schedule pct %u %llu %u\n", p->sched_depth, (unsigned long long)p->sched_seed,
            p->sched_steps);
    else if (p->sched == 2)
        put(&o, "schedule pct %u %llu\n", p->sched_depth, (unsigned long long)p->sched_seed);
    for (uint32_t i = 0; i < p->nfaults && i < VDI_PLAN_MAX_FAULTS; i++) {
        char line[128];
        vdi_plan_fault_print(&p->faults[i], line, sizeof line);
        put(&o, "%s\n", line);
    }
    return o.len;
}

int vdi_plan_equal(const vdi_plan *a, const vdi_plan *b) {
    if (strcmp(a->statement, b->statement) != 0 || a->block_size != b->block_size ||
        a->max_transfer != b->max_transfer || a->buffer_count != b->buffer_count ||
        a->db_size != b->db_size || a->timeout_ms != b->timeout_ms || a->delay_ms != b->delay_ms ||
        a->flushes != b->flushes || a->complete != b->complete ||
        memcmp(a->transfer, b->transfer, sizeof a->transfer) != 0 ||
        memcmp(a->reverse, b->reverse, sizeof a->reverse) != 0 || a->shake_seed != b->shake_seed ||
        a->shake_max_us != b->shake_max_us || a->sched != b->sched ||
        a->sched_depth != b->sched_depth || a->sched_steps != b->sched_steps ||
        a->sched_seed != b->sched_seed || a->nfaults != b->nfaults)
        return 0;
    for (uint32_t i = 0; i < a->nfaults && i < VDI_PLAN_MAX_FAULTS; i++) {
        const vdi_plan_fault *x = &a->faults[i], *y = &b->faults[i];
        if (x->kind != y->kind || x->point != y->point || x->how != y->how ||
            x->device != y->device || x->after != y->after || x->code != y->code || x->ms != y->ms)
            return 0;
    }
    return 1;
}

int vdi_plan_benign(const vdi_plan *p) {
    for (uint32_t i = 0; i < p->nfaults && i < VDI_PLAN_MAX_FAULTS; i++) {
        uint8_t k = p->faults[i].kind;
        if (k != VDI_PLAN_PAUSE && k != VDI_PLAN_CLEARERROR)
            return 0;
    }
    return 1;
}
