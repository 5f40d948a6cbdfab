//! When idle data is recompressed: the policy thread (issue 13).
//!
//! The mechanism is below: `fs` walks files and hands runs of blocks to the
//! store, which packs them into zstd units. This module only decides when a
//! pass runs and how fast it may go, as `reclaim/` does for writeback:
//!
//! - A pass starts every `recompress_after=`. A block is recompressed when
//!   a pass finds it not written or read since the previous pass, so data
//!   idle for `recompress_after` is recompressed within twice that.
//! - A pass spends at most [`BLOCKS_PER_TICK`] blocks per [`TICK`], so it
//!   takes a bounded share of one CPU however much idle data there is.
//! - A pass waits while the mount is busy: while the daemon's other threads
//!   (the FUSE request loops) used more than [`BUSY_CPU_PERCENT`] of a CPU
//!   in the last tick. CPU time is what the workload would lose to us, and
//!   reading it costs the request path nothing.
//!
//! `recompress idle|all` in the control file runs a pass in the caller's
//! thread, unpaced (`fs::Unpaced`): whoever asks wants it done now (zram's
//! `recompress`).
//!
//! Locks: the stop flag's mutex, a leaf; a pass runs with no lock of this
//! module held.

use crate::fs::Pace;
use parking_lot::{Condvar, Mutex};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the pacer looks at its budget and at the mount's load.
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// Blocks a background pass may recompress per tick: 512 blocks of 4 KiB
/// per 100 ms is 20 MiB/s, about a tenth of one core at zstd level 3, and
/// a 1 GiB idle tree done in under a minute.
pub(crate) const BLOCKS_PER_TICK: u64 = 512;

/// Above this share of one CPU used by the other threads in the last tick,
/// the mount is busy and the pass waits: a FUSE workload at full speed
/// keeps its request threads well above it, an idle mount near zero.
pub(crate) const BUSY_CPU_PERCENT: u64 = 20;

/// Whether the other threads' CPU time over a tick, above `percent` of
/// one CPU, says the mount is busy.
pub(crate) fn busy(others_cpu: Duration, tick: Duration, percent: u64) -> bool {
    others_cpu.as_micros() * 100 > tick.as_micros() * u128::from(percent)
}

/// Whether a pass that spent `spent` blocks in this tick must wait for the
/// next one.
pub(crate) fn over_budget(spent: u64) -> bool {
    spent >= BLOCKS_PER_TICK
}

/// CPU time of the whole process and of the calling thread.
fn cpu_times() -> (Duration, Duration) {
    let usage = |who| {
        // SAFETY: an all-zero rusage is a valid out-parameter.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: ru is a valid out-parameter; getrusage cannot fail for
        // RUSAGE_SELF/RUSAGE_THREAD.
        unsafe { libc::getrusage(who, &mut ru) };
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        tv(ru.ru_utime) + tv(ru.ru_stime)
    };
    (usage(libc::RUSAGE_SELF), usage(libc::RUSAGE_THREAD))
}

/// The stop flag the thread sleeps on.
#[derive(Default)]
struct Stop {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Stop {
    /// Sleep up to `d`; whether the thread must stop.
    fn sleep(&self, d: Duration) -> bool {
        let mut s = self.stopped.lock();
        if !*s {
            self.wake.wait_for(&mut s, d);
        }
        *s
    }
    fn stopped(&self) -> bool {
        *self.stopped.lock()
    }
}

/// The background pacer: [`BLOCKS_PER_TICK`] per tick, none while busy.
struct Pacer {
    stop: Arc<Stop>,
    tick_start: Instant,
    spent: u64,
    /// (process, this thread) CPU at the tick's start.
    cpu: (Duration, Duration),
    /// [`BUSY_CPU_PERCENT`], or more in tests that share the CPU.
    busy_percent: u64,
}

impl Pacer {
    fn new(stop: Arc<Stop>, busy_percent: u64) -> Pacer {
        Pacer {
            stop,
            tick_start: Instant::now(),
            spent: 0,
            cpu: cpu_times(),
            busy_percent,
        }
    }

    /// Wait for the next tick; then, while the last tick was busy, for
    /// another. False when stopped.
    fn next_tick(&mut self) -> bool {
        loop {
            let left = TICK.saturating_sub(self.tick_start.elapsed());
            if self.stop.sleep(left) {
                return false;
            }
            let now = cpu_times();
            let others =
                (now.0.saturating_sub(self.cpu.0)).saturating_sub(now.1.saturating_sub(self.cpu.1));
            let tick = self.tick_start.elapsed();
            self.cpu = now;
            self.tick_start = Instant::now();
            self.spent = 0;
            if !busy(others, tick, self.busy_percent) {
                return true;
            }
        }
    }
}

impl Pace for Pacer {
    fn spend(&mut self, blocks: u64) -> bool {
        self.spent += blocks;
        if self.stop.stopped() {
            return false;
        }
        if over_budget(self.spent) || self.tick_start.elapsed() >= TICK {
            return self.next_tick();
        }
        true
    }
}

/// The recompression thread of one mount; stopped and joined on drop.
pub struct RecompressThread {
    stop: Arc<Stop>,
    join: Option<JoinHandle<()>>,
}

impl RecompressThread {
    /// Run `pass` every `after`, paced; `pass` returns when it has walked
    /// every file or its pace said stop.
    pub fn start(
        after: Duration,
        pass: impl FnMut(&mut dyn Pace) + Send + 'static,
    ) -> std::io::Result<RecompressThread> {
        Self::start_with(after, BUSY_CPU_PERCENT, pass)
    }

    fn start_with(
        after: Duration,
        busy_percent: u64,
        mut pass: impl FnMut(&mut dyn Pace) + Send + 'static,
    ) -> std::io::Result<RecompressThread> {
        let stop = Arc::new(Stop::default());
        let s = stop.clone();
        let join = std::thread::Builder::new()
            .name("zsfs-recompress".into())
            .spawn(move || {
                while !s.sleep(after) {
                    let mut pacer = Pacer::new(s.clone(), busy_percent);
                    if pacer.next_tick() {
                        pass(&mut pacer);
                    }
                }
            })?;
        Ok(RecompressThread {
            stop,
            join: Some(join),
        })
    }
}

impl Drop for RecompressThread {
    fn drop(&mut self) {
        *self.stop.stopped.lock() = true;
        self.stop.wake.notify_all();
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn busy_is_a_share_of_one_cpu() {
        let tick = Duration::from_millis(100);
        assert!(!busy(Duration::ZERO, tick, 20));
        assert!(!busy(Duration::from_millis(20), tick, 20));
        assert!(busy(Duration::from_millis(21), tick, 20));
        assert!(!over_budget(BLOCKS_PER_TICK - 1));
        assert!(over_budget(BLOCKS_PER_TICK));
    }

    #[test]
    fn passes_repeat_paced_and_stop_on_drop() {
        let blocks = Arc::new(AtomicU64::new(0));
        let b = blocks.clone();
        // Never busy: other tests share this process's CPU time.
        let t =
            RecompressThread::start_with(Duration::from_millis(10), u64::MAX / 1000, move |pace| {
                // A pass with more work than one tick allows.
                for _ in 0..4 * BLOCKS_PER_TICK {
                    if !pace.spend(1) {
                        return;
                    }
                    b.fetch_add(1, Ordering::Relaxed);
                }
            })
            .unwrap();
        std::thread::sleep(Duration::from_millis(250));
        drop(t);
        let done = blocks.load(Ordering::Relaxed);
        // 250 ms is at most 3 ticks of budget (plus the one being spent).
        assert!(done > 0, "no pass ran");
        assert!(done <= 4 * BLOCKS_PER_TICK, "pace not kept: {done}");
        let after = blocks.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            blocks.load(Ordering::Relaxed),
            after,
            "thread still running"
        );
    }
}
