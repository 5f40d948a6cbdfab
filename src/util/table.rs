//! A lazily allocated two-level table of `AtomicU64`, indexed by a 31-bit id.
//!
//! A directory of 2^15 pointers, each null or a block of 2^16 entries
//! allocated the first time an id in it is asked for. A lookup is two loads
//! and never takes a lock; a table of a few live ids costs one block, not
//! 2^31 entries. Used by the pool's handle table (`pool/handles.rs`) and the
//! dedup index's per-handle meta (`store/dedup.rs`).
//!
//! Orderings: a block is published with one `AcqRel` compare-exchange
//! (null -> block; a loser frees its own block) and found with `Acquire`
//! loads, so whoever gets an entry sees it zeroed or as last stored. What an
//! entry's value means, and the ordering of its own loads and stores, is the
//! user's business.

use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

const BLOCK_BITS: u32 = 16;
/// Entries per block.
pub(crate) const BLOCK: usize = 1 << BLOCK_BITS;
/// Ids are below this (a pool slot stores one with a spare top bit).
pub(crate) const MAX_IDS: u32 = 1 << 31;
const DIR: usize = (MAX_IDS as usize) >> BLOCK_BITS;

pub(crate) struct AtomicTable {
    /// Invariant: dir[i] is null or a leaked `Box<[AtomicU64; BLOCK]>` that
    /// lives until the table drops. Set once (null -> block), never changed.
    dir: Box<[AtomicPtr<AtomicU64>]>,
}

impl AtomicTable {
    pub fn new() -> AtomicTable {
        AtomicTable {
            dir: (0..DIR)
                .map(|_| AtomicPtr::new(std::ptr::null_mut()))
                .collect(),
        }
    }

    /// The entry of `id`, or None if its block was never allocated.
    #[inline]
    pub fn get(&self, id: u32) -> Option<&AtomicU64> {
        debug_assert!(id < MAX_IDS);
        // Acquire pairs with the publishing CAS in get_or_alloc.
        let p = self.dir[(id >> BLOCK_BITS) as usize].load(Ordering::Acquire);
        // SAFETY: p is a live block of BLOCK entries (invariant of dir).
        (!p.is_null()).then(|| unsafe { &*p.add(id as usize & (BLOCK - 1)) })
    }

    /// The entry of `id`, allocating its block; the bool says this call
    /// allocated it.
    #[inline]
    pub fn get_or_alloc(&self, id: u32) -> (&AtomicU64, bool) {
        if let Some(e) = self.get(id) {
            return (e, false);
        }
        let slot = &self.dir[(id >> BLOCK_BITS) as usize];
        let block: Box<[AtomicU64]> = (0..BLOCK).map(|_| AtomicU64::new(0)).collect();
        let p = Box::into_raw(block).cast::<AtomicU64>();
        // AcqRel: Release publishes the zeroed block to every later Acquire
        // load in `get`; Acquire on failure sees the winner's.
        let won = slot
            .compare_exchange(std::ptr::null_mut(), p, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if !won {
            // SAFETY: p came from Box::into_raw just above and was not published.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, BLOCK)) });
        }
        (self.get(id).expect("block published"), won)
    }

    /// Every allocated block with the id of its first entry.
    pub fn blocks(&self) -> impl Iterator<Item = (u32, &[AtomicU64])> {
        self.dir.iter().enumerate().filter_map(|(i, d)| {
            let p = d.load(Ordering::Acquire);
            // SAFETY: as in get.
            (!p.is_null()).then(|| {
                ((i as u32) << BLOCK_BITS, unsafe {
                    std::slice::from_raw_parts(p, BLOCK)
                })
            })
        })
    }

    /// Heap bytes of the directory (blocks are `BLOCK * 8` each on top).
    pub const fn dir_bytes() -> usize {
        DIR * std::mem::size_of::<AtomicPtr<AtomicU64>>()
    }
}

impl Drop for AtomicTable {
    fn drop(&mut self) {
        for slot in self.dir.iter() {
            let p = slot.load(Ordering::Relaxed);
            if !p.is_null() {
                // SAFETY: allocated in get_or_alloc as a boxed slice of BLOCK.
                drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, BLOCK)) });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_across_blocks() {
        let t = AtomicTable::new();
        assert!(t.get(5).is_none());
        for id in 0..(BLOCK as u32 + 10) {
            let (e, fresh) = t.get_or_alloc(id);
            assert_eq!(fresh, id == 0 || id == BLOCK as u32);
            e.store(u64::from(id) + 1, Ordering::Relaxed);
        }
        assert_eq!(
            t.get(BLOCK as u32 + 3).unwrap().load(Ordering::Relaxed),
            BLOCK as u64 + 4
        );
        assert_eq!(t.blocks().count(), 2);
    }
}
