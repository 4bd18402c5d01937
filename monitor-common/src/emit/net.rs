//! Ethernet (with VLAN tags), IPv4, IPv6 and TCP headers: the emit side
//! of `net`.
//!
//! Each header is a `*Repr` of its fields in host terms, after smoltcp's
//! `wire`: `emit` writes the header through the named ranges of
//! [`super::field`], then the payload, and fills in the lengths from the
//! payload. What the payload is (the EtherType, the IP protocol) is an
//! argument of `emit`, since the layer inside decides it. [`Frame`] puts
//! the three around a TCP payload, the shape nearly every test needs.
//!
//! The defaults are one plain frame from 10.0.0.1:40000 to 10.0.0.2:443
//! with PSH and ACK; a test states only what it cares about, with
//! `..Default::default()`.

use std::{vec, vec::Vec};

use super::{be16, field};
use crate::net::{ETHERTYPE_IPV4, ETHERTYPE_IPV6, IPPROTO_TCP, TCP_ACK, TCP_PSH};

/// RFC 1071's checksum of `bytes`.
#[must_use]
pub fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !u16::try_from(sum).expect("folded to 16 bits")
}

/// The VLAN ID every tag the kit writes carries.
pub const VLAN_ID: u16 = 100;

/// An Ethernet II header (IEEE 802.3 §3.1.1) with VLAN tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EthernetRepr {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    /// The tags' EtherTypes (0x8100, 0x88a8 or 0x9100), outermost first,
    /// each with VLAN ID [`VLAN_ID`].
    pub tags: Vec<u16>,
}

impl Default for EthernetRepr {
    fn default() -> Self {
        Self {
            dst: [0x02, 0, 0, 0, 0, 0x01],
            src: [0x02, 0, 0, 0, 0, 0x02],
            tags: Vec::new(),
        }
    }
}

impl EthernetRepr {
    #[must_use]
    pub fn header_len(&self) -> usize {
        field::ethernet::HEADER_LEN + field::ethernet::TAG_LEN * self.tags.len()
    }

    /// The header, carrying `ethertype`, then `payload`.
    #[must_use]
    pub fn emit(&self, ethertype: u16, payload: &[u8]) -> Vec<u8> {
        use field::ethernet::{DST, ETHERTYPE, SRC, TAG_LEN};
        let mut v = vec![0; self.header_len()];
        v[DST].copy_from_slice(&self.dst);
        v[SRC].copy_from_slice(&self.src);
        // Each tag takes the EtherType's place and pushes it on by four
        // bytes: its TPID, then the TCI (priority 0, VLAN ID).
        let mut at = ETHERTYPE.start;
        for tpid in &self.tags {
            v[at..at + 2].copy_from_slice(&tpid.to_be_bytes());
            v[at + 2..at + 4].copy_from_slice(&VLAN_ID.to_be_bytes());
            at += TAG_LEN;
        }
        v[at..at + 2].copy_from_slice(&ethertype.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }
}

/// An IPv4 header (RFC 791 §3.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub ident: u16,
    pub dont_fragment: bool,
    pub ttl: u8,
    /// Option bytes, a multiple of four (IHL counts 32-bit words).
    pub options: Vec<u8>,
    /// Whether to compute the header checksum or leave it zero: nothing in
    /// tlsmon checks it, but reference dissectors complain.
    pub checksum: bool,
}

impl Default for Ipv4Repr {
    fn default() -> Self {
        Self {
            src: [10, 0, 0, 1],
            dst: [10, 0, 0, 2],
            ident: 0x1234,
            dont_fragment: true,
            ttl: 64,
            options: Vec::new(),
            checksum: true,
        }
    }
}

impl Ipv4Repr {
    #[must_use]
    pub fn header_len(&self) -> usize {
        field::ipv4::HEADER_LEN + self.options.len()
    }

    /// The header, carrying IP protocol `protocol`, then `payload`.
    #[must_use]
    pub fn emit(&self, protocol: u8, payload: &[u8]) -> Vec<u8> {
        use field::ipv4::{
            CHECKSUM, DONT_FRAGMENT, DST, FLAGS_FRAGMENT, HEADER_LEN, IDENT, PROTOCOL, SRC,
            TOTAL_LEN, TTL, VERSION_IHL,
        };
        assert!(
            self.options.len().is_multiple_of(4) && self.options.len() <= 40,
            "IPv4 options come in words, at most ten"
        );
        let len = self.header_len();
        let mut v = vec![0; len];
        v[VERSION_IHL] = 0x40 | u8::try_from(len / 4).expect("IHL fits four bits");
        v[TOTAL_LEN].copy_from_slice(&be16(len + payload.len()));
        v[IDENT].copy_from_slice(&self.ident.to_be_bytes());
        let flags = if self.dont_fragment { DONT_FRAGMENT } else { 0 };
        v[FLAGS_FRAGMENT].copy_from_slice(&flags.to_be_bytes());
        v[TTL] = self.ttl;
        v[PROTOCOL] = protocol;
        v[SRC].copy_from_slice(&self.src);
        v[DST].copy_from_slice(&self.dst);
        v[HEADER_LEN..].copy_from_slice(&self.options);
        if self.checksum {
            let sum = checksum(&v);
            v[CHECKSUM].copy_from_slice(&sum.to_be_bytes());
        }
        v.extend_from_slice(payload);
        v
    }
}

/// An IPv6 header (RFC 8200 §3), traffic class and flow label zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv6Repr {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub hop_limit: u8,
}

impl Default for Ipv6Repr {
    /// fd00::1 to fd00::2.
    fn default() -> Self {
        let mut src = [0; 16];
        src[0] = 0xfd;
        let mut dst = src;
        src[15] = 1;
        dst[15] = 2;
        Self {
            src,
            dst,
            hop_limit: 64,
        }
    }
}

impl Ipv6Repr {
    /// The header, its next header `next_header`, then `payload`.
    #[must_use]
    pub fn emit(&self, next_header: u8, payload: &[u8]) -> Vec<u8> {
        use field::ipv6::{DST, HEADER_LEN, HOP_LIMIT, NEXT_HEADER, PAYLOAD_LEN, SRC, VERSION};
        let mut v = vec![0; HEADER_LEN];
        v[VERSION] = 0x60;
        v[PAYLOAD_LEN].copy_from_slice(&be16(payload.len()));
        v[NEXT_HEADER] = next_header;
        v[HOP_LIMIT] = self.hop_limit;
        v[SRC].copy_from_slice(&self.src);
        v[DST].copy_from_slice(&self.dst);
        v.extend_from_slice(payload);
        v
    }
}

/// An IP header of either version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IpRepr {
    V4(Ipv4Repr),
    V6(Ipv6Repr),
}

impl Default for IpRepr {
    fn default() -> Self {
        Self::V4(Ipv4Repr::default())
    }
}

impl IpRepr {
    /// The EtherType that announces this header.
    #[must_use]
    pub fn ethertype(&self) -> u16 {
        match self {
            Self::V4(_) => ETHERTYPE_IPV4,
            Self::V6(_) => ETHERTYPE_IPV6,
        }
    }

    #[must_use]
    pub fn emit(&self, protocol: u8, payload: &[u8]) -> Vec<u8> {
        match self {
            Self::V4(ip) => ip.emit(protocol, payload),
            Self::V6(ip) => ip.emit(protocol, payload),
        }
    }

    /// The same header the other way: source and destination swapped.
    #[must_use]
    pub fn reversed(&self) -> Self {
        match self {
            Self::V4(ip) => Self::V4(Ipv4Repr {
                src: ip.dst,
                dst: ip.src,
                ..ip.clone()
            }),
            Self::V6(ip) => Self::V6(Ipv6Repr {
                src: ip.dst,
                dst: ip.src,
                ..ip.clone()
            }),
        }
    }
}

/// A TCP header (RFC 9293 §3.1); the checksum and urgent pointer are left
/// zero (nothing in tlsmon reads them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpRepr {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    /// Option bytes, a multiple of four (the data offset counts words);
    /// see [`tcp_option`].
    pub options: Vec<u8>,
}

impl Default for TcpRepr {
    fn default() -> Self {
        Self {
            src_port: 40_000,
            dst_port: 443,
            seq: 0,
            ack: 0,
            flags: TCP_PSH | TCP_ACK,
            window: 0xffff,
            options: Vec::new(),
        }
    }
}

impl TcpRepr {
    #[must_use]
    pub fn header_len(&self) -> usize {
        field::tcp::HEADER_LEN + self.options.len()
    }

    /// The header, then `payload`.
    #[must_use]
    pub fn emit(&self, payload: &[u8]) -> Vec<u8> {
        use field::tcp::{ACK, DATA_OFFSET, DST_PORT, FLAGS, HEADER_LEN, SEQ, SRC_PORT, WINDOW};
        assert!(
            self.options.len().is_multiple_of(4) && self.options.len() <= 40,
            "TCP options come in words, at most ten"
        );
        let len = self.header_len();
        let mut v = vec![0; len];
        v[SRC_PORT].copy_from_slice(&self.src_port.to_be_bytes());
        v[DST_PORT].copy_from_slice(&self.dst_port.to_be_bytes());
        v[SEQ].copy_from_slice(&self.seq.to_be_bytes());
        v[ACK].copy_from_slice(&self.ack.to_be_bytes());
        v[DATA_OFFSET] = u8::try_from(len / 4).expect("at most 15 words") << 4;
        v[FLAGS] = self.flags;
        v[WINDOW].copy_from_slice(&self.window.to_be_bytes());
        v[HEADER_LEN..].copy_from_slice(&self.options);
        v.extend_from_slice(payload);
        v
    }

    /// The same header the other way: ports swapped. Sequence numbers
    /// stay: what the reply acknowledges is the caller's to say.
    #[must_use]
    pub fn reversed(&self) -> Self {
        Self {
            src_port: self.dst_port,
            dst_port: self.src_port,
            ..self.clone()
        }
    }
}

/// TCP options (RFC 9293 §3.2).
pub mod tcp_option {
    /// No-Operation: fills a header to a word boundary.
    pub const NOP: u8 = 1;

    /// NOP, NOP and a timestamps option (RFC 7323 §3.2): twelve bytes, the
    /// way Linux sends it on every segment.
    #[must_use]
    pub fn timestamps(value: u32, echo: u32) -> [u8; 12] {
        let mut o = [NOP, NOP, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0];
        o[4..8].copy_from_slice(&value.to_be_bytes());
        o[8..12].copy_from_slice(&echo.to_be_bytes());
        o
    }
}

/// One TCP segment in an Ethernet frame: the three headers around a
/// payload, their lengths and EtherType and protocol filled in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    pub eth: EthernetRepr,
    pub ip: IpRepr,
    pub tcp: TcpRepr,
}

impl Frame {
    #[must_use]
    pub fn emit(&self, payload: &[u8]) -> Vec<u8> {
        let packet = self.ip.emit(IPPROTO_TCP, &self.tcp.emit(payload));
        self.eth.emit(self.ip.ethertype(), &packet)
    }

    /// The frame of a reply: IP addresses and ports swapped (the link
    /// header and the sequence numbers stay as they are).
    #[must_use]
    pub fn reply(&self) -> Self {
        Self {
            eth: self.eth.clone(),
            ip: self.ip.reversed(),
            tcp: self.tcp.reversed(),
        }
    }
}

/// An Ethernet frame with VLAN tags (VLAN ID [`VLAN_ID`], outermost
/// first) and the default addresses.
#[must_use]
pub fn ethernet(tags: &[u16], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    EthernetRepr {
        tags: tags.to_vec(),
        ..EthernetRepr::default()
    }
    .emit(ethertype, payload)
}

/// An IPv4 header without options, DF set, TTL 64, with its checksum,
/// and `payload`.
#[must_use]
pub fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    Ipv4Repr {
        src,
        dst,
        ..Ipv4Repr::default()
    }
    .emit(proto, payload)
}

/// An IPv6 header, hop limit 64, and `payload`.
#[must_use]
pub fn ipv6(next: u8, src: [u8; 16], dst: [u8; 16], payload: &[u8]) -> Vec<u8> {
    Ipv6Repr {
        src,
        dst,
        ..Ipv6Repr::default()
    }
    .emit(next, payload)
}

/// A TCP header without options and `payload`.
#[must_use]
pub fn tcp(src_port: u16, dst_port: u16, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    TcpRepr {
        src_port,
        dst_port,
        seq,
        flags,
        ..TcpRepr::default()
    }
    .emit(payload)
}
