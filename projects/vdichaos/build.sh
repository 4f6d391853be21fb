#!/bin/bash -eu
# OSS-Fuzz build for vdichaos: the repository's own ClusterFuzzLite build, which builds
# every fuzz target against $LIB_FUZZING_ENGINE in $WORK and ships each with its .dict,
# .options and seed corpus zip into $OUT (and fails when a target does not land).
cd "$SRC/vdichaos"
exec bash .clusterfuzzlite/build.sh
