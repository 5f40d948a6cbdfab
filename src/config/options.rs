//! `-o a=b,c` mount options, parsed the way `mount -t tmpfs -o ...` takes
//! them, into a [`Config`].
//!
//! Design: one table, [`MOUNT_OPTIONS`], is the whole option language. Each
//! row is what `--help` and the man pages print (`form`, `doc`) and how the
//! parser applies the words it names (`kind`), so the documents, the parser
//! and the "accepted: ..." list of an error cannot drift apart. One pass
//! over the comma-separated words applies them in order onto a starting
//! `Config` (so a later `size=` wins, as with mount(8)). Three kinds of
//! words are accepted:
//! - zsfs's own options (`size=`, `nr_inodes=`, `mode=`, ...), parsed strictly:
//!   a malformed value is an error that names the option and its accepted form,
//!   and a value out of range fails the same check `Config::validate` makes;
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
//! Sizes follow tmpfs (see `size.rs`). `size=0` and `nr_inodes=0` mean "no
//! limit", as in tmpfs.

use super::size::parse_duration;
use super::size::{parse_pool_limit, parse_size, parse_size_or_percent};
use super::validate::{
    check_accept_threshold, check_block_size, check_control_name, check_mode,
    check_recompress_level, check_recompress_unit, check_threads,
};
use super::{AtimeMode, Backing, CacheMode, Config, MountFlags};
use crate::sys::log::LogTarget;
use crate::sys::users::{group_id, user_id};
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

/// One row of the option language: a mount option (or a group of words)
/// as `--help` and the man pages explain it, and how the parser applies it.
pub struct OptionDoc {
    /// What the user writes, with placeholders in capitals: `size=SIZE|N%`.
    /// For word lists (flags, ignored words) these are the accepted words.
    pub form: &'static str,
    /// One or two sentences; wrapped by whoever prints it.
    pub doc: &'static str,
    kind: Kind,
}

/// How the parser applies a row's words.
#[derive(Clone, Copy)]
enum Kind {
    /// `NAME=VALUE`, NAME being `form` up to its `=`. `set` returns `None`
    /// for a value that is malformed or out of range; the error then says
    /// `expected`.
    Value {
        expected: &'static str,
        set: fn(&mut Config, &str, u64) -> Option<()>,
    },
    /// The word `form`, without a value.
    Switch(fn(&mut Config)),
    /// Any word of `form` (", "-separated), without a value.
    Flags(fn(&mut MountFlags, &str)),
    /// Handled before option parsing (`remount` picks the command).
    Elsewhere,
    /// Any word of `form`, ignored; `x-*` is a prefix, `comment=...` takes
    /// any value.
    Ignored,
}

const SIZE_OR_PERCENT_FORM: &str =
    "a number of bytes with an optional k, m, g or t suffix (powers of 1024), e.g. 2g, or a percentage of RAM, e.g. 25%";
const ON_OFF: &str = "`on` or `off`";

/// Every `-o` word zsfs accepts, in the order `--help` lists them.
pub const MOUNT_OPTIONS: &[OptionDoc] = &[
    OptionDoc {
        form: "size=SIZE|N%",
        doc: "logical size limit (default 50% of RAM; 0 = no limit)",
        kind: Kind::Value {
            expected: SIZE_OR_PERCENT_FORM,
            set: |c, v, ram| {
                let bytes = parse_size_or_percent(v, ram)?;
                c.size = if bytes == 0 { u64::MAX } else { bytes };
                Some(())
            },
        },
    },
    OptionDoc {
        form: "nr_inodes=N",
        doc: "inode limit, k/m/g suffixes allowed (0 = no limit)",
        kind: Kind::Value {
            expected: "a number with an optional k, m or g suffix, e.g. 100k",
            set: |c, v, _| {
                let n = parse_size(v)?;
                c.nr_inodes = if n == 0 { u64::MAX } else { n };
                Some(())
            },
        },
    },
    OptionDoc {
        form: "mode=OCTAL",
        doc: "permissions of the root directory (default 1777)",
        kind: Kind::Value {
            expected: "octal permission bits up to 7777, e.g. 1777",
            set: |c, v, _| {
                let m = u32::from_str_radix(v, 8).ok()?;
                check_mode(m).ok()?;
                c.mode = m;
                Some(())
            },
        },
    },
    OptionDoc {
        form: "uid=USER|N",
        doc: "owner of the root directory (default: the mounter)",
        kind: Kind::Value {
            expected: "a user name or a numeric uid",
            set: |c, v, _| {
                c.uid = parse_id(v, user_id)?;
                Some(())
            },
        },
    },
    OptionDoc {
        form: "gid=GROUP|N",
        doc: "group of the root directory (default: the mounter's)",
        kind: Kind::Value {
            expected: "a group name or a numeric gid",
            set: |c, v, _| {
                c.gid = parse_id(v, group_id)?;
                Some(())
            },
        },
    },
    OptionDoc {
        form: "block_size=SIZE",
        doc: "file block size, a power of two from 4k to 128k",
        kind: Kind::Value {
            expected: "a power of two from 4k to 128k, e.g. 4k, 32k or 65536",
            set: |c, v, _| {
                let bs = u32::try_from(parse_size(v)?).ok()?;
                check_block_size(bs).ok()?;
                c.block_size = bs;
                Some(())
            },
        },
    },
    OptionDoc {
        form: "threads=N",
        doc: "FUSE request threads (default: number of CPUs)",
        kind: Kind::Value {
            // The bound is MAX_THREADS (a unit test keeps this text true).
            expected: "a whole number from 1 to 256",
            set: |c, v, _| {
                let n = v.parse::<usize>().ok()?;
                check_threads(n).ok()?;
                c.threads = n;
                Some(())
            },
        },
    },
    OptionDoc {
        form: "cache=auto|none",
        doc: "kernel page cache for file data, or direct I/O",
        kind: Kind::Value {
            expected: "`auto` or `none`",
            set: |c, v, _| {
                c.cache = match v {
                    "auto" => CacheMode::Auto,
                    "none" => CacheMode::None,
                    _ => return None,
                };
                Some(())
            },
        },
    },
    OptionDoc {
        form: "allow_other",
        doc: "let other users in (always on for root mounts, as tmpfs; non-root: needs \
              user_allow_other in /etc/fuse.conf)",
        kind: Kind::Switch(|c| c.allow_other = true),
    },
    OptionDoc {
        form: "pool_limit=SIZE|N%",
        doc: "memory limit of the compressed pool (default: none)",
        kind: Kind::Value {
            expected: SIZE_OR_PERCENT_FORM,
            set: |c, v, _| {
                c.pool_limit = Some(parse_pool_limit(v)?);
                Some(())
            },
        },
    },
    OptionDoc {
        form: "accept_threshold=N%",
        doc: "after hitting pool_limit, write back until under N% of it (default 90)",
        kind: Kind::Value {
            expected: "a percentage of pool_limit from 1 to 100, e.g. 90%",
            set: |c, v, _| {
                let p = v.strip_suffix('%').unwrap_or(v).parse::<u8>().ok()?;
                check_accept_threshold(p).ok()?;
                c.accept_threshold = p;
                Some(())
            },
        },
    },
    OptionDoc {
        form: "second_chance=on|off",
        doc: "give read zspages one more trip round the LRU before writeback (default on)",
        kind: Kind::Value {
            expected: ON_OFF,
            set: |c, v, _| {
                c.second_chance = on_off(v)?;
                Some(())
            },
        },
    },
    OptionDoc {
        form: "dedup=on|off",
        doc: "identical blocks share one stored object (default on)",
        kind: Kind::Value {
            expected: ON_OFF,
            set: |c, v, _| {
                c.dedup = on_off(v)?;
                Some(())
            },
        },
    },
    OptionDoc {
        form: "xattr=on|off",
        doc: "extended attributes and POSIX ACLs (default on); off saves the kernel's \
              security.capability lookups, 2 of tar -xf's 11.4 requests per file",
        kind: Kind::Value {
            expected: ON_OFF,
            set: |c, v, _| {
                c.xattr = on_off(v)?;
                Some(())
            },
        },
    },
    OptionDoc {
        form: "max_dirty=SIZE|kernel",
        doc: "page cache this mount may hold dirty before writers wait for the daemon (default: \
              the kernel's dirty threshold rounded down to a power of two, at least 1g; capped \
              at half the free space; kernel = FUSE's strict 1% default)",
        kind: Kind::Value {
            expected: "a size such as 512m or 2g, or `kernel`",
            set: |c, v, _| {
                c.max_dirty = match v {
                    "kernel" => None,
                    v => Some(parse_size(v)?),
                };
                Some(())
            },
        },
    },
    OptionDoc {
        form: "backing=PATH|none",
        doc: "writeback file (default: unlinked file in $TMPDIR)",
        kind: Kind::Value {
            expected: "a file path or `none`",
            set: |c, v, _| {
                c.backing = match v {
                    "" => return None,
                    "none" => Backing::None,
                    p => Backing::Path(PathBuf::from(p)),
                };
                Some(())
            },
        },
    },
    OptionDoc {
        form: "recompress_after=DURATION|off",
        doc: "recompress blocks not written or read for this long with zstd, in the background, \
              paced and paused while the mount is busy (default 2m)",
        kind: Kind::Value {
            expected: "a duration such as 30s, 2m or 1h (a bare number is seconds), or `off`",
            set: |c, v, _| {
                c.recompress_after = match v {
                    "off" => None,
                    v => Some(parse_duration(v).filter(|d| !d.is_zero())?),
                };
                Some(())
            },
        },
    },
    OptionDoc {
        form: "recompress_level=N",
        doc: "zstd level for recompression, 1 to 19 (default 3)",
        kind: Kind::Value {
            expected: "a zstd level from 1 to 19, e.g. 3",
            set: |c, v, _| {
                let l = v.parse::<i32>().ok()?;
                check_recompress_level(l).ok()?;
                c.recompress_level = l;
                Some(())
            },
        },
    },
    OptionDoc {
        form: "recompress_unit=SIZE",
        doc: "most bytes of consecutive blocks of a file compressed together, 4k to 64k \
              (default 64k; at least one block)",
        kind: Kind::Value {
            expected: "a power of two from 4k to 64k, e.g. 16k",
            set: |c, v, _| {
                let u = u32::try_from(parse_size(v)?).ok()?;
                check_recompress_unit(u).ok()?;
                c.recompress_unit = u;
                Some(())
            },
        },
    },
    OptionDoc {
        form: "control=NAME",
        doc: "name of the control file at the root (default .zsfs)",
        kind: Kind::Value {
            expected: "a file name (no `/`, not `.` or `..`, at most 255 bytes), e.g. .zsfs",
            set: |c, v, _| {
                check_control_name(v).ok()?;
                c.control_name = v.to_string();
                Some(())
            },
        },
    },
    OptionDoc {
        form: "log=syslog|stderr|PATH",
        doc: "where the daemon logs (default: syslog, or stderr with -f); a detached \
              daemon never writes into the stderr of what mounted it",
        kind: Kind::Value {
            expected: "`syslog`, `stderr` or a file path",
            set: |c, v, _| {
                c.log = match v {
                    "" => return None,
                    "syslog" => LogTarget::Syslog,
                    "stderr" => LogTarget::Stderr,
                    p => LogTarget::File(PathBuf::from(p)),
                };
                Some(())
            },
        },
    },
    OptionDoc {
        form: "ro, rw, nosuid, suid, nodev, dev, noexec, exec, sync, async, dirsync",
        doc: "VFS mount flags, as for any filesystem",
        kind: Kind::Flags(|f, word| match word {
            "ro" => f.read_only = true,
            "rw" => f.read_only = false,
            "nosuid" => f.nosuid = true,
            "suid" => f.nosuid = false,
            "nodev" => f.nodev = true,
            "dev" => f.nodev = false,
            "noexec" => f.noexec = true,
            "exec" => f.noexec = false,
            "sync" => f.sync = true,
            "async" => f.sync = false,
            _ => f.dirsync = true,
        }),
    },
    OptionDoc {
        form: "relatime, strictatime, noatime, atime, norelatime, nostrictatime, \
               nodiratime, diratime",
        doc: "when reads update atime (default relatime; the last one given wins)",
        // The atime words set one mode, the last one winning, as mount(8)
        // turns them into MS_NOATIME/MS_RELATIME/MS_STRICTATIME.
        kind: Kind::Flags(|f, word| match word {
            "noatime" => f.atime = AtimeMode::NoAtime,
            "norelatime" | "strictatime" => f.atime = AtimeMode::Strict,
            "nodiratime" => f.nodiratime = true,
            "diratime" => f.nodiratime = false,
            _ => f.atime = AtimeMode::Relatime,
        }),
    },
    OptionDoc {
        form: "remount",
        doc: "change a live mount's options (mount -o remount,...): size=, nr_inodes=, \
              pool_limit=, accept_threshold=, recompress_level=, recompress_unit=, mode=, \
              uid=, gid= and the VFS flags",
        kind: Kind::Elsewhere,
    },
    OptionDoc {
        form: "defaults, auto, noauto, nofail, user, users, nouser, owner, group, _netdev, \
               lazytime, nolazytime, silent, loud, auto_unmount, x-*, comment=...",
        doc: "accepted and ignored (fstab/mount)",
        kind: Kind::Ignored,
    },
];

/// What SIZE means, said after the table.
pub const SIZE_NOTE: &str = "SIZE is bytes with an optional k, m, g, t suffix (powers of 1024).";

impl OptionDoc {
    /// The words of a word-list row.
    fn words(&self) -> impl Iterator<Item = &'static str> {
        self.form.split(", ")
    }

    /// Whether this row accepts the option `name` (a word, or the part of
    /// `name=value` before `=`).
    fn accepts(&self, name: &str) -> bool {
        match self.kind {
            Kind::Value { .. } => self.form.split('=').next() == Some(name),
            Kind::Switch(_) | Kind::Elsewhere => self.form == name,
            Kind::Flags(_) => self.words().any(|w| w == name),
            Kind::Ignored => self.words().any(|w| match w.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => w.split('=').next() == Some(name),
            }),
        }
    }
}

/// Apply every word of `opts` (the argument of one `-o`) onto `config`,
/// taking percentages of the machine's physical RAM.
pub fn apply_options(config: &mut Config, opts: &str) -> Result<(), OptionError> {
    apply_options_with_ram(config, opts, super::physical_ram())
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

/// Parse a complete option string onto `Config::default()`.
pub fn parse_options(opts: &str) -> Result<Config, OptionError> {
    let mut config = Config::default();
    apply_options(&mut config, opts)?;
    Ok(config)
}

fn apply_one(c: &mut Config, word: &str, ram: u64) -> Result<(), OptionError> {
    let (name, value) = match word.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (word, None),
    };
    let Some(row) = MOUNT_OPTIONS.iter().find(|o| o.accepts(name)) else {
        return Err(unknown(word));
    };
    match (row.kind, value) {
        (Kind::Value { expected, set }, Some(v)) => {
            set(c, v, ram).ok_or_else(|| bad_value(word, name, expected))
        }
        (Kind::Value { .. }, None) => Err(err(
            word,
            format!("option `{name}` needs a value: `{name}=...` (see zsfs --help)"),
        )),
        (Kind::Ignored, _) => Ok(()),
        (_, Some(_)) => Err(err(
            word,
            format!("option `{name}` takes no value: write just `{name}`"),
        )),
        (Kind::Switch(set), None) => {
            set(c);
            Ok(())
        }
        (Kind::Flags(set), None) => {
            set(&mut c.mount_flags, name);
            Ok(())
        }
        (Kind::Elsewhere, None) => Err(err(
            word,
            format!(
                "`{name}` goes with the options to change: `-o {name},size=...` (see zsfs --help)"
            ),
        )),
    }
}

/// A word no row accepts, with the list of what is accepted.
fn unknown(word: &str) -> OptionError {
    let names: Vec<&str> = MOUNT_OPTIONS
        .iter()
        .filter_map(|o| match o.kind {
            Kind::Value { .. } => o.form.split_inclusive('=').next(),
            Kind::Switch(_) => Some(o.form),
            _ => None,
        })
        .collect();
    err(
        word,
        format!(
            "unknown option `{word}`; accepted: {}, the VFS flags (ro, nosuid, nodev, noexec, \
             noatime, sync, dirsync) and the fstab words (defaults, noauto, nofail, user, \
             _netdev, x-systemd.*); see zsfs --help",
            names.join(", ")
        ),
    )
}

/// A numeric id, or a name resolved with `lookup`. `(uid_t)-1` is refused:
/// it means "no change" to chown, so it cannot own anything.
fn parse_id(s: &str, lookup: fn(&str) -> Option<u32>) -> Option<u32> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u32>()
            .ok()
            .filter(|id| super::validate::check_id("uid", *id).is_ok());
    }
    lookup(s)
}

fn on_off(v: &str) -> Option<bool> {
    match v {
        "on" => Some(true),
        "off" => Some(false),
        _ => None,
    }
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

/// Make a relative `backing=` or `log=` path absolute against `cwd`: the
/// daemon changes to `/` when it detaches, so a relative path would move.
pub fn absolutize_paths(config: &mut Config, cwd: &Path) {
    if let Backing::Path(p) = &config.backing {
        if p.is_relative() {
            config.backing = Backing::Path(cwd.join(p));
        }
    }
    if let LogTarget::File(p) = &config.log {
        if p.is_relative() {
            config.log = LogTarget::File(cwd.join(p));
        }
    }
}

#[cfg(test)]
#[path = "options_tests.rs"]
mod tests;
