//! The `Filesystem` handlers: each decodes its request, calls the core (or
//! a helper beside it) and replies. The requests refused once with ENOSYS,
//! so that the kernel stops sending them, say why where they are answered.

use super::convert::{self, caller, errno, fattr, killer, kind, negative_attr, ttl, TTL};
use super::{ZsfsFuse, READDIRPLUS_BATCH};
use crate::fs::{self, FileKind, CONTROL_INO};
use fuser::{
    AccessFlags, CopyFileRangeFlags, Errno, FileHandle, Filesystem, Generation, INodeNo,
    KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::SystemTime;

impl Filesystem for ZsfsFuse {
    fn destroy(&mut self) {
        if let Some(f) = self.on_destroy.lock().take() {
            self.workers.clear();
            drop(self.fs.take());
            f();
        }
    }

    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        self.negotiate(config);
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
            r => convert::entry(r, reply),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.page_cache.forget(ino.0);
        self.fs().forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        // A GETATTR with a file handle comes from the write(2) path (see
        // `enospc.rs`); report a pending ENOSPC there, once.
        if fh.is_some() && self.enospc.take(ino.0) {
            return reply.error(Errno::ENOSPC);
        }
        convert::attr(self.fs().getattr(ino.0), reply);
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
        let (atime, mtime) = (atime.map(convert::time_set), mtime.map(convert::time_set));
        let mut s = fs::SetAttr {
            kill_suidgid: None,
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
            ctime,
        };
        s.kill_suidgid = convert::setattr_killer(req, self.killpriv, &s);
        convert::attr(self.fs().setattr(ino.0, &s), reply);
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
        let name = name.as_bytes();
        let r = self
            .fs()
            .mknod(parent.0, name, mode, umask, rdev, caller(req));
        convert::entry(r, reply);
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
        let name = name.as_bytes();
        convert::entry(
            self.fs().mkdir(parent.0, name, mode, umask, caller(req)),
            reply,
        );
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        convert::empty(self.fs().unlink(parent.0, name.as_bytes()), reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        convert::empty(self.fs().rmdir(parent.0, name.as_bytes()), reply);
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let (name, target) = (link_name.as_bytes(), target.as_os_str().as_bytes());
        convert::entry(
            self.fs().symlink(parent.0, name, target, caller(req)),
            reply,
        );
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
            return reply.error(Errno::EINVAL);
        }
        let f = fs::RenameFlags {
            noreplace: flags.contains(RenameFlags::RENAME_NOREPLACE),
            exchange: flags.contains(RenameFlags::RENAME_EXCHANGE),
        };
        let (old, new) = (name.as_bytes(), newname.as_bytes());
        convert::empty(self.fs().rename(parent.0, old, newparent.0, new, f), reply);
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        convert::entry(
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
                reply.opened(self.open_handle(ino), self.page_cache.open_flags(ino))
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
        self.page_cache.note_read(ino.0, lock_owner.is_some());
        if ino.0 == CONTROL_INO {
            return self.control.read(self.fs(), fh, offset, size, reply);
        }
        self.read_file(ino.0, offset, size, reply);
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
        if ino.0 == CONTROL_INO {
            return self.control_write(req, data, reply);
        }
        self.write_file(req, ino.0, offset, data, write_flags, reply);
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
            self.control.release(fh);
            return reply.ok();
        }
        self.enospc.clear(ino.0);
        convert::empty(self.fs().flush(ino.0), reply);
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        convert::empty(self.fs().flush(ino.0), reply);
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
            let name = OsStr::from_bytes(&e.name);
            reply.add(INodeNo(e.ino), e.next, kind(e.kind), name)
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
            Err(e) => return reply.error(errno(e)),
        };
        let mut full = false;
        for (e, a) in entries {
            let dot = e.name == b"." || e.name == b"..";
            if !full {
                let name = OsStr::from_bytes(&e.name);
                let (ino, attr) = (INodeNo(e.ino), fattr(&a));
                full = reply.add(ino, e.next, name, ttl(e.ino), &attr, Generation(0));
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
        if !self.xattr {
            return reply.error(Errno::ENOSYS);
        }
        // The caller, for an access ACL's setgid rule: the kernel would
        // pass it as FUSE_SETXATTR_ACL_KILL_SGID only with
        // FUSE_SETXATTR_EXT, whose request fuser 0.18 cannot parse.
        let who = Some(killer(req));
        let r = self
            .fs()
            .setxattr(ino.0, name.as_bytes(), value, flags, who);
        convert::empty(r, reply);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        // `xattr=off`: ENOSYS once and the kernel answers every later
        // getxattr itself with EOPNOTSUPP (fc->no_getxattr), ACLs included
        // (it then finds none). What that saves is the kernel's own
        // `security.capability` lookups: on a new file's first write (until
        // S_NOSEC is set) and on every chown (notify_change's
        // ATTR_KILL_PRIV), 2 of the 11.4 requests tar -xf sends per file. The same
        // for the other three (no_setxattr, no_listxattr, no_removexattr).
        if !self.xattr {
            return reply.error(Errno::ENOSYS);
        }
        convert::xattr(self.fs().getxattr(ino.0, name.as_bytes()), size, reply);
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        if !self.xattr {
            return reply.error(Errno::ENOSYS);
        }
        convert::xattr(self.fs().listxattr(ino.0), size, reply);
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        if !self.xattr {
            return reply.error(Errno::ENOSYS);
        }
        convert::empty(self.fs().removexattr(ino.0, name.as_bytes()), reply);
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // Only called without default_permissions; existence is all we check.
        convert::empty(self.fs().getattr(ino.0).map(|_| ()), reply);
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
                let (fh, flags) = (self.open_handle(ino), self.page_cache.open_flags(ino));
                reply.created(&TTL, &fattr(&a), Generation(0), fh, flags)
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
        self.allocate(req, ino.0, offset, length, mode, reply);
    }

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
        let (from, to) = ((ino_in.0, offset_in), (ino_out.0, offset_out));
        self.copy(req, from, to, len, reply);
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
        self.seek(ino.0, offset, whence, reply);
    }
}
