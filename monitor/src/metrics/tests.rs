use monitor_common::{
    emit::event::{self as ev, Summary},
    event::{Direction, EventHeader, hello_flags},
};

use super::*;
use crate::tracker::Limits;

/// What a page reads, nothing lost.
fn sources<'a>(
    tracker: &'a Tracker,
    kernel: &'a KernelStats,
    diagnoses: &'a Diagnoses,
) -> Sources<'a> {
    Sources {
        tracker,
        kernel,
        losses: Losses::default(),
        diagnoses,
    }
}

/// A tracker that saw one resumed TLS 1.3 handshake to 10.0.0.2:443.
fn one_resumption() -> Tracker {
    let mut t = Tracker::new(Limits::default());
    let h = EventHeader {
        direction: Direction::EGRESS.0,
        tcp_flags: monitor_common::net::TCP_ACK,
        ts_ns: 1,
        ..ev::header(([10, 0, 0, 1], 5000).into(), ([10, 0, 0, 2], 443).into())
    };
    let ch = Summary::client_hello()
        .flags(hello_flags::OFFERS_TLS13 | hello_flags::PSK)
        .build();
    t.on_tls(&h, &ch);
    // 1.5 ms after the ClientHello.
    let back = EventHeader {
        direction: Direction::INGRESS.0,
        ts_ns: 1_500_001,
        ..ev::reply(&h)
    };
    let sh = Summary::server_hello(&[])
        .flags(hello_flags::PSK)
        .selected_version(0x0304)
        .build();
    t.on_tls(&back, &sh);
    t
}

#[test]
fn both_formats_parse_with_the_reference_parser() {
    let t = one_resumption();
    let k = KernelStats {
        lost_events: 7,
        ..KernelStats::default()
    };
    let none = Diagnoses::new(0);
    let src = sources(&t, &k, &none);
    for format in [Format::Text, Format::OpenMetrics] {
        let page = render(&src, format);
        let samples = xtask::programs::prometheus_samples(&page)
            .unwrap_or_else(|e| panic!("{format:?}: {e:#}\n{page}"));
        let server = "role=backend,server=10.0.0.2:443";
        for want in [
            format!("tlsmon_handshakes_total kind=resumed,{server} 1"),
            format!("tlsmon_handshakes_total kind=full,{server} 0"),
            format!("tlsmon_resumed_total method=psk,{server} 1"),
            format!("tlsmon_offered_total method=psk,{server} 1"),
            format!("tlsmon_handshakes_by_version_total {server},version=TLSv1.3 1"),
            format!("tlsmon_rejected_by_last_close_total close=unknown,{server} 0"),
            format!("tlsmon_closes_total kind=unknown,{server} 0"),
            "tlsmon_tls13_origins_total outcome=decided 0".to_owned(),
            "tlsmon_evicted_holders_total  0".to_owned(),
            format!("tlsmon_rejected_total cause=server_restart,{server} 0"),
            format!("tlsmon_rejected_total cause=unknown,{server} 0"),
            // 1.5 ms: above the 1 ms bucket, inside the 2.5 ms one.
            format!("tlsmon_handshake_duration_seconds_bucket kind=resumed,le=0.001,{server} 0"),
            format!("tlsmon_handshake_duration_seconds_bucket kind=resumed,le=0.0025,{server} 1"),
            format!("tlsmon_handshake_duration_seconds_bucket kind=resumed,le=+Inf,{server} 1"),
            format!("tlsmon_handshake_duration_seconds_count kind=resumed,{server} 1"),
            format!("tlsmon_handshake_duration_seconds_sum kind=resumed,{server} 0.0015"),
            "tlsmon_lost_events_total  7".to_owned(),
            "tlsmon_connections  1".to_owned(),
        ] {
            assert!(
                samples.contains(&want),
                "{format:?}: missing {want:?} in {samples:#?}"
            );
        }
    }
}

#[test]
fn a_diagnosis_is_a_gauge_while_it_holds() {
    let t = one_resumption();
    let k = KernelStats::default();
    let mut s = crate::sim::blank_stats(Role::Backend);
    s.offered = 20;
    s.rejected = 20;
    s.rejected_by_cause.after_unclean = 20;
    let mut d = Diagnoses::new(0);
    d.tick(1_000_000_000, &[&s]);
    let src = sources(&t, &k, &d);
    let want = "tlsmon_diagnosis role=backend,rule=rejected-after-unclean-close,\
                server=10.0.9.9:443,severity=critical 1";
    for format in [Format::Text, Format::OpenMetrics] {
        let page = render(&src, format);
        let samples = xtask::programs::prometheus_samples(&page)
            .unwrap_or_else(|e| panic!("{format:?}: {e:#}\n{page}"));
        assert!(samples.iter().any(|l| l == want), "{samples:#?}");
    }
    // Cleared or forgotten, it is no longer a series.
    d.tick(2_000_000_000, &[]);
    let src = sources(&t, &k, &d);
    assert!(!render(&src, Format::Text).contains("rule="));
}

#[test]
fn text_names_counters_with_total_and_openmetrics_ends_with_eof() {
    let t = one_resumption();
    let k = KernelStats::default();
    let none = Diagnoses::new(0);
    let src = sources(&t, &k, &none);
    let text = render(&src, Format::Text);
    assert!(
        text.contains("# TYPE tlsmon_handshakes_total counter\n"),
        "{text}"
    );
    assert!(!text.contains("# EOF"), "{text}");
    let om = render(&src, Format::OpenMetrics);
    assert!(om.contains("# TYPE tlsmon_handshakes counter\n"), "{om}");
    assert!(
        om.contains("# UNIT tlsmon_handshake_duration_seconds seconds\n"),
        "{om}"
    );
    assert!(om.ends_with("# EOF\n"), "{om}");
}
