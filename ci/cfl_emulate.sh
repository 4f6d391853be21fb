#!/usr/bin/env bash
# Emulates OSS-Fuzz's base-builder here, without Docker: for each sanitizer it sets the
# environment `compile` gives a project ($SRC, $OUT, $WORK, CC=clang, CXX=clang++, CFLAGS
# and CXXFLAGS with that sanitizer's flags, LIB_FUZZING_ENGINE=-fsanitize=fuzzer), runs
# .clusterfuzzlite/build.sh into a scratch $OUT, checks that every fuzz target of
# fuzz/CMakeLists.txt landed, instrumented for the sanitizer, with its .options, its .dict
# (when fuzz/ has one) and a seed zip holding inputs only, then runs each target on its
# seed corpus with the options file's flags (as run_fuzzer does). The coverage build runs
# each target over its seeds and checks that a profile comes out (llvm-profdata merges it).
#
# Usage: ci/cfl_emulate.sh [--sanitizers "address undefined memory coverage"]
#                          [--runs N | --seconds S] [--dir DIR] [--build-script FILE]
#   --runs N     N executions per target (-runs=N -seed=1: the same runs every time)
#   --seconds S  S seconds per target (-max_total_time=S); the default is 5
#   --dir DIR    scratch root (default build/cfl); DIR/<sanitizer>/{out,work,run}
#   --build-script FILE  the build script to check (default .clusterfuzzlite/build.sh;
#                projects/vdichaos/build.sh is OSS-Fuzz's), run from the source tree
# memory is skipped, with a note, when clang has no MSan runtime here.
# Exit: 0 all good, 1 a check failed or a target crashed, 2 usage, 77 no clang/libFuzzer
# (or no zip, unzip, nm).
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here" || exit 2

sanitizers="address undefined memory coverage"
runs=""
seconds=5
dir=build/cfl
script=.clusterfuzzlite/build.sh
while [ $# -gt 0 ]; do
    case "$1" in
    --sanitizers) sanitizers=${2:-}; shift 2 ;;
    --runs) runs=${2:-}; seconds=""; shift 2 ;;
    --seconds) seconds=${2:-}; runs=""; shift 2 ;;
    --dir) dir=${2:-}; shift 2 ;;
    --build-script) script=${2:-}; shift 2 ;;
    -h | --help) sed -n "2,20p" "$0"; exit 0 ;;
    *) echo "ci/cfl_emulate.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
done
case "$runs$seconds" in '' | *[!0-9]*) echo "ci/cfl_emulate.sh: --runs/--seconds want an integer" >&2; exit 2 ;; esac
for s in $sanitizers; do
    case "$s" in address | undefined | memory | coverage) ;;
    *) echo "ci/cfl_emulate.sh: sanitizer '$s' is not one of address undefined memory coverage" >&2; exit 2 ;;
    esac
done
[ -f "$script" ] || { echo "ci/cfl_emulate.sh: no build script '$script'" >&2; exit 2; }
script=$(cd "$(dirname "$script")" && pwd)/$(basename "$script")
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# base-builder's flags (infra/base-images/base-builder/Dockerfile and `compile`).
base_cflags="-O1 -fno-omit-frame-pointer -gline-tables-only -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION"
ubsan_checks=array-bounds,bool,builtin,enum,float-divide-by-zero,function,integer-divide-by-zero,null,object-size,return,returns-nonnull-attribute,shift,signed-integer-overflow,unsigned-integer-overflow,unreachable,vla-bound,vptr
ubsan_fatal=${ubsan_checks//unsigned-integer-overflow,/}
san_flags() {
    case "$1" in
    address) echo "-fsanitize=address -fsanitize-address-use-after-scope" ;;
    undefined) echo "-fsanitize=$ubsan_checks -fno-sanitize-recover=$ubsan_fatal" ;;
    memory) echo "-fsanitize=memory -fsanitize-memory-track-origins" ;;
    coverage) echo "" ;;
    esac
}
cov_flags() {
    if [ "$1" = coverage ]; then
        echo "-fprofile-instr-generate -fcoverage-mapping -pthread -Wl,--no-as-needed -Wl,-ldl -Wl,-lm -Wno-unused-command-line-argument"
    else
        echo "-fsanitize=fuzzer-no-link"
    fi
}
# The symbol each build's runtime brings, to check the flags reached the binary.
san_symbol() {
    case "$1" in
    address) echo __asan_init ;;
    undefined) echo __ubsan_handle_ ;;
    memory) echo __msan_init ;;
    coverage) echo __llvm_profile_runtime ;;
    esac
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
builds_ok() { # $1 = flags: a tiny libFuzzer target links and runs with them
    printf '#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n){(void)d;(void)n;return 0;}\n' >"$tmp/t.c"
    # shellcheck disable=SC2086
    clang $1 -fsanitize=fuzzer "$tmp/t.c" -o "$tmp/t" >"$tmp/t.log" 2>&1 && "$tmp/t" -runs=1 >>"$tmp/t.log" 2>&1
}
for tool in zip unzip nm; do
    command -v $tool >/dev/null 2>&1 || { echo "SKIP: no $tool here"; exit 77; }
done
# No clang or no libFuzzer runtime here: nothing to emulate (77: skipped, for ctest).
if ! command -v clang >/dev/null 2>&1 || ! builds_ok ""; then
    echo "SKIP: clang cannot build a libFuzzer target here"
    exit 77
fi
# base-builder builds C++ against its own libc++; use it here only when it is installed.
libcxx=""
printf 'int main(){}\n' >"$tmp/x.cc"
if clang++ -stdlib=libc++ "$tmp/x.cc" -o "$tmp/x" >/dev/null 2>&1; then
    libcxx=-stdlib=libc++
else
    echo "note: no libc++ here: CXXFLAGS lack base-builder's -stdlib=libc++"
fi

# The targets we expect, read the same way a reader of fuzz/CMakeLists.txt would.
expected=()
for t in $(sed -n '/^[[:space:]]*set(FUZZ_TARGETS/,/)/p' fuzz/CMakeLists.txt | tr '()' '  ' |
    tr -s ' \t\n' '\n' | grep -E '^fuzz_[A-Za-z0-9_]+$'); do
    for ext in c cc cpp; do
        [ -f "fuzz/$t.$ext" ] && { expected+=("$t"); break; }
    done
done
if [ ${#expected[@]} = 0 ]; then
    echo "ci/cfl_emulate.sh: no fuzz target in fuzz/CMakeLists.txt" >&2
    exit 1
fi

failed=0
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
table=$dir/summary.txt
printf '%-10s %-13s %-6s %9s %8s %7s %s\n' sanitizer target built execs exec/s edges result >"$table"
row() { printf '%-10s %-13s %-6s %9s %8s %7s %s\n' "$@" >>"$table"; }

# The options file's [libfuzzer] section as flags (run_fuzzer's way).
option_flags() { # $1 = options file
    [ -f "$1" ] || return 0
    awk '/^\[/{sec=$0; next} sec=="[libfuzzer]" && /=/{k=$1; sub(/^[^=]*=[ \t]*/,""); printf "-%s=%s\n", k, $0}' "$1"
}

for san in $sanitizers; do
    sflags=$(san_flags "$san")
    cflags="$base_cflags $sflags $(cov_flags "$san")"
    if [ "$san" = memory ] && ! builds_ok "$sflags"; then
        echo "== memory: SKIPPED: clang here cannot build and run an MSan libFuzzer target ($(head -n 1 "$tmp/t.log"))"
        for t in "${expected[@]}"; do row memory "$t" - - - - skipped; done
        continue
    fi
    root=$dir/$san
    rm -rf "$root/out" "$root/run"
    mkdir -p "$root/out" "$root/work" "$root/run" "$root/src"
    ln -sfn "$here" "$root/src/vdichaos"
    echo "== $san: $(basename "$script") (log: $root/build.log)"
    # A clean environment, as in the builder image: nothing of this shell's flags leaks in.
    if ! (cd "$root/src/vdichaos" && env -i PATH="$PATH" HOME="${HOME:-/root}" \
        SRC="$root/src" OUT="$root/out" WORK="$root/work" \
        CC=clang CXX=clang++ CFLAGS="$cflags" CXXFLAGS="$cflags $libcxx" \
        SANITIZER="$san" FUZZING_ENGINE=libfuzzer ARCHITECTURE=x86_64 \
        SANITIZER_FLAGS="$sflags" COVERAGE_FLAGS="$(cov_flags "$san")" \
        LIB_FUZZING_ENGINE=-fsanitize=fuzzer \
        bash "$script") >"$root/build.log" 2>&1; then
        tail -n 25 "$root/build.log"
        fail "$san: build.sh exited non-zero"
        for t in "${expected[@]}"; do row "$san" "$t" no - - - "build failed"; done
        continue
    fi
    tail -n 1 "$root/build.log"
    sym=$(san_symbol "$san")
    for t in "${expected[@]}"; do
        bin=$root/out/$t
        if [ ! -x "$bin" ]; then
            fail "$san/$t: not in \$OUT"
            row "$san" "$t" no - - - missing
            continue
        fi
        ok=1
        if ! nm "$bin" 2>/dev/null | grep -- "$sym" >/dev/null; then
            fail "$san/$t: no $sym in the binary (the sanitizer flags did not reach it)"
            ok=0
        fi
        [ -f "$root/out/$t.options" ] || { fail "$san/$t: no $t.options"; ok=0; }
        if [ -f "fuzz/$t.dict" ] && ! cmp -s "fuzz/$t.dict" "$root/out/$t.dict"; then
            fail "$san/$t: $t.dict missing or not fuzz/$t.dict"
            ok=0
        fi
        zipf=$root/out/${t}_seed_corpus.zip
        seeds=$root/run/$t/seeds
        mkdir -p "$seeds" "$root/run/$t/corpus" "$root/run/$t/artifacts"
        if [ -d "corpora/$t/seed" ]; then
            if [ ! -f "$zipf" ]; then
                fail "$san/$t: no ${t}_seed_corpus.zip"
                ok=0
            else
                bad=$(unzip -Z1 "$zipf" | grep -E '(^|/)(README|.*\.(md|py|txt)$)|/' || true)
                [ -z "$bad" ] || { fail "$san/$t: seed zip holds non-inputs: $bad"; ok=0; }
                unzip -q -o "$zipf" -d "$seeds"
            fi
        fi
        nseeds=$(find "$seeds" -type f | wc -l)
        log=$root/run/$t/run.log
        mapfile -t opts < <(option_flags "$root/out/$t.options")
        if [ "$san" = coverage ]; then
            # Coverage: every seed once, a profile out (what the coverage task does).
            rm -f "$root/run/$t"/*.profraw
            (cd "$root/out" && LLVM_PROFILE_FILE="$root/run/$t/$t.%p.profraw" \
                "$bin" -runs=0 "${opts[@]}" "$seeds") >"$log" 2>&1
            rc=$?
            execs=$nseeds
            rate=-
            edges=-
            if [ $rc = 0 ] && ls "$root/run/$t"/*.profraw >/dev/null 2>&1; then
                if command -v llvm-profdata >/dev/null 2>&1; then
                    if llvm-profdata merge -sparse "$root/run/$t"/*.profraw -o "$root/run/$t/$t.profdata" 2>>"$log"; then
                        edges=$(llvm-cov report "$bin" -instr-profile="$root/run/$t/$t.profdata" 2>/dev/null |
                            awk '/^TOTAL/{print $4}')
                        edges=${edges:+$edges lines}
                        edges=${edges:--}
                    else
                        rc=1
                    fi
                fi
            elif [ $rc = 0 ]; then
                rc=1
                echo "no .profraw written" >>"$log"
            fi
        else
            budget=(-max_total_time="$seconds")
            [ -n "$runs" ] && budget=(-runs="$runs" -seed=1)
            (cd "$root/out" && "$bin" "${opts[@]}" "${budget[@]}" -print_final_stats=1 \
                -artifact_prefix="$root/run/$t/artifacts/" "$root/run/$t/corpus" "$seeds") >"$log" 2>&1
            rc=$?
            execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
            rate=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
            edges=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+' || echo 0)
        fi
        if [ $rc != 0 ]; then
            tail -n 30 "$log"
            fail "$san/$t: exited $rc on its seeds (log: $log)"
            row "$san" "$t" yes "${execs:-0}" "${rate:-0}" "${edges:-0}" "CRASH rc=$rc"
            continue
        fi
        if [ $ok = 1 ]; then
            row "$san" "$t" yes "$execs" "$rate" "$edges" "ok ($nseeds seeds)"
        else
            row "$san" "$t" yes "$execs" "$rate" "$edges" "check failed"
        fi
    done
done

cat "$table"
echo "cfl_emulate: ${#expected[@]} targets x [$sanitizers]: $failed failed"
[ "$failed" = 0 ]
