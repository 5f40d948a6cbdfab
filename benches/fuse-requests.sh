#!/usr/bin/env bash
# Count the FUSE requests each file costs, per operation, on a zsfs mount:
# tar -xf of small files, cp -a of a tree, rm -rf of it (issue 14, item 5).
#
#   sudo benches/fuse-requests.sh [--zsfs-opts OPTS] [--files N]
#
# It uses the kernel's fuse:fuse_request_send tracepoint (tracefs), so it
# counts every request the kernel sends, including the ones zsfs answers at
# once. Prints one table: opcode -> requests per file, for each operation.
set -euo pipefail
cd "$(dirname "$0")/.."
opts=size=4g
files=2000
while [ $# -gt 0 ]; do
    case "$1" in
        --zsfs-opts) opts=$2; shift 2 ;;
        --files) files=$2; shift 2 ;;
        *) echo "usage: $0 [--zsfs-opts OPTS] [--files N]" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "$0: run as root (tracefs, mounts)" >&2; exit 2; }
bin=target/release/zsfs
[ -x "$bin" ] || cargo build --release
tr=/sys/kernel/tracing
[ -e $tr/events/fuse ] || mount -t tracefs nodev $tr
work=$(mktemp -d /tmp/zsfs-req.XXXX)
mnt=$work/mnt
mkdir -p "$mnt" "$work/src"
cleanup() {
    echo 0 > $tr/events/fuse/fuse_request_send/enable
    mountpoint -q "$mnt" && umount "$mnt"
    rm -rf "$work"
}
trap cleanup EXIT

# Small files from this machine (docs, headers), as many as asked.
(find /usr/share/doc /usr/include -type f -size -16k 2>/dev/null || true) |
    head -n "$files" > "$work/list" || true
tar -cf "$work/small.tar" -T "$work/list" 2>/dev/null
n=$(tar -tf "$work/small.tar" | grep -vc '/$' || true)
"$bin" -o "$opts" "$mnt"

# Run "$@" with the tracepoint on, print "OPCODE count" for this mount.
count() {
    echo > $tr/trace
    echo 1 > $tr/events/fuse/fuse_request_send/enable
    "$@"
    echo 0 > $tr/events/fuse/fuse_request_send/enable
    sed -n 's/.*opcode [0-9]* (\(FUSE_[A-Z_0-9]*\)).*/\1/p' $tr/trace | sort | uniq -c |
        awk '{print $2, $1}'
}
row() { # name, counts file
    awk -v n="$n" -v op="$1" '{printf "| %s | %s | %d | %.2f |\n", op, $1, $2, $2 / n}' "$2"
}
count tar -xf "$work/small.tar" -C "$mnt" > "$work/tar"
sync
count cp -a "$mnt/usr" "$mnt/copy" > "$work/cp"
sync
count rm -rf "$mnt/usr" "$mnt/copy" > "$work/rm"
echo "zsfs -o $opts: $n files (kernel $(uname -r))"
echo
echo "| operation | request | count | per file |"
echo "|---|---|---|---|"
row "tar -xf" "$work/tar"
row "cp -a" "$work/cp"
row "rm -rf (both trees)" "$work/rm"
