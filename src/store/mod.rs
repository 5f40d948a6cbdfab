//! Block store: the codec between fixed-size file blocks and pool objects.
//!
//! Every block handed to [`Store::put`] is exactly `block_size` bytes (the
//! filesystem zero-fills the tail of a file's last block), so no length is
//! stored with an object. A block becomes one of three things, as zram does it:
//!
//! * **same-filled**: every byte equal -> [`Block::Same`], the byte itself, no
//!   pool object at all (zram's `same_pages`). All-zero blocks written by
//!   `dd if=/dev/zero` or `fallocate` cost nothing but the map entry.
//! * **huge**: LZ4 does not get it below `huge_threshold` -> stored raw
//!   ([`Block::Raw`]). Such an object would take a zspage page of its own
//!   anyway, so compressing it only costs CPU on every read (zram's
//!   `huge_pages`).
//! * otherwise: LZ4 block format (lz4_flex) -> [`Block::Lz4`].
//!
//! With `dedup=on` (the default) a block that is not same-filled is first
//! looked up by content in the dedup index (`dedup.rs`): if an object with
//! exactly these bytes is in memory, the new block names the same handle
//! and takes a reference, without compressing or allocating. `free` drops a
//! reference; the last one frees the object. Two blocks with equal handles
//! are therefore normal, and `Block` stays a plain `Copy` value.
//! [`Store::share`] takes such a reference for a block already held (a copy
//! of a file range), so a copy costs neither pool memory nor compression;
//! without dedup it stores a copy of the block (see there why).
//!
//! Counters: `orig_data_size`, `same_pages`, `huge_pages` and
//! `compressed_pages` count blocks (logical); `compr_data_size` counts each
//! pool object once, as zram does with dedup; `dedup_pages` counts blocks
//! served by an object another block already holds.
//!
//! Each pool object has one word of the store's beside it (`meta.rs`): the
//! dedup index's key and reference count for it, recompression's marks,
//! and for a zstd unit the blocks naming it.
//!
//! The store's only locks are the dedup index's shard locks (see its lock
//! order); counters are atomics, the pool synchronises internally, and the
//! scratch buffers are per thread. Callers (the fs core) serialise access
//! to one block through the owning inode's lock, so compression never runs
//! under a global lock.

mod commands;
mod dedup;
mod meta;
mod recompress;
mod stats;
pub(crate) mod unit;

pub use crate::pool::{ClassStats, PoolStats, WritebackReport, WritebackRequest};
use crate::pool::{Handle, Pool, PoolConfig, PoolError};
use dedup::{Dedup, Key, Release};
use meta::Meta;
pub use recompress::{Outcome, Which};
pub use stats::StoreStats;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
pub use unit::{max_object_size, MAX_UNIT_BLOCKS};

/// A stored block. 8 bytes; lives in the inode's block map. With dedup,
/// several blocks may name one handle; each is one reference. Blocks of a
/// zstd unit name its handle too, each with its place in the unit.
///
/// `repr(u8)` with odd discriminants: the first byte of a `Block` is its
/// tag, and odd, which is how a file's block map (`fs/data/map.rs`) tells
/// a block kept in its own word from a pointer (whose low byte is even).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Block {
    /// Every byte of the block is this value; nothing in the pool.
    Same(u8) = 1,
    /// LZ4 block-compressed object in the pool.
    Lz4(Handle) = 3,
    /// Uncompressed object of exactly `block_size` bytes in the pool.
    Raw(Handle) = 5,
    /// Block `index` of a recompressed unit (`recompress.rs`, `unit.rs`).
    /// `index` first, so the tag, it and the handle take 8 bytes.
    Zstd { index: u8, unit: Handle } = 7,
}

// The block map relies on these.
const _: () = assert!(std::mem::size_of::<Block>() == 8);
const _: () = assert!(std::mem::size_of::<Option<Block>>() == 8);

/// Why a block could not be stored or loaded, or a pool command failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The pool refused the allocation (its memory limit); maps to ENOSPC.
    #[error("{0}")]
    NoSpace(PoolError),
    /// Backing-file I/O, checksum or decompression failure; maps to EIO.
    #[error("{0}")]
    Io(String),
    /// A writeback command on a mount with `backing=none`; maps to ENODEV.
    #[error("{}", PoolError::NoBacking)]
    NoBacking,
    /// A writeback command's backing-file I/O failed; maps to its own errno
    /// (ENOSPC for a full backing disk).
    #[error("backing file I/O error: {0}")]
    Backing(std::io::Error),
}

impl StoreError {
    /// The errno a filesystem call or a control-file command reports for
    /// this error. The one place pool and store errors become errnos.
    pub fn errno(&self) -> i32 {
        match self {
            StoreError::NoSpace(_) => libc::ENOSPC,
            StoreError::Io(_) => libc::EIO,
            StoreError::NoBacking => libc::ENODEV,
            StoreError::Backing(e) => e.raw_os_error().unwrap_or(libc::EIO),
        }
    }

    /// A pool command's error (writeback, compaction of records): unlike
    /// the data path, backing-file I/O keeps its errno.
    fn command(e: PoolError) -> StoreError {
        match e {
            PoolError::NoBacking => StoreError::NoBacking,
            PoolError::Io(io) => StoreError::Backing(io),
            other => StoreError::from(other),
        }
    }
}

impl From<PoolError> for StoreError {
    fn from(e: PoolError) -> Self {
        match e {
            // Out of memory budget or out of handles: either way the
            // filesystem is full, not broken.
            PoolError::LimitReached { .. } | PoolError::HandlesExhausted { .. } => {
                StoreError::NoSpace(e)
            }
            other => StoreError::Io(other.to_string()),
        }
    }
}

/// Store settings (from `Config` through `crate::mount`).
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Bytes per block; a power of two in 4 KiB..=128 KiB, and the pool's
    /// `max_object_size` (raw blocks are its largest objects).
    pub block_size: usize,
    /// Content dedup (`dedup=`).
    pub dedup: bool,
}

/// The codec plus the pool it stores into.
pub struct Store {
    /// Where objects live. Shared only with its reclaim thread; everything
    /// above reaches it through the store's methods.
    pool: Arc<Pool>,
    /// Bytes per block; a power of two in 4 KiB..=128 KiB.
    block_size: usize,
    /// A compressed block must be smaller than this to be stored compressed.
    huge_threshold: usize,
    /// Sum of `block_size` over every live block (same, raw and lz4).
    orig_data_size: AtomicU64,
    /// Live `Block::Same` blocks.
    same_pages: AtomicU64,
    /// Live `Block::Raw` blocks.
    huge_pages: AtomicU64,
    /// Live `Block::Lz4` blocks.
    compressed_pages: AtomicU64,
    /// Sum of pool object sizes over live objects (each shared object once).
    compr_data_size: AtomicU64,
    /// Cumulative count of blocks that compressed too poorly to keep.
    reject_compress_poor: AtomicU64,
    /// The content index; `None` with `dedup=off` (every block its own object).
    dedup: Option<Dedup>,
    /// Sum over indexed objects of (refs - 1).
    dedup_pages: AtomicU64,
    /// Sum over indexed objects of (refs - 1) * object length.
    dedup_data_size: AtomicU64,
    /// Cumulative hash matches that failed the content comparison.
    dedup_collisions: AtomicU64,
    /// Per-handle recompression state: access and skip marks, unit
    /// reference counts (`recompress.rs`).
    meta: Meta,
    /// Live `Block::Zstd` blocks.
    recomp_pages: AtomicU64,
    /// Live unit objects, and the bytes they hold.
    recomp_units: AtomicU64,
    recomp_data_size: AtomicU64,
    /// Cumulative: units zstd did not make small enough; units the pool
    /// refused; block reads served from units.
    recomp_skipped: AtomicU64,
    recomp_failed: AtomicU64,
    recomp_reads: AtomicU64,
    /// Unit objects freed so far: a thread's cached unit is stale once this
    /// moved (`recompress.rs`).
    unit_frees: AtomicU64,
    /// This store among all in the process, for the per-thread unit cache.
    id: u64,
}

/// Source of `Store::id`.
static STORES: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// LZ4 output scratch, sized for the largest block; one per request thread.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// A dedup candidate decompressed for comparison; one per request thread.
    static VERIFY: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Store {
    /// A store of `block_size`-byte blocks over a fresh in-memory pool (no
    /// limit, no backing file), dedup on: tests.
    pub fn new(block_size: usize) -> Store {
        let config = PoolConfig::unlimited(unit::max_object_size(block_size));
        Store::with_pool(block_size, Arc::new(Pool::new(config, None)))
    }

    /// A store over an existing pool, dedup on.
    pub fn with_pool(block_size: usize, pool: Arc<Pool>) -> Store {
        Store::with_config(
            StoreConfig {
                block_size,
                dedup: true,
            },
            pool,
        )
    }

    /// A store configured by `config` over `pool` (whose `max_object_size`
    /// is `unit::max_object_size(config.block_size)`: raw blocks and units
    /// are its largest objects).
    pub fn with_config(config: StoreConfig, pool: Arc<Pool>) -> Store {
        let block_size = config.block_size;
        // Config::validate rejects other block sizes before they get here.
        debug_assert!(block_size.is_power_of_two() && (4096..=128 * 1024).contains(&block_size));
        debug_assert_eq!(pool.max_object_size(), unit::max_object_size(block_size));
        Store {
            pool,
            block_size,
            // zsmalloc's huge class starts near 13/16 of a page: an object
            // above that shares its page with nobody, so storing it
            // compressed saves nothing and costs a decompression per read.
            huge_threshold: block_size / 16 * 13,
            orig_data_size: AtomicU64::new(0),
            same_pages: AtomicU64::new(0),
            huge_pages: AtomicU64::new(0),
            compressed_pages: AtomicU64::new(0),
            compr_data_size: AtomicU64::new(0),
            reject_compress_poor: AtomicU64::new(0),
            dedup: config.dedup.then(Dedup::new),
            dedup_pages: AtomicU64::new(0),
            dedup_data_size: AtomicU64::new(0),
            dedup_collisions: AtomicU64::new(0),
            meta: Meta::new(),
            recomp_pages: AtomicU64::new(0),
            recomp_units: AtomicU64::new(0),
            recomp_data_size: AtomicU64::new(0),
            recomp_skipped: AtomicU64::new(0),
            recomp_failed: AtomicU64::new(0),
            recomp_reads: AtomicU64::new(0),
            unit_frees: AtomicU64::new(0),
            id: STORES.fetch_add(1, Ordering::Relaxed),
        }
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Store one block of exactly `block_size` bytes.
    pub fn put(&self, data: &[u8]) -> Result<Block, StoreError> {
        assert_eq!(data.len(), self.block_size, "store takes whole blocks");
        if let Some(b) = same_filled(data) {
            self.same_pages.fetch_add(1, Ordering::Relaxed);
            self.orig_data_size
                .fetch_add(self.block_size as u64, Ordering::Relaxed);
            return Ok(Block::Same(b));
        }
        let Some(dedup) = &self.dedup else {
            return self.put_new(data);
        };
        let key = Key::of(data);
        if let Some(h) = dedup.lookup(&self.meta, key, |h| self.holds(h, data)) {
            let len = self.pool.object_len(h) as u64;
            self.dedup_pages.fetch_add(1, Ordering::Relaxed);
            self.dedup_data_size.fetch_add(len, Ordering::Relaxed);
            self.orig_data_size
                .fetch_add(self.block_size as u64, Ordering::Relaxed);
            // Raw objects are exactly a block; compressed ones are smaller.
            return Ok(if len == self.block_size as u64 {
                self.huge_pages.fetch_add(1, Ordering::Relaxed);
                Block::Raw(h)
            } else {
                self.compressed_pages.fetch_add(1, Ordering::Relaxed);
                Block::Lz4(h)
            });
        }
        // Compressed and allocated with no shard lock held; a writer storing
        // the same bytes meanwhile makes a second indexed copy, which costs
        // memory until one is freed, never correctness.
        let block = self.put_new(data)?;
        if let Block::Lz4(h) | Block::Raw(h) = block {
            dedup.insert(&self.meta, key, h);
        }
        Ok(block)
    }

    /// Whether `h` (an indexed object, kept alive by the caller's shard
    /// lock) is in memory and holds exactly `data`. A written-back object is
    /// not compared (that would be a disk read under the shard lock), nor is
    /// one whose read fails.
    fn holds(&self, h: Handle, data: &[u8]) -> bool {
        if !self.pool.is_resident(h) {
            return false;
        }
        let raw = self.pool.object_len(h) == self.block_size;
        let same = self.pool.read_with(h, |src| {
            if raw {
                return src == data;
            }
            VERIFY.with(|v| {
                let mut out = v.borrow_mut();
                out.resize(self.block_size, 0);
                matches!(lz4_flex::block::decompress_into(src, &mut out), Ok(n) if n == data.len())
                    && out[..] == *data
            })
        });
        match same {
            Ok(true) => true,
            Ok(false) => {
                self.dedup_collisions.fetch_add(1, Ordering::Relaxed);
                false
            }
            Err(e) => {
                log::debug!("dedup: candidate unreadable ({e}); storing a new copy");
                false
            }
        }
    }

    /// Compress and allocate a new object for a block that is not same-filled.
    fn put_new(&self, data: &[u8]) -> Result<Block, StoreError> {
        let block = SCRATCH.with(|s| {
            let mut out = s.borrow_mut();
            let need = lz4_flex::block::get_maximum_output_size(self.block_size);
            if out.len() < need {
                out.resize(need, 0);
            }
            match lz4_flex::block::compress_into(data, &mut out) {
                Ok(n) if n < self.huge_threshold => {
                    let h = self.pool.alloc(&out[..n])?;
                    self.compressed_pages.fetch_add(1, Ordering::Relaxed);
                    self.compr_data_size.fetch_add(n as u64, Ordering::Relaxed);
                    Ok::<_, StoreError>(Block::Lz4(h))
                }
                _ => {
                    self.reject_compress_poor.fetch_add(1, Ordering::Relaxed);
                    let h = self.pool.alloc(data)?;
                    self.huge_pages.fetch_add(1, Ordering::Relaxed);
                    self.compr_data_size
                        .fetch_add(data.len() as u64, Ordering::Relaxed);
                    Ok(Block::Raw(h))
                }
            }
        })?;
        if let Block::Lz4(h) | Block::Raw(h) = block {
            self.meta.born(h);
        }
        self.orig_data_size
            .fetch_add(self.block_size as u64, Ordering::Relaxed);
        Ok(block)
    }

    /// Bytes a stored block takes in the pool (0 for same-filled); for a
    /// block of a unit, its share of the unit (the unit's bytes over the
    /// blocks that still name it).
    pub(crate) fn stored_len(&self, block: &Block) -> usize {
        match *block {
            Block::Same(_) => 0,
            Block::Lz4(h) | Block::Raw(h) => self.pool.object_len(h),
            Block::Zstd { unit, .. } => {
                let refs = self.meta.unit_refs(unit).max(1) as usize;
                self.pool.object_len(unit).div_ceil(refs)
            }
        }
    }

    /// Load a block into `out` (exactly `block_size` bytes).
    pub fn get(&self, block: &Block, out: &mut [u8]) -> Result<(), StoreError> {
        debug_assert_eq!(out.len(), self.block_size);
        match *block {
            Block::Same(b) => {
                out.fill(b);
                Ok(())
            }
            Block::Zstd { unit, index } => self.get_from_unit(unit, index, out),
            Block::Raw(h) => {
                self.meta.touch(h);
                self.read_raw(h, out)
            }
            Block::Lz4(h) => {
                self.meta.touch(h);
                self.read_lz4(h, out)
            }
        }
    }

    /// An uncompressed object into `out`.
    fn read_raw(&self, h: Handle, out: &mut [u8]) -> Result<(), StoreError> {
        self.pool.read_with(h, |src| {
            if src.len() != out.len() {
                return Err(StoreError::Io(format!(
                    "raw block object is {} bytes, expected {}",
                    src.len(),
                    out.len()
                )));
            }
            out.copy_from_slice(src);
            Ok(())
        })?
    }

    /// An LZ4 object, decompressed into `out`.
    fn read_lz4(&self, h: Handle, out: &mut [u8]) -> Result<(), StoreError> {
        self.pool
            .read_with(h, |src| match lz4_flex::block::decompress_into(src, out) {
                Ok(n) if n == out.len() => Ok(()),
                Ok(n) => Err(StoreError::Io(format!(
                    "compressed block decodes to {n} bytes, expected {}",
                    out.len()
                ))),
                Err(e) => Err(StoreError::Io(format!("corrupt compressed block: {e}"))),
            })?
    }

    /// Load a block without marking it accessed: what a recompression pass
    /// reads is not a use of the data.
    pub(super) fn peek(&self, block: &Block, out: &mut [u8]) -> Result<(), StoreError> {
        match *block {
            Block::Raw(h) => self.read_raw(h, out),
            Block::Lz4(h) => self.read_lz4(h, out),
            _ => self.get(block, out),
        }
    }

    /// Drop a block: one reference to its object; the last frees it.
    pub fn free(&self, block: Block) {
        self.orig_data_size
            .fetch_sub(self.block_size as u64, Ordering::Relaxed);
        let h = match block {
            Block::Same(_) => {
                self.same_pages.fetch_sub(1, Ordering::Relaxed);
                return;
            }
            Block::Raw(h) => {
                self.huge_pages.fetch_sub(1, Ordering::Relaxed);
                h
            }
            Block::Lz4(h) => {
                self.compressed_pages.fetch_sub(1, Ordering::Relaxed);
                h
            }
            Block::Zstd { unit, .. } => return self.free_from_unit(unit),
        };
        // Read before release: after the last reference the handle may be reused.
        let n = self.pool.object_len(h) as u64;
        let release = self
            .dedup
            .as_ref()
            .map_or(Release::NotIndexed, |d| d.release(&self.meta, h));
        if release == Release::Shared {
            self.dedup_pages.fetch_sub(1, Ordering::Relaxed);
            self.dedup_data_size.fetch_sub(n, Ordering::Relaxed);
            return;
        }
        self.compr_data_size.fetch_sub(n, Ordering::Relaxed);
        self.meta.died(h);
        self.pool.free(h);
    }

    /// Another block with `block`'s content, for a copy (`copy_file_range`)
    /// that shares objects instead of decompressing and compressing again.
    /// The caller holds `block` (so its object is alive) and owns the result
    /// as one more block: `free` it like any other.
    ///
    /// * Same-filled: the byte again, nothing in the pool.
    /// * An object in the dedup index (every object with `dedup=on`, in
    ///   memory or written back): one more reference, no pool memory, no
    ///   compression, no read. Counted as a dedup hit (`dedup_pages`).
    /// * A block of a unit: one more reference to the unit, with or
    ///   without dedup (units are never in the dedup index).
    /// * Otherwise (`dedup=off`, or a count at its 2^30 - 1 ceiling): the
    ///   block is read and stored again, a copy of its own. Registering
    ///   objects in an index that `dedup=off` promised not to keep would
    ///   change what that option means; callers that care (the fs core)
    ///   ask [`Store::shares_objects`] and copy bytes outside their locks.
    pub fn share(&self, block: &Block) -> Result<Block, StoreError> {
        let h = match *block {
            Block::Same(b) => {
                self.same_pages.fetch_add(1, Ordering::Relaxed);
                self.orig_data_size
                    .fetch_add(self.block_size as u64, Ordering::Relaxed);
                return Ok(Block::Same(b));
            }
            Block::Zstd { unit, .. } if self.meta.unit_ref(unit) => {
                self.recomp_pages.fetch_add(1, Ordering::Relaxed);
                self.orig_data_size
                    .fetch_add(self.block_size as u64, Ordering::Relaxed);
                return Ok(*block);
            }
            Block::Zstd { .. } => return self.copy_of(block),
            Block::Lz4(h) | Block::Raw(h) => h,
        };
        if self.dedup.as_ref().is_some_and(|d| d.share(&self.meta, h)) {
            let len = self.pool.object_len(h) as u64;
            self.dedup_pages.fetch_add(1, Ordering::Relaxed);
            self.dedup_data_size.fetch_add(len, Ordering::Relaxed);
            self.orig_data_size
                .fetch_add(self.block_size as u64, Ordering::Relaxed);
            match block {
                Block::Raw(_) => self.huge_pages.fetch_add(1, Ordering::Relaxed),
                _ => self.compressed_pages.fetch_add(1, Ordering::Relaxed),
            };
            return Ok(*block);
        }
        self.copy_of(block)
    }

    /// A block of its own with `block`'s content (`share` when it cannot
    /// take a reference).
    fn copy_of(&self, block: &Block) -> Result<Block, StoreError> {
        let mut buf = vec![0u8; self.block_size];
        self.get(block, &mut buf)?;
        self.put(&buf)
    }

    /// Whether [`Store::share`] takes references (dedup on) rather than
    /// storing copies.
    pub fn shares_objects(&self) -> bool {
        self.dedup.is_some()
    }

    /// Blocks naming the object of `block` (1 without dedup; 0 for same-filled).
    pub fn refs(&self, block: &Block) -> u64 {
        match (*block, &self.dedup) {
            (Block::Same(_), _) => 0,
            (Block::Zstd { unit, .. }, _) => self.meta.unit_refs(unit),
            (Block::Lz4(h) | Block::Raw(h), Some(d)) => d.refs(&self.meta, h).max(1),
            (_, None) => 1,
        }
    }

    /// Assert the pool's and the dedup index's invariants. Safe while other
    /// threads put, free, compact and write back (tests' checker threads).
    pub fn debug_check_consistency(&self) {
        self.pool.debug_check_consistency();
        if let Some(d) = &self.dedup {
            d.debug_check(&self.meta, &self.pool);
        }
    }

    /// Also assert that the counters agree with the pool and the index.
    /// Only when nothing else runs: no put or free (the store's counters
    /// and the pool's change at different moments; the pool's own
    /// in-memory + on-disk totals are exact at any time).
    pub fn debug_check_quiescent(&self) {
        self.pool.debug_check_consistency();
        let ps = self.pool.stats();
        let st = self.stats();
        if let Some(d) = &self.dedup {
            let (objects, refs) = d.debug_check(&self.meta, &self.pool);
            assert_eq!(
                objects + st.recomp_units,
                ps.objects + ps.disk_objects,
                "indexed objects and units vs pool objects"
            );
            assert_eq!(refs - objects, st.dedup_pages, "dedup_pages");
        }
        assert_eq!(
            st.compr_data_size,
            ps.bytes_stored + ps.disk_bytes,
            "compr_data_size vs pool bytes"
        );
        assert_eq!(
            st.huge_pages + st.compressed_pages + st.recomp_units,
            ps.objects + ps.disk_objects + st.dedup_pages,
            "blocks and units vs objects + shared references"
        );
    }

    pub fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
    }

    /// The pool itself, for tests that drive it directly (churn threads,
    /// stats). `fs` does not use it: it has the commands below.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}

/// `Some(b)` when every byte of `data` is `b`. Compares 8 bytes at a time.
fn same_filled(data: &[u8]) -> Option<u8> {
    let first = *data.first()?;
    let word = u64::from_ne_bytes([first; 8]);
    let chunks = data.chunks_exact(8);
    let rest = chunks.remainder();
    if chunks
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
        .all(|w| w == word)
        && rest.iter().all(|&x| x == first)
    {
        Some(first)
    } else {
        None
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod dedup_tests;

#[cfg(test)]
mod recompress_tests;
