//! One typed builder per Lua script: named fields in, KEYS and ARGV out.
//!
//! The order each builder sends is the order its script reads (the script's
//! header comment lists it, and the script names each value once at its
//! top), so no offset arithmetic lives anywhere. Every key a caller can
//! name goes into KEYS: the namespace's shared keys and the keys of the
//! node, jobs and parks a call acts for. Per-task keys (and workers found in
//! the registry index) are built inside the scripts from the namespace
//! prefix of `KEYS[1]` (`P.task .. id`, see `lua/lib.lua`), never from an ARGV
//! prefix, so on Redis Cluster a script runs on the shard of everything it
//! touches; `tests/script_keys.rs` checks it for every script with MONITOR.
//!
//! Builders run on the calling thread (every component that talks to Redis).

use redis::ScriptInvocation;

use super::{Fence, Keys, scripts};
use crate::dispatcher::RECOVERY_GRACE;
use crate::worker::LOG_CAP;

fn flag(on: bool) -> &'static str {
    if on { "1" } else { "" }
}

fn grace_ms() -> u64 {
    RECOVERY_GRACE.as_millis() as u64
}

/// `ACQUIRE`: take the leader lease (not fenced: it is how an epoch is got).
pub struct Acquire<'a> {
    /// The caller's node id.
    pub node: &'a str,
    /// Lease TTL, ms.
    pub ttl_ms: u64,
    /// The highest epoch the caller has seen (the epoch never goes below it).
    pub seen_epoch: u64,
}

impl Acquire<'_> {
    /// The script call. Reply: `(1, epoch, ttl)` won, `(0, pttl, epoch)` held.
    pub fn invocation(&self, keys: &Keys) -> ScriptInvocation<'static> {
        let mut inv = scripts::ACQUIRE.prepare_invoke();
        inv.key(keys.leader())
            .key(keys.epoch())
            .key(keys.leader_status())
            .key(keys.epoch_origin())
            .arg(self.node)
            .arg(self.ttl_ms)
            .arg(self.seen_epoch);
        inv
    }
}

/// `RENEW`: extend the lease held with `epoch`.
pub struct Renew<'a> {
    /// The caller's node id.
    pub node: &'a str,
    /// The epoch it holds the lease with.
    pub epoch: u64,
    /// Lease TTL, ms.
    pub ttl_ms: u64,
}

impl Renew<'_> {
    /// The script call. Reply: 1 renewed, 0 lost.
    pub fn invocation(&self, keys: &Keys) -> ScriptInvocation<'static> {
        let mut inv = scripts::RENEW.prepare_invoke();
        inv.key(keys.leader())
            .key(keys.epoch())
            .arg(self.node)
            .arg(self.epoch)
            .arg(self.ttl_ms);
        inv
    }
}

/// `RELEASE`: give the lease up and wake a standby.
pub struct Release<'a> {
    /// The caller's node id.
    pub node: &'a str,
    /// The epoch it holds the lease with.
    pub epoch: u64,
}

impl Release<'_> {
    /// The script call. Reply: 1 released, 0 not held.
    pub fn invocation(&self, keys: &Keys) -> ScriptInvocation<'static> {
        let mut inv = scripts::RELEASE.prepare_invoke();
        inv.key(keys.leader())
            .key(keys.epoch())
            .key(keys.leader_wake())
            .arg(self.node)
            .arg(self.epoch);
        inv
    }
}

/// `HEARTBEAT`: register or refresh a registry entry.
pub struct Heartbeat<'a> {
    /// Node id.
    pub node: &'a str,
    /// The entry's `info` JSON.
    pub info: &'a str,
    /// Entry TTL, ms (the heartbeat timeout).
    pub ttl_ms: u64,
    /// This process's instance id.
    pub instance: &'a str,
    /// The highest fencing epoch the node has seen (the stored epoch is
    /// raised to it).
    pub seen_epoch: u64,
}

impl Heartbeat<'_> {
    /// The script call. Reply: `(heartbeat ms, stored epoch)`, or error
    /// `NODE_ID_IN_USE pttl`.
    pub fn invocation(&self, keys: &Keys) -> ScriptInvocation<'static> {
        let mut inv = scripts::HEARTBEAT.prepare_invoke();
        inv.key(keys.nodes())
            .key(keys.node(self.node))
            .key(keys.wake())
            .key(keys.epoch())
            .arg(self.node)
            .arg(self.info)
            .arg(self.ttl_ms)
            .arg(self.instance)
            .arg(self.seen_epoch);
        inv
    }
}

/// `DEREGISTER`: remove this process's registry entry.
pub struct Deregister<'a> {
    /// Node id.
    pub node: &'a str,
    /// This process's instance id (a successor's entry is left alone).
    pub instance: &'a str,
}

impl Deregister<'_> {
    /// The script call. Reply: 1.
    pub fn invocation(&self, keys: &Keys) -> ScriptInvocation<'static> {
        let mut inv = scripts::DEREGISTER.prepare_invoke();
        inv.key(keys.nodes())
            .key(keys.node(self.node))
            .arg(self.node)
            .arg(self.instance);
        inv
    }
}

/// `RECOVER_TICK` (fenced): dead nodes, overdue tasks, the index trim.
pub struct RecoverTick<'a> {
    /// The leader's fence.
    pub fence: &'a Fence,
    /// A registry entry older than this is dead, ms.
    pub heartbeat_timeout_ms: u64,
    /// Ended-task retention, ms.
    pub retention_ms: u64,
    /// The most ended tasks kept.
    pub retention_count: u64,
    /// Random number in [0, 1), for retry jitter.
    pub rnd: f64,
    /// Most overdue tasks handled per tick.
    pub limit: usize,
}

impl RecoverTick<'_> {
    /// The script call. Reply: `(dead node ids, handed back, failed)`.
    pub fn invocation(&self, keys: &Keys) -> ScriptInvocation<'static> {
        let mut inv = self.fence.invoke(&scripts::RECOVER_TICK, keys);
        inv.key(keys.nodes())
            .key(keys.leader_status())
            .key(keys.running())
            .key(keys.pending())
            .key(keys.delayed())
            .key(keys.seq())
            .key(keys.wake())
            .key(keys.tasks())
            .key(keys.parks())
            .key(keys.trim())
            .key(keys.expiring())
            .arg(self.heartbeat_timeout_ms)
            .arg(self.retention_ms)
            .arg(self.retention_count)
            .arg(LOG_CAP)
            .arg(self.rnd)
            .arg(self.limit);
        inv
    }
}

/// `SUBMIT`: create a task. Built as plain KEYS and ARGV lists because
/// `Client::submit_many` pipelines many EVALSHAs of it.
pub struct Submit<'a> {
    /// Task id.
    pub id: &'a str,
    /// Not before this Unix ms (0: now).
    pub ready_ms: u64,
    /// Priority, -1000..1000.
    pub priority: i32,
    /// The idempotency key, if any.
    pub idempotency_key: Option<&'a str>,
    /// How long the idempotency key is kept, ms.
    pub key_ttl_ms: u64,
    /// The job whose active set tracks the task (forbid/replace jobs).
    pub track_in_job: Option<&'a str>,
    /// Delay counted from now on the Redis clock, ms (0: none).
    pub delay_ms: u64,
    /// Start-by deadline counted from the ready time, ms (0: none).
    pub expires_ms: u64,
    /// The record's field/value pairs.
    pub fields: Vec<(&'static str, String)>,
}

impl Submit<'_> {
    /// KEYS and ARGV of the call. Reply: `(1, id)` created, `(0, existing id)`.
    pub fn parts(&self, keys: &Keys) -> (Vec<String>, Vec<String>) {
        let k = vec![
            keys.task(self.id),
            keys.pending(),
            keys.delayed(),
            keys.wake(),
            keys.tasks(),
            keys.seq(),
            // Unused when absent, but always declared: the script's KEYS
            // keep one shape.
            keys.idempotency(self.idempotency_key.unwrap_or("")),
            keys.job_active(self.track_in_job.unwrap_or("")),
            keys.expiring(),
        ];
        let mut a = vec![
            self.id.to_string(),
            self.ready_ms.to_string(),
            self.priority.to_string(),
            flag(self.idempotency_key.is_some()).to_string(),
            self.key_ttl_ms.to_string(),
            flag(self.track_in_job.is_some()).to_string(),
            self.delay_ms.to_string(),
            self.expires_ms.to_string(),
        ];
        for (name, value) in &self.fields {
            a.push(name.to_string());
            a.push(value.clone());
        }
        (k, a)
    }
}

/// `DISPATCH_READ` (fenced): promote due tasks, read workers and heads.
pub struct DispatchRead<'a> {
    /// The leader's fence.
    pub fence: &'a Fence,
    /// Most tasks read from pending (and, apart, from parks).
    pub batch: usize,
    /// Most delayed tasks promoted.
    pub promote: usize,
    /// The leader's default balancer.
    pub balancer: &'a str,
}

impl DispatchRead<'_> {
    /// The script call; see `lua/dispatch_read.lua` for the reply.
    pub fn invocation(&self, keys: &Keys) -> ScriptInvocation<'static> {
        let mut inv = self.fence.invoke(&scripts::DISPATCH_READ, keys);
        inv.key(keys.delayed())
            .key(keys.pending())
            .key(keys.nodes())
            .key(keys.seq())
            .key(keys.wake())
            .key(keys.schedule())
            .key(keys.parks())
            .key(keys.backlogs())
            .arg(self.batch)
            .arg(self.promote)
            .arg(self.balancer);
        inv
    }
}

/// One assignment of a `DISPATCH_COMMIT` call.
pub struct Assignment<'a> {
    /// Task id.
    pub task: &'a str,
    /// Worker id.
    pub worker: &'a str,
    /// The worker's capacity.
    pub capacity: usize,
    /// Where the read found the task: a park key, or "" for pending.
    pub from: &'a str,
    /// The task's timeout, ms (as read).
    pub timeout_ms: &'a str,
    /// The task has a wait reason to clear.
    pub has_reason: bool,
}

/// `DISPATCH_COMMIT` (fenced): dispatch, park and put back.
pub struct DispatchCommit<'a> {
    /// The leader's fence.
    pub fence: &'a Fence,
    /// Tasks to dispatch.
    pub assign: Vec<Assignment<'a>>,
    /// (task id, park key, wait reason) of tasks to park.
    pub park: Vec<(&'a str, &'a str, &'a str)>,
    /// (park key, lowest score to put back, most tasks) of parks whose tasks
    /// go back to pending.
    pub put_back: Vec<(&'a str, &'a str, usize)>,
}

impl<'a> DispatchCommit<'a> {
    /// The script call. Park keys travel in KEYS (after the fixed ones) and
    /// ARGV names them by index; 0 stands for pending. The assigned
    /// workers' entries, held sets and queues follow them in KEYS. Reply: `(dispatched,
    /// parked, (put back, last score) per park put back)`.
    pub fn invocation(&self, keys: &Keys) -> ScriptInvocation<'static> {
        let mut inv = self.fence.invoke(&scripts::DISPATCH_COMMIT, keys);
        inv.key(keys.pending())
            .key(keys.running())
            .key(keys.parks());
        // KEYS so far: 3 fence keys + 3; Lua indexes from 1.
        let mut parks: Vec<&'a str> = Vec::new();
        let mut index = |park: &'a str| -> usize {
            if park.is_empty() {
                return 0;
            }
            let at = parks.iter().position(|p| *p == park).unwrap_or_else(|| {
                parks.push(park);
                parks.len() - 1
            });
            7 + at
        };
        let assign: Vec<usize> = self.assign.iter().map(|a| index(a.from)).collect();
        let park: Vec<usize> = self.park.iter().map(|p| index(p.1)).collect();
        let put_back: Vec<usize> = self.put_back.iter().map(|p| index(p.0)).collect();
        for p in &parks {
            inv.key(*p);
        }
        // The workers' entries, held sets and queues the script touches.
        let mut workers: Vec<&str> = self.assign.iter().map(|a| a.worker).collect();
        workers.sort_unstable();
        workers.dedup();
        for w in workers {
            inv.key(keys.node(w)).key(keys.held(w)).key(keys.queue(w));
        }
        inv.arg(grace_ms()).arg(self.assign.len());
        for (a, from) in self.assign.iter().zip(assign) {
            inv.arg(a.task)
                .arg(a.worker)
                .arg(a.capacity)
                .arg(from)
                .arg(a.timeout_ms)
                .arg(flag(a.has_reason));
        }
        inv.arg(self.park.len());
        for ((task, _, reason), at) in self.park.iter().zip(park) {
            inv.arg(*task).arg(at).arg(*reason);
        }
        for ((_, from, most), at) in self.put_back.iter().zip(put_back) {
            inv.arg(at).arg(*from).arg(*most);
        }
        inv
    }
}

/// `START`: claim queued items and mark them running.
pub struct Start<'a> {
    /// The worker's node id.
    pub node: &'a str,
    /// This process's instance id (another process under the id: refused).
    pub instance: &'a str,
    /// How many more items to pop from its queue.
    pub pop: usize,
    /// Items may already have been started by a call whose reply was lost.
    pub reclaim: bool,
    /// Items already popped (`id|attempt`).
    pub items: &'a [String],
}

impl Start<'_> {
    /// The script call; see `lua/start.lua` for the reply.
    pub fn invocation(&self, keys: &Keys) -> ScriptInvocation<'static> {
        let mut inv = scripts::START.prepare_invoke();
        inv.key(keys.queue(self.node))
            .key(keys.running())
            .key(keys.node(self.node))
            .arg(self.node)
            .arg(self.instance)
            .arg(self.pop)
            .arg(grace_ms())
            .arg(flag(self.reclaim))
            .arg(self.items);
        inv
    }
}

/// One attempt outcome of a `FINISH` call.
pub struct Outcome<'a> {
    /// Task id.
    pub task: &'a str,
    /// Attempt number.
    pub attempt: u32,
    /// `success`, `failed`, `timeout` or `cancelled`.
    pub kind: &'a str,
    /// Result JSON ("" for none).
    pub result: String,
    /// Error text ("" for success).
    pub error: &'a str,
    /// Random number in [0, 1), for retry jitter.
    pub rnd: f64,
    /// Log lines of the attempt.
    pub log: &'a [String],
}

/// What a worker can take in a `FINISH` refill.
pub struct RefillOffer<'a> {
    /// Its executors, comma list.
    pub executors: &'a str,
    /// Its tags, comma list.
    pub tags: &'a str,
    /// Refilled tasks to start at once (free pool threads); the rest queue.
    pub direct: usize,
}

/// `FINISH`: record outcomes, retry or end the tasks, refill free slots.
pub struct Finish<'a> {
    /// The worker's node id.
    pub node: &'a str,
    /// This process's instance id.
    pub instance: &'a str,
    /// The worker's capacity.
    pub capacity: usize,
    /// Ended-task retention, ms.
    pub retention_ms: u64,
    /// What the worker takes in a refill (None: no refill).
    pub refill: Option<RefillOffer<'a>>,
    /// The outcomes.
    pub outcomes: Vec<Outcome<'a>>,
}

impl Finish<'_> {
    /// The script call; see `lua/finish.lua` for the reply.
    pub fn invocation(&self, keys: &Keys) -> ScriptInvocation<'static> {
        let mut inv = scripts::FINISH.prepare_invoke();
        inv.key(keys.running())
            .key(keys.held(self.node))
            .key(keys.delayed())
            .key(keys.pending())
            .key(keys.wake())
            .key(keys.node(self.node))
            .key(keys.queue(self.node))
            .key(keys.backlogs())
            .arg(self.node)
            .arg(self.retention_ms)
            .arg(LOG_CAP)
            .arg(self.capacity)
            .arg(grace_ms())
            .arg(self.instance);
        match &self.refill {
            Some(r) => inv.arg(r.executors).arg(r.tags).arg(r.direct),
            None => inv.arg("").arg("").arg(0),
        };
        for o in &self.outcomes {
            inv.arg(o.task)
                .arg(o.attempt)
                .arg(o.kind)
                .arg(&o.result)
                .arg(o.error)
                .arg(o.rnd)
                .arg(o.log.len())
                .arg(o.log);
        }
        inv
    }
}

/// `CANCEL`: cancel a task wherever it is.
pub struct Cancel<'a> {
    /// Task id.
    pub id: &'a str,
    /// Ended-task retention, ms.
    pub retention_ms: u64,
}

impl Cancel<'_> {
    /// The script call. Reply: the status before ("" when no such task).
    pub fn invocation(&self, keys: &Keys) -> ScriptInvocation<'static> {
        let mut inv = scripts::CANCEL.prepare_invoke();
        inv.key(keys.pending())
            .key(keys.delayed())
            .key(keys.running())
            .arg(self.id)
            .arg(self.retention_ms)
            .arg(LOG_CAP);
        inv
    }
}

/// `REQUEUE`: worker shutdown, mark draining and hand queued items back.
pub struct Requeue<'a> {
    /// The worker's node id.
    pub node: &'a str,
    /// This process's instance id.
    pub instance: &'a str,
}

impl Requeue<'_> {
    /// The script call. Reply: tasks handed back.
    pub fn invocation(&self, keys: &Keys) -> ScriptInvocation<'static> {
        let mut inv = scripts::REQUEUE.prepare_invoke();
        inv.key(keys.node(self.node))
            .key(keys.queue(self.node))
            .key(keys.held(self.node))
            .key(keys.running())
            .key(keys.pending())
            .key(keys.seq())
            .key(keys.wake())
            .arg(self.node)
            .arg(self.instance);
        inv
    }
}

/// `WAIT_MARK`: mark a task as waited on and read it.
pub struct WaitMark<'a> {
    /// Task id.
    pub id: &'a str,
}

impl WaitMark<'_> {
    /// The script call. Reply: the record's fields (empty: no such task).
    pub fn invocation(&self, keys: &Keys) -> ScriptInvocation<'static> {
        let mut inv = scripts::WAIT_MARK.prepare_invoke();
        inv.key(keys.task(self.id));
        inv
    }
}

/// `STATS`: the cluster summary.
pub struct Stats;

impl Stats {
    /// The script call; see `lua/stats.lua` for the reply.
    pub fn invocation(&self, keys: &Keys) -> ScriptInvocation<'static> {
        let mut inv = scripts::STATS.prepare_invoke();
        inv.key(keys.pending())
            .key(keys.delayed())
            .key(keys.nodes())
            .key(keys.wake())
            .key(keys.tasks());
        inv
    }
}

/// `JOB_PUT`: store a job and (re)schedule it.
pub struct JobPut<'a> {
    /// Job id.
    pub id: &'a str,
    /// Its definition, JSON.
    pub json: &'a str,
    /// Fail if it exists (`create`) or not (`upsert`).
    pub create: bool,
    /// Next fire ms ("" = not scheduled).
    pub next_fire: &'a str,
    /// Cron + zone + enabled: unchanged, an upsert keeps the next fire time.
    pub schedule_key: &'a str,
}

impl JobPut<'_> {
    /// The script call. Reply: 1 created, 2 updated, 0 exists.
    pub fn invocation(&self, keys: &Keys) -> ScriptInvocation<'static> {
        let mut inv = scripts::JOB_PUT.prepare_invoke();
        inv.key(keys.jobs())
            .key(keys.schedule())
            .key(keys.job_state(self.id))
            .key(keys.wake())
            .arg(self.id)
            .arg(self.json)
            .arg(if self.create { "create" } else { "upsert" })
            .arg(self.next_fire)
            .arg(self.schedule_key);
        inv
    }
}

/// `JOB_RM`: remove a job.
pub struct JobRm<'a> {
    /// Job id.
    pub id: &'a str,
}

impl JobRm<'_> {
    /// The script call. Reply: 1 removed, 0 no such job.
    pub fn invocation(&self, keys: &Keys) -> ScriptInvocation<'static> {
        let mut inv = scripts::JOB_RM.prepare_invoke();
        inv.key(keys.jobs())
            .key(keys.schedule())
            .key(keys.job_state(self.id))
            .key(keys.job_history(self.id))
            .key(keys.job_active(self.id))
            .arg(self.id);
        inv
    }
}

/// `DUE_JOBS`: the jobs due now.
pub struct DueJobs {
    /// Most jobs returned.
    pub most: usize,
}

impl DueJobs {
    /// The script call. Reply: `(now, (id, slot, JSON)...)`.
    pub fn invocation(&self, keys: &Keys) -> ScriptInvocation<'static> {
        let mut inv = scripts::DUE_JOBS.prepare_invoke();
        inv.key(keys.schedule()).key(keys.jobs()).arg(self.most);
        inv
    }
}

/// One job of a `FIRE` call.
#[derive(Clone)]
pub struct FireJob<'a> {
    /// Job id.
    pub id: &'a str,
    /// The slot it was due at (its schedule score).
    pub due_at: i64,
    /// Its next slot (None: off the schedule).
    pub next: Option<i64>,
    /// Its concurrency policy.
    pub concurrency: &'a str,
    /// Slots skipped by the misfire policy.
    pub skipped: u64,
    /// Whether `skipped` is exact or a lower bound.
    pub skipped_exact: bool,
    /// Slots to fire.
    pub fire: Vec<i64>,
    /// Start-by deadline of its tasks, ms from their creation (0: none).
    pub expires_ms: u64,
    /// Field/value pairs of its tasks.
    pub fields: Vec<(&'static str, String)>,
}

/// `FIRE` (fenced): fire due jobs, exactly once per slot.
pub struct Fire<'a> {
    /// The leader's fence.
    pub fence: &'a Fence,
    /// Ended-task retention, ms (for tasks a `replace` job cancels).
    pub retention_ms: u64,
    /// The jobs.
    pub jobs: Vec<FireJob<'a>>,
}

impl Fire<'_> {
    /// The script call. Each job's state, history and active set travel in
    /// KEYS, in job order. Reply: tasks created.
    pub fn invocation(&self, keys: &Keys) -> ScriptInvocation<'static> {
        let mut inv = self.fence.invoke(&scripts::FIRE, keys);
        inv.key(keys.schedule())
            .key(keys.pending())
            .key(keys.delayed())
            .key(keys.running())
            .key(keys.wake())
            .key(keys.tasks())
            .key(keys.seq())
            .key(keys.expiring());
        for j in &self.jobs {
            inv.key(keys.job_state(j.id))
                .key(keys.job_history(j.id))
                .key(keys.job_active(j.id));
        }
        inv.arg(self.retention_ms).arg(LOG_CAP);
        for j in &self.jobs {
            inv.arg(j.id)
                .arg(j.due_at)
                .arg(j.next.map(|n| n.to_string()).unwrap_or_default())
                .arg(j.concurrency)
                .arg(j.skipped)
                .arg(if j.skipped_exact { "1" } else { "0" })
                .arg(j.expires_ms)
                .arg(j.fire.len())
                .arg(&j.fire)
                .arg(j.fields.len());
            for (k, v) in &j.fields {
                inv.arg(*k).arg(v);
            }
        }
        inv
    }
}

/// `JOB_MARK` (fenced): set or clear a job's broken mark.
pub struct JobMark<'a> {
    /// The leader's fence.
    pub fence: &'a Fence,
    /// Job id.
    pub id: &'a str,
    /// `record` or `firing`; `""` clears the mark.
    pub kind: &'a str,
    /// Why it is broken, one line.
    pub message: &'a str,
    /// Move the job's next fire time to this long from now (None: leave the
    /// schedule alone) ...
    pub retry_ms: Option<u64>,
    /// ... only if it still holds one of these scores.
    pub from: &'a [i64],
}

impl JobMark<'_> {
    /// The script call. Reply: 1 when the mark changed, else 0.
    pub fn invocation(&self, keys: &Keys) -> ScriptInvocation<'static> {
        let mut inv = self.fence.invoke(&scripts::JOB_MARK, keys);
        inv.key(keys.job_state(self.id))
            .key(keys.jobs_broken())
            .key(keys.schedule())
            .key(keys.job_history(self.id))
            .arg(self.id)
            .arg(self.kind)
            .arg(self.message)
            .arg(self.retry_ms.map(|r| r.to_string()).unwrap_or_default());
        for score in self.from {
            inv.arg(score);
        }
        inv
    }
}

/// One running (or just ended) attempt's output for a `LIVE` call.
pub struct LiveAttempt<'a> {
    /// Task id.
    pub task: &'a str,
    /// Attempt number.
    pub attempt: u32,
    /// Progress percent and text, if it changed.
    pub progress: Option<(u8, &'a str)>,
    /// Log lines since the last call.
    pub lines: &'a [String],
}

/// `LIVE`: write running attempts' log lines and progress.
pub struct Live<'a> {
    /// The worker's node id.
    pub node: &'a str,
    /// The attempts.
    pub attempts: Vec<LiveAttempt<'a>>,
}

impl Live<'_> {
    /// The script call. Reply: attempts written.
    pub fn invocation(&self, keys: &Keys) -> ScriptInvocation<'static> {
        let mut inv = scripts::LIVE.prepare_invoke();
        inv.key(keys.node(self.node)).arg(self.node).arg(LOG_CAP);
        for a in &self.attempts {
            let (percent, text) = match a.progress {
                Some((p, t)) => (p.to_string(), t),
                None => (String::new(), ""),
            };
            inv.arg(a.task)
                .arg(a.attempt)
                .arg(percent)
                .arg(text)
                .arg(a.lines.len())
                .arg(a.lines);
        }
        inv
    }
}

/// `SEARCH`: one chunk of the dashboard's task search.
pub struct Search<'a> {
    /// Where the last chunk stopped: its last id and score ("" = newest).
    pub cursor: (&'a str, &'a str),
    /// Index entries to examine.
    pub count: usize,
    /// Filters ("" = none): status, job, executor, worker, id prefix,
    /// payload substring, error substring, ended at or after (ms).
    pub filters: [&'a str; 8],
}

impl Search<'_> {
    /// The script call; see `lua/search.lua` for the reply.
    pub fn invocation(&self, keys: &Keys) -> ScriptInvocation<'static> {
        let mut inv = scripts::SEARCH.prepare_invoke();
        inv.key(keys.tasks())
            .arg(self.cursor.0)
            .arg(self.cursor.1)
            .arg(self.count);
        for f in self.filters {
            inv.arg(f);
        }
        inv
    }
}

/// `LOG_SINCE`: a task's log lines from an absolute line number on.
pub struct LogSince<'a> {
    /// Task id.
    pub id: &'a str,
    /// First line wanted.
    pub first: u64,
    /// Most lines returned.
    pub limit: usize,
}

impl LogSince<'_> {
    /// The script call; see `lua/log_since.lua` for the reply.
    pub fn invocation(&self, keys: &Keys) -> ScriptInvocation<'static> {
        let mut inv = scripts::LOG_SINCE.prepare_invoke();
        inv.key(keys.task(self.id))
            .key(keys.log(self.id))
            .arg(self.first)
            .arg(self.limit);
        inv
    }
}
