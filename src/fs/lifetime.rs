//! Inode lifetime: the kernel's references and when an inode goes.
//!
//! An inode lives while it has a link (`nlink > 0`) or the kernel holds a
//! reference to it (`lookups > 0`: every entry returned by lookup, create,
//! mkdir, mknod, symlink, link and readdirplus counts one; `forget` gives
//! them back). Open files hold a kernel reference, so an unlinked open file
//! keeps its data until the last close. When both reach zero the inode leaves
//! the table and its blocks go back to the store. Inode numbers are never
//! reused (a u64 counter), so generations are always 0.

use super::{err, Attr, Content, Errno, FileKind, Fs, FsResult, Inner, Ino, Inode, Xattrs};
use super::{CONTROL_INO, NAME_MAX, ROOT_INO};
use std::sync::atomic::{AtomicU64, Ordering};

/// An inode's kernel references and its kind, in one word:
///
/// ```text
///  63..61  kind     `FileKind`, set at creation, never changed
///  60..0   lookups  references the kernel holds
/// ```
///
/// The kind rides here rather than in a field of its own because the
/// inode's size decides its malloc chunk: a separate byte cost 8 with
/// padding, and 16 with the rounding. Changes to the count are atomic adds
/// and subtractions of the low bits, which never reach the kind: the count
/// is at most the kernel's own (a u64 the kernel keeps far below 2^61) and
/// a forget saturates at 0.
///
/// Orderings: `Relaxed`. The count is only compared with 0 under the
/// inode's write lock (`maybe_drop`), and every change that can make it 0
/// (`forget`) then takes that lock, which orders them.
pub(super) struct Lookups(AtomicU64);

const KIND_SHIFT: u32 = 61;
const COUNT: u64 = (1 << KIND_SHIFT) - 1;

impl Lookups {
    pub(super) fn new(kind: FileKind, count: u64) -> Lookups {
        // `FileKind::ALL[code]` is the kind again (a check in types.rs).
        let code = kind as u64;
        debug_assert!(count <= COUNT);
        Lookups(AtomicU64::new(code << KIND_SHIFT | count))
    }

    pub(super) fn kind(&self) -> FileKind {
        FileKind::ALL[(self.0.load(Ordering::Relaxed) >> KIND_SHIFT) as usize]
    }

    pub(super) fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed) & COUNT
    }

    /// One more kernel reference.
    pub(super) fn add(&self) {
        let old = self.0.fetch_add(1, Ordering::Relaxed);
        debug_assert!(old & COUNT < COUNT, "lookup count overflow");
    }

    /// Give back `n` references (no further than 0); the count before.
    pub(super) fn forget(&self, n: u64) -> u64 {
        let old = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v & !COUNT | (v & COUNT).saturating_sub(n))
            })
            .expect("closure never fails");
        old & COUNT
    }
}

impl Fs {
    /// Look `name` up in `parent`; the returned entry holds a kernel reference.
    pub fn lookup(&self, parent: Ino, name: &[u8]) -> FsResult<Attr> {
        if name.len() > NAME_MAX {
            return err(libc::ENAMETOOLONG);
        }
        let p = self.get(parent)?;
        let child = {
            let pi = p.inner.read();
            let ino = match (&pi.content, name) {
                // The kernel looks up "." of any inode to decode a file
                // handle (open_by_handle_at, NFS export) whose inode it no
                // longer caches: answer with the inode itself.
                (_, b".") => parent,
                (Content::Dir(d), b"..") => d.parent,
                (Content::Dir(d), _) => d.get(name).ok_or(Errno(libc::ENOENT))?.ino,
                _ => return err(libc::ENOTDIR),
            };
            let c = self.get(ino)?;
            // Under the parent's lock: the entry cannot be unlinked (and the
            // inode dropped) between finding it and counting the reference.
            c.lookups.add();
            c
        };
        let ci = child.inner.read();
        Ok(self.attr_of(child.ino, child.kind(), &ci))
    }

    /// Give back `n` kernel references to `ino`.
    pub fn forget(&self, ino: Ino, n: u64) {
        let Ok(node) = self.get(ino) else { return };
        let prev = node.lookups.forget(n);
        if prev <= n {
            let mut i = node.inner.write();
            let dead = self.maybe_drop(&node, &mut i);
            if let Content::Dir(d) = &mut i.content {
                // Still linked, and the kernel caches none of its entries:
                // most likely finished, so its spare room can go.
                d.shrink_to_fit();
            }
            drop(i);
            self.release_content(dead);
        }
    }

    /// If `node` has neither links nor references, take it out of the table
    /// and return its content for freeing (after the caller drops its locks).
    pub(super) fn maybe_drop(&self, node: &Inode, i: &mut Inner) -> Option<Content> {
        if i.gone
            || i.nlink > 0
            || node.lookups.count() > 0
            || node.ino == ROOT_INO
            || node.ino == CONTROL_INO
        {
            return None;
        }
        i.gone = true;
        self.table.write().remove(node.ino);
        self.inodes_used.fetch_sub(1, Ordering::Relaxed);
        match node.kind() {
            FileKind::File => self.files.fetch_sub(1, Ordering::Relaxed),
            FileKind::Dir => self.directories.fetch_sub(1, Ordering::Relaxed),
            _ => 0,
        };
        i.xattrs = Xattrs::new();
        Some(std::mem::replace(&mut i.content, Content::Control))
    }

    pub(super) fn release_content(&self, c: Option<Content>) {
        if let Some(Content::File(mut f)) = c {
            f.clear(&self.fcx());
        }
    }
}
