//! The backing file: where written-back zspages live as checksummed records.
//!
//! The pool's writeback (`pool/writeback.rs`) hands it whole records and
//! reads frames back; it knows nothing of handles beyond the ids inside the
//! frames. Nothing here names the pool.
//!
//! # Layout
//!
//! Offset 0 holds a 4 KiB file header (`FILE_MAGIC`), so a `backing=PATH`
//! that names somebody else's file is refused rather than overwritten.
//! Records follow, packed at any byte offset (a huge-class zspage's record is
//! 4096 B of data plus 28 B of framing; rounding records to 4 KiB would double
//! its disk use). The record and frame format is in `record.rs`.
//!
//! # Space
//!
//! `Space` (`space.rs`; one mutex, a leaf in the pool's lock order) keeps the
//! records and the free byte ranges between them. A record whose objects are
//! all freed is dropped: its range joins the free list (coalesced with its
//! neighbours) and every whole 4 KiB block of the merged free range is
//! punched (`FALLOC_FL_PUNCH_HOLE`), so the disk space goes back to the
//! filesystem. Punching happens under the mutex so no new record can be
//! placed there in between. New records take the smallest free range that
//! fits, else grow the file. Records that are mostly dead are rewritten by
//! the pool (`Pool::compact_backing`, which reclaim runs by itself), after
//! which the old ones are dropped too.

mod crc32c;
pub(crate) mod record;
mod space;
#[cfg(test)]
mod tests;

use parking_lot::Mutex;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::FromRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use space::Space;

const FILE_MAGIC: &[u8; 16] = b"zsfs backing v1\n";
const FILE_HEADER: u64 = 4096;
/// Largest offset a record may reach (16 TiB): what a pool handle entry can
/// name (`pool/handles.rs` checks at compile time that it fits).
pub(crate) const MAX_OFFSET: u64 = (1 << 44) - 1;
/// How long writeback stays off after the backing disk said ENOSPC, unless
/// space is freed earlier.
const FULL_BACKOFF: Duration = Duration::from_secs(5);

/// Totals for the control file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackingStats {
    /// Bytes of records in the file (live or partly dead), i.e. what the
    /// disk holds for us (zram's bd_count * 4096, rounded up to pages).
    pub record_bytes: u64,
    /// Records in the file.
    pub records: u64,
    /// Objects on disk and their compressed bytes.
    pub objects: u64,
    pub object_bytes: u64,
    /// The disk said ENOSPC recently; writeback is paused.
    pub full: bool,
}

/// An open backing file and its space map. `Send + Sync`: records are
/// written and read with positioned I/O, the space map is under its mutex.
pub struct BackingFile {
    file: File,
    /// For messages: the path, or "(unlinked temporary file in DIR)".
    name: String,
    space: Mutex<Space>,
}

impl BackingFile {
    /// `backing=PATH`: create it 0600, or reuse one of ours (contents
    /// discarded: the pool never reads records from a previous mount).
    pub fn create_at(path: &Path) -> io::Result<BackingFile> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| {
                io::Error::new(e.kind(), format!("backing file {}: {e}", path.display()))
            })?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("backing={} is not a regular file", path.display()),
            ));
        }
        if meta.len() > 0 {
            let mut head = [0u8; 16];
            let n = file.read_at(&mut head, 0)?;
            if n < 16 || &head != FILE_MAGIC {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "backing={} exists and is not a zsfs backing file; refusing to overwrite it \
                         (remove it or choose another path)",
                        path.display()
                    ),
                ));
            }
            file.set_len(0)?;
        }
        Self::init(file, path.display().to_string())
    }

    /// The default: an unlinked file in `$TMPDIR` (or /tmp) that nobody else
    /// can open (O_TMPFILE | O_EXCL, 0600; falls back to create + unlink).
    pub fn create_temp() -> io::Result<BackingFile> {
        let dir = std::env::var_os("TMPDIR").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
        Self::create_temp_in(&dir)
    }

    pub fn create_temp_in(dir: &Path) -> io::Result<BackingFile> {
        use std::os::unix::ffi::OsStrExt;
        let cdir = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "TMPDIR contains a NUL byte")
        })?;
        // SAFETY: plain open(2) on a NUL-terminated path.
        let fd = unsafe {
            libc::open(
                cdir.as_ptr(),
                libc::O_TMPFILE | libc::O_RDWR | libc::O_EXCL | libc::O_CLOEXEC,
                0o600,
            )
        };
        let name = format!("(unlinked temporary file in {})", dir.display());
        if fd >= 0 {
            // SAFETY: fd is a fresh descriptor we own.
            return Self::init(unsafe { File::from_raw_fd(fd) }, name);
        }
        // Filesystems without O_TMPFILE: a random name, created exclusively, unlinked at once.
        for attempt in 0..16u32 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let p = dir.join(format!(
                ".zsfs-backing-{}-{nanos}-{attempt}",
                std::process::id()
            ));
            match std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&p)
            {
                Ok(f) => {
                    std::fs::remove_file(&p)?;
                    return Self::init(f, name);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("backing file in {}: {e}", dir.display()),
                    ))
                }
            }
        }
        Err(io::Error::other(format!(
            "could not create a backing file in {}",
            dir.display()
        )))
    }

    fn init(file: File, name: String) -> io::Result<BackingFile> {
        let mut head = vec![0u8; FILE_HEADER as usize];
        head[..16].copy_from_slice(FILE_MAGIC);
        file.write_all_at(&head, 0).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("backing file {name}: writing its header: {e}"),
            )
        })?;
        Ok(BackingFile {
            file,
            name,
            space: Mutex::new(Space {
                end: FILE_HEADER,
                ..Default::default()
            }),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Writeback is paused because the disk was full.
    pub(crate) fn is_full(&self) -> bool {
        let mut s = self.space.lock();
        match s.full_since {
            Some(t) if t.elapsed() < FULL_BACKOFF => true,
            Some(_) => {
                s.full_since = None;
                false
            }
            None => false,
        }
    }

    /// Write a record built by the caller; returns its offset. On error
    /// nothing of it stays allocated (and the disk is marked full on ENOSPC).
    pub(crate) fn write_record(&self, rec: &[u8]) -> io::Result<u64> {
        let len = rec.len() as u64;
        let off = {
            let mut s = self.space.lock();
            // Best fit: the smallest free range that holds the record.
            let found = s.free_by_len.range((len, 0)..).next().copied();
            match found {
                Some((l, o)) => {
                    s.take_free(o, l);
                    if l > len {
                        s.put_free(o + len, l - len);
                    }
                    o
                }
                None => {
                    let o = s.end;
                    if o + len > MAX_OFFSET {
                        s.full_since = Some(Instant::now());
                        return Err(io::Error::new(
                            io::ErrorKind::StorageFull,
                            "backing file reached 16 TiB",
                        ));
                    }
                    s.end += len;
                    o
                }
            }
        };
        match self.file.write_all_at(rec, off) {
            Ok(()) => Ok(off),
            Err(e) => {
                let mut s = self.space.lock();
                self.release_locked(&mut s, off, len);
                // After the release, which clears `full` as frees do.
                if e.raw_os_error() == Some(libc::ENOSPC)
                    || e.kind() == io::ErrorKind::StorageFull
                    || e.kind() == io::ErrorKind::WriteZero
                {
                    s.full_since = Some(Instant::now());
                }
                Err(e)
            }
        }
    }

    /// `pread` exactly `buf.len()` bytes at `off`.
    pub(crate) fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, off)
    }
}

impl Drop for BackingFile {
    fn drop(&mut self) {
        // Records are useless once the pool is gone: give the disk space back
        // (a temporary file is unlinked and disappears by itself).
        if let Err(e) = self.file.set_len(FILE_HEADER) {
            log::warn!("backing file {}: truncating on close: {e}", self.name);
        }
    }
}
