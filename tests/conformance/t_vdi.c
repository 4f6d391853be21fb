/* t_vdi.c: the scaffolding of t_vdi.h. Every step of bringing a set up asserts its own
 * success, so that a conformance check never passes on a set that is not in the state
 * it claims; the ledger is what proves "exactly one callback per command". */
#include "t_vdi.h"
#include "vdi/vdi_seams.h"

#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void t_must(int rc, int want, const char *what) {
    if (rc == want)
        return;
    fprintf(stderr, "scaffolding: %s returned %s (0x%08x), want %s\n", what, vdi_strerror(rc),
            (unsigned)rc, vdi_strerror(want));
    exit(1);
}

uint64_t t_fnv(uint64_t h, const uint8_t *p, size_t n) {
    if (h == 0)
        h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* ---- ledger ---------------------------------------------------------------------------- */

void t_ledger_init(t_ledger *l) {
    memset(l, 0, sizeof *l);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
}

void t_ledger_destroy(t_ledger *l) {
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
}

void t_ledger_routine(VDS_Command *cmd) {
    t_cmd *tc = (t_cmd *)cmd->completionContext;
    t_ledger *l = tc->ledger;
    pthread_mutex_lock(&l->mu);
    tc->calls++;
    tc->code = cmd->completionCode;
    tc->bytes = cmd->bytesTransferred;
    tc->out_position = cmd->outPosition;
    tc->thread = pthread_self();
    tc->agent_returned = l->agent_done ? atomic_load(l->agent_done) : 0;
    if (l->entered < T_LEDGER_MAX) {
        l->order[l->entered] = tc;
        l->codes[l->entered] = cmd->completionCode;
    }
    tc->order = l->entered++;
    void (*hook)(t_cmd *) = tc->hook;
    pthread_mutex_unlock(&l->mu);
    if (hook)
        hook(tc);
    pthread_mutex_lock(&l->mu);
    l->finished++;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

void t_ignore_routine(VDS_Command *cmd) {
    (void)cmd;
}

void t_ledger_wait(t_ledger *l, int n) {
    pthread_mutex_lock(&l->mu);
    while (l->finished < n)
        pthread_cond_wait(&l->cv, &l->mu);
    pthread_mutex_unlock(&l->mu);
}

int t_ledger_finished(t_ledger *l) {
    pthread_mutex_lock(&l->mu);
    int n = l->finished;
    pthread_mutex_unlock(&l->mu);
    return n;
}

int t_ledger_count_code(t_ledger *l, uint32_t code) {
    int n = 0;
    pthread_mutex_lock(&l->mu);
    for (int i = 0; i < l->entered && i < T_LEDGER_MAX; i++)
        n += l->codes[i] == code;
    pthread_mutex_unlock(&l->mu);
    return n;
}

t_cmd t_cmd_snapshot(t_cmd *tc) {
    pthread_mutex_lock(&tc->ledger->mu);
    t_cmd copy = *tc;
    pthread_mutex_unlock(&tc->ledger->mu);
    return copy;
}

void t_cmd_init(t_cmd *tc, t_ledger *l, int32_t code, int32_t size, int64_t position,
                uint8_t *buffer) {
    memset(tc, 0, sizeof *tc);
    tc->ledger = l;
    tc->cmd.commandCode = code;
    tc->cmd.size = size;
    tc->cmd.inPosition = position;
    tc->cmd.outPosition = -1;
    tc->cmd.buffer = buffer;
    tc->cmd.completionRoutine = t_ledger_routine;
    tc->cmd.completionContext = tc;
    tc->cmd.completionCode = 0xdeadbeefu;
    tc->cmd.bytesTransferred = 0xdeadbeefu;
    tc->order = -1;
}

int t_send(vdi_server_device *dev, t_cmd *tc) {
    return vdi_server_device_send_command(dev, &tc->cmd);
}

/* ---- set life cycle ------------------------------------------------------------------ */

void t_config_default(VDConfig *cfg, uint32_t ndev) {
    memset(cfg, 0, sizeof *cfg);
    cfg->deviceCount = ndev;
}

void t_set_init(t_set *s, const char *stem, uint32_t ndev) {
    static unsigned seq;
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "tc-%s-%ld-%u-e", stem, (long)getpid(), seq++);
    t_config_default(&s->cfg, ndev);
    s->ndev = (int)ndev;
    for (int i = 0; i < s->ndev; i++) {
        if (i == 0)
            snprintf(s->devname[i], sizeof s->devname[i], "%s", "");
        else
            snprintf(s->devname[i], sizeof s->devname[i], "d%d", i);
    }
    s->features = VDF_WriteMedia;
    s->block_size = 512;
    s->max_transfer = 65536;
    s->buf_size = 65536;
    s->buf_count = 4;
    s->client = vdi_client_set_new();
    s->server = vdi_server_set_new();
    if (!s->client || !s->server) {
        fprintf(stderr, "scaffolding: set_new returned NULL\n");
        exit(1);
    }
    t_ledger_init(&s->ledger);
    s->ledger.agent_done = &s->agent_done;
}

/* Device 0 is named after the set (VDI-SPEC 4). */
const char *t_devname(t_set *s, int i) {
    return i == 0 ? s->name : s->devname[i];
}

void t_set_create(t_set *s) {
    t_must(vdi_client_set_create(s->client, s->name, &s->cfg), NOERROR, "client create");
}

void t_set_server_open(t_set *s) {
    t_must(vdi_server_set_open(s->server, NULL, s->name), NOERROR, "server open");
}

void t_set_server_begin(t_set *s) {
    t_must(vdi_server_set_begin_configuration(s->server, s->features, s->block_size, 0,
                                              s->max_transfer, 0),
           NOERROR, "server begin_configuration");
}

void t_set_server_end(t_set *s) {
    if (s->buf_count)
        t_must(vdi_server_set_request_buffers(s->server, s->buf_size, 0, s->buf_count), NOERROR,
               "server request_buffers");
    t_must(vdi_server_set_end_configuration(s->server), NOERROR, "server end_configuration");
}

void t_set_client_config(t_set *s) {
    t_must(vdi_client_set_get_configuration(s->client, VDI_INFINITE, &s->cfg), NOERROR,
           "client get_configuration");
}

void t_set_to_initializing(t_set *s) {
    t_set_create(s);
    t_set_server_open(s);
    t_set_server_begin(s);
    t_set_server_end(s);
    t_set_client_config(s);
}

void t_set_open_devices(t_set *s) {
    for (int i = 0; i < s->ndev; i++) {
        t_must(vdi_server_set_open_device(s->server, t_devname(s, i), &s->sdev[i]), NOERROR,
               "server open_device");
        t_must(vdi_client_set_open_device(s->client, t_devname(s, i), &s->cdev[i]), NOERROR,
               "client open_device");
    }
}

static void *agent_main(void *arg) {
    t_set *s = arg;
    int rc = vdi_server_set_execute_completion_agent(s->server);
    atomic_store(&s->agent_rc, rc);
    atomic_store(&s->agent_done, 1);
    return NULL;
}

void t_wait_agent_running(vdi_server_device *dev) {
    /* A malformed command is answered by row 4 (PROTOCOL) while no agent runs and by
     * row 5 (INVALID) once one does; either way the callback is synchronous and nothing
     * is queued, so this probe changes no state. */
    for (unsigned long i = 0;; i++) {
        VDS_Command probe;
        memset(&probe, 0, sizeof probe);
        probe.commandCode = 999;
        probe.completionRoutine = t_ignore_routine;
        int rc = vdi_server_device_send_command(dev, &probe);
        if (rc == VD_E_INVALID)
            return;
        if (rc != VD_E_PROTOCOL || i > 50000000ul)
            t_must(rc, VD_E_INVALID, "agent-running probe (send_command of code 999)");
        sched_yield();
    }
}

void t_set_start_agent(t_set *s) {
    s->agent = t_spawn(agent_main, s);
    s->agent_started = 1;
    if (s->ndev > 0 && s->sdev[0])
        t_wait_agent_running(s->sdev[0]);
}

void t_set_to_active(t_set *s) {
    t_set_to_initializing(s);
    t_set_open_devices(s);
    t_set_start_agent(s);
}

int t_set_join_agent(t_set *s) {
    if (!s->agent_started)
        return NOERROR;
    t_join(s->agent);
    s->agent_started = 0;
    return atomic_load(&s->agent_rc);
}

void t_set_close_devices(t_set *s) {
    for (int i = 0; i < s->ndev; i++)
        t_must(vdi_server_device_close(s->sdev[i]), NOERROR, "server close_device");
}

void t_set_drain_client(t_set *s) {
    for (int i = 0; i < s->ndev; i++) {
        VDC_Command *c = NULL;
        t_must(vdi_client_device_get_command(s->cdev[i], VDI_INFINITE, &c), VD_E_CLOSE,
               "client get_command at the end");
    }
}

void t_set_finish(t_set *s) {
    t_set_close_devices(s);
    t_set_drain_client(s);
    t_set_end(s);
}

void t_set_end(t_set *s) {
    t_must(t_set_join_agent(s), NOERROR, "agent at the normal end");
    t_must(vdi_server_set_close(s->server), NOERROR, "server close after the end");
    t_must(vdi_client_set_close(s->client), NOERROR, "client close after the end");
    vdi_server_set_free(s->server);
    vdi_client_set_free(s->client);
    t_ledger_destroy(&s->ledger);
    s->server = NULL;
    s->client = NULL;
}

void t_set_teardown(t_set *s) {
    if (s->server)
        (void)vdi_server_set_close(s->server);
    (void)t_set_join_agent(s);
    if (s->client)
        (void)vdi_client_set_close(s->client);
    vdi_server_set_free(s->server);
    vdi_client_set_free(s->client);
    if (s->server || s->client)
        t_ledger_destroy(&s->ledger);
    s->server = NULL;
    s->client = NULL;
}

/* ---- client device loops ---------------------------------------------------------------- */

static void *worker_main(void *arg) {
    t_worker *w = arg;
    for (;;) {
        VDC_Command *c = NULL;
        int rc = vdi_client_device_get_command(w->dev, w->timeout_ms, &c);
        if (rc != NOERROR) {
            w->final_rc = rc;
            return NULL;
        }
        w->ncmds++;
        uint32_t bytes = 0;
        if (c->commandCode == VDC_Write || c->commandCode == VDC_Read) {
            bytes = (uint32_t)c->size;
            if (c->commandCode == VDC_Write && c->buffer)
                w->hash = t_fnv(w->hash, c->buffer, (size_t)c->size);
            if (c->commandCode == VDC_Read && c->buffer)
                memset(c->buffer, w->fill, (size_t)c->size);
        }
        if (w->hold)
            continue;
        w->last_complete =
            vdi_client_device_complete_command(w->dev, c, w->code, bytes, (uint64_t)c->position);
    }
}

void t_worker_start(t_worker *w, vdi_client_device *dev, uint32_t code) {
    long timeout = w->timeout_ms;
    int hold = w->hold;
    uint8_t fill = w->fill;
    memset(w, 0, sizeof *w);
    w->dev = dev;
    w->code = code;
    w->hold = hold;
    w->fill = fill;
    w->timeout_ms = timeout ? timeout : VDI_INFINITE;
    w->th = t_spawn(worker_main, w);
}

int t_worker_join(t_worker *w) {
    t_join(w->th);
    return w->final_rc;
}

/* ---- gate -------------------------------------------------------------------------------- */

void t_gate_init(t_gate *g) {
    memset(g, 0, sizeof *g);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
}

void t_gate_pass(t_gate *g) {
    pthread_mutex_lock(&g->mu);
    g->inside++;
    pthread_cond_broadcast(&g->cv);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

void t_gate_wait_inside(t_gate *g, int n) {
    pthread_mutex_lock(&g->mu);
    while (g->inside < n)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

void t_gate_open(t_gate *g) {
    pthread_mutex_lock(&g->mu);
    g->open = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

void t_gate_hook(t_cmd *tc) {
    t_gate_pass(tc->hook_ctx);
}

/* ---- wait spy ------------------------------------------------------------------------------ */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t waiting[64];
    int nwaiting;
} spy = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0};

static int spy_wait(void *ctx, uint32_t *word, uint32_t expected, long timeout_ms,
                    enum vdi_wait_kind kind) {
    (void)ctx;
    (void)kind;
    pthread_t me = pthread_self();
    pthread_mutex_lock(&spy.mu);
    if (spy.nwaiting < 64)
        spy.waiting[spy.nwaiting++] = me;
    pthread_cond_broadcast(&spy.cv);
    pthread_mutex_unlock(&spy.mu);
    struct timespec ts, *tsp = NULL;
    if (timeout_ms >= 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (timeout_ms % 1000) * 1000000L;
        tsp = &ts;
    }
    long rc = syscall(SYS_futex, word, FUTEX_WAIT, expected, tsp, NULL, 0);
    int err = rc < 0 ? errno : 0;
    pthread_mutex_lock(&spy.mu);
    for (int i = 0; i < spy.nwaiting; i++)
        if (pthread_equal(spy.waiting[i], me)) {
            spy.waiting[i] = spy.waiting[--spy.nwaiting];
            break;
        }
    pthread_mutex_unlock(&spy.mu);
    return err == ETIMEDOUT ? ETIMEDOUT : 0;
}

static void spy_wake(void *ctx, uint32_t *word, int n) {
    (void)ctx;
    syscall(SYS_futex, word, FUTEX_WAKE, n, NULL, NULL, 0);
}

void t_waitspy_install(void) {
    vdi_seams seams;
    memset(&seams, 0, sizeof seams);
    seams.wait = spy_wait;
    seams.wake = spy_wake;
    vdi_seams_install(&seams);
}

void t_waitspy_remove(void) {
    vdi_seams_install(NULL);
}

void t_waitspy_until_blocked(pthread_t th) {
    pthread_mutex_lock(&spy.mu);
    for (;;) {
        for (int i = 0; i < spy.nwaiting; i++)
            if (pthread_equal(spy.waiting[i], th)) {
                pthread_mutex_unlock(&spy.mu);
                return;
            }
        pthread_cond_wait(&spy.cv, &spy.mu);
    }
}

/* ---- environment ------------------------------------------------------------------------ */

int t_fd_count(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory stream itself */
}

int t_shm_find(const char *needle, char *path, size_t len) {
    DIR *d = opendir("/dev/shm");
    if (!d)
        return 0;
    int found = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strstr(e->d_name, needle)) {
            if (path)
                snprintf(path, len, "/dev/shm/%s", e->d_name);
            found = 1;
            break;
        }
    }
    closedir(d);
    return found;
}

int t_shm_count(const char *needle) {
    DIR *d = opendir("/dev/shm");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strstr(e->d_name, needle) != NULL;
    closedir(d);
    return n;
}

void t_put(int fd, char c) {
    if (write(fd, &c, 1) != 1) {
        fprintf(stderr, "scaffolding: pipe write: %s\n", strerror(errno));
        exit(1);
    }
}

char t_get(int fd) {
    char c;
    ssize_t n;
    do
        n = read(fd, &c, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1) {
        fprintf(stderr, "scaffolding: pipe read: %s\n", n == 0 ? "end of file" : strerror(errno));
        exit(1);
    }
    return c;
}

void t_put_u32(int fd, uint32_t v) {
    for (int i = 0; i < 4; i++)
        t_put(fd, (char)(v >> (8 * i)));
}

uint32_t t_get_u32(int fd) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)(uint8_t)t_get(fd) << (8 * i);
    return v;
}

void t_park(void) {
    int p[2];
    if (pipe(p) != 0)
        _exit(3);
    char c;
    for (;;)
        if (read(p[0], &c, 1) <= 0 && errno != EINTR)
            _exit(3);
}

int t_wait_child(int pid) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

pthread_t t_spawn(void *(*fn)(void *), void *arg) {
    pthread_t th;
    int rc = pthread_create(&th, NULL, fn, arg);
    if (rc != 0) {
        fprintf(stderr, "scaffolding: pthread_create: %s\n", strerror(rc));
        exit(1);
    }
    return th;
}

void *t_join(pthread_t th) {
    void *ret = NULL;
    int rc = pthread_join(th, &ret);
    if (rc != 0) {
        fprintf(stderr, "scaffolding: pthread_join: %s\n", strerror(rc));
        exit(1);
    }
    return ret;
}

int t_run_cases(int argc, char **argv, const t_case *cases, int ncases) {
    if (argc < 2) {
        for (int i = 0; i < ncases; i++)
            cases[i].fn();
        return 0;
    }
    for (int i = 0; i < ncases; i++) {
        if (strcmp(cases[i].name, argv[1]) == 0) {
            cases[i].fn();
            return 0;
        }
    }
    fprintf(stderr, "unknown case '%s'\n", argv[1]);
    return 2;
}
