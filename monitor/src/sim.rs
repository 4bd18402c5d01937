//! Synthetic wire events for the tests: TLS 1.2 and 1.3 handshakes as the
//! kernel program would report them, between a proxy, its backends and its
//! clients, and a realistic dashboard built from them ([`demo_app`]).
//!
//! Test support only (`#[cfg(test)]`). The events themselves come from
//! the shared test kit (`monitor_common::emit::event`); what is here is
//! the app's side: which events a handshake of each kind makes, in what
//! order and direction for a proxy's roles, and the scenario of a busy
//! proxy that the dashboard tests draw.

use std::net::Ipv4Addr;

use monitor_common::{
    emit::event::{self as ev, Summary, item, items},
    event::{Decoded, Direction, EventHeader, TlsSummary, hello_flags},
    net::{TCP_ACK, TCP_FIN, TCP_RST},
    tls::{ContentType, ProtocolVersion},
};

use crate::{
    app::{App, AppEvent},
    names::Names,
    stats::{KernelStats, Role, ServerStats},
    tracker::{Limits, Tracker},
};

pub const PROXY: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);
pub const T0: u64 = 1_000 * 1_000_000_000;
const MS: u64 = 1_000_000;

const CCS: u16 = items::CHANGE_CIPHER_SPEC;
const ENCRYPTED: u16 = items::ENCRYPTED_HANDSHAKE;
const APP: u16 = items::APPLICATION_DATA;

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
    EventHeader {
        direction: direction.0,
        tcp_flags: flags | TCP_ACK,
        ts_ns: ts,
        ..ev::header(src.into(), dst.into())
    }
}

fn client_hello(
    flags: u16,
    sid: Option<[u8; 32]>,
    ticket: Option<[u8; 16]>,
    sni: &str,
    alpn: &str,
) -> TlsSummary {
    let mut t = Summary::client_hello()
        .flags(flags)
        .sni(sni.as_bytes())
        .alpn(alpn.as_bytes());
    if let Some(sid) = sid {
        t = t.session_id(&sid);
    }
    if let Some(tid) = ticket {
        t = t.flags(hello_flags::TICKET_OFFERED).ticket_id(tid);
    }
    t.build()
}

impl Sim {
    fn fresh_id(&mut self) -> [u8; 32] {
        self.next_sid += 1;
        let mut id = [0x5a; 32];
        id[..4].copy_from_slice(&self.next_sid.to_be_bytes());
        id
    }

    fn push(&mut self, h: EventHeader, t: TlsSummary) {
        self.events.push(AppEvent::Kernel(ev::tls(h, t)));
    }

    /// Events of one TLS ≤ 1.2 connection starting at `t`; returns what
    /// the client could offer next time (the session ID or ticket the
    /// server issued, or the one it resumed).
    pub fn tls12(&mut self, c: &Tls12, t: u64) -> Offer {
        let h = |from_client, ts, flags| header(c.role, from_client, c.client, c.server, ts, flags);
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
        let sh = Summary::server_hello(if resumed {
            &[CCS, ENCRYPTED]
        } else {
            &[
                items::CERTIFICATE,
                items::SERVER_KEY_EXCHANGE,
                items::SERVER_HELLO_DONE,
            ]
        })
        .flags(if c.tickets {
            hello_flags::TICKET_EXT
        } else {
            0
        })
        .cipher_suite(0xc02f);
        let new_sid = self.fresh_id();
        let sh = sh.session_id(&match (resumed, sid) {
            (true, Some(s)) => s,
            _ => new_sid,
        });
        let t_sh = t + c.rtt_ns;
        self.push(h(false, t_sh, 0), sh.build());
        let client_fin = if resumed {
            Summary::items(&[CCS, ENCRYPTED])
        } else {
            Summary::items(&[items::CLIENT_KEY_EXCHANGE, CCS, ENCRYPTED])
        }
        .build();
        self.push(h(true, t_sh + MS / 5, 0), client_fin);
        let mut next = if resumed {
            c.offer
        } else {
            Offer::SessionId(new_sid)
        };
        if !resumed {
            let fin = if c.tickets {
                let tid: [u8; 16] = self.fresh_id()[..16].try_into().unwrap();
                next = Offer::Ticket(tid);
                Summary::items(&[items::NEW_SESSION_TICKET, CCS, ENCRYPTED])
                    .flags(hello_flags::NEW_TICKET)
                    .ticket_id(tid)
            } else {
                Summary::items(&[CCS, ENCRYPTED])
            };
            self.push(h(false, t_sh + MS / 2, 0), fin.build());
        }
        // A request and its response.
        self.push(h(true, t_sh + MS, 0), Summary::items(&[APP]).build());
        self.push(h(false, t_sh + 2 * MS, 0), Summary::items(&[APP]).build());
        self.close(c.role, c.client, c.server, c.close, t_sh + 3 * MS);
        next
    }

    /// Events of one TLS 1.3 connection starting at `t`.
    pub fn tls13(&mut self, c: &Tls13, t: u64) {
        let h = |from_client, ts, flags| header(c.role, from_client, c.client, c.server, ts, flags);
        let flags = hello_flags::OFFERS_TLS13 | if c.psk { hello_flags::PSK } else { 0 };
        // Middlebox compatibility: a random legacy session ID.
        let compat = self.fresh_id();
        self.push(
            h(true, t, 0),
            client_hello(flags, Some(compat), None, c.sni, c.alpn),
        );
        let mut t = t;
        if c.hrr {
            let hrr = Summary::server_hello(&[])
                .flags(hello_flags::HRR)
                .selected_version(ProtocolVersion::TLS1_3.0);
            self.push(h(false, t + c.rtt_ns / 2, 0), hrr.build());
            t += c.rtt_ns / 2;
            self.push(
                h(true, t + MS / 10, 0),
                client_hello(flags, Some(compat), None, c.sni, c.alpn),
            );
        }
        let sh = Summary::server_hello(&[CCS, APP])
            .flags(if c.psk && c.accept {
                hello_flags::PSK
            } else {
                0
            })
            .selected_version(ProtocolVersion::TLS1_3.0)
            .cipher_suite(0x1301)
            .session_id(&compat);
        let t_sh = t + c.rtt_ns;
        self.push(h(false, t_sh, 0), sh.build());
        self.push(
            h(true, t_sh + MS / 5, 0),
            Summary::items(&[CCS, APP]).build(),
        );
        self.push(h(false, t_sh + MS, 0), Summary::items(&[APP]).build());
        self.close(c.role, c.client, c.server, Close::Rst, t_sh + 2 * MS);
    }

    /// A `ClientHello` the server answers with a `handshake_failure` alert.
    pub fn failed(&mut self, role: Role, client: (Ipv4Addr, u16), server: (Ipv4Addr, u16), t: u64) {
        let h = |from_client, ts, flags| header(role, from_client, client, server, ts, flags);
        self.push(h(true, t, 0), client_hello(0, None, None, "", ""));
        // handshake_failure (RFC 5246 §7.2).
        let failure = item(ContentType::ALERT, 40);
        self.push(h(false, t + MS, 0), Summary::items(&[failure]).build());
        self.push(h(true, t + 2 * MS, TCP_FIN), Summary::items(&[]).build());
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
                hd.tcp_flags = TCP_RST;
                self.events.push(AppEvent::Kernel(ev::teardown(hd)));
            }
            Close::Clean => {
                self.push(
                    header(role, true, client, server, t, TCP_FIN),
                    Summary::items(&[items::ENCRYPTED_ALERT]).build(),
                );
                let hd = header(role, false, client, server, t + MS / 10, TCP_FIN);
                self.events.push(AppEvent::Kernel(ev::teardown(hd)));
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
    // The ClientHello and the ServerHello: a server has counters only
    // once it answered.
    for ev in sim.events.iter().take(2) {
        if let AppEvent::Kernel(Decoded::Tls(h, t)) = ev {
            tracker.on_tls(h, t);
        }
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
