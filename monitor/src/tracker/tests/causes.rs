//! Why offers are rejected (docs/classification.md, "Why sessions are
//! rejected"): the session's last holder, TLS 1.3 ticket candidates, and
//! what the server was seen to do.

use super::{closes::handshake13, *};
use crate::stats::ByCause;

const MS: u64 = 1_000_000;

/// Resumes session `sid` on port `cport` at `ms`, then the client closes
/// with `flags`, after close_notify if `clean`, after data unless `idle`.
fn resume12(t: &mut Tracker, cport: u16, ms: u64, sid: u8, clean: bool, idle: bool, flags: u8) {
    let mut c = conn(t, cport);
    c.ms = ms;
    c.client(&ch(&[sid; 32], 0, 0));
    c.server(&sh(&[sid; 32], 0x0303, 0, &[CCS, FIN_MSG]));
    c.client(&items(&[CCS, FIN_MSG]));
    if !idle {
        c.data(true, 200);
    }
    if clean {
        c.client(&items(&[ENC_ALERT]));
    }
    c.close(true, flags);
}

/// A full TLS 1.2 handshake at `ms` on `cport` offering `offer`, issuing
/// `issued`, closed cleanly by the client.
fn full_clean(t: &mut Tracker, cport: u16, ms: u64, offer: &[u8], issued: u8) {
    let mut c = conn(t, cport);
    c.ms = ms;
    c.client(&ch(offer, 0, 0));
    c.server(&sh(&[issued; 32], 0x0303, 0, &[CERT, SHD]));
    c.client(&items(&[0x1610, CCS, FIN_MSG]));
    c.server(&items(&[CCS, FIN_MSG]));
    c.data(true, 200);
    c.client(&items(&[ENC_ALERT]));
    c.close(true, TCP_FIN | TCP_ACK);
}

fn causes(t: &Tracker) -> ByCause {
    stats(t).rejected_by_cause
}

#[test]
fn a_health_check_that_resets_the_session_is_its_last_holder() {
    // HAProxy's SSL check resumes the traffic's session and resets it; the
    // connection that established it closed cleanly.
    let mut t = Tracker::new(Limits::default());
    full_clean(&mut t, 1000, 1000, &[], 7);
    resume12(&mut t, 1001, 1500, 7, false, true, TCP_RST | TCP_ACK);
    full_clean(&mut t, 1002, 2000, &[7; 32], 8);
    let s = stats(&t);
    assert_eq!((s.rejected, s.rejected_after_unclean), (1, 1));
    assert_eq!(s.rejected_by_cause.after_unclean, 1);
    assert_eq!(s.rejected_after_idle_unclean, 1, "the holder sent no data");
}

#[test]
fn a_server_that_never_resumes_has_no_cache() {
    let mut t = Tracker::new(Limits::default());
    full_clean(&mut t, 1000, 1000, &[], 1);
    full_clean(&mut t, 1001, 1100, &[1; 32], 2);
    full_clean(&mut t, 1002, 1200, &[2; 32], 3);
    assert_eq!(causes(&t).no_cache, 2);
}

#[test]
fn sessions_older_than_any_accepted_expired() {
    let mut t = Tracker::new(Limits::default());
    full_clean(&mut t, 1000, 1000, &[], 1);
    resume12(&mut t, 1001, 1200, 1, true, false, TCP_FIN | TCP_ACK);
    resume12(&mut t, 1002, 1400, 1, true, false, TCP_FIN | TCP_ACK);
    // After a pause, ten times older than any accepted.
    full_clean(&mut t, 1003, 5000, &[1; 32], 2);
    assert_eq!(causes(&t).expired, 1);
    // An unclean holder explains a rejection too: only an age past the
    // cutoff the server showed makes expiry fit as well (unknown).
    resume12(&mut t, 1004, 5100, 2, false, false, TCP_RST | TCP_ACK);
    full_clean(&mut t, 1005, 5300, &[2; 32], 3);
    resume12(&mut t, 1006, 5400, 3, false, false, TCP_RST | TCP_ACK);
    full_clean(&mut t, 1007, 11_000, &[3; 32], 4);
    let c = causes(&t);
    assert_eq!((c.expired, c.after_unclean, c.unknown), (1, 1, 1), "{c:?}");
}

#[test]
fn sessions_issued_before_a_moment_rejected_after_it_are_a_restart() {
    let mut t = Tracker::new(Limits::default());
    // Two sessions (a proxy's two threads), resumed.
    full_clean(&mut t, 1000, 1000, &[], 1);
    full_clean(&mut t, 1001, 1050, &[], 2);
    resume12(&mut t, 1002, 1100, 1, true, false, TCP_FIN | TCP_ACK);
    resume12(&mut t, 1003, 1150, 2, true, false, TCP_FIN | TCP_ACK);
    // Restart: the first rejection waits, the second confirms both.
    full_clean(&mut t, 1004, 1400, &[1; 32], 3);
    assert_eq!(stats(&t).rejected, 1);
    assert_eq!(causes(&t), ByCause::default(), "the first waits");
    full_clean(&mut t, 1005, 1450, &[2; 32], 4);
    assert_eq!(causes(&t).server_restart, 2);
}

#[test]
fn a_lone_clean_rejection_is_a_restart_only_if_nothing_older_resumes() {
    let mut t = Tracker::new(Limits::default());
    full_clean(&mut t, 1000, 1000, &[], 1);
    full_clean(&mut t, 1001, 1050, &[], 2);
    resume12(&mut t, 1002, 1100, 1, true, false, TCP_FIN | TCP_ACK);
    // Session 1 is refused, session 2 (as old) still resumes: evicted,
    // not a restart.
    full_clean(&mut t, 1003, 1200, &[1; 32], 3);
    resume12(&mut t, 1004, 1300, 2, true, false, TCP_FIN | TCP_ACK);
    assert_eq!(causes(&t).after_clean, 1);
    // Later a lone refusal, after which only what was issued since resumes:
    // a restart, once the wait is over.
    full_clean(&mut t, 1005, 1400, &[3; 32], 5);
    resume12(&mut t, 1006, 1500, 5, true, false, TCP_FIN | TCP_ACK);
    t.tick(1400 * MS + super::super::causes::WAIT_NS + 10 * MS);
    assert_eq!(causes(&t).server_restart, 1);
}

#[test]
fn tickets_refused_while_young_were_not_decrypted() {
    let mut t = Tracker::new(Limits::default());
    // A ticket with a lifetime hint of 300 s, resumed, then refused.
    let issue = |t: &mut Tracker, cport, ms, ticket: u8| {
        let mut c = conn(t, cport);
        c.ms = ms;
        c.client(&ch(&[], hf::TICKET_EXT, 0));
        c.server(&sh(&[], 0x0303, hf::TICKET_EXT, &[CERT, SHD]));
        c.client(&items(&[0x1610, CCS, FIN_MSG]));
        let mut nst = items(&[NST, CCS, FIN_MSG]);
        nst.hello.flags = hf::NEW_TICKET;
        nst.hello.ticket_id = [ticket; 16];
        nst.hello.ticket_lifetime = 300;
        c.server(&nst);
        c.client(&items(&[ENC_ALERT]));
        c.close(true, TCP_FIN | TCP_ACK);
    };
    let offer = |t: &mut Tracker, cport, ms, ticket: u8, accepted: bool| {
        let mut c = conn(t, cport);
        c.ms = ms;
        c.client(&ch(&[], hf::TICKET_EXT | hf::TICKET_OFFERED, ticket));
        if accepted {
            c.server(&sh(&[], 0x0303, hf::TICKET_EXT, &[CCS, FIN_MSG]));
            c.client(&items(&[CCS, FIN_MSG]));
        } else {
            c.server(&sh(&[], 0x0303, hf::TICKET_EXT, &[CERT, SHD]));
            c.client(&items(&[0x1610, CCS, FIN_MSG]));
            c.server(&items(&[CCS, FIN_MSG]));
        }
        c.client(&items(&[ENC_ALERT]));
        c.close(true, TCP_FIN | TCP_ACK);
    };
    issue(&mut t, 1000, 1000, 1);
    offer(&mut t, 1001, 1100, 1, true);
    // Keys changed: refused within its lifetime.
    offer(&mut t, 1002, 5000, 1, false);
    assert_eq!(causes(&t).ticket_rejected, 1);
    // Past its lifetime: expired.
    issue(&mut t, 1003, 6000, 2);
    offer(&mut t, 1004, 400_000, 2, false);
    assert_eq!(causes(&t).expired, 1);
}

#[test]
fn tls13_rejections_are_blamed_when_every_candidate_ended_alike() {
    let mut t = Tracker::new(Limits::default());
    // HAProxy with option nolinger and a backend that drops the session
    // of a reset connection.
    for (i, cport) in (1000..1004).enumerate() {
        let mut c = conn(&mut t, cport);
        handshake13(&mut c, i > 0);
        c.data(true, 98);
        c.data(false, 300);
        c.close(true, TCP_RST | TCP_ACK);
    }
    // Each offer so far was resumed.
    let s = stats(&t);
    assert_eq!((s.resumed, s.rejected), (3, 0));
    let mut c = conn(&mut t, 1004);
    c.client(&ch(&[4; 32], hf::OFFERS_TLS13 | hf::PSK, 0));
    c.server(&sh(&[4; 32], 0x0304, 0, &[CCS, 0x17ff]));
    // This one closes cleanly, after the server's tickets.
    c.client(&items(&[CCS, 0x17ff]));
    c.data(false, 300);
    c.short(true, 19);
    c.close(true, TCP_FIN | TCP_ACK);
    let s = stats(&t);
    assert_eq!((s.rejected, s.rejected_after_unclean), (1, 1));
    assert_eq!(s.rejected_by_cause.after_unclean, 1);
    assert_eq!(
        (
            t.totals.tls13_origins_decided,
            t.totals.tls13_origins_undecided
        ),
        (1, 0)
    );
    // One candidate that closed cleanly: the next is undecided.
    let mut c = conn(&mut t, 1005);
    c.client(&ch(&[4; 32], hf::OFFERS_TLS13 | hf::PSK, 0));
    c.server(&sh(&[4; 32], 0x0304, 0, &[CCS, 0x17ff]));
    assert_eq!(t.totals.tls13_origins_undecided, 1);
    assert_eq!(stats(&t).rejected_origin_unknown, 1);
}
