//! Leader election: the `leader` thread and the [`Lease`] it shares with the
//! leader-only components.
//!
//! Acquire is SET NX PX plus INCR of the fencing epoch, in one script.
//! The holder renews every `renew_interval` with a compare-and-renew script.
//! Locally the lease counts as held only until a monotonic deadline
//! (`sent + ttl - margin`, measured from *before* the renew was sent), so a
//! leader whose renewals stall stops leader work before Redis can expire its
//! lease and elect someone else. A standby sleeps in BLPOP on `leader:wake`
//! until the current lease's PTTL runs out, or until a leader that shuts
//! down gracefully releases the lease and pushes a notice: handover then
//! takes one round trip, not a TTL.
//!
//! Before each renew the holder checks that its scheduler and recoverer
//! are running (`supervisor::LEADER_PARTS`); while one is dead or waiting
//! for its restart it does not renew: it steps down and releases the
//! lease, and it does not stand for election until both run again.
//!
//! The folder holds the leader role: this file (the `leader` thread and the
//! lease), `scheduler.rs` (the `scheduler` and `alarm` threads), `firing.rs`
//! (cron firing, on the scheduler thread), `dispatcher.rs` and
//! `balancer.rs` (dispatch, on the scheduler thread) and `recoverer.rs`
//! (the `recoverer` thread).

pub(crate) mod balancer;
pub(crate) mod dispatcher;
pub(crate) mod firing;
pub(crate) mod recoverer;
pub(crate) mod scheduler;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::component::{Component, StopSignal};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::metrics::METRICS;
use crate::store::{Fence, Store, calls};
use crate::supervisor::{Health, LEADER_PARTS, Policy, Supervision};

/// This node's view of the leader lease, shared by the leader thread (which
/// writes it) and leader-only components (which read a [`Fence`] from it).
#[derive(Clone)]
pub struct Lease {
    node: String,
    held: Arc<Mutex<Option<Held>>>,
    /// Wakes the elector to renew now (after a suspension).
    nudge: (Sender<()>, Receiver<()>),
}

#[derive(Clone, Copy)]
struct Held {
    epoch: u64,
    valid_until: Instant,
    /// Held in Redis as far as this node knows, but not to be used: the
    /// connection failed, the server stopped being the writable master, or
    /// the term's writes are not yet on enough replicas. A renew (and its
    /// `WAIT`) that succeeds lifts it.
    suspended: bool,
}

/// The highest fencing epoch this node has seen (won, read from a held
/// lease, or returned by a heartbeat), shared by the elector and the
/// heartbeat. A rollback after a failover (a promoted replica that missed
/// the last `INCR`) is repaired from it: an acquire goes above it and every
/// heartbeat raises the stored epoch to it.
#[derive(Clone, Default)]
pub(crate) struct EpochSeen(Arc<AtomicU64>);

impl EpochSeen {
    /// The highest epoch seen.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Records that `epoch` was seen.
    pub(crate) fn raise(&self, epoch: u64) {
        self.0.fetch_max(epoch, Ordering::Relaxed);
    }
}

impl Lease {
    fn new(node: &str) -> Lease {
        Lease {
            node: node.into(),
            held: Arc::default(),
            nudge: crossbeam_channel::bounded(1),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Option<Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The fence to present on leader writes, if this node holds the lease
    /// and its local deadline has not passed.
    pub fn fence(&self) -> Option<Fence> {
        let held = (*self.state())?;
        (!held.suspended && Instant::now() < held.valid_until).then(|| Fence {
            node: self.node.clone(),
            epoch: held.epoch,
        })
    }

    /// True if this node leads right now.
    pub fn is_leader(&self) -> bool {
        self.fence().is_some()
    }

    /// Stops leader work at once: called when a fenced write is refused.
    pub fn revoke(&self, why: &str) {
        if let Some(held) = self.state().take() {
            METRICS.leader_stepdowns.inc();
            log::warn!(
                "leader: stepped down (node {} epoch {}): {why}",
                self.node,
                held.epoch
            );
        }
    }

    /// Stops leader work at once without giving the term up: a leader
    /// write failed because Redis was unreachable or no longer the writable
    /// master. The elector renews through a fresh connection (a new master
    /// after a failover) now; the term goes on only if the lease is still
    /// there with this epoch, and its `WAIT` passes.
    pub fn suspend(&self, why: &str) {
        let mut state = self.state();
        if let Some(held) = state.as_mut()
            && !held.suspended
        {
            held.suspended = true;
            METRICS.leader_pauses.inc();
            log::warn!(
                "leader: leader work paused (node {} epoch {}): {why}; renewing through a fresh connection",
                self.node,
                held.epoch
            );
            drop(state);
            // Once per pause: the elector's own failed renews then wait out
            // their backoff instead of spinning on the nudge.
            let _ = self.nudge.0.try_send(());
        }
    }

    fn set(&self, epoch: u64, valid_until: Instant, suspended: bool) {
        *self.state() = Some(Held {
            epoch,
            valid_until,
            suspended,
        });
    }

    fn held(&self) -> Option<Held> {
        *self.state()
    }
}

/// Safety margin taken off the TTL for the local deadline: 10 % of the TTL,
/// which covers clock-rate differences between this host and Redis.
fn local_validity(ttl: Duration) -> Duration {
    ttl - ttl / 10
}

/// How often a node whose scheduler or recoverer is down looks again
/// before it stands for election (a local check, no Redis call).
const PARTS_CHECK: Duration = Duration::from_millis(100);

/// Starts the leader thread (supervised: restarted with backoff; a
/// restarted elector renews the lease the node still holds, or stands by).
/// Returns the component and the shared lease.
pub(crate) fn start(
    store: &Store,
    config: &Config,
    seen: &EpochSeen,
    supervision: &Supervision,
) -> Result<(Component, Lease)> {
    let lease = Lease::new(&config.node_id);
    let control = store.keys.control(&config.node_id, "leader");
    let mut elector = Elector {
        store: store.clone(),
        lease: lease.clone(),
        ttl: config.lease_ttl,
        renew: config.renew_interval,
        seen: seen.clone(),
        control: control.clone(),
        health: supervision.health.clone(),
    };
    let waker_store = store.clone();
    let component = Component::supervised("leader", Policy::Restart, supervision, move |stop| {
        elector.run(stop);
        Ok(())
    })?
    .with_waker(move || wake_control(&waker_store, &control));
    Ok((component, lease))
}

/// Pushes to a control list so a loop blocked on it returns at once.
pub(crate) fn wake_control(store: &Store, key: &str) {
    let _ = store.quiet_conn("waker").run(|c| {
        redis::pipe()
            .lpush(key, 1)
            .ignore()
            .pexpire(key, 5000)
            .ignore()
            .query::<()>(c)
    });
}

struct Elector {
    store: Store,
    lease: Lease,
    ttl: Duration,
    renew: Duration,
    seen: EpochSeen,
    control: String,
    /// The node's components: no renew, and no election, while one of
    /// [`LEADER_PARTS`] is not running.
    health: Health,
}

enum Attempt {
    Won { epoch: u64 },
    Lost { pttl: Duration },
}

impl Elector {
    fn run(&mut self, stop: &StopSignal) {
        let mut conn = self.store.conn("leader");
        loop {
            let wait = match self.lease.held() {
                Some(held) => self.renew_step(&mut conn, held),
                None => self.standby_step(&mut conn, stop),
            };
            // A component that dies wakes this wait, so a leader steps
            // down at once rather than at its next renew.
            // A suspension wakes it too: renew now, through the new master.
            let stopped = crossbeam_channel::select! {
                recv(stop.receiver()) -> _ => true,
                recv(self.health.changed()) -> _ => false,
                recv(self.lease.nudge.1) -> _ => false,
                default(wait) => false,
            };
            if stopped {
                break;
            }
        }
        self.release(&mut conn);
    }

    /// Renews the held lease; returns how long to wait before the next step.
    /// A leader whose scheduler or recoverer is not running does not renew:
    /// it steps down and releases the lease, so a standby takes over now.
    fn renew_step(&mut self, conn: &mut crate::store::Conn, held: Held) -> Duration {
        if let Some(down) = self.health.first_down(LEADER_PARTS) {
            self.lease
                .revoke(&format!("its {down} is not running; releasing the lease"));
            self.release_epoch(conn, held.epoch);
            return PARTS_CHECK;
        }
        let keys = &self.store.keys;
        let sent = Instant::now();
        let renewed = conn.run(|c| {
            calls::Renew {
                node: &self.lease.node,
                epoch: held.epoch,
                ttl_ms: self.ttl.as_millis() as u64,
            }
            .invocation(keys)
            .invoke::<i64>(c)
        });
        // With redis_wait_replicas, the term is usable only while its lease
        // (and, replication being ordered, every earlier write of the term)
        // is on enough replicas.
        let renewed = renewed.and_then(|r| {
            if r == 1 {
                self.store.wait_replicas(conn)?;
            }
            Ok(r)
        });
        match renewed {
            Ok(1) => {
                if held.suspended {
                    log::info!(
                        "leader: leader work resumed (node {} epoch {})",
                        self.lease.node,
                        held.epoch
                    );
                }
                self.lease
                    .set(held.epoch, sent + local_validity(self.ttl), false);
                self.renew
            }
            Ok(_) => {
                self.lease
                    .revoke("lease taken over (or lost in a failover)");
                Duration::ZERO
            }
            Err(e) => {
                if Instant::now() >= held.valid_until {
                    self.lease.revoke(&format!("could not renew in time: {e}"));
                    return Duration::ZERO;
                }
                // No leader work until a renew succeeds: the server that
                // failed may be a master that is failing over.
                self.lease.suspend(&format!("renew failed: {e}"));
                // Retry quickly while the local deadline allows it.
                conn.backoff().min(held.valid_until - Instant::now())
            }
        }
    }

    /// Tries to acquire; when someone else leads, blocks until their lease
    /// would expire or a release notice arrives. Returns the extra wait.
    fn standby_step(&mut self, conn: &mut crate::store::Conn, stop: &StopSignal) -> Duration {
        if self.health.first_down(LEADER_PARTS).is_some() {
            // Not a candidate while it could not do the leader's work.
            return PARTS_CHECK;
        }
        match self.try_acquire(conn) {
            Ok(Attempt::Won { epoch }) => {
                METRICS.leader_elections.inc();
                log::info!(
                    "leader: became leader (node {} epoch {epoch})",
                    self.lease.node
                );
                if self.lease.held().is_some_and(|h| h.suspended) {
                    conn.backoff()
                } else {
                    self.renew
                }
            }
            Ok(Attempt::Lost { pttl }) => {
                if stop.is_stopped() {
                    return Duration::ZERO;
                }
                // A few ms past the PTTL so the key has expired when we retry.
                let block = (pttl + Duration::from_millis(5)).max(Duration::from_millis(20));
                let keys = &self.store.keys;
                let popped = conn.run_blocking(block, |c| {
                    redis::cmd("BLPOP")
                        .arg(keys.leader_wake())
                        .arg(&self.control)
                        .arg(block.as_secs_f64())
                        .query::<Option<(String, String)>>(c)
                });
                match popped {
                    Ok(_) => Duration::ZERO,
                    Err(_) => conn.backoff(),
                }
            }
            Err(_) => conn.backoff(),
        }
    }

    fn try_acquire(&mut self, conn: &mut crate::store::Conn) -> Result<Attempt> {
        let keys = &self.store.keys;
        let sent = Instant::now();
        let (won, a, b): (i64, i64, i64) = conn.run(|c| {
            calls::Acquire {
                node: &self.lease.node,
                ttl_ms: self.ttl.as_millis() as u64,
                seen_epoch: self.seen.get(),
            }
            .invocation(keys)
            .invoke(c)
        })?;
        if won == 1 {
            let epoch = a as u64;
            self.seen.raise(epoch);
            // Not usable until enough replicas hold it (redis_wait_replicas):
            // a failover to a replica without it would elect a second leader
            // whose term overlaps this one. Renews retry the WAIT.
            let suspended = match self.store.wait_replicas(conn) {
                Ok(()) => false,
                Err(e @ (Error::NotReplicated { .. } | Error::Unavailable(_))) => {
                    log::warn!("leader: won epoch {epoch}, but leader work waits: {e}");
                    true
                }
                Err(e) => return Err(e),
            };
            self.lease
                .set(epoch, sent + local_validity(self.ttl), suspended);
            Ok(Attempt::Won { epoch })
        } else {
            self.seen.raise(b.max(0) as u64);
            // PTTL -1 (no TTL) cannot happen for our key; treat it like -2.
            let pttl = Duration::from_millis(a.max(0) as u64);
            Ok(Attempt::Lost { pttl })
        }
    }

    /// Graceful shutdown: stop leader work locally, then free the lease so a
    /// standby takes over at once instead of after the TTL.
    fn release(&mut self, conn: &mut crate::store::Conn) {
        let Some(held) = self.lease.held() else {
            return;
        };
        *self.lease.state() = None;
        self.release_epoch(conn, held.epoch);
    }

    /// Frees the lease of term `epoch` (if still ours) and wakes a standby.
    fn release_epoch(&mut self, conn: &mut crate::store::Conn, epoch: u64) {
        let keys = &self.store.keys;
        let released = conn.run(|c| {
            calls::Release {
                node: &self.lease.node,
                epoch,
            }
            .invocation(keys)
            .invoke::<i64>(c)
        });
        match released {
            Ok(1) => log::info!("leader: released the lease (epoch {epoch})"),
            Ok(_) => {}
            Err(e) => log::warn!("leader: could not release the lease ({e}); it expires by TTL"),
        }
    }
}
