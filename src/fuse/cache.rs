//! What the kernel's page cache may hold, and keeping it true: the open
//! flags that keep or drop a file's cached pages, and, under `cache=none`,
//! the written bytes stored into pages a shared mapping holds.
//!
//! Per mount, keyed by inode number. Each set's mutex is a leaf, held for
//! one set operation; an inode leaves the sets when the kernel forgets it,
//! since its pages go with it.

use crate::config::CacheMode;
use crate::fs::CONTROL_INO;
use fuser::{FopenFlags, INodeNo, Notifier};
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};

pub(crate) struct PageCache {
    cache: CacheMode,
    /// Inodes whose page cache may hold data we refused (see `open_flags`).
    untrusted: Mutex<HashSet<u64>>,
    /// `cache=auto`: inodes written with direct I/O (see `open_flags`).
    direct_written: Mutex<HashSet<u64>>,
    /// `cache=none`: inodes the kernel holds page-cache pages of (see
    /// `keep_mapping_coherent`).
    mapped: Mutex<HashSet<u64>>,
    /// Request threads inside a page-cache store now, kept below `threads`.
    storing: AtomicUsize,
    threads: usize,
}

impl PageCache {
    pub(crate) fn new(cache: CacheMode, threads: usize) -> PageCache {
        PageCache {
            cache,
            untrusted: Mutex::new(HashSet::new()),
            direct_written: Mutex::new(HashSet::new()),
            mapped: Mutex::new(HashSet::new()),
            storing: AtomicUsize::new(0),
            threads,
        }
    }

    /// The open reply's flags:
    /// - the control file: direct I/O, so every read is fresh;
    /// - `cache=none`: direct I/O, and writes to one file in parallel
    ///   (FOPEN_PARALLEL_DIRECT_WRITES: the kernel then takes the inode lock
    ///   shared for writes that do not extend the file; `Fs::write` compresses
    ///   outside the inode lock and holds it only to swap map entries);
    /// - `cache=auto`: keep the page cache across opens (FOPEN_KEEP_CACHE).
    ///   Without it every open drops the file's cached pages, so a build
    ///   rereading its headers reads them from us each time. Every change to
    ///   a file's data goes through this kernel's page cache or is
    ///   invalidated by it (direct writes, fallocate, copy_file_range,
    ///   truncate), so the cache stays true, except in two cases:
    ///   - a page-cache write we refused for space (see `untrust` and
    ///     `enospc.rs`): the file's next open drops its cache;
    ///   - a write that did not come from the page cache (O_DIRECT): every
    ///     later open of the file drops its cache, as before KEEP_CACHE.
    ///     The kernel drops the pages a direct write covers, but not those
    ///     a buffered reader fills while an asynchronous direct write is in
    ///     flight; kept across opens they showed stale data for good
    ///     (xfstests generic/451: AIO direct writes under buffered readers
    ///     failed every run with a one-time drop, passes with this).
    pub(crate) fn open_flags(&self, ino: INodeNo) -> FopenFlags {
        if ino.0 == CONTROL_INO {
            FopenFlags::FOPEN_DIRECT_IO
        } else if self.cache == CacheMode::None {
            FopenFlags::FOPEN_DIRECT_IO | FopenFlags::FOPEN_PARALLEL_DIRECT_WRITES
        } else if self.untrusted.lock().remove(&ino.0)
            || self.direct_written.lock().contains(&ino.0)
        {
            FopenFlags::empty()
        } else {
            FopenFlags::FOPEN_KEEP_CACHE
        }
    }

    /// The kernel's cache of `ino` may hold data we refused: its next open
    /// drops it.
    pub(crate) fn untrust(&self, ino: u64) {
        self.untrusted.lock().insert(ino);
    }

    /// A READ of `ino`. Under `cache=none` only the page cache (a shared
    /// mapping's fault) reads without a lock owner: direct READs always
    /// carry one (fuse_send_read). Such an inode has pages to keep coherent.
    pub(crate) fn note_read(&self, ino: u64, has_lock_owner: bool) {
        if self.cache == CacheMode::None && !has_lock_owner && ino != CONTROL_INO {
            self.mapped.lock().insert(ino);
        }
    }

    /// A WRITE of `ino`, from the page cache or not (see `open_flags`).
    pub(crate) fn note_write(&self, ino: u64, from_cache: bool) {
        if !from_cache && self.cache == CacheMode::Auto {
            self.direct_written.lock().insert(ino);
        }
    }

    /// The kernel forgot `ino`: it evicted the inode, pages and all.
    pub(crate) fn forget(&self, ino: u64) {
        match self.cache {
            CacheMode::None => self.mapped.lock().remove(&ino),
            CacheMode::Auto => self.direct_written.lock().remove(&ino),
        };
    }

    /// `cache=none` serves reads and writes directly, but a shared mapping
    /// still goes through the page cache (FUSE_DIRECT_IO_ALLOW_MMAP), and the
    /// kernel does not keep the two coherent: a direct write leaves a cached
    /// page of the same range as it was, and when that page is dirty the
    /// kernel's laundering after the write sends it back over the new bytes
    /// (xfstests generic/346, traced: fault READ, direct WRITE, then the
    /// page's WRITE from before it). So after a direct write to an inode
    /// with cached pages, the written bytes are stored into those pages
    /// (FUSE_NOTIFY_STORE) before the write is answered: the page then
    /// carries them, whatever is written back later.
    ///
    /// An inode gets into `mapped` at a page-cache READ (`note_read`). The
    /// store locks each page, and a page being faulted in stays locked
    /// until another request thread answers its READ: so at most
    /// `threads - 1` threads store at once and one is always free to answer
    /// (with `threads=1`, no store, and the race stays).
    pub(crate) fn keep_mapping_coherent(
        &self,
        notifier: Option<&Notifier>,
        ino: u64,
        offset: u64,
        data: &[u8],
    ) {
        if self.cache != CacheMode::None || data.is_empty() || !self.mapped.lock().contains(&ino) {
            return;
        }
        let Some(n) = notifier else { return };
        // Relaxed: a count of threads, guarding nothing but itself.
        if self.storing.fetch_add(1, Ordering::Relaxed) + 1 < self.threads {
            if let Err(e) = n.store(INodeNo(ino), offset, data) {
                log::debug!("store into the page cache of inode {ino}: {e}");
            }
        }
        self.storing.fetch_sub(1, Ordering::Relaxed);
    }
}
