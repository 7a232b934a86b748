//! Tasks end to end, with a private `redis-server` per test and real nodes
//! (processes, or in-process `Node`s where a closure records what ran):
//! exactly-once execution of 1,000 tasks on three nodes, priority order,
//! capacity, routing by executor and tags, and the shell, http and rpc
//! executors as a node runs them (DESIGN §4, §5, §6).

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use distsched::{Node, NodeHandle, Status, Task, TaskSpec};
use serde_json::{Value, json};

use support::*;

/// How long any single wait in this file may take before the test fails.
const WAIT: Duration = Duration::from_secs(20);

fn ids_of(submitted: &[distsched::Submitted]) -> Vec<String> {
    submitted.iter().map(|s| s.id.clone()).collect()
}

fn submit(client: &mut distsched::Client, spec: &TaskSpec) -> String {
    let s = client.submit(spec).expect("submit");
    assert!(s.created, "task not created: {s:?}");
    s.id
}

/// A spec with no retries, so any failure shows instead of being retried.
fn once(executor: &str, payload: Value) -> TaskSpec {
    TaskSpec::new(executor)
        .with_payload(&payload)
        .with_retries(0)
}

fn log_of(client: &mut distsched::Client, id: &str) -> String {
    client.logs(id).expect("logs").join("\n")
}

fn result_of(task: &Task) -> &distsched::TaskResult {
    task.result
        .as_ref()
        .unwrap_or_else(|| panic!("task {} has no result: {task:?}", task.id))
}

/// Test 1: three node processes run 1,000 tasks submitted in one pipelined
/// `submit_many`. Each task appends its id and attempt to a file of the node
/// that ran it (a declared shell command, one `write(2)` with `O_APPEND`).
/// Every task succeeds, every id is recorded exactly once, by the node the
/// task names as its worker, and all three nodes took part. Nothing is left
/// pending, in flight, held or queued afterwards.
#[test]
fn thousand_tasks_on_three_nodes_each_run_exactly_once() {
    const N: usize = 1000;
    let redis = RedisServer::start();
    let url = redis.url();
    let ns = unique_ns("thousand");
    let dir = TempDir::new("thousand");
    let names = ["n1", "n2", "n3"];
    let nodes: Vec<NodeProc> = names
        .iter()
        .map(|id| {
            let file = dir.join(&format!("{id}.ids"));
            let exec = format!(
                "record=sh -c 'echo $DISTSCHED_TASK_ID $DISTSCHED_ATTEMPT >> {}'",
                file.display()
            );
            NodeProc::start(&url, &ns, id, &["--capacity", "8", "--exec", &exec])
        })
        .collect();
    wait_for_cluster(&url, &ns, &names, WAIT);
    let mut client = client(&url, &ns);
    let mut probe = Probe::new(&url, &ns);

    let specs: Vec<TaskSpec> = (0..N).map(|i| once("record", json!({ "i": i }))).collect();
    let started = Instant::now();
    let submitted = client.submit_many(&specs).expect("submit_many");
    let submit_took = started.elapsed();
    assert_eq!(submitted.len(), N);
    assert!(submitted.iter().all(|s| s.created), "some were not created");
    let ids = ids_of(&submitted);
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), N, "ids repeat");

    // Wait for every task to end; give up early if nothing ends for 10 s.
    let mut ended = 0;
    let mut last_progress = Instant::now();
    while ended < N {
        let now_ended = probe
            .statuses(&ids)
            .iter()
            .filter(|s| matches!(s.as_deref(), Some("success" | "failed" | "cancelled")))
            .count();
        if now_ended > ended {
            ended = now_ended;
            last_progress = Instant::now();
        }
        if ended < N
            && (last_progress.elapsed() > Duration::from_secs(10)
                || started.elapsed() > Duration::from_secs(50))
        {
            let held: Vec<(&str, u64)> = names.iter().map(|n| (*n, probe.held(n))).collect();
            let queued: Vec<(&str, u64)> = names
                .iter()
                .map(|n| {
                    let q = probe.keys.queue(n);
                    (*n, probe.llen(&q))
                })
                .collect();
            let unreachable: Vec<String> = nodes
                .iter()
                .flat_map(|n| {
                    n.log()
                        .lines()
                        .filter(|l| l.contains("Redis unreachable") || l.contains("lost"))
                        .map(String::from)
                        .collect::<Vec<_>>()
                })
                .collect();
            let stuck: Vec<String> = ids
                .iter()
                .filter_map(|id| client.task(id).ok())
                .filter(|t| !t.status.is_terminal())
                .take(10)
                .map(|t| {
                    format!(
                        "{} {} on {:?} attempt {} started {:?}",
                        t.id, t.status, t.worker, t.attempt, t.started_ms
                    )
                })
                .collect();
            panic!(
                "stalled: {ended} of {N} tasks ended after {:?}; pending {}, in flight {}, \
                 held {held:?}, queued {queued:?}; stuck tasks: {stuck:#?}; \
                 node log lines about Redis: {unreachable:#?}",
                started.elapsed(),
                probe.pending(),
                probe.in_flight()
            );
        }
        thread::sleep(POLL);
    }
    let took = started.elapsed();
    let tasks = wait_ended(&mut client, &mut probe, &ids, WAIT);

    // What each node's command recorded: id → [(node, attempt)].
    let mut runs: HashMap<String, Vec<(String, String)>> = HashMap::new();
    let mut per_node = BTreeMap::new();
    for name in names {
        let text = std::fs::read_to_string(dir.join(&format!("{name}.ids"))).unwrap_or_default();
        let mut count = 0;
        for line in text.lines() {
            let (id, attempt) = line
                .split_once(' ')
                .unwrap_or_else(|| panic!("torn line in {name}.ids: {line:?}"));
            runs.entry(id.to_string())
                .or_default()
                .push((name.to_string(), attempt.to_string()));
            count += 1;
        }
        per_node.insert(name, count);
    }
    eprintln!(
        "{N} tasks on 3 nodes: submit_many {submit_took:?}, all ended after {took:?} \
         ({:.0} tasks/s); per node {per_node:?}",
        N as f64 / took.as_secs_f64()
    );

    for (i, task) in tasks.iter().enumerate() {
        assert_eq!(task.status, Status::Success, "{task:?}");
        assert_eq!((task.attempt, task.failures), (1, 0), "{task:?}");
        assert_eq!(result_of(task).code, 0, "{task:?}");
        assert_eq!(task.payload, json!({ "i": i }), "{task:?}");
        let worker = task.worker.as_deref().expect("worker recorded");
        let ran = runs.get(&task.id).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(
            ran,
            [(worker.to_string(), "1".to_string())],
            "task {} must run exactly once, on its worker {worker}",
            task.id
        );
        assert!(
            task.started_ms.is_some() && task.ended_ms.is_some(),
            "{task:?}"
        );
    }
    let unknown: Vec<&String> = runs.keys().filter(|id| !ids.contains(id)).collect();
    assert!(
        unknown.is_empty(),
        "ran tasks nobody submitted: {unknown:?}"
    );
    assert_eq!(runs.len(), N);
    for (name, count) in &per_node {
        assert!(*count > 0, "node {name} ran nothing: {per_node:?}");
    }

    // No failure was injected: no node ever lost its Redis connection.
    for node in &nodes {
        let log = node.log();
        let lost: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("Redis unreachable"))
            .collect();
        assert!(
            lost.is_empty(),
            "node {} reported Redis unreachable against a healthy Redis: {lost:#?}",
            node.id()
        );
    }
    assert_eq!(probe.pending(), 0, "tasks left pending");
    assert_eq!(probe.in_flight(), 0, "tasks left in `running`");
    for name in names {
        assert_eq!(probe.held(name), 0, "node {name} still holds tasks");
        let queue = probe.keys.queue(name);
        assert_eq!(probe.llen(&queue), 0, "node {name} has queued items left");
    }
}

/// Test 2: one worker with capacity 1, kept busy by a task that blocks
/// until the test releases it. Tasks of mixed priorities submitted
/// meanwhile all wait in `pending`; once the blocker ends they start in
/// priority order (higher first), first-in first-out within a priority,
/// as recorded by the executor itself and by `started_ms`.
#[test]
fn queued_tasks_start_in_priority_order_fifo_within_a_priority() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ns = unique_ns("priority");
    let (release, released) = crossbeam_channel::bounded::<()>(1);
    let order = Arc::new(Mutex::new(Vec::<String>::new()));
    let recorder = order.clone();
    let mut config = fast_config(&url, &ns, "solo");
    config.capacity = 1;
    let node = Node::builder(config)
        .function("block", move |_ctx| {
            released
                .recv_timeout(Duration::from_secs(30))
                .map_err(|e| format!("never released: {e}"))?;
            Ok(json!("released"))
        })
        .function("rec", move |ctx| {
            let label = ctx.payload_json()["label"]
                .as_str()
                .unwrap_or("?")
                .to_string();
            recorder.lock().unwrap().push(label);
            Ok(Value::Null)
        })
        .start()
        .expect("start node");
    wait_for_cluster(&url, &ns, &["solo"], WAIT);
    let mut client = client(&url, &ns);
    let mut probe = Probe::new(&url, &ns);

    let blocker = submit(&mut client, &TaskSpec::new("block"));
    wait_task(&mut client, &blocker, WAIT, "is running", |t| {
        t.status == Status::Running
    });

    let priorities = [
        0, 5, -3, 5, 1000, 0, -1000, 5, 0, 7, -3, 1000, 7, 0, 5, -1000, 1, 1, 0, 7,
    ];
    let specs: Vec<TaskSpec> = priorities
        .iter()
        .enumerate()
        .map(|(i, &p)| once("rec", json!({ "label": format!("p{p}#{i}") })).with_priority(p))
        .collect();
    // Half one by one, half in one pipelined call: both keep submit order.
    let mut ids: Vec<String> = specs[..10].iter().map(|s| submit(&mut client, s)).collect();
    ids.extend(ids_of(
        &client.submit_many(&specs[10..]).expect("submit_many"),
    ));
    wait_until(WAIT, "every task waits in pending", || {
        probe.pending() == priorities.len() as u64
    });
    assert!(
        order.lock().unwrap().is_empty(),
        "a task started while the only slot was busy"
    );
    assert_eq!(
        probe.held("solo"),
        1,
        "the worker should hold only the blocker"
    );

    release.send(()).expect("release the blocker");
    let tasks = wait_ended(&mut client, &mut probe, &ids, WAIT);
    let blocker_task = client.task(&blocker).expect("blocker");
    assert_eq!(blocker_task.status, Status::Success);

    let mut expected: Vec<(i32, usize)> = priorities.iter().copied().zip(0..).collect();
    expected.sort_by_key(|&(p, i)| (-p, i)); // stable: FIFO within a priority
    let expected: Vec<String> = expected.iter().map(|(p, i)| format!("p{p}#{i}")).collect();
    let recorded = order.lock().unwrap().clone();
    assert_eq!(recorded, expected, "start order (executor's record)");

    // Redis agrees: started_ms never goes backwards in that order, and
    // nothing started before the blocker ended.
    let by_label: HashMap<String, &Task> = tasks
        .iter()
        .map(|t| (t.payload["label"].as_str().unwrap().to_string(), t))
        .collect();
    let mut last = blocker_task.ended_ms.expect("blocker ended");
    for label in &expected {
        let t = by_label[label];
        assert_eq!(t.status, Status::Success, "{t:?}");
        let started = t.started_ms.expect("started");
        assert!(
            started >= last,
            "{label} started at {started}, before the previous one ({last})"
        );
        last = started;
    }
    node.shutdown();
}

/// An in-process node whose `work` executor counts how many calls run at
/// once on it (`now`, with the peak in `peak`). Each call first waits until
/// `gate` is open, then takes the payload's `ms`.
fn counting_node(
    url: &str,
    ns: &str,
    id: &str,
    capacity: usize,
    now: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    gate: Arc<AtomicBool>,
) -> NodeHandle {
    let mut config = fast_config(url, ns, id);
    config.capacity = capacity;
    Node::builder(config)
        .function("work", move |ctx| {
            let running = now.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(running, Ordering::SeqCst);
            let until = Instant::now() + Duration::from_secs(30);
            while !gate.load(Ordering::SeqCst) && Instant::now() < until {
                thread::sleep(Duration::from_millis(2));
            }
            // The task's own work, not synchronisation.
            let ms = ctx.payload_json()["ms"].as_u64().unwrap_or(0);
            thread::sleep(Duration::from_millis(ms));
            now.fetch_sub(1, Ordering::SeqCst);
            Ok(json!(running))
        })
        .start()
        .expect("start node")
}

/// Test 3: two workers with capacities 3 and 2 and 60 tasks. The first
/// tasks hold their slots until the test has seen both workers full (3 and
/// 2 running at once, the other 55 waiting in `pending`); then all run, 30 ms
/// each. The number of tasks running at once on each worker, counted by the
/// executor, never exceeds its capacity; the number a worker holds in Redis
/// (queued + running), sampled all along, never exceeds it either.
#[test]
fn a_worker_never_runs_or_holds_more_than_its_capacity() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ns = unique_ns("capacity");
    let caps = [("cap3", 3usize), ("cap2", 2usize)];
    let counters: Vec<(Arc<AtomicUsize>, Arc<AtomicUsize>)> = caps
        .iter()
        .map(|_| (Arc::default(), Arc::default()))
        .collect();
    let gate = Arc::new(AtomicBool::new(false));
    let nodes: Vec<NodeHandle> = caps
        .iter()
        .zip(&counters)
        .map(|(&(id, cap), (now, peak))| {
            counting_node(&url, &ns, id, cap, now.clone(), peak.clone(), gate.clone())
        })
        .collect();
    wait_for_cluster(&url, &ns, &["cap3", "cap2"], WAIT);
    let mut client = client(&url, &ns);
    let mut probe = Probe::new(&url, &ns);

    // Sample what each worker holds in Redis while the tasks run.
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, url, ns) = (stop.clone(), url.clone(), ns.clone());
        thread::spawn(move || {
            let mut probe = Probe::new(&url, &ns);
            let mut max_held = [0u64; 2];
            let mut samples = 0u32;
            while !stop.load(Ordering::SeqCst) {
                for (i, (id, _)) in caps.iter().enumerate() {
                    max_held[i] = max_held[i].max(probe.held(id));
                }
                samples += 1;
                thread::sleep(Duration::from_millis(2));
            }
            (max_held, samples)
        })
    };

    let specs: Vec<TaskSpec> = (0..60).map(|_| once("work", json!({"ms": 30}))).collect();
    let ids = ids_of(&client.submit_many(&specs).expect("submit_many"));
    wait_until(WAIT, "both workers run as many tasks as they can", || {
        caps.iter()
            .zip(&counters)
            .all(|(&(_, cap), (now, _))| now.load(Ordering::SeqCst) == cap)
    });
    wait_until(WAIT, "the other 55 tasks wait in pending", || {
        probe.pending() == 55
    });
    assert_eq!((probe.held("cap3"), probe.held("cap2")), (3, 2));
    gate.store(true, Ordering::SeqCst);
    let tasks = wait_ended(&mut client, &mut probe, &ids, WAIT);
    stop.store(true, Ordering::SeqCst);
    let (max_held, samples) = sampler.join().expect("sampler");

    let mut ran = BTreeMap::new();
    for t in &tasks {
        assert_eq!(t.status, Status::Success, "{t:?}");
        *ran.entry(t.worker.clone().unwrap_or_default()).or_insert(0) += 1;
        // The executor's own count at its start is in the result.
        let at_start = result_of(t).data.as_u64().expect("count");
        let cap = caps
            .iter()
            .find(|(id, _)| Some(*id) == t.worker.as_deref())
            .map(|&(_, c)| c as u64)
            .expect("known worker");
        assert!(at_start <= cap, "{t:?} ran with {at_start} at once");
    }
    eprintln!(
        "capacity: peaks {:?}, max held {max_held:?} over {samples} samples, tasks per node {ran:?}",
        counters
            .iter()
            .map(|(_, p)| p.load(Ordering::SeqCst))
            .collect::<Vec<_>>()
    );
    for (i, &(id, cap)) in caps.iter().enumerate() {
        let peak = counters[i].1.load(Ordering::SeqCst);
        assert_eq!(peak, cap, "{id}: peak concurrency {peak}, capacity {cap}");
        assert!(
            max_held[i] <= cap as u64,
            "{id} held {} tasks, capacity {cap}",
            max_held[i]
        );
        assert!(ran.get(id).copied().unwrap_or(0) > 0, "{id} ran nothing");
    }
    assert!(samples >= 10, "only {samples} samples");
    for node in nodes {
        node.shutdown();
    }
}

/// Test 4: routing. Executor `x` and tag `ssd` only exist on node `a`: such
/// tasks only ever run on `a`, while plain tasks also reach `b`. A task for
/// executor `y`, which no node offers, and one needing tag `gpu`, which no
/// node carries, wait in `pending` with a `wait_reason` naming what is
/// missing (shown by `task show`); each runs as soon as a node that can
/// take it joins (the join wakes the leader: dispatched within 1 s of the
/// node's start, not at the scheduler's 5 s idle safety net), and only
/// there.
#[test]
fn tasks_only_reach_capable_workers_and_wait_for_one_to_join() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ns = unique_ns("routing");
    let _a = NodeProc::start(&url, &ns, "a", &["--exec", "x=true", "--tags", "ssd"]);
    let _b = NodeProc::start(&url, &ns, "b", &[]);
    wait_for_cluster(&url, &ns, &["a", "b"], WAIT);
    let mut client = client(&url, &ns);
    let mut probe = Probe::new(&url, &ns);

    let mut specs = Vec::new();
    for i in 0..30 {
        specs.push(once("x", json!({ "kind": "x", "i": i })));
        let mut ssd = once("noop", json!({ "kind": "ssd", "i": i }));
        ssd.tags = vec!["ssd".into()];
        specs.push(ssd);
        specs.push(once("noop", json!({ "kind": "plain", "i": i })));
    }
    let ids = ids_of(&client.submit_many(&specs).expect("submit_many"));
    let tasks = wait_ended(&mut client, &mut probe, &ids, WAIT);
    let mut plain_workers = BTreeSet::new();
    for t in &tasks {
        assert_eq!(t.status, Status::Success, "{t:?}");
        match t.payload["kind"].as_str() {
            Some("plain") => {
                plain_workers.insert(t.worker.clone().unwrap_or_default());
            }
            _ => assert_eq!(t.worker.as_deref(), Some("a"), "{t:?}"),
        }
    }
    assert!(
        plain_workers.contains("b"),
        "b never ran a plain task: {plain_workers:?}"
    );

    // Nobody offers `y`; nobody carries `gpu`.
    let y = submit(&mut client, &once("y", json!("for y")));
    let mut gpu_spec = once("noop", json!("for gpu"));
    gpu_spec.tags = vec!["gpu".into()];
    let gpu = submit(&mut client, &gpu_spec);
    let waiting = wait_task(&mut client, &y, WAIT, "has a wait reason", |t| {
        t.wait_reason.is_some()
    });
    let reason = waiting.wait_reason.clone().unwrap();
    assert!(reason.contains("`y`"), "reason does not name y: {reason}");
    assert_eq!(
        (waiting.status, waiting.attempt, waiting.worker.clone()),
        (Status::Pending, 0, None),
        "{waiting:?}"
    );
    let waiting = wait_task(&mut client, &gpu, WAIT, "has a wait reason", |t| {
        t.wait_reason.is_some()
    });
    let reason = waiting.wait_reason.clone().unwrap();
    assert!(reason.contains("gpu"), "reason does not name gpu: {reason}");
    assert_eq!(waiting.status, Status::Pending, "{waiting:?}");

    // `task show` shows why, in JSON and as text.
    let out = cli(&url, &ns, &["task", "show", &y, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let shown = json_of(&out);
    assert_eq!(shown["status"], "pending", "{shown}");
    assert!(
        shown["wait_reason"].as_str().unwrap_or("").contains("`y`"),
        "{shown}"
    );
    let out = cli(&url, &ns, &["task", "show", &y]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("waiting") && l.contains("`y`")),
        "{text}"
    );

    // A node offering `y` joins: the y task runs there, at once.
    let _c = NodeProc::start(&url, &ns, "c", &["--exec", "y=true"]);
    let done = wait_task(&mut client, &y, WAIT, "has ended", |t| {
        t.status.is_terminal()
    });
    assert_eq!(done.status, Status::Success, "{done:?}");
    assert_eq!(done.worker.as_deref(), Some("c"), "{done:?}");
    assert_eq!(
        done.wait_reason, None,
        "reason kept after dispatch: {done:?}"
    );
    let y_after = dispatched_after_start(&mut client, &done, "c");
    // The gpu task still waits: c carries no tags.
    let still = client.task(&gpu).expect("gpu task");
    assert_eq!(still.status, Status::Pending, "{still:?}");

    let _d = NodeProc::start(&url, &ns, "d", &["--tags", "gpu,ssd"]);
    let done = wait_task(&mut client, &gpu, WAIT, "has ended", |t| {
        t.status.is_terminal()
    });
    assert_eq!(done.status, Status::Success, "{done:?}");
    assert_eq!(done.worker.as_deref(), Some("d"), "{done:?}");
    let gpu_after = dispatched_after_start(&mut client, &done, "d");
    eprintln!(
        "routing: waiting task dispatched {y_after} ms (y) and {gpu_after} ms (gpu) after its node started"
    );
    for after in [y_after, gpu_after] {
        assert!(
            after < 1000,
            "dispatched {after} ms after the node started: the joining node did not wake the leader"
        );
    }
}

/// Milliseconds from node `id`'s start (as it registered it) to the
/// dispatch of `task`.
fn dispatched_after_start(client: &mut distsched::Client, task: &Task, id: &str) -> i64 {
    let started = client
        .nodes()
        .expect("nodes")
        .into_iter()
        .find(|n| n.info.id == id)
        .unwrap_or_else(|| panic!("node {id} is not registered"))
        .info
        .started_ms;
    task.dispatched_ms.expect("dispatched") as i64 - started as i64
}

/// Test 4 (continued): tasks that no live worker can run must not hold up
/// the others. 600 tasks for an executor nobody offers are submitted
/// first, then 5 `noop` tasks of the same priority: the `noop` tasks run
/// at once on the idle worker, and every one of the 600 shows why it
/// waits.
#[test]
fn a_backlog_of_unroutable_tasks_does_not_block_routable_ones() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ns = unique_ns("backlog");
    let _a = NodeProc::start(&url, &ns, "a", &[]);
    wait_for_cluster(&url, &ns, &["a"], WAIT);
    let mut client = client(&url, &ns);
    let mut probe = Probe::new(&url, &ns);

    let stuck: Vec<TaskSpec> = (0..600).map(|i| once("nobody", json!(i))).collect();
    let stuck = ids_of(&client.submit_many(&stuck).expect("submit_many"));
    let runnable: Vec<TaskSpec> = (0..5).map(|i| once("noop", json!(i))).collect();
    let runnable = ids_of(&client.submit_many(&runnable).expect("submit_many"));

    let deadline = Instant::now() + Duration::from_secs(5);
    let mut statuses = probe.statuses(&runnable);
    while Instant::now() < deadline && statuses.iter().any(|s| s.as_deref() != Some("success")) {
        thread::sleep(POLL);
        statuses = probe.statuses(&runnable);
    }
    let head_reason = client.task(&stuck[0]).expect("first stuck").wait_reason;
    let tail = client.task(&stuck[599]).expect("last stuck");
    assert!(
        statuses.iter().all(|s| s.as_deref() == Some("success")),
        "5 noop tasks behind 600 unroutable ones never ran on the idle worker \
         (statuses {statuses:?}; pending {}; first stuck task's wait_reason {head_reason:?}, \
         last one's {:?})",
        probe.pending(),
        tail.wait_reason
    );
    wait_until(WAIT, "the last unroutable task shows why it waits", || {
        client
            .task(&stuck[599])
            .map(|t| t.wait_reason.is_some())
            .unwrap_or(false)
    });
}

/// An in-process node whose `work` executor (and `x`, when `with_x`) first
/// waits until `gate` is open.
fn gated_node(url: &str, ns: &str, id: &str, with_x: bool, gate: Arc<AtomicBool>) -> NodeHandle {
    let mut config = fast_config(url, ns, id);
    config.capacity = 4;
    let wait = move |_ctx: &mut distsched::TaskContext| {
        let until = Instant::now() + Duration::from_secs(30);
        while !gate.load(Ordering::SeqCst) && Instant::now() < until {
            thread::sleep(Duration::from_millis(2));
        }
        Ok(Value::Null)
    };
    let mut builder = Node::builder(config).function("work", wait.clone());
    if with_x {
        builder = builder.function("x", wait);
    }
    builder.start().expect("start node")
}

/// Test 4 (continued): tasks waiting for a slot on a full worker must not
/// hold up the others either. Worker `busy` (capacity 4, its tasks held
/// until the test opens the gate) alone offers `x`; both offer `work`. 600
/// `x` tasks, then 600 consistent-hash `work` tasks whose key `busy` owns,
/// then 5 plain `work` tasks: the 5 run at once on `idle`. Once the gate
/// opens, the 1,200 run on `busy`, dispatched in submission order.
#[test]
fn a_backlog_waiting_for_a_full_worker_does_not_block_tasks_others_can_run() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ns = unique_ns("busy-backlog");
    let gate = Arc::new(AtomicBool::new(false));
    let busy = gated_node(&url, &ns, "busy", true, gate.clone());
    let idle = gated_node(&url, &ns, "idle", false, Arc::new(AtomicBool::new(true)));
    wait_for_cluster(&url, &ns, &["busy", "idle"], WAIT);
    let mut client = client(&url, &ns);
    let mut probe = Probe::new(&url, &ns);

    let key = (0..)
        .map(|i| format!("key-{i}"))
        .find(|k| {
            distsched::internal::rendezvous(k, "busy") > distsched::internal::rendezvous(k, "idle")
        })
        .expect("a key owned by busy");
    let mut backlog: Vec<TaskSpec> = (0..600).map(|i| once("x", json!(i))).collect();
    backlog.extend((0..600).map(|i| {
        let mut s = once("work", json!(i));
        s.balancer = Some(distsched::Balancer::ConsistentHash);
        s.route_key = Some(key.clone());
        s
    }));
    let backlog = ids_of(&client.submit_many(&backlog).expect("submit_many"));
    let others: Vec<TaskSpec> = (0..5).map(|i| once("work", json!(i))).collect();
    let others = ids_of(&client.submit_many(&others).expect("submit_many"));

    let deadline = Instant::now() + Duration::from_secs(5);
    let mut statuses = probe.statuses(&others);
    while Instant::now() < deadline && statuses.iter().any(|s| s.as_deref() != Some("success")) {
        thread::sleep(POLL);
        statuses = probe.statuses(&others);
    }
    assert!(
        statuses.iter().all(|s| s.as_deref() == Some("success")),
        "5 tasks behind 1,200 waiting for the full worker never ran on the idle one \
         (statuses {statuses:?}; pending {}; busy holds {})",
        probe.pending(),
        probe.held("busy")
    );
    let waiting = client.task(&backlog[1199]).expect("last of the backlog");
    assert_eq!(waiting.status, Status::Pending, "{waiting:?}");

    gate.store(true, Ordering::SeqCst);
    let tasks = wait_ended(&mut client, &mut probe, &backlog, WAIT);
    let mut last = 0;
    for (i, t) in tasks.iter().enumerate() {
        assert_eq!(t.status, Status::Success, "{t:?}");
        assert_eq!(t.worker.as_deref(), Some("busy"), "{t:?}");
        assert_eq!(t.wait_reason, None, "reason kept after dispatch: {t:?}");
        let at = t.dispatched_ms.expect("dispatched");
        assert!(
            at >= last,
            "backlog task #{i} was dispatched at {at}, before the one submitted before it ({last})"
        );
        last = at;
    }
    busy.shutdown();
    idle.shutdown();
}

/// A leader tick while every worker is full reads none of the backlog, so
/// its cost does not grow with the depth of `pending` (a read asked for
/// "as many tasks as there are free slots" with none free once read the
/// whole backlog: an HMGET per waiting task, every tick). Worker `busy`
/// (capacity 4) holds 4 gated tasks; 1,996 wait; 3 ticks are forced.
#[test]
fn a_tick_with_every_worker_full_reads_none_of_the_backlog() {
    const TICKS: usize = 3;
    let redis = RedisServer::start();
    let url = redis.url();
    let ns = unique_ns("full-tick");
    let gate = Arc::new(AtomicBool::new(false));
    let busy = gated_node(&url, &ns, "busy", false, gate.clone());
    wait_for_cluster(&url, &ns, &["busy"], WAIT);
    let mut client = client(&url, &ns);
    let mut probe = Probe::new(&url, &ns);
    let specs: Vec<TaskSpec> = (0..2000).map(|i| once("work", json!(i))).collect();
    let ids = ids_of(&client.submit_many(&specs).expect("submit_many"));
    wait_until(WAIT, "busy holds 4 tasks and 1,996 wait", || {
        probe.held("busy") == 4 && probe.pending() == 1996
    });

    let mut conn = redis.client();
    reset_command_stats(&mut conn);
    let read_sha = distsched::internal::scripts::DISPATCH_READ
        .get_hash()
        .to_string();
    let reads = |conn: &mut redis::Connection| {
        slowlog_scripts(conn)
            .iter()
            .filter(|(sha, _)| *sha == read_sha)
            .count()
    };
    for n in 1..=TICKS {
        redis::cmd("LPUSH")
            .arg(probe.keys.wake())
            .arg(1)
            .query::<()>(&mut conn)
            .expect("LPUSH wake");
        wait_until(WAIT, &format!("dispatch read {n} ran"), || {
            reads(&mut conn) >= n
        });
    }
    let (hmget, _) = command_stats(&mut conn, "hmget");
    // Per tick: the live workers' entries; nothing per waiting task.
    assert!(
        hmget < 10 * TICKS as u64,
        "{hmget} HMGETs in {TICKS} dispatch ticks with every worker full and 1,996 tasks waiting"
    );

    gate.store(true, Ordering::SeqCst);
    let tasks = wait_ended(&mut client, &mut probe, &ids, WAIT);
    assert!(tasks.iter().all(|t| t.status == Status::Success));
    busy.shutdown();
}

/// An ended task's log expires with it, however the log came about: lines
/// of the successful attempt, lines only of an earlier failed attempt, a
/// cancel; a task that never logged leaves no log key behind. (Ending a
/// task expires its log only when the task records that it has one.)
#[test]
fn an_ended_tasks_log_expires_with_it() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ns = unique_ns("log-ttl");
    let mut config = fast_config(&url, &ns, "solo");
    config.capacity = 4;
    let node = Node::builder(config)
        .function("chatty", |ctx| {
            ctx.log("hello");
            Ok(Value::Null)
        })
        .function("flaky", |ctx| {
            if ctx.attempt == 1 {
                ctx.log("first attempt fails");
                return Err("boom".into());
            }
            Ok(Value::Null)
        })
        .function("quiet", |_| Ok(Value::Null))
        .start()
        .expect("start node");
    wait_for_cluster(&url, &ns, &["solo"], WAIT);
    let mut client = client(&url, &ns);
    let mut probe = Probe::new(&url, &ns);
    let mut flaky = TaskSpec::new("flaky").with_retries(1);
    flaky.retry_delay = Duration::from_millis(10);
    let specs = [once("chatty", json!(1)), flaky, once("quiet", json!(3))];
    let ids = ids_of(&client.submit_many(&specs).expect("submit_many"));
    // Cancelled while waiting: no worker offers `nobody`.
    let cancelled = submit(&mut client, &once("nobody", json!(4)));
    client.cancel(&cancelled).expect("cancel");
    let tasks = wait_ended(&mut client, &mut probe, &ids, WAIT);
    assert!(
        tasks.iter().all(|t| t.status == Status::Success),
        "{tasks:?}"
    );

    let mut conn = redis.client();
    let mut pttl =
        |key: String| -> i64 { redis::cmd("PTTL").arg(key).query(&mut conn).expect("PTTL") };
    for id in [&ids[0], &ids[1], &cancelled] {
        let (task, log) = (pttl(probe.keys.task(id)), pttl(probe.keys.log(id)));
        assert!(task > 0, "task {id} has no TTL ({task})");
        assert!(
            log > 0 && log <= task,
            "the log of task {id} has TTL {log} ms, the task {task} ms"
        );
    }
    assert!(log_of(&mut client, &ids[1]).contains("first attempt fails"));
    assert_eq!(
        pttl(probe.keys.log(&ids[2])),
        -2,
        "a quiet task left a log key"
    );
    node.shutdown();
}

/// Writes `text` to `name` in `dir` and returns its path as text.
fn write_file(dir: &TempDir, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write file");
    path.display().to_string()
}

/// Reads the pids a command appended to `path`.
fn pids_in(path: &str) -> Vec<u32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Starts node `id` offering ad hoc shell commands and `extra` flags, waits
/// until it is registered; returns it with a client and a probe.
fn shell_node(
    redis: &RedisServer,
    ns: &str,
    id: &str,
    extra: &[&str],
) -> (NodeProc, distsched::Client, Probe) {
    let url = redis.url();
    let mut args = vec!["--capacity", "6", "--allow-adhoc-shell"];
    args.extend(extra);
    let node = NodeProc::start(&url, ns, id, &args);
    wait_for_cluster(&url, ns, &[id], WAIT);
    (node, client(&url, ns), Probe::new(&url, ns))
}

/// An ad hoc shell payload running `script` with `sh -c`.
fn sh(script: &str) -> Value {
    json!({ "argv": ["sh", "-c", script] })
}

/// A command starts with no signal blocked and none ignored that the node
/// itself ignores: the node's threads block process signals (see
/// `component::spawn_thread`), and a child inherits its spawning thread's
/// mask, so a leak here would make SIGTERM on timeout or cancel useless.
#[test]
fn shell_commands_start_with_an_empty_signal_mask() {
    let redis = RedisServer::start();
    let ns = unique_ns("sigmask");
    let (_node, mut client, mut probe) = shell_node(&redis, &ns, "m1", &[]);
    let id = submit(
        &mut client,
        &once("shell", sh("grep -E '^Sig(Blk|Ign)' /proc/self/status")),
    );
    let t = wait_ended(&mut client, &mut probe, std::slice::from_ref(&id), WAIT).remove(0);
    assert_eq!(t.status, Status::Success, "{t:?}");
    let log = log_of(&mut client, &id);
    assert!(log.contains("SigBlk:\t0000000000000000"), "{log}");
    // SIGPIPE (bit 13) and SIGTERM (bit 15) are not ignored in the child.
    let ignored = log
        .lines()
        .find_map(|l| l.split("SigIgn:\t").nth(1))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or_else(|| panic!("no SigIgn line: {log}"));
    assert_eq!(ignored & ((1 << 12) | (1 << 14)), 0, "{log}");
}

/// Test 6: the shell executor as a node runs it. A declared command gets the
/// payload on stdin and in `DISTSCHED_PAYLOAD`, its task id, attempt and
/// job in the environment, and the last JSON line of its stdout becomes
/// `result.data`; an exit code becomes the result code of a failed task; a
/// timeout stops the whole process group (the grandchild `sleep` too, with
/// SIGKILL after the kill grace when SIGTERM is ignored), and the task is
/// retried, then failed, as its retries say.
#[test]
fn shell_tasks_through_a_node() {
    let redis = RedisServer::start();
    let ns = unique_ns("shell");
    let dir = TempDir::new("shell");
    let script = write_file(
        &dir,
        "probe.sh",
        r#"read -r line
echo "stdin: $line"
echo "env: $DISTSCHED_PAYLOAD"
echo "to stderr" >&2
printf '{"stdin": %s, "env": %s, "task": "%s", "attempt": %s, "job": "%s"}\n' "$line" "$DISTSCHED_PAYLOAD" "$DISTSCHED_TASK_ID" "$DISTSCHED_ATTEMPT" "$DISTSCHED_JOB"
echo "not JSON, after the JSON line"
"#,
    );
    let exec = format!("probe=sh {script}");
    let (_node, mut client, mut probe) = shell_node(&redis, &ns, "sh1", &["--exec", &exec]);

    let payload = json!({"greeting": "hi there", "n": 7});
    let probe_id = submit(&mut client, &once("probe", payload.clone()));
    let fail_id = submit(
        &mut client,
        &once(
            "shell",
            sh("echo '{\"partial\": true}'; echo oops >&2; exit 3"),
        ),
    );
    let retry_pids = dir.join("retry.pids").display().to_string();
    let mut retry = once(
        "shell",
        sh(&format!(
            "echo $$ >> {retry_pids}; sleep 30 & echo $! >> {retry_pids}; wait"
        )),
    );
    retry.timeout = Duration::from_millis(400);
    retry.max_retries = 1;
    retry.retry_delay = Duration::from_millis(600);
    retry.backoff = 1.0;
    let retry_id = submit(&mut client, &retry);
    let stubborn_pids = dir.join("stubborn.pids").display().to_string();
    let mut stubborn = once(
        "shell",
        sh(&format!(
            "trap '' TERM; echo $$ >> {stubborn_pids}; sleep 30 & echo $! >> {stubborn_pids}; wait"
        )),
    );
    stubborn.timeout = Duration::from_millis(300);
    let stubborn_id = submit(&mut client, &stubborn);

    // The retrying task shows `retrying` and its next attempt time between
    // its two attempts.
    let between = wait_task(&mut client, &retry_id, WAIT, "is retrying", |t| {
        t.status == Status::Retrying
    });
    assert_eq!((between.attempt, between.failures), (1, 1), "{between:?}");
    assert!(
        between
            .next_attempt_ms
            .is_some_and(|n| n > between.started_ms.unwrap_or(0)),
        "{between:?}"
    );

    let ids = [
        probe_id.clone(),
        fail_id.clone(),
        retry_id.clone(),
        stubborn_id.clone(),
    ];
    let tasks = wait_ended(&mut client, &mut probe, &ids, WAIT);

    // Declared command: stdin, environment, last JSON line → data.
    let t = &tasks[0];
    assert_eq!(t.status, Status::Success, "{t:?}");
    let r = result_of(t);
    assert_eq!(r.code, 0, "{t:?}");
    assert_eq!(
        r.data,
        json!({"stdin": payload, "env": payload, "task": probe_id, "attempt": 1, "job": ""}),
        "{t:?}"
    );
    let log = log_of(&mut client, &probe_id);
    assert!(log.contains(&format!("stdout: stdin: {payload}")), "{log}");
    assert!(log.contains("stderr: to stderr"), "{log}");
    assert!(
        log.contains("stdout: not JSON, after the JSON line"),
        "{log}"
    );
    assert!(log.contains("shell: exit 0 after"), "{log}");

    // Exit code → result code of a failed task; JSON line still → data.
    let t = &tasks[1];
    assert_eq!(t.status, Status::Failed, "{t:?}");
    let r = result_of(t);
    assert_eq!(r.code, 3, "{t:?}");
    assert_eq!(r.data, json!({"partial": true}), "{t:?}");
    let error = t.error.clone().unwrap_or_default();
    assert!(error.contains("exit 3") && error.contains("oops"), "{t:?}");
    assert_eq!((t.attempt, t.failures), (1, 1), "{t:?}");

    // Timeout: retried once, then failed; every process of both attempts
    // (the shells and their grandchildren) is gone.
    let t = &tasks[2];
    assert_eq!(t.status, Status::Failed, "{t:?}");
    assert_eq!((t.attempt, t.failures), (2, 2), "{t:?}");
    assert!(
        t.error.as_deref().unwrap_or("").contains("timed out"),
        "{t:?}"
    );
    let log = log_of(&mut client, &retry_id);
    assert!(log.contains("[attempt 1] timeout"), "{log}");
    assert!(log.contains("; retry in "), "{log}");
    assert!(log.contains("[attempt 2] timeout"), "{log}");
    assert!(log.contains("no retries left"), "{log}");
    let pids = pids_in(&retry_pids);
    assert_eq!(pids.len(), 4, "two shells and two sleeps: {pids:?}");
    wait_until(
        Duration::from_secs(2),
        "every retried attempt's process is gone",
        || pids.iter().all(|&p| process_gone(p)),
    );

    // SIGTERM ignored: SIGKILL after the kill grace (3 s) ends the group.
    let t = &tasks[3];
    assert_eq!(t.status, Status::Failed, "{t:?}");
    let ran = t.ended_ms.unwrap_or(0) - t.started_ms.unwrap_or(0);
    assert!(
        ran >= 3000,
        "ended {ran} ms after start: before the kill grace"
    );
    let pids = pids_in(&stubborn_pids);
    assert_eq!(pids.len(), 2, "{pids:?}");
    wait_until(Duration::from_secs(2), "the stubborn group is gone", || {
        pids.iter().all(|&p| process_gone(p))
    });
}

/// Test 6 (output cap): a command printing 250 lines on stdout and 120 on
/// stderr leaves, in `task logs`, the last 100 lines of each stream with a
/// note of how many earlier ones were dropped (the shell executor's
/// documented tail), plus its exit line; the last JSON line of stdout is
/// still the data. A 5,000-byte line is cut in the log.
#[test]
fn shell_output_is_capped_in_the_task_log() {
    let redis = RedisServer::start();
    let ns = unique_ns("shell-cap");
    let (_node, mut client, mut probe) = shell_node(&redis, &ns, "sh2", &[]);
    let cap_id = submit(&mut client, &once("shell", sh("seq 1 250; seq 1 120 >&2")));
    let long_id = submit(
        &mut client,
        &once("shell", sh("head -c 5000 /dev/zero | tr '\\0' x; echo")),
    );
    let tasks = wait_ended(
        &mut client,
        &mut probe,
        &[cap_id.clone(), long_id.clone()],
        WAIT,
    );

    let t = &tasks[1];
    assert_eq!(t.status, Status::Success, "{t:?}");
    let lines = client.logs(&long_id).expect("logs");
    let long = lines
        .iter()
        .find(|l| l.contains("stdout: xxx"))
        .unwrap_or_else(|| panic!("no long line: {lines:#?}"));
    assert!(long.ends_with('…'), "long line not marked as cut");
    assert!(
        long.len() < 3000,
        "long line kept whole: {} bytes",
        long.len()
    );

    let t = &tasks[0];
    assert_eq!(t.status, Status::Success, "{t:?}");
    assert_eq!(result_of(t).data, json!(250), "last JSON line of stdout");
    let lines = client.logs(&cap_id).expect("logs");
    let out = cli(&redis.url(), &ns, &["task", "logs", &cap_id]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("stdout: (150 earlier lines dropped)"),
        "{text}"
    );
    let has = |want: &str| lines.iter().any(|l| l.ends_with(want));
    let missing: Vec<&str> = [
        "stdout: (150 earlier lines dropped)",
        "stdout: 151",
        "stdout: 250",
        "stderr: (20 earlier lines dropped)",
        "stderr: 21",
        "stderr: 120",
    ]
    .into_iter()
    .filter(|want| !has(want))
    .collect();
    let dropped_notes: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("log lines dropped"))
        .collect();
    assert!(
        missing.is_empty(),
        "the log lacks {missing:?} of the promised last-100-lines tail \
         (context cap notes: {dropped_notes:?}); {} lines in the log",
        lines.len()
    );
    assert!(!has("stdout: 150") && !has("stderr: 20"), "{lines:#?}");
    let count = |stream: &str| {
        lines
            .iter()
            .filter(|l| l.contains(&format!("] {stream}: ")))
            .count()
    };
    assert_eq!(count("stdout"), 101, "100 lines and the note");
    assert_eq!(count("stderr"), 101, "100 lines and the note");
    assert!(
        lines.iter().any(|l| l.contains("shell: exit 0 after")),
        "the exit line is missing from the log: {:?}",
        &lines[lines.len().saturating_sub(3)..]
    );
}

// -------------------------------------------------------- test HTTP server

/// A tiny HTTP/1.1 server on 127.0.0.1:0 (one thread per connection,
/// `Connection: close`) that counts the requests per path.
struct HttpServer {
    base: String,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl HttpServer {
    fn start() -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let counter = hits.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let counter = counter.clone();
                thread::spawn(move || {
                    let _ = serve(stream, &counter);
                });
            }
        });
        HttpServer { base, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

fn serve(stream: TcpStream, hits: &Mutex<HashMap<String, usize>>) -> std::io::Result<()> {
    let support::StubRequest {
        method,
        path,
        headers,
        body,
    } = support::read_stub_request(&stream)?;
    *hits.lock().unwrap().entry(path.clone()).or_default() += 1;

    let (status, reply) = match path.as_str() {
        "/ok" => (200, json!({"hello": "world", "n": 1}).to_string()),
        "/echo" => (
            200,
            json!({"method": method, "test_header": headers.get("x-test"), "body": body})
                .to_string(),
        ),
        "/fail" => (500, json!({"error": "broken"}).to_string()),
        "/slow" => {
            // Simulated server latency, not synchronisation: the task's
            // timeout must fire long before.
            thread::sleep(Duration::from_secs(3));
            (200, "{}".to_string())
        }
        "/rpc" => (200, rpc_reply(&body).to_string()),
        _ => (404, json!({"error": "not found"}).to_string()),
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    )?;
    stream.flush()
}

/// JSON-RPC 2.0: `add` sums its params; anything else is an error.
fn rpc_reply(body: &str) -> Value {
    let request: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let id = request["id"].clone();
    match request["method"].as_str() {
        Some("add") => {
            let sum: i64 = request["params"]
                .as_array()
                .map(|ps| ps.iter().filter_map(Value::as_i64).sum())
                .unwrap_or(0);
            json!({"jsonrpc": "2.0", "id": id, "result": sum})
        }
        _ => json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32000, "message": "boom"}}),
    }
}

/// Test 7: the `http` and `rpc` executors as a node runs them, against a
/// small HTTP server started by the test: 2xx → success with the status as
/// code and the JSON body as data; non-2xx → failed with the status as code
/// (and retried while retries are left); a JSON-RPC result → data, a
/// JSON-RPC error → failed with its code and message; a slow server →
/// failed by the attempt's timeout, long before the server answers.
#[test]
fn http_and_rpc_tasks_through_a_node() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ns = unique_ns("http");
    let server = HttpServer::start();
    let _node = NodeProc::start(&url, &ns, "web", &["--capacity", "10"]);
    wait_for_cluster(&url, &ns, &["web"], WAIT);
    let mut client = client(&url, &ns);
    let mut probe = Probe::new(&url, &ns);

    let slow = |executor: &str, payload: Value| {
        let mut spec = once(executor, payload);
        spec.timeout = Duration::from_millis(300);
        spec
    };
    let mut retried = once("http", json!({"url": server.url("/missing")}));
    retried.max_retries = 1;
    retried.retry_delay = Duration::from_millis(50);
    let specs = vec![
        once("http", json!({"url": server.url("/ok")})),
        once(
            "http",
            json!({"url": server.url("/echo"), "headers": {"x-test": "yes"}, "body": {"k": "v"}}),
        ),
        once("http", json!({"url": server.url("/fail")})),
        retried,
        slow("http", json!({"url": server.url("/slow")})),
        once(
            "rpc",
            json!({"url": server.url("/rpc"), "method": "add", "params": [2, 3]}),
        ),
        once(
            "rpc",
            json!({"url": server.url("/rpc"), "method": "explode", "params": {}}),
        ),
        once(
            "rpc",
            json!({"url": server.url("/nowhere"), "method": "add"}),
        ),
        slow(
            "rpc",
            json!({"url": server.url("/slow"), "method": "add", "params": [1]}),
        ),
    ];
    let ids = ids_of(&client.submit_many(&specs).expect("submit_many"));
    let tasks = wait_ended(&mut client, &mut probe, &ids, WAIT);
    let code = |t: &Task| result_of(t).code;

    let t = &tasks[0];
    assert_eq!((t.status, code(t)), (Status::Success, 200), "{t:?}");
    assert_eq!(result_of(t).data, json!({"hello": "world", "n": 1}));
    let log = log_of(&mut client, &t.id);
    assert!(log.contains("-> 200"), "{log}");

    let t = &tasks[1];
    assert_eq!((t.status, code(t)), (Status::Success, 200), "{t:?}");
    assert_eq!(
        result_of(t).data,
        json!({"method": "POST", "test_header": "yes", "body": "{\"k\":\"v\"}"}),
        "{t:?}"
    );

    let t = &tasks[2];
    assert_eq!((t.status, code(t)), (Status::Failed, 500), "{t:?}");
    assert_eq!(result_of(t).data, json!({"error": "broken"}), "{t:?}");
    assert!(t.error.as_deref().unwrap_or("").contains("500"), "{t:?}");

    let t = &tasks[3];
    assert_eq!((t.status, code(t)), (Status::Failed, 404), "{t:?}");
    assert_eq!((t.attempt, t.failures), (2, 2), "{t:?}");
    assert_eq!(server.hits("/missing"), 2, "one request per attempt");

    for t in [&tasks[4], &tasks[8]] {
        assert_eq!(t.status, Status::Failed, "{t:?}");
        assert!(
            t.error.as_deref().unwrap_or("").contains("timed out"),
            "{t:?}"
        );
        let ran = t.ended_ms.unwrap_or(0) - t.started_ms.unwrap_or(0);
        assert!(ran < 2000, "a 300 ms timeout took {ran} ms");
    }

    let t = &tasks[5];
    assert_eq!((t.status, code(t)), (Status::Success, 0), "{t:?}");
    assert_eq!(result_of(t).data, json!(5), "{t:?}");

    let t = &tasks[6];
    assert_eq!((t.status, code(t)), (Status::Failed, -32000), "{t:?}");
    assert!(result_of(t).message.contains("boom"), "{t:?}");

    let t = &tasks[7];
    assert_eq!((t.status, code(t)), (Status::Failed, 404), "{t:?}");
}
