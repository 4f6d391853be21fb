#!/usr/bin/env bash
# Fuzzing judged by ThreadSanitizer, which ClusterFuzzLite has no mode for. Two steps:
#  1. ci/fuzz.sh grows a working corpus (libFuzzer + ASan, --seconds-each per target) in
#     --corpora DIR (default build/fuzz-tsan-corpus: DIR/<t>/seed a copy of the tracked
#     seeds, DIR/work/<t> the inputs found, DIR/<t>/crash any crash; never written back
#     into the tree);
#  2. every input of that corpus (seeds, inputs found, crashes) replays through the target's
#     TSan build (preset tsan, <target>_replay), where any data race fails the run.
# Why not libFuzzer under TSan directly: clang <= 14 instruments libFuzzer's inline edge
# counters, so every edge two threads (or two of the engine's fibers) run is reported as
# a race; the replay drivers have no such counters, and the fiber targets replay exactly.
# Exit 0 clean, 1 a crash or a race, 2 usage or build error.
# Usage: ci/fuzz_tsan.sh [--seconds-each S] [--target NAME] [--corpora DIR] [--no-setup]
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here" || exit 2

each=60
only=""
corpora=build/fuzz-tsan-corpus
setup=()
while [ $# -gt 0 ]; do
    case "$1" in
    --seconds-each) each=${2:-}; shift 2 ;;
    --target) only=${2:-}; shift 2 ;;
    --corpora) corpora=${2:-}; shift 2 ;;
    --no-setup) setup=(--no-setup); shift ;;
    -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "ci/fuzz_tsan.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
done
case "$each" in '' | *[!0-9]*) echo "ci/fuzz_tsan.sh: --seconds-each wants an integer" >&2; exit 2 ;; esac
[ -n "$corpora" ] || { echo "ci/fuzz_tsan.sh: --corpora wants a folder" >&2; exit 2; }
case "$(cd "$(dirname "$corpora")" 2>/dev/null && pwd)/$(basename "$corpora")" in
"$here/corpora" | "$here/corpora/"*) echo "ci/fuzz_tsan.sh: --corpora must not be the tracked corpora/" >&2; exit 2 ;;
esac

# The targets: fuzz/CMakeLists.txt's FUZZ_TARGETS (as .clusterfuzzlite/build.sh reads them).
list=$(tr '\n' ' ' <fuzz/CMakeLists.txt | grep -oE 'set\(FUZZ_TARGETS[^)]*\)' | head -n 1 |
    tr '()' '  ' | tr -s ' \t' '\n' | grep -E '^fuzz_[A-Za-z0-9_]+$' || true)
if [ -n "$only" ]; then
    echo "$list" | grep -qx "$only" || { echo "ci/fuzz_tsan.sh: no target '$only'" >&2; exit 2; }
    list=$only
fi
mkdir -p "$corpora" build/fuzz-tsan-out || exit 2
for t in $list; do
    mkdir -p "$corpora/$t/seed" "$corpora/$t/crash"
    [ -d "corpora/$t/seed" ] && cp -n corpora/"$t"/seed/* "$corpora/$t/seed/" 2>/dev/null
done

status=0
echo "== fuzzing (libFuzzer + ASan), ${each}s per target, working corpus $corpora"
for t in $list; do
    ci/fuzz.sh "${setup[@]}" --engine libfuzzer --target "$t" --seconds-each "$each" \
        --corpora "$corpora" --work "$corpora/work" || { rc=$?; [ $rc = 2 ] && exit 2; status=1; }
    setup=(--no-setup)
done

echo "== the corpus under TSan (preset tsan, replay drivers)"
log=build/fuzz-tsan-out/build-tsan.log
targets=()
for t in $list; do targets+=("${t}_replay"); done
if ! { cmake --preset tsan && cmake --build build/tsan -j2 --target "${targets[@]}"; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    exit 2
fi
# TSan (clang 14) cannot cope with more than 30 bits of mmap randomness: no ASLR for it.
prefix=(setarch "$(uname -m)" -R)
"${prefix[@]}" true 2>/dev/null || prefix=()
printf '%-14s %8s %s\n' target inputs result >build/fuzz-tsan-out/table.txt
for t in $list; do
    mkdir -p "$corpora/work/$t"
    n=$(find "$corpora/$t/seed" "$corpora/$t/crash" "$corpora/work/$t" -maxdepth 1 -type f | wc -l)
    out=build/fuzz-tsan-out/$t.log
    if TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}" \
        "${prefix[@]}" "build/tsan/fuzz/${t}_replay" "$corpora/$t/seed" "$corpora/$t/crash" "$corpora/work/$t" >"$out" 2>&1; then
        r=clean
    else
        r="FAILED (see $out)"
        grep -m1 -A12 'WARNING: ThreadSanitizer' "$out" || tail -n 20 "$out"
        status=1
    fi
    printf '%-14s %8s %s\n' "$t" "$n" "$r" >>build/fuzz-tsan-out/table.txt
done
cat build/fuzz-tsan-out/table.txt
exit $status
