#!/bin/sh
# The audit's SARIF against the SARIF 2.1.0 schema and rules (ci/sarif_validate.sh, with
# Microsoft's SARIF Multitool): the SARIF of the real short audit and of the made-up one
# with a finding (both written by audit.report) validate with no error, and a copy broken
# on purpose (a version that is not 2.1.0, a result without its message) is refused.
# Exit 77 without the validator.
# Usage: t_sarif_schema.sh SOURCE_DIR WORK_DIR (audit.report's)
set -u
src=$1 work=$2
validate="sh $src/ci/sarif_validate.sh"
fail() { echo "t_sarif_schema: $*"; exit 1; }
$validate --which >/dev/null || { echo "t_sarif_schema: no SARIF Multitool (npm @microsoft/sarif-multitool): skipped"; exit 77; }
out=$(mktemp -d "${TMPDIR:-/tmp}/t-sarif-XXXXXX") || exit 1
trap 'rm -rf "$out"' EXIT
for f in "$work/real/results.sarif" "$work/fx-good/results.sarif"; do
    [ -s "$f" ] || fail "$f is missing (audit.report writes it)"
    msg=$($validate "$f" 2>&1) || fail "$f does not validate: $(echo "$msg" | head -n 5)"
done
grep -q '"ruleId"' "$work/fx-good/results.sarif" || fail "the made-up audit's SARIF has no result to validate"
python3 - "$work/fx-good/results.sarif" "$out/broken.sarif" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
d["version"] = "9.9"
del d["runs"][0]["results"][0]["message"]
json.dump(d, open(sys.argv[2], "w"))
PY
msg=$($validate "$out/broken.sarif" 2>&1)
rc=$?
[ $rc = 1 ] || fail "the validator answered $rc on a broken SARIF, not 1: $msg"
case "$msg" in *JSON1019* | *JSON1017* | *JSON1008*) ;; *) fail "the validator did not name the schema errors: $msg" ;; esac
echo "t_sarif_schema: the audit's SARIF files validate against SARIF 2.1.0; a broken one does not"
