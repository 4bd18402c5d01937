//! The kernel program's debug traces (`--kernel-log`): what it logs with
//! aya-log (monitor-ebpf's `log.rs`), read from its `AYA_LOGS` ring and
//! passed on to tlsmon's diagnostics (`crate::logging`) as `kernel: …`
//! messages under [`TARGET`], which never reach the dashboard.
//!
//! Off, the kernel program carries the logging code but the verifier
//! removes it: the switches are read-only globals it knows the value of
//! (see the kernel side). Off is the default; [`globals`] says what the
//! loader writes into them.

use anyhow::Context as _;
use aya::Ebpf;
use aya_log::EbpfLogger;
use tokio::io::{Interest, unix::AsyncFd};

/// The tracing target of kernel records; `logging` keeps them off the
/// dashboard's status line.
pub const TARGET: &str = "tlsmon::kernel";

/// monitor-ebpf's switch, `TLSMON_KERNEL_LOG`: 1 to log.
const SWITCH: &str = "TLSMON_KERNEL_LOG";
/// aya-log's ring of records.
const RING: &str = "AYA_LOGS";
/// The ring's size when off: one page, the least a ring buffer can be,
/// instead of aya-log's 128 KiB of locked kernel memory nobody reads.
const RING_OFF_BYTES: u32 = 4096;
/// On: aya-log's own size. The kernel side writes at most 8 records a
/// second per CPU, a few hundred bytes each, so this holds tens of seconds
/// of them should the reader fall behind.
const RING_ON_BYTES: u32 = 128 << 10;

/// What the loader sets for `kernel_log`: each global by name with its
/// value, and the records ring's size.
#[must_use]
pub fn globals(kernel_log: bool) -> Globals {
    Globals {
        switch: u8::from(kernel_log),
        // aya-log's own switch, most verbose level let through; 0 is off.
        level: if kernel_log {
            aya_log::Level::Info as u8
        } else {
            0
        },
        ring_bytes: if kernel_log {
            RING_ON_BYTES
        } else {
            RING_OFF_BYTES
        },
    }
}

/// See [`globals`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Globals {
    pub switch: u8,
    pub level: u8,
    pub ring_bytes: u32,
}

impl Globals {
    /// Writes these into the loader before it loads the object.
    pub fn apply<'a>(&'a self, loader: &mut aya::EbpfLoader<'a>) {
        loader
            .override_global(SWITCH, &self.switch, true)
            .override_global(aya_log::LEVEL, &self.level, true)
            .map_max_entries(RING, self.ring_bytes);
    }
}

/// Starts passing the kernel's records to tracing, on the current tokio
/// runtime, for as long as it runs. Call it only for an object loaded with
/// `globals(true)`.
pub fn start(ebpf: &mut Ebpf) -> anyhow::Result<()> {
    let logger = EbpfLogger::init_with_logger(ebpf, &ToTracing)
        .context("opening the kernel program's log ring (AYA_LOGS)")?;
    // SAFETY: the descriptor is the ring map's, owned by `logger`, which
    // the `AsyncFd` owns for as long as it lives.
    let mut ready = unsafe { AsyncFd::register_with_interest(logger, Interest::READABLE) }
        .map_err(|e| anyhow::anyhow!("watching the kernel log ring: {}", e.into_parts().1))?;
    tokio::spawn(async move {
        loop {
            match ready.readable_mut().await {
                Ok(mut guard) => {
                    guard.get_inner_mut().flush();
                    guard.clear_ready();
                }
                Err(e) => {
                    tracing::warn!("reading the kernel's traces stopped: {e}");
                    break;
                }
            }
        }
    });
    Ok(())
}

/// A `log::Log` that hands each record on to tracing.
struct ToTracing;

impl log::Log for ToTracing {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let text = record.args();
        match record.level() {
            log::Level::Error => tracing::error!(target: TARGET, "kernel: {text}"),
            log::Level::Warn => tracing::warn!(target: TARGET, "kernel: {text}"),
            log::Level::Info => tracing::info!(target: TARGET, "kernel: {text}"),
            log::Level::Debug => tracing::debug!(target: TARGET, "kernel: {text}"),
            log::Level::Trace => tracing::trace!(target: TARGET, "kernel: {text}"),
        }
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use log::Log as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[test]
    fn off_everything_is_off_and_the_ring_is_one_page() {
        assert_eq!(
            globals(false),
            Globals {
                switch: 0,
                level: 0,
                ring_bytes: 4096
            }
        );
        let on = globals(true);
        assert_eq!((on.switch, on.ring_bytes), (1, 128 << 10));
        // aya-log lets through every level up to this one: Info and the
        // more severe ones, which the kernel side uses.
        assert_eq!(on.level, aya_log::Level::Info as u8);
    }

    /// Events of one target at one level, as text.
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<String>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Seen {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            struct Text(String);
            impl tracing::field::Visit for Text {
                fn record_debug(&mut self, _: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                    self.0 = format!("{v:?}");
                }
            }
            let mut text = Text(String::new());
            event.record(&mut text);
            let m = event.metadata();
            self.0
                .lock()
                .unwrap()
                .push(format!("{} {} {}", m.target(), m.level(), text.0));
        }
    }

    #[test]
    fn records_become_kernel_diagnostics_at_their_level() {
        let seen = Seen::default();
        let sub = tracing_subscriber::registry().with(seen.clone());
        tracing::subscriber::with_default(sub, || {
            ToTracing.log(
                &log::Record::builder()
                    .args(format_args!("packet skipped as malformed: ifindex=3"))
                    .level(log::Level::Info)
                    .target("monitor")
                    .build(),
            );
            ToTracing.log(
                &log::Record::builder()
                    .args(format_args!("event lost"))
                    .level(log::Level::Warn)
                    .target("monitor")
                    .build(),
            );
        });
        assert_eq!(
            *seen.0.lock().unwrap(),
            [
                "tlsmon::kernel INFO kernel: packet skipped as malformed: ifindex=3",
                "tlsmon::kernel WARN kernel: event lost"
            ]
        );
    }
}
