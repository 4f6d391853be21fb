/* bench_util.h: what the data-path benchmarks share: a clock, a client process that
 * serves one device (optionally copying every written byte out of the shared buffer, as
 * a backup application must), and a server that keeps a fixed number of commands in
 * flight by re-sending each command from its completion routine. Public API only. */
#ifndef VDI_BENCH_UTIL_H
#define VDI_BENCH_UTIL_H

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vdi/vdi.h"

static inline double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Pins the calling thread (and the threads it creates later) to one CPU; -1 lets it
 * run anywhere it was allowed to at the start. */
static inline void bench_pin(int cpu) {
    static cpu_set_t initial;
    static int saved;
    if (!saved) {
        sched_getaffinity(0, sizeof initial, &initial);
        saved = 1;
    }
    cpu_set_t set = initial;
    if (cpu >= 0) {
        CPU_ZERO(&set);
        CPU_SET((size_t)cpu, &set);
    }
    if (sched_setaffinity(0, sizeof set, &set) != 0)
        fprintf(stderr, "bench: cannot pin to CPU %d\n", cpu);
}

/* The first two CPUs this process may use; *b = -1 when there is only one. */
static inline void bench_two_cpus(int *a, int *b) {
    cpu_set_t set;
    *a = *b = -1;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return;
    for (int i = 0; i < CPU_SETSIZE; i++)
        if (CPU_ISSET((size_t)i, &set)) {
            if (*a < 0)
                *a = i;
            else if (*b < 0)
                *b = i;
        }
}

static inline _Noreturn void bench_die(const char *what, int rc) {
    fprintf(stderr, "bench: %s: %s\n", what, vdi_strerror(rc));
    exit(1);
}

/* The client side, run in a child process: creates the set, says so on ready_fd, then
 * serves device 0 until the server closes it. With copy, every VDC_Write's bytes are
 * copied once into private memory. */
static inline int bench_client(const char *set_name, int copy, int ready_fd) {
    vdi_client_set *c = vdi_client_set_new();
    VDConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.deviceCount = 1;
    int rc = vdi_client_set_create_ex(c, NULL, set_name, &cfg);
    if (rc != NOERROR)
        bench_die("client create", rc);
    if (write(ready_fd, "r", 1) != 1)
        return 1;
    if ((rc = vdi_client_set_get_configuration(c, 60000, &cfg)) != NOERROR)
        bench_die("client get_configuration", rc);
    vdi_client_device *dev;
    if ((rc = vdi_client_set_open_device(c, set_name, &dev)) != NOERROR)
        bench_die("client open_device", rc);
    uint8_t *sink = copy ? malloc(cfg.maxTransferSize) : NULL;
    for (;;) {
        VDC_Command *cmd;
        rc = vdi_client_device_get_command(dev, 60000, &cmd);
        if (rc == VD_E_CLOSE)
            break;
        if (rc != NOERROR)
            bench_die("client get_command", rc);
        uint32_t n = cmd->commandCode == VDC_Write ? (uint32_t)cmd->size : 0;
        if (sink && n) {
            memcpy(sink, cmd->buffer, n);
            __asm__ volatile("" : : "r"(sink) : "memory"); /* the copy is the point */
        }
        rc = vdi_client_device_complete_command(dev, cmd, ERROR_SUCCESS, n,
                                                (uint64_t)cmd->position + n);
        if (rc != NOERROR)
            bench_die("client complete_command", rc);
    }
    free(sink);
    rc = vdi_client_set_close(c);
    vdi_client_set_free(c);
    return rc == NOERROR ? 0 : 1;
}

typedef struct bench_server {
    vdi_server_set *set;
    vdi_server_device *dev;
    pthread_t agent;
    pid_t client;
    VDS_Command cmds[VDI_MAX_OUTSTANDING];
    atomic_long to_send;   /* sends still to make */
    atomic_long completed; /* completions seen */
    long total;
    atomic_int failed;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    double t_end;
} bench_server;

static inline void *bench_agent_main(void *arg) {
    bench_server *b = arg;
    (void)vdi_server_set_execute_completion_agent(b->set);
    return NULL;
}

/* The routine re-sends its own command while sends remain, so the in-flight count
 * stays constant without any thread but the agent's. */
static inline void bench_routine(VDS_Command *cmd) {
    bench_server *b = cmd->completionContext;
    if (cmd->completionCode != ERROR_SUCCESS)
        atomic_store(&b->failed, 1);
    long done = atomic_fetch_add(&b->completed, 1) + 1;
    if (!atomic_load(&b->failed) && atomic_fetch_sub(&b->to_send, 1) > 0) {
        (void)vdi_server_device_send_command(b->dev, cmd); /* a rejection calls us back */
        return;
    }
    if (done == b->total || atomic_load(&b->failed)) {
        pthread_mutex_lock(&b->mu);
        if (!b->done)
            b->t_end = bench_now();
        b->done = 1;
        pthread_cond_signal(&b->cv);
        pthread_mutex_unlock(&b->mu);
    }
}

static inline void bench_ignore(VDS_Command *cmd) {
    (void)cmd;
}

/* Forks the client (pinned to client_cpu unless -1), opens and configures the set for
 * `depth` commands of `xfer` bytes, starts the agent and waits until it runs. */
static inline void bench_server_start(bench_server *b, const char *set_name, uint32_t xfer,
                                      uint32_t depth, int copy, int client_cpu) {
    memset(b, 0, sizeof *b);
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    int p[2];
    if (pipe(p) != 0)
        exit(1);
    b->client = fork();
    if (b->client < 0)
        exit(1);
    if (b->client == 0) {
        close(p[0]);
        if (client_cpu >= 0)
            bench_pin(client_cpu);
        _exit(bench_client(set_name, copy, p[1]));
    }
    close(p[1]);
    char ch;
    if (read(p[0], &ch, 1) != 1) {
        fprintf(stderr, "bench: the client process did not start\n");
        exit(1);
    }
    close(p[0]);
    b->set = vdi_server_set_new();
    int rc = vdi_server_set_open(b->set, NULL, set_name);
    if (rc == NOERROR)
        rc = vdi_server_set_begin_configuration(b->set, VDF_WriteMedia, 65536, 0,
                                                xfer ? xfer : VDI_TRANSFER_UNIT, 0);
    if (rc == NOERROR && xfer)
        rc = vdi_server_set_request_buffers(b->set, xfer, 0, depth);
    if (rc == NOERROR)
        rc = vdi_server_set_end_configuration(b->set);
    if (rc == NOERROR)
        rc = vdi_server_set_open_device(b->set, set_name, &b->dev);
    if (rc != NOERROR)
        bench_die("server setup", rc);
    pthread_create(&b->agent, NULL, bench_agent_main, b);
    for (;;) { /* a malformed probe answers PROTOCOL until the agent runs, then INVALID */
        VDS_Command probe;
        memset(&probe, 0, sizeof probe);
        probe.commandCode = 999;
        probe.completionRoutine = bench_ignore;
        rc = vdi_server_device_send_command(b->dev, &probe);
        if (rc == VD_E_INVALID)
            break;
        if (rc != VD_E_PROTOCOL)
            bench_die("agent probe", rc);
        poll(NULL, 0, 1);
    }
}

/* Sends `total` commands of `code` with `depth` in flight; returns the seconds from
 * the first send to the last completion. May be called again on the same set. */
static inline double bench_server_run(bench_server *b, int32_t code, uint32_t xfer, uint32_t depth,
                                      long total) {
    b->total = total;
    b->done = 0;
    atomic_store(&b->completed, 0);
    atomic_store(&b->to_send, total - (long)depth);
    for (uint32_t i = 0; i < depth; i++) {
        VDS_Command *c = &b->cmds[i];
        uint8_t *buf = c->buffer;
        memset(c, 0, sizeof *c);
        c->commandCode = code;
        if (xfer && !buf) {
            int rc = vdi_server_set_allocate_buffer(b->set, &buf, xfer, 0);
            if (rc != NOERROR)
                bench_die("allocate_buffer", rc);
            memset(buf, (int)i + 1, xfer); /* touch it: no page faults while timed */
        }
        c->buffer = buf;
        c->size = (int32_t)xfer;
        c->completionRoutine = bench_routine;
        c->completionContext = b;
    }
    double t0 = bench_now();
    for (uint32_t i = 0; i < depth; i++)
        (void)vdi_server_device_send_command(b->dev, &b->cmds[i]);
    pthread_mutex_lock(&b->mu);
    while (!b->done)
        pthread_cond_wait(&b->cv, &b->mu);
    double t = b->t_end - t0;
    pthread_mutex_unlock(&b->mu);
    if (atomic_load(&b->failed)) {
        fprintf(stderr, "bench: a command failed\n");
        exit(1);
    }
    return t;
}

static inline void bench_server_finish(bench_server *b) {
    int rc = vdi_server_device_close(b->dev);
    if (rc != NOERROR)
        bench_die("close_device", rc);
    pthread_join(b->agent, NULL);
    if ((rc = vdi_server_set_close(b->set)) != NOERROR)
        bench_die("server close", rc);
    vdi_server_set_free(b->set);
    int st;
    if (waitpid(b->client, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "bench: the client process failed\n");
        exit(1);
    }
}

#endif /* VDI_BENCH_UTIL_H */
