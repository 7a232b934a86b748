//! Dispatch: one tick of moving pending tasks onto worker queues, run by
//! the leader's `scheduler` thread (see `scheduler`).
//!
//! A tick is two fenced scripts around a pure planning step:
//! `DISPATCH_READ` promotes due delayed tasks to `pending` and returns the
//! live workers and the head of `pending`; the [`Planner`] assigns tasks to
//! workers; `DISPATCH_COMMIT` moves them onto the workers' queues,
//! re-checking each assignment. A tick dispatches up to `BATCH` tasks in two
//! round trips.

use std::time::Duration;

use crate::balancer::{Balancer, PendingTask, Planner, WorkerSlot};
use crate::error::Result;
use crate::metrics::METRICS;
use crate::model::node::NodeInfo;
use crate::store::{Conn, Fence, Store, scripts};

/// Most tasks planned per tick.
pub const BATCH: usize = 512;
/// Most delayed tasks promoted per tick.
const PROMOTE: usize = 1000;
/// Added to a task's timeout for its `running` deadline, so the worker's
/// own timeout always fires before the leader's recoverer steps in.
pub const RECOVERY_GRACE: Duration = Duration::from_secs(10);

/// Dispatch state kept by the leader across ticks.
pub struct Dispatcher {
    store: Store,
    balancer: Balancer,
    planner: Planner,
}

/// What one tick saw and did.
pub struct Tick {
    /// Tasks moved onto worker queues.
    pub dispatched: usize,
    /// Pending tasks looked at (`BATCH` means there may be more).
    pub read: usize,
    /// Redis time of the tick, ms.
    pub now_ms: i64,
    /// When the next delayed task or cron job is due, ms (-1: none).
    pub next_due_ms: i64,
}

type WorkerRow = (String, String, usize, String);
type TaskRow = (String, String, String, String, String);

impl Dispatcher {
    /// A dispatcher using `balancer` for tasks that name none.
    pub fn new(store: &Store, balancer: Balancer) -> Dispatcher {
        Dispatcher {
            store: store.clone(),
            balancer,
            planner: Planner::default(),
        }
    }

    /// One dispatch tick.
    pub fn tick(&mut self, conn: &mut Conn, fence: &Fence) -> Result<Tick> {
        let keys = &self.store.keys;
        let (now_ms, next_due_ms, worker_rows, task_rows): (
            i64,
            i64,
            Vec<WorkerRow>,
            Vec<TaskRow>,
        ) = conn.run(|c| {
            fence
                .invoke(&scripts::DISPATCH_READ, keys)
                .key(keys.delayed())
                .key(keys.pending())
                .key(keys.nodes())
                .key(keys.seq())
                .key(keys.wake())
                .key(keys.schedule())
                .arg(keys.task_prefix())
                .arg(keys.node_prefix())
                .arg(keys.held_prefix())
                .arg(BATCH)
                .arg(PROMOTE)
                .invoke(c)
        })?;
        let read = task_rows.len();
        let mut workers = parse_workers(worker_rows);
        let tasks: Vec<PendingTask> = task_rows
            .into_iter()
            .map(|(id, executor, tags, balancer, route_key)| PendingTask {
                id,
                executor,
                tags: split_list(&tags),
                balancer: Balancer::parse(&balancer).ok(),
                route_key,
            })
            .collect();
        let plan = self.planner.plan(self.balancer, &mut workers, &tasks);
        if plan.assign.is_empty() && plan.unroutable.is_empty() {
            return Ok(Tick {
                dispatched: 0,
                read,
                now_ms,
                next_due_ms,
            });
        }
        let dispatched: usize = conn.run(|c| {
            let mut inv = fence.invoke(&scripts::DISPATCH_COMMIT, keys);
            inv.key(keys.pending())
                .key(keys.running())
                .arg(keys.task_prefix())
                .arg(keys.node_prefix())
                .arg(keys.held_prefix())
                .arg(keys.queue_prefix())
                .arg(RECOVERY_GRACE.as_millis() as u64)
                .arg(plan.assign.len());
            for &(t, w) in &plan.assign {
                inv.arg(&tasks[t].id)
                    .arg(&workers[w].id)
                    .arg(workers[w].capacity);
            }
            for (t, reason) in &plan.unroutable {
                inv.arg(&tasks[*t].id).arg(reason);
            }
            inv.invoke(c)
        })?;
        METRICS.dispatched.add(dispatched as u64);
        METRICS
            .dispatch_refused
            .add(plan.assign.len().saturating_sub(dispatched) as u64);
        if dispatched > 0 {
            log::debug!("scheduler: dispatched {dispatched} of {read} pending");
        }
        Ok(Tick {
            dispatched,
            read,
            now_ms,
            next_due_ms,
        })
    }
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect()
}

/// Live, non-draining workers with a capacity, from the read script's rows.
fn parse_workers(rows: Vec<WorkerRow>) -> Vec<WorkerSlot> {
    rows.into_iter()
        .filter(|(_, _, _, draining)| draining != "1")
        .filter_map(|(id, info, held, _)| {
            let info: NodeInfo = serde_json::from_str(&info)
                .map_err(|e| log::warn!("scheduler: node {id} has a bad registry entry: {e}"))
                .ok()?;
            (info.capacity > 0).then(|| WorkerSlot {
                id,
                capacity: info.capacity,
                held,
                weight: info.weight.max(1),
                executors: info.executors,
                tags: info.tags,
            })
        })
        .collect()
}
