//! The capture reader on hand-built files: every format variant, every
//! error, and bad input of every kind.

mod formats;
mod loopback;
mod robustness;
mod streams;

use std::io::Cursor;

use pcap_parser::OptionCode;

use super::{
    ng::{
        BLOCK_OVERHEAD, BT_EPB, BT_IDB, BT_PB, BT_SHB, BT_SPB, BYTE_ORDER_MAGIC, MAX_BLOCK_LEN,
        OPT_EPB_FLAGS, ticks_to_ns,
    },
    *,
};

const OPT_IF_TSRESOL: u16 = OptionCode::IfTsresol.0;

/// Reads through a small buffer: the test files are small, and every
/// record and block then crosses the buffer's end somewhere, which
/// exercises refilling and growing it. `buffer_sizes_do_not_matter` checks
/// that the size changes nothing.
fn from_bytes(bytes: Vec<u8>) -> Result<Capture, CaptureError> {
    Capture::with_buffer(Cursor::new(bytes), 64)
}

/// A packet, owned.
type Owned = (LinkType, u64, Direction, Vec<u8>, u32);

fn owned(p: Packet<'_>) -> Owned {
    (p.link, p.ts_ns, p.direction, p.data.to_vec(), p.orig_len)
}

/// Everything the capture yields.
fn collect(mut cap: Capture) -> Vec<Result<Owned, CaptureError>> {
    let mut all = Vec::new();
    while let Some(p) = cap.next_packet() {
        all.push(p.map(owned));
    }
    all
}

// ---- byte builders -------------------------------------------------

fn put16(v: &mut Vec<u8>, le: bool, x: u16) {
    v.extend_from_slice(&if le { x.to_le_bytes() } else { x.to_be_bytes() });
}

fn put32(v: &mut Vec<u8>, le: bool, x: u32) {
    v.extend_from_slice(&if le { x.to_le_bytes() } else { x.to_be_bytes() });
}

fn pad(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
}

fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap()
}

/// A classic pcap file under construction; `ends` lists the offsets at
/// which a cut leaves a valid, shorter file.
struct PcapFile {
    le: bool,
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl PcapFile {
    fn new(le: bool, nanos: bool, link: u32) -> Self {
        let mut bytes = Vec::new();
        put32(
            &mut bytes,
            le,
            if nanos {
                PCAP_MAGIC_NANOS
            } else {
                PCAP_MAGIC_MICROS
            },
        );
        put16(&mut bytes, le, 2);
        put16(&mut bytes, le, 4);
        put32(&mut bytes, le, 0); // thiszone
        put32(&mut bytes, le, 0); // sigfigs
        put32(&mut bytes, le, 65535);
        put32(&mut bytes, le, link);
        let ends = vec![bytes.len()];
        Self { le, bytes, ends }
    }

    fn record(&mut self, secs: u32, frac: u32, data: &[u8], orig_len: u32) -> &mut Self {
        let le = self.le;
        put32(&mut self.bytes, le, secs);
        put32(&mut self.bytes, le, frac);
        put32(&mut self.bytes, le, len32(data.len()));
        put32(&mut self.bytes, le, orig_len);
        self.bytes.extend_from_slice(data);
        self.ends.push(self.bytes.len());
        self
    }
}

/// A pcapng file under construction.
struct NgFile {
    le: bool,
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl NgFile {
    fn new(le: bool) -> Self {
        let mut f = Self {
            le,
            bytes: Vec::new(),
            ends: Vec::new(),
        };
        f.section(le);
        f
    }

    fn block(&mut self, ty: u32, body: &[u8]) -> &mut Self {
        let le = self.le;
        let mut body = body.to_vec();
        pad(&mut body);
        let total = len32(body.len()) + BLOCK_OVERHEAD;
        put32(&mut self.bytes, le, ty);
        put32(&mut self.bytes, le, total);
        self.bytes.extend_from_slice(&body);
        put32(&mut self.bytes, le, total);
        self.ends.push(self.bytes.len());
        self
    }

    /// Options: (code, value) pairs, then `opt_endofopt`.
    fn options(&self, body: &mut Vec<u8>, opts: &[(u16, &[u8])]) {
        if opts.is_empty() {
            return;
        }
        for (code, value) in opts {
            put16(body, self.le, *code);
            put16(body, self.le, u16::try_from(value.len()).unwrap());
            body.extend_from_slice(value);
            pad(body);
        }
        put32(body, self.le, 0);
    }

    fn section(&mut self, le: bool) -> &mut Self {
        self.le = le;
        let mut body = Vec::new();
        put32(&mut body, le, BYTE_ORDER_MAGIC);
        put16(&mut body, le, 1);
        put16(&mut body, le, 0);
        body.extend_from_slice(&[0xff; 8]); // section length unknown
        self.options(&mut body, &[(4, b"tlsmon test".as_slice())]); // shb_userappl
        self.block(BT_SHB, &body)
    }

    fn interface(&mut self, link: u16, snaplen: u32, tsresol: Option<u8>) -> &mut Self {
        let mut body = Vec::new();
        put16(&mut body, self.le, link);
        put16(&mut body, self.le, 0);
        put32(&mut body, self.le, snaplen);
        let res = tsresol.map(|r| [r]);
        let mut opts: Vec<(u16, &[u8])> = vec![(2, b"lo".as_slice())]; // if_name
        if let Some(res) = &res {
            opts.push((OPT_IF_TSRESOL, res.as_slice()));
        }
        self.options(&mut body, &opts);
        self.block(BT_IDB, &body)
    }

    fn enhanced(
        &mut self,
        iface: u32,
        ticks: u64,
        data: &[u8],
        orig_len: u32,
        flags: Option<u32>,
    ) -> &mut Self {
        let le = self.le;
        let mut body = Vec::new();
        put32(&mut body, le, iface);
        put32(&mut body, le, u32::try_from(ticks >> 32).unwrap());
        put32(&mut body, le, u32::try_from(ticks & 0xffff_ffff).unwrap());
        put32(&mut body, le, len32(data.len()));
        put32(&mut body, le, orig_len);
        body.extend_from_slice(data);
        pad(&mut body);
        let flag_bytes = flags.map(|f| if le { f.to_le_bytes() } else { f.to_be_bytes() });
        let mut opts: Vec<(u16, &[u8])> = vec![];
        if let Some(f) = &flag_bytes {
            opts.push((1, b"comment".as_slice())); // opt_comment first
            opts.push((OPT_EPB_FLAGS, f.as_slice()));
        }
        self.options(&mut body, &opts);
        self.block(BT_EPB, &body)
    }

    fn simple(&mut self, data: &[u8], orig_len: u32) -> &mut Self {
        let mut body = Vec::new();
        put32(&mut body, self.le, orig_len);
        body.extend_from_slice(data);
        self.block(BT_SPB, &body)
    }

    /// The obsolete Packet Block, with `pack_flags` (as epb_flags).
    fn obsolete(&mut self, iface: u16, ticks: u64, data: &[u8], flags: u32) -> &mut Self {
        let le = self.le;
        let mut body = Vec::new();
        put16(&mut body, le, iface);
        put16(&mut body, le, 0); // drops
        put32(&mut body, le, u32::try_from(ticks >> 32).unwrap());
        put32(&mut body, le, u32::try_from(ticks & 0xffff_ffff).unwrap());
        put32(&mut body, le, len32(data.len()));
        put32(&mut body, le, len32(data.len()));
        body.extend_from_slice(data);
        pad(&mut body);
        let flags = if le {
            flags.to_le_bytes()
        } else {
            flags.to_be_bytes()
        };
        self.options(&mut body, &[(OPT_EPB_FLAGS, flags.as_slice())]);
        self.block(BT_PB, &body)
    }
}

/// Two interfaces (Ethernet in microseconds, SLL2 in nanoseconds), blocks
/// to skip, and every kind of packet block but the obsolete one.
fn sample_ng(le: bool) -> NgFile {
    let mut f = NgFile::new(le);
    f.interface(1, 0, None) // Ethernet, microseconds by default
        .interface(276, 0, Some(9)) // SLL2, nanoseconds
        .block(0x0000_0bad, b"unknown block, skipped")
        .block(4, &[0; 4]) // name resolution block, skipped
        .enhanced(0, 1_700_000_000_000_001, b"inbound", 100, Some(1))
        .enhanced(
            1,
            1_700_000_000_000_000_002,
            b"outbound!",
            9,
            Some(2 | 0x1_0000),
        )
        .enhanced(0, 3, b"both-bits", 9, Some(3))
        .enhanced(1, 4, b"", 0, None)
        .simple(b"simple", 6);
    f
}

fn read_all(bytes: Vec<u8>) -> Vec<Owned> {
    collect(from_bytes(bytes).unwrap())
        .into_iter()
        .map(Result::unwrap)
        .collect()
}
