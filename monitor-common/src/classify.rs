//! One packet in, at most one event out: the per-packet decision shared by
//! the kernel program and `tlsmon replay --engine host`.
//!
//! The decision is made from the TCP flags and the first five payload bytes.
//! Application data, which is nearly all traffic on an established TLS
//! connection, is recognised by its record header and dropped here without
//! further reads or map lookups; that is how the kernel stops looking at a
//! flow once its handshake is over, while still seeing alerts, RST and FIN.

use crate::{
    bytes::Bytes,
    event::{EventHeader, EventKind, TlsSummary},
    net::{TCP_FIN, TCP_RST, TcpSegment},
    tls::{ContentType, RECORD_HEADER_LEN, record_header, summarize},
};

/// What to do with a TCP segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Nothing tlsmon needs.
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
    h.payload_len = seg.payload_len as u32;
    h.src_addr = seg.src_addr;
    h.dst_addr = seg.dst_addr;
}

/// Fills a TLS summary for a segment classified [`Class::Tls`].
#[inline(always)]
pub fn fill_tls<B: Bytes + ?Sized>(b: &B, seg: &TcpSegment, out: &mut TlsSummary) {
    summarize(b, seg.payload_off, seg.payload_off + seg.payload_len, out);
}

#[cfg(feature = "user")]
pub use host::classify;

#[cfg(feature = "user")]
mod host {
    use super::{Class, class, fill_header, fill_tls};
    use crate::{
        event::{Decoded, Direction, EventHeader, EventKind, TeardownEvent, TlsEvent, TlsSummary},
        net::{LinkType, Skip, tcp},
    };

    /// The whole per-packet path for a frame held in memory: what the kernel
    /// program does, compiled for the host. `Ok(None)` is a packet that
    /// needs no event.
    pub fn classify(
        frame: &[u8],
        link: LinkType,
        direction: Direction,
        ts_ns: u64,
    ) -> Result<Option<Decoded>, Skip> {
        let seg = tcp(frame, link)?;
        let mut header = EventHeader::default();
        let decoded = match class(frame, &seg) {
            Class::Ignore => return Ok(None),
            Class::Teardown => {
                fill_header(
                    &mut header,
                    &seg,
                    EventKind::TEARDOWN,
                    size_of::<TeardownEvent>(),
                );
                header.direction = direction.0;
                header.ts_ns = ts_ns;
                Decoded::Teardown(header)
            }
            Class::Tls => {
                fill_header(&mut header, &seg, EventKind::TLS, size_of::<TlsEvent>());
                header.direction = direction.0;
                header.ts_ns = ts_ns;
                let mut tls = TlsSummary::default();
                fill_tls(frame, &seg, &mut tls);
                Decoded::Tls(header, tls)
            }
        };
        Ok(Some(decoded))
    }
}
