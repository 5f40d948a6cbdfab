//! A zspage: a chain of pages cut into equal slots, and its explicit state.

use super::list::{Link, UNLINKED};
use super::pages::{Page, PAGE_SIZE};

/// Number of fullness groups.
pub const GROUPS: usize = 12;
/// Labels of the fullness groups (percent of slots in use).
pub const FULLNESS_LABELS: [&str; GROUPS] = [
    "0", "10", "20", "30", "40", "50", "60", "70", "80", "90", "99", "100",
];
pub(super) const GROUP_EMPTY: usize = 0;
pub(super) const GROUP_FULL: usize = GROUPS - 1;

/// zsmalloc's `get_fullness_group`: 1..=10 for partly used zspages (the
/// `+ 1` keeps one object in 127 out of the empty group).
pub(super) fn fullness(inuse: usize, objs: usize) -> usize {
    if inuse == 0 {
        GROUP_EMPTY
    } else if inuse == objs {
        GROUP_FULL
    } else {
        100 * inuse / objs / 10 + 1
    }
}

/// A slot value with this bit set is free; the low bits are the next free slot.
pub(super) const SLOT_FREE: u32 = 1 << 31;
/// End of a zspage's free-slot chain.
pub(super) const SLOT_NIL: u32 = SLOT_FREE - 1;

/// The explicit state of a zspage (DESIGN.md lesson 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ZsState {
    /// In its fullness group and in the class LRU; takes allocations.
    Listed,
    /// Taken by writeback: in no list, takes no allocations, not compacted.
    /// Only the isolating thread puts it back or frees it.
    Isolated,
}

pub(super) struct ZsPage {
    /// The chain and the slots in one allocation (one malloc chunk and one
    /// pointer per zspage, not two): `npages` page addresses, each as two
    /// u32 halves, then per slot the handle id stored there, or
    /// `SLOT_FREE | next free slot`. Read through `page`, `slots`.
    /// Invariant: npages == class pages per zspage; slots == class objs.
    mem: Box<[u32]>,
    npages: u8,
    /// First free slot or SLOT_NIL. Invariant: the chain from here visits
    /// exactly the free slots.
    pub free_head: u32,
    /// Slots in use. Invariant: == number of non-free slots.
    pub inuse: usize,
    pub state: ZsState,
    /// Fullness group it is linked in. Invariant: when Listed, ==
    /// fullness(inuse, objs) and the zspage is in that group's list.
    pub group: usize,
    /// Set by reads, cleared by writeback's second chance.
    pub referenced: bool,
    /// LRU clock value when it was last put at the LRU head (allocation,
    /// second chance, putback).
    pub stamp: u64,
    /// Links in `groups[group]` (when Listed).
    pub glink: Link,
    /// Links in the class LRU (when Listed).
    pub llink: Link,
}

impl ZsPage {
    /// A Listed zspage of `objs` free slots over `pages`, in no list yet.
    pub fn new(pages: &[Page], objs: usize) -> ZsPage {
        let halves = pages.iter().flat_map(|p| {
            let a = p.ptr() as usize as u64;
            [a as u32, (a >> 32) as u32]
        });
        let slots = (0..objs as u32).map(|i| {
            SLOT_FREE
                | if i + 1 == objs as u32 {
                    SLOT_NIL
                } else {
                    i + 1
                }
        });
        ZsPage {
            mem: halves.chain(slots).collect(),
            npages: u8::try_from(pages.len()).expect("a zspage has few pages"),
            free_head: 0,
            inuse: 0,
            state: ZsState::Listed,
            group: GROUP_EMPTY,
            referenced: false,
            stamp: 0,
            glink: UNLINKED,
            llink: UNLINKED,
        }
    }

    /// The address of page `p` of the chain.
    #[inline]
    fn page(&self, p: usize) -> *mut u8 {
        let (lo, hi) = (self.mem[2 * p], self.mem[2 * p + 1]);
        (u64::from(hi) << 32 | u64::from(lo)) as usize as *mut u8
    }

    /// The chain's pages, to give back to the arena.
    pub fn pages(&self) -> Box<[Page]> {
        (0..usize::from(self.npages))
            .map(|p| Page::from_ptr(self.page(p)))
            .collect()
    }

    /// Pages in the chain.
    pub fn npages(&self) -> usize {
        usize::from(self.npages)
    }

    /// Per slot: the handle id stored there, or `SLOT_FREE | next free slot`.
    #[inline]
    pub fn slots(&self) -> &[u32] {
        &self.mem[2 * usize::from(self.npages)..]
    }

    #[inline]
    pub fn slots_mut(&mut self) -> &mut [u32] {
        &mut self.mem[2 * usize::from(self.npages)..]
    }

    /// Copy `len` bytes of slot `idx` to the end of `out`.
    #[inline]
    pub fn copy_out(&self, size: usize, idx: usize, len: usize, out: &mut Vec<u8>) {
        let (mut off, mut left) = (idx * size, len);
        while left > 0 {
            let (p, po) = (off / PAGE_SIZE, off % PAGE_SIZE);
            let n = left.min(PAGE_SIZE - po);
            // SAFETY: slot idx lies inside the chain (idx < objs, objs * size
            // <= pages * 4096), the page is owned by this zspage, and the
            // caller holds the class lock, so no one writes it meanwhile.
            out.extend_from_slice(unsafe { std::slice::from_raw_parts(self.page(p).add(po), n) });
            off += n;
            left -= n;
        }
    }

    /// Write `data` into slot `idx`.
    #[inline]
    pub fn copy_in(&mut self, size: usize, idx: usize, data: &[u8]) {
        let mut off = idx * size;
        let mut rest = data;
        while !rest.is_empty() {
            let (p, po) = (off / PAGE_SIZE, off % PAGE_SIZE);
            let n = rest.len().min(PAGE_SIZE - po);
            // SAFETY: as in copy_out; &mut self under the class lock makes
            // this the only access.
            unsafe { std::ptr::copy_nonoverlapping(rest.as_ptr(), self.page(p).add(po), n) };
            off += n;
            rest = &rest[n..];
        }
    }

    /// The used slots: (slot, handle id).
    pub fn used(&self) -> impl Iterator<Item = (usize, u32)> + '_ {
        self.slots()
            .iter()
            .enumerate()
            .filter(|(_, &s)| s & SLOT_FREE == 0)
            .map(|(i, &s)| (i, s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slab holds one of these per zspage id: 64 bytes, where separate
    /// page and slot boxes took 80 (and two malloc chunks, not one).
    #[test]
    fn a_zspage_is_one_allocation_and_a_64_byte_slot() {
        assert!(std::mem::size_of::<Option<ZsPage>>() <= 64);
        let mut backing = vec![0u8; 3 * PAGE_SIZE];
        let base = backing.as_mut_ptr();
        // SAFETY: three pages' worth of bytes inside `backing`.
        let pages: Vec<Page> = (0..3)
            .map(|p| Page::from_ptr(unsafe { base.add(p * PAGE_SIZE) }))
            .collect();
        let mut z = ZsPage::new(&pages, 5);
        assert_eq!(z.npages(), 3);
        assert_eq!(&*z.pages(), &pages[..]);
        assert_eq!(z.slots().len(), 5);
        assert_eq!(z.slots()[4], SLOT_FREE | SLOT_NIL);
        // A slot across the first page boundary round-trips.
        let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        z.copy_in(2500, 1, &data);
        let mut out = Vec::new();
        z.copy_out(2500, 1, data.len(), &mut out);
        assert_eq!(out, data);
        assert_eq!(z.used().count(), 0);
        z.slots_mut()[1] = 42;
        assert_eq!(z.used().collect::<Vec<_>>(), [(1, 42)]);
        drop(backing);
    }
}
