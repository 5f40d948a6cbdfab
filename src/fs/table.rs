//! The inode table: inode number -> inode.
//!
//! A hash set of `Arc<Inode>` keyed by the number each inode carries, so an
//! entry costs one pointer (and hashbrown's control byte) rather than a
//! `HashMap`'s key and value. Inode numbers come from a counter, so a
//! multiplicative hash spreads them without collisions in the low bits and
//! mixes the high bits hashbrown uses for its tags. No locking here: `Fs`
//! keeps the table behind its leaf lock (see the locking notes in `mod.rs`).

use super::{Ino, Inode};
use hashbrown::HashTable;
use std::sync::Arc;

fn hash(ino: Ino) -> u64 {
    ino.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[derive(Default)]
pub(crate) struct InodeTable {
    map: HashTable<Arc<Inode>>,
}

impl InodeTable {
    pub(crate) fn get(&self, ino: Ino) -> Option<&Arc<Inode>> {
        self.map.find(hash(ino), |n| n.ino == ino)
    }

    /// Add `node`, replacing an inode with the same number if there is one.
    pub(crate) fn insert(&mut self, node: Arc<Inode>) {
        let ino = node.ino;
        match self.map.entry(hash(ino), |n| n.ino == ino, |n| hash(n.ino)) {
            hashbrown::hash_table::Entry::Occupied(mut o) => *o.get_mut() = node,
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(node);
            }
        }
    }

    /// Every inode, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<Inode>> {
        self.map.iter()
    }

    pub(crate) fn remove(&mut self, ino: Ino) -> Option<Arc<Inode>> {
        let e = self.map.find_entry(hash(ino), |n| n.ino == ino).ok()?;
        Some(e.remove().0)
    }
}
