//! What the project's jobs and tests share: the system programs they run
//! and where those come from ([`programs`]), running them and finding the
//! workspace ([`util`]), what `/proc` says about processes and CPUs
//! ([`procfs`]), and the proxy lab ([`lab`]), which the lab's tests drive
//! directly. The `cargo xtask` commands themselves are in the binary
//! (`main.rs`).

pub mod grafana;
pub mod lab;
pub mod procfs;
pub mod programs;
pub mod util;
