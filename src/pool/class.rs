//! Size classes: the table (which class an object of n bytes goes to, and
//! how many 4 KiB pages a zspage of that class chains), and `Class`, the
//! state one class lock guards (its slab of zspages, their fullness groups
//! and LRU, its free handle ids).
//!
//! Raw classes are log-linear: 32 B to 4096 B in 16 B steps (zsmalloc's 255
//! classes for 4 KiB pages), then 128 classes per doubling above 4 KiB (the
//! step is `octave_top / 256`: 32 B up to 8 KiB, 64 B up to 16 KiB, ..., 512 B
//! up to 128 KiB), so the rounding loss of a large object stays under 0.8 %,
//! as it does for the 16 B steps just below 4 KiB.
//!
//! A class of size s chains the n pages, n in `1..=N * ceil(s / 4096)`, that
//! minimise `(n * 4096) % s` (the smallest such n on a tie). N is the pool's
//! `max_pages_per_zspage` (8, as the kernel); the factor lets a class of
//! objects larger than a page still choose among N object-sized chains.
//! Consecutive classes with the same (pages, objects) per zspage are merged
//! into the largest of them, as zsmalloc does. A class that fits one object
//! per zspage is "huge": the object has a zspage (one page up to 4 KiB) of
//! its own.

use super::list::{Link, Links, List, EMPTY_LIST, NIL};
use super::pages::{Page, PAGE_SIZE};
use super::zspage::{
    fullness, ZsPage, ZsState, GROUPS, GROUP_EMPTY, GROUP_FULL, SLOT_FREE, SLOT_NIL,
};

/// Smallest class: every object takes at least this many bytes.
pub(crate) const MIN_CLASS: usize = 32;
/// Step of the classes up to one page.
const STEP: usize = 16;

/// One merged class as the pool uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClassInfo {
    /// Bytes per slot: the largest object size this class holds.
    pub size: usize,
    /// Smallest object size served here (the raw classes merged into it
    /// start just above the previous class).
    pub min_size: usize,
    /// Pages chained per zspage.
    pub pages: usize,
    /// Objects per zspage: `pages * 4096 / size`.
    pub objs: usize,
    /// Raw classes merged into this one (1 when not merged).
    pub merged: usize,
}

impl ClassInfo {
    /// One object per zspage: the object owns its pages.
    #[inline]
    pub fn huge(&self) -> bool {
        self.objs == 1
    }
}

/// The whole table plus the size -> class lookup.
#[derive(Debug)]
pub(crate) struct ClassTable {
    /// Merged classes in increasing size. Invariant: sizes strictly increase
    /// and the last one is >= the pool's largest object.
    pub classes: Vec<ClassInfo>,
    /// `by16[ceil(len / 16)]` = index into `classes` of the smallest class
    /// holding `len` bytes. Every raw class size is a multiple of 16, so this
    /// is exact.
    by16: Vec<u16>,
    /// Number of raw (unmerged) classes.
    #[allow(dead_code)] // read by tests; kept for the stats table
    pub raw_count: usize,
}

/// Raw class sizes up to (and including the first one >= ) `max_object`.
fn raw_sizes(max_object: usize) -> Vec<usize> {
    let mut v = Vec::new();
    let mut s = MIN_CLASS;
    loop {
        v.push(s);
        if s >= max_object {
            return v;
        }
        s += if s < PAGE_SIZE {
            STEP
        } else {
            // s is in (2^k, 2^(k+1)]: step is 2^(k+1) / 256.
            (s + 1).next_power_of_two() / 256
        };
    }
}

/// The chain length minimising tail waste (see module comment).
pub(crate) fn pages_for(size: usize, max_pages: usize) -> usize {
    let least = size.div_ceil(PAGE_SIZE);
    (least..=max_pages * least)
        .min_by_key(|&n| ((n * PAGE_SIZE) % size, n))
        .expect("max_pages >= 1")
}

impl ClassTable {
    pub fn new(max_object: usize, max_pages: usize) -> ClassTable {
        let raw = raw_sizes(max_object.max(1));
        let mut merged: Vec<ClassInfo> = Vec::new();
        // Walk from the largest down so a run of equal shapes merges into the
        // largest size of the run (which fits all of them).
        for &size in raw.iter().rev() {
            let pages = pages_for(size, max_pages);
            let objs = pages * PAGE_SIZE / size;
            match merged.last_mut() {
                Some(last) if last.pages == pages && last.objs == objs => {
                    last.min_size = size;
                    last.merged += 1;
                }
                _ => merged.push(ClassInfo {
                    size,
                    min_size: size,
                    pages,
                    objs,
                    merged: 1,
                }),
            }
        }
        merged.reverse();
        // min_size so far is the smallest raw size merged in; what the class
        // really serves starts one byte above the previous class.
        for i in 0..merged.len() {
            merged[i].min_size = if i == 0 { 0 } else { merged[i - 1].size + 1 };
        }
        let top = merged.last().unwrap().size;
        let mut by16 = Vec::with_capacity(top / STEP + 1);
        let mut ci = 0;
        for k in 0..=top / STEP {
            while merged[ci].size < k * STEP {
                ci += 1;
            }
            by16.push(ci as u16);
        }
        ClassTable {
            classes: merged,
            by16,
            raw_count: raw.len(),
        }
    }

    /// Index of the class an object of `len` bytes goes to.
    /// Caller guarantees `len <= largest class size`.
    #[inline]
    pub fn class_of(&self, len: usize) -> usize {
        usize::from(self.by16[len.div_ceil(STEP)])
    }
}

/// The slab keeps at least this many ids before it is worth shrinking: a
/// small class's slab costs less than the work.
const SLAB_MIN_SHRINK: usize = 64;
/// A slab is shrunk once its ids exceed its live zspages by this percentage:
/// it grew to a peak (a tree before recompression) that is gone. After
/// shrinking it has one id per zspage, so the class must create half as
/// many zspages again before the next shrink: the renumbering is amortised
/// over them.
const SLAB_SLACK_PCT: usize = 150;

/// Is a slab of `len` ids holding `live` zspages worth renumbering and
/// shrinking?
pub(super) fn slab_worth_shrinking(len: usize, live: usize) -> bool {
    len > SLAB_MIN_SHRINK && len * 100 > live * SLAB_SLACK_PCT
}

/// Which list of a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ListId {
    Group(usize),
    Lru,
}

/// The zspages of a slab, seen through one kind of link.
struct SlabLinks<'a> {
    slab: &'a mut [Option<ZsPage>],
    lru: bool,
}

impl Links for SlabLinks<'_> {
    #[inline]
    fn link(&mut self, id: u32) -> &mut Link {
        let z = self.slab[id as usize].as_mut().expect("live zspage id");
        if self.lru {
            &mut z.llink
        } else {
            &mut z.glink
        }
    }
}

/// One size class and everything its lock guards.
pub(super) struct Class {
    pub info: ClassInfo,
    /// Zspages by id. Invariant: `slab[id]` is Some iff id is not in `free_zs`.
    pub slab: Vec<Option<ZsPage>>,
    /// Unused slab ids.
    pub free_zs: Vec<u32>,
    /// Listed zspages by fullness group.
    pub groups: [List; GROUPS],
    /// Listed zspages, most recently put at the head first (by `stamp`).
    pub lru: List,
    /// Handle ids free for reuse by this class. Invariant: their entries are Free.
    pub free_ids: Vec<u32>,
    /// Zspages in the slab (listed and isolated).
    pub zspages: usize,
    /// Objects in all zspages of the slab.
    pub inuse: usize,
    /// Isolated zspages and the objects in them.
    pub isolated: usize,
    pub isolated_inuse: usize,
}

impl Class {
    pub fn new(info: ClassInfo) -> Class {
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

    #[inline]
    pub fn z(&self, id: u32) -> &ZsPage {
        self.slab[id as usize].as_ref().expect("live zspage id")
    }

    #[inline]
    pub fn z_mut(&mut self, id: u32) -> &mut ZsPage {
        self.slab[id as usize].as_mut().expect("live zspage id")
    }

    #[inline]
    fn parts(&mut self, which: ListId) -> (&mut List, SlabLinks<'_>) {
        match which {
            ListId::Group(g) => (
                &mut self.groups[g],
                SlabLinks {
                    slab: &mut self.slab,
                    lru: false,
                },
            ),
            ListId::Lru => (
                &mut self.lru,
                SlabLinks {
                    slab: &mut self.slab,
                    lru: true,
                },
            ),
        }
    }

    #[inline]
    pub fn push_front(&mut self, which: ListId, id: u32) {
        let (list, mut nodes) = self.parts(which);
        list.push_front(&mut nodes, id);
    }

    #[inline]
    pub fn unlink(&mut self, which: ListId, id: u32) {
        let (list, mut nodes) = self.parts(which);
        list.unlink(&mut nodes, id);
    }

    /// Move a Listed zspage to the LRU head with clock value `stamp`. The
    /// callers, all under this class lock (the lock isolation takes): an
    /// allocation into it, second chance, putback after a failed write.
    #[inline]
    pub fn move_to_lru_head(&mut self, id: u32, stamp: u64) {
        debug_assert_eq!(
            self.z(id).state,
            ZsState::Listed,
            "an isolated zspage is on no list"
        );
        self.z_mut(id).stamp = stamp;
        if self.lru.head != id {
            self.unlink(ListId::Lru, id);
            self.push_front(ListId::Lru, id);
        }
    }

    /// Put a Listed zspage in the group its fill says.
    #[inline]
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
    #[inline]
    pub fn find_alloc(&self) -> Option<u32> {
        (GROUP_EMPTY..GROUP_FULL)
            .rev()
            .map(|g| self.groups[g].head)
            .find(|&h| h != NIL)
    }

    /// Add a zspage over `pages`, Listed, at the head of the empty group and
    /// of the LRU (stamped by the allocation that follows).
    pub fn new_zspage(&mut self, pages: Box<[Page]>) -> u32 {
        let z = ZsPage::new(&pages, self.info.objs);
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
    #[inline]
    pub fn take_slot(&mut self, zid: u32, hid: u32) -> usize {
        let z = self.z_mut(zid);
        let idx = z.free_head as usize;
        debug_assert!(z.free_head != SLOT_NIL, "take_slot on a full zspage");
        z.free_head = z.slots()[idx] & !SLOT_FREE;
        z.slots_mut()[idx] = hid;
        z.inuse += 1;
        let isolated = z.state == ZsState::Isolated;
        self.inuse += 1;
        if isolated {
            self.isolated_inuse += 1;
        }
        self.regroup(zid);
        idx
    }

    #[inline]
    pub fn release_slot(&mut self, zid: u32, idx: usize) {
        let z = self.z_mut(zid);
        debug_assert!(z.slots()[idx] & SLOT_FREE == 0, "double free of a slot");
        let head = z.free_head;
        z.slots_mut()[idx] = SLOT_FREE | head;
        z.free_head = idx as u32;
        z.inuse -= 1;
        let isolated = z.state == ZsState::Isolated;
        self.inuse -= 1;
        if isolated {
            self.isolated_inuse -= 1;
        }
        self.regroup(zid);
    }

    /// Take a Listed zspage out of its lists: writeback owns it now.
    pub fn isolate(&mut self, zid: u32) {
        debug_assert_eq!(self.z(zid).state, ZsState::Listed, "isolated twice");
        let group = self.z(zid).group;
        self.unlink(ListId::Group(group), zid);
        self.unlink(ListId::Lru, zid);
        let inuse = self.z(zid).inuse;
        self.z_mut(zid).state = ZsState::Isolated;
        self.isolated += 1;
        self.isolated_inuse += inuse;
    }

    /// Undo `isolate` for a zspage that still holds objects: back to its
    /// group and to the LRU head with clock value `stamp`.
    pub fn unisolate(&mut self, zid: u32, stamp: u64) {
        let inuse = self.z(zid).inuse;
        debug_assert!(inuse > 0, "an emptied isolated zspage is dropped instead");
        self.isolated -= 1;
        self.isolated_inuse -= inuse;
        let g = fullness(inuse, self.info.objs);
        let z = self.z_mut(zid);
        z.state = ZsState::Listed;
        z.group = g;
        z.stamp = stamp;
        self.push_front(ListId::Group(g), zid);
        self.push_front(ListId::Lru, zid);
    }

    /// Drop an empty zspage from the class; the caller frees the pages
    /// after releasing the class lock.
    pub fn remove_zspage(&mut self, zid: u32) -> Box<[Page]> {
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
        z.pages()
    }

    /// Give back the free-handle-id list's capacity beyond a quarter more
    /// than it holds: it grew to the class's peak of frees (a
    /// recompression pass frees most of a class's objects at once).
    pub fn trim_free_ids(&mut self) {
        crate::util::trim_slack(&mut self.free_ids);
    }

    /// Move Listed zspages from the top of the slab into its lowest free
    /// ids, then truncate and shrink the slab and its free-id list. Returns
    /// the new ids of the moved zspages: the caller (holding this class lock
    /// still) repoints the handles of their objects. Isolated zspages are
    /// not moved (writeback holds their ids), so the slab ends above the
    /// highest one.
    pub fn shrink_slab(&mut self) -> Vec<u32> {
        let mut moved = Vec::new();
        if !slab_worth_shrinking(self.slab.len(), self.zspages) {
            return moved;
        }
        self.free_zs.sort_unstable_by(|a, b| b.cmp(a));
        let mut from = self.slab.len();
        while let Some(&to) = self.free_zs.last() {
            // The highest live id above `to`.
            while from > to as usize + 1 && self.slab[from - 1].is_none() {
                from -= 1;
            }
            if from <= to as usize + 1 {
                break;
            }
            let id = (from - 1) as u32;
            if self.z(id).state == ZsState::Isolated {
                break;
            }
            self.free_zs.pop();
            self.renumber(id, to);
            moved.push(to);
            from -= 1;
        }
        let end = self
            .slab
            .iter()
            .rposition(Option::is_some)
            .map_or(0, |i| i + 1);
        self.slab.truncate(end);
        self.slab.shrink_to_fit();
        self.free_zs.retain(|&id| (id as usize) < end);
        self.free_zs.shrink_to_fit();
        moved
    }

    /// Move Listed zspage `from` to the free id `to` (already taken off
    /// `free_zs`), keeping its place in its fullness group and in the LRU.
    /// `from` is left a hole that is in no free list: `shrink_slab` only
    /// moves zspages down from the top, so every such hole is cut off.
    fn renumber(&mut self, from: u32, to: u32) {
        let z = self.slab[from as usize].take().expect("live zspage");
        debug_assert_eq!(z.state, ZsState::Listed);
        debug_assert!(self.slab[to as usize].is_none(), "renumber onto a live id");
        let (group, glink, llink) = (z.group, z.glink, z.llink);
        self.slab[to as usize] = Some(z);
        let (list, mut nodes) = self.parts(ListId::Group(group));
        list.renamed(&mut nodes, glink, to);
        let (list, mut nodes) = self.parts(ListId::Lru);
        list.renamed(&mut nodes, llink, to);
    }

    /// zsmalloc's zs_can_compact: would moving objects free a zspage?
    pub fn can_compact(&self) -> bool {
        let allocated = (self.zspages - self.isolated) * self.info.objs;
        let wasted = allocated - (self.inuse - self.isolated_inuse);
        self.info.objs > 1 && wasted >= self.info.objs
    }

    pub fn metadata_bytes(&self) -> usize {
        let per = std::mem::size_of::<Option<ZsPage>>()
            + self.info.pages * std::mem::size_of::<Page>()
            + self.info.objs * 4;
        self.slab.capacity() * std::mem::size_of::<Option<ZsPage>>()
            + self.zspages * (per - std::mem::size_of::<Option<ZsPage>>())
            + self.free_ids.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_shaped_table_for_4k() {
        let t = ClassTable::new(4096, 8);
        assert_eq!(t.raw_count, 255, "32..=4096 in 16 B steps");
        let c208 = t.classes[t.class_of(208)];
        assert_eq!(pages_for(208, 8), 3, "3 pages waste 16 B");
        assert_eq!((3 * 4096) % 208, 16);
        assert_eq!(c208.pages, 3);
        let c4096 = t.classes[t.class_of(4096)];
        assert_eq!((c4096.size, c4096.pages, c4096.objs), (4096, 1, 1));
        assert!(c4096.huge());
        // Powers of two take one page.
        for p in [32, 64, 128, 256, 512, 1024, 2048, 4096] {
            assert_eq!(pages_for(p, 8), 1, "{p}");
        }
        // Merging: counted classes add up to the raw ones, and no two
        // neighbours have the same shape.
        let total: usize = t.classes.iter().map(|c| c.merged).sum();
        assert_eq!(total, 255);
        assert!(t.classes.len() < 255, "some classes merge");
        for w in t.classes.windows(2) {
            assert!(w[0].size < w[1].size);
            assert!((w[0].pages, w[0].objs) != (w[1].pages, w[1].objs));
        }
        // Everything that fits one object per page merges into the 4096 class.
        let huge: Vec<_> = t.classes.iter().filter(|c| c.huge()).collect();
        assert_eq!(huge.len(), 1);
        assert!(huge[0].merged > 1, "huge sizes merged: {:?}", huge[0]);
        assert!(huge[0].min_size < 3700, "huge threshold {:?}", huge[0]);
    }

    #[test]
    fn lookup_picks_smallest_fitting_class() {
        for max in [4096, 16384, 131072] {
            let t = ClassTable::new(max, 8);
            assert!(t.classes.last().unwrap().size >= max);
            for len in 0..=max {
                let ci = t.class_of(len);
                let c = t.classes[ci];
                assert!(c.size >= len && c.min_size <= len, "{len} -> {c:?}");
                assert!(ci == 0 || t.classes[ci - 1].size < len);
            }
        }
    }

    #[test]
    fn large_objects_have_fine_classes_and_fit_zspages() {
        let t = ClassTable::new(131072, 8);
        for c in &t.classes {
            assert!(c.objs >= 1 && c.objs <= 4096, "{c:?}");
            assert!(c.pages * PAGE_SIZE >= c.size);
            // Tail waste stays a small share of the zspage.
            let waste = c.pages * PAGE_SIZE - c.objs * c.size;
            assert!(
                waste * 100 <= c.pages * PAGE_SIZE * 3,
                "{c:?} wastes {waste}"
            );
        }
        // Step above 4 KiB: 32 B up to 8 KiB, 512 B just below 128 KiB.
        let raw = raw_sizes(131072);
        assert!(raw.contains(&4128) && raw.contains(&8192) && raw.contains(&(131072 - 512)));
        assert_eq!(*raw.last().unwrap(), 131072);
    }
}
