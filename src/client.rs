//! [`Client`]: submit, inspect, wait for and cancel tasks, and read the
//! cluster's state, from any program or from the CLI, without running a
//! node. One client is one Redis connection; use one per thread.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::model::job::{Concurrency, JobSpec, JobStatus};
use crate::model::node::{LeaderStatus, NodeInfo, NodeStatus};
use crate::model::task::{Status, Task, TaskSpec};
use crate::stats::ClusterStats;
use crate::store::{Conn, Store, scripts};
use crate::worker::LOG_CAP;

/// A connection to one distsched namespace: submit, read, cancel and wait
/// for tasks; add, change, trigger and remove cron jobs; read the cluster.
/// Opens its Redis connection lazily and reconnects after errors.
///
/// ```no_run
/// use std::time::Duration;
/// use distsched::{Client, Status, TaskSpec};
///
/// let mut client = Client::open("redis://127.0.0.1:6379", "distsched")?;
/// let submitted = client.submit(&TaskSpec::new("report").with_key("report-2026-12-02"))?;
/// if let Some(task) = client.wait(&submitted.id, Duration::from_secs(60))? {
///     assert_eq!(task.status, Status::Success);
/// }
/// # Ok::<(), distsched::Error>(())
/// ```
pub struct Client {
    store: Store,
    conn: Conn,
    retention: Duration,
}

/// What [`Client::submit`] did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Submitted {
    /// The task's id (the earlier task's, when `created` is false).
    pub id: String,
    /// False when the idempotency key or the id already existed.
    pub created: bool,
}

/// Which tasks [`Client::list`] returns.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this status.
    pub status: Option<Status>,
    /// Only tasks of this job.
    pub job: Option<String>,
    /// At most this many (default 100 when 0).
    pub limit: usize,
}

/// Most index entries one listing reads, so a filter that matches little
/// cannot scan an unbounded history.
const LIST_SCAN_LIMIT: usize = 100_000;

impl Client {
    /// A client for Redis at `url`, namespace `ns`. Connects lazily; use
    /// [`Client::ping`] to check reachability up front.
    pub fn open(url: &str, ns: &str) -> Result<Client> {
        let store = Store::new(url, ns, Duration::from_secs(5))?;
        let conn = store.quiet_conn("client");
        Ok(Client {
            store,
            conn,
            retention: Duration::from_secs(7 * 86400),
        })
    }

    /// A client on an existing store (used by the leader to sync jobs).
    pub(crate) fn from_store(store: &Store) -> Client {
        Client {
            conn: store.quiet_conn("client"),
            store: store.clone(),
            retention: Duration::from_secs(7 * 86400),
        }
    }

    /// Sets how long idempotency keys and cancelled tasks are kept (default
    /// 7 days, like a node's `task_retention`).
    pub fn with_retention(mut self, retention: Duration) -> Client {
        self.retention = retention;
        self
    }

    /// Submits a task and wakes the leader. With an idempotency key that was
    /// used before (within the retention), creates nothing and returns the
    /// first task's id.
    pub fn submit(&mut self, spec: &TaskSpec) -> Result<Submitted> {
        let (keys, args) = self.submit_call(spec)?;
        let (created, id): (i64, String) = self.conn.run(|c| {
            let mut inv = scripts::SUBMIT.prepare_invoke();
            for k in &keys {
                inv.key(k);
            }
            for a in &args {
                inv.arg(a);
            }
            inv.invoke(c)
        })?;
        Ok(Submitted {
            id,
            created: created == 1,
        })
    }

    /// Submits many tasks in one pipelined round trip (plus one to load the
    /// script). Each task is created atomically on its own; the results are
    /// in the order of `specs`.
    pub fn submit_many(&mut self, specs: &[TaskSpec]) -> Result<Vec<Submitted>> {
        let calls = specs
            .iter()
            .map(|s| self.submit_call(s))
            .collect::<Result<Vec<_>>>()?;
        let replies: Vec<(i64, String)> = self.conn.run(|c| {
            let sha = scripts::SUBMIT.load(c)?;
            let mut pipe = redis::pipe();
            for (keys, args) in &calls {
                pipe.cmd("EVALSHA")
                    .arg(&sha)
                    .arg(keys.len())
                    .arg(keys)
                    .arg(args);
            }
            pipe.query(c)
        })?;
        Ok(replies
            .into_iter()
            .map(|(created, id)| Submitted {
                id,
                created: created == 1,
            })
            .collect())
    }

    /// The keys and arguments of one `SUBMIT` call.
    fn submit_call(&self, spec: &TaskSpec) -> Result<(Vec<String>, Vec<String>)> {
        spec.validate()?;
        let id = spec
            .id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        let k = &self.store.keys;
        let idem = spec.key.as_deref().map(|key| k.idempotency(key));
        let keys = vec![
            k.task(&id),
            k.pending(),
            k.delayed(),
            k.wake(),
            k.tasks(),
            k.seq(),
            idem.clone().unwrap_or_else(|| k.idempotency("")),
            k.job_active(spec.job.as_deref().unwrap_or("")),
        ];
        let mut args = vec![
            id.clone(),
            spec.not_before_ms.unwrap_or(0).to_string(),
            spec.priority.to_string(),
            if idem.is_some() { "1" } else { "" }.to_string(),
            self.retention.as_millis().to_string(),
            if spec.track_active { "1" } else { "" }.to_string(),
            spec.delay.map_or(0, |d| d.as_millis()).to_string(),
        ];
        for (name, value) in spec.fields(&id) {
            args.push(name.to_string());
            args.push(value);
        }
        Ok((keys, args))
    }

    /// The task `id`.
    pub fn task(&mut self, id: &str) -> Result<Task> {
        let key = self.store.keys.task(id);
        let fields: HashMap<String, String> = self
            .conn
            .run(|c| redis::cmd("HGETALL").arg(&key).query(c))?;
        Task::from_fields(fields)?.ok_or_else(|| Error::NotFound(format!("task {id}")))
    }

    /// Recent tasks, newest first, filtered.
    pub fn list(&mut self, filter: &ListFilter) -> Result<Vec<Task>> {
        let limit = if filter.limit == 0 { 100 } else { filter.limit };
        let keys = &self.store.keys;
        let mut out = Vec::new();
        let mut offset = 0usize;
        const PAGE: usize = 500;
        while out.len() < limit && offset < LIST_SCAN_LIMIT {
            let ids: Vec<String> = self.conn.run(|c| {
                redis::cmd("ZRANGE")
                    .arg(keys.tasks())
                    .arg(offset)
                    .arg(offset + PAGE - 1)
                    .arg("REV")
                    .query(c)
            })?;
            if ids.is_empty() {
                break;
            }
            offset += ids.len();
            let records: Vec<HashMap<String, String>> = self.conn.run(|c| {
                let mut pipe = redis::pipe();
                for id in &ids {
                    pipe.hgetall(keys.task(id));
                }
                pipe.query(c)
            })?;
            for fields in records {
                let Some(task) = Task::from_fields(fields)? else {
                    continue; // expired
                };
                if filter.status.is_some_and(|s| s != task.status)
                    || filter
                        .job
                        .as_ref()
                        .is_some_and(|j| task.job.as_ref() != Some(j))
                {
                    continue;
                }
                out.push(task);
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Cancels task `id`; returns its status before the call. A pending or
    /// delayed task is cancelled at once; a running one is stopped by its
    /// worker. Cancelling an ended task changes nothing.
    pub fn cancel(&mut self, id: &str) -> Result<Status> {
        let keys = &self.store.keys;
        let before: String = self.conn.run(|c| {
            scripts::CANCEL
                .key(keys.task(id))
                .key(keys.pending())
                .key(keys.delayed())
                .key(keys.running())
                .key(keys.log(id))
                .key(keys.done(id))
                .arg(id)
                .arg(keys.held_prefix())
                .arg(keys.control_prefix())
                .arg(self.retention.as_millis() as u64)
                .arg(LOG_CAP)
                .invoke(c)
        })?;
        if before.is_empty() {
            return Err(Error::NotFound(format!("task {id}")));
        }
        Status::parse(&before)
    }

    /// The task's log lines, oldest first.
    pub fn logs(&mut self, id: &str) -> Result<Vec<String>> {
        let keys = &self.store.keys;
        let (exists, lines): (bool, Vec<String>) = self.conn.run(|c| {
            redis::pipe()
                .exists(keys.task(id))
                .lrange(keys.log(id), 0, -1)
                .query(c)
        })?;
        if !exists && lines.is_empty() {
            return Err(Error::NotFound(format!("task {id}")));
        }
        Ok(lines)
    }

    /// Waits up to `timeout` for task `id` to end. Returns the ended task, or
    /// `None` if it is still going at the deadline. Blocks on a completion
    /// notice rather than polling.
    pub fn wait(&mut self, id: &str, timeout: Duration) -> Result<Option<Task>> {
        let deadline = Instant::now() + timeout;
        let keys = &self.store.keys;
        loop {
            let fields: HashMap<String, String> = self
                .conn
                .run(|c| scripts::WAIT_MARK.key(keys.task(id)).invoke(c))?;
            let task =
                Task::from_fields(fields)?.ok_or_else(|| Error::NotFound(format!("task {id}")))?;
            if task.status.is_terminal() {
                return Ok(Some(task));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            // Re-check at least every second, in case another waiter took
            // the notice.
            let block = left.min(Duration::from_secs(1));
            self.conn.run_blocking(block, |c| {
                redis::cmd("BLPOP")
                    .arg(keys.done(id))
                    .arg(block.as_secs_f64().max(0.01))
                    .query::<Option<(String, String)>>(c)
            })?;
        }
    }

    /// Checks that Redis answers.
    pub fn ping(&mut self) -> Result<()> {
        self.conn
            .run(|c| redis::cmd("PING").query::<String>(c))
            .map(drop)
    }

    /// Adds job `spec`. Fails with [`Error::Config`] when the definition is
    /// invalid (bad cron, time zone, executor name, …) or the id exists;
    /// nothing is stored then.
    pub fn add_job(&mut self, spec: &JobSpec) -> Result<()> {
        match self.put_job_mode(spec, "create")? {
            0 => Err(Error::Config(format!("job `{}` already exists", spec.id))),
            _ => Ok(()),
        }
    }

    /// Adds or replaces job `spec`; returns true if it was new. When the
    /// schedule (cron, time zone, enabled) is unchanged, the stored next fire
    /// time is kept.
    pub fn put_job(&mut self, spec: &JobSpec) -> Result<bool> {
        Ok(self.put_job_mode(spec, "upsert")? == 1)
    }

    fn put_job_mode(&mut self, spec: &JobSpec, mode: &str) -> Result<i64> {
        let schedule = spec.validate()?;
        let now = chrono::Utc::now().timestamp_millis();
        let next = match (&schedule, spec.enabled) {
            (Some(s), true) => s.next_after(now).map(|t| t.to_string()).unwrap_or_default(),
            _ => String::new(),
        };
        let schedule_key = format!(
            "{}|{}|{}",
            spec.cron.as_deref().unwrap_or(""),
            spec.timezone.as_deref().unwrap_or(""),
            spec.enabled
        );
        let json = serde_json::to_string(spec)?;
        let keys = &self.store.keys;
        self.conn.run(|c| {
            scripts::JOB_PUT
                .key(keys.jobs())
                .key(keys.schedule())
                .key(keys.job_state(&spec.id))
                .key(keys.wake())
                .arg(&spec.id)
                .arg(&json)
                .arg(mode)
                .arg(&next)
                .arg(&schedule_key)
                .invoke(c)
        })
    }

    /// Removes job `id` (its tasks run on).
    pub fn remove_job(&mut self, id: &str) -> Result<()> {
        let keys = &self.store.keys;
        let removed: i64 = self.conn.run(|c| {
            scripts::JOB_RM
                .key(keys.jobs())
                .key(keys.schedule())
                .key(keys.job_state(id))
                .key(keys.job_history(id))
                .key(keys.job_active(id))
                .arg(id)
                .invoke(c)
        })?;
        if removed == 0 {
            return Err(Error::NotFound(format!("job {id}")));
        }
        Ok(())
    }

    /// Enables or disables job `id`. Enabling schedules it from now on.
    pub fn set_job_enabled(&mut self, id: &str, enabled: bool) -> Result<()> {
        let mut spec = self.job(id)?.spec;
        spec.enabled = enabled;
        self.put_job(&spec).map(drop)
    }

    /// Job `id` with its next fire time and recent history.
    pub fn job(&mut self, id: &str) -> Result<JobStatus> {
        self.jobs_by_id(&[id.to_string()])?
            .pop()
            .ok_or_else(|| Error::NotFound(format!("job {id}")))
    }

    /// Every job, sorted by id.
    pub fn jobs(&mut self) -> Result<Vec<JobStatus>> {
        let keys = &self.store.keys;
        let mut ids: Vec<String> = self
            .conn
            .run(|c| redis::cmd("HKEYS").arg(keys.jobs()).query(c))?;
        ids.sort();
        self.jobs_by_id(&ids)
    }

    fn jobs_by_id(&mut self, ids: &[String]) -> Result<Vec<JobStatus>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys = &self.store.keys;
        let replies: Vec<redis::Value> = self.conn.run(|c| {
            let mut pipe = redis::pipe();
            for id in ids {
                pipe.hget(keys.jobs(), id)
                    .zscore(keys.schedule(), id)
                    .hgetall(keys.job_state(id))
                    .lrange(keys.job_history(id), 0, -1);
            }
            pipe.query(c)
        })?;
        let mut out = Vec::new();
        for r in replies.chunks(4) {
            let json: Option<String> = redis::from_redis_value(r[0].clone())?;
            let Some(json) = json else { continue };
            let next: Option<f64> = redis::from_redis_value(r[1].clone())?;
            let state: HashMap<String, String> = redis::from_redis_value(r[2].clone())?;
            let history: Vec<String> = redis::from_redis_value(r[3].clone())?;
            let count = |k: &str| state.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
            out.push(JobStatus {
                spec: serde_json::from_str(&json)?,
                next_fire_ms: next.map(|n| n as i64),
                history,
                skips: count("skips"),
                fired: count("fired"),
            });
        }
        Ok(out)
    }

    /// Runs job `id` now, outside its schedule (a new task id each time),
    /// with `payload` instead of the job's when given. The job's concurrency
    /// policy applies to later scheduled firings, which see this task.
    pub fn trigger_job(
        &mut self,
        id: &str,
        payload: Option<&serde_json::Value>,
    ) -> Result<Submitted> {
        let job = self.job(id)?.spec;
        let mut task = job.task_spec(None);
        if let Some(p) = payload {
            task.payload = p.to_string();
        }
        task.track_active = job.concurrency != Concurrency::Allow;
        self.submit(&task)
    }

    /// Who leads, or `None` when the lease is free.
    pub fn leader(&mut self) -> Result<Option<LeaderStatus>> {
        let keys = &self.store.keys;
        type Reply = (
            Option<String>,
            i64,
            Option<u64>,
            HashMap<String, String>,
            (u64, u64),
        );
        let (node, ttl_ms, epoch, status, now): Reply = self.conn.run(|c| {
            redis::pipe()
                .get(keys.leader())
                .pttl(keys.leader())
                .get(keys.epoch())
                .hgetall(keys.leader_status())
                .cmd("TIME")
                .query(c)
        })?;
        let Some(node) = node else {
            return Ok(None);
        };
        let epoch = epoch.unwrap_or(0);
        let now_ms = now.0 * 1000 + now.1 / 1000;
        let num = |k: &str| status.get(k).and_then(|v| v.parse::<u64>().ok());
        // Fields from an earlier term must not be shown as this term's.
        let of_term = |node_field: &str, epoch_field: &str| {
            status.get(node_field) == Some(&node) && num(epoch_field) == Some(epoch)
        };
        let elected_ms = if of_term("node", "epoch") {
            num("elected_ms")
        } else {
            None
        };
        let last_tick_age_ms = if of_term("tick_node", "tick_epoch") {
            num("tick_ms").map(|t| now_ms.saturating_sub(t))
        } else {
            None
        };
        Ok(Some(LeaderStatus {
            node,
            epoch,
            ttl_ms,
            elected_ms: elected_ms.unwrap_or(0),
            last_tick_age_ms,
        }))
    }

    /// A cluster summary: leader, live nodes and what they hold, live tasks
    /// by place, task rates over the last minute ([`ClusterStats`]). Costs
    /// four round trips, bounded by the live nodes and their tasks.
    pub fn stats(&mut self) -> Result<ClusterStats> {
        let leader = self.leader()?;
        let nodes = self.nodes()?;
        crate::stats::read(&self.store, &mut self.conn, leader, nodes)
    }

    /// True while node `node`'s registry entry exists and belongs to process
    /// `instance` (what `/ready` checks).
    pub(crate) fn is_registered(&mut self, node: &str, instance: &str) -> Result<bool> {
        let key = self.store.keys.node(node);
        let current: Option<String> = self
            .conn
            .run(|c| redis::cmd("HGET").arg(&key).arg("instance").query(c))?;
        Ok(current.as_deref() == Some(instance))
    }

    /// Live nodes (registry entry not expired), sorted by id.
    pub fn nodes(&mut self) -> Result<Vec<NodeStatus>> {
        let keys = &self.store.keys;
        let ids: Vec<String> = self.conn.run(|c| {
            redis::cmd("ZRANGE")
                .arg(keys.nodes())
                .arg(0)
                .arg(-1)
                .query(c)
        })?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let leader: Option<String> = self
            .conn
            .run(|c| redis::cmd("GET").arg(keys.leader()).query(c))?;
        let replies: Vec<redis::Value> = self.conn.run(|c| {
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.hgetall(keys.node(id)).pttl(keys.node(id));
            }
            pipe.query(c)
        })?;
        let mut entries = Vec::with_capacity(ids.len());
        for pair in replies.chunks(2) {
            let fields: HashMap<String, String> = redis::from_redis_value(pair[0].clone())?;
            let ttl_ms: i64 = redis::from_redis_value(pair[1].clone())?;
            entries.push((fields, ttl_ms));
        }
        let mut nodes = Vec::new();
        for (fields, ttl_ms) in entries {
            let (Some(info), Some(heartbeat_ms)) = (
                fields.get("info"),
                fields.get("heartbeat_ms").and_then(|v| v.parse().ok()),
            ) else {
                continue; // expired: the node is dead, the index entry stale
            };
            let info: NodeInfo = serde_json::from_str(info)?;
            let leader = leader.as_deref() == Some(info.id.as_str());
            nodes.push(NodeStatus {
                info,
                heartbeat_ms,
                ttl_ms,
                leader,
            });
        }
        nodes.sort_by(|a, b| a.info.id.cmp(&b.info.id));
        Ok(nodes)
    }
}
