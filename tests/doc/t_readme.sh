#!/usr/bin/env bash
# The README doc test: every command in README.md's fenced sh blocks, in order, run in a
# scratch clone of HEAD, in one shell (so `&` and `wait` pair up). A command fails the test
# when its exit status is not 0, or not N when its line ends with `# doc-test: exit N`.
# The two set-up commands of the README's table come first, in their short forms:
# `ci/fuzz.sh --smoke`; `ci/test.sh` is skipped (it is what runs this test).
#
#   tests/doc/t_readme.sh [--short BUILD_DIR] [--readme FILE] [--source DIR]
#
# --short BUILD_DIR: the ctest form. The set-up commands, `cmake --preset`/`cmake --build`
# and `ctest` are skipped, and every build/<preset>/ path is read as BUILD_DIR/ (the tree
# the tests were built in): the commands as documented, on binaries built already.
# --readme FILE: a README other than the clone's (to prove the test can fail).
# --cxx "COMPILER FLAGS": with --short, what a README line's leading `c++` becomes: the
# build's compiler and sanitizer flags, so a client links against that build's libsqlvdi.
set -u
short=""
readme=""
cxx=""
src=$(cd "$(dirname "$0")/../.." && pwd)
while [ $# -gt 0 ]; do
    case "$1" in
    --short) short=$(cd "$2" && pwd); shift ;;
    --readme) readme=$(realpath "$2"); shift ;;
    --source) src=$(cd "$2" && pwd); shift ;;
    --cxx) cxx=$2; shift ;;
    *) echo "t_readme: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
scratch=$(mktemp -d "${TMPDIR:-/tmp}/vdi-doctest-XXXXXX")
trap 'rm -rf "$scratch"; rm -rf /tmp/vdi-demo-doctest-$$' EXIT
git clone -q "$src" "$scratch/clone" || { echo "t_readme: cannot clone $src"; exit 1; }
cd "$scratch/clone" || exit 1
[ -n "$readme" ] || readme=README.md

# the commands: the set-up table's, then every line of every ```sh block (backslash lines joined)
python3 - "$readme" "$short" "$cxx" >"$scratch/commands" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
short = sys.argv[2]
cxx = sys.argv[3]
cmds = []
sec = ""
inblock = False
buf = ""
for line in text.split("\n"):
    if line.startswith("## "):
        sec = line
    if not inblock and sec == "## Set up":
        m = re.match(r"^\|.*\|\s*`(ci/[^`]+)`\s*\|\s*$", line)
        if m:
            cmds.append(("setup", m.group(1)))
    if line.startswith("```"):
        inblock = (not inblock) and line.strip() in ("```sh", "```bash", "```shell")
        continue
    if inblock:
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        line, buf = buf + line, ""
        if line.strip() and not line.strip().startswith("#"):
            cmds.append(("cmd", line))
for kind, c in cmds:
    m = re.search(r"#.*\bdoc-test:\s*exit\s+(\d+)\s*$", c)
    want = m.group(1) if m else "0"
    if kind == "setup":
        if c.startswith("ci/test.sh"):
            c = "SKIP " + c
        elif c.startswith("ci/fuzz.sh"):
            c = ("SKIP " + c) if short else c + " --smoke"
    elif short:
        if re.match(r"^\s*(cmake --preset|cmake --build|ctest )", c):
            c = "SKIP " + c
        else:
            c = re.sub(r"\$PWD/build/(asan|tsan|release|fuzz|afl)/", short + "/", c)
            c = re.sub(r"(?<![\w/.-])build/(asan|tsan|release|fuzz|afl)/", short + "/", c)
            if cxx:
                c = re.sub(r"^(\s*)c\+\+ ", lambda m: m.group(1) + cxx + " ", c)
    print(want + "\t" + c.replace("\t", " "))
PY
[ -s "$scratch/commands" ] || { echo "t_readme: no commands found in $readme"; exit 1; }

# one shell runs them all, in order; each command's output goes to its own log
ncmd=$(wc -l <"$scratch/commands")
{
    echo 'export VDI_DOC_SCRATCH=1'
    i=0
    while IFS=$'\t' read -r want cmd; do
        i=$((i + 1))
        case "$cmd" in SKIP\ *) printf 'echo %q\n' "[$i/$ncmd] skipped: ${cmd#SKIP }"; continue ;; esac
        printf 'echo %q\n' "[$i/$ncmd] $cmd"
        printf '{ %s\n} >%q 2>&1\n' "$cmd" "$scratch/out.$i"
        printf 'rc=$?\nif [ "$rc" != %q ]; then echo %q; echo "exit status $rc, expected %s; its output:"; tail -n 40 %q; exit 1; fi\n' \
            "$want" "FAILED: command $i: $cmd" "$want" "$scratch/out.$i"
    done <"$scratch/commands"
    echo 'wait'
    printf 'echo %q\n' "all $ncmd README commands ran as documented"
} >"$scratch/run.sh"
bash "$scratch/run.sh"
