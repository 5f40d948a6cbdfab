//! A file's block map: index -> stored block, behind one 8-byte pointer
//! (see [`BlockMap`]). No locks: the owning inode's lock guards it.
//!
//! Most files are written from the start and have no holes, so the usual
//! form is *dense*: one allocation holding a 12-byte [`Head`] and then a
//! slot (`Option<Block>`, 8 bytes) for every index up to the highest
//! present one. A map whose slots would be mostly holes (a sparse file, a
//! block at index 10^9) is *sparse*: a [`Sparse`] box holding a sorted Vec
//! of (index, block) while small and a B-tree beyond. [`fits_dense`] and
//! [`keeps_dense`] choose between them, a dense map turning sparse as soon
//! as it is wasteful and a sparse one turning dense only once enough
//! changes have paid for the copy (`Sparse::credit`). An empty map has no
//! allocation, and neither has a map of one block at index 0, the map of
//! every file of up to one block (most files of a source tree: 37,329 of
//! the bench's 52,928): that block is kept in the map's own word.
//!
//! The unsafe code is in two places. [`Thin`] owns the one allocation,
//! whose first field, a u32, says which form it is (`SPARSE`, or the dense
//! `Head::cap`), and lends it out as a [`Form`]. [`Word`] is the map's
//! 8 bytes, a pointer or a block, told apart by its first byte. Everything
//! else is safe code on slices, the Vec and the B-tree.

use crate::store::Block;
use std::alloc::{self, Layout};
use std::collections::{btree_map, BTreeMap};
use std::mem::ManuallyDrop;
use std::ops::{Bound, Range, RangeBounds};
use std::ptr::NonNull;

/// A file's block map: index -> block, with the BTreeMap methods the code
/// uses, of the same names and meaning (its iterators yield the index by
/// value, as the dense form stores none). 8 bytes; no allocation while the
/// file has no blocks, or only block 0. A dense map costs 12 bytes plus 8
/// a slot in one malloc chunk (a 5-block file: 52 bytes, a 64-byte chunk), its growth
/// doubling and its slack given back when the file is flushed (e.g.
/// closed). A sparse map costs a 40-byte box plus 16 bytes a block in a
/// sorted Vec, up to `SMALL_MAX` blocks, or about 28 in a B-tree beyond.
pub(super) struct BlockMap(Word);

/// The map's 8 bytes: no blocks (a null pointer), an allocation (a
/// pointer), or block 0 alone (the block). The first byte tells them
/// apart: a `Block`'s is its tag, always odd (`store::Block` is `repr(u8)`
/// with odd discriminants for this), and a pointer's is even (allocations
/// here are 4-aligned, and null is 0). Only the accessors below read it.
#[repr(C)]
union Word {
    many: ManuallyDrop<Option<Thin>>,
    one: Block,
}

impl Default for BlockMap {
    fn default() -> BlockMap {
        BlockMap(Word {
            many: ManuallyDrop::new(None),
        })
    }
}

impl Drop for BlockMap {
    fn drop(&mut self) {
        self.drop_many();
    }
}

impl BlockMap {
    fn is_one(&self) -> bool {
        // SAFETY: the first byte is initialised in both forms: a Block's
        // tag (repr(u8) puts it first), a pointer's low byte.
        unsafe { *std::ptr::addr_of!(self.0).cast::<u8>() & 1 == 1 }
    }

    /// Block 0, when the map holds only it, in its word.
    fn one(&self) -> Option<&Block> {
        if !self.is_one() {
            // Not even a reference to `one` then: its bytes are a pointer.
            return None;
        }
        // SAFETY: an odd first byte means `one` was the field last written.
        Some(unsafe { &self.0.one })
    }

    /// The allocation, if the map has one.
    fn thin(&self) -> Option<&Thin> {
        if self.is_one() {
            return None;
        }
        // SAFETY: an even first byte means `many` was the field last written.
        unsafe { self.0.many.as_ref() }
    }

    fn thin_mut(&mut self) -> Option<&mut Thin> {
        if self.is_one() {
            return None;
        }
        // SAFETY: as in `thin`.
        unsafe { (*self.0.many).as_mut() }
    }

    /// Drop the allocation, if any (the word is then stale until set).
    fn drop_many(&mut self) {
        if !self.is_one() {
            // SAFETY: `many` is the live field; the caller overwrites the
            // word before it is read again.
            unsafe { ManuallyDrop::drop(&mut self.0.many) };
        }
    }

    fn set_many(&mut self, t: Option<Thin>) {
        self.drop_many();
        self.0 = Word {
            many: ManuallyDrop::new(t),
        };
    }

    fn set_one(&mut self, b: Block) {
        self.drop_many();
        self.0 = Word { one: b };
    }
}

/// Most blocks a sparse map keeps in a sorted Vec: 16 KiB of entries. An
/// insert in the middle moves at most that much, about a microsecond, less
/// than compressing the block it stores.
const SMALL_MAX: usize = 1024;

/// Empty slots a dense map may have beyond one a block: about what the
/// sparse form's extra allocation (a 40-byte box, a 48-byte chunk) costs
/// in 8-byte slots, so a small file with a hole near its start stays
/// dense.
const DENSE_SLACK: u64 = 4;

/// `Sparse::tag`: a value `Head::cap` never takes.
const SPARSE: u32 = u32::MAX;

/// Most slots a dense map has: its counts are u32s (a 32 GiB map, for a
/// file of a billion blocks or more), and `SPARSE` is taken.
const DENSE_MAX: u64 = SPARSE as u64 - 1;

/// Whether `present` blocks whose highest index is `span - 1` are worth
/// making dense: a slot costs 8 bytes and a sparse entry 16, so up to twice
/// as many slots as blocks (and the slack for the sparse box) dense is the
/// smaller form.
fn fits_dense(span: u64, present: u64) -> bool {
    span <= DENSE_MAX && span <= present.saturating_mul(2).saturating_add(DENSE_SLACK)
}

/// Whether a dense map stays dense: up to twice what `fits_dense` lets in,
/// so a map near that bound does not convert at every insert and remove.
fn keeps_dense(span: u64, present: u64) -> bool {
    span <= DENSE_MAX && span <= present.saturating_mul(4).saturating_add(2 * DENSE_SLACK)
}

/// The start of a dense map's allocation; its slots follow.
#[repr(C)]
struct Head {
    /// The slots allocated after this header, all initialised (`None`
    /// from `len` on); never `SPARSE`.
    cap: u32,
    /// One past the highest present index: the slots in use.
    len: u32,
    /// The blocks present, so `len()` is O(1).
    present: u32,
}

/// A sparse map's allocation.
#[repr(C)]
struct Sparse {
    /// `SPARSE`, where a dense map has `Head::cap`: the one field both
    /// forms have, and first, says which form an allocation is.
    tag: u32,
    /// Changes made since the map became sparse, saturating. Turning dense
    /// copies every entry, so it waits until as many changes have been
    /// made: a far block written and removed again and again, each time
    /// turning a large dense map sparse, cannot make it copy itself back
    /// every time too.
    credit: u32,
    map: Map,
}

/// The sparse form's entries.
enum Map {
    /// Ascending indexes, at most `SMALL_MAX`.
    Small(Vec<(u64, Block)>),
    Tree(BTreeMap<u64, Block>),
}

/// The owner of a non-empty map's one allocation: a thin pointer to its
/// first field, a u32 (`Head::cap` or `Sparse::tag`) that says which form
/// it is.
struct Thin(NonNull<u32>);

// SAFETY: a Thin owns its allocation as a Box does, and what that holds
// (blocks, a Vec or B-tree of them) is Send and Sync; it is only changed
// through `&mut Thin`.
unsafe impl Send for Thin {}
// SAFETY: as for Send.
unsafe impl Sync for Thin {}

/// A map's allocation, borrowed.
enum Form<'a> {
    /// The slots in use (`Head::len` of them) and the blocks present.
    Dense {
        slots: &'a [Option<Block>],
        present: u32,
    },
    Sparse(&'a Sparse),
}

/// A map's allocation, borrowed to change it.
enum FormMut<'a> {
    /// The header and all `Head::cap` slots.
    Dense {
        head: &'a mut Head,
        slots: &'a mut [Option<Block>],
    },
    Sparse(&'a mut Sparse),
}

/// Where a dense allocation's slots start: after the header, aligned. The
/// same for every capacity, so reaching a slot (every `get`, on the read
/// path) reads no header and computes no layout.
const SLOTS_AT: usize =
    std::mem::size_of::<Head>().next_multiple_of(std::mem::align_of::<Option<Block>>());

/// A dense allocation of `cap` slots (which start at `SLOTS_AT`).
fn dense_layout(cap: u32) -> Layout {
    let slots = Layout::array::<Option<Block>>(cap as usize).expect("at most 32 GiB");
    let (all, at) = Layout::new::<Head>().extend(slots).expect("at most 32 GiB");
    debug_assert_eq!(at, SLOTS_AT);
    all.pad_to_align()
}

impl Thin {
    /// A dense map of `cap` empty slots.
    fn dense(cap: u32) -> Thin {
        debug_assert!(cap >= 1 && u64::from(cap) <= DENSE_MAX);
        let layout = dense_layout(cap);
        // SAFETY: the layout's size is not zero: it holds a Head.
        let Some(p) = NonNull::new(unsafe { alloc::alloc(layout) }) else {
            alloc::handle_alloc_error(layout)
        };
        let head = Head {
            cap,
            len: 0,
            present: 0,
        };
        // SAFETY: a fresh allocation of `layout`, which has room for a Head
        // at its start, aligned.
        unsafe { p.cast::<Head>().write(head) };
        let mut t = Thin(p.cast());
        t.init_slots(0..cap);
        t
    }

    /// A dense map of `present` blocks, `entries` (indexes below `span`).
    fn dense_from(entries: impl Iterator<Item = (u64, Block)>, span: u64, present: usize) -> Thin {
        let mut t = Thin::dense(span as u32);
        let FormMut::Dense { head, slots } = t.form_mut() else {
            unreachable!("made dense")
        };
        for (i, b) in entries {
            slots[i as usize] = Some(b);
        }
        (head.len, head.present) = (span as u32, present as u32);
        t
    }

    /// A sparse map of `map`.
    fn sparse(map: Map) -> Thin {
        let s = Box::new(Sparse {
            tag: SPARSE,
            credit: 0,
            map,
        });
        Thin(NonNull::from(Box::leak(s)).cast())
    }

    fn is_sparse(&self) -> bool {
        // SAFETY: both forms' allocations start with an initialised u32
        // (`Head` and `Sparse` are repr(C)), alive as long as self.
        unsafe { self.0.read() == SPARSE }
    }

    /// The dense form's header.
    fn head(&self) -> &Head {
        debug_assert!(!self.is_sparse());
        // SAFETY: a dense allocation starts with an initialised Head.
        unsafe { self.0.cast::<Head>().as_ref() }
    }

    /// The dense form's first slot.
    fn slots(&self) -> NonNull<Option<Block>> {
        debug_assert!(!self.is_sparse());
        // SAFETY: a dense allocation (dense_layout) has its slots at
        // SLOTS_AT, within it even when it holds one slot.
        unsafe { self.0.cast::<u8>().add(SLOTS_AT).cast() }
    }

    /// Write `None` to the dense slots `r` (within `Head::cap`).
    fn init_slots(&mut self, r: Range<u32>) {
        let first = self.slots();
        for i in r {
            // SAFETY: slot i < cap is within the allocation and aligned;
            // Option<Block> is Copy, so overwriting drops nothing.
            unsafe { first.add(i as usize).write(None) };
        }
    }

    fn form(&self) -> Form<'_> {
        if self.is_sparse() {
            // SAFETY: a map tagged SPARSE was made by Thin::sparse from a
            // Box<Sparse>.
            return Form::Sparse(unsafe { self.0.cast::<Sparse>().as_ref() });
        }
        let head = self.head();
        // SAFETY: a dense allocation holds `cap` initialised slots and
        // len <= cap; `&self` keeps them from changing while borrowed.
        let slots = unsafe { std::slice::from_raw_parts(self.slots().as_ptr(), head.len as usize) };
        Form::Dense {
            slots,
            present: head.present,
        }
    }

    fn form_mut(&mut self) -> FormMut<'_> {
        if self.is_sparse() {
            // SAFETY: as in `form`; `&mut self` makes this the only borrow.
            return FormMut::Sparse(unsafe { self.0.cast::<Sparse>().as_mut() });
        }
        let cap = self.head().cap;
        // SAFETY: the header and the `cap` initialised slots after it do
        // not overlap, and `&mut self` makes these the only borrows.
        unsafe {
            let slots = std::slice::from_raw_parts_mut(self.slots().as_ptr(), cap as usize);
            FormMut::Dense {
                head: self.0.cast::<Head>().as_mut(),
                slots,
            }
        }
    }

    /// Reallocate a dense map to `cap` slots, at least the ones in use.
    fn set_cap(&mut self, cap: u32) {
        let (old_cap, len) = (self.head().cap, self.head().len);
        debug_assert!(cap >= len.max(1) && u64::from(cap) <= DENSE_MAX);
        let old = dense_layout(old_cap);
        let new = dense_layout(cap);
        // SAFETY: the allocation was made with `old` (dense_layout of its
        // cap, as every allocation and realloc here is); `new` has the same
        // alignment and a non-zero size. Slots cut off are past `len`, so
        // None, and Copy: nothing to drop.
        let p = unsafe { alloc::realloc(self.0.as_ptr().cast(), old, new.size()) };
        let Some(p) = NonNull::new(p) else {
            alloc::handle_alloc_error(new)
        };
        self.0 = p.cast();
        // SAFETY: realloc kept the header and the first min(old, new) slots.
        unsafe { self.0.cast::<Head>().as_mut().cap = cap };
        if cap > old_cap {
            self.init_slots(old_cap..cap);
        }
    }
}

impl Drop for Thin {
    fn drop(&mut self) {
        if self.is_sparse() {
            // SAFETY: made by Thin::sparse from a Box<Sparse>; dropped once.
            drop(unsafe { Box::from_raw(self.0.cast::<Sparse>().as_ptr()) });
        } else {
            let layout = dense_layout(self.head().cap);
            // SAFETY: allocated with this layout; slots are Copy.
            unsafe { alloc::dealloc(self.0.as_ptr().cast(), layout) };
        }
    }
}

/// The present entries among dense `slots`, ascending.
fn present_entries(slots: &[Option<Block>]) -> impl Iterator<Item = (u64, Block)> + '_ {
    (0u64..).zip(slots).filter_map(|(i, s)| s.map(|b| (i, b)))
}

/// The indexes `lo..hi` covers among `len` dense slots, empty if none.
fn slot_range(lo: Bound<u64>, hi: Bound<u64>, len: usize) -> Range<usize> {
    let len = len as u64;
    let from = match lo {
        Bound::Included(s) => s,
        Bound::Excluded(s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let to = match hi {
        // Saturating is exact here: len is below u64::MAX.
        Bound::Included(e) => e.saturating_add(1),
        Bound::Excluded(e) => e,
        Bound::Unbounded => len,
    };
    let (from, to) = (from.min(len), to.min(len));
    from as usize..to.max(from) as usize
}

/// An iterator over either form of map.
enum Iter<'a> {
    /// The slots left and the index of the first of them.
    Dense {
        slots: std::slice::Iter<'a, Option<Block>>,
        idx: u64,
    },
    Small(std::slice::Iter<'a, (u64, Block)>),
    Tree(btree_map::Range<'a, u64, Block>),
    /// Block 0 of a one-block map, until taken.
    One(Option<&'a Block>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (u64, &'a Block);
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Dense { slots, idx } => loop {
                let s = slots.next()?;
                *idx += 1;
                if let Some(b) = s {
                    return Some((*idx - 1, b));
                }
            },
            Iter::Small(v) => v.next().map(|(k, b)| (*k, b)),
            Iter::Tree(t) => t.next().map(|(k, b)| (*k, b)),
            Iter::One(b) => b.take().map(|b| (0, b)),
        }
    }
}

impl Map {
    /// A map of `n` ascending `entries`: a Vec of exactly that many if they
    /// fit one.
    fn from_sorted(entries: impl Iterator<Item = (u64, Block)>, n: usize) -> Map {
        if n <= SMALL_MAX {
            let mut v = Vec::with_capacity(n);
            v.extend(entries);
            Map::Small(v)
        } else {
            Map::Tree(entries.collect())
        }
    }

    fn get(&self, idx: u64) -> Option<&Block> {
        match self {
            Map::Small(v) => v.binary_search_by_key(&idx, |e| e.0).ok().map(|i| &v[i].1),
            Map::Tree(t) => t.get(&idx),
        }
    }

    fn len(&self) -> usize {
        match self {
            Map::Small(v) => v.len(),
            Map::Tree(t) => t.len(),
        }
    }

    /// The highest index.
    fn last(&self) -> Option<u64> {
        match self {
            Map::Small(v) => v.last().map(|e| e.0),
            Map::Tree(t) => t.last_key_value().map(|(k, _)| *k),
        }
    }

    fn range(&self, lo: Bound<u64>, hi: Bound<u64>) -> Iter<'_> {
        match self {
            Map::Small(v) => {
                let from = match lo {
                    Bound::Included(s) => v.partition_point(|e| e.0 < s),
                    Bound::Excluded(s) => v.partition_point(|e| e.0 <= s),
                    Bound::Unbounded => 0,
                };
                let to = match hi {
                    Bound::Included(e) => v.partition_point(|x| x.0 <= e),
                    Bound::Excluded(e) => v.partition_point(|x| x.0 < e),
                    Bound::Unbounded => v.len(),
                };
                Iter::Small(v[from..to.max(from)].iter())
            }
            Map::Tree(t) => Iter::Tree(t.range((lo, hi))),
        }
    }

    fn insert(&mut self, idx: u64, b: Block) -> Option<Block> {
        match self {
            Map::Small(v) => match v.binary_search_by_key(&idx, |e| e.0) {
                Ok(i) => Some(std::mem::replace(&mut v[i].1, b)),
                Err(i) if v.len() < SMALL_MAX => {
                    // Double from one entry: Vec's own first step is four
                    // (64 bytes), and most sparse files have few blocks.
                    if v.len() == v.capacity() {
                        v.reserve_exact(v.len().max(1));
                    }
                    v.insert(i, (idx, b));
                    None
                }
                Err(_) => {
                    let mut t: BTreeMap<u64, Block> = std::mem::take(v).into_iter().collect();
                    t.insert(idx, b);
                    *self = Map::Tree(t);
                    None
                }
            },
            Map::Tree(t) => t.insert(idx, b),
        }
    }

    fn remove(&mut self, idx: u64) -> Option<Block> {
        match self {
            Map::Small(v) => {
                let i = v.binary_search_by_key(&idx, |e| e.0).ok()?;
                let b = v.remove(i).1;
                if v.len() <= v.capacity() / 4 {
                    v.shrink_to(v.len() * 2);
                }
                Some(b)
            }
            Map::Tree(t) => t.remove(&idx),
        }
    }

    /// Give back spare capacity: a Vec's slack, and a B-tree that has
    /// shrunk to half of `SMALL_MAX` (half, so that a map near it does not
    /// convert at every flush) becomes a Vec.
    fn shrink(&mut self) {
        match self {
            Map::Small(v) => v.shrink_to_fit(),
            Map::Tree(t) if t.len() <= SMALL_MAX / 2 => {
                let v = std::mem::take(t).into_iter().collect();
                *self = Map::Small(v);
            }
            Map::Tree(_) => {}
        }
    }
}

impl BlockMap {
    pub(super) fn get(&self, idx: &u64) -> Option<&Block> {
        if let Some(b) = self.one() {
            return (*idx == 0).then_some(b);
        }
        match self.thin()?.form() {
            Form::Dense { slots, .. } => slots.get(usize::try_from(*idx).ok()?)?.as_ref(),
            Form::Sparse(s) => s.map.get(*idx),
        }
    }

    pub(super) fn contains_key(&self, idx: &u64) -> bool {
        self.get(idx).is_some()
    }

    pub(super) fn len(&self) -> usize {
        if self.is_one() {
            return 1;
        }
        match self.thin().map(Thin::form) {
            None => 0,
            Some(Form::Dense { present, .. }) => present as usize,
            Some(Form::Sparse(s)) => s.map.len(),
        }
    }

    /// The present blocks with indexes in `r`, ascending.
    pub(super) fn range<R: RangeBounds<u64>>(
        &self,
        r: R,
    ) -> impl Iterator<Item = (u64, &Block)> + '_ {
        let (lo, hi) = (r.start_bound().cloned(), r.end_bound().cloned());
        if let Some(b) = self.one() {
            return Iter::One((lo, hi).contains(&0).then_some(b));
        }
        match self.thin().map(Thin::form) {
            None => Iter::Small([].iter()),
            Some(Form::Dense { slots, .. }) => {
                let r = slot_range(lo, hi, slots.len());
                Iter::Dense {
                    idx: r.start as u64,
                    slots: slots[r].iter(),
                }
            }
            Some(Form::Sparse(s)) => s.map.range(lo, hi),
        }
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (u64, &Block)> + '_ {
        self.range(..)
    }

    pub(super) fn insert(&mut self, idx: u64, b: Block) -> Option<Block> {
        let span = idx.saturating_add(1);
        if let Some(&old) = self.one() {
            if idx == 0 {
                self.set_one(b);
                return Some(old);
            }
            // A second block: block 0 moves into an allocation, and the
            // insert goes on as for any map.
            self.set_many(Some(Thin::dense_from([(0, old)].into_iter(), 1, 1)));
        }
        let Some(thin) = self.thin_mut() else {
            if idx == 0 {
                self.set_one(b);
            } else if fits_dense(span, 1) {
                self.set_many(Some(Thin::dense_from([(idx, b)].into_iter(), span, 1)));
            } else {
                self.set_many(Some(Thin::sparse(Map::Small(vec![(idx, b)]))));
            }
            return None;
        };
        let (cap, present) = match thin.form_mut() {
            FormMut::Sparse(s) => {
                let old = s.map.insert(idx, b);
                s.credit = s.credit.saturating_add(1);
                self.densify_if_paid();
                return old;
            }
            FormMut::Dense { head, slots } => {
                if idx < u64::from(head.len) {
                    let old = slots[idx as usize].replace(b);
                    head.present += u32::from(old.is_none());
                    return old;
                }
                (head.cap, head.present)
            }
        };
        // A new highest block: grow the span, or turn sparse if that would
        // be mostly holes.
        if !keeps_dense(span, u64::from(present) + 1) {
            let Form::Dense { slots, .. } = thin.form() else {
                unreachable!("dense above")
            };
            let entries = present_entries(slots).chain([(idx, b)]);
            *thin = Thin::sparse(Map::from_sorted(entries, present as usize + 1));
            return None;
        }
        if span > u64::from(cap) {
            // Doubling, so appending block by block copies each slot about
            // once; `shrink` trims the rest.
            thin.set_cap((u64::from(cap) * 2).clamp(span, DENSE_MAX) as u32);
        }
        let FormMut::Dense { head, slots } = thin.form_mut() else {
            unreachable!("dense above")
        };
        slots[idx as usize] = Some(b);
        head.len = span as u32;
        head.present += 1;
        None
    }

    /// Give back spare capacity, make a sparse map dense if it now fits
    /// (and has paid for it), and keep a lone block 0 in the word.
    pub(super) fn shrink(&mut self) {
        self.densify_if_paid();
        if self.thin().is_some() && self.len() == 1 {
            if let Some(&b) = self.get(&0) {
                self.set_one(b);
                return;
            }
        }
        let Some(thin) = self.thin_mut() else {
            return;
        };
        match thin.form_mut() {
            FormMut::Dense { head, .. } => {
                let len = head.len;
                if head.cap > len {
                    thin.set_cap(len);
                }
            }
            FormMut::Sparse(s) => s.map.shrink(),
        }
    }

    pub(super) fn remove(&mut self, idx: &u64) -> Option<Block> {
        if let Some(&b) = self.one() {
            if *idx != 0 {
                return None;
            }
            self.set_many(None);
            return Some(b);
        }
        let thin = self.thin_mut()?;
        let (b, len, cap, present) = match thin.form_mut() {
            FormMut::Sparse(s) => {
                let b = s.map.remove(*idx)?;
                s.credit = s.credit.saturating_add(1);
                if s.map.len() == 0 {
                    self.set_many(None);
                } else {
                    self.densify_if_paid();
                }
                return Some(b);
            }
            FormMut::Dense { head, slots } => {
                if *idx >= u64::from(head.len) {
                    return None;
                }
                let i = *idx as usize;
                let b = slots[i].take()?;
                head.present -= 1;
                if i + 1 == head.len as usize {
                    // The span ends after the highest block left: a scan
                    // of the holes below, at most 3 a block (keeps_dense).
                    head.len = slots[..i]
                        .iter()
                        .rposition(Option::is_some)
                        .map_or(0, |j| j + 1) as u32;
                }
                (b, head.len, head.cap, head.present)
            }
        };
        if present == 0 {
            self.set_many(None);
        } else if !keeps_dense(u64::from(len), u64::from(present)) {
            let Form::Dense { slots, .. } = thin.form() else {
                unreachable!("dense above")
            };
            *thin = Thin::sparse(Map::from_sorted(present_entries(slots), present as usize));
        } else if len <= cap / 4 {
            // Truncated to a quarter: keep room to double, give back the
            // rest now rather than at the next flush.
            thin.set_cap(len * 2);
        }
        Some(b)
    }

    /// Make a sparse map dense if that is the smaller form and it has had
    /// as many changes as the copy costs (`Sparse::credit`).
    fn densify_if_paid(&mut self) {
        let Some(thin) = self.thin_mut() else {
            return;
        };
        let Form::Sparse(s) = thin.form() else {
            return;
        };
        let n = s.map.len();
        if u64::from(s.credit) < n as u64 {
            return;
        }
        let Some(span) = s.map.last().map(|last| last + 1) else {
            return;
        };
        if fits_dense(span, n as u64) {
            let entries = s.map.range(Bound::Unbounded, Bound::Unbounded);
            *thin = Thin::dense_from(entries.map(|(k, b)| (k, *b)), span, n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Highest block index of a file at 4 KiB blocks.
    const HUGE: u64 = crate::fs::data::MAX_FILE_SIZE / 4096;

    fn form(m: &BlockMap) -> &'static str {
        if m.one().is_some() {
            return "one";
        }
        match m.thin().map(Thin::form) {
            None => "empty",
            Some(Form::Dense { .. }) => "dense",
            Some(Form::Sparse(Sparse {
                map: Map::Small(_), ..
            })) => "small",
            Some(Form::Sparse(_)) => "tree",
        }
    }

    fn val(b: &Block) -> u8 {
        match b {
            Block::Same(v) => *v,
            _ => unreachable!("tests store Same blocks"),
        }
    }

    /// Everything `m` says agrees with `model`, and each form keeps its
    /// invariants.
    fn check(m: &BlockMap, model: &BTreeMap<u64, u8>) {
        assert_eq!(m.len(), model.len());
        let got: Vec<(u64, u8)> = m.iter().map(|(k, b)| (k, val(b))).collect();
        let want: Vec<(u64, u8)> = model.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(got, want);
        match m.thin().map(|t| (t, t.form())) {
            None if m.one().is_some() => {
                assert_eq!(model.keys().collect::<Vec<_>>(), [&0], "one block, at 0");
            }
            None => assert!(model.is_empty(), "only an empty map has no memory"),
            Some((t, Form::Dense { slots, present })) => {
                assert!(present > 0 && present as usize == model.len());
                assert_eq!(slots.len() as u64, model.keys().last().unwrap() + 1);
                assert!(t.head().cap >= t.head().len);
            }
            Some((_, Form::Sparse(s))) => {
                assert!(s.map.len() > 0);
                if let Map::Small(v) = &s.map {
                    assert!(v.len() <= SMALL_MAX);
                    assert!(v.windows(2).all(|w| w[0].0 < w[1].0));
                }
            }
        }
        if model.is_empty() {
            assert_eq!(form(m), "empty", "an empty map holds no memory");
        }
    }

    /// The point lookups and ranges around `idx` agree with `model`.
    fn check_at(m: &BlockMap, model: &BTreeMap<u64, u8>, idx: u64) {
        assert_eq!(m.get(&idx).map(val), model.get(&idx).copied());
        assert_eq!(m.contains_key(&idx), model.contains_key(&idx));
        let (a, b) = (idx / 2, idx.saturating_add(7));
        let got: Vec<(u64, u8)> = m.range(a..b).map(|(k, v)| (k, val(v))).collect();
        let want: Vec<(u64, u8)> = model.range(a..b).map(|(k, v)| (*k, *v)).collect();
        assert_eq!(got, want);
        let got: Vec<u64> = m.range(a..=idx).map(|(k, _)| k).collect();
        let want: Vec<u64> = model.range(a..=idx).map(|(k, _)| *k).collect();
        assert_eq!(got, want);
        let next = m.range(idx..).next().map(|(k, _)| k);
        assert_eq!(next, model.range(idx..).next().map(|(k, _)| *k));
        let after = (Bound::Excluded(idx), Bound::Unbounded);
        let next = m.range(after).next().map(|(k, _)| k);
        assert_eq!(next, model.range(after).next().map(|(k, _)| *k));
    }

    /// The block map answers as a BTreeMap does in every form (dense, a
    /// sparse Vec, a sparse B-tree), through the conversions each way and
    /// back to empty, with indexes up to the largest file's.
    #[test]
    fn block_map_behaves_as_a_btreemap() {
        let mut m = BlockMap::default();
        let mut model = BTreeMap::new();
        let mut seen = std::collections::BTreeSet::new();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut appended = 0u64;
        for step in 0..60_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Phases of 3000 steps: appends, a dense-ish random fill, a
            // wide sparse one, huge indexes; each followed by removals
            // until empty.
            let phase = step / 3000;
            let idx = match phase % 8 {
                0 => appended,
                2 => x % 1200,
                4 => x % (SMALL_MAX as u64 * 8),
                6 => x % HUGE,
                _ => x % 3000,
            };
            let was = form(&m);
            if phase % 2 == 0 {
                appended += 1;
                let v = (x >> 32) as u8;
                let old = m.insert(idx, Block::Same(v)).map(|b| val(&b));
                assert_eq!(old, model.insert(idx, v));
            } else {
                appended = 0;
                // Removals by turns from the top, the bottom and anywhere.
                let k = match x % 3 {
                    0 => model.keys().next_back().copied().unwrap_or(idx),
                    1 => model.keys().next().copied().unwrap_or(idx),
                    _ => idx,
                };
                assert_eq!(m.remove(&k).map(|b| val(&b)), model.remove(&k));
            }
            assert_eq!(m.len(), model.len());
            check_at(&m, &model, idx);
            if step % 61 == 0 || model.len() < 8 {
                check(&m, &model);
            }
            if step % 97 == 0 {
                m.shrink();
            }
            seen.insert(form(&m));
            if was != form(&m) {
                seen.insert(match (was, form(&m)) {
                    ("dense", "small" | "tree") => "dense to sparse",
                    ("small" | "tree", "dense") => "sparse to dense",
                    ("tree", "small") => "tree to small",
                    _ => "other",
                });
            }
        }
        check(&m, &model);
        for what in [
            "empty",
            "one",
            "dense",
            "small",
            "tree",
            "dense to sparse",
            "sparse to dense",
            "tree to small",
        ] {
            assert!(seen.contains(what), "never saw {what}: {seen:?}");
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64, u8),
        Remove(u64),
        /// Insert blocks `from..from + n`.
        Fill(u64, u64, u8),
        /// Remove blocks `from..from + n` as `remove_blocks` does.
        Punch(u64, u64),
        Shrink,
    }

    fn index() -> impl Strategy<Value = u64> {
        prop_oneof![
            4 => 0..16u64,
            4 => 0..300u64,
            2 => 0..3000u64,
            1 => 0..=HUGE,
            1 => (HUGE - 8)..=HUGE,
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (index(), any::<u8>()).prop_map(|(i, v)| Op::Insert(i, v)),
            3 => index().prop_map(Op::Remove),
            1 => (index(), 0..1500u64, any::<u8>()).prop_map(|(i, n, v)| Op::Fill(i, n, v)),
            1 => (index(), 0..1500u64).prop_map(|(i, n)| Op::Punch(i, n)),
            1 => Just(Op::Shrink),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Any sequence of changes leaves the map answering as a BTreeMap.
        #[test]
        fn block_map_matches_a_btreemap_model(ops in prop::collection::vec(op(), 1..60)) {
            let mut m = BlockMap::default();
            let mut model = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Insert(i, v) => {
                        let old = m.insert(i, Block::Same(v)).map(|b| val(&b));
                        prop_assert_eq!(old, model.insert(i, v));
                        check_at(&m, &model, i);
                    }
                    Op::Remove(i) => {
                        prop_assert_eq!(m.remove(&i).map(|b| val(&b)), model.remove(&i));
                        check_at(&m, &model, i);
                    }
                    Op::Fill(from, n, v) => {
                        for i in from..from.saturating_add(n).min(HUGE) {
                            let old = m.insert(i, Block::Same(v)).map(|b| val(&b));
                            prop_assert_eq!(old, model.insert(i, v));
                        }
                    }
                    Op::Punch(from, n) => {
                        let to = from.saturating_add(n);
                        let doomed: Vec<u64> = m.range(from..to).map(|(k, _)| k).collect();
                        for k in doomed.iter().rev() {
                            prop_assert_eq!(m.remove(k).map(|b| val(&b)), model.remove(k));
                        }
                        prop_assert!(model.range(from..to).next().is_none());
                    }
                    Op::Shrink => m.shrink(),
                }
                check(&m, &model);
            }
        }
    }

    /// One far block written and removed again and again turns a large
    /// dense map sparse, but it turns dense again only once as many changes
    /// as it has blocks have paid for the copy: a conversion per 500
    /// rounds, not one per change.
    #[test]
    fn conversions_do_not_thrash() {
        let mut m = BlockMap::default();
        for i in 0..1000 {
            m.insert(i, Block::Same(1));
        }
        assert_eq!(form(&m), "dense");
        let (mut conversions, mut was) = (0, form(&m));
        let mut seen_dense_again = None;
        for round in 0..2000 {
            m.insert(1_000_000_000, Block::Same(2));
            assert_eq!(form(&m), "small", "round {round}");
            conversions += usize::from(was != form(&m));
            m.remove(&1_000_000_000);
            m.shrink();
            conversions += usize::from("small" != form(&m));
            was = form(&m);
            if was == "dense" && seen_dense_again.is_none() {
                seen_dense_again = Some(round);
            }
        }
        // 4000 changes, each pair of conversions paid for by 1000.
        assert!(conversions <= 8, "{conversions} conversions");
        assert!(
            seen_dense_again.is_some_and(|r| r >= 400),
            "{seen_dense_again:?}"
        );
        // Near the bound, a block in and out does not convert.
        let mut m = BlockMap::default();
        for i in (0..400).step_by(2) {
            m.insert(i, Block::Same(1));
        }
        assert_eq!(form(&m), "dense");
        for _ in 0..100 {
            m.remove(&200);
            assert_eq!(form(&m), "dense");
            m.insert(200, Block::Same(1));
        }
    }

    /// The sizes the design is for: an 8-byte map, 8-byte slots, and a
    /// 5-block file in one 52-byte allocation once flushed.
    #[test]
    fn a_small_file_costs_one_small_allocation() {
        use std::mem::size_of;
        assert_eq!(size_of::<BlockMap>(), 8);
        assert_eq!(size_of::<Option<Block>>(), 8);
        assert!(size_of::<Sparse>() <= 40, "{}", size_of::<Sparse>());
        let mut m = BlockMap::default();
        for i in 0..5 {
            m.insert(i, Block::Same(0));
        }
        assert_eq!(m.thin().unwrap().head().cap, 8, "doubling");
        m.shrink();
        let head = m.thin().unwrap().head();
        assert_eq!((head.cap, head.len, head.present), (5, 5, 5));
        assert_eq!(dense_layout(5).size(), 52);
        for i in 0..5 {
            m.remove(&i);
        }
        assert_eq!(form(&m), "empty", "an emptied map holds no memory");
        // One block far out is sparse, and back to nothing when removed.
        m.insert(HUGE, Block::Same(0));
        assert_eq!(form(&m), "small");
        assert_eq!(m.range(HUGE..=HUGE).count(), 1);
        m.remove(&HUGE);
        assert_eq!(form(&m), "empty", "an emptied map holds no memory");
        // A one-block file needs no allocation at all; a second block
        // moves it into one, and shrinking back to block 0 leaves it.
        m.insert(0, Block::Same(7));
        assert_eq!(form(&m), "one");
        assert_eq!(m.insert(0, Block::Same(8)), Some(Block::Same(7)));
        m.insert(1, Block::Same(9));
        assert_eq!(form(&m), "dense");
        m.remove(&1);
        m.shrink();
        assert_eq!(form(&m), "one");
        assert_eq!(
            m.iter().map(|(k, b)| (k, *b)).collect::<Vec<_>>(),
            [(0, Block::Same(8))]
        );
        assert_eq!(m.range(1..).count(), 0);
        assert_eq!(m.remove(&0), Some(Block::Same(8)));
        assert_eq!(form(&m), "empty");
    }
}
