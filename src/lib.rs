//! zsfs: a compressed in-memory filesystem served through FUSE.
//!
//! Layers, each knowing only the one below it (see ARCHITECTURE.md):
//!
//! ```text
//! fuse_adapter  ->  fs (inodes, dirs, block maps)  ->  store (codec)  ->  pool (zspages)
//! ```

pub mod config;
pub mod control;
pub mod fs;
pub mod fuse;
pub mod pool;
pub mod shrinker;
pub mod store;
pub mod sys;
#[cfg(test)]
mod test_data;
