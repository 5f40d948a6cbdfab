//! The mount command's life cycle: foreground and background mounts, clean
//! exits on unmount and on signals, and nothing left behind on errors.
//! These need root (or fusermount3) and /dev/fuse; they mount real FUSE
//! filesystems.

mod common;
use common::*;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// No zsfs process (daemon or watcher) mentions `path` any more.
fn assert_no_process_for(path: &Path) {
    let gone = wait_until(Duration::from_secs(10), || pids_mentioning(path).is_empty());
    assert!(
        gone,
        "processes left for {}: {:?}",
        path.display(),
        pids_mentioning(path)
    );
}

#[test]
fn foreground_mount_serves_and_exits_zero_on_unmount() {
    let m = MountGuard::new("size=64m,mode=0755");
    let path = m.path().to_path_buf();
    let md = std::fs::metadata(&path).unwrap();
    assert!(md.is_dir());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        md.permissions().mode() & 0o7777,
        0o755,
        "mode= reaches the root"
    );
    assert!(zsfs_mounted_at(&path));
    let st = m.unmount();
    assert!(st.success(), "daemon exit status after umount: {st}");
    assert!(!zsfs_mounted_at(&path));
    assert_no_process_for(&path);
}

#[test]
fn guard_drop_unmounts_even_when_the_test_panics() {
    let mut seen = None;
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let m = MountGuard::new("");
        seen = Some(m.path().to_path_buf());
        panic!("deliberate");
    }));
    assert!(r.is_err());
    let path = seen.unwrap();
    assert!(!zsfs_mounted_at(&path), "still mounted after a panic");
    assert_no_process_for(&path);
}

fn sigterm_and_sigint_unmount_cleanly(sig: i32) {
    let m = MountGuard::new("");
    let path = m.path().to_path_buf();
    let pid = m.pid().unwrap() as i32;
    // SAFETY: pid is our child, still running.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    assert!(
        wait_until(Duration::from_secs(10), || !zsfs_mounted_at(&path)),
        "signal {sig} did not unmount; log:\n{}",
        m.log()
    );
    // The guard's unmount would fail now; wait for the process ourselves.
    let log = m.log();
    let mut m = m;
    let st = m.wait_exit();
    assert!(
        st.success(),
        "exit status after signal {sig}: {st}; log:\n{log}"
    );
    assert_no_process_for(&path);
}

#[test]
fn sigterm_unmounts_cleanly() {
    sigterm_and_sigint_unmount_cleanly(libc::SIGTERM);
}

#[test]
fn sigint_unmounts_cleanly() {
    sigterm_and_sigint_unmount_cleanly(libc::SIGINT);
}

#[test]
fn sigterm_on_a_busy_mount_detaches_and_exits_when_released() {
    let m = MountGuard::new("");
    let path = m.path().to_path_buf();
    // Keep the mount busy: an open directory handle on its root.
    let busy = std::fs::File::open(&path).unwrap();
    let pid = m.pid().unwrap() as i32;
    // SAFETY: our child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    assert!(
        wait_until(Duration::from_secs(10), || !zsfs_mounted_at(&path)),
        "a busy mount is detached on SIGTERM"
    );
    // Still served: the open handle works until it is closed.
    assert!(busy.metadata().unwrap().is_dir());
    drop(busy);
    let mut m = m;
    let st = m.wait_exit();
    assert!(st.success(), "{st}");
    assert_no_process_for(&path);
}

#[test]
fn background_mount_returns_when_ready_and_umount_ends_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let path = std::fs::canonicalize(dir.path()).unwrap();
    // Stderr a pipe, captured: the daemon must not hold it open, or
    // output() would wait for the unmount.
    let out = Command::new(zsfs_bin())
        .arg("-o")
        .arg("size=32m,nr_inodes=1k")
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", out);
    // Ready when the command returned: no waiting.
    assert!(zsfs_mounted_at(&path), "mounted when zsfs returned");
    assert!(std::fs::metadata(&path).unwrap().is_dir());
    let pids = pids_mentioning(&path);
    assert!(!pids.is_empty(), "a daemon serves the mount");
    // Clean the mount up whatever happens below.
    struct Cleanup<'a>(&'a Path);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            if zsfs_mounted_at(self.0) {
                unmount(self.0);
            }
        }
    }
    let _c = Cleanup(&path);
    assert!(unmount(&path));
    assert_no_process_for(&path);
}

#[test]
fn bad_option_is_a_clear_error_and_mounts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for (opts, expect) in [
        ("szie=1g", "unknown option `szie=1g`"),
        ("size=12q", "bad value `12q` for option `size=`"),
        ("block_size=3k", "power of two"),
        ("cache=maybe", "`auto` or `none`"),
    ] {
        for fg in [false, true] {
            let mut cmd = Command::new(zsfs_bin());
            if fg {
                cmd.arg("-f");
            }
            let out = cmd.arg("-o").arg(opts).arg(dir.path()).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{opts}: exit status {}", out.status);
            assert!(err.contains(expect), "{opts}: stderr {err:?}");
            assert!(!zsfs_mounted_at(dir.path()));
        }
    }
    assert_no_process_for(dir.path());
}

#[test]
fn missing_mountpoint_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let out = Command::new(zsfs_bin()).arg(&missing).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn mountpoint_in_use_is_a_clear_error_and_leaves_the_first_mount() {
    let m = MountGuard::new("");
    for fg in [false, true] {
        let mut cmd = Command::new(zsfs_bin());
        if fg {
            cmd.arg("-f");
        }
        let out = cmd.arg(m.path()).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("already in use"), "{err}");
    }
    // The first mount is untouched and still the only one there.
    let count = mount_lines()
        .iter()
        .filter(|l| l.mount_point == std::fs::canonicalize(m.path()).unwrap())
        .count();
    assert_eq!(count, 1);
    assert!(std::fs::metadata(m.path()).is_ok());
    m.unmount_clean();
}

#[test]
fn killed_daemon_leaves_no_dead_mount() {
    let m = MountGuard::new("");
    let path = m.path().to_path_buf();
    let pid = m.pid().unwrap() as i32;
    // SAFETY: our child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert!(
        wait_until(Duration::from_secs(10), || !zsfs_mounted_at(&path)),
        "the watcher unmounts after kill -9"
    );
    // Not "Transport endpoint is not connected": the directory is usable.
    std::fs::metadata(&path).expect("mountpoint usable again");
    assert_no_process_for(&path);
}

#[test]
fn help_lists_the_options() {
    let out = Command::new(zsfs_bin()).arg("--help").output().unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for o in ["size=", "pool_limit=", "block_size=", "stats", "ctl", "-f"] {
        assert!(s.contains(o), "--help mentions {o}: {s}");
    }
}

#[test]
fn second_sigterm_ends_a_daemon_held_by_a_busy_detached_mount() {
    let m = MountGuard::new("");
    let path = m.path().to_path_buf();
    let busy = std::fs::File::open(&path).unwrap();
    let pid = m.pid().unwrap() as i32;
    // SAFETY: our child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    assert!(wait_until(Duration::from_secs(10), || !zsfs_mounted_at(
        &path
    )));
    // Still serving the open handle; a second signal ends it now.
    assert!(busy.metadata().is_ok());
    // SAFETY: our child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let mut m = m;
    let st = m.wait_exit();
    assert_eq!(
        st.code(),
        Some(1),
        "exit status 1: open files lost their mount"
    );
    drop(busy);
    assert_no_process_for(&path);
}

/// A daemon still tearing down a large pool after `umount` must not take
/// down a new zsfs mounted at the same place meanwhile (fuser's session
/// drop unmounts by path; the daemon exits before it runs).
#[test]
fn remount_right_after_umount_survives_the_old_daemons_exit() {
    if !is_root() {
        eprintln!("skipped: needs root to mount without -f and umount(8)");
        return;
    }
    let _heavy = heavy_lock();
    let dir = tempfile::Builder::new()
        .prefix("zsfs-remount-")
        .tempdir()
        .unwrap();
    let mnt = dir.path().to_path_buf();
    let _guard = UnmountOnDrop(mnt.clone());
    let mount = || {
        let st = Command::new(zsfs_bin())
            .args(["-o", "size=4g"])
            .arg(&mnt)
            .status()
            .unwrap();
        assert!(st.success(), "zsfs mount: {st}");
    };
    mount();
    // Written as fio's direct=1 sequential job writes (fallocate, then
    // O_DIRECT 1 MiB writes of 60 %-compressible data): enough small
    // objects that tearing the pool down takes the old daemon a while
    // after the kernel connection is gone (a buffered write of the same
    // data did not show the race).
    {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_DIRECT)
            .open(mnt.join("big"))
            .unwrap();
        // SAFETY: fallocate on a descriptor we own.
        assert_eq!(unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, 1 << 30) }, 0);
        let layout = std::alloc::Layout::from_size_align(1 << 20, 4096).unwrap();
        // SAFETY: non-zero size; freed below with the same layout.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null());
        // SAFETY: ptr is valid for 1 MiB and used only through this slice.
        let buf = unsafe { std::slice::from_raw_parts_mut(ptr, 1 << 20) };
        for i in 0..1024u64 {
            for (j, page) in buf.chunks_mut(4096).enumerate() {
                page[..1640].copy_from_slice(&common::data::noise(i << 8 | j as u64, 1640));
            }
            f.write_all(buf).unwrap();
        }
        // SAFETY: allocated above with this layout.
        unsafe { std::alloc::dealloc(ptr, layout) };
    }
    assert!(unmount(&mnt), "first unmount");
    mount();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        zsfs_mounted_at(&mnt),
        "the new mount was taken down by the old daemon's exit"
    );
    std::fs::write(mnt.join("after"), b"still here").unwrap();
    assert_eq!(std::fs::read(mnt.join("after")).unwrap(), b"still here");
}
