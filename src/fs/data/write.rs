//! The write path: whole blocks compressed before the inode lock is taken
//! ([`Prepared`], on several threads for a large request), then merged and
//! swapped into the map under it ([`FileData::write_prepared`]). See "A
//! write is two phases" in `data/mod.rs`.

use super::file::{Dirty, FileData};
use super::{check_end, store_err, Ctx};
use crate::fs::{Errno, FsResult};
use crate::store::Block;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Requests at least this large are compressed on several threads: below
/// it the cost of starting a thread (tens of microseconds here, waking an
/// idle vCPU) is not repaid; a 1 MiB request takes about a millisecond.
const PARALLEL_MIN_BYTES: usize = 256 << 10;

/// Write requests in progress (compressing or installing) in one
/// filesystem, all its files; each is counted by a [`Writing`]. A request
/// uses helper threads only for CPUs no other write keeps busy: under the
/// kernel's writeback or concurrent O_DIRECT requests every request thread
/// already has a write, and helpers then only contend with them (measured:
/// more CPU per byte, not less). Per filesystem, not per process: two
/// mounts, or two `Fs` in one test process, do not see each other's writes.
#[derive(Default)]
pub(crate) struct Writers(AtomicUsize);

impl Writers {
    /// Count one write request until the returned guard drops.
    pub(crate) fn start(&self) -> Writing<'_> {
        // Relaxed: a count of requests, guarding nothing but itself.
        self.0.fetch_add(1, Ordering::Relaxed);
        Writing(&self.0)
    }
}

/// One write request counted in its filesystem's [`Writers`] while alive.
pub(crate) struct Writing<'a>(&'a AtomicUsize);

impl Writing<'_> {
    /// Other write requests in progress besides this one.
    fn others(&self) -> usize {
        self.0.load(Ordering::Relaxed).saturating_sub(1)
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn cpus() -> usize {
    static CPUS: OnceLock<usize> = OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The whole blocks of one write, compressed before the inode lock is
/// taken; consumed by [`FileData::write_prepared`].
pub(crate) struct Prepared {
    /// Index of the first block the write covers whole (`blocks[0]`).
    first: u64,
    /// The stored blocks for `first..first + blocks.len()`, in order: a
    /// prefix of the whole blocks, shorter than all of them when the store
    /// refused one (`write_prepared` retries the rest under the lock).
    blocks: Vec<Block>,
    /// The store refused a block: `blocks` stops short.
    short: bool,
}

impl Prepared {
    /// Compress the blocks `[off, off + data.len())` covers whole. Takes no
    /// lock but the store's; `data` must end at or below `MAX_FILE_SIZE`.
    /// `w` is this request's place in its filesystem's count of writes in
    /// progress, which decides how many threads compress.
    pub(crate) fn compress(cx: &Ctx, w: &Writing, off: u64, data: &[u8]) -> Prepared {
        let bs = cx.bs();
        let end = off + data.len() as u64;
        let first = off.div_ceil(bs);
        let last = (end / bs).max(first);
        let whole =
            &data[((first * bs).min(end) - off) as usize..][..((last - first) * bs) as usize];
        let n = (last - first) as usize;
        let parts = if whole.len() >= PARALLEL_MIN_BYTES {
            let others = w.others();
            cpus()
                .saturating_sub(others)
                .clamp(1, whole.len() / (PARALLEL_MIN_BYTES / 2))
        } else {
            1
        };
        let p = if parts <= 1 {
            Self::compress_run(cx, first, whole)
        } else {
            let per = n.div_ceil(parts) * bs as usize;
            std::thread::scope(|s| {
                let mut chunks = whole.chunks(per).enumerate();
                let (_, head) = chunks.next().expect("at least one chunk");
                let helpers: Vec<_> = chunks
                    .map(|(i, c)| {
                        let at = first + (i * per) as u64 / bs;
                        s.spawn(move || Self::compress_run(cx, at, c))
                    })
                    .collect();
                let mut p = Self::compress_run(cx, first, head);
                for h in helpers {
                    let q = h.join().expect("compression thread panicked");
                    if p.short {
                        // Only a prefix counts: drop what follows a failure.
                        for b in q.blocks {
                            cx.store.free(b);
                        }
                    } else {
                        p.blocks.extend(q.blocks);
                        p.short = q.short;
                    }
                }
                p
            })
        };
        p
    }

    /// Compress `data` (whole blocks) as blocks `first..` in this thread,
    /// stopping at the first failure.
    fn compress_run(cx: &Ctx, first: u64, data: &[u8]) -> Prepared {
        let mut p = Prepared {
            first,
            blocks: Vec::with_capacity(data.len() / cx.bs() as usize),
            short: false,
        };
        for chunk in data.chunks_exact(cx.bs() as usize) {
            match cx.store.put(chunk) {
                Ok(b) => p.blocks.push(b),
                Err(_) => {
                    // Not final: retried under the lock, see write_prepared.
                    p.short = true;
                    break;
                }
            }
        }
        p
    }

    /// Free every block not taken (the write failed before using them).
    pub(crate) fn discard(self, cx: &Ctx) {
        for b in self.blocks {
            cx.store.free(b);
        }
    }
}

impl FileData {
    /// Write `data` at `off`. Returns the bytes written: short (but not zero)
    /// when the space ran out part-way; the bytes before that point stay.
    /// Compresses under the caller's lock; the filesystem uses
    /// [`Prepared::compress`] and [`FileData::write_prepared`] instead to
    /// compress before locking.
    #[cfg(test)]
    pub(crate) fn write(&mut self, cx: &Ctx, off: u64, data: &[u8]) -> FsResult<usize> {
        check_end(off, data.len())?;
        let mut old = Vec::new();
        // Alone in its own count: a unit test's write uses every CPU.
        let writers = Writers::default();
        let w = writers.start();
        let pre = Prepared::compress(cx, &w, off, data);
        let r = self.write_prepared(cx, off, data, pre, &mut old);
        for b in old {
            cx.store.free(b);
        }
        r
    }

    /// Write `data` at `off` with its whole blocks already in `pre` (from
    /// `Prepared::compress(cx, off, data)`). Returns the bytes written as
    /// `write` does. Blocks replaced, and prepared blocks not used, go to
    /// `old`: the caller frees them once it has dropped the inode lock.
    pub(crate) fn write_prepared(
        &mut self,
        cx: &Ctx,
        off: u64,
        data: &[u8],
        pre: Prepared,
        old: &mut Vec<Block>,
    ) -> FsResult<usize> {
        let end = check_end(off, data.len())?;
        let bs = cx.bs();
        let Prepared {
            first,
            blocks: ready,
            short: _,
        } = pre;
        let mut ready = ready.into_iter();
        let mut taken = 0u64;
        let mut pos = off;
        let mut result = Ok(());
        while pos < end {
            let idx = pos / bs;
            let boff = (pos % bs) as usize;
            let n = ((bs - boff as u64).min(end - pos)) as usize;
            let r = if n as u64 == bs {
                debug_assert_eq!(idx, first + taken, "whole blocks come in order");
                taken += 1;
                match ready.next() {
                    Some(b) => self.install(cx, idx, b, old),
                    None => {
                        // The store refused while preparing (a hard pool
                        // limit): what it lacks may be the memory of the
                        // blocks this write replaced, not yet freed. Free
                        // them and store the rest one block at a time, as
                        // compressing under the lock always did.
                        for b in old.drain(..) {
                            cx.store.free(b);
                        }
                        let src = &data[(pos - off) as usize..][..n];
                        cx.store
                            .put(src)
                            .map_err(store_err)
                            .and_then(|b| self.install(cx, idx, b, old))
                    }
                }
            } else {
                let src = &data[(pos - off) as usize..][..n];
                self.write_block(cx, idx, boff, src)
            };
            if let Err(e) = r {
                result = Err(e);
                break;
            }
            pos += n as u64;
            if pos > self.size {
                self.size = pos;
            }
        }
        old.extend(ready);
        let written = (pos - off) as usize;
        match result {
            Err(e) if written == 0 => Err(e),
            _ => Ok(written),
        }
    }

    /// Make the stored block `b` the content of block `idx`, reserving space
    /// if the index was absent. The write buffer, if it holds `idx`, is
    /// superseded; the replaced block goes to `old`. On ENOSPC `b` goes to
    /// `old` too.
    pub(super) fn install(
        &mut self,
        cx: &Ctx,
        idx: u64,
        b: Block,
        old: &mut Vec<Block>,
    ) -> FsResult<()> {
        if self.dirty.as_ref().is_some_and(|d| d.idx == idx) {
            // Present through the buffer: its reservation carries over.
            self.dirty = None;
            cx.space.give_buffer();
        } else if !self.blocks.contains_key(&idx) && !cx.space.reserve(1) {
            old.push(b);
            return Err(Errno(libc::ENOSPC));
        }
        old.extend(self.blocks.insert(idx, b));
        Ok(())
    }

    /// Write part of block `idx` through the write buffer.
    fn write_block(&mut self, cx: &Ctx, idx: u64, boff: usize, src: &[u8]) -> FsResult<()> {
        let bs = cx.bs() as usize;
        debug_assert!(src.len() < bs, "whole blocks are prepared");
        let in_buffer = self.dirty.as_ref().is_some_and(|d| d.idx == idx);
        if !in_buffer {
            self.flush(cx)?;
            let new = !self.blocks.contains_key(&idx);
            if new && !cx.space.reserve(1) {
                return Err(Errno(libc::ENOSPC));
            }
            let mut buf = vec![0u8; bs].into_boxed_slice();
            if !new {
                self.load(cx, idx, &mut buf)?;
            }
            if !cx.space.take_buffer() {
                // Too many files hold a buffer: merge and compress now.
                buf[boff..boff + src.len()].copy_from_slice(src);
                let r = self.put(cx, idx, &buf);
                if r.is_err() && new {
                    cx.space.release(1);
                }
                return r;
            }
            self.dirty = Some(Box::new(Dirty { idx, buf }));
        }
        let d = self.dirty.as_mut().expect("buffer loaded above");
        d.buf[boff..boff + src.len()].copy_from_slice(src);
        if boff + src.len() == bs {
            // The block's last byte is written: sequential writers are done
            // with it, so compress it now rather than hold it uncompressed.
            self.flush(cx)?;
        }
        Ok(())
    }
}
