//! One connection's state: what the ClientHello offered, what the
//! ServerHello settled, where the handshake stands ([`Phase`]), what each
//! side sent, and what the TCP exchange showed. Only
//! [`super::machine::step`] changes it after [`Conn::open`].

use std::borrow::Cow;

use monitor_common::{
    event::{ALPN_MAX, Direction, EventHeader, SNI_MAX, TICKET_ID_LEN, TlsSummary, hello_flags},
    tls::{ProtocolVersion, Rules},
};

use super::{exchange::Exchange, sessions::SessionKey, table::ConnKey};
use crate::stats::{Cause, CloseStyle, Endpoint, Method, Role};

/// Which end of the connection sent a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Peer {
    Client,
    Server,
}

/// A name (SNI, ALPN) as the kernel copied it, kept inline in the
/// connection and turned into text only when the handshake is counted.
/// Two `String`s cost two allocations per ClientHello and, with their
/// headers and the allocator's minimum chunk, more memory than these bytes.
#[derive(Clone, Copy, Debug)]
pub(super) struct Name<const N: usize> {
    bytes: [u8; N],
    len: u8,
    /// The kernel had to cut the name (`hello_flags::NAME_CUT`).
    cut: bool,
}

impl<const N: usize> Name<N> {
    /// `flags` are the hello's: the one `NAME_CUT` bit covers SNI and ALPN
    /// alike, so a name is taken as cut when the bit is set and the name
    /// fills its whole buffer (a name that fills it exactly, beside one
    /// that was cut, is marked too: the kernel cannot tell them apart).
    pub(super) fn new(bytes: &[u8; N], len: u8, flags: u16) -> Self {
        Self {
            bytes: *bytes,
            len,
            cut: flags & hello_flags::NAME_CUT != 0 && usize::from(len) >= N,
        }
    }

    /// The name as text that is safe to show anywhere (`escape`).
    ///
    /// Nearly every name is printable ASCII without a backslash, which
    /// `escape` leaves as it is: that case is borrowed, because escaping
    /// allocated for every character and was, with the allocator, the
    /// largest cost of counting a handshake.
    pub(super) fn text(&self) -> Option<Cow<'_, str>> {
        let n = usize::from(self.len).min(N);
        let bytes = &self.bytes[..n];
        if n == 0 {
            None
        } else if self.cut {
            // Shown as cut: a reader must not take it for the whole name.
            Some(Cow::Owned(crate::escape::escape(bytes) + "…"))
        } else if bytes
            .iter()
            .all(|&b| (0x20..0x7f).contains(&b) && b != b'\\')
            && let Ok(plain) = std::str::from_utf8(bytes)
        {
            Some(Cow::Borrowed(plain))
        } else {
            Some(Cow::Owned(crate::escape::escape(bytes)))
        }
    }
}

/// What the client's ClientHello offered.
#[derive(Clone, Copy, Debug)]
pub(super) struct Offer {
    /// [`hello_flags`] of the ClientHello (PSK, EARLY_DATA, TICKET_OFFERED…);
    /// a second ClientHello after a HelloRetryRequest adds its PSK flag.
    pub(super) flags: u16,
    /// The client's session ID, offered or not.
    pub(super) sid: Option<SessionKey>,
    /// Whether `sid` is a resumption offer (see [`Conn::open`]).
    pub(super) by_sid: bool,
    pub(super) ticket: Option<[u8; TICKET_ID_LEN]>,
    pub(super) sni: Name<SNI_MAX>,
    pub(super) alpn: Name<ALPN_MAX>,
}

impl Offer {
    pub(super) fn early_data(&self) -> bool {
        self.flags & hello_flags::EARLY_DATA != 0
    }

    pub(super) fn psk(&self) -> bool {
        self.flags & hello_flags::PSK != 0
    }

    /// The sessions offered by ID or ticket (TLS ≤ 1.2), for blame.
    pub(super) fn sessions(&self) -> [Option<SessionKey>; 2] {
        [
            self.sid.filter(|_| self.by_sid),
            self.ticket.map(SessionKey::Ticket),
        ]
    }
}

/// What the ServerHello settled.
#[derive(Clone, Copy, Debug)]
pub(super) struct Negotiated {
    pub(super) version: u16,
    pub(super) cipher: u16,
    /// When the ServerHello came.
    pub(super) at_ns: u64,
    /// The ServerHello carried session_ticket (RFC 5077 §3.2).
    pub(super) ticket_ext: bool,
    /// tlsmon had seen this server issue tickets before the ServerHello.
    pub(super) issues_tickets: bool,
    /// The ServerHello came after the handshake timeout, which had counted
    /// the handshake incomplete: its completion is counted as late, its
    /// end not again.
    pub(super) late: bool,
}

impl Negotiated {
    /// TLS 1.3's rules: PSK, and nothing to see after the ServerHello.
    /// For TLS 1.3, its drafts and vendors' variants, and for a version
    /// tlsmon cannot place: TLS ≤ 1.2's session-ID echo must never be
    /// applied to those (a draft's middlebox-compatibility echo read as a
    /// resumption, issue 17); an unknown version is most likely a
    /// descendant of TLS 1.3, and its ServerHello says whether it took a
    /// PSK the way TLS 1.3's does.
    pub(super) fn tls13(&self) -> bool {
        ProtocolVersion(self.version).rules() != Rules::Tls12
    }
}

/// Where a connection's handshake stands.
#[derive(Clone, Copy, Debug)]
pub(super) enum Phase {
    /// ClientHello seen, waiting for the ServerHello. `retried`: a
    /// HelloRetryRequest came; the second ClientHello and ServerHello are
    /// due (RFC 8446 §4.1.4). `timed_out`: the handshake timeout passed
    /// and counted it incomplete, but a late ServerHello is still
    /// classified (issue 17: the timeout decides when to stop waiting, not
    /// what came).
    Hello { retried: bool, timed_out: bool },
    /// TLS ≤ 1.2 ServerHello without a session-ID echo: the server's next
    /// message tells full from abbreviated (RFC 5246 §7.3).
    Shape(Negotiated),
    /// Full or resumed (by which method) is known; TLS ≤ 1.2 waits for
    /// both ChangeCipherSpecs.
    Decided(Negotiated, Option<Method>),
    /// Counted, failed or incomplete; what the ServerHello settled, if one
    /// came.
    Over(Option<Negotiated>),
}

impl Phase {
    pub(super) fn negotiated(&self) -> Option<&Negotiated> {
        match self {
            Self::Hello { .. } | Self::Over(None) => None,
            Self::Shape(n) | Self::Decided(n, _) | Self::Over(Some(n)) => Some(n),
        }
    }

    pub(super) fn in_handshake(&self) -> bool {
        !matches!(self, Self::Over(..))
    }

    /// The handshake timeout already counted this handshake incomplete.
    pub(super) fn counted_incomplete(&self) -> bool {
        match self {
            Self::Hello { timed_out, .. } => *timed_out,
            Self::Shape(n) | Self::Decided(n, _) => n.late,
            Self::Over(_) => false,
        }
    }
}

/// The last kind of record a side was seen sending.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Last {
    #[default]
    Nothing,
    Handshake,
    ChangeCipherSpec,
    /// A plaintext alert with its description, or an encrypted one.
    Alert(Option<u8>),
    ApplicationData,
}

/// What one side of the connection has sent, as far as it matters for the
/// handshake and the close.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Side {
    /// ChangeCipherSpec sent: in TLS ≤ 1.2 its Finished follows, encrypted
    /// (RFC 5246 §7.1), and its handshake records can no longer be read.
    pub(super) ccs: bool,
    /// An alert record sent (close_notify is one, RFC 5246 §7.2.1).
    pub(super) alerted: bool,
    pub(super) last: Last,
    /// FIN sent, and what this side had sent last before it.
    pub(super) fin: Option<Last>,
    /// RST sent, and what this side had sent last before it.
    pub(super) rst: Option<Last>,
    /// The sequence number just past this side's last segment that started
    /// with a handshake, change_cipher_spec or alert record (the client's:
    /// past its ClientHello at first): what it sent after that, up to the
    /// next such segment, was application data the kernel did not report.
    pub(super) records_end: Option<u32>,
    /// A segment of this side started past `records_end`: it sent
    /// application data.
    pub(super) gap: bool,
    /// Its last short record (`EventKind::SHORT_RECORD`): the sequence
    /// number just past it, and its length.
    pub(super) short: Option<(u32, u8)>,
    /// Its first FIN or RST: the sequence number and, with ACK, the
    /// acknowledgment number it carried.
    pub(super) end_seq: Option<u32>,
    pub(super) end_ack: Option<u32>,
    /// How it ended its TLS stream, decided at its first FIN or RST
    /// (`machine::side_close`).
    pub(super) close: Option<CloseStyle>,
    /// Whether it sent application data before that (a health check sends
    /// none), when the sequence numbers tell.
    pub(super) sent_data: Option<bool>,
}

/// One TCP connection carrying a TLS handshake.
#[derive(Clone, Debug)]
pub(super) struct Conn {
    pub(super) id: u64,
    pub(super) client: Endpoint,
    pub(super) server: Endpoint,
    pub(super) role: Role,
    /// When the (first) ClientHello was seen.
    pub(super) hello_ns: u64,
    pub(super) offer: Offer,
    pub(super) exchange: Exchange,
    /// The server answered the ClientHello (see [`super::exchange`]).
    pub(super) answered: bool,
    pub(super) phase: Phase,
    pub(super) sides: [Side; 2],
    /// When the connection's first FIN or RST came.
    pub(super) closed_ns: Option<u64>,
    /// What was counted for the handshake, for the connection's record.
    pub(super) counted: Option<Counted>,
    pub(super) judged: Judged,
    /// Registered as a connection that may have delivered TLS 1.3 tickets
    /// (`tickets`), until its client side's end is known.
    pub(super) candidate: bool,
}

/// What was counted for a connection's handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Counted {
    Full,
    Resumed,
    Incomplete,
    Failed,
}

/// What tlsmon made of a connection's offer, for its record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Judged {
    /// The method the ClientHello offered, if any.
    pub(super) offered: Option<Method>,
    /// The cause of a rejected offer, once decided.
    pub(super) cause: Option<Cause>,
    /// A rejected offer whose cause waits for evidence (`causes`).
    pub(super) pending: bool,
}

impl Conn {
    /// The connection a ClientHello opens. `sid_issued` says whether the
    /// server was seen issuing the hello's session ID.
    pub(super) fn open(
        id: u64,
        (client, server): (Endpoint, Endpoint),
        h: &EventHeader,
        tls: &TlsSummary,
        sid_issued: bool,
    ) -> Self {
        let hello = &tls.hello;
        let role = match Direction(h.direction) {
            Direction::EGRESS => Role::Backend,
            Direction::INGRESS => Role::Frontend,
            _ => Role::Unknown,
        };
        let sid = SessionKey::id_of(hello);
        // RFC 8446 §D.4: a TLS 1.3 client fills legacy_session_id with a
        // random value for middlebox compatibility; that is not an offer.
        // When such a client faces a TLS 1.2 server the ID is only an offer
        // if this server issued it (checked again at the ServerHello).
        let by_sid = sid.is_some() && (hello.flags & hello_flags::OFFERS_TLS13 == 0 || sid_issued);
        Self {
            id,
            client,
            server,
            role,
            hello_ns: h.ts_ns,
            offer: Offer {
                flags: hello.flags,
                sid,
                by_sid,
                ticket: (hello.flags & hello_flags::TICKET_OFFERED != 0).then_some(hello.ticket_id),
                sni: Name::new(&hello.sni, hello.sni_len, hello.flags),
                alpn: Name::new(&hello.alpn, hello.alpn_len, hello.flags),
            },
            exchange: Exchange::new(h, tls),
            answered: false,
            phase: Phase::Hello {
                retried: false,
                timed_out: false,
            },
            sides: [
                Side {
                    records_end: Some(Exchange::hello_end(h, tls)),
                    ..Side::default()
                },
                Side::default(),
            ],
            closed_ns: None,
            counted: None,
            candidate: false,
            judged: Judged::default(),
        }
    }

    pub(super) fn key(&self) -> ConnKey {
        ConnKey::new(self.client, self.server)
    }

    /// `self.key() == *key` without ordering the endpoints again: this
    /// runs on every probe of the index.
    pub(super) fn has_key(&self, key: &ConnKey) -> bool {
        let (a, b) = key.pair();
        (self.client == a && self.server == b) || (self.client == b && self.server == a)
    }

    pub(super) fn peer(&self, src: Endpoint) -> Peer {
        if src == self.server {
            Peer::Server
        } else {
            Peer::Client
        }
    }

    pub(super) fn side(&mut self, p: Peer) -> &mut Side {
        &mut self.sides[p as usize]
    }

    /// The negotiated version, once a ServerHello came.
    pub(super) fn version(&self) -> Option<u16> {
        self.phase.negotiated().map(|n| n.version)
    }

    /// Which methods the ClientHello offered, for the negotiated version:
    /// [session ID, ticket, PSK].
    pub(super) fn offers(&self, n: &Negotiated, resumed: Option<Method>) -> [bool; 3] {
        let o = &self.offer;
        let mut offered = if n.tls13() {
            [false, false, o.psk()]
        } else {
            [o.by_sid, o.ticket.is_some(), false]
        };
        // A resumption was necessarily offered, even when the part of the
        // ClientHello carrying the offer was in a segment tlsmon could not
        // read (pre_shared_key is the last extension, RFC 8446 §4.2.11).
        match resumed {
            Some(Method::SessionId) => offered[0] = true,
            Some(Method::Ticket) => offered[1] = true,
            Some(Method::Psk) => offered[2] = true,
            None => {}
        }
        offered
    }

    /// Whether a clock tick can change this connection: it waits for a
    /// ServerHello, or for the rest of a handshake after a FIN.
    pub(super) fn waits_for_clock(&self) -> bool {
        match self.phase {
            Phase::Hello { timed_out, .. } => !timed_out,
            Phase::Shape(_) | Phase::Decided(..) => self.closed_ns.is_some(),
            Phase::Over(_) => false,
        }
    }

    /// Timed out waiting for a ServerHello: kept aside, where a late one
    /// can still find it.
    pub(super) fn timed_out(&self) -> bool {
        matches!(
            self.phase,
            Phase::Hello {
                timed_out: true,
                ..
            }
        )
    }

    /// Whether side `p` still has to send something for the handshake to
    /// complete as far as packets show: the server its ServerHello (and for
    /// TLS ≤ 1.2 the rest of its flight and its ChangeCipherSpec), the
    /// client a second ClientHello after a HelloRetryRequest, or its
    /// ChangeCipherSpec (TLS ≤ 1.2). Before the ServerHello the version is
    /// unknown, so only what is certain counts.
    pub(super) fn owes(&self, p: Peer) -> bool {
        let ccs_due = !self.sides[p as usize].ccs;
        match (self.phase, p) {
            (Phase::Hello { .. } | Phase::Shape(_), Peer::Server) => true,
            (Phase::Hello { retried, .. }, Peer::Client) => retried,
            (Phase::Shape(n) | Phase::Decided(n, _), _) => !n.tls13() && ccs_due,
            (Phase::Over(_), _) => false,
        }
    }

    /// A side that still owes a message has closed its direction with a
    /// FIN (RFC 9293 §3.6): the handshake cannot complete any more.
    pub(super) fn stalled(&self) -> bool {
        [Peer::Client, Peer::Server]
            .into_iter()
            .any(|p| self.sides[p as usize].fin.is_some() && self.owes(p))
    }

    /// The handshake is over and the server never answered: nothing more
    /// is counted for it, so the connection can go at once.
    pub(super) fn ended_unanswered(&self) -> bool {
        !self.answered && !self.phase.in_handshake()
    }

    /// Closed and over: kept only to attribute the peer's FIN or RST.
    pub(super) fn lingering(&self) -> bool {
        self.closed_ns.is_some() && !self.phase.in_handshake()
    }

    /// Whether a ClientHello segment continues this connection: the
    /// second hello after a HelloRetryRequest, or the first one again.
    pub(super) fn continued_by(&self, h: &EventHeader) -> bool {
        matches!(self.phase, Phase::Hello { retried: true, .. }) || self.exchange.is_hello(h)
    }

    /// Whether a ClientHello for this connection's key starts a new
    /// connection: the port was reused after this one closed. (A side that
    /// only sent FIN may still be waiting for the other's answer.)
    pub(super) fn reused_by_hello(&self) -> bool {
        self.lingering()
    }
}
