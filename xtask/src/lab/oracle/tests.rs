//! The oracle on real captures from the lab, committed in `fixtures/`
//! (README there), and on hand-built connections for the rules.

use std::{collections::BTreeMap, path::Path};

use super::{
    Capture, Close, Connection, Kind, Method, Record, Role, Sides, agreement, frames, records,
};
use crate::lab::{
    oracle::{
        connections::{Identity, SideFacts},
        history::{Known, lineages},
    },
    scenario::Cause,
};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/lab/oracle/fixtures")
        .join(name)
}

fn run(
    pcap: &str,
    keys: Option<&str>,
    servers: &[(u16, &str)],
    known: &[(&str, Known)],
) -> Vec<Record> {
    let ports: Vec<u16> = servers.iter().map(|(p, _)| *p).collect();
    let key_path = keys.map(fixture);
    let frames = frames::read(&fixture(pcap), key_path.as_deref(), &ports)
        .unwrap_or_else(|e| panic!("{e:#}"));
    let known: BTreeMap<String, Known> = known
        .iter()
        .map(|(name, k)| ((*name).to_owned(), k.clone()))
        .collect();
    records(&Capture {
        role: Role::Backend,
        frames: &frames,
        servers,
        haproxy: &[],
        known: &known,
    })
}

const TLS13_SERVERS: [(u16, &str); 2] = [(8443, "s_server"), (8445, "python")];

/// `unclean+tls13`, the first 4 backend connections each to `s_server`
/// and the Python backend: `HAProxy` (TCP mode, `option nolinger`) resets
/// every one without `close_notify`; the Python backend drops each
/// session and rejects every offer, `s_server` keeps them.
#[test]
fn tls13_unclean_capture() {
    let records = run(
        "tls13_unclean.pcap",
        Some("tls13_unclean.keys"),
        &TLS13_SERVERS,
        &[],
    );
    assert_eq!(records.len(), 8);
    assert!(
        records
            .iter()
            .all(|r| r.decrypted && r.version == "TLSv1.3")
    );
    // HAProxy ends every one without close_notify.
    assert!(records.iter().all(|r| r.close.client == Close::Unclean));

    let python: Vec<&Record> = records.iter().filter(|r| r.name == "python").collect();
    assert!(python.iter().all(|r| r.kind == Kind::Full));
    let offers: Vec<_> = python.iter().filter_map(|r| r.offered.as_ref()).collect();
    assert!(offers.len() >= 2, "{offers:?}");
    for offer in &offers {
        assert_eq!(offer.method, Method::Psk);
        assert!(!offer.accepted);
        assert_eq!(offer.cause, Some(Cause::AfterUnclean));
        // The issuer of a TLS 1.3 ticket is its last holder.
        let issuer = offer
            .issued_by
            .expect("the issuing connection is in the capture");
        let holder = offer.last_holder.expect("a last holder");
        assert_eq!((issuer.client, issuer.start), (holder.client, holder.start));
        assert_eq!(holder.close.client, Close::Unclean);
        assert!(holder.ended_before_offer && holder.client_app_records > 0);
    }
    // The identity offered is a ticket the issuer received, byte for byte.
    for r in &python {
        if let Some(offer) = &r.offered {
            let issuer = offer.issued_by.unwrap();
            let issuing = python.iter().find(|p| p.client == issuer.client).unwrap();
            assert!(issuing.issued.iter().any(|i| i.identity == offer.identity));
        }
    }

    let s_server: Vec<&Record> = records.iter().filter(|r| r.name == "s_server").collect();
    assert_eq!(
        s_server.iter().filter(|r| r.kind == Kind::Resumed).count(),
        2
    );
    // s_server -www sends close_notify before it closes.
    assert!(s_server.iter().all(|r| r.close.server == Close::Clean));
    assert!(s_server.iter().all(|r| r.rejected().is_none()));
}

/// The same capture without the key log: the TLS 1.3 closes and tickets
/// are out of reach, and the oracle says so rather than guess.
#[test]
fn tls13_without_keys_decides_nothing_it_cannot_see() {
    let records = run("tls13_unclean.pcap", None, &TLS13_SERVERS, &[]);
    assert_eq!(records.len(), 8);
    for r in &records {
        assert!(!r.decrypted);
        assert_eq!(r.close.client, Close::Undecrypted);
        assert!(r.issued.is_empty());
        if let Some(cause) = r.rejected() {
            assert_eq!(cause, Cause::Unknown);
        }
    }
    // Full/resumed and the offered identity are in the clear.
    let resumed = records.iter().filter(|r| r.kind == Kind::Resumed).count();
    assert_eq!(resumed, 2);
    assert!(records.iter().any(|r| r.offered.is_some()));
}

/// When nginx's ticket key was replaced (and nginx reloaded) in
/// `ticket_rejected`, seconds since the epoch.
const KEY_CHANGE: f64 = 1_796_677_319.526_907_4;

/// `ticket_rejected`, 6 connections to nginx (TLS 1.2, stateless tickets,
/// no cache): two full handshakes that issue tickets and a resumption,
/// then — after the key change — two offers rejected and a resumption
/// with a new ticket. Decrypted with `HAProxy`'s backend secrets.
#[test]
fn tls12_tickets_rotated_capture() {
    let nginx = [(8444, "nginx")];
    let known = Known {
        key_changes: vec![KEY_CHANGE],
        ..Known::default()
    };
    let records = run(
        "tls12_tickets_rotated.pcap",
        Some("tls12_tickets_rotated.keys"),
        &nginx,
        &[("nginx", known)],
    );
    assert_eq!(records.len(), 6);
    assert!(
        records
            .iter()
            .all(|r| r.decrypted && r.version == "TLSv1.2")
    );
    let kinds: Vec<Kind> = records.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            Kind::Full,
            Kind::Full,
            Kind::Resumed,
            Kind::Full,
            Kind::Full,
            Kind::Resumed
        ]
    );
    let causes: Vec<Option<Cause>> = records.iter().map(Record::rejected).collect();
    assert_eq!(
        causes,
        [
            None,
            None,
            None,
            Some(Cause::TicketRejected),
            Some(Cause::TicketRejected),
            None
        ]
    );
    for r in &records[3..5] {
        let offer = r.offered.as_ref().unwrap();
        assert_eq!(offer.method, Method::Ticket);
        assert!(offer.issued_at.unwrap() < KEY_CHANGE && KEY_CHANGE < r.start);
    }
    // HAProxy closes with close_notify; nginx answers with a bare FIN.
    assert!(records.iter().all(|r| r.close.client == Close::Clean));
    assert!(records.iter().all(|r| r.close.server == Close::Unclean));

    // Without the known key change the evidence alone says "after a clean
    // close": the oracle needs the scenario's events to name this cause.
    let blind = run(
        "tls12_tickets_rotated.pcap",
        Some("tls12_tickets_rotated.keys"),
        &nginx,
        &[],
    );
    assert_eq!(blind[3].rejected(), Some(Cause::AfterClean));
}

/// A hand-built TLS connection for the history rules.
fn conn(
    client_port: u16,
    start: f64,
    kind: Kind,
    offer: Option<&str>,
    issued: &[&str],
) -> Connection {
    let tls13 =
        offer.is_some_and(|o| o.starts_with("psk")) || issued.iter().any(|i| i.starts_with("psk"));
    let identity = |text: &str| {
        let (method, bytes) = text.split_once(':').unwrap();
        Identity {
            method: match method {
                "psk" => Method::Psk,
                "ticket" => Method::Ticket,
                _ => Method::SessionId,
            },
            bytes: bytes.to_owned(),
        }
    };
    let ended = SideFacts {
        end: Some((9, true)),
        end_time: Some(start + 0.05),
        app_records: 1,
        ..SideFacts::default()
    };
    Connection {
        stream: u64::from(client_port),
        client: format!("10.0.0.1:{client_port}").parse().unwrap(),
        server: "10.0.0.2:443".parse().unwrap(),
        start,
        tls13,
        kind,
        decrypted: true,
        offer: offer.map(identity),
        issued: issued.iter().map(|i| (identity(i), start + 0.01)).collect(),
        client_side: ended,
        server_side: SideFacts::default(),
    }
}

fn clean(mut c: Connection) -> Connection {
    c.client_side.close_notify = Some(5);
    c
}

fn causes(conns: &[Connection], known: &Known) -> Vec<Option<Cause>> {
    lineages(conns, known)
        .into_iter()
        .map(|l| l.and_then(|l| l.cause))
        .collect()
}

/// TLS 1.2: the session's last holder is the latest connection that
/// resumed it, here a health check that ended with a RST, although the
/// connection that established it closed cleanly.
#[test]
fn tls12_last_holder_is_the_latest_resumption() {
    let mut check = conn(2, 1.0, Kind::Resumed, Some("sid:aa"), &[]);
    check.client_side.app_records = 0;
    let conns = [
        clean(conn(1, 0.0, Kind::Full, None, &["sid:aa"])),
        check,
        conn(3, 2.0, Kind::Full, Some("sid:aa"), &["sid:bb"]),
    ];
    assert_eq!(
        causes(&conns, &Known::default())[2],
        Some(Cause::AfterUnclean)
    );
    let lineage = lineages(&conns, &Known::default())[2].clone().unwrap();
    assert_eq!(lineage.issuer, Some(0));
    assert_eq!(lineage.last_holder, Some(1));
}

/// TLS 1.3: resumptions do not hold the original ticket's session, so
/// the issuer decides.
#[test]
fn tls13_last_holder_is_the_issuer() {
    let conns = [
        clean(conn(1, 0.0, Kind::Full, None, &["psk:aa"])),
        conn(2, 1.0, Kind::Resumed, Some("psk:aa"), &[]),
        conn(3, 2.0, Kind::Full, Some("psk:aa"), &[]),
    ];
    let lineage = lineages(&conns, &Known::default())[2].clone().unwrap();
    assert_eq!(lineage.last_holder, Some(0));
    assert_eq!(lineage.cause, Some(Cause::AfterClean));
}

/// Known events come before the closes, and an offer whose issue was not
/// captured is unknown.
#[test]
fn known_events_name_the_cause() {
    let conns = [
        conn(1, 0.0, Kind::Full, None, &["sid:aa"]),
        conn(2, 5.0, Kind::Full, Some("sid:aa"), &[]),
        conn(3, 6.0, Kind::Full, Some("sid:zz"), &[]),
    ];
    let expired = Known {
        session_timeout: Some(2.0),
        ..Known::default()
    };
    assert_eq!(
        causes(&conns, &expired),
        [None, Some(Cause::Expired), Some(Cause::Unknown)]
    );
    let restarted = Known {
        restarts: vec![3.0],
        ..Known::default()
    };
    assert_eq!(causes(&conns, &restarted)[1], Some(Cause::ServerRestart));
    let nothing_kept = Known {
        no_cache: true,
        ..Known::default()
    };
    // Even the offer from outside the capture: such a server keeps nothing.
    assert_eq!(
        causes(&conns, &nothing_kept),
        [None, Some(Cause::NoCache), Some(Cause::NoCache)]
    );
    // A key change does not explain a session-ID rejection.
    let keys = Known {
        key_changes: vec![3.0],
        ..Known::default()
    };
    assert_eq!(causes(&conns, &keys)[1], Some(Cause::AfterUnclean));
}

fn record(
    client_port: u16,
    start: f64,
    kind: Kind,
    cause: Option<Cause>,
    close: Sides<Close>,
) -> Record {
    Record {
        line_type: "connection".to_owned(),
        role: Role::Backend,
        name: "python".to_owned(),
        client: format!("10.0.0.1:{client_port}").parse().unwrap(),
        server: "10.0.0.2:8445".parse().unwrap(),
        start,
        version: "TLSv1.3".to_owned(),
        kind,
        decrypted: true,
        offered: cause.map(|cause| super::Offered {
            method: Method::Psk,
            identity: "aa".to_owned(),
            accepted: false,
            issued_by: None,
            issued_at: None,
            age: None,
            last_holder: None,
            cause: Some(cause),
        }),
        issued: Vec::new(),
        close,
        app_records: Sides::default(),
        haproxy: None,
    }
}

/// The agreement figures on hand-written records: which sides count, how
/// start times match, and what each ratio divides by.
#[test]
fn agreement_figures() {
    use agreement::{Handshake, TlsmonClose};
    let unclean = Sides {
        client: Close::Unclean,
        server: Close::NotSeen,
    };
    let oracle = [
        record(1, 100.0, Kind::Full, None, unclean),
        record(2, 101.0, Kind::Full, Some(Cause::AfterUnclean), unclean),
        record(3, 102.0, Kind::Full, Some(Cause::AfterUnclean), unclean),
        record(4, 103.0, Kind::Full, None, unclean),
    ];
    let line =
        |port: u16, start: f64, cause: Option<Cause>, close: Option<TlsmonClose>| Handshake {
            client: format!("10.0.0.1:{port}").parse().unwrap(),
            server: "10.0.0.2:8445".parse().unwrap(),
            start,
            role: Role::Backend,
            kind: Kind::Full,
            offered: cause.map(|_| "psk".to_owned()),
            cause,
            close_client: close,
            close_server: Some(TlsmonClose::Unknown),
        };
    let tlsmon = [
        line(1, 100.2, None, Some(TlsmonClose::Unclean)),
        // Right cause, close undecided.
        line(
            2,
            101.0,
            Some(Cause::AfterUnclean),
            Some(TlsmonClose::Unknown),
        ),
        // Wrong cause, wrong close.
        line(3, 102.0, Some(Cause::Unknown), Some(TlsmonClose::Clean)),
        // Too far from the oracle's start: no match.
        line(4, 105.0, None, Some(TlsmonClose::Unclean)),
    ];
    let result = agreement::agreement(&tlsmon, &oracle);
    let total = &result.total;
    assert_eq!(
        (total.matched, total.oracle_only, total.tlsmon_only),
        (3, 1, 1)
    );
    // The servers' sides were not seen by the oracle: they do not count.
    assert_eq!(total.sides_oracle_decided, 3);
    assert_eq!((total.sides_both_decided, total.sides_agree), (2, 1));
    assert_eq!(total.close_agreement(), Some(0.5));
    assert_eq!(total.decided_share(), Some(2.0 / 3.0));
    assert_eq!((total.rejected, total.cause_agree), (2, 1));
    assert_eq!(total.cause_agreement(), Some(0.5));
    assert_eq!(total.tlsmon_after_unclean, 1);
    assert_eq!(result.servers.len(), 1);
    // Nothing to compare: no ratio rather than a made-up one.
    assert_eq!(agreement::agreement(&[], &[]).total.cause_agreement(), None);
}
