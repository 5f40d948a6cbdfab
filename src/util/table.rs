//! A lazily allocated two-level table of `AtomicU64`, indexed by a 31-bit id.
//!
//! A directory of 2^19 pointers, each null or a block of 2^12 entries
//! (32 KiB) allocated the first time an id in it is asked for. A lookup is
//! two loads and never takes a lock. Memory follows the highest id used: a
//! table of a few live ids costs one block and one page of directory, not
//! 2^31 entries. Used by the pool's handle table (`pool/handles.rs`) and the
//! store's per-object words (`store/meta.rs`).
//!
//! Why these sizes: the tables are sized by the highest id ever handed out
//! (on the bench's real tree, 208,676 at the peak of a copy), so a block is
//! the unit of waste past it; 32 KiB blocks waste at most 32 KiB a table
//! where 512 KiB ones wasted up to 512 KiB. The directory (4 MiB for 2^31
//! ids) is an anonymous mapping of its own, so only its pages that hold a
//! published pointer are ever resident: 4 KiB for the first 2^21 ids.
//!
//! Orderings: a block is published with one `AcqRel` compare-exchange
//! (null -> block; a loser frees its own block) and found with `Acquire`
//! loads, so whoever gets an entry sees it zeroed or as last stored. What an
//! entry's value means, and the ordering of its own loads and stores, is the
//! user's business.

use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

const BLOCK_BITS: u32 = 12;
/// Entries per block.
pub(crate) const BLOCK: usize = 1 << BLOCK_BITS;
/// Ids are below this (a pool slot stores one with a spare top bit).
pub(crate) const MAX_IDS: u32 = 1 << 31;
const DIR: usize = (MAX_IDS as usize) >> BLOCK_BITS;
const DIR_BYTES: usize = DIR * std::mem::size_of::<AtomicPtr<AtomicU64>>();
/// Directory pointers per 4 KiB page of the directory.
const PTRS_PER_PAGE: usize = 4096 / std::mem::size_of::<AtomicPtr<AtomicU64>>();
const DIR_PAGES: usize = DIR_BYTES / 4096;

pub(crate) struct AtomicTable {
    /// DIR pointers in a private anonymous mapping (zero until written).
    /// Invariant: dir[i] is null or a leaked `Box<[AtomicU64; BLOCK]>` that
    /// lives until the table drops. Set once (null -> block), never changed.
    dir: std::ptr::NonNull<AtomicPtr<AtomicU64>>,
    /// Blocks published, and a bit per directory page holding a pointer:
    /// `bytes` in O(1), for stats read after every write in tests and by
    /// every read of the control file, and `blocks` reading only those
    /// pages. The count is `Relaxed` (it orders nothing); for the bits see
    /// `get_or_alloc`.
    blocks: AtomicUsize,
    dir_pages: [AtomicU64; DIR_PAGES / 64],
}

// SAFETY: the directory is only touched through atomics, and the blocks it
// points to are AtomicU64s owned by the table.
unsafe impl Send for AtomicTable {}
unsafe impl Sync for AtomicTable {}

impl AtomicTable {
    pub fn new() -> AtomicTable {
        // 4 MiB of address space, of which only the touched pages ever
        // cost memory.
        let dir = super::mapping::map_anonymous(DIR_BYTES)
            .unwrap_or_else(|e| panic!("mapping the {DIR_BYTES}-byte id table directory: {e}"));
        AtomicTable {
            // Zero-filled memory is a valid array of null AtomicPtrs.
            dir: dir.cast(),
            blocks: AtomicUsize::new(0),
            dir_pages: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn dir(&self) -> &[AtomicPtr<AtomicU64>] {
        // SAFETY: `dir` maps DIR zero-initialised AtomicPtrs for the table's life.
        unsafe { std::slice::from_raw_parts(self.dir.as_ptr(), DIR) }
    }

    /// The entry of `id`, or None if its block was never allocated.
    #[inline]
    pub fn get(&self, id: u32) -> Option<&AtomicU64> {
        debug_assert!(id < MAX_IDS);
        // Acquire pairs with the publishing CAS in get_or_alloc.
        let p = self.dir()[(id >> BLOCK_BITS) as usize].load(Ordering::Acquire);
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
        let slot = &self.dir()[(id >> BLOCK_BITS) as usize];
        let block: Box<[AtomicU64]> = (0..BLOCK).map(|_| AtomicU64::new(0)).collect();
        let p = Box::into_raw(block).cast::<AtomicU64>();
        // AcqRel: Release publishes the zeroed block to every later Acquire
        // load in `get`; Acquire on failure sees the winner's.
        let won = slot
            .compare_exchange(std::ptr::null_mut(), p, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if won {
            self.blocks.fetch_add(1, Ordering::Relaxed);
            let page = (id >> BLOCK_BITS) as usize / PTRS_PER_PAGE;
            // Release, paired with the Acquire in `blocks`: whoever sees the
            // bit also sees the pointer published just before it.
            self.dir_pages[page / 64].fetch_or(1 << (page % 64), Ordering::Release);
        } else {
            // SAFETY: p came from Box::into_raw just above and was not published.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, BLOCK)) });
        }
        (self.get(id).expect("block published"), won)
    }

    /// Every allocated block with the id of its first entry, ascending.
    /// Only the directory pages that hold a pointer are read (`dir_pages`):
    /// walking all 4 MiB of the directory would fault in its zero pages,
    /// in every debug check and every drop.
    pub fn blocks(&self) -> impl Iterator<Item = (u32, &[AtomicU64])> {
        let dir = self.dir();
        (0..DIR_PAGES)
            .filter(|&page| {
                self.dir_pages[page / 64].load(Ordering::Acquire) & (1 << (page % 64)) != 0
            })
            .flat_map(move |page| {
                let first = page * PTRS_PER_PAGE;
                dir[first..first + PTRS_PER_PAGE]
                    .iter()
                    .enumerate()
                    .filter_map(move |(i, d)| {
                        let p = d.load(Ordering::Acquire);
                        // SAFETY: as in get.
                        (!p.is_null()).then(|| {
                            (((first + i) as u32) << BLOCK_BITS, unsafe {
                                std::slice::from_raw_parts(p, BLOCK)
                            })
                        })
                    })
            })
    }

    /// Memory the table holds: its blocks, and the directory's pages that
    /// hold a pointer (the others were never written, so never resident).
    pub fn bytes(&self) -> u64 {
        let blocks = self.blocks.load(Ordering::Relaxed);
        let pages: u32 = self
            .dir_pages
            .iter()
            .map(|w| w.load(Ordering::Relaxed).count_ones())
            .sum();
        (blocks * BLOCK * std::mem::size_of::<AtomicU64>()) as u64 + u64::from(pages) * 4096
    }
}

impl Drop for AtomicTable {
    fn drop(&mut self) {
        let blocks: Vec<*mut AtomicU64> =
            self.blocks().map(|(_, b)| b.as_ptr().cast_mut()).collect();
        for p in blocks {
            // SAFETY: allocated in get_or_alloc as a boxed slice of BLOCK,
            // published once, and nothing borrows the table any more.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, BLOCK)) });
        }
        // SAFETY: mapped in `new` with this length; no reference outlives self.
        unsafe { super::mapping::unmap(self.dir.cast(), DIR_BYTES) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_across_blocks() {
        let t = AtomicTable::new();
        assert!(t.get(5).is_none());
        assert_eq!(t.bytes(), 0);
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
        assert_eq!(t.bytes(), (2 * BLOCK * 8 + 4096) as u64);
        // The top id: its block and the directory's last page, not the
        // pages in between.
        t.get_or_alloc(MAX_IDS - 1).0.store(7, Ordering::Relaxed);
        assert_eq!(t.get(MAX_IDS - 1).unwrap().load(Ordering::Relaxed), 7);
        assert_eq!(t.bytes(), (3 * BLOCK * 8 + 2 * 4096) as u64);
        let firsts: Vec<u32> = t.blocks().map(|(first, _)| first).collect();
        assert_eq!(
            firsts,
            [0, BLOCK as u32, (MAX_IDS - 1) & !(BLOCK as u32 - 1)]
        );
    }
}
