//! zsfs: a compressed in-memory filesystem served through FUSE.
//!
//! The layers, each using only the ones below it (see ARCHITECTURE.md):
//!
//! ```text
//!  fuse     kernel requests -> fs calls (translation, page-cache coherence)
//!   |
//!  fs       inodes, directories, block maps, limits,   recompress  when idle data
//!   |       the control file, the recompression walk <-----------  is packed
//!   |                                                              (thread, pace)
//!  store    the block codec: same-filled, raw, LZ4, zstd units; dedup
//!   |
//!  pool     zspages, size classes, handles, LRU, compaction, writeback
//!   |       mechanism            ^
//!  backing  the file cold        |  reclaim   when to write back (thread,
//!           zspages go to        +----------  hysteresis, memory pressure)
//!
//!  mount    Config -> each layer's own config; builds them bottom up
//!  config   the mount options: parsing, defaults, validation
//!  control  the control file's report format and commands, zsfs stats/ctl/list
//!  sys      what zsfs reads from the system (mountinfo, sysfs, users, log)
//!  util     the lock-free two-level table under handles and dedup
//! ```

pub mod backing;
pub mod config;
pub mod control;
pub mod fs;
pub mod fuse;
pub mod mount;
pub mod pool;
pub mod reclaim;
pub mod recompress;
pub mod store;
pub mod sys;
#[cfg(test)]
mod test_data;
mod util;
