//! The event loop, and the live daemon built around it.
//!
//! [`event_loop`] runs one [`App`] against what it is given: a source of
//! events, optionally a terminal (any ratatui backend) and its keys, an
//! output for lines, the metrics page, and a channel of
//! signals. [`run`] gives it the real ones: the kernel program, the
//! terminal, stdout or `--log`, the metrics server and SIGINT/SIGTERM/
//! SIGHUP; `replay` gives it a capture; the tests give it a script and
//! ratatui's `TestBackend`. One task owns all state, and nothing in the
//! loop waits for a reader: lines go through [`Sink`]'s bounded queue, the
//! metrics page is rendered once a second into a buffer the endpoint's
//! connections share, the screen is redrawn at most once per event batch.

use std::{io, path::PathBuf, time::Duration};

use anyhow::Context as _;
use futures_util::{Stream, StreamExt as _};
use ratatui::{Terminal, backend::Backend};
use tokio::sync::mpsc;

use crate::{
    app::{App, AppEvent, Control},
    kernel,
    metrics::{self, Page},
    names::Names,
    output::{LogFile, Sink},
    report::{
        diagnosis_line, epoch_offset_ns, handshake_lines, now_unix, server_lines, summary_line,
    },
    source::{EventSource, KernelSource, TICK},
    tracker::Limits,
};
pub use crate::{
    report::LogFormat,
    source::{DRAIN_EVERY, monotonic_ns},
};

pub struct Options {
    pub ifaces: Vec<String>,
    pub headless: bool,
    pub log: Option<PathBuf>,
    pub log_format: LogFormat,
    pub metrics: Option<metrics::Config>,
    pub interval: Duration,
    pub duration: Option<Duration>,
    pub ring_buffer_bytes: u32,
    /// Measure the kernel programs' own run time (`--kernel-cost`).
    pub kernel_cost: bool,
    /// The kernel program's debug traces (`--kernel-log`).
    pub kernel_log: bool,
    pub limits: Limits,
    pub names: Names,
}

/// What the outside world asks of the loop (the daemon's signals).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT, SIGTERM: write the last lines and stop.
    Stop,
    /// SIGHUP: reopen the log file.
    Reopen,
}

/// Terminal events, as crossterm's `EventStream` yields them.
pub type TermEvent = io::Result<crossterm::event::Event>;
/// The key stream of a loop without a terminal.
pub type NoKeys = futures_util::stream::Pending<TermEvent>;
/// The backend type of a loop without a terminal (`Outputs::terminal` is
/// `None`; the type is only named).
pub type NoTerminal = ratatui::backend::TestBackend;

/// What the loop writes to.
pub struct Outputs<B: Backend> {
    /// The dashboard, redrawn every second and after every key.
    pub terminal: Option<Terminal<B>>,
    /// Snapshot lines every `interval` (stdout or `--log`).
    pub lines: Option<Sink>,
    pub format: LogFormat,
    /// The metrics page, re-rendered every second.
    pub metrics: Option<Page>,
}

/// What the loop reads besides the source.
pub struct Inputs<K> {
    pub keys: Option<K>,
    pub signals: mpsc::Receiver<Signal>,
    /// Diagnostics for the dashboard's status line (see `logging`).
    pub notices: Option<std::sync::mpsc::Receiver<String>>,
}

pub struct Timing {
    /// Snapshot lines this often; `None`: only at the end.
    pub interval: Option<Duration>,
    /// Stop after this long.
    pub duration: Option<Duration>,
}

/// [`TICK`] on the source's clock, for a source that is not real-time.
const TICK_NS: u64 = TICK.as_secs() * 1_000_000_000;

/// Runs `app` on `source` until the source ends, a key or a signal stops
/// it, or `timing.duration` passes; then takes in whatever the source
/// still holds and ticks once more at its end. The final lines are the
/// caller's to write ([`finish`]), after it gave the terminal back.
pub async fn event_loop<S, B, K>(
    source: &mut S,
    app: &mut App,
    out: &mut Outputs<B>,
    input: &mut Inputs<K>,
    timing: &Timing,
) -> anyhow::Result<()>
where
    S: EventSource,
    B: Backend,
    K: Stream<Item = TermEvent> + Unpin,
{
    let real_time = source.real_time();
    let mut next_tick = source.now_ns().saturating_add(TICK_NS);
    // Ticks of a real-time source: once a second whatever --interval is
    // (timeouts, rates, the screen and the metrics page).
    let mut second = tokio::time::interval(TICK);
    second.tick().await;
    let mut snapshot = timing.interval.map(tokio::time::interval);
    if let Some(s) = snapshot.as_mut() {
        s.tick().await;
    }
    let deadline = tokio::time::sleep(timing.duration.unwrap_or(Duration::from_secs(u64::MAX / 4)));
    tokio::pin!(deadline);
    draw(out, app)?;
    loop {
        let mut redraw = false;
        tokio::select! {
            more = source.ready() => {
                if !more? {
                    break;
                }
                source.drain(next_tick, |ev| {
                    app.handle(ev);
                })?;
                let now = source.now_ns();
                if !real_time && now >= next_tick {
                    tick(source, app, out, input, now);
                    next_tick = now.saturating_add(TICK_NS);
                }
            }
            _ = second.tick(), if real_time => {
                // Everything written until now counts in this tick: the
                // source need not wake the loop sooner for it (see
                // `source::DRAIN_EVERY`).
                source.drain(u64::MAX, |ev| {
                    app.handle(ev);
                })?;
                source.maintain();
                tick(source, app, out, input, source.now_ns());
                redraw = true;
            }
            key = next_key(input.keys.as_mut()) => match key {
                Some(Ok(crossterm::event::Event::Key(k))) => {
                    if app.handle(AppEvent::Key(k)) == Control::Quit {
                        break;
                    }
                    write_diagnoses(out, app);
                    redraw = true;
                }
                Some(Ok(_)) => redraw = true,
                // The terminal went away: nothing left to show.
                Some(Err(_)) | None => break,
            },
            () = next_tick_of(snapshot.as_mut()) => {
                if let Some(sink) = out.lines.as_mut() {
                    sink.lines(server_lines(app.tracker(), out.format, now_unix()));
                }
            }
            signal = input.signals.recv() => match signal {
                Some(Signal::Reopen) => {
                    if let Some(sink) = out.lines.as_mut() {
                        match sink.reopen() {
                            Ok(()) => tracing::info!("reopened the log file"),
                            // The old file stays in use: nothing is lost.
                            Err(e) => tracing::warn!("{e:#}; still writing to the old file"),
                        }
                    }
                }
                Some(Signal::Stop) | None => break,
            },
            () = &mut deadline => break,
        }
        if redraw {
            draw(out, app)?;
        }
    }
    // Whatever arrived before the end still counts.
    source.drain(u64::MAX, |ev| {
        app.handle(ev);
    })?;
    tick(source, app, out, input, source.end_ns());
    draw(out, app)
}

/// One tick: time, the counters of the source and of the outputs, notices;
/// then the metrics page.
fn tick<S: EventSource, B: Backend, K>(
    source: &mut S,
    app: &mut App,
    out: &mut Outputs<B>,
    input: &Inputs<K>,
    now_ns: u64,
) {
    if let Some(notices) = &input.notices {
        while let Ok(text) = notices.try_recv() {
            app.handle(AppEvent::Notice(text));
        }
    }
    if let Some(sink) = &out.lines {
        app.handle(AppEvent::OutputDropped(sink.dropped()));
    }
    app.handle(AppEvent::DiagnosticsDropped(crate::logging::dropped()));
    let kernel = source.counters();
    app.handle(AppEvent::Tick { now_ns, kernel });
    // The connections the tick let go (`--log-handshakes`).
    if let Some(sink) = out.lines.as_mut() {
        let offset = epoch_offset_ns(source.real_time(), source.now_ns());
        sink.lines(handshake_lines(app.tracker(), offset, false));
    }
    write_diagnoses(out, app);
    if let Some(page) = &out.metrics {
        page.publish(&metrics::Sources {
            tracker: app.tracker(),
            kernel: &app.kernel(),
            losses: app.losses(),
            diagnoses: app.diagnoses(),
        });
    }
}

/// A line for each diagnosis that appeared, changed or went since the
/// last tick (or key: a reset forgets them), at once rather than at the
/// next `--interval`: the systemd unit runs headless, and this is how it
/// tells that a diagnosis came or cleared.
fn write_diagnoses<B: Backend>(out: &mut Outputs<B>, app: &mut App) {
    let changes = app.take_diagnosis_changes();
    if changes.is_empty() {
        return;
    }
    if let Some(sink) = out.lines.as_mut() {
        let ts = now_unix();
        sink.lines(
            changes
                .iter()
                .map(|c| diagnosis_line(c, out.format, ts))
                .collect(),
        );
    }
}

fn draw<B: Backend>(out: &mut Outputs<B>, app: &App) -> anyhow::Result<()> {
    if let Some(t) = out.terminal.as_mut() {
        t.draw(|f| crate::ui::draw(f, app))
            .map_err(|e| anyhow::anyhow!("drawing the dashboard: {e}"))?;
    }
    Ok(())
}

/// The next tick of an interval, or never.
async fn next_tick_of(interval: Option<&mut tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// The next terminal event, or never when there is no terminal.
async fn next_key<K: Stream<Item = TermEvent> + Unpin>(keys: Option<&mut K>) -> Option<TermEvent> {
    match keys {
        Some(k) => k.next().await,
        None => std::future::pending().await,
    }
}

/// The closing lines: every server, then the summary. Waits at most
/// `within` for them to be written; returns how many were not.
#[must_use]
pub fn finish(mut sink: Sink, app: &App, format: LogFormat, within: Duration) -> u64 {
    let ts = now_unix();
    let mut lines = server_lines(app.tracker(), format, ts);
    let losses = app.losses();
    let extra = serde_json::json!({
        "undecodable_events": losses.undecodable,
        // Lines dropped before this one; it is the last.
        "dropped_output_lines": sink.dropped(),
        "dropped_diagnostics": losses.diagnostics_dropped,
    });
    lines.push(summary_line(app.tracker(), Some(app.kernel()), &extra, ts).to_string());
    let start = std::time::Instant::now();
    sink.lines_within(lines, within);
    sink.close(within.saturating_sub(start.elapsed()))
}

/// How long the last lines may take to be written before tlsmon exits
/// anyway: a reader that does not read cannot keep it running.
pub const FINISH_WITHIN: Duration = Duration::from_millis(500);

/// Restores the terminal however the dashboard ends: normal return, error
/// or panic (ratatui::init also installs a panic hook that restores first).
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Keeps diagnostics off the terminal while it lives (see `logging`).
struct Quiet;

impl Drop for Quiet {
    fn drop(&mut self) {
        crate::logging::dashboard(false);
    }
}

/// Forwards SIGINT, SIGTERM and SIGHUP to the loop.
fn signals() -> anyhow::Result<mpsc::Receiver<Signal>> {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, rx) = mpsc::channel(8);
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        loop {
            let s = tokio::select! {
                _ = int.recv() => Signal::Stop,
                _ = term.recv() => Signal::Stop,
                _ = hup.recv() => Signal::Reopen,
            };
            // Never waits: a full queue already holds a Stop or is about to.
            let _ = tx.try_send(s);
        }
    });
    Ok(rx)
}

/// What can fail for reasons of the host rather than of the kernel — the
/// log file, the metrics port — fails before anything is attached, and
/// while tlsmon still has the privileges it will drop.
fn open_outputs(
    opts: &Options,
    tui: bool,
) -> anyhow::Result<(Option<Sink>, Option<metrics::Endpoint>)> {
    let lines = match (&opts.log, tui) {
        (Some(path), _) => {
            let (log, file) = LogFile::open(path)?;
            Some(Sink::file(log, file))
        }
        (None, false) => Some(Sink::stdout()?),
        // With the dashboard on the terminal, lines only go to --log.
        (None, true) => None,
    };
    let metrics = opts.metrics.map(metrics::Endpoint::bind).transpose()?;
    Ok((lines, metrics))
}

/// The interfaces named, or else every one that is up and can be watched
/// (saying which were left out).
fn interfaces(opts: &Options) -> anyhow::Result<Vec<String>> {
    if !opts.ifaces.is_empty() {
        return Ok(opts.ifaces.clone());
    }
    let found = kernel::default_interfaces()?;
    for (name, link) in found.left_out {
        tracing::warn!(
            "not watching {name}: a {link}, whose link header the classifiers do not parse"
        );
    }
    if found.watched.is_empty() {
        anyhow::bail!("no network interface is up; name one with --iface");
    }
    Ok(found.watched)
}

/// The daemon: check what can fail before anything is attached, load and
/// attach, drop privileges, run the loop, write the last lines.
pub fn run(opts: &Options) -> anyhow::Result<()> {
    kernel::preflight()?;
    let ifaces = interfaces(opts)?;
    let tui = !opts.headless && io::IsTerminal::is_terminal(&io::stdout());
    if opts.kernel_log && tui {
        // Said before the dashboard takes the terminal, so it is seen.
        tracing::warn!(
            "--kernel-log: the kernel's traces are not shown on the dashboard, only in journald \
             under systemd; use --headless to have them on stderr"
        );
    }
    let (lines, metrics) = open_outputs(opts, tui)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let result = rt.block_on(async {
        let signals = signals()?;
        let mut ebpf = kernel::load_with(opts.ring_buffer_bytes, opts.kernel_log)?;
        if opts.kernel_log {
            kernel::log::start(&mut ebpf)?;
        }
        // Held until the process exits; the statistics stop with it.
        let _cost_stats = opts
            .kernel_cost
            .then(kernel::enable_cost_stats)
            .transpose()?;
        let watch = kernel::Watch::attach(&mut ebpf, &ifaces)?;
        let ifaces = watch.names();
        let mut source = KernelSource::new(ebpf, watch, opts.kernel_cost)?;
        // Everything privileged is done: the links, maps, ring buffer, log
        // file and its directory are descriptors this process holds.
        if kernel::uses_tcx() {
            crate::privileges::drop_all_but_keep()?;
        }
        // With the dashboard, messages go to its status line from here on
        // (until `quiet` is dropped, whatever happens).
        let (notices, quiet) = if tui {
            (Some(crate::logging::dashboard(true)), Some(Quiet))
        } else {
            (None, None)
        };
        tracing::info!("attached to {}", ifaces.join(", "));
        let metrics = match metrics {
            Some(endpoint) => {
                let (page, server) = endpoint.serve()?;
                tokio::spawn(server);
                Some(page)
            }
            None => None,
        };
        let mut app = App::new(
            ifaces.clone(),
            opts.names.clone(),
            opts.limits,
            source.now_ns(),
        );
        let mut out = Outputs {
            terminal: None,
            lines,
            format: opts.log_format,
            metrics,
        };
        let mut input = Inputs {
            keys: None,
            signals,
            notices,
        };
        let guard = if tui {
            out.terminal = Some(ratatui::init());
            input.keys = Some(crossterm::event::EventStream::new());
            Some(TerminalGuard)
        } else {
            None
        };
        let timing = Timing {
            interval: Some(opts.interval),
            duration: opts.duration,
        };
        let result = event_loop(&mut source, &mut app, &mut out, &mut input, &timing).await;
        out.terminal = None;
        drop(guard);
        drop(quiet);
        result?;
        // After the dashboard closes, the final lines go to stdout.
        let mut sink = match out.lines.take() {
            Some(s) => s,
            None => Sink::stdout()?,
        };
        // The connections still tracked (`--log-handshakes`).
        let offset = epoch_offset_ns(true, source.now_ns());
        sink.lines_within(handshake_lines(app.tracker(), offset, true), FINISH_WITHIN);
        let unwritten = finish(sink, &app, opts.log_format, FINISH_WITHIN);
        if unwritten > 0 {
            tracing::warn!("{unwritten} output lines could not be written (nobody read them)");
        }
        anyhow::Ok(())
    });
    // A metrics client that stopped reading must not hold the exit either.
    rt.shutdown_timeout(Duration::from_millis(100));
    result
}

#[cfg(test)]
mod tests;
