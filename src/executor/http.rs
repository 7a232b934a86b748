//! The `http` executor: one HTTP request per task, with ureq's blocking
//! client.
//!
//! Owns the translation from a task payload to a request and from the
//! response to an [`Outcome`], plus the plumbing the [`rpc`](super::rpc)
//! executor reuses: request building and sending (`send`) and running a
//! blocking call so that a cancel can abandon it (`run_abandonable`).
//!
//! [`HttpExecutor::execute`] runs on one of the worker's pool threads. The
//! request itself runs on a short-lived helper thread while the pool thread
//! watches for a cancel: a cancelled task returns [`Outcome::Cancelled`] at
//! once and the helper ends on its own at the attempt's timeout.
//!
//! Plain `http://` only: the crate is built without ureq's TLS features.
//!
//! Also owns the `http_allow` check both executors apply ([`AllowedHost`]):
//! with a list set, a URL whose host and port are not on it fails the
//! attempt before anything is sent, and redirects are not followed (ureq
//! follows them inside one call, where no hop could be checked), so a 3xx
//! is the attempt's result.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use ureq::http::{Method, Request, Uri};
use ureq::{Agent, AsSendBody};

use super::{Executor, Outcome, TaskContext, TaskResult};

/// Most bytes of a response body kept in `result.data` (and, cut further,
/// in the task log).
pub const BODY_EXCERPT: usize = 4096;

/// Most body bytes read from a response. Reading a modest body to the end
/// lets the agent reuse the connection; beyond this the rest is not read and
/// the connection is dropped.
const DRAIN_LIMIT: usize = 64 * 1024;
/// Most bytes of a body excerpt written to the task log.
const LOG_EXCERPT: usize = 1024;
/// How often the pool thread looks at the cancel flag while a request runs.
const CANCEL_POLL: Duration = Duration::from_millis(10);
/// How long past the deadline a helper may run before it is abandoned. ureq
/// enforces the deadline itself; this only guards against a call stuck where
/// ureq cannot interrupt it (a slow name lookup).
const OVERDUE_GRACE: Duration = Duration::from_millis(500);

/// One `http_allow` entry: a host, and the one port allowed on it (none:
/// the scheme's default port, 80 for `http`, 443 for `https`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    /// Lower case, without a trailing dot; an IPv6 address in brackets
    /// (`[::1]`), as URLs write it.
    pub host: String,
    /// The port, if the entry names one.
    pub port: Option<u16>,
}

impl std::fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

/// Parses `http_allow`: comma-separated `host`, `host:port`, `[v6]` or
/// `[v6]:port` entries (empty: no list, any host).
pub fn parse_http_allow(text: &str) -> Result<Vec<AllowedHost>, String> {
    const HINT: &str = "expected host, host:port or [IPv6]:port entries separated by commas";
    let mut list: Vec<AllowedHost> = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = |why: &str| format!("bad entry `{entry}`: {why}; {HINT}");
        let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
            let (addr, after) = rest.split_once(']').ok_or_else(|| bad("unclosed `[`"))?;
            if addr.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("not an IPv6 address in brackets"));
            }
            let port = match after {
                "" => None,
                _ => Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| bad("junk after `]`"))?,
                ),
            };
            (format!("[{}]", addr.to_ascii_lowercase()), port)
        } else {
            let (host, port) = match entry.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (entry, None),
            };
            let host = host.trim_end_matches('.').to_ascii_lowercase();
            if host.is_empty()
                || !host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            {
                return Err(bad("a host is letters, digits, `-` and `.`"));
            }
            (host, port)
        };
        let port = match port {
            None => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|&p| p > 0)
                    .ok_or_else(|| bad("the port must be 1-65535"))?,
            ),
        };
        let allowed = AllowedHost { host, port };
        if !list.contains(&allowed) {
            list.push(allowed);
        }
    }
    Ok(list)
}

/// `Err("{who}: host H:P not in http_allow")` unless `url`'s host and port
/// (the scheme's default when the URL names none) match an entry of
/// `allow`; an empty `allow` lets every host through. `url` has passed
/// [`check_url`]. The URL is parsed the way ureq parses it (`http::Uri`),
/// so what is checked is what would be connected to (`http://ok@evil/` is
/// `evil`).
pub(crate) fn check_allowed(allow: &[AllowedHost], url: &str, who: &str) -> Result<(), String> {
    if allow.is_empty() {
        return Ok(());
    }
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("{who}: invalid url: {e}"))?;
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let default = if uri.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    let port = uri.port_u16().unwrap_or(default);
    let listed = allow
        .iter()
        .any(|a| a.host == host && a.port.unwrap_or(default) == port);
    if listed {
        Ok(())
    } else {
        Err(format!("{who}: host {host}:{port} not in http_allow"))
    }
}

/// Sends one HTTP request per task.
///
/// Payload: `{"url": "http://...", "method": "GET|POST|PUT|PATCH|DELETE|HEAD"
/// (default GET, or POST when a body is given), "headers": {"name":
/// "value"}, "body": <a string sent as-is, or any other JSON sent as JSON
/// with content-type application/json>}`.
///
/// The whole call (connect, send, response, body) is bounded by the time the
/// attempt has left. A 2xx response is a success with `code` = status; any
/// other status is a failure with that code (never a transport error); in
/// both cases `data` is the body parsed as JSON, or else the body text as a
/// JSON string, capped to [`BODY_EXCERPT`] bytes (a larger body, JSON or
/// not, becomes a cut string). A transport error is a failure with code -1.
#[derive(Debug, Clone)]
pub struct HttpExecutor {
    /// Created once so that connections to the same host are reused.
    agent: Agent,
    /// The `http_allow` list; empty: any host.
    allow: Arc<[AllowedHost]>,
}

impl HttpExecutor {
    /// An executor with its own connection pool, for any host (redirects
    /// followed, up to ureq's default of 10).
    pub fn new() -> HttpExecutor {
        HttpExecutor::with_allow(Vec::new())
    }

    /// An executor that only calls the hosts in `allow` (setting
    /// `http_allow`; empty: any host). With a list, redirects are not
    /// followed (see the module docs).
    pub fn with_allow(allow: Vec<AllowedHost>) -> HttpExecutor {
        HttpExecutor {
            agent: agent(allow.is_empty()),
            allow: allow.into(),
        }
    }
}

impl Default for HttpExecutor {
    fn default() -> HttpExecutor {
        HttpExecutor::new()
    }
}

/// The agent both HTTP-based executors use: statuses are results, not
/// errors; the per-request timeout is set on each call. Without
/// `follow_redirects` a 3xx is returned as it is (`max_redirects(0)`).
pub(crate) fn agent(follow_redirects: bool) -> Agent {
    let builder = Agent::config_builder()
        .http_status_as_error(false)
        .user_agent(concat!("distsched/", env!("CARGO_PKG_VERSION")));
    let builder = if follow_redirects {
        builder
    } else {
        builder.max_redirects(0)
    };
    builder.build().into()
}

/// A validated request, ready to send.
#[derive(Debug, Clone)]
pub(crate) struct HttpRequest {
    pub(crate) method: Method,
    pub(crate) url: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Option<Vec<u8>>,
}

impl HttpRequest {
    /// The request of an `http` task payload.
    fn from_payload(payload: &Value) -> Result<HttpRequest, String> {
        let Some(fields) = payload.as_object() else {
            return Err(r#"http payload must be an object like {"url": "http://..."}"#.into());
        };
        let url = match fields.get("url") {
            Some(Value::String(url)) => check_url(url)?,
            Some(_) => return Err("http payload: `url` must be a string".into()),
            None => return Err("http payload: missing `url`".into()),
        };
        let mut headers = parse_headers(fields.get("headers"))?;
        let body = match fields.get("body") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.clone().into_bytes()),
            Some(json) => {
                if !headers
                    .iter()
                    .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
                {
                    headers.push(("content-type".into(), "application/json".into()));
                }
                Some(json.to_string().into_bytes())
            }
        };
        let method = match fields.get("method") {
            None | Some(Value::Null) if body.is_some() => Method::POST,
            None | Some(Value::Null) => Method::GET,
            Some(Value::String(name)) => match name.to_ascii_uppercase().as_str() {
                "GET" => Method::GET,
                "POST" => Method::POST,
                "PUT" => Method::PUT,
                "PATCH" => Method::PATCH,
                "DELETE" => Method::DELETE,
                "HEAD" => Method::HEAD,
                _ => {
                    return Err(format!(
                        "http payload: unsupported method {name:?} (GET, POST, PUT, PATCH, \
                         DELETE or HEAD)"
                    ));
                }
            },
            Some(_) => return Err("http payload: `method` must be a string".into()),
        };
        Ok(HttpRequest {
            method,
            url,
            headers,
            body,
        })
    }
}

/// Checks that `url` is an absolute `http(s)://host...` URL.
pub(crate) fn check_url(url: &str) -> Result<String, String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("invalid url {url:?}: {e}"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(host)) if !host.is_empty() => Ok(url.to_owned()),
        _ => Err(format!("invalid url {url:?}: expected http://host/...")),
    }
}

/// The `headers` object of a payload: string values only.
pub(crate) fn parse_headers(headers: Option<&Value>) -> Result<Vec<(String, String)>, String> {
    match headers {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(name, value)| match value {
                Value::String(value) => Ok((name.clone(), value.clone())),
                _ => Err(format!("header {name:?} must have a string value")),
            })
            .collect(),
        Some(_) => Err(r#"`headers` must be an object like {"name": "value"}"#.into()),
    }
}

/// A response: status and the first `limit` body bytes.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
    /// True when the body was longer than what was read.
    pub(crate) cut: bool,
    /// The `Location` header of a redirect that was not followed.
    pub(crate) location: Option<String>,
}

/// Why a call got no response.
#[derive(Debug)]
pub(crate) struct CallError {
    /// The attempt's time ran out (ureq's timeout, or any failure at or past
    /// the deadline).
    pub(crate) timed_out: bool,
    pub(crate) message: String,
}

/// Sends `request` with `agent`, the whole exchange bounded by `deadline`,
/// and reads up to `limit` body bytes. Blocking: run it through
/// [`run_abandonable`].
pub(crate) fn send(
    agent: &Agent,
    request: HttpRequest,
    deadline: Instant,
    limit: usize,
) -> Result<Reply, CallError> {
    let fail = |message: String, timed_out: bool| CallError {
        timed_out: timed_out || Instant::now() >= deadline,
        message,
    };
    let mut builder = Request::builder()
        .method(request.method)
        .uri(request.url.as_str());
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let timeout = deadline.saturating_duration_since(Instant::now());
    let sent = match request.body {
        Some(body) => builder
            .body(body)
            .map_err(|e| fail(format!("invalid request: {e}"), false))
            .and_then(|r| run_with_timeout(agent, r, timeout).map_err(|e| ureq_error(e, &fail))),
        None => builder
            .body(())
            .map_err(|e| fail(format!("invalid request: {e}"), false))
            .and_then(|r| run_with_timeout(agent, r, timeout).map_err(|e| ureq_error(e, &fail))),
    };
    let mut response = sent?;
    let status = response.status().as_u16();
    let location = (300..400)
        .contains(&status)
        .then(|| response.headers().get("location"))
        .flatten()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let mut body = Vec::new();
    response
        .body_mut()
        .as_reader()
        .take(limit as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| {
            // ureq's own errors come wrapped in io::Error.
            let timeout = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<ureq::Error>())
                .is_some_and(|inner| matches!(inner, ureq::Error::Timeout(_)));
            fail(format!("reading the response body: {e}"), timeout)
        })?;
    let cut = body.len() > limit;
    body.truncate(limit);
    Ok(Reply {
        status,
        body,
        cut,
        location,
    })
}

fn run_with_timeout<S: AsSendBody>(
    agent: &Agent,
    request: Request<S>,
    timeout: Duration,
) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
    let request = agent
        .configure_request(request)
        .timeout_global(Some(timeout))
        .build();
    agent.run(request)
}

fn ureq_error(e: ureq::Error, fail: &impl Fn(String, bool) -> CallError) -> CallError {
    let timed_out = match &e {
        ureq::Error::Timeout(_) => true,
        ureq::Error::Io(io) => io.kind() == std::io::ErrorKind::TimedOut,
        _ => false,
    };
    fail(e.to_string(), timed_out)
}

/// How a call run by [`run_abandonable`] ended.
pub(crate) enum Waited<T> {
    /// It returned.
    Done(T),
    /// The task was cancelled first; the call was abandoned.
    Cancelled,
    /// It ran well past the deadline; it was abandoned.
    Overdue,
    /// No helper thread could be started.
    NoThread(String),
}

/// Runs the blocking `call` on a short-lived helper thread and waits for it
/// while watching `ctx`'s cancel flag every ~10 ms. On cancel (or when the
/// call overruns the deadline by more than half a second) the call is
/// abandoned: its thread keeps running until the call's own timeout, which
/// must therefore be bounded by `ctx.deadline`.
pub(crate) fn run_abandonable<T: Send + 'static>(
    ctx: &TaskContext,
    name: &str,
    call: impl FnOnce() -> T + Send + 'static,
) -> Waited<T> {
    // Capacity 1, so the helper never blocks on sending after we have left.
    let (tx, rx) = crossbeam_channel::bounded(1);
    let spawned = crate::component::spawn_thread(name.into(), move || {
        let _ = tx.send(call());
    });
    if let Err(e) = spawned {
        return Waited::NoThread(format!("cannot start a request thread: {e}"));
    }
    let give_up = ctx.deadline + OVERDUE_GRACE;
    loop {
        match rx.recv_timeout(CANCEL_POLL) {
            Ok(value) => return Waited::Done(value),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            // The helper panicked.
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                return Waited::NoThread("the request thread panicked".into());
            }
        }
        if ctx.is_cancelled() {
            return Waited::Cancelled;
        }
        if Instant::now() >= give_up {
            return Waited::Overdue;
        }
    }
}

/// `data` for a response body: the body as JSON when it is complete, fits
/// [`BODY_EXCERPT`] and parses, else its text (cut to [`BODY_EXCERPT`] bytes,
/// ending in `…` when cut) as a JSON string; `null` for an empty body.
pub(crate) fn body_data(reply: &Reply) -> Value {
    if reply.body.is_empty() {
        return Value::Null;
    }
    if !reply.cut
        && reply.body.len() <= BODY_EXCERPT
        && let Ok(json) = serde_json::from_slice::<Value>(&reply.body)
    {
        return json;
    }
    let (text, cut) = excerpt(&reply.body, BODY_EXCERPT);
    Value::String(if cut || reply.cut {
        format!("{text}…")
    } else {
        text
    })
}

/// The first `max` bytes of `body` as text (cut at a character boundary),
/// and whether anything was cut.
pub(crate) fn excerpt(body: &[u8], max: usize) -> (String, bool) {
    let text = String::from_utf8_lossy(body);
    if text.len() <= max {
        return (text.into_owned(), false);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (text[..end].to_owned(), true)
}

/// A one-line body excerpt for the task log.
pub(crate) fn log_excerpt(body: &[u8]) -> String {
    let (text, cut) = excerpt(body, LOG_EXCERPT);
    let text = text.replace(['\r', '\n'], " ");
    if cut { format!("{text}…") } else { text }
}

/// `url` with any `user:password@` replaced, for logs.
pub(crate) fn redact(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let authority_end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    match url[start..authority_end].rfind('@') {
        Some(at) => format!("{}***@{}", &url[..start], &url[start + at + 1..]),
        None => url.to_owned(),
    }
}

impl Executor for HttpExecutor {
    fn execute(&self, ctx: &mut TaskContext) -> Outcome {
        let request = match HttpRequest::from_payload(&ctx.payload_json()) {
            Ok(request) => request,
            Err(message) => {
                ctx.log(format!("http: {message}"));
                return Outcome::fail(-1, message);
            }
        };
        if let Err(message) = check_allowed(&self.allow, &request.url, "http") {
            ctx.log(message.clone());
            return Outcome::fail(-1, message);
        }
        let what = format!("{} {}", request.method, redact(&request.url));
        if ctx.is_cancelled() {
            return Outcome::Cancelled;
        }
        if ctx.remaining().is_zero() {
            return timed_out(ctx, &what);
        }
        let started = Instant::now();
        let agent = self.agent.clone();
        let deadline = ctx.deadline;
        let waited = run_abandonable(ctx, "distsched-http", move || {
            send(&agent, request, deadline, DRAIN_LIMIT)
        });
        let ms = started.elapsed().as_millis();
        match waited {
            Waited::Done(Ok(reply)) => {
                ctx.log(format!("http: {what} -> {} in {ms} ms", reply.status));
                log_unfollowed(ctx, "http", &reply);
                if !reply.body.is_empty() {
                    ctx.log(format!("http: body: {}", log_excerpt(&reply.body)));
                }
                let result = TaskResult {
                    code: i64::from(reply.status),
                    message: format!("HTTP {}", reply.status),
                    data: body_data(&reply),
                };
                if (200..300).contains(&reply.status) {
                    Outcome::Success(result)
                } else {
                    Outcome::Failed(result)
                }
            }
            Waited::Done(Err(e)) if e.timed_out => timed_out(ctx, &what),
            Waited::Done(Err(e)) => {
                ctx.log(format!("http: {what} -> error in {ms} ms: {}", e.message));
                Outcome::fail(-1, e.message)
            }
            Waited::Overdue => timed_out(ctx, &what),
            Waited::Cancelled => {
                ctx.log(format!("http: {what} cancelled after {ms} ms"));
                Outcome::Cancelled
            }
            Waited::NoThread(message) => {
                ctx.log(format!("http: {message}"));
                Outcome::fail(-1, message)
            }
        }
    }
}

/// Notes a redirect that was not followed (only with `http_allow` set).
pub(crate) fn log_unfollowed(ctx: &mut TaskContext, who: &str, reply: &Reply) {
    if let Some(location) = &reply.location {
        ctx.log(format!(
            "{who}: redirect to {} not followed (http_allow is set)",
            redact(location)
        ));
    }
}

/// The [`Outcome::TimedOut`] of an HTTP-based call, logged.
pub(crate) fn timed_out(ctx: &mut TaskContext, what: &str) -> Outcome {
    let message = format!("timed out after {:?}", ctx.timeout);
    ctx.log(format!("{what}: {message}"));
    Outcome::TimedOut(TaskResult {
        code: -1,
        message,
        data: Value::Null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn payload_defaults_and_errors() {
        let get = HttpRequest::from_payload(&json!({"url": "http://h/x"})).unwrap();
        assert_eq!(get.method, Method::GET);
        let post =
            HttpRequest::from_payload(&json!({"url": "http://h/x", "body": {"a": 1}})).unwrap();
        assert_eq!(post.method, Method::POST);
        assert!(
            post.headers
                .contains(&("content-type".into(), "application/json".into()))
        );
        assert_eq!(post.body.as_deref(), Some(&br#"{"a":1}"#[..]));
        let text =
            HttpRequest::from_payload(&json!({"url": "http://h/", "method": "put", "body": "raw"}))
                .unwrap();
        assert_eq!(text.method, Method::PUT);
        assert!(text.headers.is_empty());

        for bad in [
            json!(null),
            json!({}),
            json!({"url": 3}),
            json!({"url": "not a url"}),
            json!({"url": "ftp://h/"}),
            json!({"url": "/relative"}),
            json!({"url": "http://h/", "method": "BREW"}),
            json!({"url": "http://h/", "headers": {"x": 1}}),
        ] {
            assert!(HttpRequest::from_payload(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn body_data_caps() {
        let reply = |body: &[u8], cut| Reply {
            status: 200,
            body: body.to_vec(),
            cut,
            location: None,
        };
        assert_eq!(body_data(&reply(br#"{"a":1}"#, false)), json!({"a": 1}));
        assert_eq!(body_data(&reply(b"hello", false)), json!("hello"));
        assert_eq!(body_data(&reply(b"", false)), Value::Null);
        let big = body_data(&reply(&vec![b'x'; 10_000], true));
        assert_eq!(big.as_str().unwrap().len(), BODY_EXCERPT + '…'.len_utf8());
    }

    #[test]
    fn http_allow_parses_entries() {
        let list = parse_http_allow(" API.example.com., h:8080,[::1]:9,[FE80::1],, ").unwrap();
        let shown: Vec<String> = list.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["api.example.com", "h:8080", "[::1]:9", "[fe80::1]"]);
        assert_eq!(parse_http_allow(""), Ok(vec![]));
        for bad in [
            "h:0", "h:99999", "h:x", "[::1", "[nope]", "[::1]x", "a b", "h/x", ":80",
        ] {
            let err = parse_http_allow(bad).unwrap_err();
            assert!(err.contains(bad.trim()), "{bad}: {err}");
        }
    }

    #[test]
    fn http_allow_checks_host_and_port() {
        let allow = parse_http_allow("ok.example,svc:8080,[::1]:9000").unwrap();
        let check = |url: &str| check_allowed(&allow, url, "http");
        assert_eq!(check("http://OK.example/x"), Ok(()));
        assert_eq!(check("http://ok.example:80/x"), Ok(()));
        assert_eq!(check("http://ok.example./x"), Ok(()));
        assert_eq!(check("http://svc:8080/"), Ok(()));
        assert_eq!(check("http://[::1]:9000/"), Ok(()));
        assert_eq!(
            check("http://evil.example/"),
            Err("http: host evil.example:80 not in http_allow".into())
        );
        assert!(check("http://ok.example:8080/").is_err(), "port not listed");
        assert_eq!(check("https://ok.example/"), Ok(()), "the scheme's default");
        assert!(
            check("https://ok.example:80/").is_err(),
            "80 is not https's"
        );
        assert!(check("http://svc/").is_err(), "80 is not 8080");
        assert!(
            check("http://ok.example@evil.example/").is_err(),
            "userinfo"
        );
        assert!(check("http://[::1]/").is_err());
        assert_eq!(check_allowed(&[], "http://evil.example/", "http"), Ok(()));
    }

    #[test]
    fn redacts_credentials() {
        assert_eq!(redact("http://u:p@h:1/x?y=@"), "http://***@h:1/x?y=@");
        assert_eq!(redact("http://h/x"), "http://h/x");
    }
}
