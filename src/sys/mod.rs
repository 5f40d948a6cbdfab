//! What zsfs reads from the kernel about its own mounts, apart from FUSE.
//!
//! - [`mountinfo`]: the one parser of `/proc/self/mountinfo`, used by the
//!   daemon (mountpoint checks, the watcher), the adapter (the mount's bdi),
//!   `zsfs list` and the tests.
//! - [`bdi`]: a mount's backing-device tunables in sysfs (readahead, the
//!   dirty page-cache cap), set by the FUSE layer.
//! - [`groups`]: a caller's supplementary groups (setgid dropping).
//! - [`log`]: where a daemon's log goes (syslog, a file, or stderr with -f).

pub mod bdi;
pub mod groups;
pub mod log;
pub mod mountinfo;
