#!/usr/bin/env bash
# How fast fuzz_race finds each seeded bug of tests/meta (the same bugs the meta tests plant
# in a copy of the reference), under libFuzzer or AFL++, and what the interleaving feedback
# buys. For every bug and every fuzzer seed it records whether the bug was found within the
# budget, after how many runs and how many seconds; prints one line per bug with the median
# over the seeds. Exit 1 when a bug was missed in some seed.
#
# Usage: ci/fuzz_plants.sh [--seconds S] [--seeds N] [--from seed|empty] [--bug NAME]
#                          [--engine libfuzzer|afl] [--preset fuzz|fuzz-tsan]
#                          [--feedback on|off|both] [--build-root DIR] [--no-build | --build-only]
#                          [--raw] [--no-setup]
#   --engine afl   AFL++ (afl-fuzz -s SEED) on fuzz_race_<bug> built by afl-clang-fast with
#                  its libFuzzer driver (preset afl with VDI_FUZZ=ON, in DIR/afl-plants);
#                  AFL++ does not see the pair feedback, so no --feedback off or both
#   --preset fuzz-tsan  libFuzzer with ThreadSanitizer: for the data-race bugs
#   --from seed    start from corpora/fuzz_race/seed (default); empty: from nothing
#   --feedback on|off|both  libFuzzer with the pair feedback (default), without, or every
#                  seed both ways; --compare-feedback is --feedback both
#   --build-root DIR    build directories are DIR/<preset> (default build)
#   --no-build     use what DIR holds (exit 2 when the bug's binary is not there)
#   --build-only   build, run nothing
#   --raw          no table: one line per run, "run BUG FEEDBACK SEED FOUND RUNS SECONDS"
#                  (FOUND 1 or 0; SECONDS the budget when not found); ci/bench_bugs.sh reads it
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here" || exit 2

seconds=60 seeds=3 from=seed only="" feedback=on do_setup=1 preset="" engine=libfuzzer
root=build build=1 build_only=0 raw=0
while [ $# -gt 0 ]; do
    case "$1" in --seconds | --seeds | --from | --bug | --preset | --engine | --build-root | --feedback)
        [ $# -ge 2 ] || { echo "ci/fuzz_plants.sh: $1 needs a value" >&2; exit 2; } ;;
    esac
    case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --from) from=$2; shift 2 ;;
    --bug) only=$2; shift 2 ;;
    --preset) preset=$2; shift 2 ;;
    --engine) engine=$2; shift 2 ;;
    --build-root) root=$2; shift 2 ;;
    --feedback) feedback=$2; shift 2 ;;
    --compare-feedback) feedback=both; shift ;;
    --no-build) build=0; shift ;;
    --build-only) build_only=1; shift ;;
    --raw) raw=1; shift ;;
    --no-setup) do_setup=0; shift ;;
    -h | --help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "ci/fuzz_plants.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
done
case "$seconds$seeds" in '' | *[!0-9]*) echo "ci/fuzz_plants.sh: --seconds and --seeds want integers" >&2; exit 2 ;; esac
if [ "$seconds" -lt 1 ] || [ "$seeds" -lt 1 ]; then
    echo "ci/fuzz_plants.sh: --seconds and --seeds must be at least 1" >&2
    exit 2
fi
case "$feedback" in on | off | both) ;; *) echo "ci/fuzz_plants.sh: --feedback is on, off or both" >&2; exit 2 ;; esac
case "$from" in seed | empty) ;; *) echo "ci/fuzz_plants.sh: --from is seed or empty" >&2; exit 2 ;; esac
case "$engine" in
libfuzzer)
    [ -n "$preset" ] || preset=fuzz
    case "$preset" in fuzz | fuzz-tsan) ;; *) echo "ci/fuzz_plants.sh: --preset is fuzz or fuzz-tsan" >&2; exit 2 ;; esac
    dir=$root/$preset
    ;;
afl)
    [ -z "$preset" ] || { echo "ci/fuzz_plants.sh: --preset is for libFuzzer (AFL++ builds preset afl)" >&2; exit 2; }
    [ "$feedback" = on ] || { echo "ci/fuzz_plants.sh: AFL++ does not see the pair feedback: no --feedback off or both" >&2; exit 2; }
    preset=afl
    dir=$root/afl-plants
    ;;
*) echo "ci/fuzz_plants.sh: --engine is libfuzzer or afl" >&2; exit 2 ;;
esac
[ $build = 1 ] || [ $build_only = 0 ] || { echo "ci/fuzz_plants.sh: --no-build and --build-only exclude each other" >&2; exit 2; }
case "$only" in *[!a-z0-9_]*) echo "ci/fuzz_plants.sh: --bug takes a bug's name (letters, digits, _)" >&2; exit 2 ;; esac
run=()
[ "$preset" = fuzz-tsan ] && run=(env TSAN_OPTIONS=halt_on_error=1 setarch "$(uname -m)" -R)

# The table, the crash inputs and the last logs stay in $keep; the corpus, the fuzzer's
# output and the logs being read go in a folder of this invocation's own, so that two
# invocations never share one.
keep=$root/fuzz-plants-$preset
mkdir -p "$keep" || exit 2
out=$(mktemp -d "$keep/run.XXXXXX") || exit 2
trap 'mv -f "$out"/*.log "$keep/" 2>/dev/null; rm -rf "$out"' EXIT
if [ $do_setup = 1 ] && [ $build = 1 ]; then
    # shellcheck source=ci/setup.sh
    . ci/setup.sh
    vdi_setup "$keep" || exit 2
fi
if [ $build = 1 ]; then
    # One bug: its binary only; else all of them (target fuzz_plants).
    target=fuzz_plants
    [ -n "$only" ] && target=fuzz_race_$only
    configure=(cmake --preset "$preset" -B "$dir")
    if [ "$engine" = afl ]; then
        if ! command -v afl-fuzz >/dev/null 2>&1 || ! command -v afl-clang-fast >/dev/null 2>&1; then
            echo "ci/fuzz_plants.sh: AFL++ is not installed (afl-fuzz, afl-clang-fast)" >&2
            exit 2
        fi
        # afl-clang-fast links -fsanitize=fuzzer as its own libFuzzer-compatible driver.
        configure+=(-DVDI_FUZZ=ON)
    fi
    "${configure[@]}" >"$keep/configure.log" 2>&1 ||
        { tail -n 30 "$keep/configure.log" >&2; echo "ci/fuzz_plants.sh: configuring $dir failed" >&2; exit 2; }
    cmake --build "$dir" -j2 --target "$target" >"$keep/build.log" 2>&1 ||
        { tail -n 30 "$keep/build.log" >&2; echo "ci/fuzz_plants.sh: building $dir failed" >&2; exit 2; }
fi
[ $build_only = 0 ] || exit 0
if [ "$engine" = afl ] && ! command -v afl-fuzz >/dev/null 2>&1; then
    echo "ci/fuzz_plants.sh: AFL++ is not installed (afl-fuzz)" >&2
    exit 2
fi

bins=$(find "$dir/tests/meta" -maxdepth 1 -type f -name 'fuzz_race_*' -perm -u+x 2>/dev/null | sort)
[ -n "$only" ] && bins=$(echo "$bins" | grep "/fuzz_race_$only\$")
if [ -z "$bins" ]; then
    if [ $build = 0 ]; then
        echo "ci/fuzz_plants.sh: no fuzz_race_${only:-*} in $dir/tests/meta (not built: run without --no-build)" >&2
    else
        echo "ci/fuzz_plants.sh: no seeded bug '${only:-*}'" >&2
    fi
    exit 2
fi

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else print v[int((NR + 1) / 2)] }'; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# The starting corpus, in a fresh folder.
fresh_corpus() { # folder
    rm -rf "$1" && mkdir -p "$1"
    # One cp for all of them: starting a process is slow on some machines.
    [ "$from" = seed ] && find corpora/fuzz_race/seed -maxdepth 1 -type f ! -name '*.md' -exec cp -t "$1/" {} +
    return 0
}

# one_libfuzzer BIN SEED FEEDBACK: prints "found runs seconds"
one_libfuzzer() {
    local bin=$1 seed=$2 fb=$3 corpus=$out/corpus log=$out/run.log t0 t1 runs
    fresh_corpus "$corpus"
    t0=$(date +%s.%N)
    # The outer timeout only guards against a run that never ends (libFuzzer's own limit
    # is checked between inputs).
    VDICHAOS_NO_PAIR_FEEDBACK=$([ "$fb" = on ] && echo 0 || echo 1) \
        timeout $((seconds + 60)) "${run[@]}" "$bin" "$corpus" -seed="$seed" -max_total_time="$seconds" \
        -print_final_stats=1 -dict=fuzz/fuzz_race.dict -artifact_prefix="$keep/" >"$log" 2>&1
    t1=$(date +%s.%N)
    # No count when the process died before libFuzzer printed it: "-", not 0.
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo -)
    # Found: an oracle of the engine, or a sanitizer report that ended the run.
    if grep -qE '==vdichaos== finding|use-after-unmap|ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|WARNING: ThreadSanitizer' "$log"; then
        echo "1 ${runs:--} $(elapsed "$t0" "$t1")"
    else
        echo "0 ${runs:--} $seconds"
    fi
}

# one_afl BIN SEED: prints "found runs seconds". afl-fuzz stops at its first crash
# (AFL_BENCH_UNTIL_CRASH); a starting input that already crashes stops it in its dry run,
# and then the runs are that input's place in the queue.
one_afl() {
    local bin=$1 seed=$2 work=$out/afl log=$out/afl.log t0 t1 runs found=0 st
    rm -rf "$work" && mkdir -p "$work"
    fresh_corpus "$work/in"
    [ -n "$(ls "$work/in")" ] || printf '\0' >"$work/in/empty"
    t0=$(date +%s.%N)
    AFL_SKIP_CPUFREQ=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
        AFL_BENCH_UNTIL_CRASH=1 AFL_NO_STARTUP_CALIBRATION=1 \
        timeout $((seconds + 60)) afl-fuzz -i "$work/in" -o "$work/out" -s "$seed" -V "$seconds" \
        -m none -t 30000 -x fuzz/fuzz_race.dict -- "$bin" >"$log" 2>&1 </dev/null
    t1=$(date +%s.%N)
    st=$work/out/default/fuzzer_stats
    runs=$(awk -F' *: *' '$1 == "execs_done" { print $2 }' "$st" 2>/dev/null)
    if [ -n "$(find "$work/out/default/crashes" -maxdepth 1 -name 'id:*' 2>/dev/null)" ]; then
        found=1
    elif grep -q 'results in a crash' "$log"; then
        found=1
        runs=$(grep -c 'Attempting dry run with' "$log")
    fi
    if [ $found = 1 ]; then
        echo "1 ${runs:-0} $(elapsed "$t0" "$t1")"
    else
        [ -f "$st" ] || echo "ci/fuzz_plants.sh: afl-fuzz did not start on $bin (see $keep/afl.log)" >&2
        echo "0 ${runs:-0} $seconds"
    fi
}

missed=0
if [ $raw = 0 ]; then
    echo "$engine, preset $preset, ${seconds}s a run, fuzzer seeds 1..$seeds"
    printf '%-28s %-5s %-8s %6s %11s %12s\n' bug from feedback found median-runs median-secs | tee "$keep/table.txt"
fi
for bin in $bins; do
    bug=${bin##*/fuzz_race_}
    fbs=$feedback
    [ "$feedback" = both ] && fbs="on off"
    [ "$engine" = afl ] && fbs=afl
    for fb in $fbs; do
        : >"$out/$bug-$fb.txt"
        for s in $(seq 1 "$seeds"); do
            if [ "$engine" = afl ]; then r=$(one_afl "$bin" "$s"); else r=$(one_libfuzzer "$bin" "$s" "$fb"); fi
            echo "$r" >>"$out/$bug-$fb.txt"
            [ $raw = 1 ] && echo "run $bug $fb $s $r"
        done
        found=$(awk '$1 == 1' "$out/$bug-$fb.txt" | wc -l)
        mr=$(awk '$1 == 1 && $2 != "-" { print $2 }' "$out/$bug-$fb.txt" | median)
        ms=$(awk '$1 == 1 { print $3 }' "$out/$bug-$fb.txt" | median)
        # A miss without the feedback counts only when that is what was asked for.
        if [ "$found" != "$seeds" ] && { [ "$fb" != off ] || [ "$feedback" = off ]; }; then
            missed=$((missed + 1))
        fi
        [ $raw = 1 ] || printf '%-28s %-5s %-8s %3s/%-2s %11s %12s\n' "$bug" "$from" "$fb" "$found" "$seeds" "$mr" "$ms" | tee -a "$keep/table.txt"
    done
done
[ $raw = 0 ] || exit 0
[ $missed = 0 ] || { echo "$missed seeded bug(s) missed within ${seconds}s in some seed"; exit 1; }
echo "every seeded bug found within ${seconds}s in every seed"
