//! The pool's page count is real memory: RSS grows with it and falls after
//! frees, compaction and writeback. Its own test binary (one test) so no
//! other test's allocations blur the numbers.

use zsfs::config::{Backing, Config};
use zsfs::pool::{PoolConfig, WritebackRequest};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn rss_follows_pages_held() {
    let dir = tempfile::tempdir().unwrap();
    let pool = zsfs::mount::test_pool(
        PoolConfig {
            ..zsfs::mount::pool_config(&Config::default())
        },
        &Backing::Path(dir.path().join("backing")),
    );
    let base = rss_bytes();
    let data: Vec<u8> = (0..4096u32).map(|i| (i * 7 + i / 13) as u8).collect();
    let hs: Vec<_> = (0..40_000)
        .map(|i| pool.alloc(&data[..500 + i % 3000]).unwrap())
        .collect();
    let held = pool.stats().pages_held * 4096;
    let grown = rss_bytes().saturating_sub(base);
    assert!(held > 60 << 20, "{held}");
    assert!(
        grown > held * 9 / 10,
        "RSS grew {grown} for {held} bytes of pages"
    );

    // Free 3 of 4, compact: RSS falls with the pages.
    for (i, h) in hs.iter().enumerate() {
        if i % 4 != 0 {
            pool.free(*h);
        }
    }
    pool.compact();
    let held2 = pool.stats().pages_held * 4096;
    let rss2 = rss_bytes().saturating_sub(base);
    assert!(held2 < held / 3, "{held} -> {held2}");
    assert!(
        rss2 < held2 + held / 10,
        "RSS {rss2} for {held2} bytes of pages"
    );

    // Write everything back: the pages go to the kernel, RSS near the start.
    pool.writeback(WritebackRequest::All).unwrap();
    let rss3 = rss_bytes().saturating_sub(base);
    assert_eq!(pool.stats().zspages, 0);
    assert!(rss3 < held / 10, "RSS {rss3} after writeback of all");
    for (i, h) in hs.iter().enumerate() {
        if i % 4 == 0 {
            assert_eq!(pool.read_with(*h, |b| b.len()).unwrap(), 500 + i % 3000);
        }
    }
}
