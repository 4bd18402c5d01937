//! The tracker driven event by event, as the kernel reports them: the
//! classification rules, hostile input (issue 14) and what captures from
//! the wild show (issue 17).

mod causes;
mod classification;
mod closes;
mod hostile;
mod wild;

use monitor_common::{
    event::{Direction, EventHeader, TlsSummary, hello_flags as hf},
    net::{TCP_ACK, TCP_FIN, TCP_RST},
};

use super::*;
use crate::stats::ByMethod;

pub(super) const CLIENT: (u8, u16) = (1, 40000);
pub(super) const SERVER: (u8, u16) = (2, 443);
pub(super) const CCS: u16 = 0x1401;
pub(super) const CERT: u16 = 0x160b;
pub(super) const SHD: u16 = 0x160e;
pub(super) const NST: u16 = 0x1604;
pub(super) const FIN_MSG: u16 = 0x16ff;
pub(super) const ENC_ALERT: u16 = 0x15ff;

pub(super) fn hdr(
    src: (u8, u16),
    dst: (u8, u16),
    dir: Direction,
    ms: u64,
    flags: u8,
) -> EventHeader {
    let mut h = EventHeader {
        family: 4,
        direction: dir.0,
        tcp_flags: flags,
        src_port: src.1,
        dst_port: dst.1,
        ts_ns: ms * 1_000_000,
        ..EventHeader::default()
    };
    h.src_addr[..4].copy_from_slice(&[10, 0, 0, src.0]);
    h.dst_addr[..4].copy_from_slice(&[10, 0, 0, dst.0]);
    h
}

pub(super) fn items(list: &[u16]) -> TlsSummary {
    let mut t = TlsSummary::default();
    for &i in list {
        t.push((i >> 8) as u8, (i & 0xff) as u8);
    }
    t
}

pub(super) fn ch(sid: &[u8], flags: u16, ticket: u8) -> TlsSummary {
    let mut t = items(&[0x1601]);
    t.hello.flags = hf::CLIENT_HELLO | flags;
    t.hello.legacy_version = 0x0303;
    t.hello.session_id[..sid.len()].copy_from_slice(sid);
    t.hello.session_id_len = u8::try_from(sid.len()).unwrap();
    t.hello.ticket_id = [ticket; 16];
    t
}

pub(super) fn sh(sid: &[u8], version: u16, flags: u16, rest: &[u16]) -> TlsSummary {
    let mut list = vec![0x1602];
    list.extend_from_slice(rest);
    let mut t = items(&list);
    t.hello.flags = hf::SERVER_HELLO | flags;
    t.hello.legacy_version = 0x0303;
    t.hello.selected_version = if version == 0x0304 { version } else { 0 };
    t.hello.cipher_suite = 0xc02f;
    t.hello.session_id[..sid.len()].copy_from_slice(sid);
    t.hello.session_id_len = u8::try_from(sid.len()).unwrap();
    t
}

/// Bytes each TLS event of [`Conn12`] carries.
pub(super) const PAYLOAD: u32 = 100;

/// One connection from port `cport`, its packets as the kernel reports
/// them: each side's sequence numbers advance by what it sent, and every
/// packet acknowledges what the other side sent. The client's packets
/// leave this host (a backend connection) unless `client_dir` says
/// otherwise.
pub(super) struct Conn12<'a> {
    pub(super) t: &'a mut Tracker,
    pub(super) cport: u16,
    pub(super) ms: u64,
    pub(super) client_dir: Direction,
    /// Next sequence number of the client and of the server.
    pub(super) next: [u32; 2],
}

impl Conn12<'_> {
    pub(super) fn c(&self) -> (u8, u16) {
        (CLIENT.0, self.cport)
    }
    pub(super) fn header(&mut self, from_client: bool, flags: u8, len: u32) -> EventHeader {
        self.ms += 1;
        let server_dir = if self.client_dir == Direction::EGRESS {
            Direction::INGRESS
        } else {
            Direction::EGRESS
        };
        let (src, dst, dir, me) = if from_client {
            (self.c(), SERVER, self.client_dir, 0)
        } else {
            (SERVER, self.c(), server_dir, 1)
        };
        let mut h = hdr(src, dst, dir, self.ms, flags);
        h.seq = self.next[me];
        h.ack = self.next[1 - me];
        h.payload_len = len;
        self.next[me] = self.next[me].wrapping_add(len + u32::from(flags & TCP_FIN != 0));
        h
    }
    pub(super) fn client(&mut self, s: &TlsSummary) {
        let h = self.header(true, TCP_ACK, PAYLOAD);
        self.t.on_tls(&h, s);
    }
    pub(super) fn server(&mut self, s: &TlsSummary) {
        let h = self.header(false, TCP_ACK, PAYLOAD);
        self.t.on_tls(&h, s);
    }
    pub(super) fn close(&mut self, from_client: bool, flags: u8) {
        let h = self.header(from_client, flags, 0);
        self.t.on_teardown(&h);
    }
}

pub(super) fn conn(t: &mut Tracker, cport: u16) -> Conn12<'_> {
    let isn = u32::from(cport) * 100_000;
    Conn12 {
        t,
        cport,
        ms: u64::from(cport) * 10,
        client_dir: Direction::EGRESS,
        next: [isn, isn ^ 0x8000_0000],
    }
}

pub(super) fn full12(t: &mut Tracker, cport: u16, offer_sid: &[u8], issued: &[u8]) {
    let mut c = conn(t, cport);
    c.client(&ch(offer_sid, 0, 0));
    c.server(&sh(issued, 0x0303, 0, &[CERT, SHD]));
    c.client(&items(&[0x1610, CCS, FIN_MSG]));
    c.server(&items(&[CCS, FIN_MSG]));
}

pub(super) fn stats(t: &Tracker) -> ServerStats {
    t.servers()[0].clone()
}
