//! One word per pool object: what the store knows of it beyond the pool.
//!
//! A `util::table::AtomicTable` keyed by handle id, like the pool's own
//! handle table, holds one `AtomicU64` per id:
//!
//! ```text
//!  bit 63      ACCESSED  an LZ4/raw object was written or read since the
//!                        last recompression pass looked at it
//!  bit 62      SKIP      zstd did not save enough on it: never retried
//!                        while the object lives (zram's ZRAM_INCOMPRESSIBLE)
//!  bit 61      UNIT      the object is a zstd unit (`recompress.rs`)
//!  bits 60..30 key       LZ4/raw objects in the dedup index: their key
//!                        (`dedup.rs`: 31 bits of the content hash)
//!  bits 29..0  refs      LZ4/raw objects: blocks naming it while indexed
//!                        (0: not indexed); units: blocks naming it
//! ```
//!
//! Dedup and recompression each had a table of their own before: two words
//! per id, 2 MiB each on the bench's real tree, where one word holds both.
//!
//! # Who changes what, and the orderings
//!
//! A word is zero while its id is free: `died` stores 0 before the pool may
//! hand the id out again, and `born`/`unit_born` are the first stores of a
//! new object, before its handle is published (plain stores are enough
//! there: nobody else knows the id).
//!
//! While the object lives, three writers share the word, so every change is
//! one atomic read-modify-write of its own bits:
//! - the flags, by any reader (`touch`) and the recompression pass, with no
//!   lock. They are hints and publish nothing: `Relaxed`.
//! - an indexed object's key and refs, under its dedup shard lock. `AcqRel`
//!   (and `Acquire` loads): the lock-free first look in `Dedup::release` and
//!   `Dedup::share` reads the key to find the shard; the thread that drops
//!   the last reference sees every earlier holder's use.
//! - a unit's refs, with no lock, following `Arc`: increments `Relaxed` (the
//!   caller already holds a reference, through its block), the decrement
//!   `AcqRel`, so the thread that frees the unit sees every other holder's
//!   last use of it.
//!
//! A unit's word has no flags and is never in the index, so the last two
//! never meet on one word.

use crate::pool::Handle;
use crate::util::table::AtomicTable;
use std::sync::atomic::{AtomicU64, Ordering};

const ACCESSED: u64 = 1 << 63;
const SKIP: u64 = 1 << 62;
const UNIT: u64 = 1 << 61;
const KEY_SHIFT: u32 = 30;
/// Bits of a dedup key kept in the word (and in the index's slots).
pub(super) const KEY_BITS: u32 = 31;
const KEY_MASK: u64 = ((1 << KEY_BITS) - 1) << KEY_SHIFT;
/// The most blocks that may name one object: a count at this ceiling takes
/// no more references, and the caller stores a copy instead.
pub(super) const MAX_REFS: u64 = (1 << KEY_SHIFT) - 1;

/// The per-object words of one store.
pub(super) struct Meta {
    table: AtomicTable,
}

impl Meta {
    pub(super) fn new() -> Meta {
        Meta {
            table: AtomicTable::new(),
        }
    }

    fn word(&self, h: Handle) -> Option<&AtomicU64> {
        self.table.get(h.id())
    }

    fn live_word(&self, h: Handle) -> &AtomicU64 {
        self.word(h).expect("a live object has its word")
    }

    // ---- every object ----

    /// A new LZ4/raw object: counts as just accessed, not indexed, nothing
    /// refused yet. Before its handle is published.
    pub(super) fn born(&self, h: Handle) {
        self.table
            .get_or_alloc(h.id())
            .0
            .store(ACCESSED, Ordering::Relaxed);
    }

    /// The object is gone: its id starts clean when reused. After its last
    /// reference, before `Pool::free` lets the id be handed out again.
    pub(super) fn died(&self, h: Handle) {
        if let Some(w) = self.word(h) {
            w.store(0, Ordering::Relaxed);
        }
    }

    /// Memory of the table (`recomp_meta_bytes`).
    pub(super) fn bytes(&self) -> u64 {
        self.table.bytes()
    }

    // ---- recompression flags (LZ4/raw objects) ----

    /// A read or a new reference: set ACCESSED if clear (no store when set,
    /// so hot reads leave the cache line shared).
    #[inline]
    pub(super) fn touch(&self, h: Handle) {
        if let Some(w) = self.word(h) {
            if w.load(Ordering::Relaxed) & ACCESSED == 0 {
                w.fetch_or(ACCESSED, Ordering::Relaxed);
            }
        }
    }

    /// Clear ACCESSED; whether it was set.
    pub(super) fn take_accessed(&self, h: Handle) -> bool {
        self.word(h)
            .is_some_and(|w| w.fetch_and(!ACCESSED, Ordering::Relaxed) & ACCESSED != 0)
    }

    pub(super) fn skipped(&self, h: Handle) -> bool {
        self.word(h)
            .is_some_and(|w| w.load(Ordering::Relaxed) & SKIP != 0)
    }

    pub(super) fn mark_skip(&self, h: Handle) {
        self.live_word(h).fetch_or(SKIP, Ordering::Relaxed);
    }

    // ---- units ----

    /// A new unit named by `n` blocks. Before its handle is published.
    pub(super) fn unit_born(&self, h: Handle, n: u64) {
        debug_assert!((1..=MAX_REFS).contains(&n));
        self.table
            .get_or_alloc(h.id())
            .0
            .store(UNIT | n, Ordering::Relaxed);
    }

    /// One more block names unit `h` (the caller holds one already); false,
    /// and nothing taken, when the count is at its ceiling.
    pub(super) fn unit_ref(&self, h: Handle) -> bool {
        let w = self.live_word(h);
        let taken = w.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            (v & MAX_REFS < MAX_REFS).then_some(v + 1)
        });
        debug_assert!(taken.is_err() || taken.unwrap() & UNIT != 0, "not a unit");
        taken.is_ok()
    }

    /// Drop one block's reference to unit `h`; true when it was the last.
    pub(super) fn unit_unref(&self, h: Handle) -> bool {
        let old = self.live_word(h).fetch_sub(1, Ordering::AcqRel);
        debug_assert!(old & UNIT != 0 && old & MAX_REFS != 0, "unit refs {old:#x}");
        old & MAX_REFS == 1
    }

    /// Blocks naming unit `h`.
    pub(super) fn unit_refs(&self, h: Handle) -> u64 {
        self.word(h)
            .map_or(0, |w| w.load(Ordering::Relaxed) & MAX_REFS)
    }

    // ---- the dedup index's part (LZ4/raw objects, under the shard lock
    //      except `indexed`) ----

    /// `(key, refs)` of an indexed object, None when it is not indexed.
    /// Without the shard lock this is only stable for an object the caller
    /// holds a reference to (see `dedup.rs`).
    pub(super) fn indexed(&self, h: Handle) -> Option<(u32, u64)> {
        indexed_in(self.word(h)?.load(Ordering::Acquire))
    }

    /// Index object `h` (born, not indexed) under `key` with one reference.
    pub(super) fn index(&self, h: Handle, key: u32) {
        debug_assert!(u64::from(key) < 1 << KEY_BITS);
        let old = self
            .live_word(h)
            .fetch_or(u64::from(key) << KEY_SHIFT | 1, Ordering::AcqRel);
        debug_assert_eq!(old & (UNIT | KEY_MASK | MAX_REFS), 0, "already indexed");
    }

    /// One more reference to indexed object `h` (its refs below MAX_REFS).
    pub(super) fn add_ref(&self, h: Handle) {
        let old = self.live_word(h).fetch_add(1, Ordering::AcqRel);
        debug_assert!(old & MAX_REFS != 0 && old & MAX_REFS < MAX_REFS);
    }

    /// Drop one reference to indexed object `h`; the references left. The
    /// last one clears the key too, in the same step: the object is then
    /// no longer indexed.
    pub(super) fn drop_ref(&self, h: Handle) -> u64 {
        let old = self
            .live_word(h)
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                debug_assert!(v & MAX_REFS != 0, "dedup refs underflow");
                Some(if v & MAX_REFS == 1 {
                    (v - 1) & !KEY_MASK
                } else {
                    v - 1
                })
            })
            .expect("the closure always updates");
        (old & MAX_REFS) - 1
    }

    /// `(key, refs)` of every indexed object (debug checks, with every
    /// shard locked).
    pub(super) fn all_indexed(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.table.blocks().flat_map(|(_, b)| {
            b.iter()
                .filter_map(|w| indexed_in(w.load(Ordering::Relaxed)))
        })
    }
}

/// `(key, refs)` if word `v` is an object in the dedup index.
fn indexed_in(v: u64) -> Option<(u32, u64)> {
    let refs = v & MAX_REFS;
    (v & UNIT == 0 && refs != 0).then_some((((v & KEY_MASK) >> KEY_SHIFT) as u32, refs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(id: u64) -> Handle {
        Handle::from_raw(id + 1).unwrap()
    }

    #[test]
    fn flags_and_dedup_share_a_word_without_losing_either() {
        let m = Meta::new();
        m.born(h(7));
        m.index(h(7), (1 << KEY_BITS) - 1);
        assert!(m.take_accessed(h(7)));
        m.touch(h(7));
        m.mark_skip(h(7));
        m.add_ref(h(7));
        assert_eq!(m.indexed(h(7)), Some(((1 << KEY_BITS) - 1, 2)));
        assert!(m.skipped(h(7)));
        assert!(m.take_accessed(h(7)));
        assert_eq!(m.drop_ref(h(7)), 1);
        assert_eq!(m.drop_ref(h(7)), 0);
        assert_eq!(m.indexed(h(7)), None);
        assert!(m.skipped(h(7)), "flags outlive the index entry");
        m.died(h(7));
        assert!(!m.skipped(h(7)));
        assert_eq!(m.all_indexed().count(), 0);
    }

    /// Readers set and a pass takes the flags, with no lock, while dedup
    /// counts references on the same word: neither loses the other's
    /// change (a load-then-store in either would).
    #[test]
    fn flag_changes_and_ref_counts_race_without_loss() {
        let m = Meta::new();
        m.born(h(1));
        m.index(h(1), 12345);
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    m.touch(h(1));
                    m.take_accessed(h(1));
                    n += 1;
                    if n == 1000 {
                        // Set once, mid-race: a counter's store must keep it.
                        m.mark_skip(h(1));
                    }
                }
            });
            // Until the mark is in, and then as long again.
            let mut rounds = 0u64;
            let mut marked_at = None;
            while marked_at.is_none_or(|at| rounds < 2 * at + 100_000) {
                m.add_ref(h(1));
                assert_eq!(m.drop_ref(h(1)), 1);
                rounds += 1;
                if marked_at.is_none() && m.skipped(h(1)) {
                    marked_at = Some(rounds);
                }
            }
            stop.store(true, Ordering::Relaxed);
        });
        assert_eq!(m.indexed(h(1)), Some((12345, 1)));
        assert!(m.skipped(h(1)));
    }

    #[test]
    fn units_count_to_a_ceiling_and_are_never_indexed() {
        let m = Meta::new();
        m.unit_born(h(3), MAX_REFS - 1);
        assert_eq!(m.indexed(h(3)), None);
        assert!(m.unit_ref(h(3)));
        assert!(!m.unit_ref(h(3)), "at the ceiling");
        assert_eq!(m.unit_refs(h(3)), MAX_REFS);
        assert!(!m.unit_unref(h(3)));
        m.unit_born(h(4), 1);
        assert!(m.unit_unref(h(4)));
        assert_eq!(m.all_indexed().count(), 0);
    }
}
