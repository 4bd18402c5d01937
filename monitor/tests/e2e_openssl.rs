//! End-to-end: tlsmon watches real `openssl s_client` / `s_server` handshakes
//! between two network namespaces, and its counters must agree with what the
//! TLS client itself reports (`New,` / `Reused,` lines). Needs root.

mod common;

use std::{thread, time::Duration};

use common::{
    Finished, Lab, Proc, Side, handshakes, must_output, output, reconnect, start_s_server,
    start_tlsmon,
};
use serde_json::Value;

const PORT: u16 = common::TLS_PORT;
/// Lets the last packets' events reach userspace before stopping tlsmon.
const DRAIN_TIME: Duration = Duration::from_millis(500);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// Starts tlsmon headless on the client's veth; it is attached on return.
fn start(lab: &mut Lab) -> Proc {
    // --duration is only a backstop: the tests stop it with SIGINT.
    start_tlsmon(
        lab,
        "tlsmon",
        &["--headless", "--interval", "1", "--duration", "120"],
    )
}

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
    let _server = start_s_server(&mut lab, "s_server", &cert, &key);
    let tlsmon = start(&mut lab);

    let server = format!("{}:{PORT}", lab.ip(Side::Server));
    let (client, new, reused) = reconnect(&mut lab);
    let lines = stop_tlsmon(&mut lab, &tlsmon);
    let context = format!(
        "{}\n{}",
        output(&tlsmon),
        client_output("s_client", &client)
    );
    assert!(client.status.success(), "s_client failed\n{context}");

    // openssl's -reconnect: one full handshake, then five resumptions of it.
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
    let first_server = start_s_server(&mut lab, "s_server-1", &cert, &key);
    let tlsmon = start(&mut lab);

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
    let _second_server = start_s_server(&mut lab, "s_server-2", &cert, &key);
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
    let saved = must_output(xtask::programs::command("openssl").args([
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
