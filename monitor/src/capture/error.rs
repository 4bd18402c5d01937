//! What can be wrong with a capture, in words a person can act on: which
//! structure, at which byte of the (decompressed) stream.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot read {}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// Any error, with the file (or "standard input") it is about.
    #[error("{name}: {error}")]
    InFile {
        name: String,
        error: Box<CaptureError>,
    },
    /// An error about what a gzip-compressed stream holds; its offsets
    /// count decompressed bytes.
    #[error("inside gzip: {0}")]
    InGzip(Box<CaptureError>),
    #[error("read error: {0}")]
    Read(std::io::Error),
    #[error("gzip: {0}")]
    Gzip(std::io::Error),
    /// Reading failed; [`super::Capture`] replaces this with the I/O error.
    #[error("read error")]
    ReadFailed,
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
        "pcapng block at byte {offset} has invalid length {len} (must be at least 12, a multiple of 4, and at most {max})",
        max = super::ng::MAX_BLOCK_LEN
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
    #[error("pcapng section at byte {offset} describes more than {max} interfaces")]
    TooManyInterfaces { offset: usize, max: usize },
    /// `interface` is a pcapng interface; a classic pcap has one link type.
    #[error("{}", unsupported_link(*link, *interface))]
    UnsupportedLinkType { link: u32, interface: Option<u32> },
    #[error(
        "pcap record at byte {offset} claims {caplen} captured bytes, more than a capture \
         can hold ({max}): the file is damaged there",
        max = super::legacy::MAX_RECORD_LEN
    )]
    RecordLength { offset: usize, caplen: u32 },
    /// A fraction of a second that is not below one second.
    #[error(
        "pcap record at byte {offset} has a timestamp fraction of {frac} {unit}, \
         a second or more: the file is damaged there"
    )]
    TimestampFraction {
        offset: usize,
        frac: u32,
        unit: &'static str,
    },
    #[error("timestamp of the packet at byte {offset} does not fit in 64-bit nanoseconds")]
    Timestamp { offset: usize },
    /// A packet's bytes were not where the reader said; never expected.
    #[error("internal error: a packet's bytes are outside the reader's buffer")]
    Internal,
}

fn unsupported_link(link: u32, interface: Option<u32>) -> String {
    let link = monitor_common::net::LinkType(link);
    let name = super::link::name(link).map_or_else(String::new, |n| format!(" ({n})"));
    let on = interface.map_or_else(String::new, |i| format!(" on interface {i}"));
    format!(
        "unsupported link type {}{name}{on}; tlsmon reads {}",
        link.0,
        super::link::SUPPORTED
    )
}
