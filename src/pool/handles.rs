//! The handle table: handle id -> where the object is now.
//!
//! A `util::table::AtomicTable` (two levels, lock-free lookup) of entries,
//! each one `AtomicU64` holding a `Loc`:
//!
//! ```text
//!  63..62  tag       0 free, 1 in memory, 2 on disk
//!  61..44  len       object length in bytes (< 2^18, so up to 256 KiB)
//!  43..0   in memory: zspage id (32 bits, index into its class's slab)
//!                     << 12 | object index in the zspage (12 bits)
//!          on disk:   byte offset of the object's frame in the backing file
//! ```
//!
//! The class is not stored: it is `class_of(len)`, fixed for the handle's
//! life. Who may change an entry: see the lock order in `pool/mod.rs`.
//!
//! # Orderings (stated here once; `Entry` is the only code that touches one)
//!
//! - Every store (`set_mem`, `set_disk`, `set_free`) is `Release`. The case
//!   that needs it: a reader that sees an on-disk location must see the
//!   record that was `pwrite`n before the location was stored; and a thread
//!   that learns a handle through a relaxed channel sees its entry.
//! - `load` is `Acquire`, for every reader that does not hold the lock
//!   guarding the entry's location (the lock-free first look at an object's
//!   length and place, and every access to on-disk entries, whose guard
//!   `disk_rw` protects the bytes but is not what published them).
//! - `load_locked` is `Relaxed`, for an entry read under the class lock of
//!   its object: every store that puts an entry in memory, moves it there,
//!   takes it to disk or frees it happens under that lock, which orders it.
//!   A disk location seen this way only picks the path; it is loaded again
//!   with `load` (under `disk_rw`) before it is used.

use crate::util::table::AtomicTable;
pub(crate) use crate::util::table::MAX_IDS;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

const TAG_SHIFT: u32 = 62;
const TAG_MEM: u64 = 1;
const TAG_DISK: u64 = 2;
const LEN_SHIFT: u32 = 44;
const LEN_MASK: u64 = (1 << 18) - 1;
const LOW_MASK: u64 = (1 << 44) - 1;
const IDX_BITS: u32 = 12;
/// Largest object index a zspage may have.
pub(crate) const MAX_OBJS_PER_ZSPAGE: usize = 1 << IDX_BITS;
/// Largest object length an entry can describe.
pub(crate) const MAX_LEN: usize = LEN_MASK as usize;
// Every offset the backing file hands out fits the entry's 44 low bits.
const _: () = assert!(crate::backing::MAX_OFFSET <= LOW_MASK);

/// Decoded entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loc {
    Free,
    Mem { len: usize, zspage: u32, idx: usize },
    Disk { len: usize, off: u64 },
}

impl Loc {
    #[inline]
    fn encode(self) -> u64 {
        match self {
            Loc::Free => 0,
            Loc::Mem { len, zspage, idx } => {
                debug_assert!(len <= MAX_LEN && idx < MAX_OBJS_PER_ZSPAGE);
                TAG_MEM << TAG_SHIFT
                    | (len as u64) << LEN_SHIFT
                    | u64::from(zspage) << IDX_BITS
                    | idx as u64
            }
            Loc::Disk { len, off } => {
                debug_assert!(len <= MAX_LEN && off <= LOW_MASK);
                TAG_DISK << TAG_SHIFT | (len as u64) << LEN_SHIFT | off
            }
        }
    }

    #[inline]
    fn decode(v: u64) -> Loc {
        let len = ((v >> LEN_SHIFT) & LEN_MASK) as usize;
        let low = v & LOW_MASK;
        match v >> TAG_SHIFT {
            0 => Loc::Free,
            TAG_MEM => Loc::Mem {
                len,
                zspage: (low >> IDX_BITS) as u32,
                idx: (low & ((1 << IDX_BITS) - 1)) as usize,
            },
            TAG_DISK => Loc::Disk { len, off: low },
            t => unreachable!("corrupt handle entry tag {t} in {v:#x}"),
        }
    }
}

/// One handle entry. Every state change of an entry goes through here.
#[repr(transparent)]
pub(crate) struct Entry(AtomicU64);

impl Entry {
    /// The location, for a reader not holding the lock that guards it.
    #[inline]
    pub fn load(&self) -> Loc {
        Loc::decode(self.0.load(Ordering::Acquire))
    }

    /// The location of an in-memory entry, read under its class lock.
    #[inline]
    pub fn load_locked(&self) -> Loc {
        Loc::decode(self.0.load(Ordering::Relaxed))
    }

    /// The object now lives in slot `idx` of zspage `zspage` (under the class lock).
    #[inline]
    pub fn set_mem(&self, len: usize, zspage: u32, idx: usize) {
        self.store(Loc::Mem { len, zspage, idx });
    }

    /// The object now lives in the frame at `off` of the backing file,
    /// written before this call (under the class lock or exclusive `disk_rw`).
    #[inline]
    pub fn set_disk(&self, len: usize, off: u64) {
        self.store(Loc::Disk { len, off });
    }

    /// The object is gone; the id may be reused after this.
    #[inline]
    pub fn set_free(&self) {
        self.store(Loc::Free);
    }

    #[inline]
    fn store(&self, loc: Loc) {
        self.0.store(loc.encode(), Ordering::Release);
    }
}

pub(crate) struct HandleTable {
    entries: AtomicTable,
    /// Ids below this have been handed out at least once (their block exists).
    next: AtomicU32,
}

impl HandleTable {
    pub fn new() -> HandleTable {
        HandleTable {
            entries: AtomicTable::new(),
            next: AtomicU32::new(0),
        }
    }

    /// A never-used id, or None when all 2^31 are taken.
    #[inline]
    pub fn new_id(&self) -> Option<u32> {
        // Relaxed: the counter only has to hand out distinct values; the
        // block the id lives in is published by the table.
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if id >= MAX_IDS {
            self.next.store(MAX_IDS, Ordering::Relaxed);
            return None;
        }
        self.entries.get_or_alloc(id);
        Some(id)
    }

    /// Ids handed out so far (an upper bound for scans).
    pub fn high_water(&self) -> u32 {
        self.next.load(Ordering::Relaxed).min(MAX_IDS)
    }

    /// Memory the table holds (`metadata_bytes`).
    pub fn bytes(&self) -> u64 {
        self.entries.bytes()
    }

    /// The entry of an id returned by `new_id`.
    #[inline]
    pub fn entry(&self, id: u32) -> &Entry {
        let e = self.entries.get(id).expect("handle was never allocated");
        // SAFETY: Entry is a repr(transparent) AtomicU64.
        unsafe { &*(e as *const AtomicU64).cast::<Entry>() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        for loc in [
            Loc::Free,
            Loc::Mem {
                len: 131072,
                zspage: u32::MAX,
                idx: 4095,
            },
            Loc::Mem {
                len: 0,
                zspage: 0,
                idx: 0,
            },
            Loc::Disk {
                len: 4096,
                off: crate::backing::MAX_OFFSET,
            },
        ] {
            assert_eq!(Loc::decode(loc.encode()), loc);
        }
    }

    #[test]
    fn ids_across_blocks() {
        let t = HandleTable::new();
        let block = crate::util::table::BLOCK as u32;
        for _ in 0..(block + 10) {
            let id = t.new_id().unwrap();
            t.entry(id).set_disk(1, u64::from(id) + 1);
        }
        assert_eq!(
            t.entry(block + 3).load(),
            Loc::Disk {
                len: 1,
                off: u64::from(block) + 4
            }
        );
    }
}
