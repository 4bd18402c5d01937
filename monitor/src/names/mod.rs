//! Display names for servers: "which backend is 10.0.1.11:8443?".
//!
//! Three sources, which can be merged:
//!
//! - a names file, one `ADDR:PORT NAME` per line (`[v6addr]:PORT NAME` for
//!   IPv6, `*:PORT NAME` for "any local address on this port", which only
//!   names frontends), `#` starts a comment;
//! - an `HAProxy` configuration (`haproxy`);
//! - an nginx configuration (`nginx`).
//!
//! Configuration entries that cannot be matched to packets (UNIX sockets,
//! UDP listeners, names that do not resolve...) are skipped and listed in
//! [`Names::skipped`] so the caller can say so.

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    fs,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
};

use crate::stats::{Endpoint, Role};

mod haproxy;
mod nginx;

pub use nginx::{NginxConfig, Resolve};

/// Port ranges in `bind` lines are expanded up to this many ports.
pub const MAX_BIND_RANGE: u32 = 1024;

#[derive(Debug, thiserror::Error)]
pub enum NamesError {
    #[error("reading {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// Endpoint → display name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names {
    /// From a names file: apply to any role.
    any: HashMap<Endpoint, String>,
    /// `HAProxy` `server` lines.
    backends: HashMap<Endpoint, String>,
    /// `HAProxy` `bind` lines with an address.
    frontends: HashMap<Endpoint, String>,
    /// Wildcard binds (`*:443`, `:443`, `0.0.0.0:443`, `:::443`): any local
    /// address, so frontends are matched by port alone.
    frontend_ports: HashMap<u16, String>,
    skipped: Vec<String>,
}

impl Names {
    /// No names: servers are shown by address only.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a names file (see the module documentation for the format).
    pub fn from_file(path: &Path) -> Result<Self, NamesError> {
        let text = read(path)?;
        Self::parse_names(&text).map_err(|(line, message)| NamesError::Parse {
            path: path.to_owned(),
            line,
            message,
        })
    }

    /// Parses the text of a names file; errors carry the 1-based line number.
    pub fn parse_names(text: &str) -> Result<Self, (usize, String)> {
        let mut names = Self::default();
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = strip_comment(raw).trim();
            if line.is_empty() {
                continue;
            }
            let (addr, name) = line
                .split_once(char::is_whitespace)
                .map(|(a, n)| (a, n.trim()))
                .ok_or_else(|| {
                    (
                        line_no,
                        format!("expected `ADDR:PORT NAME`, found {line:?}"),
                    )
                })?;
            if name.is_empty() {
                return Err((line_no, format!("no name after {addr}")));
            }
            match parse_addr(addr) {
                Ok(Addr::Exact(ep)) => {
                    names.any.insert(ep, name.to_owned());
                }
                Ok(Addr::AnyAddress(port)) => {
                    names.frontend_ports.insert(port, name.to_owned());
                }
                Err(why) => return Err((line_no, format!("{addr}: {why}"))),
            }
        }
        Ok(names)
    }

    /// Adds `other`'s names; on a conflict `other` wins.
    pub fn merge(&mut self, other: Self) {
        self.any.extend(other.any);
        self.backends.extend(other.backends);
        self.frontends.extend(other.frontends);
        self.frontend_ports.extend(other.frontend_ports);
        self.skipped.extend(other.skipped);
    }

    /// Names one endpoint for any role.
    pub fn insert(&mut self, endpoint: Endpoint, name: impl Into<String>) {
        self.any.insert(endpoint, name.into());
    }

    /// The display name of a server, if one is known. Exact addresses win;
    /// frontends fall back to a wildcard bind on their port.
    #[must_use]
    pub fn lookup(&self, server: &Endpoint, role: Role) -> Option<&str> {
        if let Some(n) = self.any.get(server) {
            return Some(n);
        }
        let backend = || self.backends.get(server);
        let frontend = || {
            self.frontends
                .get(server)
                .or_else(|| self.frontend_ports.get(&server.port))
        };
        match role {
            Role::Backend => backend(),
            Role::Frontend => frontend(),
            Role::Unknown => backend().or_else(frontend),
        }
        .map(String::as_str)
    }

    /// Number of names known.
    #[must_use]
    pub fn len(&self) -> usize {
        self.any.len() + self.backends.len() + self.frontends.len() + self.frontend_ports.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Configuration lines that named something tlsmon cannot match, with
    /// the reason ("line 12: server web1 app.internal:443: ...").
    #[must_use]
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }
}

fn read(path: &Path) -> Result<String, NamesError> {
    fs::read_to_string(path).map_err(|source| NamesError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Cuts a line at the first `#` that starts a word or follows whitespace
/// (`HAProxy` and the names file agree on this much).
fn strip_comment(line: &str) -> &str {
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        if c == '#' && prev_space {
            return &line[..i];
        }
        prev_space = c.is_whitespace();
    }
    line
}

#[derive(Default)]
struct Builder {
    // BTreeMap of lists so that one address in several sections gets every
    // name, in the order the configuration gives them.
    backends: BTreeMap<Endpoint, Vec<String>>,
    frontends: BTreeMap<Endpoint, Vec<String>>,
    frontend_ports: BTreeMap<u16, Vec<String>>,
    skipped: Vec<String>,
}

impl Builder {
    fn skip(&mut self, line: usize, why: &str) {
        self.skipped.push(format!("line {line}: {why}"));
    }

    fn finish(self) -> Names {
        let join = |v: Vec<String>| v.join(", ");
        Names {
            any: HashMap::new(),
            backends: self
                .backends
                .into_iter()
                .map(|(k, v)| (k, join(v)))
                .collect(),
            frontends: self
                .frontends
                .into_iter()
                .map(|(k, v)| (k, join(v)))
                .collect(),
            frontend_ports: self
                .frontend_ports
                .into_iter()
                .map(|(k, v)| (k, join(v)))
                .collect(),
            skipped: self.skipped,
        }
    }
}

fn push(v: &mut Vec<String>, name: &str) {
    if !v.iter().any(|n| n == name) {
        v.push(name.to_owned());
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Addr {
    Exact(Endpoint),
    /// Any address on this port.
    AnyAddress(u16),
}

/// `1.2.3.4:443`, `[2001:db8::1]:443`, `*:443`, `:443`.
fn parse_addr(s: &str) -> Result<Addr, String> {
    let (host, port) = split_host_port(s)?;
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("bad port {port:?}"))?;
    host_addr(host, port)
}

fn split_host_port(s: &str) -> Result<(&str, &str), String> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| "missing `]` after the IPv6 address".to_owned())?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| "missing `:PORT` after the address".to_owned())?;
        Ok((host, port))
    } else {
        // The port follows the last colon, so `:::443` (any IPv6) and
        // HAProxy's unbracketed `2001:db8::1:443` work too.
        s.rsplit_once(':')
            .ok_or_else(|| "missing `:PORT`".to_owned())
    }
}

fn host_addr(host: &str, port: u16) -> Result<Addr, String> {
    if host.is_empty() || host == "*" {
        return Ok(Addr::AnyAddress(port));
    }
    let addr: IpAddr = host
        .parse()
        .map_err(|_| format!("{host:?} is not an IP address (host names are not resolved)"))?;
    if addr == IpAddr::V4(Ipv4Addr::UNSPECIFIED) || addr == IpAddr::V6(Ipv6Addr::UNSPECIFIED) {
        return Ok(Addr::AnyAddress(port));
    }
    // An IPv4-mapped IPv6 address is seen on the wire as IPv4.
    let addr = match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        IpAddr::V4(_) => addr,
    };
    Ok(Addr::Exact(Endpoint { addr, port }))
}

/// Lists the names as `ADDR:PORT NAME` lines (the names-file format), for
/// checking what a configuration produced.
#[must_use]
pub fn to_names_file(names: &Names) -> String {
    let mut lines: Vec<(String, &str)> = Vec::new();
    for map in [&names.any, &names.backends, &names.frontends] {
        lines.extend(map.iter().map(|(ep, n)| (ep.to_string(), n.as_str())));
    }
    lines.extend(
        names
            .frontend_ports
            .iter()
            .map(|(p, n)| (format!("*:{p}"), n.as_str())),
    );
    lines.sort();
    let mut out = String::new();
    for (addr, name) in lines {
        let _ = writeln!(out, "{addr} {name}");
    }
    out
}

#[cfg(test)]
pub(super) mod tests {
    use std::net::Ipv6Addr;

    use super::*;

    pub(super) fn ep(s: &str) -> Endpoint {
        match parse_addr(s).unwrap() {
            Addr::Exact(e) => e,
            Addr::AnyAddress(_) => panic!("{s} is a wildcard"),
        }
    }

    #[test]
    fn names_file_parses_v4_v6_comments_and_wildcards() {
        let text = "\
# backends of the shop
10.0.1.11:8443   app/web1
10.0.1.12:8443 app/web2   # trailing comment

[2001:db8::7]:443 api v6
*:443 public https
";
        let n = Names::parse_names(text).unwrap();
        assert_eq!(
            n.lookup(&ep("10.0.1.11:8443"), Role::Backend),
            Some("app/web1")
        );
        assert_eq!(
            n.lookup(&ep("10.0.1.12:8443"), Role::Backend),
            Some("app/web2")
        );
        let v6 = Endpoint {
            addr: IpAddr::V6("2001:db8::7".parse::<Ipv6Addr>().unwrap()),
            port: 443,
        };
        assert_eq!(n.lookup(&v6, Role::Frontend), Some("api v6"));
        // `*:443` names frontends by port, never backends.
        assert_eq!(
            n.lookup(&ep("10.9.9.9:443"), Role::Frontend),
            Some("public https")
        );
        assert_eq!(n.lookup(&ep("10.9.9.9:443"), Role::Backend), None);
        assert_eq!(n.lookup(&ep("10.0.1.11:8444"), Role::Backend), None);
        assert_eq!(n.len(), 4);
    }

    #[test]
    fn names_file_errors_name_the_line() {
        let err = Names::parse_names("10.0.0.1:443 ok\n\n10.0.0.2 nope\n").unwrap_err();
        assert_eq!(err.0, 3);
        assert!(err.1.contains("PORT"), "{}", err.1);
        let err = Names::parse_names("# c\nweb.example:443 web\n").unwrap_err();
        assert_eq!(err.0, 2);
        assert!(err.1.contains("not an IP address"), "{}", err.1);
        let err = Names::parse_names("10.0.0.1:443\n").unwrap_err();
        assert_eq!(err.0, 1);
        let err = Names::parse_names("[::1:443 x\n").unwrap_err();
        assert!(err.1.contains(']'), "{}", err.1);
        let err = Names::parse_names("10.0.0.1:99999 x\n").unwrap_err();
        assert!(err.1.contains("bad port"), "{}", err.1);
    }

    #[test]
    fn from_file_reports_path_and_line() {
        let dir = std::env::temp_dir().join(format!("tlsmon-names-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("names.txt");
        fs::write(&path, "10.0.0.1:443 a\nbogus\n").unwrap();
        let msg = Names::from_file(&path).unwrap_err().to_string();
        assert!(msg.starts_with(&format!("{}:2: ", path.display())), "{msg}");
        fs::write(&path, "10.0.0.1:443 a\n").unwrap();
        assert_eq!(Names::from_file(&path).unwrap().len(), 1);
        let missing = Names::from_file(&dir.join("missing"))
            .unwrap_err()
            .to_string();
        assert!(missing.starts_with("reading "), "{missing}");
        let _ = fs::remove_dir_all(&dir);
    }
}
