//! Per-connection handshake tracking and per-server aggregation.
//!
//! Pure: events and a clock in, counters out; no I/O. The live daemon and
//! `tlsmon replay` both feed it, and the tests drive it event by event. The
//! rules it applies are listed, with their RFC sections, in
//! docs/classification.md.

use std::{
    collections::{HashSet, VecDeque},
    hash::{BuildHasher as _, Hash},
    net::IpAddr,
};

use hashbrown::HashTable;
use monitor_common::{
    event::{
        ALPN_MAX, Decoded, Direction, EventHeader, Hello, ITEM_OPAQUE, SNI_MAX, TICKET_ID_LEN,
        TlsSummary, hello_flags,
    },
    net::{TCP_FIN, TCP_RST},
    tls::{ContentType, HandshakeType, ProtocolVersion},
};

use crate::{
    reassembly::Hellos,
    stats::{Endpoint, Map, Method, Role, ServerStats, Totals},
};

/// Sets keyed by what peers send; see [`Map`] for the hasher.
type Set<K> = HashSet<K, foldhash::fast::RandomState>;

/// Limits of the tracker's tables.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub max_sessions: usize,
    /// A handshake without a ServerHello after this long is `incomplete`.
    pub handshake_timeout_ns: u64,
    /// How long a closed connection is kept to attribute the peer's RST/FIN.
    pub linger_ns: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1 << 20,
            max_sessions: 1 << 20,
            handshake_timeout_ns: 10_000_000_000,
            linger_ns: 5_000_000_000,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct ConnKey(Endpoint, Endpoint);

impl ConnKey {
    fn new(a: Endpoint, b: Endpoint) -> Self {
        if a <= b { Self(a, b) } else { Self(b, a) }
    }
}

/// A session a client may offer again: a session ID or a ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum SessionKey {
    Id([u8; 32], u8),
    Ticket([u8; TICKET_ID_LEN]),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// ClientHello seen, waiting for the ServerHello (or the second one
    /// after a HelloRetryRequest).
    AwaitServerHello,
    /// TLS ≤ 1.2 ServerHello seen without a session-ID echo: the next
    /// server message tells full from abbreviated.
    AwaitShape,
    /// Outcome known; for TLS ≤ 1.2 waiting for both ChangeCipherSpecs.
    Decided,
    /// Counted (or given up as incomplete/failed).
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Close {
    Open,
    Clean,
    Unclean,
}

#[derive(Clone, Debug)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent facts about one connection"
)]
struct Conn {
    id: u64,
    client: Endpoint,
    server: Endpoint,
    role: Role,
    phase: Phase,
    ch_ts: u64,
    sh_ts: u64,
    client_sid: ([u8; 32], u8),
    offer_sid: bool,
    offer_ticket: Option<[u8; TICKET_ID_LEN]>,
    offer_psk: bool,
    early_data: bool,
    version: u16,
    cipher: u16,
    sni: Name<SNI_MAX>,
    alpn: Name<ALPN_MAX>,
    resumed: bool,
    method: Option<Method>,
    server_ticket_ext: bool,
    ccs_client: bool,
    ccs_server: bool,
    alert_seen: bool,
    rst_client: bool,
    rst_server: bool,
    close: Close,
    closed_at: u64,
    /// This server was seen issuing tickets before this handshake.
    server_issues_tickets: bool,
    /// A plaintext alert ended the handshake; counted on the next update.
    failed_pending: bool,
}

impl Conn {
    fn key(&self) -> ConnKey {
        ConnKey::new(self.client, self.server)
    }

    /// `self.key() == *key` without ordering the endpoints again: this
    /// runs on every probe of the index.
    fn has_key(&self, key: &ConnKey) -> bool {
        let ConnKey(a, b) = *key;
        (self.client == a && self.server == b) || (self.client == b && self.server == a)
    }
}

/// A name (SNI, ALPN) as the kernel copied it, kept inline in the
/// connection and turned into text only when the handshake is counted.
/// Two `String`s cost two allocations per ClientHello and, with their
/// headers and the allocator's minimum chunk, more memory than these bytes.
#[derive(Clone, Copy, Debug)]
struct Name<const N: usize> {
    bytes: [u8; N],
    len: u8,
}

impl<const N: usize> Name<N> {
    fn new(bytes: &[u8; N], len: u8) -> Self {
        Self { bytes: *bytes, len }
    }

    /// The name as text that is safe to show anywhere (`escape`).
    fn text(&self) -> Option<String> {
        let n = usize::from(self.len).min(N);
        (n > 0).then(|| crate::escape::escape(&self.bytes[..n]))
    }
}

/// Where a connection sits in [`Conns`].
type Slot = u32;

/// The connection table: connections in a slab, found through an index of
/// slot numbers hashed by [`ConnKey`].
///
/// A `HashMap<ConnKey, Conn>` kept each connection (~250 bytes with its
/// key) in a hash bucket, and hashbrown keeps at most 7/8 of its buckets
/// full and grows by doubling: a million connections took two million
/// buckets, over 500 MB. Here a bucket is a 4-byte slot number and the slab
/// holds only live connections, reusing freed slots. Looking a connection
/// up once per event also gives a slot every later step of that event
/// uses, where the map was hashed and probed again by each step.
#[derive(Debug)]
struct Conns {
    slots: Vec<Option<Conn>>,
    /// Empty slots, filled before `slots` grows.
    free: Vec<Slot>,
    index: HashTable<Slot>,
    /// See [`Map`] for the choice of hasher.
    hasher: foldhash::fast::RandomState,
}

impl Conns {
    fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            index: HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn len(&self) -> usize {
        self.index.len()
    }

    fn hash(&self, key: &ConnKey) -> u64 {
        self.hasher.hash_one(key)
    }

    fn find(&self, hash: u64, key: &ConnKey) -> Option<Slot> {
        self.index
            .find(hash, |&s| self.get(s).has_key(key))
            .copied()
    }

    fn get(&self, slot: Slot) -> &Conn {
        self.slots[slot as usize]
            .as_ref()
            .expect("slots handed out hold a connection")
    }

    fn get_mut(&mut self, slot: Slot) -> &mut Conn {
        self.slots[slot as usize]
            .as_mut()
            .expect("slots handed out hold a connection")
    }

    /// The id of the connection in `slot`, if there is one.
    fn id_at(&self, slot: Slot) -> Option<u64> {
        self.slots.get(slot as usize)?.as_ref().map(|c| c.id)
    }

    /// Adds a connection whose key is not in the table; `hash` is its key's.
    fn insert(&mut self, hash: u64, conn: Conn) -> Slot {
        let slot = if let Some(slot) = self.free.pop() {
            self.slots[slot as usize] = Some(conn);
            slot
        } else {
            let slot = Slot::try_from(self.slots.len()).expect("fewer than 2^32 connections");
            self.slots.push(Some(conn));
            slot
        };
        let Self {
            slots,
            index,
            hasher,
            ..
        } = self;
        index.insert_unique(hash, slot, |&s| {
            let c = slots[s as usize].as_ref().expect("indexed slots are full");
            hasher.hash_one(c.key())
        });
        slot
    }

    fn remove(&mut self, slot: Slot) {
        let hash = self.hash(&self.get(slot).key());
        if let Ok(entry) = self.index.find_entry(hash, |&s| s == slot) {
            entry.remove();
        }
        self.slots[slot as usize] = None;
        self.free.push(slot);
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = (Slot, &mut Conn)> {
        (0..)
            .zip(&mut self.slots)
            .filter_map(|(slot, c)| Some((slot, c.as_mut()?)))
    }
}

/// The whole tracker: connections, remembered sessions, per-server stats.
#[derive(Debug)]
pub struct Tracker {
    limits: Limits,
    conns: Conns,
    /// Insertion order of `conns` (slot and connection id; a slot may have
    /// been reused since), for eviction of the oldest.
    conn_order: VecDeque<(Slot, u64)>,
    next_id: u64,
    /// Which connection established a session, per server.
    sessions: Bounded<(Endpoint, SessionKey), u64>,
    /// How connections that established sessions ended.
    closes: Bounded<u64, Close>,
    /// Servers that were seen issuing tickets (TLS ≤ 1.2 NewSessionTicket).
    ticket_servers: Set<Endpoint>,
    servers: Map<Endpoint, ServerStats>,
    /// Addresses seen as TLS clients, capped at [`MAX_CLIENT_ADDRS`]: with
    /// the servers, they let `replay` find the proxy's own addresses.
    client_addrs: Set<IpAddr>,
    /// ClientHellos spanning segments, until they are whole.
    hellos: Hellos,
    pub totals: Totals,
}

/// Client addresses remembered for [`Tracker::dual_role_addrs`].
pub const MAX_CLIENT_ADDRS: usize = 65_536;

impl Tracker {
    #[must_use]
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            conns: Conns::new(),
            conn_order: VecDeque::new(),
            next_id: 0,
            sessions: Bounded::new(limits.max_sessions),
            closes: Bounded::new(limits.max_sessions),
            ticket_servers: Set::default(),
            servers: Map::default(),
            client_addrs: Set::default(),
            hellos: Hellos::default(),
            totals: Totals::default(),
        }
    }

    /// Servers seen so far, in a stable order (by role, then address).
    #[must_use]
    pub fn servers(&self) -> Vec<&ServerStats> {
        let mut v: Vec<_> = self.servers.values().collect();
        v.sort_by_key(|s| (s.role, s.server));
        v
    }

    /// Connections currently tracked.
    #[must_use]
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Forgets all counters (the TUI's reset); connections in flight stay.
    pub fn reset_counters(&mut self) {
        self.servers.clear();
        self.totals = Totals::default();
    }

    /// Labels servers whose role the packet direction could not tell
    /// (offline captures): `is_local(addr)` says whether an address belongs
    /// to the monitored host, or `None` if unknown.
    pub fn assign_roles(&mut self, is_local: impl Fn(&IpAddr) -> Option<bool>) {
        for s in self
            .servers
            .values_mut()
            .filter(|s| s.role == Role::Unknown)
        {
            match is_local(&s.server.addr) {
                Some(true) => s.role = Role::Frontend,
                Some(false) => s.role = Role::Backend,
                None => {}
            }
        }
    }

    /// Addresses that acted both as a TLS client and as a TLS server: on a
    /// capture taken on a proxy host, the proxy's own.
    #[must_use]
    pub fn dual_role_addrs(&self) -> HashSet<IpAddr> {
        self.servers
            .keys()
            .map(|e| e.addr)
            .filter(|a| self.client_addrs.contains(a))
            .collect()
    }

    /// Feeds the next event from the kernel in ring-buffer order, chunks of
    /// split ClientHellos included: the way the daemon and `replay` feed it.
    pub fn on_event(&mut self, d: Decoded) {
        if self.hellos.passes(&d) {
            self.on_ready(&d);
            return;
        }
        for ready in self.hellos.push(d).into_iter().flatten() {
            self.on_ready(&ready);
        }
        self.totals.orphan_chunks = self.hellos.orphan_chunks;
    }

    fn on_ready(&mut self, d: &Decoded) {
        match d {
            Decoded::Tls(h, t) => self.on_tls(h, t),
            Decoded::Teardown(h) => self.on_teardown(h),
            // `Hellos` keeps chunks to itself.
            Decoded::Chunk(..) => {}
        }
    }

    /// Feeds a TLS event that needs no reassembly.
    pub fn on_tls(&mut self, h: &EventHeader, tls: &TlsSummary) {
        self.totals.events += 1;
        let src = Endpoint::from_wire(h.family, h.src_addr, h.src_port);
        let dst = Endpoint::from_wire(h.family, h.dst_addr, h.dst_port);
        let key = ConnKey::new(src, dst);
        // Hashed once per event; the slot found serves every step below.
        let hash = self.conns.hash(&key);
        let hello = &tls.hello;
        let slot = if hello.flags & hello_flags::MALFORMED != 0 {
            self.totals.malformed_hellos += 1;
            self.conns.find(hash, &key)
        } else if hello.flags & hello_flags::CLIENT_HELLO != 0 {
            if hello.flags & hello_flags::TRUNCATED != 0 {
                self.totals.truncated_hellos += 1;
            }
            if hello.flags & hello_flags::REASSEMBLED != 0 {
                self.totals.reassembled_hellos += 1;
            }
            Some(self.client_hello(key, hash, src, dst, h, hello))
        } else {
            self.conns.find(hash, &key)
        };
        let Some(slot) = slot else {
            self.totals.untracked_events += 1;
            return;
        };
        let n = usize::from(tls.n_items).min(tls.items.len());
        let items = &tls.items[..n];
        if self.conns.get(slot).server == src {
            self.server_items(slot, h, tls, items);
        } else {
            let conn = self.conns.get_mut(slot);
            for &it in items {
                let (ct, detail) = split(it);
                if ct == ContentType::CHANGE_CIPHER_SPEC {
                    conn.ccs_client = true;
                } else if ct == ContentType::ALERT {
                    Self::alert(conn, detail);
                }
            }
        }
        self.maybe_complete(slot);
        self.tcp_flags(slot, src, h.tcp_flags, h.ts_ns);
    }

    /// Feeds a RST/FIN event.
    pub fn on_teardown(&mut self, h: &EventHeader) {
        self.totals.events += 1;
        let src = Endpoint::from_wire(h.family, h.src_addr, h.src_port);
        let dst = Endpoint::from_wire(h.family, h.dst_addr, h.dst_port);
        let key = ConnKey::new(src, dst);
        if let Some(slot) = self.conns.find(self.conns.hash(&key), &key) {
            self.tcp_flags(slot, src, h.tcp_flags, h.ts_ns);
        } else {
            self.totals.untracked_events += 1;
        }
    }

    /// Time passes: handshakes without a ServerHello time out, closed
    /// connections are forgotten after their linger time.
    pub fn tick(&mut self, now_ns: u64) {
        for ready in self.hellos.expire(now_ns) {
            self.on_ready(&ready);
        }
        let limits = self.limits;
        let mut gone = Vec::new();
        for (slot, c) in self.conns.iter_mut() {
            if c.phase == Phase::AwaitServerHello
                && now_ns.saturating_sub(c.ch_ts) > limits.handshake_timeout_ns
            {
                c.phase = Phase::Done;
                if let Some(s) = self.servers.get_mut(&c.server) {
                    s.incomplete += 1;
                }
            }
            if c.close != Close::Open && now_ns.saturating_sub(c.closed_at) > limits.linger_ns {
                gone.push(slot);
            }
        }
        for slot in gone {
            self.conns.remove(slot);
        }
        if self.conn_order.len() > self.conns.len() * 2 + 1024 {
            let conns = &self.conns;
            self.conn_order
                .retain(|&(slot, id)| conns.id_at(slot) == Some(id));
        }
    }

    fn server_entry(&mut self, server: Endpoint, role: Role) -> &mut ServerStats {
        self.servers
            .entry(server)
            .or_insert_with(|| ServerStats::new(server, role))
    }

    /// Returns the slot of the connection the ClientHello belongs to (new,
    /// or one it continues).
    fn client_hello(
        &mut self,
        key: ConnKey,
        hash: u64,
        src: Endpoint,
        dst: Endpoint,
        h: &EventHeader,
        hello: &Hello,
    ) -> Slot {
        let existing = self.conns.find(hash, &key);
        if let Some(slot) = existing {
            let c = self.conns.get_mut(slot);
            // The second ClientHello after a HelloRetryRequest (RFC 8446
            // §4.1.2) continues the same handshake.
            if c.client == src && c.phase == Phase::AwaitServerHello {
                c.offer_psk |= hello.flags & hello_flags::PSK != 0;
                return slot;
            }
            // A ClientHello in the middle of a live handshake is not
            // plausible (or is encrypted renegotiation misread), nor is one
            // on an open connection after it: ignore.
            if c.close == Close::Open {
                return slot;
            }
            // Port reuse after a close: a new connection.
        }
        let role = match Direction(h.direction) {
            Direction::EGRESS => Role::Backend,
            Direction::INGRESS => Role::Frontend,
            _ => Role::Unknown,
        };
        let sid_len = hello.session_id_len.min(32);
        let mut sid = [0u8; 32];
        sid[..usize::from(sid_len)].copy_from_slice(&hello.session_id[..usize::from(sid_len)]);
        let offers_tls13 = hello.flags & hello_flags::OFFERS_TLS13 != 0;
        // RFC 8446 §D.4: a TLS 1.3 client fills legacy_session_id with a
        // random value for middlebox compatibility; that is not an offer.
        // When such a client faces a TLS 1.2 server the ID is only an offer
        // if this server issued it (checked again at the ServerHello).
        let offer_sid = sid_len > 0
            && (!offers_tls13
                || self
                    .sessions
                    .get(&(dst, SessionKey::Id(sid, sid_len)))
                    .is_some());
        let ticket = (hello.flags & hello_flags::TICKET_OFFERED != 0).then_some(hello.ticket_id);
        let id = self.next_id;
        self.next_id += 1;
        let conn = Conn {
            id,
            client: src,
            server: dst,
            role,
            phase: Phase::AwaitServerHello,
            ch_ts: h.ts_ns,
            sh_ts: 0,
            client_sid: (sid, sid_len),
            offer_sid,
            offer_ticket: ticket,
            offer_psk: hello.flags & hello_flags::PSK != 0,
            early_data: hello.flags & hello_flags::EARLY_DATA != 0,
            version: 0,
            cipher: 0,
            sni: Name::new(&hello.sni, hello.sni_len),
            alpn: Name::new(&hello.alpn, hello.alpn_len),
            resumed: false,
            method: None,
            server_ticket_ext: false,
            ccs_client: false,
            ccs_server: false,
            alert_seen: false,
            rst_client: false,
            rst_server: false,
            close: Close::Open,
            closed_at: 0,
            server_issues_tickets: false,
            failed_pending: false,
        };
        self.server_entry(dst, role);
        if self.client_addrs.len() < MAX_CLIENT_ADDRS {
            self.client_addrs.insert(src.addr);
        }
        let slot = if let Some(slot) = existing {
            *self.conns.get_mut(slot) = conn;
            slot
        } else {
            if self.conns.len() >= self.limits.max_connections {
                self.evict_oldest();
            }
            self.conns.insert(hash, conn)
        };
        self.conn_order.push_back((slot, id));
        slot
    }

    fn evict_oldest(&mut self) {
        while let Some((slot, id)) = self.conn_order.pop_front() {
            if self.conns.id_at(slot) == Some(id) {
                self.conns.remove(slot);
                self.totals.evicted_flows += 1;
                return;
            }
        }
    }

    fn server_items(&mut self, slot: Slot, h: &EventHeader, tls: &TlsSummary, items: &[u16]) {
        let hello = &tls.hello;
        let conn = self.conns.get_mut(slot);
        let server = conn.server;
        let issues_tickets = self.ticket_servers.contains(&server);
        let mut hrr = false;
        let mut after_hello = false;
        let mut ticket_issued = false;
        for &it in items {
            let (ct, detail) = split(it);
            if ct == ContentType::CHANGE_CIPHER_SPEC {
                decide_shape(conn, true);
                conn.ccs_server = true;
            } else if ct == ContentType::ALERT {
                Self::alert(conn, detail);
            } else if ct == ContentType::HANDSHAKE
                && detail != ITEM_OPAQUE
                && !(conn.ccs_server && conn.phase != Phase::AwaitServerHello)
            {
                // After a TLS ≤ 1.2 ChangeCipherSpec handshake records are
                // encrypted (RFC 5246 §7.1). A TLS 1.3 server's compatibility
                // CCS after a HelloRetryRequest (RFC 8446 §D.4) is followed by
                // a plaintext second ServerHello, hence the phase check.
                let ht = HandshakeType(detail);
                if ht == HandshakeType::SERVER_HELLO {
                    if conn.phase == Phase::AwaitServerHello
                        && hello.flags & hello_flags::SERVER_HELLO != 0
                    {
                        if hello.flags & hello_flags::HRR != 0 {
                            // Classified from the second ServerHello
                            // (RFC 8446 §4.1.4).
                            hrr = true;
                        } else {
                            server_hello(conn, h, hello, issues_tickets);
                            after_hello = true;
                        }
                    }
                    continue;
                }
                match ht {
                    HandshakeType::NEW_SESSION_TICKET => {
                        decide_shape(conn, true);
                        ticket_issued |= hello.flags & hello_flags::NEW_TICKET != 0;
                    }
                    HandshakeType::CERTIFICATE
                    | HandshakeType::SERVER_KEY_EXCHANGE
                    | HandshakeType::CERTIFICATE_REQUEST
                    | HandshakeType::SERVER_HELLO_DONE
                    | HandshakeType::CERTIFICATE_STATUS => decide_shape(conn, false),
                    _ => {}
                }
            }
        }
        // The event carries one ticket id: several NewSessionTicket items
        // in it issue the same key.
        let ticket = ticket_issued.then_some(SessionKey::Ticket(hello.ticket_id));
        // A full TLS ≤ 1.2 handshake establishes the session ID the server
        // chose (RFC 5246 §7.4.1.3).
        let session_id = (after_hello
            && conn.version <= ProtocolVersion::TLS1_2.0
            && !conn.resumed
            && hello.session_id_len > 0)
            .then(|| {
                let n = hello.session_id_len.min(32);
                let mut sid = [0u8; 32];
                sid[..usize::from(n)].copy_from_slice(&hello.session_id[..usize::from(n)]);
                SessionKey::Id(sid, n)
            });
        let id = conn.id;
        let role = conn.role;
        if ticket.is_some() {
            self.ticket_servers.insert(server);
        }
        for k in [ticket, session_id].into_iter().flatten() {
            if self.sessions.insert((server, k), id) {
                self.totals.evicted_sessions += 1;
            }
        }
        if hrr {
            self.server_entry(server, role).hrr += 1;
        }
    }

    fn alert(conn: &mut Conn, detail: u8) {
        conn.alert_seen = true;
        // A plaintext alert before the handshake finished means it failed
        // (RFC 5246 §7.2.2); encrypted ones come after it (close_notify).
        if detail != ITEM_OPAQUE
            && matches!(
                conn.phase,
                Phase::AwaitServerHello | Phase::AwaitShape | Phase::Decided
            )
        {
            conn.phase = Phase::Done;
            conn.failed_pending = true;
        }
    }

    /// Counts a handshake once its outcome is certain and it completed.
    fn maybe_complete(&mut self, slot: Slot) {
        let conn = self.conns.get_mut(slot);
        if std::mem::take(&mut conn.failed_pending) {
            if let Some(s) = self.servers.get_mut(&conn.server) {
                s.failed += 1;
            }
            return;
        }
        if conn.phase != Phase::Decided {
            return;
        }
        // TLS 1.3: nothing after the ServerHello is visible, so it counts
        // there. TLS ≤ 1.2: both ChangeCipherSpecs mean both Finished follow.
        let tls13 = conn.version == ProtocolVersion::TLS1_3.0;
        if !(tls13 || conn.ccs_client && conn.ccs_server) {
            return;
        }
        conn.phase = Phase::Done;
        let conn = &*conn;
        let origin = rejection_origin(&self.sessions, &self.closes, conn);
        let Some(s) = self.servers.get_mut(&conn.server) else {
            return;
        };
        let elapsed = conn.sh_ts.saturating_sub(conn.ch_ts);
        if conn.resumed {
            s.resumed += 1;
            if let Some(m) = conn.method {
                s.resumed_by.add(m);
            }
            s.handshake_resumed.record(elapsed);
        } else {
            s.full += 1;
            s.handshake_full.record(elapsed);
        }
        let offers = offers(conn);
        if offers.iter().any(|&o| o) {
            s.offered += 1;
            for (m, o) in [Method::SessionId, Method::Ticket, Method::Psk]
                .into_iter()
                .zip(offers)
            {
                if o {
                    s.offered_by.add(m);
                }
            }
            if !conn.resumed {
                s.rejected += 1;
                match origin {
                    Some(Close::Unclean) => s.rejected_after_unclean += 1,
                    Some(_) => s.rejected_after_clean += 1,
                    None => s.rejected_origin_unknown += 1,
                }
            }
        }
        if conn.early_data {
            s.early_data_offered += 1;
        }
        if let Some(v) = ProtocolVersion(conn.version).name() {
            *s.versions.entry(v).or_default() += 1;
        }
        *s.ciphers.entry(conn.cipher).or_default() += 1;
        if let Some(sni) = conn.sni.text() {
            s.sni.add(&sni);
        }
        if let Some(alpn) = conn.alpn.text() {
            s.alpn.add(&alpn);
        }
    }

    fn tcp_flags(&mut self, slot: Slot, src: Endpoint, flags: u8, ts: u64) {
        if flags & (TCP_RST | TCP_FIN) == 0 {
            return;
        }
        let conn = self.conns.get_mut(slot);
        let from_client = conn.client == src;
        let server = conn.server;
        let mut rst_client = false;
        let mut rst_server = false;
        if flags & TCP_RST != 0 {
            if from_client && !conn.rst_client {
                conn.rst_client = true;
                rst_client = true;
            } else if !from_client && !conn.rst_server {
                conn.rst_server = true;
                rst_server = true;
            }
        }
        let mut incomplete = false;
        let mut failed = false;
        let mut closed = None;
        if conn.close == Close::Open {
            // TLS ≤ 1.2 sends close_notify as an alert record (RFC 5246
            // §7.2.1); without one before the first FIN/RST the close is
            // unclean and OpenSSL-based servers drop the session.
            let close = if conn.alert_seen {
                Close::Clean
            } else {
                Close::Unclean
            };
            conn.close = close;
            conn.closed_at = ts;
            match conn.phase {
                // RST during the handshake: failed; FIN: gave up, incomplete.
                Phase::AwaitServerHello | Phase::AwaitShape | Phase::Decided => {
                    conn.phase = Phase::Done;
                    if flags & TCP_RST != 0 {
                        failed = true;
                    } else {
                        incomplete = true;
                    }
                }
                Phase::Done => {}
            }
            // TLS 1.3 close_notify is encrypted application data (RFC 8446
            // §6.1): cleanliness cannot be seen, so it is not counted.
            if conn.version != 0 && conn.version <= ProtocolVersion::TLS1_2.0 {
                closed = Some((conn.id, close));
            }
        }
        let Some(s) = self.servers.get_mut(&server) else {
            return;
        };
        s.rst_by_client += u64::from(rst_client);
        s.rst_by_server += u64::from(rst_server);
        s.incomplete += u64::from(incomplete);
        s.failed += u64::from(failed);
        if let Some((id, close)) = closed {
            if close == Close::Clean {
                s.clean_closes += 1;
            } else {
                s.unclean_closes += 1;
            }
            self.closes.insert(id, close);
        }
    }
}

/// How the connection that established the offered session ended.
fn rejection_origin(
    sessions: &Bounded<(Endpoint, SessionKey), u64>,
    closes: &Bounded<u64, Close>,
    conn: &Conn,
) -> Option<Close> {
    let offered = [
        conn.offer_sid
            .then_some(SessionKey::Id(conn.client_sid.0, conn.client_sid.1)),
        conn.offer_ticket.map(SessionKey::Ticket),
    ];
    let mut found = None;
    for k in offered.into_iter().flatten() {
        if let Some(&origin) = sessions.get(&(conn.server, k)) {
            // Closes are recorded as they happen; a connection without
            // one is still open (or left the table without a close seen).
            let close = closes.get(&origin).copied().unwrap_or(Close::Open);
            if close == Close::Unclean {
                return Some(Close::Unclean);
            }
            found = Some(close);
        }
    }
    found
}

/// Which methods the ClientHello offered, for the negotiated version:
/// [session ID, ticket, PSK].
fn offers(c: &Conn) -> [bool; 3] {
    let mut o = if c.version == ProtocolVersion::TLS1_3.0 {
        [false, false, c.offer_psk]
    } else {
        [c.offer_sid, c.offer_ticket.is_some(), false]
    };
    // A resumption was necessarily offered, even when the part of the
    // ClientHello carrying the offer was in a segment tlsmon could not read
    // (pre_shared_key is the last extension, RFC 8446 §4.2.11).
    match c.method {
        Some(Method::SessionId) => o[0] = true,
        Some(Method::Ticket) => o[1] = true,
        Some(Method::Psk) => o[2] = true,
        None => {}
    }
    o
}

fn server_hello(c: &mut Conn, h: &EventHeader, hello: &Hello, server_issues_tickets: bool) {
    c.sh_ts = h.ts_ns;
    c.cipher = hello.cipher_suite;
    c.server_ticket_ext = hello.flags & hello_flags::TICKET_EXT != 0;
    // RFC 8446 §4.2.1: the version is in supported_versions when present.
    c.version = if hello.selected_version != 0 {
        hello.selected_version
    } else {
        hello.legacy_version
    };
    if c.version == ProtocolVersion::TLS1_3.0 {
        // RFC 8446 §4.2.11: the server accepts a PSK by echoing
        // pre_shared_key in its ServerHello.
        c.resumed = hello.flags & hello_flags::PSK != 0;
        c.method = c.resumed.then_some(Method::Psk);
        c.phase = Phase::Decided;
        return;
    }
    // TLS ≤ 1.2: an echoed session ID without a ticket alongside was a
    // session-ID offer even from a TLS 1.3-capable client (RFC 5246
    // §7.4.1.3: the server found it in its cache).
    let (sid, n) = c.client_sid;
    let echoed = n > 0
        && hello.session_id_len == n
        && hello.session_id[..usize::from(n)] == sid[..usize::from(n)];
    if echoed {
        c.offer_sid |= c.offer_ticket.is_none();
        c.resumed = true;
        c.method = Some(resumption_method(c, server_issues_tickets));
        c.phase = Phase::Decided;
    } else {
        c.phase = Phase::AwaitShape;
    }
    c.server_issues_tickets = server_issues_tickets;
}

/// RFC 5077 §3.4: a server accepting a ticket echoes the client's session
/// ID, so an echo alone does not tell the method. A ticket offered to a
/// server that uses tickets is taken as the method.
fn resumption_method(c: &Conn, server_issues_tickets: bool) -> Method {
    let ticket_server = c.server_ticket_ext || server_issues_tickets;
    if c.offer_ticket.is_some() && (ticket_server || c.client_sid.1 == 0 || !c.offer_sid) {
        Method::Ticket
    } else {
        Method::SessionId
    }
}

/// RFC 5246 §7.3: in an abbreviated handshake the server's ServerHello is
/// followed by ChangeCipherSpec (RFC 5077 §3.1: or by NewSessionTicket);
/// in a full one by Certificate, ServerKeyExchange or ServerHelloDone.
fn decide_shape(c: &mut Conn, abbreviated: bool) {
    if c.phase == Phase::AwaitShape {
        c.resumed = abbreviated;
        c.method = abbreviated.then(|| resumption_method(c, c.server_issues_tickets));
        c.phase = Phase::Decided;
    }
}

fn split(item: u16) -> (ContentType, u8) {
    (ContentType((item >> 8) as u8), (item & 0xff) as u8)
}

/// A map that forgets its oldest entries past a capacity.
///
/// Entries sit in a ring in insertion order, which is the eviction order;
/// an index of ring positions finds them by key. The index is sized for the
/// full capacity at the first insert (5 bytes a bucket: 10 MB for the
/// default million sessions) and so never grows. A `HashMap` growing on
/// demand moved every entry when it doubled, a 170 ms stall at 917,504
/// sessions, and sizing it up front would have reserved room for two
/// million 64-byte entries. The ring grows like a `Vec` up to the capacity
/// and is then overwritten in place, oldest first.
#[derive(Debug)]
struct Bounded<K, V> {
    cap: usize,
    entries: Vec<(K, V)>,
    /// The next entry to overwrite once `entries` is full: the oldest.
    oldest: usize,
    index: HashTable<u32>,
    /// See [`Map`] for the choice of hasher.
    hasher: foldhash::fast::RandomState,
}

impl<K: Hash + Eq, V> Bounded<K, V> {
    fn new(cap: usize) -> Self {
        Self {
            // Ring positions are u32 in the index.
            cap: cap.clamp(1, u32::MAX as usize),
            entries: Vec::new(),
            oldest: 0,
            index: HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn find(&self, hash: u64, k: &K) -> Option<usize> {
        let &i = self
            .index
            .find(hash, |&i| self.entries[i as usize].0 == *k)?;
        Some(i as usize)
    }

    fn get(&self, k: &K) -> Option<&V> {
        let i = self.find(self.hasher.hash_one(k), k)?;
        Some(&self.entries[i].1)
    }

    /// Inserts; returns true if an old entry was evicted to make room.
    fn insert(&mut self, k: K, v: V) -> bool {
        let hash = self.hasher.hash_one(&k);
        if let Some(i) = self.find(hash, &k) {
            self.entries[i].1 = v;
            return false;
        }
        let Self {
            cap,
            entries,
            oldest,
            index,
            hasher,
        } = self;
        let rehash = |&i: &u32| hasher.hash_one(&entries[i as usize].0);
        if index.capacity() == 0 {
            index.reserve(*cap, rehash);
        }
        let (i, evicted) = if entries.len() < *cap {
            entries.push((k, v));
            (entries.len() - 1, false)
        } else {
            let i = *oldest;
            let old = hasher.hash_one(&entries[i].0);
            if let Ok(e) = index.find_entry(old, |&j| j as usize == i) {
                e.remove();
            }
            entries[i] = (k, v);
            *oldest = (i + 1) % *cap;
            (i, true)
        };
        let pos = u32::try_from(i).expect("cap fits u32");
        index.insert_unique(hash, pos, |&j| hasher.hash_one(&entries[j as usize].0));
        evicted
    }
}

#[cfg(test)]
mod tests {
    use monitor_common::{
        event::{Direction, EventHeader, TlsSummary, hello_flags as hf},
        net::{TCP_ACK, TCP_FIN, TCP_RST},
    };

    use super::*;
    use crate::stats::ByMethod;

    const CLIENT: (u8, u16) = (1, 40000);
    const SERVER: (u8, u16) = (2, 443);
    const CCS: u16 = 0x1401;
    const CERT: u16 = 0x160b;
    const SHD: u16 = 0x160e;
    const NST: u16 = 0x1604;
    const FIN_MSG: u16 = 0x16ff;
    const ENC_ALERT: u16 = 0x15ff;

    fn hdr(src: (u8, u16), dst: (u8, u16), dir: Direction, ms: u64, flags: u8) -> EventHeader {
        let mut h = EventHeader {
            family: 4,
            direction: dir.0,
            tcp_flags: flags,
            src_port: src.1,
            dst_port: dst.1,
            ts_ns: ms * 1_000_000,
            ..EventHeader::default()
        };
        h.src_addr[..4].copy_from_slice(&[10, 0, 0, src.0]);
        h.dst_addr[..4].copy_from_slice(&[10, 0, 0, dst.0]);
        h
    }

    fn items(list: &[u16]) -> TlsSummary {
        let mut t = TlsSummary::default();
        for &i in list {
            t.push((i >> 8) as u8, (i & 0xff) as u8);
        }
        t
    }

    fn ch(sid: &[u8], flags: u16, ticket: u8) -> TlsSummary {
        let mut t = items(&[0x1601]);
        t.hello.flags = hf::CLIENT_HELLO | flags;
        t.hello.legacy_version = 0x0303;
        t.hello.session_id[..sid.len()].copy_from_slice(sid);
        t.hello.session_id_len = u8::try_from(sid.len()).unwrap();
        t.hello.ticket_id = [ticket; 16];
        t
    }

    fn sh(sid: &[u8], version: u16, flags: u16, rest: &[u16]) -> TlsSummary {
        let mut list = vec![0x1602];
        list.extend_from_slice(rest);
        let mut t = items(&list);
        t.hello.flags = hf::SERVER_HELLO | flags;
        t.hello.legacy_version = 0x0303;
        t.hello.selected_version = if version == 0x0304 { version } else { 0 };
        t.hello.cipher_suite = 0xc02f;
        t.hello.session_id[..sid.len()].copy_from_slice(sid);
        t.hello.session_id_len = u8::try_from(sid.len()).unwrap();
        t
    }

    /// A connection from port `cport`: ClientHello, the server's flight,
    /// the client's CCS, the server's CCS (TLS ≤ 1.2 flights).
    struct Conn12<'a> {
        t: &'a mut Tracker,
        cport: u16,
        ms: u64,
    }

    impl Conn12<'_> {
        fn c(&self) -> (u8, u16) {
            (CLIENT.0, self.cport)
        }
        fn client(&mut self, s: &TlsSummary) {
            self.ms += 1;
            let h = hdr(self.c(), SERVER, Direction::EGRESS, self.ms, TCP_ACK);
            self.t.on_tls(&h, s);
        }
        fn server(&mut self, s: &TlsSummary) {
            self.ms += 1;
            let h = hdr(SERVER, self.c(), Direction::INGRESS, self.ms, TCP_ACK);
            self.t.on_tls(&h, s);
        }
        fn close(&mut self, from_client: bool, flags: u8) {
            self.ms += 1;
            let h = if from_client {
                hdr(self.c(), SERVER, Direction::EGRESS, self.ms, flags)
            } else {
                hdr(SERVER, self.c(), Direction::INGRESS, self.ms, flags)
            };
            self.t.on_teardown(&h);
        }
    }

    fn conn(t: &mut Tracker, cport: u16) -> Conn12<'_> {
        Conn12 {
            t,
            cport,
            ms: u64::from(cport) * 10,
        }
    }

    fn full12(t: &mut Tracker, cport: u16, offer_sid: &[u8], issued: &[u8]) {
        let mut c = conn(t, cport);
        c.client(&ch(offer_sid, 0, 0));
        c.server(&sh(issued, 0x0303, 0, &[CERT, SHD]));
        c.client(&items(&[0x1610, CCS, FIN_MSG]));
        c.server(&items(&[CCS, FIN_MSG]));
    }

    fn stats(t: &Tracker) -> ServerStats {
        t.servers()[0].clone()
    }

    #[test]
    fn tls12_full_then_session_id_resumption() {
        let mut t = Tracker::new(Limits::default());
        full12(&mut t, 1000, &[], &[7; 32]);
        let mut c = conn(&mut t, 1001);
        c.client(&ch(&[7; 32], 0, 0));
        c.server(&sh(&[7; 32], 0x0303, 0, &[CCS, FIN_MSG]));
        let s = stats(&t);
        assert_eq!(
            (s.full, s.resumed),
            (1, 0),
            "resumed counted before the client's CCS"
        );
        let mut c = conn(&mut t, 1001);
        c.ms = 20_000;
        c.client(&items(&[CCS, FIN_MSG]));
        let s = stats(&t);
        assert_eq!((s.full, s.resumed, s.offered, s.rejected), (1, 1, 1, 0));
        assert_eq!(
            s.resumed_by,
            ByMethod {
                session_id: 1,
                ticket: 0,
                psk: 0
            }
        );
        assert_eq!(s.role, Role::Backend);
        assert_eq!(s.versions.get("TLSv1.2"), Some(&2));
    }

    #[test]
    fn rejection_after_unclean_close_is_attributed() {
        let mut t = Tracker::new(Limits::default());
        full12(&mut t, 1000, &[], &[7; 32]);
        // The client (this proxy) resets without close_notify.
        conn(&mut t, 1000).close(true, TCP_RST | TCP_ACK);
        full12(&mut t, 1001, &[7; 32], &[8; 32]);
        let s = stats(&t);
        assert_eq!((s.full, s.offered, s.rejected), (2, 1, 1));
        assert_eq!((s.rejected_after_unclean, s.rejected_after_clean), (1, 0));
        assert_eq!(
            (s.unclean_closes, s.clean_closes, s.rst_by_client),
            (1, 0, 1)
        );
    }

    #[test]
    fn rejection_after_clean_close_is_attributed() {
        let mut t = Tracker::new(Limits::default());
        full12(&mut t, 1000, &[], &[7; 32]);
        let mut c = conn(&mut t, 1000);
        c.ms = 50_000;
        c.client(&items(&[ENC_ALERT]));
        c.close(true, TCP_FIN | TCP_ACK);
        full12(&mut t, 1001, &[7; 32], &[8; 32]);
        let s = stats(&t);
        assert_eq!(
            (s.rejected, s.rejected_after_unclean, s.rejected_after_clean),
            (1, 0, 1)
        );
        assert_eq!((s.unclean_closes, s.clean_closes), (0, 1));
    }

    #[test]
    fn ticket_resumption_with_empty_session_id_is_told_by_shape() {
        let mut t = Tracker::new(Limits::default());
        let mut c = conn(&mut t, 1000);
        c.client(&ch(&[], hf::TICKET_EXT | hf::TICKET_OFFERED, 5));
        c.server(&sh(&[], 0x0303, 0, &[]));
        // CCS arrives in the server's next segment.
        c.server(&items(&[CCS, FIN_MSG]));
        c.client(&items(&[CCS, FIN_MSG]));
        let s = stats(&t);
        assert_eq!((s.full, s.resumed, s.offered, s.rejected), (0, 1, 1, 0));
        assert_eq!(s.resumed_by.ticket, 1);
        assert_eq!(s.offered_by.ticket, 1);
    }

    #[test]
    fn renewed_ticket_is_not_a_rejection() {
        let mut t = Tracker::new(Limits::default());
        let mut c = conn(&mut t, 1000);
        c.client(&ch(&[3; 32], hf::TICKET_EXT | hf::TICKET_OFFERED, 5));
        let mut flight = sh(&[9; 32], 0x0303, hf::TICKET_EXT, &[NST, CCS, FIN_MSG]);
        flight.hello.flags |= hf::NEW_TICKET;
        c.server(&flight);
        c.client(&items(&[CCS, FIN_MSG]));
        let s = stats(&t);
        assert_eq!((s.full, s.resumed, s.rejected), (0, 1, 0));
        assert_eq!(s.resumed_by.ticket, 1);
    }

    #[test]
    fn tls13_compat_session_id_is_not_an_offer() {
        let mut t = Tracker::new(Limits::default());
        let mut c = conn(&mut t, 1000);
        c.client(&ch(&[4; 32], hf::OFFERS_TLS13, 0));
        // TLS 1.3 servers echo legacy_session_id (RFC 8446 §4.1.3).
        c.server(&sh(&[4; 32], 0x0304, 0, &[CCS, 0x17ff]));
        let s = stats(&t);
        assert_eq!((s.full, s.resumed, s.offered), (1, 0, 0));
        assert_eq!(s.versions.get("TLSv1.3"), Some(&1));
    }

    #[test]
    fn tls13_psk_accepted_and_rejected() {
        let mut t = Tracker::new(Limits::default());
        let mut c = conn(&mut t, 1000);
        c.client(&ch(
            &[4; 32],
            hf::OFFERS_TLS13 | hf::PSK | hf::EARLY_DATA,
            0,
        ));
        c.server(&sh(&[4; 32], 0x0304, hf::PSK, &[]));
        let mut c = conn(&mut t, 1001);
        c.client(&ch(&[4; 32], hf::OFFERS_TLS13 | hf::PSK, 0));
        c.server(&sh(&[4; 32], 0x0304, 0, &[]));
        let s = stats(&t);
        assert_eq!((s.full, s.resumed, s.offered, s.rejected), (1, 1, 2, 1));
        assert_eq!(s.resumed_by.psk, 1);
        assert_eq!(s.early_data_offered, 1);
        // A TLS 1.3 ticket's origin is encrypted: not blamed on a close.
        assert_eq!(s.rejected_origin_unknown, 1);
    }

    #[test]
    fn resumption_implies_an_offer_even_when_the_hello_was_cut() {
        let mut t = Tracker::new(Limits::default());
        let mut c = conn(&mut t, 1000);
        // The segment ended before pre_shared_key: no PSK flag seen.
        c.client(&ch(&[4; 32], hf::OFFERS_TLS13 | hf::TRUNCATED, 0));
        c.server(&sh(&[4; 32], 0x0304, hf::PSK, &[]));
        let s = stats(&t);
        assert_eq!(
            (s.resumed, s.offered, s.offered_by.psk, s.rejected),
            (1, 1, 1, 0)
        );
        assert_eq!(t.totals.truncated_hellos, 1);
    }

    #[test]
    fn hello_retry_request_is_counted_and_classified_from_second_server_hello() {
        let mut t = Tracker::new(Limits::default());
        let mut c = conn(&mut t, 1000);
        c.client(&ch(&[4; 32], hf::OFFERS_TLS13, 0));
        c.server(&sh(&[4; 32], 0x0304, hf::HRR, &[CCS]));
        c.client(&ch(&[4; 32], hf::OFFERS_TLS13, 0));
        let ms = c.ms;
        let s = stats(&t);
        assert_eq!((s.hrr, s.full), (1, 0));
        let mut c = conn(&mut t, 1000);
        c.ms = ms;
        c.server(&sh(&[4; 32], 0x0304, 0, &[]));
        let s = stats(&t);
        assert_eq!((s.hrr, s.full, s.resumed), (1, 1, 0));
    }

    #[test]
    fn incomplete_and_failed_handshakes() {
        let mut t = Tracker::new(Limits::default());
        // No ServerHello before the timeout.
        conn(&mut t, 1000).client(&ch(&[], 0, 0));
        t.tick(1000 * 10 * 1_000_000 + Limits::default().handshake_timeout_ns + 10_000_000);
        // FIN before the ServerHello.
        let mut c = conn(&mut t, 2000);
        c.client(&ch(&[], 0, 0));
        c.close(true, TCP_FIN);
        // A plaintext handshake_failure alert (40) from the server.
        let mut c = conn(&mut t, 3000);
        c.client(&ch(&[], 0, 0));
        c.server(&items(&[0x1528]));
        // RST in the middle of a TLS 1.2 handshake.
        let mut c = conn(&mut t, 4000);
        c.client(&ch(&[], 0, 0));
        c.server(&sh(&[1; 32], 0x0303, 0, &[CERT]));
        c.close(false, TCP_RST);
        let s = stats(&t);
        assert_eq!((s.incomplete, s.failed, s.full, s.resumed), (2, 2, 0, 0));
        assert_eq!(s.rst_by_server, 1);
    }

    #[test]
    fn frontend_role_and_untracked_events() {
        let mut t = Tracker::new(Limits::default());
        let h = hdr(CLIENT, SERVER, Direction::INGRESS, 1, TCP_ACK);
        t.on_tls(&h, &ch(&[], 0, 0));
        assert_eq!(t.servers()[0].role, Role::Frontend);
        let stray = hdr((9, 1), (9, 2), Direction::INGRESS, 2, TCP_RST);
        t.on_teardown(&stray);
        assert_eq!(t.totals.untracked_events, 1);
    }

    #[test]
    fn malformed_hello_is_not_a_handshake() {
        let mut t = Tracker::new(Limits::default());
        let mut bad = ch(&[], 0, 0);
        bad.hello.flags |= hf::MALFORMED;
        t.on_tls(&hdr(CLIENT, SERVER, Direction::EGRESS, 1, TCP_ACK), &bad);
        assert!(t.servers().is_empty());
        assert_eq!(t.totals.malformed_hellos, 1);
    }

    #[test]
    fn connection_table_is_bounded_and_evictions_counted() {
        let mut t = Tracker::new(Limits {
            max_connections: 2,
            ..Limits::default()
        });
        for port in [1000, 1001, 1002] {
            conn(&mut t, port).client(&ch(&[], 0, 0));
        }
        assert_eq!(t.connections(), 2);
        assert_eq!(t.totals.evicted_flows, 1);
    }

    #[test]
    fn closed_connections_are_forgotten_after_linger() {
        let mut t = Tracker::new(Limits::default());
        full12(&mut t, 1000, &[], &[7; 32]);
        conn(&mut t, 1000).close(true, TCP_FIN);
        assert_eq!(t.connections(), 1);
        t.tick(u64::MAX / 2);
        assert_eq!(t.connections(), 0);
    }
}
