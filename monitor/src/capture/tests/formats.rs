//! Each format and variant, and the errors about them.

use super::{legacy::MAX_RECORD_LEN, *};

// ---- classic pcap --------------------------------------------------

#[test]
fn pcap_little_endian_microseconds() {
    let mut f = PcapFile::new(true, false, 1);
    f.record(1_700_000_000, 123_456, b"first frame", 60)
        .record(1_700_000_001, 999_999, b"", 0);
    let got = read_all(f.bytes.clone());
    assert_eq!(
        got,
        vec![
            (
                LinkType::ETHERNET,
                1_700_000_000_123_456_000,
                Direction::UNKNOWN,
                b"first frame".to_vec(),
                60
            ),
            (
                LinkType::ETHERNET,
                1_700_000_001_999_999_000,
                Direction::UNKNOWN,
                vec![],
                0
            ),
        ]
    );
}

#[test]
fn pcap_big_endian_nanoseconds_sll2() {
    let mut f = PcapFile::new(false, true, 276);
    f.record(5, 7, b"\x08\x00abc", 1500);
    assert_eq!(f.bytes[..4], [0xa1, 0xb2, 0x3c, 0x4d]);
    let got = read_all(f.bytes.clone());
    assert_eq!(
        got,
        vec![(
            LinkType::LINUX_SLL2,
            5_000_000_007,
            Direction::UNKNOWN,
            b"\x08\x00abc".to_vec(),
            1500
        )]
    );
}

#[test]
fn pcap_little_endian_nanoseconds_and_big_endian_microseconds() {
    let mut f = PcapFile::new(true, true, 101);
    f.record(1, 2, b"x", 1);
    assert_eq!(read_all(f.bytes.clone())[0].1, 1_000_000_002);
    assert_eq!(read_all(f.bytes.clone())[0].0, LinkType::RAW);
    let mut f = PcapFile::new(false, false, 113);
    f.record(1, 2, b"x", 1);
    assert_eq!(read_all(f.bytes.clone())[0].1, 1_000_002_000);
    assert_eq!(read_all(f.bytes.clone())[0].0, LinkType::LINUX_SLL);
}

#[test]
fn pcap_errors_are_clear() {
    // A classic pcap has one link type, and no interfaces to speak of.
    let f = PcapFile::new(true, false, 147);
    let err = from_bytes(f.bytes.clone()).err().unwrap();
    assert_eq!(
        err.to_string(),
        "unsupported link type 147 (user-defined); tlsmon reads Ethernet (1), \
         Linux cooked v1 and v2 (113, 276), raw IP (101, 228, 229) and \
         BSD loopback (NULL 0, LOOP 108)"
    );
    let f = PcapFile::new(false, false, 127);
    let err = from_bytes(f.bytes.clone()).err().unwrap().to_string();
    assert!(
        err.starts_with("unsupported link type 127 (IEEE 802.11 radiotap); tlsmon reads Ethernet"),
        "{err}"
    );
    let f = PcapFile::new(true, false, 4242);
    let err = from_bytes(f.bytes.clone()).err().unwrap().to_string();
    assert!(
        err.starts_with("unsupported link type 4242; tlsmon reads"),
        "{err}"
    );

    let err = from_bytes(b"GET / HTTP/1.1\r\n".to_vec()).err().unwrap();
    assert_eq!(
        err.to_string(),
        "not a pcap or pcapng file (magic 0x47455420)"
    );
    let err = from_bytes(vec![0xd4, 0xc3]).err().unwrap();
    assert_eq!(
        err.to_string(),
        "not a pcap or pcapng file (file is only 2 bytes)"
    );

    let mut f = PcapFile::new(true, false, 1);
    f.record(1, 0, b"abcdef", 6);
    let cut = f.bytes.len() - 1;
    let results = collect(from_bytes(f.bytes[..cut].to_vec()).unwrap());
    assert_eq!(results.len(), 1);
    assert_eq!(
        results[0].as_ref().err().unwrap().to_string(),
        "truncated record at byte 24"
    );

    let mut f = PcapFile::new(true, false, 1);
    f.bytes[4] = 3;
    let err = from_bytes(f.bytes).err().unwrap();
    assert_eq!(err.to_string(), "unsupported pcap version 3.4");
}

// ---- pcapng --------------------------------------------------------

#[test]
fn pcapng_both_byte_orders() {
    for le in [true, false] {
        let f = sample_ng(le);
        let got = read_all(f.bytes.clone());
        assert_eq!(
            got,
            vec![
                (
                    LinkType::ETHERNET,
                    1_700_000_000_000_001_000,
                    Direction::INGRESS,
                    b"inbound".to_vec(),
                    100
                ),
                (
                    LinkType::LINUX_SLL2,
                    1_700_000_000_000_000_002,
                    Direction::EGRESS,
                    b"outbound!".to_vec(),
                    9
                ),
                (
                    LinkType::ETHERNET,
                    3_000,
                    Direction::UNKNOWN,
                    b"both-bits".to_vec(),
                    9
                ),
                (LinkType::LINUX_SLL2, 4, Direction::UNKNOWN, vec![], 0),
                (
                    LinkType::ETHERNET,
                    0,
                    Direction::UNKNOWN,
                    b"simple".to_vec(),
                    6
                ),
            ],
            "little endian: {le}"
        );
    }
}

#[test]
fn pcapng_power_of_two_resolution_and_snaplen() {
    let mut f = NgFile::new(false);
    // 2^-10 s per tick; snap length 4 limits the Simple Packet Block.
    f.interface(101, 4, Some(0x80 + 10))
        .enhanced(0, 3 * 1024 + 512, b"ip", 2, None)
        .simple(b"abcdefgh", 8);
    let got = read_all(f.bytes.clone());
    assert_eq!(
        got,
        vec![
            (
                LinkType::RAW,
                3_500_000_000,
                Direction::UNKNOWN,
                b"ip".to_vec(),
                2
            ),
            (LinkType::RAW, 0, Direction::UNKNOWN, b"abcd".to_vec(), 8),
        ]
    );
}

#[test]
fn timestamp_resolutions() {
    assert_eq!(ticks_to_ns(7, 6), Some(7_000));
    assert_eq!(ticks_to_ns(7, 9), Some(7));
    assert_eq!(ticks_to_ns(7_000, 12), Some(7));
    assert_eq!(ticks_to_ns(u64::MAX, 127), Some(0));
    assert_eq!(ticks_to_ns(u64::MAX, 0), None);
    assert_eq!(ticks_to_ns(1, 0x80), Some(1_000_000_000));
    assert_eq!(ticks_to_ns(1 << 30, 0x80 + 30), Some(1_000_000_000));
    assert_eq!(ticks_to_ns(u64::MAX, 0xff), Some(0));
    assert_eq!(ticks_to_ns(u64::MAX, 0x80), None);
}

#[test]
fn new_section_resets_interfaces_and_byte_order() {
    let mut f = NgFile::new(true);
    f.interface(1, 0, None)
        .interface(1, 0, None)
        .enhanced(1, 1, b"a", 1, None);
    f.section(false)
        .interface(228, 0, Some(9))
        .enhanced(0, 2, b"b", 1, Some(1));
    f.enhanced(1, 3, b"c", 1, None);
    let mut it = collect(from_bytes(f.bytes.clone()).unwrap()).into_iter();
    let a = it.next().unwrap().unwrap();
    assert_eq!(
        (a.0, a.1, a.3.as_slice()),
        (LinkType::ETHERNET, 1_000, b"a".as_slice())
    );
    let b = it.next().unwrap().unwrap();
    assert_eq!((b.0, b.1, b.2), (LinkType::IPV4, 2, Direction::INGRESS));
    let err = it.next().unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            CaptureError::UnknownInterface {
                interface: 1,
                count: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(it.next().is_none());
}

#[test]
fn unsupported_interface_is_reported_per_packet() {
    let mut f = NgFile::new(true);
    f.interface(1, 0, None).interface(147, 0, None);
    f.enhanced(1, 1, b"user0", 5, None)
        .enhanced(0, 2, b"eth", 3, None);
    let got = collect(from_bytes(f.bytes.clone()).unwrap());
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0].as_ref().unwrap_err().to_string(),
        "unsupported link type 147 (user-defined) on interface 1; tlsmon reads Ethernet (1), \
         Linux cooked v1 and v2 (113, 276), raw IP (101, 228, 229) and \
         BSD loopback (NULL 0, LOOP 108)"
    );
    assert_eq!(got[1].as_ref().unwrap().3, b"eth");
}

#[test]
fn pcapng_block_length_errors() {
    let base = {
        let mut f = NgFile::new(true);
        f.interface(1, 0, None);
        f
    };
    let at = base.bytes.len();
    let invalid = |len| {
        format!(
            "pcapng block at byte {at} has invalid length {len} \
             (must be at least 12, a multiple of 4, and at most 16777216)"
        )
    };
    for (len, want) in [
        (8u32, invalid(8)),
        (14, invalid(14)),
        (0, invalid(0)),
        // Longer than any block may be: not "truncated".
        (u32::MAX - 3, invalid(u32::MAX - 3)),
        (MAX_BLOCK_LEN + 4, invalid(MAX_BLOCK_LEN + 4)),
        (MAX_BLOCK_LEN, format!("truncated block at byte {at}")),
    ] {
        let mut bytes = base.bytes.clone();
        put32(&mut bytes, true, BT_EPB);
        put32(&mut bytes, true, len);
        bytes.extend_from_slice(&[0; 16]);
        let got = collect(from_bytes(bytes).unwrap());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].as_ref().unwrap_err().to_string(), want);
    }

    // Trailing length disagreeing with the leading one.
    let mut f = NgFile::new(true);
    f.interface(1, 0, None).enhanced(0, 0, b"abcd", 4, None);
    let n = f.bytes.len();
    f.bytes[n - 4] ^= 4;
    let err = from_bytes(f.bytes.clone())
        .unwrap()
        .next_packet()
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, CaptureError::LengthMismatch { .. }), "{err}");

    // Captured length larger than the block.
    let mut f = NgFile::new(true);
    f.interface(1, 0, None).enhanced(0, 0, b"abcd", 4, None);
    let caplen_at = f.ends[1] + 8 + 12;
    f.bytes[caplen_at] = 200;
    let err = from_bytes(f.bytes.clone())
        .unwrap()
        .next_packet()
        .unwrap()
        .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("captured length exceeds the block"),
        "{err}"
    );

    // Bad byte-order magic.
    let mut f = NgFile::new(true);
    f.bytes[8] = 0;
    let err = from_bytes(f.bytes).err().unwrap();
    assert_eq!(
        err.to_string(),
        "pcapng section header at byte 0 has unknown byte-order magic 0x003c2b1a"
    );
}

#[test]
fn open_names_the_file() {
    let dir = std::env::temp_dir().join(format!("tlsmon-capture-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("missing.pcap");
    let err = Capture::open(&missing).err().unwrap().to_string();
    assert!(
        err.starts_with(&format!("cannot read {}: ", missing.display())),
        "{err}"
    );
    let junk = dir.join("junk.pcap");
    std::fs::write(&junk, b"\x00\x01\x02\x03rest").unwrap();
    let err = Capture::open(&junk).err().unwrap().to_string();
    assert_eq!(
        err,
        format!(
            "{}: not a pcap or pcapng file (magic 0x00010203)",
            junk.display()
        )
    );
    let good = dir.join("good.pcap");
    let mut f = PcapFile::new(true, false, 1);
    f.record(1, 1, b"ok", 2);
    std::fs::write(&good, &f.bytes).unwrap();
    assert_eq!(collect(Capture::open(&good).unwrap()).len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every buffer size the reader may see a record with: small (the record
/// arrives in pieces) and the real one.
fn read_both_ways(bytes: &[u8]) -> Vec<Vec<Result<Owned, String>>> {
    [64, BUFFER_LEN]
        .iter()
        .map(|&size| {
            collect(Capture::with_buffer(Cursor::new(bytes.to_vec()), size).unwrap())
                .into_iter()
                .map(|r| r.map_err(|e| e.to_string()))
                .collect()
        })
        .collect()
}

#[test]
fn a_timestamp_fraction_of_a_second_or_more_is_an_error() {
    for (nanos, frac, unit) in [
        (false, u32::MAX, "microseconds"),
        (false, 1_000_000, "microseconds"),
        (true, 1_000_000_000, "nanoseconds"),
    ] {
        let mut f = PcapFile::new(true, nanos, 1);
        f.record(1, 999, b"before", 6)
            .record(2, frac, b"bad", 3)
            .record(3, 0, b"after", 5);
        let want = format!(
            "pcap record at byte {} has a timestamp fraction of {frac} {unit}, \
             a second or more: the file is damaged there",
            f.ends[1]
        );
        for got in read_both_ways(&f.bytes) {
            assert_eq!(got.len(), 2, "{got:?}");
            assert_eq!(got[0].as_ref().unwrap().3, b"before");
            assert_eq!(got[1].as_ref().unwrap_err(), &want);
        }
    }
    // The largest fractions are fine.
    let mut f = PcapFile::new(true, false, 1);
    f.record(1, 999_999, b"a", 1);
    assert_eq!(read_all(f.bytes)[0].1, 1_999_999_000);
    let mut f = PcapFile::new(false, true, 1);
    f.record(1, 999_999_999, b"a", 1);
    assert_eq!(read_all(f.bytes)[0].1, 1_999_999_999);
}

#[test]
fn an_absurd_record_length_is_reported_as_such() {
    for caplen in [u32::MAX, 0x7fff_ffff, 1 << 20, MAX_RECORD_LEN + 1] {
        let mut f = PcapFile::new(true, false, 1);
        f.record(1, 0, b"ok", 2);
        let at = f.bytes.len();
        for field in [2, 0, caplen, caplen] {
            put32(&mut f.bytes, true, field);
        }
        // All the bytes of the shorter claims are there.
        f.bytes.resize(f.bytes.len() + (1 << 20) + 100, 0);
        let want = format!(
            "pcap record at byte {at} claims {caplen} captured bytes, more than a capture \
             can hold (262144): the file is damaged there"
        );
        for got in read_both_ways(&f.bytes) {
            assert_eq!(got.len(), 2, "{caplen}: {got:?}");
            assert_eq!(got[1].as_ref().unwrap_err(), &want);
        }
    }
    // A plausible length in a file that ends too soon is a cut file.
    let mut f = PcapFile::new(true, false, 1);
    f.record(1, 0, &[1; 1000], 1000);
    let cut = &f.bytes[..f.bytes.len() - 1];
    for got in read_both_ways(cut) {
        assert_eq!(got, vec![Err("truncated record at byte 24".to_owned())]);
    }
}
