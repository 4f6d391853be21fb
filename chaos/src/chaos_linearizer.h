/* chaos_linearizer.h: the model oracle. After a clean run, the recorded history
 * (chaos_recorder.h) is checked against the executable model (chaos/model): some order of
 * the calls that respects real time (a call that returned before another entered comes
 * first) must make the model answer every return code the reference gave. Internal to
 * chaos/. */
#ifndef CHAOS_LINEARIZER_H
#define CHAOS_LINEARIZER_H

#include "chaos/chaos.h"
#include "chaos_recorder.h"

/* Check H (recording ended: chaos_recorder_end): reports a "model" finding through
 * chaos_report when no order explains it. Returns 1 when the history was checked, 0 when
 * the model cannot judge it (a peer died, a fault was injected, a call was made from inside
 * a callback, the search was too large, or a call the model does not cover). */
int chaos_linearize(chaos_engine *e, chaos_history *h);

#endif /* CHAOS_LINEARIZER_H */
