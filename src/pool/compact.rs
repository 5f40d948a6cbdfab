//! Compaction (zsmalloc's): move objects from the emptiest Listed zspages
//! of a class into its fullest, and free the emptied zspages. Isolated
//! zspages are not seen. One class lock at a time, dropped after each
//! source zspage. Then a class whose slab of descriptors is mostly holes
//! has its zspages renumbered down and the slab shrunk.

use super::list::NIL;
use super::zspage::{GROUP_FULL, SLOT_FREE, SLOT_NIL};
use super::*;

impl Pool {
    /// Move objects out of sparse zspages into fuller ones and free the
    /// emptied zspages; returns the pages given back.
    pub fn compact(&self) -> u64 {
        let mut freed = 0;
        for ci in 0..self.classes.len() {
            freed += self.compact_class(ci);
        }
        self.arena.trim();
        self.pages_compacted.fetch_add(freed, Ordering::Relaxed);
        freed
    }

    /// Compact one class, dropping its lock after each source zspage so
    /// allocations and reads of the class are not held up for long.
    fn compact_class(&self, ci: usize) -> u64 {
        let mut freed = 0;
        let mut buf = Vec::new();
        loop {
            let mut c = self.classes[ci].lock();
            if !c.can_compact() {
                break;
            }
            // Emptiest source, fullest non-full destination, both Listed.
            let src = (1..GROUP_FULL)
                .map(|g| c.groups[g].tail)
                .find(|&z| z != NIL);
            let dst = (1..GROUP_FULL)
                .rev()
                .flat_map(|g| [c.groups[g].head, c.groups[g].tail])
                .find(|&z| z != NIL && Some(z) != src);
            let (Some(src), Some(dst)) = (src, dst) else {
                break;
            };
            if c.z(src).inuse > c.z(dst).inuse {
                break;
            }
            let size = c.info.size;
            while c.z(src).inuse > 0 && c.z(dst).free_head != SLOT_NIL {
                let sidx = c
                    .z(src)
                    .slots()
                    .iter()
                    .position(|&s| s & SLOT_FREE == 0)
                    .expect("inuse > 0");
                let hid = c.z(src).slots()[sidx];
                let entry = self.handles.entry(hid);
                let Loc::Mem { len, .. } = entry.load_locked() else {
                    unreachable!("slot of a zspage whose handle is not in memory")
                };
                buf.clear();
                c.z(src).copy_out(size, sidx, len, &mut buf);
                let didx = c.take_slot(dst, hid);
                c.z_mut(dst).copy_in(size, didx, &buf);
                entry.set_mem(len, dst, didx);
                c.release_slot(src, sidx);
            }
            let pages = if c.z(src).inuse == 0 {
                let p = self.drop_zspage(&mut c, src);
                freed += p.len() as u64;
                Some(p)
            } else {
                None
            };
            drop(c);
            if let Some(p) = pages {
                self.release_pages(p);
            }
        }
        self.shrink_slab(ci);
        #[cfg(debug_assertions)]
        self.debug_check_class(ci);
        freed
    }

    /// Renumber a class's zspages down and shrink its slab if it is mostly
    /// holes (`class::slab_worth_shrinking`): after a peak, 80 bytes a
    /// descriptor stay allocated per zspage the class once had.
    fn shrink_slab(&self, ci: usize) {
        let mut c = self.classes[ci].lock();
        c.trim_free_ids();
        let moved = c.shrink_slab();
        self.zspages_renumbered
            .fetch_add(moved.len() as u64, Ordering::Relaxed);
        for zid in moved {
            // In-memory entries of this class are guarded by its lock, which
            // every reader takes before using the zspage id.
            for (idx, hid) in c.z(zid).used() {
                let entry = self.handles.entry(hid);
                let Loc::Mem { len, .. } = entry.load_locked() else {
                    unreachable!("slot of a zspage whose handle is not in memory")
                };
                entry.set_mem(len, zid, idx);
            }
        }
    }
}
