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
//!
//! **One bad job stays one bad job.** A due job whose stored record does not
//! parse (not JSON, a newer version's field, a bad cron expression) is not
//! fired; if the batched `FIRE` call fails in Redis (not a connection error
//! or a fence), each job is fired on its own and only the ones that fail
//! alone are left out. `FIRE` checks its inputs before any write and, per
//! job, creates the tasks before it moves the schedule, so the jobs a failed
//! call did fire have moved on and fire nothing when retried alone. Either
//! way the job is marked (`JOB_MARK`: the error in its state hash, its id in
//! `jobs:broken`), its next fire time moves to [`BROKEN_RETRY`] from now,
//! and every other job fires as usual. The mark changes, and is logged,
//! only when the error does (one line per change, cluster-wide, not one per
//! tick); the first firing that works clears it. A retry time is not a slot
//! of the schedule: a job whose stored next fire time is not one fires from
//! its first slot at or after it, so the slots a broken job missed are
//! skipped, not caught up.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::model::job::{BROKEN_RETRY, JobSpec, parse_record};
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

/// Firing state kept by the leader: parsed schedules by job, and the jobs
/// marked broken.
pub struct Firer {
    store: Store,
    retention_ms: u64,
    cache: HashMap<String, Cached>,
    swept: Instant,
    /// The term `broken` was loaded in, and the ids marked broken in Redis
    /// as this leader knows them (loaded once per term).
    broken: Option<(u64, HashSet<String>)>,
}

/// What one firing pass did.
pub struct Fired {
    /// Jobs that were due.
    pub due: usize,
    /// Tasks created.
    pub created: usize,
}

type DueRow = (String, i64, String);

/// A mark to write: job id, kind (`record`, `firing`; `""` clears), the
/// message, the schedule scores it may be moved from (none: leave it).
struct Mark {
    id: String,
    kind: &'static str,
    message: String,
    from: Vec<i64>,
}

/// Errors that end the firing pass (the connection, or a lost lease), as
/// opposed to one job's failure.
fn fatal(e: &Error) -> bool {
    e.is_unavailable() || matches!(e, Error::Fenced)
}

impl Firer {
    /// A firer whose replaced tasks are kept for `retention_ms`.
    pub fn new(store: &Store, retention_ms: u64) -> Firer {
        Firer {
            store: store.clone(),
            retention_ms,
            cache: HashMap::new(),
            swept: Instant::now(),
            broken: None,
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

    /// The job's parsed schedule (`None`: on demand only), or why its cron
    /// expression or zone does not parse.
    fn schedule(&mut self, spec: &JobSpec) -> std::result::Result<Option<Schedule>, String> {
        let Some(expr) = spec.cron.as_ref() else {
            return Ok(None);
        };
        if let Some(c) = self.cache.get_mut(&spec.id)
            && c.cron == *expr
            && c.timezone == spec.timezone
        {
            c.used = Instant::now();
            return Ok(Some(c.schedule.clone()));
        }
        let s = Schedule::parse(expr, spec.timezone.as_deref()).map_err(|e| e.to_string())?;
        self.cache.insert(
            spec.id.clone(),
            Cached {
                cron: expr.clone(),
                timezone: spec.timezone.clone(),
                schedule: s.clone(),
                used: Instant::now(),
            },
        );
        Ok(Some(s))
    }

    /// The ids marked broken, loaded from Redis once per term.
    fn broken(&mut self, conn: &mut Conn, fence: &Fence) -> Result<&mut HashSet<String>> {
        if self.broken.as_ref().is_none_or(|(e, _)| *e != fence.epoch) {
            let keys = &self.store.keys;
            let ids: Vec<String> =
                conn.run(|c| redis::cmd("SMEMBERS").arg(keys.jobs_broken()).query(c))?;
            self.broken = Some((fence.epoch, ids.into_iter().collect()));
        }
        Ok(&mut self.broken.as_mut().expect("loaded").1)
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
        let mut marks: Vec<Mark> = Vec::new();
        for (id, slot, json) in &due {
            let parsed = parse_record(json).and_then(|job| {
                let schedule = if job.enabled {
                    self.schedule(&job)?
                } else {
                    None
                };
                Ok((job, schedule))
            });
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
            match parsed {
                Ok((job, Some(schedule))) => {
                    // A retry time (not a slot): fire from the first slot at
                    // or after it. No slot left: off the schedule.
                    if let Some(first) = schedule.next_after(slot - 1) {
                        if first > now {
                            fire.next = Some(first);
                        } else {
                            let d = schedule.due(
                                first,
                                now,
                                job.misfire_threshold_ms as i64,
                                job.misfire,
                                job.fire_all_cap as usize,
                            );
                            fire.next = d.next;
                            fire.skipped = d.skipped;
                            fire.skipped_exact = d.skipped_exact;
                            fire.fire = d.fire;
                        }
                        fire.concurrency = job.concurrency.as_str();
                        fire.expires_ms = job.expires_ms.unwrap_or(0);
                        fire.fields = job
                            .task_spec(None)
                            .fields("")
                            .into_iter()
                            .filter(|(k, _)| *k != "id")
                            .collect();
                    }
                }
                // Disabled, or on demand only: taken off the schedule (no
                // next slot).
                Ok((_, None)) => {}
                // Unreadable: skip it, mark it, retry it later.
                Err(message) => {
                    marks.push(Mark {
                        id: id.clone(),
                        kind: "record",
                        message,
                        from: vec![*slot],
                    });
                    continue;
                }
            }
            jobs.push(fire);
        }
        let created = self.fire_all(conn, fence, &jobs, &mut marks)?;
        // Jobs that fired again (or were taken off the schedule) lose
        // their mark.
        let fired: Vec<String> = jobs
            .iter()
            .map(|j| j.id.to_string())
            .filter(|id| !marks.iter().any(|m| &m.id == id))
            .collect();
        let broken = self.broken(conn, fence)?;
        let mut clears: Vec<Mark> = Vec::new();
        for id in fired {
            if broken.remove(&id) {
                clears.push(Mark {
                    id,
                    kind: "",
                    message: String::new(),
                    from: Vec::new(),
                });
            }
        }
        for m in &marks {
            broken.insert(m.id.clone());
        }
        for m in marks.iter().chain(&clears) {
            self.mark(conn, fence, m)?;
        }
        if created > 0 {
            log::debug!("scheduler: {} jobs due, {created} tasks created", due.len());
        }
        Ok(Fired {
            due: due.len(),
            created,
        })
    }

    /// Marks job `id` broken with `message` (kind `record`, no schedule
    /// move) outside a firing: the jobs-file sync's unreadable records.
    pub fn mark_unreadable(
        &mut self,
        conn: &mut Conn,
        fence: &Fence,
        id: &str,
        message: &str,
    ) -> Result<()> {
        self.broken(conn, fence)?.insert(id.to_string());
        self.mark(
            conn,
            fence,
            &Mark {
                id: id.to_string(),
                kind: "record",
                message: message.to_string(),
                from: Vec::new(),
            },
        )
    }

    /// Writes one mark (see `JOB_MARK`); logs it when it changed.
    fn mark(&self, conn: &mut Conn, fence: &Fence, m: &Mark) -> Result<()> {
        let keys = &self.store.keys;
        let call = calls::JobMark {
            fence,
            id: &m.id,
            kind: m.kind,
            message: &m.message,
            retry_ms: (!m.from.is_empty()).then(|| BROKEN_RETRY.as_millis() as u64),
            from: &m.from,
        };
        let changed: Result<i64> = conn.run(|c| call.invocation(keys).invoke(c));
        match changed {
            Ok(1) if m.kind.is_empty() => {
                log::info!(
                    "scheduler: job {} fires again (its error mark is cleared)",
                    m.id
                );
            }
            Ok(1) => log::error!(
                "scheduler: job {} skipped ({} error): {}; retried every {BROKEN_RETRY:?}, see `distsched job show {}`",
                m.id,
                m.kind,
                m.message,
                m.id
            ),
            Ok(_) => {}
            Err(e) if fatal(&e) => return Err(e),
            // A job whose state cannot even be marked: logged at debug
            // only, it is retried with every tick it is due.
            Err(e) => log::debug!("scheduler: job {}: cannot mark it broken: {e}", m.id),
        }
        Ok(())
    }

    /// Fires `jobs`; a job whose firing fails in Redis is pushed onto
    /// `marks` and left out, and the others are fired. Returns the tasks
    /// created (those of a failed call are not counted).
    ///
    /// `FIRE` checks every input before it writes and handles its jobs in
    /// order, each job's tasks before its schedule move: after a failed
    /// call the jobs before the failing one are fired and have moved on,
    /// the failing one has not moved, the ones after it are untouched. So
    /// each job is fired again on its own: the ones already fired no longer
    /// hold the slot they were due at and do nothing (the compare-and-set),
    /// the others fire, and the ones that fail alone are the culprits.
    fn fire_all(
        &self,
        conn: &mut Conn,
        fence: &Fence,
        jobs: &[calls::FireJob],
        marks: &mut Vec<Mark>,
    ) -> Result<usize> {
        let e = match self.fire(conn, fence, jobs.to_vec()) {
            Ok(n) => return Ok(n),
            Err(e) if fatal(&e) => return Err(e),
            Err(e) => e,
        };
        let failed = |j: &calls::FireJob, e: &Error| Mark {
            id: j.id.to_string(),
            kind: "firing",
            message: e.to_string(),
            // The slot it was due at, or the next one if the failed script
            // moved it before its error.
            from: std::iter::once(j.due_at).chain(j.next).collect(),
        };
        if jobs.len() == 1 {
            marks.push(failed(&jobs[0], &e));
            return Ok(0);
        }
        let mut created = 0;
        for j in jobs {
            match self.fire(conn, fence, vec![j.clone()]) {
                Ok(n) => created += n,
                Err(e) if fatal(&e) => return Err(e),
                Err(e) => marks.push(failed(j, &e)),
            }
        }
        Ok(created)
    }

    /// One `FIRE` call for `jobs` (nothing to do when empty).
    fn fire(&self, conn: &mut Conn, fence: &Fence, jobs: Vec<calls::FireJob>) -> Result<usize> {
        if jobs.is_empty() {
            return Ok(0);
        }
        let call = calls::Fire {
            fence,
            retention_ms: self.retention_ms,
            jobs,
        };
        let keys = &self.store.keys;
        conn.run(|c| call.invocation(keys).invoke(c))
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
            assert!(matches!(firer.schedule(&spec), Ok(Some(_))));
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
