//! What captures from the wild show (issue 17): half-closes, warning
//! alerts, late answers.

use super::*;

/// A plaintext alert item, and the summary's warning bit for it.
fn alert(description: u8, warning: bool) -> TlsSummary {
    let mut t = items(&[0x1500 | u16::from(description)]);
    t.warning_alerts = u8::from(warning);
    t
}

const UNRECOGNIZED_NAME: u8 = 112;
const CLOSE_NOTIFY: u8 = 0;
const HANDSHAKE_FAILURE: u8 = 40;

#[test]
fn a_client_fin_after_its_finished_does_not_end_the_handshake() {
    // The client sends ClientKeyExchange, ChangeCipherSpec and Finished,
    // then FIN: it has nothing more to send. The server's
    // NewSessionTicket, ChangeCipherSpec and Finished come after that FIN
    // (RFC 9293 §3.6: a FIN closes one direction).
    let mut t = Tracker::new(Limits::default());
    full12(&mut t, 1000, &[], &[7; 32]);
    let mut c = conn(&mut t, 1001);
    c.client(&ch(&[7; 32], 0, 0));
    c.server(&sh(&[8; 32], 0x0303, 0, &[CERT, SHD]));
    c.client(&items(&[0x1610, CCS, FIN_MSG]));
    c.close(true, TCP_FIN | TCP_ACK);
    let mut nst = items(&[NST, CCS, FIN_MSG]);
    nst.hello.flags = hf::NEW_TICKET;
    c.server(&nst);
    let s = stats(&t);
    assert_eq!(
        (s.full, s.offered, s.rejected, s.incomplete),
        (2, 1, 1, 0),
        "{s:?}"
    );
}

#[test]
fn a_server_hello_after_the_clients_fin_still_counts() {
    let mut t = Tracker::new(Limits::default());
    // TLS 1.3: counted at the ServerHello.
    let mut c = conn(&mut t, 1000);
    c.client(&ch(&[4; 32], hf::OFFERS_TLS13 | hf::PSK, 0));
    c.close(true, TCP_FIN | TCP_ACK);
    c.server(&sh(&[4; 32], 0x0304, hf::PSK, &[CCS]));
    let s = stats(&t);
    assert_eq!((s.resumed, s.resumed_by.psk, s.incomplete), (1, 1, 0));
    // A HelloRetryRequest counts too; the client, gone, cannot send its
    // second ClientHello, so the handshake is incomplete.
    let mut c = conn(&mut t, 1001);
    c.client(&ch(&[4; 32], hf::OFFERS_TLS13, 0));
    c.close(true, TCP_FIN | TCP_ACK);
    c.server(&sh(&[4; 32], 0x0304, hf::HRR, &[CCS]));
    let s = stats(&t);
    assert_eq!((s.hrr, s.incomplete), (1, 1));
    // TLS 1.2: the client can no longer send its ChangeCipherSpec.
    let mut c = conn(&mut t, 1002);
    c.client(&ch(&[], 0, 0));
    c.close(true, TCP_FIN | TCP_ACK);
    c.server(&sh(&[5; 32], 0x0303, 0, &[CERT, SHD]));
    let s = stats(&t);
    assert_eq!((s.full, s.incomplete), (0, 2));
}

#[test]
fn a_warning_alert_does_not_end_the_handshake() {
    let mut t = Tracker::new(Limits::default());
    // RFC 6066 §3: a server that does not know the name may say so with a
    // warning before its ServerHello, and go on.
    let mut c = conn(&mut t, 1000);
    c.client(&ch(&[], 0, 0));
    c.server(&alert(UNRECOGNIZED_NAME, true));
    c.server(&sh(&[1; 32], 0x0303, 0, &[CERT, SHD]));
    c.client(&items(&[0x1610, CCS, FIN_MSG]));
    c.server(&items(&[CCS, FIN_MSG]));
    let s = stats(&t);
    assert_eq!((s.full, s.failed), (1, 0), "{s:?}");
    // The same at fatal level ends it.
    let mut c = conn(&mut t, 1001);
    c.client(&ch(&[], 0, 0));
    c.server(&alert(UNRECOGNIZED_NAME, false));
    // close_notify ends it whatever its level.
    let mut c = conn(&mut t, 1002);
    c.client(&ch(&[], 0, 0));
    c.server(&alert(CLOSE_NOTIFY, true));
    // After a HelloRetryRequest the version is TLS 1.3, where every alert
    // but close_notify and user_canceled is fatal (RFC 8446 §6).
    let mut c = conn(&mut t, 1003);
    c.client(&ch(&[4; 32], hf::OFFERS_TLS13, 0));
    c.server(&sh(&[4; 32], 0x0304, hf::HRR, &[]));
    c.server(&alert(HANDSHAKE_FAILURE, true));
    let s = stats(&t);
    assert_eq!((s.full, s.failed, s.hrr), (1, 3, 1));
}

/// The server answers this connection ~14.8 s after its ClientHello, long
/// after the 10 s timeout; the tracker ticks once a second meanwhile.
fn slow_answer(t: &mut Tracker, cport: u16, tls13: bool) -> Conn12<'_> {
    let mut c = conn(t, cport);
    c.client(&ch(&[], hf::OFFERS_TLS13, 0));
    let start = c.ms;
    for s in 1..=14 {
        c.t.tick((start + s * 1000) * 1_000_000);
    }
    c.ms = start + 14_799;
    if tls13 {
        c.server(&sh(&[], 0x0304, 0, &[CCS]));
    } else {
        c.server(&sh(&[3; 32], 0x0303, 0, &[CERT, SHD]));
    }
    c
}

#[test]
fn a_late_server_hello_is_classified_with_its_latency() {
    let mut t = Tracker::new(Limits::default());
    full12(&mut t, 1000, &[], &[7; 32]);
    slow_answer(&mut t, 2000, true);
    let s = stats(&t);
    // The timeout counted it incomplete, and that stays (counters only
    // grow); the answer counts it, late, with the time it took.
    assert_eq!((s.full, s.late, s.incomplete), (2, 1, 1), "{s:?}");
    let slowest = s.handshake_full.quantile_ms(1.0).unwrap();
    assert!((13_000.0..17_000.0).contains(&slowest), "{slowest} ms");
    // TLS 1.2 completes after both ChangeCipherSpecs, as always.
    let mut c = slow_answer(&mut t, 3000, false);
    c.client(&items(&[0x1610, CCS, FIN_MSG]));
    c.server(&items(&[CCS, FIN_MSG]));
    let s = stats(&t);
    assert_eq!((s.full, s.late, s.incomplete), (3, 2, 2));
    // A connection that timed out and ended is not counted again.
    let mut c = conn(&mut t, 4000);
    c.client(&ch(&[], 0, 0));
    c.t.tick((c.ms + 10_001) * 1_000_000);
    c.close(true, TCP_RST | TCP_ACK);
    c.server(&sh(&[3; 32], 0x0303, 0, &[CERT, SHD]));
    let s = stats(&t);
    assert_eq!((s.full, s.failed, s.incomplete), (3, 0, 3));
}

#[test]
fn timed_out_handshakes_kept_for_late_answers_are_bounded() {
    let mut t = Tracker::new(Limits {
        max_timed_out: 2,
        ..Limits::default()
    });
    full12(&mut t, 1000, &[], &[7; 32]);
    for port in [2000, 2001, 2002] {
        conn(&mut t, port).client(&ch(&[], hf::OFFERS_TLS13, 0));
    }
    t.tick(u64::MAX / 4);
    assert_eq!(t.totals.evicted_timed_out, 1);
    // The oldest was dropped: its answer finds nothing; the others count.
    for port in [2000, 2001, 2002] {
        let mut c = conn(&mut t, port);
        c.next[0] += PAYLOAD;
        c.server(&sh(&[], 0x0304, 0, &[]));
    }
    let s = stats(&t);
    assert_eq!((s.late, t.totals.untracked_events), (2, 1));
}

#[test]
fn a_new_hello_on_the_port_of_a_timed_out_one_is_a_new_connection() {
    let mut t = Tracker::new(Limits::default());
    full12(&mut t, 1000, &[], &[7; 32]);
    let mut c = conn(&mut t, 2000);
    c.client(&ch(&[], hf::OFFERS_TLS13, 0));
    c.t.tick((c.ms + 10_001) * 1_000_000);
    // The port is used again, for a connection with sequence numbers of
    // its own.
    c.next = [7_000_000, 9_000_000];
    c.ms += 20_000;
    c.client(&ch(&[], hf::OFFERS_TLS13, 0));
    c.server(&sh(&[], 0x0304, 0, &[]));
    let s = stats(&t);
    assert_eq!((s.full, s.incomplete, s.late), (2, 1, 0), "{s:?}");
}

/// A ServerHello selecting `version` in supported_versions that echoes the
/// client's 32-byte legacy_session_id, as TLS 1.3 and its drafts from -22
/// do for middlebox compatibility (RFC 8446 §4.1.3, §D.4).
fn sh_selecting(sid: &[u8], version: u16, flags: u16) -> TlsSummary {
    let mut t = sh(sid, 0x0303, flags, &[CCS, 0x17ff]);
    t.hello.selected_version = version;
    t
}

#[test]
fn drafts_and_variants_follow_tls13_rules_and_unknown_versions_never_tls12s() {
    // One capture in issue 17: six handshakes of a TLS 1.3 draft, their
    // compatibility echoes read as session-ID resumptions. A draft, a
    // vendor's variant and a version nobody knows: the echo is not a
    // resumption; an accepted PSK is.
    let mut t = Tracker::new(Limits::default());
    for (port, version, flags) in [
        (1000, 0x7f17, 0),
        (1001, 0xfb1a, hf::PSK),
        (1002, 0x7e01, 0),
    ] {
        let mut c = conn(&mut t, port);
        c.client(&ch(&[9; 32], hf::OFFERS_TLS13 | hf::PSK, 0));
        c.server(&sh_selecting(&[9; 32], version, flags));
    }
    let s = stats(&t);
    assert_eq!((s.full, s.resumed), (2, 1));
    assert_eq!((s.resumed_by.psk, s.resumed_by.session_id), (1, 0));
    let names: Vec<_> = s.version_counts().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["0x7e01", "TLSv1.3-draft23", "TLSv1.3-fb-draft26"]);
}

#[test]
fn distinct_versions_a_server_counts_are_bounded() {
    let mut t = Tracker::new(Limits::default());
    for port in 0..40u16 {
        let mut c = conn(&mut t, 2000 + port);
        c.client(&ch(&[9; 32], hf::OFFERS_TLS13, 0));
        c.server(&sh_selecting(&[9; 32], 0x7e00 + port, 0));
    }
    let s = stats(&t);
    assert_eq!(s.full, 40);
    assert_eq!(s.versions.len(), crate::stats::VERSIONS_CAP + 1);
    let other = s.version_counts().into_iter().find(|(n, _)| n == "other");
    assert_eq!(
        other,
        Some(("other".to_owned(), 40 - crate::stats::VERSIONS_CAP as u64))
    );
}
