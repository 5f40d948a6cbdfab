//! System memory pressure, as the reclaim thread sees it once per poll.
//!
//! Three signals, any of which counts:
//! - PSI: `/proc/pressure/memory`, "some" stall share over the last 10 s at
//!   or above `PSI_SOME_AVG10` percent (tasks are waiting on memory);
//! - `MemAvailable` below `AVAILABLE_SHARE` of `MemTotal` (`/proc/meminfo`);
//! - our own cgroup (v2) at or above 90 % of its `memory.high`, when it has one.
//!
//! Files that do not exist (no PSI, no cgroup v2) are simply not signals.

use std::path::PathBuf;

/// PSI "some" avg10 at or above 10 % is pressure: tasks spent a tenth of
/// the last 10 s waiting on memory, well past the noise of an idle system.
const PSI_SOME_AVG10: f64 = 10.0;
/// MemAvailable under MemTotal / 20 (5 %) is pressure: the kernel is about
/// to reclaim in earnest.
const AVAILABLE_SHARE: u64 = 20;
/// memory.current at or above 9/10 of memory.high is pressure: the cgroup
/// is about to be throttled.
const CGROUP_HIGH_TENTHS: u64 = 9;

pub(crate) struct Monitor {
    /// `/proc/pressure/memory`.
    psi: PathBuf,
    /// `/proc/meminfo`.
    meminfo: PathBuf,
    /// `/sys/fs/cgroup/<our cgroup>` when it has a `memory.high`.
    cgroup: Option<PathBuf>,
}

impl Monitor {
    pub fn new() -> Monitor {
        let cgroup = std::fs::read_to_string("/proc/self/cgroup")
            .ok()
            .and_then(|t| cgroup_v2_path(&t))
            .map(|p| PathBuf::from("/sys/fs/cgroup").join(p.trim_start_matches('/')))
            .filter(|d| d.join("memory.high").exists());
        Monitor {
            psi: "/proc/pressure/memory".into(),
            meminfo: "/proc/meminfo".into(),
            cgroup,
        }
    }

    /// Why the system is under memory pressure, or None.
    pub fn under_pressure(&self) -> Option<String> {
        if let Some(v) = std::fs::read_to_string(&self.psi)
            .ok()
            .and_then(|t| psi_some_avg10(&t))
        {
            if v >= PSI_SOME_AVG10 {
                return Some(format!("memory PSI some avg10={v:.2}"));
            }
        }
        if let Some((total, avail)) = std::fs::read_to_string(&self.meminfo)
            .ok()
            .and_then(|t| meminfo(&t))
        {
            if avail < total / AVAILABLE_SHARE {
                return Some(format!("MemAvailable {avail} of {total} bytes"));
            }
        }
        let dir = self.cgroup.as_ref()?;
        let high = std::fs::read_to_string(dir.join("memory.high")).ok()?;
        let high: u64 = high.trim().parse().ok()?; // "max" is no limit
        let cur: u64 = std::fs::read_to_string(dir.join("memory.current"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        (cur / 10 * 10 >= high / 10 * CGROUP_HIGH_TENTHS)
            .then(|| format!("cgroup memory.current {cur} near memory.high {high}"))
    }
}

/// "some avg10=" of a PSI file.
fn psi_some_avg10(text: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with("some "))?;
    line.split_whitespace()
        .find_map(|f| f.strip_prefix("avg10="))
        .and_then(|v| v.parse().ok())
}

/// (MemTotal, MemAvailable) in bytes.
fn meminfo(text: &str) -> Option<(u64, u64)> {
    let get = |key: &str| -> Option<u64> {
        let l = text.lines().find(|l| l.starts_with(key))?;
        let kb: u64 = l[key.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    };
    Some((get("MemTotal:")?, get("MemAvailable:")?))
}

/// The cgroup v2 path from /proc/self/cgroup ("0::/path").
fn cgroup_v2_path(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let psi = "some avg10=12.50 avg60=3.00 avg300=1.00 total=123\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(psi_some_avg10(psi), Some(12.5));
        let mi = "MemTotal:       24000000 kB\nMemFree:  1 kB\nMemAvailable:    1000000 kB\n";
        assert_eq!(meminfo(mi), Some((24_000_000 * 1024, 1_000_000 * 1024)));
        assert_eq!(
            cgroup_v2_path("0::/user.slice/x.scope\n").as_deref(),
            Some("/user.slice/x.scope")
        );
        assert_eq!(cgroup_v2_path("12:memory:/foo\n"), None);
        // Runs on this machine without panicking whatever it finds.
        let _ = Monitor::new().under_pressure();
    }

    #[test]
    fn each_signal_counts() {
        let d = tempfile::tempdir().unwrap();
        let w = |n: &str, t: &str| std::fs::write(d.path().join(n), t).unwrap();
        w("psi", "some avg10=0.50 avg60=0 avg300=0 total=1\n");
        w("mi", "MemTotal: 1000 kB\nMemAvailable: 900 kB\n");
        w("memory.high", "1000000\n");
        w("memory.current", "100\n");
        let m = Monitor {
            psi: d.path().join("psi"),
            meminfo: d.path().join("mi"),
            cgroup: Some(d.path().into()),
        };
        assert_eq!(m.under_pressure(), None);
        w("psi", "some avg10=25.00 avg60=0 avg300=0 total=1\n");
        assert!(m.under_pressure().unwrap().contains("PSI"));
        w("psi", "some avg10=0.00 avg60=0 avg300=0 total=1\n");
        w("mi", "MemTotal: 1000 kB\nMemAvailable: 40 kB\n");
        assert!(m.under_pressure().unwrap().contains("MemAvailable"));
        w("mi", "MemTotal: 1000 kB\nMemAvailable: 900 kB\n");
        w("memory.current", "950000\n");
        assert!(m.under_pressure().unwrap().contains("memory.high"));
        w("memory.high", "max\n");
        assert_eq!(m.under_pressure(), None, "memory.high=max is no limit");
    }
}
