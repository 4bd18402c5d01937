use super::*;
use crate::{
    diagnosis::{RULE_CLEAN_REJECTIONS, RULE_HRR, Severity},
    sim,
};

const S: u64 = NS_PER_SEC;
const T0: u64 = 1_000 * S;

/// A backend whose counters the tests move by hand.
struct Server {
    stats: ServerStats,
}

impl Server {
    fn new() -> Self {
        Self {
            stats: sim::blank_stats(Role::Backend),
        }
    }

    /// `n` offers, `rejected` of them rejected after an unclean close.
    fn offers(&mut self, n: u64, rejected: u64) {
        let s = &mut self.stats;
        s.offered += n;
        s.rejected += rejected;
        s.rejected_by_cause.after_unclean += rejected;
        s.full += rejected;
        s.resumed += n - rejected;
        s.resumed_by.session_id += n - rejected;
    }
}

fn kinds(d: &Diagnoses) -> Vec<(ChangeKind, &'static str)> {
    d.changes()
        .iter()
        .map(|c| (c.kind, c.diagnosis.rule))
        .collect()
}

fn rules(d: &Diagnoses, s: &Server) -> Vec<&'static str> {
    d.shown(&s.stats.server)
        .diagnoses
        .iter()
        .map(|d| d.rule)
        .collect()
}

#[test]
fn a_diagnosis_appears_at_once_with_the_windows_numbers() {
    let mut d = Diagnoses::new(T0);
    let mut s = Server::new();
    d.tick(T0 + S, &[&s.stats]);
    assert!(d.changes().is_empty());
    s.offers(20, 20);
    d.tick(T0 + 2 * S, &[&s.stats]);
    assert_eq!(kinds(&d), [(ChangeKind::Appeared, RULE_UNCLEAN_REJECTIONS)]);
    let c = &d.changes()[0];
    assert_eq!((c.counts.offered, c.counts.rejected), (20, 20));
    assert_eq!(c.span_ns, 2 * S, "counted from the tick before the server");
    assert_eq!(c.server, s.stats.server);
    assert!(c.diagnosis.text.starts_with("100% of 20 offered"));
    // The same rule on the next tick: no change, fresh numbers.
    s.offers(10, 10);
    d.tick(T0 + 3 * S, &[&s.stats]);
    assert!(d.changes().is_empty());
    assert!(
        d.shown(&s.stats.server).diagnoses[0]
            .text
            .starts_with("100% of 30 offered"),
        "{:?}",
        d.shown(&s.stats.server)
    );
    assert_eq!(d.active().len(), 1);
}

#[test]
fn a_fixed_configuration_clears_its_diagnosis() {
    let mut d = Diagnoses::new(T0);
    let mut s = Server::new();
    let mut cleared_at = None;
    // 10 minutes broken, one offer a second, all rejected...
    for sec in 1..=600 {
        s.offers(1, 1);
        d.tick(T0 + sec * S, &[&s.stats]);
    }
    assert_eq!(rules(&d, &s), [RULE_UNCLEAN_REJECTIONS]);
    // ...then fixed: every offer resumes.
    for sec in 601..=1_200 {
        s.offers(1, 0);
        d.tick(T0 + sec * S, &[&s.stats]);
        if !d.changes().is_empty() {
            assert_eq!(kinds(&d), [(ChangeKind::Cleared, RULE_UNCLEAN_REJECTIONS)]);
            cleared_at = Some(sec);
        }
    }
    assert!(
        rules(&d, &s).is_empty(),
        "since start it is still half broken"
    );
    // Rejections fall under half of the window's offers once half of the
    // window (300 to 330 s) is after the fix; then SETTLE_NS more.
    let cleared = cleared_at.expect("the diagnosis cleared");
    assert!(
        (600 + 150 + 30..=600 + 165 + 30 + 1).contains(&cleared),
        "cleared at {cleared}"
    );
}

#[test]
fn a_quiet_server_keeps_its_diagnosis() {
    let mut d = Diagnoses::new(T0);
    let mut s = Server::new();
    s.offers(30, 30);
    d.tick(T0 + S, &[&s.stats]);
    for sec in 2..=3_600 {
        d.tick(T0 + sec * S, &[&s.stats]);
        assert!(d.changes().is_empty(), "{:?}", d.changes());
    }
    let shown = d.shown(&s.stats.server);
    assert_eq!(shown.diagnoses[0].rule, RULE_UNCLEAN_REJECTIONS);
    assert!(shown.diagnoses[0].text.starts_with("100% of 30 offered"));
    // The window itself stays bounded.
    let judge = &d.judges[&s.stats.server];
    assert!(judge.window.copies.len() <= usize::try_from(WINDOW_NS / STEP_NS).unwrap() + 2);
    assert_eq!(judge.last.0, Counts::default(), "nothing in the window");
}

#[test]
fn a_verdict_that_flaps_changes_nothing() {
    let mut d = Diagnoses::new(T0);
    let mut s = Server::new();
    s.offers(10, 10);
    d.tick(T0 + S, &[&s.stats]);
    assert_eq!(kinds(&d), [(ChangeKind::Appeared, RULE_UNCLEAN_REJECTIONS)]);
    // Resumed and rejected in turn, hovering at the 50 % threshold.
    for sec in 2..200 {
        if sec % 2 == 0 {
            s.offers(12, 0);
        } else {
            s.offers(12, 12);
        }
        d.tick(T0 + sec * S, &[&s.stats]);
        assert!(d.changes().is_empty(), "second {sec}: {:?}", d.changes());
    }
}

#[test]
fn another_cause_changes_the_diagnosis_once_it_has_held() {
    let mut d = Diagnoses::new(T0);
    let mut s = Server::new();
    s.offers(20, 20);
    d.tick(T0 + S, &[&s.stats]);
    // Rejections after clean closes outnumber the others from now on.
    s.stats.offered += 100;
    s.stats.rejected += 100;
    s.stats.rejected_by_cause.after_clean += 100;
    let mut changed = None;
    for sec in 2..=60 {
        d.tick(T0 + sec * S, &[&s.stats]);
        if let [c] = d.changes() {
            assert_eq!(c.kind, ChangeKind::Changed);
            assert_eq!(c.diagnosis.rule, RULE_CLEAN_REJECTIONS);
            assert_eq!(c.previous, Some(RULE_UNCLEAN_REJECTIONS));
            changed = Some(sec);
        }
    }
    assert_eq!(changed, Some(2 + SETTLE_NS / S));
}

#[test]
fn forgotten_servers_take_their_diagnoses_with_them() {
    let mut d = Diagnoses::new(T0);
    let mut s = Server::new();
    s.offers(10, 10);
    s.stats.full += 20;
    s.stats.hrr = 20;
    d.tick(T0 + S, &[&s.stats]);
    assert_eq!(d.active().len(), 2);
    assert!(
        d.active()
            .iter()
            .any(|a| a.2.severity == Severity::Critical)
    );
    // Evicted by the tracker.
    d.tick(T0 + 2 * S, &[]);
    let mut k = kinds(&d);
    k.sort_unstable_by_key(|&(_, rule)| rule);
    assert_eq!(
        k,
        [
            (ChangeKind::Forgotten, RULE_HRR),
            (ChangeKind::Forgotten, RULE_UNCLEAN_REJECTIONS)
        ]
    );
    assert!(d.active().is_empty() && d.judges.is_empty());
    // A reset forgets them too.
    d.tick(T0 + 3 * S, &[&s.stats]);
    assert_eq!(d.active().len(), 2);
    d.reset();
    // The tick's appearances, then the reset's.
    assert_eq!(d.changes().len(), 4);
    assert!(
        d.changes()[2..]
            .iter()
            .all(|c| c.kind == ChangeKind::Forgotten)
    );
    assert!(d.active().is_empty());
}

#[test]
fn counters_that_start_over_start_the_window_over() {
    let mut d = Diagnoses::new(T0);
    let mut s = Server::new();
    s.offers(40, 40);
    d.tick(T0 + S, &[&s.stats]);
    // Evicted and back between two ticks: its counters are new.
    let mut again = Server::new();
    again.offers(5, 0);
    d.tick(T0 + 2 * S, &[&again.stats]);
    let last = d.judges[&s.stats.server].last;
    assert_eq!((last.0.offered, last.0.rejected, last.1), (5, 0, S));
    again.offers(5, 0);
    d.tick(T0 + 3 * S, &[&again.stats]);
    assert_eq!(d.judges[&s.stats.server].last.0.offered, 10);
}
