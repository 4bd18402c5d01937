//! The test kit: the emit side of the wire formats that `net`, `tunnel`
//! and `tls` parse and of the events `event` defines, so that tests,
//! benchmarks and fuzz targets build packets and events with the same
//! knowledge that reads them, in one place, and state a packet's shape
//! rather than its bytes.
//!
//! Learnt from smoltcp's `wire`: each header is a `*Repr` of its fields
//! ([`EthernetRepr`], [`Ipv4Repr`], [`Ipv6Repr`], [`TcpRepr`],
//! [`tls::ClientHello`], [`tls::ServerHello`]) whose `emit` writes it
//! through the named ranges of [`field`]; every builder's output is
//! parsed back by the parser it mirrors in `emit/tests.rs`.
//!
//! - [`net`]'s headers and [`Frame`], one TCP segment in an Ethernet frame;
//! - the tunnels (below), around such frames or IP packets;
//! - [`tls`]: records, handshake messages, hellos, extensions;
//! - [`event`]: event headers and TLS summaries as the kernel sends them;
//! - [`Flow`]: sequence numbers for a connection's packets, both kinds.
//!
//! Lengths are checked (a test that builds a packet too big for its length
//! fields panics); checksums are left zero except where a parser or a
//! reference dissector would complain (the IPv4 header checksum), since
//! nothing in tlsmon checks them.

use std::{vec, vec::Vec};

use crate::net::{ETHERTYPE_PPPOE_SESSION, IPPROTO_UDP};

pub mod event;
pub mod field;
mod flow;
pub mod net;
#[cfg(test)]
mod tests;
pub mod tls;

pub use flow::{Flow, Step};
pub use net::{
    EthernetRepr, Frame, IpRepr, Ipv4Repr, Ipv6Repr, TcpRepr, checksum, ethernet, ipv4, ipv6, tcp,
    tcp_option,
};

fn be16(n: usize) -> [u8; 2] {
    u16::try_from(n)
        .expect("a length that fits 16 bits")
        .to_be_bytes()
}

/// A UDP header (RFC 768), checksum 0 (none, allowed over IPv4), and
/// `payload`.
#[must_use]
pub fn udp(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = src_port.to_be_bytes().to_vec();
    v.extend_from_slice(&dst_port.to_be_bytes());
    v.extend_from_slice(&be16(8 + payload.len()));
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(payload);
    v
}

/// A VXLAN header (RFC 7348 §5) with the I flag and `vni`, and the inner
/// Ethernet frame; the caller puts it in UDP.
#[must_use]
pub fn vxlan(vni: u32, frame: &[u8]) -> Vec<u8> {
    let mut v = vec![0x08, 0, 0, 0];
    v.extend_from_slice(&(vni << 8).to_be_bytes());
    v.extend_from_slice(frame);
    v
}

/// A Geneve header (RFC 8926 §3.4) carrying `protocol`, with `options`
/// (a multiple of 4 bytes), and the inner packet.
#[must_use]
pub fn geneve(protocol: u16, options: &[u8], inner: &[u8]) -> Vec<u8> {
    assert!(options.len().is_multiple_of(4) && options.len() <= 252);
    let words = u8::try_from(options.len() / 4).expect("at most 63 words");
    let mut v = vec![words, 0];
    v.extend_from_slice(&protocol.to_be_bytes());
    v.extend_from_slice(&[0, 0, 43, 0]); // VNI 43
    v.extend_from_slice(options);
    v.extend_from_slice(inner);
    v
}

/// Which optional GRE fields to include (RFC 2784 §2.1, RFC 2890 §2).
#[derive(Clone, Copy, Debug, Default)]
pub struct GreFields {
    pub checksum: bool,
    pub key: bool,
    pub sequence: bool,
}

/// A GRE header (version 0) carrying `protocol`, with the optional fields
/// asked for (the checksum computed over header and payload), and the
/// inner packet; the caller puts it in IP protocol 47.
#[must_use]
pub fn gre(fields: GreFields, protocol: u16, inner: &[u8]) -> Vec<u8> {
    let flags =
        u8::from(fields.checksum) << 7 | u8::from(fields.key) << 5 | u8::from(fields.sequence) << 4;
    let mut v = vec![flags, 0];
    v.extend_from_slice(&protocol.to_be_bytes());
    let sum_at = v.len();
    if fields.checksum {
        v.extend_from_slice(&[0; 4]);
    }
    if fields.key {
        v.extend_from_slice(&0x0000_2a2a_u32.to_be_bytes());
    }
    if fields.sequence {
        v.extend_from_slice(&7u32.to_be_bytes());
    }
    v.extend_from_slice(inner);
    if fields.checksum {
        let sum = checksum(&v);
        v[sum_at..sum_at + 2].copy_from_slice(&sum.to_be_bytes());
    }
    v
}

/// A GTP-U G-PDU (3GPP TS 29.281 §5.1) for tunnel `teid` with the inner IP
/// packet; with `container`, the optional fields and one PDU session
/// container extension header (§5.2.2.7; type 0x85, one word, QFI 9).
#[must_use]
pub fn gtpu(teid: u32, container: bool, inner: &[u8]) -> Vec<u8> {
    let mut rest = Vec::new();
    if container {
        rest.extend_from_slice(&[0, 0, 0, 0x85]); // sequence, N-PDU, next type
        rest.extend_from_slice(&[1, 0x00, 0x09, 0]); // length 1, content, no next
    }
    rest.extend_from_slice(inner);
    let mut v = vec![if container { 0x34 } else { 0x30 }, 0xff];
    v.extend_from_slice(&be16(rest.len()));
    v.extend_from_slice(&teid.to_be_bytes());
    v.extend_from_slice(&rest);
    v
}

/// A PPPoE session frame's payload (RFC 2516 §4, session 0x1234) with the
/// PPP protocol field (RFC 1661 §2, two bytes, or one when `compressed`)
/// and `inner`; the caller puts it in Ethernet type 0x8864.
#[must_use]
pub fn pppoe(protocol: u16, compressed: bool, inner: &[u8]) -> Vec<u8> {
    let mut ppp = if compressed {
        vec![u8::try_from(protocol).expect("a one-byte protocol")]
    } else {
        protocol.to_be_bytes().to_vec()
    };
    ppp.extend_from_slice(inner);
    let mut v = vec![0x11, 0, 0x12, 0x34];
    v.extend_from_slice(&be16(ppp.len()));
    v.extend_from_slice(&ppp);
    v
}

/// Ethernet, IPv4 between two underlay addresses, UDP to `port`, and
/// `payload`: the outside of a UDP tunnel.
#[must_use]
pub fn udp_tunnel(port: u16, payload: &[u8]) -> Vec<u8> {
    let outer = ipv4(
        IPPROTO_UDP,
        [198, 51, 100, 1],
        [198, 51, 100, 2],
        &udp(49_152, port, payload),
    );
    ethernet(&[], crate::net::ETHERTYPE_IPV4, &outer)
}

/// A PPPoE session frame around an IPv4 packet.
#[must_use]
pub fn pppoe_frame(ip_packet: &[u8]) -> Vec<u8> {
    ethernet(
        &[],
        ETHERTYPE_PPPOE_SESSION,
        &pppoe(0x0021, false, ip_packet),
    )
}
