//! `tlsmon`: command-line entry point.

use std::{net::IpAddr, path::PathBuf, process::ExitCode, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};
use monitor::{live, names::Names, replay, tracker::Limits};

/// Live TLS handshake monitor for reverse-proxy hosts: full vs resumed
/// handshakes per backend and frontend, and why resumption fails.
#[derive(Parser)]
#[command(name = "tlsmon", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    live: LiveArgs,
}

#[derive(Args)]
struct LiveArgs {
    /// Interface to monitor (repeatable). Default: every interface that is
    /// up, loopback only when named.
    #[arg(long = "iface", value_name = "IF")]
    ifaces: Vec<String>,
    /// Write JSON lines instead of opening the dashboard.
    #[arg(long)]
    headless: bool,
    /// Write the JSON lines to this file (appending) instead of stdout.
    #[arg(long, value_name = "PATH")]
    log: Option<PathBuf>,
    /// Format of the snapshot lines: json (one object per server) or text.
    #[arg(long, value_enum, default_value_t = live::LogFormat::Json)]
    log_format: live::LogFormat,
    /// Serve Prometheus metrics on this address, e.g. 127.0.0.1:9464.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
    /// Seconds between JSON snapshots.
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = positive_secs)]
    interval: f64,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS", value_parser = positive_secs)]
    duration: Option<f64>,
    /// Kernel-to-user ring buffer size in MiB (a power of two).
    #[arg(long, value_name = "MIB", default_value_t = 8, value_parser = ring_mib)]
    ring_buffer_mb: u32,
    /// Measure the time the kernel spends in tlsmon's programs (summary
    /// `kernel_run_s`, metric `tlsmon_kernel_run_seconds_total`). Turns on
    /// the kernel's BPF statistics, which cost every BPF program on the host
    /// two clock reads per run, while tlsmon runs.
    #[arg(long)]
    kernel_cost: bool,
    /// File of `ADDR:PORT NAME` lines naming servers on the dashboard.
    #[arg(long, value_name = "FILE")]
    names: Option<PathBuf>,
    /// HAProxy configuration to name backends `backend/server` and frontends.
    #[arg(long, value_name = "PATH")]
    haproxy_config: Option<PathBuf>,
    /// Most connections tracked at once; the oldest is evicted (and counted).
    #[arg(long, value_name = "N", default_value_t = 1 << 20)]
    max_connections: usize,
    /// Most servers with counters of their own; the idlest make room (and are counted).
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_servers)]
    max_servers: usize,
}

#[derive(Subcommand)]
enum Command {
    /// Classify a pcap or pcapng capture offline and print the JSON lines.
    Replay(ReplayArgs),
}

#[derive(Args)]
struct ReplayArgs {
    /// The capture (pcap or pcapng; Ethernet, Linux cooked or raw IP).
    file: PathBuf,
    /// `host` runs the shared classifier compiled for this machine (no
    /// root); `kernel` runs the real eBPF program on every packet with
    /// BPF_PROG_TEST_RUN (root).
    #[arg(long, value_enum, default_value_t = Engine::Host)]
    engine: Engine,
    /// Addresses of the monitored host, to tell backends from frontends
    /// when the capture does not record packet direction (repeatable).
    #[arg(long = "local", value_name = "ADDR")]
    local: Vec<IpAddr>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Engine {
    Host,
    Kernel,
}

fn positive_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}

fn ring_mib(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(v) if v.is_power_of_two() && v <= 1024 => Ok(v),
        _ => Err(format!("{s:?} is not a power of two between 1 and 1024")),
    }
}

/// Merges the names file and the HAProxy config; entries HAProxy's config
/// has that cannot be used (host names, ranges) are reported, not fatal.
fn load_names(
    file: Option<&std::path::Path>,
    haproxy: Option<&std::path::Path>,
) -> anyhow::Result<Names> {
    let mut names = Names::new();
    if let Some(p) = haproxy {
        let n = Names::from_haproxy_config(p)?;
        for s in n.skipped() {
            eprintln!("tlsmon: {}: {s}", p.display());
        }
        names.merge(n);
    }
    if let Some(p) = file {
        names.merge(Names::from_file(p)?);
    }
    Ok(names)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Replay(r)) => replay::run(&replay::Options {
            file: r.file,
            kernel: matches!(r.engine, Engine::Kernel),
            local: r.local,
        }),
        None => {
            let a = cli.live;
            let names = match load_names(a.names.as_deref(), a.haproxy_config.as_deref()) {
                Ok(n) => n,
                Err(e) => {
                    eprintln!("tlsmon: {e:#}");
                    return ExitCode::FAILURE;
                }
            };
            live::run(&live::Options {
                names,
                ifaces: a.ifaces,
                headless: a.headless,
                log: a.log,
                log_format: a.log_format,
                metrics: a.metrics,
                interval: Duration::from_secs_f64(a.interval),
                duration: a.duration.map(Duration::from_secs_f64),
                ring_buffer_bytes: a.ring_buffer_mb << 20,
                kernel_cost: a.kernel_cost,
                limits: Limits {
                    max_connections: a.max_connections,
                    max_servers: a.max_servers,
                    ..Limits::default()
                },
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One sentence, with its causes, never a backtrace.
            eprintln!("tlsmon: {e:#}");
            ExitCode::FAILURE
        }
    }
}
