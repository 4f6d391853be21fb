#!/bin/sh
# cmake --install of a built tree into a scratch prefix, then an outside project built
# against it both ways: find_package(vdiref) (static, shared and SDK targets) and
# pkg-config (vdiref, sqlvdi); each program runs. Also: the SONAMEs (libvdiref.so.MAJOR;
# libsqlvdi.so unversioned, as the SDK's programs need it) and every tool's --version.
# Usage: t_install.sh BUILD_DIR SOURCE_DIR WORK_DIR VERSION
set -u
build=$1 src=$2 work=$3 version=$4
fail() { echo "t_install: $*"; exit 1; }
rm -rf "$work" && mkdir -p "$work" || exit 1
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1 || fail "install: $(tail -n 5 "$work/install.log")"
lib=$prefix/lib
for f in bin/vdi-client bin/vdi-server bin/vdi-sqlcmd bin/vdichaos include/vdi/vdi.h \
    include/sqlvdi/vdi.h include/sqlvdi/vdierror.h lib/libvdiref.a lib/libsqlvdi.so \
    lib/cmake/vdiref/vdirefConfig.cmake lib/pkgconfig/vdiref.pc lib/pkgconfig/sqlvdi.pc; do
    [ -e "$prefix/$f" ] || fail "not installed: $f"
done
command -v readelf >/dev/null 2>&1 || { echo "t_install: no readelf (binutils): skipped"; exit 77; }
major=${version%%.*}
soname() { readelf -d "$1" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p'; }
[ "$(soname "$lib/libvdiref.so")" = "libvdiref.so.$major" ] || fail "libvdiref.so's SONAME is '$(soname "$lib/libvdiref.so")'"
[ "$(soname "$lib/libsqlvdi.so")" = "libsqlvdi.so" ] || fail "libsqlvdi.so's SONAME is '$(soname "$lib/libsqlvdi.so")'"
for t in vdi-client vdi-server vdi-sqlcmd vdichaos; do
    out=$("$prefix/bin/$t" --version 2>&1) || fail "$t --version exited $?: $out"
    case "$out" in *"$version"*) ;; *) fail "$t --version says '$out', not $version" ;; esac
done

# The installed vdichaos on its own (no option, no environment) plays the installed
# vdi-sqlcmd with the installed libsqlvdi.so, and says so; a --lib without the library is a
# usage error.
c++ -o "$work/sample" "$src/ref/compat/example/sample_client.cpp" -I"$prefix/include/sqlvdi" \
    -L"$lib" -lsqlvdi -lpthread 2>"$work/sample.log" || fail "c++ sample client: $(cat "$work/sample.log")"
(cd "$work" && env -u VDICHAOS_SQLCMD -u VDICHAOS_LIB "$prefix/bin/vdichaos" client --json \
    --quiet --findings "$work/direct.findings" -- "$work/sample" backup db "$work/direct.bak") \
    >"$work/direct.json" 2>"$work/direct.err" || fail "installed vdichaos client: $(cat "$work/direct.err" "$work/direct.json")"
grep -q "\"sqlcmd\":\"$prefix/bin/vdi-sqlcmd\",\"lib\":\"$prefix/bin/../lib\"" "$work/direct.json" ||
    fail "installed vdichaos did not use the installed server and library: $(cat "$work/direct.json")"
"$prefix/bin/vdichaos" client --lib "$work" -- "$work/sample" backup db x >"$work/nolib.out" 2>&1
rc=$?
[ $rc -eq 2 ] && grep -q "no readable libsqlvdi.so in $work" "$work/nolib.out" ||
    fail "--lib without the library: exit $rc, $(cat "$work/nolib.out")"

# find_package(vdiref), and find_package(vdichaos) with vdichaos_add_client_audit
cmake -S "$src/tests/install/consumer" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$prefix" \
    -DSAMPLE_CLIENT_SOURCE="$src/ref/compat/example/sample_client.cpp" \
    -DBAD_CLIENT_SOURCE="$src/tests/clients/bad_client.cpp" \
    >"$work/consumer.log" 2>&1 || fail "consumer configure: $(tail -n 10 "$work/consumer.log")"
cmake --build "$work/consumer" >>"$work/consumer.log" 2>&1 || fail "consumer build: $(tail -n 10 "$work/consumer.log")"
for p in consumer_c consumer_shared consumer_sdk; do
    "$work/consumer/$p" >"$work/$p.out" 2>&1 || fail "$p: $(cat "$work/$p.out")"
done
readelf -d "$work/consumer/consumer_shared" | grep -q "libvdiref.so.$major" || fail "consumer_shared does not need libvdiref.so.$major"
# The audits: the installed vdichaos runs the installed vdi-sqlcmd against both clients.
ctest --test-dir "$work/consumer" -L client-audit -V >"$work/audit.log" 2>&1 ||
    fail "the consumer's client audits: $(tail -n 30 "$work/audit.log")"
grep -q "audit_sample .*Passed" "$work/audit.log" && grep -q "audit_bad .*Passed" "$work/audit.log" ||
    fail "the consumer's audits did not both run: $(cat "$work/audit.log")"
grep -q "FINDING truth: success-after-failure" "$work/audit.log" ||
    fail "the broken client failed its audit for another reason: $(cat "$work/audit.log")"

# pkg-config
command -v pkg-config >/dev/null 2>&1 || { echo "t_install: no pkg-config (skipped that half)"; exit 77; }
export PKG_CONFIG_PATH="$lib/pkgconfig"
[ "$(pkg-config --modversion vdiref)" = "$version" ] || fail "pkg-config vdiref: $(pkg-config --modversion vdiref 2>&1)"
# shellcheck disable=SC2046
cc -o "$work/pc_c" "$src/tests/install/consumer/consumer.c" $(pkg-config --cflags --libs vdiref) \
    2>"$work/pc.log" || fail "cc with pkg-config vdiref: $(cat "$work/pc.log")"
# shellcheck disable=SC2046
c++ -o "$work/pc_sdk" "$src/tests/install/consumer/consumer_sdk.cpp" $(pkg-config --cflags --libs sqlvdi) \
    2>>"$work/pc.log" || fail "c++ with pkg-config sqlvdi: $(cat "$work/pc.log")"
LD_LIBRARY_PATH=$lib "$work/pc_c" >"$work/pc_c.out" 2>&1 || fail "pc_c: $(cat "$work/pc_c.out")"
LD_LIBRARY_PATH=$lib "$work/pc_sdk" >"$work/pc_sdk.out" 2>&1 || fail "pc_sdk: $(cat "$work/pc_sdk.out")"
echo "t_install: installed $version; find_package (vdiref, vdichaos) and pkg-config consumers built and ran; a client audit of the consumer passed a correct client and failed a broken one"
