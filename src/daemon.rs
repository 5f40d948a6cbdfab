//! Mounting, detaching into the background, clean shutdown on signals, and
//! unmounting a mount whose daemon died.
//!
//! Processes (all forked before any thread exists, because a fork copies
//! only the calling thread and a lock held by another one would stay held):
//!
//! ```text
//!  zsfs MOUNTPOINT          (the "launcher"; absent with -f)
//!   └─ daemon               mounts, serves, exits 0 once unmounted
//!       └─ watcher          "zsfs-watch": unmounts if the daemon dies
//! ```
//!
//! - The launcher forks the daemon and waits on a status pipe for one line:
//!   `OK` once the mount is ready (the kernel's INIT answered, so the first
//!   access is served), or `ERR message`. EOF without a line means the
//!   daemon died; the launcher exits non-zero in both failure cases, and
//!   since a failed `Session::new` unmounts before returning, nothing is
//!   left mounted.
//! - The watcher is forked before the mount, so it never holds the
//!   `/dev/fuse` descriptor (which would keep a dead connection alive). It
//!   reads a pipe from the daemon: `M major:minor` once mounted, `X` on a
//!   clean exit. EOF after `M` without `X` means the daemon died (kill -9,
//!   crash, OOM): the watcher lazily unmounts the mount if the same device is
//!   still mounted there, so nobody meets "Transport endpoint is not
//!   connected". This is what fusermount3's `auto_unmount` does, but that
//!   one needs `allow_other` for ordinary users (libfuse issue #586).
//! - When the kernel connection is gone, the daemon drops the filesystem
//!   and exits from the adapter's `destroy`, before fuser's session drop,
//!   which unmounts by path and would otherwise take down a zsfs mounted at
//!   the same place while this daemon was still tearing down a large pool.
//! - SIGINT, SIGTERM and SIGHUP are blocked in every thread and taken by one
//!   thread with `sigwait`, which unmounts (lazily if the mount is busy);
//!   the request loops then see ENODEV, `run` returns and the daemon exits
//!   0. A second signal makes a daemon kept alive by a busy, lazily
//!   detached mount exit (status 1), which aborts the FUSE connection.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use zsfs::config::Config;
use zsfs::sys::mountinfo;

/// How a mount attempt ended, as the process exit code.
pub(crate) const EXIT_OK: i32 = 0;
pub(crate) const EXIT_FAIL: i32 = 1;

/// Mount `config` at `mountpoint` (absolute, canonical, checked by
/// [`check_mountpoint`]) and serve until unmounted. Returns the exit code.
pub(crate) fn mount_and_serve(config: &Config, mountpoint: &Path, foreground: bool) -> i32 {
    let mut status = None;
    if !foreground {
        let (read_end, write_end) = match pipe() {
            Ok(p) => p,
            Err(e) => {
                eprintln!("zsfs: cannot create a pipe: {e}");
                return EXIT_FAIL;
            }
        };
        // SAFETY: single-threaded here (main forks before starting anything).
        match unsafe { libc::fork() } {
            -1 => {
                eprintln!("zsfs: cannot fork: {}", io::Error::last_os_error());
                return EXIT_FAIL;
            }
            0 => {
                drop(read_end);
                // Own session: the daemon outlives the terminal and its signals.
                // SAFETY: no preconditions.
                unsafe { libc::setsid() };
                status = Some(File::from(write_end));
            }
            pid => {
                drop(write_end);
                return launcher_wait(File::from(read_end), pid, mountpoint);
            }
        }
    }
    let code = daemon(config, mountpoint, foreground, status);
    // Exit without running other cleanup: threads may still hold the session.
    std::process::exit(code);
}

/// The launcher's side: wait for the daemon's verdict.
fn launcher_wait(mut status: File, pid: libc::pid_t, mountpoint: &Path) -> i32 {
    // One line; not to EOF, which would also wait for anything that
    // inherited the write end.
    let mut buf = String::new();
    let _ = io::BufRead::read_line(&mut io::BufReader::new(&mut status), &mut buf);
    if buf.starts_with("OK") {
        return EXIT_OK;
    }
    if let Some(msg) = buf.strip_prefix("ERR ") {
        eprintln!("zsfs: {}", msg.trim_end());
    } else {
        let mut st = 0;
        // SAFETY: pid is our child.
        unsafe { libc::waitpid(pid, &mut st, 0) };
        eprintln!(
            "zsfs: the daemon for {} exited before the mount was ready ({}); run with -f to see its log",
            mountpoint.display(),
            describe_wait_status(st)
        );
        return EXIT_FAIL;
    }
    let mut st = 0;
    // SAFETY: pid is our child; it exits right after reporting an error.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    EXIT_FAIL
}

fn describe_wait_status(st: libc::c_int) -> String {
    if libc::WIFEXITED(st) {
        format!("exit status {}", libc::WEXITSTATUS(st))
    } else if libc::WIFSIGNALED(st) {
        format!("killed by signal {}", libc::WTERMSIG(st))
    } else {
        format!("wait status {st}")
    }
}

fn report(status: Option<&mut File>, line: &str) {
    if let Some(f) = status {
        let _ = f.write_all(line.as_bytes());
        let _ = f.flush();
    }
}

/// The daemon proper: mount, report, serve. Returns the exit code.
fn daemon(config: &Config, mountpoint: &Path, foreground: bool, mut status: Option<File>) -> i32 {
    let fail = |status: Option<&mut File>, msg: String| {
        if status.is_some() {
            report(status, &format!("ERR {msg}\n"));
        } else {
            eprintln!("zsfs: {msg}");
        }
        EXIT_FAIL
    };
    let watcher = match Watcher::spawn(mountpoint) {
        Ok(w) => w,
        Err(e) => {
            return fail(
                status.as_mut(),
                format!("cannot start the unmount watcher: {e}"),
            )
        }
    };
    // Blocked before any thread exists, so every thread inherits the mask and
    // only the sigwait thread ever takes these signals.
    let sigs = shutdown_signals();
    // SAFETY: sigs is a valid, initialised set.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &sigs, std::ptr::null_mut()) };

    // Shared with the exit in `destroy` (below), which must tell the
    // watcher first that this is a clean exit.
    let watcher = std::sync::Arc::new(parking_lot::Mutex::new(watcher));
    let on_destroy: Box<dyn FnOnce() + Send> = {
        let watcher = watcher.clone();
        let mp = mountpoint.to_path_buf();
        Box::new(move || {
            // The connection is gone and the pool torn down. Exit here rather
            // than return through fuser, whose session drop unmounts by path
            // and would take down a zsfs mounted at the same place since
            // (a remount right after umount, while this daemon was still
            // freeing a large pool).
            watcher.lock().clean_exit();
            log::info!("zsfs on {}: unmounted", mp.display());
            log::logger().flush();
            // SAFETY: _exit ends the process without running destructors,
            // which is the point; every request loop has already returned.
            unsafe { libc::_exit(EXIT_OK) }
        })
    };
    let mut session = match zsfs::mount::session(config, mountpoint, Some(on_destroy)) {
        Ok(s) => s,
        Err(e) => return fail(status.as_mut(), mount_error_message(mountpoint, &e)),
    };
    let dev = mount_device(mountpoint);
    if let Some(dev) = &dev {
        watcher.lock().armed(dev);
    }
    let unmounter = session.unmount_callable();
    let mp = mountpoint.to_path_buf();
    if let Err(e) = std::thread::Builder::new()
        .name("zsfs-signals".into())
        .spawn(move || signal_thread(sigs, unmounter, mp))
    {
        drop(session);
        return fail(
            status.as_mut(),
            format!("cannot start the signal thread: {e}"),
        );
    }
    // SAFETY: chdir to a constant path; the daemon must not keep a directory busy.
    unsafe { libc::chdir(c"/".as_ptr()) };
    if foreground {
        sd_notify_ready();
    } else {
        detach_stdio();
        report(status.as_mut(), "OK\n");
        // Closed now: the launcher may exit.
        drop(status.take());
    }
    log::info!("zsfs mounted on {}", mountpoint.display());
    let result = session.run();
    watcher.lock().clean_exit();
    match result {
        Ok(()) => EXIT_OK,
        // A request loop that was reading a request at the moment the
        // unmount tore the connection down gets ECONNABORTED rather than
        // ENODEV (the kernel's fuse_dev_do_read); the unmount is still clean.
        Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => {
            log::info!(
                "zsfs on {}: connection closed during a read ({e}); unmounted",
                mountpoint.display()
            );
            EXIT_OK
        }
        Err(e) => {
            log::error!(
                "zsfs on {}: session ended with an error: {e}",
                mountpoint.display()
            );
            EXIT_FAIL
        }
    }
}

/// Turn fuser's mount error into a sentence that says what to do.
fn mount_error_message(mountpoint: &Path, e: &io::Error) -> String {
    let mp = mountpoint.display();
    let text = e.to_string();
    if text.contains("user_allow_other") {
        return format!(
            "cannot mount {mp}: allow_other needs `user_allow_other` in /etc/fuse.conf \
             (ask root to add it), or mount without allow_other"
        );
    }
    if e.kind() == io::ErrorKind::NotFound && !Path::new("/dev/fuse").exists() {
        return format!(
            "cannot mount {mp}: /dev/fuse is missing; load the module (modprobe fuse) or \
             install fuse3"
        );
    }
    if !is_root()
        && File::options()
            .read(true)
            .write(true)
            .open("/dev/fuse")
            .is_err()
    {
        return format!(
            "cannot mount {mp}: /dev/fuse is not readable and writable by you ({text}); \
             it is normally mode 0666 (set by udev): `chmod 0666 /dev/fuse` as root"
        );
    }
    let who = if is_root() {
        ""
    } else {
        " (ordinary users mount through fusermount3 from the fuse3 package: is it installed?)"
    };
    format!("cannot mount {mp}: {}{who}", text.trim_end())
}

pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn shutdown_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set; the signal numbers are valid.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        set
    }
}

/// First signal: unmount (lazily when busy). Second: abort the connection.
fn signal_thread(
    sigs: libc::sigset_t,
    mut unmounter: fuser::SessionUnmounter,
    mountpoint: PathBuf,
) {
    let mut count = 0;
    loop {
        let mut sig = 0;
        // SAFETY: sigs is valid and blocked in this thread.
        if unsafe { libc::sigwait(&sigs, &mut sig) } != 0 {
            continue;
        }
        count += 1;
        if count == 1 {
            log::info!("signal {sig}: unmounting {}", mountpoint.display());
            if let Err(e) = unmounter.unmount() {
                // EBUSY: files are open there. Detach it now; the daemon goes
                // on serving the open files and exits when the last is closed.
                log::warn!(
                    "unmounting {} failed ({e}); detaching it lazily",
                    mountpoint.display()
                );
                lazy_unmount(&mountpoint);
            }
        } else {
            // Exiting closes /dev/fuse, which aborts the connection: what is
            // still open in the detached mount gets errors, as asked twice.
            log::warn!(
                "signal {sig} again: exiting; files still open under {} lose their data",
                mountpoint.display()
            );
            std::process::exit(EXIT_FAIL);
        }
    }
}

/// `umount -l`, or `fusermount3 -u -z` for an ordinary user.
pub(crate) fn lazy_unmount(mountpoint: &Path) {
    if is_root() {
        if let Ok(c) = CString::new(mountpoint.as_os_str().as_bytes()) {
            // SAFETY: c is a valid C string.
            if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
                return;
            }
        }
    }
    let _ = std::process::Command::new("fusermount3")
        .args([
            OsStr::new("-u"),
            OsStr::new("-z"),
            OsStr::new("--"),
            mountpoint.as_os_str(),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// Tell systemd (Type=notify) that the mount is ready, when run under it.
fn sd_notify_ready() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let bytes = path.as_bytes();
    let addr = if let Some(name) = bytes.strip_prefix(b"@") {
        SocketAddr::from_abstract_name(name)
    } else {
        SocketAddr::from_pathname(Path::new(&path))
    };
    if let (Ok(addr), Ok(sock)) = (addr, UnixDatagram::unbound()) {
        let _ = sock.send_to_addr(b"READY=1\n", &addr);
    }
}

/// stdin, stdout and stderr go to /dev/null: the daemon logs to syslog or
/// `log=PATH` (see `zsfs::sys::log`), never into the output of whatever
/// mounted it, and a caller capturing our output must not wait for the
/// unmount.
fn detach_stdio() {
    let Ok(null) = File::options().read(true).write(true).open("/dev/null") else {
        return;
    };
    for fd in 0..=2 {
        // SAFETY: dup2 onto a standard descriptor, from a valid fd.
        unsafe { libc::dup2(null.as_raw_fd(), fd) };
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 just returned these, and nobody else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The daemon's end of the watcher pipe.
struct Watcher {
    /// Write end; `None` once the clean exit was announced. Closing it
    /// without `X` is how the watcher learns the daemon died.
    pipe: Option<File>,
}

impl Watcher {
    fn spawn(mountpoint: &Path) -> io::Result<Watcher> {
        let (read_end, write_end) = pipe()?;
        let mp = CString::new(mountpoint.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in mountpoint"))?;
        // SAFETY: single-threaded here (see the module comment).
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            0 => {
                drop(write_end);
                watcher_main(read_end, &mp);
            }
            _ => {
                drop(read_end);
                Ok(Watcher {
                    pipe: Some(File::from(write_end)),
                })
            }
        }
    }

    fn armed(&mut self, dev: &str) {
        if let Some(p) = &mut self.pipe {
            let _ = writeln!(p, "M {dev}");
        }
    }

    fn clean_exit(&mut self) {
        if let Some(mut p) = self.pipe.take() {
            let _ = p.write_all(b"X\n");
        }
    }
}

/// The watcher process. Never returns.
fn watcher_main(pipe: OwnedFd, mountpoint: &CString) -> ! {
    // Named first, so that nothing sees two processes called zsfs for long.
    // SAFETY: prctl with a valid NUL-terminated name.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"zsfs-watch".as_ptr(), 0, 0, 0) };
    let keep = pipe.as_raw_fd();
    close_other_fds(keep);
    // SAFETY: plain libc calls on constant arguments / our own descriptors.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            libc::dup2(null, 0);
            libc::dup2(null, 1);
            libc::dup2(null, 2);
            if null > 2 {
                libc::close(null);
            }
        }
        libc::chdir(c"/".as_ptr());
        // A Ctrl-C or SIGTERM meant for the daemon must not end the watcher
        // first; it ends by itself once the daemon is gone.
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGPIPE] {
            libc::signal(s, libc::SIG_IGN);
        }
    }
    // The OOM killer may take the daemon; it must not take the process that
    // cleans up after it (lowering the score needs root; else a no-op).
    let _ = std::fs::write("/proc/self/oom_score_adj", "-1000");
    let mut msg = Vec::new();
    let _ = File::from(pipe).read_to_end(&mut msg);
    let msg = String::from_utf8_lossy(&msg);
    let dev = msg
        .lines()
        .find_map(|l| l.strip_prefix("M "))
        .map(str::to_string);
    let clean = msg.lines().any(|l| l == "X");
    if let (Some(dev), false) = (dev, clean) {
        let mp = Path::new(OsStr::from_bytes(mountpoint.as_bytes()));
        if mount_device(mp).as_deref() == Some(dev.as_str()) {
            lazy_unmount(mp);
        }
    }
    // SAFETY: leaving without running the parent's atexit handlers.
    unsafe { libc::_exit(0) }
}

fn close_other_fds(keep: i32) {
    let fds: Vec<i32> = match std::fs::read_dir("/proc/self/fd") {
        Ok(rd) => rd
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => (3..1024).collect(),
    };
    for fd in fds {
        if fd > 2 && fd != keep {
            // SAFETY: closing descriptors this process will not use again.
            unsafe { libc::close(fd) };
        }
    }
}

/// The device of the topmost mount at `mountpoint`, if any.
fn mount_device(mountpoint: &Path) -> Option<String> {
    mountinfo::mount_at(mountpoint).map(|m| m.dev)
}

/// Check the mountpoint before forking, so every mistake is reported by the
/// command the user ran. Returns the canonical absolute path.
pub(crate) fn check_mountpoint(path: &Path) -> Result<PathBuf, String> {
    let shown = path.display();
    let canon = match std::fs::canonicalize(path) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(format!(
                "mountpoint {shown} does not exist; create it first (mkdir -p {shown})"
            ))
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            return Err(format!(
                "mountpoint {shown} is a dead FUSE mount (Transport endpoint is not \
                 connected); clear it with `fusermount3 -uz {shown}` (or `umount -l {shown}` \
                 as root), then mount again"
            ))
        }
        Err(e) => return Err(format!("cannot use mountpoint {shown}: {e}")),
    };
    match std::fs::metadata(&canon) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(format!("mountpoint {shown} is not a directory")),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            return Err(format!(
                "mountpoint {shown} is a dead FUSE mount; clear it with `fusermount3 -uz {shown}`"
            ))
        }
        Err(e) => return Err(format!("cannot use mountpoint {shown}: {e}")),
    }
    if let Some(m) = mountinfo::mount_at(&canon) {
        return Err(format!(
            "mountpoint {shown} is already in use ({} from {} is mounted there); unmount it \
             first",
            m.fstype, m.source
        ));
    }
    Ok(canon)
}

/// Whether /etc/fuse.conf allows ordinary users `allow_other`.
pub(crate) fn user_allow_other_enabled() -> bool {
    std::fs::read_to_string("/etc/fuse.conf")
        .map(|t| {
            t.lines()
                .any(|l| l.split('#').next().unwrap_or("").trim() == "user_allow_other")
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountpoint_checks_say_what_is_wrong() {
        let e = check_mountpoint(Path::new("/nonexistent/zsfs-test")).unwrap_err();
        assert!(e.contains("does not exist") && e.contains("mkdir"), "{e}");
        let f = tempfile::NamedTempFile::new().unwrap();
        let e = check_mountpoint(f.path()).unwrap_err();
        assert!(e.contains("not a directory"), "{e}");
        let e = check_mountpoint(Path::new("/proc")).unwrap_err();
        assert!(e.contains("already in use") && e.contains("proc"), "{e}");
        let d = tempfile::tempdir().unwrap();
        assert_eq!(
            check_mountpoint(d.path()).unwrap(),
            std::fs::canonicalize(d.path()).unwrap()
        );
    }
}
