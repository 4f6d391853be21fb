#!/bin/sh
# run_fuzz.sh no-afl VDICHAOS CLIENT | fuzz VDICHAOS AFL_CLIENT: the fuzz strategy
# (`--plans fuzz`: AFL++ mutating plans, led by the client's coverage).
# no-afl: without afl-fuzz on PATH, --plans fuzz says which package to install and exits 2.
# fuzz: on the exit0-after-abort client built with afl-clang-fast++. The seeds are the clean
# plan and a 100 ms pause (--faults pause), neither of which this client gets wrong, so the
# finding must come from a plan AFL wrote: truth: success-after-failure, first seen after
# the two seed runs, saved, and replaying without AFL; and AFL must have seen the client's
# coverage (more than one edge, inputs kept for new coverage, paths beyond the seeds) and
# saved a crash. Skipped (77) without afl-fuzz on PATH.
set -u
mode=$1 vdichaos=$2 client=$3
dir=$(mktemp -d "${TMPDIR:-/tmp}/t-client-fuzz-XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT

if [ "$mode" = no-afl ]; then
    mkdir "$dir/bin"
    PATH="$dir/bin" "$vdichaos" client --plans fuzz -- "$client" backup db "$dir/m.bak" \
        >"$dir/out" 2>"$dir/err"
    rc=$?
    if [ $rc -ne 2 ] || ! grep -q 'needs afl-fuzz (AFL++) on PATH: install the afl++ package' "$dir/err"; then
        echo "FAILED: without afl-fuzz on PATH, --plans fuzz exited $rc, want 2 and the message"
        cat "$dir/err"
        exit 1
    fi
    cat "$dir/err"
    exit 0
fi

command -v afl-fuzz >/dev/null 2>&1 || { echo "SKIP: afl-fuzz is not on PATH (apt-get install afl++)"; exit 77; }
show() { cat "$dir/err"; cat "$dir/out.json"; }
num() { # the number after "KEY": in the JSON
    sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" "$dir/out.json" | head -n 1
}
# AFL's search is random: its first crash took 31 to 220 execs in ten sessions (release),
# and on a loaded machine a session can end with a crash but no input kept for new
# coverage (2 paths, 0 found, seen in ASan and TSan CI runs). A session that lacks either
# gets one more; the checks below judge the last.
for try in 1 2; do
    rm -rf "$dir/findings"
    "$vdichaos" client --plans fuzz --budget 40s --faults pause --server-timeout 2000 \
        --findings "$dir/findings" --json -- "$client" backup db "$dir/m.bak" \
        >"$dir/out.json" 2>"$dir/err"
    rc=$?
    [ "$(num crashes)" != 0 ] && [ "$(num paths_found)" != 0 ] && break
    [ $try = 1 ] && echo "afl-fuzz saved no crash or kept no new input in 40 s" \
        "($(num crashes) crashes, $(num paths_found) found); once more"
done
if [ $rc -ne 1 ] ||
    ! grep -q '"oracle":"truth","class":"success-after-failure"' "$dir/out.json"; then
    echo "FAILED: want a finding truth: success-after-failure, got exit $rc"
    show
    exit 1
fi
grep -q '"afl":{' "$dir/out.json" || { echo "FAILED: no afl-fuzz statistics"; show; exit 1; }
edges=$(num edges) paths=$(num paths) found=$(num paths_found) crashes=$(num crashes)
first=$(num first_run)
fail=0
[ "${edges:-0}" -gt 1 ] || { echo "FAILED: afl-fuzz saw ${edges:-no} edges of the client"; fail=1; }
[ "${found:-0}" -ge 1 ] && [ "${paths:-0}" -gt 2 ] ||
    { echo "FAILED: afl-fuzz kept no input for new coverage (${paths:-?} paths, ${found:-?} found)"; fail=1; }
[ "${crashes:-0}" -ge 1 ] || { echo "FAILED: afl-fuzz saved no crash"; fail=1; }
[ "${first:-0}" -ge 3 ] || { echo "FAILED: the finding came from run ${first:-?}, a seed, not from AFL"; fail=1; }
[ $fail = 0 ] || { show; exit 1; }
plan=$(ls "$dir/findings/truth-success-after-failure-"*.plan 2>/dev/null | head -n 1)
[ -n "$plan" ] || { echo "FAILED: the finding's plan was not saved"; show; exit 1; }
"$vdichaos" client replay "$plan" --findings "$dir/replayed" --json -- "$client" backup db \
    "$dir/m.bak" >"$dir/replay.json" 2>>"$dir/err"
if [ $? -ne 1 ] || ! grep -q '"oracle":"truth","class":"success-after-failure"' "$dir/replay.json"; then
    echo "FAILED: the saved plan $plan does not replay to truth: success-after-failure"
    show
    cat "$dir/replay.json"
    exit 1
fi
grep -E '^FINDING|afl-fuzz:' "$dir/err" | head -n 3
echo "afl-fuzz: $(num execs) execs ($(num execs_per_second)/s), $paths paths ($found found)," \
    "$edges edges, $crashes crashes, the first after $(num first_crash_seconds) s"
exit 0
