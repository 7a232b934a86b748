//! Jobs: named task definitions with an optional cron schedule
//! ([`JobSpec`]), and what is known of their firings ([`JobStatus`]).
//!
//! A job is stored as JSON in the `jobs` HASH; its next fire time in the
//! `schedule` ZSET. A firing creates a task with the deterministic id
//! `{job}@{slot ms}`, so one slot can never produce two tasks.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::balancer::Balancer;
use crate::error::{Error, Result};
use crate::model::ident::{self, Name};
use crate::model::task::TaskSpec;
use crate::schedule::{Misfire, Schedule};

/// Whether a firing may start while an earlier task of the job is active
/// (pending, queued, running or retrying) anywhere in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Concurrency {
    /// Always fire (default).
    #[default]
    Allow,
    /// Skip the firing (and record the skip) while one is active.
    Forbid,
    /// Cancel the active ones and fire.
    Replace,
}

impl Concurrency {
    /// Parses `allow`, `forbid` or `replace`.
    pub fn parse(text: &str) -> Result<Concurrency> {
        match text {
            "allow" => Ok(Concurrency::Allow),
            "forbid" => Ok(Concurrency::Forbid),
            "replace" => Ok(Concurrency::Replace),
            _ => Err(Error::Config(format!(
                "unknown concurrency policy `{text}` (expected allow, forbid or replace)"
            ))),
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Concurrency::Allow => "allow",
            Concurrency::Forbid => "forbid",
            Concurrency::Replace => "replace",
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_null() -> serde_json::Value {
    serde_json::Value::Null
}

/// A job definition (the seed's TaskConfig). Serialised as the JSON a jobs
/// file holds; durations in ms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Job id: letters, digits, `-`, `_`, `.`, `:`.
    pub id: String,
    /// Human name. Default: the id.
    #[serde(default)]
    pub name: String,
    /// Executor name.
    pub executor: String,
    /// Payload of every task (JSON). Default `null`.
    #[serde(default = "default_null")]
    pub payload: serde_json::Value,
    /// Cron expression; a job without one runs only when triggered.
    #[serde(default)]
    pub cron: Option<String>,
    /// IANA time zone of the cron expression. Default UTC.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Task timeout, ms. Default 5 min.
    #[serde(default = "JobSpec::default_timeout_ms")]
    pub timeout_ms: u64,
    /// Start-by deadline of its tasks, ms from their slot (see
    /// [`TaskSpec::expires`]). Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
    /// Retries after a failed attempt. Default 3.
    #[serde(default = "JobSpec::default_retries")]
    pub max_retries: u32,
    /// First retry delay, ms. Default 10 s.
    #[serde(default = "JobSpec::default_retry_delay_ms")]
    pub retry_delay_ms: u64,
    /// Retry delay multiplier. Default 2.0.
    #[serde(default = "JobSpec::default_backoff")]
    pub backoff: f64,
    /// Task priority, -1000..=1000. Default 0.
    #[serde(default)]
    pub priority: i32,
    /// Balancer for its tasks. Default: the leader's.
    #[serde(default)]
    pub balancer: Option<String>,
    /// Routing key for `consistent-hash`. Default: the task id.
    #[serde(default)]
    pub route_key: Option<String>,
    /// Worker tags required.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Fires on schedule only when enabled. Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Missed-slot policy. Default `fire_once`.
    #[serde(default)]
    pub misfire: Misfire,
    /// A slot older than this when it is looked at counts as missed, ms.
    /// Default 60 s.
    #[serde(default = "JobSpec::default_misfire_threshold_ms")]
    pub misfire_threshold_ms: u64,
    /// Most missed slots `fire_all` fires (the latest ones). Default 100;
    /// at most 10,000 (`MAX_CATCH_UPS`) are fired
    /// whatever the cap.
    #[serde(default = "JobSpec::default_fire_all_cap")]
    pub fire_all_cap: u32,
    /// Overlap policy. Default `allow`.
    #[serde(default)]
    pub concurrency: Concurrency,
}

/// The longest `misfire_threshold` (7 days): a slot older than the
/// retention of the tasks it would create is not worth firing.
pub const MAX_MISFIRE_THRESHOLD_MS: u64 = 7 * 86_400_000;

impl JobSpec {
    fn default_timeout_ms() -> u64 {
        300_000
    }
    fn default_retries() -> u32 {
        3
    }
    fn default_retry_delay_ms() -> u64 {
        10_000
    }
    fn default_backoff() -> f64 {
        2.0
    }
    fn default_misfire_threshold_ms() -> u64 {
        60_000
    }
    fn default_fire_all_cap() -> u32 {
        100
    }

    /// A job `id` running `executor`, on demand only, every other field at
    /// its default.
    pub fn new(id: impl Into<String>, executor: impl Into<String>) -> JobSpec {
        JobSpec {
            id: id.into(),
            name: String::new(),
            executor: executor.into(),
            payload: serde_json::Value::Null,
            cron: None,
            timezone: None,
            timeout_ms: Self::default_timeout_ms(),
            expires_ms: None,
            max_retries: Self::default_retries(),
            retry_delay_ms: Self::default_retry_delay_ms(),
            backoff: Self::default_backoff(),
            priority: 0,
            balancer: None,
            route_key: None,
            tags: Vec::new(),
            enabled: true,
            misfire: Misfire::FireOnce,
            misfire_threshold_ms: Self::default_misfire_threshold_ms(),
            fire_all_cap: Self::default_fire_all_cap(),
            concurrency: Concurrency::Allow,
        }
    }

    /// Sets the cron expression.
    pub fn with_cron(mut self, cron: impl Into<String>) -> JobSpec {
        self.cron = Some(cron.into());
        self
    }

    /// Checks every field; returns the parsed schedule, if any. Nothing is
    /// stored for a job that fails here.
    pub fn validate(&self) -> Result<Option<Schedule>> {
        ident::check(Name::JobId, &self.id).map_err(Error::Config)?;
        if let Some(b) = &self.balancer {
            Balancer::parse(b)?;
        }
        if self.timeout_ms == 0 {
            return Err(Error::Config(format!(
                "job {}: timeout must be non-zero",
                self.id
            )));
        }
        if self.fire_all_cap == 0 || self.fire_all_cap as usize > crate::schedule::MAX_CATCH_UPS {
            return Err(Error::Config(format!(
                "job {}: fire_all_cap must be from 1 to {}",
                self.id,
                crate::schedule::MAX_CATCH_UPS
            )));
        }
        if self.misfire_threshold_ms > MAX_MISFIRE_THRESHOLD_MS {
            return Err(Error::Config(format!(
                "job {}: misfire_threshold must be at most 7d",
                self.id
            )));
        }
        self.task_spec(None).validate()?;
        match &self.cron {
            Some(expr) => Schedule::parse(expr, self.timezone.as_deref()).map(Some),
            None => {
                if let Some(tz) = &self.timezone {
                    // A time zone alone is harmless, but a typo should show.
                    Schedule::parse("@daily", Some(tz))?;
                }
                Ok(None)
            }
        }
    }

    /// The task a firing of slot `slot_ms` (or a manual trigger, `None`)
    /// creates.
    pub fn task_spec(&self, slot_ms: Option<i64>) -> TaskSpec {
        let mut t = TaskSpec::new(&self.executor);
        t.payload = self.payload.to_string();
        t.priority = self.priority;
        t.timeout = Duration::from_millis(self.timeout_ms);
        t.expires = self.expires_ms.map(Duration::from_millis);
        t.max_retries = self.max_retries;
        t.retry_delay = Duration::from_millis(self.retry_delay_ms);
        t.backoff = self.backoff;
        t.tags = self.tags.clone();
        t.balancer = self
            .balancer
            .as_deref()
            .and_then(|b| Balancer::parse(b).ok());
        t.route_key = self.route_key.clone();
        t.job = Some(self.id.clone());
        t.id = slot_ms.map(|s| format!("{}@{s}", self.id));
        t
    }
}

/// A job with what the scheduler knows of it, as `job show` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    /// The job id.
    #[serde(default)]
    pub id: String,
    /// The definition; `None` when the stored record cannot be read (not
    /// JSON, or fields of a newer version): then `error` says why.
    pub spec: Option<JobSpec>,
    /// Next fire time, Unix ms (none for on-demand or disabled jobs; a
    /// broken job's retry time).
    pub next_fire_ms: Option<i64>,
    /// Recent events, newest first: `fired <slot> <task>`, `skipped …`,
    /// `error (…): …`, `recovered: …`.
    pub history: Vec<String>,
    /// Firings skipped by the concurrency or misfire policy, in total (a
    /// lower bound after an outage with too many missed slots to count,
    /// which the history line says as `missed more than N slot(s)`).
    pub skips: u64,
    /// Firings made, in total.
    pub fired: u64,
    /// Why the job is skipped, while it is: its record does not parse, or
    /// its last firing failed. The scheduler retries it every
    /// [`BROKEN_RETRY`] and clears this once it fires again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
}

/// How long the scheduler waits before it looks at a broken job again.
pub const BROKEN_RETRY: Duration = Duration::from_secs(30);

/// What is wrong with a broken job ([`JobStatus::error`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    /// `record`: the stored record cannot be read (not JSON, an unknown
    /// field, a bad cron expression); `firing`: its last firing failed in
    /// Redis.
    pub kind: String,
    /// The error, one line.
    pub message: String,
    /// When the scheduler first saw this error (Redis time, Unix ms); none
    /// for a record no leader has looked at yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<i64>,
}

impl JobStatus {
    /// The definition, or [`Error::BrokenJob`] when the stored record
    /// cannot be read.
    pub fn readable(self) -> Result<JobSpec> {
        match self.spec {
            Some(spec) => Ok(spec),
            None => Err(Error::BrokenJob {
                id: self.id,
                message: self.error.map(|e| e.message).unwrap_or_default(),
            }),
        }
    }
}

/// Parses a stored job record. Unknown fields (a newer version's) are an
/// error: such a job is skipped rather than fired with part of its
/// meaning lost.
pub fn parse_record(json: &str) -> std::result::Result<JobSpec, String> {
    serde_json::from_str(json).map_err(|e| format!("stored record does not parse: {e}"))
}
