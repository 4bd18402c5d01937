//! tlsmon as an unattended daemon: the metrics endpoint scraped over HTTP
//! and parsed with the reference exposition parser, the text log format,
//! log reopening on SIGHUP (logrotate), the final lines on SIGTERM, and the
//! capabilities it keeps after attaching. Real namespaces and openssl
//! peers. Needs root.

mod common;

use std::{fs, thread, time::Duration};

use common::{
    Lab, Side, TLS_PORT, output, read, reconnect, start_s_server, start_tlsmon, wait_for_text,
};

const CAP_NET_ADMIN: u64 = 1 << 12;
const CAP_BPF: u64 = 1 << 39;

/// Packets the client's interface has received plus sent: the kernel's own
/// count of the packets tlsmon's two classifiers run on.
fn packets(lab: &mut Lab) -> u64 {
    let dir = format!("/sys/class/net/{}/statistics", lab.iface(Side::Client));
    let out = lab.run(
        Side::Client,
        "packets",
        &[
            "cat",
            &format!("{dir}/rx_packets"),
            &format!("{dir}/tx_packets"),
        ],
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "reading {dir}: {}", out.stderr);
    out.stdout
        .lines()
        .map(|l| l.trim().parse::<u64>().unwrap())
        .sum()
}

fn status_field(pid: u32, field: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("tlsmon's /proc status");
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    u64::from_str_radix(hex.trim(), 16).unwrap()
}

#[test]
fn metrics_logs_signals_and_capabilities() {
    let mut lab = Lab::new("ops", 6);
    let (cert, key) = lab.make_cert();
    let _server = start_s_server(&mut lab, "s_server", &cert, &key);

    let log = lab.dir.join("tlsmon.log");
    let rotated = lab.dir.join("tlsmon.log.1");
    let log_arg = log.display().to_string();
    let packets_before_attach = packets(&mut lab);
    let tlsmon = start_tlsmon(
        &mut lab,
        "tlsmon",
        &[
            "--headless",
            "--interval",
            "1",
            "--log",
            &log_arg,
            "--log-format",
            "text",
            "--metrics",
            "127.0.0.1:9464",
            "--kernel-cost",
        ],
    );

    // Once attached, only what re-attaching needs is left.
    for field in ["CapEff:", "CapPrm:", "CapBnd:"] {
        assert_eq!(
            status_field(tlsmon.pid, field),
            CAP_BPF | CAP_NET_ADMIN,
            "{field} after attaching"
        );
    }

    let connect = format!("{}:{TLS_PORT}", lab.ip(Side::Server));
    let packets_before_load = packets(&mut lab);
    let (_, new, reused) = reconnect(&mut lab);
    let packets_after_load = packets(&mut lab);
    assert_eq!((new, reused), (1, 5), "s_client's own counts");
    // The metrics page refreshes every second.
    thread::sleep(Duration::from_millis(2500));

    // Fetched inside the namespace, parsed by the reference parser.
    let scraped = lab.run(
        Side::Client,
        "scrape",
        &[
            "curl",
            "--silent",
            "--show-error",
            "--max-time",
            "5",
            "http://127.0.0.1:9464/metrics",
        ],
        Duration::from_secs(20),
    );
    assert!(
        scraped.status.success(),
        "scrape failed: {}",
        scraped.stderr
    );
    let samples =
        xtask::programs::prometheus_samples(&scraped.stdout).unwrap_or_else(|e| panic!("{e:#}"));
    let server = format!("role=backend,server={connect}");
    for want in [
        format!("tlsmon_handshakes_total kind=full,{server} {new}"),
        format!("tlsmon_handshakes_total kind=resumed,{server} {reused}"),
        format!("tlsmon_offered_total method=session_id,{server} {reused}"),
        "tlsmon_lost_events_total  0".to_owned(),
    ] {
        assert!(samples.contains(&want), "missing {want:?} in\n{samples:#?}");
    }

    // logrotate: move the file away, SIGHUP, and tlsmon writes a new one.
    fs::rename(&log, &rotated).unwrap();
    lab.signal(&tlsmon, libc::SIGHUP);
    wait_for_text(&log, "full=", Duration::from_secs(10), &|| output(&tlsmon));
    let text_line = format!("backend {connect} full={new} resumed={reused} ");
    assert!(
        read(&rotated).contains(&text_line),
        "rotated log lacks {text_line:?}:\n{}",
        read(&rotated)
    );

    lab.signal(&tlsmon, libc::SIGTERM);
    let status = lab.wait(&tlsmon, Duration::from_secs(15));
    assert!(
        status.success(),
        "tlsmon on SIGTERM: {status}\n{}",
        output(&tlsmon)
    );
    let last = read(&log).lines().last().unwrap_or_default().to_owned();
    let summary: serde_json::Value =
        serde_json::from_str(&last).unwrap_or_else(|e| panic!("last line {last:?}: {e}"));
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["lost_events"], 0);
    assert!(read(&log).contains(&text_line), "final text line missing");

    let packets_at_end = packets(&mut lab);
    check_kernel_cost(
        &summary,
        &samples,
        packets_after_load - packets_before_load,
        packets_at_end - packets_before_attach,
    );
}

/// `--kernel-cost`: one run per packet in each direction (no split hellos
/// here, so no tail calls), between what the interface counted while the
/// load ran and everything since before tlsmon attached.
fn check_kernel_cost(
    summary: &serde_json::Value,
    samples: &[String],
    during_load: u64,
    since_attach: u64,
) {
    let runs = summary["kernel_runs"].as_u64().expect("kernel_runs");
    assert_eq!(summary["split_hellos"], 0);
    assert!(
        (during_load..=since_attach).contains(&runs),
        "kernel_runs {runs}: the interface counted {during_load} packets during the load, \
         {since_attach} in all"
    );
    let seconds = summary["kernel_run_s"].as_f64().expect("kernel_run_s");
    assert!(
        seconds > 0.0 && seconds < 1.0,
        "kernel_run_s {seconds} for {runs} runs"
    );
    for name in [
        "tlsmon_kernel_runs_total ",
        "tlsmon_kernel_run_seconds_total ",
    ] {
        let value: f64 = samples
            .iter()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in\n{samples:#?}"))
            .trim()
            .parse()
            .unwrap();
        assert!(value > 0.0, "{name}{value}");
    }
}
