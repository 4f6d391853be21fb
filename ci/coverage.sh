#!/usr/bin/env bash
# Line, branch and function coverage of ref/ by the whole test suite (clang source-based
# coverage): builds the coverage preset, runs its ctest with every process writing a
# profile (child processes too: vdi-server, vdi-sqlcmd, the example clients), merges them
# and writes, under OUT:
#   coverage.json   llvm-cov export -summary-only, ref/ files only, paths relative to the
#                   source root (what ci/audit_report.py reads)
#   summary.txt     llvm-cov report: lines, branches, functions per ref/ file
#   html/           llvm-cov show -format=html -show-branches=count of ref/
#   uncovered.txt   the line ranges of ref/ never executed, one "FILE:START-END" a line
# A failed test does not stop the measurement (their number is printed). The last line:
#   coverage of ref/: L% lines, B% branches, F% functions (N files); report in OUT
#
# Usage: ci/coverage.sh [--build-dir DIR] [--out DIR]   (build/coverage, build/coverage-report)
#                       [--report-only]   (no build, no tests: report on the profiles in OUT/prof)
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd -P)
build=build/coverage
out=build/coverage-report
run=1
while [ $# -gt 0 ]; do
    case "$1" in
    --build-dir) build=${2:?--build-dir needs a directory}; shift 2 ;;
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --report-only) run=0; shift ;;
    -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "ci/coverage.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
done
# Relative paths are taken from the caller's directory; everything below runs in the root.
case "$build" in /*) ;; *) build=$PWD/$build ;; esac
case "$out" in /*) ;; *) out=$PWD/$out ;; esac
cd "$here" || exit 2
# shellcheck source=ci/junit_count.sh
. ci/junit_count.sh

profdata=${LLVM_PROFDATA:-llvm-profdata-14}
cov=${LLVM_COV:-llvm-cov-14}
for t in "$profdata" "$cov" python3; do
    if ! command -v "$t" >/dev/null 2>&1; then
        echo "ci/coverage.sh: '$t' is not on PATH (apt-get install llvm-14; or set LLVM_PROFDATA/LLVM_COV)" >&2
        exit 2
    fi
done

log=$out/logs
mkdir -p "$out" "$log"
rm -rf "$out/html"
jobs=$(nproc 2>/dev/null || echo 2)
t0=$(date +%s)
total=0
failed=0
skipped=0
if [ $run = 1 ]; then
    rm -rf "$out/prof"
    mkdir -p "$out/prof"

    # ---- build ------------------------------------------------------------------------------------
    echo "== configure and build ($build)"
    if [ "$build" = "$here/build/coverage" ]; then
        cmake --preset coverage >"$log/configure.log" 2>&1
    else
        cmake --preset coverage -B "$build" >"$log/configure.log" 2>&1
    fi || {
        tail -n 30 "$log/configure.log"
        echo "ci/coverage.sh: configure failed (log: $log/configure.log)" >&2
        exit 1
    }
    if ! cmake --build "$build" -j "$jobs" >"$log/build.log" 2>&1; then
        grep -E 'error|Error' "$log/build.log" | head -n 30
        echo "ci/coverage.sh: build failed (log: $log/build.log)" >&2
        exit 1
fi

# ---- run the tests, every process writing its own profile -------------------------------------
echo "== ctest (profiles in $out/prof)"
LLVM_PROFILE_FILE="$out/prof/%p-%m.profraw" \
    ctest --test-dir "$build" -j2 --timeout 120 --no-tests=error -LE known-failure \
    --output-junit "$log/ctest.xml" >"$log/ctest.log" 2>&1
ctest_rc=$?
read -r total failed skipped < <(junit_count "$log/ctest.xml")
if [ "$total" = 0 ]; then
    tail -n 20 "$log/ctest.log"
    echo "ci/coverage.sh: no test ran (ctest rc $ctest_rc)" >&2
    exit 1
fi
echo "ctest: $((total - failed - skipped)) passed, $failed failed, $skipped skipped (log: $log/ctest.log)"
sed -n '/The following tests FAILED:/,$p' "$log/ctest.log" | grep -E '^[[:space:]]+[0-9]+ - ' | head -n 20
fi

# ---- merge ------------------------------------------------------------------------------------
nraw=$(find "$out/prof" -name '*.profraw' 2>/dev/null | wc -l)
echo "== merge $nraw profiles"
if [ "$nraw" = 0 ]; then
    echo "ci/coverage.sh: no profile was written: is $build a coverage build?" >&2
    exit 1
fi
find "$out/prof" -name '*.profraw' >"$log/profraw.list"
# A profile cut short (a process killed while writing it) is dropped, not fatal.
if ! "$profdata" merge -sparse -failure-mode=all -f "$log/profraw.list" -o "$out/coverage.profdata" \
    >"$log/merge.log" 2>&1; then
    tail -n 20 "$log/merge.log"
    echo "ci/coverage.sh: llvm-profdata merge failed" >&2
    exit 1
fi
grep -c -i 'warning' "$log/merge.log" | sed 's/^/merge warnings: /' | grep -v ': 0$'

# ---- the instrumented binaries ------------------------------------------------------------------
# Every executable and shared library of the build tree with a coverage map, but tests/meta:
# those link scratch copies of ref/src with seeded bugs (built in the build tree, so their
# files are not under ref/ anyway).
objects=()
while read -r f; do
    case "$f" in "$build"/tests/meta/*) continue ;; esac
    head -c 4 "$f" 2>/dev/null | grep -q 'ELF' || continue
    readelf -S "$f" 2>/dev/null | grep -q __llvm_covmap || continue
    [ ${#objects[@]} = 0 ] && objects+=("$f") || objects+=(-object "$f")
done < <(find "$build" -type f \( -perm -u+x -o -name '*.so' -o -name '*.so.*' \) ! -path '*/CMakeFiles/*' | sort)
if [ ${#objects[@]} = 0 ]; then
    echo "ci/coverage.sh: no instrumented binary under $build" >&2
    exit 1
fi
echo "== report on $(( (${#objects[@]} + 1) / 2 )) binaries"

# The ref/ sources, absolute (as the coverage maps name them).
mapfile -t sources < <(find "$here/ref" -type f \( -name '*.c' -o -name '*.h' -o -name '*.cpp' -o -name '*.hpp' \
    -o -name '*.cc' -o -name '*.hh' \) | sort)
common=(-instr-profile "$out/coverage.profdata" "${objects[@]}")

"$cov" export -summary-only "${common[@]}" "${sources[@]}" >"$out/coverage.raw.json" 2>"$log/export.log" || {
    cat "$log/export.log"
    echo "ci/coverage.sh: llvm-cov export failed" >&2
    exit 1
}
"$cov" report -show-branch-summary "${common[@]}" "${sources[@]}" >"$out/summary.txt" 2>"$log/report.log"
"$cov" show -format=html -show-branches=count -show-line-counts-or-regions \
    -output-dir="$out/html" -project-title="vdichaos ref/" "${common[@]}" "${sources[@]}" \
    2>"$log/html.log"
"$cov" show -format=text "${common[@]}" "${sources[@]}" >"$out/show.txt" 2>"$log/show.log"

# The HTML names each page after its absolute path (html/coverage/<root>/ref/...): move the
# pages to html/coverage/ref/..., name the files from the source root, and mend the links.
python3 - "$here" "$out/html" <<'EOF_HTML' || { echo "ci/coverage.sh: the HTML could not be mended" >&2; exit 1; }
import os, re, shutil, sys
root, html = sys.argv[1].rstrip("/"), sys.argv[2]
nested = os.path.join(html, "coverage") + root
flat = os.path.join(html, "coverage")
if os.path.isdir(nested):
    for name in os.listdir(nested):
        dst = os.path.join(flat, name)
        shutil.rmtree(dst, ignore_errors=True)
        shutil.move(os.path.join(nested, name), dst)
    top = os.path.join(flat, root.strip("/").split("/")[0])
    shutil.rmtree(top, ignore_errors=True)
for d, _, files in os.walk(html):
    for n in files:
        if not n.endswith(".html"):
            continue
        p = os.path.join(d, n)
        text = open(p, errors="replace").read()
        text = text.replace("coverage" + root + "/", "coverage/").replace(root + "/", "")
        up = "../" * (os.path.relpath(p, html).count("/"))
        text = re.sub(r"href='(\.\./)*style\.css'", "href='%sstyle.css'" % up, text)
        open(p, "w").write(text)
EOF_HTML

# ---- post-process: relative paths, uncovered ranges, the totals line ----------------------------
if ! python3 - "$here" "$out" <<'EOF'
import json, os, re, sys

root, out = sys.argv[1].rstrip("/") + "/", sys.argv[2]

def rel(p):
    return p[len(root):] if p.startswith(root) else p

with open(os.path.join(out, "coverage.raw.json")) as f:
    data = json.load(f)
nfiles = 0
for blob in data.get("data", []):
    for fl in blob.get("files", []):
        fl["filename"] = rel(fl.get("filename", ""))
        nfiles += 1
with open(os.path.join(out, "coverage.json"), "w") as f:
    json.dump(data, f, indent=1)
    f.write("\n")
os.remove(os.path.join(out, "coverage.raw.json"))

# summary.txt: llvm-cov names the files after their longest common prefix; name them from
# the source root instead (the name column widened by what is put back).
names = [fl["filename"] for blob in data.get("data", []) for fl in blob.get("files", [])]
path = os.path.join(out, "summary.txt")
with open(path) as f:
    lines = f.read().replace(root, "").splitlines()
pre = os.path.commonpath(names) + "/" if len(names) > 1 else ""
if pre and any(ln.split(" ", 1)[0] in names for ln in lines):
    pre = ""  # llvm-cov already named them in full
fixed = []
for ln in lines:
    head = ln.split(" ", 1)[0]
    if pre and pre + head in names:
        ln = pre + ln
    elif pre and head in ("Filename", "TOTAL"):
        ln = head + " " * len(pre) + ln[len(head):]
    elif pre and ln.startswith("---"):
        ln = "-" * len(pre) + ln
    fixed.append(ln)
with open(path, "w") as f:
    f.write("".join(ln + "\n" for ln in fixed))

# uncovered.txt from llvm-cov show's text: "FILE:" headers, then "  LINE|  COUNT|source".
# A run of lines whose count is 0, lines without a count (blank, comments) not breaking it.
ranges = []
cur = None
start = end = None
line_re = re.compile(r"^\s*(\d+)\|\s*([0-9.]+[kMGTPEZY]?)?\|")

def flush():
    global start, end
    if cur is not None and start is not None:
        ranges.append("%s:%d-%d" % (cur, start, end))
    start = end = None

with open(os.path.join(out, "show.txt"), errors="replace") as f:
    for ln in f:
        ln = ln.rstrip("\n")
        if ln.startswith("/") and ln.endswith(":") and "|" not in ln:
            flush()
            cur = rel(ln[:-1])
            continue
        m = line_re.match(ln)
        if not m or cur is None:
            continue
        n, count = int(m.group(1)), m.group(2)
        if count is None:
            continue
        if count == "0":
            if start is None:
                start = n
            end = n
        else:
            flush()
flush()
with open(os.path.join(out, "uncovered.txt"), "w") as f:
    f.write("".join(r + "\n" for r in ranges))
os.remove(os.path.join(out, "show.txt"))

t = data["data"][0]["totals"] if data.get("data") else {}
pc = lambda k: t.get(k, {}).get("percent", 0.0)
with open(os.path.join(out, "totals.txt"), "w") as f:
    f.write("%.1f %.1f %.1f %d %d\n" % (pc("lines"), pc("branches"), pc("functions"), nfiles, len(ranges)))
EOF
then
    echo "ci/coverage.sh: post-processing failed" >&2
    exit 1
fi

read -r lp bp fp nfiles nranges <"$out/totals.txt"
rm -f "$out/totals.txt"
[ $run = 1 ] && echo "tests: $failed of $total failed"
echo "uncovered ranges: $nranges (uncovered.txt); $(($(date +%s) - t0)) s"
echo "coverage of ref/: $lp% lines, $bp% branches, $fp% functions ($nfiles files); report in $out"
