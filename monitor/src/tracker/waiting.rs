//! Handshakes that timed out waiting for a ServerHello, kept aside where a
//! late one can still find them (issue 17: a slow backend's ServerHello
//! 14.8 s after the ClientHello is still classified, with that latency).
//!
//! They leave the connection table, so a hello flood cannot keep it full,
//! and sit in a ring of [`super::Limits::max_timed_out`] entries: the
//! oldest is dropped first, counted, and an answer to it after that is
//! untracked. Taking one back leaves an empty slot in the ring, which the
//! ring's next turn reuses.

use super::{bounded::Bounded, conn::Conn, table::ConnKey};

#[derive(Debug)]
pub(super) struct Waiting {
    ring: Bounded<ConnKey, Option<Conn>>,
    /// Connections in the ring (slots taken back hold `None`).
    len: usize,
}

impl Waiting {
    pub(super) fn new(max: usize) -> Self {
        Self {
            ring: Bounded::new(max),
            len: 0,
        }
    }

    /// Puts a timed-out connection aside; returns the one it leaves out:
    /// a stale one under the same key (its port was reused, `false`) or
    /// the oldest, dropped to make room (`true`).
    pub(super) fn put(&mut self, conn: Conn) -> Option<(Conn, bool)> {
        let key = conn.key();
        if let Some(slot) = self.ring.get_mut(&key) {
            self.len += usize::from(slot.is_none());
            return slot.replace(conn).map(|old| (old, false));
        }
        self.len += 1;
        let dropped = self.ring.insert(key, Some(conn)).flatten();
        self.len -= usize::from(dropped.is_some());
        dropped.map(|old| (old, true))
    }

    /// Takes back the connection with this key, if it is here.
    pub(super) fn take(&mut self, key: &ConnKey) -> Option<Conn> {
        if self.len == 0 {
            return None;
        }
        let conn = self.ring.get_mut(key)?.take()?;
        self.len -= 1;
        Some(conn)
    }
}
