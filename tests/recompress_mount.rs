//! Recompression through a real mount, at the same time as everything else
//! that moves data: writers overwriting and truncating, readers checking
//! every byte, the shrinker writing back under a tiny `pool_limit=`, and
//! recompression passes (the background thread with `recompress_after=1s`,
//! and `recompress all` written to the control file in a loop).
//!
//! `ZSFS_STRESS_SECS=120 cargo test --release --test recompress_mount`
//! runs longer.

mod common;
use common::*;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Files a writer keeps, and the most bytes one holds.
const FILES_PER_WRITER: usize = 12;
const MAX_FILE: usize = 256 * 1024;

/// Text-like bytes (compressible by LZ4, more by zstd), different per seed.
fn content(seed: u64, len: usize) -> Vec<u8> {
    let words: [&[u8]; 6] = [
        b"alpha ", b"beta ", b"gamma\n", b"delta ", b"zsfs ", b"unit ",
    ];
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(words[(x % 6) as usize]);
    }
    out.truncate(len);
    out
}

/// What each file must hold; the lock is held by a writer while it
/// changes the file and by a reader while it checks it.
type Model = Arc<Mutex<HashMap<PathBuf, Arc<RwLock<Vec<u8>>>>>>;

fn writer(dir: PathBuf, t: usize, model: Model, stop: Arc<AtomicBool>, ops: Arc<AtomicU64>) {
    let mut seed = (t as u64) << 32;
    let mut step = 0usize;
    while !stop.load(Ordering::Relaxed) {
        seed += 1;
        step += 1;
        let path = dir.join(format!("w{t}-{}", step % FILES_PER_WRITER));
        let slot = model
            .lock()
            .entry(path.clone())
            .or_insert_with(|| Arc::new(RwLock::new(Vec::new())))
            .clone();
        let mut want = slot.write();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .unwrap();
        match seed % 4 {
            // Overwrite a range in the middle (a write into packed blocks).
            0 | 1 if !want.is_empty() => {
                let off = (seed as usize * 7919) % want.len();
                let data = content(seed, ((seed % 5) as usize + 1) * 6000);
                f.write_all_at(&data, off as u64).unwrap();
                if want.len() < off + data.len() {
                    want.resize(off + data.len(), 0);
                }
                want[off..off + data.len()].copy_from_slice(&data);
            }
            // Shrink or grow.
            2 if !want.is_empty() => {
                let len = (seed as usize * 104729) % MAX_FILE;
                f.set_len(len as u64).unwrap();
                want.resize(len, 0);
            }
            // Write the whole file again.
            _ => {
                let data = content(seed, (seed as usize * 31337) % MAX_FILE + 1);
                f.set_len(0).unwrap();
                f.write_all_at(&data, 0).unwrap();
                *want = data;
            }
        }
        ops.fetch_add(1, Ordering::Relaxed);
    }
}

fn reader(model: Model, stop: Arc<AtomicBool>, checked: Arc<AtomicU64>) {
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let files: Vec<(PathBuf, Arc<RwLock<Vec<u8>>>)> = model
            .lock()
            .iter()
            .map(|(p, s)| (p.clone(), s.clone()))
            .collect();
        if files.is_empty() {
            std::thread::yield_now();
            continue;
        }
        i = i.wrapping_add(7);
        let (path, slot) = &files[i % files.len()];
        let want = slot.read();
        let got = std::fs::read(path).unwrap();
        assert!(
            got == *want,
            "{} differs ({} bytes, {} expected)",
            path.display(),
            got.len(),
            want.len()
        );
        checked.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn writers_readers_shrinker_and_recompression_at_once() {
    let _heavy = heavy_lock();
    let m = MountGuard::new("pool_limit=2m,recompress_after=1s");
    let dir = m.path().to_path_buf();
    let model: Model = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let (ops, checked) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let side = Recompressing::start(&dir, Duration::from_millis(30));
    let mut threads = Vec::new();
    for t in 0..2 {
        let (d, mo, s, o) = (dir.clone(), model.clone(), stop.clone(), ops.clone());
        threads.push(std::thread::spawn(move || writer(d, t, mo, s, o)));
    }
    for _ in 0..2 {
        let (mo, s, c) = (model.clone(), stop.clone(), checked.clone());
        threads.push(std::thread::spawn(move || reader(mo, s, c)));
    }
    let until = Instant::now() + Duration::from_secs(stress_secs(15));
    while Instant::now() < until && !threads.iter().any(|t| t.is_finished()) {
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("a writer or reader failed");
    }
    let passes = side.stop();
    // Every byte of every file, once more, after the page cache is gone.
    drop_caches();
    for (path, slot) in model.lock().iter() {
        assert!(
            std::fs::read(path).unwrap() == *slot.read(),
            "{}",
            path.display()
        );
    }
    let r = counters(&dir);
    eprintln!(
        "{} writes, {} checked reads, {passes} recompression passes: {r:?}",
        ops.load(Ordering::Relaxed),
        checked.load(Ordering::Relaxed)
    );
    assert!(
        get(&r, "recomp_pages") + get(&r, "recomp_reads") > 0,
        "no recompression: {r:?}"
    );
    assert!(get(&r, "recomp_reads") > 0, "no read met a unit: {r:?}");
    assert!(
        get(&r, "written_back_pages") > 0,
        "the shrinker never ran: {r:?}"
    );
    assert_eq!(get(&r, "checksum_failures"), 0);
    m.unmount_clean();
}
