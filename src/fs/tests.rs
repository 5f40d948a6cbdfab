//! Unit tests of the core's namespace operations (no mount).

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
    Fs::new(&cfg)
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
    // The dedup index keeps its fixed tables when empty; everything else is 0.
    let st = StoreStats {
        dedup_index_bytes: 0,
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
    let fs = Fs::new(&cfg);
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
    fs.setxattr(a.ino, b"user.x", b"1", 0).unwrap();
    assert_eq!(
        fs.setxattr(a.ino, b"user.x", b"2", libc::XATTR_CREATE)
            .unwrap_err()
            .0,
        libc::EEXIST
    );
    assert_eq!(
        fs.setxattr(a.ino, b"user.y", b"2", libc::XATTR_REPLACE)
            .unwrap_err()
            .0,
        libc::ENODATA
    );
    assert_eq!(
        fs.setxattr(a.ino, b"foo.y", b"2", 0).unwrap_err().0,
        libc::EOPNOTSUPP
    );
    fs.setxattr(a.ino, b"trusted.t", b"22", 0).unwrap();
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
