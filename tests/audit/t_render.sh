#!/bin/sh
# The audit report as a reader sees it: opened in headless Chromium (check_render.py), the
# report of the real short audit and the made-up one (with its fuzzing plot; both written
# by audit.report) render, not blank, with their plot and no broken link; copies broken on
# purpose (the plot gone, links to nowhere and to the network, an empty page) are refused.
# Exit 77 without Chromium.
# Usage: t_render.sh SOURCE_DIR WORK_DIR (audit.report's)
set -u
src=$1 work=$2
browser=
for b in chromium chromium-browser google-chrome; do
    command -v "$b" >/dev/null 2>&1 && { browser=$b; break; }
done
[ -n "$browser" ] || { echo "t_render: no Chromium: skipped"; exit 77; }
check="python3 $src/tests/audit/check_render.py $browser"
fail() { echo "t_render: $*"; exit 1; }
out=$(mktemp -d "${TMPDIR:-/tmp}/t-render-XXXXXX") || exit 1
trap 'rm -rf "$out"' EXIT
for f in "$work/real/report.html" "$work/fx-good/report.html"; do
    [ -s "$f" ] || fail "$f is missing (audit.report writes it)"
done
$check "$work/real/report.html" || fail "the real audit's report does not render soundly"
$check "$work/fx-good/report.html" --want-plot --shot "$out/fx.png" ||
    fail "the made-up audit's report does not render soundly"
[ -s "$out/fx.png" ] || fail "no screenshot"

# teeth
cp -r "$work/fx-good" "$out/noplot"
python3 - "$out/noplot/report.html" <<'PY'
import re, sys
p = sys.argv[1]
s = open(p).read()
open(p, "w").write(re.sub(r"<svg\b.*?</svg>", "", s, flags=re.S))
PY
msg=$($check "$out/noplot/report.html" --want-plot) && fail "a report without its plot passed"
case "$msg" in *"no plot"*) ;; *) fail "the plot's absence was not named: $msg" ;; esac
cp -r "$work/fx-good" "$out/links"
sed -i 's|</body>|<a href="#nowhere">a</a><img src="missing.png"><script src="https://example.invalid/x.js"></script></body>|' \
    "$out/links/report.html"
msg=$($check "$out/links/report.html") && fail "a report with broken links passed"
for want in "#nowhere" "missing.png" "to the network"; do
    case "$msg" in *"$want"*) ;; *) fail "not named: '$want': $msg" ;; esac
done
printf '<!doctype html><html><body></body></html>\n' >"$out/empty.html"
msg=$($check "$out/empty.html") && fail "an empty page passed"
case "$msg" in *blank*) ;; *) fail "the empty page was not called blank: $msg" ;; esac
echo "t_render: both reports render in $browser with their plot and no broken link; broken copies are refused"
