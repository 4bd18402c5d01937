//! The openssl and tlsmon steps most tests share.

use std::{env, path::Path, time::Duration};

use super::*;

pub const TLSMON: &str = env!("CARGO_BIN_EXE_tlsmon");
/// The port every test's `openssl s_server` listens on.
pub const TLS_PORT: u16 = 4433;
/// tlsmon prints `tlsmon: attached to IF` on stderr once its classifier is
/// verified and attached; loading takes seconds on a busy machine.
pub const ATTACH_TIMEOUT: Duration = Duration::from_secs(90);

/// `openssl s_server -tls1_2 -no_ticket -www` (session cache on, tickets
/// off) on [`TLS_PORT`] in the server namespace, ready to accept.
pub fn start_s_server(lab: &mut Lab, name: &str, cert: &Path, key: &Path) -> Proc {
    let port = TLS_PORT.to_string();
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let argv = [
        "openssl",
        "s_server",
        "-tls1_2",
        "-no_ticket",
        "-www",
        "-accept",
        &port,
        "-cert",
        &cert,
        "-key",
        &key,
    ];
    let server = lab.spawn(Side::Server, name, &argv);
    lab.wait_listening(Side::Server, TLS_PORT, Duration::from_secs(10));
    server
}

/// tlsmon on the client's veth with `args` added, once it is attached.
pub fn start_tlsmon(lab: &mut Lab, name: &str, args: &[&str]) -> Proc {
    let iface = lab.iface(Side::Client).to_owned();
    let mut cmdline = vec![TLSMON, "--iface", &iface];
    cmdline.extend_from_slice(args);
    let tlsmon = lab.spawn(Side::Client, name, &cmdline);
    wait_for_text(
        &tlsmon.stderr,
        "tlsmon: attached to",
        ATTACH_TIMEOUT,
        &|| output(&tlsmon),
    );
    tlsmon
}

/// Stops a headless tlsmon with SIGINT, checks it exited cleanly, and
/// returns its summary line (the last one it wrote to stdout).
pub fn stop_tlsmon(lab: &mut Lab, tlsmon: &Proc) -> serde_json::Value {
    lab.signal(tlsmon, libc::SIGINT);
    let status = lab.wait(tlsmon, Duration::from_mins(2));
    assert!(status.success(), "tlsmon: {status}\n{}", output(tlsmon));
    let out = read(&tlsmon.stdout);
    let last = out.lines().last().unwrap_or_default();
    let summary: serde_json::Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("{last:?}: {e}"));
    assert_eq!(summary["type"], "summary", "{last}");
    summary
}

/// `openssl s_client -tls1_2 -reconnect` against the server: what it
/// printed, and its own count of full and resumed handshakes.
pub fn reconnect(lab: &mut Lab) -> (Finished, u64, u64) {
    let connect = format!("{}:{TLS_PORT}", lab.ip(Side::Server));
    reconnect_to(lab, &connect)
}

/// [`reconnect`] to `connect` (`ip:port`), from the client namespace.
pub fn reconnect_to(lab: &mut Lab, connect: &str) -> (Finished, u64, u64) {
    let out = lab.run(
        Side::Client,
        "s_client",
        &[
            "openssl",
            "s_client",
            "-tls1_2",
            "-reconnect",
            "-connect",
            connect,
        ],
        Duration::from_secs(30),
    );
    let (new, reused) = handshakes(&out);
    (out, new, reused)
}

/// Counts `s_client`'s `New,` (full handshake) and `Reused,` (resumed) lines.
pub fn handshakes(client: &Finished) -> (u64, u64) {
    let count = |prefix: &str| {
        client
            .stdout
            .lines()
            .filter(|l| l.starts_with(prefix))
            .count() as u64
    };
    (count("New,"), count("Reused,"))
}
