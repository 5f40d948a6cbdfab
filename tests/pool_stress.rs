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
