//! What zsfs reads from the system apart from FUSE: the kernel about its
//! own mounts, and the user and group databases.
//!
//! - [`mountinfo`]: the one parser of `/proc/self/mountinfo`, used by the
//!   daemon (mountpoint checks, the watcher), the adapter (the mount's bdi),
//!   `zsfs list` and the tests.
//! - [`bdi`]: a mount's backing-device tunables in sysfs (readahead, the
//!   dirty page-cache cap), set by the FUSE layer.
//! - [`groups`]: a caller's supplementary groups (setgid dropping).
//! - [`heap`]: giving the allocator's free pages back after compaction.
//! - [`log`]: where a daemon's log goes (syslog, a file, or stderr with -f).
//! - [`xattr`]: reading an xattr of a path (zsfs's virtual `zsfs.*` ones).
//! - [`users`]: user and group names to ids (`uid=`, `gid=`) and back (`zsfs list`).

pub mod bdi;
pub mod groups;
pub(crate) mod heap;
pub mod log;
pub mod mountinfo;
pub(crate) mod users;
pub(crate) mod xattr;
