//! The routes of the HTTP server, run on the `http-N` handler threads: the
//! probes (no auth), then, behind the optional bearer token, `/metrics`,
//! `/stats` and the JSON API over [`crate::Client`].
//!
//! Errors are JSON `{"error": "..."}`: 400 bad input (malformed JSON,
//! unknown field, invalid value), 401 token missing or wrong, 403 a write
//! with the read-only token, 404 unknown
//! route or id, 405 wrong method (with `Allow`), 409 job id taken, 413 body
//! over 1 MiB, 503 Redis unreachable.

use super::{Access, Handler, Reply, Request, assets, json_body, scrape, views};
use crate::balancer::Balancer;
use crate::client::ListFilter;
use crate::error::Error;
use crate::model::job::JobSpec;
use crate::model::task::{Status, TaskSpec};
use serde::Deserialize;
use serde_json::json;

/// Most tasks one `GET /tasks` returns.
const LIST_MAX: usize = 1000;

/// `GET /health`: 200 `{"status": "ok", …}` while every supervised
/// component runs; 503 `{"status": "failing", "down": [names], …}` while
/// one is restarting or failed. Both list every component (state,
/// policy, restarts, last error). Redis is not asked: liveness does not
/// depend on it.
fn health(h: &Handler) -> Reply {
    let components = h.ctx.health.snapshot();
    let down: Vec<&str> = components
        .iter()
        .filter(|c| c.is_down())
        .map(|c| c.name.as_str())
        .collect();
    if down.is_empty() {
        Reply::json(200, &json!({"status": "ok", "components": components}))
    } else {
        Reply::json(
            503,
            &json!({"status": "failing", "down": down, "components": components}),
        )
    }
}

/// Answers one request.
pub(super) fn route(h: &mut Handler, request: &Request) -> Reply {
    let (path, query) = request
        .target
        .split_once('?')
        .unwrap_or((&request.target, ""));
    let Some(segments) = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode(s, false))
        .collect::<Option<Vec<String>>>()
    else {
        return Reply::error(400, "bad percent-encoding in the path");
    };
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = request.method.as_str();
    let read = matches!(method, "GET" | "HEAD");
    match seg.as_slice() {
        ["health"] if read => return health(h),
        ["ready"] if read => return scrape::ready(h),
        ["health" | "ready"] => return not_allowed("GET, HEAD"),
        _ => {}
    }
    // The dashboard's files hold no data: no token needed.
    if assets::is_asset(path) {
        return if read {
            assets::serve(path, request)
        } else {
            not_allowed("GET, HEAD")
        };
    }
    let access = h.access(request);
    // What the caller's token allows, asked by the dashboard before it
    // reads anything: answered whatever the token, so a page without one
    // learns it must ask for one without a 401 in the browser's console.
    if seg.as_slice() == ["access"] {
        return if read {
            views::access(h, access)
        } else {
            not_allowed("GET, HEAD")
        };
    }
    match access {
        Access::Full => {}
        Access::Read if read => {}
        Access::Read => {
            return Reply::error(
                403,
                "the read-only token (http_read_token) allows GET and HEAD only; writes need http_token",
            );
        }
        Access::None => {
            return Reply::error(
                401,
                "missing or wrong bearer token (Authorization: Bearer TOKEN)",
            )
            .with_header("WWW-Authenticate", "Bearer");
        }
    }
    if let Some(reply) = views::route(h, &seg, method, query, &request.target) {
        return reply;
    }
    match (seg.as_slice(), read, method) {
        #[cfg(feature = "failpoints")]
        (["failpoints", name], _, "PUT") => {
            let actions = String::from_utf8_lossy(&request.body).trim().to_string();
            match crate::failpoints::set(name, &actions) {
                Ok(()) => Reply::json(200, &json!({"failpoint": name, "actions": actions})),
                Err(e) => Reply::error(400, &e.to_string()),
            }
        }
        #[cfg(feature = "failpoints")]
        (["failpoints", name], _, "DELETE") => {
            crate::failpoints::remove(name);
            Reply::json(200, &json!({"failpoint": name, "removed": true}))
        }
        (["metrics"], true, _) => scrape::metrics(h),
        (["stats"], true, _) => result(200, h.api.stats()),
        (["leader"], true, _) => match h.api.leader() {
            Ok(Some(status)) => Reply::json(200, &status),
            Ok(None) => Reply::error(404, "no leader: the lease is free"),
            Err(e) => Reply::from_error(&e),
        },
        (["workers"], true, _) => result(200, h.api.nodes()),
        (["tasks"], true, _) => list_tasks(h, query),
        (["tasks"], _, "POST") => submit(h, request),
        (["tasks", id], true, _) => result(200, h.api.task(id)),
        (["tasks", id, "cancel"], _, "POST") => match h.api.cancel(id) {
            Ok(was) => Reply::json(
                200,
                &json!({"id": id, "was": was, "cancelled": !was.is_terminal()}),
            ),
            Err(e) => Reply::from_error(&e),
        },
        (["tasks", id, "logs"], true, _) => match h.api.logs(id) {
            Ok(lines) => Reply::json(200, &json!({"id": id, "lines": lines})),
            Err(e) => Reply::from_error(&e),
        },
        (["jobs"], true, _) => result(200, h.api.jobs()),
        (["jobs"], _, "POST") => add_job(h, request, query),
        (["jobs", id], true, _) => result(200, h.api.job(id)),
        (["jobs", id], _, "DELETE") => match h.api.remove_job(id) {
            Ok(()) => Reply::json(200, &json!({"removed": id})),
            Err(e) => Reply::from_error(&e),
        },
        (["jobs", id, "trigger"], _, "POST") => trigger(h, request, id),
        (["metrics" | "stats" | "leader" | "workers" | "tasks" | "jobs"], ..)
        | (["tasks" | "jobs", _], ..)
        | (["tasks", _, "logs"], ..) => not_allowed(allowed(&seg)),
        (["tasks", _, "cancel"] | ["jobs", _, "trigger"], ..) => not_allowed("POST"),
        _ => Reply::error(404, &format!("no route for {path}")),
    }
}

/// The methods a known path takes, for 405's `Allow`.
fn allowed(seg: &[&str]) -> &'static str {
    match seg {
        ["tasks"] | ["jobs"] => "GET, HEAD, POST",
        ["jobs", _] => "GET, HEAD, DELETE",
        _ => "GET, HEAD",
    }
}

fn not_allowed(allow: &'static str) -> Reply {
    Reply::error(405, &format!("method not allowed here (allowed: {allow})"))
        .with_header("Allow", allow)
}

fn result<T: serde::Serialize>(status: u16, r: crate::Result<T>) -> Reply {
    match r {
        Ok(v) => Reply::json(status, &v),
        Err(e) => Reply::from_error(&e),
    }
}

/// The body of `POST /tasks`: a task spec with durations in ms, the same
/// names and defaults as `task submit` and the jobs file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskRequest {
    #[serde(alias = "exec")]
    executor: String,
    #[serde(default)]
    payload: serde_json::Value,
    priority: Option<i32>,
    delay_ms: Option<u64>,
    at_ms: Option<u64>,
    timeout_ms: Option<u64>,
    expires_ms: Option<u64>,
    max_retries: Option<u32>,
    retry_delay_ms: Option<u64>,
    backoff: Option<f64>,
    max_delay_ms: Option<u64>,
    jitter: Option<f64>,
    key: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    balancer: Option<String>,
    route_key: Option<String>,
    id: Option<String>,
}

impl TaskRequest {
    fn into_spec(self) -> crate::Result<TaskSpec> {
        use std::time::Duration;
        let ms = Duration::from_millis;
        let mut spec = TaskSpec::new(self.executor).with_payload(&self.payload);
        if let Some(p) = self.priority {
            spec.priority = p;
        }
        spec.delay = self.delay_ms.map(ms);
        spec.not_before_ms = self.at_ms;
        if let Some(t) = self.timeout_ms {
            spec.timeout = ms(t);
        }
        spec.expires = self.expires_ms.map(ms);
        if let Some(r) = self.max_retries {
            spec.max_retries = r;
        }
        if let Some(d) = self.retry_delay_ms {
            spec.retry_delay = ms(d);
        }
        if let Some(b) = self.backoff {
            spec.backoff = b;
        }
        if let Some(d) = self.max_delay_ms {
            spec.max_delay = ms(d);
        }
        if let Some(j) = self.jitter {
            spec.jitter = j;
        }
        spec.key = self.key;
        spec.tags = self.tags;
        spec.balancer = self.balancer.as_deref().map(Balancer::parse).transpose()?;
        spec.route_key = self.route_key;
        spec.id = self.id;
        spec.validate()?;
        Ok(spec)
    }
}

/// A JSON object body decoded into `T`; a missing body is an error.
fn body_as<T: serde::de::DeserializeOwned>(request: &Request) -> Result<T, Reply> {
    let value = json_body(request)?
        .ok_or_else(|| Reply::error(400, "the request needs a JSON object body"))?;
    serde_json::from_value(value).map_err(|e| Reply::error(400, &format!("invalid body: {e}")))
}

fn submit(h: &mut Handler, request: &Request) -> Reply {
    let spec = match body_as::<TaskRequest>(request)
        .and_then(|t| t.into_spec().map_err(|e| Reply::from_error(&e)))
    {
        Ok(s) => s,
        Err(reply) => return reply,
    };
    match h.api.submit(&spec) {
        Ok(s) => {
            let location = format!("/tasks/{}", s.id);
            Reply::json(if s.created { 201 } else { 200 }, &s).with_header("Location", location)
        }
        Err(e) => Reply::from_error(&e),
    }
}

fn list_tasks(h: &mut Handler, query: &str) -> Reply {
    let mut filter = ListFilter {
        limit: 100,
        ..ListFilter::default()
    };
    for (name, value) in query_pairs(query) {
        let (Some(name), Some(value)) = (name, value) else {
            return Reply::error(400, "bad percent-encoding in the query");
        };
        match name.as_str() {
            "status" if !value.is_empty() => match Status::parse(&value) {
                Ok(s) => filter.status = Some(s),
                Err(e) => return Reply::from_error(&e),
            },
            "job" if !value.is_empty() => filter.job = Some(value),
            "limit" => match value.parse::<usize>() {
                Ok(n) if (1..=LIST_MAX).contains(&n) => filter.limit = n,
                _ => {
                    return Reply::error(
                        400,
                        &format!("invalid limit `{value}`: expected 1 to {LIST_MAX}"),
                    );
                }
            },
            "status" | "job" => {}
            other => {
                return Reply::error(
                    400,
                    &format!("unknown query parameter `{other}` (expected status, job, limit)"),
                );
            }
        }
    }
    result(200, h.api.list(&filter))
}

fn add_job(h: &mut Handler, request: &Request, query: &str) -> Reply {
    let replace = query_pairs(query)
        .any(|(n, v)| n.as_deref() == Some("replace") && v.as_deref() == Some("true"));
    let spec: JobSpec = match body_as(request) {
        Ok(s) => s,
        Err(reply) => return reply,
    };
    if let Err(e) = spec.validate() {
        return Reply::from_error(&e);
    }
    let created = if replace {
        h.api.put_job(&spec).map_err(|e| Reply::from_error(&e))
    } else {
        match h.api.add_job(&spec) {
            Ok(()) => Ok(true),
            // The definition is valid (checked above): a refusal now means
            // the id is taken.
            Err(Error::Config(_)) => Err(Reply::error(
                409,
                &format!(
                    "job `{}` already exists (POST /jobs?replace=true updates it)",
                    spec.id
                ),
            )),
            Err(e) => Err(Reply::from_error(&e)),
        }
    };
    match created.and_then(|created| {
        h.api
            .job(&spec.id)
            .map(|status| (created, status))
            .map_err(|e| Reply::from_error(&e))
    }) {
        Ok((created, status)) => Reply::json(if created { 201 } else { 200 }, &status)
            .with_header("Location", format!("/jobs/{}", spec.id)),
        Err(reply) => reply,
    }
}

/// The optional body of `POST /jobs/{id}/trigger`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerRequest {
    payload: Option<serde_json::Value>,
}

fn trigger(h: &mut Handler, request: &Request, id: &str) -> Reply {
    let body = match json_body(request) {
        Ok(None) => TriggerRequest::default(),
        Ok(Some(v)) => match serde_json::from_value(v) {
            Ok(t) => t,
            Err(e) => return Reply::error(400, &format!("invalid body: {e}")),
        },
        Err(reply) => return reply,
    };
    match h.api.trigger_job(id, body.payload.as_ref()) {
        Ok(s) => {
            let location = format!("/tasks/{}", s.id);
            Reply::json(201, &s).with_header("Location", location)
        }
        Err(e) => Reply::from_error(&e),
    }
}

/// `a=1&b=x%20y` → decoded pairs (`None` where the encoding is bad).
pub(super) fn query_pairs(
    query: &str,
) -> impl Iterator<Item = (Option<String>, Option<String>)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(n, true), percent_decode(v, true))
    })
}

/// Decodes `%XX` escapes (and `+` as a space in queries); `None` when an
/// escape is malformed or the result is not UTF-8.
fn percent_decode(text: &str, plus_is_space: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(
            percent_decode("job%40123", false).as_deref(),
            Some("job@123")
        );
        assert_eq!(percent_decode("a+b", true).as_deref(), Some("a b"));
        assert_eq!(percent_decode("a+b", false).as_deref(), Some("a+b"));
        assert_eq!(percent_decode("%zz", false), None);
        assert_eq!(percent_decode("%4", false), None);
        assert_eq!(percent_decode("%ff", false), None);
        let pairs: Vec<_> = query_pairs("status=failed&job=a%2Fb&&x").collect();
        assert_eq!(
            pairs,
            vec![
                (Some("status".into()), Some("failed".into())),
                (Some("job".into()), Some("a/b".into())),
                (Some("x".into()), Some(String::new())),
            ]
        );
    }

    #[test]
    fn task_request_defaults_and_refusals() {
        let t: TaskRequest =
            serde_json::from_value(json!({"exec": "noop", "timeout_ms": 1500})).unwrap();
        let spec = t.into_spec().unwrap();
        assert_eq!(spec.executor, "noop");
        assert_eq!(spec.payload, "null");
        assert_eq!(spec.timeout.as_millis(), 1500);
        assert_eq!(spec.max_retries, 3);
        assert!(
            serde_json::from_value::<TaskRequest>(json!({"executor": "x", "bogus": 1})).is_err()
        );
        let bad: TaskRequest =
            serde_json::from_value(json!({"executor": "x", "priority": 5000})).unwrap();
        assert!(bad.into_spec().is_err());
    }
}
