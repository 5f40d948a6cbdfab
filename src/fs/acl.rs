//! POSIX ACLs: the xattr format and the mode rules the kernel leaves to us.
//!
//! # Who does what (FUSE_POSIX_ACL, Linux fs/fuse and fs/posix_acl.c)
//! * `process_init_reply` (fs/fuse/inode.c): FUSE_POSIX_ACL sets
//!   `fc->posix_acl` and `fc->default_permissions`; the kernel then checks
//!   ACLs itself (`fuse_get_inode_acl` feeds `generic_permission`) and
//!   caches them. FUSE_DONT_MASK sets `fc->dont_mask`.
//! * `fuse_fill_super_common` always sets SB_POSIXACL, so the VFS never
//!   applies the umask on a FUSE mount; `fuse_mknod`/`fuse_mkdir`/
//!   `fuse_create_open` apply it themselves unless `dont_mask`, and send
//!   it in `umask` either way. With DONT_MASK the mode arrives unmasked and
//!   the create rule below (posix_acl_create) is ours: a default ACL
//!   replaces the umask.
//! * `fuse_set_acl` (fs/fuse/acl.c) turns an ACL into SETXATTR of
//!   `system.posix_acl_access`/`_default` (removal: REMOVEXATTR), with
//!   flags 0. It does not call `posix_acl_update_mode` and sends no
//!   SETATTR: "Fuse userspace is responsible for updating access
//!   permissions in the inode". So the mode from an access ACL, dropping an
//!   ACL the mode bits express, and dropping setgid for a caller outside
//!   the group (FUSE_SETXATTR_ACL_KILL_SGID, which needs FUSE_SETXATTR_EXT
//!   and fuser 0.18 cannot parse its longer request) are ours.
//! * `fuse_setattr` (fs/fuse/dir.c) never calls `posix_acl_chmod`; it only
//!   forgets the cached ACLs after a SETATTR "since the filesystem may have
//!   updated acl xattrs". So chmod's rewrite of the ACL is ours too.
//! * Seen on Linux 6.18 (RUST_LOG=debug): `setfacl -m` sends GETXATTR and
//!   SETXATTR and no SETATTR of the mode; `chmod` of a file with an ACL
//!   sends SETATTR only, and the next getfacl reads the ACL back from us.
//! * `vfs_set_acl` (fs/posix_acl.c) refuses a default ACL on a
//!   non-directory (EACCES) and validates the value (`posix_acl_from_xattr`,
//!   `posix_acl_valid`) before the filesystem sees it; we check again
//!   rather than trust the request.
//!
//! # Format (`posix_acl_xattr`, include/uapi/linux/posix_acl_xattr.h)
//! Little-endian: a u32 header, version 2, then 8-byte entries of tag
//! (u16), perm (u16) and id (u32). The id means something only for
//! ACL_USER and ACL_GROUP; the kernel writes ACL_UNDEFINED_ID (-1) for the
//! others. Entries come in the order `posix_acl_valid` demands: USER_OBJ,
//! USERs, GROUP_OBJ, GROUPs, MASK (required when any USER/GROUP is there),
//! OTHER. A value with no entries means "no ACL".

const VERSION: u32 = 2;
const HEADER: usize = 4;
const ENTRY: usize = 8;
const UNDEFINED_ID: u32 = u32::MAX;

pub(crate) const ACCESS: &[u8] = b"system.posix_acl_access";
pub(crate) const DEFAULT: &[u8] = b"system.posix_acl_default";

pub(crate) const USER_OBJ: u16 = 0x01;
pub(crate) const USER: u16 = 0x02;
pub(crate) const GROUP_OBJ: u16 = 0x04;
pub(crate) const GROUP: u16 = 0x08;
pub(crate) const MASK: u16 = 0x10;
pub(crate) const OTHER: u16 = 0x20;

/// Which ACL an xattr name is, if it is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Access,
    Default,
}

impl Kind {
    pub(crate) fn of(name: &[u8]) -> Option<Kind> {
        match name {
            ACCESS => Some(Kind::Access),
            DEFAULT => Some(Kind::Default),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) tag: u16,
    /// rwx as 4/2/1.
    pub(crate) perm: u16,
    pub(crate) id: u32,
}

/// A valid ACL (at least USER_OBJ, GROUP_OBJ and OTHER, in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Acl(pub(crate) Vec<Entry>);

impl Acl {
    /// Parse an xattr value. `Ok(None)`: no entries, i.e. remove the ACL
    /// (`posix_acl_from_xattr` returns NULL). Errors as the kernel's:
    /// EINVAL for a bad size or an invalid ACL, EOPNOTSUPP for another
    /// version.
    pub(crate) fn decode(v: &[u8]) -> Result<Option<Acl>, i32> {
        if v.len() < HEADER {
            return Err(libc::EINVAL);
        }
        if u32::from_le_bytes(v[..HEADER].try_into().unwrap()) != VERSION {
            return Err(libc::EOPNOTSUPP);
        }
        let body = &v[HEADER..];
        if body.len() % ENTRY != 0 {
            return Err(libc::EINVAL);
        }
        if body.is_empty() {
            return Ok(None);
        }
        let entries = body
            .chunks_exact(ENTRY)
            .map(|e| {
                let tag = u16::from_le_bytes([e[0], e[1]]);
                let id = match tag {
                    USER | GROUP => u32::from_le_bytes(e[4..8].try_into().unwrap()),
                    _ => UNDEFINED_ID,
                };
                Entry {
                    tag,
                    perm: u16::from_le_bytes([e[2], e[3]]),
                    id,
                }
            })
            .collect();
        let acl = Acl(entries);
        acl.validate()?;
        Ok(Some(acl))
    }

    /// The xattr value; the inverse of `decode`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(HEADER + ENTRY * self.0.len());
        v.extend_from_slice(&VERSION.to_le_bytes());
        for e in &self.0 {
            v.extend_from_slice(&e.tag.to_le_bytes());
            v.extend_from_slice(&e.perm.to_le_bytes());
            v.extend_from_slice(&e.id.to_le_bytes());
        }
        v
    }

    /// `posix_acl_valid`: known tags and perms, the order above, one of
    /// each *_OBJ, a mask when named entries exist, valid named ids.
    fn validate(&self) -> Result<(), i32> {
        #[derive(PartialEq)]
        enum S {
            UserObj,
            User,
            Group,
            Other,
            Done,
        }
        let mut state = S::UserObj;
        let mut needs_mask = false;
        for e in &self.0 {
            if e.perm & !7 != 0 {
                return Err(libc::EINVAL);
            }
            state = match (e.tag, state) {
                (USER_OBJ, S::UserObj) => S::User,
                (USER, S::User) if e.id != UNDEFINED_ID => {
                    needs_mask = true;
                    S::User
                }
                (GROUP_OBJ, S::User) => S::Group,
                (GROUP, S::Group) if e.id != UNDEFINED_ID => {
                    needs_mask = true;
                    S::Group
                }
                (MASK, S::Group) => S::Other,
                (OTHER, S::Other) => S::Done,
                (OTHER, S::Group) if !needs_mask => S::Done,
                _ => return Err(libc::EINVAL),
            };
        }
        if state == S::Done {
            Ok(())
        } else {
            Err(libc::EINVAL)
        }
    }

    /// `posix_acl_equiv_mode`: `mode` with its rwx bits taken from the
    /// ACL (group bits from the mask if there is one), and whether the
    /// mode bits say all the ACL says (then it is not stored).
    pub(crate) fn equiv_mode(&self, mode: u32) -> (u32, bool) {
        let mut bits = 0;
        let mut equiv = true;
        for e in &self.0 {
            let p = u32::from(e.perm);
            match e.tag {
                USER_OBJ => bits |= p << 6,
                GROUP_OBJ => bits |= p << 3,
                // The mask is what the group bits show (GROUP_OBJ comes
                // before it, so this replaces GROUP_OBJ's bits).
                MASK => {
                    bits = (bits & !0o070) | (p << 3);
                    equiv = false;
                }
                OTHER => bits |= p,
                _ => equiv = false,
            }
        }
        ((mode & !0o777) | bits, equiv)
    }

    /// `posix_acl_create_masq`: a copy of a parent's default ACL as a new
    /// inode's access ACL, its owner, other and group-class (mask, or
    /// GROUP_OBJ without one) entries limited by the create `mode`, and
    /// the mode limited by them in turn. Returns the new mode and whether
    /// the ACL says more than the mode (else it is not stored).
    pub(crate) fn create_masq(&mut self, mode: u32) -> (u32, bool) {
        let mut m = mode & 0o777;
        let mut not_equiv = false;
        let (mut group_obj, mut mask) = (None, None);
        for (i, e) in self.0.iter_mut().enumerate() {
            match e.tag {
                USER_OBJ => {
                    e.perm &= ((m >> 6) & 7) as u16;
                    m &= (u32::from(e.perm) << 6) | !0o700;
                }
                USER | GROUP => not_equiv = true,
                GROUP_OBJ => group_obj = Some(i),
                OTHER => {
                    e.perm &= (m & 7) as u16;
                    m &= u32::from(e.perm) | !0o007;
                }
                MASK => {
                    mask = Some(i);
                    not_equiv = true;
                }
                _ => {}
            }
        }
        // A valid ACL has GROUP_OBJ, so one of the two is there.
        if let Some(g) = mask.or(group_obj) {
            let e = &mut self.0[g];
            e.perm &= ((m >> 3) & 7) as u16;
            m &= (u32::from(e.perm) << 3) | !0o070;
        }
        ((mode & !0o777) | m, not_equiv)
    }

    /// `posix_acl_chmod_masq`: after chmod, owner, other and the group
    /// class (mask, or GROUP_OBJ without one) take the new mode's bits;
    /// named entries stay.
    pub(crate) fn chmod_masq(&mut self, mode: u32) {
        let has_mask = self.0.iter().any(|e| e.tag == MASK);
        for e in &mut self.0 {
            match e.tag {
                USER_OBJ => e.perm = ((mode >> 6) & 7) as u16,
                OTHER => e.perm = (mode & 7) as u16,
                MASK => e.perm = ((mode >> 3) & 7) as u16,
                GROUP_OBJ if !has_mask => e.perm = ((mode >> 3) & 7) as u16,
                _ => {}
            }
        }
    }
}

/// What a new inode gets from its parent's default ACL (`posix_acl_create`):
/// its mode (the umask is not applied), an access ACL unless the mode says
/// it all, and for a directory the default ACL itself.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Inherited {
    pub(crate) mode: u32,
    pub(crate) access: Option<Acl>,
    pub(crate) default: Option<Acl>,
}

pub(crate) fn inherit(default: &Acl, mode: u32, is_dir: bool) -> Inherited {
    let mut access = default.clone();
    let (mode, not_equiv) = access.create_masq(mode);
    Inherited {
        mode,
        access: not_equiv.then_some(access),
        default: is_dir.then(|| default.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(tag: u16, perm: u16, id: u32) -> Entry {
        Entry { tag, perm, id }
    }

    /// u::rw-, u:1000:r--, g::r-x, g:50:rwx, m::r--, o::---
    fn full() -> Acl {
        Acl(vec![
            e(USER_OBJ, 6, UNDEFINED_ID),
            e(USER, 4, 1000),
            e(GROUP_OBJ, 5, UNDEFINED_ID),
            e(GROUP, 7, 50),
            e(MASK, 4, UNDEFINED_ID),
            e(OTHER, 0, UNDEFINED_ID),
        ])
    }

    fn minimal(u: u16, g: u16, o: u16) -> Acl {
        Acl(vec![
            e(USER_OBJ, u, UNDEFINED_ID),
            e(GROUP_OBJ, g, UNDEFINED_ID),
            e(OTHER, o, UNDEFINED_ID),
        ])
    }

    fn raw(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut v = 2u32.to_le_bytes().to_vec();
        for &(t, p, i) in entries {
            v.extend_from_slice(&t.to_le_bytes());
            v.extend_from_slice(&p.to_le_bytes());
            v.extend_from_slice(&i.to_le_bytes());
        }
        v
    }

    #[test]
    fn encode_is_the_kernel_layout_and_decodes_back() {
        let v = full().encode();
        assert_eq!(v.len(), 4 + 6 * 8);
        assert_eq!(&v[..4], &[2, 0, 0, 0]);
        // u:1000:r-- is the second entry: tag 2, perm 4, id 1000.
        assert_eq!(&v[12..20], &[2, 0, 4, 0, 0xe8, 3, 0, 0]);
        assert_eq!(Acl::decode(&v).unwrap(), Some(full()));
        let m = minimal(7, 5, 0);
        assert_eq!(Acl::decode(&m.encode()).unwrap(), Some(m));
    }

    #[test]
    fn decode_ignores_ids_of_unnamed_entries() {
        let v = raw(&[(USER_OBJ, 6, 0), (GROUP_OBJ, 4, 7), (OTHER, 4, 9)]);
        let a = Acl::decode(&v).unwrap().unwrap();
        assert_eq!(a, minimal(6, 4, 4));
        assert_ne!(a.encode(), v, "stored canonically");
    }

    #[test]
    fn empty_means_no_acl() {
        assert_eq!(Acl::decode(&2u32.to_le_bytes()).unwrap(), None);
    }

    #[test]
    fn malformed_values_are_refused() {
        use libc::{EINVAL, EOPNOTSUPP};
        let u = UNDEFINED_ID;
        // The entries of a minimal valid ACL, and a mask, that the cases
        // below are built of.
        let (uo, go, o, mask) = (
            (USER_OBJ, 6, u),
            (GROUP_OBJ, 4, u),
            (OTHER, 4, u),
            (MASK, 4, u),
        );
        let mut version_1 = raw(&[uo, go, o]);
        version_1[0] = 1;
        let mut partial = minimal(6, 4, 4).encode();
        partial.pop();
        let bad: &[(&str, Vec<u8>, i32)] = &[
            ("empty", vec![], EINVAL),
            ("short header", vec![2, 0], EINVAL),
            ("version 1", version_1, EOPNOTSUPP),
            ("partial entry", partial, EINVAL),
            ("no other", raw(&[uo, go]), EINVAL),
            ("no user_obj", raw(&[go, o]), EINVAL),
            ("out of order", raw(&[go, uo, o]), EINVAL),
            ("two user_obj", raw(&[uo, uo, go, o]), EINVAL),
            (
                "named without mask",
                raw(&[uo, (USER, 4, 5), go, o]),
                EINVAL,
            ),
            (
                "named user without id",
                raw(&[uo, (USER, 4, u), go, mask, o]),
                EINVAL,
            ),
            ("perm beyond rwx", raw(&[(USER_OBJ, 8, u), go, o]), EINVAL),
            ("unknown tag", raw(&[uo, (0x40, 4, u), go, o]), EINVAL),
            ("entry after other", raw(&[uo, go, o, o]), EINVAL),
        ];
        for (what, v, errno) in bad {
            assert_eq!(Acl::decode(v), Err(*errno), "{what}");
        }
        // A mask without named entries is valid.
        let v = raw(&[uo, go, mask, o]);
        assert!(Acl::decode(&v).unwrap().is_some());
    }

    #[test]
    fn equiv_mode_takes_group_bits_from_the_mask() {
        assert_eq!(minimal(6, 4, 0).equiv_mode(0o100777), (0o100640, true));
        assert_eq!(minimal(7, 5, 5).equiv_mode(0o4000), (0o4755, true));
        // full(): owner rw, mask r, other none; named entries: not equiv.
        assert_eq!(full().equiv_mode(0o100000), (0o100640, false));
    }

    #[test]
    fn create_masq_limits_the_acl_and_the_mode() {
        // Default u::rwx,u:1000:r--,g::r-x,g:50:rwx,m::rwx,o::r-x, created 0644.
        let mut d = full();
        d.0[0].perm = 7;
        d.0[4].perm = 7;
        d.0[5].perm = 5;
        let (mode, not_equiv) = d.create_masq(0o100644);
        assert!(not_equiv);
        assert_eq!(mode, 0o100644);
        assert_eq!(d.0[0].perm, 6, "owner rwx & rw-");
        assert_eq!(d.0[4].perm, 4, "mask rwx & r--");
        assert_eq!(d.0[5].perm, 4, "other r-x & r--");
        assert_eq!(d.0[2].perm, 5, "group_obj is under the mask, untouched");
        assert_eq!(d.0[3].perm, 7, "named entries untouched");

        // The ACL also limits the mode: default o::--- on a 0666 create.
        let mut m = minimal(7, 5, 0);
        assert_eq!(m.create_masq(0o100666), (0o100640, false));
        assert_eq!(m, minimal(6, 4, 0));
    }

    #[test]
    fn inherit_gives_dirs_the_default_and_drops_equivalent_acls() {
        let d = minimal(7, 5, 5);
        let f = inherit(&d, 0o100666, false);
        assert_eq!(f.mode, 0o100644);
        assert_eq!((f.access, f.default), (None, None));
        let sub = inherit(&d, 0o40777, true);
        assert_eq!(sub.mode, 0o40755);
        assert_eq!(sub.access, None);
        assert_eq!(sub.default, Some(d));
        let named = inherit(&full(), 0o100666, false);
        assert_eq!(named.mode, 0o100640);
        assert!(named.access.is_some());
    }

    #[test]
    fn chmod_sets_mask_not_group_obj() {
        let mut a = full();
        a.chmod_masq(0o751);
        assert_eq!(
            a.0.iter().map(|e| e.perm).collect::<Vec<_>>(),
            vec![7, 4, 5, 7, 5, 1]
        );
        let mut m = minimal(6, 4, 4);
        m.chmod_masq(0o705);
        assert_eq!(m, minimal(7, 0, 5));
    }
}
