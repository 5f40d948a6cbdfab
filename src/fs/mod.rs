//! Filesystem core: inodes, directories, block maps, xattrs, limits.
//!
//! No FUSE types in here; the FUSE layer (`crate::fuse`) translates.
//! Everything is testable without a mount (see `tests/fs_*.rs` and the unit
//! tests beside this file: `tests.rs`, `copy_tests.rs`, `data/tests.rs`).
//!
//! # What the kernel does and what we do
//! zsfs is mounted with `default_permissions`, so the kernel checks access
//! (mode bits, sticky directories, who may chmod/chown/utime) before a
//! request reaches us, and clears setuid/setgid itself on page-cache
//! writes. The core does what the kernel leaves to the filesystem:
//! ownership of new inodes (setgid directories), the umask or a parent's
//! default ACL on create, name and size limits, link counts, rename rules,
//! timestamps, xattr namespaces, space and inode limits, and, under
//! FUSE_HANDLE_KILLPRIV_V2, setuid/setgid clearing on direct writes,
//! truncate, chown, fallocate and copy_file_range (`suid.rs`).
//!
//! # POSIX ACLs
//! The kernel checks them (FUSE_POSIX_ACL) and reads and writes them as the
//! xattrs `system.posix_acl_access`/`_default`, stored here with the others.
//! What it leaves to us (see `acl.rs`, which names the kernel code): the mode
//! an access ACL implies, not storing an ACL the mode says all of, chmod's
//! rewrite of the ACL, and a parent's default ACL on create.
//!
//! # Locking (order: `ns` -> inode locks -> `table`)
//! * `table` (`RwLock<InodeTable>`, a hash set of `Arc<Inode>`, `table.rs`)
//!   maps ino -> inode. Leaf lock: held only for a set operation, never
//!   while taking another lock.
//! * `Inode::inner` (RwLock) guards one inode's metadata and content: file
//!   data is read under the read lock and changed under the write lock. A
//!   write compresses its whole blocks before taking the lock and frees the
//!   blocks it replaced after dropping it (`data/`), so writers of one file
//!   hold its lock only to merge partial blocks and swap map entries. A
//!   recompression pass takes the *upgradable* read lock (readers go on)
//!   while the store packs a run, and the write lock only to swap it in
//!   (`data/recompress.rs`); it lists the files under `table` first and
//!   drops that before taking any inode lock.
//! * `ns` (Mutex) is taken by every operation that locks more than one inode
//!   (link, unlink, rmdir, rename). Outside `ns` a thread holds at most one
//!   inode lock and, while it does, waits for no other inode lock, only for
//!   locks that come after every inode lock (`table`, and the store's and
//!   the pool's, which never call back up), so under `ns` inodes may be
//!   locked in any order without deadlock.
//!   copy_file_range touches two inodes but never holds both locks: it
//!   takes references to the source's blocks under the source's lock,
//!   drops it, then installs them under the destination's (`copy_range`).
//!   The references, not a lock, keep the objects alive in between.
//!
//! # Modules
//! `types` (the values operations take and return), `lifetime` (lookup,
//! forget, when an inode goes), `attr` (stat, setattr), `create`,
//! `namespace` (link, unlink, rename), `readdir`, `xattr` (with `acl`),
//! `suid` (setuid/setgid dropping), `atime`, `limits` (`nr_inodes=`,
//! statfs), `data/` (file contents, the write path, copies, the `size=`
//! budget, the recompression walk), `control` (the `.zsfs` file) and
//! `remount`; `dir`, `table` and
//! `stamp` are the data structures.

mod acl;
mod atime;
mod attr;
mod control;
mod create;
mod data;
mod dir;
mod lifetime;
use lifetime::Lookups;
mod limits;
mod namespace;
mod readdir;
mod remount;
mod stamp;
mod suid;
mod table;
mod types;
mod xattr;

pub use types::*;

use crate::config::Config;
use crate::store::Store;
use data::{FileData, Space, Writers};
pub use data::{Pace, PassReport, PassSpec, Unpaced};
use dir::Dir;
use parking_lot::{Mutex, RwLock};
use stamp::{ClockStamp, Stamp};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use table::InodeTable;
use xattr::Xattrs;

pub use crate::store::{StoreStats, Which};

/// The first inode number handed out; 1 and 2 are the root and the
/// control file.
const FIRST_FREE_INO: Ino = 3;
/// Memory for per-file write buffers (uncompressed partial blocks), in
/// all files together; see `data/`.
const WRITE_BUFFER_BYTES: u64 = 32 << 20;

enum Content {
    File(FileData),
    /// Boxed: a directory's maps are larger than a file's, and most inodes
    /// are files (the enum is as large as its largest variant).
    Dir(Box<Dir>),
    Symlink(Box<[u8]>),
    /// FIFO, socket or device node.
    Special {
        rdev: u32,
    },
    /// The control file: no data of its own.
    Control,
}

struct Inner {
    /// 07777 bits.
    perm: u16,
    uid: u32,
    gid: u32,
    /// Directory entries naming this inode (directories: 2 + subdirectories;
    /// 0 once removed).
    nlink: u32,
    /// Timestamps (`stamp.rs`): those users set, 12 bytes each; those only
    /// the clock sets, 8.
    atime: Stamp,
    mtime: Stamp,
    ctime: ClockStamp,
    crtime: ClockStamp,
    /// Extended attributes, name -> value. Small per inode, so a Vec.
    xattrs: Xattrs,
    content: Content,
    /// Set once the inode has left the table; nothing may use it afterwards.
    gone: bool,
}

pub(crate) struct Inode {
    ino: Ino,
    /// Kernel references, and the kind, which never changes (`lifetime.rs`).
    lookups: Lookups,
    inner: RwLock<Inner>,
}

/// The filesystem.
pub struct Fs {
    store: Store,
    /// Background threads that work on this filesystem's data (reclaim,
    /// recompression), handed in by `mount.rs`; dropped, which stops and
    /// joins them, with the `Fs`. Type-erased so `fs` names no policy.
    workers: Vec<Box<dyn Send + Sync>>,
    /// Blocks the last recompression pass found idle (`idle_pages`).
    last_idle: AtomicU64,
    /// Block budget from `size=`.
    space: Space,
    /// Write requests in progress, which size a write's compression
    /// threads (`data/write.rs`).
    writers: Writers,
    /// Inode table; see the locking notes.
    table: RwLock<InodeTable>,
    /// Serialises operations that lock more than one inode.
    ns: Mutex<()>,
    /// Next inode number; numbers are never reused.
    next_ino: AtomicU64,
    /// Inodes in the table, the control file excluded. <= `max_inodes`.
    inodes_used: AtomicU64,
    /// `nr_inodes=`; changes only by remount.
    max_inodes: AtomicU64,
    /// The mount's options as they are now: what it was mounted with,
    /// changed by every accepted remount (see `remount.rs`).
    live: Mutex<Config>,
    /// `live` before the last applied remount (`remount undo`).
    undo: Mutex<Option<Config>>,
    /// When reads update atime: the mount's `AtimeMode` (`atime_mode`).
    atime: std::sync::atomic::AtomicU8,
    /// Why the last control-file write was refused, for the
    /// `zsfs.last_error` virtual xattr (`zsfs ctl` and remount print it).
    last_error: Mutex<String>,
    /// Live regular files (control file excluded).
    files: AtomicU64,
    /// Live directories (root included).
    directories: AtomicU64,
    block_size: u32,
    /// Name of the control file in the root.
    control_name: Box<[u8]>,
    /// Who may write the control file besides root.
    owner_uid: u32,
    /// Unix time of the last "size= reached" warning (rate limit).
    last_full_warning: AtomicU64,
}

/// The time every timestamp is stamped with. The kernel stamps the times
/// it owns (mtime/ctime under the writeback cache, ctime at link and
/// unlink) with `current_time()`, which reads the coarse clock: up to a
/// tick (4 ms at HZ=250) behind the fine one. Stamping ours from the fine
/// clock made a later `ln` show an earlier ctime than an earlier create, so
/// both come from the coarse clock, at the kernel's granularity.
fn now() -> Stamp {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a valid out-pointer; cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    Stamp::from(SystemTime::UNIX_EPOCH + Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

fn check_name(name: &[u8]) -> FsResult<()> {
    if name.len() > NAME_MAX {
        return err(libc::ENAMETOOLONG);
    }
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
        return err(libc::EINVAL);
    }
    Ok(())
}

impl Fs {
    /// A fresh, empty filesystem configured like the mount, storing into
    /// `store` (`mount::fs` builds both from a validated `Config`).
    pub fn with_store(config: &Config, store: Store) -> Fs {
        let block_size = config.block_size;
        let max_blocks = config.size / u64::from(block_size);
        // SAFETY: geteuid cannot fail.
        let owner_uid = unsafe { libc::geteuid() };
        let fs = Fs {
            store,
            workers: Vec::new(),
            last_idle: AtomicU64::new(0),
            space: Space::new(max_blocks, block_size, WRITE_BUFFER_BYTES),
            writers: Writers::default(),
            table: RwLock::new(InodeTable::default()),
            ns: Mutex::new(()),
            next_ino: AtomicU64::new(FIRST_FREE_INO),
            inodes_used: AtomicU64::new(1),
            max_inodes: AtomicU64::new(config.nr_inodes.max(1)),
            live: Mutex::new(config.clone()),
            undo: Mutex::new(None),
            atime: std::sync::atomic::AtomicU8::new(remount::atime_mode(config) as u8),
            last_error: Mutex::new(String::new()),
            files: AtomicU64::new(0),
            directories: AtomicU64::new(1),
            block_size,
            control_name: config.control_name.as_bytes().into(),
            owner_uid,
            last_full_warning: AtomicU64::new(0),
        };
        let t = now();
        let mut root_dir = Dir::new(ROOT_INO);
        if !config.control_name.is_empty() {
            root_dir.insert(config.control_name.as_bytes(), CONTROL_INO, FileKind::File);
        }
        let root = Inner {
            perm: (config.mode & 0o7777) as u16,
            uid: config.uid,
            gid: config.gid,
            nlink: 2,
            atime: t,
            mtime: t,
            ctime: t.into(),
            crtime: t.into(),
            xattrs: Xattrs::new(),
            content: Content::Dir(Box::new(root_dir)),
            gone: false,
        };
        let control = Inner {
            perm: 0o644,
            uid: owner_uid,
            // SAFETY: getegid cannot fail.
            gid: unsafe { libc::getegid() },
            nlink: 1,
            atime: t,
            mtime: t,
            ctime: t.into(),
            crtime: t.into(),
            xattrs: Xattrs::new(),
            content: Content::Control,
            gone: false,
        };
        {
            let mut tbl = fs.table.write();
            tbl.insert(Arc::new(Inode::new(ROOT_INO, FileKind::Dir, 0, root)));
            tbl.insert(Arc::new(Inode::new(
                CONTROL_INO,
                FileKind::File,
                0,
                control,
            )));
        }
        fs
    }

    /// Keep `worker` (a background thread's handle) running as long as
    /// this filesystem; it is dropped after the store.
    pub fn keep_running(&mut self, worker: Box<dyn Send + Sync>) {
        self.workers.push(worker);
    }

    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// The store (and through it the pool), for the control file and tests.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Compact the pool (the `compact` command, and after a recompression
    /// pass), then give the heap pages that compaction's frees left empty
    /// back to the kernel; returns the pool pages given back.
    fn compact(&self) -> u64 {
        let pages = self.store.compact();
        crate::sys::heap::give_back_free();
        pages
    }

    fn fcx(&self) -> data::Ctx<'_> {
        data::Ctx::new(&self.store, &self.space)
    }

    fn get(&self, ino: Ino) -> FsResult<Arc<Inode>> {
        self.table
            .read()
            .get(ino)
            .cloned()
            .ok_or(Errno(libc::ENOENT))
    }

    /// Whether `caller` may write the control file (root or the mounter).
    pub fn control_writable_by(&self, uid: u32) -> bool {
        uid == 0 || uid == self.owner_uid
    }

    /// The control file's name in the root.
    pub fn control_name(&self) -> &[u8] {
        &self.control_name
    }
}

impl Inode {
    /// An inode the kernel holds `lookups` references to.
    fn new(ino: Ino, kind: FileKind, lookups: u64, inner: Inner) -> Inode {
        Inode {
            ino,
            lookups: Lookups::new(kind, lookups),
            inner: RwLock::new(inner),
        }
    }

    fn kind(&self) -> FileKind {
        self.lookups.kind()
    }
}

#[cfg(test)]
mod copy_tests;
#[cfg(test)]
mod tests;
