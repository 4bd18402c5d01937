//! Tunnels: TCP inside VXLAN, Geneve, GRE, IP-in-IP, GTP-U or PPPoE.
//!
//! On an overlay network's underlay interface, or in a capture taken there,
//! every TLS connection travels inside a tunnel. [`innermost`] opens the
//! common ones, at most [`MAX_TUNNELS`] deep, and hands the inner IP header
//! to the TCP parser; the event then describes the inner connection, and
//! says which tunnel it came in (`EventHeader::tunnel`). A tunnel it
//! recognises but does not open is skipped as [`Skip::ENCAPSULATION`], and
//! counted. Every header is checked before it is trusted: a UDP datagram
//! that merely uses a tunnel's port but does not carry a valid header is
//! ordinary UDP, not TCP.

use crate::{
    bytes::Bytes,
    net::{
        ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_PPPOE_SESSION, ETHERTYPE_TEB, IPPROTO_GRE,
        IPPROTO_IPIP, IPPROTO_IPV6, IPPROTO_TCP, IPPROTO_UDP, Ip, Skip, by_version, ethernet, ip,
    },
};

/// Tunnels opened on the way to the TCP segment. One covers an overlay
/// seen from its underlay; deeper nesting is skipped and counted.
pub const MAX_TUNNELS: usize = 1;
/// GTP-U extension headers walked (3GPP TS 29.281 §5.2: a chain, each
/// naming the next). The PDU session container of 5G is the usual one.
pub const MAX_GTP_EXTENSIONS: usize = 4;

/// UDP destination ports of the tunnels opened: VXLAN (RFC 7348 §5, IANA
/// 4789; 8472 is the Linux kernel's default, used by flannel), Geneve
/// (RFC 8926 §3.3), GTP-U (3GPP TS 29.281 §4.4.2.3).
pub const VXLAN_PORT: u16 = 4789;
pub const VXLAN_LINUX_PORT: u16 = 8472;
pub const GENEVE_PORT: u16 = 6081;
pub const GTPU_PORT: u16 = 2152;

/// Which tunnel a segment came in, as `EventHeader::tunnel` carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tunnel(pub u8);

impl Tunnel {
    pub const NONE: Self = Self(0);
    pub const VXLAN: Self = Self(1);
    pub const GENEVE: Self = Self(2);
    pub const GRE: Self = Self(3);
    /// IPv4 or IPv6 directly inside IPv4 or IPv6 (ipip, sit/6in4, ip6tnl).
    pub const IP_IN_IP: Self = Self(4);
    pub const GTPU: Self = Self(5);
    pub const PPPOE: Self = Self(6);

    #[must_use]
    pub const fn name(self) -> &'static str {
        match self.0 {
            0 => "none",
            1 => "vxlan",
            2 => "geneve",
            3 => "gre",
            4 => "ip_in_ip",
            5 => "gtpu",
            6 => "pppoe",
            _ => "unknown",
        }
    }
}

/// What a tunnel header leads to: the offset and EtherType of the inner
/// packet, and the tunnel.
type Inner = (usize, u16, Tunnel);

/// From a network-layer header at `off` announced by `ethertype`, through
/// at most [`MAX_TUNNELS`] tunnels (PPPoE, a link layer, is not counted),
/// to the IP header that carries TCP. Also returns the outermost tunnel.
/// The inner packet's end is bounded by each outer packet's.
#[inline(always)]
pub fn innermost<B: Bytes + ?Sized>(
    b: &B,
    off: usize,
    ethertype: u16,
) -> Result<(Ip, Tunnel), Skip> {
    let (mut off, mut ethertype) = (off, ethertype);
    let mut outer = Tunnel::NONE;
    let mut end = usize::MAX;
    for depth in 0..=MAX_TUNNELS {
        // Each layout of the headers so far leaves its own offsets, and
        // what follows would be verified once per layout: forgotten, they
        // are one (`Bytes::forget`).
        off = b.forget(off);
        end = b.forget(end);
        if ethertype == ETHERTYPE_PPPOE_SESSION {
            (off, ethertype) = pppoe(b, off)?;
            if outer == Tunnel::NONE {
                outer = Tunnel::PPPOE;
            }
        }
        let mut hdr = ip(b, off, ethertype)?;
        hdr.end = hdr.end.min(end);
        if hdr.proto == IPPROTO_TCP {
            return Ok((hdr, outer));
        }
        let Some((inner_off, inner_type, tunnel)) = open(b, &hdr)? else {
            return Err(Skip::NOT_TCP);
        };
        if depth == MAX_TUNNELS {
            break;
        }
        if outer == Tunnel::NONE {
            outer = tunnel;
        }
        (off, ethertype, end) = (inner_off, inner_type, hdr.end);
    }
    Err(Skip::ENCAPSULATION)
}

/// The tunnel an IP packet carries, if any: `Ok(None)` for ordinary
/// traffic.
#[inline(always)]
fn open<B: Bytes + ?Sized>(b: &B, hdr: &Ip) -> Result<Option<Inner>, Skip> {
    match hdr.proto {
        IPPROTO_IPIP => Ok(Some((hdr.l4_off, ETHERTYPE_IPV4, Tunnel::IP_IN_IP))),
        IPPROTO_IPV6 => Ok(Some((hdr.l4_off, ETHERTYPE_IPV6, Tunnel::IP_IN_IP))),
        IPPROTO_GRE => gre(b, hdr.l4_off).map(Some),
        IPPROTO_UDP => udp(b, hdr.l4_off),
        _ => Ok(None),
    }
}

/// GRE (RFC 2784 §2, with RFC 2890's key and sequence number): flags and
/// version, protocol type, then a checksum word, a key and a sequence
/// number as the C, K and S bits say.
#[inline(always)]
fn gre<B: Bytes + ?Sized>(b: &B, off: usize) -> Result<Inner, Skip> {
    let [flags, version, p0, p1] = b.array::<4>(off).ok_or(Skip::MALFORMED)?;
    // Version 1 is PPTP's enhanced GRE (RFC 2637 §4.1), carrying PPP; the
    // routing bit (RFC 1701) adds a variable list of source routes.
    if version & 0x07 != 0 || flags & 0x40 != 0 {
        return Err(Skip::ENCAPSULATION);
    }
    let words =
        usize::from(flags >> 7) + usize::from((flags >> 5) & 1) + usize::from((flags >> 4) & 1);
    carried(
        b,
        off + 4 + 4 * words,
        u16::from_be_bytes([p0, p1]),
        Tunnel::GRE,
    )
}

/// What a GRE or Geneve header's protocol type announces at `inner`: IP,
/// or an Ethernet frame (transparent Ethernet bridging). Anything else is
/// a tunnel tlsmon does not open.
#[inline(always)]
fn carried<B: Bytes + ?Sized>(
    b: &B,
    inner: usize,
    protocol: u16,
    tunnel: Tunnel,
) -> Result<Inner, Skip> {
    match protocol {
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => Ok((inner, protocol, tunnel)),
        ETHERTYPE_TEB => {
            let (o, t) = ethernet(b, inner)?;
            Ok((o, t, tunnel))
        }
        _ => Err(Skip::ENCAPSULATION),
    }
}

/// UDP (RFC 768) to a tunnel port.
#[inline(always)]
fn udp<B: Bytes + ?Sized>(b: &B, off: usize) -> Result<Option<Inner>, Skip> {
    let port = b.be16_at(off + 2).ok_or(Skip::MALFORMED)?;
    let h = off + 8;
    match port {
        VXLAN_PORT | VXLAN_LINUX_PORT => vxlan(b, h),
        GENEVE_PORT => geneve(b, h).map(Some),
        GTPU_PORT => gtpu(b, h),
        _ => Ok(None),
    }
}

/// VXLAN (RFC 7348 §5): flags with the I bit (a valid VNI) set, reserved,
/// VNI, reserved; then an Ethernet frame.
#[inline(always)]
fn vxlan<B: Bytes + ?Sized>(b: &B, h: usize) -> Result<Option<Inner>, Skip> {
    let flags = b.u8_at(h).ok_or(Skip::MALFORMED)?;
    if flags & 0x08 == 0 {
        return Ok(None);
    }
    let (o, t) = ethernet(b, h + 8)?;
    Ok(Some((o, t, Tunnel::VXLAN)))
}

/// Geneve (RFC 8926 §3.4): version (2 bits, 0) and options length (6
/// bits, in 4-byte words), flags, protocol type, VNI, reserved; then the
/// options and the inner packet.
#[inline(always)]
fn geneve<B: Bytes + ?Sized>(b: &B, h: usize) -> Result<Inner, Skip> {
    let [ver_opt, _, p0, p1] = b.array::<4>(h).ok_or(Skip::MALFORMED)?;
    if ver_opt >> 6 != 0 {
        return Err(Skip::ENCAPSULATION);
    }
    let inner = h + 8 + 4 * usize::from(ver_opt & 0x3f);
    carried(b, inner, u16::from_be_bytes([p0, p1]), Tunnel::GENEVE)
}

/// GTP-U (3GPP TS 29.281 §5.1): version 1 with the protocol-type bit, a
/// G-PDU (message type 255, user data; anything else is signalling),
/// length, TEID; then, when any of the E, S or PN bits is set, a sequence
/// number, an N-PDU number and the type of the first extension header, and
/// with E the extension headers, each its length in 4-byte words first and
/// the next one's type last (§5.2). The user packet is IP.
#[inline(always)]
fn gtpu<B: Bytes + ?Sized>(b: &B, h: usize) -> Result<Option<Inner>, Skip> {
    let [flags, msg_type] = b.array::<2>(h).ok_or(Skip::MALFORMED)?;
    if flags >> 4 != 0x3 || msg_type != 0xff {
        return Ok(None);
    }
    let mut off = h + 8;
    if flags & 0x07 != 0 {
        let next_type = b.u8_at(h + 11).ok_or(Skip::MALFORMED)?;
        off = h + 12;
        let mut next = if flags & 0x04 != 0 { next_type } else { 0 };
        for _ in 0..MAX_GTP_EXTENSIONS {
            if next == 0 {
                break;
            }
            let words = usize::from(b.u8_at(off).ok_or(Skip::MALFORMED)?);
            if words == 0 {
                return Err(Skip::MALFORMED);
            }
            next = b.u8_at(off + 4 * words - 1).ok_or(Skip::MALFORMED)?;
            off += 4 * words;
        }
        if next != 0 {
            return Err(Skip::ENCAPSULATION);
        }
    }
    match by_version(b, off) {
        Ok((o, t)) => Ok(Some((o, t, Tunnel::GTPU))),
        // Not IP: an Ethernet or unstructured PDU session.
        Err(_) => Err(Skip::ENCAPSULATION),
    }
}

/// PPPoE session data (RFC 2516 §4: version and type 0x11, code 0, session
/// ID, length) and the PPP protocol field (RFC 1661 §2, one byte when
/// compressed: an odd first byte): IPv4 (0x21) or IPv6 (0x57, RFC 5072).
/// Link control and other PPP traffic is not TCP.
#[inline(always)]
fn pppoe<B: Bytes + ?Sized>(b: &B, off: usize) -> Result<(usize, u16), Skip> {
    let [ver_type, code, _, _, _, _, p0, p1] = b.array::<8>(off).ok_or(Skip::MALFORMED)?;
    if ver_type != 0x11 || code != 0 {
        return Err(Skip::NOT_TCP);
    }
    let (proto, at) = if p0 & 1 == 1 {
        (p0, off + 7)
    } else if p0 == 0 {
        (p1, off + 8)
    } else {
        return Err(Skip::NOT_TCP);
    };
    match proto {
        0x21 => Ok((at, ETHERTYPE_IPV4)),
        0x57 => Ok((at, ETHERTYPE_IPV6)),
        _ => Err(Skip::NOT_TCP),
    }
}

#[cfg(all(test, feature = "user"))]
mod tests {
    use std::{vec, vec::Vec};

    use super::{GENEVE_PORT, GTPU_PORT, MAX_GTP_EXTENSIONS, Tunnel, VXLAN_LINUX_PORT, VXLAN_PORT};
    use crate::{
        emit::{self, GreFields},
        net::{
            ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_MPLS, ETHERTYPE_PPPOE_SESSION,
            ETHERTYPE_QINQ, ETHERTYPE_QINQ_OLD, ETHERTYPE_TEB, ETHERTYPE_VLAN, IPPROTO_GRE,
            IPPROTO_IPIP, IPPROTO_IPV6, IPPROTO_TCP, LinkType, Skip, TcpSegment, flow, segment,
        },
    };

    /// A ClientHello's first bytes: what the inner segments carry.
    const PAYLOAD: &[u8] = &[0x16, 3, 1, 0, 4, 1, 0, 0, 0];
    const CLIENT: [u8; 4] = [10, 0, 0, 1];
    const SERVER: [u8; 4] = [10, 0, 0, 2];
    const CLIENT6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const SERVER6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    fn inner_v4() -> Vec<u8> {
        emit::ipv4(
            IPPROTO_TCP,
            CLIENT,
            SERVER,
            &emit::tcp(40_000, 443, 1000, 0x18, PAYLOAD),
        )
    }

    fn inner_v6() -> Vec<u8> {
        emit::ipv6(
            IPPROTO_TCP,
            CLIENT6,
            SERVER6,
            &emit::tcp(40_000, 443, 1000, 0x18, PAYLOAD),
        )
    }

    fn outer_ip(proto: u8, inner: &[u8]) -> Vec<u8> {
        let ip = emit::ipv4(proto, [198, 51, 100, 1], [198, 51, 100, 2], inner);
        emit::ethernet(&[], ETHERTYPE_IPV4, &ip)
    }

    /// Checks that `frame` holds the inner segment, found in `tunnel`.
    fn found(frame: &[u8], tunnel: Tunnel, family: u8) -> TcpSegment {
        let mut seg = segment(frame, LinkType::ETHERNET)
            .unwrap_or_else(|e| panic!("{}: {e:?} for {frame:02x?}", tunnel.name()));
        flow(frame, &mut seg);
        assert_eq!(seg.tunnel, tunnel.0, "{}", tunnel.name());
        assert_eq!(seg.family, family, "{}", tunnel.name());
        assert_eq!(
            (seg.src_port, seg.dst_port, seg.seq),
            (40_000, 443, 1000),
            "{}",
            tunnel.name()
        );
        assert_eq!(
            &frame[seg.payload_off..seg.payload_off + seg.payload_len],
            PAYLOAD,
            "{}",
            tunnel.name()
        );
        seg
    }

    /// Frames with the inner segment in every tunnel opened, with the
    /// tunnel and the inner family.
    fn opened() -> Vec<(Vec<u8>, Tunnel, u8)> {
        let eth = emit::ethernet(&[], ETHERTYPE_IPV4, &inner_v4());
        let tagged = emit::ethernet(&[ETHERTYPE_VLAN], ETHERTYPE_IPV4, &inner_v4());
        let all = GreFields {
            checksum: true,
            key: true,
            sequence: true,
        };
        let key = GreFields {
            key: true,
            ..GreFields::default()
        };
        let gre = |f, proto, inner: &[u8]| outer_ip(IPPROTO_GRE, &emit::gre(f, proto, inner));
        let geneve = |proto, opts: &[u8], inner: &[u8]| {
            emit::udp_tunnel(GENEVE_PORT, &emit::geneve(proto, opts, inner))
        };
        let gtpu = |ext, inner: &[u8]| emit::udp_tunnel(GTPU_PORT, &emit::gtpu(7, ext, inner));
        let v6_outer = emit::ipv6(IPPROTO_IPIP, CLIENT6, SERVER6, &inner_v4());
        let pppoe_v6 = emit::pppoe(0x57, true, &inner_v6());
        let qinq = |tpid| emit::ethernet(&[tpid, ETHERTYPE_VLAN], ETHERTYPE_IPV4, &inner_v4());
        vec![
            (
                emit::udp_tunnel(VXLAN_PORT, &emit::vxlan(42, &eth)),
                Tunnel::VXLAN,
                4,
            ),
            (
                emit::udp_tunnel(VXLAN_LINUX_PORT, &emit::vxlan(42, &tagged)),
                Tunnel::VXLAN,
                4,
            ),
            (geneve(ETHERTYPE_TEB, &[0xab; 8], &eth), Tunnel::GENEVE, 4),
            (geneve(ETHERTYPE_IPV6, &[], &inner_v6()), Tunnel::GENEVE, 6),
            (gre(all, ETHERTYPE_IPV4, &inner_v4()), Tunnel::GRE, 4),
            (gre(key, ETHERTYPE_TEB, &tagged), Tunnel::GRE, 4),
            (outer_ip(IPPROTO_IPIP, &inner_v4()), Tunnel::IP_IN_IP, 4),
            (outer_ip(IPPROTO_IPV6, &inner_v6()), Tunnel::IP_IN_IP, 6),
            (
                emit::ethernet(&[], ETHERTYPE_IPV6, &v6_outer),
                Tunnel::IP_IN_IP,
                4,
            ),
            (gtpu(false, &inner_v4()), Tunnel::GTPU, 4),
            (gtpu(true, &inner_v6()), Tunnel::GTPU, 6),
            (emit::pppoe_frame(&inner_v4()), Tunnel::PPPOE, 4),
            (
                emit::ethernet(&[ETHERTYPE_VLAN], ETHERTYPE_PPPOE_SESSION, &pppoe_v6),
                Tunnel::PPPOE,
                6,
            ),
            // QinQ with either service-tag EtherType: no tunnel.
            (qinq(ETHERTYPE_QINQ), Tunnel::NONE, 4),
            (qinq(ETHERTYPE_QINQ_OLD), Tunnel::NONE, 4),
        ]
    }

    #[test]
    fn every_tunnel_opened_leads_to_the_inner_segment() {
        for (frame, tunnel, family) in opened() {
            let seg = found(&frame, tunnel, family);
            // Every cut inside the headers is refused, never misread.
            for cut in 0..seg.payload_off {
                assert!(
                    segment(&frame[..cut], LinkType::ETHERNET).is_err(),
                    "{} cut at {cut}",
                    tunnel.name()
                );
            }
        }
    }

    #[test]
    fn tunnels_not_opened_are_counted_and_others_are_not_tunnels() {
        let eth = emit::ethernet(&[], ETHERTYPE_IPV4, &inner_v4());
        let skipped = |frame: &[u8]| segment(frame, LinkType::ETHERNET).err();
        let vxlan = emit::udp_tunnel(VXLAN_PORT, &emit::vxlan(42, &eth));
        // Nested past MAX_TUNNELS.
        assert_eq!(
            skipped(&emit::udp_tunnel(VXLAN_PORT, &emit::vxlan(1, &vxlan))),
            Some(Skip::ENCAPSULATION)
        );
        // PPTP's GRE (version 1), RFC 1701 routing, MPLS inside GRE.
        let mut pptp = outer_ip(
            IPPROTO_GRE,
            &emit::gre(GreFields::default(), 0x880b, &[0; 8]),
        );
        pptp[14 + 20 + 1] = 1;
        assert_eq!(skipped(&pptp), Some(Skip::ENCAPSULATION));
        let mut routed = outer_ip(
            IPPROTO_GRE,
            &emit::gre(GreFields::default(), ETHERTYPE_IPV4, &inner_v4()),
        );
        routed[14 + 20] = 0x40;
        assert_eq!(skipped(&routed), Some(Skip::ENCAPSULATION));
        let mpls_in_gre = outer_ip(
            IPPROTO_GRE,
            &emit::gre(GreFields::default(), ETHERTYPE_MPLS, &[0; 40]),
        );
        assert_eq!(skipped(&mpls_in_gre), Some(Skip::ENCAPSULATION));
        assert_eq!(
            skipped(&emit::ethernet(&[], ETHERTYPE_MPLS, &[0; 60])),
            Some(Skip::ENCAPSULATION)
        );
        // A GTP-U chain longer than MAX_GTP_EXTENSIONS.
        let mut chain = emit::gtpu(7, true, &inner_v4());
        let ext = [1u8, 0, 9, 0x85];
        for _ in 0..MAX_GTP_EXTENSIONS {
            chain.splice(12..12, ext);
        }
        assert_eq!(
            skipped(&emit::udp_tunnel(GTPU_PORT, &chain)),
            Some(Skip::ENCAPSULATION)
        );
        // Not tunnels: VXLAN's port without its I flag, DNS, a GTP-U echo
        // request, PPP link control.
        let mut no_vni = vxlan.clone();
        no_vni[14 + 20 + 8] = 0;
        assert_eq!(skipped(&no_vni), Some(Skip::NOT_TCP));
        assert_eq!(
            skipped(&emit::udp_tunnel(53, &[0; 40])),
            Some(Skip::NOT_TCP)
        );
        let mut echo = emit::gtpu(0, false, &[]);
        echo[1] = 1;
        assert_eq!(
            skipped(&emit::udp_tunnel(GTPU_PORT, &echo)),
            Some(Skip::NOT_TCP)
        );
        let lcp = emit::ethernet(
            &[],
            ETHERTYPE_PPPOE_SESSION,
            &emit::pppoe(0xc021, false, &[1, 1, 0, 4]),
        );
        assert_eq!(skipped(&lcp), Some(Skip::NOT_TCP));
    }

    #[test]
    fn an_inner_packet_ends_where_its_tunnel_ends() {
        // The inner IPv4 header claims 100 bytes more than the tunnel
        // carries: the payload stops at the outer packet's end, and
        // Ethernet padding after the outer packet is not payload.
        let mut inner = inner_v4();
        let total = u16::from_be_bytes([inner[2], inner[3]]) + 100;
        inner[2..4].copy_from_slice(&total.to_be_bytes());
        let mut frame = outer_ip(IPPROTO_IPIP, &inner);
        frame.extend_from_slice(&[0xee; 30]);
        let seg = found(&frame, Tunnel::IP_IN_IP, 4);
        assert_eq!(seg.payload_off + seg.payload_len, frame.len() - 30);
    }

    #[test]
    fn events_say_which_tunnel_they_came_in() {
        let eth = emit::ethernet(&[], ETHERTYPE_IPV4, &inner_v4());
        let frame = emit::udp_tunnel(VXLAN_PORT, &emit::vxlan(42, &eth));
        let Ok(Some(crate::event::Decoded::Tls(h, _))) = crate::classify::classify(
            &frame,
            LinkType::ETHERNET,
            crate::event::Direction::UNKNOWN,
            0,
        ) else {
            panic!("no TLS event through VXLAN");
        };
        assert_eq!(h.tunnel, Tunnel::VXLAN.0);
        assert_eq!(
            (h.src_addr[..4].to_vec(), h.dst_port),
            (CLIENT.to_vec(), 443)
        );
    }
}
