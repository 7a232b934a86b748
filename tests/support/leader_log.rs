//! Reading leader changes out of node logs and checking that epochs were
//! claimed by one node each.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;

/// A leadership event parsed from a node log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaderEvent {
    /// `leader: became leader (node X epoch N)`
    Became { node: String, epoch: u64 },
    /// `leader: stepped down (node X epoch N): why`
    SteppedDown { node: String, epoch: u64 },
    /// `leader: released the lease (epoch N)`
    Released { epoch: u64 },
}

/// The leadership events of a node log, in order.
pub fn leader_events(log: &str) -> Vec<LeaderEvent> {
    fn node_epoch(rest: &str) -> Option<(String, u64)> {
        let inner = rest.strip_prefix("(node ")?;
        let (node, rest) = inner.split_once(" epoch ")?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        Some((node.to_string(), digits.parse().ok()?))
    }
    let mut events = Vec::new();
    for line in log.lines() {
        if let Some((_, rest)) = line.split_once("leader: became leader ") {
            if let Some((node, epoch)) = node_epoch(rest) {
                events.push(LeaderEvent::Became { node, epoch });
            }
        } else if let Some((_, rest)) = line.split_once("leader: stepped down ") {
            if let Some((node, epoch)) = node_epoch(rest) {
                events.push(LeaderEvent::SteppedDown { node, epoch });
            }
        } else if let Some((_, rest)) = line.split_once("leader: released the lease (epoch ") {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(epoch) = digits.parse() {
                events.push(LeaderEvent::Released { epoch });
            }
        }
    }
    events
}

/// Epochs at which a log's node claimed leadership.
pub fn claimed_epochs(log: &str) -> Vec<u64> {
    leader_events(log)
        .into_iter()
        .filter_map(|e| match e {
            LeaderEvent::Became { epoch, .. } => Some(epoch),
            _ => None,
        })
        .collect()
}

/// Asserts that no epoch is claimed by two nodes, and that each node's
/// claims are strictly increasing; returns epoch → node.
pub fn assert_claims_disjoint(nodes: &[&NodeProc]) -> BTreeMap<u64, String> {
    let mut owners: BTreeMap<u64, String> = BTreeMap::new();
    for node in nodes {
        let epochs = claimed_epochs(&node.log());
        assert!(
            epochs.windows(2).all(|w| w[0] < w[1]),
            "node {} claimed non-increasing epochs {epochs:?}",
            node.id()
        );
        for epoch in epochs {
            if let Some(other) = owners.insert(epoch, node.id().to_string()) {
                panic!(
                    "epoch {epoch} claimed by both {other} and {} (two leaders)",
                    node.id()
                );
            }
        }
    }
    owners
}

/// Waits until some node leads and has done a fenced write (a recoverer
/// tick) in its term; returns `(leader, epoch)`.
pub fn wait_for_leader(probe: &mut Probe, timeout: Duration) -> (String, u64) {
    wait_for(timeout, "a leader has been elected and ticked", || {
        let s = probe.snapshot();
        let leader = s.leader.clone()?;
        let epoch = s.epoch?;
        (s.tick() == Some((leader.clone(), epoch))).then_some((leader, epoch))
    })
}

// ----- Cron helpers (tests/cron.rs, tests/cron_chaos.rs) -----
