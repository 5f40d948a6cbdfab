//! Content deduplication: identical blocks share one pool object.
//!
//! # Design
//!
//! The index maps a block's content hash to the pool objects holding that
//! content, and counts how many stored blocks name each object. It has two
//! parts, both keyed by data the store already has at hand:
//!
//! * **Shards** (64, by the low bits of the key): open-addressed tables of
//!   `u64` slots, linear probing, backward-shift deletion (no tombstones).
//!   A slot is `key << 32 | handle` (`handle` = `Handle::to_raw`, below
//!   2^31 + 1, never 0), 0 is empty. The slot itself says where its home is,
//!   so a table can be grown, shrunk or shifted without asking anyone else.
//! * **The object's word** (`meta.rs`, one per pool handle id, shared with
//!   recompression's flags): its key and its refs. `free` only has a handle;
//!   the key finds the shard and slot of its object without rehashing the
//!   data (which could be on disk). `refs == 0` means it is not indexed.
//!
//! The key is 31 bits of xxh3-64. It only picks candidates: a candidate is
//! shared only after its content compared equal byte for byte (the store's
//! verify callback decompresses it, or compares raw bytes), so a hash
//! collision costs a wasted verify, never wrong data.
//!
//! Cost: 8 bytes per slot at a load between 0.2 and 0.8 (grow at 0.8 to
//! 0.4, shrink below 0.2 to 0.4): 10 to 20 bytes per indexed object, about
//! 13 at the typical load, beside the word every object has anyway.
//! [`Dedup::index_bytes`] reports the real figure.
//!
//! A written-back (non-resident) candidate is treated as a miss by the
//! store: reading it would be a disk read under a shard lock. The new copy
//! is indexed beside it; lookups skip the old one until it is freed.
//!
//! # Locks and lock order
//!
//! 1. One shard mutex (never two at once, except in `debug_check`, which
//!    takes them in increasing index).
//! 2. Pool locks (class locks, `disk_rw`), taken by the verify read under a
//!    shard lock. The pool never calls the store, so no cycle.
//!
//! Compression and `Pool::alloc` (which may write back for seconds at the
//! limit) run with no shard lock held; `Pool::free` of the last reference
//! too, after the object left the index.
//!
//! # Invariants
//!
//! * An id is in its shard's table exactly when its word's `refs > 0`, and
//!   then the word's key equals the slot's key (both change under the shard
//!   lock; the key never changes while `refs > 0`).
//! * `refs` = the number of live `Block`s naming the handle. Only the last
//!   `release` removes the slot and lets the store free the object, so a
//!   lookup (under the same shard lock) never takes a reference to a freed
//!   or reused handle.
//! * Every slot is reachable from its home without crossing an empty slot.
//!
//! * A reference is taken by `lookup` (a block with equal content) or by
//!   `share` (a copy of a block, `copy_file_range`): both under the shard
//!   lock, and `share` only for a handle its caller already holds a
//!   reference to, so it never revives a freed object.
//!
//! The word is read without the shard lock only by `release` and `share`, to
//! learn the key of a handle the caller holds a reference to (so `refs > 0`
//! and the key is stable), or to see `refs == 0` for an object the index
//! never had.

use super::meta::{Meta, KEY_BITS, MAX_REFS};
use crate::pool::{Handle, Pool};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

const SHARD_BITS: u32 = 6;
const SHARDS: usize = 1 << SHARD_BITS;
/// Smallest table; an empty shard has none at all.
const MIN_CAP: usize = 64;

/// The 31 bits of a block's xxh3 hash that the index keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key(u32);

impl Key {
    pub(crate) fn of(data: &[u8]) -> Key {
        let h = xxhash_rust::xxh3::xxh3_64(data);
        Key((h ^ (h >> 32)) as u32 & ((1 << KEY_BITS) - 1))
    }

    fn shard(self) -> usize {
        self.0 as usize & (SHARDS - 1)
    }

    /// Home slot in a table of `mask + 1` slots (bits above the shard's).
    fn home(self, mask: usize) -> usize {
        (self.0 >> SHARD_BITS) as usize & mask
    }
}

fn slot_of(key: Key, h: Handle) -> u64 {
    u64::from(key.0) << 32 | h.to_raw()
}

fn slot_key(slot: u64) -> Key {
    Key((slot >> 32) as u32)
}

fn slot_handle(slot: u64) -> Handle {
    Handle::from_raw(slot & 0xffff_ffff).expect("occupied slot names a handle")
}

/// What dropping one reference did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Release {
    /// Other blocks still name the object; the pool keeps it.
    Shared,
    /// That was the last reference; the object left the index and the
    /// caller must free it in the pool.
    Last,
    /// The object was never indexed; the caller frees it.
    NotIndexed,
}

/// One shard's table.
#[derive(Default)]
struct Shard {
    /// Open-addressed slots (`key << 32 | handle`, 0 empty); length 0 or a
    /// power of two >= MIN_CAP; every slot reachable from its home without
    /// an empty slot in between.
    slots: Box<[u64]>,
    /// Occupied slots; below 4/5 of `slots.len()`.
    len: usize,
}

impl Shard {
    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// The first slot in `key`'s probe run for which `pick` says yes.
    fn find(&self, key: Key, mut pick: impl FnMut(u64) -> bool) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.mask();
        let mut i = key.home(mask);
        loop {
            let s = self.slots[i];
            if s == 0 {
                return None;
            }
            if slot_key(s) == key && pick(s) {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// Insert; returns the change in table bytes.
    fn insert(&mut self, slot: u64) -> isize {
        let mut delta = 0;
        if (self.len + 1) * 5 > self.slots.len() * 4 {
            delta = self.resize((self.slots.len() * 2).max(MIN_CAP));
        }
        self.place(slot);
        self.len += 1;
        delta
    }

    fn place(&mut self, slot: u64) {
        let mask = self.mask();
        let mut i = slot_key(slot).home(mask);
        while self.slots[i] != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = slot;
    }

    /// Remove the slot at `i`; returns the change in table bytes.
    fn remove_at(&mut self, i: usize) -> isize {
        let mask = self.mask();
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let s = self.slots[j];
            if s == 0 {
                break;
            }
            // `s` may fill the hole when the hole lies between its home and
            // where it sits; otherwise moving it would put it before home.
            let home = slot_key(s).home(mask);
            if j.wrapping_sub(home) & mask >= j.wrapping_sub(hole) & mask {
                self.slots[hole] = s;
                hole = j;
            }
        }
        self.slots[hole] = 0;
        self.len -= 1;
        if self.len == 0 {
            self.resize(0)
        } else if self.slots.len() > MIN_CAP && self.len * 5 < self.slots.len() {
            self.resize(self.slots.len() / 2)
        } else {
            0
        }
    }

    fn resize(&mut self, cap: usize) -> isize {
        let old = std::mem::replace(&mut self.slots, vec![0u64; cap].into_boxed_slice());
        for &s in old.iter().filter(|&&s| s != 0) {
            self.place(s);
        }
        (cap as isize - old.len() as isize) * 8
    }
}

/// A shard on its own cache line, so request threads locking neighbouring
/// shards do not bounce one line between cores.
#[repr(align(64))]
struct Padded(Mutex<Shard>);

/// The dedup index of one store.
pub(crate) struct Dedup {
    /// SHARDS tables; a key's shard is `Key::shard`.
    shards: Box<[Padded]>,
    /// Bytes of all shard tables' slots (changes under the shard locks).
    table_bytes: AtomicU64,
}

impl Dedup {
    pub(crate) fn new() -> Dedup {
        Dedup {
            shards: (0..SHARDS).map(|_| Padded(Mutex::default())).collect(),
            table_bytes: AtomicU64::new(0),
        }
    }

    fn shard(&self, key: Key) -> &Mutex<Shard> {
        &self.shards[key.shard()].0
    }

    fn account(&self, delta: isize) {
        if delta >= 0 {
            self.table_bytes.fetch_add(delta as u64, Ordering::Relaxed);
        } else {
            self.table_bytes
                .fetch_sub(delta.unsigned_abs() as u64, Ordering::Relaxed);
        }
    }

    /// Find an indexed object for which `verify` (run under the shard lock,
    /// so the candidate cannot be freed meanwhile) says the content is the
    /// block's, and take a reference to it.
    pub(crate) fn lookup(
        &self,
        meta: &Meta,
        key: Key,
        mut verify: impl FnMut(Handle) -> bool,
    ) -> Option<Handle> {
        let shard = self.shard(key).lock();
        let i = shard.find(key, |s| {
            let h = slot_handle(s);
            let (_, refs) = meta.indexed(h).expect("a slot's object is indexed");
            refs < MAX_REFS && verify(h)
        })?;
        let h = slot_handle(shard.slots[i]);
        // Under the shard lock: no other reference count changes meanwhile.
        meta.add_ref(h);
        Some(h)
    }

    /// Index a new object holding content of `key`, with one reference.
    pub(crate) fn insert(&self, meta: &Meta, key: Key, h: Handle) {
        let mut shard = self.shard(key).lock();
        meta.index(h, key.0);
        let delta = shard.insert(slot_of(key, h));
        self.account(delta);
    }

    /// Take one more reference to `h`, which the caller holds a reference
    /// to (so it is indexed exactly when its refs are above 0, and cannot
    /// leave the index meanwhile). False when it is not indexed or its count
    /// is saturated: the caller then stores a copy instead. Under the shard
    /// lock, so the count checked is the count raised.
    pub(crate) fn share(&self, meta: &Meta, h: Handle) -> bool {
        let Some((key, _)) = meta.indexed(h) else {
            return false;
        };
        let _shard = self.shard(Key(key)).lock();
        match meta.indexed(h) {
            Some((_, refs)) if refs < MAX_REFS => {
                meta.add_ref(h);
                true
            }
            _ => false,
        }
    }

    /// Drop one reference to `h`.
    pub(crate) fn release(&self, meta: &Meta, h: Handle) -> Release {
        // The caller holds a reference: if indexed, refs > 0 and the key is
        // stable until we drop it; if not indexed, nobody can index it.
        let Some((key, _)) = meta.indexed(h) else {
            return Release::NotIndexed;
        };
        let key = Key(key);
        let mut shard = self.shard(key).lock();
        if meta.drop_ref(h) > 0 {
            return Release::Shared;
        }
        let target = slot_of(key, h);
        let i = shard
            .find(key, |s| s == target)
            .expect("indexed handle has a slot");
        let delta = shard.remove_at(i);
        // Under the lock, so debug_check's byte count is exact.
        self.account(delta);
        Release::Last
    }

    /// Live blocks naming `h` (0 if not indexed).
    pub(crate) fn refs(&self, meta: &Meta, h: Handle) -> u64 {
        meta.indexed(h).map_or(0, |(_, refs)| refs)
    }

    /// Memory the index holds: shard tables and the fixed part (the words
    /// are the store's, in `recomp_meta_bytes`).
    pub(crate) fn index_bytes(&self) -> u64 {
        self.table_bytes.load(Ordering::Relaxed) + (SHARDS * std::mem::size_of::<Padded>()) as u64
    }

    /// Check the invariants with every shard locked (so safe while puts,
    /// frees, compaction and writeback run); returns (indexed objects, sum
    /// of refs). Panics on a violation. Every indexed handle must be live.
    pub(crate) fn debug_check(&self, meta: &Meta, pool: &Pool) -> (u64, u64) {
        let guards: Vec<_> = self.shards.iter().map(|s| s.0.lock()).collect();
        let mut objects = 0u64;
        let mut table_bytes = 0u64;
        for (si, g) in guards.iter().enumerate() {
            table_bytes += g.slots.len() as u64 * 8;
            let mask = g.mask();
            let mut n = 0;
            for (i, &s) in g.slots.iter().enumerate().filter(|(_, &s)| s != 0) {
                n += 1;
                let key = slot_key(s);
                assert_eq!(key.shard(), si, "slot in the wrong shard");
                let h = slot_handle(s);
                let (word_key, _) = meta.indexed(h).expect("indexed handle with no reference");
                assert_eq!(word_key, key.0, "the word's key differs from the slot's");
                assert!(pool.object_len(h) > 0, "indexed object is empty");
                // Reachable from home: no empty slot in between.
                let mut j = key.home(mask);
                while j != i {
                    assert_ne!(g.slots[j], 0, "slot unreachable from its home");
                    j = (j + 1) & mask;
                }
            }
            assert_eq!(n, g.len, "shard {si} length");
            assert!(g.slots.is_empty() || g.len * 5 <= g.slots.len() * 4);
            objects += n as u64;
        }
        let mut with_refs = 0u64;
        let mut refs = 0u64;
        for (_, r) in meta.all_indexed() {
            with_refs += 1;
            refs += r;
        }
        assert_eq!(with_refs, objects, "meta entries with refs vs slots");
        assert_eq!(table_bytes, self.table_bytes.load(Ordering::Relaxed));
        drop(guards);
        (objects, refs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(raw: u64) -> Handle {
        Handle::from_raw(raw).unwrap()
    }

    /// Keys that all land in one shard and one home slot, so probing,
    /// wrap-around and backward shifts are exercised.
    #[test]
    fn colliding_keys_insert_find_remove() {
        let mut s = Shard::default();
        let key = Key(0x40); // shard 0, home 1
        for raw in 1..=40u64 {
            s.insert(slot_of(key, h(raw)));
        }
        let other = Key(0x3F << SHARD_BITS); // shard 0, home 63 (near the end)
        for raw in 100..110u64 {
            s.insert(slot_of(other, h(raw)));
        }
        for raw in (1..=40u64).step_by(3) {
            let i = s.find(key, |x| x == slot_of(key, h(raw))).unwrap();
            s.remove_at(i);
        }
        for raw in 1..=40u64 {
            let found = s.find(key, |x| x == slot_of(key, h(raw))).is_some();
            assert_eq!(found, (raw - 1) % 3 != 0, "handle {raw}");
        }
        for raw in 100..110u64 {
            assert!(s.find(other, |x| x == slot_of(other, h(raw))).is_some());
        }
        assert_eq!(s.len, 40 - 14 + 10);
    }

    #[test]
    fn tables_grow_and_shrink() {
        let mut s = Shard::default();
        let keys: Vec<Key> = (0..1000u32)
            .map(|i| Key(i.wrapping_mul(2654435761) << SHARD_BITS))
            .collect();
        let mut bytes = 0isize;
        for (i, &k) in keys.iter().enumerate() {
            bytes += s.insert(slot_of(k, h(i as u64 + 1)));
        }
        assert_eq!(bytes as usize, s.slots.len() * 8);
        assert!(s.slots.len() >= 1250 && s.slots.len() <= 2048);
        for (i, &k) in keys.iter().enumerate() {
            let t = slot_of(k, h(i as u64 + 1));
            let at = s.find(k, |x| x == t).unwrap();
            bytes += s.remove_at(at);
        }
        assert_eq!((s.len, s.slots.len(), bytes), (0, 0, 0));
    }
}
