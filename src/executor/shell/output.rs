//! Output capture of one attempt: the helper threads that read stdout and
//! stderr line by line into bounded tails (and spot the last JSON line of
//! stdout and its `::progress N text` lines), and write the payload to
//! stdin. On a worker the pool thread hands new lines over to the live log
//! while the command runs ([`Pipes::stream`]); what was not handed over
//! goes to the log at the end ([`Output::log_to`]).

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use super::{PIPE_GRACE, TAIL_BYTES, TAIL_LINES};
use crate::executor::TaskContext;

/// `text` cut to at most `max` bytes at a character boundary, with `…` when
/// cut.
pub(super) fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The last lines of one output stream.
#[derive(Default)]
pub(super) struct Tail {
    lines: VecDeque<String>,
    bytes: usize,
    /// Earlier lines dropped to respect the caps.
    dropped: usize,
    /// Lines pushed in all (the last one in `lines` is number `total`).
    total: u64,
    /// The last line that parsed as JSON (stdout only).
    pub(super) last_json: Option<serde_json::Value>,
    /// The last `::progress N text` line (stdout only), and how many such
    /// lines came.
    progress: Option<(u8, String)>,
    progress_count: u64,
}

/// How far the output was handed over to the live log: the number of the
/// last line of each stream, and of progress lines.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Streamed {
    stdout: u64,
    stderr: u64,
    progress: u64,
}

/// `::progress 42` or `::progress 42 copying chunk 3/7` (a percent from 0
/// to 100, a fraction rounded, then optional text).
pub(super) fn parse_progress(line: &str) -> Option<(u8, String)> {
    let rest = line.trim().strip_prefix("::progress")?;
    if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
        return None;
    }
    let rest = rest.trim_start();
    let (number, text) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let number = number.strip_suffix('%').unwrap_or(number);
    let value: f64 = number.parse().ok().filter(|v: &f64| v.is_finite())?;
    Some((
        value.round().clamp(0.0, 100.0) as u8,
        text.trim().to_string(),
    ))
}

impl Tail {
    fn push(&mut self, line: String) {
        self.total += 1;
        self.bytes += line.len();
        self.lines.push_back(line);
        while self.lines.len() > TAIL_LINES || (self.bytes > TAIL_BYTES && self.lines.len() > 1) {
            if let Some(old) = self.lines.pop_front() {
                self.bytes -= old.len();
                self.dropped += 1;
            }
        }
    }

    pub(super) fn last_line(&self) -> Option<&str> {
        self.lines
            .iter()
            .rev()
            .map(|line| line.trim())
            .find(|line| !line.is_empty())
    }
}

/// What the helper threads collected.
pub(super) struct Output {
    pub(super) stdout: Tail,
    pub(super) stderr: Tail,
    /// False when a reader did not reach end-of-file in time.
    pub(super) complete: bool,
}

/// Logs the lines of `tail` after line number `from` (those not handed
/// over yet), with a note of the lines lost between (dropped by the tail's
/// caps before they could be handed over).
fn log_after(ctx: &mut TaskContext, name: &str, tail: &Tail, from: u64, what: &str) {
    let first = tail.total + 1 - tail.lines.len() as u64;
    let lost = first.saturating_sub(from + 1);
    if lost > 0 {
        ctx.log(format!("{name}: ({lost} {what} lines dropped)"));
    }
    let skip = (from + 1).saturating_sub(first) as usize;
    for line in tail.lines.iter().skip(skip) {
        ctx.log(format!("{name}: {line}"));
    }
}

impl Output {
    /// Logs what was not handed over while the command ran (`streamed`):
    /// the tails of stdout and stderr, each with a note of what was
    /// dropped, and sets the last progress.
    pub(super) fn log_to(&self, ctx: &mut TaskContext, streamed: Streamed) {
        for (name, tail, from) in [
            ("stdout", &self.stdout, streamed.stdout),
            ("stderr", &self.stderr, streamed.stderr),
        ] {
            log_after(ctx, name, tail, from, "earlier");
        }
        if self.stdout.progress_count > streamed.progress
            && let Some((percent, text)) = &self.stdout.progress
        {
            ctx.progress(*percent, text);
        }
        if !self.complete {
            ctx.log(
                "shell: output still open after the command ended (a process that left \
                 its group holds it); output may be incomplete",
            );
        }
    }
}

/// The stdin writer and the two output readers of one child.
pub(super) struct Pipes {
    stdout: Arc<Mutex<Tail>>,
    stderr: Arc<Mutex<Tail>>,
    /// One message per helper thread when it is done.
    done: Receiver<()>,
    threads: usize,
}

impl Pipes {
    pub(super) fn start(child: &mut Child, input: String) -> io::Result<Pipes> {
        let (done_tx, done) = crossbeam_channel::unbounded();
        let stdout = Arc::new(Mutex::new(Tail::default()));
        let stderr = Arc::new(Mutex::new(Tail::default()));
        let mut pipes = Pipes {
            stdout: stdout.clone(),
            stderr: stderr.clone(),
            done,
            threads: 0,
        };
        if let Some(mut stdin) = child.stdin.take() {
            // A thread, because a payload larger than the pipe buffer would
            // block on a program that does not read it.
            spawn_helper("distsched-shell-in", &done_tx, move || {
                let mut text = input.into_bytes();
                text.push(b'\n');
                // EPIPE just means the program did not read its stdin.
                let _ = stdin.write_all(&text);
            })?;
            pipes.threads += 1;
        }
        if let Some(out) = child.stdout.take() {
            spawn_helper("distsched-shell-out", &done_tx, move || {
                read_lines(out, &stdout, true)
            })?;
            pipes.threads += 1;
        }
        if let Some(err) = child.stderr.take() {
            spawn_helper("distsched-shell-err", &done_tx, move || {
                read_lines(err, &stderr, false)
            })?;
            pipes.threads += 1;
        }
        Ok(pipes)
    }

    /// Hands the lines read since `streamed` (and a new progress) over to
    /// the attempt's live log, while the command runs.
    pub(super) fn stream(&self, ctx: &mut TaskContext, streamed: &mut Streamed) {
        for (name, tail, from) in [
            ("stdout", &self.stdout, &mut streamed.stdout),
            ("stderr", &self.stderr, &mut streamed.stderr),
        ] {
            let tail = tail.lock().unwrap_or_else(|e| e.into_inner());
            if tail.total > *from {
                log_after(ctx, name, &tail, *from, "more");
                *from = tail.total;
            }
            if name == "stdout" && tail.progress_count > streamed.progress {
                streamed.progress = tail.progress_count;
                if let Some((percent, text)) = &tail.progress {
                    ctx.progress(*percent, text);
                }
            }
        }
    }

    /// Waits (bounded) for the helpers to finish and takes their output.
    pub(super) fn finish(self) -> Output {
        let until = Instant::now() + PIPE_GRACE;
        let mut finished = 0;
        while finished < self.threads && self.done.recv_deadline(until).is_ok() {
            finished += 1;
        }
        let take = |tail: &Arc<Mutex<Tail>>| {
            std::mem::take(&mut *tail.lock().unwrap_or_else(|e| e.into_inner()))
        };
        Output {
            stdout: take(&self.stdout),
            stderr: take(&self.stderr),
            complete: finished == self.threads,
        }
    }
}

pub(super) fn spawn_helper(
    name: &str,
    done: &Sender<()>,
    work: impl FnOnce() + Send + 'static,
) -> io::Result<()> {
    let done = done.clone();
    crate::component::spawn_thread(name.into(), move || {
        work();
        let _ = done.send(());
    })?;
    Ok(())
}

/// Reads `stream` line by line into `tail` until end-of-file. A line is cut
/// at [`TAIL_BYTES`] so that a program writing without newlines cannot make
/// the worker buffer without bound.
pub(super) fn read_lines(stream: impl Read, tail: &Mutex<Tail>, want_json: bool) {
    let mut reader = BufReader::with_capacity(8192, stream);
    let mut line: Vec<u8> = Vec::new();
    loop {
        let (used, newline) = match reader.fill_buf() {
            Ok([]) => break,
            Ok(buf) => {
                let (chunk, newline) = match buf.iter().position(|&b| b == b'\n') {
                    Some(at) => (&buf[..at], true),
                    None => (buf, false),
                };
                let room = TAIL_BYTES.saturating_sub(line.len());
                line.extend_from_slice(&chunk[..chunk.len().min(room)]);
                (chunk.len() + usize::from(newline), newline)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        reader.consume(used);
        if newline {
            finish_line(&mut line, tail, want_json);
        }
    }
    if !line.is_empty() {
        finish_line(&mut line, tail, want_json);
    }
}

pub(super) fn finish_line(line: &mut Vec<u8>, tail: &Mutex<Tail>, want_json: bool) {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    let text = String::from_utf8_lossy(line).into_owned();
    line.clear();
    // A progress line is not output: it sets the task's progress.
    if want_json && let Some(progress) = parse_progress(&text) {
        let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
        tail.progress = Some(progress);
        tail.progress_count += 1;
        return;
    }
    // Parse outside the lock; most lines fail at the first byte.
    let json = if want_json {
        serde_json::from_str::<serde_json::Value>(text.trim()).ok()
    } else {
        None
    };
    let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
    if json.is_some() {
        tail.last_json = json;
    }
    tail.push(text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_parse() {
        assert_eq!(parse_progress("::progress 42"), Some((42, String::new())));
        assert_eq!(
            parse_progress("::progress 42 copying chunk 3/7"),
            Some((42, "copying chunk 3/7".into()))
        );
        assert_eq!(
            parse_progress("  ::progress 99.6%  x "),
            Some((100, "x".into()))
        );
        assert_eq!(parse_progress("::progress 250"), Some((100, String::new())));
        assert_eq!(parse_progress("::progress -3 y"), Some((0, "y".into())));
        for not in [
            "::progress",
            "::progress x",
            "::progressive 4",
            "progress 4",
            "::progress NaN",
        ] {
            assert_eq!(parse_progress(not), None, "{not}");
        }
    }

    #[test]
    fn lines_handed_over_are_not_logged_again() {
        let tail = Mutex::new(Tail::default());
        let mut line = Vec::new();
        for text in ["a", "::progress 10 start", "b", "c"] {
            line.extend_from_slice(text.as_bytes());
            finish_line(&mut line, &tail, true);
        }
        let tail = tail.into_inner().unwrap();
        assert_eq!(tail.total, 3, "the progress line is not output");
        assert_eq!(tail.progress, Some((10, "start".into())));
        let mut ctx = TaskContext::new(
            "t",
            "x",
            "null",
            std::time::Duration::from_secs(1),
            Default::default(),
        );
        log_after(&mut ctx, "stdout", &tail, 1, "more");
        assert_eq!(ctx.take_log(), vec!["stdout: b", "stdout: c"]);
        log_after(&mut ctx, "stdout", &tail, 3, "more");
        assert!(ctx.take_log().is_empty());
    }

    #[test]
    fn tail_keeps_the_last_lines_within_caps() {
        let mut tail = Tail::default();
        for i in 0..250 {
            tail.push(format!("line {i}"));
        }
        assert_eq!(tail.lines.len(), TAIL_LINES);
        assert_eq!(tail.dropped, 150);
        assert_eq!(tail.lines.front().map(String::as_str), Some("line 150"));

        let mut tail = Tail::default();
        for _ in 0..4 {
            tail.push("x".repeat(TAIL_BYTES / 2));
        }
        assert!(tail.bytes <= TAIL_BYTES);
        assert_eq!(tail.dropped, 2);
    }
}
