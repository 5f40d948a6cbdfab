//! The record format: how written-back objects lie in the backing file.
//!
//! ```text
//! record: magic u32 | frames u32 | body bytes u32 | crc32c of these 12 B
//!         frame*:  handle id u32 | len u32 | crc32c(id, len, data) u32 | data
//! ```
//!
//! All integers little-endian. Records are packed at any byte offset after
//! the file header. A handle written back points at its frame; reading it is
//! one `pread` of `FRAME_HEADER + len` bytes, and the frame's own checksum
//! and handle id are checked (`frame_ok`) before a byte reaches the caller.
//! The encoder (`build_record`) and the decoder (`frames`, `frame_ok`) are
//! here side by side so the two cannot drift apart.

use super::crc32c::crc32c;

pub(crate) const RECORD_MAGIC: u32 = 0x5a53_5231; // "ZSR1"
/// Bytes before the first frame of a record.
pub(crate) const RECORD_HEADER: usize = 16;
/// Bytes before a frame's data.
pub(crate) const FRAME_HEADER: usize = 12;

/// Build a record from frames `(handle id, data)`; returns the bytes and
/// each frame's offset inside the record.
pub(crate) fn build_record(frames: &[(u32, &[u8])]) -> (Vec<u8>, Vec<u64>) {
    let body: usize = frames.iter().map(|(_, d)| FRAME_HEADER + d.len()).sum();
    let mut rec = Vec::with_capacity(RECORD_HEADER + body);
    rec.extend_from_slice(&RECORD_MAGIC.to_le_bytes());
    rec.extend_from_slice(&(frames.len() as u32).to_le_bytes());
    rec.extend_from_slice(&(body as u32).to_le_bytes());
    let hcrc = crc32c(0, &rec[..12]);
    rec.extend_from_slice(&hcrc.to_le_bytes());
    let mut offs = Vec::with_capacity(frames.len());
    for &(id, data) in frames {
        offs.push(rec.len() as u64);
        rec.extend_from_slice(&id.to_le_bytes());
        rec.extend_from_slice(&(data.len() as u32).to_le_bytes());
        let c = crc32c(crc32c(0, &rec[rec.len() - 8..]), data);
        rec.extend_from_slice(&c.to_le_bytes());
        rec.extend_from_slice(data);
    }
    (rec, offs)
}

/// Check a frame read back for handle `id` with data length `len`.
pub(crate) fn frame_ok(frame: &[u8], id: u32, len: usize) -> bool {
    frame.len() == FRAME_HEADER + len
        && frame[0..4] == id.to_le_bytes()
        && frame[4..8] == (len as u32).to_le_bytes()
        && frame[8..12] == crc32c(crc32c(0, &frame[0..8]), &frame[12..]).to_le_bytes()
}

/// One frame found in a record read back whole.
pub(crate) struct Frame<'a> {
    /// Handle id the frame says it belongs to.
    pub id: u32,
    /// Data length.
    pub len: usize,
    /// Offset of the frame from the start of the record.
    pub at: usize,
    /// The whole frame, header included (what `frame_ok` checks).
    pub bytes: &'a [u8],
}

impl Frame<'_> {
    /// The frame's data, after its header.
    pub fn data(&self) -> &[u8] {
        &self.bytes[FRAME_HEADER..]
    }
}

/// The frames of record `rec` in order, up to the first one that does not
/// fit in `rec` (a damaged length ends the walk; nothing is checked here:
/// call `frame_ok` on each before trusting its data).
pub(crate) fn frames(rec: &[u8]) -> impl Iterator<Item = Frame<'_>> {
    let mut at = RECORD_HEADER;
    std::iter::from_fn(move || {
        if at + FRAME_HEADER > rec.len() {
            return None;
        }
        let id = u32::from_le_bytes(rec[at..at + 4].try_into().unwrap());
        let len = u32::from_le_bytes(rec[at + 4..at + 8].try_into().unwrap()) as usize;
        let end = at + FRAME_HEADER + len;
        if end > rec.len() {
            return None;
        }
        let f = Frame {
            id,
            len,
            at,
            bytes: &rec[at..end],
        };
        at = end;
        Some(f)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_read_back_what_build_record_wrote() {
        let (rec, offs) = build_record(&[(7, b"hello"), (9, &[1u8; 50]), (3, b"")]);
        let got: Vec<_> = frames(&rec).collect();
        assert_eq!(got.len(), 3);
        for (f, (&(id, len), &off)) in got
            .iter()
            .zip([(7u32, 5usize), (9, 50), (3, 0)].iter().zip(&offs))
        {
            assert_eq!((f.id, f.len, f.at as u64), (id, len, off));
            assert!(frame_ok(f.bytes, id, len));
        }
        assert_eq!(got[0].data(), b"hello");
        // A truncated record ends the walk at the frame that does not fit.
        assert_eq!(frames(&rec[..rec.len() - 1]).count(), 2);
    }
}
