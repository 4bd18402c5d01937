//! `bench soak [--quick] [--rate N] [--seconds S] [--metrics]`: complete
//! TLS 1.2 handshakes through the kernel program at a paced rate while the
//! daemon reads them with its own code: are events lost, and what does the
//! daemon spend per handshake?
//!
//! The producer (this thread) runs each handshake's five frames through
//! the loaded classifiers with BPF_PROG_TEST_RUN, client packets through
//! `tlsmon_egress` and the server's through `tlsmon_ingress`, as on a proxy
//! host talking to a backend. The consumer is the daemon: a thread with
//! the current-thread runtime `live::run` builds, running
//! `live::event_loop` on a `KernelSource` over the same ring buffer,
//! headless, its snapshot lines every 10 s (the default `--interval`)
//! through an output `Sink` that discards them, and with `--metrics` the
//! metrics endpoint on a loopback port. What is measured around it is one
//! counting wrapper of the source ([`Metered`]); the loop, the source, the
//! app and the tracker are the daemon's.
//!
//! The daemon's CPU time is the process's (`getrusage`) minus the
//! producer thread's, so it includes the output thread and the runtime.

use std::{
    io,
    os::fd::AsFd as _,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, ensure};
use aya::{
    Ebpf,
    maps::{Map, MapData, PerCpuArray},
    programs::SchedClassifier,
};
use monitor::{
    app::{App, AppEvent},
    kernel::{self, EGRESS, INGRESS},
    live::{self, Inputs, NoKeys, NoTerminal, Outputs, Signal, Timing},
    metrics,
    names::Names,
    output::Sink,
    source::{EventSource, KernelSource},
    stats::KernelStats,
    tracker::Limits,
};
use monitor_common::{
    emit::{Flow, field},
    net::{self, LinkType, TCP_ACK, TCP_PSH, TCP_RST},
    tls::{HANDSHAKE_HEADER_LEN, RECORD_HEADER_LEN},
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{
    CLIENT_IP, CLIENT_PORT, ISN, SERVER_IP, SERVER_PORT, TICKET_LEN, client, client_finish_payload,
    client_hello_payload, headers, server_finish_payload, server_flight_payload, test_run,
};

/// The rate of the full run, and `--rate`'s default.
pub const RATE: u32 = 20_000;
/// The daemon's default `--ring-buffer-mb`.
const RING_BYTES: u32 = 8 << 20;
/// The daemon's default `--interval`.
const INTERVAL: Duration = Duration::from_secs(10);

/// What to run: `bench soak`'s options.
pub struct Options {
    pub rate: u32,
    pub seconds: u64,
    /// Serve and refresh the metrics page, as `--metrics` does.
    pub metrics: bool,
}

impl Options {
    /// From the command line after `soak`: `--quick` is 5 s instead of 60.
    pub fn parse(args: &[String]) -> anyhow::Result<Self> {
        let mut o = Self {
            rate: RATE,
            seconds: if args.iter().any(|a| a == "--quick") {
                5
            } else {
                60
            },
            metrics: false,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .with_context(|| format!("soak: {name} needs a value"))
            };
            match a.as_str() {
                "--quick" => {}
                "--metrics" => o.metrics = true,
                "--rate" => o.rate = value("--rate")?.parse().context("soak: --rate")?,
                "--seconds" => {
                    o.seconds = value("--seconds")?.parse().context("soak: --seconds")?;
                }
                other => anyhow::bail!("soak: unknown option {other}"),
            }
        }
        ensure!(
            o.rate > 0 && o.seconds > 0,
            "soak: rate and seconds must be positive"
        );
        Ok(o)
    }
}

/// One handshake's frames, patched per handshake with the client's
/// address and port and fresh session IDs and ticket.
struct Handshake {
    client_hello: Vec<u8>,
    server_flight: Vec<u8>,
    client_finish: Vec<u8>,
    server_finish: Vec<u8>,
    rst: Vec<u8>,
    /// Where the IP header, the TCP header and the payload start in each
    /// of them, as the parser finds them.
    at: (usize, usize, usize),
}

impl Handshake {
    fn new() -> Self {
        let psh = TCP_ACK | TCP_PSH;
        // Each packet acknowledges what the other side sent, as in a real
        // exchange: the tracker counts only a ServerHello that acknowledges
        // the ClientHello.
        let mut flow = Flow::new(
            (CLIENT_IP, CLIENT_PORT).into(),
            (SERVER_IP, SERVER_PORT).into(),
            ISN,
        );
        let base = headers(0);
        let mut frame =
            |from_client, flags, payload: &[u8]| flow.frame(&base, from_client, flags, payload);
        let client_hello = frame(true, psh, &client_hello_payload());
        let seg = net::segment(&client_hello[..], LinkType::ETHERNET).expect("a TCP segment");
        Self {
            client_hello,
            server_flight: frame(false, psh, &server_flight_payload()),
            client_finish: frame(true, psh, &client_finish_payload()),
            server_finish: frame(false, psh, &server_finish_payload()),
            rst: frame(true, TCP_RST | TCP_ACK, &[]),
            at: (seg.l3_off, seg.l4_off, seg.payload_off),
        }
    }

    fn set_client(&mut self, i: u32) {
        let (addr, port) = client(i);
        let port = port.to_be_bytes();
        let (ip, tcp, payload) = self.at;
        for f in [
            &mut self.client_hello,
            &mut self.client_finish,
            &mut self.rst,
        ] {
            f[ip..][field::ipv4::SRC].copy_from_slice(&addr);
            f[tcp..][field::tcp::SRC_PORT].copy_from_slice(&port);
        }
        for f in [&mut self.server_flight, &mut self.server_finish] {
            f[ip..][field::ipv4::DST].copy_from_slice(&addr);
            f[tcp..][field::tcp::DST_PORT].copy_from_slice(&port);
        }
        let id = i.to_be_bytes();
        // Both hellos open their payload: record and handshake headers,
        // then the hello's own fields.
        let sid = payload + RECORD_HEADER_LEN + HANDSHAKE_HEADER_LEN + field::hello::SESSION_ID;
        self.client_hello[sid..sid + 4].copy_from_slice(&id);
        self.server_flight[sid..sid + 4].copy_from_slice(&id);
        // The ticket's last bytes identify it (RFC 5077 §4's MAC).
        let ticket_end = payload
            + RECORD_HEADER_LEN
            + HANDSHAKE_HEADER_LEN
            + field::new_session_ticket::TICKET
            + TICKET_LEN;
        self.server_finish[ticket_end - 4..ticket_end].copy_from_slice(&id);
    }
}

/// The daemon's source, counted: events handed on, the longest drain, and
/// the longest time the loop spent on its once-a-second work (from
/// `maintain`, the first thing a tick does, to the loop's next wait on the
/// ring). While either runs nothing reads the ring, and an 8 MiB ring holds
/// about 0.3 s of events at 20,000 handshakes/s.
struct Metered<S> {
    inner: S,
    events: u64,
    longest_drain: Duration,
    tick_started: Option<Instant>,
    longest_tick: Duration,
}

impl<S: EventSource> EventSource for Metered<S> {
    fn real_time(&self) -> bool {
        self.inner.real_time()
    }

    async fn ready(&mut self) -> anyhow::Result<bool> {
        if let Some(t) = self.tick_started.take() {
            self.longest_tick = self.longest_tick.max(t.elapsed());
        }
        self.inner.ready().await
    }

    fn drain(&mut self, until_ns: u64, mut f: impl FnMut(AppEvent)) -> anyhow::Result<()> {
        let start = Instant::now();
        let mut n = 0;
        let r = self.inner.drain(until_ns, |ev| {
            n += 1;
            f(ev);
        });
        self.events += n;
        self.longest_drain = self.longest_drain.max(start.elapsed());
        r
    }

    fn now_ns(&self) -> u64 {
        self.inner.now_ns()
    }

    fn counters(&mut self) -> KernelStats {
        self.inner.counters()
    }

    fn maintain(&mut self) {
        self.tick_started = Some(Instant::now());
        self.inner.maintain();
    }
}

/// What the daemon's thread reports when its loop ends.
struct Daemon {
    app: App,
    /// User and system CPU seconds of the loop's own thread.
    cpu: (f64, f64),
    events: u64,
    longest_drain: Duration,
    longest_tick: Duration,
}

/// The daemon as `live::run` builds it, on `ebpf` (loaded, not attached:
/// the producer runs the programs itself). Runs until `stop` says so.
fn daemon(ebpf: Ebpf, metrics: bool, stop: mpsc::Receiver<Signal>) -> anyhow::Result<Daemon> {
    let before = cpu(libc::RUSAGE_THREAD);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async {
        let mut ebpf = ebpf;
        let watch = kernel::Watch::attach(&mut ebpf, &[])?;
        let mut source = Metered {
            inner: KernelSource::new(ebpf, watch, false)?,
            events: 0,
            longest_drain: Duration::ZERO,
            tick_started: None,
            longest_tick: Duration::ZERO,
        };
        let metrics = if metrics {
            let (page, server) = metrics::Endpoint::bind(metrics::Config {
                addr: "127.0.0.1:0".parse()?,
                max_connections: metrics::Config::DEFAULT_MAX_CONNECTIONS,
                timeout: metrics::Config::DEFAULT_TIMEOUT,
            })?
            .serve()?;
            tokio::spawn(server);
            Some(page)
        } else {
            None
        };
        let mut app = App::new(
            Vec::new(),
            Names::default(),
            Limits::default(),
            source.now_ns(),
        );
        let mut out = Outputs::<NoTerminal> {
            terminal: None,
            lines: Some(Sink::new(Box::new(io::sink()), None)),
            format: live::LogFormat::Json,
            metrics,
        };
        let mut input = Inputs::<NoKeys> {
            keys: None,
            signals: stop,
            notices: None,
        };
        let timing = Timing {
            interval: Some(INTERVAL),
            duration: None,
        };
        live::event_loop(&mut source, &mut app, &mut out, &mut input, &timing).await?;
        if let Some(sink) = out.lines.take() {
            // Nothing reads the lines: none can be left unwritten.
            let _ = sink.close(live::FINISH_WITHIN);
        }
        let after = cpu(libc::RUSAGE_THREAD);
        Ok(Daemon {
            app,
            cpu: (after.0 - before.0, after.1 - before.1),
            events: source.events,
            longest_drain: source.longest_drain,
            longest_tick: source.longest_tick,
        })
    })
}

/// User and system CPU seconds of `who` (`RUSAGE_SELF`, `RUSAGE_THREAD`).
fn cpu(who: libc::c_int) -> (f64, f64) {
    // SAFETY: a zeroed rusage is a valid out-parameter.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-pointer; `who` is one of the two constants.
    unsafe { libc::getrusage(who, &raw mut ru) };
    let s = |t: libc::timeval| {
        Duration::new(
            u64::try_from(t.tv_sec).unwrap_or(0),
            u32::try_from(t.tv_usec).unwrap_or(0) * 1000,
        )
        .as_secs_f64()
    };
    (s(ru.ru_utime), s(ru.ru_stime))
}

/// The 1-minute load average: how busy the rest of the machine was.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The producer's own handle on a classifier of `ebpf`: the daemon owns
/// `ebpf` (its `KernelSource` does), the producer runs the program.
fn own_classifier(ebpf: &Ebpf, name: &str) -> anyhow::Result<SchedClassifier> {
    let prog: &SchedClassifier = ebpf
        .program(name)
        .with_context(|| format!("program {name} missing"))?
        .try_into()?;
    Ok(SchedClassifier::from_program_info(
        prog.info()?,
        name.to_owned().into(),
    )?)
}

/// The producer's own handle on the `STATS` counters, read every second
/// to see when events were lost.
fn own_stats(ebpf: &Ebpf) -> anyhow::Result<PerCpuArray<MapData, u64>> {
    let Some(Map::PerCpuArray(map)) = ebpf.map("STATS") else {
        anyhow::bail!("STATS map missing");
    };
    let fd = map.fd().as_fd().try_clone_to_owned()?;
    Ok(PerCpuArray::try_from(Map::PerCpuArray(MapData::from_fd(
        fd,
    )?))?)
}

/// What the producer did: handshakes sent, over how long, the seconds in
/// which events were lost, and its thread's CPU time while sending.
struct Produced {
    done: u32,
    seconds: f64,
    lossy_seconds: Vec<Value>,
    cpu_s: f64,
}

/// Sends handshakes at `opts.rate` for `opts.seconds`, each as five test
/// runs of the classifiers.
fn produce(
    opts: &Options,
    ingress: &SchedClassifier,
    egress: &SchedClassifier,
    stats: &PerCpuArray<MapData, u64>,
) -> anyhow::Result<Produced> {
    let cpu_before = cpu(libc::RUSAGE_THREAD);
    let mut hs = Handshake::new();
    let limit = Duration::from_secs(opts.seconds);
    let start = Instant::now();
    let mut done: u32 = 0;
    // Seconds of the run in which events were lost: bursts point at stalls.
    let mut lossy_seconds = Vec::new();
    let (mut second, mut lost_so_far) = (0, 0);
    loop {
        let elapsed = start.elapsed();
        if elapsed.as_secs() > second || elapsed >= limit {
            let lost = kernel::read_stats(stats).lost_events;
            if lost > lost_so_far {
                lossy_seconds.push(json!({"second": second, "lost": lost - lost_so_far}));
            }
            (second, lost_so_far) = (elapsed.as_secs(), lost);
        }
        if elapsed >= limit {
            break;
        }
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "at most hours × a rate that fits a u32"
        )]
        let due = (elapsed.as_secs_f64() * f64::from(opts.rate)) as u32;
        if done >= due {
            thread::sleep(Duration::from_micros(100));
            continue;
        }
        hs.set_client(done);
        for (prog, frame) in [
            (egress, &hs.client_hello),
            (ingress, &hs.server_flight),
            (egress, &hs.client_finish),
            (ingress, &hs.server_finish),
            (egress, &hs.rst),
        ] {
            test_run(prog, frame, 1)?;
        }
        done += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    let (user, sys) = cpu(libc::RUSAGE_THREAD);
    Ok(Produced {
        done,
        seconds,
        lossy_seconds,
        cpu_s: user + sys - cpu_before.0 - cpu_before.1,
    })
}

pub fn run(opts: &Options) -> anyhow::Result<Value> {
    kernel::preflight()?;
    let ebpf = kernel::load(RING_BYTES)?;
    let ingress = own_classifier(&ebpf, INGRESS)?;
    let egress = own_classifier(&ebpf, EGRESS)?;
    let stats = own_stats(&ebpf)?;
    let process_before = cpu(libc::RUSAGE_SELF);
    let started = Instant::now();
    let (stop_tx, stop_rx) = mpsc::channel(1);
    let metrics = opts.metrics;
    let consumer = thread::spawn(move || daemon(ebpf, metrics, stop_rx));
    let load_before = load_average();
    let produced = produce(opts, &ingress, &egress, &stats);
    // The daemon's Ctrl-C: it drains what is left, ticks once more, stops.
    let _ = stop_tx.try_send(Signal::Stop);
    let seen = consumer
        .join()
        .map_err(|_| anyhow::anyhow!("the daemon's thread panicked"))??;
    let lifetime = started.elapsed().as_secs_f64();
    let process_after = cpu(libc::RUSAGE_SELF);
    let p = produced?;
    // Each total is exact (the scheduler's run time); how a total splits
    // into user and system time is sampled at the clock tick, separately
    // for each thread and for the process, so the split is taken from the
    // loop's own thread rather than from a difference.
    let total = |(u, s): (f64, f64)| u + s;
    let daemon_s = total(process_after) - total(process_before) - p.cpu_s;
    let k = kernel::read_stats(&stats);
    let tracker = seen.app.tracker();
    let servers = tracker.servers();
    let counted: u64 = servers.iter().map(|s| s.handshakes()).sum();
    let failed: u64 = servers.iter().map(|s| s.failed + s.incomplete).sum();
    Ok(json!({
        "handshakes_per_s_target": opts.rate,
        "handshakes_per_s_achieved": f64::from(p.done) / p.seconds,
        "seconds": p.seconds,
        "handshakes_sent": p.done,
        "events_expected": u64::from(p.done) * 5,
        "events_received": seen.events,
        "lost_events": k.lost_events,
        "undecodable_events": seen.app.losses().undecodable,
        "handshakes_counted": counted,
        "handshakes_failed_or_incomplete": failed,
        "ring_buffer_bytes": RING_BYTES,
        "metrics_page": opts.metrics,
        "seconds_with_loss": p.lossy_seconds,
        "consumer_cpu_share": daemon_s / lifetime,
        "consumer_cpu_s": daemon_s,
        "consumer_loop_thread_user_s": seen.cpu.0,
        "consumer_loop_thread_sys_s": seen.cpu.1,
        "consumer_cpu_us_per_handshake": daemon_s * 1e6 / f64::from(p.done.max(1)),
        "consumer_longest_drain_ms": seen.longest_drain.as_secs_f64() * 1e3,
        "consumer_longest_tick_ms": seen.longest_tick.as_secs_f64() * 1e3,
        "tracker_connections_at_end": tracker.connections(),
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }))
}
