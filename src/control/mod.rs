//! The control file (`.zsfs` at the mount's root): stats out, commands in.
//!
//! - [`report`]: the text a read returns (zram/zswap counter names, then the
//!   zsmalloc `classes` table) and its parser.
//! - [`command`]: what a write may say; parsed whole before anything acts.
//! - [`cli`]: `zsfs stats` and `zsfs ctl`, which only read and write that
//!   file, so they work for any user the mount lets in.
//! - [`list`]: `zsfs list`, every zsfs mount on the machine in one table.
//! - [`prometheus`]: `zsfs stats --prometheus`, the fields for monitoring.
//! - [`remount`]: `mount -o remount,...` through the control file and mount(2).
//!
//! The filesystem core serves the file (src/fs/control.rs); this module has
//! no knowledge of inodes or of the pool's internals.

pub mod cli;
pub mod command;
pub mod list;
mod probe;
pub mod prometheus;
pub mod remount;
pub mod report;

pub use command::{Command, WritebackAmount};
pub use report::{ClassRow, Kind, Report};
