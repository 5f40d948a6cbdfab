//! The writeback mechanism: choosing the coldest zspage by a pick rule,
//! isolating it, writing its live objects as one record, repointing their
//! handles, and direct reclaim from `alloc`. When and how much to write back
//! (the policy) is `crate::reclaim`'s; the record format is
//! `crate::backing::record`. Reading and rewriting records is `disk.rs`.
//!
//! - **LRU.** Each class LRU is ordered by the clock value a zspage was last
//!   put at the head with (`ZsPage::stamp`). The coldest zspage of the pool
//!   is the class LRU tail with the smallest stamp, so there is no pool-wide
//!   list and no pool-wide lock on `alloc`.
//! - **Second chance.** A read sets the zspage's `referenced` flag (a field
//!   written under the class lock the read already holds). Writeback,
//!   meeting a referenced tail, clears the flag and moves the zspage to the
//!   head with a fresh stamp instead of writing it (`second_chance` counts
//!   these), as zswap's shrinker does.
//! - **Isolation** is the explicit `ZsState::Isolated` of a zspage, set under
//!   the class lock: the zspage leaves its fullness group and the LRU, so
//!   `alloc` cannot pick it and `compact` cannot see it. Its objects can still
//!   be read (the pages are intact until the end) and freed (the slot is
//!   cleared; the writer notices). Only the isolating thread puts it back
//!   (write failed) or drops it (written).
//! - **One zspage:** isolate and copy its live objects (class lock), write
//!   them as one checksummed record with no lock held, then, under the class
//!   lock again, point each still-live handle at its frame on disk, register
//!   the record, and give the pages back. A failed write (e.g. ENOSPC) puts
//!   the zspage back: nothing is lost.

use super::list::NIL;
use super::*;
use crate::backing::record::build_record;

/// Direct reclaim found nothing to take while pages are held: every zspage
/// is being written back by other threads and is about to be freed. This
/// long is a few record writes, short next to `ALLOC_RECLAIM_DEADLINE`.
const ISOLATED_WAIT: Duration = Duration::from_micros(200);

/// What `Pool::writeback` should write (the control file's `writeback ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WritebackRequest {
    /// Every zspage there is now, ignoring the referenced flag.
    All,
    /// Zspages neither allocated into nor read since the previous `Idle`
    /// request (for the first one: not read since writeback last looked).
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

impl Pool {
    /// Write back now, in this thread (`writeback all|idle|N`).
    pub fn writeback(&self, req: WritebackRequest) -> Result<WritebackReport, PoolError> {
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
        let r = self.shrink_pass(pick, goal);
        // Per class, one lock at a time: writers may run meanwhile.
        #[cfg(debug_assertions)]
        self.debug_check_classes();
        r
    }

    /// Reclaim's writeback of `pages` pages, coldest first with second
    /// chance as configured; the freed pages really go back to the kernel
    /// (no resident cache kept).
    pub(crate) fn shrink_coldest(&self, pages: u64) -> Result<WritebackReport, PoolError> {
        let r = self.shrink(Pick::SecondChance, pages);
        self.arena.trim();
        r
    }

    fn shrink_pass(&self, pick: Pick, goal: u64) -> Result<WritebackReport, PoolError> {
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
            Pick::SecondChance => self.config.second_chance,
        };
        if spare && c.z(zid).referenced {
            // Second chance: clear the flag and move it to the head, as if
            // just allocated into. List surgery by writeback, under the
            // class lock, on a Listed zspage.
            c.z_mut(zid).referenced = false;
            let stamp = self.clock.fetch_add(1, Ordering::Relaxed);
            c.move_to_lru_head(zid, stamp);
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
        let inuse = c.z(zid).inuse;
        c.isolate(zid);
        self.wb.isolated_now.fetch_add(1, Ordering::Relaxed);
        // Snapshot the live objects: (slot, handle id, start in data, len).
        let mut data = Vec::with_capacity(size * inuse);
        let mut meta = Vec::with_capacity(inuse);
        let z = c.z(zid);
        for (idx, hid) in z.used() {
            let Loc::Mem { len, .. } = self.handles.entry(hid).load_locked() else {
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
        let moving = self.moving.read();
        let (mut live, mut live_bytes) = (0u32, 0u64);
        for (k, &(idx, hid, _, len)) in meta.iter().enumerate() {
            // A slot of an isolated zspage is never reused, so still holding
            // `hid` means the object was not freed during the write.
            if c.z(zid).slots()[idx] != hid {
                continue;
            }
            // The record is on disk before a reader can see this.
            self.handles.entry(hid).set_disk(len, off + offs[k]);
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
        drop(moving);
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
        if c.z(zid).inuse == 0 {
            return Some(self.drop_zspage(c, zid));
        }
        let stamp = self.clock.fetch_add(1, Ordering::Relaxed);
        c.unisolate(zid, stamp);
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
                std::thread::sleep(ISOLATED_WAIT);
                true
            }
            _ => false,
        }
    }
}
