//! Frames → connections: per TCP connection, what the peers' own bytes say
//! (decrypted where a key log allowed): endpoints and start, version, full
//! or resumed, the session offered, the sessions issued, and how each side
//! ended it. Pure: no I/O.

use std::{collections::BTreeMap, net::SocketAddr};

use serde::{Deserialize, Serialize};

use super::frames::{EXT_PRE_SHARED_KEY, Frame, TLS13, content, handshake};

/// How a session is named on the wire when offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// TLS ≤ 1.2 session ID (RFC 5246 §7.4.1.2).
    SessionId,
    /// TLS ≤ 1.2 stateless ticket (RFC 5077).
    Ticket,
    /// TLS 1.3 PSK identity, a ticket from a NewSessionTicket (RFC 8446 §4.6.1).
    Psk,
}

/// A session's name: method and bytes (lowercase hex).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Identity {
    pub method: Method,
    pub bytes: String,
}

/// Full or resumed, from the handshake's cleartext part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Full,
    Resumed,
    /// No `ServerHello`, or the handshake stopped before it showed which.
    Incomplete,
}

/// How one side ended the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Close {
    /// It sent `close_notify` (read in the clear or decrypted).
    Clean,
    /// It sent a FIN or RST and no `close_notify` before it; every record
    /// it sent could be read, so none was one.
    Unclean,
    /// It sent a FIN or RST, but records that could be a `close_notify`
    /// could not be decrypted (no key for this connection).
    Undecrypted,
    /// Neither a `close_notify` nor its FIN or RST is in the capture.
    NotSeen,
}

impl Close {
    /// Whether the oracle decided (clean or unclean).
    #[must_use]
    pub fn decided(self) -> bool {
        matches!(self, Self::Clean | Self::Unclean)
    }
}

/// What one side did, as far as the ending goes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SideFacts {
    /// Index (in the connection's frames) of its first `close_notify`.
    pub close_notify: Option<usize>,
    /// Index of its first FIN or RST, and whether it was a RST.
    pub end: Option<(usize, bool)>,
    /// Time of that FIN or RST.
    pub end_time: Option<f64>,
    /// Alert records it sent that could not be read.
    pub unreadable_alerts: usize,
    /// Application-data records it sent (inner type when decrypted).
    pub app_records: u32,
}

/// One TCP connection.
#[derive(Clone, Debug, PartialEq)]
pub struct Connection {
    pub stream: u64,
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// Time of the client's SYN (or of the first frame if the SYN was not
    /// captured).
    pub start: f64,
    pub tls13: bool,
    pub kind: Kind,
    /// The key log had this connection's secrets: tshark decrypted the
    /// server's encrypted handshake messages.
    pub decrypted: bool,
    pub offer: Option<Identity>,
    /// Sessions the server issued in this connection, with the time of the
    /// frame that carried them.
    pub issued: Vec<(Identity, f64)>,
    pub client_side: SideFacts,
    pub server_side: SideFacts,
}

impl Connection {
    /// How the side that connected (`client`) or accepted ended it.
    #[must_use]
    pub fn close(&self, client: bool) -> Close {
        let side = if client {
            &self.client_side
        } else {
            &self.server_side
        };
        if side.close_notify.is_some() {
            return Close::Clean;
        }
        if side.end.is_none() {
            return Close::NotSeen;
        }
        // A TLS 1.3 side's alerts are encrypted as application data: only
        // decryption shows there was none. A TLS 1.2 side's alerts keep
        // their outer type, so no alert record at all is proof enough.
        let hidden = if self.tls13 {
            !self.decrypted
        } else {
            side.unreadable_alerts > 0
        };
        if hidden {
            Close::Undecrypted
        } else {
            Close::Unclean
        }
    }
}

/// Groups `frames` into connections. A connection's server is the side
/// whose port is in `server_ports`; connections to other ports are left out.
#[must_use]
pub fn connections(frames: &[Frame], server_ports: &[u16]) -> Vec<Connection> {
    let mut by_stream: BTreeMap<u64, Vec<&Frame>> = BTreeMap::new();
    for frame in frames {
        by_stream.entry(frame.stream).or_default().push(frame);
    }
    let mut out: Vec<Connection> = by_stream
        .into_iter()
        .filter_map(|(stream, frames)| connection(stream, &frames, server_ports))
        .collect();
    out.sort_by(|a, b| a.start.total_cmp(&b.start));
    out
}

fn connection(stream: u64, frames: &[&Frame], server_ports: &[u16]) -> Option<Connection> {
    let first = frames.first()?;
    let (a, b) = (first.src?, first.dst?);
    let (client, server) = if server_ports.contains(&b.port()) {
        (a, b)
    } else if server_ports.contains(&a.port()) {
        (b, a)
    } else {
        return None;
    };
    let start = frames
        .iter()
        .find(|f| f.syn && f.src == Some(client))
        .map_or(first.time, |f| f.time);

    let mut conn = Connection {
        stream,
        client,
        server,
        start,
        tls13: false,
        kind: Kind::Incomplete,
        decrypted: false,
        offer: None,
        issued: Vec::new(),
        client_side: SideFacts::default(),
        server_side: SideFacts::default(),
    };
    let mut server_hello_id = None;
    let mut certificate = false;
    let mut server_hello = false;
    let mut server_ccs = false;
    let mut client_offers_tls13 = false;
    let mut client_hello: Option<&Frame> = None;
    let mut psk_accepted = false;

    for (index, frame) in frames.iter().enumerate() {
        let from_client = frame.src == Some(client);
        let hs = &frame.handshake_types;
        if from_client && hs.contains(&handshake::CLIENT_HELLO) && client_hello.is_none() {
            client_hello = Some(frame);
            client_offers_tls13 = frame.supported_versions.contains(&TLS13);
        }
        if !from_client {
            if hs.contains(&handshake::SERVER_HELLO) && !server_hello {
                server_hello = true;
                // In a ServerHello frame the only supported_versions value
                // is the ServerHello's own (RFC 8446 §4.2.1).
                conn.tls13 = frame.supported_versions.contains(&TLS13);
                psk_accepted = frame.extensions.contains(&EXT_PRE_SHARED_KEY);
                server_hello_id = frame.session_ids.first().cloned();
            }
            certificate |= hs.contains(&handshake::CERTIFICATE);
            server_ccs |= frame.content_types.contains(&content::CHANGE_CIPHER_SPEC);
            // Encrypted in both versions: visible only when decrypted.
            conn.decrypted |= hs.contains(&handshake::ENCRYPTED_EXTENSIONS)
                || (!conn.tls13 && server_ccs && hs.contains(&handshake::FINISHED));
            if hs.contains(&handshake::NEW_SESSION_TICKET) {
                let method = if conn.tls13 {
                    Method::Psk
                } else {
                    Method::Ticket
                };
                for ticket in &frame.tickets {
                    conn.issued.push((
                        Identity {
                            method,
                            bytes: ticket.clone(),
                        },
                        frame.time,
                    ));
                }
            }
        }
        let side = if from_client {
            &mut conn.client_side
        } else {
            &mut conn.server_side
        };
        if frame.close_notify() && side.close_notify.is_none() {
            side.close_notify = Some(index);
        }
        side.unreadable_alerts += frame.unreadable_alerts();
        if (frame.fin || frame.rst) && side.end.is_none() {
            side.end = Some((index, frame.rst));
            side.end_time = Some(frame.time);
        }
        let app = frame
            .content_types
            .iter()
            .filter(|&&t| t == content::APPLICATION_DATA)
            .count();
        side.app_records += u32::try_from(app).unwrap_or(u32::MAX);
    }
    // TLS 1.3 records before decryption all have outer type 23: count
    // application data only where it is known to be that.
    if conn.tls13 && !conn.decrypted {
        conn.client_side.app_records = 0;
        conn.server_side.app_records = 0;
    }

    conn.kind = if !server_hello {
        Kind::Incomplete
    } else if conn.tls13 {
        if psk_accepted { Kind::Resumed } else { Kind::Full }
    } else if certificate {
        Kind::Full
    } else if server_ccs {
        // Abbreviated handshake (RFC 5246 §7.3): no Certificate, the
        // server's ChangeCipherSpec right after its ServerHello.
        Kind::Resumed
    } else {
        Kind::Incomplete
    };
    conn.offer = client_hello.and_then(|hello| offer(hello, client_offers_tls13));
    // A TLS 1.2 session ID names the session from its full handshake on
    // (RFC 5246 §7.4.1.3); resumptions echo it and issue nothing new.
    if !conn.tls13
        && conn.kind == Kind::Full
        && let Some(id) = server_hello_id
    {
        let time = frames
            .iter()
            .find(|f| f.src != Some(client) && f.handshake_types.contains(&handshake::SERVER_HELLO))
            .map_or(start, |f| f.time);
        conn.issued.insert(
            0,
            (
                Identity {
                    method: Method::SessionId,
                    bytes: id,
                },
                time,
            ),
        );
    }
    Some(conn)
}

/// The session a `ClientHello` offers: a PSK identity (TLS 1.3), else a
/// TLS 1.2 ticket, else a TLS 1.2 session ID. A client that offers TLS 1.3
/// fills the legacy session ID with random bytes for middlebox
/// compatibility (RFC 8446 §4.1.2, D.4): no offer then.
fn offer(hello: &Frame, offers_tls13: bool) -> Option<Identity> {
    if let Some(identity) = hello.psk_identities.first() {
        return Some(Identity {
            method: Method::Psk,
            bytes: identity.clone(),
        });
    }
    if let Some(ticket) = hello.tickets.first() {
        return Some(Identity {
            method: Method::Ticket,
            bytes: ticket.clone(),
        });
    }
    match hello.session_ids.first() {
        Some(id) if !offers_tls13 => Some(Identity {
            method: Method::SessionId,
            bytes: id.clone(),
        }),
        _ => None,
    }
}
