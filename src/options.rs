//! `-o a=b,c` mount options, parsed the way `mount -t tmpfs -o ...` takes
//! them, into a [`Config`].
//!
//! Design: one pass over the comma-separated words, applied in order onto a
//! starting `Config` (so a later `size=` wins, as with mount(8)). Three kinds
//! of words are accepted:
//! - zsfs's own options (`size=`, `nr_inodes=`, `mode=`, ...), parsed strictly:
//!   a malformed value is an error that names the option and its accepted form;
//! - VFS mount flags (`ro`, `nosuid`, `noexec`, ...), honoured through
//!   [`Config::mount_flags`], because people copy tmpfs fstab lines and a
//!   silently ignored `noexec` would be a security surprise;
//! - options that mount(8), fstab and systemd add for their own use (`defaults`,
//!   `noauto`, `nofail`, `user`, `_netdev`, `x-systemd.*`, ...), which mean
//!   nothing to the filesystem and are accepted and ignored.
//!
//! Anything else is an error: a typo such as `szie=1G` must not mount a
//! filesystem with the default size.
//!
//! Sizes follow tmpfs (the kernel's `memparse`): a decimal number with an
//! optional binary suffix k, m, g, t, p, e (either case), or for `size=` and
//! `pool_limit=` a percentage of physical RAM. `size=0` and `nr_inodes=0`
//! mean "no limit", as in tmpfs.

use crate::config::{
    AtimeMode, Backing, CacheMode, Config, MountFlags, PoolLimit, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE,
};
use std::ffi::CString;
use std::path::{Path, PathBuf};

/// A word of `-o` that zsfs cannot use. The message names the option and the
/// form it accepts, so the user can fix the command line without the manual.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct OptionError {
    /// The offending word as given (e.g. `size=12q`).
    pub option: String,
    /// A complete sentence for the user.
    pub message: String,
}

/// Upper bound of `threads=`: each request loop holds a 16 MiB buffer, so
/// more than this is a mistake rather than a tuning choice.
pub const MAX_THREADS: usize = 256;

/// One mount option (or group of words) for `--help` and the man pages.
/// The parser below is the authority on what is accepted; this is how it is
/// explained, written once so the two documents cannot drift apart.
pub struct OptionDoc {
    /// What the user writes, with placeholders in capitals: `size=SIZE|N%`.
    pub form: &'static str,
    /// One or two sentences; wrapped by whoever prints it.
    pub doc: &'static str,
}

/// Every `-o` word zsfs accepts, in the order `--help` lists them.
pub const MOUNT_OPTIONS: &[OptionDoc] = &[
    OptionDoc {
        form: "size=SIZE|N%",
        doc: "logical size limit (default 50% of RAM; 0 = no limit)",
    },
    OptionDoc {
        form: "nr_inodes=N",
        doc: "inode limit, k/m/g suffixes allowed (0 = no limit)",
    },
    OptionDoc {
        form: "mode=OCTAL",
        doc: "permissions of the root directory (default 1777)",
    },
    OptionDoc {
        form: "uid=USER|N",
        doc: "owner of the root directory (default: the mounter)",
    },
    OptionDoc {
        form: "gid=GROUP|N",
        doc: "group of the root directory (default: the mounter's)",
    },
    OptionDoc {
        form: "block_size=SIZE",
        doc: "file block size, a power of two from 4k to 128k",
    },
    OptionDoc {
        form: "threads=N",
        doc: "FUSE request threads (default: number of CPUs)",
    },
    OptionDoc {
        form: "cache=auto|none",
        doc: "kernel page cache for file data, or direct I/O",
    },
    OptionDoc {
        form: "allow_other",
        doc: "let other users in (always on for root mounts, as tmpfs; non-root: needs \
              user_allow_other in /etc/fuse.conf)",
    },
    OptionDoc {
        form: "pool_limit=SIZE|N%",
        doc: "memory limit of the compressed pool (default: none)",
    },
    OptionDoc {
        form: "accept_threshold=N%",
        doc: "after hitting pool_limit, write back until under N% of it (default 90)",
    },
    OptionDoc {
        form: "second_chance=on|off",
        doc: "give read zspages one more trip round the LRU before writeback (default on)",
    },
    OptionDoc {
        form: "dedup=on|off",
        doc: "identical blocks share one stored object (default on)",
    },
    OptionDoc {
        form: "max_dirty=SIZE|kernel",
        doc: "page cache this mount may hold dirty before writers wait for the daemon (default \
              1g, capped at half the free space; kernel = FUSE's strict 1% default)",
    },
    OptionDoc {
        form: "backing=PATH|none",
        doc: "writeback file (default: unlinked file in $TMPDIR)",
    },
    OptionDoc {
        form: "control=NAME",
        doc: "name of the control file at the root (default .zsfs)",
    },
    OptionDoc {
        form: "log=syslog|stderr|PATH",
        doc: "where the daemon logs (default: syslog, or stderr with -f); a detached \
              daemon never writes into the stderr of what mounted it",
    },
    OptionDoc {
        form: "ro, rw, nosuid, suid, nodev, dev, noexec, exec, sync, async, dirsync",
        doc: "VFS mount flags, as for any filesystem",
    },
    OptionDoc {
        form: "relatime, strictatime, noatime, atime, norelatime, nostrictatime, \
               nodiratime, diratime",
        doc: "when reads update atime (default relatime; the last one given wins)",
    },
    OptionDoc {
        form: "remount",
        doc: "change a live mount's options (mount -o remount,...): size=, nr_inodes=, \
              pool_limit=, accept_threshold=, mode=, uid=, gid= and the VFS flags",
    },
    OptionDoc {
        form: "defaults, auto, noauto, nofail, user, users, nouser, owner, group, _netdev, \
               lazytime, x-*, comment=...",
        doc: "accepted and ignored (fstab/mount)",
    },
];

/// What SIZE means, said after the table.
pub const SIZE_NOTE: &str = "SIZE is bytes with an optional k, m, g, t suffix (powers of 1024).";

/// The accepted forms as `--help` text (clap's `after_help`) and for error
/// messages, generated from [`MOUNT_OPTIONS`].
pub static OPTIONS_HELP: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    // Form in a 22-column field, description wrapped to 80 columns; a form
    // too wide for the field gets the description on its own lines.
    const INDENT: usize = 24;
    const WIDTH: usize = 80;
    let mut out = String::from("zsfs options (-o, comma-separated, as for mount -t tmpfs):\n");
    for o in MOUNT_OPTIONS {
        let mut line = format!("  {}", o.form);
        if line.len() + 2 > INDENT {
            // Long lists of words wrap at commas, then the description follows.
            line = wrap_words(&line, WIDTH, 2);
            line.push('\n');
            out.push_str(&line);
            line = String::new();
        }
        let pad = INDENT.saturating_sub(line.len());
        line.push_str(&" ".repeat(pad));
        out.push_str(&wrap_after(&line, o.doc, WIDTH, INDENT));
        out.push('\n');
    }
    out.push_str(SIZE_NOTE);
    out
});

/// `prefix` followed by `text`, wrapped at `width`, continuation lines
/// indented by `indent`.
fn wrap_after(prefix: &str, text: &str, width: usize, indent: usize) -> String {
    let mut out = prefix.to_string();
    let mut col = out.len();
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 && col + 1 + word.len() > width {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            col = indent;
        } else if i > 0 {
            out.push(' ');
            col += 1;
        }
        out.push_str(word);
        col += word.len();
    }
    out
}

/// `text` (which starts with its own indentation) wrapped at `width`.
fn wrap_words(text: &str, width: usize, indent: usize) -> String {
    let trimmed = text.trim_start();
    wrap_after(&" ".repeat(indent), trimmed, width, indent)
}

/// Apply every word of `opts` (the argument of one `-o`) onto `config`,
/// taking percentages of the machine's physical RAM.
pub fn apply_options(config: &mut Config, opts: &str) -> Result<(), OptionError> {
    apply_options_with_ram(config, opts, crate::config::physical_ram())
}

/// As [`apply_options`], with the RAM size given (for tests).
pub fn apply_options_with_ram(
    config: &mut Config,
    opts: &str,
    ram: u64,
) -> Result<(), OptionError> {
    for word in opts.split(',') {
        if word.is_empty() {
            // "a,,b" and a trailing comma are harmless; mount(8) tolerates them.
            continue;
        }
        apply_one(config, word, ram)?;
    }
    Ok(())
}

/// Check a mount source (`zsfs SOURCE DIR`) and put it in the form the
/// mount path needs. Root mounts pass it to mount(2) as it is; ordinary
/// users' mounts go through fusermount3's `-o fsname=`, where a comma
/// would end the option, so commas and backslashes get its `\` escape.
pub fn mount_source(source: &std::ffi::OsStr, root: bool) -> Result<String, OptionError> {
    let shown = source.to_string_lossy();
    let Some(s) = source.to_str().filter(|s| !s.is_empty()) else {
        return Err(err(
            &shown,
            format!("bad mount source `{shown}`: expected a non-empty UTF-8 name such as `zsfs`"),
        ));
    };
    if root {
        return Ok(s.to_string());
    }
    Ok(s.replace('\\', "\\\\").replace(',', "\\,"))
}

/// Parse a complete option string onto `Config::default()`.
pub fn parse_options(opts: &str) -> Result<Config, OptionError> {
    let mut config = Config::default();
    apply_options(&mut config, opts)?;
    Ok(config)
}

fn err(word: &str, message: String) -> OptionError {
    OptionError {
        option: word.to_string(),
        message,
    }
}

fn bad_value(word: &str, name: &str, form: &str) -> OptionError {
    let value = word.split_once('=').map_or("", |(_, v)| v);
    err(
        word,
        format!("bad value `{value}` for option `{name}=`: expected {form}"),
    )
}

const SIZE_OR_PERCENT_FORM: &str =
    "a number of bytes with an optional k, m, g or t suffix (powers of 1024), e.g. 2g, or a percentage of RAM, e.g. 25%";

fn apply_one(c: &mut Config, word: &str, ram: u64) -> Result<(), OptionError> {
    let (name, value) = match word.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (word, None),
    };
    match name {
        "size" => {
            let v = need(word, name, value)?;
            let bytes = parse_size_or_percent(v, ram)
                .ok_or_else(|| bad_value(word, name, SIZE_OR_PERCENT_FORM))?;
            c.size = if bytes == 0 { u64::MAX } else { bytes };
        }
        "nr_inodes" => {
            let v = need(word, name, value)?;
            let n = parse_size(v).ok_or_else(|| {
                bad_value(
                    word,
                    name,
                    "a number with an optional k, m or g suffix, e.g. 100k",
                )
            })?;
            c.nr_inodes = if n == 0 { u64::MAX } else { n };
        }
        "mode" => {
            let v = need(word, name, value)?;
            c.mode = u32::from_str_radix(v, 8)
                .ok()
                .filter(|m| *m <= 0o7777 && !v.is_empty())
                .ok_or_else(|| {
                    bad_value(word, name, "octal permission bits up to 7777, e.g. 1777")
                })?;
        }
        "uid" => {
            let v = need(word, name, value)?;
            c.uid = parse_id(v, lookup_user)
                .ok_or_else(|| bad_value(word, name, "a user name or a numeric uid"))?;
        }
        "gid" => {
            let v = need(word, name, value)?;
            c.gid = parse_id(v, lookup_group)
                .ok_or_else(|| bad_value(word, name, "a group name or a numeric gid"))?;
        }
        "block_size" => {
            let v = need(word, name, value)?;
            let form = "a power of two from 4k to 128k, e.g. 4k, 32k or 65536";
            let bs = parse_size(v).ok_or_else(|| bad_value(word, name, form))?;
            if !bs.is_power_of_two()
                || bs < u64::from(MIN_BLOCK_SIZE)
                || bs > u64::from(MAX_BLOCK_SIZE)
            {
                return Err(bad_value(word, name, form));
            }
            c.block_size = bs as u32;
        }
        "threads" => {
            let v = need(word, name, value)?;
            c.threads = v
                .parse::<usize>()
                .ok()
                .filter(|t| (1..=MAX_THREADS).contains(t))
                .ok_or_else(|| {
                    bad_value(
                        word,
                        name,
                        &format!("a whole number from 1 to {MAX_THREADS}"),
                    )
                })?;
        }
        "cache" => {
            c.cache = match need(word, name, value)? {
                "auto" => CacheMode::Auto,
                "none" => CacheMode::None,
                _ => return Err(bad_value(word, name, "`auto` or `none`")),
            };
        }
        "allow_other" => {
            no_value(word, name, value)?;
            c.allow_other = true;
        }
        "pool_limit" => {
            let v = need(word, name, value)?;
            c.pool_limit = Some(
                parse_pool_limit(v).ok_or_else(|| bad_value(word, name, SIZE_OR_PERCENT_FORM))?,
            );
        }
        "second_chance" => {
            c.second_chance = match need(word, name, value)? {
                "on" => true,
                "off" => false,
                _ => return Err(bad_value(word, name, "`on` or `off`")),
            };
        }
        "max_dirty" => {
            let v = need(word, name, value)?;
            c.max_dirty = if v == "kernel" {
                None
            } else {
                Some(parse_size(v).ok_or_else(|| {
                    bad_value(word, name, "a size such as 512m or 2g, or `kernel`")
                })?)
            };
        }
        "dedup" => {
            c.dedup = match need(word, name, value)? {
                "on" => true,
                "off" => false,
                _ => return Err(bad_value(word, name, "`on` or `off`")),
            };
        }
        "accept_threshold" => {
            let v = need(word, name, value)?;
            let p = v.strip_suffix('%').unwrap_or(v);
            c.accept_threshold = p
                .parse::<u8>()
                .ok()
                .filter(|p| (1..=100).contains(p))
                .ok_or_else(|| {
                    bad_value(
                        word,
                        name,
                        "a percentage of pool_limit from 1 to 100, e.g. 90%",
                    )
                })?;
        }
        "backing" => {
            let v = need(word, name, value)?;
            c.backing = match v {
                "" => return Err(bad_value(word, name, "a file path or `none`")),
                "none" => Backing::None,
                p => Backing::Path(PathBuf::from(p)),
            };
        }
        "log" => {
            use crate::sys::log::LogTarget;
            c.log = match need(word, name, value)? {
                "" => return Err(bad_value(word, name, "`syslog`, `stderr` or a file path")),
                "syslog" => LogTarget::Syslog,
                "stderr" => LogTarget::Stderr,
                p => LogTarget::File(PathBuf::from(p)),
            };
        }
        "control" => {
            let v = need(word, name, value)?;
            if v.is_empty() || v == "." || v == ".." || v.contains('/') || v.len() > 255 {
                return Err(bad_value(
                    word,
                    name,
                    "a file name (no `/`, not `.` or `..`, at most 255 bytes), e.g. .zsfs",
                ));
            }
            c.control_name = v.to_string();
        }
        // VFS flags, honoured.
        "ro" | "rw" | "nosuid" | "suid" | "nodev" | "dev" | "noexec" | "exec" | "noatime"
        | "atime" | "relatime" | "norelatime" | "strictatime" | "nostrictatime" | "diratime"
        | "nodiratime" | "sync" | "async" | "dirsync" => {
            no_value(word, name, value)?;
            let f = &mut c.mount_flags;
            match name {
                "ro" => f.read_only = true,
                "rw" => f.read_only = false,
                "nosuid" => f.nosuid = true,
                "suid" => f.nosuid = false,
                "nodev" => f.nodev = true,
                "dev" => f.nodev = false,
                "noexec" => f.noexec = true,
                "exec" => f.noexec = false,
                // The atime words set one mode, the last one winning, as
                // mount(8) turns them into MS_NOATIME/MS_RELATIME/
                // MS_STRICTATIME.
                "noatime" => f.atime = AtimeMode::NoAtime,
                "atime" | "relatime" | "nostrictatime" => f.atime = AtimeMode::Relatime,
                "norelatime" | "strictatime" => f.atime = AtimeMode::Strict,
                "diratime" => f.nodiratime = false,
                "nodiratime" => f.nodiratime = true,
                "sync" => f.sync = true,
                "async" => f.sync = false,
                _ => f.dirsync = true,
            }
        }
        // For mount(8), fstab and systemd; nothing for the filesystem to do.
        "defaults" | "auto" | "noauto" | "nofail" | "user" | "users" | "nouser" | "owner"
        | "group" | "_netdev" | "lazytime" | "nolazytime" | "silent" | "loud"
        | "auto_unmount" => {
            no_value(word, name, value)?;
        }
        "comment" => {}
        n if n.starts_with("x-") => {}
        _ => {
            return Err(err(
                word,
                format!(
                    "unknown option `{word}`; accepted: size=, nr_inodes=, mode=, uid=, gid=, \
                     block_size=, threads=, cache=, allow_other, pool_limit=, second_chance=, \
                     dedup=, max_dirty=, accept_threshold=, backing=, control=, log=, the VFS flags (ro, nosuid, nodev, \
                     noexec, noatime, sync, dirsync) and the fstab words (defaults, noauto, \
                     nofail, user, _netdev, x-systemd.*); see zsfs --help"
                ),
            ))
        }
    }
    Ok(())
}

/// The value of an option that must have one.
fn need<'a>(word: &str, name: &str, value: Option<&'a str>) -> Result<&'a str, OptionError> {
    value.ok_or_else(|| {
        err(
            word,
            format!("option `{name}` needs a value: `{name}=...` (see zsfs --help)"),
        )
    })
}

fn no_value(word: &str, name: &str, value: Option<&str>) -> Result<(), OptionError> {
    match value {
        None => Ok(()),
        Some(_) => Err(err(
            word,
            format!("option `{name}` takes no value: write just `{name}`"),
        )),
    }
}

/// `SIZE` (non-zero) or `N%` of RAM (1..=100), as `pool_limit=` and the
/// control file's `pool_limit` command take it.
pub fn parse_pool_limit(v: &str) -> Option<PoolLimit> {
    match v.strip_suffix('%') {
        Some(p) => p
            .parse::<u8>()
            .ok()
            .filter(|p| (1..=100).contains(p))
            .map(PoolLimit::Percent),
        None => parse_size(v).filter(|b| *b > 0).map(PoolLimit::Bytes),
    }
}

/// tmpfs's `memparse`: decimal digits and an optional binary suffix.
/// `None` on anything else or on overflow.
pub fn parse_size(s: &str) -> Option<u64> {
    let digits_end = s.find(|ch: char| !ch.is_ascii_digit()).unwrap_or(s.len());
    if digits_end == 0 {
        return None;
    }
    let n: u64 = s[..digits_end].parse().ok()?;
    let shift = match &s[digits_end..] {
        "" => 0,
        "k" | "K" => 10,
        "m" | "M" => 20,
        "g" | "G" => 30,
        "t" | "T" => 40,
        "p" | "P" => 50,
        "e" | "E" => 60,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

/// `size=`'s form: a size, or a percentage of `ram` (tmpfs allows more than
/// 100 %, the memory being overcommitted; so do we).
fn parse_size_or_percent(s: &str, ram: u64) -> Option<u64> {
    if let Some(p) = s.strip_suffix('%') {
        let p: u64 = p.parse().ok()?;
        if p == 0 {
            return None;
        }
        return (ram / 100).checked_mul(p);
    }
    parse_size(s)
}

/// A numeric id, or a name resolved with `lookup`.
fn parse_id(s: &str, lookup: fn(&str) -> Option<u32>) -> Option<u32> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        // u32::MAX is (uid_t)-1, "no change" to chown: not a usable owner.
        return s.parse::<u32>().ok().filter(|id| *id != u32::MAX);
    }
    lookup(s)
}

fn lookup_user(name: &str) -> Option<u32> {
    let cname = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: all-zero is a valid passwd (null pointers, zero ids).
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; buf outlives it.
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    (rc == 0 && !result.is_null()).then_some(pwd.pw_uid)
}

fn lookup_group(name: &str) -> Option<u32> {
    let cname = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 64 * 1024];
    // SAFETY: all-zero is a valid group struct.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; buf outlives it.
    let rc = unsafe {
        libc::getgrnam_r(
            cname.as_ptr(),
            &mut grp,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    (rc == 0 && !result.is_null()).then_some(grp.gr_gid)
}

/// Make a relative `backing=` path absolute against `cwd`: the daemon
/// changes to `/` when it detaches, so a relative path would move.
pub fn absolutize_paths(config: &mut Config, cwd: &Path) {
    if let Backing::Path(p) = &config.backing {
        if p.is_relative() {
            config.backing = Backing::Path(cwd.join(p));
        }
    }
    if let crate::sys::log::LogTarget::File(p) = &config.log {
        if p.is_relative() {
            config.log = crate::sys::log::LogTarget::File(cwd.join(p));
        }
    }
}

/// The VFS flags as fuser mount options, for the FUSE adapter.
pub fn fuser_mount_options(flags: &MountFlags) -> Vec<fuser::MountOption> {
    use fuser::MountOption as M;
    let mut v = Vec::new();
    if flags.read_only {
        v.push(M::RO);
    }
    // fuser mounts nosuid,nodev unless told `suid`/`dev`.
    v.push(if flags.nosuid { M::NoSuid } else { M::Suid });
    v.push(if flags.nodev { M::NoDev } else { M::Dev });
    if flags.noexec {
        v.push(M::NoExec);
    }
    // The kernel leaves FUSE's atime to us (S_NOATIME); noatime is still
    // shown in mountinfo, where scripts look for it.
    if flags.atime == AtimeMode::NoAtime {
        v.push(M::NoAtime);
    }
    if flags.sync {
        v.push(M::Sync);
    }
    if flags.dirsync {
        v.push(M::DirSync);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAM: u64 = 16 << 30;

    fn parse(opts: &str) -> Result<Config, OptionError> {
        let mut c = Config::default();
        apply_options_with_ram(&mut c, opts, RAM)?;
        Ok(c)
    }

    fn parse_err(opts: &str) -> String {
        parse(opts).expect_err(opts).message
    }

    #[test]
    fn sizes_take_tmpfs_suffixes() {
        assert_eq!(parse("size=4096").unwrap().size, 4096);
        assert_eq!(parse("size=1k").unwrap().size, 1024);
        assert_eq!(parse("size=2M").unwrap().size, 2 << 20);
        assert_eq!(parse("size=3g").unwrap().size, 3 << 30);
        assert_eq!(parse("size=1T").unwrap().size, 1 << 40);
        assert_eq!(parse("size=25%").unwrap().size, RAM / 100 * 25);
        assert_eq!(parse("size=0").unwrap().size, u64::MAX);
        assert_eq!(parse("nr_inodes=10k").unwrap().nr_inodes, 10240);
        assert_eq!(parse("nr_inodes=0").unwrap().nr_inodes, u64::MAX);
    }

    #[test]
    fn malformed_sizes_name_the_option_and_form() {
        for bad in [
            "size=",
            "size=g",
            "size=12q",
            "size=1.5g",
            "size=-1",
            "size=0%",
            "size=99999999999999999999",
        ] {
            let m = parse_err(bad);
            assert!(m.contains("`size=`") && m.contains("suffix"), "{bad}: {m}");
        }
        assert!(parse_err("size").contains("needs a value"));
        assert!(
            parse_err("size=16e").contains("size="),
            "overflow is an error"
        );
    }

    #[test]
    fn mode_is_octal() {
        assert_eq!(parse("mode=755").unwrap().mode, 0o755);
        assert_eq!(parse("mode=01777").unwrap().mode, 0o1777);
        assert!(parse_err("mode=888").contains("octal"));
        assert!(parse_err("mode=17777").contains("octal"));
        assert!(parse_err("mode=").contains("octal"));
    }

    #[test]
    fn ids_are_numbers_or_names() {
        let c = parse("uid=1234,gid=5678").unwrap();
        assert_eq!((c.uid, c.gid), (1234, 5678));
        let c = parse("uid=root,gid=root").unwrap();
        assert_eq!((c.uid, c.gid), (0, 0));
        assert!(parse_err("uid=no-such-user-zsfs").contains("user name or a numeric uid"));
        assert!(parse_err("gid=no-such-group-zsfs").contains("group name"));
        assert!(parse_err("uid=4294967295").contains("uid"));
    }

    #[test]
    fn block_size_is_a_power_of_two_in_range() {
        assert_eq!(parse("block_size=4k").unwrap().block_size, 4096);
        assert_eq!(parse("block_size=65536").unwrap().block_size, 65536);
        assert_eq!(parse("block_size=128K").unwrap().block_size, 128 << 10);
        for bad in [
            "block_size=2k",
            "block_size=256k",
            "block_size=12k",
            "block_size=x",
        ] {
            assert!(parse_err(bad).contains("power of two"), "{bad}");
        }
    }

    #[test]
    fn threads_cache_and_flags() {
        assert_eq!(parse("threads=3").unwrap().threads, 3);
        assert!(parse_err("threads=0").contains("from 1 to"));
        assert!(parse_err("threads=100000").contains("from 1 to"));
        assert_eq!(parse("cache=none").unwrap().cache, CacheMode::None);
        assert_eq!(parse("cache=auto").unwrap().cache, CacheMode::Auto);
        assert!(parse_err("cache=sometimes").contains("`auto` or `none`"));
        assert!(parse("allow_other").unwrap().allow_other);
        assert!(parse_err("allow_other=1").contains("takes no value"));
    }

    #[test]
    fn pool_options() {
        let c = parse("pool_limit=1g,accept_threshold=80%").unwrap();
        assert_eq!(c.pool_limit, Some(PoolLimit::Bytes(1 << 30)));
        assert_eq!(c.accept_threshold, 80);
        assert_eq!(
            parse("pool_limit=20%").unwrap().pool_limit,
            Some(PoolLimit::Percent(20))
        );
        assert_eq!(parse("accept_threshold=95").unwrap().accept_threshold, 95);
        assert!(parse("second_chance=on").unwrap().second_chance);
        assert!(!parse("second_chance=off").unwrap().second_chance);
        assert!(parse_err("second_chance=maybe").contains("`on` or `off`"));
        assert!(parse("").unwrap().dedup, "dedup is on by default");
        assert_eq!(parse("").unwrap().max_dirty, Some(1 << 30));
        assert_eq!(parse("max_dirty=256m").unwrap().max_dirty, Some(256 << 20));
        assert_eq!(parse("max_dirty=kernel").unwrap().max_dirty, None);
        assert!(parse_err("max_dirty=lots").contains("`kernel`"));
        assert!(parse("dedup=on").unwrap().dedup);
        assert!(!parse("size=1g,dedup=off").unwrap().dedup);
        assert!(parse_err("dedup=1").contains("`on` or `off`"));
        assert!(parse_err("dedup").contains("dedup"));
        for bad in [
            "pool_limit=0",
            "pool_limit=101%",
            "pool_limit=0%",
            "pool_limit=lots",
        ] {
            assert!(parse_err(bad).contains("`pool_limit=`"), "{bad}");
        }
        assert!(parse_err("accept_threshold=0").contains("1 to 100"));
        assert!(parse_err("accept_threshold=101%").contains("1 to 100"));
    }

    #[test]
    fn backing_and_control() {
        assert_eq!(parse("backing=none").unwrap().backing, Backing::None);
        assert_eq!(
            parse("backing=/var/tmp/z").unwrap().backing,
            Backing::Path("/var/tmp/z".into())
        );
        let mut c = parse("backing=rel/file").unwrap();
        absolutize_paths(&mut c, Path::new("/home/u"));
        assert_eq!(c.backing, Backing::Path("/home/u/rel/file".into()));
        assert!(parse_err("backing=").contains("path"));
        assert_eq!(parse("control=.ctl").unwrap().control_name, ".ctl");
        for bad in ["control=", "control=a/b", "control=..", "control=."] {
            assert!(parse_err(bad).contains("file name"), "{bad}");
        }
    }

    #[test]
    fn fstab_words_are_ignored_and_vfs_flags_honoured() {
        let d = Config::default();
        let c = parse("rw,defaults,noauto,nofail,user,users,_netdev,x-systemd.automount,x-systemd.mount-timeout=30,comment=x,relatime,auto")
            .unwrap();
        assert_eq!(c, d);
        let c = parse("ro,noexec,nosuid,nodev,noatime,sync,dirsync").unwrap();
        let f = c.mount_flags;
        assert!(f.read_only && f.noexec && f.nosuid && f.nodev && f.sync && f.dirsync);
        assert_eq!(f.atime, AtimeMode::NoAtime);
        let atime = |o: &str| parse(o).unwrap().mount_flags.atime;
        assert_eq!(atime("noatime,strictatime"), AtimeMode::Strict);
        assert_eq!(atime("strictatime,relatime"), AtimeMode::Relatime);
        assert_eq!(atime("relatime,noatime"), AtimeMode::NoAtime);
        let c = parse("ro,rw,suid,dev").unwrap();
        assert!(!c.mount_flags.read_only && !c.mount_flags.nosuid && !c.mount_flags.nodev);
        assert!(parse_err("noexec=1").contains("takes no value"));
    }

    #[test]
    fn unknown_options_are_named() {
        let m = parse_err("size=1g,szie=2g");
        assert!(m.contains("unknown option `szie=2g`"), "{m}");
        assert!(m.contains("size="), "lists the accepted options: {m}");
        assert_eq!(parse("szie=1").unwrap_err().option, "szie=1");
    }

    #[test]
    fn later_options_win_and_empty_words_are_harmless() {
        let c = parse("size=1g,,size=2g,").unwrap();
        assert_eq!(c.size, 2 << 30);
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn vfs_flags_map_to_fuser() {
        use fuser::MountOption as M;
        let d = fuser_mount_options(&MountFlags::default());
        assert!(d.contains(&M::NoSuid) && d.contains(&M::NoDev) && !d.contains(&M::RO));
        let c = parse("ro,suid,dev,noexec").unwrap();
        let o = fuser_mount_options(&c.mount_flags);
        assert!(o.contains(&M::RO) && o.contains(&M::Suid) && o.contains(&M::Dev));
        assert!(o.contains(&M::NoExec));
    }
}
