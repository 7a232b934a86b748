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

pub mod balancer;
pub mod client;
pub mod component;
pub mod config;
pub mod dispatcher;
pub mod error;
pub mod executor;
pub mod firing;
pub mod heartbeat;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod model;
pub mod node;
pub mod recoverer;
pub mod schedule;
pub mod scheduler;
pub mod stats;
pub mod store;
pub mod worker;

pub use balancer::Balancer;
pub use client::Client;
pub use config::{Config, Role};
pub use error::{Error, Result};
pub use executor::{Executor, Outcome, TaskContext, TaskResult};
pub use model::job::{Concurrency, JobSpec, JobStatus};
pub use model::node::{LeaderStatus, NodeInfo, NodeStatus};
pub use model::task::{Attempt, Status, Task, TaskSpec};
pub use node::{Node, NodeBuilder, NodeHandle};
pub use schedule::Misfire;

/// A random number in `[0, 1)`, for jitter. Not for cryptography.
pub(crate) fn random_unit() -> f64 {
    (uuid::Uuid::new_v4().as_u128() >> 75) as f64 / (1u64 << 53) as f64
}
