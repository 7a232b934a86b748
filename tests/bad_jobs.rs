//! One bad job never stops scheduling (issue 15 item 4). Stored job
//! records are written raw into Redis, as a newer version or a corruption
//! would leave them, beside a per-second job the node keeps from its jobs
//! file with `--prune-jobs`:
//!
//! - `newer`: a job record with a field this version does not know;
//! - `garbage`: a record that is not JSON;
//! - `a-hist`: a valid per-second job whose firing fails in Redis (its
//!   history key holds a string, so the `FIRE` script errors on it); it
//!   sorts before `tick`, so a batch that fails on it would hold `tick`
//!   back too.
//!
//! The per-second job must fire every slot of a window; the bad records
//! are skipped, not pruned nor overwritten, marked with their error in
//! `job list`/`job show`/the API and `distsched_jobs_broken`, and logged
//! once, not once per tick.

mod support;

use std::time::Duration;

use distsched::{Client, JobSpec};
use support::{
    NodeProc, Probe, RedisServer, TempDir, cli, free_port, http_call, report, unique_ns, wait_until,
};

const WAIT: Duration = Duration::from_secs(20);
/// Consecutive slots the per-second job must fire once it started.
const WINDOW: usize = 8;

#[test]
fn bad_job_records_do_not_stop_the_others() {
    let redis = RedisServer::start();
    let (url, ns) = (redis.url(), unique_ns("bad-jobs"));
    let mut probe = Probe::new(&url, &ns);
    let keys = probe.keys.clone();
    let now = probe.time_ms();
    let newer = r#"{"id":"newer","executor":"noop","cron":"* * * * * *","retry_budget":5}"#;
    probe.run(|c| {
        redis::pipe()
            .hset(keys.jobs(), "newer", newer)
            .zadd(keys.schedule(), "newer", now)
            .hset(keys.jobs(), "garbage", "not json {")
            .zadd(keys.schedule(), "garbage", now)
            .query::<()>(c)
    });
    let hist = keys.job_history("a-hist");
    probe.run(|c| {
        redis::cmd("SET")
            .arg(&hist)
            .arg("not a list")
            .query::<()>(c)
    });

    let dir = TempDir::new("bad-jobs");
    let file = dir.join("jobs.json");
    let tick = JobSpec::new("tick", "noop").with_cron("* * * * * *");
    let a_hist = JobSpec::new("a-hist", "noop").with_cron("* * * * * *");
    // The file also names `garbage`: its unreadable record is left alone.
    let garbage_spec = JobSpec::new("garbage", "noop");
    std::fs::write(
        &file,
        serde_json::to_string(&vec![a_hist, tick, garbage_spec]).expect("json"),
    )
    .expect("write jobs file");
    let file = file.display().to_string();
    let mut c = Client::open(&url, &ns).expect("client");
    let port = free_port();
    let http = format!("127.0.0.1:{port}");
    let node = NodeProc::start(
        &url,
        &ns,
        "n1",
        &["--jobs", &file, "--prune-jobs", "--http", &http],
    );

    // Every slot of a window of WINDOW consecutive seconds fires.
    let slots = |probe: &mut Probe| -> Vec<i64> {
        let mut s: Vec<i64> = probe
            .job_tasks("tick")
            .iter()
            .filter_map(|t| t.slot_ms)
            .collect();
        s.sort_unstable();
        s
    };
    let first = support::wait_for(WAIT, "tick fires", || slots(&mut probe).first().copied());
    wait_until(WAIT, "tick fires a whole window", || {
        slots(&mut probe).iter().filter(|&&s| s >= first).count() > WINDOW
    });
    let fired = slots(&mut probe);
    let window: Vec<i64> = fired.iter().copied().filter(|&s| s >= first).collect();
    let expected: Vec<i64> = (0..window.len() as i64).map(|i| first + i * 1000).collect();
    assert_eq!(window, expected, "every slot once, none missed");

    // Not pruned, not overwritten by the file.
    let stored: Vec<Option<String>> = probe.run(|c| {
        redis::pipe()
            .hget(keys.jobs(), "newer")
            .hget(keys.jobs(), "garbage")
            .query(c)
    });
    assert_eq!(stored[0].as_deref(), Some(newer));
    assert_eq!(stored[1].as_deref(), Some("not json {"));

    // Marked: job list / job show / the API / the metric.
    let list = cli(&url, &ns, &["job", "list", "--json"]);
    assert!(list.status.success(), "{list:?}");
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).expect("json");
    let by_id = |id: &str| -> serde_json::Value {
        list.as_array()
            .and_then(|a| a.iter().find(|j| j["id"] == id))
            .cloned()
            .unwrap_or_else(|| panic!("{id} not listed: {list}"))
    };
    for id in ["newer", "garbage"] {
        let j = by_id(id);
        assert!(j["spec"].is_null(), "{j}");
        assert_eq!(j["error"]["kind"], "record", "{j}");
    }
    assert!(
        by_id("newer")["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("retry_budget")),
        "{list}"
    );
    assert!(by_id("tick")["error"].is_null(), "{list}");
    wait_until(WAIT, "a-hist is marked with its firing error", || {
        let show = cli(&url, &ns, &["job", "show", "a-hist", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap_or_default();
        v["error"]["kind"] == "firing"
    });
    let show = cli(&url, &ns, &["job", "show", "garbage"]);
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(show.status.success(), "{show:?}");
    assert!(text.contains("error") && text.contains("record"), "{text}");
    let api = http_call(port, "GET", "/jobs/newer", None).expect("api");
    assert_eq!(api.status, 200, "{api:?}");
    assert_eq!(api.json()["error"]["kind"], "record");
    let metrics = http_call(port, "GET", "/metrics", None).expect("metrics");
    assert!(
        metrics.body.contains("distsched_jobs_broken 3"),
        "{}",
        metrics.body
    );
    // A job that cannot be read cannot be triggered: one clear line.
    let trigger = cli(&url, &ns, &["job", "trigger", "garbage"]);
    assert_eq!(trigger.status.code(), Some(1), "{trigger:?}");
    let err = String::from_utf8_lossy(&trigger.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // Logged once per change, not per tick.
    let log = node.log();
    let lines = |id: &str| {
        log.lines()
            .filter(|l| l.contains(&format!("job {id}")))
            .count()
    };
    report(&format!(
        "bad-jobs: tick fired {} consecutive slots, none missed; log lines: newer {}, garbage {}, a-hist {}",
        window.len(),
        lines("newer"),
        lines("garbage"),
        lines("a-hist")
    ));
    for id in ["newer", "garbage", "a-hist"] {
        assert!(
            (1..=3).contains(&lines(id)),
            "job {id} logged {} times:\n{log}",
            lines(id)
        );
    }

    // Fixed by the operator: the job fires again and its mark goes.
    probe.run(|c| redis::cmd("DEL").arg(&hist).query::<()>(c));
    c.put_job(&JobSpec::new("a-hist", "noop").with_cron("* * * * * *"))
        .expect("replace a-hist");
    wait_until(WAIT, "a-hist fires again, unmarked", || {
        let j = c.job("a-hist").expect("job");
        j.error.is_none()
            && probe
                .job_tasks("a-hist")
                .iter()
                .any(|t| t.slot_ms.is_some())
    });
}
