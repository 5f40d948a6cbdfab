//! copy_file_range in the fs core (`Fs::copy_range`, no mount) under
//! concurrency: copiers share blocks between files while writers overwrite
//! and punch them, readers read them, and the pool sits at a tiny limit with
//! a backing file, so the shrinker writes shared objects back and reads them
//! in again meanwhile, and a churn thread compacts and checks the pool.
//!
//! Two kinds of files:
//! * Owned files: each of two copier threads has its own pair and copies
//!   into them from a read-only common file and between them (any offsets,
//!   overlapping ranges of one file too), with writes, punches and
//!   truncates between; its byte model is exact at every step.
//! * Raced files: a writer, a copier and a reader work on the same files at
//!   once. The data describes itself in 64-byte cells
//!   (`[version][offset][payload]`) and copies there keep each cell at its
//!   offset, so every read can be checked without knowing the
//!   interleaving: each cell is zero or one whole cell written at that
//!   offset.
//!
//! At the end every byte of every file is compared with its model, a last
//! copy of a raced file must equal it exactly, space accounting must match
//! the files' blocks, and deleting everything must free every object.
//!
//! `ZSFS_STRESS_SECS=60 cargo test --release --test fs_copy_range` runs longer.

mod common;
use common::cells::{cells, check, CELL};
use common::data::{noise, Rng};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use zsfs::config::{Backing, Config, PoolLimit};
use zsfs::fs::{Caller, Fallocate, Fs, Ino, SetAttr, ROOT_INO};

const ME: Caller = Caller { uid: 0, gid: 0 };
const BS: u64 = 4096;
const BLOCKS: u64 = 512;
/// Each file's span: 2 MiB, eight times the pool limit.
const SPAN: u64 = BLOCKS * BS;

/// A random cell-aligned range in the span, half of them block-aligned.
fn cell_range(rng: &mut Rng, max_blocks: u64) -> (u64, u64) {
    if rng.below(2) == 0 {
        let b = rng.below(BLOCKS);
        (b * BS, (1 + rng.below(max_blocks)).min(BLOCKS - b) * BS)
    } else {
        let off = rng.below(SPAN / CELL) * CELL;
        let len = (1 + rng.below(max_blocks * BS / CELL)) * CELL;
        (off, len.min(SPAN - off))
    }
}

fn mkfile(fs: &Fs, name: &str) -> Ino {
    fs.mknod(ROOT_INO, name.as_bytes(), libc::S_IFREG | 0o644, 0, 0, ME)
        .unwrap()
        .ino
}

fn whole(fs: &Fs, ino: Ino) -> Vec<u8> {
    let size = fs.getattr(ino).unwrap().size;
    fs.read(ino, 0, size as usize).unwrap()
}

/// The model of `copy_range`: memmove semantics, short at the source's end.
fn model_copy(src: &[u8], off_in: u64, dst: &mut Vec<u8>, off_out: u64, len: u64) -> u64 {
    let n = (src.len() as u64).saturating_sub(off_in).min(len);
    if n == 0 {
        return 0;
    }
    let bytes = src[off_in as usize..][..n as usize].to_vec();
    let end = (off_out + n) as usize;
    if dst.len() < end {
        dst.resize(end, 0);
    }
    dst[off_out as usize..end].copy_from_slice(&bytes);
    n
}

/// An offset for an owned-file operation: block-aligned half the time (so
/// copies share), anywhere otherwise.
fn any_off(rng: &mut Rng) -> u64 {
    if rng.below(2) == 0 {
        rng.below(BLOCKS) * BS
    } else {
        rng.below(SPAN)
    }
}

/// One owner thread: exact models of its two files, checked as it goes.
fn owner(
    fs: &Fs,
    t: u64,
    common: Ino,
    common_model: &[u8],
    stop: &AtomicBool,
    shared: &AtomicU64,
) -> u64 {
    let inos = [
        mkfile(fs, &format!("own{t}a")),
        mkfile(fs, &format!("own{t}b")),
    ];
    let mut m: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut rng = Rng::new(0x5EED + t * 104729);
    let mut steps = 0u64;
    while !stop.load(Ordering::Relaxed) {
        steps += 1;
        let f = rng.below(2) as usize;
        let (lo, hi) = match rng.below(10) {
            0 | 1 => {
                let off = any_off(&mut rng);
                let len = (1 + rng.below(40 * BS)).min(SPAN - off.min(SPAN - 1));
                let data = if rng.below(4) == 0 {
                    noise(rng.next(), len as usize)
                } else {
                    let base = off / CELL * CELL;
                    let c = cells(
                        t << 40 | steps,
                        base,
                        (off + len).div_ceil(CELL) * CELL - base,
                    );
                    c[(off - base) as usize..][..len as usize].to_vec()
                };
                assert_eq!(fs.write(inos[f], off, &data).unwrap(), data.len());
                let end = (off + len) as usize;
                if m[f].len() < end {
                    m[f].resize(end, 0);
                }
                m[f][off as usize..end].copy_from_slice(&data);
                (off, off + len)
            }
            2..=4 => {
                // From the common file, which nobody writes.
                let (oi, oo) = (any_off(&mut rng), any_off(&mut rng));
                let len = rng.below(64) * BS + rng.below(2) * rng.below(BS);
                let (n, _) = fs.copy_range(common, oi, inos[f], oo, len, None).unwrap();
                assert_eq!(
                    n,
                    model_copy(common_model, oi, &mut m[f], oo, len),
                    "thread {t} step {steps}"
                );
                (oo, oo + n)
            }
            5..=7 => {
                // Between the pair, or within one file (overlaps included).
                let g = rng.below(2) as usize;
                let (oi, oo) = (any_off(&mut rng), any_off(&mut rng));
                let len = rng.below(64) * BS + rng.below(2) * rng.below(BS);
                let (n, _) = fs.copy_range(inos[f], oi, inos[g], oo, len, None).unwrap();
                let src = m[f].clone();
                assert_eq!(
                    n,
                    model_copy(&src, oi, &mut m[g], oo, len),
                    "thread {t} step {steps}"
                );
                shared.fetch_max(fs.store().stats().dedup_pages, Ordering::Relaxed);
                let (lo, hi) = (oo, oo + n);
                if g != f && n > 0 {
                    let got = fs.read(inos[g], lo, (hi - lo) as usize).unwrap();
                    assert!(
                        got == m[g][lo as usize..hi as usize],
                        "thread {t} step {steps}: copy differs"
                    );
                    continue;
                }
                (lo, hi)
            }
            8 => {
                let off = any_off(&mut rng);
                let len = 1 + rng.below(16 * BS);
                fs.fallocate(inos[f], off, len, Fallocate::PunchHole)
                    .unwrap();
                let end = (off + len).min(m[f].len() as u64);
                if off < end {
                    m[f][off as usize..end as usize].fill(0);
                }
                (off, end.max(off))
            }
            _ => {
                let size = rng.below(SPAN);
                let set = SetAttr {
                    size: Some(size),
                    ..SetAttr::default()
                };
                fs.setattr(inos[f], &set).unwrap();
                m[f].resize(size as usize, 0);
                (size.saturating_sub(BS), size)
            }
        };
        let hi = hi.min(m[f].len() as u64);
        if lo < hi {
            let got = fs.read(inos[f], lo, (hi - lo) as usize).unwrap();
            assert!(
                got == m[f][lo as usize..hi as usize],
                "thread {t} step {steps}: range differs"
            );
        }
        if steps % 64 == 0 {
            for i in 0..2 {
                assert!(
                    whole(fs, inos[i]) == m[i],
                    "thread {t} step {steps}: file {i} differs"
                );
            }
        }
    }
    for i in 0..2 {
        assert!(
            whole(fs, inos[i]) == m[i],
            "thread {t} at the end: file {i} differs"
        );
    }
    steps
}

#[test]
fn copiers_writers_and_readers_with_writeback() {
    let _heavy = common::heavy_lock();
    let dir = tempfile::tempdir().unwrap();
    let fs = zsfs::mount::new_fs(&Config {
        size: 1 << 30,
        pool_limit: Some(PoolLimit::Bytes(256 << 10)),
        backing: Backing::Path(dir.path().join("backing")),
        ..Config::default()
    });
    let common = mkfile(&fs, "common");
    let common_model = cells(1, 0, SPAN);
    fs.write(common, 0, &common_model).unwrap();
    let raced = [mkfile(&fs, "raced"), mkfile(&fs, "raced2")];
    fs.write(raced[0], 0, &cells(2, 0, SPAN)).unwrap();

    let secs = common::stress_secs(4);
    let stop = AtomicBool::new(false);
    let shared = AtomicU64::new(0);
    let start = Instant::now();
    let (fs_, stop_, shared_, cm) = (&fs, &stop, &shared, &common_model[..]);
    let owner_steps = std::thread::scope(|s| {
        let owners: Vec<_> = (0..2)
            .map(|t| s.spawn(move || owner(fs_, t, common, cm, stop_, shared_)))
            .collect();
        // Writer of the raced files.
        s.spawn(move || {
            let mut rng = Rng::new(0xA11CE);
            let mut v = 16u64;
            while !stop_.load(Ordering::Relaxed) {
                v += 1;
                let f = raced[rng.below(2) as usize];
                let (off, len) = cell_range(&mut rng, 48);
                if rng.below(8) == 0 {
                    fs_.fallocate(f, off, len, Fallocate::PunchHole).unwrap();
                } else {
                    assert_eq!(fs_.write(f, off, &cells(v, off, len)).unwrap() as u64, len);
                }
            }
        });
        // Copier of the raced files: each cell stays at its offset.
        s.spawn(move || {
            let mut rng = Rng::new(0xC0DE);
            while !stop_.load(Ordering::Relaxed) {
                let (off, len) = cell_range(&mut rng, 64);
                let (from, to) = match rng.below(3) {
                    0 => (common, raced[0]),
                    1 => (raced[0], raced[1]),
                    _ => (raced[1], raced[0]),
                };
                fs_.copy_range(from, off, to, off, len, None).unwrap();
                shared_.fetch_max(fs_.store().stats().dedup_pages, Ordering::Relaxed);
            }
        });
        // Reader of everything shared.
        s.spawn(move || {
            let mut rng = Rng::new(0xBEAD);
            while !stop_.load(Ordering::Relaxed) {
                let (off, len) = cell_range(&mut rng, 64);
                for f in raced {
                    check(&fs_.read(f, off, len as usize).unwrap(), off, "raced read");
                }
                let got = fs_.read(common, off, len as usize).unwrap();
                assert!(
                    got == cm[off as usize..(off + len) as usize],
                    "common file changed"
                );
            }
        });
        s.spawn(move || {
            common::churn_pool(fs_.store().pool(), stop_, || {
                fs_.store().debug_check_consistency()
            })
        });
        std::thread::sleep(Duration::from_secs(secs));
        stop_.store(true, Ordering::Relaxed);
        owners
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    eprintln!(
        "{:?}: owner steps {owner_steps:?}, most shared references {}",
        start.elapsed(),
        shared.load(Ordering::Relaxed)
    );
    assert!(shared.load(Ordering::Relaxed) > 0, "no copy shared a block");
    assert!(
        fs.store().pool().stats().written_back_pages > 0,
        "the shrinker never ran: the test did not race it"
    );

    // Every byte against its model.
    assert!(whole(&fs, common) == common_model, "common file changed");
    for f in raced {
        check(&whole(&fs, f), 0, "raced file after the race");
    }
    // A last copy, whole and shifted off the block grid, equals its source.
    let want = whole(&fs, raced[0]);
    let (c1, c2) = (mkfile(&fs, "copy1"), mkfile(&fs, "copy2"));
    let n = want.len() as u64;
    assert_eq!(
        fs.copy_range(raced[0], 0, c1, 0, u64::MAX, None).unwrap().0,
        n
    );
    assert_eq!(fs.copy_range(raced[0], 0, c2, 100, n, None).unwrap().0, n);
    assert!(whole(&fs, c1) == want, "whole copy differs");
    assert!(
        fs.read(c2, 100, n as usize).unwrap() == want,
        "shifted copy differs"
    );

    // size= counts each file block once, shared or not.
    let names = [
        "common", "raced", "raced2", "copy1", "copy2", "own0a", "own0b", "own1a", "own1b",
    ];
    let mut blocks = 0;
    for name in names {
        let a = fs.lookup(ROOT_INO, name.as_bytes()).unwrap();
        fs.flush(a.ino).unwrap();
        blocks += fs.getattr(a.ino).unwrap().blocks / (BS / 512);
        fs.forget(a.ino, 1);
    }
    let st = fs.statfs();
    assert_eq!(st.blocks - st.bfree, blocks, "size= accounting");
    fs.store().debug_check_consistency();

    for name in names {
        let ino = fs.lookup(ROOT_INO, name.as_bytes()).unwrap().ino;
        fs.unlink(ROOT_INO, name.as_bytes()).unwrap();
        fs.forget(ino, 2); // mknod's reference and this lookup's
    }
    let st = fs.statfs();
    assert_eq!(st.blocks, st.bfree, "blocks left after delete");
    let (stats, pool) = (fs.store().stats(), fs.store().pool().stats());
    assert_eq!((stats.orig_data_size, stats.dedup_pages), (0, 0));
    assert_eq!(
        pool.objects + pool.disk_objects,
        0,
        "objects left after delete"
    );
    fs.store().debug_check_consistency();
}
