//! mount-helpers/: `mount -t fuse.zsfs`, fstab (`mount -T FILE -a`), the
//! systemd unit example, mounting as an ordinary user through fusermount3,
//! and that `umount`, `fusermount3 -u` and kill -9 all leave nothing behind.
//!
//! mount(8) runs helpers only from /sbin, so the tests that go through it
//! install /sbin/mount.fuse.zsfs for their duration (unless one is already
//! installed, which they then use with ZSFS_BIN pointing at this build), under
//! a lock so they do not race each other. They run as root.
//!
//! The test process makes itself a child subreaper, so a daemon that
//! detached from `mount` becomes its child and its exit status can be read.

mod common;
use common::*;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Once;
use std::time::Duration;

const HELPER: &str = "/sbin/mount.fuse.zsfs";

fn helper_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("mount-helpers/mount.fuse.zsfs")
}

fn become_subreaper() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: prctl with constant arguments.
        let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        assert_eq!(rc, 0, "PR_SET_CHILD_SUBREAPER");
    });
}

/// /sbin/mount.fuse.zsfs for the duration of a test, and the lock that
/// serialises the tests using it.
struct SystemHelper {
    _lock: File,
    /// Whether this guard created the helper (and so removes it).
    created: bool,
}

impl SystemHelper {
    fn install() -> SystemHelper {
        assert!(is_root(), "mount(8) helper tests run as root");
        let lock_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("zsfs-sbin-helper.lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .unwrap();
        // SAFETY: flock on our own descriptor.
        assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
        let created = !Path::new(HELPER).exists();
        if created {
            let text = std::fs::read_to_string(helper_source()).unwrap();
            let text = text.replace("@ZSFS_BIN@", zsfs_bin().to_str().unwrap());
            std::fs::write(HELPER, text).unwrap();
            std::fs::set_permissions(HELPER, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        SystemHelper {
            _lock: lock,
            created,
        }
    }
}

impl Drop for SystemHelper {
    fn drop(&mut self) {
        if self.created {
            let _ = std::fs::remove_file(HELPER);
        }
    }
}

/// Run mount(8) (or another command) with ZSFS_BIN set to this build.
fn run(cmd: &mut Command) -> Output {
    cmd.env("ZSFS_BIN", zsfs_bin())
        .stdin(Stdio::null())
        .output()
        .expect("run command")
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn ppid(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name: state, ppid, ...
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// The daemon (not its watcher, which is its child) serving `path`.
fn daemon_pid(path: &Path) -> u32 {
    let mut found = Vec::new();
    wait_until(Duration::from_secs(5), || {
        let all = pids_mentioning(path);
        found = all
            .iter()
            .copied()
            .filter(|p| comm(*p) == "zsfs" && !all.contains(&ppid(*p)))
            .collect();
        found.len() == 1
    });
    assert_eq!(
        found.len(),
        1,
        "one daemon for {}: {found:?}",
        path.display()
    );
    found[0]
}

/// The watcher processes of the mount at `path`. A watcher that is running
/// `fusermount3 -u -z` has a child that, between fork and exec, also looks
/// like a watcher; the watcher reaps that one itself, so it is left out.
fn watcher_pids(path: &Path) -> Vec<u32> {
    pids_mentioning(path)
        .into_iter()
        .filter(|p| {
            comm(*p) == "zsfs-watch" && parent_of(*p).is_none_or(|pp| comm(pp) != "zsfs-watch")
        })
        .collect()
}

/// The parent pid of `pid`, from /proc (None once it is gone).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses: state, ppid.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Wait for a process that became our child (we are a subreaper) and
/// return its raw wait status.
fn reap(pid: u32) -> libc::c_int {
    let mut status = 0;
    let mut done = false;
    wait_until(Duration::from_secs(20), || {
        // SAFETY: waitpid on a specific pid with a valid status pointer.
        let r = unsafe { libc::waitpid(pid as i32, &mut status, libc::WNOHANG) };
        done = r == pid as i32;
        done
    });
    assert!(done, "process {pid} did not exit");
    status
}

/// Everything for `path` is gone: no mount, no daemon, no watcher; the
/// daemon's exit status is returned (watchers are reaped too).
fn expect_all_gone(path: &Path, daemon: u32) -> libc::c_int {
    let watchers = watcher_pids(path);
    let status = reap(daemon);
    for w in watchers {
        reap(w);
    }
    assert!(
        wait_until(Duration::from_secs(10), || !zsfs_mounted_at(path)),
        "still mounted: {}",
        path.display()
    );
    assert!(
        wait_until(Duration::from_secs(10), || pids_mentioning(path).is_empty()),
        "processes left: {:?}",
        pids_mentioning(path)
    );
    status
}

fn exited_zero(status: libc::c_int) -> bool {
    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

/// Unmounts whatever is still mounted at the given paths on drop.
struct Cleanup(Vec<PathBuf>);
impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            if zsfs_mounted_at(p) {
                unmount(p);
            }
        }
    }
}

fn tempdir_0755() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("zsfs-mh-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

#[test]
fn install_and_uninstall_into_a_prefix() {
    let prefix = tempfile::tempdir().unwrap();
    let sbin = prefix.path().join("sbin");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("mount-helpers/install.sh");
    let out = Command::new("sh")
        .arg(&script)
        .arg("--prefix")
        .arg(prefix.path())
        .arg("--sbindir")
        .arg(&sbin)
        .arg("--bin")
        .arg(zsfs_bin())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let bin = prefix.path().join("bin/zsfs");
    let helper = sbin.join("mount.fuse.zsfs");
    for f in [&bin, &helper] {
        let mode = std::fs::metadata(f).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "{}", f.display());
    }
    let text = std::fs::read_to_string(&helper).unwrap();
    assert!(
        text.contains(&format!("ZSFS_INSTALLED_BIN=\"{}\"", bin.display())),
        "the helper knows where the binary went"
    );
    assert!(prefix
        .path()
        .join("share/doc/zsfs/examples/mnt-zsfs.mount")
        .exists());
    // Man pages and completions, generated by the installed binary.
    let generated = [
        "share/man/man8/zsfs.8",
        "share/man/man8/mount.fuse.zsfs.8",
        "share/man/man1/zsfs-stats.1",
        "share/bash-completion/completions/zsfs",
        "share/zsh/site-functions/_zsfs",
    ];
    for f in generated {
        let p = prefix.path().join(f);
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(text.contains("zsfs"), "{f} is empty");
    }
    // The installed helper finds the installed binary by itself.
    let out = Command::new(&helper)
        .args(["zsfs", "/nonexistent-zsfs-dir", "-f", "-v", "-o", "size=1g"])
        .env_remove("ZSFS_BIN")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{} -o size=1g", bin.display())),
        "{err}"
    );

    let out = Command::new("sh")
        .arg(&script)
        .arg("--uninstall")
        .arg("--prefix")
        .arg(prefix.path())
        .arg("--sbindir")
        .arg(&sbin)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(!bin.exists() && !helper.exists());
    assert!(!prefix.path().join("share/doc/zsfs").exists());
    for f in generated {
        assert!(!prefix.path().join(f).exists(), "{f} left by --uninstall");
    }
    assert!(
        !prefix.path().join("share/man").exists(),
        "the emptied man directories are removed too"
    );
}

#[test]
fn helper_rejects_unknown_options_and_mounts_nothing() {
    let dir = tempdir_0755();
    let out = run(Command::new(helper_source())
        .arg("zsfs")
        .arg(dir.path())
        .args(["-o", "rw,nofail,szie=1g"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("unknown option `szie=1g`"), "{err}");
    assert!(!zsfs_mounted_at(dir.path()));
    // -f (fake) mounts nothing and succeeds.
    let out = run(Command::new(helper_source())
        .arg("zsfs")
        .arg(dir.path())
        .args(["-f", "-o", "size=1g"]));
    assert!(out.status.success(), "{out:?}");
    assert!(!zsfs_mounted_at(dir.path()));
}

#[test]
fn mount_t_fuse_zsfs_with_options_and_umount_ends_the_daemon() {
    become_subreaper();
    let _h = SystemHelper::install();
    let dir = tempdir_0755();
    let mnt = dir.path().join("m");
    std::fs::create_dir(&mnt).unwrap();
    let _c = Cleanup(vec![mnt.clone()]);
    let out = run(Command::new("mount")
        .args(["-t", "fuse.zsfs", "zsfs"])
        .arg(&mnt)
        .args([
            "-o",
            "size=64m,pool_limit=32m,mode=0750,nofail,_netdev,x-systemd.automount,noexec",
        ]));
    assert!(out.status.success(), "mount -t fuse.zsfs: {out:?}");
    assert!(zsfs_mounted_at(&mnt));
    let md = std::fs::metadata(&mnt).unwrap();
    assert_eq!(
        md.permissions().mode() & 0o7777,
        0o750,
        "mode= reached the root"
    );
    let line = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let ours = line
        .lines()
        .find(|l| l.contains(&format!(" {} ", mnt.display())))
        .unwrap();
    assert!(ours.contains("noexec"), "noexec reached the kernel: {ours}");
    let daemon = daemon_pid(&mnt);
    let out = run(Command::new("umount").arg(&mnt));
    assert!(out.status.success(), "umount: {out:?}");
    let st = expect_all_gone(&mnt, daemon);
    assert!(exited_zero(st), "daemon wait status {st:#x} after umount");
}

#[test]
fn fusermount3_u_ends_the_daemon_cleanly() {
    become_subreaper();
    let dir = tempdir_0755();
    let mnt = dir.path().join("m");
    std::fs::create_dir(&mnt).unwrap();
    let _c = Cleanup(vec![mnt.clone()]);
    let out = run(Command::new(zsfs_bin()).arg(&mnt));
    assert!(out.status.success(), "{out:?}");
    let daemon = daemon_pid(&mnt);
    let out = run(Command::new("fusermount3").arg("-u").arg(&mnt));
    assert!(out.status.success(), "fusermount3 -u: {out:?}");
    let st = expect_all_gone(&mnt, daemon);
    assert!(
        exited_zero(st),
        "daemon wait status {st:#x} after fusermount3 -u"
    );
}

#[test]
fn kill_9_of_a_mount_t_daemon_leaves_the_mountpoint_usable() {
    become_subreaper();
    let _h = SystemHelper::install();
    let dir = tempdir_0755();
    let mnt = dir.path().join("m");
    std::fs::create_dir(&mnt).unwrap();
    let _c = Cleanup(vec![mnt.clone()]);
    let out = run(Command::new("mount")
        .args(["-t", "fuse.zsfs", "zsfs"])
        .arg(&mnt)
        .args(["-o", "size=16m"]));
    assert!(out.status.success(), "{out:?}");
    std::fs::write(mnt.join("f"), b"data").unwrap();
    let daemon = daemon_pid(&mnt);
    // SAFETY: kill a process this test started.
    unsafe { libc::kill(daemon as i32, libc::SIGKILL) };
    let st = expect_all_gone(&mnt, daemon);
    assert!(libc::WIFSIGNALED(st));
    // Not "Transport endpoint is not connected": the directory is back.
    let md = std::fs::metadata(&mnt).expect("mountpoint usable after kill -9");
    assert!(md.is_dir());
    assert!(!mnt.join("f").exists());
}

/// The non-comment lines of an fstab-like file, with the mountpoint field
/// of each replaced by `mountpoint(i)`.
fn rewrite_fstab(text: &str, mountpoint: impl Fn(usize) -> PathBuf) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            let mut f: Vec<String> = l.split_whitespace().map(str::to_string).collect();
            f[1] = mountpoint(i).display().to_string();
            f.join(" ") + "\n"
        })
        .collect()
}

#[test]
fn fstab_entries_mount_with_mount_a() {
    become_subreaper();
    let _h = SystemHelper::install();
    let dir = tempdir_0755();
    let mps: Vec<PathBuf> = (0..3).map(|i| dir.path().join(format!("m{i}"))).collect();
    for p in &mps {
        std::fs::create_dir(p).unwrap();
    }
    let _c = Cleanup(mps.clone());
    // The shipped example line, then two of our own; the noauto one must
    // be left alone by -a.
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("mount-helpers/fstab.example"),
    )
    .unwrap();
    let ours =
        "zsfs X fuse.zsfs defaults,size=32m,block_size=16k,users,x-systemd.device-timeout=5 0 0\n\
                zsfs X fuse.zsfs noauto,size=8m 0 0\n";
    let fstab = rewrite_fstab(&(example + ours), |i| mps[i].clone());
    let fstab_path = dir.path().join("fstab");
    std::fs::write(&fstab_path, &fstab).unwrap();
    let out = run(Command::new("mount").arg("-T").arg(&fstab_path).arg("-a"));
    assert!(out.status.success(), "mount -T {fstab} -a: {out:?}");
    assert!(zsfs_mounted_at(&mps[0]), "the example line mounted");
    assert!(zsfs_mounted_at(&mps[1]));
    assert!(!zsfs_mounted_at(&mps[2]), "noauto is not mounted by -a");
    for p in &mps[..2] {
        let daemon = daemon_pid(p);
        let out = run(Command::new("umount").arg(p));
        assert!(out.status.success(), "{out:?}");
        assert!(exited_zero(expect_all_gone(p, daemon)));
    }
}

/// The example unit: its name matches its Where=, it sets MemoryHigh=, and
/// its What/Type/Options mount through mount(8) as systemd would run it.
#[test]
fn systemd_unit_example_is_valid_and_mounts() {
    become_subreaper();
    let unit_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("mount-helpers/mnt-zsfs.mount");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    let key = |k: &str| -> String {
        unit.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k}= missing from the unit"))
            .trim()
            .to_string()
    };
    let (what, wher, ty, opts) = (key("What"), key("Where"), key("Type"), key("Options"));
    assert!(key("MemoryHigh").ends_with('G') || key("MemoryHigh").ends_with('M'));
    assert_eq!(ty, "fuse.zsfs");
    if let Ok(out) = Command::new("systemd-escape")
        .args(["-p", "--suffix=mount"])
        .arg(&wher)
        .output()
    {
        if out.status.success() {
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                "mnt-zsfs.mount"
            );
        }
    }
    if let Ok(out) = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit_path)
        .output()
    {
        let err = String::from_utf8_lossy(&out.stderr);
        // Offline verification may complain about the absent mountpoint or
        // a missing systemd instance, never about the unit's syntax.
        assert!(
            !err.contains("Unknown key") && !err.contains("Failed to parse"),
            "systemd-analyze verify: {err}"
        );
    }
    let _h = SystemHelper::install();
    let dir = tempdir_0755();
    let mnt = dir.path().join("m");
    std::fs::create_dir(&mnt).unwrap();
    let _c = Cleanup(vec![mnt.clone()]);
    let out = run(Command::new("mount")
        .args(["-t", &ty, &what])
        .arg(&mnt)
        .args(["-o", &opts]));
    assert!(out.status.success(), "the unit's mount: {out:?}");
    assert!(zsfs_mounted_at(&mnt));
    let daemon = daemon_pid(&mnt);
    assert!(run(Command::new("umount").arg(&mnt)).status.success());
    assert!(exited_zero(expect_all_gone(&mnt, daemon)));
}

/// An ordinary user mounts on a directory they own through fusermount3,
/// uses it, and unmounts with `fusermount3 -u`; allow_other without
/// `user_allow_other` is refused with the reason; kill -9 of the user's
/// daemon unmounts too.
#[test]
fn ordinary_user_mounts_through_fusermount3() {
    assert!(is_root(), "creates and switches to a test user");
    become_subreaper();
    require_program("fusermount3", "apt-get install fuse3");
    let user = "tests";
    ensure_user(user);
    use std::os::unix::fs::FileTypeExt;
    let fuse_dev = std::fs::metadata("/dev/fuse").expect("/dev/fuse");
    assert!(
        fuse_dev.file_type().is_char_device() && fuse_dev.permissions().mode() & 0o006 == 0o006,
        "/dev/fuse must be 0666 for ordinary users, as udev makes it (.ci/run does \
         `chmod 0666 /dev/fuse`)"
    );
    let (uid, gid) = user_ids(user);
    let dir = tempdir_0755();
    // The user needs an executable copy of the binary outside root's dirs.
    let bin = dir.path().join("zsfs");
    std::fs::copy(zsfs_bin(), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mnt = dir.path().join("m");
    std::fs::create_dir(&mnt).unwrap();
    std::os::unix::fs::chown(&mnt, Some(uid), Some(gid)).unwrap();
    let _c = Cleanup(vec![mnt.clone()]);
    let as_user = |args: &[&str]| -> Output {
        Command::new("runuser")
            .args(["-u", user, "--"])
            .args(args)
            .current_dir("/")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let b = bin.to_str().unwrap();
    let m = mnt.to_str().unwrap();

    if !std::fs::read_to_string("/etc/fuse.conf")
        .unwrap_or_default()
        .lines()
        .any(|l| l.trim() == "user_allow_other")
    {
        let out = as_user(&[b, "-o", "allow_other", m]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains("user_allow_other"), "{err}");
        assert!(!zsfs_mounted_at(&mnt));
    }

    let out = as_user(&[b, "-o", "size=16m", m]);
    assert!(out.status.success(), "user mount: {out:?}");
    let info = mount_at(&mnt).expect("mounted");
    assert_eq!(info.fstype, "fuse.zsfs", "mounted by fusermount3");
    let out = as_user(&["sh", "-c", &format!("echo hello > {m}/f && cat {m}/f")]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n", "{out:?}");
    let daemon = daemon_pid(&mnt);
    assert_eq!(
        std::fs::metadata(format!("/proc/{daemon}"))
            .map(|m| {
                use std::os::unix::fs::MetadataExt;
                m.uid()
            })
            .unwrap(),
        uid,
        "the daemon runs as the user"
    );
    let out = as_user(&["fusermount3", "-u", m]);
    assert!(out.status.success(), "fusermount3 -u as the user: {out:?}");
    assert!(exited_zero(expect_all_gone(&mnt, daemon)));

    // kill -9: the watcher unmounts with fusermount3 -u -z as the user.
    let out = as_user(&[b, m]);
    assert!(out.status.success(), "{out:?}");
    let daemon = daemon_pid(&mnt);
    // SAFETY: kill a process this test started.
    unsafe { libc::kill(daemon as i32, libc::SIGKILL) };
    expect_all_gone(&mnt, daemon);
    std::fs::metadata(&mnt).expect("usable after kill -9");
}

/// Without our helper, `mount -t fuse.zsfs` falls back to the fuse3
/// package's mount.fuse3, which runs `zsfs SOURCE MOUNTPOINT -o OPTIONS`
/// from PATH: zsfs accepts that form too.
#[test]
fn fuse3_mount_helper_convention_works() {
    become_subreaper();
    let Some(mount_fuse3) = ["/sbin/mount.fuse3", "/usr/sbin/mount.fuse3"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
    else {
        panic!("mount.fuse3 is missing; install it with: apt-get install fuse3");
    };
    let dir = tempdir_0755();
    let mnt = dir.path().join("m");
    std::fs::create_dir(&mnt).unwrap();
    let _c = Cleanup(vec![mnt.clone()]);
    let path = format!(
        "{}:{}",
        zsfs_bin().parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = run(Command::new(mount_fuse3)
        .arg("zsfs")
        .arg(&mnt)
        .args(["-t", "fuse.zsfs", "-o", "size=16m,mode=0700,nofail,noexec"])
        .env("PATH", path));
    assert!(out.status.success(), "mount.fuse3: {out:?}");
    assert!(zsfs_mounted_at(&mnt));
    let md = std::fs::metadata(&mnt).unwrap();
    assert_eq!(md.permissions().mode() & 0o7777, 0o700);
    let daemon = daemon_pid(&mnt);
    assert!(run(Command::new("umount").arg(&mnt)).status.success());
    assert!(exited_zero(expect_all_gone(&mnt, daemon)));
}
