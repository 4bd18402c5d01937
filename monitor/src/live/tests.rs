//! The whole live loop without root: a scripted source of kernel events
//! in, dashboard frames (ratatui's `TestBackend`), JSON lines and the
//! metrics page out, keys and signals injected. Time is tokio's paused
//! clock, so the loop's real timers fire without real waiting.

use std::{
    collections::VecDeque,
    io::Write,
    sync::{Arc, Mutex},
};

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use futures_util::stream;
use ratatui::backend::TestBackend;
use serde_json::Value;

use super::*;
use crate::{
    sim::{self, Close, Offer, PROXY, T0, Tls12, WEB1},
    stats::{KernelStats, Role},
};

/// Kernel events released at their header's time, on tokio's clock.
struct Script {
    events: VecDeque<(u64, AppEvent)>,
    start: tokio::time::Instant,
    /// The source ends here (after its last event).
    end_ns: u64,
}

impl Script {
    fn at(&self, ns: u64) -> tokio::time::Instant {
        self.start + Duration::from_nanos(ns - T0)
    }
}

impl EventSource for Script {
    fn real_time(&self) -> bool {
        true
    }

    async fn ready(&mut self) -> anyhow::Result<bool> {
        let next = self.events.front().map_or(self.end_ns, |(at, _)| *at);
        tokio::time::sleep_until(self.at(next)).await;
        Ok(!self.events.is_empty())
    }

    fn drain(&mut self, _until: u64, mut f: impl FnMut(AppEvent)) -> anyhow::Result<()> {
        let now = self.now_ns();
        while self.events.front().is_some_and(|(at, _)| *at <= now) {
            f(self.events.pop_front().unwrap().1);
        }
        Ok(())
    }

    fn now_ns(&self) -> u64 {
        T0 + u64::try_from(self.start.elapsed().as_nanos()).unwrap()
    }

    fn counters(&mut self) -> KernelStats {
        KernelStats {
            lost_events: 3,
            ..KernelStats::default()
        }
    }
}

/// A `Write` the test reads back.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `n` full handshakes to app/web1, one every 100 ms from T0, and one
/// event that does not decode.
fn script(n: u16) -> Script {
    script_with(n, false)
}

/// As [`script`]; with `offer`, each connection after the first offers
/// the session of the one before, which the server rejects (each ended
/// with a RST: the seed's problem).
fn script_with(n: u16, offer: bool) -> Script {
    let mut sim = sim::Sim::default();
    let mut next = Offer::None;
    for i in 0..n {
        let c = Tls12 {
            role: Role::Backend,
            client: (PROXY, 40_000 + i),
            server: WEB1,
            offer: if offer { next } else { Offer::None },
            accept: false,
            tickets: false,
            close: Close::Rst,
            sni: "web1.internal",
            alpn: "",
            rtt_ns: 1_000_000,
        };
        next = sim.tls12(&c, T0 + u64::from(i) * 100_000_000);
    }
    let mut events: VecDeque<(u64, AppEvent)> = sim
        .events
        .drain(..)
        .map(|ev| {
            let AppEvent::Kernel(d) = &ev else {
                unreachable!()
            };
            let (monitor_common::event::Decoded::Tls(h, _)
            | monitor_common::event::Decoded::Teardown(h)
            | monitor_common::event::Decoded::Chunk(h, _)) = d;
            (h.ts_ns, ev)
        })
        .collect();
    events.push_back((T0 + 500_000_000, AppEvent::Undecodable));
    events.make_contiguous().sort_by_key(|(at, _)| *at);
    Script {
        events,
        start: tokio::time::Instant::now(),
        end_ns: T0 + 20_000_000_000,
    }
}

#[tokio::test(start_paused = true)]
async fn the_whole_loop_from_events_to_frames_lines_and_metrics() {
    let mut source = script(30);
    let mut app = App::new(
        vec!["eth0".into()],
        Names::parse_names(sim::NAMES).unwrap(),
        Limits::default(),
        source.now_ns(),
    );
    let written = Shared::default();
    let (page, _server) = metrics::Endpoint::bind(metrics::Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        max_connections: 1,
        timeout: Duration::from_secs(1),
    })
    .unwrap()
    .serve()
    .unwrap();
    let mut out = Outputs {
        terminal: Some(Terminal::new(TestBackend::new(120, 30)).unwrap()),
        lines: Some(Sink::new(Box::new(written.clone()), None)),
        format: LogFormat::Json,
        metrics: Some(page),
    };
    // Keys: `s` at 4.5 s (sort by resumed), `q` at 7.5 s.
    let (key_tx, key_rx) = mpsc::channel(4);
    let keys = Box::pin(stream::unfold(key_rx, |mut rx| async move {
        rx.recv().await.map(|k| (k, rx))
    }));
    tokio::spawn(async move {
        for (after_ms, c) in [(4_500, 's'), (3_000, 'q')] {
            tokio::time::sleep(Duration::from_millis(after_ms)).await;
            let k = KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE);
            let _ = key_tx.send(Ok(Event::Key(k))).await;
        }
    });
    let (_signal_tx, signals) = mpsc::channel(1);
    let mut input = Inputs {
        keys: Some(keys),
        signals,
        notices: None,
    };
    let timing = Timing {
        interval: Some(Duration::from_secs(2)),
        duration: None,
    };
    event_loop(&mut source, &mut app, &mut out, &mut input, &timing)
        .await
        .unwrap();
    // `q` ended it before the source did.
    assert!(!source.events.is_empty() || source.now_ns() < source.end_ns);

    // The frame: the server, its name and counts, the losses, the sort.
    let screen = out.terminal.as_ref().unwrap().backend().to_string();
    let row = screen
        .lines()
        .find(|l| l.contains("10.0.1.11:8443"))
        .unwrap_or_else(|| panic!("no server row:\n{screen}"));
    assert!(row.contains("app/web1") && row.contains(" 30 "), "{row}");
    assert!(screen.contains("lost 3"), "{screen}");
    assert!(screen.contains("sort resumed ▼"), "{screen}");

    // Snapshot lines at 2, 4 and 6 s, then the final ones.
    let unwritten = finish(
        out.lines.take().unwrap(),
        &app,
        LogFormat::Json,
        Duration::from_secs(5),
    );
    assert_eq!(unwritten, 0);
    let text = String::from_utf8(written.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let servers: Vec<&Value> = lines.iter().filter(|l| l["type"] == "server").collect();
    assert_eq!(servers.len(), 4, "{text}");
    let fulls: Vec<u64> = servers
        .iter()
        .map(|l| l["full"].as_u64().unwrap())
        .collect();
    // Handshakes complete 1 ms after their hello, every 100 ms from T0.
    assert_eq!(fulls, [20, 30, 30, 30], "{text}");
    let summary = lines.last().unwrap();
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["full"], 30);
    assert_eq!(summary["lost_events"], 3);
    assert_eq!(summary["undecodable_events"], 1);
    assert_eq!(summary["dropped_output_lines"], 0);

    // The metrics page as the last tick left it.
    let page = out.metrics.as_ref().unwrap().text();
    let samples = xtask::programs::prometheus_samples(std::str::from_utf8(&page).unwrap()).unwrap();
    for want in [
        "tlsmon_handshakes_total kind=full,role=backend,server=10.0.1.11:8443 30",
        "tlsmon_lost_events_total  3",
        "tlsmon_undecodable_events_total  1",
    ] {
        assert!(
            samples.iter().any(|s| s == want),
            "{want} not in {samples:#?}"
        );
    }
}

/// Runs the loop without a terminal, keys or snapshot lines, writing to
/// `lines` if given; returns it.
async fn headless(
    source: &mut Script,
    app: &mut App,
    lines: Option<Sink>,
    signals: mpsc::Receiver<Signal>,
) -> Option<Sink> {
    let mut out = Outputs::<TestBackend> {
        terminal: None,
        lines,
        format: LogFormat::Json,
        metrics: None,
    };
    let mut input = Inputs::<NoKeys> {
        keys: None,
        signals,
        notices: None,
    };
    let timing = Timing {
        interval: None,
        duration: None,
    };
    event_loop(source, app, &mut out, &mut input, &timing)
        .await
        .unwrap();
    out.lines
}

#[tokio::test(start_paused = true)]
async fn a_stop_signal_ends_the_loop_and_the_source_end_is_ticked() {
    let mut source = script(5);
    let mut app = App::new(Vec::new(), Names::new(), Limits::default(), source.now_ns());
    let (signal_tx, signals) = mpsc::channel(1);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        signal_tx.send(Signal::Stop).await.unwrap();
    });
    headless(&mut source, &mut app, None, signals).await;
    assert_eq!(app.summary().full, 5);
    assert_eq!(app.uptime_ns() / 1_000_000_000, 3);
}

#[tokio::test(start_paused = true)]
async fn headless_writes_a_line_when_a_diagnosis_appears() {
    // 30 connections in 3 s, each offering the last one's session, each
    // rejected: ten offers are there by the tick at 2 s.
    let mut source = script_with(30, true);
    let mut app = App::new(Vec::new(), Names::new(), Limits::default(), source.now_ns());
    let written = Shared::default();
    let (_signal_tx, signals) = mpsc::channel(1);
    // No snapshot lines: only what the diagnoses write.
    let sink = Sink::new(Box::new(written.clone()), None);
    let sink = headless(&mut source, &mut app, Some(sink), signals).await;
    assert_eq!(sink.unwrap().close(Duration::from_secs(5)), 0);
    let text = String::from_utf8(written.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "one appearance, written once:\n{text}");
    let d = &lines[0];
    assert_eq!(d["type"], "diagnosis");
    assert_eq!(d["event"], "appeared");
    assert_eq!(d["active"], true);
    assert_eq!(d["server"], "10.0.1.11:8443");
    assert_eq!(d["role"], "backend");
    assert_eq!(d["rule"], "rejected-after-unclean-close");
    assert_eq!(d["severity"], "critical");
    assert_eq!(d["window_s"], 2.0);
    // The connections of the first two seconds: 20, 19 of them offering,
    // every offer rejected after a reset.
    assert_eq!(d["counts"]["offered"], 19, "{d}");
    assert_eq!(d["counts"]["rejected_by_cause"]["after_unclean"], 19, "{d}");
    assert!(
        d["text"]
            .as_str()
            .unwrap()
            .starts_with("100% of 19 offered sessions were rejected (19)."),
        "{d}"
    );
}
