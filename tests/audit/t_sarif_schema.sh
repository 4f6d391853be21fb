#!/bin/sh
# The audit's SARIF against the SARIF 2.1.0 schema and rules, with Microsoft's SARIF
# Multitool (npm @microsoft/sarif-multitool, which ci/setup.sh installs): the SARIF of the
# real short audit and of the made-up one with a finding (both written by audit.report)
# validate with no error, and a copy broken on purpose (a version that is not 2.1.0, a
# result without its message) is refused. Exit 77 without the validator.
# Usage: t_sarif_schema.sh WORK_DIR (audit.report's)
set -u
work=$1
tool=${SARIF_MULTITOOL:-}
if [ -z "$tool" ] && command -v npm >/dev/null 2>&1; then
    tool=$(find "$(npm root -g 2>/dev/null)/@microsoft" -name Sarif.Multitool -type f 2>/dev/null | head -n 1)
fi
[ -n "$tool" ] && [ -x "$tool" ] || { echo "t_sarif_schema: no SARIF Multitool (npm @microsoft/sarif-multitool): skipped"; exit 77; }
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 DOTNET_CLI_TELEMETRY_OPTOUT=1
fail() { echo "t_sarif_schema: $*"; exit 1; }
out=$(mktemp -d "${TMPDIR:-/tmp}/t-sarif-XXXXXX") || exit 1
trap 'rm -rf "$out"' EXIT
validate() { # file: 0 when it was read and has no error (the tool exits 0 either way)
    "$tool" validate "$1" -o "$out/log.sarif" --log ForceOverwrite >"$out/log.txt" 2>&1
    grep -q '1 files scanned' "$out/log.txt" || fail "the validator did not run: $(tail -n 5 "$out/log.txt")"
    ! grep -q ': error ' "$out/log.txt"
}
for f in "$work/real/results.sarif" "$work/fx-good/results.sarif"; do
    [ -s "$f" ] || fail "$f is missing (audit.report writes it)"
    validate "$f" || fail "$f does not validate: $(grep ': error ' "$out/log.txt" | head -n 5)"
done
grep -q '"ruleId"' "$work/fx-good/results.sarif" || fail "the made-up audit's SARIF has no result to validate"
python3 - "$work/fx-good/results.sarif" "$out/broken.sarif" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
d["version"] = "9.9"
del d["runs"][0]["results"][0]["message"]
json.dump(d, open(sys.argv[2], "w"))
PY
validate "$out/broken.sarif" && fail "the validator passed a broken SARIF"
grep -q 'JSON1019\|JSON1017\|JSON1008' "$out/log.txt" || fail "the validator did not name the schema errors: $(head -n 5 "$out/log.txt")"
echo "t_sarif_schema: the audit's SARIF files validate against SARIF 2.1.0; a broken one does not"
