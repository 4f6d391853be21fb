#!/bin/sh
# run_sched.sh VDICHAOS SAMPLE RACE_DIR [RACY]: vdichaos client --sched on the race clients, whose
# bugs need one interleaving of their own threads: each is found by the scheduler within
# its budget of schedules (the same budgets that --shake and the OS almost never find them
# in: tests/clients/race_client.cpp has the numbers); the sample client runs clean under
# every schedule; bad --sched values are refused. RACY (a ThreadSanitizer build's client
# with a data race of its device threads): TSan still reports the race under the scheduler.
# With RACY the searches for the race clients' bugs (and the replay of one client's
# decisions against another, which needs a found one) are left to the ASan and release
# builds: under TSan they took 170 s of the CI run and judge nothing TSan adds to; what
# the TSan build checks is the race report, the sample and attach clients clean under the
# scheduler (TSan watching the scheduler in their processes), and the bad values.
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
                replay_finding "$o" "$c" "$@"
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

# replay_finding ORACLE CLASS OPTIONS... -- CLIENT...: the saved finding's plan (its
# schedule step: the client, the server and their threads are one session, so the seed is
# the whole run) replayed REPLAYS times: the same finding every time.
REPLAYS=${REPLAYS:-5}
replay_finding() {
    o=$1 c=$2
    shift 2
    plan=$(ls "$dir/f/$o-$c-"*.plan 2>/dev/null | head -n 1)
    [ -n "$plan" ] || { echo "FAILED: no saved plan for $o:$c"; fails=$((fails + 1)); return; }
    opts=""                               # the search's options but its --plans
    while [ "$1" != -- ]; do
        if [ "$1" = --plans ]; then shift 2; continue; fi
        opts="$opts $(printf "'%s'" "$1")"
        shift
    done
    shift
    eval "set -- $opts -- \"\$@\""
    # the trace of the finding's run, from its plan's header; its decisions beside it
    trace=$(sed -n 's/^# schedule: trace \([0-9a-f]*\),.*/\1/p' "$plan")
    decisions=${plan%.plan}.sched
    [ -n "$trace" ] && [ -s "$decisions" ] ||
        { echo "FAILED: $plan names no schedule trace or has no decisions"; fails=$((fails + 1)); }
    i=0 same=0
    while [ "$i" -lt "$REPLAYS" ]; do
        # by the plan's seed, and (every other time) by the decisions kept beside it
        by=""
        [ $((i % 2)) -eq 1 ] && by="--sched replay:$decisions"
        rm -rf "$dir/r"
        "$vdichaos" client replay "$plan" --findings "$dir/r" --json --quiet $by "$@" \
            >"$dir/replay.json" 2>"$dir/replay.err"
        # a run the scheduler did not fully control (TSan starts its symbolizer out of
        # sight) replays its finding, not always its trace
        [ $? -eq 1 ] && grep -q "\"oracle\":\"$o\",\"class\":\"$c\"" "$dir/replay.json" &&
            { [ -n "${ANY_TRACE:-}" ] || grep -q "\"schedule_trace\":\"$trace\"" "$dir/replay.json"; } &&
            same=$((same + 1))
        i=$((i + 1))
    done
    echo "replayed $o:$c $same/$REPLAYS to trace $trace"
    [ "$same" -eq "$REPLAYS" ] || { fails=$((fails + 1)); cat "$dir/replay.err" "$dir/replay.json"; }
}

if [ -z "$racy" ]; then
    c=$race/race-client-lost-update
    expect truth:backup-does-not-restore 200 pct:3 --plans clean \
        --restore-command "$c restore db {run}/m.bak 2" -- "$c" backup db '{run}/m.bak' 2
    [ -s "${decisions:-}" ] && cp "$decisions" "$dir/lost-update.sched" && cp "$plan" "$dir/lost-update.plan"
    c=$race/race-client-lost-wakeup
    expect ends:hang 600 pct:3 --plans clean -- "$c" backup db '{run}/m.bak' 2
    grep -q 'thread 0 pthread_cond_wait:wait' "$dir/out.json" ||
        { echo "FAILED: the hang does not name the main thread's wait"; fails=$((fails + 1)); }
    c=$race/race-client-complete-after-close
    printf 'abort after 2\n' >"$dir/abort.plan"
    expect "protocol:complete-after-close|protocol:call-after-close|use-after-close:SIGSEGV" 100 \
        pct:2 replay "$dir/abort.plan" -- "$c" backup db '{run}/m.bak' 2

    # Close before the device threads are joined: another device's GetCommand that the Close
    # overtakes (it began before the Close and reaches the library after it) is a call after
    # close, never a second concurrent GetCommand. The window is narrow: a run each of PCT
    # depth 3 seeds until one shows it (pct:3:25 of the first 25 did in ASan), then its plan
    # replayed 3 times to the same finding.
    c=$race/race-client-close-before-join
    seed=1 found=""
    while [ "$seed" -le 80 ] && [ -z "$found" ]; do
        rm -rf "$dir/f"
        "$vdichaos" client replay "$dir/abort.plan" --findings "$dir/f" --json --quiet --runs 1 \
            --sched "pct:3:$seed" -- "$c" backup db '{run}/m.bak' 2 >"$dir/out.json" 2>"$dir/err"
        grep -q 'concurrent-get' "$dir/out.json" &&
            { echo "FAILED: close-before-join pct:3:$seed: taken for a concurrent GetCommand"; fails=$((fails + 1)); break; }
        grep -q "GetCommand overtaken by the set's Close" "$dir/out.json" && found=pct:3:$seed
        seed=$((seed + 1))
    done
    if [ -n "$found" ]; then
        echo "found the overtaken GetCommand with $found"
        plan=$(ls "$dir/f/protocol-call-after-close-"*.plan | head -n 1)
        same=0
        for i in 1 2 3; do
            rm -rf "$dir/r"
            "$vdichaos" client replay "$plan" --findings "$dir/r" --json --quiet \
                -- "$c" backup db '{run}/m.bak' 2 >"$dir/replay.json" 2>"$dir/replay.err"
            grep -q "GetCommand overtaken by the set's Close" "$dir/replay.json" && same=$((same + 1))
        done
        echo "replayed the overtaken GetCommand $same/3"
        [ "$same" -eq 3 ] || { fails=$((fails + 1)); cat "$dir/replay.json"; }
    else
        echo "FAILED: close-before-join: no overtaken GetCommand in 80 PCT seeds"
        fails=$((fails + 1))
    fi
fi # the searches

if [ -n "$racy" ]; then
    ANY_TRACE=1 expect sanitizer:data-race 60 random --plans clean -- "$racy" backup db '{run}/m.bak' 4
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
# The client, the server it starts and their VDI waits are one session: fully controlled.
grep -q 'not controlled' "$dir/err" &&
    { echo "FAILED: the sample client's runs are not fully controlled"; cat "$dir/err"; fails=$((fails + 1)); }

# One client's decisions replayed against another client do not fit its run: said.
if [ -n "$racy" ]; then
    : # no search ran: no decisions to replay (above)
elif [ -s "$dir/lost-update.sched" ]; then
    "$vdichaos" client --findings "$dir/div" --json --plans clean --runs 1 \
        --sched "replay:$dir/lost-update.sched" -- "$sample" backup db '{run}/m.bak' \
        >"$dir/out.json" 2>"$dir/err"
    grep -q 'the decisions replayed do not fit this run (replay diverged)' "$dir/err" ||
        { echo "FAILED: a replay of another client's decisions is not said to diverge"; cat "$dir/err"; fails=$((fails + 1)); }
    # and the finding's own decisions, on its own client, fit
    c=$race/race-client-lost-update
    rm -rf "$dir/div"
    "$vdichaos" client replay "$dir/lost-update.plan" --findings "$dir/div" --json \
        --sched "replay:$dir/lost-update.sched" --restore-command "$c restore db {run}/m.bak 2" \
        -- "$c" backup db '{run}/m.bak' 2 >"$dir/out.json" 2>"$dir/err"
    rc=$?
    [ $rc -eq 1 ] && grep -q '"oracle":"truth","class":"backup-does-not-restore"' "$dir/out.json" &&
        ! grep -q 'replay diverged' "$dir/err" ||
        { echo "FAILED: the finding's own decisions (exit $rc) do not replay it without divergence"; cat "$dir/err"; fails=$((fails + 1)); }
else
    echo "FAILED: the lost update's decisions were not kept"
    fails=$((fails + 1))
fi

# Our server started by vdichaos (--statement): the client and the server, two processes
# started apart, are one declared session, fully controlled under every fault; a client's
# bug found there replays.
stmt="BACKUP DATABASE db TO VIRTUAL_DEVICE='{set}'"
"$vdichaos" client --findings "$dir/att" --json --plans sweep --faults abort,close --runs 10 \
    --sched pct:2:3 --statement "$stmt" --media '{run}/m.bak' -- "$race/attach-client" '{set}' \
    '{run}/m.bak' >"$dir/out.json" 2>"$dir/err"
rc=$?
if [ $rc -ne 0 ] || ! grep -q '"findings":\[\]' "$dir/out.json" || grep -q 'not controlled' "$dir/err"; then
    echo "FAILED: attach-client with --statement under --sched: exit $rc"
    cat "$dir/err"
    fails=$((fails + 1))
fi
[ -n "$racy" ] ||
    expect truth:success-after-failure 20 pct:2 --plans sweep --faults abort --statement "$stmt" \
    -- "$race/bad-client-attach-exit0" '{set}' '{run}/m.bak'

# Bad values: a message and exit 2.
for bad in pct pct:0:1 pct:9:1 pct:2 random random:x dfs:1 "pct:2:1:0" "random:1 2" replay: \
    "replay:$dir/none" "replay:$sample"; do
    "$vdichaos" client --sched "$bad" -- "$sample" backup db "$dir/x.bak" >/dev/null 2>"$dir/err"
    rc=$?
    [ $rc -eq 2 ] && grep -q -- '--sched' "$dir/err" ||
        { echo "FAILED: --sched '$bad' gave exit $rc"; cat "$dir/err"; fails=$((fails + 1)); }
done
echo "run_sched: $fails failed"
[ "$fails" -eq 0 ]
