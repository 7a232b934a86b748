//! The five balancers end to end (DESIGN §5 "Dispatch"), with real node
//! processes and a private `redis-server` per test. The planner's unit
//! tests live in `src/balancer.rs`; these check what a cluster does.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use distsched::internal::rendezvous;
use distsched::{Balancer, Status, Task, TaskSpec};
use serde_json::json;

use support::*;

const WAIT: Duration = Duration::from_secs(20);

fn noop(i: usize) -> TaskSpec {
    TaskSpec::new("noop")
        .with_payload(&json!(i))
        .with_retries(0)
}

fn submit_all(client: &mut distsched::Client, specs: &[TaskSpec]) -> Vec<String> {
    let submitted = client.submit_many(specs).expect("submit_many");
    assert!(submitted.iter().all(|s| s.created), "{submitted:?}");
    submitted.into_iter().map(|s| s.id).collect()
}

fn worker(t: &Task) -> String {
    t.worker
        .clone()
        .unwrap_or_else(|| panic!("task {} has no worker: {t:?}", t.id))
}

fn count_by_worker<'a>(tasks: impl IntoIterator<Item = &'a Task>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for t in tasks {
        *counts.entry(worker(t)).or_insert(0) += 1;
    }
    counts
}

/// Waits until every task in `ids` is running (started); returns them.
fn wait_running(client: &mut distsched::Client, probe: &mut Probe, ids: &[String]) -> Vec<Task> {
    wait_until(WAIT, &format!("{} tasks are running", ids.len()), || {
        probe
            .statuses(ids)
            .iter()
            .all(|s| s.as_deref() == Some("running"))
    });
    ids.iter()
        .map(|id| client.task(id).expect("task"))
        .collect()
}

/// least-tasks: two workers get 6 long tasks, 3 each; a third worker joins
/// and 6 more long tasks go mostly to it, so that all three end up holding
/// exactly 4 (greedy fewest-held-first always reaches the even split,
/// however the tasks are batched into dispatch ticks).
#[test]
fn least_tasks_evens_out_what_workers_hold() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ns = unique_ns("least");
    let dir = TempDir::new("least");
    let gate = dir.join("open");
    let script = dir.join("block.sh");
    std::fs::write(
        &script,
        format!("while [ ! -e {} ]; do sleep 0.05; done\n", gate.display()),
    )
    .expect("write script");
    let exec = format!("block=sh {}", script.display());
    let flags = ["--capacity", "10", "--exec", &exec];
    let mut nodes = vec![
        NodeProc::start(&url, &ns, "n1", &flags),
        NodeProc::start(&url, &ns, "n2", &flags),
    ];
    wait_for_cluster(&url, &ns, &["n1", "n2"], WAIT);
    let mut client = client(&url, &ns);
    let mut probe = Probe::new(&url, &ns);
    let block = || TaskSpec::new("block").with_retries(0);

    let mut ids = submit_all(&mut client, &vec![block(); 6]);
    let counts = count_by_worker(&wait_running(&mut client, &mut probe, &ids));
    assert_eq!(
        counts,
        BTreeMap::from([("n1".into(), 3), ("n2".into(), 3)]),
        "6 tasks on 2 idle workers"
    );

    nodes.push(NodeProc::start(&url, &ns, "n3", &flags));
    wait_for_cluster(&url, &ns, &["n1", "n2", "n3"], WAIT);
    ids.extend(submit_all(&mut client, &vec![block(); 6]));
    let counts = count_by_worker(&wait_running(&mut client, &mut probe, &ids));
    let held: BTreeMap<&str, u64> = ["n1", "n2", "n3"]
        .into_iter()
        .map(|n| (n, probe.held(n)))
        .collect();
    eprintln!("least-tasks: running per worker {counts:?}, held {held:?}");
    assert_eq!(
        counts,
        BTreeMap::from([("n1".into(), 4), ("n2".into(), 4), ("n3".into(), 4)]),
        "6 more tasks after n3 joined"
    );
    assert_eq!(held, BTreeMap::from([("n1", 4), ("n2", 4), ("n3", 4)]));

    std::fs::write(&gate, "").expect("open the gate");
    for t in wait_ended(&mut client, &mut probe, &ids, WAIT) {
        assert_eq!(t.status, Status::Success, "{t:?}");
    }
}

/// The id after `w` in `ids` (sorted), wrapping around.
fn successor<'a>(ids: &'a [&str], w: &str) -> &'a str {
    let i = ids.iter().position(|x| *x == w).expect("known worker");
    ids[(i + 1) % ids.len()]
}

/// Asserts that `seq` visits the workers in turn: every `ids.len()`
/// consecutive dispatches reach every worker once, and (as the balancer
/// documents) in id order.
fn assert_cycles(what: &str, ids: &[&str], seq: &[String]) {
    let n = ids.len();
    let repeats: Vec<usize> = (n..=seq.len())
        .filter(|&end| seq[end - n..end].iter().collect::<BTreeSet<_>>().len() < n)
        .map(|end| end - n)
        .collect();
    assert!(
        repeats.is_empty(),
        "{what}: round-robin gave a worker a second task before the others had one, \
         in the windows of {n} starting at {repeats:?} (of {}): {seq:?}",
        seq.len()
    );
    let out_of_order: Vec<usize> = (1..seq.len())
        .filter(|&i| seq[i] != successor(ids, &seq[i - 1]))
        .collect();
    assert!(
        out_of_order.is_empty(),
        "{what}: round-robin does not follow id order {ids:?} at positions \
         {out_of_order:?} (of {}): {seq:?}",
        seq.len()
    );
}

/// round-robin (the leader's configured balancer): tasks go to the workers
/// in turn, in id order, n1 → n2 → n3 → n1 …, both when each task is
/// dispatched in a tick of its own (submitted one at a time for 2 s, so
/// every node heartbeats several times in between) and when 60 are
/// submitted at once.
#[test]
fn round_robin_cycles_through_the_workers() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ns = unique_ns("round-robin");
    let names = ["n1", "n2", "n3"];
    let flags = ["--capacity", "50", "--balancer", "round-robin"];
    // Started one after the other, as nodes usually are: their heartbeats
    // are not in phase.
    let mut nodes = Vec::new();
    for (i, id) in names.iter().enumerate() {
        nodes.push(NodeProc::start(&url, &ns, id, &flags));
        wait_for_cluster(&url, &ns, &names[..=i], WAIT);
    }
    let mut client = client(&url, &ns);
    let mut probe = Probe::new(&url, &ns);

    // One at a time: each is dispatched before the next is submitted.
    let started = Instant::now();
    let mut one_by_one = Vec::new();
    let mut i = 0;
    while i < 30 || started.elapsed() < Duration::from_secs(2) {
        let id = submit_all(&mut client, &[noop(i)]).remove(0);
        let t = wait_task(&mut client, &id, WAIT, "is dispatched", |t| {
            t.worker.is_some()
        });
        one_by_one.push(worker(&t));
        i += 1;
    }
    eprintln!(
        "round-robin, one at a time over {:?}: {one_by_one:?}",
        started.elapsed()
    );

    // All at once.
    let specs: Vec<TaskSpec> = (0..60).map(noop).collect();
    let ids = submit_all(&mut client, &specs);
    let batch: Vec<String> = wait_ended(&mut client, &mut probe, &ids, WAIT)
        .iter()
        .map(worker)
        .collect();
    eprintln!("round-robin, 60 at once: {batch:?}");

    assert_cycles("one at a time", &names, &one_by_one);
    assert_cycles("60 at once", &names, &batch);
}

/// weighted (named by the tasks themselves; the nodes' default is
/// least-tasks): with weights 1 and 3, 400 tasks split about 25/75
/// (±10 points).
#[test]
fn weighted_follows_the_node_weights() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ns = unique_ns("weighted");
    let _light = NodeProc::start(&url, &ns, "light", &["--capacity", "50", "--weight", "1"]);
    let _heavy = NodeProc::start(&url, &ns, "heavy", &["--capacity", "50", "--weight", "3"]);
    wait_for_cluster(&url, &ns, &["light", "heavy"], WAIT);
    let mut client = client(&url, &ns);
    let mut probe = Probe::new(&url, &ns);

    // In chunks of 40, so neither worker ever runs out of free slots (a
    // full worker is skipped, which would skew the split).
    let mut counts = BTreeMap::new();
    for chunk in 0..10 {
        let specs: Vec<TaskSpec> = (0..40)
            .map(|i| {
                let mut s = noop(chunk * 40 + i);
                s.balancer = Some(Balancer::Weighted);
                s
            })
            .collect();
        let ids = submit_all(&mut client, &specs);
        for t in wait_ended(&mut client, &mut probe, &ids, WAIT) {
            assert_eq!(t.status, Status::Success, "{t:?}");
            *counts.entry(worker(&t)).or_insert(0usize) += 1;
        }
    }
    let heavy = counts.get("heavy").copied().unwrap_or(0) as f64 / 400.0;
    eprintln!(
        "weighted 1:3 over 400 tasks: {counts:?} (heavy {:.1} %)",
        heavy * 100.0
    );
    assert!(
        (0.65..=0.85).contains(&heavy),
        "heavy (weight 3) got {:.1} % of the tasks, expected 75 ± 10: {counts:?}",
        heavy * 100.0
    );
}

/// Which worker each routing key went to; panics if a key went to two.
fn placement(tasks: &[Task]) -> BTreeMap<String, String> {
    let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for t in tasks {
        assert_eq!(t.status, Status::Success, "{t:?}");
        let key = t.payload["key"].as_str().expect("key").to_string();
        seen.entry(key).or_default().insert(worker(t));
    }
    seen.into_iter()
        .map(|(key, workers)| {
            assert_eq!(workers.len(), 1, "key {key} ran on {workers:?}");
            (key, workers.into_iter().next().unwrap())
        })
        .collect()
}

/// The rendezvous winner for `key` among `nodes`.
fn predicted(key: &str, nodes: &[&str]) -> String {
    nodes
        .iter()
        .max_by_key(|n| rendezvous(key, n))
        .expect("nodes")
        .to_string()
}

/// consistent-hash (named per task, routing key per task): every task of a
/// key runs on one node, the one rendezvous hashing picks; when a fourth
/// node joins, only the keys it now wins move (about a quarter), all of
/// them to it. The CLI's `--balancer consistent-hash --route-key` agrees.
#[test]
fn consistent_hash_keeps_keys_and_moves_about_one_in_n() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ns = unique_ns("hash");
    let flags = ["--capacity", "50"];
    let mut nodes: Vec<NodeProc> = ["n1", "n2", "n3"]
        .iter()
        .map(|id| NodeProc::start(&url, &ns, id, &flags))
        .collect();
    wait_for_cluster(&url, &ns, &["n1", "n2", "n3"], WAIT);
    let mut client = client(&url, &ns);
    let mut probe = Probe::new(&url, &ns);

    const KEYS: usize = 120;
    let specs: Vec<TaskSpec> = (0..KEYS * 2)
        .map(|i| {
            let key = format!("key-{}", i % KEYS);
            let mut s = TaskSpec::new("noop")
                .with_payload(&json!({ "key": key }))
                .with_retries(0);
            s.balancer = Some(Balancer::ConsistentHash);
            s.route_key = Some(key);
            s
        })
        .collect();
    let ids = submit_all(&mut client, &specs);
    let before = placement(&wait_ended(&mut client, &mut probe, &ids, WAIT));
    let three = ["n1", "n2", "n3"];
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for (key, node) in &before {
        assert_eq!(node, &predicted(key, &three), "key {key}");
        *per_node.entry(node.as_str()).or_default() += 1;
    }
    for n in three {
        assert!(
            per_node.get(n).copied().unwrap_or(0) >= 15,
            "{n} got too few of {KEYS} keys: {per_node:?}"
        );
    }

    nodes.push(NodeProc::start(&url, &ns, "n4", &flags));
    wait_for_cluster(&url, &ns, &["n1", "n2", "n3", "n4"], WAIT);
    let ids = submit_all(&mut client, &specs);
    let after = placement(&wait_ended(&mut client, &mut probe, &ids, WAIT));
    let four = ["n1", "n2", "n3", "n4"];
    let mut moved = Vec::new();
    for (key, node) in &after {
        assert_eq!(node, &predicted(key, &four), "key {key}");
        if before[key] != *node {
            assert_eq!(node, "n4", "key {key} moved between old nodes");
            moved.push(key.clone());
        }
    }
    let share = moved.len() as f64 / KEYS as f64;
    eprintln!(
        "consistent-hash: keys per node before {per_node:?}; {} of {KEYS} keys ({:.0} %) moved to n4",
        moved.len(),
        share * 100.0
    );
    assert!(
        (0.12..=0.40).contains(&share),
        "{} of {KEYS} keys moved when a 4th node joined (expected about 1/4)",
        moved.len()
    );

    let out = cli(
        &url,
        &ns,
        &[
            "task",
            "submit",
            "--exec",
            "noop",
            "--balancer",
            "consistent-hash",
            "--route-key",
            "key-7",
            "--wait",
            "--wait-timeout",
            "10s",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let shown = json_of(&out);
    assert_eq!(shown["worker"], after["key-7"].as_str(), "{shown}");
}

/// A counter's value in a node's `/metrics` (0 when absent).
fn metric(port: u16, name: &str) -> u64 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to /metrics");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read /metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

/// Samples every worker's held set (queued + running) until all of `ids`
/// have ended; returns the tasks and the most any worker held at once.
fn drain_sampling_held(
    client: &mut distsched::Client,
    probe: &mut Probe,
    ns: &str,
    workers: &[&str],
    ids: &[String],
) -> (Vec<Task>, u64) {
    let keys = distsched::internal::Keys::new(ns);
    let mut most = 0;
    wait_until(WAIT, &format!("{} tasks ended", ids.len()), || {
        for w in workers {
            let held: u64 = probe.run(|c| redis::cmd("SCARD").arg(keys.held(w)).query(c));
            most = most.max(held);
        }
        probe
            .statuses(ids)
            .iter()
            .all(|s| matches!(s.as_deref(), Some("success" | "failed" | "cancelled")))
    });
    let tasks = ids
        .iter()
        .map(|id| client.task(id).expect("task"))
        .collect();
    (tasks, most)
}

/// Refills (DESIGN §5 "Dispatch"): with a backlog, a worker's report takes
/// the next tasks into the slots it frees, so most tasks never wait for a
/// leader round, and still no worker holds more than its capacity, each
/// task runs once, and keyed (`consistent-hash`) tasks mixed into the
/// backlog still run on their owner only.
#[test]
fn a_backlog_is_refilled_by_reports_within_capacity() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ns = unique_ns("refill");
    let ports = [free_port(), free_port(), free_port()];
    let http = |i: usize| format!("127.0.0.1:{}", ports[i]);
    let _leader = NodeProc::start(
        &url,
        &ns,
        "lead",
        &["--role", "scheduler", "--http", &http(0)],
    );
    let worker = |id: &str, i: usize| {
        let port = http(i);
        let flags = [
            "--role",
            "worker",
            "--capacity",
            "3",
            "--exec",
            "nap=sleep 0.02",
            "--http",
            &port,
        ];
        NodeProc::start(&url, &ns, id, &flags)
    };
    let (_w1, _w2) = (worker("w1", 1), worker("w2", 2));
    wait_for_cluster(&url, &ns, &["w1", "w2"], WAIT);
    let mut client = client(&url, &ns);
    let mut probe = Probe::new(&url, &ns);

    const PLAIN: usize = 120;
    const KEYED: usize = 30;
    let mut specs: Vec<TaskSpec> = (0..PLAIN)
        .map(|i| TaskSpec::new("nap").with_payload(&json!(i)).with_retries(0))
        .collect();
    for i in 0..KEYED {
        let key = format!("key-{i}");
        let mut s = TaskSpec::new("nap")
            .with_payload(&json!({ "key": key }))
            .with_retries(0);
        s.balancer = Some(Balancer::ConsistentHash);
        s.route_key = Some(key);
        // Spread through the backlog, not all at its end.
        specs.insert(i * 5, s);
    }
    let ids = submit_all(&mut client, &specs);
    let (tasks, most) = drain_sampling_held(&mut client, &mut probe, &ns, &["w1", "w2"], &ids);

    assert!(most <= 3, "a worker held {most} tasks with capacity 3");
    for t in &tasks {
        assert_eq!(t.status, Status::Success, "{t:?}");
        assert_eq!(t.attempt, 1, "task {} ran more than once: {t:?}", t.id);
    }
    let keyed: Vec<Task> = tasks
        .iter()
        .filter(|t| t.payload.get("key").is_some())
        .cloned()
        .collect();
    for (key, node) in placement(&keyed) {
        assert_eq!(node, predicted(&key, &["w1", "w2"]), "key {key}");
    }
    let per_worker = count_by_worker(&tasks);
    let refills = metric(ports[1], "distsched_worker_refills_total")
        + metric(ports[2], "distsched_worker_refills_total");
    let dispatched = metric(ports[0], "distsched_dispatched_total");
    report(&format!(
        "refill: {} tasks, per worker {per_worker:?}; {refills} refilled by reports, {dispatched} dispatched by the leader; most held at once {most} (capacity 3)",
        tasks.len()
    ));
    assert_eq!(
        refills + dispatched,
        tasks.len() as u64,
        "every task is dispatched once, by a refill or the leader"
    );
    assert!(
        refills >= PLAIN as u64 / 2,
        "only {refills} of {PLAIN} unkeyed tasks were refilled"
    );
    assert!(per_worker.len() == 2, "{per_worker:?}");
}

/// A leader whose default balancer is `consistent-hash` publishes it with
/// the backlogs it records, and refills then leave tasks that name no
/// balancer to their owner: under a backlog every task runs on the worker
/// its id hashes to.
#[test]
fn refills_honour_a_consistent_hash_default() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ns = unique_ns("refill-hash");
    let _leader = NodeProc::start(
        &url,
        &ns,
        "lead",
        &["--role", "scheduler", "--balancer", "consistent-hash"],
    );
    let flags = [
        "--role",
        "worker",
        "--capacity",
        "1",
        "--exec",
        "nap=sleep 0.01",
    ];
    let names = ["w1", "w2", "w3"];
    let _workers: Vec<NodeProc> = names
        .iter()
        .map(|id| NodeProc::start(&url, &ns, id, &flags))
        .collect();
    wait_for_cluster(&url, &ns, &names, WAIT);
    let mut client = client(&url, &ns);
    let mut probe = Probe::new(&url, &ns);

    let specs: Vec<TaskSpec> = (0..60)
        .map(|i| TaskSpec::new("nap").with_payload(&json!(i)).with_retries(0))
        .collect();
    let ids = submit_all(&mut client, &specs);
    let (tasks, most) = drain_sampling_held(&mut client, &mut probe, &ns, &names, &ids);
    assert!(most <= 1, "a worker held {most} tasks with capacity 1");
    for t in &tasks {
        assert_eq!(t.status, Status::Success, "{t:?}");
        assert_eq!(worker(t), predicted(&t.id, &names), "task {}", t.id);
    }
}

/// Without a backlog the balancer has a choice, so a report must not take
/// it: with the leader frozen (SIGSTOP), a task submitted while another
/// worker has a free slot stays pending when a busy worker reports; the
/// report and the refill decision are one script, so the task's state
/// right after the other task succeeds is the decision. Once the leader
/// resumes it dispatches the task.
#[test]
fn without_a_backlog_reports_leave_new_tasks_to_the_leader() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ns = unique_ns("no-backlog");
    let dir = TempDir::new("no-backlog");
    let gate = dir.join("open");
    let script = dir.join("block.sh");
    std::fs::write(
        &script,
        format!("while [ ! -e {} ]; do sleep 0.02; done\n", gate.display()),
    )
    .expect("write script");
    let exec = format!("block=sh {}", script.display());
    let leader = NodeProc::start(&url, &ns, "lead", &["--role", "scheduler"]);
    let flags = ["--role", "worker", "--capacity", "1", "--exec", &exec];
    let _workers = [
        NodeProc::start(&url, &ns, "w1", &flags),
        NodeProc::start(&url, &ns, "w2", &flags),
    ];
    wait_for_cluster(&url, &ns, &["w1", "w2"], WAIT);
    let mut client = client(&url, &ns);

    let busy = submit_all(&mut client, &[TaskSpec::new("block").with_retries(0)]).remove(0);
    wait_task(&mut client, &busy, WAIT, "is running", |t| {
        t.status == Status::Running
    });
    leader.sigstop();
    let waiting = submit_all(&mut client, &[noop(0)]).remove(0);
    std::fs::write(&gate, "").expect("open the gate");
    wait_task(&mut client, &busy, WAIT, "succeeds", |t| {
        t.status == Status::Success
    });
    let t = client.task(&waiting).expect("task");
    assert_eq!(
        (t.status, t.worker.as_deref()),
        (Status::Pending, None),
        "a report took a task while another worker had a free slot: {t:?}"
    );
    leader.sigcont();
    wait_task(&mut client, &waiting, WAIT, "succeeds", |t| {
        t.status == Status::Success
    });
}
