//! A mount's backing device (bdi) tunables in sysfs,
//! `/sys/class/bdi/<major:minor>/`: the readahead window (`read_ahead_kb`)
//! and the dirty page-cache cap (`max_bytes`). Only the I/O lives here; when
//! and to what the FUSE layer sets them is its own policy (`fuse::session`,
//! `fuse::dirty`). Best effort throughout: a mount by a user who cannot
//! write sysfs keeps the kernel's defaults.

use std::io;

/// The sysfs file `name` of bdi `bdi` ("major:minor", from mountinfo).
fn path(bdi: &str, name: &str) -> String {
    format!("/sys/class/bdi/{bdi}/{name}")
}

/// Raise bdi `bdi`'s readahead window to `kb` KiB, never lowering a larger
/// value someone chose. Failures are logged at debug level only.
pub(crate) fn raise_read_ahead(bdi: &str, kb: u64) {
    let path = path(bdi, "read_ahead_kb");
    match std::fs::read_to_string(&path) {
        Ok(cur) if cur.trim().parse::<u64>().is_ok_and(|c| c >= kb) => {}
        Ok(_) => {
            if let Err(e) = std::fs::write(&path, kb.to_string()) {
                log::debug!("cannot raise readahead ({path}): {e}");
            }
        }
        Err(e) => log::debug!("cannot read {path}: {e}"),
    }
}

/// Set bdi `bdi`'s dirty page-cache cap (`max_bytes`) to `bytes`. The
/// error names the sysfs file.
pub(crate) fn set_max_bytes(bdi: &str, bytes: u64) -> io::Result<()> {
    let path = path(bdi, "max_bytes");
    std::fs::write(&path, bytes.to_string())
        .map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))
}

/// The kernel's global dirty threshold now, in bytes (`nr_dirty_threshold`
/// in /proc/vmstat: `vm.dirty_ratio` of the memory it could dirty, or
/// `vm.dirty_bytes`). A bdi's `max_bytes` is stored as a share of it, and
/// the kernel refuses a value above it (EINVAL). None if unreadable.
/// Public for the mount tests, which check the window against it.
pub fn global_dirty_threshold() -> Option<u64> {
    let vmstat = std::fs::read_to_string("/proc/vmstat").ok()?;
    let pages: u64 = vmstat
        .lines()
        .find_map(|l| l.strip_prefix("nr_dirty_threshold "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64;
    Some(pages * page)
}
