//! ClientHellos with more extensions than the walk reads
//! (`tls::MAX_EXTENSIONS`), built by hand in RFC 8446 §4.1.2's layout,
//! through `tls::summarize`. A hostile client sent one with 1,000
//! (issue 14): the walk used to stop at the limit without a word, so a
//! pre_shared_key offer after it — where RFC 8446 §4.2.11 puts it — was
//! lost and the hello taken as whole.

use monitor_common::{
    event::{TlsSummary, hello_flags as hf},
    tls::{MAX_EXTENSIONS, summarize},
};

fn ext(ty: u16, data: &[u8]) -> Vec<u8> {
    let mut v = ty.to_be_bytes().to_vec();
    v.extend_from_slice(&u16::try_from(data.len()).unwrap().to_be_bytes());
    v.extend_from_slice(data);
    v
}

/// A ClientHello record with `unknown` empty extensions of unassigned
/// types, then pre_shared_key (one identity, one binder) when `psk`.
fn client_hello(unknown: usize, psk: bool) -> Vec<u8> {
    let mut exts: Vec<u8> = (0..unknown)
        .flat_map(|i| ext(0x1000 + u16::try_from(i).unwrap(), &[]))
        .collect();
    if psk {
        let mut identities = 4u16.to_be_bytes().to_vec();
        identities.extend_from_slice(&[0, 0, 0xee, 0xee]);
        let mut data = u16::try_from(identities.len() + 6)
            .unwrap()
            .to_be_bytes()
            .to_vec();
        data.extend_from_slice(&identities);
        data.extend_from_slice(&[0, 0, 0, 0]); // obfuscated_ticket_age
        data.extend_from_slice(&33u16.to_be_bytes());
        data.push(32);
        data.extend_from_slice(&[0xb1; 32]);
        exts.extend(ext(41, &data));
    }
    let mut body = vec![3, 3];
    body.extend_from_slice(&[0x11; 32]);
    body.push(0);
    body.extend_from_slice(&[0, 2, 0x13, 0x01, 1, 0]);
    body.extend_from_slice(&u16::try_from(exts.len()).unwrap().to_be_bytes());
    body.extend_from_slice(&exts);
    let len = u32::try_from(body.len()).unwrap().to_be_bytes();
    let mut msg = vec![1, len[1], len[2], len[3]];
    msg.extend_from_slice(&body);
    let mut rec = vec![22, 3, 1];
    rec.extend_from_slice(&u16::try_from(msg.len()).unwrap().to_be_bytes());
    rec.extend_from_slice(&msg);
    rec
}

fn summary(record: &[u8]) -> TlsSummary {
    let mut s = TlsSummary::default();
    summarize(record, 0, record.len(), &mut s);
    s
}

#[test]
fn a_psk_offer_after_the_limit_is_not_seen_and_the_hello_is_truncated() {
    for unknown in [MAX_EXTENSIONS, 100, 1000] {
        let s = summary(&client_hello(unknown, true));
        let flags = s.hello.flags;
        assert_eq!(flags & hf::PSK, 0, "{unknown}: the offer is past the limit");
        assert_ne!(flags & hf::TRUNCATED, 0, "{unknown}: must say so");
        assert_eq!(flags & hf::MALFORMED, 0, "{unknown}");
        assert_eq!(usize::from(s.hello.extensions), MAX_EXTENSIONS);
    }
}

#[test]
fn hellos_within_the_limit_are_whole() {
    // Exactly MAX_EXTENSIONS with the offer last: all read.
    let s = summary(&client_hello(MAX_EXTENSIONS - 1, true));
    assert_eq!(s.hello.flags & (hf::TRUNCATED | hf::MALFORMED), 0);
    assert_ne!(s.hello.flags & hf::PSK, 0);
    // Exactly MAX_EXTENSIONS, nothing after them.
    let s = summary(&client_hello(MAX_EXTENSIONS, false));
    assert_eq!(s.hello.flags & (hf::TRUNCATED | hf::MALFORMED), 0);
    // Cut inside the extensions: truncated, as before.
    let whole = client_hello(10, true);
    let cut = &whole[..whole.len() - 40];
    let mut s = TlsSummary::default();
    summarize(cut, 0, cut.len(), &mut s);
    assert_ne!(s.hello.flags & hf::TRUNCATED, 0);
}
