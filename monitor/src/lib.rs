//! tlsmon's userspace: everything but argument parsing lives here so the
//! integration tests and benchmarks can drive it.

pub mod app;
pub mod capture;
pub mod cli;
pub mod diagnosis;
pub mod escape;
pub mod histogram;
pub mod kernel;
pub mod live;
pub mod metrics;
pub mod names;
pub mod privileges;
pub mod reassembly;
pub mod replay;
pub mod report;
pub mod stats;
pub mod tracker;
pub mod ui;
