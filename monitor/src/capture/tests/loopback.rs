//! BSD and macOS loopback captures (link types NULL and LOOP), built from
//! the format's description (tcpdump.org, LINKTYPE_NULL and LINKTYPE_LOOP):
//! no BSD machine is at hand to capture on, and Linux's loopback is
//! Ethernet.

use super::*;

const IPV4: &[u8] = b"\x45\x00\x00\x14 rest of an IPv4 header";
const IPV6: &[u8] = b"\x60\x00\x00\x00 rest of an IPv6 header";

/// A frame: the 4-byte address family, in big or little endian, then IP.
fn frame(family: u32, big_endian: bool, ip: &[u8]) -> Vec<u8> {
    let mut v = if big_endian {
        family.to_be_bytes().to_vec()
    } else {
        family.to_le_bytes().to_vec()
    };
    v.extend_from_slice(ip);
    v
}

#[test]
fn bsd_loopback_is_read_as_raw_ip() {
    // (link type, family, family in big endian, payload, what it becomes)
    let cases: [(u32, u32, bool, &[u8], LinkType); 9] = [
        (0, 2, false, IPV4, LinkType::IPV4),
        // NULL is in the capturing host's byte order: a big-endian host.
        (0, 2, true, IPV4, LinkType::IPV4),
        (0, 24, false, IPV6, LinkType::IPV6),
        (0, 28, true, IPV6, LinkType::IPV6),
        (0, 30, false, IPV6, LinkType::IPV6),
        (108, 2, true, IPV4, LinkType::IPV4),
        (108, 24, true, IPV6, LinkType::IPV6),
        (108, 28, true, IPV6, LinkType::IPV6),
        (108, 30, true, IPV6, LinkType::IPV6),
    ];
    for (link, family, big_endian, ip, want) in cases {
        let data = frame(family, big_endian, ip);
        let orig = len32(data.len());
        let mut pcap = PcapFile::new(true, false, link);
        pcap.record(1, 0, &data, orig);
        let mut ng = NgFile::new(false);
        ng.interface(u16::try_from(link).unwrap(), 0, None)
            .enhanced(0, 1, &data, orig, None);
        for file in [pcap.bytes, ng.bytes] {
            let got = read_all(file);
            assert_eq!(
                (got[0].0, got[0].3.as_slice(), got[0].4),
                (want, ip, orig - 4),
                "link {link}, family {family}"
            );
        }
    }
}

#[test]
fn other_loopback_families_are_left_as_they_are() {
    // OSI (7) and IPX (23) frames, and frames too short for the header:
    // handed on whole, under their own link type, which the shared parser
    // counts as not TCP, like any non-IP frame.
    for (link, data) in [
        (0, frame(7, false, b"osi")),
        (108, frame(23, true, b"ipx")),
        (0, b"\x02\x00\x00".to_vec()),
        (108, Vec::new()),
    ] {
        let mut f = PcapFile::new(true, false, link);
        f.record(1, 0, &data, len32(data.len()));
        let got = read_all(f.bytes);
        assert_eq!((got[0].0, &got[0].3), (LinkType(link), &data));
        assert_eq!(
            monitor_common::net::l3(got[0].3.as_slice(), got[0].0),
            Err(monitor_common::net::Skip::NOT_TCP)
        );
    }
}
