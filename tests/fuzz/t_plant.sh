#!/bin/sh
# The whole crash path on a planted bug: ci/fuzz.sh fuzzes fuzz_race built against a seeded
# bug (tests/meta) from an empty scratch corpus; the crash must be found, minimized, stored
# once under its signature, reproduce under the planted target with that signature, replay
# in vdichaos to the same trace twice, and pass against the clean reference (so ctest's
# corpus replay, which uses the clean reference, would keep it as a regression input); a
# second session over the same corpora reports the stored crash and stores nothing new.
# With JOBS > 1 the session runs JOBS libFuzzer processes side by side (ci/fuzz.sh --jobs):
# each must be followed by another after its crash, all must stop within the budget, and
# the crash is still stored once; the second session is left out (one process is enough).
# Usage: t_plant.sh BUG ORACLE [JOBS]   (from the top of the tree, after the fuzz preset built)
set -u
bug=${1:-drain_skips_last} oracle=${2:-ledger} jobs=${3:-1}
# The path is proved on the oracle ORACLE: the reference's own invariant checks (on in this
# debug build) would stop some planted bugs first, as a crash of their own.
export VDICHAOS_NO_INVARIANTS=1
tmp=build/plant-test
fail() { echo "t_plant: $*"; exit 1; }
rm -rf "$tmp" && mkdir -p "$tmp/fuzz_race/seed" || exit 1
ci/fuzz.sh --no-setup --plant "$bug" --corpora "$tmp" --minutes 0.25 --jobs "$jobs" >"$tmp/fuzz.log" 2>&1
rc=$?
cat "$tmp/fuzz.log"
[ $rc = 1 ] || fail "ci/fuzz.sh exited $rc, expected 1 (a new crash)"
n=$(ls "$tmp/fuzz_race/crash" | grep -vc '\.replay$')
[ "$n" = 1 ] || fail "$n crash files stored, expected 1"
f=$(ls "$tmp/fuzz_race/crash/"* | grep -v '\.replay$')
[ -f "$f.replay" ] || fail "no shrunk schedule stored beside the crash"
grep -q '^# shrunk from' "$f.replay" || fail "$f.replay is not a shrunk replay file"
case "$(basename "$f")" in "$oracle"-*) ;; *) fail "stored as $(basename "$f"), not a $oracle signature" ;; esac
orig=$(ls build/fuzz-out/fuzz_race/lf-artifacts/crash-* | head -n 1)
size=$(wc -c <"$f") orig_size=$(wc -c <"$orig")
[ "$size" -le "$orig_size" ] || fail "the stored file is larger than the crash"
build/fuzz/tests/meta/fuzz_race_"$bug" -runs=1 -artifact_prefix="$tmp/again-" "$f" >"$tmp/again.log" 2>&1 && fail "the planted target passes the crash file"
[ "$(python3 ci/crash_signature.py "$tmp/again.log")" = "$(basename "$f")" ] || fail "the signature changed on replay"
v=build/fuzz/tests/meta/vdichaos_"$bug"
cmake --build build/fuzz --target "vdichaos_$bug" >"$tmp/build.log" 2>&1 || fail "cannot build vdichaos_$bug"
$v replay "$f" >"$tmp/r1.log" 2>&1; r1=$?
$v replay "$f" >"$tmp/r2.log" 2>&1; r2=$?
[ $r1 = 1 ] && [ $r2 = 1 ] || fail "vdichaos replay did not reproduce ($r1, $r2)"
[ "$(grep '^trace hash' "$tmp/r1.log")" = "$(grep '^trace hash' "$tmp/r2.log")" ] || fail "replays differ"
$v replay "$f.replay" >"$tmp/r3.log" 2>&1
[ $? = 1 ] && grep -q "^$oracle:" "$tmp/r3.log" || fail "the shrunk schedule does not reproduce the $oracle finding"
build/fuzz/fuzz/fuzz_race_replay "$f" >"$tmp/clean.log" 2>&1 || fail "the clean reference fails the planted crash"
if [ "$jobs" -gt 1 ]; then
    w=build/fuzz-out/fuzz_race i=0
    while [ $i -lt "$jobs" ]; do
        grep -q INITED "$w/libfuzzer-$i-1.log" 2>/dev/null || fail "worker $i did not fuzz on after its crash"
        i=$((i + 1))
    done
    # "fuzz_race: N libFuzzer workers ran R s of S in ...": a few seconds over at the most.
    grep 'workers ran' "$tmp/fuzz.log" | awk '{ for (i = 1; i < NF; i++) if ($i == "ran") { r = $(i + 1); s = $(i + 4) } }
        END { exit !(r != "" && r + 0 <= s + 5) }' || fail "the workers ran past their budget"
    echo "t_plant: $bug found by $jobs libFuzzer workers, each fuzzing on after its crash" \
        "($(ls "$w"/libfuzzer-*-*.log | wc -l) processes), stored once as $(basename "$f"), reproduced"
    exit 0
fi
# Again, over the same corpora: the stored crash fails its replay (a regression), and what
# the fuzzer finds again is known by its signature, not stored twice.
ci/fuzz.sh --no-setup --plant "$bug" --corpora "$tmp" --minutes 0.25 >"$tmp/fuzz2.log" 2>&1
[ $? = 1 ] || fail "the second session did not report the stored crash"
grep -q "a stored input fails on replay" "$tmp/fuzz2.log" || fail "the stored crash was not replayed first"
if grep -q "NEW crash" "$tmp/fuzz2.log"; then fail "the same bug was stored again: $(grep 'NEW crash' "$tmp/fuzz2.log")"; fi
[ "$(ls "$tmp/fuzz_race/crash" | grep -vc '\.replay$')" = 1 ] || fail "a second crash file was stored"
echo "t_plant: $bug found, stored as $(basename "$f") ($size of $orig_size bytes) with its shrunk schedule, reproduced, replayed twice the same, clean on the reference; a second session reports it and stores nothing new"
