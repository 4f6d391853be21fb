#!/bin/sh
# run_shrink.sh VDICHAOS PLAN CLIENT: `vdichaos client shrink` reduces a three-fault finding
# of the exit-0-after-abort client to one fault at command 1, with no delay or BUFFERCOUNT,
# and the shrunk plan replays to the same finding.
set -u
vdichaos=$1 plan=$2 client=$3
dir=$(mktemp -d "${TMPDIR:-/tmp}/t-client-shrink-XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT
cp "$plan" "$dir/p.plan"
"$vdichaos" client shrink "$dir/p.plan" -- "$client" backup db "$dir/m.bak" 2>"$dir/err"
rc=$?
cat "$dir/err"
[ $rc -eq 1 ] || { echo "FAILED: shrink exit $rc, want 1"; exit 1; }
faults=$(grep -cE '^(abort|close|fail|die|pause|stall|clearerror) ' "$dir/p.plan.shrunk")
[ "$faults" = 1 ] || { echo "FAILED: $faults faults left"; cat "$dir/p.plan.shrunk"; exit 1; }
grep -qE '^(abort|close) after 1$' "$dir/p.plan.shrunk" || { echo "FAILED: not the earliest"; cat "$dir/p.plan.shrunk"; exit 1; }
grep -qE '^(delay|buffercount) ' "$dir/p.plan.shrunk" && { echo "FAILED: incidental settings kept"; exit 1; }
"$vdichaos" client replay "$dir/p.plan.shrunk" --findings "$dir/f" --json -- "$client" backup db \
    "$dir/m.bak" 2>/dev/null | grep -q '"class":"success-after-failure"' ||
    { echo "FAILED: the shrunk plan does not replay"; exit 1; }
