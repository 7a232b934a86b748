//! The `rpc` executor: one JSON-RPC 2.0 call over HTTP POST per task (the
//! seed's gRPC executor needs an async runtime; JSON-RPC does not).
//!
//! Owns the JSON-RPC envelope: building the request from the payload and
//! mapping the response's `result` or `error` to an [`Outcome`]. The HTTP
//! exchange, its timeout and cancel handling are the
//! [`http`](super::http::HttpExecutor) executor's: [`RpcExecutor::execute`]
//! runs on one of the worker's pool threads and the request on a short-lived
//! helper thread that a cancel abandons.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value, json};
use ureq::Agent;
use ureq::http::Method;

use super::http::{self, AllowedHost, HttpRequest, Waited};
use super::{Executor, Outcome, TaskContext, TaskResult};

/// Largest response body accepted, in bytes: a JSON-RPC result must be read
/// whole to be parsed; a larger one fails the attempt.
pub const MAX_RESPONSE: usize = 1024 * 1024;

/// Makes one JSON-RPC 2.0 call per task.
///
/// Payload: `{"url": "http://...", "method": "name", "params": <array or
/// object, optional>, "headers": {"name": "value"} (optional)}`. The request
/// is `{"jsonrpc": "2.0", "id": "<task id>/<attempt>", "method": ...,
/// "params": ...}`, POSTed with content-type application/json; the whole
/// call is bounded by the time the attempt has left.
///
/// A response with `result` is a success (code 0, `data` = the result); with
/// `error`, a failure with the error's `code`, `message` and `data`. A non-2xx
/// status is a failure with that status as code; a response that is not
/// JSON-RPC (or answers another id) a failure with code -1.
#[derive(Debug, Clone)]
pub struct RpcExecutor {
    /// Created once so that connections to the same host are reused.
    agent: Agent,
    /// The `http_allow` list; empty: any host.
    allow: Arc<[AllowedHost]>,
}

impl RpcExecutor {
    /// An executor with its own connection pool, for any host.
    pub fn new() -> RpcExecutor {
        RpcExecutor::with_allow(Vec::new())
    }

    /// An executor that only calls the hosts in `allow` (setting
    /// `http_allow`; empty: any host), without following redirects when
    /// the list is set (as [`HttpExecutor`](super::http::HttpExecutor)).
    pub fn with_allow(allow: Vec<AllowedHost>) -> RpcExecutor {
        RpcExecutor {
            agent: http::agent(allow.is_empty()),
            allow: allow.into(),
        }
    }
}

impl Default for RpcExecutor {
    fn default() -> RpcExecutor {
        RpcExecutor::new()
    }
}

/// A validated call: the HTTP request and the method name (for logs).
struct Call {
    request: HttpRequest,
    method: String,
    id: String,
}

impl Call {
    fn from_payload(ctx: &TaskContext) -> Result<Call, String> {
        let payload = ctx.payload_json();
        let Some(fields) = payload.as_object() else {
            return Err(
                r#"rpc payload must be an object like {"url": "http://...", "method": "name"}"#
                    .into(),
            );
        };
        let url = match fields.get("url") {
            Some(Value::String(url)) => http::check_url(url)?,
            Some(_) => return Err("rpc payload: `url` must be a string".into()),
            None => return Err("rpc payload: missing `url`".into()),
        };
        let method = match fields.get("method") {
            Some(Value::String(method)) if !method.is_empty() => method.clone(),
            Some(_) => return Err("rpc payload: `method` must be a non-empty string".into()),
            None => return Err("rpc payload: missing `method`".into()),
        };
        let id = format!("{}/{}", ctx.task_id, ctx.attempt);
        let mut envelope = Map::new();
        envelope.insert("jsonrpc".into(), json!("2.0"));
        envelope.insert("id".into(), json!(id));
        envelope.insert("method".into(), json!(method));
        match fields.get("params") {
            None | Some(Value::Null) => {}
            Some(params @ (Value::Array(_) | Value::Object(_))) => {
                envelope.insert("params".into(), params.clone());
            }
            Some(_) => return Err("rpc payload: `params` must be an array or an object".into()),
        }
        let mut headers = http::parse_headers(fields.get("headers"))?;
        // The envelope is JSON whatever the caller's headers say.
        headers.retain(|(name, _)| !name.eq_ignore_ascii_case("content-type"));
        headers.push(("content-type".into(), "application/json".into()));
        Ok(Call {
            request: HttpRequest {
                method: Method::POST,
                url,
                headers,
                body: Some(Value::Object(envelope).to_string().into_bytes()),
            },
            method,
            id,
        })
    }
}

impl Executor for RpcExecutor {
    fn execute(&self, ctx: &mut TaskContext) -> Outcome {
        let call = match Call::from_payload(ctx) {
            Ok(call) => call,
            Err(message) => {
                ctx.log(format!("rpc: {message}"));
                return Outcome::fail(-1, message);
            }
        };
        if let Err(message) = http::check_allowed(&self.allow, &call.request.url, "rpc") {
            ctx.log(message.clone());
            return Outcome::fail(-1, message);
        }
        let what = format!(
            "rpc: {} at {}",
            call.method,
            http::redact(&call.request.url)
        );
        if ctx.is_cancelled() {
            return Outcome::Cancelled;
        }
        if ctx.remaining().is_zero() {
            return http::timed_out(ctx, &what);
        }
        let started = Instant::now();
        let agent = self.agent.clone();
        let deadline = ctx.deadline;
        let request = call.request;
        let waited = http::run_abandonable(ctx, "distsched-rpc", move || {
            http::send(&agent, request, deadline, MAX_RESPONSE)
        });
        let ms = started.elapsed().as_millis();
        let reply = match waited {
            Waited::Done(Ok(reply)) => reply,
            Waited::Done(Err(e)) if e.timed_out => return http::timed_out(ctx, &what),
            Waited::Done(Err(e)) => {
                ctx.log(format!("{what} -> error in {ms} ms: {}", e.message));
                return Outcome::fail(-1, e.message);
            }
            Waited::Overdue => return http::timed_out(ctx, &what),
            Waited::Cancelled => {
                ctx.log(format!("{what} cancelled after {ms} ms"));
                return Outcome::Cancelled;
            }
            Waited::NoThread(message) => {
                ctx.log(format!("rpc: {message}"));
                return Outcome::fail(-1, message);
            }
        };
        http::log_unfollowed(ctx, "rpc", &reply);
        let outcome = interpret(&reply, &call.id);
        match outcome.result() {
            Some(result) => ctx.log(format!(
                "{what} -> HTTP {} in {ms} ms: {} {}",
                reply.status,
                outcome.kind(),
                result.message
            )),
            None => ctx.log(format!("{what} -> HTTP {} in {ms} ms", reply.status)),
        }
        outcome
    }
}

/// The outcome a JSON-RPC reply stands for.
fn interpret(reply: &http::Reply, id: &str) -> Outcome {
    if !(200..300).contains(&reply.status) {
        return Outcome::Failed(TaskResult {
            code: i64::from(reply.status),
            message: format!("HTTP {}", reply.status),
            data: http::body_data(reply),
        });
    }
    let not_rpc = |why: &str| {
        let (text, _) = http::excerpt(&reply.body, 200);
        Outcome::fail(-1, format!("not a JSON-RPC response ({why}): {text}"))
    };
    if reply.cut {
        return Outcome::fail(
            -1,
            format!("JSON-RPC response larger than {MAX_RESPONSE} bytes"),
        );
    }
    let Ok(Value::Object(response)) = serde_json::from_slice::<Value>(&reply.body) else {
        return not_rpc("not a JSON object");
    };
    // A null id is what a server sends when it could not read ours.
    match response.get("id") {
        None | Some(Value::Null) => {}
        Some(Value::String(got)) if got == id => {}
        Some(other) => return not_rpc(&format!("answers id {other}, not {id:?}")),
    }
    if let Some(error) = response.get("error").filter(|e| !e.is_null()) {
        let code = error.get("code").and_then(Value::as_i64).unwrap_or(-1);
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("JSON-RPC error without a message");
        return Outcome::Failed(TaskResult {
            code,
            message: message.to_owned(),
            data: error.get("data").cloned().unwrap_or(Value::Null),
        });
    }
    match response.get("result") {
        Some(result) => Outcome::ok(result.clone()),
        None => not_rpc("neither `result` nor `error`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> http::Reply {
        http::Reply {
            status,
            body: body.as_bytes().to_vec(),
            cut: false,
            location: None,
        }
    }

    #[test]
    fn interprets_replies() {
        let ok = interpret(
            &reply(200, r#"{"jsonrpc":"2.0","id":"t/1","result":[1]}"#),
            "t/1",
        );
        assert_eq!(ok, Outcome::ok(json!([1])));
        let err = interpret(
            &reply(
                200,
                r#"{"jsonrpc":"2.0","id":"t/1","error":{"code":-32601,"message":"nope","data":{"x":1}}}"#,
            ),
            "t/1",
        );
        assert_eq!(
            err,
            Outcome::Failed(TaskResult {
                code: -32601,
                message: "nope".into(),
                data: json!({"x": 1})
            })
        );
        let status = interpret(&reply(503, "busy"), "t/1");
        assert_eq!(status.result().unwrap().code, 503);
        for body in [
            "not json",
            "[1]",
            r#"{"jsonrpc":"2.0","id":"t/1"}"#,
            r#"{"id":"t/2","result":1}"#,
        ] {
            let outcome = interpret(&reply(200, body), "t/1");
            assert_eq!(outcome.result().unwrap().code, -1, "{body}");
            assert_eq!(outcome.kind(), "failed");
        }
    }
}
