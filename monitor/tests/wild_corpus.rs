//! The captures of the corpus made for issue 17's classes of peers seen in
//! the wild, and for issue 14's hostile ClientHellos (`fixtures/make.sh`,
//! `fixtures/README.md`). `replay_corpus.rs` checks every capture's counts
//! against tshark's; here each capture is also checked to show what it is
//! for, by tshark, and tlsmon to count it as the class's rule says, with
//! both engines (the kernel engine needs root).

use std::{path::Path, time::Duration};

use monitor::tracker::Limits;
use monitor_common::tls::{MAX_EXTENSIONS, ProtocolVersion};
use serde_json::Value;

#[path = "support/corpus.rs"]
mod corpus;

use corpus::{Tsv, fixture, run, server_version, sum, tally, tshark_counts, tshark_fields};

/// Both engines' counts, which must agree, and whose full and resumed
/// handshakes must be tshark's; the host engine's are returned.
fn counted(pcap: &Path) -> (Vec<Value>, Value) {
    let host = run(pcap, false);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        assert_eq!(
            run(pcap, true),
            host,
            "engines disagree on {}",
            pcap.display()
        );
    }
    let servers = &host.0;
    assert_eq!(
        (sum(servers, "full"), sum(servers, "resumed")),
        tshark_counts(pcap),
        "{}: tlsmon (full, resumed) vs tshark",
        pcap.display()
    );
    host
}

/// Frame numbers of `filter`'s matches in each TCP stream.
fn frames_by_stream(pcap: &Path, filter: &str) -> Vec<(u32, u32)> {
    tshark_fields(pcap, filter, &["tcp.stream", "frame.number"])
        .into_iter()
        .map(|f| (f[0].parse().unwrap(), f[1].parse().unwrap()))
        .collect()
}

/// Class 1: a client that sends FIN (RFC 9293 §3.6) before the server has
/// finished its part of the handshake still completes it.
#[test]
fn half_closes_complete() {
    let pcap = fixture("tls_half_close.pcap");
    let port = "20013";
    // By tshark: in every connection the client's FIN comes before the
    // server's ChangeCipherSpec (TLS 1.2: with its NewSessionTicket and
    // Finished; TLS 1.3: with its whole first flight).
    let fins = frames_by_stream(
        &pcap,
        &format!("tcp.flags.fin == 1 && tcp.dstport == {port}"),
    );
    let ccs = frames_by_stream(
        &pcap,
        &format!("tls.record.content_type == 20 && tcp.srcport == {port}"),
    );
    assert_eq!(ccs.len(), 3, "three connections");
    for (stream, server_ccs) in &ccs {
        let fin = fins
            .iter()
            .filter(|(s, _)| s == stream)
            .map(|&(_, f)| f)
            .min()
            .expect("the client's FIN");
        assert!(
            fin < *server_ccs,
            "stream {stream}: the client's FIN (frame {fin}) comes after the server's answer"
        );
    }
    // Both TLS 1.2 and TLS 1.3.
    let tsv = Tsv::of(&pcap);
    let versions = tally(
        tsv.rows
            .iter()
            .filter(|r| tsv.has_type(r, 2))
            .map(|r| server_version(&tsv, r)),
    );
    assert_eq!(versions.get(&0x0303), Some(&2), "{versions:x?}");
    assert_eq!(versions.get(&0x0304), Some(&1), "{versions:x?}");
    let (servers, _) = counted(&pcap);
    assert_eq!(
        (sum(&servers, "incomplete"), sum(&servers, "failed")),
        (0, 0),
        "{servers:?}"
    );
}

/// Class 2: a warning alert (unrecognized_name, RFC 6066 §3) before the
/// ServerHello does not end the handshake.
#[test]
fn warning_alerts_do_not_fail_handshakes() {
    let pcap = fixture("tls12_warning_alert.pcap");
    let alerts = tshark_fields(
        &pcap,
        "tls.alert_message.level && tcp.srcport == 20014",
        &[
            "frame.number",
            "tls.alert_message.level",
            "tls.alert_message.desc",
        ],
    );
    let server_hellos = frames_by_stream(&pcap, "tls.handshake.type == 2");
    // A warning (1) unrecognized_name (112), before the first ServerHello.
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!((alerts[0][1].as_str(), alerts[0][2].as_str()), ("1", "112"));
    let alert_frame: u32 = alerts[0][0].parse().unwrap();
    assert!(alert_frame < server_hellos[0].1);
    assert_eq!(
        tshark_counts(&pcap),
        (1, 5),
        "s_client: New, then Reused five times"
    );
    let (servers, _) = counted(&pcap);
    assert_eq!(sum(&servers, "failed"), 0, "{servers:?}");
}

/// Class 3: ServerHellos more than the handshake timeout after their
/// ClientHello, on connections that stay open, are counted.
#[test]
fn late_answers_are_counted() {
    let pcap = fixture("tls_slow_backend.pcap");
    let tsv = Tsv::of(&pcap);
    let time = |r: &Vec<String>| tsv.get(r, "frame.time_epoch").parse::<f64>().unwrap();
    let timeout = Duration::from_nanos(Limits::default().handshake_timeout_ns).as_secs_f64();
    let mut late = 0;
    for hello in tsv.rows.iter().filter(|r| tsv.has_type(r, 1)) {
        let port = tsv.get(hello, "tcp.srcport");
        let answer = tsv
            .rows
            .iter()
            .find(|r| tsv.has_type(r, 2) && tsv.get(r, "tcp.dstport") == port)
            .expect("a ServerHello");
        late += u64::from(time(answer) - time(hello) > timeout);
    }
    assert_eq!(late, 2, "both answers come after the timeout, by tshark");
    let (servers, _) = counted(&pcap);
    assert_eq!(sum(&servers, "failed"), 0, "{servers:?}");
    // Replay lets time pass up to a packet before it hands the packet over
    // (replay.rs, `CaptureSource::drain`), as live mode does: both
    // handshakes time out, and both answers are counted late, and full.
    assert_eq!(sum(&servers, "late"), late, "{servers:?}");
    assert_eq!(sum(&servers, "full"), late, "{servers:?}");
}

/// Class 4: TLS 1.3 drafts and a vendor's variants follow TLS 1.3's rules
/// (a PSK, never a session-ID echo) and are named in `versions`.
#[test]
fn drafts_and_vendor_variants_follow_tls13() {
    for (name, want) in [("tls13_fb_draft26", (1, 5)), ("tls13_drafts", (3, 3))] {
        let pcap = fixture(&format!("{name}.pcap"));
        let tsv = Tsv::of(&pcap);
        let by_version = tally(
            tsv.rows
                .iter()
                .filter(|r| tsv.has_type(r, 2))
                .map(|r| server_version(&tsv, r)),
        );
        assert!(
            by_version
                .keys()
                .all(|&v| v != 0x0304 && corpus::tls13_rules(v)),
            "{name}: only drafts and variants, by tshark: {by_version:x?}"
        );
        // The capture's point: every ServerHello from draft-22 on echoes
        // a 32-byte session ID, which TLS 1.2's rules would take for a
        // resumption.
        let echoes = tsv
            .rows
            .iter()
            .filter(|r| tsv.has_type(r, 2) && tsv.get(r, "tls.handshake.session_id_length") == "32")
            .count();
        assert!(echoes >= 4, "{name}: {echoes} session-ID echoes");
        assert_eq!(tshark_counts(&pcap), want, "{name}");
        let (servers, _) = counted(&pcap);
        let s = &servers[0];
        assert_eq!(s["resumed_by"]["session_id"], 0, "{name}: {s}");
        assert_eq!(s["offered_by"]["session_id"], 0, "{name}: {s}");
        assert_eq!(s["resumed_by"]["psk"], want.1, "{name}: {s}");
        // Each version by its name, as many times as tshark saw it.
        let named: Vec<(String, u64)> = by_version
            .iter()
            .map(|(&v, &n)| (ProtocolVersion(v).to_string(), n))
            .collect();
        let versions: Vec<(String, u64)> = s["versions"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
            .collect();
        assert_eq!(versions, named, "{name}");
        assert!(versions.iter().all(|(k, _)| k.starts_with("TLSv1.3-")));
    }
}

/// Issue 14's hostile ClientHellos from a real client: 1,000 extensions
/// (its first segment 7 bytes, inside the handshake header), a PSK hello
/// in two writes, a 16 KiB hello, and 100 extensions in one segment. Every
/// hello spanning segments is reassembled, the first included; the two
/// with more extensions than tlsmon reads are counted as truncated.
#[test]
fn hostile_hellos_are_each_counted() {
    let pcap = fixture("tls13_hostile_hellos.pcap");
    let hellos = tshark_fields(
        &pcap,
        "tls.handshake.type == 1",
        &[
            "tcp.srcport",
            "tcp.segment.count",
            "tls.handshake.extension.type",
        ],
    );
    assert_eq!(hellos.len(), 4, "{hellos:?}");
    let spanning = hellos.iter().filter(|h| !h[1].is_empty()).count() as u64;
    let past_limit = hellos
        .iter()
        .filter(|h| h[2].split(',').count() > MAX_EXTENSIONS)
        .count() as u64;
    assert_eq!((spanning, past_limit), (3, 2), "{hellos:?}");
    // The first segment of the first connection ends inside the handshake
    // header: 7 bytes.
    let first = tshark_fields(&pcap, "tcp.len > 0", &["tcp.len"]);
    assert_eq!(first[0][0], "7");
    let (_, stats) = counted(&pcap);
    assert_eq!(
        stats["reassembled_hellos"].as_u64(),
        Some(spanning),
        "{stats}"
    );
    assert_eq!(stats["split_hellos"].as_u64(), Some(spanning), "{stats}");
    assert_eq!(
        stats["truncated_hellos"].as_u64(),
        Some(past_limit),
        "{stats}"
    );
}
