//! The oracle in the scenarios where the server's state, not the proxy's
//! closes, decides (`docs/proxy-lab.md`): a session timeout shorter than
//! the pauses in the load (`expired`), backends restarted during the load
//! (`server_restart`), servers that keep no sessions (`no_cache`), and
//! nginx's ticket keys replaced during the load (`ticket_rejected`). The
//! closes are clean in all of them.

mod lab_oracle;

use lab_oracle::{Run, every_rejection_is, no_rejection, run};
use xtask::lab::{
    Cause, Scenario,
    oracle::{Kind, Method, history::AGE_GRANULARITY},
};

/// Rejected offers at nginx (TLS 1.3: no keys, so the issuer and age are
/// unknown and the cause too) may be `unknown`; no other cause.
fn rejections_at_nginx(run: &Run, cause: Cause) -> Vec<String> {
    if run.decryptable("nginx") {
        return every_rejection_is(run, "nginx", cause);
    }
    let summary = run.summary("nginx");
    let mut found = Vec::new();
    if summary.rejected_total() == 0 {
        found.push("nginx: no rejected offer".to_owned());
    }
    for other in summary.rejected.keys() {
        if *other != cause && *other != Cause::Unknown {
            found.push(format!("nginx: cause {}", other.name()));
        }
    }
    found
}

/// Every rejected offer is older than the timeout, every accepted one
/// younger (within OpenSSL's one-second granularity).
fn expired(run: &Run) -> Vec<String> {
    let timeout = Scenario::SHORT_SESSION_TIMEOUT.as_secs_f64();
    let mut found = every_rejection_is(run, "python", Cause::Expired);
    found.extend(rejections_at_nginx(run, Cause::Expired));
    found.extend(no_rejection(run, "s_server"));
    for name in ["python", "nginx"] {
        for record in run.backend(name) {
            let Some(offer) = &record.offered else {
                continue;
            };
            let Some(age) = offer.age else {
                continue;
            };
            let fits = if offer.accepted {
                age < timeout + AGE_GRANULARITY
            } else {
                age > timeout
            };
            if !fits {
                found.push(format!(
                    "{name} {}: accepted={} at age {age:.2} s (timeout {timeout} s)",
                    record.client, offer.accepted
                ));
            }
        }
    }
    found
}

/// Every offer issued before a restart and made after it was rejected,
/// every other one accepted.
fn server_restart(run: &Run) -> Vec<String> {
    let mut found = Vec::new();
    for name in ["s_server", "python"] {
        found.extend(every_rejection_is(run, name, Cause::ServerRestart));
        let restarts = run.driven.times("restart", name);
        for record in run.backend(name) {
            let Some(offer) = &record.offered else {
                continue;
            };
            let Some(issued) = offer.issued_at else {
                found.push(format!("{name} {}: issuer not found", record.client));
                continue;
            };
            let across = restarts.iter().any(|t| issued < *t && *t < record.start);
            if across == offer.accepted {
                found.push(format!(
                    "{name} {}: accepted={} for a session issued {} the restart",
                    record.client,
                    offer.accepted,
                    if across { "before" } else { "after" }
                ));
            }
        }
    }
    found.extend(no_rejection(run, "nginx"));
    found
}

/// TLS 1.2: nginx (`ssl_session_cache none`) rejects every offer;
/// `s_server -no_cache` sends an empty session ID, so nothing is offered.
/// TLS 1.3: both issue tickets they do not keep and reject every offer.
/// The Python backend, with its cache, resumes.
fn no_cache(run: &Run) -> Vec<String> {
    let mut found = every_rejection_is(run, "nginx", Cause::NoCache);
    if run.scenario.backend_tls13 {
        found.extend(every_rejection_is(run, "s_server", Cause::NoCache));
    } else {
        let s_server = run.summary("s_server");
        if s_server.offers != 0 || s_server.resumed != 0 {
            found.push(format!(
                "s_server -no_cache: {} offers, {} resumed; expected none",
                s_server.offers, s_server.resumed
            ));
        }
    }
    for name in ["s_server", "nginx"] {
        let summary = run.summary(name);
        if summary.accepted > 0 || summary.resumed > 0 {
            found.push(format!("{name} resumed {} connections", summary.resumed));
        }
    }
    found.extend(no_rejection(run, "python"));
    found
}

/// Every ticket issued before a key change and offered after it is
/// rejected; every other ticket accepted.
fn ticket_rejected(run: &Run) -> Vec<String> {
    let mut found = every_rejection_is(run, "nginx", Cause::TicketRejected);
    let changes = run.driven.times("ticket_key_change", "nginx");
    for record in run.backend("nginx") {
        let Some(offer) = &record.offered else {
            continue;
        };
        if offer.method != Method::Ticket {
            found.push(format!(
                "nginx {}: offered a {:?}",
                record.client, offer.method
            ));
        }
        let issued = offer.issued_at.unwrap_or(f64::NAN);
        let across = changes.iter().any(|t| issued < *t && *t < record.start);
        if across != (record.kind == Kind::Full) {
            found.push(format!(
                "nginx {}: {:?} for a ticket issued {} a key change",
                record.client,
                record.kind,
                if across { "before" } else { "after" }
            ));
        }
    }
    for name in ["s_server", "python"] {
        found.extend(no_rejection(run, name));
    }
    found
}

#[test]
fn expired_tls12() {
    run("expired", expired);
}

#[test]
fn expired_tls13() {
    run("expired+tls13", expired);
}

#[test]
fn server_restart_tls12() {
    run("server_restart", server_restart);
}

#[test]
fn server_restart_tls13() {
    run("server_restart+tls13", server_restart);
}

#[test]
fn no_cache_tls12() {
    run("no_cache", no_cache);
}

#[test]
fn no_cache_tls13() {
    run("no_cache+tls13", no_cache);
}

#[test]
fn ticket_rejected_tls12() {
    run("ticket_rejected", ticket_rejected);
}
