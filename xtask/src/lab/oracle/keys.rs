//! The key log tshark decrypts with: what the peers themselves wrote, in
//! the NSS key log format
//! (`<label> <client random hex> <secret hex>`, one secret a line):
//!
//! * `openssl s_server -keylogfile` and Python's
//!   `SSLContext.keylog_filename` (the Python backend and the load
//!   client): every secret of every connection, TLS 1.2 and 1.3;
//! * `HAProxy`'s log: per backend connection its client random and TLS 1.2
//!   master secret (`ssl_bc_client_random`, `ssl_bc_session_key`), which
//!   become `CLIENT_RANDOM` lines. This is the only key source for nginx,
//!   which (1.22) cannot write key logs; `HAProxy` 2.6 has no backend-side
//!   TLS 1.3 secrets, so TLS 1.3 connections to nginx stay encrypted.

use std::{fmt::Write as _, fs, path::Path};

use anyhow::{Context as _, Result};

use super::super::logs::HaproxyLine;

/// `CLIENT_RANDOM` lines from `HAProxy`'s log lines that carry TLS 1.2
/// secrets. A TLS 1.3 line is skipped: its `ssl_bc_session_key` is not a
/// traffic secret.
#[must_use]
pub fn from_haproxy(lines: &[HaproxyLine]) -> String {
    let mut out = String::new();
    for line in lines {
        if line.bc_version.as_deref() != Some("TLSv1.2") {
            continue;
        }
        if let (Some(random), Some(key)) = (&line.bc_client_random, &line.bc_master_key)
            && is_hex(random, 32)
            && is_hex(key, 48)
        {
            let _ = writeln!(out, "CLIENT_RANDOM {random} {key}");
        }
    }
    out
}

fn is_hex(text: &str, bytes: usize) -> bool {
    text.len() == 2 * bytes && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Joins the key log files that exist and `extra` into `out`.
pub fn merge(files: &[&Path], extra: &str, out: &Path) -> Result<()> {
    let mut text = String::new();
    for file in files {
        match fs::read_to_string(file) {
            Ok(keys) => {
                text.push_str(&keys);
                if !text.ends_with('\n') && !text.is_empty() {
                    text.push('\n');
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err).with_context(|| format!("reading {}", file.display())),
        }
    }
    text.push_str(extra);
    fs::write(out, text).with_context(|| format!("writing {}", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haproxy_lines_become_client_random_lines() {
        let random = "ab".repeat(32);
        let key = "cd".repeat(48);
        let lines = [
            HaproxyLine {
                bc_version: Some("TLSv1.2".to_owned()),
                bc_client_random: Some(random.clone()),
                bc_master_key: Some(key.clone()),
                ..HaproxyLine::default()
            },
            HaproxyLine {
                bc_version: Some("TLSv1.3".to_owned()),
                bc_client_random: Some(random.clone()),
                bc_master_key: Some(key.clone()),
                ..HaproxyLine::default()
            },
            HaproxyLine {
                bc_version: Some("TLSv1.2".to_owned()),
                bc_client_random: Some("zz".to_owned()),
                bc_master_key: Some(key.clone()),
                ..HaproxyLine::default()
            },
        ];
        assert_eq!(
            from_haproxy(&lines),
            format!("CLIENT_RANDOM {random} {key}\n")
        );
    }
}
