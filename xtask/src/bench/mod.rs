//! `cargo xtask bench [--quick]`: what tlsmon costs, as one JSON report.
//!
//! The measuring is done by `monitor/examples/bench.rs` (kernel program
//! against a return-only baseline, tracker memory, a soak of the ring
//! buffer), the criterion benchmark `monitor/benches/tracker.rs`
//! (`run_micro`) and, in the proxy lab, with and without tlsmon and with
//! tshark (`run_lab`, `statistics`). This module runs the parts the plan
//! names (`plan`), assembles the report (`report`), prints it as one JSON
//! object on stdout (everything else goes to stderr), writes it to
//! `target/bench-report.json` and, in a full run, regenerates
//! docs/performance.md (`markdown`, `markdown_lab`). It fails unless every
//! part of the report holds a positive number or says why it was skipped,
//! which makes `--quick` the smoke test CI can run.

mod cell;
mod markdown;
mod markdown_lab;
mod outputs;
mod plan;
mod report;
mod run_lab;
mod run_micro;
mod statistics;
mod watchers;

use std::{fs, time::SystemTime};

use anyhow::{Context as _, Result};

use self::{
    plan::{FULL, Plan, QUICK},
    report::{EndToEnd, Part, Report, Userspace, check},
    statistics::LabParts,
};
use crate::util::{is_root, target_dir, workspace_root};

const NOT_ROOT: &str =
    "needs root: loads the kernel program and runs it with BPF_PROG_TEST_RUN (run with sudo)";

pub fn run(quick: bool) -> Result<()> {
    let plan = if quick { &QUICK } else { &FULL };
    let started = SystemTime::now();
    let (kernel, kernel_load) = if is_root() {
        match run_micro::kernel(plan) {
            Ok((cases, load)) => (Part::Measured(cases), Part::Measured(load)),
            Err(e) => {
                eprintln!("xtask bench: kernel failed: {e:#}");
                (Part::failed(&e), Part::failed(&e))
            }
        }
    } else {
        (Part::skipped(NOT_ROOT), Part::skipped(NOT_ROOT))
    };
    let soak = if is_root() {
        Part::from_result("soak", run_micro::soak(plan))
    } else {
        Part::skipped(NOT_ROOT)
    };
    let userspace = userspace(plan);
    let lab = match run_lab::cannot_run() {
        Some(why) => LabParts::without(&Part::skipped(why)),
        None => match run_lab::measure(&plan.lab) {
            Ok(measured) => measured.summarize(),
            Err(e) => {
                eprintln!("xtask bench: proxy lab failed: {e:#}");
                LabParts::without(&Part::failed(&e))
            }
        },
    };
    let lost_events = match &soak {
        Part::Measured(s) => s["lost_events"].as_u64().map_or_else(
            || Part::skipped("the soak counted no lost events"),
            Part::Measured,
        ),
        other => other.clone().map(|_| 0),
    };
    let report = Report {
        kernel,
        kernel_load,
        userspace,
        end_to_end: EndToEnd {
            throughput_ratio: lab.throughput_ratio,
            tlsmon_cpu_s_per_1k: lab.tlsmon_cpu_s_per_1k,
            tshark_cpu_s_per_1k: lab.tshark_cpu_s_per_1k,
            lost_events,
            lab_lost_events: lab.lab_lost_events,
            soak,
            lab: lab.lab,
        },
    };
    println!("{report}");
    let out = target_dir().join("bench-report.json");
    fs::create_dir_all(target_dir())?;
    fs::write(&out, format!("{}\n", report.pretty()))
        .with_context(|| format!("writing {}", out.display()))?;
    eprintln!("xtask bench: report written to {}", out.display());
    let checked = check(&report);
    if plan.writes_doc {
        let doc = workspace_root().join("docs/performance.md");
        fs::write(&doc, markdown::performance_md(&report, started))
            .with_context(|| format!("writing {}", doc.display()))?;
        eprintln!("xtask bench: {} regenerated", doc.display());
    }
    checked.context("the benchmark report is incomplete")
}

/// The tracker's speed (criterion) and memory (the bench example).
fn userspace(plan: &Plan) -> Userspace {
    let criterion = run_micro::criterion(plan);
    let tracker = |name: &str| match &criterion {
        Ok(since) => Part::from_result(name, run_micro::events_per_s(name, *since)),
        Err(e) => Part::failed(e),
    };
    let (rss_mb_100k, rss_mb_1m, bytes_per_connection_100k, bytes_per_connection_1m) =
        match run_micro::rss() {
            Ok(rss) => (
                Part::Measured(rss.mb_100k),
                Part::Measured(rss.mb_1m),
                Some(rss.bytes_per_connection_100k),
                Some(rss.bytes_per_connection_1m),
            ),
            Err(e) => (Part::failed(&e), Part::failed(&e), None, None),
        };
    Userspace {
        events_per_s: tracker("mix"),
        rss_mb_100k,
        rss_mb_1m,
        bytes_per_connection_100k,
        bytes_per_connection_1m,
        events_per_s_keepalive: if plan.keepalive {
            tracker("mix_keepalive")
        } else {
            Part::skipped("not run with --quick")
        },
        replay_packets_per_s: Part::from_result("replay", run_micro::replay_packets_per_s(plan)),
    }
}
