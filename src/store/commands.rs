//! The pool commands the filesystem's control file and remount run
//! through the store: `fs` reaches the pool only through these.

use super::{ClassStats, Store, StoreError, WritebackReport, WritebackRequest};

impl Store {
    /// The pool's per-class table, one row per merged class.
    pub fn class_stats(&self) -> Vec<ClassStats> {
        self.pool.class_stats()
    }

    /// Move objects out of sparse zspages; returns the pages given back.
    pub fn compact(&self) -> u64 {
        self.pool.compact()
    }

    /// Write back now, in this thread (`writeback all|idle|N`).
    pub fn writeback(&self, req: WritebackRequest) -> Result<WritebackReport, StoreError> {
        self.pool.writeback(req).map_err(StoreError::command)
    }

    /// Ask the reclaim thread to write back; returns at once.
    pub fn request_writeback(&self, req: WritebackRequest) -> Result<(), StoreError> {
        self.pool
            .request_writeback(req)
            .map_err(StoreError::command)
    }

    /// Rewrite mostly-dead backing-file records; returns the bytes given back.
    pub fn compact_backing(&self) -> Result<u64, StoreError> {
        self.pool.compact_backing().map_err(StoreError::command)
    }

    /// Change the pool's memory limit (`None`: no limit).
    pub fn set_limit(&self, limit: Option<u64>) {
        self.pool.set_limit(limit)
    }

    /// Change `accept_threshold=` (1..=100) for the reclaim thread.
    pub fn set_accept_threshold(&self, pct: u8) {
        self.pool.set_accept_threshold(pct)
    }

    /// Reset the pool's `mem_used_max` to what it holds now.
    pub fn reset_max_pages(&self) {
        self.pool.reset_max_pages()
    }
}
