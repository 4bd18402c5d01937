//! The dashboard's state: the one owner of everything the screen shows.
//!
//! [`App::handle`] is a pure state transition (events and a clock in, no
//! I/O), so the live loop, the tests and the rendering snapshots all drive
//! it the same way. Time only enters through [`AppEvent::Tick`].

use std::collections::{HashMap, VecDeque};

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use monitor_common::event::Decoded;

use crate::{
    names::Names,
    stats::{Endpoint, KernelStats, Role, ServerStats, Totals},
    tracker::{Limits, Tracker},
};

/// Seconds of per-server history kept for the sparklines.
pub const HISTORY_SECS: usize = 300;

const NS_PER_SEC: u64 = 1_000_000_000;

#[derive(Clone, Debug)]
pub enum AppEvent {
    Key(KeyEvent),
    /// Time passed: `now_ns` is `CLOCK_MONOTONIC` (the events' clock).
    Tick {
        now_ns: u64,
        kernel: KernelStats,
    },
    /// An event from the kernel program, in ring-buffer order.
    Kernel(Decoded),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Continue,
    Quit,
}

/// Columns the table can be sorted by; `s` cycles in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortColumn {
    Full,
    Rate,
    Resumed,
    Reuse,
    Offered,
    Rejected,
    RejectedUnclean,
    Server,
}

impl SortColumn {
    const ALL: [Self; 8] = [
        Self::Full,
        Self::Rate,
        Self::Resumed,
        Self::Reuse,
        Self::Offered,
        Self::Rejected,
        Self::RejectedUnclean,
        Self::Server,
    ];

    #[must_use]
    pub fn next(self) -> Self {
        let i = Self::ALL.iter().position(|c| *c == self).unwrap_or(0);
        Self::ALL[(i + 1) % Self::ALL.len()]
    }

    /// Numbers sort largest first, addresses A to Z.
    #[must_use]
    pub const fn default_descending(self) -> bool {
        !matches!(self, Self::Server)
    }

    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Rate => "hs/s",
            Self::Resumed => "resumed",
            Self::Reuse => "reuse %",
            Self::Offered => "offered",
            Self::Rejected => "rejected",
            Self::RejectedUnclean => "rej-unclean",
            Self::Server => "server",
        }
    }
}

/// Full and resumed handshakes per second, the last [`HISTORY_SECS`].
#[derive(Clone, Debug, Default)]
pub struct History {
    /// (full, resumed), oldest first; the last one is the current second.
    buckets: VecDeque<(u64, u64)>,
    last_sec: Option<u64>,
}

impl History {
    /// Adds counts to second `sec` (since the dashboard started), opening
    /// empty seconds for any skipped.
    fn add(&mut self, sec: u64, full: u64, resumed: u64) {
        let open = match self.last_sec {
            None => 1,
            Some(last) if sec > last => usize::try_from(sec - last)
                .unwrap_or(HISTORY_SECS)
                .min(HISTORY_SECS),
            // Same second, or a clock that went back: keep adding here.
            Some(_) => 0,
        };
        for _ in 0..open {
            self.buckets.push_back((0, 0));
        }
        if open > 0 || self.last_sec.is_none() {
            self.last_sec = Some(sec);
        }
        while self.buckets.len() > HISTORY_SECS {
            self.buckets.pop_front();
        }
        if let Some(b) = self.buckets.back_mut() {
            b.0 += full;
            b.1 += resumed;
        }
    }

    /// Full handshakes per second, oldest first.
    #[must_use]
    pub fn full(&self) -> Vec<u64> {
        self.buckets.iter().map(|b| b.0).collect()
    }

    /// Resumed handshakes per second, oldest first.
    #[must_use]
    pub fn resumed(&self) -> Vec<u64> {
        self.buckets.iter().map(|b| b.1).collect()
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

/// What is computed on each tick from the tracker's cumulative counters.
#[derive(Clone, Debug, Default)]
struct Derived {
    now_ns: u64,
    kernel: KernelStats,
    /// Handshakes per second over the last tick window, all servers.
    rate: f64,
    rates: HashMap<Endpoint, f64>,
    history: HashMap<Endpoint, History>,
}

/// The screen's content at the moment `p` was pressed.
#[derive(Clone, Debug)]
struct Frozen {
    derived: Derived,
    servers: Vec<ServerStats>,
    totals: Totals,
}

/// One line of the server table.
#[derive(Clone, Copy, Debug)]
pub struct Row<'a> {
    pub stats: &'a ServerStats,
    pub name: Option<&'a str>,
    /// Handshakes per second over the last tick window.
    pub rate: f64,
}

impl Row<'_> {
    /// Resumed share of completed handshakes (%), `None` before any.
    #[must_use]
    pub fn reuse_pct(&self) -> Option<f64> {
        share(self.stats.resumed, self.stats.handshakes())
    }

    /// Versions and their counts, by version name.
    #[must_use]
    pub fn versions(&self) -> Vec<(&'static str, u64)> {
        let mut v: Vec<_> = self.stats.versions.iter().map(|(k, c)| (*k, *c)).collect();
        v.sort_unstable();
        v
    }

    /// Whether the filter text (lower case) matches the address, name or role.
    fn matches(&self, needle: &str) -> bool {
        needle.is_empty()
            || self.stats.server.to_string().contains(needle)
            || self.name.is_some_and(|n| n.to_lowercase().contains(needle))
            || self.stats.role.as_str().contains(needle)
    }
}

/// `n` of `d` in percent; `None` when `d` is 0.
#[must_use]
pub fn share(n: u64, d: u64) -> Option<f64> {
    #[expect(
        clippy::cast_precision_loss,
        reason = "a percentage needs no 53-bit precision"
    )]
    (d > 0).then(|| n as f64 * 100.0 / d as f64)
}

/// Handshake counts over all servers, for the header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub servers: usize,
    pub full: u64,
    pub resumed: u64,
    pub offered: u64,
    pub rejected: u64,
    pub rejected_after_unclean: u64,
}

pub struct App {
    tracker: Tracker,
    interfaces: Vec<String>,
    names: Names,
    started_ns: u64,
    last_tick_ns: u64,
    /// Cumulative (full, resumed) per server at the last tick.
    last_counts: HashMap<Endpoint, (u64, u64)>,
    live: Derived,
    /// While paused the display shows this copy. Events keep going into
    /// the tracker (and ticks into the history) so nothing is lost and the
    /// numbers are right again the moment the pause ends; only the screen
    /// stands still, so a line can be read or copied.
    frozen: Option<Box<Frozen>>,
    sort: SortColumn,
    descending: bool,
    /// The selected server, followed across re-sorting...
    selected: Option<Endpoint>,
    /// ...and its last row index, for when it goes away.
    selected_pos: usize,
    /// Applied filter, lower case.
    filter: String,
    /// The filter being typed, while the prompt is open.
    prompt: Option<String>,
    help: bool,
}

impl App {
    #[must_use]
    pub fn new(interfaces: Vec<String>, names: Names, limits: Limits, now_ns: u64) -> Self {
        Self {
            tracker: Tracker::new(limits),
            interfaces,
            names,
            started_ns: now_ns,
            last_tick_ns: now_ns,
            last_counts: HashMap::new(),
            live: Derived {
                now_ns,
                ..Derived::default()
            },
            frozen: None,
            sort: SortColumn::Full,
            descending: SortColumn::Full.default_descending(),
            selected: None,
            selected_pos: 0,
            filter: String::new(),
            prompt: None,
            help: false,
        }
    }

    /// Applies one event. No I/O; the caller redraws afterwards.
    pub fn handle(&mut self, ev: AppEvent) -> Control {
        match ev {
            AppEvent::Key(key) => {
                if self.key(key) == Control::Quit {
                    return Control::Quit;
                }
                self.follow_selection();
            }
            AppEvent::Tick { now_ns, kernel } => {
                self.tick(now_ns, kernel);
                self.follow_selection();
            }
            // Hot path: no row building here. The selection is kept by
            // server, so new events cannot invalidate it.
            AppEvent::Kernel(d) => self.tracker.on_event(d),
        }
        Control::Continue
    }

    #[must_use]
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// The server rows as the table shows them: filtered, grouped by role
    /// (backends first), sorted within each group.
    #[must_use]
    pub fn rows(&self) -> Vec<Row<'_>> {
        let d = self.derived();
        let needle = self.filter.as_str();
        let mut rows: Vec<Row<'_>> = self
            .servers()
            .into_iter()
            .map(|stats| Row {
                stats,
                name: self.names.lookup(&stats.server, stats.role),
                rate: d.rates.get(&stats.server).copied().unwrap_or(0.0),
            })
            .filter(|r| r.matches(needle))
            .collect();
        let (col, desc) = (self.sort, self.descending);
        rows.sort_by(|a, b| {
            let key = match col {
                SortColumn::Full => a.stats.full.cmp(&b.stats.full),
                SortColumn::Rate => a.rate.total_cmp(&b.rate),
                SortColumn::Resumed => a.stats.resumed.cmp(&b.stats.resumed),
                SortColumn::Reuse => a
                    .reuse_pct()
                    .unwrap_or(-1.0)
                    .total_cmp(&b.reuse_pct().unwrap_or(-1.0)),
                SortColumn::Offered => a.stats.offered.cmp(&b.stats.offered),
                SortColumn::Rejected => a.stats.rejected.cmp(&b.stats.rejected),
                SortColumn::RejectedUnclean => a
                    .stats
                    .rejected_after_unclean
                    .cmp(&b.stats.rejected_after_unclean),
                SortColumn::Server => a.stats.server.cmp(&b.stats.server),
            };
            let key = if desc { key.reverse() } else { key };
            a.stats
                .role
                .cmp(&b.stats.role)
                .then(key)
                .then(a.stats.server.cmp(&b.stats.server))
        });
        rows
    }

    /// Index of the selected row in [`Self::rows`], `None` when empty.
    #[must_use]
    pub fn selected_index(&self) -> Option<usize> {
        self.resolve(&self.rows())
    }

    /// The selected row, `None` when the table is empty.
    #[must_use]
    pub fn selected_row(&self) -> Option<Row<'_>> {
        let rows = self.rows();
        self.resolve(&rows).map(|i| rows[i])
    }

    /// History of the selected server (or any), as displayed.
    #[must_use]
    pub fn history(&self, server: &Endpoint) -> Option<&History> {
        self.derived().history.get(server)
    }

    #[must_use]
    pub fn interfaces(&self) -> &[String] {
        &self.interfaces
    }

    #[must_use]
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// Time since the dashboard started, as of the displayed tick.
    #[must_use]
    pub fn uptime_ns(&self) -> u64 {
        self.derived().now_ns.saturating_sub(self.started_ns)
    }

    /// Handshakes per second over the last tick window, all servers.
    #[must_use]
    pub fn handshake_rate(&self) -> f64 {
        self.derived().rate
    }

    #[must_use]
    pub fn kernel(&self) -> KernelStats {
        self.derived().kernel
    }

    /// The tracker's totals as displayed (frozen while paused).
    #[must_use]
    pub fn totals(&self) -> Totals {
        self.frozen
            .as_ref()
            .map_or(self.tracker.totals, |f| f.totals)
    }

    /// Counts over all servers (unfiltered) as displayed.
    #[must_use]
    pub fn summary(&self) -> Summary {
        let servers = self.servers();
        let mut s = Summary {
            servers: servers.len(),
            ..Summary::default()
        };
        for v in servers {
            s.full += v.full;
            s.resumed += v.resumed;
            s.offered += v.offered;
            s.rejected += v.rejected;
            s.rejected_after_unclean += v.rejected_after_unclean;
        }
        s
    }

    #[must_use]
    pub fn paused(&self) -> bool {
        self.frozen.is_some()
    }

    #[must_use]
    pub fn help_shown(&self) -> bool {
        self.help
    }

    /// The applied filter (lower case), empty for none.
    #[must_use]
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// The text being typed while the filter prompt is open.
    #[must_use]
    pub fn filter_prompt(&self) -> Option<&str> {
        self.prompt.as_deref()
    }

    /// Sort column and whether it is descending.
    #[must_use]
    pub fn sort(&self) -> (SortColumn, bool) {
        (self.sort, self.descending)
    }

    fn derived(&self) -> &Derived {
        self.frozen.as_ref().map_or(&self.live, |f| &f.derived)
    }

    fn servers(&self) -> Vec<&ServerStats> {
        match &self.frozen {
            Some(f) => f.servers.iter().collect(),
            None => self.tracker.servers(),
        }
    }

    fn resolve(&self, rows: &[Row<'_>]) -> Option<usize> {
        if rows.is_empty() {
            return None;
        }
        self.selected
            .and_then(|sel| rows.iter().position(|r| r.stats.server == sel))
            .or(Some(self.selected_pos.min(rows.len() - 1)))
    }

    /// Keeps the selection on an existing row: the same server if it is
    /// still shown, else the row now at its place (clamped).
    fn follow_selection(&mut self) {
        let rows = self.rows();
        let idx = self.resolve(&rows);
        let sel = idx.map(|i| rows[i].stats.server);
        let pos = idx.unwrap_or(0);
        self.selected = sel;
        self.selected_pos = pos;
    }

    fn move_selection(&mut self, delta: isize) {
        let rows = self.rows();
        let Some(cur) = self.resolve(&rows) else {
            return;
        };
        let last = rows.len() - 1;
        let next = cur.saturating_add_signed(delta).min(last);
        self.selected = Some(rows[next].stats.server);
        self.selected_pos = next;
    }

    fn key(&mut self, key: KeyEvent) -> Control {
        if key.kind == KeyEventKind::Release {
            return Control::Continue;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            return Control::Quit;
        }
        if let Some(draft) = &mut self.prompt {
            match key.code {
                KeyCode::Enter => {
                    self.filter = draft.trim().to_lowercase();
                    self.prompt = None;
                }
                KeyCode::Esc => {
                    self.filter.clear();
                    self.prompt = None;
                }
                KeyCode::Backspace => {
                    draft.pop();
                }
                KeyCode::Char('u') if ctrl => draft.clear(),
                KeyCode::Char(c) if !ctrl => draft.push(c),
                _ => {}
            }
            return Control::Continue;
        }
        match key.code {
            KeyCode::Char('q') => return Control::Quit,
            KeyCode::Char('p') => self.toggle_pause(),
            KeyCode::Char('r') => self.reset(),
            KeyCode::Char('s') if !key.modifiers.contains(KeyModifiers::SHIFT) => {
                self.sort = self.sort.next();
                self.descending = self.sort.default_descending();
            }
            KeyCode::Char('S' | 's') => self.descending = !self.descending,
            KeyCode::Down | KeyCode::Char('j') => self.move_selection(1),
            KeyCode::Up | KeyCode::Char('k') => self.move_selection(-1),
            KeyCode::PageDown => self.move_selection(10),
            KeyCode::PageUp => self.move_selection(-10),
            KeyCode::Home | KeyCode::Char('g') => self.move_selection(isize::MIN),
            KeyCode::End | KeyCode::Char('G') => self.move_selection(isize::MAX),
            KeyCode::Char('/') => self.prompt = Some(self.filter.clone()),
            KeyCode::Char('?') => self.help = !self.help,
            KeyCode::Esc => {
                if self.help {
                    self.help = false;
                } else {
                    self.filter.clear();
                }
            }
            _ => {}
        }
        Control::Continue
    }

    fn toggle_pause(&mut self) {
        self.frozen = match self.frozen {
            Some(_) => None,
            None => Some(Box::new(self.snapshot())),
        };
    }

    fn snapshot(&self) -> Frozen {
        Frozen {
            derived: self.live.clone(),
            servers: self.tracker.servers().into_iter().cloned().collect(),
            totals: self.tracker.totals,
        }
    }

    /// `r`: counters and history start over; connections in flight and
    /// the sessions the tracker remembers stay, so resumption is still
    /// attributed right after a reset.
    fn reset(&mut self) {
        self.tracker.reset_counters();
        self.last_counts.clear();
        self.live.rate = 0.0;
        self.live.rates.clear();
        self.live.history.clear();
        if self.frozen.is_some() {
            self.frozen = Some(Box::new(self.snapshot()));
        }
    }

    fn tick(&mut self, now_ns: u64, kernel: KernelStats) {
        self.tracker.tick(now_ns);
        let sec = now_ns.saturating_sub(self.started_ns) / NS_PER_SEC;
        let dt_ns = now_ns.saturating_sub(self.last_tick_ns);
        #[expect(clippy::cast_precision_loss, reason = "seconds as a float for a rate")]
        let dt = dt_ns as f64 / 1e9;
        let mut total = 0;
        let mut rates = HashMap::new();
        for s in self.tracker.servers() {
            let (full, resumed) = (s.full, s.resumed);
            let (lf, lr) = self
                .last_counts
                .insert(s.server, (full, resumed))
                .unwrap_or((0, 0));
            let (df, dr) = (full.saturating_sub(lf), resumed.saturating_sub(lr));
            total += df + dr;
            self.live
                .history
                .entry(s.server)
                .or_default()
                .add(sec, df, dr);
            if dt_ns > 0 {
                #[expect(clippy::cast_precision_loss, reason = "a rate")]
                rates.insert(s.server, (df + dr) as f64 / dt);
            }
        }
        if dt_ns > 0 {
            #[expect(clippy::cast_precision_loss, reason = "a rate")]
            let rate = total as f64 / dt;
            self.live.rate = rate;
            self.live.rates = rates;
            self.last_tick_ns = now_ns;
        }
        self.live.now_ns = now_ns.max(self.live.now_ns);
        self.live.kernel = kernel;
    }
}

/// Role of a row as the table shows it.
#[must_use]
pub const fn role_label(role: Role) -> &'static str {
    match role {
        Role::Backend => "back",
        Role::Frontend => "front",
        Role::Unknown => "?",
    }
}

/// Synthetic wire events for the tests: TLS 1.2 and 1.3 handshakes as the
/// kernel program would report them, between a proxy, its backends and its
/// clients.
#[cfg(test)]
pub(crate) mod sim {
    use std::net::Ipv4Addr;

    use monitor_common::{
        event::{Decoded, Direction, EventHeader, EventKind, TlsSummary, hello_flags},
        net::{TCP_ACK, TCP_FIN, TCP_RST},
        tls::{ContentType, HandshakeType, ProtocolVersion},
    };

    use super::{App, AppEvent};
    use crate::{
        names::Names,
        stats::{KernelStats, Role, ServerStats},
        tracker::{Limits, Tracker},
    };

    pub const PROXY: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);
    pub const T0: u64 = 1_000 * 1_000_000_000;
    const MS: u64 = 1_000_000;

    const HS: u8 = ContentType::HANDSHAKE.0;
    const CCS: u8 = ContentType::CHANGE_CIPHER_SPEC.0;
    const ALERT: u8 = ContentType::ALERT.0;
    const APP: u8 = ContentType::APPLICATION_DATA.0;
    const OPAQUE: u8 = monitor_common::event::ITEM_OPAQUE;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Close {
        /// The client resets without `close_notify` (what `HAProxy` does).
        Rst,
        /// `close_notify`, then FIN.
        Clean,
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Offer {
        None,
        SessionId([u8; 32]),
        Ticket([u8; 16]),
    }

    /// One TLS ≤ 1.2 handshake.
    #[derive(Clone, Copy, Debug)]
    pub struct Tls12 {
        pub role: Role,
        pub client: (Ipv4Addr, u16),
        pub server: (Ipv4Addr, u16),
        pub offer: Offer,
        pub accept: bool,
        /// The server sends a `NewSessionTicket`.
        pub tickets: bool,
        pub close: Close,
        pub sni: &'static str,
        pub alpn: &'static str,
        /// `ClientHello` to `ServerHello`.
        pub rtt_ns: u64,
    }

    /// One TLS 1.3 handshake.
    #[derive(Clone, Copy, Debug)]
    pub struct Tls13 {
        pub role: Role,
        pub client: (Ipv4Addr, u16),
        pub server: (Ipv4Addr, u16),
        pub psk: bool,
        pub accept: bool,
        pub hrr: bool,
        pub sni: &'static str,
        pub alpn: &'static str,
        pub rtt_ns: u64,
    }

    /// Builds events with increasing timestamps.
    #[derive(Debug, Default)]
    pub struct Sim {
        pub events: Vec<AppEvent>,
        next_sid: u32,
    }

    fn header(
        role: Role,
        from_client: bool,
        client: (Ipv4Addr, u16),
        server: (Ipv4Addr, u16),
        ts: u64,
        flags: u8,
    ) -> EventHeader {
        // Backends: this host is the client, so its packets leave (egress).
        let client_dir = match role {
            Role::Backend => Direction::EGRESS,
            Role::Frontend => Direction::INGRESS,
            Role::Unknown => Direction::UNKNOWN,
        };
        let direction = match (from_client, client_dir) {
            (true, d) | (false, d @ Direction::UNKNOWN) => d,
            (false, Direction::EGRESS) => Direction::INGRESS,
            (false, _) => Direction::EGRESS,
        };
        let (src, dst) = if from_client {
            (client, server)
        } else {
            (server, client)
        };
        let mut src_addr = [0; 16];
        src_addr[..4].copy_from_slice(&src.0.octets());
        let mut dst_addr = [0; 16];
        dst_addr[..4].copy_from_slice(&dst.0.octets());
        EventHeader {
            kind: EventKind::TLS.0,
            direction: direction.0,
            family: 4,
            tcp_flags: flags | TCP_ACK,
            src_port: src.1,
            dst_port: dst.1,
            ts_ns: ts,
            src_addr,
            dst_addr,
            ..EventHeader::default()
        }
    }

    fn summary(items: &[(u8, u8)]) -> TlsSummary {
        let mut t = TlsSummary::default();
        for &(ct, d) in items {
            t.push(ct, d);
        }
        t
    }

    fn set_name(buf: &mut [u8], len: &mut u8, s: &str) {
        let n = s.len().min(buf.len());
        buf[..n].copy_from_slice(&s.as_bytes()[..n]);
        *len = u8::try_from(n).unwrap();
    }

    fn client_hello(
        flags: u16,
        sid: Option<[u8; 32]>,
        ticket: Option<[u8; 16]>,
        sni: &str,
        alpn: &str,
    ) -> TlsSummary {
        let mut t = summary(&[(HS, HandshakeType::CLIENT_HELLO.0)]);
        t.hello.flags = hello_flags::CLIENT_HELLO | flags;
        t.hello.legacy_version = ProtocolVersion::TLS1_2.0;
        if let Some(sid) = sid {
            t.hello.session_id = sid;
            t.hello.session_id_len = 32;
        }
        if let Some(tid) = ticket {
            t.hello.flags |= hello_flags::TICKET_OFFERED;
            t.hello.ticket_id = tid;
        }
        set_name(&mut t.hello.sni, &mut t.hello.sni_len, sni);
        set_name(&mut t.hello.alpn, &mut t.hello.alpn_len, alpn);
        t
    }

    impl Sim {
        fn fresh_id(&mut self) -> [u8; 32] {
            self.next_sid += 1;
            let mut id = [0x5a; 32];
            id[..4].copy_from_slice(&self.next_sid.to_be_bytes());
            id
        }

        fn push(&mut self, h: EventHeader, t: TlsSummary) {
            self.events.push(AppEvent::Kernel(Decoded::Tls(h, t)));
        }

        /// Events of one TLS ≤ 1.2 connection starting at `t`; returns what
        /// the client could offer next time (the session ID or ticket the
        /// server issued, or the one it resumed).
        pub fn tls12(&mut self, c: &Tls12, t: u64) -> Offer {
            let h =
                |from_client, ts, flags| header(c.role, from_client, c.client, c.server, ts, flags);
            let (sid, ticket) = match c.offer {
                Offer::None => (None, None),
                Offer::SessionId(s) => (Some(s), None),
                // RFC 5077 §3.4: a client offering a ticket sends some session ID.
                Offer::Ticket(tid) => (Some(self.fresh_id()), Some(tid)),
            };
            let flags = if c.tickets {
                hello_flags::TICKET_EXT
            } else {
                0
            };
            self.push(
                h(true, t, 0),
                client_hello(flags, sid, ticket, c.sni, c.alpn),
            );
            let resumed = c.accept && c.offer != Offer::None;
            let mut sh = if resumed {
                summary(&[(HS, HandshakeType::SERVER_HELLO.0), (CCS, 1), (HS, OPAQUE)])
            } else {
                summary(&[
                    (HS, HandshakeType::SERVER_HELLO.0),
                    (HS, HandshakeType::CERTIFICATE.0),
                    (HS, HandshakeType::SERVER_KEY_EXCHANGE.0),
                    (HS, HandshakeType::SERVER_HELLO_DONE.0),
                ])
            };
            sh.hello.flags = hello_flags::SERVER_HELLO;
            if c.tickets {
                sh.hello.flags |= hello_flags::TICKET_EXT;
            }
            sh.hello.legacy_version = ProtocolVersion::TLS1_2.0;
            sh.hello.cipher_suite = 0xc02f;
            let new_sid = self.fresh_id();
            sh.hello.session_id_len = 32;
            sh.hello.session_id = match (resumed, sid) {
                (true, Some(s)) => s,
                _ => new_sid,
            };
            let t_sh = t + c.rtt_ns;
            self.push(h(false, t_sh, 0), sh);
            let client_fin = if resumed {
                summary(&[(CCS, 1), (HS, OPAQUE)])
            } else {
                summary(&[
                    (HS, HandshakeType::CLIENT_KEY_EXCHANGE.0),
                    (CCS, 1),
                    (HS, OPAQUE),
                ])
            };
            self.push(h(true, t_sh + MS / 5, 0), client_fin);
            let mut next = if resumed {
                c.offer
            } else {
                Offer::SessionId(new_sid)
            };
            if !resumed {
                let mut fin = if c.tickets {
                    summary(&[
                        (HS, HandshakeType::NEW_SESSION_TICKET.0),
                        (CCS, 1),
                        (HS, OPAQUE),
                    ])
                } else {
                    summary(&[(CCS, 1), (HS, OPAQUE)])
                };
                if c.tickets {
                    let tid: [u8; 16] = self.fresh_id()[..16].try_into().unwrap();
                    fin.hello.flags = hello_flags::NEW_TICKET;
                    fin.hello.ticket_id = tid;
                    next = Offer::Ticket(tid);
                }
                self.push(h(false, t_sh + MS / 2, 0), fin);
            }
            // A request and its response.
            self.push(h(true, t_sh + MS, 0), summary(&[(APP, OPAQUE)]));
            self.push(h(false, t_sh + 2 * MS, 0), summary(&[(APP, OPAQUE)]));
            self.close(c.role, c.client, c.server, c.close, t_sh + 3 * MS);
            next
        }

        /// Events of one TLS 1.3 connection starting at `t`.
        pub fn tls13(&mut self, c: &Tls13, t: u64) {
            let h =
                |from_client, ts, flags| header(c.role, from_client, c.client, c.server, ts, flags);
            let flags = hello_flags::OFFERS_TLS13 | if c.psk { hello_flags::PSK } else { 0 };
            // Middlebox compatibility: a random legacy session ID.
            let compat = self.fresh_id();
            self.push(
                h(true, t, 0),
                client_hello(flags, Some(compat), None, c.sni, c.alpn),
            );
            let mut t = t;
            if c.hrr {
                let mut hrr = summary(&[(HS, HandshakeType::SERVER_HELLO.0)]);
                hrr.hello.flags = hello_flags::SERVER_HELLO | hello_flags::HRR;
                hrr.hello.legacy_version = ProtocolVersion::TLS1_2.0;
                hrr.hello.selected_version = ProtocolVersion::TLS1_3.0;
                self.push(h(false, t + c.rtt_ns / 2, 0), hrr);
                t += c.rtt_ns / 2;
                self.push(
                    h(true, t + MS / 10, 0),
                    client_hello(flags, Some(compat), None, c.sni, c.alpn),
                );
            }
            let mut sh = summary(&[(HS, HandshakeType::SERVER_HELLO.0), (CCS, 1), (APP, OPAQUE)]);
            sh.hello.flags = hello_flags::SERVER_HELLO
                | if c.psk && c.accept {
                    hello_flags::PSK
                } else {
                    0
                };
            sh.hello.legacy_version = ProtocolVersion::TLS1_2.0;
            sh.hello.selected_version = ProtocolVersion::TLS1_3.0;
            sh.hello.cipher_suite = 0x1301;
            sh.hello.session_id = compat;
            sh.hello.session_id_len = 32;
            let t_sh = t + c.rtt_ns;
            self.push(h(false, t_sh, 0), sh);
            self.push(
                h(true, t_sh + MS / 5, 0),
                summary(&[(CCS, 1), (APP, OPAQUE)]),
            );
            self.push(h(false, t_sh + MS, 0), summary(&[(APP, OPAQUE)]));
            self.close(c.role, c.client, c.server, Close::Rst, t_sh + 2 * MS);
        }

        /// A `ClientHello` the server answers with a `handshake_failure` alert.
        pub fn failed(
            &mut self,
            role: Role,
            client: (Ipv4Addr, u16),
            server: (Ipv4Addr, u16),
            t: u64,
        ) {
            let h = |from_client, ts, flags| header(role, from_client, client, server, ts, flags);
            self.push(h(true, t, 0), client_hello(0, None, None, "", ""));
            self.push(h(false, t + MS, 0), summary(&[(ALERT, 40)]));
            self.push(h(true, t + 2 * MS, TCP_FIN), summary(&[]));
        }

        fn close(
            &mut self,
            role: Role,
            client: (Ipv4Addr, u16),
            server: (Ipv4Addr, u16),
            close: Close,
            t: u64,
        ) {
            match close {
                Close::Rst => {
                    let mut hd = header(role, true, client, server, t, TCP_RST);
                    hd.kind = EventKind::TEARDOWN.0;
                    hd.tcp_flags = TCP_RST;
                    self.events.push(AppEvent::Kernel(Decoded::Teardown(hd)));
                }
                Close::Clean => {
                    self.push(
                        header(role, true, client, server, t, TCP_FIN),
                        summary(&[(ALERT, OPAQUE)]),
                    );
                    let mut hd = header(role, false, client, server, t + MS / 10, TCP_FIN);
                    hd.kind = EventKind::TEARDOWN.0;
                    self.events.push(AppEvent::Kernel(Decoded::Teardown(hd)));
                }
            }
        }

        pub fn tick(&mut self, now_ns: u64, kernel: KernelStats) {
            self.events.push(AppEvent::Tick { now_ns, kernel });
        }

        /// Moves the events built so far into `app`.
        pub fn feed(&mut self, app: &mut App) {
            for ev in self.events.drain(..) {
                app.handle(ev);
            }
        }
    }

    /// A server's counters, all zero (built through the tracker so that
    /// fields added later are covered).
    pub fn blank_stats(role: Role) -> ServerStats {
        let mut sim = Sim::default();
        let c = Tls12 {
            role,
            client: (Ipv4Addr::new(192, 0, 2, 1), 40000),
            server: (Ipv4Addr::new(10, 0, 9, 9), 443),
            offer: Offer::None,
            accept: false,
            tickets: false,
            close: Close::Rst,
            sni: "",
            alpn: "",
            rtt_ns: MS,
        };
        sim.tls12(&c, T0);
        let mut tracker = Tracker::new(Limits::default());
        if let Some(AppEvent::Kernel(Decoded::Tls(h, t))) = sim.events.first() {
            tracker.on_tls(h, t);
        }
        tracker.servers()[0].clone()
    }

    pub const NAMES: &str = "\
10.0.1.11:8443 app/web1
10.0.1.12:8443 app/web2
10.0.2.20:443 api/api1
*:443 frontend fe_https
";

    pub const WEB1: (Ipv4Addr, u16) = (Ipv4Addr::new(10, 0, 1, 11), 8443);
    pub const WEB2: (Ipv4Addr, u16) = (Ipv4Addr::new(10, 0, 1, 12), 8443);
    pub const API1: (Ipv4Addr, u16) = (Ipv4Addr::new(10, 0, 2, 20), 443);
    pub const LEGACY: (Ipv4Addr, u16) = (Ipv4Addr::new(10, 0, 3, 30), 443);
    pub const FRONT: (Ipv4Addr, u16) = (PROXY, 443);

    /// The dashboard after `secs` seconds of a realistic proxy:
    ///
    /// - app/web1, `OpenSSL` backend that `HAProxy` resets: the offered session
    ///   is rejected unless its connection happened to close cleanly;
    /// - app/web2, a backend with clean closes: resumes, but its small cache
    ///   forgets one session in ten;
    /// - api/api1, TLS 1.3 with PSK resumption and a `key_share` mismatch
    ///   (one handshake in four needs a `HelloRetryRequest`);
    /// - 10.0.3.30:443, unnamed, which this proxy never offers a session;
    /// - the public frontend: TLS 1.3 and 1.2 clients, tickets, a few
    ///   failures.
    #[expect(
        clippy::too_many_lines,
        reason = "one scenario script, read top to bottom"
    )]
    pub fn demo_app(secs: u64, lost_events: u64) -> App {
        let names = Names::parse_names(NAMES).unwrap();
        let mut app = App::new(
            vec!["eth0".into(), "eth1".into()],
            names,
            Limits::default(),
            T0,
        );
        let mut sim = Sim::default();
        let mut port = 30_000u16;
        let mut next_port = || {
            port = if port >= 60_000 { 30_000 } else { port + 1 };
            port
        };
        let mut web1 = Offer::None;
        let mut web2 = Offer::None;
        let mut fe_ticket = Offer::None;
        let mut n = 0u64;
        for sec in 0..secs {
            let base = T0 + sec * 1_000_000_000;
            // web1: 6/s, one close in sixteen is clean.
            for i in 0..6u64 {
                n += 1;
                let clean = n.is_multiple_of(16);
                let c = Tls12 {
                    role: Role::Backend,
                    client: (PROXY, next_port()),
                    server: WEB1,
                    offer: web1,
                    accept: matches!(web1, Offer::SessionId(_)) && (n - 1).is_multiple_of(16),
                    tickets: false,
                    close: if clean { Close::Clean } else { Close::Rst },
                    sni: "web1.internal",
                    alpn: "http/1.1",
                    rtt_ns: 3 * MS + (n % 7) * MS / 2,
                };
                web1 = sim.tls12(&c, base + i * 160 * MS);
            }
            // web2: 4/s, clean closes, one session in ten forgotten.
            for i in 0..4u64 {
                n += 1;
                let c = Tls12 {
                    role: Role::Backend,
                    client: (PROXY, next_port()),
                    server: WEB2,
                    offer: web2,
                    accept: !n.is_multiple_of(10),
                    tickets: false,
                    close: Close::Clean,
                    sni: "web2.internal",
                    alpn: "http/1.1",
                    rtt_ns: 2 * MS + (n % 5) * MS / 2,
                };
                web2 = sim.tls12(&c, base + 20 * MS + i * 240 * MS);
            }
            // api1: 3/s TLS 1.3, PSK after the first, HRR one in four.
            for i in 0..3u64 {
                n += 1;
                let c = Tls13 {
                    role: Role::Backend,
                    client: (PROXY, next_port()),
                    server: API1,
                    psk: sec > 0 || i > 0,
                    accept: true,
                    hrr: n.is_multiple_of(4),
                    sni: "api.internal",
                    alpn: "h2",
                    rtt_ns: 4 * MS + (n % 3) * MS,
                };
                sim.tls13(&c, base + 40 * MS + i * 300 * MS);
            }
            // legacy: 2/s, never offered a session.
            for i in 0..2u64 {
                n += 1;
                let c = Tls12 {
                    role: Role::Backend,
                    client: (PROXY, next_port()),
                    server: LEGACY,
                    offer: Offer::None,
                    accept: false,
                    tickets: false,
                    close: Close::Rst,
                    sni: "",
                    alpn: "",
                    rtt_ns: 12 * MS + (n % 4) * MS,
                };
                sim.tls12(&c, base + 60 * MS + i * 450 * MS);
            }
            // Frontend: 10/s from many clients.
            for i in 0..10u64 {
                n += 1;
                let client = (
                    Ipv4Addr::new(203, 0, 113, u8::try_from(n % 200).unwrap() + 1),
                    next_port(),
                );
                let t = base + 80 * MS + i * 90 * MS;
                let (sni, alpn) = match n % 5 {
                    0..=2 => ("www.example.com", "h2"),
                    3 => ("shop.example.com", "h2"),
                    _ => ("api.example.com", "http/1.1"),
                };
                if n % 10 < 7 {
                    let c = Tls13 {
                        role: Role::Frontend,
                        client,
                        server: FRONT,
                        psk: n.is_multiple_of(2),
                        accept: !n.is_multiple_of(6),
                        hrr: false,
                        sni,
                        alpn,
                        rtt_ns: MS + (n % 3) * MS / 4,
                    };
                    sim.tls13(&c, t);
                } else {
                    let c = Tls12 {
                        role: Role::Frontend,
                        client,
                        server: FRONT,
                        offer: fe_ticket,
                        accept: !n.is_multiple_of(3),
                        tickets: true,
                        close: if n.is_multiple_of(4) {
                            Close::Rst
                        } else {
                            Close::Clean
                        },
                        sni,
                        alpn,
                        rtt_ns: 2 * MS,
                    };
                    fe_ticket = sim.tls12(&c, t);
                }
            }
            if sec % 4 == 3 {
                sim.failed(
                    Role::Frontend,
                    (Ipv4Addr::new(198, 51, 100, 7), next_port()),
                    FRONT,
                    base + 990 * MS,
                );
            }
            sim.tick(
                base + 1_000_000_000,
                KernelStats {
                    lost_events: if sec + 1 == secs { lost_events } else { 0 },
                    tls_packets: n * 7,
                    ..KernelStats::default()
                },
            );
            sim.feed(&mut app);
        }
        app
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use crossterm::event::KeyModifiers;

    use super::{sim::*, *};

    fn key(c: char) -> AppEvent {
        let modifiers = if c.is_ascii_uppercase() {
            KeyModifiers::SHIFT
        } else {
            KeyModifiers::NONE
        };
        AppEvent::Key(KeyEvent::new(KeyCode::Char(c), modifiers))
    }

    fn code(code: KeyCode) -> AppEvent {
        AppEvent::Key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn servers(app: &App) -> Vec<String> {
        app.rows()
            .iter()
            .map(|r| r.stats.server.to_string())
            .collect()
    }

    fn selected(app: &App) -> String {
        app.selected_row().unwrap().stats.server.to_string()
    }

    #[test]
    fn quits_on_q_and_ctrl_c_not_on_release() {
        let mut app = demo_app(1, 0);
        assert_eq!(app.handle(key('x')), Control::Continue);
        assert_eq!(app.handle(key('q')), Control::Quit);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(app.handle(AppEvent::Key(ctrl_c)), Control::Quit);
        let mut release = KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE);
        release.kind = KeyEventKind::Release;
        assert_eq!(app.handle(AppEvent::Key(release)), Control::Continue);
    }

    #[test]
    fn rows_are_grouped_by_role_and_sorted() {
        let mut app = demo_app(10, 0);
        // Default: full handshakes, most first, backends before frontends.
        assert_eq!(app.sort(), (SortColumn::Full, true));
        assert_eq!(
            servers(&app),
            [
                "10.0.1.11:8443",
                "10.0.3.30:443",
                "10.0.1.12:8443",
                "10.0.2.20:443",
                "10.0.0.5:443"
            ]
        );
        let rows = app.rows();
        assert_eq!(rows[0].name, Some("app/web1"));
        assert_eq!(rows[1].name, None);
        assert_eq!(rows[4].name, Some("frontend fe_https"));
        assert_eq!(rows[4].stats.role, Role::Frontend);
        assert!((rows[0].rate - 6.0).abs() < 1e-9, "{}", rows[0].rate);
        // S reverses.
        app.handle(key('S'));
        assert_eq!(app.sort(), (SortColumn::Full, false));
        assert_eq!(
            servers(&app),
            [
                "10.0.2.20:443",
                "10.0.1.12:8443",
                "10.0.3.30:443",
                "10.0.1.11:8443",
                "10.0.0.5:443"
            ]
        );
        // s cycles, each column starting in its natural direction.
        app.handle(key('s'));
        assert_eq!(app.sort(), (SortColumn::Rate, true));
        app.handle(key('s'));
        app.handle(key('s'));
        assert_eq!(app.sort(), (SortColumn::Reuse, true));
        assert_eq!(servers(&app)[0], "10.0.2.20:443");
        for _ in 0..4 {
            app.handle(key('s'));
        }
        assert_eq!(app.sort(), (SortColumn::Server, false));
        assert_eq!(
            servers(&app),
            [
                "10.0.1.11:8443",
                "10.0.1.12:8443",
                "10.0.2.20:443",
                "10.0.3.30:443",
                "10.0.0.5:443"
            ]
        );
        app.handle(key('s'));
        assert_eq!(app.sort(), (SortColumn::Full, true));
    }

    #[test]
    fn selection_moves_clamps_and_follows_the_server() {
        let mut app = demo_app(3, 0);
        assert_eq!(app.selected_index(), Some(0));
        app.handle(code(KeyCode::Up));
        assert_eq!(app.selected_index(), Some(0));
        app.handle(key('j'));
        app.handle(code(KeyCode::Down));
        assert_eq!(selected(&app), "10.0.1.12:8443");
        app.handle(key('k'));
        assert_eq!(selected(&app), "10.0.3.30:443");
        for _ in 0..10 {
            app.handle(key('j'));
        }
        assert_eq!(app.selected_index(), Some(4));
        app.handle(key('g'));
        assert_eq!(app.selected_index(), Some(0));
        app.handle(code(KeyCode::End));
        assert_eq!(app.selected_index(), Some(4));
        // Re-sorting keeps the same server selected.
        app.handle(key('g'));
        app.handle(key('j'));
        let before = selected(&app);
        app.handle(key('S'));
        assert_eq!(selected(&app), before);
        assert_ne!(app.selected_index(), Some(1));
    }

    #[test]
    fn selection_clamps_when_rows_disappear() {
        let mut app = demo_app(3, 0);
        app.handle(code(KeyCode::End));
        assert_eq!(app.selected_index(), Some(4));
        // Filter down to two rows: the frontend row is gone, the selection
        // lands on the last remaining row.
        for ev in [
            key('/'),
            key('1'),
            key('0'),
            key('.'),
            key('0'),
            key('.'),
            key('1'),
            code(KeyCode::Enter),
        ] {
            app.handle(ev);
        }
        assert_eq!(app.filter(), "10.0.1");
        assert_eq!(servers(&app), ["10.0.1.11:8443", "10.0.1.12:8443"]);
        assert_eq!(app.selected_index(), Some(1));
        // Reset removes every row: nothing selected, nothing panics.
        app.handle(key('r'));
        assert!(app.rows().is_empty());
        assert_eq!(app.selected_index(), None);
        assert!(app.selected_row().is_none());
        app.handle(key('j'));
        app.handle(key('k'));
        assert_eq!(app.selected_index(), None);
        // Rows come back: the selection is on one of them again.
        let mut s = Sim::default();
        let c = Tls12 {
            role: Role::Backend,
            client: (PROXY, 50_000),
            server: WEB1,
            offer: Offer::None,
            accept: false,
            tickets: false,
            close: Close::Rst,
            sni: "",
            alpn: "",
            rtt_ns: 1_000_000,
        };
        s.tls12(&c, T0 + 10_000_000_000);
        s.feed(&mut app);
        assert_eq!(servers(&app), ["10.0.1.11:8443"]);
        assert_eq!(app.selected_index(), Some(0));
    }

    #[test]
    fn filter_prompt_edits_applies_and_clears() {
        let mut app = demo_app(2, 0);
        app.handle(key('/'));
        assert_eq!(app.filter_prompt(), Some(""));
        // While typing, keys are text: q does not quit, s does not sort.
        for c in "qsX".chars() {
            assert_eq!(app.handle(key(c)), Control::Continue);
        }
        assert_eq!(app.filter_prompt(), Some("qsX"));
        assert_eq!(app.sort(), (SortColumn::Full, true));
        for _ in 0..3 {
            app.handle(code(KeyCode::Backspace));
        }
        // Not applied before Enter.
        for c in "FRONT".chars() {
            app.handle(key(c));
        }
        assert_eq!(app.rows().len(), 5);
        app.handle(code(KeyCode::Enter));
        assert_eq!(app.filter_prompt(), None);
        assert_eq!(app.filter(), "front");
        assert_eq!(servers(&app), ["10.0.0.5:443"]);
        // By name.
        app.handle(key('/'));
        assert_eq!(
            app.filter_prompt(),
            Some("front"),
            "the prompt starts from the filter"
        );
        let ctrl_u = KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL);
        app.handle(AppEvent::Key(ctrl_u));
        for c in "app/".chars() {
            app.handle(key(c));
        }
        app.handle(code(KeyCode::Enter));
        assert_eq!(servers(&app), ["10.0.1.11:8443", "10.0.1.12:8443"]);
        // By role.
        app.handle(key('/'));
        app.handle(AppEvent::Key(ctrl_u));
        for c in "backend".chars() {
            app.handle(key(c));
        }
        app.handle(code(KeyCode::Enter));
        assert_eq!(app.rows().len(), 4);
        // Esc in the prompt clears the filter.
        app.handle(key('/'));
        app.handle(code(KeyCode::Esc));
        assert_eq!(app.filter(), "");
        assert_eq!(app.filter_prompt(), None);
        assert_eq!(app.rows().len(), 5);
        // Ctrl-C still quits from the prompt.
        app.handle(key('/'));
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(app.handle(AppEvent::Key(ctrl_c)), Control::Quit);
    }

    #[test]
    fn help_toggles_and_esc_closes_it() {
        let mut app = demo_app(1, 0);
        assert!(!app.help_shown());
        app.handle(key('?'));
        assert!(app.help_shown());
        app.handle(key('?'));
        assert!(!app.help_shown());
        app.handle(key('?'));
        app.handle(code(KeyCode::Esc));
        assert!(!app.help_shown());
    }

    #[test]
    fn pause_freezes_the_display_but_not_the_counting() {
        let mut app = demo_app(5, 0);
        let web1 = |app: &App| {
            let rows = app.rows();
            let r = rows
                .iter()
                .find(|r| r.stats.server.to_string() == "10.0.1.11:8443")
                .unwrap();
            (r.stats.full + r.stats.resumed, r.rate)
        };
        let before = web1(&app);
        let uptime = app.uptime_ns();
        app.handle(key('p'));
        assert!(app.paused());
        // More traffic and ticks while paused.
        let mut s = Sim::default();
        for i in 0..12u16 {
            let c = Tls12 {
                role: Role::Backend,
                client: (PROXY, 51_000 + i),
                server: WEB1,
                offer: Offer::None,
                accept: false,
                tickets: false,
                close: Close::Rst,
                sni: "",
                alpn: "",
                rtt_ns: 1_000_000,
            };
            s.tls12(&c, T0 + 5_000_000_000 + u64::from(i) * 1_000_000);
        }
        s.tick(T0 + 6_000_000_000, KernelStats::default());
        s.feed(&mut app);
        assert_eq!(web1(&app), before, "the display stands still");
        assert_eq!(app.uptime_ns(), uptime);
        let live = app
            .tracker()
            .servers()
            .iter()
            .find(|s| s.server.port == 8443 && s.server.addr == Ipv4Addr::new(10, 0, 1, 11))
            .map(|s| s.full + s.resumed);
        assert_eq!(live, Some(before.0 + 12), "the tracker kept counting");
        app.handle(key('p'));
        assert!(!app.paused());
        assert_eq!(web1(&app), (before.0 + 12, 12.0));
        assert_eq!(app.uptime_ns(), 6_000_000_000);
        // The history kept the paused second.
        let h = app
            .history(&app.selected_row().unwrap().stats.server)
            .unwrap();
        assert_eq!(h.len(), 6);
        assert_eq!(
            h.full().last().copied().unwrap() + h.resumed().last().copied().unwrap(),
            12
        );
    }

    #[test]
    fn reset_clears_counters_and_history() {
        let mut app = demo_app(5, 3);
        assert!(app.summary().full > 0);
        assert!(!app.live.history.is_empty());
        app.handle(key('r'));
        assert_eq!(app.summary(), Summary::default());
        assert!(app.live.history.is_empty());
        assert!(app.handshake_rate().abs() < f64::EPSILON);
        // Kernel counters are the kernel's: not reset.
        assert_eq!(app.kernel().lost_events, 3);
        // Counting starts again from zero, not from the old totals.
        let mut s = Sim::default();
        let c = Tls12 {
            role: Role::Backend,
            client: (PROXY, 52_000),
            server: WEB2,
            offer: Offer::None,
            accept: false,
            tickets: false,
            close: Close::Clean,
            sni: "",
            alpn: "",
            rtt_ns: 1_000_000,
        };
        s.tls12(&c, T0 + 5_100_000_000);
        s.tick(T0 + 6_000_000_000, KernelStats::default());
        s.feed(&mut app);
        assert_eq!(app.summary().full, 1);
        assert!((app.handshake_rate() - 1.0).abs() < 1e-9);
        let h = app.history(&app.rows()[0].stats.server).unwrap();
        assert_eq!(h.full(), [1]);
    }

    #[test]
    fn reset_while_paused_shows_the_reset() {
        let mut app = demo_app(3, 0);
        app.handle(key('p'));
        app.handle(key('r'));
        assert!(app.paused());
        assert!(app.rows().is_empty());
    }

    #[test]
    fn history_buckets_per_second_and_caps() {
        let mut h = History::default();
        h.add(0, 1, 2);
        h.add(0, 1, 0);
        h.add(3, 5, 5);
        assert_eq!(h.full(), [2, 0, 0, 5]);
        assert_eq!(h.resumed(), [2, 0, 0, 5]);
        h.add(2, 1, 1); // clock went back: added to the current second
        assert_eq!(h.full(), [2, 0, 0, 6]);
        h.add(10_000, 7, 0);
        assert_eq!(h.len(), HISTORY_SECS);
        assert_eq!(h.full().iter().sum::<u64>(), 7);
        for s in 10_001..10_400 {
            h.add(s, 1, 0);
        }
        assert_eq!(h.len(), HISTORY_SECS);
    }

    #[test]
    fn ticks_compute_rates_and_history_from_cumulative_counters() {
        let app = demo_app(30, 0);
        // 6 + 4 + 3 + 2 + 10 completed handshakes a second.
        assert!(
            (app.handshake_rate() - 25.0).abs() < 1e-9,
            "{}",
            app.handshake_rate()
        );
        assert_eq!(app.uptime_ns(), 30_000_000_000);
        let web1 = app.rows()[0];
        let h = app.history(&web1.stats.server).unwrap();
        assert_eq!(h.len(), 30);
        assert_eq!(h.full().iter().sum::<u64>(), web1.stats.full);
        assert_eq!(h.resumed().iter().sum::<u64>(), web1.stats.resumed);
        assert!(h.full().iter().all(|&f| f <= 6));
        // The motivating case is counted as such.
        assert!(web1.stats.rejected_after_unclean > 100, "{:?}", web1.stats);
        assert_eq!(web1.versions(), [("TLSv1.2", web1.stats.handshakes())]);
    }
}
