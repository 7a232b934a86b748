//! Cron firing: run by the leader's `scheduler` thread before each dispatch
//! tick.
//!
//! `DUE_JOBS` reads the jobs whose next fire time has come (a range read of
//! the `schedule` ZSET: work is proportional to the jobs that are due, not
//! to the number of jobs). For each, the [`Schedule`] decides which slots to
//! fire under the job's misfire policy and when it fires next. One fenced
//! `FIRE` script then creates each slot's task, with the id `{job}@{slot}`
//! and only if it does not exist, and moves the job's next fire time, with a
//! compare-and-set on the slot it read: the same slot can never fire twice,
//! and a leader that dies before the script leaves the slot due for the next.

use std::collections::HashMap;

use crate::error::Result;
use crate::model::job::JobSpec;
use crate::schedule::Schedule;
use crate::store::{Conn, Fence, Store, calls};

/// Most due jobs fired per tick (the rest fire in the next, at once).
pub const DUE_BATCH: usize = 100;

/// Firing state kept by the leader: parsed schedules by job.
pub struct Firer {
    store: Store,
    retention_ms: u64,
    cache: HashMap<String, (String, Option<String>, Schedule)>,
}

/// What one firing pass did.
pub struct Fired {
    /// Jobs that were due.
    pub due: usize,
    /// Tasks created.
    pub created: usize,
}

type DueRow = (String, i64, String);

impl Firer {
    /// A firer whose replaced tasks are kept for `retention_ms`.
    pub fn new(store: &Store, retention_ms: u64) -> Firer {
        Firer {
            store: store.clone(),
            retention_ms,
            cache: HashMap::new(),
        }
    }

    fn schedule(&mut self, spec: &JobSpec) -> Option<Schedule> {
        let expr = spec.cron.as_ref()?;
        if let Some((cron, tz, s)) = self.cache.get(&spec.id)
            && cron == expr
            && *tz == spec.timezone
        {
            return Some(s.clone());
        }
        let s = Schedule::parse(expr, spec.timezone.as_deref())
            .map_err(|e| log::warn!("scheduler: job {}: {e}; not scheduled", spec.id))
            .ok()?;
        self.cache.insert(
            spec.id.clone(),
            (expr.clone(), spec.timezone.clone(), s.clone()),
        );
        Some(s)
    }

    /// Fires every due job (up to [`DUE_BATCH`]).
    pub fn fire_due(&mut self, conn: &mut Conn, fence: &Fence) -> Result<Fired> {
        let keys = self.store.keys.clone();
        let (now, due): (i64, Vec<DueRow>) = conn.run(|c| {
            calls::DueJobs { most: DUE_BATCH }
                .invocation(&keys)
                .invoke(c)
        })?;
        if due.is_empty() {
            return Ok(Fired { due: 0, created: 0 });
        }
        let mut jobs: Vec<calls::FireJob> = Vec::with_capacity(due.len());
        for (id, slot, json) in &due {
            let parsed: Option<JobSpec> = serde_json::from_str(json)
                .map_err(|e| {
                    log::error!("scheduler: job {id} has a bad definition: {e}; unscheduled")
                })
                .ok();
            let schedule = parsed
                .as_ref()
                .filter(|j| j.enabled)
                .and_then(|j| self.schedule(j));
            let mut fire = calls::FireJob {
                id,
                due_at: *slot,
                next: None,
                concurrency: "allow",
                skipped: 0,
                skipped_exact: true,
                fire: Vec::new(),
                expires_ms: 0,
                fields: Vec::new(),
            };
            // Unparsable or disabled: taken off the schedule (no next slot).
            if let (Some(job), Some(schedule)) = (parsed, schedule) {
                let d = schedule.due(
                    *slot,
                    now,
                    job.misfire_threshold_ms as i64,
                    job.misfire,
                    job.fire_all_cap as usize,
                );
                fire.next = d.next;
                fire.concurrency = job.concurrency.as_str();
                fire.skipped = d.skipped;
                fire.skipped_exact = d.skipped_exact;
                fire.fire = d.fire;
                fire.expires_ms = job.expires_ms.unwrap_or(0);
                fire.fields = job
                    .task_spec(None)
                    .fields("")
                    .into_iter()
                    .filter(|(k, _)| *k != "id")
                    .collect();
            }
            jobs.push(fire);
        }
        let call = calls::Fire {
            fence,
            retention_ms: self.retention_ms,
            jobs,
        };
        let created: usize = conn.run(|c| call.invocation(&keys).invoke(c))?;
        if created > 0 {
            log::debug!("scheduler: {} jobs due, {created} tasks created", due.len());
        }
        Ok(Fired {
            due: due.len(),
            created,
        })
    }
}
