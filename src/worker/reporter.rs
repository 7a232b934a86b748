//! The `reporter-0`/`reporter-1` threads: batch outcomes into `FINISH`
//! calls, keep them across Redis outages, and hand refilled tasks to the pool.

use super::FLUSH_LIMIT;
use super::REPORT_BATCH;
use super::REPORT_LINGER;
use super::Refill;
use super::Report;
use super::Shared;
use super::fetcher::ClaimRow;
use crate::error::Result;
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
