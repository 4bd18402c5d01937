//! Link types: which ones tlsmon reads, what they are called, and BSD
//! loopback, whose 4-byte header is turned into plain IPv4 or IPv6 here so
//! that the shared parser (and the kernel program) need not know it.

use monitor_common::net::LinkType;

/// LINKTYPE_NULL: BSD loopback, a 4-byte address family in the byte order
/// of the machine that captured (tcpdump.org, linktypes/LINKTYPE_NULL).
pub(super) const NULL: LinkType = LinkType(0);
/// LINKTYPE_LOOP: OpenBSD loopback, the same in network byte order.
pub(super) const LOOP: LinkType = LinkType(108);

/// Link types `monitor_common::net::l3` can parse, after [`normalize`].
pub(super) fn supported(link: LinkType) -> bool {
    matches!(
        link,
        LinkType::ETHERNET
            | LinkType::RAW
            | LinkType::LINUX_SLL
            | LinkType::IPV4
            | LinkType::IPV6
            | LinkType::LINUX_SLL2
            | NULL
            | LOOP
    )
}

/// For error messages.
pub(super) const SUPPORTED: &str = "Ethernet (1), Linux cooked v1 and v2 (113, 276), \
     raw IP (101, 228, 229) and BSD loopback (NULL 0, LOOP 108)";

/// The name of a link type, for the ones a capture is likely to have
/// (tcpdump.org's list of link-layer header types).
pub(super) fn name(link: LinkType) -> Option<&'static str> {
    Some(match link.0 {
        0 => "NULL/loopback",
        1 => "Ethernet",
        9 => "PPP",
        101 => "raw IP",
        105 => "IEEE 802.11",
        108 => "LOOP/OpenBSD loopback",
        113 => "Linux cooked v1",
        127 => "IEEE 802.11 radiotap",
        147..=162 => "user-defined",
        192 => "PPI",
        220 => "USB Linux",
        228 => "raw IPv4",
        229 => "raw IPv6",
        239 => "NFLOG",
        252 => "Wireshark upper PDU",
        253 => "netlink",
        276 => "Linux cooked v2",
        _ => return None,
    })
}

/// BSD loopback's address family values for IPv4 and for IPv6 (which BSDs
/// and macOS number differently).
const AF_INET: u32 = 2;
const AF_INET6: [u32; 3] = [24, 28, 30];
const FAMILY_LEN: usize = 4;

/// How a packet is handed on: BSD loopback frames of IPv4 or IPv6 become
/// raw IPv4 or IPv6 without their 4-byte header. Other families (OSI, IPX)
/// and frames too short for the header keep their link type, which the
/// shared parser counts as not TCP, like any other non-IP frame.
pub(super) fn normalize(link: LinkType, data: &[u8], orig_len: u32) -> (LinkType, &[u8], u32) {
    if link != NULL && link != LOOP {
        return (link, data, orig_len);
    }
    let (Some(family), Some(ip)) = (data.first_chunk::<FAMILY_LEN>(), data.get(FAMILY_LEN..))
    else {
        return (link, data, orig_len);
    };
    let family = if link == LOOP {
        u32::from_be_bytes(*family)
    } else {
        // Host byte order of a machine we do not know: a family is a
        // small number, so the order that gives one is the right one.
        let le = u32::from_le_bytes(*family);
        if le >> 16 == 0 {
            le
        } else {
            u32::from_be_bytes(*family)
        }
    };
    let ip_link = match family {
        AF_INET => LinkType::IPV4,
        f if AF_INET6.contains(&f) => LinkType::IPV6,
        _ => return (link, data, orig_len),
    };
    (ip_link, ip, orig_len.saturating_sub(4))
}
