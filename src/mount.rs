//! Turning a mount's `Config` into a running filesystem: it is checked
//! ([`Config::validate`]), then each layer gets its own settings from here
//! and is built bottom up: the backing file, the pool, its reclaim thread,
//! the store, the `Fs`, and the FUSE session. No layer below reads
//! `Config` (the pool, the store, reclaim and the session take their own
//! config types); `fs` keeps the mount's live option set, which remount
//! and the control file are about.

use crate::backing::BackingFile;
use crate::config::{Backing, Config, ConfigError};
use crate::fs::Fs;
use crate::fuse::{SessionConfig, ZsfsFuse};
use crate::pool::{Pool, PoolConfig, PoolError, DEFAULT_MAX_PAGES_PER_ZSPAGE};
use crate::reclaim::{ReclaimConfig, ReclaimThread};
use crate::recompress::RecompressThread;
use crate::store::Which;
use crate::store::{Store, StoreConfig};
use std::sync::Arc;

/// The bottom layers of one mount. Keep `reclaim` alive as long as the
/// store: dropping it stops and joins the thread (the pool goes with the
/// last of the two).
pub struct Storage {
    pub store: Store,
    /// The reclaim thread; None with `backing=none`.
    pub reclaim: Option<ReclaimThread>,
}

/// The pool settings `config` implies: objects up to `block_size=`,
/// `pool_limit=` (bytes or % of RAM), `second_chance=`.
pub fn pool_config(config: &Config) -> PoolConfig {
    PoolConfig {
        // Raw blocks and zstd units are the largest objects the store
        // hands the pool.
        max_object_size: crate::store::max_object_size(config.block_size as usize),
        max_pages_per_zspage: DEFAULT_MAX_PAGES_PER_ZSPAGE,
        limit: config
            .pool_limit
            .map(|l| l.bytes(crate::config::physical_ram())),
        second_chance: config.second_chance,
    }
}

/// The reclaim settings `config` implies (`accept_threshold=`); a mount
/// always watches system memory pressure.
pub fn reclaim_config(config: &Config) -> ReclaimConfig {
    ReclaimConfig {
        accept_threshold: config.accept_threshold,
        watch_pressure: true,
    }
}

/// The store settings `config` implies (`block_size=`, `dedup=`).
pub fn store_config(config: &Config) -> StoreConfig {
    StoreConfig {
        block_size: config.block_size as usize,
        dedup: config.dedup,
    }
}

/// Open (create) the backing file `backing=` names; None for `backing=none`.
pub fn open_backing(backing: &Backing) -> std::io::Result<Option<BackingFile>> {
    Ok(match backing {
        Backing::None => None,
        Backing::TempFile => Some(BackingFile::create_temp()?),
        Backing::Path(p) => Some(BackingFile::create_at(p)?),
    })
}

/// A pool over `backing` with its reclaim thread when there is a backing
/// file (as a mount runs it); tests and benches use this too.
pub fn pool(
    pool: PoolConfig,
    backing: Option<BackingFile>,
    reclaim: ReclaimConfig,
) -> Result<(Arc<Pool>, Option<ReclaimThread>), PoolError> {
    let with_backing = backing.is_some();
    let pool = Arc::new(Pool::new(pool, backing));
    let thread = match with_backing {
        true => Some(ReclaimThread::start(pool.clone(), reclaim)?),
        false => None,
    };
    Ok((pool, thread))
}

/// Everything below `fs` for a mount configured by `config`.
pub fn storage(config: &Config) -> Result<Storage, PoolError> {
    let backing = open_backing(&config.backing)?;
    let (pool, reclaim) = pool(pool_config(config), backing, reclaim_config(config))?;
    Ok(Storage {
        store: Store::with_config(store_config(config), pool),
        reclaim,
    })
}

/// Why a mount could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// An option out of its range (a hand-built `Config`; `-o` parsing
    /// already refuses these with the word that was wrong).
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The backing file or the pool could not be set up.
    #[error("cannot set up the pool: {0} (check backing=)")]
    Pool(#[from] PoolError),
}

/// The filesystem `config` describes, with its store, pool and reclaim
/// thread (kept running by the `Fs`).
pub fn fs(config: &Config) -> Result<Fs, MountError> {
    config.validate()?;
    let Storage { store, reclaim } = storage(config)?;
    let mut fs = Fs::with_store(config, store);
    if let Some(r) = reclaim {
        fs.keep_running(Box::new(r));
    }
    Ok(fs)
}

/// [`fs`], panicking on a bad configuration: for tests.
pub fn new_fs(config: &Config) -> Fs {
    fs(config).unwrap_or_else(|e| panic!("{e}"))
}

/// What the FUSE session takes from `config`.
pub fn session_config(config: &Config) -> SessionConfig {
    SessionConfig {
        source: config.source.clone(),
        mount_flags: config.mount_flags,
        allow_other: config.allow_other,
        threads: config.threads,
        cache: config.cache,
        max_dirty: config.max_dirty,
        xattr: config.xattr,
    }
}

/// Mount a new zsfs at `mountpoint` configured by `config`; the caller
/// runs the session. See `fuse::new_session` for `on_destroy`.
pub fn session(
    config: &Config,
    mountpoint: &std::path::Path,
    on_destroy: Option<Box<dyn FnOnce() + Send>>,
) -> std::io::Result<fuser::Session<ZsfsFuse>> {
    let fs = Arc::new(fs(config).map_err(std::io::Error::other)?);
    let mut workers: Vec<Box<dyn Send + Sync>> = Vec::new();
    if let Some(after) = config.recompress_after {
        workers.push(Box::new(recompress_thread(&fs, after)?));
    }
    crate::fuse::new_session(&session_config(config), fs, workers, mountpoint, on_destroy)
}

/// The thread that recompresses `fs`'s idle blocks every `after`, at the
/// live `recompress_level=` and `recompress_unit=`. It holds the `Fs`, so
/// its owner (the session) stops it before letting the `Fs` go.
pub fn recompress_thread(
    fs: &Arc<Fs>,
    after: std::time::Duration,
) -> std::io::Result<RecompressThread> {
    let fs = fs.clone();
    RecompressThread::start(after, move |pace| {
        let r = fs.recompress(fs.pass_spec(Which::Idle, None), pace);
        if r.units > 0 {
            log::debug!("recompress: {r:?}");
        }
    })
}

/// A pool and its reclaim thread as one value, for tests and benches: it
/// derefs to the `Arc<Pool>`, and dropping it stops and joins the thread
/// first, then lets go of the pool (so `drop(pool)` closes the backing file
/// once the test's other clones are gone).
pub struct TestPool {
    // Declared first: dropped (stopped and joined) before `pool`.
    _reclaim: Option<ReclaimThread>,
    pool: Arc<Pool>,
}

impl std::ops::Deref for TestPool {
    type Target = Arc<Pool>;
    fn deref(&self) -> &Arc<Pool> {
        &self.pool
    }
}

/// For tests and benches: a pool with `config` over the backing file
/// `backing` names, with its reclaim thread (default `accept_threshold=`,
/// not watching system pressure, so runs do not depend on the machine).
/// Panics if the backing file cannot be created.
pub fn test_pool(config: PoolConfig, backing: &Backing) -> TestPool {
    let file = open_backing(backing).unwrap_or_else(|e| panic!("{e}"));
    let reclaim = ReclaimConfig {
        watch_pressure: false,
        ..reclaim_config(&Config::default())
    };
    let (pool, reclaim) = pool(config, file, reclaim).unwrap_or_else(|e| panic!("{e}"));
    TestPool {
        _reclaim: reclaim,
        pool,
    }
}
