//! Node registry and Redis outages, with real `distsched node` processes and
//! a private `redis-server` per test.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;

use support::*;

/// `distsched workers --json` as an array, sorted by id.
fn workers(redis: &RedisServer, ns: &str) -> Vec<Value> {
    let out = cli(&redis.url(), ns, &["workers", "--json"]);
    assert_eq!(out.status.code(), Some(0), "workers: {out:?}");
    match json_of(&out) {
        Value::Array(items) => items,
        other => panic!("workers --json is not an array: {other}"),
    }
}

fn ids(list: &[Value]) -> Vec<String> {
    list.iter()
        .map(|w| w["id"].as_str().expect("id").to_string())
        .collect()
}

fn listed_ids(client: &mut distsched::Client) -> Vec<String> {
    client
        .nodes()
        .expect("nodes")
        .into_iter()
        .map(|n| n.info.id)
        .collect()
}

/// Test 5: `workers` lists every live node with what it advertises; a node
/// killed with `kill -9` leaves the list after its heartbeat timeout and the
/// index at the leader's next recover tick; a second process cannot take a
/// live node's id.
#[test]
fn workers_lists_live_nodes_and_drops_dead_ones() {
    let redis = RedisServer::start();
    let ns = unique_ns("registry");
    let url = redis.url();
    // Nobody yet: `leader` prints null and exits 1, `workers` lists nothing.
    let out = cli(&url, &ns, &["leader", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(json_of(&out), Value::Null);
    assert!(out.stderr.is_empty(), "{out:?}");
    assert!(workers(&redis, &ns).is_empty());
    let n1 = NodeProc::start(
        &url,
        &ns,
        "n1",
        &["--capacity", "3", "--tags", "gpu,eu", "--weight", "7"],
    );
    let mut n2 = NodeProc::start(&url, &ns, "n2", &["--role", "worker", "--capacity", "5"]);
    let n3 = NodeProc::start(&url, &ns, "n3", &["--role", "scheduler"]);
    let mut probe = Probe::new(&url, &ns);
    let (leader, _) = wait_for_leader(&mut probe, Duration::from_secs(10));
    wait_until(Duration::from_secs(5), "3 nodes listed", || {
        workers(&redis, &ns).len() == 3
    });

    let list = workers(&redis, &ns);
    assert_eq!(ids(&list), ["n1", "n2", "n3"], "{list:?}");
    // (node, pid, role, capacity, tags, weight): a scheduler-only node
    // advertises capacity 0 since it runs no tasks.
    let expected = [
        (&n1, "both", 3, vec!["gpu", "eu"], 7),
        (&n2, "worker", 5, vec![], 1),
        (&n3, "scheduler", 0, vec![], 1),
    ];
    for (w, (node, role, capacity, tags, weight)) in list.iter().zip(&expected) {
        assert_eq!(w["id"], node.id(), "{w}");
        assert_eq!(w["pid"], node.pid(), "{w}");
        assert_eq!(w["role"], *role, "{w}");
        assert_eq!(w["capacity"], *capacity, "{w}");
        assert_eq!(w["tags"], serde_json::json!(tags), "{w}");
        assert_eq!(w["weight"], *weight, "{w}");
        assert_eq!(w["running"], 0, "{w}");
        assert_eq!(w["version"], env!("CARGO_PKG_VERSION"), "{w}");
        assert!(!w["host"].as_str().unwrap_or("").is_empty(), "{w}");
        assert!(w["heartbeat_ms"].as_u64().unwrap_or(0) > 0, "{w}");
        assert!(w["started_ms"].as_u64().unwrap_or(0) > 0, "{w}");
        let ttl = w["ttl_ms"].as_i64().expect("ttl_ms");
        assert!(
            ttl > 0 && ttl <= HEARTBEAT_TIMEOUT.as_millis() as i64,
            "{w}"
        );
        assert_eq!(w["leader"], node.id() == leader, "{w}");
    }
    assert_ne!(leader, "n2", "a worker-only node must never lead");

    // A second process with a live node's id is refused, and the live node
    // keeps its entry.
    let mut dup: Vec<&str> = vec!["node", "--id", "n1"];
    dup.extend(FAST);
    let out = cli(&url, &ns, &dup);
    let line = assert_one_line_error(&out, 1, "duplicate node id");
    assert!(line.contains("n1"), "{line}");
    let list = workers(&redis, &ns);
    assert_eq!(ids(&list), ["n1", "n2", "n3"]);
    assert_eq!(list[0]["pid"], n1.pid(), "the live n1 lost its entry");

    // kill -9 the worker: it stays listed until its entry's TTL runs out
    // (the last beat was at most one heartbeat interval before the kill),
    // then leaves the list; the index entry goes at the next recover tick.
    let mut client = distsched::Client::open(&url, &ns).expect("client");
    let killed = Instant::now();
    n2.kill9();
    let gone = wait_until(
        HEARTBEAT_TIMEOUT + Duration::from_secs(2),
        "n2 left the workers list",
        || !listed_ids(&mut client).contains(&"n2".to_string()),
    );
    let left_list = killed.elapsed();
    // Lower bound: not before its TTL (less the one beat interval it may
    // have been into, and a little scheduling slack).
    let earliest = HEARTBEAT_TIMEOUT - HEARTBEAT_INTERVAL - Duration::from_millis(100);
    assert!(
        gone >= earliest,
        "n2 dropped after {gone:?}, before its TTL"
    );
    // Upper bound: the TTL plus 500 ms of scheduling and polling slack.
    assert!(
        left_list <= HEARTBEAT_TIMEOUT + Duration::from_millis(500),
        "n2 still listed {left_list:?} after kill -9"
    );
    let unindexed = wait_until(Duration::from_secs(3), "n2 left the nodes index", || {
        !probe.indexed_nodes().contains(&"n2".to_string())
    });
    // One recover tick (200 ms) plus 300 ms slack.
    assert!(
        unindexed <= RECOVER_INTERVAL + Duration::from_millis(300),
        "index entry removed {unindexed:?} after the registry entry expired"
    );
    eprintln!("kill -9 of n2: off the list after {left_list:?}, off the index {unindexed:?} later");
    assert!(n2.wait_exit(Duration::from_secs(1)).is_some());
    let leader_node = if leader == "n1" { &n1 } else { &n3 };
    wait_until(
        Duration::from_secs(2),
        "the leader logs the dead node",
        || {
            leader_node
                .log()
                .contains("recoverer: node n2 missed its heartbeat timeout")
        },
    );
    let list = workers(&redis, &ns);
    assert_eq!(ids(&list), ["n1", "n3"], "{list:?}");
    let mut indexed = probe.indexed_nodes();
    indexed.sort();
    assert_eq!(indexed, ["n1", "n3"]);
}

/// Test 6b: Redis restarted without persistence under a running 3-node
/// cluster. The nodes ride it out (no exit), re-register, and elect a
/// leader whose epoch is higher than before the restart although Redis lost
/// the epoch counter.
#[test]
fn cluster_survives_a_redis_restart_and_the_epoch_keeps_rising() {
    let mut redis = RedisServer::start();
    let ns = unique_ns("restart");
    let url = redis.url();
    let mut nodes: Vec<NodeProc> = ["n1", "n2", "n3"]
        .iter()
        .map(|id| NodeProc::start(&url, &ns, id, &[]))
        .collect();
    let mut probe = Probe::new(&url, &ns);
    let (old_leader, old_epoch) = wait_for_leader(&mut probe, Duration::from_secs(10));
    let mut client = distsched::Client::open(&url, &ns).expect("client");
    let first = wait_for(Duration::from_secs(5), "3 nodes listed", || {
        let nodes = client.nodes().expect("nodes");
        (nodes.len() == 3).then_some(nodes)
    });
    // Every node beats again, so each has run for a heartbeat interval and
    // its leader thread has long made its first acquire attempt (seeing the
    // epoch): the restarted epoch is built from the highest epoch seen.
    wait_until(Duration::from_secs(5), "every node beat again", || {
        let now = client.nodes().expect("nodes");
        now.len() == 3
            && now
                .iter()
                .zip(&first)
                .all(|(n, f)| n.heartbeat_ms > f.heartbeat_ms)
    });

    // A marker that must be gone after the restart: Redis really lost
    // everything, the epoch counter included.
    probe.run(|c| {
        redis::cmd("SET")
            .arg(format!("{{{ns}}}:marker"))
            .arg(1)
            .query::<()>(c)
    });
    let old_pid = redis.pid();
    redis.stop();
    // Down for longer than the lease TTL, so the leader's local lease runs
    // out too; every node must keep running meanwhile.
    let down = Instant::now();
    while down.elapsed() < LEASE_TTL + Duration::from_millis(500) {
        for node in nodes.iter_mut() {
            assert!(
                node.is_running(),
                "node {} exited while Redis was down:\n{}",
                node.id(),
                node.log()
            );
        }
        std::thread::sleep(POLL);
    }
    redis.restart();
    assert_ne!(redis.pid(), old_pid);
    let restarted = Instant::now();
    let marker: i64 = redis::cmd("EXISTS")
        .arg(format!("{{{ns}}}:marker"))
        .query(&mut redis.client())
        .expect("EXISTS");
    assert_eq!(marker, 0, "the restart kept data: no persistence expected");

    let (new_leader, new_epoch) = wait_for_leader(&mut probe, Duration::from_secs(10));
    let elected = restarted.elapsed();
    assert!(
        new_epoch > old_epoch,
        "epoch went from {old_epoch} ({old_leader}) to {new_epoch} ({new_leader}) across the restart"
    );
    wait_until(Duration::from_secs(5), "all 3 nodes listed again", || {
        client.nodes().is_ok_and(|n| n.len() == 3)
    });
    let list = workers(&redis, &ns);
    assert_eq!(ids(&list), ["n1", "n2", "n3"], "{list:?}");
    for (w, node) in list.iter().zip(&nodes) {
        assert_eq!(w["pid"], node.pid(), "{w}");
    }
    let out = cli(&url, &ns, &["leader", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = json_of(&out);
    assert_eq!(v["node"], new_leader.as_str());
    assert_eq!(v["epoch"], new_epoch);
    for node in nodes.iter_mut() {
        assert!(node.is_running(), "node {} exited", node.id());
        assert!(!node.log().contains("panicked"), "{}", node.log());
    }
    let refs: Vec<&NodeProc> = nodes.iter().collect();
    assert_claims_disjoint(&refs);
    eprintln!(
        "after the Redis restart: leader {new_leader}@{new_epoch} (was {old_leader}@{old_epoch}) in {elected:?}"
    );
}

/// The harness itself: `RedisServer::with_aof` keeps acknowledged writes
/// across a restart on the same port, and `RedisServer::start` does not.
#[test]
fn redis_server_restart_keeps_data_only_with_aof() {
    for (mut redis, kept) in [
        (RedisServer::with_aof(), true),
        (RedisServer::start(), false),
    ] {
        assert_ne!(redis.port(), 6379);
        let port = redis.port();
        let mut c = redis.client();
        redis::cmd("SET")
            .arg("k")
            .arg("v")
            .query::<()>(&mut c)
            .expect("SET");
        redis.restart();
        assert_eq!(redis.port(), port);
        let v: Option<String> = redis::cmd("GET")
            .arg("k")
            .query(&mut redis.client())
            .expect("GET");
        assert_eq!(v.is_some(), kept, "aof={kept}");
    }
}

/// A node restarted right after `kill -9` (as systemd or Kubernetes restart
/// it, same id) does not exit while the dead process's entry lives: it says
/// why it waits, and starts once the entry expires (issue 15). Before, it
/// exited with 1 and the orchestrator backed off.
#[test]
fn a_node_restarted_after_kill9_waits_for_its_old_entry_then_starts() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ns = unique_ns("restart-same-id");
    let timings = ["--heartbeat-interval", "250ms", "--heartbeat-timeout", "3s"];
    let first = NodeProc::start(&url, &ns, "r1", &timings);
    wait_for_cluster(&url, &ns, &["r1"], Duration::from_secs(20));
    first.kill9();
    let killed = Instant::now();
    let mut second = NodeProc::start(&url, &ns, "r1", &timings);
    wait_until(
        Duration::from_secs(10),
        "the restarted node says why it waits",
        || second.log().contains("waiting for it to expire"),
    );
    let mut probe = Probe::new(&url, &ns);
    let registered = wait_for(
        Duration::from_secs(10),
        "the restarted node registers",
        || {
            let pid: Option<u32> = probe
                .run(|c| {
                    redis::cmd("HGET")
                        .arg(probe_key(&ns, "r1"))
                        .arg("info")
                        .query::<Option<String>>(c)
                })
                .and_then(|info| serde_json::from_str::<Value>(&info).ok())
                .and_then(|v| v["pid"].as_u64())
                .map(|p| p as u32);
            (pid == Some(second.pid())).then(|| killed.elapsed())
        },
    );
    assert!(
        second.is_running(),
        "the restarted node exited:\n{}",
        second.log()
    );
    // The node logs this right after the write the probe saw: under load
    // the line can land a moment later.
    wait_until(
        Duration::from_secs(10),
        "the restarted node logs that the stale entry expired",
        || second.log().contains("the stale entry expired"),
    );
    wait_for_cluster(&url, &ns, &["r1"], Duration::from_secs(10));
    report(&format!(
        "restart with the same id after kill -9: registered {:.2}s after the kill (heartbeat timeout 3 s), no exit",
        registered.as_secs_f64()
    ));
}

fn probe_key(ns: &str, node: &str) -> String {
    distsched::internal::Keys::new(ns).node(node)
}

/// A frozen process whose id a new process took cannot take or hand back
/// the new process's work: START refuses (REPLACED) and pops nothing, the
/// drain's REQUEUE hands nothing back (issue 15).
#[test]
fn a_replaced_process_cannot_take_or_hand_back_its_successors_work() {
    use distsched::internal::calls;
    let redis = RedisServer::start();
    let mut conn = redis.client();
    let keys = distsched::internal::Keys::new("replaced");
    let entry = keys.node("w");
    let queue = keys.queue("w");
    redis::cmd("HSET")
        .arg(&entry)
        .arg("instance")
        .arg("successor")
        .query::<()>(&mut conn)
        .unwrap();
    redis::cmd("RPUSH")
        .arg(&queue)
        .arg("t1|1")
        .query::<()>(&mut conn)
        .unwrap();
    let start = calls::Start {
        node: "w",
        instance: "frozen",
        pop: 5,
        reclaim: false,
        items: &[],
    };
    let err = start
        .invocation(&keys)
        .invoke::<Vec<redis::Value>>(&mut conn)
        .map(|_| ())
        .expect_err("a replaced process's START is refused");
    assert!(err.to_string().contains("REPLACED"), "{err}");
    let requeued: usize = calls::Requeue {
        node: "w",
        instance: "frozen",
    }
    .invocation(&keys)
    .invoke(&mut conn)
    .unwrap();
    assert_eq!(requeued, 0);
    let left: Vec<String> = redis::cmd("LRANGE")
        .arg(&queue)
        .arg(0)
        .arg(-1)
        .query(&mut conn)
        .unwrap();
    assert_eq!(left, ["t1|1"], "the successor's queue was touched");
    let draining: Option<String> = redis::cmd("HGET")
        .arg(&entry)
        .arg("draining")
        .query(&mut conn)
        .unwrap();
    assert_eq!(draining, None, "the successor was marked draining");
    // The registered process itself is served.
    let rows: Vec<redis::Value> = calls::Start {
        node: "w",
        instance: "successor",
        pop: 5,
        reclaim: false,
        items: &[],
    }
    .invocation(&keys)
    .invoke(&mut conn)
    .unwrap();
    assert!(
        rows.is_empty(),
        "no task record, so nothing starts: {rows:?}"
    );
    let left: Vec<String> = redis::cmd("LRANGE")
        .arg(&queue)
        .arg(0)
        .arg(-1)
        .query(&mut conn)
        .unwrap();
    assert!(left.is_empty(), "the registered process pops its queue");
}
