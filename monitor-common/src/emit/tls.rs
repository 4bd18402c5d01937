//! TLS records, handshake messages, hellos and their extensions: the emit
//! side of `tls`.
//!
//! [`ClientHello`] and [`ServerHello`] are the fields `tls::summarize`
//! reads, in the order RFC 8446 §4.1.2–4.1.3 puts them; a ServerHello of a
//! TLS 1.3 draft before -22 is written in that draft's layout, decided by
//! the same `ProtocolVersion::early_draft` the parser asks. Extensions the
//! parser reads have constructors ([`Extension::server_name`] …); any
//! other is [`Extension::new`] with its bytes.

use std::{vec, vec::Vec};

use super::{be16, field};
use crate::tls::{ContentType, ExtensionType, HandshakeType, ProtocolVersion};

/// `body` behind a one-byte length (RFC 8446 §3.4).
#[must_use]
pub fn vec8(body: &[u8]) -> Vec<u8> {
    let mut v = vec![u8::try_from(body.len()).expect("a length that fits 8 bits")];
    v.extend_from_slice(body);
    v
}

/// `body` behind a two-byte length.
#[must_use]
pub fn vec16(body: &[u8]) -> Vec<u8> {
    let mut v = be16(body.len()).to_vec();
    v.extend_from_slice(body);
    v
}

/// `body` behind a three-byte length.
#[must_use]
pub fn vec24(body: &[u8]) -> Vec<u8> {
    let mut v = u24(body.len()).to_vec();
    v.extend_from_slice(body);
    v
}

fn u24(n: usize) -> [u8; 3] {
    let n = u32::try_from(n).expect("a length that fits 24 bits");
    assert!(n < 1 << 24, "a length that fits 24 bits");
    let [_, a, b, c] = n.to_be_bytes();
    [a, b, c]
}

/// A list of 16-bit values (cipher suites, versions) as bytes.
fn u16s(list: &[u16]) -> Vec<u8> {
    list.iter().flat_map(|x| x.to_be_bytes()).collect()
}

/// The record version RFC 8446 §5.1 has every record carry but a first
/// ClientHello's.
pub const RECORD_VERSION: u16 = ProtocolVersion::TLS1_2.0;

/// A record (RFC 8446 §5.1) of `content_type` with version
/// [`RECORD_VERSION`].
#[must_use]
pub fn record(content_type: u8, body: &[u8]) -> Vec<u8> {
    record_with_version(content_type, RECORD_VERSION, body)
}

/// A record with its own legacy_record_version (0x0301 for a first
/// ClientHello, as RFC 8446 §5.1 allows).
#[must_use]
pub fn record_with_version(content_type: u8, version: u16, body: &[u8]) -> Vec<u8> {
    use field::record::{CONTENT_TYPE, LENGTH, VERSION};
    let mut v = vec![0; crate::tls::RECORD_HEADER_LEN];
    v[CONTENT_TYPE] = content_type;
    v[VERSION].copy_from_slice(&version.to_be_bytes());
    v[LENGTH].copy_from_slice(&be16(body.len()));
    v.extend_from_slice(body);
    v
}

/// A handshake message (RFC 8446 §4).
#[must_use]
pub fn handshake(msg_type: u8, body: &[u8]) -> Vec<u8> {
    use field::handshake::{LENGTH, MSG_TYPE};
    let mut v = vec![0; crate::tls::HANDSHAKE_HEADER_LEN];
    v[MSG_TYPE] = msg_type;
    v[LENGTH].copy_from_slice(&u24(body.len()));
    v.extend_from_slice(body);
    v
}

/// Handshake messages in one handshake record.
#[must_use]
pub fn handshake_record(messages: &[Vec<u8>]) -> Vec<u8> {
    record(ContentType::HANDSHAKE.0, &messages.concat())
}

/// A TLS ≤ 1.2 Certificate message's body (RFC 5246 §7.4.2): the chain,
/// each certificate behind a three-byte length, behind another.
#[must_use]
pub fn certificate(chain: &[&[u8]]) -> Vec<u8> {
    let list: Vec<u8> = chain.iter().flat_map(|c| vec24(c)).collect();
    vec24(&list)
}

/// A NewSessionTicket message's body (RFC 5077 §3.3): the lifetime hint,
/// then the ticket.
#[must_use]
pub fn new_session_ticket(lifetime_hint: u32, ticket: &[u8]) -> Vec<u8> {
    let mut v = lifetime_hint.to_be_bytes().to_vec();
    v.extend(vec16(ticket));
    v
}

/// One hello extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extension {
    pub ty: u16,
    pub data: Vec<u8>,
}

impl Extension {
    #[must_use]
    pub fn new(ty: u16, data: &[u8]) -> Self {
        Self {
            ty,
            data: data.to_vec(),
        }
    }

    /// server_name with one host_name (RFC 6066 §3).
    #[must_use]
    pub fn server_name(host: &[u8]) -> Self {
        let mut entry = vec![0]; // host_name
        entry.extend(vec16(host));
        Self::new(ExtensionType::SERVER_NAME.0, &vec16(&entry))
    }

    /// application_layer_protocol_negotiation (RFC 7301 §3.1).
    #[must_use]
    pub fn alpn(protocols: &[&[u8]]) -> Self {
        let list: Vec<u8> = protocols.iter().flat_map(|p| vec8(p)).collect();
        Self::new(ExtensionType::ALPN.0, &vec16(&list))
    }

    /// session_ticket (RFC 5077 §3.2): empty asks for a ticket, a ticket
    /// offers it.
    #[must_use]
    pub fn session_ticket(ticket: &[u8]) -> Self {
        Self::new(ExtensionType::SESSION_TICKET.0, ticket)
    }

    /// A ClientHello's supported_versions, most preferred first (RFC 8446
    /// §4.2.1).
    #[must_use]
    pub fn supported_versions(versions: &[u16]) -> Self {
        Self::new(ExtensionType::SUPPORTED_VERSIONS.0, &vec8(&u16s(versions)))
    }

    /// A ServerHello's supported_versions: the version it selected.
    #[must_use]
    pub fn selected_version(version: u16) -> Self {
        Self::new(ExtensionType::SUPPORTED_VERSIONS.0, &version.to_be_bytes())
    }

    /// A ServerHello's pre_shared_key: the identity it accepted (RFC 8446
    /// §4.2.11).
    #[must_use]
    pub fn selected_identity(identity: u16) -> Self {
        Self::new(ExtensionType::PRE_SHARED_KEY.0, &identity.to_be_bytes())
    }

    /// early_data, empty as a ClientHello sends it (RFC 8446 §4.2.10).
    #[must_use]
    pub fn early_data() -> Self {
        Self::new(ExtensionType::EARLY_DATA.0, &[])
    }

    /// padding of `len` zero bytes (RFC 7685 §3).
    #[must_use]
    pub fn padding(len: usize) -> Self {
        Self::new(PADDING, &vec![0; len])
    }

    fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ty.to_be_bytes());
        out.extend(vec16(&self.data));
    }
}

/// The padding extension's type (RFC 7685 §3).
const PADDING: u16 = 21;

/// The extensions block: absent when there are none, as a TLS ≤ 1.2
/// hello may send it (RFC 5246 §7.4.1.2).
fn extensions(list: &[Extension], out: &mut Vec<u8>) {
    if list.is_empty() {
        return;
    }
    let mut block = Vec::new();
    for e in list {
        e.emit(&mut block);
    }
    out.extend(vec16(&block));
}

/// A hello message in a handshake record of its own.
fn alone(record_version: u16, message: &[u8]) -> Vec<u8> {
    record_with_version(ContentType::HANDSHAKE.0, record_version, message)
}

/// A ClientHello (RFC 8446 §4.1.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientHello {
    /// The version of the record it travels in.
    pub record_version: u16,
    pub legacy_version: u16,
    pub random: [u8; 32],
    pub session_id: Vec<u8>,
    pub cipher_suites: Vec<u16>,
    pub compression_methods: Vec<u8>,
    pub extensions: Vec<Extension>,
}

impl Default for ClientHello {
    /// TLS_AES_128_GCM_SHA256 only, the null compression method, no
    /// session ID and no extensions.
    fn default() -> Self {
        Self {
            record_version: RECORD_VERSION,
            legacy_version: ProtocolVersion::TLS1_2.0,
            random: [0x11; 32],
            session_id: Vec::new(),
            cipher_suites: vec![0x1301],
            compression_methods: vec![0],
            extensions: Vec::new(),
        }
    }
}

impl ClientHello {
    /// The message's body.
    #[must_use]
    pub fn body(&self) -> Vec<u8> {
        let mut v = self.legacy_version.to_be_bytes().to_vec();
        v.extend_from_slice(&self.random);
        v.extend(vec8(&self.session_id));
        v.extend(vec16(&u16s(&self.cipher_suites)));
        v.extend(vec8(&self.compression_methods));
        extensions(&self.extensions, &mut v);
        v
    }

    /// The handshake message.
    #[must_use]
    pub fn message(&self) -> Vec<u8> {
        handshake(HandshakeType::CLIENT_HELLO.0, &self.body())
    }

    /// The message in a record of its own.
    #[must_use]
    pub fn record(&self) -> Vec<u8> {
        alone(self.record_version, &self.message())
    }

    /// Appends a padding extension (RFC 7685) that makes the handshake
    /// message `message_len` bytes long, as browsers pad theirs to 512.
    pub fn pad_to(&mut self, message_len: usize) {
        // The padding's own type and length take four bytes; a message
        // without extensions gains the block's length too.
        let block = if self.extensions.is_empty() { 2 } else { 0 };
        let len = self.message().len() + block + 4;
        self.extensions
            .push(Extension::padding(message_len.saturating_sub(len)));
    }
}

/// A ServerHello (RFC 8446 §4.1.3), or a HelloRetryRequest with
/// `random` = [`crate::tls::HRR_RANDOM`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerHello {
    pub record_version: u16,
    /// A TLS 1.3 draft before -22 (`ProtocolVersion::early_draft`) puts
    /// its version here and has no session ID or compression method.
    pub legacy_version: u16,
    pub random: [u8; 32],
    pub session_id: Vec<u8>,
    pub cipher_suite: u16,
    pub compression_method: u8,
    pub extensions: Vec<Extension>,
}

impl Default for ServerHello {
    /// TLS_AES_128_GCM_SHA256, no session ID and no extensions.
    fn default() -> Self {
        Self {
            record_version: RECORD_VERSION,
            legacy_version: ProtocolVersion::TLS1_2.0,
            random: [0x44; 32],
            session_id: Vec::new(),
            cipher_suite: 0x1301,
            compression_method: 0,
            extensions: Vec::new(),
        }
    }
}

impl ServerHello {
    /// The message's body.
    #[must_use]
    pub fn body(&self) -> Vec<u8> {
        let mut v = self.legacy_version.to_be_bytes().to_vec();
        v.extend_from_slice(&self.random);
        let draft = ProtocolVersion(self.legacy_version).early_draft();
        if !draft {
            v.extend(vec8(&self.session_id));
        }
        v.extend_from_slice(&self.cipher_suite.to_be_bytes());
        if !draft {
            v.push(self.compression_method);
        }
        extensions(&self.extensions, &mut v);
        v
    }

    #[must_use]
    pub fn message(&self) -> Vec<u8> {
        handshake(HandshakeType::SERVER_HELLO.0, &self.body())
    }

    #[must_use]
    pub fn record(&self) -> Vec<u8> {
        alone(self.record_version, &self.message())
    }
}
