//! Project tasks: `cargo xtask setup | test | demo`.
//!
//! Every subcommand first checks (and, where something is missing, installs)
//! what the project needs on a Debian machine: rust-src for the nightly
//! toolchain, a bpf-linker built against that toolchain's libLLVM, and the
//! Debian packages used by the end-to-end tests and the demo.

mod demo;
mod setup;
mod test;
mod util;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    Test,
    /// Setup, then run tlsmon on live TLS traffic between two network namespaces.
    Demo,
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Task::Setup => setup::setup(),
        Task::Test => test::test(),
        Task::Demo => demo::demo(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
