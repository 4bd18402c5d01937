//! ServerHellos and ClientHellos of TLS 1.3's drafts and a vendor's
//! variants, built by hand from the drafts' message layouts (no peer here
//! speaks them), through `tls::summarize`.
//!
//! Layouts: draft-ietf-tls-tls13-18 §4.1.3 (ServerHello = version, random,
//! cipher_suite, extensions; the version `0x7f00 | 18`, §4.2.1), and
//! draft-22 onwards and RFC 8446 §4.1.3 (legacy_version 0x0303, random,
//! legacy_session_id_echo, cipher_suite, legacy_compression_method,
//! extensions with supported_versions carrying the version, §4.2.1).

use monitor_common::{
    emit::tls::{ClientHello, Extension, ServerHello},
    event::{TlsSummary, hello_flags as hf},
    tls::{ProtocolVersion, Rules, summarize},
};

fn summary(record: &[u8]) -> TlsSummary {
    let mut s = TlsSummary::default();
    summarize(record, 0, record.len(), &mut s);
    s
}

/// A draft-18 ServerHello accepting a PSK: no session ID, no compression
/// method, the version where TLS 1.2 has legacy_version. key_share was
/// extension 40 then, pre_shared_key 41 (draft-18 §4.2).
fn draft18_server_hello() -> Vec<u8> {
    ServerHello {
        legacy_version: 0x7f12,
        random: [0xa6; 32],
        extensions: vec![
            Extension::new(40, &[0, 0x1d, 0, 4, 1, 2, 3, 4]),
            Extension::selected_identity(0),
        ],
        ..ServerHello::default()
    }
    .record()
}

/// A ServerHello in draft-22's and RFC 8446's layout selecting `version`,
/// echoing a 32-byte compatibility session ID (RFC 8446 §D.4), with
/// pre_shared_key when `psk`.
fn server_hello(version: u16, psk: bool) -> Vec<u8> {
    let mut extensions = vec![
        Extension::selected_version(version),
        Extension::new(51, &[0, 0x1d, 0, 4, 1, 2, 3, 4]),
    ];
    if psk {
        extensions.push(Extension::selected_identity(0));
    }
    ServerHello {
        random: [0x3c; 32],
        session_id: vec![0x22; 32],
        extensions,
        ..ServerHello::default()
    }
    .record()
}

/// A ClientHello whose supported_versions lists `versions`.
fn client_hello(versions: &[u16]) -> Vec<u8> {
    ClientHello {
        session_id: vec![0x22; 32],
        extensions: vec![Extension::supported_versions(versions)],
        ..ClientHello::default()
    }
    .record()
}

#[test]
fn a_draft18_server_hello_is_read_in_its_own_layout() {
    let s = summary(&draft18_server_hello());
    let h = &s.hello;
    assert_eq!(h.flags & hf::MALFORMED, 0, "flags {:#x}", h.flags);
    assert_eq!(h.flags & hf::TRUNCATED, 0);
    assert_eq!(
        h.flags & (hf::SERVER_HELLO | hf::PSK),
        hf::SERVER_HELLO | hf::PSK
    );
    assert_eq!((h.legacy_version, h.selected_version), (0x7f12, 0x7f12));
    assert_eq!(h.cipher_suite, 0x1301);
    assert_eq!((h.session_id_len, h.extensions), (0, 2));
    let v = ProtocolVersion(h.selected_version);
    assert!(v.follows_tls13());
    assert_eq!(v.to_string(), "TLSv1.3-draft18");
}

#[test]
fn later_drafts_and_vendor_variants_select_their_version_by_extension() {
    for (version, name) in [
        (0x7f16, "TLSv1.3-draft22"),
        (0x7f1c, "TLSv1.3-draft28"),
        (0xfb17, "TLSv1.3-fb-draft23"),
        (0xfb1a, "TLSv1.3-fb-draft26"),
    ] {
        for psk in [false, true] {
            let s = summary(&server_hello(version, psk));
            let h = &s.hello;
            assert_eq!(h.flags & (hf::MALFORMED | hf::TRUNCATED), 0, "{name}");
            assert_eq!(h.selected_version, version, "{name}");
            assert_eq!(h.flags & hf::PSK != 0, psk, "{name}");
            // The compatibility echo is there, as in RFC 8446: only the
            // rules of TLS 1.3 keep it from reading as a resumption.
            assert_eq!(h.session_id_len, 32);
            let v = ProtocolVersion(version);
            assert!(v.follows_tls13(), "{name}");
            assert_eq!(v.to_string(), name);
        }
    }
}

#[test]
fn an_unplaceable_version_is_kept_and_shown_by_number() {
    // A version nobody registered, in the extension: kept, no rules, a name.
    let s = summary(&server_hello(0x7e01, false));
    assert_eq!(s.hello.flags & hf::MALFORMED, 0);
    let v = ProtocolVersion(s.hello.selected_version);
    assert_eq!(v.rules(), Rules::Unknown);
    assert_eq!(v.to_string(), "0x7e01");
}

#[test]
fn clients_offering_only_drafts_offer_tls13() {
    for versions in [&[0x7f12][..], &[0x7f1c, 0x0303], &[0x0a0a, 0xfb1a, 0x0303]] {
        let s = summary(&client_hello(versions));
        assert_ne!(s.hello.flags & hf::OFFERS_TLS13, 0, "{versions:x?}");
    }
    for versions in [&[0x0303, 0x0302][..], &[0x0a0a, 0x0303], &[0x7f0d]] {
        let s = summary(&client_hello(versions));
        assert_eq!(s.hello.flags & hf::OFFERS_TLS13, 0, "{versions:x?}");
    }
}

#[test]
fn cut_draft18_server_hellos_never_claim_more() {
    let full = draft18_server_hello();
    for cut in 9..full.len() {
        let mut s = TlsSummary::default();
        summarize(&full[..cut], 0, cut, &mut s);
        let h = &s.hello;
        assert_ne!(h.flags & hf::TRUNCATED, 0, "cut at {cut}");
        assert_eq!(h.flags & hf::MALFORMED, 0, "cut at {cut}");
    }
}
