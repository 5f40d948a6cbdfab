//! Recompression of idle blocks into zstd units: the store's half (issue 13).
//!
//! The fs layer walks files and picks runs of consecutive blocks; this
//! module decides which blocks may join a unit, builds the unit, and serves
//! reads and frees of blocks that live in one. The unit format is
//! `unit.rs`'s.
//!
//! # Per-object state
//!
//! Each object's word (`meta.rs`) carries recompression's two flags and,
//! for a unit, the count of blocks naming it. Reads only *set* ACCESSED
//! (one load, and an atomic or only when it was clear): no list is touched
//! on a read, the lesson of the zsmalloc LRU crash. A pass *takes* the bit
//! (clears it and looks at what it was): a block whose bit was already
//! clear has been neither written nor read for a whole pass interval, which
//! is `recompress_after=`; that is zram's `idle` marking, done by the pass
//! itself. An object zstd did not shrink enough is marked SKIP and never
//! tried again while it lives.
//!
//! # Reads of units
//!
//! A read of one block decompresses its whole unit (up to 64 KiB). A
//! sequential read would do that once per block, so each thread keeps the
//! last unit it decompressed. The unit an entry names is immutable while
//! it lives; a handle can name a new unit only after the old one was freed,
//! and every unit free bumps `unit_frees`, which the cached copy is checked
//! against (with the store's identity: one thread serves several mounts in
//! tests). The reader holds a reference to the unit it reads (its block),
//! so the unit cannot be freed while it is copied.

use super::unit::{self, MAX_UNIT_BLOCKS};
use super::{Block, Store, StoreError};
use crate::pool::Handle;
use std::cell::RefCell;
use std::sync::atomic::Ordering;

/// A unit is kept only if it is at most this share of the objects it
/// replaces (in 1/8ths): below a 1/8 saving, the extra CPU of reading a
/// block out of a zstd frame is not worth the memory.
const KEEP_EIGHTHS: usize = 7;

/// Which blocks a pass takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// Not written or read since the last pass (`recompress idle`, and the
    /// background passes).
    Idle,
    /// Every candidate (`recompress all`).
    All,
}

/// What one call to [`Store::recompress`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The new blocks, in the order given: swap them in, then `free` the
    /// old ones.
    Done(Vec<Block>),
    /// zstd did not save enough: nothing changed; the blocks are marked so
    /// they are not tried again.
    Skipped,
    /// The pool refused the unit (limit, handles), or a block could not be
    /// read (a damaged object: the read that meets it says so): nothing
    /// changed, counted in `recomp_failed`.
    Failed,
}

thread_local! {
    /// The last unit this thread decompressed: (store id, unit_frees when
    /// decoded, handle, bytes). See the module comment.
    static LAST_UNIT: RefCell<(u64, u64, u64, Vec<u8>)> = const { RefCell::new((0, 0, 0, Vec::new())) };
    /// Blocks being packed into a unit, end to end.
    static PACK: RefCell<(Vec<u8>, Vec<u8>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

impl Store {
    /// Whether `block` may join a unit now: an LZ4 or raw object in memory
    /// (zram too recompresses only what it holds), named by this block
    /// alone (recompressing one of several sharers saves nothing), not
    /// refused before; and with [`Which::Idle`], not written or read since
    /// the last pass, whose mark this call takes.
    pub fn recompress_candidate(&self, block: &Block, which: Which) -> bool {
        let (Block::Lz4(h) | Block::Raw(h)) = *block else {
            return false;
        };
        if self.meta.skipped(h) || !self.pool.is_resident(h) || self.refs(block) != 1 {
            return false;
        }
        // Taken in both modes, so `all` also starts a fresh idle period.
        let accessed = self.meta.take_accessed(h);
        which == Which::All || !accessed
    }

    /// Pack `blocks` (candidates, consecutive in one file, kept alive by
    /// the caller's lock) into one zstd unit at `level`.
    pub fn recompress(&self, blocks: &[Block], level: i32) -> Outcome {
        let n = blocks.len();
        assert!((1..=MAX_UNIT_BLOCKS).contains(&n));
        let bs = self.block_size;
        let old_len: usize = blocks.iter().map(|b| self.stored_len(b)).sum();
        // Ok(None): zstd did not save enough; Err: why the run stays.
        let packed: Result<Option<(Handle, usize)>, String> = PACK.with(|p| {
            let (plain, object) = &mut *p.borrow_mut();
            plain.resize(n * bs, 0);
            for (b, chunk) in blocks.iter().zip(plain.chunks_exact_mut(bs)) {
                self.peek(b, chunk).map_err(|e| e.to_string())?;
            }
            unit::encode(plain, n, level, object).map_err(|e| format!("zstd: {e}"))?;
            if !keeps(object.len(), old_len) {
                return Ok(None);
            }
            let h = self.pool.alloc(object).map_err(|e| e.to_string())?;
            Ok(Some((h, object.len())))
        });
        let (h, len) = match packed {
            Ok(Some(unit)) => unit,
            Ok(None) => {
                self.recomp_skipped.fetch_add(1, Ordering::Relaxed);
                for b in blocks {
                    if let Block::Lz4(h) | Block::Raw(h) = *b {
                        self.meta.mark_skip(h);
                    }
                }
                return Outcome::Skipped;
            }
            Err(why) => {
                log::debug!("recompress: a run of {n} blocks stays as it is: {why}");
                self.recomp_failed.fetch_add(1, Ordering::Relaxed);
                return Outcome::Failed;
            }
        };
        self.meta.unit_born(h, n as u64);
        self.recomp_units.fetch_add(1, Ordering::Relaxed);
        self.recomp_data_size
            .fetch_add(len as u64, Ordering::Relaxed);
        self.compr_data_size
            .fetch_add(len as u64, Ordering::Relaxed);
        self.recomp_pages.fetch_add(n as u64, Ordering::Relaxed);
        self.orig_data_size
            .fetch_add((n * bs) as u64, Ordering::Relaxed);
        Outcome::Done(
            (0..n)
                .map(|i| Block::Zstd {
                    unit: h,
                    index: i as u8,
                })
                .collect(),
        )
    }

    /// A pass is over on this thread: give back what packing kept for the
    /// next unit (the zstd context, the pack buffers), before the pass's
    /// compaction hands free heap pages back.
    pub fn recompress_done(&self) {
        unit::free_compressor();
        PACK.with(|p| *p.borrow_mut() = Default::default());
    }

    /// Load block `index` of unit `h` into `out`.
    pub(super) fn get_from_unit(
        &self,
        h: Handle,
        index: u8,
        out: &mut [u8],
    ) -> Result<(), StoreError> {
        self.recomp_reads.fetch_add(1, Ordering::Relaxed);
        let bs = self.block_size;
        let frees = self.unit_frees.load(Ordering::Acquire);
        LAST_UNIT.with(|c| {
            let (store, seen, raw, bytes) = &mut *c.borrow_mut();
            if (*store, *seen, *raw) != (self.id, frees, h.to_raw()) || bytes.is_empty() {
                *raw = 0;
                let n = self
                    .pool
                    .read_with(h, |src| unit::decode_into(src, bs, bytes))?;
                let n = n.map_err(|e| StoreError::Io(e.to_string()))?;
                if usize::from(index) >= n {
                    return Err(StoreError::Io(format!(
                        "block {index} of a unit of {n} blocks"
                    )));
                }
                (*store, *seen, *raw) = (self.id, frees, h.to_raw());
            }
            out.copy_from_slice(unit::block_of(bytes, bs, usize::from(index)));
            Ok(())
        })
    }

    /// Drop one block's reference to unit `h`, freeing the unit with the last.
    pub(super) fn free_from_unit(&self, h: Handle) {
        self.recomp_pages.fetch_sub(1, Ordering::Relaxed);
        if !self.meta.unit_unref(h) {
            return;
        }
        let len = self.pool.object_len(h) as u64;
        self.recomp_units.fetch_sub(1, Ordering::Relaxed);
        self.recomp_data_size.fetch_sub(len, Ordering::Relaxed);
        self.compr_data_size.fetch_sub(len, Ordering::Relaxed);
        // Before the handle can be reused: every cached copy of this unit
        // is stale from here on.
        self.unit_frees.fetch_add(1, Ordering::Release);
        self.meta.died(h);
        self.pool.free(h);
    }
}

/// Whether a unit of `new` bytes is worth replacing objects of `old` bytes.
fn keeps(new: usize, old: usize) -> bool {
    new * 8 <= old * KEEP_EIGHTHS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_must_save_an_eighth() {
        assert!(keeps(700, 800));
        assert!(!keeps(701, 800));
        assert!(!keeps(800, 800));
    }
}
