/* t_test.h: the tiny test header every test program includes. A failed expectation
 * prints where it was and what it saw, and the program exits 1 at t_done(); exit 77 is
 * a skip. Tests never sleep and never read the wall clock. */
#ifndef T_TEST_H
#define T_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vdi/vdi.h"

/* Which sanitizer this program is built with: T_ASAN, T_TSAN. */
#if defined(__SANITIZE_ADDRESS__)
#define T_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define T_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define T_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define T_TSAN 1
#endif
#endif

#define T_CODE_NAME vdi_strerror
#include "t_check.h"

/* A set name no other test program running at the same time uses. */
static inline const char *t_set_name(const char *stem) {
    static char buf[96];
    static unsigned seq;
    snprintf(buf, sizeof buf, "t-%s-%ld-%u", stem, (long)getpid(), seq++);
    return buf;
}

#endif /* T_TEST_H */
