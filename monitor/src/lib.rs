//! tlsmon's userspace: everything but argument parsing lives here so the
//! integration tests and benchmarks can drive it.

pub mod app;
pub mod capture;
pub mod cli;
pub mod columns;
pub mod connection_log;
pub mod diagnosis;
pub mod escape;
pub mod histogram;
pub mod kernel;
pub mod keys;
pub mod live;
pub mod logging;
pub mod metrics;
pub mod names;
pub mod output;
pub mod privileges;
pub mod reassembly;
pub mod replay;
pub mod report;
#[cfg(test)]
pub(crate) mod sim;
pub mod source;
pub mod stats;
pub mod table;
pub mod tracker;
pub mod ui;
