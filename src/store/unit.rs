//! Recompression units: several idle blocks of one file compressed together
//! with zstd into one pool object (issue 13).
//!
//! New writes are LZ4, one object per block: fast to write and to read one
//! block back. Data that has sat idle is worth more CPU once: zstd over up
//! to `recompress_unit=` bytes of consecutive blocks finds matches across
//! block boundaries that neither LZ4 nor a page-granular zram can, which is
//! how zsfs holds a tree in less than zram with zstd.
//!
//! # Object format
//!
//! ```text
//! byte 0        n, the number of blocks in the unit (1..=MAX_UNIT_BLOCKS)
//! bytes 1..     one zstd frame of n * block_size bytes: the blocks in the
//!               order their map entries name them (index 0..n)
//! ```
//!
//! The block size is the store's, so it is not repeated. A map entry names
//! the unit's handle and its index in it; the unit object is shared by its
//! blocks, each holding one reference. [`encode`] and [`decode_into`] are
//! the only code that knows this layout.

/// Most blocks one unit holds: the index rides in a map entry's byte, and
/// 64 KiB of 4 KiB blocks is where zstd's gain levels off (benches/block_size).
pub const MAX_UNIT_BLOCKS: usize = 16;

/// Most bytes of blocks one unit holds (`recompress_unit=`'s ceiling):
/// where zstd's gain over one 4 KiB block levels off (benches/block_size),
/// while a random read still decompresses little.
pub(crate) const MAX_UNIT_BYTES: usize = 64 * 1024;

/// The largest object a store of `block_size` blocks gives its pool: a raw
/// block, or a unit (kept only when at most 7/8 of the `MAX_UNIT_BYTES`
/// or one block it replaces).
pub fn max_object_size(block_size: usize) -> usize {
    block_size.max(MAX_UNIT_BYTES)
}

/// Bytes before the zstd frame.
const HEADER: usize = 1;

/// Why a unit could not be decoded: the object is not what `encode` wrote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UnitError {
    #[error("recompressed unit damaged: {0}")]
    Corrupt(&'static str),
    #[error("recompressed unit does not decompress: {0}")]
    Zstd(String),
}

/// Compress `n` blocks, laid end to end in `blocks` (n * block_size bytes,
/// n at most [`MAX_UNIT_BLOCKS`]), at zstd `level` into `out`.
pub(crate) fn encode(
    blocks: &[u8],
    n: usize,
    level: i32,
    out: &mut Vec<u8>,
) -> std::io::Result<()> {
    debug_assert!((1..=MAX_UNIT_BLOCKS).contains(&n) && blocks.len() % n == 0);
    out.clear();
    out.resize(HEADER + zstd::zstd_safe::compress_bound(blocks.len()), 0);
    out[0] = n as u8;
    let len = CCTX.with(|c| {
        let mut c = c.borrow_mut();
        match &mut *c {
            Some((l, cx)) if *l == level => cx.compress_to_buffer(blocks, &mut out[HEADER..]),
            slot => {
                let cx = slot.insert((level, zstd::bulk::Compressor::new(level)?));
                cx.1.compress_to_buffer(blocks, &mut out[HEADER..])
            }
        }
    })?;
    out.truncate(HEADER + len);
    Ok(())
}

/// Drop this thread's compression context (about 0.6 MiB at level 3): a
/// recompression pass is over, and an idle mount should not keep it.
pub(crate) fn free_compressor() {
    CCTX.with(|c| c.borrow_mut().take());
}

thread_local! {
    /// One zstd context per thread, kept for a pass: a fresh one per call
    /// would allocate (and free into malloc's heap) its tables every time.
    static CCTX: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
    static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// The number of blocks `object` holds, from its header.
pub(crate) fn blocks_in(object: &[u8]) -> Result<usize, UnitError> {
    match object.first() {
        Some(&n) if (1..=MAX_UNIT_BLOCKS).contains(&usize::from(n)) => Ok(usize::from(n)),
        Some(_) => Err(UnitError::Corrupt("block count out of range")),
        None => Err(UnitError::Corrupt("empty object")),
    }
}

/// Decompress the whole unit into `out` (resized to n * `block_size`).
pub(crate) fn decode_into(
    object: &[u8],
    block_size: usize,
    out: &mut Vec<u8>,
) -> Result<usize, UnitError> {
    let n = blocks_in(object)?;
    let want = n * block_size;
    // One byte more than a valid unit holds, so a frame that is too long
    // shows as a wrong length rather than as a full buffer.
    out.resize(want + 1, 0);
    let got = DCTX
        .with(|d| {
            let mut d = d.borrow_mut();
            if d.is_none() {
                *d = Some(zstd::bulk::Decompressor::new()?);
            }
            d.as_mut()
                .expect("set above")
                .decompress_to_buffer(&object[HEADER..], &mut out[..])
        })
        .map_err(|e| UnitError::Zstd(e.to_string()))?;
    if got != want {
        return Err(UnitError::Corrupt("decompressed length is not n blocks"));
    }
    out.truncate(want);
    Ok(n)
}

/// Block `index` of a unit decompressed by [`decode_into`].
pub(crate) fn block_of(unit: &[u8], block_size: usize, index: usize) -> &[u8] {
    &unit[index * block_size..(index + 1) * block_size]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_data::{noise, text};

    #[test]
    fn a_unit_round_trips_each_block() {
        let bs = 4096;
        let blocks: Vec<Vec<u8>> = (0..5).map(|i| text(i, bs)).collect();
        let mut obj = Vec::new();
        encode(&blocks.concat(), 5, 3, &mut obj).unwrap();
        assert_eq!(blocks_in(&obj), Ok(5));
        let mut unit = Vec::new();
        assert_eq!(decode_into(&obj, bs, &mut unit), Ok(5));
        for (i, b) in blocks.iter().enumerate() {
            assert_eq!(block_of(&unit, bs, i), b.as_slice(), "block {i}");
        }
    }

    #[test]
    fn blocks_compressed_together_beat_lz4_alone() {
        // Repetition across block boundaries: zstd over the unit sees it,
        // one-block LZ4 cannot.
        let bs = 4096;
        let first = noise(7, bs);
        let blocks: Vec<Vec<u8>> = (0..8).map(|_| first.clone()).collect();
        let mut obj = Vec::new();
        encode(&blocks.concat(), 8, 3, &mut obj).unwrap();
        let lz4: usize = blocks.iter().map(|b| lz4_flex::compress(b).len()).sum();
        assert!(obj.len() * 4 < lz4, "unit {} vs lz4 {lz4}", obj.len());
    }

    #[test]
    fn damaged_units_are_errors_not_wrong_data() {
        let bs = 4096;
        let b = text(1, bs);
        let mut obj = Vec::new();
        encode(&[b.clone(), b].concat(), 2, 1, &mut obj).unwrap();
        let mut unit = Vec::new();
        assert!(decode_into(&[], bs, &mut unit).is_err());
        assert!(decode_into(&[0], bs, &mut unit).is_err());
        assert!(decode_into(&[17, 0, 0], bs, &mut unit).is_err());
        let mut wrong_n = obj.clone();
        wrong_n[0] = 3;
        assert!(decode_into(&wrong_n, bs, &mut unit).is_err());
        let mut cut = obj.clone();
        cut.truncate(obj.len() / 2);
        assert!(decode_into(&cut, bs, &mut unit).is_err());
    }
}
