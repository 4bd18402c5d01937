//! Sessions through time, per TLS server: which connection issued the
//! session a connection offers, which connection held it last before the
//! offer (the one that established it or the latest that resumed it), and
//! — for an offer the server rejected — the true cause, from that evidence
//! and the scenario's known events. Pure: no I/O.
//!
//! Why the last holder: OpenSSL drops a cached session when any connection
//! holding it is freed without having sent `close_notify`
//! (`SSL_free` → `ssl_clear_bad_session` unless `SSL_SENT_SHUTDOWN`), so the
//! connection that matters is the latest one that had it. For a TLS ≤ 1.2
//! session that is the full handshake or the latest resumption; for a TLS
//! 1.3 ticket the connection that received it (see [`lineages`]).

use std::{collections::HashMap, net::SocketAddr};

use super::connections::{Close, Connection, Identity, Kind, Method};
use crate::lab::scenario::Cause;

/// What the scenario did to one server, with times on the capture's clock
/// (seconds since the epoch).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Known {
    /// The server keeps no sessions (`no_cache`).
    pub no_cache: bool,
    /// Its session cache timeout, in seconds.
    pub session_timeout: Option<f64>,
    /// When it was stopped to be restarted.
    pub restarts: Vec<f64>,
    /// When its ticket keys changed.
    pub key_changes: Vec<f64>,
}

/// How OpenSSL counts a session's age: in whole seconds (`time_t`), so an
/// age within this much of the timeout can go either way.
pub const AGE_GRANULARITY: f64 = 1.0;

/// Where an offered session came from and what happened to it before.
#[derive(Clone, Debug, PartialEq)]
pub struct Lineage {
    /// The connection (index into the server's connections) that issued it.
    pub issuer: Option<usize>,
    /// When it was issued (the frame that carried it).
    pub issued_at: Option<f64>,
    /// When the session began: the full handshake that created it. For a
    /// TLS 1.2 session ID the same as `issued_at`; a TLS 1.3 ticket is a
    /// new session of its own.
    pub created_at: Option<f64>,
    /// The latest connection before the offer that established or resumed
    /// it.
    pub last_holder: Option<usize>,
    /// The cause, for an offer the server rejected (a full handshake).
    pub cause: Option<Cause>,
}

/// The lineage of every connection's offer (`None` where nothing was
/// offered), for the connections of one server sorted by start.
#[must_use]
pub fn lineages(conns: &[Connection], known: &Known) -> Vec<Option<Lineage>> {
    // identity → (issuer, time), first issue wins.
    let mut issued: HashMap<&Identity, (usize, f64)> = HashMap::new();
    for (index, conn) in conns.iter().enumerate() {
        for (identity, at) in &conn.issued {
            issued.entry(identity).or_insert((index, *at));
        }
    }
    // identity → holders in start order: the issuer, then every
    // connection that resumed with it.
    let mut holders: HashMap<&Identity, Vec<usize>> = HashMap::new();
    for (identity, &(issuer, _)) in &issued {
        holders.entry(identity).or_default().push(issuer);
    }
    for (index, conn) in conns.iter().enumerate() {
        // A TLS 1.3 ticket names the session of the connection that
        // received it. A connection resuming with it works on a copy once
        // the server sends it a ticket of its own (OpenSSL 3.0,
        // tls_construct_new_session_ticket: ssl_session_dup when s->hit),
        // so its ending does not touch the original: measured in the
        // `checks+tls13` scenario, where the same identity was accepted
        // again after health checks that resumed it ended with a RST.
        if let Some(identity) = &conn.offer
            && conn.kind == Kind::Resumed
            && identity.method != Method::Psk
        {
            holders.entry(identity).or_default().push(index);
        }
    }
    for list in holders.values_mut() {
        list.sort_by(|&a, &b| conns[a].start.total_cmp(&conns[b].start));
        list.dedup();
    }

    conns
        .iter()
        .enumerate()
        .map(|(index, conn)| {
            let identity = conn.offer.as_ref()?;
            let origin = issued.get(identity).copied();
            let last_holder = holders.get(identity).and_then(|list| {
                list.iter()
                    .copied()
                    .rfind(|&h| h != index && conns[h].start < conn.start)
            });
            let issued_at = origin.map(|(_, at)| at);
            let mut lineage = Lineage {
                issuer: origin.map(|(i, _)| i),
                issued_at,
                created_at: issued_at,
                last_holder,
                cause: None,
            };
            if conn.kind == Kind::Full {
                lineage.cause = Some(cause(conns, conn, identity, &lineage, known));
            }
            Some(lineage)
        })
        .collect()
}

/// The cause of a rejected offer. The scenario's known settings and events
/// come first:
/// each makes the rejection certain whatever the closes were (a restarted
/// server has no sessions, an expired one is refused, a ticket under old
/// keys cannot be read). Then the last holder's close on the proxy's side
/// (the client of the connection). Never more certain than that: an offer
/// whose issue was not captured, or whose last holder's close is
/// undecided, is `unknown`.
fn cause(
    conns: &[Connection],
    conn: &Connection,
    identity: &Identity,
    lineage: &Lineage,
    known: &Known,
) -> Cause {
    // A server that keeps nothing rejects every offer, wherever the
    // session came from.
    if known.no_cache {
        return Cause::NoCache;
    }
    let Some(issued_at) = lineage.issued_at else {
        return Cause::Unknown;
    };
    let between = |t: &f64| issued_at < *t && *t < conn.start;
    if identity.method == Method::Ticket && known.key_changes.iter().any(between) {
        return Cause::TicketRejected;
    }
    if known.restarts.iter().any(between) {
        return Cause::ServerRestart;
    }
    if let (Some(timeout), Some(created)) = (known.session_timeout, lineage.created_at)
        && conn.start - created > timeout
    {
        return Cause::Expired;
    }
    match lineage.last_holder.map(|h| conns[h].close(true)) {
        Some(Close::Unclean) => Cause::AfterUnclean,
        Some(Close::Clean) => Cause::AfterClean,
        _ => Cause::Unknown,
    }
}

/// The connection of `conns` whose client endpoint is `client` and that
/// started last at or before `at` (endpoints are reused over a long run).
#[must_use]
pub fn find(conns: &[Connection], client: SocketAddr, at: f64) -> Option<usize> {
    conns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.client == client && c.start <= at)
        .max_by(|(_, a), (_, b)| a.start.total_cmp(&b.start))
        .map(|(i, _)| i)
}
