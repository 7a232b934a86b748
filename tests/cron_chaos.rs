//! Exactly-once cron firing across leader failure (DESIGN §4 invariant 2),
//! with three real `distsched node` processes and a private `redis-server`
//! per test.
//!
//! A per-second job (`* * * * * *`, executor `noop`, misfire `fire_once`
//! with the default 60 s threshold) keeps firing while the leader is killed
//! with `kill -9` (test 1) or frozen with SIGSTOP past its lease and then
//! resumed (test 2). Outages last about a lease TTL (1 s with the fast
//! timings), far inside the misfire threshold, so every slot of the window
//! must have a task: exactly one, created once.
//!
//! The nodes keep finished tasks only 2 s (`--task-retention 2s`), so tasks
//! expire during the run: a slot fired again after its task expired would
//! be a new record with a new creation time. The test samples the job's
//! tasks all along (every 20 ms, far inside the retention) and keeps every
//! record it saw, so it catches that as well as a slot that never fired.
//!
//! Killed nodes are replaced by a node with a new id (`n4`, `n5`, ...), so
//! a replacement never inherits the registry entry of the node it replaces.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use distsched::{Client, JobSpec};
use support::*;

const JOB: &str = "tick";
/// Slots the window must span at least (issue 5 asks for 30).
const MIN_SLOTS: i64 = 32;
/// Slots the kill -9 window must span at least (issue 6 asks for 60).
const MIN_SLOTS_KILL9: i64 = 60;
/// Node flags: finished tasks expire 2 s after they end.
const NODE_FLAGS: &[&str] = &["--task-retention", "2s"];

/// Everything seen of one task over the run.
#[derive(Debug, Default)]
struct Seen {
    /// Distinct `created_ms` values: more than one = created twice.
    created: BTreeSet<i64>,
    slots: BTreeSet<Option<i64>>,
    status: String,
}

struct Cluster {
    _redis: RedisServer,
    url: String,
    ns: String,
    nodes: Vec<NodeProc>,
    probe: Probe,
    client: Client,
    /// The job's first slot: its stored next fire time right after it was
    /// added, before any node ran.
    first_slot: i64,
    /// Task id → what the samples saw of it.
    seen: BTreeMap<String, Seen>,
    samples: u64,
}

impl Cluster {
    /// A per-second job, then three nodes; returns once one leads.
    fn start(label: &str) -> Cluster {
        let redis = RedisServer::start();
        let url = redis.url();
        let ns = unique_ns(label);
        let mut client = Client::open(&url, &ns).expect("client");
        client
            .add_job(&JobSpec::new(JOB, "noop").with_cron("* * * * * *"))
            .expect("add job");
        let first_slot = client
            .job(JOB)
            .expect("job")
            .next_fire_ms
            .expect("scheduled");
        let nodes = ["n1", "n2", "n3"]
            .iter()
            .map(|id| NodeProc::start(&url, &ns, id, NODE_FLAGS))
            .collect();
        let mut probe = Probe::new(&url, &ns);
        wait_for_leader(&mut probe, Duration::from_secs(10));
        Cluster {
            _redis: redis,
            url,
            ns,
            nodes,
            probe,
            client,
            first_slot,
            seen: BTreeMap::new(),
            samples: 0,
        }
    }

    /// Records the job's tasks as they are now (one atomic read).
    fn sample(&mut self) {
        for t in self.probe.job_tasks(JOB) {
            let seen = self.seen.entry(t.id.clone()).or_default();
            seen.created.insert(t.created_ms);
            seen.slots.insert(t.slot_ms);
            seen.status = t.status;
        }
        self.samples += 1;
    }

    /// The job's `fired` counter, after taking a sample.
    fn fired(&mut self) -> u64 {
        self.sample();
        self.client.job(JOB).expect("job").fired
    }

    /// Waits until `n` more slots have fired (by whoever leads).
    fn wait_fired(&mut self, n: u64) {
        let base = self.fired();
        let timeout = Duration::from_secs(n + 10);
        wait_until(timeout, &format!("{n} more slots fired"), || {
            self.fired() >= base + n
        });
    }

    /// The latest slot that has a task (after taking a sample).
    fn last_fired_slot(&mut self) -> i64 {
        self.sample();
        self.seen
            .values()
            .flat_map(|s| s.slots.iter().flatten())
            .copied()
            .max()
            .unwrap_or(0)
    }

    /// Index in `nodes` of the current leader.
    fn leader_index(&mut self) -> usize {
        let leader = wait_for(Duration::from_secs(10), "someone leads", || {
            self.probe.leader()
        });
        self.nodes
            .iter()
            .position(|n| n.id() == leader)
            .unwrap_or_else(|| panic!("leader {leader} is not one of our nodes"))
    }

    /// Waits until a node other than `old` leads and has ticked in its term.
    fn wait_new_leader(&mut self, old: &str) -> (String, u64) {
        wait_for(
            Duration::from_secs(10),
            &format!("a node other than {old} leads"),
            || {
                self.sample();
                let s = self.probe.snapshot();
                let (leader, epoch) = (s.leader.clone()?, s.epoch?);
                (leader != old && s.tick() == Some((leader.clone(), epoch)))
                    .then_some((leader, epoch))
            },
        )
    }

    /// Runs until the window spans `min_slots` and at least 4 slots fired
    /// after the last disruption; then stops the job and waits for every
    /// task to finish. Returns the last slot of the window.
    fn finish(&mut self, min_slots: i64) -> i64 {
        self.wait_fired(4);
        let until = self.first_slot + (min_slots - 1) * 1000;
        wait_until(
            Duration::from_secs(min_slots as u64 + 10),
            "the window spans enough slots",
            || self.last_fired_slot() >= until,
        );
        let end_ms = self.probe.time_ms();
        let last_slot = end_ms - end_ms.rem_euclid(1000);
        // Every slot up to the end is decided once the stored next fire time
        // is past it.
        wait_until(
            Duration::from_secs(10),
            "the schedule moved past the last slot",
            || {
                self.sample();
                self.client
                    .job(JOB)
                    .expect("job")
                    .next_fire_ms
                    .is_some_and(|n| n > last_slot)
            },
        );
        // Freeze the count: no firing after this.
        self.client.set_job_enabled(JOB, false).expect("disable");
        wait_until(
            Duration::from_secs(20),
            "every task of the job has ended",
            || {
                self.sample();
                self.seen
                    .values()
                    .all(|s| matches!(s.status.as_str(), "success" | "failed" | "cancelled"))
            },
        );
        last_slot
    }
}

/// What the window held.
#[derive(Debug)]
struct Tally {
    slots: usize,
    /// Distinct tasks seen over the run.
    tasks: usize,
    /// Of those, how many had already expired at the end.
    expired: usize,
    /// Slots with more than one task, or a task created more than once.
    duplicates: Vec<i64>,
    missing: Vec<i64>,
    /// Creation lateness (created_ms − slot_ms) of the window's slots.
    lateness: Vec<i64>,
}

/// Checks exactly-once firing over `[first_slot, last_slot]` from every
/// sample taken; returns the tally after asserting it is clean.
fn check_exactly_once(c: &mut Cluster, last_slot: i64, min_slots: i64) -> Tally {
    c.sample();
    let status = c.client.job(JOB).expect("job");
    let still_listed = c.probe.job_tasks(JOB).len();
    // slot → (task id, creation times) of every task seen for it.
    let mut by_slot: BTreeMap<i64, Vec<(&str, &BTreeSet<i64>)>> = BTreeMap::new();
    for (id, seen) in &c.seen {
        let from_id: i64 = id
            .strip_prefix(&format!("{JOB}@"))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("task {id} is not named {JOB}@<slot>"));
        assert_eq!(
            seen.slots,
            BTreeSet::from([Some(from_id)]),
            "{id}: slot_ms disagrees with the id: {seen:?}"
        );
        assert_eq!(from_id % 1000, 0, "{id}: slot not on a whole second");
        assert!(
            from_id >= c.first_slot,
            "{id}: a slot before the job's first one fired"
        );
        assert!(
            seen.created.iter().all(|&t| t >= from_id),
            "{id}: created before its slot: {seen:?}"
        );
        assert_eq!(seen.status, "success", "{id} did not succeed: {seen:?}");
        by_slot
            .entry(from_id)
            .or_default()
            .push((id, &seen.created));
    }
    // Ids are deterministic, so a slot fired twice would show as one id with
    // two creation times (fired again after the first task expired, or
    // overwritten while listed).
    let duplicates: Vec<i64> = by_slot
        .iter()
        .filter(|(_, ts)| ts.len() > 1 || ts[0].1.len() > 1)
        .map(|(s, _)| *s)
        .collect();
    let window: Vec<i64> = (c.first_slot..=last_slot).step_by(1000).collect();
    let missing: Vec<i64> = window
        .iter()
        .copied()
        .filter(|s| !by_slot.contains_key(s))
        .collect();
    // Slots are created in slot order.
    let created: Vec<(i64, i64)> = by_slot
        .iter()
        .map(|(slot, ts)| (*slot, *ts[0].1.first().expect("created")))
        .collect();
    for w in created.windows(2) {
        assert!(
            w[1].1 >= w[0].1,
            "slot {} created after slot {}: {w:?}",
            w[0].0,
            w[1].0
        );
    }
    // The `fired` counter counts creations: one per task seen.
    assert_eq!(
        status.fired as usize,
        c.seen.len(),
        "the job counts {} creations for {} tasks",
        status.fired,
        c.seen.len()
    );
    // The recent history lines name each slot once.
    let mut history_slots: Vec<&str> = status
        .history
        .iter()
        .filter_map(|h| h.split_once(" fired ")?.1.split_once(' ').map(|x| x.0))
        .collect();
    let listed = history_slots.len();
    history_slots.sort_unstable();
    history_slots.dedup();
    assert_eq!(history_slots.len(), listed, "history: {:?}", status.history);
    let lateness: Vec<i64> = created
        .iter()
        .filter(|(slot, _)| *slot <= last_slot)
        .map(|(slot, created)| created - slot)
        .collect();
    let tally = Tally {
        slots: window.len(),
        tasks: c.seen.len(),
        expired: c.seen.len() - still_listed,
        duplicates,
        missing,
        lateness,
    };
    assert!(
        tally.slots as i64 >= min_slots,
        "window too short: {tally:?}"
    );
    assert!(
        tally.duplicates.is_empty() && tally.missing.is_empty(),
        "window [{}, {last_slot}]: duplicated slots {:?}, missing slots {:?}",
        c.first_slot,
        tally.duplicates,
        tally.missing
    );
    // The retention was really in play.
    assert!(
        tally.expired > tally.tasks / 2,
        "only {} of {} tasks expired during the run",
        tally.expired,
        tally.tasks
    );
    tally
}

fn summary(label: &str, tally: &Tally, extra: &str) {
    let late = tally.lateness.iter().filter(|&&l| l > 200).count();
    report(&format!(
        "{label}: {} slots, lost {}, duplicates {}; {} tasks in all ({} expired during the run); \
         creation lateness p50 {} ms, max {} ms, \
         {late} slots caught up > 200 ms late; {extra}",
        tally.slots,
        tally.missing.len(),
        tally.duplicates.len(),
        tally.tasks,
        tally.expired,
        quantile(&tally.lateness, 0.5),
        tally.lateness.iter().max().copied().unwrap_or(0),
    ));
}

/// Test 1 (issue 5 test 1, issue 6 chaos 2): the leader is `kill -9`'d
/// every few seconds, ten times, while a per-second job fires over at least
/// 60 slots. Every slot of the window has exactly one task, created once.
#[test]
fn kill9_of_the_leader_fires_every_slot_exactly_once() {
    let mut c = Cluster::start("cron-kill9");
    let started = Instant::now();
    const KILLS: usize = 10;
    // Where in the second to kill: just after a firing, just before the
    // next slot (so the outage swallows it), and in between.
    let offsets = [50, 900, 500, 250, 750, 100, 950, 400, 600, 850];
    let mut leaders = Vec::new();
    for (round, offset) in offsets.iter().enumerate().take(KILLS) {
        c.wait_fired(4);
        let last = c.last_fired_slot();
        wait_until(Duration::from_secs(5), "the kill moment", || {
            c.sample();
            c.probe.time_ms() >= last + offset
        });
        let i = c.leader_index();
        let old = c.nodes[i].id().to_string();
        c.nodes[i].kill9();
        c.nodes[i]
            .wait_exit(Duration::from_secs(5))
            .expect("the killed leader exits");
        let (new, epoch) = c.wait_new_leader(&old);
        leaders.push(format!("{old}->{new}@{epoch}"));
        let id = format!("n{}", 4 + round);
        let node = NodeProc::start(&c.url, &c.ns, &id, NODE_FLAGS);
        c.nodes.push(node);
    }
    let last_slot = c.finish(MIN_SLOTS_KILL9);
    let tally = check_exactly_once(&mut c, last_slot, MIN_SLOTS_KILL9);

    let owners = assert_claims_disjoint(&c.nodes.iter().collect::<Vec<_>>());
    assert!(
        owners.len() > KILLS,
        "expected at least {} terms, saw {owners:?}",
        KILLS + 1
    );
    summary(
        "chaos leader-killed",
        &tally,
        &format!(
            "{KILLS} kills ({}), {} terms, {} samples, {:?}",
            leaders.join(", "),
            owners.len(),
            c.samples,
            started.elapsed()
        ),
    );
}

/// Test 2: the leader is frozen with SIGSTOP until a standby has taken over
/// and fired slots of its own, then resumed with SIGCONT, three times. The
/// resumed ex-leader steps down; no slot is fired twice or lost.
#[test]
fn a_frozen_leader_resumed_after_its_lease_fires_nothing_twice() {
    let mut c = Cluster::start("cron-sigstop");
    let started = Instant::now();
    const FREEZES: usize = 3;
    let mut events = Vec::new();
    // Freeze just before a slot (the standby must catch it up), just after
    // a firing, and in between.
    for offset in [900, 50, 500].into_iter().take(FREEZES) {
        c.wait_fired(4);
        let last = c.last_fired_slot();
        wait_until(Duration::from_secs(5), "the freeze moment", || {
            c.sample();
            c.probe.time_ms() >= last + offset
        });
        let i = c.leader_index();
        let old = c.nodes[i].id().to_string();
        let old_epoch = c.probe.epoch().expect("epoch");
        c.nodes[i].sigstop();
        let frozen = Instant::now();
        let (new, epoch) = c.wait_new_leader(&old);
        // The standby fires slots while the old leader is still frozen.
        c.wait_fired(3);
        c.nodes[i].sigcont();
        let held = frozen.elapsed();
        assert!(held > LEASE_TTL, "frozen only {held:?}, not past the lease");
        wait_until(
            Duration::from_secs(10),
            &format!("{old} steps down after SIGCONT"),
            || {
                c.sample();
                leader_events(&c.nodes[i].log()).contains(&LeaderEvent::SteppedDown {
                    node: old.clone(),
                    epoch: old_epoch,
                })
            },
        );
        assert!(c.nodes[i].is_running(), "{old} exited after SIGCONT");
        events.push(format!("{old}@{old_epoch} frozen {held:?} ->{new}@{epoch}"));
    }
    let last_slot = c.finish(MIN_SLOTS);
    let tally = check_exactly_once(&mut c, last_slot, MIN_SLOTS);
    let owners = assert_claims_disjoint(&c.nodes.iter().collect::<Vec<_>>());
    assert!(owners.len() > FREEZES, "terms: {owners:?}");
    let rejected = c.probe.fence_rejected();
    summary(
        "chaos leader-frozen",
        &tally,
        &format!(
            "{FREEZES} freezes ({}), {rejected} fenced writes refused, {} samples, {:?}",
            events.join(", "),
            c.samples,
            started.elapsed()
        ),
    );
}
