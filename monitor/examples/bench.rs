//! The measuring half of `cargo xtask bench`: each subcommand prints one
//! JSON object on stdout, and xtask assembles them into the report.
//!
//! ```text
//! bench kernel [--quick]   cost of the classifier per packet, against the
//!                          return-only baseline program, in BPF_PROG_TEST_RUN
//! bench rss                resident memory of the tracker holding 100k and 1M
//!                          connections (each in a fresh child process)
//! bench soak [--quick] [--rate N] [--seconds S] [--metrics]
//!                          complete TLS 1.2 handshakes through the kernel
//!                          program at 20,000/s while the daemon's own loop
//!                          reads them (bench/soak.rs): are events lost, and
//!                          what does the daemon spend per handshake?
//! bench replay [--quick]  packets per second through `tlsmon replay`'s host
//!                          engine, on the fixture captures repeated
//! bench replay-capture PATH MIB
//!                          writes such a capture of at least MIB MiB
//! bench in-place IF...     attaches the return-only baseline program to
//!                          the interfaces, with the kernel's BPF run-time
//!                          statistics on, until SIGINT or SIGTERM: what a
//!                          program that does nothing costs per run on a
//!                          live host, to set against tlsmon's
//!                          `--kernel-cost` there
//! ```
//!
//! `kernel`, `soak` and `in-place` load the eBPF program and need root.

use std::{
    env,
    io::Write as _,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
use aya::{
    Ebpf,
    maps::{MapData, RingBuf},
    programs::{SchedClassifier, TcAttachType, TestRun as _, TestRunOptions},
};
use monitor::kernel::{self, BASELINE, EGRESS, INGRESS, SPLIT};
use monitor_common::{
    emit::{
        self, EthernetRepr, Frame, IpRepr, Ipv4Repr, TcpRepr, tcp_option,
        tls::{self, ClientHello, Extension, ServerHello, handshake, record},
    },
    event::{Decoded, TlsEvent, decode, hello_flags},
    net::{TCP_ACK, TCP_PSH, TCP_RST},
    tls::{ContentType, HandshakeType},
    tunnel::VXLAN_PORT,
};
use serde_json::{Value, json};

#[path = "bench/replay.rs"]
mod replay;
#[path = "bench/rss.rs"]
mod rss;
#[path = "bench/soak.rs"]
mod soak;

const USAGE: &str = "usage: bench kernel|replay [--quick] | bench rss | \
                     bench soak [--quick] [--rate N] [--seconds S] [--metrics] | \
                     bench replay-capture PATH MIB | bench in-place IF...";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let out = match args.first().map(String::as_str) {
        Some("kernel") => kernel_costs(quick)?,
        Some("rss") => rss::rss()?,
        Some("rss-child") => {
            let n = args
                .get(1)
                .context("rss-child needs a connection count")?
                .parse()
                .context("rss-child: connection count")?;
            rss::rss_child(n)
        }
        Some("soak") => soak::run(&soak::Options::parse(&args[1..])?)?,
        Some("replay") => replay::run(quick)?,
        Some("replay-capture") if args.len() == 3 => replay::capture(
            std::path::Path::new(&args[1]),
            args[2].parse().context("replay-capture: MiB")?,
        )?,
        Some("in-place") if args.len() > 1 => in_place(&args[1..])?,
        _ => bail!(USAGE),
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{out}")?;
    Ok(())
}

// ---- in place ----------------------------------------------------------------

/// See the module comment. Prints `{"run_ns", "runs"}` once stopped.
fn in_place(ifaces: &[String]) -> anyhow::Result<Value> {
    kernel::preflight()?;
    // Blocked before anything else, so that the signal waits for `sigwait`
    // instead of killing the process.
    // SAFETY: a zeroed sigset_t is a valid argument to sigemptyset, and the
    // set lives across both calls.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut set);
        libc::sigaddset(&raw mut set, libc::SIGINT);
        libc::sigaddset(&raw mut set, libc::SIGTERM);
        ensure!(
            libc::pthread_sigmask(libc::SIG_BLOCK, &raw const set, std::ptr::null_mut()) == 0,
            "blocking SIGINT and SIGTERM"
        );
        set
    };
    let mut ebpf = kernel::load(1 << 20)?;
    let _stats = kernel::enable_cost_stats()?;
    for iface in ifaces {
        kernel::attach_as(
            &mut ebpf,
            iface,
            [
                (BASELINE, TcAttachType::Ingress),
                (BASELINE, TcAttachType::Egress),
            ],
        )?;
    }
    // The phrase the lab's watchers are waited for by.
    eprintln!("bench: baseline attached to {}", ifaces.join(", "));
    let mut sig = 0;
    // SAFETY: `set` is initialised above; `sig` is a valid out-pointer.
    unsafe { libc::sigwait(&raw const set, &raw mut sig) };
    let info = ebpf
        .program(BASELINE)
        .context("baseline program missing")?
        .info()?;
    Ok(json!({
        "run_ns": u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX),
        "runs": info.run_count(),
    }))
}

// ---- frames ------------------------------------------------------------------

const CLIENT_IP: [u8; 4] = [10, 1, 0, 1];
const SERVER_IP: [u8; 4] = [10, 2, 0, 1];
const CLIENT_PORT: u16 = 40_000;
const SERVER_PORT: u16 = 443;
const SNI: &[u8] = b"api.backend.example";
/// The client's and the server's first sequence numbers.
const ISN: [u32; 2] = [0x1000_0000, 0x2000_0000];

/// Bytes that look random (encrypted records, keys, signatures).
fn noise(n: usize, seed: u8) -> Vec<u8> {
    let mut x = 0x2545_f491_u32 ^ u32::from(seed);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

fn random(seed: u8) -> [u8; 32] {
    noise(32, seed).try_into().expect("32 bytes")
}

/// The ClientHello of a current browser or proxy that speaks TLS 1.3 and
/// 1.2: SNI, ALPN, an empty session_ticket (it accepts tickets), key_share,
/// supported_versions, GREASE, padded to 512 bytes as Chrome pads.
fn client_hello_payload() -> Vec<u8> {
    let mut shares = vec![0x2a, 0x2a, 0, 1, 0];
    shares.extend_from_slice(&[0, 0x1d, 0, 32]);
    shares.extend(noise(32, 3));
    let mut hello = ClientHello {
        random: random(1),
        session_id: noise(32, 2), // legacy_session_id (RFC 8446 §D.4)
        cipher_suites: vec![
            0x0a0a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013,
            0xc014, 0x009c, 0x009d, 0x002f, 0x0035,
        ],
        extensions: vec![
            Extension::new(0x1a1a, &[]),
            Extension::server_name(SNI),
            Extension::new(23, &[]),      // extended_master_secret
            Extension::new(0xff01, &[0]), // renegotiation_info
            // supported_groups
            Extension::new(10, &tls::vec16(&[0x2a, 0x2a, 0, 0x1d, 0, 0x17, 0, 0x18])),
            Extension::new(11, &[1, 0]),    // ec_point_formats
            Extension::session_ticket(&[]), // no ticket: a full handshake
            Extension::alpn(&[b"h2", b"http/1.1"]),
            Extension::new(5, &[1, 0, 0, 0, 0]), // status_request
            // signature_algorithms
            Extension::new(
                13,
                &tls::vec16(&[4, 3, 8, 4, 4, 1, 5, 3, 8, 5, 5, 1, 8, 6, 6, 1]),
            ),
            Extension::new(18, &[]), // signed_certificate_timestamp
            Extension::new(51, &tls::vec16(&shares)), // key_share
            Extension::new(45, &[1, 1]), // psk_key_exchange_modes
            Extension::supported_versions(&[0x3a3a, 0x0304, 0x0303]),
            Extension::new(27, &[2, 0, 2]), // compress_certificate
            Extension::new(0x4a4a, &[0]),
        ],
        ..ClientHello::default()
    };
    hello.pad_to(512);
    hello.record()
}

/// A TLS 1.2 ECDHE-RSA server flight in one segment, the way OpenSSL
/// writes it: ServerHello, Certificate (one ~1000-byte certificate),
/// ServerKeyExchange, ServerHelloDone in one record, about 1400 bytes.
fn server_flight_payload() -> Vec<u8> {
    let hello = ServerHello {
        random: random(4),
        session_id: noise(32, 5), // a new session ID: a full handshake
        cipher_suite: 0xc02f,     // ECDHE-RSA-AES128-GCM-SHA256
        extensions: vec![
            Extension::new(0xff01, &[0]),
            Extension::new(11, &[1, 0]),
            Extension::session_ticket(&[]), // will send a NewSessionTicket
            Extension::new(23, &[]),
            Extension::alpn(&[b"h2"]),
        ],
        ..ServerHello::default()
    };
    let mut cert = vec![0x30, 0x82, 0x03, 0xe4];
    cert.extend(noise(996, 6));
    let mut ske = vec![3, 0, 0x1d]; // named_curve x25519
    ske.extend(tls::vec8(&noise(32, 7)));
    ske.extend_from_slice(&[8, 4]); // rsa_pss_rsae_sha256
    ske.extend(tls::vec16(&noise(256, 8)));
    tls::handshake_record(&[
        hello.message(),
        handshake(HandshakeType::CERTIFICATE.0, &tls::certificate(&[&cert])),
        handshake(HandshakeType::SERVER_KEY_EXCHANGE.0, &ske),
        handshake(HandshakeType::SERVER_HELLO_DONE.0, &[]),
    ])
}

/// The client's second flight: ClientKeyExchange, ChangeCipherSpec, and the
/// encrypted Finished.
fn client_finish_payload() -> Vec<u8> {
    let cke = handshake(
        HandshakeType::CLIENT_KEY_EXCHANGE.0,
        &tls::vec8(&noise(32, 9)),
    );
    let mut v = tls::handshake_record(&[cke]);
    v.extend(record(ContentType::CHANGE_CIPHER_SPEC.0, &[1]));
    v.extend(record(ContentType::HANDSHAKE.0, &noise(40, 10)));
    v
}

/// Length of the ticket in [`server_finish_payload`].
const TICKET_LEN: usize = 192;
/// The server's last flight: NewSessionTicket, ChangeCipherSpec, Finished.
fn server_finish_payload() -> Vec<u8> {
    let nst = tls::new_session_ticket(7200, &noise(TICKET_LEN, 11));
    let mut v = tls::handshake_record(&[handshake(HandshakeType::NEW_SESSION_TICKET.0, &nst)]);
    v.extend(record(ContentType::CHANGE_CIPHER_SPEC.0, &[1]));
    v.extend(record(ContentType::HANDSHAKE.0, &noise(40, 12)));
    v
}

/// The client's frame: Ethernet, IPv4 and TCP with the timestamp option
/// (RFC 7323 §3.2), as Linux sends them, checksums left zero (nothing on
/// this path checks them), sequence numbers [`ISN`].
fn headers(flags: u8) -> Frame {
    Frame {
        eth: EthernetRepr {
            dst: [0x02, 0, 0, 0, 0, 0x02],
            src: [0x02, 0, 0, 0, 0, 0x01],
            tags: Vec::new(),
        },
        ip: IpRepr::V4(Ipv4Repr {
            src: CLIENT_IP,
            dst: SERVER_IP,
            checksum: false,
            ..Ipv4Repr::default()
        }),
        tcp: TcpRepr {
            src_port: CLIENT_PORT,
            dst_port: SERVER_PORT,
            seq: ISN[0],
            ack: ISN[1],
            flags,
            window: 0x01f5,
            options: tcp_option::timestamps(0x1000, 0x2000).to_vec(),
        },
    }
}

fn to_server(flags: u8, payload: &[u8]) -> Vec<u8> {
    headers(flags).emit(payload)
}

fn to_client(flags: u8, payload: &[u8]) -> Vec<u8> {
    headers(flags).reply().emit(payload)
}

/// What the kernel program must make of a frame, checked once before it
/// is timed so the benchmark measures the path it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Nothing,
    ClientHello,
    ServerHello,
    Teardown,
}

struct Case {
    name: &'static str,
    frame: Vec<u8>,
    expect: Expect,
}

fn cases() -> Vec<Case> {
    let psh = TCP_ACK | TCP_PSH;
    let app = record(ContentType::APPLICATION_DATA.0, &noise(1400, 13));
    let http = b"GET /api/v1/items?page=2 HTTP/1.1\r\nHost: api.backend.example\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: application/json\r\nAccept-Encoding: gzip, deflate, br\r\n\
Connection: keep-alive\r\nCookie: session=4f1d2c3b5a69788796a5b4c3d2e1f00f\r\n\r\n";
    vec![
        Case {
            name: "app_data",
            frame: to_client(psh, &app),
            expect: Expect::Nothing,
        },
        Case {
            name: "non_tls",
            frame: to_server(psh, http),
            expect: Expect::Nothing,
        },
        // The same record as `app_data`, on an overlay's underlay: inside
        // VXLAN, through the general path and the tunnel parser.
        Case {
            name: "app_data_vxlan",
            frame: emit::udp_tunnel(VXLAN_PORT, &emit::vxlan(42, &to_client(psh, &app))),
            expect: Expect::Nothing,
        },
        Case {
            name: "client_hello",
            frame: to_server(psh, &client_hello_payload()),
            expect: Expect::ClientHello,
        },
        Case {
            name: "server_flight",
            frame: to_client(psh, &server_flight_payload()),
            expect: Expect::ServerHello,
        },
        Case {
            name: "rst",
            frame: to_server(TCP_RST | TCP_ACK, &[]),
            expect: Expect::Teardown,
        },
    ]
}

fn check(case: &Case, events: &[Decoded]) -> anyhow::Result<()> {
    let ok = match (case.expect, events) {
        (Expect::Nothing, []) | (Expect::Teardown, [Decoded::Teardown(_)]) => true,
        (Expect::ClientHello, [Decoded::Tls(_, t)]) => {
            let f = t.hello.flags;
            f & hello_flags::CLIENT_HELLO != 0
                && f & (hello_flags::TRUNCATED | hello_flags::MALFORMED) == 0
                && t.hello.sni[..usize::from(t.hello.sni_len)] == *SNI
        }
        (Expect::ServerHello, [Decoded::Tls(_, t)]) => {
            t.hello.flags & hello_flags::SERVER_HELLO != 0
                && t.items[..usize::from(t.n_items)] == [0x1602, 0x160b, 0x160c, 0x160e]
        }
        _ => false,
    };
    ensure!(
        ok,
        "frame {} ({} bytes) gave {events:?}, expected {:?}",
        case.name,
        case.frame.len(),
        case.expect
    );
    Ok(())
}

// ---- kernel --------------------------------------------------------------------

const ROUNDS: usize = 5;
/// Times the program is loaded afresh, each for `ROUNDS` rounds. In three
/// full runs with one load each, app_data came out at 1.2x, 1.4x and 1.5x
/// the baseline while each run's own rounds agreed closely: the JIT places
/// the program at a new address each time, and the machine's other work
/// differs. The median over several loads is what any load can expect.
const LOADS: usize = 3;
/// `tlsmon --ring-buffer-mb`'s default.
const DEFAULT_RING_BYTES: u32 = 8 << 20;

fn classifier<'a>(ebpf: &'a Ebpf, name: &str) -> anyhow::Result<&'a SchedClassifier> {
    Ok(ebpf
        .program(name)
        .with_context(|| format!("program {name} missing"))?
        .try_into()?)
}

/// One BPF_PROG_TEST_RUN; the kernel reports the mean time per repeat
/// (net/bpf/test_run.c, `bpf_test_timer_leave`), excluding the time the
/// loop spent rescheduled.
fn test_run(prog: &SchedClassifier, frame: &[u8], repeat: u32) -> anyhow::Result<Duration> {
    let r = prog
        .test_run(TestRunOptions {
            data_in: Some(frame),
            repeat,
            ..TestRunOptions::default()
        })
        .context("BPF_PROG_TEST_RUN")?;
    ensure!(
        r.return_value == kernel::NO_VERDICT,
        "program returned {} instead of TC_ACT_UNSPEC",
        r.return_value.cast_signed()
    );
    Ok(r.duration)
}

fn drain(ring: &mut RingBuf<MapData>) -> (u64, Vec<Decoded>) {
    let mut n = 0;
    let mut first = Vec::new();
    while let Some(item) = ring.next() {
        n += 1;
        if first.len() < 4 {
            first.extend(decode(&item));
        }
    }
    (n, first)
}

/// The kernel reports whole nanoseconds in a u32.
fn nanos(d: Duration) -> f64 {
    f64::from(u32::try_from(d.as_nanos()).unwrap_or(u32::MAX))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn kernel_costs(quick: bool) -> anyhow::Result<Value> {
    kernel::preflight()?;
    let repeat: u32 = if quick { 100_000 } else { 1_000_000 };
    let loads = if quick { 1 } else { LOADS };
    // Room for every event of one run, so each repeat measures a successful
    // reservation and not the full-ring path (the ring is drained after
    // every run). A record is the event plus the ring's 8-byte header.
    let record = size_of::<TlsEvent>().next_multiple_of(8) + 8;
    let ring_bytes = (record * usize::try_from(repeat)?)
        .next_power_of_two()
        .max(1 << 20);
    let cases = cases();
    // Per case: (baseline runs, program runs, events, lost events).
    let mut acc = vec![(Vec::new(), Vec::new(), 0, 0); cases.len()];
    // What loading costs tlsmon: its default ring, not this benchmark's.
    let mut load_seconds = Vec::new();
    let mut each = vec![Vec::new(); VERIFIED.len()];
    let mut programs = Value::Null;
    for _ in 0..loads {
        let started = Instant::now();
        let ebpf = kernel::load(DEFAULT_RING_BYTES)?;
        load_seconds.push(started.elapsed().as_secs_f64());
        for (runs, s) in each.iter_mut().zip(program_load_seconds()?) {
            runs.push(s);
        }
        programs = verifier_work(&ebpf, &mut each)?;
    }
    for _ in 0..loads {
        let mut ebpf = kernel::load(u32::try_from(ring_bytes)?)?;
        let mut ring = kernel::ring_buffer(&mut ebpf)?;
        let stats = kernel::stats_map(&mut ebpf)?;
        let baseline = classifier(&ebpf, BASELINE)?;
        let ingress = classifier(&ebpf, INGRESS)?;
        for (case, (base, prog, events, lost)) in cases.iter().zip(acc.iter_mut()) {
            test_run(ingress, &case.frame, 1)?;
            check(case, &drain(&mut ring).1)?;
            let lost_before = kernel::read_stats(&stats).lost_events;
            // Interleaved, so drift in clock speed or background load hits
            // both.
            for _ in 0..ROUNDS {
                base.push(nanos(test_run(baseline, &case.frame, repeat)?));
                prog.push(nanos(test_run(ingress, &case.frame, repeat)?));
                *events += drain(&mut ring).0;
            }
            *lost += kernel::read_stats(&stats).lost_events - lost_before;
        }
    }
    let mut out = Vec::new();
    for (case, (base, prog, events, lost)) in cases.into_iter().zip(acc) {
        let (b, p) = (median(&mut base.clone()), median(&mut prog.clone()));
        out.push(json!({
            "case": case.name,
            "ns": p,
            "baseline_ns": b,
            "ratio": p / b,
            "frame_bytes": case.frame.len(),
            "events": events,
            "lost_events": lost,
            "ns_runs": prog,
            "baseline_ns_runs": base,
        }));
    }
    Ok(json!({
        "repeat": repeat,
        "rounds": ROUNDS,
        "loads": loads,
        "ring_bytes": ring_bytes,
        "cases": out,
        "load": {
            "seconds": median(&mut load_seconds.clone()),
            "seconds_runs": load_seconds,
            "programs": programs,
        },
    }))
}

/// The programs tlsmon attaches or tail-calls.
const VERIFIED: [&str; 3] = [INGRESS, EGRESS, SPLIT];

/// Seconds each of [`VERIFIED`] takes to load (nearly all of it the
/// verifier's), one after the other into a fresh copy of the object, as
/// `kernel::load` loads them.
fn program_load_seconds() -> anyhow::Result<Vec<f64>> {
    let mut ebpf = aya::EbpfLoader::new()
        .map_max_entries("EVENTS", DEFAULT_RING_BYTES)
        .load(kernel::OBJECT)?;
    let mut out = Vec::new();
    for name in VERIFIED {
        let prog: &mut SchedClassifier = ebpf
            .program_mut(name)
            .with_context(|| format!("program {name} missing"))?
            .try_into()?;
        let started = Instant::now();
        prog.load()?;
        out.push(started.elapsed().as_secs_f64());
    }
    Ok(out)
}

/// What the verifier did for each program tlsmon attaches or tail-calls:
/// instructions it processed (its budget is 1,000,000 per program,
/// `BPF_COMPLEXITY_LIMIT_INSNS` in the kernel's include/linux/bpf.h), the
/// program's size, and the median of `load_seconds` (one list of runs per
/// program). Loading is most of tlsmon's start-up time.
fn verifier_work(ebpf: &Ebpf, load_seconds: &mut [Vec<f64>]) -> anyhow::Result<Value> {
    let mut out = serde_json::Map::new();
    for (name, runs) in VERIFIED.into_iter().zip(load_seconds) {
        let info = classifier(ebpf, name)?.info()?;
        out.insert(
            name.to_owned(),
            json!({
                "verified_insns": info.verified_instruction_count(),
                "insns": info.size_translated().map(|b| b / 8),
                "load_seconds": median(runs),
            }),
        );
    }
    Ok(Value::Object(out))
}

/// Client `i`'s address and port: 60,000 ports per address.
fn client(i: u32) -> ([u8; 4], u16) {
    let [_, _, hi, lo] = (i / 60_000).to_be_bytes();
    let port = u16::try_from(1024 + i % 60_000).expect("below 61,024");
    ([10, 64 + hi, lo, 1], port)
}
