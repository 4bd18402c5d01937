//! What the lab's servers read: `HAProxy`'s and nginx's configurations,
//! rendered per scenario from the templates in `lab/`, the Python backend
//! and load client, and the certificates.
//!
//! The files in `lab/` are embedded with `include_str!` and written to the
//! lab's state directory at `up`, so the lab runs the same from `cargo
//! xtask`, a test binary or the bench, wherever the source tree is.

use std::fs;

use anyhow::{Context as _, Result, bail};

use super::{
    scenario::Scenario,
    topology::{BACKEND_ADDR, BACKENDS, FRONT_ADDR, FRONT_PORT, Lab},
};
use crate::{programs, util::capture};

const HAPROXY_CFG: &str = include_str!("../../../lab/haproxy.cfg.in");
const NGINX_CONF: &str = include_str!("../../../lab/nginx.conf.in");
const BACKEND_PY: &str = include_str!("../../../lab/backend.py");
const CLIENT_PY: &str = include_str!("../../../lab/client.py");

impl Lab {
    /// Two self-signed P-256 certificates: `HAProxy`'s frontend (cert and key
    /// in one PEM, as `crt` wants) and the three backends'.
    pub(super) fn make_certificates(&self) -> Result<()> {
        let dir = self.state_dir();
        for (name, cn) in [
            ("frontend", "lab.tlsmon.test"),
            ("backend", "backend.lab.tlsmon.test"),
        ] {
            let key = dir.join(format!("{name}.key"));
            let crt = dir.join(format!("{name}.crt"));
            capture(
                programs::command("openssl")
                    .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
                    .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "30"])
                    .arg("-subj")
                    .arg(format!("/CN={cn}"))
                    .arg("-keyout")
                    .arg(&key)
                    .arg("-out")
                    .arg(&crt),
            )?;
        }
        let mut pem =
            fs::read_to_string(dir.join("frontend.crt")).context("reading frontend.crt")?;
        pem.push_str(
            &fs::read_to_string(dir.join("frontend.key")).context("reading frontend.key")?,
        );
        fs::write(dir.join("frontend.pem"), pem).context("writing frontend.pem")?;
        Ok(())
    }

    /// The rendered configurations and the two Python scripts, in the state
    /// directory; with `oracle`, `HAProxy` also logs each backend
    /// connection's TLS 1.2 secrets (see [`super::oracle`]).
    pub(super) fn write_files(&self, scenario: &Scenario, oracle: bool) -> Result<()> {
        let vars = self.template_vars(scenario, oracle);
        let files = [
            ("haproxy.cfg", render(HAPROXY_CFG, &vars)?),
            ("nginx.conf", render(NGINX_CONF, &vars)?),
            ("backend.py", BACKEND_PY.to_owned()),
            ("client.py", CLIENT_PY.to_owned()),
        ];
        for (name, text) in files {
            let path = self.state_dir().join(name);
            fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }

    /// The value of every `@NAME@` marker of the templates.
    fn template_vars(&self, scenario: &Scenario, oracle: bool) -> Vec<(&'static str, String)> {
        let [s_server, nginx, python] = BACKENDS;
        let (oracle_log, oracle_rules) = if oracle {
            haproxy_secrets(scenario)
        } else {
            (String::new(), String::new())
        };
        vec![
            ("SCENARIO", scenario.describe()),
            ("STATE_DIR", self.state_dir().display().to_string()),
            ("MODE", scenario.mode.keyword().to_owned()),
            ("FRONT_ADDR", FRONT_ADDR.to_owned()),
            ("FRONT_PORT", FRONT_PORT.to_string()),
            ("BACKEND_ADDR", BACKEND_ADDR.to_owned()),
            ("PORT_S_SERVER", s_server.port.to_string()),
            ("PORT_NGINX", nginx.port.to_string()),
            ("PORT_PYTHON", python.port.to_string()),
            ("BACKEND_MAX_TLS", scenario.haproxy_max_ver().to_owned()),
            ("BACKEND_OPTIONS", scenario.backend_options()),
            ("CAPTURE_RULE", scenario.capture_rule().to_owned()),
            ("SERVER_OPTIONS", scenario.server_options().to_owned()),
            ("ORACLE_LOG", oracle_log),
            ("ORACLE_RULES", oracle_rules),
            (
                "NGINX_SESSION",
                scenario.nginx_session_settings(&self.ticket_key_file()),
            ),
            (
                "NGINX_PROTOCOLS",
                if scenario.backend_tls13 {
                    "TLSv1.2 TLSv1.3".to_owned()
                } else {
                    "TLSv1.2".to_owned()
                },
            ),
        ]
    }

    /// nginx's session ticket key file (`ticket_rejected`).
    #[must_use]
    pub fn ticket_key_file(&self) -> std::path::PathBuf {
        self.state_dir().join("ticket.key")
    }

    /// Writes a new random session ticket key for nginx: 80 bytes, the
    /// size nginx reads as AES-256 keys (`ssl_session_ticket_key`).
    pub(super) fn write_ticket_key(&self) -> Result<()> {
        let path = self.ticket_key_file();
        capture(
            programs::command("openssl")
                .args(["rand", "-out"])
                .arg(&path)
                .arg("80"),
        )?;
        Ok(())
    }
}

/// The log-format fields and capture rules that put each backend
/// connection's TLS 1.2 secret in `HAProxy`'s log line, as the NSS key log's
/// `CLIENT_RANDOM <client random> <master secret>`. `HAProxy` 2.6 has these
/// two fetches for the backend side (`ssl_bc_client_random`,
/// `ssl_bc_session_key`, configuration.txt of 2.6); its TLS 1.3 secret
/// fetches (`ssl_fc_*_traffic_secret*`) exist for the frontend side only.
/// Captured while the server connection is alive, like `bc_resumed`.
fn haproxy_secrets(scenario: &Scenario) -> (String, String) {
    let rule = scenario.capture_rule();
    let log = " bc_client_random=%[var(sess.bc_client_random)] \
               bc_master_key=%[var(sess.bc_master_key)]"
        .to_owned();
    let rules = format!(
        "    # The oracle's key log (TLS 1.2 only; see xtask/src/lab/oracle).\n    \
         {rule} set-var(sess.bc_client_random) ssl_bc_client_random,hex\n    \
         {rule} set-var(sess.bc_master_key) ssl_bc_session_key,hex\n"
    );
    (log, rules)
}

/// Replaces every `@NAME@` in `template`; fails on a marker with no value.
fn render(template: &str, vars: &[(&str, String)]) -> Result<String> {
    let mut text = template.to_owned();
    for (name, value) in vars {
        text = text.replace(&format!("@{name}@"), value);
    }
    for (index, _) in text.match_indices('@') {
        let rest = &text[index + 1..];
        let marker: String = rest
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || *c == '_')
            .collect();
        if !marker.is_empty() && rest[marker.len()..].starts_with('@') {
            bail!("template marker @{marker}@ has no value");
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_completely() {
        for name in Scenario::NAMES {
            let scenario = Scenario::parse(name).unwrap();
            for oracle in [false, true] {
                let vars = Lab::standard().template_vars(&scenario, oracle);
                render(HAPROXY_CFG, &vars).unwrap();
                render(NGINX_CONF, &vars).unwrap();
            }
        }
        assert!(render("a @MISSING@ b", &[]).is_err());
    }
}
