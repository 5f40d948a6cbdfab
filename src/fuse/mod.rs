//! FUSE: fuser 0.18 requests served by `fs`.
//!
//! The handlers (`ops.rs`) are a few lines each: decode the request, call
//! the core, reply. What the kernel needs besides lives beside them:
//! - `convert.rs`: errno, attributes, TTLs and the common replies;
//! - `session.rs`: the mount, INIT's feature negotiation, request sizes,
//!   readahead;
//! - `io.rs`: READ, WRITE, copy_file_range, fallocate, lseek;
//! - `cache.rs`: keeping the kernel's page cache true (open flags, stores
//!   into a shared mapping's pages under `cache=none`);
//! - `enospc.rs`: ENOSPC under the writeback cache, reported one write late;
//! - `dirty.rs`: the mount's dirty page-cache window (`max_dirty=`);
//! - `control.rs`: the control file's per-open snapshots and writes.
//!
//! `ZsfsFuse` is `Send + Sync` and fuser calls it from `threads=` request
//! loops at once. The core does its own locking; the state kept here (sets
//! of inode numbers, the control file's snapshots) sits behind mutexes of
//! which no two are held at once, and only the snapshots' is held across a
//! call into the core (which never calls back up).
//!
//! # Round trips
//! A synchronous request costs ~25 us on a VM (the idle vCPU halts and the
//! cross-CPU wakeup is slow), so the adapter avoids the ones it can: FLUSH
//! is refused with ENOSYS (see `flush`) and entries and attributes are
//! cached for a long time (see `convert::TTL`), and OPENDIR (so no
//! RELEASEDIR follows), FSYNCDIR and POLL are refused likewise (LSEEK too
//! under the writeback cache). What stays per created file is
//! kernel-forced: LOOKUP (negative, from atomic_open), CREATE, GETATTR of
//! the parent (fuse_dir_changed invalidated its mode, which
//! default_permissions needs), GETXATTR security.capability at the first
//! write and at chown (FUSE clears SB_NOSEC, so S_NOSEC never caches "no
//! capability"), and SETATTR per chmod/chown/utimes plus one to flush the
//! kernel-owned mtime/ctime first (write_inode_now in fuse_do_setattr, and
//! in fuse_unlink for the ctime; writeback cache only).

mod cache;
mod control;
mod convert;
mod dirty;
mod enospc;
mod io;
mod ops;
mod session;

pub use session::new_session;

use crate::config::{CacheMode, MountFlags};
use crate::fs::{Fs, CONTROL_INO};
use fuser::{FileHandle, INodeNo, Notifier};
use parking_lot::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

/// Entries fetched per readdirplus call; the reply buffer (a page or so)
/// usually fills before this.
const READDIRPLUS_BATCH: usize = 64;

/// What the session takes from the mount's options (`mount::session_config`).
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Shown as the mount's source (`FSName`).
    pub source: String,
    /// ro, nosuid, nodev, noexec, atime, sync, dirsync.
    pub mount_flags: MountFlags,
    /// Let every user in.
    pub allow_other: bool,
    /// Request loops.
    pub threads: usize,
    /// Page cache or direct I/O for file data.
    pub cache: CacheMode,
    /// The dirty page-cache window (`max_dirty=`; see `dirty.rs`).
    pub max_dirty: Option<u64>,
    /// Serve extended attributes (`xattr=`); see `ops.rs`'s `getxattr`.
    pub xattr: bool,
}

pub struct ZsfsFuse {
    /// Threads that work on `fs` beside the requests (recompression): they
    /// hold the `Fs`, so they are stopped (dropped) before it, in `destroy`
    /// and, declared first, when the session drops.
    workers: Vec<Box<dyn Send + Sync>>,
    /// The filesystem; `Some` until `destroy`, which drops it (stopping the
    /// reclaim thread, giving a named backing file's space back) before
    /// the process exits there.
    fs: Option<Arc<Fs>>,
    cache: CacheMode,
    /// Control-file opens and their snapshots.
    control: control::ControlOpens,
    /// Page-cache writes refused for space, not yet reported (`enospc.rs`).
    enospc: enospc::Deferred,
    /// What the kernel's page cache may hold (`cache.rs`).
    page_cache: cache::PageCache,
    /// Set once the session exists; used to invalidate cached attributes.
    notifier: Arc<OnceLock<Notifier>>,
    /// The mount's backing-device name ("0:39", from mountinfo), whose
    /// readahead `raise_readahead` sets; set once the mount exists, unset
    /// when it was not found.
    bdi: Arc<OnceLock<String>>,
    /// `raise_readahead` has run (it runs once, at the first open).
    readahead_done: AtomicBool,
    /// The bdi's dirty page-cache window (`max_dirty=`), kept at most half
    /// the free space; see `dirty.rs`.
    dirty: dirty::DirtyLimit,
    /// The kernel agreed to FUSE_HANDLE_KILLPRIV_V2: it no longer asks for
    /// `security.capability` before every write (a round trip per write(2)
    /// that cost random writes 85 % of their speed), and clearing
    /// setuid/setgid on truncate, chown and fallocate is ours (SETATTR and
    /// FALLOCATE test this; direct writes and copy_file_range clear them
    /// whatever was agreed, `io.rs`). Set in `init`.
    killpriv: bool,
    /// `xattr=on`: serve the xattr requests; off: refuse them with ENOSYS.
    xattr: bool,
    /// Run once from `destroy`, when the kernel connection is gone. The
    /// daemon exits there: fuser's session, dropped after `destroy`,
    /// unmounts by *path* (its "is it still mounted" test reads a torn-down
    /// connection as mounted), so a daemon slow to tear down a large pool
    /// would unmount a new zsfs mounted at the same place meanwhile.
    on_destroy: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl ZsfsFuse {
    /// The FUSE side of `fs`, as `config` says.
    pub fn new(config: &SessionConfig, fs: Arc<Fs>) -> ZsfsFuse {
        let threads = config.threads.max(1);
        ZsfsFuse {
            workers: Vec::new(),
            fs: Some(fs),
            cache: config.cache,
            control: control::ControlOpens::new(),
            enospc: enospc::Deferred::default(),
            page_cache: cache::PageCache::new(config.cache, threads),
            notifier: Arc::new(OnceLock::new()),
            bdi: Arc::new(OnceLock::new()),
            readahead_done: AtomicBool::new(false),
            dirty: dirty::DirtyLimit::new(config.max_dirty),
            killpriv: false,
            xattr: config.xattr,
            on_destroy: Mutex::new(None),
        }
    }

    /// The filesystem core (for tests and the control file).
    pub fn fs(&self) -> &Fs {
        self.fs
            .as_deref()
            .expect("no request is served after destroy")
    }

    /// Drop the kernel's cached attributes of `ino` (mode, atime) after we
    /// changed them in a reply that carries none. Attributes only (offset
    /// -1): the kernel takes no inode lock for that, so it is safe from
    /// inside any request.
    fn invalidate_attrs(&self, ino: u64) {
        if let Some(n) = self.notifier.get() {
            if let Err(e) = n.inval_inode(INodeNo(ino), -1, 0) {
                log::debug!("inval_inode({ino}): {e}");
            }
        }
    }

    /// The handle of a new open: its own for the control file, 0 otherwise.
    fn open_handle(&self, ino: INodeNo) -> FileHandle {
        if ino.0 == CONTROL_INO {
            self.control.open()
        } else {
            FileHandle(0)
        }
    }
}
