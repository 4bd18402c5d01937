//! The oracle: what the peers' own record says happened to every TLS
//! connection of a lab run, independent of tlsmon. tshark reads the
//! captures taken in the proxy namespace and decrypts them with the key
//! logs the peers wrote ([`keys`]); per connection the oracle derives its
//! endpoints and start, full or resumed, the session offered, the
//! connection that issued it and its last holder, how each side ended
//! the connection, and for a rejected offer the true cause
//! ([`history`]). The records are written as JSON lines
//! (`docs/proxy-lab.md` has the format) to be compared with tlsmon's own,
//! connection by connection ([`agreement`]).
//!
//! `HAProxy`'s log stays the oracle for full/resumed per backend: the
//! records carry its value for the connection (matched by `HAProxy`'s own
//! endpoint, `via=`), and a backend connection it did not log is one of its
//! health checks.

pub mod agreement;
pub mod connections;
pub mod frames;
pub mod history;
pub mod keys;
pub mod run;
#[cfg(test)]
mod tests;

use std::{collections::BTreeMap, net::SocketAddr};

use serde::{Deserialize, Serialize};

pub use self::{
    connections::{Close, Connection, Identity, Kind, Method},
    frames::Frame,
    history::Known,
};
use super::{logs::HaproxyLine, scenario::Cause};

/// Which proxy interface a connection was captured on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Client-facing: `HAProxy` is the TLS server.
    Frontend,
    /// Backend-facing: `HAProxy` is the TLS client.
    Backend,
}

/// A value per side of a connection: `client` connected, `server` accepted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sides<T> {
    pub client: T,
    pub server: T,
}

/// A connection named by what both tlsmon and the oracle see.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConnRef {
    pub client: SocketAddr,
    /// Seconds since the epoch.
    pub start: f64,
}

/// The connection that held the offered session last before the offer.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Holder {
    pub client: SocketAddr,
    pub start: f64,
    pub close: Sides<Close>,
    /// Application-data records the proxy sent in it: 0 for a health check.
    pub client_app_records: u32,
    /// Whether it had ended (either side's FIN or RST) before the offer.
    pub ended_before_offer: bool,
}

/// The session a connection offered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Offered {
    pub method: Method,
    /// The session ID, ticket or PSK identity, lowercase hex.
    pub identity: String,
    pub accepted: bool,
    /// The connection whose `ServerHello` (session ID) or
    /// `NewSessionTicket` carried it; `None` if not in the capture.
    pub issued_by: Option<ConnRef>,
    pub issued_at: Option<f64>,
    /// Seconds from the session's creation to this connection's start.
    pub age: Option<f64>,
    pub last_holder: Option<Holder>,
    /// The true cause, for a rejected offer.
    pub cause: Option<Cause>,
}

/// A session a connection received, for following it later.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Issued {
    pub method: Method,
    pub identity: String,
    pub at: f64,
}

/// What `HAProxy` logged for a backend connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logged {
    /// `ssl_bc_is_resumed`; `None`: logged without a value.
    pub resumed: Option<bool>,
}

/// One connection, as the oracle's JSON line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Always `"connection"`.
    #[serde(rename = "type")]
    pub line_type: String,
    pub role: Role,
    /// `HAProxy`'s server name for a backend, `frontend` for the frontend.
    pub name: String,
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// The client's SYN, seconds since the epoch.
    pub start: f64,
    /// `TLSv1.2` or `TLSv1.3` (`-` without a `ServerHello`).
    pub version: String,
    pub kind: Kind,
    pub decrypted: bool,
    pub offered: Option<Offered>,
    pub issued: Vec<Issued>,
    pub close: Sides<Close>,
    pub app_records: Sides<u32>,
    /// Backend connections: `HAProxy`'s log line for it, `None` for one it
    /// did not log (a health check). Always `None` on the frontend.
    pub haproxy: Option<Logged>,
}

impl Record {
    /// A backend connection `HAProxy` did not log: a health check.
    #[must_use]
    pub fn is_check(&self) -> bool {
        self.role == Role::Backend && self.haproxy.is_none()
    }

    /// The cause, if this connection's offer was rejected.
    #[must_use]
    pub fn rejected(&self) -> Option<Cause> {
        self.offered.as_ref().and_then(|o| o.cause)
    }
}

/// What one capture holds, for [`records`].
pub struct Capture<'a> {
    pub role: Role,
    pub frames: &'a [Frame],
    /// The TLS servers' ports and names.
    pub servers: &'a [(u16, &'a str)],
    /// `HAProxy`'s log lines (matched on the backend side).
    pub haproxy: &'a [HaproxyLine],
    /// The scenario's events per server name.
    pub known: &'a BTreeMap<String, Known>,
}

/// The records of every TLS connection in a capture, in start order.
#[must_use]
pub fn records(capture: &Capture<'_>) -> Vec<Record> {
    let ports: Vec<u16> = capture.servers.iter().map(|(p, _)| *p).collect();
    let all = connections::connections(capture.frames, &ports);
    let mut lines_used = vec![false; capture.haproxy.len()];
    let mut out = Vec::new();
    for &(port, name) in capture.servers {
        let conns: Vec<Connection> = all
            .iter()
            .filter(|c| c.server.port() == port)
            .cloned()
            .collect();
        let known = capture.known.get(name).cloned().unwrap_or_default();
        let lineages = history::lineages(&conns, &known);
        for (conn, lineage) in conns.iter().zip(lineages) {
            let logged = match capture.role {
                Role::Frontend => None,
                Role::Backend => haproxy_line(capture.haproxy, &mut lines_used, name, conn),
            };
            out.push(record(
                capture.role,
                name,
                &conns,
                conn,
                lineage.as_ref(),
                logged,
            ));
        }
    }
    out.sort_by(|a, b| a.start.total_cmp(&b.start));
    out
}

/// How much earlier than its backend connection `HAProxy` may have
/// accepted the client connection and still be its line: a TCP-mode
/// connection to a server follows the client's within milliseconds.
const ACCEPT_WINDOW: f64 = 5.0;

/// `HAProxy`'s line for a backend connection: same server, its own
/// endpoint (`via=`) the connection's client, accepted shortly before the
/// connection started (ports are reused within a run); each line serves
/// one connection. `conns` come in start order, so the earliest unused
/// line that fits is the right one.
fn haproxy_line(
    lines: &[HaproxyLine],
    used: &mut [bool],
    name: &str,
    conn: &Connection,
) -> Option<Logged> {
    let index = lines
        .iter()
        .enumerate()
        .filter(|(i, line)| {
            !used[*i]
                && line.server == name
                && line.via == Some(conn.client)
                && line
                    .accepted_at
                    .is_none_or(|t| t <= conn.start + 0.001 && conn.start - t < ACCEPT_WINDOW)
        })
        .min_by(|(_, a), (_, b)| {
            let at = |l: &HaproxyLine| l.accepted_at.unwrap_or(0.0);
            at(a).total_cmp(&at(b))
        })
        .map(|(i, _)| i)?;
    used[index] = true;
    Some(Logged {
        resumed: lines[index].bc_resumed,
    })
}

fn record(
    role: Role,
    name: &str,
    conns: &[Connection],
    conn: &Connection,
    lineage: Option<&history::Lineage>,
    haproxy: Option<Logged>,
) -> Record {
    let offered = conn.offer.as_ref().map(|identity| {
        let lineage = lineage.cloned().unwrap_or(history::Lineage {
            issuer: None,
            issued_at: None,
            created_at: None,
            last_holder: None,
            cause: None,
        });
        Offered {
            method: identity.method,
            identity: identity.bytes.clone(),
            accepted: conn.kind == Kind::Resumed,
            issued_by: lineage.issuer.map(|i| ConnRef {
                client: conns[i].client,
                start: conns[i].start,
            }),
            issued_at: lineage.issued_at,
            age: lineage.created_at.map(|t| conn.start - t),
            last_holder: lineage.last_holder.map(|h| holder(&conns[h], conn.start)),
            cause: lineage.cause,
        }
    });
    Record {
        line_type: "connection".to_owned(),
        role,
        name: name.to_owned(),
        client: conn.client,
        server: conn.server,
        start: conn.start,
        version: match (conn.kind, conn.tls13) {
            (Kind::Incomplete, _) => "-",
            (_, true) => "TLSv1.3",
            (_, false) => "TLSv1.2",
        }
        .to_owned(),
        kind: conn.kind,
        decrypted: conn.decrypted,
        offered,
        issued: conn
            .issued
            .iter()
            .map(|(identity, at)| Issued {
                method: identity.method,
                identity: identity.bytes.clone(),
                at: *at,
            })
            .collect(),
        close: Sides {
            client: conn.close(true),
            server: conn.close(false),
        },
        app_records: Sides {
            client: conn.client_side.app_records,
            server: conn.server_side.app_records,
        },
        haproxy,
    }
}

fn holder(conn: &Connection, offer_start: f64) -> Holder {
    let ended = [conn.client_side.end_time, conn.server_side.end_time]
        .into_iter()
        .flatten()
        .any(|t| t < offer_start);
    Holder {
        client: conn.client,
        start: conn.start,
        close: Sides {
            client: conn.close(true),
            server: conn.close(false),
        },
        client_app_records: conn.client_side.app_records,
        ended_before_offer: ended,
    }
}

/// Counts per TLS server over a run's records.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub connections: u64,
    /// Backend connections `HAProxy` did not log (health checks).
    pub checks: u64,
    pub decrypted: u64,
    pub full: u64,
    pub resumed: u64,
    pub incomplete: u64,
    /// Full and resumed among the connections `HAProxy` logged.
    pub logged_full: u64,
    pub logged_resumed: u64,
    pub offers: u64,
    pub accepted: u64,
    pub rejected: BTreeMap<Cause, u64>,
    pub close_client: BTreeMap<Close, u64>,
    pub close_server: BTreeMap<Close, u64>,
}

impl Summary {
    #[must_use]
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// [`Summary`] per (role, name).
#[must_use]
pub fn summarize(records: &[Record]) -> BTreeMap<(Role, String), Summary> {
    let mut out: BTreeMap<(Role, String), Summary> = BTreeMap::new();
    for r in records {
        let s = out.entry((r.role, r.name.clone())).or_default();
        s.connections += 1;
        s.checks += u64::from(r.is_check());
        s.decrypted += u64::from(r.decrypted);
        match r.kind {
            Kind::Full => s.full += 1,
            Kind::Resumed => s.resumed += 1,
            Kind::Incomplete => s.incomplete += 1,
        }
        if r.haproxy.is_some() {
            s.logged_full += u64::from(r.kind == Kind::Full);
            s.logged_resumed += u64::from(r.kind == Kind::Resumed);
        }
        if let Some(offer) = &r.offered {
            s.offers += 1;
            s.accepted += u64::from(offer.accepted);
        }
        if let Some(cause) = r.rejected() {
            *s.rejected.entry(cause).or_default() += 1;
        }
        *s.close_client.entry(r.close.client).or_default() += 1;
        *s.close_server.entry(r.close.server).or_default() += 1;
    }
    out
}
