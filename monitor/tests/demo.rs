//! `cargo xtask demo`, headless, as a test: the demo's own scenario
//! (`xtask::lab::demo`: HAProxy resetting its backend connections without
//! close_notify, an OpenSSL-style Python backend that then forgets every
//! session), the demo's own load and tlsmon started as the demo starts it
//! without a terminal. Within a minute of attaching, tlsmon must write a
//! `"type":"diagnosis"` line naming the Python backend and the cause
//! (issue 16, "Done when").
//!
//! The expected cause is the peers' own doing, checked independently of
//! tlsmon: before the diagnosis counts, the Python backend's log must
//! show the full handshakes it made of HAProxy's offers.
//!
//! Needs root, haproxy, nginx, openssl and python3 (`cargo xtask setup`).

mod common;

use std::{
    env, fs,
    path::Path,
    process::{Child, Stdio},
    sync::{Mutex, PoisonError},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;
use xtask::lab::{
    self, BACKENDS, Lab,
    demo::{self, DIAGNOSIS_WITHIN, DemoTls},
};

const TLSMON: &str = env!("CARGO_BIN_EXE_tlsmon");
/// The lab tests' instance and lock (`/run/tlsmon-lab-test.lock`).
const TEST_PREFIX: &str = "tlsmon-lab-test";
const LOCK_TIMEOUT: Duration = Duration::from_mins(5);
/// Loading the classifier (the verifier) can take a while on a debug build.
const ATTACH_TIMEOUT: Duration = Duration::from_mins(1);
/// The load's own bound: longer than the test waits.
const LOAD_TIME: Duration = Duration::from_mins(3);

static SERIAL: Mutex<()> = Mutex::new(());

/// Stops what the test started and tears the lab down however it ends; on
/// a panic keeps the logs.
struct Running {
    lab: Lab,
    name: &'static str,
    children: Vec<Child>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if thread::panicking() {
            let kept = self
                .lab
                .keep_logs(&env::temp_dir().join(format!("{TEST_PREFIX}-demo-{}", self.name)));
            eprintln!("demo test: logs kept in {}", kept.display());
        }
        if let Err(err) = self.lab.down() {
            eprintln!("demo test: {err:#}");
        }
    }
}

/// tlsmon's `"type":"diagnosis"` lines so far.
fn diagnoses(out: &Path) -> Vec<Value> {
    common::read(out)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "diagnosis")
        .collect()
}

/// Runs the demo's `tls` variant headless until tlsmon writes that `rule`
/// holds for the Python backend (or a minute passes); returns that line
/// and how long it took from tlsmon's attaching.
fn demo_shows(tls: DemoTls, rule: &str) -> (Value, Duration) {
    for check in [lab::require_root, lab::require_programs] {
        check().unwrap_or_else(|e| panic!("the demo test: {e:#} (run it as root)"));
    }
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let lab = Lab::new(TEST_PREFIX);
    let _lock = lab
        .lock(Some(LOCK_TIMEOUT))
        .unwrap_or_else(|e| panic!("{e:#}"));
    let scenario = demo::scenario(tls);
    let mut running = Running {
        lab: lab.clone(),
        name: if tls == DemoTls::Tls13 {
            "tls13"
        } else {
            "tls12"
        },
        children: Vec::new(),
    };
    lab.up(&scenario)
        .unwrap_or_else(|e| panic!("lab up {}: {e:#}", scenario.name));
    // As the demo: the load first, then tlsmon.
    let load = lab
        .spawn_load(&demo::load(LOAD_TIME))
        .unwrap_or_else(|e| panic!("starting the load: {e:#}"));
    running.children.push(load);
    let state = lab.state_dir();
    let (out, err) = (state.join("demo-tlsmon.out"), state.join("demo-tlsmon.err"));
    let tlsmon = demo::tlsmon_command(&lab, Path::new(TLSMON), true)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).expect("creating tlsmon's output"))
        .stderr(fs::File::create(&err).expect("creating tlsmon's stderr"))
        .spawn()
        .expect("starting tlsmon in the proxy namespace");
    running.children.push(tlsmon);
    let context = || {
        format!(
            "--- tlsmon stderr ---\n{}\n--- tlsmon stdout (last 2000 bytes) ---\n{}",
            common::read(&err),
            common::read(&out)
                .chars()
                .rev()
                .take(2000)
                .collect::<String>()
                .chars()
                .rev()
                .collect::<String>()
        )
    };
    common::wait_for_text(&err, "attached to", ATTACH_TIMEOUT, &context);
    let attached = Instant::now();
    let python = lab::backend_server(&BACKENDS[2]);
    loop {
        if let Some(line) = diagnoses(&out)
            .into_iter()
            .find(|d| d["server"] == python.as_str() && d["active"] == true && d["rule"] == rule)
        {
            let took = attached.elapsed();
            // The premise, from the backend's own log: it made full
            // handshakes of what HAProxy offered it.
            let log = lab.python_counts();
            assert!(
                log.full > 0 && log.resumed == 0,
                "the Python backend's log does not show the seed's problem: {log:?}"
            );
            return (line, took);
        }
        let status = running.children[1].try_wait().expect("checking on tlsmon");
        assert!(
            status.is_none(),
            "tlsmon exited ({status:?})\n{}",
            context()
        );
        assert!(
            attached.elapsed() < DIAGNOSIS_WITHIN,
            "no {rule} for the Python backend ({python}) within {DIAGNOSIS_WITHIN:?} of \
             attaching; diagnosis lines: {:?}\n{}",
            diagnoses(&out),
            context()
        );
        thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_tls12_demo_shows_the_unclean_close_diagnosis_headless_within_a_minute() {
    let (line, took) = demo_shows(DemoTls::Tls12, "rejected-after-unclean-close");
    println!("diagnosis after {took:?}: {line}");
    assert_eq!(line["severity"], "critical", "{line}");
    assert_eq!(line["role"], "backend", "{line}");
    let counts = &line["counts"];
    let offered = counts["offered"].as_u64().unwrap_or(0);
    assert!(offered >= 10, "{line}");
    assert_eq!(counts["rejected"], offered, "every offer rejected: {line}");
    let text = line["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("without close_notify") && text.contains("`option nolinger`"),
        "{text}"
    );
}

/// The TLS 1.3 variant, the demo's default: the tracker tells TLS 1.3
/// closes apart by the size of the last record and ties each rejected PSK
/// offer to the connections that could have delivered it.
#[test]
fn the_tls13_demo_shows_the_unclean_close_diagnosis_headless_within_a_minute() {
    let (line, took) = demo_shows(DemoTls::Tls13, "rejected-after-unclean-close");
    println!("diagnosis after {took:?}: {line}");
    assert_eq!(line["severity"], "critical", "{line}");
}
