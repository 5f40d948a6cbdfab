//! copy_file_range: whole blocks shared between files (`share.rs`), the
//! rest copied through the write path; see [`Fs::copy_range`].

use super::data_changed;
use crate::fs::Killer;
use crate::fs::{err, Content, Errno, FileKind, Fs, FsResult, Ino, Inode, CONTROL_INO};

/// Most bytes one copy_file_range call copies: its reply counts bytes in
/// 32 bits, and a caller (cp, the kernel's fallback) loops on a short count.
/// A multiple of every block size.
const MAX_COPY_BYTES: u64 = 1 << 30;
/// A copy step through the write path reads this much into memory at once.
const COPY_BYTES_CHUNK: u64 = 1 << 20;
/// A sharing step installs this much under one lock (a few thousand map
/// entries at most), so readers and writers of the destination wait little.
const COPY_SHARE_CHUNK: u64 = 16 << 20;

impl Fs {
    /// copy_file_range(2): copy up to `len` bytes of `ino_in` at `off_in`
    /// to `ino_out` at `off_out`; returns the bytes copied (short at the
    /// source's end, and at 1 GiB per call, which the reply's 32-bit count
    /// needs) and, as `write_killing_privs`, whether setuid/setgid went.
    ///
    /// When both offsets sit at the same place within a block, the whole
    /// blocks of the range are shared
    /// ([`Store::share`](crate::store::Store::share)): the destination's map
    /// names the source's objects, so the copy costs no pool memory and
    /// no compression (a source hole becomes a hole). The unaligned head
    /// and tail, every byte of a misaligned copy, and all of a copy with
    /// `dedup=off` (where sharing would mean compressing under a lock) are
    /// read and written through the normal write path.
    ///
    /// Locks: never two inodes at once. Each step takes the source's read
    /// lock to collect references (or bytes), drops it, then takes the
    /// destination's write lock to install them; the references keep the
    /// objects alive in between. That keeps "at most one inode lock outside
    /// `ns`" true without serialising every copy on `ns`, and also covers
    /// `ino_in == ino_out`. The copy is therefore not atomic against
    /// concurrent writers of the source (neither is the kernel's splice
    /// fallback), but each step is: it installs a snapshot of its source
    /// range taken under one lock.
    ///
    /// Ranges of one file that overlap are copied as memmove does (the
    /// kernel refuses them with EINVAL before we see them, so this is for
    /// direct callers): back to front when the destination lies after the
    /// source. Back to front has no meaningful short count, so there a
    /// failure part-way is returned as the error.
    pub fn copy_range(
        &self,
        ino_in: Ino,
        off_in: u64,
        ino_out: Ino,
        off_out: u64,
        len: u64,
        kill_privs: Option<Killer>,
    ) -> FsResult<(u64, bool)> {
        if ino_in == CONTROL_INO || ino_out == CONTROL_INO {
            // The kernel falls back to a splice copy (read and write).
            return err(libc::EOPNOTSUPP);
        }
        let src = self.get(ino_in)?;
        let dst = self.get(ino_out)?;
        for n in [&src, &dst] {
            match n.kind() {
                FileKind::File => {}
                FileKind::Dir => return err(libc::EISDIR),
                _ => return err(libc::EINVAL),
            }
        }
        let size_in = match &src.inner.read().content {
            Content::File(f) => f.size,
            _ => return err(libc::EINVAL),
        };
        let len = len.min(size_in.saturating_sub(off_in)).min(MAX_COPY_BYTES);
        super::check_end(off_out, len as usize)?;
        let bs = u64::from(self.block_size);
        // (offset from the start of the copy, length, share whole blocks)
        let mut steps: Vec<(u64, u64, bool)> = Vec::new();
        let mut plan = |from: u64, to: u64, share: bool, chunk: u64| {
            let mut at = from;
            while at < to {
                let n = chunk.min(to - at);
                steps.push((at, n, share));
                at += n;
            }
        };
        if off_in % bs == off_out % bs && self.store.shares_objects() {
            let head = ((bs - off_out % bs) % bs).min(len);
            let whole = (len - head) / bs * bs;
            plan(0, head, false, COPY_BYTES_CHUNK);
            plan(head, head + whole, true, COPY_SHARE_CHUNK);
            plan(head + whole, len, false, COPY_BYTES_CHUNK);
        } else {
            plan(0, len, false, COPY_BYTES_CHUNK);
        }
        let backward = ino_in == ino_out && off_out > off_in && off_out < off_in + len;
        if backward {
            steps.reverse();
        }
        let mut copied = 0u64;
        let mut killed = false;
        let mut failure = None;
        for (at, n, share) in steps {
            let r = if share {
                self.copy_shared(&src, &dst, off_in + at, off_out + at, n, kill_privs)
            } else {
                self.copy_bytes(&src, ino_out, off_in + at, off_out + at, n, kill_privs)
            };
            match r {
                Ok((m, k)) => {
                    killed |= k;
                    copied += m;
                    if m < n {
                        // The source ended (a concurrent truncate) or space
                        // ran out part-way.
                        if backward {
                            failure = Some(Errno(libc::ENOSPC));
                        }
                        break;
                    }
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        self.touch_atime(&src);
        match failure {
            Some(e) if backward || copied == 0 => {
                if e == Errno(libc::ENOSPC) {
                    self.warn_full();
                }
                Err(e)
            }
            _ => Ok((copied, killed)),
        }
    }

    /// One step of `copy_range` through the write path: `n` bytes read
    /// under the source's lock, then written as a WRITE request is.
    fn copy_bytes(
        &self,
        src: &Inode,
        ino_out: Ino,
        off_in: u64,
        off_out: u64,
        n: u64,
        kill_privs: Option<Killer>,
    ) -> FsResult<(u64, bool)> {
        let mut buf = Vec::new();
        match &src.inner.read().content {
            Content::File(f) => f.read_into(&self.fcx(), off_in, n as usize, &mut buf)?,
            _ => return err(libc::EINVAL),
        }
        if buf.is_empty() {
            return Ok((0, false));
        }
        self.write_killing_privs(ino_out, off_out, &buf, kill_privs)
            .map(|(m, k)| (m as u64, k))
    }

    /// One step of `copy_range` by sharing: `n` bytes of whole blocks at
    /// block-aligned `off_in` and `off_out`.
    fn copy_shared(
        &self,
        src: &Inode,
        dst: &Inode,
        off_in: u64,
        off_out: u64,
        n: u64,
        kill_privs: Option<Killer>,
    ) -> FsResult<(u64, bool)> {
        let cx = self.fcx();
        let bs = cx.store.block_size() as u64;
        let (shared, read_result) = match &src.inner.read().content {
            Content::File(f) => f.share_blocks(&cx, off_in / bs, n / bs),
            _ => return err(libc::EINVAL),
        };
        let mut old = Vec::new();
        let mut i = dst.inner.write();
        let r = match &mut i.content {
            Content::File(f) if !shared.is_empty() => {
                f.install_shared(&cx, off_out / bs, shared, &mut old)
            }
            Content::File(_) => Ok(0),
            _ => {
                old.extend(shared.into_iter().flatten());
                Err(Errno(libc::EINVAL))
            }
        };
        let killed = matches!(r, Ok(k) if k > 0) && data_changed(&mut i, kill_privs);
        drop(i);
        for b in old {
            cx.store.free(b);
        }
        match (r, read_result) {
            (Ok(0), Err(e)) => Err(e),
            (r, _) => r.map(|k| (k * bs, killed)),
        }
    }
}
