//! Plain-language diagnoses: rules over one server's counters, each saying
//! what it saw with the exact numbers and what to change.
//!
//! * [`counts`]: the numbers the rules read, and their difference over a
//!   window;
//! * [`rejections`]: why offered sessions were rejected, one rule per cause;
//! * [`rules`]: the other rules (no offers, HelloRetryRequests, failures,
//!   session-ID-only resumption);
//! * [`window`]: judging over the last minutes, so that a fixed
//!   configuration clears its diagnosis, and what changed for the
//!   headless output and the metrics.
//!
//! Each rule has its thresholds as named constants; [`RULES`] is the one
//! table of rules that docs/dashboard.md is checked against.

pub mod counts;
mod rejections;
mod rules;
pub mod window;

use std::fmt::Write as _;

pub use self::{
    counts::Counts,
    rejections::dominant,
    window::{Change, ChangeKind, Diagnoses, Shown},
};
use crate::{
    columns::percent,
    stats::{Cause, Role},
};

/// How urgent a diagnosis is; ordered, most urgent last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth knowing; not costing anything yet.
    Info,
    /// Costs CPU or latency.
    Warning,
    /// Resumption is broken for this server.
    Critical,
}

impl Severity {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnosis {
    /// Stable rule name (docs/dashboard.md, the `rule` label of
    /// `tlsmon_diagnosis`).
    pub rule: &'static str,
    pub severity: Severity,
    pub text: String,
}

/// Rejection rules need at least this many offers to speak.
pub const MIN_OFFERS: u64 = 10;
/// Offers are "mostly rejected" from this share of rejections on (%).
pub const MOSTLY_REJECTED_PCT: u64 = 50;
/// One cause explains the rejections from this share of them on (%), if
/// no other cause has as many.
pub const CAUSE_DOMINANT_PCT: u64 = 50;
/// The unclean holders were health checks when at least this share (%) of
/// the rejections after an unclean close had a holder without data.
pub const WITHOUT_DATA_PCT: u64 = 50;
/// Backends with at least this many full handshakes and not one offer.
pub const NO_OFFER_MIN_FULL: u64 = 20;
/// Ratio rules (HRR, failures) need this many handshakes.
pub const MIN_HANDSHAKES: u64 = 10;
/// `HelloRetryRequest`s from this share of completed handshakes on (%).
pub const HRR_PCT: u64 = 20;
/// Failed plus incomplete from this share of attempts on (%).
pub const FAILED_PCT: u64 = 10;
/// Session-ID-only resumption: at least this many resumptions...
pub const MIN_RESUMED: u64 = 10;
/// ...and at least this many closes whose style was told...
pub const MIN_CLOSES: u64 = 10;
/// ...of which this share or more were unclean (%).
pub const UNCLEAN_CLOSES_PCT: u64 = 50;

pub const RULE_UNCLEAN_REJECTIONS: &str = "rejected-after-unclean-close";
pub const RULE_CLEAN_REJECTIONS: &str = "rejected-after-clean-close";
pub const RULE_EXPIRED: &str = "rejected-expired";
pub const RULE_RESTART: &str = "rejected-after-restart";
pub const RULE_NO_CACHE: &str = "rejected-no-cache";
pub const RULE_TICKET_KEYS: &str = "rejected-ticket-keys";
pub const RULE_UNKNOWN_REJECTIONS: &str = "rejected-cause-unknown";
pub const RULE_NO_OFFERS: &str = "no-resumption-offered";
pub const RULE_HRR: &str = "hello-retry-requests";
pub const RULE_FAILED: &str = "failed-handshakes";
pub const RULE_SESSION_ID_ONLY: &str = "session-id-only";

/// One rule, as docs/dashboard.md lists it.
pub struct Rule {
    pub name: &'static str,
    pub severity: Severity,
    pub fires_when: &'static str,
    pub fix: &'static str,
}

/// Every rule, in the order [`diagnose`] runs them.
pub const RULES: &[Rule] = &[
    Rule {
        name: RULE_UNCLEAN_REJECTIONS,
        severity: Severity::Critical,
        fires_when: "offers mostly rejected, most of them `after_unclean`: the session's connection ended without close_notify",
        fix: "proxy: no `option nolinger`, keep backend connections (`http-reuse`); health checks without SSL (`no-check-ssl`, or a `port` of their own) when the holders carried no data; backend: stateless tickets, or mark connections shut down (SSL_shutdown / SSL_set_shutdown) before SSL_free",
    },
    Rule {
        name: RULE_CLEAN_REJECTIONS,
        severity: Severity::Critical,
        fires_when: "offers mostly rejected, most of them `after_clean`",
        fix: "the server's cache: its size (nginx `ssl_session_cache shared:NAME:SIZE`, HAProxy `tune.ssl.cachesize`), shared by its workers (nginx `shared`, not `builtin`), one server per address",
    },
    Rule {
        name: RULE_EXPIRED,
        severity: Severity::Warning,
        fires_when: "offers mostly rejected, most of them `expired`",
        fix: "a longer session lifetime: nginx `ssl_session_timeout`, HAProxy `tune.ssl.lifetime`, OpenSSL `SSL_CTX_set_timeout`",
    },
    Rule {
        name: RULE_RESTART,
        severity: Severity::Warning,
        fires_when: "offers mostly rejected, most of them `server_restart`",
        fix: "clears by itself; if it recurs, what restarts the server, or TLS ≤ 1.2 tickets with keys kept across restarts (nginx `ssl_session_ticket_key`, HAProxy `tls-ticket-keys`)",
    },
    Rule {
        name: RULE_NO_CACHE,
        severity: Severity::Critical,
        fires_when: "offers mostly rejected, most of them `no_cache`",
        fix: "a session cache on the server (nginx `ssl_session_cache shared:SSL:10m`; its default `none` stores nothing) or tickets (`ssl_session_tickets`)",
    },
    Rule {
        name: RULE_TICKET_KEYS,
        severity: Severity::Critical,
        fires_when: "offers mostly rejected, most of them `ticket_rejected`",
        fix: "keep the previous ticket key for decryption when rotating (nginx: the new `ssl_session_ticket_key` first, the old one after it; HAProxy: append to the `tls-ticket-keys` file), the same keys on every instance behind one address",
    },
    Rule {
        name: RULE_UNKNOWN_REJECTIONS,
        severity: Severity::Warning,
        fires_when: "offers mostly rejected, and `unknown` is the most common cause or no cause has most of them",
        fix: "none yet: the numbers by cause, and what tlsmon could not see",
    },
    Rule {
        name: RULE_NO_OFFERS,
        severity: Severity::Warning,
        fires_when: "a backend with at least `NO_OFFER_MIN_FULL` = 20 full handshakes and no offer",
        fix: "HAProxy: no `no-ssl-reuse` on the server or in `default-server`; a server that hands out no session (nginx `ssl_session_cache off` with `ssl_session_tickets off`)",
    },
    Rule {
        name: RULE_HRR,
        severity: Severity::Warning,
        fires_when: "at least `MIN_HANDSHAKES` = 10 handshakes and HelloRetryRequests ≥ `HRR_PCT` = 20 % of them",
        fix: "offer the server's preferred group (e.g. X25519) first",
    },
    Rule {
        name: RULE_FAILED,
        severity: Severity::Warning,
        fires_when: "at least 10 attempts (completed + failed + incomplete) and failed + incomplete ≥ `FAILED_PCT` = 10 % of them",
        fix: "certificates, versions and ciphers on both sides, and timeouts",
    },
    Rule {
        name: RULE_SESSION_ID_ONLY,
        severity: Severity::Info,
        fires_when: "at least `MIN_RESUMED` = 10 resumptions, all by session ID, at least `MIN_CLOSES` = 10 closes told clean or unclean and ≥ `UNCLEAN_CLOSES_PCT` = 50 % of them unclean; left out while `rejected-after-unclean-close` holds",
        fix: "session tickets or clean closes",
    },
];

/// The rule table as the Markdown of docs/dashboard.md.
#[must_use]
pub fn markdown() -> String {
    let mut out =
        String::from("| rule | severity | fires when | what to change |\n|---|---|---|---|\n");
    for r in RULES {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            r.name,
            r.severity.as_str(),
            r.fires_when,
            r.fix
        );
    }
    out
}

/// A cause as the views name it where space is short (the server table's
/// `cause` column, the detail pane).
#[must_use]
pub const fn short_name(c: Cause) -> &'static str {
    match c {
        Cause::AfterUnclean => "unclean",
        Cause::AfterClean => "clean",
        Cause::Expired => "expired",
        Cause::ServerRestart => "restart",
        Cause::NoCache => "no cache",
        Cause::TicketRejected => "ticket",
        Cause::Unknown => "unknown",
    }
}

/// The groups of rules, each judged on its own: one diagnosis at most per
/// group, and a group without enough evidence in a window keeps what it
/// said before ([`window`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Why offers are rejected: one rule per cause.
    Rejections,
    NoOffers,
    HelloRetries,
    Failures,
    SessionIdOnly,
}

impl Check {
    pub const ALL: [Self; 5] = [
        Self::Rejections,
        Self::NoOffers,
        Self::HelloRetries,
        Self::Failures,
        Self::SessionIdOnly,
    ];
}

/// What a check concludes from some counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Too little traffic to say either way.
    Undecided,
    /// Enough traffic, and nothing wrong.
    Clear,
    Fires(Diagnosis),
}

impl Check {
    /// The verdict on `c`. `unclean_holds` tells [`Check::SessionIdOnly`]
    /// that `rejected-after-unclean-close` holds: already broken is more
    /// than fragile.
    #[must_use]
    pub fn judge(self, role: Role, c: &Counts, unclean_holds: bool) -> Verdict {
        match self {
            Self::Rejections => rejections::judge(role, c),
            Self::NoOffers => rules::no_offers(role, c),
            Self::HelloRetries => rules::hello_retries(c),
            Self::Failures => rules::failures(c),
            Self::SessionIdOnly if unclean_holds => Verdict::Clear,
            Self::SessionIdOnly => rules::session_id_only(c),
        }
    }
}

/// Every rule that fires for `c` (a server's counters over some span),
/// most severe first.
#[must_use]
pub fn diagnose(role: Role, c: &Counts) -> Vec<Diagnosis> {
    let mut out: Vec<Diagnosis> = Vec::new();
    for check in Check::ALL {
        let unclean = out.iter().any(|d| d.rule == RULE_UNCLEAN_REJECTIONS);
        if let Verdict::Fires(d) = check.judge(role, c, unclean) {
            out.push(d);
        }
    }
    sort(&mut out);
    out
}

/// Most severe first; rules of equal severity keep [`RULES`]' order.
pub fn sort(found: &mut [Diagnosis]) {
    found.sort_by_key(|d| std::cmp::Reverse(d.severity));
}

/// Whole percent of `n` in `d`, rounded down so that 100 % means all.
fn pct(n: u64, d: u64) -> u64 {
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a percentage between 0 and 100, floored"
    )]
    percent(n, d).map_or(0, |p| p.floor() as u64)
}

/// `n * 100 >= d * threshold`, without rounding.
fn at_least(n: u64, d: u64, threshold_pct: u64) -> bool {
    u128::from(n) * 100 >= u128::from(d) * u128::from(threshold_pct)
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests;
