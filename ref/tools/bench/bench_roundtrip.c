/* bench_roundtrip: command round trips per second through VDI between two processes
 * with one command in flight (send, client get and complete, agent callback that sends
 * the next), as a ratio of a bare futex ping-pong between two threads: the least that
 * any wake-up-driven exchange costs on this machine.
 *
 * VDI's two parties are processes, and a switch between processes costs more than one
 * between threads (the address space changes: without PCID every switch flushes the TLB).
 * So the same ping-pong is also measured between two processes, on a word in a shared
 * mapping (pingpong_proc_*): what the same exchange costs between processes, with no
 * VDI at all. The ratio against it (roundtrip_ratio_proc_*) is printed beside the one
 * against threads; the target is set against threads.
 *
 * Wake-up cost depends on where the two parties run (one CPU: a direct switch; two
 * CPUs: an inter-processor wake-up, very slow in some VMs), and an unpinned run lands on
 * either at random. So both sides of the ratio are measured twice with the same
 * placement: both parties pinned to one CPU, and one party per CPU.
 *
 * usage: bench_roundtrip [round trips per run (default 20000)] [only]
 * Prints "key value" lines (*_1cpu, *_2cpu); the best of three runs counts. `only`
 * (pingpong_1cpu, pingpong_proc_1cpu, vdi_1cpu, and the same with _2cpu) runs that one
 * measurement alone, so that a profiler sees nothing else; pingpong_spin_proc_* is the
 * process ping-pong where a waiter spins up to BENCH_SPIN_NS (default 50000) before it
 * sleeps and a pass wakes only a registered sleeper: what that design would buy VDI. */
#include "bench_util.h"

#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>

static _Atomic uint32_t ball; /* 0: the pinger's turn, 1: the ponger's */
static long pp_rounds;
static int pong_cpu;

static void futex_wait(_Atomic uint32_t *w, uint32_t v) {
    while (atomic_load_explicit(w, memory_order_acquire) == v)
        syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT, v, NULL, NULL, 0);
}

static void futex_pass(_Atomic uint32_t *w, uint32_t v) {
    atomic_store_explicit(w, v, memory_order_release);
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE, 1, NULL, NULL, 0);
}

static void *ponger(void *arg) {
    (void)arg;
    bench_pin(pong_cpu);
    for (long i = 0; i < pp_rounds; i++) {
        futex_wait(&ball, 0);
        futex_pass(&ball, 0);
    }
    return NULL;
}

static double pingpong_per_s(long rounds, int ping, int pong) {
    double best = 0;
    pp_rounds = rounds;
    pong_cpu = pong;
    bench_pin(ping);
    for (int run = 0; run < 3; run++) {
        atomic_store(&ball, 0);
        pthread_t t;
        pthread_create(&t, NULL, ponger, NULL);
        double t0 = bench_now();
        for (long i = 0; i < rounds; i++) {
            futex_pass(&ball, 1);
            futex_wait(&ball, 1);
        }
        double r = (double)rounds / (bench_now() - t0);
        pthread_join(t, NULL);
        best = r > best ? r : best;
    }
    return best;
}

/* The shared page of the process ping-pong: the ball and, for the spinning variant, how
 * many parties sleep on it (a pass makes the wake call only when someone may sleep). */
typedef struct pp_shm {
    _Atomic uint32_t ball;
    _Atomic uint32_t sleepers;
} pp_shm;

static long spin_ns; /* > 0: spin up to this long before sleeping (pingpong_spin_proc) */

static void pp_wait(pp_shm *p, uint32_t v) {
    if (spin_ns > 0) {
        double until = bench_now() + (double)spin_ns * 1e-9;
        while (atomic_load(&p->ball) == v && bench_now() < until)
            __builtin_ia32_pause();
        /* Seq_cst increment then re-check: pairs with pp_pass's store then load of
         * sleepers, so a pass either sees this sleeper or this wait sees the pass. */
        atomic_fetch_add(&p->sleepers, 1);
        while (atomic_load(&p->ball) == v)
            syscall(SYS_futex, (uint32_t *)&p->ball, FUTEX_WAIT, v, NULL, NULL, 0);
        atomic_fetch_sub(&p->sleepers, 1);
        return;
    }
    futex_wait(&p->ball, v);
}

static void pp_pass(pp_shm *p, uint32_t v) {
    if (spin_ns > 0) {
        atomic_store(&p->ball, v);
        if (atomic_load(&p->sleepers))
            syscall(SYS_futex, (uint32_t *)&p->ball, FUTEX_WAKE, 1, NULL, NULL, 0);
        return;
    }
    futex_pass(&p->ball, v);
}

/* The same ping-pong between this process and a forked one (pinned to `pong`), on a
 * word in a shared anonymous mapping (shmem, like the set's object). */
static double pingpong_proc_per_s(long rounds, int ping, int pong) {
    pp_shm *w = mmap(NULL, sizeof *w, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (w == MAP_FAILED)
        exit(1);
    double best = 0;
    bench_pin(ping);
    for (int run = 0; run < 3; run++) {
        atomic_store(&w->ball, 0);
        pid_t child = fork();
        if (child < 0)
            exit(1);
        if (child == 0) {
            bench_pin(pong);
            for (long i = 0; i < rounds; i++) {
                pp_wait(w, 0);
                pp_pass(w, 0);
            }
            _exit(0);
        }
        double t0 = bench_now();
        for (long i = 0; i < rounds; i++) {
            pp_pass(w, 1);
            pp_wait(w, 1);
        }
        double r = (double)rounds / (bench_now() - t0);
        int st;
        waitpid(child, &st, 0);
        best = r > best ? r : best;
    }
    munmap((void *)w, sizeof *w);
    return best;
}

static double vdi_per_s(long rounds, int server_cpu, int client_cpu) {
    char name[64];
    static unsigned seq;
    snprintf(name, sizeof name, "bench-rt-%ld-%u", (long)getpid(), seq++);
    bench_pin(server_cpu); /* before the agent thread exists, so that it inherits it */
    bench_server b;
    bench_server_start(&b, name, 0, 1, 0, client_cpu);
    double best = 0;
    for (int run = 0; run < 3; run++) {
        double r = (double)rounds / bench_server_run(&b, VDC_Flush, 0, 1, rounds);
        best = r > best ? r : best;
    }
    bench_server_finish(&b);
    return best;
}

/* One measurement alone (the `only` argument); returns 2 for a name it does not know. */
static int run_one(const char *only, long rounds, int a, int b) {
    size_t n = strlen(only);
    const char *suffix = n > 5 ? only + n - 5 : "";
    int two = !strcmp(suffix, "_2cpu");
    if (!two && strcmp(suffix, "_1cpu"))
        n = 5; /* no known measurement: what is left names none */
    if (two && b < 0) {
        fprintf(stderr, "bench_roundtrip: %s needs two CPUs\n", only);
        return 2;
    }
    int other = two ? b : a;
    const char *place = two ? "2cpu" : "1cpu";
    char what[32];
    snprintf(what, sizeof what, "%.*s", (int)(n - 5), only); /* without _Ncpu */
    if (!strcmp(what, "pingpong"))
        printf("futex_pingpong_per_s_%s %.0f\n", place, pingpong_per_s(rounds, a, other));
    else if (!strcmp(what, "pingpong_spin_proc")) { /* what spinning before sleeping buys */
        const char *e = getenv("BENCH_SPIN_NS");
        spin_ns = e ? atol(e) : 50000;
        printf("futex_pingpong_spin_proc_per_s_%s %.0f\n", place,
               pingpong_proc_per_s(rounds, a, other));
    } else if (!strcmp(what, "pingpong_proc"))
        printf("futex_pingpong_proc_per_s_%s %.0f\n", place, pingpong_proc_per_s(rounds, a, other));
    else if (!strcmp(what, "vdi"))
        printf("vdi_roundtrip_per_s_%s %.0f\n", place, vdi_per_s(rounds, a, other));
    else {
        fprintf(stderr,
                "bench_roundtrip: no measurement '%s' (pingpong_1cpu, pingpong_proc_1cpu, "
                "vdi_1cpu, or the same with _2cpu)\n",
                only);
        return 2;
    }
    return 0;
}

int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) : 20000;
    if (rounds < 1 || argc > 3) {
        fprintf(stderr, "usage: bench_roundtrip [round trips >= 1] [only]\n");
        return 2;
    }
    int a, b;
    bench_two_cpus(&a, &b);
    if (argc == 3)
        return run_one(argv[2], rounds, a, b);
    printf("roundtrips %ld\n", rounds);
    for (int two = 0; two <= 1; two++) {
        if (two && b < 0)
            break;
        int other = two ? b : a;
        const char *place = two ? "2cpu" : "1cpu";
        double base = pingpong_per_s(rounds, a, other);
        double proc = pingpong_proc_per_s(rounds, a, other);
        double vdi = vdi_per_s(rounds, a, other);
        printf("futex_pingpong_per_s_%s %.0f\n", place, base);
        printf("futex_pingpong_proc_per_s_%s %.0f\n", place, proc);
        printf("vdi_roundtrip_per_s_%s %.0f\n", place, vdi);
        printf("roundtrip_ratio_%s %.3f\n", place, vdi / base);
        printf("roundtrip_ratio_proc_%s %.3f\n", place, vdi / proc);
    }
    bench_pin(-1);
    return 0;
}
