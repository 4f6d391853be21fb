#!/bin/sh
# SARIF files against the SARIF 2.1.0 schema and rules, with Microsoft's SARIF Multitool
# (npm @microsoft/sarif-multitool, which ci/setup.sh installs; $SARIF_MULTITOOL overrides
# where it is). Prints every error. Exit 0 when each file validates, 1 when one does not,
# 2 when the validator did not run, 77 when it is not installed.
# Usage: ci/sarif_validate.sh FILE...      ci/sarif_validate.sh --which (prints the tool)
set -u
tool=${SARIF_MULTITOOL:-}
if [ -z "$tool" ] && command -v npm >/dev/null 2>&1; then
    tool=$(find "$(npm root -g 2>/dev/null)/@microsoft" -name Sarif.Multitool -type f 2>/dev/null | head -n 1)
fi
[ -n "$tool" ] && [ -x "$tool" ] || exit 77
if [ "${1:-}" = --which ]; then
    echo "$tool"
    exit 0
fi
[ $# -gt 0 ] || { echo "usage: ci/sarif_validate.sh FILE..." >&2; exit 2; }
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 DOTNET_CLI_TELEMETRY_OPTOUT=1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sarif-validate-XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
rc=0
for f in "$@"; do
    # The tool exits 0 whether or not the file has errors: its output says.
    "$tool" validate "$f" -o "$tmp/log.sarif" --log ForceOverwrite >"$tmp/log.txt" 2>&1
    if ! grep -q '1 files scanned' "$tmp/log.txt"; then
        echo "ci/sarif_validate.sh: the validator did not run on $f: $(tail -n 5 "$tmp/log.txt")" >&2
        exit 2
    fi
    if grep ': error ' "$tmp/log.txt"; then
        rc=1
    fi
done
exit $rc
