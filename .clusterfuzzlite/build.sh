#!/bin/bash -eu
# OSS-Fuzz / ClusterFuzzLite build: $CC, $CFLAGS and $LIB_FUZZING_ENGINE come from the
# environment; every fuzz_* target lands in $OUT with its seed corpus, dictionary and options.
cmake -S . -B build/oss -G Ninja -DCMAKE_C_COMPILER="$CC" -DCMAKE_CXX_COMPILER="$CXX" \
    -DCMAKE_C_FLAGS="$CFLAGS" -DCMAKE_CXX_FLAGS="$CXXFLAGS" -DVDI_WERROR=OFF \
    -DVDI_FUZZ_ENGINE_LIB="$LIB_FUZZING_ENGINE"
cmake --build build/oss -j"$(nproc)"
for t in build/oss/fuzz/fuzz_*; do
    name=$(basename "$t")
    case "$name" in *_replay | *_afl) continue ;; esac
    cp "$t" "$OUT/"
    [ -d "corpora/$name/seed" ] && (cd "corpora/$name/seed" && zip -q -r "$OUT/${name}_seed_corpus.zip" .)
    [ -f "fuzz/$name.dict" ] && cp "fuzz/$name.dict" "$OUT/"
    [ -f "fuzz/$name.options" ] && cp "fuzz/$name.options" "$OUT/"
done
