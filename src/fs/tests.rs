//! Unit tests of the core's namespace operations (no mount).

use super::data::file;
use super::*;

const ME: Caller = Caller {
    uid: 1000,
    gid: 1000,
};

fn new_fs() -> Fs {
    let cfg = Config {
        size: 1 << 30,
        nr_inodes: 1000,
        ..Config::default()
    };
    crate::mount::new_fs(&cfg)
}

fn mkfile(fs: &Fs, parent: Ino, name: &[u8]) -> Attr {
    fs.mknod(parent, name, libc::S_IFREG | 0o644, 0o022, 0, ME)
        .unwrap()
}

fn names(fs: &Fs, dir: Ino) -> Vec<String> {
    let mut v = Vec::new();
    fs.readdir(dir, 0, |e| {
        v.push(String::from_utf8(e.name).unwrap());
        false
    })
    .unwrap();
    v
}

#[test]
fn create_lookup_readdir_unlink() {
    let fs = new_fs();
    let a = mkfile(&fs, ROOT_INO, b"a");
    assert_eq!(a.perm, 0o644);
    assert_eq!(a.uid, 1000);
    let d = fs.mkdir(ROOT_INO, b"d", 0o777, 0o022, ME).unwrap();
    assert_eq!(d.perm, 0o755);
    assert_eq!(fs.getattr(ROOT_INO).unwrap().nlink, 3);
    // The control file is hidden from listings, reachable by name.
    assert_eq!(names(&fs, ROOT_INO), [".", "..", "a", "d"]);
    assert_eq!(fs.lookup(ROOT_INO, b".zsfs").unwrap().ino, CONTROL_INO);
    assert_eq!(fs.lookup(ROOT_INO, b"a").unwrap().ino, a.ino);
    assert_eq!(
        fs.mknod(ROOT_INO, b"a", libc::S_IFREG, 0, 0, ME)
            .unwrap_err()
            .0,
        libc::EEXIST
    );
    assert_eq!(fs.rmdir(ROOT_INO, b"a").unwrap_err().0, libc::ENOTDIR);
    assert_eq!(fs.unlink(ROOT_INO, b"d").unwrap_err().0, libc::EISDIR);
    mkfile(&fs, d.ino, b"x");
    assert_eq!(fs.rmdir(ROOT_INO, b"d").unwrap_err().0, libc::ENOTEMPTY);
    fs.unlink(d.ino, b"x").unwrap();
    fs.rmdir(ROOT_INO, b"d").unwrap();
    assert_eq!(fs.getattr(ROOT_INO).unwrap().nlink, 2);
    fs.unlink(ROOT_INO, b"a").unwrap();
    assert_eq!(names(&fs, ROOT_INO), [".", ".."]);
    assert_eq!(fs.lookup(ROOT_INO, b"a").unwrap_err().0, libc::ENOENT);
    assert_eq!(
        fs.mknod(ROOT_INO, &[b'x'; 256], libc::S_IFREG, 0, 0, ME)
            .unwrap_err()
            .0,
        libc::ENAMETOOLONG
    );
}

#[test]
fn unlinked_open_file_lives_until_forget() {
    let fs = new_fs();
    let a = mkfile(&fs, ROOT_INO, b"a");
    fs.write(a.ino, 0, &[5u8; 10000]).unwrap();
    fs.flush(a.ino).unwrap();
    assert_eq!(fs.statfs().bfree, fs.statfs().blocks - 3);
    fs.unlink(ROOT_INO, b"a").unwrap();
    assert_eq!(fs.read(a.ino, 0, 10).unwrap(), [5u8; 10]);
    assert_eq!(fs.getattr(a.ino).unwrap().nlink, 0);
    fs.forget(a.ino, 1);
    assert_eq!(fs.getattr(a.ino).unwrap_err().0, libc::ENOENT);
    assert_eq!(fs.statfs().bfree, fs.statfs().blocks);
    // The dedup index and the recompression state keep their tables when
    // empty; everything else is 0.
    let st = StoreStats {
        dedup_index_bytes: 0,
        recomp_meta_bytes: 0,
        ..fs.store().stats()
    };
    assert_eq!(st, StoreStats::default());
}

#[test]
fn hard_links_and_symlinks() {
    let fs = new_fs();
    let a = mkfile(&fs, ROOT_INO, b"a");
    let l = fs.link(a.ino, ROOT_INO, b"b").unwrap();
    assert_eq!(l.nlink, 2);
    fs.write(a.ino, 0, b"hello").unwrap();
    let b = fs.lookup(ROOT_INO, b"b").unwrap();
    assert_eq!(fs.read(b.ino, 0, 100).unwrap(), b"hello");
    fs.unlink(ROOT_INO, b"a").unwrap();
    assert_eq!(fs.getattr(b.ino).unwrap().nlink, 1);
    let s = fs.symlink(ROOT_INO, b"s", b"target/x", ME).unwrap();
    assert_eq!(s.kind, FileKind::Symlink);
    assert_eq!(s.size, 8);
    assert_eq!(fs.readlink(s.ino).unwrap(), b"target/x");
    assert_eq!(
        fs.link(CONTROL_INO, ROOT_INO, b"c").unwrap_err().0,
        libc::EPERM
    );
}

#[test]
fn rename_rules() {
    let fs = new_fs();
    let d1 = fs.mkdir(ROOT_INO, b"d1", 0o755, 0, ME).unwrap();
    let d2 = fs.mkdir(ROOT_INO, b"d2", 0o755, 0, ME).unwrap();
    let a = mkfile(&fs, d1.ino, b"a");
    let b = mkfile(&fs, d2.ino, b"b");
    let nf = RenameFlags::default();
    // Into own subtree.
    assert_eq!(
        fs.rename(ROOT_INO, b"d1", d1.ino, b"x", nf).unwrap_err().0,
        libc::EINVAL
    );
    // noreplace
    let noreplace = RenameFlags {
        noreplace: true,
        exchange: false,
    };
    assert_eq!(
        fs.rename(d1.ino, b"a", d2.ino, b"b", noreplace)
            .unwrap_err()
            .0,
        libc::EEXIST
    );
    // exchange
    let exchange = RenameFlags {
        noreplace: false,
        exchange: true,
    };
    fs.rename(d1.ino, b"a", d2.ino, b"b", exchange).unwrap();
    assert_eq!(fs.lookup(d1.ino, b"a").unwrap().ino, b.ino);
    assert_eq!(fs.lookup(d2.ino, b"b").unwrap().ino, a.ino);
    // Replace: the old target is dropped once forgotten.
    fs.rename(d1.ino, b"a", d2.ino, b"b", nf).unwrap();
    assert_eq!(fs.getattr(a.ino).unwrap().nlink, 0);
    // Directory over a non-empty directory; dir over file; file over dir.
    let sub = fs.mkdir(d1.ino, b"sub", 0o755, 0, ME).unwrap();
    mkfile(&fs, d2.ino, b"f");
    fs.mkdir(d2.ino, b"e", 0o755, 0, ME).unwrap();
    mkfile(&fs, fs.lookup(d2.ino, b"e").unwrap().ino, b"inner");
    assert_eq!(
        fs.rename(d1.ino, b"sub", d2.ino, b"e", nf).unwrap_err().0,
        libc::ENOTEMPTY
    );
    assert_eq!(
        fs.rename(d1.ino, b"sub", d2.ino, b"f", nf).unwrap_err().0,
        libc::ENOTDIR
    );
    assert_eq!(
        fs.rename(d2.ino, b"f", d1.ino, b"sub", nf).unwrap_err().0,
        libc::EISDIR
    );
    // Move a directory across parents: link counts and "..".
    fs.rename(d1.ino, b"sub", d2.ino, b"sub", nf).unwrap();
    assert_eq!(fs.getattr(d1.ino).unwrap().nlink, 2);
    assert_eq!(fs.getattr(d2.ino).unwrap().nlink, 4);
    assert_eq!(fs.lookup(sub.ino, b"..").unwrap().ino, d2.ino);
    // Control file is fixed.
    assert_eq!(
        fs.rename(ROOT_INO, b".zsfs", ROOT_INO, b"y", nf)
            .unwrap_err()
            .0,
        libc::EPERM
    );
    assert_eq!(
        fs.rename(d2.ino, b"b", ROOT_INO, b".zsfs", nf)
            .unwrap_err()
            .0,
        libc::EPERM
    );
}

#[test]
fn setattr_xattr_statfs_limits() {
    let cfg = Config {
        size: 8 * 4096,
        nr_inodes: 3,
        ..Config::default()
    };
    let fs = crate::mount::new_fs(&cfg);
    let a = mkfile(&fs, ROOT_INO, b"a");
    mkfile(&fs, ROOT_INO, b"b");
    assert_eq!(
        fs.mknod(ROOT_INO, b"c", libc::S_IFREG, 0, 0, ME)
            .unwrap_err()
            .0,
        libc::ENOSPC
    );
    let st = fs.statfs();
    assert_eq!((st.files, st.ffree, st.blocks), (3, 0, 8));
    // size= limit: a short write, then ENOSPC.
    assert_eq!(fs.write(a.ino, 0, &[1u8; 40000]).unwrap(), 8 * 4096);
    assert_eq!(
        fs.write(a.ino, 8 * 4096, &[1u8; 10]).unwrap_err().0,
        libc::ENOSPC
    );
    let r = fs
        .setattr(
            a.ino,
            &SetAttr {
                size: Some(100),
                mode: Some(0o4755),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!((r.size, r.perm, r.blocks), (100, 0o4755, 8));
    assert_eq!(fs.statfs().bfree, 7);
    // xattrs
    assert_eq!(fs.getxattr(a.ino, b"user.x").unwrap_err().0, libc::ENODATA);
    fs.setxattr(a.ino, b"user.x", b"1", 0, None).unwrap();
    assert_eq!(
        fs.setxattr(a.ino, b"user.x", b"2", libc::XATTR_CREATE, None)
            .unwrap_err()
            .0,
        libc::EEXIST
    );
    assert_eq!(
        fs.setxattr(a.ino, b"user.y", b"2", libc::XATTR_REPLACE, None)
            .unwrap_err()
            .0,
        libc::ENODATA
    );
    assert_eq!(
        fs.setxattr(a.ino, b"foo.y", b"2", 0, None).unwrap_err().0,
        libc::EOPNOTSUPP
    );
    fs.setxattr(a.ino, b"trusted.t", b"22", 0, None).unwrap();
    assert_eq!(fs.listxattr(a.ino).unwrap(), b"user.x\0trusted.t\0");
    fs.removexattr(a.ino, b"user.x").unwrap();
    assert_eq!(fs.getxattr(a.ino, b"trusted.t").unwrap(), b"22");
    // Control file: no chmod.
    assert_eq!(
        fs.setattr(
            CONTROL_INO,
            &SetAttr {
                mode: Some(0o777),
                ..Default::default()
            }
        )
        .unwrap_err()
        .0,
        libc::EPERM
    );
}

#[test]
fn setgid_directory_inherits_group() {
    let fs = new_fs();
    let d = fs.mkdir(ROOT_INO, b"d", 0o2775, 0, ME).unwrap();
    assert_eq!(d.perm, 0o2775);
    let other = Caller { uid: 5, gid: 5 };
    let f = fs
        .mknod(d.ino, b"f", libc::S_IFREG | 0o644, 0, 0, other)
        .unwrap();
    assert_eq!(f.gid, 1000);
    let s = fs.mkdir(d.ino, b"s", 0o755, 0, other).unwrap();
    assert_eq!((s.gid, s.perm), (1000, 0o2755));
}

/// An ACL xattr value from (tag, perm, id) triples (the kernel's layout).
fn acl_value(entries: &[AclEntry]) -> Vec<u8> {
    acl::Acl(
        entries
            .iter()
            .map(|&(tag, perm, id)| acl::Entry { tag, perm, id })
            .collect(),
    )
    .encode()
}

const NOID: u32 = u32::MAX;

/// The (tag, perm, id) triples `acl_value` takes: the file's owner, a
/// named user, the owning group, the mask and others, with perm as rwx
/// bits (0..=7).
type AclEntry = (u16, u16, u32);
fn owner(perm: u16) -> AclEntry {
    (acl::USER_OBJ, perm, NOID)
}
fn user(id: u32, perm: u16) -> AclEntry {
    (acl::USER, perm, id)
}
fn group(perm: u16) -> AclEntry {
    (acl::GROUP_OBJ, perm, NOID)
}
fn mask(perm: u16) -> AclEntry {
    (acl::MASK, perm, NOID)
}
fn other(perm: u16) -> AclEntry {
    (acl::OTHER, perm, NOID)
}

/// u::rwx, u:2000:rwx, g::r-x, m::rwx, o::r-x
fn rich_default() -> Vec<u8> {
    acl_value(&[owner(7), user(2000, 7), group(5), mask(7), other(5)])
}

#[test]
fn default_acl_is_inherited_and_replaces_the_umask() {
    let fs = new_fs();
    let d = fs.mkdir(ROOT_INO, b"d", 0o755, 0o022, ME).unwrap();
    fs.setxattr(d.ino, acl::DEFAULT, &rich_default(), 0, None)
        .unwrap();
    // A file created 0666 under umask 077: the default ACL rules and the
    // umask is ignored; its o::r-x limits other to r--, and the mask is
    // limited by the group bits of 0666.
    let f = fs
        .mknod(d.ino, b"f", libc::S_IFREG | 0o666, 0o077, 0, ME)
        .unwrap();
    assert_eq!(f.perm, 0o664);
    let fa = fs.getxattr(f.ino, acl::ACCESS).unwrap();
    assert_eq!(
        fa,
        acl_value(&[owner(6), user(2000, 7), group(5), mask(6), other(4),])
    );
    assert_eq!(
        fs.getxattr(f.ino, acl::DEFAULT).unwrap_err().0,
        libc::ENODATA
    );
    // A subdirectory gets the access ACL and the default ACL itself.
    let s = fs.mkdir(d.ino, b"s", 0o777, 0o077, ME).unwrap();
    assert_eq!(s.perm, 0o775);
    assert_eq!(fs.getxattr(s.ino, acl::DEFAULT).unwrap(), rich_default());
    assert!(fs.getxattr(s.ino, acl::ACCESS).is_ok());
    // ...and passes it on.
    let g = fs
        .mknod(s.ino, b"g", libc::S_IFREG | 0o640, 0o077, 0, ME)
        .unwrap();
    assert_eq!(g.perm, 0o640);
    // Symlinks take nothing.
    let l = fs.symlink(d.ino, b"l", b"f", ME).unwrap();
    assert_eq!(l.perm, 0o777);
    assert_eq!(fs.listxattr(l.ino).unwrap(), b"");
    // Without a default ACL the umask applies, and nothing is stored.
    let plain = fs
        .mknod(ROOT_INO, b"p", libc::S_IFREG | 0o666, 0o027, 0, ME)
        .unwrap();
    assert_eq!(plain.perm, 0o640);
    let pd = fs.mkdir(ROOT_INO, b"pd", 0o777, 0o027, ME).unwrap();
    assert_eq!(pd.perm, 0o750);
    assert_eq!(fs.listxattr(plain.ino).unwrap(), b"");
}

#[test]
fn minimal_default_acl_gives_mode_only() {
    let fs = new_fs();
    let d = fs.mkdir(ROOT_INO, b"d", 0o755, 0, ME).unwrap();
    let min = acl_value(&[owner(7), group(0), other(0)]);
    fs.setxattr(d.ino, acl::DEFAULT, &min, 0, None).unwrap();
    // umask 0 would give 0666; the default ACL's g::--- o::--- give 0600.
    let f = fs
        .mknod(d.ino, b"f", libc::S_IFREG | 0o666, 0, 0, ME)
        .unwrap();
    assert_eq!(f.perm, 0o600);
    assert_eq!(fs.listxattr(f.ino).unwrap(), b"", "equivalent to the mode");
    let s = fs.mkdir(d.ino, b"s", 0o777, 0, ME).unwrap();
    assert_eq!(s.perm, 0o700);
    assert_eq!(fs.listxattr(s.ino).unwrap(), b"system.posix_acl_default\0");
}

#[test]
fn access_acl_sets_mode_and_chmod_sets_the_mask() {
    let fs = new_fs();
    let a = mkfile(&fs, ROOT_INO, b"a");
    let named = acl_value(&[owner(6), user(2000, 4), group(4), mask(5), other(0)]);
    fs.setxattr(a.ino, acl::ACCESS, &named, 0, None).unwrap();
    assert_eq!(fs.getattr(a.ino).unwrap().perm, 0o650, "group bits = mask");
    assert_eq!(fs.getxattr(a.ino, acl::ACCESS).unwrap(), named);
    fs.setattr(
        a.ino,
        &SetAttr {
            mode: Some(0o604),
            ..Default::default()
        },
    )
    .unwrap();
    let after = acl::Acl::decode(&fs.getxattr(a.ino, acl::ACCESS).unwrap())
        .unwrap()
        .unwrap();
    let perms: Vec<u16> = after.0.iter().map(|e| e.perm).collect();
    assert_eq!(perms, vec![6, 4, 4, 0, 4], "mask from g, g::r-- kept");
    // An ACL the mode says all of sets the mode and is not stored.
    let eq = acl_value(&[owner(7), group(5), other(1)]);
    fs.setxattr(a.ino, acl::ACCESS, &eq, 0, None).unwrap();
    assert_eq!(fs.getattr(a.ino).unwrap().perm, 0o751);
    assert_eq!(
        fs.getxattr(a.ino, acl::ACCESS).unwrap_err().0,
        libc::ENODATA
    );
    // Removing a missing ACL succeeds (tmpfs); so does an empty value.
    fs.removexattr(a.ino, acl::ACCESS).unwrap();
    fs.setxattr(a.ino, acl::ACCESS, &acl_value(&[]), 0, None)
        .unwrap();
}

#[test]
fn bad_acls_are_refused() {
    let fs = new_fs();
    let a = mkfile(&fs, ROOT_INO, b"a");
    let e = |r: FsResult<()>| r.unwrap_err().0;
    // Named entry without a mask.
    let bad = acl_value(&[owner(6), user(2000, 4), group(4), other(0)]);
    assert_eq!(
        e(fs.setxattr(a.ino, acl::ACCESS, &bad, 0, None)),
        libc::EINVAL
    );
    assert_eq!(
        e(fs.setxattr(a.ino, acl::ACCESS, b"xy", 0, None)),
        libc::EINVAL
    );
    // A default ACL on a file.
    assert_eq!(
        e(fs.setxattr(a.ino, acl::DEFAULT, &rich_default(), 0, None)),
        libc::EACCES
    );
    // Other system.* names stay unsupported.
    assert_eq!(
        e(fs.setxattr(a.ino, b"system.foo", b"1", 0, None)),
        libc::EOPNOTSUPP
    );
    assert_eq!(fs.getattr(a.ino).unwrap().perm, 0o644, "mode untouched");
    assert_eq!(fs.listxattr(a.ino).unwrap(), b"");
}

#[test]
fn access_acl_drops_setgid_for_a_caller_outside_the_group() {
    let fs = new_fs();
    let a = fs
        .mknod(ROOT_INO, b"a", libc::S_IFREG | 0o2775, 0, 0, ME)
        .unwrap();
    let v = acl_value(&[owner(7), user(2000, 4), group(5), mask(5), other(5)]);
    // This process, unprivileged, as a member of group `gid`.
    let caller_in = |gid| Killer {
        pid: std::process::id(),
        gid,
        privileged: false,
    };
    let (member, outsider) = (caller_in(1000), caller_in(4242));
    fs.setxattr(a.ino, acl::ACCESS, &v, 0, Some(member))
        .unwrap();
    assert_eq!(fs.getattr(a.ino).unwrap().perm, 0o2755);
    fs.setxattr(a.ino, acl::ACCESS, &v, 0, Some(outsider))
        .unwrap();
    assert_eq!(fs.getattr(a.ino).unwrap().perm, 0o755);
}

/// What an inode costs in memory, part by part (the README's breakdown
/// quotes these). An empty file is an `Arc<Inode>` in one allocation, an
/// entry in the inode table and one in its directory; these bounds keep it
/// within the 256 bytes per empty file that `tests/empty_files.rs` checks.
#[test]
fn an_inode_and_its_parts_stay_small() {
    use std::mem::size_of;
    let sizes = [
        ("Arc<Inode> allocation", size_of::<Inode>() + 16),
        ("Inode", size_of::<Inode>()),
        ("Inner", size_of::<Inner>()),
        ("Content", size_of::<Content>()),
        ("FileData", size_of::<file::FileData>()),
        ("Dir", size_of::<dir::Dir>()),
        ("Xattrs", size_of::<Xattrs>()),
        ("Stamp", size_of::<Stamp>()),
        (
            "dir::Slot (an entry, name in the arena)",
            size_of::<dir::Slot>(),
        ),
        ("Block", size_of::<crate::store::Block>()),
    ];
    for (what, n) in sizes {
        eprintln!("size_of {what}: {n} B");
    }
    // glibc hands out 16-byte multiples with 8 bytes of header: an
    // allocation of at most 136 bytes takes a 144-byte chunk.
    assert!(size_of::<Inode>() + 16 <= 136, "{sizes:?}");
    assert!(size_of::<file::FileData>() <= 24, "{sizes:?}");
    assert!(size_of::<Content>() <= 32, "{sizes:?}");
    assert_eq!(size_of::<Xattrs>(), 8);
    // A directory entry is this, its name plus 2 bytes in the directory's
    // arena, and a 4-byte position in its name index.
    assert!(size_of::<dir::Slot>() <= 16, "{sizes:?}");
    // A block map entry is its index and this.
    assert!(size_of::<crate::store::Block>() <= 8, "{sizes:?}");
}
