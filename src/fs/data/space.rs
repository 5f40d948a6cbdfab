//! The filesystem-wide block budget (`size=`) and the count of write
//! buffers. A block is reserved before a block index first becomes
//! present in a file (in its map or its write buffer) and released when it
//! stops being present; the reservation is taken under the inode's write
//! lock, at the moment the block is installed.

use std::sync::atomic::{AtomicU64, Ordering};

/// The filesystem-wide block budget (`size=` divided by the block size).
pub(crate) struct Space {
    /// Blocks present in all files' maps and write buffers. Never above `max`.
    pub(crate) used: AtomicU64,
    /// The budget; `u64::MAX` for unlimited. Changes only by remount.
    pub(crate) max: AtomicU64,
    /// Write buffers alive in all files. Never above `max_buffers`.
    pub(crate) buffers: AtomicU64,
    /// Most write buffers at once, so that many files left open with a
    /// partial block written cannot hold unbounded uncompressed memory;
    /// past it a partial write is merged and compressed at once.
    pub(crate) max_buffers: u64,
}

impl Space {
    /// Reserve `n` blocks, or fail with nothing reserved.
    pub(crate) fn reserve(&self, n: u64) -> bool {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                u.checked_add(n)
                    .filter(|&v| v <= self.max.load(Ordering::Relaxed))
            })
            .is_ok()
    }
    /// The budget in blocks.
    pub(crate) fn max(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }

    /// A new budget (remount `size=`), refused when the blocks in use
    /// already exceed it, as tmpfs refuses to shrink below its use.
    pub(crate) fn set_max(&self, max: u64) -> Result<(), u64> {
        let used = self.used.load(Ordering::Relaxed);
        if used > max {
            return Err(used);
        }
        self.max.store(max, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn release(&self, n: u64) {
        if n > 0 {
            self.used.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// A budget of `max` blocks and write buffers worth `buffer_bytes`.
    pub(crate) fn new(max: u64, block_size: u32, buffer_bytes: u64) -> Space {
        Space {
            used: AtomicU64::new(0),
            max: AtomicU64::new(max),
            buffers: AtomicU64::new(0),
            max_buffers: (buffer_bytes / u64::from(block_size)).max(4),
        }
    }

    pub(super) fn take_buffer(&self) -> bool {
        self.buffers
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                (b < self.max_buffers).then_some(b + 1)
            })
            .is_ok()
    }

    pub(super) fn give_buffer(&self) {
        self.buffers.fetch_sub(1, Ordering::Relaxed);
    }
}
