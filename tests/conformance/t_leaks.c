/* Nothing stays behind (VDI-SPEC 5.3 last rule, 8.12): after both sides closed, however
 * the set ended (normal end, abort, premature close, early client close, failed create),
 * no file descriptor, no /dev/shm object of the set and no thread remains. Heap leaks
 * are LeakSanitizer's job under the asan preset. A backup agent runs for years. */
#include <dirent.h>

#include "t_test.h"
#include "t_vdi.h"

static int thread_count(void) {
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void one_command(t_set *s) {
    t_cmd tc;
    uint8_t *b = NULL;
    int before = t_ledger_finished(&s->ledger);
    t_must(vdi_server_set_allocate_buffer(s->server, &b, 4096, 0), NOERROR, "allocate");
    t_cmd_init(&tc, &s->ledger, VDC_Write, 4096, 0, b);
    t_must(t_send(s->sdev[0], &tc), NOERROR, "send");
    VDC_Command *c = NULL;
    t_must(vdi_client_device_get_command(s->cdev[0], VDI_INFINITE, &c), NOERROR, "get_command");
    t_must(vdi_client_device_complete_command(s->cdev[0], c, 0, 4096, 0), NOERROR, "complete");
    t_ledger_wait(&s->ledger, before + 1);
}

typedef void (*scenario)(char *name, size_t len);

static void sc_normal(char *name, size_t len) {
    t_set s;
    t_set_init(&s, "lk-norm", 2);
    snprintf(name, len, "%s", s.name);
    t_set_to_active(&s);
    one_command(&s);
    t_set_finish(&s);
}

static void sc_abort(char *name, size_t len) {
    t_set s;
    t_set_init(&s, "lk-abort", 1);
    snprintf(name, len, "%s", s.name);
    t_set_to_active(&s);
    t_cmd tc;
    t_cmd_init(&tc, &s.ledger, VDC_Flush, 0, 0, NULL);
    t_must(t_send(s.sdev[0], &tc), NOERROR, "send");
    t_must(vdi_client_set_signal_abort(s.client), NOERROR, "signal_abort");
    t_must(t_set_join_agent(&s), VD_E_ABORT, "agent");
    t_must(vdi_server_set_close(s.server), NOERROR, "server close");
    t_must(vdi_client_set_close(s.client), NOERROR, "client close");
    t_set_teardown(&s);
}

static void sc_premature_server(char *name, size_t len) {
    t_set s;
    t_set_init(&s, "lk-prem", 1);
    snprintf(name, len, "%s", s.name);
    t_set_to_active(&s);
    t_cmd tc;
    t_cmd_init(&tc, &s.ledger, VDC_Flush, 0, 0, NULL);
    t_must(t_send(s.sdev[0], &tc), NOERROR, "send");
    t_must(vdi_server_set_close(s.server), VD_E_PROTOCOL, "premature server close");
    t_must(t_set_join_agent(&s), VD_E_ABORT, "agent");
    t_must(vdi_client_set_close(s.client), NOERROR, "client close");
    t_set_teardown(&s);
}

static void sc_early_client(char *name, size_t len) {
    t_set s;
    t_set_init(&s, "lk-early", 1);
    snprintf(name, len, "%s", s.name);
    t_set_to_active(&s);
    one_command(&s);
    t_must(vdi_client_set_close(s.client), VD_E_OPEN, "early client close");
    t_must(t_set_join_agent(&s), VD_E_ABORT, "agent");
    t_must(vdi_server_set_close(s.server), NOERROR, "server close");
    t_set_teardown(&s);
}

static void sc_failed_calls(char *name, size_t len) {
    t_set s;
    t_set_init(&s, "lk-fail", 1);
    snprintf(name, len, "%s", s.name);
    t_set_create(&s);
    vdi_client_set *c2 = vdi_client_set_new();
    t_must(vdi_client_set_create(c2, s.name, &s.cfg), VD_E_BUSY, "second create");
    vdi_client_set_free(c2);
    t_set_server_open(&s);
    vdi_server_set *s2 = vdi_server_set_new();
    t_must(vdi_server_set_open(s2, NULL, s.name), VD_E_BUSY, "second open");
    vdi_server_set_free(s2);
    t_set_server_begin(&s);
    t_must(vdi_server_set_request_buffers(s.server, UINT32_MAX, 0, UINT32_MAX), NOERROR, "req");
    t_must(vdi_server_set_end_configuration(s.server), VD_E_MEMORY, "end_configuration");
    t_set_teardown(&s);
}

static void sc_secondary(char *name, size_t len) {
    t_set s;
    t_set_init(&s, "lk-sec", 2);
    snprintf(name, len, "%s", s.name);
    t_set_to_initializing(&s);
    vdi_client_set *sec = vdi_client_set_new();
    t_must(vdi_client_set_open_in_secondary(sec, s.name), NOERROR, "open_in_secondary");
    t_must(vdi_client_set_close(sec), NOERROR, "secondary close");
    vdi_client_set_free(sec);
    t_set_teardown(&s);
}

static void check(const char *what, scenario fn) {
    char name[96];
    fn(name, sizeof name); /* warm-up: lazily created runtime state is not a leak */
    int fds = t_fd_count();
    int threads = thread_count();
    for (int i = 0; i < 3; i++) {
        fn(name, sizeof name);
        if (t_shm_count(name) != 0)
            fprintf(stderr, "%s: shared object of %s left behind\n", what, name);
        T_EXPECT_EQ(t_shm_count(name), 0);
    }
    if (t_fd_count() != fds)
        fprintf(stderr, "%s: %d fds before, %d after\n", what, fds, t_fd_count());
    T_EXPECT_EQ(t_fd_count(), fds);
    T_EXPECT_EQ(thread_count(), threads);
}

static void case_normal(void) {
    check("normal", sc_normal);
}
static void case_abort(void) {
    check("abort", sc_abort);
}
static void case_premature_server(void) {
    check("premature server close", sc_premature_server);
}
static void case_early_client(void) {
    check("early client close", sc_early_client);
}
static void case_failed_calls(void) {
    check("failed calls", sc_failed_calls);
}
static void case_secondary(void) {
    check("secondary", sc_secondary);
}

int main(int argc, char **argv) {
    static const t_case cases[] = {
        {"normal", case_normal},
        {"abort", case_abort},
        {"premature_server", case_premature_server},
        {"early_client", case_early_client},
        {"failed_calls", case_failed_calls},
        {"secondary", case_secondary},
    };
    int rc = t_run_cases(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
    return rc ? rc : t_done();
}
