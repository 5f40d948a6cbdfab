//! ENOSPC under the writeback cache.
//!
//! With the writeback cache, write(2) only fills the kernel's page cache;
//! the data reaches us later, and a write refused then (size= reached)
//! would only surface at fsync/close, while a writer like `yes > f` would
//! keep going forever. So when a page-cache write is refused we remember
//! the inode in [`Deferred`], grow our size to match the kernel's (a hole),
//! and invalidate the inode's cached attributes. The kernel then asks for
//! attributes (a GETATTR carrying the file handle) at the writer's next
//! write(2), and we answer ENOSPC, which write(2) returns: tmpfs behaviour,
//! one write late. One difference stays: the kernel writes pages back in no
//! fixed order, so the pages refused at the limit are not always the last
//! ones written; they read as zeros. `cache=none` keeps tmpfs's exact
//! "everything before the limit" behaviour.

use super::ZsfsFuse;
use parking_lot::Mutex;
use std::collections::HashSet;

/// Inodes with a page-cache write refused for space that no write(2) has
/// reported yet. The mutex is a leaf, held for one set operation.
#[derive(Default)]
pub(crate) struct Deferred(Mutex<HashSet<u64>>);

impl Deferred {
    /// Whether `ino` has an ENOSPC to report; reported once.
    pub(crate) fn take(&self, ino: u64) -> bool {
        self.0.lock().remove(&ino)
    }

    /// Nothing left to report for `ino`: close() already did (fuse_flush
    /// writes the pages back and returns the mapping's error whether or not
    /// FLUSH is sent).
    pub(crate) fn clear(&self, ino: u64) {
        self.0.lock().remove(&ino);
    }
}

impl ZsfsFuse {
    /// A page-cache write of `len` bytes at `off` to `ino` was refused for
    /// space: arrange for the writer's next write(2) to see ENOSPC.
    pub(crate) fn cached_write_refused(&self, ino: u64, off: u64, len: u64) {
        if let Err(e) = self.fs().grow_to(ino, off.saturating_add(len)) {
            log::warn!("inode {ino}: cannot match the kernel's file size after ENOSPC: {e}");
        }
        self.enospc.0.lock().insert(ino);
        // The refused pages stay in the kernel's cache, which would show
        // data we do not hold; the next open drops them (they read back as
        // zeros, as before FOPEN_KEEP_CACHE). Not invalidated here: the
        // pages are under writeback, locked by the request we are in.
        self.page_cache.untrust(ino);
        self.invalidate_attrs(ino);
    }
}
