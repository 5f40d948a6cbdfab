//! What the pool counts, and the control file's per-class table.

use super::*;

/// Totals over the whole pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Live objects (in memory).
    pub objects: u64,
    /// Sum of live object sizes in memory, bytes (zram's compr_data_size).
    pub bytes_stored: u64,
    /// Pages held from the OS right now (zram's mem_used_total / 4096):
    /// pages of zspages plus the arena's few resident free pages.
    pub pages_held: u64,
    /// Most pages ever held since creation or the last reset.
    pub max_pages_held: u64,
    /// Objects that took a zspage of their own (huge class).
    pub huge_objects: u64,
    /// Pages freed by compaction, cumulative.
    pub pages_compacted: u64,
    /// Zspages in all classes.
    pub zspages: u64,
    /// Zspages given a lower id so a slab of descriptors could shrink,
    /// cumulative (proof for the tests that renumbering ran).
    pub zspages_renumbered: u64,
    /// Memory limit in bytes, if any (zram's mem_limit).
    pub limit: Option<u64>,
    /// Allocations that found the pool at its limit (zswap's pool_limit_hit).
    pub pool_limit_hit: u64,
    /// Heap bytes of bookkeeping outside the pages (slot tables, zspage
    /// headers, the handle table), for honest overhead figures.
    pub metadata_bytes: u64,
    /// Backing file space held by records, in 4 KiB units (zram's bd_count).
    pub bd_count: u64,
    /// Reads from the backing file, in 4 KiB units (zram's bd_reads).
    pub bd_reads: u64,
    /// Writes to the backing file, in 4 KiB units (zram's bd_writes).
    pub bd_writes: u64,
    /// Pool pages given back by writeback, cumulative (zswap's written_back_pages).
    pub written_back_pages: u64,
    /// Objects in the backing file and their bytes.
    pub disk_objects: u64,
    pub disk_bytes: u64,
    /// Reclaim thread wake-ups that wrote back (the control file's
    /// `shrinker_runs`).
    pub shrinker_runs: u64,
    /// Referenced zspages rotated instead of written back.
    pub second_chance: u64,
    /// Reads that failed their checksum (EIO).
    pub checksum_failures: u64,
    /// Frees that hit a zspage while writeback had it isolated.
    pub isolated_frees: u64,
    /// Reads served from a zspage while writeback had it isolated.
    pub isolated_reads: u64,
    /// Sparse backing records rewritten.
    pub records_rewritten: u64,
    /// Failed record writes (e.g. backing disk full).
    pub writeback_errors: u64,
    /// The backing disk said ENOSPC recently; writeback is paused.
    pub backing_full: bool,
}

/// One row of the control file's `classes` table (zsmalloc debugfs shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassStats {
    /// Slot size in bytes (largest object of the class).
    pub size: usize,
    /// Smallest object size that lands here.
    pub min_size: usize,
    /// Raw classes merged into this one.
    pub merged: usize,
    pub pages_per_zspage: usize,
    pub objs_per_zspage: usize,
    /// One object per zspage.
    pub huge: bool,
    /// Slots in all zspages of the class (zsmalloc's obj_allocated).
    pub objects_allocated: u64,
    /// Slots holding an object (obj_used).
    pub objects_in_use: u64,
    pub zspages: u64,
    pub pages: u64,
    /// Zspages per fullness group, labelled by `FULLNESS_LABELS`.
    pub fullness: [u64; GROUPS],
    /// Zspages taken by writeback right now.
    pub isolated: u64,
}

/// Writeback counters (all Relaxed: statistics, nothing is published by them).
#[derive(Debug)]
pub(super) struct WbCounters {
    /// Reads from the backing file, in 4 KiB units (zram's bd_reads).
    pub bd_reads: AtomicU64,
    /// Record bytes written to the backing file (bd_writes is this / 4 KiB).
    pub bytes_written: AtomicU64,
    /// Zspages isolated by writeback right now, over all classes.
    pub isolated_now: AtomicU64,
    /// Zspage pages given back by writeback (zswap's written_back_pages).
    pub written_back_pages: AtomicU64,
    /// Wake-ups of the reclaim thread that wrote something back.
    pub shrinker_runs: AtomicU64,
    /// Referenced zspages rotated instead of written back.
    pub second_chance: AtomicU64,
    pub checksum_failures: AtomicU64,
    /// Frees of objects in isolated zspages (proof writers and writeback overlap).
    pub isolated_frees: AtomicU64,
    /// Reads of objects in isolated zspages.
    pub isolated_reads: AtomicU64,
    pub records_rewritten: AtomicU64,
    pub write_errors: AtomicU64,
    /// Clock at the previous `writeback idle`; u64::MAX before the first.
    pub idle_mark: AtomicU64,
}

impl Default for WbCounters {
    fn default() -> Self {
        WbCounters {
            bd_reads: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            isolated_now: AtomicU64::new(0),
            written_back_pages: AtomicU64::new(0),
            shrinker_runs: AtomicU64::new(0),
            second_chance: AtomicU64::new(0),
            checksum_failures: AtomicU64::new(0),
            isolated_frees: AtomicU64::new(0),
            isolated_reads: AtomicU64::new(0),
            records_rewritten: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            idle_mark: AtomicU64::new(u64::MAX),
        }
    }
}

impl Pool {
    /// Totals over the whole pool now.
    pub fn stats(&self) -> PoolStats {
        let mut zspages = 0;
        let mut meta = 0;
        for c in self.classes.iter() {
            let c = c.lock();
            zspages += c.zspages as u64;
            meta += c.metadata_bytes() as u64;
        }
        let limit = self.limit_pages.load(Ordering::Relaxed);
        // Exclusive: no object is half-way between memory and disk while
        // both sides' counters are read.
        let _moving = self.moving.write();
        let mut st = PoolStats {
            objects: self.objects.load(Ordering::Relaxed),
            bytes_stored: self.bytes_stored.load(Ordering::Relaxed),
            pages_held: self.pages_used.load(Ordering::Relaxed) + self.arena.cached() as u64,
            max_pages_held: self.max_pages.load(Ordering::Relaxed),
            huge_objects: self.huge_objects.load(Ordering::Relaxed),
            pages_compacted: self.pages_compacted.load(Ordering::Relaxed),
            zspages,
            zspages_renumbered: self.zspages_renumbered.load(Ordering::Relaxed),
            limit: (limit != u64::MAX).then(|| limit * PAGE_SIZE as u64),
            pool_limit_hit: self.limit_hits.load(Ordering::Relaxed),
            metadata_bytes: meta + self.handles.bytes(),
            ..Default::default()
        };
        self.wb_stats(&mut st);
        st
    }

    /// Reset `max_pages_held` to the current value (zram's `mem_used_max` reset).
    pub fn reset_max_pages(&self) {
        self.max_pages
            .store(self.pages_used.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// The per-class table, one row per merged class.
    pub fn class_stats(&self) -> Vec<ClassStats> {
        self.classes
            .iter()
            .map(|c| {
                let c = c.lock();
                let mut fullness = [0; GROUPS];
                for (f, l) in fullness.iter_mut().zip(c.groups.iter()) {
                    *f = l.len as u64;
                }
                ClassStats {
                    size: c.info.size,
                    min_size: c.info.min_size,
                    merged: c.info.merged,
                    pages_per_zspage: c.info.pages,
                    objs_per_zspage: c.info.objs,
                    huge: c.info.huge(),
                    objects_allocated: (c.zspages * c.info.objs) as u64,
                    objects_in_use: c.inuse as u64,
                    zspages: c.zspages as u64,
                    pages: (c.zspages * c.info.pages) as u64,
                    fullness,
                    isolated: c.isolated as u64,
                }
            })
            .collect()
    }

    /// The reclaim thread wrote something back on one wake-up.
    pub(crate) fn count_reclaim_run(&self) {
        self.wb.shrinker_runs.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn wb_stats(&self, st: &mut PoolStats) {
        let w = &self.wb;
        st.bd_reads = w.bd_reads.load(Ordering::Relaxed);
        st.bd_writes = w
            .bytes_written
            .load(Ordering::Relaxed)
            .div_ceil(PAGE_SIZE as u64);
        st.written_back_pages = w.written_back_pages.load(Ordering::Relaxed);
        st.shrinker_runs = w.shrinker_runs.load(Ordering::Relaxed);
        st.second_chance = w.second_chance.load(Ordering::Relaxed);
        st.checksum_failures = w.checksum_failures.load(Ordering::Relaxed);
        st.isolated_frees = w.isolated_frees.load(Ordering::Relaxed);
        st.isolated_reads = w.isolated_reads.load(Ordering::Relaxed);
        st.records_rewritten = w.records_rewritten.load(Ordering::Relaxed);
        st.writeback_errors = w.write_errors.load(Ordering::Relaxed);
        if let Some(b) = &self.backing {
            let b = b.stats();
            st.bd_count = b.record_bytes.div_ceil(PAGE_SIZE as u64);
            st.disk_objects = b.objects;
            st.disk_bytes = b.object_bytes;
            st.backing_full = b.full;
        }
    }
}
