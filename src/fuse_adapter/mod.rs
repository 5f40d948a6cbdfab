//! FUSE adapter: translates fuser 0.18 requests into `fs` calls.
//!
//! Nothing but translation lives here: errno mapping, attribute conversion,
//! reply sizing (xattrs, readdir buffers) and the per-open state of the
//! control file. The filesystem is `Send + Sync` and fuser calls it from
//! `threads=` request loops at once; all locking is the core's.
//!
//! Kernel features negotiated in `init`: the writeback cache (`cache=auto`;
//! the kernel then merges small writes into pages and owns mtime/size while
//! pages are dirty), parallel directory operations, readdirplus, 1 MiB
//! writes, and for `cache=none` direct I/O on every file with
//! FUSE_DIRECT_IO_ALLOW_MMAP so shared mmap still works. POSIX ACLs
//! (FUSE_POSIX_ACL: the kernel enforces and caches them) with
//! FUSE_DONT_MASK, so that creates carry the unmasked mode and the umask
//! apart and the core can apply a default ACL instead (`fs/acl.rs`).
//!
//! # Round trips
//! A synchronous request costs ~25 us on a VM (the idle vCPU halts and the
//! cross-CPU wakeup is slow), so the adapter avoids the ones it can: FLUSH
//! is refused with ENOSYS (see `flush`) and entries and attributes are
//! cached for a long time (see `TTL`), and OPENDIR/RELEASEDIR and FSYNCDIR
//! are refused likewise. What stays per created file is
//! kernel-forced: LOOKUP (negative, from atomic_open), CREATE, GETATTR of
//! the parent (fuse_dir_changed invalidated its mode, which
//! default_permissions needs), GETXATTR security.capability at the first
//! write and at chown (FUSE clears SB_NOSEC, so S_NOSEC never caches "no
//! capability"), and SETATTR per chmod/chown/utimes plus one to flush the
//! kernel-owned mtime/ctime first (write_inode_now in fuse_do_setattr, and
//! in fuse_unlink for the ctime; writeback cache only).
//!
//! # ENOSPC under the writeback cache
//! With the writeback cache, write(2) only fills the kernel's page cache;
//! the data reaches us later, and a write refused then (size= reached)
//! would only surface at fsync/close, while a writer like `yes > f` would
//! keep going forever. So when a page-cache write is refused we remember
//! the inode in `enospc`, grow our size to match the kernel's (a hole), and
//! invalidate the inode's cached attributes. The kernel then asks for
//! attributes (a GETATTR carrying the file handle) at the writer's next
//! write(2), and we answer ENOSPC, which write(2) returns: tmpfs behaviour,
//! one write late. One difference stays: the kernel writes pages back in no
//! fixed order, so the pages refused at the limit are not always the last
//! ones written; they read as zeros. `cache=none` keeps tmpfs's exact
//! "everything before the limit" behaviour.

mod dirty;

use crate::config::{CacheMode, Config};
use crate::fs::{self, Attr, Caller, FileKind, Fs, SetAttr, TimeSet, CONTROL_INO};
use crate::sys::mountinfo;
use fuser::{
    AccessFlags, CopyFileRangeFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, KernelConfig, LockOwner, Notifier, OpenFlags, RenameFlags,
    ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry,
    ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

/// How long the kernel may cache attributes and entries (positive and
/// negative). Only this mount changes the tree, and every change made
/// through it invalidates what it touches in the kernel (fuse_dir_changed,
/// fuse_invalidate_attr after unlink/link/rename/setxattr, the attributes
/// in every SETATTR/CREATE reply). What the daemon changes on its own is
/// invalidated by the kernel too: atime after READ/READDIR/READLINK
/// (fuse_invalidate_atime), st_blocks at close (fuse_flush), size, mtime
/// and st_blocks after a direct write (fuse_write_update_attr), and the
/// ENOSPC path notifies explicitly. So the TTL no longer bounds anything
/// that matters and a long one saves the revalidation LOOKUP/GETATTR round
/// trips a 1 s TTL cost on any walk longer than a second. The one field that
/// can lag is st_blocks of a file still open with page-cache writes (it
/// lagged before too: dirty pages are not ours until written back). The
/// control file is the exception; see [`CONTROL_TTL`].
const TTL: Duration = Duration::from_secs(24 * 3600);
/// The control file's size and times change with every counter the daemon
/// moves, without the kernel knowing: never let it cache them.
const CONTROL_TTL: Duration = Duration::ZERO;

/// The TTL for an entry or attributes of `ino`.
fn ttl(ino: u64) -> &'static Duration {
    if ino == CONTROL_INO {
        &CONTROL_TTL
    } else {
        &TTL
    }
}
/// Largest write request (the kernel's default FUSE limit, 256 pages).
const MAX_WRITE: u32 = 1 << 20;
thread_local! {
    /// The request thread's READ reply buffer; see `read`. It grows to the
    /// largest READ, which max_pages (from MAX_WRITE) bounds at 1 MiB.
    static READ_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Largest READ request (the `max_read=` mount option). A 1 MiB read(2),
/// direct (FUSE_ASYNC_DIO) or by readahead, goes out as MAX_WRITE / MAX_READ
/// requests at once, which the request threads decompress in parallel; one
/// 1 MiB request would be decompressed by one thread while the other cores
/// idle.
const MAX_READ: u32 = 512 << 10;
/// Most async requests the kernel keeps in flight (its default is 16).
const MAX_BACKGROUND: u16 = 64;
/// Entries fetched per readdirplus call; the reply buffer (a page or so)
/// usually fills before this.
const READDIRPLUS_BATCH: usize = 64;

pub struct ZsfsFuse {
    /// The filesystem; `Some` until `destroy`, which drops it (stopping the
    /// shrinker, giving a named backing file's space back) before the
    /// process exits there.
    fs: Option<Fs>,
    cache: CacheMode,
    /// Control-file opens: fh -> the text served to that open, taken at
    /// the read of offset 0 so one `cat` sees one consistent snapshot.
    control: Mutex<HashMap<u64, Vec<u8>>>,
    /// Next control-file handle (0 is what regular files get).
    next_fh: AtomicU64,
    /// Inodes with a page-cache write refused for space that no write(2)
    /// has reported yet (see the module comment).
    enospc: Mutex<std::collections::HashSet<u64>>,
    /// Inodes whose page cache may hold data we refused (see `open_flags`).
    cache_untrusted: Mutex<std::collections::HashSet<u64>>,
    /// `cache=auto`: inodes written with direct I/O (see `open_flags`).
    direct_written: Mutex<std::collections::HashSet<u64>>,
    /// `cache=none`: inodes the kernel holds page-cache pages of (see
    /// `keep_mapping_coherent`).
    mapped: Mutex<std::collections::HashSet<u64>>,
    /// Request threads inside a page-cache store now, kept below `threads`.
    storing: std::sync::atomic::AtomicUsize,
    threads: usize,
    /// Set once the session exists; used to invalidate cached attributes.
    notifier: Arc<OnceLock<Notifier>>,
    /// The mount's backing-device name ("0:39", from mountinfo), whose
    /// readahead `raise_readahead` sets; set once the mount exists, unset
    /// when it was not found.
    bdi: Arc<OnceLock<String>>,
    /// `raise_readahead` has run (it runs once, at the first open).
    readahead_done: std::sync::atomic::AtomicBool,
    /// The bdi's dirty page-cache window (`max_dirty=`), kept at most half
    /// the free space; see `dirty.rs`.
    dirty: dirty::DirtyLimit,
    /// The kernel agreed to FUSE_HANDLE_KILLPRIV_V2: it no longer asks for
    /// `security.capability` before every write (a round trip per write(2)
    /// that cost random writes 85 % of their speed), and clearing
    /// setuid/setgid on write, truncate and chown is ours. Set in `init`.
    killpriv: bool,
    /// Run once from `destroy`, when the kernel connection is gone. The
    /// daemon exits there: fuser's session, dropped after `destroy`,
    /// unmounts by *path* (its "is it still mounted" test reads a torn-down
    /// connection as mounted), so a daemon slow to tear down a large pool
    /// would unmount a new zsfs mounted at the same place meanwhile.
    on_destroy: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

fn errno(e: fs::Errno) -> Errno {
    Errno::from_i32(e.0)
}

fn kind(k: FileKind) -> FileType {
    match k {
        FileKind::File => FileType::RegularFile,
        FileKind::Dir => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
        FileKind::Fifo => FileType::NamedPipe,
        FileKind::Socket => FileType::Socket,
        FileKind::CharDev => FileType::CharDevice,
        FileKind::BlockDev => FileType::BlockDevice,
    }
}

fn fattr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.blocks,
        atime: a.atime,
        mtime: a.mtime,
        ctime: a.ctime,
        crtime: a.crtime,
        kind: kind(a.kind),
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: a.blksize,
        flags: 0,
    }
}

/// Attributes of a negative lookup reply (node id 0: "no such name").
fn negative_attr() -> FileAttr {
    FileAttr {
        ino: INodeNo(0),
        size: 0,
        blocks: 0,
        atime: SystemTime::UNIX_EPOCH,
        mtime: SystemTime::UNIX_EPOCH,
        ctime: SystemTime::UNIX_EPOCH,
        crtime: SystemTime::UNIX_EPOCH,
        kind: FileType::RegularFile,
        perm: 0,
        nlink: 0,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 0,
        flags: 0,
    }
}

fn caller(req: &Request) -> Caller {
    Caller {
        uid: req.uid(),
        gid: req.gid(),
    }
}

/// The caller of a change that drops setuid/setgid. CAP_FSETID is
/// approximated as uid 0: a FUSE request carries no capabilities.
fn killer(req: &Request) -> fs::Killer {
    fs::Killer {
        pid: req.pid(),
        gid: req.gid(),
        privileged: req.uid() == 0,
    }
}

fn time_set(t: TimeOrNow) -> TimeSet {
    match t {
        TimeOrNow::Now => TimeSet::Now,
        TimeOrNow::SpecificTime(x) => TimeSet::At(x),
    }
}

impl ZsfsFuse {
    /// The filesystem a mount's options describe; fails (with a message
    /// that names the backing file) when its pool cannot be set up.
    pub fn new(config: &Config) -> io::Result<ZsfsFuse> {
        let fs = Fs::try_new(config).map_err(|e| {
            io::Error::other(format!("cannot set up the pool: {e} (check backing=)"))
        })?;
        Ok(ZsfsFuse {
            fs: Some(fs),
            cache: config.cache,
            control: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            enospc: Mutex::new(Default::default()),
            cache_untrusted: Mutex::new(Default::default()),
            mapped: Mutex::new(Default::default()),
            direct_written: Mutex::new(Default::default()),
            storing: std::sync::atomic::AtomicUsize::new(0),
            threads: config.threads.max(1),
            notifier: Arc::new(OnceLock::new()),
            bdi: Arc::new(OnceLock::new()),
            readahead_done: std::sync::atomic::AtomicBool::new(false),
            dirty: dirty::DirtyLimit::new(config.max_dirty),
            killpriv: false,
            on_destroy: Mutex::new(None),
        })
    }

    /// Let sequential page-cache reads come as 1 MiB READs instead of
    /// 256 KiB ones. FUSE_MAX_PAGES (fuser asks for it; max_pages follows
    /// MAX_WRITE) lets one READ carry 1 MiB, but readahead never asks for
    /// more than the backing device's window, which a FUSE mount starts at
    /// the 128 KiB default and which INIT's max_readahead can only lower
    /// (process_init_reply takes the minimum). So, as block drivers size
    /// their own queue's readahead, we set our own mount's window through
    /// sysfs: once, after INIT was processed (it would undo an earlier
    /// write), never lowering a larger value someone chose. Best effort:
    /// a mount by a user who cannot write sysfs keeps the default.
    fn raise_readahead(&self) {
        if self.readahead_done.swap(true, Ordering::Relaxed) {
            return;
        }
        let Some(bdi) = self.bdi.get() else { return };
        let path = format!("/sys/class/bdi/{bdi}/read_ahead_kb");
        let want = u64::from(MAX_WRITE / 1024);
        match std::fs::read_to_string(&path) {
            Ok(cur) if cur.trim().parse::<u64>().is_ok_and(|c| c >= want) => {}
            Ok(_) => {
                if let Err(e) = std::fs::write(&path, want.to_string()) {
                    log::debug!("cannot raise readahead ({path}): {e}");
                }
            }
            Err(e) => log::debug!("cannot read {path}: {e}"),
        }
    }

    /// Keep the dirty page-cache window within half the free space: on every
    /// open and write, since those are when free space matters; a no-op
    /// (two atomic loads) unless the window must change.
    fn update_dirty_window(&self) {
        if let Some(bdi) = self.bdi.get() {
            let s = self.fs().statfs();
            self.dirty
                .update(bdi, s.bfree.saturating_mul(u64::from(s.bsize)));
        }
    }

    /// A page-cache write of `len` bytes at `off` to `ino` was refused for
    /// space: arrange for the writer's next write(2) to see ENOSPC.
    fn cached_write_refused(&self, ino: u64, off: u64, len: u64) {
        if let Err(e) = self.fs().grow_to(ino, off.saturating_add(len)) {
            log::warn!("inode {ino}: cannot match the kernel's file size after ENOSPC: {e}");
        }
        self.enospc.lock().insert(ino);
        // The refused pages stay in the kernel's cache, which would show
        // data we do not hold; the next open drops them (they read back as
        // zeros, as before FOPEN_KEEP_CACHE). Not invalidated here: the
        // pages are under writeback, locked by the request we are in.
        self.cache_untrusted.lock().insert(ino);
        self.invalidate_attrs(ino);
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
    /// Only the page cache fills READs without a lock owner (direct READs
    /// always carry one, fuse_send_read), which is how an inode gets into
    /// `mapped`; its pages go with the inode, when the kernel forgets it.
    /// The store locks each page, and a page being faulted in stays locked
    /// until another request thread answers its READ: so at most
    /// `threads - 1` threads store at once and one is always free to answer
    /// (with `threads=1`, no store, and the race stays).
    fn keep_mapping_coherent(&self, ino: u64, offset: u64, data: &[u8]) {
        if data.is_empty() || !self.mapped.lock().contains(&ino) {
            return;
        }
        let Some(n) = self.notifier.get() else { return };
        // Relaxed: a count of threads, guarding nothing but itself.
        if self.storing.fetch_add(1, Ordering::Relaxed) + 1 < self.threads {
            if let Err(e) = n.store(INodeNo(ino), offset, data) {
                log::debug!("store into the page cache of inode {ino}: {e}");
            }
        }
        self.storing.fetch_sub(1, Ordering::Relaxed);
    }

    /// The filesystem core (for tests and the control file).
    pub fn fs(&self) -> &Fs {
        self.fs
            .as_ref()
            .expect("no request is served after destroy")
    }

    fn entry(&self, r: fs::FsResult<Attr>, reply: ReplyEntry) {
        match r {
            Ok(a) => reply.entry(ttl(a.ino), &fattr(&a), Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn empty(r: fs::FsResult<()>, reply: ReplyEmpty) {
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
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
    ///   - a page-cache write we refused for space (see
    ///     `cached_write_refused`): the file's next open drops its cache;
    ///   - a write that did not come from the page cache (O_DIRECT): every
    ///     later open of the file drops its cache, as before KEEP_CACHE.
    ///     The kernel drops the pages a direct write covers, but not those
    ///     a buffered reader fills while an asynchronous direct write is in
    ///     flight; kept across opens they showed stale data for good
    ///     (xfstests generic/451: AIO direct writes under buffered readers
    ///     failed every run with a one-time drop, passes with this).
    fn open_flags(&self, ino: INodeNo) -> FopenFlags {
        if ino.0 == CONTROL_INO {
            FopenFlags::FOPEN_DIRECT_IO
        } else if self.cache == CacheMode::None {
            FopenFlags::FOPEN_DIRECT_IO | FopenFlags::FOPEN_PARALLEL_DIRECT_WRITES
        } else if self.cache_untrusted.lock().remove(&ino.0)
            || self.direct_written.lock().contains(&ino.0)
        {
            FopenFlags::empty()
        } else {
            FopenFlags::FOPEN_KEEP_CACHE
        }
    }

    fn open_handle(&self, ino: INodeNo) -> FileHandle {
        if ino.0 == CONTROL_INO {
            let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
            self.control.lock().insert(fh, Vec::new());
            FileHandle(fh)
        } else {
            FileHandle(0)
        }
    }

    fn xattr_reply(r: fs::FsResult<Vec<u8>>, size: u32, reply: ReplyXattr) {
        match r {
            Ok(v) if size == 0 => reply.size(v.len() as u32),
            Ok(v) if v.len() > size as usize => reply.error(Errno::ERANGE),
            Ok(v) => reply.data(&v),
            Err(e) => reply.error(errno(e)),
        }
    }
}

impl Filesystem for ZsfsFuse {
    fn destroy(&mut self) {
        if let Some(f) = self.on_destroy.lock().take() {
            drop(self.fs.take());
            f();
        }
    }

    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        let mut want = InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_READDIRPLUS_AUTO
            | InitFlags::FUSE_ASYNC_DIO
            | InitFlags::FUSE_HANDLE_KILLPRIV_V2
            // File handles (open_by_handle_at, NFS export): the kernel
            // looks up "." of a node id it no longer caches.
            | InitFlags::FUSE_EXPORT_SUPPORT
            // ACLs checked by the kernel (process_init_reply sets
            // fc->posix_acl); DONT_MASK (fc->dont_mask) stops fuse_mknod,
            // fuse_mkdir and fuse_create_open from applying the umask
            // themselves, which a parent's default ACL must replace. The
            // core applies the umask otherwise.
            | InitFlags::FUSE_POSIX_ACL
            | InitFlags::FUSE_DONT_MASK;
        match self.cache {
            CacheMode::Auto => want |= InitFlags::FUSE_WRITEBACK_CACHE,
            CacheMode::None => want |= InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP,
        }
        let mut granted = want;
        if let Err(missing) = config.add_capabilities(want) {
            log::warn!("kernel lacks FUSE capabilities {missing:?}; continuing without them");
            granted = want & !missing;
            let _ = config.add_capabilities(granted);
        }
        self.killpriv = granted.contains(InitFlags::FUSE_HANDLE_KILLPRIV_V2);
        if let Err(max) = config.set_max_write(MAX_WRITE) {
            let _ = config.set_max_write(max);
        }
        // Async requests (writeback WRITEs, readahead) in flight: the
        // default 16 (congested at 12) of 1 MiB WRITEs leaves the request
        // threads idle between the kernel's writeback batches.
        let _ = config.set_max_background(MAX_BACKGROUND);
        let _ = config.set_congestion_threshold(MAX_BACKGROUND * 3 / 4);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.fs().lookup(parent.0, name.as_bytes()) {
            // A negative entry (node id 0) the kernel may cache for TTL:
            // builds probe many include paths that do not exist. Safe
            // because every change to the tree goes through this kernel,
            // which replaces the negative dentry when the name is created.
            Err(fs::Errno(libc::ENOENT)) => {
                reply.entry(&TTL, &negative_attr(), Generation(0));
            }
            r => self.entry(r, reply),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        // The kernel forgets an inode once it evicted it, pages and all.
        match self.cache {
            CacheMode::None => self.mapped.lock().remove(&ino.0),
            CacheMode::Auto => self.direct_written.lock().remove(&ino.0),
        };
        self.fs().forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        // A GETATTR with a file handle comes from the write(2) path (see
        // the module comment); report a pending ENOSPC there, once.
        if fh.is_some() && self.enospc.lock().remove(&ino.0) {
            reply.error(Errno::ENOSPC);
            return;
        }
        match self.fs().getattr(ino.0) {
            Ok(a) => reply.attr(ttl(a.ino), &fattr(&a)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        // Under KILLPRIV_V2 the kernel no longer turns a chown, or a
        // truncate by a caller without CAP_FSETID (approximated as "not
        // root"), into a mode change that drops setuid/setgid: we do it.
        // A SETATTR naming nothing but (at most) ctime is a chown(f, -1,
        // -1): the kernel dropped the ATTR_KILL_SUID/SGID it carried and
        // the mode change they meant (fuse_setattr), so Linux's rule that
        // any chown of a non-directory clears them is ours too.
        let bare_chown = mode.is_none()
            && uid.is_none()
            && gid.is_none()
            && size.is_none()
            && atime.is_none()
            && mtime.is_none();
        let kill_suidgid = (self.killpriv
            && mode.is_none()
            && (uid.is_some()
                || gid.is_some()
                || bare_chown
                || (size.is_some() && req.uid() != 0)))
            .then(|| killer(req));
        let s = SetAttr {
            kill_suidgid,
            mode,
            uid,
            gid,
            size,
            atime: atime.map(time_set),
            mtime: mtime.map(time_set),
            ctime,
        };
        match self.fs().setattr(ino.0, &s) {
            Ok(a) => reply.attr(ttl(a.ino), &fattr(&a)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.fs().readlink(ino.0) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let r = self
            .fs()
            .mknod(parent.0, name.as_bytes(), mode, umask, rdev, caller(req));
        self.entry(r, reply);
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let r = self
            .fs()
            .mkdir(parent.0, name.as_bytes(), mode, umask, caller(req));
        self.entry(r, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        Self::empty(self.fs().unlink(parent.0, name.as_bytes()), reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        Self::empty(self.fs().rmdir(parent.0, name.as_bytes()), reply);
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let r = self.fs().symlink(
            parent.0,
            link_name.as_bytes(),
            target.as_os_str().as_bytes(),
            caller(req),
        );
        self.entry(r, reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let known = RenameFlags::RENAME_NOREPLACE | RenameFlags::RENAME_EXCHANGE;
        if !known.contains(flags) {
            // RENAME_WHITEOUT is for overlayfs on filesystems that have
            // whiteout devices; tmpfs has them, we do not (yet).
            reply.error(Errno::EINVAL);
            return;
        }
        let f = fs::RenameFlags {
            noreplace: flags.contains(RenameFlags::RENAME_NOREPLACE),
            exchange: flags.contains(RenameFlags::RENAME_EXCHANGE),
        };
        let r = self.fs().rename(
            parent.0,
            name.as_bytes(),
            newparent.0,
            newname.as_bytes(),
            f,
        );
        Self::empty(r, reply);
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        self.entry(
            self.fs().link(ino.0, newparent.0, newname.as_bytes()),
            reply,
        );
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.raise_readahead();
        self.update_dirty_window();
        let for_read = flags.0 & libc::O_ACCMODE != libc::O_WRONLY;
        match self.fs().getattr(ino.0) {
            Ok(a) if a.kind == FileKind::Dir => reply.error(Errno::EISDIR),
            Ok(_) => {
                // The page cache may serve every read of this open: apply
                // the atime rule now (see `Fs::open_for_read`).
                if for_read && self.fs().open_for_read(ino.0) == Ok(true) {
                    self.invalidate_attrs(ino.0);
                }
                reply.opened(self.open_handle(ino), self.open_flags(ino))
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        if self.cache == CacheMode::None && lock_owner.is_none() && ino.0 != CONTROL_INO {
            self.mapped.lock().insert(ino.0); // a page-cache fill: see keep_mapping_coherent
        }
        if ino.0 == CONTROL_INO {
            let mut map = self.control.lock();
            let snap = map.entry(fh.0).or_default();
            if offset == 0 || snap.is_empty() {
                *snap = self.fs().control_read();
            }
            let start = (offset as usize).min(snap.len());
            let end = start.saturating_add(size as usize).min(snap.len());
            reply.data(&snap[start..end]);
            return;
        }
        // One buffer per request thread, reused: a READ is up to 1 MiB and
        // a fresh zeroed Vec per request cost a memset and page faults.
        // The reply is written to /dev/fuse before the borrow ends.
        READ_BUF.with_borrow_mut(|buf| {
            match self.fs().read_into(ino.0, offset, size as usize, buf) {
                Ok(()) => reply.data(buf),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        // The kernel already refused opens for writing by others (mode
        // 0644, default_permissions); this keeps it so if that changes.
        if ino.0 == CONTROL_INO {
            if !self.fs().control_writable_by(req.uid()) {
                reply.error(Errno::EACCES);
                return;
            }
            // A remount may give the root another mode or owner.
            match self.fs().control_write(data) {
                Ok(()) => {
                    self.invalidate_attrs(fs::ROOT_INO);
                    reply.written(data.len() as u32);
                }
                Err(e) => reply.error(errno(e)),
            }
            return;
        }
        let from_cache = write_flags.contains(WriteFlags::FUSE_WRITE_CACHE);
        if !from_cache && self.cache == CacheMode::Auto {
            self.direct_written.lock().insert(ino.0); // see open_flags
        }
        if from_cache {
            self.update_dirty_window();
        }
        // Page-cache writes had setuid/setgid dropped by the kernel (and
        // carry no reliable caller); a direct write from anyone but root
        // (CAP_FSETID, approximately) drops them here.
        // Under KILLPRIV_V2 the kernel says when (FUSE_WRITE_KILL_SUIDGID,
        // on writes that bypass or write through the page cache).
        let kill_privs = (write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID)
            || (!from_cache && req.uid() != 0))
            .then(|| killer(req));
        let r = self
            .fs()
            .write_killing_privs(ino.0, offset, data, kill_privs)
            .map(|(n, killed)| {
                if self.cache == CacheMode::None && !from_cache {
                    self.keep_mapping_coherent(ino.0, offset, &data[..n]);
                }
                if killed {
                    // A write reply carries no attributes: without this the
                    // kernel keeps showing (and executing with) the old mode.
                    self.invalidate_attrs(ino.0);
                }
                n
            });
        match r {
            Ok(n) if n == data.len() || !from_cache => reply.written(n as u32),
            Ok(_) | Err(fs::Errno(libc::ENOSPC)) if from_cache => {
                self.cached_write_refused(ino.0, offset, data.len() as u64);
                reply.error(Errno::ENOSPC);
            }
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // ENOSYS once and the kernel never sends FLUSH again (fc->no_flush):
        // a synchronous round trip saved on every close(2). close() loses
        // nothing by it. fuse_flush still writes the dirty pages back
        // (write_inode_now) and returns writeback errors from the mapping
        // before it looks at no_flush, so a page-cache write refused for
        // space still fails close(), and it still invalidates st_blocks.
        // Our own flush only compressed the one-block write buffer, which
        // reads already serve from; RELEASE (asynchronous, right after the
        // last close) and fsync still compress it. The error it could
        // report is a pool allocation failure with the buffer kept intact,
        // where tmpfs reports nothing at close; fsync(2) still reports it.
        // We hold no locks for lock owners (the kernel keeps POSIX locks
        // locally), so the lock-owner part of FLUSH has no work either.
        reply.error(Errno::ENOSYS);
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        if ino.0 == CONTROL_INO {
            self.control.lock().remove(&fh.0);
            reply.ok();
            return;
        }
        // close() already reported it: fuse_flush writes the pages back
        // and returns the mapping's error whether or not FLUSH is sent.
        self.enospc.lock().remove(&ino.0);
        Self::empty(self.fs().flush(ino.0), reply);
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        Self::empty(self.fs().flush(ino.0), reply);
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // ENOSYS once and the kernel opens directories by itself from then
        // on (fc->no_opendir): no OPENDIR round trip and no RELEASEDIR per
        // directory walked (find, du, rm -rf). We keep no per-open state
        // for directories (handle 0, readdir works from the offset alone),
        // and the kernel only opens directories through fuse_dir_open, so
        // the ENOTDIR this used to check for cannot come. The kernel's
        // no-open default is FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR: readdir
        // results are cached in the directory's pages, which every change
        // through this mount invalidates (fuse_dir_changed bumps i_version,
        // which fuse_readdir_cached checks); only this mount changes the
        // tree.
        reply.error(Errno::ENOSYS);
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let r = self.fs().readdir(ino.0, offset, |e| {
            reply.add(
                INodeNo(e.ino),
                e.next,
                kind(e.kind),
                OsStr::from_bytes(&e.name),
            )
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let entries = match self.fs().readdir_plus(ino.0, offset, READDIRPLUS_BATCH) {
            Ok(v) => v,
            Err(e) => {
                reply.error(errno(e));
                return;
            }
        };
        let mut full = false;
        for (e, a) in entries {
            let dot = e.name == b"." || e.name == b"..";
            if !full {
                full = reply.add(
                    INodeNo(e.ino),
                    e.next,
                    OsStr::from_bytes(&e.name),
                    ttl(e.ino),
                    &fattr(&a),
                    Generation(0),
                );
            }
            if full && !dot {
                // Not sent, so the kernel will not count it: give back the
                // reference readdir_plus took.
                self.fs().forget(e.ino, 1);
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Nothing to make durable; ENOSYS makes the kernel answer fsync on
        // a directory itself from now on (fc->no_fsyncdir, success).
        reply.error(Errno::ENOSYS);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let s = self.fs().statfs();
        reply.statfs(
            s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.bsize,
        );
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        Self::empty(
            // The caller, for an access ACL's setgid rule: the kernel
            // would pass it as FUSE_SETXATTR_ACL_KILL_SGID only with
            // FUSE_SETXATTR_EXT, whose request fuser 0.18 cannot parse.
            self.fs()
                .setxattr(ino.0, name.as_bytes(), value, flags, Some(killer(req))),
            reply,
        );
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        Self::xattr_reply(self.fs().getxattr(ino.0, name.as_bytes()), size, reply);
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        Self::xattr_reply(self.fs().listxattr(ino.0), size, reply);
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        Self::empty(self.fs().removexattr(ino.0, name.as_bytes()), reply);
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // Only called without default_permissions; existence is all we check.
        Self::empty(self.fs().getattr(ino.0).map(|_| ()), reply);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        self.update_dirty_window();
        let mode = (mode & !libc::S_IFMT) | libc::S_IFREG;
        match self
            .fs()
            .mknod(parent.0, name.as_bytes(), mode, umask, 0, caller(req))
        {
            Ok(a) => {
                let ino = INodeNo(a.ino);
                reply.created(
                    &TTL,
                    &fattr(&a),
                    Generation(0),
                    self.open_handle(ino),
                    self.open_flags(ino),
                )
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        // No ioctls; ENOTTY is what isatty() and friends expect.
        reply.error(Errno::ENOTTY);
    }

    fn fallocate(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let r = fs::Fallocate::from_mode(mode)
            .and_then(|m| self.fs().fallocate(ino.0, offset, length, m));
        // fallocate by a caller without CAP_FSETID ("not root") drops
        // setuid/setgid; under KILLPRIV_V2 that is ours (see `killpriv`).
        if r.is_ok()
            && self.killpriv
            && req.uid() != 0
            && self.fs().kill_suidgid(ino.0, &killer(req)) == Ok(true)
        {
            self.invalidate_attrs(ino.0);
        }
        Self::empty(r, reply);
    }

    /// What we rely on from the kernel (fs/fuse/file.c,
    /// __fuse_copy_file_range; vfs_copy_file_range before it): the VFS has
    /// cut `len` at the source's end and refused overlapping ranges of one
    /// file (generic_copy_file_checks); under the writeback cache both
    /// ranges were written back (fuse_writeback_range) before this request,
    /// so we copy current data, and afterwards the kernel drops the
    /// destination's cached pages over the range (truncate_inode_pages_range)
    /// and updates its size and mtime. The reply goes straight to the
    /// caller, so ENOSPC needs none of the writeback-cache deferral of
    /// `write`. file_modified() leaves setuid/setgid to us under
    /// KILLPRIV_V2 (fuse_setattr drops ATTR_KILL_*), so a caller other than
    /// root drops them as a direct write does.
    fn copy_file_range(
        &self,
        req: &Request,
        ino_in: INodeNo,
        _fh_in: FileHandle,
        offset_in: u64,
        ino_out: INodeNo,
        _fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        let kill = (req.uid() != 0).then(|| killer(req));
        match self
            .fs()
            .copy_range(ino_in.0, offset_in, ino_out.0, offset_out, len, kill)
        {
            Ok((n, killed)) => {
                if killed {
                    self.invalidate_attrs(ino_out.0);
                }
                reply.written(n as u32);
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn poll(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _ph: fuser::PollNotifier,
        _events: fuser::PollEvents,
        _flags: fuser::PollFlags,
        reply: fuser::ReplyPoll,
    ) {
        // A regular file is always ready, as on tmpfs. ENOSYS once and the
        // kernel answers every later poll with that itself (fc->no_poll,
        // DEFAULT_POLLMASK), with no round trip.
        reply.error(Errno::ENOSYS);
    }

    fn lseek(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        if self.cache == CacheMode::Auto {
            // Under the writeback cache the kernel holds data we have not
            // seen (dirty pages, which LSEEK does not flush first), so any
            // hole we report could hide data. ENOSYS once, and the kernel
            // answers SEEK_DATA/SEEK_HOLE itself from then on (fc->no_lseek:
            // the whole file is data), which never hides any. cache=none
            // has no such pages and gets exact answers.
            reply.error(Errno::ENOSYS);
            return;
        }
        let data = match whence {
            libc::SEEK_DATA => true,
            libc::SEEK_HOLE => false,
            _ => {
                reply.error(Errno::EINVAL);
                return;
            }
        };
        if offset < 0 {
            reply.error(Errno::ENXIO);
            return;
        }
        match self.fs().seek(ino.0, offset as u64, data) {
            Ok(o) => reply.offset(o as i64),
            Err(e) => reply.error(errno(e)),
        }
    }
}

/// Mount a new zsfs at `mountpoint` with `config`. The caller runs the
/// returned session (`run()` in the foreground, or `spawn()`).
/// `on_destroy` runs once the kernel has torn the connection down, before
/// fuser drops the session (see `ZsfsFuse::on_destroy`).
pub fn new_session(
    config: &Config,
    mountpoint: &Path,
    on_destroy: Option<Box<dyn FnOnce() + Send>>,
) -> io::Result<fuser::Session<ZsfsFuse>> {
    let mut fcfg = fuser::Config::default();
    fcfg.mount_options = vec![
        fuser::MountOption::FSName(config.source.clone()),
        fuser::MountOption::Subtype("zsfs".into()),
        fuser::MountOption::DefaultPermissions,
        fuser::MountOption::CUSTOM(format!("max_read={MAX_READ}")),
    ];
    // ro, nosuid, noexec, ... from -o (options.rs owns the mapping).
    fcfg.mount_options
        .extend(crate::config::options::fuser_mount_options(
            &config.mount_flags,
        ));
    if config.allow_other {
        fcfg.acl = fuser::SessionACL::All;
    }
    fcfg.n_threads = Some(config.threads.max(1));
    fcfg.clone_fd = true;
    let fs = ZsfsFuse::new(config)?;
    *fs.on_destroy.lock() = on_destroy;
    let notifier = fs.notifier.clone();
    let bdi = fs.bdi.clone();
    let session = fuser::Session::new(fs, mountpoint, &fcfg)?;
    let _ = notifier.set(session.notifier());
    if let Some(m) = mountinfo::mount_at(mountpoint) {
        let _ = bdi.set(m.dev);
    }
    Ok(session)
}
