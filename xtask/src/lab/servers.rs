//! The lab's servers and how each is started: `openssl s_server`, nginx
//! and the Python backend in the backend namespace, then `HAProxy` in the
//! proxy namespace, after `haproxy -c` accepted its configuration.

use anyhow::{Context as _, Result};

use super::{
    scenario::Scenario,
    topology::{BACKEND_ADDR, BACKENDS, FRONT_PORT, Lab, Ns, backend_server},
};
use crate::util::capture;

impl Lab {
    /// The three backends, then `HAProxy`, each waited for until it
    /// listens; the network, certificates and configurations must be there.
    pub(super) fn start_servers(&self, scenario: &Scenario) -> Result<()> {
        let dir = self.state_dir();
        let path = |name: &str| dir.join(name).into_os_string();
        let (s_server_max, python_max) = if scenario.backend_tls13 {
            ("TLSv1.3", "1.3")
        } else {
            ("TLSv1.2", "1.2")
        };

        let [s_server, nginx, python] = BACKENDS;
        let s_server_pid = self.spawn_daemon(
            Ns::Backend,
            s_server.name,
            &[
                "openssl".into(),
                "s_server".into(),
                "-accept".into(),
                backend_server(&s_server).into(),
                "-cert".into(),
                path("backend.crt"),
                "-key".into(),
                path("backend.key"),
                "-www".into(),
                "-no_ticket".into(),
                "-max_protocol".into(),
                s_server_max.into(),
            ],
        )?;
        let nginx_pid = self.spawn_daemon(
            Ns::Backend,
            nginx.name,
            &[
                "nginx".into(),
                "-p".into(),
                dir.clone().into_os_string(),
                "-e".into(),
                path("nginx-error.log"),
                "-c".into(),
                path("nginx.conf"),
            ],
        )?;
        let python_pid = self.spawn_daemon(
            Ns::Backend,
            python.name,
            &[
                "python3".into(),
                path("backend.py"),
                "--host".into(),
                BACKEND_ADDR.into(),
                "--port".into(),
                python.port.to_string().into(),
                "--cert".into(),
                path("backend.crt"),
                "--key".into(),
                path("backend.key"),
                "--max-tls".into(),
                python_max.into(),
            ],
        )?;
        for (backend, pid) in [
            (s_server, s_server_pid),
            (nginx, nginx_pid),
            (python, python_pid),
        ] {
            self.wait_listening(Ns::Backend, backend.port, backend.name, pid)?;
        }

        let config = path("haproxy.cfg");
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
        )?;
        self.wait_listening(Ns::Proxy, FRONT_PORT, "haproxy", haproxy_pid)
    }
}
