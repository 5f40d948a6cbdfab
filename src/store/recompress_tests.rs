//! Recompression at the store: units against reads, frees, shares, dedup,
//! skips and writeback, with the store's invariants after every step.

use super::*;
use crate::test_data::{noise, text};

const BS: usize = 4096;

fn blocks(s: &Store, n: usize, seed: u64) -> (Vec<Block>, Vec<Vec<u8>>) {
    let data: Vec<Vec<u8>> = (0..n).map(|i| text(seed + i as u64, BS)).collect();
    (data.iter().map(|d| s.put(d).unwrap()).collect(), data)
}

fn read(s: &Store, b: &Block) -> Vec<u8> {
    let mut out = vec![0u8; BS];
    s.get(b, &mut out).unwrap();
    out
}

/// Pack `old` into a unit as a pass does: swap, then free the old blocks.
fn pack(s: &Store, old: &[Block]) -> Vec<Block> {
    assert!(old.iter().all(|b| s.recompress_candidate(b, Which::All)));
    let Outcome::Done(new) = s.recompress(old, 3) else {
        panic!("text should recompress");
    };
    for b in old {
        s.free(*b);
    }
    s.debug_check_quiescent();
    new
}

#[test]
fn a_unit_holds_every_block_and_costs_less() {
    let s = Store::new(BS);
    let (old, data) = blocks(&s, 16, 1);
    let before = s.stats().compr_data_size;
    let new = pack(&s, &old);
    let st = s.stats();
    assert_eq!((st.recomp_pages, st.recomp_units), (16, 1));
    assert_eq!(st.compressed_pages, 0);
    assert!(
        st.compr_data_size * 8 <= before * 7,
        "{} vs {before}",
        st.compr_data_size
    );
    assert_eq!(st.recomp_data_size, st.compr_data_size);
    for (b, d) in new.iter().zip(&data).rev() {
        assert_eq!(&read(&s, b), d);
    }
    assert_eq!(s.stats().recomp_reads, 16);
    assert_eq!(s.refs(&new[3]), 16);
    for b in new {
        s.free(b);
        s.debug_check_quiescent();
    }
    assert_eq!(s.pool_stats().objects, 0);
    assert_eq!(s.stats().recomp_units, 0);
}

#[test]
fn idle_means_untouched_since_the_last_pass() {
    let s = Store::new(BS);
    let (old, _) = blocks(&s, 3, 10);
    // Just written: not idle at the first pass, idle at the second.
    assert!(!s.recompress_candidate(&old[0], Which::Idle));
    assert!(s.recompress_candidate(&old[0], Which::Idle));
    // A read between passes makes it busy again, for one pass.
    assert!(!s.recompress_candidate(&old[1], Which::Idle));
    read(&s, &old[1]);
    assert!(!s.recompress_candidate(&old[1], Which::Idle));
    assert!(s.recompress_candidate(&old[1], Which::Idle));
    // `all` takes it regardless (and restarts its idle period).
    assert!(s.recompress_candidate(&old[2], Which::All));
    assert!(s.recompress_candidate(&old[2], Which::Idle));
}

#[test]
fn what_does_not_pay_stays_and_is_not_tried_again() {
    let s = Store::new(BS);
    let raw: Vec<Block> = (0..4)
        .map(|i| s.put(&noise(2 * i + 101, BS)).unwrap())
        .collect();
    assert!(raw.iter().all(|b| matches!(b, Block::Raw(_))));
    assert_eq!(s.recompress(&raw, 3), Outcome::Skipped);
    assert_eq!(s.stats().recomp_skipped, 1);
    assert!(raw.iter().all(|b| !s.recompress_candidate(b, Which::All)));
    s.debug_check_quiescent();
    // Same-filled and unit blocks are never candidates.
    assert!(!s.recompress_candidate(&s.put(&[0u8; BS]).unwrap(), Which::All));
}

#[test]
fn shared_objects_are_left_alone_and_units_can_be_shared() {
    let s = Store::new(BS);
    let d = text(7, BS);
    let (a, b) = (s.put(&d).unwrap(), s.put(&d).unwrap());
    assert_eq!(a, b, "dedup shares them");
    assert!(!s.recompress_candidate(&a, Which::All), "two files hold it");
    s.free(b);
    let unit = pack(&s, &[a]);
    // copy_file_range of a unit block: one more reference, same bytes.
    let copy = s.share(&unit[0]).unwrap();
    assert_eq!(s.refs(&copy), 2);
    s.free(unit[0]);
    assert_eq!(read(&s, &copy), d);
    s.free(copy);
    s.debug_check_quiescent();
    assert_eq!(s.pool_stats().objects, 0);
}

#[test]
fn a_reused_handle_is_not_read_from_the_cache() {
    let s = Store::new(BS);
    let (old, _) = blocks(&s, 4, 20);
    let first = pack(&s, &old);
    read(&s, &first[1]);
    for b in first {
        s.free(b);
    }
    // The freed unit's handle is likely the next one given out.
    let (old, data) = blocks(&s, 4, 40);
    let second = pack(&s, &old);
    for (b, d) in second.iter().zip(&data) {
        assert_eq!(&read(&s, b), d);
    }
}

#[test]
fn units_are_written_back_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::mount::pool_config(&crate::config::Config::default());
    let pool = crate::mount::test_pool(cfg, &crate::config::Backing::Path(dir.path().join("b")));
    let s = Store::with_pool(BS, (*pool).clone());
    let (old, data) = blocks(&s, 16, 60);
    let unit = pack(&s, &old);
    s.writeback(WritebackRequest::All).unwrap();
    assert!(s.pool_stats().disk_objects > 0);
    // Not resident: not a candidate for another pass, but readable.
    for (b, d) in unit.iter().zip(&data) {
        assert_eq!(&read(&s, b), d);
    }
    s.debug_check_consistency();
    for b in unit {
        s.free(b);
    }
    assert_eq!(s.pool_stats().disk_objects, 0);
}
