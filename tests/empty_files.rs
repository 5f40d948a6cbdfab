//! Issue 13's per-file cost: a million empty files, spread over 1000
//! directories of 1000, grow the daemon's resident memory by at most 256
//! bytes each once the kernel has forgotten them (the page cache, dentries
//! and inodes dropped; the files stay, so the daemon keeps their inodes,
//! directory entries and inode-table entries). The README's breakdown says
//! where those bytes go.
//!
//! Needs root (dropping caches); without it, it says so and checks nothing.

mod common;

use common::*;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Instant;

const DIRS: usize = 1000;
const PER_DIR: usize = 1000;
const BOUND: u64 = 256;

fn rss_bytes(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// mknod(2) of an empty regular file: one LOOKUP and one MKNOD, no open.
fn mknod(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFREG | 0o644, 0) };
    assert_eq!(
        r,
        0,
        "mknod {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

#[test]
fn a_million_empty_files_cost_at_most_256_bytes_each() {
    if !is_root() {
        eprintln!("empty-files test skipped: dropping the page cache needs root");
        return;
    }
    let _heavy = heavy_lock();
    let m = MountGuard::new("size=1g,nr_inodes=1100000,backing=none");
    let pid = m.pid().unwrap();
    let before = rss_bytes(pid);
    let start = Instant::now();
    // Two creators, as the machine has two cores and the daemon two
    // request threads.
    std::thread::scope(|s| {
        for half in 0..2 {
            let root = m.path();
            s.spawn(move || {
                for d in (half..DIRS).step_by(2) {
                    let dir = root.join(format!("d{d:04}"));
                    std::fs::create_dir(&dir).unwrap();
                    for f in 0..PER_DIR {
                        mknod(&dir.join(format!("f{f:06}")));
                    }
                }
            });
        }
    });
    let made = start.elapsed();
    drop_caches();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let after = rss_bytes(pid);
    let n = (DIRS * PER_DIR) as u64;
    let per_file = after.saturating_sub(before) / n;
    eprintln!(
        "empty files: {n} made in {:.1} s; RSS {:.1} -> {:.1} MiB, {per_file} B per file (bound {BOUND})",
        made.as_secs_f64(),
        before as f64 / (1 << 20) as f64,
        after as f64 / (1 << 20) as f64,
    );
    // They are all there (and the daemon answered for each).
    assert_eq!(control_counter(m.path(), "files"), n);
    let last = std::fs::read_dir(m.path().join(format!("d{:04}", DIRS - 1))).unwrap();
    assert_eq!(last.count(), PER_DIR);
    assert!(
        per_file <= BOUND,
        "RSS grew {} bytes for {n} empty files: {per_file} B each, more than {BOUND}",
        after - before
    );
}
