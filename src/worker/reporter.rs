//! The `reporter-0`/`reporter-1` threads: batch outcomes into `FINISH`
//! calls, keep them across Redis outages, and hand refilled tasks to the pool.

use super::FLUSH_LIMIT;
use super::REPORT_BATCH;
use super::REPORT_LINGER;
use super::Refill;
use super::Report;
use super::Shared;
use super::fetcher::ClaimRow;
use crate::error::{Error, Result};
use crate::executor::Outcome;
use crate::leader::wake_control;
use crate::metrics::METRICS;
use crate::store::Conn;
use crate::store::calls;
use crossbeam_channel::Receiver;
use crossbeam_channel::Sender;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Reporter `index`: records the outcomes of its own tasks (`reports`).
pub(super) fn report_loop(
    shared: &Shared,
    index: usize,
    reports: Receiver<Report>,
    slots: &Sender<()>,
) {
    let mut conn = shared.store.conn("reporter");
    let in_pool = &shared.in_pool[index];
    let mut batch: Vec<Report> = Vec::new();
    // Slots freed by the reports received and not yet refilled or handed
    // to the fetcher (each report carries its slot).
    let mut tokens = 0usize;
    // Set when a call that may have started tasks failed: once Redis
    // answers again the fetcher is woken to adopt them, even if it is
    // blocked waiting for its queue.
    let mut wake_adopter = false;
    let mut give_up_at: Option<Instant> = None;
    loop {
        let before = batch.len();
        if batch.is_empty() {
            match reports.recv() {
                Ok(r) => batch.push(r),
                Err(_) => return, // every pool thread is gone and all is flushed
            }
            let linger_until = Instant::now() + REPORT_LINGER;
            while batch.len() < REPORT_BATCH && in_pool.load(Ordering::SeqCst) > 0 {
                match reports.recv_deadline(linger_until) {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
        }
        batch.extend(
            reports
                .try_iter()
                .take(REPORT_BATCH.saturating_sub(batch.len())),
        );
        tokens += batch.len() - before;
        let refill = shared.refill();
        let direct = if refill.is_some() { tokens } else { 0 };
        let failed_call = match finish(shared, &mut conn, &batch, refill.as_ref(), direct) {
            Ok((_, rejected, _, retried, failed, queued, started)) => {
                METRICS.refills.add(queued + started.len() as u64);
                METRICS.stale_results.add(rejected);
                METRICS.retries.add(retried);
                METRICS.failures.add(failed);
                if rejected > 0 {
                    log::warn!(
                        "reporter: {rejected} stale results rejected (tasks were reassigned)"
                    );
                }
                shared.forget_reported(&batch);
                batch.clear();
                if std::mem::take(&mut wake_adopter) {
                    wake_control(&shared.store, &shared.adopt_list());
                }
                tokens -= started.len().min(tokens);
                if let Some(r) = refill.as_ref() {
                    for c in shared.register(started, Some(index)) {
                        shared.hand_to_pool(&r.jobs, c);
                    }
                }
                false
            }
            Err(e) if refused(&e) => {
                // Redis refuses this batch as such (a script error, a record
                // of the wrong type): retrying it as is would never end and
                // would hold up every later outcome. Write what it accepts.
                log::error!(
                    "reporter: Redis refused a batch of {} results ({e}); writing them one by one",
                    batch.len()
                );
                write_one_by_one(shared, &mut conn, &batch);
                shared.forget_reported(&batch);
                batch.clear();
                false
            }
            Err(e) => {
                // The reply of a call that started tasks may be lost.
                if direct > 0 {
                    shared.suspect.store(true, Ordering::SeqCst);
                    wake_adopter = true;
                }
                // Keep the batch and retry: results survive a Redis outage.
                // Once the pool is gone (shutdown), retry for a bounded time.
                if !e.is_unavailable() {
                    log::error!("reporter: cannot record {} results: {e}", batch.len());
                }
                match reports.try_recv() {
                    Ok(r) => {
                        batch.push(r);
                        tokens += 1;
                    }
                    Err(crossbeam_channel::TryRecvError::Disconnected) => {
                        let at = *give_up_at.get_or_insert_with(|| Instant::now() + FLUSH_LIMIT);
                        if Instant::now() >= at {
                            log::error!(
                                "reporter: giving up on {} results after {FLUSH_LIMIT:?}; the recoverer will retry those tasks",
                                batch.len()
                            );
                            shared.forget_reported(&batch);
                            return;
                        }
                    }
                    Err(crossbeam_channel::TryRecvError::Empty) => {}
                }
                true
            }
        };
        drop(refill);
        // What a refill did not fill is the fetcher's to fill.
        for _ in 0..std::mem::take(&mut tokens) {
            let _ = slots.send(());
        }
        if failed_call {
            std::thread::sleep(conn.backoff());
        }
    }
}

/// True when Redis refused a call for what it carried, not for its own
/// state: a retry of the same call fails the same way. Errors that pass
/// (loading after a restart, a busy script, a failover, a full memory) are
/// retried like a lost connection.
fn refused(e: &Error) -> bool {
    const PASSING: [&str; 8] = [
        "LOADING",
        "BUSY",
        "READONLY",
        "MASTERDOWN",
        "TRYAGAIN",
        "CLUSTERDOWN",
        "NOREPLICAS",
        "OOM",
    ];
    match e {
        Error::Redis(r) => !r.code().is_some_and(|c| PASSING.contains(&c)),
        _ => false,
    }
}

/// Writes a refused batch's outcomes alone (no refill), so one bad outcome
/// cannot keep the others from being written. One that Redis still refuses
/// is written as a failed attempt without its result and log ("could not be
/// recorded: …"); if even that is refused, it is left to the recoverer
/// (the task's running deadline), with one error line.
fn write_one_by_one(shared: &Shared, conn: &mut Conn, batch: &[Report]) {
    for r in batch {
        let once = |conn: &mut Conn, r: &Report| {
            finish(shared, conn, std::slice::from_ref(r), None, 0).map(|f| f.1)
        };
        match once(conn, r) {
            Ok(_) => continue,
            Err(e) if !refused(&e) => {
                log::warn!(
                    "reporter: result of task {} not written ({e}); the recoverer will retry it",
                    r.id
                );
                continue;
            }
            Err(e) => {
                let bare = Report {
                    id: r.id.clone(),
                    attempt: r.attempt,
                    outcome: Outcome::fail(-1, format!("the outcome could not be recorded: {e}")),
                    log: Vec::new(),
                };
                match once(conn, &bare) {
                    Ok(_) => log::error!(
                        "reporter: task {} attempt {}: Redis refused its outcome ({e}); recorded as failed",
                        r.id,
                        r.attempt
                    ),
                    Err(e2) => log::error!(
                        "reporter: task {} attempt {}: Redis refused its outcome ({e}) and a failed one ({e2}); \
                         left to the recoverer",
                        r.id,
                        r.attempt
                    ),
                }
            }
        }
    }
}

/// `(accepted, rejected, succeeded, retried, failed, refilled onto the
/// queue, tasks refilled and started)` of one `FINISH` call.
pub(super) type Finished = (u64, u64, u64, u64, u64, u64, Vec<ClaimRow>);

/// Records `batch` and refills the freed slots (see `FINISH`): with
/// `refill`, `direct` refilled tasks are started at once (the caller holds
/// that many free pool slots), others queued.
pub(super) fn finish(
    shared: &Shared,
    conn: &mut Conn,
    batch: &[Report],
    refill: Option<&Refill>,
    direct: usize,
) -> Result<Finished> {
    // Test-only: `finish-refuse=return(ID)` makes Redis refuse, as a
    // script error would, every batch holding task ID's success.
    #[cfg(feature = "failpoints")]
    if let Some(Some(id)) = fail::eval("finish-refuse", |arg| arg)
        && batch
            .iter()
            .any(|r| r.id == id && matches!(r.outcome, Outcome::Success(_)))
    {
        return Err(Error::Redis(redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "injected",
            format!("finish-refuse failpoint for task {id}"),
        ))));
    }
    let keys = &shared.store.keys;
    let outcomes = batch
        .iter()
        .map(|r| calls::Outcome {
            task: &r.id,
            attempt: r.attempt,
            kind: r.outcome.kind(),
            result: r
                .outcome
                .result()
                .map(|res| serde_json::to_string(res).unwrap_or_default())
                .unwrap_or_default(),
            error: match &r.outcome {
                Outcome::Success(_) => "",
                Outcome::Cancelled => "cancelled",
                Outcome::Failed(res) | Outcome::TimedOut(res) => &res.message,
            },
            rnd: crate::random_unit(),
            log: &r.log,
        })
        .collect();
    let call = calls::Finish {
        node: &shared.node,
        instance: &shared.instance,
        capacity: shared.capacity,
        retention_ms: shared.retention_ms,
        refill: refill.map(|r| calls::RefillOffer {
            executors: &r.executors,
            tags: &r.tags,
            direct,
        }),
        outcomes,
    };
    conn.run(|c| call.invocation(keys).invoke(c))
}
