#!/bin/bash
# OSS-Fuzz / ClusterFuzzLite build (base-builder's `compile` runs it from the source tree).
# $CC, $CXX, $CFLAGS, $CXXFLAGS and $LIB_FUZZING_ENGINE come from the environment; the
# build lives in $WORK, outside the source tree. Every fuzz target of fuzz/CMakeLists.txt
# (its FUZZ_TARGETS list) lands in $OUT with:
#   <target>.dict               the libFuzzer dictionary (fuzz/<target>.dict)
#   <target>.options            fuzz/<target>.options, or one naming the dictionary
#   <target>_seed_corpus.zip    corpora/<target>/{seed,crash}/, inputs only (no README,
#                               no generator scripts)
# Exits non-zero when anything fails or when no fuzz target landed in $OUT.
set -euo pipefail

: "${OUT:?OUT must name the output folder}" "${WORK:?WORK must name a scratch folder}"
: "${CC:?}" "${CXX:?}" "${LIB_FUZZING_ENGINE:?}"
CFLAGS=${CFLAGS:-}
CXXFLAGS=${CXXFLAGS:-}

# The source tree: the current folder (base-builder's WORKDIR), else $SRC/vdichaos.
root=$PWD
if [ ! -f "$root/fuzz/CMakeLists.txt" ]; then
    root=${SRC:?}/vdichaos
fi
[ -f "$root/fuzz/CMakeLists.txt" ] || { echo "build.sh: no fuzz/CMakeLists.txt under $root" >&2; exit 1; }
build=$WORK/vdichaos-build-${SANITIZER:-default}
mkdir -p "$OUT" "$build"

# The targets: FUZZ_TARGETS in fuzz/CMakeLists.txt, those whose source exists.
list=$(tr '\n' ' ' <"$root/fuzz/CMakeLists.txt" | grep -oE 'set\(FUZZ_TARGETS[^)]*\)' | head -n 1 |
    tr '()' '  ' | tr -s ' \t' '\n' | grep -E '^fuzz_[A-Za-z0-9_]+$' || true)
targets=()
for t in $list; do
    for ext in c cc cpp; do
        if [ -f "$root/fuzz/$t.$ext" ]; then
            targets+=("$t")
            break
        fi
    done
done
if [ ${#targets[@]} = 0 ]; then
    echo "build.sh: no fuzz target in fuzz/CMakeLists.txt's FUZZ_TARGETS" >&2
    exit 1
fi

gen=()
command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
# CMake options this tree may have (older trees lack them; each is passed only if known):
#   VDI_FUZZ_ENGINE_LIB  the engine the fuzz targets link (last, through $CXX)
#   VDI_FUZZ_INSTRUMENT  the project's own -fsanitize=fuzzer-no-link: off, $CFLAGS bring
#                        the instrumentation (and the coverage build must not have it)
#   VDI_FUZZ_REPLAY      the <target>_replay drivers: off, they are not shipped
known() { grep -q "$1" "$root/CMakeLists.txt" "$root/fuzz/CMakeLists.txt"; }
opts=()
known VDI_FUZZ_INSTRUMENT && opts+=(-DVDI_FUZZ_INSTRUMENT=OFF)
known VDI_FUZZ_REPLAY && opts+=(-DVDI_FUZZ_REPLAY=OFF)
if known VDI_FUZZ_ENGINE_LIB; then
    opts+=(-DVDI_FUZZ_ENGINE_LIB="$LIB_FUZZING_ENGINE" -UCMAKE_C_LINK_EXECUTABLE)
else
    # The older fuzz/CMakeLists.txt links -fsanitize=fuzzer itself (right for libFuzzer
    # only) with $CC: link every executable through $CXX with the engine last, as OSS-Fuzz
    # expects; only the fuzz targets are built, so this touches nothing else.
    if [ "$LIB_FUZZING_ENGINE" != "-fsanitize=fuzzer" ]; then
        echo "build.sh: LIB_FUZZING_ENGINE='$LIB_FUZZING_ENGINE' needs a fuzz/CMakeLists.txt" \
            "that takes VDI_FUZZ_ENGINE_LIB (this one links libFuzzer only)" >&2
        exit 1
    fi
    opts+=(-DCMAKE_C_LINK_EXECUTABLE="$CXX <FLAGS> <CMAKE_C_LINK_FLAGS> <LINK_FLAGS> <OBJECTS> -o <TARGET> <LINK_LIBRARIES> $LIB_FUZZING_ENGINE")
fi

# The sanitizer and coverage flags come from $CFLAGS: VDI_SANITIZE stays empty, and the
# project's -Werror is off (newer compilers warn about more).
cmake -S "$root" -B "$build" "${gen[@]}" \
    -DCMAKE_BUILD_TYPE= \
    -DCMAKE_C_COMPILER="$CC" -DCMAKE_CXX_COMPILER="$CXX" \
    -DCMAKE_C_FLAGS="$CFLAGS" -DCMAKE_CXX_FLAGS="$CXXFLAGS" \
    -DVDI_WERROR=OFF -DVDI_SANITIZE= -DVDI_FUZZ=ON "${opts[@]}"
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}"

landed=0
for t in "${targets[@]}"; do
    bin=$build/fuzz/$t
    [ -x "$bin" ] || { echo "build.sh: $t was not built ($bin)" >&2; exit 1; }
    cp "$bin" "$OUT/$t"
    if [ -f "$root/fuzz/$t.dict" ]; then
        cp "$root/fuzz/$t.dict" "$OUT/$t.dict"
    fi
    if [ -f "$root/fuzz/$t.options" ]; then
        cp "$root/fuzz/$t.options" "$OUT/$t.options"
    else
        {
            echo "[libfuzzer]"
            [ -f "$root/fuzz/$t.dict" ] && echo "dict = $t.dict"
            echo "timeout = 30"
        } >"$OUT/$t.options"
    fi
    # Seeds and fixed crashes, flat, inputs only (every stored input replays clean); a
    # crash file is staged as crash-<name> so that no name repeats.
    rm -f "$OUT/${t}_seed_corpus.zip"
    stage=$build/seed-corpus/$t
    rm -rf "$stage"
    mkdir -p "$stage"
    for kind in seed crash; do
        d=$root/corpora/$t/$kind
        [ -d "$d" ] || continue
        prefix=""
        [ $kind = crash ] && prefix=crash-
        while IFS= read -r -d '' f; do
            cp "$f" "$stage/$prefix$(basename "$f")"
        done < <(find "$d" -maxdepth 1 -type f ! -name '.*' ! -name '*.md' ! -name '*.py' \
            ! -name '*.txt' -print0)
    done
    if [ -n "$(ls -A "$stage")" ]; then
        (cd "$stage" && zip -q -X "$OUT/${t}_seed_corpus.zip" ./*)
    fi
    landed=$((landed + 1))
done
echo "build.sh: $landed fuzz targets in $OUT (${SANITIZER:-no SANITIZER set}): ${targets[*]}"
[ "$landed" -gt 0 ]
