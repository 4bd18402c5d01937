//! Load through the proxy: `lab/client.py` in the client namespace, every
//! request on its own TLS connection to the frontend, bounded in requests
//! and time.

use std::{
    fs,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::topology::{Lab, Ns, frontend_server};
use crate::util::{create_file, describe, wait_until};

/// How long a load may overrun its own `--max-seconds` before it is killed.
const LOAD_OVERRUN: Duration = Duration::from_secs(30);

/// Bounds and shape of a client load (see `lab/client.py`).
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Requests, each on its own TLS connection to the frontend.
    pub requests: u32,
    /// Parallel client connections.
    pub concurrency: u32,
    /// Every this many connections a client starts without a session (a
    /// full frontend handshake); the others offer their previous session.
    pub new_session_every: u32,
    /// Pause after each request, per client.
    pub pause: Duration,
    /// The load stops after this long even if requests remain.
    pub max_time: Duration,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            requests: 300,
            concurrency: 1,
            new_session_every: 3,
            pause: Duration::ZERO,
            max_time: Duration::from_mins(2),
        }
    }
}

impl LoadOptions {
    /// A load for a live view (the demo): two clients, a request every
    /// 100 ms each, for at most `max_time`.
    #[must_use]
    pub fn live(max_time: Duration) -> Self {
        Self {
            requests: 100_000,
            concurrency: 2,
            new_session_every: 3,
            pause: Duration::from_millis(100),
            max_time,
        }
    }
}

/// What the load client reported.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadSummary {
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    /// Frontend handshakes the client saw resumed / in which it offered a session.
    pub resumed: u64,
    pub offered: u64,
    pub seconds: f64,
    /// The client's first error, if any.
    pub first_error: Option<String>,
}

impl LoadSummary {
    /// Parses the client's `load requests=.. ok=.. ...` line.
    fn parse(line: &str) -> Option<Self> {
        let rest = line.strip_prefix("load ")?;
        let mut summary = Self::default();
        for pair in rest.split_whitespace() {
            let (key, value) = pair.split_once('=')?;
            match key {
                "requests" => summary.requests = value.parse().ok()?,
                "ok" => summary.ok = value.parse().ok()?,
                "errors" => summary.errors = value.parse().ok()?,
                "resumed" => summary.resumed = value.parse().ok()?,
                "offered" => summary.offered = value.parse().ok()?,
                "seconds" => summary.seconds = value.parse().ok()?,
                _ => {}
            }
        }
        Some(summary)
    }
}

impl Lab {
    /// The load client as a command in the client namespace, stdio not set.
    pub fn load_command(&self, options: &LoadOptions) -> Result<Command> {
        self.require_up()?;
        if options.concurrency == 0 || options.new_session_every == 0 {
            bail!("load concurrency and new_session_every must be at least 1");
        }
        let mut cmd = self.exec(Ns::Client, "python3");
        cmd.arg(self.state_dir().join("client.py"))
            .arg("--connect")
            .arg(frontend_server())
            .args(["--requests", &options.requests.to_string()])
            .args(["--concurrency", &options.concurrency.to_string()])
            .args([
                "--new-session-every",
                &options.new_session_every.to_string(),
            ])
            .args(["--pause-ms", &options.pause.as_millis().to_string()])
            .args(["--max-seconds", &options.max_time.as_secs_f64().to_string()]);
        if let Some(keylog) = self.oracle_key_log("client") {
            cmd.arg("--keylog").arg(keylog);
        }
        Ok(cmd)
    }

    /// Runs a bounded load to its end and returns the client's summary.
    /// Fails only if the client cannot run or prints no summary; errors of
    /// single requests are in the summary.
    pub fn load(&self, options: &LoadOptions) -> Result<LoadSummary> {
        let dir = self.state_dir();
        let out_path = dir.join("load.log");
        let err_path = dir.join("load.err");
        let mut cmd = self.load_command(options)?;
        cmd.stdin(Stdio::null())
            .stdout(create_file(&out_path)?)
            .stderr(create_file(&err_path)?);
        let text = describe(&cmd);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("could not start `{text}`"))?;
        let deadline = Instant::now() + options.max_time + LOAD_OVERRUN;
        let Some(status) =
            wait_until(&mut child, deadline).context("waiting for the load client")?
        else {
            bail!("the load client overran its time limit and was killed: `{text}`");
        };
        let out = fs::read_to_string(&out_path).unwrap_or_default();
        let err = fs::read_to_string(&err_path).unwrap_or_default();
        let Some(mut summary) = out.lines().find_map(LoadSummary::parse) else {
            bail!(
                "`{text}` ({status}) printed no summary; stderr:\n{}",
                err.trim_end()
            );
        };
        summary.first_error = err
            .lines()
            .find_map(|line| line.strip_prefix("first error: "))
            .map(str::to_owned);
        Ok(summary)
    }

    /// Starts a load in the background (for the demo) with its output in
    /// `<state>/load-background.{log,err}`; the caller owns the child and
    /// should kill and wait for it when done. The load stops by itself after
    /// `options.max_time` or `options.requests`.
    pub fn spawn_load(&self, options: &LoadOptions) -> Result<Child> {
        let dir = self.state_dir();
        let mut cmd = self.load_command(options)?;
        cmd.stdin(Stdio::null())
            .stdout(create_file(&dir.join("load-background.log"))?)
            .stderr(create_file(&dir.join("load-background.err"))?);
        let text = describe(&cmd);
        cmd.spawn()
            .with_context(|| format!("could not start `{text}`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_summary_line() {
        let summary =
            LoadSummary::parse("load requests=3 ok=2 errors=1 resumed=1 offered=2 seconds=0.5")
                .unwrap();
        assert_eq!((summary.requests, summary.ok, summary.errors), (3, 2, 1));
        assert!(LoadSummary::parse("something else").is_none());
    }
}
