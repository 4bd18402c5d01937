//! The real kernel program, loaded into this kernel and run on frames with
//! BPF_PROG_TEST_RUN. Each frame also goes through the same pipeline in its
//! host environment; the two must produce the same events (apart from
//! timestamp, interface and direction, which only the kernel knows) and the
//! same counters, so the kernel's environment — ring buffer, maps, tail
//! call, socket-buffer reads — is checked against the host's. Needs root.
//!
//! Longer than 600 lines: every test here shares the loaded program and
//! the frame builders, and each test is a case of the same comparison.

use monitor::{live::monotonic_ns, replay::KernelEngine, stats::KernelStats};
use monitor_common::{
    classify::Classifier,
    emit::{
        self,
        tcp_option::NOP,
        tls::{self, ClientHello, Extension, ServerHello, handshake, record},
    },
    event::{Decoded, Direction, hello_flags as hf},
    net::{ETHERTYPE_VLAN, LinkType},
};

/// The kernel program and its host build, each with its own state (the
/// ClientHellos being reassembled), fed the same frames.
struct Engines {
    kernel: KernelEngine,
    host: Classifier,
}

fn engine() -> Engines {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "kernel tests load eBPF programs: run them as root (cargo xtask test)"
    );
    Engines {
        kernel: KernelEngine::new().expect("loading the kernel program"),
        host: Classifier::default(),
    }
}

/// Clears what only the kernel fills in, so both engines compare equal.
fn normalized(d: Decoded) -> Decoded {
    match d {
        Decoded::Tls(mut h, t) => {
            (h.ts_ns, h.ifindex, h.direction) = (0, 0, 0);
            Decoded::Tls(h, t)
        }
        Decoded::Teardown(mut h) => {
            (h.ts_ns, h.ifindex, h.direction) = (0, 0, 0);
            Decoded::Teardown(h)
        }
        Decoded::Chunk(mut h, c) => {
            (h.ts_ns, h.ifindex, h.direction) = (0, 0, 0);
            Decoded::Chunk(h, c)
        }
    }
}

/// Runs a frame through both engines, checks they agree, and returns all
/// events.
fn all(e: &mut Engines, frame: &[u8]) -> Vec<Decoded> {
    // The host's clock for pending hellos is the kernel's (CLOCK_MONOTONIC).
    let now = monotonic_ns();
    let kernel: Vec<_> = e
        .kernel
        .run_frame(frame)
        .unwrap_or_else(|err| panic!("test run of {} bytes: {err:#}", frame.len()))
        .into_iter()
        .map(normalized)
        .collect();
    let host: Vec<_> = e
        .host
        .packet(frame, LinkType::ETHERNET, Direction::UNKNOWN, now)
        .unwrap_or_default()
        .into_iter()
        .map(normalized)
        .collect();
    assert_eq!(
        kernel, host,
        "kernel and host engines disagree on frame {frame:02x?}"
    );
    assert_eq!(
        e.kernel.counters(),
        KernelStats::from_counters(|i| e.host.counter(i)),
        "kernel and host engines count frame {frame:02x?} differently"
    );
    let summaries = kernel
        .iter()
        .filter(|d| !matches!(d, Decoded::Chunk(..)))
        .count();
    assert!(
        summaries <= 1,
        "one TLS or teardown event per packet at most"
    );
    kernel
}

/// The first event of [`all`].
fn both(e: &mut Engines, frame: &[u8]) -> Option<Decoded> {
    all(e, frame).into_iter().next()
}

// ---- frame building -------------------------------------------------------

/// A ClientHello as a TLS 1.3-capable browser sends it, offering a ticket
/// and a PSK, with SNI and ALPN.
fn client_hello_repr() -> ClientHello {
    ClientHello {
        random: [0x11; 32],
        session_id: vec![0x22; 32],
        cipher_suites: vec![0x1301, 0xc02f],
        extensions: vec![
            Extension::new(0x0a0a, &[]), // GREASE
            Extension::server_name(b"backend.example"),
            Extension::alpn(&[b"h2"]),
            Extension::session_ticket(&[0x33; 48]),
            Extension::supported_versions(&[0x0304, 0x0303]),
            Extension::early_data(),
            Extension::new(41, &[0, 6, 0, 0, 0, 0, 0, 0, 0, 0]), // pre_shared_key (shape only)
        ],
        ..ClientHello::default()
    }
}

fn client_hello() -> Vec<u8> {
    client_hello_repr().record()
}

/// [`client_hello`] grown past one segment by a 1,216-byte key_share, the
/// size of an X25519MLKEM768 share, placed before pre_shared_key (which
/// comes last, RFC 8446 §4.2.11).
fn large_client_hello() -> Vec<u8> {
    grown_client_hello(vec![Extension::new(51, &[0x5a; 1216])])
}

/// [`client_hello`] with the extensions `more` before pre_shared_key,
/// which stays last (RFC 8446 §4.2.11).
fn grown_client_hello(more: Vec<Extension>) -> Vec<u8> {
    let mut hello = client_hello_repr();
    let psk = hello.extensions.len() - 1;
    hello.extensions.splice(psk..psk, more);
    hello.record()
}

/// A TLS 1.2 full-handshake server flight: ServerHello, Certificate,
/// ServerHelloDone in one record.
fn server_flight() -> Vec<u8> {
    let hello = ServerHello {
        random: [0x44; 32],
        session_id: vec![0x55; 32],
        cipher_suite: 0xc02f,
        extensions: vec![Extension::session_ticket(&[])],
        ..ServerHello::default()
    };
    tls::handshake_record(&[
        hello.message(),
        handshake(11, &tls::certificate(&[&[]])),
        handshake(14, &[]),
    ])
}

/// The body of a ServerHello selecting `version` (supported_versions) and
/// accepting a PSK (RFC 8446 §4.2.11: its pre_shared_key names the
/// identity chosen), echoing a 32-byte session ID.
fn psk_server_hello(version: u16) -> Vec<u8> {
    ServerHello {
        random: [0x44; 32],
        session_id: vec![0x22; 32],
        extensions: vec![
            Extension::selected_version(version),
            Extension::selected_identity(0),
        ],
        ..ServerHello::default()
    }
    .body()
}

struct Frame {
    ipv6: bool,
    vlan: bool,
    ip_options: usize,
    tcp_options: usize,
    flags: u8,
}

const PLAIN: Frame = Frame {
    ipv6: false,
    vlan: false,
    ip_options: 0,
    tcp_options: 0,
    flags: 0x18,
};

/// The headers of a frame of this shape from 10.0.0.1:40000 (fd…fd in
/// IPv6) to 10.0.0.2:443 (fe…fe), sequence number 1000, options made of
/// NOPs.
fn headers(f: &Frame) -> emit::Frame {
    let ip = if f.ipv6 {
        emit::IpRepr::V6(emit::Ipv6Repr {
            src: [0xfd; 16],
            dst: [0xfe; 16],
            ..emit::Ipv6Repr::default()
        })
    } else {
        emit::IpRepr::V4(emit::Ipv4Repr {
            ident: 0,
            options: vec![NOP; f.ip_options],
            checksum: false,
            ..emit::Ipv4Repr::default()
        })
    };
    emit::Frame {
        eth: emit::EthernetRepr {
            tags: if f.vlan { vec![ETHERTYPE_VLAN] } else { vec![] },
            ..emit::EthernetRepr::default()
        },
        ip,
        tcp: emit::TcpRepr {
            seq: 1000,
            flags: f.flags,
            options: vec![NOP; f.tcp_options],
            ..emit::TcpRepr::default()
        },
    }
}

fn frame(f: &Frame, payload: &[u8]) -> Vec<u8> {
    headers(f).emit(payload)
}

/// [`frame`] with TCP sequence number `seq`.
fn frame_at(f: &Frame, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut h = headers(f);
    h.tcp.seq = seq;
    h.emit(payload)
}

// ---- tests ----------------------------------------------------------------

#[test]
fn client_hello_is_parsed_identically_in_kernel_and_host() {
    let mut k = engine();
    for f in [
        PLAIN,
        Frame {
            ip_options: 4,
            tcp_options: 12,
            ..PLAIN
        },
        Frame {
            ipv6: true,
            ..PLAIN
        },
        Frame {
            vlan: true,
            ..PLAIN
        },
    ] {
        let Some(Decoded::Tls(h, t)) = both(&mut k, &frame(&f, &client_hello())) else {
            panic!("no TLS event for a ClientHello");
        };
        assert_eq!((h.src_port, h.dst_port), (40000, 443));
        assert_eq!(h.family, if f.ipv6 { 6 } else { 4 });
        let flags = t.hello.flags;
        for (bit, name) in [
            (hf::CLIENT_HELLO, "CLIENT_HELLO"),
            (hf::TICKET_OFFERED, "TICKET_OFFERED"),
            (hf::PSK, "PSK"),
            (hf::EARLY_DATA, "EARLY_DATA"),
            (hf::OFFERS_TLS13, "OFFERS_TLS13"),
        ] {
            assert!(flags & bit != 0, "{name} missing");
        }
        assert_eq!(flags & (hf::TRUNCATED | hf::MALFORMED), 0);
        assert_eq!(
            &t.hello.sni[..usize::from(t.hello.sni_len)],
            b"backend.example"
        );
        assert_eq!(&t.hello.alpn[..usize::from(t.hello.alpn_len)], b"h2");
        assert_eq!(t.hello.session_id_len, 32);
        assert_eq!(t.hello.ticket_id, [0x33; 16]);
    }
}

#[test]
fn server_flight_lists_messages_in_order() {
    let mut k = engine();
    let Some(Decoded::Tls(_, t)) = both(&mut k, &frame(&PLAIN, &server_flight())) else {
        panic!("no TLS event for a server flight");
    };
    assert_eq!(
        &t.items[..usize::from(t.n_items)],
        &[0x1602, 0x160b, 0x160e]
    );
    assert_eq!(t.hello.cipher_suite, 0xc02f);
    assert!(t.hello.flags & hf::TICKET_EXT != 0);
}

/// A draft-18 ServerHello accepting a PSK (draft-18's key_share was
/// extension 40).
fn draft18_server_hello() -> Vec<u8> {
    ServerHello {
        legacy_version: 0x7f12,
        random: [0xa6; 32],
        extensions: vec![
            Extension::new(40, &[0, 0x1d, 0, 2, 1, 2]),
            Extension::selected_identity(0),
        ],
        ..ServerHello::default()
    }
    .record()
}

/// ServerHellos of TLS 1.3 drafts: draft-18's own layout (version,
/// random, cipher_suite, extensions: draft-ietf-tls-tls13-18 §4.1.3) and
/// a vendor's variant of draft 26 in RFC 8446's layout, both accepting a
/// PSK.
#[test]
fn draft_server_hellos_are_parsed_identically_in_kernel_and_host() {
    let mut k = engine();
    let fb26 = record(22, &handshake(2, &psk_server_hello(0xfb1a)));
    for (hello, version) in [(draft18_server_hello(), 0x7f12), (fb26, 0xfb1a)] {
        let f = frame(&PLAIN, &hello);
        let Some(Decoded::Tls(_, t)) = both(&mut k, &f) else {
            panic!("no TLS event for the {version:#x} ServerHello");
        };
        let h = t.hello;
        assert_eq!(h.flags & (hf::MALFORMED | hf::TRUNCATED), 0, "{version:#x}");
        assert_eq!(h.flags & hf::PSK, hf::PSK, "{version:#x}");
        assert_eq!((h.selected_version, h.cipher_suite), (version, 0x1301));
    }
}

#[test]
fn rst_fin_and_non_tls_traffic() {
    let mut k = engine();
    let rst = Frame {
        flags: 0x14,
        ..PLAIN
    };
    assert!(
        matches!(both(&mut k, &frame(&rst, &[])), Some(Decoded::Teardown(h)) if h.tcp_flags == 0x14)
    );
    // Application data and plain HTTP produce nothing.
    assert_eq!(
        both(&mut k, &frame(&PLAIN, &record(23, &[0xaa; 100]))),
        None
    );
    assert_eq!(
        both(&mut k, &frame(&PLAIN, b"GET / HTTP/1.1\r\n\r\n")),
        None
    );
    // FIN carrying application data is still a teardown.
    let fin = Frame {
        flags: 0x11,
        ..PLAIN
    };
    assert!(matches!(
        both(&mut k, &frame(&fin, &record(23, &[1; 40]))),
        Some(Decoded::Teardown(_))
    ));
}

#[test]
fn truncated_frames_never_report_a_whole_hello() {
    let mut k = engine();
    let full = frame(&PLAIN, &client_hello());
    for cut in 0..full.len() {
        // Each cut from its own port: a cut hello is remembered for
        // reassembly, and the next cut must not look like its continuation.
        let mut f = full[..cut].to_vec();
        if let Some(port) = f.get_mut(34..36) {
            port.copy_from_slice(&u16::try_from(1000 + cut).unwrap().to_be_bytes());
        }
        if let Some(Decoded::Tls(_, t)) = both(&mut k, &f) {
            let f = t.hello.flags;
            assert!(
                f & hf::CLIENT_HELLO == 0 || f & (hf::TRUNCATED | hf::MALFORMED) != 0,
                "cut at {cut} reported a complete ClientHello"
            );
        }
    }
}

/// The server's answer to `hello`, sent from port 1000 in
/// [`frame_at`] frames: a TLS 1.3 ServerHello accepting the PSK, from
/// 10.0.0.2:443 back to 10.0.0.1:40000, acknowledging the whole hello (the
/// tracker counts only a ServerHello that does).
fn psk_answer(hello: &[u8]) -> Vec<u8> {
    let body = psk_server_hello(0x0304);
    // From 10.0.0.2:443 back to 10.0.0.1:40000, acknowledging the whole
    // hello (the tracker counts only a ServerHello that does).
    let mut reply = headers(&PLAIN).reply();
    let hello_end = 1000 + u32::try_from(hello.len()).unwrap();
    (reply.tcp.seq, reply.tcp.ack) = (77, hello_end);
    reply.emit(&record(22, &handshake(2, &body)))
}

/// `events` through the tracker, as on the client's host: the client's
/// packets leave and the server's arrive. Teardowns are left out: in the
/// made-up orders of these tests they would end the connection before the
/// server could answer.
fn tracked(events: Vec<Decoded>) -> monitor::tracker::Tracker {
    use monitor::tracker::{Limits, Tracker};
    let mut t = Tracker::new(Limits::default());
    for mut d in events {
        let (Decoded::Tls(h, _) | Decoded::Teardown(h) | Decoded::Chunk(h, _)) = &mut d;
        h.direction = if h.src_port == 443 {
            Direction::INGRESS.0
        } else {
            Direction::EGRESS.0
        };
        if !matches!(d, Decoded::Teardown(_)) {
            t.on_event(d);
        }
    }
    t
}

/// `hello` cut into pieces of the sizes in `sizes`, each its own segment
/// from port 40000 starting at sequence number 1000, through both engines,
/// then [`psk_answer`]: every event.
fn in_pieces(k: &mut Engines, hello: &[u8], sizes: &[usize]) -> Vec<Decoded> {
    let mut events = Vec::new();
    let mut at = 0;
    for &n in sizes {
        let seq = 1000 + u32::try_from(at).unwrap();
        events.extend(all(k, &frame_at(&PLAIN, seq, &hello[at..at + n])));
        at += n;
    }
    assert_eq!(at, hello.len());
    events.extend(all(k, &psk_answer(hello)));
    events
}

/// The offsets and lengths of the chunks among `events`.
fn chunks(events: &[Decoded]) -> Vec<(u32, usize)> {
    events
        .iter()
        .filter_map(|d| match d {
            Decoded::Chunk(_, c) => Some((c.offset, c.data.len())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_client_hello_split_over_segments_is_reassembled() {
    let hello = large_client_hello();
    // The whole hello in one frame, for reference.
    let mut k = engine();
    let Some(Decoded::Tls(_, whole)) = both(&mut k, &frame(&PLAIN, &hello)) else {
        panic!("no TLS event for the whole hello");
    };
    assert_eq!(whole.hello.flags & hf::TRUNCATED, 0);
    // Cut at a 536-byte MSS (RFC 9293 §3.7.1's default), sent in order,
    // the middle segment repeated (a retransmission), the last with FIN.
    let mss = 536;
    let mut k = engine();
    let mut events = Vec::new();
    let pieces: Vec<&[u8]> = hello.chunks(mss).collect();
    assert_eq!(pieces.len(), 3, "hello is {} bytes", hello.len());
    for (i, piece) in pieces.iter().enumerate().chain([(1, &pieces[1])]) {
        let f = if i == 2 {
            Frame {
                flags: 0x19,
                ..PLAIN
            }
        } else {
            PLAIN
        };
        let seq = 1000 + u32::try_from(i * mss).unwrap();
        events.extend(all(&mut k, &frame_at(&f, seq, piece)));
    }
    // Each segment's bytes exactly once; the retransmission came after the
    // hello was complete, when nothing was pending any more.
    assert_eq!(
        chunks(&events),
        vec![(0, 536), (536, 536), (1072, hello.len() - 1072)]
    );
    assert!(matches!(&events[0], Decoded::Tls(_, t) if t.hello.flags & hf::TRUNCATED != 0));
    assert!(matches!(events.last(), Some(Decoded::Teardown(h)) if h.tcp_flags == 0x19));
    // Application data on the flow now: nothing, as before any hello.
    assert!(all(&mut k, &frame_at(&PLAIN, 9000, &record(23, &[1; 64]))).is_empty());
    // The server accepts the PSK.
    events.extend(all(&mut k, &psk_answer(&hello)));
    // The tracker sees the whole hello: the PSK offer from the last
    // segment.
    let t = tracked(events);
    assert_eq!(
        (t.totals.reassembled_hellos, t.totals.truncated_hellos),
        (1, 0)
    );
    let s = t.servers();
    assert_eq!(
        (s[0].offered_by.psk, s[0].resumed_by.psk),
        (1, 1),
        "{:?}",
        s[0]
    );
    assert_eq!(k.kernel.counters().split_hellos, 1);
}

/// Issue 14's hostile hellos: written 7 bytes at a time, so that the
/// first segment ends inside the handshake message's header and shows no
/// message at all; or the record header on its own, as some stacks write
/// it. The record header starts the reassembly in both engines, and the
/// tracker sees the whole hello, PSK offer included.
#[test]
fn a_client_hello_in_small_pieces_is_reassembled() {
    let hello = large_client_hello();
    // (first piece, the flags of its summary): the message type is known
    // from the sixth byte on.
    for (piece, flags) in [(7, hf::CLIENT_HELLO | hf::TRUNCATED), (5, hf::TRUNCATED)] {
        let mut sizes = vec![piece; 40];
        sizes.push(hello.len() - piece * 40);
        let mut k = engine();
        let events = in_pieces(&mut k, &hello, &sizes);
        let Decoded::Tls(_, first) = &events[0] else {
            panic!("no TLS event for the first {piece} bytes: {:?}", events[0]);
        };
        assert_eq!(first.hello.flags, flags, "{piece}-byte pieces");
        assert_eq!(first.n_items, 0, "no message is visible in {piece} bytes");
        let step = u32::try_from(piece).unwrap();
        let want: Vec<(u32, usize)> = (0..40)
            .map(|i| (i * step, piece))
            .chain([(40 * step, hello.len() - piece * 40)])
            .collect();
        assert_eq!(chunks(&events), want, "{piece}-byte pieces");
        assert_eq!(k.kernel.counters().split_hellos, 1);
        let t = tracked(events);
        assert_eq!(
            (t.totals.reassembled_hellos, t.totals.truncated_hellos),
            (1, 0),
            "{piece}-byte pieces"
        );
        let s = t.servers();
        assert_eq!((s[0].offered_by.psk, s[0].resumed_by.psk), (1, 1), "{s:?}");
    }
}

/// A hello with 1,000 extensions before its PSK offer (issue 14), in
/// 7-byte pieces and then 512-byte ones: reassembled, and, since the walk
/// reads `MAX_EXTENSIONS` of them, counted as truncated rather than taken
/// as a hello without an offer. Whole in one segment, the same (with 40
/// extensions: BPF_PROG_TEST_RUN takes frames of less than a page).
#[test]
fn a_psk_offer_past_the_extension_limit_is_counted_as_truncated() {
    let unknown = (0..1000u16)
        .map(|i| Extension::new(0x1000 + i, &[]))
        .collect();
    let hello = grown_client_hello(unknown);
    let mut sizes = vec![7; 20];
    let rest = hello.len() - 140;
    sizes.extend(std::iter::repeat_n(512, rest / 512));
    sizes.push(rest % 512);
    let mut k = engine();
    let events = in_pieces(&mut k, &hello, &sizes);
    let t = tracked(events);
    assert_eq!(
        (t.totals.reassembled_hellos, t.totals.truncated_hellos),
        (1, 1)
    );
    // The server accepted a PSK that tlsmon could not see offered: a
    // resumption counts its method as offered all the same.
    let s = t.servers();
    assert_eq!((s[0].resumed_by.psk, s[0].full), (1, 0), "{s:?}");
    // In one segment.
    let unknown = (0..40u16)
        .map(|i| Extension::new(0x1000 + i, &[]))
        .collect();
    let hello = grown_client_hello(unknown);
    let mut k = engine();
    let events = in_pieces(&mut k, &hello, &[hello.len()]);
    let Decoded::Tls(_, whole) = &events[0] else {
        panic!("no TLS event for the hello: {:?}", events[0]);
    };
    assert_eq!(whole.hello.flags & (hf::PSK | hf::TRUNCATED), hf::TRUNCATED);
    assert!(chunks(&events).is_empty(), "nothing to reassemble");
    let t = tracked(events);
    assert_eq!(
        (t.totals.reassembled_hellos, t.totals.truncated_hellos),
        (0, 1)
    );
}

#[test]
fn hostile_frames_are_skipped_the_same_way_in_both_engines() {
    let mut k = engine();
    let base = frame(&PLAIN, &client_hello());
    // Every single-byte corruption of the header and hello region.
    for i in 0..base.len().min(200) {
        for v in [0x00, 0xff, 0x80, 0x01] {
            let mut f = base.clone();
            f[i] = v;
            both(&mut k, &f);
        }
    }
    // Random frames from a fixed xorshift sequence.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..2000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = usize::try_from(x % 300).unwrap();
        let mut f: Vec<u8> = (0..len)
            .map(|i| {
                let s = x.rotate_left(u32::try_from(i % 64).unwrap());
                s.to_le_bytes()[i % 8]
            })
            .collect();
        // Make a third of them look like IPv4/TCP so the deeper code runs.
        if len > 40 && x.is_multiple_of(3) {
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            f[14] = 0x45;
            f[23] = 6;
        }
        both(&mut k, &f);
    }
}

/// A ClientHello inside every tunnel the parser opens, built with the
/// shared emit side: the same event (with its tunnel) from both engines,
/// and every single-byte corruption of the tunnel headers handled alike.
#[test]
fn tunnelled_frames_are_read_identically_in_kernel_and_host() {
    use monitor_common::{
        emit::{self, GreFields},
        net::{ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_TEB, ETHERTYPE_VLAN},
        tunnel::{GENEVE_PORT, GTPU_PORT, Tunnel, VXLAN_PORT},
    };
    let mut k = engine();
    let hello = client_hello();
    let inner = emit::ipv4(
        6,
        [10, 0, 0, 1],
        [10, 0, 0, 2],
        &emit::tcp(40000, 443, 1000, 0x18, &hello),
    );
    let inner6 = emit::ipv6(
        6,
        [0xfd; 16],
        [0xfe; 16],
        &emit::tcp(40000, 443, 1000, 0x18, &hello),
    );
    let eth = emit::ethernet(&[ETHERTYPE_VLAN], ETHERTYPE_IPV4, &inner);
    let outer = |proto: u8, payload: &[u8]| {
        emit::ethernet(
            &[],
            ETHERTYPE_IPV4,
            &emit::ipv4(proto, [198, 51, 100, 1], [198, 51, 100, 2], payload),
        )
    };
    let gre_fields = GreFields {
        checksum: true,
        key: true,
        sequence: false,
    };
    let frames = [
        (
            emit::udp_tunnel(VXLAN_PORT, &emit::vxlan(42, &eth)),
            Tunnel::VXLAN,
        ),
        (
            emit::udp_tunnel(GENEVE_PORT, &emit::geneve(ETHERTYPE_TEB, &[1; 8], &eth)),
            Tunnel::GENEVE,
        ),
        (
            outer(47, &emit::gre(gre_fields, ETHERTYPE_IPV4, &inner)),
            Tunnel::GRE,
        ),
        (outer(4, &inner), Tunnel::IP_IN_IP),
        (outer(41, &inner6), Tunnel::IP_IN_IP),
        (
            emit::udp_tunnel(GTPU_PORT, &emit::gtpu(9, true, &inner6)),
            Tunnel::GTPU,
        ),
        (emit::pppoe_frame(&inner), Tunnel::PPPOE),
        (
            emit::ethernet(
                &[],
                ETHERTYPE_IPV6,
                &emit::ipv6(4, [0xfd; 16], [0xfe; 16], &inner),
            ),
            Tunnel::IP_IN_IP,
        ),
    ];
    for (frame, tunnel) in frames {
        let Some(Decoded::Tls(h, t)) = both(&mut k, &frame) else {
            panic!("no TLS event through {}", tunnel.name());
        };
        assert_eq!(h.tunnel, tunnel.0, "{}", tunnel.name());
        assert_eq!((h.src_port, h.dst_port), (40000, 443), "{}", tunnel.name());
        assert_eq!(
            t.hello.flags & (hf::TRUNCATED | hf::MALFORMED),
            0,
            "{}",
            tunnel.name()
        );
        assert_ne!(t.hello.flags & hf::CLIENT_HELLO, 0, "{}", tunnel.name());
        let headers = frame.len() - hello.len();
        for i in 0..headers {
            for v in [0x00, 0xff, 0x45, 0x01] {
                let mut f = frame.clone();
                f[i] = v;
                both(&mut k, &f);
            }
        }
    }
}

#[test]
fn ring_buffer_overflow_is_counted_never_silent() {
    use aya::programs::{SchedClassifier, TestRun as _, TestRunOptions};
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "needs root");
    // One page: room for about 15 TLS events.
    let mut ebpf = monitor::kernel::load(4096).expect("load");
    let mut ring = monitor::kernel::ring_buffer(&mut ebpf).expect("ring");
    let stats = monitor::kernel::stats_map(&mut ebpf).expect("stats");
    let prog: &SchedClassifier = ebpf
        .program(monitor::kernel::INGRESS)
        .unwrap()
        .try_into()
        .unwrap();
    let frame = frame(&PLAIN, &client_hello());
    let runs = 200u32;
    prog.test_run(TestRunOptions {
        data_in: Some(&frame),
        repeat: runs,
        ..TestRunOptions::default()
    })
    .expect("test run");
    let mut delivered = 0u64;
    while ring.next().is_some() {
        delivered += 1;
    }
    let lost = monitor::kernel::read_stats(&stats).lost_events;
    assert!(
        delivered > 0 && lost > 0,
        "delivered {delivered}, lost {lost}"
    );
    assert_eq!(
        delivered + lost,
        u64::from(runs),
        "every event is either delivered or counted as lost"
    );
}
