//! Where each field sits in the headers the kit writes, named once (as
//! smoltcp's `wire` names them in a `field` module): the builders write
//! through these ranges, and code that patches a built packet in place
//! (the soak benchmark gives every handshake its own client) finds the
//! field by name instead of by a counted offset.
//!
//! Offsets are from the start of the header they belong to.

use core::ops::Range;

/// A field's bytes within its header.
pub type Field = Range<usize>;

/// Ethernet II (IEEE 802.3 §3.1.1) and an 802.1Q tag.
pub mod ethernet {
    use super::Field;
    pub const DST: Field = 0..6;
    pub const SRC: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const HEADER_LEN: usize = 14;
    /// A VLAN tag: the tag's EtherType (TPID), then the TCI.
    pub const TAG_LEN: usize = 4;
}

/// IPv4 (RFC 791 §3.1).
pub mod ipv4 {
    use super::Field;
    pub const VERSION_IHL: usize = 0;
    pub const TOTAL_LEN: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLAGS_FRAGMENT: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC: Field = 12..16;
    pub const DST: Field = 16..20;
    /// Without options.
    pub const HEADER_LEN: usize = 20;
    /// Don't Fragment, in the flags/fragment offset word.
    pub const DONT_FRAGMENT: u16 = 0x4000;
}

/// IPv6 (RFC 8200 §3).
pub mod ipv6 {
    use super::Field;
    pub const VERSION: usize = 0;
    pub const PAYLOAD_LEN: Field = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Field = 8..24;
    pub const DST: Field = 24..40;
    pub const HEADER_LEN: usize = 40;
}

/// TCP (RFC 9293 §3.1).
pub mod tcp {
    use super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ: Field = 4..8;
    pub const ACK: Field = 8..12;
    /// Data offset in the high four bits, in 32-bit words.
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
    /// Without options.
    pub const HEADER_LEN: usize = 20;
}

/// A TLS record header (RFC 8446 §5.1).
pub mod record {
    use super::Field;
    pub const CONTENT_TYPE: usize = 0;
    pub const VERSION: Field = 1..3;
    pub const LENGTH: Field = 3..5;
}

/// A handshake message header (RFC 8446 §4): type, then a 3-byte length.
pub mod handshake {
    use super::Field;
    pub const MSG_TYPE: usize = 0;
    pub const LENGTH: Field = 1..4;
}

/// The start of a ClientHello or ServerHello body (RFC 8446 §4.1.2–4.1.3).
pub mod hello {
    use super::Field;
    pub const LEGACY_VERSION: Field = 0..2;
    pub const RANDOM: Field = 2..34;
    /// The session ID's length byte; the ID follows it.
    pub const SESSION_ID_LEN: usize = 34;
    pub const SESSION_ID: usize = 35;
}

/// A NewSessionTicket body (RFC 5077 §3.3).
pub mod new_session_ticket {
    use super::Field;
    pub const LIFETIME_HINT: Field = 0..4;
    pub const TICKET_LEN: Field = 4..6;
    pub const TICKET: usize = 6;
}
