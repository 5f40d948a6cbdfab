//! PLACEHOLDER pool: the public API the store is written against, backed by a
//! HashMap so the layers above can be built in parallel. The real
//! zsmalloc-style pool (size classes, zspages, fullness groups, compaction)
//! replaces the body of this module and keeps these signatures.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};

/// Opaque name of a stored object. The pool maps it to the object's current
/// place, so compaction and writeback move objects without telling the owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Handle(NonZeroU64);

impl Handle {
    /// The raw value, for tables that store handles compactly.
    pub fn to_raw(self) -> u64 {
        self.0.get()
    }
    /// Rebuild a handle from `to_raw`. Only values from `to_raw` are valid.
    pub fn from_raw(raw: u64) -> Option<Handle> {
        NonZeroU64::new(raw).map(Handle)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("pool memory limit reached: {used} of {limit} bytes in use, {needed} more needed; raise pool_limit= or free data")]
    LimitReached { limit: u64, used: u64, needed: u64 },
    #[error("object of {size} bytes is larger than the pool's largest class ({max} bytes)")]
    TooLarge { size: usize, max: usize },
    #[error("backing file I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("checksum mismatch in backing file record at offset {offset}")]
    Checksum { offset: u64 },
}

/// Pool settings. `Default` is what the filesystem uses for 4 KiB blocks.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Largest object the pool must hold (the filesystem's block size).
    pub max_object_size: usize,
    /// Longest zspage chain, in pages (zsmalloc's ZS_MAX_PAGES_PER_ZSPAGE).
    pub max_pages_per_zspage: usize,
    /// Memory limit in bytes of pages held; `None` for no limit.
    pub limit: Option<u64>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_object_size: 4096,
            max_pages_per_zspage: 8,
            limit: None,
        }
    }
}

/// Totals over the whole pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Live objects.
    pub objects: u64,
    /// Sum of live object sizes in bytes (zram's compr_data_size).
    pub bytes_stored: u64,
    /// Pages held from the OS right now (zram's mem_used_total / 4096).
    pub pages_held: u64,
    /// Most pages ever held since creation or the last reset.
    pub max_pages_held: u64,
    /// Objects that took a page of their own.
    pub huge_objects: u64,
    /// Pages freed by compaction, cumulative.
    pub pages_compacted: u64,
}

pub struct Pool {
    config: PoolConfig,
    objects: Mutex<HashMap<u64, Box<[u8]>>>,
    next: AtomicU64,
}

impl Pool {
    pub fn new(config: PoolConfig) -> Pool {
        Pool {
            config,
            objects: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
        }
    }

    /// Allocate an object of `data.len()` bytes and fill it with `data`.
    pub fn alloc(&self, data: &[u8]) -> Result<Handle, PoolError> {
        if data.len() > self.config.max_object_size {
            return Err(PoolError::TooLarge {
                size: data.len(),
                max: self.config.max_object_size,
            });
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.objects.lock().insert(id, data.into());
        Ok(Handle(NonZeroU64::new(id).unwrap()))
    }

    /// Lend the object's bytes to `f`. Marks its zspage referenced; never
    /// touches the LRU.
    pub fn read_with<R>(&self, h: Handle, f: impl FnOnce(&[u8]) -> R) -> Result<R, PoolError> {
        let map = self.objects.lock();
        Ok(f(map.get(&h.0.get()).expect("read of a freed handle")))
    }

    /// Size of the object in bytes.
    pub fn object_len(&self, h: Handle) -> usize {
        self.objects.lock()[&h.0.get()].len()
    }

    /// Free the object. The handle must not be used again.
    pub fn free(&self, h: Handle) {
        self.objects.lock().remove(&h.0.get());
    }

    /// Move objects out of sparse zspages; returns the pages given back.
    pub fn compact(&self) -> u64 {
        0
    }

    pub fn stats(&self) -> PoolStats {
        let map = self.objects.lock();
        let bytes: u64 = map.values().map(|b| b.len() as u64).sum();
        PoolStats {
            objects: map.len() as u64,
            bytes_stored: bytes,
            pages_held: bytes.div_ceil(4096),
            ..Default::default()
        }
    }

    /// Change the memory limit; `None` removes it.
    pub fn set_limit(&self, _limit: Option<u64>) {}

    /// Assert every invariant of the pool (debug builds and tests).
    pub fn debug_check_consistency(&self) {}
}
