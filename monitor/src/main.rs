//! `tlsmon`: command-line entry point. The flags are in `monitor::cli`.

use std::process::ExitCode;

use clap::Parser as _;
use monitor::{
    cli::{Cli, Command, Engine, LiveArgs},
    kernel, live, metrics,
    names::Names,
    replay,
    tracker::Limits,
};

/// Merges the names file and the HAProxy and nginx configs; entries they
/// have that cannot be used (host names, ranges) are reported, not fatal.
fn load_names(
    file: Option<&std::path::Path>,
    haproxy: Option<&std::path::Path>,
    nginx: Option<&std::path::Path>,
) -> anyhow::Result<Names> {
    let mut names = Names::new();
    if let Some(p) = haproxy {
        let n = Names::from_haproxy_config(p)?;
        for s in n.skipped() {
            tracing::warn!("{}: {s}", p.display());
        }
        names.merge(n);
    }
    if let Some(p) = nginx {
        // Each entry names its file (includes) and line.
        let n = Names::from_nginx_config(p)?;
        for s in n.skipped() {
            tracing::warn!("{s}");
        }
        names.merge(n);
    }
    if let Some(p) = file {
        names.merge(Names::from_file(p)?);
    }
    Ok(names)
}

/// Everything about the arguments that can be known before loading the
/// kernel program: the files they name, and that each named interface
/// exists (a typo used to be found only after seconds of loading).
fn live_options(a: LiveArgs) -> anyhow::Result<live::Options> {
    let names = load_names(
        a.names.as_deref(),
        a.haproxy_config.as_deref(),
        a.nginx_config.as_deref(),
    )?;
    for iface in &a.ifaces {
        if let kernel::Presence::Absent = kernel::presence(iface) {
            anyhow::bail!("--iface {iface}: no such interface (`ip link` lists them)");
        }
    }
    Ok(live::Options {
        names,
        ifaces: a.ifaces,
        headless: a.headless,
        log: a.log,
        log_format: a.log_format,
        metrics: a.metrics.map(|addr| metrics::Config {
            addr,
            max_connections: a.metrics_connections,
            timeout: a.metrics_timeout,
        }),
        interval: a.interval,
        duration: a.duration,
        ring_buffer_bytes: a.ring_buffer_mb << 20,
        kernel_cost: a.kernel_cost,
        kernel_log: a.kernel_log,
        limits: Limits {
            max_connections: a.max_connections,
            max_servers: a.max_servers,
            keep_records: a.log_handshakes,
            ..Limits::default()
        },
    })
}

/// An error and its causes as one line, each cause once: an error whose
/// message already ends with its source's (thiserror's `"…: {source}"`
/// with `#[source]`) printed that cause twice.
fn sentence(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.ends_with(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => cli.log_level,
        1 => cli
            .log_level
            .max(tracing::level_filters::LevelFilter::DEBUG),
        _ => tracing::level_filters::LevelFilter::TRACE,
    };
    let _logging = monitor::logging::init(level);
    let result = match cli.command {
        Some(Command::Replay(r)) => replay::run(
            &replay::Options {
                file: r.file,
                kernel: matches!(r.engine, Engine::Kernel),
                local: r.local,
            },
            r.json,
        ),
        None => live_options(cli.live).and_then(|o| live::run(&o)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One sentence, with its causes, never a backtrace.
            tracing::error!("{}", sentence(&e));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading /x: {source}")]
    struct Twice {
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let e = anyhow::Error::new(Twice { source: io }).context("loading names");
        assert_eq!(sentence(&e), "loading names: reading /x: entity not found");
    }
}
