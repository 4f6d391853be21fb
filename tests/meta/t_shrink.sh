#!/bin/sh
# vdichaos shrink on a real finding: a seeded bug's vdichaos finds it under PCT, shrink
# must keep the same oracle with strictly fewer preemptions (the PCT schedule has some),
# and the shrunk file must replay to the same finding and trace hash, twice. With ACCESS
# (1 or 2) the run has access points, and its files must say so (a decision list replays
# only in its own mode) and no fuzz_race input is written; without, the fuzz_race input
# written beside the shrunk file must replay to the same oracle. Then: shrinking a file that replays clean exits 3, not 1 or 2.
# Usage: t_shrink.sh VDICHAOS SCENARIO ORACLE WORKDIR [ACCESS]
set -u
v=$1 sc=$2 oracle=$3 dir=$4 access=${5:-0}
rm -rf "$dir" && mkdir -p "$dir" || exit 1
fail() { echo "t_shrink: $*"; exit 1; }
"$v" run "$sc" --strategy pct --runs 3000 --access-points "$access" --out "$dir" >"$dir/run.log" 2>&1
[ $? = 1 ] || fail "no finding to shrink: $(tail -n 3 "$dir/run.log")"
f=$(sed -n 's/^replay: vdichaos replay //p' "$dir/run.log")
[ -f "$f" ] || fail "no replay file in: $(cat "$dir/run.log")"
if [ "$access" != 0 ]; then
    grep -qx "access-points $access" "$f" || fail "$f does not name its access points"
fi
"$v" shrink "$f" --out "$dir/shrunk" >"$dir/shrink.log" 2>&1
[ $? = 1 ] || fail "shrink did not end in the finding: $(cat "$dir/shrink.log")"
cat "$dir/shrink.log"
grep -q "^$f: $oracle finding" "$dir/shrink.log" || fail "the finding is not '$oracle'"
set -- $(sed -n 's/.*preemptions \([0-9]*\) -> \([0-9]*\),.*/\1 \2/p' "$dir/shrink.log")
[ $# = 2 ] || fail "no preemption counts printed"
[ "$1" -gt 0 ] || fail "the PCT schedule had no preemption: nothing to show"
[ "$2" -lt "$1" ] || fail "preemptions not reduced ($1 -> $2)"
for i in 1 2; do
    "$v" replay "$dir/shrunk" >"$dir/replay$i.log" 2>&1
    [ $? = 1 ] || fail "the shrunk file does not reproduce: $(tail -n 3 "$dir/replay$i.log")"
    grep -q "^$oracle:" "$dir/replay$i.log" || fail "replay $i: another oracle"
done
h1=$(grep '^trace hash' "$dir/replay1.log") h2=$(grep '^trace hash' "$dir/replay2.log")
[ -n "$h1" ] && [ "$h1" = "$h2" ] || fail "replays differ: '$h1' vs '$h2'"
if [ "$access" != 0 ]; then
    grep -qx "access-points $access" "$dir/shrunk" || fail "the shrunk file lost its access points"
    [ ! -e "$dir/shrunk.fuzz_race" ] || fail "a fuzz_race input cannot say access points"
else
    # The finding's schedule as a fuzz_race input (chaos/src/chaos_input.c's format: the
    # scenario's index, no fault plan, a byte per decision), shrunk: shrink writes its
    # result as a fuzz_race input too, and that replays to the same oracle.
    idx=$("$v" list | awk -v s="$sc" '$1 == s { print NR - 1; exit }')
    [ -n "$idx" ] || fail "$sc is not in vdichaos list"
    { printf "\\$(printf %o "$idx")\\0\\0"
      for d in $(sed -n '/^[0-9]/p' "$f"); do printf "\\$(printf %o "$d")"; done; } >"$dir/input"
    "$v" shrink "$dir/input" --out "$dir/input.shrunk" >"$dir/input-shrink.log" 2>&1
    [ $? = 1 ] || fail "shrink of the fuzz_race input: $(tail -n 3 "$dir/input-shrink.log")"
    [ -f "$dir/input.shrunk.fuzz_race" ] || fail "no fuzz_race input beside the shrunk file"
    "$v" replay "$dir/input.shrunk.fuzz_race" >"$dir/input.log" 2>&1
    [ $? = 1 ] || fail "the shrunk fuzz_race input does not reproduce: $(tail -n 3 "$dir/input.log")"
    grep -q "^$oracle:" "$dir/input.log" || fail "the shrunk fuzz_race input: another oracle"
fi
# A file with no finding: the scenario with no decisions but the first actor's.
printf 'vdichaos-replay 1 %s\n' "$sc" >"$dir/clean.replay"
sed -n '/^access-points/p' "$f" >>"$dir/clean.replay"
"$v" replay "$dir/clean.replay" >"$dir/clean.log" 2>&1
if [ $? = 0 ]; then
    "$v" shrink "$dir/clean.replay" >"$dir/clean-shrink.log" 2>&1
    rc=$?
    [ $rc = 3 ] || fail "shrink of a clean file exited $rc, not 3: $(cat "$dir/clean-shrink.log")"
fi
echo "t_shrink: $oracle kept, preemptions $1 -> $2, replays identical ($h1)"
