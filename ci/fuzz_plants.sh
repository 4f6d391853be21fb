#!/usr/bin/env bash
# How fast fuzz_race under libFuzzer finds each seeded bug of tests/meta (the same bugs the
# meta tests plant in a copy of the reference), and what the interleaving feedback buys.
# For every bug and every libFuzzer seed it records whether the bug was found within the
# budget, after how many runs and how many seconds; prints one line per bug with the
# median over the seeds. Exit 1 when a bug was missed in some seed.
#
# Usage: ci/fuzz_plants.sh [--seconds S] [--seeds N] [--from seed|empty] [--bug NAME]
#                          [--preset fuzz|fuzz-tsan] [--compare-feedback] [--no-setup]
#   --preset fuzz-tsan  libFuzzer with ThreadSanitizer: for the data-race bugs
#   --from seed    start from corpora/fuzz_race/seed (default); empty: from nothing
#   --compare-feedback  run every seed twice, with and without the pair feedback
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here" || exit 2

seconds=60 seeds=3 from=seed only="" compare=0 do_setup=1 preset=fuzz
while [ $# -gt 0 ]; do
    case "$1" in
    --seconds) seconds=${2:-}; shift 2 ;;
    --seeds) seeds=${2:-}; shift 2 ;;
    --from) from=${2:-}; shift 2 ;;
    --bug) only=${2:-}; shift 2 ;;
    --preset) preset=${2:-}; shift 2 ;;
    --compare-feedback) compare=1; shift ;;
    --no-setup) do_setup=0; shift ;;
    -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "ci/fuzz_plants.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
done
case "$seconds$seeds" in *[!0-9]*) echo "ci/fuzz_plants.sh: --seconds and --seeds want integers" >&2; exit 2 ;; esac
case "$from" in seed | empty) ;; *) echo "ci/fuzz_plants.sh: --from is seed or empty" >&2; exit 2 ;; esac
case "$preset" in fuzz | fuzz-tsan) ;; *) echo "ci/fuzz_plants.sh: --preset is fuzz or fuzz-tsan" >&2; exit 2 ;; esac
run=()
[ "$preset" = fuzz-tsan ] && run=(env TSAN_OPTIONS=halt_on_error=1 setarch -R)

out=build/fuzz-plants
mkdir -p "$out"
if [ $do_setup = 1 ]; then
    # shellcheck source=ci/setup.sh
    . ci/setup.sh
    vdi_setup "$out" || exit 2
fi
cmake --preset "$preset" >"$out/configure.log" 2>&1 &&
    cmake --build "build/$preset" -j2 --target fuzz_plants >"$out/build.log" 2>&1 ||
    { tail -n 30 "$out/build.log" >&2; exit 2; }

bins=$(find "build/$preset/tests/meta" -maxdepth 1 -type f -name 'fuzz_race_*' -perm -u+x | sort)
[ -n "$only" ] && bins=$(echo "$bins" | grep "/fuzz_race_$only\$")
[ -n "$bins" ] || { echo "ci/fuzz_plants.sh: no seeded bug '${only:-*}'" >&2; exit 2; }

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else print v[int((NR + 1) / 2)] }'; }

# one BIN SEED FEEDBACK: prints "found runs seconds"
one() {
    local bin=$1 seed=$2 fb=$3 corpus=$out/corpus log=$out/run.log t0 t1 runs
    rm -rf "$corpus" && mkdir -p "$corpus"
    [ "$from" = seed ] && find corpora/fuzz_race/seed -maxdepth 1 -type f ! -name '*.md' -exec cp {} "$corpus/" \;
    t0=$(date +%s.%N)
    VDICHAOS_NO_PAIR_FEEDBACK=$([ "$fb" = on ] && echo 0 || echo 1) \
        "${run[@]}" "$bin" "$corpus" -seed="$seed" -max_total_time="$seconds" -print_final_stats=1 \
        -dict=fuzz/fuzz_race.dict -artifact_prefix="$out/" >"$log" 2>&1
    t1=$(date +%s.%N)
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
    # Found: an oracle of the engine, or a sanitizer report that ended the run.
    if grep -qE '==vdichaos== finding|use-after-unmap|ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|WARNING: ThreadSanitizer' "$log"; then
        echo "1 ${runs:-0} $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')"
    else
        echo "0 ${runs:-0} $seconds"
    fi
}

missed=0
echo "preset $preset, ${seconds}s a run, libFuzzer seeds 1..$seeds"
printf '%-28s %-5s %-8s %6s %11s %12s\n' bug from feedback found median-runs median-secs | tee "$out/table.txt"
for bin in $bins; do
    bug=${bin##*/fuzz_race_}
    for fb in on $([ $compare = 1 ] && echo off); do
        : >"$out/$bug-$fb.txt"
        for s in $(seq 1 "$seeds"); do
            one "$bin" "$s" "$fb" >>"$out/$bug-$fb.txt"
        done
        found=$(awk '$1 == 1' "$out/$bug-$fb.txt" | wc -l)
        mr=$(awk '$1 == 1 { print $2 }' "$out/$bug-$fb.txt" | median)
        ms=$(awk '$1 == 1 { print $3 }' "$out/$bug-$fb.txt" | median)
        [ "$found" = "$seeds" ] || { [ "$fb" = on ] && missed=$((missed + 1)); }
        printf '%-28s %-5s %-8s %3s/%-2s %11s %12s\n' "$bug" "$from" "$fb" "$found" "$seeds" "$mr" "$ms" | tee -a "$out/table.txt"
    done
done
[ $missed = 0 ] || { echo "$missed seeded bug(s) missed within ${seconds}s in some seed"; exit 1; }
echo "every seeded bug found within ${seconds}s in every seed"
