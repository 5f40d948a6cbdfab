//! The page arena: 4 KiB pages carved from large anonymous mappings and
//! handed back to the kernel with `madvise(MADV_DONTNEED)` when free.
//!
//! Why an arena rather than one mmap per zspage: a pool of many GiB would
//! need millions of mappings, past `vm.max_map_count`. Chunks of 2 MiB are
//! mapped once, marked `MADV_NOHUGEPAGE` (a transparent huge page would keep
//! 2 MiB resident for one live 4 KiB page), and never unmapped until the pool
//! is dropped; a freed page costs no memory after `MADV_DONTNEED`.
//!
//! A few freed pages (at most `DIRTY_CACHE`) are kept resident for reuse so a
//! class whose only zspage empties and refills does not pay a syscall and a
//! page fault each time. They are counted in `cached()` and in the pool's
//! `pages_held`, so the count stays the real memory held.

use parking_lot::Mutex;
use std::ptr::NonNull;

/// Page size the pool is built on. zspages are chains of these.
pub(crate) const PAGE_SIZE: usize = 4096;
/// Pages per mapping.
const CHUNK_PAGES: usize = 512;
/// Freed pages kept resident for reuse.
const DIRTY_CACHE: usize = 64;

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
}

struct Inner {
    /// Every mapping, for munmap on drop. Invariant: each is CHUNK_PAGES long.
    chunks: Vec<NonNull<u8>>,
    /// Free pages still resident (contents stale). Invariant: len <= DIRTY_CACHE.
    dirty: Vec<Page>,
    /// Free pages given back with MADV_DONTNEED (read as zero, not resident).
    clean: Vec<Page>,
    /// Untouched pages at the end of the newest chunk: `fresh_left` of them
    /// starting at `fresh`.
    fresh: *mut u8,
    fresh_left: usize,
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
            }),
        }
    }

    /// Take `n` pages. Fails only if the kernel refuses a new mapping.
    pub fn alloc(&self, n: usize) -> std::io::Result<Box<[Page]>> {
        let mut g = self.inner.lock();
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            if let Some(p) = g.dirty.pop().or_else(|| g.clean.pop()) {
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
            // SAFETY: fresh points into the newest chunk with fresh_left pages left.
            let p = unsafe { NonNull::new_unchecked(g.fresh) };
            g.fresh = unsafe { g.fresh.add(PAGE_SIZE) };
            g.fresh_left -= 1;
            out.push(Page(p));
        }
        Ok(out.into_boxed_slice())
    }

    /// Give pages back. The caller no longer touches them.
    pub fn free(&self, pages: &[Page]) {
        let mut g = self.inner.lock();
        let keep = (DIRTY_CACHE - g.dirty.len()).min(pages.len());
        g.dirty.extend_from_slice(&pages[..keep]);
        drop(g);
        let rest = &pages[keep..];
        if rest.is_empty() {
            return;
        }
        // The syscalls run without the arena lock so other classes can take
        // pages meanwhile.
        for p in rest {
            // SAFETY: the page is ours and unused; DONTNEED on a private
            // anonymous mapping just drops its contents.
            unsafe { libc::madvise(p.ptr().cast(), PAGE_SIZE, libc::MADV_DONTNEED) };
        }
        self.inner.lock().clean.extend_from_slice(rest);
    }

    /// Free pages still resident (counted as held).
    pub fn cached(&self) -> usize {
        self.inner.lock().dirty.len()
    }

    /// Give the resident free pages back too (compaction, shrinking).
    pub fn trim(&self) {
        let pages: Vec<Page> = std::mem::take(&mut self.inner.lock().dirty);
        for p in &pages {
            // SAFETY: as in `free`.
            unsafe { libc::madvise(p.ptr().cast(), PAGE_SIZE, libc::MADV_DONTNEED) };
        }
        self.inner.lock().clean.extend_from_slice(&pages);
    }
}

fn map_chunk(g: &mut Inner) -> std::io::Result<()> {
    let len = CHUNK_PAGES * PAGE_SIZE;
    // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: p is our mapping. Failure only means THP stays possible.
    unsafe { libc::madvise(p, len, libc::MADV_NOHUGEPAGE) };
    let p = p.cast::<u8>();
    g.chunks.push(NonNull::new(p).expect("mmap returned null"));
    g.fresh = p;
    g.fresh_left = CHUNK_PAGES;
    Ok(())
}

impl Drop for PageArena {
    fn drop(&mut self) {
        for c in &self.inner.get_mut().chunks {
            // SAFETY: every chunk was mapped by map_chunk with this length and
            // no zspage outlives the pool.
            unsafe { libc::munmap(c.as_ptr().cast(), CHUNK_PAGES * PAGE_SIZE) };
        }
    }
}
