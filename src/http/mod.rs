//! The optional HTTP server (`http_addr`): the `http` component thread and
//! its `http-N` handler threads, on `tiny_http` (synchronous; no async
//! runtime).
//!
//! `http` owns the server. It builds it from the listener that
//! [`bind`] opened at node start (so a taken port fails the start, before
//! anything else runs), inside its own thread, so the threads `tiny_http`
//! spawns inherit the blocked signal mask (see `component`). It then runs
//! [`HANDLERS`] handler threads, each with its own Redis [`Client`]s, that
//! take requests off the server's queue. If the server's accept loop dies
//! (`tiny_http` stops accepting after an accept error such as EMFILE), the
//! handlers end and `http` builds a new server on the same socket after a
//! second. Stopping unblocks every handler at once; an in-flight request
//! finishes first (bounded by the Redis timeout).
//!
//! This file: the loop, authentication, request bodies and replies.
//! `routes.rs`: the routes. `scrape.rs`: `/metrics` and `/ready`.

mod routes;
mod scrape;

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tiny_http::{Header, Request, Response, Server};

use crate::client::Client;
use crate::component::{Component, StopSignal, spawn_thread};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::leader::Lease;
use crate::metrics::METRICS;
use crate::store::Store;

/// Handler threads: requests served at once. Each holds two idle Redis
/// connections at most.
pub const HANDLERS: usize = 4;
/// Largest request body accepted; a larger one gets 413.
pub const MAX_BODY: usize = 1 << 20;
/// Timeout of the Redis calls behind `/ready` and the cluster part of
/// `/metrics` (at most `redis_timeout`), below a probe's usual 1–10 s.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for a request before a handler re-checks its stop signal
/// (a stop also unblocks it at once).
const POLL: Duration = Duration::from_secs(1);

/// What every handler thread shares.
pub(crate) struct Context {
    pub(crate) node_id: String,
    pub(crate) instance: String,
    pub(crate) lease: Option<Lease>,
    token: Option<String>,
    /// Set when the node starts shutting down: `/ready` answers 503 from
    /// then on, so load balancers stop sending work before the API goes.
    pub(crate) stopping: Arc<AtomicBool>,
    store: Store,
    probe_store: Store,
    retention: Duration,
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
    if !listener.local_addr().is_ok_and(|a| a.ip().is_loopback()) && config.http_token.is_none() {
        log::warn!(
            "http: listening on {addr} beyond this host without http_token: anyone who can reach it can submit tasks"
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
) -> Result<(Component, SocketAddr)> {
    let addr = listener.local_addr()?;
    let ctx = Arc::new(Context {
        node_id: config.node_id.clone(),
        instance: instance.to_string(),
        lease,
        token: config.http_token.clone(),
        stopping,
        store: Store::new(&config.redis_url, &config.namespace, config.redis_timeout)?,
        probe_store: Store::new(
            &config.redis_url,
            &config.namespace,
            config.redis_timeout.min(PROBE_TIMEOUT),
        )?,
        retention: config.task_retention,
    });
    let current: Arc<Mutex<Option<Arc<Server>>>> = Arc::default();
    let waker_slot = current.clone();
    let component = Component::spawn("http", move |stop| {
        serve(&listener, &ctx, &current, &stop);
    })?
    .with_waker(move || {
        let server = waker_slot.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(server) = server {
            for _ in 0..HANDLERS {
                server.unblock();
            }
        }
    });
    log::info!("http: listening on {addr}");
    Ok((component, addr))
}

/// The `http` thread: (re)builds the server and runs the handlers until
/// stopped.
fn serve(
    listener: &TcpListener,
    ctx: &Arc<Context>,
    current: &Mutex<Option<Arc<Server>>>,
    stop: &StopSignal,
) {
    while !stop.is_stopped() {
        let server = match listener
            .try_clone()
            .map_err(|e| e.to_string())
            .and_then(|l| Server::from_listener(l, None).map_err(|e| e.to_string()))
        {
            Ok(s) => Arc::new(s),
            Err(e) => {
                log::error!("http: cannot start the server: {e}; retrying in 1s");
                if stop.wait(Duration::from_secs(1)) {
                    return;
                }
                continue;
            }
        };
        *current.lock().unwrap_or_else(|p| p.into_inner()) = Some(server.clone());
        let failed = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::with_capacity(HANDLERS);
        for n in 0..HANDLERS {
            let (server, ctx, stop, failed) =
                (server.clone(), ctx.clone(), stop.clone(), failed.clone());
            match spawn_thread(format!("http-{n}"), move || {
                handle_loop(&server, &ctx, &stop, &failed)
            }) {
                Ok(t) => threads.push(t),
                Err(e) => log::error!("http: cannot start handler thread {n}: {e}"),
            }
        }
        for t in threads {
            let _ = t.join();
        }
        *current.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if failed.load(Ordering::SeqCst) && stop.wait(Duration::from_secs(1)) {
            return;
        }
    }
}

/// One handler thread: serve requests until stopped or the server fails.
fn handle_loop(server: &Server, ctx: &Context, stop: &StopSignal, failed: &AtomicBool) {
    let mut handler = Handler {
        ctx,
        api: Client::from_store(&ctx.store).with_retention(ctx.retention),
        probe: Client::from_store(&ctx.probe_store),
    };
    while !stop.is_stopped() && !failed.load(Ordering::SeqCst) {
        match server.recv_timeout(POLL) {
            Ok(Some(request)) => handler.handle(request),
            Ok(None) => {}
            Err(e) => {
                if !failed.swap(true, Ordering::SeqCst) {
                    log::error!("http: the server stopped accepting ({e}); restarting it");
                }
                return;
            }
        }
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

impl Handler<'_> {
    fn handle(&mut self, mut request: Request) {
        METRICS.http_in_flight.inc();
        let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            routes::route(self, &mut request)
        }))
        .unwrap_or_else(|_| Reply::error(500, "internal error (the handler panicked)"));
        METRICS.http_response(reply.status);
        METRICS.http_in_flight.dec();
        if reply.status >= 500 {
            log::warn!(
                "http: {} {} -> {}",
                request.method(),
                request.url(),
                reply.status
            );
        } else {
            log::debug!(
                "http: {} {} -> {}",
                request.method(),
                request.url(),
                reply.status
            );
        }
        // The client may be gone; nothing to do about it.
        let _ = request.respond(reply.into_response());
    }

    /// Checks `Authorization: Bearer <token>` when a token is set; the
    /// comparison takes the same time wherever the first difference is.
    pub(crate) fn authorized(&self, request: &Request) -> bool {
        let Some(token) = &self.ctx.token else {
            return true;
        };
        request
            .headers()
            .iter()
            .filter(|h| h.field.equiv("Authorization"))
            .any(|h| {
                let v = h.value.as_str().trim();
                v.len() > 7
                    && v[..7].eq_ignore_ascii_case("bearer ")
                    && constant_time_eq(v[7..].trim().as_bytes(), token.as_bytes())
            })
    }
}

/// Equality of two secrets in time independent of where they differ (the
/// length is not secret).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Reads the request body as JSON, `None` when it is empty. Over
/// [`MAX_BODY`] → 413 (refused from `Content-Length` before reading, or
/// after reading one byte too many of a chunked body); not JSON → 400.
pub(crate) fn json_body(request: &mut Request) -> Result<Option<serde_json::Value>, Reply> {
    if request.body_length().is_some_and(|n| n > MAX_BODY) {
        return Err(Reply::error(413, "request body over 1 MiB"));
    }
    let mut body = Vec::new();
    request
        .as_reader()
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| Reply::error(400, &format!("cannot read the request body: {e}")))?;
    if body.len() > MAX_BODY {
        return Err(Reply::error(413, "request body over 1 MiB"));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| Reply::error(400, &format!("malformed JSON: {e}")))
}

/// A response: status, content type, body, extra headers.
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
    /// 404, Redis unreachable 503, anything else 500.
    pub(crate) fn from_error(e: &Error) -> Reply {
        let status = match e {
            Error::Config(_) => 400,
            Error::NotFound(_) => 404,
            Error::Unavailable(_) => 503,
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

    /// Adds a header.
    pub(crate) fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    fn into_response(self) -> Response<std::io::Cursor<Vec<u8>>> {
        let mut response = Response::from_data(self.body).with_status_code(self.status);
        let headers = [
            ("Content-Type", self.content_type.to_string()),
            ("Cache-Control", "no-store".to_string()),
        ];
        for (name, value) in headers.into_iter().chain(self.headers) {
            if let Ok(h) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
                response.add_header(h);
            }
        }
        response
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
