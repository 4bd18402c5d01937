//! Why a server rejected an offered session: one [`Cause`] per rejected
//! offer, from the evidence tlsmon has about the session and the server,
//! never more certain than it (docs/classification.md, "Why sessions are
//! rejected").
//!
//! The evidence of one offer is its [`Facts`]: how the session's last
//! holder ended (TLS 1.3: every connection that may have delivered the
//! ticket), the session's age and, for a TLS ≤ 1.2 ticket, the lifetime
//! the server gave it. The evidence about the server is its [`Evidence`]:
//! whether it ever resumed a session, and the oldest session it was seen
//! to accept. The rules, in [`verdict`]:
//!
//! * a server that never resumed anything since tlsmon watched it, while
//!   the session's holder closed cleanly: `no_cache`;
//! * older than the ticket's lifetime, or older than any session the
//!   server accepted by [`BEYOND_ACCEPTED_NS`] (only past the cutoff the
//!   server showed, if the holder's end may explain it too): `expired`;
//! * a TLS ≤ 1.2 ticket to a server that issues tickets, not expired:
//!   `ticket_rejected` (its keys changed);
//! * the holder's client side ended unclean: `after_unclean`;
//! * two of these at once: `unknown`;
//! * none, the holder closed cleanly: a possible restart, decided later
//!   ([`Watch`]): `server_restart` once a second session issued before the
//!   first rejection is rejected too, or when [`WAIT_NS`] has passed and
//!   sessions issued after it resumed; `after_clean` if a session issued
//!   before it is accepted after it, or nothing issued after it resumed;
//! * none, the holder's end unknown: `unknown`.

use super::bounded::Bounded;
use crate::stats::{Cause, CloseStyle, Endpoint, Method};

/// How much older than any session the server accepted a rejected one
/// must be to be beyond what it was seen to accept. OpenSSL counts a
/// session's age in whole seconds (`time_t`, the session's time against
/// the clock when checked), so the age the server reads is the true age
/// rounded either way: two seconds older is older in every reading. Half a
/// second more keeps a restart's outage (the sessions issued before it
/// are refused after it, older by the outage than those accepted just
/// before) from passing for expiry: in the proxy lab the outage with the
/// load's start came to 0.7–2.1 s, and the expired scenario's pauses make
/// its refused sessions 3 s older than the accepted ones.
const BEYOND_ACCEPTED_NS: u64 = 2_500_000_000;
/// How long a rejection that may be a restart waits for a second one
/// before it is taken as `after_clean`: the connection table's linger time,
/// so that it is decided before its connection's record is written.
pub(super) const WAIT_NS: u64 = 5_000_000_000;

/// How the session's last holder ended, as far as the offer goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Holder {
    /// Its client side sent close_notify, or it was still open.
    Clean,
    Unclean,
    /// Not seen, undecided, or (TLS 1.3) the candidates differ.
    Unknown,
}

/// What is known of one offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Facts {
    pub(super) method: Method,
    pub(super) holder: Holder,
    /// When the offered session was issued (TLS 1.3: as `tickets` tells);
    /// `None` if tlsmon did not see it issued.
    pub(super) issued: Option<u64>,
    /// A TLS ≤ 1.2 ticket's lifetime hint, 0 if none.
    pub(super) lifetime_s: u32,
    /// The server issues TLS ≤ 1.2 tickets.
    pub(super) ticket_server: bool,
    /// When the offer was answered.
    pub(super) at_ns: u64,
}

impl Facts {
    /// The session's age at the offer, at least.
    fn age_ns(&self) -> Option<u64> {
        self.issued.map(|at| self.at_ns.saturating_sub(at))
    }

    /// Issued before `t`.
    fn issued_before(&self, t: u64) -> bool {
        self.issued.is_some_and(|at| at < t)
    }
}

/// A rejected offer waiting for its cause: its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Waiting<K> {
    pub(super) key: K,
    pub(super) conn: u64,
}

/// A cause decided for a waiting offer, to be counted for `server` and
/// written into its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Decided<K> {
    pub(super) server: Endpoint,
    pub(super) waiting: Waiting<K>,
    pub(super) cause: Cause,
}

/// A possible restart: rejections of sessions that nothing else explains,
/// since the first of them.
#[derive(Clone, Debug)]
struct Watch<K> {
    /// The first rejection: the restart came before it.
    since_ns: u64,
    last_ns: u64,
    /// A second session issued before `since_ns` was rejected.
    confirmed: bool,
    /// A session issued after `since_ns` was accepted: the server resumes
    /// what it issued since.
    resumed_since: bool,
    /// The first rejection, until it is decided.
    waiting: Option<Waiting<K>>,
}

impl<K> Watch<K> {
    /// What the waiting offers come to when nothing more is learned: a
    /// restart if the server resumed what it issued since (and, as the
    /// watch still stands, nothing issued before).
    fn outcome(&self) -> Cause {
        if self.confirmed || self.resumed_since {
            Cause::ServerRestart
        } else {
            Cause::AfterClean
        }
    }
}

/// What tlsmon learned about one server's sessions.
#[derive(Clone, Debug)]
struct Evidence<K> {
    server: Endpoint,
    /// Offers it accepted.
    accepted: u64,
    /// The oldest session it was seen to accept (TLS 1.3: the least age
    /// the ticket can have had).
    oldest_accepted_ns: u64,
    /// The youngest age at which a rejection had no explanation but its
    /// age (its holder closed cleanly): the cutoff the server showed.
    expired_from_ns: Option<u64>,
    watch: Option<Watch<K>>,
}

impl<K> Evidence<K> {
    fn new(server: Endpoint) -> Self {
        Self {
            server,
            accepted: 0,
            oldest_accepted_ns: 0,
            expired_from_ns: None,
            watch: None,
        }
    }
}

/// What a rejected offer comes to now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    Now(Cause),
    /// Wait for evidence ([`Causes::rejected`] keeps it).
    Wait,
}

/// The rules for one rejected offer (see the module comment).
fn verdict<K>(e: &Evidence<K>, f: &Facts) -> Verdict {
    if e.accepted == 0 {
        return Verdict::Now(match f.holder {
            Holder::Clean => Cause::NoCache,
            Holder::Unclean => Cause::AfterUnclean,
            Holder::Unknown => Cause::Unknown,
        });
    }
    let expired = f.age_ns().is_some_and(|age| {
        if f.lifetime_s > 0 {
            return age > u64::from(f.lifetime_s) * 1_000_000_000;
        }
        let beyond = age > e.oldest_accepted_ns + BEYOND_ACCEPTED_NS;
        // Where the holder's end may explain the rejection too, only an
        // age past the server's shown cutoff makes expiry fit: early on,
        // little is known of the ages it accepts.
        beyond && (f.holder == Holder::Clean || e.expired_from_ns.is_some_and(|cut| age >= cut))
    });
    // A stateless ticket does not depend on a cache, and survives an
    // unclean close; refused while young, it could not be decrypted.
    let ticket = f.method == Method::Ticket && f.ticket_server;
    let fits = [
        (expired, Cause::Expired),
        (ticket && !expired, Cause::TicketRejected),
        (f.holder == Holder::Unclean && !ticket, Cause::AfterUnclean),
    ];
    let mut found = fits.iter().filter(|(fit, _)| *fit).map(|(_, c)| *c);
    match (found.next(), found.next()) {
        (Some(cause), None) => Verdict::Now(cause),
        (None, _) if f.holder == Holder::Clean => Verdict::Wait,
        // Two fit, or none and the holder's end is not known.
        _ => Verdict::Now(Cause::Unknown),
    }
}

/// The evidence per server, bounded (the oldest server's is evicted
/// first; its waiting offers are decided as they stand).
#[derive(Debug)]
pub(super) struct Causes<K> {
    servers: Bounded<Endpoint, Evidence<K>>,
    /// Evidence entries evicted.
    pub(super) evicted: u64,
}

impl<K: Copy> Causes<K> {
    pub(super) fn new(max_servers: usize) -> Self {
        Self {
            servers: Bounded::new(max_servers),
            evicted: 0,
        }
    }

    fn evidence(&mut self, server: Endpoint, out: &mut Vec<Decided<K>>) -> &mut Evidence<K> {
        if self.servers.get(&server).is_none()
            && let Some(old) = self.servers.insert(server, Evidence::new(server))
        {
            self.evicted += 1;
            if let Some(w) = old.watch {
                settle(old.server, w, out);
            }
        }
        self.servers.get_mut(&server).expect("inserted just above")
    }

    /// `server` accepted an offer with these facts: evidence for the ages
    /// it accepts, and against a restart after the session's issue.
    pub(super) fn accepted(&mut self, server: Endpoint, f: &Facts, out: &mut Vec<Decided<K>>) {
        let e = self.evidence(server, out);
        e.accepted += 1;
        if let Some(age) = f.age_ns() {
            e.oldest_accepted_ns = e.oldest_accepted_ns.max(age);
        }
        let Some(w) = e.watch.as_mut() else {
            return;
        };
        if f.issued_before(w.since_ns) {
            // The server still has what it issued before: no restart.
            if let Some(mut w) = e.watch.take() {
                w.resumed_since = false;
                settle(server, w, out);
            }
        } else if f.issued.is_some() {
            w.resumed_since = true;
        }
    }

    /// `server` rejected the offer of connection `waiting` with these
    /// facts. Returns its cause now, or `None` when it waits; decisions
    /// about earlier waiting offers go to `out`.
    pub(super) fn rejected(
        &mut self,
        server: Endpoint,
        f: &Facts,
        waiting: Waiting<K>,
        out: &mut Vec<Decided<K>>,
    ) -> Option<Cause> {
        let e = self.evidence(server, out);
        if let Verdict::Now(cause) = verdict(e, f) {
            if cause == Cause::Expired
                && f.holder == Holder::Clean
                && let Some(age) = f.age_ns()
            {
                e.expired_from_ns = Some(e.expired_from_ns.map_or(age, |cut| cut.min(age)));
            }
            return Some(cause);
        }
        let issued_before = |w: &Watch<K>| f.issued_before(w.since_ns);
        match e.watch.as_mut() {
            Some(w) if w.confirmed && issued_before(w) => {
                w.last_ns = f.at_ns;
                Some(Cause::ServerRestart)
            }
            Some(w) if issued_before(w) => {
                w.confirmed = true;
                w.last_ns = f.at_ns;
                if let Some(first) = w.waiting.take() {
                    out.push(Decided {
                        server,
                        waiting: first,
                        cause: Cause::ServerRestart,
                    });
                }
                Some(Cause::ServerRestart)
            }
            // Issued after the watched moment (or nothing watched): a
            // moment of its own.
            _ => {
                if let Some(old) = e.watch.take() {
                    settle(server, old, out);
                }
                e.watch = Some(Watch {
                    since_ns: f.at_ns,
                    last_ns: f.at_ns,
                    confirmed: false,
                    resumed_since: false,
                    waiting: Some(waiting),
                });
                None
            }
        }
    }

    /// Time passes: watches with nothing new for [`WAIT_NS`] end, and
    /// their waiting offers are decided ([`Watch::outcome`]).
    pub(super) fn tick(&mut self, servers: &[Endpoint], now_ns: u64, out: &mut Vec<Decided<K>>) {
        for &server in servers {
            let Some(e) = self.servers.get_mut(&server) else {
                continue;
            };
            if e.watch
                .as_ref()
                .is_some_and(|w| now_ns.saturating_sub(w.last_ns) > WAIT_NS)
                && let Some(w) = e.watch.take()
            {
                settle(server, w, out);
            }
        }
    }

    /// The servers with a watch (for [`Causes::tick`]).
    pub(super) fn watched(&self, servers: impl Iterator<Item = Endpoint>) -> Vec<Endpoint> {
        servers
            .filter(|s| self.servers.get(s).is_some_and(|e| e.watch.is_some()))
            .collect()
    }

    /// Connection `conn`'s offer at `server` must be decided now (it is
    /// being forgotten): as the evidence stands.
    pub(super) fn decide_now(&mut self, server: Endpoint, conn: u64) -> Cause {
        let Some(w) = self.servers.get_mut(&server).and_then(|e| e.watch.as_mut()) else {
            return Cause::AfterClean;
        };
        if w.waiting.is_some_and(|x| x.conn == conn) {
            w.waiting = None;
        }
        w.outcome()
    }
}

impl<K> Causes<K> {
    /// What [`Causes::decide_now`] would say for an offer waiting at
    /// `server`, without deciding it.
    pub(super) fn would_decide(&self, server: Endpoint) -> Cause {
        self.servers
            .get(&server)
            .and_then(|e| e.watch.as_ref())
            .map_or(Cause::AfterClean, Watch::outcome)
    }
}

/// Decides every offer still waiting in `w`.
fn settle<K>(server: Endpoint, w: Watch<K>, out: &mut Vec<Decided<K>>) {
    let cause = w.outcome();
    if let Some(waiting) = w.waiting {
        out.push(Decided {
            server,
            waiting,
            cause,
        });
    }
}

impl Holder {
    pub(super) fn of(close: CloseStyle) -> Self {
        match close {
            CloseStyle::Clean => Self::Clean,
            CloseStyle::Unclean => Self::Unclean,
            CloseStyle::Unknown => Self::Unknown,
        }
    }
}
