/* t_check.h: the checking macros of every test program, C or C++. The includer names the
 * function that spells a return code (T_CODE_NAME) before including this header:
 * tests/t_test.h uses the reference's vdi_strerror, tests/compat/t_compat.h its own. A
 * failed expectation prints where it was and what it saw; the program exits 1 at
 * t_done(); exit 77 is a skip. */
#ifndef T_CHECK_H
#define T_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#ifndef T_CODE_NAME
#error "define T_CODE_NAME(rc) before including t_check.h"
#endif

static int t_failures;
static int t_checks;

/* An includer may define T_ON_FAILURE() to say more after each failed check (t_test.h
 * prints the error sites of the sets a test watches). */
#ifndef T_ON_FAILURE
#define T_ON_FAILURE() ((void)0)
#endif

#define T_FAILED_AT(...)                                                                           \
    do {                                                                                           \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                            \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        T_ON_FAILURE();                                                                            \
        t_failures++;                                                                              \
    } while (0)

/* expect-code: a VDI call returned exactly this code. */
#define T_EXPECT_CODE(expr, code)                                                                  \
    do {                                                                                           \
        int t_got_ = (expr);                                                                       \
        int t_want_ = (code);                                                                      \
        t_checks++;                                                                                \
        if (t_got_ != t_want_)                                                                     \
            T_FAILED_AT("%s: got %s (0x%08x), want %s", #expr, T_CODE_NAME(t_got_),                \
                        (unsigned)t_got_, T_CODE_NAME(t_want_));                                   \
    } while (0)

#define T_EXPECT_OK(expr) T_EXPECT_CODE(expr, NOERROR)

/* expect-eq on integers (any width up to 64 bits). */
#define T_EXPECT_EQ(a, b)                                                                          \
    do {                                                                                           \
        long long t_a_ = (long long)(a);                                                           \
        long long t_b_ = (long long)(b);                                                           \
        t_checks++;                                                                                \
        if (t_a_ != t_b_)                                                                          \
            T_FAILED_AT("%s == %s: %lld != %lld", #a, #b, t_a_, t_b_);                             \
    } while (0)

#define T_EXPECT(cond)                                                                             \
    do {                                                                                           \
        t_checks++;                                                                                \
        if (!(cond))                                                                               \
            T_FAILED_AT("expected %s", #cond);                                                     \
    } while (0)

/* A failed precondition that makes the rest of the test meaningless. */
#define T_REQUIRE(cond)                                                                            \
    do {                                                                                           \
        t_checks++;                                                                                \
        if (!(cond)) {                                                                             \
            T_FAILED_AT("required %s", #cond);                                                     \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define T_SKIP(why)                                                                                \
    do {                                                                                           \
        fprintf(stderr, "skipped: %s\n", why);                                                     \
        exit(77);                                                                                  \
    } while (0)

/* Call at the end of main: a test that checked nothing is a failure too. */
static inline int t_done(void) {
    if (t_checks == 0) {
        fprintf(stderr, "no expectation was checked\n");
        return 1;
    }
    if (t_failures)
        fprintf(stderr, "%d of %d checks failed\n", t_failures, t_checks);
    return t_failures ? 1 : 0;
}

#endif /* T_CHECK_H */
