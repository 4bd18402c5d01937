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

// ---------------------------------------------------------------------------
// Records, transcribed from the "complete record" lines of RFC 8448.
// ---------------------------------------------------------------------------

/// §3 Simple 1-RTT Handshake, {client} send handshake record (201 octets).
const S3_CLIENT_HELLO: &str = "
    16 03 01 00 c4 01 00 00 c0 03 03 cb
    34 ec b1 e7 81 63 ba 1c 38 c6 da cb 19 6a 6d ff a2 1a 8d 99 12
    ec 18 a2 ef 62 83 02 4d ec e7 00 00 06 13 01 13 03 13 02 01 00
    00 91 00 00 00 0b 00 09 00 00 06 73 65 72 76 65 72 ff 01 00 01
    00 00 0a 00 14 00 12 00 1d 00 17 00 18 00 19 01 00 01 01 01 02
    01 03 01 04 00 23 00 00 00 33 00 26 00 24 00 1d 00 20 99 38 1d
    e5 60 e4 bd 43 d2 3d 8e 43 5a 7d ba fe b3 c0 6e 51 c1 3c ae 4d
    54 13 69 1e 52 9a af 2c 00 2b 00 03 02 03 04 00 0d 00 20 00 1e
    04 03 05 03 06 03 02 03 08 04 08 05 08 06 04 01 05 01 06 01 02
    01 04 02 05 02 06 02 02 02 00 2d 00 02 01 01 00 1c 00 02 40 01";

/// §3 Simple 1-RTT Handshake, {server} send handshake record (95 octets).
const S3_SERVER_HELLO: &str = "
    16 03 03 00 5a 02 00 00 56 03 03 a6
    af 06 a4 12 18 60 dc 5e 6e 60 24 9c d3 4c 95 93 0c 8a c5 cb 14
    34 da c1 55 77 2e d3 e2 69 28 00 13 01 00 00 2e 00 33 00 24 00
    1d 00 20 c9 82 88 76 11 20 95 fe 66 76 2b db f7 c6 72 e1 56 d6
    cc 25 3b 83 3d f1 dd 69 b1 b0 4e 75 1f 0f 00 2b 00 02 03 04";

/// §4 Resumed 0-RTT Handshake, {client} send handshake record (517 octets):
/// early_data and, last, pre_shared_key with its binder.
const S4_CLIENT_HELLO: &str = "
    16 03 01 02 00 01 00 01 fc 03 03 1b
    c3 ce b6 bb e3 9c ff 93 83 55 b5 a5 0a db 6d b2 1b 7a 6a f6 49
    d7 b4 bc 41 9d 78 76 48 7d 95 00 00 06 13 01 13 03 13 02 01 00
    01 cd 00 00 00 0b 00 09 00 00 06 73 65 72 76 65 72 ff 01 00 01
    00 00 0a 00 14 00 12 00 1d 00 17 00 18 00 19 01 00 01 01 01 02
    01 03 01 04 00 33 00 26 00 24 00 1d 00 20 e4 ff b6 8a c0 5f 8d
    96 c9 9d a2 66 98 34 6c 6b e1 64 82 ba dd da fe 05 1a 66 b4 f1
    8d 66 8f 0b 00 2a 00 00 00 2b 00 03 02 03 04 00 0d 00 20 00 1e
    04 03 05 03 06 03 02 03 08 04 08 05 08 06 04 01 05 01 06 01 02
    01 04 02 05 02 06 02 02 02 00 2d 00 02 01 01 00 1c 00 02 40 01
    00 15 00 57 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
    00 00 00 00 00 00 00 00 29 00 dd 00 b8 00 b2 2c 03 5d 82 93 59
    ee 5f f7 af 4e c9 00 00 00 00 26 2a 64 94 dc 48 6d 2c 8a 34 cb
    33 fa 90 bf 1b 00 70 ad 3c 49 88 83 c9 36 7c 09 a2 be 78 5a bc
    55 cd 22 60 97 a3 a9 82 11 72 83 f8 2a 03 a1 43 ef d3 ff 5d d3
    6d 64 e8 61 be 7f d6 1d 28 27 db 27 9c ce 14 50 77 d4 54 a3 66
    4d 4e 6d a4 d2 9e e0 37 25 a6 a4 da fc d0 fc 67 d2 ae a7 05 29
    51 3e 3d a2 67 7f a5 90 6c 5b 3f 7d 8f 92 f2 28 bd a4 0d da 72
    14 70 f9 fb f2 97 b5 ae a6 17 64 6f ac 5c 03 27 2e 97 07 27 c6
    21 a7 91 41 ef 5f 7d e6 50 5e 5b fb c3 88 e9 33 43 69 40 93 93
    4a e4 d3 57 fa d6 aa cb 00 21 20 3a dd 4f b2 d8 fd f8 22 a0 ca
    3c f7 67 8e f5 e8 8d ae 99 01 41 c5 92 4d 57 bb 6f a3 1b 9e 5f
    9d";

/// §4 Resumed 0-RTT Handshake, {server} send handshake record (101 octets):
/// the server accepts PSK identity 0.
const S4_SERVER_HELLO: &str = "
    16 03 03 00 60 02 00 00 5c 03 03 3c
    cf d2 de c8 90 22 27 63 47 2a e8 13 67 77 c9 d7 35 87 77 bb 66
    e9 1e a5 12 24 95 f5 59 ea 2d 00 13 01 00 00 34 00 29 00 02 00
    00 00 33 00 24 00 1d 00 20 12 17 61 ee 42 c3 33 e1 b9 e7 7b 60
    dd 57 c2 05 3c d9 45 12 ab 47 f1 15 e8 6e ff 50 94 2c ea 31 00
    2b 00 02 03 04";

/// §5 HelloRetryRequest, the client's first ClientHello (185 octets):
/// an X25519 share only.
const S5_CLIENT_HELLO_1: &str = "
    16 03 01 00 b4 01 00 00 b0 03 03 b0
    b1 c5 a5 aa 37 c5 91 9f 2e d1 d5 c6 ff f7 fc b7 84 97 16 94 5a
    2b 8c ee 92 58 a3 46 67 7b 6f 00 00 06 13 01 13 03 13 02 01 00
    00 81 00 00 00 0b 00 09 00 00 06 73 65 72 76 65 72 ff 01 00 01
    00 00 0a 00 08 00 06 00 1d 00 17 00 18 00 33 00 26 00 24 00 1d
    00 20 e8 e8 e3 f3 b9 3a 25 ed 97 a1 4a 7d ca cb 8a 27 2c 62 88
    e5 85 c6 48 4d 05 26 2f ca d0 62 ad 1f 00 2b 00 03 02 03 04 00
    0d 00 20 00 1e 04 03 05 03 06 03 02 03 08 04 08 05 08 06 04 01
    05 01 06 01 02 01 04 02 05 02 06 02 02 02 00 2d 00 02 01 01 00
    1c 00 02 40 01";

/// §5 HelloRetryRequest, {server} send handshake record (181 octets): the
/// HelloRetryRequest random, key_share asking for P-256, and a cookie.
const S5_HELLO_RETRY_REQUEST: &str = "
    16 03 03 00 b0 02 00 00 ac 03 03 cf
    21 ad 74 e5 9a 61 11 be 1d 8c 02 1e 65 b8 91 c2 a2 11 16 7a bb
    8c 5e 07 9e 09 e2 c8 a8 33 9c 00 13 01 00 00 84 00 33 00 02 00
    17 00 2c 00 74 00 72 71 dc d0 4b b8 8b c3 18 91 19 39 8a 00 00
    00 00 ee fa fc 76 c1 46 b8 23 b0 96 f8 aa ca d3 65 dd 00 30 95
    3f 4e df 62 56 36 e5 f2 1b b2 e2 3f cc 65 4b 1b 5b 40 31 8d 10
    d1 37 ab cb b8 75 74 e3 6e 8a 1f 02 5f 7d fa 5d 6e 50 78 1b 5e
    da 4a a1 5b 0c 8b e7 78 25 7d 16 aa 30 30 e9 e7 84 1d d9 e4 c0
    34 22 67 e8 ca 0c af 57 1f b2 b7 cf f0 f9 34 b0 00 2b 00 02 03
    04";

/// §5 HelloRetryRequest, the client's second ClientHello (517 octets): a
/// P-256 share, the echoed cookie, and padding.
const S5_CLIENT_HELLO_2: &str = "
    16 03 03 02 00 01 00 01 fc 03 03 b0
    b1 c5 a5 aa 37 c5 91 9f 2e d1 d5 c6 ff f7 fc b7 84 97 16 94 5a
    2b 8c ee 92 58 a3 46 67 7b 6f 00 00 06 13 01 13 03 13 02 01 00
    01 cd 00 00 00 0b 00 09 00 00 06 73 65 72 76 65 72 ff 01 00 01
    00 00 0a 00 08 00 06 00 1d 00 17 00 18 00 33 00 47 00 45 00 17
    00 41 04 a6 da 73 92 ec 59 1e 17 ab fd 53 59 64 b9 98 94 d1 3b
    ef b2 21 b3 de f2 eb e3 83 0e ac 8f 01 51 81 26 77 c4 d6 d2 23
    7e 85 cf 01 d6 91 0c fb 83 95 4e 76 ba 73 52 83 05 34 15 98 97
    e8 06 57 80 00 2b 00 03 02 03 04 00 0d 00 20 00 1e 04 03 05 03
    06 03 02 03 08 04 08 05 08 06 04 01 05 01 06 01 02 01 04 02 05
    02 06 02 02 02 00 2c 00 74 00 72 71 dc d0 4b b8 8b c3 18 91 19
    39 8a 00 00 00 00 ee fa fc 76 c1 46 b8 23 b0 96 f8 aa ca d3 65
    dd 00 30 95 3f 4e df 62 56 36 e5 f2 1b b2 e2 3f cc 65 4b 1b 5b
    40 31 8d 10 d1 37 ab cb b8 75 74 e3 6e 8a 1f 02 5f 7d fa 5d 6e
    50 78 1b 5e da 4a a1 5b 0c 8b e7 78 25 7d 16 aa 30 30 e9 e7 84
    1d d9 e4 c0 34 22 67 e8 ca 0c af 57 1f b2 b7 cf f0 f9 34 b0 00
    2d 00 02 01 01 00 1c 00 02 40 01 00 15 00 af 00 00 00 00 00 00
    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
    00";

// ---------------------------------------------------------------------------
// What the RFC says each record contains.
// ---------------------------------------------------------------------------

const ITEM_CLIENT_HELLO: u16 = 22 << 8 | 1;
const ITEM_SERVER_HELLO: u16 = 22 << 8 | 2;

struct Vector {
    name: &'static str,
    hex: &'static str,
    /// Expected `Hello::flags`.
    flags: u16,
    legacy_version: u16,
    session_id_len: u8,
    /// ServerHello only; 0 for a ClientHello.
    cipher_suite: u16,
    /// ServerHello supported_versions; 0 for a ClientHello.
    selected_version: u16,
    sni: &'static [u8],
    /// Extensions in the hello.
    extensions: u8,
    items: &'static [u16],
    /// Record offset of the pre_shared_key extension header, if any.
    psk_at: Option<usize>,
}

/// §3 ClientHello. Session ID empty; extensions (0x91 bytes): server_name
/// "server", renegotiation_info, supported_groups, session_ticket (empty),
/// key_share, supported_versions [0x0304], signature_algorithms,
/// psk_key_exchange_modes, record_size_limit: nine.
const V_S3_CH: Vector = Vector {
    name: "RFC 8448 §3 ClientHello",
    hex: S3_CLIENT_HELLO,
    flags: hf::CLIENT_HELLO | hf::OFFERS_TLS13 | hf::TICKET_EXT,
    legacy_version: 0x0303,
    session_id_len: 0,
    cipher_suite: 0,
    selected_version: 0,
    sni: b"server",
    extensions: 9,
    items: &[ITEM_CLIENT_HELLO],
    psk_at: None,
};

/// §3 ServerHello. TLS_AES_128_GCM_SHA256; extensions (0x2e bytes):
/// key_share, supported_versions 0x0304.
const V_S3_SH: Vector = Vector {
    name: "RFC 8448 §3 ServerHello",
    hex: S3_SERVER_HELLO,
    flags: hf::SERVER_HELLO,
    legacy_version: 0x0303,
    session_id_len: 0,
    cipher_suite: 0x1301,
    selected_version: 0x0304,
    sni: b"",
    extensions: 2,
    items: &[ITEM_SERVER_HELLO],
    psk_at: None,
};

/// §4 ClientHello. Extensions (0x1cd bytes): server_name "server",
/// renegotiation_info, supported_groups, key_share, early_data,
/// supported_versions [0x0304], signature_algorithms,
/// psk_key_exchange_modes, record_size_limit, padding, pre_shared_key
/// (last, as RFC 8446 §4.2.11 requires): eleven. No session_ticket.
const V_S4_CH: Vector = Vector {
    name: "RFC 8448 §4 ClientHello",
    hex: S4_CLIENT_HELLO,
    flags: hf::CLIENT_HELLO | hf::OFFERS_TLS13 | hf::PSK | hf::EARLY_DATA,
    legacy_version: 0x0303,
    session_id_len: 0,
    cipher_suite: 0,
    selected_version: 0,
    sni: b"server",
    extensions: 11,
    items: &[ITEM_CLIENT_HELLO],
    // 517 - (4 + 0xdd): the extension runs to the end of the record.
    psk_at: Some(292),
};

/// §4 ServerHello. Extensions (0x34 bytes): pre_shared_key (identity 0),
/// key_share, supported_versions 0x0304.
const V_S4_SH: Vector = Vector {
    name: "RFC 8448 §4 ServerHello",
    hex: S4_SERVER_HELLO,
    flags: hf::SERVER_HELLO | hf::PSK,
    legacy_version: 0x0303,
    session_id_len: 0,
    cipher_suite: 0x1301,
    selected_version: 0x0304,
    sni: b"",
    extensions: 3,
    items: &[ITEM_SERVER_HELLO],
    // 5 (record) + 4 (handshake) + 2 + 32 + 1 (empty session ID) + 2 + 1 + 2.
    psk_at: Some(49),
};

/// §5 first ClientHello. Extensions (0x81 bytes): server_name "server",
/// renegotiation_info, supported_groups, key_share, supported_versions
/// [0x0304], signature_algorithms, psk_key_exchange_modes,
/// record_size_limit: eight.
const V_S5_CH1: Vector = Vector {
    name: "RFC 8448 §5 ClientHello 1",
    hex: S5_CLIENT_HELLO_1,
    flags: hf::CLIENT_HELLO | hf::OFFERS_TLS13,
    legacy_version: 0x0303,
    session_id_len: 0,
    cipher_suite: 0,
    selected_version: 0,
    sni: b"server",
    extensions: 8,
    items: &[ITEM_CLIENT_HELLO],
    psk_at: None,
};

/// §5 HelloRetryRequest: a ServerHello whose random is the RFC 8446 §4.1.3
/// constant. Extensions (0x84 bytes): key_share (group only), cookie,
/// supported_versions 0x0304.
const V_S5_HRR: Vector = Vector {
    name: "RFC 8448 §5 HelloRetryRequest",
    hex: S5_HELLO_RETRY_REQUEST,
    flags: hf::SERVER_HELLO | hf::HRR,
    legacy_version: 0x0303,
    session_id_len: 0,
    cipher_suite: 0x1301,
    selected_version: 0x0304,
    sni: b"",
    extensions: 3,
    items: &[ITEM_SERVER_HELLO],
    psk_at: None,
};

/// §5 second ClientHello. Extensions (0x1cd bytes): server_name "server",
/// renegotiation_info, supported_groups, key_share (P-256),
/// supported_versions [0x0304], signature_algorithms, cookie,
/// psk_key_exchange_modes, record_size_limit, padding: ten.
const V_S5_CH2: Vector = Vector {
    name: "RFC 8448 §5 ClientHello 2",
    hex: S5_CLIENT_HELLO_2,
    flags: hf::CLIENT_HELLO | hf::OFFERS_TLS13,
    legacy_version: 0x0303,
    session_id_len: 0,
    cipher_suite: 0,
    selected_version: 0,
    sni: b"server",
    extensions: 10,
    items: &[ITEM_CLIENT_HELLO],
    psk_at: None,
};

const ALL: [&Vector; 7] = [
    &V_S3_CH, &V_S3_SH, &V_S4_CH, &V_S4_SH, &V_S5_CH1, &V_S5_HRR, &V_S5_CH2,
];

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
