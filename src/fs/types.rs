//! The core's vocabulary: inode numbers, errors, and the values its
//! operations take and return (`Attr`, `SetAttr`, `DirEntry`, `StatFs`,
//! rename and fallocate flags). Plain data with no locks; the FUSE adapter
//! converts these to and from fuser's types.

use std::time::SystemTime;

/// Inode number.
pub type Ino = u64;
/// The root directory.
pub const ROOT_INO: Ino = 1;
/// The control file (`.zsfs`) in the root.
pub const CONTROL_INO: Ino = 2;

/// Longest name in a directory (NAME_MAX).
pub const NAME_MAX: usize = 255;
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

pub(super) fn err<T>(e: i32) -> FsResult<T> {
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
    /// Every kind, at the index of its discriminant: `ALL[k as usize] == k`,
    /// so a kind packed into a few bits (a directory record's byte, the top
    /// bits of an inode's lookup word) is `k as u8` and comes back as
    /// `ALL[code]`.
    pub(crate) const ALL: [FileKind; 7] = [
        FileKind::File,
        FileKind::Dir,
        FileKind::Symlink,
        FileKind::Fifo,
        FileKind::Socket,
        FileKind::CharDev,
        FileKind::BlockDev,
    ];

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
    pub(super) fn dir(ino: Ino, name: &[u8], next: u64) -> DirEntry {
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

const _: () = {
    let mut i = 0;
    while i < FileKind::ALL.len() {
        assert!(FileKind::ALL[i] as usize == i, "a kind's code is its index");
        i += 1;
    }
};
