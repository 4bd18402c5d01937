//! The replay corpus (`tests/fixtures/*.pcap`) and its oracle: tshark's
//! dissection of each capture (`<name>.tshark.tsv`, made by
//! `fixtures/make.sh`), and what `tlsmon replay` counts. Included by the
//! test files that need it (`#[path]`).

// Each test binary uses a different part.
#![allow(dead_code)]

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

use monitor::{
    replay::{Options, replay},
    report::server_line,
};
use monitor_common::tls::MAX_EXTENSIONS;
use serde_json::Value;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn corpus() -> Vec<PathBuf> {
    let dir = fixture("");
    let mut v: Vec<_> = fs::read_dir(&dir)
        .expect("fixtures directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    v.sort();
    assert!(v.len() >= 6, "corpus has only {} captures", v.len());
    v
}

/// Server lines without the timestamp, and the summary's counters, as
/// `tlsmon replay` prints them.
pub fn run(file: &Path, kernel: bool) -> (Vec<Value>, Value) {
    let o = replay(&Options {
        file: file.to_owned(),
        kernel,
        local: Vec::new(),
    })
    .unwrap_or_else(|e| panic!("replay {} (kernel: {kernel}): {e:#}", file.display()));
    let servers = o
        .tracker
        .servers()
        .into_iter()
        .map(|s| {
            let mut v = server_line(s, 0.0);
            v.as_object_mut().unwrap().remove("ts");
            v
        })
        .collect();
    let t = &o.tracker.totals;
    let stats = serde_json::json!({
        "malformed": o.stats.malformed,
        "fragments": o.stats.fragments,
        "too_deep": o.stats.too_deep,
        "encapsulation": o.stats.encapsulation,
        "tls_packets": o.stats.tls_packets,
        "lost_events": o.stats.lost_events,
        "split_hellos": o.stats.split_hellos,
        "events": t.events,
        "truncated_hellos": t.truncated_hellos,
        "reassembled_hellos": t.reassembled_hellos,
        "unanswered_hellos": t.unanswered_hellos,
        "malformed_hellos": t.malformed_hellos,
    });
    (servers, stats)
}

/// The sum of a counter over the server lines of [`run`].
pub fn sum(servers: &[Value], key: &str) -> u64 {
    servers.iter().map(|s| s[key].as_u64().unwrap()).sum()
}

/// A `.tshark.tsv` file: one row per frame with a plaintext handshake
/// message, fields that occur several times joined with ','.
pub struct Tsv {
    header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Tsv {
    pub fn of(pcap: &Path) -> Self {
        let text = fs::read_to_string(pcap.with_extension("tshark.tsv"))
            .expect("tshark TSV next to the capture");
        let mut lines = text.lines();
        let header = lines
            .next()
            .unwrap()
            .split('\t')
            .map(str::to_owned)
            .collect();
        let rows = lines
            .map(|l| l.split('\t').map(str::to_owned).collect())
            .collect();
        Self { header, rows }
    }

    pub fn col(&self, name: &str) -> usize {
        self.header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    }

    /// A field of a row, "" when absent.
    pub fn get<'a>(&self, row: &'a [String], name: &str) -> &'a str {
        row.get(self.col(name)).map_or("", String::as_str)
    }

    /// A field's occurrences.
    pub fn list<'a>(&self, row: &'a [String], name: &str) -> Vec<&'a str> {
        let v = self.get(row, name);
        if v.is_empty() {
            Vec::new()
        } else {
            v.split(',').collect()
        }
    }

    /// Whether the row holds a handshake message of type `ty`.
    pub fn has_type(&self, row: &[String], ty: u8) -> bool {
        self.list(row, "tls.handshake.type")
            .iter()
            .any(|t| t.parse() == Ok(ty))
    }
}

/// tshark prints 16-bit values as 0x-prefixed hex.
pub fn hex16(s: &str) -> u16 {
    u16::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or(0)
}

/// RFC 8446 §4.1.3: a HelloRetryRequest's random.
const HRR_RANDOM: &str = "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c";

/// The version a ServerHello row selects, as tshark read it: its
/// supported_versions (RFC 8446 §4.2.1), or its version field, which is
/// where drafts before -22 put it (draft-ietf-tls-tls13-18 §4.1.3) and
/// where TLS ≤ 1.2 has it.
pub fn server_version(tsv: &Tsv, row: &[String]) -> u16 {
    let selected = tsv.list(row, "tls.handshake.extensions.supported_version");
    let version = selected
        .first()
        .or(tsv.list(row, "tls.handshake.version").first())
        .copied()
        .unwrap_or("");
    hex16(version)
}

/// Whether a handshake of `version` follows TLS 1.3's resumption rules.
///
/// tshark names the number; which rules a number's handshakes follow is
/// this oracle's to know, and it once treated only 0x0304 as TLS 1.3, so
/// a draft's or a vendor variant's compatibility session-ID echo (RFC 8446
/// §D.4) would have passed for a TLS 1.2 session-ID resumption: the very
/// mistake issue 17 reported in tlsmon. The drafts numbered themselves
/// `0x7f00 | draft` (draft-ietf-tls-tls13-18 §4.2.1), 14 to 28 were
/// deployed, and each resumes with a PSK only (§2.2 of each, as RFC 8446
/// §2.2); Facebook's variants of drafts 23 and 26 are 0xfb17 and 0xfb1a
/// (Wireshark: "TLS 1.3 (Facebook draft 23/26)").
pub fn tls13_rules(version: u16) -> bool {
    matches!(version, 0x0304 | 0x7f0e..=0x7f1c | 0xfb17 | 0xfb1a)
}

/// Full and resumed handshakes according to tshark: one per ServerHello
/// that is not a HelloRetryRequest. TLS 1.3 and its drafts
/// ([`tls13_rules`]): resumed when the ServerHello has pre_shared_key
/// (41). TLS ≤ 1.2: resumed when the server's flight has
/// ChangeCipherSpec (20) and no Certificate (11).
pub fn tshark_counts(pcap: &Path) -> (u64, u64) {
    let tsv = Tsv::of(pcap);
    let (mut full, mut resumed) = (0, 0);
    for row in &tsv.rows {
        if !tsv.has_type(row, 2) || tsv.list(row, "tls.handshake.random").contains(&HRR_RANDOM) {
            continue;
        }
        let is_resumed = if tls13_rules(server_version(&tsv, row)) {
            tsv.list(row, "tls.handshake.extension.type")
                .contains(&"41")
        } else {
            tsv.list(row, "tls.record.content_type").contains(&"20") && !tsv.has_type(row, 11)
        };
        if is_resumed {
            resumed += 1;
        } else {
            full += 1;
        }
    }
    (full, resumed)
}

/// What tshark shows of TLS 1.3 resumption offers, by client port.
#[derive(Debug, Default)]
pub struct PskOffers {
    /// Connections whose ClientHello carries pre_shared_key (41).
    pub offered: BTreeSet<String>,
    /// Of those, the ones whose ClientHello has more extensions than
    /// tlsmon reads (`MAX_EXTENSIONS`): their offer comes after the limit.
    pub past_limit: BTreeSet<String>,
    /// Connections whose ServerHello carries it: the server accepted.
    pub accepted: BTreeSet<String>,
    /// ClientHellos with more extensions than tlsmon reads, offer or not.
    pub hellos_past_limit: u64,
}

impl PskOffers {
    /// Offers tlsmon can see: all but those past its extension limit that
    /// were refused (an accepted one counts as offered whatever tlsmon
    /// read of the hello). tlsmon counts each of the others as a truncated
    /// hello instead.
    pub fn visible(&self) -> u64 {
        self.offered
            .iter()
            .filter(|p| !self.past_limit.contains(*p) || self.accepted.contains(*p))
            .count() as u64
    }
}

/// Resumption offers according to tshark (which reassembles a ClientHello
/// split over segments before dissecting it).
pub fn tshark_psk(pcap: &Path) -> PskOffers {
    let tsv = Tsv::of(pcap);
    let mut out = PskOffers::default();
    for row in &tsv.rows {
        let exts = tsv.list(row, "tls.handshake.extension.type");
        let psk = exts.contains(&"41");
        if tsv.has_type(row, 1) {
            let port = tsv.get(row, "tcp.srcport").to_owned();
            let past = exts.len() > MAX_EXTENSIONS;
            out.hellos_past_limit += u64::from(past);
            if psk {
                out.offered.insert(port.clone());
                if past {
                    out.past_limit.insert(port);
                }
            }
        } else if tsv.has_type(row, 2) && psk {
            out.accepted.insert(tsv.get(row, "tcp.dstport").to_owned());
        }
    }
    out
}

/// tshark's dissection of the frames of `pcap` that match `filter`: the
/// values of `fields`, tab-separated, one line per frame, fields that occur
/// several times joined with ',' (as `fixtures/make.sh` writes the TSVs),
/// with a header line of the field names when `header`.
pub fn tshark(pcap: &Path, filter: &str, fields: &[&str], header: bool) -> Vec<u8> {
    let mut cmd = xtask::programs::command("tshark");
    cmd.args(["-n", "-r"])
        .arg(pcap)
        .args(["-Y", filter, "-T", "fields"]);
    if header {
        cmd.args(["-E", "header=y"]);
    }
    cmd.args([
        "-E",
        "separator=/t",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=,",
    ]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd
        .output()
        .expect("tshark (cargo xtask setup installs it)");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// [`tshark`]'s lines, split into fields.
pub fn tshark_fields(pcap: &Path, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    String::from_utf8(tshark(pcap, filter, fields, false))
        .unwrap()
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

/// How many times each item occurs.
pub fn tally<T: Ord>(items: impl IntoIterator<Item = T>) -> BTreeMap<T, u64> {
    let mut m = BTreeMap::new();
    for i in items {
        *m.entry(i).or_insert(0) += 1;
    }
    m
}
