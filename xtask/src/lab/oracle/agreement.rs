//! tlsmon against the oracle, connection by connection: the figures issue
//! 16 asks for (close style agreement where both decided, the share tlsmon
//! decided, the share of rejected offers whose cause tlsmon named right),
//! per TLS server and in total.
//!
//! tlsmon's per-connection output comes from another part of the project;
//! [`Handshake`] is what this comparison needs of each of its lines, and
//! `docs/proxy-lab.md` states it as the contract.

use std::{collections::BTreeMap, net::SocketAddr};

use serde::{Deserialize, Serialize};

use super::{Close, Kind, Record, Role};
use crate::lab::scenario::Cause;

/// How far apart tlsmon's and the oracle's start times of one connection
/// may be: tlsmon stamps packets with the kernel's clock, tcpdump with
/// its own, and both see the same SYN.
pub const START_TOLERANCE: f64 = 1.0;

/// tlsmon's close style of one side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsmonClose {
    Clean,
    Unclean,
    Unknown,
}

/// One of tlsmon's per-connection lines (one JSON object per handshake):
/// the fields the comparison reads. Unknown fields are ignored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Handshake {
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// Seconds since the epoch: when tlsmon saw the client's SYN or, if
    /// not, its `ClientHello`.
    pub start: f64,
    pub role: Role,
    pub kind: Kind,
    /// `session_id`, `ticket`, `psk`, or none.
    #[serde(default)]
    pub offered: Option<String>,
    /// For a rejected offer: one of the cause names.
    #[serde(default)]
    pub cause: Option<Cause>,
    /// Close style of the side that connected and of the one that
    /// accepted; missing if tlsmon saw no end.
    #[serde(default)]
    pub close_client: Option<TlsmonClose>,
    #[serde(default)]
    pub close_server: Option<TlsmonClose>,
}

/// The agreement figures over a set of connections.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Figures {
    /// Oracle connections matched with a tlsmon line.
    pub matched: u64,
    /// Oracle connections tlsmon has no line for, and the reverse.
    pub oracle_only: u64,
    pub tlsmon_only: u64,
    /// Matched connections where tlsmon's full/resumed equals the oracle's.
    pub kind_agree: u64,
    /// Sides (two per matched connection) the oracle decided.
    pub sides_oracle_decided: u64,
    /// Of those, the sides tlsmon decided too (clean or unclean)…
    pub sides_both_decided: u64,
    /// …and of those, the ones where it agrees.
    pub sides_agree: u64,
    /// Matched connections whose offer the oracle says was rejected…
    pub rejected: u64,
    /// …and of those, the ones where tlsmon names the same cause.
    pub cause_agree: u64,
    /// Rejected offers left out of `rejected`, because the oracle itself
    /// could not tell the cause (`unknown` on a connection it could not
    /// decrypt: TLS 1.3 to nginx) or because the session's history began
    /// before tlsmon watched (see [`agreement_since`]).
    pub rejected_excluded: u64,
    /// tlsmon's `after_unclean` causes on matched connections (must be 0
    /// in the clean scenarios).
    pub tlsmon_after_unclean: u64,
}

impl Figures {
    /// Close style agreement where both decided (issue 16: ≥ 99 %).
    #[must_use]
    pub fn close_agreement(&self) -> Option<f64> {
        ratio(self.sides_agree, self.sides_both_decided)
    }

    /// The share of the oracle's decided sides that tlsmon decided
    /// (issue 16: ≥ 95 %).
    #[must_use]
    pub fn decided_share(&self) -> Option<f64> {
        ratio(self.sides_both_decided, self.sides_oracle_decided)
    }

    /// The share of rejected offers whose cause tlsmon named as the oracle
    /// did (issue 16: ≥ 95 %).
    #[must_use]
    pub fn cause_agreement(&self) -> Option<f64> {
        ratio(self.cause_agree, self.rejected)
    }

    fn add(&mut self, other: &Self) {
        self.matched += other.matched;
        self.oracle_only += other.oracle_only;
        self.tlsmon_only += other.tlsmon_only;
        self.kind_agree += other.kind_agree;
        self.sides_oracle_decided += other.sides_oracle_decided;
        self.sides_both_decided += other.sides_both_decided;
        self.sides_agree += other.sides_agree;
        self.rejected += other.rejected;
        self.cause_agree += other.cause_agree;
        self.rejected_excluded += other.rejected_excluded;
        self.tlsmon_after_unclean += other.tlsmon_after_unclean;
    }
}

#[expect(
    clippy::cast_precision_loss,
    reason = "connection counts are far below 2^52"
)]
fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The figures per TLS server (`ip:port`) and over all of them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Agreement {
    pub servers: BTreeMap<SocketAddr, Figures>,
    pub total: Figures,
}

/// Compares tlsmon's per-connection lines with the oracle's records.
/// A connection is matched on (client, server) and the nearest start
/// within [`START_TOLERANCE`]; each line matches at most one record.
#[must_use]
pub fn agreement(tlsmon: &[Handshake], oracle: &[Record]) -> Agreement {
    agreement_since(tlsmon, oracle, f64::NEG_INFINITY)
}

/// [`agreement`] over what tlsmon could have seen, watching since
/// `watched_from` (seconds since the epoch): connections that started
/// before are left out, and so are the causes of offers whose session was
/// issued, or last held, by one of those (tlsmon cannot know them; they
/// count in `rejected_excluded`).
#[must_use]
pub fn agreement_since(tlsmon: &[Handshake], oracle: &[Record], watched_from: f64) -> Agreement {
    let mut used = vec![false; tlsmon.len()];
    let mut servers: BTreeMap<SocketAddr, Figures> = BTreeMap::new();
    for (record, found) in pairs(tlsmon, oracle, watched_from) {
        let record = &oracle[record];
        let figures = servers.entry(record.server).or_default();
        let Some(index) = found else {
            figures.oracle_only += 1;
            continue;
        };
        used[index] = true;
        compare(&tlsmon[index], record, figures, watched_from);
    }
    for (handshake, used) in tlsmon.iter().zip(&used) {
        if !used {
            servers.entry(handshake.server).or_default().tlsmon_only += 1;
        }
    }
    let mut total = Figures::default();
    for figures in servers.values() {
        total.add(figures);
    }
    Agreement { servers, total }
}

/// The oracle's records that started at or after `watched_from` (their
/// indexes), each with the index of tlsmon's line for the same connection:
/// same client and server, the nearest start within [`START_TOLERANCE`],
/// each line for one record at most.
#[must_use]
pub fn pairs(
    tlsmon: &[Handshake],
    oracle: &[Record],
    watched_from: f64,
) -> Vec<(usize, Option<usize>)> {
    let mut used = vec![false; tlsmon.len()];
    let mut out = Vec::new();
    for (at, record) in oracle.iter().enumerate() {
        if record.start < watched_from {
            continue;
        }
        let best = tlsmon
            .iter()
            .enumerate()
            .filter(|(i, h)| {
                !used[*i]
                    && h.client == record.client
                    && h.server == record.server
                    && (h.start - record.start).abs() <= START_TOLERANCE
            })
            .min_by(|(_, a), (_, b)| {
                (a.start - record.start)
                    .abs()
                    .total_cmp(&(b.start - record.start).abs())
            })
            .map(|(i, _)| i);
        if let Some(i) = best {
            used[i] = true;
        }
        out.push((at, best));
    }
    out
}

fn compare(handshake: &Handshake, record: &Record, figures: &mut Figures, watched_from: f64) {
    figures.matched += 1;
    figures.kind_agree += u64::from(handshake.kind == record.kind);
    for (theirs, ours) in [
        (handshake.close_client, record.close.client),
        (handshake.close_server, record.close.server),
    ] {
        if !ours.decided() {
            continue;
        }
        figures.sides_oracle_decided += 1;
        let theirs = match theirs {
            Some(TlsmonClose::Clean) => Close::Clean,
            Some(TlsmonClose::Unclean) => Close::Unclean,
            _ => continue,
        };
        figures.sides_both_decided += 1;
        figures.sides_agree += u64::from(theirs == ours);
    }
    if let Some(cause) = record.rejected() {
        let offer = record.offered.as_ref();
        let oracle_blind = cause == Cause::Unknown && !record.decrypted;
        let before = |t: Option<f64>| t.is_some_and(|t| t < watched_from);
        let unwatched = offer.is_some_and(|o| {
            before(o.issued_by.map(|i| i.start)) || before(o.last_holder.map(|h| h.start))
        });
        if oracle_blind || unwatched {
            figures.rejected_excluded += 1;
        } else {
            figures.rejected += 1;
            figures.cause_agree += u64::from(handshake.cause == Some(cause));
        }
    }
    figures.tlsmon_after_unclean += u64::from(handshake.cause == Some(Cause::AfterUnclean));
}
