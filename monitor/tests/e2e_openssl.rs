//! End-to-end: tlsmon watches real `openssl s_client` / `s_server` handshakes
//! between two network namespaces, and its counters must agree with what the
//! TLS client itself reports (`New,` / `Reused,` lines). Needs root.

mod common;

use std::{path::Path, thread, time::Duration};

use common::{Finished, Lab, Proc, Side, must_output, output};
use serde_json::Value;

const TLSMON: &str = env!("CARGO_BIN_EXE_tlsmon");
const PORT: u16 = 4433;
/// tlsmon prints `tlsmon: attached to IF` on stderr once its classifier is
/// verified and attached; loading takes seconds on a busy machine.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(90);
/// Lets the last packets' events reach userspace before stopping tlsmon.
const DRAIN_TIME: Duration = Duration::from_millis(500);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

fn start_server(lab: &mut Lab, name: &str, cert: &Path, key: &Path) -> Proc {
    let port = PORT.to_string();
    let argv = [
        "openssl".as_ref(),
        "s_server".as_ref(),
        "-tls1_2".as_ref(),
        "-no_ticket".as_ref(),
        "-www".as_ref(),
        "-accept".as_ref(),
        port.as_ref(),
        "-cert".as_ref(),
        cert.as_os_str(),
        "-key".as_ref(),
        key.as_os_str(),
    ];
    let server = lab.spawn(Side::Server, name, &argv);
    lab.wait_listening(Side::Server, PORT, Duration::from_secs(10));
    server
}

/// Starts tlsmon headless on the client's veth and gives it time to attach.
fn start_tlsmon(lab: &mut Lab) -> Proc {
    let iface = lab.iface(Side::Client).to_owned();
    // --duration is only a backstop: the test stops it with SIGINT.
    let argv = [
        TLSMON,
        "--iface",
        &iface,
        "--headless",
        "--interval",
        "1",
        "--duration",
        "120",
    ];
    let tlsmon = lab.spawn(Side::Client, "tlsmon", &argv);
    common::wait_for_text(
        &tlsmon.stderr,
        "tlsmon: attached to",
        ATTACH_TIMEOUT,
        &|| output(&tlsmon),
    );
    assert!(
        lab.running(&tlsmon),
        "tlsmon exited during start-up\n{}",
        output(&tlsmon)
    );
    tlsmon
}

/// Stops tlsmon with SIGINT and returns its JSON lines.
fn stop_tlsmon(lab: &mut Lab, tlsmon: &Proc) -> Vec<Value> {
    thread::sleep(DRAIN_TIME);
    lab.signal(tlsmon, libc::SIGINT);
    let status = lab.wait(tlsmon, EXIT_TIMEOUT);
    assert!(
        status.success(),
        "tlsmon exited with {status} after SIGINT\n{}",
        output(tlsmon)
    );
    common::read(&tlsmon.stdout)
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| {
                panic!(
                    "tlsmon printed a line that is not JSON ({e}): {line}\n{}",
                    output(tlsmon)
                )
            })
        })
        .collect()
}

/// The last line for `server` (the final one, printed on exit) and the summary.
fn final_lines<'a>(lines: &'a [Value], server: &str, context: &str) -> (&'a Value, &'a Value) {
    let server_line = lines
        .iter()
        .rev()
        .find(|line| line["type"] == "server" && line["server"] == server)
        .unwrap_or_else(|| panic!("tlsmon printed no line for server {server}\n{context}"));
    let summary = lines
        .iter()
        .rev()
        .find(|line| line["type"] == "summary")
        .unwrap_or_else(|| panic!("tlsmon printed no summary line\n{context}"));
    (server_line, summary)
}

fn counter(line: &Value, field: &str, context: &str) -> u64 {
    line[field]
        .as_u64()
        .unwrap_or_else(|| panic!("field {field:?} missing or not a count in {line}\n{context}"))
}

/// Counts `s_client`'s `New,` (full handshake) and `Reused,` (resumed) lines.
fn handshakes(client: &Finished) -> (u64, u64) {
    let count = |prefix: &str| -> u64 {
        client
            .stdout
            .lines()
            .filter(|line| line.starts_with(prefix))
            .count()
            .try_into()
            .expect("count fits u64")
    };
    (count("New,"), count("Reused,"))
}

fn client_output(name: &str, client: &Finished) -> String {
    format!(
        "--- {name} ({}) stdout ---\n{}\n--- {name} stderr ---\n{}",
        client.status, client.stdout, client.stderr
    )
}

#[test]
fn openssl_reconnect_counts() {
    let mut lab = Lab::new("rc", 1);
    let (cert, key) = lab.make_cert();
    let _server = start_server(&mut lab, "s_server", &cert, &key);
    let tlsmon = start_tlsmon(&mut lab);

    let server = format!("{}:{PORT}", lab.ip(Side::Server));
    let client = lab.run(
        Side::Client,
        "s_client",
        &[
            "openssl",
            "s_client",
            "-tls1_2",
            "-reconnect",
            "-connect",
            &server,
        ],
        CLIENT_TIMEOUT,
    );
    let lines = stop_tlsmon(&mut lab, &tlsmon);
    let context = format!(
        "{}\n{}",
        output(&tlsmon),
        client_output("s_client", &client)
    );
    assert!(client.status.success(), "s_client failed\n{context}");

    // openssl's -reconnect: one full handshake, then five resumptions of it.
    let (new, reused) = handshakes(&client);
    assert_eq!(
        (new, reused),
        (1, 5),
        "s_client's New/Reused lines changed\n{context}"
    );

    let (line, summary) = final_lines(&lines, &server, &context);
    assert_eq!(
        line["role"], "backend",
        "this host is the TLS client\n{context}"
    );
    assert_eq!(
        counter(line, "full", &context),
        new,
        "full handshakes\n{context}"
    );
    assert_eq!(
        counter(line, "resumed", &context),
        reused,
        "resumptions\n{context}"
    );
    // Every reconnect offered the session and the server took it.
    assert_eq!(
        counter(line, "offered", &context),
        reused,
        "offered resumptions\n{context}"
    );
    assert_eq!(
        counter(line, "rejected", &context),
        0,
        "rejected resumptions\n{context}"
    );
    assert_eq!(
        counter(summary, "lost_events", &context),
        0,
        "lost events\n{context}"
    );
}

#[test]
fn rejected_after_server_restart() {
    let mut lab = Lab::new("rj", 2);
    let (cert, key) = lab.make_cert();
    let first_server = start_server(&mut lab, "s_server-1", &cert, &key);
    let tlsmon = start_tlsmon(&mut lab);

    let server = format!("{}:{PORT}", lab.ip(Side::Server));
    let session = lab.dir.join("session.pem");
    let session_arg = session.to_str().expect("temp path is UTF-8");
    let base = ["openssl", "s_client", "-tls1_2", "-connect", &server];
    let first = lab.run(
        Side::Client,
        "s_client-1",
        &[&base[..], &["-sess_out", session_arg]].concat(),
        CLIENT_TIMEOUT,
    );

    // A new server process has an empty session cache: the saved session
    // offered next must be refused and a full handshake done instead.
    lab.kill(&first_server);
    let _second_server = start_server(&mut lab, "s_server-2", &cert, &key);
    let second = lab.run(
        Side::Client,
        "s_client-2",
        &[&base[..], &["-sess_in", session_arg]].concat(),
        CLIENT_TIMEOUT,
    );
    let lines = stop_tlsmon(&mut lab, &tlsmon);
    let context = format!(
        "{}\n{}\n{}",
        output(&tlsmon),
        client_output("s_client-1", &first),
        client_output("s_client-2", &second)
    );
    assert!(first.status.success(), "first s_client failed\n{context}");
    assert!(second.status.success(), "second s_client failed\n{context}");

    // The saved session has an id, so the second ClientHello offered it.
    let saved = must_output(std::process::Command::new("openssl").args([
        "sess_id",
        "-in",
        session_arg,
        "-noout",
        "-text",
    ]));
    let session_id = saved
        .lines()
        .find_map(|line| line.trim().strip_prefix("Session-ID:"))
        .map(str::trim)
        .unwrap_or_default();
    assert!(
        !session_id.is_empty(),
        "the saved session has no session id:\n{saved}\n{context}"
    );

    let (new1, reused1) = handshakes(&first);
    let (new2, reused2) = handshakes(&second);
    assert_eq!(
        (new1, reused1),
        (1, 0),
        "first client: one full handshake\n{context}"
    );
    assert_eq!(
        (new2, reused2),
        (1, 0),
        "second client: offer refused, full handshake\n{context}"
    );
    let offered = 1;
    let rejected = offered - reused2;

    let (line, summary) = final_lines(&lines, &server, &context);
    assert_eq!(
        line["role"], "backend",
        "this host is the TLS client\n{context}"
    );
    assert_eq!(
        counter(line, "full", &context),
        new1 + new2,
        "full handshakes\n{context}"
    );
    assert_eq!(
        counter(line, "resumed", &context),
        reused1 + reused2,
        "resumptions\n{context}"
    );
    assert_eq!(
        counter(line, "offered", &context),
        offered,
        "offered resumptions\n{context}"
    );
    assert_eq!(
        counter(line, "rejected", &context),
        rejected,
        "rejected resumptions\n{context}"
    );
    assert_eq!(
        counter(summary, "lost_events", &context),
        0,
        "lost events\n{context}"
    );
}
