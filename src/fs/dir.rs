//! A directory's entries and the offsets readdir hands out.
//!
//! Every entry gets a cookie when it is inserted; cookies only grow, so an
//! offset stays meaningful across inserts and removals. A rename inserts
//! the entry again under a new, larger cookie, so a listing that followed
//! cookies alone would meet a renamed entry again, and a loop renaming
//! entries away and back would keep a `ls` going forever (xfstests
//! generic/471's shape, tmpfs's 2024 fix in libfs's simple_offset).
//!
//! So a listing ends where the directory ended when it started, as tmpfs's
//! does: the offset given to the kernel carries both the last cookie
//! returned and that end ([`ListPos`]). It needs no per-open state, which
//! matters because OPENDIR is refused (one round trip less per directory).
//! Hence: an entry present for the whole listing comes back exactly once;
//! one added or removed during it comes back at most once.

use super::FileKind;
use std::collections::{BTreeMap, HashMap};

/// Cookies of "." and ".."; entries start after them.
const DOT: u64 = 1;
const DOTDOT: u64 = 2;
const FIRST_COOKIE: u64 = 3;
/// Cookies stay below this, so `cookie << 32 | end` is a non-negative
/// loff_t. A directory that used them all (two billion inserts) is
/// renumbered, which only disturbs listings in progress at that moment.
const COOKIE_LIMIT: u64 = 1 << 31;

/// Where a listing is: the last cookie returned and where it stops.
/// Encoded into the 64-bit readdir offset as `last << 32 | end`. The end
/// goes in the low half so that small offsets, which this code never hands
/// out but seekdir(3) may be given (xfstests generic/676 seeks to random
/// positions below the largest it saw), mean "from the start" rather than
/// "past the last entry": a seek never lands in a hole of the offset space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ListPos {
    pub last: u64,
    pub end: u64,
}

impl ListPos {
    /// Decode a readdir offset; 0 starts a listing that ends at `dir_end`.
    pub fn decode(offset: u64, dir_end: u64) -> ListPos {
        let last = offset >> 32;
        match offset & 0xffff_ffff {
            0 => ListPos { last, end: dir_end },
            end => ListPos { last, end },
        }
    }
    pub fn encode(self) -> u64 {
        (self.last << 32) | self.end
    }
    /// The offset that continues after the entry with cookie `c`.
    pub fn after(self, c: u64) -> u64 {
        ListPos { last: c, ..self }.encode()
    }
}

/// One item of a listing.
#[derive(Clone, Copy)]
pub(crate) enum Listed<'a> {
    Dot,
    DotDot,
    Entry(&'a DEnt),
}

pub(crate) struct DEnt {
    pub name: Box<[u8]>,
    pub ino: super::Ino,
    pub kind: FileKind,
}

/// Entries of one directory, in insertion order.
pub(crate) struct Dir {
    /// ".." (the root's parent is itself).
    pub parent: super::Ino,
    /// Cookie -> entry.
    entries: BTreeMap<u64, DEnt>,
    /// Name -> cookie; same set of names as `entries`.
    names: HashMap<Box<[u8]>, u64>,
    /// Next cookie to hand out.
    next_cookie: u64,
}

impl Dir {
    pub fn new(parent: super::Ino) -> Dir {
        Dir {
            parent,
            entries: BTreeMap::new(),
            names: HashMap::new(),
            next_cookie: FIRST_COOKIE,
        }
    }
    pub fn contains(&self, name: &[u8]) -> bool {
        self.names.contains_key(name)
    }
    pub fn get(&self, name: &[u8]) -> Option<&DEnt> {
        self.names.get(name).map(|c| &self.entries[c])
    }
    pub fn insert(&mut self, name: &[u8], ino: super::Ino, kind: FileKind) {
        if self.next_cookie >= COOKIE_LIMIT {
            self.renumber();
        }
        let c = self.next_cookie;
        self.next_cookie += 1;
        self.names.insert(name.into(), c);
        let name = name.into();
        self.entries.insert(c, DEnt { name, ino, kind });
    }
    pub fn remove(&mut self, name: &[u8]) -> Option<DEnt> {
        let c = self.names.remove(name)?;
        self.entries.remove(&c)
    }
    /// Point an existing entry at another inode (rename exchange).
    pub fn repoint(&mut self, name: &[u8], ino: super::Ino, kind: FileKind) {
        let c = self.names[name];
        let e = self.entries.get_mut(&c).expect("names and entries agree");
        e.ino = ino;
        e.kind = kind;
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn values(&self) -> impl Iterator<Item = &DEnt> {
        self.entries.values()
    }

    /// The listing from readdir offset `offset`: "." and "..", then the
    /// entries, each with the offset that continues after it. Stops at the
    /// listing's end (see the module comment).
    pub fn list_from(&self, offset: u64) -> impl Iterator<Item = (u64, Listed<'_>)> {
        let pos = ListPos::decode(offset, self.next_cookie);
        let dots = [(DOT, Listed::Dot), (DOTDOT, Listed::DotDot)]
            .into_iter()
            .filter(move |&(c, _)| c > pos.last)
            .map(move |(c, l)| (pos.after(c), l));
        let start = (pos.last + 1).max(FIRST_COOKIE);
        let end = pos.end.max(start);
        let rest = self
            .entries
            .range(start..end)
            .map(move |(&c, e)| (pos.after(c), Listed::Entry(e)));
        dots.chain(rest)
    }

    /// Give the entries fresh cookies from the start, keeping their order.
    fn renumber(&mut self) {
        let old = std::mem::take(&mut self.entries);
        self.next_cookie = FIRST_COOKIE;
        for (_, e) in old {
            let c = self.next_cookie;
            self.next_cookie += 1;
            self.names.insert(e.name.clone(), c);
            self.entries.insert(c, e);
        }
    }

    #[cfg(test)]
    fn set_next_cookie(&mut self, c: u64) {
        self.next_cookie = c;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(d: &Dir, offset: u64) -> Vec<String> {
        d.list_from(offset)
            .map(|(_, l)| match l {
                Listed::Entry(e) => String::from_utf8_lossy(&e.name).into(),
                _ => "dot".into(),
            })
            .collect()
    }

    #[test]
    fn offsets_round_trip_and_stay_non_negative() {
        let p = ListPos {
            last: 7,
            end: COOKIE_LIMIT - 1,
        };
        assert_eq!(ListPos::decode(p.encode(), 99), p);
        assert!(p.encode() <= i64::MAX as u64);
        assert_eq!(ListPos::decode(0, 5), ListPos { last: 0, end: 5 });
        // A small offset we never gave out starts over, never past the end.
        assert_eq!(ListPos::decode(1234, 5), ListPos { last: 0, end: 1234 });
    }

    #[test]
    fn a_listing_ends_where_the_directory_ended_when_it_began() {
        let mut d = Dir::new(1);
        for n in ["a", "b", "c"] {
            d.insert(n.as_bytes(), 10, FileKind::File);
        }
        // Read ".", "..", "a"; then rename "a" and "b" away and back.
        let third = d.list_from(0).nth(2).unwrap().0;
        for n in ["a", "b"] {
            d.remove(n.as_bytes());
            d.insert(n.as_bytes(), 10, FileKind::File);
        }
        // "b" moved past the end: not returned again; "c" still is.
        assert_eq!(names(&d, third), ["c"]);
        // A new listing sees everything once.
        assert_eq!(names(&d, 0), ["dot", "dot", "c", "a", "b"]);
    }

    #[test]
    fn renumbering_keeps_order_and_names() {
        let mut d = Dir::new(1);
        d.set_next_cookie(COOKIE_LIMIT - 1);
        d.insert(b"x", 5, FileKind::File);
        d.insert(b"y", 6, FileKind::Dir);
        assert_eq!(names(&d, 0), ["dot", "dot", "x", "y"]);
        assert_eq!(d.get(b"y").unwrap().ino, 6);
        assert!(d.next_cookie < 10);
    }
}
