#![no_std]
//! Empty library so `monitor` can name this crate as a build dependency: cargo
//! then rebuilds the kernel object whenever this crate or monitor-common change.
