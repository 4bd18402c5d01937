//! The connection table: connections in a slab, found through an index of
//! slot numbers, evicted oldest first when full.

use std::{collections::VecDeque, hash::BuildHasher as _};

use hashbrown::HashTable;

use super::conn::Conn;
use crate::stats::Endpoint;

/// A connection's identity: its two endpoints in a fixed order, so both
/// directions find it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct ConnKey(Endpoint, Endpoint);

impl ConnKey {
    pub(super) fn new(a: Endpoint, b: Endpoint) -> Self {
        if a <= b { Self(a, b) } else { Self(b, a) }
    }

    pub(super) fn pair(self) -> (Endpoint, Endpoint) {
        (self.0, self.1)
    }
}

/// Where a connection sits in [`Conns`].
pub(super) type Slot = u32;

/// The connection table: connections in a slab, found through an index of
/// slot numbers hashed by [`ConnKey`].
///
/// A `HashMap<ConnKey, Conn>` kept each connection (~250 bytes with its
/// key) in a hash bucket, and hashbrown keeps at most 7/8 of its buckets
/// full and grows by doubling: a million connections took two million
/// buckets, over 500 MB. Here a bucket is a 4-byte slot number and the slab
/// holds only live connections, reusing freed slots. Looking a connection
/// up once per event also gives a slot every later step of that event
/// uses, where the map was hashed and probed again by each step.
#[derive(Debug)]
pub(super) struct Conns {
    slots: Vec<Option<Conn>>,
    /// Empty slots, filled before `slots` grows.
    free: Vec<Slot>,
    index: HashTable<Slot>,
    /// See [`crate::stats::Map`] for the choice of hasher.
    hasher: foldhash::fast::RandomState,
    /// Insertion order (slot and connection id; a slot may have been
    /// reused since), for eviction of the oldest.
    order: VecDeque<(Slot, u64)>,
}

impl Conns {
    pub(super) fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            index: HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
            order: VecDeque::new(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.index.len()
    }

    /// Slots the slab holds memory for.
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.slots.capacity()
    }

    pub(super) fn hash(&self, key: &ConnKey) -> u64 {
        self.hasher.hash_one(key)
    }

    pub(super) fn find(&self, hash: u64, key: &ConnKey) -> Option<Slot> {
        self.index
            .find(hash, |&s| self.get(s).has_key(key))
            .copied()
    }

    pub(super) fn get(&self, slot: Slot) -> &Conn {
        self.slots[slot as usize]
            .as_ref()
            .expect("slots handed out hold a connection")
    }

    pub(super) fn get_mut(&mut self, slot: Slot) -> &mut Conn {
        self.slots[slot as usize]
            .as_mut()
            .expect("slots handed out hold a connection")
    }

    /// The id of the connection in `slot`, if there is one.
    fn id_at(&self, slot: Slot) -> Option<u64> {
        self.slots.get(slot as usize)?.as_ref().map(|c| c.id)
    }

    /// Puts a new connection in `slot`, in place of the one there (same
    /// key: the port was reused after a close), and returns that one.
    pub(super) fn replace(&mut self, slot: Slot, conn: Conn) -> Conn {
        self.order.push_back((slot, conn.id));
        std::mem::replace(self.get_mut(slot), conn)
    }

    /// Adds a connection whose key is not in the table; `hash` is its key's.
    pub(super) fn insert(&mut self, hash: u64, conn: Conn) -> Slot {
        let id = conn.id;
        let slot = if let Some(slot) = self.free.pop() {
            self.slots[slot as usize] = Some(conn);
            slot
        } else {
            let slot = Slot::try_from(self.slots.len()).expect("fewer than 2^32 connections");
            self.slots.push(Some(conn));
            slot
        };
        let Self {
            slots,
            index,
            hasher,
            ..
        } = self;
        index.insert_unique(hash, slot, |&s| {
            let c = slots[s as usize].as_ref().expect("indexed slots are full");
            hasher.hash_one(c.key())
        });
        self.order.push_back((slot, id));
        slot
    }

    pub(super) fn remove(&mut self, slot: Slot) -> Conn {
        let hash = self.hash(&self.get(slot).key());
        if let Ok(entry) = self.index.find_entry(hash, |&s| s == slot) {
            entry.remove();
        }
        self.free.push(slot);
        self.slots[slot as usize]
            .take()
            .expect("slots handed out hold a connection")
    }

    /// Removes the connection that has been in the table longest.
    pub(super) fn remove_oldest(&mut self) -> Option<Conn> {
        while let Some((slot, id)) = self.order.pop_front() {
            if self.id_at(slot) == Some(id) {
                return Some(self.remove(slot));
            }
        }
        None
    }

    /// One past the highest slot: every connection is in a slot below.
    pub(super) fn end(&self) -> Slot {
        Slot::try_from(self.slots.len()).expect("fewer than 2^32 connections")
    }

    /// The connection in `slot`, if any (for a walk over `0..end()`).
    pub(super) fn at(&self, slot: Slot) -> Option<&Conn> {
        self.slots.get(slot as usize)?.as_ref()
    }

    /// The connection in `slot`, if any (for a walk over `0..end()`).
    pub(super) fn at_mut(&mut self, slot: Slot) -> Option<&mut Conn> {
        self.slots.get_mut(slot as usize)?.as_mut()
    }

    /// Drops the order entries of connections that have left, once they
    /// are a good part of the queue, and gives back the memory of a burst
    /// that has passed (a hello flood's connections time out together):
    /// empty slots at the end of the slab go, and every buffer far larger
    /// than what it holds shrinks.
    pub(super) fn compact(&mut self) {
        let live = self.len();
        if self.order.len() > live * 2 + 1024 {
            let Self { slots, order, .. } = self;
            order.retain(|&(slot, id)| {
                slots
                    .get(slot as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|c| c.id == id)
            });
        }
        let len = self.slots.len();
        while matches!(self.slots.last(), Some(None)) {
            self.slots.pop();
        }
        if self.slots.len() < len {
            let end = self.slots.len();
            self.free.retain(|&s| (s as usize) < end);
        }
        if self.slots.capacity() > 2 * self.slots.len() + 1024 {
            self.slots.shrink_to_fit();
            self.free.shrink_to_fit();
            self.order.shrink_to_fit();
            let Self {
                slots,
                index,
                hasher,
                ..
            } = self;
            index.shrink_to(live, |&s| {
                let c = slots[s as usize].as_ref().expect("indexed slots are full");
                hasher.hash_one(c.key())
            });
        }
    }
}
