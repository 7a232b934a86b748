//! [`Probe`]: a test's own Redis connection that reads what the cluster
//! wrote (leader, epoch, task and job records), retrying across restarts.

use std::collections::BTreeMap;
use std::time::Duration;

use distsched::internal::{Conn, Keys, Link, Store};

/// One Redis view of a namespace, with typed getters for the keys the tests
/// sample. Reconnects after an error (a restarted server, say).
pub struct Probe {
    pub keys: Keys,
    conn: Conn,
}

impl Probe {
    /// A probe of namespace `ns` at `url` (any URL a node takes: through a
    /// Sentinel URL it follows the master across failovers).
    pub fn new(url: &str, ns: &str) -> Probe {
        let store = Store::new(url, ns, Duration::from_secs(2)).expect("probe url");
        Probe {
            keys: Keys::new(ns),
            conn: store.quiet_conn("probe"),
        }
    }

    /// Runs `f` on the connection; `None` on any error (a lost connection
    /// is opened again next time).
    pub fn try_run<T>(
        &mut self,
        f: impl FnOnce(&mut Link<'_>) -> redis::RedisResult<T>,
    ) -> Option<T> {
        self.conn.run(f).ok()
    }

    /// Like [`Probe::try_run`], retrying once on a new connection (the
    /// server may have been restarted since the last call); panics if that
    /// fails too. Only for idempotent calls.
    pub fn run<T>(&mut self, mut f: impl FnMut(&mut Link<'_>) -> redis::RedisResult<T>) -> T {
        let mut error = None;
        for _ in 0..2 {
            let value = self.try_run(|c| {
                f(c).inspect_err(|e| {
                    error = Some(e.to_string());
                })
            });
            if let Some(value) = value {
                return value;
            }
        }
        panic!("redis call failed: {error:?}")
    }

    /// `{ns}:leader`: the lease holder.
    pub fn leader(&mut self) -> Option<String> {
        let key = self.keys.leader();
        self.run(|c| redis::cmd("GET").arg(&key).query(c))
    }

    /// `{ns}:epoch`: the fencing epoch.
    pub fn epoch(&mut self) -> Option<u64> {
        let key = self.keys.epoch();
        self.run(|c| redis::cmd("GET").arg(&key).query(c))
    }

    /// Leader, epoch and the `leader:status` hash, read atomically.
    pub fn snapshot(&mut self) -> Snapshot {
        let keys = self.keys.clone();
        let (leader, epoch, status, time): SnapshotReply = self.run(|c| {
            redis::pipe()
                .atomic()
                .get(keys.leader())
                .get(keys.epoch())
                .hgetall(keys.leader_status())
                .cmd("TIME")
                .query(c)
        });
        Snapshot {
            leader,
            epoch,
            status,
            now_ms: time.0 * 1000 + time.1 / 1000,
        }
    }

    /// `{ns}:fence:rejected`.
    pub fn fence_rejected(&mut self) -> u64 {
        let key = self.keys.fence_rejected();
        let v: Option<u64> = self.run(|c| redis::cmd("GET").arg(&key).query(c));
        v.unwrap_or(0)
    }

    /// Members of the `{ns}:nodes` index.
    pub fn indexed_nodes(&mut self) -> Vec<String> {
        let key = self.keys.nodes();
        self.run(|c| redis::cmd("ZRANGE").arg(&key).arg(0).arg(-1).query(c))
    }

    /// True if `{ns}:node:{id}` exists.
    pub fn node_entry_exists(&mut self, id: &str) -> bool {
        let key = self.keys.node(id);
        self.run(|c| redis::cmd("EXISTS").arg(&key).query::<i64>(c)) == 1
    }
    /// Redis `TIME`, Unix ms (the clock every task time is taken from).
    pub fn time_ms(&mut self) -> i64 {
        let (s, us): (i64, i64) = self.run(|c| redis::cmd("TIME").query(c));
        s * 1000 + us / 1000
    }

    /// Every task of job `job` still in the listing index, read atomically,
    /// ordered by slot (triggered tasks, without a slot, first) then
    /// creation.
    pub fn job_tasks(&mut self, job: &str) -> Vec<JobTask> {
        let script = redis::Script::new(JOB_TASKS_LUA);
        let (index, prefix) = (self.keys.tasks(), self.keys.task_prefix());
        let rows: Vec<Vec<String>> =
            self.run(|c| script.key(&index).arg(&prefix).arg(job).invoke(c));
        let opt = |s: &str| s.parse::<i64>().ok();
        let mut tasks: Vec<JobTask> = rows
            .into_iter()
            .map(|r| JobTask {
                id: r[0].clone(),
                slot_ms: opt(&r[1]),
                status: r[2].clone(),
                created_ms: opt(&r[3]).unwrap_or(0),
                started_ms: opt(&r[4]),
                ended_ms: opt(&r[5]),
                payload: r[6].clone(),
                worker: (!r[7].is_empty()).then(|| r[7].clone()),
            })
            .collect();
        tasks.sort_by_key(|t| (t.slot_ms, t.created_ms));
        tasks
    }

    /// The `status` field of each task in `ids` (`None`: no such record),
    /// read in one pipeline.
    pub fn statuses(&mut self, ids: &[String]) -> Vec<Option<String>> {
        let keys = self.keys.clone();
        self.run(|c| {
            let mut pipe = redis::pipe();
            for id in ids {
                pipe.hget(keys.task(id), "status");
            }
            pipe.query(c)
        })
    }

    /// `ZCARD key`.
    pub fn zcard(&mut self, key: &str) -> u64 {
        self.run(|c| redis::cmd("ZCARD").arg(key).query(c))
    }

    /// `SCARD key`.
    pub fn scard(&mut self, key: &str) -> u64 {
        self.run(|c| redis::cmd("SCARD").arg(key).query(c))
    }

    /// `LLEN key`.
    pub fn llen(&mut self, key: &str) -> u64 {
        self.run(|c| redis::cmd("LLEN").arg(key).query(c))
    }

    /// Tasks waiting in `pending`.
    pub fn pending(&mut self) -> u64 {
        let key = self.keys.pending();
        self.zcard(&key)
    }

    /// Tasks dispatched and not ended (`running`: queued or running).
    pub fn in_flight(&mut self) -> u64 {
        let key = self.keys.running();
        self.zcard(&key)
    }

    /// Tasks worker `node` holds (queued + running).
    pub fn held(&mut self, node: &str) -> u64 {
        let key = self.keys.held(node);
        self.scard(&key)
    }

    /// Every task id in the listing index.
    pub fn task_count(&mut self) -> u64 {
        let key = self.keys.tasks();
        self.zcard(&key)
    }
}

type SnapshotReply = (
    Option<String>,
    Option<u64>,
    BTreeMap<String, String>,
    (u64, u64),
);

/// Leader state read in one MULTI.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub leader: Option<String>,
    pub epoch: Option<u64>,
    pub status: BTreeMap<String, String>,
    /// Redis `TIME`, ms.
    pub now_ms: u64,
}

impl Snapshot {
    fn num(&self, field: &str) -> Option<u64> {
        self.status.get(field).and_then(|v| v.parse().ok())
    }

    /// `(tick_node, tick_epoch)` of the last fenced leader write.
    pub fn tick(&self) -> Option<(String, u64)> {
        Some((
            self.status.get("tick_node")?.clone(),
            self.num("tick_epoch")?,
        ))
    }

    pub fn tick_ms(&self) -> Option<u64> {
        self.num("tick_ms")
    }

    /// `(node, epoch)` of the current term as recorded on election.
    pub fn term(&self) -> Option<(String, u64)> {
        Some((self.status.get("node")?.clone(), self.num("epoch")?))
    }
}

/// One task of a job as stored in its `task:{id}` hash, read raw so that
/// fields the [`distsched::Task`] view leaves out (`slot_ms`) are seen too.
/// Times are Redis-clock Unix ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobTask {
    pub id: String,
    /// The firing's slot; `None` for a task made by `job trigger`.
    pub slot_ms: Option<i64>,
    pub status: String,
    pub created_ms: i64,
    pub started_ms: Option<i64>,
    pub ended_ms: Option<i64>,
    pub payload: String,
    pub worker: Option<String>,
}

impl JobTask {
    pub fn is_active(&self) -> bool {
        matches!(self.status.as_str(), "pending" | "running" | "retrying")
    }
}

/// Reads every listed task of one job in a single script run, so a sample
/// is one consistent instant of Redis (test-only Lua, not a distsched
/// script).
pub const JOB_TASKS_LUA: &str = r"
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local f = redis.call('HMGET', ARGV[1] .. id, 'job', 'slot_ms', 'status',
    'created_ms', 'started_ms', 'ended_ms', 'payload', 'worker')
  if f[1] == ARGV[2] then
    out[#out + 1] = {id, f[2] or '', f[3] or '', f[4] or '', f[5] or '',
      f[6] or '', f[7] or '', f[8] or ''}
  end
end
return out
";
