//! `zsfs stats --prometheus`: the control file's fields in the Prometheus
//! text exposition format (version 0.0.4), which node_exporter's textfile
//! collector and every Prometheus-compatible agent read.
//!
//! Naming follows the Prometheus conventions: a `zsfs_` prefix; byte
//! quantities end in `_bytes` (`orig_data_size` -> `zsfs_orig_data_bytes`);
//! counters (fields of [`Kind::Counter`], which only grow) end in `_total`
//! and have `TYPE counter`; levels are gauges and never end in `_total`
//! (`mem_used_total` -> `zsfs_mem_used_bytes`). Values keep the control
//! file's units (zram's 4 KiB pages stay pages), so a metric and its field
//! mean the same number. Each sample has the labels `mountpoint` and
//! `source`; `zsfs_up` is 1 for a mount that answered and 0 for one that did
//! not (a dead daemon), which then has no other samples.
//!
//! A field this build does not know (a newer daemon's) is exported as an
//! `untyped` metric under its own name, so nothing the file says is lost.

use super::report::{field, FieldDoc, Kind, Report, Unit};
use crate::sys::mountinfo::MountEntry;
use std::fmt::Write as _;

/// The metric name of a control-file field.
pub fn metric_name(f: &FieldDoc) -> String {
    let mut base = f.name.to_string();
    if f.unit == Unit::Bytes {
        for suffix in ["_total", "_bytes", "_size"] {
            if let Some(stem) = base.strip_suffix(suffix) {
                // block_size is a size, not the size of something called
                // "block"; only `_data_size` loses its `_size`.
                if suffix != "_size" || stem.ends_with("_data") {
                    base = stem.to_string();
                }
                break;
            }
        }
        base.push_str("_bytes");
    }
    if f.kind == Kind::Counter {
        base.push_str("_total");
    }
    format!("zsfs_{base}")
}

/// What the control file of one mount said: its report, or `None` if it
/// could not be read (the mount is then `zsfs_up 0`).
pub(crate) struct Scraped {
    pub(crate) entry: MountEntry,
    pub(crate) report: Option<Report>,
}

/// A label value escaped as the format requires: `\`, `"` and newline.
pub(crate) fn escape_label(v: &str) -> String {
    let mut o = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o
}

/// HELP text escaped as the format requires: `\` and newline.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A metric name made of the characters the format allows.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The exposition text for `mounts`. Metrics are grouped by name (the
/// format wants every sample of a metric under its one HELP/TYPE), mounts in
/// the order given.
pub(crate) fn render(mounts: &[Scraped]) -> String {
    let labels: Vec<String> = mounts
        .iter()
        .map(|m| {
            format!(
                "{{mountpoint=\"{}\",source=\"{}\"}}",
                escape_label(&m.entry.mount_point.to_string_lossy()),
                escape_label(&m.entry.source)
            )
        })
        .collect();
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# HELP zsfs_up Whether the mount's control file could be read (0: daemon dead or mount unreadable)."
    );
    let _ = writeln!(o, "# TYPE zsfs_up gauge");
    for (m, l) in mounts.iter().zip(&labels) {
        let _ = writeln!(o, "zsfs_up{l} {}", u8::from(m.report.is_some()));
    }
    // Field names in first-seen order over all mounts, so fields of a newer
    // daemon appear too.
    let mut names: Vec<&str> = Vec::new();
    for r in mounts.iter().filter_map(|m| m.report.as_ref()) {
        for (n, _) in &r.fields {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
    }
    for name in names {
        let (metric, kind, help) = match field(name) {
            Some(f) => (
                metric_name(f),
                match f.kind {
                    Kind::Counter => "counter",
                    Kind::Gauge => "gauge",
                },
                f.doc.to_string(),
            ),
            None => (
                format!("zsfs_{}", sanitize(name)),
                "untyped",
                format!("Control-file field `{name}` (not known to this zsfs build)."),
            ),
        };
        let _ = writeln!(o, "# HELP {metric} {}", escape_help(&help));
        let _ = writeln!(o, "# TYPE {metric} {kind}");
        for (m, l) in mounts.iter().zip(&labels) {
            let Some(r) = &m.report else { continue };
            // A value that is not a number cannot be a sample; skip it.
            if let Some(v) = r.get(name) {
                let _ = writeln!(o, "{metric}{l} {v}");
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::super::report::FIELDS;
    use super::*;

    #[test]
    fn names_follow_the_conventions() {
        let name = |n| metric_name(field(n).unwrap());
        assert_eq!(name("orig_data_size"), "zsfs_orig_data_bytes");
        assert_eq!(name("mem_used_total"), "zsfs_mem_used_bytes");
        assert_eq!(name("block_size"), "zsfs_block_size_bytes");
        assert_eq!(name("dedup_index_bytes"), "zsfs_dedup_index_bytes");
        assert_eq!(name("bd_writes"), "zsfs_bd_writes_total");
        assert_eq!(name("bd_count"), "zsfs_bd_count");
        let mut seen = Vec::new();
        for f in FIELDS {
            let m = metric_name(f);
            assert_eq!(m.ends_with("_total"), f.kind == Kind::Counter, "{m}");
            assert_eq!(m.contains("_bytes"), f.unit == Unit::Bytes, "{m}");
            assert!(!seen.contains(&m), "two fields are both {m}");
            seen.push(m);
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
