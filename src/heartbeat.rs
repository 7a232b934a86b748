//! Node registry: the `heartbeat` thread.
//!
//! Every `heartbeat_interval` the node rewrites its `node:{id}` hash (info
//! JSON, Redis-clock heartbeat time, process instance id) with a TTL of
//! `heartbeat_timeout`, and its score in the `nodes` ZSET index. A node that
//! stops beating drops out when the TTL runs out; the leader's recoverer then
//! removes it from the index. On a clean stop the thread deregisters the node
//! at once. Times come from Redis (`TIME` inside the script), so clock skew
//! between hosts does not matter. Each beat also carries the highest
//! fencing epoch the node has seen, in both directions (see `EpochSeen`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::component::{Component, StopSignal};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::leader::EpochSeen;
use crate::metrics::METRICS;
use crate::model::node::NodeInfo;
use crate::store::{Conn, Store, calls};
use crate::supervisor::{Policy, Supervision};

/// What the heartbeat needs to describe this node.
pub struct Registration {
    store: Store,
    info: NodeInfo,
    instance: String,
    ttl: Duration,
    running: Arc<AtomicUsize>,
    seen: EpochSeen,
}

impl Registration {
    /// Describes this node from its configuration. `running` is the live
    /// count of tasks running on it, read at every beat.
    pub fn new(
        store: &Store,
        config: &Config,
        executors: Vec<String>,
        running: Arc<AtomicUsize>,
        seen: EpochSeen,
    ) -> Registration {
        let started_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Registration {
            store: store.clone(),
            info: NodeInfo {
                id: config.node_id.clone(),
                host: crate::config::hostname(),
                pid: std::process::id(),
                role: config.role,
                capacity: if config.role.works() {
                    config.capacity
                } else {
                    0
                },
                running: 0,
                executors,
                tags: config.tags.clone(),
                weight: config.weight,
                version: env!("CARGO_PKG_VERSION").into(),
                started_ms,
            },
            instance: uuid::Uuid::new_v4().to_string(),
            ttl: config.heartbeat_timeout,
            running,
            seen,
        }
    }

    /// This process's instance id (a node id can outlive a process; the
    /// instance id cannot).
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Writes the registry entry once. Fails with [`Error::NodeIdInUse`] when
    /// another live process holds this node id.
    pub fn beat(&mut self, conn: &mut Conn) -> Result<()> {
        self.info.running = self.running.load(Ordering::Relaxed);
        let json = serde_json::to_string(&self.info)?;
        let keys = &self.store.keys;
        let result = conn.run(|c| {
            calls::Heartbeat {
                node: &self.info.id,
                info: &json,
                ttl_ms: self.ttl.as_millis() as u64,
                instance: &self.instance,
                seen_epoch: self.seen.get(),
            }
            .invocation(keys)
            .invoke::<(i64, u64)>(c)
        });
        match result {
            Err(Error::Redis(e)) if e.code() == Some("NODE_ID_IN_USE") => {
                let ttl_ms = e.detail().and_then(|d| d.trim().parse().ok()).unwrap_or(-1);
                Err(Error::NodeIdInUse {
                    id: self.info.id.clone(),
                    ttl_ms,
                })
            }
            other => other.map(|(_, epoch)| self.seen.raise(epoch)),
        }
    }

    /// Registers at start-up. An entry under this id that another process
    /// wrote is waited out while it is not refreshed (an earlier process of
    /// this node that crashed, restarted at once by systemd or Kubernetes):
    /// it expires within the heartbeat timeout, and this node then starts.
    /// An entry that is refreshed meanwhile belongs to a live duplicate:
    /// [`Error::NodeIdInUse`] (seen refreshed twice: the killed process's
    /// last beat may still land once). Checked every `interval` (the
    /// heartbeat interval: a live duplicate beats at least that often).
    pub fn register(&mut self, conn: &mut Conn, interval: Duration) -> Result<()> {
        let first = match self.beat(conn) {
            Err(Error::NodeIdInUse { ttl_ms, .. }) => ttl_ms,
            other => return other,
        };
        let key = self.store.keys.node(&self.info.id);
        let beat_of = |conn: &mut Conn| -> Result<Option<String>> {
            conn.run(|c| redis::cmd("HGET").arg(&key).arg("heartbeat_ms").query(c))
        };
        let mut seen = beat_of(conn)?;
        let mut refreshed = 0;
        let waited = Instant::now();
        let expiry = Duration::from_millis(first.max(0) as u64);
        let mut said = false;
        loop {
            // A live duplicate beats every `interval`: a quarter more is
            // enough to see it before saying anything.
            let left = expiry.saturating_sub(waited.elapsed());
            std::thread::sleep(
                interval
                    .mul_f64(1.25)
                    .min(left)
                    .max(Duration::from_millis(20)),
            );
            match self.beat(conn) {
                Err(e @ Error::NodeIdInUse { .. }) => {
                    // Refreshed twice: a live process. Once may be the last
                    // beat of the one that was just killed, still in flight.
                    let now = beat_of(conn)?;
                    if now != seen {
                        refreshed += 1;
                        seen = now;
                        if refreshed >= 2 {
                            return Err(e);
                        }
                        continue;
                    }
                    if !said {
                        said = true;
                        log::warn!(
                            "node id `{}` is held by a registry entry another process wrote and \
                             nobody refreshes (expires in {} ms): waiting for it to expire, as a \
                             crashed earlier process of this node leaves it",
                            self.info.id,
                            expiry.saturating_sub(waited.elapsed()).as_millis()
                        );
                    }
                }
                Ok(()) => {
                    if said {
                        log::info!(
                            "node id `{}`: the stale entry expired after {:?}; registered",
                            self.info.id,
                            waited.elapsed()
                        );
                    }
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn deregister(&self, conn: &mut Conn) -> Result<()> {
        let keys = &self.store.keys;
        conn.run(|c| {
            calls::Deregister {
                node: &self.info.id,
                instance: &self.instance,
            }
            .invocation(keys)
            .invoke::<i64>(c)
        })
        .map(drop)
    }

    /// Starts the heartbeat thread (supervised: restarted with backoff if
    /// it panics). Call [`Registration::beat`] once before, so that
    /// start-up fails loudly on a taken id or an unreachable Redis. If
    /// another process takes this node's id while it runs (this one was
    /// frozen past its heartbeat timeout and replaced), the thread gives up
    /// with that error and the node stops: two processes with one id would
    /// share a queue.
    pub fn start(mut self, interval: Duration, supervision: &Supervision) -> Result<Component> {
        Ok(Component::supervised(
            "heartbeat",
            Policy::Restart,
            supervision,
            move |stop| self.run(interval, stop),
        )?)
    }

    fn run(&mut self, interval: Duration, stop: &StopSignal) -> Result<()> {
        let mut conn = self.store.conn("heartbeat");
        let mut wait = interval;
        while !stop.wait(wait) {
            let sent = Instant::now();
            let beat = self.beat(&mut conn);
            if beat.is_ok() {
                METRICS.heartbeat_latency.observe_duration(sent.elapsed());
            } else {
                METRICS.heartbeat_failures.inc();
            }
            wait = match beat {
                Ok(()) => interval,
                Err(e @ Error::NodeIdInUse { .. }) => {
                    log::error!("heartbeat: {e}; this process stops");
                    return Err(e);
                }
                Err(e) if e.is_unavailable() => conn.backoff(),
                Err(e) => {
                    log::warn!("heartbeat: {e}");
                    conn.backoff()
                }
            };
        }
        match self.deregister(&mut conn) {
            Ok(()) => log::info!("heartbeat: deregistered node {}", self.info.id),
            Err(e) => log::warn!("heartbeat: could not deregister ({e}); the entry expires by TTL"),
        }
        Ok(())
    }
}
