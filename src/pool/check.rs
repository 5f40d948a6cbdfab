//! `debug_check_consistency`: every invariant of the pool asserted, for the
//! model and stress tests (after every step) and, per class, for debug
//! builds at the end of each compaction and writeback pass.

use super::class::ListId;
use super::list::{List, NIL};
use super::zspage::{fullness, GROUPS, SLOT_FREE, SLOT_NIL};
use super::*;

/// What one class holds, summed by the whole-pool check.
#[derive(Default)]
struct Totals {
    pages: u64,
    objects: u64,
    bytes: u64,
}

impl Pool {
    /// Assert every invariant of the pool (debug builds and tests): counts,
    /// fullness groups, free lists, LRU, handle map, backing records. Holds
    /// every class lock (in index order) and `disk_rw` for the duration.
    pub fn debug_check_consistency(&self) {
        let guards: Vec<_> = self.classes.iter().map(|c| c.lock()).collect();
        let _disk = self.disk_rw.write();
        let mut disk_objects = 0u64;
        let high = self.handles.high_water();
        // Per id: how many places claim it (slot or free list).
        let mut claimed = vec![0u8; high as usize];
        let mut totals = Totals::default();
        for (ci, c) in guards.iter().enumerate() {
            let t = self.check_class(ci, c, Some(&mut claimed));
            totals.pages += t.pages;
            totals.objects += t.objects;
            totals.bytes += t.bytes;
        }
        for (id, &n) in claimed.iter().enumerate() {
            let loc = self.handles.entry(id as u32).load();
            let expect = match loc {
                Loc::Disk { len, off } => {
                    self.check_disk_entry(id as u32, len, off);
                    disk_objects += 1;
                    0
                }
                _ => 1,
            };
            assert_eq!(n, expect, "handle {id} ({loc:?}) claimed {n} times");
        }
        match &self.backing {
            Some(b) => assert_eq!(
                b.check(),
                disk_objects,
                "objects on disk vs backing records"
            ),
            None => assert_eq!(disk_objects, 0, "disk entries without a backing file"),
        }
        assert_eq!(
            totals.pages,
            self.pages_used.load(Ordering::Relaxed),
            "pages_used"
        );
        assert_eq!(
            totals.objects,
            self.objects.load(Ordering::Relaxed),
            "objects"
        );
        assert_eq!(
            totals.bytes,
            self.bytes_stored.load(Ordering::Relaxed),
            "bytes_stored"
        );
    }

    /// The invariants of class `ci` alone, under its lock only (so safe
    /// while other threads use the pool).
    #[cfg_attr(not(debug_assertions), allow(dead_code))]
    pub(super) fn debug_check_class(&self, ci: usize) {
        let c = self.classes[ci].lock();
        self.check_class(ci, &c, None);
    }

    /// Every classes' invariants, one class lock at a time.
    #[cfg_attr(not(debug_assertions), allow(dead_code))]
    pub(super) fn debug_check_classes(&self) {
        for ci in 0..self.classes.len() {
            self.debug_check_class(ci);
        }
    }

    /// Assert class `ci`'s invariants (its lock held by the caller); count
    /// in `claimed` the handle ids it holds (slots and free list).
    fn check_class(&self, ci: usize, c: &Class, mut claimed: Option<&mut [u8]>) -> Totals {
        let high = self.handles.high_water();
        let mut totals = Totals::default();
        let info = c.info;
        let (mut zspages, mut inuse, mut isolated, mut iso_inuse) = (0, 0, 0, 0);
        let mut group_len = [0usize; GROUPS];
        let mut lru_len = 0;
        for (zid, z) in c.slab.iter().enumerate() {
            let Some(z) = z else {
                assert!(
                    c.free_zs.contains(&(zid as u32)),
                    "class {ci}: hole {zid} not in free_zs"
                );
                continue;
            };
            let zid = zid as u32;
            zspages += 1;
            assert_eq!(z.npages(), info.pages);
            assert_eq!(z.slots().len(), info.objs);
            // Free chain visits exactly the free slots.
            let mut free = 0;
            let mut cur = z.free_head;
            while cur != SLOT_NIL {
                let s = z.slots()[cur as usize];
                assert!(
                    s & SLOT_FREE != 0,
                    "class {ci} zspage {zid}: chain hits used slot {cur}"
                );
                free += 1;
                assert!(
                    free <= info.objs,
                    "class {ci} zspage {zid}: free chain loops"
                );
                cur = s & !SLOT_FREE;
            }
            let used: Vec<(usize, u32)> = z.used().collect();
            assert_eq!(used.len(), z.inuse, "class {ci} zspage {zid}: inuse");
            assert_eq!(
                free + z.inuse,
                info.objs,
                "class {ci} zspage {zid}: free + used"
            );
            for (idx, hid) in used {
                assert!(hid < high, "slot holds unknown handle {hid}");
                if let Some(cl) = claimed.as_deref_mut() {
                    cl[hid as usize] += 1;
                }
                let loc = self.handles.entry(hid).load_locked();
                match loc {
                    Loc::Mem {
                        len,
                        zspage,
                        idx: i,
                    } => {
                        assert_eq!((zspage, i), (zid, idx), "handle {hid} points elsewhere");
                        assert_eq!(
                            self.table.class_of(len),
                            ci,
                            "handle {hid} len {len} in wrong class"
                        );
                        totals.objects += 1;
                        totals.bytes += len as u64;
                    }
                    other => {
                        panic!("handle {hid} in slot {zid}/{idx} of class {ci} is {other:?}")
                    }
                }
            }
            inuse += z.inuse;
            match z.state {
                ZsState::Listed => {
                    assert_eq!(
                        z.group,
                        fullness(z.inuse, info.objs),
                        "class {ci} zspage {zid}: group"
                    );
                    assert!(
                        z.inuse > 0,
                        "class {ci}: empty listed zspage {zid} not freed"
                    );
                    group_len[z.group] += 1;
                    lru_len += 1;
                }
                ZsState::Isolated => {
                    isolated += 1;
                    iso_inuse += z.inuse;
                }
            }
        }
        assert_eq!(
            (zspages, inuse),
            (c.zspages, c.inuse),
            "class {ci}: counters"
        );
        assert_eq!(
            (isolated, iso_inuse),
            (c.isolated, c.isolated_inuse),
            "class {ci}: isolated"
        );
        // Lists: lengths, links both ways, membership by state and group.
        let walk = |which: ListId, l: &List| -> usize {
            let mut n = 0;
            let mut prev = NIL;
            let mut cur = l.head;
            while cur != NIL {
                let z = c.z(cur);
                assert_eq!(
                    z.state,
                    ZsState::Listed,
                    "class {ci}: isolated zspage {cur} on a list"
                );
                let link = match which {
                    ListId::Group(g) => {
                        assert_eq!(z.group, g, "class {ci}: zspage {cur} in wrong group");
                        z.glink
                    }
                    ListId::Lru => z.llink,
                };
                assert_eq!(link.prev, prev, "class {ci}: broken prev link at {cur}");
                if which == ListId::Lru && prev != NIL {
                    assert!(
                        c.z(prev).stamp >= z.stamp,
                        "class {ci}: LRU out of order at {cur}"
                    );
                }
                prev = cur;
                cur = link.next;
                n += 1;
                assert!(n <= c.zspages, "class {ci}: list loops");
            }
            assert_eq!(l.tail, prev, "class {ci}: tail");
            assert_eq!(l.len, n, "class {ci}: list len");
            n
        };
        for (g, &expect) in group_len.iter().enumerate() {
            assert_eq!(
                walk(ListId::Group(g), &c.groups[g]),
                expect,
                "class {ci} group {g}"
            );
        }
        assert_eq!(
            walk(ListId::Lru, &c.lru),
            lru_len,
            "class {ci}: LRU holds the listed zspages"
        );
        for &id in &c.free_ids {
            assert!(id < high);
            if let Some(cl) = claimed.as_deref_mut() {
                cl[id as usize] += 1;
            }
            let loc = self.handles.entry(id).load_locked();
            assert_eq!(loc, Loc::Free, "free id {id} of class {ci} has an entry");
        }
        totals.pages += (c.zspages * info.pages) as u64;
        totals
    }

    /// Consistency check of one on-disk entry: its frame is inside a record
    /// and reads back intact.
    fn check_disk_entry(&self, id: u32, len: usize, off: u64) {
        let bk = self
            .backing
            .as_ref()
            .expect("disk entry without a backing file");
        let mut f = vec![0; crate::backing::record::FRAME_HEADER + len];
        bk.read_at(&mut f, off)
            .expect("reading a frame for the check");
        assert!(
            crate::backing::record::frame_ok(&f, id, len),
            "handle {id}: bad frame at {off}"
        );
    }
}
