//! Reclaim: the policy that decides when cold zspages go to the backing
//! file, and the thread that carries it out. The mechanism (picking,
//! isolating, writing, repointing) is the pool's (`pool/writeback.rs`); this
//! module uses the pool, the pool never names it: it only holds the
//! `pool::Reclaimer` this module attaches, and calls it.
//!
//! # When it runs
//!
//! The thread (`zsfs-shrinker`) sleeps on its `Signal` and wakes:
//! - when an allocation finds the pool at `pool_limit=` (or the limit is
//!   set); it then writes back until the pool is under `accept_threshold=`
//!   percent of the limit (hysteresis, zswap's 90 % by default). The
//!   allocating thread itself also writes back just enough for its own
//!   allocation (the pool's direct reclaim), so a writer never waits on this
//!   thread and never fails while writeback can make room;
//! - every `POLL` to look at system memory pressure (`pressure.rs`: PSI,
//!   MemAvailable, own cgroup memory.high), when `watch_pressure`; under
//!   pressure it writes back `1/PRESSURE_SHARE` of the pool per poll;
//! - on `Pool::request_writeback` (the control file); `Pool::writeback` does
//!   the same work synchronously in the caller's thread.
//!
//! After any wake-up it rewrites sparse backing records once
//! `REWRITE_DEAD_BYTES` of the file are dead. The thresholds and their
//! reasons are in `policy.rs`.
//!
//! Backing full: writes fail with ENOSPC, the zspage is put back, the file is
//! marked full for a few seconds (or until space is freed) and the thread
//! writes nothing back meanwhile; allocations then get `LimitReached` only
//! if memory is at its limit too. `backing=none`: no thread is started, the
//! limit is hard.
//!
//! # Threads, ownership, locks
//!
//! `ReclaimThread::start` attaches the signal to the pool and spawns the
//! thread, which holds an `Arc<Pool>`; the pool holds only the signal (which
//! holds nothing), so there is no cycle. Dropping the `ReclaimThread` stops
//! and joins the thread, deterministically; the pool goes when its last
//! `Arc` does. The thread holds no lock of its own while it calls the pool,
//! and at most one class lock at a time inside it (the pool's lock order).
//! `Signal`'s mutex is a leaf: taken with no other lock held, by the pool's
//! `Reclaimer` calls (made with no pool lock held) and by the thread.

mod policy;
mod pressure;
#[cfg(test)]
mod tests;

use crate::pool::{Pool, Reclaimer, WritebackRequest};
use parking_lot::{Condvar, Mutex};
use policy::{accept_target, over_limit, pressure_goal, worth_rewriting, POLL};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Reclaim settings (from `Config` through `crate::mount`).
#[derive(Debug, Clone)]
pub struct ReclaimConfig {
    /// Once over the limit, write back until under this percent of it
    /// (1..=100). Changed live by `Pool::set_accept_threshold` (remount).
    pub accept_threshold: u8,
    /// Also write back under system memory pressure (PSI, MemAvailable,
    /// cgroup memory.high).
    pub watch_pressure: bool,
}

/// What woke the thread.
#[derive(Debug, Default)]
struct Pending {
    /// An allocation found the pool at its limit.
    over_limit: bool,
    /// Writeback requests from the control file, in arrival order.
    requests: VecDeque<WritebackRequest>,
    /// The `ReclaimThread` is being dropped.
    stop: bool,
}

/// The thread's wake-up channel and live settings; the pool's `Reclaimer`.
#[derive(Debug)]
struct Signal {
    pending: Mutex<Pending>,
    cv: Condvar,
    /// `accept_threshold=` now (Relaxed: a value read at the next wake-up,
    /// publishing nothing else).
    accept_pct: AtomicU8,
}

impl Reclaimer for Signal {
    fn over_limit(&self) {
        let mut p = self.pending.lock();
        if !p.over_limit {
            p.over_limit = true;
            self.cv.notify_one();
        }
    }

    fn request(&self, req: WritebackRequest) -> bool {
        let mut p = self.pending.lock();
        if p.stop {
            return false;
        }
        p.requests.push_back(req);
        self.cv.notify_one();
        true
    }

    fn set_accept_threshold(&self, pct: u8) {
        self.accept_pct.store(pct, Ordering::Relaxed);
    }
}

impl Signal {
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

/// The running reclaim thread of one pool; stopped and joined on drop.
pub struct ReclaimThread {
    signal: Arc<Signal>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ReclaimThread {
    /// Attach reclaim to `pool` and start its thread. Fails if the thread
    /// cannot be spawned or the pool already has a reclaimer.
    pub fn start(pool: Arc<Pool>, config: ReclaimConfig) -> std::io::Result<ReclaimThread> {
        debug_assert!((1..=100).contains(&config.accept_threshold));
        let signal = Arc::new(Signal {
            pending: Mutex::default(),
            cv: Condvar::new(),
            accept_pct: AtomicU8::new(config.accept_threshold),
        });
        if pool.attach_reclaimer(signal.clone()).is_err() {
            return Err(std::io::Error::other(
                "the pool already has a reclaim thread",
            ));
        }
        let s = signal.clone();
        let thread = std::thread::Builder::new()
            .name("zsfs-shrinker".into())
            .spawn(move || run(&pool, &s, config.watch_pressure))?;
        Ok(ReclaimThread {
            signal,
            thread: Some(thread),
        })
    }
}

impl Drop for ReclaimThread {
    fn drop(&mut self) {
        self.signal.stop();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!("the reclaim thread panicked");
            }
        }
    }
}

fn run(pool: &Pool, signal: &Signal, watch_pressure: bool) {
    let monitor = watch_pressure.then(pressure::Monitor::new);
    let mut last_look = Instant::now();
    let mut was_full = false;
    loop {
        let work = signal.wait(POLL);
        if work.stop {
            return;
        }
        let mut ran = false;
        for req in work.requests {
            match pool.writeback(req) {
                Ok(r) => log::info!("writeback {req:?}: {r:?}"),
                Err(e) => log::warn!("writeback {req:?}: {e}"),
            }
            ran = true;
        }
        let full = pool.backing_full();
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
        let (used, limit) = pool.pages_and_limit();
        if over_limit(used, limit, work.over_limit) {
            let target = accept_target(limit, signal.accept_pct.load(Ordering::Relaxed));
            if used > target {
                match pool.shrink_coldest(used - target) {
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
                    let goal = pressure_goal(pool.pages_and_limit().0);
                    if goal > 0 {
                        match pool.shrink_coldest(goal) {
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
        if worth_rewriting(pool.backing_dead_bytes()) {
            match pool.compact_backing() {
                Ok(n) => log::debug!("rewrote sparse records, {n} bytes given back"),
                Err(e) => log::debug!("rewriting sparse records: {e}"),
            }
        }
        if ran {
            pool.count_reclaim_run();
        }
    }
}
