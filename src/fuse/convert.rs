//! Between fuser's types and the core's: errno, attributes, file kinds,
//! callers, times, and the replies every handler ends with. The attribute
//! and entry TTLs are here because every attribute reply carries one.

use crate::fs::{self, Attr, Caller, FileKind, TimeSet, CONTROL_INO};
use fuser::{
    Errno, FileAttr, FileType, Generation, INodeNo, ReplyAttr, ReplyEmpty, ReplyEntry, ReplyXattr,
    Request, TimeOrNow,
};
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
pub(crate) const TTL: Duration = Duration::from_secs(24 * 3600);
/// The control file's size and times change with every counter the daemon
/// moves, without the kernel knowing: never let it cache them.
const CONTROL_TTL: Duration = Duration::ZERO;

/// The TTL for an entry or attributes of `ino`.
pub(crate) fn ttl(ino: u64) -> &'static Duration {
    if ino == CONTROL_INO {
        &CONTROL_TTL
    } else {
        &TTL
    }
}

pub(crate) fn errno(e: fs::Errno) -> Errno {
    Errno::from_i32(e.0)
}

pub(crate) fn kind(k: FileKind) -> FileType {
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

pub(crate) fn fattr(a: &Attr) -> FileAttr {
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
pub(crate) fn negative_attr() -> FileAttr {
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

pub(crate) fn caller(req: &Request) -> Caller {
    Caller {
        uid: req.uid(),
        gid: req.gid(),
    }
}

/// The caller of a change that drops setuid/setgid. CAP_FSETID is
/// approximated as uid 0: a FUSE request carries no capabilities.
pub(crate) fn killer(req: &Request) -> fs::Killer {
    fs::Killer {
        pid: req.pid(),
        gid: req.gid(),
        privileged: req.uid() == 0,
    }
}

/// The killer of a change by `req` unless it is root, who has CAP_FSETID
/// (approximately) and keeps setuid/setgid.
pub(crate) fn unprivileged_killer(req: &Request) -> Option<fs::Killer> {
    (req.uid() != 0).then(|| killer(req))
}

pub(crate) fn time_set(t: TimeOrNow) -> TimeSet {
    match t {
        TimeOrNow::Now => TimeSet::Now,
        TimeOrNow::SpecificTime(x) => TimeSet::At(x),
    }
}

/// Answer with an entry (one kernel reference) or the error.
pub(crate) fn entry(r: fs::FsResult<Attr>, reply: ReplyEntry) {
    match r {
        Ok(a) => reply.entry(ttl(a.ino), &fattr(&a), Generation(0)),
        Err(e) => reply.error(errno(e)),
    }
}

/// Answer with attributes or the error.
pub(crate) fn attr(r: fs::FsResult<Attr>, reply: ReplyAttr) {
    match r {
        Ok(a) => reply.attr(ttl(a.ino), &fattr(&a)),
        Err(e) => reply.error(errno(e)),
    }
}

/// Answer with success or the error.
pub(crate) fn empty(r: fs::FsResult<()>, reply: ReplyEmpty) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(e)),
    }
}

/// Answer an xattr value or name list: its size when `size` is 0 (the
/// caller asks how large a buffer to pass), ERANGE when it does not fit.
pub(crate) fn xattr(r: fs::FsResult<Vec<u8>>, size: u32, reply: ReplyXattr) {
    match r {
        Ok(v) if size == 0 => reply.size(v.len() as u32),
        Ok(v) if v.len() > size as usize => reply.error(Errno::ERANGE),
        Ok(v) => reply.data(&v),
        Err(e) => reply.error(errno(e)),
    }
}

/// Who drops setuid/setgid after SETATTR `s`, if anyone. Under
/// KILLPRIV_V2 (`killpriv`) the kernel no longer turns a chown, or a
/// truncate by a caller without CAP_FSETID (approximated as "not root"),
/// into a mode change that drops setuid/setgid: we do it. A SETATTR naming
/// nothing but (at most) ctime is a chown(f, -1, -1): the kernel dropped
/// the ATTR_KILL_SUID/SGID it carried and the mode change they meant
/// (fuse_setattr), so Linux's rule that any chown of a non-directory
/// clears them is ours too.
pub(crate) fn setattr_killer(req: &Request, killpriv: bool, s: &fs::SetAttr) -> Option<fs::Killer> {
    let chown = s.uid.is_some() || s.gid.is_some();
    let bare_chown =
        !chown && s.mode.is_none() && s.size.is_none() && s.atime.is_none() && s.mtime.is_none();
    let truncate = s.size.is_some() && req.uid() != 0;
    (killpriv && s.mode.is_none() && (chown || bare_chown || truncate)).then(|| killer(req))
}
