//! The built-in executors (`shell`, `http`, `rpc`), called directly with a
//! `TaskContext`: no Redis, no node. HTTP and JSON-RPC run against a tiny
//! HTTP/1.1 server started in this file on 127.0.0.1:0.

mod support;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use distsched::executor::http::{BODY_EXCERPT, HttpExecutor};
use distsched::executor::rpc::RpcExecutor;
use distsched::executor::shell::{ShellExecutor, TAIL_LINES, parse_command};
use distsched::executor::{CancelFlag, Executor, Outcome, TaskContext, TaskResult};
use serde_json::{Value, json};

// ---------------------------------------------------------------- helpers

fn context(task_id: &str, payload: &str, timeout: Duration) -> (TaskContext, CancelFlag) {
    let cancel = CancelFlag::default();
    let ctx = TaskContext::new(task_id, "test", payload, timeout, cancel.clone());
    (ctx, cancel)
}

fn run(executor: &impl Executor, payload: &str, timeout: Duration) -> (Outcome, Vec<String>) {
    let (mut ctx, _cancel) = context("task-1", payload, timeout);
    let outcome = executor.execute(&mut ctx);
    (outcome, ctx.take_log())
}

fn sh(script: &str) -> ShellExecutor {
    ShellExecutor::command(vec!["sh".into(), "-c".into(), script.into()])
}

fn result(outcome: &Outcome) -> &TaskResult {
    outcome
        .result()
        .unwrap_or_else(|| panic!("no result in {outcome:?}"))
}

/// Polls `condition` every few milliseconds until it holds or `limit` passes.
fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// True when `pid` no longer runs: gone, or a zombie nobody reaped yet (in a
/// container, orphans go to a PID 1 that may never reap them).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            matches!(state, Some('Z' | 'X'))
        }
    }
}

/// A path in the temp dir unique to this test run.
fn temp_path(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    std::env::temp_dir().join(format!("distsched-exec-{}-{n}-{name}", std::process::id()))
}

/// Waits for a pid file written by a test command and returns the pid.
fn read_pid(path: &PathBuf) -> u32 {
    let mut pid = None;
    assert!(
        wait_until(Duration::from_secs(5), || {
            pid = std::fs::read_to_string(path)
                .ok()
                .and_then(|text| text.trim().parse().ok());
            pid.is_some()
        }),
        "no pid in {path:?}"
    );
    pid.unwrap()
}

fn assert_gone(pid: u32) {
    assert!(
        wait_until(Duration::from_secs(5), || process_gone(pid)),
        "process {pid} still running"
    );
}

// ------------------------------------------------------------------ shell

#[test]
fn shell_payload_on_stdin_and_in_env() {
    let executor = sh(
        r#"cat; echo "env=$DISTSCHED_PAYLOAD"; echo "id=$DISTSCHED_TASK_ID attempt=$DISTSCHED_ATTEMPT job=$DISTSCHED_JOB""#,
    );
    let (mut ctx, _cancel) = context("t-42", r#"{"x":1}"#, Duration::from_secs(10));
    ctx.attempt = 2;
    ctx.job = Some("nightly".into());
    let outcome = executor.execute(&mut ctx);
    let log = ctx.take_log();
    assert_eq!(
        outcome,
        Outcome::Success(TaskResult {
            code: 0,
            message: "exit 0".into(),
            data: json!({"x": 1}),
        }),
        "{log:#?}"
    );
    for line in [
        r#"stdout: {"x":1}"#,
        r#"stdout: env={"x":1}"#,
        "stdout: id=t-42 attempt=2 job=nightly",
    ] {
        assert!(log.iter().any(|l| l == line), "{line:?} not in {log:#?}");
    }

    // No job: DISTSCHED_JOB is set and empty; no payload: `null`.
    let (_, log) = run(
        &sh(r#"echo "job=[$DISTSCHED_JOB] set=${DISTSCHED_JOB+yes}"; cat"#),
        "null",
        Duration::from_secs(10),
    );
    assert!(
        log.iter().any(|l| l == "stdout: job=[] set=yes"),
        "{log:#?}"
    );
    assert!(log.iter().any(|l| l == "stdout: null"), "{log:#?}");
}

#[test]
fn shell_exit_code_and_last_json_line() {
    let (outcome, log) = run(
        &sh(
            r#"echo '{"a":1}'; echo '[2]'; echo plain; echo first >&2; echo 'disk full' >&2; exit 3"#,
        ),
        "null",
        Duration::from_secs(10),
    );
    assert_eq!(
        outcome,
        Outcome::Failed(TaskResult {
            code: 3,
            message: "exit 3: disk full".into(),
            data: json!([2]),
        }),
        "{log:#?}"
    );
    assert!(log.iter().any(|l| l == "stderr: first"), "{log:#?}");

    // A program that ignores its stdin and exits at once is fine (EPIPE),
    // even with a payload larger than the pipe buffer.
    let big = format!("\"{}\"", "x".repeat(300_000));
    let (outcome, _) = run(&sh("echo 7"), &big, Duration::from_secs(10));
    assert_eq!(
        outcome,
        Outcome::Success(TaskResult {
            code: 0,
            message: "exit 0".into(),
            data: json!(7)
        })
    );
    // Too large for the environment: only on stdin.
    let (outcome, log) = run(
        &sh(r#"echo "env=${DISTSCHED_PAYLOAD-unset}"; wc -c"#),
        &big,
        Duration::from_secs(10),
    );
    assert_eq!(result(&outcome).data, json!(big.len() + 1), "{log:#?}");
    assert!(log.iter().any(|l| l == "stdout: env=unset"), "{log:#?}");

    let (outcome, _) = run(&sh("kill -9 $$"), "null", Duration::from_secs(10));
    let r = result(&outcome);
    assert_eq!(
        (outcome.kind(), r.code, r.message.as_str()),
        ("failed", 137, "killed by signal 9")
    );

    // Operator text as a worker reads `--exec NAME=COMMAND`.
    let executor = ShellExecutor::command(parse_command("sh -c 'exit 4'").unwrap());
    let (outcome, _) = run(&executor, "null", Duration::from_secs(10));
    assert_eq!(result(&outcome).code, 4);
}

#[test]
fn shell_output_keeps_only_the_tail() {
    let (outcome, log) = run(
        &ShellExecutor::command(parse_command("seq -f 'line %g' 10000").unwrap()),
        "null",
        Duration::from_secs(10),
    );
    assert_eq!(outcome.kind(), "success");
    let stdout: Vec<&String> = log
        .iter()
        .filter(|l| l.starts_with("stdout: line"))
        .collect();
    assert_eq!(stdout.len(), TAIL_LINES);
    assert_eq!(stdout.first().unwrap().as_str(), "stdout: line 9901");
    assert_eq!(stdout.last().unwrap().as_str(), "stdout: line 10000");
    assert!(
        log.iter()
            .any(|l| l == "stdout: (9900 earlier lines dropped)"),
        "{log:#?}"
    );
}

#[test]
fn shell_timeout_kills_the_whole_group() {
    let pidfile = temp_path("timeout.pid");
    let script = format!("sleep 300 & echo $! > {}; wait", pidfile.display());
    let started = Instant::now();
    let (outcome, log) = run(&sh(&script), "null", Duration::from_millis(300));
    let elapsed = started.elapsed();
    assert_eq!(outcome.kind(), "timeout", "{log:#?}");
    let r = result(&outcome);
    assert_eq!(r.code, -1);
    assert!(r.message.starts_with("timed out after"), "{}", r.message);
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    // SIGTERM was enough: no wait for the 3 s kill grace.
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert_gone(read_pid(&pidfile));
    let _ = std::fs::remove_file(pidfile);
}

#[test]
fn shell_sigkill_after_the_grace_when_sigterm_is_ignored() {
    let pidfile = temp_path("stubborn.pid");
    let script = format!(
        "trap '' TERM; sleep 300 & echo $! > {}; wait",
        pidfile.display()
    );
    let executor = sh(&script).with_kill_grace(Duration::from_millis(200));
    let started = Instant::now();
    let (outcome, log) = run(&executor, "null", Duration::from_millis(200));
    let elapsed = started.elapsed();
    assert_eq!(outcome.kind(), "timeout", "{log:#?}");
    assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_gone(read_pid(&pidfile));
    let _ = std::fs::remove_file(pidfile);
}

#[test]
fn shell_cancel_stops_the_command_and_its_group() {
    let pidfile = temp_path("cancel.pid");
    let script = format!("sleep 300 & echo $! > {}; wait", pidfile.display());
    let (mut ctx, cancel) = context("t-cancel", "null", Duration::from_secs(30));
    let canceller = {
        let pidfile = pidfile.clone();
        thread::spawn(move || {
            let pid = read_pid(&pidfile);
            cancel.cancel();
            (pid, Instant::now())
        })
    };
    let outcome = sh(&script).execute(&mut ctx);
    let returned = Instant::now();
    let (pid, cancelled_at) = canceller.join().unwrap();
    assert_eq!(outcome, Outcome::Cancelled, "{:#?}", ctx.take_log());
    assert!(returned - cancelled_at < Duration::from_secs(1));
    assert_gone(pid);
    let _ = std::fs::remove_file(pidfile);
}

#[test]
fn shell_background_leftovers_do_not_hang_the_worker() {
    // The background `sleep` keeps stdout open after `sh` exits: its group is
    // killed so that the readers see end-of-file.
    let pidfile = temp_path("stray.pid");
    let script = format!(
        "sleep 300 & echo $! > {}; echo '{{\"done\":true}}'",
        pidfile.display()
    );
    let started = Instant::now();
    let (outcome, log) = run(&sh(&script), "null", Duration::from_secs(30));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        outcome,
        Outcome::Success(TaskResult {
            code: 0,
            message: "exit 0".into(),
            data: json!({"done": true})
        }),
        "{log:#?}"
    );
    assert_gone(read_pid(&pidfile));
    let _ = std::fs::remove_file(pidfile);
}

#[test]
fn shell_spawn_failure_is_127() {
    let executor = ShellExecutor::command(vec!["/nonexistent/distsched-no-such-program".into()]);
    let (outcome, _) = run(&executor, "null", Duration::from_secs(5));
    let r = result(&outcome);
    assert_eq!((outcome.kind(), r.code), ("failed", 127));
    assert!(r.message.contains("No such file"), "{}", r.message);

    let script = temp_path("not-executable.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let executor = ShellExecutor::command(vec![script.display().to_string()]);
    let (outcome, _) = run(&executor, "null", Duration::from_secs(5));
    let r = result(&outcome);
    assert_eq!((outcome.kind(), r.code), ("failed", 127));
    assert!(r.message.contains("ermission denied"), "{}", r.message);
    let _ = std::fs::remove_file(script);
}

#[test]
fn shell_adhoc_runs_the_payload_argv() {
    let payload =
        json!({"argv": ["sh", "-c", "cat; echo \"env=$DISTSCHED_PAYLOAD\""], "input": {"k": [1]}});
    let (outcome, log) = run(
        &ShellExecutor::adhoc(),
        &payload.to_string(),
        Duration::from_secs(10),
    );
    assert_eq!(result(&outcome).data, json!({"k": [1]}), "{log:#?}");
    assert!(
        log.iter().any(|l| l == r#"stdout: env={"k":[1]}"#),
        "{log:#?}"
    );

    // Without `input`, the program gets `null`.
    let payload = json!({"argv": ["cat"]});
    let (outcome, _) = run(
        &ShellExecutor::adhoc(),
        &payload.to_string(),
        Duration::from_secs(10),
    );
    assert_eq!(
        outcome,
        Outcome::Success(TaskResult {
            code: 0,
            message: "exit 0".into(),
            data: Value::Null
        })
    );

    // A declared command ignores an argv in the payload.
    let (outcome, log) = run(
        &ShellExecutor::command(vec!["echo".into(), "fixed".into()]),
        &json!({"argv": ["false"]}).to_string(),
        Duration::from_secs(10),
    );
    assert_eq!(outcome.kind(), "success");
    assert!(log.iter().any(|l| l == "stdout: fixed"), "{log:#?}");
}

#[test]
fn shell_adhoc_rejects_bad_payloads() {
    for (payload, expect) in [
        ("null", "no payload"),
        ("{not json", "not JSON"),
        (r#"{"input": 1}"#, "missing field `argv`"),
        (r#"{"argv": []}"#, "empty argv"),
        (r#"{"argv": [""]}"#, "empty argv"),
        (r#"{"argv": ["echo", 1]}"#, "invalid type"),
        (r#"{"argv": "echo hi"}"#, "invalid type"),
        (r#"{"args": ["echo"]}"#, "unknown field `args`"),
    ] {
        let (outcome, _) = run(&ShellExecutor::adhoc(), payload, Duration::from_secs(5));
        let r = result(&outcome);
        assert_eq!((outcome.kind(), r.code), ("failed", -1), "{payload}");
        assert!(r.message.contains(expect), "{payload}: {}", r.message);
    }
}

// ------------------------------------------------------- test HTTP server

/// A tiny HTTP/1.1 server: one thread per connection, `Connection: close`.
struct Server {
    base: String,
    /// One message each time a `/slow` request arrives.
    slow_hits: Receiver<()>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (hits, slow_hits) = crossbeam_channel::unbounded();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let hits = hits.clone();
                thread::spawn(move || {
                    let _ = serve(stream, &hits);
                });
            }
        });
        Server { base, slow_hits }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

fn serve(stream: TcpStream, slow_hits: &Sender<()>) -> std::io::Result<()> {
    let support::StubRequest {
        method,
        path,
        headers,
        body,
    } = support::read_stub_request(&stream)?;

    let (status, content_type, reply) = match path.as_str() {
        "/ok" => (
            200,
            "application/json",
            json!({"hello": "world", "n": 1}).to_string(),
        ),
        "/text" => (200, "text/plain", "hello world".to_owned()),
        "/fail" => (
            500,
            "application/json",
            json!({"error": "broken"}).to_string(),
        ),
        "/big" => (200, "text/plain", "y".repeat(3 * BODY_EXCERPT)),
        "/echo" => (
            200,
            "application/json",
            json!({"method": method, "headers": headers, "body": body}).to_string(),
        ),
        "/slow" => {
            let _ = slow_hits.send(());
            // Simulated server latency, not synchronisation: the client
            // must give up (timeout) or be abandoned (cancel) long before.
            thread::sleep(Duration::from_secs(2));
            (200, "application/json", "{}".to_owned())
        }
        "/rpc" => (200, "application/json", rpc_reply(&body).to_string()),
        _ => (404, "text/plain", "not found".to_owned()),
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reply.len()
    )?;
    if method != "HEAD" {
        stream.write_all(reply.as_bytes())?;
    }
    stream.flush()
}

/// JSON-RPC: `add` sums its params, `boom` fails, `echo` returns the request.
fn rpc_reply(body: &str) -> Value {
    let Ok(request) = serde_json::from_str::<Value>(body) else {
        return json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "parse error"}});
    };
    let id = request["id"].clone();
    match request["method"].as_str() {
        Some("add") => {
            let sum: i64 = request["params"]
                .as_array()
                .map(|ps| ps.iter().filter_map(Value::as_i64).sum())
                .unwrap_or(0);
            json!({"jsonrpc": "2.0", "id": id, "result": sum})
        }
        Some("boom") => {
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32000, "message": "boom"}})
        }
        Some("echo") => json!({"jsonrpc": "2.0", "id": id, "result": request}),
        _ => {
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "method not found"}})
        }
    }
}

/// A port nothing listens on.
fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/")
}

/// Runs `executor` against `/slow` and cancels once the server has the
/// request; returns the outcome and how long it took to return after the
/// cancel.
fn cancel_during_slow_call(
    executor: &impl Executor,
    server: &Server,
    payload: Value,
) -> (Outcome, Duration) {
    let (mut ctx, cancel) = context("t-cancel", &payload.to_string(), Duration::from_secs(30));
    let hits = server.slow_hits.clone();
    let canceller = thread::spawn(move || {
        hits.recv_timeout(Duration::from_secs(5))
            .expect("the slow request never arrived");
        cancel.cancel();
        Instant::now()
    });
    let outcome = executor.execute(&mut ctx);
    let returned = Instant::now();
    let cancelled_at = canceller.join().unwrap();
    (outcome, returned - cancelled_at)
}

// ------------------------------------------------------------------- http

#[test]
fn http_success_and_bodies() {
    let server = Server::start();
    let http = HttpExecutor::new();
    let (outcome, log) = run(
        &http,
        &json!({"url": server.url("/ok")}).to_string(),
        Duration::from_secs(5),
    );
    assert_eq!(
        outcome,
        Outcome::Success(TaskResult {
            code: 200,
            message: "HTTP 200".into(),
            data: json!({"hello": "world", "n": 1}),
        })
    );
    let url = server.url("/ok");
    assert!(
        log.iter().any(|l| l.contains("GET")
            && l.contains(&url)
            && l.contains("200")
            && l.ends_with(" ms")),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("body:") && l.contains("hello")),
        "{log:#?}"
    );

    let (outcome, _) = run(
        &http,
        &json!({"url": server.url("/text")}).to_string(),
        Duration::from_secs(5),
    );
    assert_eq!(result(&outcome).data, json!("hello world"));

    let (outcome, _) = run(
        &http,
        &json!({"url": server.url("/big")}).to_string(),
        Duration::from_secs(5),
    );
    let data = result(&outcome).data.as_str().unwrap().to_owned();
    assert!(
        data.len() <= BODY_EXCERPT + 3 && data.starts_with("yyy"),
        "{}",
        data.len()
    );

    let (outcome, _) = run(
        &http,
        &json!({"url": server.url("/ok"), "method": "HEAD"}).to_string(),
        Duration::from_secs(5),
    );
    assert_eq!(
        (result(&outcome).code, &result(&outcome).data),
        (200, &Value::Null)
    );
}

#[test]
fn http_sends_method_headers_and_body() {
    let server = Server::start();
    let http = HttpExecutor::new();
    let payload =
        json!({"url": server.url("/echo"), "headers": {"X-Test": "yes"}, "body": {"a": 1}});
    let (outcome, _) = run(&http, &payload.to_string(), Duration::from_secs(5));
    let echo = &result(&outcome).data;
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["headers"]["content-type"], "application/json");
    assert_eq!(echo["headers"]["x-test"], "yes");
    assert_eq!(echo["body"], r#"{"a":1}"#);

    let payload = json!({"url": server.url("/echo"), "method": "put", "body": "raw text"});
    let (outcome, _) = run(&http, &payload.to_string(), Duration::from_secs(5));
    let echo = &result(&outcome).data;
    assert_eq!(
        (echo["method"].as_str(), echo["body"].as_str()),
        (Some("PUT"), Some("raw text"))
    );
    assert!(echo["headers"].get("content-type").is_none(), "{echo}");
}

#[test]
fn http_failures() {
    let server = Server::start();
    let http = HttpExecutor::new();
    let (outcome, _) = run(
        &http,
        &json!({"url": server.url("/fail")}).to_string(),
        Duration::from_secs(5),
    );
    assert_eq!(
        outcome,
        Outcome::Failed(TaskResult {
            code: 500,
            message: "HTTP 500".into(),
            data: json!({"error": "broken"}),
        })
    );

    let (outcome, _) = run(
        &http,
        &json!({"url": server.url("/missing")}).to_string(),
        Duration::from_secs(5),
    );
    assert_eq!((outcome.kind(), result(&outcome).code), ("failed", 404));

    let (outcome, log) = run(
        &http,
        &json!({"url": closed_port_url()}).to_string(),
        Duration::from_secs(5),
    );
    assert_eq!(
        (outcome.kind(), result(&outcome).code),
        ("failed", -1),
        "{log:#?}"
    );

    for payload in [
        json!(null),
        json!({"method": "GET"}),
        json!({"url": "not a url"}),
        json!({"url": server.url("/ok"), "method": "BREW"}),
        json!({"url": server.url("/ok"), "method": 7}),
    ] {
        let (outcome, _) = run(&http, &payload.to_string(), Duration::from_secs(5));
        assert_eq!(
            (outcome.kind(), result(&outcome).code),
            ("failed", -1),
            "{payload}"
        );
    }
}

#[test]
fn http_timeout_and_cancel() {
    let server = Server::start();
    let http = HttpExecutor::new();
    let started = Instant::now();
    let (outcome, log) = run(
        &http,
        &json!({"url": server.url("/slow")}).to_string(),
        Duration::from_millis(200),
    );
    let elapsed = started.elapsed();
    assert_eq!(outcome.kind(), "timeout", "{outcome:?} {log:#?}");
    assert_eq!(result(&outcome).code, -1);
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    // Drain the hit of the timed-out request.
    server
        .slow_hits
        .recv_timeout(Duration::from_secs(5))
        .unwrap();

    let (outcome, after_cancel) =
        cancel_during_slow_call(&http, &server, json!({"url": server.url("/slow")}));
    assert_eq!(outcome, Outcome::Cancelled);
    assert!(
        after_cancel < Duration::from_millis(500),
        "{after_cancel:?}"
    );
}

// -------------------------------------------------------------------- rpc

#[test]
fn rpc_result_and_error() {
    let server = Server::start();
    let rpc = RpcExecutor::new();
    let payload = json!({"url": server.url("/rpc"), "method": "add", "params": [1, 2, 39]});
    let (outcome, log) = run(&rpc, &payload.to_string(), Duration::from_secs(5));
    assert_eq!(outcome, Outcome::ok(json!(42)));
    assert!(
        log.iter()
            .any(|l| l.contains("add") && l.contains("HTTP 200")),
        "{log:#?}"
    );

    // The envelope: JSON-RPC 2.0, id = task id / attempt.
    let payload = json!({"url": server.url("/rpc"), "method": "echo", "params": {"k": "v"}, "headers": {"X-Trace": "1"}});
    let (mut ctx, _cancel) = context("t-rpc", &payload.to_string(), Duration::from_secs(5));
    ctx.attempt = 3;
    let outcome = rpc.execute(&mut ctx);
    assert_eq!(
        result(&outcome).data,
        json!({"jsonrpc": "2.0", "id": "t-rpc/3", "method": "echo", "params": {"k": "v"}})
    );

    let payload = json!({"url": server.url("/rpc"), "method": "boom"});
    let (outcome, _) = run(&rpc, &payload.to_string(), Duration::from_secs(5));
    assert_eq!(
        outcome,
        Outcome::Failed(TaskResult {
            code: -32000,
            message: "boom".into(),
            data: Value::Null,
        })
    );
}

#[test]
fn rpc_failures() {
    let server = Server::start();
    let rpc = RpcExecutor::new();
    let (outcome, _) = run(
        &rpc,
        &json!({"url": server.url("/fail"), "method": "add"}).to_string(),
        Duration::from_secs(5),
    );
    assert_eq!((outcome.kind(), result(&outcome).code), ("failed", 500));

    // JSON, but not JSON-RPC.
    let (outcome, _) = run(
        &rpc,
        &json!({"url": server.url("/ok"), "method": "add"}).to_string(),
        Duration::from_secs(5),
    );
    let r = result(&outcome);
    assert_eq!((outcome.kind(), r.code), ("failed", -1));
    assert!(
        r.message.contains("not a JSON-RPC response"),
        "{}",
        r.message
    );

    for payload in [
        json!({"url": server.url("/rpc")}),
        json!({"method": "add"}),
        json!({"url": server.url("/rpc"), "method": "add", "params": 3}),
    ] {
        let (outcome, _) = run(&rpc, &payload.to_string(), Duration::from_secs(5));
        assert_eq!(
            (outcome.kind(), result(&outcome).code),
            ("failed", -1),
            "{payload}"
        );
    }
}

#[test]
fn rpc_timeout_and_cancel() {
    let server = Server::start();
    let rpc = RpcExecutor::new();
    let payload = json!({"url": server.url("/slow"), "method": "add"});
    let started = Instant::now();
    let (outcome, _) = run(&rpc, &payload.to_string(), Duration::from_millis(200));
    assert_eq!(outcome.kind(), "timeout");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    server
        .slow_hits
        .recv_timeout(Duration::from_secs(5))
        .unwrap();

    let (outcome, after_cancel) = cancel_during_slow_call(&rpc, &server, payload);
    assert_eq!(outcome, Outcome::Cancelled);
    assert!(
        after_cancel < Duration::from_millis(500),
        "{after_cancel:?}"
    );
}
