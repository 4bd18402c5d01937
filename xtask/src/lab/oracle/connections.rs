//! Frames → connections: per TCP connection, what the peers' own bytes say
//! (decrypted where a key log allowed): endpoints and start, version, full
//! or resumed, the session offered, the sessions issued, and how each side
//! ended it. Pure: no I/O.

use std::{collections::BTreeMap, net::SocketAddr};

use serde::{Deserialize, Serialize};

use super::frames::{EXT_PRE_SHARED_KEY, Frame, TLS13, content, count, handshake};

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
    let hello = Handshake::scan(frames, client);
    let (mut client_side, mut server_side) = sides(frames, client);
    // TLS 1.3 records before decryption all have outer type 23: count
    // application data only where it is known to be that.
    if hello.tls13 && !hello.decrypted {
        client_side.app_records = 0;
        server_side.app_records = 0;
    }
    let kind = hello.kind();
    let mut issued = hello.tickets;
    // A TLS 1.2 session ID names the session from its full handshake on
    // (RFC 5246 §7.4.1.3); resumptions echo it and issue nothing new.
    if !hello.tls13
        && kind == Kind::Full
        && let Some((id, time)) = hello.server_hello_id
    {
        let identity = Identity {
            method: Method::SessionId,
            bytes: id,
        };
        issued.insert(0, (identity, time));
    }
    Some(Connection {
        stream,
        client,
        server,
        start,
        tls13: hello.tls13,
        kind,
        decrypted: hello.decrypted,
        offer: hello.offer,
        issued,
        client_side,
        server_side,
    })
}

/// What the handshake messages of one connection say.
#[derive(Default)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "one flag per handshake message seen; kind() combines them"
)]
struct Handshake {
    offer: Option<Identity>,
    server_hello: bool,
    /// The `ServerHello`'s session ID and the time of its frame.
    server_hello_id: Option<(String, f64)>,
    tls13: bool,
    psk_accepted: bool,
    certificate: bool,
    server_ccs: bool,
    decrypted: bool,
    /// Tickets from `NewSessionTicket` messages.
    tickets: Vec<(Identity, f64)>,
}

impl Handshake {
    fn scan(frames: &[&Frame], client: SocketAddr) -> Self {
        let mut hs = Self::default();
        let mut client_hello = false;
        for frame in frames {
            let types = &frame.handshake_types;
            if frame.src == Some(client) {
                if types.contains(&handshake::CLIENT_HELLO) && !client_hello {
                    client_hello = true;
                    hs.offer = offer(frame, frame.supported_versions.contains(&TLS13));
                }
                continue;
            }
            if types.contains(&handshake::SERVER_HELLO) && !hs.server_hello {
                hs.server_hello = true;
                // In a ServerHello frame the only supported_versions value
                // is the ServerHello's own (RFC 8446 §4.2.1).
                hs.tls13 = frame.supported_versions.contains(&TLS13);
                hs.psk_accepted = frame.extensions.contains(&EXT_PRE_SHARED_KEY);
                hs.server_hello_id = frame.session_ids.first().map(|id| (id.clone(), frame.time));
            }
            hs.certificate |= types.contains(&handshake::CERTIFICATE);
            hs.server_ccs |= frame.content_types.contains(&content::CHANGE_CIPHER_SPEC);
            // Encrypted in both versions: visible only when decrypted.
            hs.decrypted |= types.contains(&handshake::ENCRYPTED_EXTENSIONS)
                || (!hs.tls13 && hs.server_ccs && types.contains(&handshake::FINISHED));
            if types.contains(&handshake::NEW_SESSION_TICKET) {
                let method = if hs.tls13 {
                    Method::Psk
                } else {
                    Method::Ticket
                };
                for ticket in &frame.tickets {
                    let identity = Identity {
                        method,
                        bytes: ticket.clone(),
                    };
                    hs.tickets.push((identity, frame.time));
                }
            }
        }
        hs
    }

    fn kind(&self) -> Kind {
        if !self.server_hello {
            Kind::Incomplete
        } else if self.tls13 {
            if self.psk_accepted {
                Kind::Resumed
            } else {
                Kind::Full
            }
        } else if self.certificate {
            Kind::Full
        } else if self.server_ccs {
            // Abbreviated handshake (RFC 5246 §7.3): no Certificate, the
            // server's ChangeCipherSpec right after its ServerHello.
            Kind::Resumed
        } else {
            Kind::Incomplete
        }
    }
}

/// How each side ended the connection: (client, server).
fn sides(frames: &[&Frame], client: SocketAddr) -> (SideFacts, SideFacts) {
    let mut client_side = SideFacts::default();
    let mut server_side = SideFacts::default();
    for (index, frame) in frames.iter().enumerate() {
        let side = if frame.src == Some(client) {
            &mut client_side
        } else {
            &mut server_side
        };
        if frame.close_notify() && side.close_notify.is_none() {
            side.close_notify = Some(index);
        }
        side.unreadable_alerts += frame.unreadable_alerts();
        if (frame.fin || frame.rst) && side.end.is_none() {
            side.end = Some((index, frame.rst));
            side.end_time = Some(frame.time);
        }
        let app = count(&frame.content_types, content::APPLICATION_DATA);
        side.app_records += u32::try_from(app).unwrap_or(u32::MAX);
    }
    (client_side, server_side)
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
    if let Some(ticket) = hello.offered_ticket() {
        return Some(Identity {
            method: Method::Ticket,
            bytes: ticket.to_owned(),
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
