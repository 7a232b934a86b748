//! The cluster summary behind `distsched stats`, `GET /stats` and the
//! cluster gauges of `/metrics`: who leads, which workers are live and what
//! they hold, where the live tasks are, and task rates over the last
//! minute. Read by whichever thread asks ([`crate::Client::stats`]); no
//! thread of its own.
//!
//! Everything is read from Redis in four round trips: the leader (one
//! pipeline), the registry (two), and the `STATS` script, which counts the
//! queues and the tasks workers hold in one consistent instant. Its cost is
//! bounded by the live nodes and the tasks they hold, never by the task
//! history.
//!
//! **Rates** come from per-minute counters that the workers' `FINISH`
//! script increments in the same call that records an outcome (so a
//! re-sent batch cannot count twice): one HASH per minute of Redis time,
//! kept 24 hours (the dashboard charts them, `GET /history`). "Last minute" is the sliding-window estimate
//! `this minute + previous minute × (1 − fraction of this minute gone)`.
//! They count what workers report: tasks cancelled by a user, and running
//! tasks the leader fails over after a worker died, are not in them (the
//! latter are `distsched_recovered_tasks_total` in `/metrics`).

use std::collections::HashMap;

use serde::Serialize;

use crate::config::Role;
use crate::error::Result;
use crate::model::node::{LeaderStatus, NodeStatus};
use crate::store::{Conn, Store, calls};

/// A cluster summary at one instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterStats {
    /// Redis time of the reading, Unix ms.
    pub time_ms: u64,
    /// Who leads; `None` while the lease is free.
    pub leader: Option<LeaderStatus>,
    /// Live nodes (registry entry not expired), sorted by id.
    pub nodes: Vec<WorkerStats>,
    /// Live nodes that run tasks (role `both` or `worker`).
    pub workers_online: usize,
    /// Where the live tasks are.
    pub tasks: TaskCounts,
    /// Tasks ended per minute, from the workers' per-minute counters.
    pub rates: Rates,
}

/// One live node and the tasks it holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerStats {
    /// Node id.
    pub id: String,
    /// Role it runs.
    pub role: Role,
    /// True if it holds the leader lease.
    pub leader: bool,
    /// Most tasks it holds at once (0: scheduler only).
    pub capacity: usize,
    /// Tasks dispatched to it and not started yet.
    pub queued: u64,
    /// Tasks running on it.
    pub running: u64,
    /// Items in its queue list (may include stale items of tasks cancelled
    /// or reassigned meanwhile, skipped when popped).
    pub queue_depth: u64,
}

/// Live tasks by where they are. Statuses map onto these as: `pending` =
/// `pending` + `queued` + the delayed tasks that have not run yet;
/// `retrying` = the rest of `delayed`; `running` = `running`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct TaskCounts {
    /// Ready and waiting for dispatch (the `pending` queue).
    pub pending: u64,
    /// Waiting for a time: `--delay`/`--at`, or a retry's backoff.
    pub delayed: u64,
    /// Dispatched to a worker, not started.
    pub queued: u64,
    /// Running on a worker.
    pub running: u64,
    /// Tasks in the listing index: every task kept, live or ended (ended
    /// ones within `task_retention` and `task_retention_count`).
    pub kept: u64,
}

/// Counts of one minute, or rates per minute.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Counts {
    /// Tasks that ended well.
    pub succeeded: f64,
    /// Tasks that ended failed (no retries left).
    pub failed: f64,
    /// Failed attempts scheduled for a retry.
    pub retried: f64,
    /// Attempts stopped by their timeout.
    pub timeouts: f64,
}

impl Counts {
    fn from_fields(fields: &HashMap<String, u64>) -> Counts {
        let get = |k: &str| fields.get(k).copied().unwrap_or(0) as f64;
        Counts {
            succeeded: get("success"),
            failed: get("failed"),
            retried: get("retried"),
            timeouts: get("timeout"),
        }
    }

    /// Tasks that ended, well or not.
    pub fn ended(&self) -> f64 {
        self.succeeded + self.failed
    }
}

/// Task rates.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Rates {
    /// Sliding-window estimate over the last 60 s (see the module docs).
    pub last_minute: Counts,
    /// Tasks ended per minute over the last 60 s (`succeeded + failed`).
    pub ended_per_minute: f64,
    /// Counted so far in the current minute of Redis time.
    pub this_minute: Counts,
    /// Counted in the previous minute.
    pub previous_minute: Counts,
}

impl Rates {
    /// Rates from this minute's and the previous minute's counts, `now_ms`
    /// into this minute.
    pub fn estimate(this: Counts, previous: Counts, now_ms: u64) -> Rates {
        let gone = (now_ms % 60_000) as f64 / 60_000.0;
        let w = 1.0 - gone;
        let last = Counts {
            succeeded: this.succeeded + previous.succeeded * w,
            failed: this.failed + previous.failed * w,
            retried: this.retried + previous.retried * w,
            timeouts: this.timeouts + previous.timeouts * w,
        };
        Rates {
            last_minute: last,
            ended_per_minute: last.ended(),
            this_minute: this,
            previous_minute: previous,
        }
    }
}

type NodeRow = (String, u64, u64, u64);
type StatsReply = (
    u64,
    u64,
    u64,
    u64,
    u64,
    Vec<NodeRow>,
    HashMap<String, u64>,
    HashMap<String, u64>,
);

/// Reads the summary; `leader` and `nodes` were just read by the client.
pub(crate) fn read(
    store: &Store,
    conn: &mut Conn,
    leader: Option<LeaderStatus>,
    nodes: Vec<NodeStatus>,
) -> Result<ClusterStats> {
    let keys = &store.keys;
    let (now, pending, delayed, _wake, kept, rows, this, previous): StatsReply =
        conn.run(|c| calls::Stats.invocation(keys).invoke(c))?;
    let by_id: HashMap<&str, &NodeRow> = rows.iter().map(|r| (r.0.as_str(), r)).collect();
    let mut tasks = TaskCounts {
        pending,
        delayed,
        kept,
        ..TaskCounts::default()
    };
    let nodes: Vec<WorkerStats> = nodes
        .iter()
        .map(|n| {
            let (_, depth, queued, running) = by_id
                .get(n.info.id.as_str())
                .map_or((String::new(), 0, 0, 0), |r| (*r).clone());
            tasks.queued += queued;
            tasks.running += running;
            WorkerStats {
                id: n.info.id.clone(),
                role: n.info.role,
                leader: n.leader,
                capacity: n.info.capacity,
                queued,
                running,
                queue_depth: depth,
            }
        })
        .collect();
    Ok(ClusterStats {
        time_ms: now,
        leader,
        workers_online: nodes.iter().filter(|n| n.role.works()).count(),
        nodes,
        tasks,
        rates: Rates::estimate(
            Counts::from_fields(&this),
            Counts::from_fields(&previous),
            now,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_window_estimate() {
        let this = Counts {
            succeeded: 10.0,
            failed: 2.0,
            ..Counts::default()
        };
        let previous = Counts {
            succeeded: 60.0,
            failed: 0.0,
            retried: 4.0,
            timeouts: 0.0,
        };
        // 15 s into the minute: 3/4 of the previous minute is in the window.
        let r = Rates::estimate(this, previous, 7 * 60_000 + 15_000);
        assert_eq!(r.last_minute.succeeded, 55.0);
        assert_eq!(r.last_minute.retried, 3.0);
        assert_eq!(r.ended_per_minute, 57.0);
        assert_eq!(r.this_minute, this);
    }
}
