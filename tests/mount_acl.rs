//! POSIX ACLs through a real mount (FUSE_POSIX_ACL): setfacl/getfacl from
//! the `acl` package against a zsfs mounted by [`MountGuard`]. The kernel
//! enforces the ACLs; these tests check that it sees what zsfs stores, that
//! zsfs applies default ACLs and the umask on create, and that chmod and
//! `cp -a` treat ACLs as tmpfs does. Another user's access is tried with
//! `runuser -u tests`, so the tests need root (CI runs them as root).

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn run(prog: &str, args: &[&str], dir: &Path) -> Output {
    Command::new(prog)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {prog}: {e} (setfacl/getfacl: Debian package acl)"))
}

fn ok(prog: &str, args: &[&str], dir: &Path) -> String {
    let o = run(prog, args, dir);
    assert!(
        o.status.success(),
        "{prog} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// The ACL of `path` as getfacl prints it, without the header comments
/// and the effective-rights comments.
fn acl_of(path: &str, dir: &Path) -> String {
    ok("getfacl", &["-c", "-E", path], dir)
}

/// Whether `user` can read `path` (through the kernel's permission check).
fn can_read(user: &str, path: &Path) -> bool {
    Command::new("runuser")
        .args(["-u", user, "--", "cat"])
        .arg(path)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().mode() & 0o7777
}

fn setup() -> Option<MountGuard> {
    if !is_root() {
        eprintln!("skipped: needs root to act as another user");
        return None;
    }
    ensure_user("tests");
    ensure_user("pjdfstest");
    Some(MountGuard::new(""))
}

#[test]
fn access_acl_lets_another_user_read_a_private_file() {
    let Some(m) = setup() else { return };
    let f = m.path().join("secret");
    fs::write(&f, b"hello\n").unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
    assert!(!can_read("tests", &f), "0600 without an ACL");

    ok("setfacl", &["-m", "u:tests:r", "secret"], m.path());
    assert_eq!(
        acl_of("secret", m.path()),
        "user::rw-\nuser:tests:r--\ngroup::---\nmask::r--\nother::---\n\n"
    );
    // The mode's group bits show the mask (posix_acl_update_mode).
    assert_eq!(mode(&f), 0o640);
    assert!(can_read("tests", &f), "the ACL grants tests read");
    // Only tests: pjdfstest is neither owner, named, in group root, nor
    // "other" with any rights.
    assert!(!can_read("pjdfstest", &f), "other users still refused");

    // Removing the ACL takes the access away again.
    ok("setfacl", &["-b", "secret"], m.path());
    assert_eq!(
        acl_of("secret", m.path()),
        "user::rw-\ngroup::---\nother::---\n\n"
    );
    assert!(!can_read("tests", &f));
    assert_eq!(mode(&f), 0o600);
    m.unmount_clean();
}

#[test]
fn default_acl_is_inherited_by_new_files_and_directories() {
    let Some(m) = setup() else { return };
    let p = m.path();
    fs::create_dir(p.join("d")).unwrap();
    ok("setfacl", &["-d", "-m", "u:tests:rwx,o::-", "d"], p);
    // umask 077 would give 0600/0700; a default ACL replaces the umask.
    ok(
        "sh",
        &[
            "-c",
            "umask 077 && echo x > d/f && mkdir d/s && echo y > plain && mkdir pdir",
        ],
        p,
    );
    assert_eq!(
        mode(&p.join("d/f")),
        0o660,
        "0666 limited by o::-, not umask"
    );
    assert_eq!(
        acl_of("d/f", p),
        "user::rw-\nuser:tests:rwx\ngroup::r-x\nmask::rw-\nother::---\n\n"
    );
    assert_eq!(mode(&p.join("d/s")), 0o770);
    let sub = acl_of("d/s", p);
    assert!(
        sub.contains("user:tests:rwx\n") && sub.contains("default:user:tests:rwx\n"),
        "subdirectory gets the access and the default ACL:\n{sub}"
    );
    // The kernel enforces the inherited ACL: tests may write in d/s.
    let o = Command::new("runuser")
        .args(["-u", "tests", "--", "sh", "-c", "echo z > s/by-tests"])
        .current_dir(p.join("d"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(can_read("tests", &p.join("d/f")));
    // Without a default ACL the umask applies (FUSE_DONT_MASK leaves it to
    // zsfs), and nothing is inherited.
    assert_eq!(mode(&p.join("plain")), 0o600);
    assert_eq!(mode(&p.join("pdir")), 0o700);
    assert_eq!(acl_of("plain", p), "user::rw-\ngroup::---\nother::---\n\n");
    m.unmount_clean();
}

#[test]
fn chmod_updates_the_mask() {
    let Some(m) = setup() else { return };
    let p = m.path();
    let f = p.join("f");
    fs::write(&f, b"data\n").unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
    ok("setfacl", &["-m", "u:tests:rw", "f"], p);
    assert!(can_read("tests", &f));
    // chmod g-rwx sets the mask to ---: the named entry stays but gives
    // nothing (posix_acl_chmod, which under FUSE is zsfs's to do).
    fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(
        acl_of("f", p),
        "user::rw-\nuser:tests:rw-\ngroup::---\nmask::---\nother::---\n\n"
    );
    assert!(!can_read("tests", &f), "mask --- refuses the named user");
    fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).unwrap();
    assert!(acl_of("f", p).contains("mask::r--\n"));
    assert!(can_read("tests", &f), "mask r-- lets it read again");
    m.unmount_clean();
}

#[test]
fn cp_a_keeps_acls() {
    let Some(m) = setup() else { return };
    let p = m.path();
    fs::create_dir_all(p.join("src/sub")).unwrap();
    fs::write(p.join("src/file"), b"1").unwrap();
    fs::write(p.join("src/sub/plain"), b"2").unwrap();
    ok(
        "setfacl",
        &["-m", "u:tests:r,g:pjdfstest:rw", "src/file"],
        p,
    );
    ok("setfacl", &["-d", "-m", "u:tests:rwx", "src/sub"], p);
    ok("setfacl", &["-m", "u:pjdfstest:rx", "src/sub"], p);
    ok("cp", &["-a", "src", "dst"], p);
    // One `# file:` block per file, sorted: a tree copied out to another
    // filesystem and back lists in that filesystem's order, and the order
    // of a listing is not what is compared.
    let tree = |root: &str| {
        let text = ok("getfacl", &["-R", "-E", "-p", root], p).replace(root, "ROOT");
        let mut files: Vec<String> = text.split("\n\n").map(str::to_string).collect();
        files.sort();
        files.join("\n\n")
    };
    let (a, b) = (tree("src"), tree("dst"));
    assert!(a.contains("user:tests:r--") && a.contains("default:user:tests:rwx"));
    assert_eq!(a, b, "cp -a copied every ACL");
    // And out of the mount and back (the case the issue names).
    let out = tempfile::tempdir().unwrap();
    let back = p.join("back");
    ok("cp", &["-a", "src", out.path().to_str().unwrap()], p);
    ok(
        "cp",
        &[
            "-a",
            out.path().join("src").to_str().unwrap(),
            back.to_str().unwrap(),
        ],
        p,
    );
    assert_eq!(tree("back"), a);
    m.unmount_clean();
}

#[test]
fn acl_xattr_errors_are_tmpfs_ones() {
    let Some(m) = setup() else { return };
    let f = m.path().join("f");
    fs::write(&f, b"x").unwrap();
    let path = std::ffi::CString::new(f.as_os_str().as_encoded_bytes()).unwrap();
    let errno = |rc: libc::c_int| {
        if rc == 0 {
            0
        } else {
            std::io::Error::last_os_error().raw_os_error().unwrap()
        }
    };
    // u::rw-,g::r--,o::r--: the kernel's format (version 2, 8-byte entries).
    let mut minimal = 2u32.to_le_bytes().to_vec();
    for (tag, perm) in [(1u16, 6u16), (4, 4), (0x20, 4)] {
        minimal.extend_from_slice(&tag.to_le_bytes());
        minimal.extend_from_slice(&perm.to_le_bytes());
        minimal.extend_from_slice(&u32::MAX.to_le_bytes());
    }
    let set = |name: &std::ffi::CStr, v: &[u8]| {
        // SAFETY: valid C strings and a buffer of v.len() bytes.
        errno(unsafe {
            libc::setxattr(path.as_ptr(), name.as_ptr(), v.as_ptr().cast(), v.len(), 0)
        })
    };
    let remove = |name: &std::ffi::CStr| {
        // SAFETY: valid C strings.
        errno(unsafe { libc::removexattr(path.as_ptr(), name.as_ptr()) })
    };
    // As tmpfs (simple_set_acl): removing an ACL that is not there succeeds.
    assert_eq!(remove(c"system.posix_acl_access"), 0);
    assert_eq!(remove(c"system.posix_acl_default"), 0);
    // A default ACL only on directories (vfs_set_acl).
    assert_eq!(set(c"system.posix_acl_default", &minimal), libc::EACCES);
    assert_eq!(set(c"system.posix_acl_access", b"junk"), libc::EOPNOTSUPP);
    // An ACL the mode bits express is not stored.
    assert_eq!(set(c"system.posix_acl_access", &minimal), 0);
    let mut buf = [0u8; 64];
    // SAFETY: valid C string and buffer.
    let n = unsafe { libc::listxattr(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert_eq!(n, 0, "no xattr listed");
    m.unmount_clean();
}

/// Run `zsfs ARGS`: it must fail and say that the mount has `xattr=off`.
fn zsfs_fails_naming_xattr_off(args: &[&std::ffi::OsStr]) {
    let out = Command::new(zsfs_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("xattr=off"),
        "zsfs {args:?} worked, or did not say why not: {out:?}"
    );
}

/// `xattr=off` (the speed trade for trees that need no xattrs): every
/// xattr call fails with EOPNOTSUPP, as on a filesystem without them, so
/// no ACL can be set either; data, owners and modes work as before; `zsfs
/// stats FILE` says why it has no figures; a remount cannot turn xattrs
/// back on.
#[test]
fn xattr_off_refuses_xattrs_and_acls_and_nothing_else() {
    if !is_root() {
        eprintln!("skipped: chown needs root");
        return;
    }
    let m = MountGuard::new("xattr=off");
    let f = m.path().join("f");
    fs::write(&f, b"data\n").unwrap();
    let (uid, gid) = (12345, 23456);
    std::os::unix::fs::chown(&f, Some(uid), Some(gid)).unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).unwrap();
    let md = fs::metadata(&f).unwrap();
    assert_eq!((md.uid(), md.gid(), mode(&f)), (uid, gid, 0o640));
    assert_eq!(fs::read(&f).unwrap(), b"data\n");

    let c = |s: &str| std::ffi::CString::new(s).unwrap();
    let path = c(f.to_str().unwrap());
    let name = c("user.a");
    let eopnotsupp = || std::io::Error::last_os_error().raw_os_error() == Some(libc::EOPNOTSUPP);
    // SAFETY: NUL-terminated strings and buffers valid for their lengths.
    unsafe {
        let rc = libc::setxattr(path.as_ptr(), name.as_ptr(), b"1".as_ptr().cast(), 1, 0);
        assert!(rc == -1 && eopnotsupp(), "setxattr: {rc}");
        let mut buf = [0u8; 64];
        let rc = libc::getxattr(path.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), 64);
        assert!(rc == -1 && eopnotsupp(), "getxattr: {rc}");
        let rc = libc::listxattr(path.as_ptr(), buf.as_mut_ptr().cast(), 64);
        assert!(rc == -1 && eopnotsupp(), "listxattr: {rc}");
        let rc = libc::removexattr(path.as_ptr(), name.as_ptr());
        assert!(rc == -1 && eopnotsupp(), "removexattr: {rc}");
    }
    // A numeric user, so setfacl fails at the xattr call and not at NSS.
    let o = run("setfacl", &["-m", "u:12345:r", "f"], m.path());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("not supported"),
        "setfacl on an xattr=off mount: {o:?}"
    );

    zsfs_fails_naming_xattr_off(&["stats".as_ref(), f.as_os_str()]);
    zsfs_fails_naming_xattr_off(&[
        "-o".as_ref(),
        "remount,xattr=on".as_ref(),
        m.path().as_os_str(),
    ]);
    let mut buf = [0u8; 64];
    // SAFETY: as above.
    let rc = unsafe { libc::getxattr(path.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), 64) };
    assert!(
        rc == -1 && eopnotsupp(),
        "getxattr after the refused remount: {rc}"
    );
    m.unmount_clean();
}
