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
//! - live: about once a second, writes what running tasks logged and
//!   their progress (each pool thread's slot), so output reaches the log
//!   while a task runs.
//!
//! This file: the shared state, start and the drain; one file per thread:
//! `fetcher.rs`, `pool.rs` (what each pool thread runs), `reporter.rs`,
//! `canceller.rs`, `live.rs`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::component::Component;
use crate::config::Config;
use crate::error::Result;
use crate::executor::live::LiveLog;
use crate::executor::{CancelFlag, Executors, Outcome};
use crate::leader::wake_control;
use crate::metrics::METRICS;
use crate::store::{Store, calls};
use crate::supervisor::{Policy, Supervision};

mod canceller;
mod fetcher;
mod live;
mod pool;
mod reporter;

use canceller::cancel_loop;
use fetcher::{ClaimRow, fetch_loop};
use pool::run_one;
use reporter::report_loop;

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
/// How long a stopping worker waits, after the shutdown grace, for the
/// tasks it cancelled to end: a shell task gets SIGTERM, then SIGKILL after
/// [`KILL_GRACE`](crate::executor::shell::KILL_GRACE) (3 s), and its output
/// pipes 1 s more. A task still running then ignores its cancellation (a
/// Rust closure that never looks at `TaskContext::is_cancelled`): it is
/// reported as a failed attempt and its thread is left behind.
pub const STOP_BOUND: Duration = Duration::from_secs(5);
/// The error of an attempt the shutdown gave up on (see [`STOP_BOUND`]).
pub const GAVE_UP: &str = "shutdown: did not stop within grace";
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
    /// (task id, attempt) of attempts that ended here and whose outcome a
    /// reporter has not written yet. Redis still shows them `running` on
    /// this worker, and they are no longer in `active`: orphan adoption
    /// must not take them for tasks a lost reply started, or they run
    /// twice. An attempt enters before it leaves `active` (see the pool).
    unreported: Mutex<HashSet<(String, u32)>>,
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
    /// The reporters' channels, through which the pool delivers reports;
    /// `None` once the drain is over (see `pool.rs`). Closing it is what
    /// ends the reporters.
    outbox: Mutex<Option<Vec<Sender<Report>>>>,
    /// One live slot per pool thread: the running attempt's log lines and
    /// progress, written by the `live` thread.
    live: Vec<Arc<LiveLog>>,
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

    fn unreported(&self) -> std::sync::MutexGuard<'_, HashSet<(String, u32)>> {
        self.unreported.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn outbox(&self) -> std::sync::MutexGuard<'_, Option<Vec<Sender<Report>>>> {
        self.outbox.lock().unwrap_or_else(|p| p.into_inner())
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

    /// The outcomes in `batch` are written (or given up): their attempts
    /// may be adopted again if Redis ever shows them running here.
    fn forget_reported(&self, batch: &[Report]) {
        let mut unreported = self.unreported();
        for r in batch {
            unreported.remove(&(r.id.clone(), r.attempt));
        }
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
    live: Option<Component>,
    pool: Vec<std::thread::JoinHandle<()>>,
    pool_done: Receiver<()>,
    /// The pool's channel, to empty it when the drain gives up on stuck
    /// pool threads (so they take nothing more if they ever end).
    jobs: Receiver<Claimed>,
    reporters: Vec<Component>,
    grace: Duration,
}

/// Starts the worker threads. `running` is shared with the heartbeat. The
/// fetcher and the reporters stop the node if they die; the canceller is
/// restarted (see `supervisor.rs`).
pub fn start(
    store: &Store,
    config: &Config,
    instance: &str,
    executors: Executors,
    running: Arc<AtomicUsize>,
    supervision: &Supervision,
) -> Result<Worker> {
    let offered = executors.names().join(",");
    let capacity = config.capacity;
    let (slots_tx, slots_rx) = crossbeam_channel::bounded(capacity);
    for _ in 0..capacity {
        slots_tx.send(()).expect("channel sized to capacity");
    }
    let (jobs_tx, jobs_rx) = crossbeam_channel::bounded::<Claimed>(capacity);
    let (reports_tx, reports_rx): (Vec<Sender<Report>>, Vec<Receiver<Report>>) = REPORTER_NAMES
        .iter()
        .map(|_| crossbeam_channel::unbounded::<Report>())
        .unzip();
    let shared = Arc::new(Shared {
        store: store.clone(),
        node: config.node_id.clone(),
        instance: instance.to_string(),
        executors,
        running,
        in_pool: Default::default(),
        next_reporter: AtomicUsize::new(0),
        active: Mutex::default(),
        unreported: Mutex::default(),
        interrupted: AtomicBool::new(false),
        retention_ms: config.task_retention.as_millis() as u64,
        capacity: config.capacity,
        refill: RwLock::new(Some(Refill {
            executors: offered,
            tags: config.tags.join(","),
            jobs: jobs_tx.clone(),
        })),
        suspect: AtomicBool::new(false),
        outbox: Mutex::new(Some(reports_tx)),
        live: (0..capacity)
            .map(|_| Arc::new(LiveLog::streamed()))
            .collect(),
    });
    let (done_tx, pool_done) = crossbeam_channel::unbounded();

    let mut pool = Vec::with_capacity(capacity);
    for n in 0..capacity {
        let (shared, jobs, done) = (shared.clone(), jobs_rx.clone(), done_tx.clone());
        // Not `component::spawn_thread`: a pool thread spawns the shell
        // commands, and a child inherits the signal mask of the thread that
        // spawned it (std does not reset it), so a command started from a
        // thread that blocks SIGTERM could not be stopped with it. Pool
        // threads do no Redis I/O of their own, so they may take signals.
        pool.push(
            std::thread::Builder::new()
                .name(format!("pool-{n}"))
                .spawn(move || {
                    let slot = shared.live[n].clone();
                    for claimed in jobs.iter() {
                        // The report carries the slot back: the reporter
                        // refills it or hands it to the fetcher.
                        run_one(&shared, claimed, &slot);
                    }
                    let _ = done.send(());
                })?,
        );
    }
    drop(done_tx);

    // The stop wakers' lists are this process's own (`…:fetch:{instance}`):
    // a replaced process of the same node id that shuts down must not stop
    // its successor's loops (a foreign pop would end them, and a fetcher
    // that ends stops the node).
    let fetch_ctl = store
        .keys
        .control(&config.node_id, &format!("fetch:{instance}"));
    let fetcher = {
        let (shared, ctl) = (shared.clone(), fetch_ctl.clone());
        let waker_store = store.clone();
        // Exit policy: the fetcher holds the free slots' tokens and the
        // items it popped; a restart would lose them.
        let mut once = Some((slots_rx, jobs_tx));
        Component::supervised("fetcher", Policy::Exit, supervision, move |stop| {
            if let Some((slots, jobs)) = once.take() {
                fetch_loop(&shared, &ctl, slots, jobs, stop.clone());
            }
            Ok(())
        })?
        .with_waker(move || wake_control(&waker_store, &fetch_ctl))
    };
    let mut reporters = Vec::with_capacity(REPORTER_NAMES.len());
    for (index, (name, reports)) in REPORTER_NAMES.into_iter().zip(reports_rx).enumerate() {
        let (shared, slots) = (shared.clone(), slots_tx.clone());
        // Exit policy: a reporter holds outcomes not yet recorded and the
        // slots they free.
        let mut once = Some(reports);
        reporters.push(Component::supervised(
            name,
            Policy::Exit,
            supervision,
            move |_| {
                if let Some(reports) = once.take() {
                    report_loop(&shared, index, reports, &slots);
                }
                Ok(())
            },
        )?);
    }
    let cancel_ctl = store
        .keys
        .control(&config.node_id, &format!("canceller:{instance}"));
    let canceller = {
        let (shared, ctl) = (shared.clone(), cancel_ctl.clone());
        let waker_store = store.clone();
        Component::supervised("canceller", Policy::Restart, supervision, move |stop| {
            cancel_loop(&shared, &ctl, stop.clone());
            Ok(())
        })?
        .with_waker(move || wake_control(&waker_store, &cancel_ctl))
    };
    let live = {
        let shared = shared.clone();
        Component::spawn("live", move |stop| live::live_loop(&shared, &stop))?
    };
    Ok(Worker {
        shared,
        fetcher: Some(fetcher),
        canceller: Some(canceller),
        live: Some(live),
        pool,
        pool_done,
        jobs: jobs_rx,
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
            calls::Requeue {
                node: &s.node,
                instance: &s.instance,
            }
            .invocation(keys)
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
    /// result and joins all worker threads. A task that ignores its
    /// cancellation for [`STOP_BOUND`] more is reported failed
    /// ([`GAVE_UP`]) and its pool thread is left running, with a log line:
    /// the drain never waits on it.
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
            let bound = Instant::now() + STOP_BOUND;
            while left > 0 {
                match self.pool_done.recv_deadline(bound) {
                    Ok(()) => left -= 1,
                    Err(_) => break,
                }
            }
        }
        // The reporters end once the outbox is closed: that is a stop, not
        // a death.
        for r in &mut self.reporters {
            r.request_stop();
        }
        {
            // Lock order: outbox, then active (as in `pool.rs`). Once the
            // outbox is closed no pool thread can deliver; the reporters
            // end when they have recorded what is in their channels.
            let mut outbox = self.shared.outbox();
            let senders = outbox.take();
            if left > 0 {
                // Claimed but never picked up: no thread will run them.
                self.jobs.try_iter().for_each(drop);
                let stuck: Vec<(String, u32)> = self
                    .shared
                    .active()
                    .drain()
                    .map(|(id, (attempt, _, _))| (id, attempt))
                    .collect();
                let ids: Vec<&str> = stuck.iter().map(|(id, _)| id.as_str()).collect();
                log::error!(
                    "worker: {} tasks did not stop within the shutdown grace + {STOP_BOUND:?} after their cancellation ({}); reported as failed attempts; {left} pool threads are left running",
                    stuck.len(),
                    ids.join(", ")
                );
                if let Some(senders) = &senders {
                    for (id, attempt) in stuck {
                        METRICS.attempt_ended("failed");
                        let _ = senders[0].send(Report {
                            id,
                            attempt,
                            outcome: Outcome::fail(-1, GAVE_UP),
                            log: vec![format!(
                                "{GAVE_UP} ({:?} + {STOP_BOUND:?} after its cancellation); the attempt is counted as failed",
                                self.grace
                            )],
                        });
                    }
                }
            }
        }
        for t in self.pool.drain(..) {
            // A thread still running a task that ignores its cancellation
            // is detached, not joined.
            if left == 0 || t.is_finished() {
                let _ = t.join();
            }
        }
        if let Some(c) = self.canceller.take() {
            c.stop();
        }
        // Its last round writes the final progress of the tasks just ended.
        if let Some(l) = self.live.take() {
            l.stop();
        }
        for r in self.reporters.drain(..) {
            r.join();
        }
    }
}
