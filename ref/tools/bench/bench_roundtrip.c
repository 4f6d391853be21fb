/* bench_roundtrip: command round trips per second through VDI between two processes
 * with one command in flight (send, client get and complete, agent callback that sends
 * the next), as a ratio of a bare futex ping-pong between two threads: the least that
 * any wake-up-driven exchange costs on this machine.
 *
 * Wake-up cost depends on where the two parties run (one CPU: a direct switch; two
 * CPUs: an inter-processor wake-up, very slow in some VMs), and an unpinned run lands on
 * either at random. So both sides of the ratio are measured twice with the same
 * placement: both parties pinned to one CPU, and one party per CPU.
 *
 * usage: bench_roundtrip [round trips per run (default 20000)]
 * Prints "key value" lines (*_1cpu, *_2cpu); the best of three runs counts. */
#include "bench_util.h"

#include <linux/futex.h>
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

int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) : 20000;
    if (rounds < 1) {
        fprintf(stderr, "usage: bench_roundtrip [round trips >= 1]\n");
        return 2;
    }
    int a, b;
    bench_two_cpus(&a, &b);
    printf("roundtrips %ld\n", rounds);
    double base1 = pingpong_per_s(rounds, a, a);
    double vdi1 = vdi_per_s(rounds, a, a);
    printf("futex_pingpong_per_s_1cpu %.0f\n", base1);
    printf("vdi_roundtrip_per_s_1cpu %.0f\n", vdi1);
    printf("roundtrip_ratio_1cpu %.3f\n", vdi1 / base1);
    if (b >= 0) {
        double base2 = pingpong_per_s(rounds, a, b);
        double vdi2 = vdi_per_s(rounds, a, b);
        printf("futex_pingpong_per_s_2cpu %.0f\n", base2);
        printf("vdi_roundtrip_per_s_2cpu %.0f\n", vdi2);
        printf("roundtrip_ratio_2cpu %.3f\n", vdi2 / base2);
    }
    bench_pin(-1);
    return 0;
}
