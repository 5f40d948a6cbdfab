#!/bin/sh
# Install (or uninstall) zsfs and its mount(8) helper.
#
#   mount-helpers/install.sh [--prefix /usr/local] [--sbindir /sbin] [--bin PATH]
#   mount-helpers/install.sh --uninstall [--prefix /usr/local] [--sbindir /sbin]
#
# Installs:
#   PREFIX/bin/zsfs                      the binary (default: target/release/zsfs;
#                                        run `cargo build --release` first)
#   SBINDIR/mount.fuse.zsfs              the helper mount(8) runs for -t fuse.zsfs
#                                        (mount(8) looks only in /sbin, so keep
#                                        the default there)
#   PREFIX/share/doc/zsfs/examples/      the fstab line and systemd unit examples
# Uninstall removes exactly these files.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
prefix=/usr/local
sbindir=/sbin
bin="$here/../target/release/zsfs"
action=install

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix=$2; shift 2 ;;
        --prefix=*) prefix=${1#--prefix=}; shift ;;
        --sbindir) sbindir=$2; shift 2 ;;
        --sbindir=*) sbindir=${1#--sbindir=}; shift ;;
        --bin) bin=$2; shift 2 ;;
        --bin=*) bin=${1#--bin=}; shift ;;
        --uninstall) action=uninstall; shift ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

bindir="$prefix/bin"
docdir="$prefix/share/doc/zsfs/examples"

if [ "$action" = uninstall ]; then
    rm -f "$bindir/zsfs" "$sbindir/mount.fuse.zsfs" \
        "$docdir/fstab.example" "$docdir/mnt-zsfs.mount"
    rmdir "$docdir" "$prefix/share/doc/zsfs" 2>/dev/null || true
    echo "zsfs uninstalled from $prefix and $sbindir"
    exit 0
fi

if [ ! -x "$bin" ]; then
    echo "install.sh: $bin is missing; run \`cargo build --release\` first or pass --bin PATH" >&2
    exit 1
fi
mkdir -p "$bindir" "$sbindir" "$docdir"
install -m 0755 "$bin" "$bindir/zsfs"
# The helper learns where the binary went (mount(8) runs helpers with a
# minimal PATH, which may not include PREFIX/bin).
tmp=$(mktemp)
sed "s|@ZSFS_BIN@|$bindir/zsfs|" "$here/mount.fuse.zsfs" > "$tmp"
install -m 0755 "$tmp" "$sbindir/mount.fuse.zsfs"
rm -f "$tmp"
install -m 0644 "$here/fstab.example" "$here/mnt-zsfs.mount" "$docdir/"
echo "zsfs installed: $bindir/zsfs, $sbindir/mount.fuse.zsfs, examples in $docdir"
