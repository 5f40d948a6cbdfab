//! Dropping setuid/setgid. Under FUSE_HANDLE_KILLPRIV_V2 the kernel leaves
//! it to the filesystem for direct writes, truncate, chown, fallocate and
//! copy_file_range; the rule is Linux's (`should_remove_suid`), for the
//! caller a [`Killer`] (`types.rs`) describes, and the group test reads the
//! caller's supplementary groups (`sys::groups`).

use super::{now, FileKind, Fs, FsResult, Inner, Ino, Killer, CONTROL_INO};

impl Killer {
    pub(super) fn keeps_sgid_without_gexec(&self, file_gid: u32) -> bool {
        self.privileged || crate::sys::groups::in_group(self.pid, self.gid, file_gid)
    }
}

/// Drop setuid/setgid as [`Killer`] says; returns whether anything was
/// cleared.
pub(super) fn clear_suidgid(i: &mut Inner, who: &Killer) -> bool {
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
    /// Drop setuid (and setgid with group-exec) as a change by a caller
    /// without CAP_FSETID does (fallocate, under KILLPRIV_V2). Returns
    /// whether the mode changed, so the caller can drop the kernel's copy.
    pub fn kill_suidgid(&self, ino: Ino, who: &Killer) -> FsResult<bool> {
        let n = self.get(ino)?;
        if n.kind() == FileKind::Dir || ino == CONTROL_INO {
            return Ok(false);
        }
        let mut i = n.inner.write();
        let killed = clear_suidgid(&mut i, who);
        if killed {
            i.ctime = now().into();
        }
        Ok(killed)
    }
}
