//! The proxy lab: Debian's `HAProxy` terminating client TLS and re-encrypting
//! to three real TLS backends, each part in its own network namespace, with
//! scenarios that reproduce — or avoid — the failure tlsmon exists for:
//! backend connections closed with a TCP RST and no `close_notify`, after
//! which an OpenSSL server forgets the session and rejects every resumption
//! the proxy offers. See `docs/proxy-lab.md`.
//!
//! ```text
//!  tlsmon-lab-client   tlsmon-lab-proxy                     tlsmon-lab-backend
//!  lab-cli ──────────── lab-front  HAProxy  lab-back ──────── lab-srv
//!  10.210.1.10          10.210.1.1:443      10.210.2.1        10.210.2.10:8443 s_server
//!                                                             10.210.2.10:8444 nginx
//!                                                             10.210.2.10:8445 python
//! ```
//!
//! A [`Lab`] is one instance of it: `cargo xtask lab` and the demo use the
//! standard one, the tests and the bench their own. Its jobs, one module
//! each: where things are ([`topology`]), what a scenario sets
//! ([`scenario`]), the files the servers read ([`config`]), starting and
//! stopping processes ([`processes`]), the servers themselves
//! ([`servers`]), their logs as the oracle ([`logs`]), the client load
//! ([`load`]), a scenario's run with its events ([`plan`]), and the
//! decrypted captures as the oracle of every connection ([`oracle`]). This
//! module brings a lab up and down, in that order, and keeps one process at
//! a time on an instance.

pub mod config;
pub mod demo;
pub mod load;
pub mod logs;
pub mod oracle;
pub mod plan;
pub mod processes;
pub mod scenario;
pub mod servers;
pub mod topology;

use std::{
    fs,
    os::{fd::AsRawFd as _, unix::fs::PermissionsExt as _},
    path::Path,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

pub use self::{
    load::{LoadOptions, LoadSummary},
    logs::{HaproxyCounts, HaproxyLine, Tally},
    plan::{Driven, Event, Step},
    scenario::{Cause, Mode, Scenario},
    topology::{
        BACK_IF, BACKEND_ADDR, BACKEND_NS, BACKENDS, Backend, CLIENT_ADDR, CLIENT_NS, FRONT_ADDR,
        FRONT_IF, FRONT_PORT, Lab, Ns, PREFIX, PROXY_NS, backend_server, frontend_server,
        proxy_ifaces,
    },
};
use crate::{
    programs,
    util::{capture, is_root},
};

/// Programs the lab runs; `cargo xtask setup` installs their packages.
const PROGRAMS: [&str; 6] = ["haproxy", "nginx", "openssl", "python3", "ip", "ss"];
/// What the oracle runs besides.
const ORACLE_PROGRAMS: [&str; 2] = ["tcpdump", "tshark"];

/// Holds a lab instance for one process; see [`Lab::lock`].
#[derive(Debug)]
pub struct LabLock {
    _file: fs::File,
}

impl Lab {
    /// Brings the lab up in `scenario`, after tearing down whatever an
    /// earlier run left behind.
    pub fn up(&self, scenario: &Scenario) -> Result<()> {
        self.up_with(scenario, false)
    }

    /// Brings the lab up in `scenario` with the oracle on: the peers that
    /// can write key logs do, `HAProxy` logs its backend TLS 1.2 secrets,
    /// and tcpdump captures both proxy interfaces from before the first
    /// handshake. [`Lab::oracle`] turns it all into records after a run.
    pub fn up_with_oracle(&self, scenario: &Scenario) -> Result<()> {
        self.up_with(scenario, true)
    }

    fn up_with(&self, scenario: &Scenario, oracle: bool) -> Result<()> {
        require_root()?;
        require_programs()?;
        if oracle {
            programs::require_all("the proxy lab's oracle", &ORACLE_PROGRAMS)?;
        }
        self.down()
            .context("cleaning up an earlier lab before `up`")?;
        let dir = self.state_dir();
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        let mut subs = vec![dir.join("pids"), dir.join("nginx-tmp")];
        if oracle {
            subs.push(self.oracle_dir());
        }
        for path in subs {
            fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        }
        // Private keys live here.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("chmod 700 {}", dir.display()))?;

        let started = self
            .create_network()
            .and_then(|()| self.make_certificates())
            .and_then(|()| self.write_files(scenario, oracle))
            .and_then(|()| {
                if oracle {
                    self.start_captures()
                } else {
                    Ok(())
                }
            })
            .and_then(|()| self.start_servers(scenario))
            .and_then(|()| self.record_scenario(scenario));
        if let Err(err) = started {
            let _ = self.down();
            return Err(err.context(format!(
                "bringing up the proxy lab ({}); logs are in {}",
                scenario.name,
                dir.display()
            )));
        }
        Ok(())
    }

    /// Stops every process of the lab and deletes its namespaces. Logs and
    /// configs stay in the state directory until the next `up`; the private
    /// keys are removed.
    pub fn down(&self) -> Result<()> {
        require_root()?;
        let mut problems = Vec::new();
        self.stop_processes(&mut problems);

        for ns in Ns::ALL {
            let name = self.ns(ns);
            if self.ns_exists(ns)
                && let Err(err) = capture(programs::command("ip").args(["netns", "del"]).arg(&name))
            {
                problems.push(format!("{err:#}"));
            }
        }
        let pid_dir = self.pid_dir();
        if pid_dir.exists()
            && let Err(err) = fs::remove_dir_all(&pid_dir)
        {
            problems.push(format!("removing {}: {err}", pid_dir.display()));
        }
        // Logs stay for inspection; the private keys and the scenario note go.
        let _ = fs::remove_file(self.scenario_file());
        for name in ["frontend.key", "frontend.pem", "backend.key", "ticket.key"] {
            let _ = fs::remove_file(self.state_dir().join(name));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            bail!("tearing down the proxy lab: {}", problems.join("; "))
        }
    }

    /// Waits until no other process uses this lab instance, for at most
    /// `timeout` (`None`: as long as it takes), and holds it until the lock
    /// is dropped: an `flock` on `/run/<prefix>.lock`. Another test run or
    /// bench bringing the same instance up would tear this one down first.
    pub fn lock(&self, timeout: Option<Duration>) -> Result<LabLock> {
        let path = Path::new("/run").join(format!("{}.lock", self.name()));
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut told = false;
        loop {
            // SAFETY: flock on a descriptor this File owns; the lock goes
            // with the file.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(LabLock { _file: file });
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::WouldBlock {
                return Err(err).with_context(|| format!("flock {}", path.display()));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                bail!(
                    "{} is still locked by another process after {timeout:?}",
                    path.display()
                );
            }
            if !told {
                eprintln!(
                    "lab: waiting for {}: another process uses this lab",
                    path.display()
                );
                told = true;
            }
            thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Fails unless the process runs as root.
pub fn require_root() -> Result<()> {
    if !is_root() {
        bail!("the proxy lab needs root: it creates network namespaces and veth pairs");
    }
    Ok(())
}

/// Fails, naming the packages, unless every program the lab runs is installed.
pub fn require_programs() -> Result<()> {
    programs::require_all("the proxy lab", &PROGRAMS)
}
