//! The mount's limits: `nr_inodes=` (reserved per inode created, given back
//! when one leaves the table) and `size=` as statfs shows them, and the
//! rate-limited warning when `size=` refuses a write. The block budget
//! itself is `data::Space`.

use super::{now, Fs, StatFs, NAME_MAX};
use std::sync::atomic::Ordering;

impl Fs {
    pub(super) fn reserve_inode(&self) -> bool {
        self.inodes_used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                (u < self.max_inodes()).then_some(u + 1)
            })
            .is_ok()
    }

    pub(super) fn max_inodes(&self) -> u64 {
        self.max_inodes.load(Ordering::Relaxed)
    }

    pub(super) fn set_max_inodes(&self, n: u64) {
        self.max_inodes.store(n, Ordering::Relaxed);
    }

    /// Inodes in use, the control file excluded.
    pub(super) fn inodes_used(&self) -> u64 {
        self.inodes_used.load(Ordering::Relaxed)
    }

    pub fn statfs(&self) -> StatFs {
        let used = self.space.used.load(Ordering::Relaxed);
        let inodes = self.inodes_used.load(Ordering::Relaxed);
        let bfree = self.space.max().saturating_sub(used);
        StatFs {
            blocks: self.space.max(),
            bfree,
            bavail: bfree,
            files: self.max_inodes(),
            ffree: self.max_inodes().saturating_sub(inodes),
            bsize: self.block_size,
            namelen: NAME_MAX as u32,
        }
    }

    /// Say once per minute at most that `size=` refused a write.
    pub(super) fn warn_full(&self) {
        let now_s = now().secs().max(0) as u64;
        let last = self.last_full_warning.swap(now_s, Ordering::Relaxed);
        if now_s >= last + 60 {
            log::warn!(
                "size={} bytes reached: writes fail with ENOSPC; raise size= or delete files",
                self.space.max() * u64::from(self.block_size)
            );
        } else {
            self.last_full_warning.store(last, Ordering::Relaxed);
        }
    }
}
