//! TLS 1.3: which connections could have delivered the ticket a
//! ClientHello offers.
//!
//! A TLS 1.3 NewSessionTicket travels encrypted, so the offered PSK
//! identity cannot be tied to the connection that received it by its
//! bytes. It can be tied to a *set*: the connections between the same
//! client and server that completed their handshake, and in which the
//! server may have sent something after its handshake flight (tickets come
//! then, RFC 8446 §4.6.1), before the offer. If every one of them ended
//! with its client side unclean, so did the one that delivered the ticket.
//!
//! Which connection of the set it was does not matter for the session's
//! fate in TLS 1.3: the ticket names the session of the connection that
//! received it, and a connection that resumes with it works on a copy
//! (OpenSSL 3.0 duplicates the session when it sends the resumed
//! connection tickets of its own), so only the receiving connection's end
//! can cost it. Measured in the proxy lab (`checks+tls13`): the Python
//! backend accepted the same identity again after health checks that had
//! resumed it ended with a RST. So a resumed connection is a candidate for
//! the tickets it received, and is not the holder of the one it offered.
//!
//! A set is kept as counts, per (client address, server): its size does
//! not depend on how many connections it covers.
//!
//! How old the offered ticket is cannot be read either, and which
//! candidate delivered it cannot be known; an estimate of its issue serves
//! the rules that need an age (`causes`: expired, a restart). An accepted
//! offer is taken to use the latest candidate (the least age it can have:
//! what a server accepts is not overstated). A rejected one is taken to
//! use the latest candidate that completed before the last full handshake
//! between the same client and server, if that was less than
//! [`RECENT_FULL_NS`] ago and at most [`SAME_EPISODE`] candidates
//! completed since, and the latest otherwise: a full handshake (a
//! rejection's, or one that offered nothing) delivers fresh tickets to one
//! of the client's threads, and a rejection soon after is of another
//! thread's ticket from before. Measured in the proxy lab
//! (`expired+tls13`, `server_restart+tls13`), where HAProxy keeps one
//! session per thread and each thread offers the ticket its own previous
//! connection received: after a pause or a restart both threads offered a
//! ticket from before it, the second one after the first one's full
//! handshake (and in a restart, after that thread had resumed the fresh
//! ticket twice more); and a thread whose ticket was past its lifetime
//! offered nothing, made a full handshake, and the other thread's stale
//! offer came next. Whom a rejection is blamed on comes from the whole
//! set, not from this estimate.

use std::net::IpAddr;

use super::{bounded::Bounded, sessions::End};
use crate::stats::{CloseStyle, Endpoint};

/// The connections that may have delivered tickets from one server to one
/// client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Candidates {
    /// Still open: the end of one of them cannot have cost a session yet.
    open: u32,
    clean: u32,
    unclean: u32,
    /// Unclean, and their client sent no application data.
    unclean_idle: u32,
    unknown: u32,
    /// When the latest of them completed its handshake.
    youngest_ns: u64,
    /// Completion times of the latest [`RECENT`] candidates, a ring
    /// (`next` is where the next one goes), 0 where none yet.
    recent: [u64; RECENT],
    next: u8,
    /// When the last full handshake between this client and server
    /// completed, and how many candidates completed since.
    last_full_ns: Option<u64>,
    since_full: u8,
}

/// Candidates whose completion times are kept per (client, server): more
/// than a proxy's threads make between two rejections of one burst.
const RECENT: usize = 8;
/// How recent a full handshake must be to shape a rejected offer's
/// estimate: the tracker's linger time.
const RECENT_FULL_NS: u64 = 5_000_000_000;
/// At most this many candidates completed since the full handshake for it
/// to shape the estimate: the fresh tickets it delivered may be resumed a
/// few times before a client's other thread offers its own (measured:
/// twice, `server_restart+tls13`); a load between two restarts (four or
/// more connections to a server) is another episode.
const SAME_EPISODE: u8 = 2;

impl Candidates {
    fn push(&mut self, at_ns: u64) {
        self.since_full = self.since_full.saturating_add(1);
        let i = usize::from(self.next) % RECENT;
        self.recent[i] = at_ns;
        self.next = u8::try_from((i + 1) % RECENT).unwrap_or(0);
    }

    /// The latest completion before `t`, if one is remembered.
    fn latest_before(&self, t: u64) -> Option<u64> {
        self.recent
            .iter()
            .copied()
            .filter(|&x| x != 0 && x < t)
            .max()
    }
}

/// What the set says about an offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Origin {
    /// Every candidate ended this way (`Unknown`: they differ, one is
    /// still open, or one's end could not be told).
    pub(super) close: CloseStyle,
    /// Every unclean one sent no application data.
    pub(super) idle: bool,
    /// When the offered ticket was issued, as estimated (module comment).
    pub(super) issued_ns: u64,
}

/// The sets, bounded; evictions are the caller's to count.
#[derive(Debug)]
pub(super) struct Tickets {
    sets: Bounded<(IpAddr, Endpoint), Candidates>,
}

impl Tickets {
    pub(super) fn new(max: usize) -> Self {
        Self {
            sets: Bounded::new(max),
        }
    }

    /// A connection from `client` completed a TLS 1.3 handshake with
    /// `server` at `at_ns` (a `full` one or not): it may receive tickets.
    /// Returns true if the set of another pair was evicted to make room.
    pub(super) fn delivered(
        &mut self,
        client: IpAddr,
        server: Endpoint,
        at_ns: u64,
        full: bool,
    ) -> bool {
        let mut evicted = false;
        if self.sets.get(&(client, server)).is_none() {
            evicted = self
                .sets
                .insert((client, server), Candidates::default())
                .is_some();
        }
        if let Some(c) = self.sets.get_mut(&(client, server)) {
            c.open = c.open.saturating_add(1);
            c.youngest_ns = c.youngest_ns.max(at_ns);
            c.push(at_ns);
            if full {
                c.last_full_ns = Some(at_ns);
                c.since_full = 0;
            }
        }
        evicted
    }

    /// One of the open candidates ended: `end` of its client side, or
    /// `None` when it turned out to have received nothing after the
    /// handshake (no ticket).
    pub(super) fn ended(&mut self, client: IpAddr, server: Endpoint, end: Option<End>) {
        let Some(c) = self.sets.get_mut(&(client, server)) else {
            return;
        };
        c.open = c.open.saturating_sub(1);
        let Some(end) = end else { return };
        let n = match end.close {
            CloseStyle::Clean => &mut c.clean,
            CloseStyle::Unclean => &mut c.unclean,
            CloseStyle::Unknown => &mut c.unknown,
        };
        *n = n.saturating_add(1);
        if end.close == CloseStyle::Unclean && end.data == Some(false) {
            c.unclean_idle = c.unclean_idle.saturating_add(1);
        }
    }

    /// The set for an offer from `client` to `server` answered at `at_ns`
    /// (`accepted` or not), if there is one, with the ticket's estimated
    /// issue.
    pub(super) fn offered(
        &mut self,
        client: IpAddr,
        server: Endpoint,
        accepted: bool,
        at_ns: u64,
    ) -> Option<Origin> {
        let c = self.sets.get_mut(&(client, server))?;
        let mut issued_ns = c.youngest_ns;
        if !accepted
            && let Some(before) = c
                .last_full_ns
                .filter(|&f| {
                    at_ns.saturating_sub(f) < RECENT_FULL_NS && c.since_full <= SAME_EPISODE
                })
                .and_then(|f| c.latest_before(f))
        {
            issued_ns = before;
        }
        let close = if c.open > 0 || c.unknown > 0 {
            CloseStyle::Unknown
        } else if c.unclean > 0 && c.clean == 0 {
            CloseStyle::Unclean
        } else if c.clean > 0 && c.unclean == 0 {
            CloseStyle::Clean
        } else {
            CloseStyle::Unknown
        };
        Some(Origin {
            close,
            idle: c.unclean_idle == c.unclean,
            issued_ns,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn pair() -> (IpAddr, Endpoint) {
        let client = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let server = Endpoint {
            addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            port: 443,
        };
        (client, server)
    }

    const UNCLEAN: End = End {
        close: CloseStyle::Unclean,
        data: Some(true),
    };

    #[test]
    fn an_offer_is_decided_only_when_every_candidate_ended_alike() {
        let (client, server) = pair();
        let mut t = Tickets::new(8);
        assert!(t.offered(client, server, false, 5).is_none());
        t.delivered(client, server, 10, false);
        // Open: it cannot have cost a session yet.
        let o = t.offered(client, server, false, 15).unwrap();
        assert_eq!((o.close, o.issued_ns), (CloseStyle::Unknown, 10));
        t.ended(client, server, Some(UNCLEAN));
        t.delivered(client, server, 20, false);
        t.ended(client, server, Some(UNCLEAN));
        let o = t.offered(client, server, true, 25).unwrap();
        assert_eq!((o.close, o.idle), (CloseStyle::Unclean, false));
        // One that received nothing after its handshake is no candidate.
        t.delivered(client, server, 30, false);
        t.ended(client, server, None);
        let o = t.offered(client, server, true, 35).unwrap();
        assert_eq!(o.close, CloseStyle::Unclean);
        // A clean one makes the set undecided.
        t.delivered(client, server, 40, false);
        t.ended(
            client,
            server,
            Some(End {
                close: CloseStyle::Clean,
                data: Some(true),
            }),
        );
        let o = t.offered(client, server, true, 45).unwrap();
        assert_eq!(o.close, CloseStyle::Unknown);
    }

    #[test]
    fn a_rejection_soon_after_a_full_handshake_is_of_a_ticket_from_before_it() {
        const S: u64 = 1_000_000_000;
        let (client, server) = pair();
        let mut t = Tickets::new(8);
        t.delivered(client, server, S, true);
        t.delivered(client, server, 2 * S, false);
        // Each offer, then its connection's completion (a rejected offer
        // makes a full handshake).
        let mut issued = |accepted, at| {
            let o = t.offered(client, server, accepted, at).unwrap();
            t.delivered(client, server, at, !accepted);
            o.issued_ns
        };
        // An accepted offer: the latest, the least age it can have.
        assert_eq!(issued(true, 3 * S), 2 * S);
        // After a pause, a rejection (its full handshake delivers a fresh
        // ticket)...
        assert_eq!(issued(false, 10 * S), 3 * S);
        // ...and the next one is of a ticket from before it.
        assert_eq!(issued(false, 10 * S + 10), 3 * S);
        // Long after, a rejection is of the latest again...
        assert_eq!(issued(false, 30 * S), 10 * S + 10);
        // ...and so it is after a whole load, however soon.
        for i in 1..=3 {
            assert_eq!(issued(true, 30 * S + i), 30 * S + i - 1);
        }
        assert_eq!(issued(false, 31 * S), 30 * S + 3);
        // A full handshake that offered nothing delivers fresh tickets too.
        t.delivered(client, server, 40 * S, true);
        assert_eq!(
            t.offered(client, server, false, 40 * S + 10)
                .unwrap()
                .issued_ns,
            31 * S
        );
    }
}
