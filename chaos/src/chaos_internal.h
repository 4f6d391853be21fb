/* chaos_internal.h: what the engine offers the rest of chaos/ and nobody else. An observer
 * of the engine's events, so that a part built on the engine (the recorder of the calls)
 * registers itself instead of being called by name, and the engine knows nothing of it; and
 * the note a dying process leaves. Internal to chaos/. */
#ifndef CHAOS_INTERNAL_H
#define CHAOS_INTERNAL_H

#include "chaos/chaos.h"

/* What the engine tells an observer. Each hook may be NULL. */
typedef struct chaos_observer {
    void *ctx; /* passed back to each hook */
    /* The peer process died (chaos_kill_peer: side 0, the client's process;
     * chaos_kill_server_peer: side 1, the server's), called in the actor that said so. */
    void (*peer_death)(void *ctx, int side);
} chaos_observer;

/* Register OBS on E (NULL: none). One observer at a time; the engine keeps the pointer,
 * so OBS outlives the registration. */
void chaos_engine_observe(chaos_engine *e, const chaos_observer *obs);

/* The process is dying (a signal or a sanitizer's report) while a run is in progress: say
 * which run, and write its replay file (chaos.h, crash_file). Called by the unmap guard
 * before it ends the process; the engine's own handlers call it for the rest. */
void chaos_dying(void);

#endif /* CHAOS_INTERNAL_H */
