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
use crate::store::{Conn, RedisOptions, Store, calls};

mod cluster;
mod jobs;
mod tasks;
mod views;

pub use views::{
    FailureGroup, Failures, Firing, JobPage, JobView, LogChunk, MinuteCounts, TaskPage, TaskQuery,
    TaskRow, normalise_error,
};
pub use views::{
    HISTORY_MINUTES_MAX, JOB_PAGE_MAX, LOG_CHUNK_MAX, NEXT_FIRES_MAX, SEARCH_WINDOW_MAX,
};

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
        Client::open_with(&RedisOptions::new(url), ns)
    }

    /// A client with explicit Redis settings: a sentinel password, or
    /// submits that wait for `wait_replicas` replicas (a submit they do not
    /// acknowledge fails with [`Error::NotReplicated`]; retry it with the
    /// same idempotency key). [`crate::Config::redis_options`] gives a
    /// node's.
    pub fn open_with(options: &RedisOptions, ns: &str) -> Result<Client> {
        let store = Store::open(options, ns)?;
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

    /// Checks that Redis answers.
    pub fn ping(&mut self) -> Result<()> {
        self.conn
            .run(|c| redis::cmd("PING").query::<String>(c))
            .map(drop)
    }
}
