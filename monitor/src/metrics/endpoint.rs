//! The HTTP endpoint that serves the metrics page, built to stay up and
//! small whatever its clients do.
//!
//! hyper (HTTP/1.1 only) rather than axum: the endpoint has one route, and
//! what it needs beyond hyper — an accept loop that backs off when the
//! process is out of descriptors, a bound on connections, per-connection
//! timeouts — axum's `serve` does not expose, so it would be this same code
//! plus a router.
//!
//! Bounds, each from [`Config`]:
//! * at most `max_connections` at once; a new connection beyond that closes
//!   the oldest (counted), so stuck clients cannot lock out a scraper, and
//!   the endpoint never holds more descriptors than that;
//! * a request head must arrive within `timeout` (hyper's header read
//!   timeout, which also closes a keep-alive connection idle that long), a
//!   stalled read or write fails after `timeout` (tokio-io-timeout), and no
//!   connection lives longer than [`LIFETIME_TIMEOUTS`] × `timeout`;
//! * a request head is at most [`MAX_REQUEST_HEAD`] bytes;
//! * every response shares the page rendered once per refresh (a
//!   reference-counted `Bytes`), so a connection costs its buffers, not a
//!   copy of the page: before, each connection copied it and 200 clients
//!   that never read held 1.25 GB.

use std::{
    convert::Infallible,
    future::Future,
    io,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    header::{ACCEPT, ALLOW, CONTENT_TYPE, HeaderValue, VARY},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
    task::AbortHandle,
};
use tokio_io_timeout::TimeoutStream;

use super::{Families, Page, Rendered, Value};

/// The endpoint's limits (`--metrics`, `--metrics-connections`,
/// `--metrics-timeout`).
#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub addr: SocketAddr,
    /// Connections served at once; a new one beyond this closes the oldest.
    pub max_connections: usize,
    /// Longest wait for a request head, for a stalled read or write, and
    /// for the next request on an idle keep-alive connection.
    pub timeout: Duration,
}

impl Config {
    /// Two scrapers (an HA Prometheus pair) and people with curl need a
    /// handful; each connection costs one descriptor and its buffers
    /// (hyper reads into 8 KB), not a copy of the page.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 32;
    /// Prometheus's default scrape timeout.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
}

/// No connection lives longer than this many timeouts, even one that keeps
/// trickling bytes just fast enough to satisfy each of them.
pub const LIFETIME_TIMEOUTS: u32 = 6;

/// Largest request head read (hyper's smallest read buffer limit); a
/// larger one is answered 431 and the connection closed.
pub const MAX_REQUEST_HEAD: usize = 8192;

/// `Content-Type` of the OpenMetrics text format that
/// `prometheus_client::encoding::text` writes.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Pause after a failed accept, doubling while failures go on. Out of
/// descriptors, the listening socket stays readable and every accept fails
/// at once: without a pause the loop spun at 100 % of a CPU.
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const LAST_PAUSE: Duration = Duration::from_secs(1);

/// What the endpoint itself counts, shown on the page it serves.
#[derive(Debug, Default)]
pub(super) struct Stats {
    /// Connections closed to make room for a newer one.
    evicted: AtomicU64,
    /// Connections closed because a request head, a read, a write or an
    /// idle wait took longer than the timeout, or they reached their
    /// lifetime.
    timed_out: AtomicU64,
    /// Failed accepts: out of descriptors or memory, or a client that gave
    /// up before it was accepted.
    accept_errors: AtomicU64,
}

impl Stats {
    pub(super) fn families(&self, f: &mut Families) {
        f.counter(
            "tlsmon_metrics_connections_closed",
            "Metrics connections tlsmon closed, by reason: evicted (the connection limit was reached), timeout.",
        )
        .sample(
            vec![("reason", "evicted".to_owned())],
            Value::Count(self.evicted.load(Relaxed)),
        )
        .sample(
            vec![("reason", "timeout".to_owned())],
            Value::Count(self.timed_out.load(Relaxed)),
        );
        f.counter(
            "tlsmon_metrics_accept_errors",
            "Failed accepts on the metrics endpoint (out of descriptors or memory, or a client that gave up).",
        )
        .sample(vec![], Value::Count(self.accept_errors.load(Relaxed)));
    }
}

/// The bound listening socket, not yet served.
#[derive(Debug)]
pub struct Endpoint {
    listener: std::net::TcpListener,
    config: Config,
}

impl Endpoint {
    /// Binds `config.addr`. Needs no runtime, so the daemon can do it
    /// before attaching anything and fail early.
    pub fn bind(config: Config) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind(config.addr)
            .with_context(|| format!("listening for metrics on {}", config.addr))?;
        listener
            .set_nonblocking(true)
            .context("making the metrics socket non-blocking")?;
        Ok(Self { listener, config })
    }

    /// The address bound (with the port chosen when `addr` had port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The page the daemon publishes to, and the server to spawn. Call it
    /// inside the tokio runtime.
    pub fn serve(self) -> anyhow::Result<(Page, impl Future<Output = ()> + Send + 'static)> {
        let listener =
            TcpListener::from_std(self.listener).context("serving metrics on the runtime")?;
        let (latest, reader) = watch::channel(Rendered::default());
        let stats = Arc::new(Stats::default());
        let page = Page {
            latest,
            endpoint: Arc::clone(&stats),
        };
        Ok((page, accept_loop(listener, self.config, reader, stats)))
    }
}

async fn accept_loop(
    listener: TcpListener,
    config: Config,
    page: watch::Receiver<Rendered>,
    stats: Arc<Stats>,
) {
    let mut open: std::collections::VecDeque<AbortHandle> = std::collections::VecDeque::new();
    let mut pause = FIRST_PAUSE;
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            stats.accept_errors.fetch_add(1, Relaxed);
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LAST_PAUSE);
            continue;
        };
        pause = FIRST_PAUSE;
        open.retain(|task| !task.is_finished());
        if open.len() >= config.max_connections.max(1)
            && let Some(oldest) = open.pop_front()
        {
            oldest.abort();
            stats.evicted.fetch_add(1, Relaxed);
        }
        let task = tokio::spawn(connection(
            sock,
            page.clone(),
            config.timeout,
            Arc::clone(&stats),
        ));
        open.push_back(task.abort_handle());
    }
}

async fn connection(
    sock: TcpStream,
    page: watch::Receiver<Rendered>,
    timeout: Duration,
    stats: Arc<Stats>,
) {
    let mut io = TimeoutStream::new(sock);
    io.set_read_timeout(Some(timeout));
    io.set_write_timeout(Some(timeout));
    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
        // A clone of the latest rendering: two reference counts.
        let latest = page.borrow().clone();
        std::future::ready(Ok::<_, Infallible>(respond(&req, &latest)))
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .max_buf_size(MAX_REQUEST_HEAD)
        .serve_connection(TokioIo::new(Box::pin(io)), service);
    let timed_out = match tokio::time::timeout(timeout * LIFETIME_TIMEOUTS, conn).await {
        Err(_) => true,
        Ok(Err(e)) => is_timeout(&e),
        Ok(Ok(())) => false,
    };
    if timed_out {
        stats.timed_out.fetch_add(1, Relaxed);
    }
}

/// hyper's own header timeout, or a read or write timeout of the stream.
fn is_timeout(e: &hyper::Error) -> bool {
    e.is_timeout()
        || std::error::Error::source(e)
            .and_then(|s| s.downcast_ref::<io::Error>())
            .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut)
}

/// The answer to one request: the page on `/metrics` (GET or HEAD; hyper
/// leaves the body out of a HEAD response), 405 for other methods there,
/// 404 elsewhere.
fn respond<B>(req: &Request<B>, page: &Rendered) -> Response<Full<Bytes>> {
    let plain = |status: StatusCode, text: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
        *r.status_mut() = status;
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    };
    if req.uri().path() != "/metrics" {
        return plain(
            StatusCode::NOT_FOUND,
            "Not found: the metrics are at /metrics\n",
        );
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let mut r = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed: GET or HEAD\n",
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
    let (body, content_type) = if wants_openmetrics(accept.unwrap_or("")) {
        (page.openmetrics.clone(), OPENMETRICS)
    } else {
        (
            page.text.clone(),
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )
    };
    let mut r = Response::new(Full::new(body));
    let headers = r.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(VARY, HeaderValue::from_static("Accept"));
    r
}

/// Content negotiation (RFC 9110 §12.5.1): OpenMetrics when the client
/// accepts it with a quality at least as high as the classic text format.
/// Prometheus sends `application/openmetrics-text;version=1.0.0,…,
/// text/plain;version=0.0.4;q=0.5,*/*;q=0.1`; curl sends `*/*`.
///
/// Written here: the whole job is this loop over media ranges, and none of
/// the header crates parses `Accept` with its `q` values.
fn wants_openmetrics(accept: &str) -> bool {
    let (mut openmetrics, mut text) = (0.0f64, 0.0f64);
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        // A range whose weight does not parse is left out.
        let Some(q) = parts
            .find_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
            .map_or(Some(1.0), |v| v.parse::<f64>().ok())
        else {
            continue;
        };
        let q = q.clamp(0.0, 1.0);
        match media.as_str() {
            "application/openmetrics-text" => openmetrics = openmetrics.max(q),
            "text/plain" | "text/*" | "*/*" => text = text.max(q),
            _ => {}
        }
    }
    openmetrics > 0.0 && openmetrics >= text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> Rendered {
        Rendered {
            text: Bytes::from_static(b"text page\n"),
            openmetrics: Bytes::from_static(b"om page\n# EOF\n"),
        }
    }

    fn request(method: Method, path: &str, accept: Option<&str>) -> Request<()> {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(a) = accept {
            b = b.header(ACCEPT, a);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn content_negotiation_follows_quality() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wants_openmetrics(prometheus));
        assert!(wants_openmetrics("application/openmetrics-text"));
        assert!(wants_openmetrics(
            "Application/OpenMetrics-Text; version=1.0.0"
        ));
        assert!(!wants_openmetrics(""));
        assert!(!wants_openmetrics("*/*"));
        assert!(!wants_openmetrics(
            "text/plain, application/openmetrics-text;q=0.5"
        ));
        assert!(!wants_openmetrics("application/openmetrics-text;q=0"));
        assert!(!wants_openmetrics(
            "application/openmetrics-text;q=nonsense, text/plain"
        ));
    }

    #[test]
    fn routes_and_methods() {
        let p = page();
        let r = respond(&request(Method::GET, "/metrics", None), &p);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()[CONTENT_TYPE],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let r = respond(
            &request(
                Method::GET,
                "/metrics",
                Some("application/openmetrics-text"),
            ),
            &p,
        );
        assert_eq!(r.headers()[CONTENT_TYPE], OPENMETRICS);
        assert_eq!(
            respond(&request(Method::HEAD, "/metrics", None), &p).status(),
            StatusCode::OK
        );
        assert_eq!(
            respond(&request(Method::GET, "/", None), &p).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            respond(&request(Method::GET, "/metrics/x", None), &p).status(),
            StatusCode::NOT_FOUND
        );
        let r = respond(&request(Method::POST, "/metrics", None), &p);
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[ALLOW], "GET, HEAD");
    }

    #[test]
    fn every_response_shares_the_rendered_page() {
        let p = page();
        let a = respond(&request(Method::GET, "/metrics", None), &p);
        let b = respond(&request(Method::GET, "/metrics", None), &p);
        let body = |r: Response<Full<Bytes>>| {
            use http_body_util::BodyExt as _;
            futures_util::FutureExt::now_or_never(r.into_body().collect())
                .unwrap()
                .unwrap()
                .to_bytes()
        };
        let (a, b) = (body(a), body(b));
        // Same buffer, not equal copies.
        assert_eq!(a.as_ptr(), p.text.as_ptr());
        assert_eq!(b.as_ptr(), p.text.as_ptr());
    }
}
