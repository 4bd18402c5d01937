//! Project tasks: `cargo xtask setup | test | demo | lab | bench`.
//!
//! Every subcommand first checks (and, where something is missing, installs)
//! what the project needs on a Debian machine: rust-src for the nightly
//! toolchain, a bpf-linker built against that toolchain's libLLVM, and the
//! Debian packages used by the end-to-end tests and the demo.

mod bench;
mod demo;
mod dist;
mod lab_commands;
mod setup;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
// The library's helpers, under the name the subcommands use.
use xtask::util;

#[derive(Parser)]
#[command(about = "tlsmon project tasks")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Check the toolchain, bpf-linker and Debian packages; install what is missing.
    Setup,
    /// Setup, then build, test (as root), clippy and rustfmt check the workspace.
    Test {
        /// Run CI's own command (`.ci/run`) on a fresh clone of HEAD with a
        /// minimal environment: PATH of the system's and rustup's
        /// directories only, an empty HOME and TMPDIR. What passes only
        /// because of something installed by hand fails here.
        #[arg(long)]
        fresh: bool,
    },
    /// Setup, then the proxy lab with broken backend reuse, load, and tlsmon watching it.
    Demo {
        /// Backends at most TLS 1.2 (the seed's problem as reported); by
        /// default they negotiate TLS 1.3, as HAProxy does today.
        #[arg(long)]
        tls12: bool,
    },
    /// The proxy lab: a TLS-terminating proxy re-encrypting to three backends (docs/proxy-lab.md).
    Lab {
        #[command(subcommand)]
        action: LabAction,
    },
    /// Build the Debian package (target/dist/tlsmon_VERSION_ARCH.deb).
    Dist,
    /// Measure tlsmon's cost; print one JSON report and regenerate docs/performance.md.
    Bench {
        /// Short runs for a CI smoke test; leaves docs/performance.md alone.
        #[arg(long)]
        quick: bool,
    },
}

#[derive(Subcommand)]
enum LabAction {
    /// Bring the lab up (after tearing down any earlier one): broken, working, http,
    /// unclean, clean, checks, expired, server_restart, no_cache, ticket_rejected,
    /// optionally with +tls13.
    Up { scenario: String },
    /// Bring the lab up with the oracle on (captures, key logs), run the
    /// scenario's plan, write the oracle's per-connection records, and tear
    /// the lab down again (its logs and the oracle's files stay).
    Run {
        scenario: String,
        /// Another lab instance than the standard one (a name starting with
        /// `tlsmon-lab`), so that a run never disturbs a lab in use.
        #[arg(long, default_value = "tlsmon-lab")]
        instance: String,
        /// Leave the lab up after the run.
        #[arg(long)]
        keep: bool,
    },
    /// Stop every lab process by its PID and delete the namespaces.
    Down,
    /// Drive bounded HTTPS load through the proxy from the client namespace.
    Load {
        /// Requests, each on a new TLS connection to the frontend.
        #[arg(long, default_value_t = 300)]
        requests: u32,
        /// Parallel clients (1 keeps the broken scenario's numbers exact).
        #[arg(long, default_value_t = 1)]
        concurrency: u32,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Task::Setup => setup::setup(),
        Task::Test { fresh: false } => test::test(),
        Task::Test { fresh: true } => test::fresh(),
        Task::Demo { tls12 } => demo::demo(if tls12 {
            xtask::lab::demo::DemoTls::Tls12
        } else {
            xtask::lab::demo::DemoTls::Tls13
        }),
        Task::Dist => dist::dist(),
        Task::Lab { action } => match action {
            LabAction::Up { scenario } => lab_commands::up(&scenario),
            LabAction::Run {
                scenario,
                instance,
                keep,
            } => lab_commands::run(&scenario, &instance, keep),
            LabAction::Down => lab_commands::down(),
            LabAction::Load {
                requests,
                concurrency,
            } => lab_commands::load(requests, concurrency),
        },
        Task::Bench { quick } => bench::run(quick),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
