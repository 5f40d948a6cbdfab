//! Writes compress outside the inode lock (see `src/fs/file.rs`): two
//! threads write one file's blocks (large requests compressed on several
//! threads, whole blocks, partial ones through the write buffer) while a
//! third punches holes, truncates, zeroes ranges and flushes, under a tiny
//! pool limit so the shrinker writes zspages back meanwhile.
//!
//! The data describes itself in 64-byte cells (`[version][offset][payload]`)
//! and every operation is cell-aligned, so any read can be checked without
//! knowing the interleaving: each cell is zero or one whole cell some
//! writer wrote at that offset. A final phase, with the puncher stopped,
//! has both threads rewrite disjoint halves concurrently and the file must
//! then equal the model exactly; space and pool accounting must agree, and
//! deleting the file must give every block back.

mod common;
use common::cells::{cells, check, CELL};
use common::data::Rng;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use zsfs::config::{Backing, Config, PoolLimit};
use zsfs::fs::{Caller, Fallocate, SetAttr, ROOT_INO};

const ME: Caller = Caller { uid: 0, gid: 0 };
const BS: u64 = 4096;
/// File span the test works in: 2 MiB, over 8 times the pool limit once
/// compressed.
const BLOCKS: u64 = 512;
const SPAN: u64 = BLOCKS * BS;

/// A random cell-aligned range inside the span: `(offset, length)`.
fn range(rng: &mut Rng, max_len: u64) -> (u64, u64) {
    let off = rng.below(SPAN / CELL) * CELL;
    let len = (1 + rng.below(max_len / CELL)) * CELL;
    (off, len.min(SPAN - off))
}

#[test]
fn two_writers_and_a_puncher_on_one_file() {
    let _heavy = common::heavy_lock();
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        size: 1 << 30,
        pool_limit: Some(PoolLimit::Bytes(256 << 10)),
        backing: Backing::Path(dir.path().join("backing")),
        ..Config::default()
    };
    let fs = zsfs::mount::new_fs(&cfg);
    let ino = fs
        .mknod(ROOT_INO, b"f", libc::S_IFREG | 0o644, 0, 0, ME)
        .unwrap()
        .ino;
    let secs = common::stress_secs(4);
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let (fs, stop) = (&fs, &stop);
            s.spawn(move || {
                let mut rng = Rng::new(0xC0FFEE + t * 7919);
                let mut iter = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    iter += 1;
                    let v = (t + 1) << 32 | iter;
                    let (off, len) = match rng.below(8) {
                        // Large: compressed on several threads.
                        0 | 1 => {
                            let b = rng.below(BLOCKS);
                            let n = (64 + rng.below(64)).min(BLOCKS - b);
                            (b * BS, n * BS)
                        }
                        // Whole blocks.
                        2 | 3 => {
                            let b = rng.below(BLOCKS);
                            (b * BS, (1 + rng.below(4)).min(BLOCKS - b) * BS)
                        }
                        // Partial blocks, through the write buffer.
                        4..=6 => range(&mut rng, 3 * BS),
                        _ => {
                            let (off, len) = range(&mut rng, 64 * BS);
                            let got = fs.read(ino, off, len as usize).unwrap();
                            check(&got, off, "read while racing");
                            continue;
                        }
                    };
                    let n = fs.write(ino, off, &cells(v, off, len)).unwrap();
                    assert_eq!(n as u64, len, "short write with space to spare");
                }
            });
        }
        let (fs, stop) = (&fs, &stop);
        s.spawn(move || {
            let mut rng = Rng::new(0xBEEF);
            while start.elapsed() < Duration::from_secs(secs) {
                let (off, len) = range(&mut rng, 32 * BS);
                match rng.below(6) {
                    0 | 1 => fs.fallocate(ino, off, len, Fallocate::PunchHole).unwrap(),
                    2 => {
                        let size = rng.below(SPAN / CELL) * CELL;
                        let set = SetAttr {
                            size: Some(size),
                            ..SetAttr::default()
                        };
                        fs.setattr(ino, &set).unwrap();
                    }
                    3 => fs
                        .fallocate(ino, off, len, Fallocate::ZeroRange { keep_size: true })
                        .unwrap(),
                    4 => fs.flush(ino).unwrap(),
                    _ => std::thread::sleep(Duration::from_micros(200)),
                }
            }
            stop.store(true, Ordering::Relaxed);
        });
    });
    let whole = fs.read(ino, 0, SPAN as usize).unwrap();
    check(&whole, 0, "after the race");

    // Final phase: each thread scribbles over its half, then rewrites all of
    // it in a mix of request sizes, concurrently; the result is exact.
    let version = |t: u64| (t + 3) << 32;
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let fs = &fs;
            s.spawn(move || {
                let mut rng = Rng::new(0xFACE + t);
                let (lo, hi) = (t * SPAN / 2, (t + 1) * SPAN / 2);
                // First scribble partial blocks, so write buffers hold data
                // the final pass must replace, whole blocks included.
                for i in 0..200 {
                    let off = lo + rng.below((hi - lo) / CELL) * CELL;
                    let len = ((1 + rng.below(40)) * CELL).min(hi - off);
                    let v = (t + 5) << 32 | i;
                    fs.write(ino, off, &cells(v, off, len)).unwrap();
                }
                let mut off = lo;
                while off < hi {
                    let len = match rng.below(3) {
                        0 => (64 + rng.below(64)) * BS,
                        1 => (1 + rng.below(8)) * BS,
                        _ => (1 + rng.below(100)) * CELL,
                    }
                    .min(hi - off);
                    let n = fs.write(ino, off, &cells(version(t), off, len)).unwrap();
                    assert_eq!(n as u64, len);
                    off += len;
                }
            });
        }
    });
    let mut model = cells(version(0), 0, SPAN / 2);
    model.extend(cells(version(1), SPAN / 2, SPAN / 2));
    let set = SetAttr {
        size: Some(SPAN),
        ..SetAttr::default()
    };
    fs.setattr(ino, &set).unwrap();
    let got = fs.read(ino, 0, SPAN as usize + 1).unwrap();
    assert!(got == model, "final content differs from the model");
    fs.flush(ino).unwrap();
    let attr = fs.getattr(ino).unwrap();
    assert_eq!(attr.blocks, BLOCKS * BS / 512, "every block present once");
    let st = fs.statfs();
    assert_eq!(st.blocks - st.bfree, BLOCKS, "size= accounting");
    let pool = fs.store().pool();
    pool.debug_check_consistency();
    assert!(
        pool.stats().written_back_pages > 0,
        "the shrinker never ran: the test did not race it"
    );
    assert_eq!(fs.store().stats().orig_data_size, SPAN);

    fs.unlink(ROOT_INO, b"f").unwrap();
    fs.forget(ino, 1);
    let st = fs.statfs();
    assert_eq!(st.blocks, st.bfree, "blocks left after delete");
    assert_eq!(fs.store().stats().orig_data_size, 0);
    assert_eq!(pool.stats().objects + pool.stats().disk_objects, 0);
}
