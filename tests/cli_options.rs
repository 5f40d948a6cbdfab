//! Mount options reach the mount: each test mounts with an option and looks
//! at what the kernel and the filesystem report (statfs, the root's owner
//! and mode, the mount flags, the daemon's threads, the control file).

mod common;
use common::*;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

fn statvfs(path: &Path) -> libc::statvfs {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: zeroed statvfs is a valid out buffer; c is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    st
}

#[test]
fn size_and_nr_inodes_show_in_statfs() {
    let m = MountGuard::new("size=64m,nr_inodes=100");
    let st = statvfs(m.path());
    assert_eq!(
        st.f_blocks * st.f_frsize,
        64 << 20,
        "df size = size= (frsize {})",
        st.f_frsize
    );
    assert_eq!(st.f_files, 100, "inodes = nr_inodes=");
    m.unmount_clean();
}

#[test]
fn size_in_percent_of_ram() {
    let m = MountGuard::new("size=10%");
    let st = statvfs(m.path());
    let ram = {
        // SAFETY: sysconf has no preconditions.
        let pages = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) } as u64;
        pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
    };
    let size = st.f_blocks * st.f_frsize;
    let want = ram / 100 * 10;
    assert!(
        size.abs_diff(want) <= 1 << 20,
        "size=10% of {ram}: df says {size}, want about {want}"
    );
    m.unmount_clean();
}

#[test]
fn uid_gid_by_name_and_mode_set_the_root() {
    let (uid, gid) = user_ids("nobody");
    let m = MountGuard::new("uid=nobody,gid=nogroup,mode=0750");
    let md = std::fs::metadata(m.path()).unwrap();
    assert_eq!((md.uid(), md.gid()), (uid, gid));
    assert_eq!(md.mode() & 0o7777, 0o750);
    m.unmount_clean();
}

#[test]
fn ro_refuses_writes() {
    let m = MountGuard::new("ro");
    let e = std::fs::write(m.path().join("f"), b"x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
    m.unmount_clean();
}

#[test]
fn vfs_flags_reach_the_kernel() {
    let m = MountGuard::new("noexec,noatime,nosuid,nodev");
    let canon = std::fs::canonicalize(m.path()).unwrap();
    let line = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(canon.to_str().unwrap()))
        .map(str::to_string)
        .expect("mountinfo line");
    let flags = line.split(' ').nth(5).unwrap().to_string();
    for f in ["noexec", "noatime", "nosuid", "nodev"] {
        assert!(flags.split(',').any(|x| x == f), "{f} in {flags}");
    }
    m.unmount_clean();
}

#[test]
fn threads_sets_the_request_loops() {
    let m = MountGuard::new("threads=3");
    let pid = m.pid().unwrap();
    let loops = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with("fuser-"))
        })
        .count();
    assert_eq!(loops, 3, "FUSE request threads with threads=3");
    m.unmount_clean();
}

#[test]
fn control_renames_the_control_file() {
    let m = MountGuard::new("control=.stats");
    assert!(
        m.path().join(".stats").exists(),
        "control=.stats at the root"
    );
    assert!(!m.path().join(".zsfs").exists(), "the default name is gone");
    m.unmount_clean();
}

#[test]
fn fstab_words_mount_like_no_options() {
    let m = MountGuard::new(
        "defaults,rw,auto,nofail,user,users,_netdev,x-systemd.automount,x-systemd.idle-timeout=60,comment=zsfs",
    );
    std::fs::write(m.path().join("f"), b"ok").unwrap();
    assert_eq!(std::fs::read(m.path().join("f")).unwrap(), b"ok");
    m.unmount_clean();
}

/// A root mount is open to every user, as tmpfs is; the permission bits
/// decide (default_permissions), not FUSE's mounter-only rule.
#[test]
fn root_mount_lets_other_users_in_and_checks_permissions() {
    assert!(is_root(), "mounts as root and switches users");
    let m = MountGuard::new("mode=1777");
    std::fs::create_dir(m.path().join("private")).unwrap();
    std::fs::set_permissions(
        m.path().join("private"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let as_nobody = |script: String| {
        std::process::Command::new("runuser")
            .args(["-u", "nobody", "--", "sh", "-c", &script])
            .current_dir("/")
            .output()
            .unwrap()
    };
    let p = m.path().display();
    let out = as_nobody(format!("echo hi > {p}/mine && cat {p}/mine"));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n", "{out:?}");
    let out = as_nobody(format!("ls {p}/private"));
    assert!(
        !out.status.success(),
        "0700 dir of root is closed to nobody"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"));
    m.unmount_clean();
}
