//! `distsched task ...` from the command line, against a private
//! `redis-server` and real nodes: cancel, `--wait` exit codes (DESIGN §6),
//! idempotency keys, delayed and scheduled tasks, listing, and bad input
//! (one clear stderr line, a meaningful exit code, nothing written).

mod support;

use std::process::Output;
use std::thread;
use std::time::{Duration, Instant};

use distsched::{Status, TaskSpec};
use serde_json::{Value, json};

use support::*;

const WAIT: Duration = Duration::from_secs(20);

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `distsched task ARGS` and expects exit 0.
fn task_ok(url: &str, ns: &str, args: &[&str]) -> Output {
    let mut all = vec!["task"];
    all.extend(args);
    let out = cli(url, ns, &all);
    assert_eq!(
        out.status.code(),
        Some(0),
        "task {args:?}: stdout {} stderr {}",
        stdout(&out),
        stderr(&out)
    );
    out
}

/// `task submit ARGS --json`; returns `(id, created)`.
fn submit_json(url: &str, ns: &str, args: &[&str]) -> (String, bool) {
    let mut all = vec!["submit"];
    all.extend(args);
    all.push("--json");
    let v = json_of(&task_ok(url, ns, &all));
    (
        v["id"].as_str().expect("id").to_string(),
        v["created"].as_bool().expect("created"),
    )
}

/// `task show ID --json`.
fn show(url: &str, ns: &str, id: &str) -> Value {
    json_of(&task_ok(url, ns, &["show", id, "--json"]))
}

/// Reads the pids a command wrote to `path`, once there are `n`.
fn wait_pids(path: &std::path::Path, n: usize) -> Vec<u32> {
    wait_for(WAIT, &format!("{n} pids in {}", path.display()), || {
        let pids: Vec<u32> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        (pids.len() >= n).then_some(pids)
    })
}

/// An ad hoc shell payload that records its shell's and its background
/// `sleep`'s pids in `pids`, then waits for the sleep.
fn sleeper(pids: &std::path::Path) -> String {
    let p = pids.display();
    json!({"argv": ["sh", "-c", format!("echo $$ > {p}; sleep 30 & echo $! >> {p}; wait")]})
        .to_string()
}

/// Test 8 (cancel): a pending task (no worker offers its executor), a
/// delayed one, and a running shell command are cancelled from the CLI.
/// The first two end at once; the running one's whole process group (shell
/// and grandchild `sleep`) is gone, its worker slot is freed, and its log
/// says why. Cancelling an ended task changes nothing.
#[test]
fn cancel_pending_delayed_and_running_tasks() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ns = unique_ns("cancel");
    let dir = TempDir::new("cancel");
    let _node = NodeProc::start(&url, &ns, "w", &["--allow-adhoc-shell"]);
    wait_for_cluster(&url, &ns, &["w"], WAIT);
    let mut client = client(&url, &ns);
    let mut probe = Probe::new(&url, &ns);

    // Pending: nobody offers `nobody`.
    let (pending, created) = submit_json(&url, &ns, &["--exec", "nobody"]);
    assert!(created);
    wait_task(&mut client, &pending, WAIT, "waits for a worker", |t| {
        t.wait_reason.is_some()
    });
    let v = json_of(&task_ok(&url, &ns, &["cancel", &pending, "--json"]));
    assert_eq!(
        v,
        json!({"id": pending, "was": "pending", "cancelled": true})
    );
    let shown = show(&url, &ns, &pending);
    assert_eq!(shown["status"], "cancelled", "{shown}");
    assert!(shown["ended_ms"].is_u64(), "{shown}");
    assert_eq!(probe.pending(), 0, "still in pending");
    let logs = json_of(&task_ok(&url, &ns, &["logs", &pending, "--json"]));
    assert!(
        logs.to_string().contains("cancelled while pending"),
        "{logs}"
    );
    // Again: nothing to do, still exit 0.
    let out = task_ok(&url, &ns, &["cancel", &pending]);
    assert!(
        stdout(&out).contains("already ended (cancelled)"),
        "{}",
        stdout(&out)
    );

    // Delayed by an hour.
    let (delayed, _) = submit_json(&url, &ns, &["--exec", "noop", "--delay", "1h"]);
    let delayed_key = probe.keys.delayed();
    assert_eq!(probe.zcard(&delayed_key), 1);
    let out = task_ok(&url, &ns, &["cancel", &delayed]);
    assert!(
        stdout(&out).contains(&format!("cancelled {delayed} (was pending)")),
        "{}",
        stdout(&out)
    );
    assert_eq!(show(&url, &ns, &delayed)["status"], "cancelled");
    assert_eq!(probe.zcard(&delayed_key), 0, "still in delayed");

    // Running: a shell with a grandchild.
    let pids_file = dir.join("running.pids");
    let payload = sleeper(&pids_file);
    let (running, _) = submit_json(&url, &ns, &["--exec", "shell", "--payload", &payload]);
    let pids = wait_pids(&pids_file, 2);
    wait_task(&mut client, &running, WAIT, "is running", |t| {
        t.status == Status::Running
    });
    assert!(
        pids.iter().all(|&p| !process_gone(p)),
        "{pids:?} not running"
    );
    let cancelled_at = Instant::now();
    let out = task_ok(&url, &ns, &["cancel", &running]);
    assert!(
        stdout(&out).contains(&format!("cancelled {running} (was running)")),
        "{}",
        stdout(&out)
    );
    assert_eq!(show(&url, &ns, &running)["status"], "cancelled");
    wait_until(
        Duration::from_secs(5),
        "the cancelled task's process group is gone",
        || pids.iter().all(|&p| process_gone(p)),
    );
    let gone_after = cancelled_at.elapsed();
    wait_until(WAIT, "the worker frees the cancelled task's slot", || {
        probe.held("w") == 0 && probe.in_flight() == 0
    });
    let lines = client.logs(&running).expect("logs").join("\n");
    assert!(lines.contains("cancelled while running"), "{lines}");
    assert!(lines.contains("stopped after cancel"), "{lines}");
    assert!(lines.contains("shell: cancelled after"), "{lines}");
    let t = client.task(&running).expect("task");
    assert_eq!(
        t.status,
        Status::Cancelled,
        "the worker's report changed it: {t:?}"
    );
    eprintln!("cancel: running shell group gone {gone_after:?} after `task cancel`");
}

/// Test 8 (`--wait`): exit 0 when the task succeeds (the task printed as
/// JSON), 1 when it fails, 2 when it is cancelled while waited on, 3 when it
/// has not ended by `--wait-timeout` (one stderr line).
#[test]
fn wait_exit_codes_follow_the_task() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ns = unique_ns("wait");
    let dir = TempDir::new("wait");
    let _node = NodeProc::start(
        &url,
        &ns,
        "w",
        &["--allow-adhoc-shell", "--exec", "fail=false"],
    );
    wait_for_cluster(&url, &ns, &["w"], WAIT);
    let mut client = client(&url, &ns);

    // 0: success.
    let out = cli(
        &url,
        &ns,
        &[
            "task",
            "submit",
            "--exec",
            "noop",
            "--payload",
            r#"{"a": 1}"#,
            "--wait",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = json_of(&out);
    assert_eq!(v["status"], "success", "{v}");
    assert_eq!(v["result"]["data"], json!({"a": 1}), "{v}");

    // 1: failure (no retries).
    let out = cli(
        &url,
        &ns,
        &[
            "task",
            "submit",
            "--exec",
            "fail",
            "--retries",
            "0",
            "--wait",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.starts_with("status") && l.contains("failed")),
        "{}",
        stdout(&out)
    );

    // 2: cancelled while waited on.
    let pids_file = dir.join("wait.pids");
    let payload = sleeper(&pids_file);
    let waiter = {
        let (url, ns, payload) = (url.clone(), ns.clone(), payload.clone());
        thread::spawn(move || {
            cli(
                &url,
                &ns,
                &[
                    "task",
                    "submit",
                    "--exec",
                    "shell",
                    "--payload",
                    &payload,
                    "--id",
                    "waited-on",
                    "--wait",
                    "--wait-timeout",
                    "15s",
                ],
            )
        })
    };
    wait_pids(&pids_file, 2);
    wait_task(&mut client, "waited-on", WAIT, "is running", |t| {
        t.status == Status::Running
    });
    let cancelled_at = Instant::now();
    assert_eq!(client.cancel("waited-on").expect("cancel"), Status::Running);
    let out = waiter.join().expect("waiter");
    let returned = cancelled_at.elapsed();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        returned < Duration::from_secs(3),
        "--wait returned {returned:?} after the cancel"
    );

    // 3: still not ended at the wait timeout.
    let started = Instant::now();
    let out = cli(
        &url,
        &ns,
        &[
            "task",
            "submit",
            "--exec",
            "nobody",
            "--wait",
            "--wait-timeout",
            "300ms",
        ],
    );
    let took = started.elapsed();
    let line = assert_one_line_error(&out, 3, "--wait on a task nobody runs");
    assert!(line.contains("still not ended after"), "{line}");
    assert!(
        took >= Duration::from_millis(300),
        "returned after {took:?}"
    );
    assert!(took < Duration::from_secs(10), "returned after {took:?}");
    eprintln!("--wait: exit 2 came {returned:?} after the cancel; exit 3 after {took:?}");
}

/// Test 8 (idempotency): a second submit with the same `--key` creates
/// nothing and returns the first task's id (`created: false`), from the CLI
/// and the library alike, also when 8 clients race with one key; an
/// explicit `--id` that exists is not overwritten.
#[test]
fn an_idempotency_key_returns_the_first_task() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ns = unique_ns("idem");
    let mut client = client(&url, &ns);
    let mut probe = Probe::new(&url, &ns);

    let (first, created) = submit_json(
        &url,
        &ns,
        &["--exec", "noop", "--key", "order-42", "--payload", "1"],
    );
    assert!(created);
    let (second, created) = submit_json(
        &url,
        &ns,
        &["--exec", "noop", "--key", "order-42", "--payload", "2"],
    );
    assert_eq!((second.as_str(), created), (first.as_str(), false));
    let out = task_ok(
        &url,
        &ns,
        &["submit", "--exec", "noop", "--key", "order-42"],
    );
    assert_eq!(stdout(&out).trim(), first, "plain output prints the id");
    let again = client
        .submit(&TaskSpec::new("noop").with_key("order-42"))
        .expect("submit");
    assert_eq!((again.id.as_str(), again.created), (first.as_str(), false));
    assert_eq!(probe.task_count(), 1, "a duplicate task was created");
    let kept = show(&url, &ns, &first);
    assert_eq!(kept["payload"], 1, "the first task was changed: {kept}");
    assert_eq!(kept["key"], "order-42", "{kept}");

    // Eight clients race with one new key: one task, one id.
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let (url, ns) = (url.clone(), ns.clone());
            thread::spawn(move || {
                let mut c = support::client(&url, &ns);
                c.submit(
                    &TaskSpec::new("noop")
                        .with_key("race")
                        .with_payload(&json!(i)),
                )
                .expect("submit")
            })
        })
        .collect();
    let results: Vec<_> = racers
        .into_iter()
        .map(|r| r.join().expect("racer"))
        .collect();
    assert_eq!(
        results.iter().filter(|s| s.created).count(),
        1,
        "{results:?}"
    );
    assert!(results.iter().all(|s| s.id == results[0].id), "{results:?}");
    assert_eq!(probe.task_count(), 2);

    // An explicit id is not overwritten.
    let (id, created) = submit_json(
        &url,
        &ns,
        &["--exec", "noop", "--id", "fixed", "--priority", "5"],
    );
    assert_eq!((id.as_str(), created), ("fixed", true));
    let (id, created) = submit_json(
        &url,
        &ns,
        &["--exec", "noop", "--id", "fixed", "--priority", "9"],
    );
    assert_eq!((id.as_str(), created), ("fixed", false));
    assert_eq!(show(&url, &ns, "fixed")["priority"], 5);
    assert_eq!(probe.task_count(), 3);
}

/// `ms` (Unix) as RFC 3339 with milliseconds, UTC.
fn rfc3339(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .expect("a valid time")
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Test 8 (time): a task submitted with `--delay 1s` waits in `delayed`
/// and does not start before its time (1 s after the submit); `--at`
/// with an RFC 3339 time (ms precision) and with Unix seconds sets that
/// exact ready time and the task does not start before it.
#[test]
fn delayed_and_scheduled_tasks_wait_for_their_time() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ns = unique_ns("delay");
    let _node = NodeProc::start(&url, &ns, "w", &[]);
    wait_for_cluster(&url, &ns, &["w"], WAIT);
    let mut client = client(&url, &ns);
    let mut probe = Probe::new(&url, &ns);

    let before = unix_ms();
    let (delayed, _) = submit_json(&url, &ns, &["--exec", "noop", "--delay", "1s"]);
    let at_ms = unix_ms() + 1500;
    let at = rfc3339(at_ms);
    let (scheduled, _) = submit_json(&url, &ns, &["--exec", "noop", "--at", &at]);
    let at_secs = unix_ms() / 1000 + 2;
    let (unix_at, _) = submit_json(&url, &ns, &["--exec", "noop", "--at", &at_secs.to_string()]);

    // Not started yet: all three wait in `delayed`.
    let t = client.task(&delayed).expect("task");
    assert_eq!(
        (t.status, t.started_ms, t.worker.clone()),
        (Status::Pending, None, None),
        "{t:?}"
    );
    let delayed_key = probe.keys.delayed();
    assert!(probe.zcard(&delayed_key) >= 2, "not in `delayed`");

    let ids = [delayed.clone(), scheduled.clone(), unix_at.clone()];
    let tasks = wait_ended(&mut client, &mut probe, &ids, WAIT);
    for t in &tasks {
        assert_eq!(t.status, Status::Success, "{t:?}");
    }
    let (t, s, u) = (&tasks[0], &tasks[1], &tasks[2]);
    let started = t.started_ms.expect("started");
    let ready = t.ready_ms.expect("ready");
    eprintln!(
        "--delay 1s: created {}, ready +{} ms, started +{} ms after created \
         (CLI invoked {} ms before created); --at: started {} ms after its time; \
         --at unix: {} ms after",
        t.created_ms,
        ready as i64 - t.created_ms as i64,
        started as i64 - t.created_ms as i64,
        t.created_ms as i64 - before as i64,
        s.started_ms.unwrap_or(0) as i64 - at_ms as i64,
        u.started_ms.unwrap_or(0) as i64 - (at_secs * 1000) as i64,
    );
    assert!(started >= ready, "started before its ready time: {t:?}");
    assert!(
        ready >= before + 1000,
        "ready time is not 1 s after the submit: {t:?}"
    );
    assert!(started >= before + 1000, "started early: {t:?}");
    // `started ≥ created + 1 s` is checked, deterministically, by
    // `a_delay_counts_from_when_the_task_is_created`.

    assert_eq!(s.ready_ms, Some(at_ms), "--at {at}: {s:?}");
    assert!(
        s.started_ms.unwrap_or(0) >= at_ms,
        "started before --at: {s:?}"
    );
    assert_eq!(u.ready_ms, Some(at_secs * 1000), "--at {at_secs}: {u:?}");
    assert!(u.started_ms.unwrap_or(0) >= at_secs * 1000, "{u:?}");
}

/// Test 8 (time, continued): `--delay 1s` means 1 s after the task is
/// created, on the Redis clock every task time uses (`created_ms`,
/// `ready_ms`, `started_ms`), so it cannot start before `created_ms + 1000`
/// however long the submit took to reach Redis, and whatever the submitting
/// host's clock says. Here Redis holds writes for 300 ms (`CLIENT PAUSE
/// WRITE`, as during a failover or on a slow link) while the CLI submits.
/// Without the pause the same defect shows as a task created at T starting
/// at T + 994..999 ms, now and then.
#[test]
fn a_delay_counts_from_when_the_task_is_created() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ns = unique_ns("delay-clock");
    let _node = NodeProc::start(&url, &ns, "w", &[]);
    wait_for_cluster(&url, &ns, &["w"], WAIT);
    let mut client = client(&url, &ns);
    let mut probe = Probe::new(&url, &ns);

    let paused: String = probe.run(|c| {
        redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(300)
            .arg("WRITE")
            .query(c)
    });
    assert_eq!(paused, "OK");
    let (id, _) = submit_json(&url, &ns, &["--exec", "noop", "--delay", "1s"]);
    let t = wait_ended(&mut client, &mut probe, &[id], WAIT).remove(0);
    assert_eq!(t.status, Status::Success, "{t:?}");
    let ready = t.ready_ms.expect("ready") as i64 - t.created_ms as i64;
    let started = t.started_ms.expect("started") as i64 - t.created_ms as i64;
    assert!(
        ready >= 1000 && started >= 1000,
        "--delay 1s: ready {ready} ms and started {started} ms after the task was created: {t:?}"
    );
}

/// `task show`, `list` (filters, limit, JSON and table) and `logs` on a
/// few finished tasks.
#[test]
fn show_list_and_logs() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ns = unique_ns("list");
    let _node = NodeProc::start(&url, &ns, "w", &["--exec", "fail=false"]);
    wait_for_cluster(&url, &ns, &["w"], WAIT);
    let mut client = client(&url, &ns);
    let mut probe = Probe::new(&url, &ns);

    let ok: Vec<String> = (0..3)
        .map(|i| submit_json(&url, &ns, &["--exec", "noop", "--payload", &i.to_string()]).0)
        .collect();
    let (bad, _) = submit_json(&url, &ns, &["--exec", "fail", "--retries", "0"]);
    let mut all = ok.clone();
    all.push(bad.clone());
    wait_ended(&mut client, &mut probe, &all, WAIT);

    let listed = json_of(&task_ok(&url, &ns, &["list", "--json"]));
    let ids: Vec<&str> = listed
        .as_array()
        .expect("array")
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 4, "{listed}");
    assert_eq!(ids[0], bad, "newest first: {ids:?}");
    let successes = json_of(&task_ok(
        &url,
        &ns,
        &["list", "--status", "success", "--json"],
    ));
    assert_eq!(successes.as_array().map(Vec::len), Some(3), "{successes}");
    let failed = json_of(&task_ok(
        &url,
        &ns,
        &["list", "--status", "failed", "--json"],
    ));
    assert_eq!(failed[0]["id"], bad.as_str(), "{failed}");
    assert_eq!(failed[0]["result"]["code"], 1, "{failed}");
    let limited = json_of(&task_ok(&url, &ns, &["list", "--limit", "2", "--json"]));
    assert_eq!(limited.as_array().map(Vec::len), Some(2), "{limited}");
    let none = json_of(&task_ok(
        &url,
        &ns,
        &["list", "--job", "no-such-job", "--json"],
    ));
    assert_eq!(none, json!([]));
    let table = stdout(&task_ok(&url, &ns, &["list"]));
    assert!(table.starts_with("ID"), "{table}");
    assert_eq!(table.lines().count(), 5, "{table}");

    let shown = show(&url, &ns, &ok[1]);
    for field in [
        "id",
        "job",
        "executor",
        "payload",
        "status",
        "priority",
        "attempt",
        "failures",
        "max_retries",
        "timeout_ms",
        "worker",
        "key",
        "tags",
        "created_ms",
        "ready_ms",
        "dispatched_ms",
        "started_ms",
        "ended_ms",
        "next_attempt_ms",
        "result",
        "error",
        "wait_reason",
    ] {
        assert!(shown.get(field).is_some(), "`{field}` missing: {shown}");
    }
    assert_eq!(shown["payload"], 1);
    assert_eq!(shown["worker"], "w");
    let text = stdout(&task_ok(&url, &ns, &["show", &bad]));
    assert!(
        text.lines()
            .any(|l| l.starts_with("status") && l.contains("failed")),
        "{text}"
    );
    let logs = json_of(&task_ok(&url, &ns, &["logs", &bad, "--json"]));
    assert!(logs.to_string().contains("no retries left"), "{logs}");
}

/// One bad-input case: arguments after `distsched`, optional stdin, the exit
/// code, and a word the single stderr line must contain.
struct Bad<'a> {
    args: Vec<&'a str>,
    stdin: Option<&'static str>,
    code: i32,
    says: &'static str,
}

fn bad<'a>(args: &[&'a str], code: i32, says: &'static str) -> Bad<'a> {
    Bad {
        args: args.to_vec(),
        stdin: None,
        code,
        says,
    }
}

/// Test 9: bad input to `task` commands gets exactly one `distsched: ` line
/// on stderr naming the problem, nothing on stdout, no panic, and exit 64
/// (usage) — or 1 for a task id that does not exist — with and without
/// `--json`; and nothing at all is written to Redis.
#[test]
fn bad_input_gets_one_clear_line_and_a_non_zero_exit() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ns = unique_ns("bad");
    let sub = |extra: &[&'static str]| {
        let mut args = vec!["task", "submit", "--exec", "noop"];
        args.extend(extra);
        args
    };
    let mut cases = vec![
        bad(&["task", "submit"], 64, "--exec"),
        bad(&["task", "submit", "--exec"], 64, "--exec"),
        bad(&["task", "submit", "--exec", "two words"], 64, "executor"),
        bad(&["task", "submit", "--exec", "a|b"], 64, "executor"),
        bad(&["task", "submit", "--exec", ""], 64, "executor"),
        bad(&sub(&["--payload", "{bad"]), 64, "payload"),
        bad(&sub(&["--payload", "{\"a\": }"]), 64, "payload"),
        bad(&sub(&["--timeout", "5 parsecs"]), 64, "--timeout"),
        bad(&sub(&["--timeout", "0s"]), 64, "timeout"),
        bad(&sub(&["--delay", "soon"]), 64, "--delay"),
        bad(&sub(&["--retry-delay", "x"]), 64, "--retry-delay"),
        bad(
            &sub(&["--wait", "--wait-timeout", "x"]),
            64,
            "--wait-timeout",
        ),
        bad(&sub(&["--priority", "2000"]), 64, "priority"),
        bad(&sub(&["--priority", "-1001"]), 64, "priority"),
        bad(&sub(&["--priority", "high"]), 64, "priority"),
        bad(&sub(&["--retries", "-1"]), 64, "--retries"),
        bad(&sub(&["--backoff", "0.5"]), 64, "backoff"),
        bad(&sub(&["--balancer", "fastest"]), 64, "balancer"),
        bad(
            &sub(&["--delay", "1s", "--at", "2030-01-01T00:00:00Z"]),
            64,
            "--at",
        ),
        bad(&sub(&["--at", "tomorrow"]), 64, "tomorrow"),
        bad(&sub(&["--at", "2026-13-01T00:00:00Z"]), 64, "time"),
        bad(&sub(&["--id", "has space"]), 64, "id"),
        bad(&sub(&["--frobnicate"]), 64, "--frobnicate"),
        bad(&sub(&["stray"]), 64, "stray"),
        bad(&["task", "show", "nosuch"], 1, "task nosuch not found"),
        bad(&["task", "cancel", "nosuch"], 1, "task nosuch not found"),
        bad(&["task", "logs", "nosuch"], 1, "task nosuch not found"),
        bad(&["task", "show"], 64, "id"),
        bad(&["task", "cancel"], 64, "id"),
        bad(&["task", "show", "a", "b"], 64, "`b`"),
        bad(&["task", "frobnicate"], 64, "frobnicate"),
        bad(&["task", "list", "--status", "bogus"], 64, "bogus"),
        bad(&["task", "list", "--limit", "many"], 64, "--limit"),
        bad(&["task", "list", "--wat"], 64, "--wat"),
        bad(&["frobnicate"], 64, "frobnicate"),
    ];
    cases.push(Bad {
        args: sub(&["--payload", "-"]),
        stdin: Some("not json"),
        code: 64,
        says: "payload",
    });
    let mut checked = 0;
    for case in &cases {
        for json in [false, true] {
            // `--redis URL --ns NS [--json]` go right after `task <command>`,
            // so that a flag missing its value stays the last argument.
            let mut common = vec!["--redis", url.as_str(), "--ns", ns.as_str()];
            if json {
                common.push("--json");
            }
            let mut args = case.args.clone();
            let at = if args[0] == "task" {
                args.len().min(2)
            } else {
                1
            };
            args.splice(at..at, common);
            let out = match case.stdin {
                Some(input) => run_bin_with_stdin(&args, input),
                None => run_bin(&args, &[]),
            };
            let context = format!("{args:?}");
            let line = assert_one_line_error(&out, case.code, &context);
            assert!(
                line.contains(case.says),
                "{context}: the line does not mention `{}`: {line}",
                case.says
            );
            assert!(out.stdout.is_empty(), "{context}: printed {}", stdout(&out));
            checked += 1;
        }
    }
    eprintln!("bad input: {checked} runs, each one line and the right exit code");

    // Nothing was half-written.
    let mut probe = Probe::new(&url, &ns);
    assert_eq!(probe.task_count(), 0, "a task record was written");
    assert_eq!(probe.pending(), 0);
    let delayed = probe.keys.delayed();
    assert_eq!(probe.zcard(&delayed), 0);
    let keys: Vec<String> = probe.run(|c| redis::cmd("KEYS").arg("*").query(c));
    assert!(keys.is_empty(), "keys written by bad input: {keys:?}");
}

/// Test 9 (a missing executor name): `task submit --exec --wait` (or
/// `--json`, `--key`) is a flag left without its value, not a request for an
/// executor called `--wait`. It must be refused with one line and exit 64,
/// creating nothing; today the next flag is taken as the executor name and a
/// task that no worker will ever run is created (exit 0).
#[test]
fn a_flag_is_not_taken_as_the_executor_name() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ns = unique_ns("exec-flag");
    let mut probe = Probe::new(&url, &ns);
    for next in ["--wait", "--json", "--key"] {
        let args = [
            "task", "submit", "--redis", &url, "--ns", &ns, "--exec", next, "k",
        ];
        let args = if next == "--key" {
            &args[..]
        } else {
            &args[..8]
        };
        let out = run_bin(args, &[]);
        let context = format!("{args:?} (created {} tasks so far)", probe.task_count());
        let line = assert_one_line_error(&out, 64, &context);
        assert!(
            line.contains("--exec") || line.contains("executor"),
            "{context}: {line}"
        );
    }
    assert_eq!(probe.task_count(), 0, "a task was created");
}

/// Test 9 (Redis down): task commands exit 69 with one line when Redis is
/// unreachable, and bad input is still reported as such (64) first.
#[test]
fn task_commands_exit_69_when_redis_is_unreachable() {
    let url = format!("redis://127.0.0.1:{}", closed_port());
    for args in [
        vec!["task", "submit", "--exec", "noop"],
        vec!["task", "submit", "--exec", "noop", "--wait", "--json"],
        vec!["task", "show", "x"],
        vec!["task", "list"],
        vec!["task", "cancel", "x", "--json"],
        vec!["task", "logs", "x"],
    ] {
        let out = cli(&url, "down", &args);
        let line = assert_one_line_error(&out, 69, &format!("{args:?}"));
        assert!(line.contains("Redis unreachable"), "{args:?}: {line}");
    }
    let out = cli(
        &url,
        "down",
        &["task", "submit", "--exec", "noop", "--payload", "{bad"],
    );
    assert_one_line_error(&out, 64, "bad payload with Redis down");
}
