//! The JSON-lines output contract. Field names are relied on by users'
//! scripts: add fields, never rename or remove them (docs/operations.md
//! lists every one).

use serde_json::{Value, json};

use monitor_common::tls::ProtocolVersion;

use crate::{
    app::Summary,
    columns::percent,
    connection_log::HandshakeRecord,
    diagnosis::{Change, ChangeKind},
    histogram::Histogram,
    stats::{KernelStats, Method, ServerStats, Totals},
    tracker::Tracker,
};

/// How snapshot lines are written (`--log-format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

/// One line per server, in `format`.
#[must_use]
pub fn server_lines(tracker: &Tracker, format: LogFormat, ts: f64) -> Vec<String> {
    tracker
        .servers()
        .into_iter()
        .map(|s| match format {
            LogFormat::Json => server_line(s, ts).to_string(),
            LogFormat::Text => text_line(s, ts),
        })
        .collect()
}

/// How many SNI/ALPN values a server line lists.
pub const TOP_VALUES: usize = 5;

fn ms(h: &Histogram) -> Value {
    let q = |q| h.quantile_ms(q).map(|v| (v * 1000.0).round() / 1000.0);
    json!({"count": h.count(), "p50": q(0.5), "p90": q(0.9), "p99": q(0.99)})
}

/// One line per server, cumulative since start (or the last reset).
#[must_use]
pub fn server_line(s: &ServerStats, ts: f64) -> Value {
    let versions: serde_json::Map<String, Value> = s
        .version_counts()
        .into_iter()
        .map(|(k, v)| (k, json!(v)))
        .collect();
    let mut ciphers: Vec<_> = s.ciphers.iter().collect();
    ciphers.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let ciphers: serde_json::Map<String, Value> = ciphers
        .into_iter()
        .take(TOP_VALUES)
        .map(|(k, v)| (format!("0x{k:04x}"), json!(v)))
        .collect();
    let top = |t: &crate::stats::TopK| -> Value {
        t.top(TOP_VALUES)
            .into_iter()
            .map(|(k, v)| json!({"value": k, "count": v}))
            .collect()
    };
    json!({
        "type": "server",
        "ts": ts,
        "server": s.server.to_string(),
        "role": s.role.as_str(),
        "handshakes": s.handshakes(),
        "full": s.full,
        "resumed": s.resumed,
        "resumed_by": s.resumed_by,
        "offered": s.offered,
        "offered_by": s.offered_by,
        "rejected": s.rejected,
        "rejected_after_unclean": s.rejected_after_unclean,
        "rejected_after_clean": s.rejected_after_clean,
        "rejected_origin_unknown": s.rejected_origin_unknown,
        "rejected_by_cause": s.rejected_by_cause,
        "rejected_after_idle_unclean": s.rejected_after_idle_unclean,
        "hrr": s.hrr,
        "early_data_offered": s.early_data_offered,
        "incomplete": s.incomplete,
        "failed": s.failed,
        "late": s.late,
        "clean_closes": s.clean_closes,
        "unclean_closes": s.unclean_closes,
        "unknown_closes": s.unknown_closes,
        "rst_by_client": s.rst_by_client,
        "rst_by_server": s.rst_by_server,
        "versions": versions,
        "ciphers": ciphers,
        "sni": top(&s.sni),
        "alpn": top(&s.alpn),
        "handshake_ms": {"full": ms(&s.handshake_full), "resumed": ms(&s.handshake_resumed)},
    })
}

/// The closing line: totals over all servers plus everything that was lost
/// or skipped, so nothing is dropped silently.
#[must_use]
pub fn summary_line(
    tracker: &Tracker,
    kernel: Option<KernelStats>,
    extra: &Value,
    ts: f64,
) -> Value {
    let sum = Summary::of(tracker.servers());
    let Totals {
        events,
        evicted_flows,
        evicted_sessions,
        malformed_hellos,
        truncated_hellos,
        reassembled_hellos,
        orphan_chunks,
        untracked_events,
        unanswered_hellos,
        wrong_direction,
        unacknowledged,
        evicted_servers,
        direction_unchecked,
        evicted_timed_out,
        dropped_records,
        evicted_holders,
        evicted_ticket_sets,
        evicted_evidence,
        tls13_origins_decided,
        tls13_origins_undecided,
    } = tracker.totals;
    let k = kernel.unwrap_or_default();
    let mut v = json!({
        "type": "summary",
        "ts": ts,
        "servers": sum.servers,
        "handshakes": sum.handshakes(),
        "full": sum.full,
        "resumed": sum.resumed,
        "offered": sum.offered,
        "rejected": sum.rejected,
        "rejected_after_unclean": sum.rejected_after_unclean,
        "hrr": sum.hrr,
        "incomplete": sum.incomplete,
        "failed": sum.failed,
        "late": sum.late,
        "events": events,
        "lost_events": k.lost_events,
        "evicted_flows": evicted_flows,
        "evicted_sessions": evicted_sessions,
        "malformed_hellos": malformed_hellos,
        "truncated_hellos": truncated_hellos,
        "reassembled_hellos": reassembled_hellos,
        "split_hellos": k.split_hellos,
        "orphan_chunks": orphan_chunks,
        "untracked_events": untracked_events,
        "unanswered_hellos": unanswered_hellos,
        "evicted_servers": evicted_servers,
        "evicted_timed_out": evicted_timed_out,
        "dropped_records": dropped_records,
        // Captures without packet direction: roles and answers were
        // checked by sequence numbers only.
        "direction_checked": direction_unchecked == 0,
        "direction_unchecked": direction_unchecked,
        "connections": tracker.connections(),
        "skipped": {
            "malformed": k.malformed,
            "fragment": k.fragments,
            "too_deep": k.too_deep,
            "encapsulation": k.encapsulation,
            "wrong_direction": wrong_direction,
            "unacknowledged": unacknowledged,
        },
    });
    // Past json!'s recursion limit in one macro call.
    let history = json!({
        "evicted_holders": evicted_holders,
        "evicted_ticket_sets": evicted_ticket_sets,
        "evicted_evidence": evicted_evidence,
        // How often a rejected TLS 1.3 offer's possible origins all ended
        // alike, so that its close could be blamed (`tracker::tickets`).
        "tls13_origins": {"decided": tls13_origins_decided, "undecided": tls13_origins_undecided},
    });
    if let (Value::Object(m), Value::Object(h)) = (&mut v, history) {
        m.extend(h);
    }
    if let (Some(c), Value::Object(m)) = (k.cost, &mut v) {
        m.insert("kernel_run_s".to_owned(), json!(c.run_seconds()));
        m.insert("kernel_runs".to_owned(), json!(c.runs));
    }
    if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
        for (key, val) in e {
            m.insert(key.clone(), val.clone());
        }
    }
    v
}

/// What to add to a time on the events' clock to make it nanoseconds
/// since the Unix epoch: a live source's clock is CLOCK_MONOTONIC
/// (`now_ns` is its reading now), a capture's is the epoch already.
#[must_use]
pub fn epoch_offset_ns(real_time: bool, now_ns: u64) -> i128 {
    if !real_time {
        return 0;
    }
    let epoch_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    i128::try_from(epoch_ns).unwrap_or(0) - i128::from(now_ns)
}

/// The `"type":"handshake"` lines of the connections the tracker let go
/// since the last call, and with `open` those it still tracks
/// (`--log-handshakes`; docs/operations.md lists the fields). Always
/// JSON: they are for programs, such as the proxy lab's comparison with
/// its oracle.
#[must_use]
pub fn handshake_lines(tracker: &Tracker, epoch_offset_ns: i128, open: bool) -> Vec<String> {
    let mut records = Vec::new();
    tracker.take_records(&mut records);
    if open {
        records.extend(tracker.open_records());
    }
    let ts = now_unix();
    records
        .iter()
        .map(|r| handshake_line(r, epoch_offset_ns, ts).to_string())
        .collect()
}

/// One connection's record.
#[must_use]
pub fn handshake_line(r: &HandshakeRecord, epoch_offset_ns: i128, ts: f64) -> Value {
    #[expect(clippy::cast_precision_loss, reason = "ns to s, to the microsecond")]
    let start = (i128::from(r.start_ns) + epoch_offset_ns) as f64 / 1e9;
    let version = (r.version != 0).then(|| ProtocolVersion(r.version).to_string());
    let offered = r.offered.map(|m| match m {
        Method::SessionId => "session_id",
        Method::Ticket => "ticket",
        Method::Psk => "psk",
    });
    json!({
        "type": "handshake",
        "ts": ts,
        "client": r.client.to_string(),
        "server": r.server.to_string(),
        "role": r.role.as_str(),
        "start": (start * 1e6).round() / 1e6,
        "kind": r.kind.as_str(),
        "version": version,
        "offered": offered,
        "cause": r.cause.map(crate::stats::Cause::as_str),
        "close_client": r.close_client.as_str(),
        "close_server": r.close_server.as_str(),
    })
}

/// Seconds since the Unix epoch, for the `ts` field.
#[must_use]
pub fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| (d.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// The `--log-format text` line: one human-readable line per server.
#[must_use]
pub fn text_line(s: &ServerStats, ts: f64) -> String {
    let reuse = percent(s.resumed, s.handshakes()).unwrap_or(0.0);
    format!(
        "{} {} {} full={} resumed={} reuse={reuse:.1}% offered={} rejected={} (after_unclean={} after_clean={}) rst_client={} rst_server={} unclean_closes={} hrr={} failed={} incomplete={}",
        rfc3339(ts),
        s.role.as_str(),
        s.server,
        s.full,
        s.resumed,
        s.offered,
        s.rejected,
        s.rejected_after_unclean,
        s.rejected_after_clean,
        s.rst_by_client,
        s.rst_by_server,
        s.unclean_closes,
        s.hrr,
        s.failed,
        s.incomplete,
    )
}

/// The line written when a diagnosis appears, changes or goes away
/// (`diagnosis::window`): what happened, the rule and its text, and the
/// window's counts behind it.
#[must_use]
pub fn diagnosis_line(c: &Change, format: LogFormat, ts: f64) -> String {
    let d = &c.diagnosis;
    match format {
        LogFormat::Json => {
            #[expect(clippy::cast_precision_loss, reason = "seconds for output")]
            let window_s = (c.span_ns as f64 / 1e9).round();
            json!({
                "type": "diagnosis",
                "ts": ts,
                "event": c.kind.as_str(),
                "active": matches!(c.kind, ChangeKind::Appeared | ChangeKind::Changed),
                "server": c.server.to_string(),
                "role": c.role.as_str(),
                "rule": d.rule,
                "severity": d.severity.as_str(),
                "previous": c.previous,
                "text": d.text,
                "window_s": window_s,
                "counts": c.counts,
            })
            .to_string()
        }
        LogFormat::Text => format!(
            "{} diagnosis {} {} {} {} {}: {}",
            rfc3339(ts),
            c.kind.as_str(),
            c.role.as_str(),
            c.server,
            d.severity.as_str(),
            d.rule,
            d.text
        ),
    }
}

/// Unix seconds as an RFC 3339 UTC timestamp, to the second.
#[must_use]
pub fn rfc3339(ts: f64) -> String {
    #[expect(
        clippy::cast_possible_truncation,
        reason = "Unix seconds, far inside i64"
    )]
    let secs = ts.max(0.0).floor() as i64;
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn rfc3339_matches_known_dates() {
        assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400.0), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_330_672.5), "2026-12-03T20:44:32Z");
    }
}
