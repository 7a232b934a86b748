//! Every Lua script distsched runs, in this one place.
//!
//! Scripts are loaded once per process and run with `redis::Script`, which
//! sends EVALSHA and falls back to loading the script on NOSCRIPT (after a
//! Redis restart, say). Leader writes are built as the fence prelude
//! (`lua/fence.lua`) followed by the shared helpers (`lua/lib.lua`) and the
//! body, so no leader write can skip the
//! owner + epoch check; see [`super::Fence`].

use std::sync::LazyLock;

use redis::Script;

use crate::executor::MAX_TASK_LOG_BYTES;

const FENCE: &str = include_str!("lua/fence.lua");
const LIB: &str = include_str!("lua/lib.lua");

/// The constants `lib.lua` takes from Rust, so each has one definition.
fn lib_constants() -> String {
    format!("local LOG_BYTES = {MAX_TASK_LOG_BYTES}")
}

fn plain(body: &str) -> Script {
    Script::new(&format!("{}\n{LIB}\n{body}", lib_constants()))
}

fn fenced(body: &str) -> Script {
    Script::new(&format!("{FENCE}\n{}\n{LIB}\n{body}", lib_constants()))
}

/// Take the leader lease (SET NX PX + INCR epoch). Not fenced: it is how a
/// node gets its epoch.
pub static ACQUIRE: LazyLock<Script> = LazyLock::new(|| plain(include_str!("lua/acquire.lua")));

/// Extend the lease if the caller still holds it with its epoch.
pub static RENEW: LazyLock<Script> = LazyLock::new(|| plain(include_str!("lua/renew.lua")));

/// Give the lease up and wake a standby.
pub static RELEASE: LazyLock<Script> = LazyLock::new(|| plain(include_str!("lua/release.lua")));

/// Register or refresh a registry entry.
pub static HEARTBEAT: LazyLock<Script> = LazyLock::new(|| plain(include_str!("lua/heartbeat.lua")));

/// Remove this node's registry entry.
pub static DEREGISTER: LazyLock<Script> =
    LazyLock::new(|| plain(include_str!("lua/deregister.lua")));

/// Fenced: drop dead nodes from the index and record the leader's tick.
pub static RECOVER_TICK: LazyLock<Script> =
    LazyLock::new(|| fenced(include_str!("lua/recover_tick.lua")));

/// Create a task.
pub static SUBMIT: LazyLock<Script> = LazyLock::new(|| plain(include_str!("lua/submit.lua")));

/// Fenced: promote due delayed tasks; read workers, the pending head and
/// the heads of the parks that workers have free slots for.
pub static DISPATCH_READ: LazyLock<Script> =
    LazyLock::new(|| fenced(include_str!("lua/dispatch_read.lua")));

/// Fenced: move assigned tasks onto worker queues, park tasks that cannot
/// be placed, put parks back into pending.
pub static DISPATCH_COMMIT: LazyLock<Script> =
    LazyLock::new(|| fenced(include_str!("lua/dispatch_commit.lua")));

/// Worker: claim queued items and mark them running.
pub static START: LazyLock<Script> = LazyLock::new(|| plain(include_str!("lua/start.lua")));

/// Worker: record attempt outcomes (batched), retry or end the tasks.
pub static FINISH: LazyLock<Script> = LazyLock::new(|| plain(include_str!("lua/finish.lua")));

/// Cancel a task wherever it is.
pub static CANCEL: LazyLock<Script> = LazyLock::new(|| plain(include_str!("lua/cancel.lua")));

/// Worker shutdown: mark draining and hand queued items back to pending.
pub static REQUEUE: LazyLock<Script> = LazyLock::new(|| plain(include_str!("lua/requeue.lua")));

/// Mark a task as waited on and read it.
pub static WAIT_MARK: LazyLock<Script> = LazyLock::new(|| plain(include_str!("lua/wait_mark.lua")));

/// Read the cluster summary (`stats`, `/metrics`).
pub static STATS: LazyLock<Script> = LazyLock::new(|| plain(include_str!("lua/stats.lua")));

/// Store a job definition and (re)schedule it.
pub static JOB_PUT: LazyLock<Script> = LazyLock::new(|| plain(include_str!("lua/job_put.lua")));

/// Remove a job.
pub static JOB_RM: LazyLock<Script> = LazyLock::new(|| plain(include_str!("lua/job_rm.lua")));

/// Read the jobs due now.
pub static DUE_JOBS: LazyLock<Script> = LazyLock::new(|| plain(include_str!("lua/due_jobs.lua")));

/// Fenced: fire due jobs, exactly once per slot.
pub static FIRE: LazyLock<Script> = LazyLock::new(|| fenced(include_str!("lua/fire.lua")));

/// Read one chunk of the dashboard's task search (filters over the newest
/// entries of the task index).
pub static SEARCH: LazyLock<Script> = LazyLock::new(|| plain(include_str!("lua/search.lua")));

/// Read a task's log lines from an absolute line number on (live tails).
pub static LOG_SINCE: LazyLock<Script> = LazyLock::new(|| plain(include_str!("lua/log_since.lua")));

/// Worker: write running attempts' log lines and progress (the `live`
/// thread, about once a second).
pub static LIVE: LazyLock<Script> = LazyLock::new(|| plain(include_str!("lua/live.lua")));
