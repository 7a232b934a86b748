//! An attempt's log and progress while it runs: [`LogBuf`], the capped
//! buffer of log lines an attempt collects, and [`LiveLog`], the buffer
//! shared between the pool thread that runs the attempt (through its
//! [`TaskContext`](super::TaskContext)) and the worker's `live` thread,
//! which takes what has collected about once a second and writes it to
//! the task's log and progress fields while the task runs.
//!
//! Each pool thread owns one [`LiveLog`] slot for its whole life and
//! starts every attempt on it ([`LiveLog::begin`]), so the hot path takes
//! no shared lock: an attempt that ends within a second writes nothing
//! live and reports its whole log with its result, as before. When the
//! attempt ends ([`LiveLog::finish`]) the pool thread waits for a write
//! in flight to land, so the lines reported with the result always follow
//! the lines written live. A context made outside a worker
//! ([`TaskContext::new`](super::TaskContext::new)) has a private buffer
//! nobody streams: everything is reported at the end.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::{LOG_HEAD_LINES, MAX_LOG_LINE, MAX_LOG_LINES, MAX_TASK_LOG_BYTES};

/// Longest progress text kept, in bytes.
pub const MAX_PROGRESS_TEXT: usize = 200;
/// Most progress updates of ended attempts waiting for the `live` thread
/// on one slot (older ones are dropped).
const MAX_FINALS: usize = 16;
/// How long an ending attempt waits for a live write in flight.
const FLIGHT_WAIT: Duration = Duration::from_secs(10);

/// Log lines of one attempt (or of one second of it, when streamed):
/// the first [`LOG_HEAD_LINES`] and the latest within [`MAX_LOG_LINES`]
/// and [`MAX_TASK_LOG_BYTES`], with a note of what was dropped between.
#[derive(Debug, Default)]
pub struct LogBuf {
    head: Vec<String>,
    /// Once `head` is full: the latest lines, oldest first.
    tail: VecDeque<String>,
    head_bytes: usize,
    tail_bytes: usize,
    /// Lines and bytes dropped between `head` and `tail`.
    dropped: usize,
    dropped_bytes: usize,
}

impl LogBuf {
    /// Appends a line, cut to [`MAX_LOG_LINE`] bytes.
    pub fn push(&mut self, line: String) {
        let mut line = line;
        if line.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push('…');
        }
        if self.head.len() < LOG_HEAD_LINES {
            // The head is at most 32 × ~2 KiB, well within the byte cap.
            self.head_bytes += line.len();
            self.head.push(line);
            return;
        }
        self.tail_bytes += line.len();
        self.tail.push_back(line);
        // One slot is kept for the note of dropped lines.
        while self.tail.len() > MAX_LOG_LINES - LOG_HEAD_LINES - 1
            || (self.head_bytes + self.tail_bytes > MAX_TASK_LOG_BYTES && self.tail.len() > 1)
        {
            let Some(old) = self.tail.pop_front() else {
                break;
            };
            self.tail_bytes -= old.len();
            self.dropped += 1;
            self.dropped_bytes += old.len();
        }
    }

    /// True when no line is buffered.
    pub fn is_empty(&self) -> bool {
        self.head.is_empty()
    }

    /// Takes the lines (with a note of dropped ones) and empties the buffer.
    pub fn take(&mut self) -> Vec<String> {
        let mut lines = std::mem::take(&mut self.head);
        if self.dropped > 0 {
            lines.push(format!(
                "({} log lines dropped here: {} bytes)",
                self.dropped, self.dropped_bytes
            ));
        }
        lines.extend(self.tail.drain(..));
        *self = LogBuf::default();
        lines
    }
}

/// What the `live` thread writes for one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Flush {
    /// Task id.
    pub id: String,
    /// Attempt number (the write is refused for any other attempt).
    pub attempt: u32,
    /// Log lines collected since the last write.
    pub lines: Vec<String>,
    /// The latest progress, if it changed: percent and text.
    pub progress: Option<(u8, String)>,
}

#[derive(Debug, Default)]
struct State {
    /// The attempt running on this slot, while it runs.
    task: Option<(String, u32)>,
    log: LogBuf,
    progress: Option<(u8, String)>,
    progress_dirty: bool,
    /// A write of this attempt's lines is under way.
    in_flight: bool,
    /// Progress of ended attempts, still to write.
    finals: VecDeque<Flush>,
}

/// The log buffer and progress of the attempt running on one pool thread,
/// shared with the worker's `live` thread (see the module docs).
#[derive(Debug, Default)]
pub struct LiveLog {
    state: Mutex<State>,
    landed: Condvar,
    /// True for a worker's slot: the `live` thread writes it.
    streamed: bool,
}

impl LiveLog {
    /// A buffer nobody streams (everything is reported at the end).
    pub fn private() -> LiveLog {
        LiveLog::default()
    }

    /// A worker's slot, written by its `live` thread.
    pub fn streamed() -> LiveLog {
        LiveLog {
            streamed: true,
            ..LiveLog::default()
        }
    }

    /// True for a worker's slot.
    pub fn is_streamed(&self) -> bool {
        self.streamed
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts attempt `attempt` of task `id` on this slot.
    pub fn begin(&self, id: &str, attempt: u32) {
        let mut s = self.lock();
        s.task = Some((id.to_string(), attempt));
        s.log = LogBuf::default();
        s.progress = None;
        s.progress_dirty = false;
    }

    /// Appends a log line.
    pub fn push(&self, line: String) {
        self.lock().log.push(line);
    }

    /// Sets the attempt's progress (`percent` capped at 100, `text` cut to
    /// [`MAX_PROGRESS_TEXT`] bytes).
    pub fn set_progress(&self, percent: u8, text: &str) {
        let mut text = text.trim().to_string();
        if text.len() > MAX_PROGRESS_TEXT {
            let mut cut = MAX_PROGRESS_TEXT;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        let mut s = self.lock();
        s.progress = Some((percent.min(100), text));
        s.progress_dirty = true;
    }

    /// The latest progress set.
    pub fn progress(&self) -> Option<(u8, String)> {
        self.lock().progress.clone()
    }

    /// Ends the attempt: waits (bounded) for a live write in flight, then
    /// takes the lines not written yet (reported with the result). A
    /// progress update not written yet is left for the `live` thread.
    pub fn finish(&self) -> Vec<String> {
        let mut s = self.lock();
        if s.in_flight {
            let (guard, _) = self
                .landed
                .wait_timeout_while(s, FLIGHT_WAIT, |s| s.in_flight)
                .unwrap_or_else(|p| p.into_inner());
            s = guard;
        }
        let lines = s.log.take();
        if let Some((id, attempt)) = s.task.take()
            && self.streamed
            && s.progress_dirty
        {
            let progress = s.progress.clone();
            if s.finals.len() == MAX_FINALS {
                s.finals.pop_front();
            }
            s.finals.push_back(Flush {
                id,
                attempt,
                lines: Vec::new(),
                progress,
            });
        }
        s.progress_dirty = false;
        lines
    }

    /// For the `live` thread: the progress of ended attempts, and what the
    /// running attempt collected since the last write (then marked in
    /// flight until [`LiveLog::landed`]).
    pub fn take(&self) -> (Vec<Flush>, Option<Flush>) {
        let mut s = self.lock();
        let finals: Vec<Flush> = s.finals.drain(..).collect();
        let running = match &s.task {
            Some((id, attempt)) if !s.log.is_empty() || s.progress_dirty => {
                let flush = Flush {
                    id: id.clone(),
                    attempt: *attempt,
                    lines: Vec::new(),
                    progress: if s.progress_dirty {
                        s.progress.clone()
                    } else {
                        None
                    },
                };
                Some(flush)
            }
            _ => None,
        };
        let running = running.map(|mut f| {
            f.lines = s.log.take();
            s.progress_dirty = false;
            s.in_flight = true;
            f
        });
        (finals, running)
    }

    /// For the `live` thread: the write of `flush` (taken by
    /// [`LiveLog::take`]) is over; when it failed, its lines and progress
    /// go back into the buffer to be written later or reported with the
    /// result.
    pub fn landed(&self, flush: Flush, ok: bool) {
        let mut s = self.lock();
        if !ok
            && s.task
                .as_ref()
                .is_some_and(|(id, a)| *id == flush.id && *a == flush.attempt)
        {
            let newer = std::mem::take(&mut s.log).take();
            for line in flush.lines.into_iter().chain(newer) {
                s.log.push(line);
            }
            if flush.progress.is_some() && !s.progress_dirty {
                s.progress_dirty = true;
            }
        }
        s.in_flight = false;
        drop(s);
        self.landed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streamed_attempt_hands_over_its_lines_in_order() {
        let live = LiveLog::streamed();
        live.begin("t", 2);
        live.push("one".into());
        live.set_progress(150, "  copying  ");
        let (finals, running) = live.take();
        assert!(finals.is_empty());
        let running = running.unwrap();
        assert_eq!(running.lines, vec!["one"]);
        assert_eq!(running.progress, Some((100, "copying".into())));
        assert_eq!(running.attempt, 2);
        live.push("two".into());
        // A failed write puts its lines back before the newer ones.
        live.landed(running, false);
        let (_, again) = live.take();
        let again = again.unwrap();
        assert_eq!(again.lines, vec!["one", "two"]);
        assert!(again.progress.is_some(), "the progress is written again");
        live.landed(again, true);
        assert!(live.take().1.is_none(), "nothing new");
        live.push("three".into());
        live.set_progress(90, "");
        assert_eq!(
            live.finish(),
            vec!["three"],
            "the rest goes with the result"
        );
        let (finals, running) = live.take();
        assert!(running.is_none());
        assert_eq!(finals.len(), 1, "the last progress is still written");
        assert_eq!(finals[0].progress, Some((90, String::new())));
    }

    #[test]
    fn an_ending_attempt_waits_for_the_write_in_flight() {
        let live = std::sync::Arc::new(LiveLog::streamed());
        live.begin("t", 1);
        live.push("early".into());
        let (_, flush) = live.take();
        let flush = flush.unwrap();
        live.push("late".into());
        let ender = {
            let live = live.clone();
            std::thread::spawn(move || live.finish())
        };
        // The ending thread cannot take "late" before "early" landed.
        live.landed(flush, true);
        assert_eq!(ender.join().unwrap(), vec!["late"]);
    }

    #[test]
    fn a_private_buffer_keeps_everything_for_the_end() {
        let live = LiveLog::private();
        live.begin("t", 1);
        live.push("a".into());
        live.set_progress(5, "x");
        assert_eq!(live.finish(), vec!["a"]);
        let (finals, running) = live.take();
        assert!(finals.is_empty() && running.is_none());
    }
}
