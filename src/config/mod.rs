//! The mount's configuration: what `-o size=...,block_size=...` turns into.
//!
//! This module says what each knob means and what its default is (the one
//! place defaults are written: `Config::default`); `options.rs` is the
//! option language that fills it, `validate.rs` the ranges every value must
//! be in, `size.rs` the size units, `help.rs`
//! the `--help` text. `mount.rs` is the only reader of a `Config`: it checks
//! it with [`Config::validate`] and hands each layer its own settings.

mod help;
pub mod options;
mod size;
mod validate;

pub use help::OPTIONS_HELP;
pub use options::{
    absolutize_paths, apply_options, apply_options_with_ram, mount_source, parse_options,
    OptionDoc, OptionError, MOUNT_OPTIONS, SIZE_NOTE,
};
pub use size::{parse_pool_limit, parse_size};
pub use validate::{check_recompress_level, ConfigError};

use std::path::PathBuf;

/// How the kernel page cache is used for file data (`cache=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheMode {
    /// The kernel caches file data (uncompressed) like any filesystem.
    #[default]
    Auto,
    /// Direct I/O: every read and write reaches zsfs; mmap still allowed.
    None,
}

/// Where cold zspages are written (`backing=`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Backing {
    /// An unlinked temporary file in `$TMPDIR` (the default).
    #[default]
    TempFile,
    /// A file at this path, created 0600.
    Path(PathBuf),
    /// No writeback: the pool limit makes writes fail with ENOSPC (zram's mem_limit).
    None,
}

/// A pool limit given as bytes or as a share of physical RAM (`pool_limit=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolLimit {
    Bytes(u64),
    /// Percent of physical RAM, 1..=100.
    Percent(u8),
}

/// When reading a file updates its atime. FUSE inodes carry S_NOATIME, so
/// the kernel never does it: zsfs applies the mount's rule itself (at open
/// for reading and at READ; see `fs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AtimeMode {
    /// Only when atime is not newer than mtime or ctime, or is a day old
    /// (the kernel's default, and tmpfs's).
    #[default]
    Relatime,
    /// On every read.
    Strict,
    /// Never.
    NoAtime,
}

/// VFS mount flags (`ro`, `nosuid`, ...), as for any filesystem. The
/// defaults are FUSE's: nosuid and nodev (fusermount3 forces them for
/// ordinary users; root may ask for `suid`/`dev`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountFlags {
    /// `ro`: the kernel refuses every write.
    pub read_only: bool,
    /// `nosuid` (default) / `suid`.
    pub nosuid: bool,
    /// `nodev` (default) / `dev`: device nodes can be made but not opened.
    pub nodev: bool,
    /// `noexec`: no execution of binaries.
    pub noexec: bool,
    /// `relatime` (default), `strictatime` or `noatime`.
    pub atime: AtimeMode,
    /// `nodiratime`: directories' atime is never updated.
    pub nodiratime: bool,
    /// `sync`: all I/O synchronous.
    pub sync: bool,
    /// `dirsync`: directory changes synchronous.
    pub dirsync: bool,
}

impl Default for MountFlags {
    fn default() -> Self {
        MountFlags {
            read_only: false,
            nosuid: true,
            nodev: true,
            noexec: false,
            atime: AtimeMode::Relatime,
            nodiratime: false,
            sync: false,
            dirsync: false,
        }
    }
}

/// Everything a mount is configured with. `Default` is what `zsfs MOUNTPOINT`
/// with no `-o` gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Logical byte limit (`size=`): sum of file sizes rounded up to blocks,
    /// as tmpfs counts it. ENOSPC past it. Default: half of physical RAM.
    pub size: u64,
    /// Inode limit (`nr_inodes=`). Default: as tmpfs, half the RAM pages.
    pub nr_inodes: u64,
    /// Permission bits of the root directory (`mode=`). Default 01777.
    pub mode: u32,
    /// Owner of the root directory (`uid=`). Default: the mounting user.
    pub uid: u32,
    /// Group of the root directory (`gid=`). Default: the mounting group.
    pub gid: u32,
    /// Bytes per file block (`block_size=`): a power of two in 4 KiB..=128 KiB.
    pub block_size: u32,
    /// FUSE request threads (`threads=`). Default: the number of CPUs.
    pub threads: usize,
    /// Kernel page cache use (`cache=auto|none`).
    pub cache: CacheMode,
    /// Let users other than the mounter in (`allow_other`).
    pub allow_other: bool,
    /// Pool memory limit (`pool_limit=`); `None` means no limit.
    pub pool_limit: Option<PoolLimit>,
    /// Once over the pool limit, write back until under this percent of it
    /// (`accept_threshold=`, zswap's default 90).
    pub accept_threshold: u8,
    /// The shrinker rotates a zspage read since it last looked once before
    /// writing it back (`second_chance=on|off`, zswap's referenced bit).
    pub second_chance: bool,
    /// Identical blocks share one pool object (`dedup=on|off`); off stores
    /// every block separately, exactly as before dedup existed.
    pub dedup: bool,
    /// Extended attributes and POSIX ACLs (`xattr=on|off`). Off refuses the
    /// xattr requests with ENOSYS, after which the kernel answers them
    /// itself (EOPNOTSUPP) and stops asking: no `security.capability`
    /// lookup on a new file's first write or on each chown.
    pub xattr: bool,
    /// Most dirty page-cache bytes the kernel may hold for this mount before
    /// it throttles writers to the daemon's pace (`max_dirty=SIZE|kernel`).
    /// `None` leaves FUSE's own default: a strict 1 % share of the dirty
    /// limit, meant for untrusted daemons. Never above half the free space
    /// of `size=` (see `fuse::dirty`).
    pub max_dirty: Option<u64>,
    /// Writeback target (`backing=`).
    pub backing: Backing,
    /// Recompress blocks not written or read for this long with zstd
    /// (`recompress_after=DURATION|off`); `None` turns it off.
    pub recompress_after: Option<std::time::Duration>,
    /// zstd level of recompression (`recompress_level=`).
    pub recompress_level: i32,
    /// Most bytes of consecutive blocks packed into one unit
    /// (`recompress_unit=`); at least one block.
    pub recompress_unit: u32,
    /// Name of the control file at the mount's root (`control=`).
    pub control_name: String,
    /// VFS flags passed to the kernel with the mount.
    pub mount_flags: MountFlags,
    /// The mount's source, shown in /proc/mounts, df and findmnt (`zsfs
    /// SOURCE DIR`, or mount(8)'s first argument), as tmpfs shows its own.
    pub source: String,
    /// Where the daemon logs (`log=syslog|stderr|PATH`).
    pub log: crate::sys::log::LogTarget,
}

/// The source a mount shows when none is given.
pub const DEFAULT_SOURCE: &str = "zsfs";

/// The default `max_dirty=` is what the kernel lets a disk filesystem keep
/// dirty, so zsfs absorbs rewrites as ext4 on zram does (a 1 GiB window
/// left 4 KiB random writes over a 1 GiB file at 0.7x ext4 on zram, writers
/// waiting for the daemon), but never less than this: enough to absorb
/// rewrites of a 1 GiB working set and let writeback overlap with writing.
pub const MIN_DEFAULT_MAX_DIRTY: u64 = 1 << 30;

/// Default `max_dirty=` when the kernel's global dirty threshold is
/// `threshold` bytes (None: unknown): the largest power of two not above
/// it (the kernel refuses a bdi cap above its threshold, and the threshold
/// moves with free memory), at least `MIN_DEFAULT_MAX_DIRTY`.
pub fn default_max_dirty(threshold: Option<u64>) -> u64 {
    match threshold {
        Some(t) if t >= MIN_DEFAULT_MAX_DIRTY => 1u64 << (63 - t.leading_zeros()),
        _ => MIN_DEFAULT_MAX_DIRTY,
    }
}

/// Smallest `block_size=`: the page size, so a block maps onto whole pages
/// of the page cache.
pub const MIN_BLOCK_SIZE: u32 = 4096;
/// Largest `block_size=`: the pool's largest size class.
pub const MAX_BLOCK_SIZE: u32 = 128 * 1024;

/// Default `recompress_after=`: data untouched for two minutes is rarely
/// the working set of a build or a test run, and a pass over a 1 GiB idle
/// tree costs about half a minute of a tenth of a CPU.
pub const DEFAULT_RECOMPRESS_AFTER: std::time::Duration = std::time::Duration::from_secs(120);

/// Default `recompress_level=`: zstd's own default, 2.2x on the bench's
/// tree against LZ4's 1.7x, at several hundred MB/s.
pub const DEFAULT_RECOMPRESS_LEVEL: i32 = 3;

/// `recompress_level=` range: zstd's levels without the "ultra" ones
/// (20..=22), whose windows need far more memory than a 64 KiB unit uses.
pub const MAX_RECOMPRESS_LEVEL: i32 = 19;

/// Largest and smallest `recompress_unit=`: 64 KiB is where zstd's gain
/// levels off and a random read still decompresses little; 4 KiB is a page.
pub const MAX_RECOMPRESS_UNIT: u32 = 64 * 1024;
pub const MIN_RECOMPRESS_UNIT: u32 = 4096;

/// Upper bound of `threads=`: each request loop holds a 16 MiB buffer, so
/// more than this is a mistake rather than a tuning choice.
pub const MAX_THREADS: usize = 256;

/// Physical RAM in bytes, from sysconf.
pub fn physical_ram() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let pages = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) };
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    (pages.max(0) as u64) * (page.max(0) as u64)
}

impl Default for Config {
    fn default() -> Self {
        let ram = physical_ram();
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        Config {
            size: ram / 2,
            nr_inodes: ram / 4096 / 2,
            mode: 0o1777,
            uid,
            gid,
            block_size: 4096,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            cache: CacheMode::Auto,
            allow_other: false,
            pool_limit: None,
            accept_threshold: 90,
            second_chance: true,
            dedup: true,
            xattr: true,
            max_dirty: Some(default_max_dirty(crate::sys::bdi::global_dirty_threshold())),
            backing: Backing::TempFile,
            recompress_after: Some(DEFAULT_RECOMPRESS_AFTER),
            recompress_level: DEFAULT_RECOMPRESS_LEVEL,
            recompress_unit: MAX_RECOMPRESS_UNIT,
            control_name: ".zsfs".to_string(),
            mount_flags: MountFlags::default(),
            source: DEFAULT_SOURCE.to_string(),
            log: Default::default(),
        }
    }
}

impl PoolLimit {
    /// The limit in bytes on a machine with `ram` bytes of RAM.
    pub fn bytes(self, ram: u64) -> u64 {
        match self {
            PoolLimit::Bytes(b) => b,
            PoolLimit::Percent(p) => ram / 100 * u64::from(p),
        }
    }
}
