#!/usr/bin/env bash
# ci/bench.sh --sched: the controlled scheduler of a client's own threads (chaos/sched)
# against what a user has without it. For each race client of tests/clients (a bug of its
# own threads that needs one interleaving), the same number of runs three ways: the OS
# alone, libsqlvdi's seeded delays (--shake), and the scheduler (--sched, PCT and random);
# it prints found k/N each way, the ratio of the scheduler's best rate to the best other
# one, and the first PCT finding replayed N times to the same schedule trace (the client,
# the server and their threads are one session, so the plan's seed is the whole run). Then the
# overhead: runs per second of the sample client's clean backup under the scheduler
# against free. Also the small programs of tests/sched: free runs against PCT seeds, and
# the first finding replayed to the same trace. Release build; numbers only, no verdict
# fails the script.
#
# Usage: ci/bench_sched.sh [--no-build] [--runs N (default 100)]
set -euo pipefail
cd "$(dirname "$0")/.."
build=1
runs=100
while [ $# -gt 0 ]; do
    case "$1" in
    --no-build) build=0; shift ;;
    --runs) runs=$2; shift 2 ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "ci/bench_sched.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
done
case "$runs" in '' | *[!0-9]*) echo "ci/bench_sched.sh: --runs N (1..)" >&2; exit 2 ;; esac
[ "$runs" -ge 1 ] || { echo "ci/bench_sched.sh: --runs N (1..)" >&2; exit 2; }
if [ $build = 1 ]; then
    cmake --preset release >/dev/null
    cmake --build build/release -j2 --target vdichaos vdichaos_sched vdi-sqlcmd sqlvdi \
        vdi-sample-client race-client-lost-update race-client-lost-wakeup \
        race-client-complete-after-close sched-lost-update sched-lost-wakeup sched-late-finish \
        >/dev/null
fi
b=build/release
tool=$b/chaos/vdichaos
scratch=$(mktemp -d "${TMPDIR:-/tmp}/bench-sched-XXXXXX")
trap 'rm -rf "$scratch"' EXIT
printf 'abort after 2\n' >"$scratch/abort.plan"

# hits WANT_REGEX ARGS...: runs of `vdichaos client ARGS` with a finding matching WANT;
# the first such finding's plan and schedule trace are left in $scratch/first.
hits() {
    local want=$1
    shift
    rm -rf "$scratch/f"
    "$tool" client "$@" >"$scratch/out.json" 2>/dev/null || true
    python3 - "$want" "$scratch/out.json" "$scratch/first" <<'PY'
import json, re, sys
try:
    d = json.load(open(sys.argv[2]))
except Exception:
    print("error"); sys.exit(0)
hit = [f for f in d["findings"] if re.fullmatch(sys.argv[1], f["oracle"] + ":" + f["class"])]
hit.sort(key=lambda f: f["first_run"])
with open(sys.argv[3], "w") as out:
    if hit:
        out.write("%s %s\n" % (hit[0]["plan"], hit[0].get("schedule_trace", "")))
print(sum(f["runs"] for f in hit))
PY
}

# replays N ARGS...: the first finding's plan ($scratch/first) replayed N times with
# `vdichaos client replay PLAN ARGS`: how many gave its schedule trace again.
replays() {
    local n=$1 plan trace same=0
    shift
    read -r plan trace <"$scratch/first" || true
    if [ -z "${plan:-}" ] || [ -z "${trace:-}" ]; then
        echo "-"
        return
    fi
    cp "$plan" "$scratch/replay.plan"
    for ((i = 1; i <= n; i++)); do
        rm -rf "$scratch/rf"
        "$tool" client replay "$scratch/replay.plan" --findings "$scratch/rf" --json --quiet "$@" \
            >"$scratch/replay.json" 2>/dev/null || true
        grep -q "\"schedule_trace\":\"$trace\"" "$scratch/replay.json" && same=$((same + 1))
    done
    echo "$same/$n"
}

printf '%-28s %-9s %-9s %-9s %-9s %-26s %s\n' "race client (runs each)" "OS alone" "--shake" \
    "pct" "random" "scheduler / best other" "pct finding replayed, same trace"
for row in "lost-update;truth:backup-does-not-restore;clean;3:1" \
    "lost-wakeup;ends:hang;clean;3:9" \
    "complete-after-close;protocol:(complete|call)-after-close;abort;2:1"; do
    IFS=";" read -r bug want plan depth <<<"$row"
    c=$b/tests/clients/race-client-$bug
    pre=(--plans clean)
    [ "$plan" = abort ] && pre=(replay "$scratch/abort.plan")
    common=(--findings "$scratch/f" --json --quiet --runs "$runs" --hang-ms 10000)
    restore=()
    [ "$bug" = lost-update ] && restore=(--restore-command "$c restore db {run}/m.bak 2")
    tail=(-- "$c" backup db '{run}/m.bak' 2)
    free=$(hits "$want" "${pre[@]}" "${common[@]}" "${restore[@]}" "${tail[@]}")
    shake=$(hits "$want" "${pre[@]}" "${common[@]}" --shake 1 "${restore[@]}" "${tail[@]}")
    rnd=$(hits "$want" "${pre[@]}" "${common[@]}" --sched random:1 "${restore[@]}" "${tail[@]}")
    sched=$(hits "$want" "${pre[@]}" "${common[@]}" --sched "pct:$depth" "${restore[@]}" "${tail[@]}")
    same=$(replays "$runs" --hang-ms 10000 "${restore[@]}" "${tail[@]}")
    ratio=$(awk -v s="$sched" -v r="$rnd" -v a="$free" -v b="$shake" 'BEGIN {
        if (r > s) s = r
        o = a > b ? a : b
        if (s == 0) print "none found"
        else if (o == 0) printf ">= %.0fx (others found none)\n", s
        else printf "%.1fx\n", s / o }')
    printf '%-28s %-9s %-9s %-9s %-9s %-26s %s\n' "$bug ($runs)" "$free/$runs" "$shake/$runs" \
        "$sched/$runs" "$rnd/$runs" "$ratio" "$same (pct:$depth)"
done

# The small programs of tests/sched (no VDI, fully controlled): free runs against PCT
# seeds, then the first finding replayed from its report $runs times to the same trace.
sched_lib=$b/chaos/sched/libvdichaos_sched.so
printf '\n%-34s %-10s %-12s %-16s %s\n' "program (runs each)" "free" "pct" "first pct seed" \
    "replays, same trace"
for row in "lost-update 1 2" "lost-wakeup 86 3" "late-finish 1 2"; do
    read -r p want depth <<<"$row"
    prog=$b/tests/sched/sched-$p
    free=0 found=0 first=""
    for ((i = 1; i <= runs; i++)); do
        rc=0
        timeout 10 "$prog" >/dev/null 2>&1 || rc=$?
        [ "$rc" -eq "$want" ] && free=$((free + 1))
    done
    LD_PRELOAD=$sched_lib VDICHAOS_SCHED=random:0 VDICHAOS_SCHED_OUT=$scratch/r0 "$prog" \
        >/dev/null 2>&1 || true
    k=$(sed -n 's/^steps //p' "$scratch/r0")
    for ((i = 1; i <= runs; i++)); do
        rc=0
        LD_PRELOAD=$sched_lib VDICHAOS_SCHED=pct:$depth:$i:$k VDICHAOS_SCHED_OUT=$scratch/r \
            "$prog" >/dev/null 2>&1 || rc=$?
        if [ "$rc" -eq "$want" ]; then
            found=$((found + 1))
            [ -n "$first" ] || { first=$i; cp "$scratch/r" "$scratch/found"; }
        fi
    done
    same=0
    if [ -n "$first" ]; then
        t=$(sed -n 's/^trace //p' "$scratch/found")
        for ((i = 1; i <= runs; i++)); do
            rc=0
            LD_PRELOAD=$sched_lib VDICHAOS_SCHED=replay:$scratch/found VDICHAOS_SCHED_OUT=$scratch/rr \
                "$prog" >/dev/null 2>&1 || rc=$?
            [ "$rc" -eq "$want" ] && [ "$(sed -n 's/^trace //p' "$scratch/rr")" = "$t" ] &&
                same=$((same + 1))
        done
    fi
    printf '%-34s %-10s %-12s %-16s %s\n' "sched-$p ($runs)" "$free/$runs" "$found/$runs" \
        "${first:-none} (pct:$depth)" "$same/$runs"
done
echo

# Overhead: the sample client's clean backup, runs per second, free and scheduled.
s=$b/ref/compat/example/vdi-sample-client
pps() {
    "$tool" client --plans clean --runs "$runs" --json --quiet --findings "$scratch/o" "$@" \
        -- "$s" backup db '{run}/m.bak' 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["plans_per_second"])'
}
f=$(pps)
c=$(pps --sched pct:2:1)
printf '%-34s %-10s %-10s %s\n' "sample client, runs/s ($runs)" "free $f" "sched $c" \
    "$(awk -v a="$f" -v b="$c" 'BEGIN { printf "%.2f of free\n", b / a }')"
