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

# expect WANT(ORACLE:CLASS[|...]) [replay PLAN] OPTIONS... -- CLIENT...: a finding of one
# of WANT among the findings of every run of the budget (a rarer other finding of the same
# client, e.g. a sanitizer's, may come first).
expect() {
    want=$1
    shift
    rm -rf "$dir/f"
    if [ "$1" = replay ]; then # `client replay PLAN` comes before the options
        plan=$2
        shift 2
        set -- replay "$plan" --findings "$dir/f" --json --quiet "$@"
    else
        set -- --findings "$dir/f" --json --quiet "$@"
    fi
    "$vdichaos" client "$@" >"$dir/out.json" 2>"$dir/err"
    rc=$?
    for alt in $(echo "$want" | tr '|' ' '); do
        o=${alt%%:*} c=${alt#*:}
        if [ $rc -eq 1 ] && grep -q "\"oracle\":\"$o\",\"class\":\"$c\"" "$dir/out.json"; then
            echo "found $alt: $(tail -n 2 "$dir/err" | head -n 1)"
            return 0
        fi
    done
    echo "FAILED: want $want, exit $rc"
    cat "$dir/err" "$dir/out.json"
    fails=$((fails + 1))
}

c=$race/race-client-lost-update
expect truth:backup-does-not-restore --plans clean --runs 100 --sched pct:2:1 \
    --restore-command "$c restore db {run}/m.bak 2" -- "$c" backup db '{run}/m.bak' 2
c=$race/race-client-lost-wakeup
expect ends:hang --plans clean --runs 200 --sched pct:2:9 -- "$c" backup db '{run}/m.bak' 2
grep -q 'thread 0 pthread_cond_wait:wait' "$dir/out.json" ||
    { echo "FAILED: the hang does not name the main thread's wait"; fails=$((fails + 1)); }
c=$race/race-client-complete-after-close
printf 'abort after 2\n' >"$dir/abort.plan"
expect "protocol:complete-after-close|protocol:call-after-close|use-after-close:SIGSEGV" \
    replay "$dir/abort.plan" --runs 100 --sched pct:2:1 -- "$c" backup db '{run}/m.bak' 2

if [ -n "$racy" ]; then
    expect sanitizer:data-race --plans clean --runs 10 --sched pct:2:1 -- "$racy" backup db \
        '{run}/m.bak' 4
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
