/* sched_procs.c: processes under one controlled scheduler (a session of
 * libvdichaos_sched.so), for t_sched.sh. One program, its mode the first argument:
 *
 *   fork-exec        forks a child that executes this program again (mode worker): a thread
 *                    and a timed sleep there, then the parent waits for it (exit 0)
 *   worker           the executed child: a thread, a 2 s sleep, a mutex hand-off (exit 0)
 *   pair FILE ROLE   one of two processes started apart (ROLE 0 or 1) in one declared
 *                    session, sharing a word in FILE: 0 waits on the word with a raw futex
 *                    until 1 stores 1 and wakes it (exit 0; 2 when the wait timed out)
 *   pair-lost FILE ROLE  the same, but 1 never stores: 0 waits forever (a hang, 86)
 *   die              a child that kills itself with the token: the parent goes on (exit 0)
 *   system           a child started by system(3), out of the scheduler's sight (exit 0)
 *   pipe             main reads a pipe (a call the scheduler does not see) that a thread
 *                    writes after a sleep: the token is taken from the blocked reader (exit 0)
 *   slow-end MS      a child whose end takes MS real milliseconds after it left the session
 *                    (an exit handler that sleeps, as a slow leak check would): the parent's
 *                    wait gives up waiting for it to end at the arrival time (exit 0)
 *   alone            the worker's threads, in a declared session that expects a second
 *                    process which never comes: it is given up at the arrival time (exit 0)
 *
 * usage: sched-procs MODE [ARGS]  (prints one line saying what happened) */
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static int shared_count;

static void *adder(void *arg) {
    (void)arg;
    for (int i = 0; i < 3; i++) {
        pthread_mutex_lock(&m);
        shared_count++;
        pthread_mutex_unlock(&m);
    }
    return NULL;
}

static int threads_and_sleep(void) {
    pthread_t t;
    if (pthread_create(&t, NULL, adder, NULL) != 0)
        return 2;
    adder(NULL);
    struct timespec two = {2, 0};
    nanosleep(&two, NULL);
    pthread_join(t, NULL);
    return shared_count == 6 ? 0 : 1;
}

static int wait_child(pid_t pid, int want_signal) {
    int st = 0;
    if (waitpid(pid, &st, 0) != pid)
        return 2;
    if (want_signal)
        return WIFSIGNALED(st) && WTERMSIG(st) == want_signal ? 0 : 1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}

static long futex(uint32_t *w, int op, uint32_t v, const struct timespec *ts) {
    return syscall(SYS_futex, w, op, v, ts, NULL, 0);
}

static int pair(const char *file, int role, int lost) {
    int fd = open(file, O_RDWR | O_CREAT, 0600);
    if (fd < 0 || ftruncate(fd, 4096) != 0)
        return 3;
    uint32_t *word = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (word == MAP_FAILED)
        return 3;
    if (role == 0) {
        while (__atomic_load_n(word, __ATOMIC_ACQUIRE) == 0)
            futex(word, FUTEX_WAIT, 0, NULL);
        printf("woken\n");
        return 0;
    }
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL); /* the waiter most often waits first */
    if (!lost) {
        __atomic_store_n(word, 1, __ATOMIC_RELEASE);
        futex(word, FUTEX_WAKE, 1, NULL);
    }
    printf("%s\n", lost ? "left without a word" : "stored and woke");
    return 0;
}

static int pipe_fds[2];

/* Set in slow-end's child: its end, after the scheduler's exit handler, takes this long. */
static long slow_end_ms;

static void slow_end(void *arg) {
    (void)arg;
    if (slow_end_ms <= 0)
        return;
    struct timespec ts = {slow_end_ms / 1000, (slow_end_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* the session is left: a real sleep */
}

/* Registered before any library's initialiser runs and for no object in particular, as a
 * sanitizer's runtime registers its leak check: it runs after every library's exit handlers,
 * the scheduler's too, so after the process left the session. */
int __cxa_atexit(void (*fn)(void *), void *arg, void *dso);
static void register_slow_end(void) {
    __cxa_atexit(slow_end, NULL, NULL);
}
__attribute__((section(".preinit_array"),
               used)) static void (*const preinit)(void) = register_slow_end;

static void *writer(void *arg) {
    (void)arg;
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL);
    if (write(pipe_fds[1], "x", 1) != 1)
        return (void *)1;
    return NULL;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "worker") == 0)
        return threads_and_sleep();
    if (strcmp(mode, "fork-exec") == 0) {
        pid_t pid = fork();
        if (pid == 0) {
            execl("/proc/self/exe", argv[0], "worker", (char *)NULL);
            _exit(127);
        }
        int rc = pid > 0 ? wait_child(pid, 0) : 2;
        printf("child %s\n", rc == 0 ? "ok" : "failed");
        return rc;
    }
    if ((strcmp(mode, "pair") == 0 || strcmp(mode, "pair-lost") == 0) && argc == 4)
        return pair(argv[2], atoi(argv[3]), strcmp(mode, "pair-lost") == 0);
    if (strcmp(mode, "die") == 0) {
        pid_t pid = fork();
        if (pid == 0) {
            raise(SIGKILL); /* with the token: the scheduler must notice */
            _exit(1);
        }
        int rc = pid > 0 ? wait_child(pid, SIGKILL) : 2;
        pthread_t t; /* and the session goes on after it */
        if (rc == 0 && pthread_create(&t, NULL, adder, NULL) == 0)
            pthread_join(t, NULL);
        printf("child killed, parent went on: %d\n", shared_count);
        return rc == 0 && shared_count == 3 ? 0 : 1;
    }
    if (strcmp(mode, "pipe") == 0) {
        pthread_t t;
        if (pipe(pipe_fds) != 0 || pthread_create(&t, NULL, writer, NULL) != 0)
            return 2;
        char c = 0;
        ssize_t n = read(pipe_fds[0], &c, 1); /* blocks with the token until it is taken */
        pthread_join(t, NULL);
        printf("read %zd\n", n);
        return n == 1 && c == 'x' ? 0 : 1;
    }
    if (strcmp(mode, "slow-end") == 0 && argc == 3) {
        pid_t pid = fork();
        if (pid == 0) {
            slow_end_ms = atol(argv[2]);
            exit(0);
        }
        int rc = pid > 0 ? wait_child(pid, 0) : 2;
        printf("slow child %s\n", rc == 0 ? "ended" : "failed");
        return rc;
    }
    if (strcmp(mode, "alone") == 0) {
        int rc = threads_and_sleep();
        printf("alone: %d\n", rc);
        return rc;
    }
    if (strcmp(mode, "system") == 0) {
        int st = system("exit 0");
        printf("system: %d\n", st);
        return st == 0 ? 0 : 1;
    }
    fprintf(stderr, "usage: sched-procs fork-exec|worker|pair FILE ROLE|pair-lost FILE ROLE|"
                    "die|system|pipe|slow-end MS|alone\n");
    return 2;
}
