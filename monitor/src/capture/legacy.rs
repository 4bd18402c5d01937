//! Classic pcap (draft-ietf-opsawg-pcap): one link type per file,
//! microsecond or nanosecond timestamps, either byte order.

use monitor_common::{event::Direction, net::LinkType};
use pcap_parser::{LegacyPcapBlock, PcapHeader};

use super::{CaptureError, Meta, NANOS_PER_SEC, Remedy, Trouble, link};

/// A record is never longer than libpcap's largest snap length
/// (`MAXIMUM_SNAPLEN`, 262144, in libpcap's pcap-int.h), which is what
/// tcpdump `-s 0` captures with.
pub(super) const MAX_RECORD_LEN: u32 = 262_144;
/// Timestamp (seconds, fraction), captured length, original length.
const RECORD_HEADER_LEN: u32 = 16;
const CAPLEN_AT: usize = 8;

/// What the file header says.
pub(super) struct File {
    link: LinkType,
    nanos: bool,
    big_endian: bool,
}

impl File {
    pub(super) fn new(header: &PcapHeader) -> Result<Self, CaptureError> {
        if header.version_major != 2 {
            return Err(CaptureError::UnsupportedVersion {
                format: "pcap",
                major: header.version_major,
                minor: header.version_minor,
            });
        }
        // The low 16 bits are the link type; the high bits may carry FCS
        // information, which does not matter here.
        let link = LinkType(header.network.0.cast_unsigned() & 0xffff);
        if !link::supported(link) {
            return Err(CaptureError::UnsupportedLinkType {
                link: link.0,
                interface: None,
            });
        }
        Ok(Self {
            link,
            nanos: header.is_nanosecond_precision(),
            big_endian: header.is_bigendian(),
        })
    }

    pub(super) fn record<'a>(
        &self,
        record: &LegacyPcapBlock<'a>,
        offset: usize,
    ) -> Result<(Meta, &'a [u8]), CaptureError> {
        if record.caplen > MAX_RECORD_LEN {
            return Err(CaptureError::RecordLength {
                offset,
                caplen: record.caplen,
            });
        }
        // The fraction counts the micro- or nanoseconds since the seconds
        // field (draft-ietf-opsawg-pcap, "Packet Record"): a second or
        // more is not a timestamp but damage.
        let (unit, per_sec, ns_per_unit) = if self.nanos {
            ("nanoseconds", NANOS_PER_SEC, 1)
        } else {
            ("microseconds", 1_000_000, 1_000)
        };
        let frac = u64::from(record.ts_usec);
        if frac >= per_sec {
            return Err(CaptureError::TimestampFraction {
                offset,
                frac: record.ts_usec,
                unit,
            });
        }
        let ts_ns = u64::from(record.ts_sec)
            .checked_mul(NANOS_PER_SEC)
            .zip(frac.checked_mul(ns_per_unit))
            .and_then(|(s, f)| s.checked_add(f))
            .ok_or(CaptureError::Timestamp { offset })?;
        let meta = Meta {
            link: self.link,
            ts_ns,
            direction: Direction::UNKNOWN,
            orig_len: record.origlen,
        };
        Ok((meta, record.data))
    }

    /// `data` starts with the record the parser could not return.
    pub(super) fn remedy(&self, trouble: Trouble, data: &[u8], offset: usize) -> Remedy {
        let caplen = data
            .get(CAPLEN_AT..)
            .and_then(<[u8]>::first_chunk::<4>)
            .map(|b| {
                if self.big_endian {
                    u32::from_be_bytes(*b)
                } else {
                    u32::from_le_bytes(*b)
                }
            });
        match (trouble, caplen) {
            (_, Some(caplen)) if caplen > MAX_RECORD_LEN => {
                Remedy::Fail(CaptureError::RecordLength { offset, caplen })
            }
            (Trouble::More, _) => Remedy::Refill,
            (Trouble::Grow, Some(_)) => Remedy::Grow,
            _ => Remedy::Fail(CaptureError::Truncated {
                what: "record",
                offset,
            }),
        }
    }
}

const _: () = assert!((MAX_RECORD_LEN + RECORD_HEADER_LEN) as usize <= super::BUFFER_LEN);
