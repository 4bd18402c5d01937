//! `tlsmon replay`: a capture file through the same classifier and tracker
//! as live mode. Both engines run the one per-packet pipeline
//! (`monitor_common::pipeline`): the host engine in its host environment,
//! compiled for this machine; the kernel engine as the real eBPF program,
//! on each packet with BPF_PROG_TEST_RUN. The pair is a differential test
//! of the kernel's environment: ring buffer, maps, tail call, verifier.

use std::{
    collections::HashSet,
    io::{IsTerminal as _, Write as _},
    net::IpAddr,
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use monitor_common::{
    classify::Classifier,
    event::{Decoded, decode},
    net::{ETHERTYPE_IPV4, LinkType, Skip, l3, segment},
};

use crate::{
    app::{App, AppEvent, Stamp},
    capture::Capture,
    kernel,
    live::{Inputs, NoKeys, NoTerminal, Outputs, Timing, event_loop},
    names::Names,
    report::{server_line, summary_line},
    source::EventSource,
    stats::KernelStats,
    tracker::{Limits, Tracker},
};

pub struct Options {
    pub file: PathBuf,
    pub kernel: bool,
    pub local: Vec<IpAddr>,
}

/// What a replay produced: the tracker and the per-packet tallies.
pub struct Outcome {
    pub tracker: Tracker,
    pub stats: KernelStats,
    pub packets: u64,
    pub last_ts_ns: u64,
    /// Why reading stopped before the end of the file, if it did.
    pub capture_error: Option<String>,
    /// Records an engine returned that did not decode.
    pub undecodable: u64,
}

/// Runs a capture through an engine and the same [`App`] and event loop
/// as live mode; the caller prints or compares.
pub fn replay(opts: &Options) -> anyhow::Result<Outcome> {
    let capture = Capture::open(&opts.file)?;
    let engine: Box<dyn Engine> = if opts.kernel {
        Box::new(KernelEngine::new()?)
    } else {
        Box::new(HostEngine::default())
    };
    let mut source = CaptureSource {
        capture,
        engine,
        file: &opts.file,
        packets_read: 0,
        last_ts: 0,
        ended: false,
        capture_error: None,
        held: Vec::new(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let mut app = App::new(Vec::new(), Names::new(), Limits::default(), 0);
    rt.block_on(async {
        let (stop, signals) = tokio::sync::mpsc::channel(1);
        // Ctrl-C ends a long replay early, with what was read so far.
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = stop.try_send(crate::live::Signal::Stop);
            }
        });
        let mut out = Outputs::<NoTerminal> {
            terminal: None,
            lines: None,
            format: crate::live::LogFormat::Json,
            metrics: None,
        };
        let mut input = Inputs::<NoKeys> {
            keys: None,
            signals,
            notices: None,
        };
        let timing = Timing {
            interval: None,
            duration: None,
        };
        event_loop(&mut source, &mut app, &mut out, &mut input, &timing).await
    })?;
    let local: HashSet<IpAddr> = if opts.local.is_empty() {
        // An address that is both a TLS client and a TLS server is the proxy.
        app.tracker().dual_role_addrs()
    } else {
        opts.local.iter().copied().collect()
    };
    if !local.is_empty() {
        app.assign_roles(&local);
    }
    let undecodable = app.losses().undecodable;
    Ok(Outcome {
        stats: source.counters(),
        packets: source.packets_read,
        last_ts_ns: source.last_ts,
        capture_error: source.capture_error,
        undecodable,
        tracker: app.into_tracker(),
    })
}

/// A capture, packet by packet through an engine, on the capture's clock.
struct CaptureSource<'a> {
    capture: Capture,
    engine: Box<dyn Engine>,
    file: &'a Path,
    packets_read: u64,
    last_ts: u64,
    ended: bool,
    capture_error: Option<String>,
    /// The events of a packet read past the next tick: handed over after
    /// the loop has ticked up to the packet's time, so that time passes
    /// for the tracker before what came after it (a ServerHello eleven
    /// seconds after its ClientHello is late, as it was live).
    held: Vec<AppEvent>,
}

/// Packets read per drain, between looks at signals.
const BATCH: usize = 4096;

impl EventSource for CaptureSource<'_> {
    fn real_time(&self) -> bool {
        false
    }

    async fn ready(&mut self) -> anyhow::Result<bool> {
        // Reading is the work; let the loop look at its signals between batches.
        tokio::task::yield_now().await;
        Ok(!self.ended || !self.held.is_empty())
    }

    fn drain(&mut self, until_ns: u64, mut f: impl FnMut(AppEvent)) -> anyhow::Result<()> {
        if !self.held.is_empty() {
            if self.last_ts > until_ns {
                return Ok(());
            }
            self.held.drain(..).for_each(&mut f);
        }
        // Past the end (or the cut) there is nothing more to read or say.
        if self.ended {
            return Ok(());
        }
        for _ in 0..BATCH {
            let p = match self.capture.next_packet() {
                Some(Ok(p)) => p,
                None => {
                    self.ended = true;
                    return Ok(());
                }
                // A capture cut short (tcpdump killed mid-write) still has
                // everything before the cut: classify that, and say where it
                // ended. A file that yields nothing at all is an error.
                Some(Err(e)) if self.packets_read > 0 => {
                    tracing::warn!(
                        "{}: {e}; counted the {} packets before it",
                        self.file.display(),
                        self.packets_read
                    );
                    self.capture_error = Some(e.to_string());
                    self.ended = true;
                    return Ok(());
                }
                Some(Err(e)) => {
                    return Err(e).with_context(|| format!("reading {}", self.file.display()));
                }
            };
            self.packets_read += 1;
            self.last_ts = self.last_ts.max(p.ts_ns);
            let at = Stamp {
                ts_ns: p.ts_ns,
                direction: p.direction,
            };
            let events = self.engine.run(p.link, p.data, at)?;
            if p.ts_ns > until_ns {
                // The loop ticks at this packet's time, then takes them.
                self.held
                    .extend(events.into_iter().map(|d| AppEvent::Captured(d, at)));
                break;
            }
            for d in events {
                f(AppEvent::Captured(d, at));
            }
        }
        Ok(())
    }

    fn now_ns(&self) -> u64 {
        self.last_ts
    }

    fn end_ns(&self) -> u64 {
        // The capture is over: handshakes still waiting have timed out.
        self.last_ts
            .saturating_add(Limits::default().handshake_timeout_ns + 1)
    }

    fn counters(&mut self) -> KernelStats {
        self.engine.stats().unwrap_or_default()
    }
}

pub fn run(opts: &Options, json: bool) -> anyhow::Result<()> {
    let o = replay(opts)?;
    #[expect(clippy::cast_precision_loss, reason = "seconds for display")]
    let ts = o.last_ts_ns as f64 / 1e9;
    let mut out = std::io::stdout().lock();
    if !json && std::io::stdout().is_terminal() {
        write!(
            out,
            "{}",
            crate::table::plain(
                &o.tracker,
                &opts.file,
                o.packets,
                crate::table::terminal_width()
            )
        )?;
        return Ok(());
    }
    for s in o.tracker.servers() {
        writeln!(out, "{}", server_line(s, ts))?;
    }
    let extra = serde_json::json!({
        "file": opts.file.display().to_string(),
        "engine": if opts.kernel { "kernel" } else { "host" },
        "packets": o.packets,
        "capture_error": o.capture_error,
        "undecodable_events": o.undecodable,
    });
    writeln!(
        out,
        "{}",
        summary_line(&o.tracker, Some(o.stats), &extra, ts)
    )?;
    Ok(())
}

trait Engine {
    /// The events for one frame that the capture says went `at.direction`
    /// at `at.ts_ns`.
    fn run(&mut self, link: LinkType, frame: &[u8], at: Stamp) -> anyhow::Result<Vec<Decoded>>;
    fn stats(&mut self) -> anyhow::Result<KernelStats>;
}

#[derive(Default)]
struct HostEngine {
    classifier: Classifier,
}

impl Engine for HostEngine {
    fn run(&mut self, link: LinkType, frame: &[u8], at: Stamp) -> anyhow::Result<Vec<Decoded>> {
        // A skipped frame is counted by the classifier, as the kernel counts it.
        Ok(self
            .classifier
            .packet(frame, link, at.direction, at.ts_ns)
            .unwrap_or_default())
    }

    fn stats(&mut self) -> anyhow::Result<KernelStats> {
        Ok(KernelStats::from_counters(|i| self.classifier.counter(i)))
    }
}

const ETH_HEADER_LEN: usize = 14;
/// Ethernet + minimal IPv4 + minimal TCP header.
const SHORTEST_TCP_FRAME: usize = 14 + 20 + 20;
/// Largest frame BPF_PROG_TEST_RUN takes for an skb: a page less the
/// headroom and `skb_shared_info` (net/bpf/test_run.c, `bpf_test_init`).
pub const MAX_TEST_RUN_FRAME: usize = 3500;

/// The real kernel program, run on each frame with BPF_PROG_TEST_RUN.
pub struct KernelEngine {
    ebpf: aya::Ebpf,
    ring: aya::maps::RingBuf<aya::maps::MapData>,
    stats: aya::maps::PerCpuArray<aya::maps::MapData, u64>,
    frame: Vec<u8>,
    /// Frames BPF_PROG_TEST_RUN refused to run, by skip reason.
    refused: [u64; Skip::COUNT],
}

impl KernelEngine {
    pub fn new() -> anyhow::Result<Self> {
        kernel::preflight()?;
        let mut ebpf = kernel::load(1 << 20)?;
        let ring = kernel::ring_buffer(&mut ebpf)?;
        let stats = kernel::stats_map(&mut ebpf)?;
        Ok(Self {
            ebpf,
            ring,
            stats,
            frame: Vec::new(),
            refused: [0; Skip::COUNT],
        })
    }

    /// The program's counters so far, with the frames the kernel refused
    /// to run counted as the program would have counted them.
    #[must_use]
    pub fn counters(&self) -> KernelStats {
        KernelStats::from_counters(|i| {
            kernel::read_counter(&self.stats, i)
                + self.refused.get(i as usize).copied().unwrap_or(0)
        })
    }

    /// A frame BPF_PROG_TEST_RUN would not run: counted under the reason
    /// the shared header parser gives (one the program would have given
    /// too, had it run).
    fn refuse(&mut self, frame: &[u8]) {
        if let Err(skip) = segment(frame, LinkType::ETHERNET)
            && skip != Skip::NOT_TCP
            && let Some(n) = self.refused.get_mut(skip.0 as usize)
        {
            *n += 1;
        }
    }

    /// Runs the ingress program once on an Ethernet frame and returns the
    /// events it wrote. BPF_PROG_TEST_RUN refuses frames no longer than an
    /// Ethernet header (see [`Self::refuse`]) and longer than about a page
    /// (they are cut to [`MAX_TEST_RUN_FRAME`], like a capture's snap
    /// length).
    pub fn run_frame(&mut self, frame: &[u8]) -> anyhow::Result<Vec<Decoded>> {
        use aya::programs::{SchedClassifier, TestRun as _, TestRunOptions};
        if frame.len() <= ETH_HEADER_LEN {
            self.refuse(frame);
            return Ok(Vec::new());
        }
        let frame = &frame[..frame.len().min(MAX_TEST_RUN_FRAME)];
        let prog: &SchedClassifier = self
            .ebpf
            .program(kernel::INGRESS)
            .context("ingress program missing")?
            .try_into()?;
        let mut out = vec![0u8; frame.len() + 256];
        let result = match prog.test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ..TestRunOptions::default()
        }) {
            Ok(r) => r,
            // The kernel also refuses frames cut inside the IP header it
            // announces (bpf_prog_test_run_skb pulls it); they cannot carry
            // TCP.
            Err(_) if frame.len() < SHORTEST_TCP_FRAME => {
                self.refuse(frame);
                return Ok(Vec::new());
            }
            Err(e) => return Err(e).context("BPF_PROG_TEST_RUN"),
        };
        anyhow::ensure!(
            result.return_value == kernel::NO_VERDICT,
            "the kernel program returned {} instead of TC_ACT_UNSPEC",
            result.return_value.cast_signed()
        );
        let mut events = Vec::new();
        while let Some(item) = self.ring.next() {
            events.extend(decode(&item));
        }
        Ok(events)
    }
}

impl Engine for KernelEngine {
    /// The kernel program times pending hellos by its own clock and sees
    /// every frame as ingress; the app takes the capture's time and
    /// direction from `AppEvent::Captured`.
    fn run(&mut self, link: LinkType, frame: &[u8], _at: Stamp) -> anyhow::Result<Vec<Decoded>> {
        if link == LinkType::ETHERNET {
            return self.run_frame(frame);
        }
        // The program sits on Ethernet devices: give other link types a
        // synthetic Ethernet header carrying the same EtherType.
        let Ok((off, ethertype)) = l3(frame, link) else {
            return Ok(Vec::new());
        };
        let Some(l3_bytes) = frame.get(off..) else {
            return Ok(Vec::new());
        };
        let mut buf = std::mem::take(&mut self.frame);
        buf.clear();
        buf.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2]);
        buf.extend_from_slice(
            &(if ethertype == 0 {
                ETHERTYPE_IPV4
            } else {
                ethertype
            })
            .to_be_bytes(),
        );
        buf.extend_from_slice(l3_bytes);
        let r = self.run_frame(&buf);
        self.frame = buf;
        r
    }

    fn stats(&mut self) -> anyhow::Result<KernelStats> {
        Ok(self.counters())
    }
}
