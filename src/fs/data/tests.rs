//! Unit tests of `FileData`: the write buffer, the write path, ENOSPC,
//! truncate, holes and seeking, against a store with no mount.

use super::*;
use std::sync::atomic::Ordering;

fn setup(max: u64) -> (Store, Space) {
    (Store::new(4096), Space::new(max, 4096, 64 << 20))
}

#[test]
fn small_sequential_writes_compress_each_block_once() {
    let (store, space) = setup(u64::MAX);
    let cx = Ctx::new(&store, &space);
    let mut f = FileData::default();
    let chunk: Vec<u8> = (0..100u8).collect();
    let mut model = Vec::new();
    for _ in 0..200 {
        let off = model.len() as u64;
        assert_eq!(f.write(&cx, off, &chunk).unwrap(), 100);
        model.extend_from_slice(&chunk);
    }
    // 20000 bytes = 4 full blocks compressed + 1 partial in the buffer.
    let st = store.stats();
    assert_eq!(st.compressed_pages + st.huge_pages + st.same_pages, 4);
    assert_eq!(f.read(&cx, 0, 30000).unwrap(), model);
    f.flush(&cx).unwrap();
    assert_eq!(store.stats().orig_data_size, 5 * 4096);
    assert_eq!(f.read(&cx, 0, 30000).unwrap(), model);
    assert_eq!(space.used.load(Ordering::Relaxed), 5);
    f.clear(&cx);
    assert_eq!(space.used.load(Ordering::Relaxed), 0);
    assert_eq!(space.buffers.load(Ordering::Relaxed), 0);
    assert_eq!(store.pool_stats().objects, 0);
}

#[test]
fn write_buffers_are_bounded() {
    let store = Store::new(4096);
    let space = Space::new(u64::MAX, 4096, 0); // the minimum: 4 buffers
    let cx = Ctx::new(&store, &space);
    let mut files: Vec<FileData> = (0..10).map(|_| FileData::default()).collect();
    for (i, f) in files.iter_mut().enumerate() {
        f.write(&cx, 0, &[i as u8 + 1; 100]).unwrap();
    }
    assert_eq!(space.buffers.load(Ordering::Relaxed), 4);
    // Files past the budget went straight to the store.
    assert_eq!(store.stats().same_pages + store.stats().compressed_pages, 6);
    for (i, f) in files.iter_mut().enumerate() {
        let mut want = vec![i as u8 + 1; 100];
        want.extend(b"xy");
        f.write(&cx, 100, b"xy").unwrap();
        assert_eq!(f.read(&cx, 0, 4096).unwrap(), want);
        f.clear(&cx);
    }
    assert_eq!(space.buffers.load(Ordering::Relaxed), 0);
    assert_eq!(store.pool_stats().objects, 0);
}

#[test]
fn enospc_keeps_what_was_written() {
    let (store, space) = setup(2);
    let cx = Ctx::new(&store, &space);
    let mut f = FileData::default();
    let data = vec![1u8; 3 * 4096];
    assert_eq!(f.write(&cx, 0, &data).unwrap(), 2 * 4096);
    assert_eq!(f.size, 8192);
    assert_eq!(f.write(&cx, 8192, &data).unwrap_err().0, libc::ENOSPC);
    assert_eq!(f.read(&cx, 0, 9000).unwrap(), vec![1u8; 8192]);
}

#[test]
fn large_write_compressed_in_parallel_keeps_a_prefix_on_enospc() {
    // 200 blocks of space, a 1 MiB (256 block) write at block 99 after
    // a partial block 0 sits in the buffer: the write is cut at 298.
    let (store, space) = setup(200);
    let cx = Ctx::new(&store, &space);
    let mut f = FileData::default();
    f.write(&cx, 10, b"head").unwrap();
    let data: Vec<u8> = (0..(1usize << 20) + 100)
        .map(|i| (i / 4096 % 251) as u8 ^ (i % 7) as u8)
        .collect();
    let off = 100 * 4096 - 50;
    let n = f.write(&cx, off, &data).unwrap();
    // Blocks 99 (partial) ..= 297 fit besides block 0.
    assert_eq!(n as u64, 298 * 4096 - off);
    assert_eq!(space.used.load(Ordering::Relaxed), 200);
    assert_eq!(f.read(&cx, off, n).unwrap(), &data[..n]);
    assert_eq!(&f.read(&cx, 10, 4).unwrap(), b"head");
    // Prepared blocks past the cut were freed.
    f.flush(&cx).unwrap();
    assert_eq!(store.stats().orig_data_size, 200 * 4096);
    f.truncate(&cx, 0).unwrap();
    // A whole-block write over the buffered block replaces the buffer.
    f.write(&cx, 5000, b"x").unwrap();
    assert_eq!(space.buffers.load(Ordering::Relaxed), 1);
    f.write(&cx, 4096, &[7u8; 4096]).unwrap();
    assert_eq!(space.buffers.load(Ordering::Relaxed), 0);
    assert_eq!(f.read(&cx, 4096, 4096).unwrap(), vec![7u8; 4096]);
    assert_eq!(space.used.load(Ordering::Relaxed), 1);
    f.clear(&cx);
    assert_eq!(space.used.load(Ordering::Relaxed), 0);
    assert_eq!(store.pool_stats().objects, 0);
}

#[test]
fn overwrite_at_a_hard_pool_limit_still_fits() {
    // 300 incompressible blocks under a 320-page limit, no backing: a
    // 1 MiB overwrite cannot have its new blocks beside the old ones.
    let pool = crate::pool::Pool::new(
        crate::pool::PoolConfig {
            limit: Some(320 * 4096),
            ..crate::pool::PoolConfig::unlimited(crate::store::unit::max_object_size(4096))
        },
        None,
    );
    let store = Store::with_pool(4096, std::sync::Arc::new(pool));
    let space = Space::new(u64::MAX, 4096, 64 << 20);
    let cx = Ctx::new(&store, &space);
    use crate::test_data::noise;
    let mut f = FileData::default();
    let first = noise(1, 300 * 4096);
    assert_eq!(f.write(&cx, 0, &first).unwrap(), first.len());
    let second = noise(2, 256 * 4096);
    assert_eq!(f.write(&cx, 0, &second).unwrap(), second.len());
    assert_eq!(f.read(&cx, 0, second.len()).unwrap(), second);
    assert_eq!(
        f.read(&cx, second.len() as u64, 4096).unwrap(),
        &first[second.len()..][..4096]
    );
    f.clear(&cx);
    assert_eq!(store.pool_stats().objects, 0);
}

#[test]
fn truncate_punch_seek() {
    let (store, space) = setup(u64::MAX);
    let cx = Ctx::new(&store, &space);
    let mut f = FileData::default();
    f.write(&cx, 10 * 4096 + 5, b"abc").unwrap();
    assert_eq!(f.size, 10 * 4096 + 8);
    assert_eq!(f.allocated_blocks(), 1);
    assert_eq!(f.seek_data(&cx, 0).unwrap(), 10 * 4096);
    assert_eq!(f.seek_hole(&cx, 0).unwrap(), 0);
    assert_eq!(f.seek_hole(&cx, 10 * 4096).unwrap(), 10 * 4096 + 8);
    f.truncate(&cx, 10 * 4096 + 6).unwrap();
    f.truncate(&cx, 10 * 4096 + 8).unwrap();
    assert_eq!(&f.read(&cx, 10 * 4096, 8).unwrap(), b"\0\0\0\0\0a\0\0");
    f.write(&cx, 0, &vec![9u8; 3 * 4096]).unwrap();
    f.punch_hole(&cx, 100, 2 * 4096).unwrap();
    let r = f.read(&cx, 0, 3 * 4096).unwrap();
    assert!(r[..100].iter().all(|&b| b == 9));
    assert!(r[100..100 + 8192].iter().all(|&b| b == 0));
    assert!(r[100 + 8192..].iter().all(|&b| b == 9));
    assert_eq!(f.allocated_blocks(), 2 + 1);
    f.punch_hole(&cx, 0, 4 * 4096).unwrap();
    assert_eq!(f.allocated_blocks(), 1);
    f.allocate(&cx, 0, 4096 * 2, false, false).unwrap();
    assert_eq!(f.allocated_blocks(), 3);
    assert_eq!(store.pool_stats().objects, 1);
    f.truncate(&cx, 0).unwrap();
    assert_eq!(space.used.load(Ordering::Relaxed), 0);
    assert_eq!(store.pool_stats().objects, 0);
}
