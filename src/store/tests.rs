//! Unit tests of the block codec (dedup's are in dedup_tests.rs).

use super::*;

fn roundtrip(s: &Store, data: &[u8]) -> Block {
    let b = s.put(data).unwrap();
    let mut out = vec![0xAAu8; data.len()];
    s.get(&b, &mut out).unwrap();
    assert_eq!(out, data);
    b
}

#[test]
fn same_filled_block_has_no_pool_object() {
    let s = Store::new(4096);
    let b = roundtrip(&s, &[7u8; 4096]);
    assert_eq!(b, Block::Same(7));
    assert_eq!(s.pool_stats().objects, 0);
    assert_eq!(s.stats().same_pages, 1);
    assert_eq!(s.stats().orig_data_size, 4096);
    s.free(b);
    let st = StoreStats {
        dedup_index_bytes: 0,
        recomp_meta_bytes: 0,
        ..s.stats()
    };
    assert_eq!(st, StoreStats::default());
}

#[test]
fn incompressible_block_is_raw_and_compressible_is_lz4() {
    let s = Store::new(8192);
    let random = crate::test_data::noise(0x12345678, 8192);
    let raw = roundtrip(&s, &random);
    assert!(matches!(raw, Block::Raw(_)));
    let text: Vec<u8> = b"hello world, compress me please. "
        .iter()
        .cycle()
        .take(8192)
        .copied()
        .collect();
    let lz = roundtrip(&s, &text);
    assert!(matches!(lz, Block::Lz4(_)));
    let st = s.stats();
    assert_eq!(st.huge_pages, 1);
    assert_eq!(st.compressed_pages, 1);
    assert!(st.compr_data_size > 8192 && st.compr_data_size < 8192 + 1000);
    assert_eq!(st.orig_data_size, 16384);
    s.free(raw);
    s.free(lz);
    assert_eq!(s.pool_stats().objects, 0);
    assert_eq!(s.stats().compr_data_size, 0);
}

#[test]
fn same_filled_detects_last_byte_difference() {
    let mut d = vec![0u8; 4096];
    assert_eq!(same_filled(&d), Some(0));
    d[4095] = 1;
    assert_eq!(same_filled(&d), None);
    d[4095] = 0;
    d[3] = 1;
    assert_eq!(same_filled(&d), None);
}
