//! One record per connection: what tlsmon decided about it, for
//! `--log-handshakes` (`"type":"handshake"` JSON lines) and for comparing
//! tlsmon, connection by connection, with the proxy lab's decrypted oracle
//! (`xtask::lab::oracle::agreement`).
//!
//! A record is made when the tracker forgets a connection (closed and its
//! linger time over, evicted, timed out for good, or at exit): only then
//! are both sides' closes known.

use crate::stats::{Cause, CloseStyle, Endpoint, Method, Role};

/// How a connection's handshake ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeKind {
    Full,
    Resumed,
    /// No answer, or the connection ended before the handshake did.
    Incomplete,
    /// A fatal alert or a RST ended it.
    Failed,
}

impl HandshakeKind {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Resumed => "resumed",
            Self::Incomplete => "incomplete",
            Self::Failed => "failed",
        }
    }
}

/// One connection, as tlsmon saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandshakeRecord {
    pub client: Endpoint,
    pub server: Endpoint,
    pub role: Role,
    /// The ClientHello's time, on the events' clock (CLOCK_MONOTONIC live,
    /// the capture's in replay).
    pub start_ns: u64,
    pub kind: HandshakeKind,
    /// The negotiated version, 0 before a ServerHello.
    pub version: u16,
    /// The resumption the ClientHello offered, if any.
    pub offered: Option<Method>,
    /// Why an offer was rejected (a full handshake after an offer).
    pub cause: Option<Cause>,
    pub close_client: CloseStyle,
    pub close_server: CloseStyle,
}

/// Records kept for the output to take before new ones are dropped (and
/// counted in `Totals::dropped_records`): a second's worth of a busy
/// proxy's connections, taken every tick.
pub const MAX_PENDING_RECORDS: usize = 65_536;
