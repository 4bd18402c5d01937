//! Arbitrary bytes as a TCP payload, straight into the TLS record walk.
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor_common::{
    emit::Frame,
    event::{ALPN_MAX, MAX_ITEMS, SESSION_ID_MAX, SNI_MAX, TlsSummary},
    tls::summarize,
};

fuzz_target!(|data: &[u8]| {
    let mut s = TlsSummary::default();
    summarize(data, 0, data.len(), &mut s);
    assert!(usize::from(s.n_items) <= MAX_ITEMS, "n_items {}", s.n_items);
    let h = &s.hello;
    assert!(usize::from(h.session_id_len) <= SESSION_ID_MAX);
    assert!(usize::from(h.sni_len) <= SNI_MAX);
    assert!(usize::from(h.alpn_len) <= ALPN_MAX);

    // The same payload in a frame, behind its headers: offsets shift, the
    // summary otherwise must not change.
    if data.len() < 4096 {
        let framed = Frame::default().emit(data);
        let start = framed.len() - data.len();
        let mut t = TlsSummary::default();
        summarize(&framed[..], start, framed.len(), &mut t);
        assert_eq!(t.n_items, s.n_items);
        assert_eq!(t.items, s.items);
        assert_eq!(t.hello, s.hello);
    }
});
