//! File data: a sparse map from block index to stored block per file,
//! plus a one-block write buffer; the `Fs` operations on it (read, write,
//! copy_file_range, fallocate, seek) and the `size=` budget.
//!
//! Modules: `file.rs` ([`FileData`]), `map.rs` (the block map), `write.rs`
//! (the write path), `share.rs` (block sharing), `copy.rs`
//! (copy_file_range), `space.rs` ([`Space`]).
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
//!   on several threads, see `PARALLEL_MIN_BYTES`, as many as the CPUs
//!   this filesystem's other writes in progress leave idle: `Writers`). Then, under the write
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
//! `FileData` takes no locks: the owning inode's lock serialises access to
//! it (write lock to mutate, read lock to read); `Prepared` touches only the
//! store, which is thread-safe. The `Fs` operations here take one inode lock
//! at a time (see the lock order in `fs/mod.rs`).

mod copy;
pub(super) mod file;
mod map;
mod recompress;
mod share;
mod space;
mod write;

pub(crate) use file::FileData;
pub use recompress::{Pace, PassReport, PassSpec, Unpaced};
pub(crate) use space::Space;
pub(crate) use write::Writers;

use super::suid::clear_suidgid;
use super::CONTROL_INO;
use super::{err, now, Content, Errno, Fallocate, FileKind, Fs, FsResult, Inner, Ino, Killer};
use crate::store::Store;
use write::Prepared;

/// Largest file size: what the kernel allows (`MAX_LFS_FILESIZE`).
pub(crate) const MAX_FILE_SIZE: u64 = i64::MAX as u64;

/// Everything a file-data operation needs from the filesystem.
pub(crate) struct Ctx<'a> {
    pub(crate) store: &'a Store,
    pub(crate) space: &'a Space,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(store: &'a Store, space: &'a Space) -> Ctx<'a> {
        Ctx { store, space }
    }

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

/// A file's data changed: new mtime and ctime, and setuid/setgid dropped
/// for `kill` as a write does. Returns whether the mode changed.
fn data_changed(i: &mut Inner, kill: Option<Killer>) -> bool {
    let t = now();
    i.mtime = t;
    i.ctime = t.into();
    kill.is_some_and(|k| clear_suidgid(i, &k))
}

impl Fs {
    /// Read file data. Updates atime as relatime does.
    pub fn read(&self, ino: Ino, off: u64, len: usize) -> FsResult<Vec<u8>> {
        let mut out = Vec::new();
        self.read_into(ino, off, len, &mut out)?;
        Ok(out)
    }

    /// `read` into a caller's buffer (resized to the bytes read), so a
    /// request loop can reuse one buffer instead of allocating and zeroing
    /// up to a megabyte per READ.
    pub fn read_into(&self, ino: Ino, off: u64, len: usize, out: &mut Vec<u8>) -> FsResult<()> {
        if ino == CONTROL_INO {
            let text = self.control_read();
            let start = (off as usize).min(text.len());
            let end = start.saturating_add(len).min(text.len());
            out.clear();
            out.extend_from_slice(&text[start..end]);
            return Ok(());
        }
        let n = self.get(ino)?;
        {
            let i = n.inner.read();
            let Content::File(f) = &i.content else {
                return match i.content {
                    Content::Dir(_) => err(libc::EISDIR),
                    _ => err(libc::EINVAL),
                };
            };
            f.read_into(&self.fcx(), off, len, out)?;
        }
        self.touch_atime(&n);
        Ok(())
    }

    /// Write file data; short only when the space ran out part-way.
    pub fn write(&self, ino: Ino, off: u64, data: &[u8]) -> FsResult<usize> {
        self.write_killing_privs(ino, off, data, None)
            .map(|(n, _)| n)
    }

    /// `write`, and with `kill_privs` also drop setuid (and setgid when
    /// group-executable) as a write by an unprivileged process does
    /// (should_remove_suid). The kernel does this itself for page-cache
    /// writes; direct I/O writes (cache=none, O_DIRECT) leave it to us.
    pub fn write_killing_privs(
        &self,
        ino: Ino,
        off: u64,
        data: &[u8],
        kill_privs: Option<Killer>,
    ) -> FsResult<(usize, bool)> {
        if ino == CONTROL_INO {
            self.control_write(data)?;
            return Ok((data.len(), false));
        }
        let n = self.get(ino)?;
        if n.kind() != FileKind::File {
            return err(libc::EINVAL);
        }
        check_end(off, data.len())?;
        let cx = self.fcx();
        // Compress before locking: see "A write is two phases" above.
        let writing = self.writers.start();
        let pre = Prepared::compress(&cx, &writing, off, data);
        let mut old = Vec::new();
        let mut i = n.inner.write();
        let r = match &mut i.content {
            Content::File(f) => f.write_prepared(&cx, off, data, pre, &mut old),
            _ => {
                pre.discard(&cx);
                Err(Errno(libc::EINVAL))
            }
        };
        let killed = r.is_ok() && data_changed(&mut i, kill_privs);
        drop(i);
        for b in old {
            cx.store.free(b);
        }
        drop(writing);
        if r == Err(Errno(libc::ENOSPC)) {
            self.warn_full();
        }
        r.map(|n| (n, killed))
    }

    /// Make a regular file at least `size` bytes long, the growth a hole.
    /// For a page-cache writeback the space limit refused: the kernel
    /// already counts those bytes in the file, so ours must too (they read
    /// as zeros; the writer is told ENOSPC).
    pub fn grow_to(&self, ino: Ino, size: u64) -> FsResult<()> {
        let n = self.get(ino)?;
        let mut i = n.inner.write();
        let Content::File(f) = &mut i.content else {
            return err(libc::EINVAL);
        };
        if size > f.size {
            f.truncate(&self.fcx(), size)?;
        }
        Ok(())
    }

    /// Compress a file's write buffer (fsync, flush, release).
    pub fn flush(&self, ino: Ino) -> FsResult<()> {
        let n = self.get(ino)?;
        let mut i = n.inner.write();
        if let Content::File(f) = &mut i.content {
            f.flush(&self.fcx())?;
        }
        Ok(())
    }

    pub fn fallocate(&self, ino: Ino, off: u64, len: u64, mode: Fallocate) -> FsResult<()> {
        if len == 0 {
            return err(libc::EINVAL);
        }
        if ino == CONTROL_INO {
            return err(libc::EOPNOTSUPP);
        }
        let n = self.get(ino)?;
        let mut i = n.inner.write();
        let Content::File(f) = &mut i.content else {
            return err(libc::ENODEV);
        };
        let cx = self.fcx();
        let old_size = f.size;
        match mode {
            Fallocate::Allocate { keep_size } => f.allocate(&cx, off, len, keep_size, false)?,
            Fallocate::ZeroRange { keep_size } => f.allocate(&cx, off, len, keep_size, true)?,
            Fallocate::PunchHole => f.punch_hole(&cx, off, len)?,
        }
        let changed_size = f.size != old_size;
        if mode != (Fallocate::Allocate { keep_size: true }) || changed_size {
            let t = now();
            if mode == Fallocate::PunchHole
                || matches!(mode, Fallocate::ZeroRange { .. })
                || changed_size
            {
                i.mtime = t;
            }
            i.ctime = t.into();
        }
        Ok(())
    }

    /// SEEK_DATA (`data = true`) or SEEK_HOLE.
    pub fn seek(&self, ino: Ino, off: u64, data: bool) -> FsResult<u64> {
        let n = self.get(ino)?;
        let i = n.inner.read();
        let Content::File(f) = &i.content else {
            return err(libc::EINVAL);
        };
        if data {
            f.seek_data(&self.fcx(), off)
        } else {
            f.seek_hole(&self.fcx(), off)
        }
    }
}

#[cfg(test)]
mod tests;
