//! The `pool-N` threads' work: run one claimed task's executor with its
//! context and deliver the outcome, as a report, to the task's reporter.
//!
//! Delivery goes through the worker's outbox (`Shared::outbox`), under its
//! lock: once a shutdown gave up on a task that ignored its cancellation
//! (see `Worker::drain`), the outbox is closed and the task was already
//! reported failed, so an outcome that comes later is dropped (with a log
//! line), never reported twice.

use super::Claimed;
use super::Report;
use super::Shared;
use crate::executor::Outcome;
use crate::executor::TaskContext;
use crate::executor::live::LiveLog;
use crate::metrics::METRICS;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Runs `c` on this pool thread's live `slot` (its output and progress
/// are written while it runs by the `live` thread) and delivers its report
/// (see the module docs).
pub(super) fn run_one(shared: &Shared, c: Claimed, slot: &Arc<LiveLog>) {
    shared.running.fetch_add(1, Ordering::Relaxed);
    METRICS.tasks_running.inc();
    let began = Instant::now();
    let owner = c.reporter;
    let mut ctx = TaskContext::new(&c.id, &c.executor, c.payload, c.timeout, c.cancel);
    ctx.attempt = c.attempt;
    ctx.job = c.job;
    let mut ctx = ctx.with_live(slot.clone());
    let outcome = match shared.executors.get(&c.executor) {
        Some(executor) => {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| executor.execute(&mut ctx)))
                .unwrap_or_else(|_| Outcome::fail(-1, "executor panicked"))
        }
        None => Outcome::fail(
            -1,
            format!(
                "executor `{}` is not offered by worker {}",
                c.executor, shared.node
            ),
        ),
    };
    shared.running.fetch_sub(1, Ordering::Relaxed);
    METRICS.tasks_running.dec();
    METRICS.task_duration.observe_duration(began.elapsed());
    {
        // Lock order: outbox, then active (as in `Worker::drain`).
        let outbox = shared.outbox();
        let Some(senders) = outbox.as_ref() else {
            log::warn!(
                "worker: task {} attempt {} ended ({}) after the shutdown gave up on it and reported it failed; this outcome is dropped",
                c.id,
                c.attempt,
                outcome.kind()
            );
            shared.in_pool[owner].fetch_sub(1, Ordering::SeqCst);
            return;
        };
        // Into `unreported` before out of `active`: orphan adoption, which
        // reads `active` then `unreported`, always sees the attempt in one.
        shared.unreported().insert((c.id.clone(), c.attempt));
        let by_user = shared
            .active()
            .remove(&c.id)
            .is_some_and(|(_, _, by_user)| by_user);
        let outcome = match outcome {
            Outcome::Cancelled if !by_user && shared.interrupted.load(Ordering::SeqCst) => {
                Outcome::fail(-1, "interrupted by worker shutdown")
            }
            other => other,
        };
        METRICS.attempt_ended(outcome.kind());
        log::debug!(
            "worker: task {} attempt {} {}",
            c.id,
            c.attempt,
            outcome.kind()
        );
        shared.in_pool[owner].fetch_sub(1, Ordering::SeqCst);
        let _ = senders[owner].send(Report {
            id: c.id,
            attempt: c.attempt,
            outcome,
            log: ctx.take_log(),
        });
    }
}
