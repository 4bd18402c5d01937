//! `cargo xtask bench [--quick]`: what tlsmon costs, as one JSON report.
//!
//! The measuring is done by `monitor/examples/bench.rs` (kernel program
//! against a return-only baseline, tracker memory, a soak of the ring
//! buffer), the criterion benchmark `monitor/benches/tracker.rs` and, in
//! the proxy lab, `bench/e2e.rs` (throughput with and without tlsmon, CPU
//! time of tlsmon and of tshark per handshake); this module runs them, assembles their numbers into the report, prints it as
//! one JSON object on stdout (everything else goes to stderr), writes it to
//! `target/bench-report.json` and, unless `--quick`, regenerates
//! docs/performance.md. It fails unless every part of the report holds a
//! positive number or says why it was skipped, which makes `--quick` the
//! smoke test CI can run.

use std::{
    fmt::Write as _,
    fs,
    os::fd::AsFd as _,
    path::Path,
    process::Stdio,
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result, bail, ensure};

use crate::util::{cargo, describe, is_root, target_dir, workspace_root};

mod e2e;

const NOT_ROOT: &str =
    "needs root: loads the kernel program and runs it with BPF_PROG_TEST_RUN (run with sudo)";

/// Kernel cases, in report order.
const KERNEL_CASES: [&str; 5] = [
    "app_data",
    "non_tls",
    "client_hello",
    "server_flight",
    "rst",
];

// Targets from the issue "Performance: measure and bound tlsmon's cost".
/// Application data and non-TLS segments: at most this many times the baseline.
const MAX_PASS_THROUGH_RATIO: f64 = 1.5;
/// Packets that produce an event: at most this many ns.
const MAX_EVENT_PACKET_NS: f64 = 1000.0;
const MIN_EVENTS_PER_S: f64 = 2e6;
const MIN_THROUGHPUT_RATIO: f64 = 0.97;
/// Below this share of all CPUs busy, throughput is not bound by CPU time
/// and the CPU-time ratio does not stand for it.
const MIN_BUSY_SHARE: f64 = 0.9;
const SOAK_RATE: f64 = 20_000.0;

pub fn run(quick: bool) -> Result<()> {
    let root = workspace_root();
    let started = SystemTime::now();
    let (kernel, kernel_load) = if is_root() {
        match kernel_part(quick) {
            Ok(parts) => parts,
            Err(e) => {
                let e = part("kernel", Err(e));
                (e.clone(), e)
            }
        }
    } else {
        (skipped(NOT_ROOT), skipped(NOT_ROOT))
    };
    let soak = if is_root() {
        part("soak", example(&["soak"], quick).map(|v| tidy(&v)))
    } else {
        skipped(NOT_ROOT)
    };
    let criterion = run_criterion(quick);
    let tracker = |name: &str| match &criterion {
        Ok(since) => part(name, events_per_s(name, *since)),
        Err(e) => error(e),
    };
    let mut userspace = vec![
        ("events_per_s".to_owned(), tracker("mix")),
        ("rss_mb_100k".to_owned(), Json::Null),
        ("rss_mb_1m".to_owned(), Json::Null),
    ];
    match example(&["rss"], false) {
        Ok(rss) => {
            for key in ["rss_mb_100k", "rss_mb_1m"] {
                let v = rss.get(key).map_or(Json::Null, |v| round(v, 1));
                set(&mut userspace, key, v);
            }
            for key in ["rss_mb_100k_detail", "rss_mb_1m_detail"] {
                if let Some(d) = rss.get(key).and_then(|d| d.get("bytes_per_connection")) {
                    let k = key
                        .replace("rss_mb_", "bytes_per_connection_")
                        .replace("_detail", "");
                    userspace.push((k, round(d, 0)));
                }
            }
        }
        Err(e) => {
            let e = error(&e);
            set(&mut userspace, "rss_mb_100k", e.clone());
            set(&mut userspace, "rss_mb_1m", e);
        }
    }
    userspace.push((
        "events_per_s_keepalive".to_owned(),
        if quick {
            skipped("not run with --quick")
        } else {
            tracker("mix_keepalive")
        },
    ));
    let lost = match soak.get("lost_events") {
        Some(n) => n.clone(),
        None => soak.clone(),
    };
    // The proxy lab's fields, then the soak's; `lost_events` stays the
    // soak's (the target is about a paced soak), the lab's is beside it.
    let mut end_to_end = e2e::run(quick);
    let lab = end_to_end.pop().map_or(Json::Null, |(_, v)| v);
    end_to_end.insert(3, ("lost_events".to_owned(), lost));
    end_to_end.push(("soak".to_owned(), soak));
    end_to_end.push(("lab".to_owned(), lab));
    let report = Json::Obj(vec![
        ("kernel".to_owned(), kernel),
        ("kernel_load".to_owned(), kernel_load),
        ("userspace".to_owned(), Json::Obj(userspace)),
        ("end_to_end".to_owned(), Json::Obj(end_to_end)),
    ]);
    println!("{report}");
    let out = target_dir().join("bench-report.json");
    fs::create_dir_all(target_dir())?;
    fs::write(&out, format!("{}\n", report.pretty()))
        .with_context(|| format!("writing {}", out.display()))?;
    eprintln!("xtask bench: report written to {}", out.display());
    let checked = check(&report);
    if !quick {
        let doc = root.join("docs/performance.md");
        fs::write(&doc, performance_md(&report, started))
            .with_context(|| format!("writing {}", doc.display()))?;
        eprintln!("xtask bench: {} regenerated", doc.display());
    }
    checked.context("the benchmark report is incomplete")
}

// ---- running the parts -------------------------------------------------------

/// Runs a subcommand of the bench example and parses the JSON it prints;
/// its stderr (and cargo's) goes to ours.
fn example(args: &[&str], quick: bool) -> Result<Json> {
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
    Json::parse(line).with_context(|| format!("`{text}` printed no JSON: {stdout:?}"))
}

/// The kernel cases, in the report's shape, and what loading the program
/// took (seconds, and the verifier's work per program).
fn kernel_part(quick: bool) -> Result<(Json, Json)> {
    let raw = example(&["kernel"], quick)?;
    let Some(Json::Arr(cases)) = raw.get("cases") else {
        bail!("the kernel benchmark printed no cases");
    };
    let mut out = Vec::new();
    for c in cases {
        let field = |k: &str| c.get(k).cloned().unwrap_or(Json::Null);
        out.push(Json::Obj(vec![
            ("case".to_owned(), field("case")),
            ("ns".to_owned(), round(&field("ns"), 1)),
            ("baseline_ns".to_owned(), round(&field("baseline_ns"), 1)),
            ("ratio".to_owned(), round(&field("ratio"), 3)),
            ("frame_bytes".to_owned(), field("frame_bytes")),
            ("lost_events".to_owned(), field("lost_events")),
        ]));
    }
    let load = raw.get("load");
    let load = Json::Obj(vec![
        (
            "seconds".to_owned(),
            round(
                load.and_then(|l| l.get("seconds")).unwrap_or(&Json::Null),
                2,
            ),
        ),
        (
            "programs".to_owned(),
            load.and_then(|l| l.get("programs"))
                .cloned()
                .unwrap_or(Json::Null),
        ),
    ]);
    Ok((Json::Arr(out), load))
}

/// Runs the criterion benchmark (with `--quick` only `tracker/mix`, briefly);
/// returns when it started, to tell its results from older ones.
fn run_criterion(quick: bool) -> Result<SystemTime> {
    let mut cmd = cargo();
    cmd.current_dir(workspace_root())
        .env("CRITERION_HOME", criterion_home())
        .args(["bench", "--package", "monitor", "--bench", "tracker", "--"])
        .arg("--noplot");
    if quick {
        cmd.args(["--warm-up-time", "1", "--measurement-time", "2"])
            .args(["--sample-size", "20"])
            .args(["--exact", "tracker/mix"]);
    }
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

fn criterion_home() -> std::path::PathBuf {
    target_dir().join("criterion")
}

/// Events per second of `tracker/<name>`, from the mean time per iteration
/// and the elements per iteration that criterion stored.
fn events_per_s(name: &str, since: SystemTime) -> Result<Json> {
    let dir = criterion_home().join("tracker").join(name).join("new");
    let estimates = dir.join("estimates.json");
    let fresh = fs::metadata(&estimates)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t >= since);
    ensure!(fresh, "criterion wrote no new {}", estimates.display());
    let mean_ns = read_json(&estimates)?
        .get("mean")
        .and_then(|m| m.get("point_estimate"))
        .and_then(Json::as_f64)
        .context("no mean in estimates.json")?;
    let elements = read_json(&dir.join("benchmark.json"))?
        .get("throughput")
        .and_then(|t| t.get("Elements"))
        .and_then(Json::as_f64)
        .context("no element throughput in benchmark.json")?;
    ensure!(mean_ns > 0.0, "criterion measured no time");
    Ok(Json::Num((elements / (mean_ns * 1e-9)).round()))
}

fn read_json(path: &Path) -> Result<Json> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Json::parse(&text).with_context(|| format!("parsing {}", path.display()))
}

fn skipped(why: &str) -> Json {
    Json::Obj(vec![("skipped".to_owned(), Json::Str(why.to_owned()))])
}

/// A part that ran and failed: kept in the report, and fails the check.
fn error(e: &anyhow::Error) -> Json {
    Json::Obj(vec![("error".to_owned(), Json::Str(format!("{e:#}")))])
}

fn part(name: &str, r: Result<Json>) -> Json {
    r.unwrap_or_else(|e| {
        eprintln!("xtask bench: {name} failed: {e:#}");
        error(&e)
    })
}

fn set(fields: &mut [(String, Json)], key: &str, v: Json) {
    if let Some(f) = fields.iter_mut().find(|(k, _)| k == key) {
        f.1 = v;
    }
}

/// Every fractional number rounded to three decimals.
fn tidy(v: &Json) -> Json {
    match v {
        Json::Num(_) => round(v, 3),
        Json::Arr(items) => Json::Arr(items.iter().map(tidy).collect()),
        Json::Obj(fields) => Json::Obj(fields.iter().map(|(k, v)| (k.clone(), tidy(v))).collect()),
        other => other.clone(),
    }
}

fn round(v: &Json, digits: i32) -> Json {
    match v.as_f64() {
        Some(x) => {
            let scale = 10f64.powi(digits);
            Json::Num((x * scale).round() / scale)
        }
        None => v.clone(),
    }
}

// ---- checking ------------------------------------------------------------------

/// Every value the scripts read must be a positive number (a count may be
/// zero) or `{"skipped": reason}`.
fn check(report: &Json) -> Result<()> {
    let mut problems = Vec::new();
    let mut need = |path: &str, v: Option<&Json>, zero_ok: bool| match v {
        Some(Json::Num(n)) if *n > 0.0 || (zero_ok && *n == 0.0) => {}
        Some(v)
            if v.get("skipped")
                .and_then(Json::as_str)
                .is_some_and(|s| !s.is_empty()) => {}
        Some(v) => problems.push(format!("{path} = {v}")),
        None => problems.push(format!("{path} is missing")),
    };
    match report.get("kernel") {
        Some(Json::Arr(cases)) => {
            for name in KERNEL_CASES {
                let case = cases
                    .iter()
                    .find(|c| c.get("case").and_then(Json::as_str) == Some(name));
                for key in ["ns", "baseline_ns", "ratio"] {
                    need(
                        &format!("kernel.{name}.{key}"),
                        case.and_then(|c| c.get(key)),
                        false,
                    );
                }
            }
        }
        v => need("kernel", v, false),
    }
    let user = report.get("userspace");
    for key in ["events_per_s", "rss_mb_100k", "rss_mb_1m"] {
        need(
            &format!("userspace.{key}"),
            user.and_then(|u| u.get(key)),
            false,
        );
    }
    let e2e = report.get("end_to_end");
    for key in [
        "throughput_ratio",
        "tlsmon_cpu_s_per_1k",
        "tshark_cpu_s_per_1k",
    ] {
        need(
            &format!("end_to_end.{key}"),
            e2e.and_then(|u| u.get(key)),
            false,
        );
    }
    for key in ["lost_events", "lab_lost_events"] {
        need(
            &format!("end_to_end.{key}"),
            e2e.and_then(|u| u.get(key)),
            true,
        );
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("{}", problems.join("; "))
    }
}

// ---- docs/performance.md -------------------------------------------------------

fn performance_md(report: &Json, started: SystemTime) -> String {
    let mut md = String::new();
    let kernel_release = fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let _ = writeln!(md, "# Performance\n");
    let _ = writeln!(
        md,
        "<!-- Generated by `cargo xtask bench` (xtask/src/bench.rs): edit that, not this file. -->\n"
    );
    let _ = writeln!(
        md,
        "Measured on {} by `sudo cargo xtask bench` (as root: the kernel parts load the program), \
         on Linux {kernel_release}, {cpu}, {cpus} CPUs. The same numbers are in \
         `target/bench-report.json`. The machine was shared, so single numbers are noisy: kernel \
         costs are compared with a baseline measured in the same run, interleaved.\n",
        civil_date(started)
    );
    targets(&mut md, report);
    kernel_section(&mut md, report.get("kernel"));
    load_section(&mut md, report.get("kernel_load"));
    userspace_section(&mut md, report.get("userspace"));
    end_to_end_section(&mut md, report.get("end_to_end"));
    let _ = writeln!(md, "## The report\n\n```json\n{}\n```", report.pretty());
    md
}

fn case<'a>(report: &'a Json, name: &str, key: &str) -> Option<&'a Json> {
    match report.get("kernel") {
        Some(Json::Arr(cases)) => cases
            .iter()
            .find(|c| c.get("case").and_then(Json::as_str) == Some(name))
            .and_then(|c| c.get(key)),
        _ => None,
    }
}

/// A value for a table cell: the number, or why there is none.
fn cell(v: Option<&Json>, unit: &str) -> String {
    match v {
        Some(Json::Num(n)) => format!("{}{unit}", Json::Num(*n)),
        Some(v) => v
            .get("skipped")
            .or_else(|| v.get("error"))
            .and_then(Json::as_str)
            .map_or_else(|| "—".to_owned(), |s| format!("({s})")),
        None => "—".to_owned(),
    }
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "**not met**",
        None => "not measured",
    }
}

fn targets(md: &mut String, r: &Json) {
    let num = |v: Option<&Json>| v.and_then(Json::as_f64);
    let _ = writeln!(md, "## Targets\n");
    let _ = writeln!(
        md,
        "From the issue \"Performance: measure and bound tlsmon's cost\".\n\n\
         | target | measured | |\n|---|---|---|"
    );
    for name in ["app_data", "non_tls"] {
        let ratio = case(r, name, "ratio");
        let _ = writeln!(
            md,
            "| `{name}` packets ≤ {MAX_PASS_THROUGH_RATIO}× the baseline | {} | {} |",
            cell(ratio, "×"),
            verdict(num(ratio).map(|x| x <= MAX_PASS_THROUGH_RATIO))
        );
    }
    for name in ["client_hello", "server_flight", "rst"] {
        let ns = case(r, name, "ns");
        let _ = writeln!(
            md,
            "| `{name}` packets ≤ 1 µs | {} | {} |",
            cell(ns, " ns"),
            verdict(num(ns).map(|x| x <= MAX_EVENT_PACKET_NS))
        );
    }
    let user = r.get("userspace");
    let eps = user.and_then(|u| u.get("events_per_s"));
    let _ = writeln!(
        md,
        "| tracker ≥ 2 M events/s on one core | {} | {} |",
        cell(eps, " events/s"),
        verdict(num(eps).map(|x| x >= MIN_EVENTS_PER_S))
    );
    let e2e = r.get("end_to_end");
    let tp = e2e.and_then(|e| e.get("throughput_ratio"));
    let tp_verdict = match e2e::ratio_interval(e2e) {
        Some((lo, hi)) => {
            let interval = format!("95% interval {} to {}", Json::Num(lo), Json::Num(hi));
            if lo >= MIN_THROUGHPUT_RATIO {
                format!("met ({interval})")
            } else if hi < MIN_THROUGHPUT_RATIO {
                format!("**not met** ({interval})")
            } else {
                format!("undecided ({interval})")
            }
        }
        None => verdict(num(tp).map(|x| x >= MIN_THROUGHPUT_RATIO)).to_owned(),
    };
    let _ = writeln!(
        md,
        "| proxy throughput with tlsmon ≥ {MIN_THROUGHPUT_RATIO} of without | {} | {tp_verdict} |",
        cell(tp, ""),
    );
    let lab = e2e.and_then(|e| e.get("lab"));
    let cpu_tp = lab.and_then(|l| l.get("cpu_ratio"));
    let busy = num(lab.and_then(|l| l.get("machine_busy_share_off")));
    // The CPU-time ratio stands for throughput only on a saturated machine.
    let cpu_verdict = match busy {
        Some(b) if b < MIN_BUSY_SHARE => format!("not applicable: the machine was {b} busy"),
        _ => verdict(num(cpu_tp).map(|x| x >= MIN_THROUGHPUT_RATIO)).to_owned(),
    };
    let _ = writeln!(
        md,
        "| the same, from CPU time (see below) | {} | {cpu_verdict} |",
        cell(cpu_tp, ""),
    );
    let soak = e2e.and_then(|e| e.get("soak"));
    let lost = num(e2e.and_then(|e| e.get("lost_events")));
    let rate = num(soak.and_then(|s| s.get("handshakes_per_s_achieved")));
    let secs = num(soak.and_then(|s| s.get("seconds")));
    let soak_ok = match (lost, rate, secs) {
        (Some(l), Some(rate), Some(s)) => Some(l == 0.0 && rate >= SOAK_RATE * 0.99 && s >= 59.0),
        _ => None,
    };
    let _ = writeln!(
        md,
        "| no lost events at 20,000 handshakes/s for 60 s | {} lost at {}/s for {} s | {} |\n",
        lost.map_or_else(|| "—".to_owned(), |l| Json::Num(l).to_string()),
        rate.map_or_else(|| "—".to_owned(), |x| Json::Num(x.round()).to_string()),
        secs.map_or_else(|| "—".to_owned(), |x| Json::Num(x.round()).to_string()),
        verdict(soak_ok)
    );
}

fn kernel_section(md: &mut String, kernel: Option<&Json>) {
    let _ = writeln!(
        md,
        "## Kernel program, per packet\n\n\
         `tlsmon_ingress` and `tlsmon_baseline` (a classifier that only returns \
         `TC_ACT_UNSPEC`) run on the same frame with BPF_PROG_TEST_RUN, 1,000,000 repeats per \
         run, 5 runs each, interleaved, and all of that for each of 3 fresh loads of the \
         program; the table shows the median over the 15 runs of the kernel's mean time per \
         repeat. Between loads a case has moved by a quarter, as the JIT places the program at \
         a new address each time and the shared machine's other work changes. The ring buffer is large enough for every event of a run and is drained \
         between runs, so event-producing cases measure a successful reservation. Frames are \
         Ethernet/IPv4/TCP with the timestamp option: `app_data` a 1400-byte TLS application \
         data record, `app_data_vxlan` the same frame inside VXLAN (the tunnel parser's general \
         path), `non_tls` an HTTP request, `client_hello` a 512-byte ClientHello (SNI, \
         ALPN, key_share, supported_versions, session_ticket, GREASE, padding), `server_flight` \
         a TLS 1.2 ServerHello, Certificate (about 1000 bytes), ServerKeyExchange and \
         ServerHelloDone in one segment, `rst` a bare RST.\n"
    );
    let Some(Json::Arr(cases)) = kernel else {
        let _ = writeln!(md, "Not measured: {}\n", cell(kernel, ""));
        return;
    };
    let _ = writeln!(
        md,
        "| case | frame bytes | ns | baseline ns | ratio | events lost |\n|---|---:|---:|---:|---:|---:|"
    );
    for c in cases {
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {} | {} | {} |",
            c.get("case").and_then(Json::as_str).unwrap_or("?"),
            cell(c.get("frame_bytes"), ""),
            cell(c.get("ns"), ""),
            cell(c.get("baseline_ns"), ""),
            cell(c.get("ratio"), ""),
            cell(c.get("lost_events"), ""),
        );
    }
    md.push('\n');
}

fn load_section(md: &mut String, load: Option<&Json>) {
    let _ = writeln!(
        md,
        "### Loading\n\n\
         Loading the program is most of tlsmon's start-up time, nearly all of it the kernel \
         verifier's: the median of separate loads with tlsmon's default 8 MiB ring buffer (the \
         benchmark's own loads above allocate a ring large enough for a whole run, which takes \
         time of its own). The verifier gives up on a program after processing 1,000,000 \
         instructions (`BPF_COMPLEXITY_LIMIT_INSNS`); how much of that budget each program \
         takes is the headroom left for new parsing code.\n\n\
         Load: {} s.\n\n\
         | program | instructions | processed by the verifier |\n|---|---:|---:|",
        cell(load.and_then(|l| l.get("seconds")), "")
    );
    if let Some(Json::Obj(programs)) = load.and_then(|l| l.get("programs")) {
        for (name, p) in programs {
            let _ = writeln!(
                md,
                "| `{name}` | {} | {} |",
                cell(p.get("insns"), ""),
                cell(p.get("verified_insns"), "")
            );
        }
    }
    md.push('\n');
}

fn userspace_section(md: &mut String, user: Option<&Json>) {
    let get = |k: &str| user.and_then(|u| u.get(k));
    let _ = writeln!(
        md,
        "## Userspace\n\n\
         `monitor/benches/tracker.rs` (criterion) feeds the tracker the events of one simulated \
         second at 10,000 handshakes/s — 40% TLS 1.2 full handshakes issuing a session ID and a \
         ticket, 30% TLS 1.2 session-ID resumptions, 20% TLS 1.3 full, 10% TLS 1.3 PSK, with \
         their close_notify/FIN/RST — per iteration, including the once-a-second `tick`, on a \
         tracker already in its steady state.\n\n\
         | measurement | value |\n|---|---:|\n\
         | events/s, connections live 30 ms (`tracker/mix`) | {} |\n\
         | events/s, connections live 3 s, resumptions offer sessions of open connections (`tracker/mix_keepalive`) | {} |\n\
         | RSS growth, 100,000 connections awaiting a ServerHello | {} |\n\
         | RSS growth, 1,000,000 connections awaiting a ServerHello | {} |\n",
        cell(get("events_per_s"), ""),
        cell(get("events_per_s_keepalive"), ""),
        cell(get("rss_mb_100k"), " MiB"),
        cell(get("rss_mb_1m"), " MiB"),
    );
    let (a, b) = (
        get("bytes_per_connection_100k"),
        get("bytes_per_connection_1m"),
    );
    if a.is_some() || b.is_some() {
        let _ = writeln!(
            md,
            "That is {} and {} bytes per connection (VmRSS of a fresh process before and after, \
             each size in its own process).\n",
            cell(a, ""),
            cell(b, "")
        );
    }
}

fn end_to_end_section(md: &mut String, e2e: Option<&Json>) {
    let get = |k: &str| e2e.and_then(|u| u.get(k));
    let soak = get("soak");
    let s = |k: &str| cell(soak.and_then(|v| v.get(k)), "");
    let ms = |k: &str| {
        let v = soak.and_then(|v| v.get(k)).map(|v| round(v, 1));
        cell(v.as_ref(), " ms")
    };
    let lossy = match soak.and_then(|v| v.get("seconds_with_loss")) {
        Some(Json::Arr(items)) if items.is_empty() => "none".to_owned(),
        Some(Json::Arr(items)) => items
            .iter()
            .map(|i| {
                format!(
                    "{} lost in second {}",
                    cell(i.get("lost"), ""),
                    cell(i.get("second"), "")
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => "—".to_owned(),
    };
    let _ = writeln!(
        md,
        "## End to end\n\n### Soak\n\n\
         Complete TLS 1.2 handshakes (ClientHello, server flight, client and server \
         ChangeCipherSpec + Finished, RST), each from its own client port, run through the \
         kernel program with BPF_PROG_TEST_RUN (client packets through `tlsmon_egress`, \
         server packets through `tlsmon_ingress`) and paced at 20,000 handshakes/s, while a \
         second thread drains the daemon's default 8 MiB ring buffer and feeds the tracker as \
         the daemon does. An 8 MiB ring holds about 30,000 events, 0.3 s at this rate: a \
         consumer that stops reading for longer loses events, so the longest drain and \
         `tick` are shown too.\n\n\
         | measurement | value |\n|---|---:|\n\
         | handshakes/s achieved | {} |\n| seconds | {} |\n| handshakes sent | {} |\n\
         | handshakes counted by the tracker | {} |\n| events received / expected | {} / {} |\n\
         | lost events (kernel `STATS`) | {} |\n| when | {lossy} |\n\
         | consumer: longest drain / longest `tick` | {} / {} |\n\
         | consumer thread's share of a CPU | {} |\n\
         | load average before / after | {} / {} |\n",
        s("handshakes_per_s_achieved"),
        s("seconds"),
        s("handshakes_sent"),
        s("handshakes_counted"),
        s("events_received"),
        s("events_expected"),
        cell(get("lost_events"), ""),
        ms("consumer_longest_drain_ms"),
        ms("consumer_longest_tick_ms"),
        cell(
            soak.and_then(|v| v.get("consumer_cpu_share"))
                .map(|v| round(v, 2))
                .as_ref(),
            ""
        ),
        s("load_average_before"),
        s("load_average_after"),
    );
    e2e::section(md, e2e);
}

/// `YYYY-MM-DD` (UTC) of a time, by the days-to-civil conversion of
/// proleptic Gregorian dates.
fn civil_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0) + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

// ---- a small JSON value ----------------------------------------------------------

/// Just enough JSON for the report: xtask stays free of the workspace's
/// serde stack, and object fields keep their order.
#[derive(Clone, Debug, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Self::Obj(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Num(n) => Some(*n),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    fn parse(text: &str) -> Result<Self> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value(0)?;
        p.ws();
        ensure!(p.i == p.s.len(), "trailing characters at byte {}", p.i);
        Ok(v)
    }

    /// Indented, for the file and the docs.
    fn pretty(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, Some(0));
        out
    }

    fn write(&self, out: &mut String, indent: Option<usize>) {
        let newline = |out: &mut String, level: usize| {
            if indent.is_some() {
                out.push('\n');
                out.push_str(&"  ".repeat(level));
            }
        };
        let level = indent.unwrap_or(0);
        let inner = indent.map(|l| l + 1);
        match self {
            Self::Null => out.push_str("null"),
            Self::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Self::Num(n) => write_num(out, *n),
            Self::Str(s) => write_str(out, s),
            Self::Arr(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, level + 1);
                    v.write(out, inner);
                }
                if !items.is_empty() {
                    newline(out, level);
                }
                out.push(']');
            }
            Self::Obj(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, level + 1);
                    write_str(out, k);
                    out.push_str(if indent.is_some() { ": " } else { ":" });
                    v.write(out, inner);
                }
                if !fields.is_empty() {
                    newline(out, level);
                }
                out.push('}');
            }
        }
    }
}

/// Compact, on one line: what scripts read from stdout.
impl std::fmt::Display for Json {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = String::new();
        self.write(&mut out, None);
        f.write_str(&out)
    }
}

fn write_num(out: &mut String, n: f64) {
    if !n.is_finite() {
        out.push_str("null");
    } else if n.fract() == 0.0 && n.abs() < 1e15 {
        #[expect(clippy::cast_possible_truncation, reason = "integral and below 2^53")]
        let i = n as i64;
        let _ = write!(out, "{i}");
    } else {
        let _ = write!(out, "{n}");
    }
}

fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

/// Nesting deeper than this is not a report.
const MAX_DEPTH: usize = 64;

impl Parser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Result<()> {
        self.ws();
        ensure!(
            self.s.get(self.i) == Some(&c),
            "expected '{}' at byte {}",
            char::from(c),
            self.i
        );
        self.i += 1;
        Ok(())
    }

    fn value(&mut self, depth: usize) -> Result<Json> {
        ensure!(depth < MAX_DEPTH, "JSON nested too deeply");
        self.ws();
        let rest = &self.s[self.i..];
        for (word, v) in [
            (&b"null"[..], Json::Null),
            (b"true", Json::Bool(true)),
            (b"false", Json::Bool(false)),
        ] {
            if rest.starts_with(word) {
                self.i += word.len();
                return Ok(v);
            }
        }
        match rest.first() {
            Some(b'"') => self.string().map(Json::Str),
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Json::Arr(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    if self.s.get(self.i) == Some(&b',') {
                        self.i += 1;
                    } else {
                        self.eat(b']')?;
                        return Ok(Json::Arr(items));
                    }
                }
            }
            Some(b'{') => {
                self.i += 1;
                let mut fields = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Json::Obj(fields));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    self.eat(b':')?;
                    fields.push((k, self.value(depth + 1)?));
                    self.ws();
                    if self.s.get(self.i) == Some(&b',') {
                        self.i += 1;
                    } else {
                        self.eat(b'}')?;
                        return Ok(Json::Obj(fields));
                    }
                }
            }
            Some(c) if *c == b'-' || c.is_ascii_digit() => {
                let len = rest
                    .iter()
                    .take_while(|c| c.is_ascii_digit() || b"+-.eE".contains(c))
                    .count();
                let text = std::str::from_utf8(&rest[..len])?;
                self.i += len;
                Ok(Json::Num(
                    text.parse().with_context(|| format!("bad number {text}"))?,
                ))
            }
            _ => bail!("unexpected input at byte {}", self.i),
        }
    }

    fn string(&mut self) -> Result<String> {
        self.eat(b'"')?;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.i) else {
                bail!("unterminated string");
            };
            self.i += 1;
            match c {
                b'"' => return Ok(String::from_utf8(out)?),
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else {
                        bail!("unterminated escape");
                    };
                    self.i += 1;
                    let ch = match e {
                        b'n' => '\n',
                        b't' => '\t',
                        b'r' => '\r',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'u' => {
                            let hex = self.s.get(self.i..self.i + 4).context("short \\u escape")?;
                            self.i += 4;
                            let code = u32::from_str_radix(std::str::from_utf8(hex)?, 16)?;
                            // Surrogates cannot occur in what the benchmarks print.
                            char::from_u32(code).unwrap_or('\u{fffd}')
                        }
                        other => char::from(other),
                    };
                    let mut buf = [0; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                c => out.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loading_section_is_a_paragraph_and_a_table() {
        let load = Json::parse(
            r#"{"seconds": 0.61, "programs": {"tlsmon_ingress": {"verified_insns": 160907, "insns": 4513}}}"#,
        )
        .unwrap();
        let mut md = String::new();
        load_section(&mut md, Some(&load));
        assert!(md.contains("\nLoad: 0.61 s.\n"), "{md}");
        assert!(
            md.contains("\n| `tlsmon_ingress` | 4513 | 160907 |\n"),
            "{md}"
        );
        // Indented lines would render as a code block.
        assert!(!md.lines().any(|l| l.starts_with(' ')), "{md}");
    }

    #[test]
    fn json_round_trips_and_keeps_field_order() {
        let text = r#"{"b": [1, 2.5, -3e2], "a": {"s": "x\"y\n\u00e9"}, "t": true, "n": null}"#;
        let v = Json::parse(text).unwrap();
        assert_eq!(
            v.to_string(),
            r#"{"b":[1,2.5,-300],"a":{"s":"x\"y\né"},"t":true,"n":null}"#
        );
        assert_eq!(Json::parse(&v.pretty()).unwrap(), v);
        assert!(Json::parse("{\"a\": 1} x").is_err());
    }

    #[test]
    fn check_accepts_numbers_and_reasons_and_refuses_errors() {
        let case =
            |name: &str| format!(r#"{{"case":"{name}","ns":10.5,"baseline_ns":7,"ratio":1.5}}"#);
        let cases: Vec<_> = KERNEL_CASES.iter().map(|c| case(c)).collect();
        let good = format!(
            r#"{{"kernel":[{}],"userspace":{{"events_per_s":1e6,"rss_mb_100k":40,"rss_mb_1m":600}},
            "end_to_end":{{"throughput_ratio":{{"skipped":"no lab"}},"tlsmon_cpu_s_per_1k":{{"skipped":"no lab"}},
            "tshark_cpu_s_per_1k":{{"skipped":"no lab"}},"lost_events":0,"lab_lost_events":0}}}}"#,
            cases.join(",")
        );
        check(&Json::parse(&good).unwrap()).unwrap();
        let bad = good.replace(r#""rss_mb_1m":600"#, r#""rss_mb_1m":{"error":"boom"}"#);
        assert!(check(&Json::parse(&bad).unwrap()).is_err());
        let missing = good.replace(r#""lost_events":0"#, r#""lost":0"#);
        assert!(check(&Json::parse(&missing).unwrap()).is_err());
        let skipped_kernel = good.replace(
            &format!("[{}]", cases.join(",")),
            r#"{"skipped":"not root"}"#,
        );
        check(&Json::parse(&skipped_kernel).unwrap()).unwrap();
    }

    #[test]
    fn civil_dates() {
        let at = |s: u64| civil_date(UNIX_EPOCH + std::time::Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01");
        assert_eq!(at(951_782_400), "2000-02-29");
        assert_eq!(at(1_767_225_599), "2025-12-31");
    }
}
