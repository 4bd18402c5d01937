//! TLS ≤ 1.2 sessions: the sessions servers issued, when, which connection
//! held each last, and how the connections that held sessions ended. What
//! a rejected offer is blamed on.
//!
//! The connection that matters is the session's *last holder*: the one
//! that established it, or the latest that resumed it. OpenSSL drops a
//! cached session when any connection holding it is freed without having
//! sent close_notify (`SSL_free` → `ssl_clear_bad_session` unless
//! `SSL_SENT_SHUTDOWN`), and a server sends its close_notify when its peer
//! sent one: so a rejection follows the last holder's client side.
//! Measured in the proxy lab (`checks`): HAProxy's SSL health checks resume
//! the traffic's session and reset it; the next traffic offer is rejected,
//! although the connection that established the session closed cleanly.
//!
//! TLS 1.3 tickets are not here: their bytes travel encrypted
//! (`tickets`).

use std::collections::HashSet;

use monitor_common::event::{Hello, TICKET_ID_LEN};

use super::bounded::Bounded;
use crate::stats::{CloseStyle, Endpoint};

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

/// How a connection that held sessions ended, as far as a server's cache
/// cares: the close of its client side, and whether that side sent
/// application data (a health check sends none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct End {
    pub(super) close: CloseStyle,
    pub(super) data: Option<bool>,
}

/// What is remembered of an issued session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Session {
    /// The connection that held it last: established or resumed it.
    holder: u64,
    /// When it was established (a TLS ≤ 1.2 session ages from its full
    /// handshake, even while it is resumed).
    issued_ns: u64,
    /// A ticket's lifetime hint (RFC 5077 §3.3), 0 when none was given.
    lifetime_s: u32,
}

/// The last holder of an offered session, when the offer came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Holder {
    Ended(End),
    /// Still open (or gone without a recorded end): its close cannot have
    /// cost the session.
    Open,
}

/// What is known of an offered session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Lineage {
    pub(super) issued_ns: u64,
    pub(super) lifetime_s: u32,
    pub(super) holder: Holder,
}

/// Sessions per server and the ends of their holders, bounded; evictions
/// are the caller's to count.
#[derive(Debug)]
pub(super) struct Sessions {
    issued: Bounded<(Endpoint, SessionKey), Session>,
    /// How connections ended, by connection id.
    ends: Bounded<u64, End>,
    /// Servers seen issuing tickets (TLS ≤ 1.2 NewSessionTicket).
    ticket_servers: HashSet<Endpoint, foldhash::fast::RandomState>,
}

impl Sessions {
    pub(super) fn new(max_sessions: usize) -> Self {
        Self {
            issued: Bounded::new(max_sessions),
            ends: Bounded::new(max_sessions),
            ticket_servers: HashSet::default(),
        }
    }

    /// `server` issued `key` on connection `conn` at `at_ns`; returns true
    /// if an older session was evicted to make room.
    pub(super) fn issue(
        &mut self,
        server: Endpoint,
        key: SessionKey,
        conn: u64,
        at_ns: u64,
        lifetime_s: u32,
    ) -> bool {
        if matches!(key, SessionKey::Ticket(_)) {
            self.ticket_servers.insert(server);
        }
        let session = Session {
            holder: conn,
            issued_ns: at_ns,
            lifetime_s,
        };
        self.issued.insert((server, key), session).is_some()
    }

    /// Connection `conn` resumed `key`: it holds the session now.
    pub(super) fn resumed(&mut self, server: Endpoint, key: SessionKey, conn: u64) {
        if let Some(s) = self.issued.get_mut(&(server, key)) {
            s.holder = conn;
        }
    }

    pub(super) fn is_issued(&self, server: Endpoint, key: SessionKey) -> bool {
        self.issued.get(&(server, key)).is_some()
    }

    pub(super) fn issues_tickets(&self, server: Endpoint) -> bool {
        self.ticket_servers.contains(&server)
    }

    /// Connection `conn` ended this way; returns true if the end of an
    /// older one was evicted to make room.
    pub(super) fn ended(&mut self, conn: u64, end: End) -> bool {
        self.ends.insert(conn, end).is_some()
    }

    /// The session of `server` an offer names: the ticket if tlsmon saw it
    /// issued, else the session ID.
    pub(super) fn lineage(
        &self,
        server: Endpoint,
        [sid, ticket]: [Option<SessionKey>; 2],
    ) -> Option<Lineage> {
        let s = [ticket, sid]
            .into_iter()
            .flatten()
            .find_map(|k| self.issued.get(&(server, k)))?;
        let holder = match self.ends.get(&s.holder) {
            Some(end) => Holder::Ended(*end),
            None => Holder::Open,
        };
        Some(Lineage {
            issued_ns: s.issued_ns,
            lifetime_s: s.lifetime_s,
            holder,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    #[test]
    fn the_last_holder_is_the_latest_resumption() {
        let server = Endpoint {
            addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 443,
        };
        let key = SessionKey::Id([1; 32], 32);
        let mut s = Sessions::new(16);
        s.issue(server, key, 1, 100, 0);
        let clean = End {
            close: CloseStyle::Clean,
            data: Some(true),
        };
        s.ended(1, clean);
        assert_eq!(
            s.lineage(server, [Some(key), None]).map(|l| l.holder),
            Some(Holder::Ended(clean))
        );
        // A health check resumes it: it holds it now, and is still open.
        s.resumed(server, key, 2);
        let l = s.lineage(server, [Some(key), None]).unwrap();
        assert_eq!((l.holder, l.issued_ns), (Holder::Open, 100));
        let check = End {
            close: CloseStyle::Unclean,
            data: Some(false),
        };
        s.ended(2, check);
        assert_eq!(
            s.lineage(server, [Some(key), None]).map(|l| l.holder),
            Some(Holder::Ended(check))
        );
        assert_eq!(
            s.lineage(server, [None, Some(key)]).map(|l| l.issued_ns),
            Some(100)
        );
        assert!(s.lineage(server, [None, None]).is_none());
    }
}
