//! The worker role: the `fetcher`, `pool-N`, `reporter` and `canceller`
//! threads, and the worker's part of a graceful shutdown.
//!
//! - fetcher: holds one token per free pool slot. With tokens in hand it
//!   claims up to that many items from its queue in one `START` script call;
//!   when the queue is empty it blocks in BLMPOP (Redis ≥ 7) on the queue and
//!   its control lists (stop; adopt the tasks a reporter's lost reply
//!   started), so it pops only while a slot is free and a dispatch reaches
//!   it without delay.
//! - pool-N: `capacity` threads reading a bounded crossbeam channel; each
//!   runs one task's executor and hands the outcome, with its slot, to the
//!   reporter.
//! - reporter-0, reporter-1: each batches the outcomes of its own tasks
//!   into one `FINISH` call (a pipeline's worth per round trip); while
//!   Redis is down it keeps them and retries, so no finished result is
//!   lost to an outage. The same call refills the freed slots from the
//!   backlog (see `lua/finish.lua`) and the reporter hands the tasks it
//!   started to the pool as its own; slots it could not refill go back to
//!   the fetcher, whose tasks are dealt out to the reporters in turn. So
//!   the two split the slots into two groups: while one group's call is in
//!   Redis the other group runs and is gathered whole, and Redis is never
//!   idle between calls.
//! - canceller: blocks on the node's cancel list and flags running tasks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::component::{Component, StopSignal};
use crate::config::Config;
use crate::dispatcher::RECOVERY_GRACE;
use crate::error::Result;
use crate::executor::{CancelFlag, Executors, Outcome, TaskContext};
use crate::leader::wake_control;
use crate::metrics::METRICS;
use crate::store::{Conn, Store, scripts};

/// Most outcomes sent in one `FINISH` call.
const REPORT_BATCH: usize = 256;
/// Reporter threads, each with its own connection and its own share of
/// the slots: every task reports to the reporter that claimed it (tasks
/// the fetcher claims are dealt out in turn), so while one reporter waits
/// on a `FINISH` call the other gathers all of its own tasks for the next
/// one, and Redis and the pool are not idle in turn.
const REPORTER_NAMES: [&str; 2] = ["reporter-0", "reporter-1"];
/// How long a reporter waits for more outcomes while other tasks of its
/// own are still in the pool (queued for a thread or running), so that
/// tasks ending together are reported (and their slots refilled) in one
/// round instead of one by one. A task that ends alone is reported at
/// once.
const REPORT_LINGER: Duration = Duration::from_micros(500);
/// How long the fetcher blocks in one BLMPOP when idle.
const IDLE_BLOCK: Duration = Duration::from_secs(10);
/// How long a stopping worker keeps retrying to record results.
const FLUSH_LIMIT: Duration = Duration::from_secs(15);
/// Log lines kept per task (all attempts): 1,000. The byte cap beside it
/// is [`MAX_TASK_LOG_BYTES`](crate::executor::MAX_TASK_LOG_BYTES); past
/// either, the oldest lines go and a note at the log's head says how many.
pub const LOG_CAP: usize = 1000;

/// A task claimed from the queue, ready to run.
struct Claimed {
    id: String,
    attempt: u32,
    executor: String,
    payload: String,
    timeout: Duration,
    job: Option<String>,
    cancel: CancelFlag,
    /// The reporter this task reports to (index into `REPORTER_NAMES`).
    reporter: usize,
}

/// One finished attempt, on its way to Redis.
struct Report {
    id: String,
    attempt: u32,
    outcome: Outcome,
    log: Vec<String>,
}

/// State shared by the worker's threads.
struct Shared {
    store: Store,
    node: String,
    instance: String,
    executors: Executors,
    running: Arc<AtomicUsize>,
    /// Per reporter, its tasks handed to the pool and not yet reported:
    /// unlike `running`, this counts tasks still waiting in the pool's
    /// channel, so a reporter does not take a pause between two of them
    /// for the end of its work.
    in_pool: [AtomicUsize; REPORTER_NAMES.len()],
    /// Deals the fetcher's tasks out to the reporters.
    next_reporter: AtomicUsize,
    /// task id → (attempt, cancel flag, cancelled by a user).
    active: Mutex<HashMap<String, (u32, CancelFlag, bool)>>,
    /// Set when the shutdown grace ran out: interrupted tasks are reported
    /// as failed attempts (to be retried elsewhere), not as cancelled.
    interrupted: AtomicBool,
    retention_ms: u64,
    capacity: usize,
    /// What the reporters' refills need (see `FINISH`); `None` once
    /// fetching stops, so a stopping worker takes no more tasks. Read-held
    /// across a refilling `FINISH` call and write-held across orphan
    /// adoption, so a task a refill has just started is never taken for an
    /// orphan.
    refill: RwLock<Option<Refill>>,
    /// Set when a `FINISH` call failed after it may have started refilled
    /// tasks (its reply lost): the fetcher then adopts them.
    suspect: AtomicBool,
}

/// The reporter's means to refill freed slots.
struct Refill {
    /// The executors this worker offers and its tags, comma lists.
    executors: String,
    tags: String,
    /// The pool's channel, for the tasks a refill starts.
    jobs: Sender<Claimed>,
}

impl Shared {
    fn active(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u32, CancelFlag, bool)>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn refill(&self) -> std::sync::RwLockReadGuard<'_, Option<Refill>> {
        self.refill.read().unwrap_or_else(|p| p.into_inner())
    }

    fn refill_exclusive(&self) -> std::sync::RwLockWriteGuard<'_, Option<Refill>> {
        self.refill.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends a claimed task to the pool; false once the pool is gone.
    fn hand_to_pool(&self, jobs: &Sender<Claimed>, c: Claimed) -> bool {
        let owner = &self.in_pool[c.reporter];
        owner.fetch_add(1, Ordering::SeqCst);
        let sent = jobs.send(c).is_ok();
        if !sent {
            owner.fetch_sub(1, Ordering::SeqCst);
        }
        sent
    }

    /// The control list that wakes the fetcher to adopt orphans.
    fn adopt_list(&self) -> String {
        self.store.keys.control(&self.node, "adopt")
    }

    /// Registers claimed tasks as ours: a cancel can reach one before a
    /// pool thread picks it up, and orphan adoption will not claim it twice.
    /// They report to `reporter`, or (`None`) to each reporter in turn.
    fn register(&self, rows: Vec<ClaimRow>, reporter: Option<usize>) -> Vec<Claimed> {
        let claimed: Vec<Claimed> = rows
            .into_iter()
            .map(
                |(id, attempt, executor, payload, timeout_ms, job, latency_ms, wait_ms)| {
                    // -1: a re-claimed task, already observed by the lost call.
                    if latency_ms >= 0 {
                        METRICS.dispatch_latency.observe_ms(latency_ms);
                        METRICS.queue_wait.observe_ms(wait_ms);
                    }
                    Claimed {
                        id,
                        attempt,
                        executor,
                        payload,
                        timeout: Duration::from_millis(timeout_ms.max(1)),
                        job: (!job.is_empty()).then_some(job),
                        cancel: CancelFlag::default(),
                        reporter: reporter.unwrap_or_else(|| {
                            self.next_reporter.fetch_add(1, Ordering::Relaxed)
                                % REPORTER_NAMES.len()
                        }),
                    }
                },
            )
            .collect();
        let mut active = self.active();
        for c in &claimed {
            active.insert(c.id.clone(), (c.attempt, c.cancel.clone(), false));
        }
        claimed
    }
}

/// A running worker role.
pub struct Worker {
    shared: Arc<Shared>,
    fetcher: Option<Component>,
    canceller: Option<Component>,
    pool: Vec<std::thread::JoinHandle<()>>,
    pool_done: Receiver<()>,
    reporters: Vec<Component>,
    grace: Duration,
}

/// Starts the worker threads. `running` is shared with the heartbeat.
pub fn start(
    store: &Store,
    config: &Config,
    instance: &str,
    executors: Executors,
    running: Arc<AtomicUsize>,
) -> Result<Worker> {
    let offered = executors.names().join(",");
    let capacity = config.capacity;
    let (slots_tx, slots_rx) = crossbeam_channel::bounded(capacity);
    for _ in 0..capacity {
        slots_tx.send(()).expect("channel sized to capacity");
    }
    let (jobs_tx, jobs_rx) = crossbeam_channel::bounded::<Claimed>(capacity);
    let shared = Arc::new(Shared {
        store: store.clone(),
        node: config.node_id.clone(),
        instance: instance.to_string(),
        executors,
        running,
        in_pool: Default::default(),
        next_reporter: AtomicUsize::new(0),
        active: Mutex::default(),
        interrupted: AtomicBool::new(false),
        retention_ms: config.task_retention.as_millis() as u64,
        capacity: config.capacity,
        refill: RwLock::new(Some(Refill {
            executors: offered,
            tags: config.tags.join(","),
            jobs: jobs_tx.clone(),
        })),
        suspect: AtomicBool::new(false),
    });
    let (reports_tx, reports_rx): (Vec<Sender<Report>>, Vec<Receiver<Report>>) = REPORTER_NAMES
        .iter()
        .map(|_| crossbeam_channel::unbounded::<Report>())
        .unzip();
    let (done_tx, pool_done) = crossbeam_channel::unbounded();

    let mut pool = Vec::with_capacity(capacity);
    for n in 0..capacity {
        let (shared, jobs, reports, done) = (
            shared.clone(),
            jobs_rx.clone(),
            reports_tx.clone(),
            done_tx.clone(),
        );
        // Not `component::spawn_thread`: a pool thread spawns the shell
        // commands, and a child inherits the signal mask of the thread that
        // spawned it (std does not reset it), so a command started from a
        // thread that blocks SIGTERM could not be stopped with it. Pool
        // threads do no Redis I/O of their own, so they may take signals.
        pool.push(
            std::thread::Builder::new()
                .name(format!("pool-{n}"))
                .spawn(move || {
                    for claimed in jobs.iter() {
                        // The report carries the slot back: the reporter
                        // refills it or hands it to the fetcher.
                        let owner = claimed.reporter;
                        let report = run_one(&shared, claimed);
                        shared.in_pool[owner].fetch_sub(1, Ordering::SeqCst);
                        let _ = reports[owner].send(report);
                    }
                    let _ = done.send(());
                })?,
        );
    }
    drop((reports_tx, done_tx));

    let fetch_ctl = store.keys.control(&config.node_id, "fetch");
    let fetcher = {
        let (shared, ctl) = (shared.clone(), fetch_ctl.clone());
        let waker_store = store.clone();
        Component::spawn("fetcher", move |stop| {
            fetch_loop(&shared, &ctl, slots_rx, jobs_tx, stop)
        })?
        .with_waker(move || wake_control(&waker_store, &fetch_ctl))
    };
    let mut reporters = Vec::with_capacity(REPORTER_NAMES.len());
    for (index, (name, reports)) in REPORTER_NAMES.into_iter().zip(reports_rx).enumerate() {
        let (shared, slots) = (shared.clone(), slots_tx.clone());
        reporters.push(Component::spawn(name, move |_| {
            report_loop(&shared, index, reports, &slots)
        })?);
    }
    let cancel_ctl = store.keys.control(&config.node_id, "canceller");
    let canceller = {
        let (shared, ctl) = (shared.clone(), cancel_ctl.clone());
        let waker_store = store.clone();
        Component::spawn("canceller", move |stop| cancel_loop(&shared, &ctl, stop))?
            .with_waker(move || wake_control(&waker_store, &cancel_ctl))
    };
    Ok(Worker {
        shared,
        fetcher: Some(fetcher),
        canceller: Some(canceller),
        pool,
        pool_done,
        reporters,
        grace: config.shutdown_grace,
    })
}

impl Worker {
    /// Stops fetching and hands queued, unstarted tasks back to pending.
    pub fn stop_fetching(&mut self) {
        self.shared.refill_exclusive().take();
        if let Some(f) = self.fetcher.take() {
            f.stop();
        }
        let s = &self.shared;
        let keys = &s.store.keys;
        let handed_back = s.store.quiet_conn("worker").run(|c| {
            scripts::REQUEUE
                .key(keys.node(&s.node))
                .key(keys.queue(&s.node))
                .key(keys.held(&s.node))
                .key(keys.running())
                .key(keys.pending())
                .key(keys.seq())
                .key(keys.wake())
                .arg(&s.node)
                .arg(keys.task_prefix())
                .arg(&s.instance)
                .invoke::<usize>(c)
        });
        match handed_back {
            Ok(0) => {}
            Ok(n) => log::info!("worker: handed {n} queued tasks back to pending"),
            Err(e) => {
                log::warn!("worker: could not hand queued tasks back ({e}); the recoverer will")
            }
        }
    }

    /// Lets running tasks finish for up to the shutdown grace, then stops
    /// them (reported as failed attempts, retried elsewhere), flushes every
    /// result and joins all worker threads.
    pub fn drain(mut self) {
        self.stop_fetching();
        let deadline = Instant::now() + self.grace;
        let mut left = self.pool.len();
        while left > 0 {
            match self.pool_done.recv_deadline(deadline) {
                Ok(()) => left -= 1,
                Err(_) => break,
            }
        }
        if left > 0 {
            log::warn!(
                "worker: shutdown grace over; stopping {} running tasks",
                self.shared.running.load(Ordering::Relaxed)
            );
            self.shared.interrupted.store(true, Ordering::SeqCst);
            for (_, flag, _) in self.shared.active().values() {
                flag.cancel();
            }
        }
        for t in self.pool.drain(..) {
            let _ = t.join();
        }
        if let Some(c) = self.canceller.take() {
            c.stop();
        }
        // A reporter ends once every pool thread (report sender) is gone.
        for r in self.reporters.drain(..) {
            r.join();
        }
    }
}

fn run_one(shared: &Shared, c: Claimed) -> Report {
    shared.running.fetch_add(1, Ordering::Relaxed);
    METRICS.tasks_running.inc();
    let began = Instant::now();
    let mut ctx = TaskContext::new(&c.id, &c.executor, c.payload, c.timeout, c.cancel);
    ctx.attempt = c.attempt;
    ctx.job = c.job;
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
    shared.running.fetch_sub(1, Ordering::Relaxed);
    METRICS.tasks_running.dec();
    METRICS.task_duration.observe_duration(began.elapsed());
    METRICS.attempt_ended(outcome.kind());
    log::debug!(
        "worker: task {} attempt {} {}",
        c.id,
        c.attempt,
        outcome.kind()
    );
    Report {
        id: c.id,
        attempt: c.attempt,
        outcome,
        log: ctx.take_log(),
    }
}

type ClaimRow = (String, u32, String, String, u64, String, i64, i64);

/// Claims `pop` more items from the queue plus `items` already popped
/// (`reclaim`: those items may already have been started by a call whose
/// reply was lost).
fn claim(
    shared: &Shared,
    conn: &mut Conn,
    items: &[String],
    pop: usize,
    reclaim: bool,
) -> Result<Vec<Claimed>> {
    let keys = &shared.store.keys;
    let rows: Vec<ClaimRow> = conn.run(|c| {
        scripts::START
            .key(keys.queue(&shared.node))
            .key(keys.running())
            .arg(&shared.node)
            .arg(keys.task_prefix())
            .arg(pop)
            .arg(RECOVERY_GRACE.as_millis() as u64)
            .arg(if reclaim { "1" } else { "" })
            .arg(items)
            .invoke(c)
    })?;
    Ok(shared.register(rows, None))
}

/// Tasks running on this worker in Redis that no thread here knows of: a
/// claim whose reply was lost to a connection error started them. Returned
/// as queue items, to be re-claimed.
fn orphans(shared: &Shared, conn: &mut Conn) -> Result<Vec<String>> {
    let keys = &shared.store.keys;
    let held: Vec<String> =
        conn.run(|c| redis::cmd("SMEMBERS").arg(keys.held(&shared.node)).query(c))?;
    if held.is_empty() {
        return Ok(Vec::new());
    }
    let states: Vec<(Option<String>, Option<String>, Option<String>)> = conn.run(|c| {
        let mut pipe = redis::pipe();
        for id in &held {
            pipe.cmd("HMGET")
                .arg(keys.task(id))
                .arg("status")
                .arg("attempt")
                .arg("worker");
        }
        pipe.query(c)
    })?;
    let active = shared.active();
    Ok(held
        .into_iter()
        .zip(states)
        .filter_map(|(id, (status, attempt, worker))| {
            let ours = status.as_deref() == Some("running")
                && worker.as_deref() == Some(shared.node.as_str());
            (ours && !active.contains_key(&id))
                .then(|| format!("{id}|{}", attempt.unwrap_or_default()))
        })
        .collect())
}

fn fetch_loop(
    shared: &Shared,
    ctl: &str,
    slots: Receiver<()>,
    jobs: Sender<Claimed>,
    stop: StopSignal,
) {
    let mut conn = shared.store.conn("fetcher");
    let queue = shared.store.keys.queue(&shared.node);
    let adopt = shared.adopt_list();
    let mut tokens = 0usize;
    // Items this thread popped but could not claim, and whether a failed
    // claim may have started tasks whose reply was lost.
    let mut unclaimed: Vec<String> = Vec::new();
    let mut suspect = false;
    loop {
        if tokens == 0 {
            crossbeam_channel::select! {
                recv(slots) -> _ => tokens += 1,
                recv(stop.receiver()) -> _ => return,
            }
        }
        tokens += slots.try_iter().count();
        if stop.is_stopped() {
            return;
        }
        // A reporter call that started refilled tasks may have lost its
        // reply too.
        suspect |= shared.suspect.swap(false, Ordering::SeqCst);
        let attempt = if suspect {
            // No refill may start tasks meanwhile: they would look orphaned.
            let _refills = shared.refill_exclusive();
            orphans(shared, &mut conn).and_then(|mut items| {
                if !items.is_empty() {
                    log::warn!(
                        "fetcher: adopting {} tasks started by a claim whose reply was lost",
                        items.len()
                    );
                }
                items.append(&mut unclaimed.clone());
                let pop = tokens.saturating_sub(items.len());
                claim(shared, &mut conn, &items, pop, true)
            })
        } else {
            claim(
                shared,
                &mut conn,
                &unclaimed,
                tokens.saturating_sub(unclaimed.len()),
                false,
            )
        };
        let mut claimed = match attempt {
            Ok(c) => {
                unclaimed.clear();
                suspect = false;
                c
            }
            Err(_) => {
                suspect = true;
                if stop.wait(conn.backoff()) {
                    return;
                }
                continue;
            }
        };
        if claimed.is_empty() {
            let popped = conn.run_blocking(IDLE_BLOCK, |c| {
                redis::cmd("BLMPOP")
                    .arg(IDLE_BLOCK.as_secs_f64())
                    .arg(3)
                    .arg(&queue)
                    .arg(ctl)
                    .arg(&adopt)
                    .arg("RIGHT")
                    .arg("COUNT")
                    .arg(tokens)
                    .query::<Option<(String, Vec<String>)>>(c)
            });
            match popped {
                Ok(Some((key, _))) if key == ctl => return,
                // A reporter's lost reply may have started tasks.
                Ok(Some((key, _))) if key == adopt => suspect = true,
                Ok(Some((_, items))) => match claim(shared, &mut conn, &items, 0, false) {
                    Ok(c) => claimed = c,
                    Err(_) => {
                        // Keep the items; claim them (or adopt what the
                        // failed call started) once Redis answers again.
                        unclaimed = items;
                        suspect = true;
                        continue;
                    }
                },
                Ok(None) => {}
                Err(_) => {
                    if stop.wait(conn.backoff()) {
                        return;
                    }
                }
            }
        }
        for c in claimed {
            tokens = tokens.saturating_sub(1);
            if !shared.hand_to_pool(&jobs, c) {
                return;
            }
        }
    }
}

/// Reporter `index`: records the outcomes of its own tasks (`reports`).
fn report_loop(shared: &Shared, index: usize, reports: Receiver<Report>, slots: &Sender<()>) {
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
type Finished = (u64, u64, u64, u64, u64, u64, Vec<ClaimRow>);

/// Records `batch` and refills the freed slots (see `FINISH`): with
/// `refill`, `direct` refilled tasks are started at once (the caller holds
/// that many free pool slots), others queued.
fn finish(
    shared: &Shared,
    conn: &mut Conn,
    batch: &[Report],
    refill: Option<&Refill>,
    direct: usize,
) -> Result<Finished> {
    let keys = &shared.store.keys;
    conn.run(|c| {
        let mut inv = scripts::FINISH.prepare_invoke();
        inv.key(keys.running())
            .key(keys.held(&shared.node))
            .key(keys.delayed())
            .key(keys.pending())
            .key(keys.wake())
            .key(keys.node(&shared.node))
            .key(keys.queue(&shared.node))
            .key(keys.backlogs())
            .arg(&shared.node)
            .arg(keys.task_prefix())
            .arg(keys.log_prefix())
            .arg(shared.retention_ms)
            .arg(LOG_CAP)
            .arg(keys.done_prefix())
            .arg(keys.stats_prefix())
            .arg(shared.capacity)
            .arg(RECOVERY_GRACE.as_millis() as u64)
            .arg(&shared.instance);
        match refill {
            Some(r) => inv.arg(&r.executors).arg(&r.tags),
            None => inv.arg("").arg(""),
        };
        inv.arg(keys.park_prefix()).arg(direct);
        for r in batch {
            let result = r
                .outcome
                .result()
                .map(|res| serde_json::to_string(res).unwrap_or_default());
            let error = match &r.outcome {
                Outcome::Success(_) => String::new(),
                Outcome::Cancelled => "cancelled".into(),
                Outcome::Failed(res) | Outcome::TimedOut(res) => res.message.clone(),
            };
            inv.arg(&r.id)
                .arg(r.attempt)
                .arg(r.outcome.kind())
                .arg(result.unwrap_or_default())
                .arg(error)
                .arg(crate::random_unit())
                .arg(r.log.len())
                .arg(&r.log);
        }
        inv.invoke(c)
    })
}

fn cancel_loop(shared: &Shared, ctl: &str, stop: StopSignal) {
    let mut conn = shared.store.conn("canceller");
    let list = shared.store.keys.control(&shared.node, "cancel");
    while !stop.is_stopped() {
        let popped = conn.run_blocking(IDLE_BLOCK, |c| {
            redis::cmd("BLPOP")
                .arg(&list)
                .arg(ctl)
                .arg(IDLE_BLOCK.as_secs_f64())
                .query::<Option<(String, String)>>(c)
        });
        match popped {
            Ok(Some((key, _))) if key == ctl => return,
            Ok(Some((_, item))) => {
                let Some((id, attempt)) = item.rsplit_once('|') else {
                    continue;
                };
                let mut active = shared.active();
                if let Some((a, flag, by_user)) = active.get_mut(id)
                    && attempt.parse() == Ok(*a)
                {
                    *by_user = true;
                    flag.cancel();
                    log::info!("canceller: task {id} attempt {attempt} cancelled");
                }
            }
            Ok(None) => {}
            Err(_) => {
                if stop.wait(conn.backoff()) {
                    return;
                }
            }
        }
    }
}
