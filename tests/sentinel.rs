//! Redis high availability on a real topology (issue 16): one master, two
//! replicas and three sentinels (`SentinelSet`, `down-after-milliseconds
//! 1000`), three `distsched node` processes and the CLI on the
//! `redis-sentinel://` URL.
//!
//! - the master `kill -9`'d under a per-second cron job and a stream of
//!   submits acknowledged by one replica (`redis_wait_replicas 1`);
//! - the master frozen (SIGSTOP) past the failover, then resumed: it
//!   rejoins as a replica and nothing written to it meanwhile counts;
//! - a rollback on the new master (epoch decremented, lease deleted): the
//!   next epoch is still above every epoch used, an older term is fenced;
//! - discovery through a dead and a silent sentinel.
//!
//! Every task runs `record`, a shell command that appends its id to a file
//! outside Redis: that record survives any failover, so a task that ran
//! twice shows twice whatever Redis lost.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use distsched::internal::{Fence, Keys, calls};
use distsched::{Client, JobSpec, RedisOptions, Status, TaskSpec};
use support::*;

const JOB: &str = "tick";

/// A cluster on a Sentinel set, with the run log of every task.
struct HaCluster {
    set: SentinelSet,
    url: String,
    ns: String,
    nodes: Vec<NodeProc>,
    /// The nodes' HTTP ports (`/metrics`).
    ports: Vec<u16>,
    probe: Probe,
    runs: std::path::PathBuf,
    _dir: TempDir,
}

/// The client options of the tests: 1 s timeouts, and writes acknowledged
/// by one replica when `wait`.
fn options(url: &str, wait: bool) -> RedisOptions {
    let mut o = RedisOptions::new(url);
    o.timeout = Duration::from_secs(1);
    if wait {
        o.wait_replicas = 1;
        o.wait_timeout = Duration::from_millis(250);
    }
    o
}

impl HaCluster {
    fn start(label: &str, wait: bool) -> HaCluster {
        let set = SentinelSet::start();
        let url = set.url();
        let ns = unique_ns(label);
        let dir = TempDir::new(label);
        let runs = dir.join("runs.log");
        let mut client = Client::open_with(&options(&url, false), &ns).expect("client");
        client
            .add_job(&JobSpec::new(JOB, "record").with_cron("* * * * * *"))
            .expect("add job");
        let exec = record_exec(&runs, "0");
        let mut flags = vec!["--exec", &exec, "--redis-timeout", "1s"];
        if wait {
            flags.extend([
                "--redis-wait-replicas",
                "1",
                "--redis-wait-timeout",
                "250ms",
            ]);
        }
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let nodes = ["n1", "n2", "n3"]
            .iter()
            .zip(&ports)
            .map(|(id, port)| {
                let http = port.to_string();
                let mut flags = flags.clone();
                flags.extend(["--http", &http]);
                NodeProc::start(&url, &ns, id, &flags)
            })
            .collect();
        let mut probe = Probe::new(&url, &ns);
        wait_for_leader(&mut probe, Duration::from_secs(15));
        HaCluster {
            set,
            url,
            ns,
            nodes,
            ports,
            probe,
            runs,
            _dir: dir,
        }
    }

    /// How often each task id ran (from the run log).
    fn runs(&self) -> HashMap<String, usize> {
        recorded(&self.runs)
    }

    /// Waits until leader work runs again on the current master: a
    /// recoverer tick written after `since_ms` (Redis clock) by the term
    /// that holds the lease. Returns `(leader, epoch)`.
    fn wait_leader_work_since(&mut self, since_ms: u64, timeout: Duration) -> (String, u64) {
        wait_for(timeout, "leader work on the new master", || {
            let s = self.probe.snapshot();
            let (leader, epoch) = (s.leader.clone()?, s.epoch?);
            (s.tick() == Some((leader.clone(), epoch)) && s.tick_ms()? > since_ms)
                .then_some((leader, epoch))
        })
    }

    /// Waits until the job's `fired` counter grew by `n`.
    fn wait_fired(&mut self, client: &mut Client, n: u64) {
        let base = client.job(JOB).map(|j| j.fired).unwrap_or(0);
        wait_until(Duration::from_secs(n + 20), "slots fired", || {
            client.job(JOB).is_ok_and(|j| j.fired >= base + n)
        });
    }

    /// A counter summed over the nodes' `/metrics`.
    fn counter(&self, name: &str) -> f64 {
        self.ports
            .iter()
            .map(|&port| {
                let body = http_call(port, "GET", "/metrics", None)
                    .map(|r| r.body)
                    .unwrap_or_default();
                body.lines()
                    .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
                    .unwrap_or_else(|| panic!("no {name} in /metrics of :{port}:\n{body}"))
            })
            .sum()
    }

    fn assert_nodes_alive(&mut self) {
        for n in &mut self.nodes {
            assert!(n.is_running(), "node {} exited:\n{}", n.id(), n.log());
        }
    }
}

/// A stream of submits, each retried with its idempotency key until it is
/// acknowledged (by one replica, with `wait`).
struct Submitter {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<String>>>,
    refused: Arc<Mutex<u64>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Submitter {
    fn start(url: &str, ns: &str, wait: bool) -> Submitter {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(Mutex::new(0));
        let mut client = Client::open_with(&options(url, wait), ns).expect("client");
        let (s, a, r) = (stop.clone(), acked.clone(), refused.clone());
        let thread = std::thread::spawn(move || {
            let mut n = 0u64;
            while !s.load(Ordering::Relaxed) {
                n += 1;
                let spec = TaskSpec::new("record").with_key(format!("s{n}"));
                loop {
                    match client.submit(&spec) {
                        Ok(sub) => {
                            a.lock().unwrap().push(sub.id);
                            break;
                        }
                        Err(_) if s.load(Ordering::Relaxed) => return,
                        Err(_) => {
                            *r.lock().unwrap() += 1;
                            // Paces the retries of one submit while Redis
                            // fails over (not a wait for a condition).
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                }
                // Paces the stream: about 50 submits a second.
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Submitter {
            stop,
            acked,
            refused,
            thread: Some(thread),
        }
    }

    /// Stops the stream; returns the acknowledged ids and the refusals.
    fn finish(mut self) -> (Vec<String>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("submitter thread");
        }
        let acked = self.acked.lock().unwrap().clone();
        let refused = *self.refused.lock().unwrap();
        (acked, refused)
    }
}

/// Every acknowledged submit ran to success; returns how many ran twice.
fn check_acked(c: &mut HaCluster, client: &mut Client, acked: &[String]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let open: Vec<String> = acked
            .iter()
            .filter(|id| !client.task(id).is_ok_and(|t| t.status == Status::Success))
            .cloned()
            .collect();
        if open.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            let runs = c.runs();
            let records: Vec<String> = open
                .iter()
                .take(5)
                .map(|id| {
                    let key = c.probe.keys.task(id);
                    let fields: BTreeMap<String, String> =
                        c.probe.run(|x| redis::cmd("HGETALL").arg(&key).query(x));
                    format!("{id}: ran {:?}, {fields:?}", runs.get(id))
                })
                .collect();
            let logs: Vec<String> = c
                .nodes
                .iter()
                .map(|n| format!("== {}\n{}", n.id(), n.log()))
                .collect();
            panic!(
                "{} acknowledged tasks not done after 30 s:\n{}\n{}",
                open.len(),
                records.join("\n"),
                logs.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let runs = c.runs();
    for id in acked {
        assert!(runs.contains_key(id), "acknowledged task {id} never ran");
    }
    acked.iter().filter(|id| runs[*id] > 1).count()
}

/// The cron job's slot tasks on the master now: (slots with a task, slots
/// that ran more than once). Panics if a slot has two tasks.
fn check_slots(c: &mut HaCluster) -> (usize, usize) {
    let tasks = c.probe.job_tasks(JOB);
    let mut slots = BTreeSet::new();
    for t in &tasks {
        if let Some(slot) = t.slot_ms {
            assert!(slots.insert(slot), "slot {slot} has two tasks: {tasks:?}");
        }
    }
    let runs = c.runs();
    let twice = runs
        .iter()
        .filter(|(id, n)| id.starts_with("tick@") && **n > 1)
        .count();
    (slots.len(), twice)
}

#[test]
fn master_killed_under_cron_and_acknowledged_submits() {
    let mut c = HaCluster::start("ha-kill9", true);
    let mut client = Client::open_with(&options(&c.url, false), &c.ns).expect("client");
    let submitter = Submitter::start(&c.url, &c.ns, true);
    c.wait_fired(&mut client, 3);

    let old = c.set.master_port();
    let killed = Instant::now();
    let killed_ms = unix_ms();
    c.set.server_by_port(old).kill();
    let new = c.set.wait_failover(old, Duration::from_secs(30));
    let to_master = killed.elapsed();
    let (leader, epoch) = c.wait_leader_work_since(killed_ms, Duration::from_secs(30));
    let to_leader = killed.elapsed();
    c.wait_fired(&mut client, 3);
    let (acked, refused) = submitter.finish();
    let twice = check_acked(&mut c, &mut client, &acked);
    let (slots, slots_twice) = check_slots(&mut c);
    c.assert_nodes_alive();
    // The CLI on the sentinel URL reaches the new master.
    let out = cli(&c.url, &c.ns, &["leader", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(json_of(&out)["node"], leader.as_str());
    // The failover shows in the metrics.
    let (errors, pauses) = (
        c.counter("distsched_redis_connection_errors_total"),
        c.counter("distsched_leader_pauses_total"),
    );
    assert!(
        errors >= 1.0 && pauses >= 1.0,
        "errors {errors}, pauses {pauses}"
    );
    report(&format!(
        "chaos sentinel-kill9: master :{old} killed -> :{new} promoted in {:.2} s, leader work again ({leader}@{epoch}) {:.2} s after the kill (down-after 1 s + failover + lease 1 s); {} submits acknowledged by 1 replica, all ran, {twice} ran twice, {refused} attempts refused during the failover; {slots} slots with one task each, {slots_twice} ran twice; no node exited; metrics: {errors} connections dropped, {pauses} leader pauses",
        to_master.as_secs_f64(),
        to_leader.as_secs_f64(),
        acked.len(),
    ));
    assert_eq!(slots_twice, 0, "a cron slot ran twice");
}

#[test]
fn frozen_master_rejoins_as_a_replica_and_its_writes_do_not_count() {
    let mut c = HaCluster::start("ha-freeze", true);
    let mut client = Client::open_with(&options(&c.url, false), &c.ns).expect("client");
    let submitter = Submitter::start(&c.url, &c.ns, true);
    c.wait_fired(&mut client, 2);

    // A client whose connection sits idle across the freeze: used just
    // before it and right after the resume, while the resumed old master
    // still says it is one (Sentinel demotes it up to 10 s later).
    let mut idle = Client::open_with(&options(&c.url, false), &c.ns).expect("client");
    idle.ping().expect("ping");
    let old = c.set.master_port();
    let zombie_pid = c.set.server_by_port(old).pid();
    let frozen = Instant::now();
    let frozen_ms = unix_ms();
    send_signal(zombie_pid, "STOP");
    let new = c.set.wait_failover(old, Duration::from_secs(30));
    let to_master = frozen.elapsed();
    let (leader, epoch) = c.wait_leader_work_since(frozen_ms, Duration::from_secs(30));
    let to_leader = frozen.elapsed();
    c.wait_fired(&mut client, 2);
    send_signal(zombie_pid, "CONT");
    let resumed = Instant::now();
    let after = idle
        .submit(&TaskSpec::new("record").with_key("after-resume"))
        .expect("submit after the resume");
    assert_eq!(
        c.set.server_by_port(old).role().as_deref(),
        Some("master"),
        "the old master was demoted before the submit: the check proves nothing"
    );
    wait_until(
        Duration::from_secs(30),
        "the old master rejoins as a replica",
        || c.set.server_by_port(old).role().as_deref() == Some("slave"),
    );
    let to_replica = resumed.elapsed();
    c.wait_fired(&mut client, 2);
    let (mut acked, refused) = submitter.finish();
    acked.push(after.id);
    let twice = check_acked(&mut c, &mut client, &acked);
    let (slots, slots_twice) = check_slots(&mut c);
    c.assert_nodes_alive();
    // The master is still the promoted one; the zombie holds its data now.
    assert_eq!(c.set.master_port(), new);
    let moves = c.counter("distsched_redis_master_moves_total");
    report(&format!(
        "chaos sentinel-freeze: master :{old} frozen -> :{new} promoted in {:.2} s, leader work again ({leader}@{epoch}) after {:.2} s; resumed, a replica again {:.2} s later; {} submits acknowledged, all ran, {twice} ran twice, {refused} attempts refused; {slots} slots with one task each, {slots_twice} ran twice; no node exited; {moves} node connections left for the new master on the sentinels' word",
        to_master.as_secs_f64(),
        to_leader.as_secs_f64(),
        to_replica.as_secs_f64(),
        acked.len(),
    ));
    assert_eq!(slots_twice, 0, "a cron slot ran twice");
}

#[test]
fn a_rollback_on_the_new_master_never_repeats_an_epoch() {
    let mut c = HaCluster::start("ha-rollback", false);
    let keys = Keys::new(&c.ns);
    let old = c.set.master_port();
    // The epoch's origin as the old master wrote it: what the new master
    // holds when the stream carrying later acquires was lost.
    let origin: String = redis::cmd("GET")
        .arg(keys.epoch_origin())
        .query(&mut c.set.server_by_port(old).client())
        .expect("epoch origin");
    c.set.server_by_port(old).kill();
    let new = c.set.wait_failover(old, Duration::from_secs(30));
    let (leader, _) = c.wait_leader_work_since(unix_ms(), Duration::from_secs(30));
    // A standby that saw only older epochs (it sleeps until the lease
    // runs out) would take `used` again without the origin check.

    // What a lost replication stream leaves: the epoch behind, no lease,
    // the epoch's origin the old master's.
    let mut master = c.set.server_by_port(new).client();
    let rollback = redis::Script::new(
        "local e = redis.call('GET', KEYS[1])
         redis.call('SET', KEYS[1], tonumber(e) - 2)
         redis.call('DEL', KEYS[2])
         redis.call('SET', KEYS[3], ARGV[1])
         return e",
    );
    let used: String = rollback
        .key(keys.epoch())
        .key(keys.leader())
        .key(keys.epoch_origin())
        .arg(&origin)
        .invoke(&mut master)
        .expect("rollback");
    let used: u64 = used.parse().expect("epoch");
    let rolled = Instant::now();
    let (next, epoch) = wait_for(
        Duration::from_secs(15),
        "a leader after the rollback",
        || {
            let s = c.probe.snapshot();
            let (l, e) = (s.leader.clone()?, s.epoch?);
            (s.tick() == Some((l.clone(), e))).then_some((l, e))
        },
    );
    assert!(
        epoch > used,
        "epoch {epoch} repeats one used before ({used})"
    );
    // The term the rollback ended is fenced: its writes are refused.
    let fence = Fence {
        node: leader.clone(),
        epoch: used,
    };
    let refused = calls::DispatchRead {
        fence: &fence,
        batch: 1,
        promote: 1,
        balancer: "least-tasks",
    }
    .invocation(&keys)
    .invoke::<redis::Value>(&mut master);
    let err = refused.expect_err("a write of the rolled-back term was accepted");
    assert_eq!(err.code(), Some("FENCED"), "{err}");
    c.assert_nodes_alive();
    report(&format!(
        "chaos sentinel-rollback: epoch {used} ({leader}) rolled back to {} and the lease deleted on :{new}; next leader {next}@{epoch} (the Redis clock in us: a new master) after {:.2} s; the old term is fenced",
        used - 2,
        rolled.elapsed().as_secs_f64()
    ));
}

#[test]
fn discovery_goes_on_past_a_dead_and_a_silent_sentinel() {
    let mut set = SentinelSet::start();
    let ports = set.sentinel_ports();
    set.stop_sentinel(0);
    // Accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for s in silent.incoming().flatten() {
            keep.lock().unwrap().push(s);
        }
    });
    let url = format!(
        "redis-sentinel://127.0.0.1:{silent_port},127.0.0.1:{},127.0.0.1:{},127.0.0.1:{}#{}",
        ports[0],
        ports[1],
        ports[2],
        set.master_name()
    );
    let ns = unique_ns("ha-discovery");
    let env = [("DISTSCHED_REDIS_TIMEOUT", "500ms")];
    let started = Instant::now();
    let out = run_bin(
        &[
            "task", "submit", "--exec", "noop", "--redis", &url, "--ns", &ns,
        ],
        &env,
    );
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        !held.lock().unwrap().is_empty(),
        "the silent sentinel was not asked"
    );
    // In-process, without the process start: the silent sentinel costs one
    // timeout. Its connect handshake used to read two replies, each with
    // the timeout: two.
    let mut o = options(&url, false);
    o.timeout = Duration::from_millis(500);
    let mut client = Client::open_with(&o, &ns).expect("client");
    let asked = Instant::now();
    client.ping().expect("ping through the third sentinel");
    let first = asked.elapsed();
    assert!(
        first < o.timeout * 2,
        "one silent sentinel cost {first:?} (timeout {:?})",
        o.timeout
    );

    // No sentinel that answers: one line naming each, exit 69.
    let dead = format!(
        "redis-sentinel://127.0.0.1:{silent_port},127.0.0.1:{}#{}",
        ports[0],
        set.master_name()
    );
    let out = run_bin(&["leader", "--redis", &dead, "--ns", &ns], &env);
    let line = assert_one_line_error(&out, 69, "no sentinel answers");
    assert!(
        line.contains(&silent_port.to_string()) && line.contains(&ports[0].to_string()),
        "{line}"
    );
    // A bad sentinel URL is a usage error.
    let out = run_bin(&["leader", "--redis", "redis-sentinel://127.0.0.1:1"], &[]);
    assert_one_line_error(&out, 64, "sentinel URL without a master name");
    report(&format!(
        "chaos sentinel-discovery: a silent and a dead sentinel first, redis_timeout 500 ms: submitted through the third in {:.2} s (CLI), found the master in {:.2} s (library)",
        took.as_secs_f64(),
        first.as_secs_f64()
    ));
}

/// `redis_wait_replicas` with no replica to acknowledge: a submit is
/// written but refused as not durable (CLI exit 1 with one line, HTTP 503),
/// a retry with the same key names the same task, and the leader does no
/// leader work (it won the lease, but the lease is on no replica).
#[test]
fn an_unacknowledged_submit_fails_with_exit_1_and_503() {
    let redis = RedisServer::start();
    let ns = unique_ns("ha-noreplica");
    let env = [
        ("DISTSCHED_REDIS_WAIT_REPLICAS", "1"),
        ("DISTSCHED_REDIS_WAIT_TIMEOUT", "100ms"),
    ];
    let submit = || {
        run_bin(
            &[
                "task",
                "submit",
                "--exec",
                "noop",
                "--key",
                "k1",
                "--redis",
                &redis.url(),
                "--ns",
                &ns,
            ],
            &env,
        )
    };
    let line = assert_one_line_error(&submit(), 1, "submit without a replica");
    assert!(line.contains("0 of 1"), "{line}");
    // Written all the same: the retry finds the same (one) task.
    let mut client = Client::open(&redis.url(), &ns).expect("client");
    let tasks = client.list(&Default::default()).expect("list");
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_one_line_error(&submit(), 1, "retried submit without a replica");
    assert_eq!(client.list(&Default::default()).expect("list").len(), 1);

    let port = free_port();
    let http = port.to_string();
    let node = NodeProc::start(
        &redis.url(),
        &ns,
        "w1",
        &[
            "--http",
            &http,
            "--redis-wait-replicas",
            "1",
            "--redis-wait-timeout",
            "100ms",
        ],
    );
    wait_until(
        Duration::from_secs(15),
        "the node says leader work waits",
        || node.log().contains("leader work waits"),
    );
    let resp = wait_for(Duration::from_secs(15), "the HTTP API answers", || {
        http_call(port, "POST", "/tasks", Some(r#"{"executor": "noop"}"#))
    });
    assert_eq!(resp.status, 503, "{}", resp.body);
    assert!(resp.body.contains("replicas"), "{}", resp.body);
    let task = client.task(&tasks[0].id).expect("task");
    assert_eq!(
        task.status,
        Status::Pending,
        "dispatched by a leader on no replica"
    );
}

/// A server that is not (or stops being) the writable master: a write to a
/// replica (`READONLY`) and a blocked call ended by a role change
/// (`UNBLOCKED`) count as a lost connection, so the caller reconnects (and,
/// through sentinels, finds the new master) instead of failing for good.
#[test]
fn readonly_and_unblocked_replies_count_as_a_lost_connection() {
    use distsched::internal::Store;
    let master = RedisServer::start();
    let replica = RedisServer::start();
    let mut admin = replica.client();
    redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(master.port())
        .query::<()>(&mut admin)
        .expect("REPLICAOF");
    let store = Store::new(&replica.url(), "ro", Duration::from_secs(2)).expect("store");
    let err = store
        .quiet_conn("test")
        .run(|c| redis::cmd("SET").arg("k").arg("v").query::<()>(c))
        .expect_err("a replica took a write");
    assert!(
        err.is_unavailable() && not_master(&err, "readonly"),
        "{err}"
    );

    // A BLPOP blocked on the master when it is turned into a replica (of
    // the other server, made a master again first: a switch-over).
    redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query::<()>(&mut replica.client())
        .expect("REPLICAOF NO ONE");
    let store = Store::new(&master.url(), "ro", Duration::from_secs(2)).expect("store");
    let blocked = std::thread::spawn(move || {
        store
            .conn("test")
            .run_blocking(Duration::from_secs(20), |c| {
                redis::cmd("BLPOP")
                    .arg("nothing")
                    .arg(20)
                    .query::<Option<(String, String)>>(c)
            })
    });
    let mut admin = master.client();
    wait_until(Duration::from_secs(10), "the BLPOP blocks", || {
        redis::cmd("INFO")
            .arg("clients")
            .query::<String>(&mut admin)
            .is_ok_and(|i| i.contains("blocked_clients:1"))
    });
    redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(replica.port())
        .query::<()>(&mut admin)
        .expect("REPLICAOF");
    let err = blocked
        .join()
        .expect("thread")
        .expect_err("BLPOP returned normally");
    assert!(
        err.is_unavailable() && not_master(&err, "unblocked"),
        "{err}"
    );
}

/// True when `err` says the server was not the writable master, `code`
/// (lower case) naming why.
fn not_master(err: &distsched::Error, code: &str) -> bool {
    let text = err.to_string().to_lowercase();
    text.contains(code) && text.contains("not the writable master")
}

/// A sentinel with a stale view names a replica as the master: the `ROLE`
/// check refuses it and the next sentinel's answer is used, so the write
/// lands on the master (without the check it would go to the replica and
/// fail with `READONLY`).
#[test]
fn a_sentinel_that_names_a_replica_is_not_believed() {
    use std::io::{Read, Write};
    let set = SentinelSet::start();
    let master = set.master_port();
    let replica = set
        .servers()
        .iter()
        .find(|s| s.port() != master)
        .expect("a replica")
        .port();
    // A fake sentinel: every command gets the replica's address.
    let fake = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let fake_port = fake.local_addr().expect("addr").port();
    let asked = Arc::new(AtomicBool::new(false));
    let flag = asked.clone();
    std::thread::spawn(move || {
        for mut s in fake.incoming().flatten() {
            let flag = flag.clone();
            std::thread::spawn(move || {
                let reply = format!(
                    "*2\r\n$9\r\n127.0.0.1\r\n${}\r\n{replica}\r\n",
                    replica.to_string().len()
                );
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(reply.as_bytes()).is_err() {
                        break;
                    }
                    flag.store(true, Ordering::Relaxed);
                }
            });
        }
    });
    let real = set.sentinel_ports()[0];
    let url = format!("redis-sentinel://127.0.0.1:{fake_port},127.0.0.1:{real}#mymaster");
    let ns = unique_ns("ha-stale");
    let mut client = Client::open_with(&options(&url, false), &ns).expect("client");
    let sub = client
        .submit(&TaskSpec::new("noop"))
        .expect("submit through a stale sentinel");
    assert!(
        asked.load(Ordering::Relaxed),
        "the fake sentinel was not asked"
    );
    let on_master: bool = redis::cmd("EXISTS")
        .arg(Keys::new(&ns).task(&sub.id))
        .query(&mut set.server_by_port(master).client())
        .expect("EXISTS");
    assert!(on_master, "the task is not on the master");
}
