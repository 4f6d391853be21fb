#!/bin/sh
# Every stored crash file of every target, replayed by `vdichaos replay` three times: each
# replay must print the same decoded program and timeline (for fuzz_race the same trace
# hash), and end the same way. Crash files whose bug is fixed replay clean; what matters
# here is that a replay is a function of the file alone.
# Usage: t_crash_repro.sh VDICHAOS CORPORA_DIR WORKDIR
set -u
v=$1 corpora=$2 work=$3
rm -rf "$work" && mkdir -p "$work" || exit 1
n=0 bad=0
for f in "$corpora"/fuzz_*/crash/*; do
    case "$f" in *.md | *'*') continue ;; esac
    [ -f "$f" ] || continue
    n=$((n + 1))
    for i in 1 2 3; do
        "$v" replay "$f" >"$work/out$i" 2>&1
        echo "exit $?" >>"$work/out$i"
        # Addresses and process ids are not part of the program: drop them.
        sed -E 's/0x[0-9a-f]+/ADDR/g; s/==[0-9]+==/==PID==/g; s/(pid|process) [0-9]+/\1 N/g' \
            "$work/out$i" >"$work/norm$i"
    done
    if ! cmp -s "$work/norm1" "$work/norm2" || ! cmp -s "$work/norm1" "$work/norm3"; then
        echo "t_crash_repro: $f replays differently:"
        diff "$work/norm1" "$work/norm2" | head -n 10
        bad=$((bad + 1))
    fi
    grep -q '^no finding$' "$work/out1" || { echo "t_crash_repro: $f still fails: $(tail -n 3 "$work/out1")"; bad=$((bad + 1)); }
done
echo "t_crash_repro: $n crash files, each replayed 3 times, $bad differing or failing"
[ "$n" -gt 0 ] && [ "$bad" = 0 ]
