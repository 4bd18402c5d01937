//! The segments that can end a TLS 1.3 stream, through the real kernel
//! program (BPF_PROG_TEST_RUN) and the host engine: both must report the
//! length of the record that ends each one the same way
//! (`monitor_common::close`), and leave every other application-data
//! segment alone. The shapes are the ones measured on the wire
//! (docs/classification.md, "TLS 1.3 closes"). Needs root.

use monitor::{live::monotonic_ns, replay::KernelEngine};
use monitor_common::{
    classify::Classifier,
    close::{LAST_RECORD_ALERT, LAST_RECORD_LONGER, LAST_RECORD_NONE},
    emit,
    event::{Decoded, Direction, EventKind},
    net::{ETHERTYPE_IPV4, IPPROTO_TCP, LinkType, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST},
};

/// `records` back to back, each (outer content type, length) with a
/// body of pseudo-random bytes, as ciphertext looks.
fn records(records: &[(u8, usize)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut x: u32 = 0x9e37_79b9;
    for &(ty, n) in records {
        out.extend_from_slice(&[ty, 3, 3]);
        out.extend_from_slice(&u16::try_from(n).unwrap().to_be_bytes());
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            out.push(x.to_le_bytes()[0]);
        }
    }
    out
}

fn frame(flags: u8, payload: &[u8]) -> Vec<u8> {
    let tcp = emit::tcp(8443, 41000, 7_000_000, flags, payload);
    let ip = emit::ipv4(IPPROTO_TCP, [10, 0, 0, 2], [10, 0, 0, 1], &tcp);
    emit::ethernet(&[], ETHERTYPE_IPV4, &ip)
}

/// The event each engine makes of `frame` (kind and `last_record`), after
/// checking that they agree.
fn event(kernel: &mut KernelEngine, frame: &[u8]) -> Option<(EventKind, u8)> {
    let of = |events: Vec<Decoded>| -> Option<(EventKind, u8)> {
        match events.as_slice() {
            [] => None,
            [Decoded::Teardown(h)] => Some((EventKind(h.kind), h.last_record)),
            other => panic!("unexpected events {other:?}"),
        }
    };
    let k = of(kernel.run_frame(frame).expect("a test run"));
    let h = of(Classifier::default()
        .packet(
            frame,
            LinkType::ETHERNET,
            Direction::UNKNOWN,
            monotonic_ns(),
        )
        .expect("a TCP frame"));
    assert_eq!(k, h, "kernel and host disagree on {frame:02x?}");
    k
}

/// A case: its name, the TCP flags and payload, and the event wanted.
type Case = (&'static str, u8, Vec<u8>, Option<(EventKind, u8)>);

#[test]
fn the_record_that_ends_a_side_is_reported_by_both_engines() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "run as root (cargo xtask test)"
    );
    let mut k = KernelEngine::new().expect("loading the kernel program");
    let teardown = |n| Some((EventKind::TEARDOWN, n));
    let short = |n| Some((EventKind::SHORT_RECORD, n));
    let data = TCP_ACK | TCP_PSH;
    let cases: [Case; 11] = [
        // OpenSSL and HAProxy: close_notify alone, then a bare FIN.
        ("close_notify", data, records(&[(23, 19)]), short(19)),
        (
            "bare FIN",
            TCP_ACK | TCP_FIN,
            Vec::new(),
            teardown(LAST_RECORD_NONE),
        ),
        // AES-CCM-8 and a padded alert in a segment of its own.
        ("ccm8", data, records(&[(23, 11)]), short(11)),
        ("padded", data, records(&[(23, 35)]), short(35)),
        // Application data, even small, is not looked at further.
        ("data", data, records(&[(23, 1400)]), None),
        ("small data", data, records(&[(23, 52)]), None),
        ("two records", data, records(&[(23, 19), (23, 19)]), None),
        // JSSE: response, user_canceled and close_notify, padded, with FIN.
        (
            "jsse",
            TCP_ACK | TCP_FIN,
            records(&[(23, 96), (23, 35), (23, 35)]),
            teardown(35),
        ),
        // nginx's response with the FIN: no close_notify.
        (
            "response+FIN",
            TCP_ACK | TCP_FIN,
            records(&[(23, 168)]),
            teardown(LAST_RECORD_LONGER),
        ),
        // A RST after data and a close_notify in one segment.
        (
            "RST",
            TCP_ACK | TCP_RST,
            records(&[(23, 60), (23, 19)]),
            teardown(19),
        ),
        // TLS 1.2: the end of a record, then an encrypted alert, and FIN.
        (
            "tls12 alert",
            TCP_ACK | TCP_FIN,
            records(&[(23, 200), (21, 26)])[150..].to_vec(),
            teardown(0x1a | LAST_RECORD_ALERT),
        ),
    ];
    for (name, flags, payload, want) in cases {
        assert_eq!(event(&mut k, &frame(flags, &payload)), want, "{name}");
    }
}
