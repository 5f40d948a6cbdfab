//! Recompression in the fs core, without a mount (issue 13).
//!
//! A model test: random writes, truncates, hole punches, copies (which
//! share objects between files), reads, compaction, writeback and
//! recompression passes (`idle` and `all`) on a few files must read back
//! like a `Vec<u8>` per file, with the store's invariants checked after
//! every step; deleting everything gives every object back.
//!
//! A stress test: writers, readers, recompression passes and the shrinker
//! (a tiny pool limit) at once on one `Fs`, every byte checked.

mod model;
use proptest::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use zsfs::config::{Backing, Config, PoolLimit};
use zsfs::fs::{Fs, Unpaced, Which, ROOT_INO};

const MAX_OFF: u64 = 300_000;
const FILES: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Write {
        file: usize,
        off: u64,
        len: usize,
        seed: u8,
        text: bool,
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
    Copy {
        from: usize,
        to: usize,
        off_in: u64,
        off_out: u64,
        len: u64,
    },
    Read {
        file: usize,
        off: u64,
        len: usize,
    },
    Recompress {
        all: bool,
        level: i32,
    },
    Compact,
    Writeback,
}

fn op() -> impl Strategy<Value = Op> {
    let f = 0..FILES;
    prop_oneof![
        5 => (f.clone(), 0..MAX_OFF, 1..40_000usize, any::<u8>(), any::<bool>())
            .prop_map(|(file, off, len, seed, text)| Op::Write { file, off, len, seed, text }),
        1 => (f.clone(), 0..MAX_OFF).prop_map(|(file, size)| Op::Truncate { file, size }),
        1 => (f.clone(), 0..MAX_OFF, 1..40_000u64).prop_map(|(file, off, len)| Op::Punch { file, off, len }),
        2 => (f.clone(), f.clone(), 0..MAX_OFF, 0..MAX_OFF, 1..80_000u64)
            .prop_map(|(from, to, off_in, off_out, len)| Op::Copy { from, to, off_in, off_out, len }),
        3 => (f, 0..MAX_OFF + 10_000, 1..60_000usize).prop_map(|(file, off, len)| Op::Read { file, off, len }),
        3 => (any::<bool>(), 1..6i32).prop_map(|(all, level)| Op::Recompress { all, level }),
        1 => Just(Op::Compact),
        1 => Just(Op::Writeback),
    ]
}

/// Text (compresses, more with zstd across blocks) or noise (does not).
fn data(len: usize, seed: u8, text: bool) -> Vec<u8> {
    let mut x = u64::from(seed) * 2654435761 + 1;
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if text {
                b"the pool of zspages\n"[(i + (x % 3) as usize) % 20]
            } else {
                x as u8
            }
        })
        .collect()
}

fn config(bs: u32, dir: &std::path::Path) -> Config {
    Config {
        block_size: bs,
        size: 1 << 30,
        nr_inodes: 100,
        backing: Backing::Path(dir.join("backing")),
        ..Config::default()
    }
}

fn apply(fs: &Fs, inos: &[u64], models: &mut [Vec<u8>], op: Op) {
    match op {
        Op::Write {
            file,
            off,
            len,
            seed,
            text,
        } => model::write(
            fs,
            inos[file],
            &mut models[file],
            off,
            &data(len, seed, text),
        ),
        Op::Truncate { file, size } => model::truncate(fs, inos[file], &mut models[file], size),
        Op::Punch { file, off, len } => model::punch(fs, inos[file], &mut models[file], off, len),
        Op::Copy {
            from,
            to,
            off_in,
            off_out,
            len,
        } => {
            if from == to {
                return;
            }
            let (n, _) = fs
                .copy_range(inos[from], off_in, inos[to], off_out, len, None)
                .unwrap();
            let src = &models[from];
            let s = (off_in as usize).min(src.len());
            let e = (off_in as usize + len as usize).min(src.len());
            assert_eq!(n, (e - s) as u64);
            let bytes = src[s..e].to_vec();
            if !bytes.is_empty() {
                model::put(&mut models[to], off_out, &bytes);
            }
        }
        Op::Read { file, off, len } => {
            model::check_read(fs, inos[file], &models[file], off, len, file)
        }
        Op::Recompress { all, level } => {
            let which = if all { Which::All } else { Which::Idle };
            fs.recompress(fs.pass_spec(which, Some(level)), &mut Unpaced);
        }
        Op::Compact => fs.control_write(b"compact\n").unwrap(),
        Op::Writeback => fs.control_write(b"writeback all\n").unwrap(),
    }
}

fn run(bs: u32, ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let fs = zsfs::mount::new_fs(&config(bs, dir.path()));
    let inos = model::mkfiles(&fs, FILES);
    let mut models = vec![Vec::new(); FILES];
    for op in ops {
        apply(&fs, &inos, &mut models, op);
        fs.store().debug_check_consistency();
    }
    for (i, &ino) in inos.iter().enumerate() {
        assert!(
            fs.read(ino, 0, 1 << 20).unwrap() == models[i],
            "file {i} differs"
        );
    }
    // Everything once more after every block went through a unit.
    fs.recompress(fs.pass_spec(Which::All, None), &mut Unpaced);
    for (i, &ino) in inos.iter().enumerate() {
        assert!(
            fs.read(ino, 0, 1 << 20).unwrap() == models[i],
            "file {i} differs after all"
        );
    }
    for (i, &ino) in inos.iter().enumerate() {
        fs.unlink(ROOT_INO, format!("f{i}").as_bytes()).unwrap();
        fs.forget(ino, 1);
    }
    let st = fs.store().stats();
    assert_eq!(
        (
            st.orig_data_size,
            st.compr_data_size,
            st.recomp_pages,
            st.recomp_units
        ),
        (0, 0, 0, 0),
        "store counters leaked: {st:?}"
    );
    let ps = fs.store().pool_stats();
    assert_eq!((ps.objects, ps.disk_objects), (0, 0), "pool objects leaked");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn recompression_matches_model_4k(ops in proptest::collection::vec(op(), 1..50)) {
        run(4096, ops);
    }

    #[test]
    fn recompression_matches_model_16k(ops in proptest::collection::vec(op(), 1..40)) {
        run(16384, ops);
    }
}

/// Two writers, two readers (each checking what its file must hold), the
/// shrinker under a 512 KiB pool limit, and a thread running recompression
/// passes, all at once on one `Fs`; then every byte once more.
#[test]
fn writers_readers_shrinker_and_passes_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        pool_limit: Some(PoolLimit::Bytes(512 << 10)),
        ..config(4096, dir.path())
    };
    let fs = Arc::new(zsfs::mount::new_fs(&cfg));
    let inos = model::mkfiles(&fs, 2);
    let stop = Arc::new(AtomicBool::new(false));
    // Each writer owns one file and publishes what it wrote.
    let models: Arc<Vec<parking_lot::RwLock<Vec<u8>>>> = Arc::new(
        (0..2)
            .map(|_| parking_lot::RwLock::new(Vec::new()))
            .collect(),
    );
    let mut threads = Vec::new();
    for (t, &ino) in inos.iter().enumerate() {
        let (fs, models, stop) = (fs.clone(), models.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut seed = t as u8;
            while !stop.load(Ordering::Relaxed) {
                seed = seed.wrapping_add(1);
                let mut m = models[t].write();
                let off = (u64::from(seed) * 12_289) % 200_000;
                let d = data(9_000 + usize::from(seed) * 40, seed, seed % 5 != 0);
                fs.write(ino, off, &d).unwrap();
                let end = off as usize + d.len();
                if m.len() < end {
                    m.resize(end, 0);
                }
                m[off as usize..end].copy_from_slice(&d);
            }
        }));
    }
    for (t, &ino) in inos.iter().enumerate() {
        let (fs, models, stop) = (fs.clone(), models.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let m = models[t].read();
                assert!(fs.read(ino, 0, 1 << 20).unwrap() == *m, "file {t} differs");
            }
        }));
    }
    {
        let (fs, stop) = (fs.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let which = if n % 2 == 0 { Which::All } else { Which::Idle };
                fs.recompress(fs.pass_spec(which, None), &mut Unpaced);
                if n % 8 == 0 {
                    fs.store().debug_check_consistency();
                }
                n += 1;
            }
        }));
    }
    let secs = std::env::var("ZSFS_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    std::thread::sleep(std::time::Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("a thread failed");
    }
    for (t, &ino) in inos.iter().enumerate() {
        assert!(
            fs.read(ino, 0, 1 << 20).unwrap() == *models[t].read(),
            "file {t}"
        );
    }
    let st = fs.store().stats();
    let ps = fs.store().pool_stats();
    assert!(st.recomp_reads > 0, "no read met a unit: {st:?}");
    assert!(
        ps.written_back_pages > 0,
        "the shrinker never wrote back: {ps:?}"
    );
    fs.store().debug_check_consistency();
}
