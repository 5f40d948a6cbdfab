//! POSIX behaviour through a real mount: std::fs (and libc where std has no
//! call) against a zsfs mounted by [`MountGuard`], which unmounts even when
//! a test panics. Every test checks results, not just that calls succeed.

mod common;

use common::data::noise;
use common::*;
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap()
}

fn file_io(mnt: &Path) {
    let p = mnt.join("f");
    fs::write(&p, b"hello world").unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"hello world");
    // Overwrite in the middle, append, read at offsets.
    let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    f.write_all_at(b"WORLD", 6).unwrap();
    let mut a = OpenOptions::new().append(true).open(&p).unwrap();
    a.write_all(b"!!").unwrap();
    drop(a);
    assert_eq!(fs::read(&p).unwrap(), b"hello WORLD!!");
    let mut buf = [0u8; 5];
    f.read_exact_at(&mut buf, 6).unwrap();
    assert_eq!(&buf, b"WORLD");
    // A big file of mixed content across many blocks.
    let mut big = noise(7, 3 << 20);
    big.extend(std::iter::repeat_n(0u8, 1 << 20));
    big.extend(
        b"some text that compresses well. "
            .iter()
            .cycle()
            .take(2 << 20),
    );
    let q = mnt.join("big");
    fs::write(&q, &big).unwrap();
    assert_eq!(fs::metadata(&q).unwrap().len(), big.len() as u64);
    assert!(fs::read(&q).unwrap() == big, "big file differs");
    // Unaligned small writes across block boundaries, read back at once.
    let r = File::create(mnt.join("small")).unwrap();
    let mut model = vec![0u8; 20000];
    for i in 0..2000usize {
        let off = (i * 37) % 19990;
        let chunk = [(i % 251) as u8; 7];
        r.write_all_at(&chunk, off as u64).unwrap();
        model[off..off + 7].copy_from_slice(&chunk);
    }
    let len = model.iter().rposition(|&b| b != 0).unwrap() + 1;
    let got = fs::read(mnt.join("small")).unwrap();
    assert!(got.len() >= len && got[..len] == model[..len]);
}

#[test]
fn files_read_back_what_was_written() {
    let m = MountGuard::new("");
    file_io(m.path());
}

#[test]
fn files_read_back_with_cache_none() {
    let m = MountGuard::new("cache=none");
    file_io(m.path());
}

#[test]
fn files_read_back_with_large_blocks() {
    let m = MountGuard::new("block_size=128k");
    file_io(m.path());
}

#[test]
fn directories_links_and_rename() {
    let m = MountGuard::new("");
    let r = m.path();
    fs::create_dir_all(r.join("a/b/c")).unwrap();
    fs::write(r.join("a/b/c/f"), b"x").unwrap();
    assert_eq!(fs::metadata(r.join("a")).unwrap().nlink(), 3);
    let mut names: Vec<_> = fs::read_dir(r)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    // The control file is hidden from listings (as ZFS hides .zfs) but
    // reachable by name.
    assert_eq!(names, ["a"]);
    assert!(r.join(".zsfs").is_file());
    assert_eq!(
        fs::remove_dir(r.join("a/b")).unwrap_err().raw_os_error(),
        Some(libc::ENOTEMPTY)
    );
    // Hard link and symlink.
    fs::hard_link(r.join("a/b/c/f"), r.join("h")).unwrap();
    assert_eq!(fs::metadata(r.join("h")).unwrap().nlink(), 2);
    std::os::unix::fs::symlink("a/b/c/f", r.join("s")).unwrap();
    assert_eq!(fs::read_link(r.join("s")).unwrap(), Path::new("a/b/c/f"));
    assert_eq!(fs::read(r.join("s")).unwrap(), b"x");
    assert!(fs::symlink_metadata(r.join("s"))
        .unwrap()
        .file_type()
        .is_symlink());
    // Rename a directory across parents, then over an empty directory.
    fs::create_dir(r.join("d")).unwrap();
    fs::rename(r.join("a/b"), r.join("d/b2")).unwrap();
    assert_eq!(fs::read(r.join("d/b2/c/f")).unwrap(), b"x");
    assert_eq!(fs::metadata(r.join("a")).unwrap().nlink(), 2);
    assert_eq!(fs::metadata(r.join("d")).unwrap().nlink(), 3);
    fs::create_dir(r.join("empty")).unwrap();
    fs::rename(r.join("d/b2"), r.join("empty")).unwrap();
    assert!(r.join("empty/c/f").exists());
    // renameat2 flags.
    fs::write(r.join("p"), b"p").unwrap();
    fs::write(r.join("q"), b"q").unwrap();
    let (p, q) = (cstr(&r.join("p")), cstr(&r.join("q")));
    // SAFETY: valid C strings, AT_FDCWD with absolute paths.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            p.as_ptr(),
            libc::AT_FDCWD,
            q.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    assert_eq!((rc, errno()), (-1, libc::EEXIST));
    // SAFETY: as above.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            p.as_ptr(),
            libc::AT_FDCWD,
            q.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    assert_eq!(rc, 0);
    assert_eq!(fs::read(r.join("p")).unwrap(), b"q");
    assert_eq!(fs::read(r.join("q")).unwrap(), b"p");
    // An unlinked open file stays readable.
    let mut f = File::open(r.join("q")).unwrap();
    fs::remove_file(r.join("q")).unwrap();
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "p");
    // Permissions and a FIFO.
    fs::set_permissions(r.join("p"), fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(fs::metadata(r.join("p")).unwrap().mode() & 0o7777, 0o640);
    let fifo = cstr(&r.join("fifo"));
    // SAFETY: valid C string.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(
        &fs::metadata(r.join("fifo")).unwrap().file_type()
    ));
}

/// A new file at `p` holding only `tail` at 100 MiB: a 100 MiB hole first.
fn sparse_with_tail(p: &Path) -> File {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(p)
        .unwrap();
    f.write_all_at(b"tail", 100 << 20).unwrap();
    f
}

#[test]
fn truncate_sparse_fallocate_and_seek() {
    let m = MountGuard::new("");
    let p = m.path().join("sparse");
    let f = sparse_with_tail(&p);
    f.sync_all().unwrap();
    let md = fs::metadata(&p).unwrap();
    assert_eq!(md.len(), (100 << 20) + 4);
    assert!(
        md.blocks() * 512 <= 128 * 1024,
        "a hole costs nothing: {} blocks",
        md.blocks()
    );
    let fd = f.as_raw_fd();
    // With the page cache the kernel answers SEEK_DATA/SEEK_HOLE itself
    // (it may hold dirty data zsfs has not seen, so zsfs never answers
    // there): all data, no hole, never past the tail. The exact answers are
    // zsfs's under cache=none, checked below.
    // SAFETY: fd is open for the duration of these calls.
    unsafe {
        assert!(libc::lseek(fd, 0, libc::SEEK_DATA) <= (100 << 20));
        assert!(libc::lseek(fd, 0, libc::SEEK_HOLE) >= (100 << 20) + 4);
        assert_eq!(libc::lseek(fd, (100 << 20) + 4, libc::SEEK_DATA), -1);
        assert_eq!(errno(), libc::ENXIO);
    }
    {
        let n = MountGuard::new("cache=none");
        let f = sparse_with_tail(&n.path().join("sparse"));
        let fd = f.as_raw_fd();
        // SAFETY: fd is open for the duration of these calls.
        unsafe {
            assert_eq!(
                libc::lseek(fd, 0, libc::SEEK_DATA),
                (100 << 20) / 4096 * 4096
            );
            assert_eq!(libc::lseek(fd, 0, libc::SEEK_HOLE), 0);
            assert_eq!(libc::lseek(fd, (100 << 20) + 4, libc::SEEK_DATA), -1);
            assert_eq!(errno(), libc::ENXIO);
        }
    }
    // Truncate down and up: the old tail reads as zeros.
    f.set_len(10).unwrap();
    f.set_len(100 << 20).unwrap();
    let mut buf = [1u8; 4];
    f.read_exact_at(&mut buf, (100 << 20) - 4).unwrap();
    assert_eq!(buf, [0; 4]);
    // fallocate: allocate, punch a hole, zero a range.
    let g = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(m.path().join("fa"))
        .unwrap();
    g.write_all_at(&vec![7u8; 65536], 0).unwrap();
    let gd = g.as_raw_fd();
    // SAFETY: gd is open.
    unsafe {
        assert_eq!(libc::fallocate(gd, 0, 65536, 65536), 0);
        assert_eq!(
            libc::fallocate(
                gd,
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                4096,
                8192
            ),
            0
        );
        assert_eq!(libc::fallocate(gd, libc::FALLOC_FL_ZERO_RANGE, 100, 10), 0);
        assert_eq!(
            libc::fallocate(gd, libc::FALLOC_FL_KEEP_SIZE, 1 << 20, 4096),
            0
        );
    }
    let got = fs::read(m.path().join("fa")).unwrap();
    assert_eq!(got.len(), 131072);
    assert!(got[..100].iter().all(|&b| b == 7));
    assert!(got[100..110].iter().all(|&b| b == 0));
    assert!(got[110..4096].iter().all(|&b| b == 7));
    assert!(got[4096..12288].iter().all(|&b| b == 0));
    assert!(got[12288..65536].iter().all(|&b| b == 7));
    assert!(got[65536..].iter().all(|&b| b == 0));
}

#[test]
fn xattrs() {
    let m = MountGuard::new("");
    let p = cstr(&m.path().join("x"));
    fs::write(m.path().join("x"), b"").unwrap();
    let name = CString::new("user.color").unwrap();
    // SAFETY: valid C strings and buffers with their true lengths.
    unsafe {
        assert_eq!(
            libc::setxattr(p.as_ptr(), name.as_ptr(), b"blue".as_ptr().cast(), 4, 0),
            0
        );
        let mut buf = [0u8; 16];
        let n = libc::getxattr(p.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), 16);
        assert_eq!(&buf[..n as usize], b"blue");
        assert_eq!(
            libc::getxattr(p.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), 2),
            -1
        );
        assert_eq!(errno(), libc::ERANGE);
        let other = CString::new("user.none").unwrap();
        assert_eq!(
            libc::getxattr(p.as_ptr(), other.as_ptr(), buf.as_mut_ptr().cast(), 16),
            -1
        );
        assert_eq!(errno(), libc::ENODATA);
        let n = libc::listxattr(p.as_ptr(), buf.as_mut_ptr().cast(), 16);
        assert_eq!(&buf[..n as usize], b"user.color\0");
        assert_eq!(libc::removexattr(p.as_ptr(), name.as_ptr()), 0);
        assert_eq!(libc::listxattr(p.as_ptr(), buf.as_mut_ptr().cast(), 16), 0);
    }
}

#[test]
fn limits_statfs_and_enospc() {
    limits("");
}

#[test]
fn limits_statfs_and_enospc_with_direct_io() {
    limits("cache=none");
}

fn limits(options: &str) {
    let direct = options.contains("cache=none");
    let m = MountGuard::new(&format!("size=8m,nr_inodes=20,{options}"));
    let r = m.path();
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let c = cstr(r);
    // SAFETY: valid path and out-pointer.
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    assert_eq!(st.f_blocks * st.f_frsize, 8 << 20);
    assert_eq!(st.f_bfree, st.f_blocks);
    assert_eq!(st.f_files, 20);
    // Write past size=: the writer gets ENOSPC (at write or at close) and
    // the bytes before the limit are kept.
    let data = noise(3, 12 << 20);
    let p = r.join("full");
    let res = (|| -> std::io::Result<()> {
        let mut f = File::create(&p)?;
        for chunk in data.chunks(1 << 20) {
            f.write_all(chunk)?;
        }
        f.sync_all()
    })();
    assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::ENOSPC));
    let kept = fs::read(&p).unwrap();
    assert!(kept.len() >= 7 << 20);
    if direct {
        // Writes reach zsfs in order: everything before the limit stays.
        assert!(
            kept[..7 << 20] == data[..7 << 20],
            "data before the limit changed"
        );
    } else {
        // The page cache writes back in no fixed order, so pages near the
        // limit may be the ones refused (they read as zeros); nothing else
        // is lost or changed.
        let good = kept.iter().zip(&data).filter(|(a, b)| a == b).count();
        assert!(
            kept.iter().zip(&data).all(|(a, b)| a == b || *a == 0),
            "garbage in the file"
        );
        assert!(good >= 7 << 20, "only {good} bytes kept");
    }
    // SAFETY: as above.
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    assert_eq!(st.f_bfree, 0);
    // Deleting gives the space back.
    fs::remove_file(&p).unwrap();
    assert!(wait_until(std::time::Duration::from_secs(5), || {
        // SAFETY: as above.
        unsafe { libc::statvfs(c.as_ptr(), &mut st) };
        st.f_bfree == st.f_blocks
    }));
    fs::write(&p, &data[..4 << 20]).unwrap();
    // nr_inodes: the root counts, the control file does not.
    let mut made = 0;
    let err = loop {
        match fs::write(r.join(format!("n{made}")), b"") {
            Ok(()) => made += 1,
            Err(e) => break e,
        }
        assert!(made < 100, "nr_inodes=20 not enforced");
    };
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
    assert_eq!(made, 20 - 2);
}

#[test]
fn control_file_is_reserved_and_counts() {
    let m = MountGuard::new("");
    let r = m.path();
    let ctl = r.join(".zsfs");
    let md = fs::metadata(&ctl).unwrap();
    assert_eq!(md.len(), 0);
    assert_eq!(
        fs::remove_file(&ctl).unwrap_err().raw_os_error(),
        Some(libc::EPERM)
    );
    assert_eq!(
        fs::rename(&ctl, r.join("x")).unwrap_err().raw_os_error(),
        Some(libc::EPERM)
    );
    assert_eq!(
        fs::hard_link(&ctl, r.join("x")).unwrap_err().raw_os_error(),
        Some(libc::EPERM)
    );
    assert_eq!(
        fs::set_permissions(&ctl, fs::Permissions::from_mode(0o666))
            .unwrap_err()
            .raw_os_error(),
        Some(libc::EPERM)
    );
    fs::write(r.join("zeros"), vec![0u8; 8 * 4096]).unwrap();
    fs::write(r.join("noise"), noise(9, 4 * 4096)).unwrap();
    assert_eq!(control_counter(r, "same_pages"), 8);
    assert_eq!(control_counter(r, "huge_pages"), 4);
    assert_eq!(control_counter(r, "orig_data_size"), 12 * 4096);
    assert_eq!(control_counter(r, "files"), 2);
    let mut f = OpenOptions::new().write(true).open(&ctl).unwrap();
    assert_eq!(
        f.write_all(b"no-such-command\n")
            .unwrap_err()
            .raw_os_error(),
        Some(libc::EINVAL)
    );
}

fn mmap_shared(options: &str) {
    let m = MountGuard::new(options);
    let p = m.path().join("mm");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&p)
        .unwrap();
    f.set_len(3 * 4096).unwrap();
    // SAFETY: a fresh shared mapping of an open file, unmapped below.
    unsafe {
        let addr = libc::mmap(
            std::ptr::null_mut(),
            3 * 4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        );
        assert_ne!(
            addr,
            libc::MAP_FAILED,
            "mmap: {}",
            std::io::Error::last_os_error()
        );
        let s = std::slice::from_raw_parts_mut(addr.cast::<u8>(), 3 * 4096);
        s[5000..5005].copy_from_slice(b"mmap!");
        assert_eq!(libc::msync(addr, 3 * 4096, libc::MS_SYNC), 0);
        libc::munmap(addr, 3 * 4096);
    }
    drop(f);
    let mut g = File::open(&p).unwrap();
    g.seek(SeekFrom::Start(5000)).unwrap();
    let mut b = [0u8; 5];
    g.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"mmap!");
}

#[test]
fn shared_mmap_writes_reach_the_file() {
    mmap_shared("");
}

#[test]
fn shared_mmap_works_with_cache_none() {
    mmap_shared("cache=none");
}

#[test]
fn o_direct_and_concurrent_writers() {
    let m = MountGuard::new("");
    let p = m.path().join("direct");
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(&p)
        .unwrap();
    // O_DIRECT wants aligned buffers.
    let layout = std::alloc::Layout::from_size_align(65536, 4096).unwrap();
    // SAFETY: the layout is non-zero; freed below.
    let buf = unsafe { std::alloc::alloc(layout) };
    // SAFETY: buf holds 65536 bytes.
    let s = unsafe { std::slice::from_raw_parts_mut(buf, 65536) };
    s.copy_from_slice(&noise(5, 65536));
    let want = s.to_vec();
    f.write_all(s).unwrap();
    s.fill(0);
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_exact(s).unwrap();
    assert!(s == want.as_slice());
    // SAFETY: allocated above with this layout.
    unsafe { std::alloc::dealloc(buf, layout) };
    // Writers on separate files and a reader of a file being written.
    let r = m.path().to_path_buf();
    std::thread::scope(|sc| {
        for t in 0..4u64 {
            let r = r.clone();
            sc.spawn(move || {
                let data = noise(t + 100, 2 << 20);
                let p = r.join(format!("w{t}"));
                let mut f = File::create(&p).unwrap();
                for c in data.chunks(4096 + 17 * t as usize) {
                    f.write_all(c).unwrap();
                }
                drop(f);
                assert!(
                    fs::read(&p).unwrap() == data,
                    "writer {t} reads back other data"
                );
            });
        }
        let r2 = r.clone();
        sc.spawn(move || {
            let p = r2.join("shared");
            let f = File::create(&p).unwrap();
            let rd = File::open(&p).unwrap();
            for i in 0..512u64 {
                let blk = [(i % 255) as u8 + 1; 4096];
                f.write_all_at(&blk, i * 4096).unwrap();
                let mut got = [0u8; 4096];
                rd.read_exact_at(&mut got, i * 4096).unwrap();
                assert_eq!(got, blk, "read of block {i} just written");
            }
        });
    });
}

/// A write by an unprivileged process drops setuid, and setgid on a
/// group-executable file, in both cache modes (the kernel does it for
/// page-cache writes, zsfs for direct I/O).
fn write_drops_setuid(options: &str) {
    if !is_root() {
        eprintln!("skipped: needs root to write as another user");
        return;
    }
    let m = MountGuard::new(&format!(
        "allow_other{}",
        if options.is_empty() {
            String::new()
        } else {
            format!(",{options}")
        }
    ));
    let p = m.path().join("suid");
    fs::write(&p, b"x").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o6777)).unwrap();
    let p2 = p.clone();
    std::thread::spawn(move || {
        // setfsuid/setfsgid change only this thread's filesystem identity.
        // SAFETY: plain syscalls on this thread's credentials.
        unsafe {
            libc::setfsgid(65534);
            libc::setfsuid(65534);
        }
        let f = OpenOptions::new().write(true).open(&p2).unwrap();
        f.write_all_at(b"y", 0).unwrap();
        f.sync_all().unwrap();
    })
    .join()
    .unwrap();
    assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o0777);
    // Root (CAP_FSETID) keeps the bits.
    fs::set_permissions(&p, fs::Permissions::from_mode(0o6777)).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .write_all_at(b"z", 0)
        .unwrap();
    assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o6777);
}

#[test]
fn write_drops_setuid_with_page_cache() {
    write_drops_setuid("");
}

#[test]
fn write_drops_setuid_with_direct_io() {
    write_drops_setuid("cache=none");
}

/// Run `script` under `sh -c` with the mount as $1; another process, so
/// nothing it does can reach our view of the file but the kernel's
/// invalidations (attributes are cached for a day, see the adapter's TTL).
fn sh(mnt: &Path, script: &str) {
    let st = std::process::Command::new("sh")
        .args(["-c", script, "sh"])
        .arg(mnt)
        .status()
        .unwrap();
    assert!(st.success(), "{script}: {st}");
}

fn stat_sees_other_processes(options: &str) {
    let m = MountGuard::new(options);
    let r = m.path();
    let p = r.join("f");
    fs::write(&p, b"12345").unwrap();
    let before = fs::metadata(&p).unwrap();
    assert_eq!(before.len(), 5);
    // Size, mtime and st_blocks after another process appended and closed.
    sh(r, "head -c 65536 /dev/urandom >> \"$1/f\"");
    let md = fs::metadata(&p).unwrap();
    assert_eq!(md.len(), 5 + 65536);
    assert!(md.modified().unwrap() >= before.modified().unwrap());
    assert!(md.blocks() >= 65536 / 512, "st_blocks {}", md.blocks());
    // mtime set by another process, then mode and a rename.
    sh(r, "touch -m -d @1000000000 \"$1/f\"");
    assert_eq!(fs::metadata(&p).unwrap().mtime(), 1_000_000_000);
    sh(r, "chmod 600 \"$1/f\"");
    assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o600);
    sh(r, "mv \"$1/f\" \"$1/g\"");
    assert_eq!(
        fs::metadata(&p).unwrap_err().raw_os_error(),
        Some(libc::ENOENT)
    );
    assert_eq!(fs::metadata(r.join("g")).unwrap().len(), 5 + 65536);
    // A name another process creates where we saw none (a cached negative
    // entry) and one it removes.
    assert!(fs::metadata(r.join("h")).is_err());
    sh(r, "echo hi > \"$1/h\" && rm \"$1/g\"");
    assert_eq!(fs::read(r.join("h")).unwrap(), b"hi\n");
    assert!(fs::metadata(r.join("g")).is_err());
    // atime moves when another process reads (relatime: atime <= mtime).
    let h = r.join("h");
    fs::File::open(&h)
        .unwrap()
        .set_times(
            fs::FileTimes::new()
                .set_accessed(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1000))
                .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(2000)),
        )
        .unwrap();
    assert_eq!(fs::metadata(&h).unwrap().atime(), 1000);
    sh(r, "cat \"$1/h\" > /dev/null");
    assert!(fs::metadata(&h).unwrap().atime() > 2000);
    // Link counts seen through another name.
    sh(r, "ln \"$1/h\" \"$1/h2\"");
    assert_eq!(fs::metadata(&h).unwrap().nlink(), 2);
    sh(r, "rm \"$1/h2\"");
    assert_eq!(fs::metadata(&h).unwrap().nlink(), 1);
}

#[test]
fn stat_sees_other_processes_with_page_cache() {
    stat_sees_other_processes("");
}

#[test]
fn stat_sees_other_processes_with_direct_io() {
    stat_sees_other_processes("cache=none");
}

/// FLUSH is refused (ENOSYS, see the adapter): close(2) must still report a
/// page-cache write the size limit refused, if write(2) did not already.
#[test]
fn close_reports_enospc_without_flush() {
    let m = MountGuard::new("size=4m");
    let p = cstr(&m.path().join("big"));
    // Once with FLUSH refused for good: the first close sends it.
    fs::write(m.path().join("small"), b"x").unwrap();
    // SAFETY: valid path; the fd is closed below.
    let fd = unsafe { libc::open(p.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o644) };
    assert!(fd >= 0);
    let data = noise(5, 1 << 20);
    let mut write_err = None;
    for _ in 0..8 {
        // SAFETY: fd is open; data is a valid buffer of that length.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n < 0 {
            write_err = Some(errno());
            break;
        }
    }
    // SAFETY: fd is open and closed only here.
    let closed = unsafe { libc::close(fd) };
    let close_err = (closed != 0).then(errno);
    assert!(
        write_err == Some(libc::ENOSPC) || close_err == Some(libc::ENOSPC),
        "write: {write_err:?}, close: {close_err:?}"
    );
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Directories are opened without OPENDIR, so the kernel caches their
/// listings (FOPEN_CACHE_DIR): every change, from any process, must show
/// in the next listing, and removing entries while reading the directory
/// (rm -rf) must still visit them all.
#[test]
fn directory_listings_follow_changes() {
    let m = MountGuard::new("");
    let d = m.path().join("d");
    fs::create_dir(&d).unwrap();
    assert!(names(&d).is_empty());
    fs::write(d.join("a"), b"").unwrap();
    assert_eq!(names(&d), ["a"]);
    assert_eq!(names(&d), ["a"]);
    sh(m.path(), "touch \"$1/d/b\" && mv \"$1/d/a\" \"$1/d/c\"");
    assert_eq!(names(&d), ["b", "c"]);
    fs::remove_file(d.join("b")).unwrap();
    assert_eq!(names(&d), ["c"]);
    // Enough entries for several READDIR(PLUS) replies.
    let many: Vec<String> = (0..3000).map(|i| format!("f{i:04}")).collect();
    for n in &many {
        fs::write(d.join(n), b"x").unwrap();
    }
    let mut want = many.clone();
    want.push("c".into());
    want.sort();
    assert_eq!(names(&d), want);
    // Unlink while reading, a batch at a time, as rm -rf does.
    let mut removed = 0;
    loop {
        let batch: Vec<_> = fs::read_dir(&d).unwrap().take(100).collect();
        if batch.is_empty() {
            break;
        }
        for e in batch {
            fs::remove_file(e.unwrap().path()).unwrap();
            removed += 1;
        }
    }
    assert_eq!(removed, 3001);
    sh(m.path(), "rm -rf \"$1/d\"");
    assert!(!d.exists());
    // fsync on a directory still succeeds (answered by the kernel).
    let root = File::open(m.path()).unwrap();
    root.sync_all().unwrap();
    root.sync_all().unwrap();
}

/// The mount's backing-device sysfs value `name` (bytes for max_bytes).
fn bdi_value(mnt: &Path, name: &str) -> u64 {
    let dev = fs::metadata(mnt).unwrap().dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let p = format!("/sys/class/bdi/{major}:{minor}/{name}");
    fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{p}: {e}"))
        .trim()
        .parse()
        .unwrap()
}

/// `max_bytes` reads back through a ratio of the kernel's dirty limit, so
/// it is within a fraction of a percent of what was written.
fn assert_about(got: u64, want: u64, what: &str) {
    let diff = got.abs_diff(want);
    assert!(
        diff <= want / 100,
        "{what}: bdi max_bytes {got}, expected about {want}"
    );
}

/// The kernel's global dirty threshold in bytes, read as the daemon reads it.
fn dirty_threshold() -> u64 {
    zsfs::sys::bdi::global_dirty_threshold().expect("nr_dirty_threshold in /proc/vmstat")
}

/// The window the daemon ends with when it asks for `max` while the
/// kernel's threshold is `t`: halved while the kernel refuses it.
fn accepted(mut max: u64, t: u64) -> u64 {
    while max > t {
        max /= 2;
    }
    max
}

/// Mount with `opts`, touch a file, and check the bdi's `max_bytes` against
/// `want(threshold)`. The threshold moves with free memory, so it is read
/// before and after the mount and either value's window is accepted.
fn assert_window(opts: &str, want: impl Fn(u64) -> u64) {
    let before = dirty_threshold();
    let m = MountGuard::new(opts);
    File::create(m.path().join("a")).unwrap();
    let after = dirty_threshold();
    let got = bdi_value(m.path(), "max_bytes");
    let (lo, hi) = (want(before.min(after)), want(before.max(after)));
    assert!(
        got.abs_diff(lo) <= lo / 100 || got.abs_diff(hi) <= hi / 100,
        "{opts}: bdi max_bytes {got}, expected about {lo} or {hi}"
    );
}

#[test]
fn default_dirty_window_is_the_kernels_limit_and_a_larger_one_is_clamped() {
    if !is_root() {
        eprintln!("skipped: needs root to write the bdi's sysfs");
        return;
    }
    // Default: the largest power of two within the kernel's own dirty
    // threshold, what ext4 on zram may keep dirty (at least 1 GiB).
    assert_window("size=64g", |t| {
        accepted(zsfs::config::default_max_dirty(Some(t)), t)
    });
    // A max_dirty= above the kernel's threshold is clamped to what it
    // accepts, not dropped for FUSE's 1 % default.
    assert_window("size=64g,max_dirty=1t", |t| accepted(1 << 40, t));
}

#[test]
fn dirty_window_is_max_dirty_capped_at_half_the_free_space() {
    if !is_root() {
        eprintln!("skipped: needs root to write the bdi's sysfs");
        return;
    }
    // Plenty of space: the configured window.
    let m = MountGuard::new("size=16g,max_dirty=256m");
    File::create(m.path().join("a")).unwrap();
    assert_about(bdi_value(m.path(), "max_bytes"), 256 << 20, "size=16g");
    assert_eq!(bdi_value(m.path(), "strict_limit"), 1);
    drop(m);

    // 64 MiB free: half is 32 MiB. After 40 MiB are stored, 24 MiB are
    // free and the window steps down to 8 MiB (a power of two <= 12 MiB),
    // so a writer cannot run far past size= before ENOSPC reaches it.
    let m = MountGuard::new("size=64m");
    let p = m.path().join("b");
    let mut f = File::create(&p).unwrap();
    assert_about(bdi_value(m.path(), "max_bytes"), 32 << 20, "64 MiB free");
    f.write_all(&noise(5, 40 << 20)).unwrap();
    f.sync_all().unwrap();
    drop(f);
    File::open(&p).unwrap();
    assert_about(bdi_value(m.path(), "max_bytes"), 8 << 20, "24 MiB free");
    drop(m);

    // max_dirty=kernel: the kernel's FUSE default is left alone. What a
    // write of max_bytes would change is the bdi's configured ratio
    // (max_ratio_fine, FUSE's 1 %); max_bytes itself is that ratio of a
    // dirty limit the kernel recomputes as free memory moves, so it can
    // drift by a few hundred bytes between two reads.
    let m = MountGuard::new("size=16g,max_dirty=kernel");
    let ratio = bdi_value(m.path(), "max_ratio_fine");
    let before = bdi_value(m.path(), "max_bytes");
    File::create(m.path().join("c")).unwrap();
    fs::write(m.path().join("c"), b"x").unwrap();
    assert_eq!(bdi_value(m.path(), "max_ratio_fine"), ratio);
    assert_about(bdi_value(m.path(), "max_bytes"), before, "max_dirty=kernel");
}
