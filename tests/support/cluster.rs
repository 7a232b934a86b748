//! In-process nodes and clients: fast configs, waiting for a cluster to
//! form and for tasks to end, and the `record` executor that logs every run
//! outside Redis.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use super::*;

/// A node [`distsched::Config`] for an in-process node (`Node::builder`)
/// with the [`FAST`] timings and a 2 s shutdown grace.
pub fn fast_config(url: &str, ns: &str, id: &str) -> distsched::Config {
    distsched::Config {
        redis_url: url.to_string(),
        namespace: ns.to_string(),
        node_id: id.to_string(),
        lease_ttl: LEASE_TTL,
        renew_interval: RENEW_INTERVAL,
        heartbeat_interval: HEARTBEAT_INTERVAL,
        heartbeat_timeout: HEARTBEAT_TIMEOUT,
        recover_interval: RECOVER_INTERVAL,
        shutdown_grace: Duration::from_secs(2),
        ..distsched::Config::default()
    }
}

/// A library client for `ns` on `url`.
pub fn client(url: &str, ns: &str) -> distsched::Client {
    distsched::Client::open(url, ns).expect("open a client")
}

/// Waits until every node in `ids` is live in the registry and some node
/// leads and has ticked; returns the leader's id.
pub fn wait_for_cluster(url: &str, ns: &str, ids: &[&str], timeout: Duration) -> String {
    let mut probe = Probe::new(url, ns);
    let (leader, _) = wait_for_leader(&mut probe, timeout);
    let mut client = client(url, ns);
    wait_until(timeout, &format!("nodes {ids:?} are registered"), || {
        let live: Vec<String> = client
            .nodes()
            .map(|ns| ns.into_iter().map(|n| n.info.id).collect())
            .unwrap_or_default();
        ids.iter().all(|id| live.iter().any(|l| l == id))
    });
    leader
}

/// Waits until every task in `ids` has ended (success, failed or
/// cancelled) and returns them, in the order of `ids`. Polls the status
/// fields in one pipeline per round, so it suits thousands of tasks.
pub fn wait_ended(
    client: &mut distsched::Client,
    probe: &mut Probe,
    ids: &[String],
    timeout: Duration,
) -> Vec<distsched::Task> {
    let start = Instant::now();
    loop {
        let last = probe.statuses(ids);
        let open = last
            .iter()
            .filter(|s| !matches!(s.as_deref(), Some("success" | "failed" | "cancelled")))
            .count();
        if open == 0 {
            break;
        }
        if start.elapsed() >= timeout {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for s in &last {
                *counts
                    .entry(s.clone().unwrap_or_else(|| "<missing>".into()))
                    .or_default() += 1;
            }
            panic!(
                "timed out after {timeout:?} waiting for {} tasks to end; statuses: {counts:?}",
                ids.len()
            );
        }
        std::thread::sleep(POLL);
    }
    ids.iter()
        .map(|id| client.task(id).unwrap_or_else(|e| panic!("task {id}: {e}")))
        .collect()
}

/// Waits until task `id` satisfies `cond`; returns it.
pub fn wait_task(
    client: &mut distsched::Client,
    id: &str,
    timeout: Duration,
    what: &str,
    mut cond: impl FnMut(&distsched::Task) -> bool,
) -> distsched::Task {
    wait_for(timeout, &format!("task {id} {what}"), || {
        client.task(id).ok().filter(|t| cond(t))
    })
}

/// `--exec record=...`: appends the task id to `file` (one short write, so
/// lines never interleave), then works for `work` seconds.
pub fn record_exec(file: &Path, work: &str) -> String {
    format!(
        "record=sh -c 'echo $DISTSCHED_TASK_ID >> {}; sleep {work}'",
        file.display()
    )
}

/// How many times each task id was recorded.
pub fn recorded(file: &Path) -> HashMap<String, usize> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut counts = HashMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        *counts.entry(line.to_string()).or_insert(0) += 1;
    }
    counts
}
