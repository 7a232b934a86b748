//! The probe lane: the `http-probe` thread, which takes the connections
//! that arrive while every `http-N` handler is busy, so `/health` and
//! `/ready` answer even while idle or trickling clients (slowloris) hold
//! all the handlers and the queue.
//!
//! One thread watches up to [`PROBE_PENDING`] connections at once with
//! `poll(2)` (non-blocking sockets), so a silent connection costs it a file
//! descriptor and a few KiB, not its time. As soon as a connection's head
//! is in:
//!
//! - `GET`/`HEAD` `/health` or `/ready` is answered here (`/ready` asks
//!   Redis with the short probe timeout);
//! - anything else is passed on to the handlers' queue with what was read
//!   (the parser's state), to be served like any other request, or gets
//!   503 when that queue is full.
//!
//! A hostile client cannot take the lane over: a connection has
//! [`PROBE_HEAD_DEADLINE`] to send its head (then 408), a full lane evicts
//! its oldest connection with a 503 (so a new probe always gets its turn),
//! no body is read here (a probe with one gets 413), and nothing lingers
//! after a refusal. Memory: at most [`PROBE_PENDING`] heads of
//! [`super::MAX_HEAD`] plus one read each.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use rustix::event::{PollFd, PollFlags, Timespec};

use super::server::{Conn, Parser, Progress, READ_CHUNK, Refusal, Request, refuse};
use super::{Context, Handler, Incoming, MAX_BODY, busy};
use crate::metrics::METRICS;

/// Connections the probe lane watches at once; a new one past this evicts
/// the oldest with 503.
pub const PROBE_PENDING: usize = 64;
/// Time a connection on the probe lane has to send its request head (from
/// its accept): probes send it at once, well within this even on a loaded
/// host.
pub const PROBE_HEAD_DEADLINE: Duration = Duration::from_millis(500);
/// Longest wait in `poll` before the lane looks for new connections and
/// expired ones: the most a connection waits to be watched.
const TICK: Duration = Duration::from_millis(5);

/// A connection whose head is still arriving.
struct Pending {
    stream: TcpStream,
    opened: Instant,
    parser: Parser,
}

/// What to do with a pending connection after reading what it sent.
enum Step {
    /// Nothing complete yet.
    Wait,
    /// A complete probe request: answer it here.
    Probe(Request),
    /// A complete request that is not a probe: to the handlers.
    Complete(Request),
    /// The head of a request that is not a probe: to the handlers, which
    /// read its body.
    Started,
    /// Answer the refusal (nothing when its status is 0).
    Refuse(Refusal),
}

/// The `http-probe` thread: serve `probes` until its channel closes,
/// passing what is not a probe on to `conns`.
pub(super) fn run(ctx: &Context, probes: &Receiver<TcpStream>, conns: &Sender<Incoming>) {
    let mut handler = Handler::new(ctx);
    let mut pending: VecDeque<Pending> = VecDeque::with_capacity(PROBE_PENDING);
    loop {
        if pending.is_empty() {
            match probes.recv() {
                Ok(stream) => admit(&mut pending, stream),
                Err(_) => return,
            }
        }
        loop {
            match probes.try_recv() {
                Ok(stream) => admit(&mut pending, stream),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        let ready = readable(&pending, TICK);
        let now = Instant::now();
        for (mut p, ready) in std::mem::take(&mut pending).into_iter().zip(ready) {
            let step = if ready { read(&mut p) } else { Step::Wait };
            let step = match step {
                Step::Wait if now >= p.opened + PROBE_HEAD_DEADLINE => Step::Refuse(refuse(
                    408,
                    "request head not received in time (the server is busy)",
                )),
                step => step,
            };
            match step {
                Step::Wait => pending.push_back(p),
                Step::Probe(request) => {
                    if let Ok(conn) = Conn::opened_at(p.stream, p.opened) {
                        METRICS.http_in_flight.inc();
                        handler.answer(conn, Ok(request), false);
                    }
                }
                Step::Complete(request) => forward(
                    conns,
                    Incoming::Complete {
                        stream: p.stream,
                        request,
                    },
                ),
                Step::Started => forward(
                    conns,
                    Incoming::Started {
                        stream: p.stream,
                        opened: p.opened,
                        parser: p.parser,
                    },
                ),
                Step::Refuse(refusal) if refusal.status == 0 => {}
                Step::Refuse(refusal) => {
                    if let Ok(conn) = Conn::opened_at(p.stream, p.opened) {
                        METRICS.http_in_flight.inc();
                        handler.answer(conn, Err(refusal), false);
                    }
                }
            }
        }
    }
}

/// Starts watching `stream`; a full lane first evicts its oldest.
fn admit(pending: &mut VecDeque<Pending>, stream: TcpStream) {
    if stream.set_nonblocking(true).is_err() {
        return;
    }
    if pending.len() >= PROBE_PENDING
        && let Some(oldest) = pending.pop_front()
    {
        busy(oldest.stream);
    }
    pending.push_back(Pending {
        stream,
        opened: Instant::now(),
        parser: Parser::new(MAX_BODY),
    });
}

/// Waits up to `wait` for input on any pending connection: which have some
/// (or hung up).
fn readable(pending: &VecDeque<Pending>, wait: Duration) -> Vec<bool> {
    let mut fds: Vec<PollFd> = pending
        .iter()
        .map(|p| PollFd::new(&p.stream, PollFlags::IN))
        .collect();
    let timeout = Timespec::try_from(wait).ok();
    match rustix::event::poll(&mut fds, timeout.as_ref()) {
        Ok(_) => fds.iter().map(|fd| !fd.revents().is_empty()).collect(),
        Err(_) => {
            // Interrupted, or worse: wait the tick out, then try each (the
            // reads do not block).
            std::thread::sleep(wait);
            vec![true; fds.len()]
        }
    }
}

/// Reads what `p` has sent, up to the end of its head.
fn read(p: &mut Pending) -> Step {
    let mut chunk = [0u8; READ_CHUNK];
    loop {
        let n = match p.stream.read(&mut chunk) {
            Ok(0) => return Step::Refuse(p.parser.eof()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Wait,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Step::Refuse(refuse(0, e.to_string())),
        };
        match p.parser.feed(&chunk[..n]) {
            Ok(Progress::Done(request)) if is_probe(&request) => return Step::Probe(request),
            Ok(Progress::Done(request)) => return Step::Complete(request),
            Ok(Progress::More) => match p.parser.head() {
                None => {}
                Some(head) if is_probe(head) => {
                    return Step::Refuse(refuse(413, "a probe request takes no body"));
                }
                Some(_) => return Step::Started,
            },
            Err(refusal) => return Step::Refuse(refusal),
        }
    }
}

/// `GET` or `HEAD` of `/health` or `/ready`.
fn is_probe(request: &Request) -> bool {
    matches!(request.method.as_str(), "GET" | "HEAD")
        && matches!(request.path(), "/health" | "/ready")
}

/// Hands a connection to the handlers, or answers 503 when their queue is
/// full.
fn forward(conns: &Sender<Incoming>, incoming: Incoming) {
    match conns.try_send(incoming) {
        Ok(()) => {}
        Err(TrySendError::Full(incoming) | TrySendError::Disconnected(incoming)) => {
            busy(incoming.into_stream());
        }
    }
}
