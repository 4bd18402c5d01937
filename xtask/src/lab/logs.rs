//! What the lab's servers logged about their handshakes: `HAProxy`'s log
//! (one line per client connection, with `ssl_fc_is_resumed` and
//! `ssl_bc_is_resumed`) and the Python backend's (one line per backend
//! connection). They are the oracles tlsmon's counts are checked against,
//! independent of tlsmon.

use std::{collections::BTreeMap, fs, net::SocketAddr};

use anyhow::{Context as _, Result};

use super::topology::Lab;

/// Handshakes of one TLS server by outcome, as a server logged them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub full: u64,
    pub resumed: u64,
    /// Lines without a value (`-`): no backend response, or no handshake.
    pub unknown: u64,
}

impl Tally {
    /// Counts one `0` (full), `1` (resumed) or anything else (unknown).
    fn add(&mut self, value: &str) {
        match value {
            "0" => self.full += 1,
            "1" => self.resumed += 1,
            _ => self.unknown += 1,
        }
    }

    #[must_use]
    pub fn total(&self) -> u64 {
        self.full + self.resumed + self.unknown
    }
}

/// `HAProxy`'s own view, from its log: the oracle for tlsmon's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HaproxyCounts {
    /// Log lines (one per client connection).
    pub lines: u64,
    /// Lines of connections that ended normally (`term=--`); a load cut
    /// off at its end leaves a few others (`CD`).
    pub completed: u64,
    /// `ssl_fc_is_resumed` per line.
    pub frontend: Tally,
    /// `ssl_bc_is_resumed`, captured while the server connection was alive,
    /// per `HAProxy` server name.
    pub backends: BTreeMap<String, Tally>,
    /// Lines with no server (`srv=<NOSRV>`), e.g. refused connections.
    pub no_server: u64,
}

impl HaproxyCounts {
    /// Parses the lab's log format (lines starting with `tlsmon-lab `, see
    /// `lab/haproxy.cfg.in`); other lines (`HAProxy`'s own notices) are
    /// skipped.
    #[must_use]
    pub fn parse(log: &str) -> Self {
        let mut counts = Self::default();
        for line in log.lines() {
            let Some(rest) = line.strip_prefix("tlsmon-lab ") else {
                continue;
            };
            let field = |name: &str| {
                rest.split_whitespace()
                    .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
                    .unwrap_or("-")
            };
            counts.lines += 1;
            if field("term") == "--" {
                counts.completed += 1;
            }
            counts.frontend.add(field("fc_resumed"));
            let server = field("srv");
            if server == "<NOSRV>" || server == "-" {
                counts.no_server += 1;
                continue;
            }
            counts
                .backends
                .entry(server.to_owned())
                .or_default()
                .add(field("bc_resumed"));
        }
        counts
    }

    /// The tally of one `HAProxy` server (zero if it never got a connection).
    #[must_use]
    pub fn backend(&self, name: &str) -> Tally {
        self.backends.get(name).copied().unwrap_or_default()
    }

    /// Full and resumed handshakes over all backends.
    #[must_use]
    pub fn all_backends(&self) -> Tally {
        self.backends
            .values()
            .fold(Tally::default(), |sum, t| Tally {
                full: sum.full + t.full,
                resumed: sum.resumed + t.resumed,
                unknown: sum.unknown + t.unknown,
            })
    }
}

/// One connection as `HAProxy` logged it (the fields the oracle needs).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HaproxyLine {
    /// `HAProxy`'s server name (`srv=`).
    pub server: String,
    /// The client's endpoint on the frontend (`client=`).
    pub client: Option<SocketAddr>,
    /// `HAProxy`'s own endpoint of the backend connection (`via=`): the
    /// client endpoint of that connection in a backend-side capture.
    pub via: Option<SocketAddr>,
    /// When `HAProxy` accepted the client connection (`accept=`, seconds
    /// since the epoch, millisecond resolution); the backend connection
    /// starts after it.
    pub accepted_at: Option<f64>,
    /// `ssl_bc_is_resumed` captured while the connection was alive.
    pub bc_resumed: Option<bool>,
    /// `ssl_bc_protocol`, e.g. `TLSv1.2`.
    pub bc_version: Option<String>,
    /// With the oracle on: the backend connection's client random and TLS
    /// 1.2 master secret, hex.
    pub bc_client_random: Option<String>,
    pub bc_master_key: Option<String>,
}

/// Every `tlsmon-lab ...` line of `HAProxy`'s log.
#[must_use]
pub fn haproxy_lines(log: &str) -> Vec<HaproxyLine> {
    log.lines()
        .filter_map(|line| line.strip_prefix("tlsmon-lab "))
        .map(|rest| {
            let field = |name: &str| {
                rest.split_whitespace()
                    .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
                    .filter(|v| !v.is_empty() && *v != "-")
            };
            HaproxyLine {
                server: field("srv").unwrap_or("-").to_owned(),
                client: field("client").and_then(|v| v.parse().ok()),
                via: field("via").and_then(|v| v.parse().ok()),
                accepted_at: field("accept").and_then(|v| v.parse().ok()),
                bc_resumed: match field("bc_resumed") {
                    Some("1") => Some(true),
                    Some("0") => Some(false),
                    _ => None,
                },
                bc_version: field("bc_version").map(str::to_owned),
                bc_client_random: field("bc_client_random").map(str::to_owned),
                bc_master_key: field("bc_master_key").map(str::to_owned),
            }
        })
        .collect()
}

/// One connection as the Python backend logged it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PythonLine {
    /// `HAProxy`'s endpoint (`peer=`).
    pub peer: Option<SocketAddr>,
    /// `resumed=`; `None` before the handshake completed.
    pub resumed: Option<bool>,
    /// `close=`: `clean`, `eof`, `reset` or `error(...)`.
    pub close: String,
}

/// Every `conn ...` line of the Python backend's log.
#[must_use]
pub fn python_lines(log: &str) -> Vec<PythonLine> {
    log.lines()
        .filter_map(|line| line.strip_prefix("conn "))
        .map(|rest| {
            let field = |name: &str| {
                rest.split_whitespace()
                    .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            };
            let handshaken = field("version").is_some_and(|v| v != "-");
            PythonLine {
                peer: field("peer").and_then(|v| v.parse().ok()),
                resumed: match field("resumed") {
                    Some("1") => Some(true),
                    Some("0") if handshaken => Some(false),
                    _ => None,
                },
                close: field("close").unwrap_or("-").to_owned(),
            }
        })
        .collect()
}

/// Full and resumed handshakes in the Python backend's `conn ...
/// resumed=N` lines (`lab/backend.py`).
#[must_use]
pub fn python_tally(log: &str) -> Tally {
    let mut tally = Tally::default();
    for line in log.lines().filter(|l| l.starts_with("conn ")) {
        let value = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("resumed="))
            .unwrap_or("-");
        tally.add(value);
    }
    tally
}

impl Lab {
    /// Copies what a failed run needs for a post-mortem into `dir`
    /// (emptied first): logs, configs, and the oracle's captures, key logs
    /// and records. Never a private key; the key logs are those of
    /// throw-away lab connections and are worthless without the captures.
    /// Returns `dir`.
    #[must_use = "where the logs are"]
    pub fn keep_logs(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let _ = fs::remove_dir_all(dir);
        let _ = fs::create_dir_all(dir);
        for from in [self.state_dir(), self.oracle_dir()] {
            let Ok(entries) = fs::read_dir(&from) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let wanted = [
                    ".log", ".err", ".out", ".cfg", ".conf", ".jsonl", ".pcap", ".keys",
                ]
                .iter()
                .any(|ext| name.ends_with(ext));
                if wanted && entry.path().is_file() {
                    let _ = fs::copy(entry.path(), dir.join(&name));
                }
            }
        }
        dir.to_path_buf()
    }

    /// `HAProxy`'s counts so far.
    pub fn haproxy_counts(&self) -> Result<HaproxyCounts> {
        let path = self.haproxy_log();
        let log =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(HaproxyCounts::parse(&log))
    }

    /// The Python backend's lines so far; none before it logged anything.
    #[must_use]
    pub fn python_lines(&self) -> Vec<PythonLine> {
        let log = fs::read(self.python_log()).unwrap_or_default();
        python_lines(&String::from_utf8_lossy(&log))
    }

    /// The Python backend's counts so far; zero before it logged anything.
    #[must_use]
    pub fn python_counts(&self) -> Tally {
        let log = fs::read(self.python_log()).unwrap_or_default();
        python_tally(&String::from_utf8_lossy(&log))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haproxy_log_counts() {
        let log = "\
tlsmon-lab fe=tls_in be=tls_backends srv=python fc_resumed=0 bc_resumed=0 term=--
tlsmon-lab fe=tls_in be=tls_backends srv=python fc_resumed=1 bc_resumed=1 term=--
tlsmon-lab fe=tls_in be=tls_backends srv=nginx fc_resumed=1 bc_resumed=- term=SD
[NOTICE] something else term=--
tlsmon-lab fe=tls_in be=tls_backends srv=<NOSRV> fc_resumed=0 bc_resumed=- term=SC
";
        let counts = HaproxyCounts::parse(log);
        assert_eq!(counts.lines, 4);
        assert_eq!(counts.completed, 2);
        assert_eq!(
            counts.frontend,
            Tally {
                full: 2,
                resumed: 2,
                unknown: 0
            }
        );
        assert_eq!(
            counts.backend("python"),
            Tally {
                full: 1,
                resumed: 1,
                unknown: 0
            }
        );
        assert_eq!(counts.backend("nginx").unknown, 1);
        assert_eq!(counts.no_server, 1);
        assert_eq!(counts.backend("s_server"), Tally::default());
        assert_eq!(
            counts.all_backends(),
            Tally {
                full: 1,
                resumed: 1,
                unknown: 1
            }
        );
    }

    #[test]
    fn haproxy_log_lines() {
        let log = "\
tlsmon-lab accept=1796677079.462 fe=tls_in be=tls_backends srv=nginx client=10.210.1.10:4000 via=10.210.2.1:5000 \
server=10.210.2.10:8444 fc_resumed=1 bc_resumed=1 bc_version=TLSv1.2 term=-- \
bc_client_random=ab bc_master_key=cd
tlsmon-lab fe=tls_in be=tls_backends srv=<NOSRV> client=10.210.1.10:4001 via=- bc_resumed=-
";
        let lines = haproxy_lines(log);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].via, Some("10.210.2.1:5000".parse().unwrap()));
        assert_eq!(lines[0].bc_resumed, Some(true));
        assert_eq!(lines[0].accepted_at, Some(1_796_677_079.462));
        assert_eq!(lines[0].bc_master_key.as_deref(), Some("cd"));
        assert_eq!(lines[1].via, None);
        assert_eq!(lines[1].bc_resumed, None);
    }

    #[test]
    fn python_log_counts() {
        let log = "listening on 10.210.2.10:8445\n\
                   conn peer=10.210.2.1:1 resumed=0 close=reset\n\
                   conn peer=10.210.2.1:2 resumed=1 close=clean\n\
                   conn peer=10.210.2.1:3 close=eof\n";
        let lines = python_lines(log);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].peer, Some("10.210.2.1:1".parse().unwrap()));
        assert_eq!(lines[1].resumed, Some(true));
        assert_eq!((lines[2].resumed, lines[2].close.as_str()), (None, "eof"));
        assert_eq!(
            python_tally(log),
            Tally {
                full: 1,
                resumed: 1,
                unknown: 1
            }
        );
    }
}
