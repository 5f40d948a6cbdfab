//! `zsfs stats` and `zsfs ctl`: the control file for people and scripts.
//!
//! Both only open the control file (or, for one file or tree, read the
//! `zsfs.usage` virtual xattr), so they work as any user who can read the
//! mount, and `ctl` as any user the daemon lets write (root and the mounter).

use super::command::Command;
use super::report::{field, ClassRow, Report, Unit, FULLNESS_LABELS};
use std::fmt::Write as _;
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Name of the virtual xattr that gives one file's or tree's figures.
pub const USAGE_XATTR: &str = "zsfs.usage";

/// What `zsfs stats` was asked for.
#[derive(Debug, Clone, Default)]
pub struct StatsArgs {
    /// The mount's root (whole-mount stats) or a file/directory in it; for
    /// `--prometheus`, any number of mountpoints (none: every zsfs mount).
    pub paths: Vec<PathBuf>,
    pub json: bool,
    /// The whole size-class table instead of its three fullest classes.
    pub classes: bool,
    /// The Prometheus text format, for node_exporter and other scrapers.
    pub prometheus: bool,
    /// Refresh every this many seconds until interrupted.
    pub watch: Option<f64>,
    /// The control file's name (`control=` at mount time).
    pub control_name: String,
}

/// Run `zsfs stats`.
pub fn stats(args: &StatsArgs) -> Result<(), String> {
    if args.prometheus {
        print!("{}", prometheus(&args.paths, &args.control_name)?);
        return Ok(());
    }
    let path = match args.paths.as_slice() {
        [p] => p,
        [] => return Err("name a zsfs mount (or a file in one); `zsfs list` shows them".into()),
        _ => return Err("one path at a time (only --prometheus takes several mounts)".into()),
    };
    let Some(secs) = args.watch else {
        print!("{}", stats_once(args, path, None)?.0);
        return Ok(());
    };
    if !(secs > 0.0 && secs.is_finite()) {
        return Err(format!(
            "--watch takes a positive number of seconds, not {secs}"
        ));
    }
    let mut last: Option<(Report, Instant)> = None;
    loop {
        let (body, now) = stats_once(args, path, last.as_ref())?;
        last = now;
        // Clear the screen and home the cursor, as watch(1) does.
        print!(
            "\x1b[H\x1b[2JEvery {secs}s: zsfs stats {}\n\n{body}",
            path.display()
        );
        let _ = std::io::stdout().flush();
        std::thread::sleep(Duration::from_secs_f64(secs));
    }
}

/// One refresh: the text, and the whole-mount report with its time (for
/// the rates of the next refresh under `--watch`).
fn stats_once(
    args: &StatsArgs,
    path: &Path,
    last: Option<&(Report, Instant)>,
) -> Result<(String, Option<(Report, Instant)>), String> {
    let control = path.join(&args.control_name);
    if path.is_dir() && control.exists() {
        let report = read_report(&control)?;
        let now = Instant::now();
        let text = if args.json {
            report_json(&report) + "\n"
        } else {
            let mut t = human(&report, path, args.classes);
            if let Some((prev, then)) = last {
                t.push_str(&rates(prev, &report, now.duration_since(*then)));
            }
            t
        };
        Ok((text, Some((report, now))))
    } else {
        let usage = read_usage(path)?;
        Ok((
            if args.json {
                report_json(&usage) + "\n"
            } else {
                human_usage(&usage, path)
            },
            None,
        ))
    }
}

/// `zsfs stats --prometheus [MOUNT...]`: every named mount (none: every
/// zsfs mount), a dead one as `zsfs_up 0`.
pub fn prometheus(paths: &[PathBuf], control_name: &str) -> Result<String, String> {
    let scraped: Vec<super::prometheus::Scraped> = super::probe::mounts_named(paths, control_name)?
        .into_iter()
        .map(|(entry, report)| super::prometheus::Scraped { entry, report })
        .collect();
    Ok(super::prometheus::render(&scraped))
}

/// Counters shown as rates under `--watch`: whichever of these the control
/// file has (a daemon without recompression has no such counter, and then
/// no such rate).
const RATE_FIELDS: &[(&str, &str)] = &[
    ("bd_writes", "written back"),
    ("bd_reads", "read back"),
    ("recompressed_pages", "recompressed"),
    ("recompress_pages", "recompressed"),
    ("recompressed_bytes", "recompressed"),
];

/// One line of rates between two reports `dt` apart.
fn rates(prev: &Report, now: &Report, dt: Duration) -> String {
    let secs = dt.as_secs_f64();
    if secs <= 0.0 {
        return String::new();
    }
    let block = now.get("block_size").unwrap_or(4096.0);
    let parts: Vec<String> = RATE_FIELDS
        .iter()
        .filter_map(|(name, label)| {
            let (a, b) = (prev.get(name)?, now.get(name)?);
            let per = match field(name).map(|f| f.unit) {
                Some(Unit::Bytes) => 1.0,
                Some(Unit::Blocks) => block,
                Some(Unit::Count) | Some(Unit::Ratio) => return None,
                // zram counts in 4 KiB pages; unknown counters are assumed to.
                Some(Unit::Pages) | None => 4096.0,
            };
            let rate = ((b - a).max(0.0) * per) / secs;
            Some(format!("{}/s {label}", human_bytes(rate)))
        })
        .collect();
    if parts.is_empty() {
        return String::new();
    }
    format!(
        "  rates        {} (over the last {secs:.1} s)\n",
        parts.join(", ")
    )
}

/// Read and parse a control file.
pub fn read_report(control: &Path) -> Result<Report, String> {
    let text = std::fs::read_to_string(control).map_err(|e| {
        format!(
            "cannot read {}: {e} (is this the root of a zsfs mount? mounted with control=NAME? pass --control NAME)",
            control.display()
        )
    })?;
    Report::parse(&text).map_err(|e| format!("{}: {e}", control.display()))
}

/// A file's or tree's figures from the `zsfs.usage` virtual xattr.
fn read_usage(path: &Path) -> Result<Report, String> {
    let buf =
        crate::sys::xattr::get(path, USAGE_XATTR).map_err(|err| match err.raw_os_error() {
            Some(libc::ENODATA) | Some(libc::EOPNOTSUPP) => format!(
                "{} is not in a zsfs mount (and is not the root of one), or its mount \
                 has xattr=off, which turns off the zsfs.usage figures too",
                path.display()
            ),
            _ => format!("{}: {err}", path.display()),
        })?;
    let text = String::from_utf8_lossy(&buf);
    Report::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Run `zsfs ctl MOUNTPOINT COMMAND...`.
pub fn ctl(mountpoint: &Path, control_name: &str, words: &[String]) -> Result<String, String> {
    let line = words.join(" ");
    // Parse here first so the user sees the reason, not just EINVAL.
    let cmd = Command::parse(&line).map_err(|e| e.to_string())?;
    let control = mountpoint.join(control_name);
    let before = read_report(&control).ok();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&control)
        .map_err(|e| write_error(&control, e))?;
    file.write_all(format!("{cmd}\n").as_bytes())
        .map_err(|e| write_error(&control, e))?;
    drop(file);
    let mut out = format!("{cmd}: done\n");
    if let (Some(before), Ok(after)) = (before, read_report(&control)) {
        for name in [
            "mem_used_total",
            "mem_limit",
            "mem_used_max",
            "bd_count",
            "pages_compacted",
            "compr_data_size",
            "recomp_pages",
            "recomp_data_size",
        ] {
            let (Some(a), Some(b)) = (before.get(name), after.get(name)) else {
                continue;
            };
            if a != b {
                let _ = writeln!(
                    out,
                    "  {name}: {} -> {}",
                    fmt_field(name, a),
                    fmt_field(name, b)
                );
            }
        }
    }
    Ok(out)
}

fn write_error(control: &Path, e: std::io::Error) -> String {
    match e.kind() {
        ErrorKind::PermissionDenied => format!(
            "{}: permission denied: only root and the user who mounted may send commands",
            control.display()
        ),
        ErrorKind::InvalidInput => format!(
            "{}: the daemon rejected the command (see its log for the reason)",
            control.display()
        ),
        _ => format!("{}: {e}", control.display()),
    }
}

/// Bytes in binary units, one decimal: `412.3 MiB`.
pub fn human_bytes(n: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n;
    let mut i = 0;
    while v.abs() >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

fn fmt_field(name: &str, v: f64) -> String {
    match field(name).map(|f| f.unit) {
        Some(Unit::Bytes) => human_bytes(v),
        Some(Unit::Pages) => format!("{v:.0} pages ({})", human_bytes(v * 4096.0)),
        Some(Unit::Ratio) => format!("{v:.2}"),
        _ => format!("{v:.0}"),
    }
}

/// The whole-mount view for people: the summary, then either the three
/// fullest size classes (one line, so the default fits a screen) or, with
/// `classes`, the whole table.
fn human(r: &Report, mount: &Path, classes: bool) -> String {
    let g = |n: &str| r.get(n).unwrap_or(0.0);
    let b = |n: &str| human_bytes(g(n));
    let mut o = String::new();
    let _ = writeln!(
        o,
        "zsfs at {} (block size {})",
        mount.display(),
        b("block_size")
    );
    let _ = writeln!(
        o,
        "  files        {:.0} files, {:.0} directories, {} in files",
        g("files"),
        g("directories"),
        b("logical_bytes")
    );
    let _ = writeln!(
        o,
        "  stored       {} of data in {} compressed (ratio {:.2})",
        b("orig_data_size"),
        b("compr_data_size"),
        g("compr_ratio")
    );
    let limit = if g("mem_limit") > 0.0 {
        b("mem_limit")
    } else {
        "none".into()
    };
    let _ = writeln!(
        o,
        "  memory       {} used, peak {}, limit {}",
        b("mem_used_total"),
        b("mem_used_max"),
        limit
    );
    let saved = g("mem_saved");
    let pct = if g("orig_data_size") > 0.0 {
        100.0 * saved / g("orig_data_size")
    } else {
        0.0
    };
    let _ = writeln!(
        o,
        "  saved        {} ({pct:.0}% of the data's size)",
        human_bytes(saved)
    );
    let _ = writeln!(
        o,
        "  blocks       {:.0} same-filled, {:.0} stored raw (incompressible)",
        g("same_pages"),
        g("huge_pages")
    );
    // Per codec: new writes are LZ4 (or raw), idle data zstd units. A
    // daemon from before recompression has no recomp_* fields.
    if let Some(zstd_data) = r.get("recomp_orig_size") {
        let same = g("same_pages") * g("block_size");
        let lz4_data = (g("orig_data_size") - same - zstd_data).max(0.0);
        let lz4_stored = (g("compr_data_size") - g("recomp_data_size")).max(0.0);
        let ratio = |d: f64, c: f64| if c > 0.0 { d / c } else { 0.0 };
        let _ = writeln!(
            o,
            "  codecs       lz4/raw {} in {} ({:.2}), zstd {} in {} ({:.2}); {:.0} idle at the last pass",
            human_bytes(lz4_data),
            human_bytes(lz4_stored),
            ratio(lz4_data, lz4_stored),
            human_bytes(zstd_data),
            b("recomp_data_size"),
            ratio(zstd_data, g("recomp_data_size")),
            g("idle_pages")
        );
    }
    // A daemon from before dedup has no such fields: say nothing then.
    if r.get("dedup_index_bytes").is_some_and(|n| n > 0.0) {
        let _ = writeln!(
            o,
            "  dedup        {:.0} blocks share another's object, {} not stored; index {}",
            g("dedup_pages"),
            b("dedup_data_size"),
            b("dedup_index_bytes")
        );
    }
    let _ = writeln!(
        o,
        "  backing      {} on disk; {} written, {} read back",
        human_bytes(g("bd_count") * 4096.0),
        human_bytes(g("bd_writes") * 4096.0),
        human_bytes(g("bd_reads") * 4096.0)
    );
    let _ = writeln!(
        o,
        "  shrinker     {:.0} runs, {:.0} second chances, {:.0} limit hits, {:.0} checksum failures",
        g("shrinker_runs"),
        g("second_chance"),
        g("pool_limit_hit"),
        g("checksum_failures")
    );
    let used: Vec<_> = r
        .classes
        .iter()
        .filter(|c| c.zspages > 0 || c.obj_used > 0)
        .collect();
    if !classes {
        o.push_str(&fullest_classes(&used));
        return o;
    }
    if !used.is_empty() {
        let _ = writeln!(o, "\n  size classes in use:");
        let _ = writeln!(
            o,
            "  {:>5} {:>6} {:>10} {:>10} {:>8} {:>8} {:>6} {:>6}  fullest groups",
            "class", "size", "objects", "allocated", "zspages", "pages", "pg/zsp", "used%"
        );
        for c in used {
            let pct = (100 * c.obj_used).checked_div(c.obj_allocated).unwrap_or(0);
            let groups: Vec<String> = c
                .fullness
                .iter()
                .zip(FULLNESS_LABELS)
                .filter(|(n, _)| **n > 0)
                .map(|(n, l)| format!("{l}:{n}"))
                .collect();
            let _ = writeln!(
                o,
                "  {:>5} {:>6} {:>10} {:>10} {:>8} {:>8} {:>6} {:>5}%  {}",
                c.class,
                c.size,
                c.obj_used,
                c.obj_allocated,
                c.zspages,
                c.pages_used,
                c.pages_per_zspage,
                pct,
                groups.join(" ")
            );
        }
    }
    o
}

/// One line naming the three classes holding the most pages, or nothing
/// when the pool is empty.
fn fullest_classes(used: &[&ClassRow]) -> String {
    let mut by_pages: Vec<&ClassRow> = used.iter().copied().filter(|c| c.pages_used > 0).collect();
    if by_pages.is_empty() {
        return String::new();
    }
    by_pages.sort_by(|a, b| b.pages_used.cmp(&a.pages_used).then(a.class.cmp(&b.class)));
    let names: Vec<String> = by_pages
        .iter()
        .take(3)
        .map(|c| {
            let pct = (100 * c.obj_used).checked_div(c.obj_allocated).unwrap_or(0);
            format!(
                "{} B ({}, {pct}% used)",
                c.size,
                human_bytes((c.pages_used * 4096) as f64)
            )
        })
        .collect();
    format!(
        "  classes      fullest {}; {} in use (--classes)\n",
        names.join(", "),
        used.len()
    )
}

fn human_usage(r: &Report, path: &Path) -> String {
    let g = |n: &str| r.get(n).unwrap_or(0.0);
    let ratio = if g("stored_bytes") > 0.0 {
        g("logical_bytes") / g("stored_bytes")
    } else {
        0.0
    };
    format!(
        "{}: {:.0} files, {} logical, {} stored (ratio {ratio:.2})\n",
        path.display(),
        g("files"),
        human_bytes(g("logical_bytes")),
        human_bytes(g("stored_bytes")),
    )
}

/// A report as one JSON object: every field by name (numbers where the
/// value is one), and `classes` as an array of objects.
pub fn report_json(r: &Report) -> String {
    use serde_json::{Map, Number, Value};
    let mut obj = Map::new();
    for (name, value) in &r.fields {
        let v = if let Ok(n) = value.parse::<u64>() {
            Value::Number(n.into())
        } else if let Some(n) = value.parse::<f64>().ok().and_then(Number::from_f64) {
            Value::Number(n)
        } else {
            Value::String(value.clone())
        };
        obj.insert(name.clone(), v);
    }
    if !r.classes.is_empty() {
        let classes = r
            .classes
            .iter()
            .map(|c| {
                let fullness: Map<String, Value> = FULLNESS_LABELS
                    .iter()
                    .zip(c.fullness)
                    .map(|(l, n)| (l.to_string(), n.into()))
                    .collect();
                serde_json::json!({
                    "class": c.class, "size": c.size, "fullness": fullness,
                    "obj_allocated": c.obj_allocated, "obj_used": c.obj_used,
                    "zspages": c.zspages, "pages_used": c.pages_used,
                    "pages_per_zspage": c.pages_per_zspage,
                })
            })
            .collect();
        obj.insert("classes".into(), Value::Array(classes));
    }
    Value::Object(obj).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(0.0), "0 B");
        assert_eq!(human_bytes(1023.0), "1023 B");
        assert_eq!(human_bytes(1536.0), "1.5 KiB");
        assert_eq!(human_bytes(3.0 * 1024.0 * 1024.0 * 1024.0), "3.0 GiB");
    }

    #[test]
    fn watch_rates_only_for_counters_present() {
        let mut a = Report::default();
        a.push("bd_writes", 0);
        a.push("bd_reads", 10);
        let mut b = Report::default();
        b.push("bd_writes", 512); // 2 MiB in 4 KiB pages
        b.push("bd_reads", 10);
        let line = rates(&a, &b, Duration::from_secs(2));
        assert!(line.contains("1.0 MiB/s written back"), "{line}");
        assert!(line.contains("0 B/s read back"), "{line}");
        assert!(!line.contains("recompressed"), "no such counter: {line}");
        b.push("recompressed_pages", 256);
        a.push("recompressed_pages", 0);
        assert!(rates(&a, &b, Duration::from_secs(1)).contains("1.0 MiB/s recompressed"));
    }

    #[test]
    fn json_keeps_every_number() {
        let mut r = Report::default();
        r.push("orig_data_size", 8192);
        r.push("compr_ratio", "2.50");
        r.classes.push(Default::default());
        let v: serde_json::Value = serde_json::from_str(&report_json(&r)).unwrap();
        assert_eq!(v["orig_data_size"], 8192);
        assert_eq!(v["compr_ratio"], 2.5);
        assert_eq!(v["classes"][0]["fullness"]["99%"], 0);
    }
}
