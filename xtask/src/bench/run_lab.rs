//! The proxy-lab part of `cargo xtask bench`: what tlsmon costs a real
//! reverse proxy, measured in the proxy lab (`xtask::lab`).
//!
//! * Throughput: `wrk` in the client namespace drives HTTPS through `HAProxy`
//!   with `Connection: close`, so that every request is a new frontend TLS
//!   connection, in the lab's `http` scenario, where `option
//!   http-server-close` also gives every request its own backend TLS
//!   connection. Runs with and without tlsmon attached alternate in pairs
//!   (off/on, then on/off, ...) so that the other work on a shared machine
//!   drifts into both sides alike.
//! * CPU: user+system time of tlsmon (and, in separate runs of the same
//!   load, of `tshark` with its `dumpcap`) from `/proc/<pid>/stat`, read
//!   just before the load starts and after it ended and the last events
//!   were drained, so program loading (the verifier) and shutdown are not in
//!   it.
//! * In place: what a run of tlsmon's programs costs there, against the
//!   return-only program attached the same way; and, with the lab brought
//!   up again in `plan::APP_DATA_SCENARIO` under keep-alive load, the same
//!   where nearly every packet is application data.
//!
//! `HAProxy`'s log is the independent count: one line per request, each with
//! whether it completed and whether the frontend and backend handshakes
//! were resumed. This module runs the lab and records each run;
//! `statistics` makes the report's numbers of them.

use std::{
    fs,
    path::PathBuf,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};
use xtask::{
    lab::{self, HaproxyCounts, Lab, Ns, Scenario},
    procfs::{self, busy_cpu_s, tree_cpu_s},
    programs,
};

use super::{
    outputs::{self, Wrk},
    plan::{
        APP_DATA_SCENARIO, DRAIN, LAB_PREFIX, LabPlan, SCENARIO, WARM_UP, WRK_CONNECTIONS,
        WRK_THREADS,
    },
    report::{RunRecord, as_f64, compact, round},
    watchers::{Watcher, Watching},
};
use crate::util::{
    capture, cargo, create_file, describe, is_root, target_dir, wait_until, workspace_root,
};

/// How long `wrk` may overrun its own duration before it is killed.
const LOAD_OVERRUN: Duration = Duration::from_secs(30);

/// Why the lab cannot run here, if it cannot.
pub fn cannot_run() -> Option<String> {
    if !is_root() {
        return Some(
            "needs root: creates network namespaces and attaches tlsmon (run with sudo)".into(),
        );
    }
    if let Err(e) = lab::require_programs() {
        return Some(format!("{e:#}"));
    }
    if programs::find("wrk").is_none() {
        return Some("needs wrk (Debian package wrk; `cargo xtask setup` installs it)".into());
    }
    None
}

/// What one run measured.
pub struct Run {
    pub watcher: Watcher,
    /// Requests `HAProxy` completed (`term=--`) per second of `wrk`'s run.
    pub rps: f64,
    /// `HAProxy`'s log lines of the run and those that completed.
    pub lines: u64,
    pub completed: u64,
    /// TCP connections the client namespace opened (its `ActiveOpens`).
    pub connections: u64,
    /// Handshakes in those lines, (full, resumed), frontend and backend.
    pub frontend: (u64, u64),
    pub backend: (u64, u64),
    pub wrk: Wrk,
    /// The watcher's user and system CPU seconds during the load.
    pub cpu_s: Option<(f64, f64)>,
    /// Seconds and runs of the kernel programs over the watcher's whole
    /// life: tlsmon's (`--kernel-cost`) or the baseline's (`bench in-place`).
    pub kernel: Option<(f64, u64)>,
    /// CPU seconds the whole machine was busy while the load ran, and that
    /// as a share of all its CPUs' time.
    pub busy_s: f64,
    pub busy_share: f64,
    /// What the watcher itself counted: tlsmon's handshakes, tshark's
    /// ServerHellos.
    pub seen: Option<u64>,
    /// tlsmon's lost events; tshark's dropped packets.
    pub lost: Option<u64>,
}

impl Run {
    pub fn handshakes(&self) -> u64 {
        self.frontend.0 + self.frontend.1 + self.backend.0 + self.backend.1
    }

    /// The watcher's whole CPU time: its process tree, plus tlsmon's kernel
    /// programs.
    pub fn cpu(&self) -> Option<f64> {
        self.cpu_s
            .map(|(user, sys)| user + sys + self.kernel.map_or(0.0, |k| k.0))
    }

    /// The run as the report shows it.
    pub fn record(&self) -> RunRecord {
        let tshark = self.watcher == Watcher::Tshark;
        let (seen, lost) = (self.seen, self.lost);
        RunRecord {
            watcher: self.watcher.name().to_owned(),
            requests_per_s: round(self.rps, 1),
            haproxy_lines: self.lines,
            haproxy_completed: self.completed,
            client_connections: self.connections,
            handshakes: self.handshakes(),
            frontend_full: self.frontend.0,
            frontend_resumed: self.frontend.1,
            backend_full: self.backend.0,
            backend_resumed: self.backend.1,
            wrk_seconds: self.wrk.seconds,
            wrk_responses: self.wrk.requests,
            wrk_errors: self.wrk.errors,
            machine_busy_s: round(self.busy_s, 2),
            machine_busy_share: round(self.busy_share, 3),
            cpu_user_s: self.cpu_s.map(|c| round(c.0, 3)),
            cpu_sys_s: self.cpu_s.map(|c| round(c.1, 3)),
            kernel_s: self.kernel.map(|k| round(k.0, 4)),
            kernel_runs: self.kernel.map(|k| k.1),
            kernel_ns_per_run: self
                .kernel
                .filter(|k| k.1 > 0)
                .map(|(s, runs)| round(s * 1e9 / as_f64(runs), 1)),
            handshakes_seen: seen.filter(|_| !tshark),
            server_hellos_seen: seen.filter(|_| tshark),
            lost_events: lost.filter(|_| !tshark),
            packets_dropped: lost.filter(|_| tshark),
        }
    }
}

/// How `wrk` uses its connections.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Load {
    /// `Connection: close`: a new TCP and TLS connection per request.
    Close,
    /// Keep-alive: every request over the connections opened first.
    KeepAlive,
}

/// A run of the keep-alive load in [`APP_DATA_SCENARIO`], watched by
/// tlsmon or the baseline: what their programs cost per run there.
pub struct AppDataRun {
    pub watcher: Watcher,
    /// Seconds and runs of the watcher's kernel programs.
    pub kernel: (f64, u64),
    /// Responses `wrk` counted, and TCP connections the client opened.
    pub requests: u64,
    pub connections: u64,
}

/// The lab, and whatever the bench started in it; dropping it stops them and
/// tears the lab down, also on error.
struct Bench {
    lab: Lab,
    tlsmon: PathBuf,
    /// The bench example, for `bench in-place`.
    example: PathBuf,
    runs: usize,
}

impl Drop for Bench {
    fn drop(&mut self) {
        if let Err(e) = self.lab.down() {
            eprintln!("xtask bench: tearing down the bench lab: {e:#}");
        }
    }
}

impl Bench {
    fn dir(&self) -> PathBuf {
        self.lab.state_dir()
    }

    /// The load: `wrk` for `seconds`.
    fn wrk(&self, seconds: u64, load: Load) -> Command {
        let mut cmd = self.lab.exec(Ns::Client, "wrk");
        cmd.args(["-t", &WRK_THREADS.to_string()])
            .args(["-c", &WRK_CONNECTIONS.to_string()])
            .args(["-d", &format!("{seconds}s")])
            .args(["--timeout", "5s"]);
        if load == Load::Close {
            cmd.args(["-H", "Connection: close"]);
        }
        cmd.arg(format!("https://{}/", lab::frontend_server()));
        cmd
    }

    /// A watcher's command as a reader would type it, from the workspace
    /// root.
    fn describe_watcher(&self, watcher: Watcher) -> String {
        watcher
            .command(&self.lab, &self.tlsmon, &self.example)
            .map(|cmd| describe(&cmd).replace(&format!("{}/", workspace_root().display()), ""))
            .unwrap_or_default()
    }

    /// The next run's number, and the files its watcher's stdout and
    /// stderr go to.
    fn next_run(&mut self, watcher: Watcher) -> (usize, PathBuf, PathBuf) {
        self.runs += 1;
        let n = self.runs;
        let dir = self.dir();
        let out = dir.join(format!("bench-{n}-{}.out", watcher.name()));
        let err = dir.join(format!("bench-{n}-{}.err", watcher.name()));
        (n, out, err)
    }

    /// One run of `seconds` watched by `watcher`.
    fn run(&mut self, watcher: Watcher, seconds: u64) -> Result<Run> {
        let (n, out, err) = self.next_run(watcher);
        let watching = match watcher.command(&self.lab, &self.tlsmon, &self.example) {
            Some(cmd) => Some(Watching::start(watcher, cmd, &out, &err)?),
            None => None,
        };
        let pid = watching.as_ref().map(|w| w.pid);
        let opens_before = self.active_opens()?;
        let log_from = fs::metadata(self.lab.haproxy_log())
            .map(|m| m.len())
            .context("HAProxy's log")?;
        let cpu_before = pid.map(tree_cpu_s).transpose()?;
        let busy_before = busy_cpu_s()?;
        let wrk = self.load(seconds, n, Load::Close)?;
        let busy_s = busy_cpu_s()? - busy_before;
        thread::sleep(DRAIN);
        let cpu_s = match (pid, cpu_before) {
            (Some(pid), Some(before)) => {
                let after = tree_cpu_s(pid)?;
                Some((after.0 - before.0, after.1 - before.1))
            }
            _ => None,
        };
        if let Some(watching) = watching {
            watching.stop(&err)?;
        }
        let counted = watcher.counted(&out, &err)?;
        let counts = HaproxyCounts::parse(&outputs::read_from(&self.lab.haproxy_log(), log_from)?);
        let completed = counts.completed;
        let connections = self.active_opens()? - opens_before;
        let backend = counts.all_backends();
        ensure!(
            completed > 0 && wrk.seconds > 0.0,
            "run {n} ({}): no requests got through (wrk: {} responses, HAProxy: {} lines)",
            watcher.name(),
            wrk.requests,
            counts.lines
        );
        // The premise of the method: each request on its own connection.
        ensure!(
            connections * 100 >= counts.lines * 99,
            "run {n}: {} HAProxy log lines but only {connections} connections from the client: \
             wrk reused connections despite `Connection: close`",
            counts.lines
        );
        let wrk_seconds = wrk.seconds;
        let run = Run {
            watcher,
            // wrk counts a response that ends with its connection (s_server's
            // HTTP/1.0 answers) as a read error, not a request: HAProxy's
            // completed requests are the count that holds for every backend.
            rps: as_f64(completed) / wrk.seconds,
            lines: counts.lines,
            completed,
            connections,
            frontend: (counts.frontend.full, counts.frontend.resumed),
            backend: (backend.full, backend.resumed),
            wrk,
            cpu_s,
            kernel: counted.kernel,
            busy_s,
            busy_share: busy_s / (procfs::cpus()? * wrk_seconds),
            seen: counted.seen,
            lost: counted.lost,
        };
        eprintln!("xtask bench: lab run {n}: {}", compact(&run.record()));
        Ok(run)
    }

    /// TCP connections opened so far from the client namespace, where only
    /// the load runs: the kernel's count, to check that every request had
    /// its own connection (HAProxy's log cannot tell: client ports are
    /// reused within a run, since the proxy closes first and holds the
    /// TIME_WAIT).
    fn active_opens(&self) -> Result<u64> {
        let snmp = capture(self.lab.exec(Ns::Client, "cat").arg("/proc/net/snmp"))?;
        procfs::active_opens(&snmp)
            .context("no Tcp ActiveOpens in the client namespace's /proc/net/snmp")
    }

    /// One run of the keep-alive load watched by `watcher`, tlsmon or the
    /// baseline; only what their programs cost is kept.
    fn app_data_run(&mut self, watcher: Watcher, seconds: u64) -> Result<AppDataRun> {
        let (n, out, err) = self.next_run(watcher);
        let cmd = watcher
            .command(&self.lab, &self.tlsmon, &self.example)
            .context("a run of the application-data load needs a watcher with programs")?;
        let watching = Watching::start(watcher, cmd, &out, &err)?;
        let opens_before = self.active_opens()?;
        let wrk = self.load(seconds, n, Load::KeepAlive)?;
        let connections = self.active_opens()? - opens_before;
        thread::sleep(DRAIN);
        watching.stop(&err)?;
        let kernel = watcher
            .counted(&out, &err)?
            .kernel
            .context("the watcher reported no program run time")?;
        ensure!(
            wrk.requests > 0 && kernel.1 > 0,
            "application-data run {n} ({}): {} responses, {} program runs",
            watcher.name(),
            wrk.requests,
            kernel.1
        );
        let run = AppDataRun {
            watcher,
            kernel,
            requests: wrk.requests,
            connections,
        };
        eprintln!(
            "xtask bench: lab run {n} (application data): {} {:.1} ns per program run, {} \
             responses over {connections} connections",
            watcher.name(),
            kernel.0 * 1e9 / as_f64(kernel.1),
            wrk.requests
        );
        Ok(run)
    }

    /// Runs `wrk` to its end and parses what it printed.
    fn load(&self, seconds: u64, n: usize, load: Load) -> Result<Wrk> {
        let dir = self.dir();
        let out_path = dir.join(format!("bench-{n}-wrk.out"));
        let mut cmd = self.wrk(seconds, load);
        let text = describe(&cmd);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(create_file(&out_path)?)
            .stderr(create_file(&dir.join(format!("bench-{n}-wrk.err")))?)
            .spawn()
            .with_context(|| format!("could not start `{text}`"))?;
        let deadline = Instant::now() + Duration::from_secs(seconds) + LOAD_OVERRUN;
        let Some(status) = wait_until(&mut child, deadline)? else {
            bail!("`{text}` overran its duration and was killed");
        };
        let out = fs::read_to_string(&out_path).unwrap_or_default();
        ensure!(status.success(), "`{text}` failed ({status}):\n{out}");
        Wrk::parse(&out).with_context(|| format!("`{text}` printed no result:\n{out}"))
    }
}

/// What the lab's runs measured, for `statistics`.
pub struct Measured {
    pub seconds: u64,
    /// The commands, as a reader would type them.
    pub wrk: String,
    pub tlsmon: String,
    pub tshark_cmd: String,
    /// (off, on) per pair.
    pub pairs: Vec<(Run, Run)>,
    pub tshark: std::result::Result<Vec<Run>, String>,
    pub baseline: Vec<Run>,
    /// The keep-alive load's runs, and its command.
    pub app_data: Vec<AppDataRun>,
    pub wrk_keepalive: String,
    pub load_before: Option<f64>,
    pub load_after: Option<f64>,
}

/// Brings the lab up, builds and runs everything, tears the lab down.
pub fn measure(plan: &LabPlan) -> Result<Measured> {
    let (tlsmon, example) = build()?;
    let lab = Lab::new(LAB_PREFIX);
    // A second bench would tear this lab down at its `up`.
    let _lock = lab.lock(None)?;
    let scenario = Scenario::parse(SCENARIO)?;
    eprintln!("xtask bench: proxy lab up ({})", scenario.describe());
    lab.up(&scenario)?;
    let mut bench = Bench {
        lab,
        tlsmon,
        example,
        runs: 0,
    };
    let load_before = procfs::load_average();
    // Warm-up, not measured.
    bench.load(WARM_UP.as_secs(), 0, Load::Close)?;
    let mut pairs = Vec::new();
    for i in 0..plan.pairs {
        let order = balanced(i, Watcher::Nobody, Watcher::Tlsmon);
        let a = bench.run(order[0], plan.seconds)?;
        let b = bench.run(order[1], plan.seconds)?;
        pairs.push(if a.watcher == Watcher::Nobody {
            (a, b)
        } else {
            (b, a)
        });
    }
    let tshark = if programs::find("tshark").is_some() {
        let mut runs = Vec::new();
        for _ in 0..plan.tshark_runs {
            runs.push(bench.run(Watcher::Tshark, plan.seconds)?);
        }
        Ok(runs)
    } else {
        Err("needs tshark (Debian package tshark; `cargo xtask setup` installs it)".to_owned())
    };
    let mut baseline = Vec::new();
    for _ in 0..plan.baseline_runs {
        baseline.push(bench.run(Watcher::Baseline, plan.seconds)?);
    }
    let app_data = app_data_runs(&mut bench, plan)?;
    let load_after = procfs::load_average();
    let m = Measured {
        seconds: plan.seconds,
        wrk: describe(&bench.wrk(plan.seconds, Load::Close)),
        wrk_keepalive: describe(&bench.wrk(plan.seconds, Load::KeepAlive)),
        // As a reader would type it, from the workspace root.
        tlsmon: bench.describe_watcher(Watcher::Tlsmon),
        tshark_cmd: bench.describe_watcher(Watcher::Tshark),
        pairs,
        tshark,
        baseline,
        app_data,
        load_before,
        load_after,
    };
    drop(bench);
    Ok(m)
}

/// The order of the `i`th pair of runs: `a` first, then `b` first, and so
/// on, so that neither side always runs first.
fn balanced(i: usize, a: Watcher, b: Watcher) -> [Watcher; 2] {
    if i.is_multiple_of(2) { [a, b] } else { [b, a] }
}

/// The lab again in [`APP_DATA_SCENARIO`], and rounds of one tlsmon run and
/// one baseline run under the keep-alive load, in the order tlsmon,
/// baseline, then baseline, tlsmon: a run that comes second in a pair costs
/// more even for the same program (docs/architecture.md), so neither side
/// always does.
fn app_data_runs(bench: &mut Bench, plan: &LabPlan) -> Result<Vec<AppDataRun>> {
    let scenario = Scenario::parse(APP_DATA_SCENARIO)?;
    eprintln!("xtask bench: proxy lab up ({})", scenario.describe());
    bench.lab.up(&scenario)?;
    bench.load(WARM_UP.as_secs(), 0, Load::KeepAlive)?;
    let mut runs = Vec::new();
    for i in 0..plan.app_data_rounds {
        for watcher in balanced(i, Watcher::Tlsmon, Watcher::Baseline) {
            runs.push(bench.app_data_run(watcher, plan.seconds)?);
        }
    }
    Ok(runs)
}

/// Builds tlsmon and the bench example (`cargo build --release`); returns
/// their paths.
fn build() -> Result<(PathBuf, PathBuf)> {
    let mut cmd = cargo();
    cmd.current_dir(workspace_root()).args([
        "build",
        "--release",
        "--quiet",
        "--package",
        "monitor",
        "--bin",
        "tlsmon",
        "--example",
        "bench",
    ]);
    let text = describe(&cmd);
    eprintln!("+ {text}");
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("could not start `{text}`"))?;
    ensure!(status.success(), "`{text}` failed: {status}");
    let paths = (
        target_dir().join("release/tlsmon"),
        target_dir().join("release/examples/bench"),
    );
    for path in [&paths.0, &paths.1] {
        ensure!(path.is_file(), "{} was not built", path.display());
    }
    Ok(paths)
}
