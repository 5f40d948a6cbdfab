//! The backing file's space map: which byte ranges hold records (and how
//! much of each is still live), which are free, and giving dead space back.
//! All of it under one mutex, a leaf in the pool's lock order.

use super::record::{FRAME_HEADER, RECORD_HEADER};
use super::{BackingFile, BackingStats, FILE_HEADER, FULL_BACKOFF};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::unix::io::AsRawFd;
use std::time::Instant;

/// A record is worth rewriting when its live data is under 1/`SPARSE_LIVE_FRACTION`
/// of its length: rewriting it then gives back most of what it takes.
const SPARSE_LIVE_FRACTION: u64 = 4;
/// Records shorter than this are never rewritten: the whole record is less
/// than the copy and the new record's header would cost.
const MIN_REWRITE_RECORD: u64 = 1024;

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
    /// A rewrite (`Pool::compact_backing`) has it: frees must not drop it (the rewriter
    /// drops it when done).
    pub rewriting: bool,
}

#[derive(Debug, Default)]
pub(super) struct Space {
    /// Records by start offset. Invariant: disjoint, inside [FILE_HEADER, end).
    pub(super) records: BTreeMap<u64, Record>,
    /// Free ranges by start offset, coalesced (no two touch), inside [FILE_HEADER, end).
    pub(super) free: BTreeMap<u64, u64>,
    /// The same free ranges as (len, offset), for best fit without a scan.
    /// Invariant: same contents as `free`.
    pub(super) free_by_len: BTreeSet<(u64, u64)>,
    /// End of the used part of the file.
    pub(super) end: u64,
    /// Set when a write hit ENOSPC; cleared when space is freed or after FULL_BACKOFF.
    pub(super) full_since: Option<Instant>,
    /// Frames live in all records, and their data bytes.
    pub(super) live_objects: u64,
    pub(super) live_bytes: u64,
    /// Sum of `len` over `records` (kept so stats and reclaim's
    /// dead-space check are O(1)).
    pub(super) record_bytes: u64,
}

impl Space {
    pub(super) fn put_free(&mut self, off: u64, len: u64) {
        self.free.insert(off, len);
        self.free_by_len.insert((len, off));
    }
    pub(super) fn take_free(&mut self, off: u64, len: u64) {
        self.free.remove(&off);
        self.free_by_len.remove(&(len, off));
    }
}

impl BackingFile {
    /// Register a written record with its live frames. `live == 0` drops it.
    pub(crate) fn add_record(&self, off: u64, len: u64, live: u32, live_bytes: u64) {
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
    pub(crate) fn frame_dead(&self, off: u64, len: usize) {
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
    pub(super) fn release_locked(&self, s: &mut Space, off: u64, len: u64) {
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

    /// Records worth rewriting: under a quarter live. Marks them `rewriting`
    /// and returns (offset, record) for up to `max_bytes` of live data.
    pub(crate) fn take_sparse(&self, max_bytes: u64) -> Vec<(u64, Record)> {
        let mut s = self.space.lock();
        let mut out = Vec::new();
        let mut bytes = 0;
        for (&off, rec) in s.records.iter_mut() {
            if !rec.rewriting
                && rec.live_bytes * SPARSE_LIVE_FRACTION < rec.len
                && rec.len >= MIN_REWRITE_RECORD
            {
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
    pub(crate) fn end_rewrite(&self, off: u64) {
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
    pub(crate) fn dead_bytes(&self) -> u64 {
        let s = self.space.lock();
        let overhead =
            s.records.len() as u64 * RECORD_HEADER as u64 + s.live_objects * FRAME_HEADER as u64;
        s.record_bytes.saturating_sub(s.live_bytes + overhead)
    }

    pub(crate) fn stats(&self) -> BackingStats {
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
    pub(crate) fn check(&self) -> u64 {
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
