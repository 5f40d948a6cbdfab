//! A regular file's data: a sparse map from block index to stored block,
//! plus a one-block write buffer.
//!
//! Design:
//! * Blocks absent from `blocks` are holes: they read as zeros and cost
//!   nothing. Every present block (even `Same(0)`) counts as allocated for
//!   `size=`, `st_blocks` and SEEK_DATA, as a tmpfs page does.
//! * The write buffer (`dirty`) holds one block uncompressed. A write that
//!   covers only part of a block lands there instead of costing a
//!   decompress + compress each time; the buffer is compressed into the store
//!   when a write reaches the block's last byte, when a write goes to another
//!   block, and on `flush` (fsync, release, truncate, fallocate). Reads copy
//!   from the buffer, so they always see the latest bytes. Sequential small
//!   writes (`cache=none`, O_DIRECT, appends) thus compress each block once.
//!   Buffers are counted filesystem-wide (`Space::max_buffers`, 32 MiB worth);
//!   past that, a partial write is merged and compressed at once.
//! * Space accounting (`size=`) goes through [`Space`]: one block is reserved
//!   before a block index first becomes present (in `blocks` or in `dirty`)
//!   and released when it stops being present. The reservation is taken under
//!   the inode's write lock, at the moment the block is installed.
//! * A write is two phases. [`Prepared::compress`] runs with NO inode lock:
//!   the blocks the write covers whole have their new content in the request
//!   alone, so they are compressed into the store up front (a large request
//!   on several threads, see `PARALLEL_MIN_BYTES`). Then, under the write
//!   lock, [`FileData::write_prepared`] goes through the request in offset
//!   order: partial blocks merge into the write buffer as before, whole
//!   blocks are swapped into the map (replacing the write buffer when it
//!   holds that index) and the replaced blocks are handed back to be freed
//!   after the lock is dropped. Two writers of one file (the kernel's
//!   writeback on two request threads) thus compress in parallel and
//!   serialise only on the map swap. A write is atomic with respect to
//!   other operations on the file at the point it takes the lock, as
//!   before; concurrent writes to the same block end with one of them whole.
//! * ENOSPC: pool memory for a write's whole blocks exists before their
//!   `size=` reservation (at most one request's worth, freed at once if the
//!   reservation fails). When the store refuses a block while preparing (a
//!   hard pool limit, `backing=none`), the rest of the write is stored one
//!   block at a time under the lock after freeing the blocks it already
//!   replaced, so an overwrite at the limit succeeds as it did before. A
//!   write that runs out of space or pool memory at block k keeps every
//!   block before k and returns a short count (an error when nothing was
//!   written), exactly as when each block was compressed in turn under the
//!   lock.
//! * A copy (`copy_file_range`) of whole blocks is two halves as well:
//!   [`FileData::share_blocks`] under the source's read lock takes a store
//!   reference to each source block, [`FileData::install_shared`] under the
//!   destination's write lock swaps them in with the same reservation rule
//!   as a write (one block of `size=` per index that becomes present, so a
//!   shared object counts once per file block naming it) and hands back the
//!   replaced blocks to free after the lock. A source hole becomes a hole.
//!
//! No locks here: the owning inode's lock serialises access to a
//! `FileData` (write lock to mutate, read lock to read); `Prepared` touches
//! only the store, which is thread-safe.

use super::{Errno, FsResult};
use crate::store::{Block, Store};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Largest file size: what the kernel allows (`MAX_LFS_FILESIZE`).
pub(crate) const MAX_FILE_SIZE: u64 = i64::MAX as u64;

/// The filesystem-wide block budget (`size=` divided by the block size).
pub(crate) struct Space {
    /// Blocks present in all files' maps and write buffers. Never above `max`.
    pub(crate) used: AtomicU64,
    /// The budget; `u64::MAX` for unlimited. Changes only by remount.
    pub(crate) max: AtomicU64,
    /// Write buffers alive in all files. Never above `max_buffers`.
    pub(crate) buffers: AtomicU64,
    /// Most write buffers at once, so that many files left open with a
    /// partial block written cannot hold unbounded uncompressed memory;
    /// past it a partial write is merged and compressed at once.
    pub(crate) max_buffers: u64,
}

impl Space {
    /// Reserve `n` blocks, or fail with nothing reserved.
    pub(crate) fn reserve(&self, n: u64) -> bool {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                u.checked_add(n)
                    .filter(|&v| v <= self.max.load(Ordering::Relaxed))
            })
            .is_ok()
    }
    /// The budget in blocks.
    pub(crate) fn max(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }

    /// A new budget (remount `size=`), refused when the blocks in use
    /// already exceed it, as tmpfs refuses to shrink below its use.
    pub(crate) fn set_max(&self, max: u64) -> Result<(), u64> {
        let used = self.used.load(Ordering::Relaxed);
        if used > max {
            return Err(used);
        }
        self.max.store(max, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn release(&self, n: u64) {
        if n > 0 {
            self.used.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// A budget of `max` blocks and write buffers worth `buffer_bytes`.
    pub(crate) fn new(max: u64, block_size: u32, buffer_bytes: u64) -> Space {
        Space {
            used: AtomicU64::new(0),
            max: AtomicU64::new(max),
            buffers: AtomicU64::new(0),
            max_buffers: (buffer_bytes / u64::from(block_size)).max(4),
        }
    }

    fn take_buffer(&self) -> bool {
        self.buffers
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                (b < self.max_buffers).then_some(b + 1)
            })
            .is_ok()
    }

    fn give_buffer(&self) {
        self.buffers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Requests at least this large are compressed on several threads: below
/// it the cost of starting a thread (tens of microseconds here, waking an
/// idle vCPU) is not repaid; a 1 MiB request takes about a millisecond.
const PARALLEL_MIN_BYTES: usize = 256 << 10;

/// Write requests in progress (compressing or installing), all files;
/// counted by [`Writing`]. A request uses helper threads only for CPUs no
/// other write keeps busy: under the kernel's writeback or concurrent
/// O_DIRECT requests every request thread already has a write, and helpers
/// then only contend with them (measured: more CPU per byte, not less).
static WRITING: AtomicUsize = AtomicUsize::new(0);

/// Counts one write request in [`WRITING`] while alive.
pub(crate) struct Writing(());

impl Writing {
    pub(crate) fn start() -> Writing {
        WRITING.fetch_add(1, Ordering::Relaxed);
        Writing(())
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        WRITING.fetch_sub(1, Ordering::Relaxed);
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
    /// `_w` is this request's place in the count of writes in progress.
    pub(crate) fn compress(cx: &Ctx, _w: &Writing, off: u64, data: &[u8]) -> Prepared {
        let bs = cx.bs();
        let end = off + data.len() as u64;
        let first = off.div_ceil(bs);
        let last = (end / bs).max(first);
        let whole =
            &data[((first * bs).min(end) - off) as usize..][..((last - first) * bs) as usize];
        let n = (last - first) as usize;
        let parts = if whole.len() >= PARALLEL_MIN_BYTES {
            let others = WRITING.load(Ordering::Relaxed).saturating_sub(1);
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

/// The uncompressed block being written.
struct Dirty {
    /// Block index; the buffer is the authoritative content of that block.
    idx: u64,
    /// Exactly `block_size` bytes.
    buf: Box<[u8]>,
}

/// A file's block map: index -> block, absent (8 bytes, no allocation)
/// while the file has no blocks. Most files are small: one of up to
/// `SMALL_MAX` blocks keeps a sorted Vec (24 bytes a block, its slack
/// given back when the file is flushed, e.g. closed), where a
/// `BTreeMap` would allocate a 288-byte leaf for a single block and fills
/// its nodes to 6 of 11 when appended to. Past `SMALL_MAX` blocks the map
/// becomes a B-tree (inserts in the middle stay O(log n)) until the file
/// has no blocks again. Its methods are the BTreeMap ones of the same
/// name, so the code below reads as it would with a BTreeMap.
#[derive(Default)]
struct BlockMap(Option<Box<Map>>);

/// Most blocks a file keeps in a sorted Vec: 24 KiB of entries, 4 MiB of
/// data at 4 KiB blocks. An insert in the middle moves at most that much,
/// about a microsecond, less than compressing the block it stores.
const SMALL_MAX: usize = 1024;

enum Map {
    /// Ascending indexes, at most `SMALL_MAX`.
    Small(Vec<(u64, Block)>),
    Tree(BTreeMap<u64, Block>),
}

fn pair((k, b): &(u64, Block)) -> (&u64, &Block) {
    (k, b)
}

/// An iterator over either kind of map.
enum Iter<A, B> {
    Small(A),
    Tree(B),
}

impl<'a, A, B> Iterator for Iter<A, B>
where
    A: Iterator<Item = (&'a u64, &'a Block)>,
    B: Iterator<Item = (&'a u64, &'a Block)>,
{
    type Item = (&'a u64, &'a Block);
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Small(a) => a.next(),
            Iter::Tree(b) => b.next(),
        }
    }
}

impl BlockMap {
    fn get(&self, idx: &u64) -> Option<&Block> {
        match self.0.as_deref()? {
            Map::Small(v) => v.binary_search_by_key(idx, |e| e.0).ok().map(|i| &v[i].1),
            Map::Tree(t) => t.get(idx),
        }
    }
    fn contains_key(&self, idx: &u64) -> bool {
        self.get(idx).is_some()
    }
    fn len(&self) -> usize {
        match self.0.as_deref() {
            None => 0,
            Some(Map::Small(v)) => v.len(),
            Some(Map::Tree(t)) => t.len(),
        }
    }
    fn range<R: std::ops::RangeBounds<u64>>(
        &self,
        r: R,
    ) -> impl Iterator<Item = (&u64, &Block)> + '_ {
        use std::ops::Bound;
        let (lo, hi) = (r.start_bound().cloned(), r.end_bound().cloned());
        match self.0.as_deref() {
            None => Iter::Small([].iter().map(pair)),
            Some(Map::Small(v)) => {
                let from = match lo {
                    Bound::Included(s) => v.partition_point(|e| e.0 < s),
                    Bound::Excluded(s) => v.partition_point(|e| e.0 <= s),
                    Bound::Unbounded => 0,
                };
                let to = match hi {
                    Bound::Included(e) => v.partition_point(|x| x.0 <= e),
                    Bound::Excluded(e) => v.partition_point(|x| x.0 < e),
                    Bound::Unbounded => v.len(),
                };
                let part = &v[from..to.max(from)];
                Iter::Small(part.iter().map(pair))
            }
            Some(Map::Tree(t)) => Iter::Tree(t.range((lo, hi))),
        }
    }
    fn iter(&self) -> impl Iterator<Item = (&u64, &Block)> + '_ {
        self.range(..)
    }
    fn insert(&mut self, idx: u64, b: Block) -> Option<Block> {
        let m = self
            .0
            .get_or_insert_with(|| Box::new(Map::Small(Vec::new())));
        match &mut **m {
            Map::Small(v) => match v.binary_search_by_key(&idx, |e| e.0) {
                Ok(i) => Some(std::mem::replace(&mut v[i].1, b)),
                Err(i) if v.len() < SMALL_MAX => {
                    // Double from one entry: Vec's own first step is four
                    // (96 bytes), and most files have one or two blocks.
                    if v.len() == v.capacity() {
                        v.reserve_exact(v.len().max(1));
                    }
                    v.insert(i, (idx, b));
                    None
                }
                Err(_) => {
                    let mut t: BTreeMap<u64, Block> = std::mem::take(v).into_iter().collect();
                    t.insert(idx, b);
                    **m = Map::Tree(t);
                    None
                }
            },
            Map::Tree(t) => t.insert(idx, b),
        }
    }
    /// Give back a small map's spare capacity.
    fn shrink(&mut self) {
        if let Some(Map::Small(v)) = self.0.as_deref_mut() {
            v.shrink_to_fit();
        }
    }
    fn remove(&mut self, idx: &u64) -> Option<Block> {
        let m = self.0.as_deref_mut()?;
        let (b, empty) = match m {
            Map::Small(v) => {
                let i = v.binary_search_by_key(idx, |e| e.0).ok()?;
                let b = v.remove(i).1;
                if v.len() <= v.capacity() / 4 {
                    v.shrink_to(v.len() * 2);
                }
                (b, v.is_empty())
            }
            Map::Tree(t) => (t.remove(idx)?, t.is_empty()),
        };
        if empty {
            self.0 = None;
        }
        Some(b)
    }
}

#[derive(Default)]
pub(crate) struct FileData {
    /// Logical size in bytes. Bytes past it in the last block are zero.
    pub(crate) size: u64,
    /// Present blocks. A block index in `dirty` may also be here (its older
    /// content); the buffer wins. Its space is reserved once either way.
    blocks: BlockMap,
    /// The write buffer, if any; boxed, as few files have one at a time.
    dirty: Option<Box<Dirty>>,
}

/// Everything a file-data operation needs from the filesystem.
pub(crate) struct Ctx<'a> {
    pub(crate) store: &'a Store,
    pub(crate) space: &'a Space,
}

impl Ctx<'_> {
    fn bs(&self) -> u64 {
        self.store.block_size() as u64
    }
}

/// The end of a write of `len` bytes at `off`, or EFBIG past the largest
/// file size.
pub(crate) fn check_end(off: u64, len: usize) -> FsResult<u64> {
    off.checked_add(len as u64)
        .filter(|&e| e <= MAX_FILE_SIZE)
        .ok_or(Errno(libc::EFBIG))
}

fn store_err(e: crate::store::StoreError) -> Errno {
    log::warn!("block store: {e}");
    Errno(e.errno())
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
            .filter(|(idx, _)| self.dirty.as_ref().is_none_or(|d| d.idx != **idx))
            .map(|(_, b)| store.stored_len(b) as u64)
            .sum();
        let buffered = self.dirty.as_ref().map_or(0, |d| d.buf.len() as u64);
        objects + buffered
    }

    fn present(&self, idx: u64) -> bool {
        self.blocks.contains_key(&idx) || self.dirty.as_ref().is_some_and(|d| d.idx == idx)
    }

    /// Copy the current content of block `idx` into `out` (block-sized).
    fn load(&self, cx: &Ctx, idx: u64, out: &mut [u8]) -> FsResult<()> {
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
    fn put(&mut self, cx: &Ctx, idx: u64, data: &[u8]) -> FsResult<()> {
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

    /// Write `data` at `off`. Returns the bytes written: short (but not zero)
    /// when the space ran out part-way; the bytes before that point stay.
    /// Compresses under the caller's lock; the filesystem uses
    /// [`Prepared::compress`] and [`FileData::write_prepared`] instead to
    /// compress before locking.
    #[cfg(test)]
    pub(crate) fn write(&mut self, cx: &Ctx, off: u64, data: &[u8]) -> FsResult<usize> {
        check_end(off, data.len())?;
        let mut old = Vec::new();
        let w = Writing::start();
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
    fn install(&mut self, cx: &Ctx, idx: u64, b: Block, old: &mut Vec<Block>) -> FsResult<()> {
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

    /// The source half of a block-sharing copy: another reference
    /// ([`Store::share`]) to each of blocks `first..first + n`, `None` for a
    /// hole, stopping before the first block not wholly below `size` (its
    /// bytes past the end are zero but may not replace the destination's).
    /// A block in the write buffer is stored first (one compression), since
    /// the buffer is its content. On an error the references taken so far
    /// are returned with it, for the caller to free.
    pub(crate) fn share_blocks(
        &self,
        cx: &Ctx,
        first: u64,
        n: u64,
    ) -> (Vec<Option<Block>>, FsResult<()>) {
        let n = n.min((self.size / cx.bs()).saturating_sub(first));
        let mut out = Vec::with_capacity(n as usize);
        for idx in first..first + n {
            let b = match (&self.dirty, self.blocks.get(&idx)) {
                (Some(d), _) if d.idx == idx => cx.store.put(&d.buf),
                (_, Some(b)) => cx.store.share(b),
                (_, None) => {
                    out.push(None);
                    continue;
                }
            };
            match b {
                Ok(b) => out.push(Some(b)),
                Err(e) => return (out, Err(store_err(e))),
            }
        }
        (out, Ok(()))
    }

    /// The destination half: `src[k]` becomes block `first + k` (`None` a
    /// hole), replacing what was there, and the size grows to cover every
    /// block installed. Space is reserved as a write does, once per block
    /// index that becomes present; a shared object thus counts once per
    /// file block holding it, like every other block. Stops at ENOSPC and
    /// returns the blocks installed (an error when none were); replaced and
    /// unused blocks go to `old`, to be freed after the lock is dropped.
    pub(crate) fn install_shared(
        &mut self,
        cx: &Ctx,
        first: u64,
        src: Vec<Option<Block>>,
        old: &mut Vec<Block>,
    ) -> FsResult<u64> {
        let bs = cx.bs();
        let total = src.len() as u64;
        let mut done = 0u64;
        let mut src = src.into_iter();
        let mut result = Ok(());
        for b in src.by_ref() {
            let idx = first + done;
            let r = match b {
                Some(b) => self.install(cx, idx, b, old),
                None => {
                    self.make_hole(cx, idx, old);
                    Ok(())
                }
            };
            if let Err(e) = r {
                result = Err(e);
                break;
            }
            done += 1;
            self.size = self.size.max((idx + 1) * bs);
        }
        old.extend(src.flatten());
        match result {
            Err(e) if done == 0 && total > 0 => Err(e),
            _ => Ok(done),
        }
    }

    /// Block `idx` becomes a hole: the write buffer holding it is dropped,
    /// the stored block goes to `old`, and its space is released.
    fn make_hole(&mut self, cx: &Ctx, idx: u64, old: &mut Vec<Block>) {
        let mut present = false;
        if self.dirty.as_ref().is_some_and(|d| d.idx == idx) {
            self.dirty = None;
            cx.space.give_buffer();
            present = true;
        }
        if let Some(b) = self.blocks.remove(&idx) {
            old.push(b);
            present = true;
        }
        if present {
            cx.space.release(1);
        }
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
        let doomed: Vec<u64> = self.blocks.range(first..last).map(|(&k, _)| k).collect();
        for k in &doomed {
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
        let mut next = self.blocks.range(idx..).next().map(|(&k, _)| k);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The block map answers as a BTreeMap does, on both sides of
    /// `SMALL_MAX` and back to empty.
    #[test]
    fn block_map_behaves_as_a_btreemap() {
        let mut m = BlockMap::default();
        let mut model = BTreeMap::new();
        let (mut saw_tree, mut emptied) = (false, false);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let byte = |b: &Block| match b {
            Block::Same(v) => *v,
            _ => unreachable!(),
        };
        for step in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Grow for a while, then shrink to nothing, twice.
            let growing = (step / 5000) % 2 == 0;
            let idx = x % (SMALL_MAX as u64 * 3 / 2);
            if growing {
                let v = (x >> 32) as u8;
                let old = m.insert(idx, Block::Same(v)).map(|b| byte(&b));
                assert_eq!(old, model.insert(idx, v));
            } else {
                // Half the removals hit the lowest block, so it empties.
                let k = match model.keys().next() {
                    Some(&k) if x % 2 == 0 => k,
                    _ => idx,
                };
                assert_eq!(m.remove(&k).map(|b| byte(&b)), model.remove(&k));
            }
            assert_eq!(m.len(), model.len());
            assert_eq!(m.get(&idx).map(byte), model.get(&idx).copied());
            let (a, b) = (idx / 2, idx + 7);
            let got: Vec<(u64, u8)> = m.range(a..b).map(|(k, v)| (*k, byte(v))).collect();
            let want: Vec<(u64, u8)> = model.range(a..b).map(|(k, v)| (*k, *v)).collect();
            assert_eq!(got, want);
            let next = m.range(idx..).next().map(|(k, _)| *k);
            assert_eq!(next, model.range(idx..).next().map(|(k, _)| *k));
            if model.is_empty() {
                assert!(m.0.is_none(), "an empty map holds no memory");
                emptied = true;
            }
            saw_tree |= matches!(m.0.as_deref(), Some(Map::Tree(_)));
            if step % 97 == 0 {
                m.shrink();
            }
        }
        assert!(saw_tree && emptied, "both kinds of map and the way back");
        assert!(m.iter().count() == model.len());
    }

    fn setup(max: u64) -> (Store, Space) {
        (Store::new(4096), Space::new(max, 4096, 64 << 20))
    }

    #[test]
    fn small_sequential_writes_compress_each_block_once() {
        let (store, space) = setup(u64::MAX);
        let cx = Ctx {
            store: &store,
            space: &space,
        };
        let mut f = FileData::default();
        let chunk: Vec<u8> = (0..100u8).collect();
        let mut model = Vec::new();
        for _ in 0..200 {
            let off = model.len() as u64;
            assert_eq!(f.write(&cx, off, &chunk).unwrap(), 100);
            model.extend_from_slice(&chunk);
        }
        // 20000 bytes = 4 full blocks compressed + 1 partial in the buffer.
        let st = store.stats();
        assert_eq!(st.compressed_pages + st.huge_pages + st.same_pages, 4);
        assert_eq!(f.read(&cx, 0, 30000).unwrap(), model);
        f.flush(&cx).unwrap();
        assert_eq!(store.stats().orig_data_size, 5 * 4096);
        assert_eq!(f.read(&cx, 0, 30000).unwrap(), model);
        assert_eq!(space.used.load(Ordering::Relaxed), 5);
        f.clear(&cx);
        assert_eq!(space.used.load(Ordering::Relaxed), 0);
        assert_eq!(space.buffers.load(Ordering::Relaxed), 0);
        assert_eq!(store.pool_stats().objects, 0);
    }

    #[test]
    fn write_buffers_are_bounded() {
        let store = Store::new(4096);
        let space = Space::new(u64::MAX, 4096, 0); // the minimum: 4 buffers
        let cx = Ctx {
            store: &store,
            space: &space,
        };
        let mut files: Vec<FileData> = (0..10).map(|_| FileData::default()).collect();
        for (i, f) in files.iter_mut().enumerate() {
            f.write(&cx, 0, &[i as u8 + 1; 100]).unwrap();
        }
        assert_eq!(space.buffers.load(Ordering::Relaxed), 4);
        // Files past the budget went straight to the store.
        assert_eq!(store.stats().same_pages + store.stats().compressed_pages, 6);
        for (i, f) in files.iter_mut().enumerate() {
            let mut want = vec![i as u8 + 1; 100];
            want.extend(b"xy");
            f.write(&cx, 100, b"xy").unwrap();
            assert_eq!(f.read(&cx, 0, 4096).unwrap(), want);
            f.clear(&cx);
        }
        assert_eq!(space.buffers.load(Ordering::Relaxed), 0);
        assert_eq!(store.pool_stats().objects, 0);
    }

    #[test]
    fn enospc_keeps_what_was_written() {
        let (store, space) = setup(2);
        let cx = Ctx {
            store: &store,
            space: &space,
        };
        let mut f = FileData::default();
        let data = vec![1u8; 3 * 4096];
        assert_eq!(f.write(&cx, 0, &data).unwrap(), 2 * 4096);
        assert_eq!(f.size, 8192);
        assert_eq!(f.write(&cx, 8192, &data).unwrap_err().0, libc::ENOSPC);
        assert_eq!(f.read(&cx, 0, 9000).unwrap(), vec![1u8; 8192]);
    }

    #[test]
    fn large_write_compressed_in_parallel_keeps_a_prefix_on_enospc() {
        // 200 blocks of space, a 1 MiB (256 block) write at block 99 after
        // a partial block 0 sits in the buffer: the write is cut at 298.
        let (store, space) = setup(200);
        let cx = Ctx {
            store: &store,
            space: &space,
        };
        let mut f = FileData::default();
        f.write(&cx, 10, b"head").unwrap();
        let data: Vec<u8> = (0..(1usize << 20) + 100)
            .map(|i| (i / 4096 % 251) as u8 ^ (i % 7) as u8)
            .collect();
        let off = 100 * 4096 - 50;
        let n = f.write(&cx, off, &data).unwrap();
        // Blocks 99 (partial) ..= 297 fit besides block 0.
        assert_eq!(n as u64, 298 * 4096 - off);
        assert_eq!(space.used.load(Ordering::Relaxed), 200);
        assert_eq!(f.read(&cx, off, n).unwrap(), &data[..n]);
        assert_eq!(&f.read(&cx, 10, 4).unwrap(), b"head");
        // Prepared blocks past the cut were freed.
        f.flush(&cx).unwrap();
        assert_eq!(store.stats().orig_data_size, 200 * 4096);
        f.truncate(&cx, 0).unwrap();
        // A whole-block write over the buffered block replaces the buffer.
        f.write(&cx, 5000, b"x").unwrap();
        assert_eq!(space.buffers.load(Ordering::Relaxed), 1);
        f.write(&cx, 4096, &[7u8; 4096]).unwrap();
        assert_eq!(space.buffers.load(Ordering::Relaxed), 0);
        assert_eq!(f.read(&cx, 4096, 4096).unwrap(), vec![7u8; 4096]);
        assert_eq!(space.used.load(Ordering::Relaxed), 1);
        f.clear(&cx);
        assert_eq!(space.used.load(Ordering::Relaxed), 0);
        assert_eq!(store.pool_stats().objects, 0);
    }

    #[test]
    fn overwrite_at_a_hard_pool_limit_still_fits() {
        // 300 incompressible blocks under a 320-page limit, no backing: a
        // 1 MiB overwrite cannot have its new blocks beside the old ones.
        let pool = crate::pool::Pool::new(
            crate::pool::PoolConfig {
                limit: Some(320 * 4096),
                ..crate::pool::PoolConfig::unlimited(4096)
            },
            None,
        );
        let store = Store::with_pool(4096, std::sync::Arc::new(pool));
        let space = Space::new(u64::MAX, 4096, 64 << 20);
        let cx = Ctx {
            store: &store,
            space: &space,
        };
        use crate::test_data::noise;
        let mut f = FileData::default();
        let first = noise(1, 300 * 4096);
        assert_eq!(f.write(&cx, 0, &first).unwrap(), first.len());
        let second = noise(2, 256 * 4096);
        assert_eq!(f.write(&cx, 0, &second).unwrap(), second.len());
        assert_eq!(f.read(&cx, 0, second.len()).unwrap(), second);
        assert_eq!(
            f.read(&cx, second.len() as u64, 4096).unwrap(),
            &first[second.len()..][..4096]
        );
        f.clear(&cx);
        assert_eq!(store.pool_stats().objects, 0);
    }

    #[test]
    fn truncate_punch_seek() {
        let (store, space) = setup(u64::MAX);
        let cx = Ctx {
            store: &store,
            space: &space,
        };
        let mut f = FileData::default();
        f.write(&cx, 10 * 4096 + 5, b"abc").unwrap();
        assert_eq!(f.size, 10 * 4096 + 8);
        assert_eq!(f.allocated_blocks(), 1);
        assert_eq!(f.seek_data(&cx, 0).unwrap(), 10 * 4096);
        assert_eq!(f.seek_hole(&cx, 0).unwrap(), 0);
        assert_eq!(f.seek_hole(&cx, 10 * 4096).unwrap(), 10 * 4096 + 8);
        f.truncate(&cx, 10 * 4096 + 6).unwrap();
        f.truncate(&cx, 10 * 4096 + 8).unwrap();
        assert_eq!(&f.read(&cx, 10 * 4096, 8).unwrap(), b"\0\0\0\0\0a\0\0");
        f.write(&cx, 0, &vec![9u8; 3 * 4096]).unwrap();
        f.punch_hole(&cx, 100, 2 * 4096).unwrap();
        let r = f.read(&cx, 0, 3 * 4096).unwrap();
        assert!(r[..100].iter().all(|&b| b == 9));
        assert!(r[100..100 + 8192].iter().all(|&b| b == 0));
        assert!(r[100 + 8192..].iter().all(|&b| b == 9));
        assert_eq!(f.allocated_blocks(), 2 + 1);
        f.punch_hole(&cx, 0, 4 * 4096).unwrap();
        assert_eq!(f.allocated_blocks(), 1);
        f.allocate(&cx, 0, 4096 * 2, false, false).unwrap();
        assert_eq!(f.allocated_blocks(), 3);
        assert_eq!(store.pool_stats().objects, 1);
        f.truncate(&cx, 0).unwrap();
        assert_eq!(space.used.load(Ordering::Relaxed), 0);
        assert_eq!(store.pool_stats().objects, 0);
    }
}
