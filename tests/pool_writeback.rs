//! Writeback under load, corruption, and a full backing disk.
//!
//! `ZSFS_STRESS_SECS=60 cargo test --release --test pool_writeback` runs the
//! stress longer.

mod common;
use common::data::{tagged, Rng};
use common::{churn_pool, stress_secs};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zsfs::config::{Backing, Config};
use zsfs::pool::{Handle, PoolConfig, PoolError, WritebackRequest};

/// 4 writer threads allocate, read and free under a 256 KiB limit while the
/// shrinker thread, a thread asking for writeback and a compactor all run.
/// Every read is checked against what was written.
#[test]
fn tiny_limit_shrinker_and_writers_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let pool = zsfs::mount::test_pool(
        PoolConfig {
            limit: Some(256 * 1024),
            ..zsfs::mount::pool_config(&Config::default())
        },
        &Backing::Path(dir.path().join("backing")),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let verified = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for t in 0..4u64 {
        let (pool, stop, verified) = (pool.clone(), stop.clone(), verified.clone());
        writers.push(std::thread::spawn(move || {
            let mut live: Vec<(Handle, u64, usize)> = Vec::new();
            let mut rng = Rng::new(t * 7919 + 17);
            let mut next = t << 40;
            let check = |h: Handle, tag: u64, len: usize| {
                let ok = pool
                    .read_with(h, |b| b == tagged(tag, len).as_slice())
                    .unwrap();
                assert!(ok, "thread {t}: object {tag} ({len} B) read back wrong");
            };
            while !stop.load(Ordering::Relaxed) {
                let r = rng.next();
                match r % 10 {
                    0..=3 if live.len() < 3000 => {
                        let len = (r >> 20) as usize % 4097;
                        next += 1;
                        let h = pool
                            .alloc(&tagged(next, len))
                            .expect("writeback makes room");
                        live.push((h, next, len));
                    }
                    4..=6 if !live.is_empty() => {
                        // Skewed towards recent objects, so some zspages are hot.
                        let n = live.len();
                        let i = if r & 1 == 0 {
                            n - 1 - (r >> 8) as usize % n.min(64)
                        } else {
                            (r >> 8) as usize % n
                        };
                        let (h, tag, len) = live[i];
                        check(h, tag, len);
                        verified.fetch_add(1, Ordering::Relaxed);
                    }
                    _ if !live.is_empty() => {
                        let (h, tag, len) = live.swap_remove((r >> 8) as usize % live.len());
                        if r & 2 == 0 {
                            check(h, tag, len);
                        }
                        pool.free(h);
                    }
                    _ => {}
                }
            }
            for (h, tag, len) in live {
                check(h, tag, len);
                pool.free(h);
            }
        }));
    }
    let helper = {
        let (pool, stop) = (pool.clone(), stop.clone());
        std::thread::spawn(move || churn_pool(&pool, &stop, || pool.debug_check_consistency()))
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
    pool.debug_check_consistency();
    let st = pool.stats();
    eprintln!(
        "verified {} reads; {st:#?}",
        verified.load(Ordering::Relaxed)
    );
    assert_eq!(
        (st.objects, st.disk_objects, st.bd_count),
        (0, 0, 0),
        "everything freed"
    );
    assert!(
        st.written_back_pages > 100 && st.bd_reads > 100,
        "writeback and read-back happened"
    );
    assert!(st.pool_limit_hit > 0 && st.second_chance > 0);
    assert!(
        st.isolated_frees + st.isolated_reads > 0,
        "writers read or freed objects while writeback had their zspage isolated"
    );
    assert!(
        st.max_pages_held <= 64 + 8,
        "memory stayed near the 64-page limit: {}",
        st.max_pages_held
    );
    assert_eq!(st.checksum_failures, 0);
}

/// Damaged records: every read is the right data or `Checksum`, never wrong bytes.
#[test]
fn corrupted_backing_file_gives_checksum_errors_not_wrong_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("backing");
    let pool = zsfs::mount::test_pool(
        PoolConfig {
            ..zsfs::mount::pool_config(&Config::default())
        },
        &Backing::Path(path.clone()),
    );
    let objs: Vec<_> = (0..300u64)
        .map(|i| (pool.alloc(&tagged(i, 100 + i as usize * 13)).unwrap(), i))
        .collect();
    pool.writeback(WritebackRequest::All).unwrap();
    // Flip one byte every 1000 from the first record on.
    let mut data = std::fs::read(&path).unwrap();
    for b in data[4096..].iter_mut().step_by(1000) {
        *b ^= 0x5a;
    }
    std::fs::write(&path, &data).unwrap();
    let (mut good, mut bad) = (0, 0);
    for &(h, i) in &objs {
        match pool.read_with(h, |b| b.to_vec()) {
            Ok(v) => {
                assert_eq!(
                    v,
                    tagged(i, 100 + i as usize * 13),
                    "object {i}: wrong data returned"
                );
                good += 1;
            }
            Err(PoolError::Checksum { offset }) => {
                assert!(offset >= 4096);
                bad += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(bad > 10 && good > 10, "{bad} damaged, {good} intact");
    assert_eq!(pool.stats().checksum_failures, bad);
    for (h, _) in objs {
        pool.free(h);
    }
}

/// A tmpfs of 1 MiB mounted for the test and unmounted by Drop, even on panic.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn mount(size: &str) -> SmallFs {
        let dir = tempfile::tempdir().unwrap();
        let st = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "zsfs-test",
                dir.path().to_str().unwrap(),
            ])
            .status()
            .expect("running mount(8)");
        assert!(st.success(), "mount -t tmpfs failed (this test needs root)");
        SmallFs { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// Backing disk of 1 MiB, pool limit 256 KiB, 3 MiB of data offered: writes
/// succeed while memory or disk has room, then fail with LimitReached;
/// nothing accepted is ever lost; freeing makes room again.
#[test]
fn full_backing_disk_loses_nothing() {
    let fs = SmallFs::mount("1m");
    let backing: PathBuf = fs.path().join("backing");
    let pool = zsfs::mount::test_pool(
        PoolConfig {
            limit: Some(256 * 1024),
            ..zsfs::mount::pool_config(&Config::default())
        },
        &Backing::Path(backing.clone()),
    );
    let mut stored = Vec::new();
    let mut refused = 0;
    for i in 0..750u64 {
        match pool.alloc(&tagged(i, 4096)) {
            Ok(h) => stored.push((h, i)),
            Err(PoolError::LimitReached { .. }) => refused += 1,
            Err(e) => panic!("object {i}: {e}"),
        }
    }
    let st = pool.stats();
    eprintln!("stored {} refused {refused}: {st:#?}", stored.len());
    assert!(refused > 0, "3 MiB cannot fit in 256 KiB + 1 MiB");
    assert!(
        stored.len() > 250,
        "disk and memory were both used: {}",
        stored.len()
    );
    assert!(st.disk_objects > 0 && st.writeback_errors > 0 && st.backing_full);
    assert!(
        st.pages_held >= 60,
        "memory filled up to the limit too: {}",
        st.pages_held
    );
    pool.debug_check_consistency();
    for &(h, i) in &stored {
        assert_eq!(
            pool.read_with(h, |b| b.to_vec()).unwrap(),
            tagged(i, 4096),
            "object {i} lost"
        );
    }
    // Free half of what is on disk and in memory: room again, for new data.
    let (gone, kept): (Vec<_>, Vec<_>) = stored.into_iter().partition(|(_, i)| i % 2 == 0);
    for &(h, _) in &gone {
        pool.free(h);
    }
    let h = pool.alloc(&tagged(9999, 4096)).expect("room after frees");
    assert_eq!(
        pool.read_with(h, |b| b.to_vec()).unwrap(),
        tagged(9999, 4096)
    );
    for &(h, i) in &kept {
        assert_eq!(
            pool.read_with(h, |b| b.to_vec()).unwrap(),
            tagged(i, 4096),
            "object {i} lost"
        );
    }
    pool.debug_check_consistency();
    drop(pool);
    drop(fs);
}
