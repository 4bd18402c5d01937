//! Where the events come from. The event loop (`live::event_loop`) runs
//! against [`EventSource`]; the kernel's ring buffer ([`KernelSource`]) is
//! one implementation, a capture (`replay`) another, a scripted list of
//! events in the tests a third. The caller builds and owns the source, so
//! the loop itself needs neither root nor a kernel.

use std::future::Future;

use anyhow::Context as _;
use aya::maps::{MapData, PerCpuArray, RingBuf};
use monitor_common::event::decode;
use tokio::{io::unix::AsyncFd, time::Interval};

use crate::{app::AppEvent, kernel, stats::KernelStats};

pub trait EventSource {
    /// Whether the source's clock is this host's `CLOCK_MONOTONIC`: the loop
    /// then ticks once a real second. Otherwise (a capture read as fast as
    /// it goes) the loop ticks whenever the source's clock passes a second.
    fn real_time(&self) -> bool;

    /// Waits until events may be ready; `false` once the source has ended.
    fn ready(&mut self) -> impl Future<Output = anyhow::Result<bool>>;

    /// Hands what is ready now to `f`, stopping early once the source's
    /// clock reaches `until_ns` (a tick is due then).
    fn drain(&mut self, until_ns: u64, f: impl FnMut(AppEvent)) -> anyhow::Result<()>;

    /// The events' clock now.
    fn now_ns(&self) -> u64;

    /// The clock value at which everything still pending is over: now for
    /// a live source; for a capture, past its last packet by the handshake
    /// timeout, so handshakes it cut off count as incomplete.
    fn end_ns(&self) -> u64 {
        self.now_ns()
    }

    /// The source's counters (the kernel program's, or an engine's).
    fn counters(&mut self) -> KernelStats;

    /// Called once a second: keep the source working (re-attach to an
    /// interface that came back).
    fn maintain(&mut self) {}
}

/// How often the ring buffer is drained when the kernel has not woken us
/// (it does once the ring is a quarter full: 2 MiB of the default 8 MiB,
/// about 7,000 events). Each wakeup costs the daemon far more than the
/// events it drains: in the proxy lab at about 1,100 handshakes a second,
/// draining every 10 ms cost 12.5 µs of daemon CPU per handshake, every
/// 50 ms 5, every 100 ms 4. Nothing waits on a drain sooner: the dashboard
/// and the metrics refresh once a second.
pub const DRAIN_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// The loaded and attached kernel program: its ring buffer, its counters,
/// and the interfaces it watches.
pub struct KernelSource {
    ebpf: aya::Ebpf,
    ring: AsyncFd<RingBuf<MapData>>,
    stats: PerCpuArray<MapData, u64>,
    cost: bool,
    /// The interfaces and the links held on each.
    watch: kernel::Watch,
    drain_tick: Interval,
}

impl KernelSource {
    /// Takes the ring buffer and counters of a program already attached
    /// where `watch` says. Needs a tokio runtime (the ring buffer is
    /// watched by it).
    pub fn new(mut ebpf: aya::Ebpf, watch: kernel::Watch, cost: bool) -> anyhow::Result<Self> {
        let ring = kernel::ring_buffer(&mut ebpf)?;
        let stats = kernel::stats_map(&mut ebpf)?;
        // SAFETY: the RingBuf owns its map fd, which stays open and unchanged
        // for as long as the AsyncFd (which owns the RingBuf) lives.
        let ring = unsafe { AsyncFd::register(ring) }
            .map_err(|e| anyhow::anyhow!("watching the ring buffer: {}", e.into_parts().1))?;
        let mut drain_tick = tokio::time::interval(DRAIN_EVERY);
        drain_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(Self {
            ebpf,
            ring,
            stats,
            cost,
            watch,
            drain_tick,
        })
    }
}

impl EventSource for KernelSource {
    fn real_time(&self) -> bool {
        true
    }

    async fn ready(&mut self) -> anyhow::Result<bool> {
        // The kernel wakes us only when its ring is a quarter full;
        // otherwise events wait here for at most DRAIN_EVERY. Readiness is
        // cleared before the drain: a record written during it sets it again.
        tokio::select! {
            guard = self.ring.readable_mut() => {
                guard.context("waiting for events")?.clear_ready();
            }
            _ = self.drain_tick.tick() => {}
        }
        Ok(true)
    }

    fn drain(&mut self, _until_ns: u64, mut f: impl FnMut(AppEvent)) -> anyhow::Result<()> {
        let ring = self.ring.get_mut();
        while let Some(item) = ring.next() {
            f(decode(&item).map_or(AppEvent::Undecodable, AppEvent::Kernel));
        }
        Ok(())
    }

    fn now_ns(&self) -> u64 {
        monotonic_ns()
    }

    fn counters(&mut self) -> KernelStats {
        KernelStats {
            cost: self.cost.then(|| kernel::read_cost(&self.ebpf)),
            ..kernel::read_stats(&self.stats)
        }
    }

    /// Interfaces come and go (a veth re-created, a bond rebuilt): when one
    /// reappears with a new index, attach to it again (`kernel::Watch`).
    fn maintain(&mut self) {
        for notice in self.watch.check(&mut self.ebpf) {
            tracing::warn!("{notice}");
        }
    }
}

/// CLOCK_MONOTONIC in ns, the clock of `bpf_ktime_get_ns`.
#[must_use]
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}
