//! The nginx reader on hand-written trees: the syntax, upstreams and
//! servers, what is skipped and why, and include errors.

use std::fs;

use super::{super::tests::ep, *};
use crate::stats::{Endpoint, Role};

fn words(text: &str) -> Vec<Token> {
    tokens(text).unwrap().into_iter().map(|(t, _)| t).collect()
}

fn w(s: &str) -> Token {
    Token::Word(s.to_owned())
}

#[test]
fn tokens_follow_nginx_rules() {
    assert_eq!(
        words("listen 443 ssl;# comment ; {\nserver_name \"a b\" 'c;d' e\\ f;"),
        vec![
            w("listen"),
            w("443"),
            w("ssl"),
            Token::End,
            w("server_name"),
            w("a b"),
            w("c;d"),
            w("e f"),
            Token::End
        ]
    );
    // `#` inside a word is not a comment; braces end words.
    assert_eq!(
        words("location ~ a#b{return 204;}"),
        vec![
            w("location"),
            w("~"),
            w("a#b"),
            Token::Open,
            w("return"),
            w("204"),
            Token::End,
            Token::Close
        ]
    );
    assert_eq!(tokens("x \"open").unwrap_err().0, 1);
    let lines: Vec<usize> = tokens("a;\n\nb \"x\ny\"\n;")
        .unwrap()
        .iter()
        .map(|t| t.1)
        .collect();
    assert_eq!(lines, vec![1, 1, 3, 3, 5]);
}

/// Writes `files` under a fresh directory; returns the first one's path.
fn tree(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tlsmon-nginx-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    for (path, text) in files {
        let p = dir.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, text).unwrap();
    }
    dir.join(files[0].0)
}

fn resolver(host: &str, _port: u16) -> Result<Vec<IpAddr>, String> {
    match host {
        "app.internal" => Ok(vec![
            "10.0.1.21".parse().unwrap(),
            "2001:db8::21".parse().unwrap(),
        ]),
        "empty.internal" => Ok(Vec::new()),
        _ => Err("Name or service not known".to_owned()),
    }
}

#[test]
fn upstreams_servers_and_skips() {
    let main = tree(
        "names",
        &[
            (
                "nginx.conf",
                "events {}\nhttp {\n  include conf.d/*.conf;\n  include sites/shop;\n}\n\
                 stream {\n  upstream db { server 10.0.5.5:3306; }\n  \
                 server { listen 3307 ssl; proxy_pass db; }\n}\n",
            ),
            (
                "conf.d/upstreams.conf",
                "upstream app {\n  server 10.0.1.11:8443 weight=2;\n  server [2001:db8::12]:8443;\n  \
                 server app.internal:8443 backup;\n  server 10.0.1.13;\n  \
                 server unix:/run/app.sock;\n  server gone.internal:8443;\n  \
                 server empty.internal;\n  server _app._tcp service=http resolve;\n}\n",
            ),
            ("conf.d/.hidden.conf", "this is not nginx syntax {"),
            (
                "sites/shop",
                "server {\n  listen 443 ssl;\n  listen [::]:443 ssl;\n  listen 80;\n  \
                 listen 443 quic;\n  server_name shop.example www.shop.example;\n}\n\
                 server {\n  listen 192.0.2.10:8443 ssl http2;\n  server_name _;\n  \
                 location / { proxy_pass https://app; }\n}\n\
                 server {\n  ssl on;\n  listen 127.0.0.1:9443;\n  server_name old.example;\n}\n\
                 server {\n  listen app.internal:7443 ssl;\n  listen unix:/run/x.sock ssl;\n}\n",
            ),
        ],
    );
    let config = NginxConfig::load(&main).unwrap();
    let dir = main.parent().unwrap();
    assert_eq!(
        config.files(),
        [
            main.clone(),
            dir.join("conf.d/upstreams.conf"),
            dir.join("sites/shop")
        ]
    );
    let n = Names::from_nginx(&config, &resolver);
    let be = |s| n.lookup(&ep(s), Role::Backend);
    let fe = |s| n.lookup(&ep(s), Role::Frontend);
    assert_eq!(be("10.0.1.11:8443"), Some("app/10.0.1.11:8443"));
    let v6 = Endpoint {
        addr: "2001:db8::12".parse().unwrap(),
        port: 8443,
    };
    assert_eq!(
        n.lookup(&v6, Role::Backend),
        Some("app/[2001:db8::12]:8443")
    );
    // A name that resolves to two addresses names both.
    assert_eq!(be("10.0.1.21:8443"), Some("app/app.internal:8443"));
    let v6 = Endpoint {
        addr: "2001:db8::21".parse().unwrap(),
        port: 8443,
    };
    assert_eq!(n.lookup(&v6, Role::Backend), Some("app/app.internal:8443"));
    assert_eq!(be("10.0.1.13:80"), Some("app/10.0.1.13"));
    assert_eq!(be("10.0.5.5:3306"), Some("db/10.0.5.5:3306"));
    // Frontends: `listen 443 ssl` is any address on 443; plain and QUIC
    // listens are not TLS over TCP.
    assert_eq!(fe("203.0.113.1:443"), Some("server shop.example"));
    assert_eq!(fe("203.0.113.1:80"), None);
    assert_eq!(fe("192.0.2.10:8443"), Some("server 192.0.2.10:8443"));
    assert_eq!(fe("127.0.0.1:9443"), Some("server old.example"));
    assert_eq!(fe("10.0.1.21:7443"), Some("server app.internal:7443"));
    assert_eq!(fe("10.9.9.9:3307"), Some("server 3307"));
    let skipped = n.skipped().join("\n");
    let at = |line| format!("{}:{line}: ", dir.join("conf.d/upstreams.conf").display());
    for want in [
        format!(
            "{}upstream app: server unix:/run/app.sock: a UNIX socket",
            at(6)
        ),
        format!(
            "{}upstream app: server gone.internal:8443: cannot resolve gone.internal: \
             Name or service not known",
            at(7)
        ),
        format!(
            "{}upstream app: server empty.internal: empty.internal resolves to no address",
            at(8)
        ),
        format!(
            "{}upstream app: server _app._tcp: SRV records are not resolved",
            at(9)
        ),
        format!(
            "{}:20: listen unix:/run/x.sock: a UNIX socket",
            dir.join("sites/shop").display()
        ),
    ] {
        assert!(skipped.contains(&want), "missing {want:?} in\n{skipped}");
    }
    assert_eq!(n.skipped().len(), 5, "{skipped}");
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn include_errors_are_nginx_errors() {
    // A plain path that is missing fails, as `nginx -t` does; a glob
    // that matches nothing does not.
    let main = tree(
        "missing",
        &[("nginx.conf", "include none/*.conf;\ninclude gone.conf;\n")],
    );
    let err = NginxConfig::load(&main).unwrap_err().to_string();
    assert!(
        err.starts_with("reading ") && err.contains("gone.conf"),
        "{err}"
    );
    // Syntax errors name the file and line.
    let main = tree(
        "syntax",
        &[("nginx.conf", "http {\n  server {\n}\n"), ("x", "")],
    );
    let err = NginxConfig::load(&main).unwrap_err().to_string();
    assert!(
        err.ends_with(":2: unexpected end of file, expecting `}`"),
        "{err}"
    );
    let main = tree("brace", &[("nginx.conf", "a;\n}\n")]);
    let err = NginxConfig::load(&main).unwrap_err().to_string();
    assert!(err.ends_with("nginx.conf:2: unexpected `}`"), "{err}");
    // A file that includes itself stops at the depth limit.
    let main = tree("loop", &[("nginx.conf", "include nginx.conf;\n")]);
    let err = NginxConfig::load(&main).unwrap_err().to_string();
    assert!(err.contains("includes nested deeper than 16"), "{err}");
    let _ = fs::remove_dir_all(main.parent().unwrap());
}
