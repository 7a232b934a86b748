//! Supervision of a node's component threads: what happens when one panics
//! or gives up, and the [`Health`] table that `/health`, `/metrics` and the
//! leader's lease read.
//!
//! A supervised component ([`Component::supervised`](crate::component::Component::supervised))
//! runs its loop body under `catch_unwind` in its own thread. When the body
//! panics, or returns while no stop was requested, the same thread notices
//! it at once and applies the component's [`Policy`]:
//!
//! - [`Policy::Restart`]: the component is marked `restarting` (with the
//!   error) and runs its body again after a backoff (`first_backoff` ×
//!   2^(n-1), at most `max_backoff`; the count starts over after a run that
//!   lasted [`STABLE`]). A stop during the backoff ends it at once.
//! - [`Policy::Exit`]: the component is marked `failed` and the node's
//!   failure channel gets [`Error::ComponentFailed`]: the binary then shuts
//!   the node down and exits 1; an embedding program sees it on
//!   [`NodeHandle::failure`](crate::NodeHandle::failure).
//!
//! A body that returns `Err` gives up on purpose (a node id taken over, say):
//! whatever its policy, the node stops with that error.
//!
//! Everything here runs on the supervised threads themselves; there is no
//! supervisor thread. The leader thread reads [`Health`] before each renew
//! of its lease and steps down while the scheduler or the recoverer is not
//! running ([`LEADER_PARTS`]); it also waits on [`Health::changed`] so that
//! it steps down as soon as one of them dies, not at its next renew.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use serde::Serialize;

use crate::error::Error;

/// The components a leader needs running to keep its lease.
pub const LEADER_PARTS: &[&str] = &["scheduler", "recoverer"];

/// A run at least this long resets a component's backoff.
pub const STABLE: Duration = Duration::from_secs(60);

/// First restart delay of a [`Policy::Restart`] component.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Longest restart delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What to do when a component panics or ends on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Run it again after a backoff.
    Restart,
    /// Stop the node (exit 1 for the binary).
    Exit,
}

/// Where a component is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Its loop runs.
    Running,
    /// It panicked or ended; it runs again after its backoff.
    Restarting,
    /// It panicked, ended or gave up and its policy stops the node.
    Failed,
    /// It was stopped (node shutdown).
    Stopped,
}

/// One component's entry in the node's health table, as `/health` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentHealth {
    /// The component's thread name (`scheduler`, `fetcher`, …).
    pub name: String,
    /// Where it is.
    pub state: State,
    /// What its supervisor does when it dies.
    pub policy: Policy,
    /// Times it was restarted since the node started.
    pub restarts: u32,
    /// Why it last died (`panicked: …`, `ended unexpectedly`), if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl ComponentHealth {
    /// True while the component is restarting or failed: `/health` answers
    /// 503 then.
    pub fn is_down(&self) -> bool {
        matches!(self.state, State::Restarting | State::Failed)
    }
}

/// The node's table of supervised components, shared by every thread.
#[derive(Clone)]
pub struct Health {
    parts: Arc<Mutex<BTreeMap<&'static str, ComponentHealth>>>,
    changed_tx: Sender<()>,
    changed_rx: Receiver<()>,
}

impl Default for Health {
    fn default() -> Health {
        let (changed_tx, changed_rx) = crossbeam_channel::bounded(1);
        Health {
            parts: Arc::default(),
            changed_tx,
            changed_rx,
        }
    }
}

impl Health {
    fn parts(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, ComponentHealth>> {
        self.parts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Enters component `name` as running (done before its thread starts,
    /// so the table never misses it).
    pub fn register(&self, name: &'static str, policy: Policy) {
        self.update(name, policy, |p| p.state = State::Running);
    }

    fn update(&self, name: &'static str, policy: Policy, f: impl FnOnce(&mut ComponentHealth)) {
        {
            let mut parts = self.parts();
            let entry = parts.entry(name).or_insert_with(|| ComponentHealth {
                name: name.to_string(),
                state: State::Running,
                policy,
                restarts: 0,
                last_error: None,
            });
            f(entry);
        }
        let _ = self.changed_tx.try_send(());
    }

    /// Every component, by name.
    pub fn snapshot(&self) -> Vec<ComponentHealth> {
        self.parts().values().cloned().collect()
    }

    /// The components that are restarting or failed.
    pub fn down(&self) -> Vec<ComponentHealth> {
        self.parts()
            .values()
            .filter(|p| p.is_down())
            .cloned()
            .collect()
    }

    /// The first of `names` that is restarting or failed, if any (a
    /// component stopped by the node's shutdown is not down).
    pub fn first_down(&self, names: &[&str]) -> Option<String> {
        let parts = self.parts();
        names
            .iter()
            .find(|n| parts.get(**n).is_some_and(ComponentHealth::is_down))
            .map(|n| n.to_string())
    }

    /// Gets a message whenever a component changes state (one receiver
    /// reads it: the leader thread).
    pub fn changed(&self) -> &Receiver<()> {
        &self.changed_rx
    }
}

/// What a supervised component needs: the health table, the node's
/// failure channel and the restart backoff.
#[derive(Clone)]
pub struct Supervision {
    /// The table it reports to.
    pub health: Health,
    fatal: Sender<Error>,
    first_backoff: Duration,
    max_backoff: Duration,
}

impl Supervision {
    /// Supervision reporting to `health`, stopping the node through `fatal`.
    pub fn new(health: Health, fatal: Sender<Error>) -> Supervision {
        Supervision {
            health,
            fatal,
            first_backoff: FIRST_BACKOFF,
            max_backoff: MAX_BACKOFF,
        }
    }

    /// The same with other restart delays (tests).
    pub fn with_backoff(mut self, first: Duration, max: Duration) -> Supervision {
        self.first_backoff = first;
        self.max_backoff = max;
        self
    }

    /// The delay before restart number `n` (from 1).
    pub fn backoff(&self, n: u32) -> Duration {
        let factor = 1u32 << n.saturating_sub(1).min(16);
        self.first_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }

    /// Asks the node to stop with `error` (the first such error wins).
    pub fn stop_node(&self, error: Error) {
        let _ = self.fatal.try_send(error);
    }

    /// Runs `body` as component `name` until `stop` fires, applying
    /// `policy` whenever it dies (see the module docs). Runs on the
    /// component's own thread.
    pub fn run(
        &self,
        name: &'static str,
        policy: Policy,
        stop: &crate::component::StopSignal,
        mut body: impl FnMut(&crate::component::StopSignal) -> crate::error::Result<()>,
    ) {
        let health = &self.health;
        health.update(name, policy, |p| p.state = State::Running);
        let mut failures = 0u32;
        loop {
            let began = Instant::now();
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                crate::failpoints::failpoint!(&format!("component-{name}"));
                body(stop)
            }));
            if stop.is_stopped() {
                health.update(name, policy, |p| p.state = State::Stopped);
                return;
            }
            let why = match run {
                Ok(Ok(())) => "ended unexpectedly".to_string(),
                Ok(Err(e)) => {
                    let why = e.to_string();
                    log::error!("supervisor: {name} gave up: {why}; the node stops");
                    health.update(name, policy, |p| {
                        p.state = State::Failed;
                        p.last_error = Some(why);
                    });
                    self.stop_node(e);
                    return;
                }
                Err(payload) => format!("panicked: {}", panic_message(payload.as_ref())),
            };
            if began.elapsed() >= STABLE {
                failures = 0;
            }
            failures += 1;
            match policy {
                Policy::Restart => {
                    let delay = self.backoff(failures);
                    log::error!(
                        "supervisor: {name} {why}; restarting it in {delay:?} (failure {failures} in a row)"
                    );
                    health.update(name, policy, |p| {
                        p.state = State::Restarting;
                        p.restarts += 1;
                        p.last_error = Some(why);
                    });
                    if stop.wait(delay) {
                        health.update(name, policy, |p| p.state = State::Stopped);
                        return;
                    }
                    log::info!("supervisor: {name} restarted");
                    health.update(name, policy, |p| p.state = State::Running);
                }
                Policy::Exit => {
                    log::error!("supervisor: {name} {why}; the node stops");
                    health.update(name, policy, |p| {
                        p.state = State::Failed;
                        p.last_error = Some(why.clone());
                    });
                    self.stop_node(Error::ComponentFailed {
                        component: name.to_string(),
                        reason: why,
                    });
                    return;
                }
            }
        }
    }
}

/// The text of a panic's payload (`panic!("...")` gives a `&str` or a
/// `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a non-text panic payload)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component::Component;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn supervision() -> (Supervision, Receiver<Error>) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let s = Supervision::new(Health::default(), tx)
            .with_backoff(Duration::from_millis(5), Duration::from_millis(40));
        (s, rx)
    }

    fn wait(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn part(s: &Supervision, name: &str) -> ComponentHealth {
        s.health
            .snapshot()
            .into_iter()
            .find(|p| p.name == name)
            .expect("registered")
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let (s, _) = supervision();
        let delays: Vec<u64> = (1..=6).map(|n| s.backoff(n).as_millis() as u64).collect();
        assert_eq!(delays, [5, 10, 20, 40, 40, 40]);
        let (tx, _) = crossbeam_channel::bounded(1);
        let real = Supervision::new(Health::default(), tx);
        assert_eq!(real.backoff(1), FIRST_BACKOFF);
        assert_eq!(real.backoff(40), MAX_BACKOFF);
    }

    #[test]
    fn a_panicking_component_is_restarted_until_it_runs() {
        let (s, fatal) = supervision();
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        let c = Component::supervised("flaky", Policy::Restart, &s, move |stop| {
            if r.fetch_add(1, Ordering::SeqCst) < 3 {
                panic!("boom {}", r.load(Ordering::SeqCst));
            }
            stop.wait(Duration::from_secs(60));
            Ok(())
        })
        .expect("spawn");
        wait("the fourth run", || runs.load(Ordering::SeqCst) == 4);
        wait("it runs", || part(&s, "flaky").state == State::Running);
        let p = part(&s, "flaky");
        assert_eq!(p.restarts, 3);
        assert!(
            p.last_error
                .as_deref()
                .unwrap()
                .starts_with("panicked: boom")
        );
        assert!(s.health.down().is_empty());
        c.stop();
        assert_eq!(part(&s, "flaky").state, State::Stopped);
        assert!(
            fatal.try_recv().is_err(),
            "a restart does not stop the node"
        );
    }

    #[test]
    fn a_component_down_is_listed_while_it_waits_for_its_restart() {
        let (tx, _fatal) = crossbeam_channel::bounded(1);
        let s = Supervision::new(Health::default(), tx)
            .with_backoff(Duration::from_secs(30), Duration::from_secs(30));
        let c = Component::supervised("scheduler", Policy::Restart, &s, |_| {
            panic!("always");
        })
        .expect("spawn");
        wait("it is restarting", || !s.health.down().is_empty());
        assert_eq!(
            s.health.first_down(LEADER_PARTS).as_deref(),
            Some("scheduler")
        );
        assert!(
            s.health.changed().try_recv().is_ok(),
            "the change is signalled"
        );
        // A stop during the backoff ends it at once.
        let began = Instant::now();
        c.stop();
        assert!(began.elapsed() < Duration::from_secs(5));
        assert_eq!(part(&s, "scheduler").state, State::Stopped);
    }

    #[test]
    fn an_exit_component_stops_the_node() {
        let (s, fatal) = supervision();
        let c = Component::supervised("fetcher", Policy::Exit, &s, |_| panic!("lost it"))
            .expect("spawn");
        let e = fatal
            .recv_timeout(Duration::from_secs(5))
            .expect("the node is told to stop");
        assert!(
            matches!(&e, Error::ComponentFailed { component, reason }
                if component == "fetcher" && reason.contains("lost it")),
            "{e:?}"
        );
        assert_eq!(part(&s, "fetcher").state, State::Failed);
        assert!(part(&s, "fetcher").is_down());
        c.stop();
    }

    #[test]
    fn a_body_that_ends_or_gives_up() {
        let (s, fatal) = supervision();
        // Ending without a stop is a death too: restarted.
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        let c = Component::supervised("quitter", Policy::Restart, &s, move |stop| {
            if r.fetch_add(1, Ordering::SeqCst) == 0 {
                return Ok(());
            }
            stop.wait(Duration::from_secs(60));
            Ok(())
        })
        .expect("spawn");
        wait("the restart", || runs.load(Ordering::SeqCst) == 2);
        assert_eq!(
            part(&s, "quitter").last_error.as_deref(),
            Some("ended unexpectedly")
        );
        c.stop();
        // Giving up with an error stops the node whatever the policy.
        let c = Component::supervised("heartbeat", Policy::Restart, &s, |_| {
            Err(Error::NotFound("my registry entry".into()))
        })
        .expect("spawn");
        let e = fatal.recv_timeout(Duration::from_secs(5)).expect("stop");
        assert!(matches!(e, Error::NotFound(_)), "{e:?}");
        assert_eq!(part(&s, "heartbeat").state, State::Failed);
        c.stop();
    }

    #[test]
    fn a_clean_stop_is_not_a_death() {
        let (s, fatal) = supervision();
        let c = Component::supervised("calm", Policy::Exit, &s, |stop| {
            stop.wait(Duration::from_secs(60));
            Ok(())
        })
        .expect("spawn");
        c.stop();
        assert_eq!(part(&s, "calm").state, State::Stopped);
        assert_eq!(part(&s, "calm").restarts, 0);
        assert!(fatal.try_recv().is_err());
    }
}
