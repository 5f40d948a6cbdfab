//! PLACEHOLDER FUSE adapter: mounts a root directory and nothing else, so the
//! CLI and the mount tests can be built before the filesystem core exists.
//! The real adapter (issue 3) translates fuser requests to `fs` calls and
//! keeps `new_session`'s signature.

use crate::config::Config;
use fuser::{Errno, FileAttr, FileHandle, FileType, Filesystem, INodeNo, ReplyAttr, Request};
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

pub struct ZsfsFuse {
    root: FileAttr,
}

impl Filesystem for ZsfsFuse {
    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        if ino == INodeNo::ROOT {
            reply.attr(&Duration::from_secs(1), &self.root);
        } else {
            reply.error(Errno::ENOENT);
        }
    }
}

/// Mount a new zsfs at `mountpoint` with `config`. The caller runs the
/// returned session (`run()` in the foreground, or `spawn()`).
pub fn new_session(config: &Config, mountpoint: &Path) -> io::Result<fuser::Session<ZsfsFuse>> {
    let now = SystemTime::now();
    let root = FileAttr {
        ino: INodeNo::ROOT,
        size: 0,
        blocks: 0,
        atime: now,
        mtime: now,
        ctime: now,
        crtime: now,
        kind: FileType::Directory,
        perm: (config.mode & 0o7777) as u16,
        nlink: 2,
        uid: config.uid,
        gid: config.gid,
        rdev: 0,
        flags: 0,
        blksize: config.block_size,
    };
    let mut fcfg = fuser::Config::default();
    fcfg.mount_options = vec![
        fuser::MountOption::FSName("zsfs".into()),
        fuser::MountOption::Subtype("zsfs".into()),
        fuser::MountOption::DefaultPermissions,
    ];
    if config.allow_other {
        fcfg.acl = fuser::SessionACL::All;
    }
    fcfg.n_threads = Some(config.threads);
    fuser::Session::new(ZsfsFuse { root }, mountpoint, &fcfg)
}
