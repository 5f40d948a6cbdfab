//! The core against a model, without a mount: random sequences of writes,
//! truncates, fallocate modes and flushes on a few files must read back
//! exactly like a `Vec<u8>` per file, SEEK_DATA/SEEK_HOLE must agree with
//! the data, and deleting everything must give back every block, pool
//! object and statfs block (no leaks in the write buffer or block maps).

mod model;
use proptest::prelude::*;
use zsfs::config::Config;
use zsfs::fs::{Fallocate, Fs, ROOT_INO};

const MAX_OFF: u64 = 200_000;

#[derive(Debug, Clone)]
enum Op {
    Write {
        file: usize,
        off: u64,
        len: usize,
        seed: u8,
        kind: u8,
    },
    Truncate {
        file: usize,
        size: u64,
    },
    Punch {
        file: usize,
        off: u64,
        len: u64,
    },
    Zero {
        file: usize,
        off: u64,
        len: u64,
        keep: bool,
    },
    Alloc {
        file: usize,
        off: u64,
        len: u64,
        keep: bool,
    },
    Flush {
        file: usize,
    },
    Read {
        file: usize,
        off: u64,
        len: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let f = 0..3usize;
    prop_oneof![
        6 => (f.clone(), 0..MAX_OFF, 1..20_000usize, any::<u8>(), 0..3u8)
            .prop_map(|(file, off, len, seed, kind)| Op::Write { file, off, len, seed, kind }),
        1 => (f.clone(), 0..MAX_OFF).prop_map(|(file, size)| Op::Truncate { file, size }),
        1 => (f.clone(), 0..MAX_OFF, 1..30_000u64).prop_map(|(file, off, len)| Op::Punch { file, off, len }),
        1 => (f.clone(), 0..MAX_OFF, 1..30_000u64, any::<bool>())
            .prop_map(|(file, off, len, keep)| Op::Zero { file, off, len, keep }),
        1 => (f.clone(), 0..MAX_OFF, 1..30_000u64, any::<bool>())
            .prop_map(|(file, off, len, keep)| Op::Alloc { file, off, len, keep }),
        1 => f.clone().prop_map(|file| Op::Flush { file }),
        3 => (f, 0..MAX_OFF + 10_000, 1..40_000usize).prop_map(|(file, off, len)| Op::Read { file, off, len }),
    ]
}

/// Bytes of one of three kinds: a constant (same-filled blocks), noise
/// (raw blocks) or text (compressed blocks).
fn data(len: usize, seed: u8, kind: u8) -> Vec<u8> {
    let mut x = u64::from(seed) * 2654435761 + 1;
    (0..len)
        .map(|i| match kind {
            0 => seed,
            1 => {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            }
            _ => b"abcabcabd "[(i + seed as usize) % 10],
        })
        .collect()
}

fn check_seek(fs: &Fs, ino: u64, model: &[u8]) {
    let size = model.len() as u64;
    for probe in [0, 1, 4095, 4096, 50_000, size / 2, size.saturating_sub(1)] {
        if probe >= size {
            assert!(fs.seek(ino, probe, true).is_err());
            continue;
        }
        // Everything between probe and SEEK_DATA is a hole: zeros.
        let d = fs.seek(ino, probe, true).unwrap_or(size);
        assert!(d >= probe && d <= size);
        assert!(
            model[probe as usize..d as usize].iter().all(|&b| b == 0),
            "nonzero before SEEK_DATA"
        );
        let h = fs.seek(ino, probe, false).unwrap();
        assert!(h >= probe && h <= size);
    }
}

fn run(bs: u32, ops: Vec<Op>) {
    let cfg = Config {
        block_size: bs,
        size: 1 << 30,
        nr_inodes: 100,
        ..Config::default()
    };
    let fs = zsfs::mount::new_fs(&cfg);
    let total_blocks = fs.statfs().blocks;
    let inos = model::mkfiles(&fs, 3);
    let mut models: Vec<Vec<u8>> = vec![Vec::new(); 3];
    for op in ops {
        match op {
            Op::Write {
                file,
                off,
                len,
                seed,
                kind,
            } => model::write(
                &fs,
                inos[file],
                &mut models[file],
                off,
                &data(len, seed, kind),
            ),
            Op::Truncate { file, size } => {
                model::truncate(&fs, inos[file], &mut models[file], size)
            }
            Op::Punch { file, off, len } => {
                model::punch(&fs, inos[file], &mut models[file], off, len)
            }
            Op::Zero {
                file,
                off,
                len,
                keep,
            } => {
                fs.fallocate(
                    inos[file],
                    off,
                    len,
                    Fallocate::ZeroRange { keep_size: keep },
                )
                .unwrap();
                let m = &mut models[file];
                let end = (off + len) as usize;
                if !keep && m.len() < end {
                    m.resize(end, 0);
                }
                let e = end.min(m.len());
                if (off as usize) < e {
                    m[off as usize..e].fill(0);
                }
            }
            Op::Alloc {
                file,
                off,
                len,
                keep,
            } => {
                fs.fallocate(
                    inos[file],
                    off,
                    len,
                    Fallocate::Allocate { keep_size: keep },
                )
                .unwrap();
                let m = &mut models[file];
                let end = (off + len) as usize;
                if !keep && m.len() < end {
                    m.resize(end, 0);
                }
            }
            Op::Flush { file } => fs.flush(inos[file]).unwrap(),
            Op::Read { file, off, len } => {
                model::check_read(&fs, inos[file], &models[file], off, len, file)
            }
        }
    }
    for (i, &ino) in inos.iter().enumerate() {
        let a = fs.getattr(ino).unwrap();
        assert_eq!(a.size, models[i].len() as u64);
        assert!(
            fs.read(ino, 0, 1 << 20).unwrap() == models[i],
            "file {i} differs"
        );
        check_seek(&fs, ino, &models[i]);
    }
    // Allocated blocks add up to what statfs says is used.
    let used: u64 = inos
        .iter()
        .map(|&i| fs.getattr(i).unwrap().blocks * 512 / u64::from(bs))
        .sum();
    assert_eq!(total_blocks - fs.statfs().bfree, used);
    for (i, &ino) in inos.iter().enumerate() {
        fs.unlink(ROOT_INO, format!("f{i}").as_bytes()).unwrap();
        fs.forget(ino, 1);
    }
    assert_eq!(fs.statfs().bfree, total_blocks, "blocks leaked");
    let st = fs.store().stats();
    assert_eq!(
        (
            st.orig_data_size,
            st.same_pages,
            st.huge_pages,
            st.compressed_pages,
            st.compr_data_size
        ),
        (0, 0, 0, 0, 0),
        "store counters leaked"
    );
    assert_eq!(fs.store().pool_stats().objects, 0, "pool objects leaked");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn file_data_matches_model_4k(ops in proptest::collection::vec(op(), 1..60)) {
        run(4096, ops);
    }

    #[test]
    fn file_data_matches_model_16k(ops in proptest::collection::vec(op(), 1..60)) {
        run(16384, ops);
    }
}
