//! Where the lab's parts are: a lab instance's names (its three
//! namespaces and its state directory), the two veth pairs that join the
//! namespaces, the addresses, and the three TLS servers behind the proxy.
//! Interfaces and addresses are the same in every instance: they live
//! inside the instance's own namespaces, so two instances never see each
//! other's.

use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Result;

use crate::{programs, util::capture};

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

/// Which namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ns {
    Client,
    Proxy,
    Backend,
}

impl Ns {
    pub const ALL: [Self; 3] = [Self::Client, Self::Proxy, Self::Backend];

    /// The last part of the namespace's name, after the lab's prefix.
    #[must_use]
    pub fn suffix(self) -> &'static str {
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

    /// The prefix: the instance's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.prefix
    }

    #[must_use]
    pub fn ns(&self, ns: Ns) -> String {
        format!("{}-{}", self.prefix, ns.suffix())
    }

    #[must_use]
    pub fn state_dir(&self) -> PathBuf {
        Path::new("/run").join(&self.prefix)
    }

    /// Whether namespace `ns` of this instance exists (`ip netns add`
    /// made `/run/netns/<name>`).
    #[must_use]
    pub fn ns_exists(&self, ns: Ns) -> bool {
        Path::new("/run/netns").join(self.ns(ns)).exists()
    }

    pub(super) fn pid_dir(&self) -> PathBuf {
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
    #[must_use]
    pub fn exec(&self, ns: Ns, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = programs::command("ip");
        cmd.args(["netns", "exec"])
            .arg(self.ns(ns))
            .arg(programs::resolve(program.as_ref()));
        cmd
    }

    /// tlsmon in the proxy namespace on both proxy interfaces; add
    /// `--headless`, `--interval` etc. and spawn it.
    #[must_use]
    pub fn tlsmon_command(&self, tlsmon: &Path) -> Command {
        let mut cmd = self.exec(Ns::Proxy, tlsmon);
        for iface in proxy_ifaces() {
            cmd.args(["--iface", iface]);
        }
        cmd
    }

    /// The three namespaces with their loopback up, and the two veth pairs:
    /// client ↔ proxy (`lab-cli`/`lab-front`), proxy ↔ backend
    /// (`lab-back`/`lab-srv`).
    pub(super) fn create_network(&self) -> Result<()> {
        let ip = |ns: Ns| {
            let mut cmd = programs::command("ip");
            cmd.arg("-n").arg(self.ns(ns));
            cmd
        };
        for ns in Ns::ALL {
            capture(
                programs::command("ip")
                    .args(["netns", "add"])
                    .arg(self.ns(ns)),
            )?;
            capture(ip(ns).args(["link", "set", "lo", "up"]))?;
        }
        let links = [
            (
                (Ns::Client, CLIENT_IF, CLIENT_ADDR),
                (Ns::Proxy, FRONT_IF, FRONT_ADDR),
            ),
            (
                (Ns::Proxy, BACK_IF, BACK_ADDR),
                (Ns::Backend, SERVER_IF, BACKEND_ADDR),
            ),
        ];
        for ((ns_a, if_a, addr_a), (ns_b, if_b, addr_b)) in links {
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
                capture(ip(ns).args(["addr", "add", &cidr, "dev", iface]))?;
                capture(ip(ns).args(["link", "set", iface, "up"]))?;
            }
        }
        Ok(())
    }
}
