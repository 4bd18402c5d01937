//! `cargo xtask lab up | down | load`: the standard proxy lab by hand
//! (docs/proxy-lab.md), with what a person needs to see printed.

use std::{thread, time::Duration};

use anyhow::{Result, bail};
use xtask::lab::{
    BACK_IF, BACKEND_NS, BACKENDS, CLIENT_ADDR, CLIENT_NS, FRONT_IF, Lab, LoadOptions, PROXY_NS,
    Scenario, backend_server, frontend_server, oracle,
};

/// `cargo xtask lab up <scenario>`.
pub fn up(scenario: &str) -> Result<()> {
    let scenario = Scenario::parse(scenario)?;
    let lab = Lab::standard();
    lab.up(&scenario)?;
    println!("lab: up — {}", scenario.describe());
    println!(
        "lab: client {CLIENT_NS} ({CLIENT_ADDR}) → HAProxy {PROXY_NS} ({} on {FRONT_IF}; backends via {BACK_IF}) → {BACKEND_NS}:",
        frontend_server()
    );
    for backend in BACKENDS {
        println!(
            "lab:   {:<8} {}  {}",
            backend.name,
            backend_server(&backend),
            backend.what
        );
    }
    println!(
        "lab: watch it with: ip netns exec {PROXY_NS} tlsmon --iface {FRONT_IF} --iface {BACK_IF}"
    );
    println!(
        "lab: HAProxy's log: {}; state: {}",
        lab.haproxy_log().display(),
        lab.state_dir().display()
    );
    Ok(())
}

/// `cargo xtask lab run <scenario>`: the scenario's plan with the oracle
/// on, in lab instance `instance`; torn down at the end unless `keep`.
pub fn run(scenario: &str, instance: &str, keep: bool) -> Result<()> {
    let scenario = Scenario::parse(scenario)?;
    if !instance.starts_with(xtask::lab::PREFIX) {
        bail!("a lab instance's name starts with {}", xtask::lab::PREFIX);
    }
    let lab = Lab::new(instance);
    let _lock = lab.lock(None)?;
    lab.up_with_oracle(&scenario)?;
    let result = run_up(&lab, &scenario);
    if !keep {
        lab.down()?;
    }
    result
}

fn run_up(lab: &Lab, scenario: &Scenario) -> Result<()> {
    println!("lab: up with the oracle — {}", scenario.describe());
    let driven = lab.drive()?;
    let (requests, errors) = driven.requests();
    println!(
        "lab: plan done: {requests} requests, {errors} errors, {} events",
        driven.events.len()
    );
    let records = lab.oracle()?;
    println!(
        "lab: oracle: {} connections in {}",
        records.len(),
        lab.oracle_records_file().display()
    );
    for ((role, name), summary) in oracle::summarize(&records) {
        println!(
            "lab:   {role:?} {name}: {}",
            serde_json::to_string(&summary).unwrap_or_default()
        );
    }
    Ok(())
}

/// `cargo xtask lab down`.
pub fn down() -> Result<()> {
    let lab = Lab::standard();
    lab.down()?;
    println!(
        "lab: down (namespaces deleted; logs kept in {})",
        lab.state_dir().display()
    );
    Ok(())
}

/// `cargo xtask lab load`: `requests` requests, each on a new TLS connection
/// to the frontend, `concurrency` at a time; then `HAProxy`'s counts so far.
pub fn load(requests: u32, concurrency: u32) -> Result<()> {
    let lab = Lab::standard();
    let options = LoadOptions {
        requests,
        concurrency,
        ..LoadOptions::default()
    };
    let summary = lab.load(&options)?;
    println!(
        "lab: load: {} requests, {} ok, {} errors in {:.1} s; frontend sessions offered {}, resumed {}",
        summary.requests,
        summary.ok,
        summary.errors,
        summary.seconds,
        summary.offered,
        summary.resumed
    );
    // HAProxy writes a line when a connection ends; give the last ones a moment.
    thread::sleep(Duration::from_millis(500));
    let counts = lab.haproxy_counts()?;
    println!("lab: HAProxy's log so far ({} connections):", counts.lines);
    println!(
        "lab:   frontend {:<18} full {:>6}  resumed {:>6}",
        frontend_server(),
        counts.frontend.full,
        counts.frontend.resumed
    );
    for backend in BACKENDS {
        let tally = counts.backend(backend.name);
        println!(
            "lab:   {:<8} {:<18} full {:>6}  resumed {:>6}",
            backend.name,
            backend_server(&backend),
            tally.full,
            tally.resumed
        );
    }
    if summary.errors > 0 {
        bail!(
            "{} of {} requests failed; first error: {}",
            summary.errors,
            summary.requests,
            summary.first_error.as_deref().unwrap_or("(not reported)")
        );
    }
    Ok(())
}
