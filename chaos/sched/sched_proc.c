/* sched_proc.c: the processes of a session. fork, vfork, the exec family and posix_spawn
 * reserve the slot the new process image joins in (and pass the session on in its
 * environment); the waits for a child block until it leaves the session; the program's
 * signal handlers are counted, since a delivery is not the strategy's choice. */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sched_internal.h"

/* ---- processes: a child joins the session in the slot its parent reserved ---- */

/* A slot for a process the caller starts (fork, spawn): runnable, arriving. */
static int reserve_child(const char *point) {
    lock_sched();
    int slot = new_slot(0, P.pid, point);
    if (slot >= 0) {
        G->t[slot].arriving = 1;
        G->t[slot].since_ms = real_ms();
    }
    unlock_sched();
    return slot;
}

/* After the start of the child of slot (rc: 0 it started, as pid; else it did not). */
static void child_started(int slot, int rc, pid_t pid) {
    if (slot < 0)
        return;
    lock_sched();
    struct thread *t = &G->t[slot];
    if (rc != 0) {
        t->state = T_EXITED;
        t->arriving = 0;
    } else if (pid > 0 && t->pid == 0) {
        t->pid = pid;
    }
    unlock_sched();
}

/* This process's identity, in this process (the first one, a forked child, a new image). */
void identify(void) {
    P.pid = (pid_t)real_syscall(SYS_getpid);
    const char *name = program_invocation_short_name;
    snprintf(P.prog, sizeof P.prog, "%s", name && *name ? name : "?");
}

/* This thread takes slot (reserved for it by its parent, or its own before an exec). */
void take_slot(int slot) {
    struct thread *t = &G->t[slot];
    t->pid = P.pid;
    t->ppid = (pid_t)real_syscall(SYS_getppid);
    t->pid_start = proc_start(P.pid);
    t->tid = (pid_t)real_syscall(SYS_gettid);
    t->handle = pthread_self();
    snprintf(t->prog, sizeof t->prog, "%s", P.prog);
    t->arriving = 0;
    self = slot;
}

EXPORT pid_t fork(void) {
    if (!real_fork)
        lookup_all();
    if (!ready()) {
        pid_t p = real_fork();
        if (p == 0 && P.on) { /* forked by a thread outside control: the child runs free */
            P.on = 0;
            self = -1;
        }
        return p;
    }
    int slot = reserve_child("fork:child");
    pid_t p = real_fork();
    if (p == 0) {
        identify();
        if (slot < 0) {
            P.on = 0;
            self = -1;
            return 0;
        }
        lock_sched();
        take_slot(slot);
        unlock_sched();
        wait_turn();
        return 0;
    }
    int e = errno;
    child_started(slot, p < 0, p);
    reschedule("fork");
    errno = e;
    return p;
}

/* vfork's child shares its parent's memory and thread until it executes a program, which
 * would have it write the parent's slot: under the scheduler it is a fork (which POSIX
 * allows: a program may only execute or _exit in the child). */
EXPORT pid_t vfork(void) {
    return fork();
}

/* The environment a program executed under the session gets: the caller's, with the
 * scheduler's settings (its slot among them) and the library in LD_PRELOAD put back if the
 * caller left them out. Freed by the caller. */
static char **session_env(char *const envp[], int slot) {
    static const char lib_var[] = "LD_PRELOAD=";
    size_t n = 0;
    while (envp && envp[n])
        n++;
    char **out = malloc((n + 8) * sizeof *out);
    char *buf = malloc(4 * PATH_MAX + 256);
    if (!out || !buf) {
        free(out);
        free(buf);
        return NULL;
    }
    size_t k = 0, at = 0;
    const char *preload = "";
    for (size_t i = 0; i < n; i++) {
        if (strncmp(envp[i], "VDICHAOS_SCHED=", 15) == 0 ||
            strncmp(envp[i], "VDICHAOS_SCHED_SESSION=", 23) == 0 ||
            strncmp(envp[i], "VDICHAOS_SCHED_SLOT=", 20) == 0 ||
            strncmp(envp[i], "VDICHAOS_SCHED_OUT=", 19) == 0 ||
            (P.timeline && strncmp(envp[i], "VDICHAOS_SCHED_TIMELINE=", 24) == 0))
            continue;
        if (strncmp(envp[i], lib_var, sizeof lib_var - 1) == 0) {
            preload = envp[i] + sizeof lib_var - 1;
            continue;
        }
        out[k++] = envp[i];
    }
    Dl_info info;
    const char *lib = dladdr((void *)&G, &info) && info.dli_fname ? info.dli_fname : "";
#define PUT(...)                                                                                   \
    do {                                                                                           \
        out[k++] = buf + at;                                                                       \
        at += (size_t)snprintf(buf + at, 4 * PATH_MAX + 256 - at, __VA_ARGS__) + 1;                \
    } while (0)
    if (*lib && !strstr(preload, lib))
        PUT("LD_PRELOAD=%s%s%s", lib, *preload ? ":" : "", preload);
    else
        PUT("LD_PRELOAD=%s", preload);
    PUT("VDICHAOS_SCHED=%s", G->spec);
    PUT("VDICHAOS_SCHED_SESSION=%s", P.path);
    PUT("VDICHAOS_SCHED_SLOT=%d", slot);
    if (P.out[0])
        PUT("VDICHAOS_SCHED_OUT=%s", P.out);
    if (P.timeline)
        PUT("VDICHAOS_SCHED_TIMELINE=1");
#undef PUT
    out[k] = NULL;
    /* the strings live in buf: one block for the caller to free, after the array */
    char **block = realloc(out, (k + 2) * sizeof *out);
    if (block)
        out = block;
    out[k + 1] = buf;
    return out;
}

static void free_env(char **env) {
    if (!env)
        return;
    size_t k = 0;
    while (env[k])
        k++;
    free(env[k + 1]);
    free(env);
}

/* exec: the new program goes on in this thread's slot, with the token, when it arrives. */
static int exec_in_session(const char *file, char *const argv[], char *const envp[], int search) {
    if (!real_execve)
        lookup_all();
    /* not a process of ours: the child of a raw clone (a vfork of some other library) */
    if (!ready() || (pid_t)real_syscall(SYS_getpid) != P.pid)
        return search ? real_execvpe(file, argv, envp) : real_execve(file, argv, envp);
    reschedule("exec");
    char **env = session_env(envp, self);
    if (!env) {
        errno = ENOMEM;
        return -1;
    }
    lock_sched();
    G->t[self].arriving = 1;
    G->t[self].since_ms = real_ms();
    unlock_sched();
    int rc = search ? real_execvpe(file, argv, env) : real_execve(file, argv, env);
    int e = errno;
    lock_sched();
    G->t[self].arriving = 0;
    unlock_sched();
    free_env(env);
    errno = e;
    return rc;
}

EXPORT int execve(const char *path, char *const argv[], char *const envp[]) {
    return exec_in_session(path, argv, envp, 0);
}
EXPORT int execv(const char *path, char *const argv[]) {
    return exec_in_session(path, argv, environ, 0);
}
EXPORT int execvpe(const char *file, char *const argv[], char *const envp[]) {
    return exec_in_session(file, argv, envp, 1);
}
EXPORT int execvp(const char *file, char *const argv[]) {
    return exec_in_session(file, argv, environ, 1);
}

/* execl, execlp, execle: the arguments gathered into a vector. */
static int exec_list(const char *file, const char *arg, va_list ap, int search, int with_env) {
    size_t n = 1;
    va_list count;
    va_copy(count, ap);
    while (va_arg(count, const char *))
        n++;
    va_end(count);
    char **argv = malloc((n + 1) * sizeof *argv);
    if (!argv) {
        errno = ENOMEM;
        return -1;
    }
    argv[0] = (char *)arg;
    for (size_t i = 1; i <= n; i++)
        argv[i] = va_arg(ap, char *); /* the last is the NULL that ends the list */
    char *const *envp = with_env ? va_arg(ap, char *const *) : environ;
    int rc = exec_in_session(file, argv, envp, search);
    int e = errno;
    free(argv);
    errno = e;
    return rc;
}

EXPORT int execl(const char *path, const char *arg, ...) {
    va_list ap;
    va_start(ap, arg);
    int rc = exec_list(path, arg, ap, 0, 0);
    va_end(ap);
    return rc;
}
EXPORT int execlp(const char *file, const char *arg, ...) {
    va_list ap;
    va_start(ap, arg);
    int rc = exec_list(file, arg, ap, 1, 0);
    va_end(ap);
    return rc;
}
EXPORT int execle(const char *path, const char *arg, ...) {
    va_list ap;
    va_start(ap, arg);
    int rc = exec_list(path, arg, ap, 0, 1);
    va_end(ap);
    return rc;
}

/* posix_spawn: the new program joins in a slot reserved now. */
static int spawn_in_session(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
                            const posix_spawnattr_t *attr, char *const argv[], char *const envp[],
                            int search) {
    if (!real_spawn)
        lookup_all();
    if (!ready())
        return search ? real_spawnp(pid, file, fa, attr, argv, envp)
                      : real_spawn(pid, file, fa, attr, argv, envp);
    int slot = reserve_child("spawn:child");
    if (slot < 0)
        return search ? real_spawnp(pid, file, fa, attr, argv, envp)
                      : real_spawn(pid, file, fa, attr, argv, envp);
    char **env = session_env(envp, slot);
    if (!env) {
        child_started(slot, 1, 0);
        return ENOMEM;
    }
    pid_t got = 0;
    int rc = search ? real_spawnp(&got, file, fa, attr, argv, env)
                    : real_spawn(&got, file, fa, attr, argv, env);
    free_env(env);
    child_started(slot, rc, got);
    if (rc == 0 && pid)
        *pid = got;
    reschedule("posix_spawn");
    return rc;
}

EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                       const posix_spawnattr_t *attr, char *const argv[], char *const envp[]) {
    return spawn_in_session(pid, path, fa, attr, argv, envp, 0);
}
EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
                        const posix_spawnattr_t *attr, char *const argv[], char *const envp[]) {
    return spawn_in_session(pid, file, fa, attr, argv, envp, 1);
}

/* ---- waiting for a child ---- */

/* The children pid names (pid > 0: that one; otherwise any of ours) in the session: 1 when
 * one is still in it, 0 when they were and have all left (their end is at hand), -1 when
 * none is a process of the session. */
static int children_in_session(pid_t pid) {
    int seen = 0;
    for (int i = 0; i < G->nthreads; i++) {
        const struct thread *t = &G->t[i];
        int match = pid > 0 ? t->pid == pid : t->ppid == P.pid && t->pid != P.pid;
        if (t->state == T_FREE || !match)
            continue;
        seen = 1;
        if (t->state != T_EXITED)
            return 1;
    }
    return seen ? 0 : -1;
}

/* One wait for a child (waitpid, wait4, waitid): the C library's call with WNOHANG added
 * or not. Returns the child's pid, 0 when none is ready (WNOHANG), -1 on an error. */
struct child_wait {
    int kind; /* 0 wait4 (waitpid, wait, wait3), 1 waitid */
    pid_t pid;
    int *status, options;
    struct rusage *usage;
    idtype_t idtype;
    id_t id;
    siginfo_t *info;
};

static pid_t child_wait_once(struct child_wait *w, int nohang) {
    if (w->kind == 0)
        return real_wait4(w->pid, w->status, w->options | nohang, w->usage);
    if (w->info)
        w->info->si_pid = 0;
    int rc = real_waitid(w->idtype, w->id, w->info, w->options | nohang);
    return rc != 0 ? -1 : w->info ? w->info->si_pid : 1;
}

/* A wait for a child of the session is the scheduler's: the parent is blocked until the
 * child leaves the session, then waits in the C library for the moment it takes to end.
 * A wait for any other child runs with the token let go. */
static pid_t child_wait(struct child_wait *w) {
    if (!ready())
        return child_wait_once(w, 0);
    reschedule("waitpid");
    for (;;) {
        pid_t r = child_wait_once(w, WNOHANG);
        if (r != 0 || (w->options & WNOHANG))
            return r;
        lock_sched();
        int in = children_in_session(w->pid);
        unlock_sched();
        if (in == 1) {
            block_on(KEY_CHILD, 0, "waitpid:wait");
            continue;
        }
        if (in == 0)
            return child_wait_once(w, 0);
        break;
    }
    external_begin("waitpid for a process outside the session");
    pid_t r = child_wait_once(w, 0);
    int e = errno;
    external_end();
    errno = e;
    return r;
}

EXPORT pid_t wait4(pid_t pid, int *status, int options, struct rusage *usage) {
    struct child_wait w = {0, pid, status, options, usage, P_ALL, 0, NULL};
    return child_wait(&w);
}
EXPORT pid_t waitpid(pid_t pid, int *status, int options) {
    return wait4(pid, status, options, NULL);
}
EXPORT pid_t wait3(int *status, int options, struct rusage *usage) {
    return wait4(-1, status, options, usage);
}
EXPORT pid_t wait(int *status) {
    return wait4(-1, status, 0, NULL);
}
EXPORT int waitid(idtype_t idtype, id_t id, siginfo_t *info, int options) {
    struct child_wait w = {1,   idtype == P_PID ? (pid_t)id : -1, NULL, options, NULL, idtype, id,
                           info};
    return child_wait(&w) < 0 ? -1 : 0;
}

/* ---- signals ---- */

/* A handler runs when the kernel delivers its signal, not when the strategy says: a run in
 * which one ran is not fully controlled. The program's handlers are installed behind one of
 * ours that counts each delivery, so a handler installed and never run (a clean-up on
 * SIGTERM) changes nothing. The synchronous fault signals (a crash, an abort, a sanitizer's
 * or an audit's fault handler) change no schedule and are left alone. */
static struct sigaction user_sa[NSIG]; /* the program's handler behind ours */
static int wrapped[NSIG];

static int fault_signal(int sig) {
    return sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL || sig == SIGABRT ||
           sig == SIGTRAP;
}

static void counted_handler(int sig, siginfo_t *si, void *uc) {
    if (P.on)
        CHAOS_ADD_RELAXED(&G->signals, 1);
    const struct sigaction *u = &user_sa[sig];
    if (u->sa_flags & SA_SIGINFO)
        u->sa_sigaction(sig, si, uc);
    else if (u->sa_handler != SIG_DFL && u->sa_handler != SIG_IGN)
        u->sa_handler(sig);
}

EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
    if (!real_sigaction)
        lookup_all();
    if (sig <= 0 || sig >= NSIG)
        return real_sigaction(sig, act, old);
    int was = wrapped[sig];
    struct sigaction prev = user_sa[sig], mine;
    int wrap = act && P.on && !fault_signal(sig) && act->sa_handler != SIG_DFL &&
               act->sa_handler != SIG_IGN;
    if (wrap) {
        user_sa[sig] = *act; /* before ours is in place: a delivery finds it */
        mine = *act;
        mine.sa_flags |= SA_SIGINFO;
        mine.sa_sigaction = counted_handler;
    }
    int rc = real_sigaction(sig, wrap ? &mine : act, old);
    if (rc != 0) {
        user_sa[sig] = prev;
        return rc;
    }
    if (old && was && old->sa_sigaction == counted_handler) { /* the program sees its own */
        old->sa_flags = prev.sa_flags;
        if (prev.sa_flags & SA_SIGINFO)
            old->sa_sigaction = prev.sa_sigaction;
        else
            old->sa_handler = prev.sa_handler;
    }
    if (act)
        wrapped[sig] = wrap;
    return rc;
}

/* signal(): the C library's meaning (BSD: the call restarted, the signal held during its
 * handler), through sigaction above. */
EXPORT __sighandler_t signal(int sig, __sighandler_t h) {
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = h;
    sigemptyset(&sa.sa_mask);
    if (sig > 0 && sig < NSIG)
        sigaddset(&sa.sa_mask, sig);
    sa.sa_flags = SA_RESTART;
    if (sigaction(sig, &sa, &old) != 0)
        return SIG_ERR;
    return old.sa_handler;
}
