//! The control file (`.zsfs` by default): stats out, commands in.
//!
//! It is a reserved inode ([`super::CONTROL_INO`]) in the root directory: it
//! cannot be removed, renamed, linked, chmod-ed or chown-ed (EPERM), does not
//! count toward `size=`, `nr_inodes=` or statfs, and reports size 0. The
//! adapter opens it with direct I/O so every read reaches [`Fs::control_read`]
//! and sees fresh numbers. Mode 0644, owned by the mounting user: the kernel
//! (`default_permissions`) lets only that user and root write it.
//!
//! Reading gives `name value` lines (zram's mm_stat/bd_stat names where zram
//! has one). Writing runs one command per write; an unknown command fails
//! with EINVAL, changes nothing, and says why in the log.

use super::{Errno, Fs, FsResult};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

impl Fs {
    /// The stats as text, one `name value` per line.
    pub fn control_read(&self) -> Vec<u8> {
        let st = self.store.stats();
        let pool = self.store.pool_stats();
        let mut s = String::new();
        let mut line = |k: &str, v: u64| {
            let _ = writeln!(s, "{k} {v}");
        };
        line("orig_data_size", st.orig_data_size);
        line("compr_data_size", st.compr_data_size);
        line("mem_used_total", pool.pages_held * 4096);
        line("mem_used_max", pool.max_pages_held * 4096);
        line("same_pages", st.same_pages);
        line("pages_compacted", pool.pages_compacted);
        line("huge_pages", st.huge_pages);
        line("compressed_pages", st.compressed_pages);
        line("reject_compress_poor", st.reject_compress_poor);
        line("pool_objects", pool.objects);
        line("files", self.files.load(Ordering::Relaxed));
        line("directories", self.directories.load(Ordering::Relaxed));
        line(
            "logical_bytes",
            self.space.used.load(Ordering::Relaxed) * u64::from(self.block_size),
        );
        line("block_size", u64::from(self.block_size));
        s.into_bytes()
    }

    /// Run one command written to the control file.
    pub fn control_write(&self, data: &[u8]) -> FsResult<()> {
        let Ok(text) = std::str::from_utf8(data) else {
            log::warn!("control file: command is not UTF-8; nothing done");
            return Err(Errno(libc::EINVAL));
        };
        let words: Vec<&str> = text.split_whitespace().collect();
        match words.as_slice() {
            ["compact"] => {
                let pages = self.store.pool().compact();
                log::info!("control file: compact freed {pages} pages");
                Ok(())
            }
            [] => {
                log::warn!("control file: empty command; nothing done (try `compact`)");
                Err(Errno(libc::EINVAL))
            }
            _ => {
                log::warn!(
                    "control file: unknown command {:?}; nothing done (known: compact)",
                    text.trim()
                );
                Err(Errno(libc::EINVAL))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::fs::{Caller, Fs, CONTROL_INO, ROOT_INO};

    fn stat(fs: &Fs, key: &str) -> u64 {
        let text = String::from_utf8(fs.control_read()).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("{key} missing in {text}"))
            .parse()
            .unwrap()
    }

    #[test]
    fn counters_follow_what_is_written() {
        let fs = Fs::new(&Config::default());
        let me = Caller { uid: 0, gid: 0 };
        let f = fs
            .mknod(ROOT_INO, b"f", libc::S_IFREG | 0o644, 0, 0, me)
            .unwrap();
        fs.write(f.ino, 0, &[0u8; 8192]).unwrap();
        let text: Vec<u8> = b"abcdefgh".iter().cycle().take(4096).copied().collect();
        fs.write(f.ino, 8192, &text).unwrap();
        assert_eq!(stat(&fs, "same_pages"), 2);
        assert_eq!(stat(&fs, "orig_data_size"), 3 * 4096);
        assert!(stat(&fs, "compr_data_size") < 200);
        assert_eq!(stat(&fs, "files"), 1);
        assert_eq!(stat(&fs, "directories"), 1);
        assert!(fs.control_write(b"compact\n").is_ok());
        assert_eq!(fs.control_write(b"bogus").unwrap_err().0, libc::EINVAL);
        // The control file is there, reads through `read`, and is protected.
        let c = fs.lookup(ROOT_INO, b".zsfs").unwrap();
        assert_eq!(c.ino, CONTROL_INO);
        assert_eq!(c.size, 0);
        assert!(!fs.read(CONTROL_INO, 0, 1 << 16).unwrap().is_empty());
        assert_eq!(fs.unlink(ROOT_INO, b".zsfs").unwrap_err().0, libc::EPERM);
    }
}
