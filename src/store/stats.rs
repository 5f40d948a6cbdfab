//! The store's counters, in zram's and zswap's names where they have one.

use super::{Dedup, Store};
use std::sync::atomic::Ordering;

/// Counters kept by the store, zram names where zram has one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Logical bytes of all stored blocks (zram `orig_data_size`).
    pub orig_data_size: u64,
    /// Blocks stored as one byte, no pool object (zram `same_pages`).
    pub same_pages: u64,
    /// Blocks stored raw because they did not compress (zram `huge_pages`).
    pub huge_pages: u64,
    /// Blocks stored LZ4-compressed.
    pub compressed_pages: u64,
    /// Bytes given to the pool for live objects (zram `compr_data_size`).
    pub compr_data_size: u64,
    /// Blocks whose compression ran but did not pay (zswap `reject_compress_poor`).
    pub reject_compress_poor: u64,
    /// Blocks served by a pool object another block already holds: the sum
    /// over shared objects of (references - 1).
    pub dedup_pages: u64,
    /// Object bytes those blocks would have cost without dedup.
    pub dedup_data_size: u64,
    /// Memory of the dedup index (tables and reference counts), outside the pool.
    pub dedup_index_bytes: u64,
    /// Hash matches whose content differed (not shared), cumulative.
    pub dedup_collisions: u64,
    /// Blocks held in zstd units (zram `recomp` pages).
    pub recomp_pages: u64,
    /// Unit objects in the pool.
    pub recomp_units: u64,
    /// Bytes those units take in the pool (part of `compr_data_size`).
    pub recomp_data_size: u64,
    /// Units zstd did not make enough smaller, cumulative; their blocks are
    /// not tried again (zram's `ZRAM_INCOMPRESSIBLE`).
    pub recomp_skipped: u64,
    /// Runs left as they were because the pool refused the unit (limit,
    /// handles) or a block could not be read, cumulative.
    pub recomp_failed: u64,
    /// Block reads served from units, cumulative.
    pub recomp_reads: u64,
    /// Memory of the per-object words (`meta.rs`), outside the pool.
    pub recomp_meta_bytes: u64,
}

impl Store {
    pub fn stats(&self) -> StoreStats {
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        StoreStats {
            orig_data_size: load(&self.orig_data_size),
            same_pages: load(&self.same_pages),
            huge_pages: load(&self.huge_pages),
            compressed_pages: load(&self.compressed_pages),
            compr_data_size: load(&self.compr_data_size),
            reject_compress_poor: load(&self.reject_compress_poor),
            dedup_pages: load(&self.dedup_pages),
            dedup_data_size: load(&self.dedup_data_size),
            dedup_index_bytes: self.dedup.as_ref().map_or(0, Dedup::index_bytes),
            dedup_collisions: load(&self.dedup_collisions),
            recomp_pages: load(&self.recomp_pages),
            recomp_units: load(&self.recomp_units),
            recomp_data_size: load(&self.recomp_data_size),
            recomp_skipped: load(&self.recomp_skipped),
            recomp_failed: load(&self.recomp_failed),
            recomp_reads: load(&self.recomp_reads),
            recomp_meta_bytes: self.meta.bytes(),
        }
    }
}
