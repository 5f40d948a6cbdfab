//! Listing a directory: readdir and readdirplus over `dir::Dir`'s offsets.
//! The control file is never listed.

use super::dir::Listed;
use super::{err, Attr, Content, DirEntry, Fs, FsResult, Ino, Inode, CONTROL_INO};
use std::sync::Arc;

impl Fs {
    /// Entries of directory `ino` after `offset` (0 = from the start),
    /// "." and ".." included, until `f` returns true (buffer full; the entry
    /// it was given is not consumed).
    pub fn readdir(
        &self,
        ino: Ino,
        offset: u64,
        mut f: impl FnMut(DirEntry) -> bool,
    ) -> FsResult<()> {
        let n = self.get(ino)?;
        let i = n.inner.read();
        let Content::Dir(d) = &i.content else {
            return err(libc::ENOTDIR);
        };
        for (next, listed) in d.list_from(offset) {
            let entry = match listed {
                // The control file is reached by name only, as ZFS's .zfs:
                // emptiness checks, rsync, tar and find never see it.
                Listed::Entry(e) if e.ino == CONTROL_INO => continue,
                Listed::Entry(e) => DirEntry {
                    ino: e.ino,
                    kind: e.kind,
                    name: e.name.to_vec(),
                    next,
                },
                Listed::Dot => DirEntry::dir(ino, b".", next),
                Listed::DotDot => DirEntry::dir(d.parent, b"..", next),
            };
            if f(entry) {
                break;
            }
        }
        Ok(())
    }

    /// Up to `max` entries after `offset` with their attributes, for
    /// readdirplus. Every entry except "." and ".." holds a kernel reference;
    /// the caller `forget`s the ones it could not send.
    pub fn readdir_plus(
        &self,
        ino: Ino,
        offset: u64,
        max: usize,
    ) -> FsResult<Vec<(DirEntry, Attr)>> {
        let mut pinned: Vec<(DirEntry, Arc<Inode>)> = Vec::new();
        {
            let n = self.get(ino)?;
            let mut out = Vec::new();
            self.readdir(ino, offset, |e| {
                out.push(e);
                out.len() >= max
            })?;
            // Pin under the directory's lock so nothing is dropped between
            // listing and counting the reference.
            let i = n.inner.read();
            let Content::Dir(d) = &i.content else {
                return err(libc::ENOTDIR);
            };
            for e in out {
                let dot = e.name == b"." || e.name == b"..";
                if !dot && d.get(&e.name).is_none_or(|x| x.ino != e.ino) {
                    continue; // removed meanwhile
                }
                let Ok(node) = self.get(e.ino) else { continue };
                if !dot {
                    node.lookups.add();
                }
                pinned.push((e, node));
            }
        }
        Ok(pinned
            .into_iter()
            .map(|(e, node)| {
                let i = node.inner.read();
                let a = self.attr_of(node.ino, node.kind(), &i);
                (e, a)
            })
            .collect())
    }
}
