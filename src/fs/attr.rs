//! Attributes: what `stat` shows of an inode and what `setattr` (chmod,
//! chown, truncate, utimes) changes.

use super::suid::clear_suidgid;
use super::xattr::{put_xattr, stored_acl};
use super::CONTROL_INO;
use super::{acl, err, now, Attr, Content, FileKind, Fs, FsResult, Inner, Ino, SetAttr, TimeSet};

impl Fs {
    pub(super) fn attr_of(&self, ino: Ino, kind: FileKind, i: &Inner) -> Attr {
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

    pub fn getattr(&self, ino: Ino) -> FsResult<Attr> {
        let n = self.get(ino)?;
        let i = n.inner.read();
        Ok(self.attr_of(ino, n.kind(), &i))
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
            return Ok(self.attr_of(ino, n.kind(), &i));
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
            .filter(|_| s.mode.is_none() && n.kind() != FileKind::Dir)
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
            i.ctime = t.into();
        }
        Ok(self.attr_of(ino, n.kind(), &i))
    }
}
