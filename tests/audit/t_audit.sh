#!/bin/sh
# The audit report (ci/audit.sh, ci/audit_report.py), checked by check_report.py:
#  1. a real short audit on this build (no tests, fuzzing or coverage; few schedules): the
#     four files are sound and every scenario is in the schedule table;
#  2. a made-up raw folder with every part (a failed test whose ASan stack ends in ref/, a
#     seeded bug caught, a fuzz log, coverage): each part reaches the report, the failed
#     test's SARIF location is its first frame in the project's sources;
#  3. the check itself fails on a report made to break it (a remote link, a SARIF result
#     without a location), and hostile raw files (not XML, not JSON) give a report, not a crash.
# Usage: t_audit.sh BUILD_DIR SOURCE_DIR WORK_DIR
set -u
build=$1 src=$2 work=$3
check="python3 $src/tests/audit/check_report.py"
fail() { echo "t_audit: $*"; exit 1; }
rm -rf "$work" && mkdir -p "$work" || exit 1

# 1. the real thing, short
"$src/ci/audit.sh" --build-dir "$build" --minutes 0 --no-tests --no-coverage --pct-runs 30 \
    --dfs-runs 30 --out "$work/real" >"$work/real.log" 2>&1
rc=$?
[ $rc -le 1 ] || fail "ci/audit.sh exited $rc: $(tail -n 20 "$work/real.log")"
$check "$work/real" --expect-suite vdichaos.schedules.pct --expect-suite vdichaos.schedules.faults \
    --expect-text close-race --expect-text server-death || fail "the real report is not sound"
n=$("$build/chaos/vdichaos" list | wc -l)
rows=$(grep -c '^| [a-z-]* | 30 |' "$work/real/report.md")
[ "$rows" = "$n" ] || fail "report.md has $rows scenario rows, vdichaos lists $n"

# 2. every part, made up
raw=$work/fx/raw
mkdir -p "$raw/fuzz" "$raw/scenarios/close-race" "$work/fx/coverage" || exit 1
printf 'commit=0123abc\nversion=9.9.9\nbudget_minutes=1\n' >"$raw/meta.txt"
cat >"$raw/ctest-asan.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="(empty)" tests="3" failures="1">
 <testcase name="conf_api.codes" classname="conf_api.codes" time="0.5" status="run"><system-out></system-out></testcase>
 <testcase name="meta_peer_slot_reuse_accepted" classname="m" time="0.1" status="run"><system-out>==fuzz_peer== device 0: get_command delivered entry 1, which it must reject</system-out></testcase>
 <testcase name="conf_abort.sticky" classname="conf_abort.sticky" time="1.0" status="fail"><failure message="Failed"/><system-out>==1==ERROR: AddressSanitizer: heap-use-after-free
    #0 0x4a1b2c in memcpy /usr/lib/x.c:10
    #1 0x4a1b2d in vdi_server_close $src/ref/src/vdi_server.c:321
    #2 0x4a1b2e in main $src/tests/conformance/t_abort.c:40
</system-out></testcase>
</testsuite>
EOF
printf 'close-race two devices\n' >"$raw/scenarios.txt"
printf 'close-race: 30 pct runs (seeds 1..30), no finding\nPCT bound on having missed a bug, from n=4 actors and k=100 steps:\n  depth 1: per-run p >= 0.25, missed after 30 runs <= 0.0002\nexit 0\n' >"$raw/scenarios/close-race/pct.txt"
printf 'close-race: search complete: all 64 schedules with at most 1 preemptions, no finding\nexit 0\n' >"$raw/scenarios/close-race/dfs.txt"
printf 'close-race: 16 fail-point calls failed once, each run clean\nexit 0\n' >"$raw/scenarios/close-race/faults.txt"
printf 'target engine runs runs/s coverage new crashes\nfuzz_api libfuzzer 5000 2500 812edges 7 0\n' >"$raw/fuzz/table.txt"
printf '#2\tINITED cov: 500 ft: 600 corp: 10/1Kb exec/s: 2 rss: 30Mb\n#1024\tNEW cov: 700 ft: 900 corp: 20/2Kb lim: 4 exec/s: 1024 rss: 31Mb\n#5000\tDONE cov: 812 ft: 990 corp: 25/3Kb lim: 8 exec/s: 2500 rss: 32Mb\n' >"$raw/fuzz/fuzz_api.log"
cat >"$work/fx/coverage/coverage.json" <<'EOF'
{"data": [{"files": [{"filename": "ref/src/vdi_server.c", "summary": {"lines": {"count": 100, "covered": 91, "percent": 91.0}, "branches": {"count": 50, "covered": 40, "percent": 80.0}, "functions": {"count": 10, "covered": 10, "percent": 100.0}}}],
  "totals": {"lines": {"percent": 91.0}, "branches": {"percent": 80.0}, "functions": {"percent": 100.0}}}]}
EOF
printf 'ref/src/vdi_server.c:200-204\n' >"$work/fx/coverage/uncovered.txt"
python3 "$src/ci/audit_report.py" --raw "$raw" --source "$src" --out "$work/fx" >"$work/fx.log" 2>&1
rc=$?
[ $rc = 1 ] || fail "a report with a failed test exited $rc, not 1: $(cat "$work/fx.log")"
$check "$work/fx" --expect-rule "test-failure:ref/src/vdi_server.c:321" \
    --expect-suite vdichaos.tests.conf_api --expect-suite vdichaos.tests.conf_abort \
    --expect-suite vdichaos.fuzz --expect-text "<svg" --expect-text "91.0%" \
    --expect-text "ref/src/vdi_server.c:200-204" --expect-text "meta_peer_slot_reuse_accepted" \
    --expect-text "==fuzz_peer== device 0" --expect-text "1 of 1" --expect-text "0 of 1" ||
    fail "the made-up report lost a part"
rm -rf "$work/fx-good" && cp -r "$work/fx" "$work/fx-good" # for t_sarif_schema.sh, t_render.sh

# 3. the check has teeth; hostile input
cp -r "$work/fx" "$work/broken"
sed -i 's|</body>|<a href="https://example.invalid/x">x</a><a href="nowhere.html">y</a></body>|' "$work/broken/report.html"
python3 - "$work/broken/results.sarif" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
del d["runs"][0]["results"][0]["locations"]
json.dump(d, open(sys.argv[1], "w"))
EOF
out=$($check "$work/broken" 2>&1) && fail "the check passed a broken report"
for want in "a remote href" "a broken link to nowhere.html" "no location"; do
    case "$out" in *"$want"*) ;; *) fail "the check did not say '$want': $out" ;; esac
done
printf '<not xml' >"$raw/ctest-asan.xml"
printf '{' >"$work/fx/coverage/coverage.json"
python3 "$src/ci/audit_report.py" --raw "$raw" --source "$src" --out "$work/fx" >"$work/hostile.log" 2>&1
rc=$?
[ $rc = 1 ] || fail "hostile raw files: exit $rc: $(cat "$work/hostile.log")"
grep -q "does not parse" "$work/fx/report.md" || fail "the report does not say the ctest file is broken"
$check "$work/fx" >/dev/null || fail "the report of hostile raw files is not sound"
echo "t_audit: a real short audit and a made-up one of every part are sound; the check fails broken reports"
