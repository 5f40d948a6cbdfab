//! `mount -o remount,OPTIONS`: which options change on a live mount.
//!
//! tmpfs users resize a mount in place (`mount -o remount,size=4G`). The
//! `zsfs` command turns a remount into a control-file command (see
//! `control::remount`); this is the daemon's half. The options are applied
//! onto the mount's current ones, as mount(8) means them: what is not
//! named stays. All of it is checked before anything changes, so a refused
//! remount changes nothing:
//! - live: `size=`, `nr_inodes=` (neither below what is in use, as tmpfs
//!   refuses), `pool_limit=`, `accept_threshold=`, `mode=`, `uid=`, `gid=`
//!   (the root directory's, as at mount time), and the VFS flags (the
//!   kernel applies those; zsfs keeps the atime rule);
//! - fixed for the mount's life: everything else, which is refused with
//!   the option's name unless it repeats the current value (fstab lines are
//!   replayed whole on remount).

use super::{Fs, FsResult, Inner, ROOT_INO};
use crate::config::Config;

/// Options that cannot change on a live mount, with the reason given to
/// the user, and a test of whether `a` and `b` differ in it.
type Fixed = (&'static str, &'static str, fn(&Config, &Config) -> bool);

/// A row of [`FIXED`]: `field: "reason"` for an option named as its
/// `Config` field, `field as "name": "reason"` for one that is not.
macro_rules! fixed {
    ($field:ident as $name:literal: $why:literal) => {
        fixed!(@row $field, $name, $why)
    };
    ($field:ident: $why:literal) => {
        fixed!(@row $field, stringify!($field), $why)
    };
    (@row $field:ident, $name:expr, $why:literal) => {
        ($name, $why, |a: &Config, b: &Config| a.$field != b.$field)
    };
}

const FIXED: &[Fixed] = &[
    fixed!(block_size: "the file block maps are built with it"),
    fixed!(threads: "the request loops are started at mount"),
    fixed!(cache: "the kernel negotiates it once, at mount"),
    fixed!(allow_other: "the kernel fixes it at mount"),
    fixed!(second_chance: "the shrinker is set up with it"),
    fixed!(dedup: "stored blocks are already shared or not"),
    fixed!(max_dirty: "the dirty window is set at mount"),
    fixed!(xattr: "the kernel stops asking for xattrs once refused, until unmount"),
    fixed!(backing: "written-back data lives in the file"),
    fixed!(recompress_after: "the recompression thread is started with it"),
    fixed!(control_name as "control": "the control file is named at mount"),
    fixed!(log: "the log is opened at mount"),
];

/// `remount undo`: back to the options before the last applied remount.
pub(crate) const UNDO: &str = "undo";

/// The atime rule a mount with `c` follows: none while read-only (the
/// kernel refuses atime updates on a read-only mount, tmpfs's too).
pub(super) fn atime_mode(c: &Config) -> crate::config::AtimeMode {
    if c.mount_flags.read_only {
        crate::config::AtimeMode::NoAtime
    } else {
        c.mount_flags.atime
    }
}

/// The first fixed option `new` changes, with its reason.
fn fixed_change(old: &Config, new: &Config) -> Option<(&'static str, &'static str)> {
    FIXED
        .iter()
        .find(|(_, _, differs)| differs(old, new))
        .map(|&(name, why, _)| (name, why))
}

impl Fs {
    /// Check (and unless `check_only`, apply) `opts` as a remount. The
    /// error says which option was refused and why; nothing has changed.
    pub fn remount(&self, opts: &str, check_only: bool) -> Result<(), String> {
        let mut live = self.live.lock();
        let new = if opts == UNDO {
            // The options before the last applied remount: the command
            // undoes a remount whose kernel half then failed.
            self.undo
                .lock()
                .clone()
                .ok_or("there is no remount to undo")?
        } else {
            let mut new = live.clone();
            crate::config::apply_options(&mut new, opts).map_err(|e| e.to_string())?;
            new
        };
        if let Some((name, why)) = fixed_change(&live, &new) {
            return Err(format!(
                "`{name}=` cannot change on a live mount ({why}); unmount and mount again"
            ));
        }
        let bs = u64::from(self.block_size);
        let max_blocks = new.size / bs;
        let used = self.space.used.load(std::sync::atomic::Ordering::Relaxed);
        if used > max_blocks {
            return Err(format!(
                "size={} is below the {} bytes the files use; delete files first",
                new.size,
                used * bs
            ));
        }
        let inodes = self.inodes_used();
        if new.nr_inodes < inodes {
            return Err(format!(
                "nr_inodes={} is below the {inodes} inodes in use; delete files first",
                new.nr_inodes
            ));
        }
        if check_only {
            return Ok(());
        }
        // Under `live`, nothing else resizes: these cannot fail now, but
        // a file written meanwhile may have taken blocks; say so.
        self.space
            .set_max(max_blocks)
            .map_err(|u| format!("size={} is below the {} bytes in use", new.size, u * bs))?;
        self.set_max_inodes(new.nr_inodes.max(1));
        self.store.set_limit(
            new.pool_limit
                .map(|l| l.bytes(crate::config::physical_ram())),
        );
        self.store.set_accept_threshold(new.accept_threshold);
        self.set_atime_mode(atime_mode(&new));
        self.set_root_owner(&new)?;
        *self.undo.lock() = Some(std::mem::replace(&mut *live, new));
        Ok(())
    }

    fn set_root_owner(&self, c: &Config) -> Result<(), String> {
        let root = self.get(ROOT_INO).map_err(|e| e.to_string())?;
        let mut i = root.inner.write();
        let changed =
            |i: &Inner| (i.perm, i.uid, i.gid) != ((c.mode & 0o7777) as u16, c.uid, c.gid);
        if changed(&i) {
            i.perm = (c.mode & 0o7777) as u16;
            i.uid = c.uid;
            i.gid = c.gid;
            i.ctime = super::now().into();
        }
        Ok(())
    }

    /// The mount's options now (for tests and the control file).
    pub fn live_config(&self) -> Config {
        self.live.lock().clone()
    }

    /// Record why a control-file write was refused (see `last_error`).
    pub(super) fn set_last_error(&self, why: &str) {
        *self.last_error.lock() = why.to_string();
    }

    /// Why the last refused control-file write was refused.
    pub(super) fn last_error(&self) -> FsResult<Vec<u8>> {
        Ok(self.last_error.lock().as_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs() -> Fs {
        crate::mount::new_fs(&Config {
            backing: crate::config::Backing::None,
            size: 64 << 20,
            nr_inodes: 100,
            ..Config::default()
        })
    }

    #[test]
    fn live_options_change_and_fixed_ones_are_refused_whole() {
        let fs = fs();
        fs.remount("size=128m,nr_inodes=200,mode=700,uid=5,gid=6", false)
            .unwrap();
        assert_eq!(fs.statfs().blocks, (128 << 20) / 4096);
        assert_eq!(fs.statfs().files, 200);
        let root = fs.getattr(ROOT_INO).unwrap();
        assert_eq!((root.perm, root.uid, root.gid), (0o700, 5, 6));
        // One fixed option spoils the whole remount: size= stays.
        let e = fs.remount("size=1g,block_size=64k", false).unwrap_err();
        assert!(
            e.contains("block_size=") && e.contains("cannot change"),
            "{e}"
        );
        assert_eq!(fs.statfs().blocks, (128 << 20) / 4096);
        // Repeating a fixed option's value (an fstab line) is fine.
        fs.remount("block_size=4k,dedup=on", true).unwrap();
        let e = fs.remount("szie=1g", false).unwrap_err();
        assert!(e.contains("unknown option"), "{e}");
        // undo goes back to before the last applied remount.
        fs.remount("size=256m", false).unwrap();
        fs.remount(UNDO, false).unwrap();
        assert_eq!(fs.statfs().blocks, (128 << 20) / 4096);
    }

    #[test]
    fn size_and_inodes_never_shrink_below_use() {
        let fs = fs();
        let me = super::super::Caller { uid: 0, gid: 0 };
        let f = fs
            .mknod(ROOT_INO, b"f", libc::S_IFREG | 0o644, 0, 0, me)
            .unwrap();
        fs.write(f.ino, 0, &vec![7u8; 1 << 20]).unwrap();
        fs.flush(f.ino).unwrap();
        let e = fs.remount("size=512k", false).unwrap_err();
        assert!(e.contains("below") && e.contains("bytes"), "{e}");
        let e = fs.remount("nr_inodes=1", false).unwrap_err();
        assert!(e.contains("nr_inodes=1"), "{e}");
        assert_eq!(fs.statfs().blocks, (64 << 20) / 4096);
        fs.remount("size=2m", false).unwrap();
        assert_eq!(fs.statfs().blocks, 512);
    }
}
