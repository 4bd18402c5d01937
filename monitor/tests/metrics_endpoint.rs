//! The metrics endpoint against real HTTP clients and real attackers, on
//! the real daemon in a network namespace: routes, HEAD, OpenMetrics
//! negotiation (checked with both of Python's reference parsers), 200
//! clients that never read their response, and 3,000 idle clients with
//! the daemon out of file descriptors. Needs root.

mod common;
#[path = "support/procfs.rs"]
mod procfs;

use std::{
    io::Write as _,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use common::{
    Finished, Lab, Proc, Side, output, reconnect, start_s_server, start_tlsmon, wait_for_text,
};

const METRICS: &str = "127.0.0.1:9464";

/// tlsmon on the client's veth, headless, serving metrics, once attached.
fn start(lab: &mut Lab, extra: &[&str]) -> Proc {
    let mut args = vec!["--headless", "--interval", "3600", "--metrics", METRICS];
    args.extend_from_slice(extra);
    start_tlsmon(lab, "tlsmon", &args)
}

/// curl in the client namespace: status line, headers and body.
fn curl(lab: &mut Lab, args: &[&str]) -> Finished {
    let mut cmdline = vec!["curl", "--silent", "--show-error", "--max-time", "10"];
    cmdline.extend_from_slice(args);
    lab.run(Side::Client, "curl", &cmdline, Duration::from_secs(30))
}

/// Status code and headers (`-i`) and body of one request.
fn fetch(lab: &mut Lab, args: &[&str]) -> (u16, String, String) {
    let mut all = vec!["-i"];
    all.extend_from_slice(args);
    let out = curl(lab, &all);
    assert!(out.status.success(), "curl {args:?}: {}", out.stderr);
    let (head, body) = out
        .stdout
        .split_once("\r\n\r\n")
        .unwrap_or((&out.stdout, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// Parses OpenMetrics text with prometheus_client's OpenMetrics parser
/// (stricter than the text parser: it requires `# EOF`, matching
/// `_total` names and `+Inf` buckets); the samples as `name labels value`.
fn openmetrics_samples(exposition: &str) -> Vec<String> {
    const SCRIPT: &str = "\
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        print(s.name, ','.join(f'{k}={v}' for k, v in sorted(s.labels.items())), format(s.value, 'g'))
";
    let mut child = Command::new(xtask::programs::require("python3"))
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the OpenMetrics parser rejected the page: {}\n{exposition}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn routes_head_and_content_negotiation() {
    let mut lab = Lab::new("mrt", 21);
    let (cert, key) = lab.make_cert();
    let _server = start_s_server(&mut lab, "s_server", &cert, &key);
    let tlsmon = start(&mut lab, &["--metrics-timeout", "2"]);
    let (_, new, reused) = reconnect(&mut lab);
    // The page refreshes every second.
    thread::sleep(Duration::from_millis(2500));
    let url = format!("http://{METRICS}/metrics");
    let server = format!(
        "role=backend,server={}:{}",
        lab.ip(Side::Server),
        common::TLS_PORT
    );

    let (status, head, text) = fetch(&mut lab, &[&url]);
    assert_eq!(status, 200);
    assert!(
        head.contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    let samples = xtask::programs::prometheus_samples(&text).unwrap_or_else(|e| panic!("{e:#}"));
    for want in [
        format!("tlsmon_handshakes_total kind=full,{server} {new}"),
        format!("tlsmon_handshakes_total kind=resumed,{server} {reused}"),
        format!("tlsmon_handshake_duration_seconds_count kind=resumed,{server} {reused}"),
        format!("tlsmon_handshake_duration_seconds_bucket kind=full,le=+Inf,{server} {new}"),
    ] {
        assert!(samples.contains(&want), "missing {want:?} in\n{samples:#?}");
    }

    // What Prometheus sends.
    let prometheus_accept = "Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (status, head, om) = fetch(&mut lab, &["-H", prometheus_accept, &url]);
    assert_eq!(status, 200);
    assert!(
        head.contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    let samples = openmetrics_samples(&om);
    let want = format!("tlsmon_handshakes_total kind=resumed,{server} {reused}");
    assert!(samples.contains(&want), "missing {want:?} in\n{samples:#?}");

    // HEAD: the headers of GET, no body.
    let (status, head, body) = fetch(&mut lab, &["--head", &url]);
    assert_eq!(status, 200);
    assert!(body.is_empty(), "HEAD returned a body: {body:?}");
    assert!(head.contains("content-length: "), "{head}");

    for path in ["/", "/metricsx", "/metrics/x", "/favicon.ico"] {
        let (status, _, _) = fetch(&mut lab, &[&format!("http://{METRICS}{path}")]);
        assert_eq!(status, 404, "{path}");
    }
    let (status, head, _) = fetch(&mut lab, &["-X", "POST", "-d", "x", &url]);
    assert_eq!(status, 405);
    assert!(head.contains("allow: get, head"), "{head}");

    // --metrics-timeout 2: an idle connection and one that sends its head
    // a byte every 200 ms are both closed after about 2 s.
    let (host, port) = METRICS.split_once(':').unwrap();
    let cut = lab.run(
        Side::Client,
        "slow",
        &["python3", "-c", SLOW_AND_IDLE, host, port],
        Duration::from_mins(1),
    );
    for kind in ["idle", "slow"] {
        let secs: f64 = cut
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix(kind)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {kind} line: {}{}", cut.stdout, cut.stderr));
        assert!(
            (1.5..5.0).contains(&secs),
            "the {kind} client was held {secs} s with --metrics-timeout 2"
        );
    }
    drop(tlsmon);
}

/// Seconds until the endpoint closes a connection that sends nothing, and
/// one that sends a request head one byte every 200 ms (6.6 s in all).
const SLOW_AND_IDLE: &str = r"
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
def held(slow):
    s = socket.create_connection((host, port))
    s.settimeout(30)
    start = time.monotonic()
    try:
        if slow:
            for b in b'GET /metrics HTTP/1.1\r\nHost: tlsmon\r\n\r\n':
                s.send(bytes([b]))
                time.sleep(0.2)
        while s.recv(65536):
            pass
    except OSError:
        pass
    return time.monotonic() - start
print('idle', held(False))
print('slow', held(True))
";

/// A Python TLS server listening on `n` ports from `first`, in the server
/// namespace: enough real servers for a page of some megabytes.
const MANY_SERVERS: &str = r"
import asyncio, resource, ssl, sys
first, n, cert, key = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
async def answer(reader, writer):
    writer.close()
async def main():
    for port in range(first, first + n):
        await asyncio.start_server(answer, '0.0.0.0', port, ssl=ctx)
    print('listening', flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
";

/// One TLS handshake to each of `n` ports from `first`.
const HANDSHAKES: &str = r"
import socket, ssl, sys
host, first, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
done = 0
for port in range(first, first + n):
    with socket.create_connection((host, port), timeout=5) as s:
        with ctx.wrap_socket(s) as t:
            done += 1
print('handshakes', done)
";

/// `n` clients of the metrics endpoint that either send a request and
/// never read (`stuck`, with a 4 KB receive buffer) or only connect
/// (`idle`), held for `secs` seconds.
const CLIENTS: &str = r"
import resource, socket, sys, time
n, host, port, mode, secs = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
socks = []
for i in range(n):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    if mode == 'stuck':
        s.settimeout(5)
        s.connect((host, port))
        s.sendall(b'GET /metrics HTTP/1.1\r\nHost: tlsmon\r\n\r\n')
    else:
        # Without waiting: a server out of descriptors leaves them in its
        # backlog, or unanswered once the backlog is full.
        s.setblocking(False)
        s.connect_ex((host, port))
    socks.append(s)
print('connected', len(socks), flush=True)
time.sleep(secs)
";

/// [`CLIENTS`] in the client namespace, once they are all connected.
fn clients(lab: &mut Lab, n: u32, mode: &str, secs: u32) -> Proc {
    let (host, port) = METRICS.split_once(':').unwrap();
    let (n, secs) = (n.to_string(), secs.to_string());
    let proc = python(
        lab,
        Side::Client,
        mode,
        CLIENTS,
        &[&n, host, port, mode, &secs],
    );
    wait_for_text(&proc.stdout, "connected", Duration::from_mins(1), &|| {
        output(&proc)
    });
    proc
}

fn python(lab: &mut Lab, side: Side, name: &str, script: &str, args: &[&str]) -> Proc {
    let mut cmdline = vec!["python3", "-c", script];
    cmdline.extend_from_slice(args);
    lab.spawn(side, name, &cmdline)
}

/// Bytes of a successful scrape from inside the namespace.
fn scrape(lab: &mut Lab) -> Result<usize, String> {
    let out = curl(lab, &[&format!("http://{METRICS}/metrics")]);
    if out.status.success() && out.stdout.contains("tlsmon_events_total") {
        Ok(out.stdout.len())
    } else {
        Err(format!("{}: {}", out.status, out.stderr))
    }
}

#[test]
fn clients_that_never_read_cost_no_copy_of_the_page() {
    const SERVERS: u16 = 500;
    const FIRST_PORT: u16 = 20_000;
    let mut lab = Lab::new("mst", 22);
    let (cert, key) = lab.make_cert();
    let (first, n) = (FIRST_PORT.to_string(), SERVERS.to_string());
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let servers = python(
        &mut lab,
        Side::Server,
        "servers",
        MANY_SERVERS,
        &[&first, &n, &cert, &key],
    );
    wait_for_text(
        &servers.stdout,
        "listening",
        Duration::from_mins(1),
        &|| output(&servers),
    );
    // Socket send buffers of at most 64 KB in the namespace, so that a
    // response larger than that waits on its reader, whatever the page's
    // size (by default they grow to 4 MB, tcp_wmem).
    let wmem = lab.run(
        Side::Client,
        "wmem",
        &[
            "sh",
            "-c",
            "echo '4096 16384 65536' > /proc/sys/net/ipv4/tcp_wmem",
        ],
        Duration::from_secs(10),
    );
    assert!(wmem.status.success(), "tcp_wmem: {}", wmem.stderr);
    let tlsmon = start(&mut lab, &[]);
    let host = lab.ip(Side::Server).to_owned();
    let done = lab.run(
        Side::Client,
        "handshakes",
        &["python3", "-c", HANDSHAKES, &host, &first, &n],
        Duration::from_mins(5),
    );
    assert!(
        done.stdout.contains(&format!("handshakes {SERVERS}")),
        "{}{}",
        done.stdout,
        done.stderr
    );
    thread::sleep(Duration::from_millis(2500));
    let page = scrape(&mut lab).expect("scrape before the attack");
    let before = procfs::rss_kb(tlsmon.pid);

    let stuck = clients(&mut lab, 200, "stuck", 30);
    // Several refreshes of the page while they hang on.
    thread::sleep(Duration::from_secs(4));
    let during = procfs::rss_kb(tlsmon.pid);
    let answered = scrape(&mut lab);
    lab.kill(&stuck);
    thread::sleep(Duration::from_secs(2));
    let after = procfs::rss_kb(tlsmon.pid);
    eprintln!(
        "page {page} bytes ({SERVERS} servers); tlsmon RSS {before} kB before, {during} kB with \
         200 clients that never read, {after} kB after they left; scrape during: {answered:?}"
    );
    assert!(
        answered.is_ok(),
        "the endpoint did not answer during the attack: {answered:?}\n{}",
        output(&tlsmon)
    );
    // Two renderings of the page (text and OpenMetrics) are current at any
    // time, and a connection may pin an older one; 200 copies would be
    // hundreds of megabytes.
    let page_kb = u64::try_from(page).unwrap() / 1024;
    assert!(
        during < before + 8 * page_kb + 16 * 1024,
        "RSS grew from {before} kB to {during} kB with a {page_kb} kB page"
    );
    assert!(lab.running(&tlsmon), "tlsmon exited: {}", output(&tlsmon));
}

#[test]
fn out_of_descriptors_the_daemon_backs_off_and_recovers() {
    let mut lab = Lab::new("mfd", 23);
    let (cert, key) = lab.make_cert();
    let _server = start_s_server(&mut lab, "s_server", &cert, &key);
    let tlsmon = start(&mut lab, &[]);
    // A few descriptors to spare, as a daemon near systemd's 1,024 has.
    let limit = procfs::open_fds(tlsmon.pid) + 4;
    procfs::limit_fds(tlsmon.pid, limit);
    let idle = clients(&mut lab, 3000, "idle", 60);
    let cpu_start = procfs::cpu_seconds(tlsmon.pid);
    let started = Instant::now();
    thread::sleep(Duration::from_secs(5));
    let cpu = procfs::cpu_seconds(tlsmon.pid) - cpu_start;
    let share = cpu / started.elapsed().as_secs_f64();
    let fds = procfs::open_fds(tlsmon.pid);
    lab.kill(&idle);
    eprintln!(
        "out of descriptors ({fds} open, limit {limit}) with 3000 idle clients: tlsmon used \
         {:.1} % of a CPU",
        share * 100.0
    );
    assert!(
        share < 0.2,
        "tlsmon used {:.0} % of a CPU while out of descriptors\n{}",
        share * 100.0,
        output(&tlsmon)
    );
    // Descriptors free again: the endpoint answers, and counting goes on.
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Err(e) = scrape(&mut lab) {
        assert!(
            Instant::now() < deadline,
            "no scrape after the clients left: {e}\n{}",
            output(&tlsmon)
        );
        thread::sleep(Duration::from_millis(500));
    }
    let (_, new, reused) = reconnect(&mut lab);
    assert_eq!((new, reused), (1, 5), "s_client's own counts");
    thread::sleep(Duration::from_millis(1500));
    let page = curl(&mut lab, &[&format!("http://{METRICS}/metrics")]);
    let server = format!(
        "role=backend,server={}:{}",
        lab.ip(Side::Server),
        common::TLS_PORT
    );
    let samples =
        xtask::programs::prometheus_samples(&page.stdout).unwrap_or_else(|e| panic!("{e:#}"));
    let want = format!("tlsmon_handshakes_total kind=resumed,{server} {reused}");
    assert!(
        samples.contains(&want),
        "missing {want:?}\n{}",
        output(&tlsmon)
    );
    // A failed read of the interface's state is not its disappearance, and
    // nothing is attached twice.
    let stderr = common::read(&tlsmon.stderr);
    for wrong in ["is gone", "File exists"] {
        assert!(!stderr.contains(wrong), "{}", output(&tlsmon));
    }
}
