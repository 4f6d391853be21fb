/* An AFL++ persistent-mode driver with shared-memory test cases: the target runs many
 * inputs per fork, each read straight from AFL's shared buffer. Built with afl-clang-fast
 * or afl-clang-lto; with any other compiler the macros fall back to reading one input from
 * stdin, so the file always compiles. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifdef __AFL_FUZZ_TESTCASE_LEN
/* AFL++'s macros use GNU extensions and an unsigned length that our warnings reject. */
#pragma clang diagnostic ignored "-Wextra-semi"
#pragma clang diagnostic ignored "-Wgnu-statement-expression"
#pragma clang diagnostic ignored "-Wshorten-64-to-32"
#pragma clang diagnostic ignored "-Wconversion"
#pragma clang diagnostic ignored "-Wpedantic"
__AFL_FUZZ_INIT();
#else
/* Not under AFL++: one pass over one input from stdin. */
static uint8_t fuzz_stdin_buf[1 << 20];
static ssize_t fuzz_stdin_len = -1;
static int fuzz_stdin_loops;
#define __AFL_INIT() ((void)0)
#define __AFL_FUZZ_TESTCASE_BUF fuzz_stdin_buf
#define __AFL_FUZZ_TESTCASE_LEN                                                                    \
    (fuzz_stdin_len < 0 ? (fuzz_stdin_len = read(0, fuzz_stdin_buf, sizeof fuzz_stdin_buf))        \
                        : fuzz_stdin_len)
#define __AFL_LOOP(n) (fuzz_stdin_loops++ < 1)
#endif

int main(void) {
    __AFL_INIT();
    /* The buffer must be taken after __AFL_INIT and before the loop. */
    const uint8_t *buf = __AFL_FUZZ_TESTCASE_BUF;
    while (__AFL_LOOP(10000)) {
        ssize_t len = __AFL_FUZZ_TESTCASE_LEN;
        if (len < 0)
            len = 0;
        LLVMFuzzerTestOneInput(buf, (size_t)len);
    }
    return 0;
}
