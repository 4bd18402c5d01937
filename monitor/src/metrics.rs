//! The metrics page (`--metrics ADDR`): what it says, rendered with
//! `prometheus-client`, the official Rust client, in both exposition
//! formats (Prometheus text 0.0.4 and OpenMetrics 1.0). Serving it is
//! [`endpoint`]'s job.
//!
//! Names follow Prometheus conventions: `tlsmon_` prefix, `_total` on
//! counters (the library adds it), one metric per quantity with labels for
//! the dimensions (server, role, kind/method/cause/version). Fleet-wide
//! ratios and quantiles are for Prometheus to compute; docs/operations.md
//! gives recording rules.
//!
//! The daemon owns the state; the page is a snapshot of it, rendered once
//! per refresh ([`Page::publish`]) and shared by every connection.
//! Families are data ([`PER_SERVER`], [`Family`]), so adding a label value
//! is one line in a table and adding a family one call in [`families`].

mod endpoint;

use std::sync::Arc;

use bytes::Bytes;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _, NoLabelSet},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::{Registry, Unit},
};
use tokio::sync::watch;

pub use self::endpoint::{Config, Endpoint};
use crate::{
    diagnosis::Diagnoses,
    histogram::Histogram,
    stats::{self, KernelStats, Losses, Role, ServerStats, Totals},
    tracker::Tracker,
};

/// What a refresh of the page reads: the daemon's state, borrowed for the
/// time it takes to render.
#[derive(Clone, Copy, Debug)]
pub struct Sources<'a> {
    pub tracker: &'a Tracker,
    pub kernel: &'a KernelStats,
    /// What the daemon itself lost (records that did not decode, output
    /// lines nobody read).
    pub losses: Losses,
    /// The diagnoses that hold now (`tlsmon_diagnosis`).
    pub diagnoses: &'a Diagnoses,
}

/// The two renderings of one refresh. `Bytes` is reference-counted: every
/// connection's response points at the same buffer, none copies it.
#[derive(Clone, Debug, Default)]
struct Rendered {
    text: Bytes,
    openmetrics: Bytes,
}

/// The daemon's handle on the page: [`Page::publish`] renders a new
/// snapshot, and the endpoint serves the latest one.
#[derive(Debug)]
pub struct Page {
    latest: watch::Sender<Rendered>,
    endpoint: Arc<endpoint::Stats>,
}

impl Page {
    /// Renders `src` (and the endpoint's own counters) in both formats and
    /// makes it what every following request gets.
    pub fn publish(&self, src: &Sources<'_>) {
        let families = families(src, Some(&self.endpoint));
        self.latest.send_replace(Rendered {
            text: Bytes::from(encode(&families, Format::Text)),
            openmetrics: Bytes::from(encode(&families, Format::OpenMetrics)),
        });
    }

    /// The latest rendering in the Prometheus text format: what a scrape
    /// gets now.
    #[must_use]
    pub fn text(&self) -> Bytes {
        self.latest.borrow().text.clone()
    }
}

/// An exposition format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4 (`text/plain; version=0.0.4`).
    Text,
    /// OpenMetrics 1.0 text (`application/openmetrics-text`).
    OpenMetrics,
}

/// Renders the page for `src` alone, without the endpoint's counters (for
/// tests and benchmarks).
#[must_use]
pub fn render(src: &Sources<'_>, format: Format) -> String {
    encode(&families(src, None), format)
}

fn encode(families: &Arc<Families>, format: Format) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Arc::clone(families)));
    let mut out = String::new();
    // Writing to a String cannot fail, nor can a collector that only
    // writes numbers and escaped label values.
    let _ = match format {
        Format::Text => prometheus_client::encoding::prometheus_text::encode(&mut out, &registry),
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
    };
    out
}

/// Label names and values of one sample, in order.
type Labels = Vec<(&'static str, String)>;

/// One sample's value.
#[derive(Debug)]
enum Value {
    Count(u64),
    /// A counter of seconds.
    Seconds(f64),
    Gauge(i64),
    /// Sum in seconds, count, and samples per bucket (not cumulative).
    Histogram(f64, u64, Vec<(f64, u64)>),
}

impl From<&Histogram> for Value {
    fn from(h: &Histogram) -> Self {
        Self::Histogram(h.sum_seconds(), h.count(), h.buckets().collect())
    }
}

/// One metric family of a snapshot: its descriptor and its samples.
#[derive(Debug)]
struct Family {
    /// Without the `_total` of counters or the unit: the library adds them.
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    unit: Option<Unit>,
    samples: Vec<(Labels, Value)>,
}

impl Family {
    fn sample(&mut self, labels: Labels, value: Value) -> &mut Self {
        self.samples.push((labels, value));
        self
    }
}

/// The families of one snapshot, in page order.
#[derive(Debug, Default)]
struct Families(Vec<Family>);

impl Families {
    fn add(
        &mut self,
        name: &'static str,
        help: &'static str,
        kind: MetricType,
        unit: Option<Unit>,
    ) -> &mut Family {
        self.0.push(Family {
            name,
            help,
            kind,
            unit,
            samples: Vec::new(),
        });
        self.0.last_mut().expect("just pushed")
    }

    fn counter(&mut self, name: &'static str, help: &'static str) -> &mut Family {
        self.add(name, help, MetricType::Counter, None)
    }

    fn gauge(&mut self, name: &'static str, help: &'static str) -> &mut Family {
        self.add(name, help, MetricType::Gauge, None)
    }
}

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.0 {
            let mut metric = encoder.encode_descriptor(f.name, f.help, f.unit.as_ref(), f.kind)?;
            for (labels, value) in &f.samples {
                let sample = metric.encode_family(labels)?;
                match value {
                    Value::Count(n) => ConstCounter::new(*n).encode(sample)?,
                    Value::Seconds(s) => ConstCounter::new(*s).encode(sample)?,
                    Value::Gauge(g) => ConstGauge::new(*g).encode(sample)?,
                    Value::Histogram(sum, count, buckets) => {
                        let mut sample = sample;
                        sample.encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// A counter value read from a server's stats.
type Field = fn(&ServerStats) -> u64;

/// A counter family with one sample per server and per value of its label.
struct PerServer {
    /// Without `_total`.
    name: &'static str,
    help: &'static str,
    /// The label telling a server's samples apart; `""` for one sample.
    label: &'static str,
    values: &'static [(&'static str, Field)],
}

/// The per-server counters, in page order. A new label value (a rejection
/// cause, say) is one line in its family's `values`.
const PER_SERVER: &[PerServer] = &[
    PerServer {
        name: "tlsmon_handshakes",
        help: "Completed TLS handshakes.",
        label: "kind",
        values: &[("full", |s| s.full), ("resumed", |s| s.resumed)],
    },
    PerServer {
        name: "tlsmon_resumed",
        help: "Resumed handshakes by method.",
        label: "method",
        values: &[
            ("session_id", |s| s.resumed_by.session_id),
            ("ticket", |s| s.resumed_by.ticket),
            ("psk", |s| s.resumed_by.psk),
        ],
    },
    PerServer {
        name: "tlsmon_offered",
        help: "Handshakes whose ClientHello offered resumption, by method.",
        label: "method",
        values: &[
            ("session_id", |s| s.offered_by.session_id),
            ("ticket", |s| s.offered_by.ticket),
            ("psk", |s| s.offered_by.psk),
        ],
    },
    PerServer {
        name: "tlsmon_rejected",
        help: "Offered resumptions answered with a full handshake, by cause (docs/classification.md, \"Why sessions are rejected\"); a rejection that may be a server restart is counted once decided, within 5 s.",
        label: "cause",
        values: &[
            ("after_unclean", |s| s.rejected_by_cause.after_unclean),
            ("after_clean", |s| s.rejected_by_cause.after_clean),
            ("expired", |s| s.rejected_by_cause.expired),
            ("server_restart", |s| s.rejected_by_cause.server_restart),
            ("no_cache", |s| s.rejected_by_cause.no_cache),
            ("ticket_rejected", |s| s.rejected_by_cause.ticket_rejected),
            ("unknown", |s| s.rejected_by_cause.unknown),
        ],
    },
    PerServer {
        name: "tlsmon_rejected_by_last_close",
        help: "Rejected offers by how the session's last holder ended (TLS 1.3: every connection that may have delivered the ticket), whatever the cause; they sum to the rejections.",
        label: "close",
        values: &[
            ("unclean", |s| s.rejected_after_unclean),
            ("clean", |s| s.rejected_after_clean),
            ("unknown", |s| s.rejected_origin_unknown),
        ],
    },
    PerServer {
        name: "tlsmon_rejected_after_idle_unclean",
        help: "Rejected offers of cause after_unclean whose unclean holders sent no application data: the signature of health checks sharing the traffic's session.",
        label: "",
        values: &[("", |s| s.rejected_after_idle_unclean)],
    },
    PerServer {
        name: "tlsmon_closes",
        help: "Connection ends per side: with close_notify first (clean), without (unclean), or not told (unknown: TLS 1.3 whose last record was not seen or is ambiguous).",
        label: "kind",
        values: &[
            ("clean", |s| s.clean_closes),
            ("unclean", |s| s.unclean_closes),
            ("unknown", |s| s.unknown_closes),
        ],
    },
    PerServer {
        name: "tlsmon_rst",
        help: "Connections in which this side sent a TCP RST.",
        label: "by",
        values: &[
            ("client", |s| s.rst_by_client),
            ("server", |s| s.rst_by_server),
        ],
    },
    PerServer {
        name: "tlsmon_hello_retry_requests",
        help: "HelloRetryRequests.",
        label: "",
        values: &[("", |s| s.hrr)],
    },
    PerServer {
        name: "tlsmon_incomplete_handshakes",
        help: "ClientHellos without a completed handshake.",
        label: "",
        values: &[("", |s| s.incomplete)],
    },
    PerServer {
        name: "tlsmon_failed_handshakes",
        help: "Handshakes ended by an alert or RST.",
        label: "",
        values: &[("", |s| s.failed)],
    },
    PerServer {
        name: "tlsmon_late_handshakes",
        help: "Handshakes whose ServerHello came after the timeout had counted them incomplete; also counted by kind.",
        label: "",
        values: &[("", |s| s.late)],
    },
    PerServer {
        name: "tlsmon_early_data_offered",
        help: "ClientHellos offering 0-RTT data.",
        label: "",
        values: &[("", |s| s.early_data_offered)],
    },
];

/// A server's identifying labels, plus `extra`.
fn server_labels(s: &ServerStats, extra: &[(&'static str, &str)]) -> Labels {
    endpoint_labels(s.server, s.role, extra)
}

fn endpoint_labels(server: stats::Endpoint, role: Role, extra: &[(&'static str, &str)]) -> Labels {
    let mut labels = Vec::with_capacity(2 + extra.len());
    labels.push(("server", server.to_string()));
    labels.push(("role", role.as_str().to_owned()));
    labels.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    labels
}

/// Every family of the page, in order.
fn families(src: &Sources<'_>, endpoint: Option<&endpoint::Stats>) -> Arc<Families> {
    let mut f = Families::default();
    per_server(&mut f, &src.tracker.servers());
    diagnoses(&mut f, src.diagnoses);
    totals(&mut f, src);
    if let Some(e) = endpoint {
        e.families(&mut f);
    }
    Arc::new(f)
}

/// The families with a sample per server.
fn per_server(f: &mut Families, servers: &[&ServerStats]) {
    for t in PER_SERVER {
        let family = f.counter(t.name, t.help);
        for s in servers {
            for (value, field) in t.values {
                let extra = if t.label.is_empty() {
                    vec![]
                } else {
                    vec![(t.label, *value)]
                };
                family.sample(server_labels(s, &extra), Value::Count(field(s)));
            }
        }
    }
    let family = f.counter(
        "tlsmon_handshakes_by_version",
        "Completed handshakes by negotiated TLS version.",
    );
    for s in servers {
        for (v, n) in s.version_counts() {
            family.sample(server_labels(s, &[("version", &v)]), Value::Count(n));
        }
    }
    let family = f.add(
        "tlsmon_handshake_duration",
        "Time from ClientHello to ServerHello, by kind of handshake.",
        MetricType::Histogram,
        Some(Unit::Seconds),
    );
    for s in servers {
        for (kind, h) in [
            ("full", &s.handshake_full),
            ("resumed", &s.handshake_resumed),
        ] {
            // 19 lines each: left out until the first handshake of the
            // kind, so a server that never resumes costs half as much.
            if h.count() == 0 {
                continue;
            }
            family.sample(server_labels(s, &[("kind", kind)]), Value::from(h));
        }
    }
}

/// `tlsmon_diagnosis`: 1 for each diagnosis that holds now, judged over
/// the recent window (`diagnosis::window`); a diagnosis that clears is no
/// longer a series, as Prometheus's own `ALERTS` do.
fn diagnoses(f: &mut Families, diagnoses: &Diagnoses) {
    let family = f.gauge(
        "tlsmon_diagnosis",
        "1 while a diagnosis holds for a server over the last five minutes, by rule and severity (docs/dashboard.md).",
    );
    for (server, role, d) in diagnoses.active() {
        family.sample(
            endpoint_labels(
                server,
                role,
                &[("rule", d.rule), ("severity", d.severity.as_str())],
            ),
            Value::Gauge(1),
        );
    }
}

/// A counter without labels: name, help, and where it is read.
type Total = (&'static str, &'static str, fn(&Totals) -> u64);

/// The tracker's totals that are one counter each, without labels.
const TRACKER_TOTALS: &[Total] = &[
    (
        "tlsmon_evicted_flows",
        "Connections evicted from the full connection table.",
        |t| t.evicted_flows,
    ),
    (
        "tlsmon_evicted_sessions",
        "Remembered sessions evicted from the full session store.",
        |t| t.evicted_sessions,
    ),
    (
        "tlsmon_evicted_servers",
        "Servers whose counters were dropped, the idlest first, past --max-servers.",
        |t| t.evicted_servers,
    ),
    (
        "tlsmon_evicted_timed_out",
        "Timed-out handshakes dropped from the store kept for late answers.",
        |t| t.evicted_timed_out,
    ),
    (
        "tlsmon_evicted_holders",
        "Ends of connections that held TLS <= 1.2 sessions, dropped because that store was full.",
        |t| t.evicted_holders,
    ),
    (
        "tlsmon_evicted_ticket_sets",
        "TLS 1.3 ticket candidate sets (per client address and server) dropped because that store was full.",
        |t| t.evicted_ticket_sets,
    ),
    (
        "tlsmon_evicted_evidence",
        "Servers' evidence about their sessions (accepted ages, a watched restart) dropped because that store was full.",
        |t| t.evicted_evidence,
    ),
    (
        "tlsmon_dropped_handshake_records",
        "Connection records (--log-handshakes) dropped because the output had not taken them.",
        |t| t.dropped_records,
    ),
];

/// The families without a server label: what was lost, skipped or counted
/// in all.
fn totals(f: &mut Families, src: &Sources<'_>) {
    let totals = &src.tracker.totals;
    let k = src.kernel;
    f.counter(
        "tlsmon_lost_events",
        "Kernel events lost because the ring buffer was full.",
    )
    .sample(vec![], Value::Count(k.lost_events));
    if let Some(c) = k.cost {
        f.add(
            "tlsmon_kernel_run",
            "Time the kernel spent in tlsmon's programs (--kernel-cost).",
            MetricType::Counter,
            Some(Unit::Seconds),
        )
        .sample(vec![], Value::Seconds(c.run_seconds()));
        f.counter(
            "tlsmon_kernel_runs",
            "Runs of tlsmon's programs: packets seen, plus split-hello tail calls (--kernel-cost).",
        )
        .sample(vec![], Value::Count(c.runs));
    }
    for (name, help, field) in TRACKER_TOTALS {
        f.counter(name, help)
            .sample(vec![], Value::Count(field(totals)));
    }
    f.counter(
        "tlsmon_tls13_origins",
        "Rejected TLS 1.3 offers by whether the ticket's possible origins all ended alike (decided) or not (undecided).",
    )
    .sample(vec![("outcome", "decided".to_owned())], Value::Count(totals.tls13_origins_decided))
    .sample(vec![("outcome", "undecided".to_owned())], Value::Count(totals.tls13_origins_undecided));
    f.counter(
        "tlsmon_unanswered_hellos",
        "ClientHellos whose server never answered: counted here, not per server.",
    )
    .sample(vec![], Value::Count(totals.unanswered_hellos));
    let family = f.counter(
        "tlsmon_skipped_packets",
        "Packets tlsmon could not classify (the kernel program) or that cannot belong to a real exchange (the tracker), by reason.",
    );
    for (reason, v) in [
        ("malformed", k.malformed),
        ("fragment", k.fragments),
        ("too_deep", k.too_deep),
        ("encapsulation", k.encapsulation),
        ("wrong_direction", totals.wrong_direction),
        ("unacknowledged", totals.unacknowledged),
    ] {
        family.sample(vec![("reason", reason.to_owned())], Value::Count(v));
    }
    f.counter(
        "tlsmon_malformed_hellos",
        "Hellos with contradictory lengths, not counted.",
    )
    .sample(vec![], Value::Count(totals.malformed_hellos));
    f.counter(
        "tlsmon_split_client_hellos",
        "ClientHellos that spanned TCP segments, by outcome: reassembled whole, or truncated (later extensions unseen).",
    )
    .sample(vec![("outcome", "reassembled".to_owned())], Value::Count(totals.reassembled_hellos))
    .sample(vec![("outcome", "truncated".to_owned())], Value::Count(totals.truncated_hellos));
    f.counter(
        "tlsmon_undecodable_events",
        "Ring-buffer records that did not decode.",
    )
    .sample(vec![], Value::Count(src.losses.undecodable));
    f.counter(
        "tlsmon_dropped_output_lines",
        "Output lines dropped or not written because their reader did not keep up.",
    )
    .sample(vec![], Value::Count(src.losses.output_dropped));
    f.counter(
        "tlsmon_dropped_diagnostics",
        "Diagnostics dropped because stderr or the dashboard's status line did not take them.",
    )
    .sample(vec![], Value::Count(src.losses.diagnostics_dropped));
    f.counter("tlsmon_events", "Events processed.")
        .sample(vec![], Value::Count(totals.events));
    f.gauge("tlsmon_connections", "Connections currently tracked.")
        .sample(
            vec![],
            Value::Gauge(i64::try_from(src.tracker.connections()).unwrap_or(i64::MAX)),
        );
}

#[cfg(test)]
mod tests;
