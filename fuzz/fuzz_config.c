/* fuzz_config: configuration, device naming and buffer geometry, on one thread (no agent,
 * no commands). The input is a list of ops: create with a fuzzed VDConfig, instance and set
 * name (names of every length and byte), server open, begin_configuration, request_buffers,
 * query_available_buffers, end_configuration, both get_configurations, allocate_buffer,
 * free_buffer, is_shared_buffer, open_device on both sides with fuzzed names. Each result is
 * checked against VDI-SPEC sections 2.3 and 8.1-8.10 directly:
 * - the return code of every call (state, then parameters in signature order);
 * - both VDConfigs (8.7), the set alignment (8.8), the summed requests (8.9): what
 *   query_available_buffers answers before end_configuration it answers after, a MEMORY end
 *   discards the requests, every requested buffer can then be allocated at once;
 * - if query_available_buffers gives n, n allocations of that geometry succeed and the next
 *   returns VD_E_MEMORY (every allocation is preceded by a query);
 * - every allocation lies inside the area, its data zone aligned as promised at both sides'
 *   addresses, its prefix zone overlapping no other buffer, and the client sees the same
 *   bytes at its address (found through get_buffer_handle / map_buffer_handle);
 * - device names bind slots first-come, with the codes of 8.10;
 * - after both closes no shared object with the set's name is left in /dev/shm.
 * The side bases come from the map seam (the first mapping of each side is its control
 * block; the area follows it). A finding aborts with one line naming the op and the rule. */
#include <dirent.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_input.h"
#include "vdi/vdi.h"
#include "vdi/vdi_seams.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_OPS 96
#define MAX_BUFS 512
#define MAX_REQS 16
#define MAX_QUERIES 8
#define FILL_MAX 64
#define MAX_AREA ((uint64_t)VDI_MAX_AREA)

enum { CLIENT, SERVER };
enum { C_DNE, C_CONFIGURABLE, C_INITIALIZING, C_ACTIVE };
enum { S_DNE, S_CONNECTED, S_CONFIGURABLE, S_INITIALIZING, S_ACTIVE };

enum op {
    OP_CREATE,
    OP_OPEN,
    OP_BEGIN,
    OP_REQUEST,
    OP_QUERY,
    OP_END,
    OP_CLIENT_CONFIG,
    OP_SERVER_CONFIG,
    OP_ALLOCATE,
    OP_FILL,
    OP_FREE,
    OP_IS_SHARED,
    OP_SERVER_DEVICE,
    OP_CLIENT_DEVICE,
    OP_CHECK_CLIENT,
    OP_ALLOCATE_REQUESTED,
    OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
    "create",
    "server open",
    "begin_configuration",
    "request_buffers",
    "query",
    "end",
    "client get_configuration",
    "server get_configuration",
    "allocate",
    "fill",
    "free_buffer",
    "is_shared_buffer",
    "server device",
    "client device",
    "client view of buffers",
    "allocate requested",
};

typedef struct buf {
    uint8_t *p; /* server address of the data zone */
    uint32_t size, align, id;
} buf;

typedef struct req {
    uint32_t size, align, count;
} req;

typedef struct answer {
    uint32_t size, align, n;
} answer;

typedef struct fc {
    /* what the map seam saw, per side */
    uint8_t *ctl[2];
    size_t ctl_len[2];
    uint64_t mapped[2]; /* bytes of the area mapped */
    int side;           /* whose call is running */
    /* the objects and their states as the spec predicts them */
    vdi_client_set *client;
    vdi_server_set *server;
    int cstate, sstate;
    char stem[32];                       /* in every set name of this input: "fzc<pid>-" */
    char set_name[VDI_MAX_NAME + 8];     /* the name created */
    char instance[VDI_MAX_INSTANCE + 8]; /* the instance created ("" for NULL) */
    int has_instance;
    VDConfig given; /* create's configuration */
    uint32_t features, block, salign, max_transfer, set_align;
    uint64_t req_lo, req_hi; /* summed requests: without and with one alignment of slack */
    req reqs[MAX_REQS];
    int nreqs, reqs_lost; /* reqs_lost: more requests than remembered */
    answer queries[MAX_QUERIES];
    int nqueries;
    buf bufs[MAX_BUFS];
    int nbufs;
    uint32_t next_id;
    /* devices: slot names (first-come), who opened what */
    char dev_name[VDI_MAX_DEVICES][VDI_MAX_NAME + 1];
    int dev_bound[VDI_MAX_DEVICES];
    int s_open[VDI_MAX_DEVICES], c_open[VDI_MAX_DEVICES];
    /* the op being run */
    int op_index;
    const char *op_name;
    int trace; /* FUZZ_CONFIG_TRACE set: print every checked call */
} fc;

/* A name as far as it fits (the ones kept here were accepted, so they always fit). */
static void copy_name(char *dst, size_t cap, const char *src) {
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = 0;
}

__attribute__((format(printf, 2, 3), noreturn)) static void fail(const fc *f, const char *fmt,
                                                                 ...) {
    va_list ap;
    fprintf(stderr, "==fuzz_config== op %d (%s): ", f->op_index, f->op_name ? f->op_name : "?");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    abort();
}

static void expect(const fc *f, int rc, int want, const char *rule) {
    if (f->trace)
        fprintf(stderr, "fuzz_config: op %2d %-26s %-18s (%s)\n", f->op_index, f->op_name,
                vdi_strerror(rc), rule);
    if (rc != want)
        fail(f, "expected %s, got %s (%s)", vdi_strerror(want), vdi_strerror(rc), rule);
}

static void expect2(const fc *f, int rc, int a, int b, const char *rule) {
    if (f->trace)
        fprintf(stderr, "fuzz_config: op %2d %-26s %-18s (%s)\n", f->op_index, f->op_name,
                vdi_strerror(rc), rule);
    if (rc != a && rc != b)
        fail(f, "expected %s or %s, got %s (%s)", vdi_strerror(a), vdi_strerror(b),
             vdi_strerror(rc), rule);
}

/* ---- the map seam: where each side's control block and area are ---------------------- */

static void *fc_map(void *ctx, void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    fc *f = ctx;
    void *p = mmap(addr, len, prot, flags, fd, off);
    if (p == MAP_FAILED || !(flags & MAP_SHARED) || fd < 0)
        return p;
    int s = f->side;
    if (off == 0) {
        f->ctl[s] = p;
        f->ctl_len[s] = len;
        f->mapped[s] = 0;
    } else if (f->ctl[s] && (size_t)off >= f->ctl_len[s]) {
        uint64_t end = (uint64_t)off - f->ctl_len[s] + len;
        if (end > f->mapped[s])
            f->mapped[s] = end;
    }
    return p;
}

static uint8_t *area(const fc *f, int s) {
    return f->ctl[s] ? f->ctl[s] + f->ctl_len[s] : NULL;
}

/* ---- the rules ------------------------------------------------------------------------- */

static int pow2(uint64_t v) {
    return v && !(v & (v - 1));
}

/* 2.3: names 1-127 bytes in 0x20-0x7E without '\' or '/'; instances 1-16 such bytes. */
static int name_ok(const char *s, size_t max) {
    size_t n = strlen(s);
    if (n < 1 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7e || c == '/' || c == '\\')
            return 0;
    }
    return 1;
}

static int buffer_align_ok(uint32_t a) {
    return a == 0 || (pow2(a) && a <= VDI_MAX_ALIGNMENT);
}

static uint32_t eff_align(const fc *f, uint32_t a) {
    return a > f->set_align ? a : f->set_align;
}

/* ---- decoding helpers --------------------------------------------------------------------- */

/* A name of a fuzzed length and byte mix (no NUL: C strings). */
static void gen_name(fuzz_input *in, char *out, size_t cap, const char *prefix) {
    static const uint32_t lens[] = {1, 3, 8, 126, 127, 128, 0, 16, 17, 40};
    size_t p = strlen(prefix);
    size_t len = FUZZ_PICK(in, lens);
    if (len < p)
        len = len == 0 ? 0 : p;
    if (len + 1 > cap)
        len = cap - 1;
    memcpy(out, prefix, p < len ? p : len);
    uint32_t mix = fuzz_choice(in, 4); /* 0 letters, 1 printable, 2 one bad byte, 3 raw */
    uint8_t salt = fuzz_u8(in);
    uint8_t raw[16] = {0}; /* mix 3: 16 bytes, whatever the length (and the pid's digits) */
    for (int i = 0; mix == 3 && i < 16; i++)
        raw[i] = fuzz_u8(in);
    for (size_t i = p; i < len; i++) {
        uint8_t c = (uint8_t)('a' + (i * 7 + salt) % 26);
        if (mix == 1)
            c = (uint8_t)(0x20 + (i * 13 + salt) % 95);
        if (mix == 3)
            c = raw[(i - p) % 16] ? raw[(i - p) % 16] : 0x7f; /* no NUL in a C string */
        out[i] = (char)c;
    }
    if (mix == 2 && len > p) {
        static const char bad[] = {'/', '\\', 0x1f, 0x7f, (char)0x80, '\n'};
        out[p + salt % (len - p)] = bad[(salt >> 4) % sizeof bad];
    }
    out[len] = 0;
}

static uint32_t pick_size(fuzz_input *in) {
    static const uint32_t sizes[] = {4096,   1, 512,         65536,       5000,     65537, 131072,
                                     300000, 0, 0x80000000u, 0x80000001u, 1u << 30, 100};
    return FUZZ_PICK(in, sizes);
}

static uint32_t pick_align(fuzz_input *in) {
    static const uint32_t aligns[] = {0, 0, 512, 4096, 65536, 3, 131072, 1, 2, 8192, 256};
    return FUZZ_PICK(in, aligns);
}

/* ---- the device table model (section 4 and 8.10) -------------------------------------- */

/* The slot a name binds to, binding it if new and a slot is free; -1 if it cannot bind. */
static int bind_slot(fc *f, const char *name, int do_bind) {
    if (strcmp(name, f->set_name) == 0)
        return 0;
    int free_slot = -1;
    for (uint32_t i = 1; i < f->given.deviceCount; i++) {
        if (f->dev_bound[i] && strcmp(f->dev_name[i], name) == 0)
            return (int)i;
        if (!f->dev_bound[i] && free_slot < 0)
            free_slot = (int)i;
    }
    if (free_slot >= 0 && do_bind) {
        copy_name(f->dev_name[free_slot], sizeof f->dev_name[free_slot], name);
        f->dev_bound[free_slot] = 1;
    }
    return free_slot;
}

static const char *pick_dev_name(fc *f, fuzz_input *in, char *scratch, size_t cap) {
    uint32_t c = fuzz_choice(in, 8);
    if (c == 0 || c == 1)
        return f->set_name;
    if (c < 6) {
        snprintf(scratch, cap, "dev%u", c - 2);
        return scratch;
    }
    gen_name(in, scratch, cap, c == 6 ? "d" : "");
    return scratch;
}

/* ---- ops: client ---------------------------------------------------------------------------- */

static void op_create(fc *f, fuzz_input *in) {
    static const char *const insts[] = {
        NULL, NULL, NULL, "inst", "", "abcdefghijklmnop", "abcdefghijklmnopq", "a/b"};
    const char *inst = FUZZ_PICK(in, insts);
    char name[VDI_MAX_NAME + 8];
    uint32_t nsel = fuzz_choice(in, 4);
    if (nsel < 3) {
        snprintf(name, sizeof name, "%s%u", f->stem, nsel);
    } else {
        gen_name(in, name, sizeof name, f->stem);
    }
    static const uint32_t ndevs[] = {1, 2, 3, 4, 64, 0, 65, 0xffffffffu};
    static const uint32_t feats[] = {0,
                                     VDF_RequestComplete,
                                     VDF_LikeTape,
                                     VDF_LikeDisk,
                                     0x3FF3u,
                                     VDF_LatchStats,
                                     VDF_WriteMedia,
                                     0x4000,
                                     VDF_ReadMedia,
                                     0x80003FF3u};
    static const uint32_t prefixes[] = {0, 0, 64, 512, 65536, 65537, 4096, 1};
    static const uint32_t aligns[] = {0, 0, 512, 4096, 65536, 3, 131072, 1, 8};
    VDConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.deviceCount = FUZZ_PICK(in, ndevs);
    cfg.features = FUZZ_PICK(in, feats);
    cfg.prefixZoneSize = FUZZ_PICK(in, prefixes);
    cfg.alignment = FUZZ_PICK(in, aligns);
    cfg.softFileMarkBlockSize = fuzz_u8(in);
    cfg.EOMWarningSize = fuzz_u8(in);
    uint32_t junk = fuzz_u8(in) * 0x01010101u; /* fields 7-10 are ignored (8.6) */
    cfg.blockSize = cfg.maxIODepth = cfg.maxTransferSize = cfg.bufferAreaSize = junk;
    VDConfig given = cfg;
    f->side = CLIENT;
    int rc = vdi_client_set_create_ex(f->client, inst, name, &cfg);
    int want = NOERROR;
    const char *rule = "8.6";
    if (f->cstate != C_DNE) {
        want = VD_E_PROTOCOL;
        rule = "3: create on a created object";
    } else if (inst && !name_ok(inst, VDI_MAX_INSTANCE)) {
        want = VD_E_INSTANCE_NAME;
        rule = "8.2 instance name";
    } else if (!name_ok(name, VDI_MAX_NAME)) {
        want = VD_E_INVALID;
        rule = "8.2 set name";
    } else if (cfg.deviceCount == 0 || cfg.deviceCount > VDI_MAX_DEVICES ||
               (cfg.features & ~VDF_ClientRequestable) || !buffer_align_ok(cfg.alignment) ||
               cfg.prefixZoneSize > 65536) {
        want = VD_E_NOTSUPPORTED;
        rule = "8.6 configuration";
    }
    expect(f, rc, want, rule);
    if (memcmp(&cfg, &given, sizeof cfg) != 0)
        fail(f, "create changed the caller's VDConfig");
    if (rc != NOERROR)
        return;
    f->cstate = C_CONFIGURABLE;
    copy_name(f->set_name, sizeof f->set_name, name);
    f->has_instance = inst != NULL;
    snprintf(f->instance, sizeof f->instance, "%s", inst ? inst : "");
    f->given = given;
    memset(f->dev_bound, 0, sizeof f->dev_bound);
    f->dev_bound[0] = 1;
    copy_name(f->dev_name[0], sizeof f->dev_name[0], name);
}

/* 8.7: the client's VDConfig after get_configuration. */
static void check_client_cfg(fc *f, const VDConfig *c) {
    const VDConfig *g = &f->given;
    uint32_t want = g->features | (f->features & (VDF_WriteMedia | VDF_ReadMedia));
    if ((f->features & VDF_CompleteEnabled) && (g->features & VDF_RequestComplete))
        want |= VDF_CompleteEnabled;
    if (c->deviceCount != g->deviceCount || c->prefixZoneSize != g->prefixZoneSize ||
        c->alignment != g->alignment || c->softFileMarkBlockSize != g->softFileMarkBlockSize ||
        c->EOMWarningSize != g->EOMWarningSize || c->serverTimeOut != g->serverTimeOut)
        fail(f, "client VDConfig fields 0-6 are not the ones given to create (8.7)");
    if (c->features != want)
        fail(f, "client features %#x, expected %#x (8.7)", c->features, want);
    if (c->blockSize != f->block || c->maxIODepth != VDI_MAX_IO_DEPTH ||
        c->maxTransferSize != f->max_transfer)
        fail(f, "client blockSize %u maxIODepth %u maxTransferSize %u, negotiated %u 4 %u (8.7)",
             c->blockSize, c->maxIODepth, c->maxTransferSize, f->block, f->max_transfer);
    if (c->bufferAreaSize != f->mapped[SERVER])
        fail(f, "client bufferAreaSize %u, the area is %llu bytes (8.7)", c->bufferAreaSize,
             (unsigned long long)f->mapped[SERVER]);
    if (f->mapped[CLIENT] < c->bufferAreaSize)
        fail(f, "client bufferAreaSize %u but only %llu bytes mapped", c->bufferAreaSize,
             (unsigned long long)f->mapped[CLIENT]);
}

static void op_client_config(fc *f) {
    VDConfig c;
    memset(&c, 0x5a, sizeof c);
    VDConfig before = c;
    f->side = CLIENT;
    int rc = vdi_client_set_get_configuration(f->client, 0, &c);
    if (f->cstate == C_DNE)
        expect(f, rc, VD_E_PROTOCOL, "3: get_configuration before create");
    else if (f->sstate < S_INITIALIZING)
        expect(f, rc, VD_E_TIMEOUT, "3: not configured yet, timeout 0");
    else
        expect(f, rc, NOERROR, "3: configured");
    if (rc != NOERROR) {
        if (memcmp(&c, &before, sizeof c) != 0)
            fail(f, "a failed get_configuration changed *cfg (8.1)");
        return;
    }
    check_client_cfg(f, &c);
    if (f->cstate == C_CONFIGURABLE)
        f->cstate = C_INITIALIZING;
}

static void op_client_device(fc *f, fuzz_input *in) {
    char scratch[VDI_MAX_NAME + 8];
    const char *name = pick_dev_name(f, in, scratch, sizeof scratch);
    vdi_client_device *d = (vdi_client_device *)f;
    f->side = CLIENT;
    int rc = vdi_client_set_open_device(f->client, name, &d);
    if (rc != NOERROR && d != NULL)
        fail(f, "a failed client open_device left *out non-NULL (2)");
    if (f->cstate < C_INITIALIZING) {
        expect(f, rc, VD_E_PROTOCOL, "3: client open_device before get_configuration");
        return;
    }
    uint32_t held = 0;
    for (uint32_t i = 0; i < f->given.deviceCount; i++)
        held += (uint32_t)f->c_open[i];
    if (!name_ok(name, VDI_MAX_NAME)) {
        if (held == f->given.deviceCount)
            expect2(f, rc, VD_E_OPEN, VD_E_INVALID, "8.10 every device held / 8.2 bad name");
        else
            expect(f, rc, VD_E_INVALID, "8.2 bad device name");
        return;
    }
    int slot = bind_slot(f, name, 0);
    int bound =
        slot == 0 || (slot > 0 && f->dev_bound[slot] && strcmp(f->dev_name[slot], name) == 0);
    if (bound && f->c_open[slot]) {
        expect(f, rc, VD_E_PROTOCOL, "8.10 a device this object already opened");
        return;
    }
    if (!bound && held == f->given.deviceCount) {
        expect(f, rc, VD_E_OPEN, "8.10 every device held");
        return;
    }
    if (!bound && slot < 0) {
        expect(f, rc, VD_E_INVALID, "8.10 a name that cannot bind");
        return;
    }
    expect(f, rc, NOERROR, "4: device names bind free slots first-come");
    slot = bind_slot(f, name, 1);
    f->c_open[slot] = 1;
    f->cstate = C_ACTIVE;
}

/* ---- ops: server --------------------------------------------------------------------------- */

static void op_open(fc *f, fuzz_input *in) {
    static const char *const insts[] = {NULL, "", "inst", "x/y"};
    uint32_t isel = fuzz_choice(in, 5); /* 0: the instance of the set created */
    const char *inst = isel == 0 ? (f->has_instance ? f->instance : NULL) : insts[isel - 1];
    char name[VDI_MAX_NAME + 8];
    uint32_t nsel = fuzz_choice(in, 4);
    if (nsel == 0 || nsel == 1)
        snprintf(name, sizeof name, "%s", f->set_name[0] ? f->set_name : "none");
    else if (nsel == 2)
        snprintf(name, sizeof name, "%sother", f->stem);
    else
        gen_name(in, name, sizeof name, f->stem);
    f->side = SERVER;
    int rc = vdi_server_set_open(f->server, inst, name);
    int same_inst = (inst == NULL && !f->has_instance) ||
                    (inst != NULL && f->has_instance && strcmp(inst, f->instance) == 0);
    int want;
    const char *rule;
    if (f->sstate != S_DNE) {
        want = VD_E_PROTOCOL;
        rule = "3: open on an open server object";
    } else if (inst && !name_ok(inst, VDI_MAX_INSTANCE)) {
        want = VD_E_INSTANCE_NAME;
        rule = "8.2 instance name";
    } else if (!name_ok(name, VDI_MAX_NAME)) {
        want = VD_E_INVALID;
        rule = "8.2 set name";
    } else if (f->cstate == C_DNE || !same_inst || strcmp(name, f->set_name) != 0) {
        want = VD_E_INVALID;
        rule = "8.4 no set of that name in that instance";
    } else {
        want = NOERROR;
        rule = "3: open";
    }
    expect(f, rc, want, rule);
    if (rc == NOERROR)
        f->sstate = S_CONNECTED;
}

static void op_begin(fc *f, fuzz_input *in) {
    static const uint32_t feats[] = {VDF_WriteMedia,
                                     VDF_ReadMedia,
                                     VDF_WriteMedia | VDF_CompleteEnabled,
                                     VDF_ReadMedia | VDF_CompleteEnabled,
                                     0,
                                     VDF_WriteMedia | VDF_ReadMedia,
                                     VDF_Removable | VDF_WriteMedia,
                                     VDF_CompleteEnabled};
    static const uint32_t blocks[] = {512, 4096, 65536, 1024, 0, 513, 131072, 256, 2048, 32768};
    static const uint32_t transfers[] = {65536,      131072,      0,           1000,
                                         65536 * 16, 0x7fff0000u, 0xffff0000u, 65537};
    uint32_t features = FUZZ_PICK(in, feats);
    uint32_t block = FUZZ_PICK(in, blocks);
    uint32_t asel = fuzz_choice(in, 6);
    uint32_t align = asel == 0   ? 0
                     : asel == 1 ? block
                     : asel == 2 ? 65536u
                     : asel == 3 ? block / 2
                     : asel == 4 ? 3u
                                 : 131072u;
    uint32_t mt = FUZZ_PICK(in, transfers);
    long timeout = (long)fuzz_choice(in, 3) - 1;
    f->side = SERVER;
    int rc = vdi_server_set_begin_configuration(f->server, features, block, align, mt, timeout);
    uint32_t media = features & ~VDF_CompleteEnabled;
    if (f->sstate != S_CONNECTED) {
        expect(f, rc, VD_E_PROTOCOL, "3: begin_configuration outside Connected");
        return;
    }
    int bad = (media != VDF_WriteMedia && media != VDF_ReadMedia) ||
              !(pow2(block) && block >= VDI_MIN_BLOCK_SIZE && block <= VDI_MAX_BLOCK_SIZE) ||
              (align && !(pow2(align) && align >= block && align <= VDI_MAX_ALIGNMENT)) ||
              mt == 0 || mt % VDI_TRANSFER_UNIT;
    if (bad) {
        expect(f, rc, VD_E_INVALID, "8.5 begin_configuration parameters");
        return;
    }
    if (mt > VDI_MAX_AREA) /* the reference's documented choice: larger than any area */
        expect2(f, rc, NOERROR, VD_E_INVALID, "8.5 max transfer above VDI_MAX_AREA");
    else
        expect(f, rc, NOERROR, "8.5 valid parameters");
    if (rc != NOERROR)
        return;
    f->sstate = S_CONFIGURABLE;
    f->features = features;
    f->block = block;
    f->salign = align;
    f->max_transfer = mt;
    uint32_t sa = align ? align : block;
    f->set_align = f->given.alignment > sa ? f->given.alignment : sa; /* 8.8 */
    f->req_lo = f->req_hi = 0;
    f->nreqs = f->reqs_lost = 0;
    f->nqueries = 0;
}

static uint64_t sat_add(uint64_t a, uint64_t b) {
    return a + b < a ? UINT64_MAX : a + b;
}

static uint64_t sat_mul(uint64_t a, uint64_t b) {
    return b && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

static uint64_t round64k(uint64_t v) {
    return v > UINT64_MAX - 65535 ? UINT64_MAX : (v + 65535) / 65536 * 65536;
}

static void remember_request(fc *f, uint32_t size, uint32_t align, uint32_t count) {
    if (f->nreqs < MAX_REQS && count <= 16)
        f->reqs[f->nreqs++] = (req){size, align, count};
    else
        f->reqs_lost = 1;
}

static uint32_t query(fc *f, uint32_t size, uint32_t align, int *rcp);

static void op_request(fc *f, fuzz_input *in) {
    static const uint32_t counts[] = {1, 2, 3, 4, 8, 16, 0, 0xffffffffu};
    uint32_t size = pick_size(in);
    uint32_t align = pick_align(in);
    uint32_t count = FUZZ_PICK(in, counts);
    uint64_t now = f->mapped[SERVER];
    f->side = SERVER;
    int rc = vdi_server_set_request_buffers(f->server, size, align, count);
    if (f->sstate < S_CONFIGURABLE) {
        expect(f, rc, VD_E_PROTOCOL, "3: request_buffers before begin_configuration");
        return;
    }
    if (size == 0 || !buffer_align_ok(align) || count == 0) {
        expect(f, rc, VD_E_INVALID, "8.9 size 0, count 0 or a bad alignment");
        return;
    }
    uint64_t prefix = f->given.prefixZoneSize, a = eff_align(f, align);
    uint64_t lo = sat_mul(prefix + size, count), hi = sat_mul(prefix + size + a, count);
    if (f->sstate == S_CONFIGURABLE) {
        expect(f, rc, NOERROR, "8.9 requests during configuration are summed and never fail");
        f->req_lo = sat_add(f->req_lo, lo);
        f->req_hi = sat_add(f->req_hi, hi);
        remember_request(f, size, align, count);
        f->nqueries = 0; /* the summed area changed */
        return;
    }
    if (sat_add(now, lo) > MAX_AREA)
        expect(f, rc, VD_E_MEMORY, "8.9 the grown area would exceed VDI_MAX_AREA");
    else if (round64k(sat_add(now, hi)) <= MAX_AREA)
        expect(f, rc, NOERROR, "8.9 growth within VDI_MAX_AREA");
    else
        expect2(f, rc, NOERROR, VD_E_MEMORY, "8.9 growth near VDI_MAX_AREA");
    if (rc != NOERROR)
        return;
    if (f->mapped[SERVER] < sat_add(now, lo))
        fail(f, "request_buffers(%u, %u, %u) grew the area from %llu to %llu bytes only", size,
             align, count, (unsigned long long)now, (unsigned long long)f->mapped[SERVER]);
    remember_request(f, size, align, count);
    if (f->nbufs == 0) { /* an empty area now holds them all */
        int qrc;
        uint32_t n = query(f, size, align, &qrc);
        if (n < count)
            fail(f, "after request_buffers(%u, %u, %u) only %u fit (8.9)", size, align, count, n);
    }
}

/* query_available_buffers with its state and parameter rules; the count, or 0. */
static uint32_t query(fc *f, uint32_t size, uint32_t align, int *rcp) {
    uint32_t n = 0xdeadbeef;
    f->side = SERVER;
    int rc = vdi_server_set_query_available_buffers(f->server, size, align, &n);
    *rcp = rc;
    if (rc != NOERROR && n != 0)
        fail(f, "a failed query_available_buffers left *count %u (2)", n);
    if (f->sstate < S_CONFIGURABLE)
        expect(f, rc, VD_E_PROTOCOL, "3: query before begin_configuration");
    else if (size == 0 || !buffer_align_ok(align))
        expect(f, rc, VD_E_INVALID, "8.9 size 0 or a bad alignment");
    else
        expect(f, rc, NOERROR, "8.9 query");
    if (rc != NOERROR)
        return 0;
    uint64_t room = f->sstate == S_CONFIGURABLE ? round64k(f->req_hi) : f->mapped[SERVER];
    if ((uint64_t)n * size > room)
        fail(f, "query_available_buffers(%u, %u) gave %u, more than %llu bytes hold", size, align,
             n, (unsigned long long)room);
    return n;
}

static void op_query(fc *f, fuzz_input *in) {
    uint32_t size = pick_size(in), align = pick_align(in);
    int rc;
    uint32_t n = query(f, size, align, &rc);
    if (rc == NOERROR && f->sstate == S_CONFIGURABLE && f->nqueries < MAX_QUERIES)
        f->queries[f->nqueries++] = (answer){size, align, n};
}

static void op_end(fc *f) {
    f->side = SERVER;
    int rc = vdi_server_set_end_configuration(f->server);
    if (f->sstate != S_CONFIGURABLE) {
        expect(f, rc, VD_E_PROTOCOL, "3: end_configuration outside Configurable");
        return;
    }
    if (f->req_lo > MAX_AREA)
        expect(f, rc, VD_E_MEMORY, "8.9 the summed requests exceed VDI_MAX_AREA");
    else if (round64k(f->req_hi) <= MAX_AREA)
        expect(f, rc, NOERROR, "8.9 the summed requests fit");
    else
        expect2(f, rc, NOERROR, VD_E_MEMORY, "8.9 the summed requests near VDI_MAX_AREA");
    if (rc != NOERROR) { /* discarded: the area the requests would give is empty now */
        f->req_lo = f->req_hi = 0;
        f->nreqs = f->reqs_lost = 0;
        f->nqueries = 0;
        int qrc;
        uint32_t n = query(f, 4096, 0, &qrc);
        if (n != 0)
            fail(f, "after a MEMORY end_configuration a query still finds %u buffers (8.9)", n);
        return;
    }
    f->sstate = S_INITIALIZING;
    if (f->mapped[SERVER] < f->req_lo)
        fail(f, "the area is %llu bytes, the requests need %llu (8.9)",
             (unsigned long long)f->mapped[SERVER], (unsigned long long)f->req_lo);
    for (int i = 0; i < f->nqueries; i++) { /* 8.9: the area the summed requests would give */
        const answer *q = &f->queries[i];
        int qrc;
        uint32_t n = query(f, q->size, q->align, &qrc);
        if (n != q->n)
            fail(f, "query(%u, %u) gave %u before end_configuration, %u after (8.9)", q->size,
                 q->align, q->n, n);
    }
    f->nqueries = 0;
}

static void op_server_config(fc *f) {
    VDConfig c;
    memset(&c, 0xa5, sizeof c);
    f->side = SERVER;
    int rc = vdi_server_set_get_configuration(f->server, &c);
    if (f->sstate == S_DNE) {
        expect(f, rc, VD_E_PROTOCOL, "3: server get_configuration before open");
        return;
    }
    expect(f, rc, NOERROR, "3: server get_configuration");
    const VDConfig *g = &f->given;
    if (c.deviceCount != g->deviceCount || c.features != g->features ||
        c.prefixZoneSize != g->prefixZoneSize || c.alignment != g->alignment ||
        c.softFileMarkBlockSize != g->softFileMarkBlockSize ||
        c.EOMWarningSize != g->EOMWarningSize || c.serverTimeOut != g->serverTimeOut)
        fail(f, "server VDConfig fields 0-6 are not the client's (8.7)");
    int init = f->sstate >= S_INITIALIZING;
    uint32_t b = init ? f->block : 0, d = init ? VDI_MAX_IO_DEPTH : 0;
    uint32_t t = init ? f->max_transfer : 0;
    uint64_t a = init ? f->mapped[SERVER] : 0;
    if (c.blockSize != b || c.maxIODepth != d || c.maxTransferSize != t || c.bufferAreaSize != a)
        fail(f, "server VDConfig fields 7-10 are %u %u %u %u, expected %u %u %u %llu (8.7)",
             c.blockSize, c.maxIODepth, c.maxTransferSize, c.bufferAreaSize, b, d, t,
             (unsigned long long)a);
}

/* ---- buffers -------------------------------------------------------------------------------- */

static void stamp(const buf *b) {
    uint32_t n = b->size < 64 ? b->size : 64;
    memset(b->p, (int)(0x40 + b->id % 128), n);
    memset(b->p + b->size - n, (int)(0xc0 ^ b->id % 64), n);
}

/* Geometry of a new buffer: inside the area, aligned, its prefix zone clear of every other. */
static void check_placement(fc *f, const buf *b) {
    uint8_t *base = area(f, SERVER);
    uint64_t prefix = f->given.prefixZoneSize;
    if (!base || b->p < base + prefix || (uint64_t)(b->p - base) + b->size > f->mapped[SERVER])
        fail(f, "buffer of %u bytes at area offset %lld is outside the %llu-byte area", b->size,
             base ? (long long)(b->p - base) : -1LL, (unsigned long long)f->mapped[SERVER]);
    uint32_t a = eff_align(f, b->align);
    if ((uintptr_t)b->p % a != 0)
        fail(f, "buffer at %p is not aligned to %u (8.8, 4)", (void *)b->p, a);
    for (int i = 0; i < f->nbufs; i++) {
        const buf *o = &f->bufs[i];
        if (o == b)
            continue;
        const uint8_t *s1 = b->p - prefix, *e1 = b->p + b->size;
        const uint8_t *s2 = o->p - prefix, *e2 = o->p + o->size;
        if (s1 < e2 && s2 < e1)
            fail(f, "buffers %u and %u overlap with their prefix zones (4)", b->id, o->id);
    }
}

/* allocate_buffer after a query of the same geometry: success exactly when it said >= 1. */
static buf *allocate(fc *f, uint32_t size, uint32_t align, uint32_t avail) {
    uint8_t *p = (uint8_t *)f;
    f->side = SERVER;
    int rc = vdi_server_set_allocate_buffer(f->server, &p, size, align);
    if (rc != NOERROR && p != NULL)
        fail(f, "a failed allocate_buffer left *buffer non-NULL (2)");
    if (f->sstate < S_INITIALIZING) {
        expect(f, rc, VD_E_PROTOCOL, "3: allocate_buffer before end_configuration");
        return NULL;
    }
    if (size == 0 || size > (1u << 31) || !buffer_align_ok(align)) {
        expect(f, rc, VD_E_INVALID, "4: allocate_buffer size or alignment");
        return NULL;
    }
    if (avail == 0)
        expect(f, rc, VD_E_MEMORY, "4: query said no such buffer fits");
    else if (f->nbufs >= MAX_BUFS)
        expect2(f, rc, NOERROR, VD_E_MEMORY, "harness: too many buffers to follow");
    else
        expect(f, rc, NOERROR, "4: query said it fits");
    if (rc != NOERROR)
        return NULL;
    if (f->nbufs >= MAX_BUFS) { /* not followed: give it back */
        if (vdi_server_set_free_buffer(f->server, p, size) != NOERROR)
            fail(f, "free_buffer of a fresh buffer failed");
        return NULL;
    }
    buf *b = &f->bufs[f->nbufs++];
    *b = (buf){p, size, align, f->next_id++};
    check_placement(f, b);
    stamp(b);
    return b;
}

static void op_allocate(fc *f, fuzz_input *in) {
    uint32_t size = pick_size(in), align = pick_align(in);
    uint32_t avail = 1;
    if (f->sstate >= S_CONFIGURABLE && size && buffer_align_ok(align)) {
        int rc;
        avail = query(f, size, align, &rc);
    }
    allocate(f, size, align, avail);
}

/* 4: if the query gives n, the next n allocations succeed and the one after is MEMORY. */
static void op_fill(fc *f, fuzz_input *in) {
    uint32_t size = pick_size(in), align = pick_align(in);
    if (f->sstate < S_INITIALIZING || size == 0 || size > (1u << 31) || !buffer_align_ok(align))
        return;
    int rc;
    uint32_t n = query(f, size, align, &rc);
    if (n > FILL_MAX || f->nbufs + (int)n >= MAX_BUFS)
        return;
    for (uint32_t i = 0; i < n; i++)
        if (!allocate(f, size, align, 1))
            fail(f, "allocation %u of the %u the query promised failed", i + 1, n);
    allocate(f, size, align, 0);
}

static void forget(fc *f, int i) {
    f->bufs[i] = f->bufs[--f->nbufs];
}

static void op_free(fc *f, fuzz_input *in) {
    uint32_t variant = fuzz_choice(in, 4); /* exact, size + 1, address + 1, every buffer */
    uint8_t which = fuzz_u8(in);           /* read whatever the state: a fixed layout */
    if (f->nbufs == 0 || f->sstate < S_INITIALIZING)
        return;
    if (variant == 3) {
        while (f->nbufs) {
            f->side = SERVER;
            expect(f, vdi_server_set_free_buffer(f->server, f->bufs[0].p, f->bufs[0].size), NOERROR,
                   "4: free_buffer of a live buffer");
            forget(f, 0);
        }
        return;
    }
    int i = (int)(which % (uint32_t)f->nbufs);
    const buf *b = &f->bufs[i];
    f->side = SERVER;
    if (variant == 0) {
        expect(f, vdi_server_set_free_buffer(f->server, b->p, b->size), NOERROR,
               "4: free_buffer of a live buffer");
        forget(f, i);
    } else if (variant == 1) {
        expect(f, vdi_server_set_free_buffer(f->server, b->p, b->size + 1), VD_E_INVALID,
               "4: free_buffer with another size");
    } else {
        expect(f, vdi_server_set_free_buffer(f->server, b->p + 1, b->size), VD_E_INVALID,
               "4: free_buffer of an address that is not a data zone's start");
    }
}

static int in_live_zone(const fc *f, const uint8_t *p) {
    for (int i = 0; i < f->nbufs; i++)
        if (p >= f->bufs[i].p && p < f->bufs[i].p + f->bufs[i].size)
            return 1;
    return 0;
}

static void op_is_shared(fc *f, fuzz_input *in) {
    uint32_t variant = fuzz_choice(in, 5); /* start, last byte, end, start - 1, prefix start */
    uint8_t which = fuzz_u8(in);
    if (f->nbufs == 0)
        return;
    const buf *b = &f->bufs[which % (uint32_t)f->nbufs];
    const uint8_t *p = variant == 0   ? b->p
                       : variant == 1 ? b->p + b->size - 1
                       : variant == 2 ? b->p + b->size
                       : variant == 3 ? b->p - 1
                                      : b->p - f->given.prefixZoneSize;
    uint8_t *base = area(f, SERVER);
    if (p < base || (uint64_t)(p - base) >= f->mapped[SERVER])
        return; /* not an address of the area at all */
    f->side = SERVER;
    int r = vdi_server_set_is_shared_buffer(f->server, p);
    int want = f->sstate >= S_INITIALIZING && in_live_zone(f, p);
    if (r != want)
        fail(f, "is_shared_buffer(area offset %lld) gave %d, expected %d (4)",
             (long long)(p - base), r, want);
}

/* Every live buffer as the client sees it: a handle for its address, the same address back,
 * the same bytes, and a byte written by the client seen by the server. */
static void op_check_client(fc *f) {
    if (f->cstate < C_INITIALIZING || f->sstate < S_INITIALIZING)
        return;
    op_client_config(f); /* follows the area as far as it grew */
    uint8_t *cbase = area(f, CLIENT), *sbase = area(f, SERVER);
    for (int i = 0; i < f->nbufs; i++) {
        const buf *b = &f->bufs[i];
        uint8_t *cp = cbase + (b->p - sbase);
        uint32_t h = 0;
        f->side = CLIENT;
        int rc = vdi_client_set_get_buffer_handle(f->client, cp, &h);
        expect(f, rc, NOERROR, "4: get_buffer_handle of a data zone as the client sees it");
        uint8_t *back = NULL;
        rc = vdi_client_set_map_buffer_handle(f->client, h, &back);
        expect(f, rc, NOERROR, "4: map_buffer_handle of a handle just given");
        if (back != cp)
            fail(f, "map_buffer_handle gave %p for buffer %u, the client's address is %p",
                 (void *)back, b->id, (void *)cp);
        if ((uintptr_t)cp % eff_align(f, b->align) != 0)
            fail(f, "buffer %u is not aligned at the client's address (4)", b->id);
        uint32_t n = b->size < 64 ? b->size : 64;
        if (memcmp(cp, b->p, n) != 0 || memcmp(cp + b->size - n, b->p + b->size - n, n) != 0)
            fail(f, "the client sees other bytes than the server in buffer %u (4)", b->id);
        cp[b->size / 2] = (uint8_t)(b->id * 3 + 1);
        if (b->p[b->size / 2] != (uint8_t)(b->id * 3 + 1))
            fail(f, "a byte the client wrote in buffer %u is not seen by the server", b->id);
    }
}

/* 8.9: after configuration, on an empty area, every requested buffer fits at the same time. */
static void op_allocate_requested(fc *f, fuzz_input *in) {
    uint32_t order = fuzz_choice(in, 3); /* as requested, last request first, largest first */
    if (f->sstate < S_INITIALIZING || f->nbufs != 0 || f->reqs_lost)
        return;
    int idx[MAX_REQS];
    for (int i = 0; i < f->nreqs; i++)
        idx[i] = order == 1 ? f->nreqs - 1 - i : i;
    if (order == 2)
        for (int i = 1; i < f->nreqs; i++)
            for (int j = i; j > 0 && f->reqs[idx[j]].size > f->reqs[idx[j - 1]].size; j--) {
                int t = idx[j];
                idx[j] = idx[j - 1];
                idx[j - 1] = t;
            }
    for (int i = 0; i < f->nreqs; i++) {
        const req *r = &f->reqs[idx[i]];
        for (uint32_t k = 0; k < r->count; k++)
            if (!allocate(f, r->size, r->align, 1))
                fail(f, "requested buffer %u of %u (%u bytes, alignment %u) does not fit (8.9)",
                     k + 1, r->count, r->size, r->align);
    }
}

static void op_server_device(fc *f, fuzz_input *in) {
    char scratch[VDI_MAX_NAME + 8];
    const char *name = pick_dev_name(f, in, scratch, sizeof scratch);
    vdi_server_device *d = (vdi_server_device *)f;
    f->side = SERVER;
    int rc = vdi_server_set_open_device(f->server, name, &d);
    if (rc != NOERROR && d != NULL)
        fail(f, "a failed server open_device left *out non-NULL (2)");
    if (f->sstate < S_INITIALIZING) {
        expect(f, rc, VD_E_PROTOCOL, "3: server open_device before end_configuration");
        return;
    }
    uint32_t opened = 0;
    for (uint32_t i = 0; i < f->given.deviceCount; i++)
        opened += (uint32_t)f->s_open[i];
    int good = name_ok(name, VDI_MAX_NAME);
    if (opened == f->given.deviceCount) {
        if (good)
            expect(f, rc, VD_E_OPEN, "8.10 every device open");
        else
            expect2(f, rc, VD_E_OPEN, VD_E_INVALID, "8.10 every device open / 8.2 bad name");
        return;
    }
    if (!good) {
        expect(f, rc, VD_E_INVALID, "8.2 bad device name");
        return;
    }
    int slot = bind_slot(f, name, 1);
    if (slot < 0) {
        expect(f, rc, VD_E_INVALID, "8.10 a name that cannot bind");
        return;
    }
    if (f->s_open[slot]) {
        expect(f, rc, VD_E_PROTOCOL, "8.10 a name it already opened");
        return;
    }
    expect(f, rc, NOERROR, "4: device names bind free slots first-come");
    f->s_open[slot] = 1;
    f->sstate = S_ACTIVE;
}

/* ---- the run --------------------------------------------------------------------------------- */

static void leftovers(fc *f) {
    DIR *d = opendir("/dev/shm");
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (strstr(e->d_name, f->stem))
            fail(f, "/dev/shm/%s is left after both closes (5.3)", e->d_name);
    if (d)
        closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int swept; /* the sets that runs of this target which crashed left behind */
    if (!swept) {
        swept = 1;
        (void)vdi_seam_reclaim_dead("fzc");
    }
    fc *f = calloc(1, sizeof *f);
    if (!f)
        abort();
    snprintf(f->stem, sizeof f->stem, "fzc%ld-", (long)getpid());
    f->trace = getenv("FUZZ_CONFIG_TRACE") != NULL;
    f->client = vdi_client_set_new();
    f->server = vdi_server_set_new();
    if (!f->client || !f->server)
        abort();
    vdi_seams seams;
    memset(&seams, 0, sizeof seams);
    seams.ctx = f;
    seams.map = fc_map;
    vdi_seams_install(&seams);

    fuzz_input in;
    fuzz_input_init(&in, data, size);
    for (int i = 0; i < MAX_OPS && !fuzz_exhausted(&in); i++) {
        int op = (int)fuzz_choice(&in, OP_COUNT);
        f->op_index = i;
        f->op_name = op_names[op];
        switch (op) {
        case OP_CREATE:
            op_create(f, &in);
            break;
        case OP_OPEN:
            op_open(f, &in);
            break;
        case OP_BEGIN:
            op_begin(f, &in);
            break;
        case OP_REQUEST:
            op_request(f, &in);
            break;
        case OP_QUERY:
            op_query(f, &in);
            break;
        case OP_END:
            op_end(f);
            break;
        case OP_CLIENT_CONFIG:
            op_client_config(f);
            break;
        case OP_SERVER_CONFIG:
            op_server_config(f);
            break;
        case OP_ALLOCATE:
            op_allocate(f, &in);
            break;
        case OP_FILL:
            op_fill(f, &in);
            break;
        case OP_FREE:
            op_free(f, &in);
            break;
        case OP_IS_SHARED:
            op_is_shared(f, &in);
            break;
        case OP_SERVER_DEVICE:
            op_server_device(f, &in);
            break;
        case OP_CLIENT_DEVICE:
            op_client_device(f, &in);
            break;
        case OP_CHECK_CLIENT:
            op_check_client(f);
            break;
        default:
            op_allocate_requested(f, &in);
            break;
        }
    }
    f->op_index = -1;
    f->op_name = "closing";
    op_check_client(f);
    f->side = SERVER;
    int rc = vdi_server_set_close(f->server), open_dev = 0;
    for (int i = 0; i < VDI_MAX_DEVICES; i++)
        open_dev |= f->s_open[i];
    if (f->sstate == S_DNE)
        expect(f, rc, VD_E_PROTOCOL, "5.1.6 close of a server never opened");
    else if (open_dev)
        expect(f, rc, VD_E_PROTOCOL, "5.1.2 server close with devices open");
    else
        expect(f, rc, NOERROR, "5.1.2 server close with no device open");
    f->side = CLIENT;
    rc = vdi_client_set_close(f->client);
    if (f->cstate == C_DNE)
        expect(f, rc, VD_E_PROTOCOL, "5.2 close of a client never created");
    else /* the server's close aborted the set, or the client holds no device */
        expect(f, rc, NOERROR, "5.2 client close");
    leftovers(f);
    vdi_seams_install(NULL);
    vdi_client_set_free(f->client);
    vdi_server_set_free(f->server);
    free(f);
    return 0;
}
