//! The oracle with `HAProxy` 2.6's SSL health checks (`checks`: `check` on
//! every `ssl` server line, HTTP mode with `option http-server-close`). A
//! check resumes the session the traffic uses and ends with a RST, no
//! `close_notify`; the traffic closes cleanly. The checks are the backend
//! connections `HAProxy` did not log.

mod lab_oracle;

use lab_oracle::{Run, every_rejection_is, no_rejection, run};
use xtask::lab::{
    BACKENDS, Cause,
    oracle::{Close, Kind, Record},
};

/// Checks ran against every backend, and the traffic closed cleanly.
fn checks_ran(run: &Run) -> Vec<String> {
    let mut found = Vec::new();
    for backend in BACKENDS {
        let records = run.backend(backend.name);
        let checks: Vec<&&Record> = records.iter().filter(|r| r.is_check()).collect();
        if checks.is_empty() {
            found.push(format!("{}: no health checks seen", backend.name));
        }
        if run.decryptable(backend.name) {
            for check in checks.iter().filter(|r| r.decrypted) {
                if check.close.client != Close::Unclean || check.app_records.client != 0 {
                    found.push(format!(
                        "{} check {}: close {:?}, {} records of data",
                        backend.name, check.client, check.close.client, check.app_records.client
                    ));
                }
            }
            for traffic in records.iter().filter(|r| !r.is_check()) {
                if traffic.close.client != Close::Clean {
                    found.push(format!(
                        "{} {}: the traffic's close was {:?}",
                        backend.name, traffic.client, traffic.close.client
                    ));
                }
            }
        }
    }
    found
}

/// TLS 1.2: the Python backend rejects the sessions whose last holder was
/// a health check (no data, ended with a RST), even though the traffic
/// connection that established each closed cleanly.
fn checks_tls12(run: &Run) -> Vec<String> {
    let mut found = checks_ran(run);
    found.extend(every_rejection_is(run, "python", Cause::AfterUnclean));
    let python = run.backend("python");
    for record in &python {
        let Some(offer) = &record.offered else {
            continue;
        };
        if offer.accepted {
            continue;
        }
        match offer.last_holder {
            Some(h) if h.client_app_records == 0 && h.close.client == Close::Unclean => {}
            other => found.push(format!(
                "python {}: rejected, but its last holder was no check: {other:?}",
                record.client
            )),
        }
    }
    for name in ["s_server", "nginx"] {
        found.extend(no_rejection(run, name));
    }
    found
}

/// TLS 1.3: the checks share the traffic's tickets too, but a resumed
/// connection holds a copy of the session, so their RSTs cost nothing:
/// no rejections (measured; docs/proxy-lab.md).
fn checks_tls13(run: &Run) -> Vec<String> {
    let mut found = checks_ran(run);
    for backend in BACKENDS {
        found.extend(no_rejection(run, backend.name));
    }
    let python = run.backend("python");
    let shared = python.iter().filter(|r| r.is_check()).any(|check| {
        check.kind == Kind::Resumed
            && check.offered.as_ref().is_some_and(|offer| {
                offer.issued_by.is_some_and(|issuer| {
                    python
                        .iter()
                        .any(|t| !t.is_check() && t.client == issuer.client)
                })
            })
    });
    if !shared {
        found.push("python: no check resumed a ticket the traffic received".to_owned());
    }
    found
}

#[test]
fn health_checks_tls12() {
    run("checks", checks_tls12);
}

#[test]
fn health_checks_tls13() {
    run("checks+tls13", checks_tls13);
}
