//! What the project's jobs and tests share: the system programs they run
//! and where those come from ([`programs`]). The `cargo xtask` commands
//! themselves are in the binary (`main.rs`).

pub mod programs;
