//! The control file (`.zsfs` by default): stats out, commands in.
//!
//! It is a reserved inode ([`super::CONTROL_INO`]) in the root directory: it
//! cannot be removed, renamed, linked, chmod-ed or chown-ed (EPERM), does not
//! count toward `size=`, `nr_inodes=` or statfs, and reports size 0. The
//! FUSE layer opens it with direct I/O so no page cache stands between a
//! reader and [`Fs::control_read`]: each open's read at offset 0 takes fresh
//! numbers, which the rest of that open's reads continue (one snapshot per
//! open, `fuse/control.rs`). Mode 0644, owned by the mounting user: the kernel
//! (`default_permissions`) lets only that user and root write it.
//!
//! The format and the command language live in [`crate::control`]; this file
//! only gathers the numbers and carries commands out.
//!
//! Per-file figures go through the read-only virtual xattr `zsfs.usage`
//! (outside the user/trusted/security namespaces, so it can never clash with
//! a real attribute and `setxattr` refuses it): on a file, its logical and
//! stored bytes; on a directory, the totals of the tree below it.

use super::{Content, Errno, Fs, FsResult, Ino};
use crate::config::physical_ram;
use crate::control::cli::USAGE_XATTR;
use crate::control::remount::LAST_ERROR_XATTR;
use crate::control::{ClassRow, Command, Report, WritebackAmount};
use crate::fs::{Unpaced, Which};
use crate::store::{StoreError, WritebackRequest};
use std::collections::HashSet;
use std::sync::atomic::Ordering;

/// zram counts mm_stat memory in bytes and bd_stat in 4 KiB pages.
const PAGE: u64 = 4096;

impl Fs {
    /// The stats as text (see [`crate::control::report`] for the format).
    pub fn control_read(&self) -> Vec<u8> {
        self.control_report().render().into_bytes()
    }

    /// Every counter, in the order [`crate::control::report::FIELDS`] lists.
    pub fn control_report(&self) -> Report {
        let st = self.store.stats();
        let pool = self.store.pool_stats();
        let mem_used = pool.pages_held * PAGE;
        let mut r = Report::default();
        r.push("orig_data_size", st.orig_data_size);
        r.push("compr_data_size", st.compr_data_size);
        r.push("mem_used_total", mem_used);
        r.push("mem_limit", pool.limit.unwrap_or(0));
        r.push("mem_used_max", pool.max_pages_held * PAGE);
        r.push("same_pages", st.same_pages);
        r.push("pages_compacted", pool.pages_compacted);
        r.push("huge_pages", st.huge_pages);
        r.push("dedup_pages", st.dedup_pages);
        r.push("dedup_data_size", st.dedup_data_size);
        r.push("dedup_index_bytes", st.dedup_index_bytes);
        r.push("dedup_collisions", st.dedup_collisions);
        r.push("recomp_pages", st.recomp_pages);
        r.push("recomp_data_size", st.recomp_data_size);
        r.push(
            "recomp_orig_size",
            st.recomp_pages * u64::from(self.block_size),
        );
        r.push("recomp_skipped", st.recomp_skipped);
        r.push("recomp_failed", st.recomp_failed);
        r.push("recomp_reads", st.recomp_reads);
        r.push("idle_pages", self.idle_pages());
        r.push("recomp_meta_bytes", st.recomp_meta_bytes);
        r.push("bd_count", pool.bd_count);
        r.push("bd_reads", pool.bd_reads);
        r.push("bd_writes", pool.bd_writes);
        r.push("written_back_pages", pool.written_back_pages);
        r.push("pool_limit_hit", pool.pool_limit_hit);
        r.push("reject_compress_poor", st.reject_compress_poor);
        r.push("shrinker_runs", pool.shrinker_runs);
        r.push("second_chance", pool.second_chance);
        r.push("checksum_failures", pool.checksum_failures);
        r.push("files", self.files.load(Ordering::Relaxed));
        r.push("directories", self.directories.load(Ordering::Relaxed));
        r.push(
            "logical_bytes",
            self.space.used.load(Ordering::Relaxed) * u64::from(self.block_size),
        );
        r.push("block_size", self.block_size);
        let ratio = st.orig_data_size as f64 / st.compr_data_size.max(1) as f64;
        r.push("compr_ratio", format!("{ratio:.2}"));
        r.push("mem_saved", st.orig_data_size.saturating_sub(mem_used));
        r.classes = self
            .store
            .class_stats()
            .into_iter()
            .enumerate()
            .map(|(i, c)| ClassRow {
                class: i as u64,
                size: c.size as u64,
                fullness: c.fullness,
                obj_allocated: c.objects_allocated,
                obj_used: c.objects_in_use,
                zspages: c.zspages,
                pages_used: c.pages,
                pages_per_zspage: c.pages_per_zspage as u64,
            })
            .collect();
        r
    }

    /// Carry out what was written to the control file. The whole write is
    /// parsed first: anything not understood is EINVAL and nothing is done.
    /// A refused write's reason is kept for the `zsfs.last_error` xattr.
    pub fn control_write(&self, data: &[u8]) -> FsResult<()> {
        let cmds = Command::parse_all(data)
            .map_err(|e| self.refuse(&format!("{e}; nothing done"), libc::EINVAL))?;
        for cmd in cmds {
            self.control_run(cmd)?;
        }
        Ok(())
    }

    /// Log and remember why a command was refused; the errno to return.
    fn refuse(&self, why: &str, errno: i32) -> Errno {
        log::warn!("control file: {why}");
        self.set_last_error(why);
        Errno(errno)
    }

    fn control_run(&self, cmd: Command) -> FsResult<()> {
        let store = &self.store;
        match cmd {
            Command::Compact => {
                let pages = self.compact();
                log::info!("control file: compact gave back {pages} pages");
            }
            Command::Writeback(amount) => {
                let req = match amount {
                    WritebackAmount::All => WritebackRequest::All,
                    WritebackAmount::Idle => WritebackRequest::Idle,
                    WritebackAmount::Bytes(n) => WritebackRequest::Bytes(n),
                };
                match store.writeback(req) {
                    Ok(rep) => log::info!("control file: {cmd}: {rep:?}"),
                    Err(e @ StoreError::NoBacking) => {
                        let why = format!("{cmd}: this mount has no backing file (backing=none)");
                        return Err(self.refuse(&why, e.errno()));
                    }
                    Err(e) => return Err(self.refuse(&format!("{cmd}: {e}"), e.errno())),
                }
            }
            Command::PoolLimit(limit) => {
                let bytes = limit.map(|l| l.bytes(physical_ram()));
                store.set_limit(bytes);
                log::info!("control file: pool limit now {bytes:?} bytes");
            }
            Command::ResetMemUsedMax => store.reset_max_pages(),
            Command::Recompress { all, level } => {
                let which = if all { Which::All } else { Which::Idle };
                let r = self.recompress(self.pass_spec(which, level), &mut Unpaced);
                log::info!("control file: {cmd}: {r:?}");
            }
            Command::Remount { ref options, check } => {
                self.remount(options, check)
                    .map_err(|why| self.refuse(&format!("remount: {why}"), libc::EINVAL))?;
                if !check {
                    log::info!("control file: remounted with {options}");
                }
            }
        }
        Ok(())
    }

    /// The value of a virtual xattr, or `None` if `name` is not one.
    pub(super) fn virtual_xattr(&self, ino: Ino, name: &[u8]) -> Option<FsResult<Vec<u8>>> {
        if name == USAGE_XATTR.as_bytes() {
            return Some(self.usage(ino).map(|u| u.into_bytes()));
        }
        (ino == super::CONTROL_INO && name == LAST_ERROR_XATTR.as_bytes())
            .then(|| self.last_error())
    }

    /// Files, logical bytes and stored bytes of `ino` and everything below
    /// it. Takes one inode lock at a time (the core's locking rule), so the
    /// figures of a tree that is changing are a sum over moments, like du's.
    fn usage(&self, ino: Ino) -> FsResult<String> {
        let (mut files, mut logical, mut stored) = (0u64, 0u64, 0u64);
        let mut seen = HashSet::new();
        let mut todo = vec![ino];
        let mut first = true;
        while let Some(ino) = todo.pop() {
            if !seen.insert(ino) {
                continue; // a hard link already counted
            }
            let node = match self.get(ino) {
                Ok(n) => n,
                // Removed while we walked: it no longer costs anything.
                Err(_) if !first => continue,
                Err(e) => return Err(e),
            };
            first = false;
            let inner = node.inner.read();
            match &inner.content {
                Content::File(f) => {
                    files += 1;
                    logical += f.size;
                    stored += f.stored_bytes(&self.store);
                }
                Content::Dir(d) => todo.extend(d.values().map(|e| e.ino)),
                _ => {}
            }
        }
        Ok(format!(
            "files {files}\nlogical_bytes {logical}\nstored_bytes {stored}\n"
        ))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::control::Report;
    use crate::fs::{Caller, Fs, CONTROL_INO, ROOT_INO};

    fn report(fs: &Fs) -> Report {
        Report::parse(&String::from_utf8(fs.control_read()).unwrap()).unwrap()
    }

    fn stat(fs: &Fs, key: &str) -> u64 {
        report(fs)
            .get_u64(key)
            .unwrap_or_else(|| panic!("{key} missing"))
    }

    fn no_backing() -> Config {
        Config {
            backing: crate::config::Backing::None,
            ..Config::default()
        }
    }

    #[test]
    fn counters_follow_what_is_written() {
        let fs = crate::mount::new_fs(&no_backing());
        let me = Caller { uid: 0, gid: 0 };
        let f = fs
            .mknod(ROOT_INO, b"f", libc::S_IFREG | 0o644, 0, 0, me)
            .unwrap();
        fs.write(f.ino, 0, &[0u8; 8192]).unwrap();
        let text: Vec<u8> = b"abcdefgh".iter().cycle().take(4096).copied().collect();
        fs.write(f.ino, 8192, &text).unwrap();
        fs.flush(f.ino).unwrap();
        assert_eq!(stat(&fs, "same_pages"), 2);
        assert_eq!(stat(&fs, "orig_data_size"), 3 * 4096);
        assert!(stat(&fs, "compr_data_size") < 200);
        assert_eq!(stat(&fs, "files"), 1);
        assert_eq!(stat(&fs, "directories"), 1);
        assert!(stat(&fs, "mem_used_total") >= 4096);
        // Every documented field is there, in the documented order.
        let names: Vec<String> = report(&fs).fields.into_iter().map(|(n, _)| n).collect();
        let documented: Vec<&str> = crate::control::report::FIELDS
            .iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(names, documented);
        // The control file is there, reads through `read`, and is protected.
        let c = fs.lookup(ROOT_INO, b".zsfs").unwrap();
        assert_eq!(c.ino, CONTROL_INO);
        assert_eq!(c.size, 0);
        assert!(!fs.read(CONTROL_INO, 0, 1 << 16).unwrap().is_empty());
        assert_eq!(fs.unlink(ROOT_INO, b".zsfs").unwrap_err().0, libc::EPERM);
    }

    #[test]
    fn commands_act_and_garbage_changes_nothing() {
        let fs = crate::mount::new_fs(&no_backing());
        assert!(fs.control_write(b"compact\n").is_ok());
        assert!(fs.control_write(b"pool_limit 64M\n").is_ok());
        assert_eq!(stat(&fs, "mem_limit"), 64 << 20);
        // A bad line anywhere in a write: EINVAL and the good lines do not run.
        assert_eq!(
            fs.control_write(b"pool_limit 1M\nbogus\n").unwrap_err().0,
            libc::EINVAL
        );
        assert_eq!(stat(&fs, "mem_limit"), 64 << 20);
        assert!(fs.control_write(b"pool_limit none").is_ok());
        assert_eq!(stat(&fs, "mem_limit"), 0);
        assert!(fs.control_write(b"reset mem_used_max").is_ok());
        // No backing file: writeback is refused with ENODEV, not pretended.
        assert_eq!(
            fs.control_write(b"writeback all").unwrap_err().0,
            libc::ENODEV
        );
    }

    #[test]
    fn usage_of_a_file_and_a_tree() {
        let fs = crate::mount::new_fs(&no_backing());
        let me = Caller { uid: 0, gid: 0 };
        let d = fs.mkdir(ROOT_INO, b"d", 0o755, 0, me).unwrap();
        let a = fs
            .mknod(d.ino, b"a", libc::S_IFREG | 0o644, 0, 0, me)
            .unwrap();
        let b = fs
            .mknod(ROOT_INO, b"b", libc::S_IFREG | 0o644, 0, 0, me)
            .unwrap();
        let text: Vec<u8> = b"0123456789abcdef"
            .iter()
            .cycle()
            .take(16384)
            .copied()
            .collect();
        fs.write(a.ino, 0, &text).unwrap();
        fs.write(b.ino, 0, &[7u8; 4096]).unwrap();
        fs.flush(a.ino).unwrap();
        fs.flush(b.ino).unwrap();
        // A second name for `a` must not count it twice.
        fs.link(a.ino, ROOT_INO, b"a2").unwrap();
        let parse = |ino| {
            let v = fs.getxattr(ino, b"zsfs.usage").unwrap();
            Report::parse(std::str::from_utf8(&v).unwrap()).unwrap()
        };
        let ua = parse(a.ino);
        assert_eq!(ua.get_u64("logical_bytes"), Some(16384));
        let sa = ua.get_u64("stored_bytes").unwrap();
        assert!(sa > 0 && sa < 1000, "{sa}");
        let ub = parse(b.ino);
        assert_eq!(ub.get_u64("stored_bytes"), Some(0)); // same-filled
        let root = parse(ROOT_INO);
        assert_eq!(root.get_u64("files"), Some(2));
        assert_eq!(root.get_u64("logical_bytes"), Some(16384 + 4096));
        assert_eq!(root.get_u64("stored_bytes"), Some(sa));
        // Read-only, and not listed among real attributes.
        assert!(fs.setxattr(a.ino, b"zsfs.usage", b"x", 0, None).is_err());
        assert!(!fs
            .listxattr(a.ino)
            .unwrap()
            .windows(4)
            .any(|w| w == b"zsfs"));
    }
}
