//! The hello records of RFC 8448 ("Example Handshake Traces for TLS 1.3")
//! through the whole per-packet path and through `tls::summarize` alone.
//!
//! Expected values come from reading the RFC's hex by hand (field by field,
//! noted next to each record), not from what the parser printed. Every
//! record is also cut at every length to check that a short segment never
//! panics and never claims more than it saw.

use monitor_common::{
    classify::classify,
    emit,
    event::{Decoded, Direction, EventKind, MAX_ITEMS, TlsSummary, hello_flags as hf},
    net::{LinkType, TCP_ACK, TCP_PSH},
    tls::summarize,
};

#[path = "rfc8448/vectors.rs"]
mod vectors;

use vectors::*;

// ---------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

impl Vector {
    fn record(&self) -> Vec<u8> {
        let r = hex(self.hex);
        // Transcription check: the record and handshake lengths must match
        // the number of bytes transcribed.
        assert_eq!(
            usize::from(u16::from_be_bytes([r[3], r[4]])),
            r.len() - 5,
            "{}",
            self.name
        );
        assert_eq!(
            u32::from_be_bytes([0, r[6], r[7], r[8]]) as usize,
            r.len() - 9,
            "{}",
            self.name
        );
        if let Some(at) = self.psk_at {
            assert_eq!(
                &r[at..at + 2],
                &[0x00, 0x29],
                "{}: pre_shared_key offset",
                self.name
            );
        }
        r
    }

    fn is_client(&self) -> bool {
        self.flags & hf::CLIENT_HELLO != 0
    }
}

const SRC_V4: [u8; 4] = [192, 0, 2, 1];
const DST_V4: [u8; 4] = [198, 51, 100, 2];
const SRC_V6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const DST_V6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
const SRC_PORT: u16 = 49152;
const DST_PORT: u16 = 443;
const SEQ: u32 = 0x0102_0304;
const ACK: u32 = 0x0a0b_0c0d;

#[derive(Clone, Copy)]
enum Ip {
    V4,
    V6,
}

/// Shape of the headers around the payload.
#[derive(Clone, Copy)]
struct Layout {
    ip: Ip,
    /// IPv4 option words (IHL = 5 + this).
    ip_opt_words: usize,
    /// TCP option words (data offset = 5 + this).
    tcp_opt_words: usize,
}

const PLAIN_V4: Layout = Layout {
    ip: Ip::V4,
    ip_opt_words: 0,
    tcp_opt_words: 0,
};
const OPTIONS_V4: Layout = Layout {
    ip: Ip::V4,
    ip_opt_words: 1,
    tcp_opt_words: 3,
};
const PLAIN_V6: Layout = Layout {
    ip: Ip::V6,
    ip_opt_words: 0,
    tcp_opt_words: 0,
};

/// An Ethernet frame carrying `payload` in one TCP segment with PSH|ACK.
/// IPv4 options are Router Alert (RFC 2113), one word each; TCP options,
/// when asked for, NOP NOP and a timestamp option (RFC 7323), then NOPs to
/// fill the words. `trailer` is appended after the IP packet (bytes the IP
/// length fields exclude, like Ethernet padding).
fn frame(layout: Layout, payload: &[u8], trailer: &[u8]) -> Vec<u8> {
    let ip = match layout.ip {
        Ip::V4 => emit::IpRepr::V4(emit::Ipv4Repr {
            src: SRC_V4,
            dst: DST_V4,
            options: [0x94, 0x04, 0x00, 0x00].repeat(layout.ip_opt_words),
            ..emit::Ipv4Repr::default()
        }),
        Ip::V6 => emit::IpRepr::V6(emit::Ipv6Repr {
            src: SRC_V6,
            dst: DST_V6,
            ..emit::Ipv6Repr::default()
        }),
    };
    let mut options = emit::tcp_option::timestamps(1, 2).to_vec();
    options.resize(layout.tcp_opt_words * 4, emit::tcp_option::NOP);
    let mut f = emit::Frame {
        eth: emit::EthernetRepr {
            dst: [0x02, 0, 0, 0, 0, 0x02],
            src: [0x02, 0, 0, 0, 0, 0x01],
            tags: Vec::new(),
        },
        ip,
        tcp: emit::TcpRepr {
            src_port: SRC_PORT,
            dst_port: DST_PORT,
            seq: SEQ,
            ack: ACK,
            flags: TCP_PSH | TCP_ACK,
            window: 0xfaf0,
            options,
        },
    }
    .emit(payload);
    f.extend_from_slice(trailer);
    f
}

fn classify_tls(f: &[u8]) -> (monitor_common::event::EventHeader, TlsSummary) {
    match classify(f, LinkType::ETHERNET, Direction::EGRESS, 7) {
        Ok(Some(Decoded::Tls(h, s))) => (h, s),
        other => panic!("expected a TLS event, got {other:?}"),
    }
}

/// Checks a summary of the whole record against what the RFC says.
fn check_summary(v: &Vector, s: &TlsSummary) {
    let h = &s.hello;
    let n = v.name;
    assert_eq!(
        h.flags, v.flags,
        "{n}: flags {:#06x} != {:#06x}",
        h.flags, v.flags
    );
    assert_eq!(h.legacy_version, v.legacy_version, "{n}: legacy_version");
    assert_eq!(h.session_id_len, v.session_id_len, "{n}: session_id_len");
    assert_eq!(h.cipher_suite, v.cipher_suite, "{n}: cipher_suite");
    assert_eq!(
        h.selected_version, v.selected_version,
        "{n}: selected_version"
    );
    assert_eq!(&h.sni[..usize::from(h.sni_len)], v.sni, "{n}: SNI");
    assert_eq!(h.alpn_len, 0, "{n}: no ALPN in RFC 8448 hellos");
    assert_eq!(h.extensions, v.extensions, "{n}: extensions walked");
    assert_eq!(usize::from(s.n_items), v.items.len(), "{n}: n_items");
    assert_eq!(&s.items[..v.items.len()], v.items, "{n}: items");
    assert_eq!(s.items_cut, 0, "{n}: items_cut");
    let ty = if v.is_client() { 1 } else { 2 };
    assert_eq!(s.hello_type, ty, "{n}: hello_type");
    assert_eq!(s.nst_at, 0, "{n}: no NewSessionTicket");
    assert_eq!(h.ticket_id, [0; 16], "{n}: no ticket");
}

fn check_framed(v: &Vector, layout: Layout) {
    let rec = v.record();
    let f = frame(layout, &rec, &[]);
    let (hdr, s) = classify_tls(&f);
    assert_eq!(hdr.kind, EventKind::TLS.0, "{}", v.name);
    assert_eq!(hdr.direction, Direction::EGRESS.0);
    assert_eq!(hdr.ts_ns, 7);
    assert_eq!(hdr.tcp_flags, TCP_PSH | TCP_ACK);
    assert_eq!(hdr.src_port, SRC_PORT);
    assert_eq!(hdr.dst_port, DST_PORT);
    assert_eq!(hdr.seq, SEQ);
    assert_eq!(hdr.ack, ACK);
    assert_eq!(
        hdr.payload_len as usize,
        rec.len(),
        "{}: payload_len",
        v.name
    );
    match layout.ip {
        Ip::V4 => {
            assert_eq!(hdr.family, 4);
            assert_eq!(&hdr.src_addr[..4], &SRC_V4);
            assert_eq!(&hdr.dst_addr[..4], &DST_V4);
            assert_eq!(&hdr.src_addr[4..], &[0; 12]);
        }
        Ip::V6 => {
            assert_eq!(hdr.family, 6);
            assert_eq!(hdr.src_addr, SRC_V6);
            assert_eq!(hdr.dst_addr, DST_V6);
        }
    }
    check_summary(v, &s);
    // Offsets in the summary are frame offsets: the hello body starts after
    // the link, IP and TCP headers, the record header and the handshake header.
    let l3 = 14;
    let l4 = l3
        + match layout.ip {
            Ip::V4 => 20 + 4 * layout.ip_opt_words,
            Ip::V6 => 40,
        };
    let payload_off = l4 + 20 + 4 * layout.tcp_opt_words;
    assert_eq!(s.hello_at as usize, payload_off + 9, "{}: hello_at", v.name);
    assert_eq!(s.hello_len as usize, rec.len() - 9, "{}: hello_len", v.name);
}

fn summarize_slice(bytes: &[u8]) -> TlsSummary {
    let mut s = TlsSummary::default();
    summarize(bytes, 0, bytes.len(), &mut s);
    s
}

// ---------------------------------------------------------------------------
// Whole records.
// ---------------------------------------------------------------------------

#[test]
fn records_in_plain_ipv4_frames() {
    for v in ALL {
        check_framed(v, PLAIN_V4);
    }
}

#[test]
fn records_behind_ip_and_tcp_options() {
    // IHL 6 and TCP data offset 8: the payload starts 16 bytes later.
    let f = frame(OPTIONS_V4, b"\x16", &[]);
    assert_eq!(f[14], 0x46);
    assert_eq!(f[14 + 24 + 12] >> 4, 8);
    for v in ALL {
        check_framed(v, OPTIONS_V4);
    }
}

#[test]
fn records_in_ipv6_frames() {
    for v in ALL {
        check_framed(v, PLAIN_V6);
    }
}

#[test]
fn records_as_raw_ip() {
    for v in ALL {
        let rec = v.record();
        let f = frame(PLAIN_V4, &rec, &[]);
        match classify(&f[14..], LinkType::RAW, Direction::INGRESS, 0) {
            Ok(Some(Decoded::Tls(h, s))) => {
                assert_eq!(h.direction, Direction::INGRESS.0);
                check_summary(v, &s);
            }
            other => panic!("{}: {other:?}", v.name),
        }
    }
}

#[test]
fn ethernet_padding_is_not_payload() {
    // The IP length excludes bytes after the packet; the summary must match
    // the one without them.
    for v in ALL {
        let rec = v.record();
        let (_, plain) = classify_tls(&frame(PLAIN_V4, &rec, &[]));
        let (h, padded) = classify_tls(&frame(PLAIN_V4, &rec, &[0; 18]));
        assert_eq!(h.payload_len as usize, rec.len());
        assert_eq!(padded, plain, "{}", v.name);
    }
}

#[test]
fn summarize_on_record_slices() {
    for v in ALL {
        let rec = v.record();
        let s = summarize_slice(&rec);
        check_summary(v, &s);
        assert_eq!(s.hello_at, 9, "{}", v.name);
        assert_eq!(s.hello_len as usize, rec.len() - 9, "{}", v.name);
    }
}

#[test]
fn transcription_checks() {
    // The RFC 8448 hellos carry empty legacy_session_id fields; only the
    // HelloRetryRequest has the special random.
    for v in ALL {
        let rec = v.record();
        assert_eq!(rec[9 + 2 + 32], v.session_id_len, "{}", v.name);
        let is_hrr = rec[11..43] == monitor_common::tls::HRR_RANDOM;
        assert_eq!(is_hrr, v.flags & hf::HRR != 0, "{}", v.name);
        // The hand counts of extensions agree with a plain walk of the record.
        let n = extension_list(&rec, v.is_client()).len();
        assert_eq!(n, usize::from(v.extensions), "{}", v.name);
    }
}

#[test]
fn client_and_server_flights_in_one_payload() {
    // Two records back to back (as a capture that merged segments would show
    // them): both are listed; the first hello is the one parsed.
    let mut both = V_S5_HRR.record();
    both.extend_from_slice(&V_S5_CH2.record());
    let (_, s) = classify_tls(&frame(PLAIN_V4, &both, &[]));
    assert_eq!(s.n_items, 2);
    assert_eq!(&s.items[..2], &[ITEM_SERVER_HELLO, ITEM_CLIENT_HELLO]);
    check_summary(
        &Vector {
            items: &[ITEM_SERVER_HELLO, ITEM_CLIENT_HELLO],
            ..V_S5_HRR
        },
        &s,
    );
    assert!(usize::from(s.n_items) <= MAX_ITEMS);
}

// ---------------------------------------------------------------------------
// Every truncation.
// ---------------------------------------------------------------------------

/// What a record cut to `cut` bytes may report: nothing the whole record
/// does not, and for a cut hello, that it was cut.
fn check_cut(
    v: &Vector,
    cut: usize,
    full: &TlsSummary,
    s: &TlsSummary,
    problems: &mut Vec<String>,
) {
    let h = &s.hello;
    let rec = v.record();
    let exts = extension_list(&rec, v.is_client());
    // Where the data of extension `ty` ends, and where its header ends.
    let data_end = |ty: u16| {
        exts.iter()
            .find(|e| e.0 == ty)
            .map(|&(_, at, len)| at + len)
    };
    let header_end = |ty: u16| exts.iter().find(|e| e.0 == ty).map(|&(_, at, _)| at);
    let mut bad = |what: &str| {
        problems.push(format!(
            "{} cut at {cut}: {what} (flags {:#06x})",
            v.name, h.flags
        ));
    };
    let allowed = full.hello.flags | hf::TRUNCATED | hf::MALFORMED;
    if h.flags & !allowed != 0 {
        bad("reports flags the whole record does not have");
    }
    if usize::from(s.n_items) > MAX_ITEMS {
        bad("n_items above MAX_ITEMS");
    }
    if cut < 9 && s.n_items != 0 {
        bad("lists a handshake message whose header was not seen");
    }
    if usize::from(h.session_id_len) > 32 {
        bad("session_id_len above 32");
    }
    if h.sni_len != 0 && &h.sni[..usize::from(h.sni_len)] != v.sni {
        bad("SNI differs from the whole record's");
    }
    if h.cipher_suite != 0 && h.cipher_suite != v.cipher_suite {
        bad("cipher_suite differs");
    }
    if h.selected_version != 0 && h.selected_version != v.selected_version {
        bad("selected_version differs");
    }
    if let Some(at) = v.psk_at
        && cut < at + 4
        && h.flags & hf::PSK != 0
    {
        bad("PSK reported before the pre_shared_key extension header was seen");
    }
    // Nothing may come from bytes past the payload (a frame can go on after
    // the IP packet ends).
    if h.sni_len != 0 && data_end(0).is_none_or(|e| cut < e) {
        bad("SNI read from beyond the payload");
    }
    if h.flags & hf::OFFERS_TLS13 != 0 && data_end(43).is_none_or(|e| cut < e) {
        bad("OFFERS_TLS13 from beyond the payload");
    }
    if h.selected_version != 0 && header_end(43).is_none_or(|e| cut < e + 2) {
        bad("selected_version read from beyond the payload");
    }
    if h.cipher_suite != 0 && cut < 9 + 2 + 32 + 1 + usize::from(v.session_id_len) + 2 {
        bad("cipher_suite read from beyond the payload");
    }
    if h.flags & hf::HRR != 0 && cut < 9 + 2 + 32 {
        bad("HRR random read from beyond the payload");
    }
    for (flag, ty) in [(hf::EARLY_DATA, 42), (hf::TICKET_EXT, 35), (hf::PSK, 41)] {
        if h.flags & flag != 0 && header_end(ty).is_none_or(|e| cut < e) {
            bad("extension flag from beyond the payload");
        }
    }
    let hello_bit = if v.is_client() {
        hf::CLIENT_HELLO
    } else {
        hf::SERVER_HELLO
    };
    if h.flags & hello_bit != 0 && h.flags & (hf::TRUNCATED | hf::MALFORMED) == 0 {
        bad("a cut hello is reported as complete (no TRUNCATED or MALFORMED)");
    }
}

/// Cuts every record at every length and returns the invariant violations.
/// `trailer`: whether the rest of the record stays in the frame after the
/// IP packet's end (so reads past the payload would find real bytes).
fn cut_problems(vectors: &[&Vector], layout: Layout, trailer: bool) -> Vec<String> {
    let mut problems = Vec::new();
    for v in vectors {
        let rec = v.record();
        let (_, full) = classify_tls(&frame(layout, &rec, &[]));
        for cut in 0..rec.len() {
            let rest: &[u8] = if trailer { &rec[cut..] } else { &[] };
            let f = frame(layout, &rec[..cut], rest);
            match classify(&f, LinkType::ETHERNET, Direction::EGRESS, 0) {
                // Fewer than five payload bytes: no record header, and
                // PSH|ACK is not a teardown.
                Ok(None) if cut < 5 => {}
                Ok(Some(Decoded::Tls(h, s))) if cut >= 5 => {
                    if h.payload_len as usize != cut {
                        problems.push(format!(
                            "{} cut at {cut}: payload_len {}",
                            v.name, h.payload_len
                        ));
                    }
                    check_cut(v, cut, &full, &s, &mut problems);
                }
                other => problems.push(format!("{} cut at {cut}: unexpected {other:?}", v.name)),
            }
            // The same bytes straight into summarize. With a trailer the
            // slice holds the whole record but `end` says where the payload
            // stops.
            let bytes = if trailer { &rec[..] } else { &rec[..cut] };
            let mut s = TlsSummary::default();
            summarize(bytes, 0, cut, &mut s);
            if cut >= 5 {
                check_cut(v, cut, &full, &s, &mut problems);
            } else if s
                != (TlsSummary {
                    walk: s.walk,
                    ..TlsSummary::default()
                })
            {
                problems.push(format!(
                    "{} cut at {cut}: summary of a partial record header",
                    v.name
                ));
            }
        }
    }
    problems
}

fn assert_no_problems(problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{} violations, first ones:\n{}",
        problems.len(),
        problems
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn every_cut_keeps_the_invariants() {
    for layout in [PLAIN_V4, OPTIONS_V4, PLAIN_V6] {
        assert_no_problems(&cut_problems(&ALL, layout, false));
    }
}

/// Problems of the kind "something was read from bytes past the payload".
fn beyond_payload(p: &str) -> bool {
    p.contains("beyond the payload")
}

#[test]
fn every_cut_with_bytes_after_the_ip_packet() {
    let p = cut_problems(&ALL, PLAIN_V4, true);
    let rest: Vec<String> = p.into_iter().filter(|p| !beyond_payload(p)).collect();
    assert_no_problems(&rest);
}

/// When the frame goes on after the IP packet (Ethernet padding, capture
/// trailers), fields of a cut hello are read from those bytes: the field
/// reads in `tls.rs` are bounded by the frame, not by the payload end.
/// Seen: SNI, OFFERS_TLS13, ServerHello cipher_suite and selected_version,
/// and the HRR flag (the random is compared without checking `end`).
#[test]
fn nothing_is_read_past_the_payload() {
    let p = cut_problems(&ALL, PLAIN_V4, true);
    let beyond: Vec<String> = p.into_iter().filter(|p| beyond_payload(p)).collect();
    assert_no_problems(&beyond);
}

#[test]
fn cut_before_pre_shared_key_reports_no_psk() {
    for v in [&V_S4_CH, &V_S4_SH] {
        let rec = v.record();
        let at = v.psk_at.unwrap();
        for cut in 5..at + 4 {
            let (_, s) = classify_tls(&frame(PLAIN_V4, &rec[..cut], &[]));
            assert_eq!(s.hello.flags & hf::PSK, 0, "{} cut at {cut}", v.name);
            let s = summarize_slice(&rec[..cut]);
            assert_eq!(
                s.hello.flags & hf::PSK,
                0,
                "{} cut at {cut} (summarize)",
                v.name
            );
        }
        // Once the extension header is in, PSK is known.
        let (_, s) = classify_tls(&frame(PLAIN_V4, &rec[..at + 4], &[]));
        assert_ne!(
            s.hello.flags & hf::PSK,
            0,
            "{} cut after the PSK header",
            v.name
        );
    }
}

#[test]
fn cut_client_hellos_are_flagged_before_the_last_extension() {
    // Every cut that ends before the last extension's header is complete
    // must leave CLIENT_HELLO off or set TRUNCATED/MALFORMED.
    for v in [&V_S3_CH, &V_S4_CH, &V_S5_CH1, &V_S5_CH2] {
        let rec = v.record();
        let last = last_extension_at(&rec, true);
        for cut in 5..last + 4 {
            let (_, s) = classify_tls(&frame(PLAIN_V4, &rec[..cut], &[]));
            let f = s.hello.flags;
            assert!(
                f & hf::CLIENT_HELLO == 0 || f & (hf::TRUNCATED | hf::MALFORMED) != 0,
                "{} cut at {cut}: flags {f:#06x}",
                v.name
            );
        }
    }
}

/// Offset of the last extension header of a hello record.
fn last_extension_at(rec: &[u8], client: bool) -> usize {
    extension_list(rec, client).last().unwrap().1 - 4
}

/// The extensions of a hello record as (type, data offset, data length),
/// found with the RFC 8446 §4.1.2/§4.1.3 layouts (independent of the parser
/// under test).
fn extension_list(rec: &[u8], client: bool) -> Vec<(u16, usize, usize)> {
    let mut p = 9 + 2 + 32;
    p += 1 + usize::from(rec[p]);
    if client {
        p += 2 + usize::from(u16::from_be_bytes([rec[p], rec[p + 1]]));
        p += 1 + usize::from(rec[p]);
    } else {
        p += 3;
    }
    let end = p + 2 + usize::from(u16::from_be_bytes([rec[p], rec[p + 1]]));
    assert_eq!(end, rec.len());
    p += 2;
    let mut list = Vec::new();
    while p < end {
        let ty = u16::from_be_bytes([rec[p], rec[p + 1]]);
        let len = usize::from(u16::from_be_bytes([rec[p + 2], rec[p + 3]]));
        list.push((ty, p + 4, len));
        p += 4 + len;
    }
    assert_eq!(p, end);
    list
}

/// A hello cut inside the data of its last extension: no extension header
/// is missing, but the message still ends past the payload.
#[test]
fn cut_inside_the_last_extension_is_flagged() {
    for v in ALL {
        let rec = v.record();
        let last = last_extension_at(&rec, v.is_client());
        for cut in last + 4..rec.len() {
            let (_, s) = classify_tls(&frame(PLAIN_V4, &rec[..cut], &[]));
            assert_ne!(s.hello.flags & hf::TRUNCATED, 0, "{} cut at {cut}", v.name);
        }
    }
}
