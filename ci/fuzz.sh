#!/usr/bin/env bash
# The main job (README): builds the fuzz targets, replays the corpora, fuzzes every target
# for a time budget with libFuzzer, merges new coverage back into corpora/<target>/seed/,
# stores new crashes under corpora/<target>/crash/ and prints a table. Exits non-zero on a
# new crash. Until fuzz targets exist it runs the reference's end-to-end demo instead.
#
# Usage: ci/fuzz.sh [--minutes M] [--target NAME] [--smoke] [--no-setup]
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here" || exit 2

minutes=3
only=""
smoke=0
do_setup=1
while [ $# -gt 0 ]; do
    case "$1" in
    --minutes) minutes=$2; shift 2 ;;
    --target) only=$2; shift 2 ;;
    --smoke) smoke=1; shift ;;
    --no-setup) do_setup=0; shift ;;
    -h | --help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "ci/fuzz.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
done
case "$minutes" in '' | *[!0-9.]*) echo "ci/fuzz.sh: --minutes wants a number" >&2; exit 2 ;; esac

out=build/fuzz-out
mkdir -p "$out"
if [ $do_setup = 1 ]; then
    # shellcheck source=ci/setup.sh
    . ci/setup.sh
    vdi_setup "$out" || exit 2
fi

# ---- before fuzz targets exist: the reference's end-to-end demo ----------------------------
demo() {
    echo "no fuzz targets yet: the reference demo, then vdichaos on every scenario"
    cmake --preset asan >"$out/configure.log" 2>&1 && cmake --build build/asan -j2 >"$out/build.log" 2>&1 ||
        { tail -n 30 "$out/build.log"; return 1; }
    local bin=build/asan/ref/tools set="demo-$$" data="$out/demo.dat"
    if [ ! -x "$bin/vdi-client" ] || [ ! -x "$bin/vdi-server" ]; then
        echo "vdi-client/vdi-server not built yet; running the test suite instead"
        ctest --test-dir build/asan -j2 --output-on-failure -LE known-failure
        return $?
    fi
    head -c $((16 << 20)) /dev/zero | tr '\0' 'v' >"$data.in"
    "$bin/vdi-client" backup "$set" "$data.bak" --timeout 20000 &
    local c=$!
    "$bin/vdi-server" backup "$set" "$data.in" --timeout 20000 || { wait $c; return 1; }
    wait $c || return 1
    "$bin/vdi-client" restore "$set" "$data.bak" --timeout 20000 &
    c=$!
    "$bin/vdi-server" restore "$set" "$data.out" --timeout 20000 || { wait $c; return 1; }
    wait $c || return 1
    cmp "$data.in" "$data.out" || return 1
    echo "demo: 16 MiB backed up and restored, byte-identical"
    # Schedule exploration of every scenario for the budget, PCT and random in turn.
    local chaos=build/asan/chaos/vdichaos runs sc status=0
    [ -x "$chaos" ] || return 0
    runs=$(awk -v m="$minutes" 'BEGIN { r = int(m * 60 * 300 / 4); print (r < 200 ? 200 : r) }')
    [ $smoke = 1 ] && runs=200
    for sc in $("$chaos" list | awk '{print $1}'); do
        for strategy in pct random; do
            "$chaos" run "$sc" --strategy "$strategy" --runs "$runs" --out "$out" 2>/dev/null |
                tail -n 6 || status=1
        done
    done
    return $status
}

targets() {
    [ -d build/fuzz/fuzz ] || return 0
    find build/fuzz/fuzz -maxdepth 1 -type f -name 'fuzz_*' ! -name '*_replay' -perm -u+x \
        -printf '%f\n' | sort |
        { if [ -n "$only" ]; then grep -x "$only"; else cat; fi; }
}

if [ ! -f fuzz/CMakeLists.txt ]; then
    demo
    exit $?
fi

cmake --preset fuzz >"$out/configure.log" 2>&1 && cmake --build build/fuzz -j2 >"$out/build.log" 2>&1 ||
    { tail -n 30 "$out/build.log"; exit 2; }
list=$(targets)
[ -n "$list" ] || { echo "ci/fuzz.sh: no target matches '${only:-*}'" >&2; exit 2; }
n=$(echo "$list" | wc -l)
if [ $smoke = 1 ]; then
    per=10
else
    per=$(awk -v m="$minutes" -v n="$n" 'BEGIN { s = int(m * 60 / n); print (s < 5 ? 5 : s) }')
fi

new_crashes=0
printf '%-14s %-10s %10s %8s %8s %6s %8s\n' target engine runs runs/s cov new crashes >"$out/table.txt"
for t in $list; do
    seed=corpora/$t/seed crash=corpora/$t/crash work=$out/$t
    mkdir -p "$seed" "$crash" "$work/corpus" "$work/artifacts"
    # Replay every stored input first: an old crash that reappears is a regression.
    if ls "$crash"/* >/dev/null 2>&1 || ls "$seed"/* >/dev/null 2>&1; then
        "build/fuzz/fuzz/$t" -runs=0 $(ls -d "$seed" "$crash" 2>/dev/null) >"$work/replay.log" 2>&1 ||
            { echo "$t: a stored input fails on replay (see $work/replay.log)"; new_crashes=$((new_crashes + 1)); }
    fi
    before=$(ls "$seed" | wc -l)
    dict=()
    [ -f "fuzz/$t.dict" ] && dict=(-dict="fuzz/$t.dict")
    "build/fuzz/fuzz/$t" "$work/corpus" "$seed" "${dict[@]}" -max_total_time="$per" \
        -artifact_prefix="$work/artifacts/" -print_final_stats=1 >"$work/fuzz.log" 2>&1
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$work/fuzz.log" | grep -oE '[0-9]+$' || echo 0)
    rate=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$work/fuzz.log" | grep -oE '[0-9]+$' || echo 0)
    cov=$(grep -oE 'cov: [0-9]+' "$work/fuzz.log" | tail -n 1 | grep -oE '[0-9]+' || echo 0)
    # Merge new coverage back into the seed corpus (set cover: only inputs that add edges);
    # a smoke run (from ci/test.sh) leaves the tree as it found it.
    [ $smoke = 1 ] || "build/fuzz/fuzz/$t" -merge=1 "$seed" "$work/corpus" >"$work/merge.log" 2>&1
    after=$(ls "$seed" | wc -l)
    found=0
    for a in "$work"/artifacts/crash-* "$work"/artifacts/timeout-* "$work"/artifacts/leak-* "$work"/artifacts/oom-*; do
        [ -f "$a" ] || continue
        min="$work/min-$(basename "$a")"
        "build/fuzz/fuzz/$t" -minimize_crash=1 -max_total_time=30 -exact_artifact_path="$min" "$a" \
            >"$work/minimize.log" 2>&1 || true
        [ -f "$min" ] || min=$a
        name=$(sha1sum "$min" | cut -c1-16)
        if [ $smoke = 1 ]; then
            echo "$t: crash found by the smoke run: $a"
            found=$((found + 1))
        elif [ ! -f "$crash/$name" ]; then
            cp "$min" "$crash/$name"
            found=$((found + 1))
            echo "$t: new crash stored as $crash/$name"
        fi
    done
    new_crashes=$((new_crashes + found))
    printf '%-14s %-10s %10s %8s %8s %6s %8s\n' "$t" libfuzzer "$runs" "$rate" "$cov" \
        $((after - before)) "$found" >>"$out/table.txt"
done
cat "$out/table.txt"
if [ $new_crashes -gt 0 ]; then
    echo "$new_crashes new crash(es): see corpora/*/crash/"
    exit 1
fi
