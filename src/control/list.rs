//! `zsfs list` (and `zsfs` alone): every zsfs mount on the machine, one line
//! each, as `zramctl` lists zram devices.
//!
//! The mounts and their figures come from `probe.rs`. A mount that cannot
//! answer is still listed, with its STATE saying why (dead, hung, denied,
//! hidden), and never stops the listing. This module is the table: its
//! columns, their cells, and the text and JSON renderings.

use super::probe::{probe_all, Probe, State};
use super::report::Report;
use serde_json::{Map, Value};
use std::fmt::Write as _;

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

impl Probe {
    fn mounted_by(&self) -> Cell {
        let uid = self
            .entry
            .super_options
            .split(',')
            .find_map(|o| o.strip_prefix("user_id="))
            .and_then(|v| v.parse::<u32>().ok());
        match uid {
            Some(uid) => {
                Cell::Text(crate::sys::users::user_name(uid).unwrap_or_else(|| uid.to_string()))
            }
            None => Cell::Missing,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::mountinfo::MountEntry;
    use std::path::PathBuf;

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
