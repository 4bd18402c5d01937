//! `--nginx-config` on Debian's nginx layout: the package's own
//! `nginx.conf`, `mime.types` and default site (installed by `cargo xtask
//! setup`), moved to a temporary directory together with a TLS site, an
//! upstream and a snippet, the way an operator adds them. The real nginx
//! must accept the tree (`nginx -t`) before tlsmon reads it, and tlsmon
//! must read the files nginx reads (`nginx -T` lists them), in its order.

use std::{
    fs,
    net::ToSocketAddrs as _,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
};

use monitor::{
    names::{Names, NginxConfig},
    stats::{Endpoint, Role},
};

/// Debian's files, with their absolute paths moved under `dir`.
fn debian_file(name: &str, dir: &Path) -> String {
    let text = fs::read_to_string(Path::new("/etc/nginx").join(name))
        .unwrap_or_else(|e| panic!("/etc/nginx/{name} (cargo xtask setup installs nginx): {e}"));
    let d = dir.display().to_string();
    text.replace("/etc/nginx", &d)
        .replace("/var/log/nginx", &format!("{d}/log"))
        .replace("/run/nginx.pid", &format!("{d}/nginx.pid"))
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn layout(dir: &Path) {
    let _ = fs::remove_dir_all(dir);
    for sub in [
        "conf.d",
        "modules-enabled",
        "sites-enabled",
        "snippets",
        "log",
    ] {
        fs::create_dir_all(dir.join(sub)).unwrap();
    }
    write(&dir.join("nginx.conf"), &debian_file("nginx.conf", dir));
    write(&dir.join("mime.types"), &debian_file("mime.types", dir));
    write(
        &dir.join("sites-available/default"),
        &debian_file("sites-available/default", dir),
    );
    symlink(
        dir.join("sites-available/default"),
        dir.join("sites-enabled/default"),
    )
    .unwrap();
    let out = xtask::programs::command("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=shop.example", "-keyout"])
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .expect("openssl (cargo xtask setup installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A snippet included by a relative path, as Debian's default site
    // suggests for snippets/snakeoil.conf.
    write(
        &dir.join("snippets/tls.conf"),
        &format!(
            "ssl_certificate {0}/cert.pem;\nssl_certificate_key {0}/key.pem;\n",
            dir.display()
        ),
    );
    write(
        &dir.join("conf.d/upstreams.conf"),
        "upstream app {\n    server 127.0.0.1:18444;\n    server localhost:18445;\n    \
         server [::1]:18446 backup;\n    keepalive 16;\n}\n",
    );
    write(
        &dir.join("sites-available/shop"),
        "server {\n    listen 18443 ssl;\n    listen [::]:18443 ssl;\n    \
         server_name shop.example www.shop.example;\n    include snippets/tls.conf;\n    \
         location / {\n        proxy_pass https://app;\n    }\n}\n\n\
         server {\n    listen 127.0.0.1:19443 ssl http2;\n    server_name api.example;\n    \
         include snippets/tls.conf;\n    return 204;\n}\n",
    );
    symlink(
        dir.join("sites-available/shop"),
        dir.join("sites-enabled/shop"),
    )
    .unwrap();
    // An editor's swap file: `*` does not match it, for nginx or tlsmon.
    write(
        &dir.join("sites-enabled/.shop.swp"),
        "this would not pass nginx -t {",
    );
}

/// Runs `nginx FLAG -c CONF` with its error log in `dir`; it must accept
/// the configuration.
fn nginx(flag: &str, conf: &Path, dir: &Path) -> String {
    let out = xtask::programs::command("nginx")
        .arg(flag)
        .arg("-c")
        .arg(conf)
        .arg("-e")
        .arg(dir.join("log/error.log"))
        .output()
        .expect("nginx (cargo xtask setup installs it)");
    assert!(
        out.status.success(),
        "nginx {flag} refused the test's configuration: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// What `nginx -T` prints for each file it read.
fn nginx_files(conf: &Path, dir: &Path) -> Vec<PathBuf> {
    nginx("-T", conf, dir)
        .lines()
        .filter_map(|l| l.strip_prefix("# configuration file "))
        .map(|f| PathBuf::from(f.trim_end_matches(':')))
        .collect()
}

fn ep(s: &str) -> Endpoint {
    let a: std::net::SocketAddr = s.parse().unwrap();
    Endpoint {
        addr: a.ip(),
        port: a.port(),
    }
}

#[test]
fn debian_layout_with_includes() {
    let dir = std::env::temp_dir().join(format!("tlsmon-nginx-debian-{}", std::process::id()));
    layout(&dir);
    let conf = dir.join("nginx.conf");
    nginx("-t", &conf, &dir);

    let config = NginxConfig::load(&conf).unwrap();
    assert_eq!(config.files(), nginx_files(&conf, &dir));

    let names = Names::from_nginx_config(&conf).unwrap();
    assert_eq!(names.skipped(), [] as [String; 0]);
    let be = |s| names.lookup(&ep(s), Role::Backend);
    let fe = |s| names.lookup(&ep(s), Role::Frontend);
    assert_eq!(be("127.0.0.1:18444"), Some("app/127.0.0.1:18444"));
    assert_eq!(be("[::1]:18446"), Some("app/[::1]:18446"));
    // Every address the resolver gives for the name, as nginx uses them.
    let localhost: Vec<_> = ("localhost", 18445).to_socket_addrs().unwrap().collect();
    assert!(!localhost.is_empty());
    for a in localhost {
        let server = Endpoint {
            addr: a.ip(),
            port: 18445,
        };
        assert_eq!(
            names.lookup(&server, Role::Backend),
            Some("app/localhost:18445")
        );
    }
    // `listen 18443 ssl` and `[::]:18443`: any address on the port.
    assert_eq!(fe("192.0.2.1:18443"), Some("server shop.example"));
    assert_eq!(fe("127.0.0.1:19443"), Some("server api.example"));
    assert_eq!(fe("127.0.0.2:19443"), None);
    // Debian's default site listens on 80 without TLS.
    assert_eq!(fe("192.0.2.1:80"), None);
    assert_eq!(names.len(), 5);
    fs::remove_dir_all(&dir).unwrap();
}
