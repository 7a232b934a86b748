//! A node's registry record: what it advertises in its heartbeat, and what
//! `distsched workers` reads back.

use serde::{Deserialize, Serialize};

use crate::config::Role;

/// What a node advertises in the registry. Written as JSON in the `info`
/// field of its `node:{id}` hash by every heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Node id.
    pub id: String,
    /// Host name of the machine or pod.
    pub host: String,
    /// Operating-system process id.
    pub pid: u32,
    /// Role the node runs.
    pub role: Role,
    /// Most tasks the node holds at once (0 for scheduler-only nodes).
    pub capacity: usize,
    /// Tasks running right now.
    pub running: usize,
    /// Executors the node offers.
    pub executors: Vec<String>,
    /// Routing tags.
    pub tags: Vec<String>,
    /// Weight for the weighted balancer.
    pub weight: u32,
    /// distsched version.
    pub version: String,
    /// Start time, Unix ms.
    pub started_ms: u64,
}

/// A live node as listed by [`crate::Client::nodes`]: its advertised info
/// plus what Redis knows of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// What the node advertises.
    #[serde(flatten)]
    pub info: NodeInfo,
    /// Last heartbeat, Unix ms (Redis clock).
    pub heartbeat_ms: u64,
    /// Time left before the entry expires and the node counts as dead.
    pub ttl_ms: i64,
    /// True if this node holds the leader lease.
    pub leader: bool,
    /// True once the node stopped taking tasks (it is shutting down).
    #[serde(default)]
    pub draining: bool,
}

/// Who leads, as listed by [`crate::Client::leader`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaderStatus {
    /// Leader node id.
    pub node: String,
    /// Fencing epoch of its term.
    pub epoch: u64,
    /// Lease time left, ms.
    pub ttl_ms: i64,
    /// When this term began, Unix ms (Redis clock).
    pub elected_ms: u64,
    /// Age of the leader's last fenced write (recoverer tick), ms, if any.
    pub last_tick_age_ms: Option<u64>,
}
