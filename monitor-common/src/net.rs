//! Link, network and transport headers, as far as tlsmon needs them.
//!
//! Offsets always come from the headers themselves: IPv4 IHL (RFC 791 §3.1),
//! IPv6 extension header lengths (RFC 8200 §4), TCP data offset (RFC 9293
//! §3.1). Fixed header sizes are only minimums to validate against.

use crate::bytes::Bytes;

/// How a captured frame starts. Values are pcap LINKTYPE_* numbers
/// (tcpdump.org link-layer header types), so pcap headers map straight in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkType(pub u32);

impl LinkType {
    pub const ETHERNET: Self = Self(1);
    /// LINKTYPE_RAW: the frame is an IPv4 or IPv6 packet.
    pub const RAW: Self = Self(101);
    /// Linux cooked capture v1 (`tcpdump -i any` on older libpcap).
    pub const LINUX_SLL: Self = Self(113);
    pub const IPV4: Self = Self(228);
    pub const IPV6: Self = Self(229);
    /// Linux cooked capture v2.
    pub const LINUX_SLL2: Self = Self(276);
}

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const ETHERTYPE_VLAN: u16 = 0x8100;
pub const ETHERTYPE_QINQ: u16 = 0x88a8;
/// The service tag's EtherType before IEEE 802.1ad assigned 0x88a8, still
/// used by some switches for QinQ.
pub const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
/// PPPoE session stage (RFC 2516 §4).
pub const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
/// MPLS unicast and multicast (RFC 3032 §5).
pub const ETHERTYPE_MPLS: u16 = 0x8847;
pub const ETHERTYPE_MPLS_MULTICAST: u16 = 0x8848;
/// Transparent Ethernet bridging: an Ethernet frame inside GRE or Geneve.
pub const ETHERTYPE_TEB: u16 = 0x6558;
const ETH_HEADER_LEN: usize = 14;
const VLAN_TAG_LEN: usize = 4;
/// 802.1ad service tag plus 802.1Q customer tag is the deepest stacking seen
/// in practice; deeper stacks are skipped and counted.
pub const MAX_VLAN_TAGS: usize = 2;
/// IPv6 extension headers walked before giving up (hop-by-hop, routing,
/// destination options; RFC 8200 §4.1 recommends at most one of each).
pub const MAX_IPV6_EXT_HEADERS: usize = 4;

pub const IPPROTO_TCP: u8 = 6;
/// IPv4 in IP (RFC 2003) and IPv6 in IP (RFC 4213 §3.5, "6in4").
pub const IPPROTO_IPIP: u8 = 4;
pub const IPPROTO_IPV6: u8 = 41;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_GRE: u8 = 47;
const IPV6_HOP_BY_HOP: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_DEST_OPTS: u8 = 60;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;

/// Why a packet was not classified. Values index the kernel's skip counters
/// and are stable: userspace prints them by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Skip(pub u32);

impl Skip {
    /// Not IP, or IP but not TCP: normal traffic, not counted.
    pub const NOT_TCP: Self = Self(0);
    /// Headers cut short or inconsistent (IHL < 5, data offset < 5, lengths
    /// beyond the frame).
    pub const MALFORMED: Self = Self(1);
    /// An IP fragment: TCP headers and payload cannot be read from it alone.
    pub const FRAGMENT: Self = Self(2);
    /// More VLAN tags or IPv6 extension headers than the named limits.
    pub const TOO_DEEP: Self = Self(3);
    /// In a tunnel tlsmon recognises but does not open (see `tunnel`):
    /// nested deeper than `tunnel::MAX_TUNNELS`, MPLS, or a variant it does
    /// not read (GRE with routing or version 1, an unknown protocol inside
    /// GRE or Geneve, GTP-U extension headers past their limit).
    pub const ENCAPSULATION: Self = Self(4);
    pub const COUNT: usize = 5;

    #[must_use]
    pub const fn name(self) -> &'static str {
        match self.0 {
            0 => "not_tcp",
            1 => "malformed",
            2 => "fragment",
            3 => "too_deep",
            4 => "encapsulation",
            _ => "unknown",
        }
    }
}

/// The parts of a TCP segment that classification uses.
///
/// [`segment`] fills the offsets, lengths and flags, which decide what a
/// packet is; the addresses, ports and sequence number are read by [`flow`]
/// only for packets that produce an event. Application data, the bulk of
/// traffic, never needs them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpSegment {
    /// 4 or 6.
    pub family: u8,
    pub flags: u8,
    pub src_port: u16,
    pub dst_port: u16,
    /// IPv4 addresses sit in the first four bytes, the rest zero.
    pub src_addr: [u8; 16],
    pub dst_addr: [u8; 16],
    pub seq: u32,
    /// Acknowledgment number (meaningful with the ACK flag, RFC 9293 §3.1).
    pub ack: u32,
    /// Offsets of the IP and TCP headers.
    pub l3_off: usize,
    pub l4_off: usize,
    pub payload_off: usize,
    /// From the IP length fields, so Ethernet padding is excluded.
    pub payload_len: usize,
    /// The outermost tunnel the segment was found in (`tunnel::Tunnel`),
    /// 0 for none; offsets and addresses are the inner packet's.
    pub tunnel: u8,
}

/// Finds the layer-3 header: its offset and EtherType.
#[inline(always)]
pub fn l3<B: Bytes + ?Sized>(b: &B, link: LinkType) -> Result<(usize, u16), Skip> {
    match link {
        LinkType::ETHERNET => ethernet(b, 0),
        LinkType::LINUX_SLL => Ok((16, b.be16_at(14).ok_or(Skip::MALFORMED)?)),
        LinkType::LINUX_SLL2 => Ok((20, b.be16_at(0).ok_or(Skip::MALFORMED)?)),
        LinkType::RAW | LinkType::IPV4 | LinkType::IPV6 => by_version(b, 0),
        _ => Err(Skip::NOT_TCP),
    }
}

/// An Ethernet frame at `off`: the offset and EtherType of what it
/// carries, past at most [`MAX_VLAN_TAGS`] VLAN tags.
#[inline(always)]
pub fn ethernet<B: Bytes + ?Sized>(b: &B, off: usize) -> Result<(usize, u16), Skip> {
    let mut ethertype = b.be16_at(off + 12).ok_or(Skip::MALFORMED)?;
    let mut off = off + ETH_HEADER_LEN;
    for _ in 0..MAX_VLAN_TAGS {
        if !is_vlan(ethertype) {
            return Ok((off, ethertype));
        }
        // The tag's own EtherType field follows the 2-byte TCI.
        ethertype = b.be16_at(off + 2).ok_or(Skip::MALFORMED)?;
        off += VLAN_TAG_LEN;
    }
    if is_vlan(ethertype) {
        return Err(Skip::TOO_DEEP);
    }
    Ok((off, ethertype))
}

#[inline(always)]
fn is_vlan(ethertype: u16) -> bool {
    ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ || ethertype == ETHERTYPE_QINQ_OLD
}

/// An IP packet at `off` with no link header: its EtherType from the IP
/// version (RFC 791 §3.1, RFC 8200 §3).
#[inline(always)]
pub fn by_version<B: Bytes + ?Sized>(b: &B, off: usize) -> Result<(usize, u16), Skip> {
    match b.u8_at(off).ok_or(Skip::MALFORMED)? >> 4 {
        4 => Ok((off, ETHERTYPE_IPV4)),
        6 => Ok((off, ETHERTYPE_IPV6)),
        _ => Err(Skip::NOT_TCP),
    }
}

/// Parses down to the TCP payload, addresses, ports and sequence number
/// included. Anything that is not a whole, unfragmented TCP segment is a
/// [`Skip`].
#[inline(always)]
pub fn tcp<B: Bytes + ?Sized>(b: &B, link: LinkType) -> Result<TcpSegment, Skip> {
    let mut seg = segment(b, link)?;
    flow(b, &mut seg);
    Ok(seg)
}

/// Parses down to the TCP payload: offsets, lengths, flags and family, the
/// least that [`crate::classify::class`] needs. See [`flow`] for the rest.
#[inline(always)]
pub fn segment<B: Bytes + ?Sized>(b: &B, link: LinkType) -> Result<TcpSegment, Skip> {
    if link == LinkType::ETHERNET
        && let Some(seg) = plain_ipv4(b)
    {
        return Ok(seg);
    }
    let (off, ethertype) = l3(b, link)?;
    let (mut ip, tunnel) = crate::tunnel::innermost(b, off, ethertype)?;
    // The general path reaches here by many header layouts (VLAN tags,
    // IPv4 options, IPv6 extension headers, tunnels), and everything
    // after would be verified once for each (`Bytes::forget`).
    ip.l3_off = b.forget(ip.l3_off);
    ip.l4_off = b.forget(ip.l4_off);
    ip.end = b.forget(ip.end);
    // RFC 9293 §3.1: data offset (4 bits, in 32-bit words) and the flags
    // byte follow ports, seq and ack.
    let [off_byte, flags] = b.array::<2>(ip.l4_off + 12).ok_or(Skip::MALFORMED)?;
    let data_off = usize::from(off_byte >> 4) * 4;
    if data_off < 20 {
        return Err(Skip::MALFORMED);
    }
    let payload_off = ip.l4_off + data_off;
    // A capture cut by its snap length holds less than the IP header says;
    // classify what is there (TLS records running past the end are handled
    // as truncated). On a live skb the two agree unless the packet is bad.
    let l4_end = ip.end.min(b.len());
    if payload_off > l4_end {
        return Err(Skip::MALFORMED);
    }
    Ok(TcpSegment {
        family: ip.family,
        flags,
        l3_off: ip.l3_off,
        l4_off: ip.l4_off,
        payload_off,
        payload_len: l4_end - payload_off,
        tunnel: tunnel.0,
        ..TcpSegment::default()
    })
}

/// Ethernet, an IPv4 header without options, and the fixed part of a TCP
/// header.
const PLAIN_HEAD: usize = ETH_HEADER_LEN + 20 + 20;

/// [`segment`] for the shape of nearly every packet on a proxy host:
/// untagged Ethernet, IPv4 with IHL 5, unfragmented TCP. Those headers are
/// read from one block with one bounds check and loads at fixed offsets,
/// where the general path checks bounds for every field it reads; this is
/// most of the per-packet cost of application data, which is then done.
///
/// It only ever accepts: anything else (a VLAN tag, IP options, IPv6, a
/// fragment, a malformed or BIG TCP length) is `None`, and the general path
/// decides it, so both agree on every packet by construction.
#[inline(always)]
fn plain_ipv4<B: Bytes + ?Sized>(b: &B) -> Option<TcpSegment> {
    const IP: usize = ETH_HEADER_LEN;
    const TCP: usize = IP + 20;
    let h = b.block::<PLAIN_HEAD>(0)?;
    // EtherType (IEEE 802.3 §3.2.6); RFC 791 §3.1: version 4 and IHL 5 in
    // one byte, flags/fragment offset (bytes 6-7; DF may be set), protocol
    // (byte 9), total length (bytes 2-3).
    let [t0, t1] = ETHERTYPE_IPV4.to_be_bytes();
    if h[12] != t0
        || h[13] != t1
        || h[IP] != 0x45
        || h[IP + 6] & 0x3f != 0
        || h[IP + 7] != 0
        || h[IP + 9] != IPPROTO_TCP
    {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([h[IP + 2], h[IP + 3]]));
    // RFC 9293 §3.1: data offset in 32-bit words, then the flags byte.
    let data_off = usize::from(h[TCP + 12] >> 4) * 4;
    let payload_off = TCP + data_off;
    // A total length below the headers (0 included: BIG TCP) puts the end
    // before the payload, so the last test sends those to the general path.
    let l4_end = (IP + total).min(b.len());
    if data_off < 20 || payload_off > l4_end {
        return None;
    }
    Some(TcpSegment {
        family: 4,
        flags: h[TCP + 13],
        l3_off: IP,
        l4_off: TCP,
        payload_off,
        payload_len: l4_end - payload_off,
        ..TcpSegment::default()
    })
}

/// Reads the addresses, ports, sequence and acknowledgment numbers of a
/// segment found by [`segment`]. They lie inside headers `segment` already checked, so the
/// reads cannot fail on the same bytes.
#[inline(always)]
pub fn flow<B: Bytes + ?Sized>(b: &B, seg: &mut TcpSegment) {
    if let Some(h) = b.array::<12>(seg.l4_off) {
        seg.src_port = u16::from_be_bytes([h[0], h[1]]);
        seg.dst_port = u16::from_be_bytes([h[2], h[3]]);
        seg.seq = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
        seg.ack = u32::from_be_bytes([h[8], h[9], h[10], h[11]]);
    }
    if seg.family == 4 {
        if let Some(a) = b.array::<8>(seg.l3_off + 12) {
            seg.src_addr[..4].copy_from_slice(&a[..4]);
            seg.dst_addr[..4].copy_from_slice(&a[4..]);
        }
    } else {
        if let Some(a) = b.array::<16>(seg.l3_off + 8) {
            seg.src_addr = a;
        }
        if let Some(a) = b.array::<16>(seg.l3_off + 24) {
            seg.dst_addr = a;
        }
    }
}

/// An IP header: where it and its payload are, and what the payload is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ip {
    /// 4 or 6.
    pub family: u8,
    /// IPv4 protocol or the IPv6 next header after extension headers.
    pub proto: u8,
    pub l3_off: usize,
    pub l4_off: usize,
    /// End of the packet by its length field (the frame's end for BIG TCP
    /// and jumbograms).
    pub end: usize,
}

/// The IP header at `off`, by the EtherType that announced it. Anything
/// else is not TCP, except MPLS, a tunnel tlsmon does not open.
#[inline(always)]
pub fn ip<B: Bytes + ?Sized>(b: &B, off: usize, ethertype: u16) -> Result<Ip, Skip> {
    match ethertype {
        ETHERTYPE_IPV4 => ipv4(b, off),
        ETHERTYPE_IPV6 => ipv6(b, off),
        ETHERTYPE_MPLS | ETHERTYPE_MPLS_MULTICAST => Err(Skip::ENCAPSULATION),
        _ => Err(Skip::NOT_TCP),
    }
}

/// IPv4 (RFC 791 §3.1).
#[inline(always)]
fn ipv4<B: Bytes + ?Sized>(b: &B, off: usize) -> Result<Ip, Skip> {
    // Version/IHL, TOS, total length, identification, flags/fragment
    // offset; then TTL and protocol.
    let hdr: [u8; 10] = b.array(off).ok_or(Skip::MALFORMED)?;
    if hdr[0] >> 4 != 4 {
        return Err(Skip::MALFORMED);
    }
    let ihl = usize::from(hdr[0] & 0x0f) * 4;
    if ihl < 20 {
        return Err(Skip::MALFORMED);
    }
    // More-fragments flag or a non-zero fragment offset.
    if u16::from_be_bytes([hdr[6], hdr[7]]) & 0x3fff != 0 {
        return Err(Skip::FRAGMENT);
    }
    let total = usize::from(u16::from_be_bytes([hdr[2], hdr[3]]));
    // GSO packets beyond 64 KiB ("BIG TCP", Linux 6.3+) carry total length 0:
    // the frame length is then the only bound.
    let end = if total == 0 { b.len() } else { off + total };
    if total != 0 && total < ihl {
        return Err(Skip::MALFORMED);
    }
    Ok(Ip {
        family: 4,
        proto: hdr[9],
        l3_off: off,
        l4_off: off + ihl,
        end,
    })
}

/// IPv6 (RFC 8200), past at most [`MAX_IPV6_EXT_HEADERS`] extension
/// headers.
#[inline(always)]
fn ipv6<B: Bytes + ?Sized>(b: &B, off: usize) -> Result<Ip, Skip> {
    let fixed: [u8; 8] = b.array(off).ok_or(Skip::MALFORMED)?;
    if fixed[0] >> 4 != 6 {
        return Err(Skip::MALFORMED);
    }
    let payload = usize::from(u16::from_be_bytes([fixed[4], fixed[5]]));
    // Payload length 0 is a jumbogram or BIG TCP GSO packet: bound by frame.
    let end = if payload == 0 {
        b.len()
    } else {
        off + 40 + payload
    };
    let mut next = fixed[6];
    let mut l4 = off + 40;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        match next {
            IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_DEST_OPTS => {
                // Next header, then length in 8-octet units excluding the first.
                let [nh, len] = b.array::<2>(l4).ok_or(Skip::MALFORMED)?;
                next = nh;
                l4 += (usize::from(len) + 1) * 8;
            }
            IPV6_FRAGMENT => return Err(Skip::FRAGMENT),
            _ => break,
        }
    }
    match next {
        IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_DEST_OPTS => Err(Skip::TOO_DEEP),
        IPV6_FRAGMENT => Err(Skip::FRAGMENT),
        proto => Ok(Ip {
            family: 6,
            proto,
            l3_off: off,
            l4_off: l4,
            end,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::{vec, vec::Vec};

    use super::{LinkType, Skip, TCP_ACK, TCP_PSH, TcpSegment, plain_ipv4, segment};
    use crate::{bytes::Bytes, emit};

    /// A frame through the general path only: no [`Bytes::block`].
    struct General<'a>(&'a [u8]);

    impl Bytes for General<'_> {
        fn len(&self) -> usize {
            self.0.len()
        }

        fn array<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
            self.0.array(off)
        }

        fn copy_prefix<const CAP: usize>(&self, off: usize, dst: &mut [u8; CAP], n: usize) -> bool {
            self.0.copy_prefix(off, dst, n)
        }
    }

    /// Ethernet, IPv4 without options, TCP with 12 bytes of options (the
    /// room of the timestamps Linux sends, left zero), then `payload`.
    fn frame(payload: &[u8]) -> Vec<u8> {
        emit::Frame {
            eth: emit::EthernetRepr {
                dst: [0; 6],
                src: [0; 6],
                tags: vec![],
            },
            ip: emit::IpRepr::V4(emit::Ipv4Repr {
                ident: 0,
                checksum: false,
                ..emit::Ipv4Repr::default()
            }),
            tcp: emit::TcpRepr {
                src_port: 443,
                dst_port: 50_000,
                window: 0,
                options: vec![0; 12],
                ..emit::TcpRepr::default()
            },
        }
        .emit(payload)
    }

    #[test]
    fn a_plain_ipv4_segment_is_found_from_its_headers() {
        let f = frame(&[0x17, 3, 3, 0, 4, 1, 2, 3, 4]);
        let seg = segment(&f[..], LinkType::ETHERNET).unwrap();
        assert_eq!(
            seg,
            TcpSegment {
                family: 4,
                flags: TCP_ACK | TCP_PSH,
                l3_off: 14,
                l4_off: 34,
                payload_off: 66,
                payload_len: 9,
                ..TcpSegment::default()
            }
        );
        // Ethernet padding after the IP packet is not payload.
        let mut padded = f.clone();
        padded.extend_from_slice(&[0; 6]);
        assert_eq!(segment(&padded[..], LinkType::ETHERNET), Ok(seg));
    }

    /// The fast path must never decide differently from the general one:
    /// every header byte set to values that matter somewhere (EtherTypes,
    /// versions and IHLs, fragment bits, protocols, data offsets, lengths),
    /// and every truncation, give the same result through both.
    #[test]
    fn the_fast_path_agrees_with_the_general_one() {
        const VALUES: [u8; 16] = [
            0x00, 0x01, 0x04, 0x05, 0x06, 0x08, 0x10, 0x20, 0x3f, 0x40, 0x45, 0x46, 0x50, 0x81,
            0x86, 0xff,
        ];
        let base = frame(&[0x16, 3, 1, 0, 200, 1, 0, 0, 196]);
        let mut checked = 0;
        let mut fast = 0;
        for at in 0..base.len() {
            for v in VALUES {
                let mut f = base.clone();
                f[at] = v;
                let got = segment(&f[..], LinkType::ETHERNET);
                assert_eq!(
                    got,
                    segment(&General(&f), LinkType::ETHERNET),
                    "byte {at} = {v:#x}"
                );
                checked += 1;
                fast += usize::from(plain_ipv4(&f[..]).is_some());
            }
        }
        for len in 0..base.len() {
            let f = &base[..len];
            assert_eq!(
                segment(f, LinkType::ETHERNET),
                segment(&General(f), LinkType::ETHERNET),
                "cut to {len}"
            );
        }
        // Not vacuous: the fast path took most frames and left some.
        assert!(plain_ipv4(&base[..]).is_some());
        assert!(fast > checked / 2 && fast < checked, "{fast} of {checked}");
        let mut frag = base.clone();
        frag[21] = 1;
        assert_eq!(segment(&frag[..], LinkType::ETHERNET), Err(Skip::FRAGMENT));
    }
}
