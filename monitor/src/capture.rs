//! Reading packets from pcap and pcapng files, for `tlsmon replay` and the
//! tests.
//!
//! Both formats are small enough to parse by hand:
//!
//! - classic pcap (one link type per file; microsecond or nanosecond
//!   timestamps, either byte order), and
//! - pcapng (IETF draft-ietf-opsawg-pcapng): Section Header, Interface
//!   Description, Enhanced Packet and Simple Packet blocks; the obsolete
//!   Packet Block is read like an Enhanced one; every other block type is
//!   skipped by its length.
//!
//! The reader never panics on bad input. Every offset is computed with
//! checked arithmetic and every read goes through `slice::get`; a structural
//! problem (a record running past the end of the file, an impossible block
//! length) is returned once as an error and ends the iteration, since nothing
//! after it can be located reliably. A packet on a pcapng interface whose
//! link type `classify` cannot parse is reported as an error too, but the
//! iteration goes on with the next block.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::path::{Path, PathBuf};

use monitor_common::{event::Direction, net::LinkType};

/// One captured frame, borrowed from the [`Capture`] that holds the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    /// How `data` starts.
    pub link: LinkType,
    /// Capture time in nanoseconds since the Unix epoch (0 when the format
    /// records none, as in pcapng Simple Packet Blocks).
    pub ts_ns: u64,
    /// From the pcapng `epb_flags` option; [`Direction::UNKNOWN`] otherwise.
    pub direction: Direction,
    /// The captured bytes, possibly fewer than the frame had (snap length).
    pub data: &'a [u8],
    /// Length of the frame on the wire.
    pub orig_len: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot read {}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: {error}", path.display())]
    InFile {
        path: PathBuf,
        error: Box<CaptureError>,
    },
    #[error("not a pcap or pcapng file (file is only {len} bytes)")]
    TooShort { len: usize },
    #[error("not a pcap or pcapng file (magic 0x{magic:08x})")]
    NotCapture { magic: u32 },
    #[error("truncated {what} at byte {offset}")]
    Truncated { what: &'static str, offset: usize },
    #[error("unsupported {format} version {major}.{minor}")]
    UnsupportedVersion {
        format: &'static str,
        major: u16,
        minor: u16,
    },
    #[error("pcapng section header at byte {offset} has unknown byte-order magic 0x{magic:08x}")]
    ByteOrder { offset: usize, magic: u32 },
    #[error(
        "pcapng block at byte {offset} has invalid length {len} (must be at least 12 and a multiple of 4)"
    )]
    BlockLength { offset: usize, len: u32 },
    #[error("pcapng block at byte {offset} ends with length {trailing}, but starts with {leading}")]
    LengthMismatch {
        offset: usize,
        leading: u32,
        trailing: u32,
    },
    #[error("malformed pcapng block at byte {offset}: {reason}")]
    Malformed { offset: usize, reason: &'static str },
    #[error(
        "packet at byte {offset} refers to interface {interface}, but its section describes {count}"
    )]
    UnknownInterface {
        offset: usize,
        interface: u32,
        count: usize,
    },
    #[error("unsupported link type {link} on interface {interface}")]
    UnsupportedLinkType { link: u32, interface: u32 },
    #[error("timestamp of the packet at byte {offset} does not fit in 64-bit nanoseconds")]
    Timestamp { offset: usize },
}

/// A capture file held in memory.
pub struct Capture {
    bytes: Vec<u8>,
    format: Format,
}

#[derive(Clone, Copy, Debug)]
enum Format {
    Pcap {
        order: Order,
        nanos: bool,
        link: LinkType,
    },
    PcapNg,
}

const PCAP_MAGIC_MICROS: u32 = 0xa1b2_c3d4;
const PCAP_MAGIC_NANOS: u32 = 0xa1b2_3c4d;
const PCAP_HEADER_LEN: usize = 24;
const PCAP_RECORD_LEN: usize = 16;

const BT_SHB: u32 = 0x0a0d_0d0a;
const BT_IDB: u32 = 1;
/// Obsolete Packet Block: like an Enhanced Packet Block with a 16-bit
/// interface id followed by a 16-bit drop count.
const BT_PB: u32 = 2;
const BT_SPB: u32 = 3;
const BT_EPB: u32 = 6;
const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
/// Block type, block total length ... block total length.
const BLOCK_OVERHEAD: usize = 12;

const OPT_END: u16 = 0;
const OPT_IF_TSRESOL: u16 = 9;
const OPT_EPB_FLAGS: u16 = 2;
/// Default `if_tsresol`: 10^-6 s.
const DEFAULT_TSRESOL: u8 = 6;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Link types `monitor_common::net::l3` can parse.
fn link_supported(link: LinkType) -> bool {
    matches!(
        link,
        LinkType::ETHERNET
            | LinkType::RAW
            | LinkType::LINUX_SLL
            | LinkType::IPV4
            | LinkType::IPV6
            | LinkType::LINUX_SLL2
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    Little,
    Big,
}

impl Order {
    fn u16(self, b: &[u8], off: usize) -> Option<u16> {
        let raw = array::<2>(b, off)?;
        Some(match self {
            Self::Little => u16::from_le_bytes(raw),
            Self::Big => u16::from_be_bytes(raw),
        })
    }

    fn u32(self, b: &[u8], off: usize) -> Option<u32> {
        let raw = array::<4>(b, off)?;
        Some(match self {
            Self::Little => u32::from_le_bytes(raw),
            Self::Big => u32::from_be_bytes(raw),
        })
    }
}

fn array<const N: usize>(b: &[u8], off: usize) -> Option<[u8; N]> {
    b.get(off..off.checked_add(N)?)?.try_into().ok()
}

fn usize_from(v: u32) -> usize {
    // Lossless on every target tlsmon builds for (64-bit Linux); saturating
    // keeps the bounds checks meaningful anywhere else.
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// Rounds up to a multiple of 4 (pcapng pads data and options to 32 bits).
fn pad4(n: usize) -> Option<usize> {
    Some(n.checked_add(3)? & !3)
}

impl Capture {
    /// Takes the whole file and checks its header. The format is told by the
    /// first four bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, CaptureError> {
        let Some(first) = array::<4>(&bytes, 0) else {
            return Err(CaptureError::TooShort { len: bytes.len() });
        };
        let le = u32::from_le_bytes(first);
        let be = u32::from_be_bytes(first);
        let format = if le == BT_SHB {
            // The block type reads the same either way; validate the first
            // section header now so that a bad file fails at open.
            Walker::new().section_header(&bytes, 0)?;
            Format::PcapNg
        } else {
            let (order, nanos) = match (le, be) {
                (PCAP_MAGIC_MICROS, _) => (Order::Little, false),
                (PCAP_MAGIC_NANOS, _) => (Order::Little, true),
                (_, PCAP_MAGIC_MICROS) => (Order::Big, false),
                (_, PCAP_MAGIC_NANOS) => (Order::Big, true),
                _ => return Err(CaptureError::NotCapture { magic: be }),
            };
            Format::Pcap {
                order,
                nanos,
                link: pcap_header(&bytes, order)?,
            }
        };
        Ok(Self { bytes, format })
    }

    /// Reads a file; errors name it.
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        let bytes = std::fs::read(path).map_err(|error| CaptureError::Io {
            path: path.to_owned(),
            error,
        })?;
        Self::from_bytes(bytes).map_err(|error| CaptureError::InFile {
            path: path.to_owned(),
            error: Box::new(error),
        })
    }

    /// The packets in file order. See the module documentation for which
    /// errors end the iteration.
    pub fn packets(&self) -> impl Iterator<Item = Result<Packet<'_>, CaptureError>> + '_ {
        Packets {
            bytes: &self.bytes,
            pos: 0,
            done: false,
            kind: match self.format {
                Format::Pcap { order, nanos, link } => Kind::Pcap { order, nanos, link },
                Format::PcapNg => Kind::PcapNg(Walker::new()),
            },
        }
    }
}

/// Checks the classic pcap global header; returns the file's link type.
fn pcap_header(bytes: &[u8], order: Order) -> Result<LinkType, CaptureError> {
    let header = bytes
        .get(..PCAP_HEADER_LEN)
        .ok_or(CaptureError::Truncated {
            what: "pcap file header",
            offset: 0,
        })?;
    let field = |off| order.u32(header, off).unwrap_or(0);
    let major = order.u16(header, 4).unwrap_or(0);
    let minor = order.u16(header, 6).unwrap_or(0);
    if major != 2 {
        return Err(CaptureError::UnsupportedVersion {
            format: "pcap",
            major,
            minor,
        });
    }
    // The low 16 bits are the link type; the high bits may carry FCS
    // information, which does not matter here.
    let link = field(20) & 0xffff;
    if !link_supported(LinkType(link)) {
        return Err(CaptureError::UnsupportedLinkType { link, interface: 0 });
    }
    Ok(LinkType(link))
}

enum Kind {
    Pcap {
        order: Order,
        nanos: bool,
        link: LinkType,
    },
    PcapNg(Walker),
}

struct Packets<'a> {
    bytes: &'a [u8],
    pos: usize,
    done: bool,
    kind: Kind,
}

impl<'a> Iterator for Packets<'a> {
    type Item = Result<Packet<'a>, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let step = match &mut self.kind {
            Kind::Pcap { order, nanos, link } => {
                if self.pos == 0 {
                    self.pos = PCAP_HEADER_LEN;
                }
                pcap_record(self.bytes, self.pos, *order, *nanos, *link)
            }
            Kind::PcapNg(walker) => walker.next_packet(self.bytes, self.pos),
        };
        match step {
            Step::End => {
                self.done = true;
                None
            }
            Step::Packet(next, packet) => {
                self.pos = next;
                Some(Ok(packet))
            }
            Step::Skip(next, error) => {
                self.pos = next;
                Some(Err(error))
            }
            Step::Fatal(error) => {
                self.done = true;
                Some(Err(error))
            }
        }
    }
}

enum Step<'a> {
    /// No more packets.
    End,
    /// A packet and the offset of the next record.
    Packet(usize, Packet<'a>),
    /// A packet that cannot be returned; iteration continues at the offset.
    Skip(usize, CaptureError),
    /// The file cannot be read further.
    Fatal(CaptureError),
}

fn pcap_record(bytes: &[u8], pos: usize, order: Order, nanos: bool, link: LinkType) -> Step<'_> {
    if pos >= bytes.len() {
        return Step::End;
    }
    let truncated = Step::Fatal(CaptureError::Truncated {
        what: "record",
        offset: pos,
    });
    let Some(header) = pos
        .checked_add(PCAP_RECORD_LEN)
        .and_then(|end| bytes.get(pos..end))
    else {
        return truncated;
    };
    let field = |off| order.u32(header, off).unwrap_or(0);
    let (secs, frac, caplen, orig_len) = (field(0), field(4), field(8), field(12));
    let Some(data_start) = pos.checked_add(PCAP_RECORD_LEN) else {
        return truncated;
    };
    let Some(data_end) = data_start.checked_add(usize_from(caplen)) else {
        return truncated;
    };
    let Some(data) = bytes.get(data_start..data_end) else {
        return truncated;
    };
    let frac_ns = if nanos {
        Some(u64::from(frac))
    } else {
        u64::from(frac).checked_mul(1_000)
    };
    let ts_ns = u64::from(secs)
        .checked_mul(NANOS_PER_SEC)
        .zip(frac_ns)
        .and_then(|(s, f)| s.checked_add(f));
    let Some(ts_ns) = ts_ns else {
        return Step::Fatal(CaptureError::Timestamp { offset: pos });
    };
    Step::Packet(
        data_end,
        Packet {
            link,
            ts_ns,
            direction: Direction::UNKNOWN,
            data,
            orig_len,
        },
    )
}

/// Per-interface state of the current pcapng section.
#[derive(Clone, Copy, Debug)]
struct Interface {
    link: LinkType,
    snaplen: u32,
    /// `if_tsresol`: bit 7 clear, 10^-n s; set, 2^-n s.
    tsresol: u8,
}

/// pcapng block walk state.
struct Walker {
    order: Order,
    interfaces: Vec<Interface>,
}

/// A located, length-checked pcapng block.
struct Block<'a> {
    offset: usize,
    ty: u32,
    /// Everything between the leading and trailing lengths.
    body: &'a [u8],
    next: usize,
}

impl Walker {
    fn new() -> Self {
        Self {
            order: Order::Little,
            interfaces: Vec::new(),
        }
    }

    /// Reads the section header at `offset`: sets the byte order, forgets
    /// the previous section's interfaces, and returns the block.
    fn section_header<'a>(
        &mut self,
        bytes: &'a [u8],
        offset: usize,
    ) -> Result<Block<'a>, CaptureError> {
        let truncated = || CaptureError::Truncated {
            what: "section header",
            offset,
        };
        // Type, total length, byte-order magic, major, minor.
        let head_end = offset.checked_add(16).ok_or_else(truncated)?;
        let head = bytes.get(offset..head_end).ok_or_else(truncated)?;
        let bom = array::<4>(head, 8).unwrap_or_default();
        self.order = if u32::from_le_bytes(bom) == BYTE_ORDER_MAGIC {
            Order::Little
        } else if u32::from_be_bytes(bom) == BYTE_ORDER_MAGIC {
            Order::Big
        } else {
            return Err(CaptureError::ByteOrder {
                offset,
                magic: u32::from_be_bytes(bom),
            });
        };
        let major = self.order.u16(head, 12).unwrap_or(0);
        let minor = self.order.u16(head, 14).unwrap_or(0);
        if major != 1 {
            return Err(CaptureError::UnsupportedVersion {
                format: "pcapng",
                major,
                minor,
            });
        }
        self.interfaces.clear();
        let block = self.block(bytes, offset)?;
        // Magic, versions, and the 64-bit section length.
        if block.body.len() < 16 {
            return Err(CaptureError::Malformed {
                offset,
                reason: "section header block too short",
            });
        }
        Ok(block)
    }

    /// Locates the block at `offset` and checks its lengths.
    fn block<'a>(&self, bytes: &'a [u8], offset: usize) -> Result<Block<'a>, CaptureError> {
        let truncated = || CaptureError::Truncated {
            what: "block",
            offset,
        };
        let ty = self.order.u32(bytes, offset).ok_or_else(truncated)?;
        let len_off = offset.checked_add(4).ok_or_else(truncated)?;
        let total = self.order.u32(bytes, len_off).ok_or_else(truncated)?;
        let bad_length = || CaptureError::BlockLength { offset, len: total };
        if usize_from(total) < BLOCK_OVERHEAD || total % 4 != 0 {
            return Err(bad_length());
        }
        let next = offset
            .checked_add(usize_from(total))
            .ok_or_else(truncated)?;
        let whole = bytes.get(offset..next).ok_or_else(truncated)?;
        let body_end = whole.len().checked_sub(4).ok_or_else(bad_length)?;
        let trailing = self.order.u32(whole, body_end).ok_or_else(bad_length)?;
        if trailing != total {
            return Err(CaptureError::LengthMismatch {
                offset,
                leading: total,
                trailing,
            });
        }
        let body = whole.get(8..body_end).ok_or_else(bad_length)?;
        Ok(Block {
            offset,
            ty,
            body,
            next,
        })
    }

    /// Walks blocks from `pos` to the next packet.
    fn next_packet<'a>(&mut self, bytes: &'a [u8], mut pos: usize) -> Step<'a> {
        loop {
            if pos >= bytes.len() {
                return Step::End;
            }
            // The section header type is the same in both byte orders.
            let block = if array::<4>(bytes, pos).map(u32::from_le_bytes) == Some(BT_SHB) {
                self.section_header(bytes, pos)
            } else {
                self.block(bytes, pos)
            };
            let block = match block {
                Ok(block) => block,
                Err(error) => return Step::Fatal(error),
            };
            pos = block.next;
            let result = match block.ty {
                BT_IDB => self.interface(&block).map(|()| None),
                BT_EPB => self.enhanced_packet(&block, false).map(Some),
                BT_PB => self.enhanced_packet(&block, true).map(Some),
                BT_SPB => self.simple_packet(&block).map(Some),
                _ => Ok(None),
            };
            match result {
                Ok(None) => {}
                Ok(Some(packet)) => return Step::Packet(pos, packet),
                Err(error @ CaptureError::UnsupportedLinkType { .. }) => {
                    return Step::Skip(pos, error);
                }
                Err(error) => return Step::Fatal(error),
            }
        }
    }

    fn interface(&mut self, block: &Block<'_>) -> Result<(), CaptureError> {
        let malformed = |reason| CaptureError::Malformed {
            offset: block.offset,
            reason,
        };
        // LinkType(2), reserved(2), SnapLen(4), options.
        let short = || malformed("interface description too short");
        let link = self.order.u16(block.body, 0).ok_or_else(short)?;
        let snaplen = self.order.u32(block.body, 4).ok_or_else(short)?;
        let mut iface = Interface {
            link: LinkType(u32::from(link)),
            snaplen,
            tsresol: DEFAULT_TSRESOL,
        };
        let options = block.body.get(8..).unwrap_or_default();
        self.options(options, block.offset, |code, value| {
            if code == OPT_IF_TSRESOL
                && let Some(&res) = value.first()
            {
                iface.tsresol = res;
            }
        })?;
        self.interfaces.push(iface);
        Ok(())
    }

    fn lookup(&self, block: &Block<'_>, interface: u32) -> Result<Interface, CaptureError> {
        let iface = self.interfaces.get(usize_from(interface)).copied().ok_or(
            CaptureError::UnknownInterface {
                offset: block.offset,
                interface,
                count: self.interfaces.len(),
            },
        )?;
        if !link_supported(iface.link) {
            return Err(CaptureError::UnsupportedLinkType {
                link: iface.link.0,
                interface,
            });
        }
        Ok(iface)
    }

    /// Enhanced Packet Block, or the obsolete Packet Block (`obsolete`),
    /// which has a 16-bit interface id and a drop count instead.
    fn enhanced_packet<'a>(
        &self,
        block: &Block<'a>,
        obsolete: bool,
    ) -> Result<Packet<'a>, CaptureError> {
        let malformed = |reason| CaptureError::Malformed {
            offset: block.offset,
            reason,
        };
        let short = || malformed("packet block too short");
        let o = self.order;
        let interface = if obsolete {
            u32::from(o.u16(block.body, 0).ok_or_else(short)?)
        } else {
            o.u32(block.body, 0).ok_or_else(short)?
        };
        let ts_high = o.u32(block.body, 4).ok_or_else(short)?;
        let ts_low = o.u32(block.body, 8).ok_or_else(short)?;
        let caplen = o.u32(block.body, 12).ok_or_else(short)?;
        let orig_len = o.u32(block.body, 16).ok_or_else(short)?;
        let iface = self.lookup(block, interface)?;
        let data_end = 20usize.checked_add(usize_from(caplen)).ok_or_else(short)?;
        let data = block
            .body
            .get(20..data_end)
            .ok_or_else(|| malformed("captured length exceeds the block"))?;
        let options_start = pad4(data_end).ok_or_else(short)?;
        let options = block.body.get(options_start..).unwrap_or_default();
        let mut direction = Direction::UNKNOWN;
        self.options(options, block.offset, |code, value| {
            if code == OPT_EPB_FLAGS
                && let Some(flags) = o.u32(value, 0)
            {
                direction = match flags & 0b11 {
                    1 => Direction::INGRESS,
                    2 => Direction::EGRESS,
                    _ => Direction::UNKNOWN,
                };
            }
        })?;
        let ticks = u64::from(ts_high) << 32 | u64::from(ts_low);
        let ts_ns = ticks_to_ns(ticks, iface.tsresol).ok_or(CaptureError::Timestamp {
            offset: block.offset,
        })?;
        Ok(Packet {
            link: iface.link,
            ts_ns,
            direction,
            data,
            orig_len,
        })
    }

    /// Simple Packet Block: interface 0, no timestamp, and a captured length
    /// implied by the block length and the interface's snap length.
    fn simple_packet<'a>(&self, block: &Block<'a>) -> Result<Packet<'a>, CaptureError> {
        let orig_len = self
            .order
            .u32(block.body, 0)
            .ok_or(CaptureError::Malformed {
                offset: block.offset,
                reason: "simple packet block too short",
            })?;
        let iface = self.lookup(block, 0)?;
        let room = block.body.get(4..).unwrap_or_default();
        let mut caplen = usize_from(orig_len).min(room.len());
        if iface.snaplen != 0 {
            caplen = caplen.min(usize_from(iface.snaplen));
        }
        let data = room.get(..caplen).unwrap_or_default();
        Ok(Packet {
            link: iface.link,
            ts_ns: 0,
            direction: Direction::UNKNOWN,
            data,
            orig_len,
        })
    }

    /// Calls `f(code, value)` for each option until `opt_endofopt` or the end.
    fn options(
        &self,
        mut opts: &[u8],
        offset: usize,
        mut f: impl FnMut(u16, &[u8]),
    ) -> Result<(), CaptureError> {
        let malformed = || CaptureError::Malformed {
            offset,
            reason: "option runs past the end of its block",
        };
        while !opts.is_empty() {
            let (Some(code), Some(len)) = (self.order.u16(opts, 0), self.order.u16(opts, 2)) else {
                return Err(malformed());
            };
            if code == OPT_END {
                break;
            }
            let end = 4usize.checked_add(usize::from(len)).ok_or_else(malformed)?;
            let value = opts.get(4..end).ok_or_else(malformed)?;
            f(code, value);
            let padded = pad4(end).unwrap_or(usize::MAX);
            opts = opts.get(padded..).unwrap_or_default();
        }
        Ok(())
    }
}

/// Converts a pcapng timestamp in `if_tsresol` units to nanoseconds.
fn ticks_to_ns(ticks: u64, tsresol: u8) -> Option<u64> {
    let exp = u32::from(tsresol & 0x7f);
    if tsresol & 0x80 == 0 {
        // 10^-exp seconds per tick.
        match 9u32.checked_sub(exp) {
            Some(up) => ticks.checked_mul(10u64.checked_pow(up)?),
            // Finer than a nanosecond; a divisor beyond u64 leaves 0.
            None => Some(
                10u64
                    .checked_pow(exp.checked_sub(9)?)
                    .map_or(0, |div| ticks.checked_div(div).unwrap_or(0)),
            ),
        }
    } else {
        // 2^-exp seconds per tick: ticks * 10^9 / 2^exp, exact in 128 bits.
        let scaled = u128::from(ticks).checked_mul(u128::from(NANOS_PER_SEC))?;
        u64::try_from(scaled.checked_shr(exp).unwrap_or(0)).ok()
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

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
            let total = len32(body.len() + BLOCK_OVERHEAD);
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
    }

    fn read_all(bytes: Vec<u8>) -> Vec<(LinkType, u64, Direction, Vec<u8>, u32)> {
        let cap = Capture::from_bytes(bytes).unwrap();
        cap.packets()
            .map(|p| {
                let p = p.unwrap();
                (p.link, p.ts_ns, p.direction, p.data.to_vec(), p.orig_len)
            })
            .collect()
    }

    // ---- classic pcap --------------------------------------------------

    #[test]
    fn pcap_little_endian_microseconds() {
        let mut f = PcapFile::new(true, false, 1);
        f.record(1_700_000_000, 123_456, b"first frame", 60)
            .record(1_700_000_001, 999_999, b"", 0);
        let got = read_all(f.bytes.clone());
        assert_eq!(
            got,
            vec![
                (
                    LinkType::ETHERNET,
                    1_700_000_000_123_456_000,
                    Direction::UNKNOWN,
                    b"first frame".to_vec(),
                    60
                ),
                (
                    LinkType::ETHERNET,
                    1_700_000_001_999_999_000,
                    Direction::UNKNOWN,
                    vec![],
                    0
                ),
            ]
        );
    }

    #[test]
    fn pcap_big_endian_nanoseconds_sll2() {
        let mut f = PcapFile::new(false, true, 276);
        f.record(5, 7, b"\x08\x00abc", 1500);
        assert_eq!(f.bytes[..4], [0xa1, 0xb2, 0x3c, 0x4d]);
        let got = read_all(f.bytes.clone());
        assert_eq!(
            got,
            vec![(
                LinkType::LINUX_SLL2,
                5_000_000_007,
                Direction::UNKNOWN,
                b"\x08\x00abc".to_vec(),
                1500
            )]
        );
    }

    #[test]
    fn pcap_little_endian_nanoseconds_and_big_endian_microseconds() {
        let mut f = PcapFile::new(true, true, 101);
        f.record(1, 2, b"x", 1);
        assert_eq!(read_all(f.bytes.clone())[0].1, 1_000_000_002);
        assert_eq!(read_all(f.bytes.clone())[0].0, LinkType::RAW);
        let mut f = PcapFile::new(false, false, 113);
        f.record(1, 2, b"x", 1);
        assert_eq!(read_all(f.bytes.clone())[0].1, 1_000_002_000);
        assert_eq!(read_all(f.bytes.clone())[0].0, LinkType::LINUX_SLL);
    }

    #[test]
    fn pcap_errors_are_clear() {
        let f = PcapFile::new(true, false, 147);
        let err = Capture::from_bytes(f.bytes.clone()).err().unwrap();
        assert_eq!(err.to_string(), "unsupported link type 147 on interface 0");

        let err = Capture::from_bytes(b"GET / HTTP/1.1\r\n".to_vec())
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "not a pcap or pcapng file (magic 0x47455420)"
        );
        let err = Capture::from_bytes(vec![0xd4, 0xc3]).err().unwrap();
        assert_eq!(
            err.to_string(),
            "not a pcap or pcapng file (file is only 2 bytes)"
        );

        let mut f = PcapFile::new(true, false, 1);
        f.record(1, 0, b"abcdef", 6);
        let cut = f.bytes.len() - 1;
        let cap = Capture::from_bytes(f.bytes[..cut].to_vec()).unwrap();
        let results: Vec<_> = cap.packets().collect();
        assert_eq!(results.len(), 1);
        assert_eq!(
            results[0].as_ref().err().unwrap().to_string(),
            "truncated record at byte 24"
        );

        let mut f = PcapFile::new(true, false, 1);
        f.bytes[4] = 3;
        let err = Capture::from_bytes(f.bytes).err().unwrap();
        assert_eq!(err.to_string(), "unsupported pcap version 3.4");
    }

    // ---- pcapng --------------------------------------------------------

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

    #[test]
    fn pcapng_both_byte_orders() {
        for le in [true, false] {
            let f = sample_ng(le);
            let got = read_all(f.bytes.clone());
            assert_eq!(
                got,
                vec![
                    (
                        LinkType::ETHERNET,
                        1_700_000_000_000_001_000,
                        Direction::INGRESS,
                        b"inbound".to_vec(),
                        100
                    ),
                    (
                        LinkType::LINUX_SLL2,
                        1_700_000_000_000_000_002,
                        Direction::EGRESS,
                        b"outbound!".to_vec(),
                        9
                    ),
                    (
                        LinkType::ETHERNET,
                        3_000,
                        Direction::UNKNOWN,
                        b"both-bits".to_vec(),
                        9
                    ),
                    (LinkType::LINUX_SLL2, 4, Direction::UNKNOWN, vec![], 0),
                    (
                        LinkType::ETHERNET,
                        0,
                        Direction::UNKNOWN,
                        b"simple".to_vec(),
                        6
                    ),
                ],
                "little endian: {le}"
            );
        }
    }

    #[test]
    fn pcapng_power_of_two_resolution_and_snaplen() {
        let mut f = NgFile::new(false);
        // 2^-10 s per tick; snap length 4 limits the Simple Packet Block.
        f.interface(101, 4, Some(0x80 + 10))
            .enhanced(0, 3 * 1024 + 512, b"ip", 2, None)
            .simple(b"abcdefgh", 8);
        let got = read_all(f.bytes.clone());
        assert_eq!(
            got,
            vec![
                (
                    LinkType::RAW,
                    3_500_000_000,
                    Direction::UNKNOWN,
                    b"ip".to_vec(),
                    2
                ),
                (LinkType::RAW, 0, Direction::UNKNOWN, b"abcd".to_vec(), 8),
            ]
        );
    }

    #[test]
    fn timestamp_resolutions() {
        assert_eq!(ticks_to_ns(7, 6), Some(7_000));
        assert_eq!(ticks_to_ns(7, 9), Some(7));
        assert_eq!(ticks_to_ns(7_000, 12), Some(7));
        assert_eq!(ticks_to_ns(u64::MAX, 127), Some(0));
        assert_eq!(ticks_to_ns(u64::MAX, 0), None);
        assert_eq!(ticks_to_ns(1, 0x80), Some(1_000_000_000));
        assert_eq!(ticks_to_ns(1 << 30, 0x80 + 30), Some(1_000_000_000));
        assert_eq!(ticks_to_ns(u64::MAX, 0xff), Some(0));
        assert_eq!(ticks_to_ns(u64::MAX, 0x80), None);
    }

    #[test]
    fn new_section_resets_interfaces_and_byte_order() {
        let mut f = NgFile::new(true);
        f.interface(1, 0, None)
            .interface(1, 0, None)
            .enhanced(1, 1, b"a", 1, None);
        f.section(false)
            .interface(228, 0, Some(9))
            .enhanced(0, 2, b"b", 1, Some(1));
        f.enhanced(1, 3, b"c", 1, None);
        let cap = Capture::from_bytes(f.bytes.clone()).unwrap();
        let mut it = cap.packets();
        let a = it.next().unwrap().unwrap();
        assert_eq!(
            (a.link, a.ts_ns, a.data),
            (LinkType::ETHERNET, 1_000, b"a".as_slice())
        );
        let b = it.next().unwrap().unwrap();
        assert_eq!(
            (b.link, b.ts_ns, b.direction),
            (LinkType::IPV4, 2, Direction::INGRESS)
        );
        let err = it.next().unwrap().unwrap_err();
        assert!(
            matches!(
                err,
                CaptureError::UnknownInterface {
                    interface: 1,
                    count: 1,
                    ..
                }
            ),
            "{err}"
        );
        assert!(it.next().is_none());
    }

    #[test]
    fn unsupported_interface_is_reported_per_packet() {
        let mut f = NgFile::new(true);
        f.interface(1, 0, None).interface(147, 0, None);
        f.enhanced(1, 1, b"user0", 5, None)
            .enhanced(0, 2, b"eth", 3, None);
        let cap = Capture::from_bytes(f.bytes.clone()).unwrap();
        let got: Vec<_> = cap.packets().collect();
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0].as_ref().unwrap_err().to_string(),
            "unsupported link type 147 on interface 1"
        );
        assert_eq!(got[1].as_ref().unwrap().data, b"eth");
    }

    #[test]
    fn pcapng_block_length_errors() {
        let base = {
            let mut f = NgFile::new(true);
            f.interface(1, 0, None);
            f
        };
        let at = base.bytes.len();
        for (len, want) in [
            (
                8u32,
                format!(
                    "pcapng block at byte {at} has invalid length 8 (must be at least 12 and a multiple of 4)"
                ),
            ),
            (
                14,
                format!(
                    "pcapng block at byte {at} has invalid length 14 (must be at least 12 and a multiple of 4)"
                ),
            ),
            (
                0,
                format!(
                    "pcapng block at byte {at} has invalid length 0 (must be at least 12 and a multiple of 4)"
                ),
            ),
            (u32::MAX - 3, format!("truncated block at byte {at}")),
        ] {
            let mut bytes = base.bytes.clone();
            put32(&mut bytes, true, BT_EPB);
            put32(&mut bytes, true, len);
            bytes.extend_from_slice(&[0; 16]);
            let cap = Capture::from_bytes(bytes).unwrap();
            let got: Vec<_> = cap.packets().collect();
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].as_ref().unwrap_err().to_string(), want);
        }

        // Trailing length disagreeing with the leading one.
        let mut f = NgFile::new(true);
        f.interface(1, 0, None).enhanced(0, 0, b"abcd", 4, None);
        let n = f.bytes.len();
        f.bytes[n - 4] ^= 4;
        let cap = Capture::from_bytes(f.bytes.clone()).unwrap();
        let err = cap.packets().next().unwrap().unwrap_err();
        assert!(matches!(err, CaptureError::LengthMismatch { .. }), "{err}");

        // Captured length larger than the block.
        let mut f = NgFile::new(true);
        f.interface(1, 0, None).enhanced(0, 0, b"abcd", 4, None);
        let caplen_at = f.ends[1] + 8 + 12;
        f.bytes[caplen_at] = 200;
        let cap = Capture::from_bytes(f.bytes.clone()).unwrap();
        let err = cap.packets().next().unwrap().unwrap_err();
        assert!(
            err.to_string()
                .ends_with("captured length exceeds the block"),
            "{err}"
        );

        // Bad byte-order magic.
        let mut f = NgFile::new(true);
        f.bytes[8] = 0;
        let err = Capture::from_bytes(f.bytes).err().unwrap();
        assert_eq!(
            err.to_string(),
            "pcapng section header at byte 0 has unknown byte-order magic 0x003c2b1a"
        );
    }

    #[test]
    fn open_names_the_file() {
        let dir = std::env::temp_dir().join(format!("tlsmon-capture-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pcap");
        let err = Capture::open(&missing).err().unwrap().to_string();
        assert!(
            err.starts_with(&format!("cannot read {}: ", missing.display())),
            "{err}"
        );
        let junk = dir.join("junk.pcap");
        std::fs::write(&junk, b"\x00\x01\x02\x03rest").unwrap();
        let err = Capture::open(&junk).err().unwrap().to_string();
        assert_eq!(
            err,
            format!(
                "{}: not a pcap or pcapng file (magic 0x00010203)",
                junk.display()
            )
        );
        let good = dir.join("good.pcap");
        let mut f = PcapFile::new(true, false, 1);
        f.record(1, 1, b"ok", 2);
        std::fs::write(&good, &f.bytes).unwrap();
        assert_eq!(Capture::open(&good).unwrap().packets().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    // ---- robustness ----------------------------------------------------

    /// Reads everything, checking that the iterator stops right after a
    /// fatal error and never runs away. Returns (packets, errors).
    fn drain(bytes: Vec<u8>) -> Option<(usize, usize)> {
        let len = bytes.len();
        let cap = Capture::from_bytes(bytes).ok()?;
        let (mut ok, mut errors) = (0, 0);
        let mut it = cap.packets();
        while let Some(item) = it.next() {
            match item {
                Ok(p) => {
                    ok += 1;
                    assert!(p.data.len() <= len);
                }
                Err(CaptureError::UnsupportedLinkType { .. }) => errors += 1,
                Err(_) => {
                    errors += 1;
                    assert!(
                        it.next().is_none(),
                        "iteration continued after a fatal error"
                    );
                    break;
                }
            }
            // Every packet or error consumes at least 12 bytes.
            assert!(ok + errors <= len / 12 + 1);
        }
        Some((ok, errors))
    }

    fn check_every_cut(bytes: &[u8], ends: &[usize], packets: usize) {
        for cut in 0..=bytes.len() {
            let result = drain(bytes[..cut].to_vec());
            if cut == bytes.len() {
                assert_eq!(result, Some((packets, 0)));
            } else if ends.contains(&cut) {
                // A cut between records is a valid, shorter file.
                let (ok, errors) = result.unwrap();
                assert!(
                    ok < packets && errors == 0,
                    "cut at {cut}: {ok} packets, {errors} errors"
                );
            } else if let Some((ok, errors)) = result {
                assert!(
                    ok < packets && errors == 1,
                    "cut at {cut}: {ok} packets, {errors} errors"
                );
            }
        }
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let mut f = PcapFile::new(true, false, 1);
        f.record(1, 2, b"one", 3).record(3, 4, b"second frame", 12);
        check_every_cut(&f.bytes, &f.ends, 2);
        let mut f = PcapFile::new(false, true, 276);
        f.record(1, 2, b"one", 3).record(3, 4, b"", 0);
        check_every_cut(&f.bytes, &f.ends, 2);
        for le in [true, false] {
            let f = sample_ng(le);
            check_every_cut(&f.bytes, &f.ends, 5);
        }
    }

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % u64::try_from(n).unwrap()).unwrap()
        }
    }

    #[test]
    fn random_garbage_does_not_panic() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let magics: [&[u8]; 5] = [
            &PCAP_MAGIC_MICROS.to_le_bytes(),
            &PCAP_MAGIC_NANOS.to_be_bytes(),
            &BT_SHB.to_le_bytes(),
            &[
                0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0,
            ],
            &[],
        ];
        for _ in 0..20_000 {
            let len = rng.below(200);
            let mut bytes: Vec<u8> = magics[rng.below(magics.len())].to_vec();
            // Small values make plausible lengths and ids more likely.
            let small = rng.below(2) == 0;
            while bytes.len() < len {
                let r = rng.next().to_le_bytes()[0];
                bytes.push(if small { r & 0x1f } else { r });
            }
            drain(bytes);
        }
    }

    #[test]
    fn mutated_valid_files_do_not_panic() {
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        let mut pcap = PcapFile::new(true, false, 1);
        pcap.record(1, 2, b"one", 3)
            .record(3, 4, b"second frame", 12);
        let files = [pcap.bytes, sample_ng(true).bytes, sample_ng(false).bytes];
        for _ in 0..20_000 {
            let mut bytes = files[rng.below(files.len())].clone();
            for _ in 0..=rng.below(4) {
                let at = rng.below(bytes.len());
                match rng.below(3) {
                    0 => bytes[at] ^= 1 << rng.below(8),
                    1 => bytes[at] = rng.next().to_le_bytes()[0],
                    _ => bytes[at] = [0, 0xff, 0x7f, 0x80, 12, 4][rng.below(6)],
                }
            }
            drain(bytes);
        }
    }
}
