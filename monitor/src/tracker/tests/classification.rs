//! The classification rules of docs/classification.md, one test each.

use super::*;

#[test]
fn tls12_full_then_session_id_resumption() {
    let mut t = Tracker::new(Limits::default());
    full12(&mut t, 1000, &[], &[7; 32]);
    let mut c = conn(&mut t, 1001);
    c.client(&ch(&[7; 32], 0, 0));
    c.server(&sh(&[7; 32], 0x0303, 0, &[CCS, FIN_MSG]));
    let s = stats(&t);
    assert_eq!(
        (s.full, s.resumed),
        (1, 0),
        "resumed counted before the client's CCS"
    );
    let mut c = conn(&mut t, 1001);
    c.ms = 20_000;
    c.client(&items(&[CCS, FIN_MSG]));
    let s = stats(&t);
    assert_eq!((s.full, s.resumed, s.offered, s.rejected), (1, 1, 1, 0));
    assert_eq!(
        s.resumed_by,
        ByMethod {
            session_id: 1,
            ticket: 0,
            psk: 0
        }
    );
    assert_eq!(s.role, Role::Backend);
    assert_eq!(s.versions.get(&0x0303), Some(&2));
}

#[test]
fn rejection_after_unclean_close_is_attributed() {
    let mut t = Tracker::new(Limits::default());
    full12(&mut t, 1000, &[], &[7; 32]);
    // The client (this proxy) resets without close_notify.
    conn(&mut t, 1000).close(true, TCP_RST | TCP_ACK);
    full12(&mut t, 1001, &[7; 32], &[8; 32]);
    let s = stats(&t);
    assert_eq!((s.full, s.offered, s.rejected), (2, 1, 1));
    assert_eq!((s.rejected_after_unclean, s.rejected_after_clean), (1, 0));
    assert_eq!(
        (s.unclean_closes, s.clean_closes, s.rst_by_client),
        (1, 0, 1)
    );
}

#[test]
fn rejection_after_clean_close_is_attributed() {
    let mut t = Tracker::new(Limits::default());
    full12(&mut t, 1000, &[], &[7; 32]);
    let mut c = conn(&mut t, 1000);
    c.ms = 50_000;
    c.client(&items(&[ENC_ALERT]));
    c.close(true, TCP_FIN | TCP_ACK);
    full12(&mut t, 1001, &[7; 32], &[8; 32]);
    let s = stats(&t);
    assert_eq!(
        (s.rejected, s.rejected_after_unclean, s.rejected_after_clean),
        (1, 0, 1)
    );
    assert_eq!((s.unclean_closes, s.clean_closes), (0, 1));
}

#[test]
fn ticket_resumption_with_empty_session_id_is_told_by_shape() {
    let mut t = Tracker::new(Limits::default());
    let mut c = conn(&mut t, 1000);
    c.client(&ch(&[], hf::TICKET_EXT | hf::TICKET_OFFERED, 5));
    c.server(&sh(&[], 0x0303, 0, &[]));
    // CCS arrives in the server's next segment.
    c.server(&items(&[CCS, FIN_MSG]));
    c.client(&items(&[CCS, FIN_MSG]));
    let s = stats(&t);
    assert_eq!((s.full, s.resumed, s.offered, s.rejected), (0, 1, 1, 0));
    assert_eq!(s.resumed_by.ticket, 1);
    assert_eq!(s.offered_by.ticket, 1);
}

#[test]
fn renewed_ticket_is_not_a_rejection() {
    let mut t = Tracker::new(Limits::default());
    let mut c = conn(&mut t, 1000);
    c.client(&ch(&[3; 32], hf::TICKET_EXT | hf::TICKET_OFFERED, 5));
    let mut flight = sh(&[9; 32], 0x0303, hf::TICKET_EXT, &[NST, CCS, FIN_MSG]);
    flight.hello.flags |= hf::NEW_TICKET;
    c.server(&flight);
    c.client(&items(&[CCS, FIN_MSG]));
    let s = stats(&t);
    assert_eq!((s.full, s.resumed, s.rejected), (0, 1, 0));
    assert_eq!(s.resumed_by.ticket, 1);
}

#[test]
fn tls13_compat_session_id_is_not_an_offer() {
    let mut t = Tracker::new(Limits::default());
    let mut c = conn(&mut t, 1000);
    c.client(&ch(&[4; 32], hf::OFFERS_TLS13, 0));
    // TLS 1.3 servers echo legacy_session_id (RFC 8446 §4.1.3).
    c.server(&sh(&[4; 32], 0x0304, 0, &[CCS, 0x17ff]));
    let s = stats(&t);
    assert_eq!((s.full, s.resumed, s.offered), (1, 0, 0));
    assert_eq!(s.versions.get(&0x0304), Some(&1));
}

#[test]
fn tls13_psk_accepted_and_rejected() {
    let mut t = Tracker::new(Limits::default());
    let mut c = conn(&mut t, 1000);
    c.client(&ch(
        &[4; 32],
        hf::OFFERS_TLS13 | hf::PSK | hf::EARLY_DATA,
        0,
    ));
    c.server(&sh(&[4; 32], 0x0304, hf::PSK, &[]));
    let mut c = conn(&mut t, 1001);
    c.client(&ch(&[4; 32], hf::OFFERS_TLS13 | hf::PSK, 0));
    c.server(&sh(&[4; 32], 0x0304, 0, &[]));
    let s = stats(&t);
    assert_eq!((s.full, s.resumed, s.offered, s.rejected), (1, 1, 2, 1));
    assert_eq!(s.resumed_by.psk, 1);
    assert_eq!(s.early_data_offered, 1);
    // A TLS 1.3 ticket's origin is encrypted: not blamed on a close.
    assert_eq!(s.rejected_origin_unknown, 1);
}

#[test]
fn resumption_implies_an_offer_even_when_the_hello_was_cut() {
    let mut t = Tracker::new(Limits::default());
    let mut c = conn(&mut t, 1000);
    // The segment ended before pre_shared_key: no PSK flag seen.
    c.client(&ch(&[4; 32], hf::OFFERS_TLS13 | hf::TRUNCATED, 0));
    c.server(&sh(&[4; 32], 0x0304, hf::PSK, &[]));
    let s = stats(&t);
    assert_eq!(
        (s.resumed, s.offered, s.offered_by.psk, s.rejected),
        (1, 1, 1, 0)
    );
    assert_eq!(t.totals.truncated_hellos, 1);
}

#[test]
fn hello_retry_request_is_counted_and_classified_from_second_server_hello() {
    let mut t = Tracker::new(Limits::default());
    let mut c = conn(&mut t, 1000);
    c.client(&ch(&[4; 32], hf::OFFERS_TLS13, 0));
    c.server(&sh(&[4; 32], 0x0304, hf::HRR, &[CCS]));
    c.client(&ch(&[4; 32], hf::OFFERS_TLS13, 0));
    let ms = c.ms;
    let s = stats(&t);
    assert_eq!((s.hrr, s.full), (1, 0));
    let mut c = conn(&mut t, 1000);
    c.ms = ms;
    c.server(&sh(&[4; 32], 0x0304, 0, &[]));
    let s = stats(&t);
    assert_eq!((s.hrr, s.full, s.resumed), (1, 1, 0));
}

#[test]
fn incomplete_and_failed_handshakes() {
    let mut t = Tracker::new(Limits::default());
    // A plaintext handshake_failure alert (40) from the server.
    let mut c = conn(&mut t, 3000);
    c.client(&ch(&[], 0, 0));
    c.server(&items(&[0x1528]));
    // No ServerHello before the timeout.
    conn(&mut t, 1000).client(&ch(&[], 0, 0));
    t.tick(1000 * 10 * 1_000_000 + Limits::default().handshake_timeout_ns + 10_000_000);
    // The server's FIN before its ServerHello. (The client's alone would
    // only close its direction: the server may still answer.)
    let mut c = conn(&mut t, 2000);
    c.client(&ch(&[], 0, 0));
    c.close(false, TCP_FIN | TCP_ACK);
    // RST in the middle of a TLS 1.2 handshake.
    let mut c = conn(&mut t, 4000);
    c.client(&ch(&[], 0, 0));
    c.server(&sh(&[1; 32], 0x0303, 0, &[CERT]));
    c.close(false, TCP_RST);
    let s = stats(&t);
    assert_eq!((s.incomplete, s.failed, s.full, s.resumed), (2, 2, 0, 0));
    assert_eq!(s.rst_by_server, 1);
}

#[test]
fn frontend_role_and_untracked_events() {
    let mut t = Tracker::new(Limits::default());
    let mut c = conn(&mut t, 1000);
    c.client_dir = Direction::INGRESS;
    c.client(&ch(&[], 0, 0));
    c.server(&sh(&[], 0x0304, 0, &[]));
    assert_eq!(t.servers()[0].role, Role::Frontend);
    let stray = hdr((9, 1), (9, 2), Direction::INGRESS, 2, TCP_RST);
    t.on_teardown(&stray);
    assert_eq!(t.totals.untracked_events, 1);
}

#[test]
fn malformed_hello_is_not_a_handshake() {
    let mut t = Tracker::new(Limits::default());
    let mut bad = ch(&[], 0, 0);
    bad.hello.flags |= hf::MALFORMED;
    t.on_tls(&hdr(CLIENT, SERVER, Direction::EGRESS, 1, TCP_ACK), &bad);
    assert!(t.servers().is_empty());
    assert_eq!(t.totals.malformed_hellos, 1);
}

#[test]
fn connection_table_is_bounded_and_evictions_counted() {
    let mut t = Tracker::new(Limits {
        max_connections: 2,
        ..Limits::default()
    });
    for port in [1000, 1001, 1002] {
        conn(&mut t, port).client(&ch(&[], 0, 0));
    }
    assert_eq!(t.connections(), 2);
    assert_eq!(t.totals.evicted_flows, 1);
}

#[test]
fn closed_connections_are_forgotten_after_linger() {
    let mut t = Tracker::new(Limits::default());
    full12(&mut t, 1000, &[], &[7; 32]);
    conn(&mut t, 1000).close(true, TCP_FIN);
    assert_eq!(t.connections(), 1);
    t.tick(u64::MAX / 2);
    assert_eq!(t.connections(), 0);
}

#[test]
fn names_read_as_escape_shows_them() {
    use monitor_common::event::SNI_MAX;
    let names: [&[u8]; 8] = [
        b"api.backend.example",
        b" ~",
        b"a\\b",
        b"\x1b]0;title\x07",
        b"caf\xc3\xa9",
        b"\xff\xfe",
        b"\x7f",
        b"\xe2\x80\xaeevil",
    ];
    for name in names {
        let mut bytes = [0u8; SNI_MAX];
        bytes[..name.len()].copy_from_slice(name);
        let n = conn::Name::new(&bytes, u8::try_from(name.len()).unwrap(), 0);
        assert_eq!(
            n.text().map(std::borrow::Cow::into_owned),
            Some(crate::escape::escape(name)),
            "{name:x?}"
        );
    }
    assert!(
        conn::Name::<SNI_MAX>::new(&[0; SNI_MAX], 0, 0)
            .text()
            .is_none()
    );
}
