//! Every Lua script declares in KEYS what it acts on (issue 14): recorded
//! with MONITOR while a real cluster runs a workload that calls every
//! script, each EVALSHA is checked against the commands its script ran:
//!
//! - KEYS is not empty and every key carries the namespace's hash tag;
//! - no ARGV value holds a key name (no prefix to build keys from);
//! - every key a script's commands touch carries KEYS[1]'s hash tag, and a
//!   key not in KEYS is of a kind that script may find at run time (a
//!   task it picks from a ZSET, a worker from the registry index), per the
//!   table below; on Redis Cluster that is what routes a script to the
//!   shard holding everything it touches.
//!
//! The same file runs the capability rule of the Rust balancer and of
//! `lib.lua` over one table of cases, and parses the park keys `Keys`
//! builds with the Lua parser: the two sides cannot drift apart.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use distsched::internal::{Keys, can_run, scripts};
use distsched::{JobSpec, Status, TaskSpec};
use serde_json::json;

use support::*;

const WAIT: Duration = Duration::from_secs(20);

/// Key kinds (the part after `{ns}:`, up to the first `:`) each script may
/// touch without naming them in KEYS.
fn derivable(script: &str) -> &'static [&'static str] {
    match script {
        "START" => &["task"],
        "FINISH" => &["task", "log", "done", "stats", "park"],
        "CANCEL" => &["task", "log", "done", "held", "ctl", "park"],
        "REQUEUE" => &["task"],
        "DISPATCH_READ" => &["task", "node", "held", "park"],
        "DISPATCH_COMMIT" => &["task"],
        "RECOVER_TICK" => &["task", "log", "done", "node", "held", "queue"],
        "FIRE" => &["task", "log", "done", "held", "ctl", "park"],
        "STATS" => &["task", "node", "held", "queue", "stats"],
        "LIVE" => &["task", "log"],
        "SEARCH" => &["task"],
        _ => &[],
    }
}

/// One MONITOR line: the client (`lua` for commands a script ran) and argv.
fn parse_monitor(line: &str) -> Option<(String, Vec<String>)> {
    let open = line.find('[')?;
    let close = open + line[open..].find(']')?;
    let client = line[open + 1..close].split(' ').nth(1)?.to_string();
    let mut args = Vec::new();
    let mut chars = line[close + 1..].chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        match chars.next() {
            None => break,
            Some('"') => {}
            Some(_) => return None,
        }
        let mut arg = String::new();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => match chars.next()? {
                    'n' => arg.push('\n'),
                    'r' => arg.push('\r'),
                    't' => arg.push('\t'),
                    'x' => {
                        let hex: String = [chars.next()?, chars.next()?].iter().collect();
                        arg.push(u8::from_str_radix(&hex, 16).ok()? as char);
                    }
                    c => arg.push(c),
                },
                c => arg.push(c),
            }
        }
        args.push(arg);
    }
    Some((client, args))
}

/// Records MONITOR output on its own connection until dropped.
struct Monitor {
    lines: Arc<Mutex<Vec<String>>>,
    stream: TcpStream,
}

impl Monitor {
    fn start(port: u16) -> Monitor {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect for MONITOR");
        stream.write_all(b"MONITOR\r\n").expect("send MONITOR");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut ok = String::new();
        reader.read_line(&mut ok).expect("MONITOR reply");
        assert_eq!(ok.trim(), "+OK");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                sink.lock().unwrap().push(line.trim_end().to_string());
                line.clear();
            }
        });
        Monitor { lines, stream }
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.lines.lock().unwrap())
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// A script call as MONITOR saw it, with the commands it ran.
struct Call {
    script: String,
    keys: Vec<String>,
    argv: Vec<String>,
    commands: Vec<Vec<String>>,
}

fn calls_of(lines: &[String], by_sha: &HashMap<String, &'static str>) -> Vec<Call> {
    let mut calls: Vec<Call> = Vec::new();
    let mut in_call = false;
    for line in lines {
        let Some((client, args)) = parse_monitor(line) else {
            continue;
        };
        if client == "lua" {
            if in_call {
                calls.last_mut().unwrap().commands.push(args);
            }
            continue;
        }
        in_call = false;
        if args
            .first()
            .is_some_and(|c| c.eq_ignore_ascii_case("evalsha"))
        {
            let Some(script) = by_sha.get(&args[1].to_lowercase()) else {
                continue;
            };
            let n: usize = args[2].parse().expect("numkeys");
            calls.push(Call {
                script: script.to_string(),
                keys: args[3..3 + n].to_vec(),
                argv: args[3 + n..].to_vec(),
                commands: Vec::new(),
            });
            in_call = true;
        }
    }
    calls
}

/// The keys of each command, as the server itself says (COMMAND GETKEYS).
fn keys_of(
    conn: &mut redis::Connection,
    commands: &BTreeSet<Vec<String>>,
) -> HashMap<Vec<String>, Vec<String>> {
    let mut out = HashMap::new();
    let list: Vec<&Vec<String>> = commands
        .iter()
        // Commands that take no key.
        .filter(|c| {
            !["time", "info"]
                .iter()
                .any(|k| c[0].eq_ignore_ascii_case(k))
        })
        .collect();
    for chunk in list.chunks(500) {
        let mut pipe = redis::pipe();
        for c in chunk {
            pipe.cmd("COMMAND").arg("GETKEYS").arg(*c);
        }
        let replies: Vec<Vec<String>> = pipe.query(conn).expect("COMMAND GETKEYS");
        for (c, keys) in chunk.iter().zip(replies) {
            out.insert((*c).clone(), keys);
        }
    }
    out
}

/// Drives a cluster through every script while MONITOR records.
fn run_workload(redis: &RedisServer, ns: &str) -> Vec<String> {
    let url = redis.url();
    let monitor = Monitor::start(redis.port());
    let mut leader = NodeProc::start(
        &url,
        ns,
        "k1",
        &[FAST, &["--capacity", "2", "--allow-adhoc-shell"]].concat(),
    );
    wait_for_cluster(&url, ns, &["k1"], WAIT);
    let mut client = client(&url, ns);
    let sh = |s: &str| TaskSpec::new("shell").with_payload(&json!({ "argv": ["sh", "-c", s] }));

    // A backlog deeper than the capacity: dispatch, start, finish + refill.
    let ids: Vec<String> = (0..12)
        .map(|i| client.submit(&sh(&format!("echo line {i}"))).unwrap().id)
        .collect();
    // A failure with a retry, a delayed task (promoted), a wait.
    let failing = client.submit(&sh("exit 3").with_retries(1)).unwrap().id;
    let delayed = client
        .submit(&sh("true").with_delay(Duration::from_millis(300)))
        .unwrap()
        .id;
    for id in ids.iter().chain([&failing, &delayed]) {
        let t = client.wait(id, WAIT).unwrap().expect("task ended");
        assert!(t.status.is_terminal(), "{id}: {:?}", t.status);
    }
    // Cancel a delayed and a running task.
    let later = client
        .submit(&sh("true").with_delay(Duration::from_secs(60)))
        .unwrap()
        .id;
    assert_eq!(client.cancel(&later).unwrap(), Status::Pending);
    // Its output reaches its log while it runs (LIVE), read as a tail
    // (LOG_SINCE); the dashboard's search finds it (SEARCH).
    let long = client.submit(&sh("echo started; sleep 30")).unwrap().id;
    wait_until(WAIT, "the long task's first line is in its log", || {
        client
            .logs_since(&long, 0, 10)
            .map(|c| c.lines.iter().any(|l| l.contains("started")))
            .unwrap_or(false)
    });
    let found = client
        .search(&distsched::TaskQuery {
            id_prefix: Some(long.clone()),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(found.tasks.len(), 1);
    client.cancel(&long).unwrap();
    // Tasks nobody can run are parked; a worker that can joins, and they are
    // put back and dispatched.
    let mut tagged = sh("true");
    tagged.tags = vec!["gpu".into()];
    let parked: Vec<String> = (0..3).map(|_| client.submit(&tagged).unwrap().id).collect();
    wait_until(WAIT, "tagged tasks are parked", || {
        client
            .task(&parked[0])
            .map(|t| t.wait_reason.is_some())
            .unwrap_or(false)
    });
    let mut gpu = NodeProc::start(
        &url,
        ns,
        "k2",
        &[
            FAST,
            &["--role", "worker", "--tags", "gpu", "--allow-adhoc-shell"],
        ]
        .concat(),
    );
    for id in &parked {
        assert_eq!(
            client.wait(id, WAIT).unwrap().unwrap().status,
            Status::Success
        );
    }
    // A cron job with `replace`, fired, then removed; stats.
    let mut job = JobSpec::new("every-second", "shell").with_cron("* * * * * *");
    job.payload = json!({ "argv": ["sleep", "5"] });
    job.concurrency = distsched::Concurrency::Replace;
    client.add_job(&job).unwrap();
    wait_until(
        WAIT,
        "the job fires twice (the second replaces the first)",
        || client.job(&job.id).map(|j| j.fired >= 2).unwrap_or(false),
    );
    client.remove_job(&job.id).unwrap();
    // A stored job record that does not parse: the leader skips it and
    // marks it broken (JOB_MARK); removing it clears the mark.
    let mut raw = Probe::new(&url, ns);
    let keys = raw.keys.clone();
    let now = raw.time_ms();
    raw.run(|c| {
        redis::pipe()
            .hset(keys.jobs(), "unreadable", "not json {")
            .zadd(keys.schedule(), "unreadable", now)
            .query::<()>(c)
    });
    wait_until(WAIT, "the leader marks the unreadable job", || {
        client
            .job("unreadable")
            // Since when: only the leader's mark says it (the reader
            // alone reports the record's error without it).
            .map(|j| j.error.is_some_and(|e| e.since_ms.is_some()))
            .unwrap_or(false)
    });
    client.remove_job("unreadable").unwrap();
    client.stats().unwrap();
    // A worker with queued work shuts down (REQUEUE, DEREGISTER), then a
    // killed one is recovered; the leader releases its lease.
    gpu.sigterm();
    gpu.wait_exit(WAIT).expect("k2 exits");
    let mut dead = NodeProc::start(
        &url,
        ns,
        "k3",
        &[FAST, &["--role", "worker", "--allow-adhoc-shell"]].concat(),
    );
    wait_for_cluster(&url, ns, &["k1", "k3"], WAIT);
    dead.kill9();
    let mut probe = Probe::new(&url, ns);
    wait_until(WAIT, "k3 is dropped from the index", || {
        !probe.indexed_nodes().contains(&"k3".to_string())
    });
    leader.sigterm();
    leader.wait_exit(WAIT).expect("k1 exits");
    let _ = dead.wait_exit(WAIT);
    // MONITOR lags a little behind the commands.
    let mut probe_conn = redis.client();
    let marker = format!("{ns}-end-marker");
    redis::cmd("ECHO")
        .arg(&marker)
        .query::<String>(&mut probe_conn)
        .unwrap();
    let mut lines = Vec::new();
    wait_until(WAIT, "MONITOR shows the end marker", || {
        lines.extend(monitor.take());
        lines.iter().any(|l| l.contains(&marker))
    });
    lines
}

#[test]
fn every_script_names_what_it_touches_in_keys() {
    let redis = RedisServer::start();
    let ns = unique_ns("keys");
    let lines = run_workload(&redis, &ns);

    let by_sha: HashMap<String, &'static str> = scripts::all()
        .into_iter()
        .map(|(name, s)| (s.get_hash().to_lowercase(), name))
        .collect();
    let calls = calls_of(&lines, &by_sha);
    let commands: BTreeSet<Vec<String>> = calls
        .iter()
        .flat_map(|c| c.commands.iter().cloned())
        .collect();
    let mut conn = redis.client();
    let keys_of = keys_of(&mut conn, &commands);

    let tag = format!("{{{ns}}}:");
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut problems = BTreeSet::new();
    for call in &calls {
        *seen.entry(call.script.as_str()).or_default() += 1;
        if call.keys.is_empty() {
            problems.insert(format!("{}: no KEYS", call.script));
        }
        for k in &call.keys {
            if !k.starts_with(&tag) {
                problems.insert(format!(
                    "{}: KEYS entry {k} lacks the hash tag",
                    call.script
                ));
            }
        }
        for a in &call.argv {
            if a.contains(&tag) {
                problems.insert(format!("{}: ARGV carries a key name: {a}", call.script));
            }
        }
        let declared: BTreeSet<&String> = call.keys.iter().collect();
        for command in &call.commands {
            for key in keys_of.get(command).into_iter().flatten() {
                let Some(rest) = key.strip_prefix(&tag) else {
                    problems.insert(format!(
                        "{}: {} touches {key}, outside the hash tag",
                        call.script, command[0]
                    ));
                    continue;
                };
                if declared.contains(key) {
                    continue;
                }
                let kind = rest.split(':').next().unwrap_or("");
                if !derivable(&call.script).contains(&kind) {
                    problems.insert(format!(
                        "{}: {} touches {key}, not in KEYS and not a kind it may find at run time",
                        call.script, command[0]
                    ));
                }
            }
        }
    }
    let missing: Vec<&str> = scripts::all()
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| !seen.contains_key(name))
        .collect();
    let total: usize = seen.values().sum();
    let ran: usize = calls.iter().map(|c| c.commands.len()).sum();
    report(&format!(
        "script_keys: {total} script calls, {ran} commands inside them, {} scripts: {seen:?}",
        seen.len()
    ));
    assert!(missing.is_empty(), "the workload never called {missing:?}");
    assert!(
        problems.is_empty(),
        "scripts touch keys they do not declare:\n{}",
        problems.into_iter().collect::<Vec<_>>().join("\n")
    );
}

/// The Rust balancer and the scripts apply one capability rule.
#[test]
fn the_capability_rule_is_the_same_in_rust_and_lua() {
    let redis = RedisServer::start();
    let mut conn = redis.client();
    let probe = scripts::with_lib(
        "local offers, carries = set_of(split(ARGV[1])), set_of(split(ARGV[2])) \
         if can_run(offers, carries, ARGV[3], ARGV[4]) then return 1 end return 0",
    );
    let list = |s: &str| -> Vec<String> {
        s.split(',')
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect()
    };
    // (worker executors, worker tags, task executor, task tags)
    let cases = [
        ("shell", "", "shell", ""),
        ("shell", "", "http", ""),
        ("shell,http", "gpu", "http", "gpu"),
        ("shell,http", "gpu", "http", "gpu,ssd"),
        ("shell", "gpu,ssd,eu", "shell", "ssd,gpu"),
        ("", "gpu", "shell", ""),
        ("shell", "", "shell", "gpu"),
        ("a:b", "zone=eu", "a:b", "zone=eu"),
        ("a:b", "zone=eu", "a", "zone=eu"),
        ("sh", "", "shell", ""),
    ];
    for (executors, tags, executor, needs) in cases {
        let rust = can_run(&list(executors), &list(tags), executor, &list(needs));
        let lua: i64 = probe
            .key(Keys::new("cap").pending())
            .arg(executors)
            .arg(tags)
            .arg(executor)
            .arg(needs)
            .invoke(&mut conn)
            .unwrap();
        assert_eq!(
            rust,
            lua == 1,
            "worker ({executors}; {tags}) task ({executor}; {needs})"
        );
    }
}

/// Park keys have one format: what `Keys` builds, the scripts decode.
#[test]
fn park_keys_built_in_rust_are_decoded_by_the_scripts() {
    let redis = RedisServer::start();
    let mut conn = redis.client();
    let keys = Keys::new("parks");
    let decode = scripts::with_lib(
        "local kind, a, b = park_target(ARGV[1]) return {kind or '', a or '', b or ''}",
    );
    let mut run = |park: String| -> (String, String, String) {
        decode
            .key(keys.pending())
            .arg(park)
            .invoke(&mut conn)
            .unwrap()
    };
    let tags = |t: &[&str]| -> Vec<String> { t.iter().map(|s| s.to_string()).collect() };
    assert_eq!(
        run(keys.park_for("shell", &tags(&["ssd", "gpu", "gpu"]))),
        ("exec".into(), "shell".into(), "gpu,ssd".into())
    );
    assert_eq!(
        run(keys.park_for("a:b", &[])),
        ("exec".into(), "a:b".into(), "".into())
    );
    assert_eq!(
        run(keys.park_for_node("w-1")),
        ("node".into(), "w-1".into(), "".into())
    );
    assert_eq!(run(keys.pending()), ("".into(), "".into(), "".into()));
}
