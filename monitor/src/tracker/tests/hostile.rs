//! Hostile input (issue 14): packets that cannot belong to a real exchange
//! count nothing, and nothing a peer sends grows the tracker without bound.

use super::*;

/// A frontend connection: the hello arrives, the server's packets leave.
fn frontend(t: &mut Tracker, cport: u16) -> Conn12<'_> {
    let mut c = conn(t, cport);
    c.client_dir = Direction::INGRESS;
    c
}

fn handshakes(t: &Tracker) -> u64 {
    t.servers()
        .iter()
        .map(|s| s.handshakes() + s.incomplete + s.failed)
        .sum()
}

fn after_timeout(t: &mut Tracker) {
    t.tick(u64::MAX / 4);
}

#[test]
fn an_off_path_forgery_counts_nothing() {
    // Issue 14: a ClientHello offering a PSK and a spoofed ServerHello that
    // rejects it, both sent from off-path to a port with no listener. The
    // forger knows the sequence numbers it chose, so the ServerHello even
    // acknowledges the hello; but it arrives, where a real one would leave.
    let mut t = Tracker::new(Limits::default());
    for port in 0..40 {
        let mut c = frontend(&mut t, 1000 + port);
        c.client(&ch(&[4; 32], hf::OFFERS_TLS13 | hf::PSK, 0));
        let mut forged = c.header(false, TCP_ACK, PAYLOAD);
        forged.direction = Direction::INGRESS.0;
        c.t.on_tls(&forged, &sh(&[4; 32], 0x0304, 0, &[CCS]));
    }
    assert!(t.servers().is_empty(), "{:?}", t.servers());
    assert_eq!(t.totals.wrong_direction, 40);
    after_timeout(&mut t);
    assert_eq!((t.totals.unanswered_hellos, t.connections()), (40, 0));
    assert!(t.servers().is_empty());
}

#[test]
fn a_server_hello_must_acknowledge_the_hello() {
    let mut t = Tracker::new(Limits::default());
    let mut c = conn(&mut t, 1000);
    c.client(&ch(&[], 0, 0));
    // Blind: the forger does not know where the hello ended.
    let mut blind = c.header(false, TCP_ACK, PAYLOAD);
    blind.ack = blind.ack.wrapping_add(1 << 20);
    c.t.on_tls(&blind, &sh(&[1; 32], 0x0303, 0, &[CERT, SHD]));
    // Without ACK it acknowledges nothing.
    let mut no_ack = c.header(false, 0, PAYLOAD);
    no_ack.ack = blind.ack.wrapping_sub(1 << 20);
    c.t.on_tls(&no_ack, &sh(&[1; 32], 0x0303, 0, &[CERT, SHD]));
    assert!(c.t.servers().is_empty());
    assert_eq!(c.t.totals.unacknowledged, 2);
    // The real one is counted.
    c.server(&sh(&[1; 32], 0x0303, 0, &[CERT, SHD]));
    c.client(&items(&[0x1610, CCS, FIN_MSG]));
    c.server(&items(&[CCS, FIN_MSG]));
    assert_eq!(stats(&t).full, 1);
}

#[test]
fn hellos_to_closed_ports_leave_nothing_behind() {
    // Issue 14: 20,000 ClientHellos, each to a port nobody listens on.
    const N: u16 = 20_000;
    let mut t = Tracker::new(Limits::default());
    let hello = |t: &mut Tracker, port: u16, ms: u64| {
        let mut h = hdr((9, 50_000), (1, port), Direction::INGRESS, ms, TCP_ACK);
        (h.seq, h.ack, h.payload_len) = (u32::from(port) << 12, 77_777, 517);
        t.on_tls(&h, &ch(&[], hf::OFFERS_TLS13, 0));
        h
    };
    // Answered by this host's TCP stack with a reset without ACK that
    // takes its sequence number from the hello's acknowledgment number
    // (RFC 9293 §3.10.7.1).
    for port in 1..=N {
        let h = hello(&mut t, port, 1);
        let mut rst = hdr((1, port), (9, 50_000), Direction::EGRESS, 1, TCP_RST);
        rst.seq = h.ack;
        t.on_teardown(&rst);
    }
    assert!(t.servers().is_empty());
    assert_eq!(
        (t.connections(), t.totals.unanswered_hellos),
        (0, u64::from(N))
    );
    // Dropped by a firewall instead: no answer at all, until the timeout.
    for port in 1..=N {
        hello(&mut t, port, 2);
    }
    assert_eq!(t.connections(), usize::from(N));
    after_timeout(&mut t);
    assert!(t.servers().is_empty());
    assert_eq!(
        (t.connections(), t.totals.unanswered_hellos),
        (0, 2 * u64::from(N))
    );
    // What stays is bounded: the connection table gave its memory back,
    // and at most `max_timed_out` wait for a late answer.
    assert_eq!(t.conns.capacity(), 0);
    assert_eq!(
        t.totals.evicted_timed_out,
        u64::from(N) - Limits::default().max_timed_out as u64
    );
}

#[test]
fn a_download_that_looks_like_hellos_makes_no_server() {
    // This host downloads a file over plain HTTP; its content has
    // segments that begin like ClientHellos. They arrive from the remote
    // server's port 80 at this host's ephemeral port 40000.
    let mut t = Tracker::new(Limits::default());
    let remote = (2, 80);
    let mut seq = 5000u32;
    for ms in 0..10 {
        let mut h = hdr(remote, CLIENT, Direction::INGRESS, ms, TCP_ACK);
        (h.seq, h.ack, h.payload_len) = (seq, 900, 1448);
        seq += 1448;
        t.on_tls(&h, &ch(&[], 0, 0));
    }
    // The download ends: the remote FIN, then this host's FIN, which
    // acknowledges everything.
    let mut fin = hdr(remote, CLIENT, Direction::INGRESS, 11, TCP_FIN | TCP_ACK);
    (fin.seq, fin.ack) = (seq, 900);
    t.on_teardown(&fin);
    let mut fin = hdr(CLIENT, remote, Direction::EGRESS, 12, TCP_FIN | TCP_ACK);
    (fin.seq, fin.ack) = (900, seq + 1);
    t.on_teardown(&fin);
    after_timeout(&mut t);
    assert!(t.servers().is_empty(), "{:?}", t.servers());
    assert_eq!(handshakes(&t), 0);
}

#[test]
fn a_backend_that_closes_without_a_word_of_tls_shows_up_as_failing() {
    let mut t = Tracker::new(Limits::default());
    let mut c = conn(&mut t, 1000);
    c.client(&ch(&[], 0, 0));
    c.close(false, TCP_FIN | TCP_ACK);
    let s = stats(&t);
    assert_eq!((s.incomplete, s.full), (1, 0));
    assert_eq!(t.totals.unanswered_hellos, 0);
}

#[test]
fn timed_out_handshakes_leave_the_table() {
    let mut t = Tracker::new(Limits::default());
    for port in 0..500 {
        conn(&mut t, 1000 + port).client(&ch(&[], 0, 0));
    }
    assert_eq!(t.connections(), 500);
    after_timeout(&mut t);
    assert_eq!(t.connections(), 0);
}

#[test]
fn evicted_flows_counts_only_live_flows() {
    let mut t = Tracker::new(Limits {
        max_connections: 2,
        ..Limits::default()
    });
    full12(&mut t, 1000, &[], &[7; 32]);
    conn(&mut t, 1000).close(true, TCP_RST | TCP_ACK);
    conn(&mut t, 1001).client(&ch(&[], 0, 0));
    // The closed one makes room: it only waited for its peer's FIN or RST.
    conn(&mut t, 1002).client(&ch(&[], 0, 0));
    assert_eq!((t.connections(), t.totals.evicted_flows), (2, 0));
    // A live one does not go unnoticed.
    conn(&mut t, 1003).client(&ch(&[], 0, 0));
    assert_eq!((t.connections(), t.totals.evicted_flows), (2, 1));
}

#[test]
fn servers_are_bounded_and_the_idlest_evicted() {
    let mut t = Tracker::new(Limits {
        max_servers: 2,
        ..Limits::default()
    });
    for port in [1000, 1001, 1002] {
        let mut c = conn(&mut t, port);
        let server = (3, port);
        c.ms = u64::from(port);
        let mut h = c.header(true, TCP_ACK, PAYLOAD);
        h.dst_port = server.1;
        c.t.on_tls(&h, &ch(&[], 0, 0));
        let mut h = c.header(false, TCP_ACK, PAYLOAD);
        h.src_port = server.1;
        c.t.on_tls(&h, &sh(&[], 0x0304, 0, &[]));
    }
    let ports: Vec<u16> = t.servers().iter().map(|s| s.server.port).collect();
    assert_eq!(ports, [1001, 1002]);
    assert_eq!(t.totals.evicted_servers, 1);
}

#[test]
fn without_direction_only_sequence_numbers_are_checked_and_the_summary_says_so() {
    let mut t = Tracker::new(Limits::default());
    let mut c = conn(&mut t, 1000);
    c.client_dir = Direction::UNKNOWN;
    c.client(&ch(&[], 0, 0));
    let mut blind = c.header(false, TCP_ACK, PAYLOAD);
    blind.direction = Direction::UNKNOWN.0;
    blind.ack = blind.ack.wrapping_sub(1);
    c.t.on_tls(&blind, &sh(&[], 0x0304, 0, &[]));
    let mut real = c.header(false, TCP_ACK, PAYLOAD);
    real.direction = Direction::UNKNOWN.0;
    c.t.on_tls(&real, &sh(&[], 0x0304, 0, &[]));
    assert_eq!((t.totals.unacknowledged, stats(&t).full), (1, 1));
    assert_eq!(t.totals.direction_unchecked, 1);
    let line = crate::report::summary_line(&t, None, &serde_json::json!({}), 0.0);
    assert_eq!(line["direction_checked"], false);
    assert_eq!(line["skipped"]["unacknowledged"], 1);
}

#[test]
fn names_the_kernel_cut_are_shown_as_cut() {
    // A 300-byte SNI: the kernel keeps 64 bytes and sets NAME_CUT; a
    // reader must not take the 64 bytes for the name the client sent.
    let long = [b'a'; monitor_common::event::SNI_MAX];
    let mut t = Tracker::new(Limits::default());
    let mut c = conn(&mut t, 1000);
    c.client(
        &Summary::client_hello()
            .flags(hf::NAME_CUT)
            .sni(&long)
            .alpn(b"h2")
            .build(),
    );
    c.server(&sh(&[1; 32], 0x0303, 0, &[CERT]));
    c.client(&items(&[0x1610, CCS, FIN_MSG]));
    c.server(&items(&[CCS, FIN_MSG]));
    let s = stats(&t);
    let sni: Vec<_> = s
        .sni
        .top(1)
        .into_iter()
        .map(|(v, _)| v.to_owned())
        .collect();
    assert_eq!(sni, [format!("{}…", "a".repeat(long.len()))]);
    // The short ALPN beside it was not cut.
    assert_eq!(s.alpn.top(1), [("h2", 1)]);
}
