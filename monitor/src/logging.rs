//! Diagnostics: `tracing` events, written to journald when tlsmon runs
//! under systemd (`JOURNAL_STREAM` names its stderr as the journal's) and
//! to stderr otherwise, as `tlsmon: [level: ]message` lines.
//!
//! Two rules from issue 14 and 18:
//! - no reader can stall the daemon through them: stderr is written by
//!   tracing-appender's worker thread from a bounded queue that drops when
//!   full, and at exit it waits about a second at most;
//! - nothing is drawn over the dashboard: while it is on the terminal
//!   ([`dashboard`]), stderr (that same terminal) gets nothing, and each
//!   message goes to the dashboard's status line instead (and to journald
//!   when there is one), except the kernel's debug traces
//!   (`kernel::log`), which only go to journald then.

use std::{
    fmt,
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        mpsc::{Receiver, SyncSender, sync_channel},
    },
    time::{Duration, Instant},
};

use tracing::{Event, Level, Subscriber, field::Field, level_filters::LevelFilter};
use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::{
    Layer,
    filter::filter_fn,
    fmt::{FmtContext, FormatEvent, FormatFields, format},
    layer::{Context, SubscriberExt as _},
    registry::LookupSpan,
    util::SubscriberInitExt as _,
};

/// Whether the dashboard owns the terminal.
static DASHBOARD: AtomicBool = AtomicBool::new(false);
/// Where messages go while it does.
static NOTICES: Mutex<Option<SyncSender<String>>> = Mutex::new(None);
/// Messages waiting for the dashboard's next tick; more are dropped.
const NOTICE_QUEUE: usize = 64;
/// Messages waiting for stderr; more are dropped (tracing-appender counts).
const STDERR_QUEUE: usize = 1024;

/// Keeps the stderr writer alive; dropping it flushes (for about a second
/// at most).
pub struct Guard(#[expect(dead_code, reason = "held for its Drop")] Option<WorkerGuard>);

/// Installs the subscriber. `level` is the most verbose level written.
#[must_use]
pub fn init(level: LevelFilter) -> Guard {
    let journald = std::env::var_os("JOURNAL_STREAM")
        .is_some()
        .then(tracing_journald::layer)
        .and_then(Result::ok);
    if let Some(journald) = journald {
        let _ = tracing_subscriber::registry()
            .with(journald.with_filter(level))
            .with(NoticeLayer.with_filter(level))
            .try_init();
        return Guard(None);
    }
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(STDERR_QUEUE)
        .thread_name("tlsmon-stderr")
        .finish(Counted(std::io::stderr()));
    if let Ok(mut d) = DROPPED.lock() {
        *d = Some(writer.error_counter());
    }
    let stderr = tracing_subscriber::fmt::layer()
        .event_format(Plain)
        .with_writer(move || {
            SUBMITTED.fetch_add(1, Ordering::Relaxed);
            writer.clone()
        })
        .with_filter(level)
        .with_filter(filter_fn(|_| !DASHBOARD.load(Ordering::Relaxed)));
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(NoticeLayer.with_filter(level))
        .try_init();
    Guard(Some(guard))
}

/// Says that the dashboard takes (`true`) or gives back the terminal.
/// Returns the receiving end of the status line's messages.
///
/// Taking it waits (at most [`DRAIN_WAIT`]) until the stderr writer has
/// written what was logged before: a line written after the dashboard
/// started would be drawn over it.
pub fn dashboard(on: bool) -> Receiver<String> {
    let (tx, rx) = sync_channel(NOTICE_QUEUE);
    if let Ok(mut slot) = NOTICES.lock() {
        *slot = on.then_some(tx);
    }
    DASHBOARD.store(on, Ordering::Relaxed);
    if on {
        let dropped = || {
            DROPPED
                .lock()
                .ok()
                .and_then(|d| d.as_ref().map(ErrorCounter::dropped_lines))
                .unwrap_or(0)
        };
        let start = Instant::now();
        while WRITTEN.load(Ordering::Relaxed) + dropped() < SUBMITTED.load(Ordering::Relaxed)
            && start.elapsed() < DRAIN_WAIT
        {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    rx
}

/// Diagnostics dropped so far because their queue was full: stderr's
/// (a stuck reader of stderr) and the dashboard's status line's. Shown
/// with the other losses (summary `dropped_diagnostics`, metric
/// `tlsmon_dropped_diagnostics_total`).
#[must_use]
pub fn dropped() -> u64 {
    let stderr = DROPPED
        .lock()
        .ok()
        .and_then(|d| d.as_ref().map(ErrorCounter::dropped_lines))
        .unwrap_or(0);
    u64::try_from(stderr).unwrap_or(u64::MAX) + NOTICES_DROPPED.load(Ordering::Relaxed)
}

/// Status-line messages dropped because the dashboard had not taken the
/// earlier ones.
static NOTICES_DROPPED: AtomicU64 = AtomicU64::new(0);

/// Messages handed to the stderr writer, written by it, dropped by it.
static SUBMITTED: AtomicUsize = AtomicUsize::new(0);
static WRITTEN: AtomicUsize = AtomicUsize::new(0);
static DROPPED: Mutex<Option<ErrorCounter>> = Mutex::new(None);
/// How long the dashboard waits for stderr to catch up before it starts.
const DRAIN_WAIT: Duration = Duration::from_millis(300);

/// stderr, counting the messages written (the fmt layer writes each
/// message with one `write` call).
struct Counted(std::io::Stderr);

impl std::io::Write for Counted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write_all(buf)?;
        WRITTEN.fetch_add(1, Ordering::Relaxed);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// `tlsmon: message` for information, `tlsmon: warning: message` and so
/// on for the other levels: the form tlsmon's messages always had.
struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: format::Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(w, "tlsmon: ")?;
        let level = *event.metadata().level();
        match level {
            Level::INFO => {}
            Level::WARN => write!(w, "warning: ")?,
            l => write!(w, "{}: ", l.as_str().to_lowercase())?,
        }
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// Sends each message to the dashboard's status line while it is shown.
struct NoticeLayer;

impl<S: Subscriber> Layer<S> for NoticeLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        // The kernel's debug traces (`--kernel-log`) can come several a
        // second: they go to journald or stderr only.
        if !DASHBOARD.load(Ordering::Relaxed)
            || event.metadata().target() == crate::kernel::log::TARGET
        {
            return;
        }
        let mut text = Message(String::new());
        event.record(&mut text);
        if let Ok(slot) = NOTICES.lock()
            && let Some(tx) = slot.as_ref()
            // Never waits: the dashboard takes them once a second.
            && tx.try_send(text.0).is_err()
        {
            NOTICES_DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        use fmt::Write as _;
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex as StdMutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<StdMutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Self;
        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    #[test]
    fn messages_read_as_tlsmon_always_wrote_them() {
        let buf = Buf::default();
        let sub = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .event_format(Plain)
                .with_writer(buf.clone()),
        );
        tracing::subscriber::with_default(sub, || {
            tracing::info!("attached to eth0");
            tracing::warn!("interface eth1 is gone");
            tracing::error!("no BTF");
            tracing::debug!(n = 3, "detail");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "tlsmon: attached to eth0\ntlsmon: warning: interface eth1 is gone\n\
             tlsmon: error: no BTF\ntlsmon: debug: detail n=3\n"
        );
    }

    #[test]
    fn with_the_dashboard_on_messages_go_to_its_status_line() {
        let sub = tracing_subscriber::registry().with(NoticeLayer);
        let rx = dashboard(true);
        let before = dropped();
        tracing::subscriber::with_default(sub, || {
            tracing::warn!("reopening log file x: Permission denied");
            // Never shown there, so neither queued nor dropped.
            tracing::info!(target: crate::kernel::log::TARGET, "kernel: packet skipped");
            // More than the queue holds, with nobody taking them: the rest
            // are dropped, and counted.
            for i in 0..NOTICE_QUEUE + 4 {
                tracing::warn!("flood {i}");
            }
        });
        dashboard(false);
        assert_eq!(
            rx.try_recv().as_deref(),
            Ok("reopening log file x: Permission denied")
        );
        assert_eq!(dropped() - before, 5);
    }
}
