//! The page arena: 4 KiB pages carved from large anonymous mappings and
//! handed back to the kernel with `madvise(MADV_DONTNEED)` when free.
//!
//! Why an arena rather than one mmap per zspage: a pool of many GiB would
//! need millions of mappings, past `vm.max_map_count`. Chunks of 2 MiB are
//! mapped once, marked `MADV_NOHUGEPAGE` (a transparent huge page would keep
//! 2 MiB resident for one live 4 KiB page), and never unmapped until the pool
//! is dropped; a freed page costs no memory after `MADV_DONTNEED`.
//!
//! Touching a page for the first time costs a page fault and the kernel
//! zeroing it; in a profile of sequential writes that was a third of the
//! daemon's time, taken inside `alloc` under a class lock. So:
//! * Freed pages, up to `FREE_CACHE` (512 pages, 2 MiB: one chunk), stay
//!   resident on the `dirty` list and are handed out again first: a
//!   rewrite or a delete followed by new files pays no fault and no
//!   syscall. Past the bound they collect until `RELEASE_BATCH` more are
//!   there, and then go back to the kernel together: sorted, and one
//!   `MADV_DONTNEED` per run of adjacent pages. One call per page cost a
//!   TLB shootdown each, most of the 1.7 s an `rm` of a 1 GiB file took;
//!   the pages of a large file come from consecutive chunk space, so a
//!   batch is a few runs. So `rm` gives its memory back promptly, as on
//!   tmpfs, keeping at most 4 MiB.
//! * Fresh pages are populated `POPULATE_BATCH` at a time with one
//!   `MADV_POPULATE_WRITE` (Linux 5.14; without it pages fault on first
//!   touch as before), which saves the trap and per-fault walk on each page.
//!   At most one batch (256 KiB) is resident ahead of use.
//!
//! Both reserves are counted in `cached()` and so in the pool's
//! `pages_held`, so that count stays the real memory held.

use parking_lot::Mutex;
use std::ptr::NonNull;

/// Page size the pool is built on. zspages are chains of these.
pub(crate) const PAGE_SIZE: usize = 4096;
/// Pages per mapping.
const CHUNK_PAGES: usize = 512;
/// Freed pages kept resident for reuse (2 MiB).
const FREE_CACHE: usize = 512;
/// Freed pages past `FREE_CACHE` handed back in one sorted pass (2 MiB):
/// enough for a few madvise calls to cover a large file's pages.
const RELEASE_BATCH: usize = 512;
/// Fresh pages made resident per `MADV_POPULATE_WRITE` call (256 KiB).
const POPULATE_BATCH: usize = 64;

/// A 4 KiB page owned by exactly one zspage (or by the arena's free lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Page(NonNull<u8>);

// SAFETY: a Page is an address into a private mapping; who may touch the
// bytes is decided by the zspage that owns it, under its class lock.
unsafe impl Send for Page {}
unsafe impl Sync for Page {}

impl Page {
    pub fn ptr(self) -> *mut u8 {
        self.0.as_ptr()
    }

    /// The page at `p`, an address `ptr` returned (zspages keep them packed).
    pub fn from_ptr(p: *mut u8) -> Page {
        Page(NonNull::new(p).expect("a page address is not null"))
    }
}

struct Inner {
    /// Every mapping, for munmap on drop. Invariant: each is CHUNK_PAGES long.
    chunks: Vec<NonNull<u8>>,
    /// Free pages still resident (contents stale).
    /// Invariant: len < FREE_CACHE + RELEASE_BATCH.
    dirty: Vec<Page>,
    /// Free pages given back with MADV_DONTNEED (read as zero, not resident).
    clean: Vec<Page>,
    /// Never handed out pages at the end of the newest chunk: `fresh_left` of
    /// them starting at `fresh`.
    fresh: *mut u8,
    fresh_left: usize,
    /// The first `populated` fresh pages are resident (populated ahead).
    /// Invariant: populated <= fresh_left.
    populated: usize,
}

// SAFETY: raw pointers into mappings owned by the arena; accessed under the mutex.
unsafe impl Send for Inner {}

pub(crate) struct PageArena {
    inner: Mutex<Inner>,
}

impl PageArena {
    pub fn new() -> PageArena {
        PageArena {
            inner: Mutex::new(Inner {
                chunks: Vec::new(),
                dirty: Vec::new(),
                clean: Vec::new(),
                fresh: std::ptr::null_mut(),
                fresh_left: 0,
                populated: 0,
            }),
        }
    }

    /// Take `n` pages. Fails only if the kernel refuses a new mapping.
    /// Resident pages first (freed ones, then populated fresh ones), then
    /// pages given back earlier (they fault on first touch), then new ones.
    pub fn alloc(&self, n: usize) -> std::io::Result<Box<[Page]>> {
        let mut g = self.inner.lock();
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            if let Some(p) = g.dirty.pop() {
                out.push(p);
                continue;
            }
            if g.populated == 0 {
                if let Some(p) = g.clean.pop() {
                    out.push(p);
                    continue;
                }
                if g.fresh_left == 0 {
                    if let Err(e) = map_chunk(&mut g) {
                        // Nothing half-done: give back what we took.
                        drop(g);
                        self.free(&out);
                        return Err(e);
                    }
                }
                let batch = POPULATE_BATCH.max(n - out.len()).min(g.fresh_left);
                // SAFETY: [fresh, fresh + batch pages) lies in our newest
                // chunk and no one uses it yet. On failure (old kernel) the
                // pages just fault on first touch.
                unsafe {
                    libc::madvise(g.fresh.cast(), batch * PAGE_SIZE, libc::MADV_POPULATE_WRITE)
                };
                g.populated = batch;
            }
            // SAFETY: fresh points into the newest chunk with fresh_left
            // (>= populated > 0) pages left.
            let p = unsafe { NonNull::new_unchecked(g.fresh) };
            g.fresh = unsafe { g.fresh.add(PAGE_SIZE) };
            g.fresh_left -= 1;
            g.populated -= 1;
            out.push(Page(p));
        }
        Ok(out.into_boxed_slice())
    }

    /// Give pages back. The caller no longer touches them.
    pub fn free(&self, pages: &[Page]) {
        let mut g = self.inner.lock();
        g.dirty.extend_from_slice(pages);
        if g.dirty.len() < FREE_CACHE + RELEASE_BATCH {
            return;
        }
        let mut surplus = g.dirty.split_off(FREE_CACHE);
        drop(g);
        // The syscalls run without the arena lock so other classes can take
        // pages meanwhile.
        release(&mut surplus);
        self.inner.lock().clean.extend_from_slice(&surplus);
    }

    /// Free pages still resident (counted as held).
    pub fn cached(&self) -> usize {
        let g = self.inner.lock();
        g.dirty.len() + g.populated
    }

    /// Give the resident free pages back too (compaction, shrinking).
    pub fn trim(&self) {
        let mut g = self.inner.lock();
        let pages: Vec<Page> = std::mem::take(&mut g.dirty);
        let ahead = std::mem::take(&mut g.populated);
        if ahead > 0 {
            // SAFETY: the populated fresh pages are ours and unused; they
            // stay fresh (they read as zero and fault again on first touch).
            // Under the lock so no one takes them meanwhile; it is one call.
            unsafe { libc::madvise(g.fresh.cast(), ahead * PAGE_SIZE, libc::MADV_DONTNEED) };
        }
        drop(g);
        let mut pages = pages;
        release(&mut pages);
        let mut g = self.inner.lock();
        g.clean.extend_from_slice(&pages);
        // The list grew by doubling at the pool's peak; after a shrink
        // (compaction, writeback) its slack is dead weight. (`dirty` was
        // taken whole above, its capacity with it.)
        crate::util::trim_slack(&mut g.clean);
    }
}

/// Hand free pages back to the kernel: sorted, one `MADV_DONTNEED` per run
/// of adjacent pages (each call is a TLB flush on every CPU the process ran
/// on, so the number of calls is the cost).
fn release(pages: &mut [Page]) {
    pages.sort_unstable_by_key(|p| p.ptr() as usize);
    for run in pages.chunk_by(|a, b| a.ptr().wrapping_add(PAGE_SIZE) == b.ptr()) {
        // SAFETY: the pages are ours and unused, and a run is contiguous
        // inside one chunk (chunk_by only joins pages exactly adjacent, and
        // adjacent pages of two chunks are both ours); DONTNEED on a private
        // anonymous mapping just drops the contents.
        unsafe {
            libc::madvise(
                run[0].ptr().cast(),
                run.len() * PAGE_SIZE,
                libc::MADV_DONTNEED,
            )
        };
    }
}

fn map_chunk(g: &mut Inner) -> std::io::Result<()> {
    let len = CHUNK_PAGES * PAGE_SIZE;
    let p = crate::util::mapping::map_anonymous(len)?;
    // SAFETY: p is our mapping. Failure only means THP stays possible.
    unsafe { libc::madvise(p.as_ptr().cast(), len, libc::MADV_NOHUGEPAGE) };
    g.chunks.push(p);
    g.fresh = p.as_ptr();
    g.fresh_left = CHUNK_PAGES;
    Ok(())
}

impl Drop for PageArena {
    fn drop(&mut self) {
        for c in &self.inner.get_mut().chunks {
            // SAFETY: every chunk was mapped by map_chunk with this length and
            // no zspage outlives the pool.
            unsafe { crate::util::mapping::unmap(*c, CHUNK_PAGES * PAGE_SIZE) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_pages_are_reused_up_to_the_bound_and_counted() {
        let a = PageArena::new();
        let first = a.alloc(8).unwrap();
        // The rest of the populated batch is resident and counted.
        assert_eq!(a.cached(), POPULATE_BATCH - 8);
        for p in first.iter() {
            // SAFETY: the page is ours.
            unsafe { p.ptr().write(0xAB) };
        }
        a.free(&first);
        assert_eq!(a.cached(), POPULATE_BATCH);
        // Freed pages come back first, contents stale.
        let again = a.alloc(8).unwrap();
        let mut got: Vec<_> = again.to_vec();
        let mut want: Vec<_> = first.to_vec();
        got.sort_by_key(|p| p.ptr() as usize);
        want.sort_by_key(|p| p.ptr() as usize);
        assert_eq!(got, want);
        a.free(&again);
        // Beyond FREE_CACHE, freed pages go back to the kernel once a
        // batch has gathered.
        let many = a.alloc(FREE_CACHE + 100).unwrap();
        a.free(&many);
        assert_eq!(
            a.inner.lock().dirty.len(),
            FREE_CACHE + 100,
            "under a batch"
        );
        let more = a.alloc(FREE_CACHE + RELEASE_BATCH).unwrap();
        a.free(&more);
        let g = a.inner.lock();
        assert_eq!(g.dirty.len(), FREE_CACHE);
        assert!(g.clean.len() >= RELEASE_BATCH);
        drop(g);
        a.trim();
        assert_eq!(a.cached(), 0);
        // A trimmed fresh page reads as zero when taken later.
        let z = a.alloc(POPULATE_BATCH + 1).unwrap();
        for p in z.iter() {
            // SAFETY: the page is ours; clean and fresh pages read as zero
            // after MADV_DONTNEED, dirty ones were all trimmed.
            assert_eq!(unsafe { p.ptr().read() }, 0);
        }
    }
}
