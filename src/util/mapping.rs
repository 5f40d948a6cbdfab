//! Private anonymous mappings: memory that costs nothing until touched.
//!
//! The pool's page arena maps its 2 MiB chunks this way, and the id tables
//! their directory: address space reserved up front (`MAP_NORESERVE`),
//! pages made resident only by the first write to them, zero until then.

use std::ptr::NonNull;

/// Map `len` bytes, readable and writable, zero-filled and not resident
/// until written. The caller unmaps it (`unmap`) with the same length.
pub(crate) fn map_anonymous(len: usize) -> std::io::Result<NonNull<u8>> {
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
    Ok(NonNull::new(p.cast()).expect("mmap returned null"))
}

/// Unmap a mapping `map_anonymous` made.
///
/// # Safety
/// `p` and `len` are a mapping from `map_anonymous`, and nothing refers to
/// its memory any more.
pub(crate) unsafe fn unmap(p: NonNull<u8>, len: usize) {
    // SAFETY: the caller's promise.
    unsafe { libc::munmap(p.as_ptr().cast(), len) };
}
