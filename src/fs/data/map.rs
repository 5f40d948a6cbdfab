//! A file's block map: index -> stored block, a sorted Vec while small and
//! a B-tree beyond (see [`BlockMap`]). No locks: the owning inode's lock
//! guards it.

use crate::store::Block;
use std::collections::BTreeMap;

/// A file's block map: index -> block, absent (8 bytes, no allocation)
/// while the file has no blocks. Most files are small: one of up to
/// `SMALL_MAX` blocks keeps a sorted Vec (24 bytes a block, its slack
/// given back when the file is flushed, e.g. closed), where a
/// `BTreeMap` would allocate a 288-byte leaf for a single block and fills
/// its nodes to 6 of 11 when appended to. Past `SMALL_MAX` blocks the map
/// becomes a B-tree (inserts in the middle stay O(log n)) until the file
/// has no blocks again. Its methods are the BTreeMap ones of the same
/// name, so the code below reads as it would with a BTreeMap.
#[derive(Default)]
pub(super) struct BlockMap(Option<Box<Map>>);

/// Most blocks a file keeps in a sorted Vec: 24 KiB of entries, 4 MiB of
/// data at 4 KiB blocks. An insert in the middle moves at most that much,
/// about a microsecond, less than compressing the block it stores.
const SMALL_MAX: usize = 1024;

enum Map {
    /// Ascending indexes, at most `SMALL_MAX`.
    Small(Vec<(u64, Block)>),
    Tree(BTreeMap<u64, Block>),
}

fn pair((k, b): &(u64, Block)) -> (&u64, &Block) {
    (k, b)
}

/// An iterator over either kind of map.
enum Iter<A, B> {
    Small(A),
    Tree(B),
}

impl<'a, A, B> Iterator for Iter<A, B>
where
    A: Iterator<Item = (&'a u64, &'a Block)>,
    B: Iterator<Item = (&'a u64, &'a Block)>,
{
    type Item = (&'a u64, &'a Block);
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Small(a) => a.next(),
            Iter::Tree(b) => b.next(),
        }
    }
}

impl BlockMap {
    pub(super) fn get(&self, idx: &u64) -> Option<&Block> {
        match self.0.as_deref()? {
            Map::Small(v) => v.binary_search_by_key(idx, |e| e.0).ok().map(|i| &v[i].1),
            Map::Tree(t) => t.get(idx),
        }
    }
    pub(super) fn contains_key(&self, idx: &u64) -> bool {
        self.get(idx).is_some()
    }
    pub(super) fn len(&self) -> usize {
        match self.0.as_deref() {
            None => 0,
            Some(Map::Small(v)) => v.len(),
            Some(Map::Tree(t)) => t.len(),
        }
    }
    pub(super) fn range<R: std::ops::RangeBounds<u64>>(
        &self,
        r: R,
    ) -> impl Iterator<Item = (&u64, &Block)> + '_ {
        use std::ops::Bound;
        let (lo, hi) = (r.start_bound().cloned(), r.end_bound().cloned());
        match self.0.as_deref() {
            None => Iter::Small([].iter().map(pair)),
            Some(Map::Small(v)) => {
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
                let part = &v[from..to.max(from)];
                Iter::Small(part.iter().map(pair))
            }
            Some(Map::Tree(t)) => Iter::Tree(t.range((lo, hi))),
        }
    }
    pub(super) fn iter(&self) -> impl Iterator<Item = (&u64, &Block)> + '_ {
        self.range(..)
    }
    pub(super) fn insert(&mut self, idx: u64, b: Block) -> Option<Block> {
        let m = self
            .0
            .get_or_insert_with(|| Box::new(Map::Small(Vec::new())));
        match &mut **m {
            Map::Small(v) => match v.binary_search_by_key(&idx, |e| e.0) {
                Ok(i) => Some(std::mem::replace(&mut v[i].1, b)),
                Err(i) if v.len() < SMALL_MAX => {
                    // Double from one entry: Vec's own first step is four
                    // (96 bytes), and most files have one or two blocks.
                    if v.len() == v.capacity() {
                        v.reserve_exact(v.len().max(1));
                    }
                    v.insert(i, (idx, b));
                    None
                }
                Err(_) => {
                    let mut t: BTreeMap<u64, Block> = std::mem::take(v).into_iter().collect();
                    t.insert(idx, b);
                    **m = Map::Tree(t);
                    None
                }
            },
            Map::Tree(t) => t.insert(idx, b),
        }
    }
    /// Give back a small map's spare capacity.
    pub(super) fn shrink(&mut self) {
        if let Some(Map::Small(v)) = self.0.as_deref_mut() {
            v.shrink_to_fit();
        }
    }
    pub(super) fn remove(&mut self, idx: &u64) -> Option<Block> {
        let m = self.0.as_deref_mut()?;
        let (b, empty) = match m {
            Map::Small(v) => {
                let i = v.binary_search_by_key(idx, |e| e.0).ok()?;
                let b = v.remove(i).1;
                if v.len() <= v.capacity() / 4 {
                    v.shrink_to(v.len() * 2);
                }
                (b, v.is_empty())
            }
            Map::Tree(t) => (t.remove(idx)?, t.is_empty()),
        };
        if empty {
            self.0 = None;
        }
        Some(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The block map answers as a BTreeMap does, on both sides of
    /// `SMALL_MAX` and back to empty.
    #[test]
    fn block_map_behaves_as_a_btreemap() {
        let mut m = BlockMap::default();
        let mut model = BTreeMap::new();
        let (mut saw_tree, mut emptied) = (false, false);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let byte = |b: &Block| match b {
            Block::Same(v) => *v,
            _ => unreachable!(),
        };
        for step in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Grow for a while, then shrink to nothing, twice.
            let growing = (step / 5000) % 2 == 0;
            let idx = x % (SMALL_MAX as u64 * 3 / 2);
            if growing {
                let v = (x >> 32) as u8;
                let old = m.insert(idx, Block::Same(v)).map(|b| byte(&b));
                assert_eq!(old, model.insert(idx, v));
            } else {
                // Half the removals hit the lowest block, so it empties.
                let k = match model.keys().next() {
                    Some(&k) if x % 2 == 0 => k,
                    _ => idx,
                };
                assert_eq!(m.remove(&k).map(|b| byte(&b)), model.remove(&k));
            }
            assert_eq!(m.len(), model.len());
            assert_eq!(m.get(&idx).map(byte), model.get(&idx).copied());
            let (a, b) = (idx / 2, idx + 7);
            let got: Vec<(u64, u8)> = m.range(a..b).map(|(k, v)| (*k, byte(v))).collect();
            let want: Vec<(u64, u8)> = model.range(a..b).map(|(k, v)| (*k, *v)).collect();
            assert_eq!(got, want);
            let next = m.range(idx..).next().map(|(k, _)| *k);
            assert_eq!(next, model.range(idx..).next().map(|(k, _)| *k));
            if model.is_empty() {
                assert!(m.0.is_none(), "an empty map holds no memory");
                emptied = true;
            }
            saw_tree |= matches!(m.0.as_deref(), Some(Map::Tree(_)));
            if step % 97 == 0 {
                m.shrink();
            }
        }
        assert!(saw_tree && emptied, "both kinds of map and the way back");
        assert!(m.iter().count() == model.len());
    }
}
