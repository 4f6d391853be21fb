/* t_plan.c: the server plan format (ref/compat/sqlcmd/PLAN.md). Every finding of vdichaos
 * client is saved as a plan and a fuzzer mutates plan files, so the parser must accept any
 * byte string without misbehaving, strict mode must name the first bad line, and
 * print/parse must round-trip exactly: a replayed plan is the plan that was run. */
#include "plan.h"
#include "t_test.h"

#include <stdint.h>

static vdi_plan a, b;
static char text[1 << 16];

/* A deterministic generator (tests never use rand()). */
static uint64_t rng = 0x9e3779b97f4a7c15u;
static uint64_t next(void) {
    uint64_t z = (rng += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* parse(print(p)) == p, and the printed form parses in strict mode. */
static void round_trip(const vdi_plan *p) {
    char err[200];
    size_t n = vdi_plan_print(p, text, sizeof text);
    T_REQUIRE(n < sizeof text);
    int rc = vdi_plan_parse(text, n, 1, &b, err, sizeof err);
    T_EXPECT_EQ(rc, 0);
    if (rc != 0)
        fprintf(stderr, "%s\n--\n%s", err, text);
    T_EXPECT(vdi_plan_equal(p, &b));
}

static int parse(const char *s, int strict, char *err, size_t cap) {
    return vdi_plan_parse(s, strlen(s), strict, &a, err, cap);
}

static void test_steps(void) {
    char err[200];
    const char *all = "vdichaos-plan 1\n"
                      "# a comment\n"
                      "statement BACKUP DATABASE sales TO VIRTUAL_DEVICE='{set}'\n"
                      "blocksize 4096\nmaxtransfersize 131072\nbuffercount 5\ndbsize 300001\n"
                      "timeout 2000\ndelay 3\nflushes 2\ncomplete always\n"
                      "transfer 1 8192\norder 0 reverse\n"
                      "abort after 3 device 1\nclose after 4\nfail at 5 code 1117\n"
                      "die at 6 how kill\ndie at configured how term\npause after 2 ms 1500\n"
                      "stall after 7 device 0\nclearerror after 1\n";
    T_EXPECT_EQ(parse(all, 1, err, sizeof err), 0);
    T_EXPECT(strcmp(a.statement, "BACKUP DATABASE sales TO VIRTUAL_DEVICE='{set}'") == 0);
    T_EXPECT_EQ(a.block_size, 4096);
    T_EXPECT_EQ(a.max_transfer, 131072);
    T_EXPECT_EQ(a.buffer_count, 5);
    T_EXPECT_EQ(a.db_size, 300001);
    T_EXPECT_EQ(a.timeout_ms, 2000);
    T_EXPECT_EQ(a.delay_ms, 3);
    T_EXPECT_EQ(a.flushes, 2);
    T_EXPECT_EQ(a.complete, 1);
    T_EXPECT_EQ(a.transfer[1], 8192);
    T_EXPECT_EQ(a.reverse[0], 1);
    T_REQUIRE(a.nfaults == 8);
    T_EXPECT_EQ(a.faults[0].kind, VDI_PLAN_ABORT);
    T_EXPECT_EQ(a.faults[0].after, 3);
    T_EXPECT_EQ(a.faults[0].device, 1);
    T_EXPECT_EQ(a.faults[1].device, -1);
    T_EXPECT_EQ(a.faults[2].code, 1117);
    T_EXPECT_EQ(a.faults[3].how, VDI_PLAN_KILL);
    T_EXPECT_EQ(a.faults[3].point, VDI_PLAN_AT_COMMAND);
    T_EXPECT_EQ(a.faults[4].point, VDI_PLAN_AT_CONFIGURED);
    T_EXPECT_EQ(a.faults[5].ms, 1500);
    T_EXPECT_EQ(a.faults[6].kind, VDI_PLAN_STALL);
    T_EXPECT_EQ(a.faults[7].kind, VDI_PLAN_CLEARERROR);
    T_EXPECT(!vdi_plan_benign(&a));
    round_trip(&a);
    T_EXPECT_EQ(parse("pause after 1 ms 10\nclearerror after 2\ndelay 5\n", 1, err, sizeof err), 0);
    T_EXPECT(vdi_plan_benign(&a));
    /* shake: the seed, and the longest delay (1000 us unless given) */
    T_EXPECT_EQ(parse("shake 7\n", 1, err, sizeof err), 0);
    T_EXPECT(a.shake_seed == 7 && a.shake_max_us == 1000);
    round_trip(&a);
    T_EXPECT_EQ(parse("shake 18446744073709551615 250\n", 1, err, sizeof err), 0);
    T_EXPECT(a.shake_seed == UINT64_MAX && a.shake_max_us == 250);
    T_EXPECT(vdi_plan_benign(&a));
    round_trip(&a);
    /* schedule: random SEED, pct DEPTH SEED [STEPS] */
    T_EXPECT_EQ(parse("schedule random 0\n", 1, err, sizeof err), 0);
    T_EXPECT(a.sched == 1 && a.sched_seed == 0);
    T_EXPECT(vdi_plan_benign(&a));
    round_trip(&a);
    T_EXPECT_EQ(parse("schedule pct 3 18446744073709551615 400\n", 1, err, sizeof err), 0);
    T_EXPECT(a.sched == 2 && a.sched_depth == 3 && a.sched_seed == UINT64_MAX &&
             a.sched_steps == 400);
    round_trip(&a);
    T_EXPECT_EQ(parse("schedule pct 1 5\n", 1, err, sizeof err), 0);
    T_EXPECT(a.sched == 2 && a.sched_depth == 1 && a.sched_seed == 5 && a.sched_steps == 0);
    round_trip(&a);
    /* keys in any order; CRLF and tabs */
    T_EXPECT_EQ(parse("fail\tcode 6 device 2 at 9\r\n", 1, err, sizeof err), 0);
    T_EXPECT(a.nfaults == 1 && a.faults[0].after == 9 && a.faults[0].code == 6 &&
             a.faults[0].device == 2);
}

static void test_strict_errors(void) {
    char err[200];
    static const struct {
        const char *text;
        const char *want;
    } cases[] = {
        {"blocksize 4096\nblocksize 1000\n", "line 2: blocksize: a power of two"},
        {"abort after 0\n", "line 1: after: not a number from 1"},
        {"abort after 99999999999999999999999\n", "line 1: after: not a number"},
        {"abort after 18446744073709551616\n", "line 1: after: not a number"},
        {"abort\n", "line 1: abort needs after"},
        {"fail at 3\n", "line 1: fail needs code C"},
        {"pause after 3\n", "line 1: pause needs ms M"},
        {"frobnicate 3\n", "line 1: unknown step 'frobnicate'"},
        {"\n\nabort after 1 device 64\n", "line 3: device: not a number from 0 to 63"},
        {"die at open device 1\n", "line 1: die at open takes no device"},
        {"die at 3 how gently\n", "line 1: how: not exit, kill, abort or term"},
        {"maxtransfersize 65537\n", "line 1: maxtransfersize: a multiple of 65536"},
        {"blocksize 4096 extra\n", "line 1: unexpected 'extra'"},
        {"vdichaos-plan 2\n", "line 1: vdichaos-plan: not a number from 1 to 1"},
        {"shake 0\n", "line 1: shake seed: not a number from 1"},
        {"shake\n", "line 1: shake seed needs a number"},
        {"shake 3 0\n", "line 1: shake max_us: not a number from 1 to 1000000"},
        {"shake 3 1000001\n", "line 1: shake max_us: not a number from 1 to 1000000"},
        {"shake 3 10 x\n", "line 1: unexpected 'x'"},
        {"schedule\n", "line 1: schedule: random SEED or pct DEPTH SEED [STEPS]"},
        {"schedule dfs 1\n", "line 1: schedule: random SEED or pct DEPTH SEED [STEPS]"},
        {"schedule pct 0 1\n", "line 1: schedule depth: not a number from 1 to 8"},
        {"schedule pct 9 1\n", "line 1: schedule depth: not a number from 1 to 8"},
        {"schedule pct 2\n", "line 1: schedule seed needs a number"},
        {"schedule pct 2 1 0\n", "line 1: schedule steps: not a number from 1"},
        {"schedule random 1 2\n", "line 1: unexpected '2'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = parse(cases[i].text, 1, err, sizeof err);
        T_EXPECT_EQ(rc, -1);
        if (strncmp(err, cases[i].want, strlen(cases[i].want)) != 0)
            T_FAILED_AT("case %zu: error '%s', want '%s'", i, err, cases[i].want);
        /* lenient: the same line skipped, the rest read */
        T_EXPECT_EQ(parse(cases[i].text, 0, err, sizeof err), 1);
    }
    /* NUL and non-ASCII bytes make a line invalid, not the rest */
    const char nul[] = "blocksize 4096\nabort after\0 3\nclose after 2\n";
    T_EXPECT_EQ(vdi_plan_parse(nul, sizeof nul - 1, 1, &a, err, sizeof err), -1);
    T_EXPECT(strncmp(err, "line 2: byte 0x00", 17) == 0);
    T_EXPECT_EQ(vdi_plan_parse(nul, sizeof nul - 1, 0, &a, err, sizeof err), 1);
    T_EXPECT(a.block_size == 4096 && a.nfaults == 1 && a.faults[0].kind == VDI_PLAN_CLOSE);
    /* more faults than a plan holds */
    char many[2048] = "";
    for (int i = 0; i < VDI_PLAN_MAX_FAULTS + 3; i++)
        strcat(many, "abort after 1\n");
    T_EXPECT_EQ(parse(many, 0, err, sizeof err), 3);
    T_EXPECT_EQ(a.nfaults, VDI_PLAN_MAX_FAULTS);
    /* a tiny error buffer is not overrun; no buffer at all is accepted */
    char tiny[4];
    T_EXPECT_EQ(parse("nonsense\n", 1, tiny, sizeof tiny), -1);
    T_EXPECT_EQ(strlen(tiny), 3);
    T_EXPECT_EQ(parse("nonsense\n", 0, NULL, 0), 1);
}

/* Random valid plans: each round-trips, and printing to a short buffer truncates safely. */
static void test_random_plans(void) {
    for (int r = 0; r < 2000; r++) {
        vdi_plan_init(&a);
        if (next() % 2)
            snprintf(a.statement, sizeof a.statement, "BACKUP LOG x%u TO VIRTUAL_DEVICE='{set}'",
                     (unsigned)(next() % 1000));
        a.block_size = next() % 2 ? 512u << (next() % 8) : 0;
        a.max_transfer = next() % 2 ? (uint32_t)(1 + next() % 64) * 65536 : 0;
        a.buffer_count = (uint32_t)(next() % 9);
        a.db_size = next() % 3 ? next() % VDI_PLAN_MAX_DB_SIZE + 1 : 0;
        a.timeout_ms = (uint32_t)(next() % (VDI_PLAN_MAX_MS + 1));
        a.delay_ms = (uint32_t)(next() % 100);
        a.flushes = (int32_t)(next() % 66) - 1;
        a.complete = (int8_t)(next() % 3) - 1;
        a.transfer[next() % VDI_PLAN_MAX_DEVICES] = (uint32_t)(1 + next() % 8192) * 512;
        a.reverse[next() % VDI_PLAN_MAX_DEVICES] = (uint8_t)(next() % 2);
        if (next() % 3 == 0) {
            a.shake_seed = next() | 1u;
            a.shake_max_us = (uint32_t)(1 + next() % 1000000);
        }
        a.nfaults = (uint32_t)(next() % (VDI_PLAN_MAX_FAULTS + 1));
        for (uint32_t i = 0; i < a.nfaults; i++) {
            vdi_plan_fault *f = &a.faults[i];
            f->kind = (uint8_t)(1 + next() % (VDI_PLAN_KIND_END - 1));
            f->device = (int8_t)((int)(next() % (VDI_PLAN_MAX_DEVICES + 1)) - 1);
            f->after = (uint32_t)(1 + next() % UINT32_MAX);
            if (f->kind == VDI_PLAN_FAIL)
                f->code = (uint32_t)(1 + next() % UINT32_MAX);
            if (f->kind == VDI_PLAN_PAUSE)
                f->ms = (uint32_t)(next() % (VDI_PLAN_MAX_MS + 1));
            if (f->kind == VDI_PLAN_DIE) {
                f->how = (uint8_t)(next() % 4);
                f->point = (uint8_t)(next() % 4);
                if (f->point != VDI_PLAN_AT_COMMAND) {
                    f->after = 0;
                    f->device = -1;
                }
            }
        }
        round_trip(&a);
        char small[17];
        size_t need = vdi_plan_print(&a, small, sizeof small);
        T_EXPECT(need >= strlen(small) && strlen(small) <= 16);
    }
}

/* Hostile input: whatever the bytes, the lenient parse ends, its plan round-trips, and
 * strict mode either accepts or names a line. */
static void hostile(const char *buf, size_t n) {
    char err[200];
    (void)vdi_plan_parse(buf, n, 0, &a, err, sizeof err);
    round_trip(&a);
    if (vdi_plan_parse(buf, n, 1, &b, err, sizeof err) == -1)
        T_EXPECT(strncmp(err, "line ", 5) == 0);
}

static void test_hostile(void) {
    size_t big = 1 << 20;
    char *buf = malloc(big + 1);
    T_REQUIRE(buf != NULL);
    for (size_t i = 0; i < big; i++)
        buf[i] = (char)next();
    hostile(buf, big);               /* 1 MB of random bytes */
    for (size_t i = 0; i < big; i++) /* random printable words and newlines */
        buf[i] = "abort after 1 device 2 fail code ms die at how kill\n 0123456789"[next() % 64];
    hostile(buf, big);
    memset(buf, 'x', big); /* one very long line */
    memcpy(buf, "statement ", 10);
    hostile(buf, big);
    memset(buf, '9', big); /* a number a megabyte long */
    memcpy(buf, "dbsize ", 7);
    hostile(buf, big);
    memset(buf, 0, big); /* NULs */
    hostile(buf, big);
    memset(buf, '\n', big); /* a million empty lines */
    hostile(buf, big);
    hostile(buf, 0);
    free(buf);
    /* an over-long statement is skipped, a maximal one is kept */
    static char line[VDI_PLAN_MAX_STATEMENT + 16];
    memcpy(line, "statement ", 10);
    memset(line + 10, 'S', VDI_PLAN_MAX_STATEMENT - 1);
    char err[200];
    T_EXPECT_EQ(vdi_plan_parse(line, 10 + VDI_PLAN_MAX_STATEMENT - 1, 1, &a, err, sizeof err), 0);
    T_EXPECT_EQ(strlen(a.statement), VDI_PLAN_MAX_STATEMENT - 1);
    round_trip(&a);
    T_EXPECT_EQ(vdi_plan_parse(line, 10 + VDI_PLAN_MAX_STATEMENT, 1, &a, err, sizeof err), -1);
}

int main(void) {
    test_steps();
    test_strict_errors();
    test_random_plans();
    test_hostile();
    return t_done();
}
