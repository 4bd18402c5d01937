//! Events as the kernel program sends them: the emit side of `event`,
//! for tests that drive the tracker and the app without a kernel.
//!
//! [`header`] fills in a packet's ends; [`Summary`] builds a TLS event's
//! summary the way `tls::summarize` fills one (the items in order, the
//! hello's fields with their lengths); [`tls`] and [`teardown`] make the
//! decoded event; [`Flow::header`] numbers a connection's packets.

use std::net::{IpAddr, SocketAddr};

use super::flow::Flow;
use crate::{
    event::{
        ALPN_MAX, Decoded, EventHeader, EventKind, SESSION_ID_MAX, SNI_MAX, TlsSummary, hello_flags,
    },
    tls::{ContentType, HandshakeType, ProtocolVersion},
};

/// An item of [`TlsSummary::items`]: `content_type << 8 | detail`.
#[must_use]
pub const fn item(content_type: ContentType, detail: u8) -> u16 {
    (content_type.0 as u16) << 8 | detail as u16
}

/// The items the kernel lists most, by name.
pub mod items {
    use super::item;
    use crate::{
        event::ITEM_OPAQUE,
        tls::{ContentType as C, HandshakeType as H},
    };

    pub const CLIENT_HELLO: u16 = item(C::HANDSHAKE, H::CLIENT_HELLO.0);
    pub const SERVER_HELLO: u16 = item(C::HANDSHAKE, H::SERVER_HELLO.0);
    pub const NEW_SESSION_TICKET: u16 = item(C::HANDSHAKE, H::NEW_SESSION_TICKET.0);
    pub const CERTIFICATE: u16 = item(C::HANDSHAKE, H::CERTIFICATE.0);
    pub const SERVER_KEY_EXCHANGE: u16 = item(C::HANDSHAKE, H::SERVER_KEY_EXCHANGE.0);
    pub const SERVER_HELLO_DONE: u16 = item(C::HANDSHAKE, H::SERVER_HELLO_DONE.0);
    pub const CLIENT_KEY_EXCHANGE: u16 = item(C::HANDSHAKE, H::CLIENT_KEY_EXCHANGE.0);
    /// change_cipher_spec's one byte, 1.
    pub const CHANGE_CIPHER_SPEC: u16 = item(C::CHANGE_CIPHER_SPEC, 1);
    /// A handshake record after change_cipher_spec (Finished, TLS 1.3's
    /// encrypted flight).
    pub const ENCRYPTED_HANDSHAKE: u16 = item(C::HANDSHAKE, ITEM_OPAQUE);
    /// An alert longer than two bytes (encrypted; close_notify among them).
    pub const ENCRYPTED_ALERT: u16 = item(C::ALERT, ITEM_OPAQUE);
    pub const APPLICATION_DATA: u16 = item(C::APPLICATION_DATA, ITEM_OPAQUE);
}

/// An address as the event holds it, with its family: IPv4 in the first
/// four bytes, the rest zero.
#[must_use]
pub fn address(ip: IpAddr) -> (u8, [u8; 16]) {
    let mut out = [0; 16];
    match ip {
        IpAddr::V4(a) => {
            out[..4].copy_from_slice(&a.octets());
            (4, out)
        }
        IpAddr::V6(a) => (6, a.octets()),
    }
}

/// The header of a packet from `src` to `dst`: family, addresses and
/// ports; everything else zero (kind, direction, flags, time, sequence
/// numbers), for the caller to set.
#[must_use]
pub fn header(src: SocketAddr, dst: SocketAddr) -> EventHeader {
    let (family, src_addr) = address(src.ip());
    let (dst_family, dst_addr) = address(dst.ip());
    assert_eq!(family, dst_family, "both ends of one family");
    EventHeader {
        family,
        src_port: src.port(),
        dst_port: dst.port(),
        src_addr,
        dst_addr,
        ..EventHeader::default()
    }
}

/// The header of the reply to `h`'s packet: the ends swapped, the rest
/// kept.
#[must_use]
pub fn reply(h: &EventHeader) -> EventHeader {
    EventHeader {
        src_addr: h.dst_addr,
        dst_addr: h.src_addr,
        src_port: h.dst_port,
        dst_port: h.src_port,
        ..*h
    }
}

/// A TLS event.
#[must_use]
pub fn tls(mut h: EventHeader, t: TlsSummary) -> Decoded {
    h.kind = EventKind::TLS.0;
    Decoded::Tls(h, t)
}

/// A teardown event (RST or FIN without a TLS record).
#[must_use]
pub fn teardown(mut h: EventHeader) -> Decoded {
    h.kind = EventKind::TEARDOWN.0;
    Decoded::Teardown(h)
}

impl Flow {
    /// The event header of the next packet from the client (or the
    /// server), carrying `len` bytes: its ends, `flags` and sequence
    /// numbers (see [`Flow::step`]).
    pub fn header(&mut self, from_client: bool, flags: u8, len: u32) -> EventHeader {
        let s = self.step(from_client, flags, len as usize);
        EventHeader {
            tcp_flags: flags,
            seq: s.seq,
            ack: s.ack,
            payload_len: len,
            ..header(s.src, s.dst)
        }
    }
}

/// A TLS event's summary, built field by field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct Summary(TlsSummary);

impl Summary {
    /// Records and messages listed in order (see [`items`]), nothing
    /// parsed.
    pub fn items(list: &[u16]) -> Self {
        let mut t = TlsSummary::default();
        for &i in list {
            let [content_type, detail] = i.to_be_bytes();
            t.push(content_type, detail);
        }
        Self(t)
    }

    /// A ClientHello alone in its segment, legacy_version TLS 1.2.
    pub fn client_hello() -> Self {
        let mut s = Self::items(&[items::CLIENT_HELLO]);
        s.0.hello.flags = hello_flags::CLIENT_HELLO;
        s.0.hello.legacy_version = ProtocolVersion::TLS1_2.0;
        s
    }

    /// A ServerHello, legacy_version TLS 1.2, then the items in `rest`.
    pub fn server_hello(rest: &[u16]) -> Self {
        let mut s = Self::items(&[items::SERVER_HELLO]);
        for &i in rest {
            let [content_type, detail] = i.to_be_bytes();
            s.0.push(content_type, detail);
        }
        s.0.hello.flags = hello_flags::SERVER_HELLO;
        s.0.hello.legacy_version = ProtocolVersion::TLS1_2.0;
        s
    }

    /// Adds [`hello_flags`].
    pub fn flags(mut self, flags: u16) -> Self {
        self.0.hello.flags |= flags;
        self
    }

    pub fn session_id(mut self, id: &[u8]) -> Self {
        assert!(
            id.len() <= SESSION_ID_MAX,
            "a session ID of at most 32 bytes"
        );
        self.0.hello.session_id = [0; SESSION_ID_MAX];
        self.0.hello.session_id[..id.len()].copy_from_slice(id);
        self.0.hello.session_id_len = u8::try_from(id.len()).expect("checked above");
        self
    }

    /// The last bytes of the ticket offered or issued.
    pub fn ticket_id(mut self, id: [u8; 16]) -> Self {
        self.0.hello.ticket_id = id;
        self
    }

    pub fn sni(mut self, name: &[u8]) -> Self {
        assert!(name.len() <= SNI_MAX, "a name that fits the event");
        self.0.hello.sni[..name.len()].copy_from_slice(name);
        self.0.hello.sni_len = u8::try_from(name.len()).expect("checked above");
        self
    }

    pub fn alpn(mut self, protocol: &[u8]) -> Self {
        assert!(protocol.len() <= ALPN_MAX, "a protocol that fits the event");
        self.0.hello.alpn[..protocol.len()].copy_from_slice(protocol);
        self.0.hello.alpn_len = u8::try_from(protocol.len()).expect("checked above");
        self
    }

    /// A ServerHello's supported_versions selection.
    pub fn selected_version(mut self, version: u16) -> Self {
        self.0.hello.selected_version = version;
        self
    }

    pub fn cipher_suite(mut self, suite: u16) -> Self {
        self.0.hello.cipher_suite = suite;
        self
    }

    /// How many extensions the hello had.
    pub fn extensions(mut self, n: u8) -> Self {
        self.0.hello.extensions = n;
        self
    }

    /// Where the hello's body is and how long it is, as a ClientHello cut
    /// at its segment's end reports it.
    pub fn hello_at(mut self, at: u32, len: u32) -> Self {
        self.0.hello_type = if self.0.hello.flags & hello_flags::SERVER_HELLO != 0 {
            HandshakeType::SERVER_HELLO.0
        } else {
            HandshakeType::CLIENT_HELLO.0
        };
        (self.0.hello_at, self.0.hello_len) = (at, len);
        self
    }

    #[must_use]
    pub fn build(self) -> TlsSummary {
        self.0
    }
}
