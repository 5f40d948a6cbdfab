//! Filesystem core: inodes, directories, block maps, xattrs, limits.
//!
//! No FUSE types in here; the adapter translates. Everything is testable
//! without a mount (see `tests/fs_*.rs` and the unit tests below).
//!
//! # What the kernel does and what we do
//! zsfs is mounted with `default_permissions`, so the kernel checks access
//! (mode bits, sticky directories, who may chmod/chown/utime) before a
//! request reaches us, and turns setuid/setgid clearing on write and chown
//! into a `setattr` of the mode. The core does what the kernel leaves to the
//! filesystem: ownership of new inodes (setgid directories), the umask or a
//! parent's default ACL on create, name and size limits, link counts, rename
//! rules, timestamps, xattr namespaces, space and inode limits.
//!
//! # POSIX ACLs
//! The kernel checks them (FUSE_POSIX_ACL) and reads and writes them as the
//! xattrs `system.posix_acl_access`/`_default`, stored here with the others.
//! What it leaves to us (see `acl.rs`, which names the kernel code): the mode
//! an access ACL implies, not storing an ACL the mode says all of, chmod's
//! rewrite of the ACL, and a parent's default ACL on create.
//!
//! # Inode lifetime
//! An inode lives while it has a link (`nlink > 0`) or the kernel holds a
//! reference to it (`lookups > 0`: every entry returned by lookup, create,
//! mkdir, mknod, symlink, link and readdirplus counts one; `forget` gives
//! them back). Open files hold a kernel reference, so an unlinked open file
//! keeps its data until the last close. When both reach zero the inode leaves
//! the table and its blocks go back to the store. Inode numbers are never
//! reused (a u64 counter), so generations are always 0.
//!
//! # Locking (order: `ns` -> inode locks -> `table`)
//! * `table` (RwLock<HashMap>) maps ino -> inode. Leaf lock: held only for a
//!   map operation, never while taking another lock.
//! * `Inode::inner` (RwLock) guards one inode's metadata and content: file
//!   data is read under the read lock and changed under the write lock. A
//!   write compresses its whole blocks before taking the lock and frees the
//!   blocks it replaced after dropping it (`file.rs`), so writers of one file
//!   hold its lock only to merge partial blocks and swap map entries.
//! * `ns` (Mutex) is taken by every operation that locks more than one inode
//!   (link, unlink, rmdir, rename). Outside `ns` a thread holds at most one
//!   inode lock and never waits for another lock while holding it, so under
//!   `ns` inodes may be locked in any order without deadlock.
//!   copy_file_range touches two inodes but never holds both locks: it
//!   takes references to the source's blocks under the source's lock,
//!   drops it, then installs them under the destination's (`copy_range`).
//!   The references, not a lock, keep the objects alive in between.

mod acl;
mod control;
mod dir;
pub(crate) mod file;
mod remount;
mod stamp;
mod table;

use crate::config::{AtimeMode, Config};
use crate::store::Store;
use dir::{Dir, Listed};
use file::{FileData, Space};
use parking_lot::{Mutex, RwLock};
use stamp::Stamp;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use table::InodeTable;

pub use crate::store::StoreStats;

/// Inode number.
pub type Ino = u64;
/// The root directory.
pub const ROOT_INO: Ino = 1;
/// The control file (`.zsfs`) in the root.
pub const CONTROL_INO: Ino = 2;
const FIRST_FREE_INO: Ino = 3;

/// Longest name in a directory (NAME_MAX).
pub const NAME_MAX: usize = 255;
/// Longest symlink target (PATH_MAX - 1).
const SYMLINK_MAX: usize = 4095;
/// tmpfs limits (XATTR_NAME_MAX, XATTR_SIZE_MAX).
const XATTR_NAME_MAX: usize = 255;
const XATTR_SIZE_MAX: usize = 65536;
/// Most xattr bytes (names + values) on one inode, as tmpfs's per-inode
/// `ispace` budget; beyond it setxattr fails with ENOSPC.
const XATTR_INODE_MAX: usize = 1 << 20;
/// Memory for per-file write buffers (uncompressed partial blocks), in
/// all files together; see `file.rs`.
const WRITE_BUFFER_BYTES: u64 = 32 << 20;
/// Most bytes one copy_file_range call copies: its reply counts bytes in
/// 32 bits, and a caller (cp, the kernel's fallback) loops on a short count.
/// A multiple of every block size.
const MAX_COPY_BYTES: u64 = 1 << 30;
/// A copy step through the write path reads this much into memory at once.
const COPY_BYTES_CHUNK: u64 = 1 << 20;
/// A sharing step installs this much under one lock (a few thousand map
/// entries at most), so readers and writers of the destination wait little.
const COPY_SHARE_CHUNK: u64 = 16 << 20;
/// Link count limit (EMLINK beyond it).
pub const LINK_MAX: u32 = u32::MAX - 1;

/// An errno value (positive), the core's error type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl std::fmt::Display for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", std::io::Error::from_raw_os_error(self.0))
    }
}

pub type FsResult<T> = Result<T, Errno>;

fn err<T>(e: i32) -> FsResult<T> {
    Err(Errno(e))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDev,
    BlockDev,
}

impl FileKind {
    /// The kind named by the `S_IFMT` bits of `mode`.
    pub fn from_mode(mode: u32) -> Option<FileKind> {
        Some(match mode & libc::S_IFMT {
            libc::S_IFREG | 0 => FileKind::File,
            libc::S_IFDIR => FileKind::Dir,
            libc::S_IFLNK => FileKind::Symlink,
            libc::S_IFIFO => FileKind::Fifo,
            libc::S_IFSOCK => FileKind::Socket,
            libc::S_IFCHR => FileKind::CharDev,
            libc::S_IFBLK => FileKind::BlockDev,
            _ => return None,
        })
    }
}

/// What `stat` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub ino: Ino,
    pub size: u64,
    /// 512-byte units actually allocated (holes excluded), as tmpfs.
    pub blocks: u64,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    pub crtime: SystemTime,
    pub kind: FileKind,
    /// Permission bits including setuid, setgid and sticky (07777).
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    /// Preferred I/O size.
    pub blksize: u32,
}

/// Who is asking (the request's fsuid/fsgid).
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, Copy)]
pub enum TimeSet {
    Now,
    At(SystemTime),
}

/// The fields a `setattr` changes; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct SetAttr {
    /// Drop setuid/setgid after the change, for this caller: the kernel
    /// leaves that to us under FUSE_HANDLE_KILLPRIV_V2 (a chown, or a
    /// truncate by a caller without CAP_FSETID).
    pub kill_suidgid: Option<Killer>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeSet>,
    pub mtime: Option<TimeSet>,
    pub ctime: Option<SystemTime>,
}

/// The caller of a change that drops setuid/setgid, as Linux decides it
/// (`should_remove_suid`): setuid always; setgid when group-exec is set,
/// or when the caller is outside the file's group and not privileged
/// (without group-exec, setgid means mandatory locking, which a group
/// member may keep).
#[derive(Debug, Clone, Copy)]
pub struct Killer {
    pub pid: u32,
    pub gid: u32,
    /// Has CAP_FSETID (approximated by the adapter as uid 0).
    pub privileged: bool,
}

impl Killer {
    fn keeps_sgid_without_gexec(&self, file_gid: u32) -> bool {
        self.privileged || crate::sys::groups::in_group(self.pid, self.gid, file_gid)
    }
}

/// One directory entry from `readdir`.
#[derive(Debug, Clone)]
pub struct DirEntry {
    pub ino: Ino,
    pub kind: FileKind,
    pub name: Vec<u8>,
    /// Offset to pass to `readdir` to continue after this entry.
    pub next: u64,
}

impl DirEntry {
    fn dir(ino: Ino, name: &[u8], next: u64) -> DirEntry {
        let name = name.to_vec();
        let kind = FileKind::Dir;
        DirEntry {
            ino,
            kind,
            name,
            next,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatFs {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub namelen: u32,
}

/// renameat2 flags.
#[derive(Debug, Clone, Copy, Default)]
pub struct RenameFlags {
    pub noreplace: bool,
    pub exchange: bool,
}

/// fallocate modes the core implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallocate {
    /// Mode 0 or FALLOC_FL_KEEP_SIZE.
    Allocate { keep_size: bool },
    /// FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE.
    PunchHole,
    /// FALLOC_FL_ZERO_RANGE, optionally with KEEP_SIZE.
    ZeroRange { keep_size: bool },
}

impl Fallocate {
    /// Decode fallocate(2) mode bits; EOPNOTSUPP for the rest (collapse,
    /// insert, unshare), as tmpfs.
    pub fn from_mode(mode: i32) -> FsResult<Fallocate> {
        const KEEP: i32 = libc::FALLOC_FL_KEEP_SIZE;
        match mode {
            0 => Ok(Fallocate::Allocate { keep_size: false }),
            KEEP => Ok(Fallocate::Allocate { keep_size: true }),
            m if m == libc::FALLOC_FL_PUNCH_HOLE | KEEP => Ok(Fallocate::PunchHole),
            libc::FALLOC_FL_PUNCH_HOLE => err(libc::EINVAL),
            libc::FALLOC_FL_ZERO_RANGE => Ok(Fallocate::ZeroRange { keep_size: false }),
            m if m == libc::FALLOC_FL_ZERO_RANGE | KEEP => {
                Ok(Fallocate::ZeroRange { keep_size: true })
            }
            _ => err(libc::EOPNOTSUPP),
        }
    }
}

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

/// name -> value pairs; a handful per inode at most, so a Vec. Boxed, and
/// absent while empty, so that an inode without xattrs (nearly all of
/// them) pays 8 bytes rather than a Vec's 24. Reads see a slice; `push`
/// and `swap_remove` are the Vec's.
#[derive(Default)]
#[allow(clippy::box_collection)] // the box is the point: 8 bytes when empty
struct Xattrs(Option<Box<Vec<Xattr>>>);

/// One extended attribute: name, value.
type Xattr = (Box<[u8]>, Box<[u8]>);

impl Xattrs {
    fn new() -> Xattrs {
        Xattrs(None)
    }
    fn push(&mut self, kv: Xattr) {
        self.0.get_or_insert_with(Default::default).push(kv);
    }
    fn swap_remove(&mut self, i: usize) -> Xattr {
        let v = self.0.as_mut().expect("index in range");
        let kv = v.swap_remove(i);
        if v.is_empty() {
            self.0 = None;
        }
        kv
    }
}

impl std::ops::Deref for Xattrs {
    type Target = [Xattr];
    fn deref(&self) -> &Self::Target {
        self.0.as_deref().map_or(&[], |v| v)
    }
}

impl std::ops::DerefMut for Xattrs {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.0.as_deref_mut().map_or(&mut [], |v| v)
    }
}

impl<'a> IntoIterator for &'a Xattrs {
    type Item = &'a Xattr;
    type IntoIter = std::slice::Iter<'a, Xattr>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

struct Inner {
    /// 07777 bits.
    perm: u16,
    uid: u32,
    gid: u32,
    /// Directory entries naming this inode (directories: 2 + subdirectories;
    /// 0 once removed).
    nlink: u32,
    /// Timestamps, 12 bytes each (`stamp.rs`).
    atime: Stamp,
    mtime: Stamp,
    ctime: Stamp,
    crtime: Stamp,
    /// Extended attributes, name -> value. Small per inode, so a Vec.
    xattrs: Xattrs,
    content: Content,
    /// Set once the inode has left the table; nothing may use it afterwards.
    gone: bool,
}

pub(crate) struct Inode {
    ino: Ino,
    /// Never changes after creation.
    kind: FileKind,
    /// Kernel references (see "Inode lifetime").
    lookups: AtomicU64,
    inner: RwLock<Inner>,
}

/// The filesystem.
pub struct Fs {
    store: Store,
    /// The store's reclaim thread (stopped and joined on drop); see `mount`.
    _reclaim: Option<crate::reclaim::ReclaimThread>,
    /// Block budget from `size=`.
    space: Space,
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

/// A file's data changed: new mtime and ctime, and setuid/setgid dropped
/// for `kill` as a write does. Returns whether the mode changed.
fn data_changed(i: &mut Inner, kill: Option<Killer>) -> bool {
    let t = now();
    i.mtime = t;
    i.ctime = t;
    kill.is_some_and(|k| clear_suidgid(i, &k))
}

/// Drop setuid/setgid as [`Killer`] says; returns whether anything was
/// cleared.
fn clear_suidgid(i: &mut Inner, who: &Killer) -> bool {
    const SUID: u16 = libc::S_ISUID as u16;
    const SGID: u16 = libc::S_ISGID as u16;
    const GEXEC: u16 = libc::S_IXGRP as u16;
    let before = i.perm;
    let sgid_goes =
        i.perm & SGID != 0 && (i.perm & GEXEC != 0 || !who.keeps_sgid_without_gexec(i.gid));
    if sgid_goes {
        i.perm &= !SGID;
    }
    i.perm &= !SUID;
    i.perm != before
}

impl Fs {
    /// A fresh, empty filesystem configured like the mount; panics if the
    /// pool's backing file cannot be created (tests; the daemon uses
    /// [`Fs::try_new`]).
    pub fn new(config: &Config) -> Fs {
        Fs::try_new(config).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A fresh, empty filesystem configured like the mount, with its pool,
    /// backing file and shrinker.
    pub fn try_new(config: &Config) -> Result<Fs, crate::pool::PoolError> {
        let block_size = config.block_size;
        let crate::mount::Storage { store, reclaim } = crate::mount::storage(config)?;
        let max_blocks = config.size / u64::from(block_size);
        // SAFETY: geteuid cannot fail.
        let owner_uid = unsafe { libc::geteuid() };
        let fs = Fs {
            store,
            _reclaim: reclaim,
            space: Space::new(max_blocks, block_size, WRITE_BUFFER_BYTES),
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
            ctime: t,
            crtime: t,
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
            ctime: t,
            crtime: t,
            xattrs: Xattrs::new(),
            content: Content::Control,
            gone: false,
        };
        {
            let mut tbl = fs.table.write();
            tbl.insert(Arc::new(Inode::new(ROOT_INO, FileKind::Dir, root)));
            tbl.insert(Arc::new(Inode::new(CONTROL_INO, FileKind::File, control)));
        }
        Ok(fs)
    }

    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// The store (and through it the pool), for the control file and tests.
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn fcx(&self) -> file::Ctx<'_> {
        file::Ctx {
            store: &self.store,
            space: &self.space,
        }
    }

    fn get(&self, ino: Ino) -> FsResult<Arc<Inode>> {
        self.table
            .read()
            .get(ino)
            .cloned()
            .ok_or(Errno(libc::ENOENT))
    }

    fn attr_of(&self, ino: Ino, kind: FileKind, i: &Inner) -> Attr {
        let bs = u64::from(self.block_size);
        let (size, blocks, rdev) = match &i.content {
            Content::File(f) => (f.size, f.allocated_blocks() * (bs / 512), 0),
            Content::Dir(d) => (d.len() as u64 * 20, 0, 0),
            Content::Symlink(t) => (t.len() as u64, 0, 0),
            Content::Special { rdev } => (0, 0, *rdev),
            Content::Control => (0, 0, 0),
        };
        Attr {
            ino,
            size,
            blocks,
            atime: i.atime.into(),
            mtime: i.mtime.into(),
            ctime: i.ctime.into(),
            crtime: i.crtime.into(),
            kind,
            perm: i.perm,
            nlink: i.nlink,
            uid: i.uid,
            gid: i.gid,
            rdev,
            // `cp` and friends size their buffers from this: big enough to
            // amortise a FUSE round trip, at least one block.
            blksize: self.block_size.max(128 * 1024),
        }
    }

    /// Look `name` up in `parent`; the returned entry holds a kernel reference.
    pub fn lookup(&self, parent: Ino, name: &[u8]) -> FsResult<Attr> {
        if name.len() > NAME_MAX {
            return err(libc::ENAMETOOLONG);
        }
        let p = self.get(parent)?;
        let child = {
            let pi = p.inner.read();
            let ino = match (&pi.content, name) {
                // The kernel looks up "." of any inode to decode a file
                // handle (open_by_handle_at, NFS export) whose inode it no
                // longer caches: answer with the inode itself.
                (_, b".") => parent,
                (Content::Dir(d), b"..") => d.parent,
                (Content::Dir(d), _) => d.get(name).ok_or(Errno(libc::ENOENT))?.ino,
                _ => return err(libc::ENOTDIR),
            };
            let c = self.get(ino)?;
            // Under the parent's lock: the entry cannot be unlinked (and the
            // inode dropped) between finding it and counting the reference.
            c.lookups.fetch_add(1, Ordering::Relaxed);
            c
        };
        let ci = child.inner.read();
        Ok(self.attr_of(child.ino, child.kind, &ci))
    }

    /// Give back `n` kernel references to `ino`.
    pub fn forget(&self, ino: Ino, n: u64) {
        let Ok(node) = self.get(ino) else { return };
        let prev = node
            .lookups
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| {
                Some(l.saturating_sub(n))
            })
            .expect("closure never fails");
        if prev <= n {
            let mut i = node.inner.write();
            let dead = self.maybe_drop(&node, &mut i);
            drop(i);
            self.release_content(dead);
        }
    }

    /// If `node` has neither links nor references, take it out of the table
    /// and return its content for freeing (after the caller drops its locks).
    fn maybe_drop(&self, node: &Inode, i: &mut Inner) -> Option<Content> {
        if i.gone
            || i.nlink > 0
            || node.lookups.load(Ordering::Relaxed) > 0
            || node.ino == ROOT_INO
            || node.ino == CONTROL_INO
        {
            return None;
        }
        i.gone = true;
        self.table.write().remove(node.ino);
        self.inodes_used.fetch_sub(1, Ordering::Relaxed);
        match node.kind {
            FileKind::File => self.files.fetch_sub(1, Ordering::Relaxed),
            FileKind::Dir => self.directories.fetch_sub(1, Ordering::Relaxed),
            _ => 0,
        };
        i.xattrs = Xattrs::new();
        Some(std::mem::replace(&mut i.content, Content::Control))
    }

    fn release_content(&self, c: Option<Content>) {
        if let Some(Content::File(mut f)) = c {
            f.clear(&self.fcx());
        }
    }

    pub fn getattr(&self, ino: Ino) -> FsResult<Attr> {
        let n = self.get(ino)?;
        let i = n.inner.read();
        Ok(self.attr_of(ino, n.kind, &i))
    }

    /// chmod, chown, truncate, utimes. Permission checks are the kernel's
    /// (`default_permissions`); the control file refuses mode and owner
    /// changes and ignores size and times (shell `>` truncates it).
    pub fn setattr(&self, ino: Ino, s: &SetAttr) -> FsResult<Attr> {
        let n = self.get(ino)?;
        let mut i = n.inner.write();
        if ino == CONTROL_INO {
            if s.mode.is_some() || s.uid.is_some() || s.gid.is_some() {
                return err(libc::EPERM);
            }
            return Ok(self.attr_of(ino, n.kind, &i));
        }
        let t = now();
        let mut changed = false;
        if let Some(size) = s.size {
            match &mut i.content {
                Content::File(f) => f.truncate(&self.fcx(), size)?,
                Content::Dir(_) => return err(libc::EISDIR),
                _ => return err(libc::EINVAL),
            }
            // truncate(2) changes mtime and ctime even when the size stays.
            i.mtime = t;
            changed = true;
        }
        if let Some(mode) = s.mode {
            i.perm = (mode & 0o7777) as u16;
            // posix_acl_chmod: the kernel leaves it to us (acl.rs).
            if let Some(mut a) = stored_acl(&i, acl::Kind::Access) {
                a.chmod_masq(mode);
                put_xattr(&mut i, acl::ACCESS, Some(&a.encode()))?;
            }
            changed = true;
        }
        if let Some(uid) = s.uid {
            i.uid = uid;
            changed = true;
        }
        if let Some(gid) = s.gid {
            i.gid = gid;
            changed = true;
        }
        if let Some(k) = s
            .kill_suidgid
            .filter(|_| s.mode.is_none() && n.kind != FileKind::Dir)
        {
            changed |= clear_suidgid(&mut i, &k);
        }
        if let Some(a) = s.atime {
            i.atime = match a {
                TimeSet::Now => t,
                TimeSet::At(x) => x.into(),
            };
            changed = true;
        }
        if let Some(m) = s.mtime {
            i.mtime = match m {
                TimeSet::Now => t,
                TimeSet::At(x) => x.into(),
            };
            changed = true;
        }
        if let Some(c) = s.ctime {
            i.ctime = c.into();
        } else if changed {
            i.ctime = t;
        }
        Ok(self.attr_of(ino, n.kind, &i))
    }

    fn reserve_inode(&self) -> bool {
        self.inodes_used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                (u < self.max_inodes()).then_some(u + 1)
            })
            .is_ok()
    }

    /// Create a node of `kind` named `name` in `parent`, with `mode` less
    /// `umask`, or, if the parent has a default ACL, with what that ACL
    /// gives instead (posix_acl_create; symlinks take neither).
    #[allow(clippy::too_many_arguments)]
    fn create_node(
        &self,
        parent: Ino,
        name: &[u8],
        kind: FileKind,
        mode: u32,
        umask: u32,
        caller: Caller,
        content: Content,
    ) -> FsResult<Attr> {
        check_name(name)?;
        let p = self.get(parent)?;
        let mut pi = p.inner.write();
        if pi.nlink == 0 {
            return err(libc::ENOENT);
        }
        let mut xattrs = Xattrs::new();
        let mode = match stored_acl(&pi, acl::Kind::Default) {
            Some(d) if kind != FileKind::Symlink => {
                let h = acl::inherit(&d, mode, kind == FileKind::Dir);
                if let Some(a) = h.access {
                    xattrs.push((acl::ACCESS.into(), a.encode().into()));
                }
                if let Some(d) = h.default {
                    xattrs.push((acl::DEFAULT.into(), d.encode().into()));
                }
                h.mode
            }
            _ => mode & !umask,
        };
        let (pgid, psgid) = (pi.gid, pi.perm & libc::S_ISGID as u16 != 0);
        let Content::Dir(d) = &mut pi.content else {
            return err(libc::ENOTDIR);
        };
        if d.contains(name) {
            return err(libc::EEXIST);
        }
        if !self.reserve_inode() {
            log::warn!(
                "nr_inodes={} reached: cannot create more files; raise nr_inodes= or delete files",
                self.max_inodes()
            );
            return err(libc::ENOSPC);
        }
        let mut perm = (mode & 0o7777) as u16;
        // A setgid directory hands its group down, and its setgid bit to
        // subdirectories (inode_init_owner).
        let gid = if psgid {
            if kind == FileKind::Dir {
                perm |= libc::S_ISGID as u16;
            }
            pgid
        } else {
            caller.gid
        };
        let ino = self.next_ino.fetch_add(1, Ordering::Relaxed);
        let t = now();
        let inner = Inner {
            perm,
            uid: caller.uid,
            gid,
            nlink: if kind == FileKind::Dir { 2 } else { 1 },
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            xattrs,
            content,
            gone: false,
        };
        let attr = self.attr_of(ino, kind, &inner);
        let node = Inode::new(ino, kind, inner);
        node.lookups.store(1, Ordering::Relaxed);
        d.insert(name, ino, kind);
        if kind == FileKind::Dir {
            pi.nlink += 1;
            self.directories.fetch_add(1, Ordering::Relaxed);
        } else if kind == FileKind::File {
            self.files.fetch_add(1, Ordering::Relaxed);
        }
        pi.mtime = t;
        pi.ctime = t;
        self.table.write().insert(Arc::new(node));
        Ok(attr)
    }

    /// mknod and create: regular files, FIFOs, sockets, device nodes.
    pub fn mknod(
        &self,
        parent: Ino,
        name: &[u8],
        mode: u32,
        umask: u32,
        rdev: u32,
        caller: Caller,
    ) -> FsResult<Attr> {
        let kind = FileKind::from_mode(mode).ok_or(Errno(libc::EINVAL))?;
        let content = match kind {
            FileKind::File => Content::File(FileData::default()),
            FileKind::Dir | FileKind::Symlink => return err(libc::EINVAL),
            FileKind::CharDev | FileKind::BlockDev => Content::Special { rdev },
            FileKind::Fifo | FileKind::Socket => Content::Special { rdev: 0 },
        };
        self.create_node(parent, name, kind, mode, umask, caller, content)
    }

    pub fn mkdir(
        &self,
        parent: Ino,
        name: &[u8],
        mode: u32,
        umask: u32,
        caller: Caller,
    ) -> FsResult<Attr> {
        self.create_node(
            parent,
            name,
            FileKind::Dir,
            mode & 0o7777,
            umask,
            caller,
            Content::Dir(Box::new(Dir::new(parent))),
        )
    }

    pub fn symlink(
        &self,
        parent: Ino,
        name: &[u8],
        target: &[u8],
        caller: Caller,
    ) -> FsResult<Attr> {
        if target.len() > SYMLINK_MAX {
            return err(libc::ENAMETOOLONG);
        }
        if target.is_empty() {
            return err(libc::ENOENT);
        }
        self.create_node(
            parent,
            name,
            FileKind::Symlink,
            0o777,
            0,
            caller,
            Content::Symlink(target.into()),
        )
    }

    pub fn readlink(&self, ino: Ino) -> FsResult<Vec<u8>> {
        let n = self.get(ino)?;
        let i = n.inner.read();
        match &i.content {
            Content::Symlink(t) => Ok(t.to_vec()),
            _ => err(libc::EINVAL),
        }
    }

    /// A new name `newname` in `newparent` for `ino`.
    pub fn link(&self, ino: Ino, newparent: Ino, newname: &[u8]) -> FsResult<Attr> {
        check_name(newname)?;
        if ino == CONTROL_INO {
            return err(libc::EPERM);
        }
        let _ns = self.ns.lock();
        let p = self.get(newparent)?;
        let c = self.get(ino)?;
        if c.kind == FileKind::Dir {
            return err(libc::EPERM);
        }
        let mut pi = p.inner.write();
        if pi.nlink == 0 {
            return err(libc::ENOENT);
        }
        let Content::Dir(d) = &mut pi.content else {
            return err(libc::ENOTDIR);
        };
        if d.contains(newname) {
            return err(libc::EEXIST);
        }
        let mut ci = c.inner.write();
        if ci.nlink == 0 {
            return err(libc::ENOENT);
        }
        if ci.nlink >= LINK_MAX {
            return err(libc::EMLINK);
        }
        d.insert(newname, ino, c.kind);
        let t = now();
        ci.nlink += 1;
        ci.ctime = t;
        pi.mtime = t;
        pi.ctime = t;
        c.lookups.fetch_add(1, Ordering::Relaxed);
        Ok(self.attr_of(ino, c.kind, &ci))
    }

    /// unlink (dir = false) and rmdir (dir = true).
    fn remove(&self, parent: Ino, name: &[u8], dir: bool) -> FsResult<()> {
        if name.len() > NAME_MAX {
            return err(libc::ENAMETOOLONG);
        }
        if dir && name == b"." {
            return err(libc::EINVAL);
        }
        if dir && name == b".." {
            return err(libc::ENOTEMPTY);
        }
        let dead = {
            let _ns = self.ns.lock();
            let p = self.get(parent)?;
            let mut pi = p.inner.write();
            let Content::Dir(d) = &mut pi.content else {
                return err(libc::ENOTDIR);
            };
            let e = d.get(name).ok_or(Errno(libc::ENOENT))?;
            if e.ino == CONTROL_INO {
                return err(libc::EPERM);
            }
            let c = self.get(e.ino)?;
            let mut ci = c.inner.write();
            match (&ci.content, dir) {
                (Content::Dir(cd), true) => {
                    if !cd.is_empty() {
                        return err(libc::ENOTEMPTY);
                    }
                }
                (_, true) => return err(libc::ENOTDIR),
                (Content::Dir(_), false) => return err(libc::EISDIR),
                (_, false) => {}
            }
            d.remove(name);
            let t = now();
            if dir {
                ci.nlink = 0;
                pi.nlink -= 1;
            } else {
                ci.nlink -= 1;
            }
            ci.ctime = t;
            pi.mtime = t;
            pi.ctime = t;
            drop(pi);
            self.maybe_drop(&c, &mut ci)
        };
        self.release_content(dead);
        Ok(())
    }

    pub fn unlink(&self, parent: Ino, name: &[u8]) -> FsResult<()> {
        self.remove(parent, name, false)
    }

    pub fn rmdir(&self, parent: Ino, name: &[u8]) -> FsResult<()> {
        self.remove(parent, name, true)
    }

    /// rename / renameat2 with RENAME_NOREPLACE or RENAME_EXCHANGE.
    pub fn rename(
        &self,
        oldp: Ino,
        oldname: &[u8],
        newp: Ino,
        newname: &[u8],
        flags: RenameFlags,
    ) -> FsResult<()> {
        if flags.noreplace && flags.exchange {
            return err(libc::EINVAL);
        }
        if oldname.len() > NAME_MAX {
            return err(libc::ENAMETOOLONG);
        }
        check_name(newname)?;
        let dead = {
            let _ns = self.ns.lock();
            self.rename_locked(oldp, oldname, newp, newname, flags)?
        };
        self.release_content(dead);
        Ok(())
    }

    /// Parent of directory `ino`, reading locked inodes through `known`.
    fn parent_of(&self, ino: Ino, known: &[(Ino, &Inner)]) -> FsResult<Ino> {
        let parent = |i: &Inner| match &i.content {
            Content::Dir(d) => Ok(d.parent),
            _ => err(libc::ENOTDIR),
        };
        if let Some((_, i)) = known.iter().find(|(k, _)| *k == ino) {
            return parent(i);
        }
        let n = self.get(ino)?;
        let i = n.inner.read();
        parent(&i)
    }

    /// Whether `anc` is `ino` or one of its ancestors.
    fn is_ancestor(&self, anc: Ino, mut ino: Ino, known: &[(Ino, &Inner)]) -> FsResult<bool> {
        loop {
            if ino == anc {
                return Ok(true);
            }
            if ino == ROOT_INO {
                return Ok(false);
            }
            ino = self.parent_of(ino, known)?;
        }
    }

    fn rename_locked(
        &self,
        oldp: Ino,
        oldname: &[u8],
        newp: Ino,
        newname: &[u8],
        flags: RenameFlags,
    ) -> FsResult<Option<Content>> {
        let op = self.get(oldp)?;
        let np = if newp == oldp {
            None
        } else {
            Some(self.get(newp)?)
        };
        let mut og = op.inner.write();
        let mut ng = np.as_ref().map(|n| n.inner.write());
        let lookup = |g: &Inner, name: &[u8]| -> FsResult<Option<(Ino, FileKind)>> {
            match &g.content {
                Content::Dir(d) => Ok(d.get(name).map(|e| (e.ino, e.kind()))),
                _ => err(libc::ENOTDIR),
            }
        };
        let (src, skind) = lookup(&og, oldname)?.ok_or(Errno(libc::ENOENT))?;
        let dst = lookup(ng.as_deref().unwrap_or(&og), newname)?;
        if ng.as_deref().unwrap_or(&og).nlink == 0 {
            return err(libc::ENOENT);
        }
        if src == CONTROL_INO || dst.is_some_and(|(d, _)| d == CONTROL_INO) {
            return err(libc::EPERM);
        }
        if flags.exchange && dst.is_none() {
            return err(libc::ENOENT);
        }
        if flags.noreplace && dst.is_some() {
            return err(libc::EEXIST);
        }
        if dst.is_some_and(|(d, _)| d == src) {
            // Two names of one inode: POSIX says do nothing.
            return Ok(None);
        }
        if !flags.exchange {
            if let Some((_, dkind)) = dst {
                match (skind == FileKind::Dir, dkind == FileKind::Dir) {
                    (true, false) => return err(libc::ENOTDIR),
                    (false, true) => return err(libc::EISDIR),
                    _ => {}
                }
            }
        }
        {
            let mut known: Vec<(Ino, &Inner)> = vec![(oldp, &og)];
            if let Some(g) = ng.as_deref() {
                known.push((newp, g));
            }
            // A directory cannot move below itself.
            if skind == FileKind::Dir && newp != oldp && self.is_ancestor(src, newp, &known)? {
                return err(libc::EINVAL);
            }
            if flags.exchange {
                let (d, dkind) = dst.expect("checked above");
                if dkind == FileKind::Dir && newp != oldp && self.is_ancestor(d, oldp, &known)? {
                    return err(libc::EINVAL);
                }
            }
        }
        if !flags.exchange && dst.is_some_and(|(d, _)| d == oldp) {
            // Replacing our own parent: it holds `src`, so it is not empty.
            return err(libc::ENOTEMPTY);
        }
        let sn = self.get(src)?;
        let mut si = sn.inner.write();
        let dn = match dst {
            Some((d, _)) => Some(self.get(d)?),
            None => None,
        };
        let mut di = dn.as_ref().map(|n| n.inner.write());
        if !flags.exchange {
            if let Some(Content::Dir(dd)) = di.as_deref().map(|i| &i.content) {
                if !dd.is_empty() {
                    return err(libc::ENOTEMPTY);
                }
            }
        }
        let t = now();
        let cross = newp != oldp;
        if flags.exchange {
            let (d, dkind) = dst.expect("checked above");
            let di = di.as_deref_mut().expect("locked above");
            dir_mut(&mut og).repoint(oldname, d, dkind);
            match ng.as_deref_mut() {
                Some(g) => dir_mut(g).repoint(newname, src, skind),
                None => dir_mut(&mut og).repoint(newname, src, skind),
            }
            if cross {
                if skind == FileKind::Dir {
                    og.nlink -= 1;
                    ng.as_deref_mut().expect("cross").nlink += 1;
                    dir_mut(&mut si).parent = newp;
                }
                if dkind == FileKind::Dir {
                    ng.as_deref_mut().expect("cross").nlink -= 1;
                    og.nlink += 1;
                    dir_mut(di).parent = oldp;
                }
            }
            di.ctime = t;
        } else {
            dir_mut(&mut og).remove(oldname);
            let mut replaced_dir = false;
            {
                let npi: &mut Inner = match ng.as_deref_mut() {
                    Some(g) => g,
                    None => &mut og,
                };
                if let Some(di) = di.as_deref_mut() {
                    dir_mut(npi).remove(newname);
                    if matches!(di.content, Content::Dir(_)) {
                        di.nlink = 0;
                        replaced_dir = true;
                    } else {
                        di.nlink -= 1;
                    }
                    di.ctime = t;
                }
                dir_mut(npi).insert(newname, src, skind);
                if replaced_dir {
                    // The replaced directory's ".." no longer links its parent.
                    npi.nlink -= 1;
                }
            }
            if skind == FileKind::Dir && cross {
                ng.as_deref_mut().expect("cross").nlink += 1;
                og.nlink -= 1;
                dir_mut(&mut si).parent = newp;
            }
        }
        si.ctime = t;
        og.mtime = t;
        og.ctime = t;
        if let Some(g) = ng.as_deref_mut() {
            g.mtime = t;
            g.ctime = t;
        }
        drop(og);
        drop(ng);
        drop(si);
        let dead = match (dn.as_ref(), di.as_deref_mut()) {
            (Some(dn), Some(di)) if !flags.exchange => self.maybe_drop(dn, di),
            _ => None,
        };
        drop(di);
        Ok(dead)
    }

    /// Entries of directory `ino` after `offset` (0 = from the start),
    /// "." and ".." included, until `f` returns true (buffer full; the entry
    /// it was given is not consumed).
    pub fn readdir(
        &self,
        ino: Ino,
        offset: u64,
        mut f: impl FnMut(DirEntry) -> bool,
    ) -> FsResult<()> {
        let n = self.get(ino)?;
        let i = n.inner.read();
        let Content::Dir(d) = &i.content else {
            return err(libc::ENOTDIR);
        };
        for (next, listed) in d.list_from(offset) {
            let entry = match listed {
                // The control file is reached by name only, as ZFS's .zfs:
                // emptiness checks, rsync, tar and find never see it.
                Listed::Entry(e) if e.ino == CONTROL_INO => continue,
                Listed::Entry(e) => DirEntry {
                    ino: e.ino,
                    kind: e.kind(),
                    name: e.name().to_vec(),
                    next,
                },
                Listed::Dot => DirEntry::dir(ino, b".", next),
                Listed::DotDot => DirEntry::dir(d.parent, b"..", next),
            };
            if f(entry) {
                break;
            }
        }
        Ok(())
    }

    /// Up to `max` entries after `offset` with their attributes, for
    /// readdirplus. Every entry except "." and ".." holds a kernel reference;
    /// the caller `forget`s the ones it could not send.
    pub fn readdir_plus(
        &self,
        ino: Ino,
        offset: u64,
        max: usize,
    ) -> FsResult<Vec<(DirEntry, Attr)>> {
        let mut pinned: Vec<(DirEntry, Arc<Inode>)> = Vec::new();
        {
            let n = self.get(ino)?;
            let mut out = Vec::new();
            self.readdir(ino, offset, |e| {
                out.push(e);
                out.len() >= max
            })?;
            // Pin under the directory's lock so nothing is dropped between
            // listing and counting the reference.
            let i = n.inner.read();
            let Content::Dir(d) = &i.content else {
                return err(libc::ENOTDIR);
            };
            for e in out {
                let dot = e.name == b"." || e.name == b"..";
                if !dot && d.get(&e.name).is_none_or(|x| x.ino != e.ino) {
                    continue; // removed meanwhile
                }
                let Ok(node) = self.get(e.ino) else { continue };
                if !dot {
                    node.lookups.fetch_add(1, Ordering::Relaxed);
                }
                pinned.push((e, node));
            }
        }
        Ok(pinned
            .into_iter()
            .map(|(e, node)| {
                let i = node.inner.read();
                let a = self.attr_of(node.ino, node.kind, &i);
                (e, a)
            })
            .collect())
    }

    /// Read file data. Updates atime as relatime does.
    pub fn read(&self, ino: Ino, off: u64, len: usize) -> FsResult<Vec<u8>> {
        let mut out = Vec::new();
        self.read_into(ino, off, len, &mut out)?;
        Ok(out)
    }

    /// `read` into a caller's buffer (resized to the bytes read), so a
    /// request loop can reuse one buffer instead of allocating and zeroing
    /// up to a megabyte per READ.
    pub fn read_into(&self, ino: Ino, off: u64, len: usize, out: &mut Vec<u8>) -> FsResult<()> {
        if ino == CONTROL_INO {
            let text = self.control_read();
            let start = (off as usize).min(text.len());
            let end = start.saturating_add(len).min(text.len());
            out.clear();
            out.extend_from_slice(&text[start..end]);
            return Ok(());
        }
        let n = self.get(ino)?;
        {
            let i = n.inner.read();
            let Content::File(f) = &i.content else {
                return match i.content {
                    Content::Dir(_) => err(libc::EISDIR),
                    _ => err(libc::EINVAL),
                };
            };
            f.read_into(&self.fcx(), off, len, out)?;
        }
        self.touch_atime(&n);
        Ok(())
    }

    /// An open of `ino` for reading. Reads the page cache serves never
    /// reach us, and the kernel never updates a FUSE inode's atime itself
    /// (S_NOATIME), so the mount's atime rule is applied here as well as at
    /// READ. Returns whether atime changed: the kernel's cached attributes
    /// must then be dropped.
    pub fn open_for_read(&self, ino: Ino) -> FsResult<bool> {
        let n = self.get(ino)?;
        if n.kind != FileKind::File || ino == CONTROL_INO {
            return Ok(false);
        }
        Ok(self.touch_atime(&n))
    }

    /// Apply the mount's atime rule to a read of `n`; true if atime moved.
    fn touch_atime(&self, n: &Inode) -> bool {
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

    fn set_atime_mode(&self, m: AtimeMode) {
        self.atime.store(m as u8, Ordering::Relaxed);
    }

    fn max_inodes(&self) -> u64 {
        self.max_inodes.load(Ordering::Relaxed)
    }

    fn set_max_inodes(&self, n: u64) {
        self.max_inodes.store(n, Ordering::Relaxed);
    }

    /// Inodes in use, the control file excluded.
    fn inodes_used(&self) -> u64 {
        self.inodes_used.load(Ordering::Relaxed)
    }

    fn atime_mode(&self) -> AtimeMode {
        match self.atime.load(Ordering::Relaxed) {
            x if x == AtimeMode::Strict as u8 => AtimeMode::Strict,
            x if x == AtimeMode::NoAtime as u8 => AtimeMode::NoAtime,
            _ => AtimeMode::Relatime,
        }
    }

    /// Write file data; short only when the space ran out part-way.
    pub fn write(&self, ino: Ino, off: u64, data: &[u8]) -> FsResult<usize> {
        self.write_killing_privs(ino, off, data, None)
            .map(|(n, _)| n)
    }

    /// `write`, and with `kill_privs` also drop setuid (and setgid when
    /// group-executable) as a write by an unprivileged process does
    /// (should_remove_suid). The kernel does this itself for page-cache
    /// writes; direct I/O writes (cache=none, O_DIRECT) leave it to us.
    pub fn write_killing_privs(
        &self,
        ino: Ino,
        off: u64,
        data: &[u8],
        kill_privs: Option<Killer>,
    ) -> FsResult<(usize, bool)> {
        if ino == CONTROL_INO {
            self.control_write(data)?;
            return Ok((data.len(), false));
        }
        let n = self.get(ino)?;
        if n.kind != FileKind::File {
            return err(libc::EINVAL);
        }
        file::check_end(off, data.len())?;
        let cx = self.fcx();
        // Compress before locking: see "A write is two phases" in file.rs.
        let writing = file::Writing::start();
        let pre = file::Prepared::compress(&cx, &writing, off, data);
        let mut old = Vec::new();
        let mut i = n.inner.write();
        let r = match &mut i.content {
            Content::File(f) => f.write_prepared(&cx, off, data, pre, &mut old),
            _ => {
                pre.discard(&cx);
                Err(Errno(libc::EINVAL))
            }
        };
        let killed = r.is_ok() && data_changed(&mut i, kill_privs);
        drop(i);
        for b in old {
            cx.store.free(b);
        }
        drop(writing);
        if r == Err(Errno(libc::ENOSPC)) {
            self.warn_full();
        }
        r.map(|n| (n, killed))
    }

    /// copy_file_range(2): copy up to `len` bytes of `ino_in` at `off_in`
    /// to `ino_out` at `off_out`; returns the bytes copied (short at the
    /// source's end, and at 1 GiB per call, which the reply's 32-bit count
    /// needs) and, as `write_killing_privs`, whether setuid/setgid went.
    ///
    /// When both offsets sit at the same place within a block, the whole
    /// blocks of the range are shared ([`Store::share`]): the destination's
    /// map names the source's objects, so the copy costs no pool memory and
    /// no compression (a source hole becomes a hole). The unaligned head
    /// and tail, every byte of a misaligned copy, and all of a copy with
    /// `dedup=off` (where sharing would mean compressing under a lock) are
    /// read and written through the normal write path.
    ///
    /// Locks: never two inodes at once. Each step takes the source's read
    /// lock to collect references (or bytes), drops it, then takes the
    /// destination's write lock to install them; the references keep the
    /// objects alive in between. That keeps "at most one inode lock outside
    /// `ns`" true without serialising every copy on `ns`, and also covers
    /// `ino_in == ino_out`. The copy is therefore not atomic against
    /// concurrent writers of the source (neither is the kernel's splice
    /// fallback), but each step is: it installs a snapshot of its source
    /// range taken under one lock.
    ///
    /// Ranges of one file that overlap are copied as memmove does (the
    /// kernel refuses them with EINVAL before we see them, so this is for
    /// direct callers): back to front when the destination lies after the
    /// source. Back to front has no meaningful short count, so there a
    /// failure part-way is returned as the error.
    pub fn copy_range(
        &self,
        ino_in: Ino,
        off_in: u64,
        ino_out: Ino,
        off_out: u64,
        len: u64,
        kill_privs: Option<Killer>,
    ) -> FsResult<(u64, bool)> {
        if ino_in == CONTROL_INO || ino_out == CONTROL_INO {
            // The kernel falls back to a splice copy (read and write).
            return err(libc::EOPNOTSUPP);
        }
        let src = self.get(ino_in)?;
        let dst = self.get(ino_out)?;
        for n in [&src, &dst] {
            match n.kind {
                FileKind::File => {}
                FileKind::Dir => return err(libc::EISDIR),
                _ => return err(libc::EINVAL),
            }
        }
        let size_in = match &src.inner.read().content {
            Content::File(f) => f.size,
            _ => return err(libc::EINVAL),
        };
        let len = len.min(size_in.saturating_sub(off_in)).min(MAX_COPY_BYTES);
        file::check_end(off_out, len as usize)?;
        let bs = u64::from(self.block_size);
        // (offset from the start of the copy, length, share whole blocks)
        let mut steps: Vec<(u64, u64, bool)> = Vec::new();
        let mut plan = |from: u64, to: u64, share: bool, chunk: u64| {
            let mut at = from;
            while at < to {
                let n = chunk.min(to - at);
                steps.push((at, n, share));
                at += n;
            }
        };
        if off_in % bs == off_out % bs && self.store.shares_objects() {
            let head = ((bs - off_out % bs) % bs).min(len);
            let whole = (len - head) / bs * bs;
            plan(0, head, false, COPY_BYTES_CHUNK);
            plan(head, head + whole, true, COPY_SHARE_CHUNK);
            plan(head + whole, len, false, COPY_BYTES_CHUNK);
        } else {
            plan(0, len, false, COPY_BYTES_CHUNK);
        }
        let backward = ino_in == ino_out && off_out > off_in && off_out < off_in + len;
        if backward {
            steps.reverse();
        }
        let mut copied = 0u64;
        let mut killed = false;
        let mut failure = None;
        for (at, n, share) in steps {
            let r = if share {
                self.copy_shared(&src, &dst, off_in + at, off_out + at, n, kill_privs)
            } else {
                self.copy_bytes(&src, ino_out, off_in + at, off_out + at, n, kill_privs)
            };
            match r {
                Ok((m, k)) => {
                    killed |= k;
                    copied += m;
                    if m < n {
                        // The source ended (a concurrent truncate) or space
                        // ran out part-way.
                        if backward {
                            failure = Some(Errno(libc::ENOSPC));
                        }
                        break;
                    }
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        self.touch_atime(&src);
        match failure {
            Some(e) if backward || copied == 0 => {
                if e == Errno(libc::ENOSPC) {
                    self.warn_full();
                }
                Err(e)
            }
            _ => Ok((copied, killed)),
        }
    }

    /// One step of `copy_range` through the write path: `n` bytes read
    /// under the source's lock, then written as a WRITE request is.
    fn copy_bytes(
        &self,
        src: &Inode,
        ino_out: Ino,
        off_in: u64,
        off_out: u64,
        n: u64,
        kill_privs: Option<Killer>,
    ) -> FsResult<(u64, bool)> {
        let mut buf = Vec::new();
        match &src.inner.read().content {
            Content::File(f) => f.read_into(&self.fcx(), off_in, n as usize, &mut buf)?,
            _ => return err(libc::EINVAL),
        }
        if buf.is_empty() {
            return Ok((0, false));
        }
        self.write_killing_privs(ino_out, off_out, &buf, kill_privs)
            .map(|(m, k)| (m as u64, k))
    }

    /// One step of `copy_range` by sharing: `n` bytes of whole blocks at
    /// block-aligned `off_in` and `off_out`.
    fn copy_shared(
        &self,
        src: &Inode,
        dst: &Inode,
        off_in: u64,
        off_out: u64,
        n: u64,
        kill_privs: Option<Killer>,
    ) -> FsResult<(u64, bool)> {
        let cx = self.fcx();
        let bs = cx.store.block_size() as u64;
        let (shared, read_result) = match &src.inner.read().content {
            Content::File(f) => f.share_blocks(&cx, off_in / bs, n / bs),
            _ => return err(libc::EINVAL),
        };
        let mut old = Vec::new();
        let mut i = dst.inner.write();
        let r = match &mut i.content {
            Content::File(f) if !shared.is_empty() => {
                f.install_shared(&cx, off_out / bs, shared, &mut old)
            }
            Content::File(_) => Ok(0),
            _ => {
                old.extend(shared.into_iter().flatten());
                Err(Errno(libc::EINVAL))
            }
        };
        let killed = matches!(r, Ok(k) if k > 0) && data_changed(&mut i, kill_privs);
        drop(i);
        for b in old {
            cx.store.free(b);
        }
        match (r, read_result) {
            (Ok(0), Err(e)) => Err(e),
            (r, _) => r.map(|k| (k * bs, killed)),
        }
    }

    /// Drop setuid (and setgid with group-exec) as a change by a caller
    /// without CAP_FSETID does (fallocate, under KILLPRIV_V2). Returns
    /// whether the mode changed, so the caller can drop the kernel's copy.
    pub fn kill_suidgid(&self, ino: Ino, who: &Killer) -> FsResult<bool> {
        let n = self.get(ino)?;
        if n.kind == FileKind::Dir || ino == CONTROL_INO {
            return Ok(false);
        }
        let mut i = n.inner.write();
        let killed = clear_suidgid(&mut i, who);
        if killed {
            i.ctime = now();
        }
        Ok(killed)
    }

    /// Make a regular file at least `size` bytes long, the growth a hole.
    /// For a page-cache writeback the space limit refused: the kernel
    /// already counts those bytes in the file, so ours must too (they read
    /// as zeros; the writer is told ENOSPC).
    pub fn grow_to(&self, ino: Ino, size: u64) -> FsResult<()> {
        let n = self.get(ino)?;
        let mut i = n.inner.write();
        let Content::File(f) = &mut i.content else {
            return err(libc::EINVAL);
        };
        if size > f.size {
            f.truncate(&self.fcx(), size)?;
        }
        Ok(())
    }

    /// Compress a file's write buffer (fsync, flush, release).
    pub fn flush(&self, ino: Ino) -> FsResult<()> {
        let n = self.get(ino)?;
        let mut i = n.inner.write();
        if let Content::File(f) = &mut i.content {
            f.flush(&self.fcx())?;
        }
        Ok(())
    }

    pub fn fallocate(&self, ino: Ino, off: u64, len: u64, mode: Fallocate) -> FsResult<()> {
        if len == 0 {
            return err(libc::EINVAL);
        }
        if ino == CONTROL_INO {
            return err(libc::EOPNOTSUPP);
        }
        let n = self.get(ino)?;
        let mut i = n.inner.write();
        let Content::File(f) = &mut i.content else {
            return err(libc::ENODEV);
        };
        let cx = self.fcx();
        let old_size = f.size;
        match mode {
            Fallocate::Allocate { keep_size } => f.allocate(&cx, off, len, keep_size, false)?,
            Fallocate::ZeroRange { keep_size } => f.allocate(&cx, off, len, keep_size, true)?,
            Fallocate::PunchHole => f.punch_hole(&cx, off, len)?,
        }
        let changed_size = f.size != old_size;
        if mode != (Fallocate::Allocate { keep_size: true }) || changed_size {
            let t = now();
            if mode == Fallocate::PunchHole
                || matches!(mode, Fallocate::ZeroRange { .. })
                || changed_size
            {
                i.mtime = t;
            }
            i.ctime = t;
        }
        Ok(())
    }

    /// SEEK_DATA (`data = true`) or SEEK_HOLE.
    pub fn seek(&self, ino: Ino, off: u64, data: bool) -> FsResult<u64> {
        let n = self.get(ino)?;
        let i = n.inner.read();
        let Content::File(f) = &i.content else {
            return err(libc::EINVAL);
        };
        if data {
            f.seek_data(&self.fcx(), off)
        } else {
            f.seek_hole(&self.fcx(), off)
        }
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
    fn warn_full(&self) {
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

    /// Whether `caller` may write the control file (root or the mounter).
    pub fn control_writable_by(&self, uid: u32) -> bool {
        uid == 0 || uid == self.owner_uid
    }

    /// The control file's name in the root.
    pub fn control_name(&self) -> &[u8] {
        &self.control_name
    }
}

fn dir_mut(i: &mut Inner) -> &mut Dir {
    match &mut i.content {
        Content::Dir(d) => d,
        _ => unreachable!("caller checked the kind"),
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
        || i.atime <= i.ctime
        || SystemTime::from(now())
            .duration_since(i.atime.into())
            .unwrap_or_default()
            >= Duration::from_secs(24 * 3600)
}

impl Inode {
    fn new(ino: Ino, kind: FileKind, inner: Inner) -> Inode {
        Inode {
            ino,
            kind,
            lookups: AtomicU64::new(0),
            inner: RwLock::new(inner),
        }
    }
}

/// Extended attributes.
impl Fs {
    fn xattr_ns_ok(name: &[u8]) -> FsResult<()> {
        if name.is_empty() {
            return err(libc::EINVAL);
        }
        if name.len() > XATTR_NAME_MAX {
            return err(libc::ERANGE);
        }
        let ok = [b"user.".as_slice(), b"trusted.", b"security."]
            .iter()
            .any(|p| name.len() > p.len() && name.starts_with(p))
            || acl::Kind::of(name).is_some();
        if ok {
            Ok(())
        } else {
            err(libc::EOPNOTSUPP)
        }
    }

    /// setxattr with XATTR_CREATE / XATTR_REPLACE semantics. `who` is the
    /// caller, for an access ACL's setgid rule (None: privileged).
    pub fn setxattr(
        &self,
        ino: Ino,
        name: &[u8],
        value: &[u8],
        flags: i32,
        who: Option<Killer>,
    ) -> FsResult<()> {
        Self::xattr_ns_ok(name)?;
        if value.len() > XATTR_SIZE_MAX {
            return err(libc::E2BIG);
        }
        if ino == CONTROL_INO {
            return err(libc::EPERM);
        }
        let n = self.get(ino)?;
        let mut i = n.inner.write();
        if let Some(kind) = acl::Kind::of(name) {
            return set_acl(n.kind, &mut i, kind, value, who);
        }
        let pos = i.xattrs.iter().position(|(k, _)| &**k == name);
        if flags & libc::XATTR_CREATE != 0 && pos.is_some() {
            return err(libc::EEXIST);
        }
        if flags & libc::XATTR_REPLACE != 0 && pos.is_none() {
            return err(libc::ENODATA);
        }
        put_xattr(&mut i, name, Some(value))?;
        i.ctime = now();
        Ok(())
    }

    pub fn getxattr(&self, ino: Ino, name: &[u8]) -> FsResult<Vec<u8>> {
        if let Some(v) = self.virtual_xattr(ino, name) {
            return v;
        }
        if name.len() > XATTR_NAME_MAX {
            return err(libc::ERANGE);
        }
        let n = self.get(ino)?;
        let i = n.inner.read();
        i.xattrs
            .iter()
            .find(|(k, _)| &**k == name)
            .map(|(_, v)| v.to_vec())
            .ok_or(Errno(libc::ENODATA))
    }

    /// Names, each followed by a NUL, as listxattr(2) returns them.
    pub fn listxattr(&self, ino: Ino) -> FsResult<Vec<u8>> {
        let n = self.get(ino)?;
        let i = n.inner.read();
        let mut out = Vec::new();
        for (k, _) in &i.xattrs {
            out.extend_from_slice(k);
            out.push(0);
        }
        Ok(out)
    }

    pub fn removexattr(&self, ino: Ino, name: &[u8]) -> FsResult<()> {
        Self::xattr_ns_ok(name)?;
        let n = self.get(ino)?;
        let mut i = n.inner.write();
        if acl::Kind::of(name).is_some() {
            // Removing an ACL that is not there succeeds on tmpfs
            // (simple_set_acl with NULL), and the kernel passes our answer
            // through (fuse_set_acl -> fuse_removexattr).
            if ino == CONTROL_INO {
                return err(libc::EPERM);
            }
            put_xattr(&mut i, name, None)?;
            i.ctime = now();
            return Ok(());
        }
        let pos = i
            .xattrs
            .iter()
            .position(|(k, _)| &**k == name)
            .ok_or(Errno(libc::ENODATA))?;
        i.xattrs.swap_remove(pos);
        i.ctime = now();
        Ok(())
    }
}

/// Store (`Some`) or drop (`None`) one xattr, within the inode's budget.
fn put_xattr(i: &mut Inner, name: &[u8], value: Option<&[u8]>) -> FsResult<()> {
    let pos = i.xattrs.iter().position(|(k, _)| &**k == name);
    let Some(value) = value else {
        if let Some(j) = pos {
            i.xattrs.swap_remove(j);
        }
        return Ok(());
    };
    let total: usize = i
        .xattrs
        .iter()
        .enumerate()
        .filter(|(j, _)| Some(*j) != pos)
        .map(|(_, (k, v))| k.len() + v.len())
        .sum();
    if total + name.len() + value.len() > XATTR_INODE_MAX {
        return err(libc::ENOSPC);
    }
    match pos {
        Some(j) => i.xattrs[j].1 = value.into(),
        None => i.xattrs.push((name.into(), value.into())),
    }
    Ok(())
}

/// One of an inode's ACLs, if it has it (stored values are valid: only
/// `set_acl` and `create_node` write them).
fn stored_acl(i: &Inner, kind: acl::Kind) -> Option<acl::Acl> {
    let name = match kind {
        acl::Kind::Access => acl::ACCESS,
        acl::Kind::Default => acl::DEFAULT,
    };
    let (_, v) = i.xattrs.iter().find(|(k, _)| &**k == name)?;
    acl::Acl::decode(v).ok().flatten()
}

/// SETXATTR of an ACL: what the kernel's set_acl path leaves to the
/// filesystem (`acl.rs`). The value is checked again, stored in canonical
/// form, and an access ACL sets the mode (`posix_acl_update_mode`): rwx
/// from the ACL, setgid dropped for a caller outside the group without
/// CAP_FSETID, and nothing stored when the mode bits say it all. XATTR
/// flags do not apply (the kernel always sends 0; tmpfs ignores them).
fn set_acl(
    kind: FileKind,
    i: &mut Inner,
    which: acl::Kind,
    value: &[u8],
    who: Option<Killer>,
) -> FsResult<()> {
    if kind == FileKind::Symlink {
        return err(libc::EOPNOTSUPP);
    }
    let a = acl::Acl::decode(value).map_err(Errno)?;
    match which {
        acl::Kind::Default => {
            // vfs_set_acl: a default ACL only on directories; removing
            // one elsewhere is a no-op.
            if kind != FileKind::Dir && a.is_some() {
                return err(libc::EACCES);
            }
            let v = a.map(|a| a.encode());
            put_xattr(i, acl::DEFAULT, v.as_deref())?;
        }
        acl::Kind::Access => {
            let (mode, v) = match &a {
                Some(a) => {
                    let (mode, equiv) = a.equiv_mode(u32::from(i.perm));
                    (mode, (!equiv).then(|| a.encode()))
                }
                None => (u32::from(i.perm), None),
            };
            put_xattr(i, acl::ACCESS, v.as_deref())?;
            let mut perm = mode as u16;
            if a.is_some() && who.is_some_and(|w| !w.keeps_sgid_without_gexec(i.gid)) {
                perm &= !(libc::S_ISGID as u16);
            }
            i.perm = perm;
        }
    }
    i.ctime = now();
    Ok(())
}

#[cfg(test)]
mod copy_tests;
#[cfg(test)]
mod tests;
