//! tmpfs parity (issue 11): each test here is one behaviour xfstests or a
//! POSIX suite found different from tmpfs, checked through a real mount
//! and the kernel, as a user meets it. Each failed before its fix.
//!
//! Runs as root (mounts, switches to the `tests` user that .ci/run creates).

mod common;

use common::*;
use std::ffi::CString;
use std::fs::{self, File};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// Run `script` with sh as the unprivileged user `tests`.
fn as_user(script: &str) -> Output {
    ensure_user("tests");
    Command::new("runuser")
        .args(["-u", "tests", "--", "sh", "-c", script])
        .current_dir("/")
        .output()
        .expect("runuser")
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().mode() & 0o7777
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

// 1. The mount source is what /proc/mounts (and so df, findmnt) shows.
#[test]
fn mount_source_is_shown() {
    let m = MountGuard::with_source("mycache", "size=64m");
    let e = mount_at(m.path()).expect("mounted");
    assert_eq!(e.source, "mycache", "{e:?}");
    let d = MountGuard::new("size=64m");
    assert_eq!(mount_at(d.path()).unwrap().source, "zsfs", "the default");
}

// 2. setuid/setgid go as Linux (and tmpfs) drop them.
#[test]
fn unprivileged_write_fallocate_and_chown_drop_setuid_and_setgid() {
    let m = MountGuard::new("mode=1777");
    let f = m.path().join("f");
    fs::write(&f, vec![1u8; 8192]).unwrap();
    let set = |bits| fs::set_permissions(&f, fs::Permissions::from_mode(bits)).unwrap();
    let p = f.display();

    // An unprivileged write: the kernel's own view (no cache drop) changes.
    set(0o6777);
    let out = as_user(&format!(
        "printf x | dd of={p} bs=1 seek=10 conv=notrunc 2>&1"
    ));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(mode(&f), 0o777, "write by a non-owner without CAP_FSETID");

    // O_TRUNC by an unprivileged user (the kernel truncates with SETATTR).
    set(0o6777);
    let out = as_user(&format!("printf y > {p}"));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(mode(&f), 0o777, "O_TRUNC by a non-owner without CAP_FSETID");

    // fallocate, punch hole and zero range by an unprivileged user.
    for op in [
        "fallocate -l 16384",
        "fallocate -p -o 0 -l 4096",
        "fallocate -z -o 0 -l 4096",
    ] {
        set(0o6777);
        let out = as_user(&format!("{op} {p}"));
        assert!(out.status.success(), "{op}: {out:?}");
        assert_eq!(mode(&f), 0o777, "{op} drops setuid and setgid");
    }

    // setgid without group-exec stays for... nobody outside the group.
    set(0o6666);
    let out = as_user(&format!("fallocate -l 32768 {p}"));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(mode(&f), 0o666, "the caller is not in the file's group");

    // chown of a 06555 file, even by root, even to the same owner.
    set(0o6555);
    std::os::unix::fs::chown(&f, Some(0), None).unwrap();
    assert_eq!(mode(&f), 0o555, "chown of a non-directory");
    set(0o6555);
    // chown(f, -1, -1): nothing changes hands, the bits still go.
    assert_eq!(
        unsafe { libc::chown(cstr(&f).as_ptr(), u32::MAX, u32::MAX) },
        0
    );
    assert_eq!(mode(&f), 0o555, "chown(-1, -1)");

    // A setgid directory passes its group on.
    let d = m.path().join("d");
    fs::create_dir(&d).unwrap();
    std::os::unix::fs::chown(&d, None, Some(4242)).unwrap();
    fs::set_permissions(&d, fs::Permissions::from_mode(0o2777)).unwrap();
    fs::write(d.join("child"), b"x").unwrap();
    fs::create_dir(d.join("sub")).unwrap();
    assert_eq!(fs::metadata(d.join("child")).unwrap().gid(), 4242);
    let sub = fs::metadata(d.join("sub")).unwrap();
    assert_eq!((sub.gid(), sub.mode() & 0o2000), (4242, 0o2000));
}

// 3. SEEK_DATA/SEEK_HOLE never hide data the kernel holds dirty.
#[test]
fn seek_data_never_hides_dirty_page_cache_data() {
    for opts in ["", "cache=none"] {
        let m = MountGuard::new(opts);
        let f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(m.path().join("sparse"))
            .unwrap();
        f.write_all_at(&[7u8; 4096], 1 << 20).unwrap();
        let seek = |off, whence| unsafe { libc::lseek(f.as_raw_fd(), off, whence) };
        let data = seek(0, libc::SEEK_DATA);
        let hole = seek(1 << 20, libc::SEEK_HOLE);
        assert!(
            (0..=1 << 20).contains(&data),
            "-o '{opts}': SEEK_DATA from 0 gave {data}: the data at 1 MiB is hidden"
        );
        assert!(
            hole >= (1 << 20) + 4096,
            "-o '{opts}': SEEK_HOLE from 1 MiB gave {hole}"
        );
        if opts == "cache=none" {
            // No page cache: the daemon knows everything and is exact.
            assert_eq!((data, seek(0, libc::SEEK_HOLE)), (1 << 20, 0));
        }
    }
}

// 4. A listing ends, and returns each entry present throughout once,
// while entries are renamed away and back (xfstests generic/736's shape:
// the lister renames each entry it reads).
#[test]
fn readdir_ends_while_entries_are_renamed() {
    const FILES: usize = 3000;
    let m = MountGuard::new("");
    let d = m.path().join("d");
    fs::create_dir(&d).unwrap();
    for i in 0..FILES {
        File::create(d.join(format!("f{i}"))).unwrap();
    }
    let mut seen = std::collections::HashMap::new();
    for e in fs::read_dir(&d).unwrap() {
        let name = e.unwrap().file_name();
        let tmp = d.join("TEMPFILE");
        fs::rename(d.join(&name), &tmp).unwrap();
        fs::rename(&tmp, d.join(&name)).unwrap();
        *seen.entry(name).or_insert(0) += 1;
        assert!(
            seen.values().sum::<usize>() <= 3 * FILES,
            "the listing does not end"
        );
    }
    assert_eq!(seen.len(), FILES, "every file listed");
    assert!(
        seen.values().all(|&n| n == 1),
        "each once: {:?}",
        seen.values().max()
    );
    // Another listing: every file once, nothing else (no control file).
    assert_eq!(fs::read_dir(&d).unwrap().count(), FILES);

    // seekdir(3) to a position telldir gave returns that entry again, and
    // to any smaller position never hits the end (generic/676).
    let dir = unsafe { libc::opendir(cstr(&d).as_ptr()) };
    assert!(!dir.is_null());
    let next = || unsafe { libc::readdir(dir).as_ref().map(|e| e.d_ino) };
    let mut marks = Vec::new();
    for _ in 0..100 {
        let pos = unsafe { libc::telldir(dir) };
        marks.push((pos, next().expect("an entry")));
    }
    let max = marks.iter().map(|m| m.0).max().unwrap();
    for (i, &(pos, ino)) in marks.iter().enumerate().rev() {
        unsafe { libc::seekdir(dir, pos) };
        assert_eq!(next(), Some(ino), "entry {i} again after seekdir");
        unsafe { libc::seekdir(dir, (i as i64 * 7919) % max) };
        assert!(
            next().is_some(),
            "seekdir below the largest position gave EOF"
        );
    }
    unsafe { libc::closedir(dir) };
}

/// `zsfs -o remount,OPTS DIR`: what mount(8)'s helper runs for
/// `mount -t fuse.zsfs -o remount,OPTS DIR`.
fn remount(dir: &Path, opts: &str) -> Output {
    Command::new(zsfs_bin())
        .arg("-o")
        .arg(format!("remount,{opts}"))
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn statvfs(p: &Path) -> libc::statvfs {
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(cstr(p).as_ptr(), &mut st) }, 0);
    st
}

// 5. remount: live options change; the rest is refused whole, clearly.
#[test]
fn remount_changes_live_options_and_refuses_the_rest_whole() {
    let m = MountGuard::new("size=64m,nr_inodes=1000");
    let p = m.path();
    let bytes = |p: &Path| {
        let s = statvfs(p);
        s.f_blocks * s.f_frsize
    };
    assert_eq!(bytes(p), 64 << 20);
    let out = remount(p, "size=128m,nr_inodes=2000,mode=0750,pool_limit=32m");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(bytes(p), 128 << 20);
    assert_eq!(statvfs(p).f_files, 2000);
    assert_eq!(mode(p), 0o750, "the root's mode, as the kernel shows it");

    // A fixed option spoils the whole remount, with a reason.
    let out = remount(p, "size=256m,block_size=64k");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("block_size=") && err.contains("live mount"),
        "{err}"
    );
    assert_eq!(bytes(p), 128 << 20, "nothing changed");

    // Not below what is in use.
    fs::write(p.join("big"), vec![9u8; 4 << 20]).unwrap();
    let out = remount(p, "size=1m");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("below"),
        "{out:?}"
    );
    let out = remount(p, "bogus=1");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown option"),
        "{out:?}"
    );

    // ro and back.
    let out = remount(p, "ro");
    assert!(out.status.success(), "{out:?}");
    let e = fs::write(p.join("new"), b"x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS));
    let out = remount(p, "size=1m");
    assert!(
        !out.status.success(),
        "read-only: the daemon cannot be told"
    );
    let out = remount(p, "rw,size=96m");
    assert!(out.status.success(), "{out:?}");
    fs::write(p.join("new"), b"x").unwrap();
    assert_eq!(bytes(p), 96 << 20);
    assert_eq!(fs::read(p.join("big")).unwrap().len(), 4 << 20, "data kept");
}

// 6. mount(8) drops `suid` and `dev` before calling the helper: root's
// mount must still get them unless nosuid/nodev were given.
#[test]
fn mount_helper_gives_root_suid_and_dev_unless_told_otherwise() {
    let helper = Path::new(env!("CARGO_MANIFEST_DIR")).join("mount-helpers/mount.fuse.zsfs");
    for (opts, nosuid) in [("size=32m", false), ("size=32m,nosuid,nodev", true)] {
        let dir = tempfile::tempdir().unwrap();
        let path = fs::canonicalize(dir.path()).unwrap();
        let _u = UnmountOnDrop(path.clone());
        let out = Command::new("sh")
            .arg(&helper)
            .args(["helpersrc", path.to_str().unwrap(), "-o", opts])
            .env("ZSFS_BIN", zsfs_bin())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let e = mount_at(&path).expect("mounted");
        assert_eq!(e.source, "helpersrc");
        let flags: Vec<&str> = e.mount_options.split(',').collect();
        assert_eq!(flags.contains(&"nosuid"), nosuid, "-o {opts}: {e:?}");
        assert_eq!(flags.contains(&"nodev"), nosuid, "-o {opts}: {e:?}");
    }
}

// 7. Timestamps never go backwards: a later change never shows an
// earlier time than an earlier one (the kernel stamps ctime at link).
#[test]
fn later_changes_never_show_earlier_times() {
    let m = MountGuard::new("");
    for i in 0..300 {
        let (a, b) = (
            m.path().join(format!("a{i}")),
            m.path().join(format!("b{i}")),
        );
        File::create(&a).unwrap();
        File::create(&b).unwrap();
        fs::hard_link(&b, m.path().join(format!("l{i}"))).unwrap();
        let (ta, tb) = (fs::metadata(&a).unwrap(), fs::metadata(&b).unwrap());
        let t = |m: &fs::Metadata| (m.ctime(), m.ctime_nsec());
        assert!(
            t(&tb) >= t(&ta),
            "round {i}: ln's ctime {:?} < earlier create {:?}",
            t(&tb),
            t(&ta)
        );
    }
}

fn atime(p: &Path) -> (i64, i64) {
    let m = fs::metadata(p).unwrap();
    (m.atime(), m.atime_nsec())
}

// 8. atime: relatime (the default) holds for page-cache reads; strictatime
// updates on every read; noatime never, with or without the page cache.
#[test]
fn atime_follows_the_mount_rule_with_and_without_the_page_cache() {
    let pause = || std::thread::sleep(Duration::from_millis(30));
    for opts in ["", "cache=none"] {
        let m = MountGuard::new(opts);
        let f = m.path().join("f");
        fs::write(&f, b"hello").unwrap();
        let t0 = atime(&f);
        pause();
        assert_eq!(fs::read(&f).unwrap(), b"hello");
        let t1 = atime(&f);
        assert!(
            t1 > t0,
            "-o '{opts}': the first read after a write moves atime"
        );
        pause();
        fs::read(&f).unwrap();
        assert_eq!(atime(&f), t1, "-o '{opts}': relatime: not again");

        let out = remount(m.path(), "strictatime");
        assert!(out.status.success(), "{out:?}");
        pause();
        fs::read(&f).unwrap();
        let t2 = atime(&f);
        assert!(t2 > t1, "-o '{opts}': strictatime: every read");

        let out = remount(m.path(), "noatime");
        assert!(out.status.success(), "{out:?}");
        fs::write(&f, b"again").unwrap();
        pause();
        fs::read(&f).unwrap();
        assert_eq!(atime(&f), t2, "-o '{opts}': noatime: never");
    }
    let m = MountGuard::new("cache=none,noatime");
    let f = m.path().join("f");
    fs::write(&f, b"x").unwrap();
    let t0 = atime(&f);
    pause();
    fs::read(&f).unwrap();
    assert_eq!(atime(&f), t0, "noatime with cache=none");
}

// 9. File handles: name_to_handle_at/open_by_handle_at work, also once
// the kernel has dropped the inode (it then looks up "." of the node).
#[test]
fn file_handles_open_linked_files() {
    #[repr(C)]
    struct Handle {
        bytes: u32,
        kind: i32,
        f: [u8; 128],
    }
    let m = MountGuard::new("");
    let f = m.path().join("f");
    fs::write(&f, b"by handle").unwrap();
    let mut h = Handle {
        bytes: 128,
        kind: 0,
        f: [0; 128],
    };
    let mut mount_id = 0;
    let rc = unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            libc::AT_FDCWD,
            cstr(&f).as_ptr(),
            &mut h as *mut Handle,
            &mut mount_id as *mut i32,
            0,
        )
    };
    assert_eq!(
        rc,
        0,
        "name_to_handle_at: {}",
        std::io::Error::last_os_error()
    );
    let root = File::open(m.path()).unwrap();
    for drop_caches in [false, true] {
        if drop_caches {
            fs::write("/proc/sys/vm/drop_caches", "2").unwrap();
        }
        let fd = unsafe {
            libc::syscall(
                libc::SYS_open_by_handle_at,
                root.as_raw_fd(),
                &mut h as *mut Handle,
                libc::O_RDONLY,
            )
        };
        assert!(
            fd >= 0,
            "open_by_handle_at (caches dropped: {drop_caches}): {}",
            std::io::Error::last_os_error()
        );
        let mut buf = [0u8; 9];
        let n = unsafe { libc::pread(fd as i32, buf.as_mut_ptr().cast(), 9, 0) };
        unsafe { libc::close(fd as i32) };
        assert_eq!((n, &buf), (9, b"by handle"));
    }
}

// 10. The control file is reachable by name, never listed.
#[test]
fn control_file_is_hidden_from_listings() {
    let m = MountGuard::new("");
    let names: Vec<_> = fs::read_dir(m.path()).unwrap().collect();
    assert!(names.is_empty(), "an empty mount lists nothing: {names:?}");
    assert!(fs::read_to_string(m.path().join(".zsfs"))
        .unwrap()
        .contains("orig_data_size"));
}

// 11. A detached daemon never writes into the stderr it inherited.
#[test]
fn detached_daemon_logs_to_its_log_not_to_the_callers_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let path = fs::canonicalize(dir.path()).unwrap();
    let (stderr, log) = (logs.path().join("stderr"), logs.path().join("daemon.log"));
    let _u = UnmountOnDrop(path.clone());
    let st = Command::new(zsfs_bin())
        .arg("-o")
        .arg(format!("log={}", log.display()))
        .arg(&path)
        .stdin(Stdio::null())
        .stderr(File::create(&stderr).unwrap())
        .env("RUST_LOG", "warn")
        .status()
        .unwrap();
    assert!(st.success());
    // A garbage command: the daemon warns, and refuses it.
    let e = fs::write(path.join(".zsfs"), b"launch missiles\n").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    drop(_u);
    assert_eq!(
        fs::read_to_string(&stderr).unwrap(),
        "",
        "nothing in the caller's stderr"
    );
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("launch missiles"),
        "the warning is in log=: {text:?}"
    );
}

// 12 (poll). poll(2) on a file answers at once, with no "not implemented".
#[test]
fn poll_on_a_file_is_ready_without_a_warning() {
    let m = MountGuard::new("");
    let f = m.path().join("f");
    fs::write(&f, b"x").unwrap();
    let file = File::open(&f).unwrap();
    let mut p = libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLIN | libc::POLLOUT,
        revents: 0,
    };
    for _ in 0..2 {
        assert_eq!(unsafe { libc::poll(&mut p, 1, 1000) }, 1);
        assert!(p.revents & libc::POLLIN != 0);
    }
    let log = m.log();
    assert!(!log.contains("Not Implemented"), "{log}");
    let mut w = File::options().append(true).open(&f).unwrap();
    w.write_all(b"y").unwrap();
}

// cache=none: a shared mapping and direct writes to the same pages, at
// once (xfstests generic/346's holetest): every byte of both must stay.
// Before the fix a run lost some in about a third of the rounds.
#[test]
fn cache_none_mapping_and_direct_writes_to_the_same_pages_both_stay() {
    const PAGES: usize = 2048;
    const PAGE: usize = 4096;
    let m = MountGuard::new("cache=none");
    for round in 0..40 {
        let p = m.path().join(format!("holes{round}"));
        let f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        f.set_len((PAGES * PAGE) as u64).unwrap();
        // SAFETY: a fresh shared mapping of the whole file, unmapped below;
        // the mapper thread is its only user.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGES * PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        assert_ne!(map, libc::MAP_FAILED);
        let addr = map as usize;
        let (mark_map, mark_write) = (0x1111_2222_3333_4444u64, 0x5555_6666_7777_8888u64);
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..PAGES {
                    // SAFETY: inside the mapping, 8-byte aligned.
                    unsafe { ((addr + i * PAGE) as *mut u64).write_volatile(mark_map) };
                }
            });
            s.spawn(|| {
                for i in 0..PAGES {
                    f.write_all_at(&mark_write.to_ne_bytes(), (i * PAGE + 2048) as u64)
                        .unwrap();
                }
            });
        });
        // SAFETY: the mapping made above, no thread uses it any more.
        unsafe {
            assert_eq!(libc::msync(map, PAGES * PAGE, libc::MS_SYNC), 0);
            libc::munmap(map, PAGES * PAGE);
        }
        drop(f);
        let data = fs::read(&p).unwrap();
        for i in 0..PAGES {
            let at = |o: usize| u64::from_ne_bytes(data[i * PAGE + o..][..8].try_into().unwrap());
            assert_eq!(
                at(0),
                mark_map,
                "round {round}: page {i}: the mapping's write lost"
            );
            assert_eq!(
                at(2048),
                mark_write,
                "round {round}: page {i}: the direct write lost"
            );
        }
    }
}
