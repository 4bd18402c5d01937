//! ClientHellos larger than one TCP segment.
//!
//! Post-quantum key shares make ClientHellos longer than one segment
//! (X25519MLKEM768 alone adds a 1,216-byte share). The first segment then
//! shows the start of the hello, and pre_shared_key — which RFC 8446
//! §4.2.11 requires to be the last extension — arrives in a later segment
//! whose payload does not start with a record header. No single packet
//! shows the resumption offer.
//!
//! The kernel therefore remembers such a hello per flow (a [`PendingHello`]
//! under a [`FlowKey`], in an LRU map) and copies the hello's bytes from
//! the first segment and from each later segment of that flow to userspace
//! as [`ChunkEvent`]s. Userspace puts them in order and runs
//! [`crate::tls::summarize`] over the whole hello. Only bytes of the hello
//! leave the kernel, and the map is consulted only while some hello is
//! pending (the kernel's gate), so established flows cost nothing extra.
//!
//! The decisions live here so that the host engine makes exactly the same
//! ones; each side stores [`PendingHello`]s in its own map.
#![expect(
    clippy::cast_possible_truncation,
    reason = "lengths are bounded by MAX_SPLIT_HELLO and CHUNK_MAX, far below u32::MAX"
)]

use crate::{
    bytes::Bytes,
    event::{EventHeader, TlsSummary, hello_flags},
    net::TcpSegment,
    tls::{ContentType, HANDSHAKE_HEADER_LEN, HandshakeType, RECORD_HEADER_LEN, record_header},
};

/// Most hello bytes one chunk carries: a segment's worth at the usual MTUs
/// (and a little more), so that one chunk per segment suffices.
pub const CHUNK_MAX: usize = 4096;
/// Longest stream, from the first byte of the record to the end of the
/// ClientHello, that is reassembled: one whole record (RFC 8446 §5.1,
/// 2^14 bytes of plaintext) and its header.
pub const MAX_SPLIT_HELLO: usize = (1 << 14) + RECORD_HEADER_LEN;
/// Flows with a hello being reassembled that the kernel keeps (LRU: the
/// oldest is dropped first, and its hello is then reported as truncated).
pub const MAX_SPLIT_HELLOS: u32 = 8192;
/// A pending hello not completed within this time is abandoned: every
/// segment of a hello is sent at once, so only loss and retransmission
/// timeouts delay the rest, and RFC 6298's initial RTO is one second.
pub const SPLIT_TIMEOUT_NS: u64 = 3_000_000_000;

/// The sending side of a flow: one direction of a TCP connection.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src_addr: [u8; 16],
    pub dst_addr: [u8; 16],
    pub src_port: u16,
    pub dst_port: u16,
}

impl FlowKey {
    #[inline(always)]
    #[must_use]
    pub fn of(seg: &TcpSegment) -> Self {
        Self {
            src_addr: seg.src_addr,
            dst_addr: seg.dst_addr,
            src_port: seg.src_port,
            dst_port: seg.dst_port,
        }
    }

    /// The same flow's key from an event header.
    #[must_use]
    pub fn from_header(h: &EventHeader) -> Self {
        Self {
            src_addr: h.src_addr,
            dst_addr: h.dst_addr,
            src_port: h.src_port,
            dst_port: h.dst_port,
        }
    }
}

/// A ClientHello whose end has not been seen yet. Offsets count from the
/// first payload byte of the segment that started it (sequence number
/// `start_seq`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PendingHello {
    pub start_seq: u32,
    /// Bytes up to the end of the hello.
    pub need: u32,
    /// Everything before this offset has been copied out.
    pub next: u32,
    pub pad0: u32,
    /// When the first segment was seen (the clock of the event headers).
    pub since_ns: u64,
}

/// The bytes of one segment that belong to a pending hello. `len == 0`
/// means none (plain integers rather than `Option`: see `tls::summarize`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    /// Offset in the hello's stream.
    pub offset: u32,
    pub len: u32,
}

/// What [`split_hello`] needs from a segment's `TlsSummary`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HelloAt {
    /// `hello_type`, `hello_at`, `hello_len` and `hello.flags` of the summary.
    pub hello_type: u8,
    pub at: u32,
    pub len: u32,
    pub flags: u16,
}

impl HelloAt {
    #[inline(always)]
    #[must_use]
    pub fn of(tls: &TlsSummary) -> Self {
        Self {
            hello_type: tls.hello_type,
            at: tls.hello_at,
            len: tls.hello_len,
            flags: tls.hello.flags,
        }
    }

    /// A ClientHello cut at the end of its segment, well-formed so far and
    /// short enough to reassemble: its bytes may follow as chunks. Also a
    /// handshake record cut right after its header, whose message type is
    /// not known yet (`hello_type` 0, see [`cut_hello`]). The rule as far
    /// as the summary alone can tell; [`split_hello`] also checks the
    /// record around it.
    #[inline(always)]
    #[must_use]
    pub fn may_continue(self) -> bool {
        (self.hello_type == HandshakeType::CLIENT_HELLO.0 || self.hello_type == 0)
            && self.flags & hello_flags::TRUNCATED != 0
            && self.flags & hello_flags::MALFORMED == 0
            && RECORD_HEADER_LEN + HANDSHAKE_HEADER_LEN + self.len as usize <= MAX_SPLIT_HELLO
    }
}

/// What the split-hello half of a packet (`pipeline::split`) needs from the
/// half that walked its records: the TLS event's header, which describes
/// the segment, and where its hello is. In the kernel it travels to the
/// tail-called program in a per-CPU map, hence plain integers.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SplitArgs {
    /// Its `ts_ns` is when the hello's first segment was seen.
    pub header: EventHeader,
    /// [`HelloAt`]'s fields.
    pub at: u32,
    pub len: u32,
    pub flags: u16,
    pub hello_type: u8,
    pub pad: [u8; 5],
}

impl SplitArgs {
    #[inline(always)]
    #[must_use]
    pub fn new(header: EventHeader, hello: HelloAt) -> Self {
        Self {
            header,
            at: hello.at,
            len: hello.len,
            flags: hello.flags,
            hello_type: hello.hello_type,
            pad: [0; 5],
        }
    }

    #[inline(always)]
    #[must_use]
    pub fn hello(&self) -> HelloAt {
        HelloAt {
            hello_type: self.hello_type,
            at: self.at,
            len: self.len,
            flags: self.flags,
        }
    }

    /// The segment the header describes, as far as the split-hello half
    /// uses it: everything but the header offsets.
    #[inline(always)]
    #[must_use]
    pub fn segment(&self) -> TcpSegment {
        let h = &self.header;
        TcpSegment {
            family: h.family,
            flags: h.tcp_flags,
            src_port: h.src_port,
            dst_port: h.dst_port,
            src_addr: h.src_addr,
            dst_addr: h.dst_addr,
            seq: h.seq,
            ack: h.ack,
            payload_off: h.payload_off as usize,
            payload_len: h.payload_len as usize,
            tunnel: h.tunnel,
            ..TcpSegment::default()
        }
    }
}

/// A segment whose payload is a handshake record cut inside its first
/// message's 4-byte header: a hello written in small pieces (issue 14 sent
/// one 7 bytes at a time) shows no message at all, so the record walk
/// cannot tell it is a ClientHello and nothing would reassemble it. The
/// record header alone says how long the record is: such a record is
/// taken as one hello that fills it, truncated, and [`split_hello`]
/// reassembles it like any other (`need` = the record header and the
/// record); the summary of the whole record says what it was. A message
/// type already there must be ClientHello's, and then the hello says so;
/// with the record header alone the type is not known (`hello_type` 0 and
/// only `TRUNCATED`: a ServerHello can be written so too). Returns the
/// hello to put in the segment's summary, with no flags when the segment
/// is not such a record.
#[inline(always)]
pub fn cut_hello<B: Bytes + ?Sized>(b: &B, payload_off: usize, payload_len: usize) -> HelloAt {
    let mut hello = HelloAt::default();
    if payload_len >= RECORD_HEADER_LEN + HANDSHAKE_HEADER_LEN {
        return hello;
    }
    let Some(record) = record_header(b, payload_off) else {
        return hello;
    };
    if record.content_type != ContentType::HANDSHAKE || record.len < HANDSHAKE_HEADER_LEN {
        return hello;
    }
    if payload_len > RECORD_HEADER_LEN {
        if b.u8_at(payload_off + RECORD_HEADER_LEN) != Some(HandshakeType::CLIENT_HELLO.0) {
            return hello;
        }
        hello.hello_type = HandshakeType::CLIENT_HELLO.0;
        hello.flags = hello_flags::CLIENT_HELLO;
    }
    hello.at = (payload_off + RECORD_HEADER_LEN + HANDSHAKE_HEADER_LEN) as u32;
    hello.len = (record.len - HANDSHAKE_HEADER_LEN) as u32;
    hello.flags |= hello_flags::TRUNCATED;
    hello
}

/// After the first segment of a ClientHello was summarized: the hello
/// continues in later segments and can be reassembled. Returns the pending
/// state to remember, with `need == 0` when not.
///
/// Only a hello that is the first message of the first record and fits in
/// that record is taken: a ClientHello fragmented over several records is
/// rare, and its later record headers would sit inside the stream.
#[inline(always)]
pub fn split_hello<B: Bytes + ?Sized>(
    b: &B,
    seg: &TcpSegment,
    hello: HelloAt,
    now_ns: u64,
) -> PendingHello {
    let mut p = PendingHello::default();
    if !hello.may_continue() {
        return p;
    }
    let body = seg.payload_off + RECORD_HEADER_LEN + HANDSHAKE_HEADER_LEN;
    if hello.at as usize != body {
        return p;
    }
    let Some(record) = record_header(b, seg.payload_off) else {
        return p;
    };
    let need = RECORD_HEADER_LEN + HANDSHAKE_HEADER_LEN + hello.len as usize;
    if need > RECORD_HEADER_LEN + record.len || need <= seg.payload_len {
        return p;
    }
    p.start_seq = seg.seq;
    p.need = need as u32;
    p.since_ns = now_ns;
    p
}

/// The part of `seg` that belongs to the pending hello `p`: from the start
/// of its payload, if that lies inside the hello, to the end of the hello,
/// the payload, or [`CHUNK_MAX`], whichever comes first. Sequence numbers
/// wrap (RFC 9293 §3.4): a segment before `start_seq` gives a huge offset
/// and no span.
#[inline(always)]
#[must_use]
pub fn continuation(p: &PendingHello, seg: &TcpSegment) -> Span {
    let offset = seg.seq.wrapping_sub(p.start_seq);
    if offset >= p.need || seg.payload_len == 0 {
        return Span::default();
    }
    let len = (p.need - offset).min(seg.payload_len.min(CHUNK_MAX) as u32);
    Span { offset, len }
}

/// Whether `seg` starts at or after the end of the hello: the sender has
/// moved on, so whatever is still missing was lost, not delayed.
#[inline(always)]
#[must_use]
pub fn beyond(p: &PendingHello, seg: &TcpSegment) -> bool {
    let offset = seg.seq.wrapping_sub(p.start_seq);
    offset >= p.need && offset < 1 << 31
}

/// Whether a pending hello has outlived [`SPLIT_TIMEOUT_NS`].
#[inline(always)]
#[must_use]
pub fn expired(p: &PendingHello, now_ns: u64) -> bool {
    now_ns.wrapping_sub(p.since_ns) > SPLIT_TIMEOUT_NS
}

/// Moves the in-order frontier over a span that was copied out; `true` once
/// the whole hello has been. A span past a gap (reordering) does not move
/// it: the pending hello then stays until the gap is filled, or until it
/// expires, and userspace reassembles from whatever arrived.
#[inline(always)]
pub fn advance(p: &mut PendingHello, span: Span) -> bool {
    let end = span.offset + span.len;
    if span.offset <= p.next && end > p.next {
        p.next = end;
    }
    p.next >= p.need
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        emit,
        event::TlsSummary,
        tls::{ContentType, HandshakeType, ProtocolVersion},
    };

    fn seg(seq: u32, payload_len: usize) -> TcpSegment {
        TcpSegment {
            seq,
            payload_off: 0,
            payload_len,
            ..TcpSegment::default()
        }
    }

    /// A 600-byte ClientHello in one record; `have` of its bytes in the
    /// first segment.
    fn first(have: usize) -> (std::vec::Vec<u8>, TcpSegment, TlsSummary) {
        // Record and handshake headers, then the body.
        let body = [0; 600 - 9];
        let mut bytes = emit::tls::record_with_version(
            ContentType::HANDSHAKE.0,
            ProtocolVersion::TLS1_0.0,
            &emit::tls::handshake(HandshakeType::CLIENT_HELLO.0, &body),
        );
        bytes.truncate(have);
        let tls = emit::event::Summary::items(&[])
            .flags(hello_flags::CLIENT_HELLO | hello_flags::TRUNCATED)
            .hello_at(9, u32::try_from(body.len()).unwrap())
            .build();
        (bytes, seg(1000, have), tls)
    }

    #[test]
    fn a_hello_past_the_segment_is_pending_with_its_length() {
        let (b, s, tls) = first(348);
        let p = split_hello(&b[..], &s, HelloAt::of(&tls), 5);
        assert_eq!((p.start_seq, p.need, p.next, p.since_ns), (1000, 600, 0, 5));
    }

    #[test]
    fn a_record_cut_inside_its_first_message_header_starts_a_hello() {
        // 5 to 8 bytes of the 600-byte hello: the record header and 0 to 3
        // bytes of the handshake header.
        for have in 5..9 {
            let (b, s, _) = first(have);
            let hello = cut_hello(&b[..], 0, have);
            // The message type is known from the sixth byte on.
            let (ty, flags) = if have == 5 {
                (0, hello_flags::TRUNCATED)
            } else {
                (1, hello_flags::CLIENT_HELLO | hello_flags::TRUNCATED)
            };
            assert_eq!(
                (hello.hello_type, hello.flags, hello.at, hello.len),
                (ty, flags, 9, 600 - 9),
                "{have} bytes"
            );
            assert!(hello.may_continue());
            let p = split_hello(&b[..], &s, hello, 7);
            assert_eq!(
                (p.start_seq, p.need, p.next),
                (1000, 600, 0),
                "{have} bytes"
            );
            assert_eq!(
                continuation(&p, &s),
                Span {
                    offset: 0,
                    len: u32::try_from(have).unwrap()
                }
            );
        }
    }

    #[test]
    fn only_a_handshake_record_cut_in_a_client_hello_header_starts_one() {
        let none = |b: &[u8]| cut_hello(b, 0, b.len()).flags == 0;
        let (b, _, _) = first(9);
        // The whole header is there: the walk saw the message.
        assert!(none(&b[..9]));
        // Another message type (a ServerHello written in pieces).
        let mut server = b[..7].to_vec();
        server[5] = 2;
        assert!(none(&server));
        // Not a handshake record; a record too short for any message.
        let mut alert = b[..7].to_vec();
        alert[0] = 21;
        assert!(none(&alert));
        assert!(none(&[22, 3, 1, 0, 3, 1, 0]));
        // Not a record at all.
        assert!(none(&[22, 9, 9, 0, 3, 1, 0]));
        assert!(none(&b[..4]));
        // A record longer than one reassembled hello may be.
        let mut long = b[..7].to_vec();
        long[3..5].copy_from_slice(&u16::try_from(MAX_SPLIT_HELLO).unwrap().to_be_bytes());
        assert!(!cut_hello(&long[..], 0, 7).may_continue());
    }

    #[test]
    fn whole_malformed_or_multi_record_hellos_are_not_pending() {
        let (b, s, mut tls) = first(348);
        tls.hello.flags &= !hello_flags::TRUNCATED;
        assert_eq!(split_hello(&b[..], &s, HelloAt::of(&tls), 0).need, 0);
        let (b, s, mut tls) = first(348);
        tls.hello.flags |= hello_flags::MALFORMED;
        assert_eq!(split_hello(&b[..], &s, HelloAt::of(&tls), 0).need, 0);
        // The record is shorter than the hello: fragmented over records.
        let (mut b, s, tls) = first(348);
        b[3..5].copy_from_slice(&300u16.to_be_bytes());
        assert_eq!(split_hello(&b[..], &s, HelloAt::of(&tls), 0).need, 0);
        // A ServerHello never is.
        let (b, s, mut tls) = first(348);
        tls.hello_type = 2;
        assert_eq!(split_hello(&b[..], &s, HelloAt::of(&tls), 0).need, 0);
    }

    #[test]
    fn continuations_are_cut_at_the_hello_end_and_wrap_with_sequence_numbers() {
        let (b, s, tls) = first(348);
        let mut p = split_hello(&b[..], &s, HelloAt::of(&tls), 0);
        assert_eq!(
            continuation(&p, &s),
            Span {
                offset: 0,
                len: 348
            }
        );
        assert!(!advance(
            &mut p,
            Span {
                offset: 0,
                len: 348
            }
        ));
        // The next segment also carries 100 bytes after the hello.
        let next = seg(1348, 352);
        assert_eq!(
            continuation(&p, &next),
            Span {
                offset: 348,
                len: 252
            }
        );
        let span = continuation(&p, &next);
        assert!(advance(&mut p, span));
        // Before the start, after the end, or empty: nothing.
        assert_eq!(continuation(&p, &seg(999, 10)).len, 0);
        assert_eq!(continuation(&p, &seg(1600, 10)).len, 0);
        assert_eq!(continuation(&p, &seg(1348, 0)).len, 0);
        assert!(beyond(&p, &seg(1600, 10)) && !beyond(&p, &seg(999, 10)));
        // Across the 2^32 wrap.
        p.start_seq = u32::MAX - 99;
        assert_eq!(
            continuation(&p, &seg(248, 600)),
            Span {
                offset: 348,
                len: 252
            }
        );
    }

    #[test]
    fn a_span_past_a_gap_leaves_the_frontier() {
        let mut p = PendingHello {
            need: 600,
            next: 348,
            ..PendingHello::default()
        };
        assert!(!advance(
            &mut p,
            Span {
                offset: 500,
                len: 100
            }
        ));
        assert_eq!(p.next, 348);
        assert!(!advance(
            &mut p,
            Span {
                offset: 348,
                len: 152
            }
        ));
        assert_eq!(p.next, 500);
        // A retransmission of what was already copied changes nothing.
        assert!(!advance(
            &mut p,
            Span {
                offset: 0,
                len: 348
            }
        ));
        assert_eq!(p.next, 500);
    }

    #[test]
    fn expiry_uses_the_timeout() {
        let p = PendingHello {
            since_ns: 10,
            ..PendingHello::default()
        };
        assert!(!expired(&p, 10 + SPLIT_TIMEOUT_NS));
        assert!(expired(&p, 11 + SPLIT_TIMEOUT_NS));
    }
}
