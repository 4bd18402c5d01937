//! The lab's scenarios: what a name like `broken` or `working+tls13`
//! stands for in `HAProxy`'s and the backends' settings, and which one a
//! lab instance is up in.

use std::{fmt::Write as _, fs};

use anyhow::{Context as _, Result, bail};

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

/// The settings a scenario name stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// The name as given, e.g. `broken` or `working+tls13`.
    pub name: String,
    pub mode: Mode,
    /// `option nolinger` in the backend: close with `SO_LINGER` 0 (a RST).
    pub nolinger: bool,
    /// `option http-server-close` (HTTP mode): one request per backend
    /// connection, so every request is a backend handshake.
    pub http_server_close: bool,
    /// Backends (and `HAProxy`'s `ssl-max-ver`) allow TLS 1.3; otherwise
    /// TLS 1.2 is the maximum, so resumption uses session IDs.
    pub backend_tls13: bool,
}

impl Scenario {
    /// The base names `parse` accepts; each may be followed by `+tls13`.
    pub const NAMES: [&'static str; 3] = ["broken", "working", "http"];

    /// `broken`: `mode tcp` + `option nolinger`: `HAProxy` resets backend
    /// connections without `close_notify` (the motivating problem).
    /// `working`: `mode tcp` without nolinger: `close_notify`, then FIN.
    /// `http`: `mode http` + `option http-server-close`: `close_notify` too.
    /// A `+tls13` suffix lets the backends negotiate TLS 1.3.
    pub fn parse(text: &str) -> Result<Self> {
        let mut parts = text.split('+');
        let base = parts.next().unwrap_or_default();
        let (mode, nolinger, http_server_close) = match base {
            "broken" => (Mode::Tcp, true, false),
            "working" => (Mode::Tcp, false, false),
            "http" => (Mode::Http, false, true),
            _ => bail!(
                "unknown lab scenario {text:?}: expected one of {}, optionally followed by +tls13",
                Self::NAMES.join(", ")
            ),
        };
        let mut backend_tls13 = false;
        for modifier in parts {
            match modifier {
                "tls13" => backend_tls13 = true,
                _ => {
                    bail!("unknown lab scenario modifier {modifier:?} in {text:?}: expected tls13")
                }
            }
        }
        Ok(Self {
            name: text.to_owned(),
            mode,
            nolinger,
            http_server_close,
            backend_tls13,
        })
    }

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

    /// The rule that captures `ssl_bc_is_resumed` while the backend
    /// connection is alive.
    #[must_use]
    pub fn capture_rule(&self) -> &'static str {
        match self.mode {
            Mode::Tcp => "tcp-response content",
            Mode::Http => "http-response",
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
                "the proxy lab ({}) is not up; run `cargo xtask lab up broken|working|http` first",
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
    }
}
