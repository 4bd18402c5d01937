//! `--kernel-log` end to end: the real daemon, the kernel program attached
//! to a veth, malformed frames sent from the other namespace through an
//! `AF_PACKET` socket. With the flag, the kernel's record of each reaches
//! tlsmon's diagnostics (stderr), at most 8 a second per CPU, the rest
//! counted in the next record; without it, none does. What is expected
//! comes from outside tlsmon: how many frames the test sent, their length,
//! the interface's index as the namespace's kernel reports it. Needs root.

mod common;

use std::{
    net::SocketAddrV4,
    thread,
    time::{Duration, Instant},
};

use common::{Attacker, Lab, Proc, Side, output, read, start_tlsmon, stop_tlsmon, tcp_frame};
use monitor_common::net::TCP_ACK;
use serde_json::Value;

const MONITORED: Side = Side::Client;
const ATTACKER: Side = Side::Server;
/// What the kernel writes at most per CPU and second (monitor-ebpf's
/// `log::PER_SECOND`).
const PER_SECOND: usize = 8;
const WHAT: &str = "tlsmon: kernel: packet skipped as malformed: ";

/// A TCP segment whose data offset says 16 bytes, less than a TCP header
/// (RFC 9293 §3.1: at least 5 words): skipped as malformed.
fn malformed(lab: &Lab, attacker: &Attacker) -> Vec<u8> {
    let from = SocketAddrV4::new(lab.ip(ATTACKER).parse().unwrap(), 40_000);
    let to = SocketAddrV4::new(lab.ip(MONITORED).parse().unwrap(), 443);
    let mut frame = tcp_frame(attacker.macs(), from, to, (1, 1, TCP_ACK), b"0123456789");
    // Ethernet (14) and IPv4 without options (20), then byte 12 of TCP.
    frame[14 + 20 + 12] = 4 << 4;
    frame
}

/// The monitored veth's index, from its namespace's kernel.
fn ifindex(lab: &Lab) -> u32 {
    let name = std::ffi::CString::new(lab.iface(MONITORED)).unwrap();
    common::in_netns(lab.ns(MONITORED), move || {
        // SAFETY: if_nametoindex reads a valid C string.
        unsafe { libc::if_nametoindex(name.as_ptr()) }
    })
}

/// The CPUs this thread may run on.
fn cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is valid; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid out-pointer of the size given.
    let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &raw mut set) };
    assert_eq!(
        rc,
        0,
        "sched_getaffinity: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: reads of the set just filled.
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

/// Keeps this thread on `cpu`: a frame sent on a veth is received on the
/// sending CPU (its backlog), so this says which CPU's budget it draws on.
fn pin(cpus: &[usize]) {
    // SAFETY: as in `cpus`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        // SAFETY: `c` is below CPU_SETSIZE (it came from such a set).
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: a valid set of the size given.
    let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set) };
    assert_eq!(
        rc,
        0,
        "sched_setaffinity: {}",
        std::io::Error::last_os_error()
    );
}

/// The kernel's records in tlsmon's stderr: (ifindex, len, suppressed).
fn records(tlsmon: &Proc) -> Vec<(u32, usize, u64)> {
    read(&tlsmon.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix(WHAT))
        .map(|rest| {
            let field = |name: &str| -> u64 {
                rest.split(' ')
                    .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("no {name} in {rest:?}"))
            };
            (
                u32::try_from(field("ifindex")).unwrap(),
                usize::try_from(field("len")).unwrap(),
                field("suppressed"),
            )
        })
        .collect()
}

fn skipped_malformed(summary: &Value) -> u64 {
    summary["skipped"]["malformed"]
        .as_u64()
        .unwrap_or_else(|| panic!("no skipped.malformed in {summary}"))
}

/// A burst of malformed frames within a second, then, once the second is
/// over, one more from each CPU: the burst is logged up to the budget,
/// the rest counted, and the count reported by each CPU's next record.
#[test]
fn malformed_frames_are_logged_with_the_flag_within_the_budget() {
    const BURST: usize = 40;
    let mut lab = Lab::new("klon", 41);
    let tlsmon = start_tlsmon(
        &mut lab,
        "tlsmon",
        &["--headless", "--interval", "60", "--kernel-log"],
    );
    let attacker = lab.attacker(ATTACKER);
    let frame = malformed(&lab, &attacker);
    let allowed = cpus();
    let burst_at = Instant::now();
    pin(&allowed[..1]);
    for _ in 0..BURST {
        attacker.send(&frame);
    }
    let burst_took = burst_at.elapsed();
    thread::sleep(Duration::from_millis(1200));
    for &cpu in &allowed {
        pin(&[cpu]);
        attacker.send(&frame);
    }
    pin(&allowed);
    let sent = BURST + allowed.len();
    // Each frame is either a record or counted in a later one.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = records(&tlsmon);
    while seen.iter().map(|r| 1 + r.2).sum::<u64>() < sent as u64 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
        seen = records(&tlsmon);
    }
    let summary = stop_tlsmon(&mut lab, &tlsmon);
    let seen = records(&tlsmon);
    eprintln!(
        "kernel log: {sent} malformed frames sent ({BURST} in {burst_took:?} from CPU {}, then one \
         from each of {} CPUs); {} records, suppressed {:?}; skipped.malformed {}",
        allowed[0],
        allowed.len(),
        seen.len(),
        seen.iter().map(|r| r.2).collect::<Vec<_>>(),
        summary["skipped"]["malformed"]
    );
    assert_eq!(
        skipped_malformed(&summary),
        sent as u64,
        "{}",
        output(&tlsmon)
    );
    let want = (ifindex(&lab), frame.len());
    for r in &seen {
        assert_eq!((r.0, r.1), want, "ifindex and length of {r:?}");
    }
    // The burst took far less than a second: one budget's worth of it,
    // and one record per CPU after.
    if burst_took < Duration::from_millis(500) {
        assert!(
            seen.len() <= PER_SECOND + allowed.len(),
            "{} records: over the budget\n{}",
            seen.len(),
            output(&tlsmon)
        );
    }
    assert_eq!(
        seen.iter().map(|r| 1 + r.2).sum::<u64>(),
        sent as u64,
        "records and suppressed ones\n{}",
        output(&tlsmon)
    );
    // Kernel records are diagnostics, never output lines.
    assert!(
        !read(&tlsmon.stdout).contains("kernel"),
        "{}",
        output(&tlsmon)
    );
}

/// Without the flag the same frames are seen (and counted) but nothing is
/// logged.
#[test]
fn without_the_flag_nothing_is_logged() {
    const SENT: u64 = 5;
    let mut lab = Lab::new("klof", 42);
    let tlsmon = start_tlsmon(&mut lab, "tlsmon", &["--headless", "--interval", "60"]);
    let attacker = lab.attacker(ATTACKER);
    let frame = malformed(&lab, &attacker);
    for _ in 0..SENT {
        attacker.send(&frame);
    }
    thread::sleep(Duration::from_millis(1500));
    let summary = stop_tlsmon(&mut lab, &tlsmon);
    assert_eq!(skipped_malformed(&summary), SENT, "{}", output(&tlsmon));
    assert!(
        !read(&tlsmon.stderr).contains("kernel:"),
        "{}",
        output(&tlsmon)
    );
}

/// Off, the verifier knows the switch is 0 and neither walks nor keeps
/// the logging code: the classifiers and the log program are smaller, in
/// instructions processed and in the program the kernel runs, than on.
/// Prints both (docs/architecture.md quotes them).
#[test]
fn off_the_logging_code_is_pruned_by_the_verifier() {
    use monitor::kernel::{self, EGRESS, INGRESS, LOG, SPLIT};
    common::require_root();
    let work = |on: bool| -> Vec<(u32, u32)> {
        let ebpf = kernel::load_with(4096, on).expect("loading");
        [INGRESS, EGRESS, SPLIT, LOG]
            .into_iter()
            .map(|name| {
                let info = ebpf.program(name).unwrap().info().unwrap();
                (
                    info.verified_instruction_count().unwrap(),
                    info.size_translated().unwrap() / 8,
                )
            })
            .collect()
    };
    let (off, on) = (work(false), work(true));
    eprintln!(
        "(verified, translated) instructions of ingress, egress, split, log: off {off:?}, on {on:?}"
    );
    for (i, (off, on)) in off.iter().zip(&on).enumerate() {
        assert!(
            off.0 < on.0 && off.1 < on.1,
            "program {i}: off {off:?}, on {on:?}"
        );
    }
}
