//! The lab's servers and how each is started: `openssl s_server`, nginx
//! and the Python backend in the backend namespace, then `HAProxy` in the
//! proxy namespace, after `haproxy -c` accepted its configuration. The
//! scenario sets the backends' session settings; with the oracle on, the
//! two backends that can write key logs do.

use std::ffi::OsString;

use anyhow::{Context as _, Result};

use super::{
    processes::Output,
    scenario::Scenario,
    topology::{BACKEND_ADDR, BACKENDS, Backend, FRONT_PORT, Lab, Ns, backend_server},
};
use crate::util::capture;

impl Lab {
    /// The three backends, then `HAProxy`, each waited for until it
    /// listens; the network, certificates and configurations must be there.
    pub(super) fn start_servers(&self, scenario: &Scenario) -> Result<()> {
        if scenario.ticket_keys {
            self.write_ticket_key()?;
        }
        let mut started = Vec::new();
        for backend in BACKENDS {
            let pid = self.spawn_daemon(
                Ns::Backend,
                backend.name,
                &self.backend_command(&backend, scenario),
                Output::Truncate,
            )?;
            started.push((backend, pid));
        }
        for (backend, pid) in started {
            self.wait_listening(Ns::Backend, backend.port, backend.name, pid)?;
        }

        let config = self.state_dir().join("haproxy.cfg").into_os_string();
        capture(
            self.exec(Ns::Proxy, "haproxy")
                .arg("-c")
                .arg("-f")
                .arg(&config),
        )
        .context("HAProxy rejected the rendered configuration")?;
        let haproxy_pid = self.spawn_daemon(
            Ns::Proxy,
            "haproxy",
            &["haproxy".into(), "-db".into(), "-f".into(), config],
            Output::Truncate,
        )?;
        self.wait_listening(Ns::Proxy, FRONT_PORT, "haproxy", haproxy_pid)
    }

    /// Stops one backend and starts it again with the same settings; its
    /// log continues (appended) and its session cache starts empty. For
    /// `server_restart`.
    pub(super) fn restart_backend(&self, backend: &Backend, scenario: &Scenario) -> Result<()> {
        self.stop_daemon(backend.name)?;
        let pid = self.spawn_daemon(
            Ns::Backend,
            backend.name,
            &self.backend_command(backend, scenario),
            Output::Append,
        )?;
        self.wait_listening(Ns::Backend, backend.port, backend.name, pid)
    }

    /// The command line of one backend in `scenario`.
    fn backend_command(&self, backend: &Backend, scenario: &Scenario) -> Vec<OsString> {
        let dir = self.state_dir();
        let path = |name: &str| dir.join(name).into_os_string();
        let keylog = self.oracle_key_log(backend.name);
        let (s_server_max, python_max) = if scenario.backend_tls13 {
            ("TLSv1.3", "1.3")
        } else {
            ("TLSv1.2", "1.2")
        };
        let mut command: Vec<OsString> = match backend.name {
            "s_server" => {
                let mut args: Vec<OsString> = vec![
                    "openssl".into(),
                    "s_server".into(),
                    "-accept".into(),
                    backend_server(backend).into(),
                    "-cert".into(),
                    path("backend.crt"),
                    "-key".into(),
                    path("backend.key"),
                    "-www".into(),
                    "-no_ticket".into(),
                    "-max_protocol".into(),
                    s_server_max.into(),
                ];
                if !scenario.backend_cache {
                    // SSL_CTX_set_session_cache_mode(SSL_SESS_CACHE_OFF).
                    args.push("-no_cache".into());
                }
                if let Some(keylog) = keylog {
                    args.push("-keylogfile".into());
                    args.push(keylog.into_os_string());
                }
                args
            }
            "nginx" => vec![
                "nginx".into(),
                "-p".into(),
                dir.clone().into_os_string(),
                "-e".into(),
                path("nginx-error.log"),
                "-c".into(),
                path("nginx.conf"),
            ],
            _ => {
                let mut args: Vec<OsString> = vec![
                    "python3".into(),
                    path("backend.py"),
                    "--host".into(),
                    BACKEND_ADDR.into(),
                    "--port".into(),
                    backend.port.to_string().into(),
                    "--cert".into(),
                    path("backend.crt"),
                    "--key".into(),
                    path("backend.key"),
                    "--max-tls".into(),
                    python_max.into(),
                ];
                if let Some(timeout) = scenario.session_timeout {
                    args.push("--session-timeout".into());
                    args.push(timeout.as_secs().to_string().into());
                }
                if let Some(keylog) = keylog {
                    args.push("--keylog".into());
                    args.push(keylog.into_os_string());
                }
                args
            }
        };
        command.shrink_to_fit();
        command
    }
}
