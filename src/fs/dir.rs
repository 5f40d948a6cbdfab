//! A directory's entries and the offsets readdir hands out.
//!
//! Every entry gets a cookie when it is inserted; cookies only grow, so an
//! offset stays meaningful across inserts and removals. A rename (other
//! than an exchange, which repoints both names in place) inserts the entry
//! again under a new, larger cookie, so a listing that followed
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
use hashbrown::HashTable;
use std::hash::BuildHasher;

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

/// Names this long or shorter live inside the entry (no allocation of
/// their own); most names are (`f000123`, `libc.so.6`, `index.html`).
const INLINE: usize = 21;

/// A name and the kind of inode it names, in 24 bytes.
enum Name {
    Inline {
        kind: FileKind,
        len: u8,
        bytes: [u8; INLINE],
    },
    Heap {
        kind: FileKind,
        bytes: Box<[u8]>,
    },
}

const _: () = assert!(std::mem::size_of::<Name>() == 24);

pub(crate) struct DEnt {
    pub ino: super::Ino,
    name: Name,
}

impl DEnt {
    fn new(name: &[u8], ino: super::Ino, kind: FileKind) -> DEnt {
        let name = if name.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..name.len()].copy_from_slice(name);
            let len = name.len() as u8;
            Name::Inline { kind, len, bytes }
        } else {
            let bytes = name.into();
            Name::Heap { kind, bytes }
        };
        DEnt { ino, name }
    }
    pub fn name(&self) -> &[u8] {
        match &self.name {
            Name::Inline { len, bytes, .. } => &bytes[..usize::from(*len)],
            Name::Heap { bytes, .. } => bytes,
        }
    }
    pub fn kind(&self) -> FileKind {
        match self.name {
            Name::Inline { kind, .. } | Name::Heap { kind, .. } => kind,
        }
    }
    fn set_kind(&mut self, k: FileKind) {
        match &mut self.name {
            Name::Inline { kind, .. } | Name::Heap { kind, .. } => *kind = k,
        }
    }
}

/// One insert: its cookie, and the entry until it is removed.
struct Slot {
    cookie: u64,
    ent: Option<DEnt>,
}

/// The hash the name index files a name under (SipHash with this
/// process's random keys, as std's `HashMap`, so names cannot be chosen
/// to collide).
fn name_hash(name: &[u8]) -> u64 {
    static KEYS: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
    KEYS.get_or_init(std::hash::RandomState::new).hash_one(name)
}

/// Entries of one directory, in insertion order.
///
/// Each name is stored once. `slots` holds every insert in cookie order
/// (cookies only grow, so an insert is a push); a removal leaves an empty
/// slot behind, and once empty slots outnumber entries they are dropped
/// (cookies are kept, so listings in progress do not notice). `index`
/// finds a name: it holds the position in `slots` of every entry, filed
/// under the name's hash, and is rebuilt when slots move. Positions fit a
/// u32: slots have distinct cookies, all below `COOKIE_LIMIT`.
pub(crate) struct Dir {
    /// ".." (the root's parent is itself).
    pub parent: super::Ino,
    /// Ascending cookies; `ent` is `None` for a removed entry.
    slots: Vec<Slot>,
    /// Positions in `slots` of the entries (never of an empty slot).
    index: HashTable<u32>,
    /// Next cookie to hand out.
    next_cookie: u64,
}

impl Dir {
    pub fn new(parent: super::Ino) -> Dir {
        Dir {
            parent,
            slots: Vec::new(),
            index: HashTable::new(),
            next_cookie: FIRST_COOKIE,
        }
    }
    fn ent(slots: &[Slot], pos: u32) -> &DEnt {
        slots[pos as usize]
            .ent
            .as_ref()
            .expect("the index names live slots")
    }
    fn find(&self, name: &[u8]) -> Option<u32> {
        let slots = &self.slots;
        let eq = |&p: &u32| Dir::ent(slots, p).name() == name;
        self.index.find(name_hash(name), eq).copied()
    }
    pub fn contains(&self, name: &[u8]) -> bool {
        self.find(name).is_some()
    }
    pub fn get(&self, name: &[u8]) -> Option<&DEnt> {
        self.find(name).map(|p| Dir::ent(&self.slots, p))
    }
    /// Add an entry; `name` must not be present.
    pub fn insert(&mut self, name: &[u8], ino: super::Ino, kind: FileKind) {
        debug_assert!(!self.contains(name));
        if self.next_cookie >= COOKIE_LIMIT {
            self.renumber();
        }
        let c = self.next_cookie;
        self.next_cookie += 1;
        let pos = self.slots.len() as u32;
        let ent = Some(DEnt::new(name, ino, kind));
        self.slots.push(Slot { cookie: c, ent });
        let slots = &self.slots;
        let rehash = |&p: &u32| name_hash(Dir::ent(slots, p).name());
        self.index.insert_unique(name_hash(name), pos, rehash);
    }
    pub fn remove(&mut self, name: &[u8]) -> Option<DEnt> {
        let slots = &self.slots;
        let eq = |&p: &u32| Dir::ent(slots, p).name() == name;
        let (pos, _) = self.index.find_entry(name_hash(name), eq).ok()?.remove();
        let e = self.slots[pos as usize].ent.take();
        if self.slots.len() - self.index.len() > self.index.len().max(16) {
            self.compact();
        }
        e
    }
    /// Point an existing entry at another inode (rename exchange).
    pub fn repoint(&mut self, name: &[u8], ino: super::Ino, kind: FileKind) {
        let p = self.find(name).expect("repoint names an entry");
        let e = self.slots[p as usize].ent.as_mut().expect("live slot");
        e.ino = ino;
        e.set_kind(kind);
    }
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
    pub fn len(&self) -> usize {
        self.index.len()
    }
    pub fn values(&self) -> impl Iterator<Item = &DEnt> {
        self.slots.iter().filter_map(|s| s.ent.as_ref())
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
        let first = self.slots.partition_point(|s| s.cookie < start);
        let rest = self.slots[first..]
            .iter()
            .take_while(move |s| s.cookie < end)
            .filter_map(move |s| Some((pos.after(s.cookie), Listed::Entry(s.ent.as_ref()?))));
        dots.chain(rest)
    }

    /// Drop the empty slots (cookies unchanged), give back memory a
    /// shrunken directory no longer needs, and rebuild the index.
    fn compact(&mut self) {
        self.slots.retain(|s| s.ent.is_some());
        if self.slots.capacity() > 2 * self.slots.len() {
            self.slots
                .shrink_to(self.slots.len() + self.slots.len() / 2);
        }
        self.reindex();
    }

    fn reindex(&mut self) {
        self.index.clear();
        let slots = &self.slots;
        let rehash = |&p: &u32| name_hash(Dir::ent(slots, p).name());
        self.index.shrink_to(slots.len(), rehash);
        for (p, s) in slots.iter().enumerate() {
            let name = s.ent.as_ref().expect("compacted").name();
            self.index.insert_unique(name_hash(name), p as u32, rehash);
        }
    }

    /// Give the entries fresh cookies from the start, keeping their order.
    fn renumber(&mut self) {
        self.compact();
        self.next_cookie = FIRST_COOKIE;
        for s in &mut self.slots {
            s.cookie = self.next_cookie;
            self.next_cookie += 1;
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
                Listed::Entry(e) => String::from_utf8_lossy(e.name()).into(),
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

    #[test]
    fn removals_compact_without_moving_cookies() {
        let mut d = Dir::new(1);
        let long = "n".repeat(200);
        let name = |i: usize| format!("{i}{}", if i % 3 == 0 { &long[..] } else { "" });
        for i in 0..1000 {
            d.insert(name(i).as_bytes(), i as u64 + 10, FileKind::File);
        }
        // A listing that has read "." , ".." and the first 10 entries.
        let after10 = d.list_from(0).nth(11).unwrap().0;
        for i in (0..1000).filter(|i| i % 10 != 9) {
            let e = d.remove(name(i).as_bytes()).unwrap();
            assert_eq!((e.ino, e.name()), (i as u64 + 10, name(i).as_bytes()));
        }
        assert!(d.slots.len() < 1000, "empty slots were dropped");
        assert_eq!(d.len(), 100);
        // The listing goes on where it was: the survivors past the 10th.
        let rest = names(&d, after10);
        let want: Vec<String> = (10..1000).filter(|i| i % 10 == 9).map(name).collect();
        assert_eq!(rest, want);
        for i in 0..1000 {
            let e = d.get(name(i).as_bytes());
            assert_eq!(e.map(|e| e.ino), (i % 10 == 9).then_some(i as u64 + 10));
        }
        d.repoint(name(9).as_bytes(), 7, FileKind::Dir);
        let e = d.get(name(9).as_bytes()).unwrap();
        assert_eq!((e.ino, e.kind()), (7, FileKind::Dir));
    }
}
