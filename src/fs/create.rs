//! Creating inodes: regular files, device nodes, FIFOs and sockets
//! (mknod, create), directories and symlinks. What the kernel leaves to us
//! here: the owner and group (a setgid parent hands down its group), the
//! umask or the parent's default ACL, name and target limits, `nr_inodes=`.

use super::dir::Dir;
use super::xattr::{stored_acl, Xattrs};
use super::{acl, check_name, err, now, Attr, Caller, Content, Errno, FileData, FileKind, Fs};
use super::{FsResult, Inner, Ino, Inode};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Longest symlink target (PATH_MAX - 1).
const SYMLINK_MAX: usize = 4095;

impl Fs {
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
        if !d.has_room(name) {
            return err(libc::ENOSPC);
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
            ctime: t.into(),
            crtime: t.into(),
            xattrs,
            content,
            gone: false,
        };
        let attr = self.attr_of(ino, kind, &inner);
        let node = Inode::new(ino, kind, 1, inner);
        d.insert(name, ino, kind);
        if kind == FileKind::Dir {
            pi.nlink += 1;
            self.directories.fetch_add(1, Ordering::Relaxed);
        } else if kind == FileKind::File {
            self.files.fetch_add(1, Ordering::Relaxed);
        }
        pi.mtime = t;
        pi.ctime = t.into();
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
}
