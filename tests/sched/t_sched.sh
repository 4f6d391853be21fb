#!/bin/sh
# t_sched.sh LIB BINDIR: the controlled scheduler (libvdichaos_sched.so) on small programs
# with one interleaving bug each: PCT finds each bug within a seed budget, the finding's
# report replays to the same outcome and trace hash every time, the same seed gives the
# same trace, the correct program passes every seed with virtual time, and bad settings
# get a clear message. Exit 0 pass, 1 fail.
set -u
lib=$1 bin=$2
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# run SPEC PROGRAM [ARG...]: runs it under the scheduler; sets rc and trace (from the report).
run() {
    rc=0
    spec_=$1 prog_=$2
    shift 2
    rm -f "$tmp/report"
    LD_PRELOAD=$lib VDICHAOS_SCHED=$spec_ VDICHAOS_SCHED_OUT=$tmp/report "$bin/$prog_" "$@" \
        >"$tmp/out" 2>"$tmp/err" || rc=$?
    trace=$(sed -n 's/^trace //p' "$tmp/report" 2>/dev/null)
    steps=$(sed -n 's/^steps //p' "$tmp/report" 2>/dev/null)
}

# find PROGRAM WANT_RC DEPTH BUDGET: PCT seeds 1..BUDGET, the steps from a first run.
find_bug() {
    run random:0 "$1"
    k=${steps:-100}
    seed=1
    while [ "$seed" -le "$4" ]; do
        run "pct:$3:$seed:$k" "$1"
        if [ "$rc" -eq "$2" ]; then
            echo "$1: found by pct:$3:$seed:$k (rc $rc, trace $trace)"
            cp "$tmp/report" "$tmp/$1.found"
            return 0
        fi
        [ "$rc" -eq 0 ] || { fail "$1: pct:$3:$seed:$k exit $rc"; cat "$tmp/err"; return 1; }
        seed=$((seed + 1))
    done
    fail "$1: not found in $4 PCT seeds of depth $3"
    return 1
}

# The lost update and the late finish need one preemption (PCT depth 2); the lost wake-up
# two (the worker stopped after its bookkeeping, then the main thread at its wait).
# replay PROGRAM WANT_RC N: the saved finding, N times, same outcome and trace.
replay() {
    want=$(sed -n 's/^trace //p' "$tmp/$1.found")
    i=0
    while [ "$i" -lt "$3" ]; do
        run "replay:$tmp/$1.found" "$1"
        [ "$rc" -eq "$2" ] && [ "$trace" = "$want" ] || {
            fail "$1: replay $i gave rc $rc trace $trace, want rc $2 trace $want"
            cat "$tmp/err"
            return 1
        }
        grep -q '^replay diverged' "$tmp/report" && { fail "$1: replay diverged"; return 1; }
        i=$((i + 1))
    done
    echo "$1: replayed $3/$3 to trace $want"
}

for p in "sched-lost-update 1 2" "sched-lost-wakeup 86 3" "sched-late-finish 1 2"; do
    set -- $p
    find_bug "$1" "$2" "$3" 200 && replay "$1" "$2" 20
done

# The hang names each thread's blocking point.
if [ -f "$tmp/sched-lost-wakeup.found" ]; then
    grep -q '^outcome hang' "$tmp/sched-lost-wakeup.found" || fail "lost-wakeup: no hang outcome"
    grep -q '^blocked 0 pthread_cond_wait:wait' "$tmp/sched-lost-wakeup.found" ||
        fail "lost-wakeup: main's blocking point not reported"
fi

# The same seed twice: the same trace.
run pct:3:7:40 sched-lost-update; a=$trace
run pct:3:7:40 sched-lost-update; b=$trace
[ -n "$a" ] && [ "$a" = "$b" ] || fail "pct:3:7 gave traces '$a' and '$b'"
run random:9 sched-late-finish; a=$trace
run random:9 sched-late-finish; b=$trace
[ -n "$a" ] && [ "$a" = "$b" ] || fail "random:9 gave traces '$a' and '$b'"

# The correct program: every seed passes, timeouts fire in virtual time, fully controlled.
for spec in random:1 random:2 random:3 pct:1:1:60 pct:2:2:60 pct:3:3:60 pct:2:4:60; do
    run "$spec" sched-correct
    [ "$rc" -eq 0 ] || { fail "correct under $spec: exit $rc: $(cat "$tmp/out" "$tmp/err")"; continue; }
    grep -q '^controlled yes' "$tmp/report" || fail "correct under $spec: not fully controlled"
    grep -q '^outcome exit' "$tmp/report" || fail "correct under $spec: no exit outcome"
done

# What it cannot control is said: a signal delivered to a handler, a raw futex wait.
run random:1 sched-uncontrolled
[ "$rc" -eq 0 ] || fail "uncontrolled: exit $rc: $(cat "$tmp/out" "$tmp/err")"
grep -q '^controlled no' "$tmp/report" || fail "uncontrolled: reported as fully controlled"
grep -q '^uncontrolled a signal delivered to a handler 1' "$tmp/report" ||
    fail "uncontrolled: no signal delivered"
grep -q '^uncontrolled a raw futex wait 1' "$tmp/report" || fail "uncontrolled: no raw futex wait"
grep -q 'not fully controlled' "$tmp/err" || fail "uncontrolled: not said on stderr"

# ---- processes under one scheduler ----
# field NAME FILE: a report's line's value.
field() { sed -n "s/^$1 //p" "$2" | head -n 1; }

# A fork and an exec: the child goes on in the slot its parent reserved, its thread is
# scheduled with the parent's, the parent's waitpid is a schedule point; fully controlled,
# and the report replays to the same trace.
for spec in random:1 random:2 pct:2:1 pct:3:2; do
    run "$spec" sched-procs fork-exec
    [ "$rc" -eq 0 ] || { fail "fork-exec under $spec: exit $rc: $(cat "$tmp/out" "$tmp/err")"; continue; }
    grep -q '^controlled yes' "$tmp/report" || fail "fork-exec under $spec: not fully controlled"
    [ "$(field threads "$tmp/report")" = 3 ] || fail "fork-exec under $spec: the child's threads not seen"
done
cp "$tmp/report" "$tmp/fork.found"
want=$trace
for i in 1 2 3 4 5; do
    run "replay:$tmp/fork.found" sched-procs fork-exec
    [ "$rc" -eq 0 ] && [ "$trace" = "$want" ] || fail "fork-exec replay $i: rc $rc trace $trace, want $want"
done

# A child killed with the token: the session goes on without it.
run random:1 sched-procs die
[ "$rc" -eq 0 ] || fail "die: exit $rc: $(cat "$tmp/out" "$tmp/err")"

# A child started out of sight (system): said, and the run is not fully controlled.
run random:1 sched-procs system
[ "$rc" -eq 0 ] || fail "system: exit $rc: $(cat "$tmp/out" "$tmp/err")"
grep -q "^uncontrolled a process started out of the scheduler's sight 1" "$tmp/report" ||
    fail "system: the child out of sight is not reported"

# A thread blocked with the token where the scheduler does not see (a read of a pipe that
# another thread writes): the token is taken from it, and that is said.
run random:1 sched-procs pipe
[ "$rc" -eq 0 ] || fail "pipe: exit $rc: $(cat "$tmp/out" "$tmp/err")"
grep -q '^uncontrolled a call that blocked with the token 1' "$tmp/report" ||
    fail "pipe: the stolen token is not reported"

# A child slow to end after it left the session (a destructor that sleeps 1.5 s): its
# parent's wait waits for it 0.3 s (the arrival time), goes on, and says so.
rc=0
LD_PRELOAD=$lib VDICHAOS_SCHED=random:1 VDICHAOS_SCHED_ARRIVAL_MS=300 VDICHAOS_SCHED_OUT=$tmp/report \
    "$bin/sched-procs" slow-end 1500 >"$tmp/out" 2>"$tmp/err" || rc=$?
[ "$rc" -eq 0 ] || fail "slow-end: exit $rc: $(cat "$tmp/out" "$tmp/err")"
grep -q '^uncontrolled a process slow to end after it left 1' "$tmp/report" ||
    fail "slow-end: not reported: $(cat "$tmp/report")"
# The same child ending in time (the default 10 s): waited for, nothing to say.
run random:1 sched-procs slow-end 100
[ "$rc" -eq 0 ] || fail "slow-end 100: exit $rc: $(cat "$tmp/out" "$tmp/err")"
grep -q '^controlled yes' "$tmp/report" || fail "slow-end 100: not fully controlled: $(cat "$tmp/report")"

# A wrapper that waits for its child with sigsuspend (timeout(1)): its wait lets the token go.
if command -v timeout >/dev/null 2>&1; then
    rc=0
    LD_PRELOAD=$lib VDICHAOS_SCHED=random:1 VDICHAOS_SCHED_OUT=$tmp/report \
        timeout 60 "$bin/sched-procs" fork-exec >"$tmp/out" 2>"$tmp/err" || rc=$?
    [ "$rc" -eq 0 ] || fail "timeout fork-exec: exit $rc: $(cat "$tmp/err")"
    grep -q '^uncontrolled a wait for a signal' "$tmp/report" ||
        fail "timeout fork-exec: sigsuspend not reported"
fi

# Two processes started apart, one declared session (a file): a raw futex hand-off through
# shared memory is the scheduler's, the same seed gives the same trace, and a waiter the
# other process never wakes is a hang of the session (86), with its blocking point.
# pair MODE SPEC: sets rc0, rc1, trace.
pair() {
    rm -f "$tmp/session" "$tmp/word" "$tmp/report"
    LD_PRELOAD=$lib VDICHAOS_SCHED=$2 VDICHAOS_SCHED_SESSION=$tmp/session VDICHAOS_SCHED_PROCS=2 \
        VDICHAOS_SCHED_SLOT=0 VDICHAOS_SCHED_OUT=$tmp/report \
        "$bin/sched-procs" "$1" "$tmp/word" 0 >"$tmp/out0" 2>"$tmp/err0" &
    p0=$!
    rc1=0
    LD_PRELOAD=$lib VDICHAOS_SCHED=$2 VDICHAOS_SCHED_SESSION=$tmp/session VDICHAOS_SCHED_PROCS=2 \
        VDICHAOS_SCHED_SLOT=1 VDICHAOS_SCHED_OUT=$tmp/report \
        "$bin/sched-procs" "$1" "$tmp/word" 1 >"$tmp/out1" 2>"$tmp/err1" || rc1=$?
    rc0=0
    wait "$p0" || rc0=$?
    trace=$(field trace "$tmp/report")
}
for spec in random:1 pct:2:5 pct:2:5; do
    pair pair "$spec"
    [ "$rc0" -eq 0 ] && [ "$rc1" -eq 0 ] || fail "pair under $spec: exits $rc0 $rc1: $(cat "$tmp/err0" "$tmp/err1")"
    grep -q '^controlled yes' "$tmp/report" || fail "pair under $spec: not fully controlled"
    [ "$(field threads "$tmp/report")" = 2 ] || fail "pair under $spec: not one session"
done
a=$trace
pair pair pct:2:5
[ -n "$a" ] && [ "$trace" = "$a" ] || fail "pair pct:2:5 gave traces '$a' and '$trace'"
pair pair-lost random:1
[ "$rc0" -eq 86 ] && [ "$rc1" -eq 0 ] || fail "pair-lost: exits $rc0 $rc1, want 86 0"
grep -q '^outcome hang' "$tmp/report" || fail "pair-lost: no hang outcome"
grep -q '^blocked 0 futex_wait:wait (sched-procs)' "$tmp/report" ||
    fail "pair-lost: the waiter's blocking point not reported: $(cat "$tmp/report")"

# A declared session of two processes whose second never comes: given up at the arrival
# time (0.3 s here), said, and the first runs to its end.
rm -f "$tmp/session" "$tmp/report"
rc=0
LD_PRELOAD=$lib VDICHAOS_SCHED=random:1 VDICHAOS_SCHED_SESSION=$tmp/session VDICHAOS_SCHED_PROCS=2 \
    VDICHAOS_SCHED_SLOT=0 VDICHAOS_SCHED_ARRIVAL_MS=300 VDICHAOS_SCHED_OUT=$tmp/report \
    "$bin/sched-procs" alone >"$tmp/out" 2>"$tmp/err" || rc=$?
[ "$rc" -eq 0 ] || fail "alone: exit $rc: $(cat "$tmp/out" "$tmp/err")"
grep -q '^uncontrolled a process that did not come under the scheduler 1' "$tmp/report" ||
    fail "alone: the missing process is not reported: $(cat "$tmp/report")"

# Bad settings: a clear message, the program runs uncontrolled (and still works).
for bad in bogus pct:0:1 pct:9:1 pct:2 random: random:x "replay:$tmp/none"; do
    rc=0
    LD_PRELOAD=$lib VDICHAOS_SCHED=$bad "$bin/sched-lost-update" >/dev/null 2>"$tmp/err" || rc=$?
    grep -q 'vdi-sched: .*running uncontrolled' "$tmp/err" || fail "'$bad' not refused: $(cat "$tmp/err")"
    [ "$rc" -le 1 ] || fail "'$bad': exit $rc"
done
for bad in 0 -5 x 99999999999; do
    rc=0
    LD_PRELOAD=$lib VDICHAOS_SCHED=random:1 VDICHAOS_SCHED_ARRIVAL_MS=$bad "$bin/sched-lost-update" \
        >/dev/null 2>"$tmp/err" || rc=$?
    grep -q 'vdi-sched: VDICHAOS_SCHED_ARRIVAL_MS is not .*running uncontrolled' "$tmp/err" ||
        fail "arrival '$bad' not refused: $(cat "$tmp/err")"
    [ "$rc" -le 1 ] || fail "arrival '$bad': exit $rc"
done
printf 'trace 0\ndecisions 3\n0 1\n' >"$tmp/short"
printf 'decisions 2\n0 999\n' >"$tmp/range"
head -c 300 /dev/urandom >"$tmp/noise" 2>/dev/null || printf '\377\001' >"$tmp/noise"
for f in short range noise; do
    LD_PRELOAD=$lib VDICHAOS_SCHED=replay:$tmp/$f "$bin/sched-lost-update" >/dev/null 2>"$tmp/err"
    grep -q "vdi-sched: .*$f" "$tmp/err" || fail "replay of a $f list not refused: $(cat "$tmp/err")"
done

echo "t_sched: $fails failed"
[ "$fails" -eq 0 ]
