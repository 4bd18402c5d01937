//! `HAProxy` configuration: `server` lines of `backend` and `listen`
//! sections name backends "BACKEND/SERVER", `bind` lines of `frontend` and
//! `listen` sections name frontends "frontend NAME".

use std::path::Path;

use super::{
    Addr, Builder, MAX_BIND_RANGE, Names, NamesError, host_addr, push, read, split_host_port,
    strip_comment,
};

impl Names {
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

#[cfg(test)]
mod tests {
    use super::{
        super::{tests::ep, to_names_file},
        *,
    };
    use crate::stats::{Endpoint, Role};

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
