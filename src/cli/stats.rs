//! `distsched stats`: the cluster summary (leader, workers, tasks by
//! place, rates over the last minute) from [`distsched::Client::stats`].

use lexopt::Parser;

use distsched::ClusterStats;

use super::{CliResult, exit, human_ms, print_json, print_table};

const HELP: &str = "\
usage: distsched stats [--redis URL] [--ns NAME] [--json]

Cluster summary: the leader, live workers and what they hold, live tasks
by place (pending = ready, delayed = waiting for a time or a retry,
queued = on a worker, not started, running), and task outcomes over the
last minute. Rates come from per-minute counters the workers write with
each result (a sliding-window estimate of the last 60 s); cancellations
and the leader's fail-overs of dead workers' tasks are not in them.";

/// `distsched stats`.
pub fn run(parser: &mut Parser) -> CliResult {
    let Some(common) = super::cluster::parse(parser, "stats", HELP)? else {
        return Ok(exit::OK);
    };
    let stats = common.client()?.stats()?;
    if common.json {
        print_json(&stats)?;
    } else {
        print_summary(&stats);
    }
    Ok(exit::OK)
}

fn print_summary(s: &ClusterStats) {
    let leader = match &s.leader {
        Some(l) => {
            let tick = l
                .last_tick_age_ms
                .map_or("-".into(), |ms| format!("{} ago", human_ms(ms as i64)));
            format!(
                "{} (epoch {}, lease {} left, last write {tick})",
                l.node,
                l.epoch,
                human_ms(l.ttl_ms)
            )
        }
        None => "none (the lease is free)".into(),
    };
    let capacity: usize = s.nodes.iter().map(|n| n.capacity).sum();
    let t = &s.tasks;
    let r = &s.rates.last_minute;
    outln!("leader   {leader}");
    outln!(
        "workers  {} online ({} live node{}), capacity {capacity}, holding {} queued + {} running",
        s.workers_online,
        s.nodes.len(),
        if s.nodes.len() == 1 { "" } else { "s" },
        t.queued,
        t.running
    );
    outln!(
        "tasks    pending {}, delayed {}, queued {}, running {}; {} kept in Redis (live and ended)",
        t.pending,
        t.delayed,
        t.queued,
        t.running,
        t.kept
    );
    outln!(
        "rates    last minute: {:.0} ended ({:.0} succeeded, {:.0} failed), {:.0} retried, {:.0} timed out",
        s.rates.ended_per_minute,
        r.succeeded,
        r.failed,
        r.retried,
        r.timeouts
    );
    if s.nodes.is_empty() {
        return;
    }
    outln!();
    let rows: Vec<Vec<String>> = s
        .nodes
        .iter()
        .map(|n| {
            vec![
                format!("{}{}", n.id, if n.leader { " *" } else { "" }),
                n.role.to_string(),
                n.capacity.to_string(),
                n.queued.to_string(),
                n.running.to_string(),
                n.queue_depth.to_string(),
            ]
        })
        .collect();
    print_table(
        &["NODE", "ROLE", "CAPACITY", "QUEUED", "RUNNING", "QUEUE"],
        &rows,
    );
}
