//! Dispatch: one tick of moving pending tasks onto worker queues, run by
//! the leader's `scheduler` thread (see `scheduler`).
//!
//! A tick is two fenced scripts around a pure planning step:
//! `DISPATCH_READ` promotes due delayed tasks to `pending` and returns the
//! live workers, the head of `pending` and the heads of the parks (below);
//! the [`Planner`] assigns tasks to workers in score order (priority, then
//! first in); `DISPATCH_COMMIT` moves them onto the workers' queues,
//! re-checking each assignment, and parks what could not be placed. A tick
//! dispatches up to `BATCH` tasks in two round trips. (Under a backlog most
//! tasks are not dispatched here at all: a worker's `FINISH` refills the
//! slots it frees with the tasks the balancer would have given it anyway;
//! see `lua/finish.lua`.)
//!
//! **Parks** keep tasks that cannot be placed out of the scan of `pending`,
//! so a backlog nobody can take never hides runnable tasks behind it and
//! costs nothing per tick (asynq and Sidekiq get this from per-queue lists
//! that workers pull; here the leader pushes, so it keeps the lists):
//!
//! - a task no live worker can run (unknown executor, missing tags) goes to
//!   the park of its executor and tag set at once;
//! - a task whose capable workers are all full (or, for `consistent-hash`,
//!   whose owner is full) is parked, in its executor's park or in its
//!   owner's, only when it is in the way: the read took as many tasks
//!   from `pending` as it would (one per free slot, at most `BATCH`) and
//!   some worker still has a free slot. Otherwise it
//!   just waits in `pending`, as it would anyway.
//!
//! The read script returns a park's head only as far as the workers able to
//! take its tasks have free slots, merged with `pending` by score, so a
//! parked task runs as soon as a capable worker joins or frees a slot, in
//! priority order with everything else. Owners' parks are put back into
//! `pending` (bounded per tick) whenever the set of live workers changes or
//! a new term starts, since keys may then have a new owner.

use std::collections::{BTreeMap, HashMap};

use std::time::Duration;

use crate::balancer::{self, Balancer, PendingTask, Planner, WorkerSlot};
use crate::error::Result;
use crate::metrics::METRICS;
use crate::model::node::NodeInfo;
use crate::store::{Conn, Fence, Store, calls};

/// Most tasks planned per tick from `pending` (and, apart, from parks).
pub const BATCH: usize = 512;
/// Most delayed tasks promoted per tick, and most parked tasks put back.
const PROMOTE: usize = 1000;
/// Added to a task's timeout for its `running` deadline, so the worker's
/// own timeout always fires before the leader's recoverer steps in.
pub const RECOVERY_GRACE: Duration = Duration::from_secs(10);

/// Dispatch state kept by the leader across ticks.
pub struct Dispatcher {
    store: Store,
    balancer: Balancer,
    planner: Planner,
    /// The epoch of the term the fields below belong to.
    epoch: Option<u64>,
    /// The live workers the last tick saw, with what they can run
    /// (`None`: no tick yet in this term).
    members: Option<Vec<String>>,
    /// Owners' parks being put back into `pending` → the score to resume
    /// from (`-inf` or `(score`, exclusive).
    put_back: BTreeMap<String, String>,
}

/// What one tick saw and did.
pub struct Tick {
    /// True when the tick made progress and left work that the next tick
    /// can do at once (a full batch, or parks still being put back).
    pub again: bool,
    /// Redis time of the tick, ms.
    pub now_ms: i64,
    /// When the next delayed task or cron job is due, ms (-1: none).
    pub next_due_ms: i64,
}

type WorkerRow = (String, String, usize, String);
type TaskRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
);
type ParkRow = (String, usize, String);

/// A task read by the tick, with where it waits.
struct Waiting {
    task: PendingTask,
    score: f64,
    /// Its park, or empty when it is in `pending`.
    park: String,
    /// Its timeout, ms, as stored (for its `running` deadline).
    timeout_ms: String,
    /// True when it has a wait reason to clear once dispatched.
    has_reason: bool,
}

impl Dispatcher {
    /// A dispatcher using `balancer` for tasks that name none.
    pub fn new(store: &Store, balancer: Balancer) -> Dispatcher {
        Dispatcher {
            store: store.clone(),
            balancer,
            planner: Planner::default(),
            epoch: None,
            members: None,
            put_back: BTreeMap::new(),
        }
    }

    /// One dispatch tick.
    pub fn tick(&mut self, conn: &mut Conn, fence: &Fence) -> Result<Tick> {
        if self.epoch != Some(fence.epoch) {
            // Another leader may have parked tasks under another view of
            // the workers meanwhile.
            self.epoch = Some(fence.epoch);
            self.members = None;
        }
        let keys = &self.store.keys;
        let (now_ms, next_due_ms, worker_rows, task_rows, park_rows, limit): (
            i64,
            i64,
            Vec<WorkerRow>,
            Vec<TaskRow>,
            Vec<ParkRow>,
            usize,
        ) = conn.run(|c| {
            calls::DispatchRead {
                fence,
                batch: BATCH,
                promote: PROMOTE,
                balancer: self.balancer.as_str(),
            }
            .invocation(keys)
            .invoke(c)
        })?;
        let mut workers = parse_workers(worker_rows);
        // What decides consistent-hash owners: who is live, and what each
        // one can run.
        let members: Vec<String> = workers
            .iter()
            .map(|w| format!("{}|{}|{}", w.id, w.executors.join(","), w.tags.join(",")))
            .collect();
        if self.members.as_ref() != Some(&members) {
            for (park, _, kind) in &park_rows {
                if kind == "node" {
                    self.put_back.insert(park.clone(), "-inf".into());
                }
            }
            self.members = Some(members);
        }
        let sizes: HashMap<&str, usize> = park_rows
            .iter()
            .map(|(park, size, _)| (park.as_str(), *size))
            .collect();
        self.put_back
            .retain(|park, _| sizes.contains_key(park.as_str()));

        let mut waiting: Vec<Waiting> = task_rows
            .into_iter()
            .map(
                |(id, executor, tags, balancer, route_key, score, park, timeout_ms, reason)| {
                    Waiting {
                        task: PendingTask {
                            id,
                            executor,
                            tags: split_list(&tags),
                            balancer: Balancer::parse(&balancer).ok(),
                            route_key,
                        },
                        score: score.parse().unwrap_or(f64::MAX),
                        park,
                        timeout_ms,
                        has_reason: !reason.is_empty(),
                    }
                },
            )
            .collect();
        waiting.sort_by(|a, b| a.score.total_cmp(&b.score));
        let read = waiting.len();
        let from_pending = waiting.iter().filter(|w| w.park.is_empty()).count();
        let from_parks = read - from_pending;
        let tasks: Vec<PendingTask> = waiting.iter().map(|w| w.task.clone()).collect();
        let plan = self.planner.plan(self.balancer, &mut workers, &tasks);

        // Blocked tasks are in the way only if more may wait behind them
        // and a slot is still free for those.
        let in_the_way =
            limit > 0 && from_pending == limit && workers.iter().any(|w| w.held < w.capacity);
        let mut parks: Vec<(usize, String, String)> = Vec::new();
        // Unroutable tasks are always sent: the commit moves them to their
        // park, or refreshes the wait reason of one already there.
        for (t, reason) in plan.unroutable {
            parks.push((t, keys.park_for(&tasks[t].executor, &tasks[t].tags), reason));
        }
        // Tasks waiting for a slot move only when in the way, or when read
        // from a park that is no longer the right one.
        let blocked = plan
            .busy
            .into_iter()
            .map(|t| {
                let park = keys.park_for(&tasks[t].executor, &tasks[t].tags);
                (t, park, balancer::busy_reason(&tasks[t]))
            })
            .chain(plan.owner_busy.into_iter().map(|(t, w)| {
                let owner = &workers[w].id;
                (
                    t,
                    keys.park_for_node(owner),
                    balancer::owner_busy_reason(owner),
                )
            }));
        for (t, park, reason) in blocked {
            let from = &waiting[t].park;
            if (from.is_empty() && in_the_way) || (!from.is_empty() && *from != park) {
                parks.push((t, park, reason));
            }
        }
        let mut put_back = Vec::new();
        let mut budget = PROMOTE;
        for (park, from) in &self.put_back {
            if budget == 0 {
                break;
            }
            let most = budget.min(sizes[park.as_str()].max(1));
            put_back.push((park.clone(), from.clone(), most));
            budget -= most;
        }

        if plan.assign.is_empty() && parks.is_empty() && put_back.is_empty() {
            return Ok(Tick {
                again: false,
                now_ms,
                next_due_ms,
            });
        }
        let (dispatched, parked, moved): (usize, usize, Vec<(usize, String)>) = conn.run(|c| {
            calls::DispatchCommit {
                fence,
                assign: plan
                    .assign
                    .iter()
                    .map(|&(t, w)| calls::Assignment {
                        task: &tasks[t].id,
                        worker: &workers[w].id,
                        capacity: workers[w].capacity,
                        from: &waiting[t].park,
                        timeout_ms: &waiting[t].timeout_ms,
                        has_reason: waiting[t].has_reason,
                    })
                    .collect(),
                park: parks
                    .iter()
                    .map(|(t, park, reason)| {
                        (tasks[*t].id.as_str(), park.as_str(), reason.as_str())
                    })
                    .collect(),
                put_back: put_back
                    .iter()
                    .map(|(park, from, most)| (park.as_str(), from.as_str(), *most))
                    .collect(),
            }
            .invocation(keys)
            .invoke(c)
        })?;
        let mut returned = 0;
        for ((park, _, most), (count, last)) in put_back.iter().zip(moved) {
            returned += count;
            if count < *most || last.is_empty() {
                self.put_back.remove(park);
            } else {
                self.put_back.insert(park.clone(), format!("({last}"));
            }
        }
        METRICS.dispatched.add(dispatched as u64);
        METRICS
            .dispatch_refused
            .add(plan.assign.len().saturating_sub(dispatched) as u64);
        if dispatched + parked + returned > 0 {
            log::debug!(
                "scheduler: dispatched {dispatched}, parked {parked}, put back {returned} \
                 of {read} read"
            );
        }
        let progress = dispatched + parked + returned > 0;
        Ok(Tick {
            again: progress
                && ((limit > 0 && from_pending == limit) || from_parks == BATCH || returned > 0),
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

/// Live, non-draining workers with a capacity, from the read script's rows,
/// sorted by id so that every tick sees them in the same order whatever
/// order the registry lists them in.
fn parse_workers(rows: Vec<WorkerRow>) -> Vec<WorkerSlot> {
    let mut workers: Vec<WorkerSlot> = rows
        .into_iter()
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
        .collect();
    workers.sort_by(|a, b| a.id.cmp(&b.id));
    workers
}
