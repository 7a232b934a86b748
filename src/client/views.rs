//! [`Client`]'s reads for the dashboard (and any script that wants the
//! same views): a bounded task search with a cursor, failures grouped by
//! normalised error, per-minute history, a page of jobs with their next
//! fire times and last firings, a log tail from a line number, and "run
//! again". Every call's Redis work is bounded by its window or limit,
//! never by the number of tasks or jobs stored.

use serde::Serialize;

use super::*;
use crate::schedule::Schedule;

/// Most task-index entries one [`Client::search`] examines.
pub const SEARCH_WINDOW_MAX: usize = 10_000;
/// Index entries one `SEARCH` script call examines (a few ms of Redis).
const SEARCH_CHUNK: usize = 1_000;
/// Most minutes [`Client::history`] returns: 24 h, as long as the
/// per-minute counters are kept.
pub const HISTORY_MINUTES_MAX: usize = 1440;
/// Most jobs one [`Client::job_page`] returns.
pub const JOB_PAGE_MAX: usize = 100;
/// Most next fire times [`Client::next_fires`] computes.
pub const NEXT_FIRES_MAX: usize = 100;
/// Most log lines one [`Client::logs_since`] returns.
pub const LOG_CHUNK_MAX: usize = 1_000;
/// Longest error text a [`TaskRow`] carries, in bytes.
const ROW_ERROR_MAX: usize = 300;

/// A task as lists show it: no payload, result or log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskRow {
    /// Task id.
    pub id: String,
    /// Status.
    pub status: String,
    /// Executor name.
    pub executor: String,
    /// Job id, if any.
    pub job: Option<String>,
    /// Worker holding it or that ran it last.
    pub worker: Option<String>,
    /// Creation, Unix ms.
    pub created_ms: u64,
    /// Last start, Unix ms.
    pub started_ms: Option<u64>,
    /// End, Unix ms.
    pub ended_ms: Option<u64>,
    /// Dispatch count.
    pub attempt: u32,
    /// Error of the last failed attempt (its first 300 bytes).
    pub error: Option<String>,
    /// Progress of the current attempt, 0..=100, if it reported any.
    pub progress: Option<u8>,
}

/// What [`Client::search`] looks for; empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskQuery {
    /// Only this status.
    pub status: Option<Status>,
    /// Only tasks of this job.
    pub job: Option<String>,
    /// Only this executor.
    pub executor: Option<String>,
    /// Only tasks held by or last run on this worker.
    pub worker: Option<String>,
    /// Ids starting with this.
    pub id_prefix: Option<String>,
    /// Payloads (JSON text) containing this.
    pub payload: Option<String>,
    /// Errors containing this.
    pub error: Option<String>,
    /// Errors whose [`normalise_error`] form is this.
    pub error_group: Option<String>,
    /// Tasks that ended at or after this, Unix ms.
    pub ended_after_ms: Option<u64>,
    /// Where to continue: a [`TaskPage::cursor`] of an earlier call.
    pub cursor: Option<String>,
    /// Most tasks returned (default 100).
    pub limit: usize,
    /// Most index entries examined (default and most
    /// [`SEARCH_WINDOW_MAX`]).
    pub window: usize,
}

/// One page of a [`Client::search`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskPage {
    /// Matching tasks, newest first.
    pub tasks: Vec<TaskRow>,
    /// Index entries examined by this call.
    pub scanned: usize,
    /// The most it would examine.
    pub window: usize,
    /// Creation time of the oldest task examined, Unix ms.
    pub oldest_ms: Option<u64>,
    /// Pass back as [`TaskQuery::cursor`] to go on from here; `None` when
    /// the index was read to its end.
    pub cursor: Option<String>,
    /// True when the whole index (from the cursor on) was examined.
    pub complete: bool,
}

/// One minute of the per-minute counters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MinuteCounts {
    /// Start of the minute, Unix ms (Redis clock).
    pub minute_ms: u64,
    /// Tasks that ended well.
    pub succeeded: u64,
    /// Tasks that ended failed.
    pub failed: u64,
    /// Failed attempts scheduled for a retry.
    pub retried: u64,
    /// Attempts stopped by their timeout.
    pub timeouts: u64,
}

/// Failed tasks that share a normalised error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureGroup {
    /// The error with numbers and ids replaced by `#` ([`normalise_error`]).
    pub pattern: String,
    /// The latest error of the group, as it was.
    pub example: String,
    /// Tasks of the group that ended in the last hour.
    pub last_hour: usize,
    /// Tasks of the group that ended in the last 24 h.
    pub last_day: usize,
    /// When the latest one ended, Unix ms.
    pub last_ms: u64,
    /// The latest one's id.
    pub last_id: String,
}

/// Failed tasks of the last hour and day, grouped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failures {
    /// Redis time of the reading, Unix ms.
    pub now_ms: u64,
    /// Groups, most failures in the last hour first, then in the day.
    pub groups: Vec<FailureGroup>,
    /// Failed tasks found that ended in the last hour.
    pub last_hour: usize,
    /// Failed tasks found that ended in the last 24 h.
    pub last_day: usize,
    /// Task-index entries examined (newest first).
    pub scanned: usize,
    /// Creation time of the oldest task examined, Unix ms.
    pub oldest_ms: Option<u64>,
    /// True when every stored task was examined.
    pub complete: bool,
}

/// One firing of a job, with its task's state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Firing {
    /// When the event was recorded, Unix ms.
    pub at_ms: u64,
    /// The slot fired, Unix ms.
    pub slot_ms: i64,
    /// The task it created.
    pub task: String,
    /// The task's status (`None` once it expired).
    pub status: Option<String>,
    /// When the task started, Unix ms.
    pub started_ms: Option<u64>,
    /// When it ended, Unix ms.
    pub ended_ms: Option<u64>,
}

/// A job as the dashboard's Jobs page shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobView {
    /// Job id.
    pub id: String,
    /// The definition; `None` when the stored record does not parse.
    pub spec: Option<JobSpec>,
    /// Why the job cannot fire (a record or schedule that does not parse).
    pub error: Option<String>,
    /// Next fire time, Unix ms (none for on-demand or disabled jobs).
    pub next_fire_ms: Option<i64>,
    /// The next fire times from the stored next one on.
    pub next_fires: Vec<i64>,
    /// Firings made, in total.
    pub fired: u64,
    /// Firings skipped, in total.
    pub skips: u64,
    /// The latest firings, newest first.
    pub firings: Vec<Firing>,
    /// The latest other events (skips, misfires, replacements), newest
    /// first.
    pub events: Vec<String>,
}

/// One page of jobs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobPage {
    /// The jobs, sorted by id within the page.
    pub jobs: Vec<JobView>,
    /// Pass back to [`Client::job_page`] for the next page; `None` after
    /// the last.
    pub cursor: Option<u64>,
}

/// Log lines from a line number on ([`Client::logs_since`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogChunk {
    /// Task id.
    pub id: String,
    /// The task's status now.
    pub status: Status,
    /// The lines, oldest first.
    pub lines: Vec<String>,
    /// Number of the first line returned (lines count from 0, the task's
    /// first line ever).
    pub first: u64,
    /// Number to ask for next (`first` + the lines returned).
    pub next: u64,
    /// Lines the log holds or held in all.
    pub total: u64,
    /// Oldest lines dropped by the log caps.
    pub dropped: u64,
}

/// `error` with every word that holds a digit (numbers, ids, addresses,
/// paths with numbers) replaced by `#`, and runs of spaces folded, so
/// errors that differ only in such details fall into one group.
pub fn normalise_error(error: &str) -> String {
    let mut out = String::with_capacity(error.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.bytes().any(|b| b.is_ascii_digit()) {
            if !out.ends_with('#') {
                out.push('#');
            }
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in error.chars() {
        if c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '@') {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            if c.is_whitespace() {
                if !out.ends_with(' ') && !out.is_empty() {
                    out.push(' ');
                }
            } else {
                out.push(c);
            }
        }
    }
    flush(&mut word, &mut out);
    out.trim().to_string()
}

/// A search cursor: `<score>-<id>` of the last entry examined.
fn parse_cursor(cursor: &str) -> Result<(String, String)> {
    let bad = || {
        Error::Config(format!(
            "invalid cursor `{cursor}` (pass back a returned one)"
        ))
    };
    let (score, id) = cursor.split_once('-').ok_or_else(bad)?;
    if id.is_empty() || score.parse::<u64>().is_err() {
        return Err(bad());
    }
    Ok((score.to_string(), id.to_string()))
}

type SearchRow = Vec<String>;
type SearchReply = (usize, String, String, u8, Vec<SearchRow>);

impl Client {
    /// Tasks matching `query`, newest first: examines at most
    /// `query.window` (≤ [`SEARCH_WINDOW_MAX`]) entries of the task index
    /// from the cursor on and stops at `query.limit` matches. Entries are
    /// read in script calls of `limit` entries first, then twice as many
    /// each time up to 1,000 (a few ms of Redis each), so an unfiltered
    /// page costs one call of `limit` entries.
    pub fn search(&mut self, query: &TaskQuery) -> Result<TaskPage> {
        let limit = if query.limit == 0 { 100 } else { query.limit };
        let window = match query.window {
            0 => SEARCH_WINDOW_MAX,
            n => n.min(SEARCH_WINDOW_MAX),
        };
        let (mut cur_score, mut cur_id) = match &query.cursor {
            Some(c) => parse_cursor(c)?,
            None => (String::new(), String::new()),
        };
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        let status = query.status.map(|s| s.as_str().to_string());
        let status = match (&status, &query.error_group) {
            (None, Some(_)) => "failed".to_string(),
            _ => status.unwrap_or_default(),
        };
        let ended = query
            .ended_after_ms
            .map(|t| t.to_string())
            .unwrap_or_default();
        let keys = &self.store.keys;
        let mut page = TaskPage {
            tasks: Vec::new(),
            scanned: 0,
            window,
            oldest_ms: None,
            cursor: None,
            complete: false,
        };
        // The first chunk is the page's size (all of it when nothing is
        // filtered out), each next one twice the last, up to SEARCH_CHUNK.
        let mut chunk = limit.clamp(1, SEARCH_CHUNK);
        while page.scanned < window && page.tasks.len() < limit {
            let count = chunk.min(window - page.scanned);
            chunk = (chunk * 2).min(SEARCH_CHUNK);
            let (examined, last_id, last_score, exhausted, rows): SearchReply =
                self.conn.run(|c| {
                    calls::Search {
                        cursor: (&cur_id, &cur_score),
                        count,
                        filters: [
                            &status,
                            &opt(&query.job),
                            &opt(&query.executor),
                            &opt(&query.worker),
                            &opt(&query.id_prefix),
                            &opt(&query.payload),
                            &opt(&query.error),
                            &ended,
                        ],
                    }
                    .invocation(keys)
                    .invoke(c)
                })?;
            let mut stopped = None;
            for row in rows {
                let Some(task) = task_row(&row) else { continue };
                if let Some(group) = &query.error_group
                    && task.error.as_deref().map(normalise_error).as_ref() != Some(group)
                {
                    continue;
                }
                page.tasks.push(task);
                if page.tasks.len() == limit {
                    stopped = Some((
                        row[0].parse::<usize>().unwrap_or(examined),
                        row[2].clone(),
                        row[1].clone(),
                    ));
                    break;
                }
            }
            match stopped {
                Some((position, score, id)) => {
                    page.scanned += position;
                    (cur_score, cur_id) = (score, id);
                    page.oldest_ms = cur_score.parse().ok();
                    page.cursor = Some(format!("{cur_score}-{cur_id}"));
                    // More may follow in the chunk even when it was the last.
                    return Ok(page);
                }
                None => {
                    page.scanned += examined;
                    if examined > 0 {
                        (cur_score, cur_id) = (last_score, last_id);
                        page.oldest_ms = cur_score.parse().ok();
                    }
                }
            }
            if exhausted == 1 {
                page.complete = true;
                return Ok(page);
            }
        }
        if !cur_id.is_empty() {
            page.cursor = Some(format!("{cur_score}-{cur_id}"));
        }
        Ok(page)
    }

    /// Redis time, Unix ms.
    fn redis_now_ms(&mut self) -> Result<u64> {
        let (s, us): (u64, u64) = self.conn.run(|c| redis::cmd("TIME").query(c))?;
        Ok(s * 1000 + us / 1000)
    }

    /// The per-minute counters of the last `minutes` minutes (1 to
    /// [`HISTORY_MINUTES_MAX`]), oldest first, the current minute last:
    /// `TIME` and one pipeline of `minutes` `HGETALL`s.
    pub fn history(&mut self, minutes: usize) -> Result<Vec<MinuteCounts>> {
        if !(1..=HISTORY_MINUTES_MAX).contains(&minutes) {
            return Err(Error::Config(format!(
                "invalid minutes {minutes}: expected 1 to {HISTORY_MINUTES_MAX}"
            )));
        }
        let now = self.redis_now_ms()?;
        let this = now / 60_000;
        let first = this + 1 - minutes as u64;
        let keys = &self.store.keys;
        let replies: Vec<HashMap<String, u64>> = self.conn.run(|c| {
            let mut pipe = redis::pipe();
            for m in first..=this {
                pipe.hgetall(keys.stats_minute(m));
            }
            pipe.query(c)
        })?;
        Ok(replies
            .into_iter()
            .zip(first..=this)
            .map(|(f, m)| {
                let get = |k: &str| f.get(k).copied().unwrap_or(0);
                MinuteCounts {
                    minute_ms: m * 60_000,
                    succeeded: get("success"),
                    failed: get("failed"),
                    retried: get("retried"),
                    timeouts: get("timeout"),
                }
            })
            .collect())
    }

    /// Failed tasks that ended in the last 24 h, grouped by
    /// [`normalise_error`], from the newest `window` (≤
    /// [`SEARCH_WINDOW_MAX`]) entries of the task index.
    pub fn failures(&mut self, window: usize) -> Result<Failures> {
        let now = self.redis_now_ms()?;
        let hour = now.saturating_sub(3_600_000);
        let query = TaskQuery {
            status: Some(Status::Failed),
            ended_after_ms: Some(now.saturating_sub(86_400_000)),
            limit: usize::MAX,
            window,
            ..TaskQuery::default()
        };
        let page = self.search(&query)?;
        let mut groups: Vec<FailureGroup> = Vec::new();
        let mut by_pattern: HashMap<String, usize> = HashMap::new();
        let (mut last_hour, mut last_day) = (0, 0);
        for task in &page.tasks {
            let ended = task.ended_ms.unwrap_or(0);
            let error = task.error.clone().unwrap_or_default();
            let pattern = normalise_error(&error);
            let at = *by_pattern.entry(pattern.clone()).or_insert_with(|| {
                groups.push(FailureGroup {
                    pattern,
                    example: error.clone(),
                    last_hour: 0,
                    last_day: 0,
                    last_ms: ended,
                    last_id: task.id.clone(),
                });
                groups.len() - 1
            });
            let g = &mut groups[at];
            if ended > g.last_ms {
                (g.last_ms, g.last_id, g.example) = (ended, task.id.clone(), error);
            }
            g.last_day += 1;
            last_day += 1;
            if ended >= hour {
                g.last_hour += 1;
                last_hour += 1;
            }
        }
        groups.sort_by(|a, b| {
            (b.last_hour, b.last_day, b.last_ms).cmp(&(a.last_hour, a.last_day, a.last_ms))
        });
        Ok(Failures {
            now_ms: now,
            groups,
            last_hour,
            last_day,
            scanned: page.scanned,
            oldest_ms: page.oldest_ms,
            complete: page.complete,
        })
    }

    /// The next `count` (1 to [`NEXT_FIRES_MAX`]) fire times of job `id`,
    /// from its stored next fire time on (none for on-demand or disabled
    /// jobs).
    pub fn next_fires(&mut self, id: &str, count: usize) -> Result<Vec<i64>> {
        if !(1..=NEXT_FIRES_MAX).contains(&count) {
            return Err(Error::Config(format!(
                "invalid count {count}: expected 1 to {NEXT_FIRES_MAX}"
            )));
        }
        let job = self.job(id)?;
        // A job whose record cannot be read has no fire times to show.
        Ok(job
            .spec
            .as_ref()
            .and_then(|spec| fires_of(spec, job.next_fire_ms, count))
            .unwrap_or_default())
    }

    /// One page of jobs (at most `limit`, 1 to [`JOB_PAGE_MAX`]) from
    /// `cursor` (0 for the first page), each with its next `fires` fire
    /// times (≤ [`NEXT_FIRES_MAX`]) and latest `firings` firings (≤ 50, the
    /// history kept). Pages follow Redis's `HSCAN` order; three round
    /// trips, bounded by the page.
    pub fn job_page(
        &mut self,
        cursor: u64,
        limit: usize,
        fires: usize,
        firings: usize,
    ) -> Result<JobPage> {
        if !(1..=JOB_PAGE_MAX).contains(&limit) {
            return Err(Error::Config(format!(
                "invalid limit {limit}: expected 1 to {JOB_PAGE_MAX}"
            )));
        }
        if fires > NEXT_FIRES_MAX || firings > 50 {
            return Err(Error::Config(format!(
                "invalid fires {fires} or firings {firings}: at most {NEXT_FIRES_MAX} and 50"
            )));
        }
        let keys = &self.store.keys;
        let (next, flat): (u64, Vec<String>) = self.conn.run(|c| {
            redis::cmd("HSCAN")
                .arg(keys.jobs())
                .arg(cursor)
                .arg("COUNT")
                .arg(limit)
                .query(c)
        })?;
        let mut records: Vec<(String, String)> = flat
            .chunks(2)
            .filter(|p| p.len() == 2)
            .map(|p| (p[0].clone(), p[1].clone()))
            .collect();
        records.sort();
        let replies: Vec<redis::Value> = self.conn.run(|c| {
            let mut pipe = redis::pipe();
            for (id, _) in &records {
                pipe.zscore(keys.schedule(), id)
                    .hgetall(keys.job_state(id))
                    .lrange(keys.job_history(id), 0, -1);
            }
            pipe.query(c)
        })?;
        let mut jobs = Vec::with_capacity(records.len());
        for ((id, json), r) in records.iter().zip(replies.chunks(3)) {
            let next: Option<f64> = redis::from_redis_value(r[0].clone())?;
            let state: HashMap<String, String> = redis::from_redis_value(r[1].clone())?;
            let history: Vec<String> = redis::from_redis_value(r[2].clone())?;
            let count = |k: &str| state.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
            let next_fire_ms = next.map(|n| n as i64);
            let (spec, error) = match serde_json::from_str::<JobSpec>(json) {
                Ok(spec) => match spec.validate() {
                    Ok(_) => (Some(spec), None),
                    Err(e) => (Some(spec), Some(e.to_string())),
                },
                Err(e) => (None, Some(format!("stored record does not parse: {e}"))),
            };
            let next_fires = match &spec {
                Some(s) if error.is_none() && fires > 0 => {
                    fires_of(s, next_fire_ms, fires).unwrap_or_default()
                }
                _ => Vec::new(),
            };
            let mut view = JobView {
                id: id.clone(),
                spec,
                error,
                next_fire_ms,
                next_fires,
                fired: count("fired"),
                skips: count("skips"),
                firings: Vec::new(),
                events: Vec::new(),
            };
            for line in &history {
                match parse_firing(line) {
                    Some(f) if view.firings.len() < firings => view.firings.push(f),
                    Some(_) => {}
                    None if view.events.len() < 10 => view.events.push(line.clone()),
                    None => {}
                }
            }
            jobs.push(view);
        }
        let tasks: Vec<String> = jobs
            .iter()
            .flat_map(|j| j.firings.iter().map(|f| f.task.clone()))
            .collect();
        if !tasks.is_empty() {
            type Fields = (Option<String>, Option<u64>, Option<u64>);
            let states: Vec<Fields> = self.conn.run(|c| {
                let mut pipe = redis::pipe();
                for t in &tasks {
                    pipe.cmd("HMGET")
                        .arg(keys.task(t))
                        .arg("status")
                        .arg("started_ms")
                        .arg("ended_ms");
                }
                pipe.query(c)
            })?;
            let mut states = states.into_iter();
            for f in jobs.iter_mut().flat_map(|j| j.firings.iter_mut()) {
                if let Some((status, started, ended)) = states.next() {
                    (f.status, f.started_ms, f.ended_ms) = (status, started, ended);
                }
            }
        }
        Ok(JobPage {
            jobs,
            cursor: (next != 0).then_some(next),
        })
    }

    /// Log lines of task `id` from line number `first` on (lines count
    /// from the task's first line ever; the oldest may have been dropped
    /// by the caps, then the chunk starts later), at most `limit` (1 to
    /// [`LOG_CHUNK_MAX`]). One script call.
    pub fn logs_since(&mut self, id: &str, first: u64, limit: usize) -> Result<LogChunk> {
        if !(1..=LOG_CHUNK_MAX).contains(&limit) {
            return Err(Error::Config(format!(
                "invalid limit {limit}: expected 1 to {LOG_CHUNK_MAX}"
            )));
        }
        let keys = &self.store.keys;
        let (status, dropped, total, from, lines): (String, u64, u64, u64, Vec<String>) =
            self.conn.run(|c| {
                calls::LogSince { id, first, limit }
                    .invocation(keys)
                    .invoke(c)
            })?;
        if status.is_empty() {
            return Err(Error::NotFound(format!("task {id}")));
        }
        Ok(LogChunk {
            id: id.to_string(),
            status: Status::parse(&status)?,
            next: from + lines.len() as u64,
            first: from,
            lines,
            total,
            dropped,
        })
    }

    /// Runs task `id` again: a new task with the same executor, payload,
    /// priority, timeout, retry policy, tags, routing and job, recording
    /// `rerun_of` = `id` (no idempotency key: a rerun is always new).
    pub fn rerun(&mut self, id: &str) -> Result<Submitted> {
        let key = self.store.keys.task(id);
        let f: HashMap<String, String> = self
            .conn
            .run(|c| redis::cmd("HGETALL").arg(&key).query(c))?;
        if f.is_empty() {
            return Err(Error::NotFound(format!("task {id}")));
        }
        let text = |k: &str| f.get(k).filter(|v| !v.is_empty()).cloned();
        let num = |k: &str| f.get(k).and_then(|v| v.parse::<u64>().ok());
        let ms = |k: &str, d: Duration| num(k).map_or(d, Duration::from_millis);
        let mut spec = TaskSpec::new(text("executor").unwrap_or_default());
        if let Some(p) = text("payload") {
            spec.payload = p;
        }
        if let Some(p) = f.get("priority").and_then(|v| v.parse().ok()) {
            spec.priority = p;
        }
        spec.timeout = ms("timeout_ms", spec.timeout);
        spec.max_retries = num("max_retries").map_or(spec.max_retries, |n| n as u32);
        spec.retry_delay = ms("retry_delay_ms", spec.retry_delay);
        spec.max_delay = ms("max_delay_ms", spec.max_delay);
        if let Some(b) = f.get("backoff").and_then(|v| v.parse().ok()) {
            spec.backoff = b;
        }
        if let Some(j) = f.get("jitter").and_then(|v| v.parse().ok()) {
            spec.jitter = j;
        }
        spec.tags = text("tags")
            .map(|t| t.split(',').map(String::from).collect())
            .unwrap_or_default();
        spec.balancer = text("balancer").and_then(|b| crate::Balancer::parse(&b).ok());
        spec.route_key = text("route_key");
        spec.job = text("job");
        spec.rerun_of = Some(id.to_string());
        self.submit(&spec)
    }
}

/// `count` fire times of `spec` from `next` (its stored next fire time)
/// on; `None` for a job without a (valid) schedule or not scheduled.
fn fires_of(spec: &JobSpec, next: Option<i64>, count: usize) -> Option<Vec<i64>> {
    let schedule = Schedule::parse(spec.cron.as_deref()?, spec.timezone.as_deref()).ok()?;
    let mut t = next?;
    let mut out = vec![t];
    while out.len() < count {
        t = schedule.next_after(t)?;
        out.push(t);
    }
    Some(out)
}

/// A history line `<at> fired <slot> as <task>`.
fn parse_firing(line: &str) -> Option<Firing> {
    let mut words = line.split(' ');
    let at_ms = words.next()?.parse().ok()?;
    (words.next()? == "fired").then_some(())?;
    let slot_ms = words.next()?.parse().ok()?;
    (words.next()? == "as").then_some(())?;
    let task = words.next()?.to_string();
    Some(Firing {
        at_ms,
        slot_ms,
        task,
        status: None,
        started_ms: None,
        ended_ms: None,
    })
}

/// A `SEARCH` row (see `lua/search.lua`) as a [`TaskRow`].
fn task_row(row: &[String]) -> Option<TaskRow> {
    if row.len() < 14 {
        return None;
    }
    let text = |i: usize| (!row[i].is_empty()).then(|| row[i].clone());
    let num = |i: usize| row[i].parse::<u64>().ok();
    let attempt = num(10).unwrap_or(0) as u32;
    let progress = match (num(12), num(13)) {
        (Some(p), Some(a)) if a == u64::from(attempt) => Some(p.min(100) as u8),
        _ => None,
    };
    let mut error = text(11);
    if let Some(e) = &mut error
        && e.len() > ROW_ERROR_MAX
    {
        let mut cut = ROW_ERROR_MAX;
        while !e.is_char_boundary(cut) {
            cut -= 1;
        }
        e.truncate(cut);
    }
    Some(TaskRow {
        id: row[1].clone(),
        status: row[3].clone(),
        executor: row[4].clone(),
        job: text(5),
        worker: text(6),
        created_ms: num(7).unwrap_or(0),
        started_ms: num(8),
        ended_ms: num(9),
        attempt,
        error,
        progress,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_grouped_without_numbers_and_ids() {
        assert_eq!(
            normalise_error("exit 3: cannot open /tmp/x123.csv"),
            "exit #: cannot open #"
        );
        assert_eq!(
            normalise_error("timed out after 30s"),
            normalise_error("timed out after 5s")
        );
        assert_eq!(
            normalise_error("task 6f1c2a9e0b7d4e1f8a3b5c7d9e0f1a2b lost on worker-7"),
            "task # lost on #"
        );
        assert_eq!(
            normalise_error("http: 503   Service Unavailable"),
            "http: # Service Unavailable"
        );
        assert_eq!(normalise_error("no digits here"), "no digits here");
        assert_eq!(normalise_error(""), "");
    }

    #[test]
    fn cursors_and_history_lines_parse() {
        assert_eq!(
            parse_cursor("1700000000000-a-b@1").unwrap(),
            ("1700000000000".to_string(), "a-b@1".to_string())
        );
        for bad in ["", "x-y", "123", "123-", "-abc"] {
            assert!(parse_cursor(bad).is_err(), "{bad}");
        }
        let f = parse_firing("1700000000123 fired 1700000000000 as tick@1700000000000").unwrap();
        assert_eq!(f.slot_ms, 1_700_000_000_000);
        assert_eq!(f.task, "tick@1700000000000");
        assert!(parse_firing("1700000000123 skipped 17: x still active (forbid)").is_none());
        assert!(parse_firing("1700 missed 3 slot(s) (misfire policy)").is_none());
    }

    #[test]
    fn next_fires_follow_the_schedule() {
        let spec = JobSpec::new("j", "noop").with_cron("*/10 * * * * *");
        let start = crate::schedule::utc_ms(2030, 1, 1, 0, 0, 0);
        let fires = fires_of(&spec, Some(start), 5).unwrap();
        assert_eq!(fires.len(), 5);
        assert!(fires.windows(2).all(|w| w[1] - w[0] == 10_000), "{fires:?}");
        assert!(fires_of(&JobSpec::new("j", "noop"), Some(start), 5).is_none());
        assert!(fires_of(&spec, None, 5).is_none());
    }
}
