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
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::model::job::JobSpec;
use crate::schedule::Schedule;
use crate::store::{Conn, Fence, Store, calls};

/// Most due jobs fired per tick (the rest fire in the next, at once).
pub const DUE_BATCH: usize = 100;

/// A parsed schedule unused this long is forgotten (a removed job's, or a
/// job that fires less often: parsing it again is cheap), so the cache
/// holds about the jobs that fire, not every job that ever did.
const CACHE_IDLE: Duration = Duration::from_secs(3600);

/// A job's parsed schedule: its cron and zone, and when it was last used.
struct Cached {
    cron: String,
    timezone: Option<String>,
    schedule: Schedule,
    used: Instant,
}

/// Firing state kept by the leader: parsed schedules by job.
pub struct Firer {
    store: Store,
    retention_ms: u64,
    cache: HashMap<String, Cached>,
    swept: Instant,
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
            swept: Instant::now(),
        }
    }

    /// Forgets schedules unused for [`CACHE_IDLE`] at `now` (at most once
    /// per [`CACHE_IDLE`]).
    fn forget_unused(&mut self, now: Instant) {
        if now.duration_since(self.swept) < CACHE_IDLE {
            return;
        }
        self.swept = now;
        self.cache
            .retain(|_, c| now.duration_since(c.used) < CACHE_IDLE);
    }

    fn schedule(&mut self, spec: &JobSpec) -> Option<Schedule> {
        let expr = spec.cron.as_ref()?;
        if let Some(c) = self.cache.get_mut(&spec.id)
            && c.cron == *expr
            && c.timezone == spec.timezone
        {
            c.used = Instant::now();
            return Some(c.schedule.clone());
        }
        let s = Schedule::parse(expr, spec.timezone.as_deref())
            .map_err(|e| log::warn!("scheduler: job {}: {e}; not scheduled", spec.id))
            .ok()?;
        self.cache.insert(
            spec.id.clone(),
            Cached {
                cron: expr.clone(),
                timezone: spec.timezone.clone(),
                schedule: s.clone(),
                used: Instant::now(),
            },
        );
        Some(s)
    }

    /// Fires every due job (up to [`DUE_BATCH`]).
    pub fn fire_due(&mut self, conn: &mut Conn, fence: &Fence) -> Result<Fired> {
        self.forget_unused(Instant::now());
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A removed job's parsed schedule does not stay in the leader's memory.
    #[test]
    fn schedules_unused_for_an_hour_are_forgotten() {
        let store = Store::new("redis://127.0.0.1:1", "t", Duration::from_secs(1)).unwrap();
        let mut firer = Firer::new(&store, 1000);
        let t0 = Instant::now();
        for id in ["kept", "removed"] {
            let spec = JobSpec::new(id, "noop").with_cron("* * * * *");
            assert!(firer.schedule(&spec).is_some());
        }
        firer.cache.get_mut("removed").unwrap().used = t0 - CACHE_IDLE;
        // Not yet an hour since the last sweep: nothing goes.
        firer.forget_unused(t0);
        assert_eq!(firer.cache.len(), 2);
        let at = firer.swept + CACHE_IDLE;
        firer.forget_unused(at);
        assert!(firer.cache.contains_key("kept"), "used within the hour");
        assert!(!firer.cache.contains_key("removed"), "unused for an hour");
    }
}
