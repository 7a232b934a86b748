//! The optional HTTP server (`http_addr`): the `http` component thread,
//! which accepts connections, its `http-N` handler threads, which serve
//! them, and the `http-probe` thread, which keeps the probes answering when
//! the handlers are all busy. Synchronous, on std sockets; no async
//! runtime.
//!
//! The socket is opened by [`bind`] at node start, before the node
//! registers, so a taken port fails the start. `http` blocks in `accept`
//! and hands each connection to the [`HANDLERS`] over a bounded channel of
//! [`BACKLOG`]. Each handler owns its Redis [`Client`]s and serves one
//! request per connection (`server.rs` has the protocol and its limits:
//! the head within [`HEAD_DEADLINE`], all of it within [`READ_DEADLINE`],
//! at most [`MAX_HEAD`] + [`MAX_BODY`] bytes).
//!
//! The probe lane (`probe.rs`): when a connection is already waiting for a
//! handler, every handler is busy, and a new one would wait behind the
//! others, possibly behind sockets that send nothing until their deadline.
//! So `http` gives such connections to `http-probe` instead, which watches
//! up to [`PROBE_PENDING`] of them at once with `poll(2)`, each with
//! [`PROBE_HEAD_DEADLINE`] to send its head. It answers `/health` and
//! `/ready` itself and passes every other request, head read, on to the
//! handlers' queue (503 when that is full). With the handlers and the
//! queue all held by slowloris clients, a probe is still answered within
//! milliseconds; a flood of idle sockets on the lane itself evicts the
//! oldest (503), so it cannot shut the probes out either. When the lane's
//! own channel is full (its thread in a `/ready` Redis call, say), `http`
//! answers 503 at once instead of queueing without bound.
//!
//! Stopping wakes `accept` with a connection to itself; the probe lane
//! drops what it watches, handlers finish the request in hand (bounded by
//! the read deadline and the Redis timeout) and end.
//!
//! This file: the threads, authentication, replies. `server.rs`: HTTP/1.1
//! on one connection. `probe.rs`: the probe lane. `routes.rs`: the routes.
//! `scrape.rs`: `/metrics` and `/ready`. `assets.rs`: the dashboard's
//! static files. `views.rs`: the reads and actions the dashboard's pages
//! use. `cache.rs`: the refresh floor of the costly ones.

mod assets;
mod cache;
mod probe;
mod routes;
mod scrape;
mod server;
mod views;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::client::Client;
use crate::component::{Component, StopSignal, spawn_thread};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::leader::Lease;
use crate::metrics::METRICS;
use crate::store::Store;
use crate::supervisor::{Health, Policy, Supervision};

pub use assets::{CSP, ETAG};
pub use cache::REFRESH_FLOOR;
pub use probe::{PROBE_HEAD_DEADLINE, PROBE_PENDING};
pub(crate) use server::Request;
pub use server::{HEAD_DEADLINE, MAX_HEAD, READ_DEADLINE};

/// Handler threads: requests served at once.
pub const HANDLERS: usize = 4;
/// Accepted connections waiting for a handler before new ones get 503
/// (those that come while any wait go through the probe lane first).
pub const BACKLOG: usize = 64;
/// Largest request body accepted; a larger one gets 413.
pub const MAX_BODY: usize = 1 << 20;
/// Timeout of the Redis calls behind `/ready` and the cluster part of
/// `/metrics` (at most `redis_timeout`), below a probe's usual 1–10 s.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What every handler thread shares.
pub(crate) struct Context {
    pub(crate) node_id: String,
    pub(crate) instance: String,
    pub(crate) lease: Option<Lease>,
    token: Option<String>,
    read_token: Option<String>,
    /// Set when the node starts shutting down: `/ready` answers 503 from
    /// then on, so load balancers stop sending work before the API goes.
    pub(crate) stopping: Arc<AtomicBool>,
    store: Store,
    probe_store: Store,
    retention: Duration,
    /// The node's supervised components, for `/health` and `/metrics`.
    pub(crate) health: Health,
    /// Replies of the dashboard's costly reads, kept [`REFRESH_FLOOR`].
    pub(crate) cache: cache::Cache,
}

/// Opens the listening socket for `config.http_addr`, if set.
pub fn bind(config: &Config) -> Result<Option<TcpListener>> {
    let Some(addr) = config.http_addr else {
        return Ok(None);
    };
    let listener = TcpListener::bind(addr).map_err(|e| {
        Error::Io(std::io::Error::new(
            e.kind(),
            format!("cannot listen on http_addr {addr}: {e}"),
        ))
    })?;
    if !addr.ip().is_loopback() && config.http_token.is_none() {
        // Only with http_insecure: Config::validate refuses it otherwise.
        log::warn!(
            "http: listening on {addr} beyond this host without http_token (http_insecure): anyone who can reach it can submit tasks"
        );
    }
    Ok(Some(listener))
}

/// Starts the `http` component on `listener`. `stopping` is set by the
/// node when its shutdown begins.
pub fn start(
    listener: TcpListener,
    config: &Config,
    instance: &str,
    lease: Option<Lease>,
    stopping: Arc<AtomicBool>,
    supervision: &Supervision,
) -> Result<(Component, SocketAddr)> {
    let addr = listener.local_addr()?;
    let ctx = Arc::new(Context {
        node_id: config.node_id.clone(),
        instance: instance.to_string(),
        lease,
        token: config.http_token.as_ref().map(|s| s.0.clone()),
        read_token: config.http_read_token.as_ref().map(|s| s.0.clone()),
        stopping,
        store: Store::open(&config.redis_options(), &config.namespace)?,
        probe_store: Store::open(
            &crate::store::RedisOptions {
                timeout: config.redis_timeout.min(PROBE_TIMEOUT),
                ..config.redis_options()
            },
            &config.namespace,
        )?,
        retention: config.task_retention,
        health: supervision.health.clone(),
        cache: cache::Cache::default(),
    });
    let (conns_tx, conns_rx) = crossbeam_channel::bounded::<Incoming>(BACKLOG);
    let (probes_tx, probes_rx) = crossbeam_channel::bounded::<TcpStream>(PROBE_PENDING);
    let mut handlers = Vec::with_capacity(HANDLERS);
    for n in 0..HANDLERS {
        let (ctx, conns) = (ctx.clone(), conns_rx.clone());
        handlers.push(spawn_thread(format!("http-{n}"), move || {
            handle_loop(&ctx, &conns)
        })?);
    }
    let prober = {
        let (ctx, conns) = (ctx.clone(), conns_tx.clone());
        spawn_thread("http-probe".to_string(), move || {
            probe::run(&ctx, &probes_rx, &conns)
        })?
    };
    // The acceptor's state outlives a restart of its loop; when the
    // thread ends (a stop) dropping it closes the channels and joins the
    // probe lane and the handlers.
    let acceptor = Acceptor {
        listener,
        conns: Some(conns_tx),
        probes: Some(probes_tx),
        prober: Some(prober),
        handlers,
    };
    let component = Component::supervised("http", Policy::Restart, supervision, move |stop| {
        acceptor.accept(stop);
        Ok(())
    })?
    .with_waker(move || {
        // Wake the blocking accept; the loop then sees the stop.
        let _ = TcpStream::connect_timeout(&wake_addr(addr), Duration::from_secs(1));
    });
    log::info!("http: listening on {addr}");
    Ok((component, addr))
}

/// The `http` thread's state: the socket, the channels to the handlers and
/// the probe lane, and their threads.
struct Acceptor {
    listener: TcpListener,
    conns: Option<Sender<Incoming>>,
    probes: Option<Sender<TcpStream>>,
    prober: Option<std::thread::JoinHandle<()>>,
    handlers: Vec<std::thread::JoinHandle<()>>,
}

impl Acceptor {
    fn accept(&self, stop: &StopSignal) {
        if let (Some(conns), Some(probes)) = (&self.conns, &self.probes) {
            accept_loop(&self.listener, conns, probes, stop);
        }
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        // The probe lane ends once its channel is disconnected, dropping
        // its sender of `conns`; handlers end once `conns` is empty and
        // disconnected.
        drop(self.probes.take());
        drop(self.conns.take());
        if let Some(p) = self.prober.take() {
            let _ = p.join();
        }
        for h in self.handlers.drain(..) {
            let _ = h.join();
        }
    }
}

/// Where to connect to reach `addr` from this host (an unspecified
/// address is reached on the loopback).
fn wake_addr(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// A connection on its way to a handler.
enum Incoming {
    /// Fresh from `accept`.
    Fresh(TcpStream),
    /// Its head read on the probe lane, since `opened` (its deadlines
    /// count from then); the body is still to read.
    Started {
        stream: TcpStream,
        opened: Instant,
        parser: server::Parser,
    },
    /// Read whole on the probe lane.
    Complete { stream: TcpStream, request: Request },
}

impl Incoming {
    fn into_stream(self) -> TcpStream {
        match self {
            Incoming::Fresh(stream)
            | Incoming::Started { stream, .. }
            | Incoming::Complete { stream, .. } => stream,
        }
    }
}

/// The `http` thread: accept until stopped. A connection goes to the
/// handlers while none waits for one, else to the probe lane (see the
/// module doc), else gets 503.
fn accept_loop(
    listener: &TcpListener,
    conns: &Sender<Incoming>,
    probes: &Sender<TcpStream>,
    stop: &StopSignal,
) {
    let mut failing = false;
    while !stop.is_stopped() {
        match listener.accept() {
            Ok((stream, _)) => {
                failing = false;
                if stop.is_stopped() {
                    return;
                }
                let stream = if conns.is_empty() {
                    match conns.try_send(Incoming::Fresh(stream)) {
                        Ok(()) => continue,
                        Err(TrySendError::Full(incoming)) => incoming.into_stream(),
                        Err(TrySendError::Disconnected(_)) => return,
                    }
                } else {
                    stream
                };
                match probes.try_send(stream) {
                    Ok(()) => {}
                    Err(TrySendError::Full(stream) | TrySendError::Disconnected(stream)) => {
                        busy(stream);
                    }
                }
            }
            Err(e) => {
                // Out of file descriptors, say: log once, back off, go on.
                if !failing {
                    log::error!("http: accept failed: {e}; retrying");
                    failing = true;
                }
                if stop.wait(Duration::from_millis(100)) {
                    return;
                }
            }
        }
    }
}

/// Answers 503 on a connection no handler can take.
fn busy(stream: TcpStream) {
    METRICS.http_response(503);
    if let Ok(conn) = server::Conn::new(stream) {
        let body = br#"{"error":"server busy, try again"}"#;
        conn.respond(
            503,
            &[("Content-Type", "application/json"), ("Retry-After", "1")],
            body,
            false,
            false,
        );
    }
}

/// One handler thread: serve connections until the channel closes.
fn handle_loop(ctx: &Context, conns: &Receiver<Incoming>) {
    let mut handler = Handler::new(ctx);
    for incoming in conns.iter() {
        handler.handle(incoming);
    }
}

/// A handler thread's state: the shared context and its own clients.
pub(crate) struct Handler<'a> {
    pub(crate) ctx: &'a Context,
    /// For the JSON API (`redis_timeout`).
    pub(crate) api: Client,
    /// For `/ready` and `/metrics` (short timeout).
    pub(crate) probe: Client,
}

impl<'a> Handler<'a> {
    /// A handler with its own clients.
    fn new(ctx: &'a Context) -> Handler<'a> {
        Handler {
            ctx,
            api: Client::from_store(&ctx.store).with_retention(ctx.retention),
            probe: Client::from_store(&ctx.probe_store),
        }
    }

    /// Reads the request (or the rest of it) and answers.
    fn handle(&mut self, incoming: Incoming) {
        let (conn, read) = match incoming {
            Incoming::Fresh(stream) => {
                let Ok(mut conn) = server::Conn::new(stream) else {
                    return;
                };
                METRICS.http_in_flight.inc();
                let read = conn.read_request(server::Parser::new(MAX_BODY), HEAD_DEADLINE);
                (conn, read)
            }
            Incoming::Started {
                stream,
                opened,
                parser,
            } => {
                let Ok(mut conn) = server::Conn::opened_at(stream, opened) else {
                    return;
                };
                METRICS.http_in_flight.inc();
                let read = conn.read_request(parser, HEAD_DEADLINE);
                (conn, read)
            }
            Incoming::Complete { stream, request } => {
                let Ok(conn) = server::Conn::new(stream) else {
                    return;
                };
                METRICS.http_in_flight.inc();
                (conn, Ok(request))
            }
        };
        self.answer(conn, read, true);
    }

    /// Routes `read` (or answers its refusal) on `conn`, counted in
    /// `http_in_flight` by the caller. `may_linger`: after a refusal, drain
    /// the unread input before closing (not after a timeout: that client is
    /// slow anyway, and draining it would hold the thread longer).
    fn answer(
        &mut self,
        conn: server::Conn,
        read: Result<Request, server::Refusal>,
        may_linger: bool,
    ) {
        let (reply, head_only, linger, what) = match read {
            Ok(request) => {
                let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    routes::route(self, &request)
                }))
                .unwrap_or_else(|_| Reply::error(500, "internal error (the handler panicked)"));
                let what = format!("{} {}", request.method, request.target);
                (reply, request.method == "HEAD", false, what)
            }
            Err(refusal) if refusal.status == 0 => {
                METRICS.http_in_flight.dec();
                return;
            }
            Err(refusal) => (
                Reply::error(refusal.status, &refusal.message),
                false,
                may_linger && refusal.status != 408,
                "a malformed request".to_string(),
            ),
        };
        METRICS.http_response(reply.status);
        METRICS.http_in_flight.dec();
        if reply.status >= 500 {
            log::warn!("http: {what} -> {}", reply.status);
        } else {
            log::debug!("http: {what} -> {}", reply.status);
        }
        let mut headers: Vec<(&str, &str)> = vec![("Content-Type", reply.content_type)];
        if !reply.headers.iter().any(|(n, _)| *n == "Cache-Control") {
            headers.push(("Cache-Control", "no-store"));
        }
        headers.extend(reply.headers.iter().map(|(n, v)| (*n, v.as_str())));
        conn.respond(reply.status, &headers, &reply.body, head_only, linger);
    }

    /// What `Authorization: Bearer <token>` allows: everything when no
    /// token is set or it is `http_token`, the read routes when it is
    /// `http_read_token`, nothing otherwise. Comparisons take the same time
    /// wherever the first difference is, and both tokens are always
    /// compared, so timing tells neither which one nearly matched.
    pub(crate) fn access(&self, request: &Request) -> Access {
        let Some(token) = &self.ctx.token else {
            return Access::Full;
        };
        let mut access = Access::None;
        for (_, v) in request.headers.iter().filter(|(n, _)| n == "authorization") {
            if !(v.len() > 7 && v.is_char_boundary(7) && v[..7].eq_ignore_ascii_case("bearer ")) {
                continue;
            }
            let given = v[7..].trim().as_bytes();
            let full = constant_time_eq(given, token.as_bytes());
            let read = self
                .ctx
                .read_token
                .as_ref()
                .is_some_and(|t| constant_time_eq(given, t.as_bytes()));
            if full {
                return Access::Full;
            }
            if read {
                access = Access::Read;
            }
        }
        access
    }
}

/// What a request's bearer token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// No token, or a wrong one: only `/health` and `/ready` (401).
    None,
    /// `http_read_token`: `GET` and `HEAD` routes; writes get 403.
    Read,
    /// `http_token`, or no token configured: every route.
    Full,
}

/// Equality of two secrets in time independent of where they differ (the
/// length is not secret).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The request body as JSON, `None` when it is empty; not JSON → 400.
/// (The size cap is applied while reading, in `server.rs`.)
pub(crate) fn json_body(request: &Request) -> Result<Option<serde_json::Value>, Reply> {
    if request.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&request.body)
        .map(Some)
        .map_err(|e| Reply::error(400, &format!("malformed JSON: {e}")))
}

/// A response: status, content type, body, extra headers.
#[derive(Clone)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
}

impl Reply {
    /// `value` as JSON with `status`.
    pub(crate) fn json(status: u16, value: &impl serde::Serialize) -> Reply {
        match serde_json::to_vec(value) {
            Ok(body) => Reply {
                status,
                content_type: "application/json",
                body,
                headers: Vec::new(),
            },
            Err(e) => Reply::error(500, &format!("cannot encode the reply: {e}")),
        }
    }

    /// `{"error": message}` with `status`.
    pub(crate) fn error(status: u16, message: &str) -> Reply {
        Reply::json(status, &serde_json::json!({ "error": message }))
    }

    /// A library error with the status it means: bad input 400, unknown id
    /// 404, Redis unreachable or a write not acknowledged by enough
    /// replicas 503, anything else 500.
    pub(crate) fn from_error(e: &Error) -> Reply {
        let status = match e {
            Error::Config(_) => 400,
            Error::NotFound(_) => 404,
            Error::Unavailable(_) | Error::NotReplicated { .. } => 503,
            _ => 500,
        };
        Reply::error(status, &e.to_string())
    }

    /// Plain text with `content_type`.
    pub(crate) fn text(status: u16, content_type: &'static str, body: String) -> Reply {
        Reply {
            status,
            content_type,
            body: body.into_bytes(),
            headers: Vec::new(),
        }
    }

    /// `body` as it is, with `content_type`.
    pub(crate) fn bytes(status: u16, content_type: &'static str, body: Vec<u8>) -> Reply {
        Reply {
            status,
            content_type,
            body,
            headers: Vec::new(),
        }
    }

    /// Adds a header.
    pub(crate) fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }
}
