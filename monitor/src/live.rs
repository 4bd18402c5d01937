//! The live daemon: load and attach the kernel program, drain its ring
//! buffer, feed the tracker, write JSON lines. One task owns all state.

use std::{
    fs::File,
    io::{BufWriter, IsTerminal as _, Write},
    path::PathBuf,
    time::Duration,
};

use anyhow::Context as _;
use monitor_common::event::decode;
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};

use crate::{
    app::{App, AppEvent, Control},
    kernel,
    names::Names,
    report::{now_unix, server_line, summary_line},
    stats::KernelStats,
    tracker::{Limits, Tracker},
};

/// How snapshot lines are written (`--log-format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

pub struct Options {
    pub ifaces: Vec<String>,
    pub headless: bool,
    pub log: Option<PathBuf>,
    pub log_format: LogFormat,
    pub metrics: Option<crate::metrics::Config>,
    pub interval: Duration,
    pub duration: Option<Duration>,
    pub ring_buffer_bytes: u32,
    /// Measure the kernel programs' own run time (`--kernel-cost`).
    pub kernel_cost: bool,
    pub limits: Limits,
    pub names: Names,
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
    // Held until the process exits; the statistics stop with it.
    let _cost_stats = opts
        .kernel_cost
        .then(kernel::enable_cost_stats)
        .transpose()?;
    let watch = kernel::Watch::attach(&mut ebpf, &ifaces)?;
    let ifaces = watch.names();
    let tui = !opts.headless && std::io::stdout().is_terminal();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async {
        let metrics = opts
            .metrics
            .map(crate::metrics::Endpoint::bind)
            .transpose()?;
        // Everything privileged is done: the links, maps and ring buffer are
        // file descriptors this process already holds.
        if kernel::uses_tcx() {
            crate::privileges::drop_all_but_keep()?;
        }
        if !tui {
            eprintln!("tlsmon: attached to {}", ifaces.join(", "));
        }
        let app = App::new(ifaces, opts.names.clone(), opts.limits, monotonic_ns());
        event_loop(&mut ebpf, watch, opts, app, metrics, tui).await
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

/// Restores the terminal however the dashboard ends: normal return, error
/// or panic (ratatui::init also installs a panic hook that restores first).
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// How often the ring buffer is drained when the kernel has not woken us
/// (it does once the ring is a quarter full: 2 MiB of the default 8 MiB,
/// about 7,000 events). Each wakeup costs the daemon far more than the
/// events it drains: in the proxy lab at about 1,100 handshakes a second,
/// draining every 10 ms cost 12.5 µs of daemon CPU per handshake, every
/// 50 ms 5, every 100 ms 4. Nothing waits on a drain sooner: the dashboard
/// and the metrics refresh once a second.
pub const DRAIN_EVERY: Duration = Duration::from_millis(100);

async fn event_loop(
    ebpf: &mut aya::Ebpf,
    mut watch: kernel::Watch,
    opts: &Options,
    mut app: App,
    metrics: Option<crate::metrics::Endpoint>,
    tui: bool,
) -> anyhow::Result<()> {
    let ring = kernel::ring_buffer(ebpf)?;
    let stats = kernel::stats_map(ebpf)?;
    // SAFETY: the RingBuf owns its map fd, which stays open and unchanged
    // for as long as the AsyncFd (which owns the RingBuf) lives.
    let mut ring = unsafe { AsyncFd::register(ring) }
        .map_err(|e| anyhow::anyhow!("watching the ring buffer: {}", e.into_parts().1))?;
    // With the dashboard on the terminal, lines only go to --log.
    let mut sink = match (&opts.log, tui) {
        (None, true) => None,
        (path, _) => Some(Sink::open(path.as_ref(), opts.log_format)?),
    };
    let mut undecodable = 0u64;
    let metrics = match metrics {
        Some(endpoint) => {
            let (page, server) = endpoint.serve()?;
            tokio::spawn(server);
            Some(page)
        }
        None => None,
    };
    // The guard restores the terminal when `screen` is dropped.
    let mut screen = tui.then(|| (ratatui::init(), TerminalGuard));
    let mut keys = tui.then(crossterm::event::EventStream::new);
    let mut snapshot = tokio::time::interval(opts.interval);
    snapshot.tick().await;
    // Timeouts, rates, the screen and the metrics page refresh every second
    // whatever --interval is.
    let mut second = tokio::time::interval(Duration::from_secs(1));
    // The kernel wakes us only when its ring is a quarter full; otherwise
    // events wait here for at most this long.
    let mut drain_tick = tokio::time::interval(DRAIN_EVERY);
    drain_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let deadline = tokio::time::sleep(opts.duration.unwrap_or(Duration::from_secs(u64::MAX / 4)));
    tokio::pin!(deadline);
    loop {
        let mut redraw = false;
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard.context("waiting for events")?;
                drain(guard.get_inner_mut(), &mut app, &mut undecodable);
                guard.clear_ready();
            }
            _ = drain_tick.tick() => {
                drain(ring.get_mut(), &mut app, &mut undecodable);
            }
            _ = second.tick() => {
                for notice in watch.check(ebpf) {
                    if !tui {
                        eprintln!("tlsmon: {notice}");
                    }
                }
                let kernel = read_kernel(ebpf, &stats, opts.kernel_cost);
                app.handle(AppEvent::Tick { now_ns: monotonic_ns(), kernel });
                if let Some(page) = &metrics {
                    page.publish(&crate::metrics::Sources { tracker: app.tracker(), kernel: &kernel, undecodable });
                }
                redraw = true;
            }
            key = next_key(keys.as_mut()) => {
                match key {
                    Some(Ok(crossterm::event::Event::Key(k))) => {
                        if matches!(app.handle(AppEvent::Key(k)), Control::Quit) {
                            break;
                        }
                        redraw = true;
                    }
                    Some(Ok(_)) => redraw = true,
                    // The terminal went away: nothing left to show.
                    Some(Err(_)) | None => break,
                }
            }
            _ = snapshot.tick() => {
                if let Some(sink) = sink.as_mut() {
                    sink.servers(app.tracker())?;
                }
            }
            _ = sighup.recv() => {
                if let Some(sink) = sink.as_mut() {
                    sink.reopen()?;
                }
            }
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            () = &mut deadline => break,
        }
        if redraw && let Some((t, _)) = screen.as_mut() {
            t.draw(|f| crate::ui::draw(f, &app))
                .context("drawing the dashboard")?;
        }
    }
    drop(screen);
    // Whatever arrived before the signal still counts.
    drain(ring.get_mut(), &mut app, &mut undecodable);
    let kernel = read_kernel(ebpf, &stats, opts.kernel_cost);
    app.handle(AppEvent::Tick {
        now_ns: monotonic_ns(),
        kernel,
    });
    let sink = match sink {
        Some(s) => s,
        // After the dashboard closes, the final lines go to stdout.
        None => Sink::open(None, opts.log_format)?,
    };
    finish(sink, &app, kernel, undecodable)
}

/// The kernel's counters, and its programs' run time when measured.
fn read_kernel(
    ebpf: &aya::Ebpf,
    stats: &aya::maps::PerCpuArray<aya::maps::MapData, u64>,
    cost: bool,
) -> KernelStats {
    KernelStats {
        cost: cost.then(|| kernel::read_cost(ebpf)),
        ..kernel::read_stats(stats)
    }
}

/// The closing lines: every server, then the summary.
fn finish(mut sink: Sink, app: &App, kernel: KernelStats, undecodable: u64) -> anyhow::Result<()> {
    sink.servers(app.tracker())?;
    let extra = serde_json::json!({"undecodable_events": undecodable});
    writeln!(
        sink.out,
        "{}",
        summary_line(app.tracker(), Some(kernel), &extra, now_unix())
    )?;
    sink.out.flush()?;
    Ok(())
}

/// The next terminal event, or never when there is no terminal.
async fn next_key(
    keys: Option<&mut crossterm::event::EventStream>,
) -> Option<std::io::Result<crossterm::event::Event>> {
    use futures_util::StreamExt as _;
    match keys {
        Some(k) => k.next().await,
        None => std::future::pending().await,
    }
}

fn drain(ring: &mut aya::maps::RingBuf<aya::maps::MapData>, app: &mut App, undecodable: &mut u64) {
    while let Some(item) = ring.next() {
        match decode(&item) {
            Some(d) => {
                app.handle(AppEvent::Kernel(d));
            }
            None => *undecodable += 1,
        }
    }
}
