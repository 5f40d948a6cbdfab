//! A recompression pass over the filesystem's files (issue 13): the walk
//! that picks runs of blocks; the store packs them (`store/recompress.rs`)
//! and `crate::recompress` decides when passes run.
//!
//! For each regular file, in block order, the pass gathers up to a unit's
//! worth of candidate blocks (LZ4 or raw, in memory, unshared, idle when so
//! asked) under the inode's *upgradable* read lock: readers go on, writers
//! and other upgraders wait. It packs them with that lock held, so no block
//! of the run can change or be freed meanwhile, upgrades to the write lock
//! only to swap the map entries, and frees the old objects after dropping
//! it (nothing can reach them any more). The block in the write buffer is
//! left alone: the buffer is its true content.
//!
//! Locks: one inode lock at a time (the core's rule), never the namespace
//! lock; the inode table's read lock only to list the files first.

use super::super::{Content, Fs, Inner, Inode};
use crate::fs::FileKind;
use crate::store::{Block, Outcome, Which};
use parking_lot::RwLockUpgradableReadGuard;
use std::sync::Arc;

/// How a pass may go on: asked between runs of blocks, with no lock held.
/// `crate::recompress` paces background passes; a pass asked for in the
/// control file runs [`Unpaced`].
pub trait Pace {
    /// `blocks` more were looked at. False when the pass must stop; may
    /// sleep first.
    fn spend(&mut self, blocks: u64) -> bool;
}

/// As fast as it goes.
pub struct Unpaced;

impl Pace for Unpaced {
    fn spend(&mut self, _blocks: u64) -> bool {
        true
    }
}

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Blocks the pass found it could take (idle ones, with `Which::Idle`).
    pub idle: u64,
    /// Blocks now in units, and the units made.
    pub blocks: u64,
    pub units: u64,
    /// Pool bytes of the objects those blocks had, and of the units.
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Runs zstd did not make small enough, and runs the pool refused.
    pub skipped: u64,
    pub failed: u64,
    /// Pages the compaction after the pass gave back.
    pub pages_compacted: u64,
}

/// What one recompression pass is asked to do.
#[derive(Debug, Clone, Copy)]
pub struct PassSpec {
    pub which: Which,
    /// zstd level.
    pub level: i32,
    /// Most blocks in one unit (1 ..= store::unit::MAX_UNIT_BLOCKS).
    pub unit_blocks: usize,
}

impl Fs {
    /// What a pass over `which` blocks does under the live options
    /// (`recompress_level=`, `recompress_unit=`), or at `level`.
    pub fn pass_spec(&self, which: Which, level: Option<i32>) -> PassSpec {
        let live = self.live.lock();
        let blocks = live.recompress_unit / self.block_size.max(1);
        PassSpec {
            which,
            level: level.unwrap_or(live.recompress_level),
            unit_blocks: (blocks as usize).clamp(1, crate::store::MAX_UNIT_BLOCKS),
        }
    }

    /// Blocks the last pass found it could take.
    pub fn idle_pages(&self) -> u64 {
        self.last_idle.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Recompress the files' candidate blocks into zstd units.
    pub fn recompress(&self, spec: PassSpec, pace: &mut dyn Pace) -> PassReport {
        let files: Vec<Arc<Inode>> = self
            .table
            .read()
            .iter()
            .filter(|n| n.kind() == FileKind::File)
            .cloned()
            .collect();
        let mut report = PassReport::default();
        for node in files {
            if !self.recompress_file(&node, spec, pace, &mut report) {
                break;
            }
        }
        self.store.recompress_done();
        // Every unit freed the objects it replaced, scattered over their
        // zspages: give the emptied pages back, as zram's compact would.
        if report.units > 0 {
            report.pages_compacted = self.compact();
        }
        self.last_idle
            .store(report.idle, std::sync::atomic::Ordering::Relaxed);
        report
    }

    /// One file; false when the pace said stop.
    fn recompress_file(
        &self,
        node: &Inode,
        spec: PassSpec,
        pace: &mut dyn Pace,
        report: &mut PassReport,
    ) -> bool {
        let mut from = 0u64;
        loop {
            let guard = node.inner.upgradable_read();
            let Some(run) = self.gather(&guard, from, spec) else {
                return true;
            };
            report.idle += run.blocks.len() as u64;
            self.pack(guard, &run.blocks, spec.level, report);
            if !pace.spend(run.looked) {
                return false;
            }
            match run.next {
                Some(i) => from = i,
                None => return true,
            }
        }
    }

    /// The next run of candidates at or after block `from`; None when the
    /// file has no more.
    fn gather(&self, inner: &Inner, from: u64, spec: PassSpec) -> Option<Run> {
        let Content::File(f) = &inner.content else {
            return None;
        };
        if inner.gone {
            return None;
        }
        let buffered = f.dirty.as_ref().map(|d| d.idx);
        let mut run = Run {
            blocks: Vec::with_capacity(spec.unit_blocks),
            next: None,
            looked: 0,
        };
        for (idx, b) in f.blocks.range(from..) {
            if run.blocks.len() == spec.unit_blocks {
                run.next = Some(idx);
                break;
            }
            run.looked += 1;
            if Some(idx) != buffered && self.store.recompress_candidate(b, spec.which) {
                run.blocks.push((idx, *b));
            }
        }
        (!run.blocks.is_empty()).then_some(run)
    }

    /// Pack `run` into a unit and swap it in; `guard` is dropped either way.
    fn pack(
        &self,
        guard: RwLockUpgradableReadGuard<'_, Inner>,
        run: &[(u64, Block)],
        level: i32,
        report: &mut PassReport,
    ) {
        let store = &self.store;
        let old: Vec<Block> = run.iter().map(|r| r.1).collect();
        let new = match store.recompress(&old, level) {
            Outcome::Done(new) => new,
            Outcome::Skipped => return report.skipped += 1,
            Outcome::Failed => return report.failed += 1,
        };
        report.bytes_before += old.iter().map(|b| store.stored_len(b) as u64).sum::<u64>();
        // Each new block's share, times the blocks: the unit's bytes.
        report.bytes_after += (store.stored_len(&new[0]) * new.len()) as u64;
        report.blocks += new.len() as u64;
        report.units += 1;
        let mut w = RwLockUpgradableReadGuard::upgrade(guard);
        let Content::File(f) = &mut w.content else {
            unreachable!("an inode's kind never changes");
        };
        for ((idx, was), now) in run.iter().zip(new) {
            let prev = f.blocks.insert(*idx, now);
            debug_assert_eq!(prev, Some(*was), "block {idx} changed under the lock");
        }
        drop(w);
        for b in old {
            store.free(b);
        }
    }
}

/// Candidates found in one file: (block index, block), where to go on, and
/// how many blocks were looked at.
struct Run {
    blocks: Vec<(u64, Block)>,
    next: Option<u64>,
    looked: u64,
}
