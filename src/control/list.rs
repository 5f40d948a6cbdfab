//! `zsfs list` (and `zsfs` alone): every zsfs mount on the machine, one line
//! each, as `zramctl` lists zram devices.
//!
//! Mounts come from this process's mountinfo (the one parser,
//! [`crate::sys::mountinfo`]); each one's figures from its control file, so
//! a mount of another user is shown whenever that user's mount lets us read
//! it. A mount that cannot answer is still listed, with its STATE saying
//! why (`dead`: its daemon is gone, "transport endpoint is not connected";
//! `hung`: no answer in [`PROBE_TIMEOUT`]; `denied`; `hidden` under another
//! mount at the same place), and never stops the listing.

use super::report::Report;
use crate::sys::mountinfo::{self, MountEntry};
use serde_json::{Map, Value};
use std::ffi::{CStr, CString};
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long all mounts together may take to answer. A stopped or wedged
/// daemon would otherwise hang `zsfs list` in stat(2) forever, as it does
/// `df`; its threads are left blocked and die with the process.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// What `zsfs list` was asked for.
#[derive(Debug, Clone, Default)]
pub struct ListArgs {
    /// `{"zsfs": [ {...}, ... ]}`, as `zramctl --json`.
    pub json: bool,
    /// Sizes as numbers of bytes instead of `1.5G`.
    pub bytes: bool,
    /// `-o COLS`: a comma-separated list; `+COLS` adds to the default ones.
    pub output: Option<String>,
    /// No header line.
    pub noheadings: bool,
    /// The control file's name (`control=` at mount time).
    pub control_name: String,
}

/// A cell before formatting.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Text(String),
    Bytes(u64),
    /// A limit where 0 means none (printed `none`, or 0 with --bytes).
    Limit(u64),
    Ratio(f64),
    Count(u64),
    /// Unknown (the mount did not answer).
    Missing,
}

/// One column: its name (upper case, as `-o` takes it; lower case in JSON),
/// what it shows, and which report value it comes from.
pub(crate) struct Column {
    pub(crate) name: &'static str,
    pub(crate) help: &'static str,
    default: bool,
    value: fn(&Probe) -> Cell,
}

fn report_cell(p: &Probe, f: impl Fn(&Report) -> Option<Cell>) -> Cell {
    match &p.state {
        State::Live { report, .. } => f(report).unwrap_or(Cell::Missing),
        _ => Cell::Missing,
    }
}

fn bytes_field(p: &Probe, name: &str) -> Cell {
    report_cell(p, |r| r.get_u64(name).map(Cell::Bytes))
}

/// Every column, in default display order; the ten first.
pub(crate) const COLUMNS: &[Column] = &[
    Column {
        name: "SOURCE",
        help: "the mount's source (as mount(8) shows it)",
        default: true,
        value: |p| Cell::Text(p.entry.source.clone()),
    },
    Column {
        name: "MOUNTPOINT",
        help: "where it is mounted",
        default: true,
        value: |p| Cell::Text(p.entry.mount_point.display().to_string()),
    },
    Column {
        name: "SIZE",
        help: "size= limit of the file data (none: no limit)",
        default: true,
        value: |p| match &p.state {
            State::Live { size, .. } => size.map_or(Cell::Missing, Cell::Limit),
            _ => Cell::Missing,
        },
    },
    Column {
        name: "DATA",
        help: "uncompressed data stored (orig_data_size)",
        default: true,
        value: |p| bytes_field(p, "orig_data_size"),
    },
    Column {
        name: "COMPR",
        help: "compressed size of that data (compr_data_size)",
        default: true,
        value: |p| bytes_field(p, "compr_data_size"),
    },
    Column {
        name: "TOTAL",
        help: "memory the pool holds, overhead included (mem_used_total)",
        default: true,
        value: |p| bytes_field(p, "mem_used_total"),
    },
    Column {
        name: "RATIO",
        help: "compression ratio, DATA / COMPR (compr_ratio)",
        default: true,
        value: |p| report_cell(p, |r| r.get("compr_ratio").map(Cell::Ratio)),
    },
    Column {
        name: "LIMIT",
        help: "pool_limit= of the pool memory (none: no limit)",
        default: true,
        value: |p| report_cell(p, |r| r.get_u64("mem_limit").map(Cell::Limit)),
    },
    Column {
        name: "DISK",
        help: "pool data written back to the backing file now (bd_count)",
        default: true,
        value: |p| report_cell(p, |r| r.get_u64("bd_count").map(|n| Cell::Bytes(n * 4096))),
    },
    Column {
        name: "MOUNTED-BY",
        help: "the user who mounted it (user_id= of the mount)",
        default: true,
        value: |p| p.mounted_by(),
    },
    Column {
        name: "STATE",
        help: "live, dead (daemon gone), hung (no answer), denied (not readable by you), hidden (under another mount)",
        default: true,
        value: |p| Cell::Text(p.state.name().to_string()),
    },
    Column {
        name: "PEAK",
        help: "peak of TOTAL since mount (mem_used_max)",
        default: false,
        value: |p| bytes_field(p, "mem_used_max"),
    },
    Column {
        name: "USED",
        help: "bytes counted against SIZE, as df shows them (logical_bytes)",
        default: false,
        value: |p| bytes_field(p, "logical_bytes"),
    },
    Column {
        name: "FILES",
        help: "regular files",
        default: false,
        value: |p| report_cell(p, |r| r.get_u64("files").map(Cell::Count)),
    },
];

/// Every column's name and meaning (for the man page).
pub fn columns() -> impl Iterator<Item = (&'static str, &'static str)> {
    COLUMNS.iter().map(|c| (c.name, c.help))
}

/// The columns for `--help`, one per line.
pub fn columns_help() -> String {
    let mut o = String::from("Available output columns (-o):\n");
    for c in COLUMNS {
        let _ = writeln!(o, "  {:>10}  {}", c.name, c.help);
    }
    o.push_str("Default: the first eleven; -o +COLS adds columns to them.");
    o
}

/// How a mount answered.
#[derive(Debug, Clone)]
enum State {
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
    fn name(&self) -> &'static str {
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
    entry: MountEntry,
    state: State,
}

impl Probe {
    fn mounted_by(&self) -> Cell {
        let uid = self
            .entry
            .super_options
            .split(',')
            .find_map(|o| o.strip_prefix("user_id="))
            .and_then(|v| v.parse::<u32>().ok());
        match uid {
            Some(uid) => Cell::Text(user_name(uid).unwrap_or_else(|| uid.to_string())),
            None => Cell::Missing,
        }
    }
}

/// The login name of `uid`, if it has one.
fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: an all-zero passwd is a valid out-parameter.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; buf outlives its use.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r filled pw_name with a NUL-terminated string in buf.
    let name = unsafe { CStr::from_ptr(pw.pw_name) };
    Some(name.to_string_lossy().into_owned())
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

/// The columns `-o` names, or the defaults.
fn select_columns(spec: Option<&str>) -> Result<Vec<&'static Column>, String> {
    let defaults = || COLUMNS.iter().filter(|c| c.default).collect::<Vec<_>>();
    let Some(spec) = spec else {
        return Ok(defaults());
    };
    let (mut cols, spec) = match spec.strip_prefix('+') {
        Some(rest) => (defaults(), rest),
        None => (Vec::new(), spec),
    };
    for name in spec.split(',').filter(|n| !n.is_empty()) {
        let c = COLUMNS
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                let all: Vec<&str> = COLUMNS.iter().map(|c| c.name).collect();
                format!(
                    "unknown column `{name}`; the columns are {}",
                    all.join(", ")
                )
            })?;
        cols.push(c);
    }
    if cols.is_empty() {
        return Err("-o names no column".into());
    }
    Ok(cols)
}

/// A size as util-linux prints it: `0B`, `512B`, `4K`, `1.5M`, `12.3G`.
pub(crate) fn short_bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "K", "M", "G", "T", "P", "E"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    let s = format!("{v:.1}");
    let s = s.strip_suffix(".0").unwrap_or(&s);
    format!("{s}{}", UNITS[i])
}

fn cell_text(c: &Cell, bytes: bool) -> String {
    match c {
        Cell::Text(s) => s.clone(),
        Cell::Bytes(n) if bytes => n.to_string(),
        Cell::Bytes(n) => short_bytes(*n),
        Cell::Limit(n) if bytes => n.to_string(),
        Cell::Limit(0) => "none".into(),
        Cell::Limit(n) => short_bytes(*n),
        Cell::Ratio(r) => format!("{r:.2}"),
        Cell::Count(n) => n.to_string(),
        Cell::Missing => "-".into(),
    }
}

fn cell_json(c: &Cell, bytes: bool) -> Value {
    match c {
        Cell::Text(s) => Value::String(s.clone()),
        Cell::Bytes(n) | Cell::Limit(n) if bytes => Value::from(*n),
        Cell::Bytes(_) | Cell::Limit(_) => Value::String(cell_text(c, bytes)),
        Cell::Ratio(r) => serde_json::Number::from_f64((r * 100.0).round() / 100.0)
            .map_or(Value::Null, Value::Number),
        Cell::Count(n) => Value::from(*n),
        Cell::Missing => Value::Null,
    }
}

fn is_numeric(c: &Column) -> bool {
    !matches!(c.name, "SOURCE" | "MOUNTPOINT" | "MOUNTED-BY" | "STATE")
}

/// The table (or JSON) for `probes`.
pub(crate) fn render(probes: &[Probe], args: &ListArgs) -> Result<String, String> {
    let cols = select_columns(args.output.as_deref())?;
    if args.json {
        let rows: Vec<Value> = probes
            .iter()
            .map(|p| {
                let obj: Map<String, Value> = cols
                    .iter()
                    .map(|c| (c.name.to_lowercase(), cell_json(&(c.value)(p), args.bytes)))
                    .collect();
                Value::Object(obj)
            })
            .collect();
        let doc = serde_json::json!({ "zsfs": rows });
        return Ok(serde_json::to_string_pretty(&doc).expect("JSON of strings and numbers") + "\n");
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    if !args.noheadings && !probes.is_empty() {
        rows.push(cols.iter().map(|c| c.name.to_string()).collect());
    }
    for p in probes {
        rows.push(
            cols.iter()
                .map(|c| cell_text(&(c.value)(p), args.bytes))
                .collect(),
        );
    }
    let widths: Vec<usize> = (0..cols.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, (cell, c)) in r.iter().zip(&cols).enumerate() {
            if i > 0 {
                line.push(' ');
            }
            let pad = widths[i] - cell.chars().count();
            if is_numeric(c) {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    Ok(out)
}

/// Run `zsfs list`: the output, and the reasons of mounts in state `error`
/// (for stderr; they do not fail the listing).
pub fn list(args: &ListArgs) -> Result<(String, Vec<String>), String> {
    let probes = probe_all(&args.control_name);
    let notes = probes
        .iter()
        .filter_map(|p| match &p.state {
            State::Error(why) => Some(why.clone()),
            _ => None,
        })
        .collect();
    Ok((render(&probes, args)?, notes))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(mp: &str, opts: &str) -> MountEntry {
        MountEntry {
            dev: "0:99".into(),
            mount_point: PathBuf::from(mp),
            mount_options: "rw".into(),
            fstype: "fuse.zsfs".into(),
            source: "zsfs".into(),
            super_options: opts.into(),
        }
    }

    fn live(mp: &str) -> Probe {
        let mut r = Report::default();
        r.push("orig_data_size", 3 << 20);
        r.push("compr_data_size", 1 << 20);
        r.push("mem_used_total", 1536 << 10);
        r.push("compr_ratio", "3.00");
        r.push("mem_limit", 0);
        r.push("bd_count", 2);
        Probe {
            entry: entry(mp, "rw,user_id=0,group_id=0"),
            state: State::Live {
                report: Box::new(r),
                size: Some(1 << 30),
            },
        }
    }

    #[test]
    fn sizes_as_util_linux_prints_them() {
        assert_eq!(short_bytes(0), "0B");
        assert_eq!(short_bytes(512), "512B");
        assert_eq!(short_bytes(4096), "4K");
        assert_eq!(short_bytes(1536 << 10), "1.5M");
    }

    #[test]
    fn table_text_and_json() {
        let probes = vec![
            live("/mnt/a"),
            Probe {
                entry: entry("/mnt/dead", "rw,user_id=4000000000"),
                state: State::Dead,
            },
        ];
        let text = render(&probes, &ListArgs::default()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        let head: Vec<&str> = lines[0].split_whitespace().collect();
        assert_eq!(head[..3], ["SOURCE", "MOUNTPOINT", "SIZE"]);
        let a: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            a,
            ["zsfs", "/mnt/a", "1G", "3M", "1M", "1.5M", "3.00", "none", "8K", "root", "live"]
        );
        let d: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(d[1], "/mnt/dead");
        assert_eq!(d[9], "4000000000", "an unknown uid shows as its number");
        assert_eq!(d[10], "dead");

        let args = ListArgs {
            json: true,
            bytes: true,
            output: Some("mountpoint,DATA,state".into()),
            ..Default::default()
        };
        let v: Value = serde_json::from_str(&render(&probes, &args).unwrap()).unwrap();
        assert_eq!(v["zsfs"][0]["data"], 3 << 20);
        assert_eq!(v["zsfs"][1]["data"], Value::Null);
        assert_eq!(v["zsfs"][1]["state"], "dead");
        assert_eq!(v["zsfs"][0].as_object().unwrap().len(), 3);
    }

    #[test]
    fn columns_are_checked() {
        let err = select_columns(Some("NAME")).err().unwrap();
        assert!(err.contains("MOUNTPOINT"), "{err}");
        let plus = select_columns(Some("+peak")).unwrap();
        assert_eq!(plus.last().unwrap().name, "PEAK");
        assert_eq!(plus.len(), COLUMNS.iter().filter(|c| c.default).count() + 1);
    }
}
