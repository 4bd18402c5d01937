//! The live daemon: load and attach the kernel program, drain its ring
//! buffer, feed the tracker, write JSON lines. One task owns all state.

use std::{
    fs::File,
    io::{BufWriter, IsTerminal as _, Write},
    path::PathBuf,
    time::Duration,
};

use anyhow::Context as _;
use monitor_common::event::{Decoded, decode};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};

use crate::{
    kernel,
    report::{now_unix, server_line, summary_line},
    tracker::{Limits, Tracker},
};

/// How snapshot lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

pub struct Options {
    pub ifaces: Vec<String>,
    pub headless: bool,
    pub log: Option<PathBuf>,
    pub log_format: LogFormat,
    pub metrics: Option<std::net::SocketAddr>,
    pub interval: Duration,
    pub duration: Option<Duration>,
    pub ring_buffer_bytes: u32,
    pub limits: Limits,
}

/// CLOCK_MONOTONIC in ns, the clock of `bpf_ktime_get_ns`.
#[must_use]
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

pub fn run(opts: &Options) -> anyhow::Result<()> {
    kernel::preflight()?;
    let ifaces = if opts.ifaces.is_empty() {
        kernel::default_interfaces()?
    } else {
        opts.ifaces.clone()
    };
    if ifaces.is_empty() {
        anyhow::bail!("no network interface is up; name one with --iface");
    }
    let mut ebpf = kernel::load(opts.ring_buffer_bytes)?;
    for iface in &ifaces {
        kernel::attach(&mut ebpf, iface)?;
    }
    if !opts.headless && std::io::stdout().is_terminal() {
        eprintln!(
            "tlsmon: the dashboard is not built yet; writing JSON lines (use --headless to silence this)"
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async {
        let metrics = match opts.metrics {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("listening for metrics on {addr}"))?,
            ),
            None => None,
        };
        // Everything privileged is done: the links, maps and ring buffer are
        // file descriptors this process already holds.
        if kernel::uses_tcx() {
            crate::privileges::drop_all()?;
        }
        eprintln!("tlsmon: attached to {}", ifaces.join(", "));
        event_loop(&mut ebpf, opts, metrics).await
    })
}

/// Where snapshot lines go; reopened on SIGHUP so logrotate can move it.
struct Sink {
    path: Option<PathBuf>,
    format: LogFormat,
    out: Box<dyn Write>,
}

impl Sink {
    fn open(path: Option<&PathBuf>, format: LogFormat) -> anyhow::Result<Self> {
        let out: Box<dyn Write> = match path {
            Some(p) => Box::new(BufWriter::new(
                File::options()
                    .create(true)
                    .append(true)
                    .open(p)
                    .with_context(|| format!("opening log file {}", p.display()))?,
            )),
            None => Box::new(BufWriter::new(std::io::stdout())),
        };
        Ok(Self {
            path: path.cloned(),
            format,
            out,
        })
    }

    fn reopen(&mut self) -> anyhow::Result<()> {
        self.out.flush()?;
        *self = Self::open(self.path.as_ref(), self.format)?;
        Ok(())
    }

    fn servers(&mut self, tracker: &Tracker) -> anyhow::Result<()> {
        let ts = now_unix();
        for s in tracker.servers() {
            match self.format {
                LogFormat::Json => writeln!(self.out, "{}", server_line(s, ts))?,
                LogFormat::Text => writeln!(self.out, "{}", crate::report::text_line(s, ts))?,
            }
        }
        self.out.flush()?;
        Ok(())
    }
}

async fn event_loop(
    ebpf: &mut aya::Ebpf,
    opts: &Options,
    metrics: Option<tokio::net::TcpListener>,
) -> anyhow::Result<()> {
    let ring = kernel::ring_buffer(ebpf)?;
    let stats = kernel::stats_map(ebpf)?;
    // SAFETY: the RingBuf owns its map fd, which stays open and unchanged
    // for as long as the AsyncFd (which owns the RingBuf) lives.
    let mut ring = unsafe { AsyncFd::register(ring) }
        .map_err(|e| anyhow::anyhow!("watching the ring buffer: {}", e.into_parts().1))?;
    let mut sink = Sink::open(opts.log.as_ref(), opts.log_format)?;
    let mut tracker = Tracker::new(opts.limits);
    let mut undecodable = 0u64;
    let (metrics_tx, metrics_rx) = tokio::sync::watch::channel(String::new());
    if let Some(listener) = metrics {
        tokio::spawn(crate::metrics::serve(listener, metrics_rx));
    }
    let mut snapshot = tokio::time::interval(opts.interval);
    snapshot.tick().await;
    // Timeouts and the metrics page refresh every second whatever --interval is.
    let mut second = tokio::time::interval(Duration::from_secs(1));
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let deadline = tokio::time::sleep(opts.duration.unwrap_or(Duration::from_secs(u64::MAX / 4)));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard.context("waiting for events")?;
                drain(guard.get_inner_mut(), &mut tracker, &mut undecodable);
                guard.clear_ready();
            }
            _ = second.tick() => {
                tracker.tick(monotonic_ns());
                if !metrics_tx.is_closed() {
                    let k = kernel::read_stats(&stats);
                    metrics_tx.send_replace(crate::metrics::render(&tracker, &k, undecodable));
                }
            }
            _ = snapshot.tick() => sink.servers(&tracker)?,
            _ = sighup.recv() => sink.reopen()?,
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            () = &mut deadline => break,
        }
    }
    // Whatever arrived before the signal still counts.
    drain(ring.get_mut(), &mut tracker, &mut undecodable);
    tracker.tick(monotonic_ns());
    sink.servers(&tracker)?;
    let extra = serde_json::json!({"undecodable_events": undecodable});
    let k = kernel::read_stats(&stats);
    writeln!(
        sink.out,
        "{}",
        summary_line(&tracker, Some(k), &extra, now_unix())
    )?;
    sink.out.flush()?;
    Ok(())
}

fn drain(
    ring: &mut aya::maps::RingBuf<aya::maps::MapData>,
    tracker: &mut Tracker,
    undecodable: &mut u64,
) {
    while let Some(item) = ring.next() {
        match decode(&item) {
            Some(Decoded::Tls(h, t)) => tracker.on_tls(&h, &t),
            Some(Decoded::Teardown(h)) => tracker.on_teardown(&h),
            None => *undecodable += 1,
        }
    }
}
