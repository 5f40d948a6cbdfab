//! Extended attributes: the user, trusted and security namespaces, and the
//! POSIX ACLs stored as `system.posix_acl_*` (their format and rules are
//! `acl.rs`), within tmpfs's limits. The control file's virtual xattrs
//! (`zsfs.usage`, `zsfs.last_error`) are answered by `control.rs`.

use super::Killer;
use super::{acl, err, now, Errno, FileKind, Fs, FsResult, Inner, Ino, CONTROL_INO};

/// tmpfs limits (XATTR_NAME_MAX, XATTR_SIZE_MAX).
const XATTR_NAME_MAX: usize = 255;
const XATTR_SIZE_MAX: usize = 65536;
/// Most xattr bytes (names + values) on one inode, as tmpfs's per-inode
/// `ispace` budget; beyond it setxattr fails with ENOSPC.
const XATTR_INODE_MAX: usize = 1 << 20;

/// name -> value pairs; a handful per inode at most, so a Vec. Boxed, and
/// absent while empty, so that an inode without xattrs (nearly all of
/// them) pays 8 bytes rather than a Vec's 24. Reads see a slice; `push`
/// and `swap_remove` are the Vec's.
#[derive(Default)]
#[allow(clippy::box_collection)] // the box is the point: 8 bytes when empty
pub(super) struct Xattrs(Option<Box<Vec<Xattr>>>);

/// One extended attribute: name, value.
pub(super) type Xattr = (Box<[u8]>, Box<[u8]>);

impl Xattrs {
    pub(super) fn new() -> Xattrs {
        Xattrs(None)
    }
    pub(super) fn push(&mut self, kv: Xattr) {
        self.0.get_or_insert_with(Default::default).push(kv);
    }
    pub(super) fn swap_remove(&mut self, i: usize) -> Xattr {
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
            return set_acl(n.kind(), &mut i, kind, value, who);
        }
        let pos = i.xattrs.iter().position(|(k, _)| &**k == name);
        if flags & libc::XATTR_CREATE != 0 && pos.is_some() {
            return err(libc::EEXIST);
        }
        if flags & libc::XATTR_REPLACE != 0 && pos.is_none() {
            return err(libc::ENODATA);
        }
        put_xattr(&mut i, name, Some(value))?;
        i.ctime = now().into();
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
            i.ctime = now().into();
            return Ok(());
        }
        let pos = i
            .xattrs
            .iter()
            .position(|(k, _)| &**k == name)
            .ok_or(Errno(libc::ENODATA))?;
        i.xattrs.swap_remove(pos);
        i.ctime = now().into();
        Ok(())
    }
}

/// Store (`Some`) or drop (`None`) one xattr, within the inode's budget.
pub(super) fn put_xattr(i: &mut Inner, name: &[u8], value: Option<&[u8]>) -> FsResult<()> {
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
pub(super) fn stored_acl(i: &Inner, kind: acl::Kind) -> Option<acl::Acl> {
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
    i.ctime = now().into();
    Ok(())
}
