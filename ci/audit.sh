#!/usr/bin/env bash
# The hardening audit of the reference in one command: builds the asan and fuzz presets,
# runs the tests (JUnit), a libFuzzer session of every target (ci/fuzz.sh), the schedule
# exploration of every scenario (PCT depth 3, DFS with one preemption), the fault sweep,
# coverage of ref/ (ci/coverage.sh, where present), and collects the stored and pending
# findings; then ci/audit_report.py writes DIR/report.html (self-contained), report.md,
# results.sarif (SARIF 2.1.0) and junit.xml. Exit status: 0 when nothing failed and no
# finding is open, 1 otherwise, 2 usage or build error.
#
# Usage: ci/audit.sh [--minutes M] [--out DIR] [--pct-runs N] [--dfs-runs N] [--no-fuzz]
#                    [--no-coverage] [--no-tests] [--build-dir DIR]
#   --minutes M    the fuzzing budget over all targets (default 10; builds excluded)
#   --out DIR      where the report goes (default build/audit)
#   --pct-runs N   PCT runs per scenario (default 2000); --dfs-runs N caps DFS (20000)
#   --build-dir D  an asan build already made (default: build/asan, configured and built)
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here" || exit 2

minutes=10
out=build/audit
pct_runs=2000
dfs_runs=20000
fuzz=1
coverage=1
tests=1
build=""
usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
    --minutes) minutes=${2:-}; shift ;;
    --out) out=${2:-}; shift ;;
    --pct-runs) pct_runs=${2:-}; shift ;;
    --dfs-runs) dfs_runs=${2:-}; shift ;;
    --no-fuzz) fuzz=0 ;;
    --no-coverage) coverage=0 ;;
    --no-tests) tests=0 ;;
    --build-dir) build=${2:-}; shift ;;
    -h | --help) usage ;;
    *) echo "audit: unknown option $1" >&2; usage ;;
    esac
    shift
done
for n in "$minutes" "$pct_runs" "$dfs_runs"; do
    case "$n" in '' | *[!0-9]*) echo "audit: '$n' is not a whole number" >&2; exit 2 ;; esac
done
[ -n "$out" ] || usage
mkdir -p "$out" || exit 2
out=$(cd "$out" && pwd)
raw=$out/raw
rm -rf "$raw" && mkdir -p "$raw/scenarios" || exit 2
start=$(date +%s)
say() { printf '== audit: %s (%ds)\n' "$*" $(($(date +%s) - start)); }

# ---- what is audited -------------------------------------------------------------------------
{
    echo "commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)"
    echo "dirty=$(git status --porcelain 2>/dev/null | grep -qv '^??' && echo yes || echo no)"
    echo "version=$(sed -n 's/^project(vdichaos VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)"
    echo "cc=$(clang --version 2>/dev/null | head -n 1)"
    echo "gcc=$(gcc --version 2>/dev/null | head -n 1)"
    echo "cmake=$(cmake --version 2>/dev/null | head -n 1)"
    echo "machine=$(uname -srm), $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    echo "os=$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
    echo "sanitizers=ASan+UBSan (tests, fuzzing)"
    echo "budget_minutes=$minutes"
    echo "pct_runs=$pct_runs"
    echo "dfs_runs=$dfs_runs"
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$raw/meta.txt"

if [ -z "$build" ]; then
    say "build (asan)"
    build=build/asan
    if ! { cmake --preset asan >"$raw/build-asan.log" 2>&1 && cmake --build build/asan >>"$raw/build-asan.log" 2>&1; }; then
        tail -n 20 "$raw/build-asan.log"
        echo "audit: the asan build failed"
        exit 2
    fi
fi
vdichaos=$build/chaos/vdichaos
[ -x "$vdichaos" ] || { echo "audit: no $vdichaos (--build-dir: an asan build)"; exit 2; }

# ---- the tests -------------------------------------------------------------------------------
if [ $tests = 1 ]; then
    say "tests (ctest, asan)"
    ctest --test-dir "$build" -j2 --timeout 300 --output-junit "$raw/ctest-asan.xml" \
        >"$raw/ctest-asan.log" 2>&1
    tail -n 3 "$raw/ctest-asan.log"
fi

# ---- schedules and faults of every scenario -------------------------------------------------
say "schedules (PCT depth 3 x $pct_runs, DFS <= 1 preemption, at most $dfs_runs) and fault sweeps"
"$vdichaos" list >"$raw/scenarios.txt" 2>&1 || { echo "audit: vdichaos list failed"; exit 2; }
for s in $(awk '{ print $1 }' "$raw/scenarios.txt"); do
    d=$raw/scenarios/$s
    mkdir -p "$d"
    "$vdichaos" run "$s" --strategy pct --depth 3 --runs "$pct_runs" --out "$d/findings" >"$d/pct.txt" 2>&1
    echo "exit $?" >>"$d/pct.txt"
    "$vdichaos" run "$s" --strategy dfs --preemptions 1 --runs "$dfs_runs" --out "$d/findings" >"$d/dfs.txt" 2>&1
    echo "exit $?" >>"$d/dfs.txt"
    "$vdichaos" faults "$s" >"$d/faults.txt" 2>&1
    echo "exit $?" >>"$d/faults.txt"
done

# ---- fuzzing ---------------------------------------------------------------------------------
if [ $fuzz = 1 ] && [ "$minutes" -gt 0 ]; then
    say "fuzzing every target for $minutes min (libFuzzer)"
    ci/fuzz.sh --minutes "$minutes" --engine libfuzzer >"$raw/fuzz.log" 2>&1
    echo "exit $?" >>"$raw/fuzz.log"
    mkdir -p "$raw/fuzz"
    cp build/fuzz-out/table.txt "$raw/fuzz/table.txt" 2>/dev/null
    for f in build/fuzz-out/*/libfuzzer.log; do
        [ -f "$f" ] && cp "$f" "$raw/fuzz/$(basename "$(dirname "$f")").log"
    done
fi

# ---- coverage --------------------------------------------------------------------------------
if [ $coverage = 1 ] && [ -x ci/coverage.sh ]; then
    say "coverage of ref/ (ci/coverage.sh)"
    ci/coverage.sh --out "$out/coverage" >"$raw/coverage.log" 2>&1
    tail -n 1 "$raw/coverage.log"
fi

# ---- the report ------------------------------------------------------------------------------
say "report"
python3 ci/audit_report.py --raw "$raw" --source "$here" --out "$out"
rc=$?
[ $rc -le 1 ] || exit 2
# The SARIF against the 2.1.0 schema, when the validator is here (ci/setup.sh installs it).
ci/sarif_validate.sh "$out/results.sarif" >"$raw/sarif-validation.txt" 2>&1
case $? in
0) say "results.sarif validates against SARIF 2.1.0" ;;
77) ;;
*)
    head -n 5 "$raw/sarif-validation.txt"
    say "results.sarif does not validate against SARIF 2.1.0 (see $raw/sarif-validation.txt)"
    exit 2
    ;;
esac
say "done: $out/report.html"
exit $rc
