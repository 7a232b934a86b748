//! [`Client`]'s cron job calls: add, replace, remove, enable, read, trigger.

use super::*;
use crate::model::job::JobError;

impl Client {
    /// Adds job `spec`. Fails with [`Error::Config`] when the definition is
    /// invalid (bad cron, time zone, executor name, …) or the id exists;
    /// nothing is stored then.
    pub fn add_job(&mut self, spec: &JobSpec) -> Result<()> {
        match self.put_job_mode(spec, "create")? {
            0 => Err(Error::Config(format!("job `{}` already exists", spec.id))),
            _ => Ok(()),
        }
    }

    /// Adds or replaces job `spec`; returns true if it was new. When the
    /// schedule (cron, time zone, enabled) is unchanged, the stored next fire
    /// time is kept.
    pub fn put_job(&mut self, spec: &JobSpec) -> Result<bool> {
        Ok(self.put_job_mode(spec, "upsert")? == 1)
    }

    /// Drops the broken mark of job `id` (its record was just replaced;
    /// the scheduler marks it again if the new one fails too).
    fn clear_mark(&mut self, id: &str) -> Result<()> {
        let keys = &self.store.keys;
        self.conn.run(|c| {
            redis::pipe()
                .hdel(keys.job_state(id), &["error", "error_kind", "error_ms"])
                .ignore()
                .srem(keys.jobs_broken(), id)
                .ignore()
                .query::<()>(c)
        })
    }

    fn put_job_mode(&mut self, spec: &JobSpec, mode: &str) -> Result<i64> {
        let schedule = spec.validate()?;
        // Redis time, as every firing uses: a host with a wrong clock must
        // not move a new job's first slot.
        let (secs, micros): (i64, i64) = self.conn.run(|c| redis::cmd("TIME").query(c))?;
        let now = secs * 1000 + micros / 1000;
        let next = match (&schedule, spec.enabled) {
            (Some(s), true) => s.next_after(now).map(|t| t.to_string()).unwrap_or_default(),
            _ => String::new(),
        };
        let schedule_key = format!(
            "{}|{}|{}",
            spec.cron.as_deref().unwrap_or(""),
            spec.timezone.as_deref().unwrap_or(""),
            spec.enabled
        );
        let json = serde_json::to_string(spec)?;
        let keys = &self.store.keys;
        let put = self.conn.run(|c| {
            calls::JobPut {
                id: &spec.id,
                json: &json,
                create: mode == "create",
                next_fire: &next,
                schedule_key: &schedule_key,
            }
            .invocation(keys)
            .invoke(c)
        })?;
        if put != 0 {
            self.clear_mark(&spec.id)?;
        }
        Ok(put)
    }

    /// Removes job `id` (its tasks run on).
    pub fn remove_job(&mut self, id: &str) -> Result<()> {
        let keys = &self.store.keys;
        let removed: i64 = self
            .conn
            .run(|c| calls::JobRm { id }.invocation(keys).invoke(c))?;
        if removed == 0 {
            return Err(Error::NotFound(format!("job {id}")));
        }
        self.clear_mark(id)
    }

    /// Enables or disables job `id`. Enabling schedules it from now on.
    pub fn set_job_enabled(&mut self, id: &str, enabled: bool) -> Result<()> {
        let mut spec = self.job(id)?.readable()?;
        spec.enabled = enabled;
        self.put_job(&spec).map(drop)
    }

    /// Job `id` with its next fire time and recent history.
    pub fn job(&mut self, id: &str) -> Result<JobStatus> {
        self.jobs_by_id(&[id.to_string()])?
            .pop()
            .ok_or_else(|| Error::NotFound(format!("job {id}")))
    }

    /// Every stored job record, parsed or with why it does not parse (the
    /// jobs-file sync reads them all once per term).
    pub(crate) fn job_records(
        &mut self,
    ) -> Result<Vec<(String, std::result::Result<JobSpec, String>)>> {
        let keys = &self.store.keys;
        let all: Vec<(String, String)> = self
            .conn
            .run(|c| redis::cmd("HGETALL").arg(keys.jobs()).query(c))?;
        Ok(all
            .into_iter()
            .map(|(id, json)| {
                let parsed = crate::model::job::parse_record(&json);
                (id, parsed)
            })
            .collect())
    }

    /// How many jobs the leader has marked broken (`distsched_jobs_broken`).
    pub fn broken_jobs(&mut self) -> Result<u64> {
        let keys = &self.store.keys;
        self.conn
            .run(|c| redis::cmd("SCARD").arg(keys.jobs_broken()).query(c))
    }

    /// Every job, sorted by id; a job whose stored record cannot be read is
    /// listed with `spec: None` and its error.
    pub fn jobs(&mut self) -> Result<Vec<JobStatus>> {
        let keys = &self.store.keys;
        let mut ids: Vec<String> = self
            .conn
            .run(|c| redis::cmd("HKEYS").arg(keys.jobs()).query(c))?;
        ids.sort();
        self.jobs_by_id(&ids)
    }

    fn jobs_by_id(&mut self, ids: &[String]) -> Result<Vec<JobStatus>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys = &self.store.keys;
        let replies: Vec<redis::Value> = self.conn.run(|c| {
            let mut pipe = redis::pipe();
            // One bad key (a history that is not a list) must not hide
            // every job: each reply is checked on its own below.
            pipe.ignore_errors();
            for id in ids {
                pipe.hget(keys.jobs(), id)
                    .zscore(keys.schedule(), id)
                    .hgetall(keys.job_state(id))
                    .lrange(keys.job_history(id), 0, -1);
            }
            pipe.query(c)
        })?;
        let mut out = Vec::new();
        for (id, r) in ids.iter().zip(replies.chunks(4)) {
            let json: Option<String> = redis::from_redis_value(r[0].clone())?;
            let Some(json) = json else { continue };
            let next: Option<f64> = redis::from_redis_value(r[1].clone())?;
            let state: HashMap<String, String> = redis::from_redis_value(r[2].clone())?;
            // A history that is not a list (a broken job) reads as empty.
            let history: Vec<String> = redis::from_redis_value(r[3].clone()).unwrap_or_default();
            let count = |k: &str| state.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
            let since_ms = state.get("error_ms").and_then(|v| v.parse().ok());
            let (spec, error) = match crate::model::job::parse_record(&json) {
                Ok(spec) => {
                    let error = state.get("error").map(|message| JobError {
                        kind: state
                            .get("error_kind")
                            .cloned()
                            .unwrap_or_else(|| "firing".into()),
                        message: message.clone(),
                        since_ms,
                    });
                    (Some(spec), error)
                }
                // Read as it is now, whatever the leader saw last.
                Err(message) => (
                    None,
                    Some(JobError {
                        kind: "record".into(),
                        message,
                        since_ms,
                    }),
                ),
            };
            out.push(JobStatus {
                id: id.clone(),
                spec,
                next_fire_ms: next.map(|n| n as i64),
                history,
                skips: count("skips"),
                fired: count("fired"),
                error,
            });
        }
        Ok(out)
    }

    /// Runs job `id` now, outside its schedule (a new task id each time),
    /// with `payload` instead of the job's when given. The job's concurrency
    /// policy applies to later scheduled firings, which see this task.
    pub fn trigger_job(
        &mut self,
        id: &str,
        payload: Option<&serde_json::Value>,
    ) -> Result<Submitted> {
        let job = self.job(id)?.readable()?;
        let mut task = job.task_spec(None);
        if let Some(p) = payload {
            task.payload = p.to_string();
        }
        task.track_active = job.concurrency != Concurrency::Allow;
        self.submit(&task)
    }
}
