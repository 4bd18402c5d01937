//! What tlsmon counts and shows: the identity of a TLS server
//! ([`Endpoint`], [`Role`]), its counters ([`ServerStats`]), the tracker's
//! totals ([`Totals`]) and the kernel program's ([`KernelStats`]).
//!
//! Plain data with no I/O, so that the views (dashboard, JSON lines,
//! metrics) and the tracker that fills it depend on this module and not on
//! each other or on the loader.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use monitor_common::{event::stat, net::Skip, tls::ProtocolVersion};

use crate::histogram::Histogram;

/// Distinct versions counted per server before the rest go to "other".
pub const VERSIONS_CAP: usize = 16;
/// The key of versions counted past [`VERSIONS_CAP`]: 0 is no version.
pub const OTHER_VERSION: u16 = 0;

/// The hash maps of everything keyed by what peers send: addresses, ports,
/// session IDs, tickets, names that any client on the Internet picks.
/// std's SipHash was the largest single cost per event in the tracker;
/// foldhash is several times faster on these short keys. Against hash
/// flooding it takes a random seed per table (`fast::RandomState`), so
/// colliding keys cannot be computed in advance. foldhash does not claim
/// to resist an attacker who observes hash values or times table
/// operations, and tlsmon exposes neither: it is passive (it answers no
/// packet) and every listing it prints is sorted, not in table order.
/// aHash would be the alternative; foldhash is already built as a
/// dependency of hashbrown.
pub(crate) type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// One side of a TCP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub addr: IpAddr,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.port),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.port),
        }
    }
}

impl Endpoint {
    pub(crate) fn from_wire(family: u8, addr: [u8; 16], port: u16) -> Self {
        let addr = if family == 4 {
            IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]))
        } else {
            IpAddr::V6(Ipv6Addr::from(addr))
        };
        Self { addr, port }
    }
}

/// Which side of the TLS server this host is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// This host is the TLS client: the server is a backend of the proxy.
    Backend,
    /// This host is the TLS server: a frontend the proxy serves.
    Frontend,
    /// Offline capture without direction and no `--local` match.
    Unknown,
}

impl Role {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Backend => "backend",
            Self::Frontend => "frontend",
            Self::Unknown => "unknown",
        }
    }
}

/// How a session was (or would have been) resumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// TLS ≤ 1.2 session ID (RFC 5246 §7.4.1.2).
    SessionId,
    /// TLS ≤ 1.2 session ticket (RFC 5077).
    Ticket,
    /// TLS 1.3 pre-shared key (RFC 8446 §2.2).
    Psk,
}

/// Counts per resumption method.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ByMethod {
    pub session_id: u64,
    pub ticket: u64,
    pub psk: u64,
}

impl ByMethod {
    pub(crate) fn add(&mut self, m: Method) {
        match m {
            Method::SessionId => self.session_id += 1,
            Method::Ticket => self.ticket += 1,
            Method::Psk => self.psk += 1,
        }
    }
}

/// Why a server answered an offered resumption with a full handshake: one
/// cause per rejected offer, from the evidence tlsmon has, never more
/// certain than it (docs/classification.md, "Why sessions are rejected").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cause {
    /// The session's last holder was closed without close_notify: an
    /// OpenSSL-based server drops such a session.
    AfterUnclean,
    /// The session's last holder was closed cleanly, and still the server
    /// did not take it back.
    AfterClean,
    /// Older than this server has been seen to accept, while younger ones
    /// resume.
    Expired,
    /// Every session issued before a moment is rejected, those after it
    /// resume: the server lost its cache.
    ServerRestart,
    /// This server never resumes, even sessions closed cleanly.
    NoCache,
    /// TLS ≤ 1.2 stateless tickets refused: keys rotated, or several
    /// instances behind one address.
    TicketRejected,
    /// The evidence fits no cause, or more than one.
    Unknown,
}

impl Cause {
    pub const ALL: [Self; 7] = [
        Self::AfterUnclean,
        Self::AfterClean,
        Self::Expired,
        Self::ServerRestart,
        Self::NoCache,
        Self::TicketRejected,
        Self::Unknown,
    ];

    /// The name in JSON lines and metric labels.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AfterUnclean => "after_unclean",
            Self::AfterClean => "after_clean",
            Self::Expired => "expired",
            Self::ServerRestart => "server_restart",
            Self::NoCache => "no_cache",
            Self::TicketRejected => "ticket_rejected",
            Self::Unknown => "unknown",
        }
    }
}

/// Rejected offers by [`Cause`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ByCause {
    pub after_unclean: u64,
    pub after_clean: u64,
    pub expired: u64,
    pub server_restart: u64,
    pub no_cache: u64,
    pub ticket_rejected: u64,
    pub unknown: u64,
}

impl ByCause {
    pub fn add(&mut self, c: Cause) {
        *self.slot(c) += 1;
    }

    #[must_use]
    pub fn get(&self, c: Cause) -> u64 {
        match c {
            Cause::AfterUnclean => self.after_unclean,
            Cause::AfterClean => self.after_clean,
            Cause::Expired => self.expired,
            Cause::ServerRestart => self.server_restart,
            Cause::NoCache => self.no_cache,
            Cause::TicketRejected => self.ticket_rejected,
            Cause::Unknown => self.unknown,
        }
    }

    fn slot(&mut self, c: Cause) -> &mut u64 {
        match c {
            Cause::AfterUnclean => &mut self.after_unclean,
            Cause::AfterClean => &mut self.after_clean,
            Cause::Expired => &mut self.expired,
            Cause::ServerRestart => &mut self.server_restart,
            Cause::NoCache => &mut self.no_cache,
            Cause::TicketRejected => &mut self.ticket_rejected,
            Cause::Unknown => &mut self.unknown,
        }
    }
}

/// How one side of a connection ended its TLS session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseStyle {
    /// close_notify before its FIN (TLS ≤ 1.2: an alert record; TLS 1.3: a
    /// last record of close_notify's size).
    Clean,
    /// RST, or FIN after a record that cannot be a close_notify, or with no
    /// record at all.
    Unclean,
    /// Not seen, or the sizes cannot tell (padding, records merged).
    Unknown,
}

impl CloseStyle {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Clean => "clean",
            Self::Unclean => "unclean",
            Self::Unknown => "unknown",
        }
    }
}

/// Everything counted for one TLS server.
#[derive(Clone, Debug)]
pub struct ServerStats {
    pub server: Endpoint,
    pub role: Role,
    pub full: u64,
    pub resumed: u64,
    pub resumed_by: ByMethod,
    /// Completed handshakes whose ClientHello offered resumption.
    pub offered: u64,
    pub offered_by: ByMethod,
    /// Offered, answered with a full handshake.
    pub rejected: u64,
    pub rejected_after_unclean: u64,
    pub rejected_after_clean: u64,
    /// Rejected offers whose originating connection tlsmon did not see
    /// (started before it, or TLS 1.3 where tickets travel encrypted).
    pub rejected_origin_unknown: u64,
    /// Rejected offers by cause (docs/classification.md, "Why sessions are
    /// rejected"). `rejected` is their sum once every cause is decided: a
    /// rejection that may be a server restart waits up to 5 s for a second
    /// one. The three `rejected_after_*` fields above stay for scripts
    /// that read them: they say how the session's last holder ended
    /// (TLS 1.3: every connection that may have delivered the ticket),
    /// whatever the cause, and are counted at once.
    pub rejected_by_cause: ByCause,
    /// Of `rejected_by_cause.after_unclean`, those whose unclean holders
    /// sent no application data: the signature of health checks that
    /// share the traffic's session (docs/classification.md).
    pub rejected_after_idle_unclean: u64,
    pub hrr: u64,
    pub early_data_offered: u64,
    /// Handshakes that did not complete within the handshake timeout, or
    /// were abandoned (a FIN from a side that still had to answer). Never
    /// taken back: a late answer counts in `late`.
    pub incomplete: u64,
    pub failed: u64,
    /// Handshakes whose ServerHello came after the handshake timeout had
    /// counted them `incomplete` (or, for a server that had not answered
    /// yet, `unanswered_hellos`): counted as full or resumed as well, with
    /// their real latency.
    pub late: u64,
    pub clean_closes: u64,
    pub unclean_closes: u64,
    /// Closes whose style could not be told (TLS 1.3: the last record
    /// before FIN was not seen, or its size is ambiguous).
    pub unknown_closes: u64,
    pub rst_by_client: u64,
    pub rst_by_server: u64,
    /// By negotiated version (`ProtocolVersion`'s value); see
    /// [`ServerStats::count_version`] for the bound.
    pub versions: Map<u16, u64>,
    pub ciphers: Map<u16, u64>,
    pub sni: TopK,
    pub alpn: TopK,
    pub handshake_full: Histogram,
    pub handshake_resumed: Histogram,
}

impl ServerStats {
    pub(crate) fn new(server: Endpoint, role: Role) -> Self {
        Self {
            server,
            role,
            full: 0,
            resumed: 0,
            resumed_by: ByMethod::default(),
            offered: 0,
            offered_by: ByMethod::default(),
            rejected: 0,
            rejected_after_unclean: 0,
            rejected_after_clean: 0,
            rejected_origin_unknown: 0,
            rejected_by_cause: ByCause::default(),
            rejected_after_idle_unclean: 0,
            hrr: 0,
            early_data_offered: 0,
            incomplete: 0,
            failed: 0,
            late: 0,
            clean_closes: 0,
            unclean_closes: 0,
            unknown_closes: 0,
            rst_by_client: 0,
            rst_by_server: 0,
            versions: Map::default(),
            ciphers: Map::default(),
            sni: TopK::default(),
            alpn: TopK::default(),
            handshake_full: Histogram::default(),
            handshake_resumed: Histogram::default(),
        }
    }

    /// Counts a completed handshake's version. A peer picks the value, so
    /// distinct versions are bounded: past [`VERSIONS_CAP`] they are
    /// counted under [`OTHER_VERSION`].
    pub(crate) fn count_version(&mut self, version: u16) {
        let key = if self.versions.contains_key(&version) || self.versions.len() < VERSIONS_CAP {
            version
        } else {
            OTHER_VERSION
        };
        *self.versions.entry(key).or_default() += 1;
    }

    /// Versions by name (`TLSv1.2`, `TLSv1.3-draft23`, `0x7e01`, `other`)
    /// and their counts, in version order: what every view shows.
    #[must_use]
    pub fn version_counts(&self) -> Vec<(String, u64)> {
        let mut v: Vec<_> = self.versions.iter().map(|(k, c)| (*k, *c)).collect();
        v.sort_unstable();
        v.into_iter()
            .map(|(k, c)| {
                let name = if k == OTHER_VERSION {
                    "other".to_owned()
                } else {
                    ProtocolVersion(k).to_string()
                };
                (name, c)
            })
            .collect()
    }

    #[must_use]
    pub fn handshakes(&self) -> u64 {
        self.full + self.resumed
    }
}

/// Counts of string values, capped so a hostile client cannot grow it
/// without bound; values beyond the cap are counted as `other`.
#[derive(Clone, Debug, Default)]
pub struct TopK {
    counts: Map<String, u64>,
    pub other: u64,
}

/// Distinct values kept per server for SNI and ALPN.
pub const TOPK_CAP: usize = 256;

impl TopK {
    pub(crate) fn add(&mut self, v: &str) {
        if let Some(c) = self.counts.get_mut(v) {
            *c += 1;
        } else if self.counts.len() < TOPK_CAP {
            self.counts.insert(v.to_owned(), 1);
        } else {
            self.other += 1;
        }
    }

    /// The `n` most frequent values, most frequent first, ties by name.
    #[must_use]
    pub fn top(&self, n: usize) -> Vec<(&str, u64)> {
        let mut v: Vec<_> = self.counts.iter().map(|(k, c)| (k.as_str(), *c)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v.truncate(n);
        v
    }
}

/// Totals that are not per server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub events: u64,
    /// Connections dropped from the table because it was full.
    pub evicted_flows: u64,
    /// Remembered sessions dropped because the store was full.
    pub evicted_sessions: u64,
    /// Hellos whose lengths contradicted each other: not counted.
    pub malformed_hellos: u64,
    /// ClientHellos that continued past their TCP segment and could not be
    /// reassembled: extensions after the cut (often pre_shared_key) were
    /// not seen.
    pub truncated_hellos: u64,
    /// ClientHellos that spanned segments and were reassembled whole.
    pub reassembled_hellos: u64,
    /// Hello chunks with no hello waiting for them (see `reassembly`).
    pub orphan_chunks: u64,
    /// RST/FIN or records on connections whose ClientHello was not seen.
    pub untracked_events: u64,
    /// ClientHellos whose server never answered (see `tracker::exchange`):
    /// when their handshake ended, by timeout, reset or FIN, they were
    /// counted here and not for a server.
    pub unanswered_hellos: u64,
    /// Packets skipped because they travelled the way the other side's
    /// packets travel: they cannot belong to a real exchange.
    pub wrong_direction: u64,
    /// Server packets before the server's answer that did not acknowledge
    /// the ClientHello: skipped, they cannot belong to a real exchange.
    pub unacknowledged: u64,
    /// Servers dropped, the idlest first, because `max_servers` were kept.
    pub evicted_servers: u64,
    /// ClientHellos whose packets carried no direction (captures): for
    /// their connections only sequence numbers were checked.
    pub direction_unchecked: u64,
    /// Timed-out handshakes dropped, the oldest first, from those kept for
    /// a late ServerHello (`max_timed_out`): an answer to them after that
    /// is untracked.
    pub evicted_timed_out: u64,
    /// Connection records (`--log-handshakes`) dropped because the output
    /// had not taken the earlier ones (see `Tracker::take_records`).
    pub dropped_records: u64,
    /// Ends of connections that held TLS ≤ 1.2 sessions, dropped because
    /// that store was full: a later rejection of their sessions has an
    /// unknown origin.
    pub evicted_holders: u64,
    /// TLS 1.3 ticket candidate sets (per client address and server)
    /// dropped because that store was full.
    pub evicted_ticket_sets: u64,
    /// Servers' evidence about their sessions (accepted ages, a watched
    /// restart) dropped because that store was full.
    pub evicted_evidence: u64,
    /// Rejected TLS 1.3 offers whose ticket's possible origins all ended
    /// alike (decided), or not (see `tracker::tickets`).
    pub tls13_origins_decided: u64,
    pub tls13_origins_undecided: u64,
}

/// Counters the kernel keeps, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelStats {
    pub lost_events: u64,
    pub tls_packets: u64,
    pub malformed: u64,
    pub fragments: u64,
    pub too_deep: u64,
    /// Packets in a tunnel tlsmon recognises but does not open (nested
    /// too deep, MPLS, variants it does not read: `monitor_common::tunnel`).
    pub encapsulation: u64,
    /// ClientHellos spanning segments whose bytes were sent for reassembly.
    pub split_hellos: u64,
    /// Time spent in tlsmon's programs, when it is measured
    /// (`--kernel-cost`).
    pub cost: Option<KernelCost>,
}

impl KernelStats {
    /// From the kernel program's counters by index (`Skip` values and
    /// `monitor_common::event::stat`), however they are read: the kernel's
    /// `STATS` map summed over CPUs, or the host engine's array.
    #[must_use]
    pub fn from_counters(counter: impl Fn(u32) -> u64) -> Self {
        Self {
            lost_events: counter(stat::LOST_EVENTS),
            tls_packets: counter(stat::TLS_PACKETS),
            malformed: counter(Skip::MALFORMED.0),
            fragments: counter(Skip::FRAGMENT.0),
            too_deep: counter(Skip::TOO_DEEP.0),
            encapsulation: counter(Skip::ENCAPSULATION.0),
            split_hellos: counter(stat::SPLIT_HELLOS),
            cost: None,
        }
    }
}

/// What the kernel's own BPF statistics say tlsmon's programs cost, summed
/// over the classifiers and the split-hello program, since they were loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelCost {
    pub run_ns: u64,
    pub runs: u64,
}

impl KernelCost {
    /// `run_ns` in seconds, for output.
    #[must_use]
    #[expect(clippy::cast_precision_loss, reason = "ns to s for display")]
    pub fn run_seconds(self) -> f64 {
        self.run_ns as f64 / 1e9
    }
}

/// What tlsmon itself lost or could not read, beyond the kernel's and the
/// tracker's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Losses {
    /// Ring-buffer records that did not decode.
    pub undecodable: u64,
    /// Output lines dropped because a reader did not keep up.
    pub output_dropped: u64,
    /// Diagnostics dropped because stderr (or the dashboard's status line)
    /// did not take them (`logging::dropped`).
    pub diagnostics_dropped: u64,
}
