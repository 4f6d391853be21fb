/* TSan-honest: two actors racing on plain memory inside the controlled engine are
 * reported by ThreadSanitizer, because the engine switches fibers without creating
 * happens-before edges; and the engine's own bookkeeping is not reported. The racing run
 * happens in a child whose stderr the parent reads. Outside TSan this test is skipped. */
#include <string.h>
#include <sys/wait.h>

#include "chaos/atomics.h"
#include "chaos/chaos.h"
#include "t_test.h"

#ifdef T_TSAN
static int shared_plain;
static int shared_atomic;

static void racer(void *arg) {
    chaos_engine *e = arg;
    chaos_point(e, "racer:a");
    shared_plain++; /* the race TSan must see */
    chaos_point(e, "racer:b");
}

static void polite(void *arg) {
    chaos_engine *e = arg;
    chaos_point(e, "polite:a");
    CHAOS_ADD_RELAXED(&shared_atomic, 1);
    chaos_point(e, "polite:b");
}

static void run(void (*fn)(void *)) {
    chaos_config cfg = {.strategy = CHAOS_RANDOM, .seed = 5};
    chaos_engine *e = chaos_engine_new(&cfg);
    chaos_spawn(e, "one", fn, e);
    chaos_spawn(e, "two", fn, e);
    chaos_run(e);
    chaos_engine_free(e);
}

/* Run fn in a child; return its stderr in buf. */
static void child_stderr(void (*fn)(void *), char *buf, size_t cap) {
    int p[2];
    T_REQUIRE(pipe(p) == 0);
    pid_t pid = fork();
    T_REQUIRE(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 2);
        close(p[0]);
        run(fn);
        _exit(0);
    }
    close(p[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(p[0], buf + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = 0;
    close(p[0]);
    int st;
    waitpid(pid, &st, 0);
}

#endif

int main(void) {
#ifndef T_TSAN
    T_SKIP("not a ThreadSanitizer build");
#else
    static char out[1 << 16];
    child_stderr(racer, out, sizeof out);
    T_EXPECT(strstr(out, "WARNING: ThreadSanitizer: data race") != NULL);
    T_EXPECT(strstr(out, "racer") != NULL);
    child_stderr(polite, out, sizeof out);
    if (strstr(out, "ThreadSanitizer"))
        fprintf(stderr, "unexpected report:\n%s\n", out);
    T_EXPECT(strstr(out, "ThreadSanitizer") == NULL); /* the engine itself is quiet */
    return t_done();
#endif
}
