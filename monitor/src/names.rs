//! Display names for servers: "which backend is 10.0.1.11:8443?".
//!
//! Two sources, which can be merged:
//!
//! - a names file, one `ADDR:PORT NAME` per line (`[v6addr]:PORT NAME` for
//!   IPv6, `*:PORT NAME` for "any local address on this port", which only
//!   names frontends), `#` starts a comment;
//! - an `HAProxy` configuration: `server` lines of `backend` and `listen`
//!   sections name backends "BACKEND/SERVER", `bind` lines of `frontend` and
//!   `listen` sections name frontends "frontend NAME".
//!
//! `HAProxy` addresses that are host names, environment variables, UNIX
//! sockets or UDP (QUIC) listeners cannot be matched to packets; they are
//! skipped and listed in [`Names::skipped`] so the caller can say so.

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    fs,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
};

use crate::stats::{Endpoint, Role};

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

    /// Reads names from an `HAProxy` configuration file.
    pub fn from_haproxy_config(path: &Path) -> Result<Self, NamesError> {
        Ok(Self::parse_haproxy(&read(path)?))
    }

    /// Parses the text of an `HAProxy` configuration. Never fails: what it
    /// cannot use is listed in [`Self::skipped`].
    #[must_use]
    pub fn parse_haproxy(text: &str) -> Self {
        let mut b = Builder::default();
        let mut section = Section::Other;
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let words: Vec<&str> = strip_comment(raw).split_whitespace().collect();
            let Some(&keyword) = words.first() else {
                continue;
            };
            if let Some(s) = section_start(&words) {
                section = s;
                continue;
            }
            match (&section, keyword) {
                (Section::Backend(name) | Section::Listen(name), "server") => {
                    b.server(line_no, name, &words);
                }
                (Section::Frontend(name) | Section::Listen(name), "bind") => {
                    b.bind(line_no, name, &words);
                }
                _ => {}
            }
        }
        b.finish()
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

#[derive(Clone, Debug, PartialEq, Eq)]
enum Section {
    Frontend(String),
    Backend(String),
    Listen(String),
    /// global, defaults, peers, resolvers, ...: nothing to name.
    Other,
}

/// `HAProxy` section keywords: each starts a new section.
const SECTIONS: &[&str] = &[
    "global",
    "defaults",
    "frontend",
    "backend",
    "listen",
    "peers",
    "resolvers",
    "userlist",
    "cache",
    "program",
    "http-errors",
    "ring",
    "mailers",
    "fcgi-app",
    "crt-store",
    "log-forward",
    "traces",
];

fn section_start(words: &[&str]) -> Option<Section> {
    let (&kw, rest) = words.split_first()?;
    if !SECTIONS.contains(&kw) {
        return None;
    }
    let name = rest.first().map_or_else(String::new, |n| (*n).to_owned());
    Some(match kw {
        "frontend" => Section::Frontend(name),
        "backend" => Section::Backend(name),
        "listen" => Section::Listen(name),
        _ => Section::Other,
    })
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
    fn server(&mut self, line: usize, section: &str, words: &[&str]) {
        let (Some(srv), Some(addr)) = (words.get(1), words.get(2)) else {
            self.skip(line, "`server` needs a name and an address");
            return;
        };
        let name = format!("{section}/{srv}");
        match parse_haproxy_addr(addr) {
            Ok(addrs) => {
                for a in addrs {
                    if let Addr::Exact(ep) = a {
                        push(self.backends.entry(ep).or_default(), &name);
                    } else {
                        self.skip(line, &format!("server {srv} {addr}: no address to match"));
                    }
                }
            }
            Err(why) => self.skip(line, &format!("server {srv} {addr}: {why}")),
        }
    }

    fn bind(&mut self, line: usize, section: &str, words: &[&str]) {
        let Some(list) = words.get(1) else {
            self.skip(line, "`bind` without an address");
            return;
        };
        let name = format!("frontend {section}");
        // One bind line may list several addresses, comma separated.
        for addr in list.split(',').filter(|a| !a.is_empty()) {
            match parse_haproxy_addr(addr) {
                Ok(addrs) => {
                    for a in addrs {
                        let names = match a {
                            Addr::Exact(ep) => self.frontends.entry(ep).or_default(),
                            Addr::AnyAddress(port) => self.frontend_ports.entry(port).or_default(),
                        };
                        push(names, &name);
                    }
                }
                Err(why) => self.skip(line, &format!("bind {addr}: {why}")),
            }
        }
    }

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

/// `HAProxy` address syntax: optional `ipv4@`/`ipv6@`/`tcp@`... prefix,
/// `[v6]:port` or `addr:port`, a port range `a-b` in binds.
fn parse_haproxy_addr(s: &str) -> Result<Vec<Addr>, String> {
    let s = match s.split_once('@') {
        Some((prefix, rest)) => match prefix {
            "ipv4" | "ipv6" | "tcp" | "tcp4" | "tcp6" => rest,
            "quic4" | "quic6" | "udp" | "udp4" | "udp6" => return Err("not TCP".to_owned()),
            _ => return Err(format!("{prefix}@ addresses are not IP")),
        },
        None => s,
    };
    if s.starts_with('/') {
        return Err("a UNIX socket".to_owned());
    }
    if s.contains("${") {
        return Err("environment variables are not expanded".to_owned());
    }
    let (host, port) = split_host_port(s)
        .map_err(|_| "no port (the port of the incoming connection is used)".to_owned())?;
    // `:+1`-style offsets are relative to the client's port.
    if port.starts_with('+') || port.starts_with('-') {
        return Err("relative port".to_owned());
    }
    let (lo, hi) = match port.split_once('-') {
        Some((a, b)) => (a, b),
        None => (port, port),
    };
    let parse = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("bad port {port:?}"))
    };
    let (lo, hi) = (parse(lo)?, parse(hi)?);
    if hi < lo || u32::from(hi - lo) >= MAX_BIND_RANGE {
        return Err(format!(
            "port range {port} is empty or wider than {MAX_BIND_RANGE}"
        ));
    }
    (lo..=hi).map(|p| host_addr(host, p)).collect()
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
mod tests {
    use std::net::Ipv6Addr;

    use super::*;

    fn ep(s: &str) -> Endpoint {
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

    const HAPROXY: &str = "\
global
    log /dev/log local0
    maxconn 20000
    # a comment with server 10.9.9.9:1 in it

defaults
    mode http
    timeout connect 5s

frontend fe_https
    bind *:443 ssl crt /etc/haproxy/certs/ alpn h2,http/1.1
    bind 192.0.2.10:8443,192.0.2.11:8443 ssl crt /etc/haproxy/certs/
    bind quic4@:443 ssl crt /etc/haproxy/certs/
    default_backend app

frontend stats
    bind 127.0.0.1:8404
    stats enable

backend app
    balance roundrobin
    http-reuse safe
    default-server ssl verify none check
    server web1 10.0.1.11:8443 check
    server web2 10.0.1.12:8443 check weight 10
    server web3 [2001:db8::13]:8443 check
    server web4 app4.internal:8443 check
    server-template dyn 3 _app._tcp.service.consul resolvers dns

backend api
    server api1 ipv4@10.0.2.20:443 ssl verify required sni str(api.internal)
    server shared 10.0.1.11:8443 ssl

listen mysql_tls
    bind :3307
    server db1 10.0.5.5:3306 ssl verify none # primary

peers mypeers
    peer lb1 10.0.0.1:10000
    server lb2 10.0.0.2:10000
";

    #[test]
    fn haproxy_backends_frontends_and_listen() {
        let n = Names::parse_haproxy(HAPROXY);
        let be = |s| n.lookup(&ep(s), Role::Backend);
        let fe = |s| n.lookup(&ep(s), Role::Frontend);
        // One address in two backends carries both names.
        assert_eq!(be("10.0.1.11:8443"), Some("app/web1, api/shared"));
        assert_eq!(be("10.0.1.12:8443"), Some("app/web2"));
        assert_eq!(be("10.0.2.20:443"), Some("api/api1"));
        let v6 = Endpoint {
            addr: "2001:db8::13".parse().unwrap(),
            port: 8443,
        };
        assert_eq!(n.lookup(&v6, Role::Backend), Some("app/web3"));
        assert_eq!(be("10.0.5.5:3306"), Some("mysql_tls/db1"));
        // Peers are not backends; the comment in `global` is ignored.
        assert_eq!(be("10.0.0.2:10000"), None);
        assert_eq!(be("10.9.9.9:1"), None);
        // `*:443` matches any local address by port, frontends only.
        assert_eq!(fe("10.0.0.5:443"), Some("frontend fe_https"));
        assert_eq!(fe("203.0.113.9:443"), Some("frontend fe_https"));
        assert_eq!(be("10.0.0.5:443"), None);
        assert_eq!(fe("192.0.2.10:8443"), Some("frontend fe_https"));
        assert_eq!(fe("192.0.2.11:8443"), Some("frontend fe_https"));
        assert_eq!(fe("192.0.2.12:8443"), None);
        assert_eq!(fe("127.0.0.1:8404"), Some("frontend stats"));
        assert_eq!(fe("10.1.1.1:3307"), Some("frontend mysql_tls"));
        // Unknown role (offline capture): backends first, then frontends.
        assert_eq!(
            n.lookup(&ep("10.0.1.12:8443"), Role::Unknown),
            Some("app/web2")
        );
        assert_eq!(
            n.lookup(&ep("10.0.0.5:443"), Role::Unknown),
            Some("frontend fe_https")
        );

        let skipped = n.skipped().join("\n");
        assert!(
            skipped.contains("line 13: bind quic4@:443: not TCP"),
            "{skipped}"
        );
        assert!(
            skipped.contains("line 27: server web4 app4.internal:8443"),
            "{skipped}"
        );
        assert!(skipped.contains("not an IP address"), "{skipped}");
        assert_eq!(n.skipped().len(), 2, "{skipped}");
    }

    #[test]
    fn haproxy_address_forms() {
        let one = |s: &str| parse_haproxy_addr(s).map(|v| v[0]);
        assert_eq!(
            one("ipv6@2001:db8::1:443"),
            Ok(Addr::Exact(Endpoint {
                addr: "2001:db8::1".parse().unwrap(),
                port: 443
            }))
        );
        assert_eq!(one(":::443"), Ok(Addr::AnyAddress(443)));
        assert_eq!(one("0.0.0.0:80"), Ok(Addr::AnyAddress(80)));
        assert_eq!(
            one("[::ffff:10.0.0.1]:443"),
            Ok(Addr::Exact(ep("10.0.0.1:443")))
        );
        assert_eq!(parse_haproxy_addr(":8000-8002").unwrap().len(), 3);
        assert!(parse_haproxy_addr(":1-60000").is_err());
        assert!(
            parse_haproxy_addr("10.0.0.1")
                .unwrap_err()
                .contains("no port")
        );
        assert!(parse_haproxy_addr("unix@/run/haproxy.sock").is_err());
        assert!(parse_haproxy_addr("/run/haproxy.sock").is_err());
        assert!(parse_haproxy_addr("${BACKEND}:443").is_err());
        assert!(parse_haproxy_addr("10.0.0.1:+1").is_err());
    }

    #[test]
    fn merge_lets_the_names_file_override() {
        let mut n = Names::parse_haproxy(HAPROXY);
        let file = Names::parse_names("10.0.1.12:8443 web2 (canary)\n").unwrap();
        n.merge(file);
        assert_eq!(
            n.lookup(&ep("10.0.1.12:8443"), Role::Backend),
            Some("web2 (canary)")
        );
        assert!(to_names_file(&n).contains("*:443 frontend fe_https\n"));
        assert!(Names::new().is_empty());
    }
}
