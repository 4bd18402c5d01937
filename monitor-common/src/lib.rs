//! What the tlsmon kernel program and the daemon must agree on.
//!
//! This crate is the only place that knows the wire formats: Ethernet, IP and
//! TCP headers ([`net`]) and the tunnels around them ([`tunnel`]), TLS
//! records and hellos ([`tls`]), and the layout of the events the kernel
//! sends to userspace ([`event`]). It is `no_std` and
//! allocation-free so that the same code runs in the eBPF program (through
//! [`bytes::Bytes`] over the socket buffer) and in userspace (over a slice,
//! for `tlsmon replay --engine host` and the tests). [`pipeline`] ties them
//! together, once for both: one packet in, at most one summary event out
//! (and the bytes of a ClientHello split over segments); [`host`] runs it
//! on captured frames. [`close`] holds what a segment says about how a side
//! ended its TLS 1.3 stream.
#![no_std]
#![expect(
    clippy::inline_always,
    reason = "the kernel program needs the parsers inlined: each BPF-to-BPF call is verified per call site, and the generic Bytes reads must compile down to single loads"
)]

#[cfg(feature = "user")]
extern crate std;

pub mod bytes;
pub mod classify;
pub mod close;
#[cfg(feature = "user")]
pub mod emit;
pub mod event;
#[cfg(feature = "user")]
pub mod host;
pub mod net;
pub mod pipeline;
pub mod split;
pub mod tls;
pub mod tunnel;
pub mod version;
