//! Load balancing: which worker gets each pending task. Pure logic, run by
//! the leader's scheduler thread between the read and the commit half of a
//! dispatch tick (see `dispatcher`).
//!
//! Only *capable* workers are candidates: they offer the task's executor and
//! carry all its tags, and are not draining. A worker never gets more than
//! `capacity - held` new tasks. Strategies:
//!
//! - `least-tasks` (default): the candidate holding the fewest tasks; ties
//!   go to the workers in turn.
//! - `round-robin`: the free candidates in id order, one after the other.
//!   The cursor is the id of the last worker picked, not a position in a
//!   list, so the turn survives workers joining, leaving, being full or
//!   being listed in another order (the registry lists them by heartbeat
//!   time, which changes with every heartbeat).
//! - `random`: a uniformly random candidate with a free slot.
//! - `weighted`: smooth weighted round-robin (nginx's), so over any window
//!   each worker's share follows its weight.
//! - `consistent-hash`: rendezvous hashing of the task's routing key over the
//!   capable workers: a key always maps to the same worker while the set of
//!   workers is unchanged, and when a worker joins only the keys it now
//!   scores highest for (about 1/N) move. If that worker is full the task
//!   waits for it rather than breaking affinity.
//!
//! A task that cannot be placed is reported with the reason, so the
//! dispatcher can park it out of the hot scan: no capable worker at all
//! ([`Plan::unroutable`]), every capable worker full ([`Plan::busy`]), or
//! its consistent-hash owner full ([`Plan::owner_busy`]).

use std::collections::HashMap;
use std::fmt;

use crate::error::{Error, Result};

/// A load-balancing strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Balancer {
    /// Fewest held tasks first (default).
    #[default]
    LeastTasks,
    /// In turn.
    RoundRobin,
    /// At random.
    Random,
    /// In proportion to node weight.
    Weighted,
    /// By routing key, stable across membership changes.
    ConsistentHash,
}

impl Balancer {
    /// The name used in flags and records.
    pub fn as_str(self) -> &'static str {
        match self {
            Balancer::LeastTasks => "least-tasks",
            Balancer::RoundRobin => "round-robin",
            Balancer::Random => "random",
            Balancer::Weighted => "weighted",
            Balancer::ConsistentHash => "consistent-hash",
        }
    }

    /// Parses a name.
    pub fn parse(text: &str) -> Result<Balancer> {
        [
            Balancer::LeastTasks,
            Balancer::RoundRobin,
            Balancer::Random,
            Balancer::Weighted,
            Balancer::ConsistentHash,
        ]
        .into_iter()
        .find(|b| b.as_str() == text)
        .ok_or_else(|| {
            Error::Config(format!(
                "unknown balancer `{text}` (expected least-tasks, round-robin, random, weighted or consistent-hash)"
            ))
        })
    }
}

impl fmt::Display for Balancer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A live worker as the dispatcher sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerSlot {
    /// Node id.
    pub id: String,
    /// Most tasks it may hold.
    pub capacity: usize,
    /// Tasks it holds now (queued + running).
    pub held: usize,
    /// Weight for `weighted`.
    pub weight: u32,
    /// Executors it offers.
    pub executors: Vec<String>,
    /// Tags it carries.
    pub tags: Vec<String>,
}

/// The capability rule: a worker offering `executors` and carrying `tags`
/// can run a task needing `executor` and every tag of `needs`. The scripts
/// apply the same rule in Lua (`can_run` in `lua/lib.lua`);
/// `tests/script_keys.rs` runs both over one table of cases.
pub fn can_run(executors: &[String], tags: &[String], executor: &str, needs: &[String]) -> bool {
    executors.iter().any(|e| e == executor) && needs.iter().all(|t| tags.contains(t))
}

impl WorkerSlot {
    fn can_run(&self, task: &PendingTask) -> bool {
        can_run(&self.executors, &self.tags, &task.executor, &task.tags)
    }

    fn free(&self) -> bool {
        self.held < self.capacity
    }
}

/// A pending task as the dispatcher sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingTask {
    /// Task id.
    pub id: String,
    /// Executor it needs.
    pub executor: String,
    /// Tags it needs.
    pub tags: Vec<String>,
    /// Its own balancer, if it names one.
    pub balancer: Option<Balancer>,
    /// Routing key for `consistent-hash` (the id when empty).
    pub route_key: String,
}

/// The outcome of planning one batch. Every task is in exactly one list.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// (task index, worker index) pairs, in dispatch order.
    pub assign: Vec<(usize, usize)>,
    /// (task index, reason) for tasks that no live worker can run.
    pub unroutable: Vec<(usize, String)>,
    /// Tasks some live worker can run, but every such worker is full.
    pub busy: Vec<usize>,
    /// (task index, worker index): `consistent-hash` tasks whose owner is
    /// full.
    pub owner_busy: Vec<(usize, usize)>,
}

/// Why [`Planner::pick`] placed nothing.
enum Blocked {
    /// Every candidate is full.
    Busy,
    /// The task's consistent-hash owner (a worker index) is full.
    Owner(usize),
}

/// Balancer state kept by the leader across ticks: the last worker each
/// rotating strategy picked, and the smooth-weighted counters.
#[derive(Debug, Default)]
pub struct Planner {
    last_round_robin: Option<String>,
    last_tied: Option<String>,
    current: HashMap<String, i64>,
}

impl Planner {
    /// Assigns `tasks` (in priority order) to `workers`, updating their
    /// `held` counts as it goes. `default` applies to tasks naming none.
    pub fn plan(
        &mut self,
        default: Balancer,
        workers: &mut [WorkerSlot],
        tasks: &[PendingTask],
    ) -> Plan {
        let mut plan = Plan::default();
        let mut candidates = Vec::with_capacity(workers.len());
        for (ti, task) in tasks.iter().enumerate() {
            // Tasks are still classified when every worker is full, so the
            // dispatcher can park the ones nobody will ever take.
            candidates.clear();
            candidates.extend((0..workers.len()).filter(|&w| workers[w].can_run(task)));
            if candidates.is_empty() {
                plan.unroutable.push((ti, unroutable_reason(task)));
                continue;
            }
            let strategy = task.balancer.unwrap_or(default);
            match self.pick(strategy, workers, &candidates, task) {
                Ok(w) => {
                    workers[w].held += 1;
                    plan.assign.push((ti, w));
                }
                Err(Blocked::Busy) => plan.busy.push(ti),
                Err(Blocked::Owner(w)) => plan.owner_busy.push((ti, w)),
            }
        }
        plan
    }

    fn pick(
        &mut self,
        strategy: Balancer,
        workers: &[WorkerSlot],
        candidates: &[usize],
        task: &PendingTask,
    ) -> std::result::Result<usize, Blocked> {
        if strategy == Balancer::ConsistentHash {
            let key = if task.route_key.is_empty() {
                &task.id
            } else {
                &task.route_key
            };
            let best = *candidates
                .iter()
                .max_by_key(|&&w| rendezvous(key, &workers[w].id))
                .ok_or(Blocked::Busy)?;
            return if workers[best].free() {
                Ok(best)
            } else {
                Err(Blocked::Owner(best))
            };
        }
        let free: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&w| workers[w].free())
            .collect();
        if free.is_empty() {
            return Err(Blocked::Busy);
        }
        Ok(match strategy {
            Balancer::LeastTasks => {
                // Fewest held; ties rotate so equal workers share the load.
                let least = free.iter().map(|&w| workers[w].held).min().unwrap_or(0);
                let tied: Vec<usize> = free
                    .into_iter()
                    .filter(|&w| workers[w].held == least)
                    .collect();
                next_after(&mut self.last_tied, workers, &tied)
            }
            Balancer::RoundRobin => next_after(&mut self.last_round_robin, workers, &free),
            Balancer::Random => {
                free[(crate::random_unit() * free.len() as f64) as usize % free.len()]
            }
            Balancer::Weighted => {
                let total: i64 = free.iter().map(|&w| workers[w].weight as i64).sum();
                for &w in &free {
                    *self.current.entry(workers[w].id.clone()).or_default() +=
                        workers[w].weight as i64;
                }
                let best = free
                    .iter()
                    .copied()
                    .max_by_key(|&w| self.current[&workers[w].id])
                    .unwrap_or(free[0]);
                if let Some(c) = self.current.get_mut(&workers[best].id) {
                    *c -= total;
                }
                best
            }
            Balancer::ConsistentHash => unreachable!("handled above"),
        })
    }
}

/// The worker among `among` (non-empty) whose id comes next after `last` in
/// id order, wrapping around; records it in `last`. Keyed by id rather than
/// by position so that the order of `workers` and changes to the set (a
/// worker joining, leaving or full) never make the turn repeat or jump.
fn next_after(last: &mut Option<String>, workers: &[WorkerSlot], among: &[usize]) -> usize {
    let id = |w: &usize| workers[*w].id.as_str();
    let after = last.as_deref().and_then(|l| {
        among
            .iter()
            .filter(|w| id(w) > l)
            .min_by(|a, b| id(a).cmp(id(b)))
    });
    let pick = *after
        .or_else(|| among.iter().min_by(|a, b| id(a).cmp(id(b))))
        .expect("at least one worker to choose from");
    *last = Some(workers[pick].id.clone());
    pick
}

fn unroutable_reason(task: &PendingTask) -> String {
    format!("no live worker offers {}", what_it_needs(task))
}

/// The wait reason of a task in [`Plan::busy`].
pub fn busy_reason(task: &PendingTask) -> String {
    format!(
        "every live worker that offers {} is full",
        what_it_needs(task)
    )
}

/// The wait reason of a task in [`Plan::owner_busy`] owned by `worker`.
pub fn owner_busy_reason(worker: &str) -> String {
    format!("its consistent-hash owner, worker `{worker}`, is full")
}

fn what_it_needs(task: &PendingTask) -> String {
    if task.tags.is_empty() {
        format!("executor `{}`", task.executor)
    } else {
        format!(
            "executor `{}` with tags {}",
            task.executor,
            task.tags.join(",")
        )
    }
}

/// Rendezvous (highest random weight) score of `key` on `node`: FNV-1a
/// followed by a splitmix64 finaliser, stable across builds and platforms.
pub fn rendezvous(key: &str, node: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes().chain([0u8]).chain(node.bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(id: &str, capacity: usize, weight: u32) -> WorkerSlot {
        WorkerSlot {
            id: id.into(),
            capacity,
            held: 0,
            weight,
            executors: vec!["x".into()],
            tags: vec![],
        }
    }

    fn tasks(n: usize) -> Vec<PendingTask> {
        (0..n)
            .map(|i| PendingTask {
                id: format!("t{i}"),
                executor: "x".into(),
                tags: vec![],
                balancer: None,
                route_key: format!("key-{i}"),
            })
            .collect()
    }

    fn counts(plan: &Plan, workers: usize) -> Vec<usize> {
        let mut c = vec![0; workers];
        for &(_, w) in &plan.assign {
            c[w] += 1;
        }
        c
    }

    #[test]
    fn least_tasks_evens_out_uneven_load() {
        let mut ws = vec![worker("a", 10, 1), worker("b", 10, 1), worker("c", 10, 1)];
        ws[0].held = 6;
        let plan = Planner::default().plan(Balancer::LeastTasks, &mut ws, &tasks(9));
        assert_eq!(plan.assign.len(), 9);
        // The loaded worker gets nothing until the others catch up.
        let held: Vec<usize> = ws.iter().map(|w| w.held).collect();
        assert_eq!(held[0], 6, "{held:?}");
        assert_eq!(held[1] + held[2], 9, "{held:?}");
        assert!(held[1].abs_diff(held[2]) <= 1, "{held:?}");
    }

    #[test]
    fn capacity_is_never_exceeded() {
        let mut ws = vec![worker("a", 2, 1), worker("b", 3, 1)];
        let plan = Planner::default().plan(Balancer::RoundRobin, &mut ws, &tasks(20));
        assert_eq!(counts(&plan, 2), [2, 3]);
    }

    #[test]
    fn round_robin_cycles() {
        let mut ws = vec![
            worker("a", 100, 1),
            worker("b", 100, 1),
            worker("c", 100, 1),
        ];
        let plan = Planner::default().plan(Balancer::RoundRobin, &mut ws, &tasks(9));
        let order: Vec<usize> = plan.assign.iter().map(|&(_, w)| w).collect();
        for pair in order.windows(2) {
            assert_ne!(pair[0], pair[1], "round-robin repeated a worker: {order:?}");
        }
        assert_eq!(counts(&plan, 3), [3, 3, 3]);
    }

    fn ids(plan: &Plan, ws: &[WorkerSlot]) -> Vec<String> {
        plan.assign.iter().map(|&(_, w)| ws[w].id.clone()).collect()
    }

    #[test]
    fn round_robin_follows_id_order_across_ticks_whatever_the_listing_order() {
        // The registry lists workers by heartbeat time, so each tick may see
        // them in another order; one task per tick must still go around.
        let mut planner = Planner::default();
        let listings = [["c", "a", "b"], ["b", "c", "a"], ["a", "b", "c"]];
        let mut order = Vec::new();
        for round in 0..9 {
            let mut ws: Vec<WorkerSlot> = listings[round % 3]
                .iter()
                .map(|id| worker(id, 100, 1))
                .collect();
            let plan = planner.plan(Balancer::RoundRobin, &mut ws, &tasks(1));
            order.extend(ids(&plan, &ws));
        }
        assert_eq!(order, ["a", "b", "c", "a", "b", "c", "a", "b", "c"]);
    }

    #[test]
    fn round_robin_keeps_its_turn_when_workers_join_leave_or_fill_up() {
        let mut planner = Planner::default();
        let mut ws = vec![worker("a", 100, 1), worker("b", 100, 1)];
        let plan = planner.plan(Balancer::RoundRobin, &mut ws, &tasks(1));
        assert_eq!(ids(&plan, &ws), ["a"]);
        // c joins: the turn goes on from a, to b, then c.
        ws.push(worker("c", 100, 1));
        let plan = planner.plan(Balancer::RoundRobin, &mut ws, &tasks(3));
        assert_eq!(ids(&plan, &ws), ["b", "c", "a"]);
        // b is full: skipped, without a second turn for anyone.
        ws[1].held = ws[1].capacity;
        let plan = planner.plan(Balancer::RoundRobin, &mut ws, &tasks(4));
        assert_eq!(ids(&plan, &ws), ["c", "a", "c", "a"]);
        // a leaves: after a comes c again (b still full).
        ws.remove(0);
        let plan = planner.plan(Balancer::RoundRobin, &mut ws, &tasks(1));
        assert_eq!(ids(&plan, &ws), ["c"]);
    }

    #[test]
    fn tasks_that_cannot_be_placed_are_classified_even_when_all_are_full() {
        let mut ws = vec![worker("a", 1, 1), worker("b", 1, 1)];
        ws[0].held = 1;
        ws[1].held = 1;
        let mut t = tasks(3);
        t[0].executor = "nobody".into();
        t[2].balancer = Some(Balancer::ConsistentHash);
        let plan = Planner::default().plan(Balancer::LeastTasks, &mut ws, &t);
        assert!(plan.assign.is_empty());
        assert_eq!(plan.unroutable.len(), 1);
        assert_eq!(plan.unroutable[0].0, 0);
        assert_eq!(plan.busy, [1]);
        assert_eq!(plan.owner_busy.len(), 1);
        assert_eq!(plan.owner_busy[0].0, 2);
    }

    #[test]
    fn weighted_follows_weights() {
        let mut ws = vec![worker("a", 10_000, 1), worker("b", 10_000, 3)];
        let plan = Planner::default().plan(Balancer::Weighted, &mut ws, &tasks(400));
        assert_eq!(counts(&plan, 2), [100, 300]);
    }

    #[test]
    fn random_spreads() {
        let mut ws = vec![worker("a", 10_000, 1), worker("b", 10_000, 1)];
        let plan = Planner::default().plan(Balancer::Random, &mut ws, &tasks(2000));
        let c = counts(&plan, 2);
        assert!(c[0] > 800 && c[1] > 800, "{c:?}");
    }

    #[test]
    fn consistent_hash_is_sticky_and_moves_about_one_nth() {
        let ts = tasks(3000);
        let mut three: Vec<WorkerSlot> = ["a", "b", "c"]
            .iter()
            .map(|id| worker(id, 100_000, 1))
            .collect();
        let before = Planner::default().plan(Balancer::ConsistentHash, &mut three, &ts);
        let again = Planner::default().plan(Balancer::ConsistentHash, &mut three, &ts);
        let ids = |p: &Plan, ws: &[WorkerSlot]| -> Vec<String> {
            p.assign.iter().map(|&(_, w)| ws[w].id.clone()).collect()
        };
        assert_eq!(
            ids(&before, &three),
            ids(&again, &three),
            "same keys, same workers"
        );
        let mut four: Vec<WorkerSlot> = ["a", "b", "c", "d"]
            .iter()
            .map(|id| worker(id, 100_000, 1))
            .collect();
        let after = Planner::default().plan(Balancer::ConsistentHash, &mut four, &ts);
        let (b, a) = (ids(&before, &three), ids(&after, &four));
        let moved = b.iter().zip(&a).filter(|(x, y)| x != y).count();
        assert!(
            a.iter().zip(&b).all(|(x, y)| x == y || x == "d"),
            "keys only move to the new node"
        );
        let share = moved as f64 / ts.len() as f64;
        assert!(
            (0.18..0.32).contains(&share),
            "moved {share:.3}, expected about 1/4"
        );
    }

    #[test]
    fn consistent_hash_waits_for_a_full_owner() {
        let mut ws = vec![worker("a", 1, 1), worker("b", 1, 1)];
        let mut t = tasks(1);
        t.push(t[0].clone());
        let plan = Planner::default().plan(Balancer::ConsistentHash, &mut ws, &t);
        assert_eq!(
            plan.assign.len(),
            1,
            "the second task with the same key waits"
        );
        assert_eq!(plan.owner_busy, [(1, plan.assign[0].1)], "for its owner");
    }

    #[test]
    fn routing_by_executor_and_tags() {
        let mut ws = vec![worker("a", 10, 1), worker("b", 10, 1)];
        ws[1].executors.push("y".into());
        ws[1].tags.push("gpu".into());
        let mut t = tasks(3);
        t[0].executor = "y".into();
        t[1].tags = vec!["gpu".into()];
        t[2].executor = "z".into();
        let plan = Planner::default().plan(Balancer::LeastTasks, &mut ws, &t);
        assert_eq!(plan.assign, [(0, 1), (1, 1)]);
        assert_eq!(plan.unroutable.len(), 1);
        assert!(plan.unroutable[0].1.contains("`z`"));
    }
}
