//! The namespace: link, unlink, rmdir and rename (with RENAME_NOREPLACE and
//! RENAME_EXCHANGE): every operation that locks more than one inode, so
//! each runs under `ns` (see the lock order in `mod.rs`).

use super::dir::Dir;
use super::{check_name, err, now, Attr, Content, Errno, FileKind, Fs, FsResult, Inner, Ino};
use super::{RenameFlags, CONTROL_INO, LINK_MAX, NAME_MAX, ROOT_INO};

impl Fs {
    /// A new name `newname` in `newparent` for `ino`.
    pub fn link(&self, ino: Ino, newparent: Ino, newname: &[u8]) -> FsResult<Attr> {
        check_name(newname)?;
        if ino == CONTROL_INO {
            return err(libc::EPERM);
        }
        let _ns = self.ns.lock();
        let p = self.get(newparent)?;
        let c = self.get(ino)?;
        if c.kind() == FileKind::Dir {
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
        if !d.has_room(newname) {
            return err(libc::ENOSPC);
        }
        let mut ci = c.inner.write();
        if ci.nlink == 0 {
            return err(libc::ENOENT);
        }
        if ci.nlink >= LINK_MAX {
            return err(libc::EMLINK);
        }
        d.insert(newname, ino, c.kind());
        let t = now();
        ci.nlink += 1;
        ci.ctime = t.into();
        pi.mtime = t;
        pi.ctime = t.into();
        c.lookups.add();
        Ok(self.attr_of(ino, c.kind(), &ci))
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
            ci.ctime = t.into();
            pi.mtime = t;
            pi.ctime = t.into();
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
            self.rename_locked((oldp, oldname), (newp, newname), flags)?
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

    /// The body of `rename`, under `ns`: the name `from` becomes `to`.
    /// Returns the content of an inode the rename replaced and dropped, to
    /// free after every lock is released.
    fn rename_locked(
        &self,
        from: (Ino, &[u8]),
        to: (Ino, &[u8]),
        flags: RenameFlags,
    ) -> FsResult<Option<Content>> {
        let ((oldp, oldname), (newp, newname)) = (from, to);
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
                Content::Dir(d) => Ok(d.get(name).map(|e| (e.ino, e.kind))),
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
        if !flags.exchange {
            if let Content::Dir(d) = &ng.as_deref().unwrap_or(&og).content {
                if !d.has_room(newname) {
                    return err(libc::ENOSPC);
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
            di.ctime = t.into();
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
                    di.ctime = t.into();
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
        si.ctime = t.into();
        og.mtime = t;
        og.ctime = t.into();
        if let Some(g) = ng.as_deref_mut() {
            g.mtime = t;
            g.ctime = t.into();
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
}

fn dir_mut(i: &mut Inner) -> &mut Dir {
    match &mut i.content {
        Content::Dir(d) => d,
        _ => unreachable!("caller checked the kind"),
    }
}
