//! Real handshakes through the shared parser, checked against tshark.
//!
//! `tests/fixtures/make.sh` records OpenSSL handshakes on loopback
//! (`<name>.pcap`) and saves what tshark 4.0 decodes from every frame that
//! holds a plaintext handshake message (`<name>.tshark.tsv`). These tests
//! read each capture with [`monitor::capture::Capture`], run every frame
//! through [`classify`], and compare the result frame by frame with the TSV.
//! Every expected value comes from the TSV. They also feed truncated and
//! bit-flipped copies of the frames through [`classify`].

use std::{collections::HashMap, fmt::Write as _, fs, path::PathBuf};

use monitor::capture::Capture;
use monitor_common::{
    classify::classify,
    event::{
        Decoded, Direction, EventHeader, Hello, ITEM_OPAQUE, TICKET_ID_LEN, TlsSummary,
        hello_flags as hf,
    },
    net::{ETHERTYPE_IPV4, ETHERTYPE_IPV6, LinkType, l3, tcp},
    tls::{ContentType, ExtensionType, HRR_RANDOM, HandshakeType, ProtocolVersion},
    tunnel::Tunnel,
};

// ---- inputs -------------------------------------------------------------

fn fixture_path(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(file)
}

/// One captured frame, owned.
struct Frame {
    /// 1-based, as tshark numbers them.
    number: usize,
    link: LinkType,
    ts_ns: u64,
    data: Vec<u8>,
}

fn frames(name: &str) -> Vec<Frame> {
    let mut capture = Capture::open(&fixture_path(&format!("{name}.pcap"))).unwrap();
    let mut frames = Vec::new();
    while let Some(p) = capture.next_packet() {
        let number = frames.len() + 1;
        let p = p.unwrap_or_else(|e| panic!("{name}: frame {number}: {e}"));
        assert_eq!(
            p.direction,
            Direction::UNKNOWN,
            "{name}: classic pcap has no direction"
        );
        assert_eq!(
            usize::try_from(p.orig_len).unwrap(),
            p.data.len(),
            "{name}: captured with -s 0"
        );
        frames.push(Frame {
            number,
            link: p.link,
            ts_ns: p.ts_ns,
            data: p.data.to_vec(),
        });
    }
    frames
}

/// One line of a `.tshark.tsv` file: field name to value. Fields that occur
/// several times in a frame are joined with ','.
struct Row(HashMap<String, String>);

impl Row {
    fn get(&self, field: &str) -> &str {
        self.0
            .get(field)
            .unwrap_or_else(|| panic!("TSV has no column {field}"))
    }

    fn list(&self, field: &str) -> Vec<&str> {
        let v = self.get(field);
        if v.is_empty() {
            Vec::new()
        } else {
            v.split(',').collect()
        }
    }

    fn number(&self, field: &str) -> usize {
        self.get(field)
            .parse()
            .unwrap_or_else(|e| panic!("{field}={:?}: {e}", self.get(field)))
    }

    fn handshake_types(&self) -> Vec<u8> {
        self.list("tls.handshake.type")
            .iter()
            .map(|t| t.parse().unwrap())
            .collect()
    }

    fn extensions(&self) -> Vec<(u16, usize)> {
        let types = self.list("tls.handshake.extension.type");
        let lens = self.list("tls.handshake.extension.len");
        assert_eq!(
            types.len(),
            lens.len(),
            "frame {}: extension types and lengths",
            self.get("frame.number")
        );
        types
            .iter()
            .zip(&lens)
            .map(|(t, l)| (t.parse().unwrap(), l.parse().unwrap()))
            .collect()
    }
}

fn tsv(name: &str) -> Vec<Row> {
    let path = fixture_path(&format!("{name}.tshark.tsv"));
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("TSV header").split('\t').collect();
    lines
        .map(|line| {
            let values: Vec<&str> = line.split('\t').collect();
            assert_eq!(values.len(), header.len(), "{name}: {line}");
            Row(header
                .iter()
                .zip(values)
                .map(|(k, v)| ((*k).to_owned(), v.to_owned()))
                .collect())
        })
        .collect()
}

fn unhex(s: &str) -> Vec<u8> {
    let s = s.replace(':', "");
    assert!(s.len().is_multiple_of(2), "odd hex string {s:?}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// tshark prints 16-bit values as 0x-prefixed hex.
fn parse_u16(s: &str) -> u16 {
    match s.strip_prefix("0x") {
        Some(hex) => u16::from_str_radix(hex, 16).unwrap(),
        None => s.parse().unwrap(),
    }
}

/// `frame.time_epoch`, "seconds.fraction", in nanoseconds.
fn parse_epoch_ns(s: &str) -> u64 {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let frac = format!("{frac:0<9}");
    secs.parse::<u64>().unwrap() * 1_000_000_000 + frac[..9].parse::<u64>().unwrap()
}

/// The last bytes of a ticket, as [`Hello::ticket_id`] keeps them.
fn ticket_tail(ticket: &[u8]) -> Vec<u8> {
    ticket[ticket.len().saturating_sub(TICKET_ID_LEN)..].to_vec()
}

// ---- what is compared ---------------------------------------------------

/// Flags tshark lets us derive. TRUNCATED, MALFORMED and NAME_CUT are
/// compared too: none of them may appear in these complete, short hellos.
const COMPARED: u16 = hf::CLIENT_HELLO
    | hf::SERVER_HELLO
    | hf::HRR
    | hf::TICKET_EXT
    | hf::TICKET_OFFERED
    | hf::PSK
    | hf::EARLY_DATA
    | hf::OFFERS_TLS13
    | hf::NEW_TICKET
    | hf::TRUNCATED
    | hf::MALFORMED
    | hf::NAME_CUT;

/// One frame as far as the comparison goes.
#[derive(Debug, Default, PartialEq, Eq)]
struct View {
    src_port: u16,
    dst_port: u16,
    payload_len: usize,
    /// Plaintext handshake message types, in order.
    handshake_types: Vec<u8>,
    flags: u16,
    session_id: Vec<u8>,
    sni: String,
    alpn: String,
    cipher_suite: u16,
    selected_version: u16,
    /// Offered (ClientHello) or issued (NewSessionTicket) ticket tail.
    ticket_id: Option<Vec<u8>>,
    /// The tunnel the frame came in (`EventHeader::tunnel`).
    tunnel: u8,
}

fn flag_names(flags: u16) -> String {
    const NAMES: [(u16, &str); 12] = [
        (hf::CLIENT_HELLO, "CLIENT_HELLO"),
        (hf::SERVER_HELLO, "SERVER_HELLO"),
        (hf::HRR, "HRR"),
        (hf::TICKET_EXT, "TICKET_EXT"),
        (hf::TICKET_OFFERED, "TICKET_OFFERED"),
        (hf::PSK, "PSK"),
        (hf::EARLY_DATA, "EARLY_DATA"),
        (hf::OFFERS_TLS13, "OFFERS_TLS13"),
        (hf::TRUNCATED, "TRUNCATED"),
        (hf::NAME_CUT, "NAME_CUT"),
        (hf::NEW_TICKET, "NEW_TICKET"),
        (hf::MALFORMED, "MALFORMED"),
    ];
    let names: Vec<&str> = NAMES
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    names.join("|")
}

fn bytes_str(b: &[u8], len: u8) -> String {
    String::from_utf8_lossy(&b[..usize::from(len)]).into_owned()
}

/// The parser's view of a frame; `None` when classify produced no TLS event.
fn parsed_view(frame: &Frame) -> Option<(EventHeader, TlsSummary, View)> {
    let Ok(Some(Decoded::Tls(header, s))) =
        classify(&frame.data, frame.link, Direction::UNKNOWN, frame.ts_ns)
    else {
        return None;
    };
    assert_eq!(
        s.items_cut, 0,
        "frame {}: more items than the summary holds",
        frame.number
    );
    let h = &s.hello;
    let handshake_types = s.items[..usize::from(s.n_items)]
        .iter()
        .filter(|&&item| {
            item >> 8 == u16::from(ContentType::HANDSHAKE.0)
                && item & 0xff != u16::from(ITEM_OPAQUE)
        })
        .map(|&item| u8::try_from(item & 0xff).unwrap())
        .collect();
    let ticket_id =
        (h.flags & (hf::TICKET_OFFERED | hf::NEW_TICKET) != 0).then(|| h.ticket_id.to_vec());
    let view = View {
        src_port: header.src_port,
        dst_port: header.dst_port,
        payload_len: usize::try_from(header.payload_len).unwrap(),
        handshake_types,
        flags: h.flags & COMPARED,
        session_id: h.session_id[..usize::from(h.session_id_len)].to_vec(),
        sni: bytes_str(&h.sni, h.sni_len),
        alpn: bytes_str(&h.alpn, h.alpn_len),
        cipher_suite: h.cipher_suite,
        selected_version: h.selected_version,
        ticket_id,
        tunnel: header.tunnel,
    };
    Some((header, s, view))
}

/// tshark's view of a frame, in the parser's terms.
fn expected_view(row: &Row) -> View {
    let frame = row.get("frame.number");
    let types = row.handshake_types();
    let is_hello =
        |t: &u8| *t == HandshakeType::CLIENT_HELLO.0 || *t == HandshakeType::SERVER_HELLO.0;
    let hellos: Vec<u8> = types.iter().copied().filter(is_hello).collect();
    assert!(
        hellos.len() <= 1,
        "frame {frame}: several hellos in one frame"
    );
    let mut v = View {
        src_port: parse_u16(row.get("tcp.srcport")),
        dst_port: parse_u16(row.get("tcp.dstport")),
        payload_len: row.number("tcp.len"),
        handshake_types: types.clone(),
        tunnel: tunnel_of(row.get("frame.protocols")).0,
        ..View::default()
    };
    let exts = row.extensions();
    let has = |e: ExtensionType| exts.iter().any(|&(t, _)| t == e.0);
    let first = |field: &str| {
        row.list(field)
            .first()
            .map(|s| (*s).to_owned())
            .unwrap_or_default()
    };
    match hellos.first() {
        Some(&t) if t == HandshakeType::CLIENT_HELLO.0 => {
            v.flags |= hf::CLIENT_HELLO;
            v.sni = first("tls.handshake.extensions_server_name");
            // The client's preferred version (its first that is not
            // GREASE, RFC 8446 §4.2.1 and RFC 8701 §2) is TLS 1.3 or a
            // draft of it.
            let versions = row.list("tls.handshake.extensions.supported_version");
            if versions
                .iter()
                .map(|s| parse_u16(s))
                .find(|v| v & 0x0f0f != 0x0a0a)
                .is_some_and(|v| ProtocolVersion(v).follows_tls13())
            {
                v.flags |= hf::OFFERS_TLS13;
            }
            if has(ExtensionType::EARLY_DATA) {
                v.flags |= hf::EARLY_DATA;
            }
            if let Some(&(_, len)) = exts
                .iter()
                .find(|&&(t, _)| t == ExtensionType::SESSION_TICKET.0)
                && len > 0
            {
                v.flags |= hf::TICKET_OFFERED;
                // tshark gives the ticket only as generic extension data;
                // pick the value whose length is the extension's.
                let data: Vec<Vec<u8>> = row
                    .list("tls.handshake.extension.data")
                    .iter()
                    .map(|d| unhex(d))
                    .filter(|d| d.len() == len)
                    .collect();
                assert_eq!(
                    data.len(),
                    1,
                    "frame {frame}: cannot tell the session_ticket data apart"
                );
                v.ticket_id = Some(ticket_tail(&data[0]));
            }
        }
        Some(_) => {
            v.flags |= hf::SERVER_HELLO;
            if unhex(row.get("tls.handshake.random")) == HRR_RANDOM {
                v.flags |= hf::HRR;
            }
            v.cipher_suite = parse_u16(row.get("tls.handshake.ciphersuite"));
            v.selected_version = selected_version(row);
        }
        None => {}
    }
    if !hellos.is_empty() {
        v.session_id = unhex(row.get("tls.handshake.session_id"));
        // Draft-18's ServerHello has no session ID field at all.
        let sid_len = row.get("tls.handshake.session_id_length");
        if !sid_len.is_empty() {
            assert_eq!(
                v.session_id.len(),
                row.number("tls.handshake.session_id_length")
            );
        }
        v.alpn = first("tls.handshake.extensions_alpn_str");
        if has(ExtensionType::SESSION_TICKET) {
            v.flags |= hf::TICKET_EXT;
        }
        if has(ExtensionType::PRE_SHARED_KEY) {
            v.flags |= hf::PSK;
        }
    }
    // A TLS 1.2 NewSessionTicket in clear, with a ticket in it, in a server
    // flight.
    let ticket = row.get("tls.handshake.session_ticket");
    if types.contains(&HandshakeType::NEW_SESSION_TICKET.0)
        && !ticket.is_empty()
        && v.flags & hf::CLIENT_HELLO == 0
    {
        v.flags |= hf::NEW_TICKET;
        v.ticket_id = Some(ticket_tail(&unhex(ticket)));
    }
    v
}

/// The version a ServerHello selects: its supported_versions, or for a
/// draft before -22, whose ServerHello has no such extension, the version
/// in place of legacy_version (draft-ietf-tls-tls13-18 §4.1.3); 0 when
/// neither (TLS ≤ 1.2).
fn selected_version(row: &Row) -> u16 {
    if let Some(v) = row
        .list("tls.handshake.extensions.supported_version")
        .first()
    {
        return parse_u16(v);
    }
    let version = parse_u16(row.get("tls.handshake.version"));
    if (0x7f00..0x7f16).contains(&version) {
        version
    } else {
        0
    }
}

/// The outermost tunnel in tshark's protocol stack of a frame
/// (`eth:ethertype:ip:udp:vxlan:eth:...`): a tunnel protocol, or an IP
/// header right inside another.
fn tunnel_of(protocols: &str) -> Tunnel {
    let layers: Vec<&str> = protocols.split(':').collect();
    for (i, layer) in layers.iter().enumerate() {
        let next = layers.get(i + 1).copied().unwrap_or("");
        match *layer {
            "vxlan" => return Tunnel::VXLAN,
            "geneve" => return Tunnel::GENEVE,
            "gre" => return Tunnel::GRE,
            "gtp" => return Tunnel::GTPU,
            "pppoes" => return Tunnel::PPPOE,
            "ip" | "ipv6" if next == "ip" || next == "ipv6" => return Tunnel::IP_IN_IP,
            "tcp" => break,
            _ => {}
        }
    }
    Tunnel::NONE
}

fn describe(v: &View) -> String {
    format!(
        "ports {}->{} len {} handshake {:?} flags [{}] session_id {} sni {:?} alpn {:?} cipher 0x{:04x} version 0x{:04x} ticket {} tunnel {}",
        v.src_port,
        v.dst_port,
        v.payload_len,
        v.handshake_types,
        flag_names(v.flags),
        hex(&v.session_id),
        v.sni,
        v.alpn,
        v.cipher_suite,
        v.selected_version,
        v.ticket_id.as_deref().map_or_else(|| "-".to_owned(), hex),
        Tunnel(v.tunnel).name(),
    )
}

fn hex(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

// ---- the comparison -----------------------------------------------------

/// Counts of what one fixture holds, from tshark.
#[derive(Debug, Default)]
struct Counts {
    client_hellos: usize,
    server_hellos: usize,
}

/// Compares every frame of a fixture; panics listing every disagreement.
fn compare(name: &str) -> Vec<Row> {
    let frames = frames(name);
    let rows = tsv(name);
    let mut by_frame: HashMap<usize, &Row> = HashMap::new();
    for row in &rows {
        by_frame.insert(row.number("frame.number"), row);
    }
    assert_eq!(
        by_frame.len(),
        rows.len(),
        "{name}: duplicate frame numbers in the TSV"
    );
    assert!(
        by_frame.keys().all(|&n| n >= 1 && n <= frames.len()),
        "{name}: TSV frame beyond the capture"
    );

    let mut failures = Vec::new();
    let (mut expected, mut parsed) = (Counts::default(), Counts::default());
    for frame in &frames {
        let got = parsed_view(frame);
        let Some(row) = by_frame.get(&frame.number) else {
            // tshark saw no plaintext handshake message here: neither may the
            // parser.
            if let Some((_, _, v)) = got
                && (!v.handshake_types.is_empty() || v.flags != 0)
            {
                failures.push(format!(
                    "frame {}: parser found {}; tshark: no handshake",
                    frame.number,
                    describe(&v)
                ));
            }
            continue;
        };
        assert_eq!(
            frame.ts_ns,
            parse_epoch_ns(row.get("frame.time_epoch")),
            "{name}: frame {}: capture timestamp",
            frame.number
        );
        let want = expected_view(row);
        expected.client_hellos += usize::from(want.flags & hf::CLIENT_HELLO != 0);
        expected.server_hellos += usize::from(want.flags & hf::SERVER_HELLO != 0);
        let Some((header, summary, got)) = got else {
            failures.push(format!(
                "frame {}: parser: no TLS event; tshark: {}",
                frame.number,
                describe(&want)
            ));
            continue;
        };
        parsed.client_hellos += usize::from(got.flags & hf::CLIENT_HELLO != 0);
        parsed.server_hellos += usize::from(got.flags & hf::SERVER_HELLO != 0);
        assert_eq!(header.direction, Direction::UNKNOWN.0);
        assert_eq!(header.ts_ns, frame.ts_ns);
        if got != want {
            let items: Vec<String> = summary.items[..usize::from(summary.n_items)]
                .iter()
                .map(|i| format!("{}/{}", i >> 8, i & 0xff))
                .collect();
            failures.push(format!(
                "frame {}:\n    parser: {} (items, content type/detail: {})\n    tshark: {} (records {})",
                frame.number,
                describe(&got),
                items.join(" "),
                describe(&want),
                row.get("tls.record.content_type"),
            ));
        }
    }
    if expected.client_hellos != parsed.client_hellos
        || expected.server_hellos != parsed.server_hellos
    {
        failures.push(format!(
            "hello counts: parser {parsed:?}, tshark {expected:?}"
        ));
    }
    assert!(
        failures.is_empty(),
        "{name}: parser and tshark disagree:\n{}",
        failures.join("\n")
    );
    assert!(
        expected.client_hellos > 0 && expected.server_hellos > 0,
        "{name}: no hellos at all"
    );
    rows
}

/// Rows for ClientHellos / ServerHellos, in order.
fn hello_rows(rows: &[Row], ty: HandshakeType) -> Vec<&Row> {
    rows.iter()
        .filter(|r| r.handshake_types().contains(&ty.0))
        .collect()
}

fn has_ext(row: &Row, e: ExtensionType) -> bool {
    row.extensions().iter().any(|&(t, _)| t == e.0)
}

// Each fixture is also checked to be what its name says, from the TSV, so a
// broken make.sh run cannot pass silently.

#[test]
fn tls12_sessionid_resumption() {
    let rows = compare("tls12_sessionid_resumption");
    let ch = hello_rows(&rows, HandshakeType::CLIENT_HELLO);
    let sh = hello_rows(&rows, HandshakeType::SERVER_HELLO);
    assert!(ch.len() >= 2 && ch.len() == sh.len());
    let first_id = sh[0].get("tls.handshake.session_id");
    assert!(!first_id.is_empty());
    for (c, s) in ch.iter().zip(&sh).skip(1) {
        // Resumed: the client offers the first session's ID, the server
        // echoes it and sends no certificate.
        assert_eq!(c.get("tls.handshake.session_id"), first_id);
        assert_eq!(s.get("tls.handshake.session_id"), first_id);
        assert!(!s.handshake_types().contains(&HandshakeType::CERTIFICATE.0));
        assert!(
            !c.extensions()
                .iter()
                .any(|&(t, len)| t == ExtensionType::SESSION_TICKET.0 && len > 0)
        );
    }
}

#[test]
fn tls12_ticket_resumption() {
    let rows = compare("tls12_ticket_resumption");
    let ch = hello_rows(&rows, HandshakeType::CLIENT_HELLO);
    let sh = hello_rows(&rows, HandshakeType::SERVER_HELLO);
    assert!(ch.len() >= 2 && ch.len() == sh.len());
    assert!(rows.iter().any(|r| {
        r.handshake_types()
            .contains(&HandshakeType::NEW_SESSION_TICKET.0)
    }));
    for (c, s) in ch.iter().zip(&sh).skip(1) {
        assert!(
            c.extensions().iter().any(|&(t, len)| t == 35 && len > 0),
            "resumption offers a ticket"
        );
        assert!(
            !s.handshake_types().contains(&HandshakeType::CERTIFICATE.0),
            "and is accepted"
        );
    }
}

#[test]
fn tls13_psk_resumption() {
    let rows = compare("tls13_psk_resumption");
    let ch = hello_rows(&rows, HandshakeType::CLIENT_HELLO);
    let sh = hello_rows(&rows, HandshakeType::SERVER_HELLO);
    assert!(!has_ext(ch[0], ExtensionType::PRE_SHARED_KEY));
    assert!(
        has_ext(ch.last().unwrap(), ExtensionType::PRE_SHARED_KEY),
        "the second connection offers a PSK"
    );
    assert!(
        has_ext(sh.last().unwrap(), ExtensionType::PRE_SHARED_KEY),
        "and the server accepts it"
    );
}

#[test]
fn tls13_hrr() {
    let rows = compare("tls13_hrr");
    let ch = hello_rows(&rows, HandshakeType::CLIENT_HELLO);
    let sh = hello_rows(&rows, HandshakeType::SERVER_HELLO);
    assert_eq!(
        (ch.len(), sh.len()),
        (2, 2),
        "ClientHello, HRR, ClientHello, ServerHello"
    );
    assert_eq!(unhex(sh[0].get("tls.handshake.random")), HRR_RANDOM);
    assert_ne!(unhex(sh[1].get("tls.handshake.random")), HRR_RANDOM);
}

#[test]
fn tls12_rejected() {
    let rows = compare("tls12_rejected");
    let ch = hello_rows(&rows, HandshakeType::CLIENT_HELLO);
    let sh = hello_rows(&rows, HandshakeType::SERVER_HELLO);
    assert_eq!((ch.len(), sh.len()), (2, 2));
    let second = ch[1];
    assert!(
        second
            .extensions()
            .iter()
            .any(|&(t, len)| t == 35 && len > 0),
        "the saved session is offered"
    );
    assert!(
        sh[1]
            .handshake_types()
            .contains(&HandshakeType::CERTIFICATE.0),
        "and refused: full handshake"
    );
    assert_ne!(
        sh[1].get("tls.handshake.session_id"),
        second.get("tls.handshake.session_id")
    );
}

#[test]
fn tls13_early_data() {
    let rows = compare("tls13_early_data");
    let ch = hello_rows(&rows, HandshakeType::CLIENT_HELLO);
    let last = ch.last().unwrap();
    assert!(
        has_ext(last, ExtensionType::EARLY_DATA) && has_ext(last, ExtensionType::PRE_SHARED_KEY)
    );
}

/// TLS 1.3 over IPv6, and the tunnel captures: the real handshakes of
/// the captures above (and a VXLAN capture made in network namespaces)
/// inside every tunnel the parser opens, frame by frame against tshark's
/// dissection, the tunnel included.
#[test]
fn ipv6_and_tunnels() {
    let expected = [
        ("tls13_psk_ipv6", Tunnel::NONE),
        ("tunnel_vxlan", Tunnel::VXLAN),
        ("tunnel_geneve", Tunnel::GENEVE),
        ("tunnel_gretap", Tunnel::GRE),
        ("tunnel_ipip", Tunnel::IP_IN_IP),
        ("tunnel_sit", Tunnel::IP_IN_IP),
        ("tunnel_gtpu", Tunnel::GTPU),
        ("tunnel_pppoe", Tunnel::PPPOE),
        ("vlan_qinq", Tunnel::NONE),
    ];
    for (name, tunnel) in expected {
        let rows = compare(name);
        // The capture is what its name says, by tshark.
        assert!(
            rows.iter()
                .all(|r| tunnel_of(r.get("frame.protocols")) == tunnel),
            "{name}: tshark sees another tunnel"
        );
        assert!(!hello_rows(&rows, HandshakeType::SERVER_HELLO).is_empty());
    }
}

/// Issue 17's captures, frame by frame (`tls13_hostile_hellos` is not:
/// tshark dissects its hellos after reassembling them, in their last
/// segment): real peers that half-close, send a warning alert before the
/// ServerHello, or answer late, and the drafts' handshakes built by hand.
#[test]
fn captures_from_the_wild() {
    for name in [
        "tls_half_close",
        "tls12_warning_alert",
        "tls_slow_backend",
        "tls13_fb_draft26",
        "tls13_drafts",
    ] {
        let rows = compare(name);
        let sh = hello_rows(&rows, HandshakeType::SERVER_HELLO);
        assert_eq!(
            sh.len(),
            hello_rows(&rows, HandshakeType::CLIENT_HELLO).len(),
            "{name}: every ClientHello answered"
        );
    }
}

// ---- robustness on real frames ------------------------------------------

const FIXTURES: [&str; 6] = [
    "tls12_sessionid_resumption",
    "tls12_ticket_resumption",
    "tls13_psk_resumption",
    "tls13_hrr",
    "tls12_rejected",
    "tls13_early_data",
];

/// A copy of `frame` whose TCP payload is cut to `keep` bytes, with the IP
/// length field rewritten to match: what a segment carrying only the start
/// of that payload would look like.
fn with_payload_prefix(frame: &Frame, keep: usize) -> Vec<u8> {
    let seg = tcp(frame.data.as_slice(), frame.link).unwrap();
    let (l3_off, ethertype) = l3(frame.data.as_slice(), frame.link).unwrap();
    let mut out = frame.data[..seg.payload_off + keep].to_vec();
    let (at, len) = match ethertype {
        ETHERTYPE_IPV4 => (l3_off + 2, seg.payload_off - l3_off + keep),
        ETHERTYPE_IPV6 => (l3_off + 4, seg.payload_off - l3_off - 40 + keep),
        other => panic!("ethertype 0x{other:04x}"),
    };
    out[at..at + 2].copy_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
    out
}

fn tls_summary(data: &[u8], link: LinkType) -> Option<TlsSummary> {
    match classify(data, link, Direction::UNKNOWN, 0) {
        Ok(Some(Decoded::Tls(_, s))) => Some(s),
        _ => None,
    }
}

fn sane(s: &TlsSummary) {
    let h = &s.hello;
    assert!(usize::from(s.n_items) <= s.items.len());
    assert!(usize::from(h.session_id_len) <= h.session_id.len());
    assert!(usize::from(h.sni_len) <= h.sni.len());
    assert!(usize::from(h.alpn_len) <= h.alpn.len());
}

/// The hello as it must look when its bytes are all present, ignoring what
/// later messages in the segment add (a NewSessionTicket).
fn hello_part(h: &Hello) -> Hello {
    let mut h = *h;
    h.flags &= !hf::NEW_TICKET;
    if h.flags & hf::TICKET_OFFERED == 0 {
        h.ticket_id = [0; TICKET_ID_LEN];
    }
    h
}

/// Feeds `cut(frame, keep)` for every `keep` shorter than each TLS frame's
/// payload through classify: it must not panic, a ClientHello missing bytes
/// must be flagged TRUNCATED (or not reported at all), and a ClientHello
/// whose bytes are all present must read exactly as in the whole frame.
fn check_prefixes(cut: impl Fn(&Frame, usize) -> Vec<u8>) {
    let mut checked = 0;
    let mut failures = Vec::new();
    for name in FIXTURES {
        for frame in frames(name) {
            let Some(full) = tls_summary(&frame.data, frame.link) else {
                continue;
            };
            let seg = tcp(frame.data.as_slice(), frame.link).unwrap();
            let is_ch = full.hello.flags & hf::CLIENT_HELLO != 0;
            // Payload offset where the ClientHello message ends.
            let ch_end = if is_ch {
                usize::try_from(full.hello_at + full.hello_len).unwrap() - seg.payload_off
            } else {
                0
            };
            for keep in 0..seg.payload_len {
                let Some(s) = tls_summary(&cut(&frame, keep), frame.link) else {
                    continue;
                };
                sane(&s);
                checked += 1;
                if !is_ch || s.hello.flags & hf::CLIENT_HELLO == 0 {
                    continue;
                }
                if keep < ch_end {
                    if s.hello.flags & hf::TRUNCATED == 0 {
                        failures.push(format!(
                            "{name} frame {}: ClientHello ends at payload byte {ch_end}, cut at {keep}: flags [{}], not TRUNCATED",
                            frame.number,
                            flag_names(s.hello.flags)
                        ));
                    }
                } else if hello_part(&s.hello) != hello_part(&full.hello) {
                    failures.push(format!(
                        "{name} frame {}: whole ClientHello, cut at {keep}: {:?}, uncut {:?}",
                        frame.number, s.hello, full.hello
                    ));
                }
            }
        }
    }
    assert!(checked > 1000, "only {checked} truncated frames classified");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        summarize_failures(&failures)
    );
}

/// Keeps a long failure list readable: the first few, then a count.
fn summarize_failures(failures: &[String]) -> String {
    let mut out = failures
        .iter()
        .take(12)
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    if failures.len() > 12 {
        let _ = write!(out, "\n... and {} more", failures.len() - 12);
    }
    out
}

#[test]
fn payload_prefixes_never_look_like_complete_hellos() {
    // As if the segment carried only the start of the payload.
    check_prefixes(with_payload_prefix);
}

#[test]
fn snap_length_cuts_never_look_like_complete_hellos() {
    // As if the capture's snap length cut the frame: the IP header still
    // claims the whole payload.
    check_prefixes(|frame, keep| {
        let seg = tcp(frame.data.as_slice(), frame.link).unwrap();
        frame.data[..seg.payload_off + keep].to_vec()
    });
}

#[test]
fn cuts_inside_the_headers_are_skipped() {
    for name in FIXTURES {
        for frame in frames(name) {
            let Ok(seg) = tcp(frame.data.as_slice(), frame.link) else {
                continue;
            };
            for keep in 0..seg.payload_off {
                let result = classify(&frame.data[..keep], frame.link, Direction::UNKNOWN, 0);
                assert!(
                    result.is_err(),
                    "{name} frame {}: cut at {keep}: {result:?}",
                    frame.number
                );
            }
        }
    }
}

#[test]
fn bit_flips_in_hello_frames_do_not_panic() {
    let mut flipped = 0u32;
    for name in FIXTURES {
        for frame in frames(name) {
            let Some(full) = tls_summary(&frame.data, frame.link) else {
                continue;
            };
            if full.hello.flags & (hf::CLIENT_HELLO | hf::SERVER_HELLO) == 0 {
                continue;
            }
            let mut data = frame.data.clone();
            for byte in 0..data.len() {
                for bit in 0..8 {
                    data[byte] ^= 1 << bit;
                    if let Some(s) = tls_summary(&data, frame.link) {
                        sane(&s);
                    }
                    data[byte] ^= 1 << bit;
                    flipped += 1;
                }
            }
            assert_eq!(data, frame.data);
        }
    }
    assert!(flipped > 10_000, "only {flipped} flips");
}
