//! tshark's dissection of a capture, one [`Frame`] per packet: the TCP
//! facts and the TLS fields the oracle reads, decrypted where a key log
//! has the connection's secrets.
//!
//! tshark does the TLS work (record reassembly, decryption with an NSS key
//! log, handshake dissection): it is the reference dissector the project
//! already checks tlsmon against, and writing a TLS decryptor here would be
//! a second implementation to trust. This module only runs it and reads its
//! tab-separated fields.

use std::{net::SocketAddr, path::Path};

use anyhow::{Context as _, Result, bail};

use crate::{programs, util::capture};

/// The fields asked of tshark, in this order, one column each. A field
/// with several values in a frame (one per record or handshake message)
/// comes as a comma-separated list (`-E occurrence=a -E aggregator=,`).
pub const FIELDS: [&str; 20] = [
    "frame.time_epoch",
    "tcp.stream",
    "ip.src",
    "tcp.srcport",
    "ip.dst",
    "tcp.dstport",
    "tcp.flags.syn",
    "tcp.flags.fin",
    "tcp.flags.reset",
    // The inner type once decrypted (TLS 1.3), the outer one otherwise.
    "tls.record.content_type",
    "tls.handshake.type",
    "tls.alert_message.desc",
    "tls.handshake.session_id",
    // NewSessionTicket's ticket; also a ClientHello's SessionTicket data.
    "tls.handshake.session_ticket",
    "tls.handshake.extensions.psk.identity.identity",
    "tls.handshake.extension.type",
    "tls.handshake.extensions.supported_version",
    "tcp.len",
    // Aligned with `tls.handshake.extension.type`: every extension has one.
    "tls.handshake.extension.len",
    // The raw data of extensions tshark does not dissect further; in a
    // ClientHello that is the SessionTicket extension's ticket (RFC 5077
    // §3.2), which tshark 4.0 gives no field of its own.
    "tls.handshake.extension.data",
];

/// TLS content types (RFC 8446 §5.1, RFC 5246 §6.2.1).
pub mod content {
    pub const CHANGE_CIPHER_SPEC: u8 = 20;
    pub const ALERT: u8 = 21;
    pub const APPLICATION_DATA: u8 = 23;
}

/// Handshake message types (RFC 8446 §4, RFC 5246 §7.4).
pub mod handshake {
    pub const CLIENT_HELLO: u8 = 1;
    pub const SERVER_HELLO: u8 = 2;
    pub const NEW_SESSION_TICKET: u8 = 4;
    pub const ENCRYPTED_EXTENSIONS: u8 = 8;
    pub const CERTIFICATE: u8 = 11;
    pub const FINISHED: u8 = 20;
}

/// `pre_shared_key` (RFC 8446 §4.2.11): in a `ServerHello`, the server
/// accepted a PSK (resumption).
pub const EXT_PRE_SHARED_KEY: u16 = 41;
/// `SessionTicket` (RFC 5077 §3.2).
pub const EXT_SESSION_TICKET: u16 = 35;
pub const TLS13: u16 = 0x0304;

/// One packet as tshark dissected it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Frame {
    /// Seconds since the epoch (the capture's clock).
    pub time: f64,
    pub stream: u64,
    pub src: Option<SocketAddr>,
    pub dst: Option<SocketAddr>,
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
    pub content_types: Vec<u8>,
    pub handshake_types: Vec<u8>,
    pub alert_descriptions: Vec<u8>,
    /// Lowercase hex, as tshark prints bytes.
    pub session_ids: Vec<String>,
    pub tickets: Vec<String>,
    pub psk_identities: Vec<String>,
    pub extensions: Vec<u16>,
    pub supported_versions: Vec<u16>,
    pub tcp_len: u32,
    pub extension_lengths: Vec<u32>,
    pub extension_data: Vec<String>,
}

impl Frame {
    /// Parses one line of tshark's output for [`FIELDS`]; `None` for a
    /// line that is not a TCP packet.
    #[must_use]
    pub fn parse(line: &str) -> Option<Self> {
        let columns: Vec<&str> = line.split('\t').collect();
        let col = |i: usize| columns.get(i).copied().unwrap_or("");
        let addr = |ip: &str, port: &str| format!("{ip}:{port}").parse().ok();
        let flag = |s: &str| s == "1" || s == "True";
        Some(Self {
            time: col(0).parse().ok()?,
            stream: col(1).parse().ok()?,
            src: addr(col(2), col(3)),
            dst: addr(col(4), col(5)),
            syn: flag(col(6)),
            fin: flag(col(7)),
            rst: flag(col(8)),
            content_types: numbers(col(9)),
            handshake_types: numbers(col(10)),
            alert_descriptions: numbers(col(11)),
            session_ids: hex_list(col(12)),
            tickets: hex_list(col(13)),
            psk_identities: hex_list(col(14)),
            extensions: numbers(col(15)),
            supported_versions: numbers(col(16)),
            tcp_len: col(17).parse().unwrap_or(0),
            extension_lengths: numbers(col(18)),
            extension_data: hex_list(col(19)),
        })
    }

    /// The ticket a `ClientHello` in this frame offers in its
    /// SessionTicket extension (type 35), if not empty: the raw extension
    /// data whose length is that extension's.
    #[must_use]
    pub fn offered_ticket(&self) -> Option<&str> {
        let index = self
            .extensions
            .iter()
            .position(|&t| t == EXT_SESSION_TICKET)?;
        let len = usize::try_from(*self.extension_lengths.get(index)?).ok()?;
        if len == 0 {
            return None;
        }
        self.extension_data
            .iter()
            .find(|data| data.len() == 2 * len)
            .map(String::as_str)
    }

    /// Whether the frame carries a `close_notify` alert (level warning,
    /// description 0) that tshark could read.
    #[must_use]
    pub fn close_notify(&self) -> bool {
        self.content_types.contains(&content::ALERT) && self.alert_descriptions.contains(&0)
    }

    /// Alert records whose description tshark could not read (encrypted,
    /// no key).
    #[must_use]
    pub fn unreadable_alerts(&self) -> usize {
        let alerts = count(&self.content_types, content::ALERT);
        alerts.saturating_sub(self.alert_descriptions.len())
    }
}

/// How often `value` occurs in `values`.
#[must_use]
pub fn count(values: &[u8], value: u8) -> usize {
    values.iter().map(|&v| usize::from(v == value)).sum()
}

/// Numbers in decimal or `0x` hex, comma-separated; unparsable ones are
/// skipped.
fn numbers<T: TryFrom<u64>>(text: &str) -> Vec<T> {
    text.split(',')
        .filter_map(|v| {
            let v = v.trim();
            let n = match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16).ok()?,
                None => v.parse().ok()?,
            };
            T::try_from(n).ok()
        })
        .collect()
}

/// Hex byte strings, comma-separated, without separators inside; empty
/// ones and anything else (tshark's `<MISSING>`) are skipped.
fn hex_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(|v| v.trim().replace(':', "").to_ascii_lowercase())
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect()
}

/// Runs tshark on `capture`, decoding `ports` as TLS and decrypting with
/// `key_log` (an NSS key log file) if given, and returns its frames.
pub fn read(capture_file: &Path, key_log: Option<&Path>, ports: &[u16]) -> Result<Vec<Frame>> {
    let mut cmd = programs::command("tshark");
    cmd.arg("-r")
        .arg(capture_file)
        .args(["-n", "-T", "fields", "-E", "separator=/t"])
        .args(["-E", "occurrence=a", "-E", "aggregator=,"]);
    // Reassemble records across segments (the default, stated): a
    // NewSessionTicket or certificate often spans several.
    cmd.args(["-o", "tcp.desegment_tcp_streams:TRUE"]);
    if let Some(keys) = key_log {
        cmd.arg("-o")
            .arg(format!("tls.keylog_file:{}", keys.display()));
    }
    for port in ports {
        cmd.args(["-d", &format!("tcp.port=={port},tls")]);
    }
    for field in FIELDS {
        cmd.args(["-e", field]);
    }
    let out = capture(&mut cmd).context("tshark could not read the capture")?;
    let frames: Vec<Frame> = out.lines().filter_map(Frame::parse).collect();
    if frames.is_empty() && !out.trim().is_empty() {
        bail!("tshark's output had no frame the oracle could read");
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_tshark_line() {
        let line = "1796675216.198524000\t3\t10.0.0.1\t40000\t10.0.0.2\t8443\t0\t1\t0\t\
                    22,20,21\t2,20\t0\tabcd\t\t\t43,41\t0x0304\t24";
        let frame = Frame::parse(line).unwrap();
        assert_eq!(frame.stream, 3);
        assert_eq!(frame.src, Some("10.0.0.1:40000".parse().unwrap()));
        assert!(frame.fin && !frame.syn && !frame.rst);
        assert_eq!(frame.content_types, vec![22, 20, 21]);
        assert_eq!(frame.supported_versions, vec![TLS13]);
        assert_eq!(frame.session_ids, vec!["abcd".to_owned()]);
        assert!(frame.close_notify());
        assert_eq!(frame.unreadable_alerts(), 0);
        assert!(Frame::parse("not a frame").is_none());
    }

    #[test]
    fn offered_ticket_is_the_session_ticket_extension_data() {
        let line = "1.5\t0\t10.0.0.1\t1\t10.0.0.2\t2\t0\t0\t0\t22\t1\t\tab\t\t\t\
                    11,35,21\t\t100\t4,2,3\t<MISSING>,beef";
        let frame = Frame::parse(line).unwrap();
        assert_eq!(frame.offered_ticket(), Some("beef"));
        let empty = line.replace("4,2,3", "4,0,3");
        assert_eq!(Frame::parse(&empty).unwrap().offered_ticket(), None);
    }

    #[test]
    fn encrypted_alerts_are_unreadable() {
        let line = "1.5\t0\t10.0.0.1\t1\t10.0.0.2\t2\t0\t0\t0\t21\t\t\t\t\t\t\t\t31";
        let frame = Frame::parse(line).unwrap();
        assert!(!frame.close_notify());
        assert_eq!(frame.unreadable_alerts(), 1);
    }
}
