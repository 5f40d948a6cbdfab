//! The control file and `zsfs stats` / `zsfs ctl` on a real mount: the
//! counters add up to what was written, commands act, garbage changes
//! nothing, and only root and the mounter may write.

mod common;
use common::data::{noise, Rng};
use common::*;

use std::fs;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use zsfs::control::Report;

fn report(mnt: &Path) -> Report {
    Report::parse(&fs::read_to_string(mnt.join(".zsfs")).unwrap()).unwrap()
}

fn get(r: &Report, name: &str) -> u64 {
    r.get_u64(name).unwrap_or_else(|| panic!("{name} missing"))
}

/// Text-like block: compresses, but not to nothing, and differs per seed.
fn texty(seed: u64, len: usize) -> Vec<u8> {
    let words = [
        &b"pool "[..],
        b"zspage ",
        b"handle ",
        b"class ",
        b"lru ",
        b"shrinker ",
    ];
    let mut out = Vec::with_capacity(len);
    let mut rng = Rng::new(seed);
    while out.len() < len {
        let x = rng.next();
        out.extend_from_slice(words[(x % 6) as usize]);
        if x % 11 == 0 {
            out.extend_from_slice(format!("{x} ").as_bytes());
        }
    }
    out.truncate(len);
    out
}

fn write_file(path: &Path, data: &[u8]) {
    let mut f = fs::File::create(path).unwrap();
    f.write_all(data).unwrap();
    f.sync_all().unwrap();
}

fn ctl(mnt: &Path, words: &[&str]) -> std::process::Output {
    Command::new(zsfs_bin())
        .arg("ctl")
        .arg(mnt)
        .args(words)
        .output()
        .unwrap()
}

#[test]
fn stats_add_up_to_what_was_written() {
    let m = MountGuard::new("backing=none");
    let mnt = m.path();
    const B: usize = 4096;
    write_file(&mnt.join("zeros"), &vec![0u8; 8 * B]);
    write_file(&mnt.join("noise"), &noise(1, 5 * B));
    let text = texty(2, 6 * B);
    write_file(&mnt.join("text"), &text);
    let r = report(mnt);
    assert_eq!(get(&r, "same_pages"), 8, "{r:?}");
    assert_eq!(get(&r, "huge_pages"), 5);
    assert_eq!(get(&r, "orig_data_size"), 19 * B as u64);
    // compr_data_size is exactly the raw blocks plus what LZ4 makes of each
    // text block: the store uses lz4_flex's block format, as we do here.
    let lz4: usize = text
        .chunks(B)
        .map(|c| lz4_flex::block::compress(c).len())
        .sum();
    assert_eq!(get(&r, "compr_data_size"), (5 * B + lz4) as u64);
    assert_eq!(get(&r, "files"), 3);
    assert!(get(&r, "mem_used_total") >= get(&r, "compr_data_size") - 4096);
    // The classes table accounts for every pool object.
    let objs: u64 = r.classes.iter().map(|c| c.obj_used).sum();
    assert_eq!(objs, 5 + 6);

    // Per-file figures through `zsfs stats FILE`.
    let out = Command::new(zsfs_bin())
        .args(["stats", "--json"])
        .arg(mnt.join("text"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["logical_bytes"], 6 * B as u64);
    assert_eq!(v["stored_bytes"], lz4 as u64);
    let out = Command::new(zsfs_bin())
        .arg("stats")
        .arg(mnt)
        .output()
        .unwrap();
    let human = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && human.contains("ratio"), "{human}");
}

#[test]
fn json_equals_the_control_file() {
    let m = MountGuard::new("backing=none");
    let mnt = m.path();
    for i in 0..20 {
        write_file(
            &mnt.join(format!("f{i}")),
            &texty(i, 3000 + 700 * i as usize),
        );
    }
    let out = Command::new(zsfs_bin())
        .args(["stats", "--json"])
        .arg(mnt)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = report(mnt);
    for (name, value) in &r.fields {
        match value.parse::<u64>() {
            Ok(n) => assert_eq!(v[name], n, "{name}"),
            Err(_) => assert_eq!(v[name].as_f64(), value.parse::<f64>().ok(), "{name}"),
        }
    }
    let classes = v["classes"].as_array().unwrap();
    assert_eq!(classes.len(), r.classes.len());
    for (j, c) in classes.iter().zip(&r.classes) {
        assert_eq!(j["size"], c.size);
        assert_eq!(j["obj_used"], c.obj_used);
        assert_eq!(j["pages_used"], c.pages_used);
    }
}

#[test]
fn compact_after_deleting_half_lowers_memory() {
    let m = MountGuard::new("backing=none");
    let mnt = m.path();
    // Many small files of varied compressibility fill zspages of many
    // classes; deleting every other one leaves them half empty.
    // Even seeds only: Rng::new(2k) and Rng::new(2k + 1) are the same
    // sequence, and dedup would make such twins share one object.
    for i in 0..600u64 {
        write_file(&mnt.join(format!("f{i}")), &texty(2 * i, 4096));
    }
    for i in (0..600u64).step_by(2) {
        fs::remove_file(mnt.join(format!("f{i}"))).unwrap();
    }
    let before = report(mnt);
    let out = ctl(mnt, &["compact"]);
    assert!(out.status.success(), "{out:?}");
    let after = report(mnt);
    assert!(
        get(&after, "mem_used_total") < get(&before, "mem_used_total"),
        "compact did not lower mem_used_total: {} -> {}",
        get(&before, "mem_used_total"),
        get(&after, "mem_used_total")
    );
    assert!(get(&after, "pages_compacted") > get(&before, "pages_compacted"));
    // The data survived the moves.
    for i in (1..600u64).step_by(2) {
        assert_eq!(
            fs::read(mnt.join(format!("f{i}"))).unwrap(),
            texty(2 * i, 4096)
        );
    }
}

#[test]
fn writeback_size_moves_about_that_much_to_disk() {
    let m = MountGuard::new("");
    let mnt = m.path();
    let files: Vec<Vec<u8>> = (0..64u64).map(|i| texty(i, 256 * 1024)).collect();
    for (i, d) in files.iter().enumerate() {
        write_file(&mnt.join(format!("f{i}")), d);
    }
    let before = report(mnt);
    let out = ctl(mnt, &["writeback", "4M"]);
    assert!(out.status.success(), "{out:?}");
    let after = report(mnt);
    let moved = (get(&after, "bd_count") - get(&before, "bd_count")) * 4096;
    assert!(
        (3 << 20..=6 << 20).contains(&moved),
        "writeback 4M moved {moved} bytes to disk"
    );
    assert!(get(&after, "mem_used_total") < get(&before, "mem_used_total"));
    // Drop the page cache, read everything back: written-back blocks come
    // from the backing file and are intact.
    fs::write("/proc/sys/vm/drop_caches", "3").unwrap();
    for (i, d) in files.iter().enumerate() {
        assert!(fs::read(mnt.join(format!("f{i}"))).unwrap() == *d, "f{i}");
    }
    assert!(get(&report(mnt), "bd_reads") > get(&after, "bd_reads"));
}

#[test]
fn garbage_is_einval_and_changes_nothing() {
    let m = MountGuard::new("backing=none,pool_limit=64M");
    let mnt = m.path();
    write_file(&mnt.join("a"), &texty(9, 50_000));
    let before = report(mnt);
    for junk in [
        "bogus\n",
        "pool_limit 1M\nfrobnicate\n",
        "writeback\n",
        "\n",
    ] {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .open(mnt.join(".zsfs"))
            .unwrap();
        let e = f.write_all(junk.as_bytes()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{junk:?}");
    }
    assert_eq!(report(mnt), before);
    // The CLI says why, and exits non-zero.
    let out = ctl(mnt, &["pool_limit", "lots"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected one of"));
    // A good command acts.
    assert!(ctl(mnt, &["pool_limit", "32M"]).status.success());
    assert_eq!(get(&report(mnt), "mem_limit"), 32 << 20);
}

#[test]
fn only_root_and_the_mounter_may_write() {
    if !is_root() {
        eprintln!("needs root to switch users; skipped");
        return;
    }
    let m = MountGuard::new("backing=none,allow_other");
    let ctl_path = m.path().join(".zsfs");
    let as_nobody = |script: &str| {
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(&ctl_path)
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap()
    };
    // Others may read the stats...
    let out = as_nobody("cat \"$1\"");
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("orig_data_size"));
    // ...but not write commands.
    let out = as_nobody("echo compact > \"$1\"");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{out:?}"
    );
}

#[test]
fn the_control_file_cannot_be_removed_or_changed() {
    let m = MountGuard::new("backing=none,control=.stats");
    let mnt = m.path();
    let c = mnt.join(".stats");
    assert!(!mnt.join(".zsfs").exists());
    assert!(fs::read_to_string(&c)
        .unwrap()
        .starts_with("orig_data_size "));
    let eperm =
        |r: std::io::Result<()>| assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EPERM));
    eperm(fs::remove_file(&c));
    eperm(fs::rename(&c, mnt.join("x")));
    eperm(fs::hard_link(&c, mnt.join("y")));
    use std::os::unix::fs::PermissionsExt;
    eperm(fs::set_permissions(&c, fs::Permissions::from_mode(0o666)));
    // Renaming something over it is refused too.
    write_file(&mnt.join("z"), b"z");
    eperm(fs::rename(mnt.join("z"), &c));
    assert!(c.exists());
    // It does not count as a file or toward df.
    assert_eq!(
        get(
            &Report::parse(&fs::read_to_string(&c).unwrap()).unwrap(),
            "files"
        ),
        1
    );
    let out = Command::new(zsfs_bin())
        .args(["stats", "--control", ".stats"])
        .arg(mnt)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}
