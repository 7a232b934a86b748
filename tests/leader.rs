//! Leader election and fencing, with real `distsched node` processes and a
//! private `redis-server` per test (DESIGN §4, invariant 1).

mod support;

use std::time::{Duration, Instant};

use distsched::Error;
use distsched::internal::{Fence, Keys, Store, scripts};

use support::*;

/// Starts nodes `n1`, `n2`, `n3` with the fast timings and `extra` flags.
fn three_nodes(redis: &RedisServer, ns: &str, extra: &[&str]) -> Vec<NodeProc> {
    ["n1", "n2", "n3"]
        .iter()
        .map(|id| NodeProc::start(&redis.url(), ns, id, extra))
        .collect()
}

fn by_id<'a>(nodes: &'a mut [NodeProc], id: &str) -> &'a mut NodeProc {
    nodes
        .iter_mut()
        .find(|n| n.id() == id)
        .unwrap_or_else(|| panic!("no node {id}"))
}

fn refs(nodes: &[NodeProc]) -> Vec<&NodeProc> {
    nodes.iter().collect()
}

/// Test 1: three nodes, exactly one leader at every sampled moment for 10 s.
///
/// "Exactly one" is checked from every side that can see it: Redis (the
/// lease key, the epoch, the term recorded at election, the fenced tick),
/// the `workers` view (exactly one node flagged leader), `distsched leader`,
/// and every node's own log (one `became leader` in total, no two nodes
/// ever claiming the same epoch, nobody stepping down). With no kill in the
/// window the lease must never change hands and the epoch never move.
#[test]
fn one_leader_at_every_sample_over_ten_seconds() {
    let redis = RedisServer::start();
    let ns = unique_ns("one-leader");
    let mut nodes = three_nodes(&redis, &ns, &[]);
    let mut probe = Probe::new(&redis.url(), &ns);
    let (leader, epoch) = wait_for_leader(&mut probe, Duration::from_secs(10));
    let mut client = distsched::Client::open(&redis.url(), &ns).expect("client");
    wait_until(Duration::from_secs(5), "all 3 nodes are registered", || {
        client.nodes().expect("nodes").len() == 3
    });

    let window = Duration::from_secs(10);
    let start = Instant::now();
    let mut samples = 0u32;
    let mut last_tick_ms = 0;
    let mut next_cli = start;
    while start.elapsed() < window {
        let s = probe.snapshot();
        assert_eq!(
            s.leader.as_deref(),
            Some(leader.as_str()),
            "lease changed hands without a kill: {s:?}"
        );
        assert_eq!(s.epoch, Some(epoch), "epoch moved without a kill: {s:?}");
        assert_eq!(s.term(), Some((leader.clone(), epoch)), "{s:?}");
        let (tick_node, tick_epoch) = s.tick().expect("tick recorded");
        assert_eq!((tick_node.as_str(), tick_epoch), (leader.as_str(), epoch));
        let tick_ms = s.tick_ms().expect("tick_ms");
        assert!(tick_ms >= last_tick_ms, "tick time went backwards");
        last_tick_ms = tick_ms;
        // The leader keeps writing (tick every 200 ms): its last write is
        // never older than the lease TTL.
        assert!(
            s.now_ms.saturating_sub(tick_ms) < LEASE_TTL.as_millis() as u64,
            "leader stopped ticking: last tick {} ms ago",
            s.now_ms - tick_ms
        );

        let listed = client.nodes().expect("nodes");
        let flagged: Vec<&str> = listed
            .iter()
            .filter(|n| n.leader)
            .map(|n| n.info.id.as_str())
            .collect();
        assert_eq!(flagged, [leader.as_str()], "workers view: {listed:?}");
        assert_eq!(listed.len(), 3, "a node dropped out: {listed:?}");

        for node in nodes.iter_mut() {
            assert!(node.is_running(), "node {} exited", node.id());
        }

        if Instant::now() >= next_cli {
            next_cli += Duration::from_secs(2);
            let out = cli(&redis.url(), &ns, &["leader", "--json"]);
            assert_eq!(out.status.code(), Some(0), "{out:?}");
            let v = json_of(&out);
            assert_eq!(v["node"], leader.as_str(), "{v}");
            assert_eq!(v["epoch"], epoch, "{v}");
            assert!(v["last_tick_age_ms"].is_u64(), "no tick of this term: {v}");
            assert!(v["ttl_ms"].as_i64().unwrap_or(0) > 0, "{v}");
        }
        samples += 1;
        std::thread::sleep(POLL);
    }
    assert!(samples >= 100, "only {samples} samples in {window:?}");

    // The nodes' own view: exactly one claim of leadership in total, at the
    // epoch Redis shows, and nobody stepped down or released.
    let owners = assert_claims_disjoint(&refs(&nodes));
    assert_eq!(
        owners.into_iter().collect::<Vec<_>>(),
        [(epoch, leader.clone())],
        "more than one election happened"
    );
    for node in &nodes {
        let events = leader_events(&node.log());
        assert!(
            events
                .iter()
                .all(|e| matches!(e, LeaderEvent::Became { .. })),
            "node {} lost or released leadership: {events:?}",
            node.id()
        );
    }
    assert_eq!(probe.fence_rejected(), 0, "a fenced write was refused");
}

/// Test 2: `kill -9` of the leader. A standby takes over within the lease
/// TTL plus one renew interval plus a scheduling allowance, with a higher
/// epoch, measured from the moment the kill is sent.
#[test]
fn kill9_of_the_leader_hands_over_within_the_lease_ttl() {
    let redis = RedisServer::start();
    let ns = unique_ns("kill9");
    let mut nodes = three_nodes(&redis, &ns, &[]);
    let mut probe = Probe::new(&redis.url(), &ns);
    let (old, old_epoch) = wait_for_leader(&mut probe, Duration::from_secs(10));

    let killed = Instant::now();
    by_id(&mut nodes, &old).kill9();
    // Poll tighter than POLL: this is the measurement.
    let (new, new_epoch) = loop {
        let s = probe.snapshot();
        if let (Some(l), Some(e)) = (s.leader, s.epoch)
            && l != old
        {
            break (l, e);
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "no new leader 10 s after kill -9"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    let takeover = killed.elapsed();
    eprintln!("kill -9 takeover: {takeover:?} ({old}@{old_epoch} -> {new}@{new_epoch})");

    // The old lease was renewed at most one renew interval before the kill,
    // so it expires at most LEASE_TTL after it (RENEW_INTERVAL more if the
    // last renew itself ran late). The standby sleeps in BLPOP until the
    // PTTL it read runs out, plus 5 ms. Allowance 300 ms: Redis 7 checks
    // blocked clients' timeouts from its 10 Hz cron (up to 100 ms late),
    // plus process scheduling on a loaded 2-core machine running tests in
    // parallel, and our 2 ms polling.
    let bound = LEASE_TTL + RENEW_INTERVAL + Duration::from_millis(300);
    assert!(
        takeover <= bound,
        "takeover took {takeover:?}, more than {bound:?}"
    );
    assert!(new_epoch > old_epoch, "epoch {new_epoch} <= {old_epoch}");
    assert_ne!(new, old);

    let status = by_id(&mut nodes, &old)
        .wait_exit(Duration::from_secs(5))
        .expect("killed node exited");
    assert!(!status.success());
    // The new leader does fenced work in its own term.
    wait_until(
        Duration::from_secs(3),
        "the new leader ticks in its term",
        || probe.snapshot().tick() == Some((new.clone(), new_epoch)),
    );
    let owners = assert_claims_disjoint(&refs(&nodes));
    assert_eq!(owners.get(&new_epoch), Some(&new));
}

/// Test 3: SIGTERM of the leader. It releases the lease, so a standby leads
/// in well under a second; the old process exits 0 and deregisters.
///
/// The lease TTL (5 s) and heartbeat timeout (10 s) are long on purpose:
/// a handover under 1 s then can only come from the release, and the
/// registry entry being gone right after exit can only come from the
/// deregistration, not from expiry.
#[test]
fn sigterm_of_the_leader_releases_the_lease_and_deregisters() {
    let redis = RedisServer::start();
    let ns = unique_ns("sigterm");
    let slow = [
        "--lease-ttl",
        "5s",
        "--renew-interval",
        "1s",
        "--heartbeat-timeout",
        "10s",
    ];
    let mut nodes = three_nodes(&redis, &ns, &slow);
    let mut probe = Probe::new(&redis.url(), &ns);
    let (old, old_epoch) = wait_for_leader(&mut probe, Duration::from_secs(15));
    wait_until(Duration::from_secs(5), "all 3 nodes indexed", || {
        probe.indexed_nodes().len() == 3
    });

    let sent = Instant::now();
    by_id(&mut nodes, &old).sigterm();
    let (new, new_epoch) = loop {
        let s = probe.snapshot();
        if let (Some(l), Some(e)) = (s.leader, s.epoch)
            && l != old
        {
            break (l, e);
        }
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "no new leader 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    let takeover = sent.elapsed();
    eprintln!("SIGTERM takeover: {takeover:?} ({old}@{old_epoch} -> {new}@{new_epoch})");
    assert!(
        takeover < Duration::from_secs(1),
        "graceful handover took {takeover:?}"
    );
    assert!(new_epoch > old_epoch);

    let node = by_id(&mut nodes, &old);
    let status = node
        .wait_exit(Duration::from_secs(5))
        .expect("the old leader exits after SIGTERM");
    let exited = sent.elapsed();
    assert_eq!(status.code(), Some(0), "log:\n{}", node.log());
    let log = node.log();
    assert!(
        leader_events(&log).contains(&LeaderEvent::Released { epoch: old_epoch }),
        "no release logged:\n{log}"
    );
    assert!(
        log.contains(&format!("heartbeat: deregistered node {old}")),
        "no deregistration logged:\n{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
    // Checked right after exit, long before the 10 s entry TTL could run out.
    assert!(exited < Duration::from_secs(5));
    assert!(!probe.node_entry_exists(&old), "node:{old} still exists");
    let indexed = probe.indexed_nodes();
    assert!(!indexed.contains(&old), "{old} still indexed: {indexed:?}");
    assert_eq!(indexed.len(), 2, "{indexed:?}");
    wait_until(Duration::from_secs(3), "the new leader ticks", || {
        probe.snapshot().tick() == Some((new.clone(), new_epoch))
    });

    // SIGINT stops a standby the same way: exit 0, deregistered at once,
    // and the leader is not disturbed.
    let standby = nodes
        .iter()
        .map(|n| n.id().to_string())
        .find(|id| *id != old && *id != new)
        .expect("a third node");
    let node = by_id(&mut nodes, &standby);
    node.sigint();
    let status = node
        .wait_exit(Duration::from_secs(5))
        .expect("the standby exits after SIGINT");
    assert_eq!(status.code(), Some(0), "log:\n{}", node.log());
    assert!(!probe.node_entry_exists(&standby));
    assert_eq!(probe.indexed_nodes(), [new.as_str()]);
    let s = probe.snapshot();
    assert_eq!((s.leader, s.epoch), (Some(new.clone()), Some(new_epoch)));
    assert_claims_disjoint(&refs(&nodes));
}

/// Test 4: a leader frozen (SIGSTOP) past its TTL is replaced; once resumed
/// (SIGCONT) it never writes as leader again: the fenced tick never shows
/// its node or epoch, the tick's epoch never goes down, and it logs that it
/// stepped down without claiming leadership again.
#[test]
fn a_frozen_leader_is_fenced_after_it_resumes() {
    let redis = RedisServer::start();
    let ns = unique_ns("fenced");
    let mut nodes = three_nodes(&redis, &ns, &[]);
    let mut probe = Probe::new(&redis.url(), &ns);
    let (old, old_epoch) = wait_for_leader(&mut probe, Duration::from_secs(10));

    by_id(&mut nodes, &old).sigstop();
    let (new, new_epoch) = wait_for(
        Duration::from_secs(5),
        "another node leads while the old leader is frozen",
        || {
            let s = probe.snapshot();
            match (s.leader, s.epoch) {
                (Some(l), Some(e)) if l != old => Some((l, e)),
                _ => None,
            }
        },
    );
    assert!(new_epoch > old_epoch);
    wait_until(Duration::from_secs(3), "the new leader ticks", || {
        probe.snapshot().tick() == Some((new.clone(), new_epoch))
    });
    let claims_before = claimed_epochs(&by_id(&mut nodes, &old).log());
    assert_eq!(claims_before, [old_epoch]);

    by_id(&mut nodes, &old).sigcont();
    let resumed = Instant::now();
    let mut max_tick_epoch = new_epoch;
    let mut stepped_down = None;
    while resumed.elapsed() < Duration::from_secs(3) {
        let s = probe.snapshot();
        let (tick_node, tick_epoch) = s.tick().expect("tick recorded");
        assert_ne!(tick_node, old, "the resumed old leader wrote a tick: {s:?}");
        assert_ne!(tick_epoch, old_epoch, "a tick with the old epoch: {s:?}");
        assert!(
            tick_epoch >= max_tick_epoch,
            "tick epoch went down from {max_tick_epoch} to {tick_epoch}"
        );
        max_tick_epoch = tick_epoch;
        assert_ne!(s.leader.as_deref(), Some(old.as_str()), "{s:?}");
        if stepped_down.is_none()
            && leader_events(&by_id(&mut nodes, &old).log()).contains(&LeaderEvent::SteppedDown {
                node: old.clone(),
                epoch: old_epoch,
            })
        {
            stepped_down = Some(resumed.elapsed());
        }
        std::thread::sleep(POLL);
    }
    let node = by_id(&mut nodes, &old);
    assert!(node.is_running(), "the resumed node died:\n{}", node.log());
    let stepped_down =
        stepped_down.unwrap_or_else(|| panic!("no step-down logged:\n{}", node.log()));
    eprintln!("resumed leader stepped down {stepped_down:?} after SIGCONT");
    assert_eq!(
        claimed_epochs(&node.log()),
        [old_epoch],
        "the resumed node claimed leadership again"
    );
    let s = probe.snapshot();
    assert_eq!(s.leader.as_deref(), Some(new.as_str()));
    assert_eq!(s.epoch, Some(new_epoch), "leadership moved again: {s:?}");
    assert_claims_disjoint(&refs(&nodes));
}

/// Runs the fenced RECOVER_TICK script as `fence`.
fn recover_tick(store: &Store, fence: &Fence) -> distsched::Result<Vec<String>> {
    let timeout = Duration::from_millis(1500);
    let retention = Duration::from_secs(3600);
    distsched::internal::tick(
        store,
        &mut store.conn("test"),
        fence,
        timeout,
        (retention, 100_000),
    )
    .map(|r| r.dead)
}

/// Test 4 (library): a fenced write with a stale epoch, or from a node that
/// does not hold the lease, returns `Error::Fenced`, writes nothing, and
/// counts the refusal in `fence:rejected`; the current leader's write goes
/// through (so the refusals are not vacuous).
#[test]
fn fenced_script_refuses_a_stale_epoch_and_writes_nothing() {
    let redis = RedisServer::start();
    let ns = unique_ns("fence-lib");
    let store = Store::new(&redis.url(), &ns, Duration::from_secs(2)).expect("store");
    let keys = Keys::new(&ns);
    let mut probe = Probe::new(&redis.url(), &ns);
    let acquire = |node: &str| -> (i64, i64, i64) {
        store
            .conn("test")
            .run(|c| {
                scripts::ACQUIRE
                    .key(keys.leader())
                    .key(keys.epoch())
                    .key(keys.leader_status())
                    .key(keys.epoch_origin())
                    .arg(node)
                    .arg(60_000u64)
                    .arg(0u64)
                    .invoke(c)
            })
            .expect("acquire")
    };

    // "old" is elected at epoch 1, its lease expires, "new" is elected at 2.
    assert_eq!(acquire("old").0, 1);
    probe.run(|c| redis::cmd("DEL").arg(keys.leader()).query::<()>(c));
    let (won, new_epoch, _) = acquire("new");
    assert_eq!((won, new_epoch), (1, 2));
    // A dead node in the index: an accepted tick would remove it.
    probe.run(|c| {
        redis::cmd("ZADD")
            .arg(keys.nodes())
            .arg(1)
            .arg("dead")
            .query::<()>(c)
    });
    let status_before = probe.snapshot().status;

    let stale = [
        Fence {
            node: "old".into(),
            epoch: 1,
        },
        // Right node, stale epoch.
        Fence {
            node: "new".into(),
            epoch: 1,
        },
        // Right epoch, not the lease holder.
        Fence {
            node: "old".into(),
            epoch: 2,
        },
        // An epoch from the future.
        Fence {
            node: "new".into(),
            epoch: 3,
        },
    ];
    for (i, fence) in stale.iter().enumerate() {
        match recover_tick(&store, fence) {
            Err(Error::Fenced) => {}
            other => panic!("{fence:?}: expected Error::Fenced, got {other:?}"),
        }
        assert_eq!(probe.fence_rejected(), i as u64 + 1, "{fence:?}");
        assert_eq!(probe.snapshot().status, status_before, "{fence:?} wrote");
        assert_eq!(probe.indexed_nodes(), ["dead"], "{fence:?} wrote");
    }

    let dead = recover_tick(
        &store,
        &Fence {
            node: "new".into(),
            epoch: 2,
        },
    )
    .expect("the current leader's tick");
    assert_eq!(dead, ["dead"]);
    let s = probe.snapshot();
    assert_eq!(s.tick(), Some(("new".to_string(), 2)));
    assert!(probe.indexed_nodes().is_empty());
    assert_eq!(probe.fence_rejected(), stale.len() as u64);
}

/// A frozen node whose id was taken over while it was frozen (its registry
/// entry expired, a new process started with the same id) must not fight
/// the new process for the lease once it resumes: "two processes never
/// share one id" (heartbeat.lua), and the lease must not change hands
/// without a failure.
///
/// (Found by this test: `acquire.lua` once re-acquired a lease held under
/// the caller's own id, so the two processes stole it from each other on
/// every attempt.)
#[test]
fn a_resumed_node_does_not_fight_a_new_process_with_its_id() {
    let redis = RedisServer::start();
    let ns = unique_ns("same-id");
    let url = redis.url();
    let mut old = NodeProc::start(&url, &ns, "n1", &[]);
    let mut probe = Probe::new(&url, &ns);
    let (_, first_epoch) = wait_for_leader(&mut probe, Duration::from_secs(10));

    old.sigstop();
    wait_until(
        HEARTBEAT_TIMEOUT + Duration::from_secs(3),
        "the frozen node's registry entry expired",
        || !probe.node_entry_exists("n1"),
    );
    let mut new = NodeProc::start(&url, &ns, "n1", &[]);
    let epoch = wait_for(Duration::from_secs(5), "the new n1 process leads", || {
        let s = probe.snapshot();
        let epoch = s.epoch?;
        let leads = s.leader.as_deref() == Some("n1") && s.tick() == Some(("n1".into(), epoch));
        (leads && claimed_epochs(&new.log()) == [epoch]).then_some(epoch)
    });
    assert!(epoch > first_epoch);

    old.sigcont();
    let resumed = Instant::now();
    while resumed.elapsed() < Duration::from_secs(3) {
        let s = probe.snapshot();
        assert_eq!(
            s.epoch,
            Some(epoch),
            "the lease changed hands after the old process resumed: {s:?}\nold process log:\n{}",
            old.log()
        );
        std::thread::sleep(POLL);
    }
    assert_eq!(
        claimed_epochs(&old.log()),
        [first_epoch],
        "the resumed process claimed leadership again"
    );
    assert_eq!(claimed_epochs(&new.log()), [epoch]);
    // Two processes must never share an id (they would share a queue): the
    // replaced one notices at its next heartbeat and stops, non-zero.
    let status = old
        .wait_exit(Duration::from_secs(5))
        .expect("the replaced process exits");
    assert!(!status.success(), "exit status {status:?}");
    assert!(
        old.log().contains("registered by another live node"),
        "old process log:\n{}",
        old.log()
    );
    assert!(
        new.wait_exit(Duration::ZERO).is_none(),
        "the new process keeps running"
    );
}
