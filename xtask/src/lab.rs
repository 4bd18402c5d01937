//! The proxy lab: Debian's `HAProxy` terminating client TLS and re-encrypting
//! to three real TLS backends, each part in its own network namespace, with
//! scenarios that reproduce — or avoid — the failure tlsmon exists for:
//! backend connections closed with a TCP RST and no `close_notify`, after
//! which an OpenSSL server forgets the session and rejects every resumption
//! the proxy offers. See `docs/proxy-lab.md`.
//!
//! ```text
//!  tlsmon-lab-client   tlsmon-lab-proxy                     tlsmon-lab-backend
//!  lab-cli ──────────── lab-front  HAProxy  lab-back ──────── lab-srv
//!  10.210.1.10          10.210.1.1:443      10.210.2.1        10.210.2.10:8443 s_server
//!                                                             10.210.2.10:8444 nginx
//!                                                             10.210.2.10:8445 python
//! ```
//!
//! This file is compiled into two crates: as `xtask`'s `lab` module and, via
//! `#[path]`, into `monitor/tests/proxy_lab.rs`. It may therefore use only
//! std, anyhow, libc and the `xtask` library (which the monitor's tests
//! depend on for [`xtask::programs`]). The configs and scripts in `lab/` are embedded with `include_str!`
//! and written to the lab's state directory.
//!
//! Every process is started with its PID (and start time, against PID
//! reuse) recorded under `<state>/pids/` and stopped by that PID; `down`
//! also stops whatever else still runs inside the lab's namespaces, then
//! deletes them. `up` always runs `down` first.

// Each of the two crates uses a different part of this module.
#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    ffi::OsStr,
    fmt::Write as _,
    fs,
    os::unix::{fs::PermissionsExt as _, process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use xtask::programs;

/// Name prefix of the standard lab's namespaces and state directory.
pub const PREFIX: &str = "tlsmon-lab";
/// The standard lab's namespaces.
pub const CLIENT_NS: &str = "tlsmon-lab-client";
pub const PROXY_NS: &str = "tlsmon-lab-proxy";
pub const BACKEND_NS: &str = "tlsmon-lab-backend";

/// The proxy's client-facing interface (`HAProxy`'s frontend listens here).
pub const FRONT_IF: &str = "lab-front";
/// The proxy's backend-facing interface (`HAProxy`'s backend connections).
pub const BACK_IF: &str = "lab-back";
/// The other ends of the two veth pairs.
pub const CLIENT_IF: &str = "lab-cli";
pub const SERVER_IF: &str = "lab-srv";

pub const CLIENT_ADDR: &str = "10.210.1.10";
pub const FRONT_ADDR: &str = "10.210.1.1";
pub const BACK_ADDR: &str = "10.210.2.1";
pub const BACKEND_ADDR: &str = "10.210.2.10";
const PREFIX_LEN: u8 = 24;
pub const FRONT_PORT: u16 = 443;

/// One of the three TLS servers in the backend namespace. `name` is the
/// `HAProxy` server name (the `srv=` field of its log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backend {
    pub name: &'static str,
    pub port: u16,
    pub what: &'static str,
}

pub const BACKENDS: [Backend; 3] = [
    Backend {
        name: "s_server",
        port: 8443,
        what: "openssl s_server -www, internal session cache",
    },
    Backend {
        name: "nginx",
        port: 8444,
        what: "nginx, ssl_session_cache shared:SSL:10m, tickets off",
    },
    Backend {
        name: "python",
        port: 8445,
        what: "Python ssl event-loop server (lab/backend.py), tickets off",
    },
];

/// The interfaces tlsmon should watch in the proxy namespace:
/// client-facing, then backend-facing.
#[must_use]
pub fn proxy_ifaces() -> [&'static str; 2] {
    [FRONT_IF, BACK_IF]
}

/// `HAProxy`'s frontend as tlsmon names it (`ip:port`).
#[must_use]
pub fn frontend_server() -> String {
    format!("{FRONT_ADDR}:{FRONT_PORT}")
}

/// A backend as tlsmon names it (`ip:port`).
#[must_use]
pub fn backend_server(backend: &Backend) -> String {
    format!("{BACKEND_ADDR}:{}", backend.port)
}

const HAPROXY_CFG: &str = include_str!("../../lab/haproxy.cfg.in");
const NGINX_CONF: &str = include_str!("../../lab/nginx.conf.in");
const BACKEND_PY: &str = include_str!("../../lab/backend.py");
const CLIENT_PY: &str = include_str!("../../lab/client.py");

/// Waits for `child` to exit; at `deadline` kills it instead and returns
/// `None`.
pub fn wait_until(child: &mut Child, deadline: Instant) -> Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        thread::sleep(POLL);
    }
}

/// Programs the lab runs; `cargo xtask setup` installs their packages.
const PROGRAMS: [&str; 6] = ["haproxy", "nginx", "openssl", "python3", "ip", "ss"];

/// How long a started server gets to listen.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(15);
/// How long `down` waits after SIGTERM before SIGKILL, and after SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(5);
const KILL_GRACE: Duration = Duration::from_secs(3);
/// How long a load may overrun its own `--max-seconds` before it is killed.
const LOAD_OVERRUN: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

// ---------------------------------------------------------------- scenarios

/// How `HAProxy` proxies: `mode tcp` or `mode http`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Tcp,
    Http,
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
        let mode = match self.mode {
            Mode::Tcp => "mode tcp",
            Mode::Http => "mode http",
        };
        let mut text = format!("{}: HAProxy {mode}", self.name);
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

    fn haproxy_max_ver(&self) -> &'static str {
        if self.backend_tls13 {
            "TLSv1.3"
        } else {
            "TLSv1.2"
        }
    }

    fn backend_options(&self) -> String {
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

    fn capture_rule(&self) -> &'static str {
        match self.mode {
            Mode::Tcp => "tcp-response content",
            Mode::Http => "http-response",
        }
    }
}

// ---------------------------------------------------------- lab instances

/// Which namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ns {
    Client,
    Proxy,
    Backend,
}

impl Ns {
    const ALL: [Self; 3] = [Self::Client, Self::Proxy, Self::Backend];

    fn suffix(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Proxy => "proxy",
            Self::Backend => "backend",
        }
    }
}

/// One lab instance. `Lab::standard()` is the one `cargo xtask lab` and the
/// demo use; tests use their own prefix so they never touch it. Addresses and
/// interface names are the same in every instance: they live inside the
/// instance's namespaces.
#[derive(Clone, Debug)]
pub struct Lab {
    prefix: String,
}

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

/// Handshakes of one TLS server by outcome, as `HAProxy` logged them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub full: u64,
    pub resumed: u64,
    /// Lines without a value (`-`): no backend response, or no handshake.
    pub unknown: u64,
}

impl Tally {
    fn add(&mut self, value: &str) {
        match value {
            "0" => self.full += 1,
            "1" => self.resumed += 1,
            _ => self.unknown += 1,
        }
    }
}

/// `HAProxy`'s own view, from its log: the oracle for tlsmon's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HaproxyCounts {
    /// Log lines (one per client connection).
    pub lines: u64,
    /// `ssl_fc_is_resumed` per line.
    pub frontend: Tally,
    /// `ssl_bc_is_resumed`, captured while the server connection was alive,
    /// per `HAProxy` server name.
    pub backends: BTreeMap<String, Tally>,
    /// Lines with no server (`srv=<NOSRV>`), e.g. refused connections.
    pub no_server: u64,
}

impl HaproxyCounts {
    /// Parses the lab's log format (lines starting with `tlsmon-lab `);
    /// other lines (`HAProxy`'s own notices) are skipped.
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
}

impl Lab {
    /// A lab whose namespaces are `<prefix>-client|proxy|backend` and whose
    /// state lives in `/run/<prefix>`. The prefix must start with
    /// `tlsmon-lab`.
    #[must_use]
    pub fn new(prefix: &str) -> Self {
        assert!(
            prefix.starts_with(PREFIX)
                && prefix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "lab prefix {prefix:?} must start with {PREFIX:?} and use only letters, digits and '-'"
        );
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The lab of `cargo xtask lab` and `cargo xtask demo`.
    #[must_use]
    pub fn standard() -> Self {
        Self::new(PREFIX)
    }

    #[must_use]
    pub fn ns(&self, ns: Ns) -> String {
        format!("{}-{}", self.prefix, ns.suffix())
    }

    #[must_use]
    pub fn state_dir(&self) -> PathBuf {
        Path::new("/run").join(&self.prefix)
    }

    fn pid_dir(&self) -> PathBuf {
        self.state_dir().join("pids")
    }

    /// `HAProxy`'s log: one `tlsmon-lab ...` line per connection.
    #[must_use]
    pub fn haproxy_log(&self) -> PathBuf {
        self.state_dir().join("haproxy.log")
    }

    /// The Python backend's log: one `conn ...` line per connection.
    #[must_use]
    pub fn python_log(&self) -> PathBuf {
        self.state_dir().join("python.log")
    }

    /// `ip netns exec <ns> <program>`; `ip` execs the program, so the
    /// child's PID is the program's.
    pub fn exec(&self, ns: Ns, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = programs::command("ip");
        cmd.args(["netns", "exec"])
            .arg(self.ns(ns))
            .arg(programs::resolve(program.as_ref()));
        cmd
    }

    /// tlsmon in the proxy namespace on both proxy interfaces; add
    /// `--headless`, `--interval` etc. and spawn it.
    pub fn tlsmon_command(&self, tlsmon: &Path) -> Command {
        let mut cmd = self.exec(Ns::Proxy, tlsmon);
        for iface in proxy_ifaces() {
            cmd.args(["--iface", iface]);
        }
        cmd
    }

    /// The scenario the lab was brought up with, if it is up.
    pub fn scenario(&self) -> Result<Option<Scenario>> {
        let path = self.state_dir().join("scenario");
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Some(Scenario::parse(text.trim())?)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// `HAProxy`'s counts so far.
    pub fn haproxy_counts(&self) -> Result<HaproxyCounts> {
        let path = self.haproxy_log();
        let log =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(HaproxyCounts::parse(&log))
    }

    /// Brings the lab up in `scenario`, after tearing down whatever an
    /// earlier run left behind.
    pub fn up(&self, scenario: &Scenario) -> Result<()> {
        require_root()?;
        require_programs()?;
        self.down()
            .context("cleaning up an earlier lab before `up`")?;
        let dir = self.state_dir();
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        for sub in ["pids", "nginx-tmp"] {
            let path = dir.join(sub);
            fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        }
        // Private keys live here.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("chmod 700 {}", dir.display()))?;

        let started = self.start(scenario);
        if let Err(err) = started {
            let _ = self.down();
            return Err(err.context(format!(
                "bringing up the proxy lab ({}); logs are in {}",
                scenario.name,
                dir.display()
            )));
        }
        Ok(())
    }

    fn start(&self, scenario: &Scenario) -> Result<()> {
        self.create_network()?;
        self.make_certificates()?;
        self.write_files(scenario)?;
        let dir = self.state_dir();
        let path = |name: &str| dir.join(name).into_os_string();
        let (s_server_max, python_max) = if scenario.backend_tls13 {
            ("TLSv1.3", "1.3")
        } else {
            ("TLSv1.2", "1.2")
        };

        let [s_server, nginx, python] = BACKENDS;
        let accept = |backend: &Backend| format!("{BACKEND_ADDR}:{}", backend.port);
        let s_server_pid = self.spawn_daemon(
            Ns::Backend,
            s_server.name,
            &[
                "openssl".into(),
                "s_server".into(),
                "-accept".into(),
                accept(&s_server).into(),
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
        self.wait_listening(Ns::Proxy, FRONT_PORT, "haproxy", haproxy_pid)?;

        let scenario_file = dir.join("scenario");
        fs::write(&scenario_file, format!("{}\n", scenario.name))
            .with_context(|| format!("writing {}", scenario_file.display()))?;
        Ok(())
    }

    fn create_network(&self) -> Result<()> {
        for ns in Ns::ALL {
            capture(
                programs::command("ip")
                    .args(["netns", "add"])
                    .arg(self.ns(ns)),
            )?;
            capture(
                programs::command("ip")
                    .arg("-n")
                    .arg(self.ns(ns))
                    .args(["link", "set", "lo", "up"]),
            )?;
        }
        let links = [
            (
                Ns::Client,
                CLIENT_IF,
                CLIENT_ADDR,
                Ns::Proxy,
                FRONT_IF,
                FRONT_ADDR,
            ),
            (
                Ns::Proxy,
                BACK_IF,
                BACK_ADDR,
                Ns::Backend,
                SERVER_IF,
                BACKEND_ADDR,
            ),
        ];
        for (ns_a, if_a, addr_a, ns_b, if_b, addr_b) in links {
            // Created directly inside the namespaces: the same names in
            // another lab instance do not collide.
            capture(
                programs::command("ip")
                    .args(["link", "add", if_a, "netns"])
                    .arg(self.ns(ns_a))
                    .args(["type", "veth", "peer", "name", if_b, "netns"])
                    .arg(self.ns(ns_b)),
            )?;
            for (ns, iface, addr) in [(ns_a, if_a, addr_a), (ns_b, if_b, addr_b)] {
                let cidr = format!("{addr}/{PREFIX_LEN}");
                capture(
                    programs::command("ip")
                        .arg("-n")
                        .arg(self.ns(ns))
                        .args(["addr", "add", &cidr, "dev", iface]),
                )?;
                capture(
                    programs::command("ip")
                        .arg("-n")
                        .arg(self.ns(ns))
                        .args(["link", "set", iface, "up"]),
                )?;
            }
        }
        Ok(())
    }

    /// Two self-signed P-256 certificates: `HAProxy`'s frontend (cert and key
    /// in one PEM, as `crt` wants) and the three backends'.
    fn make_certificates(&self) -> Result<()> {
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

    fn write_files(&self, scenario: &Scenario) -> Result<()> {
        let dir = self.state_dir();
        let [s_server, nginx, python] = BACKENDS;
        let vars = [
            ("SCENARIO", scenario.describe()),
            ("STATE_DIR", dir.display().to_string()),
            (
                "MODE",
                match scenario.mode {
                    Mode::Tcp => "tcp".to_owned(),
                    Mode::Http => "http".to_owned(),
                },
            ),
            ("FRONT_ADDR", FRONT_ADDR.to_owned()),
            ("FRONT_PORT", FRONT_PORT.to_string()),
            ("BACKEND_ADDR", BACKEND_ADDR.to_owned()),
            ("PORT_S_SERVER", s_server.port.to_string()),
            ("PORT_NGINX", nginx.port.to_string()),
            ("PORT_PYTHON", python.port.to_string()),
            ("BACKEND_MAX_TLS", scenario.haproxy_max_ver().to_owned()),
            ("BACKEND_OPTIONS", scenario.backend_options()),
            ("CAPTURE_RULE", scenario.capture_rule().to_owned()),
            (
                "NGINX_PROTOCOLS",
                if scenario.backend_tls13 {
                    "TLSv1.2 TLSv1.3".to_owned()
                } else {
                    "TLSv1.2".to_owned()
                },
            ),
        ];
        let files = [
            ("haproxy.cfg", render(HAPROXY_CFG, &vars)?),
            ("nginx.conf", render(NGINX_CONF, &vars)?),
            ("backend.py", BACKEND_PY.to_owned()),
            ("client.py", CLIENT_PY.to_owned()),
        ];
        for (name, text) in files {
            let path = dir.join(name);
            fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }

    /// Starts a long-running program in a namespace, detached from the
    /// caller's terminal (own process group), with stdout in
    /// `<state>/<name>.log` and stderr in `<state>/<name>.err`, and records
    /// its PID.
    fn spawn_daemon(&self, ns: Ns, name: &str, command: &[std::ffi::OsString]) -> Result<u32> {
        let dir = self.state_dir();
        let (program, args) = command.split_first().context("empty command")?;
        let stdout = create(&dir.join(format!("{name}.log")))?;
        let stderr = create(&dir.join(format!("{name}.err")))?;
        let mut cmd = self.exec(ns, program);
        cmd.args(args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0);
        let text = describe(&cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("could not start `{text}`"))?;
        let pid = child.id();
        // Not waited for here: `down` stops it by this PID and reaps it if it
        // is a child of the process calling `down`.
        drop(child);
        let start = start_time(pid)
            .with_context(|| format!("{name} (pid {pid}) vanished right after start"))?;
        let pid_file = self.pid_dir().join(format!("{name}.pid"));
        fs::write(&pid_file, format!("{pid} {start}\n"))
            .with_context(|| format!("writing {}", pid_file.display()))?;
        Ok(pid)
    }

    /// Waits until something listens on TCP `port` in `ns`; fails early,
    /// with the program's stderr, if it exits.
    fn wait_listening(&self, ns: Ns, port: u16, name: &str, pid: u32) -> Result<()> {
        let deadline = Instant::now() + LISTEN_TIMEOUT;
        let filter = format!("sport = :{port}");
        loop {
            let out = capture(self.exec(ns, "ss").args(["-Hltn", &filter]))?;
            if !out.trim().is_empty() {
                return Ok(());
            }
            let err_file = self.state_dir().join(format!("{name}.err"));
            if !alive(pid, None) {
                bail!(
                    "{name} exited before listening on port {port}; its stderr ({}):\n{}",
                    err_file.display(),
                    tail(&err_file, 20)
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "{name} does not listen on port {port} after {LISTEN_TIMEOUT:?}; its stderr:\n{}",
                    tail(&err_file, 20)
                );
            }
            thread::sleep(POLL);
        }
    }

    /// Stops every process of the lab and deletes its namespaces. Logs and
    /// configs stay in the state directory until the next `up`; the private
    /// keys are removed.
    pub fn down(&self) -> Result<()> {
        require_root()?;
        let mut problems = Vec::new();

        // First the processes the lab started, by their recorded PIDs.
        let mut procs = Vec::new();
        if let Ok(entries) = fs::read_dir(self.pid_dir()) {
            for entry in entries.flatten() {
                let path = entry.path();
                let name = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                match fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| parse_pid_file(&t))
                {
                    Some((pid, start)) => procs.push((name, pid, start)),
                    None => problems.push(format!("unreadable PID file {}", path.display())),
                }
            }
        }
        stop(&procs, &mut problems);

        // Then whatever else still runs inside the lab's namespaces (a load,
        // a tlsmon, a process whose PID file was lost): these processes can
        // only have been started in the lab.
        let mut strays = Vec::new();
        for ns in Ns::ALL {
            let name = self.ns(ns);
            if !netns_exists(&name) {
                continue;
            }
            let Ok(out) = capture(programs::command("ip").args(["netns", "pids"]).arg(&name))
            else {
                continue;
            };
            for pid in out.split_whitespace().filter_map(|p| p.parse::<u32>().ok()) {
                if let Some(start) = start_time(pid) {
                    strays.push((format!("pid {pid} in {name}"), pid, start));
                }
            }
        }
        if !strays.is_empty() {
            let names: Vec<&str> = strays.iter().map(|(name, ..)| name.as_str()).collect();
            eprintln!(
                "lab: stopping processes left in the namespaces: {}",
                names.join(", ")
            );
            stop(&strays, &mut problems);
        }

        for ns in Ns::ALL {
            let name = self.ns(ns);
            if netns_exists(&name)
                && let Err(err) = capture(programs::command("ip").args(["netns", "del"]).arg(&name))
            {
                problems.push(format!("{err:#}"));
            }
        }
        let pid_dir = self.pid_dir();
        if pid_dir.exists()
            && let Err(err) = fs::remove_dir_all(&pid_dir)
        {
            problems.push(format!("removing {}: {err}", pid_dir.display()));
        }
        // Logs stay for inspection; the private keys and the scenario marker go.
        for name in ["scenario", "frontend.key", "frontend.pem", "backend.key"] {
            let _ = fs::remove_file(self.state_dir().join(name));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            bail!("tearing down the proxy lab: {}", problems.join("; "))
        }
    }

    /// Fails unless the lab is up.
    fn require_up(&self) -> Result<Scenario> {
        let scenario = self.scenario()?;
        let proxy = self.ns(Ns::Proxy);
        match scenario {
            Some(scenario) if netns_exists(&proxy) => Ok(scenario),
            _ => bail!(
                "the proxy lab ({}) is not up; run `cargo xtask lab up broken|working|http` first",
                self.prefix
            ),
        }
    }

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
            .stdout(create(&out_path)?)
            .stderr(create(&err_path)?);
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
            .stdout(create(&dir.join("load-background.log"))?)
            .stderr(create(&dir.join("load-background.err"))?);
        let text = describe(&cmd);
        cmd.spawn()
            .with_context(|| format!("could not start `{text}`"))
    }
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

// ------------------------------------------------------------ xtask entry points

/// `cargo xtask lab up <scenario>`.
pub fn up(scenario: &str) -> Result<()> {
    let scenario = Scenario::parse(scenario)?;
    let lab = Lab::standard();
    lab.up(&scenario)?;
    println!("lab: up — {}", scenario.describe());
    println!(
        "lab: client {CLIENT_NS} ({CLIENT_ADDR}) → HAProxy {PROXY_NS} ({} on {FRONT_IF}; backends via {BACK_IF}) → {BACKEND_NS}:",
        frontend_server()
    );
    for backend in BACKENDS {
        println!(
            "lab:   {:<8} {}  {}",
            backend.name,
            backend_server(&backend),
            backend.what
        );
    }
    println!(
        "lab: watch it with: ip netns exec {PROXY_NS} tlsmon --iface {FRONT_IF} --iface {BACK_IF}"
    );
    println!(
        "lab: HAProxy's log: {}; state: {}",
        lab.haproxy_log().display(),
        lab.state_dir().display()
    );
    Ok(())
}

/// `cargo xtask lab down`.
pub fn down() -> Result<()> {
    let lab = Lab::standard();
    lab.down()?;
    println!(
        "lab: down (namespaces deleted; logs kept in {})",
        lab.state_dir().display()
    );
    Ok(())
}

/// `cargo xtask lab load`: `requests` requests, each on a new TLS connection
/// to the frontend, `concurrency` at a time; then `HAProxy`'s counts so far.
pub fn load(requests: u32, concurrency: u32) -> Result<()> {
    let lab = Lab::standard();
    let options = LoadOptions {
        requests,
        concurrency,
        ..LoadOptions::default()
    };
    let summary = lab.load(&options)?;
    println!(
        "lab: load: {} requests, {} ok, {} errors in {:.1} s; frontend sessions offered {}, resumed {}",
        summary.requests,
        summary.ok,
        summary.errors,
        summary.seconds,
        summary.offered,
        summary.resumed
    );
    // HAProxy writes a line when a connection ends; give the last ones a moment.
    thread::sleep(Duration::from_millis(500));
    let counts = lab.haproxy_counts()?;
    println!("lab: HAProxy's log so far ({} connections):", counts.lines);
    println!(
        "lab:   frontend {:<18} full {:>6}  resumed {:>6}",
        frontend_server(),
        counts.frontend.full,
        counts.frontend.resumed
    );
    for backend in BACKENDS {
        let tally = counts.backend(backend.name);
        println!(
            "lab:   {:<8} {:<18} full {:>6}  resumed {:>6}",
            backend.name,
            backend_server(&backend),
            tally.full,
            tally.resumed
        );
    }
    if summary.errors > 0 {
        bail!(
            "{} of {} requests failed; first error: {}",
            summary.errors,
            summary.requests,
            summary.first_error.as_deref().unwrap_or("(not reported)")
        );
    }
    Ok(())
}

/// A load for a live view (the demo): two clients, a request every 100 ms
/// each, for at most `max_time`.
#[must_use]
pub fn demo_load_options(max_time: Duration) -> LoadOptions {
    LoadOptions {
        requests: 100_000,
        concurrency: 2,
        new_session_every: 3,
        pause: Duration::from_millis(100),
        max_time,
    }
}

// ------------------------------------------------------------------ helpers

/// Fails unless the process runs as root.
pub fn require_root() -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the proxy lab needs root: it creates network namespaces and veth pairs");
    }
    Ok(())
}

/// Fails, naming the packages, unless every program the lab runs is installed.
pub fn require_programs() -> Result<()> {
    programs::require_all("the proxy lab", &PROGRAMS)
}

/// A program from the system's directories, never from `PATH`
/// (`xtask::programs`).
#[must_use]
pub fn find_program(program: &str) -> Option<PathBuf> {
    programs::find(program)
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

fn create(path: &Path) -> Result<fs::File> {
    fs::File::create(path).with_context(|| format!("creating {}", path.display()))
}

/// The last `lines` lines of a file, for error messages.
fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// Runs a command quietly; returns its stdout or fails with its stderr.
fn capture(cmd: &mut Command) -> Result<String> {
    let text = describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("could not start `{text}`"))?;
    if !out.status.success() {
        bail!(
            "`{text}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

fn parse_pid_file(text: &str) -> Option<(u32, u64)> {
    let mut words = text.split_whitespace();
    let pid = words.next()?.parse().ok()?;
    let start = words.next()?.parse().ok()?;
    Some((pid, start))
}

/// Field 22 of `/proc/<pid>/stat` (start time in clock ticks since boot) and
/// the state letter; `None` if there is no such process.
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses.
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    let letter = fields.next()?.chars().next()?;
    // `after` starts at field 3 (the state); field 22 is 19 further on.
    let started = fields.nth(18)?.parse().ok()?;
    Some((letter, started))
}

fn start_time(pid: u32) -> Option<u64> {
    proc_stat(pid).map(|(_, start)| start)
}

/// Whether `pid` runs (not a zombie) and, if `start` is given, is still the
/// process that started then. Reaps it if it is a zombie child of ours.
fn alive(pid: u32, start: Option<u64>) -> bool {
    let Ok(raw) = libc::pid_t::try_from(pid) else {
        return false;
    };
    match proc_stat(pid) {
        None => false,
        Some((_, started)) if start.is_some_and(|s| s != started) => false,
        Some(('Z' | 'X', _)) => {
            // SAFETY: waitpid with WNOHANG only reaps `pid` if it is our
            // child; otherwise it fails with ECHILD, which is fine.
            unsafe { libc::waitpid(raw, std::ptr::null_mut(), libc::WNOHANG) };
            false
        }
        Some(_) => {
            // A child of ours that exited is a zombie until reaped.
            // SAFETY: as above.
            let reaped = unsafe { libc::waitpid(raw, std::ptr::null_mut(), libc::WNOHANG) };
            reaped != raw
        }
    }
}

fn signal(pid: u32, signal: libc::c_int) {
    if let Ok(raw) = libc::pid_t::try_from(pid) {
        // SAFETY: kill has no memory-safety preconditions; the PID was
        // checked against its start time just before.
        unsafe { libc::kill(raw, signal) };
    }
}

/// SIGTERM, then SIGKILL after `TERM_GRACE`, each process by its PID, only
/// while it is still the process recorded (same start time).
fn stop(procs: &[(String, u32, u64)], problems: &mut Vec<String>) {
    let running: Vec<&(String, u32, u64)> = procs
        .iter()
        .filter(|(_, pid, start)| alive(*pid, Some(*start)))
        .collect();
    for (_, pid, _) in &running {
        signal(*pid, libc::SIGTERM);
    }
    let mut left = wait_gone(&running, TERM_GRACE);
    if !left.is_empty() {
        for (_, pid, start) in &left {
            if alive(*pid, Some(*start)) {
                signal(*pid, libc::SIGKILL);
            }
        }
        left = wait_gone(&left, KILL_GRACE);
    }
    for (name, pid, _) in left {
        problems.push(format!("{name} (pid {pid}) did not stop"));
    }
}

fn wait_gone<'a>(
    procs: &[&'a (String, u32, u64)],
    timeout: Duration,
) -> Vec<&'a (String, u32, u64)> {
    let deadline = Instant::now() + timeout;
    loop {
        let left: Vec<&(String, u32, u64)> = procs
            .iter()
            .copied()
            .filter(|(_, pid, start)| alive(*pid, Some(*start)))
            .collect();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        thread::sleep(POLL);
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

    #[test]
    fn templates_render_completely() {
        for name in Scenario::NAMES {
            let scenario = Scenario::parse(name).unwrap();
            let lab = Lab::standard();
            let vars = [
                ("SCENARIO", scenario.describe()),
                ("STATE_DIR", lab.state_dir().display().to_string()),
                ("MODE", "tcp".to_owned()),
                ("FRONT_ADDR", FRONT_ADDR.to_owned()),
                ("FRONT_PORT", FRONT_PORT.to_string()),
                ("BACKEND_ADDR", BACKEND_ADDR.to_owned()),
                ("PORT_S_SERVER", "1".to_owned()),
                ("PORT_NGINX", "2".to_owned()),
                ("PORT_PYTHON", "3".to_owned()),
                ("BACKEND_MAX_TLS", scenario.haproxy_max_ver().to_owned()),
                ("BACKEND_OPTIONS", scenario.backend_options()),
                ("CAPTURE_RULE", scenario.capture_rule().to_owned()),
                ("NGINX_PROTOCOLS", "TLSv1.2".to_owned()),
            ];
            render(HAPROXY_CFG, &vars).unwrap();
            render(NGINX_CONF, &vars).unwrap();
        }
        assert!(render("a @MISSING@ b", &[]).is_err());
    }

    #[test]
    fn haproxy_log_counts() {
        let log = "\
tlsmon-lab fe=tls_in be=tls_backends srv=python fc_resumed=0 bc_resumed=0 term=--
tlsmon-lab fe=tls_in be=tls_backends srv=python fc_resumed=1 bc_resumed=1 term=--
tlsmon-lab fe=tls_in be=tls_backends srv=nginx fc_resumed=1 bc_resumed=- term=SD
[NOTICE] something else
tlsmon-lab fe=tls_in be=tls_backends srv=<NOSRV> fc_resumed=0 bc_resumed=- term=SC
";
        let counts = HaproxyCounts::parse(log);
        assert_eq!(counts.lines, 4);
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
    }

    #[test]
    fn load_summary_line() {
        let summary =
            LoadSummary::parse("load requests=3 ok=2 errors=1 resumed=1 offered=2 seconds=0.5")
                .unwrap();
        assert_eq!((summary.requests, summary.ok, summary.errors), (3, 2, 1));
        assert!(LoadSummary::parse("something else").is_none());
    }
}
