//! Real handshakes through the shared parser, checked against tshark.
//!
//! `tests/fixtures/make.sh` records OpenSSL handshakes on loopback
//! (`<name>.pcap`) and saves what tshark 4.0 decodes from every frame that
//! holds a plaintext handshake message (`<name>.tshark.tsv`). These tests
//! read each capture with [`monitor::capture::Capture`], run every frame
//! through [`classify`], and compare the result frame by frame with the TSV.
//! Every expected value comes from the TSV (`support/tshark_frames.rs`
//! reads both and compares); `fixture_cuts.rs` feeds truncated and
//! bit-flipped copies of the same frames through the parser.

#[path = "support/tshark_frames.rs"]
mod tshark_frames;

use monitor_common::{
    tls::{ExtensionType, HRR_RANDOM, HandshakeType},
    tunnel::Tunnel,
};
use tshark_frames::{compare, has_ext, hello_rows, tunnel_of, unhex};

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
