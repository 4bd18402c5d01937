//! pcapng (draft-ietf-opsawg-pcapng): sections, each with its byte order
//! and interfaces; packets in Enhanced, Simple and the obsolete Packet
//! Blocks; every other block is skipped.

use monitor_common::{event::Direction, net::LinkType};
use pcap_parser::{Block, OptionCode, PcapError, parse_option_be, parse_option_le};

use super::{CaptureError, Meta, NANOS_PER_SEC, Remedy, Trouble, link};

/// The longest block read. Far beyond any packet (a 64 KiB GSO frame, a
/// 256 KiB snap length): a file that announces more is damaged, and the
/// buffer grows to hold a block this long, no longer.
pub(super) const MAX_BLOCK_LEN: u32 = 16 << 20;
/// More interfaces than any capture describes; bounds the table a file
/// can make tlsmon keep.
const MAX_INTERFACES: usize = 1 << 16;
/// Block type, block total length ... block total length.
pub(super) const BLOCK_OVERHEAD: u32 = 12;
pub(super) const BT_SHB: u32 = 0x0a0d_0d0a;
pub(super) const BT_IDB: u32 = 1;
/// Obsolete Packet Block: like an Enhanced Packet Block with a 16-bit
/// interface id followed by a 16-bit drop count.
pub(super) const BT_PB: u32 = 2;
pub(super) const BT_SPB: u32 = 3;
pub(super) const BT_EPB: u32 = 6;
pub(super) const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
pub(super) const OPT_EPB_FLAGS: u16 = 2;

/// The current section: its byte order and interfaces.
#[derive(Default)]
pub(super) struct Section {
    big_endian: bool,
    interfaces: Vec<Interface>,
}

#[derive(Clone, Copy, Debug)]
struct Interface {
    link: LinkType,
    snaplen: u32,
    /// `if_tsresol`: bit 7 clear, 10^-n s; set, 2^-n s.
    tsresol: u8,
}

/// A packet block's fields.
#[derive(Clone, Copy)]
struct Parts<'a> {
    interface: u32,
    /// In the interface's `if_tsresol` units; none in Simple Packet Blocks.
    ticks: Option<u64>,
    /// `None` when the captured length runs past the block.
    data: Option<&'a [u8]>,
    orig_len: u32,
    /// `epb_flags`.
    flags: Option<u32>,
}

impl Section {
    /// A packet and its bytes, or `None` for a block that is not one.
    /// `len` is the block's length, `offset` where it starts.
    pub(super) fn block<'a>(
        &mut self,
        block: &Block<'a>,
        len: usize,
        offset: usize,
    ) -> Result<Option<(Meta, &'a [u8])>, CaptureError> {
        check_lengths(block, len, offset)?;
        let be = self.big_endian;
        let parts = match block {
            Block::SectionHeader(shb) => {
                if shb.major_version != 1 {
                    return Err(CaptureError::UnsupportedVersion {
                        format: "pcapng",
                        major: shb.major_version,
                        minor: shb.minor_version,
                    });
                }
                self.big_endian = shb.big_endian();
                self.interfaces.clear();
                return Ok(None);
            }
            Block::InterfaceDescription(idb) => {
                if self.interfaces.len() >= MAX_INTERFACES {
                    return Err(CaptureError::TooManyInterfaces {
                        offset,
                        max: MAX_INTERFACES,
                    });
                }
                self.interfaces.push(Interface {
                    link: LinkType(idb.linktype.0.cast_unsigned() & 0xffff),
                    snaplen: idb.snaplen,
                    tsresol: idb.if_tsresol,
                });
                return Ok(None);
            }
            Block::EnhancedPacket(epb) => Parts {
                interface: epb.if_id,
                ticks: Some(u64::from(epb.ts_high) << 32 | u64::from(epb.ts_low)),
                // `data` is padded to 32 bits.
                data: usize::try_from(epb.caplen)
                    .ok()
                    .and_then(|n| epb.data.get(..n)),
                orig_len: epb.origlen,
                flags: epb
                    .options
                    .iter()
                    .find(|o| o.code == OptionCode(OPT_EPB_FLAGS))
                    .and_then(|o| u32_at(o.value(), 0, be)),
            },
            // A captured length implied by the block length and the
            // interface's snap length.
            Block::SimplePacket(spb) => {
                let snaplen = self.interfaces.first().map_or(0, |i| i.snaplen);
                let room = if snaplen == 0 { u32::MAX } else { snaplen };
                let caplen = usize::try_from(spb.origlen.min(room)).unwrap_or(usize::MAX);
                Parts {
                    interface: 0,
                    ticks: None,
                    data: spb.data.get(..caplen.min(spb.data.len())),
                    orig_len: spb.origlen,
                    flags: None,
                }
            }
            Block::Unknown(b) if native(b.block_type, be) == BT_PB => {
                obsolete_packet(b.data, be).ok_or(CaptureError::Malformed {
                    offset,
                    reason: "packet block too short",
                })?
            }
            _ => return Ok(None),
        };
        self.packet(parts, offset).map(Some)
    }

    fn packet<'a>(&self, p: Parts<'a>, offset: usize) -> Result<(Meta, &'a [u8]), CaptureError> {
        let iface = usize::try_from(p.interface)
            .ok()
            .and_then(|i| self.interfaces.get(i))
            .copied()
            .ok_or(CaptureError::UnknownInterface {
                offset,
                interface: p.interface,
                count: self.interfaces.len(),
            })?;
        if !link::supported(iface.link) {
            return Err(CaptureError::UnsupportedLinkType {
                link: iface.link.0,
                interface: Some(p.interface),
            });
        }
        let data = p.data.ok_or(CaptureError::Malformed {
            offset,
            reason: "captured length exceeds the block",
        })?;
        let ts_ns = match p.ticks {
            Some(t) => ticks_to_ns(t, iface.tsresol).ok_or(CaptureError::Timestamp { offset })?,
            None => 0,
        };
        let meta = Meta {
            link: iface.link,
            ts_ns,
            direction: direction(p.flags),
            orig_len: p.orig_len,
        };
        Ok((meta, data))
    }

    /// `data` starts with the block the parser could not return.
    pub(super) fn remedy(&self, trouble: Trouble, data: &[u8], offset: usize) -> Remedy {
        if trouble == Trouble::ByteOrder {
            return Remedy::Fail(byte_order_error(data, offset));
        }
        let announced = announced_len(data, self.big_endian);
        let complete = announced
            .and_then(|n| usize::try_from(n).ok())
            .is_some_and(|n| n <= data.len());
        Remedy::Fail(match (trouble, announced) {
            (_, Some(len)) if !length_valid(len) => CaptureError::BlockLength { offset, len },
            // The parser refused the block, or wants more than the block
            // although all of it is there: something inside runs past it.
            _ if complete || trouble == Trouble::Refused => diagnose(data, self.big_endian, offset),
            (Trouble::More, _) => return Remedy::Refill,
            // Doubling, not straight to the announced length: a short file
            // that announces a long block costs little.
            (Trouble::Grow, Some(_)) => return Remedy::Grow,
            _ => CaptureError::Truncated {
                what: "block",
                offset,
            },
        })
    }
}

/// The obsolete Packet Block, which pcap-parser leaves unparsed: interface
/// (16 bits), drops (16 bits), timestamp (high, low), captured length,
/// original length, data, options (`pack_flags` is `epb_flags`).
fn obsolete_packet(body: &[u8], be: bool) -> Option<Parts<'_>> {
    let field = |at| u32_at(body, at, be);
    let (ids, high, low, caplen) = (field(0)?, field(4)?, field(8)?, field(12)?);
    let end = usize::try_from(caplen).ok()?.checked_add(20)?;
    let mut options = body
        .get(end.checked_next_multiple_of(4)?..)
        .unwrap_or_default();
    let mut flags = None;
    while let Ok((rest, option)) = if be {
        parse_option_be::<PcapError<&[u8]>>(options)
    } else {
        parse_option_le::<PcapError<&[u8]>>(options)
    } {
        match option.code {
            OptionCode::EndOfOpt => break,
            OptionCode(OPT_EPB_FLAGS) => flags = u32_at(option.value(), 0, be),
            _ => {}
        }
        options = rest;
    }
    Some(Parts {
        // The interface is the first 16 bits in the section's byte order.
        interface: if be { ids >> 16 } else { ids & 0xffff },
        ticks: Some(u64::from(high) << 32 | u64::from(low)),
        data: body.get(20..end),
        orig_len: field(16)?,
        flags,
    })
}

/// The parser checks the trailing length of the blocks whose content it
/// reads, not of the others.
fn check_lengths(block: &Block<'_>, len: usize, offset: usize) -> Result<(), CaptureError> {
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    if !length_valid(len) {
        return Err(CaptureError::BlockLength { offset, len });
    }
    let (leading, trailing) = match block {
        Block::SectionHeader(b) => (b.block_len1, b.block_len2),
        Block::SimplePacket(b) => (b.block_len1, b.block_len2),
        Block::Unknown(b) => (b.block_len1, b.block_len2),
        _ => (len, len),
    };
    if leading == trailing {
        Ok(())
    } else {
        Err(CaptureError::LengthMismatch {
            offset,
            leading,
            trailing,
        })
    }
}

/// pcap-parser reads the type of a block it does not know as little endian.
fn native(ty: u32, big_endian: bool) -> u32 {
    if big_endian { ty.swap_bytes() } else { ty }
}

pub(super) fn byte_order_error(data: &[u8], offset: usize) -> CaptureError {
    CaptureError::ByteOrder {
        offset,
        magic: u32_at(data, 8, true).unwrap_or(0),
    }
}

/// The length the block at the start of `data` announces. A section header
/// tells its own byte order.
fn announced_len(data: &[u8], big_endian: bool) -> Option<u32> {
    let big_endian = if u32_at(data, 0, false) == Some(BT_SHB) {
        match u32_at(data, 8, false)? {
            BYTE_ORDER_MAGIC => false,
            m if m.swap_bytes() == BYTE_ORDER_MAGIC => true,
            _ => return None,
        }
    } else {
        big_endian
    };
    u32_at(data, 4, big_endian)
}

fn length_valid(len: u32) -> bool {
    len >= BLOCK_OVERHEAD && len.is_multiple_of(4) && len <= MAX_BLOCK_LEN
}

/// What is wrong with a block the parser refused.
fn diagnose(data: &[u8], big_endian: bool, offset: usize) -> CaptureError {
    let ty = u32_at(data, 0, big_endian).unwrap_or(0);
    let len = announced_len(data, big_endian).unwrap_or(0);
    let end = usize::try_from(len).map_or(usize::MAX, |n| n.saturating_sub(4));
    match u32_at(data, end, big_endian) {
        Some(trailing) if trailing != len => CaptureError::LengthMismatch {
            offset,
            leading: len,
            trailing,
        },
        _ => CaptureError::Malformed {
            offset,
            reason: match ty {
                BT_EPB if len < 32 => "packet block too short",
                BT_EPB => "captured length exceeds the block",
                BT_IDB => "interface description too short",
                BT_SPB => "simple packet block too short",
                BT_SHB => "section header block too short",
                _ => "block content does not fit its length",
            },
        },
    }
}

fn u32_at(data: &[u8], at: usize, big_endian: bool) -> Option<u32> {
    let b = *data.get(at..at.checked_add(4)?)?.first_chunk::<4>()?;
    Some(if big_endian {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    })
}

/// `epb_flags` bits 0-1: inbound, outbound, or not known.
fn direction(flags: Option<u32>) -> Direction {
    match flags.map(|f| f & 0b11) {
        Some(1) => Direction::INGRESS,
        Some(2) => Direction::EGRESS,
        _ => Direction::UNKNOWN,
    }
}

/// Converts a pcapng timestamp in `if_tsresol` units to nanoseconds.
/// (pcap-parser's own conversion refuses every power-of-two resolution.)
pub(super) fn ticks_to_ns(ticks: u64, tsresol: u8) -> Option<u64> {
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
