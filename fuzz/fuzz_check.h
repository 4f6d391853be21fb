/* fuzz_check.h: what more than one fuzz target checks, or prints, the same way. C and C++
 * (fuzz_compat.cpp includes it too). */
#ifndef FUZZ_CHECK_H
#define FUZZ_CHECK_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaos/chaos.h"
#include "vdi/vdi.h"

/* Command c as a client got it (vc) against the one the server sent (sc): the same code,
 * size and position; a buffer exactly when one was sent, at the one offset from the
 * server's view that this client's mapping keeps (*delta, learnt at its first buffer:
 * *known), holding the same bytes (a data command's size, one byte of any other). 0 when
 * it is; else -1, and what differs is in why. */
static inline int fuzz_check_delivered(int c, const VDS_Command *sc, const VDC_Command *vc,
                                       intptr_t *delta, int *known, char *why, size_t n) {
    if (vc->commandCode != sc->commandCode || vc->size != sc->size ||
        vc->position != sc->inPosition) {
        snprintf(why, n, "command %d delivered as code %d size %d position %lld, sent %d %d %lld",
                 c, vc->commandCode, vc->size, (long long)vc->position, sc->commandCode, sc->size,
                 (long long)sc->inPosition);
        return -1;
    }
    if (!sc->buffer != !vc->buffer) {
        snprintf(why, n, "command %d: buffer %p delivered as %p", c, (void *)sc->buffer,
                 (void *)vc->buffer);
        return -1;
    }
    if (!sc->buffer)
        return 0;
    intptr_t d = vc->buffer - sc->buffer;
    if (*known && d != *delta) {
        snprintf(why, n, "command %d: the client's mapping moved", c);
        return -1;
    }
    *delta = d;
    *known = 1;
    size_t bytes = sc->commandCode <= VDC_Write ? (size_t)sc->size : 1;
    if (memcmp(vc->buffer, sc->buffer, bytes) != 0) {
        snprintf(why, n, "command %d: the client sees other bytes than the server", c);
        return -1;
    }
    return 0;
}

/* The end of a target that found something: "==TARGET== " and one line, then abort. When an
 * oracle of the engine e (the ledger) reported first during the run, that finding is the
 * line, and the target's own message follows it as its consequence, so that a follow-on
 * check cannot take the crash's signature. e may be NULL. */
__attribute__((noreturn)) static inline void fuzz_vfail(const char *target, const chaos_engine *e,
                                                        const char *fmt, va_list ap) {
    const char *first = e ? chaos_finding(e) : "";
    fprintf(stderr, "==%s== ", target);
    if (first[0])
        fprintf(stderr, "%.*s\n  (reported first; then: ", (int)strcspn(first, "\n"), first);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "%s\n", first[0] ? ")" : "");
    abort();
}

#endif
