//! One packet in, at most one summary event out (plus the bytes of a
//! ClientHello split over segments, see `split`): the per-packet decision
//! shared by the kernel program and `tlsmon replay --engine host`.
//!
//! The decision is made from the TCP flags and the first five payload bytes.
//! Application data, which is nearly all traffic on an established TLS
//! connection, is recognised by its record header and dropped here without
//! further reads or map lookups ([`Class::Opaque`]); that is how the kernel
//! stops looking at a flow once its handshake is over, while still seeing
//! alerts, RST and FIN.

use crate::{
    bytes::Bytes,
    event::{CHUNK_DATA_OFF, ChunkEvent, EventHeader, EventKind, TlsSummary},
    net::{TCP_FIN, TCP_RST, TcpSegment},
    split::Span,
    tls::{ContentType, RECORD_HEADER_LEN, record_header, summarize},
};

/// What to do with a TCP segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// The payload starts with an application_data (or heartbeat) record:
    /// an established TLS flow, nearly all traffic. Nothing to do.
    Opaque,
    /// Nothing tlsmon needs: no TLS record starts the payload (not TLS, or
    /// the middle of a record, which may continue a split ClientHello).
    Ignore,
    /// RST or FIN without a TLS record at the start of the payload.
    Teardown,
    /// The payload starts with a handshake, change_cipher_spec or alert record.
    Tls,
}

/// Decides from the TCP flags and the first record header.
#[inline(always)]
pub fn class<B: Bytes + ?Sized>(b: &B, seg: &TcpSegment) -> Class {
    if seg.payload_len >= RECORD_HEADER_LEN
        && let Some(h) = record_header(b, seg.payload_off)
    {
        let ct = h.content_type;
        if ct == ContentType::HANDSHAKE
            || ct == ContentType::CHANGE_CIPHER_SPEC
            || ct == ContentType::ALERT
        {
            return Class::Tls;
        }
        if seg.flags & (TCP_RST | TCP_FIN) == 0 {
            return Class::Opaque;
        }
    }
    if seg.flags & (TCP_RST | TCP_FIN) != 0 {
        Class::Teardown
    } else {
        Class::Ignore
    }
}

/// Fills the event header from a parsed segment. `size` is an event size
/// and the payload length is bounded by `skb->len` (u32): no truncation.
#[inline(always)]
#[expect(clippy::cast_possible_truncation, reason = "see the doc comment")]
pub fn fill_header(h: &mut EventHeader, seg: &TcpSegment, kind: EventKind, size: usize) {
    h.kind = kind.0;
    h.family = seg.family;
    h.tcp_flags = seg.flags;
    h.size = size as u16;
    h.src_port = seg.src_port;
    h.dst_port = seg.dst_port;
    h.seq = seg.seq;
    h.ack = seg.ack;
    h.payload_len = seg.payload_len as u32;
    h.src_addr = seg.src_addr;
    h.dst_addr = seg.dst_addr;
}

/// Fills a TLS summary for a segment classified [`Class::Tls`].
#[inline(always)]
pub fn fill_tls<B: Bytes + ?Sized>(b: &B, seg: &TcpSegment, out: &mut TlsSummary) {
    summarize(b, seg.payload_off, seg.payload_off + seg.payload_len, out);
}

/// Fills a chunk event with the bytes of `span`, which start at the
/// beginning of the segment's payload; `false` if they cannot be read.
#[inline(always)]
pub fn fill_chunk<B: Bytes + ?Sized>(
    b: &B,
    seg: &TcpSegment,
    span: Span,
    ev: &mut ChunkEvent,
) -> bool {
    let len = span.len as usize;
    fill_header(&mut ev.header, seg, EventKind::CHUNK, CHUNK_DATA_OFF + len);
    ev.offset = span.offset;
    ev.len = span.len;
    b.copy_prefix(seg.payload_off, &mut ev.data, len)
}

#[cfg(feature = "user")]
pub use host::{Classifier, classify};

#[cfg(feature = "user")]
mod host {
    use std::{collections::HashMap, vec::Vec};

    use super::{Class, class, fill_chunk, fill_header, fill_tls};
    use crate::{
        event::{
            CHUNK_DATA_OFF, Chunk, ChunkEvent, Decoded, Direction, EventHeader, EventKind,
            TeardownEvent, TlsEvent, TlsSummary,
        },
        net::{LinkType, Skip, TcpSegment, tcp},
        split::{
            FlowKey, HelloAt, MAX_SPLIT_HELLOS, PendingHello, Span, advance, beyond, continuation,
            expired, split_hello,
        },
    };

    /// The kernel program's per-packet path compiled for the host, with its
    /// one piece of state: the ClientHellos being reassembled (the kernel's
    /// LRU map, here a bounded hash map). Packets must come in capture order.
    #[derive(Default)]
    pub struct Classifier {
        pending: HashMap<FlowKey, PendingHello>,
        /// Hellos whose bytes were sent for reassembly (the kernel's
        /// `split_hellos` counter).
        pub split_hellos: u64,
    }

    impl Classifier {
        /// The events the kernel program would send for this frame.
        pub fn packet(
            &mut self,
            frame: &[u8],
            link: LinkType,
            direction: Direction,
            ts_ns: u64,
        ) -> Result<Vec<Decoded>, Skip> {
            let seg = tcp(frame, link)?;
            let stamp = |mut h: EventHeader| {
                h.direction = direction.0;
                h.ts_ns = ts_ns;
                h
            };
            let mut out = Vec::new();
            let mut header = EventHeader::default();
            // The kernel program's order: see `class` and its entry point.
            match class(frame, &seg) {
                Class::Opaque => {}
                // A segment that may continue a split hello; with RST or
                // FIN it also ends the connection.
                c @ (Class::Ignore | Class::Teardown) => {
                    if seg.payload_len > 0
                        && let Some((h, c)) = self.continued(frame, &seg, ts_ns)
                    {
                        out.push(Decoded::Chunk(stamp(h), c));
                    }
                    if c == Class::Teardown {
                        out.push(Decoded::Teardown(stamp(teardown_header(&seg))));
                    }
                }
                Class::Tls => {
                    fill_header(&mut header, &seg, EventKind::TLS, size_of::<TlsEvent>());
                    let mut tls = TlsSummary::default();
                    fill_tls(frame, &seg, &mut tls);
                    out.push(Decoded::Tls(stamp(header), tls));
                    // The kernel's tail call (`tlsmon_split`).
                    if HelloAt::of(&tls).may_continue() {
                        let mut p = split_hello(frame, &seg, HelloAt::of(&tls), ts_ns);
                        if p.need != 0 {
                            let span = continuation(&p, &seg);
                            advance(&mut p, span);
                            if self.remember(&seg, p) {
                                self.split_hellos += 1;
                                if let Some((h, c)) = chunk(frame, &seg, span) {
                                    out.push(Decoded::Chunk(stamp(h), c));
                                }
                            }
                        }
                    }
                }
            }
            Ok(out)
        }

        /// Hands the segment to a pending hello of its flow: the chunk of
        /// it the segment carries, if any.
        fn continued(
            &mut self,
            frame: &[u8],
            seg: &TcpSegment,
            now_ns: u64,
        ) -> Option<(EventHeader, Chunk)> {
            let key = FlowKey::of(seg);
            let p = self.pending.get_mut(&key)?;
            if expired(p, now_ns) {
                self.pending.remove(&key);
                return None;
            }
            let span = continuation(p, seg);
            if span.len == 0 {
                if beyond(p, seg) {
                    self.pending.remove(&key);
                }
                return None;
            }
            let c = chunk(frame, seg, span);
            if advance(p, span) {
                self.pending.remove(&key);
            }
            c
        }

        /// Stores a pending hello; when the table is full, expired entries
        /// make room first and a hello that still does not fit is not
        /// reassembled (the kernel's LRU map drops its oldest instead).
        fn remember(&mut self, seg: &TcpSegment, p: PendingHello) -> bool {
            let key = FlowKey::of(seg);
            if self.pending.len() >= MAX_SPLIT_HELLOS as usize && !self.pending.contains_key(&key) {
                self.pending.retain(|_, q| !expired(q, p.since_ns));
                if self.pending.len() >= MAX_SPLIT_HELLOS as usize {
                    return false;
                }
            }
            self.pending.insert(key, p);
            true
        }
    }

    fn teardown_header(seg: &TcpSegment) -> EventHeader {
        let mut h = EventHeader::default();
        fill_header(&mut h, seg, EventKind::TEARDOWN, size_of::<TeardownEvent>());
        h
    }

    fn chunk(frame: &[u8], seg: &TcpSegment, span: Span) -> Option<(EventHeader, Chunk)> {
        // Boxed: a chunk event is larger than is comfortable on the stack.
        let mut ev = std::boxed::Box::new(ChunkEvent {
            header: EventHeader::default(),
            offset: 0,
            len: 0,
            data: [0; crate::split::CHUNK_MAX],
        });
        if !fill_chunk(frame, seg, span, &mut ev) {
            return None;
        }
        let data = ev.data[..span.len as usize].to_vec();
        debug_assert_eq!(usize::from(ev.header.size), CHUNK_DATA_OFF + data.len());
        Some((
            ev.header,
            Chunk {
                offset: ev.offset,
                data,
            },
        ))
    }

    /// One packet on its own: the first event the kernel program would send
    /// for it, with no earlier packets (so no hello is being reassembled).
    pub fn classify(
        frame: &[u8],
        link: LinkType,
        direction: Direction,
        ts_ns: u64,
    ) -> Result<Option<Decoded>, Skip> {
        Classifier::default()
            .packet(frame, link, direction, ts_ns)
            .map(|v| v.into_iter().next())
    }
}
