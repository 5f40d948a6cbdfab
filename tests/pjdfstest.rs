//! POSIX conformance: the pjdfstest suite (crate `pjdfstest`), run as root
//! in a zsfs mount with the checked-in configuration
//! `tests/data/pjdfstest.toml` (features posix_fallocate, rename_ctime,
//! utime_now, utimensat) and a second zsfs mount as the secondary file
//! system for the EXDEV cases. Any failure, or an expected failure that
//! passes, fails this test; the output names each failing case.
//!
//! Reproduce by hand (as root):
//! `zsfs /mnt/a; zsfs /mnt/b; pjdfstest -c tests/data/pjdfstest.toml -p /mnt/a -s /mnt/b [CASE]`

mod common;
use common::*;

use std::path::Path;
use std::process::Command;

/// Run pjdfstest on two fresh mounts; returns the primary one so a caller
/// can look at its counters before it goes.
fn run_pjdfstest(options: &str) -> MountGuard {
    assert!(
        is_root(),
        "pjdfstest must run as root (it switches users and makes device nodes)"
    );
    let bin = require_program("pjdfstest", "cargo install --locked pjdfstest");
    ensure_user("tests");
    let _heavy = heavy_lock();
    // pjdfstest switches to other users: they must be let into the mount.
    let options = if options.is_empty() {
        "allow_other".to_string()
    } else {
        format!("allow_other,{options}")
    };
    let options = options.as_str();
    let primary = MountGuard::new(options);
    let secondary = MountGuard::new(options);
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pjdfstest.toml");
    let out = Command::new(&bin)
        .arg("-c")
        .arg(&config)
        .arg("-p")
        .arg(primary.path())
        .arg("-s")
        .arg(secondary.path())
        .env("NO_COLOR", "1")
        .output()
        .expect("run pjdfstest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A failing case is its name line ending in "failed" followed by
    // tab-indented detail lines; keep both for the message.
    let mut failed = Vec::new();
    let mut in_failure = false;
    for l in stdout.lines() {
        let t = l.trim_end();
        if t.starts_with('\t') || t.starts_with(' ') {
            let d = t.trim_start();
            // The reason, not the backtrace.
            if in_failure
                && (t.starts_with('\t') || d.starts_with("left:") || d.starts_with("right:"))
            {
                failed.push(t.to_string());
            }
            continue;
        }
        in_failure = t.ends_with("FAILED")
            || (t.ends_with("failed") && !t.ends_with("failed as expected"))
            || t.contains("unexpectedly");
        if in_failure {
            failed.push(t.to_string());
        }
    }
    let log_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "pjdfstest-{}.log",
        options.replace([',', '=', '/'], "_")
    ));
    let _ = std::fs::write(&log_path, format!("{stdout}\n{stderr}"));
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("Summary"))
        .unwrap_or("(no summary line)");
    eprintln!("pjdfstest -o '{options}': {summary}");
    // Both mounts must still be alive: a crashed daemon fails the run too.
    assert!(
        zsfs_mounted_at(primary.path()),
        "primary mount died; log:\n{}",
        primary.log()
    );
    assert!(
        out.status.success() && failed.is_empty(),
        "pjdfstest on zsfs -o '{options}': {summary}\nfailing cases:\n{}\n\nfull output in {}\ndaemon log:\n{}",
        failed.join("\n"),
        log_path.display(),
        primary.log()
    );
    secondary.unmount_clean();
    primary
}

#[test]
fn pjdfstest_default_options() {
    run_pjdfstest("").unmount_clean();
}

/// Large blocks, no page cache (direct I/O) and a single request thread:
/// the other end of every knob.
#[test]
fn pjdfstest_large_blocks_direct_io() {
    run_pjdfstest("block_size=128k,cache=none,threads=1").unmount_clean();
}

/// Every POSIX case with the pool held to 64 KiB, so the shrinker writes
/// pjdfstest's files back while it works on them.
#[test]
fn pjdfstest_tiny_pool_limit() {
    let m = run_pjdfstest("pool_limit=64k,cache=none");
    m.assert_wrote_back_and_read_back("pjdfstest");
    m.unmount_clean();
}
