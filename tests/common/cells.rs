//! Self-describing test data for races: a 64-byte cell carries the version
//! that wrote it and its own offset, so a read can tell a whole cell from a
//! torn or misplaced one without a model of who won.

/// Bytes per cell; writes in these tests are cell-aligned.
pub const CELL: u64 = 64;

/// The bytes version `v` (non-zero) writes at `[off, off + len)`, both
/// cell-aligned.
pub fn cells(v: u64, off: u64, len: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len as usize);
    for o in (off..off + len).step_by(CELL as usize) {
        out.extend_from_slice(&v.to_le_bytes());
        out.extend_from_slice(&o.to_le_bytes());
        // Compressible, but different for every (offset, version).
        out.extend((0..CELL - 16).map(|k| ((o / CELL + v) as u8).wrapping_add((k / 8) as u8)));
    }
    out
}

/// Check bytes read at `off`: every cell zero or a whole cell written there.
pub fn check(data: &[u8], off: u64, what: &str) {
    for (i, c) in data.chunks(CELL as usize).enumerate() {
        let o = off + i as u64 * CELL;
        if c.iter().all(|&b| b == 0) {
            continue;
        }
        let v = u64::from_le_bytes(c[..8].try_into().unwrap());
        assert!(
            c.len() == CELL as usize && v != 0 && c == cells(v, o, CELL).as_slice(),
            "{what}: torn or misplaced cell at {o} (version {v:#x})"
        );
    }
}
