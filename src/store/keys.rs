//! Every Redis key distsched uses, built in this one place.
//!
//! All keys share the prefix `{ns}:`; the braces are a Redis Cluster hash
//! tag, so every key of one namespace lives in one slot and multi-key Lua
//! scripts stay valid on a cluster.

// The part after the namespace of the keys scripts may also build at run
// time (see `DERIVED`).
const TASK: &str = "task:";
const LOG: &str = "log:";
const DONE: &str = "done:";
const NODE: &str = "node:";
const HELD: &str = "held:";
const QUEUE: &str = "queue:";
const CTL: &str = "ctl:";
const STATS: &str = "stats:";
const PARK: &str = "park:";

/// The kinds of key a script may build at run time from the namespace
/// prefix of its KEYS[1] (a task it picks from a ZSET, a worker it reads
/// from the registry index), as (Lua name, the kind's part of the key).
/// `scripts.rs` hands this table to every script as `P.<name>` (the full
/// prefix), so each format has this one definition.
pub(crate) const DERIVED: [(&str, &str); 9] = [
    ("task", TASK),
    ("log", LOG),
    ("done", DONE),
    ("node", NODE),
    ("held", HELD),
    ("queue", QUEUE),
    ("ctl", CTL),
    ("stats", STATS),
    ("park", PARK),
];

/// Key builder for one namespace.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under namespace `ns` (prefix `{ns}:`).
    pub fn new(ns: &str) -> Keys {
        Keys {
            prefix: format!("{{{ns}}}:"),
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// STRING: id of the node holding the leader lease (PX = lease TTL).
    pub fn leader(&self) -> String {
        self.key("leader")
    }

    /// STRING counter: the fencing epoch, raised on every acquisition.
    pub fn epoch(&self) -> String {
        self.key("epoch")
    }

    /// STRING: the replication id of the server that issued the last epoch;
    /// an acquire on a server with another id (a promoted replica, a
    /// restarted server) moves the epoch past any it may have lost.
    pub fn epoch_origin(&self) -> String {
        self.key("epoch:origin")
    }

    /// HASH: `node`, `epoch`, `elected_ms` of the current term, and
    /// `tick_node`, `tick_epoch`, `tick_ms` of the last fenced leader write.
    pub fn leader_status(&self) -> String {
        self.key("leader:status")
    }

    /// LIST: released-lease notices; standbys BLPOP it to take over at once.
    pub fn leader_wake(&self) -> String {
        self.key("leader:wake")
    }

    /// STRING counter: fenced writes refused because the caller's epoch or
    /// owner was stale (each one is a zombie leader caught).
    pub fn fence_rejected(&self) -> String {
        self.key("fence:rejected")
    }

    /// ZSET: node id → last heartbeat (Redis time, ms). The registry index.
    pub fn nodes(&self) -> String {
        self.key("nodes")
    }

    /// Prefix of the per-node entries.
    fn node_prefix(&self) -> String {
        self.key(NODE)
    }

    /// HASH: one node's entry (`info` JSON, `heartbeat_ms`, `instance`),
    /// PX = heartbeat timeout.
    pub fn node(&self, id: &str) -> String {
        format!("{}{id}", self.node_prefix())
    }

    /// HASH: the waiting-task sources (`pending`, executor parks; field = the
    /// key, value = the leader's default balancer) holding more tasks than
    /// the workers able to run them have free slots, as of the leader's last
    /// dispatch read. Workers refill freed slots only from these (see
    /// `lua/finish.lua`).
    pub fn backlogs(&self) -> String {
        self.key("backlogs")
    }

    /// LIST: a node's control list. Stopping a blocking loop pushes to it so
    /// the loop's BLPOP returns at once instead of at its timeout.
    pub fn control(&self, node: &str, component: &str) -> String {
        format!("{}{node}:{component}", self.control_prefix())
    }

    /// HASH: one task's record (fields of `model::task::Task`); PX =
    /// retention once it has ended.
    pub fn task(&self, id: &str) -> String {
        format!("{}{id}", self.task_prefix())
    }

    /// Prefix of task records (scripts build the same with `P.task`).
    pub fn task_prefix(&self) -> String {
        self.key(TASK)
    }

    /// LIST: one task's log lines (capped), same retention as the task.
    pub fn log(&self, id: &str) -> String {
        format!("{}{id}", self.log_prefix())
    }

    /// Prefix of task logs.
    fn log_prefix(&self) -> String {
        self.key(LOG)
    }

    /// LIST: completion notice for a task someone waits on (short TTL).
    pub fn done(&self, id: &str) -> String {
        format!("{}{id}", self.done_prefix())
    }

    /// Prefix of completion notices.
    fn done_prefix(&self) -> String {
        self.key(DONE)
    }

    /// ZSET: tasks ready to dispatch; score = priority band + sequence, so
    /// the lowest score is the highest priority, first in.
    pub fn pending(&self) -> String {
        self.key("pending")
    }

    /// ZSET: pending tasks parked out of the dispatcher's scan because no
    /// live worker can take them now (same scores as `pending`). One per
    /// executor and tag set (`park:exec:{executor}|{tag,tag}`, tags sorted):
    /// no capable worker, or all of them full. The dispatcher reads a park
    /// only as far as its capable workers have free slots.
    pub fn park_for(&self, executor: &str, tags: &[String]) -> String {
        let mut tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        tags.sort_unstable();
        tags.dedup();
        format!("{}exec:{executor}|{}", self.park_prefix(), tags.join(","))
    }

    /// ZSET: `consistent-hash` tasks parked while their owner is full
    /// (`park:node:{id}`); read as far as that worker has free slots.
    pub fn park_for_node(&self, node: &str) -> String {
        format!("{}node:{node}", self.park_prefix())
    }

    /// Prefix of parks; `park_target` in `lua/lib.lua` decodes what a park
    /// waits for from the rest of its key.
    fn park_prefix(&self) -> String {
        self.key(PARK)
    }

    /// SET: every park key that may hold tasks (emptied ones are dropped
    /// lazily by the dispatcher).
    pub fn parks(&self) -> String {
        self.key("parks")
    }

    /// ZSET: tasks waiting for a time (delay, `--at`, retry backoff) → ready ms.
    pub fn delayed(&self) -> String {
        self.key("delayed")
    }

    /// ZSET: dispatched tasks (queued on a worker or running) → deadline ms.
    pub fn running(&self) -> String {
        self.key("running")
    }

    /// LIST: a worker's queue of `id|attempt` items; the worker pops it.
    pub fn queue(&self, node: &str) -> String {
        format!("{}{node}", self.queue_prefix())
    }

    /// Prefix of worker queues.
    fn queue_prefix(&self) -> String {
        self.key(QUEUE)
    }

    /// SET: tasks a worker holds (queued + running): its load.
    pub fn held(&self, node: &str) -> String {
        format!("{}{node}", self.held_prefix())
    }

    /// Prefix of worker load sets.
    fn held_prefix(&self) -> String {
        self.key(HELD)
    }

    /// LIST: wake-up notices for the leader's scheduler thread.
    pub fn wake(&self) -> String {
        self.key("wake")
    }

    /// ZSET: every task id → creation ms, for listing (trimmed by retention).
    pub fn tasks(&self) -> String {
        self.key("tasks")
    }

    /// ZSET: tasks with a start-by deadline → that deadline (ms); the
    /// recoverer cancels those not started by then.
    pub fn expiring(&self) -> String {
        self.key("expiring")
    }

    /// HASH: the listing index's trim (`cursor`: the score it walks on
    /// from, `lap_ms`: when its last lap began); see `lua/recover_tick.lua`.
    pub fn trim(&self) -> String {
        self.key("trim")
    }

    /// STRING counter: submission sequence, for FIFO order within a priority.
    pub fn seq(&self) -> String {
        self.key("seq")
    }

    /// STRING: idempotency key → the task id it created.
    pub fn idempotency(&self, key: &str) -> String {
        self.key(&format!("idem:{key}"))
    }

    /// HASH: job id → job definition (JSON).
    pub fn jobs(&self) -> String {
        self.key("jobs")
    }

    /// SET: ids of the jobs the leader marked broken (a stored record that
    /// does not parse, or a firing that fails); the mark itself is in the
    /// job's state hash (`error`, `error_kind`, `error_ms`).
    pub fn jobs_broken(&self) -> String {
        self.key("jobs:broken")
    }

    /// ZSET: job id → next fire time (ms). Only enabled cron jobs are in it.
    pub fn schedule(&self) -> String {
        self.key("schedule")
    }

    /// HASH: a job's firing state (`fired`, `skips`, `last_fire_ms`,
    /// `last_task`, `schedule_key`).
    pub fn job_state(&self, id: &str) -> String {
        format!("{}{id}", self.job_state_prefix())
    }

    /// Prefix of job states.
    fn job_state_prefix(&self) -> String {
        self.key("job:")
    }

    /// LIST: a job's recent events, newest first (capped).
    pub fn job_history(&self, id: &str) -> String {
        format!("{}{id}", self.job_history_prefix())
    }

    /// Prefix of job histories.
    fn job_history_prefix(&self) -> String {
        self.key("jobhist:")
    }

    /// SET: a `forbid`/`replace` job's tasks that may still be active.
    pub fn job_active(&self, id: &str) -> String {
        format!("{}{id}", self.job_active_prefix())
    }

    /// Prefix of job active sets.
    fn job_active_prefix(&self) -> String {
        self.key("jobactive:")
    }

    /// HASH per minute of Redis time (`minute` = Unix ms / 60000): attempts
    /// ended by workers' results in that minute, counted by the `FINISH`
    /// script (`success`, `failed` = tasks ended failed, `retried`,
    /// `timeout`); read by `stats` for rates and by the dashboard's 24-hour chart. PX 24 h
    /// + 1 min (a whole day of minutes is always there).
    pub fn stats_minute(&self, minute: u64) -> String {
        format!("{}{minute}", self.stats_prefix())
    }

    /// Prefix of the per-minute counters.
    fn stats_prefix(&self) -> String {
        self.key(STATS)
    }

    /// Prefix of control lists (`ctl:{node}:{component}`).
    fn control_prefix(&self) -> String {
        self.key(CTL)
    }
}
