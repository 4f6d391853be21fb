#!/bin/sh
# CMakePresets.json: the workflow presets test, fuzz and audit are there (as cmake lists
# them), each configures, builds and tests with presets that exist, and the fuzz and audit
# test presets select their labels.
# Usage: t_presets.sh SOURCE_DIR
set -u
cd "$1" || exit 1
fail() { echo "t_presets: $*"; exit 1; }
list=$(cmake --list-presets=workflow 2>&1) || fail "cmake --list-presets=workflow: $list"
for w in test fuzz audit; do
    case "$list" in *"\"$w\""*) ;; *) fail "no workflow preset '$w': $list" ;; esac
done
python3 - <<'PY' || exit 1
import json, sys
d = json.load(open("CMakePresets.json"))
kinds = {"configure": "configurePresets", "build": "buildPresets", "test": "testPresets"}
names = {k: {p["name"] for p in d.get(v, [])} for k, v in kinds.items()}
for w in d.get("workflowPresets", []):
    steps = [s["type"] for s in w["steps"]]
    if steps != ["configure", "build", "test"]:
        sys.exit("t_presets: workflow %s has steps %s" % (w["name"], steps))
    for s in w["steps"]:
        if s["name"] not in names[s["type"]]:
            sys.exit("t_presets: workflow %s names no %s preset %s" % (w["name"], s["type"], s["name"]))
tests = {p["name"]: p for p in d["testPresets"]}
for want, label in (("audit", "^audit$"), ("fuzz", "^corpus$")):
    got = tests.get(want, {}).get("filter", {}).get("include", {}).get("label")
    if got != label:
        sys.exit("t_presets: test preset %s selects label %r, not %r" % (want, got, label))
PY
echo "t_presets: workflow presets test, fuzz and audit are sound"
