/* bench_backup: backup throughput through VDI between two processes, with 1 MiB
 * transfers, as a ratio of memcpy bandwidth on the same machine. Both sides of the
 * ratio copy every byte once from a rotating set of 1 MiB source buffers into a 1 MiB
 * private sink: plain memcpy in one thread, versus the client process copying out of
 * the shared buffers that the server process sends as VDC_Write commands. The ratio is
 * what VDI costs on top of the one copy a backup application cannot avoid.
 *
 * usage: bench_backup [MiB per run (default 4096)] [commands in flight (default 4)]
 * Prints "key value" lines; the best of three runs counts for each side. */
#include "bench_util.h"

#define XFER (1u << 20)

static double memcpy_mibps(long mib, uint32_t depth) {
    uint8_t *src = malloc((size_t)depth * XFER), *dst = malloc(XFER);
    if (!src || !dst)
        exit(1);
    memset(src, 7, (size_t)depth * XFER);
    memset(dst, 0, XFER);
    double best = 0;
    for (int run = 0; run < 3; run++) {
        double t0 = bench_now();
        for (long i = 0; i < mib; i++) {
            memcpy(dst, src + (size_t)(i % depth) * XFER, XFER);
            __asm__ volatile("" : : "r"(dst) : "memory"); /* keep the copy */
        }
        double r = (double)mib / (bench_now() - t0);
        best = r > best ? r : best;
    }
    free(src);
    free(dst);
    return best;
}

int main(int argc, char **argv) {
    long mib = argc > 1 ? atol(argv[1]) : 4096;
    uint32_t depth = argc > 2 ? (uint32_t)atol(argv[2]) : 4;
    if (mib < 1 || depth < 1 || depth > VDI_MAX_OUTSTANDING || mib < (long)depth) {
        fprintf(stderr, "usage: bench_backup [MiB >= depth] [depth 1..64]\n");
        return 2;
    }
    char name[64];
    snprintf(name, sizeof name, "bench-backup-%ld", (long)getpid());

    double base = memcpy_mibps(mib, depth);
    bench_server b;
    bench_server_start(&b, name, XFER, depth, 1, -1);
    double best = 0;
    for (int run = 0; run < 3; run++) {
        double r = (double)mib / bench_server_run(&b, VDC_Write, XFER, depth, mib);
        best = r > best ? r : best;
    }
    bench_server_finish(&b);
    printf("backup_mib %ld\n", mib);
    printf("backup_depth %u\n", depth);
    printf("memcpy_mibps %.0f\n", base);
    printf("vdi_backup_mibps %.0f\n", best);
    printf("backup_ratio %.3f\n", best / base);
    return 0;
}
