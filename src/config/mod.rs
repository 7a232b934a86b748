//! Node configuration: the [`Config`] a node runs with, its defaults and
//! its redacted `Debug`. Used by the main thread at start; no thread of
//! its own.
//!
//! Every setting has one name (`lease_ttl`) used in three places: the JSON
//! config file key, the environment variable (`DISTSCHED_LEASE_TTL`) and the
//! flag (`--lease-ttl`). `settings.rs` lists them ([`SETTINGS`]) with their
//! defaults; the README's configuration table is written from it.
//! `load.rs` merges the sources (defaults ← file ← environment ← flags) and
//! validates; `parse.rs` holds the value parsers the CLI uses too.

mod load;
mod parse;
mod settings;

pub use parse::{
    env_name, format_duration, parse_bool, parse_builtin, parse_duration, parse_http_addr,
    redact_url,
};
pub use settings::{SETTINGS, Setting};

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::balancer::Balancer;
use crate::executor::BUILTINS;
use crate::executor::http::AllowedHost;
use crate::executor::shell::TaskEnv;

/// What a node runs: the scheduler role (leader election, dispatch, cron,
/// recovery), the worker role (heartbeat-registered executor pool), or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Scheduler and worker (the default).
    Both,
    /// Takes part in leader election only; runs no tasks.
    Scheduler,
    /// Runs tasks only; never leads.
    Worker,
}

impl Role {
    /// True if this role takes part in leader election.
    pub fn schedules(self) -> bool {
        matches!(self, Role::Both | Role::Scheduler)
    }

    /// True if this role runs tasks.
    pub fn works(self) -> bool {
        matches!(self, Role::Both | Role::Worker)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Both => "both",
            Role::Scheduler => "scheduler",
            Role::Worker => "worker",
        })
    }
}

/// A secret setting (`http_token`): its `Debug` output is redacted, so
/// printing a [`Config`] cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A node's configuration. Build it with [`Config::default`] and the
/// setters, or with [`Config::set`] from text; check it with
/// [`Config::validate`] (done by `Node::start`). Its `Debug` output
/// redacts the Redis password and the tokens.
#[derive(Clone)]
pub struct Config {
    /// Redis URL. Default `redis://127.0.0.1:6379`.
    pub redis_url: String,
    /// Key namespace. Default `distsched`.
    pub namespace: String,
    /// Node id. Default `<hostname>-<8 random hex digits>`.
    pub node_id: String,
    /// Role. Default [`Role::Both`].
    pub role: Role,
    /// Worker pool size and most tasks held at once. Default 10.
    pub capacity: usize,
    /// Worker tags used for routing. Default none.
    pub tags: Vec<String>,
    /// Weight for the weighted balancer. Default 1.
    pub weight: u32,
    /// Leader lease TTL. Default 10 s.
    pub lease_ttl: Duration,
    /// Leader lease renew interval. Default 3 s.
    pub renew_interval: Duration,
    /// Heartbeat interval. Default 10 s.
    pub heartbeat_interval: Duration,
    /// Registry entry TTL: a node silent this long is dead. Default 30 s.
    pub heartbeat_timeout: Duration,
    /// Recoverer tick. Default 1 s.
    pub recover_interval: Duration,
    /// Timeout of non-blocking Redis calls. Default 5 s.
    pub redis_timeout: Duration,
    /// Password of the sentinels of a Sentinel URL. Default none.
    pub sentinel_password: Option<Secret>,
    /// Replicas that must acknowledge a lease acquire, a firing and a
    /// submit (`WAIT`). Default 0: no `WAIT`.
    pub redis_wait_replicas: u32,
    /// How long that `WAIT` waits. Default 1 s.
    pub redis_wait_timeout: Duration,
    /// Balancer the leader uses for tasks that name none. Default
    /// least-tasks.
    pub balancer: Balancer,
    /// Declared shell executors: name → command line (split into argv, no
    /// shell). Default none.
    pub exec: Vec<(String, String)>,
    /// Offer the ad hoc `shell` executor. Default false.
    pub allow_adhoc_shell: bool,
    /// Which of the node's environment variables shell tasks get. Default
    /// [`TaskEnv::Inherit`]: all but `DISTSCHED_*` and secret-holding ones.
    pub task_env: TaskEnv,
    /// The built-in executors offered, from [`BUILTINS`]. Default all of
    /// them (`noop`, `http`, `rpc`). Declared commands and ad hoc `shell`
    /// follow `exec` and `allow_adhoc_shell` instead.
    pub builtin: Vec<String>,
    /// Hosts the `http` and `rpc` executors may call. Default empty: any
    /// host, redirects followed; when set, redirects are not followed.
    pub http_allow: Vec<AllowedHost>,
    /// Shutdown grace for running tasks. Default 30 s.
    pub shutdown_grace: Duration,
    /// Retention of ended tasks and logs. Default 7 days.
    pub task_retention: Duration,
    /// The most ended tasks kept (with their logs), oldest dropped first,
    /// whatever their age. Default 100,000.
    pub task_retention_count: u64,
    /// Where the HTTP server listens. Default none: no server.
    pub http_addr: Option<SocketAddr>,
    /// Bearer token the HTTP API requires (not `/health`, `/ready`).
    /// Default none: no authentication.
    pub http_token: Option<Secret>,
    /// Bearer token for the read-only routes (`GET`, `HEAD`); a write with
    /// it gets 403. Needs `http_token`. Default none.
    pub http_read_token: Option<Secret>,
    /// Let `http_addr` listen beyond the loopback without `http_token`.
    /// Default false: such a node refuses to start.
    pub http_insecure: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            redis_url: "redis://127.0.0.1:6379".into(),
            namespace: "distsched".into(),
            node_id: default_node_id(),
            role: Role::Both,
            capacity: 10,
            tags: Vec::new(),
            weight: 1,
            lease_ttl: Duration::from_secs(10),
            renew_interval: Duration::from_secs(3),
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_timeout: Duration::from_secs(30),
            recover_interval: Duration::from_secs(1),
            redis_timeout: Duration::from_secs(5),
            sentinel_password: None,
            redis_wait_replicas: 0,
            redis_wait_timeout: Duration::from_secs(1),
            balancer: Balancer::LeastTasks,
            exec: Vec::new(),
            allow_adhoc_shell: false,
            task_env: TaskEnv::Inherit,
            builtin: BUILTINS.iter().map(|b| b.to_string()).collect(),
            http_allow: Vec::new(),
            shutdown_grace: Duration::from_secs(30),
            task_retention: Duration::from_secs(7 * 86400),
            task_retention_count: 100_000,
            http_addr: None,
            http_token: None,
            http_read_token: None,
            http_insecure: false,
        }
    }
}

impl Config {
    /// The Redis settings of this configuration, for [`crate::Client::open_with`].
    pub fn redis_options(&self) -> crate::store::RedisOptions {
        crate::store::RedisOptions {
            url: self.redis_url.clone(),
            timeout: self.redis_timeout,
            sentinel_password: self.sentinel_password.as_ref().map(|s| s.0.clone()),
            wait_replicas: self.redis_wait_replicas,
            wait_timeout: self.redis_wait_timeout,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("redis_url", &redact_url(&self.redis_url))
            .field("namespace", &self.namespace)
            .field("node_id", &self.node_id)
            .field("role", &self.role)
            .field("capacity", &self.capacity)
            .field("tags", &self.tags)
            .field("weight", &self.weight)
            .field("lease_ttl", &self.lease_ttl)
            .field("renew_interval", &self.renew_interval)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("heartbeat_timeout", &self.heartbeat_timeout)
            .field("recover_interval", &self.recover_interval)
            .field("redis_timeout", &self.redis_timeout)
            .field("sentinel_password", &self.sentinel_password)
            .field("redis_wait_replicas", &self.redis_wait_replicas)
            .field("redis_wait_timeout", &self.redis_wait_timeout)
            .field("balancer", &self.balancer)
            .field("exec", &self.exec)
            .field("allow_adhoc_shell", &self.allow_adhoc_shell)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("task_retention", &self.task_retention)
            .field("task_retention_count", &self.task_retention_count)
            .field("http_addr", &self.http_addr)
            .field("http_token", &self.http_token)
            .field("http_read_token", &self.http_read_token)
            .field("http_insecure", &self.http_insecure)
            .field("task_env", &self.task_env)
            .field("builtin", &self.builtin)
            .field("http_allow", &self.http_allow)
            .finish_non_exhaustive()
    }
}

/// `<hostname>-<8 hex>`: unique per process start, readable in listings.
fn default_node_id() -> String {
    // A host name with characters a node id may not have (or too long)
    // still gives a valid default.
    let host: String = hostname()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(100)
        .collect();
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}", &rand[..8])
}

/// The machine's host name (`/proc/sys/kernel/hostname`, then `$HOSTNAME`).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests;
