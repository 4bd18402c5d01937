//! A map that forgets its oldest entries past a capacity.

use std::hash::{BuildHasher as _, Hash};

use hashbrown::HashTable;

/// A map that forgets its oldest entries past a capacity.
///
/// Entries sit in a ring in insertion order, which is the eviction order;
/// an index of ring positions finds them by key. The index is sized for the
/// full capacity at the first insert (5 bytes a bucket: 10 MB for the
/// default million sessions) and so never grows. A `HashMap` growing on
/// demand moved every entry when it doubled, a 170 ms stall at 917,504
/// sessions, and sizing it up front would have reserved room for two
/// million 64-byte entries. The ring grows like a `Vec` up to the capacity
/// and is then overwritten in place, oldest first.
#[derive(Debug)]
pub(super) struct Bounded<K, V> {
    cap: usize,
    entries: Vec<(K, V)>,
    /// The next entry to overwrite once `entries` is full: the oldest.
    oldest: usize,
    index: HashTable<u32>,
    /// See [`crate::stats::Map`] for the choice of hasher.
    hasher: foldhash::fast::RandomState,
}

impl<K: Hash + Eq, V> Bounded<K, V> {
    pub(super) fn new(cap: usize) -> Self {
        Self {
            // Ring positions are u32 in the index.
            cap: cap.clamp(1, u32::MAX as usize),
            entries: Vec::new(),
            oldest: 0,
            index: HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn find(&self, hash: u64, k: &K) -> Option<usize> {
        let &i = self
            .index
            .find(hash, |&i| self.entries[i as usize].0 == *k)?;
        Some(i as usize)
    }

    pub(super) fn get(&self, k: &K) -> Option<&V> {
        let i = self.find(self.hasher.hash_one(k), k)?;
        Some(&self.entries[i].1)
    }

    pub(super) fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        let i = self.find(self.hasher.hash_one(k), k)?;
        Some(&mut self.entries[i].1)
    }

    /// Inserts; returns the value of the old entry evicted to make room.
    pub(super) fn insert(&mut self, k: K, v: V) -> Option<V> {
        let hash = self.hasher.hash_one(&k);
        if let Some(i) = self.find(hash, &k) {
            self.entries[i].1 = v;
            return None;
        }
        let Self {
            cap,
            entries,
            oldest,
            index,
            hasher,
        } = self;
        let rehash = |&i: &u32| hasher.hash_one(&entries[i as usize].0);
        if index.capacity() == 0 {
            index.reserve(*cap, rehash);
        }
        let (i, evicted) = if entries.len() < *cap {
            entries.push((k, v));
            (entries.len() - 1, None)
        } else {
            let i = *oldest;
            let old = hasher.hash_one(&entries[i].0);
            if let Ok(e) = index.find_entry(old, |&j| j as usize == i) {
                e.remove();
            }
            let (_, evicted) = std::mem::replace(&mut entries[i], (k, v));
            *oldest = (i + 1) % *cap;
            (i, Some(evicted))
        };
        let pos = u32::try_from(i).expect("cap fits u32");
        index.insert_unique(hash, pos, |&j| hasher.hash_one(&entries[j as usize].0));
        evicted
    }
}
