//! Leader-only recovery: the `recoverer` thread.
//!
//! Every `recover_interval`, while this node leads, one fenced script
//! (`recover_tick.lua`):
//! - drops nodes whose registry entry has expired from the `nodes` index,
//!   hands their queued tasks back to `pending` and counts a failed attempt
//!   (retry or fail) for the tasks they were running;
//! - is the backstop for tasks past their `running` deadline (task timeout +
//!   `dispatcher::RECOVERY_GRACE`): a hung or vanished worker's task counts
//!   a failed attempt, a queued item never started goes back to pending;
//! - trims expired tasks from the listing index;
//! - records the tick (`tick_node`, `tick_epoch`, `tick_ms` in
//!   `leader:status`), which operators read as "the leader is alive and
//!   writing".
//!
//! A result that a presumed-dead worker sends later is rejected by the
//! attempt check in `FINISH`. A refused fence makes this node step down.

use std::time::Duration;

use crate::component::{Component, StopSignal};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::leader::Lease;
use crate::metrics::METRICS;
use crate::store::{Conn, Fence, Store, calls};
use crate::supervisor::{Policy, Supervision};

/// Starts the recoverer thread (supervised: restarted with backoff; while
/// it is down this node does not keep or take the lease).
pub fn start(
    store: &Store,
    config: &Config,
    lease: &Lease,
    supervision: &Supervision,
) -> Result<Component> {
    let store = store.clone();
    let lease = lease.clone();
    let settings = Settings {
        interval: config.recover_interval,
        heartbeat_timeout: config.heartbeat_timeout,
        retention: config.task_retention,
        retention_count: config.task_retention_count,
    };
    Ok(Component::supervised(
        "recoverer",
        Policy::Restart,
        supervision,
        move |stop| {
            run(&store, &lease, &settings, stop);
            Ok(())
        },
    )?)
}

struct Settings {
    interval: Duration,
    heartbeat_timeout: Duration,
    retention: Duration,
    retention_count: u64,
}

/// Most overdue tasks handled per tick (the rest wait for the next).
const RECOVER_LIMIT: usize = 500;

fn run(store: &Store, lease: &Lease, settings: &Settings, stop: &StopSignal) {
    let interval = settings.interval;
    let mut conn = store.conn("recoverer");
    let mut wait = interval;
    while !stop.wait(wait) {
        wait = interval;
        crate::failpoints::failpoint!("recoverer-loop");
        let Some(fence) = lease.fence() else {
            continue;
        };
        match tick(
            store,
            &mut conn,
            &fence,
            settings.heartbeat_timeout,
            (settings.retention, settings.retention_count),
        ) {
            Ok(Recovered {
                dead,
                handed_back,
                failed,
                trimmed,
                expired,
            }) => {
                METRICS.tasks_trimmed.add(trimmed);
                METRICS.tasks_expired.add(expired);
                if expired > 0 {
                    log::info!(
                        "recoverer: {expired} tasks not started by their deadline cancelled (expired)"
                    );
                }
                METRICS.dead_nodes.add(dead.len() as u64);
                METRICS.recovered_requeued.add(handed_back);
                METRICS.recovered_failed_over.add(failed);
                for id in dead {
                    log::warn!(
                        "recoverer: node {id} missed its heartbeat timeout; removed from the registry"
                    );
                }
                if handed_back + failed > 0 {
                    log::warn!(
                        "recoverer: {handed_back} queued tasks handed back to pending, {failed} running tasks failed over (dead or overdue worker)"
                    );
                }
            }
            Err(Error::Fenced) => lease.revoke("a fenced write was refused"),
            Err(e) => {
                if e.is_unavailable() {
                    lease.suspend(&format!("recoverer: {e}"));
                } else {
                    log::warn!("recoverer: {e}");
                }
                wait = conn.backoff();
            }
        }
    }
}

/// What one recovery pass did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Nodes found dead (registry entry expired) and removed from the index.
    pub dead: Vec<String>,
    /// Queued tasks handed back to pending.
    pub handed_back: u64,
    /// Running tasks whose attempt was counted as failed.
    pub failed: u64,
    /// Ended tasks dropped (with their logs) to keep the count.
    pub trimmed: u64,
    /// Tasks cancelled because they did not start by their deadline.
    pub expired: u64,
}

/// One recovery pass as the leader holding `fence` (the recoverer thread
/// calls it every tick; public so tests can drive it). `retention`: how
/// long ended tasks are kept, and the most kept.
pub fn tick(
    store: &Store,
    conn: &mut Conn,
    fence: &Fence,
    heartbeat_timeout: Duration,
    retention: (Duration, u64),
) -> Result<Recovered> {
    let keys = &store.keys;
    conn.run(|c| {
        calls::RecoverTick {
            fence,
            heartbeat_timeout_ms: heartbeat_timeout.as_millis() as u64,
            retention_ms: retention.0.as_millis() as u64,
            retention_count: retention.1,
            rnd: crate::random_unit(),
            limit: RECOVER_LIMIT,
        }
        .invocation(keys)
        .invoke(c)
    })
    .map(|(dead, handed_back, failed, trimmed, expired)| Recovered {
        dead,
        handed_back,
        failed,
        trimmed,
        expired,
    })
}
