#!/usr/bin/env bash
# The time-to-bug benchmark (ci/bench.sh --bugs): every seeded bug of tests/meta under each
# strategy of the engine, under the fuzzers, and under the stress test a user would write.
#
# For each bug its scenario is the one its meta test catches it in (the test runs every
# scenario seed by seed and names the run). On that scenario, with 5 seeds each (seed bases
# 1, 100001, ...): random, pct depth 1, 2 and 3, and dfs (one bounded exhaustive search,
# at most 2 preemptions: no seeds), each up to --runs runs and --seconds seconds. The fuzzers
# run fuzz_race built against the bug (ci/fuzz_plants.sh), from corpora/fuzz_race/seed, 5
# fuzzer seeds of --seconds each (--runs does not bound them): fuzz (libFuzzer with the
# ordering feedback), fuzz-nofb (without it), afl (AFL++, which sees edge coverage only).
# fuzz_race draws its own scenario from the input, not the bug's. The stress test is the
# bug's scenario on real threads with seeded random sleeps (vdichaos run --free), built with
# TSan (halt_on_error), for the same seconds, 5 seeds. Everything but the stress test is
# pinned to one core (--cpu, default 0). Printed per bug: each strategy's found k/5, median runs (the fuzzers:
# executions) and median seconds to the finding; the stress test's found k/5 and median
# seconds; and the ratio stress / best strategy (median seconds, where a seed that never
# found counts as the whole budget, so the ratio is a lower bound when the stress test
# missed in 3 or more seeds, written ">="). A column that could not be built says so in its
# cells. The same table is printed again at the end in markdown.
#
# Usage: ci/bench_bugs.sh [--no-build] [--seconds S (10)] [--runs N (10000)] [--bug NAME]...
#                         [--strategies LIST] [--build-root DIR (build)] [--cpu N (0)]
#   --strategies LIST  comma-separated, from random,pct1,pct2,pct3,dfs,fuzz,fuzz-nofb,afl,stress
#                      (default all of them; without stress there is no ratio)
#   --build-root DIR   build directories are DIR/<preset>
#   --cpu N            the core everything but the stress test is pinned to
set -euo pipefail
cd "$(dirname "$0")/.."

all_strategies=(random pct1 pct2 pct3 dfs fuzz fuzz-nofb afl stress)
build=1
secs=10
runs=10000
root=build
cpu=0
only=()
strategies=("${all_strategies[@]}")
while [ $# -gt 0 ]; do
    case "$1" in --seconds | --runs | --bug | --strategies | --build-root | --cpu)
        [ $# -ge 2 ] || { echo "ci/bench_bugs.sh: $1 needs a value" >&2; exit 2; } ;;
    esac
    case "$1" in
    --no-build) build=0; shift ;;
    --seconds) secs=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --bug) only+=("$2"); shift 2 ;;
    --build-root) root=$2; shift 2 ;;
    --cpu) cpu=$2; shift 2 ;;
    --strategies)
        [ -n "$2" ] || { echo "ci/bench_bugs.sh: --strategies needs at least one strategy" >&2; exit 2; }
        IFS=, read -r -a strategies <<<"$2"
        for s in "${strategies[@]}"; do
            [ -n "$s" ] || { echo "ci/bench_bugs.sh: an empty name in --strategies '$2'" >&2; exit 2; }
            case " ${all_strategies[*]} " in *" $s "*) ;; *)
                echo "ci/bench_bugs.sh: unknown strategy '$s' in --strategies (known: $(IFS=,; echo "${all_strategies[*]}"))" >&2
                exit 2 ;;
            esac
        done
        shift 2 ;;
    -h | --help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "ci/bench_bugs.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
done
case "$secs$runs" in *[!0-9]*) echo "ci/bench_bugs.sh: --seconds and --runs take whole numbers" >&2; exit 2 ;; esac
if [ -z "$secs" ] || [ -z "$runs" ] || [ "$secs" -lt 1 ] || [ "$runs" -lt 1 ]; then
    echo "ci/bench_bugs.sh: --seconds and --runs must be at least 1" >&2
    exit 2
fi
[ -n "$root" ] || { echo "ci/bench_bugs.sh: --build-root needs a folder" >&2; exit 2; }
case "$cpu" in '' | *[!0-9]*) echo "ci/bench_bugs.sh: --cpu takes a CPU number" >&2; exit 2 ;; esac
taskset -c "$cpu" true 2>/dev/null || { echo "ci/bench_bugs.sh: cannot pin to CPU $cpu" >&2; exit 2; }
root=${root%/}
chosen() { case " ${strategies[*]} " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tsan_run=(env TSAN_OPTIONS=halt_on_error=1 setarch "$(uname -m)" -R)

# The fuzzer columns: fuzz_plants.sh builds and runs them; a column it cannot build is
# marked here with the reason, and its cells say so.
declare -A unavailable
plants() { ci/fuzz_plants.sh --no-setup --build-root "$root" "$@"; }
if [ $build = 1 ]; then
    for p in asan tsan; do
        cmake --preset "$p" -B "$root/$p" >/dev/null
        cmake --build "$root/$p" -j2 >/dev/null
    done
fi
for p in asan tsan; do
    [ -d "$root/$p/tests/meta" ] || { echo "ci/bench_bugs.sh: $root/$p is not built (run without --no-build)" >&2; exit 2; }
done

# The seeded bugs: name, oracle and flags, from the meta tests' command lines.
mapfile -t tests < <(ctest --test-dir "$root/asan" -N -V -R '^meta_' 2>/dev/null |
    sed -n 's/.*Test command: .*\/meta_\([a-z0-9_]*\) "\([a-z-]*\)" "[0-9]*"\(.*\)$/\1 \2 \3/p' |
    grep -v '^clean ' | tr -d '"')
[ ${#tests[@]} -gt 0 ] || { echo "ci/bench_bugs.sh: no meta tests found in $root/asan" >&2; exit 2; }

for b in "${only[@]}"; do
    printf '%s\n' "${tests[@]}" | grep -q "^$b " ||
        { echo "ci/bench_bugs.sh: no seeded bug '$b' (the meta tests of tests/meta name them)" >&2; exit 2; }
done
wanted() { [ ${#only[@]} -eq 0 ] || printf '%s\n' "${only[@]}" | grep -qx "$1"; }

if [ $build = 1 ]; then
    if chosen fuzz || chosen fuzz-nofb; then
        plants --build-only 2>"$work/build-fuzz.err" ||
            unavailable[fuzz]="not built: $(tail -n 1 "$work/build-fuzz.err")"
        # The data-race bugs need the libFuzzer build with TSan: only theirs are built.
        for line in "${tests[@]}"; do
            read -r bug oracle _ <<<"$line"
            if [ "$oracle" != data-race ] || ! wanted "$bug"; then continue; fi
            plants --build-only --preset fuzz-tsan --bug "$bug" 2>"$work/build-fuzz-tsan.err" ||
                unavailable[fuzz-tsan]="not built: $(tail -n 1 "$work/build-fuzz-tsan.err")"
        done
    fi
    if chosen afl; then
        plants --build-only --engine afl 2>"$work/build-afl.err" ||
            unavailable[afl]="not built: $(tail -n 1 "$work/build-afl.err")"
    fi
fi
[ -n "${unavailable[fuzz]:-}" ] && unavailable[fuzz-nofb]=${unavailable[fuzz]}

now_ns() { date +%s%N; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# One search: prints "found RUNS SECONDS" or "missed - SECONDS".
search() { # prefix... -- vdichaos arguments...
    local pre=() t0 t1 out=$work/out
    while [ "$1" != -- ]; do pre+=("$1"); shift; done
    shift
    t0=$(now_ns)
    # (The subshell's own stderr goes nowhere: it would print "Aborted" for every run that
    # a sanitizer or an oracle ended.)
    (cd "$work" && timeout "$secs" "${pre[@]}" "$@" >"$out" 2>&1) 2>/dev/null && rc=0 || rc=$?
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

# The fuzzer columns of one bug: fuzz_plants.sh --raw, one line per run, into
# $work/fz-<strategy> as "found runs seconds"; on failure $work/fz-<strategy>.err says why.
fuzzers() { # bug oracle
    local bug=$1 oracle=$2 fb=""
    local lf=(--seconds "$secs" --seeds 5 --bug "$bug" --no-build --raw)
    rm -f "$work"/fz-*
    [ "$oracle" = data-race ] && lf+=(--preset fuzz-tsan)
    chosen fuzz && fb=on
    chosen fuzz-nofb && fb=${fb:+both}
    chosen fuzz-nofb && [ -z "$fb" ] && fb=off
    if [ -n "$fb" ]; then
        if taskset -c "$cpu" ci/fuzz_plants.sh --build-root "$root" "${lf[@]}" --feedback "$fb" \
            >"$work/fz-lf.out" 2>"$work/fz-lf.err"; then
            awk '$1 == "run" && $3 == "on" { print $5, $6, $7 }' "$work/fz-lf.out" >"$work/fz-fuzz"
            awk '$1 == "run" && $3 == "off" { print $5, $6, $7 }' "$work/fz-lf.out" >"$work/fz-fuzz-nofb"
        else
            cp "$work/fz-lf.err" "$work/fz-fuzz.err"
            cp "$work/fz-lf.err" "$work/fz-fuzz-nofb.err"
        fi
    fi
    if chosen afl; then
        if [ "$oracle" = data-race ]; then
            echo "n/a: a TSan-only bug, the AFL++ build is ASan" >"$work/fz-afl.err"
        elif taskset -c "$cpu" ci/fuzz_plants.sh --build-root "$root" --engine afl --seconds "$secs" --seeds 5 \
            --bug "$bug" --no-build --raw >"$work/fz-afl.out" 2>"$work/fz-afl.err"; then
            awk '$1 == "run" { print $5, $6, $7 }' "$work/fz-afl.out" >"$work/fz-afl"
        fi
    fi
    return 0
}

declare -A cell
rows=()
printf '%-34s %-22s %-9s %-6s %9s %9s\n' bug scenario strategy found runs seconds
summary=()
for line in "${tests[@]}"; do
    read -r bug oracle flags <<<"$line"
    wanted "$bug" || continue
    preset=asan
    pre=(taskset -c "$cpu")
    [ "$oracle" = data-race ] && { preset=tsan; pre=(taskset -c "$cpu" "${tsan_run[@]}"); }
    meta=$root/$preset/tests/meta/meta_$bug
    vd=$root/$preset/tests/meta/vdichaos_$bug
    # shellcheck disable=SC2086
    home=$("${pre[@]}" "$meta" "$oracle" 300 $flags 2>&1 | sed -n 's/^run [0-9]* \([a-z-]*\) .*/\1/p' | tail -n 1 || true)
    if [ -z "$home" ]; then
        printf '%-34s %s\n' "$bug" "(its meta test did not catch it here: skipped)"
        continue
    fi
    rows+=("$bug $home")
    access=()
    case "$flags" in *--access-points*) access=(--access-points 1) ;; esac
    if chosen fuzz || chosen fuzz-nofb || chosen afl; then fuzzers "$bug" "$oracle"; fi
    best=""
    for strat in "${strategies[@]}"; do
        [ "$strat" = stress ] && continue
        nseeds=5
        [ "$strat" = dfs ] && nseeds=1
        k=0
        : >"$work/runs" && : >"$work/secs"
        case $strat in
        fuzz | fuzz-nofb | afl)
            col=$strat
            [ "$oracle" = data-race ] && [ "$strat" != afl ] && col=fuzz-tsan
            why=${unavailable[$col]:-}
            if [ -z "$why" ] && [ ! -s "$work/fz-$strat" ]; then
                why=$(tail -n 1 "$work/fz-$strat.err" 2>/dev/null || true)
                why=${why#ci/fuzz_plants.sh: }
                why=${why:-no result}
            fi
            if [ -n "$why" ]; then
                printf '%-34s %-22s %-9s %s\n' "$bug" "$home" "$strat" "($why)"
                cell[$bug,$strat]="($why)"
                continue
            fi
            while read -r f n s; do
                if [ "$f" = 1 ]; then
                    k=$((k + 1))
                    [ "$n" != - ] && echo "$n" >>"$work/runs" # (the fuzzer died before counting)
                    echo "$s" >>"$work/secs"
                else
                    echo "$secs" >>"$work/secs"
                fi
            done <"$work/fz-$strat"
            unit=execs
            ;;
        *)
            args=(run "$home" --runs "$runs" "${access[@]}")
            case $strat in
            random) args+=(--strategy random) ;;
            pct*) args+=(--strategy pct --depth "${strat#pct}") ;;
            dfs) args+=(--strategy dfs --preemptions 2) ;;
            esac
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
            unit=runs
            ;;
        esac
        mr=$(median <"$work/runs")
        ms=$(median <"$work/secs")
        printf '%-34s %-22s %-9s %-6s %9s %9s\n' "$bug" "$home" "$strat" "$k/$nseeds" "$mr" "$ms"
        cell[$bug,$strat]="$k/$nseeds, $mr $unit, $ms s"
        if [ "$k" -gt 0 ] && { [ -z "$best" ] || awk -v a="$ms" -v b="$best" 'BEGIN { exit !(a < b) }'; }; then
            best=$ms
            best_name=$strat
        fi
    done
    chosen stress || {
        summary+=("$(printf '%-34s best %-9s %8ss   (no stress test run)' "$bug" "${best_name:--}" "${best:--}")")
        cell[$bug,ratio]="-"
        continue
    }
    # The stress test: real threads, seeded random sleeps, TSan.
    k=0
    : >"$work/secs"
    for i in 1 2 3 4 5; do
        r=$(search "${tsan_run[@]}" -- "$PWD/$root/tsan/tests/meta/vdichaos_$bug" run "$home" --free \
            --runs 100000000 --seed $(((i - 1) * 100000 + 1)))
        read -r what n s <<<"$r"
        [ "$what" = found ] && { k=$((k + 1)); echo "$s" >>"$work/secs"; } || echo "$secs" >>"$work/secs"
    done
    ss=$(median <"$work/secs")
    printf '%-34s %-22s %-9s %-6s %9s %9s\n' "$bug" "$home" stress "$k/5" - "$ss"
    cell[$bug,stress]="$k/5, $ss s"
    if [ -n "$best" ]; then
        ratio=$(awk -v a="$ss" -v b="$best" 'BEGIN { printf "%.0f", a / (b > 0.001 ? b : 0.001) }')
        [ "$k" -lt 3 ] && ratio=">=$ratio"
        summary+=("$(printf '%-34s best %-9s %8ss   stress %s/5 %8ss   ratio %s' "$bug" "$best_name" "$best" "$k" "$ss" "$ratio")")
        cell[$bug,ratio]="$ratio ($best_name)"
    else
        summary+=("$(printf '%-34s no strategy found it within %s s' "$bug" "$secs")")
        cell[$bug,ratio]="-"
    fi
done
echo
echo "time to bug, median seconds: the best strategy against the stress test (goal: ratio >= 20)"
printf '%s\n' "${summary[@]}"

# The same table in markdown (fuzz/NOTES.md keeps it).
declare -A title=([random]=random [pct1]="pct d=1" [pct2]="pct d=2" [pct3]="pct d=3" [dfs]=dfs
    [fuzz]="fuzz_race+feedback" [fuzz-nofb]="fuzz_race-nofeedback" [afl]="AFL++"
    [stress]="stress (TSan, real threads)")
echo
head="| bug | scenario |"
rule="|---|---|"
for s in "${strategies[@]}"; do head+=" ${title[$s]} |"; rule+="---|"; done
chosen stress && { head+=" ratio |"; rule+="---|"; }
echo "$head"
echo "$rule"
for r in "${rows[@]}"; do
    read -r bug home <<<"$r"
    l="| $bug | $home |"
    for s in "${strategies[@]}"; do l+=" ${cell[$bug,$s]:--} |"; done
    chosen stress && l+=" ${cell[$bug,ratio]:--} |"
    echo "$l"
done
