//! The command line: every flag, its help, and the check of its value.
//!
//! In the library so that the man page and the shell completions are
//! generated from this one definition (`tlsmon-assets`, run by `cargo
//! xtask dist`). Every value is checked while parsing, before anything is
//! loaded or attached, and a bad one is answered with one sentence naming
//! the flag and what it accepts.

use std::{net::IpAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{kernel, live::LogFormat, metrics};

/// Live TLS handshake monitor for reverse-proxy hosts: full vs resumed
/// handshakes per backend and frontend, and why resumption fails.
#[derive(Debug, Parser)]
#[command(name = "tlsmon", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub live: LiveArgs,
    /// Most verbose diagnostics written (error, warn, info, debug, trace);
    /// to journald under systemd, else to stderr.
    #[arg(long, global = true, value_name = "LEVEL", default_value = "info")]
    pub log_level: tracing::level_filters::LevelFilter,
    /// More diagnostics: -v for debug, -vv for trace.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Args)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "command-line switches, each on its own"
)]
pub struct LiveArgs {
    /// Interface to monitor (repeatable): Ethernet-like, loopback, tun or
    /// WireGuard. Default: every such interface that is up, loopback only
    /// when named.
    #[arg(long = "iface", value_name = "IF", value_parser = interface_name)]
    pub ifaces: Vec<String>,
    /// Write JSON lines instead of opening the dashboard.
    #[arg(long)]
    pub headless: bool,
    /// Write the JSON lines to this file (appending) instead of stdout.
    #[arg(long, value_name = "PATH")]
    pub log: Option<PathBuf>,
    /// Format of the snapshot lines: json (one object per server) or text.
    #[arg(long, value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
    /// Also write one `"type":"handshake"` JSON line per connection, once
    /// tlsmon is done with it: what it decided about the handshake, the
    /// offer and each side's close (with --headless or --log).
    #[arg(long)]
    pub log_handshakes: bool,
    /// Serve Prometheus metrics on this address, e.g. 127.0.0.1:9464.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Most metrics connections served at once; a new one beyond this
    /// closes the oldest.
    #[arg(long, value_name = "N", value_parser = at_least_one,
          default_value_t = metrics::Config::DEFAULT_MAX_CONNECTIONS)]
    pub metrics_connections: usize,
    /// Seconds a metrics client may take to send its request, to read a
    /// response, or stay idle between requests.
    #[arg(long, value_name = "SECS", value_parser = seconds, allow_negative_numbers = true,
          default_value = "10")]
    pub metrics_timeout: Duration,
    /// Seconds between JSON snapshots.
    #[arg(long, value_name = "SECS", value_parser = seconds, allow_negative_numbers = true,
          default_value = "10")]
    pub interval: Duration,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS", value_parser = seconds, allow_negative_numbers = true)]
    pub duration: Option<Duration>,
    /// Kernel-to-user ring buffer size in MiB (a power of two).
    #[arg(long, value_name = "MIB", default_value_t = 8, value_parser = ring_mib)]
    pub ring_buffer_mb: u32,
    /// Measure the time the kernel spends in tlsmon's programs (summary
    /// `kernel_run_s`, metric `tlsmon_kernel_run_seconds_total`). Turns on
    /// the kernel's BPF statistics, which cost every BPF program on the host
    /// two clock reads per run, while tlsmon runs.
    #[arg(long)]
    pub kernel_cost: bool,
    /// Log, from the kernel program, the packets it skips as malformed,
    /// the split ClientHellos it drops and the events it loses to a full
    /// ring buffer (as `kernel: …` diagnostics, at most 8 a second per
    /// CPU, the rest counted). For debugging; off, the program carries no
    /// cost for it.
    #[arg(long)]
    pub kernel_log: bool,
    /// File of `ADDR:PORT NAME` lines naming servers on the dashboard.
    #[arg(long, value_name = "FILE")]
    pub names: Option<PathBuf>,
    /// HAProxy configuration to name backends `backend/server` and frontends.
    #[arg(long, value_name = "PATH")]
    pub haproxy_config: Option<PathBuf>,
    /// nginx configuration (with its includes) to name upstream servers
    /// `upstream/server` and TLS `server` blocks.
    #[arg(long, value_name = "PATH")]
    pub nginx_config: Option<PathBuf>,
    /// Most connections tracked at once; the oldest is evicted (and counted).
    #[arg(long, value_name = "N", value_parser = at_least_one, default_value_t = 1 << 20)]
    pub max_connections: usize,
    /// Most servers with counters of their own; the idlest make room (and
    /// are counted in `evicted_servers`).
    #[arg(long, value_name = "N", value_parser = at_least_one,
          default_value_t = crate::tracker::Limits::default().max_servers)]
    pub max_servers: usize,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Classify a pcap or pcapng capture offline and print the JSON lines.
    Replay(ReplayArgs),
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The capture (pcap or pcapng, gzip-compressed or not; Ethernet, Linux
    /// cooked, raw IP or BSD loopback), or `-` for standard input.
    pub file: PathBuf,
    /// `host` runs the shared classifier compiled for this machine (no
    /// root); `kernel` runs the real eBPF program on every packet with
    /// BPF_PROG_TEST_RUN (root).
    #[arg(long, value_enum, default_value_t = Engine::Host)]
    pub engine: Engine,
    /// Addresses of the monitored host, to tell backends from frontends
    /// when the capture does not record packet direction (repeatable).
    #[arg(long = "local", value_name = "ADDR")]
    pub local: Vec<IpAddr>,
    /// JSON lines even on a terminal (where replay prints a table).
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Engine {
    Host,
    Kernel,
}

/// The command's definition, for the man page and completions.
#[must_use]
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// Longest `--interval`, `--duration` or `--metrics-timeout`: a year. A
/// longer one overflowed the clock and panicked (`--duration 1e30`); no
/// flag means "forever" for `--duration`.
pub const MAX_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// A positive number of seconds, at most [`MAX_SECONDS`].
fn seconds(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v <= MAX_SECONDS => {
            Duration::try_from_secs_f64(v).map_err(|e| e.to_string())
        }
        _ => Err(format!(
            "{s:?} is not a number of seconds above 0 and at most {MAX_SECONDS} (a year)"
        )),
    }
}

/// A whole number of at least 1 (0 connections acted as 1).
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{s:?} is not a whole number of at least 1")),
    }
}

fn ring_mib(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(v) if v.is_power_of_two() && v <= 1024 => Ok(v),
        _ => Err(format!("{s:?} is not a power of two between 1 and 1024")),
    }
}

/// A name the kernel would accept for an interface (`--iface ""` was
/// answered "attaching … to : No such device" after seconds of loading).
fn interface_name(s: &str) -> Result<String, String> {
    kernel::check_interface_name(s)
        .map(|()| s.to_owned())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    fn error(args: &[&str]) -> String {
        let mut cmdline = vec!["tlsmon"];
        cmdline.extend_from_slice(args);
        Cli::try_parse_from(cmdline)
            .expect_err("should be refused")
            .to_string()
    }

    #[test]
    fn the_definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn bad_values_get_one_sentence_each() {
        for (args, says) in [
            (&["--duration", "1e30"][..], "is not a number of seconds"),
            (&["--interval", "1e30"], "is not a number of seconds"),
            (&["--duration", "-1"], "\"-1\" is not a number of seconds"),
            (&["--interval", "0"], "is not a number of seconds"),
            (&["--duration", "NaN"], "is not a number of seconds"),
            (&["--metrics-timeout", "inf"], "is not a number of seconds"),
            (
                &["--max-connections", "0"],
                "\"0\" is not a whole number of at least 1",
            ),
            (
                &["--metrics-connections", "0"],
                "is not a whole number of at least 1",
            ),
            (&["--iface", ""], "an interface name cannot be empty"),
            (&["--iface", "a/b"], "is not a valid interface name"),
            (
                &["--iface", "sixteen-bytes-xx"],
                "is not a valid interface name",
            ),
            (&["--ring-buffer-mb", "3"], "is not a power of two"),
        ] {
            let e = error(args);
            assert!(e.contains(says), "{args:?}: {e}");
            // One sentence: clap's line naming the flag, and its hint.
            assert_eq!(e.trim_end().lines().count(), 3, "{args:?}: {e}");
        }
    }

    #[test]
    fn good_values_parse() {
        let cli = Cli::try_parse_from([
            "tlsmon",
            "--duration",
            "31536000",
            "--interval",
            "0.5",
            "--iface",
            "eth0",
            "--iface",
            "eth0",
        ])
        .unwrap();
        assert_eq!(cli.live.duration, Some(Duration::from_hours(8760)));
        assert_eq!(cli.live.interval, Duration::from_millis(500));
        assert_eq!(cli.live.metrics_timeout, metrics::Config::DEFAULT_TIMEOUT);
        assert_eq!(cli.live.ifaces, ["eth0", "eth0"]);
    }
}
