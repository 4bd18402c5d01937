//! Prometheus / OpenMetrics text exposition (`--metrics ADDR`).
//!
//! Names follow Prometheus conventions: `tlsmon_` prefix, `_total` on
//! counters, one metric per quantity with labels for the dimensions
//! (server, role, kind/method/cause/version). Fleet-wide ratios are for
//! Prometheus to compute; docs/operations.md gives recording rules.

use std::fmt::Write as _;

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
    sync::watch,
};

use crate::{
    stats::{KernelStats, ServerStats},
    tracker::Tracker,
};

/// Escapes a label value (exposition format: backslash, quote, newline).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A label value and the counter it selects from a server's stats.
type Field = fn(&ServerStats) -> u64;

struct Out(String);

impl Out {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", esc(val));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {v}");
    }

    /// One counter family with a sample per server and per label value.
    fn per_server(
        &mut self,
        servers: &[&ServerStats],
        name: &str,
        help: &str,
        label: &str,
        values: &[(&str, Field)],
    ) {
        self.head(name, "counter", help);
        for s in servers {
            let server = s.server.to_string();
            for (lv, f) in values {
                let mut labels = vec![("server", server.as_str()), ("role", s.role.as_str())];
                if !label.is_empty() {
                    labels.push((label, lv));
                }
                self.sample(name, &labels, f(s));
            }
        }
    }
}

/// Renders the whole exposition.
#[must_use]
#[expect(
    clippy::too_many_lines,
    reason = "one flat list of metric families reads best"
)]
pub fn render(tracker: &Tracker, kernel: &KernelStats, undecodable: u64) -> String {
    let servers = tracker.servers();
    let mut o = Out(String::new());
    o.per_server(
        &servers,
        "tlsmon_handshakes_total",
        "Completed TLS handshakes.",
        "kind",
        &[("full", |s| s.full), ("resumed", |s| s.resumed)],
    );
    o.per_server(
        &servers,
        "tlsmon_resumed_total",
        "Resumed handshakes by method.",
        "method",
        &[
            ("session_id", |s| s.resumed_by.session_id),
            ("ticket", |s| s.resumed_by.ticket),
            ("psk", |s| s.resumed_by.psk),
        ],
    );
    o.per_server(
        &servers,
        "tlsmon_offered_total",
        "Handshakes whose ClientHello offered resumption, by method.",
        "method",
        &[
            ("session_id", |s| s.offered_by.session_id),
            ("ticket", |s| s.offered_by.ticket),
            ("psk", |s| s.offered_by.psk),
        ],
    );
    o.per_server(&servers, "tlsmon_rejected_total", "Offered resumptions answered with a full handshake, by how the session's connection ended.", "cause", &[
        ("after_unclean", |s| s.rejected_after_unclean),
        ("after_clean", |s| s.rejected_after_clean),
        ("origin_unknown", |s| s.rejected_origin_unknown),
    ]);
    o.per_server(
        &servers,
        "tlsmon_closes_total",
        "TLS <= 1.2 connections closed with (clean) or without (unclean) an alert first.",
        "kind",
        &[
            ("clean", |s| s.clean_closes),
            ("unclean", |s| s.unclean_closes),
        ],
    );
    o.per_server(
        &servers,
        "tlsmon_rst_total",
        "Connections in which this side sent a TCP RST.",
        "by",
        &[
            ("client", |s| s.rst_by_client),
            ("server", |s| s.rst_by_server),
        ],
    );
    o.per_server(
        &servers,
        "tlsmon_hello_retry_requests_total",
        "HelloRetryRequests.",
        "",
        &[("", |s| s.hrr)],
    );
    o.per_server(
        &servers,
        "tlsmon_incomplete_handshakes_total",
        "ClientHellos without a completed handshake.",
        "",
        &[("", |s| s.incomplete)],
    );
    o.per_server(
        &servers,
        "tlsmon_failed_handshakes_total",
        "Handshakes ended by an alert or RST.",
        "",
        &[("", |s| s.failed)],
    );
    o.per_server(
        &servers,
        "tlsmon_early_data_offered_total",
        "ClientHellos offering 0-RTT data.",
        "",
        &[("", |s| s.early_data_offered)],
    );
    o.head(
        "tlsmon_handshakes_by_version_total",
        "counter",
        "Completed handshakes by negotiated TLS version.",
    );
    for s in &servers {
        let server = s.server.to_string();
        let mut versions: Vec<_> = s.versions.iter().collect();
        versions.sort();
        for (v, n) in versions {
            o.sample(
                "tlsmon_handshakes_by_version_total",
                &[
                    ("server", &server),
                    ("role", s.role.as_str()),
                    ("version", v),
                ],
                *n,
            );
        }
    }
    o.head(
        "tlsmon_lost_events_total",
        "counter",
        "Kernel events lost because the ring buffer was full.",
    );
    o.sample("tlsmon_lost_events_total", &[], kernel.lost_events);
    if let Some(c) = kernel.cost {
        o.head(
            "tlsmon_kernel_run_seconds_total",
            "counter",
            "Time the kernel spent in tlsmon's programs (--kernel-cost).",
        );
        o.sample("tlsmon_kernel_run_seconds_total", &[], c.run_seconds());
        o.head(
            "tlsmon_kernel_runs_total",
            "counter",
            "Runs of tlsmon's programs: packets seen, plus split-hello tail calls (--kernel-cost).",
        );
        o.sample("tlsmon_kernel_runs_total", &[], c.runs);
    }
    o.head(
        "tlsmon_evicted_flows_total",
        "counter",
        "Connections evicted from the full connection table.",
    );
    o.sample(
        "tlsmon_evicted_flows_total",
        &[],
        tracker.totals.evicted_flows,
    );
    o.head(
        "tlsmon_evicted_sessions_total",
        "counter",
        "Remembered sessions evicted from the full session store.",
    );
    o.sample(
        "tlsmon_evicted_sessions_total",
        &[],
        tracker.totals.evicted_sessions,
    );
    o.head(
        "tlsmon_skipped_packets_total",
        "counter",
        "Packets the kernel program could not classify.",
    );
    for (reason, v) in [
        ("malformed", kernel.malformed),
        ("fragment", kernel.fragments),
        ("too_deep", kernel.too_deep),
    ] {
        o.sample("tlsmon_skipped_packets_total", &[("reason", reason)], v);
    }
    o.head(
        "tlsmon_malformed_hellos_total",
        "counter",
        "Hellos with contradictory lengths, not counted.",
    );
    o.sample(
        "tlsmon_malformed_hellos_total",
        &[],
        tracker.totals.malformed_hellos,
    );
    o.head(
        "tlsmon_split_client_hellos_total",
        "counter",
        "ClientHellos that spanned TCP segments, by outcome: reassembled whole, or truncated (later extensions unseen).",
    );
    for (outcome, v) in [
        ("reassembled", tracker.totals.reassembled_hellos),
        ("truncated", tracker.totals.truncated_hellos),
    ] {
        o.sample(
            "tlsmon_split_client_hellos_total",
            &[("outcome", outcome)],
            v,
        );
    }
    o.head(
        "tlsmon_undecodable_events_total",
        "counter",
        "Ring-buffer records that did not decode.",
    );
    o.sample("tlsmon_undecodable_events_total", &[], undecodable);
    o.head("tlsmon_events_total", "counter", "Events processed.");
    o.sample("tlsmon_events_total", &[], tracker.totals.events);
    o.head(
        "tlsmon_connections",
        "gauge",
        "Connections currently tracked.",
    );
    o.sample("tlsmon_connections", &[], tracker.connections() as u64);
    o.0
}

/// Serves the latest rendering on every connection, whatever the request
/// path: a minimal HTTP/1.1 responder is all a scraper needs.
pub async fn serve(listener: TcpListener, latest: watch::Receiver<String>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let body = latest.borrow().clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            // Read the request head (bounded); its content does not matter.
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(2), sock.read(&mut buf)).await;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(body.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use monitor_common::event::{Direction, EventHeader, TlsSummary, hello_flags};

    use super::*;
    use crate::tracker::Limits;

    #[test]
    fn exposition_parses_with_the_reference_parser() {
        let mut t = Tracker::new(Limits::default());
        let mut h = EventHeader {
            family: 4,
            direction: Direction::EGRESS.0,
            src_port: 5000,
            dst_port: 443,
            ts_ns: 1,
            ..EventHeader::default()
        };
        h.src_addr[..4].copy_from_slice(&[10, 0, 0, 1]);
        h.dst_addr[..4].copy_from_slice(&[10, 0, 0, 2]);
        let mut ch = TlsSummary::default();
        ch.push(22, 1);
        ch.hello.flags = hello_flags::CLIENT_HELLO | hello_flags::OFFERS_TLS13 | hello_flags::PSK;
        ch.hello.legacy_version = 0x0303;
        t.on_tls(&h, &ch);
        let mut back = h;
        (back.src_addr, back.dst_addr, back.src_port, back.dst_port) =
            (h.dst_addr, h.src_addr, 443, 5000);
        back.direction = Direction::INGRESS.0;
        let mut sh = TlsSummary::default();
        sh.push(22, 2);
        sh.hello.flags = hello_flags::SERVER_HELLO | hello_flags::PSK;
        sh.hello.legacy_version = 0x0303;
        sh.hello.selected_version = 0x0304;
        t.on_tls(&back, &sh);
        let k = KernelStats {
            lost_events: 7,
            ..KernelStats::default()
        };
        let samples = xtask::programs::prometheus_samples(&render(&t, &k, 0))
            .unwrap_or_else(|e| panic!("{e:#}"));
        for want in [
            "tlsmon_handshakes_total kind=resumed,role=backend,server=10.0.0.2:443 1",
            "tlsmon_handshakes_total kind=full,role=backend,server=10.0.0.2:443 0",
            "tlsmon_resumed_total method=psk,role=backend,server=10.0.0.2:443 1",
            "tlsmon_offered_total method=psk,role=backend,server=10.0.0.2:443 1",
            "tlsmon_handshakes_by_version_total role=backend,server=10.0.0.2:443,version=TLSv1.3 1",
            "tlsmon_lost_events_total  7",
        ] {
            assert!(
                samples.iter().any(|s| s == want),
                "missing {want:?} in {samples:#?}"
            );
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
