//! How many events per second the tracker handles on one core.
//!
//! The events are what the kernel program sends for a proxy's mixed
//! traffic: TLS 1.2 full handshakes that issue a session ID and a ticket,
//! TLS 1.2 resumptions of those sessions, TLS 1.3 full and PSK handshakes,
//! and their closes (close_notify + FIN, FIN, some RST). One benchmark
//! iteration is one simulated second at 10,000 handshakes per second,
//! ending with the once-a-second `tick` the daemon runs, and the tracker
//! carries over from one iteration to the next, so the tables stay at
//! their steady-state size instead of starting empty.
//!
//! * `tracker/mix`: connections last 30 ms, so a resumption offers the
//!   session of a connection that has closed (the headline number,
//!   `cargo xtask bench` reports it).
//! * `tracker/mix_keepalive`: connections last 3 s, so a resumption offers
//!   the session of a connection that is still open, as browsers opening
//!   parallel connections and proxies' connection pools do.

use std::hint::black_box;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use monitor::tracker::{Limits, Tracker};
use monitor_common::{
    emit::event::{
        self as ev, Summary,
        items::{
            APPLICATION_DATA as APP_DATA, CERTIFICATE, CHANGE_CIPHER_SPEC as CCS,
            CLIENT_KEY_EXCHANGE, ENCRYPTED_ALERT, ENCRYPTED_HANDSHAKE,
            NEW_SESSION_TICKET as NEW_TICKET, SERVER_HELLO_DONE, SERVER_KEY_EXCHANGE,
        },
    },
    event::{Decoded, Direction, EventHeader, TlsSummary, hello_flags as hf},
    net::{TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST},
};

/// Simulated time of one iteration.
const ROUND_NS: u64 = 1_000_000_000;
const HANDSHAKES_PER_ROUND: u32 = 10_000;
const SERVERS: u32 = 8;
/// Round trip between the client's and the server's flights.
const RTT_NS: u64 = 500_000;

/// One event of the workload. Addresses get the round number patched in
/// when it is replayed, so each simulated second has its own clients.
struct Ev {
    event: Decoded,
    /// Sent by the client (its source address is patched) or the server.
    from_client: bool,
    /// Offset within the round.
    at_ns: u64,
    /// How many rounds after its connection's ClientHello this event falls.
    lag: u64,
}

#[derive(Clone, Copy)]
enum Kind {
    Tls12Full,
    Tls12Resumed,
    Tls13Full,
    Tls13Psk,
}

/// Ten handshakes in a row: 4 TLS 1.2 full, 3 TLS 1.2 resumed, 2 TLS 1.3
/// full, 1 TLS 1.3 PSK.
fn kind(i: u32) -> Kind {
    match i % 10 {
        0 | 2 | 4 | 7 => Kind::Tls12Full,
        1 | 5 | 8 => Kind::Tls12Resumed,
        3 | 9 => Kind::Tls13Full,
        _ => Kind::Tls13Psk,
    }
}

fn session_id(i: u32) -> [u8; 32] {
    let mut s = [0x5a; 32];
    s[..4].copy_from_slice(&i.to_be_bytes());
    s
}

fn summary(items: &[u16]) -> TlsSummary {
    Summary::items(items).build()
}

fn client_hello(sid: Option<[u8; 32]>, flags: u16) -> TlsSummary {
    let mut t = Summary::client_hello()
        .flags(hf::TICKET_EXT | flags)
        .sni(b"api.backend.example")
        .alpn(b"h2")
        .extensions(16);
    if let Some(sid) = sid {
        t = t.session_id(&sid);
    }
    t.build()
}

/// A ServerHello, then the rest of the flight.
fn server_hello(rest: &[u16], sid: [u8; 32], version: u16, flags: u16) -> TlsSummary {
    let tls13 = version == 0x0304;
    Summary::server_hello(rest)
        .flags(flags)
        .selected_version(if tls13 { version } else { 0 })
        .cipher_suite(if tls13 { 0x1301 } else { 0xc02f })
        .session_id(&sid)
        .build()
}

/// The events of handshake `i` of a round, with connections that stay
/// open `lifetime_ns` and resumptions that offer the session of the full
/// handshake `resume_back` handshakes earlier (a multiple of
/// `10 * SERVERS`).
#[expect(clippy::too_many_lines, reason = "one connection's events, in order")]
fn connection(i: u32, lifetime_ns: u64, resume_back: u32, out: &mut Vec<Ev>) {
    let start = u64::from(i) * (ROUND_NS / u64::from(HANDSHAKES_PER_ROUND));
    let client_port = u16::try_from(1024 + i % 60_000).expect("port");
    // Groups of ten handshakes per server, so a resumption (a multiple of
    // ten handshakes after its origin) goes to the server that issued it.
    let server = [
        10,
        2,
        0,
        u8::try_from(1 + i / 10 % SERVERS).expect("few servers"),
    ];
    let client = [10, 64, u8::try_from(i / 60_000).expect("few clients"), 1];
    // Half the handshakes arrive from the Internet (frontend), half are the
    // proxy's own to its backends.
    let client_dir = if i.is_multiple_of(2) {
        Direction::INGRESS
    } else {
        Direction::EGRESS
    };
    let server_dir = if i.is_multiple_of(2) {
        Direction::EGRESS
    } else {
        Direction::INGRESS
    };
    let mut push = |step: u64, from_client: bool, flags: u8, tls: Option<TlsSummary>| {
        let at = start + step;
        let (src, dst) = if from_client {
            ((client, client_port), (server, 443))
        } else {
            ((server, 443), (client, client_port))
        };
        let h = EventHeader {
            direction: if from_client { client_dir } else { server_dir }.0,
            tcp_flags: flags,
            ..ev::header(src.into(), dst.into())
        };
        out.push(Ev {
            event: match tls {
                Some(t) => ev::tls(h, t),
                None => ev::teardown(h),
            },
            from_client,
            at_ns: at % ROUND_NS,
            lag: at / ROUND_NS,
        });
    };
    let data = TCP_ACK | TCP_PSH;
    let origin = i
        .checked_sub(resume_back)
        .unwrap_or(i + HANDSHAKES_PER_ROUND - resume_back);
    let origin = origin - origin % 10; // a TLS 1.2 full handshake
    let tls12 = match kind(i) {
        Kind::Tls12Full => {
            push(0, true, data, Some(client_hello(None, 0)));
            let flight = [CERTIFICATE, SERVER_KEY_EXCHANGE, SERVER_HELLO_DONE];
            push(
                RTT_NS,
                false,
                data,
                Some(server_hello(&flight, session_id(i), 0x0303, hf::TICKET_EXT)),
            );
            let fin = [CLIENT_KEY_EXCHANGE, CCS, ENCRYPTED_HANDSHAKE];
            push(2 * RTT_NS, true, data, Some(summary(&fin)));
            let mut ticket = [0; 16];
            ticket[..4].copy_from_slice(&i.to_be_bytes());
            let nst = Summary::items(&[NEW_TICKET, CCS, ENCRYPTED_HANDSHAKE])
                .flags(hf::NEW_TICKET)
                .ticket_id(ticket);
            push(3 * RTT_NS, false, data, Some(nst.build()));
            true
        }
        Kind::Tls12Resumed => {
            let sid = session_id(origin);
            push(0, true, data, Some(client_hello(Some(sid), 0)));
            let flight = [CCS, ENCRYPTED_HANDSHAKE];
            push(
                RTT_NS,
                false,
                data,
                Some(server_hello(&flight, sid, 0x0303, 0)),
            );
            push(
                2 * RTT_NS,
                true,
                data,
                Some(summary(&[CCS, ENCRYPTED_HANDSHAKE])),
            );
            true
        }
        k @ (Kind::Tls13Full | Kind::Tls13Psk) => {
            let psk = if matches!(k, Kind::Tls13Psk) {
                hf::PSK
            } else {
                0
            };
            let sid = session_id(i);
            push(
                0,
                true,
                data,
                Some(client_hello(Some(sid), hf::OFFERS_TLS13 | psk)),
            );
            let flight = [CCS, APP_DATA, APP_DATA];
            push(
                RTT_NS,
                false,
                data,
                Some(server_hello(&flight, sid, 0x0304, psk)),
            );
            push(2 * RTT_NS, true, data, Some(summary(&[CCS, APP_DATA])));
            false
        }
    };
    // The end: close_notify with FIN (RFC 5246 §7.2.1) and the peer's FIN,
    // or for one TLS 1.2 connection in four a bare RST.
    let end = lifetime_ns;
    if tls12 && i % 4 == 3 {
        push(end, true, TCP_RST | TCP_ACK, None);
    } else if tls12 {
        push(
            end,
            true,
            TCP_FIN | TCP_ACK,
            Some(summary(&[ENCRYPTED_ALERT])),
        );
        push(end + RTT_NS, false, TCP_FIN | TCP_ACK, None);
    } else {
        push(end, true, TCP_FIN | TCP_ACK, None);
        push(end + RTT_NS, false, TCP_FIN | TCP_ACK, None);
    }
}

/// One round's events in time order.
fn workload(lifetime_ns: u64, resume_back: u32) -> Vec<Ev> {
    let mut v = Vec::new();
    for i in 0..HANDSHAKES_PER_ROUND {
        connection(i, lifetime_ns, resume_back, &mut v);
    }
    v.sort_by_key(|e| e.at_ns);
    v
}

/// Feeds one round: timestamps moved to the round, client addresses to the
/// round the connection started in (16 rounds before any reuse, well past
/// the tracker's 5-second linger).
fn replay(tracker: &mut Tracker, events: &[Ev], round: u64) {
    let base = round * ROUND_NS;
    for ev in events {
        let started = round.wrapping_sub(ev.lag);
        let client_octet = 64 + (started % 16) as u8;
        let fix = |h: &EventHeader| {
            let mut h = *h;
            h.ts_ns = base + ev.at_ns;
            if ev.from_client {
                h.src_addr[1] = client_octet;
            } else {
                h.dst_addr[1] = client_octet;
            }
            h
        };
        // Through `on_event`, as the daemon feeds it.
        tracker.on_event(match &ev.event {
            Decoded::Tls(h, t) => Decoded::Tls(fix(h), *t),
            Decoded::Teardown(h) => Decoded::Teardown(fix(h)),
            Decoded::Chunk(h, c) => Decoded::Chunk(fix(h), c.clone()),
        });
    }
    tracker.tick(base + ROUND_NS);
}

/// A tracker that has seen 8 rounds (its tables at their working size),
/// and the next round number.
fn warmed_up(events: &[Ev]) -> (Tracker, u64) {
    let mut tracker = Tracker::new(Limits::default());
    // Rounds start at 16 so `round - lag` never wraps.
    let mut round = 16;
    for _ in 0..8 {
        replay(&mut tracker, events, round);
        round += 1;
    }
    let counted: u64 = tracker.servers().iter().map(|s| s.handshakes()).sum();
    assert!(counted > 0, "the workload completed no handshake");
    (tracker, round)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("tracker");
    for (name, lifetime_ns, resume_back) in [
        ("mix", 30_000_000, 400),
        ("mix_keepalive", 3_000_000_000, 80),
    ] {
        let events = workload(lifetime_ns, resume_back);
        group.throughput(Throughput::Elements(events.len() as u64));
        if name == "mix_keepalive" {
            // Seconds per iteration: the fewest samples criterion takes.
            group.sample_size(10).sampling_mode(SamplingMode::Flat);
        }
        // Set up on first use, so a benchmark filtered out on the command
        // line costs nothing.
        let mut state = None;
        group.bench_function(name, |b| {
            let (tracker, round) = state.get_or_insert_with(|| warmed_up(&events));
            b.iter(|| {
                replay(tracker, black_box(&events), *round);
                *round += 1;
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
