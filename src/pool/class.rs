//! The size-class table: which class an object of n bytes goes to, and how
//! many 4 KiB pages a zspage of that class chains.
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

use super::pages::PAGE_SIZE;

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
