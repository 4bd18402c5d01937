//! What the oracle tests share (`oracle_*.rs`): bring the proxy lab up in a
//! scenario with the oracle on, run the scenario's plan, build the
//! oracle's per-connection records from the decrypted captures, and check
//! them against the peers' own counts — `HAProxy`'s log per connection and
//! per backend, the Python backend's log per connection — before the
//! scenario's own checks. Every check returns the problems it found; the
//! run fails with all of them and a table of what the oracle measured, and
//! keeps the lab's logs (not its keys) in `$TMPDIR/tlsmon-lab-test-<scenario>`.
//!
//! The real tlsmon watches every run (`tlsmon`): its per-connection lines
//! must agree with the oracle's records as issue 16 asks, and its
//! full/resumed counts per backend with `HAProxy`'s.
//!
//! Needs root, haproxy, nginx, openssl, python3, tcpdump and tshark
//! (`cargo xtask setup`).

// Each test binary uses a different part of this module.
#![allow(dead_code)]

mod tlsmon;

use std::{
    collections::BTreeMap,
    env,
    fmt::Write as _,
    sync::{Mutex, PoisonError},
    thread,
    time::{Duration, Instant},
};

use xtask::{
    lab::{
        self, BACKENDS, Cause, Driven, Lab, Scenario,
        logs::PythonLine,
        oracle::{self, Close, Kind, Record, Role, Summary},
    },
    programs,
};

/// The lab instance of the tests (shared with `proxy_lab.rs`, one at a
/// time by its lock): never the one `cargo xtask lab` uses.
const TEST_PREFIX: &str = "tlsmon-lab-test";
/// Another process's lab tests hold the lock this long at most.
const LOCK_TIMEOUT: Duration = Duration::from_mins(5);
/// `HAProxy` writes a line when a connection ends, the Python backend when
/// it has closed its side.
const LOG_TIMEOUT: Duration = Duration::from_secs(10);

static SERIAL: Mutex<()> = Mutex::new(());

/// One scenario's run, as the oracle saw it.
pub struct Run {
    pub scenario: Scenario,
    pub driven: Driven,
    pub records: Vec<Record>,
    pub summaries: BTreeMap<(Role, String), Summary>,
    pub haproxy: Vec<lab::HaproxyLine>,
    pub python: Vec<PythonLine>,
    pub elapsed: Duration,
    /// tlsmon against the oracle and `HAProxy`.
    pub tlsmon: tlsmon::Compared,
}

impl Run {
    /// The backend records of `HAProxy` server `name`.
    pub fn backend(&self, name: &str) -> Vec<&Record> {
        self.records
            .iter()
            .filter(|r| r.role == Role::Backend && r.name == name)
            .collect()
    }

    pub fn summary(&self, name: &str) -> Summary {
        self.summaries
            .get(&(Role::Backend, name.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    /// Whether the oracle can decrypt connections to `name` in this
    /// scenario: nginx writes no key log, and `HAProxy` 2.6 gives backend
    /// secrets for TLS 1.2 only.
    pub fn decryptable(&self, name: &str) -> bool {
        name != "nginx" || !self.scenario.backend_tls13
    }
}

/// Tears the lab down however the test ends; on a panic keeps its logs.
struct Guard {
    lab: Lab,
    scenario: String,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if thread::panicking() {
            let kept = self
                .lab
                .keep_logs(&env::temp_dir().join(format!("{TEST_PREFIX}-{}", self.scenario)));
            eprintln!("oracle test: logs kept in {}", kept.display());
        }
        if let Err(err) = self.lab.down() {
            eprintln!("oracle test: {err:#}");
        }
    }
}

/// Brings the test lab up in `name` with the oracle on, runs the plan,
/// builds the oracle's records, checks them against the peers' logs and
/// then `intent`, and panics with every problem found.
pub fn run(name: &str, intent: impl FnOnce(&Run) -> Vec<String>) -> Run {
    for check in [lab::require_root, lab::require_programs] {
        check().unwrap_or_else(|e| panic!("the oracle tests: {e:#} (run them as root)"));
    }
    for program in ["tcpdump", "tshark"] {
        let _ = programs::require(program);
    }
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let lab = Lab::new(TEST_PREFIX);
    let _lock = lab
        .lock(Some(LOCK_TIMEOUT))
        .unwrap_or_else(|e| panic!("{e:#}"));
    let started = Instant::now();
    let scenario = Scenario::parse(name).expect("a known scenario");
    let guard = Guard {
        lab: lab.clone(),
        scenario: name.replace('+', "-"),
    };
    lab.up_with_oracle(&scenario)
        .unwrap_or_else(|e| panic!("lab up {name}: {e:#}"));
    let watching = tlsmon::Tlsmon::start(&lab);
    let attached_at = watching.attached_at;
    let driven = lab.drive().unwrap_or_else(|e| panic!("{name}: {e:#}"));
    let (requests, _) = driven.requests();
    let haproxy = wait_for_haproxy(&lab, requests);
    let records = lab
        .oracle()
        .unwrap_or_else(|e| panic!("{name}: oracle: {e:#}"));
    // Health checks go on until the end of the capture: wait for the
    // Python backend's line of every connection the capture holds.
    let python = wait_for_python(&lab, &records);
    let seen = watching.stop();
    let compared = tlsmon::compare(&scenario, &seen, &records, &haproxy, attached_at);
    let run = Run {
        summaries: oracle::summarize(&records),
        scenario,
        driven,
        records,
        haproxy,
        python,
        elapsed: started.elapsed(),
        tlsmon: compared,
    };
    let mut problems = against_the_peers(&run, requests);
    problems.extend(intent(&run));
    problems.extend(run.tlsmon.problems.iter().cloned());
    let report = report(&run);
    // Shown with --nocapture.
    println!("{report}");
    assert!(
        problems.is_empty(),
        "{name}: the oracle disagrees with the peers or the scenario did not reproduce:\n  - {}\n\n{report}",
        problems.join("\n  - ")
    );
    drop(guard);
    run
}

/// Waits until `HAProxy` logged every request.
fn wait_for_haproxy(lab: &Lab, requests: u64) -> Vec<lab::HaproxyLine> {
    let deadline = Instant::now() + LOG_TIMEOUT;
    loop {
        let haproxy = lab.haproxy_lines().unwrap_or_default();
        if haproxy.len() as u64 >= requests || Instant::now() >= deadline {
            return haproxy;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the Python backend logged every connection to it that the
/// oracle saw.
fn wait_for_python(lab: &Lab, records: &[Record]) -> Vec<PythonLine> {
    let deadline = Instant::now() + LOG_TIMEOUT;
    loop {
        let python = lab.python_lines();
        let all_there = records
            .iter()
            .filter(|r| r.role == Role::Backend && r.name == "python")
            .all(|r| python.iter().any(|l| l.peer == Some(r.client)));
        if all_there || Instant::now() >= deadline {
            return python;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// The oracle against the peers' own logs.
fn against_the_peers(run: &Run, requests: u64) -> Vec<String> {
    let mut found = Vec::new();
    if run.haproxy.len() as u64 != requests {
        found.push(format!(
            "HAProxy logged {} connections, the plan made {requests}",
            run.haproxy.len()
        ));
    }
    // Per connection: HAProxy's ssl_bc_is_resumed against the handshake
    // the oracle saw. The oracle matches each line to one connection (same
    // server, HAProxy's own endpoint `via=`, accepted just before), so
    // every line is matched when the counts are equal.
    let logged: Vec<&Record> = run
        .records
        .iter()
        .filter(|r| r.role == Role::Backend && r.haproxy.is_some())
        .collect();
    if logged.len() != run.haproxy.len() {
        found.push(format!(
            "{} of HAProxy's {} lines matched a backend connection",
            logged.len(),
            run.haproxy.len()
        ));
    }
    for record in logged {
        let resumed = record.haproxy.and_then(|h| h.resumed);
        let want = resumed.map(|r| if r { Kind::Resumed } else { Kind::Full });
        if want != Some(record.kind) {
            found.push(format!(
                "{} {}: HAProxy logged resumed={resumed:?}, the oracle saw {:?}",
                record.name, record.client, record.kind
            ));
        }
    }
    // Per backend: the counts HaproxyCounts gives, from the oracle.
    for backend in BACKENDS {
        let (full, resumed) = run
            .haproxy
            .iter()
            .filter(|l| l.server == backend.name)
            .fold((0, 0), |(f, r), l| match l.bc_resumed {
                Some(true) => (f, r + 1),
                Some(false) => (f + 1, r),
                None => (f, r),
            });
        let summary = run.summary(backend.name);
        if (summary.logged_full, summary.logged_resumed) != (full, resumed) {
            found.push(format!(
                "{}: HAProxy {full} full / {resumed} resumed, the oracle {} / {}",
                backend.name, summary.logged_full, summary.logged_resumed
            ));
        }
        let records = run.backend(backend.name);
        if run.decryptable(backend.name) {
            let undecrypted = records.iter().filter(|r| !r.decrypted).count();
            // A health check's full handshake has no HAProxy log line and
            // so no key for nginx; everything else must decrypt.
            let excused = records
                .iter()
                .filter(|r| !r.decrypted && r.is_check() && backend.name == "nginx")
                .count();
            if undecrypted > excused {
                found.push(format!(
                    "{}: {undecrypted} of {} connections not decrypted",
                    backend.name,
                    records.len()
                ));
            }
        }
    }
    // The Python backend's own log, per connection.
    for record in run.backend("python") {
        if record.kind == Kind::Incomplete {
            continue;
        }
        let line = run.python.iter().find(|l| l.peer == Some(record.client));
        let want = Some(record.kind == Kind::Resumed);
        match line {
            Some(line) if line.resumed == want => {}
            Some(line) => found.push(format!(
                "python {}: its log says resumed={:?}, the oracle {:?}",
                record.client, line.resumed, record.kind
            )),
            None => found.push(format!("python {}: no line in its log", record.client)),
        }
    }
    // The frontend: every request, decrypted with the client's key log.
    let front: Vec<&Record> = run
        .records
        .iter()
        .filter(|r| r.role == Role::Frontend)
        .collect();
    if front.len() as u64 != requests || front.iter().any(|r| !r.decrypted) {
        found.push(format!(
            "frontend: {} connections, {} decrypted, {requests} requests",
            front.len(),
            front.iter().filter(|r| r.decrypted).count()
        ));
    }
    found
}

/// The oracle's numbers per server, and the run's time.
pub fn report(run: &Run) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{} — {:.1} s, {} requests",
        run.scenario.describe(),
        run.elapsed.as_secs_f64(),
        run.driven.requests().0
    );
    let _ = writeln!(
        text,
        "{:<10} {:>5} {:>6} {:>5} {:>5} {:>7} {:>6} {:>8}  {:<40} {:<28} close server side",
        "server",
        "conns",
        "checks",
        "decr",
        "full",
        "resumed",
        "offers",
        "accepted",
        "rejected by cause",
        "close proxy side",
    );
    for ((role, name), s) in &run.summaries {
        let label = if *role == Role::Frontend {
            "frontend".to_owned()
        } else {
            name.clone()
        };
        let _ = writeln!(
            text,
            "{:<10} {:>5} {:>6} {:>5} {:>5} {:>7} {:>6} {:>8}  {:<40} {:<28} {}",
            label,
            s.connections,
            s.checks,
            s.decrypted,
            s.full,
            s.resumed,
            s.offers,
            s.accepted,
            counts(&s.rejected, Cause::name),
            counts(&s.close_client, close_name),
            counts(&s.close_server, close_name)
        );
    }
    text.push_str(&run.tlsmon.table);
    text
}

fn counts<K: Copy>(map: &BTreeMap<K, u64>, name: fn(K) -> &'static str) -> String {
    if map.is_empty() {
        return "-".to_owned();
    }
    map.iter()
        .map(|(k, v)| format!("{} {v}", name(*k)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn close_name(close: Close) -> &'static str {
    match close {
        Close::Clean => "clean",
        Close::Unclean => "unclean",
        Close::Undecrypted => "undecrypted",
        Close::NotSeen => "not_seen",
    }
}

/// Problems with the rejected offers at `name`: there must be some, and
/// every one must have `cause`.
pub fn every_rejection_is(run: &Run, name: &str, cause: Cause) -> Vec<String> {
    let summary = run.summary(name);
    let mut found = Vec::new();
    if summary.rejected_total() == 0 {
        found.push(format!(
            "{name}: no rejected offer; the scenario did not reproduce"
        ));
    }
    for (other, count) in &summary.rejected {
        if *other != cause {
            found.push(format!(
                "{name}: {count} rejected offers with cause {}, expected only {}",
                other.name(),
                cause.name()
            ));
        }
    }
    found
}

/// Problems if `name` rejected any offer.
pub fn no_rejection(run: &Run, name: &str) -> Vec<String> {
    let summary = run.summary(name);
    if summary.rejected_total() == 0 {
        Vec::new()
    } else {
        vec![format!(
            "{name}: rejected offers {:?}, expected none",
            summary.rejected
        )]
    }
}
