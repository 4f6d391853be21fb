#!/usr/bin/env bash
# The main job (README): builds every fuzz target for libFuzzer (preset fuzz) and, where
# AFL++ is installed, for AFL++ (preset afl); replays the stored corpora; fuzzes each
# target for its share of the budget with each engine, from the tracked seeds and the
# working corpus (build/fuzz-corpus/<target>, kept between runs, minimized by libFuzzer's
# set-cover merge after each); minimizes each crash, names it by its signature
# (ci/crash_signature.py: oracle kind, protocol state, top frames outside the harness) and
# stores one file per new signature under corpora/<target>/crash/; prints a progress line
# per target every few seconds and a table at the end; exits 1 on a new crash (0 clean, 2
# usage or build error). The tracked seeds change only with --merge.
#
# Usage: ci/fuzz.sh [--minutes M] [--target NAME] [--engine libfuzzer|afl|both] [--jobs N]
#                   [--corpora DIR] [--work DIR] [--merge] [--build-dir DIR] [--plant BUG]
#                   [--smoke] [--no-setup]
#   --minutes M    fuzzing budget over all targets and engines, builds excluded (default 3)
#   --jobs N       N processes per target: N libFuzzer processes on one corpus (each restarted
#                  after a crash), AFL++ one -M and N-1 -S
#   --corpora DIR  where the seed/ and crash/ folders live (default corpora)
#   --work DIR     the working corpus, DIR/<target>/ (default build/fuzz-corpus; with
#                  --corpora D other than corpora, D/work)
#   --merge        also merge the new coverage into DIR/<target>/seed/ (set cover)
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
workdir=""
merge=0
jobs=1
while [ $# -gt 0 ]; do
    case "$1" in
    --minutes) minutes=${2:-}; shift 2 ;;
    --target) only=${2:-}; shift 2 ;;
    --engine) engine=${2:-}; shift 2 ;;
    --corpora) corpora=${2:-}; shift 2 ;;
    --work) workdir=${2:-}; [ -n "$workdir" ] || { echo "ci/fuzz.sh: --work wants a folder" >&2; exit 2; }; shift 2 ;;
    --merge) merge=1; shift ;;
    --jobs) jobs=${2:-}; shift 2 ;;
    --build-dir) lfdir=${2:-}; shift 2 ;;
    --plant) plant=${2:-}; engine=libfuzzer; only=fuzz_race; shift 2 ;;
    --smoke) smoke=1; shift ;;
    --no-setup) do_setup=0; shift ;;
    --seconds-each) each=${2:-}; shift 2 ;;
    -h | --help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "ci/fuzz.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
done
case "$minutes" in '' | *[!0-9.]* | .*) echo "ci/fuzz.sh: --minutes wants a number" >&2; exit 2 ;; esac
case "$each" in *[!0-9]*) echo "ci/fuzz.sh: --seconds-each wants an integer" >&2; exit 2 ;; esac
case "$engine" in libfuzzer | afl | both) ;; *) echo "ci/fuzz.sh: --engine is libfuzzer, afl or both" >&2; exit 2 ;; esac
case "$jobs" in '' | *[!0-9]* | 0) echo "ci/fuzz.sh: --jobs wants a whole number >= 1" >&2; exit 2 ;; esac
if [ -z "$workdir" ]; then
    # A scratch --corpora (a planted bug, a TSan session) keeps its working corpus apart.
    if [ "$corpora" = corpora ]; then workdir=build/fuzz-corpus; else workdir=$corpora/work; fi
fi

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
build_begun=$SECONDS
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
build_s=$((SECONDS - build_begun))

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
# --minutes is a deadline for everything after the build (replays, fuzzing, triage,
# merges): each engine run gets an equal share of what is left when it starts.
budget_s=$(awk -v m="$minutes" 'BEGIN { print int(m * 60) }')
start_s=$SECONDS
pairs_left=$((nt * ne))
share() { # the seconds of the next engine run
    if [ -n "$each" ] || [ $smoke = 1 ]; then echo "$per"; return; fi
    local left=$((budget_s - (SECONDS - start_s))) s
    s=$((left / (pairs_left > 0 ? pairs_left : 1)))
    # Minimizing and merging take a few seconds of each share.
    s=$((s > 8 ? s - 3 : 5))
    echo "$s"
}

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

# ---- progress -------------------------------------------------------------------------------
# A line per running engine every $tick seconds: on a terminal one line rewritten in
# place, in a log one line each time (no carriage returns).
tick=10
[ -t 1 ] && tick=2
progress_start() { # target engine seconds statfn...
    local t=$1 e=$2 secs=$3
    shift 3
    (
        local begun=$SECONDS line
        while sleep "$tick"; do
            line=$(printf '%-13s %-9s %4ss/%ss %s' "$t" "$e" $((SECONDS - begun)) "$secs" "$("$@")")
            if [ -t 1 ]; then printf '\r%s\033[K' "$line"; else echo "$line"; fi
        done
    ) &
    ticker=$!
}
progress_stop() {
    [ -n "${ticker:-}" ] && kill "$ticker" 2>/dev/null && wait "$ticker" 2>/dev/null
    ticker=""
    [ -t 1 ] && printf '\r\033[K'
    return 0
}
trap progress_stop EXIT
lf_status() { # the last status line libFuzzer wrote: executions, coverage, exec/s
    # "#N KIND cov: C ... exec/s: R", or in fork mode "#N: cov: C ... exec/s R".
    grep -aE '^#[0-9]+' "$1" 2>/dev/null | grep -a 'exec/s' | tail -n 1 |
        sed -E 's/^#([0-9]+):?[[:space:]]+([A-Z_]+[[:space:]]+)?/execs \1 /' |
        grep -oE '^execs [0-9]+|cov: [0-9]+|exec/s:? [0-9]+' | tr '\n' ' ' | cut -c1-60
}
afl_status() { # execs and coverage summed over the instances' fuzzer_stats
    cat "$1"/*/fuzzer_stats 2>/dev/null | awk -F' *: *' '$1 == "execs_done" { e += $2 }
        $1 == "bitmap_cvg" { c = $2 } END { if (e) printf "execs %d bitmap %s", e, c; else print "starting" }'
}

# ---- engines --------------------------------------------------------------------------------
row() { printf '%-13s %-9s %10s %8s %9s %5s %7s\n' "$@" >>"$out/table.txt"; }
: >"$out/table.txt"
row target engine runs runs/s coverage new crashes

# --jobs N (N > 1): N plain libFuzzer processes side by side on the one working corpus,
# which each re-reads every second (-reload=1, the default), so a find of one is the
# others' too. Measured on fuzz_race (issue 12): one process 483 exec/s, -fork=1 264,
# -fork=2 361; fork mode restarts a process per short job and merges after each.
# lf_worker I END: worker I's processes, one after another until SECONDS reaches END. One
# that stops on a crash is followed by the next, so a crash idles no core; a process that
# stops for another reason before END (it would not start, say) ends the worker. Each
# process has its own log, libfuzzer-I-K.log, and libFuzzer's own seed (drawn from the
# clock and the pid, so no two processes and no two sessions share one; the log's "Seed:"
# line gives it back, for -seed=).
lf_worker() {
    local i=$1 end=$2 k=0 left log
    while left=$((end - SECONDS)) && [ "$left" -gt 0 ]; do
        log=$work/libfuzzer-$i-$k.log
        # -max_total_time does not stop a process loading the corpus or stuck in one input:
        # timeout does, a few seconds on (--foreground: a Ctrl-C still reaches libFuzzer).
        timeout --foreground -s INT -k 2 $((left + 3)) "$bin" "${over[@]}" -max_total_time="$left" \
            "${rest[@]}" >"$log" 2>&1
        k=$((k + 1))
        grep -q 'Test unit written to' "$log" || break
    done
}
lf_set_aside() { # LOG...: moves to lf-dups/ each crash file whose signature an earlier LOG has
    # A shallow bug is found again by every process after the first: one file a signature
    # (read from the crashing process's own report, one python for all) goes on to be
    # minimized and signed again by store_crash. Two processes may write the same file (the
    # same input): it is judged once, by the first log that names it.
    python3 -c 'import re, sys
sys.path.insert(0, "ci")
from crash_signature import signature
seen, judged = set(), set()
for p in sys.argv[1:]:
    log = open(p, errors="replace").read()
    sig, files = signature(log)[0], re.findall(r"Test unit written to (\S+)", log)
    if files and files[-1] not in judged:
        judged.add(files[-1])
        if sig in seen:
            print(files[-1])
    seen.add(sig)' "$@" | while read -r a; do mv "$a" "$work/lf-dups/"; done
}
lf_tally() { # LOG...: "RUNS COV": runs summed over the processes' logs (a log's final stats,
    # or its last status line when it has none: still running, or killed), the best coverage
    awk 'function flush() { runs += fin >= 0 ? fin : last; fin = -1; last = 0 }
        function num(re, s) { # the digits of what matches re, or -1
            if (!match($0, re)) return -1
            s = substr($0, RSTART, RLENGTH); gsub(/[^0-9]/, "", s); return s + 0 }
        BEGIN { fin = -1 }
        FNR == 1 { flush() }
        /stat::number_of_executed_units:/ { fin = num("[0-9]+[[:space:]]*$") }
        /^#[0-9]+/ && /exec\/s/ { last = num("^#[0-9]+") }
        { c = num("cov: [0-9]+"); if (c > cov) cov = c }
        END { flush(); printf "%d %d\n", runs, cov }' "$@"
}
lf_jobs_status() { # WORK BEGUN: the workers' executions and coverage so far, and their rate
    lf_tally "$1"/libfuzzer-*-*.log 2>/dev/null | awk -v s=$((SECONDS - $2)) \
        '{ printf "execs %d cov: %d exec/s %d", $1, $2, (s > 0 ? $1 / s : 0) }'
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }

run_libfuzzer() { # target
    local t=$1 bin work=$out/$1 seed=$corpora/$1/seed runs rate cov before after found=0 a secs
    bin=$(lfbin "$t")
    secs=$(share)
    pairs_left=$((pairs_left - 1))
    local dict=()
    [ -f "fuzz/$t.dict" ] && dict=(-dict="fuzz/$t.dict")
    before=$(ls "$work/lf-corpus" | wc -l)
    # Every process's arguments but its budget: what it reads, and what it does on a find.
    local over=("$work/lf-corpus" "$seed" "${dict[@]}")
    local rest=(-timeout=30 -artifact_prefix="$work/lf-artifacts/" -print_final_stats=1)
    if [ "$jobs" -gt 1 ] && [ -z "$smoke_runs" ]; then
        local i pids=() begun_ms ran_ms end=$((SECONDS + secs)) logs crashed
        progress_start "$t" libfuzzer "$secs" lf_jobs_status "$work" "$SECONDS"
        begun_ms=$(now_ms)
        for ((i = 0; i < jobs; i++)); do
            lf_worker "$i" "$end" &
            pids+=($!)
        done
        wait "${pids[@]}"
        ran_ms=$(($(now_ms) - begun_ms))
        progress_stop
        read -r runs cov < <(lf_tally "$work"/libfuzzer-*-*.log)
        # Summed over the workers: all their executions over the time they all ran.
        rate=$((runs * 1000 / (ran_ms + 1)))
        mkdir -p "$work/lf-dups"
        mapfile -t crashed < <(grep -l 'Test unit written to' "$work"/libfuzzer-*-*.log)
        [ ${#crashed[@]} -lt 2 ] || lf_set_aside "${crashed[@]}"
        logs=$(ls "$work"/libfuzzer-*-*.log | wc -l)
        echo "$t: $jobs libFuzzer workers ran $((ran_ms / 1000)).$((ran_ms % 1000 / 100)) s of $secs" \
            "in $logs processes ($((logs - jobs)) after a crash); ${#crashed[@]} crashes," \
            "$(ls "$work/lf-dups" | wc -l) of a signature met already (set aside in $work/lf-dups/)"
    else
        local budget=(-max_total_time="$secs")
        [ -n "$smoke_runs" ] && budget+=(-runs="$smoke_runs" -seed=1)
        progress_start "$t" libfuzzer "$secs" lf_status "$work/libfuzzer.log"
        "$bin" "${over[@]}" "${budget[@]}" "${rest[@]}" >"$work/libfuzzer.log" 2>&1
        progress_stop
        runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$work/libfuzzer.log" | grep -oE '[0-9]+$' | tail -n 1)
        rate=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$work/libfuzzer.log" | grep -oE '[0-9]+$' | tail -n 1)
        if [ -z "$runs" ]; then # no final stats (the process was killed): the last status line
            runs=$(grep -aoE '^#[0-9]+' "$work/libfuzzer.log" | tail -n 1 | tr -d '#')
            rate=$(grep -aoE 'exec/s:? [0-9]+' "$work/libfuzzer.log" | tail -n 1 | grep -oE '[0-9]+')
        fi
        cov=$(grep -oE 'cov: [0-9]+' "$work/libfuzzer.log" | tail -n 1 | grep -oE '[0-9]+' || echo 0)
    fi
    after=$(ls "$work/lf-corpus" | wc -l)
    for a in "$work"/lf-artifacts/*; do
        [ -f "$a" ] || continue
        store_crash "$t" "$a" && found=$((found + 1))
    done
    new_crashes=$((new_crashes + found))
    row "$t" libfuzzer "${runs:-0}" "${rate:-0}" "${cov:-0}edges" $((after - before)) "$found"
}

run_afl() { # target
    local t=$1 bin=build/afl/fuzz/$1_afl work=$out/$1 seed=$corpora/$1/seed st runs rate cov newq found=0 a secs
    secs=$(share)
    pairs_left=$((pairs_left - 1))
    [ -x "$bin" ] || { row "$t" afl - - - - -; return 0; }
    local dict=()
    [ -f "fuzz/$t.dict" ] && dict=(-x "fuzz/$t.dict")
    rm -rf "$work/afl-out" "$work/afl-in"
    mkdir -p "$work/afl-in"
    # The seeds and the working corpus (AFL's -i takes one folder).
    local from=("$seed")
    [ $smoke = 1 ] || from+=("$workdir/$t")
    find "${from[@]}" -maxdepth 1 -type f ! -name '*.md' ! -name '*.py' \
        -exec cp {} "$work/afl-in/" \; 2>/dev/null
    [ -n "$(ls "$work/afl-in")" ] || printf '\0' >"$work/afl-in/empty"
    local limit=(-V "$secs")
    [ -n "$smoke_runs" ] && limit=(-E "$smoke_runs" -s 1)
    # --jobs N: one main instance (-M) and N-1 secondaries (-S) sharing the output folder.
    local names=(default) pids=() i
    [ "$jobs" -gt 1 ] && [ -z "$smoke_runs" ] && { names=(main); for ((i = 1; i < jobs; i++)); do names+=("s$i"); done; }
    progress_start "$t" afl "$secs" afl_status "$work/afl-out"
    for i in "${!names[@]}"; do
        local role=()
        [ "${names[$i]}" = default ] || { [ "$i" = 0 ] && role=(-M main) || role=(-S "${names[$i]}"); }
        AFL_SKIP_CPUFREQ=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
            AFL_SKIP_CRASHES=1 AFL_NO_STARTUP_CALIBRATION=1 \
            timeout $((secs + 60)) afl-fuzz -i "$work/afl-in" -o "$work/afl-out" "${role[@]}" \
            "${limit[@]}" -m none -t 30000 "${dict[@]}" -- "$bin" >"$work/afl-${names[$i]}.log" 2>&1 </dev/null &
        pids+=($!)
    done
    wait "${pids[@]}"
    progress_stop
    if ! ls "$work"/afl-out/*/fuzzer_stats >/dev/null 2>&1; then
        echo "$t: AFL++ did not start (see $work/afl-*.log)"
        row "$t" afl 0 0 - 0 0
        return 0
    fi
    # Summed over the instances; coverage is the main instance's (its map holds them all).
    sum() { cat "$work"/afl-out/*/fuzzer_stats | awk -F' *: *' -v k="$1" '$1 == k { s += $2 } END { printf "%d", s }'; }
    st=$work/afl-out/${names[0]}/fuzzer_stats
    runs=$(sum execs_done)
    rate=$(sum execs_per_sec)
    cov=$(awk -F' *: *' '$1 == "bitmap_cvg" { print $2 }' "$st")
    newq=$(find "$work"/afl-out/*/queue -maxdepth 1 -type f -name 'id:*' ! -name '*orig:*' | wc -l)
    # AFL's new inputs join the libFuzzer corpus, so the merge below sees both engines' finds.
    local q k=0
    for q in "$work"/afl-out/*/queue/id:*; do
        case "$q" in *orig:*) continue ;; esac
        [ -f "$q" ] && cp "$q" "$work/lf-corpus/afl-$((k += 1))"
    done
    for a in "$work"/afl-out/*/crashes/id:* "$work"/afl-out/*/hangs/id:*; do
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
    mkdir -p "$corpora/$t/seed" "$corpora/$t/crash" "$work/lf-corpus" "$work/lf-artifacts" "$workdir/$t"
    # The working corpus is where libFuzzer writes: a copy of it, merged back after (not in
    # a smoke run, which starts from the tracked seeds alone to be the same everywhere).
    [ $smoke = 1 ] || find "$workdir/$t" -maxdepth 1 -type f -exec cp {} "$work/lf-corpus/" \;
    # Every stored input first: a stored crash that fails again is a regression.
    if ! "$(lfbin "$t")" -runs=0 -artifact_prefix="$work/replay-" "$corpora/$t/seed" "$corpora/$t/crash" >"$work/replay.log" 2>&1; then
        echo "$t: a stored input fails on replay (see $work/replay.log)"
        new_crashes=$((new_crashes + 1))
    fi
    for e in $engines; do
        "run_$e" "$t"
    done
    # Set cover: the working corpus becomes the smallest set of its and the new inputs that
    # keeps their coverage beyond the seeds'; with --merge the seeds take the new coverage
    # too. A smoke run changes neither.
    if [ $smoke = 0 ]; then
        rm -rf "$work/wc-new" && mkdir -p "$work/wc-new"
        find "$corpora/$t/seed" -maxdepth 1 -type f ! -name '*.md' ! -name '*.py' \
            -exec sh -c 'for f; do cp "$f" "$0/seed-${f##*/}"; done' "$work/wc-new" {} +
        if "$(lfbin "$t")" -merge=1 -artifact_prefix="$work/merge-" "$work/wc-new" "$work/lf-corpus" \
            >"$work/merge.log" 2>&1; then
            rm -f "$work"/wc-new/seed-*
            rm -rf "${workdir:?}/$t" && mv "$work/wc-new" "$workdir/$t"
        fi
        echo "$t: working corpus $workdir/$t: $(ls "$workdir/$t" | wc -l) inputs"
        if [ $merge = 1 ]; then
            before=$(ls "$corpora/$t/seed" | wc -l)
            "$(lfbin "$t")" -merge=1 -artifact_prefix="$work/merge-" "$corpora/$t/seed" "$workdir/$t" >>"$work/merge.log" 2>&1
            echo "$t: $(($(ls "$corpora/$t/seed" | wc -l) - before)) new seed(s) merged into $corpora/$t/seed"
        fi
    fi
done
cat "$out/table.txt"
echo "fuzzing, triage and merges took $((SECONDS - start_s)) s (budget ${budget_s} s; builds before: ${build_s} s)"
if [ $new_crashes -gt 0 ]; then
    echo "$new_crashes new crash(es): see $corpora/*/crash/ and $out/"
    exit 1
fi
echo "no new crash"
exit 0
