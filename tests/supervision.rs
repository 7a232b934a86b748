//! Supervision under injected faults (issue 15 item 3): real node
//! processes built with the `failpoints` feature (this target requires
//! it: `cargo test --features failpoints --test supervision`), faults set
//! through `FAILPOINTS` at start or the test-only `PUT /failpoints/NAME`
//! route while the node runs.
//!
//! - a leader whose scheduler (or recoverer) panics answers `/health` 503
//!   naming it, stops renewing and releases the lease, and another node
//!   leads (and fires) within the lease TTL; once the fault is gone the
//!   component is restarted, `/health` is 200 again and the node can lead;
//! - a component restarted after one panic comes back and the node works;
//! - a component whose policy is exit (the fetcher) stops the node: exit 1.

mod support;

use std::time::{Duration, Instant};

use distsched::{Client, JobSpec, TaskSpec};
use serde_json::Value;
use support::{
    HttpResp, LEASE_TTL, NodeProc, Probe, RedisServer, free_port, http_call, report, unique_ns,
    wait_for, wait_until,
};

const WAIT: Duration = Duration::from_secs(20);

fn health(port: u16) -> Option<HttpResp> {
    http_call(port, "GET", "/health", None)
}

/// The `/health` entry of component `name`.
fn component(body: &Value, name: &str) -> Value {
    body["components"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("no component {name} in {body}"))
}

fn start_http_node(url: &str, ns: &str, id: &str, env: &[(&str, &str)]) -> (NodeProc, u16) {
    let port = free_port();
    let http = format!("127.0.0.1:{port}");
    let node = NodeProc::start_with_env(url, ns, id, &["--http", &http, "--capacity", "2"], env);
    wait_until(WAIT, &format!("{id} answers /health"), || {
        health(port).is_some()
    });
    (node, port)
}

/// Slots of job `job` fired so far.
fn fired(probe: &mut Probe, job: &str) -> usize {
    probe
        .job_tasks(job)
        .iter()
        .filter(|t| t.slot_ms.is_some())
        .count()
}

/// A leader whose `part` panics at every round (`{part}-loop` failpoint)
/// loses the lease to a healthy node within the lease TTL and never
/// renews it while the fault lasts; once the fault is cleared the part is
/// restarted and the node can lead again.
fn leader_part_panics(part: &str) {
    let redis = RedisServer::start();
    let (url, ns) = (redis.url(), unique_ns(&format!("sup-{part}")));
    let mut probe = Probe::new(&url, &ns);
    let (a, port_a) = start_http_node(&url, &ns, "a", &[]);
    wait_until(WAIT, "a leads", || probe.leader().as_deref() == Some("a"));
    let mut b = NodeProc::start(&url, &ns, "b", &[]);
    let mut c = Client::open(&url, &ns).expect("client");
    c.add_job(&JobSpec::new("tick", "noop").with_cron("* * * * * *"))
        .expect("add job");
    wait_until(WAIT, "a fires the per-second job", || {
        fired(&mut probe, "tick") >= 2
    });
    let epoch_a = probe.epoch().expect("epoch");
    assert_eq!(health(port_a).expect("health").status, 200);

    let failpoint = format!("/failpoints/{part}-loop");
    let set = http_call(port_a, "PUT", &failpoint, Some("panic")).expect("PUT failpoint");
    assert_eq!(set.status, 200, "{set:?}");
    let armed = Instant::now();
    let down = wait_for(WAIT, "a's /health is 503", || {
        health(port_a).filter(|r| r.status == 503)
    });
    let noticed = armed.elapsed();
    let body = down.json();
    assert_eq!(body["status"], "failing", "{body}");
    assert!(
        body["down"]
            .as_array()
            .is_some_and(|d| d.iter().any(|n| n == part)),
        "the 503 names {part}: {body}"
    );
    let took_over = wait_until(LEASE_TTL * 3, "b leads", || {
        probe.leader().as_deref() == Some("b")
    });
    // Once it stepped down, a never holds the lease while the fault lasts:
    // b keeps firing, in a term of its own.
    let fired_before = fired(&mut probe, "tick");
    wait_until(WAIT, "b fires two more slots", || {
        assert_ne!(
            probe.leader().as_deref(),
            Some("a"),
            "a took the lease back"
        );
        fired(&mut probe, "tick") >= fired_before + 2
    });
    assert!(probe.epoch().expect("epoch") > epoch_a);
    assert!(
        a.log().contains(&format!("its {part} is not running")),
        "a says why it stepped down:\n{}",
        a.log()
    );
    report(&format!(
        "supervision {part}-panics: /health 503 {} ms after the failpoint was set; b leads {} ms after that (lease TTL {} ms)",
        noticed.as_millis(),
        took_over.as_millis(),
        LEASE_TTL.as_millis()
    ));
    assert!(
        took_over <= LEASE_TTL,
        "b took over within the lease TTL: {took_over:?}"
    );

    // Fault gone: the part is restarted, /health is 200, a can lead again.
    let cleared = http_call(port_a, "DELETE", &failpoint, None).expect("DELETE failpoint");
    assert_eq!(cleared.status, 200, "{cleared:?}");
    let back = wait_for(WAIT, "a's /health is 200 again", || {
        health(port_a).filter(|r| r.status == 200)
    });
    let entry = component(&back.json(), part);
    assert_eq!(entry["state"], "running", "{entry}");
    assert!(entry["restarts"].as_u64() >= Some(1), "{entry}");
    assert!(
        entry["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("panicked")),
        "{entry}"
    );
    let metrics = http_call(port_a, "GET", "/metrics", None).expect("metrics");
    assert!(
        metrics
            .body
            .contains(&format!("distsched_component_up{{component=\"{part}\"}} 1")),
        "{}",
        metrics.body
    );
    b.sigterm();
    assert!(b.wait_exit(WAIT).is_some_and(|s| s.success()));
    wait_until(WAIT, "a leads again", || {
        probe.leader().as_deref() == Some("a")
    });
    let fired_now = fired(&mut probe, "tick");
    wait_until(WAIT, "a fires again", || {
        fired(&mut probe, "tick") > fired_now
    });
}

#[test]
fn a_panicking_scheduler_gives_up_the_lease_and_comes_back() {
    leader_part_panics("scheduler");
}

#[test]
fn a_panicking_recoverer_gives_up_the_lease_and_comes_back() {
    leader_part_panics("recoverer");
}

/// A component that panics once at start (the canceller) is restarted:
/// `/health` shows it running with one restart and the node runs tasks.
#[test]
fn a_restarted_component_comes_back() {
    let redis = RedisServer::start();
    let (url, ns) = (redis.url(), unique_ns("sup-restart"));
    let (node, port) = start_http_node(
        &url,
        &ns,
        "n",
        &[("FAILPOINTS", "component-canceller=1*panic")],
    );
    let body = wait_for(WAIT, "the canceller runs again", || {
        let r = health(port).filter(|r| r.status == 200)?;
        let body = r.json();
        let entry = component(&body, "canceller");
        (entry["state"] == "running" && entry["restarts"] == 1).then_some(body)
    });
    assert_eq!(component(&body, "fetcher")["policy"], "exit", "{body}");
    assert!(
        node.log().contains("supervisor: canceller panicked"),
        "{}",
        node.log()
    );
    let mut c = Client::open(&url, &ns).expect("client");
    let id = c.submit(&TaskSpec::new("noop")).expect("submit").id;
    let done = c.wait(&id, WAIT).expect("wait").expect("the task ends");
    assert_eq!(done.status, distsched::Status::Success, "{done:?}");
}

/// A component whose policy is to stop the node (the fetcher) panics: the
/// node shuts down and exits 1, leaving no registry entry.
#[test]
fn a_dead_fetcher_stops_the_node_with_exit_1() {
    let redis = RedisServer::start();
    let (url, ns) = (redis.url(), unique_ns("sup-exit"));
    let began = Instant::now();
    let mut node = NodeProc::start_with_env(
        &url,
        &ns,
        "n",
        &[],
        &[("FAILPOINTS", "component-fetcher=panic")],
    );
    let status = node.wait_exit(WAIT).expect("the node exits");
    report(&format!(
        "supervision fetcher-exit: exit code {:?} {} ms after start",
        status.code(),
        began.elapsed().as_millis()
    ));
    assert_eq!(status.code(), Some(1), "{}", node.log());
    let log = node.log();
    assert!(
        log.contains("component fetcher panicked") && log.contains("the node stops"),
        "{log}"
    );
    assert!(
        !Probe::new(&url, &ns).node_entry_exists("n"),
        "deregistered"
    );
}
