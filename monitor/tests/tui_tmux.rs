//! The real dashboard on a real terminal: tlsmon runs in tmux inside a
//! network namespace while real openssl peers handshake across a veth; the
//! screen must show the server and its counts, and `q` must give the
//! terminal back. Needs root and tmux.

mod common;

use std::{
    fs, thread,
    time::{Duration, Instant},
};

use common::{Lab, Side, TLS_PORT, TLSMON, must_output, read, reconnect, start_s_server};

/// `tmux -L SOCKET args…`: every session has a server of its own. On the
/// shared default server, one test ending its last session stopped the
/// server under another test starting its own ("server exited
/// unexpectedly").
fn tmux(socket: &str, args: &[&str]) -> String {
    must_output(
        xtask::programs::command("tmux")
            .args(["-L", socket])
            .args(args),
    )
}

/// Kills the tmux session and its server however the test ends.
struct Session(String);

impl Session {
    /// A detached tmux session of `width`×`height` running `cmd`.
    fn start(tag: &str, width: u16, height: u16, cmd: &str) -> Self {
        let s = Self(format!("tlsmon-{tag}-{}", std::process::id()));
        let (w, h) = (width.to_string(), height.to_string());
        tmux(
            &s.0,
            &["new-session", "-d", "-s", &s.0, "-x", &w, "-y", &h, cmd],
        );
        s
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = xtask::programs::command("tmux")
            .args(["-L", &self.0, "kill-server"])
            .status();
    }
}

fn screen(session: &str) -> String {
    tmux(session, &["capture-pane", "-p", "-t", session])
}

fn wait_screen(session: &str, timeout: Duration, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let s = screen(session);
        if ok(&s) {
            return s;
        }
        assert!(
            start.elapsed() < timeout,
            "screen never showed {what}:\n{s}"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn dashboard_shows_live_counts_and_q_restores_the_terminal() {
    let mut lab = Lab::new("tui", 3);
    let (cert, key) = lab.make_cert();
    let _server = start_s_server(&mut lab, "s_server", &cert, &key);

    let inner = format!(
        "{} netns exec {} {TLSMON} --iface {}; echo TLSMON-EXIT=$?; sleep 60",
        xtask::programs::require("ip").display(),
        lab.ns(Side::Client),
        lab.iface(Side::Client)
    );
    let session = Session::start("tui", 120, 36, &inner);
    // The header names the interface once the program is attached.
    wait_screen(
        &session.0,
        Duration::from_secs(90),
        "the dashboard header",
        |s| s.contains("tlsmon") && s.contains(lab.iface(Side::Client)) && s.contains("up "),
    );

    let (out, new, reused) = reconnect(&mut lab);
    assert_eq!(
        (new, reused),
        (1, 5),
        "s_client did not do 1 full + 5 resumed:\n{}",
        out.stdout
    );

    // The server row: address, role, then full and resumed as s_client saw them.
    let server = format!("{}:{TLS_PORT}", lab.ip(Side::Server));
    let shown = wait_screen(
        &session.0,
        Duration::from_secs(15),
        "the server row with 1 full, 5 resumed",
        |s| {
            s.lines().any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                let at = cols
                    .iter()
                    .position(|c| c.trim_start_matches(['│', '>']).starts_with(&server));
                at.is_some_and(|i| row_counts(&cols[i..]) == Some((1, 5)))
            })
        },
    );
    assert!(shown.contains("q quit"), "footer missing:\n{shown}");

    tmux(&session.0, &["send-keys", "-t", &session.0, "q"]);
    let after = wait_screen(&session.0, Duration::from_secs(15), "tlsmon's exit", |s| {
        s.contains("TLSMON-EXIT=")
    });
    assert!(
        after.contains("TLSMON-EXIT=0"),
        "tlsmon failed on q:\n{after}"
    );
    let alt = tmux(
        &session.0,
        &["display-message", "-p", "-t", &session.0, "#{alternate_on}"],
    );
    assert_eq!(alt.trim(), "0", "the alternate screen is still on after q");
    // The final JSON lines follow the dashboard, starting on a clean line.
    assert!(
        after.lines().any(|l| l.starts_with("{\"type\":\"server\"")),
        "no final server line:\n{after}"
    );
}

/// What a client picks as its server name is drawn on root's terminal:
/// a real `openssl s_client` sends a window-title, clear-screen and
/// clipboard-write (OSC 52) sequence as its SNI while the dashboard runs in
/// tmux. Every byte the dashboard writes to its terminal is captured
/// (`tmux pipe-pane`): no OSC sequence, no BEL and no clear-screen may be
/// among them, and the escaped name must be visible. The text log must
/// not carry them either.
#[test]
fn a_hostile_server_name_reaches_the_terminal_only_escaped() {
    const HOSTILE: &str = "\x1b]0;X\x07\x1b[2J\x1b]52;c;aGk=\x07";
    let mut lab = Lab::new("esc", 8);
    let (cert, key) = lab.make_cert();
    let _server = start_s_server(&mut lab, "s_server", &cert, &key);
    let log = lab.dir.join("tlsmon.log");
    let pane = lab.dir.join("pane.bytes");

    let inner = format!(
        "{} netns exec {} {TLSMON} --iface {} --log {} --log-format text --interval 1; \
         echo TLSMON-EXIT=$?; sleep 60",
        xtask::programs::require("ip").display(),
        lab.ns(Side::Client),
        lab.iface(Side::Client),
        log.display(),
    );
    let session = Session::start("esc", 200, 50, &inner);
    wait_screen(
        &session.0,
        Duration::from_secs(90),
        "the dashboard header",
        |s| s.contains("tlsmon") && s.contains(lab.iface(Side::Client)) && s.contains("up "),
    );
    // From here on, every byte the program writes to the pane.
    tmux(
        &session.0,
        &[
            "pipe-pane",
            "-O",
            "-t",
            &session.0,
            &format!("exec /bin/cat >> {}", pane.display()),
        ],
    );

    let connect = format!("{}:{TLS_PORT}", lab.ip(Side::Server));
    let out = lab.run(
        Side::Client,
        "s_client",
        &[
            "openssl",
            "s_client",
            "-tls1_2",
            "-servername",
            HOSTILE,
            "-connect",
            &connect,
        ],
        Duration::from_secs(30),
    );
    assert!(
        out.stdout.contains("Protocol") || out.stdout.contains("Cipher"),
        "s_client did not complete a handshake:\n{}{}",
        out.stdout,
        out.stderr
    );
    // The server name as text, in the detail pane.
    let escaped = "\\u{001b}]0;X\\u{0007}\\u{001b}[2J";
    wait_screen(
        &session.0,
        Duration::from_secs(15),
        "the escaped server name",
        |s| s.contains(escaped),
    );
    tmux(&session.0, &["send-keys", "-t", &session.0, "q"]);
    wait_screen(&session.0, Duration::from_secs(15), "tlsmon's exit", |s| {
        s.contains("TLSMON-EXIT=0")
    });
    tmux(&session.0, &["pipe-pane", "-t", &session.0]);

    let bytes = fs::read(&pane).expect("the pane's bytes");
    assert!(
        find(&bytes, b"\x1b[2J").is_none(),
        "the screen was cleared after the handshake"
    );
    for (what, seq) in [("an OSC sequence", &b"\x1b]"[..]), ("a BEL", b"\x07")] {
        assert!(
            find(&bytes, seq).is_none(),
            "the dashboard wrote {what} to its terminal at byte {:?}",
            find(&bytes, seq)
        );
    }
    // What the screen showed came from these bytes: the name as text.
    assert!(
        find(&bytes, br"\u{001b}]0;X\u{0007}").is_some(),
        "the escaped name never reached the terminal"
    );
    let text = read(&log);
    assert!(text.contains(" full="), "no text log lines:\n{text}");
    assert!(
        !text.contains(['\x1b', '\x07']),
        "control characters in the text log"
    );
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Full and resumed from a table row split on whitespace, starting at the
/// server column: server, role, hs/s, full, resumed.
fn row_counts(cols: &[&str]) -> Option<(u64, u64)> {
    let full = cols.get(3)?.trim_end_matches('▼').parse().ok()?;
    let resumed = cols.get(4)?.parse().ok()?;
    Some((full, resumed))
}

/// `tlsmon replay` answers a person on a terminal with the dashboard's
/// table, printed once; `--json` (or a pipe) gets the JSON lines.
#[test]
fn replay_on_a_terminal_prints_the_table() {
    let capture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tls12_rejected.pcap"
    );
    for (tag, flag) in [("table", ""), ("json", " --json")] {
        let inner = format!("{TLSMON} replay {capture}{flag}; echo REPLAY-EXIT=$?; sleep 60");
        let session = Session::start(&format!("replay-{tag}"), 160, 20, &inner);
        let shown = wait_screen(&session.0, Duration::from_secs(30), "replay's exit", |s| {
            s.contains("REPLAY-EXIT=")
        });
        assert!(shown.contains("REPLAY-EXIT=0"), "{shown}");
        if flag.is_empty() {
            // `tshark -r` lists 32 frames, and 2 ServerHellos (both full
            // handshakes: the capture's one offer is rejected).
            assert!(
                shown.contains("tls12_rejected.pcap: 32 packets, 1 TLS servers"),
                "{shown}"
            );
            let header = shown
                .lines()
                .find(|l| l.starts_with("server "))
                .unwrap_or_else(|| panic!("no table header:\n{shown}"));
            for col in ["role", "full", "resumed", "reuse", "offered", "rejected"] {
                assert!(header.contains(col), "{header}");
            }
            let row = shown
                .lines()
                .find(|l| l.starts_with("127.0.0.1:20005"))
                .unwrap_or_else(|| panic!("no server row:\n{shown}"));
            let cols: Vec<&str> = row.split_whitespace().collect();
            assert_eq!(&cols[1..4], ["front", "2", "0"], "{row}");
            assert!(!shown.contains("{\"type\""), "{shown}");
        } else {
            assert!(shown.contains("{\"type\":\"server\""), "{shown}");
        }
    }
}
