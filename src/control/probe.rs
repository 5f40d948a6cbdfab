//! Asking every zsfs mount on the machine for its figures, for `zsfs list`
//! and `zsfs stats --prometheus`.
//!
//! Mounts come from this process's mountinfo (the one parser,
//! [`crate::sys::mountinfo`]); each one's figures from its control file, so
//! a mount of another user is shown whenever that user's mount lets us read
//! it. A mount that cannot answer is still returned, with its [`State`]
//! saying why (`dead`: its daemon is gone, "transport endpoint is not
//! connected"; `hung`: no answer in [`PROBE_TIMEOUT`]; `denied`; `hidden`
//! under another mount at the same place).

use super::report::Report;
use crate::sys::mountinfo::{self, MountEntry};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long all mounts together may take to answer. A stopped or wedged
/// daemon would otherwise hang `zsfs list` in stat(2) forever, as it does
/// `df`; its threads are left blocked and die with the process.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// How a mount answered.
#[derive(Debug, Clone)]
pub(crate) enum State {
    Live {
        report: Box<Report>,
        /// `size=` in bytes from statfs; `Some(0)` when unlimited.
        size: Option<u64>,
    },
    Dead,
    Hung,
    Denied,
    Hidden,
    /// Any other failure, with the reason (shown on stderr).
    Error(String),
}

impl State {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            State::Live { .. } => "live",
            State::Dead => "dead",
            State::Hung => "hung",
            State::Denied => "denied",
            State::Hidden => "hidden",
            State::Error(_) => "error",
        }
    }
}

/// One mount and what it said.
pub(crate) struct Probe {
    pub(crate) entry: MountEntry,
    pub(crate) state: State,
}

/// statfs's total size of the mount, `Some(0)` for no limit.
fn statfs_size(path: &Path) -> Result<Option<u64>, std::io::Error> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: an all-zero statvfs is a valid out-parameter.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is NUL-terminated; st is a valid out-parameter.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let bytes = (st.f_blocks as u64).saturating_mul(st.f_frsize as u64);
    // size=0 is stored as "u64::MAX bytes"; anything near that is no limit.
    Ok(Some(if bytes >= 1 << 60 { 0 } else { bytes }))
}

/// Ask one mount for its figures (may block: run it off the main thread).
fn probe_one(mount_point: &Path, control_name: &str) -> State {
    let size = match statfs_size(mount_point) {
        Ok(s) => s,
        Err(e) => return state_of_error(&e),
    };
    let control = mount_point.join(control_name);
    match std::fs::read_to_string(&control) {
        Ok(text) => match Report::parse(&text) {
            Ok(report) => State::Live {
                report: Box::new(report),
                size,
            },
            Err(e) => State::Error(format!("{}: {e}", control.display())),
        },
        Err(e) => match state_of_error(&e) {
            State::Error(_) => State::Error(format!(
                "cannot read {}: {e} (mounted with control=NAME? pass --control NAME)",
                control.display()
            )),
            s => s,
        },
    }
}

fn state_of_error(e: &std::io::Error) -> State {
    match e.raw_os_error() {
        Some(libc::ENOTCONN) | Some(libc::ECONNABORTED) | Some(libc::ENODEV) => State::Dead,
        Some(libc::EACCES) | Some(libc::EPERM) => State::Denied,
        _ => State::Error(e.to_string()),
    }
}

/// How sure mountinfo alone makes us that a mount is zsfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Likely {
    /// Type `fuse.zsfs` (fusermount3 mounts), or plain `fuse` with the
    /// default source `zsfs`.
    Sure,
    /// Some other plain `fuse` mount: a root mount(2) by the daemon shows
    /// no subtype, and its source may be anything, so it is zsfs only if
    /// its control file answers.
    IfItAnswers,
}

fn likely_zsfs(e: &MountEntry) -> Option<Likely> {
    if !e.may_be_zsfs() {
        None
    } else if e.fstype == "fuse.zsfs" || e.source == "zsfs" {
        Some(Likely::Sure)
    } else {
        Some(Likely::IfItAnswers)
    }
}

/// Every zsfs mount, in mount order, with what each said.
pub(crate) fn probe_all(control_name: &str) -> Vec<Probe> {
    let (entries, likely): (Vec<MountEntry>, Vec<Likely>) = mountinfo::mounts()
        .into_iter()
        .filter_map(|e| likely_zsfs(&e).map(|l| (e, l)))
        .unzip();
    let (tx, rx) = mpsc::channel();
    let mut states: Vec<Option<State>> = vec![None; entries.len()];
    for (i, e) in entries.iter().enumerate() {
        // A later mount at the same place covers this one: a stat would
        // reach the upper one, so say so instead.
        if entries[i + 1..]
            .iter()
            .any(|l| l.mount_point == e.mount_point)
        {
            states[i] = Some(State::Hidden);
            continue;
        }
        let (tx, mp, name) = (tx.clone(), e.mount_point.clone(), control_name.to_string());
        std::thread::spawn(move || {
            let _ = tx.send((i, probe_one(&mp, &name)));
        });
    }
    drop(tx);
    let deadline = Instant::now() + PROBE_TIMEOUT;
    while states.iter().any(Option::is_none) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((i, s)) => states[i] = Some(s),
            Err(_) => break,
        }
    }
    entries
        .into_iter()
        .zip(states)
        .zip(likely)
        .filter_map(|((entry, state), likely)| {
            Probe {
                entry,
                state: state.unwrap_or(State::Hung),
            }
            .keep_if(likely)
        })
        .collect()
}

impl Probe {
    /// `None` for a plain FUSE mount that is not shown to be zsfs.
    fn keep_if(self, likely: Likely) -> Option<Probe> {
        match (&self.state, likely) {
            (_, Likely::Sure) | (State::Live { .. }, Likely::IfItAnswers) => Some(self),
            _ => None,
        }
    }
}

/// The zsfs mounts that `paths` name (none: every one), each with its
/// report if it answered; for `zsfs stats --prometheus`. A path that is not
/// a zsfs mountpoint is an error.
pub(crate) fn mounts_named(
    paths: &[PathBuf],
    control_name: &str,
) -> Result<Vec<(MountEntry, Option<Report>)>, String> {
    let probes: Vec<(MountEntry, Option<Report>)> = probe_all(control_name)
        .into_iter()
        .filter(|p| !matches!(p.state, State::Hidden))
        .map(|p| match p.state {
            State::Live { report, .. } => (p.entry, Some(*report)),
            _ => (p.entry, None),
        })
        .collect();
    if paths.is_empty() {
        return Ok(probes);
    }
    paths
        .iter()
        .map(|p| {
            // canonicalize stats the path, which fails on a dead mount;
            // fall back to an absolute path as given.
            let abs = std::fs::canonicalize(p).unwrap_or_else(|_| {
                std::env::current_dir()
                    .map(|d| d.join(p))
                    .unwrap_or_else(|_| p.clone())
            });
            probes
                .iter()
                .find(|(e, _)| e.mount_point == abs)
                .cloned()
                .ok_or_else(|| {
                    format!("{} is not a zsfs mountpoint (see `zsfs list`)", p.display())
                })
        })
        .collect()
}
