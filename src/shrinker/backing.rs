//! The backing file: where written-back zspages live as checksummed records.
//!
//! # Layout
//!
//! Offset 0 holds a 4 KiB file header (`FILE_MAGIC`), so a `backing=PATH`
//! that names somebody else's file is refused rather than overwritten.
//! Records follow, packed at any byte offset (a huge-class zspage's record is
//! 4096 B of data plus 28 B of framing; rounding records to 4 KiB would double
//! its disk use):
//!
//! ```text
//! record: magic u32 | frames u32 | body bytes u32 | crc32c of these 12 B
//!         frame*:  handle id u32 | len u32 | crc32c(id, len, data) u32 | data
//! ```
//!
//! A handle written back points at its frame; reading it is one `pread` of
//! `12 + len` bytes, and the frame's own checksum and handle id are checked
//! before a byte reaches the caller.
//!
//! # Space
//!
//! `Space` (one mutex, a leaf in the pool's lock order) keeps the records and
//! the free byte ranges between them. A record whose objects are all freed is
//! dropped: its range joins the free list (coalesced with its neighbours) and
//! every whole 4 KiB block of the merged free range is punched
//! (`FALLOC_FL_PUNCH_HOLE`), so the disk space goes back to the filesystem.
//! Punching happens under the mutex so no new record can be placed there in
//! between. New records take the smallest free range that fits, else grow the
//! file. Records that are mostly dead are rewritten by the shrinker (see
//! `Pool::rewrite_sparse_records`), after which the old ones are dropped too.

use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::{AsRawFd, FromRawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const FILE_MAGIC: &[u8; 16] = b"zsfs backing v1\n";
const FILE_HEADER: u64 = 4096;
pub(crate) const RECORD_MAGIC: u32 = 0x5a53_5231; // "ZSR1"
pub(crate) const RECORD_HEADER: usize = 16;
pub(crate) const FRAME_HEADER: usize = 12;
/// How long writeback stays off after the backing disk said ENOSPC, unless
/// space is freed earlier.
const FULL_BACKOFF: Duration = Duration::from_secs(5);

/// One record as the space map knows it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record {
    /// Bytes the record occupies from its start.
    pub len: u64,
    /// Frames whose handle still points here. Invariant: > 0 while the
    /// record is in the map (a record that reaches 0 is dropped at once).
    pub live: u32,
    /// Sum of the data lengths of those frames.
    pub live_bytes: u64,
    /// The shrinker is rewriting it: frees must not drop it (the rewriter
    /// drops it when done).
    pub rewriting: bool,
}

#[derive(Debug, Default)]
struct Space {
    /// Records by start offset. Invariant: disjoint, inside [FILE_HEADER, end).
    records: BTreeMap<u64, Record>,
    /// Free ranges by start offset, coalesced (no two touch), inside [FILE_HEADER, end).
    free: BTreeMap<u64, u64>,
    /// The same free ranges as (len, offset), for best fit without a scan.
    /// Invariant: same contents as `free`.
    free_by_len: BTreeSet<(u64, u64)>,
    /// End of the used part of the file.
    end: u64,
    /// Set when a write hit ENOSPC; cleared when space is freed or after FULL_BACKOFF.
    full_since: Option<Instant>,
    /// Frames live in all records, and their data bytes.
    live_objects: u64,
    live_bytes: u64,
    /// Sum of `len` over `records` (kept so stats and the shrinker's
    /// dead-space check are O(1)).
    record_bytes: u64,
}

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

pub(crate) struct BackingFile {
    file: File,
    /// For messages: the path, or "(unlinked temporary file in DIR)".
    name: String,
    space: Mutex<Space>,
}

impl Space {
    fn put_free(&mut self, off: u64, len: u64) {
        self.free.insert(off, len);
        self.free_by_len.insert((len, off));
    }
    fn take_free(&mut self, off: u64, len: u64) {
        self.free.remove(&off);
        self.free_by_len.remove(&(len, off));
    }
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
    pub fn is_full(&self) -> bool {
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
    pub fn write_record(&self, rec: &[u8]) -> io::Result<u64> {
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
                    if o + len > crate::pool::MAX_DISK_OFFSET {
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

    /// Register a written record with its live frames. `live == 0` drops it.
    pub fn add_record(&self, off: u64, len: u64, live: u32, live_bytes: u64) {
        let mut s = self.space.lock();
        if live == 0 {
            self.release_locked(&mut s, off, len);
            return;
        }
        s.live_objects += u64::from(live);
        s.live_bytes += live_bytes;
        s.record_bytes += len;
        s.records.insert(
            off,
            Record {
                len,
                live,
                live_bytes,
                rewriting: false,
            },
        );
    }

    /// One frame at `off` died (its object was freed or rewritten elsewhere).
    pub fn frame_dead(&self, off: u64, len: usize) {
        let mut s = self.space.lock();
        let (&start, rec) = s
            .records
            .range_mut(..=off)
            .next_back()
            .expect("frame inside a record");
        debug_assert!(
            off < start + rec.len,
            "frame {off} outside record {start}+{}",
            rec.len
        );
        rec.live -= 1;
        rec.live_bytes -= len as u64;
        let (gone, rlen) = (rec.live == 0 && !rec.rewriting, rec.len);
        s.live_objects -= 1;
        s.live_bytes -= len as u64;
        if gone {
            s.records.remove(&start);
            s.record_bytes -= rlen;
            self.release_locked(&mut s, start, rlen);
        }
    }

    /// Give a byte range back: coalesce, punch the whole blocks, clear `full`.
    fn release_locked(&self, s: &mut Space, off: u64, len: u64) {
        let (mut start, mut end) = (off, off + len);
        if let Some((&po, &pl)) = s.free.range(..off).next_back() {
            if po + pl == off {
                s.take_free(po, pl);
                start = po;
            }
        }
        if let Some(&nl) = s.free.get(&end) {
            s.take_free(end, nl);
            end += nl;
        }
        if end == s.end {
            // The file's tail is free: shrink it instead of keeping a hole.
            s.end = start;
            if let Err(e) = self.file.set_len(start) {
                log::warn!("backing file {}: truncating to {start}: {e}", self.name);
            }
        } else {
            s.put_free(start, end - start);
            let (a, b) = (start.next_multiple_of(4096), end / 4096 * 4096);
            if a < b {
                self.punch(a, b - a);
            }
        }
        s.full_since = None;
    }

    fn punch(&self, off: u64, len: u64) {
        // SAFETY: fallocate on our own descriptor; KEEP_SIZE leaves the length alone.
        let r = unsafe {
            libc::fallocate(
                self.file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                off as libc::off_t,
                len as libc::off_t,
            )
        };
        if r != 0 {
            let e = io::Error::last_os_error();
            // Not fatal: the range is still reused for new records.
            log::debug!(
                "backing file {}: punching {len} bytes at {off}: {e}",
                self.name
            );
        }
    }

    /// `pread` exactly `buf.len()` bytes at `off`.
    pub fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, off)
    }

    /// Records worth rewriting: under a quarter live. Marks them `rewriting`
    /// and returns (offset, record) for up to `max_bytes` of live data.
    pub fn take_sparse(&self, max_bytes: u64) -> Vec<(u64, Record)> {
        let mut s = self.space.lock();
        let mut out = Vec::new();
        let mut bytes = 0;
        for (&off, rec) in s.records.iter_mut() {
            if !rec.rewriting && rec.live_bytes * 4 < rec.len && rec.len >= 1024 {
                rec.rewriting = true;
                bytes += rec.live_bytes;
                out.push((off, *rec));
                if bytes >= max_bytes {
                    break;
                }
            }
        }
        out
    }

    /// The rewriter is done with a record: drop it if nothing lives there
    /// any more, else let frees drop it as usual.
    pub fn end_rewrite(&self, off: u64) {
        let mut s = self.space.lock();
        let rec = s.records.get_mut(&off).expect("record being rewritten");
        rec.rewriting = false;
        if rec.live == 0 {
            let len = rec.len;
            s.records.remove(&off);
            s.record_bytes -= len;
            self.release_locked(&mut s, off, len);
        }
    }

    /// Dead bytes in records (what rewriting could give back).
    pub fn dead_bytes(&self) -> u64 {
        let s = self.space.lock();
        let overhead =
            s.records.len() as u64 * RECORD_HEADER as u64 + s.live_objects * FRAME_HEADER as u64;
        s.record_bytes.saturating_sub(s.live_bytes + overhead)
    }

    pub fn stats(&self) -> BackingStats {
        let s = self.space.lock();
        BackingStats {
            record_bytes: s.record_bytes,
            records: s.records.len() as u64,
            objects: s.live_objects,
            object_bytes: s.live_bytes,
            full: s.full_since.is_some_and(|t| t.elapsed() < FULL_BACKOFF),
        }
    }

    /// Check the space map (consistency check): records and free ranges
    /// disjoint, in range, free ranges coalesced; returns live objects.
    pub fn check(&self) -> u64 {
        let s = self.space.lock();
        let mut spans: Vec<(u64, u64, bool)> =
            s.records.iter().map(|(&o, r)| (o, r.len, true)).collect();
        spans.extend(s.free.iter().map(|(&o, &l)| (o, l, false)));
        spans.sort_unstable();
        let mut at = FILE_HEADER;
        let mut prev_free = false;
        for (o, l, is_rec) in spans {
            assert!(o >= at, "backing: overlapping ranges at {o}");
            assert!(l > 0);
            assert!(
                !(prev_free && !is_rec && o == at),
                "backing: free ranges not coalesced at {o}"
            );
            prev_free = !is_rec;
            at = o + l;
        }
        assert!(at <= s.end, "backing: range past the end");
        let live: u64 = s.records.values().map(|r| u64::from(r.live)).sum();
        assert_eq!(live, s.live_objects, "backing: live object count");
        assert!(
            s.free.len() == s.free_by_len.len()
                && s.free
                    .iter()
                    .all(|(&o, &l)| s.free_by_len.contains(&(l, o))),
            "backing: free indexes disagree"
        );
        let bytes: u64 = s.records.values().map(|r| r.len).sum();
        assert_eq!(bytes, s.record_bytes, "backing: record bytes");
        for r in s.records.values() {
            assert!(r.live > 0 || r.rewriting, "backing: dead record kept");
        }
        live
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

/// CRC-32C (Castagnoli), with the SSE 4.2 instruction when the CPU has it.
pub(crate) fn crc32c(crc: u32, data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("sse4.2") {
        // SAFETY: the feature was just detected.
        return unsafe { crc32c_sse42(crc, data) };
    }
    crc32c_table(crc, data)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
unsafe fn crc32c_sse42(crc: u32, data: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u64, _mm_crc32_u8};
    let mut c = u64::from(!crc);
    let mut chunks = data.chunks_exact(8);
    for ch in &mut chunks {
        c = _mm_crc32_u64(c, u64::from_le_bytes(ch.try_into().unwrap()));
    }
    let mut c = c as u32;
    for &b in chunks.remainder() {
        c = _mm_crc32_u8(c, b);
    }
    !c
}

fn crc32c_table(crc: u32, data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0x82F6_3B78
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    let mut c = !crc;
    for &b in data {
        c = TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_known_value_both_ways() {
        assert_eq!(crc32c_table(0, b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(0, b"123456789"), 0xE306_9283);
        let long: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        assert_eq!(crc32c(0, &long), crc32c_table(0, &long));
        assert_eq!(
            crc32c(crc32c(0, &long[..333]), &long[333..]),
            crc32c(0, &long)
        );
    }

    #[test]
    fn records_frames_and_space_reuse() {
        let dir = tempfile::tempdir().unwrap();
        let b = BackingFile::create_at(&dir.path().join("bk")).unwrap();
        let (rec, offs) = build_record(&[(7, b"hello"), (9, &[1u8; 5000])]);
        let at = b.write_record(&rec).unwrap();
        assert_eq!(at, FILE_HEADER);
        b.add_record(at, rec.len() as u64, 2, 5005);
        let mut f = vec![0u8; FRAME_HEADER + 5000];
        b.read_at(&mut f, at + offs[1]).unwrap();
        assert!(frame_ok(&f, 9, 5000));
        assert!(!frame_ok(&f, 7, 5000), "wrong handle id is caught");
        f[100] ^= 1;
        assert!(!frame_ok(&f, 9, 5000), "flipped bit is caught");
        // A second record after it, then the first dies: its space is reused.
        let (rec2, _) = build_record(&[(1, &[2u8; 100])]);
        let at2 = b.write_record(&rec2).unwrap();
        b.add_record(at2, rec2.len() as u64, 1, 100);
        b.frame_dead(at + offs[0], 5);
        assert_eq!(b.stats().records, 2);
        b.frame_dead(at + offs[1], 5000);
        assert_eq!(b.stats().records, 1);
        b.check();
        let at3 = b.write_record(&rec2).unwrap();
        assert_eq!(at3, FILE_HEADER, "best fit reuses the freed range");
        b.add_record(at3, rec2.len() as u64, 1, 100);
        b.check();
    }

    #[test]
    fn dead_records_are_punched_and_the_tail_truncated() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bk");
        let b = BackingFile::create_at(&p).unwrap();
        let data = vec![7u8; 64 * 1024];
        let (rec, offs) = build_record(&[(1, &data)]);
        let at: Vec<u64> = (0..3)
            .map(|_| {
                let o = b.write_record(&rec).unwrap();
                b.add_record(o, rec.len() as u64, 1, data.len() as u64);
                o
            })
            .collect();
        b.file.sync_all().unwrap();
        let blocks = |p: &Path| std::fs::metadata(p).unwrap().blocks() * 512;
        let full = blocks(&p);
        assert!(full >= 3 * 64 * 1024, "{full}");
        // The middle record dies: its whole blocks are punched.
        b.frame_dead(at[1] + offs[0], data.len());
        let punched = blocks(&p);
        assert!(
            punched <= full - 60 * 1024,
            "{full} -> {punched} bytes on disk"
        );
        assert_eq!(
            std::fs::metadata(&p).unwrap().len(),
            at[2] + rec.len() as u64
        );
        // The last one dies: the file is cut back to the first record.
        b.frame_dead(at[2] + offs[0], data.len());
        assert_eq!(
            std::fs::metadata(&p).unwrap().len(),
            at[0] + rec.len() as u64
        );
        b.check();
    }

    #[test]
    fn refuses_foreign_files_and_creates_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("precious");
        std::fs::write(&p, b"do not overwrite").unwrap();
        let e = BackingFile::create_at(&p).err().unwrap();
        assert!(e.to_string().contains("refusing"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"do not overwrite");
        let q = dir.path().join("ours");
        drop(BackingFile::create_at(&q).unwrap());
        assert_eq!(
            std::fs::metadata(&q).unwrap().permissions().mode() & 0o777,
            0o600
        );
        drop(BackingFile::create_at(&q).expect("our own file is reused"));
        let t = BackingFile::create_temp_in(dir.path()).unwrap();
        assert!(t.name().contains("unlinked"));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            2,
            "temp file is not visible"
        );
    }
}
