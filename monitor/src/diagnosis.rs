//! Plain-language diagnoses: rules over one server's counters.
//!
//! Each rule has its thresholds as named constants and says what it saw
//! with the exact counts, so an operator can check the claim against the
//! table. docs/dashboard.md lists the rules.

use crate::{
    columns::percent,
    stats::{Role, ServerStats},
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
    /// Stable rule name (docs/dashboard.md).
    pub rule: &'static str,
    pub severity: Severity,
    pub text: String,
}

/// Rejection rules need at least this many offers to speak.
pub const MIN_OFFERS: u64 = 10;
/// Offers are "mostly rejected" from this share of rejections on (%).
pub const MOSTLY_REJECTED_PCT: u64 = 50;
/// One origin (unclean or clean close) explains the rejections from this
/// share of them on (%).
pub const ORIGIN_DOMINANT_PCT: u64 = 50;
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
/// ...and at least this many TLS ≤ 1.2 closes seen...
pub const MIN_CLOSES: u64 = 10;
/// ...of which this share or more were unclean (%).
pub const UNCLEAN_CLOSES_PCT: u64 = 50;

pub const RULE_UNCLEAN_REJECTIONS: &str = "rejected-after-unclean-close";
pub const RULE_CLEAN_REJECTIONS: &str = "rejected-after-clean-close";
pub const RULE_UNKNOWN_REJECTIONS: &str = "rejected-origin-unseen";
pub const RULE_NO_OFFERS: &str = "no-resumption-offered";
pub const RULE_HRR: &str = "hello-retry-requests";
pub const RULE_FAILED: &str = "failed-handshakes";
pub const RULE_SESSION_ID_ONLY: &str = "session-id-only";

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

/// Every rule that fires for `s`, most severe first.
#[must_use]
pub fn diagnose(s: &ServerStats) -> Vec<Diagnosis> {
    let mut out = Vec::new();
    rejections(s, &mut out);
    no_offers(s, &mut out);
    hello_retries(s, &mut out);
    failures(s, &mut out);
    // Already broken is more than fragile: (f) only speaks without (a).
    if !out.iter().any(|d| d.rule == RULE_UNCLEAN_REJECTIONS) {
        session_id_only(s, &mut out);
    }
    // Stable: rules of equal severity keep the order above.
    out.sort_by_key(|d| std::cmp::Reverse(d.severity));
    out
}

/// Rules (a), (b) and their fallback: offers mostly rejected, by where the
/// rejected sessions came from.
fn rejections(s: &ServerStats, out: &mut Vec<Diagnosis>) {
    if s.offered < MIN_OFFERS || !at_least(s.rejected, s.offered, MOSTLY_REJECTED_PCT) {
        return;
    }
    let head = format!(
        "{}% of {} offered sessions were rejected ({}).",
        pct(s.rejected, s.offered),
        s.offered,
        s.rejected
    );
    let share = |n: u64| {
        if n == s.rejected {
            format!("All {n} rejected sessions")
        } else {
            format!(
                "{n} of {} rejected sessions ({}%)",
                s.rejected,
                pct(n, s.rejected)
            )
        }
    };
    if at_least(s.rejected_after_unclean, s.rejected, ORIGIN_DOMINANT_PCT) {
        let text = match s.role {
            Role::Backend => format!(
                "{head} {} came from connections that ended without close_notify (this host \
                 reset {}): the backend drops a session on unclean shutdown, as OpenSSL does. \
                 Close backend connections cleanly or keep them alive (http-reuse), or enable \
                 session tickets on the backend.",
                share(s.rejected_after_unclean),
                plural(s.rst_by_client, "connection", "connections"),
            ),
            Role::Frontend | Role::Unknown => format!(
                "{head} {} came from connections that ended without close_notify (clients \
                 reset {}): this server drops a session on unclean shutdown, as OpenSSL does. \
                 Enable session tickets, which survive it.",
                share(s.rejected_after_unclean),
                plural(s.rst_by_client, "connection", "connections"),
            ),
        };
        out.push(Diagnosis {
            rule: RULE_UNCLEAN_REJECTIONS,
            severity: Severity::Critical,
            text,
        });
    } else if at_least(s.rejected_after_clean, s.rejected, ORIGIN_DOMINANT_PCT) {
        out.push(Diagnosis {
            rule: RULE_CLEAN_REJECTIONS,
            severity: Severity::Critical,
            text: format!(
                "{head} {} came from connections closed cleanly: the server forgets sessions. \
                 Its session cache is too small or too short-lived, it restarted, its workers \
                 do not share the cache, or its ticket keys rotate (or differ between \
                 instances).",
                share(s.rejected_after_clean)
            ),
        });
    } else {
        out.push(Diagnosis {
            rule: RULE_UNKNOWN_REJECTIONS,
            severity: Severity::Warning,
            text: format!(
                "{head} tlsmon did not see the connections that created {} of them (they \
                 started earlier, or TLS 1.3 hides the ticket), so the cause is not known yet.",
                s.rejected_origin_unknown
            ),
        });
    }
}

/// Rule (c): this proxy never offers a session to a busy backend.
fn no_offers(s: &ServerStats, out: &mut Vec<Diagnosis>) {
    if s.role != Role::Backend || s.offered > 0 || s.full < NO_OFFER_MIN_FULL {
        return;
    }
    out.push(Diagnosis {
        rule: RULE_NO_OFFERS,
        severity: Severity::Warning,
        text: format!(
            "{} full handshakes and not one resumption offered: this proxy does not keep \
             sessions for this backend (HAProxy: look for `no-ssl-reuse` on the server or in \
             default-server; `ssl-reuse` is the default).",
            s.full
        ),
    });
}

/// Rule (d): many `HelloRetryRequest`s.
fn hello_retries(s: &ServerStats, out: &mut Vec<Diagnosis>) {
    let hs = s.handshakes();
    if hs < MIN_HANDSHAKES || !at_least(s.hrr, hs, HRR_PCT) {
        return;
    }
    out.push(Diagnosis {
        rule: RULE_HRR,
        severity: Severity::Warning,
        text: format!(
            "{} HelloRetryRequests for {hs} handshakes ({}%): the client's key_share does not \
             include a group the server accepts, costing a round trip each. Offer the server's \
             preferred group (e.g. X25519) first.",
            s.hrr,
            pct(s.hrr, hs)
        ),
    });
}

/// Rule (e): handshakes that failed (alert, RST) or never finished.
fn failures(s: &ServerStats, out: &mut Vec<Diagnosis>) {
    let bad = s.failed + s.incomplete;
    let attempts = s.handshakes() + bad;
    if attempts < MIN_HANDSHAKES || !at_least(bad, attempts, FAILED_PCT) {
        return;
    }
    out.push(Diagnosis {
        rule: RULE_FAILED,
        severity: Severity::Warning,
        text: format!(
            "{bad} of {attempts} handshakes did not complete ({}%: {} failed with an alert or \
             reset, {} got no answer): check certificates, versions and ciphers on both sides, \
             and timeouts.",
            pct(bad, attempts),
            s.failed,
            s.incomplete
        ),
    });
}

/// Rule (f): resumption works, but only by session ID while most
/// connections end uncleanly: fragile.
fn session_id_only(s: &ServerStats, out: &mut Vec<Diagnosis>) {
    let closes = s.clean_closes + s.unclean_closes;
    if s.resumed < MIN_RESUMED
        || s.resumed_by.session_id != s.resumed
        || closes < MIN_CLOSES
        || !at_least(s.unclean_closes, closes, UNCLEAN_CLOSES_PCT)
    {
        return;
    }
    out.push(Diagnosis {
        rule: RULE_SESSION_ID_ONLY,
        severity: Severity::Info,
        text: format!(
            "All {} resumptions use session IDs and {} of {closes} connections ({}%) ended \
             without close_notify: an OpenSSL-based server would drop these sessions. Prefer \
             session tickets or clean closes.",
            s.resumed,
            s.unclean_closes,
            pct(s.unclean_closes, closes)
        ),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim;

    fn backend() -> ServerStats {
        sim::blank_stats(Role::Backend)
    }

    fn rules(s: &ServerStats) -> Vec<&'static str> {
        diagnose(s).iter().map(|d| d.rule).collect()
    }

    /// The motivating case: `HAProxy` resets backend connections, the
    /// `OpenSSL` backend drops every session.
    fn haproxy_rst() -> ServerStats {
        let mut s = backend();
        s.full = 100;
        s.resumed = 6;
        s.resumed_by.session_id = 6;
        s.offered = 100;
        s.offered_by.session_id = 100;
        s.rejected = 94;
        s.rejected_after_unclean = 94;
        s.rst_by_client = 106;
        s.unclean_closes = 100;
        s.clean_closes = 6;
        s
    }

    #[test]
    fn unclean_rejections_fire_with_exact_numbers() {
        let d = diagnose(&haproxy_rst());
        assert_eq!(d[0].rule, RULE_UNCLEAN_REJECTIONS);
        assert_eq!(d[0].severity, Severity::Critical);
        assert!(
            d[0].text
                .starts_with("94% of 100 offered sessions were rejected (94)."),
            "{}",
            d[0].text
        );
        assert!(
            d[0].text.contains("All 94 rejected sessions"),
            "{}",
            d[0].text
        );
        assert!(d[0].text.contains("reset 106 connections"), "{}", d[0].text);
        assert!(d[0].text.contains("http-reuse"), "{}", d[0].text);
        // Partly unclean, but still the majority.
        let mut s = haproxy_rst();
        s.rejected_after_unclean = 50;
        s.rejected_after_clean = 44;
        let d = diagnose(&s);
        assert_eq!(d[0].rule, RULE_UNCLEAN_REJECTIONS);
        assert!(
            d[0].text.contains("50 of 94 rejected sessions (53%)"),
            "{}",
            d[0].text
        );
    }

    #[test]
    fn unclean_rejections_need_enough_offers_mostly_rejected_and_unclean_origin() {
        let mut s = haproxy_rst();
        s.offered = MIN_OFFERS - 1;
        s.rejected = MIN_OFFERS - 1;
        s.rejected_after_unclean = MIN_OFFERS - 1;
        assert!(!rules(&s).contains(&RULE_UNCLEAN_REJECTIONS));

        let mut s = haproxy_rst();
        s.rejected = 49; // 49 % of 100: not mostly rejected
        s.rejected_after_unclean = 49;
        assert!(rules(&s).is_empty(), "{:?}", rules(&s));
        s.rejected = 50; // exactly the threshold
        s.rejected_after_unclean = 50;
        assert_eq!(rules(&s), [RULE_UNCLEAN_REJECTIONS]);

        let mut s = haproxy_rst();
        s.rejected_after_unclean = 40;
        s.rejected_origin_unknown = 54;
        assert!(!rules(&s).contains(&RULE_UNCLEAN_REJECTIONS));
        assert!(rules(&s).contains(&RULE_UNKNOWN_REJECTIONS));
    }

    #[test]
    fn clean_rejections_point_at_the_server_cache() {
        let mut s = haproxy_rst();
        s.rejected_after_unclean = 4;
        s.rejected_after_clean = 90;
        let d = diagnose(&s);
        assert_eq!(d[0].rule, RULE_CLEAN_REJECTIONS);
        assert!(
            d[0].text.contains("90 of 94 rejected sessions (95%)"),
            "{}",
            d[0].text
        );
        assert!(d[0].text.contains("cache"), "{}", d[0].text);
        assert!(d[0].text.contains("ticket keys"), "{}", d[0].text);
        // Mostly resumed: nothing to say.
        s.rejected = 10;
        s.rejected_after_clean = 10;
        s.rejected_after_unclean = 0;
        assert!(!rules(&s).contains(&RULE_CLEAN_REJECTIONS));
    }

    #[test]
    fn frontend_unclean_rejections_are_worded_for_clients() {
        let mut s = haproxy_rst();
        s.role = Role::Frontend;
        let d = diagnose(&s);
        assert_eq!(d[0].rule, RULE_UNCLEAN_REJECTIONS);
        assert!(d[0].text.contains("clients reset"), "{}", d[0].text);
    }

    #[test]
    fn no_offers_fires_only_for_busy_backends() {
        let mut s = backend();
        s.full = NO_OFFER_MIN_FULL;
        assert_eq!(rules(&s), [RULE_NO_OFFERS]);
        assert!(diagnose(&s)[0].text.starts_with("20 full handshakes"));
        assert!(diagnose(&s)[0].text.contains("no-ssl-reuse"));
        s.full = NO_OFFER_MIN_FULL - 1;
        assert!(rules(&s).is_empty());
        s.full = 500;
        s.offered = 1;
        assert!(rules(&s).is_empty());
        let mut f = sim::blank_stats(Role::Frontend);
        f.full = 500;
        assert!(
            rules(&f).is_empty(),
            "clients not offering is not this host's doing"
        );
    }

    #[test]
    fn hrr_rule() {
        let mut s = backend();
        s.full = 4;
        s.resumed = 16;
        s.offered = 16;
        s.hrr = 4; // 20 % of 20
        let d = diagnose(&s);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].rule, RULE_HRR);
        assert!(
            d[0].text
                .starts_with("4 HelloRetryRequests for 20 handshakes (20%)"),
            "{}",
            d[0].text
        );
        s.hrr = 3;
        assert!(rules(&s).is_empty());
        // Too few handshakes to tell.
        s.full = 1;
        s.resumed = 2;
        s.hrr = 3;
        assert!(rules(&s).is_empty());
    }

    #[test]
    fn failed_rule() {
        let mut s = backend();
        s.full = 5;
        s.resumed = 85;
        s.offered = 85;
        s.failed = 6;
        s.incomplete = 4; // 10 of 100
        let d = diagnose(&s);
        assert_eq!(rules(&s), [RULE_FAILED]);
        assert!(
            d[0].text
                .starts_with("10 of 100 handshakes did not complete (10%: 6 failed"),
            "{}",
            d[0].text
        );
        s.failed = 5; // 9 of 99
        assert!(rules(&s).is_empty());
        let mut few = backend();
        few.failed = 9;
        assert!(rules(&few).is_empty());
    }

    #[test]
    fn session_id_only_rule() {
        let mut s = backend();
        s.full = 5;
        s.resumed = 95;
        s.resumed_by.session_id = 95;
        s.offered = 95;
        s.offered_by.session_id = 95;
        s.unclean_closes = 60;
        s.clean_closes = 40;
        let d = diagnose(&s);
        assert_eq!(rules(&s), [RULE_SESSION_ID_ONLY]);
        assert_eq!(d[0].severity, Severity::Info);
        assert!(
            d[0].text
                .contains("All 95 resumptions use session IDs and 60 of 100 connections (60%)"),
            "{}",
            d[0].text
        );
        // One ticket resumption: not session-ID only.
        s.resumed_by.session_id = 94;
        s.resumed_by.ticket = 1;
        assert!(rules(&s).is_empty());
        s.resumed_by.session_id = 95;
        s.resumed_by.ticket = 0;
        s.unclean_closes = 40;
        s.clean_closes = 60;
        assert!(rules(&s).is_empty());
    }

    #[test]
    fn session_id_only_is_left_out_when_resumption_already_breaks() {
        let mut s = haproxy_rst();
        s.resumed = 40;
        s.resumed_by.session_id = 40;
        assert_eq!(rules(&s), [RULE_UNCLEAN_REJECTIONS]);
        s.rejected = 40; // 40 % rejected: (a) is silent, (f) speaks
        s.rejected_after_unclean = 40;
        assert_eq!(rules(&s), [RULE_SESSION_ID_ONLY]);
    }

    #[test]
    fn most_severe_first() {
        let mut s = haproxy_rst();
        s.hrr = 50;
        let d = diagnose(&s);
        assert_eq!(
            d.iter().map(|d| d.rule).collect::<Vec<_>>(),
            [RULE_UNCLEAN_REJECTIONS, RULE_HRR]
        );
    }

    #[test]
    fn percentages_round_down() {
        assert_eq!(pct(999, 1000), 99);
        assert_eq!(pct(1000, 1000), 100);
        assert_eq!(pct(1, 0), 0);
        assert!(at_least(1, 2, 50));
        assert!(!at_least(49, 100, 50));
    }
}
