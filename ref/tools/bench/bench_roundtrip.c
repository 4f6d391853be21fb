/* bench_roundtrip: command round trips per second through VDI between two processes
 * with one command in flight (send, client get and complete, agent callback that sends
 * the next), as a ratio of a bare futex ping-pong between two threads: the least that
 * any wake-up-driven exchange costs on this machine.
 *
 * usage: bench_roundtrip [round trips per run (default 20000)]
 * Prints "key value" lines; the best of three runs counts for each side. */
#include "bench_util.h"

#include <linux/futex.h>
#include <sys/syscall.h>

static _Atomic uint32_t ball; /* 0: the pinger's turn, 1: the ponger's */
static long pp_rounds;

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
    for (long i = 0; i < pp_rounds; i++) {
        futex_wait(&ball, 0);
        futex_pass(&ball, 0);
    }
    return NULL;
}

static double pingpong_per_s(long rounds) {
    double best = 0;
    pp_rounds = rounds;
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

int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) : 20000;
    if (rounds < 1) {
        fprintf(stderr, "usage: bench_roundtrip [round trips >= 1]\n");
        return 2;
    }
    char name[64];
    snprintf(name, sizeof name, "bench-rt-%ld", (long)getpid());

    double base = pingpong_per_s(rounds);
    bench_server b;
    bench_server_start(&b, name, 0, 1, 0);
    double best = 0;
    for (int run = 0; run < 3; run++) {
        double r = (double)rounds / bench_server_run(&b, VDC_Flush, 0, 1, rounds);
        best = r > best ? r : best;
    }
    bench_server_finish(&b);
    printf("roundtrips %ld\n", rounds);
    printf("futex_pingpong_per_s %.0f\n", base);
    printf("vdi_roundtrip_per_s %.0f\n", best);
    printf("roundtrip_ratio %.3f\n", best / base);
    return 0;
}
