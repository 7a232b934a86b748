//! Graceful shutdown of a worker node under work (DESIGN §3): SIGTERM lets
//! running tasks finish within `shutdown_grace`; tasks still running after
//! it are stopped and handed back as a failed attempt, retried elsewhere;
//! the node exits 0 and leaves nothing `running` and no registry entry.

mod support;

use std::time::{Duration, Instant};

use distsched::{Client, Status, TaskSpec};
use support::{NodeProc, Probe, RedisServer, report, unique_ns, wait_for, wait_until};

fn spec(retries: u32) -> TaskSpec {
    let mut s = TaskSpec::new("work").with_retries(retries);
    s.retry_delay = Duration::from_millis(50);
    s.jitter = 0.0;
    s
}

/// Submits `n` tasks and waits until all run on `worker`.
fn running_on(c: &mut Client, n: usize, worker: &str) -> Vec<String> {
    let ids: Vec<String> = (0..n)
        .map(|_| c.submit(&spec(1)).expect("submit").id)
        .collect();
    wait_until(Duration::from_secs(10), "every task runs", || {
        ids.iter().all(|id| {
            let t = c.task(id).expect("task");
            t.status == Status::Running && t.worker.as_deref() == Some(worker)
        })
    });
    ids
}

/// A leader and worker `w1` (capacity `n`, `--shutdown-grace grace`,
/// executor `work` = `command`) with `n` tasks running on w1; then SIGTERM
/// to w1, which must exit 0. Returns the task ids, a client and how long
/// w1 took to exit.
fn stop_busy_worker(
    url: &str,
    ns: &str,
    n: usize,
    grace: &str,
    command: &str,
) -> (Vec<String>, Client, Duration, NodeProc) {
    let leader = NodeProc::start(url, ns, "leader", &["--role", "scheduler"]);
    let (capacity, exec) = (n.to_string(), format!("work={command}"));
    let mut w1 = NodeProc::start(
        url,
        ns,
        "w1",
        &[
            "--role",
            "worker",
            "--capacity",
            &capacity,
            "--shutdown-grace",
            grace,
            "--exec",
            &exec,
        ],
    );
    let mut c = Client::open(url, ns).expect("client");
    let ids = running_on(&mut c, n, "w1");
    let stopped = Instant::now();
    w1.sigterm();
    let status = w1.wait_exit(Duration::from_secs(20)).expect("w1 exits");
    let took = stopped.elapsed();
    assert!(status.success(), "w1 exited with {status:?}\n{}", w1.log());
    (ids, c, took, leader)
}

#[test]
fn sigterm_lets_running_tasks_finish_within_the_grace() {
    let redis = RedisServer::start();
    let (url, ns) = (redis.url(), unique_ns("grace-finish"));
    let (ids, mut c, took, _leader) = stop_busy_worker(&url, &ns, 3, "20s", "sleep 1.5");
    for id in &ids {
        let t = c.task(id).expect("task");
        assert_eq!(
            t.status,
            Status::Success,
            "finished within the grace: {t:?}"
        );
        assert_eq!((t.attempt, t.failures), (1, 0), "{t:?}");
    }
    let mut probe = Probe::new(&url, &ns);
    assert!(!probe.node_entry_exists("w1"), "w1 left a registry entry");
    report(&format!(
        "shutdown grace-finish: 3 running tasks finished, exit 0 after {took:?}"
    ));
}

#[test]
fn tasks_past_the_grace_are_handed_back_and_retried_elsewhere() {
    let redis = RedisServer::start();
    let (url, ns) = (redis.url(), unique_ns("grace-expire"));
    let (ids, mut c, took, _leader) = stop_busy_worker(&url, &ns, 2, "500ms", "sleep 60");
    // Nothing is left running for the stopped worker: each task counted a
    // failed attempt and waits for its retry.
    for id in &ids {
        let t = c.task(id).expect("task");
        assert_eq!(t.failures, 1, "handed back as a failed attempt: {t:?}");
        assert_ne!(t.status, Status::Running, "{t:?}");
    }
    let mut probe = Probe::new(&url, &ns);
    assert!(!probe.node_entry_exists("w1"), "w1 left a registry entry");

    let _w2 = NodeProc::start(
        &url,
        &ns,
        "w2",
        &["--role", "worker", "--exec", "work=true"],
    );
    for id in &ids {
        let t = wait_for(Duration::from_secs(10), "the retry succeeds on w2", || {
            let t = c.task(id).expect("task");
            (t.status == Status::Success).then_some(t)
        });
        assert_eq!((t.worker.as_deref(), t.attempt), (Some("w2"), 2), "{t:?}");
        assert_eq!(
            t.attempts.first().map(|a| a.worker.as_str()),
            Some("w1"),
            "{t:?}"
        );
    }
    report(&format!(
        "shutdown grace-expired: 2 tasks handed back after the 500 ms grace, exit 0 after \
         {took:?}, retried on w2"
    ));
}

/// Issue 15 item 9: an embedded node whose Rust closure ignores its
/// cancellation (it loops until the test lets it go) still shuts down
/// within the grace + `STOP_BOUND` (+ a flush): the attempts it gave up on
/// are recorded failed (no retry left) or retrying, with the reason, never
/// left `running`; the closure's thread is left behind and its late
/// outcome changes nothing.
#[test]
fn shutdown_is_bounded_when_a_closure_ignores_cancellation() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use distsched::internal::{GAVE_UP, STOP_BOUND};
    use distsched::{Config, Node};

    let redis = RedisServer::start();
    let (url, ns) = (redis.url(), unique_ns("stubborn"));
    let grace = Duration::from_millis(500);
    let config = Config {
        redis_url: url.clone(),
        namespace: ns.clone(),
        node_id: "stubborn".into(),
        capacity: 2,
        shutdown_grace: grace,
        ..Config::default()
    };
    let release = Arc::new(AtomicBool::new(false));
    let (started, returned) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let node = {
        let (release, started, returned) = (release.clone(), started.clone(), returned.clone());
        Node::builder(config)
            .function("stubborn", move |_ctx| {
                started.fetch_add(1, Ordering::SeqCst);
                // Never looks at ctx.is_cancelled().
                while !release.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                returned.fetch_add(1, Ordering::SeqCst);
                Ok(serde_json::json!("late"))
            })
            .start()
            .expect("start the embedded node")
    };
    let mut c = Client::open(&url, &ns).expect("client");
    let mut last = TaskSpec::new("stubborn").with_retries(0);
    last.timeout = Duration::from_secs(60);
    let mut again = last.clone().with_retries(2);
    again.retry_delay = Duration::from_secs(60);
    let ids = [
        c.submit(&last).expect("submit").id,
        c.submit(&again).expect("submit").id,
    ];
    wait_until(Duration::from_secs(10), "both tasks run", || {
        started.load(Ordering::SeqCst) == 2
    });

    let began = Instant::now();
    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        node.shutdown();
        let _ = done_tx.send(());
    });
    let limit = grace + STOP_BOUND + Duration::from_secs(3);
    if done_rx.recv_timeout(limit).is_err() {
        release.store(true, Ordering::SeqCst);
        panic!("shutdown still running after {limit:?} (grace {grace:?})");
    }
    let took = began.elapsed();
    report(&format!(
        "shutdown stubborn-closure: returned in {} ms (grace {} ms + stop bound {} ms)",
        took.as_millis(),
        grace.as_millis(),
        STOP_BOUND.as_millis()
    ));
    assert!(took >= grace, "the grace was given first: {took:?}");

    let check = |c: &mut Client| {
        let first = c.task(&ids[0]).expect("task");
        assert_eq!(first.status, Status::Failed, "{first:?}");
        assert!(
            first.error.as_deref().is_some_and(|e| e.contains(GAVE_UP)),
            "{first:?}"
        );
        let second = c.task(&ids[1]).expect("task");
        assert_eq!(second.status, Status::Retrying, "{second:?}");
        assert_eq!(second.failures, 1, "{second:?}");
        assert!(
            second.error.as_deref().is_some_and(|e| e.contains(GAVE_UP)),
            "{second:?}"
        );
    };
    check(&mut c);
    let log = c.logs(&ids[0]).expect("logs");
    assert!(log.iter().any(|l| l.contains(GAVE_UP)), "{log:?}");

    // The abandoned threads end later; what they return is dropped.
    release.store(true, Ordering::SeqCst);
    wait_until(Duration::from_secs(5), "the closures return", || {
        returned.load(Ordering::SeqCst) == 2
    });
    check(&mut c);
    assert_eq!(Probe::new(&url, &ns).in_flight(), 0, "nothing left running");
}
