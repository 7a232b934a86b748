//! Growth and deadlines (issue 15 item 7): ended tasks are kept within a
//! count as well as a time (`task_retention_count` drops the oldest ended
//! tasks, with their logs, and tasks that never end cannot stall the walk
//! that does it), and a task not started by its start-by deadline
//! (`--expires`) ends cancelled.

mod support;

use std::time::Duration;

use distsched::TaskSpec;
use distsched::internal::Keys;
use serde_json::json;

use support::*;

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn ended_tasks_are_kept_within_the_count_past_tasks_that_never_end() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ns = unique_ns("retention-count");
    let keys = Keys::new(&ns);
    let mut client = client(&url, &ns);
    // 600 tasks nobody can run, older than everything else: more than one
    // tick's walk (500), so a walk that could not pass them would stall.
    let ghosts: Vec<TaskSpec> = (0..600)
        .map(|_| TaskSpec::new("nobody-offers-this"))
        .collect();
    client.submit_many(&ghosts).expect("submit the ghosts");
    let specs: Vec<TaskSpec> = (0..200)
        .map(|i| {
            TaskSpec::new("shell")
                .with_payload(&json!({ "argv": ["echo", format!("task {i}")] }))
                .with_retries(0)
        })
        .collect();
    let ids: Vec<String> = client
        .submit_many(&specs)
        .expect("submit")
        .into_iter()
        .map(|s| s.id)
        .collect();
    // First every task runs (the default count keeps them all), then a
    // node with a count of 50 takes the lease: the trim then sees them all
    // ended and drops strictly the oldest.
    let mut first = NodeProc::start(
        &url,
        &ns,
        "run1",
        &[FAST, &["--allow-adhoc-shell", "--capacity", "8"]].concat(),
    );
    let mut probe = Probe::new(&url, &ns);
    wait_ended(&mut client, &mut probe, &ids, WAIT);
    assert_eq!(probe.zcard(&keys.tasks()), 800);
    // Creation times (the index's scores, whole ms): oldest first means no
    // task kept is older than one dropped.
    let mut conn = redis.client();
    let created: Vec<i64> = ids
        .iter()
        .map(|id| {
            redis::cmd("ZSCORE")
                .arg(keys.tasks())
                .arg(id)
                .query(&mut conn)
                .unwrap()
        })
        .collect();
    first.sigterm();
    first.wait_exit(WAIT).expect("run1 exits");
    let _node = NodeProc::start(
        &url,
        &ns,
        "keep1",
        &[FAST, &["--task-retention-count", "50"]].concat(),
    );
    // 600 live ghosts + 50 ended.
    let took = wait_until(
        WAIT,
        "the index holds the ghosts and 50 ended tasks",
        || probe.zcard(&keys.tasks()) == 650,
    );
    let exists = |conn: &mut redis::Connection, key: String| -> bool {
        redis::cmd("EXISTS").arg(key).query::<i64>(conn).unwrap() == 1
    };
    // 50 kept, the oldest gone with their logs.
    let (mut newest_dropped, mut oldest_kept, mut kept) = (i64::MIN, i64::MAX, 0);
    for (i, id) in ids.iter().enumerate() {
        let has = exists(&mut conn, keys.task(id));
        let log = exists(&mut conn, keys.log(id));
        assert_eq!(log, has, "task {i} ({id}): log kept {log}, task kept {has}");
        if has {
            kept += 1;
            oldest_kept = oldest_kept.min(created[i]);
        } else {
            newest_dropped = newest_dropped.max(created[i]);
        }
    }
    assert_eq!(kept, 50);
    assert!(
        newest_dropped <= oldest_kept,
        "a task created at {oldest_kept} was kept and one created at {newest_dropped} dropped"
    );
    assert_eq!(
        probe.zcard(&keys.pending()) + parked(&mut conn, &keys),
        600,
        "a ghost was dropped"
    );
    let stats = client.stats().expect("stats");
    assert_eq!(stats.tasks.kept, 650);
    report(&format!(
        "retention count 50: 200 ended tasks behind 600 that never end trimmed to the newest 50 (with logs) {:.2}s after the node with the count started",
        took.as_secs_f64()
    ));
}

/// Tasks parked because no worker offers their executor.
fn parked(conn: &mut redis::Connection, keys: &Keys) -> u64 {
    let parks: Vec<String> = redis::cmd("SMEMBERS")
        .arg(keys.parks())
        .query(conn)
        .unwrap();
    parks
        .iter()
        .map(|p| redis::cmd("ZCARD").arg(p).query::<u64>(conn).unwrap())
        .sum()
}

#[test]
fn a_task_not_started_by_its_deadline_is_cancelled_as_expired() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ns = unique_ns("expires");
    let _node = NodeProc::start(&url, &ns, "e1", FAST);
    wait_for_cluster(&url, &ns, &["e1"], WAIT);
    let mut client = client(&url, &ns);
    let submit = |client: &mut distsched::Client, spec: TaskSpec| client.submit(&spec).unwrap().id;
    // Nobody offers this executor: it waits, and expires.
    let stuck = submit(
        &mut client,
        TaskSpec::new("nobody-offers-this").with_expires(Duration::from_millis(300)),
    );
    // A delayed task expires from its ready time, not its creation: it
    // runs.
    let delayed = submit(
        &mut client,
        TaskSpec::new("noop")
            .with_delay(Duration::from_millis(500))
            .with_expires(Duration::from_secs(3)),
    );
    let started = submit(
        &mut client,
        TaskSpec::new("noop").with_expires(Duration::from_secs(3)),
    );
    let t = client
        .wait(&stuck, WAIT)
        .unwrap()
        .expect("the stuck task ended");
    assert_eq!(t.status, distsched::Status::Cancelled, "{t:?}");
    assert!(
        t.error.as_deref().unwrap_or("").starts_with("expired"),
        "{t:?}"
    );
    let late_by = t.ended_ms.unwrap() as i64 - t.expires_ms.unwrap() as i64;
    assert!(t.expires_ms.unwrap() >= t.created_ms, "{t:?}");
    for id in [&delayed, &started] {
        let t = client.wait(id, WAIT).unwrap().expect("ended");
        assert_eq!(t.status, distsched::Status::Success, "{t:?}");
    }
    let log = client.logs(&stuck).unwrap().join("\n");
    assert!(log.contains("expired"), "{log}");
    report(&format!(
        "expires 300ms: a task nobody can run ended cancelled (expired) {late_by} ms after its deadline (recover tick 200 ms); delayed and started ones ran"
    ));
}
