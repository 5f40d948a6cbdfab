//! The shrinker: moves cold zspages from memory to the backing file.
//!
//! # Design
//!
//! - **LRU.** Each size class keeps its zspages in an LRU ordered by the pool
//!   clock value of their last allocation (`ZsPage::stamp`). It is updated in
//!   `alloc`, under the class lock, and nowhere on a read path. The coldest
//!   zspage of the pool is the class LRU tail with the smallest stamp, so
//!   there is no pool-wide list and no pool-wide lock on `alloc`.
//! - **Second chance.** A read sets the zspage's `referenced` flag (a field
//!   written under the class lock the read already holds). The shrinker,
//!   meeting a referenced tail, clears the flag and moves the zspage to the
//!   head with a fresh stamp instead of writing it (`second_chance` counts
//!   these), as zswap's shrinker does.
//! - **Isolation** is the explicit `ZsState::Isolated` of a zspage, set under
//!   the class lock: the zspage leaves its fullness group and the LRU, so
//!   `alloc` cannot pick it and `compact` cannot see it. Its objects can still
//!   be read (the pages are intact until the end) and freed (the slot is
//!   cleared; the writer notices). Only the isolating thread puts it back
//!   (write failed) or drops it (written).
//! - **Writeback** of one zspage: isolate and copy its live objects (class
//!   lock), write them as one checksummed record (`backing.rs`) with no lock
//!   held, then, under the class lock again, point each still-live handle at
//!   its frame on disk, register the record, and give the pages back. A
//!   failed write (e.g. ENOSPC) puts the zspage back: nothing is lost.
//! - **Reads** of a written-back object: one `pread` of its frame under the
//!   shared `disk_rw` lock; the frame's handle id and CRC-32C are checked, a
//!   mismatch is `PoolError::Checksum` (logged, counted, EIO upstairs). Objects
//!   stay on disk until freed.
//! - **Disk space.** A record whose objects are all freed is dropped and its
//!   whole 4 KiB blocks punched; free ranges are reused best-fit. Records
//!   under a quarter live are rewritten together into a new one (handles
//!   repointed under the exclusive `disk_rw`), then dropped.
//!
//! # When it runs
//!
//! The shrinker thread sleeps on `Signal` and wakes:
//! - when an allocation finds the pool at `pool_limit=`; it then writes back
//!   until the pool is under `accept_threshold=` percent of the limit
//!   (hysteresis, zswap's 90 % by default). The allocating thread itself also
//!   writes back just enough for its own allocation (direct reclaim), so a
//!   writer never waits on the thread and never fails while writeback can
//!   make room;
//! - every `POLL` to look at system memory pressure (`pressure.rs`: PSI,
//!   MemAvailable, own cgroup memory.high); under pressure it writes back an
//!   eighth of the pool per poll;
//! - on `Pool::request_writeback` (the control file); `Pool::writeback` does
//!   the same work synchronously in the caller's thread.
//!
//! Backing full: writes fail with ENOSPC, the zspage is put back, the file is
//! marked full for a few seconds (or until space is freed) and nobody writes
//! back meanwhile; allocations then get `LimitReached` only if memory is at
//! its limit too. `backing=none`: no thread, the limit is hard.
//!
//! # Locks
//!
//! The pool's lock order (top of `pool/mod.rs`) is the whole story: class
//! locks, then `disk_rw`, then the backing file's space mutex and the page
//! arena. The shrinker holds at most one class lock at a time and never holds
//! one across I/O on records. `Signal`'s mutex is taken with no other lock
//! held.
//!
//! # Invariants
//!
//! - A zspage is Listed (in exactly one fullness group and in its class LRU)
//!   or Isolated (in neither); `debug_check_consistency` checks both lists.
//! - A handle entry is in memory (then its zspage slot holds the handle id),
//!   on disk (then a record in the space map contains its frame and the
//!   frame verifies), or free (then its id is in its class's free list).
//! - Records in the space map have live frames, or are being rewritten.

pub mod backing;
mod pressure;

use crate::pool::{Core, WritebackRequest};
use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the thread looks at memory pressure when nothing wakes it.
const POLL: Duration = Duration::from_secs(1);
/// Rewrite records once this much of the backing file is dead.
const REWRITE_DEAD_BYTES: u64 = 1 << 20;

/// Writeback counters (all Relaxed: statistics, nothing is published by them).
#[derive(Debug)]
pub(crate) struct WbCounters {
    /// Reads from the backing file, in 4 KiB units (zram's bd_reads).
    pub bd_reads: AtomicU64,
    /// Record bytes written to the backing file (bd_writes is this / 4 KiB).
    pub bytes_written: AtomicU64,
    /// Zspages isolated by writeback right now, over all classes.
    pub isolated_now: AtomicU64,
    /// Zspage pages given back by writeback (zswap's written_back_pages).
    pub written_back_pages: AtomicU64,
    /// Wake-ups of the shrinker thread that wrote something back.
    pub shrinker_runs: AtomicU64,
    /// Referenced zspages rotated instead of written back.
    pub second_chance: AtomicU64,
    pub checksum_failures: AtomicU64,
    /// Frees of objects in isolated zspages (proof writers and the shrinker overlap).
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

/// What woke the shrinker.
#[derive(Debug, Default)]
struct Pending {
    /// An allocation found the pool at its limit.
    over_limit: bool,
    /// Writeback requests from the control file, in arrival order.
    requests: VecDeque<WritebackRequest>,
    /// The pool is being dropped.
    stop: bool,
}

/// The shrinker's wake-up channel (a leaf lock).
#[derive(Debug, Default)]
pub(crate) struct Signal {
    pending: Mutex<Pending>,
    cv: Condvar,
}

impl Signal {
    pub fn over_limit(&self) {
        let mut p = self.pending.lock();
        if !p.over_limit {
            p.over_limit = true;
            self.cv.notify_one();
        }
    }

    pub fn request(&self, req: WritebackRequest) {
        self.pending.lock().requests.push_back(req);
        self.cv.notify_one();
    }

    fn stop(&self) {
        self.pending.lock().stop = true;
        self.cv.notify_one();
    }

    /// Wait up to `timeout` for something to do and take it.
    fn wait(&self, timeout: Duration) -> Pending {
        let mut p = self.pending.lock();
        if !p.over_limit && p.requests.is_empty() && !p.stop {
            self.cv.wait_for(&mut p, timeout);
        }
        Pending {
            over_limit: std::mem::take(&mut p.over_limit),
            requests: std::mem::take(&mut p.requests),
            stop: p.stop,
        }
    }
}

/// The running shrinker thread; stopped and joined by `stop` (the pool's Drop).
pub(crate) struct ShrinkerThread {
    core: Arc<Core>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ShrinkerThread {
    pub fn start(core: Arc<Core>) -> std::io::Result<ShrinkerThread> {
        let c = core.clone();
        let thread = std::thread::Builder::new()
            .name("zsfs-shrinker".into())
            .spawn(move || run(&c))?;
        Ok(ShrinkerThread {
            core,
            thread: Some(thread),
        })
    }

    pub fn stop(mut self) {
        self.core.signal.stop();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!("the shrinker thread panicked");
            }
        }
    }
}

fn run(core: &Core) {
    let monitor = core.watch_pressure().then(pressure::Monitor::new);
    let mut last_look = Instant::now();
    let mut was_full = false;
    loop {
        let work = core.signal.wait(POLL);
        if work.stop {
            return;
        }
        let mut ran = false;
        for req in work.requests {
            match core.writeback(req) {
                Ok(r) => log::info!("writeback {req:?}: {r:?}"),
                Err(e) => log::warn!("writeback {req:?}: {e}"),
            }
            ran = true;
        }
        let full = core.backing.as_ref().is_some_and(|b| b.is_full());
        if full != was_full {
            if full {
                log::warn!("backing file is full: writeback paused, data stays in memory");
            } else {
                log::info!("backing file has room again: writeback resumed");
            }
            was_full = full;
        }
        if full {
            continue;
        }
        // Over the limit: write back until under the accept threshold.
        let (used, limit) = core.pages_and_limit();
        if limit != u64::MAX && (work.over_limit || used > limit) {
            let target = limit / 100 * u64::from(core.accept_threshold())
                + limit % 100 * u64::from(core.accept_threshold()) / 100;
            if used > target {
                match core.shrink_second_chance(used - target) {
                    Ok(r) => log::debug!("over pool limit: {r:?}"),
                    Err(e) => log::debug!("over pool limit, writeback stopped: {e}"),
                }
                ran = true;
            }
        }
        if let Some(m) = &monitor {
            if last_look.elapsed() >= POLL {
                last_look = Instant::now();
                if let Some(why) = m.under_pressure() {
                    let (used, _) = core.pages_and_limit();
                    if used > 0 {
                        match core.shrink_second_chance((used / 8).max(1)) {
                            Ok(r) => log::debug!("memory pressure ({why}): {r:?}"),
                            Err(e) => {
                                log::debug!("memory pressure ({why}), writeback stopped: {e}")
                            }
                        }
                        ran = true;
                    }
                }
            }
        }
        if let Some(b) = &core.backing {
            if b.dead_bytes() >= REWRITE_DEAD_BYTES {
                match core.rewrite_sparse_records() {
                    Ok(n) => log::debug!("rewrote sparse records, {n} bytes given back"),
                    Err(e) => log::debug!("rewriting sparse records: {e}"),
                }
            }
        }
        if ran {
            core.wb.shrinker_runs.fetch_add(1, Ordering::Relaxed);
        }
    }
}
