//! The HTTP server of a real `distsched node --http PORT` process against a
//! private Redis: probes follow Redis going away and coming back, `/metrics`
//! is valid Prometheus text whose counters move when tasks run, and the JSON
//! API round-trips tasks and jobs with the documented errors (401, 400, 404,
//! 405, 409, 413) and no crash.
//!
//! Requests go through a minimal HTTP/1.1 client over a `TcpStream` (one
//! request per connection, as the server serves them), so the test sees the
//! raw status line and headers.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};
use support::{NodeProc, RedisServer, free_port, unique_ns, wait_for, wait_until};

const TOKEN: &str = "t0ken-for-tests";
const WAIT: Duration = Duration::from_secs(20);

/// One HTTP response.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts `status` and a JSON `{"error": "..."}` body.
    fn assert_error(&self, status: u16, context: &str) {
        assert_eq!(self.status, status, "{context}: {self:?}");
        let error = self.json()["error"].as_str().map(String::from);
        assert!(
            error.is_some_and(|e| !e.is_empty()),
            "{context}: no JSON error in {:?}",
            self.body
        );
    }
}

/// Sends one request; `Err` when the connection fails (server not up yet).
fn send(port: u16, raw: &[u8]) -> std::io::Result<Resp> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    stream.write_all(raw)?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out)?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Resp {
        status,
        headers,
        body: body.to_string(),
    })
}

/// `method path` with `token` (if any) and a JSON or raw body.
fn call(port: u16, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Resp {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(t) = token {
        raw.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(b) = body {
        raw.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        ));
    } else {
        raw.push_str("\r\n");
    }
    send(port, raw.as_bytes()).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

fn get(port: u16, path: &str) -> Resp {
    call(port, "GET", path, Some(TOKEN), None)
}

fn post(port: u16, path: &str, body: &Value) -> Resp {
    call(port, "POST", path, Some(TOKEN), Some(&body.to_string()))
}

/// A node with the HTTP server (and a token when `token`), once `/health`
/// answers.
fn start_node(redis: &RedisServer, id: &str, token: bool, extra: &[&str]) -> (NodeProc, u16) {
    let port = free_port();
    let port_text = port.to_string();
    let mut args = vec!["--http", port_text.as_str()];
    if token {
        args.extend(["--http-token", TOKEN]);
    }
    args.extend(extra);
    let node = NodeProc::start(&redis.url(), &unique_ns(id), id, &args);
    wait_until(WAIT, "the HTTP server answers /health", || {
        send(port, b"GET /health HTTP/1.1\r\n\r\n").is_ok_and(|r| r.status == 200)
    });
    (node, port)
}

#[test]
fn readiness_follows_redis_and_health_does_not() {
    let mut redis = RedisServer::start();
    let (mut node, port) = start_node(&redis, "probe", false, &[]);
    wait_until(WAIT, "/ready is 200", || {
        call(port, "GET", "/ready", None, None).status == 200
    });
    let ready = call(port, "GET", "/ready", None, None).json();
    assert_eq!(ready["ready"], json!(true));

    redis.stop();
    let down = wait_for(WAIT, "/ready turns 503 once Redis is gone", || {
        let r = call(port, "GET", "/ready", None, None);
        (r.status == 503).then_some(r)
    });
    let body = down.json();
    assert_eq!(body["ready"], json!(false), "{body}");
    assert!(
        body["reason"].as_str().is_some_and(|r| r.contains("Redis")),
        "the reason names Redis: {body}"
    );
    let health = call(port, "GET", "/health", None, None);
    assert_eq!(health.status, 200, "liveness must not depend on Redis");
    let metrics = call(port, "GET", "/metrics", None, None);
    assert_eq!(metrics.status, 200, "a scrape still works without Redis");
    assert!(
        metrics.body.contains("distsched_redis_up 0"),
        "{}",
        metrics.body
    );

    redis.restart();
    wait_until(WAIT, "/ready is 200 again after Redis returns", || {
        call(port, "GET", "/ready", None, None).status == 200
    });
    assert!(node.is_running(), "the node survived the outage");
}

/// A parsed exposition: series (`name{labels}`) → value, and family types.
struct Exposition {
    samples: BTreeMap<String, f64>,
    types: BTreeMap<String, String>,
}

impl Exposition {
    fn value(&self, series: &str) -> f64 {
        *self
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("no series {series} in the scrape"))
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses `name{k="v",...}`; returns the name and the labels.
fn parse_series(text: &str, line: &str) -> (String, Vec<(String, String)>) {
    let Some((name, rest)) = text.split_once('{') else {
        assert!(valid_name(text), "bad metric name in {line:?}");
        return (text.to_string(), Vec::new());
    };
    assert!(valid_name(name), "bad metric name in {line:?}");
    let inner = rest
        .strip_suffix('}')
        .unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
    let mut labels = Vec::new();
    let mut chars = inner.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        assert!(
            valid_name(&key) && !key.starts_with("__"),
            "bad label name in {line:?}"
        );
        assert_eq!(
            chars.next(),
            Some('"'),
            "label value not quoted in {line:?}"
        );
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => match chars.next() {
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    Some('n') => value.push('\n'),
                    other => panic!("bad escape {other:?} in {line:?}"),
                },
                Some('"') => break,
                Some(c) => value.push(c),
                None => panic!("unterminated label value in {line:?}"),
            }
        }
        labels.push((key, value));
        match chars.next() {
            Some(',') | None => {}
            other => panic!("expected `,` after a label, got {other:?} in {line:?}"),
        }
    }
    (name.to_string(), labels)
}

/// Checks the text format line by line and parses it.
fn parse_exposition(text: &str) -> Exposition {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helps = HashSet::new();
    let mut samples = BTreeMap::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    assert!(text.ends_with('\n'), "the exposition ends with a line feed");
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default();
            assert!(valid_name(name), "bad HELP line {line:?}");
            assert!(helps.insert(name.to_string()), "second HELP for {name}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            assert!(valid_name(name), "bad TYPE line {line:?}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "bad type in {line:?}"
            );
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "second TYPE for {name}"
            );
            assert!(
                !finished.contains(name),
                "TYPE for {name} after its samples"
            );
            continue;
        }
        if line.starts_with('#') {
            continue; // a comment
        }
        let mut parts = line.rsplitn(2, ' ');
        let value_text = parts.next().unwrap_or_default();
        let series_text = parts
            .next()
            .unwrap_or_else(|| panic!("sample without value: {line:?}"));
        let value: f64 = match value_text {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("value is not a float in {line:?}")),
        };
        let (name, labels) = parse_series(series_text, line);
        let family = types
            .iter()
            .filter(|(f, kind)| {
                *f == &name
                    || (kind.as_str() == "histogram"
                        && ["_bucket", "_sum", "_count"]
                            .iter()
                            .any(|s| name == format!("{f}{s}")))
            })
            .map(|(f, _)| f.clone())
            .next()
            .unwrap_or_else(|| panic!("sample {name} has no # TYPE before it"));
        if current.as_ref() != Some(&family) {
            if let Some(prev) = current.replace(family.clone()) {
                finished.insert(prev);
            }
            assert!(
                !finished.contains(&family),
                "samples of {family} are not grouped together"
            );
        }
        if types[&family] == "histogram" && name.ends_with("_bucket") {
            assert!(
                labels.iter().any(|(k, _)| k == "le"),
                "bucket without le: {line:?}"
            );
        }
        let key = if labels.is_empty() {
            name
        } else {
            let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{name}{{{}}}", inner.join(","))
        };
        assert!(
            samples.insert(key.clone(), value).is_none(),
            "duplicate series {key}"
        );
    }
    for (family, kind) in &types {
        if kind != "histogram" {
            continue;
        }
        let mut buckets: Vec<(f64, f64)> = samples
            .iter()
            .filter_map(|(k, v)| {
                let le = k.strip_prefix(&format!("{family}_bucket{{le="))?;
                let le = le.strip_suffix('}')?;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((le, *v))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(
            buckets.windows(2).all(|w| w[0].1 <= w[1].1),
            "{family}: buckets are not cumulative"
        );
        assert_eq!(
            buckets.last().map(|b| b.0),
            Some(f64::INFINITY),
            "{family}: +Inf"
        );
        assert_eq!(
            buckets.last().map(|b| b.1),
            samples.get(&format!("{family}_count")).copied(),
            "{family}: +Inf bucket != _count"
        );
    }
    Exposition { samples, types }
}

#[test]
fn metrics_are_prometheus_text_and_counters_move() {
    let redis = RedisServer::start();
    let (_node, port) = start_node(&redis, "metrics", true, &["--exec", "fail=false"]);
    assert_eq!(call(port, "GET", "/metrics", None, None).status, 401);
    let scrape = || {
        let r = get(port, "/metrics");
        assert_eq!(r.status, 200, "{r:?}");
        assert!(
            r.header("Content-Type")
                .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")),
            "{r:?}"
        );
        parse_exposition(&r.body)
    };
    wait_until(WAIT, "this node leads", || {
        scrape().samples.get("distsched_is_leader") == Some(&1.0)
    });
    let before = scrape();
    assert_eq!(before.types["distsched_task_duration_seconds"], "histogram");
    assert_eq!(before.types["distsched_dispatched_total"], "counter");

    let mut ids = Vec::new();
    for n in 0..5 {
        let r = post(
            port,
            "/tasks",
            &json!({"executor": "noop", "payload": {"n": n}}),
        );
        assert_eq!(r.status, 201, "{r:?}");
        ids.push(r.json()["id"].as_str().unwrap().to_string());
    }
    let r = post(
        port,
        "/tasks",
        &json!({"executor": "fail", "max_retries": 1, "retry_delay_ms": 50, "jitter": 0.0}),
    );
    assert_eq!(r.status, 201, "{r:?}");
    ids.push(r.json()["id"].as_str().unwrap().to_string());
    for id in &ids {
        wait_until(WAIT, &format!("task {id} ended"), || {
            let t = get(port, &format!("/tasks/{id}")).json();
            matches!(t["status"].as_str(), Some("success" | "failed"))
        });
    }
    // The failing task's last result is reported, then counted.
    let after = wait_for(WAIT, "the failed task is counted", || {
        let s = scrape();
        (s.value("distsched_task_failures_total") > before.value("distsched_task_failures_total"))
            .then_some(s)
    });
    let moved = |series: &str| after.value(series) - before.value(series);
    assert_eq!(moved("distsched_task_attempts_total{outcome=success}"), 5.0);
    assert_eq!(moved("distsched_task_attempts_total{outcome=failed}"), 2.0);
    assert_eq!(moved("distsched_task_retries_total"), 1.0);
    assert_eq!(moved("distsched_task_failures_total"), 1.0);
    // Each attempt is dispatched once: by the leader, or by a report
    // refilling the slot it freed.
    assert_eq!(
        moved("distsched_dispatched_total") + moved("distsched_worker_refills_total"),
        7.0
    );
    assert_eq!(moved("distsched_task_duration_seconds_count"), 7.0);
    assert_eq!(moved("distsched_dispatch_latency_seconds_count"), 7.0);
    assert!(moved("distsched_http_responses_total{code=201}") >= 6.0);
    assert!(after.value("distsched_cluster_tasks_per_minute{outcome=succeeded}") >= 5.0);
    assert_eq!(after.value("distsched_workers_online"), 1.0);
    assert_eq!(after.value("distsched_redis_up"), 1.0);
    assert_eq!(after.value("distsched_tasks{state=running}"), 0.0);
    assert!(after.value("distsched_leader_epoch") >= 1.0);
    assert!(after.value("distsched_process_resident_memory_bytes") > 1e6);
    assert!(
        after
            .samples
            .keys()
            .any(|k| k.starts_with("distsched_build_info{version=")),
        "build info"
    );
}

#[test]
fn json_api_round_trip_auth_and_errors() {
    let redis = RedisServer::start();
    let (mut node, port) = start_node(&redis, "api", true, &[]);
    wait_until(WAIT, "/ready is 200", || {
        call(port, "GET", "/ready", None, None).status == 200
    });

    // Auth: every route but the probes needs the token.
    for (method, path) in [
        ("GET", "/tasks"),
        ("GET", "/jobs"),
        ("GET", "/leader"),
        ("POST", "/tasks"),
    ] {
        let r = call(port, method, path, None, None);
        r.assert_error(401, &format!("{method} {path} without a token"));
        assert_eq!(r.header("WWW-Authenticate"), Some("Bearer"));
        call(port, method, path, Some("wrong"), None).assert_error(401, "a wrong token");
    }
    assert_eq!(get(port, "/tasks").status, 200);

    // Tasks: submit (idempotent), show, list, logs, cancel.
    let spec = json!({"executor": "noop", "payload": {"x": 1}, "key": "once"});
    let first = post(port, "/tasks", &spec);
    assert_eq!(first.status, 201, "{first:?}");
    let id = first.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        first.header("Location"),
        Some(format!("/tasks/{id}").as_str())
    );
    let again = post(port, "/tasks", &spec);
    assert_eq!(again.status, 200, "an idempotent repeat creates nothing");
    assert_eq!(again.json(), json!({"id": id, "created": false}));
    let task = wait_for(WAIT, "the task succeeded", || {
        let t = get(port, &format!("/tasks/{id}")).json();
        (t["status"] == "success").then_some(t)
    });
    assert_eq!(task["result"]["data"], json!({"x": 1}), "{task}");
    let listed = get(port, "/tasks?status=success&limit=10").json();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == id.as_str()),
        "{listed}"
    );
    let logs = get(port, &format!("/tasks/{id}/logs"));
    assert_eq!(logs.status, 200);
    assert!(logs.json()["lines"].is_array());
    let later = post(port, "/tasks", &json!({"exec": "noop", "delay_ms": 600000}));
    let later_id = later.json()["id"].as_str().unwrap().to_string();
    let cancelled = post(port, &format!("/tasks/{later_id}/cancel"), &json!({}));
    assert_eq!(
        cancelled.json(),
        json!({"id": later_id, "was": "pending", "cancelled": true})
    );
    assert_eq!(
        get(port, &format!("/tasks/{later_id}")).json()["status"],
        "cancelled"
    );

    // Jobs: add, conflict, replace, list, show, trigger, remove.
    let job =
        json!({"id": "nightly", "executor": "noop", "cron": "0 3 * * *", "payload": {"j": 1}});
    let added = post(port, "/jobs", &job);
    assert_eq!(added.status, 201, "{added:?}");
    assert!(added.json()["next_fire_ms"].as_i64().is_some());
    post(port, "/jobs", &job).assert_error(409, "the id is taken");
    let replaced = post(
        port,
        "/jobs?replace=true",
        &json!({"id": "nightly", "executor": "noop"}),
    );
    assert_eq!(replaced.status, 200, "{replaced:?}");
    assert_eq!(
        replaced.json()["next_fire_ms"],
        Value::Null,
        "now on demand only"
    );
    let jobs = get(port, "/jobs").json();
    assert_eq!(jobs.as_array().map(Vec::len), Some(1), "{jobs}");
    assert_eq!(get(port, "/jobs/nightly").json()["spec"]["id"], "nightly");
    let fired = post(port, "/jobs/nightly/trigger", &json!({"payload": {"t": 2}}));
    assert_eq!(fired.status, 201, "{fired:?}");
    let fired_id = fired.json()["id"].as_str().unwrap().to_string();
    let run = wait_for(WAIT, "the triggered task succeeded", || {
        let t = get(port, &format!("/tasks/{fired_id}")).json();
        (t["status"] == "success").then_some(t)
    });
    assert_eq!(run["job"], "nightly");
    assert_eq!(run["result"]["data"], json!({"t": 2}));
    let removed = call(port, "DELETE", "/jobs/nightly", Some(TOKEN), None);
    assert_eq!(removed.json(), json!({"removed": "nightly"}));
    get(port, "/jobs/nightly").assert_error(404, "a removed job");
    call(port, "DELETE", "/jobs/nightly", Some(TOKEN), None).assert_error(404, "removed twice");
    post(port, "/jobs/nightly/trigger", &json!({})).assert_error(404, "trigger of a removed job");

    // Cluster views.
    let workers = get(port, "/workers").json();
    assert_eq!(workers[0]["id"], "api", "{workers}");
    assert_eq!(get(port, "/leader").json()["node"], "api");
    assert_eq!(get(port, "/stats").json()["workers_online"], 1);

    // Bad input: 400, 404, 405, 413, never a crash.
    post(
        port,
        "/jobs",
        &json!({"id": "bad", "executor": "noop", "cron": "61 * * * *"}),
    )
    .assert_error(400, "a bad cron expression");
    post(
        port,
        "/jobs",
        &json!({"id": "x", "executor": "noop", "bogus": 1}),
    )
    .assert_error(400, "an unknown job field");
    post(
        port,
        "/tasks",
        &json!({"executor": "noop", "priority": 99999}),
    )
    .assert_error(400, "an out-of-range priority");
    post(port, "/tasks", &json!([1, 2])).assert_error(400, "a body that is not an object");
    call(port, "POST", "/tasks", Some(TOKEN), Some("{\"executor\": "))
        .assert_error(400, "malformed JSON");
    call(port, "POST", "/tasks", Some(TOKEN), None).assert_error(400, "no body");
    get(port, "/tasks?status=bogus").assert_error(400, "an unknown status");
    get(port, "/tasks?limit=0").assert_error(400, "a zero limit");
    get(port, "/tasks?colour=red").assert_error(400, "an unknown query parameter");
    get(port, "/tasks/no-such-task").assert_error(404, "an unknown task");
    post(port, "/tasks/no-such-task/cancel", &json!({}))
        .assert_error(404, "cancel of an unknown task");
    get(port, "/tasks/no-such-task/logs").assert_error(404, "logs of an unknown task");
    get(port, "/nowhere").assert_error(404, "an unknown route");
    let put = call(port, "PUT", "/tasks", Some(TOKEN), Some("{}"));
    put.assert_error(405, "PUT /tasks");
    assert_eq!(put.header("Allow"), Some("GET, HEAD, POST"));
    call(port, "DELETE", "/health", None, None).assert_error(405, "DELETE /health");

    let big = format!(
        "{{\"executor\": \"noop\", \"payload\": \"{}\"}}",
        "a".repeat(2 << 20)
    );
    call(port, "POST", "/tasks", Some(TOKEN), Some(&big)).assert_error(413, "a 2 MiB body");
    let huge = b"GET /health HTTP/1.1\r\nContent-Length: 100000000000000\r\n\r\n";
    send(port, huge)
        .unwrap()
        .assert_error(413, "an absurd Content-Length");
    let chunked = format!(
        "POST /tasks HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
        big.len()
    );
    send(port, chunked.as_bytes())
        .unwrap()
        .assert_error(413, "a 2 MiB chunked body");
    send(port, b"NOT HTTP\r\n\r\n")
        .unwrap()
        .assert_error(400, "garbage");

    assert!(node.is_running(), "the node is still running");
    assert_eq!(get(port, "/health").status, 200);
}

const READ_TOKEN: &str = "r34d-only-t0ken";

/// The read token reads every GET route, gets 403 on every write (and the
/// write leaves nothing behind); no token or a wrong one gets 401 on
/// everything but the probes; the full token still writes.
#[test]
fn read_token_reads_and_cannot_write() {
    let redis = RedisServer::start();
    let (mut node, port) = start_node(
        &redis,
        "read-token",
        true,
        &["--http-read-token", READ_TOKEN],
    );
    let read = |path: &str| call(port, "GET", path, Some(READ_TOKEN), None);
    for path in ["/stats", "/tasks", "/jobs", "/workers", "/metrics"] {
        assert_eq!(read(path).status, 200, "GET {path} with the read token");
    }
    let writes: [(&str, &str, Option<&str>); 5] = [
        ("POST", "/tasks", Some(r#"{"executor": "noop"}"#)),
        ("POST", "/jobs", Some(r#"{"id": "j", "executor": "noop"}"#)),
        ("DELETE", "/jobs/j", None),
        ("POST", "/jobs/j/trigger", Some("{}")),
        ("POST", "/tasks/t/cancel", Some("{}")),
    ];
    for (method, path, body) in writes {
        let r = call(port, method, path, Some(READ_TOKEN), body);
        r.assert_error(403, &format!("{method} {path} with the read token"));
        call(port, method, path, None, body).assert_error(401, "a write without a token");
    }
    assert_eq!(
        read("/tasks").json(),
        json!([]),
        "the refused submit stored nothing"
    );
    assert_eq!(
        read("/jobs").json(),
        json!([]),
        "the refused job add stored nothing"
    );
    for path in ["/stats", "/tasks", "/metrics", "/workers", "/leader"] {
        call(port, "GET", path, None, None)
            .assert_error(401, &format!("GET {path} without a token"));
        call(port, "GET", path, Some("r34d"), None).assert_error(401, "a prefix of the read token");
    }
    for path in ["/health", "/ready"] {
        assert_eq!(
            call(port, "GET", path, None, None).status,
            200,
            "{path} needs no token"
        );
    }
    let full = post(port, "/tasks", &json!({"executor": "noop"}));
    assert_eq!(full.status, 201, "the full token writes: {full:?}");
    let id = full.json()["id"].as_str().unwrap().to_string();
    assert_eq!(read(&format!("/tasks/{id}")).status, 200);
    assert!(node.is_running());
}

/// Names are checked where they enter: a task id with `@` (a cron slot's
/// id), separators, whitespace or path characters, a bad tag or executor
/// name, a job id with `@` all get 400 and store nothing. A record already
/// stored under an odd id (as an older version could write) still reads
/// and cancels.
#[test]
fn names_are_checked_and_odd_stored_ids_still_work() {
    let redis = RedisServer::start();
    let port = free_port();
    let ns = unique_ns("names");
    let port_text = port.to_string();
    let mut node = NodeProc::start(
        &redis.url(),
        &ns,
        "names",
        &["--http", &port_text, "--http-token", TOKEN],
    );
    wait_until(WAIT, "the HTTP server answers /health", || {
        send(port, b"GET /health HTTP/1.1\r\n\r\n").is_ok_and(|r| r.status == 200)
    });
    let slot = post(
        port,
        "/tasks",
        &json!({"executor": "noop", "id": "tick@1798761600000", "delay_ms": 3600000}),
    );
    slot.assert_error(400, "a cron slot id");
    assert!(
        slot.json()["error"].as_str().unwrap().contains("reserved"),
        "{slot:?}"
    );
    for (what, body) in [
        ("a `|` in the id", json!({"executor": "noop", "id": "a|b"})),
        (
            "a space in the id",
            json!({"executor": "noop", "id": "a b"}),
        ),
        (
            "a newline in the id",
            json!({"executor": "noop", "id": "a\nb"}),
        ),
        ("a `/` in the id", json!({"executor": "noop", "id": "a/b"})),
        (
            "a 201-byte id",
            json!({"executor": "noop", "id": "x".repeat(201)}),
        ),
        (
            "a `,` in a tag",
            json!({"executor": "noop", "tags": ["a,b"]}),
        ),
        ("a `|` in the executor", json!({"executor": "x|y"})),
    ] {
        post(port, "/tasks", &body).assert_error(400, what);
    }
    post(port, "/jobs", &json!({"id": "j@1", "executor": "noop"}))
        .assert_error(400, "a job id with `@`");
    assert_eq!(get(port, "/tasks").json(), json!([]), "nothing was stored");
    assert_eq!(get(port, "/jobs").json(), json!([]), "nothing was stored");

    // An odd id written by an older version: a delayed task moved to it.
    let made = post(
        port,
        "/tasks",
        &json!({"executor": "noop", "id": "plain", "delay_ms": 3600000}),
    );
    assert_eq!(made.status, 201, "{made:?}");
    let keys = distsched::internal::Keys::new(&ns);
    let odd = "odd id|@1";
    let mut r = redis.client();
    let score: f64 = redis::cmd("ZSCORE")
        .arg(keys.delayed())
        .arg("plain")
        .query(&mut r)
        .expect("the delayed task is indexed");
    redis::pipe()
        .atomic()
        .cmd("RENAME")
        .arg(keys.task("plain"))
        .arg(keys.task(odd))
        .cmd("HSET")
        .arg(keys.task(odd))
        .arg("id")
        .arg(odd)
        .cmd("ZREM")
        .arg(keys.delayed())
        .arg("plain")
        .cmd("ZADD")
        .arg(keys.delayed())
        .arg(score)
        .arg(odd)
        .cmd("ZREM")
        .arg(keys.tasks())
        .arg("plain")
        .cmd("ZADD")
        .arg(keys.tasks())
        .arg(score)
        .arg(odd)
        .query::<()>(&mut r)
        .expect("move the task to an odd id");
    let path = "/tasks/odd%20id%7C%401";
    let shown = get(port, path);
    assert_eq!(shown.status, 200, "{shown:?}");
    assert_eq!(shown.json()["id"], odd);
    let cancelled = post(port, &format!("{path}/cancel"), &json!({}));
    assert_eq!(cancelled.json()["cancelled"], true, "{cancelled:?}");
    assert_eq!(get(port, path).json()["status"], "cancelled");
    let out = support::cli(&redis.url(), &ns, &["task", "show", odd]);
    assert!(out.status.success(), "the CLI reads it too: {out:?}");
    assert!(node.is_running());
}

/// The dashboard's files and routes: `/` serves the page with a strict
/// CSP and an ETag (304 when it matches) and needs no token; `/access`
/// says what a token allows without a 401; every new read route answers
/// the read token, refuses bad or out-of-bound parameters with 400 and
/// unknown ids with 404; the new writes are 403 with the read token and
/// work with the full one; a repeated costly read within the refresh
/// floor is served from memory; a search walks pages with its cursor.
#[test]
fn dashboard_routes_bounds_and_tokens() {
    let redis = RedisServer::start();
    let (mut node, port) = start_node(&redis, "dash-api", true, &["--http-read-token", READ_TOKEN]);
    let read = |path: &str| call(port, "GET", path, Some(READ_TOKEN), None);

    // Static files: no token, CSP, ETag, 304.
    let page = call(port, "GET", "/", None, None);
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.header("Content-Type")
            .unwrap()
            .starts_with("text/html")
    );
    let csp = page.header("Content-Security-Policy").expect("a CSP");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(page.body.contains("src=\"dashboard.js\""), "relative URLs");
    let etag = page.header("ETag").expect("an ETag").to_string();
    for path in [
        "/index.html",
        "/dashboard.js",
        "/dashboard.css",
        "/favicon.svg",
    ] {
        let r = call(port, "GET", path, None, None);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("ETag"), Some(etag.as_str()), "{path}");
        assert!(r.header("Content-Security-Policy").is_some(), "{path}");
        let raw = format!("GET {path} HTTP/1.1\r\nIf-None-Match: {etag}\r\n\r\n");
        let cached = send(port, raw.as_bytes()).unwrap();
        assert_eq!(cached.status, 304, "{path} with If-None-Match");
        assert!(cached.body.is_empty());
    }
    let stale = send(port, b"GET / HTTP/1.1\r\nIf-None-Match: \"0\"\r\n\r\n").unwrap();
    assert_eq!(stale.status, 200);
    call(port, "POST", "/", Some(TOKEN), Some("{}")).assert_error(405, "POST /");

    // What a token allows, never a 401.
    for (token, want) in [
        (None, "none"),
        (Some("wrong"), "none"),
        (Some(READ_TOKEN), "read"),
        (Some(TOKEN), "full"),
    ] {
        let r = call(port, "GET", "/access", token, None);
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["access"], json!(want), "{token:?}");
        assert_eq!(r.json()["token"], json!(true));
    }

    // Data for the reads.
    for i in 0..5 {
        let r = post(
            port,
            "/tasks",
            &json!({"executor": "noop", "payload": {"n": i, "tag": if i == 3 { "needle" } else { "hay" }}}),
        );
        assert_eq!(r.status, 201);
    }
    let delayed = post(
        port,
        "/tasks",
        &json!({"executor": "noop", "delay_ms": 600_000}),
    )
    .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        post(
            port,
            "/jobs",
            &json!({"id": "tick", "executor": "noop", "cron": "*/10 * * * * *"})
        )
        .status,
        201
    );

    for path in [
        "/search",
        "/search?status=pending&limit=10&window=100",
        "/failures",
        "/failures?window=10",
        "/history",
        "/history?minutes=1440",
        "/joblist",
        "/joblist?limit=1&fires=0&firings=0",
        "/jobs/tick/next",
        "/jobs/tick/next?count=100",
        &format!("/tasks/{delayed}/logs?after=0&limit=10"),
    ] {
        let r = read(path);
        assert_eq!(r.status, 200, "GET {path} with the read token: {r:?}");
    }
    assert_eq!(
        read("/history?minutes=1440")
            .json()
            .as_array()
            .unwrap()
            .len(),
        1440
    );
    assert_eq!(
        read("/jobs/tick/next?count=7").json()["next"]
            .as_array()
            .unwrap()
            .len(),
        7
    );
    for bad in [
        "/search?limit=0",
        "/search?limit=1001",
        "/search?window=0",
        "/search?window=10001",
        "/search?status=bogus",
        "/search?cursor=nope",
        "/search?colour=red",
        "/search?limit=x",
        "/failures?window=10001",
        "/history?minutes=0",
        "/history?minutes=1441",
        "/joblist?limit=101",
        "/joblist?fires=101",
        "/joblist?firings=51",
        "/joblist?cursor=-1",
        "/jobs/tick/next?count=0",
        "/jobs/tick/next?count=101",
        &format!("/tasks/{delayed}/logs?limit=1001"),
        &format!("/tasks/{delayed}/logs?after=x"),
        "/search?payload=%ff",
    ] {
        read(bad).assert_error(400, &format!("GET {bad}"));
    }
    let long = "x".repeat(300);
    read(&format!("/search?payload={long}")).assert_error(400, "a 300-byte payload search");
    read("/jobs/nope/next").assert_error(404, "next fires of an unknown job");
    read("/tasks/nope/logs?after=0").assert_error(404, "logs of an unknown task");

    // Search: filters, a payload substring, cursor paging.
    let found = read("/search?payload=needle").json();
    assert_eq!(found["tasks"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found["scanned"], json!(6));
    assert_eq!(found["complete"], json!(true));
    let mut seen = Vec::new();
    let mut cursor = String::new();
    for _ in 0..10 {
        let page = read(&format!("/search?limit=2&cursor={cursor}")).json();
        for t in page["tasks"].as_array().unwrap() {
            seen.push(t["id"].as_str().unwrap().to_string());
        }
        match page["cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(seen.len(), 6, "every task once: {seen:?}");
    assert_eq!(unique.len(), 6, "no task twice: {seen:?}");

    // The refresh floor: the same costly read again is served from memory.
    let first = read("/failures?window=77");
    let again = read("/failures?window=77");
    assert_eq!(first.header("X-Cache"), Some("miss"));
    assert_eq!(again.header("X-Cache"), Some("hit"));
    assert_eq!(first.body, again.body);

    // Writes: 403 with the read token, changing nothing; fine with the full one.
    for path in [
        format!("/tasks/{delayed}/rerun"),
        "/jobs/tick/disable".to_string(),
        "/jobs/tick/enable".to_string(),
    ] {
        call(port, "POST", &path, Some(READ_TOKEN), Some("{}"))
            .assert_error(403, &format!("POST {path} with the read token"));
        call(port, "GET", &path, Some(TOKEN), None).assert_error(405, &format!("GET {path}"));
    }
    assert_eq!(
        read("/search").json()["tasks"].as_array().unwrap().len(),
        6,
        "no rerun made"
    );
    let rerun = post(port, &format!("/tasks/{delayed}/rerun"), &json!({}));
    assert_eq!(rerun.status, 201, "{rerun:?}");
    let new_id = rerun.json()["id"].as_str().unwrap().to_string();
    assert_ne!(new_id, delayed);
    let new_task = get(port, &format!("/tasks/{new_id}")).json();
    assert_eq!(new_task["rerun_of"], json!(delayed));
    assert_eq!(new_task["executor"], json!("noop"));
    post(port, "/tasks/nope/rerun", &json!({})).assert_error(404, "rerun of an unknown task");
    assert_eq!(post(port, "/jobs/tick/disable", &json!({})).status, 200);
    let job = get(port, "/jobs/tick").json();
    assert_eq!(job["spec"]["enabled"], json!(false));
    assert_eq!(job["next_fire_ms"], json!(null));
    assert_eq!(read("/jobs/tick/next").json()["next"], json!([]));
    assert_eq!(post(port, "/jobs/tick/enable", &json!({})).status, 200);
    assert_eq!(
        get(port, "/jobs/tick").json()["spec"]["enabled"],
        json!(true)
    );
    post(port, "/jobs/nope/enable", &json!({})).assert_error(404, "enable an unknown job");
    assert!(node.is_running());
}
