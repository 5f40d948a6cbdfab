//! Shared helpers for tests that mount zsfs.
//!
//! [`MountGuard`] runs the built `zsfs` binary in the foreground (`-f`) as a
//! child of the test, on a fresh temporary directory, and waits until the
//! mount answers. Dropping it (also while a test panics) unmounts, waits for
//! the daemon to exit, kills it if it does not, and lazily detaches anything
//! still mounted, so no mount and no process outlives the test.
//!
//! The daemon's log (stderr, `RUST_LOG` as given to the test, default
//! `warn`) goes to a file that failures print.
//!
//! Use from a test file with `mod common;` and `use common::*;`. Not every
//! test binary uses every helper, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod cells;
pub mod data;

use std::ffi::CString;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a mount may take to answer, and an unmounted daemon to exit.
pub const MOUNT_TIMEOUT: Duration = Duration::from_secs(20);
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// The zsfs binary cargo built for these tests.
pub fn zsfs_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_zsfs"))
}

pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

pub use zsfs::sys::mountinfo::{mounts as mount_lines, MountEntry as MountLine};

/// The topmost mount at exactly `path`, if any.
pub fn mount_at(path: &Path) -> Option<MountLine> {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    mount_lines()
        .into_iter()
        .rev()
        .find(|m| m.mount_point == path)
}

/// Whether a zsfs (a `fuse` or `fuse.zsfs` mount) is mounted at `path`.
pub fn zsfs_mounted_at(path: &Path) -> bool {
    mount_at(path).is_some_and(|m| m.may_be_zsfs())
}

/// Poll `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Unmount `path` (root: umount(2), retried while busy, then lazily;
/// otherwise fusermount3 -u). Returns whether it is gone.
pub fn unmount(path: &Path) -> bool {
    if is_root() {
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        for _ in 0..50 {
            // SAFETY: c is a valid C string.
            if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
                return true;
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EBUSY) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // SAFETY: as above.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) == 0 }
    } else {
        let ok = Command::new("fusermount3")
            .arg("-u")
            .arg(path)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok || Command::new("fusermount3")
            .args(["-u", "-z"])
            .arg(path)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

/// Wait for `child` up to `timeout`; `None` if it is still running.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let mut status = None;
    wait_until(timeout, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    status
}

/// PIDs of live processes whose command line mentions `needle` (used to
/// check that no zsfs daemon or watcher outlived its mount).
pub fn pids_mentioning(needle: &Path) -> Vec<u32> {
    let needle = needle.as_os_str().as_bytes();
    let mut out = Vec::new();
    let me = std::process::id();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        // Zombies have an empty cmdline and are not running anything.
        if cmd.windows(needle.len()).any(|w| w == needle) {
            out.push(pid);
        }
    }
    out
}

/// One counter of the control file (`.zsfs`) of the mount at `mnt`.
pub fn control_counter(mnt: &Path, name: &str) -> u64 {
    let path = mnt.join(".zsfs");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no counter {name} in {}:\n{text}", path.display()))
}

/// The control file's counters, the classes table left out (assertion
/// messages print these).
pub fn counters(mnt: &Path) -> zsfs::control::Report {
    let mut r =
        zsfs::control::Report::parse(&std::fs::read_to_string(mnt.join(".zsfs")).unwrap()).unwrap();
    r.classes.clear();
    r
}

/// Counter `name` of a report, or a panic naming it.
pub fn get(r: &zsfs::control::Report, name: &str) -> u64 {
    r.get_u64(name).unwrap_or_else(|| panic!("{name} missing"))
}

/// Seconds a stress test runs: `ZSFS_STRESS_SECS` if set, else `default`.
pub fn stress_secs(default: u64) -> u64 {
    std::env::var("ZSFS_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Until `stop`: compact, ask the shrinker for idle writeback and write
/// 64 KiB back in turn, as the shrinker and the control file's commands may
/// at any moment, running `check` (a consistency check) every 16th round.
pub fn churn_pool(pool: &zsfs::pool::Pool, stop: &std::sync::atomic::AtomicBool, check: impl Fn()) {
    use zsfs::pool::WritebackRequest;
    let mut n = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        match n % 16 {
            0 => check(),
            1 => drop(pool.compact()),
            2 => pool.request_writeback(WritebackRequest::Idle).unwrap(),
            _ => drop(pool.writeback(WritebackRequest::Bytes(64 * 1024)).unwrap()),
        }
        n += 1;
    }
}

/// A thread that writes `recompress all` into a mount's control file every
/// `every`, from creation until dropped: recompression passes running at
/// the same moment as whatever the test does to the files (the background
/// passes pause while the mount is busy, so a test cannot wait for them).
pub struct Recompressing {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Recompressing {
    pub fn start(mnt: &Path, every: Duration) -> Recompressing {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (s, control) = (stop.clone(), mnt.join(".zsfs"));
        let thread = std::thread::spawn(move || {
            let mut passes = 0;
            while !s.load(Ordering::Relaxed) {
                std::fs::write(&control, "recompress all\n").expect("recompress all");
                passes += 1;
                std::thread::sleep(every);
            }
            passes
        });
        Recompressing {
            stop,
            thread: Some(thread),
        }
    }

    /// Stop; the number of passes run.
    pub fn stop(mut self) -> u64 {
        self.halt()
    }

    fn halt(&mut self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread
            .take()
            .map_or(0, |t| t.join().expect("recompress thread"))
    }
}

impl Drop for Recompressing {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Unmounts `0` (and waits for its daemons to go) when dropped, so a failed
/// assertion leaves nothing mounted: for mounts a test made itself (a
/// detached `zsfs DIR`, the mount helper) rather than with [`MountGuard`].
pub struct UnmountOnDrop(pub PathBuf);

impl Drop for UnmountOnDrop {
    fn drop(&mut self) {
        while zsfs_mounted_at(&self.0) {
            if !unmount(&self.0) {
                break;
            }
        }
        wait_until(Duration::from_secs(30), || {
            pids_mentioning(&self.0).is_empty()
        });
    }
}

/// A zsfs mount for the duration of a test. See the module comment.
pub struct MountGuard {
    /// The mountpoint (a temporary directory, mode 0755 so other users can
    /// reach the mount, as pjdfstest needs).
    dir: tempfile::TempDir,
    /// Holds the daemon's log file.
    log_dir: tempfile::TempDir,
    /// The `zsfs -f` process; `None` once it has been waited for.
    child: Option<Child>,
    /// The options it was mounted with, for messages.
    options: String,
}

impl MountGuard {
    /// Mount with `options` (the argument of `-o`; empty for none) or panic
    /// with the daemon's log.
    pub fn new(options: &str) -> MountGuard {
        MountGuard::try_new(options).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Mount with `options`; on failure the error carries the daemon's log.
    pub fn try_new(options: &str) -> Result<MountGuard, String> {
        MountGuard::try_new_from(None, options)
    }

    /// Mount with a mount source (`zsfs -f -o OPTIONS SOURCE DIR`).
    pub fn with_source(source: &str, options: &str) -> MountGuard {
        MountGuard::try_new_from(Some(source), options).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_new_from(source: Option<&str>, options: &str) -> Result<MountGuard, String> {
        let dir = tempfile::Builder::new()
            .prefix("zsfs-mnt-")
            .tempdir()
            .map_err(|e| format!("tempdir: {e}"))?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("chmod mountpoint: {e}"))?;
        let log_dir = tempfile::Builder::new()
            .prefix("zsfs-log-")
            .tempdir()
            .map_err(|e| format!("tempdir: {e}"))?;
        let log = File::create(log_dir.path().join("daemon.log"))
            .map_err(|e| format!("log file: {e}"))?;
        let mut cmd = Command::new(zsfs_bin());
        cmd.arg("-f");
        if !options.is_empty() {
            cmd.arg("-o").arg(options);
        }
        cmd.args(source);
        cmd.arg(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "warn");
        }
        let child = cmd.spawn().map_err(|e| format!("spawn zsfs: {e}"))?;
        let mut guard = MountGuard {
            dir,
            log_dir,
            child: Some(child),
            options: options.to_string(),
        };
        let path = guard.dir.path().to_path_buf();
        let mut exited = None;
        let ready = wait_until(MOUNT_TIMEOUT, || {
            if let Some(st) = guard
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                exited = Some(st);
                return true;
            }
            // The mount is listed, and its root answers (stat goes to the daemon).
            zsfs_mounted_at(&path) && std::fs::metadata(&path).is_ok()
        });
        if let Some(st) = exited {
            guard.child = None;
            return Err(format!(
                "zsfs -o '{options}' exited before mounting ({st}); log:\n{}",
                guard.log()
            ));
        }
        if !ready {
            return Err(format!(
                "zsfs -o '{options}' did not mount within {MOUNT_TIMEOUT:?}; log:\n{}",
                guard.log()
            ));
        }
        Ok(guard)
    }

    /// The mountpoint.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The daemon's pid (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// One counter of the mount's control file (`.zsfs`), e.g. `bd_reads`.
    pub fn counter(&self, name: &str) -> u64 {
        control_counter(self.path(), name)
    }

    /// For a run on a mount with a pool limit far below its data: assert
    /// that the shrinker really wrote data back and reads really came back
    /// from the backing file, and print the figures.
    pub fn assert_wrote_back_and_read_back(&self, what: &str) {
        let (w, r, c) = (
            self.counter("bd_writes"),
            self.counter("bd_reads"),
            self.counter("checksum_failures"),
        );
        eprintln!(
            "{what} on zsfs -o '{}': bd_writes {w} bd_reads {r} pages",
            self.options
        );
        assert!(
            w > 0 && r > 0,
            "{what}: no writeback (bd_writes {w}) or read-back (bd_reads {r})"
        );
        assert_eq!(c, 0, "{what}: checksum failures");
    }

    /// Unmount and assert that the daemon exited 0, showing its log if not.
    pub fn unmount_clean(mut self) {
        let path = self.path().to_path_buf();
        assert!(
            unmount(&path),
            "cannot unmount {}; log:\n{}",
            path.display(),
            self.log()
        );
        let st = self.wait_exit();
        assert!(
            st.success(),
            "zsfs -o '{}' exited with {st} after a clean unmount; log:\n{}",
            self.options,
            self.log()
        );
    }

    /// Wait for the daemon to exit by itself (after a signal or an unmount
    /// done by the test) and return its status; kills it and panics after
    /// [`EXIT_TIMEOUT`].
    pub fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("daemon already waited for");
        match wait_timeout(&mut child, EXIT_TIMEOUT) {
            Some(st) => st,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "zsfs -o '{}' did not exit within {EXIT_TIMEOUT:?}; log:\n{}",
                    self.options,
                    self.log()
                );
            }
        }
    }

    /// Unmount, and return the daemon's exit status (a clean unmount must
    /// give success). Panics, with the log, if the daemon does not exit.
    pub fn unmount(mut self) -> ExitStatus {
        let path = self.path().to_path_buf();
        assert!(
            unmount(&path),
            "cannot unmount {}; log:\n{}",
            path.display(),
            self.log()
        );
        self.wait_exit()
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        let path = self.dir.path().to_path_buf();
        if zsfs_mounted_at(&path) {
            unmount(&path);
        }
        if let Some(mut child) = self.child.take() {
            if wait_timeout(&mut child, EXIT_TIMEOUT).is_none() {
                eprintln!(
                    "MountGuard: zsfs on {} did not exit after unmount; killing it",
                    path.display()
                );
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        // A killed daemon's watcher detaches the mount; make sure of it.
        if mount_at(&path).is_some_and(|m| m.may_be_zsfs()) {
            wait_until(Duration::from_secs(5), || !zsfs_mounted_at(&path));
            if zsfs_mounted_at(&path) {
                unmount(&path);
            }
        }
    }
}

/// A lock shared by every test binary of this crate: the heavy runners
/// (fsx, fio, pjdfstest) take it so they do not run at the same time on a
/// small CI machine, whatever `--test-threads` says. Released on drop.
pub struct HeavyLock(File);

pub fn heavy_lock() -> HeavyLock {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("zsfs-heavy-tests.lock");
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .expect("open heavy-test lock");
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own; blocks until granted.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock {}", path.display());
    HeavyLock(f)
}

/// Whether `prog` can be run (found on PATH or in ~/.cargo/bin).
pub fn find_program(prog: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        dirs.push(PathBuf::from(home).join("bin"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter().map(|d| d.join(prog)).find(|p| p.is_file())
}

/// Make sure the local user `name` exists (with a group of the same name),
/// creating it as a system user without a home if it does not. Root only;
/// the test suites that switch users (pjdfstest, the ordinary-user mount)
/// need one.
pub fn ensure_user(name: &str) {
    let exists = Command::new("id")
        .arg("-u")
        .arg(name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if exists {
        return;
    }
    assert!(
        is_root(),
        "user `{name}` is missing and only root can create it"
    );
    let out = Command::new("useradd")
        .args(["--system", "--user-group", "--no-create-home", "--shell"])
        .arg("/usr/sbin/nologin")
        .arg(name)
        .output()
        .expect("run useradd");
    // Another test binary may have created it meanwhile (exit 9: exists).
    assert!(
        out.status.success() || out.status.code() == Some(9),
        "useradd {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Uid and primary gid of a local user.
pub fn user_ids(name: &str) -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").arg(flag).arg(name).output().expect("id");
        assert!(out.status.success(), "no user {name}");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

/// Drop the kernel's clean page cache, dentries and inodes, so the next
/// read of a file goes to the filesystem. Root only.
pub fn drop_caches() {
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", "3").expect("echo 3 > /proc/sys/vm/drop_caches");
}

/// The path of a required external program, or a panic that says how to
/// install it (a runner that silently skips cannot show 0 failures).
pub fn require_program(prog: &str, install: &str) -> PathBuf {
    find_program(prog)
        .unwrap_or_else(|| panic!("`{prog}` is not installed; install it with: {install}"))
}
