//! Dedup under concurrency: writers put, read and free overlapping contents
//! (so references to one object are taken and dropped from several threads
//! at once) while the pool sits at a tiny limit, the shrinker and a helper
//! write back, and a compactor moves objects. Every read is checked.
//!
//! `ZSFS_STRESS_SECS=60 cargo test --release --test store_dedup` runs longer.

mod common;
use common::data::{tagged, Rng};
use common::{churn_pool, stress_secs};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zsfs::config::{Backing, Config};
use zsfs::pool::PoolConfig;
use zsfs::store::{Block, Store};

const BS: usize = 4096;

/// Content number `c`: a few hundred contents shared by all threads, half
/// compressible (text with the number in it), half not (noise).
fn content(c: u64) -> Vec<u8> {
    if c % 2 == 0 {
        format!("content {c} compresses well; ")
            .into_bytes()
            .into_iter()
            .cycle()
            .take(BS)
            .collect()
    } else {
        tagged(c, BS)
    }
}

#[test]
fn shared_references_across_threads_with_writeback_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let pool = zsfs::mount::test_pool(
        PoolConfig {
            limit: Some(256 * 1024),
            ..zsfs::mount::pool_config(&Config {
                block_size: BS as u32,
                ..Config::default()
            })
        },
        &Backing::Path(dir.path().join("backing")),
    );
    let store = Arc::new(Store::with_pool(BS, pool.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let verified = Arc::new(AtomicU64::new(0));
    let max_shared = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for t in 0..4u64 {
        let (store, stop, verified, max_shared) = (
            store.clone(),
            stop.clone(),
            verified.clone(),
            max_shared.clone(),
        );
        writers.push(std::thread::spawn(move || {
            let mut live: Vec<(Block, u64)> = Vec::new();
            let mut rng = Rng::new(t * 7919 + 5);
            let mut out = vec![0u8; BS];
            let mut check = |b: &Block, c: u64| {
                store.get(b, &mut out).expect("no checksum failure here");
                assert!(out == content(c), "thread {t}: content {c} read back wrong");
            };
            while !stop.load(Ordering::Relaxed) {
                let r = rng.next();
                match r % 10 {
                    0..=3 if live.len() < 1500 => {
                        let c = rng.below(300);
                        let b = store.put(&content(c)).expect("writeback makes room");
                        max_shared.fetch_max(store.stats().dedup_pages, Ordering::Relaxed);
                        live.push((b, c));
                    }
                    4..=6 if !live.is_empty() => {
                        let (b, c) = live[(r >> 8) as usize % live.len()];
                        check(&b, c);
                        verified.fetch_add(1, Ordering::Relaxed);
                    }
                    _ if !live.is_empty() => {
                        let (b, c) = live.swap_remove((r >> 8) as usize % live.len());
                        if r & 2 == 0 {
                            check(&b, c);
                        }
                        store.free(b);
                    }
                    _ => {}
                }
            }
            for (b, c) in live {
                check(&b, c);
                store.free(b);
            }
        }));
    }
    let helper = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            churn_pool(store.pool(), &stop, || store.debug_check_consistency())
        })
    };
    let deadline = Instant::now() + Duration::from_secs(stress_secs(4));
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    helper.join().unwrap();
    store.debug_check_quiescent();
    let (st, ps) = (store.stats(), store.pool_stats());
    eprintln!(
        "verified {} reads, dedup_pages peaked at {}; {st:#?} {ps:#?}",
        verified.load(Ordering::Relaxed),
        max_shared.load(Ordering::Relaxed)
    );
    assert_eq!(
        (
            ps.objects,
            ps.disk_objects,
            st.dedup_pages,
            st.orig_data_size
        ),
        (0, 0, 0, 0),
        "everything freed"
    );
    assert!(
        max_shared.load(Ordering::Relaxed) > 100,
        "blocks were shared across threads"
    );
    assert!(
        ps.written_back_pages > 50 && ps.bd_reads > 50,
        "writeback and read-back happened: {ps:?}"
    );
    assert_eq!(ps.checksum_failures, 0);
}
