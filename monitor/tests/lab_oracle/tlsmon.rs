//! The real tlsmon during an oracle test: started in the proxy namespace
//! once the lab is up (`--headless --log-handshakes`), stopped with SIGINT
//! once the plan has run, and its lines compared with the oracle's records
//! connection by connection (`oracle::agreement`) and with `HAProxy`'s own
//! full/resumed counts per backend: the figures issue 16 asks for.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;
use xtask::{
    lab::{
        self, BACKENDS, Lab, Scenario,
        oracle::{
            Close, Kind, Record, Role,
            agreement::{Agreement, Figures, Handshake, TlsmonClose, agreement_since, pairs},
        },
    },
    util::wait_until,
};

const TLSMON: &str = env!("CARGO_BIN_EXE_tlsmon");
/// Loading the kernel program (the verifier) can take a while.
const ATTACH_TIMEOUT: Duration = Duration::from_mins(1);
/// Lets the last packets' events reach userspace before stopping tlsmon.
const DRAIN_TIME: Duration = Duration::from_secs(1);
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// The thresholds of issue 16.
const CLOSE_AGREEMENT: f64 = 0.99;
const DECIDED_SHARE: f64 = 0.95;
const CAUSE_AGREEMENT: f64 = 0.95;

/// A running tlsmon.
pub struct Tlsmon {
    child: Option<Child>,
    out: PathBuf,
    err: PathBuf,
    /// When it had attached, seconds since the epoch: connections before
    /// are not its to see.
    pub attached_at: f64,
}

impl Drop for Tlsmon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn read(path: &Path) -> String {
    fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

/// What tlsmon wrote.
pub struct Seen {
    pub handshakes: Vec<Handshake>,
    /// The last `"type":"server"` line per server (`ip:port`).
    pub servers: BTreeMap<String, Value>,
    pub summary: Value,
}

impl Tlsmon {
    /// Starts tlsmon on both proxy interfaces and waits until it attached.
    pub fn start(lab: &Lab) -> Self {
        let state = lab.state_dir();
        let (out, err) = (state.join("tlsmon.out"), state.join("tlsmon.err"));
        let mut cmd = lab.tlsmon_command(Path::new(TLSMON));
        // --duration is only a backstop: the test stops it with SIGINT.
        cmd.args(["--headless", "--log-handshakes", "--interval", "5"])
            .args(["--duration", "300"])
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).expect("creating tlsmon.out"))
            .stderr(fs::File::create(&err).expect("creating tlsmon.err"));
        let child = cmd.spawn().expect("starting tlsmon in the proxy namespace");
        let mut t = Self {
            child: Some(child),
            out,
            err,
            attached_at: 0.0,
        };
        let started = Instant::now();
        loop {
            let child = t.child.as_mut().expect("started");
            assert!(
                child.try_wait().expect("checking on tlsmon").is_none(),
                "tlsmon exited during start-up\n{}",
                t.output()
            );
            if read(&t.err).contains("attached to") {
                t.attached_at = lab::plan::now();
                return t;
            }
            assert!(
                started.elapsed() < ATTACH_TIMEOUT,
                "tlsmon did not attach within {ATTACH_TIMEOUT:?}\n{}",
                t.output()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn output(&self) -> String {
        format!(
            "--- tlsmon stderr ---\n{}",
            read(&self.err)
                .lines()
                .take(40)
                .collect::<Vec<_>>()
                .join("\n")
        )
    }

    /// Stops it with SIGINT and reads its lines.
    pub fn stop(mut self) -> Seen {
        thread::sleep(DRAIN_TIME);
        let mut child = self.child.take().expect("started");
        let pid = libc::pid_t::try_from(child.id()).expect("PID fits pid_t");
        // SAFETY: kill has no memory-safety preconditions; the child is not
        // yet reaped, so the PID is still tlsmon's.
        assert_eq!(
            unsafe { libc::kill(pid, libc::SIGINT) },
            0,
            "SIGINT to tlsmon"
        );
        let status = wait_until(&mut child, Instant::now() + EXIT_TIMEOUT).expect("waiting");
        assert!(
            status.is_some_and(|s| s.success()),
            "tlsmon did not exit cleanly after SIGINT ({status:?})\n{}",
            self.output()
        );
        let mut seen = Seen {
            handshakes: Vec::new(),
            servers: BTreeMap::new(),
            summary: Value::Null,
        };
        for line in read(&self.out).lines().filter(|l| !l.trim().is_empty()) {
            let mut value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("tlsmon wrote a line that is not JSON ({e}): {line}"));
            match value["type"].as_str() {
                Some("handshake") => {
                    // The oracle knows no `failed`: a handshake that did
                    // not complete is `incomplete` to it.
                    if value["kind"] == "failed" {
                        value["kind"] = "incomplete".into();
                    }
                    let h: Handshake = serde_json::from_value(value).unwrap_or_else(|e| {
                        panic!("a handshake line it cannot read ({e}): {line}")
                    });
                    seen.handshakes.push(h);
                }
                Some("server") => {
                    let server = value["server"].as_str().unwrap_or_default().to_owned();
                    seen.servers.insert(server, value);
                }
                Some("summary") => seen.summary = value,
                _ => {}
            }
        }
        seen
    }
}

/// The scenarios whose closes are all clean: tlsmon must blame no
/// rejection on an unclean close there.
fn closes_clean(s: &Scenario) -> bool {
    !s.resets_backends() && !s.health_checks
}

/// The comparison, its problems, and a table of its figures.
pub struct Compared {
    pub agreement: Agreement,
    pub problems: Vec<String>,
    pub table: String,
}

fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_owned(), |v| format!("{:.1}%", v * 100.0))
}

/// tlsmon against the oracle and `HAProxy`.
pub fn compare(
    scenario: &Scenario,
    seen: &Seen,
    records: &[Record],
    haproxy: &[lab::HaproxyLine],
    attached_at: f64,
) -> Compared {
    let agreement = agreement_since(&seen.handshakes, records, attached_at);
    let mut problems = Vec::new();
    let mut table = String::new();
    let _ = writeln!(
        table,
        "tlsmon against the oracle (since it attached): {:<21} {:>7} {:>5} {:>5} {:>9} {:>8} {:>8} {:>6} {:>5} {:>13}",
        "server",
        "matched",
        "t.only",
        "o.only",
        "close agr",
        "decided",
        "cause",
        "rej",
        "excl",
        "after_unclean"
    );
    let show = |table: &mut String, name: &str, f: &Figures| {
        let _ = writeln!(
            table,
            "{:>47} {:<21} {:>7} {:>5} {:>5} {:>9} {:>8} {:>8} {:>6} {:>5} {:>13}",
            "",
            name,
            f.matched,
            f.tlsmon_only,
            f.oracle_only,
            pct(f.close_agreement()),
            pct(f.decided_share()),
            pct(f.cause_agreement()),
            f.rejected,
            f.rejected_excluded,
            f.tlsmon_after_unclean
        );
    };
    for (server, f) in &agreement.servers {
        show(&mut table, &server.to_string(), f);
        let mut styles: BTreeMap<(&str, String), u64> = BTreeMap::new();
        for h in seen.handshakes.iter().filter(|h| h.server == *server) {
            for (side, close) in [("client", h.close_client), ("server", h.close_server)] {
                *styles.entry((side, format!("{close:?}"))).or_default() += 1;
            }
        }
        let _ = writeln!(table, "{:>47} {:<21} tlsmon's closes: {styles:?}", "", "");
        if f.decided_share().is_some_and(|d| d < DECIDED_SHARE) {
            problems.push(format!(
                "{server}: tlsmon decided {} of the sides the oracle decided, below {DECIDED_SHARE}",
                pct(f.decided_share())
            ));
        }
    }
    let total = &agreement.total;
    show(&mut table, "total", total);
    if total.close_agreement().is_some_and(|a| a < CLOSE_AGREEMENT) {
        problems.push(format!(
            "close style agrees on {} of the sides both decided, below {CLOSE_AGREEMENT}",
            pct(total.close_agreement())
        ));
    }
    if total.cause_agreement().is_some_and(|a| a < CAUSE_AGREEMENT) {
        problems.push(format!(
            "tlsmon named the oracle's cause for {} of {} rejected offers, below {CAUSE_AGREEMENT}",
            total.cause_agree, total.rejected
        ));
    }
    if closes_clean(scenario) && total.tlsmon_after_unclean > 0 {
        problems.push(format!(
            "{} rejections blamed on an unclean close in a scenario whose closes are clean",
            total.tlsmon_after_unclean
        ));
    }
    if total.matched == 0 {
        problems.push("no connection of the oracle matched one of tlsmon's".to_owned());
    }
    let pairs = pairs(&seen.handshakes, records, attached_at);
    problems.extend(against_haproxy(seen, records, haproxy, &pairs, &mut table));
    table.push_str(&differences(seen, records, &pairs));
    Compared {
        agreement,
        problems,
        table,
    }
}

/// Full and resumed per backend, three ways that must agree: `HAProxy`'s
/// log, tlsmon's lines for the connections `HAProxy` logged (each matched
/// to the oracle's record of it), and tlsmon's own counters (its server
/// lines) against its lines for that server, health checks included.
fn against_haproxy(
    seen: &Seen,
    records: &[Record],
    haproxy: &[lab::HaproxyLine],
    pairs: &[(usize, Option<usize>)],
    table: &mut String,
) -> Vec<String> {
    let mut problems = Vec::new();
    let tally = |kinds: &mut dyn Iterator<Item = Kind>| {
        kinds.fold((0u64, 0u64), |(f, r), k| match k {
            Kind::Full => (f + 1, r),
            Kind::Resumed => (f, r + 1),
            Kind::Incomplete => (f, r),
        })
    };
    for backend in BACKENDS {
        let logged = tally(
            &mut haproxy
                .iter()
                .filter(|l| l.server == backend.name)
                .filter_map(|l| {
                    l.bc_resumed
                        .map(|r| if r { Kind::Resumed } else { Kind::Full })
                }),
        );
        let mut missing = 0;
        let matched = tally(&mut pairs.iter().filter_map(|&(r, t)| {
            let record = &records[r];
            if record.role != Role::Backend || record.name != backend.name || record.is_check() {
                return None;
            }
            if t.is_none() {
                missing += 1;
            }
            t.map(|t| seen.handshakes[t].kind)
        }));
        let server = backend_addr(backend.port);
        let line = seen.servers.get(&server.to_string());
        let count = |field: &str| line.and_then(|l| l[field].as_u64()).unwrap_or(0);
        let counters = (count("full"), count("resumed"));
        let lines = tally(
            &mut seen
                .handshakes
                .iter()
                .filter(|h| h.server == server)
                .map(|h| h.kind),
        );
        let _ = writeln!(
            table,
            "{:>47} {:<21} full/resumed: HAProxy {}/{}, tlsmon's lines for them {}/{}, its counters {}/{} of lines {}/{} (checks included)",
            "",
            backend.name,
            logged.0,
            logged.1,
            matched.0,
            matched.1,
            counters.0,
            counters.1,
            lines.0,
            lines.1
        );
        if logged != matched || missing > 0 {
            problems.push(format!(
                "{}: HAProxy logged {logged:?} full/resumed, tlsmon's lines for those connections say {matched:?} ({missing} missing)",
                backend.name
            ));
        }
        if counters != lines {
            problems.push(format!(
                "{}: tlsmon counted {counters:?} full/resumed, its own lines say {lines:?}",
                backend.name
            ));
        }
    }
    problems
}

/// The connections where tlsmon and the oracle differ, for a person.
fn differences(seen: &Seen, records: &[Record], pairs: &[(usize, Option<usize>)]) -> String {
    let mut text = String::new();
    let mut shown = 0;
    for &(r, t) in pairs {
        let record = &records[r];
        let Some(t) = t else { continue };
        let h = &seen.handshakes[t];
        let side = |theirs: Option<TlsmonClose>, ours: Close| {
            let theirs = match theirs {
                Some(TlsmonClose::Clean) => Some(Close::Clean),
                Some(TlsmonClose::Unclean) => Some(Close::Unclean),
                _ => None,
            };
            ours.decided() && theirs != Some(ours)
        };
        let cause_differs = record.rejected().is_some_and(|c| h.cause != Some(c));
        if side(h.close_client, record.close.client)
            || side(h.close_server, record.close.server)
            || cause_differs
        {
            shown += 1;
            if shown > 20 {
                continue;
            }
            let offer = record.offered.as_ref().map_or_else(String::new, |o| {
                format!(
                    " offer age {:?} issued by {:?} last holder {:?}",
                    o.age,
                    o.issued_by.map(|i| i.client),
                    o.last_holder
                        .map(|h| (h.client, h.close.client, h.client_app_records))
                )
            });
            let _ = writeln!(
                text,
                "  {} {} {:.3}: oracle close {:?}/{:?} cause {:?} | tlsmon close {:?}/{:?} cause {:?}{}{offer}",
                record.name,
                record.client,
                record.start,
                record.close.client,
                record.close.server,
                record.rejected(),
                h.close_client,
                h.close_server,
                h.cause,
                if record.is_check() { " (check)" } else { "" }
            );
        }
    }
    if shown > 20 {
        let _ = writeln!(text, "  … and {} more", shown - 20);
    }
    text
}

fn backend_addr(port: u16) -> SocketAddr {
    let addr = lab::topology::BACKEND_ADDR
        .parse::<std::net::IpAddr>()
        .expect("the lab's backend address");
    SocketAddr::new(addr, port)
}
