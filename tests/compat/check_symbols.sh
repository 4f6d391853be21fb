#!/bin/sh
# check_symbols.sh NM LIBRARY EXPECTED: every symbol listed in EXPECTED is defined in the
# dynamic symbol table of LIBRARY, no other member of the two classes is, and the
# reference's C API is not exported (libsqlvdi.so embeds it privately).
set -u
nm_bin=$1 lib=$2 want=$3
have=$("$nm_bin" -D --defined-only "$lib" | awk '{print $NF}') || { echo "nm failed on $lib"; exit 1; }
bad=0
expected=$(grep -v '^#' "$want" | grep .)
for sym in $expected; do
    printf '%s\n' "$have" | grep -qxF "$sym" || { echo "missing: $sym"; bad=1; }
done
for sym in $(printf '%s\n' "$have" | grep -E '^_ZN(19ClientVirtualDevice|22ClientVirtualDeviceSet)'); do
    printf '%s\n' "$expected" | grep -qxF "$sym" || { echo "unexpected: $sym"; bad=1; }
done
if printf '%s\n' "$have" | grep -q '^vdi_client_set_new$'; then
    echo "exported: the reference's C API (vdi_client_set_new)"; bad=1
fi
n=$(printf '%s\n' "$expected" | wc -l)
[ "$bad" -eq 0 ] && echo "all $n symbols present"
exit $bad
