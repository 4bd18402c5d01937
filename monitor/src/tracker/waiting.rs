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

    /// Puts a timed-out connection aside; returns true if an older one was
    /// dropped to make room.
    pub(super) fn put(&mut self, conn: Conn) -> bool {
        let key = conn.key();
        if let Some(slot) = self.ring.get_mut(&key) {
            // A stale one under the same key (the port was reused).
            self.len += usize::from(slot.is_none());
            *slot = Some(conn);
            return false;
        }
        self.len += 1;
        let dropped = matches!(self.ring.insert(key, Some(conn)), Some(Some(_)));
        self.len -= usize::from(dropped);
        dropped
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
