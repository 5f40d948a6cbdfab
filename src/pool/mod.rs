//! The compressed-object pool: a zsmalloc analogue in user space.
//!
//! # Design
//!
//! Objects (compressed file blocks) go into *size classes* (see `class.rs`:
//! 32 B..4 KiB in 16 B steps, then 128 classes per doubling up to the largest
//! block size, 128 KiB; classes of equal shape merged). Each class owns
//! *zspages*: chains of 4 KiB pages taken from the page arena (`pages.rs`,
//! mmap'd chunks, freed pages given back with `MADV_DONTNEED`). A zspage of a
//! class of size s holds `pages * 4096 / s` slots; slot i starts at byte
//! `i * s` of the chain and may straddle a page boundary (pages are not
//! virtually contiguous, so such an object is copied in two pieces). An
//! object larger than a page simply spans several pages of its chain. A class
//! with one slot per zspage is *huge*: the object has pages of its own.
//!
//! Users hold a `Handle`: an index into the handle table (`handles.rs`),
//! whose entry says where the object is now (zspage and slot, or an offset
//! in the backing file). Compaction and writeback move objects by rewriting
//! the entry; each zspage keeps, per slot, the handle id stored there, so a
//! mover finds the entry to rewrite.
//!
//! Zspages sit in one of 12 *fullness groups* per class (0 %, 10 %, ..., 90 %,
//! 99 %, 100 % of slots in use, computed as zsmalloc does). Allocation takes
//! the fullest zspage that is not full; compaction moves objects from the
//! emptiest zspages into the fullest and frees the emptied ones. A zspage
//! that becomes empty is freed at once.
//!
//! Each class also keeps an *LRU* of its zspages, most recently allocated
//! into at the head. It is updated only by `alloc`, under the class lock
//! (the lock isolation takes), never by reads. A zspage is in one of two
//! explicit states (`ZsState`): `Listed` (in a fullness group and in the
//! LRU) or `Isolated` (in neither: taken by writeback; it gets no new
//! objects and compaction does not see it; frees of its objects are still
//! allowed and just clear the slot). Reads set the zspage's `referenced`
//! flag (a plain field under the class lock, no list surgery) for the
//! shrinker's second chance.
//!
//! An optional limit counts pages in zspages (`pages_used`); only creating a
//! zspage reserves pages, so an allocation into an existing zspage never
//! fails on it. At the limit, `alloc` writes cold zspages back itself when
//! there is a backing file (`writeback.rs`, "direct reclaim") and wakes the
//! shrinker thread for the hysteresis; otherwise it fails with
//! `LimitReached` having changed nothing.
//!
//! # Locks and lock order
//!
//! 1. `classes[i]` (one mutex per class). Guards the class's zspages, their
//!    pages' bytes, its lists, its free handle ids, and every handle entry
//!    whose location is in memory in that class. When several are held
//!    (only `debug_check_consistency`) they are taken in increasing index.
//! 2. `disk_rw` (read/write lock; read side by disk reads and frees, write
//!    side by rewriting backing-file records): guards handle entries whose
//!    location is on disk and the bytes at those locations.
//! 3. Leaves, never held together and nothing taken under them: the backing
//!    file's space mutex, the page arena's mutex, the shrinker's `Signal`.
//!
//! A path may take a lock only if it holds none that comes later in this
//! list. A read takes one class lock (object in memory) or the shared side
//! of `disk_rw` (object on disk; readers never wait for each other there,
//! only for a record rewrite), so reads of different objects never wait on
//! a pool-wide lock. Record writes and `madvise` run with no lock held;
//! hole punching runs under the space mutex (from a free, so under that
//! object's class lock too) and a new 2 MiB mapping under the arena mutex.
//!
//! Handle entries are read without a lock only to learn the object's length
//! (hence class) and whether it is in memory or on disk; whoever acts on the
//! location reads the entry again under the lock that guards it.
//!
//! # Atomic orderings
//!
//! - Handle entries: every store is `Release`, every load `Acquire`. The one
//!   case that needs it: a reader that sees an on-disk location must see the
//!   record that was `pwrite`n before the location was stored. In-memory
//!   locations are also ordered by the class lock; using one rule for all
//!   entry accesses keeps every site obviously right.
//! - Statistics counters, the LRU clock and the page reservation counter:
//!   `Relaxed`. They publish no other memory; the data they count is guarded
//!   by the class locks. (The reservation is a CAS loop only to make
//!   check-and-add atomic.)
//! - The handle table's directory: see `handles.rs`.

mod class;
mod handles;
mod pages;
mod writeback;

use class::{ClassInfo, ClassTable};
use handles::{HandleTable, Loc};
use pages::{Page, PageArena, PAGE_SIZE};

use crate::config::{Backing, Config};
use crate::shrinker::backing::BackingFile;
use crate::shrinker::ShrinkerThread;
use crate::shrinker::{Signal, WbCounters};
pub(crate) use handles::MAX_DISK_OFFSET;
use parking_lot::{Mutex, RwLock};
use std::cell::Cell;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
pub use writeback::{WritebackReport, WritebackRequest};

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
    fn id(self) -> u32 {
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

/// Pool settings. `Default` is what the filesystem uses for 4 KiB blocks.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Largest object the pool must hold (the filesystem's block size),
    /// at most 128 KiB.
    pub max_object_size: usize,
    /// Longest zspage chain, in pages, for objects up to a page (zsmalloc's
    /// ZS_MAX_PAGES_PER_ZSPAGE); larger classes may chain this many objects'
    /// worth. 1..=32.
    pub max_pages_per_zspage: usize,
    /// Memory limit in bytes of pages held; `None` for no limit.
    pub limit: Option<u64>,
    /// Where cold zspages go. `Backing::None` (the default here): nowhere,
    /// the limit is hard and there is no shrinker thread.
    pub backing: Backing,
    /// Once over the limit, the shrinker writes back until under this
    /// percent of it (1..=100).
    pub accept_threshold: u8,
    /// Also write back under system memory pressure (PSI, MemAvailable,
    /// cgroup memory.high). Only with a backing file.
    pub watch_pressure: bool,
    /// Rotate a referenced zspage once instead of writing it back (zswap's
    /// second chance). Off only to measure what it is worth.
    pub second_chance: bool,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_object_size: 4096,
            max_pages_per_zspage: 8,
            limit: None,
            backing: Backing::None,
            accept_threshold: 90,
            watch_pressure: true,
            second_chance: true,
        }
    }
}

impl PoolConfig {
    /// The pool settings a mount's `Config` implies: objects up to
    /// `block_size`, `pool_limit=` (bytes or % of RAM), `accept_threshold=`,
    /// `backing=`.
    pub fn from_config(cfg: &Config) -> PoolConfig {
        PoolConfig {
            max_object_size: cfg.block_size as usize,
            limit: cfg
                .pool_limit
                .map(|l| l.bytes(crate::config::physical_ram())),
            backing: cfg.backing.clone(),
            accept_threshold: cfg.accept_threshold,
            second_chance: cfg.second_chance,
            ..PoolConfig::default()
        }
    }
}

/// Totals over the whole pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Live objects (in memory).
    pub objects: u64,
    /// Sum of live object sizes in memory, bytes (zram's compr_data_size).
    pub bytes_stored: u64,
    /// Pages held from the OS right now (zram's mem_used_total / 4096):
    /// pages of zspages plus the arena's few resident free pages.
    pub pages_held: u64,
    /// Most pages ever held since creation or the last reset.
    pub max_pages_held: u64,
    /// Objects that took a zspage of their own (huge class).
    pub huge_objects: u64,
    /// Pages freed by compaction, cumulative.
    pub pages_compacted: u64,
    /// Zspages in all classes.
    pub zspages: u64,
    /// Memory limit in bytes, if any (zram's mem_limit).
    pub limit: Option<u64>,
    /// Allocations that found the pool at its limit (zswap's pool_limit_hit).
    pub pool_limit_hit: u64,
    /// Heap bytes of bookkeeping outside the pages (slot tables, zspage
    /// headers), for honest overhead figures.
    pub metadata_bytes: u64,
    /// Backing file space held by records, in 4 KiB units (zram's bd_count).
    pub bd_count: u64,
    /// Reads from the backing file, in 4 KiB units (zram's bd_reads).
    pub bd_reads: u64,
    /// Writes to the backing file, in 4 KiB units (zram's bd_writes).
    pub bd_writes: u64,
    /// Pool pages given back by writeback, cumulative (zswap's written_back_pages).
    pub written_back_pages: u64,
    /// Objects in the backing file and their bytes.
    pub disk_objects: u64,
    pub disk_bytes: u64,
    /// Shrinker thread wake-ups that wrote back.
    pub shrinker_runs: u64,
    /// Referenced zspages rotated instead of written back.
    pub second_chance: u64,
    /// Reads that failed their checksum (EIO).
    pub checksum_failures: u64,
    /// Frees that hit a zspage while writeback had it isolated.
    pub isolated_frees: u64,
    /// Reads served from a zspage while writeback had it isolated.
    pub isolated_reads: u64,
    /// Sparse backing records rewritten.
    pub records_rewritten: u64,
    /// Failed record writes (e.g. backing disk full).
    pub writeback_errors: u64,
    /// The backing disk said ENOSPC recently; writeback is paused.
    pub backing_full: bool,
}

/// One row of the control file's `classes` table (zsmalloc debugfs shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassStats {
    /// Slot size in bytes (largest object of the class).
    pub size: usize,
    /// Smallest object size that lands here.
    pub min_size: usize,
    /// Raw classes merged into this one.
    pub merged: usize,
    pub pages_per_zspage: usize,
    pub objs_per_zspage: usize,
    /// One object per zspage.
    pub huge: bool,
    /// Slots in all zspages of the class (zsmalloc's obj_allocated).
    pub objects_allocated: u64,
    /// Slots holding an object (obj_used).
    pub objects_in_use: u64,
    pub zspages: u64,
    pub pages: u64,
    /// Zspages per fullness group, labelled by `FULLNESS_LABELS`.
    pub fullness: [u64; GROUPS],
    /// Zspages taken by writeback right now.
    pub isolated: u64,
}

/// Number of fullness groups.
pub const GROUPS: usize = 12;
/// Labels of the fullness groups (percent of slots in use).
pub const FULLNESS_LABELS: [&str; GROUPS] = [
    "0", "10", "20", "30", "40", "50", "60", "70", "80", "90", "99", "100",
];
const GROUP_EMPTY: usize = 0;
const GROUP_FULL: usize = GROUPS - 1;

/// zsmalloc's `get_fullness_group`: 1..=10 for partly used zspages (the
/// `+ 1` keeps one object in 127 out of the empty group).
fn fullness(inuse: usize, objs: usize) -> usize {
    if inuse == 0 {
        GROUP_EMPTY
    } else if inuse == objs {
        GROUP_FULL
    } else {
        100 * inuse / objs / 10 + 1
    }
}

/// End of an intrusive list / no zspage.
const NIL: u32 = u32::MAX;
/// A slot value with this bit set is free; the low bits are the next free slot.
const SLOT_FREE: u32 = 1 << 31;
/// End of a zspage's free-slot chain.
const SLOT_NIL: u32 = SLOT_FREE - 1;

/// The explicit state of a zspage (DESIGN.md lesson 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ZsState {
    /// In its fullness group and in the class LRU; takes allocations.
    Listed,
    /// Taken by writeback: in no list, takes no allocations, not compacted.
    /// Only the isolating thread puts it back or frees it.
    Isolated,
}

#[derive(Debug, Clone, Copy)]
struct Link {
    prev: u32,
    next: u32,
}

const UNLINKED: Link = Link {
    prev: NIL,
    next: NIL,
};

/// Doubly linked list of zspage ids through `Link`s in the zspages.
#[derive(Debug, Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
    len: usize,
}

const EMPTY_LIST: List = List {
    head: NIL,
    tail: NIL,
    len: 0,
};

/// Which list of a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListId {
    Group(usize),
    Lru,
}

struct ZsPage {
    /// The chain. Invariant: len == class pages per zspage.
    pages: Box<[Page]>,
    /// Per slot: the handle id stored there, or `SLOT_FREE | next free slot`.
    slots: Box<[u32]>,
    /// First free slot or SLOT_NIL. Invariant: the chain from here visits
    /// exactly the free slots.
    free_head: u32,
    /// Slots in use. Invariant: == number of non-free slots.
    inuse: usize,
    state: ZsState,
    /// Fullness group it is linked in. Invariant: when Listed, ==
    /// fullness(inuse, objs) and the zspage is in that group's list.
    group: usize,
    /// Set by reads, cleared by the shrinker (second chance).
    referenced: bool,
    /// LRU clock value at the last allocation into this zspage.
    stamp: u64,
    /// Links in `groups[group]` (when Listed).
    glink: Link,
    /// Links in the class LRU (when Listed).
    llink: Link,
}

impl ZsPage {
    /// Copy `len` bytes of slot `idx` to the end of `out`.
    fn copy_out(&self, size: usize, idx: usize, len: usize, out: &mut Vec<u8>) {
        let (mut off, mut left) = (idx * size, len);
        while left > 0 {
            let (p, po) = (off / PAGE_SIZE, off % PAGE_SIZE);
            let n = left.min(PAGE_SIZE - po);
            // SAFETY: slot idx lies inside the chain (idx < objs, objs * size
            // <= pages * 4096), the page is owned by this zspage, and the
            // caller holds the class lock, so no one writes it meanwhile.
            out.extend_from_slice(unsafe {
                std::slice::from_raw_parts(self.pages[p].ptr().add(po), n)
            });
            off += n;
            left -= n;
        }
    }

    /// Write `data` into slot `idx`.
    fn copy_in(&mut self, size: usize, idx: usize, data: &[u8]) {
        let mut off = idx * size;
        let mut rest = data;
        while !rest.is_empty() {
            let (p, po) = (off / PAGE_SIZE, off % PAGE_SIZE);
            let n = rest.len().min(PAGE_SIZE - po);
            // SAFETY: as in copy_out; &mut self under the class lock makes
            // this the only access.
            unsafe { std::ptr::copy_nonoverlapping(rest.as_ptr(), self.pages[p].ptr().add(po), n) };
            off += n;
            rest = &rest[n..];
        }
    }

    fn link(&mut self, which: ListId) -> &mut Link {
        match which {
            ListId::Group(_) => &mut self.glink,
            ListId::Lru => &mut self.llink,
        }
    }
}

/// One size class and everything its lock guards.
struct Class {
    info: ClassInfo,
    /// Zspages by id. Invariant: `slab[id]` is Some iff id is not in `free_zs`.
    slab: Vec<Option<ZsPage>>,
    /// Unused slab ids.
    free_zs: Vec<u32>,
    /// Listed zspages by fullness group.
    groups: [List; GROUPS],
    /// Listed zspages, most recently allocated into first.
    lru: List,
    /// Handle ids free for reuse by this class. Invariant: their entries are Free.
    free_ids: Vec<u32>,
    /// Zspages in the slab (listed and isolated).
    zspages: usize,
    /// Objects in all zspages of the slab.
    inuse: usize,
    /// Isolated zspages and the objects in them.
    isolated: usize,
    isolated_inuse: usize,
}

impl Class {
    fn new(info: ClassInfo) -> Class {
        Class {
            info,
            slab: Vec::new(),
            free_zs: Vec::new(),
            groups: [EMPTY_LIST; GROUPS],
            lru: EMPTY_LIST,
            free_ids: Vec::new(),
            zspages: 0,
            inuse: 0,
            isolated: 0,
            isolated_inuse: 0,
        }
    }

    fn z(&self, id: u32) -> &ZsPage {
        self.slab[id as usize].as_ref().expect("live zspage id")
    }

    fn z_mut(&mut self, id: u32) -> &mut ZsPage {
        self.slab[id as usize].as_mut().expect("live zspage id")
    }

    fn list(&mut self, which: ListId) -> &mut List {
        match which {
            ListId::Group(g) => &mut self.groups[g],
            ListId::Lru => &mut self.lru,
        }
    }

    fn push_front(&mut self, which: ListId, id: u32) {
        let old = self.list(which).head;
        *self.z_mut(id).link(which) = Link {
            prev: NIL,
            next: old,
        };
        if old == NIL {
            self.list(which).tail = id;
        } else {
            self.z_mut(old).link(which).prev = id;
        }
        let l = self.list(which);
        l.head = id;
        l.len += 1;
    }

    fn unlink(&mut self, which: ListId, id: u32) {
        let Link { prev, next } = std::mem::replace(self.z_mut(id).link(which), UNLINKED);
        if prev == NIL {
            self.list(which).head = next;
        } else {
            self.z_mut(prev).link(which).next = next;
        }
        if next == NIL {
            self.list(which).tail = prev;
        } else {
            self.z_mut(next).link(which).prev = prev;
        }
        self.list(which).len -= 1;
    }

    /// Put a Listed zspage in the group its fill says.
    fn regroup(&mut self, id: u32) {
        let z = self.z(id);
        if z.state != ZsState::Listed {
            return;
        }
        let (old, new) = (z.group, fullness(z.inuse, self.info.objs));
        if old != new {
            self.unlink(ListId::Group(old), id);
            self.z_mut(id).group = new;
            self.push_front(ListId::Group(new), id);
        }
    }

    /// The fullest Listed zspage with a free slot.
    fn find_alloc(&self) -> Option<u32> {
        (GROUP_EMPTY..GROUP_FULL)
            .rev()
            .map(|g| self.groups[g].head)
            .find(|&h| h != NIL)
    }

    fn new_zspage(&mut self, pages: Box<[Page]>) -> u32 {
        let objs = self.info.objs;
        let slots: Box<[u32]> = (0..objs as u32)
            .map(|i| {
                SLOT_FREE
                    | if i + 1 == objs as u32 {
                        SLOT_NIL
                    } else {
                        i + 1
                    }
            })
            .collect();
        let z = ZsPage {
            pages,
            slots,
            free_head: 0,
            inuse: 0,
            state: ZsState::Listed,
            group: GROUP_EMPTY,
            referenced: false,
            stamp: 0,
            glink: UNLINKED,
            llink: UNLINKED,
        };
        let id = match self.free_zs.pop() {
            Some(id) => {
                self.slab[id as usize] = Some(z);
                id
            }
            None => {
                self.slab.push(Some(z));
                u32::try_from(self.slab.len() - 1).expect("fewer than 2^32 zspages per class")
            }
        };
        self.zspages += 1;
        self.push_front(ListId::Group(GROUP_EMPTY), id);
        self.push_front(ListId::Lru, id);
        id
    }

    /// Take a free slot of zspage `zid` for handle `hid`; returns the slot.
    fn take_slot(&mut self, zid: u32, hid: u32) -> usize {
        let z = self.z_mut(zid);
        let idx = z.free_head as usize;
        debug_assert!(z.free_head != SLOT_NIL, "take_slot on a full zspage");
        z.free_head = z.slots[idx] & !SLOT_FREE;
        z.slots[idx] = hid;
        z.inuse += 1;
        let isolated = z.state == ZsState::Isolated;
        self.inuse += 1;
        if isolated {
            self.isolated_inuse += 1;
        }
        self.regroup(zid);
        idx
    }

    fn release_slot(&mut self, zid: u32, idx: usize) {
        let z = self.z_mut(zid);
        debug_assert!(z.slots[idx] & SLOT_FREE == 0, "double free of a slot");
        z.slots[idx] = SLOT_FREE | z.free_head;
        z.free_head = idx as u32;
        z.inuse -= 1;
        let isolated = z.state == ZsState::Isolated;
        self.inuse -= 1;
        if isolated {
            self.isolated_inuse -= 1;
        }
        self.regroup(zid);
    }

    /// Drop an empty zspage from the class; the caller frees the pages
    /// after releasing the class lock.
    fn remove_zspage(&mut self, zid: u32) -> Box<[Page]> {
        let z = self.z(zid);
        assert_eq!(z.inuse, 0, "removing a zspage with live objects");
        match z.state {
            ZsState::Listed => {
                self.unlink(ListId::Group(z.group), zid);
                self.unlink(ListId::Lru, zid);
            }
            ZsState::Isolated => self.isolated -= 1,
        }
        let z = self.slab[zid as usize].take().expect("live zspage");
        self.free_zs.push(zid);
        self.zspages -= 1;
        z.pages
    }

    /// zsmalloc's zs_can_compact: would moving objects free a zspage?
    fn can_compact(&self) -> bool {
        let allocated = (self.zspages - self.isolated) * self.info.objs;
        let wasted = allocated - (self.inuse - self.isolated_inuse);
        self.info.objs > 1 && wasted >= self.info.objs
    }

    fn metadata_bytes(&self) -> usize {
        let per = std::mem::size_of::<Option<ZsPage>>()
            + self.info.pages * std::mem::size_of::<Page>()
            + self.info.objs * 4;
        self.slab.capacity() * std::mem::size_of::<Option<ZsPage>>()
            + self.zspages * (per - std::mem::size_of::<Option<ZsPage>>())
            + self.free_ids.capacity() * 4
    }
}

thread_local! {
    /// Reassembly buffer for `read_with`: taken out while in use, so a
    /// closure that reads another object gets a fresh one.
    static READ_BUF: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Everything the pool is, shared by the `Pool` handle and the shrinker
/// thread (see `shrinker/mod.rs`).
pub(crate) struct Core {
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
    /// `accept_threshold=` now (starts as `config.accept_threshold`; a
    /// remount changes it).
    accept_pct: std::sync::atomic::AtomicU8,
    /// LRU clock: ticks on every allocation.
    clock: AtomicU64,
    objects: AtomicU64,
    bytes_stored: AtomicU64,
    huge_objects: AtomicU64,
    pages_compacted: AtomicU64,
    limit_hits: AtomicU64,
    /// Where written-back zspages go; None: `backing=none`, the limit is hard.
    pub(crate) backing: Option<BackingFile>,
    /// Guards handle entries that point into the backing file and the bytes
    /// there: disk reads and frees hold it shared, record rewriting holds it
    /// exclusively while repointing (lock order: after the class locks).
    disk_rw: RwLock<()>,
    /// Writeback counters and the shrinker's wake-up channel.
    pub(crate) wb: WbCounters,
    pub(crate) signal: Signal,
}

// All counters above are statistics or the limit reservation; every atomic
// in this impl uses Relaxed unless a comment says otherwise, because none of
// them publishes other memory: the data they describe is guarded by the
// class locks.

impl Core {
    fn new(config: PoolConfig, backing: Option<BackingFile>) -> Core {
        assert!(
            (1..=128 * 1024).contains(&config.max_object_size),
            "max_object_size {} outside 1..=131072",
            config.max_object_size
        );
        assert!(
            (1..=32).contains(&config.max_pages_per_zspage),
            "max_pages_per_zspage {} outside 1..=32",
            config.max_pages_per_zspage
        );
        assert!(
            (1..=100).contains(&config.accept_threshold),
            "accept_threshold {} outside 1..=100",
            config.accept_threshold
        );
        let table = ClassTable::new(config.max_object_size, config.max_pages_per_zspage);
        let classes = table
            .classes
            .iter()
            .map(|&c| Mutex::new(Class::new(c)))
            .collect();
        let pool = Core {
            table,
            classes,
            handles: HandleTable::new(),
            arena: PageArena::new(),
            pages_used: AtomicU64::new(0),
            max_pages: AtomicU64::new(0),
            limit_pages: AtomicU64::new(u64::MAX),
            accept_pct: std::sync::atomic::AtomicU8::new(config.accept_threshold),
            clock: AtomicU64::new(0),
            objects: AtomicU64::new(0),
            bytes_stored: AtomicU64::new(0),
            huge_objects: AtomicU64::new(0),
            pages_compacted: AtomicU64::new(0),
            limit_hits: AtomicU64::new(0),
            backing,
            disk_rw: RwLock::new(()),
            wb: WbCounters::default(),
            signal: Signal::default(),
            config,
        };
        pool.set_limit(pool.config.limit);
        pool
    }

    /// Largest object `alloc` accepts.
    pub fn max_object_size(&self) -> usize {
        self.config.max_object_size
    }

    /// Allocate an object of `data.len()` bytes and fill it with `data`.
    /// On error nothing was allocated. At the limit with a backing file, the
    /// allocating thread writes cold zspages back itself (and wakes the
    /// shrinker to get under the accept threshold); `LimitReached` only when
    /// that cannot help (no backing, backing disk full, nothing to write).
    pub fn alloc(&self, data: &[u8]) -> Result<Handle, PoolError> {
        let mut give_up: Option<std::time::Instant> = None;
        loop {
            match self.try_alloc(data) {
                Err(PoolError::LimitReached {
                    limit,
                    used,
                    needed,
                }) => {
                    self.signal.over_limit();
                    // Bounded in time so an allocation cannot spin forever
                    // if other threads keep taking the room it makes.
                    let deadline = *give_up.get_or_insert_with(|| {
                        std::time::Instant::now() + std::time::Duration::from_secs(2)
                    });
                    if std::time::Instant::now() > deadline || !self.reclaim_for_alloc(needed) {
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
        // The LRU moves here and only here, under the class lock that
        // isolation also takes (DESIGN.md lesson 1).
        let stamp = self.clock.fetch_add(1, Ordering::Relaxed);
        let z = c.z_mut(zid);
        z.copy_in(size, idx, data);
        z.stamp = stamp;
        if c.lru.head != zid {
            c.unlink(ListId::Lru, zid);
            c.push_front(ListId::Lru, zid);
        }
        let huge = c.info.huge();
        // Release: pairs with the Acquire loads in read/free so a thread that
        // learns the handle through a relaxed channel still sees the entry
        // (the bytes themselves are published by the class lock).
        self.handles.entry(id).store(
            Loc::Mem {
                len,
                zspage: zid,
                idx,
            }
            .encode(),
            Ordering::Release,
        );
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

    /// Give a dropped zspage's pages back (no lock held: may madvise).
    fn release_pages(&self, pages: Box<[Page]>) {
        self.arena.free(&pages);
    }

    /// Lend the object's bytes to `f`. The bytes are copied out under the
    /// class lock and `f` runs with no pool lock held, so it may call the
    /// pool. Marks the zspage referenced; never touches the LRU.
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
        // Acquire: see the location (and, for disk, the record) as published.
        match Loc::decode(entry.load(Ordering::Acquire)) {
            Loc::Free => panic!("read of freed handle {}", h.to_raw()),
            Loc::Mem { len, .. } => {
                let mut c = self.classes[self.table.class_of(len)].lock();
                // Under the class lock the entry cannot move or go to disk.
                match Loc::decode(entry.load(Ordering::Acquire)) {
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
        // Acquire: as in read_into; the length never changes for a handle.
        match Loc::decode(self.handles.entry(h.id()).load(Ordering::Acquire)) {
            Loc::Mem { len, .. } | Loc::Disk { len, .. } => len,
            Loc::Free => panic!("object_len of freed handle {}", h.to_raw()),
        }
    }

    /// Whether the object is in memory right now. Only a hint: writeback
    /// may move it to disk the next instant (a read still works then).
    pub fn is_resident(&self, h: Handle) -> bool {
        // Acquire: as in read_into.
        let entry = self.handles.entry(h.id()).load(Ordering::Acquire);
        matches!(Loc::decode(entry), Loc::Mem { .. })
    }

    /// Free the object. The handle must not be used again.
    pub fn free(&self, h: Handle) {
        let id = h.id();
        let entry = self.handles.entry(id);
        let len = match Loc::decode(entry.load(Ordering::Acquire)) {
            Loc::Free => panic!("double free of handle {}", h.to_raw()),
            Loc::Mem { len, .. } | Loc::Disk { len, .. } => len,
        };
        let mut c = self.classes[self.table.class_of(len)].lock();
        let mut freed_pages = None;
        match Loc::decode(entry.load(Ordering::Acquire)) {
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
            }
            Loc::Disk { .. } => {
                // Shared disk_rw: a record rewrite may not repoint it meanwhile.
                let _d = self.disk_rw.read();
                let Loc::Disk { len, off } = Loc::decode(entry.load(Ordering::Acquire)) else {
                    unreachable!("an object on disk never comes back to memory")
                };
                self.backing
                    .as_ref()
                    .expect("disk entry needs a backing file")
                    .frame_dead(off, len);
                // Release: as below, before disk_rw is dropped.
                entry.store(Loc::Free.encode(), Ordering::Release);
            }
            Loc::Free => unreachable!("entry changed under the class lock"),
        }
        // Release: the slot is reusable only after this; pairs with Acquire loads.
        entry.store(Loc::Free.encode(), Ordering::Release);
        c.free_ids.push(id);
        drop(c);
        if let Some(p) = freed_pages {
            self.release_pages(p);
        }
    }

    /// Move objects out of sparse zspages into fuller ones and free the
    /// emptied zspages; returns the pages given back.
    pub fn compact(&self) -> u64 {
        let mut freed = 0;
        for ci in 0..self.classes.len() {
            freed += self.compact_class(ci);
        }
        self.arena.trim();
        self.pages_compacted.fetch_add(freed, Ordering::Relaxed);
        freed
    }

    /// Compact one class, dropping its lock after each source zspage so
    /// allocations and reads of the class are not held up for long.
    fn compact_class(&self, ci: usize) -> u64 {
        let mut freed = 0;
        let mut buf = Vec::new();
        loop {
            let mut c = self.classes[ci].lock();
            if !c.can_compact() {
                return freed;
            }
            // Emptiest source, fullest non-full destination, both Listed.
            let src = (1..GROUP_FULL)
                .map(|g| c.groups[g].tail)
                .find(|&z| z != NIL);
            let dst = (1..GROUP_FULL)
                .rev()
                .flat_map(|g| [c.groups[g].head, c.groups[g].tail])
                .find(|&z| z != NIL && Some(z) != src);
            let (Some(src), Some(dst)) = (src, dst) else {
                return freed;
            };
            if c.z(src).inuse > c.z(dst).inuse {
                return freed;
            }
            let size = c.info.size;
            while c.z(src).inuse > 0 && c.z(dst).free_head != SLOT_NIL {
                let sidx = c
                    .z(src)
                    .slots
                    .iter()
                    .position(|&s| s & SLOT_FREE == 0)
                    .expect("inuse > 0");
                let hid = c.z(src).slots[sidx];
                let entry = self.handles.entry(hid);
                let Loc::Mem { len, .. } = Loc::decode(entry.load(Ordering::Relaxed)) else {
                    unreachable!("slot of a zspage whose handle is not in memory")
                };
                buf.clear();
                c.z(src).copy_out(size, sidx, len, &mut buf);
                let didx = c.take_slot(dst, hid);
                c.z_mut(dst).copy_in(size, didx, &buf);
                // Release: as in alloc.
                entry.store(
                    Loc::Mem {
                        len,
                        zspage: dst,
                        idx: didx,
                    }
                    .encode(),
                    Ordering::Release,
                );
                c.release_slot(src, sidx);
            }
            let pages = if c.z(src).inuse == 0 {
                let p = self.drop_zspage(&mut c, src);
                freed += p.len() as u64;
                Some(p)
            } else {
                None
            };
            drop(c);
            if let Some(p) = pages {
                self.release_pages(p);
            }
        }
    }

    pub fn stats(&self) -> PoolStats {
        let mut zspages = 0;
        let mut meta = 0;
        for c in self.classes.iter() {
            let c = c.lock();
            zspages += c.zspages as u64;
            meta += c.metadata_bytes() as u64;
        }
        let limit = self.limit_pages.load(Ordering::Relaxed);
        let mut st = PoolStats {
            objects: self.objects.load(Ordering::Relaxed),
            bytes_stored: self.bytes_stored.load(Ordering::Relaxed),
            pages_held: self.pages_used.load(Ordering::Relaxed) + self.arena.cached() as u64,
            max_pages_held: self.max_pages.load(Ordering::Relaxed),
            huge_objects: self.huge_objects.load(Ordering::Relaxed),
            pages_compacted: self.pages_compacted.load(Ordering::Relaxed),
            zspages,
            limit: (limit != u64::MAX).then(|| limit * PAGE_SIZE as u64),
            pool_limit_hit: self.limit_hits.load(Ordering::Relaxed),
            metadata_bytes: meta,
            ..Default::default()
        };
        self.wb_stats(&mut st);
        st
    }

    /// Reset `max_pages_held` to the current value (zram's `mem_used_max` reset).
    pub fn reset_max_pages(&self) {
        self.max_pages
            .store(self.pages_used.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// The per-class table, one row per merged class.
    pub fn class_stats(&self) -> Vec<ClassStats> {
        self.classes
            .iter()
            .map(|c| {
                let c = c.lock();
                let mut fullness = [0; GROUPS];
                for (f, l) in fullness.iter_mut().zip(c.groups.iter()) {
                    *f = l.len as u64;
                }
                ClassStats {
                    size: c.info.size,
                    min_size: c.info.min_size,
                    merged: c.info.merged,
                    pages_per_zspage: c.info.pages,
                    objs_per_zspage: c.info.objs,
                    huge: c.info.huge(),
                    objects_allocated: (c.zspages * c.info.objs) as u64,
                    objects_in_use: c.inuse as u64,
                    zspages: c.zspages as u64,
                    pages: (c.zspages * c.info.pages) as u64,
                    fullness,
                    isolated: c.isolated as u64,
                }
            })
            .collect()
    }

    /// Change the memory limit; `None` removes it. Lowering it below what is
    /// held frees nothing by itself: allocations needing pages fail until
    /// frees, compaction or writeback bring the pool under it.
    pub fn set_limit(&self, limit: Option<u64>) {
        let pages = limit.map_or(u64::MAX, |b| b / PAGE_SIZE as u64);
        self.limit_pages.store(pages, Ordering::Relaxed);
    }

    /// Assert every invariant of the pool (debug builds and tests): counts,
    /// fullness groups, free lists, LRU, handle map. Holds every class lock
    /// (in index order) for the duration.
    pub fn debug_check_consistency(&self) {
        let guards: Vec<_> = self.classes.iter().map(|c| c.lock()).collect();
        let _disk = self.disk_rw.write();
        let mut disk_objects = 0u64;
        let mut pages = 0;
        let mut objects = 0;
        let mut bytes = 0;
        let high = self.handles.high_water();
        // Per id: how many places claim it (slot or free list).
        let mut claimed = vec![0u8; high as usize];
        for (ci, c) in guards.iter().enumerate() {
            let info = c.info;
            let (mut zspages, mut inuse, mut isolated, mut iso_inuse) = (0, 0, 0, 0);
            let mut group_len = [0usize; GROUPS];
            let mut lru_len = 0;
            for (zid, z) in c.slab.iter().enumerate() {
                let Some(z) = z else {
                    assert!(
                        c.free_zs.contains(&(zid as u32)),
                        "class {ci}: hole {zid} not in free_zs"
                    );
                    continue;
                };
                let zid = zid as u32;
                zspages += 1;
                assert_eq!(z.pages.len(), info.pages);
                assert_eq!(z.slots.len(), info.objs);
                // Free chain visits exactly the free slots.
                let mut free = 0;
                let mut cur = z.free_head;
                while cur != SLOT_NIL {
                    let s = z.slots[cur as usize];
                    assert!(
                        s & SLOT_FREE != 0,
                        "class {ci} zspage {zid}: chain hits used slot {cur}"
                    );
                    free += 1;
                    assert!(
                        free <= info.objs,
                        "class {ci} zspage {zid}: free chain loops"
                    );
                    cur = s & !SLOT_FREE;
                }
                let used: Vec<(usize, u32)> = z
                    .slots
                    .iter()
                    .enumerate()
                    .filter(|(_, &s)| s & SLOT_FREE == 0)
                    .map(|(i, &s)| (i, s))
                    .collect();
                assert_eq!(used.len(), z.inuse, "class {ci} zspage {zid}: inuse");
                assert_eq!(
                    free + z.inuse,
                    info.objs,
                    "class {ci} zspage {zid}: free + used"
                );
                for (idx, hid) in used {
                    assert!(hid < high, "slot holds unknown handle {hid}");
                    claimed[hid as usize] += 1;
                    let loc = Loc::decode(self.handles.entry(hid).load(Ordering::Acquire));
                    match loc {
                        Loc::Mem {
                            len,
                            zspage,
                            idx: i,
                        } => {
                            assert_eq!((zspage, i), (zid, idx), "handle {hid} points elsewhere");
                            assert_eq!(
                                self.table.class_of(len),
                                ci,
                                "handle {hid} len {len} in wrong class"
                            );
                            objects += 1;
                            bytes += len as u64;
                        }
                        other => {
                            panic!("handle {hid} in slot {zid}/{idx} of class {ci} is {other:?}")
                        }
                    }
                }
                inuse += z.inuse;
                match z.state {
                    ZsState::Listed => {
                        assert_eq!(
                            z.group,
                            fullness(z.inuse, info.objs),
                            "class {ci} zspage {zid}: group"
                        );
                        assert!(
                            z.inuse > 0,
                            "class {ci}: empty listed zspage {zid} not freed"
                        );
                        group_len[z.group] += 1;
                        lru_len += 1;
                    }
                    ZsState::Isolated => {
                        isolated += 1;
                        iso_inuse += z.inuse;
                    }
                }
            }
            assert_eq!(
                (zspages, inuse),
                (c.zspages, c.inuse),
                "class {ci}: counters"
            );
            assert_eq!(
                (isolated, iso_inuse),
                (c.isolated, c.isolated_inuse),
                "class {ci}: isolated"
            );
            // Lists: lengths, links both ways, membership by state and group.
            let walk = |which: ListId, l: &List| -> usize {
                let mut n = 0;
                let mut prev = NIL;
                let mut cur = l.head;
                while cur != NIL {
                    let z = c.z(cur);
                    assert_eq!(
                        z.state,
                        ZsState::Listed,
                        "class {ci}: isolated zspage {cur} on a list"
                    );
                    let link = match which {
                        ListId::Group(g) => {
                            assert_eq!(z.group, g, "class {ci}: zspage {cur} in wrong group");
                            z.glink
                        }
                        ListId::Lru => z.llink,
                    };
                    assert_eq!(link.prev, prev, "class {ci}: broken prev link at {cur}");
                    if which == ListId::Lru && prev != NIL {
                        assert!(
                            c.z(prev).stamp >= z.stamp,
                            "class {ci}: LRU out of order at {cur}"
                        );
                    }
                    prev = cur;
                    cur = link.next;
                    n += 1;
                    assert!(n <= c.zspages, "class {ci}: list loops");
                }
                assert_eq!(l.tail, prev, "class {ci}: tail");
                assert_eq!(l.len, n, "class {ci}: list len");
                n
            };
            for (g, &expect) in group_len.iter().enumerate() {
                assert_eq!(
                    walk(ListId::Group(g), &c.groups[g]),
                    expect,
                    "class {ci} group {g}"
                );
            }
            assert_eq!(
                walk(ListId::Lru, &c.lru),
                lru_len,
                "class {ci}: LRU holds the listed zspages"
            );
            for &id in &c.free_ids {
                assert!(id < high);
                claimed[id as usize] += 1;
                let loc = Loc::decode(self.handles.entry(id).load(Ordering::Acquire));
                assert_eq!(loc, Loc::Free, "free id {id} of class {ci} has an entry");
            }
            pages += (c.zspages * info.pages) as u64;
        }
        for (id, &n) in claimed.iter().enumerate() {
            let loc = Loc::decode(self.handles.entry(id as u32).load(Ordering::Acquire));
            let expect = match loc {
                Loc::Disk { len, off } => {
                    self.check_disk_entry(id as u32, len, off);
                    disk_objects += 1;
                    0
                }
                _ => 1,
            };
            assert_eq!(n, expect, "handle {id} ({loc:?}) claimed {n} times");
        }
        match &self.backing {
            Some(b) => assert_eq!(
                b.check(),
                disk_objects,
                "objects on disk vs backing records"
            ),
            None => assert_eq!(disk_objects, 0, "disk entries without a backing file"),
        }
        assert_eq!(pages, self.pages_used.load(Ordering::Relaxed), "pages_used");
        assert_eq!(objects, self.objects.load(Ordering::Relaxed), "objects");
        assert_eq!(
            bytes,
            self.bytes_stored.load(Ordering::Relaxed),
            "bytes_stored"
        );
    }
}

impl Core {
    /// (pages in zspages, limit in pages or u64::MAX).
    pub(crate) fn pages_and_limit(&self) -> (u64, u64) {
        (
            self.pages_used.load(Ordering::Relaxed),
            self.limit_pages.load(Ordering::Relaxed),
        )
    }
    pub(crate) fn accept_threshold(&self) -> u8 {
        self.accept_pct.load(Ordering::Relaxed)
    }
    pub(crate) fn second_chance(&self) -> bool {
        self.config.second_chance
    }
    pub(crate) fn watch_pressure(&self) -> bool {
        self.config.watch_pressure
    }
    /// Shrinker-thread writeback of `pages` pages, coldest first; the freed
    /// pages really go back to the kernel (no resident cache kept).
    pub(crate) fn shrink_second_chance(&self, pages: u64) -> Result<WritebackReport, PoolError> {
        let r = self.shrink(writeback::Pick::SecondChance, pages);
        self.arena.trim();
        r
    }
}

/// The pool. `Send + Sync`. With a backing file it runs a shrinker thread,
/// stopped and joined when the pool is dropped.
pub struct Pool {
    core: Arc<Core>,
    shrinker: Option<ShrinkerThread>,
}

impl Pool {
    /// A pool; panics if the backing file cannot be created (use `try_new`
    /// or `from_config` when there is one).
    pub fn new(config: PoolConfig) -> Pool {
        Pool::try_new(config).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A pool, its backing file, and (with a backing file) its shrinker thread.
    pub fn try_new(config: PoolConfig) -> Result<Pool, PoolError> {
        let backing = match &config.backing {
            Backing::None => None,
            Backing::TempFile => Some(BackingFile::create_temp()?),
            Backing::Path(p) => Some(BackingFile::create_at(p)?),
        };
        let core = Arc::new(Core::new(config, backing));
        let shrinker = match core.backing {
            Some(_) => Some(ShrinkerThread::start(core.clone())?),
            None => None,
        };
        Ok(Pool { core, shrinker })
    }

    /// The pool a mount's options describe (`block_size=`, `pool_limit=`,
    /// `accept_threshold=`, `backing=`), shrinker thread running. The one
    /// call the integrator needs.
    pub fn from_config(cfg: &Config) -> Result<Pool, PoolError> {
        Pool::try_new(PoolConfig::from_config(cfg))
    }

    /// Largest object `alloc` accepts.
    pub fn max_object_size(&self) -> usize {
        self.core.max_object_size()
    }
    /// Allocate an object of `data.len()` bytes and fill it with `data`.
    /// On error nothing was allocated; `LimitReached` means memory is at the
    /// limit and writeback cannot make room (no backing, or its disk full).
    pub fn alloc(&self, data: &[u8]) -> Result<Handle, PoolError> {
        self.core.alloc(data)
    }
    /// Lend the object's bytes to `f` (no pool lock held while it runs).
    /// A written-back object costs one `pread`; `Checksum` if it is damaged.
    pub fn read_with<R>(&self, h: Handle, f: impl FnOnce(&[u8]) -> R) -> Result<R, PoolError> {
        self.core.read_with(h, f)
    }
    /// Append the object's bytes to `out`.
    pub fn read_into(&self, h: Handle, out: &mut Vec<u8>) -> Result<(), PoolError> {
        self.core.read_into(h, out)
    }
    /// Size of the object in bytes.
    pub fn object_len(&self, h: Handle) -> usize {
        self.core.object_len(h)
    }
    /// Whether the object is in memory now (not written back); a hint that
    /// may be stale by the time the caller acts, never wrong about a read.
    pub fn is_resident(&self, h: Handle) -> bool {
        self.core.is_resident(h)
    }
    /// Free the object (in memory or on disk). The handle must not be used again.
    pub fn free(&self, h: Handle) {
        self.core.free(h)
    }
    /// Move objects out of sparse zspages; returns the pages given back.
    pub fn compact(&self) -> u64 {
        self.core.compact()
    }
    pub fn stats(&self) -> PoolStats {
        self.core.stats()
    }
    /// Reset `max_pages_held` to the current value.
    pub fn reset_max_pages(&self) {
        self.core.reset_max_pages()
    }
    /// The per-class table, one row per merged class.
    pub fn class_stats(&self) -> Vec<ClassStats> {
        self.core.class_stats()
    }
    /// Change the memory limit; `None` removes it. With a backing file the
    /// shrinker is woken to get under the new limit.
    pub fn set_limit(&self, limit: Option<u64>) {
        self.core.set_limit(limit);
        if limit.is_some() && self.shrinker.is_some() {
            self.core.signal.over_limit();
        }
    }
    /// Change `accept_threshold=` (percent of the limit writeback aims
    /// under, 1..=100); the shrinker reads it at its next wake-up.
    pub fn set_accept_threshold(&self, pct: u8) {
        debug_assert!((1..=100).contains(&pct));
        self.core.accept_pct.store(pct, Ordering::Relaxed);
    }
    /// Write back now, in this thread (`writeback all|idle|N`).
    pub fn writeback(&self, req: WritebackRequest) -> Result<WritebackReport, PoolError> {
        self.core.writeback(req)
    }
    /// Rewrite mostly-dead backing-file records (the shrinker does this by
    /// itself once 1 MiB is dead); returns the file bytes given back.
    pub fn compact_backing(&self) -> Result<u64, PoolError> {
        self.core.rewrite_sparse_records()
    }
    /// Ask the shrinker thread to write back; returns at once.
    pub fn request_writeback(&self, req: WritebackRequest) -> Result<(), PoolError> {
        if self.shrinker.is_none() {
            return Err(PoolError::NoBacking);
        }
        self.core.signal.request(req);
        Ok(())
    }
    /// Assert every invariant of the pool (debug builds and tests).
    pub fn debug_check_consistency(&self) {
        self.core.debug_check_consistency()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if let Some(t) = self.shrinker.take() {
            t.stop();
        }
    }
}

#[cfg(test)]
mod tests;
