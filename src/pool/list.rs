//! Intrusive doubly linked lists of zspage ids.
//!
//! The links live in the zspages (`ZsPage::glink` for its fullness group,
//! `ZsPage::llink` for its class LRU); a `List` holds only head, tail and
//! length. Every list operation is done under the class lock that owns both
//! the list and the zspages (see `Class::push_front` / `Class::unlink`).

/// End of a list / no zspage.
pub(super) const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
pub(super) struct Link {
    pub prev: u32,
    pub next: u32,
}

pub(super) const UNLINKED: Link = Link {
    prev: NIL,
    next: NIL,
};

/// Head, tail and length of a list threaded through `Link`s.
#[derive(Debug, Clone, Copy)]
pub(super) struct List {
    pub head: u32,
    pub tail: u32,
    pub len: usize,
}

pub(super) const EMPTY_LIST: List = List {
    head: NIL,
    tail: NIL,
    len: 0,
};

/// Where a list's nodes keep their links: `link(id)` is node `id`'s link
/// for this list.
pub(super) trait Links {
    fn link(&mut self, id: u32) -> &mut Link;
}

impl List {
    /// Link `id` (not on this list) in at the head.
    #[inline]
    pub fn push_front(&mut self, nodes: &mut impl Links, id: u32) {
        let old = self.head;
        *nodes.link(id) = Link {
            prev: NIL,
            next: old,
        };
        if old == NIL {
            self.tail = id;
        } else {
            nodes.link(old).prev = id;
        }
        self.head = id;
        self.len += 1;
    }

    /// A node on this list moved from id `from` to id `to` keeping `link`
    /// (already stored at `to`): point its neighbours (or head and tail)
    /// at `to`, so the order is unchanged.
    #[inline]
    pub fn renamed(&mut self, nodes: &mut impl Links, link: Link, to: u32) {
        if link.prev == NIL {
            self.head = to;
        } else {
            nodes.link(link.prev).next = to;
        }
        if link.next == NIL {
            self.tail = to;
        } else {
            nodes.link(link.next).prev = to;
        }
    }

    /// Take `id` (on this list) out.
    #[inline]
    pub fn unlink(&mut self, nodes: &mut impl Links, id: u32) {
        let Link { prev, next } = std::mem::replace(nodes.link(id), UNLINKED);
        if prev == NIL {
            self.head = next;
        } else {
            nodes.link(prev).next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            nodes.link(next).prev = prev;
        }
        self.len -= 1;
    }
}
