//! Tasks: what a submitter asks for ([`TaskSpec`]), and the stored record
//! ([`Task`]) with its [`Status`].
//!
//! A task is stored as one Redis HASH whose fields are the names used here,
//! so Lua scripts can move it between states without decoding JSON.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::balancer::Balancer;
use crate::error::{Error, Result};
use crate::executor::TaskResult;
use crate::model::ident::{self, Name};

/// A task's life: `pending → running → success | failed`, with `retrying`
/// (waiting out a backoff delay) and `cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting to be dispatched, or queued on a worker (then `worker` is set),
    /// or delayed until `ready_ms`.
    Pending,
    /// Running on `worker`.
    Running,
    /// Waiting for its next attempt (`next_attempt_ms`) after a failure.
    Retrying,
    /// Ended well.
    Success,
    /// Ended with its last attempt failed.
    Failed,
    /// Cancelled by a user.
    Cancelled,
}

impl Status {
    /// Every status, in life order.
    pub const ALL: [Status; 6] = [
        Status::Pending,
        Status::Running,
        Status::Retrying,
        Status::Success,
        Status::Failed,
        Status::Cancelled,
    ];

    /// True for success, failed and cancelled.
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Success | Status::Failed | Status::Cancelled)
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Retrying => "retrying",
            Status::Success => "success",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    /// Parses a stored or typed name.
    pub fn parse(text: &str) -> Result<Status> {
        Status::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| {
                Error::Config(format!(
                    "unknown status `{text}` (expected pending, running, retrying, success, failed or cancelled)"
                ))
            })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest idempotency key or route key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 256;

/// Lowest and highest priority; higher runs first.
pub const PRIORITY_RANGE: std::ops::RangeInclusive<i32> = -1000..=1000;

/// A task to submit. Build with [`TaskSpec::new`] and the `with_` methods;
/// unset fields take the documented defaults.
///
/// ```
/// use std::time::Duration;
/// use distsched::TaskSpec;
///
/// let spec = TaskSpec::new("mail")
///     .with_payload(&serde_json::json!({"to": "ops@example.com"}))
///     .with_delay(Duration::from_secs(30))
///     .with_retries(5)
///     .with_key("welcome-mail-42");
/// spec.validate()?;
/// # Ok::<(), distsched::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSpec {
    /// Executor name (a declared shell command, `http`, `rpc`, `shell` for
    /// ad hoc commands, or a registered Rust function).
    pub executor: String,
    /// Payload as JSON text. Default `null`.
    pub payload: String,
    /// Priority, -1000..=1000, higher first. Default 0.
    pub priority: i32,
    /// Earliest start, Unix ms. Default: now.
    pub not_before_ms: Option<u64>,
    /// Earliest start, counted from when Redis creates the task (so the
    /// submitter's clock and a slow connection do not shorten it). Later of
    /// the two when both are set. Default none.
    pub delay: Option<Duration>,
    /// Start-by deadline, counted from when the task is ready (now, or its
    /// delay or `not_before_ms`): a task not started by then ends
    /// `cancelled` with its error `expired` (as Celery's `expires`).
    /// Checked by the leader every recover tick. Default none.
    pub expires: Option<Duration>,
    /// Timeout of one attempt. Default 5 min.
    pub timeout: Duration,
    /// Retries after the first failed attempt. Default 3.
    pub max_retries: u32,
    /// First retry delay. Default 10 s.
    pub retry_delay: Duration,
    /// Multiplier of the delay per further retry. Default 2.0.
    pub backoff: f64,
    /// Cap of the retry delay. Default 1 h.
    pub max_delay: Duration,
    /// Random spread of retry delays, ± this fraction. Default 0.1.
    pub jitter: f64,
    /// Idempotency key: a second submit with the same key creates nothing and
    /// returns the first task's id (for the retention period). Default none.
    pub key: Option<String>,
    /// Worker tags required. Default none.
    pub tags: Vec<String>,
    /// Balancer for this task. Default: the leader's.
    pub balancer: Option<Balancer>,
    /// Routing key for `consistent-hash`. Default: the task id.
    pub route_key: Option<String>,
    /// Job this task belongs to. Default none.
    pub job: Option<String>,
    /// Explicit task id. Default: a new UUID.
    pub id: Option<String>,
    /// Track the task in its job's active set, so `forbid`/`replace`
    /// firings see it (set by `Client::trigger_job`). Default false.
    pub track_active: bool,
    /// The task this one runs again (set by `Client::rerun`). Default none.
    pub rerun_of: Option<String>,
}

impl TaskSpec {
    /// A task for `executor` with every other field at its default.
    pub fn new(executor: impl Into<String>) -> TaskSpec {
        TaskSpec {
            executor: executor.into(),
            payload: "null".into(),
            priority: 0,
            not_before_ms: None,
            delay: None,
            expires: None,
            timeout: Duration::from_secs(300),
            max_retries: 3,
            retry_delay: Duration::from_secs(10),
            backoff: 2.0,
            max_delay: Duration::from_secs(3600),
            jitter: 0.1,
            key: None,
            tags: Vec::new(),
            balancer: None,
            route_key: None,
            job: None,
            id: None,
            track_active: false,
            rerun_of: None,
        }
    }

    /// Sets the payload from a JSON value.
    pub fn with_payload(mut self, payload: &serde_json::Value) -> TaskSpec {
        self.payload = payload.to_string();
        self
    }

    /// Sets the priority.
    pub fn with_priority(mut self, priority: i32) -> TaskSpec {
        self.priority = priority;
        self
    }

    /// Delays the first attempt by `delay` after creation.
    pub fn with_delay(mut self, delay: Duration) -> TaskSpec {
        self.delay = Some(delay);
        self
    }

    /// Sets the start-by deadline (see [`TaskSpec::expires`]).
    pub fn with_expires(mut self, expires: Duration) -> TaskSpec {
        self.expires = Some(expires);
        self
    }

    /// Sets the attempt timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> TaskSpec {
        self.timeout = timeout;
        self
    }

    /// Sets the number of retries.
    pub fn with_retries(mut self, retries: u32) -> TaskSpec {
        self.max_retries = retries;
        self
    }

    /// Sets the idempotency key.
    pub fn with_key(mut self, key: impl Into<String>) -> TaskSpec {
        self.key = Some(key.into());
        self
    }

    /// Checks the fields a submitter can get wrong.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if let Some(e) = self.expires
            && (e.is_zero() || e > Duration::from_secs(366 * 86400))
        {
            return bad("expires must be from 1ms to 366d".into());
        }
        ident::check(Name::Executor, &self.executor).map_err(Error::Config)?;
        for tag in &self.tags {
            ident::check(Name::Tag, tag).map_err(Error::Config)?;
        }
        if let Some(job) = &self.job {
            ident::check(Name::JobId, job).map_err(Error::Config)?;
        }
        for (what, value) in [("key", &self.key), ("route_key", &self.route_key)] {
            if let Some(v) = value
                && (v.is_empty() || v.len() > MAX_KEY_LEN || v.chars().any(char::is_control))
            {
                return bad(format!(
                    "invalid {what}: use 1-{MAX_KEY_LEN} bytes without control characters"
                ));
            }
        }
        if let Err(e) = serde_json::from_str::<serde_json::Value>(&self.payload) {
            return bad(format!("invalid payload: not JSON ({e})"));
        }
        if !PRIORITY_RANGE.contains(&self.priority) {
            return bad(format!(
                "invalid priority {}: expected -1000..=1000",
                self.priority
            ));
        }
        if self.timeout.is_zero() {
            return bad("invalid timeout: must be non-zero".into());
        }
        if !(self.backoff >= 1.0 && self.backoff <= 100.0) {
            return bad(format!(
                "invalid backoff {}: expected 1.0..=100.0",
                self.backoff
            ));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return bad(format!(
                "invalid jitter {}: expected 0.0..=1.0",
                self.jitter
            ));
        }
        if let Some(id) = &self.id {
            ident::check(Name::TaskId, id).map_err(Error::Config)?;
        }
        if let Some(id) = &self.rerun_of
            && (id.is_empty() || id.len() > 1000 || id.chars().any(char::is_control))
        {
            return bad("invalid rerun_of: not a task id".into());
        }
        Ok(())
    }

    /// The stored fields of a new task (status and times are set by Redis).
    pub(crate) fn fields(&self, id: &str) -> Vec<(&'static str, String)> {
        let ms = |d: Duration| d.as_millis().to_string();
        let mut f = vec![
            ("id", id.to_string()),
            ("executor", self.executor.clone()),
            ("payload", self.payload.clone()),
            ("priority", self.priority.to_string()),
            ("timeout_ms", ms(self.timeout)),
            ("max_retries", self.max_retries.to_string()),
            ("retry_delay_ms", ms(self.retry_delay)),
            ("backoff", self.backoff.to_string()),
            ("max_delay_ms", ms(self.max_delay)),
            ("jitter", self.jitter.to_string()),
            ("tags", self.tags.join(",")),
        ];
        let optional = [
            ("key", &self.key),
            ("route_key", &self.route_key),
            ("job", &self.job),
            ("rerun_of", &self.rerun_of),
        ];
        for (name, value) in optional {
            if let Some(v) = value {
                f.push((name, v.clone()));
            }
        }
        if let Some(b) = self.balancer {
            f.push(("balancer", b.as_str().to_string()));
        }
        f
    }
}

/// A stored task, as read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Task id.
    pub id: String,
    /// Job id, if any.
    pub job: Option<String>,
    /// Executor name.
    pub executor: String,
    /// Payload (JSON).
    pub payload: serde_json::Value,
    /// Status.
    pub status: Status,
    /// Priority.
    pub priority: i32,
    /// Dispatch count (the fencing token of results); 0 before the first.
    pub attempt: u32,
    /// Failed attempts so far.
    pub failures: u32,
    /// Retries allowed after the first failure.
    pub max_retries: u32,
    /// Attempt timeout, ms.
    pub timeout_ms: u64,
    /// Worker holding it (queued or running), or that ran it last.
    pub worker: Option<String>,
    /// Idempotency key.
    pub key: Option<String>,
    /// Required worker tags.
    pub tags: Vec<String>,
    /// Creation, Unix ms.
    pub created_ms: u64,
    /// Earliest start, Unix ms.
    pub ready_ms: Option<u64>,
    /// Start-by deadline, Unix ms: not started by then, it is cancelled.
    #[serde(default)]
    pub expires_ms: Option<u64>,
    /// Last dispatch, Unix ms.
    pub dispatched_ms: Option<u64>,
    /// Last start, Unix ms.
    pub started_ms: Option<u64>,
    /// End, Unix ms.
    pub ended_ms: Option<u64>,
    /// Next attempt, Unix ms, while retrying.
    pub next_attempt_ms: Option<u64>,
    /// Result of the last attempt.
    pub result: Option<TaskResult>,
    /// Error of the last failed attempt.
    pub error: Option<String>,
    /// Why the task is not dispatched (e.g. no worker offers its executor).
    pub wait_reason: Option<String>,
    /// How each ended attempt went, oldest first.
    pub attempts: Vec<Attempt>,
    /// The task this one runs again, if it is a rerun.
    #[serde(default)]
    pub rerun_of: Option<String>,
    /// What the current attempt last reported of its progress.
    #[serde(default)]
    pub progress: Option<Progress>,
}

/// A running attempt's progress, as its executor last reported it
/// (`TaskContext::progress`, or a shell task's `::progress N text` line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Percent done, 0..=100.
    pub percent: u8,
    /// What the task says it is doing (may be empty).
    pub text: String,
    /// When it was stored, Unix ms (Redis clock).
    pub at_ms: u64,
}

/// One ended attempt of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// Attempt number (dispatch count).
    pub attempt: u32,
    /// Worker that ran it.
    pub worker: String,
    /// Start, Unix ms (none if it never started).
    pub started_ms: Option<u64>,
    /// End, Unix ms.
    pub ended_ms: u64,
    /// `success`, `failed`, `timeout`, `cancelled`, or `lost` (its worker
    /// died or stalled and the leader failed it over).
    pub outcome: String,
    /// Error or summary.
    pub message: String,
}

impl Attempt {
    /// Decodes field `a<n>` = `worker\tstarted\tended\toutcome\tmessage`.
    fn parse(field: &str, value: &str) -> Option<Attempt> {
        let attempt = field.strip_prefix('a')?.parse().ok()?;
        let mut parts = value.splitn(5, '\t');
        let worker = parts.next()?.to_string();
        let started_ms = parts.next()?.parse().ok();
        let ended_ms = parts.next()?.parse().ok()?;
        let outcome = parts.next()?.to_string();
        let message = parts.next().unwrap_or_default().to_string();
        Some(Attempt {
            attempt,
            worker,
            started_ms,
            ended_ms,
            outcome,
            message,
        })
    }
}

impl Task {
    /// Decodes a stored HASH. `None` for an empty one (no such task).
    pub fn from_fields(mut f: HashMap<String, String>) -> Result<Option<Task>> {
        if f.is_empty() {
            return Ok(None);
        }
        let num = |v: Option<String>| v.and_then(|v| v.parse::<u64>().ok());
        let mut attempts: Vec<Attempt> = f
            .iter()
            .filter(|(k, _)| {
                k.starts_with('a') && k[1..].bytes().all(|b| b.is_ascii_digit()) && k.len() > 1
            })
            .filter_map(|(k, v)| Attempt::parse(k, v))
            .collect();
        attempts.sort_by_key(|a| a.attempt);
        let current_attempt = num(f.get("attempt").cloned());
        let mut take = |k: &str| f.remove(k).filter(|v| !v.is_empty());
        let id = take("id").unwrap_or_default();
        // Progress belongs to one attempt: a retry starts without any.
        let progress = match (
            num(take("progress")),
            num(take("progress_attempt")),
            current_attempt,
        ) {
            (Some(p), Some(a), Some(current)) if a == current => Some(Progress {
                percent: p.min(100) as u8,
                text: take("progress_text").unwrap_or_default(),
                at_ms: num(take("progress_ms")).unwrap_or(0),
            }),
            _ => None,
        };
        let status = Status::parse(&take("status").unwrap_or_default())
            .map_err(|_| Error::NotFound(format!("task {id} (record incomplete)")))?;
        Ok(Some(Task {
            job: take("job"),
            executor: take("executor").unwrap_or_default(),
            payload: take("payload")
                .and_then(|p| serde_json::from_str(&p).ok())
                .unwrap_or(serde_json::Value::Null),
            status,
            priority: take("priority").and_then(|v| v.parse().ok()).unwrap_or(0),
            attempt: num(take("attempt")).unwrap_or(0) as u32,
            failures: num(take("failures")).unwrap_or(0) as u32,
            max_retries: num(take("max_retries")).unwrap_or(0) as u32,
            timeout_ms: num(take("timeout_ms")).unwrap_or(0),
            worker: take("worker"),
            key: take("key"),
            tags: take("tags")
                .map(|t| t.split(',').map(String::from).collect())
                .unwrap_or_default(),
            created_ms: num(take("created_ms")).unwrap_or(0),
            ready_ms: num(take("ready_ms")),
            expires_ms: num(take("expires_ms")),
            dispatched_ms: num(take("dispatched_ms")),
            started_ms: num(take("started_ms")),
            ended_ms: num(take("ended_ms")),
            next_attempt_ms: num(take("next_attempt_ms")),
            result: take("result").and_then(|r| serde_json::from_str(&r).ok()),
            error: take("error"),
            wait_reason: take("wait_reason"),
            attempts,
            rerun_of: take("rerun_of"),
            progress,
            id,
        }))
    }
}
