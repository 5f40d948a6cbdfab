//! Giving the allocator's free memory back to the kernel.
//!
//! glibc keeps freed chunks that sit between live ones resident: a freed
//! allocation costs RSS until something reuses it. After compaction the
//! daemon has just freed metadata in bulk (the zspage descriptors of a
//! class that shrank, the per-block records of a recompressed tree), and
//! the pages under those free chunks would stay resident for nothing.
//! `malloc_trim(0)` gives back every whole free page in every arena
//! (`MADV_DONTNEED`). It walks the free chunks, a few milliseconds for tens
//! of MiB, so it runs after compaction, never on a request's path.

/// Give the heap's whole free pages back to the kernel (glibc only; other
/// C libraries return memory on their own terms, and this does nothing).
pub(crate) fn give_back_free() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and madvises the allocator's own free
    // chunks, under its arena locks; it is safe to call from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}
