#!/usr/bin/env bash
# The long form of the client audit (tests/clients has the short one): every fault kind at
# every command index, on the correct example clients (which must stay clean) and on the
# gallery of broken clients (each must be found by its oracle), with the time to the
# first finding per broken client; the correct clients again with the scheduler of their
# own threads on (--sched), and the race clients found by it; and the plans per second of
# sweeps of the sample client on a 100-command backup (abort, close and fail; then every
# fault kind, --jobs 16). Prints one table; exit 1 when a correct client has a finding or
# a broken one is missed.
#
# Usage: ci/client_audit.sh [--build DIR (default build/release)] [--no-build]
#                           [--faults LIST (default all)] [--max-index N]
set -uo pipefail
cd "$(dirname "$0")/.."

dir=build/release
build=1
faults=all
maxi=""
while [ $# -gt 0 ]; do
    case "$1" in
    --build) dir=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --faults) faults=$2; shift 2 ;;
    --max-index) maxi="--max-index $2"; shift 2 ;;
    -h | --help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "ci/client_audit.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
done
if [ $build = 1 ]; then
    if [ ! -f "$dir/build.ninja" ]; then cmake --preset release -B "$dir" >/dev/null || exit 2; fi
    cmake --build "$dir" -j2 >/dev/null || exit 2
fi
tool=$PWD/$dir/chaos/vdichaos
ex=$PWD/$dir/ref/compat/example
bad=$PWD/$dir/tests/clients
work=$(mktemp -d "${TMPDIR:-/tmp}/client-audit-XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT
stmt="BACKUP DATABASE db TO VIRTUAL_DEVICE='{set}'"
fail=0
printf '%-30s %-8s %6s %8s  %s\n' client expect runs seconds verdict

# audit NAME EXPECT(clean|oracle:class) [OPTIONS] -- COMMAND...
audit() {
    local name=$1 expect=$2
    shift 2
    local out=$work/$name.json
    local first=""
    [ "$expect" != clean ] && first=--first
    # shellcheck disable=SC2086
    "$tool" client --plans sweep --faults "$faults" $maxi --hang-ms 10000 --pause-ms 1500 --server-timeout 2000 \
        --findings "$work/findings-$name" --json --quiet $first "$@" >"$out" 2>"$work/$name.err"
    local rc=$?
    local runs secs verdict
    runs=$(sed -n 's/.*"runs":\([0-9]*\),"seconds".*/\1/p' "$out")
    secs=$(sed -n 's/.*"seconds":\([0-9.]*\).*/\1/p' "$out")
    if [ "$expect" = clean ]; then
        if [ $rc = 0 ]; then verdict=clean; else verdict="FINDINGS (exit $rc)"; fail=1; fi
    else
        local o=${expect%%:*} c=${expect#*:}
        if [ $rc = 1 ] && grep -q "\"oracle\":\"$o\",\"class\":\"$c\"" "$out"; then
            verdict="found $expect"
        else
            verdict="MISSED $expect (exit $rc)"
            fail=1
        fi
    fi
    printf '%-30s %-8s %6s %8s  %s\n' "$name" "${expect%%:*}" "${runs:-?}" "${secs:-?}" "$verdict"
    [ "$verdict" = clean ] || [ "${verdict#found}" != "$verdict" ] || grep -h "^FINDING" -A2 "$work/$name.err" | head -20
}

# sched_audit NAME EXPECT RUNS [OPTIONS] -- COMMAND...: the clean plan under RUNS schedules
# of the client's own threads (--sched, PCT), for the race clients of tests/clients.
sched_audit() {
    local name=$1 expect=$2 runs=$3
    shift 3
    local out=$work/$name.json o=${expect%%:*} c=${expect#*:} verdict
    "$tool" client --plans clean --runs "$runs" --hang-ms 10000 --findings "$work/findings-$name" \
        --json --quiet "$@" >"$out" 2>"$work/$name.err"
    local rc=$?
    local n secs
    n=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sum(f["runs"] for f in d["findings"] if f["oracle"]+":"+f["class"]==sys.argv[2]))' "$out" "$expect" 2>/dev/null)
    secs=$(sed -n 's/.*"seconds":\([0-9.]*\).*/\1/p' "$out")
    if [ $rc = 1 ] && [ "${n:-0}" -gt 0 ]; then verdict="found $expect in $n runs"; else
        verdict="MISSED $expect (exit $rc)"
        fail=1
    fi
    printf '%-30s %-8s %6s %8s  %s\n' "$name" "$o" "$runs" "${secs:-?}" "$verdict"
}

audit sample clean --restore-command "$ex/vdi-sample-client restore db $work/m1" -- "$ex/vdi-sample-client" backup db "$work/m1"
audit sample-2dev clean -- "$ex/vdi-sample-client" backup db "$work/m2" 2
audit pipe clean --media "$work/pipe.bak" -- "$ex/vdi-pipe-client" backup db "$work/pipe.bak"
audit worker clean -- "$ex/vdi-worker-client" backup db "$work/worker.bak"
audit attach clean --statement "$stmt" --media "$work/att.bak" -- "$bad/attach-client" '{set}' "$work/att.bak"
audit exit0-after-abort truth:success-after-failure -- "$bad/bad-client-exit0-after-abort" backup db "$work/b1"
audit timeout-fatal truth:failed-benign -- "$bad/bad-client-timeout-fatal" backup db "$work/b2"
audit partial-media truth:partial-media --media "$work/b3" -- "$bad/bad-client-partial-media" backup db "$work/b3"
audit leak-set leftover:shm -- "$bad/bad-client-leak-set" backup db "$work/b4"
audit spin-on-abort ends:busy-loop -- "$bad/bad-client-spin-on-abort" backup db "$work/b5"
audit deadlock-at-abort ends:hang -- "$bad/bad-client-deadlock-at-abort" backup db "$work/b7"
audit trim-media truth:backup-does-not-restore --restore-command "$ex/vdi-sample-client restore db $work/b8" -- "$bad/bad-client-trim-media" backup db "$work/b8"
audit touch-after-close "crash:SIGSEGV" -- "$bad/bad-client-touch-after-close" backup db "$work/b9"
audit attach-exit0 truth:success-after-failure --statement "$stmt" -- "$bad/bad-client-attach-exit0" '{set}' "$work/b6"
# The correct clients under every fault with the scheduler on (each plan its own schedule),
# then the race clients, whose bugs only the scheduler finds (chaos/client/README.md).
audit sample-sched clean --sched pct:2:1 --jobs 8 -- "$ex/vdi-sample-client" backup db '{run}/m.bak'
audit worker-sched clean --sched pct:2:1 --jobs 8 -- "$ex/vdi-worker-client" backup db '{run}/m.bak'
r=$bad/race-client-lost-update
sched_audit race-lost-update truth:backup-does-not-restore 300 --sched pct:2:1 \
    --restore-command "$r restore db {run}/m.bak 2" -- "$r" backup db '{run}/m.bak' 2
sched_audit race-lost-wakeup ends:hang 300 --sched pct:2:9 -- "$bad/race-client-lost-wakeup" \
    backup db '{run}/m.bak' 2

# Speed: a sweep of abort, close and fail over a 1-device backup of about 100 commands.
"$tool" client --plans sweep --faults abort,close,fail --dbsize 6300000 --json --quiet \
    --findings "$work/findings-speed" -- "$ex/vdi-sample-client" backup db "$work/speed.bak" \
    >"$work/speed.json" 2>/dev/null
echo "sweep of the sample client (abort, close, fail; ~100 commands): $(sed -n 's/.*"runs":\([0-9]*\),"seconds":\([0-9.]*\),"plans_per_second":\([0-9.]*\).*/\1 plans in \2 s, \3 plans\/s/p' "$work/speed.json")"
# The target: the full single-fault sweep (every fault kind, pauses and stalls too) of the
# same backup in under 2 minutes on one core, its waiting plans side by side (--jobs 16).
taskset -c 0 "$tool" client --plans sweep --dbsize 6300000 --jobs 16 --json --quiet \
    --findings "$work/findings-full" --restore-command "$ex/vdi-sample-client restore db {run}/full.bak" \
    -- "$ex/vdi-sample-client" backup db '{run}/full.bak' >"$work/full.json" 2>/dev/null || fail=1
echo "full single-fault sweep of the sample client (~100 commands, --jobs 16, one core): $(sed -n 's/.*"runs":\([0-9]*\),"seconds":\([0-9.]*\),"plans_per_second":\([0-9.]*\).*/\1 plans in \2 s, \3 plans\/s/p' "$work/full.json") (target: under 120 s)"
exit $fail
