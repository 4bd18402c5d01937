//! Protocol versions as a ServerHello selects them, and which rules each
//! one's handshake follows.
//!
//! Besides SSL 3.0 to TLS 1.3, servers still answer with versions that
//! were never standardised: the drafts of TLS 1.3, which numbered
//! themselves `0x7f00 | draft` (draft-ietf-tls-tls13-18 §4.2.1, still so
//! in -28 §4.2.1), and a vendor's variants of them. Their handshakes are
//! TLS 1.3's as far as classification goes — a resumption is a PSK
//! (RFC 8446 §2.2), the legacy_session_id is a middlebox-compatibility
//! value (§D.4), never an offer — so they must never get TLS 1.2's
//! session-ID rules. A version tlsmon cannot place gets neither rule set
//! ([`Rules::Unknown`]) and a name to show ([`ProtocolVersion`]'s
//! `Display`).

use core::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProtocolVersion(pub u16);

/// Which classification rules a handshake of a version follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rules {
    /// SSL 3.0 to TLS 1.2: session IDs and tickets (RFC 5246, RFC 5077).
    Tls12,
    /// TLS 1.3 and its drafts and variants: PSK (RFC 8446).
    Tls13,
    /// Not a version tlsmon knows: neither set applies.
    Unknown,
}

/// The TLS 1.3 drafts seen on the wire, from draft-14 (`0x7f0e`) to
/// draft-28 (`0x7f1c`), the last before RFC 8446. Wireshark names the same
/// range (epan/dissectors/packet-tls-utils.c, `ssl_versions`).
const FIRST_DRAFT: u16 = 0x7f0e;
const LAST_DRAFT: u16 = 0x7f1c;
const DRAFT_NAMES: [&str; (LAST_DRAFT - FIRST_DRAFT + 1) as usize] = [
    "TLSv1.3-draft14",
    "TLSv1.3-draft15",
    "TLSv1.3-draft16",
    "TLSv1.3-draft17",
    "TLSv1.3-draft18",
    "TLSv1.3-draft19",
    "TLSv1.3-draft20",
    "TLSv1.3-draft21",
    "TLSv1.3-draft22",
    "TLSv1.3-draft23",
    "TLSv1.3-draft24",
    "TLSv1.3-draft25",
    "TLSv1.3-draft26",
    "TLSv1.3-draft27",
    "TLSv1.3-draft28",
];
/// Draft-22 gave the ServerHello TLS 1.2's layout, with legacy_version
/// 0x0303 and the version in supported_versions (the change log of
/// draft-ietf-tls-tls13-22); before it, ServerHello.version held the
/// version and there was no session ID or compression method.
const FIRST_TLS12_SHAPED_DRAFT: u16 = 0x7f16;

impl ProtocolVersion {
    pub const SSL3_0: Self = Self(0x0300);
    pub const TLS1_0: Self = Self(0x0301);
    pub const TLS1_1: Self = Self(0x0302);
    pub const TLS1_2: Self = Self(0x0303);
    pub const TLS1_3: Self = Self(0x0304);
    /// Facebook's variants of TLS 1.3 drafts 23 and 26 (Fizz, its TLS 1.3
    /// library), still seen in 2024 traffic; Wireshark names them "TLS 1.3
    /// (Facebook draft 23/26)". Draft-22's ServerHello layout.
    pub const FB_DRAFT23: Self = Self(0xfb17);
    pub const FB_DRAFT26: Self = Self(0xfb1a);

    /// Which rules this version's handshakes follow.
    #[inline(always)]
    #[must_use]
    pub const fn rules(self) -> Rules {
        match self.0 {
            0x0300..=0x0303 => Rules::Tls12,
            0x0304 | FIRST_DRAFT..=LAST_DRAFT | 0xfb17 | 0xfb1a => Rules::Tls13,
            _ => Rules::Unknown,
        }
    }

    /// Whether this version follows TLS 1.3's rules: TLS 1.3 itself, a
    /// draft of it, or a vendor's variant.
    #[inline(always)]
    #[must_use]
    pub const fn follows_tls13(self) -> bool {
        matches!(self.rules(), Rules::Tls13)
    }

    /// Whether a ServerHello that selects this version has the layout of
    /// TLS 1.3 drafts before -22 (see [`FIRST_TLS12_SHAPED_DRAFT`]): the
    /// version in place of legacy_version, then random, cipher_suite and
    /// extensions.
    #[inline(always)]
    #[must_use]
    pub const fn early_draft(self) -> bool {
        self.0 >= FIRST_DRAFT && self.0 < FIRST_TLS12_SHAPED_DRAFT
    }

    /// Name for output; `None` for values that are not a version tlsmon
    /// knows (`Display` shows those as `0xNNNN`).
    #[must_use]
    pub const fn name(self) -> Option<&'static str> {
        match self.0 {
            0x0300 => Some("SSLv3"),
            0x0301 => Some("TLSv1.0"),
            0x0302 => Some("TLSv1.1"),
            0x0303 => Some("TLSv1.2"),
            0x0304 => Some("TLSv1.3"),
            FIRST_DRAFT..=LAST_DRAFT => Some(DRAFT_NAMES[(self.0 - FIRST_DRAFT) as usize]),
            0xfb17 => Some("TLSv1.3-fb-draft23"),
            0xfb1a => Some("TLSv1.3-fb-draft26"),
            _ => None,
        }
    }
}

/// The name, or `0xNNNN` for a version without one: never blank.
impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "{:#06x}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::string::ToString;

    use super::{ProtocolVersion as V, Rules};

    #[test]
    fn drafts_and_variants_follow_tls13() {
        // draft-ietf-tls-tls13-18 negotiated 0x7f00 | 18.
        assert_eq!(V(0x7f12).to_string(), "TLSv1.3-draft18");
        assert_eq!(V(0x7f0e).to_string(), "TLSv1.3-draft14");
        assert_eq!(V(0x7f1c).to_string(), "TLSv1.3-draft28");
        assert_eq!(V(0xfb1a).to_string(), "TLSv1.3-fb-draft26");
        for v in [0x0304, 0x7f0e, 0x7f12, 0x7f16, 0x7f1c, 0xfb17, 0xfb1a] {
            assert!(V(v).follows_tls13(), "{v:#x}");
        }
        for v in 0x0300..=0x0303 {
            assert_eq!(V(v).rules(), Rules::Tls12, "{v:#x}");
        }
    }

    #[test]
    fn unknown_versions_get_no_rules_and_a_number() {
        // Before draft-14, past draft-28, GREASE (RFC 8701), DTLS 1.2.
        for v in [0x7f0d, 0x7f1d, 0x0a0a, 0xfefd, 0x0305, 0x0200] {
            assert_eq!(V(v).rules(), Rules::Unknown, "{v:#x}");
            assert_eq!(V(v).name(), None);
        }
        assert_eq!(V(0x7f0d).to_string(), "0x7f0d");
        assert_eq!(V(0x0a0a).to_string(), "0x0a0a");
    }

    #[test]
    fn only_drafts_before_22_have_the_early_server_hello() {
        assert!(V(0x7f0e).early_draft() && V(0x7f15).early_draft());
        assert!(!V(0x7f16).early_draft() && !V(0x0304).early_draft());
        assert!(!V(0xfb17).early_draft() && !V(0x0303).early_draft());
    }
}
