#!/usr/bin/env bash
# The main job (README): builds every fuzz target for libFuzzer (preset fuzz) and, where
# AFL++ is installed, for AFL++ (preset afl); replays the stored corpora; fuzzes each
# target for its share of the budget with each engine; merges new coverage back into
# corpora/<target>/seed/ (libFuzzer's set-cover merge); minimizes each crash, names it by
# its signature (ci/crash_signature.py: oracle kind, protocol state, top frames outside
# the harness) and stores one file per new signature under corpora/<target>/crash/;
# prints a table and exits 1 on a new crash (0 clean, 2 usage or build error).
#
# Usage: ci/fuzz.sh [--minutes M] [--target NAME] [--engine libfuzzer|afl|both]
#                   [--corpora DIR] [--build-dir DIR] [--plant BUG] [--smoke] [--no-setup]
#   --minutes M    total budget over all targets and engines (default 3)
#   --corpora DIR  where the seed/ and crash/ folders live (default corpora)
#   --build-dir D  use the libFuzzer binaries in D (default build/fuzz, configured here)
#   --plant BUG    fuzz_race built against a seeded bug of tests/meta (libFuzzer only);
#                  use with --corpora on a scratch folder: shows the whole crash path
#   --smoke        3000 runs per target and engine from fixed seeds (the same runs every
#                  time, so a crash it finds is reproducible); leaves the tree as it was
#   --seconds-each S  exactly S seconds per target and engine (instead of --minutes)
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here" || exit 2

minutes=3
only=""
engine=both
corpora=corpora
lfdir=""
plant=""
each=""
smoke=0
do_setup=1
while [ $# -gt 0 ]; do
    case "$1" in
    --minutes) minutes=${2:-}; shift 2 ;;
    --target) only=${2:-}; shift 2 ;;
    --engine) engine=${2:-}; shift 2 ;;
    --corpora) corpora=${2:-}; shift 2 ;;
    --build-dir) lfdir=${2:-}; shift 2 ;;
    --plant) plant=${2:-}; engine=libfuzzer; only=fuzz_race; shift 2 ;;
    --smoke) smoke=1; shift ;;
    --no-setup) do_setup=0; shift ;;
    --seconds-each) each=${2:-}; shift 2 ;;
    -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "ci/fuzz.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
done
case "$minutes" in '' | *[!0-9.]* | .*) echo "ci/fuzz.sh: --minutes wants a number" >&2; exit 2 ;; esac
case "$each" in *[!0-9]*) echo "ci/fuzz.sh: --seconds-each wants an integer" >&2; exit 2 ;; esac
case "$engine" in libfuzzer | afl | both) ;; *) echo "ci/fuzz.sh: --engine is libfuzzer, afl or both" >&2; exit 2 ;; esac

out=build/fuzz-out
mkdir -p "$out"
if [ $do_setup = 1 ]; then
    # shellcheck source=ci/setup.sh
    . ci/setup.sh
    vdi_setup "$out" || exit 2
fi

# ---- build ----------------------------------------------------------------------------------
build() { # preset [target]
    cmake --preset "$1" >"$out/configure-$1.log" 2>&1 && cmake --build "build/$1" -j2 \
        --target "${2:-fuzz_targets}" >"$out/build-$1.log" 2>&1 ||
        { tail -n 30 "$out/build-$1.log" "$out/configure-$1.log" >&2; return 1; }
}
if [ -z "$lfdir" ]; then
    build fuzz || exit 2
    lfdir=build/fuzz
fi
# The libFuzzer binary of a target: fuzz/<target>, or the planted fuzz_race.
lfbin() { if [ -n "$plant" ]; then echo "$lfdir/tests/meta/fuzz_race_$plant"; else echo "$lfdir/fuzz/$1"; fi; }
# vdichaos (plain, or the planted one) for fuzz_race's schedules.
vdichaos_bin() { if [ -n "$plant" ]; then echo "$lfdir/tests/meta/vdichaos_$plant"; else echo "$lfdir/chaos/vdichaos"; fi; }
cmake --build "$lfdir" --target "$(basename "$(vdichaos_bin)")" >>"$out/build-fuzz.log" 2>&1 || true
if [ -n "$plant" ]; then
    build fuzz fuzz_plants || exit 2
    cmake --build "$lfdir" --target "vdichaos_$plant" >>"$out/build-fuzz.log" 2>&1 || exit 2
    [ -x "$(lfbin fuzz_race)" ] || { echo "ci/fuzz.sh: no seeded bug '$plant' (tests/meta)" >&2; exit 2; }
fi
afl=0
if [ "$engine" != libfuzzer ]; then
    if command -v afl-fuzz >/dev/null 2>&1 && command -v afl-clang-fast >/dev/null 2>&1; then
        build afl && afl=1 || echo "ci/fuzz.sh: the AFL++ build failed; AFL++ runs skipped" >&2
    else
        echo "ci/fuzz.sh: AFL++ is not installed; AFL++ runs skipped"
    fi
fi
engines=""
[ "$engine" != afl ] && engines="libfuzzer"
[ $afl = 1 ] && engines="$engines afl"
[ -n "$engines" ] || { echo "ci/fuzz.sh: no engine to run" >&2; exit 2; }

list=$(find "$lfdir/fuzz" -maxdepth 1 -type f -name 'fuzz_*' ! -name '*_replay' ! -name '*_afl' \
    -perm -u+x -printf '%f\n' 2>/dev/null | sort | { if [ -n "$only" ]; then grep -x "$only"; else cat; fi; })
[ -n "$list" ] || { echo "ci/fuzz.sh: no target matches '${only:-*}'" >&2; exit 2; }
nt=$(echo "$list" | wc -l)
ne=$(echo $engines | wc -w)
# The budget of one engine on one target: seconds, or (a smoke run) a fixed number of runs
# from a fixed seed, which makes the run the same on every machine.
smoke_runs=""
if [ -n "$each" ]; then
    per=$each
elif [ $smoke = 1 ]; then
    per=120 # only a cap
    smoke_runs=3000
else
    per=$(awk -v m="$minutes" -v n=$((nt * ne)) 'BEGIN { s = int(m * 60 / n); print (s < 5 ? 5 : s) }')
fi

# ---- crashes --------------------------------------------------------------------------------
new_crashes=0
declare -A seen_sig
# store_crash TARGET FILE: minimize, sign, store under $corpora/TARGET/crash/<signature>
# unless that signature is already stored. Prints one line; returns 0 when it was new.
store_crash() {
    local t=$1 file=$2 bin work=$out/$1 min sig
    bin=$(lfbin "$t")
    min="$work/min-$(basename "$file")"
    case "$(basename "$file")" in
    timeout-* | *hang*) cp "$file" "$min" ;; # a hang does not minimize in reasonable time
    *)
        "$bin" -minimize_crash=1 -artifact_prefix="$work/min-" \
            -max_total_time=$((per < 60 ? per : 60)) \
            -exact_artifact_path="$min" "$file" >"$work/minimize.log" 2>&1 || true
        [ -s "$min" ] || cp "$file" "$min" ;;
    esac
    "$bin" -runs=1 -timeout=30 -artifact_prefix="$work/again-" "$min" >"$work/signature.log" 2>&1
    sig=$(python3 ci/crash_signature.py "$work/signature.log")
    if [ -n "${seen_sig[$t/$sig]:-}" ] || [ -f "$corpora/$t/crash/$sig" ]; then
        echo "$t: crash $(basename "$file") is known as $sig"
        return 1
    fi
    seen_sig[$t/$sig]=1
    if [ $smoke = 1 ]; then
        echo "$t: NEW crash $sig found by the smoke run ($file)"
    else
        cp "$min" "$corpora/$t/crash/$sig"
        echo "$t: NEW crash stored as $corpora/$t/crash/$sig ($(wc -c <"$min") bytes after minimization)"
        # A schedule is minimized too: the same finding with the fewest preemptions, kept
        # beside it as a readable replay file.
        if [ "$t" = fuzz_race ] && [ -x "$(vdichaos_bin)" ] &&
            "$(vdichaos_bin)" shrink "$min" --out "$corpora/$t/crash/$sig.replay" \
                --budget 2000 >"$work/shrink.log" 2>&1; [ -f "$corpora/$t/crash/$sig.replay" ]; then
            rm -f "$corpora/$t/crash/$sig.replay.fuzz_race"
            echo "$t: its schedule shrunk: $(sed -n 's/^shrunk in //p' "$work/shrink.log" | cut -d, -f1)" \
                "-> $corpora/$t/crash/$sig.replay"
        fi
    fi
    return 0
}

# ---- engines --------------------------------------------------------------------------------
row() { printf '%-13s %-9s %10s %8s %9s %5s %7s\n' "$@" >>"$out/table.txt"; }
: >"$out/table.txt"
row target engine runs runs/s coverage new crashes

run_libfuzzer() { # target
    local t=$1 bin work=$out/$1 seed=$corpora/$1/seed runs rate cov before after found=0 a
    bin=$(lfbin "$t")
    local dict=()
    [ -f "fuzz/$t.dict" ] && dict=(-dict="fuzz/$t.dict")
    before=$(ls "$work/lf-corpus" | wc -l)
    local budget=(-max_total_time="$per")
    [ -n "$smoke_runs" ] && budget+=(-runs="$smoke_runs" -seed=1)
    "$bin" "$work/lf-corpus" "$seed" "${dict[@]}" "${budget[@]}" -timeout=30 \
        -artifact_prefix="$work/lf-artifacts/" -print_final_stats=1 >"$work/libfuzzer.log" 2>&1
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$work/libfuzzer.log" | grep -oE '[0-9]+$' || echo 0)
    rate=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$work/libfuzzer.log" | grep -oE '[0-9]+$' || echo 0)
    cov=$(grep -oE 'cov: [0-9]+' "$work/libfuzzer.log" | tail -n 1 | grep -oE '[0-9]+' || echo 0)
    after=$(ls "$work/lf-corpus" | wc -l)
    for a in "$work"/lf-artifacts/*; do
        [ -f "$a" ] || continue
        store_crash "$t" "$a" && found=$((found + 1))
    done
    new_crashes=$((new_crashes + found))
    row "$t" libfuzzer "${runs:-0}" "${rate:-0}" "${cov:-0}edges" $((after - before)) "$found"
}

run_afl() { # target
    local t=$1 bin=build/afl/fuzz/$1_afl work=$out/$1 seed=$corpora/$1/seed st runs rate cov newq found=0 a
    [ -x "$bin" ] || { row "$t" afl - - - - -; return 0; }
    local dict=()
    [ -f "fuzz/$t.dict" ] && dict=(-x "fuzz/$t.dict")
    rm -rf "$work/afl-out" "$work/afl-in"
    mkdir -p "$work/afl-in"
    find "$seed" -maxdepth 1 -type f ! -name '*.md' -exec cp {} "$work/afl-in/" \;
    [ -n "$(ls "$work/afl-in")" ] || printf '\0' >"$work/afl-in/empty"
    AFL_SKIP_CPUFREQ=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
        AFL_SKIP_CRASHES=1 AFL_NO_STARTUP_CALIBRATION=1 \
        timeout $((per + 60)) afl-fuzz -i "$work/afl-in" -o "$work/afl-out" \
        $([ -n "$smoke_runs" ] && echo "-E $smoke_runs -s 1" || echo "-V $per") -m none \
        -t 30000 "${dict[@]}" -- "$bin" >"$work/afl.log" 2>&1 </dev/null
    st=$work/afl-out/default/fuzzer_stats
    if [ ! -f "$st" ]; then
        echo "$t: AFL++ did not start (see $work/afl.log)"
        row "$t" afl 0 0 - 0 0
        return 0
    fi
    stat() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$st"; }
    runs=$(stat execs_done)
    rate=$(stat execs_per_sec)
    cov=$(stat bitmap_cvg)
    newq=$(find "$work/afl-out/default/queue" -maxdepth 1 -type f -name 'id:*' ! -name '*orig:*' | wc -l)
    # AFL's new inputs join the libFuzzer corpus, so the merge below sees both engines' finds.
    find "$work/afl-out/default/queue" -maxdepth 1 -type f -name 'id:*' ! -name '*orig:*' \
        -exec cp {} "$work/lf-corpus/" \; 2>/dev/null
    for a in "$work"/afl-out/default/crashes/id:* "$work"/afl-out/default/hangs/id:*; do
        [ -f "$a" ] || continue
        case "$a" in */hangs/*) cp "$a" "$work/afl-hang-$(basename "$a" | tr ':,' '__')"; a="$work/afl-hang-$(basename "$a" | tr ':,' '__')" ;; esac
        store_crash "$t" "$a" && found=$((found + 1))
    done
    new_crashes=$((new_crashes + found))
    row "$t" afl "${runs:-0}" "${rate%.*}" "${cov:-0}" "$newq" "$found"
}

for t in $list; do
    work=$out/$t
    rm -rf "$work"
    mkdir -p "$corpora/$t/seed" "$corpora/$t/crash" "$work/lf-corpus" "$work/lf-artifacts"
    # Every stored input first: a stored crash that fails again is a regression.
    if ! "$(lfbin "$t")" -runs=0 -artifact_prefix="$work/replay-" "$corpora/$t/seed" "$corpora/$t/crash" >"$work/replay.log" 2>&1; then
        echo "$t: a stored input fails on replay (see $work/replay.log)"
        new_crashes=$((new_crashes + 1))
    fi
    for e in $engines; do
        "run_$e" "$t"
    done
    # Set cover: only the inputs that add coverage join the seeds; a smoke run adds none.
    if [ $smoke = 0 ]; then
        before=$(ls "$corpora/$t/seed" | wc -l)
        "$(lfbin "$t")" -merge=1 -artifact_prefix="$work/merge-" "$corpora/$t/seed" "$work/lf-corpus" >"$work/merge.log" 2>&1
        echo "$t: $(($(ls "$corpora/$t/seed" | wc -l) - before)) new seed(s) merged into $corpora/$t/seed"
    fi
done
cat "$out/table.txt"
if [ $new_crashes -gt 0 ]; then
    echo "$new_crashes new crash(es): see $corpora/*/crash/ and $out/"
    exit 1
fi
echo "no new crash"
exit 0
