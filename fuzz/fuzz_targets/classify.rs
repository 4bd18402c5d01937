//! Arbitrary bytes as a captured frame, through the whole per-packet path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor_common::{
    classify::classify,
    event::{
        ALPN_MAX, Decoded, Direction, EventKind, MAX_ITEMS, SESSION_ID_MAX, SNI_MAX, TlsSummary,
    },
    net::LinkType,
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
    let Ok(Some(ev)) = classify(data, link, Direction::UNKNOWN, 0) else {
        return;
    };
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

fuzz_target!(|data: &[u8]| {
    run(data, LinkType::ETHERNET);
    run(data, LinkType::RAW);
});
