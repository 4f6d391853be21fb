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
#include "vdi/vdi_seams.h"

/* Which sanitizer this program is built with: T_ASAN, T_TSAN (chaos/sanitizer.h says). */
#include "chaos/sanitizer.h"
#ifdef CHAOS_ASAN
#define T_ASAN 1
#endif
#ifdef CHAOS_TSAN
#define T_TSAN 1
#endif

#define T_CODE_NAME vdi_strerror
#define T_ON_FAILURE() t_print_sites()
#include "t_check.h"

/* The sets whose error sites a failed check prints: where the library raised its last
 * failure, and what aborted the set (vdi_seam_*_error_site). A test watches the sets it
 * is about, and watches NULL before it frees them. */
static struct {
    vdi_client_set *client;
    vdi_server_set *server;
} t_watched;

static inline void t_watch(vdi_client_set *client, vdi_server_set *server) {
    t_watched.client = client;
    t_watched.server = server;
}

static inline void t_print_site(const char *side, const char *what, const vdi_error_site *e) {
    if (e->file)
        fprintf(stderr, "  %s %s: %s:%d: %s (%s)\n", side, what, e->file, e->line,
                e->why ? e->why : "", vdi_strerror(e->code));
}

static inline void t_print_sites(void) {
    vdi_error_site failed, aborted;
    if (vdi_seam_client_error_site(t_watched.client, &failed, &aborted) == 0) {
        t_print_site("client", "last failure", &failed);
        t_print_site("client", "aborted by", &aborted);
    }
    if (vdi_seam_server_error_site(t_watched.server, &failed, &aborted) == 0) {
        t_print_site("server", "last failure", &failed);
        t_print_site("server", "aborted by", &aborted);
    }
}

/* A set name no other test program running at the same time uses. */
static inline const char *t_set_name(const char *stem) {
    static char buf[96];
    static unsigned seq;
    snprintf(buf, sizeof buf, "t-%s-%ld-%u", stem, (long)getpid(), seq++);
    return buf;
}

#endif /* T_TEST_H */
