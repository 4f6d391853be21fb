#!/bin/sh
# run_sched.sh VDICHAOS SAMPLE RACE_DIR [RACY]: vdichaos client --sched on the race clients, whose
# bugs need one interleaving of their own threads: each is found by the scheduler within
# its budget of schedules (the same budgets that --shake and the OS almost never find them
# in: tests/clients/race_client.cpp has the numbers); the sample client runs clean under
# every schedule; bad --sched values are refused. RACY (a ThreadSanitizer build's client
# with a data race of its device threads): TSan still reports the race under the scheduler.
# Exit 0 pass, 1 fail.
set -u
vdichaos=$1 sample=$2 race=$3 racy=${4:-}
dir=$(mktemp -d "${TMPDIR:-/tmp}/t-client-sched-XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT
fails=0

# expect WANT(ORACLE:CLASS[|...]) BUDGET SPEC [replay PLAN] OPTIONS... -- CLIENT...: a
# finding of one of WANT within BUDGET runs, made in batches of 20, each batch with
# --sched SPEC:SEED of its own seed (1, 2, ...), so that a find ends the search early. It
# is looked for among all of a batch's findings (a rarer other finding of the same client,
# e.g. a sanitizer's, may come first).
expect() {
    want=$1 budget=$2 spec=$3
    shift 3
    pre=""
    if [ "$1" = replay ]; then # `client replay PLAN` comes before the options
        pre=$2
        shift 2
    fi
    done_runs=0 seed=1
    while [ "$done_runs" -lt "$budget" ]; do
        rm -rf "$dir/f"
        if [ -n "$pre" ]; then
            "$vdichaos" client replay "$pre" --findings "$dir/f" --json --quiet --runs 20 \
                --sched "$spec:$seed" "$@" >"$dir/out.json" 2>"$dir/err"
        else
            "$vdichaos" client --findings "$dir/f" --json --quiet --runs 20 \
                --sched "$spec:$seed" "$@" >"$dir/out.json" 2>"$dir/err"
        fi
        rc=$?
        [ $rc -le 1 ] || break
        for alt in $(echo "$want" | tr '|' ' '); do
            o=${alt%%:*} c=${alt#*:}
            if [ $rc -eq 1 ] && grep -q "\"oracle\":\"$o\",\"class\":\"$c\"" "$dir/out.json"; then
                echo "found $alt within $((done_runs + 20)) runs ($spec:$seed)"
                return 0
            fi
        done
        done_runs=$((done_runs + 20))
        seed=$((seed + 1))
    done
    echo "FAILED: want $want within $budget runs, last exit $rc"
    cat "$dir/err" "$dir/out.json"
    fails=$((fails + 1))
}

c=$race/race-client-lost-update
expect truth:backup-does-not-restore 100 pct:2 --plans clean \
    --restore-command "$c restore db {run}/m.bak 2" -- "$c" backup db '{run}/m.bak' 2
c=$race/race-client-lost-wakeup
expect ends:hang 300 pct:2 --plans clean -- "$c" backup db '{run}/m.bak' 2
grep -q 'thread 0 pthread_cond_wait:wait' "$dir/out.json" ||
    { echo "FAILED: the hang does not name the main thread's wait"; fails=$((fails + 1)); }
c=$race/race-client-complete-after-close
printf 'abort after 2\n' >"$dir/abort.plan"
expect "protocol:complete-after-close|protocol:call-after-close|use-after-close:SIGSEGV" 100 \
    pct:2 replay "$dir/abort.plan" -- "$c" backup db '{run}/m.bak' 2

if [ -n "$racy" ]; then
    expect sanitizer:data-race 60 pct:2 --plans clean -- "$racy" backup db '{run}/m.bak' 4
fi

# A correct client: clean under every schedule, and its runs were under the scheduler.
"$vdichaos" client --findings "$dir/ok" --json --plans clean --runs 10 --sched pct:2:3 \
    --restore-command "$sample restore db {run}/m.bak" -- "$sample" backup db '{run}/m.bak' \
    >"$dir/out.json" 2>"$dir/err"
rc=$?
if [ $rc -ne 0 ] || ! grep -q '"findings":\[\]' "$dir/out.json"; then
    echo "FAILED: the sample client under --sched: exit $rc"
    cat "$dir/err"
    fails=$((fails + 1))
fi
grep -q 'scheduled' "$dir/err" || { echo "FAILED: runs not marked scheduled"; fails=$((fails + 1)); }
grep -q 'not controlled: .*VDI wait' "$dir/err" ||
    { echo "FAILED: the uncontrolled VDI waits are not reported"; cat "$dir/err"; fails=$((fails + 1)); }

# Bad values: a message and exit 2.
for bad in pct pct:0:1 pct:9:1 pct:2 random random:x dfs:1 "pct:2:1:0" "random:1 2"; do
    "$vdichaos" client --sched "$bad" -- "$sample" backup db "$dir/x.bak" >/dev/null 2>"$dir/err"
    rc=$?
    [ $rc -eq 2 ] && grep -q -- '--sched' "$dir/err" ||
        { echo "FAILED: --sched '$bad' gave exit $rc"; cat "$dir/err"; fails=$((fails + 1)); }
done
echo "run_sched: $fails failed"
[ "$fails" -eq 0 ]
