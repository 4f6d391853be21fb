/* pool.c: the worker processes of vdichaos client --jobs N (pool.h). A worker makes one
 * run, audit_run() as in a run made one by one, and writes its result down a pipe. The
 * slots form a ring in submission order; a run that ended waits in its slot until every
 * run before it was delivered. */
#include "pool.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
    int rc;
    audit_result r;
} outcome;

typedef struct {
    pid_t pid;
    int fd;     /* the read end of the worker's pipe; -1 once it ended */
    int reaped; /* the worker's exit was collected */
    size_t got; /* bytes of out read so far */
    outcome out;
    vdi_plan plan;
} slot;

struct audit_pool {
    audit_ctx *c;
    int jobs, head, n; /* slots[head .. head+n) in flight or waiting, oldest first */
    audit_pool_done done;
    void *arg;
    slot *slots;
};

audit_pool *audit_pool_new(audit_ctx *c, int jobs, audit_pool_done done, void *arg) {
    if (jobs < 1 || jobs > AUDIT_POOL_MAX_JOBS)
        return NULL;
    audit_pool *pl = calloc(1, sizeof *pl);
    if (!pl)
        return NULL;
    pl->slots = calloc((size_t)jobs, sizeof *pl->slots);
    if (!pl->slots) {
        free(pl);
        return NULL;
    }
    pl->c = c;
    pl->jobs = jobs;
    pl->done = done;
    pl->arg = arg;
    return pl;
}

static slot *at(audit_pool *pl, int i) {
    return &pl->slots[(pl->head + i) % pl->jobs];
}

/* Collects the exit of every child that ended: the workers, and what a worker's client
 * left running that came back to us (this process is a subreaper) after the worker ended. */
static void collect_exits(audit_pool *pl) {
    pid_t pid;
    int st;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
        for (int i = 0; i < pl->n; i++)
            if (at(pl, i)->pid == pid)
                at(pl, i)->reaped = 1;
}

static void finish(slot *s) {
    close(s->fd);
    s->fd = -1;
    if (s->got != sizeof s->out) { /* the worker died before it wrote its result */
        fprintf(stderr, "vdichaos client: a worker process ended without its run's result\n");
        memset(&s->out, 0, sizeof s->out);
        s->out.rc = -1;
    }
    if (!s->reaped) {
        while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
            ;
        s->reaped = 1;
    }
}

/* Waits until at least one running worker ended, reading what they wrote. */
static void wait_some(audit_pool *pl) {
    struct pollfd fds[AUDIT_POOL_MAX_JOBS];
    int idx[AUDIT_POOL_MAX_JOBS], nf = 0;
    for (int i = 0; i < pl->n; i++)
        if (at(pl, i)->fd >= 0) {
            fds[nf].fd = at(pl, i)->fd;
            fds[nf].events = POLLIN;
            idx[nf++] = i;
        }
    if (nf == 0)
        return;
    if (poll(fds, (nfds_t)nf, -1) < 0)
        return; /* EINTR: the caller loops */
    for (int k = 0; k < nf; k++) {
        if (!(fds[k].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        slot *s = at(pl, idx[k]);
        ssize_t got = read(s->fd, (char *)&s->out + s->got, sizeof s->out - s->got);
        if (got > 0)
            s->got += (size_t)got;
        else if (got == 0 || errno != EINTR)
            finish(s);
    }
    collect_exits(pl);
}

/* Delivers, oldest first, the runs that ended. */
static void deliver(audit_pool *pl) {
    while (pl->n > 0 && at(pl, 0)->fd < 0) {
        slot *s = at(pl, 0);
        pl->done(pl->arg, &s->plan, s->out.rc, &s->out.r);
        pl->head = (pl->head + 1) % pl->jobs;
        pl->n--;
    }
}

static void write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

int audit_pool_submit(audit_pool *pl, const vdi_plan *p) {
    deliver(pl);
    while (pl->n == pl->jobs) {
        wait_some(pl);
        deliver(pl);
    }
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        fprintf(stderr, "vdichaos client: pipe: %s\n", strerror(errno));
        return -1;
    }
    slot *s = at(pl, pl->n);
    memset(s, 0, sizeof *s);
    s->plan = *p;
    unsigned long run = ++pl->c->runs; /* the worker's run-N, as if made one by one */
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "vdichaos client: fork: %s\n", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        pl->c->runs--;
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        for (int i = 0; i < pl->n; i++)
            close(at(pl, i)->fd);
        /* What the client leaves running comes back to the worker, which judges it. */
        (void)prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        pl->c->runs = run - 1;
        outcome out;
        memset(&out, 0, sizeof out);
        out.rc = audit_run(pl->c, &s->plan, &out.r);
        write_all(fds[1], &out, sizeof out);
        _exit(0);
    }
    close(fds[1]);
    s->pid = pid;
    s->fd = fds[0];
    pl->n++;
    return 0;
}

void audit_pool_drain(audit_pool *pl) {
    while (pl->n > 0) {
        deliver(pl);
        if (pl->n > 0)
            wait_some(pl);
    }
}

void audit_pool_free(audit_pool *pl) {
    if (!pl)
        return;
    audit_pool_drain(pl);
    free(pl->slots);
    free(pl);
}
