//! The records of RFC 8448 transcribed from its "complete record" lines,
//! and what the RFC says each contains: the test data of `rfc8448.rs`.

use monitor_common::event::hello_flags as hf;

// ---------------------------------------------------------------------------
// Records, transcribed from the "complete record" lines of RFC 8448.
// ---------------------------------------------------------------------------

/// §3 Simple 1-RTT Handshake, {client} send handshake record (201 octets).
pub const S3_CLIENT_HELLO: &str = "
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
pub const S3_SERVER_HELLO: &str = "
    16 03 03 00 5a 02 00 00 56 03 03 a6
    af 06 a4 12 18 60 dc 5e 6e 60 24 9c d3 4c 95 93 0c 8a c5 cb 14
    34 da c1 55 77 2e d3 e2 69 28 00 13 01 00 00 2e 00 33 00 24 00
    1d 00 20 c9 82 88 76 11 20 95 fe 66 76 2b db f7 c6 72 e1 56 d6
    cc 25 3b 83 3d f1 dd 69 b1 b0 4e 75 1f 0f 00 2b 00 02 03 04";

/// §4 Resumed 0-RTT Handshake, {client} send handshake record (517 octets):
/// early_data and, last, pre_shared_key with its binder.
pub const S4_CLIENT_HELLO: &str = "
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
pub const S4_SERVER_HELLO: &str = "
    16 03 03 00 60 02 00 00 5c 03 03 3c
    cf d2 de c8 90 22 27 63 47 2a e8 13 67 77 c9 d7 35 87 77 bb 66
    e9 1e a5 12 24 95 f5 59 ea 2d 00 13 01 00 00 34 00 29 00 02 00
    00 00 33 00 24 00 1d 00 20 12 17 61 ee 42 c3 33 e1 b9 e7 7b 60
    dd 57 c2 05 3c d9 45 12 ab 47 f1 15 e8 6e ff 50 94 2c ea 31 00
    2b 00 02 03 04";

/// §5 HelloRetryRequest, the client's first ClientHello (185 octets):
/// an X25519 share only.
pub const S5_CLIENT_HELLO_1: &str = "
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
pub const S5_HELLO_RETRY_REQUEST: &str = "
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
pub const S5_CLIENT_HELLO_2: &str = "
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

pub const ITEM_CLIENT_HELLO: u16 = 22 << 8 | 1;
pub const ITEM_SERVER_HELLO: u16 = 22 << 8 | 2;

pub struct Vector {
    pub name: &'static str,
    pub hex: &'static str,
    /// Expected `Hello::flags`.
    pub flags: u16,
    pub legacy_version: u16,
    pub session_id_len: u8,
    /// ServerHello only; 0 for a ClientHello.
    pub cipher_suite: u16,
    /// ServerHello supported_versions; 0 for a ClientHello.
    pub selected_version: u16,
    pub sni: &'static [u8],
    /// Extensions in the hello.
    pub extensions: u8,
    pub items: &'static [u16],
    /// Record offset of the pre_shared_key extension header, if any.
    pub psk_at: Option<usize>,
}

/// §3 ClientHello. Session ID empty; extensions (0x91 bytes): server_name
/// "server", renegotiation_info, supported_groups, session_ticket (empty),
/// key_share, supported_versions [0x0304], signature_algorithms,
/// psk_key_exchange_modes, record_size_limit: nine.
pub const V_S3_CH: Vector = Vector {
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
pub const V_S3_SH: Vector = Vector {
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
pub const V_S4_CH: Vector = Vector {
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
pub const V_S4_SH: Vector = Vector {
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
pub const V_S5_CH1: Vector = Vector {
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
pub const V_S5_HRR: Vector = Vector {
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
pub const V_S5_CH2: Vector = Vector {
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

pub const ALL: [&Vector; 7] = [
    &V_S3_CH, &V_S3_SH, &V_S4_CH, &V_S4_SH, &V_S5_CH1, &V_S5_HRR, &V_S5_CH2,
];
