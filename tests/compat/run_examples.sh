#!/bin/sh
# run_examples.sh PIPE_CLIENT WORKER_CLIENT VDI_SQLCMD: the example clients of the two
# kinds vendors ship, round-tripped byte for byte through vdi-sqlcmd (on PATH as sqlcmd,
# always with -b, so a failed restore fails the client): vdi-pipe-client keeps each device
# as a plain sequential stream (positions ignored), vdi-worker-client serves one device
# from one polling thread. Each row backs a database up with one BLOCKSIZE /
# MAXTRANSFERSIZE / BUFFERCOUNT / device count and restores it with another; the restored
# image must equal the original (vdi-sqlcmd checks it, and so does cmp here).
# The default rows are a sample across BLOCKSIZE 512..65536, MAXTRANSFERSIZE 64 KiB..4 MiB,
# BUFFERCOUNT 1..16 and 1..8 devices; VDI_COMPAT_FULL_MATRIX=1 runs the whole product.
set -u
abs() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
pipe=$(abs "$1") worker=$(abs "$2") sqlcmd=$(abs "$3")
dir=$(mktemp -d "${TMPDIR:-/tmp}/t-compat-examples-XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT
mkdir "$dir/bin" && ln -s "$sqlcmd" "$dir/bin/sqlcmd" || exit 1
export PATH="$dir/bin:$PATH" VDI_SQLCMD_DATA_DIR="$dir"
unset VDI_SQLCMD_ABORT_AFTER VDI_SQLCMD_CLOSE_AFTER VDI_SQLCMD_DELAY_MS VDI_SQLCMD_FAIL_COMMAND \
    VDI_SQLCMD_DIE_AT VDI_SQLCMD_DIE_HOW VDI_SQLCMD_FLUSHES VDI_SQLCMD_COMPLETE
rows=0 failed=0

# shape "B M K" -> client options (0 = the statement's default)
shape() {
    s=""
    [ "$1" != 0 ] && s="$s --block-size $1"
    [ "$2" != 0 ] && s="$s --max-transfer $2"
    [ "$3" != 0 ] && s="$s --buffers $3"
    echo "$s"
}

# row KIND DEVICES SIZE "BACKUP B M K" "RESTORE B M K" [EXTRA]
row() {
    kind=$1 n=$2 size=$3 bshape=$(shape $4) rshape=$(shape $5) extra=${6:-}
    rows=$((rows + 1))
    db="db$rows"
    media="$dir/$db.bak"
    rm -f "$dir/$db.restored.mdf"
    case $kind in
    pipe) client=$pipe devs="--devices $n" ;;
    worker) client=$worker devs="" ;;
    esac
    # shellcheck disable=SC2086
    if ! VDI_SQLCMD_DB_SIZE=$size "$client" backup "$db" "$media" $devs $bshape $extra \
            >"$dir/out" 2>&1 ||
       ! "$client" restore "$db" "$media" $devs $rshape $extra >>"$dir/out" 2>&1 ||
       ! cmp -s "$dir/$db.mdf" "$dir/$db.restored.mdf"; then
        echo "FAILED: $kind, $n device(s), $size bytes, backup [$4]$extra, restore [$5]"
        cat "$dir/out"
        failed=$((failed + 1))
    fi
    rm -f "$media" "$media".* "$dir/$db.mdf" "$dir/$db.restored.mdf"
}

if [ "${VDI_COMPAT_FULL_MATRIX:-0}" = 1 ]; then
    for b in 512 4096 65536; do
        for m in 65536 1048576 4194304; do
            for k in 1 3 8; do
                for n in 1 2 8; do
                    row pipe $n 5000001 "$b $m $k" "$b $m $k"
                    row pipe $n 700001 "$b $m $k" "0 0 0"
                done
                row worker 1 5000001 "$b $m $k" "$b $m $k"
                row worker 1 700001 "0 0 0" "$b $m $k"
            done
        done
    done
else
    row pipe 1 300001 "512 65536 1" "512 65536 1"
    row pipe 2 300001 "4096 131072 2" "65536 65536 4"
    row pipe 8 700001 "65536 65536 8" "512 1048576 3"
    row pipe 3 9000001 "1024 4194304 5" "0 0 0"
    row pipe 5 1000001 "32768 262144 1" "2048 4194304 16"
    row pipe 1 300001 "0 0 0" "0 0 0" --complete
    row pipe 4 300001 "2048 65536 0" "2048 65536 0" "--record 2048"
    row worker 1 300001 "512 65536 1" "65536 4194304 2"
    row worker 1 5000001 "65536 4194304 4" "512 65536 1"
    row worker 1 1000001 "8192 1048576 3" "0 0 0"
fi

# The pipe client's media as stdout and stdin: a backup piped straight into a restore's
# input file, then served from a pipe.
rows=$((rows + 1))
if ! VDI_SQLCMD_DB_SIZE=400001 "$pipe" backup piped - --block-size 4096 >"$dir/piped.bak" \
        2>"$dir/out" ||
   ! cat "$dir/piped.bak" | "$pipe" restore piped - >>"$dir/out" 2>&1 ||
   ! cmp -s "$dir/piped.mdf" "$dir/piped.restored.mdf"; then
    echo "FAILED: pipe client over stdout/stdin"
    cat "$dir/out"
    failed=$((failed + 1))
fi

# The worker's polling: a server slower than its poll interval is waited out.
rows=$((rows + 1))
if ! VDI_SQLCMD_DB_SIZE=100001 VDI_SQLCMD_DELAY_MS=60 "$worker" backup slow "$dir/slow.bak" \
        --poll-ms 20 >"$dir/out" 2>&1 ||
   ! grep -q "succeeded, .* [1-9][0-9]* poll timeouts" "$dir/out"; then
    echo "FAILED: worker client against a slow server"
    cat "$dir/out"
    failed=$((failed + 1))
fi

# A failing restore is never a success: damaged media fails the client (sqlcmd -b, Msg 3183).
rows=$((rows + 1))
VDI_SQLCMD_DB_SIZE=300001 "$worker" backup broken "$dir/broken.bak" >"$dir/out" 2>&1 &&
    byte=$(od -An -tu1 -j100000 -N1 "$dir/broken.bak") &&
    printf "\\$(printf %o $(((byte + 1) % 256)))" |
    dd of="$dir/broken.bak" bs=1 seek=100000 conv=notrunc 2>/dev/null
if "$worker" restore broken "$dir/broken.bak" >>"$dir/out" 2>&1 ||
   ! grep -q "Msg 3183" "$dir/out"; then
    echo "FAILED: a damaged backup restored without an error"
    cat "$dir/out"
    failed=$((failed + 1))
fi

echo "$rows rows, $failed failed"
[ "$failed" = 0 ]
