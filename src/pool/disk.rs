//! The pool's side of objects on disk: reading a frame back, freeing it,
//! rewriting mostly-dead records, and checking an on-disk entry.
//!
//! - **Reads** of a written-back object: one `pread` of its frame under the
//!   shared `disk_rw` lock; the frame's handle id and CRC-32C are checked, a
//!   mismatch is `PoolError::Checksum` (logged, counted, EIO upstairs).
//!   Objects stay on disk until freed.
//! - **Frees** tell the backing file the frame is dead (under the object's
//!   class lock and the shared `disk_rw`); a record with no live frame left
//!   is dropped and its whole blocks punched.
//! - **Rewrite**: records under a quarter live are copied together into a
//!   new one with no lock held, then their live handles are repointed under
//!   the exclusive `disk_rw`, and the old records are dropped.

use super::*;
use crate::backing::record::{build_record, frame_ok, frames, FRAME_HEADER};

/// Live data one rewrite pass moves at most: enough to give back a lot of
/// dead space per pass, little enough that one pass is a few ms of I/O.
const REWRITE_MAX_BYTES: u64 = 256 * 1024;

impl Pool {
    /// One `pread` of the object's frame, checked before the caller sees it.
    pub(crate) fn read_disk(&self, id: u32, out: &mut Vec<u8>) -> Result<(), PoolError> {
        let bk = self
            .backing
            .as_ref()
            .expect("disk entry needs a backing file");
        let _d = self.disk_rw.read();
        let Loc::Disk { len, off } = self.handles.entry(id).load() else {
            unreachable!("an object on disk never comes back to memory")
        };
        let start = out.len();
        out.resize(start + FRAME_HEADER + len, 0);
        if let Err(e) = bk.read_at(&mut out[start..], off) {
            out.truncate(start);
            log::error!(
                "backing file {}: reading {len} bytes at {off}: {e}",
                bk.name()
            );
            return Err(PoolError::Io(e));
        }
        if !frame_ok(&out[start..], id, len) {
            out.truncate(start);
            self.wb.checksum_failures.fetch_add(1, Ordering::Relaxed);
            log::error!(
                "backing file {}: checksum mismatch for object {id} ({len} bytes) at offset {off}; \
                 the read fails with EIO",
                bk.name()
            );
            return Err(PoolError::Checksum { offset: off });
        }
        out.drain(start..start + FRAME_HEADER);
        self.wb.bd_reads.fetch_add(
            (len as u64).div_ceil(PAGE_SIZE as u64).max(1),
            Ordering::Relaxed,
        );
        Ok(())
    }

    /// Move the live frames of mostly-dead records into one new record and
    /// drop the old ones (their space is punched and reused).
    /// Rewrite mostly-dead backing-file records (reclaim does this by
    /// itself once enough is dead); returns the file bytes given back.
    pub fn compact_backing(&self) -> Result<u64, PoolError> {
        let Some(bk) = &self.backing else {
            return Ok(0);
        };
        let old = bk.take_sparse(REWRITE_MAX_BYTES);
        if old.is_empty() {
            return Ok(0);
        }
        // Read each old record whole and collect frames whose handle still
        // points at them (checked again under the write lock below).
        let mut frames_out: Vec<(u32, usize, u64, Vec<u8>)> = Vec::new();
        let mut buf = Vec::new();
        for &(off, rec) in &old {
            buf.resize(rec.len as usize, 0);
            if bk.read_at(&mut buf, off).is_err() {
                continue;
            }
            for f in frames(&buf) {
                let here = off + f.at as u64;
                let live = f.id < self.handles.high_water()
                    && self.handles.entry(f.id).load()
                        == (Loc::Disk {
                            len: f.len,
                            off: here,
                        });
                // A frame that fails its checksum stays where it is: its
                // reader gets the error, not a silently rewritten copy.
                if live && frame_ok(f.bytes, f.id, f.len) {
                    frames_out.push((f.id, f.len, here, f.data().to_vec()));
                }
            }
        }
        let refs: Vec<(u32, &[u8])> = frames_out
            .iter()
            .map(|(id, _, _, d)| (*id, d.as_slice()))
            .collect();
        let (rec, offs) = build_record(&refs);
        let new_off = if refs.is_empty() {
            None
        } else {
            match bk.write_record(&rec) {
                Ok(o) => Some(o),
                Err(e) => {
                    for &(off, _) in &old {
                        bk.end_rewrite(off);
                    }
                    return Err(PoolError::Io(e));
                }
            }
        };
        {
            // Exclusive: no disk read or free is between loading an entry
            // and using it while entries move.
            let _w = self.disk_rw.write();
            let _moving = self.moving.read();
            let (mut live, mut live_bytes) = (0u32, 0u64);
            if let Some(new_off) = new_off {
                for (k, (id, len, here, _)) in frames_out.iter().enumerate() {
                    let entry = self.handles.entry(*id);
                    if entry.load()
                        == (Loc::Disk {
                            len: *len,
                            off: *here,
                        })
                    {
                        // The new record was written before.
                        entry.set_disk(*len, new_off + offs[k]);
                        bk.frame_dead(*here, *len);
                        live += 1;
                        live_bytes += *len as u64;
                    }
                }
                bk.add_record(new_off, rec.len() as u64, live, live_bytes);
            }
        }
        let before = bk.stats().record_bytes;
        for &(off, _) in &old {
            bk.end_rewrite(off);
        }
        self.wb
            .records_rewritten
            .fetch_add(old.len() as u64, Ordering::Relaxed);
        Ok(before.saturating_sub(bk.stats().record_bytes))
    }

    /// Free an on-disk object (under its class lock, which `free` holds).
    pub(super) fn free_disk(&self, id: u32) {
        // Shared disk_rw: a record rewrite may not repoint it meanwhile.
        let _d = self.disk_rw.read();
        let entry = self.handles.entry(id);
        let Loc::Disk { len, off } = entry.load() else {
            unreachable!("an object on disk never comes back to memory")
        };
        self.backing
            .as_ref()
            .expect("disk entry needs a backing file")
            .frame_dead(off, len);
        // Before disk_rw is dropped.
        entry.set_free();
    }

    /// Reclaim's view of the backing file: is writeback paused on a full disk?
    pub(crate) fn backing_full(&self) -> bool {
        self.backing.as_ref().is_some_and(BackingFile::is_full)
    }

    /// Dead bytes in backing records (what `compact_backing` could give back).
    pub(crate) fn backing_dead_bytes(&self) -> u64 {
        self.backing.as_ref().map_or(0, BackingFile::dead_bytes)
    }
}
