#!/bin/sh
# run_sample.sh SAMPLE_CLIENT VDI_SQLCMD: the README's walk-through, as a test. vdi-sqlcmd is
# put on PATH as "sqlcmd", the sample client backs a database up to two devices and
# restores it, and the restored database must equal the original byte for byte.
set -u
client=$1 sqlcmd=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/t-compat-sample-XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT
mkdir "$dir/bin" && ln -s "$sqlcmd" "$dir/bin/sqlcmd" || exit 1
export PATH="$dir/bin:$PATH" VDI_SQLCMD_DATA_DIR="$dir"
"$client" backup sales "$dir/sales.bak" 2 || { echo "backup failed"; exit 1; }
[ -s "$dir/sales.bak" ] && [ -s "$dir/sales.bak.1" ] || { echo "no media written"; exit 1; }
"$client" restore sales "$dir/sales.bak" 2 || { echo "restore failed"; exit 1; }
cmp "$dir/sales.mdf" "$dir/sales.restored.mdf" || exit 1
echo "backup and restore through sqlcmd on PATH: byte-identical"
