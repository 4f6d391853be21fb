/* The unmap guard: a view unmapped through the guard stays reserved and poisoned, and a
 * later touch is reported as use-after-unmap together with the stack that unmapped it,
 * every time (a real munmap could let the address be reused and the touch succeed). The
 * touch happens in a child; the parent reads its stderr. Then the real thing: a server
 * touching a buffer after its premature close, through the reference's unmap seam. */
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "chaos/chaos.h"
#include "t_test.h"
#include "vdi/vdi_seams.h"

static volatile uint8_t sink;

static void touch_after_unmap(void) {
    chaos_guard_install();
    uint8_t *p = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        _exit(3);
    p[100] = 7;
    if (chaos_guard_unmap(p, 1 << 16) != 0)
        _exit(4);
    sink = p[100]; /* use after unmap */
    _exit(0);
}

/* A server that keeps using a buffer after its premature close (VDI-SPEC 5.1.2). */
static void server_touches_buffer(void) {
    chaos_config cfg = {.strategy = CHAOS_RANDOM, .seed = 1};
    chaos_engine *e = chaos_engine_new(&cfg);
    chaos_seams_install(e);
    const char *name = t_set_name("guard");
    vdi_client_set *c = vdi_client_set_new();
    vdi_server_set *s = vdi_server_set_new();
    VDConfig vc = {.deviceCount = 1};
    uint8_t *buf = NULL;
    vdi_server_device *sd = NULL;
    if (vdi_client_set_create(c, name, &vc) || vdi_server_set_open(s, NULL, name) ||
        vdi_server_set_begin_configuration(s, VDF_WriteMedia, 4096, 0, 65536, 0) ||
        vdi_server_set_request_buffers(s, 4096, 0, 1) || vdi_server_set_end_configuration(s) ||
        vdi_server_set_open_device(s, name, &sd) ||
        vdi_server_set_allocate_buffer(s, &buf, 4096, 0))
        _exit(5);
    buf[0] = 1;
    if (vdi_server_set_close(s) != VD_E_PROTOCOL) /* a device is open: premature */
        _exit(6);
    buf[0] = 2; /* the server's own bug: the view is gone */
    _exit(0);
}

static pid_t g_child;

static int child(void (*fn)(void), char *out, size_t cap) {
    int p[2];
    T_REQUIRE(pipe(p) == 0);
    pid_t pid = fork();
    T_REQUIRE(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 2);
        close(p[0]);
        fn();
    }
    g_child = pid;
    close(p[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(p[0], out + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = 0;
    close(p[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    return st;
}

int main(void) {
    static char out[1 << 16];
    for (int round = 0; round < 3; round++) { /* every time, not by luck */
        int st = child(touch_after_unmap, out, sizeof out);
        T_EXPECT(!(WIFEXITED(st) && WEXITSTATUS(st) == 0));
        T_EXPECT(strstr(out, "use-after-unmap") != NULL);
        T_EXPECT(strstr(out, "was unmapped here") != NULL);
    }
    int st = child(server_touches_buffer, out, sizeof out);
    /* the child died by design before its client could close: remove its set's name */
    char name[64], path[160];
    snprintf(name, sizeof name, "t-guard-%ld-0", (long)g_child);
    T_REQUIRE(vdi_seam_shm_name(path, sizeof path, NULL, name) == 0);
    T_EXPECT_EQ(shm_unlink(path), 0);
    T_EXPECT(!(WIFEXITED(st) && WEXITSTATUS(st) == 0));
    if (!strstr(out, "use-after-unmap"))
        fprintf(stderr, "child said:\n%s\n", out);
    T_EXPECT(strstr(out, "use-after-unmap") != NULL);
    /* the unmapping stack names the reference's close */
    if (!strstr(out, "unmapped here"))
        fprintf(stderr, "child said:\n%s\n", out);
    T_EXPECT(strstr(out, "unmapped here") != NULL);
    return t_done();
}
