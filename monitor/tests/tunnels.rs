//! The live engine on an overlay's underlay: a real VXLAN tunnel between
//! two network namespaces, real `openssl s_client -reconnect` handshakes
//! across it, and tlsmon attached only to the client's underlay veth, where
//! every packet is VXLAN. Its counts must be the client's own (`New,` and
//! `Reused,` lines). Needs root. (This machine's kernel has VXLAN but none
//! of the other tunnel drivers; those are covered by the replay corpus.)

mod common;

use std::{thread, time::Duration};

use common::{Lab, Side, TLS_PORT, handshakes, output, start_s_server, start_tlsmon};
use serde_json::Value;

/// The overlay: VXLAN devices carry 10.211.0.0/24 over the veth pair.
const CLIENT_OVERLAY: &str = "10.211.0.1";
const SERVER_OVERLAY: &str = "10.211.0.2";

fn vxlan(lab: &Lab, side: Side) {
    let (local, remote, overlay) = match side {
        Side::Client => (lab.ip(Side::Client), lab.ip(Side::Server), CLIENT_OVERLAY),
        Side::Server => (lab.ip(Side::Server), lab.ip(Side::Client), SERVER_OVERLAY),
    };
    let iface = lab.iface(side);
    let overlay = format!("{overlay}/24");
    for argv in [
        &[
            "ip", "link", "add", "vx0", "type", "vxlan", "id", "42", "local", local, "remote",
            remote, "dstport", "4789", "dev", iface,
        ][..],
        &["ip", "addr", "add", &overlay, "dev", "vx0"],
        &["ip", "link", "set", "vx0", "up"],
    ] {
        common::must_output(&mut lab.exec(side, argv));
    }
}

#[test]
fn handshakes_inside_vxlan_are_counted_on_the_underlay() {
    let mut lab = Lab::new("vx", 8);
    vxlan(&lab, Side::Client);
    vxlan(&lab, Side::Server);
    let (cert, key) = lab.make_cert();
    let _server = start_s_server(&mut lab, "s_server", &cert, &key);
    let tlsmon = start_tlsmon(
        &mut lab,
        "tlsmon",
        &["--headless", "--interval", "1", "--duration", "120"],
    );
    let connect = format!("{SERVER_OVERLAY}:{TLS_PORT}");
    let client = lab.run(
        Side::Client,
        "s_client",
        &[
            "openssl",
            "s_client",
            "-tls1_2",
            "-reconnect",
            "-connect",
            &connect,
        ],
        Duration::from_secs(30),
    );
    // Lets the last events reach userspace before tlsmon stops.
    thread::sleep(Duration::from_millis(500));
    lab.signal(&tlsmon, libc::SIGINT);
    let status = lab.wait(&tlsmon, Duration::from_secs(15));
    let context = format!(
        "{}\n--- s_client ---\n{}{}",
        output(&tlsmon),
        client.stdout,
        client.stderr
    );
    assert!(status.success(), "tlsmon exited with {status}\n{context}");
    assert!(client.status.success(), "s_client failed\n{context}");
    let (new, reused) = handshakes(&client);
    assert_eq!((new, reused), (1, 5), "s_client's own count\n{context}");

    let lines: Vec<Value> = common::read(&tlsmon.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let line = lines
        .iter()
        .rev()
        .find(|l| l["type"] == "server" && l["server"] == connect.as_str())
        .unwrap_or_else(|| panic!("no line for the overlay server {connect}\n{context}"));
    let count = |field: &str| line[field].as_u64();
    assert_eq!(
        (count("full"), count("resumed")),
        (Some(new), Some(reused)),
        "{line}\n{context}"
    );
    let summary = lines
        .iter()
        .rev()
        .find(|l| l["type"] == "summary")
        .unwrap_or_else(|| panic!("no summary\n{context}"));
    assert_eq!(
        summary["skipped"]["encapsulation"].as_u64(),
        Some(0),
        "{summary}"
    );
}
