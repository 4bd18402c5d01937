//! What a TCP segment is to tlsmon, and how its events are filled: the
//! pure parts of the per-packet pipeline (`pipeline`), which the kernel
//! program and `tlsmon replay --engine host` share.
//!
//! The decision is made from the TCP flags and the first five payload bytes.
//! Application data, which is nearly all traffic on an established TLS
//! connection, is recognised by its record header and dropped here without
//! further reads or map lookups ([`Class::Opaque`]); that is how the kernel
//! stops looking at a flow once its handshake is over, while still seeing
//! alerts, RST and FIN, and the one record of close_notify size that may
//! end a TLS 1.3 stream ([`Class::Short`], see [`crate::close`]).

use crate::{
    bytes::Bytes,
    close::{SHORT_RECORD_MAX, short_record},
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
    /// No RST or FIN, and the payload is one application_data record of
    /// close_notify size (its length): a TLS 1.3 close_notify may be it.
    Short(u8),
}

/// Decides from the TCP flags and the first record header.
///
/// An application_data segment is [`Class::Short`] only if its length
/// allows it, which is tested first: that a segment of any other length is
/// opaque needs nothing but its length and flags.
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
            if seg.payload_len <= SHORT_RECORD_MAX + RECORD_HEADER_LEN
                && let Some(n) = short_record(&h, seg.payload_len)
            {
                return Class::Short(n);
            }
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
/// and the payload's offset and length are bounded by `skb->len` (u32): no
/// truncation.
#[inline(always)]
#[expect(clippy::cast_possible_truncation, reason = "see the doc comment")]
pub fn fill_header(h: &mut EventHeader, seg: &TcpSegment, kind: EventKind, size: usize) {
    h.kind = kind.0;
    h.family = seg.family;
    h.tcp_flags = seg.flags;
    h.size = size as u16;
    h.src_port = seg.src_port;
    h.dst_port = seg.dst_port;
    h.tunnel = seg.tunnel;
    h.seq = seg.seq;
    h.ack = seg.ack;
    h.payload_len = seg.payload_len as u32;
    h.payload_off = seg.payload_off as u32;
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
pub use crate::host::{Classifier, classify};
