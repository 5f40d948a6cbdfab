//! `Config::validate`: every range a mount option has, checked once, into a
//! typed error that says which limit was hit and what to write instead.
//!
//! The option parser (`options.rs`) runs the same checks on each value it
//! parses, so `-o` and a `Config` built by hand (tests, embedders) are held
//! to one set of rules; the layers below only `debug_assert` them.

use super::{
    Backing, Config, PoolLimit, MAX_BLOCK_SIZE, MAX_RECOMPRESS_LEVEL, MAX_RECOMPRESS_UNIT,
    MAX_THREADS, MIN_BLOCK_SIZE, MIN_RECOMPRESS_UNIT,
};

/// Longest name a directory entry can have (NAME_MAX), hence `control=`'s.
const NAME_MAX: usize = 255;

/// Highest permission bits `mode=` can set (setuid, setgid, sticky, rwx x3).
const MAX_MODE: u32 = 0o7777;

/// A configuration that cannot be mounted. Each message names the option,
/// the value given and the accepted range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("size= is 0: give a byte limit, or u64::MAX for no limit (what `size=0` means)")]
    ZeroSize,
    #[error(
        "nr_inodes= is 0: give an inode limit, or u64::MAX for no limit (what `nr_inodes=0` means)"
    )]
    ZeroInodes,
    #[error("mode={0:o} has bits beyond 7777: give octal permission bits up to 7777, e.g. 1777")]
    Mode(u32),
    #[error("{which}= is 4294967295, which is (uid_t)-1 (\"no change\"): give a real id")]
    Id { which: &'static str },
    #[error(
        "block_size={0} is not a power of two from {MIN_BLOCK_SIZE} to {MAX_BLOCK_SIZE}: use 4k, 16k, 64k or 128k"
    )]
    BlockSize(u32),
    #[error("threads={0} is outside 1..={MAX_THREADS}: a few per CPU is plenty")]
    Threads(usize),
    #[error("pool_limit= is 0 bytes: leave pool_limit out for no limit")]
    ZeroPoolLimit,
    #[error("pool_limit={0}% is outside 1..=100 % of RAM")]
    PoolLimitPercent(u8),
    #[error("accept_threshold={0}% is outside 1..=100 % of pool_limit (zswap's default is 90)")]
    AcceptThreshold(u8),
    #[error("recompress_level={0} is outside 1..={MAX_RECOMPRESS_LEVEL} (zstd's levels; 3 is its default)")]
    RecompressLevel(i32),
    #[error(
        "recompress_unit={0} is not a power of two from {MIN_RECOMPRESS_UNIT} to {MAX_RECOMPRESS_UNIT}: use 4k, 16k or 64k"
    )]
    RecompressUnit(u32),
    #[error("recompress_after= is 0: give a duration such as 30s or 2m, or `off`")]
    ZeroRecompressAfter,
    #[error("backing= is an empty path: give a file path, or `none` for no writeback")]
    EmptyBacking,
    #[error(
        "control={0:?} is not a file name: no `/`, not `.` or `..`, 1 to {NAME_MAX} bytes, e.g. .zsfs"
    )]
    ControlName(String),
}

impl Config {
    /// Check every field against its range. `Ok` means each layer can be
    /// built from this configuration without a panic.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.size == 0 {
            return Err(ConfigError::ZeroSize);
        }
        if self.nr_inodes == 0 {
            return Err(ConfigError::ZeroInodes);
        }
        check_mode(self.mode)?;
        check_id("uid", self.uid)?;
        check_id("gid", self.gid)?;
        check_block_size(self.block_size)?;
        check_threads(self.threads)?;
        if let Some(limit) = self.pool_limit {
            limit.check()?;
        }
        check_accept_threshold(self.accept_threshold)?;
        if matches!(&self.backing, Backing::Path(p) if p.as_os_str().is_empty()) {
            return Err(ConfigError::EmptyBacking);
        }
        check_recompress_level(self.recompress_level)?;
        check_recompress_unit(self.recompress_unit)?;
        if self.recompress_after.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::ZeroRecompressAfter);
        }
        check_control_name(&self.control_name)
    }
}

impl PoolLimit {
    /// A limit must leave room for something: non-zero bytes, 1..=100 %.
    pub fn check(self) -> Result<(), ConfigError> {
        match self {
            PoolLimit::Bytes(0) => Err(ConfigError::ZeroPoolLimit),
            PoolLimit::Percent(p) if !(1..=100).contains(&p) => {
                Err(ConfigError::PoolLimitPercent(p))
            }
            _ => Ok(()),
        }
    }
}

pub(crate) fn check_mode(mode: u32) -> Result<(), ConfigError> {
    (mode <= MAX_MODE)
        .then_some(())
        .ok_or(ConfigError::Mode(mode))
}

pub(crate) fn check_id(which: &'static str, id: u32) -> Result<(), ConfigError> {
    (id != u32::MAX)
        .then_some(())
        .ok_or(ConfigError::Id { which })
}

/// A power of two, so a byte offset splits into block and offset by shifts,
/// and within what the pool's size classes hold.
pub(crate) fn check_block_size(bs: u32) -> Result<(), ConfigError> {
    let ok = bs.is_power_of_two() && (MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&bs);
    ok.then_some(()).ok_or(ConfigError::BlockSize(bs))
}

pub(crate) fn check_threads(n: usize) -> Result<(), ConfigError> {
    (1..=MAX_THREADS)
        .contains(&n)
        .then_some(())
        .ok_or(ConfigError::Threads(n))
}

pub(crate) fn check_accept_threshold(pct: u8) -> Result<(), ConfigError> {
    (1..=100)
        .contains(&pct)
        .then_some(())
        .ok_or(ConfigError::AcceptThreshold(pct))
}

pub fn check_recompress_level(level: i32) -> Result<(), ConfigError> {
    (1..=MAX_RECOMPRESS_LEVEL)
        .contains(&level)
        .then_some(())
        .ok_or(ConfigError::RecompressLevel(level))
}

pub(crate) fn check_recompress_unit(bytes: u32) -> Result<(), ConfigError> {
    let ok =
        bytes.is_power_of_two() && (MIN_RECOMPRESS_UNIT..=MAX_RECOMPRESS_UNIT).contains(&bytes);
    ok.then_some(()).ok_or(ConfigError::RecompressUnit(bytes))
}

/// The control file is an entry of the root directory, so its name follows
/// the rules of any file name.
pub(crate) fn check_control_name(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\0')
        && name.len() <= NAME_MAX;
    ok.then_some(())
        .ok_or_else(|| ConfigError::ControlName(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_config_is_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn each_bad_field_is_named() {
        let bad = |f: fn(&mut Config)| {
            let mut c = Config::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert_eq!(bad(|c| c.block_size = 12288), ConfigError::BlockSize(12288));
        assert_eq!(bad(|c| c.block_size = 2048), ConfigError::BlockSize(2048));
        assert_eq!(bad(|c| c.threads = 0), ConfigError::Threads(0));
        assert_eq!(
            bad(|c| c.accept_threshold = 0),
            ConfigError::AcceptThreshold(0)
        );
        assert_eq!(bad(|c| c.mode = 0o17777), ConfigError::Mode(0o17777));
        assert_eq!(bad(|c| c.size = 0), ConfigError::ZeroSize);
        assert_eq!(
            bad(|c| c.recompress_level = 0),
            ConfigError::RecompressLevel(0)
        );
        assert_eq!(
            bad(|c| c.recompress_level = 20),
            ConfigError::RecompressLevel(20)
        );
        assert_eq!(
            bad(|c| c.recompress_unit = 3000),
            ConfigError::RecompressUnit(3000)
        );
        assert_eq!(
            bad(|c| c.recompress_unit = 128 << 10),
            ConfigError::RecompressUnit(128 << 10)
        );
        assert_eq!(
            bad(|c| c.recompress_after = Some(std::time::Duration::ZERO)),
            ConfigError::ZeroRecompressAfter
        );
        assert_eq!(bad(|c| c.nr_inodes = 0), ConfigError::ZeroInodes);
        assert_eq!(bad(|c| c.uid = u32::MAX), ConfigError::Id { which: "uid" });
        assert_eq!(
            bad(|c| c.pool_limit = Some(PoolLimit::Percent(101))),
            ConfigError::PoolLimitPercent(101)
        );
        assert_eq!(
            bad(|c| c.pool_limit = Some(PoolLimit::Bytes(0))),
            ConfigError::ZeroPoolLimit
        );
        assert_eq!(
            bad(|c| c.backing = Backing::Path("".into())),
            ConfigError::EmptyBacking
        );
        assert_eq!(
            bad(|c| c.control_name = "a/b".into()),
            ConfigError::ControlName("a/b".into())
        );
        let m = bad(|c| c.block_size = 3).to_string();
        assert!(
            m.contains("block_size=3") && m.contains("power of two"),
            "{m}"
        );
    }
}
