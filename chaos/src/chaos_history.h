/* chaos_history.h: the model oracle. While a scenario runs under the controlled engine,
 * every call of the VDI API made by the scenario's actors is recorded (the link wraps each
 * vdi_* function: see chaos/CMakeLists.txt), with the moment it entered and returned and
 * what it returned. After the run, the history is checked against the executable model
 * (chaos/model): some order of the calls that respects real time (a call that returned
 * before another entered comes first) must make the model answer every return code the
 * reference gave. Internal to chaos/. */
#ifndef CHAOS_HISTORY_H
#define CHAOS_HISTORY_H

#include "chaos/chaos.h"

/* Start recording the calls of this run (before the scenario's setup). */
void chaos_history_start(chaos_engine *e);
/* The peer died (called by chaos_kill_peer): side 0 the client's process, 1 the server's. */
void chaos_history_peer_death(int side);
/* Stop recording; nothing more is kept (before the scenario's cleanup). */
void chaos_history_stop(void);
/* Check the recorded history: reports a "model" finding through chaos_report when no
 * order explains it. Returns 1 when the history was checked, 0 when the model cannot judge
 * it (a peer died, a fault was injected, a call was made from inside a callback, the
 * search was too large, or a call the model does not cover). */
int chaos_history_check(chaos_engine *e);

/* The process is dying (a signal or a sanitizer's report) while a run is in progress: say
 * which run, and write its replay file (chaos.h, crash_file). Called by the unmap guard
 * before it ends the process; the engine's own handlers call it for the rest. */
void chaos_dying(void);

#endif /* CHAOS_HISTORY_H */
