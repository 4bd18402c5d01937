//! The lab's scenarios: what a name like `broken`, `checks` or
//! `expired+tls13` stands for in `HAProxy`'s and the backends' settings,
//! which cause of rejected resumptions it reproduces, and which one a lab
//! instance is up in. How a scenario's load runs (pauses, restarts, key
//! changes) is in [`super::plan`].

use std::{fmt::Write as _, fs, time::Duration};

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

use super::topology::{Lab, Ns};

/// How `HAProxy` proxies: `mode tcp` or `mode http`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Tcp,
    Http,
}

impl Mode {
    /// The word of `HAProxy`'s `mode` directive.
    #[must_use]
    pub fn keyword(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Http => "http",
        }
    }
}

/// Why a server rejected an offered session: the causes issue 16 names,
/// spelled as tlsmon's `cause` values.
///
/// The oracle's own type, not `monitor::stats::Cause`: what the oracle
/// decides must not rest on tlsmon's code, and the comparison
/// (`oracle::agreement`) matches the two by these names, so a name that
/// drifts on either side fails the lab's oracle tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The session's last holder ended without the proxy's `close_notify`
    /// and the server dropped it (OpenSSL's `ssl_clear_bad_session`).
    AfterUnclean,
    /// Rejected although the last holder ended cleanly, with no known event
    /// that explains it.
    AfterClean,
    /// Older than the server's session timeout.
    Expired,
    /// Issued before the server restarted (its cache is gone).
    ServerRestart,
    /// The server keeps no sessions at all.
    NoCache,
    /// A TLS ≤ 1.2 stateless ticket the server cannot decrypt any more
    /// (its keys changed).
    TicketRejected,
    /// The evidence does not say.
    Unknown,
}

impl Cause {
    pub const ALL: [Self; 7] = [
        Self::AfterUnclean,
        Self::AfterClean,
        Self::Expired,
        Self::ServerRestart,
        Self::NoCache,
        Self::TicketRejected,
        Self::Unknown,
    ];

    /// The `snake_case` name, as in the JSON records.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::AfterUnclean => "after_unclean",
            Self::AfterClean => "after_clean",
            Self::Expired => "expired",
            Self::ServerRestart => "server_restart",
            Self::NoCache => "no_cache",
            Self::TicketRejected => "ticket_rejected",
            Self::Unknown => "unknown",
        }
    }
}

/// The settings a scenario name stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "each flag is one independent setting of HAProxy or a backend, named after it"
)]
pub struct Scenario {
    /// The name as given, e.g. `broken` or `checks+tls13`.
    pub name: String,
    /// The base name, without modifiers.
    pub base: &'static str,
    pub mode: Mode,
    /// `option nolinger` in the backend: close with `SO_LINGER` 0 (a RST).
    pub nolinger: bool,
    /// `option http-server-close` (HTTP mode): one request per backend
    /// connection, so every request is a backend handshake.
    pub http_server_close: bool,
    /// Backends (and `HAProxy`'s `ssl-max-ver`) allow TLS 1.3; otherwise
    /// TLS 1.2 is the maximum, so resumption uses session IDs or tickets.
    pub backend_tls13: bool,
    /// `check` on every server line: `HAProxy` 2.6's SSL health checks,
    /// which resume the traffic's session and end with a RST.
    pub health_checks: bool,
    /// The session cache timeout of nginx (`ssl_session_timeout`) and the
    /// Python backend (`SSL_CTX_set_timeout`); `None`: their defaults.
    pub session_timeout: Option<Duration>,
    /// `false`: nginx with `ssl_session_cache none` and `openssl s_server
    /// -no_cache`: servers that keep no sessions.
    pub backend_cache: bool,
    /// nginx issues TLS ≤ 1.2 stateless tickets with keys from a file that
    /// the plan replaces (and reloads nginx) during the load.
    pub ticket_keys: bool,
    /// The plan restarts `s_server` and the Python backend during the load.
    pub restart_backends: bool,
    /// The cause of rejected offers the scenario exists to show, if any.
    pub reproduces: Option<Cause>,
}

impl Scenario {
    /// The base names `parse` accepts; each may be followed by `+tls13`
    /// (except `ticket_rejected`: TLS 1.3 has no TLS 1.2 tickets).
    pub const NAMES: [&'static str; 10] = [
        "broken",
        "working",
        "http",
        "unclean",
        "clean",
        "checks",
        "expired",
        "server_restart",
        "no_cache",
        "ticket_rejected",
    ];

    /// The base names of the scenarios that reproduce (or rule out) a cause,
    /// for the oracle's tests and `cargo xtask lab run`.
    pub const CAUSES: [&'static str; 8] = [
        "unclean",
        "clean",
        "http",
        "checks",
        "expired",
        "server_restart",
        "no_cache",
        "ticket_rejected",
    ];

    /// `broken` / `unclean`: `mode tcp` + `option nolinger`: `HAProxy`
    /// resets backend connections without `close_notify` (the motivating
    /// problem). `working` / `clean`: `mode tcp` without nolinger:
    /// `close_notify`, then FIN. `http`: `mode http` + `option
    /// http-server-close`: `close_notify` too. `checks`: `http` plus SSL
    /// health checks. `expired`: `clean` with a 2 s backend session timeout
    /// (and pauses in the load). `server_restart`: `clean`, backends
    /// restarted during the load. `no_cache`: `clean`, backends without a
    /// session cache. `ticket_rejected`: `clean`, nginx with stateless
    /// tickets whose keys change during the load. A `+tls13` suffix lets the
    /// backends negotiate TLS 1.3.
    pub fn parse(text: &str) -> Result<Self> {
        let mut parts = text.split('+');
        let given = parts.next().unwrap_or_default();
        let Some(&base) = Self::NAMES.iter().find(|&&n| n == given) else {
            bail!(
                "unknown lab scenario {text:?}: expected one of {}, optionally followed by +tls13",
                Self::NAMES.join(", ")
            );
        };
        let mut scenario = Self {
            name: text.to_owned(),
            base,
            mode: Mode::Tcp,
            nolinger: false,
            http_server_close: false,
            backend_tls13: false,
            health_checks: false,
            session_timeout: None,
            backend_cache: true,
            ticket_keys: false,
            restart_backends: false,
            reproduces: None,
        };
        match base {
            "broken" | "unclean" => {
                scenario.nolinger = true;
                scenario.reproduces = Some(Cause::AfterUnclean);
            }
            "http" => {
                scenario.mode = Mode::Http;
                scenario.http_server_close = true;
            }
            "checks" => {
                scenario.mode = Mode::Http;
                scenario.http_server_close = true;
                scenario.health_checks = true;
                scenario.reproduces = Some(Cause::AfterUnclean);
            }
            "expired" => {
                scenario.session_timeout = Some(Self::SHORT_SESSION_TIMEOUT);
                scenario.reproduces = Some(Cause::Expired);
            }
            "server_restart" => {
                scenario.restart_backends = true;
                scenario.reproduces = Some(Cause::ServerRestart);
            }
            "no_cache" => {
                scenario.backend_cache = false;
                scenario.reproduces = Some(Cause::NoCache);
            }
            "ticket_rejected" => {
                scenario.ticket_keys = true;
                scenario.reproduces = Some(Cause::TicketRejected);
            }
            // working, clean
            _ => {}
        }
        for modifier in parts {
            match modifier {
                "tls13" => scenario.backend_tls13 = true,
                _ => {
                    bail!("unknown lab scenario modifier {modifier:?} in {text:?}: expected tls13")
                }
            }
        }
        if scenario.ticket_keys && scenario.backend_tls13 {
            bail!(
                "{text}: ticket_rejected is about TLS ≤ 1.2 stateless tickets; it has no +tls13 variant"
            );
        }
        Ok(scenario)
    }

    /// The backends' session timeout in `expired`: short enough that the
    /// plan's pauses outlast it, long enough that a burst of requests stays
    /// within it.
    pub const SHORT_SESSION_TIMEOUT: Duration = Duration::from_secs(2);

    /// Whether `HAProxy` ends backend connections with a bare RST, so that the
    /// Python backend rejects every session `HAProxy` offers it.
    #[must_use]
    pub fn resets_backends(&self) -> bool {
        self.mode == Mode::Tcp && self.nolinger
    }

    /// One line for people: the settings behind the name.
    #[must_use]
    pub fn describe(&self) -> String {
        let mut text = format!("{}: HAProxy mode {}", self.name, self.mode.keyword());
        if self.nolinger {
            text.push_str(" + option nolinger (backend connections end with RST, no close_notify)");
        } else if self.http_server_close {
            text.push_str(" + option http-server-close (close_notify, then close)");
        } else {
            text.push_str(" (backend connections end with close_notify, then FIN)");
        }
        if self.health_checks {
            text.push_str(" + SSL health checks (check inter 1s; they end with RST)");
        }
        if let Some(timeout) = self.session_timeout {
            let _ = write!(
                text,
                "; nginx and python session timeout {} s",
                timeout.as_secs()
            );
        }
        if !self.backend_cache {
            text.push_str("; nginx ssl_session_cache none, s_server -no_cache");
        }
        if self.ticket_keys {
            text.push_str("; nginx stateless tickets, keys replaced during the load");
        }
        if self.restart_backends {
            text.push_str("; s_server and python restarted during the load");
        }
        let _ = write!(
            text,
            "; backends at most TLS {}",
            if self.backend_tls13 { "1.3" } else { "1.2" }
        );
        text
    }

    /// `HAProxy`'s `ssl-max-ver` towards the backends.
    #[must_use]
    pub fn haproxy_max_ver(&self) -> &'static str {
        if self.backend_tls13 {
            "TLSv1.3"
        } else {
            "TLSv1.2"
        }
    }

    /// The lines of `HAProxy`'s backend section that make the scenario.
    #[must_use]
    pub fn backend_options(&self) -> String {
        let mut lines = String::new();
        if self.nolinger {
            lines.push_str(
                "    # Close backend connections with SO_LINGER 0: a TCP RST. In TCP mode\n    \
                 # HAProxy then skips close_notify (quiet SSL shutdown).\n    \
                 option nolinger\n",
            );
        }
        if self.http_server_close {
            lines.push_str(
                "    # Close the backend connection after each response (close_notify first)\n    \
                 # instead of keeping it for reuse: one backend handshake per request.\n    \
                 option http-server-close\n",
            );
        }
        if lines.is_empty() {
            lines.push_str("    # Default closing: close_notify, then FIN.\n");
        }
        lines
    }

    /// What follows the address on every `server` line.
    #[must_use]
    pub fn server_options(&self) -> &'static str {
        if self.health_checks {
            // A plain `check` on an `ssl` server: the check is an SSL
            // handshake with the server's settings (and its cached session),
            // then a close without close_notify (docs/proxy-lab.md).
            "check inter 1s"
        } else {
            ""
        }
    }

    /// The rule that captures `ssl_bc_is_resumed` while the backend
    /// connection is alive.
    #[must_use]
    pub fn capture_rule(&self) -> &'static str {
        match self.mode {
            Mode::Tcp => "tcp-response content",
            Mode::Http => "http-response",
        }
    }

    /// nginx's session cache and ticket directives; a ticket key file is
    /// `ticket_key`.
    #[must_use]
    pub fn nginx_session_settings(&self, ticket_key: &std::path::Path) -> String {
        let timeout = self
            .session_timeout
            .map_or_else(|| "10m".to_owned(), |t| format!("{}s", t.as_secs()));
        if self.ticket_keys {
            // Stateless tickets only: with the cache off, a ticket nginx
            // cannot decrypt is the only way an offer can fail.
            format!(
                "ssl_session_cache off;\n        \
                 ssl_session_timeout {timeout};\n        \
                 ssl_session_tickets on;\n        \
                 ssl_session_ticket_key {};",
                ticket_key.display()
            )
        } else if self.backend_cache {
            format!(
                "ssl_session_cache shared:SSL:10m;\n        \
                 ssl_session_timeout {timeout};\n        \
                 ssl_session_tickets off;"
            )
        } else {
            // `none`, not `off`: nginx still hands out session IDs (and
            // TLS 1.3 tickets) but stores nothing, so every offer fails.
            // With `off` OpenSSL sends an empty session ID
            // (SSL_SESS_CACHE_OFF) and a TLS 1.2 client never offers.
            "ssl_session_cache none;\n        ssl_session_tickets off;".to_owned()
        }
    }
}

impl Lab {
    /// The scenario the lab was brought up with, if it is up.
    pub fn scenario(&self) -> Result<Option<Scenario>> {
        let path = self.scenario_file();
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Some(Scenario::parse(text.trim())?)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Notes the scenario the lab is now up in; `down` removes the note.
    pub(super) fn record_scenario(&self, scenario: &Scenario) -> Result<()> {
        let path = self.scenario_file();
        fs::write(&path, format!("{}\n", scenario.name))
            .with_context(|| format!("writing {}", path.display()))
    }

    pub(super) fn scenario_file(&self) -> std::path::PathBuf {
        self.state_dir().join("scenario")
    }

    /// Fails unless the lab is up.
    pub(super) fn require_up(&self) -> Result<Scenario> {
        match self.scenario()? {
            Some(scenario) if self.ns_exists(Ns::Proxy) => Ok(scenario),
            _ => bail!(
                "the proxy lab ({}) is not up; run `cargo xtask lab up <scenario>` first",
                self.name()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_parse() {
        let broken = Scenario::parse("broken").unwrap();
        assert!(broken.resets_backends() && !broken.backend_tls13);
        let working = Scenario::parse("working+tls13").unwrap();
        assert!(!working.resets_backends() && working.backend_tls13);
        assert_eq!(Scenario::parse("http").unwrap().mode, Mode::Http);
        assert!(Scenario::parse("fast").is_err());
        assert!(Scenario::parse("broken+tls12").is_err());
        let checks = Scenario::parse("checks+tls13").unwrap();
        assert!(checks.health_checks && checks.mode == Mode::Http && checks.backend_tls13);
        assert_eq!(
            Scenario::parse("unclean").unwrap().reproduces,
            Some(Cause::AfterUnclean)
        );
        assert!(Scenario::parse("ticket_rejected+tls13").is_err());
        for name in Scenario::NAMES {
            Scenario::parse(name).unwrap();
        }
        for name in Scenario::CAUSES {
            assert!(Scenario::NAMES.contains(&name));
        }
    }

    #[test]
    fn cause_names_match_serde() {
        for cause in Cause::ALL {
            let json = serde_json::to_string(&cause).unwrap();
            assert_eq!(json, format!("\"{}\"", cause.name()));
        }
    }
}
