//! Dedup through a real mount: copies of one file share their blocks'
//! objects (the control file shows it), partial overwrites, truncation,
//! unlinking and appends of some copies leave every other copy intact, and
//! the same holds when the pool limit is small enough that shared objects
//! are written back and read back.

mod common;
use common::data::Rng;
use common::*;

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use zsfs::control::Report;

const COPIES: usize = 8;
const LEN: usize = 4 << 20;

fn write_file(path: &Path, bytes: &[u8]) {
    let f = File::create(path).unwrap();
    f.write_all_at(bytes, 0).unwrap();
    f.sync_all().unwrap();
}

/// Copy one file COPIES times, check the sharing, change some copies,
/// read everything back, remove everything. Returns the counters after
/// the copies were made.
fn copies_share_and_stay_independent(options: &str, expect_full_sharing: bool) -> Report {
    let m = MountGuard::new(options);
    let mnt = m.path();
    let mut rng = Rng::new(7);
    let original = common::data::half_compressible(&mut rng, LEN);
    let path = |i: usize| mnt.join(format!("copy{i}"));
    let mut model: Vec<Option<Vec<u8>>> = Vec::new();
    if expect_full_sharing {
        for i in 0..COPIES {
            write_file(&path(i), &original);
        }
    } else {
        // Under a pool limit below one copy, write the copies a chunk at a
        // time each, so a chunk's objects are still in memory when the next
        // copy of it arrives (a written-back candidate is not shared).
        let files: Vec<File> = (0..COPIES)
            .map(|i| File::create(path(i)).unwrap())
            .collect();
        for off in (0..LEN).step_by(64 << 10) {
            for f in &files {
                f.write_all_at(&original[off..off + (64 << 10)], off as u64)
                    .unwrap();
            }
        }
        files.iter().for_each(|f| f.sync_all().unwrap());
    }
    model.resize(COPIES, Some(original.clone()));
    let after_copies = counters(mnt);
    let blocks = (LEN / 4096) as u64;
    let shared = get(&after_copies, "dedup_pages");
    eprintln!(
        "zsfs -o {options}: {COPIES} copies of {LEN} B: dedup_pages {shared} mem_used_total {} compr_data_size {} dedup_index_bytes {} bd_writes {}",
        get(&after_copies, "mem_used_total"),
        get(&after_copies, "compr_data_size"),
        get(&after_copies, "dedup_index_bytes"),
        get(&after_copies, "bd_writes"),
    );
    let human = std::process::Command::new(zsfs_bin())
        .arg("stats")
        .arg(mnt)
        .output()
        .unwrap();
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(
        human.contains(&format!("dedup        {shared} blocks share")),
        "zsfs stats:\n{human}"
    );
    if expect_full_sharing {
        assert_eq!(shared, (COPIES as u64 - 1) * blocks, "{after_copies:?}");
        // One copy's worth of objects, not COPIES (LZ4 takes this data to
        // about 65 %).
        let one_copy = LEN as u64 * 7 / 10;
        assert!(
            get(&after_copies, "compr_data_size") < one_copy
                && get(&after_copies, "mem_used_total") < one_copy + (256 << 10),
            "{after_copies:?}"
        );
    } else {
        assert!(
            shared > (COPIES as u64 - 1) * blocks / 2,
            "most copies share: {after_copies:?}"
        );
    }

    // Partial overwrites of copies 1 and 2, unaligned, one inside a block.
    for (i, off, len) in [(1, 12345usize, 70000usize), (2, 4096 * 100 + 7, 10)] {
        let buf = common::data::half_compressible(&mut rng, len);
        let f = OpenOptions::new().write(true).open(path(i)).unwrap();
        f.write_all_at(&buf, off as u64).unwrap();
        model[i].as_mut().unwrap()[off..off + len].copy_from_slice(&buf);
    }
    // Truncate copy 3 down to an unaligned size, copy 4 to nothing and up again.
    File::options()
        .write(true)
        .open(path(3))
        .unwrap()
        .set_len(1_000_001)
        .unwrap();
    model[3].as_mut().unwrap().truncate(1_000_001);
    let f = File::options().write(true).open(path(4)).unwrap();
    f.set_len(0).unwrap();
    f.set_len(8192).unwrap();
    drop(f);
    model[4] = Some(vec![0; 8192]);
    // Unlink copy 5, append to copy 6 (the appended blocks match nothing).
    fs::remove_file(path(5)).unwrap();
    model[5] = None;
    let tail = common::data::half_compressible(&mut rng, 50000);
    OpenOptions::new()
        .write(true)
        .open(path(6))
        .unwrap()
        .write_all_at(&tail, LEN as u64)
        .unwrap();
    model[6].as_mut().unwrap().extend_from_slice(&tail);
    // A new file made of copy 0's second half: shares its blocks.
    write_file(&path(8), &original[LEN / 2..]);
    model.push(Some(original[LEN / 2..].to_vec()));

    drop_caches();
    for (i, want) in model.iter().enumerate() {
        if let Some(want) = want {
            let got = fs::read(path(i)).unwrap();
            assert!(
                got == *want,
                "copy {i} reads back wrong (len {} vs {})",
                got.len(),
                want.len()
            );
        } else {
            assert!(!path(i).exists());
        }
    }
    let changed = counters(mnt);
    assert!(get(&changed, "dedup_pages") > 0, "{changed:?}");
    if options.contains("pool_limit") {
        m.assert_wrote_back_and_read_back("copies of one file");
    }
    for (i, want) in model.iter().enumerate() {
        if want.is_some() {
            fs::remove_file(path(i)).unwrap();
        }
    }
    // FUSE sends the last release of a file after close returns.
    wait_until(std::time::Duration::from_secs(10), || {
        get(&counters(mnt), "orig_data_size") == 0
    });
    let empty = counters(mnt);
    for name in [
        "dedup_pages",
        "dedup_data_size",
        "compr_data_size",
        "orig_data_size",
    ] {
        assert_eq!(
            get(&empty, name),
            0,
            "{name} after removing everything: {empty:?}"
        );
    }
    assert_eq!(get(&empty, "checksum_failures"), 0);
    assert!(zsfs_mounted_at(mnt), "daemon died; log:\n{}", m.log());
    m.unmount_clean();
    after_copies
}

#[test]
fn copies_share_objects_direct_io() {
    copies_share_and_stay_independent("cache=none", true);
}

#[test]
fn copies_share_objects_through_the_page_cache() {
    copies_share_and_stay_independent("", true);
}

/// A 1 MiB pool under 4 MiB of compressed data: the shared objects go to the
/// backing file and are read back from it. Later copies may find the
/// original's objects written back (a miss, so a new copy is stored).
#[test]
fn copies_share_objects_with_writeback() {
    copies_share_and_stay_independent("pool_limit=1m,cache=none", false);
}

/// With dedup=off every copy costs its own objects.
#[test]
fn dedup_off_stores_every_copy() {
    let m = MountGuard::new("dedup=off,cache=none");
    let mut rng = Rng::new(9);
    let original = common::data::half_compressible(&mut rng, 1 << 20);
    for i in 0..3 {
        write_file(&m.path().join(format!("c{i}")), &original);
    }
    let c = counters(m.path());
    assert_eq!(get(&c, "dedup_pages"), 0);
    assert_eq!(get(&c, "dedup_index_bytes"), 0);
    assert!(get(&c, "compr_data_size") > 3 * (1 << 20) * 4 / 10, "{c:?}");
    m.unmount_clean();
}
