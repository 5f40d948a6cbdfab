#!/usr/bin/env bash
# benches/run.sh: the same workloads on tmpfs, zram (lz4) + ext4, zsfs and
# the FUSE ceiling (libfuse's in-memory example filesystem memfs_ll, with the
# writeback cache: fuse-ceiling; with direct I/O: fuse-ceiling-dio), in one run, written up as JSON, a Markdown table (zsfs's ratio to each peer and
# issue 7's targets) and a PNG chart.
#
# Usage (as root: it mounts, resets /dev/zram0 and drops the page cache):
#   benches/run.sh [MODE] [--targets tmpfs,zram,zsfs,fuse-ceiling] [--reps N] [--out DIR]
#                  [--zsfs-opts OPTS] [--settle SECONDS] [--no-build]
# MODE:
#   quick      (default) small files, short random runs, 2 rounds: development
#   full       2 GiB sequential / 1 GiB random files, 2 rounds: the README's table
#   writeback  zsfs only, with a pool limit: write 4x the limit of 60 %-
#              compressible data and read it back (throughput, daemon RSS);
#              zipf random reads over data 4x the limit, second chance on/off
#              (the share of reads served from memory)
#   blocksize  zsfs only, once per block_size= 4k..128k: memory holding the
#              real tree against 4 KiB random read/write latency
#   profile    zsfs only: one workload (--workload randwrite|randread|
#              seqwrite|seqread|cp|tar) under perf: the daemon's hottest
#              symbols (self and with children) and the FUSE requests the
#              kernel sent, by opcode
# Environment: ZSFS_BENCH_DATA (default /var/tmp/zsfs-bench) caches the real
# tree and the small-file archive between runs; ZSFS_BIN uses that binary
# instead of building target/release/zsfs; ZSFS_SC_OFF_OPTS (default
# "second_chance=off") is the -o option the writeback mode uses to turn the
# second chance off.
#
# How a run goes: for each round, for each target in turn: set the target up
# fresh, run every workload on it, tear it down. Every delete (and every page
# cache drop, and every teardown) is followed by the same pause on every
# target: this machine gives freed memory back to its host and re-touching it
# costs ~2 s/GiB, so an allocating write right after a delete would measure
# the host, not the filesystem. Everything this script mounts or sets up is
# undone on exit, whatever the exit (trap).
#
# Both FUSE daemons (zsfs and memfs_ll) run in the foreground for their PID
# and log, but in a session of their own (`setsid`), as a daemonized zsfs
# or memfs_ll, a systemd unit or an fstab mount does. In this script's
# session they would share one scheduler autogroup with the workload, and
# every synchronous round trip waits longer: tar -xf of 10,000 small files
# took 2.56 s instead of 2.02 on zsfs, and 2.21 s instead of 1.93 on
# memfs_ll (three runs each, kernel 6.18, sched_autogroup_enabled=1).

set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH")
REPORT="$BENCH/report.py"
ORIG_ARGS="$*"

# The environment that changes what is measured, for the record
# (read before the modes set their defaults).
CMD_ENV=""
for v in POOL_LIMIT RUNTIME ZSFS_SC_OFF_OPTS ZSFS_BIN; do
	[ -n "${!v+x}" ] && CMD_ENV+="$v=${!v} "
done

die() { echo "run.sh: $*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
usage() { sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

# ---------------------------------------------------------------- options
MODE=quick
case "${1:-}" in
quick | full | writeback | blocksize | profile) MODE=$1; shift ;;
-h | --help) usage ;;
esac
TARGETS="" REPS="" OUT="" ZSFS_OPTS="" SETTLE="" BUILD=1 WORKLOAD=randwrite
while [ $# -gt 0 ]; do
	case "$1" in
	--targets) TARGETS=$2; shift 2 ;;
	--reps) REPS=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--zsfs-opts) ZSFS_OPTS=$2; shift 2 ;;
	--settle) SETTLE=$2; shift 2 ;;
	--no-build) BUILD=0; shift ;;
	--workload) WORKLOAD=$2; shift 2 ;;
	-h | --help) usage ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done

case $MODE in
quick)
	SEQ_SIZE=512m RAND_SIZE=256m RUNTIME=3
	: "${REPS:=2}" "${SETTLE:=3}" "${TARGETS:=tmpfs,zram,zsfs,fuse-ceiling,fuse-ceiling-dio}" ;;
full)
	SEQ_SIZE=2g RAND_SIZE=1g RUNTIME=10
	: "${REPS:=2}" "${SETTLE:=5}" "${TARGETS:=tmpfs,zram,zsfs,fuse-ceiling,fuse-ceiling-dio}" ;;
writeback)
	# POOL_LIMIT (environment) overrides the limit; the data is 4x it.
	RUNTIME=${RUNTIME:-15} TARGETS=zsfs
	: "${POOL_LIMIT:=256m}" "${REPS:=1}" "${SETTLE:=5}" ;;
profile)
	SEQ_SIZE=1g RAND_SIZE=256m RUNTIME=${RUNTIME:-8} TARGETS=zsfs
	: "${REPS:=1}" "${SETTLE:=3}"
	case $WORKLOAD in randwrite | randread | seqwrite | seqread | cp | tar) ;;
	*) die "unknown --workload '$WORKLOAD' (randwrite, randread, seqwrite, seqread, cp, tar)" ;;
	esac ;;
blocksize)
	RAND_SIZE=256m RUNTIME=${RUNTIME:-5} TARGETS=zsfs
	: "${REPS:=1}" "${SETTLE:=5}" ;;
esac
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "--reps wants a positive number, got '$REPS'"
[[ $SETTLE =~ ^[0-9]+$ ]] || die "--settle wants whole seconds, got '$SETTLE'"
IFS=, read -r -a TARGET_LIST <<<"$TARGETS"
for t in "${TARGET_LIST[@]}"; do
	case $t in tmpfs | zram | zsfs | fuse-ceiling | fuse-ceiling-dio) ;;
	*) die "unknown target '$t' (tmpfs, zram, zsfs, fuse-ceiling, fuse-ceiling-dio)" ;; esac
done

[ "$(id -u)" = 0 ] || die "must run as root: it mounts tmpfs and ext4, resets /dev/zram0 and writes /proc/sys/vm/drop_caches (try: sudo $0 $ORIG_ARGS)"

# ---------------------------------------------------------- dependencies
need_pkg() { # COMMAND DEBIAN_PACKAGE
	command -v "$1" >/dev/null && return
	log "installing $2 (for $1)"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null ||
		die "cannot install $2, which provides $1"
}
need_pkg fio fio
need_pkg python3 python3
need_pkg mkfs.ext4 e2fsprogs
need_pkg fusermount3 fuse3
[ "$MODE" != profile ] || need_pkg perf linux-perf
if ! python3 -c 'import matplotlib' 2>/dev/null; then
	log "installing matplotlib (for the chart)"
	python3 -m pip install -q matplotlib 2>/dev/null ||
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-matplotlib >/dev/null; } ||
		log "warning: no matplotlib; the run goes on, without the PNG"
fi

# ------------------------------------------------------- state + cleanup
WORK=$(mktemp -d /tmp/zsfs-bench.XXXXXX)
MOUNTED=() # mountpoints this script mounted and has not unmounted yet
ZSFS_PID="" ZRAM_SET=0 CEIL_PID=""

unmount() { # MNT: unmount and forget it; lazily if it stays busy
	local mnt=$1 i
	if grep -q " $mnt " /proc/mounts; then
		sync -f "$mnt" 2>/dev/null || true
		for i in 1 2 3 4 5; do
			umount "$mnt" 2>/dev/null && break
			sleep 1
		done
		grep -q " $mnt " /proc/mounts && umount -l "$mnt"
	fi
	local keep=() m
	for m in "${MOUNTED[@]}"; do [ "$m" = "$mnt" ] || keep+=("$m"); done
	MOUNTED=("${keep[@]}")
}

stop_zsfs() { # wait for the daemon to exit after its unmount; kill it if it hangs
	[ -n "$ZSFS_PID" ] || return 0
	local i
	for i in $(seq 100); do
		kill -0 "$ZSFS_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$ZSFS_PID" 2>/dev/null; then
		log "zsfs (pid $ZSFS_PID) still running 10 s after its unmount: SIGTERM"
		kill -TERM "$ZSFS_PID" 2>/dev/null || true
		sleep 2
		kill -KILL "$ZSFS_PID" 2>/dev/null || true
	fi
	wait "$ZSFS_PID" 2>/dev/null || true
	ZSFS_PID=""
}

reset_zram() {
	[ "$ZRAM_SET" = 1 ] || return 0
	echo 1 >/sys/block/zram0/reset || log "warning: could not reset /dev/zram0"
	ZRAM_SET=0
}

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	local m
	for m in "${MOUNTED[@]}"; do unmount "$m"; done
	[ -z "$CEIL_PID" ] || { kill "$CEIL_PID" 2>/dev/null; wait "$CEIL_PID" 2>/dev/null; }
	stop_zsfs
	reset_zram
	rm -rf "$WORK"
	if grep -q " $WORK/" /proc/mounts; then
		echo "run.sh: WARNING: still mounted under $WORK:" >&2
		grep " $WORK/" /proc/mounts >&2
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- data
DATA=${ZSFS_BENCH_DATA:-/var/tmp/zsfs-bench}
TREE_MIB=1000 SMALL_FILES=10000 SMALL_MAX=16k

# The real tree: ~1 GB of what a developer's machine holds: source code, docs,
# man pages, headers, Python and Perl libraries, shared libraries and a Rust
# toolchain's libraries, each source capped so no one kind dominates. Copied
# once into $DATA/tree (paths kept, e.g. tree/usr/share/doc/...) and reused.
prepare_tree() {
	[ -e "$DATA/tree.done" ] && return
	log "assembling the real tree (~$TREE_MIB MiB) in $DATA/tree (once; later runs reuse it)"
	rm -rf "$DATA/tree" "$DATA/tree.list"
	mkdir -p "$DATA/tree"
	local left=$((TREE_MIB * 1024 * 1024)) src cap home
	home=$(getent passwd "${SUDO_USER:-root}" | cut -d: -f6)
	local rust_lib
	rust_lib=$(ls -d "$home"/.rustup/toolchains/stable-*/lib 2>/dev/null | head -1 || true)
	# SOURCE:CAP_MIB, in order; the last ones top the tree up to TREE_MIB.
	for src in "$home/.cargo/registry/src:150" "/usr/share/doc:140" "/usr/share/man:90" \
		"/usr/include:80" "/usr/lib/python3.11:60" "/usr/lib/python3:40" "/usr/share/perl:25" \
		"/usr/share/vim:40" "/usr/share/i18n:20" "/usr/lib/x86_64-linux-gnu:250" \
		"${rust_lib:-/nonexistent}:150" "/usr/lib:1000" "/usr/share:1000"; do
		cap=$((${src##*:} * 1024 * 1024))
		src=${src%:*}
		[ -d "$src" ] && [ "$left" -gt 0 ] || continue
		[ "$cap" -lt "$left" ] || cap=$left
		# Regular files and symlinks in path order while they fit under the
		# cap (a file too big for what is left is skipped, not the rest);
		# skip names already taken from an earlier source.
		find "$src" -xdev \( -type f -o -type l \) -printf '%s\t%p\n' 2>/dev/null |
			LC_ALL=C sort -t$'\t' -k2 |
			awk -F'\t' -v cap="$cap" -v list="$DATA/tree.list" -v totf="$DATA/tree.add.bytes" '
				BEGIN { while ((getline l < list) > 0) seen[l] = 1 }
				seen[$2] || tot + $1 > cap { next }
				{ tot += $1; print $2 }
				END { print tot + 0 > totf }' >"$DATA/tree.add"
		local got
		got=$(cat "$DATA/tree.add.bytes")
		cat "$DATA/tree.add" >>"$DATA/tree.list"
		left=$((left - ${got:-0}))
	done
	rm -f "$DATA/tree.add" "$DATA/tree.add.bytes"
	# --hard-dereference: hard links become plain copies, so the tree's byte
	# count is what a copy of it has to store.
	tar -cf - --hard-dereference --verbatim-files-from -T "$DATA/tree.list" 2>/dev/null | tar -xf - -C "$DATA/tree"
	find "$DATA/tree" -type f -printf '%s\n' | awk '{ s += $1; n++ } END { print s, n }' >"$DATA/tree.size"
	touch "$DATA/tree.done"
}

# The small-file archive: the first SMALL_FILES files under SMALL_MAX of the
# real tree, in path order (mostly Rust crate sources, then docs).
prepare_small() {
	[ -e "$DATA/small.done" ] && return
	log "assembling $SMALL_FILES small files into $DATA/small.tar (once)"
	(cd "$DATA/tree" && find . -type f -size -"$SMALL_MAX" | LC_ALL=C sort | awk -v n="$SMALL_FILES" 'NR <= n' >"$DATA/small.list")
	tar -cf "$DATA/small.tar" -C "$DATA/tree" --verbatim-files-from -T "$DATA/small.list"
	tar -tf "$DATA/small.tar" | grep -vc '/$' >"$DATA/small.count"
	touch "$DATA/small.done"
}

mkdir -p "$DATA"
prepare_tree
prepare_small
read -r TREE_BYTES TREE_FILES <"$DATA/tree.size"
SMALL_COUNT=$(cat "$DATA/small.count")
log "real tree: $TREE_FILES files, $((TREE_BYTES / 1000000)) MB; small archive: $SMALL_COUNT files"

# -------------------------------------------------------------- zsfs binary
need_zsfs=0
for t in "${TARGET_LIST[@]}"; do [ "$t" = zsfs ] && need_zsfs=1; done
ZSFS_GIT=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)
if [ "$need_zsfs" = 1 ]; then
	if [ -n "${ZSFS_BIN:-}" ]; then
		[ -x "$ZSFS_BIN" ] || die "ZSFS_BIN=$ZSFS_BIN is not an executable"
	else
		ZSFS_BIN="$REPO/target/release/zsfs"
		if [ "$BUILD" = 1 ]; then
			log "building zsfs (cargo build --release in $REPO)"
			(cd "$REPO" && cargo build --release --quiet) || die "cargo build --release failed in $REPO"
		fi
		[ -x "$ZSFS_BIN" ] || die "no zsfs binary at $ZSFS_BIN (build it, or drop --no-build)"
	fi
fi

# ------------------------------------------------------------------ output
if [ -z "$OUT" ]; then
	OUT="$REPO/target/bench/$MODE-$(date -u +%Y%m%dT%H%M%SZ)"
fi
mkdir -p "$OUT/logs"
LOGS="$OUT/logs"
: >"$OUT/samples.jsonl"
# Notes go to a file: fio_run, which notes failures, runs in a subshell.
note() {
	log "NOTE: $*"
	echo "$*" >>"$WORK/notes"
}

# ---------------------------------------------------------------- helpers
now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.6f", b - a }'; }
calc() { awk "BEGIN { printf \"%.6g\", $1 }"; }

# settle: the same pause after every delete, drop and teardown, on every target.
settle() { sleep "$SETTLE"; }

drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

CUR_TARGET="" CUR_REP=0 MNT=""
sample() { # METRIC VALUE
	[ -n "$2" ] && [ "$2" != null ] || return 0
	printf '{"target": "%s", "rep": %d, "metric": "%s", "value": %s}\n' \
		"$CUR_TARGET" "$CUR_REP" "$1" "$2" >>"$OUT/samples.jsonl"
	log "  $CUR_TARGET #$CUR_REP $1 = $2"
}

# fio_run NAME JOBFILE [VAR=VALUE ...] [-- FIO_ARGS]: prints the job's summary
# fields "bw_MBps iops read_lat_us read_p99_us write_lat_us write_p99_us
# read_p50_us",
# or fails (and says why) if fio failed.
fio_run() {
	local name=$1 job=$2 out
	shift 2
	local envs=() args=()
	while [ $# -gt 0 ]; do
		if [ "$1" = -- ]; then shift; args=("$@"); break; fi
		envs+=("$1"); shift
	done
	out="$LOGS/$CUR_TARGET.$CUR_REP.$name.json"
	if ! env "${envs[@]}" DIR="$MNT" fio --output-format=json --output="$out" "${args[@]}" "$BENCH/fio/$job" \
		2>"$out.err"; then
		note "fio $name failed on $CUR_TARGET (round $CUR_REP): $(head -c 300 "$out.err" | tr '\n' ' ')"
		return 1
	fi
	[ -s "$out.err" ] || rm -f "$out.err"
	python3 - "$out" <<-'EOF'
		import json, sys
		sys.path.insert(0, __import__("os").environ.get("BENCH_DIR", "."))
		from report import fio_summary
		s = fio_summary(sys.argv[1])
		f = lambda x: "null" if x is None else "%.6g" % x
		print(" ".join(f(s[k]) for k in ("bw_MBps", "iops", "read_lat_us", "read_p99_us", "write_lat_us", "write_p99_us", "read_p50_us")))
	EOF
}
export BENCH_DIR="$BENCH"

# Lay out DIR/rand.dat sequentially with the job's kind of data, uncounted.
layout_rand() { # COMPRESS SIZE
	fio --output="$LOGS/$CUR_TARGET.$CUR_REP.layout.log" --name=layout --directory="$MNT" \
		--filename=rand.dat --size="$2" --rw=write --bs=1M --ioengine=psync \
		--buffer_compress_percentage="$1" --buffer_compress_chunk=4k --refill_buffers=1 --end_fsync=1 \
		2>>"$LOGS/$CUR_TARGET.$CUR_REP.layout.log" || {
		note "laying out rand.dat failed on $CUR_TARGET"
		return 1
	}
}

# Read the page cache copy of the source tree back in, so that cp -a reads
# from memory on every target alike (drop_caches evicts it between targets).
warm_tree() { tar -cf - -C "$DATA" tree | cat >/dev/null; }

# ------------------------------------------------------------- the targets
mnt_of() { echo "$WORK/mnt-$1"; }

setup_tmpfs() {
	mount -t tmpfs -o size=16g,mode=1777 zsfs-bench-tmpfs "$MNT"
	MOUNTED+=("$MNT")
}
teardown_tmpfs() { unmount "$MNT"; }
mem_tmpfs() { # bytes the tmpfs holds (its df "used": pages allocated)
	stat -f -c '%b %f %S' "$MNT" | awk '{ print ($1 - $2) * $3 }'
}

setup_zram() {
	local z=/sys/block/zram0
	[ -d $z ] || die "no /dev/zram0 (modprobe zram), or leave zram out with --targets"
	if grep -q '^/dev/zram0 ' /proc/mounts || grep -q '^/dev/zram0 ' /proc/swaps; then
		die "/dev/zram0 is in use (mounted or swap); this script resets it, so it will not touch it"
	fi
	ZRAM_SET=1
	echo 1 >$z/reset
	grep -qw lz4 $z/comp_algorithm || die "this kernel's zram has no lz4 ($(cat $z/comp_algorithm))"
	echo lz4 >$z/comp_algorithm
	echo 16G >$z/disksize
	# Inode tables and journal written now, not by a background thread that
	# would run during the measurements.
	mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 /dev/zram0
	# discard: deleted files give their memory back, as they do on tmpfs and
	# zsfs (zram-generator's mount units use it for the same reason).
	mount -o discard /dev/zram0 "$MNT"
	chmod 1777 "$MNT"
	MOUNTED+=("$MNT")
}
teardown_zram() {
	unmount "$MNT"
	reset_zram
}
mem_zram() { awk '{ print $3 }' /sys/block/zram0/mm_stat; } # mem_used_total

ZSFS_RUN=0
setup_zsfs() { # [EXTRA_OPTS]
	local opts="size=16g${ZSFS_OPTS:+,$ZSFS_OPTS}${1:+,$1}" i
	ZSFS_RUN=$((ZSFS_RUN + 1))
	local zlog="$LOGS/zsfs.$ZSFS_RUN.log"
	echo "$ZSFS_BIN -f -o $opts $MNT" >"$zlog"
	RUST_LOG=${RUST_LOG:-warn} setsid "$ZSFS_BIN" -f -o "$opts" "$MNT" >>"$zlog" 2>&1 &
	ZSFS_PID=$!
	MOUNTED+=("$MNT")
	for i in $(seq 100); do
		grep -q " $MNT fuse" /proc/mounts && break
		if ! kill -0 "$ZSFS_PID" 2>/dev/null; then
			ZSFS_PID=""
			unmount "$MNT"
			if [ "${SETUP_SOFT:-0}" = 1 ]; then
				note "zsfs would not mount with -o $opts: $(tail -2 "$zlog" | tr '\n' ' ')"
				return 1
			fi
			die "zsfs target failed: '$ZSFS_BIN -f -o $opts MNT' exited before mounting: $(tail -3 "$zlog" | tr '\n' ' ')
  (main has only the placeholder adapter until the real filesystem lands; run with --targets tmpfs,zram meanwhile)"
		fi
		sleep 0.1
	done
	grep -q " $MNT fuse" /proc/mounts || die "zsfs target failed: not mounted at $MNT after 10 s (log: $zlog)"
	# setsid execs in place here (a background job of a script leads no
	# process group); its memory figures need the daemon's own PID.
	[ "$(cat "/proc/$ZSFS_PID/comm" 2>/dev/null)" = zsfs ] || die "zsfs target: pid $ZSFS_PID is not the daemon (setsid forked?)"
	# A mount that cannot hold a file is no target: say so instead of
	# filling the table with fio errors.
	if ! { echo zsfs-bench-probe >"$MNT/.probe" && [ "$(cat "$MNT/.probe")" = zsfs-bench-probe ] && rm "$MNT/.probe"; } 2>>"$zlog"; then
		die "zsfs target failed: the mount at $MNT cannot create, read back and remove a file ($(tail -1 "$zlog")); is main still the placeholder adapter? Run with --targets tmpfs,zram meanwhile"
	fi
	[ -r "$MNT/.zsfs" ] || note "zsfs: no control file $MNT/.zsfs; its counters are not recorded"
}
teardown_zsfs() {
	unmount "$MNT"
	stop_zsfs
}
# The FUSE ceiling: libfuse's example/memfs_ll, an in-memory FUSE filesystem
# in C by the authors of FUSE-over-io_uring, built once from the snapshot in
# ../shared/third_party (MEMFS_LL=PATH uses another build). fuse-ceiling has
# the writeback cache (as zsfs's default); fuse-ceiling-dio direct I/O with
# parallel direct writes (as zsfs's cache=none), the reference for the
# direct=1 jobs.
MEMFS_LL=${MEMFS_LL:-}
build_memfs_ll() {
	[ -n "$MEMFS_LL" ] && [ -x "$MEMFS_LL" ] && return
	local tarball dir
	tarball=$(ls "$REPO"/../shared/third_party/libfuse-*.tar.gz 2>/dev/null | head -1)
	[ -n "$tarball" ] || die "no ../shared/third_party/libfuse-*.tar.gz for the fuse-ceiling target (or leave it out with --targets)"
	dir="$DATA/$(basename "$tarball" .tar.gz)"
	MEMFS_LL="$dir/build/example/memfs_ll"
	[ -x "$MEMFS_LL" ] && return
	need_pkg meson meson
	need_pkg ninja ninja-build
	need_pkg pkg-config pkg-config
	dpkg -s liburing-dev >/dev/null 2>&1 ||
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq liburing-dev >/dev/null; }
	log "building libfuse's memfs_ll in $dir (once)"
	rm -rf "$dir" && mkdir -p "$dir"
	tar -xzf "$tarball" -C "$dir" --strip-components=1
	(cd "$dir" && meson setup build -Denable-io-uring=true -Dutils=false -Dtests=false -Duseroot=false &&
		ninja -C build) >"$dir.build.log" 2>&1 || die "memfs_ll build failed, see $dir.build.log"
}
setup_ceiling() { # OPTS
	setsid "$MEMFS_LL" -f -o "$1" "$MNT" >>"$LOGS/memfs_ll.log" 2>&1 &
	CEIL_PID=$!
	MOUNTED+=("$MNT")
	local i
	for i in $(seq 100); do
		if grep -q " $MNT fuse" /proc/mounts; then
			[ "$(cat "/proc/$CEIL_PID/comm" 2>/dev/null)" = memfs_ll ] || die "memfs_ll: pid $CEIL_PID is not the daemon (setsid forked?)"
			return
		fi
		kill -0 "$CEIL_PID" 2>/dev/null || die "memfs_ll -o $1 exited before mounting (log: $LOGS/memfs_ll.log)"
		sleep 0.1
	done
	die "memfs_ll not mounted at $MNT after 10 s"
}
teardown_ceiling() {
	unmount "$MNT"
	wait "$CEIL_PID" 2>/dev/null || true
	CEIL_PID=""
}
setup_fuse-ceiling() { setup_ceiling no_timeout,writeback_cache,allow_other; }
setup_fuse-ceiling-dio() { setup_ceiling no_timeout,fuse_dio,allow_other; }
teardown_fuse-ceiling() { teardown_ceiling; }
teardown_fuse-ceiling-dio() { teardown_ceiling; }
mem_fuse-ceiling() { awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$CEIL_PID/status"; }
mem_fuse-ceiling-dio() { mem_fuse-ceiling; }

rss_zsfs() { awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$ZSFS_PID/status"; }
hwm_zsfs() { awk '/^VmHWM:/ { print $2 * 1024 }' "/proc/$ZSFS_PID/status"; }
ctl() { # NAME: a counter from the control file ("name value" lines)
	awk -v k="$1" '$1 == k { print $2; exit }' "$MNT/.zsfs" 2>/dev/null || true
}
mem_zsfs() { rss_zsfs; }

mib() { [ -n "$1" ] && calc "$1 / 1048576" || true; }

# ------------------------------------------------------------- workloads
suite_tree() {
	# A workload that fails (a zsfs bug, ENOSPC) is noted and its figures
	# left out; the run goes on rather than losing every other figure.
	local t0 s mem
	warm_tree
	t0=$(now)
	if cp -a "$DATA/tree" "$MNT/tree" 2>>"$LOGS/$CUR_TARGET.$CUR_REP.tree.err" && sync; then
		s=$(since "$t0")
		sample cp_tree "$(calc "$TREE_BYTES / 1e6 / $s")"
		drop_caches
		settle
		mem=$("mem_$CUR_TARGET") || mem=""
		if [ -n "$mem" ] && [ "$mem" != 0 ]; then
			sample mem_tree "$(mib "$mem")"
			sample ratio_tree "$(calc "$TREE_BYTES / $mem")"
		else
			note "no memory figure for $CUR_TARGET (round $CUR_REP)"
		fi
		if [ "$CUR_TARGET" = zsfs ]; then
			sample zsfs_mem_used_total "$(mib "$(ctl mem_used_total)")"
			cat "$MNT/.zsfs" >"$LOGS/zsfs.$CUR_REP.tree.ctl" 2>/dev/null || true
		fi
		idle_tree
	else
		note "cp -a of the real tree failed on $CUR_TARGET (round $CUR_REP): $(tail -2 "$LOGS/$CUR_TARGET.$CUR_REP.tree.err" | tr '\n' ' ')"
	fi
	t0=$(now)
	if rm -rf "$MNT/tree" && sync; then
		sample rm_tree "$(since "$t0")"
	else
		note "rm -rf of the real tree failed on $CUR_TARGET (round $CUR_REP)"
	fi
	settle

	cat "$DATA/small.tar" >/dev/null
	mkdir -p "$MNT/small"
	t0=$(now)
	if tar -xf "$DATA/small.tar" -C "$MNT/small" 2>>"$LOGS/$CUR_TARGET.$CUR_REP.tree.err" && sync; then
		sample tar_small "$(calc "$SMALL_COUNT / $(since "$t0")")"
	else
		note "tar -xf failed on $CUR_TARGET (round $CUR_REP): $(tail -2 "$LOGS/$CUR_TARGET.$CUR_REP.tree.err" | tr '\n' ' ')"
	fi
	t0=$(now)
	if rm -rf "$MNT/small" && sync; then
		sample rm_small "$(calc "$SMALL_COUNT / $(since "$t0")")"
	else
		note "rm -rf of the small files failed on $CUR_TARGET (round $CUR_REP)"
	fi
	settle
	[ -s "$LOGS/$CUR_TARGET.$CUR_REP.tree.err" ] || rm -f "$LOGS/$CUR_TARGET.$CUR_REP.tree.err"
}

# zsfs: what sitting idle for recompress_after does, made explicit: the
# first pass finds every block just written, the second finds them idle.
let_it_idle() {
	echo "recompress idle" >"$MNT/.zsfs" && echo "recompress idle" >"$MNT/.zsfs" ||
		note "recompress idle failed on zsfs (round $CUR_REP)"
}

# Issue 13: the tree once it has sat idle (zsfs: `let_it_idle`). Then the
# memory that holds it, on every
# target (the others do nothing with idle data), and reading it all back
# from there (`tar -cf - | cat`, page cache dropped first).
idle_tree() {
	local t0 mem
	if [ "$CUR_TARGET" = zsfs ]; then
		t0=$(now)
		let_it_idle
		sample recomp_secs "$(since "$t0")"
		cat "$MNT/.zsfs" >"$LOGS/zsfs.$CUR_REP.tree-idle.ctl" 2>/dev/null || true
		sample zsfs_idle_mem_used_total "$(mib "$(ctl mem_used_total)")"
	fi
	drop_caches
	settle
	mem=$("mem_$CUR_TARGET") || mem=""
	[ -n "$mem" ] && [ "$mem" != 0 ] && sample mem_tree_idle "$(mib "$mem")"
	# Issue 13's overhead bound: the daemon's RSS beyond its pool.
	[ "$CUR_TARGET" = zsfs ] && [ -n "$mem" ] &&
		sample zsfs_overhead_idle "$(mib "$((mem - $(ctl mem_used_total)))")"
	t0=$(now)
	if tar -cf - -C "$MNT" tree | cat >/dev/null; then
		sample read_tree_idle "$(calc "$TREE_BYTES / 1e6 / $(since "$t0")")"
	else
		note "reading the idle tree back failed on $CUR_TARGET (round $CUR_REP)"
	fi
	idle_randread
}

# Random 4 KiB reads of idle real data (issue 13's latency rows): the first
# IDLE_SIZE of the tree as one tar file, left idle (zsfs: recompressed as
# the tree was), page cache dropped. fio's own compressible buffers would
# not do: they are random bytes and zeros, which zstd does not pack 1/8
# better than LZ4, so zsfs keeps them as they are.
IDLE_SIZE=256m
idle_randread() {
	local r lat
	local want
	want=$(numfmt --from=iec "${IDLE_SIZE^^}")
	# head closes the pipe at IDLE_SIZE, so tar ends on SIGPIPE: judge by size.
	{ tar -cf - -C "$DATA" tree 2>/dev/null || true; } | head -c "$want" >"$MNT/rand.dat" || true
	if [ "$(stat -c %s "$MNT/rand.dat" 2>/dev/null || echo 0)" != "$want" ]; then
		note "writing the idle file failed on $CUR_TARGET"
		rm -f "$MNT/rand.dat"
		return 0
	fi
	[ "$CUR_TARGET" = zsfs ] && let_it_idle
	drop_caches
	settle
	if r=$(fio_run randread_idle rand-read.fio SIZE=$IDLE_SIZE COMPRESS=0 DIRECT=0 RUNTIME=$RUNTIME); then
		read -r -a lat <<<"$r"
		sample randread_idle "${lat[1]}"
		sample randread_idle_p50 "${lat[6]}"
		sample randread_idle_p99 "${lat[3]}"
	fi
	rm -f "$MNT/rand.dat" || note "rm rand.dat failed on $CUR_TARGET"
}

# The "zram with zstd" figure of issue 13: the tree compressed page by page
# with the zstd crate zsfs uses (benches/zram_zstd.rs), once per run.
zram_zstd_estimate() {
	local bytes
	if bytes=$(cd "$REPO" && cargo bench -q --bench zram_zstd -- "$DATA/tree" 3 2>>"$LOGS/zram-zstd.err"); then
		CUR_TARGET=zram-zstd-est CUR_REP=1 sample mem_tree_idle "$(mib "$bytes")"
	else
		note "the zram-zstd estimate failed: $(tail -2 "$LOGS/zram-zstd.err" | tr '\n' ' ')"
	fi
}

suite_fio() { # COMPRESS
	local c=$1 r d sfx
	for d in 0 1; do
		sfx=$([ $d = 1 ] && echo _direct || true)_c$c
		if r=$(fio_run "seqw$sfx" seq-write.fio SIZE=$SEQ_SIZE COMPRESS="$c" DIRECT=$d); then
			sample "seq_write$sfx" "${r%% *}"
		fi
		drop_caches
		settle
		if r=$(fio_run "seqr$sfx" seq-read.fio SIZE=$SEQ_SIZE DIRECT=$d); then
			sample "seq_read$sfx" "${r%% *}"
			if [ $d = 0 ]; then
				# The same file read again, as a build rereads its
				# headers: the page cache has it, if a new open keeps it.
				local t0 bytes
				bytes=$(stat -c %s "$MNT/seq.dat")
				t0=$(now)
				cat "$MNT/seq.dat" >/dev/null
				sample "reread_c$c" "$(calc "$bytes / 1e6 / $(since "$t0")")"
			fi
		fi
		rm -f "$MNT/seq.dat" || note "rm seq.dat failed on $CUR_TARGET"
		settle
	done
	layout_rand "$c" "$RAND_SIZE" || return 0
	drop_caches
	settle
	local kind lat
	for d in 0 1; do
		sfx=$([ $d = 1 ] && echo _direct || true)_c$c
		for kind in read write rw; do
			r=$(fio_run "rand$kind$sfx" "rand-$kind.fio" SIZE=$RAND_SIZE COMPRESS="$c" DIRECT=$d RUNTIME=$RUNTIME) || continue
			read -r -a lat <<<"$r"
			sample "rand$kind$sfx" "${lat[1]}"
			if [ $d = 0 ] && [ $kind = read ]; then
				sample "randread_lat_c$c" "${lat[2]}"
				sample "randread_p99_c$c" "${lat[3]}"
				sample "randread_p50_c$c" "${lat[6]}"
			elif [ $d = 0 ] && [ $kind = write ]; then
				sample "randwrite_lat_c$c" "${lat[4]}"
				sample "randwrite_p99_c$c" "${lat[5]}"
			fi
		done
	done
	rm -f "$MNT/rand.dat" || note "rm rand.dat failed on $CUR_TARGET"
	settle
}

# ----------------------------------------------------------------- meta
write_meta() { # TARGETS_JSON_LIST
	python3 - "$OUT/meta.json" "$1" <<-EOF
		import json, sys
		notes = [l for l in open("$WORK/notes").read().split("\n") if l] if __import__("os").path.exists("$WORK/notes") else []
		json.dump({
		    "mode": "$MODE",
		    "date": "$(date -u +%Y-%m-%dT%H:%MZ)",
		    "command": "${CMD_ENV}benches/run.sh${ORIG_ARGS:+ $ORIG_ARGS}",
		    "kernel": "$(uname -r)",
		    "cpus": $(nproc),
		    "ram_gib": $(awk '/MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo),
		    "fio": "$(fio --version)",
		    "git": "$ZSFS_GIT",
		    "targets": json.loads(sys.argv[2]),
		    "tree": {"bytes": $TREE_BYTES, "files": $TREE_FILES, "small_files": $SMALL_COUNT},
		    "params": {"seq_size": "${SEQ_SIZE:-}", "rand_size": "${RAND_SIZE:-}", "runtime_s": "${RUNTIME:-}",
		               "reps": $REPS, "settle_s": $SETTLE, "zsfs_opts": "$ZSFS_OPTS", "pool_limit": "${POOL_LIMIT:-}"},
		    "notes": notes,
		}, open(sys.argv[1], "w"), indent=1)
	EOF
}

# ------------------------------------------------------------------ modes
run_compare() {
	local rep t targets_json
	targets_json=$(printf '"%s",' "${TARGET_LIST[@]}")
	log "mode $MODE: targets ${TARGET_LIST[*]}, $REPS rounds, settle ${SETTLE}s, out $OUT"
	for t in "${TARGET_LIST[@]}"; do
		case $t in fuse-ceiling*) build_memfs_ll ;; esac
	done
	if [[ ",$TARGETS," == *,zram,* ]]; then
		zram_zstd_estimate
		targets_json+='"zram-zstd-est",'
	fi
	for rep in $(seq "$REPS"); do
		for t in "${TARGET_LIST[@]}"; do
			CUR_TARGET=$t CUR_REP=$rep MNT=$(mnt_of "$t")
			mkdir -p "$MNT"
			log "round $rep: $t"
			"setup_$t"
			settle
			suite_tree
			suite_fio 60
			suite_fio 0
			"teardown_$t"
			settle
		done
	done
	write_meta "[${targets_json%,}]"
}

# Issue 4: write 4x the pool limit, read it back; zipf reads with the second
# chance on and off. One zsfs target per setting ("zsfs-sc-on", "-off").
run_writeback() {
	local limit=$POOL_LIMIT bytes size rep sc opts r before after ios
	bytes=$(numfmt --from=iec "${limit^^}")
	size=$((bytes * 4))
	local off_opts=${ZSFS_SC_OFF_OPTS-second_chance=off}
	log "mode writeback: pool_limit=$limit, data $((size >> 20)) MiB, out $OUT"
	for rep in $(seq "$REPS"); do
		for sc in on off; do
			CUR_TARGET="zsfs-sc-$sc" CUR_REP=$rep MNT=$(mnt_of "zsfs-$sc")
			mkdir -p "$MNT"
			opts="pool_limit=$bytes"
			[ $sc = off ] && opts+="${off_opts:+,$off_opts}"
			log "round $rep: zsfs, second chance $sc (-o $opts)"
			# The second-chance switch may not exist in this build: note it
			# and measure what can be measured.
			SETUP_SOFT=1 setup_zsfs "$opts" || continue
			settle
			if r=$(fio_run wb-write writeback.fio SIZE=$size RUNTIME="$RUNTIME" -- --section=write); then
				sample wb_write "${r%% *}"
			fi
			sample wb_rss_write "$(mib "$(rss_zsfs)")"
			cat "$MNT/.zsfs" >"$LOGS/$CUR_TARGET.$rep.after-write.ctl" 2>/dev/null || true
			drop_caches
			settle
			if r=$(fio_run wb-read writeback.fio SIZE=$size RUNTIME="$RUNTIME" -- --section=read); then
				sample wb_read "${r%% *}"
			fi
			sample wb_rss_read "$(mib "$(rss_zsfs)")"
			sample wb_bd_writes "$(ctl bd_writes)"
			sample wb_bd_reads "$(ctl bd_reads)"
			cat "$MNT/.zsfs" >"$LOGS/$CUR_TARGET.$rep.after-read.ctl" 2>/dev/null || true
			rm -f "$MNT/wb.dat"
			settle
			# zipf: lay the file out, then direct 4 KiB reads (every read
			# reaches zsfs); the share served from memory is 1 - the pages
			# read back from the backing file per 4 KiB read.
			fio_run zipf-layout writeback-zipf.fio SIZE=$size RUNTIME="$RUNTIME" -- --section=layout >/dev/null || true
			drop_caches
			settle
			before=$(ctl bd_reads)
			if r=$(fio_run zipf writeback-zipf.fio SIZE=$size RUNTIME="$RUNTIME" -- --section=zipf); then
				after=$(ctl bd_reads)
				read -r -a r <<<"$r"
				sample zipf_iops "${r[1]}"
				ios=$(python3 -c "import json,sys; sys.path.insert(0,'$BENCH'); from report import fio_summary as f; print(f('$LOGS/$CUR_TARGET.$rep.zipf.json')['read_ios'])")
				if [ -n "$before" ] && [ -n "$after" ] && [ "$ios" -gt 0 ]; then
					sample zipf_mem_share "$(calc "100 * (1 - ($after - $before) / $ios)")"
				else
					note "zipf on $CUR_TARGET: no bd_reads counter in $MNT/.zsfs, share served from memory unknown"
				fi
			fi
			cat "$MNT/.zsfs" >"$LOGS/$CUR_TARGET.$rep.after-zipf.ctl" 2>/dev/null || true
			sample wb_hwm "$(mib "$(hwm_zsfs)")"
			teardown_zsfs
			settle
		done
	done
	write_meta '["zsfs-sc-on", "zsfs-sc-off"]'
}

# Issue 3: block_size trade-off. Memory holding the real tree against 4 KiB
# random read/write latency (direct=1, so each I/O reaches zsfs and pays for
# the block it lands in), once per block size.
run_blocksize() {
	local bs rep t0 mem r targets=() lat
	log "mode blocksize: block_size 4k..128k, out $OUT"
	for rep in $(seq "$REPS"); do
		for bs in 4 8 16 32 64 128; do
			CUR_TARGET="bs-${bs}k" CUR_REP=$rep MNT=$(mnt_of "bs$bs")
			[ "$rep" = 1 ] && targets+=("\"bs-${bs}k\"")
			mkdir -p "$MNT"
			log "round $rep: zsfs block_size=${bs}k"
			setup_zsfs "block_size=$((bs * 1024))"
			settle
			warm_tree
			cp -a "$DATA/tree" "$MNT/tree"
			sync
			drop_caches
			settle
			mem=$(rss_zsfs)
			sample bs_mem_tree "$(mib "$mem")"
			r=$(ctl mem_used_total)
			[ -n "$r" ] && sample bs_ratio_tree "$(calc "$TREE_BYTES / $r")"
			rm -rf "$MNT/tree"
			settle
			if layout_rand 60 "$RAND_SIZE"; then
				drop_caches
				settle
				if r=$(fio_run randread rand-read.fio SIZE=$RAND_SIZE COMPRESS=60 DIRECT=1 RUNTIME=$RUNTIME); then
					read -r -a lat <<<"$r"
					sample bs_randread_lat "${lat[2]}"
					sample bs_randread_p99 "${lat[3]}"
				fi
				if r=$(fio_run randwrite rand-write.fio SIZE=$RAND_SIZE COMPRESS=60 DIRECT=1 RUNTIME=$RUNTIME); then
					read -r -a lat <<<"$r"
					sample bs_randwrite_lat "${lat[4]}"
					sample bs_randwrite_p99 "${lat[5]}"
				fi
			fi
			teardown_zsfs
			settle
		done
	done
	local j
	j=$(
		IFS=,
		echo "${targets[*]}"
	)
	write_meta "[$j]"
}

# Where does zsfs spend a workload? perf on the daemon (DWARF call graphs:
# release builds keep debug info, not frame pointers) and the kernel's
# fuse_request_send tracepoint for this mount's connection.
run_profile() {
	CUR_TARGET=zsfs CUR_REP=1 MNT=$(mnt_of zsfs)
	mkdir -p "$MNT"
	log "mode profile: $WORKLOAD on zsfs, out $OUT"
	setup_zsfs
	case $WORKLOAD in
	randwrite | randread) layout_rand 60 "$RAND_SIZE" ;;
	seqread) fio_run seqw seq-write.fio SIZE=$SEQ_SIZE COMPRESS=60 DIRECT=0 >/dev/null ;;
	cp) warm_tree ;;
	tar) cat "$DATA/small.tar" >/dev/null && mkdir "$MNT/small" ;;
	esac
	drop_caches
	settle
	local conn pp tp="" t0
	conn=$(mountpoint -d "$MNT" | cut -d: -f2)
	perf record -F 499 --call-graph dwarf,16384 -p "$ZSFS_PID" -o "$OUT/perf.data" >"$LOGS/perf.log" 2>&1 &
	pp=$!
	if perf list 'fuse:fuse_request_send' 2>/dev/null | grep -q fuse_request_send; then
		perf record -e fuse:fuse_request_send -a -o "$OUT/fuse-ops.data" >"$LOGS/perf-ops.log" 2>&1 &
		tp=$!
	else
		note "this kernel has no fuse:fuse_request_send tracepoint: no request counts"
	fi
	sleep 1
	t0=$(now)
	case $WORKLOAD in
	randwrite) fio_run randwrite rand-write.fio SIZE=$RAND_SIZE COMPRESS=60 DIRECT=0 RUNTIME=$RUNTIME ;;
	randread) fio_run randread rand-read.fio SIZE=$RAND_SIZE COMPRESS=60 DIRECT=0 RUNTIME=$RUNTIME ;;
	seqwrite) fio_run seqw seq-write.fio SIZE=$SEQ_SIZE COMPRESS=60 DIRECT=0 ;;
	seqread) fio_run seqr seq-read.fio SIZE=$SEQ_SIZE DIRECT=0 ;;
	cp) cp -a "$DATA/tree" "$MNT/tree" && sync ;;
	tar) tar -xf "$DATA/small.tar" -C "$MNT/small" && sync ;;
	esac >"$LOGS/workload.out" || note "the $WORKLOAD workload failed"
	log "$WORKLOAD took $(since "$t0") s (fio: bw_MBps iops read_lat read_p99 write_lat write_p99 = $(cat "$LOGS/workload.out"))"
	kill -INT "$pp" ${tp:+"$tp"} 2>/dev/null || true
	wait "$pp" ${tp:+"$tp"} 2>/dev/null || true
	perf report -i "$OUT/perf.data" --no-children --sort sym --stdio -g none 2>/dev/null |
		grep -E '^ +[0-9]' | head -40 >"$OUT/perf-self.txt" || true
	perf report -i "$OUT/perf.data" --children --sort sym --stdio -g none 2>/dev/null |
		grep -E '^ +[0-9]' | grep -E 'zsfs::|ZsfsFuse|lz4' | head -40 >"$OUT/perf-children.txt" || true
	if [ -n "$tp" ]; then
		perf script -i "$OUT/fuse-ops.data" 2>/dev/null | grep "connection $conn " |
			grep -o 'opcode [0-9]* ([A-Z_]*)' | sort | uniq -c | sort -rn >"$OUT/fuse-ops.txt" || true
	fi
	teardown_zsfs
	{
		echo "== $WORKLOAD on zsfs: daemon, self time (perf-self.txt)"
		head -25 "$OUT/perf-self.txt"
		echo "== zsfs functions, with children (perf-children.txt)"
		head -25 "$OUT/perf-children.txt"
		[ -z "$tp" ] || { echo "== FUSE requests sent to this mount (fuse-ops.txt)"; cat "$OUT/fuse-ops.txt"; }
		echo "== flame graph: perf script -i $OUT/perf.data | stackcollapse-perf.pl | flamegraph.pl > flame.svg"
	} | tee "$OUT/profile.txt"
}

case $MODE in
profile)
	run_profile
	exit 0
	;;
quick | full) run_compare ;;
writeback) run_writeback ;;
blocksize) run_blocksize ;;
esac

python3 "$REPORT" build "$OUT"
ln -sfn "$(basename "$OUT")" "$(dirname "$OUT")/latest" 2>/dev/null || true
