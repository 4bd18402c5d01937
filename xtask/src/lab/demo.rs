//! What `cargo xtask demo` runs, shared with the test that runs it
//! headless (`monitor/tests/demo.rs`): the seed's problem in the proxy lab,
//! a live load through it, and tlsmon watching the proxy.
//!
//! The backends negotiate TLS 1.3 by default, because that is what a proxy
//! set up today does: HAProxy 2.6 with Debian 12's OpenSSL 3.0, given a
//! `server … ssl` line and no `ssl-max-ver`, negotiated TLS 1.3 with
//! `openssl s_server` (checked by hand: `s_server -www` reported
//! `Protocol : TLSv1.3` through a bare `mode http` listener). `--tls12`
//! shows the seed's own era, where the close_notify that matters is
//! visible on the wire.

use std::{path::Path, process::Command, time::Duration};

use super::{Lab, LoadOptions, Scenario};

/// The TLS versions the demo's backends may negotiate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DemoTls {
    /// Up to TLS 1.3, as HAProxy negotiates by default.
    #[default]
    Tls13,
    /// Up to TLS 1.2: the seed's problem as it was reported.
    Tls12,
}

/// The load stops by itself after this long.
pub const MAX_TRAFFIC_TIME: Duration = Duration::from_mins(10);

/// How soon after tlsmon attached its diagnosis must show (issue 16,
/// "Done when": within a minute).
pub const DIAGNOSIS_WITHIN: Duration = Duration::from_mins(1);

/// The demo's scenario: `broken` (HAProxy in TCP mode with `option
/// nolinger` resets its backend connections without close_notify), with
/// the backends allowed TLS 1.3 unless `tls` says otherwise.
#[must_use]
pub fn scenario(tls: DemoTls) -> Scenario {
    let name = match tls {
        DemoTls::Tls13 => "broken+tls13",
        DemoTls::Tls12 => "broken",
    };
    Scenario::parse(name).expect("the demo's scenarios are known names")
}

/// The demo's load: two clients, a request every 100 ms each, for at most
/// `max_time`.
#[must_use]
pub fn load(max_time: Duration) -> LoadOptions {
    LoadOptions::live(max_time)
}

/// tlsmon in the lab's proxy namespace on both of its interfaces, naming
/// servers from the lab's HAProxy configuration; without a terminal
/// (`headless`), JSON lines every 5 s and a diagnosis line as soon as one
/// appears, for at most `MAX_TRAFFIC_TIME`.
#[must_use]
pub fn tlsmon_command(lab: &Lab, tlsmon: &Path, headless: bool) -> Command {
    let mut cmd = lab.tlsmon_command(tlsmon);
    let config = lab.state_dir().join("haproxy.cfg");
    if config.is_file() {
        cmd.arg("--haproxy-config").arg(&config);
    }
    if headless {
        cmd.args(["--headless", "--interval", "5"]);
        cmd.args(["--duration", &MAX_TRAFFIC_TIME.as_secs().to_string()]);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls13_is_the_default_and_both_reset_backends() {
        let t13 = scenario(DemoTls::Tls13);
        let t12 = scenario(DemoTls::Tls12);
        assert!(t13.backend_tls13 && !t12.backend_tls13);
        assert!(t13.resets_backends() && t12.resets_backends());
        assert_eq!(DemoTls::default(), DemoTls::Tls13);
    }
}
