//! The oracle around a lab run: the captures (tcpdump in the proxy
//! namespace, one per proxy interface), the key logs the peers write, and
//! turning both into records after the run.

use std::{
    collections::BTreeMap,
    fs,
    io::Write as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};

use super::{Capture, Known, Record, Role, frames, keys, records};
use crate::lab::{
    logs::{HaproxyLine, haproxy_lines},
    processes::Output,
    scenario::Scenario,
    topology::{BACK_IF, BACKENDS, FRONT_IF, FRONT_PORT, Lab, Ns},
};

/// The two captures: name (also the tcpdump daemon's), interface.
const CAPTURES: [(&str, &str); 2] = [("capture-back", BACK_IF), ("capture-front", FRONT_IF)];

impl Lab {
    /// Where the oracle's captures, key logs and records are; it exists
    /// only in a lab brought up with the oracle.
    #[must_use]
    pub fn oracle_dir(&self) -> PathBuf {
        self.state_dir().join("oracle")
    }

    /// Whether the lab was brought up with the oracle.
    #[must_use]
    pub fn oracle_on(&self) -> bool {
        self.oracle_dir().is_dir()
    }

    /// The key log a peer writes (`s_server`, `python`, `client`), if the
    /// oracle is on.
    #[must_use]
    pub fn oracle_key_log(&self, peer: &str) -> Option<PathBuf> {
        self.oracle_on()
            .then(|| self.oracle_dir().join(format!("{peer}.keys")))
    }

    /// The capture of one proxy interface (`back` or `front`).
    #[must_use]
    pub fn oracle_capture(&self, side: &str) -> PathBuf {
        self.oracle_dir().join(format!("{side}.pcap"))
    }

    /// The oracle's records of the last run, one JSON object a line.
    #[must_use]
    pub fn oracle_records_file(&self) -> PathBuf {
        self.oracle_dir().join("oracle.jsonl")
    }

    /// Starts tcpdump on both proxy interfaces (whole packets, written as
    /// they come) and waits until both capture.
    pub(in crate::lab) fn start_captures(&self) -> Result<()> {
        for (name, iface) in CAPTURES {
            let side = name.trim_start_matches("capture-");
            let pid = self.spawn_daemon(
                Ns::Proxy,
                name,
                &[
                    "tcpdump".into(),
                    "-i".into(),
                    iface.into(),
                    "-n".into(),
                    "-s".into(),
                    "0".into(),
                    "-U".into(),
                    // Hand each packet over at once: in the default
                    // (buffered) mode the packets still in the kernel's
                    // ring when tcpdump is stopped are lost.
                    "--immediate-mode".into(),
                    // 32 MiB of kernel buffer (in KiB): on a busy machine
                    // the 2 MiB default overflowed within a 60-request run.
                    "-B".into(),
                    "32768".into(),
                    // Debian's tcpdump drops to its own user by default,
                    // which cannot write into the 0700 state directory.
                    "-Z".into(),
                    "root".into(),
                    "-w".into(),
                    self.oracle_capture(side).into_os_string(),
                    "tcp".into(),
                ],
                Output::Truncate,
            )?;
            self.wait_for_stderr(name, pid, "listening on")?;
        }
        Ok(())
    }

    /// Stops both captures, after a moment for the last packets of a run
    /// (the peers' FINs and RSTs) to be written. Fails if the kernel
    /// dropped packets for either: an oracle with holes is no oracle.
    pub fn stop_captures(&self) -> Result<()> {
        std::thread::sleep(std::time::Duration::from_millis(500));
        for (name, _) in CAPTURES {
            self.stop_daemon(name)?;
        }
        for (name, iface) in CAPTURES {
            let path = self.state_dir().join(format!("{name}.err"));
            let text = fs::read_to_string(&path).unwrap_or_default();
            match dropped(&text) {
                Some(0) => {}
                Some(n) => anyhow::bail!(
                    "the capture on {iface} lost {n} packets (tcpdump: dropped by kernel)"
                ),
                None => anyhow::bail!(
                    "tcpdump on {iface} did not report its counts at exit ({})",
                    path.display()
                ),
            }
        }
        Ok(())
    }

    /// Ends the captures and builds the oracle's records of everything
    /// since `up`: both interfaces, decrypted with every key log there is.
    /// Writes them to [`Lab::oracle_records_file`] and the merged key log
    /// beside it.
    pub fn oracle(&self) -> Result<Vec<Record>> {
        let scenario = self.require_up()?;
        anyhow::ensure!(
            self.oracle_on(),
            "the lab is up without the oracle (bring it up with the oracle on)"
        );
        self.stop_captures()?;
        let log_path = self.haproxy_log();
        let log = fs::read_to_string(&log_path)
            .with_context(|| format!("reading {}", log_path.display()))?;
        let lines = haproxy_lines(&log);
        let key_log = self.oracle_dir().join("all.keys");
        let peers: Vec<PathBuf> = ["s_server", "python", "client"]
            .iter()
            .filter_map(|p| self.oracle_key_log(p))
            .collect();
        let peer_refs: Vec<&Path> = peers.iter().map(PathBuf::as_path).collect();
        keys::merge(&peer_refs, &keys::from_haproxy(&lines), &key_log)?;

        let events = self.events().unwrap_or_default();
        let known = known(&scenario, &events);
        let back: Vec<(u16, &str)> = BACKENDS.iter().map(|b| (b.port, b.name)).collect();
        let front = [(FRONT_PORT, "frontend")];
        let mut all = Vec::new();
        for (side, role, servers) in [
            ("back", Role::Backend, &back[..]),
            ("front", Role::Frontend, &front[..]),
        ] {
            let ports: Vec<u16> = servers.iter().map(|(p, _)| *p).collect();
            let frames = frames::read(&self.oracle_capture(side), Some(&key_log), &ports)?;
            all.extend(records(&Capture {
                role,
                frames: &frames,
                servers,
                haproxy: &lines,
                known: &known,
            }));
        }
        write_records(&self.oracle_records_file(), &all)?;
        Ok(all)
    }

    /// `HAProxy`'s log lines so far.
    pub fn haproxy_lines(&self) -> Result<Vec<HaproxyLine>> {
        let path = self.haproxy_log();
        let log =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(haproxy_lines(&log))
    }
}

/// The `N packets dropped by kernel` tcpdump prints when it stops.
fn dropped(stderr: &str) -> Option<u64> {
    stderr
        .lines()
        .find_map(|l| l.strip_suffix(" packets dropped by kernel"))
        .and_then(|n| n.trim().parse().ok())
}

/// What the scenario did to each backend, from its settings and the
/// events of its run.
#[must_use]
pub fn known(scenario: &Scenario, events: &[crate::lab::plan::Event]) -> BTreeMap<String, Known> {
    let times = |kind: &str, server: &str| -> Vec<f64> {
        events
            .iter()
            .filter(|e| e.kind == kind && e.server.as_deref() == Some(server))
            .map(|e| e.at)
            .collect()
    };
    BACKENDS
        .iter()
        .map(|backend| {
            let name = backend.name;
            let known = Known {
                // nginx's `ssl_session_cache off`, `s_server -no_cache`.
                no_cache: !scenario.backend_cache && name != "python",
                // nginx's `ssl_session_timeout`, the Python backend's
                // `SSL_CTX_set_timeout`; s_server keeps OpenSSL's default.
                session_timeout: scenario
                    .session_timeout
                    .filter(|_| name != "s_server")
                    .map(|t| t.as_secs_f64()),
                restarts: times("restart", name),
                key_changes: times("ticket_key_change", name),
            };
            (name.to_owned(), known)
        })
        .collect()
}

/// Writes records as JSON lines.
pub fn write_records(path: &Path, records: &[Record]) -> Result<()> {
    let mut file =
        fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    for record in records {
        serde_json::to_writer(&mut file, record)?;
        file.write_all(b"\n")?;
    }
    Ok(())
}

/// Reads records written by [`write_records`].
pub fn read_records(path: &Path) -> Result<Vec<Record>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("oracle line {l:?}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcpdump_drop_counts() {
        let text = "tcpdump: listening on lab-front\n742 packets captured\n\
                    942 packets received by filter\n200 packets dropped by kernel\n";
        assert_eq!(dropped(text), Some(200));
        assert_eq!(dropped("tcpdump: listening on lab-back\n"), None);
    }
}
