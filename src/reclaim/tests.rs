//! The reclaim thread against a real pool.

use super::*;
use crate::backing::BackingFile;
use crate::config::Config;
use crate::pool::PoolConfig;

fn pattern(seed: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seed as usize * 31 + i * 7 + i / 251) as u8)
        .collect()
}

fn read(pool: &Pool, h: crate::pool::Handle) -> Vec<u8> {
    pool.read_with(h, |b| b.to_vec()).unwrap()
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn shrinker_thread_gets_under_the_accept_threshold_and_serves_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (pool, _reclaim) = crate::mount::pool(
        PoolConfig {
            limit: Some(100 * 4096),
            ..crate::mount::pool_config(&Config::default())
        },
        Some(BackingFile::create_at(&dir.path().join("backing")).unwrap()),
        ReclaimConfig {
            accept_threshold: 50,
            watch_pressure: false,
        },
    )
    .unwrap();
    let mut hs = Vec::new();
    let mut i = 0;
    while pool.stats().pool_limit_hit == 0 {
        hs.push((pool.alloc(&pattern(i, 3000)).unwrap(), i));
        i += 1;
    }
    // Hysteresis: the thread writes back to 50 % of the limit, not just below it.
    wait_for("shrinker to reach the accept threshold", || {
        pool.pages_and_limit().0 <= 50
    });
    assert!(pool.stats().shrinker_runs > 0);
    // An asynchronous request: everything goes.
    pool.request_writeback(WritebackRequest::All).unwrap();
    wait_for("writeback all", || pool.stats().zspages == 0);
    for &(h, i) in &hs {
        assert_eq!(read(&pool, h), pattern(i, 3000));
    }
    pool.debug_check_consistency();
}

#[test]
fn dropping_the_thread_joins_it_and_lets_the_pool_go() {
    let dir = tempfile::tempdir().unwrap();
    let (pool, reclaim) = crate::mount::pool(
        crate::mount::pool_config(&Config::default()),
        Some(BackingFile::create_at(&dir.path().join("backing")).unwrap()),
        ReclaimConfig {
            accept_threshold: 90,
            watch_pressure: false,
        },
    )
    .unwrap();
    assert_eq!(Arc::strong_count(&pool), 2, "the thread holds the pool");
    drop(reclaim);
    assert_eq!(
        Arc::strong_count(&pool),
        1,
        "joined: no reference left behind"
    );
    // The pool still works without its thread; a request runs in place.
    let h = pool.alloc(&pattern(1, 3000)).unwrap();
    pool.request_writeback(WritebackRequest::All).unwrap();
    assert!(!pool.is_resident(h));
}
