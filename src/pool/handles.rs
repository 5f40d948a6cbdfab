//! The handle table: handle id -> where the object is now.
//!
//! Two levels (a directory of 2^15 lazily allocated blocks of 2^16 entries)
//! so a lookup is two loads and never takes a lock. Each entry is one
//! `AtomicU64` holding a `Loc`:
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

use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};

const BLOCK_BITS: u32 = 16;
const BLOCK: usize = 1 << BLOCK_BITS;
/// Handle ids are below 2^31 (a zspage slot stores one with a spare top bit).
pub(crate) const MAX_IDS: u32 = 1 << 31;
const DIR: usize = (MAX_IDS as usize) >> BLOCK_BITS;

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
/// Largest backing-file offset an entry can describe (16 TiB).
pub(crate) const MAX_DISK_OFFSET: u64 = LOW_MASK;

/// Decoded entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loc {
    Free,
    Mem { len: usize, zspage: u32, idx: usize },
    Disk { len: usize, off: u64 },
}

impl Loc {
    pub fn encode(self) -> u64 {
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
                debug_assert!(len <= MAX_LEN && off <= MAX_DISK_OFFSET);
                TAG_DISK << TAG_SHIFT | (len as u64) << LEN_SHIFT | off
            }
        }
    }

    pub fn decode(v: u64) -> Loc {
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

pub(crate) struct HandleTable {
    /// Invariant: dir[i] is null or a leaked `Box<[AtomicU64; BLOCK]>` that
    /// lives until the table drops. Set once (null -> block), never changed.
    dir: Box<[AtomicPtr<AtomicU64>]>,
    /// Ids below this have been handed out at least once (their block exists).
    next: AtomicU32,
}

impl HandleTable {
    pub fn new() -> HandleTable {
        HandleTable {
            dir: (0..DIR)
                .map(|_| AtomicPtr::new(std::ptr::null_mut()))
                .collect(),
            next: AtomicU32::new(0),
        }
    }

    /// A never-used id, or None when all 2^31 are taken.
    pub fn new_id(&self) -> Option<u32> {
        // Relaxed: the counter only has to hand out distinct values; the
        // block the id lives in is published by the CAS below.
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if id >= MAX_IDS {
            self.next.store(MAX_IDS, Ordering::Relaxed);
            return None;
        }
        let slot = &self.dir[(id >> BLOCK_BITS) as usize];
        if slot.load(Ordering::Acquire).is_null() {
            let block: Box<[AtomicU64]> = (0..BLOCK).map(|_| AtomicU64::new(0)).collect();
            let p = Box::into_raw(block).cast::<AtomicU64>();
            // AcqRel: Release publishes the zeroed block to every later
            // Acquire load in `entry`; Acquire on failure sees the winner's.
            if slot
                .compare_exchange(std::ptr::null_mut(), p, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                // SAFETY: p came from Box::into_raw just above and was not published.
                drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, BLOCK)) });
            }
        }
        Some(id)
    }

    /// Ids handed out so far (an upper bound for scans).
    pub fn high_water(&self) -> u32 {
        self.next.load(Ordering::Relaxed).min(MAX_IDS)
    }

    /// The entry of an id returned by `new_id`.
    #[inline]
    pub fn entry(&self, id: u32) -> &AtomicU64 {
        // Acquire pairs with the publishing CAS in new_id.
        let block = self.dir[(id >> BLOCK_BITS) as usize].load(Ordering::Acquire);
        assert!(!block.is_null(), "handle {id} was never allocated");
        // SAFETY: block is a live array of BLOCK entries (invariant of dir).
        unsafe { &*block.add(id as usize & (BLOCK - 1)) }
    }
}

impl Drop for HandleTable {
    fn drop(&mut self) {
        for slot in self.dir.iter() {
            let p = slot.load(Ordering::Relaxed);
            if !p.is_null() {
                // SAFETY: allocated in new_id as a boxed slice of BLOCK.
                drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, BLOCK)) });
            }
        }
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
                off: MAX_DISK_OFFSET,
            },
        ] {
            assert_eq!(Loc::decode(loc.encode()), loc);
        }
    }

    #[test]
    fn ids_across_blocks() {
        let t = HandleTable::new();
        for _ in 0..(BLOCK + 10) {
            let id = t.new_id().unwrap();
            t.entry(id).store(u64::from(id) + 1, Ordering::Relaxed);
        }
        assert_eq!(
            t.entry(BLOCK as u32 + 3).load(Ordering::Relaxed),
            BLOCK as u64 + 4
        );
    }
}
