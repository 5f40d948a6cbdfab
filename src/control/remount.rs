//! `mount -o remount,OPTIONS DIR` for zsfs: what the `zsfs` command does
//! when mount(8)'s helper hands it `-o remount,...`.
//!
//! A FUSE filesystem's options live in its daemon, so a remount is two
//! halves:
//! 1. the daemon's options (`size=`, `pool_limit=`, ...) go to the control
//!    file as `remount OPTIONS` (see `fs::remount` for which may change);
//! 2. the VFS flags (`ro`, `nosuid`, `noatime`, ...) are the kernel's, set
//!    with mount(2) `MS_REMOUNT`, which needs root.
//!
//! Nothing changes unless everything can: the daemon first checks the
//! options (`remount check`), then the kernel remounts, then the daemon
//! applies them. A refusal prints the daemon's reason (the
//! `zsfs.last_error` xattr of the control file).

use crate::sys::mountinfo;
use std::ffi::CString;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// On the control file: why the last refused write was refused.
pub const LAST_ERROR_XATTR: &str = "zsfs.last_error";

/// If `-o` holds the word `remount`, the other words, comma-joined.
pub fn requested(option_args: &[String]) -> Option<String> {
    let words: Vec<&str> = option_args
        .iter()
        .flat_map(|o| o.split(','))
        .filter(|w| !w.is_empty())
        .collect();
    words.contains(&"remount").then(|| {
        let rest: Vec<&str> = words.into_iter().filter(|w| *w != "remount").collect();
        rest.join(",")
    })
}

/// Remount the zsfs at `mountpoint` with `opts` (without `remount`).
pub fn remount(mountpoint: &Path, opts: &str) -> Result<(), String> {
    let shown = mountpoint.display();
    let canon = std::fs::canonicalize(mountpoint).map_err(|e| format!("{shown}: {e}"))?;
    let Some(m) = mountinfo::mount_at(&canon).filter(|m| m.may_be_zsfs()) else {
        return Err(format!(
            "{shown} is not a zsfs mount, so it cannot be remounted"
        ));
    };
    // Syntax first, with the option parser's own messages.
    let mut probe = crate::config::Config::default();
    crate::config::apply_options(&mut probe, opts).map_err(|e| e.to_string())?;
    let control = canon.join(control_name(opts));
    if !control.is_file() {
        return Err(format!(
            "{shown} has no control file {}: not a zsfs mount (or mounted with control=NAME: pass it)",
            control.display()
        ));
    }
    let (now, want) = (current_flags(&m), wanted_flags(&m, opts));
    let daemon = |cmd: &str| send(&control, &format!("{cmd} {}", or_none(opts)));
    let kernel =
        |flags| kernel_remount(&canon, flags).map_err(|e| format!("cannot remount {shown}: {e}"));
    if now == want {
        daemon("remount check")?;
        return daemon("remount");
    }
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(format!(
            "changing the VFS flags of {shown} (ro/rw, nosuid, nodev, noexec, atime) \
             needs root; zsfs's own options can change as the mount's owner"
        ));
    }
    // The control file takes writes only while the mount is writable, so
    // the daemon's half goes first when going read-only and last when
    // coming back; either way a refusal by one half undoes the other.
    match (now & libc::MS_RDONLY != 0, want & libc::MS_RDONLY != 0) {
        (false, _) => {
            daemon("remount check")?;
            daemon("remount")?;
            kernel(want).inspect_err(|_| {
                let _ = send(&control, "remount undo");
            })
        }
        (true, false) => {
            kernel(want)?;
            daemon("remount check")
                .and_then(|()| daemon("remount"))
                .inspect_err(|_| {
                    let _ = kernel(now);
                })
        }
        (true, true) if only_vfs_words(opts) => kernel(want),
        (true, true) => Err(format!(
            "{shown} is read-only, so zsfs's own options cannot reach it; \
             add rw to this remount, or remount rw first"
        )),
    }
}

/// Whether `opts` holds nothing for the daemon: only VFS flags (and the
/// words mount(8) adds), which the kernel applies.
fn only_vfs_words(opts: &str) -> bool {
    opts.split(',').all(|w| {
        w.is_empty() || w == "defaults" || apply_word(0, w) != 0 || VFS_CLEARING.contains(&w)
    })
}

/// VFS words that only clear flags (so `apply_word(0, w)` is 0).
const VFS_CLEARING: &[&str] = &["rw", "suid", "dev", "exec", "async", "diratime"];

/// The options as one word (the command takes one; an empty remount
/// re-applies nothing but still checks the mount answers).
fn or_none(opts: &str) -> &str {
    if opts.is_empty() {
        "defaults"
    } else {
        opts
    }
}

fn control_name(opts: &str) -> String {
    opts.split(',')
        .find_map(|w| w.strip_prefix("control="))
        .unwrap_or(".zsfs")
        .to_string()
}

/// Write one command to the control file; on refusal, the daemon's reason.
fn send(control: &Path, cmd: &str) -> Result<(), String> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(control)
        .map_err(|e| format!("cannot open {}: {e}", control.display()))?;
    match f.write_all(format!("{cmd}\n").as_bytes()) {
        Ok(()) => Ok(()),
        Err(e) => Err(refusal(control, e)),
    }
}

/// What to say for a refused write `e`: the daemon's reason, read back
/// from the control file's `zsfs.last_error` (it says "remount: why"; the
/// caller says remount already), or why it cannot be read back.
fn refusal(control: &Path, e: std::io::Error) -> String {
    match crate::sys::xattr::get(control, LAST_ERROR_XATTR) {
        Ok(why) if !why.is_empty() => String::from_utf8_lossy(&why)
            .trim_start_matches("remount: ")
            .to_string(),
        Err(x) if x.raw_os_error() == Some(libc::EOPNOTSUPP) => format!(
            "{e}: the daemon logged why (this mount has xattr=off, so the reason \
             cannot be read back here)"
        ),
        _ => e.to_string(),
    }
}

/// The MS_* flags a remount passes: the ones mountinfo shows now.
fn current_flags(m: &mountinfo::MountEntry) -> libc::c_ulong {
    let mut f = 0;
    for w in m.mount_options.split(',').chain(m.super_options.split(',')) {
        f = apply_word(f, w);
    }
    // mountinfo shows no word for strictatime: no atime word means strict.
    if f & (libc::MS_NOATIME | libc::MS_RELATIME) == 0 {
        f |= libc::MS_STRICTATIME;
    }
    f
}

/// The flags after applying `opts`' VFS words to the current ones.
fn wanted_flags(m: &mountinfo::MountEntry, opts: &str) -> libc::c_ulong {
    opts.split(',').fold(current_flags(m), apply_word)
}

/// One VFS word onto MS_* flags; other words leave them alone.
fn apply_word(f: libc::c_ulong, w: &str) -> libc::c_ulong {
    use libc::*;
    const ATIME: c_ulong = MS_NOATIME | MS_RELATIME | MS_STRICTATIME;
    match w {
        "ro" => f | MS_RDONLY,
        "rw" => f & !MS_RDONLY,
        "nosuid" => f | MS_NOSUID,
        "suid" => f & !MS_NOSUID,
        "nodev" => f | MS_NODEV,
        "dev" => f & !MS_NODEV,
        "noexec" => f | MS_NOEXEC,
        "exec" => f & !MS_NOEXEC,
        "sync" => f | MS_SYNCHRONOUS,
        "async" => f & !MS_SYNCHRONOUS,
        "dirsync" => f | MS_DIRSYNC,
        "nodiratime" => f | MS_NODIRATIME,
        "diratime" => f & !MS_NODIRATIME,
        "noatime" => (f & !ATIME) | MS_NOATIME,
        "relatime" | "atime" | "nostrictatime" => (f & !ATIME) | MS_RELATIME,
        "strictatime" | "norelatime" => (f & !ATIME) | MS_STRICTATIME,
        _ => f,
    }
}

fn kernel_remount(target: &Path, flags: libc::c_ulong) -> std::io::Result<()> {
    let t = CString::new(target.as_os_str().as_bytes())?;
    // SAFETY: valid C strings; FUSE ignores remount data from mount(2)
    // (fuse_parse_param accepts nothing on reconfigure), so none is passed.
    let r = unsafe {
        libc::mount(
            std::ptr::null(),
            t.as_ptr(),
            std::ptr::null(),
            libc::MS_REMOUNT | flags,
            std::ptr::null(),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(mount: &str, sup: &str) -> mountinfo::MountEntry {
        mountinfo::MountEntry {
            dev: "0:1".into(),
            mount_point: "/m".into(),
            mount_options: mount.into(),
            fstype: "fuse.zsfs".into(),
            source: "zsfs".into(),
            super_options: sup.into(),
        }
    }

    #[test]
    fn remount_words_are_found_and_removed() {
        assert_eq!(requested(&["size=1g".into()]), None);
        assert_eq!(
            requested(&["remount,size=1g".into(), "ro".into()]).as_deref(),
            Some("size=1g,ro")
        );
        assert_eq!(requested(&["remount".into()]).as_deref(), Some(""));
    }

    #[test]
    fn flags_start_from_mountinfo_and_take_the_words() {
        use libc::*;
        let m = entry("rw,nosuid,nodev,relatime", "rw,user_id=0");
        let now = current_flags(&m);
        assert_eq!(now, MS_NOSUID | MS_NODEV | MS_RELATIME);
        assert_eq!(wanted_flags(&m, "size=1g"), now);
        assert_eq!(
            wanted_flags(&m, "ro,suid,noatime"),
            MS_RDONLY | MS_NODEV | MS_NOATIME
        );
        let strict = entry("rw", "rw");
        assert_eq!(current_flags(&strict), MS_STRICTATIME);
        assert_eq!(control_name("size=1g,control=.ctl"), ".ctl");
    }
}
