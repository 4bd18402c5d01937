//! How each side ends its TLS stream (docs/classification.md, "TLS 1.3
//! closes"), in the shapes measured on the wire, and the connection
//! records that carry it.

use monitor_common::{
    close::{LAST_RECORD_ALERT, LAST_RECORD_LONGER},
    event::EventKind,
};

use super::*;
use crate::{
    connection_log::{HandshakeKind, HandshakeRecord},
    stats::CloseStyle,
};

/// A completed TLS 1.3 handshake on `c` (full, or resumed with `psk`).
pub(super) fn handshake13(c: &mut Conn12<'_>, psk: bool) {
    let offer = if psk { hf::PSK } else { 0 };
    c.client(&ch(&[4; 32], hf::OFFERS_TLS13 | offer, 0));
    c.server(&sh(&[4; 32], 0x0304, offer, &[CCS, 0x17ff]));
    c.client(&items(&[CCS, 0x17ff]));
}

impl Conn12<'_> {
    /// A segment that is one application_data record of `len` bytes.
    pub(super) fn short(&mut self, from_client: bool, len: u8) {
        let mut h = self.header(from_client, TCP_ACK, u32::from(len) + 5);
        h.kind = EventKind::SHORT_RECORD.0;
        h.last_record = len;
        self.t.on_teardown(&h);
    }

    /// Application data the kernel does not report: the sequence numbers
    /// move on.
    pub(super) fn data(&mut self, from_client: bool, len: u32) {
        let side = usize::from(!from_client);
        self.next[side] = self.next[side].wrapping_add(len);
    }

    /// A FIN or RST carrying `len` bytes, the last record `last`.
    pub(super) fn close_with(&mut self, from_client: bool, flags: u8, len: u32, last: u8) {
        let mut h = self.header(from_client, flags, len);
        h.kind = EventKind::TEARDOWN.0;
        h.last_record = last;
        self.t.on_teardown(&h);
    }
}

/// Every record, after the linger time.
fn records(t: &mut Tracker) -> Vec<HandshakeRecord> {
    t.tick(1_000_000_000_000);
    let mut out = Vec::new();
    t.take_records(&mut out);
    out
}

fn keeping() -> Tracker {
    Tracker::new(Limits {
        keep_records: true,
        ..Limits::default()
    })
}

fn closes(r: &HandshakeRecord) -> (CloseStyle, CloseStyle) {
    (r.close_client, r.close_server)
}

#[test]
fn tls13_close_notify_alone_then_a_bare_fin_is_clean() {
    // OpenSSL and HAProxy: a lone 19-byte record in a 24-byte segment,
    // then FIN; s_server answers the same. nginx answers with FIN only.
    let mut t = keeping();
    let mut c = conn(&mut t, 1000);
    handshake13(&mut c, false);
    c.data(true, 98);
    c.data(false, 170);
    c.short(true, 19);
    c.close(true, TCP_FIN | TCP_ACK);
    c.short(false, 19);
    c.close(false, TCP_FIN | TCP_ACK);
    let mut c = conn(&mut t, 1001);
    handshake13(&mut c, false);
    c.short(true, 19);
    c.close(true, TCP_FIN | TCP_ACK);
    c.data(false, 170);
    c.close(false, TCP_FIN | TCP_ACK);
    let s = stats(&t);
    assert_eq!(
        (s.clean_closes, s.unclean_closes, s.unknown_closes),
        (2, 0, 0)
    );
    let r = records(&mut t);
    assert_eq!(closes(&r[0]), (CloseStyle::Clean, CloseStyle::Clean));
    assert_eq!(closes(&r[1]), (CloseStyle::Clean, CloseStyle::Unclean));
    assert_eq!((r[0].kind, r[0].version), (HandshakeKind::Full, 0x0304));
}

#[test]
fn tls13_a_reset_after_data_is_unclean_and_one_after_close_notify_clean() {
    let mut t = keeping();
    // HAProxy with option nolinger: the request, then RST.
    let mut c = conn(&mut t, 1000);
    handshake13(&mut c, false);
    c.data(true, 98);
    c.close(true, TCP_RST | TCP_ACK);
    // HTTP mode: close_notify, then RST.
    let mut c = conn(&mut t, 1001);
    handshake13(&mut c, false);
    c.data(true, 98);
    c.short(true, 19);
    c.close(true, TCP_RST | TCP_ACK);
    // A short record that data followed is not the last one.
    let mut c = conn(&mut t, 1002);
    handshake13(&mut c, false);
    c.short(true, 19);
    c.data(true, 300);
    c.close(true, TCP_FIN | TCP_ACK);
    let s = stats(&t);
    assert_eq!(
        (s.clean_closes, s.unclean_closes, s.rst_by_client),
        (1, 2, 2)
    );
    let r = records(&mut t);
    let client: Vec<_> = r.iter().map(|r| r.close_client).collect();
    assert_eq!(
        client,
        [CloseStyle::Unclean, CloseStyle::Clean, CloseStyle::Unclean]
    );
}

#[test]
fn tls13_padded_or_coalesced_closes_are_unknown_unless_the_size_rules_them_out() {
    let mut t = keeping();
    // JSSE: data, user_canceled and close_notify, 35 bytes each padded,
    // in the FIN segment.
    let mut c = conn(&mut t, 1000);
    handshake13(&mut c, false);
    c.close_with(false, TCP_FIN | TCP_ACK, 101 + 40 + 40, 35);
    // A response and FIN in one segment: no close_notify.
    let mut c = conn(&mut t, 1001);
    handshake13(&mut c, false);
    c.close_with(false, TCP_FIN | TCP_ACK, 173, LAST_RECORD_LONGER);
    // The end of a longer record, too short to rule a padded one out.
    let mut c = conn(&mut t, 1002);
    handshake13(&mut c, false);
    c.close_with(false, TCP_FIN | TCP_ACK, 30, LAST_RECORD_LONGER);
    // Data and close_notify in the FIN segment.
    let mut c = conn(&mut t, 1003);
    handshake13(&mut c, false);
    c.close_with(false, TCP_FIN | TCP_ACK, 400, 19);
    let r = records(&mut t);
    let server: Vec<_> = r.iter().map(|r| r.close_server).collect();
    assert_eq!(
        server,
        [
            CloseStyle::Unknown,
            CloseStyle::Unclean,
            CloseStyle::Unknown,
            CloseStyle::Clean
        ]
    );
}

#[test]
fn a_side_reset_after_its_close_notify_closed_cleanly() {
    // The load client's close_notify, then HAProxy's RST: the client
    // sends no FIN, its last record was the close_notify.
    let mut t = keeping();
    let mut c = conn(&mut t, 1000);
    c.client_dir = Direction::INGRESS;
    handshake13(&mut c, false);
    c.short(false, 19);
    c.close(false, TCP_FIN | TCP_ACK);
    c.short(true, 19);
    c.close(false, TCP_RST);
    let r = records(&mut t);
    assert_eq!(closes(&r[0]), (CloseStyle::Clean, CloseStyle::Clean));
}

#[test]
fn tls12_closes_are_per_side() {
    let mut t = keeping();
    full12(&mut t, 1000, &[], &[7; 32]);
    let mut c = conn(&mut t, 1000);
    c.ms = 50_000;
    c.client(&items(&[ENC_ALERT]));
    c.close(true, TCP_FIN | TCP_ACK);
    c.close(false, TCP_FIN | TCP_ACK);
    // An encrypted alert behind data, found at the end of a FIN segment.
    full12(&mut t, 1001, &[], &[8; 32]);
    let mut c = conn(&mut t, 1001);
    c.ms = 60_000;
    c.close_with(true, TCP_FIN | TCP_ACK, 300, 0x1a | LAST_RECORD_ALERT);
    c.close(false, TCP_RST | TCP_ACK);
    let s = stats(&t);
    assert_eq!((s.clean_closes, s.unclean_closes), (2, 0));
    let r = records(&mut t);
    assert_eq!(closes(&r[0]), (CloseStyle::Clean, CloseStyle::Unclean));
    assert_eq!(closes(&r[1]), (CloseStyle::Clean, CloseStyle::Unclean));
}
