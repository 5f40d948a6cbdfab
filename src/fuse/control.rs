//! The control file's opens: each has its own handle and the text served
//! to it, taken at the read of offset 0 so one `cat` sees one consistent
//! snapshot; and control-file writes, allowed to root and the mounter.

use super::convert::errno;
use super::ZsfsFuse;
use crate::fs::{Fs, ROOT_INO};
use fuser::{Errno, FileHandle, ReplyData, ReplyWrite, Request};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Open control-file handles and their snapshots.
pub(crate) struct ControlOpens {
    /// fh -> the text served to that open. Held across `Fs::control_read`
    /// while a snapshot is taken, which is safe: the core never calls back
    /// up, and nothing else is locked under it.
    snapshots: Mutex<HashMap<u64, Vec<u8>>>,
    /// Next control-file handle (0 is what regular files get).
    next_fh: AtomicU64,
}

impl ControlOpens {
    pub(crate) fn new() -> ControlOpens {
        ControlOpens {
            snapshots: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
        }
    }

    /// A new handle with no snapshot yet.
    pub(crate) fn open(&self) -> FileHandle {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.snapshots.lock().insert(fh, Vec::new());
        FileHandle(fh)
    }

    /// Answer a READ of handle `fh` from its snapshot, taken anew at
    /// offset 0 (or when there is none).
    pub(crate) fn read(&self, fs: &Fs, fh: FileHandle, offset: u64, size: u32, reply: ReplyData) {
        let mut map = self.snapshots.lock();
        let snap = map.entry(fh.0).or_default();
        if offset == 0 || snap.is_empty() {
            *snap = fs.control_read();
        }
        let start = (offset as usize).min(snap.len());
        let end = start.saturating_add(size as usize).min(snap.len());
        reply.data(&snap[start..end]);
    }

    pub(crate) fn release(&self, fh: FileHandle) {
        self.snapshots.lock().remove(&fh.0);
    }
}

impl ZsfsFuse {
    /// A WRITE of the control file: commands, run by the core.
    pub(crate) fn control_write(&self, req: &Request, data: &[u8], reply: ReplyWrite) {
        // The kernel already refused opens for writing by others (mode
        // 0644, default_permissions); this keeps it so if that changes.
        if !self.fs().control_writable_by(req.uid()) {
            reply.error(Errno::EACCES);
            return;
        }
        match self.fs().control_write(data) {
            Ok(()) => {
                // A remount may give the root another mode or owner.
                self.invalidate_attrs(ROOT_INO);
                reply.written(data.len() as u32);
            }
            Err(e) => reply.error(errno(e)),
        }
    }
}
