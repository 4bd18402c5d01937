//! The bench's report: its shape, how it is written, and the check that
//! every part of it holds a number or says why it has none.
//!
//! What the xtask computes is typed here. What it copies from the bench
//! example as that prints it (the soak, the verifier's numbers per program)
//! stays the example's JSON, so a field the example adds reaches the report
//! without a change here.

use std::{fmt, io};

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::{
    Map, Value,
    ser::{CompactFormatter, Formatter, PrettyFormatter},
};

/// Kernel cases, in report order.
pub const KERNEL_CASES: [&str; 5] = [
    "app_data",
    "non_tls",
    "client_hello",
    "server_flight",
    "rst",
];

/// A part of the report: its value, or why there is none. Written as the
/// value itself, `{"skipped": reason}` or `{"error": message}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Part<T> {
    // Tried in this order when read back: a measured object never has a
    // `skipped` or `error` field.
    Skipped { skipped: String },
    Failed { error: String },
    Measured(T),
}

impl<T> Part<T> {
    pub fn skipped(why: impl Into<String>) -> Self {
        Self::Skipped {
            skipped: why.into(),
        }
    }

    /// A part that ran and failed: kept in the report, and fails the check.
    pub fn failed(e: &anyhow::Error) -> Self {
        Self::Failed {
            error: format!("{e:#}"),
        }
    }

    /// The result of running part `name`; a failure is also told on stderr.
    pub fn from_result(name: &str, r: Result<T>) -> Self {
        r.map_or_else(
            |e| {
                eprintln!("xtask bench: {name} failed: {e:#}");
                Self::failed(&e)
            },
            Self::Measured,
        )
    }

    pub fn value(&self) -> Option<&T> {
        match self {
            Self::Measured(v) => Some(v),
            _ => None,
        }
    }

    /// The same reason, or the value mapped.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Part<U> {
        match self {
            Self::Skipped { skipped } => Part::Skipped { skipped },
            Self::Failed { error } => Part::Failed { error },
            Self::Measured(v) => Part::Measured(f(v)),
        }
    }

    /// Why there is no value, if there is none.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Skipped { skipped } => Some(skipped),
            Self::Failed { error } => Some(error),
            Self::Measured(_) => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub kernel: Part<Vec<KernelCase>>,
    pub kernel_load: Part<KernelLoad>,
    pub userspace: Userspace,
    pub end_to_end: EndToEnd,
}

/// One frame through the kernel program and through the return-only
/// baseline (BPF_PROG_TEST_RUN).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KernelCase {
    pub case: String,
    pub ns: f64,
    pub baseline_ns: f64,
    pub ratio: f64,
    pub frame_bytes: u64,
    pub lost_events: u64,
}

/// Loading the program: seconds, and the verifier's work per program as the
/// example prints it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KernelLoad {
    pub seconds: f64,
    pub programs: Map<String, Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Userspace {
    pub events_per_s: Part<f64>,
    pub rss_mb_100k: Part<f64>,
    pub rss_mb_1m: Part<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_connection_100k: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_connection_1m: Option<f64>,
    pub events_per_s_keepalive: Part<f64>,
    /// Reports written before replay was measured lack it.
    #[serde(default = "not_measured")]
    pub replay_packets_per_s: Part<f64>,
}

fn not_measured() -> Part<f64> {
    Part::skipped("not measured in this run")
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EndToEnd {
    pub throughput_ratio: Part<f64>,
    pub tlsmon_cpu_s_per_1k: Part<f64>,
    pub tshark_cpu_s_per_1k: Part<f64>,
    /// The soak's: the target is about a paced soak. The lab's is beside it.
    pub lost_events: Part<u64>,
    pub lab_lost_events: Part<u64>,
    pub soak: Part<Value>,
    /// `null` when the lab did not run.
    pub lab: Option<LabReport>,
}

/// The proxy lab's runs and what they add up to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabReport {
    pub scenario: String,
    pub seconds_per_run: u64,
    /// The commands, as a reader would type them.
    pub load: String,
    pub tlsmon: String,
    pub tshark: String,
    pub pair_ratios: Vec<f64>,
    pub total_ratio: f64,
    pub cpu_ratio: f64,
    pub machine_busy_s_per_request: f64,
    pub tlsmon_cpu_s_per_request: f64,
    pub machine_busy_share_off: f64,
    pub tlsmon_daemon_cpu_s_per_1k: f64,
    pub tlsmon_kernel_cpu_s_per_1k: f64,
    /// (off, on) per pair.
    pub pairs: Vec<(RunRecord, RunRecord)>,
    pub tshark_runs: Part<Vec<RunRecord>>,
    pub kernel_in_place: Part<InPlace>,
    pub baseline_runs: Vec<RunRecord>,
    /// The same measure under keep-alive load (`plan::APP_DATA_SCENARIO`),
    /// where nearly every packet is application data. Absent from reports
    /// written before it was measured.
    #[serde(default = "not_yet_measured")]
    pub kernel_in_place_app_data: Part<AppDataInPlace>,
    pub load_average_before: Option<f64>,
    pub load_average_after: Option<f64>,
}

/// One run of the load in the lab, and who watched it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub watcher: String,
    pub requests_per_s: f64,
    pub haproxy_lines: u64,
    pub haproxy_completed: u64,
    pub client_connections: u64,
    pub handshakes: u64,
    pub frontend_full: u64,
    pub frontend_resumed: u64,
    pub backend_full: u64,
    pub backend_resumed: u64,
    pub wrk_seconds: f64,
    pub wrk_responses: u64,
    pub wrk_errors: u64,
    pub machine_busy_s: f64,
    pub machine_busy_share: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_user_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_sys_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_runs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_ns_per_run: Option<f64>,
    /// tlsmon's handshakes, or tshark's ServerHellos.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshakes_seen: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_hellos_seen: Option<u64>,
    /// tlsmon's lost events, or the packets tshark's dumpcap dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_events: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packets_dropped: Option<u64>,
}

/// What a run of tlsmon's programs cost on the loaded proxy, against a
/// program that only returns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InPlace {
    pub tlsmon_ns_per_run: f64,
    pub baseline_ns_per_run: f64,
    pub ratio: f64,
}

/// [`InPlace`] under the keep-alive load, with each run's figure and how
/// many requests a connection carried.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AppDataInPlace {
    pub scenario: String,
    pub load: String,
    pub tlsmon_ns_per_run: f64,
    pub baseline_ns_per_run: f64,
    pub ratio: f64,
    /// ns per program run of each tlsmon run, and of each baseline run.
    pub tlsmon_runs: Vec<f64>,
    pub baseline_runs: Vec<f64>,
    /// `wrk`'s responses over the TCP connections the client opened.
    pub requests_per_connection: f64,
}

fn not_yet_measured<T>() -> Part<T> {
    Part::skipped("not measured by this version of the bench")
}

/// `x` rounded to `digits` decimals.
pub fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

/// A number as the report and the docs write it: integral values without a
/// fraction (`38`, not `38.0`), others in Rust's shortest form without an
/// exponent (`0.0000273`, not `2.73e-5`), which is how people read them.
pub fn number(n: f64) -> String {
    if !n.is_finite() {
        "null".to_owned()
    } else if n.fract() == 0.0 && n.abs() < 1e15 {
        #[expect(clippy::cast_possible_truncation, reason = "integral and below 2^53")]
        let i = n as i64;
        i.to_string()
    } else {
        n.to_string()
    }
}

/// serde_json's formatter with numbers written by [`number`].
struct Numbers<F>(F);

/// Forwards the layout to the wrapped formatter (compact or pretty).
macro_rules! forward {
    ($($name:ident($($arg:ident: $ty:ty),*)),* $(,)?) => {$(
        fn $name<W: ?Sized + io::Write>(&mut self, w: &mut W $(, $arg: $ty)*) -> io::Result<()> {
            self.0.$name(w $(, $arg)*)
        }
    )*};
}

impl<F: Formatter> Formatter for Numbers<F> {
    forward!(
        begin_array(),
        end_array(),
        begin_array_value(first: bool),
        end_array_value(),
        begin_object(),
        end_object(),
        begin_object_key(first: bool),
        begin_object_value(),
        end_object_value(),
    );

    fn write_f64<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        w.write_all(number(value).as_bytes())
    }
}

fn write<T: Serialize, F: Formatter>(value: &T, formatter: F) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, Numbers(formatter));
    // Writing to a Vec fails only for a map with non-string keys: none here.
    value.serialize(&mut ser).expect("the report serializes");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

impl Report {
    /// Indented, for the file and the docs.
    pub fn pretty(&self) -> String {
        write(self, PrettyFormatter::new())
    }
}

/// Compact, on one line: what scripts read from stdout.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&write(self, CompactFormatter))
    }
}

/// Every value scripts read must be a positive number (a count may be
/// zero) or say why it was skipped.
pub fn check(report: &Report) -> Result<()> {
    let mut problems = Vec::new();
    let mut need = |path: &str, part: &Part<f64>, zero_ok: bool| match part {
        Part::Measured(n) if *n > 0.0 || (zero_ok && *n == 0.0) => {}
        Part::Skipped { skipped } if !skipped.is_empty() => {}
        _ => problems.push(format!("{path} = {}", compact(part))),
    };
    let mut missing = Vec::new();
    match &report.kernel {
        Part::Measured(cases) => {
            for name in KERNEL_CASES {
                let Some(c) = cases.iter().find(|c| c.case == name) else {
                    missing.push(format!("kernel.{name} is missing"));
                    continue;
                };
                for (key, v) in [
                    ("ns", c.ns),
                    ("baseline_ns", c.baseline_ns),
                    ("ratio", c.ratio),
                ] {
                    need(&format!("kernel.{name}.{key}"), &Part::Measured(v), false);
                }
            }
        }
        other => need("kernel", &other.clone().map(|_| 0.0), false),
    }
    let user = &report.userspace;
    need("userspace.events_per_s", &user.events_per_s, false);
    need("userspace.rss_mb_100k", &user.rss_mb_100k, false);
    need("userspace.rss_mb_1m", &user.rss_mb_1m, false);
    need(
        "userspace.replay_packets_per_s",
        &user.replay_packets_per_s,
        false,
    );
    let e2e = &report.end_to_end;
    need("end_to_end.throughput_ratio", &e2e.throughput_ratio, false);
    need(
        "end_to_end.tlsmon_cpu_s_per_1k",
        &e2e.tlsmon_cpu_s_per_1k,
        false,
    );
    need(
        "end_to_end.tshark_cpu_s_per_1k",
        &e2e.tshark_cpu_s_per_1k,
        false,
    );
    let count = |p: &Part<u64>| p.clone().map(as_f64);
    need("end_to_end.lost_events", &count(&e2e.lost_events), true);
    need(
        "end_to_end.lab_lost_events",
        &count(&e2e.lab_lost_events),
        true,
    );
    problems.extend(missing);
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("{}", problems.join("; "))
    }
}

/// Compact JSON with the report's numbers, for log lines and messages.
pub fn compact<T: Serialize>(value: &T) -> String {
    write(value, CompactFormatter)
}

#[expect(
    clippy::cast_precision_loss,
    reason = "counts of events, requests and handshakes stay far below 2^52"
)]
pub fn as_f64(n: u64) -> f64 {
    n as f64
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A report with every part measured.
    pub(in crate::bench) fn sample() -> Report {
        let case = |name: &str| KernelCase {
            case: name.to_owned(),
            ns: 10.5,
            baseline_ns: 7.0,
            ratio: 1.5,
            frame_bytes: 66,
            lost_events: 0,
        };
        Report {
            kernel: Part::Measured(KERNEL_CASES.iter().map(|c| case(c)).collect()),
            kernel_load: Part::Measured(KernelLoad {
                seconds: 0.61,
                programs: Map::new(),
            }),
            userspace: Userspace {
                events_per_s: Part::Measured(1e6),
                rss_mb_100k: Part::Measured(40.0),
                rss_mb_1m: Part::Measured(600.0),
                bytes_per_connection_100k: None,
                bytes_per_connection_1m: None,
                events_per_s_keepalive: Part::skipped("not run with --quick"),
                replay_packets_per_s: Part::Measured(5e6),
            },
            end_to_end: EndToEnd {
                throughput_ratio: Part::skipped("no lab"),
                tlsmon_cpu_s_per_1k: Part::skipped("no lab"),
                tshark_cpu_s_per_1k: Part::skipped("no lab"),
                lost_events: Part::Measured(0),
                lab_lost_events: Part::Measured(0),
                soak: Part::Measured(serde_json::json!({"lost_events": 0})),
                lab: None,
            },
        }
    }

    /// A lab part with one pair and nothing else measured.
    pub(in crate::bench) fn sample_lab() -> LabReport {
        let run = |watcher: &str| RunRecord {
            watcher: watcher.to_owned(),
            requests_per_s: 700.5,
            haproxy_completed: 2100,
            ..RunRecord::default()
        };
        LabReport {
            scenario: "http".to_owned(),
            seconds_per_run: 3,
            load: "wrk".to_owned(),
            tlsmon: "tlsmon".to_owned(),
            tshark: "tshark".to_owned(),
            pair_ratios: vec![1.0],
            total_ratio: 1.0,
            cpu_ratio: 0.99,
            machine_busy_s_per_request: 0.003,
            tlsmon_cpu_s_per_request: 0.000_027_3,
            machine_busy_share_off: 0.99,
            tlsmon_daemon_cpu_s_per_1k: 0.004,
            tlsmon_kernel_cpu_s_per_1k: 0.01,
            pairs: vec![(run("off"), run("tlsmon"))],
            tshark_runs: Part::skipped("no tshark"),
            kernel_in_place: Part::skipped("no program runs were counted"),
            baseline_runs: Vec::new(),
            kernel_in_place_app_data: Part::skipped("no program runs were counted"),
            load_average_before: Some(1.5),
            load_average_after: None,
        }
    }

    #[test]
    fn check_accepts_numbers_and_reasons_and_refuses_errors() {
        check(&sample()).unwrap();
        let mut bad = sample();
        bad.userspace.rss_mb_1m = Part::Failed {
            error: "boom".to_owned(),
        };
        let err = check(&bad).unwrap_err().to_string();
        assert_eq!(err, r#"userspace.rss_mb_1m = {"error":"boom"}"#);
        let mut zero = sample();
        zero.userspace.events_per_s = Part::Measured(0.0);
        assert!(check(&zero).is_err());
        let mut missing = sample();
        if let Part::Measured(cases) = &mut missing.kernel {
            cases.pop();
        }
        assert!(
            check(&missing)
                .unwrap_err()
                .to_string()
                .contains("kernel.rst is missing")
        );
        let mut skipped = sample();
        skipped.kernel = Part::skipped("not root");
        check(&skipped).unwrap();
        skipped.kernel = Part::skipped("");
        assert!(check(&skipped).is_err());
    }

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(number(38.0), "38");
        assert_eq!(number(0.000_027_3), "0.0000273");
        assert_eq!(number(-300.0), "-300");
        assert_eq!(number(2.5), "2.5");
        assert_eq!(number(f64::NAN), "null");
        let report = sample();
        let line = report.to_string();
        assert!(
            line.starts_with(r#"{"kernel":[{"case":"app_data","ns":10.5,"baseline_ns":7,"#),
            "{line}"
        );
        assert!(
            line.contains(r#""events_per_s_keepalive":{"skipped":"not run with --quick"}"#),
            "{line}"
        );
        assert!(
            report
                .pretty()
                .contains("\n  \"kernel_load\": {\n    \"seconds\": 0.61,")
        );
    }

    #[test]
    fn the_report_reads_back_as_written() {
        let mut report = sample();
        report.end_to_end.lab = Some(sample_lab());
        let back: Report = serde_json::from_str(&report.pretty()).unwrap();
        assert_eq!(back, report);
    }
}
