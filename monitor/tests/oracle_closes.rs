//! The oracle in the scenarios about closes (`docs/proxy-lab.md`): TCP mode
//! with `option nolinger` (`unclean`: `HAProxy` resets its backend
//! connections without `close_notify`, the Python backend drops every
//! session), the same without it (`clean`) and HTTP mode (`http`), each in
//! TLS 1.2 and 1.3. The oracle must agree with `HAProxy`'s and the Python
//! backend's logs connection by connection, and find what the scenario
//! exists for: every rejected offer after an unclean close by the proxy,
//! or none at all.

mod lab_oracle;

use lab_oracle::{Run, every_rejection_is, no_rejection, run};
use xtask::lab::{
    Cause,
    oracle::{Close, Role},
};

/// Every rejected offer at the Python backend follows a last holder that
/// `HAProxy` ended without `close_notify`; `s_server` and nginx keep their
/// sessions.
fn unclean(run: &Run) -> Vec<String> {
    let mut found = every_rejection_is(run, "python", Cause::AfterUnclean);
    let python = run.summary("python");
    if python.accepted > 0 {
        found.push(format!("python accepted {} offers", python.accepted));
    }
    for record in run.backend("python") {
        if let Some(offer) = &record.offered
            && offer
                .last_holder
                .is_none_or(|h| h.close.client != Close::Unclean)
        {
            found.push(format!(
                "python {}: the offer's last holder did not end unclean: {:?}",
                record.client, offer.last_holder
            ));
        }
    }
    for name in ["s_server", "nginx"] {
        found.extend(no_rejection(run, name));
    }
    found
}

/// No offer rejected anywhere, no `after_unclean`, and the proxy's side
/// of every backend connection the oracle could read ended with
/// `close_notify`.
fn clean(run: &Run) -> Vec<String> {
    let mut found = Vec::new();
    for name in ["s_server", "nginx", "python"] {
        found.extend(no_rejection(run, name));
        if run.summary(name).offers == 0 {
            found.push(format!("{name}: no offers at all"));
        }
    }
    for record in run.records.iter().filter(|r| r.role == Role::Backend) {
        if record.close.client == Close::Unclean {
            found.push(format!(
                "{} {}: HAProxy ended it without close_notify",
                record.name, record.client
            ));
        }
    }
    found
}

#[test]
fn unclean_tls12() {
    run("unclean", unclean);
}

#[test]
fn unclean_tls13() {
    run("unclean+tls13", unclean);
}

#[test]
fn clean_tls12() {
    run("clean", clean);
}

#[test]
fn clean_tls13() {
    run("clean+tls13", clean);
}

#[test]
fn http_mode_tls12() {
    run("http", clean);
}

#[test]
fn http_mode_tls13() {
    run("http+tls13", clean);
}
