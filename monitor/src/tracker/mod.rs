//! Per-connection handshake tracking and per-server aggregation.
//!
//! Pure: events and a clock in, counters out; no I/O. The live daemon and
//! `tlsmon replay` both feed it, and the tests drive it event by event. The
//! rules it applies are listed, with their RFC sections, in
//! docs/classification.md.
//!
//! * [`conn`]: one connection's state, its phases as one enum;
//! * [`machine`]: the transitions of that state, the only place where a
//!   connection changes and an outcome is decided;
//! * [`exchange`]: which packets can belong to a connection (direction,
//!   acknowledgment), checked before the state machine sees them;
//! * [`table`]: the connection table (slab, index, eviction order);
//! * [`bounded`]: the ring map behind every store keyed by peers' choices;
//! * [`sessions`]: the TLS ≤ 1.2 sessions servers issued, their last
//!   holders and how those ended;
//! * [`tickets`]: the connections that may have delivered a TLS 1.3 ticket;
//! * [`causes`]: why a server rejected an offer, from that history and
//!   what the server was seen to do;
//! * [`offers`]: the tracker's steps that use them, and connection records;
//! * [`servers`]: the per-server counters, bounded;
//! * [`waiting`]: handshakes that timed out, where a late answer finds them;
//! * this module: the [`Tracker`], which finds the connection of an event,
//!   steps it, and records what the step says in one place, [`Tracker::record`].

mod bounded;
mod causes;
mod conn;
mod exchange;
mod machine;
mod offers;
mod servers;
mod sessions;
mod table;
#[cfg(test)]
mod tests;
mod tickets;
mod waiting;

use std::{collections::HashSet, net::IpAddr, sync::Mutex};

use monitor_common::event::{Decoded, Direction, EventHeader, TlsSummary, hello_flags};

use self::{
    causes::{Causes, Decided},
    conn::{Conn, Counted, Peer},
    exchange::Skip,
    machine::{Known, Observation, Outcome, Segment, Step},
    offers::{Judgement, Origin},
    servers::Servers,
    sessions::{SessionKey, Sessions},
    table::{ConnKey, Conns, Slot},
    tickets::Tickets,
    waiting::Waiting,
};
use crate::{
    connection_log::{HandshakeRecord, MAX_PENDING_RECORDS},
    reassembly::Hellos,
    stats::{CloseStyle, Endpoint, Method, Role, ServerStats, Totals},
};

/// Sets keyed by what peers send; see [`crate::stats::Map`] for the hasher.
type Set<K> = HashSet<K, foldhash::fast::RandomState>;

/// Limits of the tracker's tables.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub max_sessions: usize,
    /// Servers with counters of their own; past it the idlest are dropped.
    pub max_servers: usize,
    /// Handshakes kept aside after timing out, for a late ServerHello;
    /// past it the oldest are dropped.
    pub max_timed_out: usize,
    /// A handshake without a ServerHello after this long is `incomplete`
    /// (and a late ServerHello is still classified, and counted `late`).
    pub handshake_timeout_ns: u64,
    /// How long a closed connection is kept to attribute the peer's RST/FIN.
    pub linger_ns: u64,
    /// Keep a [`HandshakeRecord`] of every forgotten connection for
    /// [`Tracker::take_records`] (`--log-handshakes`).
    pub keep_records: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1 << 20,
            max_sessions: 1 << 20,
            // A proxy has tens to hundreds of backends and a few
            // frontends; 4,096 leaves room for large pools while bounding
            // the counters (about 4.5 KB a server, most of it the two
            // latency histograms) and the metrics page.
            max_servers: 4096,
            // A backend that stalls under load times out a burst of
            // handshakes; 8,192 keep a few seconds of a busy proxy's
            // backend handshakes (about 2.5 MB at most).
            max_timed_out: 8192,
            handshake_timeout_ns: 10_000_000_000,
            linger_ns: 5_000_000_000,
            keep_records: false,
        }
    }
}

/// The whole tracker: connections, remembered sessions, per-server stats.
#[derive(Debug)]
pub struct Tracker {
    limits: Limits,
    conns: Conns,
    waiting: Waiting,
    next_id: u64,
    sessions: Sessions,
    tickets: Tickets,
    causes: Causes<ConnKey>,
    /// Causes decided for waiting offers, to be counted (`offers`).
    decided: Vec<Decided<ConnKey>>,
    servers: Servers,
    /// Addresses seen as TLS clients, capped at [`MAX_CLIENT_ADDRS`]: with
    /// the servers, they let `replay` find the proxy's own addresses.
    client_addrs: Set<IpAddr>,
    /// ClientHellos spanning segments, until they are whole.
    hellos: Hellos,
    /// Records of forgotten connections, until the output takes them
    /// (kept only when `Limits::keep_records`). Behind a lock so that the
    /// output can take them through the shared reference the views get
    /// (`App::tracker`); one thread uses it, so it is never contended.
    records: Mutex<Vec<HandshakeRecord>>,
    pub totals: Totals,
}

/// Client addresses remembered for [`Tracker::dual_role_addrs`].
pub const MAX_CLIENT_ADDRS: usize = 65_536;

impl Tracker {
    #[must_use]
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            conns: Conns::new(),
            waiting: Waiting::new(limits.max_timed_out),
            next_id: 0,
            sessions: Sessions::new(limits.max_sessions),
            tickets: Tickets::new(limits.max_sessions),
            causes: Causes::new(limits.max_servers),
            decided: Vec::new(),
            servers: Servers::new(limits.max_servers),
            client_addrs: Set::default(),
            hellos: Hellos::default(),
            records: Mutex::new(Vec::new()),
            totals: Totals::default(),
        }
    }

    /// Moves the records of connections forgotten since the last call into
    /// `out` (`--log-handshakes`). At most [`MAX_PENDING_RECORDS`] wait
    /// between two calls; more are dropped and counted in
    /// `Totals::dropped_records`.
    pub fn take_records(&self, out: &mut Vec<HandshakeRecord>) {
        let mut records = self
            .records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        out.append(&mut records);
    }

    /// Keeps `r` for [`Tracker::take_records`] when records are kept; past
    /// the bound it is dropped and counted.
    fn keep_record(&mut self, r: HandshakeRecord) {
        if !self.limits.keep_records {
            return;
        }
        let records = self
            .records
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if records.len() >= MAX_PENDING_RECORDS {
            self.totals.dropped_records += 1;
            return;
        }
        records.push(r);
    }

    /// Servers seen so far, in a stable order (by role, then address).
    #[must_use]
    pub fn servers(&self) -> Vec<&ServerStats> {
        let mut v: Vec<_> = self.servers.stats().collect();
        v.sort_by_key(|s| (s.role, s.server));
        v
    }

    /// Connections currently tracked.
    #[must_use]
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Forgets all counters (the TUI's reset); connections in flight stay.
    pub fn reset_counters(&mut self) {
        self.servers.clear();
        self.totals = Totals::default();
    }

    /// Labels servers whose role the packet direction could not tell
    /// (offline captures): `is_local(addr)` says whether an address belongs
    /// to the monitored host, or `None` if unknown.
    pub fn assign_roles(&mut self, is_local: impl Fn(&IpAddr) -> Option<bool>) {
        for s in self.servers.stats_mut().filter(|s| s.role == Role::Unknown) {
            match is_local(&s.server.addr) {
                Some(true) => s.role = Role::Frontend,
                Some(false) => s.role = Role::Backend,
                None => {}
            }
        }
    }

    /// Addresses that acted both as a TLS client and as a TLS server: on a
    /// capture taken on a proxy host, the proxy's own.
    #[must_use]
    pub fn dual_role_addrs(&self) -> HashSet<IpAddr> {
        self.servers
            .stats()
            .map(|s| s.server.addr)
            .filter(|a| self.client_addrs.contains(a))
            .collect()
    }

    /// Feeds the next event from the kernel in ring-buffer order, chunks of
    /// split ClientHellos included: the way the daemon and `replay` feed it.
    pub fn on_event(&mut self, d: Decoded) {
        if self.hellos.passes(&d) {
            self.on_ready(&d);
            return;
        }
        for ready in self.hellos.push(d).into_iter().flatten() {
            self.on_ready(&ready);
        }
        self.totals.orphan_chunks = self.hellos.orphan_chunks;
    }

    fn on_ready(&mut self, d: &Decoded) {
        match d {
            Decoded::Tls(h, t) => self.on_tls(h, t),
            Decoded::Teardown(h) => self.on_teardown(h),
            // `Hellos` keeps chunks to itself.
            Decoded::Chunk(..) => {}
        }
    }

    /// Feeds a TLS event that needs no reassembly.
    pub fn on_tls(&mut self, h: &EventHeader, tls: &TlsSummary) {
        self.totals.events += 1;
        let (src, dst) = endpoints(h);
        let key = ConnKey::new(src, dst);
        // Hashed once per event; the slot found serves every step below.
        let hash = self.conns.hash(&key);
        let flags = tls.hello.flags;
        let slot = if flags & hello_flags::MALFORMED != 0 {
            self.totals.malformed_hellos += 1;
            self.find(hash, &key)
        } else if flags & hello_flags::CLIENT_HELLO != 0 {
            Some(self.client_hello(key, hash, (src, dst), h, tls))
        } else {
            let found = self.find(hash, &key);
            if found.is_none() && cut_before_first_message(tls) {
                // The segment ended inside the first handshake message's
                // header, so the kernel could not tell a ClientHello, nor
                // send the rest of it: it is one all the same (the first
                // record of a connection is the client's hello), truncated.
                let mut hello = *tls;
                hello.hello.flags = hello_flags::CLIENT_HELLO | hello_flags::TRUNCATED;
                Some(self.client_hello(key, hash, (src, dst), h, &hello))
            } else {
                found
            }
        };
        let Some(slot) = slot else {
            self.totals.untracked_events += 1;
            return;
        };
        self.segment(slot, src, h, Some(tls));
    }

    /// Feeds a RST/FIN event.
    pub fn on_teardown(&mut self, h: &EventHeader) {
        self.totals.events += 1;
        let (src, dst) = endpoints(h);
        let key = ConnKey::new(src, dst);
        if let Some(slot) = self.find(self.conns.hash(&key), &key) {
            self.segment(slot, src, h, None);
        } else {
            self.totals.untracked_events += 1;
        }
    }

    /// The connection with this key: in the table, or one that timed out
    /// waiting for its ServerHello, which comes back into the table.
    fn find(&mut self, hash: u64, key: &ConnKey) -> Option<Slot> {
        if let Some(slot) = self.conns.find(hash, key) {
            return Some(slot);
        }
        let conn = self.waiting.take(key)?;
        Some(self.insert(hash, conn))
    }

    /// Adds a connection whose key is not in the table, evicting the oldest
    /// when it is full.
    fn insert(&mut self, hash: u64, conn: Conn) -> Slot {
        if self.conns.len() >= self.limits.max_connections
            && let Some(old) = self.conns.remove_oldest()
        {
            // Closed connections only waited for the peer's FIN or RST.
            if !old.lingering() {
                self.totals.evicted_flows += 1;
            }
            let now = old.closed_ns.unwrap_or(old.hello_ns);
            self.forget(old, now);
        }
        self.conns.insert(hash, conn)
    }

    /// Steps the connection in `slot` with a packet from `src`.
    fn segment(&mut self, slot: Slot, src: Endpoint, h: &EventHeader, tls: Option<&TlsSummary>) {
        let conn = self.conns.get(slot);
        let from = conn.peer(src);
        // Only a ServerHello needs this, and it costs a lookup.
        let known = Known {
            issues_tickets: from == Peer::Server
                && tls.is_some_and(|t| t.hello.flags & hello_flags::SERVER_HELLO != 0)
                && self.sessions.issues_tickets(conn.server),
        };
        let seg = Segment {
            from,
            header: h,
            tls,
        };
        let step = machine::step(self.conns.get_mut(slot), &Observation::Segment(seg), known);
        self.record(slot, step, h.ts_ns);
    }

    /// Time passes: handshakes without a ServerHello time out and are put
    /// aside, closed connections are forgotten after their linger time.
    pub fn tick(&mut self, now_ns: u64) {
        for ready in self.hellos.expire(now_ns) {
            self.on_ready(&ready);
        }
        let tick = Observation::Tick {
            now_ns,
            timeout_ns: self.limits.handshake_timeout_ns,
        };
        for slot in 0..self.conns.end() {
            let Some(conn) = self.conns.at_mut(slot) else {
                continue;
            };
            // Most connections have nothing waiting on the clock.
            if conn.waits_for_clock() {
                let step = machine::step(conn, &tick, Known::default());
                self.record(slot, step, now_ns);
            }
            // Recording may have let it go.
            let Some(conn) = self.conns.at_mut(slot) else {
                continue;
            };
            let gone = conn.lingering()
                && conn
                    .closed_ns
                    .is_some_and(|at| now_ns.saturating_sub(at) > self.limits.linger_ns);
            if conn.timed_out() {
                let conn = self.conns.remove(slot);
                if let Some((old, dropped)) = self.waiting.put(conn) {
                    self.totals.evicted_timed_out += u64::from(dropped);
                    self.forget(old, now_ns);
                }
            } else if gone {
                let conn = self.conns.remove(slot);
                self.forget(conn, now_ns);
            }
        }
        self.conns.compact();
        let watched = self.causes.watched(self.servers.stats().map(|s| s.server));
        let mut decided = std::mem::take(&mut self.decided);
        self.causes.tick(&watched, now_ns, &mut decided);
        self.decided = decided;
        self.apply_decided(now_ns);
        self.totals.evicted_evidence = self.causes.evicted;
    }

    /// Returns the slot of the connection the ClientHello belongs to (new,
    /// or one it continues).
    fn client_hello(
        &mut self,
        key: ConnKey,
        hash: u64,
        (src, dst): (Endpoint, Endpoint),
        h: &EventHeader,
        tls: &TlsSummary,
    ) -> Slot {
        let flags = tls.hello.flags;
        if flags & hello_flags::TRUNCATED != 0 {
            self.totals.truncated_hellos += 1;
        }
        if flags & hello_flags::REASSEMBLED != 0 {
            self.totals.reassembled_hellos += 1;
        }
        let existing = match self.conns.find(hash, &key) {
            Some(slot) => Some(slot),
            // A timed-out connection's hello again, or its second hello
            // after a HelloRetryRequest, continues it. Another one is a new
            // connection on a reused port; the old one was counted when it
            // timed out.
            None => match self.waiting.take(&key) {
                Some(old) if old.continued_by(h) => Some(self.insert(hash, old)),
                _ => None,
            },
        };
        // A second ClientHello after a HelloRetryRequest continues its
        // connection; one on an open connection is not plausible (or is
        // encrypted renegotiation misread) and is left to the connection's
        // state machine. After a close, the port was reused: a new
        // connection.
        if let Some(slot) = existing
            && !self.conns.get(slot).reused_by_hello()
        {
            return slot;
        }
        let hello = &tls.hello;
        let tls13 = hello.flags & hello_flags::OFFERS_TLS13 != 0;
        let sid_issued =
            tls13 && SessionKey::id_of(hello).is_some_and(|k| self.sessions.is_issued(dst, k));
        let id = self.next_id;
        self.next_id += 1;
        let conn = Conn::open(id, (src, dst), h, tls, sid_issued);
        if Direction(h.direction) == Direction::UNKNOWN {
            self.totals.direction_unchecked += 1;
        }
        if let Some(slot) = existing {
            let old = self.conns.replace(slot, conn);
            self.forget(old, h.ts_ns);
            slot
        } else {
            self.insert(hash, conn)
        }
    }

    /// Records what one step of the connection in `slot` says, at
    /// `now_ns`: the one place where outcomes become counts. A connection
    /// whose handshake ended without an answer leaves the table here.
    fn record(&mut self, slot: Slot, step: Step, now_ns: u64) {
        // Most packets change nothing that is counted.
        if step.is_empty() {
            return;
        }
        // A skipped packet changed nothing else.
        match step.skipped {
            Some(Skip::WrongDirection) => return self.totals.wrong_direction += 1,
            Some(Skip::Unacknowledged) => return self.totals.unacknowledged += 1,
            None => {}
        }
        let conn = self.conns.get(slot);
        let (server, id) = (conn.server, conn.id);
        for key in step.issued.into_iter().flatten() {
            let lifetime = match key {
                SessionKey::Ticket(_) => step.ticket_lifetime,
                SessionKey::Id(..) => 0,
            };
            if self.sessions.issue(server, key, id, now_ns, lifetime) {
                self.totals.evicted_sessions += 1;
            }
        }
        let judged = match step.outcome {
            Some(Outcome::Completed(n, resumed)) => self.judge(slot, &n, resumed),
            _ => Judgement::default(),
        };
        if let Some(outcome) = step.outcome {
            self.conns.get_mut(slot).counted = Some(match outcome {
                Outcome::Completed(_, Some(_)) => Counted::Resumed,
                Outcome::Completed(_, None) => Counted::Full,
                Outcome::Failed => Counted::Failed,
                Outcome::Incomplete => Counted::Incomplete,
            });
        }
        if step.side_closed == Some(Peer::Client) {
            self.client_ended(slot);
        }
        let conn = self.conns.get(slot);
        if step.answered && self.client_addrs.len() < MAX_CLIENT_ADDRS {
            self.client_addrs.insert(conn.client.addr);
        }
        // A server has counters once it answered. A connection it never
        // answered counts for it only if this host sent the hello (a
        // backend connection): anyone can send this host a ClientHello.
        let server = if conn.answered {
            let (s, evicted) = self.servers.entry(conn.server, conn.role, now_ns);
            self.totals.evicted_servers += evicted;
            Some(s)
        } else if conn.role == Role::Backend {
            self.servers.get_mut(&conn.server, now_ns)
        } else {
            None
        };
        let Some(s) = server else {
            if matches!(step.outcome, Some(Outcome::Failed | Outcome::Incomplete)) {
                self.totals.unanswered_hellos += 1;
            }
            self.leave_if_unanswered(slot, now_ns);
            self.apply_decided(now_ns);
            return;
        };
        s.hrr += u64::from(step.retry);
        match step.rst {
            Some(Peer::Client) => s.rst_by_client += 1,
            Some(Peer::Server) => s.rst_by_server += 1,
            None => {}
        }
        match step.closed {
            Some(CloseStyle::Clean) => s.clean_closes += 1,
            Some(CloseStyle::Unclean) => s.unclean_closes += 1,
            Some(CloseStyle::Unknown) => s.unknown_closes += 1,
            None => {}
        }
        match step.outcome {
            Some(Outcome::Completed(n, resumed)) => count_handshake(s, conn, &n, resumed, judged),
            Some(Outcome::Failed) => s.failed += 1,
            Some(Outcome::Incomplete) => s.incomplete += 1,
            None => {}
        }
        self.leave_if_unanswered(slot, now_ns);
        self.apply_decided(now_ns);
    }

    /// A handshake that ended without an answer has nothing more to count:
    /// its connection leaves the table at once, so that hellos to ports
    /// nobody answers on do not pile up.
    fn leave_if_unanswered(&mut self, slot: Slot, now_ns: u64) {
        if self.conns.get(slot).ended_unanswered() {
            let conn = self.conns.remove(slot);
            self.forget(conn, now_ns);
        }
    }
}

/// The segment started a handshake record but ended inside its first
/// message header, so no message was listed (any other record lists one).
fn cut_before_first_message(tls: &TlsSummary) -> bool {
    tls.n_items == 0 && tls.items_cut == 0
}

/// A completed handshake's counts.
fn count_handshake(
    s: &mut ServerStats,
    conn: &Conn,
    n: &conn::Negotiated,
    resumed: Option<Method>,
    judged: Judgement,
) {
    // The latency as it was, also when the answer came after the timeout.
    let elapsed = n.at_ns.saturating_sub(conn.hello_ns);
    s.late += u64::from(n.late);
    if let Some(m) = resumed {
        s.resumed += 1;
        s.resumed_by.add(m);
        s.handshake_resumed.record(elapsed);
    } else {
        s.full += 1;
        s.handshake_full.record(elapsed);
    }
    let offers = conn.offers(n, resumed);
    if offers.iter().any(|&o| o) {
        s.offered += 1;
        for (m, o) in [Method::SessionId, Method::Ticket, Method::Psk]
            .into_iter()
            .zip(offers)
        {
            if o {
                s.offered_by.add(m);
            }
        }
        if resumed.is_none() {
            s.rejected += 1;
            match judged.origin {
                Origin::Unclean => s.rejected_after_unclean += 1,
                Origin::Clean => s.rejected_after_clean += 1,
                Origin::Unknown => s.rejected_origin_unknown += 1,
            }
            if let Some(cause) = judged.cause {
                s.rejected_by_cause.add(cause);
                if cause == crate::stats::Cause::AfterUnclean && judged.idle {
                    s.rejected_after_idle_unclean += 1;
                }
            }
        }
    }
    if conn.offer.early_data() {
        s.early_data_offered += 1;
    }
    s.count_version(n.version);
    *s.ciphers.entry(n.cipher).or_default() += 1;
    if let Some(sni) = conn.offer.sni.text() {
        s.sni.add(&sni);
    }
    if let Some(alpn) = conn.offer.alpn.text() {
        s.alpn.add(&alpn);
    }
}

fn endpoints(h: &EventHeader) -> (Endpoint, Endpoint) {
    (
        Endpoint::from_wire(h.family, h.src_addr, h.src_port),
        Endpoint::from_wire(h.family, h.dst_addr, h.dst_port),
    )
}
