//! Truncated and bit-flipped copies of the fixtures' real handshake frames
//! through the shared parser: a cut hello never looks complete, a cut in
//! the headers is skipped, and no flip panics.

#[path = "support/tshark_frames.rs"]
mod tshark_frames;

use std::fmt::Write as _;

use monitor_common::{
    classify::classify,
    event::{Decoded, Direction, Hello, TICKET_ID_LEN, TlsSummary, hello_flags as hf},
    net::{ETHERTYPE_IPV4, ETHERTYPE_IPV6, LinkType, l3, tcp},
};
use tshark_frames::{Frame, flag_names, frames};

// ---- robustness on real frames ------------------------------------------

const FIXTURES: [&str; 6] = [
    "tls12_sessionid_resumption",
    "tls12_ticket_resumption",
    "tls13_psk_resumption",
    "tls13_hrr",
    "tls12_rejected",
    "tls13_early_data",
];

/// A copy of `frame` whose TCP payload is cut to `keep` bytes, with the IP
/// length field rewritten to match: what a segment carrying only the start
/// of that payload would look like.
fn with_payload_prefix(frame: &Frame, keep: usize) -> Vec<u8> {
    let seg = tcp(frame.data.as_slice(), frame.link).unwrap();
    let (l3_off, ethertype) = l3(frame.data.as_slice(), frame.link).unwrap();
    let mut out = frame.data[..seg.payload_off + keep].to_vec();
    let (at, len) = match ethertype {
        ETHERTYPE_IPV4 => (l3_off + 2, seg.payload_off - l3_off + keep),
        ETHERTYPE_IPV6 => (l3_off + 4, seg.payload_off - l3_off - 40 + keep),
        other => panic!("ethertype 0x{other:04x}"),
    };
    out[at..at + 2].copy_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
    out
}

fn tls_summary(data: &[u8], link: LinkType) -> Option<TlsSummary> {
    match classify(data, link, Direction::UNKNOWN, 0) {
        Ok(Some(Decoded::Tls(_, s))) => Some(s),
        _ => None,
    }
}

fn sane(s: &TlsSummary) {
    let h = &s.hello;
    assert!(usize::from(s.n_items) <= s.items.len());
    assert!(usize::from(h.session_id_len) <= h.session_id.len());
    assert!(usize::from(h.sni_len) <= h.sni.len());
    assert!(usize::from(h.alpn_len) <= h.alpn.len());
}

/// The hello as it must look when its bytes are all present, ignoring what
/// later messages in the segment add (a NewSessionTicket).
fn hello_part(h: &Hello) -> Hello {
    let mut h = *h;
    h.flags &= !hf::NEW_TICKET;
    if h.flags & hf::TICKET_OFFERED == 0 {
        h.ticket_id = [0; TICKET_ID_LEN];
    }
    h
}

/// Feeds `cut(frame, keep)` for every `keep` shorter than each TLS frame's
/// payload through classify: it must not panic, a ClientHello missing bytes
/// must be flagged TRUNCATED (or not reported at all), and a ClientHello
/// whose bytes are all present must read exactly as in the whole frame.
fn check_prefixes(cut: impl Fn(&Frame, usize) -> Vec<u8>) {
    let mut checked = 0;
    let mut failures = Vec::new();
    for name in FIXTURES {
        for frame in frames(name) {
            let Some(full) = tls_summary(&frame.data, frame.link) else {
                continue;
            };
            let seg = tcp(frame.data.as_slice(), frame.link).unwrap();
            let is_ch = full.hello.flags & hf::CLIENT_HELLO != 0;
            // Payload offset where the ClientHello message ends.
            let ch_end = if is_ch {
                usize::try_from(full.hello_at + full.hello_len).unwrap() - seg.payload_off
            } else {
                0
            };
            for keep in 0..seg.payload_len {
                let Some(s) = tls_summary(&cut(&frame, keep), frame.link) else {
                    continue;
                };
                sane(&s);
                checked += 1;
                if !is_ch || s.hello.flags & hf::CLIENT_HELLO == 0 {
                    continue;
                }
                if keep < ch_end {
                    if s.hello.flags & hf::TRUNCATED == 0 {
                        failures.push(format!(
                            "{name} frame {}: ClientHello ends at payload byte {ch_end}, cut at {keep}: flags [{}], not TRUNCATED",
                            frame.number,
                            flag_names(s.hello.flags)
                        ));
                    }
                } else if hello_part(&s.hello) != hello_part(&full.hello) {
                    failures.push(format!(
                        "{name} frame {}: whole ClientHello, cut at {keep}: {:?}, uncut {:?}",
                        frame.number, s.hello, full.hello
                    ));
                }
            }
        }
    }
    assert!(checked > 1000, "only {checked} truncated frames classified");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        summarize_failures(&failures)
    );
}

/// Keeps a long failure list readable: the first few, then a count.
fn summarize_failures(failures: &[String]) -> String {
    let mut out = failures
        .iter()
        .take(12)
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    if failures.len() > 12 {
        let _ = write!(out, "\n... and {} more", failures.len() - 12);
    }
    out
}

#[test]
fn payload_prefixes_never_look_like_complete_hellos() {
    // As if the segment carried only the start of the payload.
    check_prefixes(with_payload_prefix);
}

#[test]
fn snap_length_cuts_never_look_like_complete_hellos() {
    // As if the capture's snap length cut the frame: the IP header still
    // claims the whole payload.
    check_prefixes(|frame, keep| {
        let seg = tcp(frame.data.as_slice(), frame.link).unwrap();
        frame.data[..seg.payload_off + keep].to_vec()
    });
}

#[test]
fn cuts_inside_the_headers_are_skipped() {
    for name in FIXTURES {
        for frame in frames(name) {
            let Ok(seg) = tcp(frame.data.as_slice(), frame.link) else {
                continue;
            };
            for keep in 0..seg.payload_off {
                let result = classify(&frame.data[..keep], frame.link, Direction::UNKNOWN, 0);
                assert!(
                    result.is_err(),
                    "{name} frame {}: cut at {keep}: {result:?}",
                    frame.number
                );
            }
        }
    }
}

#[test]
fn bit_flips_in_hello_frames_do_not_panic() {
    let mut flipped = 0u32;
    for name in FIXTURES {
        for frame in frames(name) {
            let Some(full) = tls_summary(&frame.data, frame.link) else {
                continue;
            };
            if full.hello.flags & (hf::CLIENT_HELLO | hf::SERVER_HELLO) == 0 {
                continue;
            }
            let mut data = frame.data.clone();
            for byte in 0..data.len() {
                for bit in 0..8 {
                    data[byte] ^= 1 << bit;
                    if let Some(s) = tls_summary(&data, frame.link) {
                        sane(&s);
                    }
                    data[byte] ^= 1 << bit;
                    flipped += 1;
                }
            }
            assert_eq!(data, frame.data);
        }
    }
    assert!(flipped > 10_000, "only {flipped} flips");
}
