//! distsched: a distributed cron and task scheduler backed by Redis, in
//! synchronous Rust (OS threads, blocking Redis calls, crossbeam channels).
//!
//! Every process is a *node*. Scheduler nodes elect one *leader* through a
//! Redis lease with a fencing epoch; the leader alone does cluster-wide
//! writes, each checked against its epoch inside Lua. Every node registers
//! itself with heartbeats.
//!
//! ```no_run
//! use distsched::{Config, Node};
//!
//! let mut config = Config::default();
//! config.redis_url = "redis://127.0.0.1:6379".into();
//! let node = Node::start(config)?;
//! println!("leader: {}", node.is_leader());
//! node.shutdown();
//! # Ok::<(), distsched::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

// The public API: the modules an embedding program reads (settings and
// their parsers; executors to register) and the re-exports below.
pub mod config;
pub mod executor;

// Internals: the threads, the store, the leader's components. Reachable
// from outside only through [`internal`], which carries no stability
// promise.
pub(crate) mod client;
pub(crate) mod component;
pub(crate) mod error;
pub(crate) mod failpoints;
pub(crate) mod heartbeat;
pub(crate) mod http;
pub(crate) mod leader;
pub(crate) mod metrics;
pub(crate) mod model;
pub(crate) mod node;
pub(crate) mod schedule;
pub(crate) mod stats;
pub(crate) mod store;
pub(crate) mod supervisor;
pub(crate) mod worker;

pub(crate) use leader::{balancer, dispatcher, firing, recoverer, scheduler};

pub use balancer::Balancer;
pub use client::{
    Client, FailureGroup, Failures, Firing, JobPage, JobView, ListFilter, LogChunk, MinuteCounts,
    Submitted, TaskPage, TaskQuery, TaskRow, normalise_error,
};
pub use client::{
    HISTORY_MINUTES_MAX, JOB_PAGE_MAX, LOG_CHUNK_MAX, NEXT_FIRES_MAX, SEARCH_WINDOW_MAX,
};
pub use config::{Config, Role};
pub use error::{Error, Result};
pub use executor::{Executor, FnExecutor, Outcome, TaskContext, TaskResult};
pub use model::job::{BROKEN_RETRY, Concurrency, JobError, JobSpec, JobStatus};
pub use model::node::{LeaderStatus, NodeInfo, NodeStatus};
pub use model::task::{Attempt, Progress, Status, Task, TaskSpec};
pub use node::{Node, NodeBuilder, NodeHandle};
pub use schedule::Misfire;
pub use stats::ClusterStats;
pub use store::RedisOptions;
pub use supervisor::{ComponentHealth, Policy, State as ComponentState};

/// Not part of the API: what the `distsched` binary, the examples and the
/// test suite reach inside the crate for (key names, scripts, the
/// balancer's hash, cron schedules, HTTP limits). May change in any
/// release.
#[doc(hidden)]
pub mod internal {
    pub use crate::balancer::{can_run, rendezvous};
    pub use crate::recoverer::tick;
    pub use crate::schedule::Schedule;
    pub use crate::store::{Conn, Fence, Keys, Link, Store, calls, scripts};
    pub use crate::worker::{GAVE_UP, STOP_BOUND};

    /// The HTTP server's limits.
    pub mod http {
        pub use crate::http::*;
    }
}

/// A random number in `[0, 1)`, for jitter. Not for cryptography.
pub(crate) fn random_unit() -> f64 {
    (uuid::Uuid::new_v4().as_u128() >> 75) as f64 / (1u64 << 53) as f64
}
