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
//!
//! Memory (README, "Where the memory goes"): a name costs a 16-byte
//! [`Slot`], its bytes plus two in the directory's one name arena, and, in
//! a directory of more than `SCAN_MAX` entries, a 4-byte position in the
//! name index (5 bytes a bucket, 44-87 % full); no name has an allocation
//! of its own. On top: garbage left by removals, at most what is live, and
//! spare room, at most a quarter while the directory grows and none once
//! the kernel has forgotten it.

use super::{FileKind, Ino};
use hashbrown::HashTable;
use std::hash::BuildHasher;

/// Cookies of "." and ".."; entries start after them.
const DOT: u64 = 1;
const DOTDOT: u64 = 2;
const FIRST_COOKIE: u32 = 3;
/// Cookies stay below this, so `cookie << 32 | end` is a non-negative
/// loff_t and a cookie fits a slot's u32. A directory that used them all
/// (two billion inserts) is renumbered, which only disturbs listings in
/// progress at that moment.
const COOKIE_LIMIT: u32 = 1 << 31;

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
    Entry(DEnt<'a>),
}

/// An entry as the rest of the core sees it: a view into its directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DEnt<'a> {
    pub ino: Ino,
    pub kind: FileKind,
    pub name: &'a [u8],
}

/// One insert, in cookie order. Its name and kind are a record in the
/// directory's arena, so a slot is 16 bytes and never owns an allocation.
pub(super) struct Slot {
    ino: Ino,
    /// Below `COOKIE_LIMIT`.
    cookie: u32,
    /// Where the entry's record starts in the arena; `REMOVED` once the
    /// entry is gone (the slot stays until a compaction, keeping cookies).
    at: u32,
}

/// `Slot::at` of a removed entry: never a record's start, as records are
/// at least 3 bytes and the arena at most `ARENA_MAX`.
const REMOVED: u32 = u32::MAX;

/// A record is the kind's byte, the name's length in one byte (NAME_MAX
/// is 255), then the name.
const HEADER: usize = 2;

/// Records are found by u32 offsets: a directory whose live names would
/// outgrow them (some 16 million of 255 bytes) refuses more with ENOSPC.
const ARENA_MAX: usize = u32::MAX as usize;

/// File kinds by their byte in a record (`FileKind as u8`).
const KINDS: [FileKind; 7] = FileKind::ALL;

/// Garbage (removed slots among the slots, removed names' bytes among the
/// arena's) may grow to this share of the whole before a compaction drops
/// it: at half, a directory holds at most about twice what its entries
/// need, and each compaction, linear in the directory, follows as many
/// removals (or removed bytes) as the directory has live: amortised O(1).
const GARBAGE_PERCENT: usize = 50;
/// Below these, garbage stays: a small directory need not compact on every
/// removal.
const GARBAGE_FLOOR_SLOTS: usize = 16;
const GARBAGE_FLOOR_BYTES: usize = 512;

/// Directories of at most this many slots have no index: scanning so few
/// names costs about what hashing one does, and most directories are this
/// small (85 % of /usr's), each saving a 48-64 byte table.
const SCAN_MAX: usize = 8;

/// Least growth of the slots and of the arena, so a directory filling up
/// does not reallocate on every insert while it is small.
const GROW_MIN_SLOTS: usize = 2;
const GROW_MIN_BYTES: usize = 32;

/// Whether `dead` of `total` is enough garbage to compact.
fn too_much_garbage(dead: usize, total: usize, floor: usize) -> bool {
    dead > floor && dead * 100 > total * GARBAGE_PERCENT
}

/// Make room for `additional` more, growing by a quarter rather than
/// doubling: a directory that stops growing holds at most a quarter
/// spare, and growth stays amortised O(1).
fn reserve<T>(v: &mut Vec<T>, additional: usize, least: usize) {
    if v.capacity() - v.len() < additional {
        v.reserve_exact(additional.max(v.len() / 4).max(least));
    }
}

/// Give back what a shrunken vector no longer needs, keeping a quarter.
fn trim<T>(v: &mut Vec<T>) {
    if v.capacity() > v.len() + v.len() / 2 {
        v.shrink_to(v.len() + v.len() / 4);
    }
}

fn record_len(name: &[u8]) -> usize {
    HEADER + name.len()
}

/// Append the record of `name` and `kind`; returns where it starts.
fn push_record(arena: &mut Vec<u8>, name: &[u8], kind: FileKind) -> u32 {
    let at = u32::try_from(arena.len()).expect("the arena stays within ARENA_MAX");
    let len = u8::try_from(name.len()).expect("names are at most NAME_MAX bytes");
    arena.extend_from_slice(&[kind as u8, len]);
    arena.extend_from_slice(name);
    at
}

/// The kind and name of the record at `at`.
fn record(arena: &[u8], at: u32) -> (FileKind, &[u8]) {
    let at = at as usize;
    let len = usize::from(arena[at + 1]);
    (KINDS[usize::from(arena[at])], &arena[at + HEADER..][..len])
}

/// The name of the live entry at position `pos`.
fn name_at<'a>(slots: &[Slot], arena: &'a [u8], pos: u32) -> &'a [u8] {
    let at = slots[pos as usize].at;
    debug_assert_ne!(at, REMOVED, "the index names live slots");
    record(arena, at).1
}

fn entry<'a>(s: &Slot, arena: &'a [u8]) -> DEnt<'a> {
    let (kind, name) = record(arena, s.at);
    DEnt {
        ino: s.ino,
        kind,
        name,
    }
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
/// Each name is stored once, in `arena`. `slots` holds every insert in
/// cookie order (cookies only grow, so an insert is a push onto both); a
/// removal marks its slot removed and leaves its record as garbage, and
/// once garbage outweighs the live part (`GARBAGE_PERCENT`) both are
/// compacted (cookies are kept, so listings in progress do not notice).
/// Records sit in the arena in slot order, so a compaction slides them
/// down in place. `index` finds a name in a directory of more than
/// `SCAN_MAX` slots (a smaller one is scanned): it holds the position in
/// `slots` of every entry, filed under the name's hash, and is rebuilt
/// when slots move. Positions fit a u32: slots have distinct cookies, all
/// below `COOKIE_LIMIT`.
pub(crate) struct Dir {
    /// ".." (the root's parent is itself).
    pub parent: Ino,
    /// Ascending cookies.
    slots: Vec<Slot>,
    /// The records of the slots, in their order, live or removed.
    arena: Vec<u8>,
    /// Positions in `slots` of the entries (never of a removed slot);
    /// empty, unallocated, while `slots` is no longer than `SCAN_MAX`.
    index: HashTable<u32>,
    /// Next cookie to hand out.
    next_cookie: u32,
    /// Bytes of `arena` in removed entries' records.
    dead_bytes: u32,
}

impl Dir {
    pub fn new(parent: Ino) -> Dir {
        Dir {
            parent,
            slots: Vec::new(),
            arena: Vec::new(),
            index: HashTable::new(),
            next_cookie: FIRST_COOKIE,
            dead_bytes: 0,
        }
    }
    /// Whether `index` is in use (see `SCAN_MAX`).
    fn indexed(&self) -> bool {
        self.slots.len() > SCAN_MAX
    }
    fn find(&self, name: &[u8]) -> Option<u32> {
        let (slots, arena) = (&self.slots, &self.arena);
        if !self.indexed() {
            let named = |s: &Slot| s.at != REMOVED && record(arena, s.at).1 == name;
            return slots.iter().position(named).map(|p| p as u32);
        }
        let eq = |&p: &u32| name_at(slots, arena, p) == name;
        self.index.find(name_hash(name), eq).copied()
    }
    pub fn contains(&self, name: &[u8]) -> bool {
        self.find(name).is_some()
    }
    pub fn get(&self, name: &[u8]) -> Option<DEnt<'_>> {
        let p = self.find(name)?;
        Some(entry(&self.slots[p as usize], &self.arena))
    }
    /// Whether `name` would fit beside the live names (see `ARENA_MAX`);
    /// whoever inserts checks this first and fails with ENOSPC.
    pub fn has_room(&self, name: &[u8]) -> bool {
        self.arena.len() - self.dead_bytes as usize + record_len(name) <= ARENA_MAX
    }
    /// Add an entry; `name` must not be present, and must fit (`has_room`).
    pub fn insert(&mut self, name: &[u8], ino: Ino, kind: FileKind) {
        debug_assert!(!self.contains(name));
        assert!(self.has_room(name), "the caller checked has_room");
        if self.next_cookie >= COOKIE_LIMIT {
            self.renumber();
        }
        if self.arena.len() + record_len(name) > ARENA_MAX {
            self.compact();
        }
        let cookie = self.next_cookie;
        self.next_cookie += 1;
        reserve(&mut self.arena, record_len(name), GROW_MIN_BYTES);
        reserve(&mut self.slots, 1, GROW_MIN_SLOTS);
        let at = push_record(&mut self.arena, name, kind);
        let pos = self.slots.len() as u32;
        self.slots.push(Slot { ino, cookie, at });
        if self.slots.len() == SCAN_MAX + 1 {
            self.reindex();
        } else if self.indexed() {
            let (slots, arena) = (&self.slots, &self.arena);
            let rehash = |&p: &u32| name_hash(name_at(slots, arena, p));
            self.index.insert_unique(name_hash(name), pos, rehash);
        }
    }
    /// Remove the entry `name`; returns the inode it named.
    pub fn remove(&mut self, name: &[u8]) -> Option<Ino> {
        let pos = if self.indexed() {
            let (slots, arena) = (&self.slots, &self.arena);
            let eq = |&p: &u32| name_at(slots, arena, p) == name;
            let found = self.index.find_entry(name_hash(name), eq).ok()?;
            found.remove().0
        } else {
            self.find(name)?
        };
        let slot = &mut self.slots[pos as usize];
        slot.at = REMOVED;
        let ino = slot.ino;
        // Within ARENA_MAX, as the whole arena is.
        self.dead_bytes += record_len(name) as u32;
        let dead_slots = self.slots.len() - self.len();
        if too_much_garbage(dead_slots, self.slots.len(), GARBAGE_FLOOR_SLOTS)
            || too_much_garbage(
                self.dead_bytes as usize,
                self.arena.len(),
                GARBAGE_FLOOR_BYTES,
            )
        {
            self.compact();
        }
        Some(ino)
    }
    /// Point an existing entry at another inode (rename exchange).
    pub fn repoint(&mut self, name: &[u8], ino: Ino, kind: FileKind) {
        let p = self.find(name).expect("repoint names an entry");
        let slot = &mut self.slots[p as usize];
        slot.ino = ino;
        self.arena[slot.at as usize] = kind as u8;
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn len(&self) -> usize {
        if self.indexed() {
            self.index.len()
        } else {
            self.slots.iter().filter(|s| s.at != REMOVED).count()
        }
    }
    pub fn values(&self) -> impl Iterator<Item = DEnt<'_>> {
        let arena = &self.arena;
        self.slots
            .iter()
            .filter(|s| s.at != REMOVED)
            .map(move |s| entry(s, arena))
    }

    /// The listing from readdir offset `offset`: "." and "..", then the
    /// entries, each with the offset that continues after it. Stops at the
    /// listing's end (see the module comment).
    pub fn list_from(&self, offset: u64) -> impl Iterator<Item = (u64, Listed<'_>)> {
        let pos = ListPos::decode(offset, self.next_cookie.into());
        let dots = [(DOT, Listed::Dot), (DOTDOT, Listed::DotDot)]
            .into_iter()
            .filter(move |&(c, _)| c > pos.last)
            .map(move |(c, l)| (pos.after(c), l));
        let start = (pos.last + 1).max(FIRST_COOKIE.into());
        let end = pos.end.max(start);
        let first = self.slots.partition_point(|s| u64::from(s.cookie) < start);
        let arena = &self.arena;
        let rest = self.slots[first..]
            .iter()
            .take_while(move |s| u64::from(s.cookie) < end)
            .filter(|s| s.at != REMOVED)
            .map(move |s| (pos.after(s.cookie.into()), Listed::Entry(entry(s, arena))));
        dots.chain(rest)
    }

    /// Give back all spare room and garbage: called when the kernel has
    /// forgotten the directory, which it does once it caches none of its
    /// entries, so the directory is most likely finished (should it grow
    /// again, it grows by a quarter).
    pub fn shrink_to_fit(&mut self) {
        if self.dead_bytes > 0 || self.slots.len() > self.len() {
            self.compact();
        }
        self.slots.shrink_to_fit();
        self.arena.shrink_to_fit();
    }

    /// Drop the removed slots and their records (cookies unchanged), give
    /// back memory a shrunken directory no longer needs, and rebuild the
    /// index. Records are in slot order, so each live one only moves down.
    fn compact(&mut self) {
        let arena = &mut self.arena;
        let mut end = 0;
        self.slots.retain_mut(|s| {
            if s.at == REMOVED {
                return false;
            }
            let from = s.at as usize;
            debug_assert!(from >= end, "records are in slot order");
            let len = HEADER + usize::from(arena[from + 1]);
            arena.copy_within(from..from + len, end);
            s.at = end as u32;
            end += len;
            true
        });
        arena.truncate(end);
        self.dead_bytes = 0;
        trim(&mut self.slots);
        trim(&mut self.arena);
        self.reindex();
    }

    fn reindex(&mut self) {
        if !self.indexed() {
            self.index = HashTable::new();
            return;
        }
        self.index.clear();
        let (slots, arena) = (&self.slots, &self.arena);
        let rehash = |&p: &u32| name_hash(name_at(slots, arena, p));
        let live = slots.iter().filter(|s| s.at != REMOVED).count();
        self.index.shrink_to(live, rehash);
        self.index.reserve(live, rehash);
        for (p, s) in slots.iter().enumerate().filter(|(_, s)| s.at != REMOVED) {
            let name = record(arena, s.at).1;
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
    fn set_next_cookie(&mut self, c: u32) {
        self.next_cookie = c;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names(d: &Dir, offset: u64) -> Vec<String> {
        d.list_from(offset)
            .map(|(_, l)| match l {
                Listed::Entry(e) => String::from_utf8_lossy(e.name).into(),
                _ => "dot".into(),
            })
            .collect()
    }

    /// What the fields must always say of each other, and the bounds the
    /// garbage policy promises.
    fn check_invariants(d: &Dir) {
        let live: Vec<&Slot> = d.slots.iter().filter(|s| s.at != REMOVED).collect();
        assert_eq!(live.len(), d.len());
        let want_index = if d.slots.len() > SCAN_MAX {
            live.len()
        } else {
            0
        };
        assert_eq!(d.index.len(), want_index);
        assert!(d.slots.windows(2).all(|w| w[0].cookie < w[1].cookie));
        assert!(d.slots.iter().all(|s| s.cookie < d.next_cookie));
        assert!(live.windows(2).all(|w| w[0].at < w[1].at), "slot order");
        let live_bytes: usize = live
            .iter()
            .map(|s| record_len(record(&d.arena, s.at).1))
            .sum();
        assert_eq!(live_bytes + d.dead_bytes as usize, d.arena.len());
        let dead_slots = d.slots.len() - live.len();
        assert!(dead_slots <= live.len().max(GARBAGE_FLOOR_SLOTS));
        assert!(d.dead_bytes as usize <= live_bytes.max(GARBAGE_FLOOR_BYTES));
        for (p, s) in d.slots.iter().enumerate().filter(|(_, s)| s.at != REMOVED) {
            assert_eq!(d.find(record(&d.arena, s.at).1), Some(p as u32));
        }
    }

    #[test]
    fn offsets_round_trip_and_stay_non_negative() {
        let p = ListPos {
            last: 7,
            end: u64::from(COOKIE_LIMIT) - 1,
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
        let y = d.get(b"y").unwrap();
        assert_eq!((y.ino, y.kind), (6, FileKind::Dir));
        assert!(d.next_cookie < 10);
        check_invariants(&d);
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
            assert_eq!(d.remove(name(i).as_bytes()), Some(i as u64 + 10));
            check_invariants(&d);
        }
        assert!(d.slots.len() < 1000, "removed slots were dropped");
        assert!(
            d.arena.capacity() < 2 * d.arena.len(),
            "the arena was trimmed"
        );
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
        assert_eq!(
            (e.ino, e.kind, e.name),
            (7, FileKind::Dir, name(9).as_bytes())
        );
    }

    #[test]
    fn any_name_byte_and_the_longest_names_round_trip() {
        let mut d = Dir::new(1);
        let all: Vec<u8> = (1..=255u8).filter(|&b| b != b'/').collect();
        let names: Vec<Vec<u8>> = vec![
            all.iter().copied().cycle().take(255).collect(),
            all.iter().rev().copied().cycle().take(255).collect(),
            vec![0xff; 255],
            vec![b'.'; 3],
            vec![0x80, 0xc3],
        ];
        for (i, n) in names.iter().enumerate() {
            d.insert(n, i as u64, KINDS[i % KINDS.len()]);
        }
        for (i, n) in names.iter().enumerate() {
            let e = d.get(n).unwrap();
            assert_eq!(
                (e.ino, e.kind, e.name),
                (i as u64, KINDS[i % KINDS.len()], &n[..])
            );
        }
        let listed: Vec<&[u8]> = d.values().map(|e| e.name).collect();
        assert_eq!(listed, names.iter().map(|n| &n[..]).collect::<Vec<_>>());
        check_invariants(&d);
    }

    #[test]
    fn a_million_entries_and_a_churned_directory_stay_within_twice_their_names() {
        let mut d = Dir::new(1);
        let name = |i: u32| format!("file-{i:07}{}", "x".repeat((i % 7) as usize * 40));
        for i in 0..1_000_000 {
            d.insert(name(i).as_bytes(), u64::from(i), FileKind::File);
        }
        assert_eq!(d.len(), 1_000_000);
        let live: usize = (0..1_000_000).map(|i| record_len(name(i).as_bytes())).sum();
        assert!(d.arena.capacity() <= live + live / 4 + GROW_MIN_BYTES);
        assert!(d.slots.capacity() <= 1_250_000 + GROW_MIN_SLOTS);
        assert_eq!(d.get(name(765_432).as_bytes()).unwrap().ino, 765_432);
        // Churn: remove and re-add every name under another one, counting
        // the compactions on the way.
        let mut compactions = 0;
        for i in 0..1_000_000 {
            let before = d.slots.len();
            d.remove(name(i).as_bytes()).unwrap();
            compactions += usize::from(d.slots.len() < before);
            d.insert(format!("r{i}").as_bytes(), u64::from(i), FileKind::File);
        }
        assert!(compactions >= 2, "{compactions}");
        assert_eq!(d.len(), 1_000_000);
        check_invariants(&d);
        let listed = d.list_from(0).count();
        assert_eq!(listed, 1_000_002);
    }

    #[test]
    fn garbage_and_room_follow_the_bounds() {
        assert!(!too_much_garbage(16, 20, 16), "under the floor");
        assert!(!too_much_garbage(30, 60, 16), "half is allowed");
        assert!(too_much_garbage(31, 60, 16));
        let mut v: Vec<u8> = Vec::new();
        reserve(&mut v, 3, 32);
        assert_eq!(v.capacity(), 32);
        v.resize(1000, 0);
        reserve(&mut v, 1000, 32);
        assert!(v.capacity() >= 2000 && v.capacity() < 2250);
        v.truncate(100);
        trim(&mut v);
        assert_eq!(v.capacity(), 125);
        let d = Dir::new(1);
        assert!(d.has_room(&[b'a'; 255]));
    }

    /// An operation on a directory of a small pool of names.
    #[derive(Debug, Clone)]
    enum Op {
        Insert(usize, FileKind),
        Remove(usize),
        /// rename(2) within the directory: `to` replaced if present.
        Rename(usize, usize),
        Exchange(usize, usize),
        /// Begin a listing: remember where it is after `n` items.
        Open(usize),
    }

    /// Entries with their cookies, as the module comment defines them.
    #[derive(Default)]
    struct Model {
        ents: Vec<(u64, Vec<u8>, Ino, FileKind)>,
        next: u64,
    }

    impl Model {
        fn find(&self, name: &[u8]) -> Option<usize> {
            self.ents.iter().position(|e| e.1 == name)
        }
        fn insert(&mut self, name: &[u8], ino: Ino, kind: FileKind) {
            self.ents.push((self.next, name.to_vec(), ino, kind));
            self.next += 1;
        }
        fn remove(&mut self, name: &[u8]) -> Option<(Ino, FileKind)> {
            let (_, _, ino, kind) = self.ents.remove(self.find(name)?);
            Some((ino, kind))
        }
        /// The entries a listing from `offset` returns, dots left out.
        fn list_from(&self, offset: u64) -> Vec<(Vec<u8>, Ino, FileKind)> {
            let pos = ListPos::decode(offset, self.next);
            self.ents
                .iter()
                .filter(|e| e.0 > pos.last && e.0 < pos.end)
                .map(|e| (e.1.clone(), e.2, e.3))
                .collect()
        }
    }

    fn name_strategy() -> impl Strategy<Value = Vec<u8>> {
        let byte = (1u8..=255).prop_filter("not '/'", |&b| b != b'/');
        prop_oneof![
            proptest::collection::vec(byte.clone(), 1..=8),
            proptest::collection::vec(byte.clone(), 20..=23),
            proptest::collection::vec(byte, 200..=255),
        ]
    }

    fn op_strategy(pool: usize) -> impl Strategy<Value = Op> {
        let kind = proptest::sample::select(KINDS.to_vec());
        prop_oneof![
            4 => (0..pool, kind).prop_map(|(n, k)| Op::Insert(n, k)),
            3 => (0..pool).prop_map(Op::Remove),
            2 => (0..pool, 0..pool).prop_map(|(a, b)| Op::Rename(a, b)),
            1 => (0..pool, 0..pool).prop_map(|(a, b)| Op::Exchange(a, b)),
            1 => (0..pool).prop_map(Op::Open),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn matches_a_model(
            pool in proptest::collection::hash_set(name_strategy(), 2..=60),
            ops in proptest::collection::vec(op_strategy(60), 1..2000),
        ) {
            // Few names keep a directory around SCAN_MAX; many cross it.
            let pool: Vec<Vec<u8>> = pool.into_iter().collect();
            let at = |i: usize| &pool[i % pool.len()];
            let mut d = Dir::new(1);
            // A first cookie the model shares.
            let mut m = Model { next: FIRST_COOKIE.into(), ..Model::default() };
            let mut open: Vec<u64> = vec![0];
            let mut ino = 100;
            for op in ops {
                match op {
                    Op::Insert(n, kind) => {
                        let name = at(n);
                        if m.find(name).is_none() {
                            ino += 1;
                            d.insert(name, ino, kind);
                            m.insert(name, ino, kind);
                        }
                    }
                    Op::Remove(n) => {
                        let want = m.remove(at(n)).map(|e| e.0);
                        prop_assert_eq!(d.remove(at(n)), want);
                    }
                    Op::Rename(a, b) => {
                        if at(a) != at(b) {
                            if let Some((i, k)) = m.remove(at(a)) {
                                prop_assert_eq!(d.remove(at(a)), Some(i));
                                prop_assert_eq!(d.remove(at(b)), m.remove(at(b)).map(|e| e.0));
                                d.insert(at(b), i, k);
                                m.insert(at(b), i, k);
                            }
                        }
                    }
                    Op::Exchange(a, b) => {
                        if let (Some(x), Some(y)) = (m.find(at(a)), m.find(at(b))) {
                            let (xi, xk, yi, yk) = (m.ents[x].2, m.ents[x].3, m.ents[y].2, m.ents[y].3);
                            d.repoint(at(a), yi, yk);
                            d.repoint(at(b), xi, xk);
                            (m.ents[x].2, m.ents[x].3) = (yi, yk);
                            (m.ents[y].2, m.ents[y].3) = (xi, xk);
                        }
                    }
                    Op::Open(n) => {
                        if let Some((next, _)) = d.list_from(0).nth(n % (d.len() + 2)) {
                            open.push(next);
                        }
                    }
                }
                for n in &pool {
                    let want = m.find(n).map(|i| (m.ents[i].2, m.ents[i].3));
                    prop_assert_eq!(d.get(n).map(|e| (e.ino, e.kind)), want);
                }
                prop_assert_eq!(d.len(), m.ents.len());
                check_invariants(&d);
                // Every listing begun so far goes on as the model says.
                for &o in &open {
                    let got: Vec<(Vec<u8>, Ino, FileKind)> = d
                        .list_from(o)
                        .filter_map(|(_, l)| match l {
                            Listed::Entry(e) => Some((e.name.to_vec(), e.ino, e.kind)),
                            _ => None,
                        })
                        .collect();
                    prop_assert_eq!(got, m.list_from(o));
                }
            }
        }
    }
}
