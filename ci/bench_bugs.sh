#!/usr/bin/env bash
# The time-to-bug benchmark (ci/bench.sh --bugs): every seeded bug of tests/meta under each
# strategy of the engine, and under the stress test a user would write instead.
#
# For each bug its scenario is the one its meta test catches it in (the test runs every
# scenario seed by seed and names the run). On that scenario, with 5 seeds each (seed bases
# 1, 100001, ...): random, pct depth 1, 2 and 3, and dfs (one bounded exhaustive search,
# at most 2 preemptions: no seeds), each up to --runs runs and --seconds seconds. The stress
# test is the same scenario on real threads with seeded random sleeps (vdichaos run --free),
# built with TSan (halt_on_error), for the same seconds, 5 seeds. Printed per bug: each
# strategy's found k/5, median runs and median seconds to the finding; the stress test's
# found k/5 and median seconds; and the ratio stress / best strategy (median seconds, where
# a stress seed that never found counts as the whole budget, so the ratio is a lower bound
# there, written ">=").
#
# Usage: ci/bench_bugs.sh [--no-build] [--seconds S (10)] [--runs N (10000)] [--bug NAME]...
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
secs=10
runs=10000
only=()
while [ $# -gt 0 ]; do
    case "$1" in --seconds | --runs | --bug) [ $# -ge 2 ] || { echo "ci/bench_bugs.sh: $1 needs a value" >&2; exit 2; } ;; esac
    case "$1" in
    --no-build) build=0; shift ;;
    --seconds) secs=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --bug) only+=("$2"); shift 2 ;;
    -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "ci/bench_bugs.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
done
case "$secs$runs" in *[!0-9]*) echo "ci/bench_bugs.sh: --seconds and --runs take whole numbers" >&2; exit 2 ;; esac
if [ -z "$secs" ] || [ -z "$runs" ] || [ "$secs" -lt 1 ] || [ "$runs" -lt 1 ]; then
    echo "ci/bench_bugs.sh: --seconds and --runs must be at least 1" >&2
    exit 2
fi

if [ $build = 1 ]; then
    for p in asan tsan; do
        cmake --preset "$p" >/dev/null
        cmake --build "build/$p" -j2 >/dev/null
    done
fi
for p in asan tsan; do
    [ -d "build/$p/tests/meta" ] || { echo "ci/bench_bugs.sh: build/$p is not built (run without --no-build)" >&2; exit 2; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tsan_run=(env TSAN_OPTIONS=halt_on_error=1 setarch "$(uname -m)" -R)

# The seeded bugs: name, oracle and flags, from the meta tests' command lines.
mapfile -t tests < <(ctest --test-dir build/asan -N -V -R '^meta_' 2>/dev/null |
    sed -n 's/.*Test command: .*\/meta_\([a-z0-9_]*\) "\([a-z-]*\)" "[0-9]*"\(.*\)$/\1 \2 \3/p' |
    grep -v '^clean ' | tr -d '"')
[ ${#tests[@]} -gt 0 ] || { echo "ci/bench_bugs.sh: no meta tests found in build/asan" >&2; exit 2; }

for b in "${only[@]}"; do
    printf '%s\n' "${tests[@]}" | grep -q "^$b " ||
        { echo "ci/bench_bugs.sh: no seeded bug '$b' (the meta tests of tests/meta name them)" >&2; exit 2; }
done

now_ns() { date +%s%N; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# One search: prints "found RUNS SECONDS" or "missed - SECONDS".
search() { # prefix... -- vdichaos arguments...
    local pre=() t0 t1 out=$work/out
    while [ "$1" != -- ]; do pre+=("$1"); shift; done
    shift
    t0=$(now_ns)
    (cd "$work" && timeout "$secs" "${pre[@]}" "$@" >"$out" 2>&1) && rc=0 || rc=$?
    t1=$(now_ns)
    local s
    s=$(awk -v ns=$((t1 - t0)) 'BEGIN { printf "%.3f", ns / 1e9 }')
    local n
    n=$(grep -aoE 'FINDING in (run|schedule) [0-9]+' "$out" | grep -oE '[0-9]+$' | head -n 1 || true)
    if [ "$rc" = 1 ] || [ -n "$n" ] || grep -aqE 'ThreadSanitizer|AddressSanitizer|use-after-unmap' "$out"; then
        echo "found ${n:--} $s"
    else
        echo "missed - $s"
    fi
    rm -f "$work"/*.replay
}

printf '%-34s %-22s %-7s %-6s %9s %9s\n' bug scenario strategy found runs seconds
summary=()
for line in "${tests[@]}"; do
    read -r bug oracle flags <<<"$line"
    if [ ${#only[@]} -gt 0 ] && ! printf '%s\n' "${only[@]}" | grep -qx "$bug"; then continue; fi
    preset=asan
    pre=(taskset -c 0)
    [ "$oracle" = data-race ] && { preset=tsan; pre=(taskset -c 0 "${tsan_run[@]}"); }
    meta=build/$preset/tests/meta/meta_$bug
    vd=build/$preset/tests/meta/vdichaos_$bug
    # shellcheck disable=SC2086
    home=$("${pre[@]}" "$meta" "$oracle" 300 $flags 2>&1 | sed -n 's/^run [0-9]* \([a-z-]*\) .*/\1/p' | tail -n 1 || true)
    if [ -z "$home" ]; then
        printf '%-34s %s\n' "$bug" "(its meta test did not catch it here: skipped)"
        continue
    fi
    access=()
    case "$flags" in *--access-points*) access=(--access-points 1) ;; esac
    best=""
    for strat in random pct1 pct2 pct3 dfs; do
        args=(run "$home" --runs "$runs" "${access[@]}")
        case $strat in
        random) args+=(--strategy random) ;;
        pct*) args+=(--strategy pct --depth "${strat#pct}") ;;
        dfs) args+=(--strategy dfs --preemptions 2) ;;
        esac
        nseeds=5
        [ $strat = dfs ] && nseeds=1
        k=0
        : >"$work/runs" && : >"$work/secs"
        for i in $(seq 1 $nseeds); do
            r=$(search "${pre[@]}" -- "$PWD/$vd" "${args[@]}" --seed $(((i - 1) * 100000 + 1)))
            read -r what n s <<<"$r"
            if [ "$what" = found ]; then
                k=$((k + 1))
                [ "$n" != - ] && echo "$n" >>"$work/runs" # (a sanitizer's report names no run)
                echo "$s" >>"$work/secs"
            else
                echo "$secs" >>"$work/secs"
            fi
        done
        mr=$(median <"$work/runs")
        ms=$(median <"$work/secs")
        printf '%-34s %-22s %-7s %-6s %9s %9s\n' "$bug" "$home" "$strat" "$k/$nseeds" "$mr" "$ms"
        if [ "$k" -gt 0 ] && { [ -z "$best" ] || awk -v a="$ms" -v b="$best" 'BEGIN { exit !(a < b) }'; }; then
            best=$ms
            best_name=$strat
        fi
    done
    # The stress test: real threads, seeded random sleeps, TSan.
    k=0
    : >"$work/secs"
    for i in 1 2 3 4 5; do
        r=$(search "${tsan_run[@]}" -- "$PWD/build/tsan/tests/meta/vdichaos_$bug" run "$home" --free \
            --runs 100000000 --seed $(((i - 1) * 100000 + 1)))
        read -r what n s <<<"$r"
        [ "$what" = found ] && { k=$((k + 1)); echo "$s" >>"$work/secs"; } || echo "$secs" >>"$work/secs"
    done
    ss=$(median <"$work/secs")
    printf '%-34s %-22s %-7s %-6s %9s %9s\n' "$bug" "$home" stress "$k/5" - "$ss"
    if [ -n "$best" ]; then
        ratio=$(awk -v a="$ss" -v b="$best" 'BEGIN { printf "%.0f", a / (b > 0.001 ? b : 0.001) }')
        [ "$k" -lt 3 ] && ratio=">=$ratio"
        summary+=("$(printf '%-34s best %-7s %8ss   stress %s/5 %8ss   ratio %s' "$bug" "$best_name" "$best" "$k" "$ss" "$ratio")")
    else
        summary+=("$(printf '%-34s no strategy found it within %s s' "$bug" "$secs")")
    fi
done
echo
echo "time to bug, median seconds: the best strategy against the stress test (goal: ratio >= 20)"
printf '%s\n' "${summary[@]}"
