//! Unit tests of `Fs::copy_range` (copy_file_range) against byte models:
//! block sharing, the read+write fallback, holes, end of file, overlap,
//! space accounting, and the store's and pool's invariants afterwards.

use super::*;
use crate::test_data::noise;
use std::sync::atomic::Ordering;

const ME: Caller = Caller {
    uid: 1000,
    gid: 1000,
};

fn fs_with(block_size: u32, size: u64, dedup: bool) -> Fs {
    crate::mount::new_fs(&Config {
        size,
        nr_inodes: 1000,
        block_size,
        dedup,
        ..Config::default()
    })
}

/// A filesystem of 4 KiB blocks and `size` bytes with two empty files,
/// `a` and `b`, in its root.
fn two_files(size: u64, dedup: bool) -> (Fs, Ino, Ino) {
    let fs = fs_with(4096, size, dedup);
    let (a, b) = (mkfile(&fs, b"a"), mkfile(&fs, b"b"));
    (fs, a, b)
}

fn mkfile(fs: &Fs, name: &[u8]) -> Ino {
    fs.mknod(ROOT_INO, name, libc::S_IFREG | 0o644, 0o022, 0, ME)
        .unwrap()
        .ino
}

/// Compressible bytes that differ per block (so dedup does not merge the
/// source's own blocks): text with the seed and offset in it.
fn text(seed: u64, off: u64, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 64);
    let mut pos = off / 64 * 64;
    while v.len() < len + (off - off / 64 * 64) as usize {
        v.extend(format!("{seed:08x} at {pos:016x}: compressible text ....... ").bytes());
        v.truncate(((pos + 64) - off / 64 * 64) as usize);
        pos += 64;
    }
    v.drain(..(off - off / 64 * 64) as usize);
    v.truncate(len);
    v
}

fn whole(fs: &Fs, ino: Ino) -> Vec<u8> {
    let size = fs.getattr(ino).unwrap().size;
    fs.read(ino, 0, size as usize).unwrap()
}

fn model_copy(
    m: &mut [Vec<u8>],
    from: usize,
    off_in: u64,
    to: usize,
    off_out: u64,
    len: u64,
) -> u64 {
    let avail = (m[from].len() as u64).saturating_sub(off_in).min(len);
    if avail == 0 {
        return 0;
    }
    let bytes = m[from][off_in as usize..][..avail as usize].to_vec();
    let end = (off_out + avail) as usize;
    if m[to].len() < end {
        m[to].resize(end, 0);
    }
    m[to][off_out as usize..end].copy_from_slice(&bytes);
    avail
}

#[test]
fn aligned_copy_shares_objects_and_costs_no_pool_memory() {
    let (fs, a, b) = two_files(1 << 30, true);
    let mut data = text(1, 0, 60 * 4096);
    data.extend(noise(2, 4 * 4096)); // raw blocks too
    fs.write(a, 0, &data).unwrap();
    fs.flush(a).unwrap();
    let before = (fs.store.pool_stats(), fs.store.stats(), fs.statfs().bfree);
    assert_eq!(
        fs.copy_range(a, 0, b, 8192, data.len() as u64, None)
            .unwrap()
            .0,
        data.len() as u64
    );
    let (ps, st) = (fs.store.pool_stats(), fs.store.stats());
    assert_eq!(ps.objects, before.0.objects, "no new object");
    assert_eq!(ps.bytes_stored, before.0.bytes_stored);
    assert_eq!(st.compr_data_size, before.1.compr_data_size);
    assert_eq!(st.dedup_pages, before.1.dedup_pages + 64);
    // Space counts each file block, shared or not.
    assert_eq!(fs.statfs().bfree, before.2 - 64);
    assert_eq!(&fs.read(b, 8192, data.len()).unwrap(), &data);
    assert_eq!(fs.read(b, 0, 8192).unwrap(), vec![0; 8192]);
    assert_eq!(
        fs.getattr(b).unwrap().blocks,
        64 * 8,
        "the first two blocks stay holes"
    );
    fs.store.debug_check_quiescent();
    // Overwriting or deleting the source leaves the copy alone.
    fs.write(a, 0, &[9u8; 3 * 4096]).unwrap();
    fs.unlink(ROOT_INO, b"a").unwrap();
    fs.forget(a, 1);
    assert_eq!(&fs.read(b, 8192, data.len()).unwrap(), &data);
    fs.store.debug_check_quiescent();
    assert_eq!(fs.store.stats().dedup_pages, 0);
}

#[test]
fn unaligned_and_misaligned_copies_go_through_writes() {
    for dedup in [true, false] {
        let (fs, a, b) = two_files(1 << 30, dedup);
        let data = text(3, 0, 10 * 4096 + 123);
        fs.write(a, 0, &data).unwrap();
        let mut m = vec![data.clone(), Vec::new()];
        // Same place in the block: head and tail written, middle shared.
        let n = fs.copy_range(a, 100, b, 4196, 9 * 4096, None).unwrap().0;
        assert_eq!(n, model_copy(&mut m, 0, 100, 1, 4196, 9 * 4096));
        assert_eq!(whole(&fs, b), m[1]);
        // Misaligned: every byte through the write path.
        let n = fs.copy_range(a, 5, b, 3, 40_000, None).unwrap().0;
        assert_eq!(n, model_copy(&mut m, 0, 5, 1, 3, 40_000));
        assert_eq!(whole(&fs, b), m[1]);
        // Past the source's end: short, then nothing.
        let n = fs
            .copy_range(a, 40_000, b, 90_000, 1 << 20, None)
            .unwrap()
            .0;
        assert_eq!(n, data.len() as u64 - 40_000);
        model_copy(&mut m, 0, 40_000, 1, 90_000, 1 << 20);
        assert_eq!(
            fs.copy_range(a, data.len() as u64, b, 0, 10, None)
                .unwrap()
                .0,
            0
        );
        assert_eq!(fs.copy_range(a, 1 << 40, b, 0, 10, None).unwrap().0, 0);
        assert_eq!(whole(&fs, b), m[1]);
        fs.store.debug_check_quiescent();
    }
}

#[test]
fn holes_copy_as_holes_and_replace_data() {
    let (fs, a, b) = two_files(1 << 30, true);
    fs.write(a, 0, &text(4, 0, 4096)).unwrap();
    fs.write(a, 5 * 4096, &text(4, 5 * 4096, 4096)).unwrap();
    fs.write(b, 0, &text(5, 0, 8 * 4096)).unwrap();
    fs.flush(b).unwrap();
    // b's block 7 sits in its write buffer when the hole lands on it.
    fs.write(b, 7 * 4096 + 10, b"buffered").unwrap();
    let used = fs.statfs().bfree;
    assert_eq!(
        fs.copy_range(a, 0, b, 2 * 4096, 6 * 4096, None).unwrap().0,
        6 * 4096
    );
    let mut want = text(5, 0, 2 * 4096);
    want.extend(text(4, 0, 4096));
    want.extend(vec![0; 4 * 4096]);
    want.extend(text(4, 5 * 4096, 4096));
    assert_eq!(whole(&fs, b), want);
    // Four of b's blocks became holes.
    assert_eq!(fs.statfs().bfree, used + 4);
    assert_eq!(fs.getattr(b).unwrap().blocks, 4 * 8);
    assert_eq!(fs.seek(b, 3 * 4096, true).unwrap(), 7 * 4096);
    assert_eq!(fs.space.buffers.load(Ordering::Relaxed), 0);
    fs.store.debug_check_quiescent();
}

#[test]
fn overlapping_copy_in_one_file_is_a_memmove() {
    for (off_in, off_out, len) in [
        (0u64, 4096u64, 12 * 4096u64),
        (4096, 0, 12 * 4096),
        (100, 8292, 20 * 4096),
        (8292, 100, 20 * 4096),
        (7, 1000, 50_000),
        (1000, 7, 50_000),
    ] {
        let fs = fs_with(4096, 1 << 30, true);
        let a = mkfile(&fs, b"a");
        let data = text(6, 0, 16 * 4096 + 77);
        fs.write(a, 0, &data).unwrap();
        let mut m = vec![data];
        let n = fs.copy_range(a, off_in, a, off_out, len, None).unwrap().0;
        assert_eq!(
            n,
            model_copy(&mut m, 0, off_in, 0, off_out, len),
            "{off_in} -> {off_out}"
        );
        assert_eq!(whole(&fs, a), m[0], "{off_in} -> {off_out}");
        fs.store.debug_check_quiescent();
    }
}

#[test]
fn copy_stops_at_the_space_limit_and_keeps_what_fit() {
    // 40 blocks of space: a 30-block source leaves 10 for the copy.
    let (fs, a, b) = two_files(40 * 4096, true);
    let data = text(7, 0, 30 * 4096);
    fs.write(a, 0, &data).unwrap();
    let n = fs
        .copy_range(a, 0, b, 0, data.len() as u64, None)
        .unwrap()
        .0;
    assert_eq!(n, 10 * 4096);
    assert_eq!(whole(&fs, b), &data[..n as usize]);
    assert_eq!(fs.statfs().bfree, 0);
    assert_eq!(
        fs.copy_range(a, 0, b, n, 4096, None).unwrap_err().0,
        libc::ENOSPC
    );
    // Over blocks b already has, a copy needs no space.
    assert_eq!(
        fs.copy_range(a, 4096, b, 0, 8 * 4096, None).unwrap().0,
        8 * 4096
    );
    assert_eq!(fs.read(b, 0, 8 * 4096).unwrap(), &data[4096..9 * 4096]);
    fs.store.debug_check_quiescent();
}

#[test]
fn copy_by_an_unprivileged_caller_drops_setuid_and_stamps_times() {
    let (fs, a, b) = two_files(1 << 30, true);
    fs.write(a, 0, &text(8, 0, 8192)).unwrap();
    fs.setattr(
        b,
        &SetAttr {
            mode: Some(0o6755),
            mtime: Some(TimeSet::At(SystemTime::UNIX_EPOCH)),
            ..Default::default()
        },
    )
    .unwrap();
    let who = Killer {
        pid: std::process::id(),
        gid: 12345,
        privileged: false,
    };
    let (n, killed) = fs.copy_range(a, 0, b, 0, 8192, Some(who)).unwrap();
    assert_eq!((n, killed), (8192, true));
    let attr = fs.getattr(b).unwrap();
    assert_eq!(attr.perm, 0o755);
    assert!(attr.mtime > SystemTime::UNIX_EPOCH);
    // Root keeps the bits.
    fs.setattr(
        b,
        &SetAttr {
            mode: Some(0o6755),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(!fs.copy_range(a, 0, b, 0, 8192, None).unwrap().1);
    assert_eq!(fs.getattr(b).unwrap().perm, 0o6755);
    assert_eq!(
        fs.copy_range(a, 0, ROOT_INO, 0, 1, None).unwrap_err().0,
        libc::EISDIR
    );
    assert_eq!(
        fs.copy_range(CONTROL_INO, 0, b, 0, 1, None).unwrap_err().0,
        libc::EOPNOTSUPP
    );
}

/// Random writes, copies (aligned, unaligned, within one file and
/// overlapping), punches and truncates on three files against byte models,
/// for several block sizes, checking everything after each step.
#[test]
fn random_copies_match_a_model() {
    for bs in [4096u32, 16384, 131072] {
        let fs = fs_with(bs, 1 << 30, true);
        let inos: Vec<Ino> = (0..3)
            .map(|i| mkfile(&fs, format!("f{i}").as_bytes()))
            .collect();
        let mut m: Vec<Vec<u8>> = vec![Vec::new(); 3];
        let mut x = 0x2545F4914F6CDD1Du64 ^ u64::from(bs);
        let mut rnd = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let bsz = u64::from(bs);
        let span = 12 * bsz;
        let mut most_shared = 0;
        for step in 0..300 {
            let f = rnd(3) as usize;
            // Offsets: half block-aligned, half anywhere.
            let off = |r: &mut dyn FnMut(u64) -> u64| {
                if r(2) == 0 {
                    r(12) * bsz
                } else {
                    r(span)
                }
            };
            match rnd(10) {
                0..=2 => {
                    let o = off(&mut rnd);
                    let len = rnd(3 * bsz) as usize + 1;
                    let data = if rnd(4) == 0 {
                        noise(step, len)
                    } else {
                        text(step, o, len)
                    };
                    fs.write(inos[f], o, &data).unwrap();
                    if m[f].len() < o as usize + len {
                        m[f].resize(o as usize + len, 0);
                    }
                    m[f][o as usize..][..len].copy_from_slice(&data);
                }
                3..=7 => {
                    let g = rnd(3) as usize;
                    let (oi, oo) = (off(&mut rnd), off(&mut rnd));
                    let len = if rnd(2) == 0 {
                        rnd(6) * bsz
                    } else {
                        rnd(6 * bsz)
                    };
                    let n = fs
                        .copy_range(inos[f], oi, inos[g], oo, len, None)
                        .unwrap()
                        .0;
                    assert_eq!(n, model_copy(&mut m, f, oi, g, oo, len), "step {step}");
                    most_shared = most_shared.max(fs.store.stats().dedup_pages);
                }
                8 => {
                    let o = off(&mut rnd);
                    let len = rnd(4 * bsz) + 1;
                    fs.fallocate(inos[f], o, len, Fallocate::PunchHole).unwrap();
                    let end = (o + len).min(m[f].len() as u64);
                    if o < end {
                        m[f][o as usize..end as usize].fill(0);
                    }
                }
                _ => {
                    let size = rnd(span);
                    fs.setattr(
                        inos[f],
                        &SetAttr {
                            size: Some(size),
                            ..Default::default()
                        },
                    )
                    .unwrap();
                    m[f].resize(size as usize, 0);
                }
            }
            for (i, &ino) in inos.iter().enumerate() {
                assert_eq!(whole(&fs, ino), m[i], "bs {bs} step {step} file {i}");
            }
            fs.store.debug_check_quiescent();
        }
        let used: u64 = inos
            .iter()
            .map(|&i| fs.getattr(i).unwrap().blocks / (bsz / 512))
            .sum();
        assert_eq!(
            fs.space.used.load(Ordering::Relaxed),
            used,
            "bs {bs}: space counts file blocks"
        );
        assert!(most_shared > 0, "bs {bs}: some copies shared");
    }
}
