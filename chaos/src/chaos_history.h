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

/* Start recording the calls of this run (before the scenario's setup); the recorder
 * observes E (chaos_internal.h) for the death of a peer. */
void chaos_history_start(chaos_engine *e);
/* Stop recording; nothing more is kept (before the scenario's cleanup). */
void chaos_history_stop(void);
/* Check the recorded history: reports a "model" finding through chaos_report when no
 * order explains it. Returns 1 when the history was checked, 0 when the model cannot judge
 * it (a peer died, a fault was injected, a call was made from inside a callback, the
 * search was too large, or a call the model does not cover). */
int chaos_history_check(chaos_engine *e);

#endif /* CHAOS_HISTORY_H */
