//! Dedup against a model: which blocks share, reference counts, counters,
//! and shared objects surviving compaction, writeback and read-back.

use super::*;
use crate::backing::BackingFile;
use crate::config::Config;
use crate::pool::WritebackRequest;
use crate::reclaim::{ReclaimConfig, ReclaimThread};
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};

const BS: usize = 4096;

/// A small set of contents so that puts hit often: 0 same-filled, 1..=4
/// compressible, 5..=6 incompressible (raw), 7 = content 1 with its last
/// byte changed (same length and mostly the same bytes, must not share).
fn content(i: usize) -> Vec<u8> {
    match i {
        0 => vec![0u8; BS],
        1..=4 => format!("block {i}: the quick brown fox jumps over the lazy dog. ")
            .into_bytes()
            .into_iter()
            .cycle()
            .take(BS)
            .collect(),
        5 | 6 => crate::test_data::noise(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i as u64), BS),
        7 => {
            let mut v = content(1);
            v[BS - 1] ^= 1;
            v
        }
        _ => unreachable!(),
    }
}

const CONTENTS: usize = 8;

/// The backing file's directory and the reclaim thread of a backed store:
/// keep it alive as long as the store.
struct Backed {
    _reclaim: Option<ReclaimThread>,
    dir: tempfile::TempDir,
}

impl Backed {
    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

/// A store over a backed pool with its reclaim thread.
fn backed_store(limit: Option<u64>) -> (Store, Backed) {
    let dir = tempfile::tempdir().unwrap();
    let backing = BackingFile::create_at(&dir.path().join("backing")).unwrap();
    let (pool, reclaim) = crate::mount::pool(
        PoolConfig {
            limit,
            ..pool_config(BS)
        },
        Some(backing),
        ReclaimConfig {
            watch_pressure: false,
            ..crate::mount::reclaim_config(&Config::default())
        },
    )
    .unwrap();
    (
        Store::with_pool(BS, pool),
        Backed {
            _reclaim: reclaim,
            dir,
        },
    )
}

/// The pool settings a mount of `BS` blocks uses, defaults from `Config`.
fn pool_config(bs: usize) -> PoolConfig {
    crate::mount::pool_config(&Config {
        block_size: bs as u32,
        ..Config::default()
    })
}

fn unbacked(bs: usize) -> Arc<Pool> {
    Arc::new(Pool::new(pool_config(bs), None))
}

fn read(s: &Store, b: &Block) -> Vec<u8> {
    let mut out = vec![0xA5u8; BS];
    s.get(b, &mut out).unwrap();
    out
}

fn handle(b: &Block) -> Option<Handle> {
    match *b {
        Block::Same(_) => None,
        Block::Lz4(h) | Block::Raw(h) | Block::Zstd { unit: h, .. } => Some(h),
    }
}

#[test]
fn identical_blocks_share_one_object_until_the_last_free() {
    let s = Store::new(BS);
    let a = s.put(&content(1)).unwrap();
    let b = s.put(&content(1)).unwrap();
    assert_eq!(a, b, "second put names the first object");
    let r1 = s.put(&content(5)).unwrap();
    let r2 = s.put(&content(5)).unwrap();
    assert!(matches!(r1, Block::Raw(_)));
    assert_eq!(r1, r2);
    let near = s.put(&content(7)).unwrap();
    assert_ne!(handle(&near), handle(&a));
    assert_eq!((s.refs(&a), s.refs(&r1), s.refs(&near)), (2, 2, 1));
    let st = s.stats();
    assert_eq!(s.pool_stats().objects, 3);
    assert_eq!(
        (st.dedup_pages, st.compressed_pages, st.huge_pages),
        (2, 3, 2)
    );
    assert_eq!(
        st.dedup_data_size,
        (s.stored_len(&a) + s.stored_len(&r1)) as u64
    );
    assert_eq!(
        st.compr_data_size,
        (s.stored_len(&a) + s.stored_len(&r1) + s.stored_len(&near)) as u64
    );
    assert!(st.dedup_index_bytes > 0);
    s.debug_check_quiescent();
    s.free(a);
    assert_eq!(read(&s, &b), content(1), "the other reference still reads");
    assert_eq!(s.pool_stats().objects, 3);
    s.free(b);
    s.free(r1);
    s.free(near);
    assert_eq!(s.pool_stats().objects, 1);
    assert_eq!(read(&s, &r2), content(5));
    s.free(r2);
    s.debug_check_quiescent();
    let st = s.stats();
    assert_eq!(
        (s.pool_stats().objects, st.dedup_pages, st.compr_data_size),
        (0, 0, 0)
    );
}

#[test]
fn dedup_off_stores_every_block_separately() {
    let s = Store::with_config(
        StoreConfig {
            block_size: BS,
            dedup: false,
        },
        unbacked(BS),
    );
    let a = s.put(&content(2)).unwrap();
    let b = s.put(&content(2)).unwrap();
    assert_ne!(a, b);
    assert_eq!(s.pool_stats().objects, 2);
    assert_eq!((s.stats().dedup_pages, s.stats().dedup_index_bytes), (0, 0));
    s.debug_check_quiescent();
    s.free(a);
    s.free(b);
    assert_eq!(s.pool_stats().objects, 0);
}

/// A hash match alone never shares: index content 2's object under content
/// 3's key (what a collision looks like) and put content 3.
#[test]
fn hash_match_with_other_content_is_not_shared() {
    let s = Store::new(BS);
    let a = s.put(&content(2)).unwrap();
    let d = s.dedup.as_ref().unwrap();
    let fake = s
        .pool
        .alloc(
            &s.pool
                .read_with(handle(&a).unwrap(), |b| b.to_vec())
                .unwrap(),
        )
        .unwrap();
    s.meta.born(fake);
    d.insert(&s.meta, Key::of(&content(3)), fake);
    let b = s.put(&content(3)).unwrap();
    assert_ne!(handle(&b), Some(fake));
    assert_eq!(read(&s, &b), content(3));
    assert_eq!(s.stats().dedup_collisions, 1);
    assert_eq!(d.release(&s.meta, fake), Release::Last);
    s.meta.died(fake);
    s.pool.free(fake);
    s.free(a);
    s.free(b);
    assert_eq!(s.pool_stats().objects, 0);
}

/// Shared objects written back stay shared and readable; a put whose only
/// candidate is on disk stores a new copy (no disk read under a shard lock);
/// damaged records give EIO, never another block's bytes.
#[test]
fn shared_objects_survive_writeback_and_read_back() {
    let (s, dir) = backed_store(None);
    let blocks: Vec<Block> = (0..6).map(|_| s.put(&content(3)).unwrap()).collect();
    assert_eq!(s.pool_stats().objects, 1);
    s.writeback(WritebackRequest::All).unwrap();
    assert_eq!(s.pool_stats().disk_objects, 1);
    let late = s.put(&content(3)).unwrap();
    assert_ne!(
        handle(&late),
        handle(&blocks[0]),
        "on-disk candidate is a miss"
    );
    let later = s.put(&content(3)).unwrap();
    assert_eq!(later, late, "the resident copy is found past the disk one");
    for b in &blocks {
        assert_eq!(read(&s, b), content(3));
    }
    assert!(s.pool_stats().bd_reads > 0);
    s.debug_check_quiescent();
    for b in &blocks[..5] {
        s.free(*b);
    }
    assert_eq!(s.refs(&blocks[5]), 1);
    s.debug_check_quiescent();
    // Damage the backing file: the written-back object reads as EIO.
    let path = dir.path().join("backing");
    let mut data = std::fs::read(&path).unwrap();
    for b in data[4096..].iter_mut() {
        *b ^= 0x5a;
    }
    std::fs::write(&path, &data).unwrap();
    let mut out = vec![0u8; BS];
    let err = s.get(&blocks[5], &mut out).unwrap_err();
    assert_eq!(err.errno(), libc::EIO);
    s.free(blocks[5]);
    s.free(late);
    s.free(later);
    s.debug_check_quiescent();
    assert_eq!(
        (s.pool_stats().objects, s.pool_stats().disk_objects),
        (0, 0)
    );
}

/// `share` takes a reference without compressing or allocating: the pool
/// and compr_data_size stay as they were, dedup_pages and the logical
/// counters grow, and each copy outlives the other's free. Written-back
/// objects are shared without being read in.
#[test]
fn share_takes_a_reference_and_each_copy_outlives_the_other() {
    let (s, _dir) = backed_store(None);
    for c in [1, 5, 0] {
        let a = s.put(&content(c)).unwrap();
        let before = (s.pool_stats().objects, s.stats().compr_data_size);
        let orig = s.stats().orig_data_size;
        let b = s.share(&a).unwrap();
        assert_eq!(a, b, "content {c}: the copy names the same object");
        assert_eq!(
            (s.pool_stats().objects, s.stats().compr_data_size),
            before,
            "content {c}: no new pool memory"
        );
        assert_eq!(s.stats().orig_data_size, orig + BS as u64);
        if c != 0 {
            assert_eq!(s.refs(&a), 2);
            assert_eq!(s.stats().dedup_pages, 1);
        }
        s.debug_check_quiescent();
        s.free(a);
        assert_eq!(
            read(&s, &b),
            content(c),
            "content {c}: the copy still reads"
        );
        s.debug_check_quiescent();
        s.free(b);
        s.debug_check_quiescent();
        assert_eq!(s.pool_stats().objects, 0);
    }
    let a = s.put(&content(2)).unwrap();
    s.writeback(WritebackRequest::All).unwrap();
    let reads = s.pool_stats().bd_reads;
    let b = s.share(&a).unwrap();
    assert_eq!(s.pool_stats().bd_reads, reads, "sharing reads nothing");
    assert_eq!((a, s.refs(&a)), (b, 2));
    s.free(b);
    assert_eq!(read(&s, &a), content(2));
    s.free(a);
    s.debug_check_quiescent();
    assert_eq!(s.pool_stats().disk_objects, 0);
}

/// Without dedup there is no reference count: `share` stores a copy, and
/// freeing either leaves the other intact.
#[test]
fn share_without_dedup_stores_a_copy() {
    let s = Store::with_config(
        StoreConfig {
            block_size: BS,
            dedup: false,
        },
        unbacked(BS),
    );
    assert!(!s.shares_objects());
    let a = s.put(&content(4)).unwrap();
    let b = s.share(&a).unwrap();
    assert_ne!(handle(&a), handle(&b));
    assert_eq!(s.pool_stats().objects, 2);
    s.debug_check_quiescent();
    s.free(a);
    assert_eq!(read(&s, &b), content(4));
    s.free(b);
    assert_eq!(s.pool_stats().objects, 0);
}

#[derive(Debug, Clone)]
enum Op {
    Put {
        slot: usize,
        content: usize,
    },
    Free(usize),
    Get(usize),
    /// Slot `to` becomes a copy of slot `from` through `share`.
    Share {
        from: usize,
        to: usize,
    },
    Compact,
    Writeback(WritebackRequest),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..24usize, 0..CONTENTS).prop_map(|(slot, content)| Op::Put { slot, content }),
        4 => (0..24usize).prop_map(Op::Free),
        4 => (0..24usize).prop_map(Op::Get),
        3 => (0..24usize, 0..24usize).prop_map(|(from, to)| Op::Share { from, to }),
        1 => Just(Op::Compact),
        1 => prop_oneof![
            Just(WritebackRequest::All),
            Just(WritebackRequest::Idle),
            (1u64..20_000).prop_map(WritebackRequest::Bytes),
        ]
        .prop_map(Op::Writeback),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random puts (overwrites free the old block after the new put, as the
    /// fs does), shares (a slot copied into another), frees, gets,
    /// compaction and writeback against a model of slot -> content. After every step the invariants hold; at the end
    /// every object's reference count is the number of live blocks naming
    /// it, and without writeback each content has exactly one object.
    #[test]
    fn store_matches_model(ops in prop::collection::vec(op(), 1..120)) {
        let (s, _dir) = backed_store(None);
        let mut model: HashMap<usize, (usize, Block)> = HashMap::new();
        let mut wrote_back = false;
        for op in ops {
            match op {
                Op::Put { slot, content: c } => {
                    let b = s.put(&content(c)).unwrap();
                    if let Some((_, old)) = model.insert(slot, (c, b)) {
                        s.free(old);
                    }
                }
                Op::Free(slot) => {
                    if let Some((_, b)) = model.remove(&slot) {
                        s.free(b);
                    }
                }
                Op::Get(slot) => {
                    if let Some((c, b)) = model.get(&slot) {
                        prop_assert_eq!(read(&s, b), content(*c));
                    }
                }
                Op::Share { from, to } => {
                    if let Some(&(c, b)) = model.get(&from) {
                        let copy = s.share(&b).unwrap();
                        if let Some((_, old)) = model.insert(to, (c, copy)) {
                            s.free(old);
                        }
                    }
                }
                Op::Compact => drop(s.compact()),
                Op::Writeback(req) => {
                    wrote_back |= s.writeback(req).is_ok_and(|r| r.objects > 0);
                }
            }
            s.debug_check_quiescent();
        }
        let mut per_handle: HashMap<Handle, (u64, usize)> = HashMap::new();
        for (c, b) in model.values() {
            prop_assert_eq!(read(&s, b), content(*c));
            if let Some(h) = handle(b) {
                let e = per_handle.entry(h).or_insert((0, *c));
                e.0 += 1;
                prop_assert_eq!(e.1, *c, "one object holds one content");
            }
        }
        for (_, b) in model.values() {
            if let Some(h) = handle(b) {
                prop_assert_eq!(s.refs(b), per_handle[&h].0);
            }
        }
        let ps = s.pool_stats();
        prop_assert_eq!(ps.objects + ps.disk_objects, per_handle.len() as u64);
        if !wrote_back {
            let contents: HashSet<usize> =
                model.values().map(|(c, _)| *c).filter(|&c| c != 0).collect();
            prop_assert_eq!(per_handle.len(), contents.len(), "every content stored once");
        }
        for (_, b) in model.into_values() {
            s.free(b);
        }
        s.debug_check_quiescent();
        let ps = s.pool_stats();
        prop_assert_eq!((ps.objects, ps.disk_objects), (0, 0));
    }
}
