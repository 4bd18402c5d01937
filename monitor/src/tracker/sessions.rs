//! The sessions servers issued, which connection established each, and how
//! those connections ended: what a rejected offer is blamed on.

use std::collections::HashSet;

use monitor_common::event::{Hello, TICKET_ID_LEN};

use super::bounded::Bounded;
use crate::stats::Endpoint;

/// A session a client may offer again: a session ID or a ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum SessionKey {
    Id([u8; 32], u8),
    Ticket([u8; TICKET_ID_LEN]),
}

impl SessionKey {
    /// The session ID of a hello, if it has one.
    pub(super) fn id_of(hello: &Hello) -> Option<Self> {
        let n = hello.session_id_len.min(32);
        (n > 0).then(|| {
            let mut sid = [0u8; 32];
            sid[..usize::from(n)].copy_from_slice(&hello.session_id[..usize::from(n)]);
            Self::Id(sid, n)
        })
    }
}

/// How a connection ended, for the sessions it established: the first FIN
/// or RST, with or without an alert record (close_notify) before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Close {
    Clean,
    Unclean,
}

/// What is remembered of an issued session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Session {
    /// The connection that established it. Issue 16 adds the connection
    /// that held it last (a resumption also holds it, and OpenSSL drops a
    /// session when any holder ends uncleanly).
    origin: u64,
}

/// Where a rejected offer came from, as far as tlsmon saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Origin {
    /// The establishing connection closed uncleanly.
    Unclean,
    /// It closed cleanly, or is still open.
    Clean,
    /// tlsmon did not see the session established.
    Unknown,
}

/// Sessions per server, bounded; evictions are the caller's to count.
#[derive(Debug)]
pub(super) struct Sessions {
    issued: Bounded<(Endpoint, SessionKey), Session>,
    /// How connections that established sessions ended.
    closes: Bounded<u64, Close>,
    /// Servers seen issuing tickets (TLS ≤ 1.2 NewSessionTicket).
    ticket_servers: HashSet<Endpoint, foldhash::fast::RandomState>,
}

impl Sessions {
    pub(super) fn new(max_sessions: usize) -> Self {
        Self {
            issued: Bounded::new(max_sessions),
            closes: Bounded::new(max_sessions),
            ticket_servers: HashSet::default(),
        }
    }

    /// `server` issued `key` on connection `conn`; returns true if an older
    /// session was evicted to make room.
    pub(super) fn issue(&mut self, server: Endpoint, key: SessionKey, conn: u64) -> bool {
        if matches!(key, SessionKey::Ticket(_)) {
            self.ticket_servers.insert(server);
        }
        self.issued
            .insert((server, key), Session { origin: conn })
            .is_some()
    }

    pub(super) fn is_issued(&self, server: Endpoint, key: SessionKey) -> bool {
        self.issued.get(&(server, key)).is_some()
    }

    pub(super) fn issues_tickets(&self, server: Endpoint) -> bool {
        self.ticket_servers.contains(&server)
    }

    /// Connection `conn` ended this way (it may have established sessions).
    pub(super) fn closed(&mut self, conn: u64, close: Close) {
        self.closes.insert(conn, close);
    }

    /// How the connection that established any of the `offered` sessions
    /// of `server` ended; an unclean end wins.
    pub(super) fn origin(&self, server: Endpoint, offered: [Option<SessionKey>; 2]) -> Origin {
        let mut found = Origin::Unknown;
        for k in offered.into_iter().flatten() {
            if let Some(s) = self.issued.get(&(server, k)) {
                // Closes are recorded as they happen; a connection without
                // one is still open (or left the table without a close seen).
                match self.closes.get(&s.origin) {
                    Some(Close::Unclean) => return Origin::Unclean,
                    Some(Close::Clean) | None => found = Origin::Clean,
                }
            }
        }
        found
    }
}
