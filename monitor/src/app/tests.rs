use std::net::Ipv4Addr;

use crossterm::event::{KeyCode, KeyEventKind, KeyModifiers};

use super::*;
use crate::{sim::*, stats::Role};

fn key(c: char) -> AppEvent {
    let modifiers = if c.is_ascii_uppercase() {
        KeyModifiers::SHIFT
    } else {
        KeyModifiers::NONE
    };
    AppEvent::Key(KeyEvent::new(KeyCode::Char(c), modifiers))
}

fn code(code: KeyCode) -> AppEvent {
    AppEvent::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn servers(app: &App) -> Vec<String> {
    app.rows()
        .iter()
        .map(|r| r.stats.server.to_string())
        .collect()
}

fn selected(app: &App) -> String {
    app.selected_row().unwrap().stats.server.to_string()
}

#[test]
fn quits_on_q_and_ctrl_c_not_on_release() {
    let mut app = demo_app(1, 0);
    assert_eq!(app.handle(key('x')), Control::Continue);
    assert_eq!(app.handle(key('q')), Control::Quit);
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(app.handle(AppEvent::Key(ctrl_c)), Control::Quit);
    let mut release = KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE);
    release.kind = KeyEventKind::Release;
    assert_eq!(app.handle(AppEvent::Key(release)), Control::Continue);
}

#[test]
fn rows_are_grouped_by_role_and_sorted() {
    let mut app = demo_app(10, 0);
    // Default: full handshakes, most first, backends before frontends.
    assert_eq!(app.sort(), (Column::Full, true));
    assert_eq!(
        servers(&app),
        [
            "10.0.1.11:8443",
            "10.0.3.30:443",
            "10.0.1.12:8443",
            "10.0.2.20:443",
            "10.0.0.5:443"
        ]
    );
    let rows = app.rows();
    assert_eq!(rows[0].name, Some("app/web1"));
    assert_eq!(rows[1].name, None);
    assert_eq!(rows[4].name, Some("frontend fe_https"));
    assert_eq!(rows[4].stats.role, Role::Frontend);
    assert!((rows[0].rate - 6.0).abs() < 1e-9, "{}", rows[0].rate);
    // S reverses.
    app.handle(key('S'));
    assert_eq!(app.sort(), (Column::Full, false));
    assert_eq!(
        servers(&app),
        [
            "10.0.2.20:443",
            "10.0.1.12:8443",
            "10.0.3.30:443",
            "10.0.1.11:8443",
            "10.0.0.5:443"
        ]
    );
    // s cycles in table order, each column starting in its natural
    // direction.
    app.handle(key('s'));
    assert_eq!(app.sort(), (Column::Resumed, true));
    app.handle(key('s'));
    assert_eq!(app.sort(), (Column::Reuse, true));
    assert_eq!(servers(&app)[0], "10.0.2.20:443");
    for _ in 0..4 {
        app.handle(key('s'));
    }
    assert_eq!(app.sort(), (Column::Server, false));
    assert_eq!(
        servers(&app),
        [
            "10.0.1.11:8443",
            "10.0.1.12:8443",
            "10.0.2.20:443",
            "10.0.3.30:443",
            "10.0.0.5:443"
        ]
    );
    app.handle(key('s'));
    assert_eq!(app.sort(), (Column::Rate, true));
    app.handle(key('s'));
    assert_eq!(app.sort(), (Column::Full, true));
}

#[test]
fn selection_moves_clamps_and_follows_the_server() {
    let mut app = demo_app(3, 0);
    assert_eq!(app.selected_index(), Some(0));
    app.handle(code(KeyCode::Up));
    assert_eq!(app.selected_index(), Some(0));
    app.handle(key('j'));
    app.handle(code(KeyCode::Down));
    assert_eq!(selected(&app), "10.0.1.12:8443");
    app.handle(key('k'));
    assert_eq!(selected(&app), "10.0.3.30:443");
    for _ in 0..10 {
        app.handle(key('j'));
    }
    assert_eq!(app.selected_index(), Some(4));
    app.handle(key('g'));
    assert_eq!(app.selected_index(), Some(0));
    app.handle(code(KeyCode::End));
    assert_eq!(app.selected_index(), Some(4));
    // Re-sorting keeps the same server selected.
    app.handle(key('g'));
    app.handle(key('j'));
    let before = selected(&app);
    app.handle(key('S'));
    assert_eq!(selected(&app), before);
    assert_ne!(app.selected_index(), Some(1));
}

#[test]
fn selection_clamps_when_rows_disappear() {
    let mut app = demo_app(3, 0);
    app.handle(code(KeyCode::End));
    assert_eq!(app.selected_index(), Some(4));
    // Filter down to two rows: the frontend row is gone, the selection
    // lands on the last remaining row.
    for ev in [
        key('/'),
        key('1'),
        key('0'),
        key('.'),
        key('0'),
        key('.'),
        key('1'),
        code(KeyCode::Enter),
    ] {
        app.handle(ev);
    }
    assert_eq!(app.filter(), "10.0.1");
    assert_eq!(servers(&app), ["10.0.1.11:8443", "10.0.1.12:8443"]);
    assert_eq!(app.selected_index(), Some(1));
    // Reset removes every row: nothing selected, nothing panics.
    app.handle(key('r'));
    assert!(app.rows().is_empty());
    assert_eq!(app.selected_index(), None);
    assert!(app.selected_row().is_none());
    app.handle(key('j'));
    app.handle(key('k'));
    assert_eq!(app.selected_index(), None);
    // Rows come back: the selection is on one of them again.
    let mut s = Sim::default();
    let c = Tls12 {
        role: Role::Backend,
        client: (PROXY, 50_000),
        server: WEB1,
        offer: Offer::None,
        accept: false,
        tickets: false,
        close: Close::Rst,
        sni: "",
        alpn: "",
        rtt_ns: 1_000_000,
    };
    s.tls12(&c, T0 + 10_000_000_000);
    s.feed(&mut app);
    assert_eq!(servers(&app), ["10.0.1.11:8443"]);
    assert_eq!(app.selected_index(), Some(0));
}

#[test]
fn filter_prompt_edits_applies_and_clears() {
    let mut app = demo_app(2, 0);
    app.handle(key('/'));
    assert_eq!(app.filter_prompt(), Some(""));
    // While typing, keys are text: q does not quit, s does not sort.
    for c in "qsX".chars() {
        assert_eq!(app.handle(key(c)), Control::Continue);
    }
    assert_eq!(app.filter_prompt(), Some("qsX"));
    assert_eq!(app.sort(), (Column::Full, true));
    for _ in 0..3 {
        app.handle(code(KeyCode::Backspace));
    }
    // Not applied before Enter.
    for c in "FRONT".chars() {
        app.handle(key(c));
    }
    assert_eq!(app.rows().len(), 5);
    app.handle(code(KeyCode::Enter));
    assert_eq!(app.filter_prompt(), None);
    assert_eq!(app.filter(), "front");
    assert_eq!(servers(&app), ["10.0.0.5:443"]);
    // By name.
    app.handle(key('/'));
    assert_eq!(
        app.filter_prompt(),
        Some("front"),
        "the prompt starts from the filter"
    );
    let ctrl_u = KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL);
    app.handle(AppEvent::Key(ctrl_u));
    for c in "app/".chars() {
        app.handle(key(c));
    }
    app.handle(code(KeyCode::Enter));
    assert_eq!(servers(&app), ["10.0.1.11:8443", "10.0.1.12:8443"]);
    // By role.
    app.handle(key('/'));
    app.handle(AppEvent::Key(ctrl_u));
    for c in "backend".chars() {
        app.handle(key(c));
    }
    app.handle(code(KeyCode::Enter));
    assert_eq!(app.rows().len(), 4);
    // Esc in the prompt clears the filter.
    app.handle(key('/'));
    app.handle(code(KeyCode::Esc));
    assert_eq!(app.filter(), "");
    assert_eq!(app.filter_prompt(), None);
    assert_eq!(app.rows().len(), 5);
    // Ctrl-C still quits from the prompt.
    app.handle(key('/'));
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(app.handle(AppEvent::Key(ctrl_c)), Control::Quit);
}

#[test]
fn help_toggles_and_esc_closes_it() {
    let mut app = demo_app(1, 0);
    assert!(!app.help_shown());
    app.handle(key('?'));
    assert!(app.help_shown());
    app.handle(key('?'));
    assert!(!app.help_shown());
    app.handle(key('?'));
    app.handle(code(KeyCode::Esc));
    assert!(!app.help_shown());
}

#[test]
fn pause_freezes_the_display_but_not_the_counting() {
    let mut app = demo_app(5, 0);
    let web1 = |app: &App| {
        let rows = app.rows();
        let r = rows
            .iter()
            .find(|r| r.stats.server.to_string() == "10.0.1.11:8443")
            .unwrap();
        (r.stats.full + r.stats.resumed, r.rate)
    };
    let before = web1(&app);
    let uptime = app.uptime_ns();
    app.handle(key('p'));
    assert!(app.paused());
    // More traffic and ticks while paused.
    let mut s = Sim::default();
    for i in 0..12u16 {
        let c = Tls12 {
            role: Role::Backend,
            client: (PROXY, 51_000 + i),
            server: WEB1,
            offer: Offer::None,
            accept: false,
            tickets: false,
            close: Close::Rst,
            sni: "",
            alpn: "",
            rtt_ns: 1_000_000,
        };
        s.tls12(&c, T0 + 5_000_000_000 + u64::from(i) * 1_000_000);
    }
    s.tick(T0 + 6_000_000_000, KernelStats::default());
    s.feed(&mut app);
    assert_eq!(web1(&app), before, "the display stands still");
    assert_eq!(app.uptime_ns(), uptime);
    let live = app
        .tracker()
        .servers()
        .iter()
        .find(|s| s.server.port == 8443 && s.server.addr == Ipv4Addr::new(10, 0, 1, 11))
        .map(|s| s.full + s.resumed);
    assert_eq!(live, Some(before.0 + 12), "the tracker kept counting");
    app.handle(key('p'));
    assert!(!app.paused());
    assert_eq!(web1(&app), (before.0 + 12, 12.0));
    assert_eq!(app.uptime_ns(), 6_000_000_000);
    // The history kept the paused second.
    let h = app
        .history(&app.selected_row().unwrap().stats.server)
        .unwrap();
    assert_eq!(h.len(), 6);
    assert_eq!(
        h.full().last().copied().unwrap() + h.resumed().last().copied().unwrap(),
        12
    );
}

#[test]
fn reset_clears_counters_and_history() {
    let mut app = demo_app(5, 3);
    assert!(app.summary().full > 0);
    assert!(!app.live.history.is_empty());
    app.handle(key('r'));
    assert_eq!(app.summary(), Summary::default());
    assert!(app.live.history.is_empty());
    assert!(app.handshake_rate().abs() < f64::EPSILON);
    // Kernel counters are the kernel's: not reset.
    assert_eq!(app.kernel().lost_events, 3);
    // Counting starts again from zero, not from the old totals.
    let mut s = Sim::default();
    let c = Tls12 {
        role: Role::Backend,
        client: (PROXY, 52_000),
        server: WEB2,
        offer: Offer::None,
        accept: false,
        tickets: false,
        close: Close::Clean,
        sni: "",
        alpn: "",
        rtt_ns: 1_000_000,
    };
    s.tls12(&c, T0 + 5_100_000_000);
    s.tick(T0 + 6_000_000_000, KernelStats::default());
    s.feed(&mut app);
    assert_eq!(app.summary().full, 1);
    assert!((app.handshake_rate() - 1.0).abs() < 1e-9);
    let h = app.history(&app.rows()[0].stats.server).unwrap();
    assert_eq!(h.full(), [1]);
}

#[test]
fn reset_while_paused_shows_the_reset() {
    let mut app = demo_app(3, 0);
    app.handle(key('p'));
    app.handle(key('r'));
    assert!(app.paused());
    assert!(app.rows().is_empty());
}

#[test]
fn history_buckets_per_second_and_caps() {
    let mut h = History::default();
    h.add(0, 1, 2);
    h.add(0, 1, 0);
    h.add(3, 5, 5);
    assert_eq!(h.full(), [2, 0, 0, 5]);
    assert_eq!(h.resumed(), [2, 0, 0, 5]);
    h.add(2, 1, 1); // clock went back: added to the current second
    assert_eq!(h.full(), [2, 0, 0, 6]);
    h.add(10_000, 7, 0);
    assert_eq!(h.len(), HISTORY_SECS);
    assert_eq!(h.full().iter().sum::<u64>(), 7);
    for s in 10_001..10_400 {
        h.add(s, 1, 0);
    }
    assert_eq!(h.len(), HISTORY_SECS);
}

#[test]
fn ticks_compute_rates_and_history_from_cumulative_counters() {
    let app = demo_app(30, 0);
    // 6 + 4 + 3 + 2 + 10 completed handshakes a second.
    assert!(
        (app.handshake_rate() - 25.0).abs() < 1e-9,
        "{}",
        app.handshake_rate()
    );
    assert_eq!(app.uptime_ns(), 30_000_000_000);
    let web1 = app.rows()[0];
    let h = app.history(&web1.stats.server).unwrap();
    assert_eq!(h.len(), 30);
    assert_eq!(h.full().iter().sum::<u64>(), web1.stats.full);
    assert_eq!(h.resumed().iter().sum::<u64>(), web1.stats.resumed);
    assert!(h.full().iter().all(|&f| f <= 6));
    // The motivating case is counted as such.
    assert!(web1.stats.rejected_after_unclean > 100, "{:?}", web1.stats);
    assert_eq!(Column::Versions.text(&web1), "1.2:100%");
}

#[test]
fn diagnoses_are_judged_each_tick_frozen_by_pause_and_forgotten_by_reset() {
    use crate::diagnosis::{ChangeKind, RULE_UNCLEAN_REJECTIONS};
    let web1 = Endpoint::from_wire(4, sim_addr(WEB1.0), WEB1.1);
    // Ten seconds of web1's resets: enough offers to judge.
    let mut app = demo_app(10, 0);
    let shown = app.shown_diagnoses(&web1);
    assert_eq!(shown.diagnoses[0].rule, RULE_UNCLEAN_REJECTIONS);
    assert_eq!(shown.span_ns, 10_000_000_000);
    assert!(
        app.diagnoses()
            .active()
            .iter()
            .any(|(s, _, d)| *s == web1 && d.rule == RULE_UNCLEAN_REJECTIONS)
    );
    // Paused, the screen keeps it; a reset takes it away from the live
    // state, and says so.
    app.handle(key('p'));
    let frozen = app.shown_diagnoses(&web1);
    app.handle(key('r'));
    assert!(
        app.diagnosis_changes()
            .iter()
            .any(|c| c.kind == ChangeKind::Forgotten && c.server == web1)
    );
    assert!(app.diagnoses().active().is_empty());
    app.handle(key('p'));
    assert!(app.shown_diagnoses(&web1).diagnoses.is_empty());
    assert!(!frozen.diagnoses.is_empty());
}

fn sim_addr(a: Ipv4Addr) -> [u8; 16] {
    let mut out = [0; 16];
    out[..4].copy_from_slice(&a.octets());
    out
}
