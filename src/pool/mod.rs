//! The compressed-object pool: a zsmalloc analogue in user space.
//!
//! # Design
//!
//! Objects (compressed file blocks) go into *size classes* (see `class.rs`:
//! 32 B..4 KiB in 16 B steps, then 128 classes per doubling up to the largest
//! block size, 128 KiB; classes of equal shape merged). Each class owns
//! *zspages* (`zspage.rs`): chains of 4 KiB pages taken from the page arena
//! (`pages.rs`, mmap'd chunks, freed pages given back with `MADV_DONTNEED`).
//! A zspage of a class of size s holds `pages * 4096 / s` slots; slot i
//! starts at byte `i * s` of the chain and may straddle a page boundary
//! (pages are not virtually contiguous, so such an object is copied in two
//! pieces). An object larger than a page simply spans several pages of its
//! chain. A class with one slot per zspage is *huge*: the object has pages of
//! its own.
//!
//! Users hold a `Handle`: an index into the handle table (`handles.rs`),
//! whose entry says where the object is now (zspage and slot, or an offset
//! in the backing file). Compaction and writeback move objects by rewriting
//! the entry; each zspage keeps, per slot, the handle id stored there, so a
//! mover finds the entry to rewrite.
//!
//! Zspages sit in one of 12 *fullness groups* per class (0 %, 10 %, ..., 90 %,
//! 99 %, 100 % of slots in use, computed as zsmalloc does). Allocation takes
//! the fullest zspage that is not full; compaction (`compact.rs`) moves
//! objects from the emptiest zspages into the fullest and frees the emptied
//! ones, then gives a class whose slab of zspage descriptors is mostly holes
//! (it grew to a peak that is gone) lower ids and shrinks the slab. A zspage
//! that becomes empty is freed at once.
//!
//! Each class also keeps an *LRU* of its zspages (`list.rs`, intrusive),
//! ordered by the clock value they were last put at the head with. Only
//! these move a zspage to the head, all under the class lock (the lock
//! isolation takes), none on a read path: an allocation into it, writeback's
//! second chance for a referenced zspage, and putting an isolated zspage
//! back after a failed write; a zspage leaves the LRU when it is isolated or
//! freed. A zspage is in one of two explicit states (`ZsState`): `Listed`
//! (in a fullness group and in the LRU) or `Isolated` (in neither: taken by
//! writeback; it gets no new objects and compaction does not see it; frees
//! of its objects are still allowed and just clear the slot). Reads set the
//! zspage's `referenced` flag (a plain field under the class lock, no list
//! surgery) for the second chance.
//!
//! The pool is the mechanism; the policy of when and how much to write back
//! lives in `crate::reclaim`, which no pool code uses. An optional limit
//! counts pages in zspages (`pages_used`); only creating a zspage reserves
//! pages, so an allocation into an existing zspage never fails on it. At the
//! limit, `alloc` writes cold zspages back itself when there is a backing
//! file (`writeback.rs`, "direct reclaim") and tells the `Reclaimer`, if one
//! is attached, so it can get the pool under its target; otherwise it fails
//! with `LimitReached` having changed nothing.
//!
//! # Locks and lock order
//!
//! 1. `classes[i]` (one mutex per class). Guards the class's zspages, their
//!    pages' bytes, its lists, its free handle ids, and every handle entry
//!    whose location is in memory in that class. When several are held
//!    (only `debug_check_consistency`) they are taken in increasing index.
//! 2. `disk_rw` (read/write lock; read side by disk reads and frees, write
//!    side by rewriting backing-file records and the consistency check):
//!    guards handle entries whose location is on disk and the bytes there.
//! 3. `moving` (read/write lock, guards no data): held shared by writeback
//!    and record rewriting while they move objects' counts between memory
//!    and disk, exclusively by `stats`, so a reader never sees an object
//!    counted twice or not at all.
//! 4. Leaves, never held together and nothing taken under them: the backing
//!    file's space mutex, the page arena's mutex, and whatever lock the
//!    `Reclaimer` takes when told (called with no pool lock held).
//!
//! A path may take a lock only if it holds none that comes later in this
//! list. A read takes one class lock (object in memory) or the shared side
//! of `disk_rw` (object on disk; readers never wait for each other there,
//! only for a record rewrite), so reads of different objects never wait on
//! a pool-wide lock. Record writes and whole-record reads (`pwrite`/`pread`)
//! run with no pool lock held; a disk object's frame is read under the
//! shared `disk_rw`, and the consistency check reads frames holding every
//! lock. A new 2 MiB mapping and `MADV_POPULATE_WRITE` of fresh pages run
//! under the arena mutex, from `alloc`, so inside the class lock too.
//! `MADV_DONTNEED` never runs under a class lock: freed pages go back in
//! batches with no lock held, and `trim` (after compaction and writeback)
//! drops the populated-ahead pages under the arena mutex. Hole punching and
//! truncating the backing file run under its space mutex (from a free, so
//! under that object's class lock and the shared `disk_rw` too).
//!
//! Handle entries are read without a lock only to learn the object's length
//! (hence class) and whether it is in memory or on disk; whoever acts on the
//! location reads the entry again under the lock that guards it.
//!
//! # Atomic orderings
//!
//! - Handle entries: stated once in `handles.rs` (`Entry` is the only code
//!   that loads or stores one).
//! - Statistics counters, the LRU clock and the page reservation counter:
//!   `Relaxed`. They publish no other memory; the data they count is guarded
//!   by the class locks. (The reservation is a CAS loop only to make
//!   check-and-add atomic.)
//! - The handle table's directory: see `util/table.rs`.

mod check;
mod class;
mod compact;
mod disk;
mod handles;
mod list;
mod pages;
mod stats;
#[cfg(test)]
mod tests;
mod writeback;
mod zspage;

use class::{Class, ClassTable};
use handles::{HandleTable, Loc};
use pages::{Page, PageArena, PAGE_SIZE};
use stats::WbCounters;
use zspage::ZsState;

use crate::backing::BackingFile;
use parking_lot::{Mutex, RwLock};
pub use stats::{ClassStats, PoolStats};
use std::cell::Cell;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
pub use writeback::{WritebackReport, WritebackRequest};
pub use zspage::{FULLNESS_LABELS, GROUPS};

/// zsmalloc's ZS_MAX_PAGES_PER_ZSPAGE: the kernel's longest zspage chain for
/// objects up to a page, and what a mount uses.
pub const DEFAULT_MAX_PAGES_PER_ZSPAGE: usize = 8;

/// How long one `alloc` at the limit keeps writing back for room before it
/// gives up with `LimitReached`: other threads may keep taking the room it
/// makes, and a writer must not spin forever.
const ALLOC_RECLAIM_DEADLINE: Duration = Duration::from_secs(2);

/// Opaque name of a stored object. The pool maps it to the object's current
/// place, so compaction and writeback move objects without telling the owner.
/// Ids are below `MAX_IDS` (2^31), so id + 1 fits 32 bits: a file's block
/// map entry (`store::Block`) is then 8 bytes, not 16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Handle(NonZeroU32);

impl Handle {
    /// The raw value, for tables that store handles compactly.
    pub fn to_raw(self) -> u64 {
        u64::from(self.0.get())
    }
    /// Rebuild a handle from `to_raw`. Only values from `to_raw` are valid.
    pub fn from_raw(raw: u64) -> Option<Handle> {
        NonZeroU32::new(u32::try_from(raw).ok()?).map(Handle)
    }
    fn from_id(id: u32) -> Handle {
        debug_assert!(id < handles::MAX_IDS);
        Handle(NonZeroU32::new(id + 1).expect("id < MAX_IDS"))
    }
    /// Index in the handle table (and in tables keyed like it: the store's object words).
    pub(crate) fn id(self) -> u32 {
        self.0.get() - 1
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("pool memory limit reached: {used} of {limit} bytes in use, {needed} more needed; raise pool_limit= or free data")]
    LimitReached { limit: u64, used: u64, needed: u64 },
    #[error("object of {size} bytes is larger than the pool's largest class ({max} bytes)")]
    TooLarge { size: usize, max: usize },
    #[error("backing file I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("checksum mismatch in backing file record at offset {offset}")]
    Checksum { offset: u64 },
    #[error("pool handle table full ({max} live objects); free data or use a larger block_size=")]
    HandlesExhausted { max: u64 },
    #[error("no backing file (backing=none): nothing can be written back")]
    NoBacking,
}

/// Pool settings. No defaults here: a mount's come from its `Config`
/// (`crate::mount::pool_config`), tests build theirs from that.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Largest object the pool must hold (the filesystem's block size),
    /// 1..=128 KiB.
    pub max_object_size: usize,
    /// Longest zspage chain, in pages, for objects up to a page (zsmalloc's
    /// ZS_MAX_PAGES_PER_ZSPAGE); larger classes may chain this many objects'
    /// worth. 1..=32.
    pub max_pages_per_zspage: usize,
    /// Memory limit in bytes of pages held; `None` for no limit.
    pub limit: Option<u64>,
    /// Coldest-first writeback rotates a referenced zspage once instead of
    /// writing it back (zswap's second chance). Off only to measure what it
    /// is worth. A property of the pick rule, so direct reclaim in `alloc`
    /// follows it too.
    pub second_chance: bool,
}

impl PoolConfig {
    /// A pool of objects up to `max_object_size` with no limit (so no
    /// writeback, and `second_chance` never matters): tests and benches.
    pub fn unlimited(max_object_size: usize) -> PoolConfig {
        PoolConfig {
            max_object_size,
            max_pages_per_zspage: DEFAULT_MAX_PAGES_PER_ZSPAGE,
            limit: None,
            second_chance: true,
        }
    }
}

/// Whoever runs the writeback policy (`crate::reclaim`), as the pool sees
/// it. The pool calls these with no pool lock held; they must return quickly
/// and must not call back into the pool from the caller's thread.
pub trait Reclaimer: Send + Sync {
    /// An allocation found the pool at its limit, or the limit was set.
    fn over_limit(&self);
    /// `Pool::request_writeback`: write back `req` soon, not in this
    /// thread. False if the reclaimer has stopped (the pool then does it).
    fn request(&self, req: WritebackRequest) -> bool;
    /// `accept_threshold=` changed (percent of the limit to write back under).
    fn set_accept_threshold(&self, pct: u8);
}

thread_local! {
    /// Reassembly buffer for `read_with`: taken out while in use, so a
    /// closure that reads another object gets a fresh one.
    static READ_BUF: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// The pool. `Send + Sync`; share it as `Arc<Pool>` with a reclaim thread.
pub struct Pool {
    config: PoolConfig,
    table: ClassTable,
    /// One lock per merged class, indexed like `table.classes`.
    classes: Box<[Mutex<Class>]>,
    handles: HandleTable,
    arena: PageArena,
    /// Pages in zspages. Invariant: == sum over classes of zspages * pages,
    /// and <= limit_pages except for reservations being rolled back.
    pages_used: AtomicU64,
    max_pages: AtomicU64,
    /// Limit in pages; u64::MAX when none.
    limit_pages: AtomicU64,
    /// LRU clock: ticks on every move to an LRU head.
    clock: AtomicU64,
    objects: AtomicU64,
    bytes_stored: AtomicU64,
    huge_objects: AtomicU64,
    pages_compacted: AtomicU64,
    zspages_renumbered: AtomicU64,
    limit_hits: AtomicU64,
    /// Where written-back zspages go; None: `backing=none`, the limit is hard.
    backing: Option<BackingFile>,
    /// Guards handle entries that point into the backing file and the bytes
    /// there: disk reads and frees hold it shared, record rewriting holds it
    /// exclusively while repointing (lock order: after the class locks).
    disk_rw: RwLock<()>,
    /// Held shared while objects move between memory and disk (their
    /// counters change in two places, `objects` here and the backing file's);
    /// `stats` holds it exclusively so `objects + disk_objects` is exact.
    moving: RwLock<()>,
    /// Writeback counters.
    wb: WbCounters,
    /// The policy side, attached once by `crate::reclaim` (never by the pool).
    reclaimer: OnceLock<Arc<dyn Reclaimer>>,
}

// All counters above are statistics or the limit reservation; every atomic
// in the pool's files uses Relaxed unless a comment says otherwise, because
// none of them publishes other memory: the data they describe is guarded by
// the class locks.

impl Pool {
    /// A pool over `backing` (None: the limit is hard and nothing is ever
    /// written back). No thread runs; `crate::reclaim` adds one.
    pub fn new(config: PoolConfig, backing: Option<BackingFile>) -> Pool {
        // Config::validate rejects these with a message before they get here.
        debug_assert!(
            (1..=128 * 1024).contains(&config.max_object_size),
            "max_object_size {} outside 1..=131072",
            config.max_object_size
        );
        debug_assert!(
            (1..=32).contains(&config.max_pages_per_zspage),
            "max_pages_per_zspage {} outside 1..=32",
            config.max_pages_per_zspage
        );
        let table = ClassTable::new(config.max_object_size, config.max_pages_per_zspage);
        let classes = table
            .classes
            .iter()
            .map(|&c| Mutex::new(Class::new(c)))
            .collect();
        let pool = Pool {
            table,
            classes,
            handles: HandleTable::new(),
            arena: PageArena::new(),
            pages_used: AtomicU64::new(0),
            max_pages: AtomicU64::new(0),
            limit_pages: AtomicU64::new(u64::MAX),
            clock: AtomicU64::new(0),
            objects: AtomicU64::new(0),
            bytes_stored: AtomicU64::new(0),
            huge_objects: AtomicU64::new(0),
            pages_compacted: AtomicU64::new(0),
            zspages_renumbered: AtomicU64::new(0),
            limit_hits: AtomicU64::new(0),
            backing,
            disk_rw: RwLock::new(()),
            moving: RwLock::new(()),
            wb: WbCounters::default(),
            reclaimer: OnceLock::new(),
            config,
        };
        pool.store_limit(pool.config.limit);
        pool
    }

    /// Attach the policy side; once per pool. Err if one is attached.
    pub(crate) fn attach_reclaimer(&self, r: Arc<dyn Reclaimer>) -> Result<(), Arc<dyn Reclaimer>> {
        self.reclaimer.set(r)
    }

    fn reclaimer(&self) -> Option<&dyn Reclaimer> {
        self.reclaimer.get().map(|r| &**r)
    }

    /// Largest object `alloc` accepts.
    pub fn max_object_size(&self) -> usize {
        self.config.max_object_size
    }

    /// Whether there is a backing file (else nothing is ever written back).
    pub fn has_backing(&self) -> bool {
        self.backing.is_some()
    }

    /// Allocate an object of `data.len()` bytes and fill it with `data`.
    /// On error nothing was allocated. At the limit with a backing file, the
    /// allocating thread writes cold zspages back itself (and tells the
    /// reclaimer, which aims under its own target); `LimitReached` only when
    /// that cannot help (no backing, backing disk full, nothing to write).
    pub fn alloc(&self, data: &[u8]) -> Result<Handle, PoolError> {
        let mut give_up: Option<Instant> = None;
        loop {
            match self.try_alloc(data) {
                Err(PoolError::LimitReached {
                    limit,
                    used,
                    needed,
                }) => {
                    if let Some(r) = self.reclaimer() {
                        r.over_limit();
                    }
                    let deadline =
                        *give_up.get_or_insert_with(|| Instant::now() + ALLOC_RECLAIM_DEADLINE);
                    if Instant::now() > deadline || !self.reclaim_for_alloc(needed) {
                        return Err(PoolError::LimitReached {
                            limit,
                            used,
                            needed,
                        });
                    }
                }
                r => return r,
            }
        }
    }

    fn try_alloc(&self, data: &[u8]) -> Result<Handle, PoolError> {
        let len = data.len();
        if len > self.config.max_object_size {
            return Err(PoolError::TooLarge {
                size: len,
                max: self.config.max_object_size,
            });
        }
        let ci = self.table.class_of(len);
        let mut c = self.classes[ci].lock();
        let id = match c.free_ids.pop().or_else(|| self.handles.new_id()) {
            Some(id) => id,
            None => {
                return Err(PoolError::HandlesExhausted {
                    max: u64::from(handles::MAX_IDS),
                })
            }
        };
        let zid = match c.find_alloc() {
            Some(z) => z,
            None => {
                let n = c.info.pages;
                if let Err(e) = self.reserve_pages(n) {
                    c.free_ids.push(id);
                    return Err(e);
                }
                // Under the class lock: the arena may mmap a chunk and
                // MADV_POPULATE_WRITE a batch here (see pages.rs).
                match self.arena.alloc(n) {
                    Ok(pages) => c.new_zspage(pages),
                    Err(e) => {
                        self.pages_used.fetch_sub(n as u64, Ordering::Relaxed);
                        c.free_ids.push(id);
                        return Err(PoolError::Io(e));
                    }
                }
            }
        };
        let idx = c.take_slot(zid, id);
        let size = c.info.size;
        // The LRU moves under the class lock that isolation also takes
        // (DESIGN.md lesson 1); a read never moves it. Stamped before the
        // copy: a locked add right after a large memcpy waits for its
        // stores to drain.
        let stamp = self.clock.fetch_add(1, Ordering::Relaxed);
        c.move_to_lru_head(zid, stamp);
        c.z_mut(zid).copy_in(size, idx, data);
        let huge = c.info.huge();
        self.handles.entry(id).set_mem(len, zid, idx);
        // Counters move under the class lock so the consistency check,
        // which holds every class lock, sees them agree with the slabs.
        self.objects.fetch_add(1, Ordering::Relaxed);
        self.bytes_stored.fetch_add(len as u64, Ordering::Relaxed);
        if huge {
            self.huge_objects.fetch_add(1, Ordering::Relaxed);
        }
        drop(c);
        Ok(Handle::from_id(id))
    }

    /// Count `n` more pages against the limit, or say which limit was hit.
    fn reserve_pages(&self, n: usize) -> Result<(), PoolError> {
        let n = n as u64;
        let limit = self.limit_pages.load(Ordering::Relaxed);
        let mut cur = self.pages_used.load(Ordering::Relaxed);
        loop {
            if cur.saturating_add(n) > limit {
                self.limit_hits.fetch_add(1, Ordering::Relaxed);
                return Err(PoolError::LimitReached {
                    limit: limit * PAGE_SIZE as u64,
                    used: cur * PAGE_SIZE as u64,
                    needed: n * PAGE_SIZE as u64,
                });
            }
            // Relaxed: the CAS only has to make the check-and-add atomic.
            match self.pages_used.compare_exchange_weak(
                cur,
                cur + n,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        self.max_pages.fetch_max(cur + n, Ordering::Relaxed);
        Ok(())
    }

    /// Take an empty zspage out of its class (under the class lock, so
    /// `pages_used` always equals what the slabs hold); the caller hands the
    /// pages to `release_pages` after dropping the lock.
    fn drop_zspage(&self, c: &mut Class, zid: u32) -> Box<[Page]> {
        let pages = c.remove_zspage(zid);
        self.pages_used
            .fetch_sub(pages.len() as u64, Ordering::Relaxed);
        pages
    }

    /// Give a dropped zspage's pages back (no class lock held: may madvise).
    fn release_pages(&self, pages: Box<[Page]>) {
        self.arena.free(&pages);
    }

    /// Lend the object's bytes to `f`. The bytes are copied out under the
    /// class lock and `f` runs with no pool lock held, so it may call the
    /// pool. Marks the zspage referenced; never touches the LRU. A
    /// written-back object costs one `pread`; `Checksum` if it is damaged.
    pub fn read_with<R>(&self, h: Handle, f: impl FnOnce(&[u8]) -> R) -> Result<R, PoolError> {
        let mut buf = READ_BUF.take();
        buf.clear();
        let res = self.read_into(h, &mut buf).map(|()| f(&buf));
        READ_BUF.set(buf);
        res
    }

    /// Append the object's bytes to `out`.
    pub fn read_into(&self, h: Handle, out: &mut Vec<u8>) -> Result<(), PoolError> {
        let id = h.id();
        let entry = self.handles.entry(id);
        match entry.load() {
            Loc::Free => panic!("read of freed handle {}", h.to_raw()),
            Loc::Mem { len, .. } => {
                let mut c = self.classes[self.table.class_of(len)].lock();
                // Under the class lock the entry cannot move or go to disk.
                match entry.load_locked() {
                    Loc::Mem { len, zspage, idx } => {
                        let size = c.info.size;
                        let z = c.z_mut(zspage);
                        z.copy_out(size, idx, len, out);
                        z.referenced = true;
                        if z.state == ZsState::Isolated {
                            self.wb.isolated_reads.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(())
                    }
                    Loc::Disk { .. } => {
                        // Written back between the first load and the lock.
                        drop(c);
                        self.read_disk(id, out)
                    }
                    Loc::Free => panic!("read of freed handle {}", h.to_raw()),
                }
            }
            Loc::Disk { .. } => self.read_disk(id, out),
        }
    }

    /// Size of the object in bytes.
    pub fn object_len(&self, h: Handle) -> usize {
        // The length never changes for a handle.
        match self.handles.entry(h.id()).load() {
            Loc::Mem { len, .. } | Loc::Disk { len, .. } => len,
            Loc::Free => panic!("object_len of freed handle {}", h.to_raw()),
        }
    }

    /// Whether the object is in memory right now. Only a hint: writeback
    /// may move it to disk the next instant (a read still works then).
    pub fn is_resident(&self, h: Handle) -> bool {
        matches!(self.handles.entry(h.id()).load(), Loc::Mem { .. })
    }

    /// Free the object (in memory or on disk). The handle must not be used again.
    pub fn free(&self, h: Handle) {
        let id = h.id();
        let entry = self.handles.entry(id);
        let len = match entry.load() {
            Loc::Free => panic!("double free of handle {}", h.to_raw()),
            Loc::Mem { len, .. } | Loc::Disk { len, .. } => len,
        };
        let mut c = self.classes[self.table.class_of(len)].lock();
        let mut freed_pages = None;
        match entry.load_locked() {
            Loc::Mem { zspage, idx, .. } => {
                c.release_slot(zspage, idx);
                let z = c.z(zspage);
                // An isolated zspage is freed by the thread that isolated it.
                if z.state == ZsState::Isolated {
                    self.wb.isolated_frees.fetch_add(1, Ordering::Relaxed);
                } else if z.inuse == 0 {
                    freed_pages = Some(self.drop_zspage(&mut c, zspage));
                }
                self.bytes_stored.fetch_sub(len as u64, Ordering::Relaxed);
                self.objects.fetch_sub(1, Ordering::Relaxed);
                if c.info.huge() {
                    self.huge_objects.fetch_sub(1, Ordering::Relaxed);
                }
                entry.set_free();
            }
            Loc::Disk { .. } => self.free_disk(id),
            Loc::Free => unreachable!("entry changed under the class lock"),
        }
        c.free_ids.push(id);
        drop(c);
        if let Some(p) = freed_pages {
            self.release_pages(p);
        }
    }

    /// Change the memory limit; `None` removes it. Lowering it below what is
    /// held frees nothing by itself: allocations needing pages fail until
    /// frees, compaction or writeback bring the pool under it. A reclaimer,
    /// if attached, is told so it can write back toward the new limit.
    pub fn set_limit(&self, limit: Option<u64>) {
        self.store_limit(limit);
        if let (Some(_), Some(r)) = (limit, self.reclaimer()) {
            r.over_limit();
        }
    }

    fn store_limit(&self, limit: Option<u64>) {
        let pages = limit.map_or(u64::MAX, |b| b / PAGE_SIZE as u64);
        self.limit_pages.store(pages, Ordering::Relaxed);
    }

    /// (pages in zspages, limit in pages or u64::MAX).
    pub(crate) fn pages_and_limit(&self) -> (u64, u64) {
        (
            self.pages_used.load(Ordering::Relaxed),
            self.limit_pages.load(Ordering::Relaxed),
        )
    }

    /// Pass a new `accept_threshold=` (1..=100) to the reclaimer; without
    /// one (no backing file) there is nothing it would change.
    pub fn set_accept_threshold(&self, pct: u8) {
        debug_assert!((1..=100).contains(&pct));
        if let Some(r) = self.reclaimer() {
            r.set_accept_threshold(pct);
        }
    }

    /// Ask for writeback in the background; returns at once. With no
    /// running reclaimer (a pool built without `crate::reclaim`, or after
    /// its thread stopped) it is done in this thread before returning.
    pub fn request_writeback(&self, req: WritebackRequest) -> Result<(), PoolError> {
        if self.backing.is_none() {
            return Err(PoolError::NoBacking);
        }
        if !self.reclaimer().is_some_and(|r| r.request(req)) {
            self.writeback(req)?;
        }
        Ok(())
    }
}
