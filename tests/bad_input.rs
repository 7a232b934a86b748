//! Bad-input corpus: every command given bad flags, bad values, bad files or
//! unknown ids answers with one `distsched: …` line on stderr and a non-zero
//! exit code (64 for bad input, 1 for unknown ids), never a panic, and
//! stores nothing.

mod support;

use support::{RedisServer, TempDir, assert_one_line_error, cli, report, unique_ns};

#[test]
fn bad_input_corpus() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ns = unique_ns("bad-input");
    let dir = TempDir::new("bad-input");
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write fixture");
        path.display().to_string()
    };
    let missing = dir.join("missing.json").display().to_string();
    let not_json = write("not-json.json", "{ jobs: [");
    let unknown_field = write(
        "unknown-field.json",
        r#"[{"id": "a", "executor": "noop", "colour": "red"}]"#,
    );
    let bad_cron = write(
        "bad-cron.json",
        r#"[{"id": "a", "executor": "noop", "cron": "61 * * * *"}]"#,
    );
    let twice = write(
        "twice.json",
        r#"[{"id": "a", "executor": "noop"}, {"id": "a", "executor": "noop"}]"#,
    );
    let not_list = write("not-list.json", r#"{"id": "a"}"#);

    // A job that exists, for the duplicate case.
    let out = cli(&url, &ns, &["job", "add", "exists", "--exec", "noop"]);
    assert!(out.status.success(), "{out:?}");

    let cases: Vec<(i32, Vec<&str>)> = vec![
        // task submit
        (64, vec!["task", "submit"]),
        (
            64,
            vec!["task", "submit", "--exec", "noop", "--payload", "{not json"],
        ),
        (
            64,
            vec!["task", "submit", "--exec", "noop", "--timeout", "soon"],
        ),
        (
            64,
            vec!["task", "submit", "--exec", "noop", "--timeout", "10"],
        ),
        (
            64,
            vec!["task", "submit", "--exec", "noop", "--priority", "2000"],
        ),
        (
            64,
            vec!["task", "submit", "--exec", "noop", "--priority", "high"],
        ),
        (
            64,
            vec!["task", "submit", "--exec", "noop", "--retries", "-1"],
        ),
        (
            64,
            vec!["task", "submit", "--exec", "noop", "--backoff", "0.5"],
        ),
        (
            64,
            vec!["task", "submit", "--exec", "noop", "--balancer", "fastest"],
        ),
        (
            64,
            vec![
                "task",
                "submit",
                "--exec",
                "noop",
                "--delay",
                "1s",
                "--at",
                "2030-01-01T00:00:00Z",
            ],
        ),
        (
            64,
            vec!["task", "submit", "--exec", "noop", "--at", "tomorrow"],
        ),
        (64, vec!["task", "submit", "--exec", "has space"]),
        (64, vec!["task", "submit", "--exec", "noop", "--id", "a|b"]),
        // `@` is reserved for cron slot ids: a submitter cannot take a slot.
        (
            64,
            vec![
                "task",
                "submit",
                "--exec",
                "noop",
                "--id",
                "tick@1798761600000",
                "--delay",
                "1h",
            ],
        ),
        (64, vec!["task", "submit", "--exec", "noop", "--id", "a\nb"]),
        (64, vec!["task", "submit", "--exec", "noop", "--id", "a/b"]),
        (64, vec!["job", "add", "j@1", "--exec", "noop"]),
        (
            64,
            vec![
                "job",
                "add",
                "j2",
                "--exec",
                "noop",
                "--fire-all-cap",
                "20000",
            ],
        ),
        (
            64,
            vec![
                "job",
                "add",
                "j2",
                "--exec",
                "noop",
                "--misfire-threshold",
                "30d",
            ],
        ),
        (64, vec!["job", "add", "ok", "--exec", "x|y"]),
        (
            64,
            vec!["task", "submit", "--exec", "noop", "--colour", "red"],
        ),
        (64, vec!["task", "submit", "--exec"]),
        // task show/cancel/logs/list
        (1, vec!["task", "show", "no-such-task"]),
        (1, vec!["task", "cancel", "no-such-task"]),
        (1, vec!["task", "logs", "no-such-task"]),
        (64, vec!["task", "show"]),
        (64, vec!["task", "list", "--status", "bogus"]),
        (64, vec!["task", "list", "--limit", "many"]),
        (64, vec!["task", "frobnicate"]),
        // job add and friends
        (
            64,
            vec!["job", "add", "j1", "--exec", "noop", "--cron", "61 * * * *"],
        ),
        (
            64,
            vec!["job", "add", "j1", "--exec", "noop", "--cron", "* * *"],
        ),
        (
            64,
            vec!["job", "add", "j1", "--exec", "noop", "--cron", "@sometimes"],
        ),
        (
            64,
            vec![
                "job",
                "add",
                "j1",
                "--exec",
                "noop",
                "--cron",
                "0 * * * *",
                "--tz",
                "Mars/Olympus",
            ],
        ),
        (
            64,
            vec![
                "job",
                "add",
                "j1",
                "--exec",
                "noop",
                "--misfire",
                "sometimes",
            ],
        ),
        (
            64,
            vec![
                "job",
                "add",
                "j1",
                "--exec",
                "noop",
                "--concurrency",
                "maybe",
            ],
        ),
        (64, vec!["job", "add", "j1"]),
        (64, vec!["job", "add", "bad id", "--exec", "noop"]),
        (64, vec!["job", "add", "exists", "--exec", "noop"]),
        (
            64,
            vec!["job", "add", "j1", "--exec", "noop", "--fire-all-cap", "0"],
        ),
        (1, vec!["job", "trigger", "no-such-job"]),
        (1, vec!["job", "rm", "no-such-job"]),
        (1, vec!["job", "show", "no-such-job"]),
        (1, vec!["job", "enable", "no-such-job"]),
        (64, vec!["job", "trigger", "exists", "--payload", "{"]),
        (64, vec!["job", "explode"]),
        // node: files and flags
        (64, vec!["node", "--jobs", &missing]),
        (64, vec!["node", "--jobs", &not_json]),
        (64, vec!["node", "--jobs", &unknown_field]),
        (64, vec!["node", "--jobs", &bad_cron]),
        (64, vec!["node", "--jobs", &twice]),
        (64, vec!["node", "--jobs", &not_list]),
        (64, vec!["node", "--prune-jobs"]),
        (64, vec!["node", "--exec", "no-equals-sign"]),
        (64, vec!["node", "--balancer", "fastest"]),
        (64, vec!["node", "--shutdown-grace", "forever"]),
        (64, vec!["node", "--task-retention", "0s"]),
        (64, vec!["node", "--allow-adhoc-shell", "--capacity", "0"]),
        (64, vec!["node", "--redis-wait-replicas", "many"]),
        (64, vec!["node", "--redis-wait-replicas", "101"]),
        (
            64,
            vec![
                "node",
                "--redis-wait-replicas",
                "1",
                "--redis-wait-timeout",
                "0s",
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (code, args) in &cases {
        let out = cli(&url, &ns, args);
        let context = args.join(" ");
        if let Err(e) = std::panic::catch_unwind(|| assert_one_line_error(&out, *code, &context)) {
            failures.push(format!(
                "{context}: {}",
                e.downcast_ref::<String>().cloned().unwrap_or_default()
            ));
        }
    }
    // Bad URLs, with no --redis appended by the helper.
    let urls = [
        "http://127.0.0.1:1",
        "redis://127.0.0.1:notaport",
        "not a url",
        "redis-sentinel://127.0.0.1:26379",
        "redis-sentinel://a,,b#mymaster",
        "redis-sentinel://a:26379/x#mymaster",
        "rediss-sentinel://a:99999#mymaster",
    ];
    for url in urls {
        let out = support::run_bin(&["task", "list", "--redis", url], &[]);
        let context = format!("task list --redis {url}");
        if let Err(e) = std::panic::catch_unwind(|| assert_one_line_error(&out, 64, &context)) {
            failures.push(format!(
                "{context}: {}",
                e.downcast_ref::<String>().cloned().unwrap_or_default()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len() + urls.len(),
        failures.join("\n")
    );

    // Nothing was stored by the refused commands: one job, no tasks.
    let jobs = support::json_of(&cli(&url, &ns, &["job", "list", "--json"]));
    let ids: Vec<&str> = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["spec"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["exists"]);
    let tasks = support::json_of(&cli(&url, &ns, &["task", "list", "--json"]));
    assert_eq!(tasks.as_array().map(Vec::len), Some(0), "{tasks}");
    report(&format!(
        "chaos bad-input: {} invocations, each one line and a non-zero exit, none panicked",
        cases.len() + urls.len()
    ));
}
