//! ClientHellos that span TCP segments, put back together.
//!
//! The kernel (or the host engine) sends the TLS event of such a hello's
//! first segment, flagged `TRUNCATED`, and then the hello's bytes as
//! chunks (see `monitor_common::split`). This holds every truncated
//! ClientHello back, copies the chunks into place by their offset (in any
//! order, duplicates harmless), and once every byte is there runs the
//! shared `summarize` over the whole hello and releases that summary
//! instead, flagged `REASSEMBLED`. A hello whose bytes do not all arrive —
//! a chunk lost to a full ring buffer, a segment lost on the wire, an entry
//! evicted from the kernel's map, a hello the kernel does not reassemble —
//! is released with what the first segment showed (still `TRUNCATED`, and
//! counted as such) as soon as anything else happens on its connection
//! (the server cannot answer before the hello is complete), or after
//! `SPLIT_TIMEOUT_NS`.
//!
//! Pure: no I/O, no clock; time comes from event timestamps and `expire`.

use std::collections::HashMap;

use monitor_common::{
    event::{Chunk, Decoded, EventHeader, TlsSummary, hello_flags},
    split::{FlowKey, HelloAt, MAX_SPLIT_HELLOS, SPLIT_TIMEOUT_NS},
    tls::{HANDSHAKE_HEADER_LEN, RECORD_HEADER_LEN, summarize},
};

/// Events released by one call: a held hello of each direction of the
/// connection, then the event itself.
pub type Released = [Option<Decoded>; 3];

#[derive(Debug, Default)]
pub struct Hellos {
    pending: HashMap<FlowKey, Pending>,
    /// Chunks for no pending hello: their hello's event was lost, or they
    /// repeat bytes of a hello already released.
    pub orphan_chunks: u64,
    /// Hellos released unreassembled because [`MAX_SPLIT_HELLOS`] were
    /// already pending.
    pub overflow: u64,
}

#[derive(Debug)]
struct Pending {
    header: EventHeader,
    first: TlsSummary,
    buf: Vec<u8>,
    /// Byte ranges of `buf` filled so far, sorted and disjoint.
    have: Vec<(u32, u32)>,
}

impl Pending {
    fn add(&mut self, offset: u32, data: &[u8]) {
        let start = offset as usize;
        let Some(room) = self.buf.len().checked_sub(start) else {
            return;
        };
        let n = data.len().min(room);
        if n == 0 {
            return;
        }
        self.buf[start..start + n].copy_from_slice(&data[..n]);
        #[expect(
            clippy::cast_possible_truncation,
            reason = "buf is at most MAX_SPLIT_HELLO"
        )]
        let (mut lo, mut hi) = (offset, (start + n) as u32);
        // Merge with every range it touches or adjoins.
        self.have.retain(|&(a, b)| {
            if b < lo || a > hi {
                return true;
            }
            lo = lo.min(a);
            hi = hi.max(b);
            false
        });
        let at = self.have.partition_point(|&(a, _)| a < lo);
        self.have.insert(at, (lo, hi));
    }

    /// Bytes from the start with no gap.
    fn contiguous(&self) -> usize {
        match self.have.first() {
            Some(&(0, end)) => end as usize,
            _ => 0,
        }
    }

    /// The summary to release: from the whole hello when every byte is
    /// there, otherwise what the first segment showed.
    fn release(self) -> Decoded {
        let need = self.buf.len();
        if self.contiguous() < need {
            return Decoded::Tls(self.header, self.first);
        }
        let mut s = TlsSummary::default();
        summarize(&self.buf[..], 0, need, &mut s);
        s.hello.flags |= hello_flags::REASSEMBLED;
        Decoded::Tls(self.header, s)
    }
}

impl Hellos {
    /// Whether `d` has nothing to do with split hellos: nothing is pending
    /// and it neither starts nor continues one. The common case, which the
    /// caller handles directly instead of moving it through [`Self::push`].
    #[must_use]
    pub fn passes(&self, d: &Decoded) -> bool {
        self.pending.is_empty()
            && match d {
                Decoded::Tls(_, t) => !HelloAt::of(t).may_continue(),
                Decoded::Teardown(_) => true,
                Decoded::Chunk(..) => false,
            }
    }

    /// Takes the next event in ring-buffer order.
    pub fn push(&mut self, d: Decoded) -> Released {
        match d {
            Decoded::Tls(h, t) if HelloAt::of(&t).may_continue() => self.start(h, t),
            Decoded::Chunk(h, c) => self.chunk(&h, &c),
            other => {
                if self.pending.is_empty() {
                    return [Some(other), None, None];
                }
                // Anything else on the connection means the hello's sender
                // has moved on, or the peer has answered: release it.
                let h = match &other {
                    Decoded::Tls(h, _) | Decoded::Teardown(h) | Decoded::Chunk(h, _) => *h,
                };
                let key = FlowKey::from_header(&h);
                [
                    self.pending.remove(&key).map(Pending::release),
                    self.pending.remove(&reversed(&key)).map(Pending::release),
                    Some(other),
                ]
            }
        }
    }

    fn start(&mut self, h: EventHeader, t: TlsSummary) -> Released {
        let key = FlowKey::from_header(&h);
        let earlier = match self.pending.get(&key) {
            // The first segment again (a retransmission): keep collecting.
            Some(p) if p.header.seq == h.seq => return [None, None, None],
            Some(_) => self.pending.remove(&key).map(Pending::release),
            None => None,
        };
        let need = RECORD_HEADER_LEN + HANDSHAKE_HEADER_LEN + t.hello_len as usize;
        if self.pending.len() >= MAX_SPLIT_HELLOS as usize {
            self.overflow += 1;
            return [earlier, Some(Decoded::Tls(h, t)), None];
        }
        self.pending.insert(
            key,
            Pending {
                header: h,
                first: t,
                buf: vec![0; need],
                have: Vec::new(),
            },
        );
        [earlier, None, None]
    }

    fn chunk(&mut self, h: &EventHeader, c: &Chunk) -> Released {
        let key = FlowKey::from_header(h);
        let Some(p) = self.pending.get_mut(&key) else {
            self.orphan_chunks += 1;
            return [None, None, None];
        };
        p.add(c.offset, &c.data);
        if p.contiguous() < p.buf.len() {
            return [None, None, None];
        }
        [self.pending.remove(&key).map(Pending::release), None, None]
    }

    /// Releases hellos pending for longer than the kernel keeps them.
    pub fn expire(&mut self, now_ns: u64) -> Vec<Decoded> {
        let old: Vec<FlowKey> = self
            .pending
            .iter()
            .filter(|(_, p)| now_ns.saturating_sub(p.header.ts_ns) > SPLIT_TIMEOUT_NS)
            .map(|(k, _)| *k)
            .collect();
        old.iter()
            .filter_map(|k| self.pending.remove(k))
            .map(Pending::release)
            .collect()
    }

    #[must_use]
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

fn reversed(k: &FlowKey) -> FlowKey {
    FlowKey {
        src_addr: k.dst_addr,
        dst_addr: k.src_addr,
        src_port: k.dst_port,
        dst_port: k.src_port,
    }
}

#[cfg(test)]
mod tests {
    use monitor_common::{
        classify::Classifier,
        emit::{
            self,
            tls::{ClientHello, Extension, ServerHello},
        },
        event::{Direction, Hello, hello_flags as hf},
        net::LinkType,
    };

    use super::*;

    /// A ClientHello record (version 0x0301, as a first one may be) with
    /// these extensions.
    fn client_hello(extensions: Vec<Extension>) -> Vec<u8> {
        ClientHello {
            record_version: 0x0301,
            random: [7; 32],
            extensions,
            ..ClientHello::default()
        }
        .record()
    }

    /// A ServerHello record that picks TLS_AES_128_GCM_SHA256, with these
    /// extensions.
    fn server_hello(extensions: Vec<Extension>) -> Vec<u8> {
        ServerHello {
            record_version: 0x0301,
            random: [7; 32],
            extensions,
            ..ServerHello::default()
        }
        .record()
    }

    /// A TLS 1.3 ClientHello offering a PSK, which comes last (RFC 8446
    /// §4.2.11): record header, handshake header, body.
    fn psk_hello() -> Vec<u8> {
        client_hello(vec![
            Extension::supported_versions(&[0x0304]),
            // A 1,200-byte key_share stand-in (as large as a post-quantum one).
            Extension::new(51, &[0xab; 1200]),
            // pre_shared_key: identities and binders, contents irrelevant here.
            Extension::new(41, &[0; 10]),
        ])
    }

    /// Ethernet + IPv4 + TCP frame from 10.0.0.1:40000 to 10.0.0.2:443.
    fn frame(seq: u32, payload: &[u8], reply: bool) -> Vec<u8> {
        frame_on(40000, seq, 0, payload, reply)
    }

    /// A frame of the connection from 10.0.0.1:`port` to 10.0.0.2:443
    /// (from the server if `reply`), with PSH and ACK set. Link addresses,
    /// IP identification, flags, TTL and checksum, and the window are
    /// zero: nothing here reads them.
    fn frame_on(port: u16, seq: u32, ack: u32, payload: &[u8], reply: bool) -> Vec<u8> {
        let f = emit::Frame {
            eth: emit::EthernetRepr {
                dst: [0; 6],
                src: [0; 6],
                tags: vec![],
            },
            ip: emit::IpRepr::V4(emit::Ipv4Repr {
                ident: 0,
                dont_fragment: false,
                ttl: 0,
                checksum: false,
                ..emit::Ipv4Repr::default()
            }),
            tcp: emit::TcpRepr {
                src_port: port,
                seq,
                ack,
                window: 0,
                ..emit::TcpRepr::default()
            },
        };
        if reply { f.reply() } else { f }.emit(payload)
    }

    /// The hello cut into segments of `mss`, as (seq, frame).
    fn segments(hello: &[u8], mss: usize) -> Vec<Vec<u8>> {
        hello
            .chunks(mss)
            .enumerate()
            .map(|(i, c)| frame(1000 + u32::try_from(i * mss).unwrap(), c, false))
            .collect()
    }

    fn run(frames: &[Vec<u8>]) -> (Vec<Decoded>, Hellos) {
        let mut c = Classifier::default();
        let mut h = Hellos::default();
        let mut out = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let ts = u64::try_from(i).unwrap() * 1000;
            for d in c
                .packet(f, LinkType::ETHERNET, Direction::INGRESS, ts)
                .unwrap()
            {
                out.extend(h.push(d).into_iter().flatten());
            }
        }
        (out, h)
    }

    fn only_hello(out: &[Decoded]) -> TlsSummary {
        match out {
            [Decoded::Tls(_, t)] => *t,
            other => panic!("expected one TLS event, got {other:?}"),
        }
    }

    #[test]
    fn a_psk_in_the_second_segment_is_found() {
        let hello = psk_hello();
        // Whole, for reference: the PSK offer is there.
        let (whole, _) = run(&[frame(1000, &hello, false)]);
        let whole = only_hello(&whole);
        assert_eq!(whole.hello.flags & hf::TRUNCATED, 0);
        assert_ne!(whole.hello.flags & hf::PSK, 0);
        // Split at a small MSS: the first segment alone misses it ...
        let segs = segments(&hello, 536);
        assert!(segs.len() >= 3);
        let (first, _) = run(&segs[..1]);
        assert!(first.is_empty(), "held back: {first:?}");
        // ... and all of them together find it, and say how.
        let (out, h) = run(&segs);
        let t = only_hello(&out);
        assert_ne!(t.hello.flags & hf::PSK, 0);
        assert_ne!(t.hello.flags & hf::REASSEMBLED, 0);
        assert_eq!(t.hello.flags & hf::TRUNCATED, 0);
        assert_eq!(
            t.hello,
            Hello {
                flags: t.hello.flags,
                ..whole.hello
            }
        );
        assert_eq!((h.pending(), h.orphan_chunks), (0, 0));
    }

    #[test]
    fn reordered_and_repeated_segments_still_complete() {
        let segs = segments(&psk_hello(), 536);
        let mut shuffled = vec![segs[0].clone(), segs[2].clone(), segs[1].clone()];
        shuffled.extend(segs[1..].iter().cloned()); // retransmissions
        let (out, _) = run(&shuffled);
        let t = only_hello(&out);
        assert_ne!(t.hello.flags & hf::PSK, 0);
        assert_ne!(t.hello.flags & hf::REASSEMBLED, 0);
    }

    #[test]
    fn a_missing_segment_releases_the_truncated_hello_when_the_server_answers() {
        let segs = segments(&psk_hello(), 536);
        // The middle segment never arrives; the server's reply (any TLS
        // record) releases what the first segment showed.
        let reply = frame(5000, &emit::tls::record(21, &[2, 40]), true);
        let (out, _) = run(&[segs[0].clone(), segs[2].clone(), reply]);
        let [Decoded::Tls(h, t), Decoded::Tls(r, _)] = &out[..] else {
            panic!("expected the held hello, then the reply: {out:?}");
        };
        assert_eq!((h.src_port, r.src_port), (40000, 443));
        assert_ne!(t.hello.flags & hf::TRUNCATED, 0);
        assert_eq!(t.hello.flags & (hf::PSK | hf::REASSEMBLED), 0);
    }

    #[test]
    fn a_hello_left_alone_is_released_after_the_timeout() {
        let segs = segments(&psk_hello(), 536);
        let (out, mut h) = run(&segs[..2]);
        assert!(out.is_empty());
        assert!(h.expire(SPLIT_TIMEOUT_NS).is_empty());
        let released = h.expire(2 * SPLIT_TIMEOUT_NS);
        assert_eq!(released.len(), 1);
        assert_eq!(h.pending(), 0);
    }

    #[test]
    fn stray_chunks_are_counted_not_trusted() {
        let mut h = Hellos::default();
        let chunk = Decoded::Chunk(
            EventHeader::default(),
            Chunk {
                offset: 0,
                data: vec![22; 100],
            },
        );
        assert!(h.push(chunk).iter().all(Option::is_none));
        assert_eq!(h.orphan_chunks, 1);
    }

    #[test]
    fn ranges_merge() {
        let mut p = Pending {
            header: EventHeader::default(),
            first: TlsSummary::default(),
            buf: vec![0; 100],
            have: Vec::new(),
        };
        p.add(50, &[1; 10]);
        p.add(10, &[1; 10]);
        p.add(20, &[1; 30]);
        assert_eq!(p.have, vec![(10, 60)]);
        assert_eq!(p.contiguous(), 0);
        p.add(0, &[1; 10]);
        p.add(95, &[1; 20]); // cut at the end of the hello
        assert_eq!(p.have, vec![(0, 60), (95, 100)]);
        assert_eq!(p.contiguous(), 60);
        p.add(200, &[1; 5]); // past the end: ignored
        assert_eq!(p.have.len(), 2);
    }

    /// Issue 14's three hostile split hellos, through the shared classifier
    /// and the tracker, each answered by a ServerHello that acknowledges
    /// all of it. Every one is counted as a hello and as a handshake; the
    /// first was lost before: its first segment ends inside the handshake
    /// message header, so nothing marked it as a ClientHello. Now the
    /// record header starts its reassembly (`split::cut_hello`), and its
    /// 1,000 extensions, more than the walk reads, make it truncated.
    #[test]
    fn hostile_split_hellos_are_each_counted() {
        use crate::tracker::{Limits, Tracker};
        let many = (0..1000u16)
            .map(|i| Extension::new(0xf000 + i, &[]))
            .collect();
        let big = client_hello(vec![
            Extension::supported_versions(&[0x0304]),
            Extension::new(51, &[0xab; 16_300]),
        ]);
        // (hello, bytes per segment)
        let cases = [
            (client_hello(many), 7),
            (psk_hello(), psk_hello().len() / 2 + 1),
            (big.clone(), 1448),
        ];
        let mut c = Classifier::default();
        let mut t = Tracker::new(Limits::default());
        let mut ts = 0;
        let mut feed = |t: &mut Tracker, f: &[u8], dir| {
            ts += 1000;
            for d in c.packet(f, LinkType::ETHERNET, dir, ts).unwrap() {
                t.on_event(d);
            }
        };
        let accept = server_hello(vec![
            Extension::selected_version(0x0304),
            Extension::selected_identity(0),
        ]);
        for (i, (h, mss)) in cases.iter().enumerate() {
            let port = 40001 + u16::try_from(i).unwrap();
            for (j, piece) in h.chunks(*mss).enumerate() {
                let seq = 1000 + u32::try_from(j * mss).unwrap();
                feed(
                    &mut t,
                    &frame_on(port, seq, 9000, piece, false),
                    Direction::EGRESS,
                );
            }
            let end = 1000 + u32::try_from(h.len()).unwrap();
            feed(
                &mut t,
                &frame_on(port, 9000, end, &accept, true),
                Direction::INGRESS,
            );
        }
        assert_eq!(
            (t.totals.truncated_hellos, t.totals.reassembled_hellos),
            (1, 3),
            "{:?}",
            t.totals
        );
        let s = t.servers();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].handshakes(), 3, "{:?}", s[0]);
        assert_eq!((t.totals.unacknowledged, t.totals.untracked_events), (0, 0));
    }
}
