//! Threaded stress: writers allocate, read back and free while another
//! thread compacts and checks consistency. Every read is verified.
//!
//! Run longer with `ZSFS_STRESS_SECS=60 cargo test --release --test pool_stress`.

mod common;
use common::data::tagged;
use common::stress_secs;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zsfs::config::Config;
use zsfs::pool::{Handle, Pool};

#[test]
fn writers_readers_and_compactor_concurrently() {
    let pool = Arc::new(Pool::new(
        zsfs::mount::pool_config(&Config::default()),
        None,
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let verified = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(stress_secs(3));
    let mut threads = Vec::new();
    for t in 0..4u64 {
        let (pool, stop, verified) = (pool.clone(), stop.clone(), verified.clone());
        threads.push(std::thread::spawn(move || {
            let mut live: Vec<(Handle, u64, usize)> = Vec::new();
            let mut rng = t * 7919 + 1;
            let mut next = t << 40;
            while !stop.load(Ordering::Relaxed) {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                match rng % 10 {
                    0..=3 => {
                        let len = (rng >> 20) as usize % 4097;
                        next += 1;
                        let h = pool.alloc(&tagged(next, len)).unwrap();
                        live.push((h, next, len));
                    }
                    4..=6 if !live.is_empty() => {
                        let (h, tag, len) = live[(rng >> 8) as usize % live.len()];
                        let ok = pool
                            .read_with(h, |b| b == tagged(tag, len).as_slice())
                            .unwrap();
                        assert!(ok, "thread {t}: object {tag} corrupted");
                        verified.fetch_add(1, Ordering::Relaxed);
                    }
                    _ if live.len() > 2000 || (rng % 10 >= 7 && !live.is_empty()) => {
                        let i = (rng >> 8) as usize % live.len();
                        let (h, tag, len) = live.swap_remove(i);
                        let ok = pool
                            .read_with(h, |b| b == tagged(tag, len).as_slice())
                            .unwrap();
                        assert!(ok, "thread {t}: object {tag} corrupted before free");
                        pool.free(h);
                    }
                    _ => {}
                }
            }
            for (h, tag, len) in live {
                assert!(pool
                    .read_with(h, |b| b == tagged(tag, len).as_slice())
                    .unwrap());
                pool.free(h);
            }
        }));
    }
    let compactor = {
        let (pool, stop) = (pool.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut runs = 0u64;
            let mut freed = 0;
            while !stop.load(Ordering::Relaxed) {
                freed += pool.compact();
                runs += 1;
                if runs % 16 == 0 {
                    pool.debug_check_consistency();
                }
            }
            (runs, freed)
        })
    };
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let (runs, freed) = compactor.join().unwrap();
    pool.debug_check_consistency();
    let st = pool.stats();
    assert_eq!((st.objects, st.bytes_stored, st.zspages), (0, 0, 0));
    eprintln!(
        "verified {} reads, {runs} compactions freed {freed} pages",
        verified.load(Ordering::Relaxed)
    );
    assert!(verified.load(Ordering::Relaxed) > 1000);
    assert!(freed > 0, "the compactor really moved objects");
}

/// Writers build a peak of objects and free most of it again, over and
/// over, under a tiny limit with a backing file (so reclaim isolates and
/// writes back zspages meanwhile), while a compactor renumbers the emptied
/// slabs down. Every read is verified, and the renumbering must have run.
#[test]
fn peaks_slab_shrinking_and_writeback_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Arc::new(zsfs::mount::test_pool(
        zsfs::pool::PoolConfig {
            limit: Some(8 << 20),
            ..zsfs::mount::pool_config(&Config::default())
        },
        &zsfs::config::Backing::Path(dir.path().join("backing")),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let verified = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(stress_secs(4));
    let mut threads = Vec::new();
    for t in 0..3u64 {
        let (pool, stop, verified) = (pool.clone(), stop.clone(), verified.clone());
        threads.push(std::thread::spawn(move || {
            let check = |h: Handle, tag: u64, len: usize| {
                let ok = pool
                    .read_with(h, |b| b == tagged(tag, len).as_slice())
                    .unwrap();
                assert!(ok, "thread {t}: object {tag} corrupted");
                verified.fetch_add(1, Ordering::Relaxed);
            };
            let mut live: Vec<(Handle, u64, usize)> = Vec::new();
            let (mut rng, mut next) = (t * 7919 + 1, t << 40);
            while !stop.load(Ordering::Relaxed) {
                // Up to a peak, reading as it goes...
                while live.len() < 6000 && !stop.load(Ordering::Relaxed) {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let len = (rng >> 20) as usize % 4097;
                    next += 1;
                    live.push((pool.alloc(&tagged(next, len)).unwrap(), next, len));
                    let (h, tag, len) = live[(rng >> 8) as usize % live.len()];
                    check(h, tag, len);
                }
                // ...then nearly all of it freed, each checked first.
                while live.len() > 100 {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let (h, tag, len) = live.swap_remove((rng >> 8) as usize % live.len());
                    check(h, tag, len);
                    pool.free(h);
                }
            }
            for (h, tag, len) in live {
                check(h, tag, len);
                pool.free(h);
            }
        }));
    }
    let compactor = {
        let (pool, stop) = (pool.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut runs = 0u64;
            while !stop.load(Ordering::Relaxed) {
                pool.compact();
                runs += 1;
                if runs % 16 == 0 {
                    pool.debug_check_consistency();
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    compactor.join().unwrap();
    pool.compact();
    pool.debug_check_consistency();
    let st = pool.stats();
    eprintln!(
        "verified {} reads; {} zspages renumbered, {} pages written back",
        verified.load(Ordering::Relaxed),
        st.zspages_renumbered,
        st.written_back_pages
    );
    assert_eq!((st.objects, st.disk_objects, st.zspages), (0, 0, 0));
    assert!(
        st.zspages_renumbered > 0,
        "slabs were renumbered under load"
    );
    assert!(st.written_back_pages > 0, "reclaim ran at the same time");
    assert!(verified.load(Ordering::Relaxed) > 10_000);
}
