//! The pool side of writeback: choosing the coldest zspage, isolating it,
//! writing its live objects as one record, repointing their handles, and
//! reading written-back objects. The policy (when, how much) and the file
//! format live in `crate::shrinker`; its module comment has the whole design.

use super::*;
use crate::shrinker::backing::{build_record, frame_ok, FRAME_HEADER, RECORD_HEADER};

/// What `Pool::writeback` should write (the control file's `writeback ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WritebackRequest {
    /// Every zspage there is now, ignoring the referenced flag.
    All,
    /// Zspages neither allocated into nor read since the previous `Idle`
    /// request (for the first one: not read since the shrinker last looked).
    Idle,
    /// About this many bytes of pool memory, coldest first, with second chance.
    Bytes(u64),
}

/// What one writeback pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WritebackReport {
    /// Zspages written back.
    pub zspages: u64,
    /// Pool pages given back.
    pub pages_freed: u64,
    /// Objects written.
    pub objects: u64,
    /// Referenced zspages given a second chance instead.
    pub rotations: u64,
}

/// Which zspages a pass may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pick {
    /// Coldest first; a referenced zspage is rotated once (second chance).
    SecondChance,
    /// Only zspages last allocated into before `mark`; referenced ones are
    /// rotated (which makes them newer than `mark`).
    Idle { mark: u64 },
    /// Every zspage last allocated into before `mark`.
    All { mark: u64 },
}

enum Step {
    Wrote {
        pages: u64,
        objects: u64,
    },
    Rotated,
    /// This class's tail is not the pool's coldest (any more); look again.
    Retry,
}

impl Core {
    /// Run a writeback request in the calling thread.
    pub(crate) fn writeback(&self, req: WritebackRequest) -> Result<WritebackReport, PoolError> {
        if self.backing.is_none() {
            return Err(PoolError::NoBacking);
        }
        let r = self.writeback_inner(req);
        // Writeback is for giving memory back: do not keep freed pages resident.
        self.arena.trim();
        r
    }

    fn writeback_inner(&self, req: WritebackRequest) -> Result<WritebackReport, PoolError> {
        // Relaxed: the clock only orders zspages by allocation time.
        let now = self.clock.load(Ordering::Relaxed);
        match req {
            WritebackRequest::All => self.shrink(Pick::All { mark: now }, u64::MAX),
            WritebackRequest::Idle => {
                let prev = self.wb.idle_mark.load(Ordering::Relaxed);
                let mark = if prev == u64::MAX { now } else { prev };
                let r = self.shrink(Pick::Idle { mark }, u64::MAX);
                // The next period starts after this pass, so zspages it
                // rotated count as untouched from here on.
                self.wb
                    .idle_mark
                    .store(self.clock.load(Ordering::Relaxed), Ordering::Relaxed);
                r
            }
            WritebackRequest::Bytes(n) => {
                self.shrink(Pick::SecondChance, n.div_ceil(PAGE_SIZE as u64).max(1))
            }
        }
    }

    /// Write back coldest-first until `goal` pages are freed or nothing is
    /// left to take. Stops at the first write error (disk full: the zspage
    /// stays in memory, see `writeback_zspage`).
    pub(crate) fn shrink(&self, pick: Pick, goal: u64) -> Result<WritebackReport, PoolError> {
        let mark = match pick {
            Pick::Idle { mark } | Pick::All { mark } => mark,
            Pick::SecondChance => u64::MAX,
        };
        let mut rep = WritebackReport::default();
        'scan: while rep.pages_freed < goal {
            let Some((ci, stamp, next)) = self.coldest_class() else {
                break;
            };
            if stamp >= mark {
                break;
            }
            // Take from this class while its tail is older than every other
            // class's tail: one scan of the classes serves a whole run.
            let bound = next.min(mark);
            loop {
                match self.shrink_one(ci, pick, bound)? {
                    Step::Wrote { pages, objects } => {
                        rep.zspages += 1;
                        rep.pages_freed += pages;
                        rep.objects += objects;
                        if rep.pages_freed >= goal {
                            break 'scan;
                        }
                    }
                    Step::Rotated => rep.rotations += 1,
                    Step::Retry => continue 'scan,
                }
            }
        }
        Ok(rep)
    }

    /// The class whose LRU tail is the oldest zspage in the pool, its stamp,
    /// and the next oldest tail's stamp (u64::MAX if none). Each class LRU is
    /// ordered by stamp, so this is the global LRU order without a global
    /// list (and without a global lock on `alloc`).
    fn coldest_class(&self) -> Option<(usize, u64, u64)> {
        let mut best: Option<(usize, u64)> = None;
        let mut next = u64::MAX;
        for (ci, c) in self.classes.iter().enumerate() {
            let c = c.lock();
            if c.lru.tail != NIL {
                let stamp = c.z(c.lru.tail).stamp;
                match best {
                    Some((_, s)) if stamp >= s => next = next.min(stamp),
                    _ => {
                        if let Some((_, s)) = best {
                            next = next.min(s);
                        }
                        best = Some((ci, stamp));
                    }
                }
            }
        }
        best.map(|(ci, s)| (ci, s, next))
    }

    /// Write back (or give a second chance to) the LRU tail of class `ci`
    /// if it is older than `bound`; `Retry` when it is not (look again).
    fn shrink_one(&self, ci: usize, pick: Pick, bound: u64) -> Result<Step, PoolError> {
        let mut c = self.classes[ci].lock();
        let zid = c.lru.tail;
        if zid == NIL || c.z(zid).stamp >= bound {
            return Ok(Step::Retry);
        }
        // `Idle` always skips what was read (that is what idle means);
        // coldest-first writeback does only with second chance on.
        let spare = match pick {
            Pick::All { .. } => false,
            Pick::Idle { .. } => true,
            Pick::SecondChance => self.second_chance(),
        };
        if spare && c.z(zid).referenced {
            // Second chance: clear the flag and move it to the head, as if
            // just allocated into. List surgery by the shrinker, under the
            // class lock, on a Listed zspage.
            let z = c.z_mut(zid);
            z.referenced = false;
            z.stamp = self.clock.fetch_add(1, Ordering::Relaxed);
            c.unlink(ListId::Lru, zid);
            c.push_front(ListId::Lru, zid);
            self.wb.second_chance.fetch_add(1, Ordering::Relaxed);
            return Ok(Step::Rotated);
        }
        self.writeback_zspage(c, ci, zid)
    }

    /// Isolate `zid` (under the class lock the caller holds), write its live
    /// objects as one record with no lock held, then repoint the handles
    /// that are still live and give the pages back.
    fn writeback_zspage(
        &self,
        mut c: parking_lot::MutexGuard<'_, Class>,
        ci: usize,
        zid: u32,
    ) -> Result<Step, PoolError> {
        let bk = self
            .backing
            .as_ref()
            .expect("writeback needs a backing file");
        let size = c.info.size;
        let huge = c.info.huge();
        let group = c.z(zid).group;
        c.unlink(ListId::Group(group), zid);
        c.unlink(ListId::Lru, zid);
        let inuse = c.z(zid).inuse;
        c.z_mut(zid).state = ZsState::Isolated;
        c.isolated += 1;
        c.isolated_inuse += inuse;
        self.wb.isolated_now.fetch_add(1, Ordering::Relaxed);
        // Snapshot the live objects: (slot, handle id, start in data, len).
        let mut data = Vec::with_capacity(size * inuse);
        let mut meta = Vec::with_capacity(inuse);
        let z = c.z(zid);
        for (idx, &hid) in z.slots.iter().enumerate() {
            if hid & SLOT_FREE != 0 {
                continue;
            }
            let Loc::Mem { len, .. } = Loc::decode(self.handles.entry(hid).load(Ordering::Relaxed))
            else {
                unreachable!("slot holds a handle that is not in memory")
            };
            meta.push((idx, hid, data.len(), len));
            z.copy_out(size, idx, len, &mut data);
        }
        drop(c);

        // No lock held: readers read the zspage, frees clear its slots.
        let frames: Vec<(u32, &[u8])> = meta
            .iter()
            .map(|&(_, hid, at, len)| (hid, &data[at..at + len]))
            .collect();
        let (rec, offs) = build_record(&frames);
        let written = bk.write_record(&rec);

        let mut c = self.classes[ci].lock();
        let off = match written {
            Ok(off) => off,
            Err(e) => {
                // Nothing lost: the zspage goes back to its lists, data in memory.
                let pages = self.putback(&mut c, zid);
                drop(c);
                self.wb.isolated_now.fetch_sub(1, Ordering::Relaxed);
                if let Some(p) = pages {
                    self.release_pages(p);
                }
                self.wb.write_errors.fetch_add(1, Ordering::Relaxed);
                log::warn!(
                    "writeback to {} failed, data stays in memory: {e}",
                    bk.name()
                );
                return Err(PoolError::Io(e));
            }
        };
        let (mut live, mut live_bytes) = (0u32, 0u64);
        for (k, &(idx, hid, _, len)) in meta.iter().enumerate() {
            // A slot of an isolated zspage is never reused, so still holding
            // `hid` means the object was not freed during the write.
            if c.z(zid).slots[idx] != hid {
                continue;
            }
            // Release: the record is on disk before a reader can see this.
            self.handles.entry(hid).store(
                Loc::Disk {
                    len,
                    off: off + offs[k],
                }
                .encode(),
                Ordering::Release,
            );
            c.release_slot(zid, idx);
            live += 1;
            live_bytes += len as u64;
            self.bytes_stored.fetch_sub(len as u64, Ordering::Relaxed);
            self.objects.fetch_sub(1, Ordering::Relaxed);
            if huge {
                self.huge_objects.fetch_sub(1, Ordering::Relaxed);
            }
        }
        // Registered before the class lock drops, so a free of one of these
        // objects (class lock first) always finds its record.
        bk.add_record(off, rec.len() as u64, live, live_bytes);
        let pages = self.drop_zspage(&mut c, zid);
        drop(c);
        self.wb.isolated_now.fetch_sub(1, Ordering::Relaxed);
        let n = pages.len() as u64;
        self.release_pages(pages);
        self.wb
            .bytes_written
            .fetch_add(rec.len() as u64, Ordering::Relaxed);
        self.wb.written_back_pages.fetch_add(n, Ordering::Relaxed);
        Ok(Step::Wrote {
            pages: n,
            objects: u64::from(live),
        })
    }

    /// Undo an isolation (the write failed). The zspage goes to the head of
    /// the LRU with a fresh stamp so a failing disk is not retried on it at
    /// once; an isolated zspage emptied by frees is dropped instead.
    pub(super) fn putback(&self, c: &mut Class, zid: u32) -> Option<Box<[Page]>> {
        let inuse = c.z(zid).inuse;
        if inuse == 0 {
            return Some(self.drop_zspage(c, zid));
        }
        c.isolated -= 1;
        c.isolated_inuse -= inuse;
        let g = fullness(inuse, c.info.objs);
        let stamp = self.clock.fetch_add(1, Ordering::Relaxed);
        let z = c.z_mut(zid);
        z.state = ZsState::Listed;
        z.group = g;
        z.stamp = stamp;
        c.push_front(ListId::Group(g), zid);
        c.push_front(ListId::Lru, zid);
        None
    }

    /// At the limit in `alloc`: write back enough cold zspages for `needed`
    /// bytes in this thread. False when that cannot work.
    pub(crate) fn reclaim_for_alloc(&self, needed: u64) -> bool {
        match &self.backing {
            Some(b) if !b.is_full() => {}
            _ => return false,
        }
        let needed = needed.div_ceil(PAGE_SIZE as u64);
        let (used, limit) = self.pages_and_limit();
        if needed > limit {
            // A zspage larger than the whole limit: writing back cannot help.
            return false;
        }
        match self.shrink(Pick::SecondChance, needed + used.saturating_sub(limit)) {
            Ok(r) if r.pages_freed > 0 => true,
            // Others made the room meanwhile (their writeback or frees).
            Ok(_) if self.pages_and_limit().0 + needed <= limit => true,
            // Nothing on any LRU, yet pages are held: every zspage is being
            // written back by another thread right now and its pages are
            // about to be freed. Wait a moment and try again.
            Ok(_) if self.pages_and_limit().0 > 0 => {
                std::thread::sleep(std::time::Duration::from_micros(200));
                true
            }
            _ => false,
        }
    }

    /// One `pread` of the object's frame, checked before the caller sees it.
    pub(crate) fn read_disk(&self, id: u32, out: &mut Vec<u8>) -> Result<(), PoolError> {
        let bk = self
            .backing
            .as_ref()
            .expect("disk entry needs a backing file");
        let _d = self.disk_rw.read();
        // Acquire: see the record written before this entry was published.
        let Loc::Disk { len, off } = Loc::decode(self.handles.entry(id).load(Ordering::Acquire))
        else {
            unreachable!("an object on disk never comes back to memory")
        };
        let start = out.len();
        out.resize(start + FRAME_HEADER + len, 0);
        if let Err(e) = bk.read_at(&mut out[start..], off) {
            out.truncate(start);
            log::error!(
                "backing file {}: reading {len} bytes at {off}: {e}",
                bk.name()
            );
            return Err(PoolError::Io(e));
        }
        if !frame_ok(&out[start..], id, len) {
            out.truncate(start);
            self.wb.checksum_failures.fetch_add(1, Ordering::Relaxed);
            log::error!(
                "backing file {}: checksum mismatch for object {id} ({len} bytes) at offset {off}; \
                 the read fails with EIO",
                bk.name()
            );
            return Err(PoolError::Checksum { offset: off });
        }
        out.drain(start..start + FRAME_HEADER);
        self.wb.bd_reads.fetch_add(
            (len as u64).div_ceil(PAGE_SIZE as u64).max(1),
            Ordering::Relaxed,
        );
        Ok(())
    }

    /// Move the live frames of mostly-dead records into one new record and
    /// drop the old ones (their space is punched and reused). Returns the
    /// record bytes given back.
    pub(crate) fn rewrite_sparse_records(&self) -> Result<u64, PoolError> {
        let Some(bk) = &self.backing else {
            return Ok(0);
        };
        let old = bk.take_sparse(256 * 1024);
        if old.is_empty() {
            return Ok(0);
        }
        // Read each old record whole and collect frames whose handle still
        // points at them (checked again under the write lock below).
        let mut frames: Vec<(u32, usize, u64, Vec<u8>)> = Vec::new();
        let mut buf = Vec::new();
        for &(off, rec) in &old {
            buf.resize(rec.len as usize, 0);
            if bk.read_at(&mut buf, off).is_err() {
                continue;
            }
            let mut at = RECORD_HEADER;
            while at + FRAME_HEADER <= buf.len() {
                let id = u32::from_le_bytes(buf[at..at + 4].try_into().unwrap());
                let len = u32::from_le_bytes(buf[at + 4..at + 8].try_into().unwrap()) as usize;
                let end = at + FRAME_HEADER + len;
                if end > buf.len() {
                    break;
                }
                let here = off + at as u64;
                // Acquire: as in read_disk.
                let live = id < self.handles.high_water()
                    && Loc::decode(self.handles.entry(id).load(Ordering::Acquire))
                        == (Loc::Disk { len, off: here });
                // A frame that fails its checksum stays where it is: its
                // reader gets the error, not a silently rewritten copy.
                if live && frame_ok(&buf[at..end], id, len) {
                    frames.push((id, len, here, buf[at + FRAME_HEADER..end].to_vec()));
                }
                at = end;
            }
        }
        let refs: Vec<(u32, &[u8])> = frames
            .iter()
            .map(|(id, _, _, d)| (*id, d.as_slice()))
            .collect();
        let (rec, offs) = build_record(&refs);
        let new_off = if refs.is_empty() {
            None
        } else {
            match bk.write_record(&rec) {
                Ok(o) => Some(o),
                Err(e) => {
                    for &(off, _) in &old {
                        bk.end_rewrite(off);
                    }
                    return Err(PoolError::Io(e));
                }
            }
        };
        {
            // Exclusive: no disk read or free is between loading an entry
            // and using it while entries move.
            let _w = self.disk_rw.write();
            let (mut live, mut live_bytes) = (0u32, 0u64);
            if let Some(new_off) = new_off {
                for (k, (id, len, here, _)) in frames.iter().enumerate() {
                    let entry = self.handles.entry(*id);
                    if Loc::decode(entry.load(Ordering::Acquire))
                        == (Loc::Disk {
                            len: *len,
                            off: *here,
                        })
                    {
                        // Release: the new record was written before.
                        entry.store(
                            Loc::Disk {
                                len: *len,
                                off: new_off + offs[k],
                            }
                            .encode(),
                            Ordering::Release,
                        );
                        bk.frame_dead(*here, *len);
                        live += 1;
                        live_bytes += *len as u64;
                    }
                }
                bk.add_record(new_off, rec.len() as u64, live, live_bytes);
            }
        }
        let before = bk.stats().record_bytes;
        for &(off, _) in &old {
            bk.end_rewrite(off);
        }
        self.wb
            .records_rewritten
            .fetch_add(old.len() as u64, Ordering::Relaxed);
        Ok(before.saturating_sub(bk.stats().record_bytes))
    }

    /// Consistency check of one on-disk entry: its frame is inside a record
    /// and reads back intact.
    pub(crate) fn check_disk_entry(&self, id: u32, len: usize, off: u64) {
        let bk = self
            .backing
            .as_ref()
            .expect("disk entry without a backing file");
        let mut f = vec![0; FRAME_HEADER + len];
        bk.read_at(&mut f, off)
            .expect("reading a frame for the check");
        assert!(frame_ok(&f, id, len), "handle {id}: bad frame at {off}");
    }

    pub(crate) fn wb_stats(&self, st: &mut PoolStats) {
        let w = &self.wb;
        st.bd_reads = w.bd_reads.load(Ordering::Relaxed);
        st.bd_writes = w
            .bytes_written
            .load(Ordering::Relaxed)
            .div_ceil(PAGE_SIZE as u64);
        st.written_back_pages = w.written_back_pages.load(Ordering::Relaxed);
        st.shrinker_runs = w.shrinker_runs.load(Ordering::Relaxed);
        st.second_chance = w.second_chance.load(Ordering::Relaxed);
        st.checksum_failures = w.checksum_failures.load(Ordering::Relaxed);
        st.isolated_frees = w.isolated_frees.load(Ordering::Relaxed);
        st.isolated_reads = w.isolated_reads.load(Ordering::Relaxed);
        st.records_rewritten = w.records_rewritten.load(Ordering::Relaxed);
        st.writeback_errors = w.write_errors.load(Ordering::Relaxed);
        if let Some(b) = &self.backing {
            let b = b.stats();
            st.bd_count = b.record_bytes.div_ceil(PAGE_SIZE as u64);
            st.disk_objects = b.objects;
            st.disk_bytes = b.object_bytes;
            st.backing_full = b.full;
        }
    }
}
