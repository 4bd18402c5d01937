//! Events from the kernel program to the daemon, through one BPF ring buffer.
//!
//! Every event starts with an [`EventHeader`] (kind, size, timestamp, where
//! the packet was seen, its TCP 4-tuple); the body depends on the kind. Wire
//! structs are `#[repr(C)]`, `Copy`, integers and byte arrays only, with
//! explicit padding, so both sides agree on every byte without `bool`, enum
//! or `Option` layouts getting in the way.

/// What an event carries after its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventKind(pub u8);

impl EventKind {
    /// A TCP segment with RST or FIN and no TLS record at its start:
    /// [`TeardownEvent`].
    pub const TEARDOWN: Self = Self(1);
    /// A TCP segment whose payload starts with a TLS record: [`TlsEvent`].
    /// Its header may also carry RST/FIN flags.
    pub const TLS: Self = Self(2);
    /// Bytes of a ClientHello that spans segments: [`ChunkEvent`].
    pub const CHUNK: Self = Self(3);
    /// A segment without RST or FIN that is one application_data record of
    /// close_notify size (`close::short_record`), its length in
    /// [`EventHeader::last_record`]: [`TeardownEvent`]'s layout, a header
    /// and nothing else.
    pub const SHORT_RECORD: Self = Self(4);
}

/// Which way the packet crossed the interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Direction(pub u8);

impl Direction {
    /// Arriving at this host (TC ingress).
    pub const INGRESS: Self = Self(0);
    /// Leaving this host (TC egress).
    pub const EGRESS: Self = Self(1);
    /// Offline captures that do not record a direction.
    pub const UNKNOWN: Self = Self(2);
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventHeader {
    /// An [`EventKind`] value.
    pub kind: u8,
    /// A [`Direction`] value.
    pub direction: u8,
    /// 4 or 6.
    pub family: u8,
    /// TCP flags byte (RFC 9293 §3.1).
    pub tcp_flags: u8,
    /// Size of the whole event in bytes, header included.
    pub size: u16,
    pub src_port: u16,
    pub dst_port: u16,
    /// The outermost tunnel the packet was found in (`tunnel::Tunnel`), 0
    /// for none; the rest of the header describes the inner packet.
    pub tunnel: u8,
    /// Teardown and short-record events: the length of the
    /// application_data record that ends the payload, if it is of
    /// close_notify size (`close::last_record`); `close::LAST_RECORD_LONGER`
    /// if none of that size does, `close::LAST_RECORD_NONE` (0) without
    /// payload. 0 in other events.
    pub last_record: u8,
    pub ifindex: u32,
    /// TCP sequence number of the first payload byte.
    pub seq: u32,
    /// TCP payload length of the segment.
    pub payload_len: u32,
    /// TCP acknowledgment number: with the ACK flag, the next byte the
    /// sender expects from its peer. A reply that does not acknowledge
    /// what it answers cannot be part of that exchange.
    pub ack: u32,
    /// Offset of the TCP payload in the packet, link header included.
    pub payload_off: u32,
    /// `bpf_ktime_get_ns` (CLOCK_MONOTONIC) or the capture time, in ns.
    pub ts_ns: u64,
    pub src_addr: [u8; 16],
    pub dst_addr: [u8; 16],
}

/// An event of constant size that the pipeline reserves, fills in place
/// and submits (`pipeline::Events::reserve`).
///
/// # Safety
/// Implementors are `#[repr(C)]` wire structs of integers and byte arrays
/// with explicit padding (every bit pattern valid, all-zero included), and
/// their size is a multiple of 8 with 8-byte alignment: the kernel zeroes
/// them with 8-byte stores and the host reads them back as bytes.
pub unsafe trait Event: Copy + Default + 'static {}

// SAFETY: both are repr(C) wire structs as required (see
// `layout_has_no_implicit_padding`).
unsafe impl Event for TeardownEvent {}
unsafe impl Event for TlsEvent {}

/// A segment that can end a side's TLS stream: RST or FIN without a TLS
/// record at the start of its payload ([`EventKind::TEARDOWN`]), or a
/// short record ([`EventKind::SHORT_RECORD`]). The header says it all.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TeardownEvent {
    pub header: EventHeader,
}

/// Handshake messages, change_cipher_spec and alerts listed per segment.
pub const MAX_ITEMS: usize = 8;
/// Host names longer than this are cut (and flagged); 64 covers the vast
/// majority of SNI values while keeping the event small.
pub const SNI_MAX: usize = 64;
/// First ALPN protocol name, cut to this length ("h2", "http/1.1", "acme-tls/1").
pub const ALPN_MAX: usize = 16;
/// RFC 5246 §7.4.1.2: session IDs are at most 32 bytes.
pub const SESSION_ID_MAX: usize = 32;
/// Tickets are identified by their last bytes: RFC 5077 §4's recommended
/// format ends in a MAC, which differs for every ticket.
pub const TICKET_ID_LEN: usize = 16;

/// `Item` values: `content_type << 8 | detail`. Detail is the handshake type
/// for handshake records, the alert description for plaintext alerts, and
/// [`ITEM_OPAQUE`] for records whose content cannot be read (encrypted).
pub const ITEM_OPAQUE: u8 = 0xff;

/// Bits of [`Hello::flags`].
pub mod hello_flags {
    /// A ClientHello or ServerHello was parsed into [`super::Hello`].
    pub const CLIENT_HELLO: u16 = 1 << 0;
    pub const SERVER_HELLO: u16 = 1 << 1;
    /// ServerHello whose random is the HelloRetryRequest value (RFC 8446 §4.1.3).
    pub const HRR: u16 = 1 << 2;
    /// session_ticket extension present (RFC 5077 §3.2); in a ServerHello it
    /// promises a NewSessionTicket.
    pub const TICKET_EXT: u16 = 1 << 3;
    /// ClientHello session_ticket extension carries a ticket (a resumption offer).
    pub const TICKET_OFFERED: u16 = 1 << 4;
    /// pre_shared_key extension (RFC 8446 §4.2.11): offered by a client, or
    /// accepted by a server.
    pub const PSK: u16 = 1 << 5;
    /// early_data extension in a ClientHello (RFC 8446 §4.2.10).
    pub const EARLY_DATA: u16 = 1 << 6;
    /// ClientHello supported_versions lists TLS 1.3, a draft of it or a
    /// variant (`ProtocolVersion::follows_tls13`).
    pub const OFFERS_TLS13: u16 = 1 << 7;
    /// The hello continues past the end of this segment: what follows the
    /// last complete extension was not seen.
    pub const TRUNCATED: u16 = 1 << 8;
    /// SNI or ALPN was longer than the event holds and was cut.
    pub const NAME_CUT: u16 = 1 << 9;
    /// A NewSessionTicket (TLS ≤ 1.2, in clear) was seen; its id is in `ticket_id`.
    pub const NEW_TICKET: u16 = 1 << 10;
    /// Lengths inside the hello contradict each other: not a real hello.
    pub const MALFORMED: u16 = 1 << 11;
    /// Set by userspace on a hello summarized from the chunks of a
    /// ClientHello that spanned segments (`split`).
    pub const REASSEMBLED: u16 = 1 << 12;
}

/// What a ClientHello or ServerHello says, as far as classification needs.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    /// [`hello_flags`] bits.
    pub flags: u16,
    /// legacy_version field of the hello.
    pub legacy_version: u16,
    /// ServerHello: supported_versions selection, or 0; a TLS 1.3 draft
    /// before -22, which had no such extension, its version field.
    /// ClientHello: 0.
    pub selected_version: u16,
    /// ServerHello: the chosen cipher suite. ClientHello: 0.
    pub cipher_suite: u16,
    pub session_id_len: u8,
    pub sni_len: u8,
    pub alpn_len: u8,
    /// Number of extensions walked.
    pub extensions: u8,
    /// A NewSessionTicket's ticket_lifetime_hint in seconds (RFC 5077
    /// §3.3; TLS ≤ 1.2, in clear), with [`hello_flags::NEW_TICKET`].
    pub ticket_lifetime: u32,
    pub session_id: [u8; SESSION_ID_MAX],
    /// Last bytes of the offered (ClientHello session_ticket) or issued
    /// (NewSessionTicket) ticket.
    pub ticket_id: [u8; TICKET_ID_LEN],
    pub sni: [u8; SNI_MAX],
    pub alpn: [u8; ALPN_MAX],
}

impl Default for Hello {
    fn default() -> Self {
        Self {
            flags: 0,
            legacy_version: 0,
            selected_version: 0,
            cipher_suite: 0,
            session_id_len: 0,
            sni_len: 0,
            alpn_len: 0,
            extensions: 0,
            ticket_lifetime: 0,
            session_id: [0; SESSION_ID_MAX],
            ticket_id: [0; TICKET_ID_LEN],
            sni: [0; SNI_MAX],
            alpn: [0; ALPN_MAX],
        }
    }
}

/// What the TLS records at the start of one segment contain.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlsSummary {
    /// Number of valid entries in `items`.
    pub n_items: u8,
    /// Set when more records or messages followed than `items` holds.
    pub items_cut: u8,
    pub pad0: [u8; 6],
    /// In order of appearance; see [`ITEM_OPAQUE`] for the encoding.
    pub items: [u16; MAX_ITEMS],
    /// Payload offsets and lengths of the first hello and NewSessionTicket
    /// bodies, 0 when absent (see `tls::summarize` for why they live here).
    pub hello_at: u32,
    pub hello_len: u32,
    pub nst_at: u32,
    pub nst_len: u32,
    /// Handshake type of the hello at `hello_at`.
    pub hello_type: u8,
    /// Bit `i` set: item `i` is a plaintext alert of level warning (1).
    /// RFC 5246 §7.2: only fatal alerts end a connection; a warning such
    /// as RFC 6066 §3's unrecognized_name lets the handshake go on.
    pub warning_alerts: u8,
    pub pad1: [u8; 2],
    /// Scratch space of the record walk (`tls::summarize`); not meaningful
    /// to consumers.
    pub walk: [u32; 3],
    pub hello: Hello,
}

impl TlsSummary {
    /// Appends an item, or marks the list as cut when it is full.
    #[inline(always)]
    pub fn push(&mut self, content_type: u8, detail: u8) {
        let i = usize::from(self.n_items);
        if let Some(slot) = self.items.get_mut(i) {
            *slot = u16::from(content_type) << 8 | u16::from(detail);
            self.n_items += 1;
        } else {
            self.items_cut = 1;
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlsEvent {
    pub header: EventHeader,
    pub tls: TlsSummary,
}

/// Bytes of a ClientHello spanning segments (`split`). Sent with a
/// variable length: the header's `size` is [`CHUNK_DATA_OFF`] + `len`, and
/// only the first `len` bytes of `data` travel.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkEvent {
    pub header: EventHeader,
    /// Offset of `data` in the hello's stream (0 = the record header).
    pub offset: u32,
    pub len: u32,
    pub data: [u8; crate::split::CHUNK_MAX],
}

/// Where [`ChunkEvent::data`] starts.
pub const CHUNK_DATA_OFF: usize = size_of::<EventHeader>() + 8;

/// Kernel-side counters, indexes into the `STATS` per-CPU array.
pub mod stat {
    use crate::net::Skip;
    /// Ring buffer reservations that failed: events lost.
    #[expect(clippy::cast_possible_truncation, reason = "a handful of skip reasons")]
    pub const LOST_EVENTS: u32 = Skip::COUNT as u32;
    /// Packets that started with a TLS record and produced an event.
    pub const TLS_PACKETS: u32 = LOST_EVENTS + 1;
    /// ClientHellos spanning segments whose bytes were sent for reassembly.
    pub const SPLIT_HELLOS: u32 = TLS_PACKETS + 1;
    pub const COUNT: u32 = SPLIT_HELLOS + 1;
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: all three are #[repr(C)], Copy, made of integers and byte
    // arrays with explicit padding, so every bit pattern is valid.
    unsafe impl aya::Pod for super::EventHeader {}
    unsafe impl aya::Pod for super::TeardownEvent {}
    unsafe impl aya::Pod for super::TlsEvent {}
    unsafe impl aya::Pod for super::ChunkEvent {}
    unsafe impl aya::Pod for crate::split::FlowKey {}
    unsafe impl aya::Pod for crate::split::PendingHello {}
}

/// Reads an event back from ring-buffer bytes. `None` if the bytes are too
/// short for the kind they announce or the kind is unknown.
#[cfg(feature = "user")]
#[must_use]
pub fn decode(bytes: &[u8]) -> Option<Decoded> {
    fn read<T: Copy>(bytes: &[u8]) -> Option<T> {
        if bytes.len() < size_of::<T>() {
            return None;
        }
        // SAFETY: length checked; T is a Pod wire struct (any bit pattern
        // valid); read_unaligned tolerates the ring buffer's 8-byte alignment.
        Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
    }
    let header: EventHeader = read(bytes)?;
    match EventKind(header.kind) {
        EventKind::TEARDOWN | EventKind::SHORT_RECORD => {
            read::<TeardownEvent>(bytes).map(|e| Decoded::Teardown(e.header))
        }
        EventKind::TLS => read::<TlsEvent>(bytes).map(|e| Decoded::Tls(e.header, e.tls)),
        EventKind::CHUNK => {
            let meta: [u8; 8] = bytes
                .get(size_of::<EventHeader>()..CHUNK_DATA_OFF)?
                .try_into()
                .ok()?;
            let offset = u32::from_ne_bytes([meta[0], meta[1], meta[2], meta[3]]);
            let len = u32::from_ne_bytes([meta[4], meta[5], meta[6], meta[7]]) as usize;
            if len > crate::split::CHUNK_MAX {
                return None;
            }
            let data = bytes.get(CHUNK_DATA_OFF..CHUNK_DATA_OFF + len)?.to_vec();
            Some(Decoded::Chunk(header, Chunk { offset, data }))
        }
        _ => None,
    }
}

/// An event decoded into owned values.
#[cfg(feature = "user")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// [`TeardownEvent`]: a teardown or a short record (the header's kind
    /// says which).
    Teardown(EventHeader),
    Tls(EventHeader, TlsSummary),
    Chunk(EventHeader, Chunk),
}

/// The bytes of a [`ChunkEvent`].
#[cfg(feature = "user")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub offset: u32,
    pub data: std::vec::Vec<u8>,
}

#[cfg(all(test, feature = "user"))]
mod tests {
    use super::*;

    fn as_bytes<T>(v: &T) -> &[u8] {
        // SAFETY: test-only view of a Pod wire struct.
        unsafe { core::slice::from_raw_parts(core::ptr::from_ref(v).cast::<u8>(), size_of::<T>()) }
    }

    #[test]
    fn tls_event_round_trips() {
        let mut ev = TlsEvent::default();
        ev.header.kind = EventKind::TLS.0;
        ev.header.size = u16::try_from(size_of::<TlsEvent>()).unwrap();
        ev.header.src_port = 443;
        ev.header.ts_ns = 0x0102_0304_0506_0708;
        ev.tls.push(22, 1);
        ev.tls.hello.sni[..3].copy_from_slice(b"abc");
        ev.tls.hello.sni_len = 3;
        assert_eq!(decode(as_bytes(&ev)), Some(Decoded::Tls(ev.header, ev.tls)));
        // Cut short by one byte: refused, not misread.
        assert_eq!(decode(&as_bytes(&ev)[..size_of::<TlsEvent>() - 1]), None);
    }

    #[test]
    fn teardown_round_trips_and_unknown_kind_is_refused() {
        let mut ev = TeardownEvent::default();
        ev.header.kind = EventKind::TEARDOWN.0;
        ev.header.tcp_flags = crate::net::TCP_RST;
        assert_eq!(decode(as_bytes(&ev)), Some(Decoded::Teardown(ev.header)));
        ev.header.kind = EventKind::SHORT_RECORD.0;
        ev.header.last_record = 19;
        assert_eq!(decode(as_bytes(&ev)), Some(Decoded::Teardown(ev.header)));
        ev.header.kind = 99;
        assert_eq!(decode(as_bytes(&ev)), None);
    }

    #[test]
    fn layout_has_no_implicit_padding() {
        assert_eq!(size_of::<EventHeader>(), 72);
        assert_eq!(size_of::<Hello>() % 8, 0);
        assert_eq!(size_of::<TlsEvent>() % 8, 0);
        assert_eq!(size_of::<TeardownEvent>() % 8, 0);
        assert_eq!(
            (align_of::<TlsEvent>(), align_of::<TeardownEvent>()),
            (8, 8)
        );
        assert_eq!(
            size_of::<TlsEvent>(),
            size_of::<EventHeader>() + size_of::<TlsSummary>()
        );
    }
}
