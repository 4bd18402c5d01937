//! Every builder's output read back by the parser it mirrors: what the
//! kit says it wrote is what `net`, `tls` and `event` read.

use std::{vec, vec::Vec};

use super::{
    EthernetRepr, Flow, Frame, IpRepr, Ipv4Repr, Ipv6Repr, TcpRepr, checksum,
    event::{self, Summary, items},
    field, tcp_option,
    tls::{self, ClientHello, Extension, ServerHello},
};
use crate::{
    event::{Decoded, EventHeader, EventKind, TlsEvent, decode, hello_flags as hf},
    net::{
        ETHERTYPE_QINQ, ETHERTYPE_VLAN, LinkType, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TcpSegment,
    },
    tls::{ContentType, HRR_RANDOM, HandshakeType, summarize},
};

fn v4(a: [u8; 4]) -> [u8; 16] {
    let mut out = [0; 16];
    out[..4].copy_from_slice(&a);
    out
}

/// Frames of every header shape the parsers tell apart.
fn shapes() -> Vec<Frame> {
    let tcp = TcpRepr {
        src_port: 49_152,
        dst_port: 8443,
        seq: 0xfedc_ba98,
        ack: 0x0123_4567,
        flags: TCP_ACK | TCP_PSH,
        ..TcpRepr::default()
    };
    let with_ts = TcpRepr {
        options: tcp_option::timestamps(7, 9).to_vec(),
        ..tcp.clone()
    };
    let v6 = IpRepr::V6(Ipv6Repr::default());
    let options = IpRepr::V4(Ipv4Repr {
        options: vec![0x94, 4, 0, 0],
        ..Ipv4Repr::default()
    });
    let mut out = Vec::new();
    for tags in [
        vec![],
        vec![ETHERTYPE_VLAN],
        vec![ETHERTYPE_QINQ, ETHERTYPE_VLAN],
    ] {
        for ip in [IpRepr::default(), options.clone(), v6.clone()] {
            for tcp in [tcp.clone(), with_ts.clone()] {
                out.push(Frame {
                    eth: EthernetRepr {
                        tags: tags.clone(),
                        ..EthernetRepr::default()
                    },
                    ip: ip.clone(),
                    tcp,
                });
            }
        }
    }
    out
}

#[test]
fn frames_parse_back_to_their_reprs() {
    let payload = [0x17, 3, 3, 0, 3, 1, 2, 3];
    for f in shapes() {
        let bytes = f.emit(&payload);
        let seg = crate::net::tcp(&bytes[..], LinkType::ETHERNET)
            .unwrap_or_else(|e| panic!("{e:?} for {f:?}"));
        let l3 = f.eth.header_len();
        let (family, l4, src, dst) = match &f.ip {
            IpRepr::V4(ip) => (4, l3 + ip.header_len(), v4(ip.src), v4(ip.dst)),
            IpRepr::V6(ip) => (6, l3 + 40, ip.src, ip.dst),
        };
        let want = TcpSegment {
            family,
            flags: f.tcp.flags,
            src_port: f.tcp.src_port,
            dst_port: f.tcp.dst_port,
            src_addr: src,
            dst_addr: dst,
            seq: f.tcp.seq,
            ack: f.tcp.ack,
            l3_off: l3,
            l4_off: l4,
            payload_off: l4 + f.tcp.header_len(),
            payload_len: payload.len(),
            tunnel: 0,
        };
        assert_eq!(seg, want, "{f:?}");
        assert_eq!(&bytes[seg.payload_off..], &payload);
        if let IpRepr::V4(ip) = &f.ip {
            // A header with its checksum in place sums to zero (RFC 1071).
            assert_eq!(checksum(&bytes[l3..l3 + ip.header_len()]), 0);
        }
    }
}

#[test]
fn field_ranges_are_where_the_parser_reads() {
    // Patched through the named ranges, as the soak benchmark does.
    let mut bytes = Frame::default().emit(&[]);
    let mut seg = crate::net::segment(&bytes[..], LinkType::ETHERNET).unwrap();
    bytes[seg.l3_off..][field::ipv4::SRC].copy_from_slice(&[192, 0, 2, 9]);
    bytes[seg.l4_off..][field::tcp::SEQ].copy_from_slice(&5u32.to_be_bytes());
    crate::net::flow(&bytes[..], &mut seg);
    assert_eq!((seg.src_addr, seg.seq), (v4([192, 0, 2, 9]), 5));
}

#[test]
fn a_reply_swaps_the_ends() {
    let f = Frame::default();
    let r = f.reply().emit(&[]);
    let seg = crate::net::tcp(&r[..], LinkType::ETHERNET).unwrap();
    assert_eq!(
        (seg.src_addr, seg.src_port, seg.dst_addr, seg.dst_port),
        (v4([10, 0, 0, 2]), 443, v4([10, 0, 0, 1]), 40_000)
    );
}

#[test]
fn a_flow_acknowledges_what_the_other_side_sent() {
    let mut flow = Flow::new(
        ([10, 0, 0, 1], 40_000).into(),
        ([10, 0, 0, 2], 443).into(),
        [100, 5000],
    );
    let hello = flow.frame(&Frame::default(), true, TCP_ACK | TCP_PSH, &[0; 300]);
    let answer = flow.frame(&Frame::default(), false, TCP_ACK | TCP_PSH, &[0; 90]);
    let fin = flow.header(true, TCP_ACK | TCP_FIN, 0);
    let last = flow.header(false, TCP_ACK, 0);
    let seg = |f: &[u8]| crate::net::tcp(f, LinkType::ETHERNET).unwrap();
    let (h, a) = (seg(&hello), seg(&answer));
    assert_eq!((h.seq, h.ack, h.src_port), (100, 5000, 40_000));
    assert_eq!((a.seq, a.ack, a.src_port), (5000, 400, 443));
    assert_eq!((fin.seq, fin.ack), (400, 5090));
    // The FIN took a sequence number.
    assert_eq!(last.ack, 401);
}

fn summary(bytes: &[u8]) -> crate::event::TlsSummary {
    let mut s = crate::event::TlsSummary::default();
    summarize(bytes, 0, bytes.len(), &mut s);
    s
}

#[test]
fn a_client_hello_parses_back_to_its_fields() {
    let ticket: Vec<u8> = (0..48).collect();
    let ch = ClientHello {
        session_id: vec![0x22; 32],
        cipher_suites: vec![0x1301, 0xc02f],
        extensions: vec![
            Extension::new(0x0a0a, &[]),
            Extension::server_name(b"backend.example"),
            Extension::alpn(&[b"h2", b"http/1.1"]),
            Extension::session_ticket(&ticket),
            Extension::supported_versions(&[0x0a0a, 0x0304, 0x0303]),
            Extension::early_data(),
            Extension::new(41, &[0, 6, 0, 0, 0, 0, 0, 0, 0, 0]),
        ],
        ..ClientHello::default()
    };
    let rec = ch.record();
    let s = summary(&rec);
    let h = s.hello;
    assert_eq!(
        h.flags,
        hf::CLIENT_HELLO
            | hf::TICKET_EXT
            | hf::TICKET_OFFERED
            | hf::OFFERS_TLS13
            | hf::EARLY_DATA
            | hf::PSK
    );
    assert_eq!(&h.sni[..usize::from(h.sni_len)], b"backend.example");
    assert_eq!(&h.alpn[..usize::from(h.alpn_len)], b"h2");
    assert_eq!(&h.session_id[..usize::from(h.session_id_len)], &[0x22; 32]);
    assert_eq!(h.ticket_id[..], ticket[32..]);
    assert_eq!((h.legacy_version, h.extensions), (0x0303, 7));
    assert_eq!(&s.items[..usize::from(s.n_items)], &[items::CLIENT_HELLO]);
    assert_eq!(s.hello_len as usize, ch.body().len());
    assert_eq!(s.hello_at, 9);
}

#[test]
fn a_padded_client_hello_has_the_length_asked_for() {
    for exts in [vec![], vec![Extension::server_name(b"a.example")]] {
        let mut ch = ClientHello {
            extensions: exts,
            ..ClientHello::default()
        };
        ch.pad_to(512);
        assert_eq!(ch.message().len(), 512);
        let s = summary(&ch.record());
        assert_eq!(s.hello.flags & (hf::MALFORMED | hf::TRUNCATED), 0);
    }
}

#[test]
fn server_hellos_parse_back_in_both_layouts() {
    let accept = ServerHello {
        session_id: vec![0x55; 32],
        extensions: vec![
            Extension::selected_version(0x0304),
            Extension::selected_identity(0),
        ],
        ..ServerHello::default()
    };
    let draft18 = ServerHello {
        legacy_version: 0x7f12,
        session_id: vec![0x55; 32], // not written: the draft has none
        cipher_suite: 0x1302,
        extensions: vec![Extension::new(40, &[0, 0x1d, 0, 1, 9])],
        ..ServerHello::default()
    };
    let hrr = ServerHello {
        random: HRR_RANDOM,
        extensions: vec![Extension::selected_version(0x0304)],
        ..ServerHello::default()
    };
    let h = summary(&accept.record()).hello;
    assert_eq!(h.flags, hf::SERVER_HELLO | hf::PSK);
    assert_eq!((h.selected_version, h.cipher_suite), (0x0304, 0x1301));
    assert_eq!(&h.session_id[..usize::from(h.session_id_len)], &[0x55; 32]);
    let h = summary(&draft18.record()).hello;
    assert_eq!(h.flags, hf::SERVER_HELLO);
    assert_eq!(
        (h.legacy_version, h.selected_version, h.cipher_suite),
        (0x7f12, 0x7f12, 0x1302)
    );
    assert_eq!((h.session_id_len, h.extensions), (0, 1));
    assert_eq!(
        summary(&hrr.record()).hello.flags,
        hf::SERVER_HELLO | hf::HRR
    );
}

#[test]
fn a_tls12_flight_lists_its_messages_and_ticket() {
    let sh = ServerHello {
        cipher_suite: 0xc02f,
        extensions: vec![Extension::session_ticket(&[])],
        ..ServerHello::default()
    };
    let mut flight = tls::handshake_record(&[
        sh.message(),
        tls::handshake(
            HandshakeType::CERTIFICATE.0,
            &tls::certificate(&[&[0x30; 40]]),
        ),
        tls::handshake(HandshakeType::SERVER_HELLO_DONE.0, &[]),
    ]);
    let s = summary(&flight);
    assert_eq!(
        &s.items[..usize::from(s.n_items)],
        &[
            items::SERVER_HELLO,
            items::CERTIFICATE,
            items::SERVER_HELLO_DONE
        ]
    );
    assert_eq!(s.hello.flags, hf::SERVER_HELLO | hf::TICKET_EXT);
    // The server's last flight: a ticket, change_cipher_spec, Finished.
    let ticket = [0xab; 100];
    flight = tls::handshake_record(&[tls::handshake(
        HandshakeType::NEW_SESSION_TICKET.0,
        &tls::new_session_ticket(7200, &ticket),
    )]);
    flight.extend(tls::record(ContentType::CHANGE_CIPHER_SPEC.0, &[1]));
    flight.extend(tls::record(ContentType::HANDSHAKE.0, &[0x5a; 40]));
    let s = summary(&flight);
    assert_eq!(
        &s.items[..usize::from(s.n_items)],
        &[
            items::NEW_SESSION_TICKET,
            items::CHANGE_CIPHER_SPEC,
            items::ENCRYPTED_HANDSHAKE
        ]
    );
    assert_eq!(s.hello.flags, hf::NEW_TICKET);
    assert_eq!(s.hello.ticket_id, [0xab; 16]);
    // The lengths are where the parser's record header reads them.
    let h = crate::tls::record_header(&flight[..], 0).unwrap();
    assert_eq!(h.len, 4 + 6 + ticket.len());
}

fn as_bytes(ev: &TlsEvent) -> &[u8] {
    // SAFETY: a view of a repr(C) wire struct of integers and byte arrays.
    unsafe {
        core::slice::from_raw_parts(core::ptr::from_ref(ev).cast::<u8>(), size_of::<TlsEvent>())
    }
}

#[test]
fn events_decode_back_to_what_was_built() {
    let t = Summary::client_hello()
        .flags(hf::OFFERS_TLS13 | hf::PSK)
        .session_id(&[7; 32])
        .ticket_id([9; 16])
        .sni(b"api.internal")
        .alpn(b"h2")
        .extensions(12)
        .build();
    assert_eq!(t.hello.flags, hf::CLIENT_HELLO | hf::OFFERS_TLS13 | hf::PSK);
    assert_eq!(&t.items[..usize::from(t.n_items)], &[items::CLIENT_HELLO]);
    let h = event::header(([10, 0, 0, 1], 5000).into(), ([10, 0, 0, 2], 443).into());
    let Decoded::Tls(header, tls) = event::tls(h, t) else {
        unreachable!()
    };
    let ev = TlsEvent { header, tls };
    assert_eq!(decode(as_bytes(&ev)), Some(Decoded::Tls(header, t)));
    assert_eq!(header.kind, EventKind::TLS.0);
    assert_eq!(
        (header.family, header.src_port, header.dst_addr),
        (4, 5000, v4([10, 0, 0, 2]))
    );
    let back = event::reply(&h);
    assert_eq!((back.src_port, back.src_addr), (443, h.dst_addr));
    let v6 = event::header(
        "[fd00::1]:5000".parse().unwrap(),
        "[fd00::2]:443".parse().unwrap(),
    );
    assert_eq!((v6.family, v6.dst_addr[15]), (6, 2));
    let Decoded::Teardown(rst) = event::teardown(EventHeader {
        tcp_flags: TCP_RST,
        ..h
    }) else {
        unreachable!()
    };
    assert_eq!(rst.kind, EventKind::TEARDOWN.0);
}

#[test]
fn summaries_list_items_as_the_walk_does() {
    // The same flight, summarized from bytes and built by name.
    let mut bytes = tls::handshake_record(&[
        ServerHello::default().message(),
        tls::handshake(HandshakeType::CERTIFICATE.0, &tls::certificate(&[])),
    ]);
    bytes.extend(tls::record(ContentType::APPLICATION_DATA.0, &[0; 20]));
    let walked = summary(&bytes);
    let built = Summary::server_hello(&[items::CERTIFICATE, items::APPLICATION_DATA])
        .cipher_suite(0x1301)
        .build();
    assert_eq!(walked.items, built.items);
    assert_eq!(walked.n_items, built.n_items);
    assert_eq!(
        (walked.hello.flags, walked.hello.cipher_suite),
        (built.hello.flags, built.hello.cipher_suite)
    );
}
