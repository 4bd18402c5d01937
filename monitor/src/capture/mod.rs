//! Reading packets from pcap and pcapng captures, for `tlsmon replay` and the
//! tests.
//!
//! Framing and block parsing are rusticata's `pcap-parser`, whose readers
//! stream through a fixed buffer: memory stays the same however large the
//! capture, and a capture can come from a pipe (`-`, standard input). This
//! module picks the reader by the file's magic, decompresses gzip on the
//! fly, keeps the pcapng section's interfaces, turns timestamps into
//! nanoseconds, reads the direction from `epb_flags`, and says what is wrong
//! with a bad file: which structure, at which byte.
//!
//! Why pcap-parser rather than pcap-file: a stable release line from the
//! rusticata project (0.17, July 2025; pcap-file's last stable release is
//! 2.0 from 2023, 3.0 is still a release candidate), a caller-sized buffer
//! that grows on request (pcap-file's reader allocates 8 MB), blocks that
//! borrow the buffer instead of being copied, and about 1.5 to 2 times the
//! packets per second of pcap-file 2.0 on the same 300 MiB pcap.
//! What it does not do is done here: the obsolete Packet Block, timestamps
//! in power-of-two units, and saying which length is wrong and where.
//!
//! The reader never panics on bad input. A structural problem (a record
//! running past the end of the file, an impossible length) is returned once
//! as an error and ends the iteration, since nothing after it can be located
//! reliably. A packet on a pcapng interface whose link type `classify`
//! cannot parse is reported as an error too, but the iteration goes on.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

mod error;
mod input;
mod legacy;
mod link;
mod ng;
#[cfg(test)]
#[expect(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    reason = "tests index and size the files they build"
)]
mod tests;

use std::{
    io::{Cursor, Read},
    path::Path,
    sync::{Arc, Mutex},
};

pub use error::CaptureError;
use monitor_common::{event::Direction, net::LinkType};
use pcap_parser::{
    LegacyPcapReader, PcapBlockOwned, PcapError, PcapNGReader, traits::PcapReaderIterator,
};

use self::input::{Failure, Input, read_up_to};

/// One captured frame, borrowed from the [`Capture`] that read it: it is
/// valid until the next call to [`Capture::next_packet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    /// How `data` starts. BSD loopback frames (link types 0 and 108) of
    /// IPv4 and IPv6 come without their 4-byte header, as raw IPv4 or IPv6.
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

/// A capture being read, one packet at a time.
pub struct Capture {
    parser: Box<dyn PcapReaderIterator + Send>,
    format: Format,
    /// Of the parser's buffer.
    capacity: usize,
    /// Bytes of the block last returned, given back to the parser at the
    /// next call: the packet borrowed them until then.
    pending: usize,
    done: bool,
    gzip: bool,
    failure: Failure,
}

/// What the blocks read so far say about the ones to come.
enum Format {
    /// `None` until the file header is read.
    Pcap(Option<legacy::File>),
    PcapNg(ng::Section),
}

/// A packet found in a block: everything but its bytes.
struct Meta {
    link: LinkType,
    ts_ns: u64,
    direction: Direction,
    orig_len: u32,
}

/// Why the parser returned no block, without its borrow of the buffer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Trouble {
    /// It needs more data than the buffer holds now.
    More,
    /// It needs more data than the buffer can hold.
    Grow,
    /// It needs more data and the stream has ended.
    End,
    /// A pcapng section header with neither byte order's magic.
    ByteOrder,
    /// It refused the block.
    Refused,
}

/// What to do about a [`Trouble`].
enum Remedy {
    Refill,
    Grow,
    Fail(CaptureError),
}

const PCAP_MAGIC_MICROS: u32 = 0xa1b2_c3d4;
const PCAP_MAGIC_NANOS: u32 = 0xa1b2_3c4d;
const PCAPNG_MAGIC: u32 = 0x0a0d_0d0a;
/// RFC 1952 §2.3.1: ID1, ID2.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// The classic pcap file header is the longest thing the format is told by.
const HEAD_LEN: usize = 24;
/// The parser's buffer: many packets at a time, and more than a pcap record
/// can hold ([`legacy::MAX_RECORD_LEN`]). It grows only for a pcapng block
/// larger than itself, up to [`ng::MAX_BLOCK_LEN`].
const BUFFER_LEN: usize = 1 << 20;
const NANOS_PER_SEC: u64 = 1_000_000_000;

impl Capture {
    /// Opens a capture file, or standard input for `-`; errors name it.
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        let (name, opened) = if path == Path::new("-") {
            let stdin = Self::from_reader(std::io::stdin());
            ("standard input".to_owned(), stdin)
        } else {
            let file = std::fs::File::open(path).map_err(|error| CaptureError::Io {
                path: path.to_owned(),
                error,
            })?;
            (path.display().to_string(), Self::from_reader(file))
        };
        opened.map_err(|error| CaptureError::InFile {
            name,
            error: Box::new(error),
        })
    }

    /// Reads a capture from any stream, gzip-compressed or not, and checks
    /// its header. The format is told by the first bytes.
    pub fn from_reader(reader: impl Read + Send + 'static) -> Result<Self, CaptureError> {
        Self::with_buffer(reader, BUFFER_LEN)
    }

    fn with_buffer(
        reader: impl Read + Send + 'static,
        capacity: usize,
    ) -> Result<Self, CaptureError> {
        let mut raw: Box<dyn Read + Send> = Box::new(reader);
        let mut head = read_up_to(&mut raw, HEAD_LEN).map_err(CaptureError::Read)?;
        let gzip = head.starts_with(&GZIP_MAGIC);
        if gzip {
            let compressed = Cursor::new(head).chain(raw);
            raw = Box::new(flate2::read::MultiGzDecoder::new(compressed));
            head = read_up_to(&mut raw, HEAD_LEN).map_err(CaptureError::Gzip)?;
        }
        let failure: Failure = Arc::new(Mutex::new(None));
        let input = Input::new(
            Box::new(Cursor::new(head.clone()).chain(raw)),
            failure.clone(),
        );
        let mut capture = Self::parser(&head, input, capacity)
            .map(|(parser, format)| Self {
                parser,
                format,
                capacity,
                pending: 0,
                done: false,
                gzip,
                failure,
            })
            .map_err(|e| in_gzip(e, gzip))?;
        capture.read_header()?;
        Ok(capture)
    }

    fn parser(
        head: &[u8],
        input: Input,
        capacity: usize,
    ) -> Result<(Box<dyn PcapReaderIterator + Send>, Format), CaptureError> {
        let Some(first) = head.first_chunk::<4>() else {
            return Err(CaptureError::TooShort { len: head.len() });
        };
        let (le, be) = (u32::from_le_bytes(*first), u32::from_be_bytes(*first));
        let opened = |e: PcapError<_>| match e {
            PcapError::HeaderNotRecognized => ng::byte_order_error(head, 0),
            PcapError::ReadError => CaptureError::ReadFailed,
            _ => CaptureError::Truncated {
                what: if le == PCAPNG_MAGIC {
                    "section header"
                } else {
                    "pcap file header"
                },
                offset: 0,
            },
        };
        if le == PCAPNG_MAGIC {
            let parser = PcapNGReader::new(capacity, input).map_err(opened)?;
            Ok((Box::new(parser), Format::PcapNg(ng::Section::default())))
        } else if [le, be]
            .iter()
            .any(|m| *m == PCAP_MAGIC_MICROS || *m == PCAP_MAGIC_NANOS)
        {
            let parser = LegacyPcapReader::new(capacity, input).map_err(opened)?;
            Ok((Box::new(parser), Format::Pcap(None)))
        } else {
            Err(CaptureError::NotCapture { magic: be })
        }
    }

    /// Reads the file header or first section header, so that a file with
    /// a bad one fails at open.
    fn read_header(&mut self) -> Result<(), CaptureError> {
        match self.next_block() {
            Some(Err(e)) => Err(e),
            _ => Ok(()),
        }
    }

    /// The next packet in file order, `None` at the end. See the module
    /// documentation for which errors end the iteration.
    pub fn next_packet(&mut self) -> Option<Result<Packet<'_>, CaptureError>> {
        loop {
            match self.next_block()? {
                Ok(Some((meta, start, end))) => {
                    let Some(data) = self.parser.data().get(start..end) else {
                        self.done = true;
                        return Some(Err(CaptureError::Internal));
                    };
                    let (link, data, orig_len) = link::normalize(meta.link, data, meta.orig_len);
                    return Some(Ok(Packet {
                        link,
                        ts_ns: meta.ts_ns,
                        direction: meta.direction,
                        data,
                        orig_len,
                    }));
                }
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// Reads one block: a packet (its bytes are `start..end` of the
    /// parser's buffer, owned so that the caller can borrow them), no
    /// packet, or an error. `None` at the end.
    #[expect(clippy::type_complexity, reason = "private, and described above")]
    fn next_block(&mut self) -> Option<Result<Option<(Meta, usize, usize)>, CaptureError>> {
        if self.done {
            return None;
        }
        self.parser.consume(std::mem::take(&mut self.pending));
        loop {
            let offset = self.parser.consumed();
            let base = self.parser.data().as_ptr().addr();
            let trouble = match self.parser.next() {
                Ok((len, block)) => {
                    let found = self.format.block(block, len, offset);
                    let found = found.map(|p| p.map(|(meta, data)| range_in(meta, base, data)));
                    match found {
                        Ok(Some(_)) => self.pending = len,
                        Err(CaptureError::UnsupportedLinkType { .. }) | Ok(None) => {
                            self.parser.consume(len);
                        }
                        Err(_) => self.done = true,
                    }
                    return Some(found.map_err(|e| self.explain(e)));
                }
                Err(PcapError::Eof) => {
                    self.done = true;
                    return None;
                }
                Err(PcapError::Incomplete(_)) => Trouble::More,
                Err(PcapError::BufferTooSmall) => Trouble::Grow,
                Err(PcapError::UnexpectedEof) => Trouble::End,
                Err(PcapError::HeaderNotRecognized) => Trouble::ByteOrder,
                Err(PcapError::ReadError) => {
                    self.done = true;
                    return Some(Err(self.explain(CaptureError::ReadFailed)));
                }
                Err(_) => Trouble::Refused,
            };
            let remedy = self.format.remedy(trouble, self.parser.data(), offset);
            let result = match remedy {
                Remedy::Refill => refill(self.parser.as_mut()),
                Remedy::Grow => grow(self.parser.as_mut(), &mut self.capacity),
                Remedy::Fail(e) => Err(e),
            };
            if let Err(e) = result {
                self.done = true;
                return Some(Err(self.explain(e)));
            }
        }
    }

    /// The parser only learns that reading failed; [`Input`] kept the
    /// error itself. Offsets in errors about a gzip-compressed capture
    /// count decompressed bytes: say so.
    fn explain(&self, e: CaptureError) -> CaptureError {
        let cause = match e {
            CaptureError::ReadFailed => self.failure.lock().ok().and_then(|mut f| f.take()),
            CaptureError::UnsupportedLinkType { .. } => return e,
            _ => None,
        };
        match cause {
            Some(error) if self.gzip => CaptureError::Gzip(error),
            Some(error) => CaptureError::Read(error),
            None => in_gzip(e, self.gzip),
        }
    }
}

impl Format {
    fn block<'a>(
        &mut self,
        block: PcapBlockOwned<'a>,
        len: usize,
        offset: usize,
    ) -> Result<Option<(Meta, &'a [u8])>, CaptureError> {
        match (self, block) {
            (Self::Pcap(file), PcapBlockOwned::LegacyHeader(header)) => {
                *file = Some(legacy::File::new(&header)?);
                Ok(None)
            }
            (Self::Pcap(Some(file)), PcapBlockOwned::Legacy(record)) => {
                file.record(&record, offset).map(Some)
            }
            (Self::PcapNg(section), PcapBlockOwned::NG(block)) => {
                section.block(&block, len, offset)
            }
            _ => Err(CaptureError::Internal),
        }
    }

    fn remedy(&self, trouble: Trouble, data: &[u8], offset: usize) -> Remedy {
        match self {
            Self::Pcap(Some(file)) => file.remedy(trouble, data, offset),
            Self::Pcap(None) => Remedy::Fail(CaptureError::Internal),
            Self::PcapNg(section) => section.remedy(trouble, data, offset),
        }
    }
}

/// Reads more of the stream into a parser's buffer after it asked for
/// more. A refill that adds nothing although the stream goes on would make
/// the caller ask again forever: that is an error.
fn refill(parser: &mut dyn PcapReaderIterator) -> Result<(), CaptureError> {
    let before = parser.data().len();
    parser.refill().map_err(|_| CaptureError::ReadFailed)?;
    if parser.data().len() == before && !parser.reader_exhausted() {
        return Err(CaptureError::Internal);
    }
    Ok(())
}

/// Doubles a reader's buffer, which holds less than the block it is
/// reading, and reads more. The callers check the block's length against
/// their format's limit first, so the buffer stays below twice that.
fn grow(parser: &mut dyn PcapReaderIterator, capacity: &mut usize) -> Result<(), CaptureError> {
    let room = capacity.saturating_mul(2);
    if !parser.grow(room) {
        return Err(CaptureError::Internal);
    }
    *capacity = room;
    refill(parser)
}

fn in_gzip(e: CaptureError, gzip: bool) -> CaptureError {
    if gzip && !matches!(e, CaptureError::Gzip(_)) {
        CaptureError::InGzip(Box::new(e))
    } else {
        e
    }
}

/// A packet and where its bytes are in the parser's buffer, which starts
/// at `buffer`. The parser reads blocks from its buffer without moving it,
/// so a packet's bytes are always a part of it; a part outside it gives a
/// range [`Capture::next_packet`] refuses.
fn range_in(meta: Meta, buffer: usize, data: &[u8]) -> (Meta, usize, usize) {
    let start = data.as_ptr().addr().wrapping_sub(buffer);
    (meta, start, start.saturating_add(data.len()))
}
