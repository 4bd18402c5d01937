//! Acceptance against `HAProxy`'s own counters, in the proxy lab
//! (`docs/proxy-lab.md`): Debian's `HAProxy` terminates client TLS and
//! re-encrypts to `openssl s_server`, nginx and a Python `ssl` server, each
//! scenario drives 300 requests through it, and the real `tlsmon` watches
//! both proxy interfaces. Per TLS server, tlsmon's full and resumed
//! handshakes must equal what `HAProxy` logged (`ssl_fc_is_resumed`,
//! `ssl_bc_is_resumed`), and the Python backend must show the diagnosis:
//! every offer rejected after unclean closes in `broken`, none in `working`.
//!
//! The `broken` run also checks the Grafana dashboard
//! (`packaging/grafana/tlsmon.json`) against the metrics this tlsmon
//! serves.
//!
//! The lab itself is the xtask library's (`xtask::lab`), the one `cargo
//! xtask lab`, the demo and the bench use. Needs root, haproxy, nginx,
//! openssl and python3 (`cargo xtask setup`).

use std::{
    collections::BTreeMap,
    env,
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::{Child, Stdio},
    sync::{Mutex, PoisonError},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;
use xtask::{
    grafana,
    lab::{self, BACKENDS, HaproxyCounts, Lab, LoadOptions, LoadSummary, Ns, Scenario, Tally},
    util::wait_until,
};

const TLSMON: &str = env!("CARGO_BIN_EXE_tlsmon");
/// The tests' own lab instance: never the one `cargo xtask lab` uses.
const TEST_PREFIX: &str = "tlsmon-lab-test";
const REQUESTS: u32 = 300;
/// tlsmon says `tlsmon: attached to ...` on stderr once its classifier is
/// attached; loading it (the verifier) can take a while on a debug build.
const ATTACH_TIMEOUT: Duration = Duration::from_mins(1);
/// `HAProxy` writes a line when a connection ends, the Python backend when it
/// has closed its side.
const LOG_TIMEOUT: Duration = Duration::from_secs(15);
/// Lets the last packets' events reach userspace before stopping tlsmon.
const DRAIN_TIME: Duration = Duration::from_secs(1);
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);
/// Another `cargo test` process running these tests holds the lock this long at most.
const LOCK_TIMEOUT: Duration = Duration::from_mins(5);

/// The tests share one lab instance: one at a time in this process, and
/// across processes by the lab's lock.
static SERIAL: Mutex<()> = Mutex::new(());

/// Tears the lab down however the test ends; on a panic keeps a copy of the
/// logs and configs in the temporary directory.
struct Running {
    lab: Lab,
    scenario: String,
    tlsmon: Option<Child>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut tlsmon) = self.tlsmon.take() {
            let _ = tlsmon.kill();
            let _ = tlsmon.wait();
        }
        if thread::panicking() {
            let kept = self
                .lab
                .keep_logs(&env::temp_dir().join(format!("{TEST_PREFIX}-{}", self.scenario)));
            eprintln!("proxy lab: logs and configs kept in {}", kept.display());
        }
        if let Err(err) = self.lab.down() {
            eprintln!("proxy lab: {err:#}");
        }
    }
}

fn read(path: &Path) -> String {
    fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

/// Everything one scenario run produced.
struct Outcome {
    scenario: Scenario,
    load: LoadSummary,
    haproxy: HaproxyCounts,
    /// The Python backend's own log: full and resumed handshakes.
    python_log: Tally,
    /// tlsmon's last `"type":"server"` line per server.
    servers: BTreeMap<String, Value>,
    summary: Value,
    tlsmon_stderr: String,
}

fn require_prerequisites() {
    for check in [lab::require_root, lab::require_programs] {
        check().unwrap_or_else(|e| {
            panic!("the proxy-lab tests: {e:#} (run them as root, e.g. via `cargo xtask test`)")
        });
    }
}

/// Where tlsmon's output goes.
struct TlsmonFiles {
    out: PathBuf,
    err: PathBuf,
}

impl TlsmonFiles {
    fn output(&self) -> String {
        format!(
            "--- tlsmon stdout (last lines) ---\n{}\n--- tlsmon stderr ---\n{}",
            last_lines(&read(&self.out), 12),
            read(&self.err)
        )
    }
}

/// Where tlsmon serves its metrics in the proxy namespace, when asked to.
const METRICS: &str = "127.0.0.1:9464";

/// Whether a run also checks the Grafana dashboard against tlsmon's
/// metrics.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dashboard {
    Check,
    Skip,
}

/// Starts tlsmon on both proxy interfaces and waits until it has attached;
/// with the metrics endpoint (and the kernel programs' cost, which the
/// dashboard shows) for a dashboard check.
fn start_tlsmon(lab: &Lab, files: &TlsmonFiles, dashboard: Dashboard) -> Child {
    let mut cmd = lab.tlsmon_command(Path::new(TLSMON));
    if dashboard == Dashboard::Check {
        cmd.args(["--metrics", METRICS, "--kernel-cost"]);
    }
    // --duration is only a backstop: the test stops it with SIGINT.
    cmd.args(["--headless", "--interval", "1", "--duration", "150"])
        .stdin(Stdio::null())
        .stdout(fs::File::create(&files.out).expect("creating tlsmon.out"))
        .stderr(fs::File::create(&files.err).expect("creating tlsmon.err"));
    let mut tlsmon = cmd.spawn().expect("starting tlsmon in the proxy namespace");
    let started = Instant::now();
    loop {
        assert!(
            tlsmon.try_wait().expect("checking on tlsmon").is_none(),
            "tlsmon exited during start-up\n{}",
            files.output()
        );
        if read(&files.err).contains("attached to") {
            return tlsmon;
        }
        if started.elapsed() >= ATTACH_TIMEOUT {
            let _ = tlsmon.kill();
            let _ = tlsmon.wait();
            panic!(
                "tlsmon did not report `attached to` on stderr within {ATTACH_TIMEOUT:?}\n{}",
                files.output()
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for `HAProxy`'s line for every connection, and the Python
/// backend's for every connection `HAProxy` made to it.
fn wait_for_logs(lab: &Lab) -> (HaproxyCounts, Tally) {
    let deadline = Instant::now() + LOG_TIMEOUT;
    loop {
        let haproxy = lab.haproxy_counts().expect("reading HAProxy's log");
        let python_log = lab.python_counts();
        if (haproxy.lines >= u64::from(REQUESTS)
            && python_log.total() >= haproxy.backend("python").total())
            || Instant::now() >= deadline
        {
            return (haproxy, python_log);
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Scrapes the running tlsmon's metrics from inside the proxy namespace
/// and checks every name the Grafana dashboard reads against them: the
/// real exposition is the source that cannot drift from the code.
fn check_dashboard(lab: &Lab, files: &TlsmonFiles) {
    // The metrics page is refreshed every second.
    thread::sleep(Duration::from_millis(2500));
    let out = lab
        .exec(Ns::Proxy, "curl")
        .args(["--silent", "--show-error", "--max-time", "5"])
        .arg(format!("http://{METRICS}/metrics"))
        .output()
        .expect("starting curl in the proxy namespace");
    assert!(
        out.status.success(),
        "scraping tlsmon's metrics: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        files.output()
    );
    let exposition = String::from_utf8_lossy(&out.stdout);
    let exported = grafana::exported_by(&exposition).unwrap_or_else(|e| panic!("{e:#}"));
    grafana::check(
        grafana::DASHBOARD,
        &exported,
        "the metrics of the tlsmon under test",
    )
    .unwrap_or_else(|e| panic!("{e:#}\n--- the exposition ---\n{exposition}"));
}

/// Stops tlsmon with SIGINT and returns its last line per server and its
/// summary line.
fn stop_tlsmon(tlsmon: &mut Child, files: &TlsmonFiles) -> (BTreeMap<String, Value>, Value) {
    thread::sleep(DRAIN_TIME);
    let pid = libc::pid_t::try_from(tlsmon.id()).expect("PID fits pid_t");
    // SAFETY: kill has no memory-safety preconditions; the child is not yet
    // reaped, so the PID is still tlsmon's.
    let rc = unsafe { libc::kill(pid, libc::SIGINT) };
    assert_eq!(
        rc,
        0,
        "SIGINT to tlsmon: {}",
        std::io::Error::last_os_error()
    );
    let status = wait_until(tlsmon, Instant::now() + EXIT_TIMEOUT).expect("waiting for tlsmon");
    assert!(
        status.is_some_and(|s| s.success()),
        "tlsmon did not exit cleanly after SIGINT ({status:?})\n{}",
        files.output()
    );
    let mut servers = BTreeMap::new();
    let mut summary = Value::Null;
    for line in read(&files.out).lines().filter(|l| !l.trim().is_empty()) {
        let value: Value = serde_json::from_str(line).unwrap_or_else(|e| {
            panic!(
                "tlsmon printed a line that is not JSON ({e}): {line}\n{}",
                files.output()
            )
        });
        match value["type"].as_str() {
            Some("server") => {
                let server = value["server"].as_str().unwrap_or_default().to_owned();
                servers.insert(server, value);
            }
            Some("summary") => summary = value,
            _ => {}
        }
    }
    (servers, summary)
}

/// Brings the test lab up in `scenario_name`, runs tlsmon and the load,
/// collects both sides' counts and checks them (`scenario_checks` gets
/// tlsmon's line for the Python backend) while the lab still exists, so that
/// a failure keeps its logs.
fn run(
    scenario_name: &str,
    dashboard: Dashboard,
    scenario_checks: impl FnOnce(&Value) -> Vec<String>,
) {
    require_prerequisites();
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let lab = Lab::new(TEST_PREFIX);
    let _lock = lab
        .lock(Some(LOCK_TIMEOUT))
        .unwrap_or_else(|e| panic!("{e:#}"));
    let scenario = Scenario::parse(scenario_name).expect("a known scenario");
    let mut running = Running {
        lab,
        scenario: scenario_name.to_owned(),
        tlsmon: None,
    };
    let lab = running.lab.clone();
    lab.up(&scenario)
        .unwrap_or_else(|e| panic!("lab up {scenario_name}: {e:#}"));

    let state = lab.state_dir();
    let files = TlsmonFiles {
        out: state.join("tlsmon.out"),
        err: state.join("tlsmon.err"),
    };
    let tlsmon = running.tlsmon.insert(start_tlsmon(&lab, &files, dashboard));

    let load = lab
        .load(&LoadOptions {
            requests: REQUESTS,
            ..LoadOptions::default()
        })
        .unwrap_or_else(|e| panic!("load: {e:#}"));
    assert!(
        load.ok == u64::from(REQUESTS) && load.errors == 0,
        "the load client's requests failed: {load:?}\n--- HAProxy stderr ---\n{}",
        read(&state.join("haproxy.err"))
    );
    let (haproxy, python_log) = wait_for_logs(&lab);
    if dashboard == Dashboard::Check {
        check_dashboard(&lab, &files);
    }
    let (servers, summary) = stop_tlsmon(tlsmon, &files);
    let outcome = Outcome {
        scenario,
        load,
        haproxy,
        python_log,
        servers,
        summary,
        tlsmon_stderr: read(&files.err),
    };
    check(&outcome, scenario_checks);
    drop(running);
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn count(line: Option<&Value>, field: &str) -> Option<u64> {
    line?.get(field)?.as_u64()
}

fn show(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// `HAProxy`'s counts and tlsmon's, side by side.
fn table(outcome: &Outcome) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "scenario {} — load: {:?}",
        outcome.scenario.describe(),
        outcome.load
    );
    let _ = writeln!(
        text,
        "{:<26}| {:>13} {:>7} {:>7} | {:<8} {:>6} {:>7} {:>7} {:>8} {:>9} {:>9} {:>9} {:>7} {:>9}",
        "server",
        "HAProxy: full",
        "resumed",
        "unknown",
        "tlsmon:",
        "full",
        "resumed",
        "offered",
        "rejected",
        "rej_uncln",
        "rej_clean",
        "rej_unkn",
        "clean",
        "unclean"
    );
    let mut rows = vec![(
        format!("frontend {}", lab::frontend_server()),
        lab::frontend_server(),
        outcome.haproxy.frontend,
    )];
    for backend in BACKENDS {
        rows.push((
            format!("{} {}", backend.name, lab::backend_server(&backend)),
            lab::backend_server(&backend),
            outcome.haproxy.backend(backend.name),
        ));
    }
    for (label, server, tally) in rows {
        let line = outcome.servers.get(&server);
        let _ = writeln!(
            text,
            "{:<26}| {:>13} {:>7} {:>7} | {:<8} {:>6} {:>7} {:>7} {:>8} {:>9} {:>9} {:>9} {:>7} {:>9}",
            label,
            tally.full,
            tally.resumed,
            tally.unknown,
            line.and_then(|l| l["role"].as_str()).unwrap_or("(none)"),
            show(count(line, "full")),
            show(count(line, "resumed")),
            show(count(line, "offered")),
            show(count(line, "rejected")),
            show(count(line, "rejected_after_unclean")),
            show(count(line, "rejected_after_clean")),
            show(count(line, "rejected_origin_unknown")),
            show(count(line, "clean_closes")),
            show(count(line, "unclean_closes")),
        );
    }
    let _ = writeln!(
        text,
        "{:<26}| {:>13} {:>7} {:>7} | (the Python backend's own log)",
        "python: backend.py log",
        outcome.python_log.full,
        outcome.python_log.resumed,
        outcome.python_log.unknown
    );
    let _ = writeln!(text, "tlsmon summary: {}", outcome.summary);
    text
}

/// Every disagreement between tlsmon and `HAProxy`, and every broken premise.
fn mismatches(outcome: &Outcome) -> Vec<String> {
    let mut found = Vec::new();
    let haproxy = &outcome.haproxy;
    if haproxy.lines != u64::from(REQUESTS) {
        found.push(format!(
            "HAProxy logged {} connections, the load made {REQUESTS}",
            haproxy.lines
        ));
    }
    if haproxy.no_server > 0 {
        found.push(format!("{} connections got no server", haproxy.no_server));
    }
    let mut expected = vec![(
        "frontend".to_owned(),
        lab::frontend_server(),
        "frontend",
        haproxy.frontend,
    )];
    for backend in BACKENDS {
        let tally = haproxy.backend(backend.name);
        let connections = tally.total();
        // Round robin over three servers, one connection per request.
        if connections != u64::from(REQUESTS / 3) {
            found.push(format!(
                "HAProxy sent {connections} connections to {}, expected {} (round robin)",
                backend.name,
                REQUESTS / 3
            ));
        }
        expected.push((
            backend.name.to_owned(),
            lab::backend_server(&backend),
            "backend",
            tally,
        ));
    }
    for (name, server, role, tally) in &expected {
        if tally.unknown > 0 {
            found.push(format!(
                "HAProxy logged {} connections of {name} without a resumption value",
                tally.unknown
            ));
        }
        let Some(line) = outcome.servers.get(server) else {
            found.push(format!("tlsmon printed no line for {name} ({server})"));
            continue;
        };
        if line["role"] != *role {
            found.push(format!(
                "tlsmon's role for {name}: {}, expected {role}",
                line["role"]
            ));
        }
        for (field, want) in [("full", tally.full), ("resumed", tally.resumed)] {
            let got = count(Some(line), field);
            if got != Some(want) {
                found.push(format!(
                    "{name}: tlsmon {field} = {}, HAProxy logged {want}",
                    show(got)
                ));
            }
        }
    }
    let python = haproxy.backend("python");
    if outcome.python_log != python {
        found.push(format!(
            "the Python backend's own log ({:?}) disagrees with HAProxy's ({python:?})",
            outcome.python_log
        ));
    }
    if count(Some(&outcome.summary), "lost_events") != Some(0) {
        found.push(format!(
            "tlsmon's summary reports lost events (or none): {}",
            outcome.summary
        ));
    }
    found
}

fn check(outcome: &Outcome, scenario_checks: impl FnOnce(&Value) -> Vec<String>) {
    let mut found = mismatches(outcome);
    let python_server = lab::backend_server(&BACKENDS[2]);
    match outcome.servers.get(&python_server) {
        Some(line) => found.extend(scenario_checks(line)),
        None => found.push(format!(
            "tlsmon printed no line for the Python backend ({python_server})"
        )),
    }
    let report = table(outcome);
    if found.is_empty() {
        // Shown with --nocapture.
        println!("{report}");
    }
    assert!(
        found.is_empty(),
        "tlsmon disagrees with HAProxy or the scenario did not reproduce:\n  - {}\n\n{report}\n\
         --- tlsmon stderr ---\n{}",
        found.join("\n  - "),
        outcome.tlsmon_stderr
    );
}

#[test]
fn broken_backend_reuse_matches_haproxy() {
    // Every series the dashboard reads has samples here, rejections after
    // unclean closes included.
    run("broken", Dashboard::Check, |python| {
        let offered = count(Some(python), "offered").unwrap_or(0);
        let rejected = count(Some(python), "rejected").unwrap_or(0);
        let unclean = count(Some(python), "rejected_after_unclean").unwrap_or(0);
        let mut found = Vec::new();
        if offered == 0 || rejected != offered {
            found.push(format!(
                "python: HAProxy's resets should make every offer fail: offered {offered}, rejected {rejected}"
            ));
        }
        if unclean == 0 {
            found.push("python: rejected_after_unclean is 0".to_owned());
        }
        found
    });
}

#[test]
fn working_backend_reuse_matches_haproxy() {
    run("working", Dashboard::Skip, |python| {
        let offered = count(Some(python), "offered").unwrap_or(0);
        let rejected = count(Some(python), "rejected").unwrap_or(0);
        let mut found = Vec::new();
        if offered == 0 || rejected != 0 {
            found.push(format!(
                "python: with close_notify every offer should succeed: offered {offered}, rejected {rejected}"
            ));
        }
        found
    });
}

#[test]
fn http_mode_backend_reuse_matches_haproxy() {
    run("http", Dashboard::Skip, |python| {
        let offered = count(Some(python), "offered").unwrap_or(0);
        let rejected = count(Some(python), "rejected").unwrap_or(0);
        let mut found = Vec::new();
        if offered == 0 || rejected != 0 {
            found.push(format!(
                "python: HTTP mode closes with close_notify, every offer should succeed: offered {offered}, rejected {rejected}"
            ));
        }
        found
    });
}
