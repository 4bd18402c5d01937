//! How a scenario's load runs: bounded loads through the proxy, pauses,
//! backend restarts and ticket key changes, in order, with the time of
//! every event recorded (`<state>/events.jsonl`) for the oracle, which
//! needs to know when a server restarted or changed its keys.

use std::{
    fs,
    io::Write as _,
    thread,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

use super::{
    load::{LoadOptions, LoadSummary},
    scenario::Scenario,
    topology::{BACKENDS, Lab},
};

/// One step of a plan.
#[derive(Clone, Debug)]
pub enum Step {
    Load(LoadOptions),
    Pause(Duration),
    /// Restart `s_server` and the Python backend (their caches are lost).
    RestartBackends,
    /// Write a new ticket key for nginx and make it reload (SIGHUP).
    ReplaceTicketKey,
}

/// What happened when, in seconds since the epoch (the captures' clock).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub at: f64,
    /// `load_start`, `load_end`, `restart` or `ticket_key_change`.
    pub kind: String,
    /// The server it concerns (`HAProxy`'s name), if one.
    pub server: Option<String>,
}

/// The loads' summaries and the events of a plan's run.
#[derive(Clone, Debug, Default)]
pub struct Driven {
    pub loads: Vec<LoadSummary>,
    pub events: Vec<Event>,
}

impl Driven {
    /// Requests over all loads, and those that failed.
    #[must_use]
    pub fn requests(&self) -> (u64, u64) {
        self.loads
            .iter()
            .fold((0, 0), |(r, e), l| (r + l.requests, e + l.errors))
    }

    /// Times of events of `kind` for `server`.
    #[must_use]
    pub fn times(&self, kind: &str, server: &str) -> Vec<f64> {
        self.events
            .iter()
            .filter(|e| e.kind == kind && e.server.as_deref() == Some(server))
            .map(|e| e.at)
            .collect()
    }
}

/// A sequential load of `requests` (one client: exact numbers, and every
/// offer reaches a server after the previous connection ended).
fn load(requests: u32, pause: Duration) -> Step {
    Step::Load(LoadOptions {
        requests,
        concurrency: 1,
        pause,
        max_time: Duration::from_mins(1),
        ..LoadOptions::default()
    })
}

impl Scenario {
    /// The steps of this scenario's bounded run: 36 to 72 requests over
    /// 3 to 15 s, shaped so that the cause happens several times per
    /// backend.
    #[must_use]
    pub fn plan(&self) -> Vec<Step> {
        if self.health_checks {
            // A request every 0.3 s: with round robin each server gets one
            // per 0.9 s and a health check per second in between.
            return vec![load(36, Duration::from_millis(300))];
        }
        if let Some(timeout) = self.session_timeout {
            // Bursts of 3 requests per backend, then a pause 1.5× the
            // timeout: every burst's first offer is too old.
            let mut steps = Vec::new();
            for round in 0..4 {
                if round > 0 {
                    steps.push(Step::Pause(timeout.mul_f32(1.5)));
                }
                steps.push(load(9, Duration::ZERO));
            }
            return steps;
        }
        if self.restart_backends {
            return vec![
                load(24, Duration::ZERO),
                Step::RestartBackends,
                load(24, Duration::ZERO),
                Step::RestartBackends,
                load(24, Duration::ZERO),
            ];
        }
        if self.ticket_keys {
            let mut steps = Vec::new();
            for round in 0..4 {
                if round > 0 {
                    steps.push(Step::ReplaceTicketKey);
                }
                steps.push(load(18, Duration::ZERO));
            }
            return steps;
        }
        vec![load(60, Duration::ZERO)]
    }
}

/// Seconds since the epoch, now.
#[must_use]
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Lab {
    /// Runs the plan of the scenario the lab is up in and records its
    /// events in `<state>/events.jsonl`.
    pub fn drive(&self) -> Result<Driven> {
        let scenario = self.require_up()?;
        let mut driven = Driven::default();
        let event = |driven: &mut Driven, kind: &str, server: Option<&str>| {
            driven.events.push(Event {
                at: now(),
                kind: kind.to_owned(),
                server: server.map(str::to_owned),
            });
        };
        for step in scenario.plan() {
            match step {
                Step::Load(options) => {
                    event(&mut driven, "load_start", None);
                    let summary = self.load(&options)?;
                    event(&mut driven, "load_end", None);
                    driven.loads.push(summary);
                }
                Step::Pause(duration) => thread::sleep(duration),
                Step::RestartBackends => {
                    for backend in BACKENDS.iter().filter(|b| b.name != "nginx") {
                        event(&mut driven, "restart", Some(backend.name));
                        self.restart_backend(backend, &scenario)?;
                    }
                }
                Step::ReplaceTicketKey => {
                    self.write_ticket_key()?;
                    event(&mut driven, "ticket_key_change", Some("nginx"));
                    self.signal_daemon("nginx", libc::SIGHUP)?;
                    // The new worker reads the new key; give the reload
                    // time before the next connection.
                    thread::sleep(Duration::from_secs(1));
                }
            }
        }
        self.write_events(&driven.events)?;
        let (requests, errors) = driven.requests();
        if errors > 0 {
            bail!(
                "{errors} of {requests} requests of the {} plan failed; first error: {}",
                scenario.name,
                driven
                    .loads
                    .iter()
                    .find_map(|l| l.first_error.clone())
                    .unwrap_or_default()
            );
        }
        Ok(driven)
    }

    fn write_events(&self, events: &[Event]) -> Result<()> {
        let path = self.state_dir().join("events.jsonl");
        let mut file =
            fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        for event in events {
            serde_json::to_writer(&mut file, event)?;
            file.write_all(b"\n")?;
        }
        Ok(())
    }

    /// The events of the last `drive`.
    pub fn events(&self) -> Result<Vec<Event>> {
        let path = self.state_dir().join("events.jsonl");
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).with_context(|| format!("event line {l:?}")))
            .collect()
    }
}
