//! What a task can reach, through real node processes: a shell task's
//! environment carries none of the node's settings or secrets (`task_env`),
//! a worker offers only the built-ins it is told to (`builtin`), the `http`
//! and `rpc` executors call only the hosts of `http_allow`, and a chatty
//! task's log stays within its byte cap over all its retries.

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use distsched::executor::MAX_TASK_LOG_BYTES;
use distsched::{Client, Status, Task, TaskSpec};
use serde_json::json;

use support::*;

/// How long any single wait in this file may take before the test fails.
const WAIT: Duration = Duration::from_secs(20);

fn run_to_end(client: &mut Client, spec: &TaskSpec) -> (Task, Vec<String>) {
    let id = client.submit(spec).expect("submit").id;
    let task = client
        .wait(&id, WAIT)
        .expect("wait")
        .unwrap_or_else(|| panic!("task {id} did not end within {WAIT:?}"));
    let log = client.logs(&id).expect("logs");
    (task, log)
}

/// A node started with its Redis password in `DISTSCHED_REDIS_URL` (and in
/// an unrelated `MY_REDIS`), `DISTSCHED_HTTP_TOKEN` and a stray
/// `DISTSCHED_FOO` runs `/usr/bin/env` as a task: the printed environment
/// (the task's log) holds neither secret, no `DISTSCHED_*` variable but the
/// task's own four, and still the node's ordinary variables. A second node
/// with `--task-env PATH` gives its task PATH and nothing else of its own.
#[test]
fn shell_tasks_never_see_the_nodes_settings_or_secrets() {
    const PASSWORD: &str = "pw-Redis-4f9c1e";
    const TOKEN: &str = "sekrit-token-77ab";
    let redis = RedisServer::start();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(PASSWORD)
        .query(&mut redis.client())
        .expect("set a Redis password");
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{}", redis.port());
    let ns = unique_ns("task-env");
    let env = [
        ("DISTSCHED_REDIS_URL", url.as_str()),
        ("DISTSCHED_HTTP_TOKEN", TOKEN),
        ("DISTSCHED_FOO", "bar"),
        ("MY_REDIS", url.as_str()),
        ("PLAIN_VAR", "hello"),
        ("HOME", "/tmp"),
    ];
    let _a = NodeProc::start_with_env(
        &url,
        &ns,
        "env-a",
        &["--exec", "envdump=/usr/bin/env"],
        &env,
    );
    let _b = NodeProc::start_with_env(
        &url,
        &ns,
        "env-b",
        &["--exec", "envpath=/usr/bin/env", "--task-env", "PATH"],
        &env,
    );
    let mut client = Client::open(&url, &ns).expect("client");

    let (task, log) = run_to_end(&mut client, &TaskSpec::new("envdump").with_retries(0));
    assert_eq!(task.status, Status::Success, "{task:?}\n{log:#?}");
    let text = log.join("\n");
    assert!(
        !text.contains(PASSWORD),
        "the Redis password leaked:\n{text}"
    );
    assert!(!text.contains(TOKEN), "the HTTP token leaked:\n{text}");
    let vars: Vec<&str> = log
        .iter()
        .filter_map(|l| l.split_once("stdout: ").map(|(_, v)| v))
        .collect();
    let ours: Vec<&str> = vars
        .iter()
        .filter_map(|v| v.split_once('=').map(|(name, _)| name))
        .filter(|name| name.starts_with("DISTSCHED_"))
        .collect();
    let mut sorted = ours.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [
            "DISTSCHED_ATTEMPT",
            "DISTSCHED_JOB",
            "DISTSCHED_PAYLOAD",
            "DISTSCHED_TASK_ID"
        ],
        "only the task's own DISTSCHED_ variables:\n{text}"
    );
    assert!(vars.contains(&"PLAIN_VAR=hello"), "{text}");
    assert!(vars.contains(&"HOME=/tmp"), "{text}");
    assert!(
        text.contains("not passed to the task (the value holds a node secret): MY_REDIS"),
        "the withheld variable is named in the log:\n{text}"
    );

    let (task, log) = run_to_end(&mut client, &TaskSpec::new("envpath").with_retries(0));
    assert_eq!(task.status, Status::Success, "{task:?}\n{log:#?}");
    let names: Vec<&str> = log
        .iter()
        .filter_map(|l| l.split_once("stdout: ").map(|(_, v)| v))
        .filter_map(|v| v.split_once('=').map(|(name, _)| name))
        .filter(|name| !name.starts_with("DISTSCHED_"))
        .collect();
    assert_eq!(names, ["PATH"], "{log:#?}");
}

/// A stub HTTP server on 127.0.0.1 that counts requests per path: `/ok`
/// answers 200, `/rpc` a JSON-RPC result, `/redirect` a 302 to
/// `http://localhost:PORT/ok` (the same server under a name not allowed).
struct Stub {
    port: u16,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl Stub {
    fn start() -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let counted = hits.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let hits = counted.clone();
                thread::spawn(move || {
                    let _ = serve(stream, port, &hits);
                });
            }
        });
        Stub { port, hits }
    }

    fn total(&self) -> usize {
        self.hits.lock().unwrap().values().sum()
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

fn serve(
    stream: TcpStream,
    port: u16,
    hits: &Mutex<HashMap<String, usize>>,
) -> std::io::Result<()> {
    let request = read_stub_request(&stream)?;
    *hits
        .lock()
        .unwrap()
        .entry(request.path.clone())
        .or_insert(0) += 1;
    let (status, extra, body) = match request.path.as_str() {
        "/ok" => ("200 OK", String::new(), "{\"ok\":true}".to_string()),
        "/rpc" => {
            let id = serde_json::from_str::<serde_json::Value>(&request.body)
                .map(|r| r["id"].clone())
                .unwrap_or_default();
            let reply = json!({"jsonrpc": "2.0", "id": id, "result": 42});
            ("200 OK", String::new(), reply.to_string())
        }
        "/redirect" => (
            "302 Found",
            format!("Location: http://localhost:{port}/ok\r\n"),
            String::new(),
        ),
        _ => ("404 Not Found", String::new(), String::new()),
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

fn http_task(url: &str) -> TaskSpec {
    TaskSpec::new("http")
        .with_payload(&json!({ "url": url }))
        .with_retries(0)
}

/// With `--http-allow 127.0.0.1:PORT`, an `http` or `rpc` task for
/// `localhost:PORT` (the same stub, under a name not listed) fails with
/// `http: host localhost:PORT not in http_allow` and the stub receives
/// nothing; a listed URL works; a redirect to an unlisted host is not
/// followed (the 302 is the failed result, and its target gets no request).
#[test]
fn http_and_rpc_call_only_the_allowed_hosts() {
    let redis = RedisServer::start();
    let ns = unique_ns("http-allow");
    let stub = Stub::start();
    let port = stub.port;
    let allow = format!("127.0.0.1:{port}");
    let _node = NodeProc::start(&redis.url(), &ns, "allow-1", &["--http-allow", &allow]);
    let mut client = Client::open(&redis.url(), &ns).expect("client");

    let refused = format!("host localhost:{port} not in http_allow");
    let (task, log) = run_to_end(
        &mut client,
        &http_task(&format!("http://localhost:{port}/ok")),
    );
    assert_eq!(task.status, Status::Failed, "{task:?}");
    let result = task.result.clone().expect("a result");
    assert_eq!(result.message, format!("http: {refused}"), "{log:#?}");
    let rpc = TaskSpec::new("rpc")
        .with_payload(&json!({"url": format!("http://LOCALHOST:{port}/rpc"), "method": "m"}))
        .with_retries(0);
    let (task, log) = run_to_end(&mut client, &rpc);
    assert_eq!(task.status, Status::Failed, "{task:?}");
    assert_eq!(
        task.result.clone().expect("a result").message,
        format!("rpc: {refused}"),
        "{log:#?}"
    );
    assert_eq!(stub.total(), 0, "a refused URL sent a request");

    let (task, log) = run_to_end(
        &mut client,
        &http_task(&format!("http://127.0.0.1:{port}/ok")),
    );
    assert_eq!(task.status, Status::Success, "{task:?}\n{log:#?}");
    let rpc = TaskSpec::new("rpc")
        .with_payload(&json!({"url": format!("http://127.0.0.1:{port}/rpc"), "method": "m"}))
        .with_retries(0);
    let (task, log) = run_to_end(&mut client, &rpc);
    assert_eq!(task.status, Status::Success, "{task:?}\n{log:#?}");
    assert_eq!((stub.hits("/ok"), stub.hits("/rpc")), (1, 1));

    let (task, log) = run_to_end(
        &mut client,
        &http_task(&format!("http://127.0.0.1:{port}/redirect")),
    );
    assert_eq!(task.status, Status::Failed, "{task:?}");
    assert_eq!(task.result.clone().expect("a result").code, 302);
    assert!(
        log.iter().any(|l| l.contains(&format!(
            "redirect to http://localhost:{port}/ok not followed"
        ))),
        "{log:#?}"
    );
    assert_eq!(stub.hits("/ok"), 1, "the redirect was followed");
}

/// A `--builtin none` worker offers no built-in executor, so an `http` task
/// waits (pending, with a reason) while a `--builtin noop` worker runs
/// `noop` tasks; neither runs `http`.
#[test]
fn a_worker_offers_only_the_listed_builtins() {
    let redis = RedisServer::start();
    let ns = unique_ns("builtin");
    let stub = Stub::start();
    let _none = NodeProc::start(&redis.url(), &ns, "bare", &["--builtin", "none"]);
    let _noop = NodeProc::start(&redis.url(), &ns, "noop-only", &["--builtin", "noop"]);
    let mut client = Client::open(&redis.url(), &ns).expect("client");

    let http = client
        .submit(&http_task(&format!("http://127.0.0.1:{}/ok", stub.port)))
        .expect("submit")
        .id;
    let (task, log) = run_to_end(&mut client, &TaskSpec::new("noop").with_retries(0));
    assert_eq!(task.status, Status::Success, "{task:?}\n{log:#?}");
    assert_eq!(task.worker.as_deref(), Some("noop-only"));
    let reason = wait_for(WAIT, "the http task gets a wait reason", || {
        let t = client.task(&http).expect("task");
        assert_eq!(t.status, Status::Pending, "{t:?}");
        t.wait_reason
    });
    assert!(reason.contains("http"), "{reason}");
    // Another noop round trip: the leader had every chance to place it.
    let (task, _) = run_to_end(&mut client, &TaskSpec::new("noop").with_retries(0));
    assert_eq!(task.status, Status::Success);
    assert_eq!(client.task(&http).expect("task").status, Status::Pending);
    assert_eq!(stub.total(), 0);
}

/// A shell task printing ~500 KB per attempt (stdout and stderr) over five
/// attempts (~2.5 MB in all) keeps at most `MAX_TASK_LOG_BYTES` of log
/// lines plus the note at its head, which says what was dropped; the last
/// attempt's end is there.
#[test]
fn a_chatty_task_keeps_its_log_within_the_byte_cap_over_retries() {
    let redis = RedisServer::start();
    let ns = unique_ns("log-cap");
    let script = "head -c 250000 /dev/zero | tr '\\0' x | fold -w 1000; \
                  head -c 250000 /dev/zero | tr '\\0' y | fold -w 1000 >&2; exit 3";
    let exec = format!("chatty=sh -c \"{script}\"");
    let _node = NodeProc::start(&redis.url(), &ns, "chatty-1", &["--exec", &exec]);
    let mut client = Client::open(&redis.url(), &ns).expect("client");

    let mut spec = TaskSpec::new("chatty").with_retries(4);
    spec.retry_delay = Duration::from_millis(50);
    spec.backoff = 1.0;
    let (task, log) = run_to_end(&mut client, &spec);
    assert_eq!(task.status, Status::Failed, "{task:?}");
    assert_eq!(task.attempt, 5, "{task:?}");

    let note = &log[0];
    assert!(
        note.starts_with("(log cap 1000 lines / 256 KiB reached: ")
            && note.ends_with(" bytes dropped)"),
        "no cap note at the head: {note}"
    );
    let kept: usize = log[1..].iter().map(String::len).sum();
    assert!(
        kept <= MAX_TASK_LOG_BYTES,
        "{kept} bytes kept, over the {MAX_TASK_LOG_BYTES} cap"
    );
    assert!(
        kept > MAX_TASK_LOG_BYTES / 2,
        "only {kept} bytes kept: the cap dropped far more than it had to"
    );
    assert!(
        log.last().unwrap().contains("[attempt 5]")
            && log.last().unwrap().contains("no retries left"),
        "the end of the last attempt is missing: {:?}",
        log.last()
    );
    let dropped: usize = note
        .split(", ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no byte count in {note}"));
    assert!(
        dropped + kept > 2 * MAX_TASK_LOG_BYTES,
        "the attempts logged {} bytes in all",
        dropped + kept
    );

    let out = cli(&redis.url(), &ns, &["task", "logs", &task.id]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("(log cap 1000 lines / 256 KiB reached: "),
        "`task logs` shows the note"
    );
}
