//! Where the events come from. The event loop (`live::event_loop`) runs
//! against [`EventSource`]; the kernel's ring buffer ([`KernelSource`]) is
//! one implementation, a capture (`replay`) another, a scripted list of
//! events in the tests a third. The caller builds and owns the source, so
//! the loop itself needs neither root nor a kernel.

use std::{future::Future, time::Duration};

use anyhow::Context as _;
use aya::maps::{Map, MapData, PerCpuArray, RingBuf};
use monitor_common::event::decode;
use tokio::{io::unix::AsyncFd, time::Instant};

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

/// How often the loop ticks for a real-time source: timeouts, rates, the
/// screen and the metrics page. A tick drains the source first
/// (`live::event_loop`), so at a tick the tracker has every event the
/// kernel wrote until then.
pub const TICK: Duration = Duration::from_secs(1);

/// The shortest time between two drains of the ring buffer on a timer,
/// besides the tick's.
///
/// The kernel wakes the daemon when an event takes its ring past a quarter
/// full (`BPF_RB_FORCE_WAKEUP` for that event only). That wakeup can be
/// missed: when two CPUs reserve records at the moment of the crossing,
/// each may find the ring past the mark already. The timer is the safety
/// net for that case, and the daemon sets it from the rate at which the
/// ring filled since the last drain ([`next_drain_after`]): early enough
/// that the ring, filling at that rate, would be at most half full by
/// then, but never sooner than this. When the tick comes first, there is
/// no timer at all.
///
/// Every wakeup costs far more than the events it drains: on this 2-CPU
/// virtual machine an idle daemon that woke every 100 ms (each 100 ms
/// timer also woke it once more at tokio's 64 ms timer-wheel slot: 19–20
/// context switches a second) spent 1.6 ms of CPU a second; woken by the
/// tick alone (2 a second), 0.3 ms (docs/architecture.md, "Events", has
/// the method). In the full bench's proxy lab the daemon's share fell from
/// 2.9 to 1.8 ms per 1,000 handshakes (docs/performance.md).
pub const DRAIN_EVERY: Duration = Duration::from_millis(100);

/// When to drain on a timer, `drained` ring bytes and `elapsed` after the
/// last drain, in a ring of `ring_bytes`: `None` when the tick comes
/// first (see [`DRAIN_EVERY`]).
#[must_use]
pub fn next_drain_after(drained: u64, elapsed: Duration, ring_bytes: u64) -> Option<Duration> {
    // Time for the ring to fill half at the last rate: elapsed × half / drained.
    let half = u128::from(ring_bytes / 2);
    let nanos = elapsed.as_nanos().saturating_mul(half) / u128::from(drained.max(1));
    let after = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
    (after < TICK).then(|| after.max(DRAIN_EVERY))
}

/// The loaded and attached kernel program: its ring buffer, its counters,
/// and the interfaces it watches.
pub struct KernelSource {
    ebpf: aya::Ebpf,
    ring: AsyncFd<RingBuf<MapData>>,
    ring_bytes: u64,
    stats: PerCpuArray<MapData, u64>,
    cost: bool,
    /// The interfaces and the links held on each.
    watch: kernel::Watch,
    /// When the ring was last drained, and the safety drain's deadline
    /// (see [`DRAIN_EVERY`]).
    last_drain: Instant,
    next_drain: Option<Instant>,
}

impl KernelSource {
    /// Takes the ring buffer and counters of a program already attached
    /// where `watch` says. Needs a tokio runtime (the ring buffer is
    /// watched by it).
    pub fn new(mut ebpf: aya::Ebpf, watch: kernel::Watch, cost: bool) -> anyhow::Result<Self> {
        // Its size as loaded (`--ring-buffer-mb`).
        let ring_bytes = match ebpf.map("EVENTS") {
            Some(Map::RingBuf(map)) => u64::from(map.info()?.max_entries()),
            _ => anyhow::bail!("EVENTS map missing"),
        };
        let ring = kernel::ring_buffer(&mut ebpf)?;
        let stats = kernel::stats_map(&mut ebpf)?;
        // SAFETY: the RingBuf owns its map fd, which stays open and unchanged
        // for as long as the AsyncFd (which owns the RingBuf) lives.
        let ring = unsafe { AsyncFd::register(ring) }
            .map_err(|e| anyhow::anyhow!("watching the ring buffer: {}", e.into_parts().1))?;
        let now = Instant::now();
        Ok(Self {
            ebpf,
            ring,
            ring_bytes,
            stats,
            cost,
            watch,
            last_drain: now,
            // Until a rate is known, the shortest interval.
            next_drain: Some(now + DRAIN_EVERY),
        })
    }
}

impl EventSource for KernelSource {
    fn real_time(&self) -> bool {
        true
    }

    async fn ready(&mut self) -> anyhow::Result<bool> {
        // The kernel wakes us when its ring is a quarter full; otherwise
        // events wait for the safety drain or the loop's tick (see
        // DRAIN_EVERY). Readiness is cleared before the drain: a record
        // written during it sets it again.
        let safety = async {
            match self.next_drain {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            guard = self.ring.readable_mut() => {
                guard.context("waiting for events")?.clear_ready();
            }
            () = safety => {}
        }
        Ok(true)
    }

    fn drain(&mut self, _until_ns: u64, mut f: impl FnMut(AppEvent)) -> anyhow::Result<()> {
        let ring = self.ring.get_mut();
        let mut bytes = 0;
        while let Some(item) = ring.next() {
            // What the record took in the ring: its 8-byte header and the
            // event, rounded up to 8 bytes (kernel/bpf/ringbuf.c).
            bytes += (item.len() as u64 + 8).next_multiple_of(8);
            match decode(&item) {
                Some(d) => f(AppEvent::Kernel(d)),
                None => f(AppEvent::Undecodable),
            }
        }
        let now = Instant::now();
        self.next_drain = next_drain_after(bytes, now - self.last_drain, self.ring_bytes)
            .map(|after| now + after);
        self.last_drain = now;
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

#[cfg(test)]
mod tests {
    use super::*;

    const RING: u64 = 8 << 20;

    #[test]
    fn a_slow_ring_needs_no_timer_before_the_tick() {
        // 1 MiB a second: half the ring takes 4 s.
        assert_eq!(
            next_drain_after(1 << 20, Duration::from_secs(1), RING),
            None
        );
        // Nothing drained: no rate, no timer.
        assert_eq!(next_drain_after(0, Duration::from_secs(1), RING), None);
    }

    #[test]
    fn a_fast_ring_is_drained_before_half_full_but_not_too_often() {
        // 8 MiB a second: half full in 0.5 s.
        assert_eq!(
            next_drain_after(RING, Duration::from_secs(1), RING),
            Some(Duration::from_millis(500))
        );
        // 160 MiB a second would call for 25 ms: held at DRAIN_EVERY.
        assert_eq!(
            next_drain_after(20 * RING, Duration::from_secs(1), RING),
            Some(DRAIN_EVERY)
        );
    }
}
