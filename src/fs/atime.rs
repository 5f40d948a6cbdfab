//! The atime rule (`relatime`, `strictatime`, `noatime`; none while
//! read-only), applied at READ, at an open for reading and to a
//! copy_file_range source: reads the page cache serves never reach us, and
//! the kernel never updates a FUSE inode's atime itself (S_NOATIME).

use super::{now, FileKind, Fs, FsResult, Inner, Ino, Inode, Stamp, CONTROL_INO};
use crate::config::AtimeMode;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

impl Fs {
    /// An open of `ino` for reading. Reads the page cache serves never
    /// reach us, and the kernel never updates a FUSE inode's atime itself
    /// (S_NOATIME), so the mount's atime rule is applied here as well as at
    /// READ. Returns whether atime changed: the kernel's cached attributes
    /// must then be dropped.
    pub fn open_for_read(&self, ino: Ino) -> FsResult<bool> {
        let n = self.get(ino)?;
        if n.kind() != FileKind::File || ino == CONTROL_INO {
            return Ok(false);
        }
        Ok(self.touch_atime(&n))
    }

    /// Apply the mount's atime rule to a read of `n`; true if atime moved.
    pub(super) fn touch_atime(&self, n: &Inode) -> bool {
        let mode = self.atime_mode();
        if !atime_due(mode, &n.inner.read()) {
            return false;
        }
        let mut i = n.inner.write();
        // Checked again: another reader may have moved it meanwhile.
        let due = atime_due(mode, &i);
        if due {
            i.atime = now();
        }
        due
    }

    pub(super) fn set_atime_mode(&self, m: AtimeMode) {
        self.atime.store(m as u8, Ordering::Relaxed);
    }

    fn atime_mode(&self) -> AtimeMode {
        match self.atime.load(Ordering::Relaxed) {
            x if x == AtimeMode::Strict as u8 => AtimeMode::Strict,
            x if x == AtimeMode::NoAtime as u8 => AtimeMode::NoAtime,
            _ => AtimeMode::Relatime,
        }
    }
}

/// Whether a read now moves atime under `mode`.
fn atime_due(mode: AtimeMode, i: &Inner) -> bool {
    match mode {
        AtimeMode::NoAtime => false,
        AtimeMode::Strict => true,
        AtimeMode::Relatime => relatime_due(i),
    }
}

/// relatime: update atime if it is not newer than mtime/ctime or a day old.
fn relatime_due(i: &Inner) -> bool {
    i.atime <= i.mtime
        || i.atime <= Stamp::from(i.ctime)
        || SystemTime::from(now())
            .duration_since(i.atime.into())
            .unwrap_or_default()
            >= Duration::from_secs(24 * 3600)
}
