//! zsfs: a compressed in-memory filesystem served through FUSE.
//!
//! Layers, each knowing only the ones below it (see ARCHITECTURE.md):
//!
//! ```text
//! fuse_adapter  ->  fs (inodes, dirs, block maps)  ->  store (codec)  ->  pool (zspages)  ->  backing (file)
//!                                                                           ^
//!                                          reclaim (thread, policy)  ------'
//! mount: Config -> backing, pool, reclaim, store
//! ```

pub mod backing;
pub mod config;
pub mod control;
pub mod fs;
pub mod fuse;
pub mod mount;
pub mod pool;
pub mod reclaim;
pub mod store;
pub mod sys;
#[cfg(test)]
mod test_data;
mod util;
