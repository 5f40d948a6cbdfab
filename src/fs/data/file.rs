//! A regular file's data ([`FileData`]): its size, block map and one-block
//! write buffer; reads, flush, truncate, hole punching, fallocate and
//! SEEK_DATA/SEEK_HOLE. The write path is `write.rs`, block sharing
//! `share.rs`.

use super::map::BlockMap;
use super::{store_err, Ctx, MAX_FILE_SIZE};
use crate::fs::{Errno, FsResult};
use crate::store::Store;

/// The uncompressed block being written.
pub(super) struct Dirty {
    /// Block index; the buffer is the authoritative content of that block.
    pub(super) idx: u64,
    /// Exactly `block_size` bytes.
    pub(super) buf: Box<[u8]>,
}

#[derive(Default)]
pub(crate) struct FileData {
    /// Logical size in bytes. Bytes past it in the last block are zero.
    pub(crate) size: u64,
    /// Present blocks. A block index in `dirty` may also be here (its older
    /// content); the buffer wins. Its space is reserved once either way.
    pub(super) blocks: BlockMap,
    /// The write buffer, if any; boxed, as few files have one at a time.
    pub(super) dirty: Option<Box<Dirty>>,
}

impl FileData {
    /// Blocks present (for `st_blocks` and accounting).
    pub(crate) fn allocated_blocks(&self) -> u64 {
        let extra = match &self.dirty {
            Some(d) if !self.blocks.contains_key(&d.idx) => 1,
            _ => 0,
        };
        self.blocks.len() as u64 + extra
    }

    /// Bytes this file's data costs in the pool now: compressed objects at
    /// their stored size, same-filled blocks at nothing, the write buffer
    /// (held uncompressed) at a whole block. For `zsfs stats FILE`.
    pub(crate) fn stored_bytes(&self, store: &Store) -> u64 {
        let objects: u64 = self
            .blocks
            .iter()
            .filter(|(idx, _)| self.dirty.as_ref().is_none_or(|d| d.idx != *idx))
            .map(|(_, b)| store.stored_len(b) as u64)
            .sum();
        let buffered = self.dirty.as_ref().map_or(0, |d| d.buf.len() as u64);
        objects + buffered
    }

    fn present(&self, idx: u64) -> bool {
        self.blocks.contains_key(&idx) || self.dirty.as_ref().is_some_and(|d| d.idx == idx)
    }

    /// Copy the current content of block `idx` into `out` (block-sized).
    pub(super) fn load(&self, cx: &Ctx, idx: u64, out: &mut [u8]) -> FsResult<()> {
        if let Some(d) = self.dirty.as_ref().filter(|d| d.idx == idx) {
            out.copy_from_slice(&d.buf);
            return Ok(());
        }
        match self.blocks.get(&idx) {
            Some(b) => cx.store.get(b, out).map_err(store_err),
            None => {
                out.fill(0);
                Ok(())
            }
        }
    }

    /// Replace block `idx` with `data` (block-sized), already reserved.
    pub(super) fn put(&mut self, cx: &Ctx, idx: u64, data: &[u8]) -> FsResult<()> {
        let b = cx.store.put(data).map_err(store_err)?;
        if let Some(old) = self.blocks.insert(idx, b) {
            cx.store.free(old);
        }
        Ok(())
    }

    /// Compress the write buffer into the store, and give back the block
    /// map's spare capacity. On failure the buffer is kept, so nothing
    /// written is lost, and the error is returned.
    pub(crate) fn flush(&mut self, cx: &Ctx) -> FsResult<()> {
        if let Some(d) = self.dirty.take() {
            if let Err(e) = self.put(cx, d.idx, &d.buf) {
                self.dirty = Some(d);
                return Err(e);
            }
            cx.space.give_buffer();
        }
        self.blocks.shrink();
        Ok(())
    }

    /// Read up to `len` bytes at `off`; short at end of file.
    #[cfg(test)]
    pub(crate) fn read(&self, cx: &Ctx, off: u64, len: usize) -> FsResult<Vec<u8>> {
        let mut out = Vec::new();
        self.read_into(cx, off, len, &mut out)?;
        Ok(out)
    }

    /// Bytes a read of `len` at `off` returns (short at end of file).
    pub(crate) fn read_len(&self, off: u64, len: usize) -> usize {
        if off >= self.size {
            return 0;
        }
        (self.size.min(off.saturating_add(len as u64)) - off) as usize
    }

    /// Read up to `len` bytes at `off` into `out`, which is resized to what
    /// was read; every byte of it is written, so a reused buffer needs no
    /// zeroing.
    pub(crate) fn read_into(
        &self,
        cx: &Ctx,
        off: u64,
        len: usize,
        out: &mut Vec<u8>,
    ) -> FsResult<()> {
        out.resize(self.read_len(off, len), 0);
        self.fill(cx, off, out)
    }

    /// Fill `dst` with the file's bytes at `off..off + dst.len()`, all
    /// below `size`.
    fn fill(&self, cx: &Ctx, off: u64, dst: &mut [u8]) -> FsResult<()> {
        let bs = cx.bs();
        let end = off + dst.len() as u64;
        let mut tmp: Vec<u8> = Vec::new();
        let mut pos = off;
        while pos < end {
            let idx = pos / bs;
            let boff = (pos % bs) as usize;
            let n = ((bs - boff as u64).min(end - pos)) as usize;
            let d = &mut dst[(pos - off) as usize..][..n];
            if !self.present(idx) {
                d.fill(0);
            } else if n as u64 == bs {
                self.load(cx, idx, d)?;
            } else {
                tmp.resize(bs as usize, 0);
                self.load(cx, idx, &mut tmp)?;
                d.copy_from_slice(&tmp[boff..boff + n]);
            }
            pos += n as u64;
        }
        Ok(())
    }

    /// Zero bytes `[from, to)` of block `idx` if it is present (rewrite it).
    fn zero_partial(&mut self, cx: &Ctx, idx: u64, from: usize, to: usize) -> FsResult<()> {
        if !self.present(idx) || from >= to {
            return Ok(());
        }
        let mut buf = vec![0u8; cx.bs() as usize];
        self.load(cx, idx, &mut buf)?;
        buf[from..to].fill(0);
        self.put(cx, idx, &buf)
    }

    /// Remove every present block with index in `[first, last)`.
    fn remove_blocks(&mut self, cx: &Ctx, first: u64, last: u64) {
        if first >= last {
            return;
        }
        let doomed: Vec<u64> = self.blocks.range(first..last).map(|(k, _)| k).collect();
        // Highest first: a dense map's span then shrinks with each removal
        // (a truncated file stays dense) instead of keeping its holes until
        // the last removal.
        for k in doomed.iter().rev() {
            let b = self.blocks.remove(k).expect("key from range");
            cx.store.free(b);
        }
        cx.space.release(doomed.len() as u64);
    }

    /// Change the size. Shrinking frees whole blocks past the end and zeroes
    /// the tail of the new last block; growing leaves a hole.
    pub(crate) fn truncate(&mut self, cx: &Ctx, new_size: u64) -> FsResult<()> {
        if new_size > MAX_FILE_SIZE {
            return Err(Errno(libc::EFBIG));
        }
        self.flush(cx)?;
        let bs = cx.bs();
        if new_size < self.size {
            let keep = new_size.div_ceil(bs);
            self.remove_blocks(cx, keep, u64::MAX);
            if new_size % bs != 0 {
                self.zero_partial(cx, new_size / bs, (new_size % bs) as usize, bs as usize)?;
            }
        }
        self.size = new_size;
        Ok(())
    }

    /// Free the whole file's data (last link gone).
    pub(crate) fn clear(&mut self, cx: &Ctx) {
        if let Some(d) = self.dirty.take() {
            if !self.blocks.contains_key(&d.idx) {
                cx.space.release(1);
            }
            cx.space.give_buffer();
        }
        self.remove_blocks(cx, 0, u64::MAX);
        self.size = 0;
    }

    /// FALLOC_FL_PUNCH_HOLE: whole blocks in the range become holes, partial
    /// ends are zeroed. The size never changes.
    pub(crate) fn punch_hole(&mut self, cx: &Ctx, off: u64, len: u64) -> FsResult<()> {
        self.flush(cx)?;
        let bs = cx.bs();
        let end = off.saturating_add(len).min(self.size.max(off));
        if end <= off {
            return Ok(());
        }
        let first_full = off.div_ceil(bs);
        let last_full = end / bs; // exclusive
        if first_full > last_full {
            // Inside one block.
            return self.zero_partial(
                cx,
                off / bs,
                (off % bs) as usize,
                (end - off / bs * bs) as usize,
            );
        }
        if off % bs != 0 {
            self.zero_partial(cx, off / bs, (off % bs) as usize, bs as usize)?;
        }
        self.remove_blocks(cx, first_full, last_full);
        if end % bs != 0 && end / bs >= first_full {
            self.zero_partial(cx, end / bs, 0, (end % bs) as usize)?;
        }
        Ok(())
    }

    /// fallocate mode 0 / KEEP_SIZE / ZERO_RANGE. Allocation makes absent
    /// blocks present as `Same(0)` (reserving space, no pool memory);
    /// `zero` also zeroes present data in the range. On ENOSPC nothing is
    /// allocated, as tmpfs undoes a failed fallocate.
    pub(crate) fn allocate(
        &mut self,
        cx: &Ctx,
        off: u64,
        len: u64,
        keep_size: bool,
        zero: bool,
    ) -> FsResult<()> {
        let end = off
            .checked_add(len)
            .filter(|&e| e <= MAX_FILE_SIZE)
            .ok_or(Errno(libc::EFBIG))?;
        self.flush(cx)?;
        let bs = cx.bs();
        let first = off / bs;
        let last = end.div_ceil(bs);
        let missing = (last - first) - self.blocks.range(first..last).count() as u64;
        if !cx.space.reserve(missing) {
            return Err(Errno(libc::ENOSPC));
        }
        // One zero block for every put: fio and friends preallocate whole
        // files, so this loop may run for millions of blocks.
        let zeros = vec![0u8; bs as usize];
        for idx in first..last {
            let bstart = idx * bs;
            let from = off.max(bstart) - bstart;
            let to = end.min(bstart + bs) - bstart;
            match self.blocks.get(&idx) {
                None => {
                    self.blocks
                        .insert(idx, cx.store.put(&zeros).map_err(store_err)?);
                }
                Some(_) if zero => {
                    if from == 0 && to == bs {
                        let z = cx.store.put(&zeros).map_err(store_err)?;
                        let old = self.blocks.insert(idx, z).expect("present");
                        cx.store.free(old);
                    } else {
                        self.zero_partial(cx, idx, from as usize, to as usize)?;
                    }
                }
                Some(_) => {}
            }
        }
        if !keep_size && end > self.size {
            self.size = end;
        }
        Ok(())
    }

    /// SEEK_DATA: the first data offset at or after `off`.
    pub(crate) fn seek_data(&self, cx: &Ctx, off: u64) -> FsResult<u64> {
        if off >= self.size {
            return Err(Errno(libc::ENXIO));
        }
        let bs = cx.bs();
        let idx = off / bs;
        let mut next = self.blocks.range(idx..).next().map(|(k, _)| k);
        if let Some(d) = &self.dirty {
            if d.idx >= idx && next.is_none_or(|n| d.idx < n) {
                next = Some(d.idx);
            }
        }
        match next {
            Some(k) => {
                let at = off.max(k * bs);
                if at >= self.size {
                    Err(Errno(libc::ENXIO))
                } else {
                    Ok(at)
                }
            }
            None => Err(Errno(libc::ENXIO)),
        }
    }

    /// SEEK_HOLE: the first hole offset at or after `off` (end of file counts).
    pub(crate) fn seek_hole(&self, cx: &Ctx, off: u64) -> FsResult<u64> {
        if off >= self.size {
            return Err(Errno(libc::ENXIO));
        }
        let bs = cx.bs();
        let mut idx = off / bs;
        while self.present(idx) {
            idx += 1;
        }
        Ok(off.max(idx * bs).min(self.size))
    }
}
