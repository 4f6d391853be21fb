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
[ $failed = 0 ] && echo "usage errors exit 2; random plans follow the seed"
exit $failed
