//! What a segment can say about how one side ended its TLS stream.
//!
//! TLS 1.3 encrypts close_notify: after the handshake every record has the
//! outer type application_data (RFC 8446 §5.2), and an alert is a
//! TLSInnerPlaintext of 2 bytes of alert, 1 byte of content type, optional
//! zero padding, then the AEAD tag. Unpadded, a close_notify is a record of
//! 19 bytes (16-byte tag: AES-GCM, ChaCha20-Poly1305, AES-CCM) or 11
//! (AES-CCM-8), and it is the last record its side sends (RFC 8446 §6.1).
//! So the length of the last record a side sent before its FIN or RST says
//! whether it can have been a close_notify. The kernel reports that length
//! for the segments that can carry a close, and userspace decides
//! (`monitor::tracker`, docs/classification.md "TLS 1.3 closes"):
//!
//! * a segment with FIN or RST and payload: the record that ends its
//!   payload, found by [`last_record`] from the end, so that neither a
//!   segment that starts in the middle of a record nor one carrying several
//!   (JSSE sends data, user_canceled and close_notify with its FIN) needs a
//!   walk from the start;
//! * a segment without FIN or RST that is one application_data record of at
//!   most [`SHORT_RECORD_MAX`] bytes ([`short_record`]): a close_notify sent
//!   in a segment of its own, whose FIN follows bare (OpenSSL, HAProxy).
//!   Userspace matches the FIN to it by sequence numbers.
//!
//! Everything else — nearly every packet — is decided from the segment's
//! length and flags and the record header already read: no other byte of
//! the payload is looked at.

use crate::{
    bytes::{Bytes, Limit},
    tls::{ContentType, RECORD_HEADER_LEN, RecordHeader},
};

/// An unpadded close_notify with a 16-byte AEAD tag: 2 bytes of alert, 1 of
/// content type, the tag (RFC 8446 §5.2; AES-GCM, ChaCha20-Poly1305 and
/// AES-CCM, RFC 8446 §B.4).
pub const CLOSE_NOTIFY_LEN: usize = 2 + 1 + 16;
/// The same with AES-CCM-8's 8-byte tag (TLS_AES_128_CCM_8_SHA256).
pub const CLOSE_NOTIFY_LEN_CCM8: usize = 2 + 1 + 8;
/// Zero padding up to which a record is taken to be possibly a padded
/// close_notify (RFC 8446 §5.4). JSSE pads its alerts with 16 zero bytes
/// (records of 35 bytes, measured: docs/classification.md); 32 leaves room
/// for a block padding of 32.
pub const MAX_ALERT_PADDING: usize = 32;
/// The longest record reported as short, and scanned for at a payload's
/// end: a close_notify with [`MAX_ALERT_PADDING`].
pub const SHORT_RECORD_MAX: usize = CLOSE_NOTIFY_LEN + MAX_ALERT_PADDING;
/// The shortest: an unpadded AES-CCM-8 close_notify.
pub const SHORT_RECORD_MIN: usize = CLOSE_NOTIFY_LEN_CCM8;

/// `EventHeader::last_record` when no record of at most
/// [`SHORT_RECORD_MAX`] bytes (nor of more than the payload can hold) ends
/// the payload: its last record is longer, or it is not TLS.
pub const LAST_RECORD_LONGER: u8 = 255;
/// `EventHeader::last_record` when the segment has no payload.
pub const LAST_RECORD_NONE: u8 = 0;
/// Set in `EventHeader::last_record` (with the length below it) when the
/// record that ends the payload is an alert record, not application data:
/// a TLS ≤ 1.2 close_notify (encrypted, RFC 5246 §7.2.1) behind data in a
/// segment that does not start with it. Lengths stay below it.
pub const LAST_RECORD_ALERT: u8 = 0x80;
const _: () = assert!(SHORT_RECORD_MAX < LAST_RECORD_ALERT as usize);

/// If the segment is one application_data record of close_notify size,
/// padded or not, its length: the header `h` read at the payload's start
/// says how long the record is, and it must fill the payload exactly.
#[inline(always)]
#[must_use]
#[expect(clippy::cast_possible_truncation, reason = "at most SHORT_RECORD_MAX")]
pub fn short_record(h: &RecordHeader, payload_len: usize) -> Option<u8> {
    (h.content_type == ContentType::APPLICATION_DATA
        && (SHORT_RECORD_MIN..=SHORT_RECORD_MAX).contains(&h.len)
        && h.len + RECORD_HEADER_LEN == payload_len)
        .then_some(h.len as u8)
}

/// The length of the application_data (or, with [`LAST_RECORD_ALERT`],
/// alert) record that ends the payload `start..end`, if it is at most
/// [`SHORT_RECORD_MAX`] bytes; otherwise [`LAST_RECORD_LONGER`], and
/// [`LAST_RECORD_NONE`] for an empty payload.
///
/// Looks for a record header `17 03 03 LL LL` (or `15 03 03 LL LL`) whose
/// length LL is exactly
/// its distance to the payload's end, shortest first. A real last record
/// always has its header there; ciphertext imitates one with probability
/// 2^-40 per position, and a false match is only possible where the real
/// last record is longer than the match. Only [`SHORT_RECORD_MAX`] + 5
/// bytes at the end are read, so a segment that starts in the middle of a
/// record is read as well as one that starts with a header.
#[inline(always)]
#[expect(clippy::cast_possible_truncation, reason = "at most SHORT_RECORD_MAX")]
pub fn last_record<B: Bytes + ?Sized>(b: &B, start: usize, end: usize) -> u8 {
    let len = end.saturating_sub(start);
    if len == 0 {
        return LAST_RECORD_NONE;
    }
    let b = &Limit::new(b, end);
    let tail = len.min(SHORT_RECORD_MAX + RECORD_HEADER_LEN);
    b.prefetch(end - tail, tail);
    let mut n = 1;
    while n <= SHORT_RECORD_MAX {
        if n + RECORD_HEADER_LEN > len {
            break;
        }
        if let Some([ct, major, minor, l0, l1]) = b.array::<5>(end - RECORD_HEADER_LEN - n)
            && major == 3
            && minor == 3
            && usize::from(u16::from_be_bytes([l0, l1])) == n
        {
            if ct == ContentType::APPLICATION_DATA.0 {
                return n as u8;
            }
            if ct == ContentType::ALERT.0 {
                return n as u8 | LAST_RECORD_ALERT;
            }
        }
        n += 1;
    }
    LAST_RECORD_LONGER
}

/// What the last record before a side's FIN or RST says, for a TLS 1.3
/// connection whose cipher suite's close_notify is `close_len` bytes
/// ([`close_notify_len`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LastRecord {
    /// Exactly an unpadded close_notify.
    CloseNotify,
    /// Possibly a padded close_notify, possibly a little data: undecided.
    Ambiguous,
    /// Too short or too long to be a close_notify (padded up to
    /// [`MAX_ALERT_PADDING`]).
    NotClose,
}

/// Judges a last record of `len` bytes.
#[must_use]
pub fn judge(len: usize, close_len: usize) -> LastRecord {
    if len == close_len {
        LastRecord::CloseNotify
    } else if len > close_len && len <= close_len + MAX_ALERT_PADDING {
        LastRecord::Ambiguous
    } else {
        LastRecord::NotClose
    }
}

/// The length of an unpadded close_notify under a TLS 1.3 cipher suite
/// (RFC 8446 §B.4): AES-CCM-8 has an 8-byte tag, the others 16.
#[must_use]
pub fn close_notify_len(cipher_suite: u16) -> usize {
    /// TLS_AES_128_CCM_8_SHA256.
    const CCM_8: u16 = 0x1305;
    if cipher_suite == CCM_8 {
        CLOSE_NOTIFY_LEN_CCM8
    } else {
        CLOSE_NOTIFY_LEN
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::record_header;

    fn record(ty: u8, body_len: u8, fill: u8) -> [u8; 128] {
        let mut out = [fill; 128];
        out[..5].copy_from_slice(&[ty, 3, 3, 0, body_len]);
        out
    }

    /// `parts` records (type, length) back to back, each body filled with
    /// `0xa5`; returns the buffer and its length.
    fn records(parts: &[(u8, usize)]) -> ([u8; 512], usize) {
        let mut out = [0xa5u8; 512];
        let mut at = 0;
        for &(ty, n) in parts {
            let [hi, lo] = u16::try_from(n).unwrap().to_be_bytes();
            out[at..at + 5].copy_from_slice(&[ty, 3, 3, hi, lo]);
            at += 5 + n;
        }
        (out, at)
    }

    #[test]
    fn a_lone_close_notify_is_short_and_data_is_not() {
        let r = record(23, 19, 0x42);
        let h = record_header(&r[..], 0).unwrap();
        assert_eq!(short_record(&h, 24), Some(19));
        // Not filling the segment: another record follows.
        assert_eq!(short_record(&h, 60), None);
        let r = record(23, 52, 0);
        assert_eq!(short_record(&record_header(&r[..], 0).unwrap(), 57), None);
        let r = record(21, 19, 0);
        assert_eq!(short_record(&record_header(&r[..], 0).unwrap(), 24), None);
    }

    #[test]
    fn the_last_record_is_found_from_the_end() {
        // OpenSSL: a lone close_notify.
        let (b, n) = records(&[(23, 19)]);
        assert_eq!(last_record(&b[..], 0, n), 19);
        // JSSE: data, user_canceled and close_notify, padded, with its FIN.
        let (b, n) = records(&[(23, 96), (23, 35), (23, 35)]);
        assert_eq!(last_record(&b[..], 0, n), 35);
        // nginx's response alone: longer than any close_notify.
        let (b, n) = records(&[(23, 168)]);
        assert_eq!(last_record(&b[..], 0, n), LAST_RECORD_LONGER);
        // The payload starts in the middle of a record (here 7 bytes into
        // it) and ends with a close_notify.
        let (b, n) = records(&[(23, 300), (23, 19)]);
        assert_eq!(last_record(&b[..], 7, n), 19);
        // Bytes after the payload (Ethernet padding) are not read.
        assert_eq!(last_record(&b[..], 0, n - 1), LAST_RECORD_LONGER);
        assert_eq!(last_record(&b[..], 0, 0), LAST_RECORD_NONE);
        // TLS 1.2: data, then an encrypted close_notify (AES-GCM: 8-byte
        // explicit nonce, 2, tag), in a segment starting mid-record.
        let (b, n) = records(&[(23, 300), (21, 26)]);
        assert_eq!(last_record(&b[..], 100, n), 0x1a | LAST_RECORD_ALERT);
        // CCM-8 and a short payload that is only part of a record.
        let (b, n) = records(&[(23, 11)]);
        assert_eq!(last_record(&b[..], 0, n), 11);
        assert_eq!(last_record(&b[..], 2, n), LAST_RECORD_LONGER);
    }

    #[test]
    fn last_records_are_judged_by_the_cipher_suites_tag() {
        assert_eq!(judge(19, close_notify_len(0x1301)), LastRecord::CloseNotify);
        assert_eq!(judge(11, close_notify_len(0x1305)), LastRecord::CloseNotify);
        assert_eq!(judge(11, close_notify_len(0x1302)), LastRecord::NotClose);
        assert_eq!(judge(35, close_notify_len(0x1303)), LastRecord::Ambiguous);
        assert_eq!(judge(51, CLOSE_NOTIFY_LEN), LastRecord::Ambiguous);
        assert_eq!(judge(52, CLOSE_NOTIFY_LEN), LastRecord::NotClose);
        assert_eq!(judge(173, CLOSE_NOTIFY_LEN), LastRecord::NotClose);
    }
}
