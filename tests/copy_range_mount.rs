//! copy_file_range(2) through the kernel: between two files and within
//! one, aligned (shared blocks) and not (the write path), with the kernel's
//! page cache in play (`cache=auto`) and without it (`cache=none`). A 64 MiB
//! aligned copy must add no compressed data and no pool memory (the control
//! file's counters), and the daemon must answer the request itself: no
//! "not implemented" warning, which would mean the kernel fell back to a
//! splice copy. (The counters alone would not tell: a splice copy writes
//! identical blocks, which dedup also shares after comparing each one. So
//! the log is checked too, and the dedup counters must move at the copy.)

mod common;
use common::data::{half_compressible, Rng};
use common::*;

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

const MIB: usize = 1 << 20;

/// copy_file_range until `len` bytes are copied or the source ends;
/// returns the bytes copied, or the errno of a failing call.
fn copy(src: &File, off_in: u64, dst: &File, off_out: u64, len: usize) -> Result<usize, i32> {
    let (mut oi, mut oo) = (off_in as i64, off_out as i64);
    let mut done = 0;
    while done < len {
        // SAFETY: valid descriptors and offset pointers for the call.
        let n = unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                &mut oi,
                dst.as_raw_fd(),
                &mut oo,
                len - done,
                0,
            )
        };
        match n {
            n if n < 0 => return Err(std::io::Error::last_os_error().raw_os_error().unwrap()),
            0 => break,
            n => done += n as usize,
        }
    }
    Ok(done)
}

fn create(path: &Path, bytes: &[u8], sync: bool) -> File {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap();
    f.write_all_at(bytes, 0).unwrap();
    if sync {
        f.sync_all().unwrap();
    }
    f
}

fn read_all(f: &File) -> Vec<u8> {
    let len = f.metadata().unwrap().len() as usize;
    let mut v = vec![0u8; len];
    f.read_exact_at(&mut v, 0).unwrap();
    v
}

fn copy_file_range_on(options: &str) {
    let m = MountGuard::new(options);
    let mnt = m.path();
    let mut rng = Rng::new(0xC0FF);

    // A 64 MiB aligned copy shares every block.
    let data = half_compressible(&mut rng, 64 * MIB);
    let src = create(&mnt.join("src"), &data, true);
    let dst = create(&mnt.join("dst"), &[], false);
    let before = counters(mnt);
    assert_eq!(copy(&src, 0, &dst, 0, data.len()), Ok(data.len()));
    let after = counters(mnt);
    eprintln!(
        "zsfs -o '{options}': 64 MiB copy: compr_data_size {} -> {}, mem_used_total {} -> {}, orig_data_size {} -> {}, dedup_pages {} -> {}",
        get(&before, "compr_data_size"),
        get(&after, "compr_data_size"),
        get(&before, "mem_used_total"),
        get(&after, "mem_used_total"),
        get(&before, "orig_data_size"),
        get(&after, "orig_data_size"),
        get(&before, "dedup_pages"),
        get(&after, "dedup_pages"),
    );
    let slack = 256 << 10;
    assert!(
        get(&after, "compr_data_size") <= get(&before, "compr_data_size") + slack,
        "the copy compressed data: {before:?} -> {after:?}"
    );
    assert!(
        get(&after, "mem_used_total") <= get(&before, "mem_used_total") + slack,
        "the copy took pool memory: {before:?} -> {after:?}"
    );
    assert_eq!(
        get(&after, "orig_data_size"),
        get(&before, "orig_data_size") + data.len() as u64,
        "the copy's blocks are counted"
    );
    assert!(
        get(&after, "dedup_pages") >= get(&before, "dedup_pages") + (data.len() / 4096) as u64,
        "every copied block is a shared reference: {before:?} -> {after:?}"
    );
    assert!(read_all(&dst) == data, "64 MiB copy differs");
    drop((src, dst));
    std::fs::remove_file(mnt.join("src")).unwrap();
    assert!(
        read_all(&File::open(mnt.join("dst")).unwrap()) == data,
        "copy lost with its source"
    );
    std::fs::remove_file(mnt.join("dst")).unwrap();

    // Between two files, misaligned, from data never fsynced (under the
    // writeback cache the kernel must write it back first), into a file
    // whose old content sits in the page cache (which it must drop).
    let fresh = half_compressible(&mut rng, 3 * MIB + 12345);
    let a = create(&mnt.join("a"), &fresh, false);
    let old = vec![0x5au8; 2 * MIB];
    let b = create(&mnt.join("b"), &old, false);
    assert!(read_all(&b) == old);
    let mut want = old.clone();
    let n = copy(&a, 1000, &b, 5, MIB + 3).unwrap();
    assert_eq!(n, MIB + 3);
    want[5..5 + n].copy_from_slice(&fresh[1000..1000 + n]);
    assert!(read_all(&b) == want, "misaligned copy differs");
    // Same place in the block, short at the source's end.
    let n = copy(&a, 4096 + 7, &b, 8192 + 7, 4 * MIB).unwrap();
    assert_eq!(n, fresh.len() - 4096 - 7);
    want.resize(8192 + 7 + n, 0);
    want[8192 + 7..].copy_from_slice(&fresh[4096 + 7..]);
    assert!(
        read_all(&b) == want,
        "aligned copy to the source's end differs"
    );

    // Within one file: aligned, unaligned, and overlapping (which the VFS
    // refuses for one file before it reaches us).
    let mut one = fresh.clone();
    assert_eq!(copy(&a, 0, &a, 2 * MIB as u64, MIB), Ok(MIB));
    one.copy_within(0..MIB, 2 * MIB);
    assert_eq!(copy(&a, 100, &a, MIB as u64 + 37, 300_000), Ok(300_000));
    one.copy_within(100..300_100, MIB + 37);
    assert!(read_all(&a) == one, "copy within one file differs");
    assert_eq!(copy(&a, 0, &a, 4096, 8192), Err(libc::EINVAL));
    drop((a, b));
    // Nothing cached may hide a wrong answer: read through a fresh open
    // after dropping the kernel's caches (root only; the reads above went
    // through the page cache the copies had to invalidate).
    if is_root() {
        drop_caches();
    }
    assert!(read_all(&File::open(mnt.join("a")).unwrap()) == one);
    assert!(read_all(&File::open(mnt.join("b")).unwrap()) == want);

    let log = m.log();
    assert!(
        !log.contains("copy_file_range") && !log.contains("Not Implemented"),
        "the daemon did not serve copy_file_range:\n{log}"
    );
    m.unmount_clean();
}

#[test]
fn copy_file_range_shares_blocks_default_options() {
    let _heavy = heavy_lock();
    copy_file_range_on("");
}

#[test]
fn copy_file_range_shares_blocks_cache_none() {
    let _heavy = heavy_lock();
    copy_file_range_on("cache=none");
}
