//! Background threads with a stop signal: how every component of a node is
//! started, told to stop, and joined.
//!
//! A component's loop waits on its [`StopSignal`] (`recv_timeout` on a
//! channel) instead of sleeping, so stopping it is prompt. A loop that blocks
//! inside Redis (BLPOP) cannot see the channel; its component is given a
//! waker that pushes to the loop's control list so the BLPOP returns at once.
//!
//! A node's components are started with [`Component::supervised`]: a panic
//! or an unexpected end is handled by the component's restart-or-exit
//! policy (`supervisor.rs`) in its own thread, as soon as it happens.
//!
//! Every thread the crate starts goes through [`spawn_thread`], which blocks
//! process-directed signals (SIGCHLD, SIGTERM, SIGINT, …) in that thread.
//! Linux never restarts `recv` on a socket with a read timeout
//! (`SO_RCVTIMEO`): a signal that wakes the thread fails the call with
//! EINTR, which loses a Redis reply (for BLMPOP: a popped task). Shell tasks
//! make SIGCHLD frequent, and the kernel may pick any thread that does not
//! block it, so only threads that never talk to Redis may receive them:
//! the program's main thread, signal-hook's, and the worker's pool threads.
//! The pool threads are the exception to `spawn_thread` because a child
//! process inherits the signal mask of the thread that spawned it (std does
//! not reset it): shell commands must start with nothing blocked.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::supervisor::{Policy, Supervision};

/// The receiving side of a stop request, cloned into a component's thread.
#[derive(Clone)]
pub struct StopSignal(Receiver<()>);

impl StopSignal {
    /// Waits up to `timeout`; returns true as soon as a stop was requested.
    pub fn wait(&self, timeout: Duration) -> bool {
        !matches!(self.0.recv_timeout(timeout), Err(RecvTimeoutError::Timeout))
    }

    /// Waits until `deadline`; returns true as soon as a stop was requested.
    pub fn wait_until(&self, deadline: Instant) -> bool {
        self.wait(deadline.saturating_duration_since(Instant::now()))
    }

    /// True once a stop was requested (never blocks).
    pub fn is_stopped(&self) -> bool {
        self.wait(Duration::ZERO)
    }

    /// The underlying channel, for `crossbeam_channel::select!` with other
    /// channels. It becomes disconnected when a stop is requested.
    pub fn receiver(&self) -> &Receiver<()> {
        &self.0
    }

    /// A signal that never fires, for one-off calls outside a component.
    pub fn never() -> (Sender<()>, StopSignal) {
        let (tx, rx) = crossbeam_channel::bounded(0);
        (tx, StopSignal(rx))
    }
}

type Waker = Box<dyn FnOnce() + Send>;

/// A running component thread.
pub struct Component {
    name: &'static str,
    stop: Sender<()>,
    waker: Option<Waker>,
    join: JoinHandle<()>,
}

impl Component {
    /// Spawns thread `name` running `body` with a fresh stop signal.
    pub fn spawn(
        name: &'static str,
        body: impl FnOnce(StopSignal) + Send + 'static,
    ) -> std::io::Result<Component> {
        let (stop, rx) = crossbeam_channel::bounded(0);
        let join = spawn_thread(name.into(), move || body(StopSignal(rx)))?;
        Ok(Component {
            name,
            stop,
            waker: None,
            join,
        })
    }

    /// Spawns thread `name` running `body` under supervision (see
    /// [`crate::supervisor`]): a panic, or a return while no stop was
    /// requested, is noticed at once and handled by `policy` (restart with
    /// backoff, or stop the node); an `Err` from `body` stops the node.
    /// `body` is called again for each restart, so it rebuilds whatever
    /// state a panic may have left half-done.
    pub fn supervised(
        name: &'static str,
        policy: Policy,
        supervision: &Supervision,
        body: impl FnMut(&StopSignal) -> crate::error::Result<()> + Send + 'static,
    ) -> std::io::Result<Component> {
        supervision.health.register(name, policy);
        let supervision = supervision.clone();
        Component::spawn(name, move |stop| supervision.run(name, policy, &stop, body))
    }

    /// Sets the call that interrupts the component's blocking Redis wait.
    pub fn with_waker(mut self, waker: impl FnOnce() + Send + 'static) -> Component {
        self.waker = Some(Box::new(waker));
        self
    }

    /// Requests a stop without waiting for it (see [`Component::join`]).
    pub fn request_stop(&mut self) {
        let (dead, _) = crossbeam_channel::bounded(0);
        drop(std::mem::replace(&mut self.stop, dead));
        if let Some(wake) = self.waker.take() {
            wake();
        }
    }

    /// Waits for the thread to end. A panic in it is logged, not re-raised.
    pub fn join(self) {
        if self.join.join().is_err() {
            log::error!("{} thread panicked", self.name);
        }
    }

    /// Requests a stop and waits for the thread to end.
    pub fn stop(mut self) {
        self.request_stop();
        self.join();
    }
}

/// Spawns thread `name` running `body` with process-directed signals blocked
/// (see the module docs for why). Every thread of the crate but the pool
/// threads starts here; never spawn a child process from one.
pub fn spawn_thread<T: Send + 'static>(
    name: String,
    body: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<JoinHandle<T>> {
    std::thread::Builder::new().name(name).spawn(move || {
        block_async_signals();
        body()
    })
}

/// Blocks, in the calling thread, the signals that are sent to the process
/// rather than raised by the thread itself.
fn block_async_signals() {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
    let mut set = SigSet::empty();
    for signal in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
        Signal::SIGPIPE,
        Signal::SIGALRM,
    ] {
        set.add(signal);
    }
    // Cannot fail with a valid `how`; a failure would only leave the default.
    if let Err(e) = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None) {
        log::warn!("cannot block signals in this thread: {e}");
    }
}
