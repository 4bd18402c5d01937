//! TLS wire knowledge: record and handshake headers, ClientHello and
//! ServerHello fields, NewSessionTicket.
//!
//! Wire codes are open newtypes: unknown values arrive (GREASE, RFC 8701;
//! new extensions) and must pass through, so nothing here is an enum read
//! from bytes. Every loop has a named bound so the same code verifies in the
//! kernel.
//!
//! Offsets are `usize` while the event stores `u32`/`u8`: every offset is
//! within one packet (`skb->len` is a `u32`) and every length stored as `u8`
//! was checked against a constant of at most 64 first, so the narrowing
//! casts below cannot truncate.
#![expect(clippy::cast_possible_truncation, reason = "see the module comment")]

pub use crate::version::{ProtocolVersion, Rules};
use crate::{
    bytes::{Bytes, Limit},
    event::{
        ALPN_MAX, Hello, ITEM_OPAQUE, MAX_ITEMS, SESSION_ID_MAX, SNI_MAX, TICKET_ID_LEN,
        TlsSummary, hello_flags,
    },
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentType(pub u8);

impl ContentType {
    // RFC 8446 §5.1, RFC 5246 §6.2.1, RFC 6520 (heartbeat).
    pub const CHANGE_CIPHER_SPEC: Self = Self(20);
    pub const ALERT: Self = Self(21);
    pub const HANDSHAKE: Self = Self(22);
    pub const APPLICATION_DATA: Self = Self(23);
    pub const HEARTBEAT: Self = Self(24);
}

/// AlertLevel warning (RFC 5246 §7.2; fatal is 2).
pub const ALERT_WARNING: u8 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandshakeType(pub u8);

impl HandshakeType {
    // RFC 8446 §4, RFC 5246 §7.4.
    pub const HELLO_REQUEST: Self = Self(0);
    pub const CLIENT_HELLO: Self = Self(1);
    pub const SERVER_HELLO: Self = Self(2);
    pub const NEW_SESSION_TICKET: Self = Self(4);
    pub const ENCRYPTED_EXTENSIONS: Self = Self(8);
    pub const CERTIFICATE: Self = Self(11);
    pub const SERVER_KEY_EXCHANGE: Self = Self(12);
    pub const CERTIFICATE_REQUEST: Self = Self(13);
    pub const SERVER_HELLO_DONE: Self = Self(14);
    pub const CLIENT_KEY_EXCHANGE: Self = Self(16);
    pub const FINISHED: Self = Self(20);
    pub const CERTIFICATE_STATUS: Self = Self(22);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtensionType(pub u16);

impl ExtensionType {
    pub const SERVER_NAME: Self = Self(0); // RFC 6066 §3
    pub const ALPN: Self = Self(16); // RFC 7301 §3.1
    pub const SESSION_TICKET: Self = Self(35); // RFC 5077 §3.2
    pub const PRE_SHARED_KEY: Self = Self(41); // RFC 8446 §4.2.11
    pub const EARLY_DATA: Self = Self(42); // RFC 8446 §4.2.10
    pub const SUPPORTED_VERSIONS: Self = Self(43); // RFC 8446 §4.2.1
}

/// RFC 8446 §4.1.3: a HelloRetryRequest is a ServerHello whose random is
/// SHA-256("HelloRetryRequest").
pub const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

pub const RECORD_HEADER_LEN: usize = 5;
pub const HANDSHAKE_HEADER_LEN: usize = 4;
/// RFC 5246 §6.2.3: TLSCiphertext.length is at most 2^14 + 2048; RFC 8446
/// §5.2 is stricter (2^14 + 256). Anything longer is not a TLS record.
pub const MAX_RECORD_LEN: usize = (1 << 14) + 2048;
/// Records walked per segment. A server's first flight rarely exceeds four
/// records in one segment; GRO super-packets may hold more, but the messages
/// that decide classification come first.
pub const MAX_RECORDS_PER_PACKET: usize = 8;
/// Extensions walked per hello. Browsers send about 20 including GREASE.
pub const MAX_EXTENSIONS: usize = 32;
/// supported_versions entries examined (a list may hold up to 127).
pub const MAX_VERSIONS: usize = 8;
/// Records plus handshake messages visited per segment: bounds the walk in
/// [`summarize`] as one flat loop, which the verifier handles far better
/// than nested ones.
pub const MAX_STEPS: usize = 16;

/// A TLS record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    pub content_type: ContentType,
    pub version: ProtocolVersion,
    pub len: usize,
}

/// Reads a record header at `off`, accepting only what a TLS record can be:
/// a known content type, major version 3 with minor 0–4 (RFC 8446 §5.1 keeps
/// 0x0301/0x0303 on the wire), and a non-zero length within
/// [`MAX_RECORD_LEN`]. This is the cheap test applied to every payload.
#[inline(always)]
pub fn record_header<B: Bytes + ?Sized>(b: &B, off: usize) -> Option<RecordHeader> {
    let [ct, major, minor, l0, l1] = match b.block::<5>(off) {
        Some(&h) => h,
        None => b.array::<5>(off)?,
    };
    let len = usize::from(u16::from_be_bytes([l0, l1]));
    if !(ContentType::CHANGE_CIPHER_SPEC.0..=ContentType::HEARTBEAT.0).contains(&ct)
        || major != 3
        || minor > 4
        || len == 0
        || len > MAX_RECORD_LEN
    {
        return None;
    }
    Some(RecordHeader {
        content_type: ContentType(ct),
        version: ProtocolVersion(u16::from_be_bytes([major, minor])),
        len,
    })
}

/// Walks the TLS records at the start of a TCP payload and fills `out`.
///
/// `out` must start zeroed. `start..end` is the payload. Records may run
/// past `end` (the rest is in later segments); their beginnings still count.
/// Once a change_cipher_spec has been seen in this segment, later handshake
/// records are encrypted (RFC 5246 §7.1) and are listed as opaque.
///
/// The walk only notes where the first hello and NewSessionTicket are; they
/// are parsed after it. Its cursor and those positions go through `out` and
/// are read back with volatile loads: the kernel verifier does not track the
/// contents of ring-buffer memory, so every iteration, and every path out of
/// the walk, starts from the same abstract state and is verified once,
/// instead of once per distinct path (which grows exponentially with
/// [`MAX_STEPS`] and exceeds the verifier's one-million-instruction budget
/// at 16). Plain integers with 0 for "none" are used rather than `Option`:
/// LLVM leaves a `None` payload undefined, and the verifier rejects reads of
/// undefined registers even on paths that never use them.
#[inline(always)]
pub fn summarize<B: Bytes + ?Sized>(b: &B, start: usize, end: usize, out: &mut TlsSummary) {
    // Nothing past the TCP payload is TLS, whatever the frame holds after it.
    let b = &Limit::new(b, end);
    // Dozens of small reads follow: record and message headers, then one
    // per hello field and extension.
    b.prefetch(start, end - start);
    out.walk = [start as u32, 0, 0];
    for _ in 0..MAX_STEPS {
        // The cursor lives in `out.walk`: next header offset, end of the
        // current plaintext handshake record (0 outside one), and whether a
        // change_cipher_spec has been seen.
        // SAFETY: plain read of a field of a live &mut.
        let [pos, rec_end, encrypted] = unsafe { core::ptr::read_volatile(&raw const out.walk) };
        let (pos, rec_end) = (pos as usize, rec_end as usize);
        if rec_end != 0 {
            // Inside a plaintext handshake record: the next message header,
            // or the next record once this one is used up.
            if pos + HANDSHAKE_HEADER_LEN > rec_end || pos + HANDSHAKE_HEADER_LEN > end {
                out.walk = [rec_end as u32, 0, encrypted];
                continue;
            }
            let Some(hdr) = b.be32_at(pos) else { break };
            let ty = (hdr >> 24) as u8;
            let len = (hdr & 0x00ff_ffff) as usize;
            out.push(ContentType::HANDSHAKE.0, ty);
            let body = pos + HANDSHAKE_HEADER_LEN;
            if (ty == HandshakeType::CLIENT_HELLO.0 || ty == HandshakeType::SERVER_HELLO.0)
                && out.hello_type == 0
            {
                out.hello_type = ty;
                out.hello_at = body as u32;
                out.hello_len = len as u32;
            } else if ty == HandshakeType::NEW_SESSION_TICKET.0 && out.nst_at == 0 {
                out.nst_at = body as u32;
                out.nst_len = len as u32;
            }
            out.walk = [(body + len) as u32, rec_end as u32, encrypted];
            continue;
        }
        if pos + RECORD_HEADER_LEN > end {
            break;
        }
        let Some(h) = record_header(b, pos) else {
            break;
        };
        let body = pos + RECORD_HEADER_LEN;
        let next = (body + h.len) as u32;
        match h.content_type {
            ContentType::HANDSHAKE if encrypted == 0 || plaintext_hello(b, body, h.len) => {
                out.walk = [body as u32, next, encrypted];
                continue;
            }
            ContentType::CHANGE_CIPHER_SPEC => {
                out.push(h.content_type.0, 1);
                out.walk = [next, 0, 1];
                continue;
            }
            ContentType::ALERT => {
                // A plaintext alert is exactly level + description
                // (RFC 5246 §7.2); anything longer is encrypted.
                let mut detail = ITEM_OPAQUE;
                if h.len == 2
                    && encrypted == 0
                    && let Some(alert) = b.be16_at(body)
                {
                    detail = alert as u8;
                    let i = out.n_items;
                    if alert >> 8 == u16::from(ALERT_WARNING) && i < MAX_ITEMS as u8 {
                        out.warning_alerts |= 1 << i;
                    }
                }
                out.push(h.content_type.0, detail);
            }
            _ => out.push(h.content_type.0, ITEM_OPAQUE),
        }
        out.walk = [next, 0, encrypted];
    }
    // SAFETY (all four): plain reads of fields of a live &mut.
    let (hello_type, hello_at, hello_len) = unsafe {
        (
            core::ptr::read_volatile(&raw const out.hello_type),
            core::ptr::read_volatile(&raw const out.hello_at) as usize,
            core::ptr::read_volatile(&raw const out.hello_len) as usize,
        )
    };
    if hello_type == HandshakeType::CLIENT_HELLO.0 {
        client_hello(b, hello_at, hello_len, end, &mut out.hello);
    } else if hello_type == HandshakeType::SERVER_HELLO.0 {
        server_hello(b, hello_at, hello_len, end, &mut out.hello, &mut out.walk);
    }
    let (nst_at, nst_len) = unsafe {
        (
            core::ptr::read_volatile(&raw const out.nst_at) as usize,
            core::ptr::read_volatile(&raw const out.nst_len) as usize,
        )
    };
    if nst_at != 0 {
        new_session_ticket(b, nst_at, nst_len, end, &mut out.hello);
    }
}

/// Whether a handshake record after a change_cipher_spec is nevertheless a
/// plaintext hello: TLS 1.3 sends a dummy change_cipher_spec for middlebox
/// compatibility (RFC 8446 §D.4), and after a HelloRetryRequest the client's
/// CCS and second ClientHello often share a segment. A record holding
/// exactly one ClientHello/ServerHello whose 3-byte length fills it is taken
/// as plaintext; an encrypted TLS 1.2 Finished passes this by chance with
/// probability about 2^-31.
#[inline(always)]
fn plaintext_hello<B: Bytes + ?Sized>(b: &B, body: usize, len: usize) -> bool {
    let Some(hdr) = b.be32_at(body) else {
        return false;
    };
    let ty = (hdr >> 24) as u8;
    (ty == HandshakeType::CLIENT_HELLO.0 || ty == HandshakeType::SERVER_HELLO.0)
        && (hdr & 0x00ff_ffff) as usize + HANDSHAKE_HEADER_LEN == len
}

/// Common start of both hellos (RFC 8446 §4.1.2–4.1.3): legacy_version,
/// random, legacy_session_id. Returns the offset after the session ID.
#[inline(always)]
fn hello_prefix<B: Bytes + ?Sized>(
    b: &B,
    body: usize,
    msg_end: usize,
    h: &mut Hello,
) -> Option<usize> {
    h.legacy_version = b.be16_at(body)?;
    // RFC 8446 §4.1.2/§4.1.3 pin legacy_version to 0x0303; older peers send
    // 0x0300–0x0302. Anything else is not a hello (for instance an
    // encrypted Finished misread as plaintext).
    if !(ProtocolVersion::SSL3_0.0..=ProtocolVersion::TLS1_2.0).contains(&h.legacy_version) {
        h.flags |= hello_flags::MALFORMED;
        return None;
    }
    let sid_off = body + 2 + 32;
    let sid_len = usize::from(b.u8_at(sid_off)?);
    if sid_len > SESSION_ID_MAX || sid_off + 1 + sid_len > msg_end {
        h.flags |= hello_flags::MALFORMED;
        return None;
    }
    if sid_len > 0 {
        if !b.copy_prefix(sid_off + 1, &mut h.session_id, sid_len) {
            return None;
        }
        h.session_id_len = sid_len as u8;
    }
    Some(sid_off + 1 + sid_len)
}

/// Parses a ClientHello body (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2).
#[inline(always)]
pub fn client_hello<B: Bytes + ?Sized>(b: &B, body: usize, len: usize, end: usize, h: &mut Hello) {
    h.flags |= hello_flags::CLIENT_HELLO;
    let msg_end = body + len;
    if msg_end > end {
        // The rest is in later segments: what is read here may be incomplete.
        h.flags |= hello_flags::TRUNCATED;
    }
    let Some(off) = hello_prefix(b, body, msg_end, h) else {
        h.flags |= hello_flags::TRUNCATED;
        return;
    };
    // cipher_suites<2..2^16-2>, legacy_compression_methods<1..2^8-1>.
    let Some(cs_len) = b.be16_at(off) else {
        h.flags |= hello_flags::TRUNCATED;
        return;
    };
    let cm_off = off + 2 + usize::from(cs_len);
    let Some(comp_len) = b.u8_at(cm_off) else {
        h.flags |= hello_flags::TRUNCATED;
        return;
    };
    let ext_off = cm_off + 1 + usize::from(comp_len);
    if cs_len < 2 || !cs_len.is_multiple_of(2) || comp_len == 0 || ext_off > msg_end {
        h.flags |= hello_flags::MALFORMED;
        return;
    }
    extensions(b, ext_off, msg_end, end, h, true);
}

/// Parses a ServerHello body (RFC 8446 §4.1.3, RFC 5246 §7.4.1.3).
///
/// `scratch` is the summary's walk space (see [`summarize`] for why): the
/// two layouts leave the cipher suite and extensions at offsets the
/// verifier would tell apart, and everything after would be verified once
/// for each; passed through the event, the offsets are the same unknowns
/// on both.
#[inline(always)]
fn server_hello<B: Bytes + ?Sized>(
    b: &B,
    body: usize,
    len: usize,
    end: usize,
    h: &mut Hello,
    scratch: &mut [u32; 3],
) {
    h.flags |= hello_flags::SERVER_HELLO;
    let msg_end = body + len;
    if msg_end > end {
        // The rest is in later segments: what is read here may be incomplete.
        h.flags |= hello_flags::TRUNCATED;
    }
    if b.array::<32>(body + 2) == Some(HRR_RANDOM) {
        h.flags |= hello_flags::HRR;
    }
    // A draft of TLS 1.3 before -22 has its version here and no session
    // ID or compression method: version, random, cipher_suite, extensions.
    let draft = b.be16_at(body).unwrap_or(0);
    let (off, compression) = if ProtocolVersion(draft).early_draft() {
        h.legacy_version = draft;
        h.selected_version = draft;
        (body + 2 + 32, 0)
    } else {
        let Some(off) = hello_prefix(b, body, msg_end, h) else {
            h.flags |= hello_flags::TRUNCATED;
            return;
        };
        (off, 1)
    };
    // cipher_suite(2), legacy_compression_method(1) but in early drafts.
    // SAFETY: live exclusive references.
    let (off, ext_off) = unsafe {
        core::ptr::write_volatile(&raw mut scratch[0], off as u32);
        core::ptr::write_volatile(&raw mut scratch[1], (off + 2 + compression) as u32);
        (
            core::ptr::read_volatile(&raw const scratch[0]) as usize,
            core::ptr::read_volatile(&raw const scratch[1]) as usize,
        )
    };
    let Some(cs) = b.be16_at(off) else {
        h.flags |= hello_flags::TRUNCATED;
        return;
    };
    h.cipher_suite = cs;
    if ext_off > msg_end {
        h.flags |= hello_flags::MALFORMED;
        return;
    }
    extensions(b, ext_off, msg_end, end, h, false);
}

/// Walks the extensions block at `off` (a 2-byte length, then entries of
/// type(2) length(2) data). Extensions are optional before TLS 1.3: an empty
/// tail is fine.
#[inline(always)]
fn extensions<B: Bytes + ?Sized>(
    b: &B,
    off: usize,
    msg_end: usize,
    end: usize,
    h: &mut Hello,
    client: bool,
) {
    if off == msg_end {
        return;
    }
    let Some(total) = b.be16_at(off) else {
        h.flags |= hello_flags::TRUNCATED;
        return;
    };
    let ext_end = off + 2 + usize::from(total);
    if ext_end > msg_end {
        h.flags |= hello_flags::MALFORMED;
        return;
    }
    let mut e = off + 2;
    for _ in 0..MAX_EXTENSIONS {
        if e + 4 > ext_end {
            break;
        }
        if e + 4 > end {
            h.flags |= hello_flags::TRUNCATED;
            return;
        }
        let Some(hdr) = b.be32_at(e) else {
            h.flags |= hello_flags::TRUNCATED;
            return;
        };
        let ty = ExtensionType((hdr >> 16) as u16);
        let len = (hdr & 0xffff) as usize;
        let data = e + 4;
        if data + len > ext_end {
            h.flags |= hello_flags::MALFORMED;
            return;
        }
        h.extensions = h.extensions.saturating_add(1);
        match ty {
            ExtensionType::SERVER_NAME if client => server_name(b, data, len, h),
            ExtensionType::ALPN => alpn(b, data, len, h),
            ExtensionType::SESSION_TICKET => {
                h.flags |= hello_flags::TICKET_EXT;
                if client && len > 0 {
                    h.flags |= hello_flags::TICKET_OFFERED;
                    ticket_id(b, data, len, h);
                }
            }
            ExtensionType::PRE_SHARED_KEY => h.flags |= hello_flags::PSK,
            ExtensionType::EARLY_DATA if client => h.flags |= hello_flags::EARLY_DATA,
            ExtensionType::SUPPORTED_VERSIONS => {
                if client {
                    if ProtocolVersion(preferred_version(b, data, len)).follows_tls13() {
                        h.flags |= hello_flags::OFFERS_TLS13;
                    }
                } else if let Some(v) = b.be16_at(data) {
                    h.selected_version = v;
                }
            }
            _ => {}
        }
        e = data + len;
    }
    // Stopped with extensions left: their bytes are missing, or there are
    // more than MAX_EXTENSIONS. Either way what was read may be incomplete
    // (a pre_shared_key offer comes last, RFC 8446 §4.2.11), and the hello
    // is counted as truncated rather than taken as whole.
    if e < ext_end && (e + 4 > end || e + 4 <= ext_end) {
        h.flags |= hello_flags::TRUNCATED;
    }
}

/// ClientHello supported_versions: a 1-byte list length, then versions
/// "in preference order, with the most preferred version first" (RFC 8446
/// §4.2.1). Returns the first that is not a GREASE value (RFC 8701 §2:
/// both bytes `0x?a`), or 0.
///
/// The preferred version alone decides whether a client offers TLS 1.3:
/// testing every entry against `ProtocolVersion::follows_tls13` (TLS 1.3,
/// its drafts, a vendor's variants) cost the verifier some 29,000
/// instructions more per classifier, this about 2,500, and a client that
/// lists TLS 1.3 at all prefers it.
#[inline(always)]
fn preferred_version<B: Bytes + ?Sized>(b: &B, data: usize, len: usize) -> u16 {
    let Some(list) = b.u8_at(data) else {
        return 0;
    };
    let n = usize::from(list).min(len.saturating_sub(1)) / 2;
    let mut i = 0;
    while i < MAX_VERSIONS && i < n {
        if let Some(v) = b.be16_at(data + 1 + 2 * i)
            && v & 0x0f0f != 0x0a0a
        {
            return v;
        }
        i += 1;
    }
    0
}

/// RFC 6066 §3: server_name_list<1..2^16-1> of (name_type, HostName<1..2^16-1>).
/// Only the first entry is read; host_name (0) is the only type defined.
#[inline(always)]
fn server_name<B: Bytes + ?Sized>(b: &B, data: usize, len: usize, h: &mut Hello) {
    if len < 5 {
        return;
    }
    // Sequential early returns, not a tuple of Options: LLVM may read the
    // undefined payload of a None speculatively, which the verifier refuses.
    if b.u8_at(data + 2) != Some(0) {
        return;
    }
    let Some(name_len) = b.be16_at(data + 3) else {
        return;
    };
    let name_len = usize::from(name_len);
    if 5 + name_len > len {
        return;
    }
    if name_len > SNI_MAX {
        h.flags |= hello_flags::NAME_CUT;
    }
    let n = name_len.min(SNI_MAX);
    if b.copy_prefix(data + 5, &mut h.sni, n) {
        h.sni_len = n as u8;
    }
}

/// RFC 7301 §3.1: protocol_name_list<2..2^16-1> of ProtocolName<1..2^8-1>.
/// The first name is kept: the client's preference, or the server's choice.
#[inline(always)]
fn alpn<B: Bytes + ?Sized>(b: &B, data: usize, len: usize, h: &mut Hello) {
    if len < 3 {
        return;
    }
    let Some(name_len) = b.u8_at(data + 2) else {
        return;
    };
    let name_len = usize::from(name_len);
    if 3 + name_len > len {
        return;
    }
    if name_len > ALPN_MAX {
        h.flags |= hello_flags::NAME_CUT;
    }
    let n = name_len.min(ALPN_MAX);
    if b.copy_prefix(data + 3, &mut h.alpn, n) {
        h.alpn_len = n as u8;
    }
}

/// Keeps the last [`TICKET_ID_LEN`] bytes of a ticket (all of a shorter one).
#[inline(always)]
fn ticket_id<B: Bytes + ?Sized>(b: &B, data: usize, len: usize, h: &mut Hello) {
    if len >= TICKET_ID_LEN {
        if let Some(id) = b.array::<TICKET_ID_LEN>(data + len - TICKET_ID_LEN) {
            h.ticket_id = id;
        }
    } else {
        let _ = b.copy_prefix(data, &mut h.ticket_id, len);
    }
}

/// RFC 5077 §3.3 (TLS ≤ 1.2, sent in clear): ticket_lifetime_hint(4),
/// ticket<0..2^16-1>. An empty ticket means "no new ticket".
#[inline(always)]
fn new_session_ticket<B: Bytes + ?Sized>(
    b: &B,
    body: usize,
    len: usize,
    end: usize,
    h: &mut Hello,
) {
    let Some(tlen) = b.be16_at(body + 4) else {
        return;
    };
    let tlen = usize::from(tlen);
    if tlen == 0 || 6 + tlen > len || body + 6 + tlen > end {
        return;
    }
    // A ClientHello never sits in the same segment as a NewSessionTicket, so
    // sharing `ticket_id` is safe; only server flights set NEW_TICKET.
    if h.flags & hello_flags::CLIENT_HELLO == 0 {
        h.flags |= hello_flags::NEW_TICKET;
        // How long the server means to accept it: what tells an expired
        // ticket from one it cannot decrypt any more.
        h.ticket_lifetime = b.be32_at(body).unwrap_or(0);
        ticket_id(b, body + 6, tlen, h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_levels_are_kept_per_item() {
        // unrecognized_name as a warning (RFC 6066 §3), then a fatal
        // handshake_failure, then an encrypted alert (longer than 2 bytes).
        let payload: &[u8] = &[
            0x15, 3, 3, 0, 2, 1, 112, //
            0x15, 3, 3, 0, 2, 2, 40, //
            0x15, 3, 3, 0, 3, 1, 2, 3,
        ];
        let mut out = TlsSummary::default();
        summarize(payload, 0, payload.len(), &mut out);
        assert_eq!(out.n_items, 3);
        assert_eq!(&out.items[..3], &[0x1570, 0x1528, 0x15ff]);
        assert_eq!(out.warning_alerts, 0b001);
    }
}
