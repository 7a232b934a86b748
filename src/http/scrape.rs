//! `GET /ready` and `GET /metrics`, run on the `http-N` handler threads.
//!
//! `/metrics` is this process's registry ([`METRICS`]) plus what is read at
//! scrape time: this node's leadership, its RSS, and the cluster view from
//! [`crate::Client::stats`] (the same on every node: sum the process
//! counters across nodes, but not these gauges). When Redis does not
//! answer, the cluster gauges are left out and `distsched_redis_up` is 0;
//! the scrape itself still succeeds.

use std::sync::atomic::Ordering;

use serde_json::json;

use super::{Handler, Reply};
use crate::metrics::{Encoder, Kind, METRICS, resident_memory_bytes};
use crate::stats::ClusterStats;

/// `GET /ready`: 200 while Redis answers and this process's registry entry
/// is in place; 503 with the reason otherwise (Redis unreachable, entry
/// gone after a Redis restart until the next heartbeat, shutting down).
pub(super) fn ready(h: &mut Handler) -> Reply {
    let node = &h.ctx.node_id;
    let not_ready = |reason: String| {
        Reply::json(
            503,
            &json!({"ready": false, "node": node, "reason": reason}),
        )
    };
    if h.ctx.stopping.load(Ordering::SeqCst) {
        return not_ready("shutting down".into());
    }
    match h.probe.is_registered(node, &h.ctx.instance) {
        Ok(true) => Reply::json(200, &json!({"ready": true, "node": node})),
        Ok(false) => not_ready(format!(
            "node {node} is not registered (waiting for its next heartbeat)"
        )),
        Err(e) => not_ready(e.to_string()),
    }
}

/// `GET /metrics`: the Prometheus text format.
pub(super) fn metrics(h: &mut Handler) -> Reply {
    let mut enc = Encoder::new();
    METRICS.encode(&mut enc);
    let fence = h.ctx.lease.as_ref().and_then(|l| l.fence());
    enc.single(
        "distsched_is_leader",
        Kind::Gauge,
        "1 while this node holds the leader lease.",
        if fence.is_some() { 1.0 } else { 0.0 },
    );
    enc.single(
        "distsched_leader_epoch",
        Kind::Gauge,
        "Fencing epoch of this node's term as leader (0 when it does not lead).",
        fence.map_or(0.0, |f| f.epoch as f64),
    );
    if let Some(rss) = resident_memory_bytes() {
        enc.single(
            "distsched_process_resident_memory_bytes",
            Kind::Gauge,
            "Resident set size of this process (/proc/self/statm).",
            rss as f64,
        );
    }
    enc.family(
        "distsched_build_info",
        Kind::Gauge,
        "Always 1; labels say the version and the node id.",
    );
    enc.sample(
        "distsched_build_info",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("node", &h.ctx.node_id),
        ],
        1.0,
    );
    enc.family(
        "distsched_component_up",
        Kind::Gauge,
        "1 while the supervised component runs, 0 while it is restarting, failed or stopped.",
    );
    let components = h.ctx.health.snapshot();
    for c in &components {
        let up = c.state == crate::supervisor::State::Running;
        enc.sample(
            "distsched_component_up",
            &[("component", &c.name)],
            if up { 1.0 } else { 0.0 },
        );
    }
    enc.family(
        "distsched_component_restarts_total",
        Kind::Counter,
        "Times the supervisor restarted the component since the node started.",
    );
    for c in &components {
        enc.sample(
            "distsched_component_restarts_total",
            &[("component", &c.name)],
            c.restarts as f64,
        );
    }
    let stats = h.probe.stats();
    enc.single(
        "distsched_redis_up",
        Kind::Gauge,
        "1 if Redis answered the cluster reads of this scrape.",
        if stats.is_ok() { 1.0 } else { 0.0 },
    );
    if let Ok(s) = &stats {
        cluster(&mut enc, s);
        if let Ok(n) = h.probe.broken_jobs() {
            enc.single(
                "distsched_jobs_broken",
                Kind::Gauge,
                "Jobs the leader skips because their stored record does not parse or their firing failed (job list shows why; cluster).",
                n as f64,
            );
        }
    }
    Reply::text(
        200,
        "text/plain; version=0.0.4; charset=utf-8",
        enc.finish(),
    )
}

/// The cluster gauges, from one [`ClusterStats`] reading.
fn cluster(enc: &mut Encoder, s: &ClusterStats) {
    enc.single(
        "distsched_cluster_has_leader",
        Kind::Gauge,
        "1 while some node holds the leader lease.",
        if s.leader.is_some() { 1.0 } else { 0.0 },
    );
    if let Some(l) = &s.leader {
        enc.single(
            "distsched_cluster_epoch",
            Kind::Gauge,
            "Fencing epoch of the current leader's term.",
            l.epoch as f64,
        );
    }
    enc.single(
        "distsched_workers_online",
        Kind::Gauge,
        "Live nodes that run tasks (registry entry not expired).",
        s.workers_online as f64,
    );
    enc.single(
        "distsched_nodes_online",
        Kind::Gauge,
        "Live nodes of any role.",
        s.nodes.len() as f64,
    );
    enc.family(
        "distsched_tasks",
        Kind::Gauge,
        "Live tasks by where they are: pending (ready, not dispatched), delayed (waiting for a time or a retry), queued (on a worker, not started), running.",
    );
    let t = &s.tasks;
    for (state, n) in [
        ("pending", t.pending),
        ("delayed", t.delayed),
        ("queued", t.queued),
        ("running", t.running),
    ] {
        enc.sample("distsched_tasks", &[("state", state)], n as f64);
    }
    enc.family(
        "distsched_tasks_kept",
        Kind::Gauge,
        "Tasks kept in Redis, live and ended (ended ones within task_retention and task_retention_count).",
    );
    enc.sample("distsched_tasks_kept", &[], t.kept as f64);
    enc.family(
        "distsched_queue_depth",
        Kind::Gauge,
        "Entries in the cluster queues: pending (ready) and delayed (timed).",
    );
    for (queue, n) in [("pending", t.pending), ("delayed", t.delayed)] {
        enc.sample("distsched_queue_depth", &[("queue", queue)], n as f64);
    }
    enc.family(
        "distsched_worker_queue_depth",
        Kind::Gauge,
        "Items in each live worker's queue list (stale items of cancelled tasks included until popped).",
    );
    for n in &s.nodes {
        enc.sample(
            "distsched_worker_queue_depth",
            &[("node", &n.id)],
            n.queue_depth as f64,
        );
    }
    enc.family(
        "distsched_worker_tasks",
        Kind::Gauge,
        "Tasks each live worker holds, queued or running.",
    );
    for n in &s.nodes {
        for (state, v) in [("queued", n.queued), ("running", n.running)] {
            enc.sample(
                "distsched_worker_tasks",
                &[("node", &n.id), ("state", state)],
                v as f64,
            );
        }
    }
    enc.family(
        "distsched_cluster_tasks_per_minute",
        Kind::Gauge,
        "Cluster-wide outcomes over the last 60 s (sliding estimate of the workers' per-minute counters).",
    );
    let r = &s.rates.last_minute;
    for (outcome, v) in [
        ("succeeded", r.succeeded),
        ("failed", r.failed),
        ("retried", r.retried),
        ("timeout", r.timeouts),
    ] {
        enc.sample(
            "distsched_cluster_tasks_per_minute",
            &[("outcome", outcome)],
            v,
        );
    }
}
