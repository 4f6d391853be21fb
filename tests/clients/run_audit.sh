#!/bin/sh
# run_audit.sh EXPECT VDICHAOS [OPTIONS] -- CLIENT ARGS...: runs `vdichaos client` with the
# options on the client and checks its verdict. EXPECT is "clean" (exit 0, no finding) or
# ORACLE:CLASS (exit 1 with a finding of that oracle and class, whose saved plan replays
# to the same finding). MEDIA in the client's arguments or options is a file in a fresh
# directory; findings are saved there too.
set -u
expect=$1 vdichaos=$2
shift 2
dir=$(mktemp -d "${TMPDIR:-/tmp}/t-client-audit-XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT
args=""
for a in "$@"; do
    a=$(printf '%s' "$a" | sed "s|MEDIA|$dir/media.bak|g")
    q=$(printf '%s' "$a" | sed "s/'/'\\\\''/g")
    args="$args '$q'"
done
eval "set -- $args"
"$vdichaos" client --findings "$dir/findings" --json "$@" >"$dir/out.json" 2>"$dir/err"
rc=$?
show() { cat "$dir/err"; cat "$dir/out.json"; }
if [ "$expect" = clean ]; then
    if [ $rc -ne 0 ]; then
        echo "FAILED: want a clean audit, got exit $rc"
        show
        exit 1
    fi
    grep -q '"findings":\[\]' "$dir/out.json" || { echo "FAILED: findings in a clean audit"; show; exit 1; }
    tail -n 1 "$dir/err"
    exit 0
fi
# EXPECT may list alternatives (A|B): the one found is the one checked.
if [ $rc -eq 1 ]; then
    for alt in $(echo "$expect" | tr '|' ' '); do
        o=${alt%%:*} c=${alt#*:}
        grep -q "\"oracle\":\"$o\",\"class\":\"$c\"" "$dir/out.json" && expect=$alt && break
    done
fi
oracle=${expect%%:*} class=${expect#*:}
if [ $rc -ne 1 ] || ! grep -q "\"oracle\":\"$oracle\",\"class\":\"$class\"" "$dir/out.json"; then
    echo "FAILED: want a finding $oracle: $class, got exit $rc"
    show
    exit 1
fi
plan=$(ls "$dir/findings/$oracle-$class-"*.plan 2>/dev/null | head -n 1)
[ -n "$plan" ] || { echo "FAILED: the finding's plan was not saved"; show; exit 1; }
# The saved plan replays to the same finding (the same options; --plans is moot in replay).
# A plan fixes the server, not the client's own thread timing: a race may need a second
# try (six at most).
# A data race depends on the client's interleaving alone: its replay is not required.
[ "$class" = data-race ] && { grep "^FINDING" "$dir/err" | head -n 1; exit 0; }
for try in 1 2 3 4 5 6; do
    "$vdichaos" client replay "$plan" --findings "$dir/replayed" --json "$@" >"$dir/replay.json" \
        2>>"$dir/err"
    rrc=$?
    [ $rrc -eq 1 ] && grep -q "\"oracle\":\"$oracle\",\"class\":\"$class\"" "$dir/replay.json" && break
done
if [ $rrc -ne 1 ] || ! grep -q "\"oracle\":\"$oracle\",\"class\":\"$class\"" "$dir/replay.json"; then
    echo "FAILED: the saved plan $plan does not replay to $oracle: $class"
    show
    cat "$dir/replay.json"
    exit 1
fi
grep "^FINDING" "$dir/err" | head -n 1
tail -n 1 "$dir/err" | grep "runs in" || true
exit 0
