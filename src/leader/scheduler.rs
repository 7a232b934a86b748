//! The leader's `scheduler` thread: fire due cron jobs (`firing`), then
//! dispatch pending tasks (`dispatcher`), then sleep until the next thing
//! is due or something wakes it.
//!
//! There is no scan interval. Between ticks the thread blocks in BLPOP on
//! `wake` (pushed by submits, finished tasks that free a slot, new workers,
//! job changes) and its own control list. Redis checks blocking timeouts
//! only every ~100 ms, too coarse for cron, so the next due time (a cron
//! slot or a delayed task) is kept by a local `alarm` thread that pushes
//! the control list at that instant: a firing starts within a round trip of
//! its slot. While this node does not lead, the thread checks its local
//! lease every 50 ms without touching Redis. When it becomes leader and a
//! jobs file was given, it first makes the stored jobs match the file.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::client::Client;
use crate::component::{Component, StopSignal};
use crate::config::Config;
use crate::dispatcher::Dispatcher;
use crate::error::{Error, Result};
use crate::firing::{DUE_BATCH, Firer};
use crate::leader::{Lease, wake_control};
use crate::metrics::METRICS;
use crate::model::job::JobSpec;
use crate::store::{Conn, Fence, Store};
use crate::supervisor::{Policy, Supervision};

/// Longest block between ticks: a safety net for a lost wake-up.
const MAX_IDLE: Duration = Duration::from_secs(5);

/// Jobs a node keeps in sync while it leads (`--jobs FILE`).
#[derive(Debug, Clone, Default)]
pub struct JobsFile {
    /// The definitions, validated.
    pub specs: Vec<JobSpec>,
    /// Also remove stored jobs the file does not name.
    pub prune: bool,
}

/// Starts the scheduler thread and its alarm thread, both supervised
/// (restarted with backoff; while the scheduler is down this node does not
/// keep or take the lease). Returns them in stop order.
pub fn start(
    store: &Store,
    config: &Config,
    lease: &Lease,
    jobs: Option<JobsFile>,
    supervision: &Supervision,
) -> Result<Vec<Component>> {
    let control = store.keys.control(&config.node_id, "scheduler");
    let (alarm_tx, alarm_rx) = crossbeam_channel::unbounded();
    let alarm = {
        let (store, control) = (store.clone(), control.clone());
        Component::supervised("alarm", Policy::Restart, supervision, move |stop| {
            alarm_loop(&store, &control, &alarm_rx, stop);
            Ok(())
        })?
    };
    let (store_c, lease, balancer) = (store.clone(), lease.clone(), config.balancer);
    let retention_ms = config.task_retention.as_millis() as u64;
    let scheduler_control = control.clone();
    let waker_store = store.clone();
    let scheduler =
        Component::supervised("scheduler", Policy::Restart, supervision, move |stop| {
            // Fresh state for every run: a panic may have left the last one
            // half-updated.
            let mut scheduler = Scheduler {
                store: store_c.clone(),
                lease: lease.clone(),
                dispatcher: Dispatcher::new(&store_c, balancer),
                firer: Firer::new(&store_c, retention_ms),
                control: scheduler_control.clone(),
                alarm: alarm_tx.clone(),
                jobs: jobs.clone(),
                synced_epoch: None,
            };
            scheduler.run(stop);
            Ok(())
        })?
        .with_waker(move || wake_control(&waker_store, &control));
    Ok(vec![scheduler, alarm])
}

struct Scheduler {
    store: Store,
    lease: Lease,
    dispatcher: Dispatcher,
    firer: Firer,
    control: String,
    alarm: Sender<Instant>,
    jobs: Option<JobsFile>,
    synced_epoch: Option<u64>,
}

impl Scheduler {
    fn run(&mut self, stop: &StopSignal) {
        let mut conn = self.store.conn("scheduler");
        while !stop.is_stopped() {
            crate::failpoints::failpoint!("scheduler-loop");
            let Some(fence) = self.lease.fence() else {
                if stop.wait(Duration::from_millis(50)) {
                    break;
                }
                continue;
            };
            match self.tick(&mut conn, &fence) {
                Ok(None) => continue,
                Ok(Some(idle)) => self.block(&mut conn, idle),
                Err(Error::Fenced) => {
                    METRICS.dispatch_errors.inc();
                    self.lease.revoke("a fenced scheduler write was refused");
                }
                Err(e) => {
                    METRICS.dispatch_errors.inc();
                    if e.is_unavailable() || matches!(e, Error::NotReplicated { .. }) {
                        self.lease.suspend(&format!("scheduler: {e}"));
                    } else {
                        log::warn!("scheduler: {e}");
                    }
                    if stop.wait(conn.backoff()) {
                        break;
                    }
                }
            }
        }
    }

    /// One round: sync jobs (once per term), fire, dispatch. Returns how long
    /// to wait for the next due time, or `None` to go again at once.
    fn tick(&mut self, conn: &mut Conn, fence: &Fence) -> Result<Option<Duration>> {
        if self.jobs.is_some() && self.synced_epoch != Some(fence.epoch) {
            match self.sync_jobs(conn, fence) {
                Ok(()) => {}
                Err(e) if e.is_unavailable() || matches!(e, Error::Fenced) => return Err(e),
                // Logged once; the sync is not retried every tick (it would
                // stall firing), only in the next term.
                Err(e) => log::error!("scheduler: jobs file sync failed: {e}"),
            }
            self.synced_epoch = Some(fence.epoch);
        }
        let fired = self.firer.fire_due(conn, fence)?;
        METRICS.cron_firings.add(fired.created as u64);
        if fired.due > 0 {
            // Nothing fired is dispatched before enough replicas hold it
            // (redis_wait_replicas): a failover to a replica that missed
            // the firing would fire the slot again, and a worker could have
            // run the first.
            self.store.wait_replicas(conn)?;
        }
        let tick = self.dispatcher.tick(conn, fence)?;
        if fired.due == DUE_BATCH || tick.again {
            return Ok(None);
        }
        if tick.next_due_ms < 0 {
            return Ok(Some(MAX_IDLE));
        }
        let wait = tick.next_due_ms - tick.now_ms;
        if wait <= 0 {
            return Ok(None);
        }
        Ok(Some(Duration::from_millis(wait as u64)))
    }

    /// Blocks until a wake-up, the alarm at `idle` from now, or `MAX_IDLE`.
    fn block(&self, conn: &mut Conn, idle: Duration) {
        if idle < MAX_IDLE {
            let _ = self.alarm.send(Instant::now() + idle);
        }
        let keys = &self.store.keys;
        let _ = conn.run_blocking(MAX_IDLE, |c| {
            redis::cmd("BLPOP")
                .arg(keys.wake())
                .arg(&self.control)
                .arg(MAX_IDLE.as_secs_f64())
                .query::<Option<(String, String)>>(c)
        });
    }

    /// Makes the stored jobs match the jobs file. A stored record that
    /// cannot be read (not JSON, or a newer version's fields) is left as it
    /// is: not overwritten by the file's job of that id, not pruned; it is
    /// marked broken and logged once per term. A job the store refuses (not
    /// a connection error) is logged and skipped; the others still sync.
    fn sync_jobs(&mut self, conn: &mut Conn, fence: &Fence) -> Result<()> {
        let Some(file) = &self.jobs else {
            return Ok(());
        };
        let mut client = Client::from_store(&self.store);
        let stored = client.job_records()?;
        let unreadable: std::collections::HashMap<&str, &str> = stored
            .iter()
            .filter_map(|(id, r)| r.as_ref().err().map(|e| (id.as_str(), e.as_str())))
            .collect();
        let (mut added, mut updated, mut removed, mut skipped) = (0, 0, 0, 0);
        for spec in &file.specs {
            if let Some(e) = unreadable.get(spec.id.as_str()) {
                log::warn!(
                    "scheduler: jobs file: job {} not synced: {e}; its stored record is left as it is (replace it with `job add {} --replace` or remove it with `job rm {}`)",
                    spec.id,
                    spec.id,
                    spec.id
                );
                skipped += 1;
                continue;
            }
            match client.put_job(spec) {
                Ok(true) => added += 1,
                Ok(false) => updated += 1,
                Err(e) if e.is_unavailable() => return Err(e),
                Err(e) => {
                    log::error!("scheduler: jobs file: job {} not synced: {e}", spec.id);
                    skipped += 1;
                }
            }
        }
        if file.prune {
            for (id, record) in &stored {
                if file.specs.iter().any(|s| &s.id == id) {
                    continue;
                }
                if record.is_err() {
                    log::warn!(
                        "scheduler: jobs file: job {id} not pruned: its stored record cannot be read (it may belong to a newer version)"
                    );
                    skipped += 1;
                    continue;
                }
                match client.remove_job(id) {
                    Ok(()) | Err(Error::NotFound(_)) => removed += 1,
                    Err(e) if e.is_unavailable() => return Err(e),
                    Err(e) => {
                        log::error!("scheduler: jobs file: job {id} not pruned: {e}");
                        skipped += 1;
                    }
                }
            }
        }
        for (id, e) in &unreadable {
            self.firer.mark_unreadable(conn, fence, id, e)?;
        }
        log::info!(
            "scheduler: jobs file synced ({added} added, {updated} kept or updated, {removed} removed, {skipped} skipped)"
        );
        Ok(())
    }
}

/// Pushes the scheduler's control list at the latest deadline it was given.
fn alarm_loop(store: &Store, control: &str, deadlines: &Receiver<Instant>, stop: &StopSignal) {
    let mut next: Option<Instant> = None;
    loop {
        let timeout = next.map_or(Duration::from_secs(3600), |t| {
            t.saturating_duration_since(Instant::now())
        });
        crossbeam_channel::select! {
            recv(stop.receiver()) -> _ => return,
            recv(deadlines) -> d => match d {
                Ok(d) => next = Some(d),
                // The scheduler ended: nothing to do until the stop (an
                // early return would count as a death).
                Err(_) => {
                    let _ = stop.receiver().recv();
                    return;
                }
            },
            default(timeout) => {
                if next.take().is_some() {
                    wake_control(store, control);
                }
            }
        }
    }
}
