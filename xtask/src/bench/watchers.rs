//! Who watches a lab run: tlsmon, tshark (what an operator would run
//! instead), or the return-only baseline program attached in tlsmon's
//! place. Each runs in the proxy namespace, is waited for until it says it
//! is ready, is stopped with SIGINT as an operator's Ctrl-C, and then says
//! what it counted.

use std::{
    fs,
    path::Path,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};
use xtask::lab::{Lab, Ns, proxy_ifaces};

use super::{
    outputs::{self, InPlaceOutput, TlsmonSummary},
    plan::{SETTLE, TSHARK_ARGS},
    report::as_f64,
};
use crate::util::{create_file, describe, wait_until};

/// Loading tlsmon's programs runs the verifier: seconds, more on a busy machine.
const ATTACH_TIMEOUT: Duration = Duration::from_mins(2);
const CAPTURE_TIMEOUT: Duration = Duration::from_mins(1);
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(50);

/// Who watched a run.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Watcher {
    Nobody,
    Tlsmon,
    Tshark,
    /// The return-only program attached in tlsmon's place (`bench in-place`).
    Baseline,
}

/// What a watcher counted itself, from its output after it stopped.
#[derive(Default)]
pub struct Counted {
    /// tlsmon's handshakes, tshark's ServerHellos.
    pub seen: Option<u64>,
    /// tlsmon's lost events, tshark's dropped packets.
    pub lost: Option<u64>,
    /// Seconds and runs of the kernel programs over the watcher's whole
    /// life: tlsmon's (`--kernel-cost`) or the baseline's.
    pub kernel: Option<(f64, u64)>,
}

impl Watcher {
    pub fn name(self) -> &'static str {
        match self {
            Self::Nobody => "off",
            Self::Tlsmon => "tlsmon",
            Self::Tshark => "tshark",
            Self::Baseline => "baseline",
        }
    }

    /// The watcher's command in `lab`'s proxy namespace: tlsmon and the
    /// bench example (for the baseline) as built.
    pub fn command(self, lab: &Lab, tlsmon: &Path, example: &Path) -> Option<Command> {
        let mut cmd = match self {
            Self::Nobody => return None,
            Self::Tlsmon => {
                let mut cmd = lab.tlsmon_command(tlsmon);
                // The classifier's own time, which no process is charged for.
                cmd.args(["--headless", "--kernel-cost"]);
                cmd
            }
            Self::Tshark => lab.exec(Ns::Proxy, "tshark"),
            Self::Baseline => lab.exec(Ns::Proxy, example),
        };
        match self {
            Self::Tshark => cmd.args(TSHARK_ARGS),
            Self::Baseline => cmd.arg("in-place").args(proxy_ifaces()),
            _ => &mut cmd,
        };
        Some(cmd)
    }

    /// What it says on stderr once it watches, and how long that may take.
    fn ready(self) -> (&'static str, Duration) {
        match self {
            Self::Tshark => ("Capturing on", CAPTURE_TIMEOUT),
            _ => ("attached to", ATTACH_TIMEOUT),
        }
    }

    /// What it counted, from its stdout and stderr after it stopped.
    pub fn counted(self, out: &Path, err: &Path) -> Result<Counted> {
        let read = |path: &Path| {
            fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
        };
        Ok(match self {
            Self::Nobody => Counted::default(),
            Self::Tlsmon => {
                let s = TlsmonSummary::parse(&read(out)?)
                    .with_context(|| format!("in {}", out.display()))?;
                Counted {
                    seen: Some(s.handshakes),
                    lost: Some(s.lost_events),
                    kernel: Some((s.kernel_run_s, s.kernel_runs)),
                }
            }
            Self::Tshark => Counted {
                seen: Some(outputs::server_hellos(&read(out)?)),
                lost: Some(outputs::tshark_dropped(&read(err)?)),
                kernel: None,
            },
            Self::Baseline => {
                let b: InPlaceOutput = outputs::read_json_file(out)?;
                Counted {
                    kernel: Some((as_f64(b.run_ns) / 1e9, b.runs)),
                    ..Counted::default()
                }
            }
        })
    }
}

/// A watcher that runs; killed if dropped before [`Watching::stop`].
pub struct Watching {
    child: Child,
    pub pid: u32,
}

impl Watching {
    /// Starts `watcher` with its output in `out` and `err` and waits until
    /// its stderr says it is ready, then lets it settle.
    pub fn start(watcher: Watcher, mut cmd: Command, out: &Path, err: &Path) -> Result<Self> {
        let (ready, timeout) = watcher.ready();
        let text = describe(&cmd);
        eprintln!("+ {text}");
        cmd.stdin(Stdio::null())
            .stdout(create_file(out)?)
            .stderr(create_file(err)?);
        let child = cmd
            .spawn()
            .with_context(|| format!("could not start `{text}`"))?;
        // `ip netns exec` execs the program, so this is the watcher's PID.
        let pid = child.id();
        let mut watching = Self { child, pid };
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = watching.child.try_wait()? {
                bail!(
                    "`{text}` exited ({status}) before saying {ready:?}; stderr:\n{}",
                    fs::read_to_string(err).unwrap_or_default().trim_end()
                );
            }
            if fs::read_to_string(err).unwrap_or_default().contains(ready) {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "`{text}` did not say {ready:?} within {timeout:?}"
            );
            thread::sleep(POLL);
        }
        thread::sleep(SETTLE);
        Ok(watching)
    }

    /// SIGINT, as an operator's Ctrl-C: tlsmon prints its summary, tshark
    /// flushes its output; both then exit 0.
    pub fn stop(mut self, err: &Path) -> Result<()> {
        let pid = libc::pid_t::try_from(self.pid).context("PID out of range")?;
        // SAFETY: kill has no memory-safety preconditions; the child is not
        // reaped yet, so the PID is still the watcher's.
        unsafe { libc::kill(pid, libc::SIGINT) };
        let Some(status) = wait_until(&mut self.child, Instant::now() + EXIT_TIMEOUT)? else {
            bail!("the watcher (pid {pid}) did not exit within {EXIT_TIMEOUT:?} of SIGINT");
        };
        ensure!(
            status.success(),
            "the watcher exited with {status}; stderr:\n{}",
            fs::read_to_string(err).unwrap_or_default().trim_end()
        );
        Ok(())
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        // Nothing left to do after `stop` reaped it: kill fails, wait
        // returns the status again.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
