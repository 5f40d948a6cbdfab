//! File data requests: READ into a reused buffer, WRITE (setuid/setgid
//! dropping, page-cache coherence, ENOSPC deferral), copy_file_range,
//! fallocate and lseek.

use super::convert::{errno, killer, unprivileged_killer};
use super::ZsfsFuse;
use crate::config::CacheMode;
use crate::fs;
use fuser::{Errno, ReplyData, ReplyEmpty, ReplyLseek, ReplyWrite, Request, WriteFlags};
use std::cell::RefCell;

thread_local! {
    /// The request thread's READ reply buffer; see `read_file`. It grows to
    /// the largest READ, which max_pages (from `session::MAX_WRITE`) bounds
    /// at 1 MiB.
    static READ_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl ZsfsFuse {
    /// A READ of a regular file.
    pub(crate) fn read_file(&self, ino: u64, offset: u64, size: u32, reply: ReplyData) {
        // One buffer per request thread, reused: a READ is up to 1 MiB and
        // a fresh zeroed Vec per request cost a memset and page faults.
        // The reply is written to /dev/fuse before the borrow ends.
        READ_BUF.with_borrow_mut(|buf| {
            match self.fs().read_into(ino, offset, size as usize, buf) {
                Ok(()) => reply.data(buf),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    /// A WRITE of a regular file.
    pub(crate) fn write_file(
        &self,
        req: &Request,
        ino: u64,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        reply: ReplyWrite,
    ) {
        let from_cache = write_flags.contains(WriteFlags::FUSE_WRITE_CACHE);
        self.page_cache.note_write(ino, from_cache);
        if from_cache {
            self.update_dirty_window();
        }
        // Page-cache writes had setuid/setgid dropped by the kernel (and
        // carry no reliable caller); a direct write from anyone but root
        // (CAP_FSETID, approximately) drops them here.
        // Under KILLPRIV_V2 the kernel says when (FUSE_WRITE_KILL_SUIDGID,
        // on writes that bypass or write through the page cache).
        let kill_privs = (write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID)
            || (!from_cache && req.uid() != 0))
            .then(|| killer(req));
        let r = self
            .fs()
            .write_killing_privs(ino, offset, data, kill_privs)
            .map(|(n, killed)| {
                if !from_cache {
                    let notifier = self.notifier.get();
                    let written = &data[..n];
                    self.page_cache
                        .keep_mapping_coherent(notifier, ino, offset, written);
                }
                if killed {
                    // A write reply carries no attributes: without this the
                    // kernel keeps showing (and executing with) the old mode.
                    self.invalidate_attrs(ino);
                }
                n
            });
        match r {
            Ok(n) if n == data.len() || !from_cache => reply.written(n as u32),
            Ok(_) | Err(fs::Errno(libc::ENOSPC)) if from_cache => {
                self.cached_write_refused(ino, offset, data.len() as u64);
                reply.error(Errno::ENOSPC);
            }
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(errno(e)),
        }
    }

    /// What we rely on from the kernel (fs/fuse/file.c,
    /// __fuse_copy_file_range; vfs_copy_file_range before it): the VFS has
    /// cut `len` at the source's end and refused overlapping ranges of one
    /// file (generic_copy_file_checks); under the writeback cache both
    /// ranges were written back (fuse_writeback_range) before this request,
    /// so we copy current data, and afterwards the kernel drops the
    /// destination's cached pages over the range (truncate_inode_pages_range)
    /// and updates its size and mtime. The reply goes straight to the
    /// caller, so ENOSPC needs none of the writeback-cache deferral of
    /// `write`. file_modified() leaves setuid/setgid to us under
    /// KILLPRIV_V2 (fuse_setattr drops ATTR_KILL_*), so a caller other than
    /// root drops them as a direct write does.
    pub(crate) fn copy(
        &self,
        req: &Request,
        from: (u64, u64),
        to: (u64, u64),
        len: u64,
        reply: ReplyWrite,
    ) {
        let kill = unprivileged_killer(req);
        match self.fs().copy_range(from.0, from.1, to.0, to.1, len, kill) {
            Ok((n, killed)) => {
                if killed {
                    self.invalidate_attrs(to.0);
                }
                reply.written(n as u32);
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    /// fallocate(2) of `ino`.
    pub(crate) fn allocate(
        &self,
        req: &Request,
        ino: u64,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let r = fs::Fallocate::from_mode(mode)
            .and_then(|m| self.fs().fallocate(ino, offset, length, m));
        // fallocate by a caller without CAP_FSETID ("not root") drops
        // setuid/setgid; under KILLPRIV_V2 that is ours (see `killpriv`).
        if let Some(who) = unprivileged_killer(req).filter(|_| r.is_ok() && self.killpriv) {
            if self.fs().kill_suidgid(ino, &who) == Ok(true) {
                self.invalidate_attrs(ino);
            }
        }
        super::convert::empty(r, reply);
    }

    /// SEEK_DATA and SEEK_HOLE.
    pub(crate) fn seek(&self, ino: u64, offset: i64, whence: i32, reply: ReplyLseek) {
        if self.cache == CacheMode::Auto {
            // Under the writeback cache the kernel holds data we have not
            // seen (dirty pages, which LSEEK does not flush first), so any
            // hole we report could hide data. ENOSYS once, and the kernel
            // answers SEEK_DATA/SEEK_HOLE itself from then on (fc->no_lseek:
            // the whole file is data), which never hides any. cache=none
            // has no such pages and gets exact answers.
            reply.error(Errno::ENOSYS);
            return;
        }
        let data = match whence {
            libc::SEEK_DATA => true,
            libc::SEEK_HOLE => false,
            _ => {
                reply.error(Errno::EINVAL);
                return;
            }
        };
        if offset < 0 {
            reply.error(Errno::ENXIO);
            return;
        }
        match self.fs().seek(ino, offset as u64, data) {
            Ok(o) => reply.offset(o as i64),
            Err(e) => reply.error(errno(e)),
        }
    }
}
