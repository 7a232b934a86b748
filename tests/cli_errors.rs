//! The command line's failure modes: an unreachable Redis (exit 69) and bad
//! configuration (exit 64), each reported as one `distsched: ` line on
//! stderr, never a panic. No Redis is needed: every run points at a port
//! where nothing listens.

mod support;

use std::time::{Duration, Instant};

use support::*;

fn closed_url() -> String {
    format!("redis://127.0.0.1:{}", closed_port())
}

/// Test 6a (client commands): `leader` and `workers` exit 69 with one line
/// when Redis is unreachable, whether the URL comes from a flag or the
/// environment.
#[test]
fn client_commands_exit_69_when_redis_is_unreachable() {
    let url = closed_url();
    for args in [
        vec!["leader"],
        vec!["leader", "--json"],
        vec!["workers"],
        vec!["workers", "--json"],
    ] {
        let context = format!("{args:?} --redis {url}");
        let out = cli(&url, "unreachable", &args);
        let line = assert_one_line_error(&out, 69, &context);
        assert!(line.contains("Redis unreachable"), "{context}: {line}");
        assert!(out.stdout.is_empty(), "{context}: printed {out:?}");

        let context = format!("{args:?} with DISTSCHED_REDIS_URL={url}");
        let out = run_bin(&args, &[("DISTSCHED_REDIS_URL", url.as_str())]);
        assert_one_line_error(&out, 69, &context);
    }
}

/// Test 6a (node): `node` exits 69 at once with one line when Redis is
/// unreachable at start, instead of retrying silently or panicking.
#[test]
fn node_exits_69_with_one_line_when_redis_is_unreachable() {
    let url = closed_url();
    let started = Instant::now();
    let out = cli(&url, "unreachable", &["node", "--id", "n1"]);
    let took = started.elapsed();
    let line = assert_one_line_error(&out, 69, &format!("node --redis {url}"));
    assert!(line.contains("Redis unreachable"), "{line}");
    assert!(took < Duration::from_secs(10), "took {took:?} to give up");
}

/// A bad configuration case: arguments, environment, and words the single
/// stderr line must contain (the setting it names).
struct Case {
    what: &'static str,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    names: Vec<String>,
}

fn case(what: &'static str, args: &[&str], names: &[&str]) -> Case {
    Case {
        what,
        args: args.iter().map(|s| s.to_string()).collect(),
        env: Vec::new(),
        names: names.iter().map(|s| s.to_string()).collect(),
    }
}

/// Test 7: a table of bad configurations. Each exits 64 with exactly one
/// stderr line naming the offending setting, and no panic. Every run also
/// gets `DISTSCHED_REDIS_URL` pointing at a closed port, so a case that is
/// wrongly accepted fails fast with 69 instead of running a node.
#[test]
fn bad_configuration_exits_64_with_one_line_naming_the_setting() {
    let dir = TempDir::new("bad-config");
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write config file");
        path.to_string_lossy().into_owned()
    };
    let invalid_json = write("invalid.json", "{\"lease_ttl\": \"1s\",");
    let unknown_key = write("unknown.json", "{\"lease_tll\": \"1s\"}");
    let bad_value = write("bad-value.json", "{\"capacity\": 0}");
    let not_object = write("list.json", "[\"lease_ttl\"]");
    let missing = dir.join("missing.json").to_string_lossy().into_owned();
    let directory = dir.path().to_string_lossy().into_owned();

    let mut cases = vec![
        case(
            "bare number duration",
            &["node", "--lease-ttl", "10"],
            &["lease_ttl", "--lease-ttl"],
        ),
        case(
            "word duration",
            &["node", "--lease-ttl", "abc"],
            &["lease_ttl"],
        ),
        case(
            "unknown unit",
            &["node", "--recover-interval", "5x"],
            &["recover_interval"],
        ),
        case(
            "unknown role",
            &["node", "--role", "boss"],
            &["role", "boss"],
        ),
        case("capacity 0", &["node", "--capacity", "0"], &["capacity"]),
        case("capacity -1", &["node", "--capacity", "-1"], &["capacity"]),
        case(
            "capacity too big",
            &["node", "--capacity", "10001"],
            &["capacity"],
        ),
        case("weight 0", &["node", "--weight", "0"], &["weight"]),
        case(
            "renew = ttl/2 + 1ms",
            &["node", "--lease-ttl", "1s", "--renew-interval", "501ms"],
            &["renew_interval"],
        ),
        case(
            "renew = ttl",
            &["node", "--lease-ttl", "2s", "--renew-interval", "2s"],
            &["renew_interval"],
        ),
        case(
            "heartbeat interval >= timeout",
            &[
                "node",
                "--heartbeat-interval",
                "2s",
                "--heartbeat-timeout",
                "2s",
            ],
            &["heartbeat_interval"],
        ),
        case(
            "namespace with braces",
            &["node", "--ns", "a{b}"],
            &["namespace"],
        ),
        case(
            "node id with a space",
            &["node", "--id", "a b"],
            &["node_id"],
        ),
        case(
            "node id with a colon",
            &["node", "--id", "a:b"],
            &["node_id"],
        ),
        case(
            "HTTP beyond the loopback without a token",
            &["node", "--http", "0.0.0.0:0"],
            &["http_token", "--http-insecure", "0.0.0.0:0"],
        ),
        case(
            "read token without the full token",
            &["node", "--http-read-token", "r34d"],
            &["http_read_token", "http_token"],
        ),
        case(
            "read token equal to the full token",
            &["node", "--http-token", "same", "--http-read-token", "same"],
            &["http_read_token", "differ"],
        ),
        case(
            "missing config file",
            &["node", "--config", &missing],
            &["config file", &missing],
        ),
        case(
            "config file is a directory",
            &["node", "--config", &directory],
            &["config file"],
        ),
        case(
            "config file invalid JSON",
            &["node", "--config", &invalid_json],
            &["config file", "JSON"],
        ),
        case(
            "config file unknown key",
            &["node", "--config", &unknown_key],
            &["lease_tll"],
        ),
        case(
            "config file bad value",
            &["node", "--config", &bad_value],
            &["capacity", "config file"],
        ),
        case(
            "config file not an object",
            &["node", "--config", &not_object],
            &["config file"],
        ),
        case("unknown flag", &["node", "--bogus", "1"], &["--bogus"]),
        case(
            "unknown flag (leader)",
            &["leader", "--bogus"],
            &["--bogus"],
        ),
        case(
            "unknown flag (workers)",
            &["workers", "--json", "--bogus"],
            &["--bogus"],
        ),
        case("unknown global flag", &["--bogus"], &["--bogus"]),
        case(
            "flag missing its value",
            &["node", "--capacity"],
            &["--capacity"],
        ),
        case(
            "flag missing its value (leader)",
            &["leader", "--redis"],
            &["--redis"],
        ),
        case("unexpected positional", &["node", "extra"], &["extra"]),
        case("unknown command", &["frobnicate"], &["frobnicate"]),
        case(
            "bad redis URL",
            &["node", "--redis", "foo://x"],
            &["redis_url", "foo://x"],
        ),
        case(
            "bad redis URL (leader)",
            &["leader", "--redis", "foo://x"],
            &["redis_url"],
        ),
        case(
            "bad redis URL (workers)",
            &["workers", "--redis", "foo://x"],
            &["redis_url"],
        ),
        case(
            "task_env name with a dash",
            &["node", "--task-env", "PATH,MY-VAR"],
            &["task_env", "--task-env", "MY-VAR"],
        ),
        case(
            "task_env naming a DISTSCHED_ variable",
            &["node", "--task-env", "DISTSCHED_REDIS_URL"],
            &["task_env", "DISTSCHED_"],
        ),
        case(
            "unknown built-in",
            &["node", "--builtin", "noop,curl"],
            &["builtin", "--builtin", "curl"],
        ),
        case(
            "shell as a built-in",
            &["node", "--builtin", "shell"],
            &["builtin", "allow_adhoc_shell"],
        ),
        case(
            "http_allow port out of range",
            &["node", "--http-allow", "api.example:70000"],
            &["http_allow", "--http-allow", "api.example:70000"],
        ),
        case(
            "http_allow bad IPv6",
            &["node", "--http-allow", "[nope]:80"],
            &["http_allow", "[nope]:80"],
        ),
    ];
    let env_cases: [(&'static str, &'static str, &str, &[&str]); 8] = [
        (
            "bad env capacity",
            "DISTSCHED_CAPACITY",
            "zero",
            &["capacity", "DISTSCHED_CAPACITY"],
        ),
        (
            "bad env duration",
            "DISTSCHED_LEASE_TTL",
            "10",
            &["lease_ttl", "DISTSCHED_LEASE_TTL"],
        ),
        (
            "bad env role",
            "DISTSCHED_ROLE",
            "boss",
            &["role", "DISTSCHED_ROLE"],
        ),
        (
            "bad env redis URL",
            "DISTSCHED_REDIS_URL",
            "foo://x",
            &["redis_url"],
        ),
        (
            "bad env task_env",
            "DISTSCHED_TASK_ENV",
            "1PATH",
            &["task_env", "DISTSCHED_TASK_ENV"],
        ),
        (
            "bad env builtin",
            "DISTSCHED_BUILTIN",
            "everything",
            &["builtin", "DISTSCHED_BUILTIN"],
        ),
        (
            "bad env http_allow",
            "DISTSCHED_HTTP_ALLOW",
            "a b",
            &["http_allow", "DISTSCHED_HTTP_ALLOW"],
        ),
        (
            "env config file missing",
            "DISTSCHED_CONFIG",
            &missing,
            &["config file"],
        ),
    ];
    for (what, var, value, names) in env_cases {
        let mut c = case(what, &["node"], names);
        c.env.push((var, value.to_string()));
        cases.push(c);
    }

    let closed = closed_url();
    let mut failures = Vec::new();
    for c in &cases {
        let mut env: Vec<(&str, &str)> = vec![("DISTSCHED_REDIS_URL", closed.as_str())];
        env.extend(c.env.iter().map(|(k, v)| (*k, v.as_str())));
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        let out = run_bin(&args, &env);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let lines: Vec<&str> = stderr.lines().collect();
        let problem = if out.status.code() != Some(64) {
            Some(format!("exit {:?}, expected 64", out.status.code()))
        } else if stderr.contains("panicked") {
            Some("panicked".into())
        } else if lines.len() != 1 {
            Some(format!("{} stderr lines, expected 1", lines.len()))
        } else if !lines[0].starts_with("distsched: ") {
            Some("line does not start with `distsched: `".into())
        } else {
            c.names
                .iter()
                .find(|n| !lines[0].contains(n.as_str()))
                .map(|n| format!("line does not name `{n}`"))
        };
        if let Some(problem) = problem {
            failures.push(format!(
                "{}: {problem}\n    args {:?} env {:?}\n    stderr {stderr:?}",
                c.what, c.args, c.env
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad configurations mishandled:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// `--version`, `--help` and per-command help exit 0 on stdout, silently
/// on stderr, without touching Redis.
#[test]
fn version_and_help_exit_0() {
    let out = run_bin(&["--version"], &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        format!("distsched {}", env!("CARGO_PKG_VERSION"))
    );
    assert!(out.stderr.is_empty(), "{out:?}");
    assert_eq!(run_bin(&["-V"], &[]).stdout, out.stdout);

    for args in [
        &["--help"][..],
        &["-h"],
        &["help"],
        &[],
        &["node", "--help"],
        &["leader", "--help"],
        &["workers", "-h"],
    ] {
        // A closed Redis: help must not need it.
        let out = run_bin(args, &[("DISTSCHED_REDIS_URL", &closed_url())]);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("usage"), "{args:?}: {stdout}");
        assert!(out.stderr.is_empty(), "{args:?}: {out:?}");
    }
    let node_help = String::from_utf8_lossy(&run_bin(&["node", "--help"], &[]).stdout).into_owned();
    for flag in [
        "--lease-ttl",
        "--renew-interval",
        "--capacity",
        "--role",
        "--config",
    ] {
        assert!(
            node_help.contains(flag),
            "node --help lacks {flag}:\n{node_help}"
        );
    }
}

/// A Redis password never reaches the output: not when the URL is bad, not
/// when Redis refuses it, not when it is unreachable, not in the node's
/// start log (which shows the URL redacted).
#[test]
fn redis_passwords_are_redacted_wherever_urls_are_printed() {
    const PASSWORD: &str = "hunter2-s3cret";
    let unreachable = format!("redis://app:{PASSWORD}@127.0.0.1:{}", closed_port());
    let malformed = format!("redis://app:{PASSWORD}@[::1/0");
    let redis = RedisServer::start();
    let refused = format!("redis://app:{PASSWORD}@127.0.0.1:{}", redis.port());
    let sentinel = format!(
        "redis-sentinel://app:{PASSWORD}@127.0.0.1:{}#m",
        closed_port()
    );
    let bad_sentinel = format!("redis-sentinel://app:{PASSWORD}@a,,b#m");
    for (url, args, code) in [
        (&sentinel, vec!["node", "--id", "n1"], 69),
        (&sentinel, vec!["task", "list"], 69),
        (&bad_sentinel, vec!["task", "list"], 64),
        (&unreachable, vec!["node", "--id", "n1"], 69),
        (&unreachable, vec!["task", "list"], 69),
        (&malformed, vec!["node", "--id", "n1"], 64),
        (&malformed, vec!["task", "list"], 64),
        (&refused, vec!["node", "--id", "n1"], 69),
        (&refused, vec!["leader"], 69),
    ] {
        let context = format!("{args:?} with a password in the URL");
        let out = run_bin(
            &args,
            &[
                ("DISTSCHED_REDIS_URL", url.as_str()),
                ("DISTSCHED_SENTINEL_PASSWORD", PASSWORD),
                ("RUST_LOG", "debug"),
            ],
        );
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !all.contains(PASSWORD),
            "{context}: the password leaked:\n{all}"
        );
        assert_eq!(out.status.code(), Some(code), "{context}: {all}");
    }

    // A node that starts logs the URL with the credentials masked.
    let good = format!("redis://:{PASSWORD}@127.0.0.1:{}", redis.port());
    let mut r = redis.client();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(PASSWORD)
        .query::<()>(&mut r)
        .expect("set a password");
    let ns = unique_ns("redact");
    let mut node = NodeProc::start(&good, &ns, "redact", &[]);
    wait_until(Duration::from_secs(20), "the node logs its start", || {
        node.log().contains("started")
    });
    let log = node.log();
    assert!(log.contains("redis redis://***@127.0.0.1"), "{log}");
    assert!(!log.contains(PASSWORD), "{log}");
    assert!(node.is_running());
}
