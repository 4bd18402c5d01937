use super::*;
use crate::stats::{ByCause, Cause};

fn rules(role: Role, c: &Counts) -> Vec<&'static str> {
    diagnose(role, c).iter().map(|d| d.rule).collect()
}

fn backend(c: &Counts) -> Vec<&'static str> {
    rules(Role::Backend, c)
}

/// The motivating case: `HAProxy` resets backend connections, the
/// `OpenSSL` backend drops every session.
fn haproxy_rst() -> Counts {
    let mut c = Counts {
        full: 100,
        resumed: 6,
        offered: 100,
        rejected: 94,
        rst_by_client: 106,
        unclean_closes: 100,
        clean_closes: 6,
        ..Counts::default()
    };
    c.resumed_by.session_id = 6;
    c.rejected_by_cause.after_unclean = 94;
    c
}

/// 100 offers, 94 rejected by `cause`, 6 resumed.
fn rejected_by(cause: Cause) -> Counts {
    let mut c = haproxy_rst();
    c.rejected_by_cause = ByCause::default();
    c.rejected_by_cause.add(cause);
    let one = c.rejected_by_cause;
    for _ in 1..94 {
        c.rejected_by_cause.add(cause);
    }
    assert_eq!(one.get(cause), 1);
    c
}

fn text(role: Role, c: &Counts) -> String {
    diagnose(role, c)[0].text.clone()
}

#[test]
fn unclean_rejections_fire_with_exact_numbers_and_the_fix() {
    let d = diagnose(Role::Backend, &haproxy_rst());
    assert_eq!(d[0].rule, RULE_UNCLEAN_REJECTIONS);
    assert_eq!(d[0].severity, Severity::Critical);
    let t = &d[0].text;
    assert!(
        t.starts_with("94% of 100 offered sessions were rejected (94). All 94 rejections"),
        "{t}"
    );
    assert!(t.contains("this host reset 106 connections"), "{t}");
    for fix in [
        "`option nolinger`",
        "`http-reuse`",
        "SSL_shutdown",
        "tickets",
    ] {
        assert!(t.contains(fix), "{fix}: {t}");
    }
    assert!(!t.contains("health checks"), "{t}");
    // Partly unclean, but still the majority.
    let mut c = haproxy_rst();
    c.rejected_by_cause.after_unclean = 50;
    c.rejected_by_cause.after_clean = 44;
    let t = text(Role::Backend, &c);
    assert!(t.contains("50 of 94 rejections (53%)"), "{t}");
}

#[test]
fn unclean_holders_without_data_are_named_health_checks() {
    let mut c = haproxy_rst();
    c.after_unclean_without_data = 47; // half of 94
    let t = text(Role::Backend, &c);
    assert!(
        t.contains("47 of those 94 sessions were last held by short connections"),
        "{t}"
    );
    assert!(t.contains("`no-check-ssl`") && t.contains("`port`"), "{t}");
    // The nolinger advice is for traffic the proxy resets, not checks.
    assert!(!t.contains("nolinger"), "{t}");
    c.after_unclean_without_data = 46;
    let t = text(Role::Backend, &c);
    assert!(
        !t.contains("health checks") && t.contains("nolinger"),
        "{t}"
    );
}

#[test]
fn rejections_need_enough_offers_mostly_rejected_and_a_dominant_cause() {
    let mut c = haproxy_rst();
    c.offered = MIN_OFFERS - 1;
    c.rejected = MIN_OFFERS - 1;
    c.rejected_by_cause.after_unclean = MIN_OFFERS - 1;
    assert_eq!(
        rejections::judge(Role::Backend, &c),
        Verdict::Undecided,
        "too few offers to judge"
    );

    let mut c = haproxy_rst();
    c.rejected = 49; // 49 % of 100: not mostly rejected
    c.rejected_by_cause.after_unclean = 49;
    assert_eq!(rejections::judge(Role::Backend, &c), Verdict::Clear);
    c.rejected = 50; // exactly the threshold
    c.rejected_by_cause.after_unclean = 50;
    assert_eq!(backend(&c), [RULE_UNCLEAN_REJECTIONS]);

    // A tie is no dominant cause.
    let mut c = haproxy_rst();
    c.rejected_by_cause.after_unclean = 47;
    c.rejected_by_cause.after_clean = 47;
    assert_eq!(backend(&c), [RULE_UNKNOWN_REJECTIONS]);
    let t = text(Role::Backend, &c);
    assert!(
        t.ends_with(
            "No one cause explains most of them: after an unclean close 47, after a clean close 47."
        ),
        "{t}"
    );
    // Under half is no dominant cause either.
    let mut c = haproxy_rst();
    c.rejected_by_cause.after_unclean = 40;
    c.rejected_by_cause.unknown = 30;
    c.rejected_by_cause.expired = 24;
    assert_eq!(backend(&c), [RULE_UNKNOWN_REJECTIONS]);
}

#[test]
fn every_cause_has_its_rule_its_numbers_and_its_fix() {
    for (cause, rule, severity, fixes) in [
        (
            Cause::AfterClean,
            RULE_CLEAN_REJECTIONS,
            Severity::Critical,
            &[
                "`ssl_session_cache shared:NAME:SIZE`",
                "`tune.ssl.cachesize`",
                "`builtin`",
            ][..],
        ),
        (
            Cause::Expired,
            RULE_EXPIRED,
            Severity::Warning,
            &[
                "`ssl_session_timeout`",
                "`tune.ssl.lifetime`",
                "`SSL_CTX_set_timeout`",
            ][..],
        ),
        (
            Cause::ServerRestart,
            RULE_RESTART,
            Severity::Warning,
            &["`ssl_session_ticket_key`", "`tls-ticket-keys`"][..],
        ),
        (
            Cause::NoCache,
            RULE_NO_CACHE,
            Severity::Critical,
            &[
                "`ssl_session_cache shared:SSL:10m`",
                "`none`",
                "`ssl_session_tickets on`",
            ][..],
        ),
        (
            Cause::TicketRejected,
            RULE_TICKET_KEYS,
            Severity::Critical,
            &["`ssl_session_ticket_key`", "`tls-ticket-keys`"][..],
        ),
        (
            Cause::Unknown,
            RULE_UNKNOWN_REJECTIONS,
            Severity::Warning,
            &["By cause: unknown 94."][..],
        ),
    ] {
        let c = rejected_by(cause);
        let d = diagnose(Role::Backend, &c);
        assert_eq!((d[0].rule, d[0].severity), (rule, severity), "{cause:?}");
        assert!(
            d[0].text
                .starts_with("94% of 100 offered sessions were rejected (94). All 94 rejections"),
            "{}",
            d[0].text
        );
        for fix in fixes {
            assert!(
                d[0].text.contains(fix),
                "{cause:?} lacks {fix}: {}",
                d[0].text
            );
        }
        assert!(
            RULES
                .iter()
                .any(|r| r.name == rule && r.severity == severity)
        );
    }
}

#[test]
fn frontend_unclean_rejections_are_worded_for_clients() {
    let t = text(Role::Frontend, &haproxy_rst());
    assert!(t.contains("clients reset 106 connections"), "{t}");
    assert!(
        t.contains("`no-tls-tickets`") && !t.contains("nolinger"),
        "{t}"
    );
}

#[test]
fn no_offers_fires_only_for_busy_backends() {
    let mut c = Counts {
        full: NO_OFFER_MIN_FULL,
        ..Counts::default()
    };
    assert_eq!(backend(&c), [RULE_NO_OFFERS]);
    let t = text(Role::Backend, &c);
    assert!(t.starts_with("20 full handshakes"), "{t}");
    assert!(t.contains("`no-ssl-reuse`") && t.contains("`ssl_session_cache off`"));
    c.full = NO_OFFER_MIN_FULL - 1;
    assert_eq!(rules::no_offers(Role::Backend, &c), Verdict::Undecided);
    c.full = 500;
    c.offered = 1;
    assert_eq!(rules::no_offers(Role::Backend, &c), Verdict::Clear);
    c.offered = 0;
    assert!(
        rules(Role::Frontend, &c).is_empty(),
        "clients not offering is not this host's doing"
    );
}

#[test]
fn hrr_rule() {
    let mut c = Counts {
        full: 4,
        resumed: 16,
        offered: 16,
        hrr: 4, // 20 % of 20
        ..Counts::default()
    };
    let d = diagnose(Role::Backend, &c);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].rule, RULE_HRR);
    assert!(
        d[0].text
            .starts_with("4 HelloRetryRequests for 20 handshakes (20%)"),
        "{}",
        d[0].text
    );
    c.hrr = 3;
    assert!(backend(&c).is_empty());
    // Too few handshakes to tell.
    c.full = 1;
    c.resumed = 2;
    c.hrr = 3;
    assert_eq!(rules::hello_retries(&c), Verdict::Undecided);
}

#[test]
fn failed_rule() {
    let mut c = Counts {
        full: 5,
        resumed: 85,
        offered: 85,
        failed: 6,
        incomplete: 4, // 10 of 100
        ..Counts::default()
    };
    assert_eq!(backend(&c), [RULE_FAILED]);
    assert!(
        text(Role::Backend, &c).starts_with("10 of 100 handshakes did not complete (10%: 6 failed")
    );
    c.failed = 5; // 9 of 99
    assert!(backend(&c).is_empty());
    let few = Counts {
        failed: 9,
        ..Counts::default()
    };
    assert_eq!(rules::failures(&few), Verdict::Undecided);
}

#[test]
fn session_id_only_rule() {
    let mut c = Counts {
        full: 5,
        resumed: 95,
        offered: 95,
        unclean_closes: 60,
        clean_closes: 40,
        ..Counts::default()
    };
    c.resumed_by.session_id = 95;
    c.unknown_closes = 1_000; // undecided closes count for nothing
    let d = diagnose(Role::Backend, &c);
    assert_eq!(backend(&c), [RULE_SESSION_ID_ONLY]);
    assert_eq!(d[0].severity, Severity::Info);
    assert!(
        d[0].text
            .contains("All 95 resumptions use session IDs and 60 of 100 connections (60%)"),
        "{}",
        d[0].text
    );
    // One ticket resumption: not session-ID only.
    c.resumed_by.session_id = 94;
    c.resumed_by.ticket = 1;
    assert!(backend(&c).is_empty());
    c.resumed_by.session_id = 95;
    c.resumed_by.ticket = 0;
    c.unclean_closes = 40;
    c.clean_closes = 60;
    assert!(backend(&c).is_empty());
}

#[test]
fn session_id_only_is_left_out_when_resumption_already_breaks() {
    let mut c = haproxy_rst();
    c.resumed = 40;
    c.resumed_by.session_id = 40;
    assert_eq!(backend(&c), [RULE_UNCLEAN_REJECTIONS]);
    c.rejected = 40; // 40 % rejected: (a) is silent, (f) speaks
    c.rejected_by_cause.after_unclean = 40;
    assert_eq!(backend(&c), [RULE_SESSION_ID_ONLY]);
}

#[test]
fn most_severe_first() {
    let mut c = haproxy_rst();
    c.hrr = 50;
    assert_eq!(backend(&c), [RULE_UNCLEAN_REJECTIONS, RULE_HRR]);
}

#[test]
fn percentages_round_down() {
    assert_eq!(pct(999, 1000), 99);
    assert_eq!(pct(1000, 1000), 100);
    assert_eq!(pct(1, 0), 0);
    assert!(at_least(1, 2, 50));
    assert!(!at_least(49, 100, 50));
}

#[test]
fn the_docs_list_every_rule() {
    let doc = include_str!("../../../docs/dashboard.md");
    let table = markdown();
    assert!(
        doc.contains(&table),
        "docs/dashboard.md must contain the rule table as diagnosis::markdown() renders it:\n{table}"
    );
    let names: Vec<&str> = RULES.iter().map(|r| r.name).collect();
    for rule in [
        RULE_UNCLEAN_REJECTIONS,
        RULE_CLEAN_REJECTIONS,
        RULE_EXPIRED,
        RULE_RESTART,
        RULE_NO_CACHE,
        RULE_TICKET_KEYS,
        RULE_UNKNOWN_REJECTIONS,
        RULE_NO_OFFERS,
        RULE_HRR,
        RULE_FAILED,
        RULE_SESSION_ID_ONLY,
    ] {
        assert!(names.contains(&rule), "{rule} is not in RULES");
    }
    assert_eq!(names.len(), 11);
}
