//! The live engine on an overlay's underlay: a real VXLAN tunnel between
//! two network namespaces, real `openssl s_client -reconnect` handshakes
//! across it, and tlsmon attached only to the client's underlay veth, where
//! every packet is VXLAN. Its counts must be the client's own (`New,` and
//! `Reused,` lines). Needs root. (This machine's kernel has VXLAN but none
//! of the other tunnel drivers; those are covered by the replay corpus.)

mod common;

use std::{thread, time::Duration};

use common::{Lab, Side, TLS_PORT, output, reconnect, start_s_server, start_tlsmon};
use serde_json::Value;

/// Moves the lab's addresses from its veth pair to a VXLAN overlay over
/// it: the veth pair keeps only the underlay's 192.0.2.0/24, the overlay
/// carries the lab's own addresses, so everything the harness does with
/// them (`reconnect`) crosses the tunnel.
fn overlay(lab: &Lab) {
    for (side, local, remote) in [
        (Side::Client, "192.0.2.1", "192.0.2.2"),
        (Side::Server, "192.0.2.2", "192.0.2.1"),
    ] {
        let iface = lab.iface(side);
        let own = format!("{}/30", lab.ip(side));
        let underlay = format!("{local}/24");
        for argv in [
            &["ip", "addr", "del", &own, "dev", iface][..],
            &["ip", "addr", "add", &underlay, "dev", iface],
            &[
                "ip", "link", "add", "vx0", "type", "vxlan", "id", "42", "local", local, "remote",
                remote, "dstport", "4789", "dev", iface,
            ],
            &["ip", "addr", "add", &own, "dev", "vx0"],
            &["ip", "link", "set", "vx0", "up"],
        ] {
            common::must_output(&mut lab.exec(side, argv));
        }
    }
}

#[test]
fn handshakes_inside_vxlan_are_counted_on_the_underlay() {
    let mut lab = Lab::new("vx", 8);
    overlay(&lab);
    let (cert, key) = lab.make_cert();
    let _server = start_s_server(&mut lab, "s_server", &cert, &key);
    // On the client's veth: the underlay, where every packet is VXLAN.
    let tlsmon = start_tlsmon(
        &mut lab,
        "tlsmon",
        &["--headless", "--interval", "1", "--duration", "120"],
    );
    let (client, new, reused) = reconnect(&mut lab);
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
    assert_eq!((new, reused), (1, 5), "s_client's own count\n{context}");

    let server = format!("{}:{TLS_PORT}", lab.ip(Side::Server));
    let lines: Vec<Value> = common::read(&tlsmon.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let line = lines
        .iter()
        .rev()
        .find(|l| l["type"] == "server" && l["server"] == server.as_str())
        .unwrap_or_else(|| panic!("no line for the overlay server {server}\n{context}"));
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
