//! Model test: random alloc / read / free / compact / limit sequences against
//! a HashMap, with the pool's consistency check after every step.

use proptest::prelude::*;
use std::collections::HashMap;
use zsfs::config::{Backing, Config};
use zsfs::pool::{Handle, PoolConfig, PoolError, WritebackRequest};

#[derive(Debug, Clone)]
enum Op {
    Alloc { len: usize, seed: u8 },
    Read(usize),
    Free(usize),
    Compact,
    Limit(Option<u64>),
    Writeback(WritebackRequest),
    CompactBacking,
}

fn op(max: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (prop_oneof![0..=64usize, 0..=max, max - 64..=max], any::<u8>())
            .prop_map(|(len, seed)| Op::Alloc { len, seed }),
        3 => any::<usize>().prop_map(Op::Read),
        4 => any::<usize>().prop_map(Op::Free),
        1 => Just(Op::Compact),
        1 => prop::option::of(0u64..400_000).prop_map(Op::Limit),
    ]
}

fn op_wb(max: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => op(max),
        1 => Just(Op::Writeback(WritebackRequest::All)),
        1 => Just(Op::Writeback(WritebackRequest::Idle)),
        2 => (1u64..100_000).prop_map(|n| Op::Writeback(WritebackRequest::Bytes(n))),
        1 => Just(Op::CompactBacking),
    ]
}

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_add((i * 13 + i / 97) as u8))
        .collect()
}

fn run(config: PoolConfig, backing: Backing, ops: Vec<Op>) {
    let max = config.max_object_size;
    let backed = backing != Backing::None;
    let pool = zsfs::mount::test_pool(config, &backing);
    let mut model: HashMap<u64, Vec<u8>> = HashMap::new();
    let mut live: Vec<Handle> = Vec::new();
    for op in ops {
        match op {
            Op::Alloc { len, seed } => {
                let d = bytes(len.min(max), seed);
                let before = pool.stats();
                match pool.alloc(&d) {
                    Ok(h) => {
                        assert!(
                            model.insert(h.to_raw(), d).is_none(),
                            "handle reused while live"
                        );
                        live.push(h);
                    }
                    Err(PoolError::LimitReached {
                        limit,
                        used,
                        needed,
                    }) => {
                        assert!(used + needed > limit);
                        let after = pool.stats();
                        // Nothing half-done (writeback may have moved objects to disk).
                        assert_eq!(
                            before.objects + before.disk_objects,
                            after.objects + after.disk_objects
                        );
                        if backed {
                            assert!(needed > limit, "with a backing file only a zspage larger than the limit is refused");
                        } else {
                            assert_eq!(before.zspages, after.zspages);
                        }
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            Op::Read(i) if !live.is_empty() => {
                let h = live[i % live.len()];
                let got = pool.read_with(h, |b| b.to_vec()).unwrap();
                assert_eq!(&got, &model[&h.to_raw()]);
                assert_eq!(pool.object_len(h), got.len());
            }
            Op::Free(i) if !live.is_empty() => {
                let h = live.swap_remove(i % live.len());
                model.remove(&h.to_raw());
                pool.free(h);
            }
            Op::Compact => {
                pool.compact();
            }
            Op::Limit(l) => pool.set_limit(l),
            Op::Writeback(req) => {
                pool.writeback(req).unwrap();
            }
            Op::CompactBacking => {
                pool.compact_backing().unwrap();
            }
            _ => {}
        }
        pool.debug_check_consistency();
        let st = pool.stats();
        assert_eq!((st.objects + st.disk_objects) as usize, model.len());
        assert_eq!(
            (st.bytes_stored + st.disk_bytes) as usize,
            model.values().map(Vec::len).sum::<usize>()
        );
    }
    for h in &live {
        assert_eq!(
            &pool.read_with(*h, |b| b.to_vec()).unwrap(),
            &model[&h.to_raw()]
        );
    }
}

proptest! {
    // PROPTEST_CASES=N runs more cases.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    #[test]
    fn pool_matches_model_4k(ops in prop::collection::vec(op(4096), 1..400)) {
        run(zsfs::mount::pool_config(&Config::default()), Backing::None, ops);
    }

    #[test]
    fn pool_with_writeback_matches_model(ops in prop::collection::vec(op_wb(4096), 1..300)) {
        let dir = tempfile::tempdir().unwrap();
        run(zsfs::mount::pool_config(&Config::default()), Backing::Path(dir.path().join("backing")), ops);
    }

    #[test]
    fn pool_matches_model_64k_blocks(ops in prop::collection::vec(op(65536), 1..200)) {
        run(PoolConfig { max_object_size: 65536, max_pages_per_zspage: 4, ..zsfs::mount::pool_config(&Config::default()) }, Backing::None, ops);
    }
}
