//! Which packets can belong to a connection's TCP exchange.
//!
//! Anyone can send a packet that looks like a ServerHello. One that did not
//! come from the server cannot travel the way the server's packets travel,
//! or acknowledge bytes it never received: an off-path forger who sends a
//! ClientHello and a ServerHello to this host makes both arrive, where a
//! real exchange has one arrive and the other leave. This module holds what
//! the ClientHello showed of the TCP exchange and decides, per packet,
//! whether the state machine sees it.
//!
//! * Direction: the ClientHello's direction sets the role (leaving: this
//!   host is the client, a backend connection; arriving: a frontend one).
//!   The client's later packets travel the same way, the server's the other.
//!   Captures without direction ([`Direction::UNKNOWN`]) cannot be checked.
//! * Acknowledgment: the server's first packet that counts, its *answer*,
//!   carries ACK and acknowledges the last byte of the ClientHello (RFC
//!   9293 §3.4, sequence numbers compared modulo 2^32), by at most
//!   [`MAX_ACK_AHEAD`] more. Server packets before the answer that do not
//!   acknowledge the hello are skipped.
//! * On a connection this host opened (a backend one) a FIN or a RST that
//!   acknowledges the hello is an answer too: the backend accepted the
//!   connection and closed it without a word of TLS. On one it did not
//!   open (a frontend one, or one of unknown direction) only TLS records
//!   answer: this host's TCP stack resets a hello sent to a port nobody
//!   listens on (RFC 9293 §3.10.7.1), and its clients FIN downloads whose
//!   content may look like ClientHellos. Such FINs and RSTs still end the
//!   handshake.
//! * A host that has no such connection answers a segment carrying ACK
//!   with a reset without ACK whose sequence number is that
//!   acknowledgment number (RFC 9293 §3.10.7.1): a refusal, which ends the
//!   handshake and is no answer.

use monitor_common::{
    event::{Direction, EventHeader, TlsSummary, hello_flags},
    net::{TCP_ACK, TCP_RST, TCP_SYN},
    tls::{HANDSHAKE_HEADER_LEN, RECORD_HEADER_LEN},
};

/// How far past the end of the ClientHello the server's answer may
/// acknowledge: what the client may send before the ServerHello, that is a
/// TLS 1.3 compatibility change_cipher_spec and early data (RFC 8446 §D.4,
/// §4.2.10), and its FIN. Servers cap early data at their
/// max_early_data_size, 16 KiB in OpenSSL by default; 256 KiB leaves room.
/// A forger guessing blindly hits the window once in 2^14 tries, on top of
/// guessing the 4-tuple.
pub(super) const MAX_ACK_AHEAD: u32 = 256 << 10;

/// Why a packet was not given to the state machine, each counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Skip {
    /// It travelled the way the other side's packets travel.
    WrongDirection,
    /// A server packet before the server's answer that does not
    /// acknowledge the ClientHello.
    Unacknowledged,
}

/// What to do with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Admit {
    /// Give it to the state machine; `answer` when it is the server's
    /// first answer to the ClientHello.
    Process {
        answer: bool,
    },
    /// A copy of a packet already seen the other way (loopback, or a
    /// connection routed through this host): nothing new, nothing wrong.
    Copy,
    Skip(Skip),
}

/// What the ClientHello showed of the TCP exchange.
#[derive(Clone, Copy, Debug)]
pub(super) struct Exchange {
    /// The direction of the client's packets.
    client_dir: Direction,
    /// The ClientHello was also seen the other way: both ends are on this
    /// host or the connection is routed through it, and every packet shows
    /// up in both directions.
    mirrored: bool,
    /// Sequence number of the ClientHello's segment.
    hello_seq: u32,
    /// Sequence number just past the ClientHello's last byte.
    hello_end: u32,
    /// The ClientHello segment's acknowledgment number, if it carried ACK.
    hello_ack: Option<u32>,
}

impl Exchange {
    /// The exchange a ClientHello segment starts.
    pub(super) fn new(h: &EventHeader, tls: &TlsSummary) -> Self {
        Self {
            client_dir: Direction(h.direction),
            mirrored: false,
            hello_seq: h.seq,
            hello_end: hello_end(h, tls),
            hello_ack: (h.tcp_flags & TCP_ACK != 0).then_some(h.ack),
        }
    }

    /// Sequence number just past the ClientHello whose segment `h` is.
    pub(super) fn hello_end(h: &EventHeader, tls: &TlsSummary) -> u32 {
        hello_end(h, tls)
    }

    /// Whether this segment is the ClientHello's (again).
    pub(super) fn is_hello(&self, h: &EventHeader) -> bool {
        h.seq == self.hello_seq
    }

    /// Whether a packet from the client (`from_client`) or the server can
    /// be part of this exchange; `answered` says whether the server has
    /// answered already, `records` whether the packet carries TLS records.
    /// Notes a mirrored exchange on the way.
    pub(super) fn admit(
        &mut self,
        from_client: bool,
        answered: bool,
        h: &EventHeader,
        records: bool,
    ) -> Admit {
        let dir = Direction(h.direction);
        let expected = if from_client {
            self.client_dir
        } else {
            opposite(self.client_dir)
        };
        if dir != expected && dir != Direction::UNKNOWN && expected != Direction::UNKNOWN {
            if from_client && self.is_hello(h) {
                // The ClientHello itself, seen the other way.
                self.mirrored = true;
            }
            return if self.mirrored {
                Admit::Copy
            } else {
                Admit::Skip(Skip::WrongDirection)
            };
        }
        if from_client || answered {
            return Admit::Process { answer: false };
        }
        let acks =
            h.tcp_flags & TCP_ACK != 0 && h.ack.wrapping_sub(self.hello_end) <= MAX_ACK_AHEAD;
        if acks {
            return Admit::Process {
                answer: records || self.client_dir == Direction::EGRESS,
            };
        }
        let refusal = h.tcp_flags & (TCP_RST | TCP_ACK) == TCP_RST && Some(h.seq) == self.hello_ack;
        if refusal {
            return Admit::Process { answer: false };
        }
        Admit::Skip(Skip::Unacknowledged)
    }
}

fn opposite(d: Direction) -> Direction {
    match d {
        Direction::INGRESS => Direction::EGRESS,
        Direction::EGRESS => Direction::INGRESS,
        other => other,
    }
}

/// Sequence number just past the ClientHello. A SYN takes one sequence
/// number before the data (RFC 9293 §3.4). A hello that continued past its
/// segment (truncated, or reassembled from later segments) starts the
/// payload and ends where its handshake message does.
fn hello_end(h: &EventHeader, tls: &TlsSummary) -> u32 {
    let mut len = h.payload_len;
    if tls.hello.flags & (hello_flags::TRUNCATED | hello_flags::REASSEMBLED) != 0 {
        #[expect(
            clippy::cast_possible_truncation,
            reason = "header lengths are single digits"
        )]
        let whole = tls
            .hello_len
            .saturating_add((RECORD_HEADER_LEN + HANDSHAKE_HEADER_LEN) as u32);
        len = len.max(whole);
    }
    h.seq
        .wrapping_add(u32::from(h.tcp_flags & TCP_SYN != 0))
        .wrapping_add(len)
}

#[cfg(test)]
mod tests {
    use monitor_common::net::TCP_FIN;

    use super::*;

    fn seg(dir: Direction, flags: u8, seq: u32, ack: u32, len: u32) -> EventHeader {
        EventHeader {
            direction: dir.0,
            tcp_flags: flags,
            seq,
            ack,
            payload_len: len,
            ..EventHeader::default()
        }
    }

    /// A 500-byte ClientHello at sequence number `seq`, going `dir`.
    fn exchange(dir: Direction, seq: u32) -> Exchange {
        Exchange::new(&seg(dir, TCP_ACK, seq, 7000, 500), &TlsSummary::default())
    }

    const RECORDS: bool = true;
    const BARE: bool = false;
    const ANSWER: Admit = Admit::Process { answer: true };
    const NOT_AN_ANSWER: Admit = Admit::Process { answer: false };
    const UNACKNOWLEDGED: Admit = Admit::Skip(Skip::Unacknowledged);

    #[test]
    fn the_answer_acknowledges_the_hello_across_the_wrap() {
        let seq = u32::MAX - 100;
        let end = seq.wrapping_add(500);
        let mut x = exchange(Direction::EGRESS, seq);
        let mut answer = |ack| {
            x.admit(
                false,
                false,
                &seg(Direction::INGRESS, TCP_ACK, 7000, ack, 90),
                RECORDS,
            )
        };
        assert_eq!(answer(end), ANSWER);
        assert_eq!(answer(end + MAX_ACK_AHEAD), ANSWER);
        assert_eq!(answer(end.wrapping_sub(1)), UNACKNOWLEDGED);
        assert_eq!(answer(end + MAX_ACK_AHEAD + 1), UNACKNOWLEDGED);
        // Without ACK nothing is acknowledged.
        let bare = seg(Direction::INGRESS, TCP_FIN, 7000, end, 0);
        assert_eq!(x.admit(false, false, &bare, BARE), UNACKNOWLEDGED);
        // Once answered, later packets are not checked again.
        assert_eq!(x.admit(false, true, &bare, BARE), NOT_AN_ANSWER);
    }

    #[test]
    fn closing_without_tls_answers_only_a_hello_this_host_sent() {
        for flags in [TCP_FIN | TCP_ACK, TCP_RST | TCP_ACK] {
            let mut backend = exchange(Direction::EGRESS, 1000);
            let close = seg(Direction::INGRESS, flags, 7000, 1500, 0);
            assert_eq!(backend.admit(false, false, &close, BARE), ANSWER);
            // This host resets a hello to a closed port, and FINs a download
            // whose content looks like one.
            let mut frontend = exchange(Direction::INGRESS, 1000);
            let close = seg(Direction::EGRESS, flags, 7000, 1501, 0);
            assert_eq!(frontend.admit(false, false, &close, BARE), NOT_AN_ANSWER);
            let mut capture = exchange(Direction::UNKNOWN, 1000);
            assert_eq!(capture.admit(false, false, &close, BARE), NOT_AN_ANSWER);
        }
    }

    #[test]
    fn a_reset_from_a_host_without_the_connection_ends_but_does_not_answer() {
        let mut x = exchange(Direction::INGRESS, 1000);
        let refusal = seg(Direction::EGRESS, TCP_RST, 7000, 0, 0);
        assert_eq!(x.admit(false, false, &refusal, BARE), NOT_AN_ANSWER);
        let wrong_seq = seg(Direction::EGRESS, TCP_RST, 7001, 0, 0);
        assert_eq!(x.admit(false, false, &wrong_seq, BARE), UNACKNOWLEDGED);
    }

    #[test]
    fn packets_travelling_the_other_sides_way_are_skipped() {
        let mut x = exchange(Direction::EGRESS, 1000);
        let forged = seg(Direction::EGRESS, TCP_ACK, 7000, 1500, 90);
        assert_eq!(
            x.admit(false, false, &forged, RECORDS),
            Admit::Skip(Skip::WrongDirection)
        );
        let client = seg(Direction::INGRESS, TCP_ACK, 1500, 7000, 90);
        assert_eq!(
            x.admit(true, false, &client, RECORDS),
            Admit::Skip(Skip::WrongDirection)
        );
        // Captures have no direction: only sequence numbers are checked.
        let capture = seg(Direction::UNKNOWN, TCP_ACK, 7000, 1500, 90);
        assert_eq!(x.admit(false, false, &capture, RECORDS), ANSWER);
    }

    #[test]
    fn loopback_shows_every_packet_both_ways() {
        let mut x = exchange(Direction::EGRESS, 1000);
        // The ClientHello again, arriving: both ends are on this host.
        let twin = seg(Direction::INGRESS, TCP_ACK, 1000, 7000, 500);
        assert_eq!(x.admit(true, false, &twin, RECORDS), Admit::Copy);
        let leaving = seg(Direction::EGRESS, TCP_ACK, 7000, 1500, 90);
        assert_eq!(x.admit(false, false, &leaving, RECORDS), Admit::Copy);
        let arriving = seg(Direction::INGRESS, TCP_ACK, 7000, 1500, 90);
        assert_eq!(x.admit(false, false, &arriving, RECORDS), ANSWER);
    }

    #[test]
    fn a_split_hello_ends_where_its_message_ends() {
        let mut t = TlsSummary::default();
        t.hello.flags = hello_flags::CLIENT_HELLO | hello_flags::REASSEMBLED;
        t.hello_len = 1991;
        let x = Exchange::new(&seg(Direction::EGRESS, TCP_ACK, 1000, 7000, 536), &t);
        assert_eq!(x.hello_end, 1000 + 2000);
        // A SYN takes one sequence number (TCP Fast Open).
        let x = Exchange::new(
            &seg(Direction::EGRESS, TCP_SYN, 1000, 0, 500),
            &TlsSummary::default(),
        );
        assert_eq!(x.hello_end, 1501);
    }
}
