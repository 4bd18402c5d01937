//! One connection's handshake as a state machine.
//!
//! A connection is created by its ClientHello ([`Conn::open`]); after that
//! every packet of it and every tick of the clock is one [`Observation`],
//! and [`step`] is the only thing that changes the connection. It returns
//! what happened ([`Step`]): at most one [`Outcome`] per connection and
//! handshake, plus the facts the tracker records (a HelloRetryRequest, the
//! sessions issued, the close, a reset). `step` reads nothing but the
//! connection, the observation and what the tracker already knows about
//! the server ([`Known`]), and writes nothing but the connection: the
//! tracker records the result in one place. The rules, with their RFC
//! sections, are listed in docs/classification.md.

use monitor_common::{
    close::{
        LAST_RECORD_ALERT, LAST_RECORD_LONGER, LAST_RECORD_NONE, LastRecord, MAX_ALERT_PADDING,
        SHORT_RECORD_MAX, close_notify_len, judge,
    },
    event::{EventHeader, EventKind, Hello, ITEM_OPAQUE, TlsSummary, hello_flags},
    net::{TCP_ACK, TCP_FIN, TCP_RST},
    tls::{ContentType, HandshakeType, ProtocolVersion, RECORD_HEADER_LEN, Rules},
};

use super::{
    conn::{Conn, Last, Negotiated, Offer, Peer, Phase, Side},
    exchange::{Admit, Skip},
    sessions::SessionKey,
};
use crate::stats::{CloseStyle, Method};

/// A packet of the connection, as far as the state machine reads it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Segment<'a> {
    pub(super) from: Peer,
    pub(super) header: &'a EventHeader,
    /// Its TLS records, for a TLS event; `None` for a bare FIN/RST.
    pub(super) tls: Option<&'a TlsSummary>,
}

/// What the state machine is told.
#[derive(Clone, Copy, Debug)]
pub(super) enum Observation<'a> {
    Segment(Segment<'a>),
    /// The clock reached `now_ns`; `timeout_ns` is the handshake timeout
    /// (see [`tick`]).
    Tick {
        now_ns: u64,
        timeout_ns: u64,
    },
}

/// What the tracker knows about the server that the state machine needs.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Known {
    /// The server was seen issuing tickets.
    pub(super) issues_tickets: bool,
}

/// How a handshake ended, to be counted for its server.
#[derive(Clone, Copy, Debug)]
pub(super) enum Outcome {
    /// Completed as far as packets show: full (`None`) or resumed.
    Completed(Negotiated, Option<Method>),
    /// A fatal alert, or a RST, before completion.
    Failed,
    /// Not completed within the timeout, or unable to complete any more (a
    /// FIN from a side that still owed a message).
    Incomplete,
}

/// What one observation changed, for the tracker to record.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Step {
    pub(super) outcome: Option<Outcome>,
    /// A HelloRetryRequest was sent (RFC 8446 §4.1.4).
    pub(super) retry: bool,
    /// Sessions the server issued: a TLS ≤ 1.2 session ID (full handshake)
    /// and a ticket (NewSessionTicket).
    pub(super) issued: [Option<SessionKey>; 2],
    /// The issued ticket's lifetime hint in seconds (RFC 5077 §3.3).
    pub(super) ticket_lifetime: u32,
    /// The connection's first FIN or RST, and how it closed: TLS ≤ 1.2,
    /// clean if either side had sent an alert record; TLS 1.3, the style
    /// of the side that sent it ([`side_close`]).
    pub(super) closed: Option<CloseStyle>,
    /// This side's first FIN or RST: its close style is decided.
    pub(super) side_closed: Option<Peer>,
    /// This side sent its first RST.
    pub(super) rst: Option<Peer>,
    /// The server answered the ClientHello for the first time.
    pub(super) answered: bool,
    /// The packet cannot belong to the exchange and was not looked at.
    pub(super) skipped: Option<Skip>,
}

impl Step {
    /// Nothing to record.
    pub(super) fn is_empty(&self) -> bool {
        self.outcome.is_none()
            && !self.retry
            && self.issued == [None, None]
            && self.closed.is_none()
            && self.side_closed.is_none()
            && self.rst.is_none()
            && !self.answered
            && self.skipped.is_none()
    }
}

/// The transition function: applies one observation to the connection and
/// says what happened.
pub(super) fn step(c: &mut Conn, obs: &Observation<'_>, known: Known) -> Step {
    let mut out = Step::default();
    match *obs {
        Observation::Segment(seg) => {
            let short = seg.header.kind == EventKind::SHORT_RECORD.0;
            // A short record matters only once the handshake has begun on
            // both sides; before the server's answer it could pass for one
            // on a backend connection.
            if short && !c.answered {
                return out;
            }
            let records = seg.tls.is_some_and(|t| t.n_items > 0);
            match c
                .exchange
                .admit(seg.from == Peer::Client, c.answered, seg.header, records)
            {
                Admit::Copy => return out,
                Admit::Skip(why) => {
                    out.skipped = Some(why);
                    return out;
                }
                Admit::Process { answer } => {
                    c.answered |= answer;
                    out.answered = answer;
                }
            }
            if short {
                short_record(c.side(seg.from), seg.header);
                return out;
            }
            if let Some(tls) = seg.tls {
                match seg.from {
                    Peer::Client => client_records(c, tls, &mut out),
                    Peer::Server => server_records(c, &seg, tls, known, &mut out),
                }
                records_seen(c.side(seg.from), seg.header);
                complete(c, &mut out);
            }
            tcp_flags(c, &seg, &mut out);
            // A FIN closes one direction only (RFC 9293 §3.6): the
            // handshake goes on while the side that closed owes nothing.
            if c.stalled() {
                end(c, Outcome::Incomplete, &mut out);
            }
        }
        Observation::Tick { now_ns, timeout_ns } => tick(c, now_ns, timeout_ns, &mut out),
    }
    out
}

/// The clock: a handshake without a ServerHello `timeout_ns` after its
/// ClientHello is counted incomplete, and its connection keeps waiting for
/// a late one; a handshake that has not completed `timeout_ns` after its
/// connection began closing is incomplete.
fn tick(c: &mut Conn, now_ns: u64, timeout_ns: u64, out: &mut Step) {
    match c.phase {
        Phase::Hello {
            retried,
            timed_out: false,
        } if now_ns.saturating_sub(c.hello_ns) > timeout_ns => {
            c.phase = Phase::Hello {
                retried,
                timed_out: true,
            };
            out.outcome = Some(Outcome::Incomplete);
        }
        Phase::Shape(_) | Phase::Decided(..)
            if c.closed_ns
                .is_some_and(|at| now_ns.saturating_sub(at) > timeout_ns) =>
        {
            end(c, Outcome::Incomplete, out);
        }
        _ => {}
    }
}

/// Ends the handshake without completion (`how` is `Failed` or
/// `Incomplete`; completion goes through [`complete`]). Counted once: not
/// when the timeout counted it incomplete already.
fn end(c: &mut Conn, how: Outcome, out: &mut Step) {
    if !c.phase.in_handshake() {
        return;
    }
    let counted = c.phase.counted_incomplete();
    c.phase = Phase::Over(c.phase.negotiated().copied());
    if !counted {
        out.outcome = Some(how);
    }
}

/// The records of a summary: content type, detail, and whether it is a
/// plaintext alert of level warning.
fn items(tls: &TlsSummary) -> impl Iterator<Item = (ContentType, u8, bool)> + '_ {
    let n = usize::from(tls.n_items).min(tls.items.len());
    (0..).zip(&tls.items[..n]).map(|(i, &it)| {
        let warning = i < 8 && tls.warning_alerts & (1 << i) != 0;
        (ContentType((it >> 8) as u8), (it & 0xff) as u8, warning)
    })
}

fn client_records(c: &mut Conn, tls: &TlsSummary, out: &mut Step) {
    // A second ClientHello after a HelloRetryRequest (RFC 8446 §4.1.2)
    // continues the same handshake; its PSK offer counts. Any other
    // ClientHello on the connection is a retransmission or not plausible.
    if tls.hello.flags & hello_flags::CLIENT_HELLO != 0
        && matches!(c.phase, Phase::Hello { retried: true, .. })
    {
        c.offer.flags |= tls.hello.flags & hello_flags::PSK;
    }
    for (ct, detail, warning) in items(tls) {
        record_kind(c.side(Peer::Client), ct, detail);
        if ct == ContentType::CHANGE_CIPHER_SPEC {
            c.side(Peer::Client).ccs = true;
        } else if ct == ContentType::ALERT {
            alert(c, Peer::Client, detail, warning, out);
        }
    }
}

fn server_records(c: &mut Conn, seg: &Segment<'_>, tls: &TlsSummary, known: Known, out: &mut Step) {
    let hello = &tls.hello;
    let mut after_hello = false;
    let mut ticket_issued = false;
    for (ct, detail, warning) in items(tls) {
        record_kind(c.side(Peer::Server), ct, detail);
        if ct == ContentType::CHANGE_CIPHER_SPEC {
            decide_shape(c, true);
            c.side(Peer::Server).ccs = true;
        } else if ct == ContentType::ALERT {
            alert(c, Peer::Server, detail, warning, out);
        } else if ct == ContentType::HANDSHAKE && detail != ITEM_OPAQUE && server_plaintext(c) {
            match HandshakeType(detail) {
                HandshakeType::SERVER_HELLO
                    if matches!(c.phase, Phase::Hello { .. })
                        && hello.flags & hello_flags::SERVER_HELLO != 0 =>
                {
                    if hello.flags & hello_flags::HRR != 0 {
                        // Classified from the second ServerHello
                        // (RFC 8446 §4.1.4).
                        out.retry = true;
                        c.phase = Phase::Hello {
                            retried: true,
                            timed_out: c.phase.counted_incomplete(),
                        };
                    } else {
                        server_hello(c, seg.header.ts_ns, hello, known);
                        after_hello = true;
                    }
                }
                HandshakeType::NEW_SESSION_TICKET => {
                    decide_shape(c, true);
                    ticket_issued |= hello.flags & hello_flags::NEW_TICKET != 0;
                }
                HandshakeType::CERTIFICATE
                | HandshakeType::SERVER_KEY_EXCHANGE
                | HandshakeType::CERTIFICATE_REQUEST
                | HandshakeType::SERVER_HELLO_DONE
                | HandshakeType::CERTIFICATE_STATUS => decide_shape(c, false),
                _ => {}
            }
        }
    }
    // The event carries one ticket id: several NewSessionTicket items in it
    // issue the same key.
    out.issued[1] = ticket_issued.then_some(SessionKey::Ticket(hello.ticket_id));
    out.ticket_lifetime = hello.ticket_lifetime;
    // A full TLS ≤ 1.2 handshake establishes the session ID the server
    // chose (RFC 5246 §7.4.1.3).
    let full_so_far = match c.phase {
        Phase::Shape(n) | Phase::Decided(n, None) => !n.tls13(),
        _ => false,
    };
    if after_hello && full_so_far {
        out.issued[0] = SessionKey::id_of(hello);
    }
}

/// Whether the server's handshake records can still be read. After a
/// TLS ≤ 1.2 ChangeCipherSpec they are encrypted (RFC 5246 §7.1). A TLS 1.3
/// server's compatibility CCS after a HelloRetryRequest (RFC 8446 §D.4) is
/// followed by a plaintext second ServerHello, hence the phase check.
fn server_plaintext(c: &Conn) -> bool {
    matches!(c.phase, Phase::Hello { .. }) || !c.sides[Peer::Server as usize].ccs
}

/// Notes the kind of record a side sent.
fn record_kind(side: &mut Side, ct: ContentType, detail: u8) {
    side.last = match ct {
        ContentType::HANDSHAKE => Last::Handshake,
        ContentType::CHANGE_CIPHER_SPEC => Last::ChangeCipherSpec,
        ContentType::ALERT => Last::Alert((detail != ITEM_OPAQUE).then_some(detail)),
        _ => Last::ApplicationData,
    };
}

/// close_notify and user_canceled (RFC 8446 §6.1, RFC 5246 §7.2.1).
const CLOSE_NOTIFY: u8 = 0;
const USER_CANCELED: u8 = 90;

/// An alert from `from`; `warning` when it is a plaintext alert of level
/// warning.
fn alert(c: &mut Conn, from: Peer, detail: u8, warning: bool, out: &mut Step) {
    c.side(from).alerted = true;
    // Encrypted alerts come after the handshake (close_notify).
    if detail == ITEM_OPAQUE {
        return;
    }
    // A fatal alert before the handshake finished means it failed (RFC
    // 5246 §7.2.2). A warning does not end the connection (RFC 5246 §7.2:
    // RFC 6066 §3's unrecognized_name is one a server may send before its
    // ServerHello), except the closures close_notify and user_canceled. In
    // TLS 1.3 every other alert is fatal whatever its level (RFC 8446 §6).
    let closure = detail == CLOSE_NOTIFY || detail == USER_CANCELED;
    // A HelloRetryRequest exists only in TLS 1.3 (RFC 8446 §4.1.4).
    let tls13 = matches!(c.phase, Phase::Hello { retried: true, .. })
        || c.phase.negotiated().is_some_and(Negotiated::tls13);
    if !warning || closure || tls13 {
        end(c, Outcome::Failed, out);
    }
}

/// The ServerHello: version, cipher, and for TLS 1.3 or a session-ID echo
/// already the outcome.
fn server_hello(c: &mut Conn, at_ns: u64, hello: &Hello, known: Known) {
    // RFC 8446 §4.2.1: the version is in supported_versions when present.
    let version = if hello.selected_version != 0 {
        hello.selected_version
    } else {
        hello.legacy_version
    };
    let n = Negotiated {
        version,
        cipher: hello.cipher_suite,
        at_ns,
        ticket_ext: hello.flags & hello_flags::TICKET_EXT != 0,
        issues_tickets: known.issues_tickets,
        late: c.phase.counted_incomplete(),
    };
    if n.tls13() {
        // RFC 8446 §4.2.11: the server accepts a PSK by echoing
        // pre_shared_key in its ServerHello.
        let psk = hello.flags & hello_flags::PSK != 0;
        c.phase = Phase::Decided(n, psk.then_some(Method::Psk));
        return;
    }
    // TLS ≤ 1.2: an echoed session ID without a ticket alongside was a
    // session-ID offer even from a TLS 1.3-capable client (RFC 5246
    // §7.4.1.3: the server found it in its cache).
    let echoed = c.offer.sid.is_some() && c.offer.sid == SessionKey::id_of(hello);
    if echoed {
        c.offer.by_sid |= c.offer.ticket.is_none();
        c.phase = Phase::Decided(n, Some(resumption_method(&c.offer, &n)));
    } else {
        c.phase = Phase::Shape(n);
    }
}

/// RFC 5077 §3.4: a server accepting a ticket echoes the client's session
/// ID, so an echo alone does not tell the method. A ticket offered to a
/// server that uses tickets is taken as the method.
fn resumption_method(o: &Offer, n: &Negotiated) -> Method {
    let ticket_server = n.ticket_ext || n.issues_tickets;
    if o.ticket.is_some() && (ticket_server || o.sid.is_none() || !o.by_sid) {
        Method::Ticket
    } else {
        Method::SessionId
    }
}

/// RFC 5246 §7.3: in an abbreviated handshake the server's ServerHello is
/// followed by ChangeCipherSpec (RFC 5077 §3.1: or by NewSessionTicket);
/// in a full one by Certificate, ServerKeyExchange or ServerHelloDone.
fn decide_shape(c: &mut Conn, abbreviated: bool) {
    if let Phase::Shape(n) = c.phase {
        let method = abbreviated.then(|| resumption_method(&c.offer, &n));
        c.phase = Phase::Decided(n, method);
    }
}

/// Counts the handshake once its outcome is certain and it completed.
/// TLS 1.3: nothing after the ServerHello is visible, so it counts there.
/// TLS ≤ 1.2: both ChangeCipherSpecs mean both Finished follow.
fn complete(c: &mut Conn, out: &mut Step) {
    let Phase::Decided(n, method) = c.phase else {
        return;
    };
    let [client, server] = c.sides;
    if n.tls13() || client.ccs && server.ccs {
        c.phase = Phase::Over(Some(n));
        out.outcome = Some(Outcome::Completed(n, method));
    }
}

fn tcp_flags(c: &mut Conn, seg: &Segment<'_>, out: &mut Step) {
    let h = seg.header;
    let flags = h.tcp_flags;
    if flags & (TCP_RST | TCP_FIN) == 0 {
        return;
    }
    let first = c.sides[seg.from as usize].end_seq.is_none();
    // An alert record found at the end of the payload, behind data
    // (`close::last_record`): a TLS ≤ 1.2 close_notify.
    if h.kind == EventKind::TEARDOWN.0
        && h.last_record != LAST_RECORD_LONGER
        && h.last_record & LAST_RECORD_ALERT != 0
    {
        c.side(seg.from).alerted = true;
    }
    if first {
        let close = side_close(c, seg.from, h);
        let side = c.side(seg.from);
        side.close = Some(close);
        side.sent_data = sent_data(side, h);
        side.end_seq = Some(h.seq);
        side.end_ack = (flags & TCP_ACK != 0).then_some(h.ack);
        out.side_closed = Some(seg.from);
    }
    let side = c.side(seg.from);
    let last = side.last;
    if flags & TCP_RST != 0 && side.rst.is_none() {
        side.rst = Some(last);
        out.rst = Some(seg.from);
    }
    if flags & TCP_FIN != 0 && side.fin.is_none() {
        side.fin = Some(last);
    }
    // A reset aborts the whole connection (RFC 9293 §3.10.7): a handshake
    // still under way failed. A FIN is settled by `Conn::stalled`.
    if flags & TCP_RST != 0 {
        end(c, Outcome::Failed, out);
    }
    if c.closed_ns.is_some() {
        return;
    }
    c.closed_ns = Some(h.ts_ns);
    // TLS ≤ 1.2 sends close_notify as an alert record (RFC 5246 §7.2.1);
    // without one before the first FIN/RST the close is unclean and
    // OpenSSL-based servers drop the session. TLS 1.3 encrypts it (RFC
    // 8446 §6.1): the closing side's last record tells (`side_close`).
    out.closed = match c.version().map(|v| ProtocolVersion(v).rules()) {
        Some(Rules::Tls12) => Some(if c.sides.iter().any(|s| s.alerted) {
            CloseStyle::Clean
        } else {
            CloseStyle::Unclean
        }),
        Some(Rules::Tls13) => c.sides[seg.from as usize].close,
        _ => None,
    };
}

/// A side's segments with TLS records: one that starts past the end of its
/// last such segment follows bytes the kernel did not report, application
/// data.
fn records_seen(side: &mut Side, h: &EventHeader) {
    // Sequence numbers compare modulo 2^32 (RFC 9293 §3.4): a segment
    // at or before the end (the ClientHello itself, a retransmission)
    // leaves no gap.
    let ahead = |end: u32| h.seq.wrapping_sub(end).cast_signed() > 0;
    if side.records_end.is_some_and(ahead) {
        side.gap = true;
    }
    let end = h.seq.wrapping_add(h.payload_len);
    if side
        .records_end
        .is_none_or(|old| end.wrapping_sub(old).cast_signed() > 0)
    {
        side.records_end = Some(end);
    }
}

/// A side's short record: a TLS 1.3 close_notify, padded or not, if its
/// FIN or RST follows it directly.
fn short_record(side: &mut Side, h: &EventHeader) {
    side.last = Last::ApplicationData;
    side.short = Some((h.seq.wrapping_add(h.payload_len), h.last_record));
}

/// How side `from` ended its TLS stream, at its first FIN or RST `h`
/// (docs/classification.md, "TLS 1.3 closes").
///
/// * TLS ≤ 1.2: clean if it sent an alert record (close_notify is one,
///   RFC 5246 §7.2.1), also one found at the end of a FIN segment's
///   payload behind data (`tcp_flags` notes it).
/// * TLS 1.3: the length of the last record it sent. A FIN or RST with
///   payload carries it (the kernel found it from the end); a bare one
///   follows the side's last short record if that ended exactly where the
///   FIN or RST begins, and otherwise the side's last segment was not a
///   short record, so its last record cannot have been a close_notify.
/// * Before a ServerHello every record is plaintext: an alert or nothing.
pub(super) fn side_close(c: &Conn, from: Peer, h: &EventHeader) -> CloseStyle {
    let side = &c.sides[from as usize];
    let Some(n) = c.phase.negotiated() else {
        return if side.alerted {
            CloseStyle::Clean
        } else {
            CloseStyle::Unclean
        };
    };
    match ProtocolVersion(n.version).rules() {
        Rules::Tls12 => {
            if side.alerted {
                CloseStyle::Clean
            } else {
                CloseStyle::Unclean
            }
        }
        Rules::Tls13 => tls13_close(side, h, close_notify_len(n.cipher)),
        Rules::Unknown => CloseStyle::Unknown,
    }
}

fn tls13_close(side: &Side, h: &EventHeader, close_len: usize) -> CloseStyle {
    let style = |len: usize| match judge(len, close_len) {
        LastRecord::CloseNotify => CloseStyle::Clean,
        LastRecord::Ambiguous => CloseStyle::Unknown,
        LastRecord::NotClose => CloseStyle::Unclean,
    };
    if h.payload_len == 0 {
        return match side.short {
            Some((end, len)) if end == h.seq => style(usize::from(len)),
            // A RST without ACK is a host's reply to a segment for a
            // connection it no longer has: its sequence number is that
            // segment's acknowledgment (RFC 9293 §3.10.7.1), not where
            // this side's stream ended.
            _ if h.tcp_flags & (TCP_RST | TCP_ACK) == TCP_RST => CloseStyle::Unknown,
            _ => CloseStyle::Unclean,
        };
    }
    if h.kind != EventKind::TEARDOWN.0 {
        // A FIN on a segment that starts with a handshake or alert record:
        // not how a TLS 1.3 stream ends after its handshake.
        return CloseStyle::Unknown;
    }
    match h.last_record {
        LAST_RECORD_NONE => CloseStyle::Unknown,
        // No record of close_notify size ends the payload: its last record
        // is longer than any, unless the payload is too short to hold one
        // (it continues a record that began earlier).
        LAST_RECORD_LONGER => {
            if h.payload_len as usize > RECORD_HEADER_LEN + close_len + MAX_ALERT_PADDING {
                CloseStyle::Unclean
            } else {
                CloseStyle::Unknown
            }
        }
        n if n & LAST_RECORD_ALERT != 0 => CloseStyle::Unknown,
        n => style(usize::from(n)),
    }
}

/// Whether a side sent application data before its first FIN or RST `h`:
/// bytes between its handshake records, or between the last of them and
/// the close, other than a close_notify-sized record.
fn sent_data(side: &Side, h: &EventHeader) -> Option<bool> {
    /// A record header's length, as a sequence-number distance.
    #[expect(clippy::cast_possible_truncation, reason = "5")]
    const HEADER: u32 = RECORD_HEADER_LEN as u32;
    let records_end = side.records_end?;
    if side.gap {
        return Some(true);
    }
    let data_end = if h.payload_len == 0 {
        match side.short {
            Some((end, len)) if end == h.seq => end.wrapping_sub(u32::from(len) + HEADER),
            _ => h.seq,
        }
    } else if h.kind == EventKind::TEARDOWN.0
        && usize::from(h.last_record) <= SHORT_RECORD_MAX
        && h.payload_len == u32::from(h.last_record) + HEADER
    {
        h.seq
    } else if h.kind == EventKind::TLS.0 {
        // Its records were just seen: `records_end` is this segment's end.
        h.seq.wrapping_add(h.payload_len)
    } else {
        return Some(true);
    };
    Some(data_end != records_end)
}
