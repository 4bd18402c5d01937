//! What the tracker makes of offers and of connections' ends: the history
//! of a session (TLS ≤ 1.2, `sessions`) or the candidates that may have
//! delivered a ticket (TLS 1.3, `tickets`), the evidence about the server
//! (`causes`), and, when a connection is forgotten, its record
//! (`connection_log`). These are the tracker's steps around the state
//! machine that need memory across connections.

use monitor_common::{
    close::{LastRecord, close_notify_len, judge},
    tls::{ProtocolVersion, Rules},
};

use super::{
    Tracker,
    causes::{Decided, Facts, Holder, Waiting},
    conn::{Conn, Counted, Negotiated, Peer, Side},
    sessions::{End, Holder as SessionHolder},
    table::Slot,
};
use crate::{
    connection_log::{HandshakeKind, HandshakeRecord},
    stats::{Cause, CloseStyle, Method},
};

/// How the last holder (TLS 1.3: every candidate) of a rejected offer's
/// session ended, for `rejected_after_*`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Origin {
    Unclean,
    /// Clean, or still open.
    Clean,
    #[default]
    Unknown,
}

/// What was judged of a completed handshake's rejected offer.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Judgement {
    pub(super) origin: Origin,
    /// Its cause, unless it waits for evidence.
    pub(super) cause: Option<Cause>,
    /// The unclean holders sent no application data (health checks).
    pub(super) idle: bool,
}

/// The method a ClientHello offered, for the record: a PSK, else a ticket,
/// else a session ID.
fn offered_method(offers: [bool; 3]) -> Option<Method> {
    [Method::SessionId, Method::Ticket, Method::Psk]
        .into_iter()
        .zip(offers)
        .filter(|(_, o)| *o)
        .map(|(m, _)| m)
        .next_back()
}

impl Tracker {
    /// A handshake completed (`resumed` or full after `n`): weighs its
    /// offer against the session's history and the server's evidence, and
    /// makes the connection a candidate for the TLS 1.3 tickets it may now
    /// receive.
    pub(super) fn judge(
        &mut self,
        slot: Slot,
        n: &Negotiated,
        resumed: Option<Method>,
    ) -> Judgement {
        let conn = self.conns.get(slot);
        let offers = conn.offers(n, resumed);
        let (client, server, id, key) = (conn.client, conn.server, conn.id, conn.key());
        let sessions = conn.offer.sessions();
        let ticket_offered = conn.offer.ticket.is_some();
        let mut j = Judgement::default();
        let offered = offered_method(offers);
        if offered.is_some() {
            let (facts, idle) = if n.tls13() {
                let o = self
                    .tickets
                    .offered(client.addr, server, resumed.is_some(), n.at_ns);
                let holder = o.map_or(Holder::Unknown, |o| Holder::of(o.close));
                let facts = Facts {
                    method: Method::Psk,
                    holder,
                    issued: o.map(|o| o.issued_ns),
                    lifetime_s: 0,
                    ticket_server: false,
                    at_ns: n.at_ns,
                };
                (facts, o.is_some_and(|o| o.idle))
            } else {
                let lineage = self.sessions.lineage(server, sessions);
                let (holder, idle) = match lineage.map(|l| l.holder) {
                    Some(SessionHolder::Ended(end)) => {
                        (Holder::of(end.close), end.data == Some(false))
                    }
                    Some(SessionHolder::Open) => (Holder::Clean, false),
                    None => (Holder::Unknown, false),
                };
                let facts = Facts {
                    method: if ticket_offered {
                        Method::Ticket
                    } else {
                        Method::SessionId
                    },
                    holder,
                    issued: lineage.map(|l| l.issued_ns),
                    lifetime_s: lineage.map_or(0, |l| l.lifetime_s),
                    ticket_server: self.sessions.issues_tickets(server),
                    at_ns: n.at_ns,
                };
                (facts, idle)
            };
            let mut decided = std::mem::take(&mut self.decided);
            if resumed.is_some() {
                if !n.tls13() {
                    for k in sessions.into_iter().flatten() {
                        self.sessions.resumed(server, k, id);
                    }
                }
                self.causes.accepted(server, &facts, &mut decided);
            } else {
                j.origin = match facts.holder {
                    Holder::Unclean => Origin::Unclean,
                    Holder::Clean => Origin::Clean,
                    Holder::Unknown => Origin::Unknown,
                };
                j.idle = idle && facts.holder == Holder::Unclean;
                if n.tls13() {
                    if facts.holder == Holder::Unknown {
                        self.totals.tls13_origins_undecided += 1;
                    } else {
                        self.totals.tls13_origins_decided += 1;
                    }
                }
                j.cause =
                    self.causes
                        .rejected(server, &facts, Waiting { key, conn: id }, &mut decided);
            }
            self.decided = decided;
        }
        let tls13 = n.tls13();
        let conn = self.conns.get_mut(slot);
        conn.judged.offered = offered;
        if resumed.is_none() && offered.is_some() {
            conn.judged.cause = j.cause;
            conn.judged.pending = j.cause.is_none();
        }
        if tls13 && !conn.candidate {
            conn.candidate = true;
            if self
                .tickets
                .delivered(client.addr, server, n.at_ns, resumed.is_none())
            {
                self.totals.evicted_ticket_sets += 1;
            }
        }
        j
    }

    /// The client side of the connection in `slot` ended: the sessions it
    /// held, or the tickets it may have received, carry its end.
    pub(super) fn client_ended(&mut self, slot: Slot) {
        let conn = self.conns.get_mut(slot);
        ended(
            &mut self.sessions,
            &mut self.tickets,
            &mut self.totals,
            conn,
        );
    }

    /// Counts and writes into their connections the causes decided for
    /// waiting offers.
    pub(super) fn apply_decided(&mut self, now_ns: u64) {
        if self.decided.is_empty() {
            return;
        }
        for d in std::mem::take(&mut self.decided) {
            self.count_cause(d, now_ns);
        }
    }

    fn count_cause(&mut self, d: Decided<super::table::ConnKey>, now_ns: u64) {
        if let Some(s) = self.servers.get_mut(&d.server, now_ns) {
            s.rejected_by_cause.add(d.cause);
        }
        let key = d.waiting.key;
        if let Some(slot) = self.conns.find(self.conns.hash(&key), &key) {
            let conn = self.conns.get_mut(slot);
            if conn.id == d.waiting.conn {
                conn.judged.cause = Some(d.cause);
                conn.judged.pending = false;
            }
        }
    }

    /// A connection leaves the tracker: what it still owes the history
    /// (its client side's end, its offer's cause) is settled, and its
    /// record kept.
    pub(super) fn forget(&mut self, mut conn: Conn, now_ns: u64) {
        if conn.sides[Peer::Client as usize].end_seq.is_none() {
            ended(
                &mut self.sessions,
                &mut self.tickets,
                &mut self.totals,
                &mut conn,
            );
        }
        if conn.judged.pending {
            let cause = self.causes.decide_now(conn.server, conn.id);
            conn.judged.cause = Some(cause);
            conn.judged.pending = false;
            if let Some(s) = self.servers.get_mut(&conn.server, now_ns) {
                s.rejected_by_cause.add(cause);
            }
        }
        if self.limits.keep_records {
            self.keep_record(record(&conn));
        }
    }

    /// Records of the connections still in the table, as they stand (at
    /// exit: their linger time is not over).
    #[must_use]
    pub fn open_records(&self) -> Vec<HandshakeRecord> {
        let mut out = Vec::new();
        for slot in 0..self.conns.end() {
            if let Some(conn) = self.conns.at(slot) {
                let mut r = record(conn);
                if conn.judged.pending {
                    r.cause = Some(self.causes.would_decide(conn.server));
                }
                out.push(r);
            }
        }
        out
    }
}

/// Connection `conn`'s client side ended (or it is forgotten before it
/// did): the end goes to the sessions it held (TLS ≤ 1.2) or the ticket
/// candidates (TLS 1.3).
fn ended(
    sessions: &mut super::sessions::Sessions,
    tickets: &mut super::tickets::Tickets,
    totals: &mut crate::stats::Totals,
    conn: &mut Conn,
) {
    let end = End {
        close: side_style(conn, Peer::Client),
        data: conn.sides[Peer::Client as usize].sent_data,
    };
    let rules = conn.version().map(|v| ProtocolVersion(v).rules());
    if rules == Some(Rules::Tls12) && conn.counted.is_some() && sessions.ended(conn.id, end) {
        totals.evicted_holders += 1;
    }
    if conn.candidate {
        conn.candidate = false;
        tickets.ended(
            conn.client.addr,
            conn.server,
            may_have_ticket(conn).then_some(end),
        );
    }
}

/// Whether the server may have sent something after its handshake flight
/// (tickets): not if the client's FIN or RST acknowledged exactly that
/// flight's end and the server sent no short record. A health check that
/// resets the connection right after its Finished receives no ticket.
fn may_have_ticket(conn: &Conn) -> bool {
    let [client, server] = &conn.sides;
    !(server.short.is_none() && client.end_ack.is_some() && client.end_ack == server.records_end)
}

/// The close style of side `p`: decided at its FIN or RST, or, for a side
/// that sent neither, what it sent last: an alert (TLS ≤ 1.2), or (TLS
/// 1.3) a record of exactly close_notify's size that ended its stream: its
/// peer's FIN or RST acknowledged it as the last of its bytes, or its peer
/// reset the connection (the load client's close_notify, answered by
/// HAProxy's RST, measured in the proxy lab).
fn side_style(conn: &Conn, p: Peer) -> CloseStyle {
    let side = &conn.sides[p as usize];
    if let Some(close) = side.close {
        return close;
    }
    let other: &Side = &conn.sides[1 - p as usize];
    match conn.phase.negotiated() {
        Some(n) if !n.tls13() && side.alerted => CloseStyle::Clean,
        Some(n) if n.tls13() => match side.short {
            Some((end, len)) if other.end_ack == Some(end) || other.rst.is_some() => {
                match judge(usize::from(len), close_notify_len(n.cipher)) {
                    LastRecord::CloseNotify => CloseStyle::Clean,
                    LastRecord::Ambiguous | LastRecord::NotClose => CloseStyle::Unknown,
                }
            }
            _ => CloseStyle::Unknown,
        },
        _ => CloseStyle::Unknown,
    }
}

/// The record of a connection, as it stands.
fn record(conn: &Conn) -> HandshakeRecord {
    let kind = match conn.counted {
        Some(Counted::Full) => HandshakeKind::Full,
        Some(Counted::Resumed) => HandshakeKind::Resumed,
        Some(Counted::Failed) => HandshakeKind::Failed,
        Some(Counted::Incomplete) | None => HandshakeKind::Incomplete,
    };
    HandshakeRecord {
        client: conn.client,
        server: conn.server,
        role: conn.role,
        start_ns: conn.hello_ns,
        kind,
        version: conn.version().unwrap_or(0),
        offered: conn.judged.offered,
        cause: conn.judged.cause,
        close_client: side_style(conn, Peer::Client),
        close_server: side_style(conn, Peer::Server),
    }
}
