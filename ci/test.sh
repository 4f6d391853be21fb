#!/usr/bin/env bash
# The project's test command (README): installs what a fresh Debian 12 machine lacks,
# builds the asan, tsan and release presets, runs ctest in each, runs the house linters
# and a short fuzz smoke when fuzz targets exist, and ends with one line
# "N passed, N failed" (", N skipped" when some were skipped).
#
# Usage: ci/test.sh [--presets "asan tsan release"] [--no-setup] [--no-fuzz]
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here" || exit 2

presets="asan tsan release"
do_setup=1
do_fuzz=1
while [ $# -gt 0 ]; do
    case "$1" in
    --presets) presets=$2; shift 2 ;;
    --no-setup) do_setup=0; shift ;;
    --no-fuzz) do_fuzz=0; shift ;;
    -h | --help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "ci/test.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
done

jobs=$(nproc 2>/dev/null || echo 2)
logdir=build/ci-logs
mkdir -p "$logdir"

passed=0
failed=0
skipped=0
failures=()

pass() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); failures+=("$1"); echo "FAILED: $1"; }

# ---- setup: compilers, sanitizer runtimes, build tools, AFL++ -------------------------
if [ $do_setup = 1 ]; then
    # shellcheck source=ci/setup.sh
    . ci/setup.sh
    if ! vdi_setup "$logdir"; then
        fail "setup"
        echo "$passed passed, $failed failed"
        exit 1
    fi
fi

# TSan in clang 14 cannot cope with more than 30 bits of mmap randomness.
tsan_prefix=()
rnd_bits=$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0)
if [ "$rnd_bits" -gt 30 ]; then
    echo "note: vm.mmap_rnd_bits=$rnd_bits is above 30, which TSan (clang 14) rejects; running TSan tests under 'setarch -R'"
fi
tsan_prefix=(setarch "$(uname -m)" -R)

# ---- build and test each preset ---------------------------------------------------------
# shellcheck source=ci/junit_count.sh
. ci/junit_count.sh
run_ctest() { # $1 = preset
    local preset=$1 log="$logdir/ctest-$1.log" junit="$here/$logdir/ctest-$1.xml"
    local prefix=()
    [ "$preset" = tsan ] && prefix=("${tsan_prefix[@]}")
    # A failed test is run once more; one that then passes is reported as flaky (below),
    # with the output of its failed attempt in the log, rather than silently forgiven.
    "${prefix[@]}" ctest --test-dir "build/$preset" -j "$jobs" --output-on-failure \
        --repeat until-pass:2 --no-tests=error -LE known-failure --output-junit "$junit" \
        >"$log" 2>&1
    local rc=$?
    local total fail_n skip_n
    read -r total fail_n skip_n < <(junit_count "$junit")
    if [ "$total" = 0 ]; then
        tail -n 20 "$log"
        fail "ctest/$preset: no test ran (rc $rc)"
        return
    fi
    passed=$((passed + total - fail_n - skip_n))
    failed=$((failed + fail_n))
    skipped=$((skipped + skip_n))
    # The names of the failed tests, from ctest's closing list.
    while read -r t; do
        failures+=("$preset/$t")
    done < <(sed -n '/The following tests FAILED:/,$p' "$log" | grep -oE '^[[:space:]]+[0-9]+ - [^ ]+' | awk '{print $3}')
    echo "ctest/$preset: $((total - fail_n - skip_n)) passed, $fail_n failed, $skip_n skipped (log: $log)"
    local flaky
    flaky=$(grep -E '^[0-9]+/[0-9]+ Test +#[0-9]+: [^ ]+ \.+\*\*\*(Failed|Timeout|Exception)' "$log" | awk '{print $4}' | sort -u |
        while read -r t; do grep -qE "^[[:space:]]+[0-9]+ - $t " <(sed -n '/The following tests FAILED:/,$p' "$log") || echo "$t"; done)
    [ -n "$flaky" ] && echo "ctest/$preset: FLAKY (failed, then passed on retry): $(echo $flaky)"
    local known
    known=$(ctest --test-dir "build/$preset" -N -L known-failure 2>/dev/null | grep -c 'Test *#')
    [ "$known" -gt 0 ] && echo "ctest/$preset: $known known failures excluded (label known-failure)"
}

for preset in $presets; do
    echo "== $preset: configure and build"
    if ! cmake --preset "$preset" >"$logdir/configure-$preset.log" 2>&1; then
        tail -n 30 "$logdir/configure-$preset.log"
        fail "configure/$preset"
        continue
    fi
    if ! cmake --build "build/$preset" -j "$jobs" >"$logdir/build-$preset.log" 2>&1; then
        grep -E 'error|Error' "$logdir/build-$preset.log" | head -n 30
        fail "build/$preset"
        continue
    fi
    pass
    echo "== $preset: ctest"
    run_ctest "$preset"
done

# ---- house linters ------------------------------------------------------------------------
if [ -x ci/lint.sh ]; then
    echo "== lint"
    if ci/lint.sh >"$logdir/lint.log" 2>&1; then pass; else
        cat "$logdir/lint.log" | head -n 40
        fail "lint"
    fi
fi

# ---- kill-at-a-random-moment test of the tools, short form --------------------------------
if [ -x ci/reliability.sh ]; then
    echo "== reliability (short)"
    if ci/reliability.sh --short --build-dir build/ >"$logdir/reliability.log" 2>&1; then pass; else
        grep -E 'FAILED|failed' "$logdir/reliability.log" | head -n 20
        fail "reliability"
    fi
    tail -n 1 "$logdir/reliability.log"
fi

# ---- short fuzz smoke of every target -----------------------------------------------------
if [ $do_fuzz = 1 ] && [ -x ci/fuzz.sh ] && [ -d fuzz ]; then
    echo "== fuzz smoke"
    if ci/fuzz.sh --smoke >"$logdir/fuzz-smoke.log" 2>&1; then pass; else
        tail -n 40 "$logdir/fuzz-smoke.log"
        fail "fuzz-smoke"
    fi
    cat "$logdir/fuzz-smoke.log" | sed -n '/^target /,$p'
    # The crash path end to end, on a bug planted in a copy of the reference; then with two
    # libFuzzer processes side by side, each followed by another after its crash.
    for j in 1 2; do
        name=fuzz-plant label="planted bug"
        [ $j = 1 ] || name=fuzz-plant-jobs label="planted bug, --jobs $j"
        echo "== fuzz crash path ($label)"
        if sh tests/fuzz/t_plant.sh drain_skips_last ledger $j >"$logdir/$name.log" 2>&1; then
            pass
            tail -n 1 "$logdir/$name.log"
        else
            tail -n 40 "$logdir/$name.log"
            fail "$name"
        fi
    done
fi

if [ ${#failures[@]} -gt 0 ]; then
    echo "failures:"
    printf '  %s\n' "${failures[@]}"
fi
if [ "$skipped" -gt 0 ]; then
    echo "$passed passed, $failed failed, $skipped skipped"
else
    echo "$passed passed, $failed failed"
fi
[ "$failed" = 0 ]
