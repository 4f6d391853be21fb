#!/bin/sh
# vdichaos run on a bug that kills the process (an ASan report): the run still ends in a
# report, the engine's note names the step, and the replay file it leaves in --out
# (vdichaos-SCENARIO-STRATEGY-SEED.crash.replay) replays to the same death at the same step.
# Usage: t_crash_file.sh VDICHAOS SCENARIO WORKDIR
set -u
v=$1 sc=$2 dir=$3
rm -rf "$dir" && mkdir -p "$dir" || exit 1
fail() { echo "t_crash_file: $*"; exit 1; }
"$v" run "$sc" --runs 2000 --out "$dir" >"$dir/run.log" 2>&1
rc=$?
[ $rc != 0 ] || fail "the run did not die: $(tail -n 3 "$dir/run.log")"
note=$(grep '^==chaos== the process dies' "$dir/run.log") || fail "no death note: $(tail -n 5 "$dir/run.log")"
f=$(sed -n 's/^==chaos== replay: vdichaos replay //p' "$dir/run.log")
case "$f" in "$dir"/vdichaos-"$sc"-random-*.crash.replay) ;; *) fail "no crash replay file named: $note" ;; esac
[ -f "$f" ] || fail "$f was not written"
"$v" replay "$f" >"$dir/replay.log" 2>&1
[ $? != 0 ] || fail "the crash file replays clean"
step=$(echo "$note" | sed -n 's/.*), \(step [0-9]*\), .*/\1/p')
grep '^==chaos== the process dies' "$dir/replay.log" | grep -q "), $step, " ||
    fail "the replay does not die at $step: $(grep '==chaos==' "$dir/replay.log")"
echo "t_crash_file: $note; replayed to the same $step"
