//! `bench rss`: the tracker's resident memory holding 100k and 1M
//! connections, each size in a child process of its own.

use std::{env, process::Command};

use anyhow::{Context as _, ensure};
use monitor::tracker::{Limits, Tracker};
use monitor_common::{
    emit::event::{self as ev, Summary},
    event::{Direction, EventHeader, EventKind, TlsSummary, hello_flags},
    net::{TCP_ACK, TCP_PSH},
};
use serde_json::{Value, json};

use super::{SERVER_IP, SERVER_PORT, SNI, client};

fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Each size in a process of its own, so one does not reuse the other's heap.
pub fn rss() -> anyhow::Result<Value> {
    let exe = env::current_exe().context("locating this executable")?;
    let mut out = serde_json::Map::new();
    for (key, n) in [("rss_mb_100k", 100_000u32), ("rss_mb_1m", 1_000_000)] {
        let child = Command::new(&exe)
            .args(["rss-child", &n.to_string()])
            .output()
            .context("starting the rss child")?;
        ensure!(
            child.status.success(),
            "rss child for {n} failed: {}",
            String::from_utf8_lossy(&child.stderr)
        );
        let v: Value = serde_json::from_slice(&child.stdout).context("rss child output")?;
        out.insert(key.to_owned(), v["rss_mb"].clone());
        out.insert(format!("{key}_detail"), v);
    }
    Ok(Value::Object(out))
}

fn mib(kib: u64) -> f64 {
    #[expect(clippy::cast_precision_loss, reason = "KiB counts far below 2^52")]
    let k = kib as f64;
    k / 1024.0
}

/// A ClientHello event from client `i`: its own address and port, so every
/// one opens a connection that waits for its ServerHello.
fn client_hello_event(i: u32, ts_ns: u64) -> (EventHeader, TlsSummary) {
    let h = EventHeader {
        kind: EventKind::TLS.0,
        direction: Direction::INGRESS.0,
        tcp_flags: TCP_ACK | TCP_PSH,
        ts_ns,
        ..ev::header(client(i).into(), (SERVER_IP, SERVER_PORT).into())
    };
    let mut session_id = [0; 32];
    session_id[..4].copy_from_slice(&i.to_be_bytes());
    let t = Summary::client_hello()
        .flags(hello_flags::TICKET_EXT | hello_flags::OFFERS_TLS13)
        .session_id(&session_id)
        .sni(SNI)
        .alpn(b"h2")
        .build();
    (h, t)
}

pub fn rss_child(n: u32) -> Value {
    let before = vm_rss_kib();
    let mut tracker = Tracker::new(Limits {
        max_connections: 2_000_000,
        ..Limits::default()
    });
    for i in 0..n {
        let (h, t) = client_hello_event(i, 1_000_000_000 + u64::from(i));
        tracker.on_tls(&h, &t);
    }
    let after = vm_rss_kib();
    let conns = tracker.connections();
    let grown = after.saturating_sub(before);
    #[expect(clippy::cast_precision_loss, reason = "byte counts far below 2^52")]
    let per_conn = (grown * 1024) as f64 / f64::from(n.max(1));
    json!({
        "connections": conns,
        "rss_mb": mib(grown),
        "rss_mb_before": mib(before),
        "rss_mb_after": mib(after),
        "bytes_per_connection": per_conn,
    })
}
