/* t_compat.h: the test macros of tests/t_test.h for programs built against the SDK
 * surface only (ref/compat/include/vdi.h), which must not see the reference's C header.
 * A failed expectation prints where it was and what it saw; exit 77 is a skip. */
#ifndef T_COMPAT_H
#define T_COMPAT_H

#include <cstdio>
#include <cstdlib>

#include "vdi.h"

static int t_failures;
static int t_checks;

/* The name of a code, for messages. */
static inline const char *t_code_name(int rc) {
    switch (rc) {
    case NOERROR:
        return "NOERROR";
    case VD_E_TIMEOUT:
        return "VD_E_TIMEOUT";
    case VD_E_ABORT:
        return "VD_E_ABORT";
    case VD_E_INVALID:
        return "VD_E_INVALID";
    case VD_E_NOTSUPPORTED:
        return "VD_E_NOTSUPPORTED";
    case VD_E_MEMORY:
        return "VD_E_MEMORY";
    case VD_E_PROTOCOL:
        return "VD_E_PROTOCOL";
    case VD_E_OPEN:
        return "VD_E_OPEN";
    case VD_E_CLOSE:
        return "VD_E_CLOSE";
    case VD_E_BUSY:
        return "VD_E_BUSY";
    default:
        return "another code";
    }
}

#define T_FAILED_AT(...)                                                                           \
    do {                                                                                           \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                            \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        t_failures++;                                                                              \
    } while (0)

#define T_EXPECT_CODE(expr, code)                                                                  \
    do {                                                                                           \
        int t_got_ = (expr);                                                                       \
        int t_want_ = (code);                                                                      \
        t_checks++;                                                                                \
        if (t_got_ != t_want_)                                                                     \
            T_FAILED_AT("%s: got %s (0x%08x), want %s", #expr, t_code_name(t_got_),                \
                        (unsigned)t_got_, t_code_name(t_want_));                                   \
    } while (0)

#define T_EXPECT_OK(expr) T_EXPECT_CODE(expr, NOERROR)

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

#define T_REQUIRE(cond)                                                                            \
    do {                                                                                           \
        t_checks++;                                                                                \
        if (!(cond)) {                                                                             \
            T_FAILED_AT("required %s", #cond);                                                     \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static inline int t_done(void) {
    if (t_checks == 0) {
        fprintf(stderr, "no expectation was checked\n");
        return 1;
    }
    if (t_failures)
        fprintf(stderr, "%d of %d checks failed\n", t_failures, t_checks);
    return t_failures ? 1 : 0;
}

#endif /* T_COMPAT_H */
