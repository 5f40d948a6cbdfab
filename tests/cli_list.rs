//! `zsfs list`, `zsfs stats` for people and `zsfs stats --prometheus`, on
//! real mounts (issue 15).
//!
//! Other zsfs mounts may exist on the machine while these run (other test
//! binaries, a developer's own): every check looks only at the lines of the
//! mounts the test made.

mod common;
use common::*;

use std::collections::HashMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn zsfs(args: &[&str]) -> String {
    let out = Command::new(zsfs_bin()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "zsfs {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The errno of statvfs(path), 0 if it works.
fn statvfs_errno(path: &Path) -> i32 {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: zeroed statvfs is a valid out-parameter; c is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap()
    }
}

/// Lazily detaches a mount on drop, so the dead mount a test makes never
/// outlives it, whatever fails first.
struct DetachOnDrop(PathBuf);

impl Drop for DetachOnDrop {
    fn drop(&mut self) {
        if mount_at(&self.0).is_some_and(|m| m.fstype.starts_with("fuse")) {
            let c = CString::new(self.0.as_os_str().as_bytes()).unwrap();
            // SAFETY: c is a valid C string.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// Children of `pid` named `comm`, from /proc.
fn children_named(pid: u32, comm: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let name = head.split_once('(').map_or("", |(_, n)| n);
        let mut f = rest.split_whitespace();
        let state = f.next().unwrap_or("");
        let ppid: u32 = f.next().and_then(|x| x.parse().ok()).unwrap_or(0);
        if ppid == pid && name == comm && state != "Z" {
            out.push(p);
        }
    }
    out
}

/// Make `m` a dead mount: kill its watcher (which would otherwise unmount
/// it) and then its daemon, and wait until the kernel says "transport
/// endpoint is not connected".
fn kill_leaving_dead_mount(m: &MountGuard) {
    let daemon = m.pid().expect("daemon running");
    let mut watchers = Vec::new();
    assert!(
        wait_until(Duration::from_secs(5), || {
            watchers = children_named(daemon, "zsfs-watch");
            !watchers.is_empty()
        }),
        "no zsfs-watch child of {daemon}"
    );
    for w in &watchers {
        // SAFETY: killing a process this test started (through zsfs -f).
        unsafe { libc::kill(*w as i32, libc::SIGKILL) };
    }
    assert!(wait_until(Duration::from_secs(5), || children_named(
        daemon,
        "zsfs-watch"
    )
    .is_empty()));
    // SAFETY: as above.
    unsafe { libc::kill(daemon as i32, libc::SIGKILL) };
    assert!(
        wait_until(Duration::from_secs(10), || statvfs_errno(m.path())
            == libc::ENOTCONN),
        "{} did not become a dead mount",
        m.path().display()
    );
}

/// The row of `zsfs list` for `mnt`, split on whitespace.
fn row<'a>(text: &'a str, mnt: &Path) -> Vec<&'a str> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|w| w.get(1) == Some(&s(mnt)))
        .unwrap_or_else(|| panic!("no row for {} in\n{text}", mnt.display()))
}

#[test]
fn list_shows_two_mounts_and_a_dead_one_in_text_and_json() {
    let a = MountGuard::new("size=64m,pool_limit=32m");
    let b = MountGuard::new("size=0");
    let dead = MountGuard::new("size=16m");
    let _detach = DetachOnDrop(dead.path().to_path_buf());
    std::fs::write(
        a.path().join("f"),
        common::data::half_compressible(&mut common::data::Rng::new(1), 1 << 20),
    )
    .unwrap();
    kill_leaving_dead_mount(&dead);

    let text = zsfs(&["list"]);
    let head: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        head,
        [
            "SOURCE",
            "MOUNTPOINT",
            "SIZE",
            "DATA",
            "COMPR",
            "TOTAL",
            "RATIO",
            "LIMIT",
            "DISK",
            "MOUNTED-BY",
            "STATE"
        ]
    );
    let ra = row(&text, a.path());
    assert_eq!(ra[0], "zsfs");
    assert_eq!(ra[2], "64M", "SIZE of size=64m:\n{text}");
    assert_ne!(ra[3], "0B", "DATA of a mount holding 1 MiB:\n{text}");
    assert_eq!(ra[7], "32M", "LIMIT of pool_limit=32m:\n{text}");
    assert_eq!(ra[9..], ["root", "live"]);
    let rb = row(&text, b.path());
    assert_eq!(rb[2], "none", "size=0 is no limit:\n{text}");
    assert_eq!(rb[7], "none");
    assert_eq!(rb[10], "live");
    let rd = row(&text, dead.path());
    assert_eq!(rd[2..9], ["-"; 7], "a dead mount has no figures:\n{text}");
    assert_eq!(rd[9..], ["root", "dead"]);

    // `zsfs` alone is `zsfs list`.
    let alone = zsfs(&[]);
    assert_eq!(row(&alone, dead.path())[10], "dead");

    let json: serde_json::Value = serde_json::from_str(&zsfs(&["list", "--json"])).unwrap();
    let rows = json["zsfs"].as_array().expect("{\"zsfs\": [...]}");
    let by_mp = |p: &Path| {
        rows.iter()
            .find(|r| r["mountpoint"] == s(p))
            .unwrap_or_else(|| panic!("{} not in {json}", p.display()))
    };
    assert_eq!(by_mp(a.path())["size"], "64M");
    assert_eq!(by_mp(a.path())["mounted-by"], "root");
    assert_eq!(by_mp(dead.path())["state"], "dead");
    assert!(by_mp(dead.path())["data"].is_null());
    let keys: Vec<&String> = by_mp(b.path()).as_object().unwrap().keys().collect();
    assert_eq!(keys[0], "source", "columns in display order");
    assert_eq!(keys.len(), 11);

    let json: serde_json::Value = serde_json::from_str(&zsfs(&[
        "list",
        "--json",
        "--bytes",
        "-o",
        "MOUNTPOINT,data,size,state",
    ]))
    .unwrap();
    let rows = json["zsfs"].as_array().unwrap();
    let ja = rows
        .iter()
        .find(|r| r["mountpoint"] == s(a.path()))
        .unwrap();
    assert_eq!(ja.as_object().unwrap().len(), 4);
    assert_eq!(ja["size"], 64 << 20);
    assert_eq!(
        ja["data"].as_u64(),
        Some(control_counter(a.path(), "orig_data_size"))
    );

    let bytes = zsfs(&["list", "--bytes", "--noheadings", "-o", "mountpoint,size"]);
    // Columns are padded to the widest value of any mount listed (other
    // tests' mounts too), so compare the words of the line.
    let size = (64u64 << 20).to_string();
    assert!(
        bytes
            .lines()
            .any(|l| l.split_whitespace().eq([s(a.path()), size.as_str()])),
        "{bytes}"
    );
    assert!(!bytes.contains("MOUNTPOINT"));

    let bad = Command::new(zsfs_bin())
        .args(["list", "-o", "NAME"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown column `NAME`"));
}

/// Fill a mount with files of many sizes and compressibilities, so many
/// size classes are in use.
fn fill_many_classes(mnt: &Path) {
    for i in 0..120usize {
        // Random bytes with a run of zeros: each block compresses to a
        // different size, landing in a different class.
        let mut d = common::data::noise(i as u64 + 1, 4096);
        let zeros = (i * 31) % 4000;
        d[..zeros].fill(0);
        std::fs::write(mnt.join(format!("f{i}")), &d).unwrap();
    }
}

#[test]
fn stats_fits_a_screen_by_default_and_classes_shows_the_table() {
    let m = MountGuard::new("size=64m");
    fill_many_classes(m.path());
    let out = zsfs(&["stats", s(m.path())]);
    let n = out.lines().count();
    assert!(n <= 25, "zsfs stats printed {n} lines:\n{out}");
    let fullest = out
        .lines()
        .find(|l| l.contains("fullest"))
        .unwrap_or_else(|| panic!("no fullest-classes line:\n{out}"));
    assert_eq!(
        fullest.matches("% used)").count(),
        3,
        "three classes named: {fullest}"
    );
    let table = zsfs(&["stats", "--classes", s(m.path())]);
    assert!(
        table.lines().count() > 25,
        "the mount uses many classes, so the table is long:\n{table}"
    );
    assert!(table.contains("pg/zsp"));
}

#[test]
fn prometheus_output_parses_and_has_every_control_file_field() {
    use prometheus_parse::{Scrape, Value};
    let a = MountGuard::new("size=64m,pool_limit=2m");
    let b = MountGuard::new("size=16m");
    std::fs::write(
        a.path().join("f"),
        common::data::half_compressible(&mut common::data::Rng::new(2), 8 << 20),
    )
    .unwrap();
    let text = zsfs(&["stats", "--prometheus", s(a.path()), s(b.path())]);
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();

    for m in [&a, &b] {
        let mp = s(m.path());
        let mine: HashMap<&str, &prometheus_parse::Sample> = scrape
            .samples
            .iter()
            .filter(|x| x.labels.get("mountpoint") == Some(mp))
            .map(|x| (x.metric.as_str(), x))
            .collect();
        assert!(
            matches!(mine["zsfs_up"].value, Value::Gauge(v) if v == 1.0),
            "{text}"
        );
        assert_eq!(mine["zsfs_up"].labels.get("source"), Some("zsfs"));
        // Every field the control file prints right now, by the name the
        // exposition gives it, with the same value and the right type.
        let report = counters(m.path());
        assert!(report.fields.len() >= zsfs::control::report::FIELDS.len());
        for (name, _) in &report.fields {
            let doc = zsfs::control::report::field(name)
                .unwrap_or_else(|| panic!("{name} is not documented in FIELDS"));
            let metric = zsfs::control::prometheus::metric_name(doc);
            let sample = mine
                .get(metric.as_str())
                .unwrap_or_else(|| panic!("no {metric} for {mp} in\n{text}"));
            let v = match (doc.kind, &sample.value) {
                (zsfs::control::Kind::Counter, Value::Counter(v)) => *v,
                (zsfs::control::Kind::Gauge, Value::Gauge(v)) => *v,
                (k, v) => panic!("{metric}: field kind {k:?} but sample {v:?}"),
            };
            let want = report.get(name).unwrap();
            // Fields may move between the two reads; compare the stable ones.
            if !name.starts_with("mem_") && name != "shrinker_runs" && name != "second_chance" {
                assert_eq!(v, want, "{metric} for {mp}");
            }
        }
    }
    // HELP and TYPE lines for each metric, once.
    let helps = text.lines().filter(|l| l.starts_with("# HELP ")).count();
    let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
    assert_eq!(helps, types);
    assert_eq!(helps, zsfs::control::report::FIELDS.len() + 1, "{text}");
    assert!(
        scrape
            .samples
            .iter()
            .any(|x| x.metric == "zsfs_bd_writes_total"
                && x.labels.get("mountpoint") == Some(s(a.path()))
                && matches!(x.value, Value::Counter(v) if v > 0.0)),
        "8 MiB under pool_limit=2m wrote back:\n{text}"
    );

    // No mount named: every zsfs mount, ours among them.
    let all = zsfs(&["stats", "--prometheus"]);
    assert!(all.contains(&format!("zsfs_up{{mountpoint=\"{}\"", s(b.path()))));

    let bad = Command::new(zsfs_bin())
        .args(["stats", "--prometheus", "/proc"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a zsfs mountpoint"));
}
