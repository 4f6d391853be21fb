/* bench_backup: backup throughput through VDI between two processes, with 1 MiB
 * transfers, as a ratio of memcpy bandwidth on the same machine. Both sides of the
 * ratio copy every byte once from a rotating set of 1 MiB source buffers into a 1 MiB
 * private sink: plain memcpy in one thread, versus the client process copying out of
 * the shared buffers that the server process sends as VDC_Write commands. The ratio is
 * what VDI costs on top of the one copy a backup application cannot avoid.
 *
 * usage: bench_backup [MiB per run (default 4096)] [commands in flight (default 4)]
 * Prints "key value" lines (*_1cpu: both processes on one CPU; *_2cpu: the server on
 * another); the best of five runs counts for each side (main says where each party runs). */
#include "bench_util.h"

#define XFER (1u << 20)

/* One timed pass of the baseline: `mib` copies of 1 MiB from `depth` rotating sources. */
static double memcpy_once(const uint8_t *src, uint8_t *dst, long mib, uint32_t depth) {
    double t0 = bench_now();
    for (long i = 0; i < mib; i++) {
        memcpy(dst, src + (size_t)(i % depth) * XFER, XFER);
        __asm__ volatile("" : : "r"(dst) : "memory"); /* keep the copy */
    }
    return (double)mib / (bench_now() - t0);
}

int main(int argc, char **argv) {
    long mib = argc > 1 ? atol(argv[1]) : 4096;
    uint32_t depth = argc > 2 ? (uint32_t)atol(argv[2]) : 4;
    if (mib < 1 || depth < 1 || depth > VDI_MAX_OUTSTANDING || mib < (long)depth) {
        fprintf(stderr, "usage: bench_backup [MiB >= depth] [depth 1..64]\n");
        return 2;
    }
    /* The copying party runs on the same CPU on both sides of the ratio: the baseline's
     * thread and the client process on CPU a; the server and its agent on CPU a too
     * (1cpu) or on CPU b (2cpu). Unpinned, either side could land on a CPU another
     * program keeps busy, and the ratio measured that. The passes alternate (baseline,
     * VDI, ...), so that both see the same moments of a shared machine; the best of each
     * counts. */
    int a, b;
    bench_two_cpus(&a, &b);
    uint8_t *src = malloc((size_t)depth * XFER), *dst = malloc(XFER);
    if (!src || !dst)
        exit(1);
    memset(src, 7, (size_t)depth * XFER);
    memset(dst, 0, XFER);
    printf("backup_mib %ld\n", mib);
    printf("backup_depth %u\n", depth);
    for (int two = 0; two <= 1; two++) {
        if (two && b < 0)
            break;
        int server_cpu = two ? b : a;
        const char *place = two ? "2cpu" : "1cpu";
        char name[64];
        snprintf(name, sizeof name, "bench-backup-%ld-%d", (long)getpid(), two);
        bench_pin(server_cpu); /* before the agent thread exists, so that it inherits it */
        bench_server srv;
        bench_server_start(&srv, name, XFER, depth, 1, a);
        double base = 0, best = 0;
        for (int run = 0; run < 5; run++) {
            bench_pin(a);
            double r = memcpy_once(src, dst, mib, depth);
            base = r > base ? r : base;
            bench_pin(server_cpu);
            r = (double)mib / bench_server_run(&srv, VDC_Write, XFER, depth, mib);
            best = r > best ? r : best;
        }
        bench_server_finish(&srv);
        printf("memcpy_mibps_%s %.0f\n", place, base);
        printf("vdi_backup_mibps_%s %.0f\n", place, best);
        printf("backup_ratio_%s %.3f\n", place, best / base);
    }
    free(src);
    free(dst);
    bench_pin(-1);
    return 0;
}
