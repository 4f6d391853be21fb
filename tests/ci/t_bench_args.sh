#!/bin/sh
# ci/bench_bugs.sh and ci/fuzz_plants.sh refuse bad arguments with exit 2 and a message that
# names the problem, before they build or run anything: a typo in a long benchmark's
# command line must not cost its whole run. --help answers 0 and names every option.
# Usage: t_bench_args.sh SOURCE_DIR
set -u
cd "$1" || exit 1
bad=0
# refuse SCRIPT WANTED-TEXT ARGS...: exit 2 and WANTED-TEXT on stderr
refuse() {
    script=$1 want=$2
    shift 2
    err=$(timeout 60 bash "$script" "$@" 2>&1 >/dev/null)
    rc=$?
    if [ $rc != 2 ]; then
        echo "t_bench_args: $script $*: exit $rc, not 2"; bad=1
    fi
    case "$err" in *"$want"*) ;; *) echo "t_bench_args: $script $*: said '$err', not '$want'"; bad=1 ;; esac
}
b=ci/bench_bugs.sh
refuse $b "unknown option" --frobnicate
refuse $b "--seconds needs a value" --seconds
refuse $b "whole numbers" --seconds 1.5
refuse $b "at least 1" --runs 0
refuse $b "--strategies needs a value" --strategies
refuse $b "at least one strategy" --strategies ""
refuse $b "unknown strategy 'bogus'" --strategies random,bogus
refuse $b "unknown strategy 'PCT1'" --strategies PCT1
refuse $b "an empty name" --strategies random,,fuzz
refuse $b "--build-root needs a value" --build-root
refuse $b "--cpu takes a CPU number" --cpu x
refuse $b "cannot pin to CPU 4096" --cpu 4096
f=ci/fuzz_plants.sh
refuse $f "unknown option" --frobnicate
refuse $f "--bug needs a value" --bug
refuse $f "want integers" --seeds x
refuse $f "--engine is libfuzzer or afl" --engine honggfuzz
refuse $f "--feedback is on, off or both" --feedback maybe
refuse $f "no --feedback off or both" --engine afl --compare-feedback
refuse $f "--preset is for libFuzzer" --engine afl --preset fuzz
refuse $f "exclude each other" --no-build --build-only
for s in $b $f; do
    h=$(bash "$s" --help) || { echo "t_bench_args: $s --help failed"; bad=1; }
    for o in --strategies --build-root --no-build; do
        [ "$s" = "$f" ] && [ "$o" = --strategies ] && o=--engine
        case "$h" in *"$o"*) ;; *) echo "t_bench_args: $s --help does not name $o"; bad=1 ;; esac
    done
done
exit $bad
