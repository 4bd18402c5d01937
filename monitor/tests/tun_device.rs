//! A device without a link header (`ARPHRD_NONE`, as tun and WireGuard
//! devices are): tlsmon watches it with the classifiers built for packets
//! that start with their IP header, and counts the handshakes that cross
//! it as `openssl s_client` reports them. The tunnel is a tun device in
//! each namespace and a relay that carries its packets over UDP across the
//! veth pair (`support/tun_relay.py`), as WireGuard would, unencrypted.
//! Needs root.

mod common;

use std::time::Duration;

use common::{
    ATTACH_TIMEOUT, Lab, Side, must_output, output, reconnect_to, start_s_server, stop_tlsmon,
    wait_for_text,
};

const DEVICE: &str = "tun0";
/// Below the veth's 1500 bytes by more than the relay's IPv4 and UDP
/// headers, so that no tunnelled packet needs fragmenting.
const MTU: &str = "1400";
const RELAY_PORT: &str = "7000";

/// The tunnel's addresses: the client's, the server's.
fn tunnel_ip(side: Side) -> &'static str {
    match side {
        Side::Client => "10.202.0.1",
        Side::Server => "10.202.0.2",
    }
}

/// A tun device in each namespace, up, and the relays between them.
fn tunnel(lab: &mut Lab) {
    let relay = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/tun_relay.py");
    for (side, peer) in [(Side::Client, Side::Server), (Side::Server, Side::Client)] {
        let ns = lab.ns(side).to_owned();
        let ip = |args: &[&str]| {
            must_output(xtask::programs::command("ip").args(["-n", &ns]).args(args));
        };
        ip(&["tuntap", "add", "dev", DEVICE, "mode", "tun"]);
        ip(&["link", "set", DEVICE, "mtu", MTU, "up"]);
        let addr = format!("{}/30", tunnel_ip(side));
        ip(&["addr", "add", &addr, "dev", DEVICE]);
        let (local, remote) = (lab.ip(side).to_owned(), lab.ip(peer).to_owned());
        let name = format!("relay-{}", lab.ns(side).rsplit('-').next().unwrap_or("x"));
        let proc = lab.spawn(
            side,
            &name,
            &["python3", relay, DEVICE, &local, &remote, RELAY_PORT],
        );
        wait_for_text(&proc.stdout, "relaying", Duration::from_secs(10), &|| {
            output(&proc)
        });
    }
}

#[test]
fn handshakes_through_a_tun_device_are_counted() {
    let mut lab = Lab::new("tun", 12);
    tunnel(&mut lab);
    let (cert, key) = lab.make_cert();
    let _server = start_s_server(&mut lab, "s_server", &cert, &key);
    let tlsmon = lab.spawn(
        Side::Client,
        "tlsmon",
        &[
            common::TLSMON,
            "--iface",
            DEVICE,
            "--headless",
            "--interval",
            "1",
            "--duration",
            "120",
        ],
    );
    wait_for_text(
        &tlsmon.stderr,
        &format!("tlsmon: attached to {DEVICE}"),
        ATTACH_TIMEOUT,
        &|| output(&tlsmon),
    );

    let connect = format!("{}:{}", tunnel_ip(Side::Server), common::TLS_PORT);
    let (client, new, reused) = reconnect_to(&mut lab, &connect);
    std::thread::sleep(Duration::from_millis(500));
    let summary = stop_tlsmon(&mut lab, &tlsmon);
    let context = format!(
        "{}\n--- s_client ({}) ---\n{}\n{}",
        output(&tlsmon),
        client.status,
        client.stdout,
        client.stderr
    );
    assert!(client.status.success(), "s_client failed\n{context}");
    // openssl's -reconnect: one full handshake, then five resumptions of it.
    assert_eq!((new, reused), (1, 5), "s_client's own count\n{context}");
    assert_eq!(summary["full"], new, "full handshakes\n{context}");
    assert_eq!(summary["resumed"], reused, "resumptions\n{context}");
    assert_eq!(summary["skipped"]["malformed"], 0, "{context}");
    let server_line = common::read(&tlsmon.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .any(|v| v["type"] == "server" && v["server"] == connect.as_str());
    assert!(server_line, "no line for server {connect}\n{context}");

    // Without --iface, every interface that is up: the tun device too.
    let out = lab.run(
        Side::Client,
        "default",
        &[common::TLSMON, "--headless", "--duration", "1"],
        Duration::from_secs(30),
    );
    let attached = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("tlsmon: attached to "))
        .unwrap_or_default()
        .to_owned();
    assert!(
        out.status.success() && attached.split(", ").any(|i| i == DEVICE),
        "{}",
        out.stderr
    );
}
