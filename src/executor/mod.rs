//! Executors: what runs a task. The [`Executor`] trait, the context a task
//! runs with, its [`Outcome`], and the [`Executors`] registry a worker
//! advertises.
//!
//! Built in: [`shell`] (declared commands, run with argv and no shell),
//! [`http`] (one HTTP request), [`rpc`] (JSON-RPC 2.0 over HTTP), and Rust
//! closures registered by an embedding program ([`FnExecutor`]). Executors
//! run on the worker's pool threads; each call owns its thread until it
//! returns, so an executor must honour [`TaskContext::deadline`] and
//! [`TaskContext::is_cancelled`].

pub mod http;
pub(crate) mod live;
pub mod rpc;
pub mod shell;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Most log lines one attempt keeps: the first [`LOG_HEAD_LINES`] and the
/// latest rest, with a note of how many were dropped in between. Room for
/// both shell output tails (2 × 100 lines) and the executor's own lines.
pub const MAX_LOG_LINES: usize = 256;
/// Lines at the start of an attempt's log that are always kept (what ran).
pub const LOG_HEAD_LINES: usize = 32;
/// Longest log line kept, in bytes; longer lines are cut.
pub const MAX_LOG_LINE: usize = 2048;
/// Most bytes of log lines a task keeps over all its attempts: 256 KiB.
/// One attempt's lines are held to it here (the middle is dropped, as for
/// [`MAX_LOG_LINES`]), so a report never carries more; the store drops a
/// task's oldest lines beyond it (`lua/lib.lua`, which gets this value) and
/// puts a note at the head of the log, so a task retried ten times keeps
/// 256 KiB, not ten times that. Without the byte cap 256 lines of 2 KiB
/// were 512 KiB per attempt, ~2 MB per task.
pub const MAX_TASK_LOG_BYTES: usize = 256 * 1024;

/// The built-in executors a worker can offer (setting `builtin`, default
/// all of them): [`NoopExecutor`] as `noop`, [`http::HttpExecutor`] as
/// `http`, [`rpc::RpcExecutor`] as `rpc`.
pub const BUILTINS: &[&str] = &["noop", "http", "rpc"];

/// A task's result, as stored: `{code, message, data}` (the seed's shape).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TaskResult {
    /// 0 on success; an exit code, HTTP status or JSON-RPC error code else.
    pub code: i64,
    /// A short human-readable summary.
    pub message: String,
    /// Structured output (last JSON line of a shell command's stdout, an
    /// HTTP response body that parses as JSON, a JSON-RPC `result`, ...).
    #[serde(default)]
    pub data: serde_json::Value,
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The task did its work.
    Success(TaskResult),
    /// The task failed; it is retried while it has retries left.
    Failed(TaskResult),
    /// The attempt ran past its timeout and was stopped (process group
    /// killed, request abandoned). Counts as a failed attempt.
    TimedOut(TaskResult),
    /// The task was cancelled while it ran and was stopped.
    Cancelled,
}

impl Outcome {
    /// A success with `data` and message `ok`.
    pub fn ok(data: serde_json::Value) -> Outcome {
        Outcome::Success(TaskResult {
            code: 0,
            message: "ok".into(),
            data,
        })
    }

    /// A failure with `code` and `message`.
    pub fn fail(code: i64, message: impl Into<String>) -> Outcome {
        Outcome::Failed(TaskResult {
            code,
            message: message.into(),
            data: serde_json::Value::Null,
        })
    }

    /// Name of the outcome as stored (`success`, `failed`, `timeout`,
    /// `cancelled`).
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Success(_) => "success",
            Outcome::Failed(_) => "failed",
            Outcome::TimedOut(_) => "timeout",
            Outcome::Cancelled => "cancelled",
        }
    }

    /// The result, if any.
    pub fn result(&self) -> Option<&TaskResult> {
        match self {
            Outcome::Success(r) | Outcome::Failed(r) | Outcome::TimedOut(r) => Some(r),
            Outcome::Cancelled => None,
        }
    }
}

/// Set when a running task is cancelled; executors poll it.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    /// Marks the task cancelled.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// True once cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Everything an executor gets for one attempt of one task.
pub struct TaskContext {
    /// Task id.
    pub task_id: String,
    /// Job id, if the task belongs to a job.
    pub job: Option<String>,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// Executor name the task asked for.
    pub executor: String,
    /// The payload, as JSON text (`null` when none was given).
    pub payload: String,
    /// The attempt's timeout.
    pub timeout: Duration,
    /// When the attempt must be over (start + timeout).
    pub deadline: Instant,
    cancel: CancelFlag,
    /// The attempt's log lines and progress; a worker's `live` thread
    /// writes them while the attempt runs (see `live.rs`).
    live: Arc<live::LiveLog>,
}

impl TaskContext {
    /// A context for one attempt; the deadline is `timeout` from now.
    pub fn new(
        task_id: impl Into<String>,
        executor: impl Into<String>,
        payload: impl Into<String>,
        timeout: Duration,
        cancel: CancelFlag,
    ) -> TaskContext {
        TaskContext {
            task_id: task_id.into(),
            job: None,
            attempt: 1,
            executor: executor.into(),
            payload: payload.into(),
            timeout,
            deadline: Instant::now() + timeout,
            cancel,
            live: Arc::new(live::LiveLog::private()),
        }
    }

    /// Runs the attempt on a worker's live slot (`live.rs`), so its lines
    /// and progress reach Redis while it runs.
    pub(crate) fn with_live(mut self, slot: Arc<live::LiveLog>) -> TaskContext {
        slot.begin(&self.task_id, self.attempt);
        self.live = slot;
        self
    }

    /// True when the attempt's log and progress are written while it runs
    /// (it runs on a worker); executors that gather output to log at the
    /// end (the shell's tails) then hand it over as it comes.
    pub fn is_live(&self) -> bool {
        self.live.is_streamed()
    }

    /// Reports how far the task got: `percent` (0..=100, capped) and a
    /// short text (cut to 200 bytes; may be empty). On a worker it is
    /// written to the task (`progress` in `task show`, the dashboard's bar)
    /// about once a second while the task runs; the latest value wins.
    pub fn progress(&mut self, percent: u8, text: impl AsRef<str>) {
        self.live.set_progress(percent, text.as_ref());
    }

    /// The latest progress reported, if any.
    pub fn last_progress(&self) -> Option<(u8, String)> {
        self.live.progress()
    }

    /// True once the task was cancelled: stop and return
    /// [`Outcome::Cancelled`].
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The payload parsed as JSON (`Null` if it does not parse).
    pub fn payload_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.payload).unwrap_or(serde_json::Value::Null)
    }

    /// Time left before the deadline (zero when past it).
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Appends a line to the task's log (capped: [`MAX_LOG_LINES`] lines of
    /// at most [`MAX_LOG_LINE`] bytes, [`MAX_TASK_LOG_BYTES`] in all, per
    /// attempt; past a cap the middle is dropped, so the start and the
    /// latest lines, where errors are, stay).
    pub fn log(&mut self, line: impl Into<String>) {
        self.live.push(line.into());
    }

    /// Takes the collected log lines (with a note of dropped ones): on a
    /// worker, those not written while the attempt ran. Ends the attempt's
    /// live output.
    pub fn take_log(&mut self) -> Vec<String> {
        self.live.finish()
    }
}

/// Runs tasks of one kind. Implementations must be thread-safe: one value
/// serves every pool thread.
pub trait Executor: Send + Sync + 'static {
    /// Runs one attempt. Must return by `ctx.deadline` (with
    /// [`Outcome::TimedOut`]) and soon after a cancel (with
    /// [`Outcome::Cancelled`]).
    fn execute(&self, ctx: &mut TaskContext) -> Outcome;
}

/// A Rust closure as an executor: `Ok(data)` is a success, `Err(message)` a
/// failure with code 1. The closure should check `ctx.is_cancelled()` and
/// `ctx.remaining()` if it runs long.
pub struct FnExecutor<F>(pub F);

impl<F> Executor for FnExecutor<F>
where
    F: Fn(&mut TaskContext) -> Result<serde_json::Value, String> + Send + Sync + 'static,
{
    fn execute(&self, ctx: &mut TaskContext) -> Outcome {
        match (self.0)(ctx) {
            Ok(data) => Outcome::ok(data),
            Err(message) => Outcome::fail(1, message),
        }
    }
}

/// Does nothing and succeeds, echoing the payload as `data`: for
/// benchmarks, smoke tests and health probes. Every worker offers it as
/// `noop`.
pub struct NoopExecutor;

impl Executor for NoopExecutor {
    fn execute(&self, ctx: &mut TaskContext) -> Outcome {
        Outcome::ok(ctx.payload_json())
    }
}

/// The executors a worker offers, by name. The names are advertised in the
/// registry; the dispatcher only sends a task to workers offering its
/// executor.
#[derive(Clone, Default)]
pub struct Executors {
    map: BTreeMap<String, Arc<dyn Executor>>,
}

impl Executors {
    /// Registers `executor` under `name`, replacing any earlier one.
    pub fn insert(&mut self, name: impl Into<String>, executor: impl Executor) {
        self.map.insert(name.into(), Arc::new(executor));
    }

    /// The executor called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Executor>> {
        self.map.get(name).cloned()
    }

    /// Adds every executor of `other`, replacing same-named ones.
    pub fn extend(&mut self, other: Executors) {
        self.map.extend(other.map);
    }

    /// Every name, sorted.
    pub fn names(&self) -> Vec<String> {
        self.map.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> TaskContext {
        TaskContext::new(
            "t",
            "x",
            "null",
            Duration::from_secs(1),
            CancelFlag::default(),
        )
    }

    #[test]
    fn a_long_log_keeps_its_start_and_its_latest_lines() {
        let mut ctx = context();
        for i in 0..1000 {
            ctx.log(format!("line {i}"));
        }
        let lines = ctx.take_log();
        assert_eq!(lines.len(), MAX_LOG_LINES);
        assert_eq!(lines[0], "line 0");
        assert_eq!(
            lines[LOG_HEAD_LINES - 1],
            format!("line {}", LOG_HEAD_LINES - 1)
        );
        let kept_tail = MAX_LOG_LINES - LOG_HEAD_LINES - 1;
        let dropped = 1000 - LOG_HEAD_LINES - kept_tail;
        let dropped_bytes: usize = (LOG_HEAD_LINES..LOG_HEAD_LINES + dropped)
            .map(|i| format!("line {i}").len())
            .sum();
        assert_eq!(
            lines[LOG_HEAD_LINES],
            format!("({dropped} log lines dropped here: {dropped_bytes} bytes)")
        );
        assert_eq!(
            lines[LOG_HEAD_LINES + 1],
            format!("line {}", 1000 - kept_tail)
        );
        assert_eq!(lines.last().map(String::as_str), Some("line 999"));
        assert!(ctx.take_log().is_empty(), "taken once");
    }

    #[test]
    fn an_attempts_log_is_held_to_the_byte_cap() {
        let mut ctx = context();
        // 200 lines of 2 KiB: within the line cap, 400 KiB over the bytes.
        for i in 0..200 {
            ctx.log(format!("{i:04} {}", "x".repeat(MAX_LOG_LINE - 5)));
        }
        let lines = ctx.take_log();
        let bytes: usize = lines.iter().map(String::len).sum();
        assert!(bytes <= MAX_TASK_LOG_BYTES + 64, "{bytes} bytes kept");
        assert!(
            bytes > MAX_TASK_LOG_BYTES - 2 * MAX_LOG_LINE,
            "{bytes} bytes kept"
        );
        assert!(lines[0].starts_with("0000 "), "the head stays");
        assert!(
            lines.last().unwrap().starts_with("0199 "),
            "the latest stay"
        );
        let note = &lines[LOG_HEAD_LINES];
        let kept = lines.len() - 1;
        assert_eq!(
            note,
            &format!(
                "({} log lines dropped here: {} bytes)",
                200 - kept,
                (200 - kept) * MAX_LOG_LINE
            )
        );
        // One huge line after a full head still keeps one tail line.
        let mut ctx = context();
        ctx.log("x".repeat(10 * MAX_LOG_LINE));
        assert_eq!(ctx.take_log()[0].len(), MAX_LOG_LINE + '…'.len_utf8());
        assert!(ctx.take_log().is_empty(), "reset after a take");
    }

    #[test]
    fn a_short_log_is_kept_whole() {
        let mut ctx = context();
        // One slot is reserved for the note of dropped lines.
        for i in 0..MAX_LOG_LINES - 1 {
            ctx.log(format!("line {i}"));
        }
        let lines = ctx.take_log();
        assert_eq!(lines.len(), MAX_LOG_LINES - 1);
        assert!(lines.iter().all(|l| !l.contains("dropped")));
    }
}
