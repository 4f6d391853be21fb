#!/usr/bin/env bash
# The house linter: clang-format on every tracked C/C++ file, and greps that ban the
# mistakes we never want back (see STYLE.md). Prints each violation; exit 1 if any.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
bad=0
complain() { echo "lint: $*"; bad=1; }

files=$(git ls-files '*.c' '*.h' '*.cc' '*.cpp' '*.hpp')
if command -v clang-format >/dev/null 2>&1; then
    for f in $files; do
        clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || complain "$f: not clang-formatted (clang-format -i $f)"
    done
fi

# Determinism: no wall clock, libc randomness or sleeping in tests, targets or the engine.
# chaos/sched is exempt: it defines the virtual clock and sleeps that a program under the
# scheduler gets, and tests/sched's programs sleep only under it.
for f in $(git ls-files 'tests/*.c' 'tests/*.h' 'tests/*.cpp' 'fuzz/*.c' 'fuzz/*.h' 'chaos/*.c' 'chaos/*.h' |
           grep -vE '^(chaos/sched|tests/sched)/'); do
    grep -nE '(^|[^_a-zA-Z0-9.>])(rand|srand|random|time|sleep|usleep|nanosleep)[[:space:]]*\(' "$f" |
        grep -vE '^\s*[0-9]+:\s*(/\*|\*|//)' |
        sed "s|^|lint: $f:|;s|$|  (banned: rand/time/sleep in tests, targets and the engine)|" | grep . && bad=1
done

# ref/: atomics only through the atomics header; allocation only through the allocator seam.
for f in $(git ls-files 'ref/src/*.c' 'ref/src/*.h'); do
    case "$f" in ref/src/vdi_atomic.h) ;; *)
        grep -nE '__atomic_|__sync_|_Atomic|stdatomic\.h' "$f" |
            sed "s|^|lint: $f:|;s|$|  (atomics belong in ref/src/vdi_atomic.h)|" | grep . && bad=1 ;;
    esac
    grep -q 'vdi_alloc' "$f" 2>/dev/null && grep -qE '^[a-z].*\bvdi_alloc\(' "$f" && continue
    grep -nE '(^|[^_a-zA-Z0-9])(malloc|calloc|realloc|strdup)[[:space:]]*\(' "$f" |
        sed "s|^|lint: $f:|;s|$|  (allocate through vdi_alloc, which has a fail point)|" | grep . && bad=1
done

# The harness's atomic builtins go through chaos/include/chaos/atomics.h, where each memory
# order it uses is named (C11 <stdatomic.h> objects, sequentially consistent, are fine in
# the tests and targets that run real threads). tests/sched's programs stand in for a
# vendor's code and spell their own.
for f in $(git ls-files 'chaos/*.c' 'chaos/*.h' 'fuzz/*.c' 'fuzz/*.h' 'fuzz/*.cpp' 'tests/*.c' 'tests/*.h' 'tests/*.cpp' |
           grep -vxE 'chaos/include/chaos/atomics\.h|tests/sched/.*'); do
    grep -nE '__atomic_|__sync_' "$f" |
        sed "s|^|lint: $f:|;s|$|  (the harness's atomics belong in chaos/include/chaos/atomics.h)|" | grep . && bad=1
done

# Every acquire load and release store says what it pairs with ("pairs with ...", or "no
# reader in ..." for a word published for a peer's view), on its line or in the comment
# just above: an edge that names its other end can be checked by a reader, and one that
# does not is where a weakened order hides. The shared protocol (ref/src) and the
# scheduler of a client's threads (chaos/sched), where another process is the other end.
for f in $(git ls-files 'ref/src/*.c' 'ref/src/*.h' 'chaos/sched/*.c' | grep -vx 'ref/src/vdi_atomic.h'); do
    awk -v f="$f" '
        /^[[:space:]]*(\/\*|\*([[:space:]]|\/|$)|\/\/)/ { above = above " " $0; next }
        /vdi_(load_acquire|store_release|load_entry)\(|CHAOS_(LOAD_ACQUIRE|STORE_RELEASE|ADD_RELEASE|EXCHANGE_ACQUIRE|CAS_ACQ_REL)\(/ &&
        !/^[[:space:]]*#[[:space:]]*define/ {
            if ((above " " $0) !~ /pairs with|no reader in/)
                printf "lint: %s:%d: an acquire or release that does not say what it pairs with\n", f, NR
        }
        { above = "" }' "$f" | grep . && bad=1
done

# ref/ is standalone: it never includes the harness.
git grep -nE '#include "(\.\./)*(chaos|fuzz|tests)/' -- ref/ && complain "ref/ includes the harness"

# Each schedule point and fail point is named at one place only (vdi_seams.h): a finding,
# a decision list and a coverage count name the place by it.
for kind in VDI_SCHED VDI_FAIL; do
    git grep -ohE "$kind\(\"[^\"]*\"\)" -- 'ref/src/*.c' 'ref/src/*.h' | sort | uniq -d |
        sed "s|^|lint: ref/src: |;s|$|  (a point's name is used at one place only)|" | grep . && bad=1
done

# ref/src's internals are ref's own: the harness reaches ref through its public headers and
# the seams. The white-box exceptions, each for a reason: fuzz_peer (and fuzz_peer_fields.h,
# its forging table, which meta_layout_unlisted expands) forges the shared layout as a
# hostile peer would, unit_hostile and unit_access check it field by field, and
# unit_validate breaks each private invariant by hand to see it named.
git grep -lE '#include "(\.\./)*(ref/src/)?(vdi_internal|vdi_atomic|vdi_layout)\.h"' -- ':!ref/' |
    grep -vxE 'fuzz/fuzz_peer(_fields)?\.[ch]|tests/unit/t_(hostile|access|validate)\.c' |
    sed 's|^|lint: |;s|$|: includes ref/src internals (use the public headers and the seams)|' |
    grep . && bad=1

exit $bad
