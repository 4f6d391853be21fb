#!/bin/sh
# run_cli.sh VDICHAOS SAMPLE_CLIENT BAD_CLIENT: the command line of vdichaos client. Usage
# errors and a command that cannot run exit 2; the random strategy is a function of its
# seed (the same seed, the same plans in the same order; another seed, others).
set -u
vdichaos=$1 sample=$2 bad=$3
dir=$(mktemp -d "${TMPDIR:-/tmp}/t-client-cli-XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT
cd "$dir" || exit 1
failed=0
want2() {
    "$vdichaos" client "$@" >/dev/null 2>&1
    rc=$?
    [ $rc -eq 2 ] || { echo "FAILED: vdichaos client $* exited $rc, want 2"; failed=1; }
}
want2
want2 --plans bogus -- "$sample" backup db m.bak
want2 --runs 0 -- "$sample" backup db m.bak
want2 --budget soon -- "$sample" backup db m.bak
want2 --faults abort,nonsense -- "$sample" backup db m.bak
want2 --hang-ms -- "$sample" backup db m.bak
want2 replay
want2 replay "$dir/missing.plan" -- "$sample" backup db m.bak
want2 -- "$dir/no-such-client" backup db m.bak
for v in 0 5:0 5:1000001 x 5: :5 "5 6" 5:200:3 18446744073709551616; do
    want2 --shake "$v" -- "$sample" backup db m.bak
done
# random: the plans (each run's line without its timing) are the seed's
opts="--plans random --runs 12 --faults abort,close,fail,pause --pause-ms 100 --findings f"
# shellcheck disable=SC2086
"$vdichaos" client $opts --seed 5 -- "$bad" backup db m.bak 2>a.err >/dev/null
# shellcheck disable=SC2086
"$vdichaos" client $opts --seed 5 -- "$bad" backup db m.bak 2>b.err >/dev/null
# shellcheck disable=SC2086
"$vdichaos" client $opts --seed 6 -- "$bad" backup db m.bak 2>c.err >/dev/null
plans() { grep '^\[' "$1" | cut -c1-48; }
plans a.err >a.plans
plans b.err >b.plans
plans c.err >c.plans
[ "$(wc -l <a.plans)" -eq 12 ] || { echo "FAILED: $(wc -l <a.plans) runs, want 12"; cat a.err; failed=1; }
cmp -s a.plans b.plans || { echo "FAILED: seed 5 twice, different plans"; diff a.plans b.plans; failed=1; }
cmp -s a.plans c.plans && { echo "FAILED: seeds 5 and 6 gave the same plans"; failed=1; }
grep -q '^FINDING truth: success-after-failure' a.err || { echo "FAILED: random found nothing"; cat a.err; failed=1; }
# --jobs: runs side by side, delivered in plan order, so the runs (each line without its
# timing) and the findings are those of --jobs 1; {run} is each run's own directory.
for v in 0 65 x -1; do
    want2 --jobs "$v" -- "$sample" backup db m.bak
done
want2 --backup-command "$sample backup db {run}/m.bak" -- "$sample" restore db m.bak
untimed() { grep -E '^\[|^FINDING' "$1" | sed 's/ *[0-9.]* s\( *FINDING\)\{0,1\}$/\1/'; }
for j in 1 4; do
    # shellcheck disable=SC2086
    "$vdichaos" client $opts --seed 5 --jobs $j --findings "f$j" -- "$bad" backup db '{run}/m.bak' \
        2>"j$j.err" >/dev/null
    untimed "j$j.err" >"j$j.runs"
done
[ "$(grep -c '^\[' j1.runs)" -eq 12 ] || { echo "FAILED: --jobs 1 made $(grep -c '^\[' j1.runs) runs, want 12"; cat j1.err; failed=1; }
cmp -s j1.runs j4.runs || { echo "FAILED: --jobs 4 ran other plans or judged them otherwise"; diff j1.runs j4.runs; failed=1; }
ls f4/*.plan >/dev/null 2>&1 || { echo "FAILED: --jobs 4 saved no finding"; failed=1; }
ls m.bak '{run}' >/dev/null 2>&1 && { echo "FAILED: {run} was not replaced"; failed=1; }
[ $failed = 0 ] && echo "usage errors exit 2; random plans follow the seed; --jobs 4 makes the runs of --jobs 1"
exit $failed
