//! Runs the measurements outside the lab: the bench example
//! (`monitor/examples/bench.rs`: the kernel program against a return-only
//! baseline, tracker memory, a soak of the ring buffer) and the criterion
//! benchmark of the tracker (`monitor/benches/tracker.rs`), and reads
//! their numbers.

use std::{
    fs,
    os::fd::AsFd as _,
    path::{Path, PathBuf},
    process::Stdio,
    time::SystemTime,
};

use anyhow::{Context as _, Result, ensure};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::Value;

use super::{
    plan::Plan,
    report::{KernelCase, KernelLoad, round},
};
use crate::util::{cargo, describe, target_dir, workspace_root};

/// Runs a subcommand of the bench example and parses the JSON it prints
/// last; its stderr (and cargo's) goes to ours.
fn example<T: DeserializeOwned>(args: &[&str], quick: bool) -> Result<T> {
    let mut cmd = cargo();
    cmd.current_dir(workspace_root()).args([
        "run",
        "--release",
        "--quiet",
        "--package",
        "monitor",
        "--example",
        "bench",
        "--",
    ]);
    cmd.args(args);
    if quick {
        cmd.arg("--quick");
    }
    let text = describe(&cmd);
    eprintln!("+ {text}");
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("could not start `{text}`"))?;
    ensure!(out.status.success(), "`{text}` failed: {}", out.status);
    let stdout = String::from_utf8(out.stdout).context("non-UTF-8 output")?;
    let line = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    serde_json::from_str(line)
        .with_context(|| format!("`{text}` printed no report we can read: {stdout:?}"))
}

/// `tlsmon replay`'s packets per second with the host engine
/// (monitor/examples/bench/replay.rs: the fixture captures repeated).
pub fn replay_packets_per_s(plan: &Plan) -> Result<f64> {
    #[derive(Deserialize)]
    struct Out {
        packets_per_s: f64,
    }
    let out: Out = example(&["replay"], plan.example_quick)?;
    Ok(round(out.packets_per_s, 0))
}

/// What `bench kernel` prints (more than the report keeps).
#[derive(Deserialize)]
struct KernelOutput {
    cases: Vec<KernelCase>,
    load: KernelLoad,
}

/// The kernel cases, in the report's shape, and what loading the program
/// took (seconds, and the verifier's work per program).
pub fn kernel(plan: &Plan) -> Result<(Vec<KernelCase>, KernelLoad)> {
    let raw: KernelOutput = example(&["kernel"], plan.example_quick)?;
    let cases = raw
        .cases
        .into_iter()
        .map(|c| KernelCase {
            ns: round(c.ns, 1),
            baseline_ns: round(c.baseline_ns, 1),
            ratio: round(c.ratio, 3),
            ..c
        })
        .collect();
    let load = KernelLoad {
        seconds: round(raw.load.seconds, 2),
        ..raw.load
    };
    Ok((cases, load))
}

/// `bench soak`'s report, with every fraction rounded to three decimals.
pub fn soak(plan: &Plan) -> Result<Value> {
    example(&["soak"], plan.example_quick).map(tidy)
}

fn tidy(v: Value) -> Value {
    match v {
        Value::Number(n) if n.is_f64() => n
            .as_f64()
            .and_then(|x| serde_json::Number::from_f64(round(x, 3)))
            .map_or(Value::Null, Value::Number),
        Value::Array(items) => Value::Array(items.into_iter().map(tidy).collect()),
        Value::Object(fields) => {
            Value::Object(fields.into_iter().map(|(k, v)| (k, tidy(v))).collect())
        }
        other => other,
    }
}

/// What `bench rss` prints: growth of the resident set for 100,000 and
/// 1,000,000 connections, each in a process of its own.
#[derive(Deserialize)]
#[expect(
    clippy::struct_field_names,
    reason = "the example's key names, read as they are"
)]
struct RssOutput {
    rss_mb_100k: f64,
    rss_mb_1m: f64,
    rss_mb_100k_detail: RssDetail,
    rss_mb_1m_detail: RssDetail,
}

#[derive(Deserialize)]
struct RssDetail {
    bytes_per_connection: f64,
}

/// Memory of connections awaiting a ServerHello.
pub struct Rss {
    pub mb_100k: f64,
    pub mb_1m: f64,
    pub bytes_per_connection_100k: f64,
    pub bytes_per_connection_1m: f64,
}

pub fn rss() -> Result<Rss> {
    let raw: RssOutput = example(&["rss"], false)?;
    Ok(Rss {
        mb_100k: round(raw.rss_mb_100k, 1),
        mb_1m: round(raw.rss_mb_1m, 1),
        bytes_per_connection_100k: round(raw.rss_mb_100k_detail.bytes_per_connection, 0),
        bytes_per_connection_1m: round(raw.rss_mb_1m_detail.bytes_per_connection, 0),
    })
}

/// Runs the criterion benchmark as the plan says; returns when it started,
/// to tell its results from older ones.
pub fn criterion(plan: &Plan) -> Result<SystemTime> {
    let mut cmd = cargo();
    cmd.current_dir(workspace_root())
        .env("CRITERION_HOME", criterion_home())
        .args(["bench", "--package", "monitor", "--bench", "tracker", "--"])
        .arg("--noplot")
        .args(plan.criterion);
    let text = describe(&cmd);
    eprintln!("+ {text}");
    // Criterion reports on stdout, which belongs to the JSON report.
    let stderr = std::io::stderr().as_fd().try_clone_to_owned()?;
    let started = SystemTime::now();
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(stderr))
        .status()
        .with_context(|| format!("could not start `{text}`"))?;
    ensure!(status.success(), "`{text}` failed: {status}");
    Ok(started)
}

fn criterion_home() -> PathBuf {
    target_dir().join("criterion")
}

/// `estimates.json` of a criterion benchmark: nanoseconds per iteration.
#[derive(Deserialize)]
struct Estimates {
    mean: Estimate,
}

#[derive(Deserialize)]
struct Estimate {
    point_estimate: f64,
}

/// `benchmark.json`: the elements one iteration handles.
#[derive(Deserialize)]
struct Benchmark {
    throughput: Throughput,
}

#[derive(Deserialize)]
struct Throughput {
    #[serde(rename = "Elements")]
    elements: f64,
}

/// Events per second of `tracker/<name>`, from the mean time per iteration
/// and the elements per iteration that criterion stored since `since`.
pub fn events_per_s(name: &str, since: SystemTime) -> Result<f64> {
    let dir = criterion_home().join("tracker").join(name).join("new");
    let estimates = dir.join("estimates.json");
    let fresh = fs::metadata(&estimates)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t >= since);
    ensure!(fresh, "criterion wrote no new {}", estimates.display());
    let mean_ns = read_json::<Estimates>(&estimates)?.mean.point_estimate;
    let elements = read_json::<Benchmark>(&dir.join("benchmark.json"))?
        .throughput
        .elements;
    ensure!(mean_ns > 0.0, "criterion measured no time");
    Ok((elements / (mean_ns * 1e-9)).round())
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tidy_rounds_fractions_and_keeps_counts() {
        let v = serde_json::json!({"a": 1.23456, "n": 7, "l": [{"x": 0.5004}], "s": "t"});
        assert_eq!(
            tidy(v),
            serde_json::json!({"a": 1.235, "n": 7, "l": [{"x": 0.5}], "s": "t"})
        );
    }

    #[test]
    fn criterion_files_read() {
        let e: Estimates =
            serde_json::from_str(r#"{"mean":{"confidence_interval":{},"point_estimate":2.5e6}}"#)
                .unwrap();
        assert!((e.mean.point_estimate - 2.5e6).abs() < 1e-9);
        let b: Benchmark =
            serde_json::from_str(r#"{"group_id":"tracker","throughput":{"Elements":10000}}"#)
                .unwrap();
        assert!((b.throughput.elements - 1e4).abs() < 1e-9);
    }
}
