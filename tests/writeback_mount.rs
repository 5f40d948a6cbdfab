//! Writeback through a real mount: the shrinker runs all the time (a pool
//! limit of a few MiB under tens of MiB of data) while threads write,
//! overwrite, read, truncate and unlink files; every byte read back is the
//! byte written, and the counters show data really went to disk and came
//! back. Then the backing file's disk fills up: nothing already written is
//! lost, and the writer that finds memory and disk both full gets ENOSPC.

mod common;
use common::data::Rng;
use common::*;

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// One thread's share: files only it touches, checked against its model
/// after every operation that changes them.
fn churn(dir: PathBuf, seed: u64, ops: usize) {
    const FILES: usize = 6;
    const MAX: u64 = 3 << 20;
    let mut rng = Rng::new(seed);
    let mut model: Vec<Vec<u8>> = vec![Vec::new(); FILES];
    let path = |i: usize| dir.join(format!("t{seed}-f{i}"));
    for (i, m) in model.iter().enumerate() {
        fs::write(path(i), m).unwrap();
    }
    for op in 0..ops {
        let i = rng.below(FILES as u64) as usize;
        let ctx = format!("seed {seed} op {op} file {i}");
        match rng.below(10) {
            // pwrite somewhere, possibly extending the file with a hole.
            0..=4 => {
                let off = rng.below(MAX);
                let len = 1 + rng.below(256 << 10) as usize;
                let buf = common::data::half_compressible(&mut rng, len);
                let f = OpenOptions::new().write(true).open(path(i)).unwrap();
                f.write_all_at(&buf, off).unwrap();
                let m = &mut model[i];
                let end = off as usize + len;
                if m.len() < end {
                    m.resize(end, 0);
                }
                m[off as usize..end].copy_from_slice(&buf);
            }
            // Read the whole file back.
            5..=7 => {
                let got = fs::read(path(i)).unwrap();
                assert!(
                    got == model[i],
                    "{ctx}: content differs (len {} vs {})",
                    got.len(),
                    model[i].len()
                );
            }
            // Truncate up or down.
            8 => {
                let len = rng.below(MAX);
                File::options()
                    .write(true)
                    .open(path(i))
                    .unwrap()
                    .set_len(len)
                    .unwrap();
                model[i].resize(len as usize, 0);
            }
            // Unlink and start over.
            _ => {
                fs::remove_file(path(i)).unwrap();
                fs::write(path(i), b"").unwrap();
                model[i].clear();
            }
        }
    }
    for (i, m) in model.iter().enumerate() {
        assert!(
            fs::read(path(i)).unwrap() == *m,
            "seed {seed}: final content of file {i}"
        );
    }
}

fn stress(options: &str) {
    let m = MountGuard::new(options);
    let mnt = m.path().to_path_buf();
    let threads: Vec<_> = (1..=4u64)
        .map(|t| {
            let dir = mnt.clone();
            std::thread::spawn(move || churn(dir, 0x9e37_79b9 * t, 600))
        })
        .collect();
    for t in threads {
        if let Err(e) = t.join() {
            panic!(
                "{}\ndaemon log:\n{}",
                e.downcast_ref::<String>().cloned().unwrap_or_default(),
                m.log()
            );
        }
    }
    let c = counters(&mnt);
    eprintln!(
        "zsfs -o {options}: bd_writes {} bd_reads {} shrinker_runs {} second_chance {} mem_used_max {} limit {}",
        get(&c, "bd_writes"),
        get(&c, "bd_reads"),
        get(&c, "shrinker_runs"),
        get(&c, "second_chance"),
        get(&c, "mem_used_max"),
        get(&c, "mem_limit")
    );
    assert!(get(&c, "bd_writes") > 0, "nothing was written back: {c:?}");
    assert!(get(&c, "bd_reads") > 0, "nothing was read back: {c:?}");
    assert!(get(&c, "shrinker_runs") > 0);
    assert_eq!(get(&c, "checksum_failures"), 0);
    assert!(zsfs_mounted_at(&mnt), "daemon died; log:\n{}", m.log());
}

/// Direct I/O: every read and write reaches the daemon, none is absorbed
/// by the page cache.
#[test]
fn stress_tiny_pool_limit_direct_io() {
    stress("pool_limit=2m,cache=none");
}

/// The page cache in front, and large blocks (fewer, bigger objects).
#[test]
fn stress_tiny_pool_limit_cached_large_blocks() {
    stress("pool_limit=2m,block_size=32k");
}

/// The backing file lives on a 4 MiB tmpfs and the pool may hold 2 MiB:
/// writing far more than both fit must end in ENOSPC, and everything written
/// before it must still read back intact.
#[test]
fn full_backing_disk_loses_nothing() {
    if !is_root() {
        eprintln!("needs root to mount a small tmpfs; skipped");
        return;
    }
    let disk = tempfile::tempdir().unwrap();
    let small = TmpfsGuard::mount(disk.path(), "size=4m");
    let backing = small.0.join("backing");
    let m = MountGuard::new(&format!(
        "pool_limit=2m,backing={},cache=none",
        backing.display()
    ));
    let mnt = m.path();
    let mut rng = Rng::new(42);
    let mut written = Vec::new();
    let mut enospc = false;
    for i in 0..200 {
        let buf = common::data::half_compressible(&mut rng, 512 << 10);
        let p = mnt.join(format!("f{i}"));
        let mut f = File::create(&p).unwrap();
        match f.write_all(&buf).and_then(|_| f.sync_all()) {
            Ok(()) => written.push((p, buf)),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "file {i}: {e}");
                enospc = true;
                break;
            }
        }
    }
    assert!(
        enospc,
        "200 x 512 KiB fit in a 2 MiB pool and a 4 MiB disk?"
    );
    assert!(
        written.len() > 4,
        "only {} files were written before ENOSPC",
        written.len()
    );
    let c = counters(mnt);
    assert!(get(&c, "bd_writes") > 0, "{c:?}");
    for (p, buf) in &written {
        let got = fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(got == *buf, "{} changed after the disk filled", p.display());
    }
    // Making room (deleting) lets writes succeed again.
    for (p, _) in written.iter().take(written.len() / 2) {
        fs::remove_file(p).unwrap();
    }
    let retry = mnt.join("after");
    let res = fs::write(&retry, common::data::half_compressible(&mut rng, 256 << 10));
    assert!(
        res.is_ok() || res.as_ref().unwrap_err().kind() == ErrorKind::StorageFull,
        "{res:?}"
    );
    assert!(zsfs_mounted_at(mnt), "daemon died; log:\n{}", m.log());
    drop(m);
}

/// A tmpfs mounted for one test, unmounted on drop.
struct TmpfsGuard(PathBuf);

impl TmpfsGuard {
    fn mount(at: &Path, options: &str) -> TmpfsGuard {
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs on {}", at.display());
        TmpfsGuard(at.to_path_buf())
    }
}

impl Drop for TmpfsGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}
