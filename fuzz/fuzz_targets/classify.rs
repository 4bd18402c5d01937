//! Arbitrary bytes as a captured frame, through the whole per-packet
//! pipeline in its host environment; and the same bytes as the payload of
//! a well-formed TCP segment (built with the test kit), so that the record
//! walk and the split-hello handling are reached without the fuzzer having
//! to find valid headers first.
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor_common::{
    classify::Classifier,
    emit::Frame,
    event::{
        ALPN_MAX, Decoded, Direction, EventKind, MAX_ITEMS, SESSION_ID_MAX, SNI_MAX, TlsSummary,
    },
    net::LinkType,
    split::CHUNK_MAX,
};

/// What every TLS summary must satisfy, whatever the input.
fn check(s: &TlsSummary) {
    assert!(usize::from(s.n_items) <= MAX_ITEMS, "n_items {}", s.n_items);
    assert!(s.items_cut <= 1);
    let h = &s.hello;
    assert!(
        usize::from(h.session_id_len) <= SESSION_ID_MAX,
        "session_id_len {}",
        h.session_id_len
    );
    assert!(usize::from(h.sni_len) <= SNI_MAX, "sni_len {}", h.sni_len);
    assert!(
        usize::from(h.alpn_len) <= ALPN_MAX,
        "alpn_len {}",
        h.alpn_len
    );
}

fn run(data: &[u8], link: LinkType) {
    let Ok(events) = Classifier::default().packet(data, link, Direction::UNKNOWN, 0) else {
        return;
    };
    let summaries = events
        .iter()
        .filter(|e| !matches!(e, Decoded::Chunk(..)))
        .count();
    assert!(summaries <= 1, "{summaries} summary events for one frame");
    for ev in events {
        let h = match ev {
            Decoded::Teardown(h) => {
                assert_eq!(h.kind, EventKind::TEARDOWN.0);
                h
            }
            Decoded::Tls(h, s) => {
                assert_eq!(h.kind, EventKind::TLS.0);
                check(&s);
                h
            }
            // The first segment of a ClientHello split over segments: its
            // bytes, which lie inside the frame.
            Decoded::Chunk(h, c) => {
                assert_eq!(h.kind, EventKind::CHUNK.0);
                assert!(!c.data.is_empty() && c.data.len() <= CHUNK_MAX);
                assert!(c.data.len() <= h.payload_len as usize);
                h
            }
        };
        assert!(h.family == 4 || h.family == 6, "family {}", h.family);
        // The payload lies inside the frame.
        assert!(
            (h.payload_len as usize) < data.len(),
            "payload_len {} of {}",
            h.payload_len,
            data.len()
        );
    }
}

/// Payloads that fit an IPv4 packet's 16-bit total length.
const MAX_PAYLOAD: usize = 65_535 - 40;

fuzz_target!(|data: &[u8]| {
    run(data, LinkType::ETHERNET);
    run(data, LinkType::RAW);
    if data.len() <= MAX_PAYLOAD {
        run(&Frame::default().emit(data), LinkType::ETHERNET);
    }
});
