//! The core under concurrent namespace and data operations, without a
//! mount: threads create, link, rename (plain, noreplace, exchange, across
//! directories), unlink, rmdir, write and read in a small shared namespace.
//! Must finish (no deadlock: a watchdog fails the test), keep link counts
//! consistent, and give back every inode and block once all is deleted and
//! every kernel reference forgotten.

mod common;
use common::data::Rng;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use zsfs::config::Config;
use zsfs::fs::{Caller, FileKind, Fs, RenameFlags, ROOT_INO};

const ME: Caller = Caller { uid: 0, gid: 0 };

/// Remove everything under `dir`, depth first.
fn clear(fs: &Fs, dir: u64) {
    let mut entries = Vec::new();
    fs.readdir(dir, 0, |e| {
        entries.push(e);
        false
    })
    .unwrap();
    for e in entries {
        if e.name == b"." || e.name == b".." || (dir == ROOT_INO && e.name == fs.control_name()) {
            continue;
        }
        if e.kind == FileKind::Dir {
            clear(fs, e.ino);
            fs.rmdir(dir, &e.name).unwrap();
        } else {
            fs.unlink(dir, &e.name).unwrap();
        }
    }
}

#[test]
fn concurrent_namespace_and_data_operations() {
    let cfg = Config {
        size: 1 << 30,
        nr_inodes: 10_000,
        ..Config::default()
    };
    let fs = zsfs::mount::new_fs(&cfg);
    let dirs: Vec<u64> = (0..3)
        .map(|i| {
            fs.mkdir(ROOT_INO, format!("d{i}").as_bytes(), 0o755, 0, ME)
                .unwrap()
                .ino
        })
        .collect();
    let refs = Mutex::new(Vec::new());
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let start = Instant::now();
            while !done.load(Ordering::Relaxed) {
                assert!(
                    start.elapsed() < Duration::from_secs(120),
                    "deadlock: operations did not finish"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let workers: Vec<_> = (0..4u64)
            .map(|t| {
                let (fs, dirs, refs) = (&fs, &dirs, &refs);
                s.spawn(move || {
                    let mut rng = Rng::new(0x1234_5678 + t * 7919);
                    let mut mine = Vec::new();
                    let name = |r: &mut Rng| format!("n{}", r.below(12)).into_bytes();
                    for _ in 0..20_000 {
                        let d = dirs[rng.below(3) as usize];
                        let d2 = dirs[rng.below(3) as usize];
                        let (a, b) = (name(&mut rng), name(&mut rng));
                        match rng.below(10) {
                            0 => {
                                if let Ok(at) = fs.mknod(d, &a, libc::S_IFREG | 0o644, 0, 0, ME) {
                                    mine.push(at.ino);
                                }
                            }
                            1 => {
                                if let Ok(at) = fs.mkdir(d, &a, 0o755, 0, ME) {
                                    mine.push(at.ino);
                                }
                            }
                            2 => {
                                let _ = fs.unlink(d, &a);
                            }
                            3 => {
                                let _ = fs.rmdir(d, &a);
                            }
                            4 | 5 => {
                                let flags = match rng.below(3) {
                                    0 => RenameFlags::default(),
                                    1 => RenameFlags {
                                        noreplace: true,
                                        exchange: false,
                                    },
                                    _ => RenameFlags {
                                        noreplace: false,
                                        exchange: true,
                                    },
                                };
                                let _ = fs.rename(d, &a, d2, &b, flags);
                            }
                            6 => {
                                if let Ok(at) = fs.lookup(d, &a) {
                                    mine.push(at.ino);
                                    if at.kind == FileKind::File {
                                        if let Ok(l) = fs.link(at.ino, d2, &b) {
                                            mine.push(l.ino);
                                        }
                                    }
                                }
                            }
                            _ => {
                                if let Ok(at) = fs.lookup(d, &a) {
                                    mine.push(at.ino);
                                    if at.kind == FileKind::File {
                                        let off = rng.below(64) * 1000;
                                        let data = vec![(t + 1) as u8; 3000];
                                        fs.write(at.ino, off, &data).unwrap();
                                        let got = fs.read(at.ino, off, 3000).unwrap();
                                        assert_eq!(got.len(), 3000);
                                        // Others may write the same range, but
                                        // never a byte nobody wrote.
                                        assert!(got.iter().all(|&x| x <= 4));
                                    }
                                }
                            }
                        }
                    }
                    refs.lock().unwrap().extend(mine);
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
    });
    // Link counts: a directory has 2 + its subdirectories.
    let mut all_dirs = vec![ROOT_INO];
    let mut i = 0;
    while i < all_dirs.len() {
        let d = all_dirs[i];
        let mut subdirs = 0;
        fs.readdir(d, 0, |e| {
            if e.kind == FileKind::Dir && e.name != b"." && e.name != b".." {
                subdirs += 1;
                all_dirs.push(e.ino);
            }
            false
        })
        .unwrap();
        assert_eq!(
            fs.getattr(d).unwrap().nlink,
            2 + subdirs,
            "nlink of directory {d}"
        );
        i += 1;
    }
    let refs = refs.into_inner().unwrap();
    clear(&fs, ROOT_INO);
    for ino in refs.iter().chain(dirs.iter()) {
        fs.forget(*ino, 1);
    }
    let st = fs.statfs();
    assert_eq!(
        st.ffree,
        st.files - 1,
        "inodes leaked (only the root should remain)"
    );
    assert_eq!(st.bfree, st.blocks, "blocks leaked");
    assert_eq!(fs.store().pool_stats().objects, 0, "pool objects leaked");
}
