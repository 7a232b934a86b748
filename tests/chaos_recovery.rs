//! Chaos: leader-side recovery with real processes. A worker killed with
//! `kill -9` loses none of its tasks, and a worker frozen past its
//! heartbeat timeout (SIGSTOP) cannot overwrite the retry when it wakes up
//! with SIGCONT (attempt fencing). Each prints a `chaos <name>:` line.

mod support;

use std::time::Duration;

use distsched::{Client, Status, TaskSpec};
use support::{
    HEARTBEAT_TIMEOUT, NodeProc, RECOVER_INTERVAL, RedisServer, report, unique_ns, wait_for,
    wait_until,
};

fn client(url: &str, ns: &str) -> Client {
    Client::open(url, ns).expect("client")
}

fn spec(executor: &str, retries: u32) -> TaskSpec {
    let mut s = TaskSpec::new(executor).with_retries(retries);
    s.retry_delay = Duration::from_millis(50);
    s
}

/// Bound for "recovered": heartbeat timeout + one recovery tick, plus room
/// for the heartbeat interval the dead node's last beat may have been into
/// it and for scheduling on a loaded 2-core machine.
fn recovery_bound() -> Duration {
    HEARTBEAT_TIMEOUT + RECOVER_INTERVAL + Duration::from_secs(2)
}

#[test]
fn a_killed_worker_loses_no_task() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ns = unique_ns("kill-worker");
    let _leader = NodeProc::start(&url, &ns, "leader", &["--role", "scheduler"]);
    let doomed = NodeProc::start(
        &url,
        &ns,
        "doomed",
        &["--capacity", "4", "--exec", "job=sleep 300"],
    );
    let mut c = client(&url, &ns);
    let running: Vec<String> = (0..2)
        .map(|_| c.submit(&spec("job", 3)).expect("submit").id)
        .collect();
    wait_until(
        Duration::from_secs(10),
        "two tasks running on the doomed worker",
        || {
            running
                .iter()
                .all(|id| c.task(id).expect("task").status == Status::Running)
        },
    );
    // Frozen, the worker still has free slots in the registry, so two more
    // tasks are dispatched onto its queue but never claimed.
    doomed.sigstop();
    let queued: Vec<String> = (0..2)
        .map(|_| c.submit(&spec("job", 3)).expect("submit").id)
        .collect();
    wait_until(
        Duration::from_secs(10),
        "two tasks queued on the frozen worker",
        || {
            queued.iter().all(|id| {
                let t = c.task(id).expect("task");
                t.status == Status::Pending && t.worker.as_deref() == Some("doomed")
            })
        },
    );

    doomed.kill9();
    let killed_at = std::time::Instant::now();
    let _healthy = NodeProc::start(
        &url,
        &ns,
        "healthy",
        &["--capacity", "4", "--exec", "job=true"],
    );
    let all: Vec<String> = running.iter().chain(&queued).cloned().collect();
    wait_until(
        recovery_bound() + Duration::from_secs(5),
        "every task succeeded on the healthy worker",
        || {
            all.iter()
                .all(|id| c.task(id).expect("task").status == Status::Success)
        },
    );
    let elapsed = killed_at.elapsed();
    for id in &all {
        let t = c.task(id).expect("task");
        assert_eq!(
            (t.worker.as_deref(), t.attempt),
            (Some("healthy"), 2),
            "dispatched twice: {t:?}"
        );
    }
    for id in &running {
        let t = c.task(id).expect("task");
        assert_eq!(
            t.failures, 1,
            "a running task counts a failed attempt: {t:?}"
        );
        let logs = c.logs(id).expect("logs");
        assert!(
            logs.iter().any(|l| l.contains("worker doomed died")),
            "{logs:?}"
        );
    }
    for id in &queued {
        let t = c.task(id).expect("task");
        assert_eq!(
            t.failures, 0,
            "a queued task never ran, so no failure: {t:?}"
        );
    }
    report(&format!(
        "chaos worker-recovery: 4 tasks (2 queued, 2 running), lost 0, duplicates 0; \
         recovered {elapsed:?} after kill -9 (bound {:?})",
        recovery_bound()
    ));
}

#[test]
fn a_frozen_worker_cannot_overwrite_the_retry() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ns = unique_ns("zombie");
    let _leader = NodeProc::start(&url, &ns, "leader", &["--role", "scheduler"]);
    let mut zombie = NodeProc::start(
        &url,
        &ns,
        "zombie",
        &["--capacity", "1", "--exec", "job=sleep 1"],
    );
    let mut c = client(&url, &ns);
    let id = c.submit(&spec("job", 3)).expect("submit").id;
    wait_until(
        Duration::from_secs(10),
        "the task runs on the zombie",
        || c.task(&id).expect("task").status == Status::Running,
    );

    // Freeze the node process (its `sleep 1` child, in its own process
    // group, keeps running and exits while the node is frozen).
    zombie.sigstop();
    wait_until(recovery_bound(), "the task is failed over", || {
        c.task(&id).expect("task").failures == 1
    });
    let _rescuer = NodeProc::start(
        &url,
        &ns,
        "rescuer",
        &["--capacity", "1", "--exec", "job=true"],
    );
    let done = wait_for(
        Duration::from_secs(10),
        "the retry succeeds on the rescuer",
        || {
            let t = c.task(&id).expect("task");
            (t.status == Status::Success).then_some(t)
        },
    );
    assert_eq!(
        (done.worker.as_deref(), done.attempt),
        (Some("rescuer"), 2),
        "{done:?}"
    );

    // Wake the zombie: it reports success for attempt 1, which is stale.
    zombie.sigcont();
    wait_until(
        Duration::from_secs(10),
        "the stale result is rejected and logged",
        || {
            c.logs(&id)
                .expect("logs")
                .iter()
                .any(|l| l.contains("stale success from zombie rejected"))
        },
    );
    let after = c.task(&id).expect("task");
    assert_eq!(
        after, done,
        "the final record is the retry's, untouched by the zombie"
    );
    assert!(
        zombie.is_running(),
        "the zombie keeps running and re-registers"
    );
    report(&format!(
        "chaos zombie: 1 task, lost 0, duplicates 0; stale result of attempt 1 rejected, \
         final record attempt {} on {}",
        after.attempt,
        after.worker.as_deref().unwrap_or("-")
    ));
}

/// Runs a scheduler-only leader and a worker (capacity 4) whose Redis is
/// reached through `proxy`, submits `n` no-op tasks (in bulk or one by one)
/// and waits for them all. Returns the tasks, the time from the first
/// submit to the last end, and the worker's log.
fn run_behind(
    redis: &RedisServer,
    ns: &str,
    proxy: &support::ReplyCutter,
    n: usize,
    bulk: bool,
) -> (Vec<distsched::Task>, Duration, String) {
    let _leader = NodeProc::start(&redis.url(), ns, "lead", &["--role", "scheduler"]);
    let worker = NodeProc::start(
        &proxy.url(),
        ns,
        "w1",
        &["--role", "worker", "--capacity", "4"],
    );
    support::wait_for_cluster(&redis.url(), ns, &["w1"], Duration::from_secs(20));
    let mut client = client(&redis.url(), ns);
    let mut probe = support::Probe::new(&redis.url(), ns);
    let started = std::time::Instant::now();
    let ids: Vec<String> = if bulk {
        let specs: Vec<TaskSpec> = (0..n).map(|_| spec("noop", 0)).collect();
        let submitted = client.submit_many(&specs).expect("submit");
        submitted.into_iter().map(|s| s.id).collect()
    } else {
        (0..n)
            .map(|_| client.submit(&spec("noop", 0)).expect("submit").id)
            .collect()
    };
    let tasks = support::wait_ended(&mut client, &mut probe, &ids, Duration::from_secs(30));
    let took = started.elapsed();
    assert!(
        tasks.iter().all(|t| t.status == Status::Success),
        "{tasks:?}"
    );
    let log = worker.log();
    assert!(
        log.contains("adopting"),
        "the worker did not adopt the tasks the lost call took:\n{log}"
    );
    (tasks, took, log)
}

/// A worker's `FINISH` call that refilled its slots and started tasks runs
/// in Redis, but its reply is lost (the connection is cut before it comes
/// back). The worker retries the results, and adopts the tasks the lost
/// call started instead of leaving them `running` for the recoverer's
/// deadline (5 min + grace): every task ends well within that.
#[test]
fn a_lost_finish_reply_strands_no_refilled_task() {
    let redis = RedisServer::start();
    let ns = unique_ns("lost-reply");
    let finish = distsched::internal::scripts::FINISH.get_hash().to_string();
    let proxy = support::ReplyCutter::start(redis.port(), &finish, 5);
    let (tasks, took, _) = run_behind(&redis, &ns, &proxy, 200, true);
    assert_eq!(proxy.cuts(), 1, "the proxy cut no FINISH reply");
    let twice = tasks.iter().filter(|t| t.attempt > 1).count();
    report(&format!(
        "chaos lost-finish-reply: {} tasks, lost 0, ran twice {twice}; one FINISH reply cut, its started tasks adopted; all done {:.2}s after the submit began",
        tasks.len(),
        took.as_secs_f64()
    ));
}

/// A reply of the call containing `needle` with items (`popped` says which
/// replies those are) is cut: Redis popped or started tasks for an idle
/// worker, and the worker never heard. It adopts them once Redis answers
/// again, well before the deadline backstop (the 5 min timeout + grace):
/// every task ends once, at its first attempt, within seconds.
fn lost_pop_reply(label: &str, needle: &str, popped: fn(&[u8]) -> bool) {
    let redis = RedisServer::start();
    let ns = unique_ns(label);
    let proxy = support::ReplyCutter::start_on_reply(redis.port(), needle, popped);
    let (tasks, took, _) = run_behind(&redis, &ns, &proxy, 40, false);
    assert_eq!(proxy.cuts(), 1, "the proxy cut no {label} reply");
    let twice = tasks.iter().filter(|t| t.attempt > 1).count();
    assert_eq!(twice, 0, "tasks ran again: {tasks:?}");
    report(&format!(
        "chaos {label}: {} tasks, lost 0, ran twice {twice}; one reply with tasks cut, they were adopted; all done {:.2}s after the submit began",
        tasks.len(),
        took.as_secs_f64()
    ));
}

#[test]
fn a_lost_blmpop_reply_strands_no_task() {
    // `*2`: [queue, items]; a timeout answers nil.
    lost_pop_reply("lost-blmpop-reply", "BLMPOP", |r| r.starts_with(b"*2"));
}

#[test]
fn a_lost_start_reply_strands_no_task() {
    let start = distsched::internal::scripts::START.get_hash().to_string();
    // Rows of started tasks; `*0` when nothing was started.
    lost_pop_reply("lost-start-reply", Box::leak(start.into_boxed_str()), |r| {
        r.starts_with(b"*") && !r.starts_with(b"*0")
    });
}
