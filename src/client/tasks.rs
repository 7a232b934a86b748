//! [`Client`]'s task calls: submit, read, list, cancel, logs, wait.

use super::*;

impl Client {
    /// Submits a task and wakes the leader. With an idempotency key that was
    /// used before (within the retention), creates nothing and returns the
    /// first task's id. With `wait_replicas` set ([`Client::open_with`]),
    /// returns only once that many replicas acknowledged the write, or
    /// [`Error::NotReplicated`].
    pub fn submit(&mut self, spec: &TaskSpec) -> Result<Submitted> {
        let (keys, args) = self.submit_call(spec)?;
        let (created, id): (i64, String) = self.conn.run(|c| {
            let mut inv = crate::store::scripts::SUBMIT.prepare_invoke();
            for k in &keys {
                inv.key(k);
            }
            for a in &args {
                inv.arg(a);
            }
            inv.invoke(c)
        })?;
        self.store.wait_replicas(&mut self.conn)?;
        Ok(Submitted {
            id,
            created: created == 1,
        })
    }

    /// Submits many tasks in one pipelined round trip (plus one to load the
    /// script). Each task is created atomically on its own; the results are
    /// in the order of `specs`.
    pub fn submit_many(&mut self, specs: &[TaskSpec]) -> Result<Vec<Submitted>> {
        let calls = specs
            .iter()
            .map(|s| self.submit_call(s))
            .collect::<Result<Vec<_>>>()?;
        let replies: Vec<(i64, String)> = self.conn.run(|c| {
            let sha = crate::store::scripts::SUBMIT.load(c)?;
            let mut pipe = redis::pipe();
            for (keys, args) in &calls {
                pipe.cmd("EVALSHA")
                    .arg(&sha)
                    .arg(keys.len())
                    .arg(keys)
                    .arg(args);
            }
            pipe.query(c)
        })?;
        self.store.wait_replicas(&mut self.conn)?;
        Ok(replies
            .into_iter()
            .map(|(created, id)| Submitted {
                id,
                created: created == 1,
            })
            .collect())
    }

    /// The keys and arguments of one `SUBMIT` call.
    fn submit_call(&self, spec: &TaskSpec) -> Result<(Vec<String>, Vec<String>)> {
        spec.validate()?;
        let id = spec
            .id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        Ok(calls::Submit {
            id: &id,
            ready_ms: spec.not_before_ms.unwrap_or(0),
            priority: spec.priority,
            idempotency_key: spec.key.as_deref(),
            key_ttl_ms: self.retention.as_millis() as u64,
            track_in_job: spec.track_active.then(|| spec.job.as_deref().unwrap_or("")),
            delay_ms: spec.delay.map_or(0, |d| d.as_millis() as u64),
            expires_ms: spec.expires.map_or(0, |d| d.as_millis() as u64),
            fields: spec.fields(&id),
        }
        .parts(&self.store.keys))
    }

    /// The task `id`.
    pub fn task(&mut self, id: &str) -> Result<Task> {
        let key = self.store.keys.task(id);
        let fields: HashMap<String, String> = self
            .conn
            .run(|c| redis::cmd("HGETALL").arg(&key).query(c))?;
        Task::from_fields(fields)?.ok_or_else(|| Error::NotFound(format!("task {id}")))
    }

    /// Recent tasks, newest first, filtered.
    pub fn list(&mut self, filter: &ListFilter) -> Result<Vec<Task>> {
        let limit = if filter.limit == 0 { 100 } else { filter.limit };
        let keys = &self.store.keys;
        let mut out = Vec::new();
        let mut offset = 0usize;
        const PAGE: usize = 500;
        while out.len() < limit && offset < LIST_SCAN_LIMIT {
            let ids: Vec<String> = self.conn.run(|c| {
                redis::cmd("ZRANGE")
                    .arg(keys.tasks())
                    .arg(offset)
                    .arg(offset + PAGE - 1)
                    .arg("REV")
                    .query(c)
            })?;
            if ids.is_empty() {
                break;
            }
            offset += ids.len();
            let records: Vec<HashMap<String, String>> = self.conn.run(|c| {
                let mut pipe = redis::pipe();
                for id in &ids {
                    pipe.hgetall(keys.task(id));
                }
                pipe.query(c)
            })?;
            for fields in records {
                let Some(task) = Task::from_fields(fields)? else {
                    continue; // expired
                };
                if filter.status.is_some_and(|s| s != task.status)
                    || filter
                        .job
                        .as_ref()
                        .is_some_and(|j| task.job.as_ref() != Some(j))
                {
                    continue;
                }
                out.push(task);
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Cancels task `id`; returns its status before the call. A pending or
    /// delayed task is cancelled at once; a running one is stopped by its
    /// worker. Cancelling an ended task changes nothing.
    pub fn cancel(&mut self, id: &str) -> Result<Status> {
        let keys = &self.store.keys;
        let before: String = self.conn.run(|c| {
            calls::Cancel {
                id,
                retention_ms: self.retention.as_millis() as u64,
            }
            .invocation(keys)
            .invoke(c)
        })?;
        if before.is_empty() {
            return Err(Error::NotFound(format!("task {id}")));
        }
        Status::parse(&before)
    }

    /// The task's log lines, oldest first.
    pub fn logs(&mut self, id: &str) -> Result<Vec<String>> {
        let keys = &self.store.keys;
        let (exists, lines): (bool, Vec<String>) = self.conn.run(|c| {
            redis::pipe()
                .exists(keys.task(id))
                .lrange(keys.log(id), 0, -1)
                .query(c)
        })?;
        if !exists && lines.is_empty() {
            return Err(Error::NotFound(format!("task {id}")));
        }
        Ok(lines)
    }

    /// Waits up to `timeout` for task `id` to end. Returns the ended task, or
    /// `None` if it is still going at the deadline. Blocks on a completion
    /// notice rather than polling.
    pub fn wait(&mut self, id: &str, timeout: Duration) -> Result<Option<Task>> {
        let deadline = Instant::now() + timeout;
        let keys = &self.store.keys;
        loop {
            let fields: HashMap<String, String> = self
                .conn
                .run(|c| calls::WaitMark { id }.invocation(keys).invoke(c))?;
            let task =
                Task::from_fields(fields)?.ok_or_else(|| Error::NotFound(format!("task {id}")))?;
            if task.status.is_terminal() {
                return Ok(Some(task));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            // Re-check at least every second, in case another waiter took
            // the notice.
            let block = left.min(Duration::from_secs(1));
            self.conn.run_blocking(block, |c| {
                redis::cmd("BLPOP")
                    .arg(keys.done(id))
                    .arg(block.as_secs_f64().max(0.01))
                    .query::<Option<(String, String)>>(c)
            })?;
        }
    }
}
