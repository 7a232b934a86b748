//! HTTP/1.1 on one accepted connection, for the `http-N` handler threads and
//! the `http-probe` thread: read one request with hard limits, write one
//! response, close.
//!
//! Two layers, so the parsing can be tested (and fuzzed) without sockets:
//!
//! - [`Parser`], no I/O: bytes in, a [`Request`] or a [`Refusal`] out. The
//!   request head is parsed by `httparse` (the parser hyper uses, fuzzed
//!   for years) and chunk-size lines by [`httparse::parse_chunk_size`];
//!   this file adds the framing (`Content-Length`, chunked), the limits and
//!   the status of each refusal.
//! - [`Conn`]: a `TcpStream` with deadlines that feeds a parser from
//!   blocking reads, and writes the response.
//!
//! Every limit is explicit, whatever the client sends:
//!
//! - head (request line + headers) at most [`MAX_HEAD`] bytes and
//!   [`MAX_HEADERS`] fields → 431;
//! - body: every byte read for it counts against the limit (data, and for
//!   a chunked body the chunk-size lines with their extensions, the CRLFs
//!   and the trailers) → 413; a `Content-Length` over it is refused before
//!   reading, so is a chunk size that would pass it. All size arithmetic is
//!   checked: a chunk of `ffffffffffffffff` bytes is a 413, not a wrap;
//! - memory: the read buffer never holds more than
//!   [`buffer_bound`]`(max_body)` = head limit + body limit + one read
//!   ([`READ_CHUNK`]), the decoded body at most the body limit;
//! - CPU: each byte is scanned a bounded number of times (the head is
//!   parsed only once a blank line may have arrived, a chunk-size line once
//!   its line feed has), so trickling bytes one by one costs no quadratic
//!   re-parsing;
//! - time: the head must arrive within [`HEAD_DEADLINE`] and the whole
//!   request within [`READ_DEADLINE`] of the connection being taken → 408,
//!   so an idle or trickling client holds a handler for seconds, not for
//!   as long as it likes;
//! - one request per connection (`Connection: close`), which every probe,
//!   scraper and HTTP client handles, and which leaves no idle connection
//!   holding a thread;
//! - after a refusal the unread input may be drained for a bounded time
//!   and volume before closing (a lingering close), so the client reads the
//!   answer instead of a reset.
//!
//! (Hand-written rather than `tiny_http`, which was tried first: its 0.12
//! release allocates a buffer of the whole announced `Content-Length` when
//! a body was not read, so one `GET /health` with `Content-Length:
//! 100000000000000` aborted the node, and it sets no socket timeouts.)

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

/// Largest request head accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most header fields in a request head (hyper's default too).
pub const MAX_HEADERS: usize = 100;
/// Time a client has to send its request head, from the moment a handler
/// takes the connection: short, so idle sockets (slowloris) free a handler
/// quickly. Probes and API clients send the head at once.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(2);
/// Time a client has to send its whole request, body included.
pub const READ_DEADLINE: Duration = Duration::from_secs(10);
/// Most bytes taken from the socket by one read, and so the most the read
/// buffer can pass the head or body limit by before the parser refuses.
pub const READ_CHUNK: usize = 8192;
/// Time a response may take to be written.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long, and how much, unread input is drained before closing after a
/// refusal (a lingering close).
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: u64 = 8 << 20;

/// The most the read buffer of a [`Parser`] with body limit `max_body` ever
/// holds: a head at its limit or a body at its limit, plus one read.
pub fn buffer_bound(max_body: usize) -> usize {
    MAX_HEAD.saturating_add(max_body).saturating_add(READ_CHUNK)
}

/// One parsed request.
#[derive(Debug)]
pub struct Request {
    /// `GET`, `POST`, ... as sent (methods are case-sensitive).
    pub method: String,
    /// The origin-form target: path and optional `?query`.
    pub target: String,
    /// Header names in lower case, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body (empty when none).
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path of the target, without the query.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }
}

/// Why a request could not be read: the status to answer with (0: the
/// connection is gone, answer nothing) and a message.
#[derive(Debug)]
pub struct Refusal {
    /// HTTP status, or 0 for none.
    pub status: u16,
    /// What was wrong, for the JSON error.
    pub message: String,
}

/// A [`Refusal`] with `status` and `message`.
pub fn refuse(status: u16, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
    }
}

/// What [`Parser::feed`] made of the input so far.
#[derive(Debug)]
pub enum Progress {
    /// The request is not complete yet: feed more.
    More,
    /// The whole request (later input is ignored).
    Done(Request),
}

/// Where the parser is in the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    /// `Content-Length` body, bytes still to come.
    Fixed {
        left: usize,
    },
    /// Expecting a chunk-size line.
    ChunkSize,
    /// Inside a chunk, bytes still to come.
    ChunkData {
        left: usize,
    },
    /// Expecting the CRLF after a chunk's data.
    ChunkEnd,
    /// After the last chunk, up to the empty line.
    Trailers,
    /// Request returned or refused: nothing more is read.
    Done,
}

/// An incremental request parser with no I/O: [`Parser::feed`] it bytes as
/// they arrive, split anywhere, until it returns the request or a refusal.
#[derive(Debug)]
pub struct Parser {
    max_body: usize,
    /// Input not consumed yet starts at `pos`.
    buf: Vec<u8>,
    pos: usize,
    /// `buf[pos..scanned]` is known to hold nothing the current state looks
    /// for (a head end, a line feed), so it is not scanned again.
    scanned: usize,
    state: State,
    /// The request once its head is parsed (its body comes at the end).
    head: Option<Request>,
    body: Vec<u8>,
    /// Bytes consumed for the body (framing included), against `max_body`.
    body_read: usize,
    /// `Expect: 100-continue` was asked and not answered yet.
    send_continue: bool,
}

impl Parser {
    /// A parser for one request whose body may take `max_body` bytes.
    pub fn new(max_body: usize) -> Parser {
        Parser {
            max_body,
            buf: Vec::new(),
            pos: 0,
            scanned: 0,
            state: State::Head,
            head: None,
            body: Vec::new(),
            body_read: 0,
            send_continue: false,
        }
    }

    /// The request once its head is parsed, before the body is complete
    /// (its `body` is empty until then).
    pub fn head(&self) -> Option<&Request> {
        self.head.as_ref()
    }

    /// True once, when the head asked for `100 Continue` and the body is
    /// still to come: the caller should send it then.
    pub fn take_continue(&mut self) -> bool {
        std::mem::take(&mut self.send_continue)
    }

    /// What to answer when the input ends before the request does.
    pub fn eof(&self) -> Refusal {
        if self.head.is_none() {
            refuse(0, "connection closed before the request head ended")
        } else {
            refuse(400, "connection closed before the body ended")
        }
    }

    /// Bytes the read buffer has allocated (for the tests of its bound).
    #[cfg(test)]
    fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Bytes the decoded body has allocated (for the tests of its bound).
    #[cfg(test)]
    fn body_capacity(&self) -> usize {
        self.body.capacity()
    }

    /// Takes more input. After `Done` or a refusal the parser is finished:
    /// feeding it again is a refusal with status 0.
    pub fn feed(&mut self, data: &[u8]) -> Result<Progress, Refusal> {
        // A read at a time, whatever the caller hands over, so the buffer
        // passes a limit by at most one read before the check refuses.
        for piece in data.chunks(READ_CHUNK) {
            if self.state == State::Done {
                return Err(refuse(0, "the request was already read"));
            }
            self.compact();
            self.append(piece);
            match self.advance() {
                Ok(None) => {}
                Ok(Some(request)) => {
                    self.state = State::Done;
                    return Ok(Progress::Done(request));
                }
                Err(refusal) => {
                    self.state = State::Done;
                    return Err(refusal);
                }
            }
        }
        Ok(Progress::More)
    }

    /// Drops the consumed input from the front of the buffer.
    fn compact(&mut self) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.scanned -= self.pos.min(self.scanned);
            self.pos = 0;
        }
    }

    /// Appends one read; the allocation grows by doubling but never past
    /// [`buffer_bound`] (the checks in `advance` keep the length within it).
    fn append(&mut self, piece: &[u8]) {
        let need = self.buf.len().saturating_add(piece.len());
        if need > self.buf.capacity() {
            let target = self
                .buf
                .capacity()
                .saturating_mul(2)
                .max(1024)
                .min(buffer_bound(self.max_body))
                .max(need);
            self.buf.reserve_exact(target - self.buf.len());
        }
        self.buf.extend_from_slice(piece);
    }

    fn too_large(&self) -> Refusal {
        refuse(413, format!("request body over {} bytes", self.max_body))
    }

    /// Counts `n` more bytes read for the body; 413 past the limit.
    fn count(&mut self, n: usize) -> Result<(), Refusal> {
        match self.body_read.checked_add(n) {
            Some(total) if total <= self.max_body => {
                self.body_read = total;
                Ok(())
            }
            _ => Err(self.too_large()),
        }
    }

    /// Consumes `n` bytes of body framing (counted).
    fn consume(&mut self, n: usize) -> Result<(), Refusal> {
        self.count(n)?;
        self.pos += n;
        self.scanned = self.pos;
        Ok(())
    }

    /// Moves `n` bytes of body data from the input to the body (counted).
    fn take_data(&mut self, n: usize) -> Result<(), Refusal> {
        self.count(n)?;
        let need = self.body.len().saturating_add(n);
        if need > self.body.capacity() {
            // Doubling, capped at the limit: never more than `max_body`.
            let target = self
                .body
                .capacity()
                .saturating_mul(2)
                .max(1024)
                .min(self.max_body)
                .max(need);
            self.body.reserve_exact(target - self.body.len());
        }
        self.body
            .extend_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        self.scanned = self.pos;
        Ok(())
    }

    /// The end (exclusive) of the next line of body framing, if its line
    /// feed has arrived. A line still incomplete already counts: once it
    /// cannot fit in what is left of the limit, 413.
    fn line_end(&mut self) -> Result<Option<usize>, Refusal> {
        let from = self.scanned.max(self.pos);
        if let Some(i) = self.buf[from..].iter().position(|&b| b == b'\n') {
            return Ok(Some(from + i + 1));
        }
        self.scanned = self.buf.len();
        let partial = self.buf.len() - self.pos;
        match self.body_read.checked_add(partial) {
            Some(total) if total <= self.max_body => Ok(None),
            _ => Err(self.too_large()),
        }
    }

    /// The request, once complete.
    fn finish(&mut self) -> Result<Option<Request>, Refusal> {
        let mut request = self
            .head
            .take()
            .ok_or_else(|| refuse(500, "request body without a head"))?;
        request.body = std::mem::take(&mut self.body);
        Ok(Some(request))
    }

    /// Parses as far as the input goes: `Some` once the request is complete.
    fn advance(&mut self) -> Result<Option<Request>, Refusal> {
        loop {
            let avail = self.buf.len() - self.pos;
            match self.state {
                State::Head => {
                    if !self.parse_head()? {
                        return Ok(None);
                    }
                }
                State::Fixed { left } => {
                    let n = left.min(avail);
                    self.take_data(n)?;
                    if n == left {
                        return self.finish();
                    }
                    self.state = State::Fixed { left: left - n };
                    return Ok(None);
                }
                State::ChunkData { left } => {
                    let n = left.min(avail);
                    self.take_data(n)?;
                    if n < left {
                        self.state = State::ChunkData { left: left - n };
                        return Ok(None);
                    }
                    self.state = State::ChunkEnd;
                }
                State::ChunkEnd => match &self.buf[self.pos..] {
                    [b'\r', b'\n', ..] => {
                        self.consume(2)?;
                        self.state = State::ChunkSize;
                    }
                    [] | [b'\r'] => return Ok(None),
                    _ => return Err(refuse(400, "chunk data not followed by CRLF")),
                },
                State::ChunkSize => {
                    // An empty size would read as 0 (the last chunk):
                    // refuse it, like anything but a hex digit first.
                    match self.buf.get(self.pos) {
                        None => return Ok(None),
                        Some(b) if b.is_ascii_hexdigit() => {}
                        Some(_) => return Err(refuse(400, "malformed chunk size")),
                    }
                    let Some(end) = self.line_end()? else {
                        return Ok(None);
                    };
                    // Up to the first line feed only: each byte is parsed
                    // once, and a bare LF is refused rather than read as
                    // part of an extension.
                    let size = match httparse::parse_chunk_size(&self.buf[self.pos..end]) {
                        Ok(httparse::Status::Complete((n, size))) if n == end - self.pos => size,
                        Ok(_) => return Err(refuse(400, "chunk-size line not ended by CRLF")),
                        Err(_) => return Err(refuse(400, "malformed chunk size")),
                    };
                    self.consume(end - self.pos)?;
                    if size == 0 {
                        self.state = State::Trailers;
                        continue;
                    }
                    // The data and its CRLF must fit in what is left.
                    let left = usize::try_from(size)
                        .ok()
                        .filter(|&size| {
                            self.body_read
                                .checked_add(size)
                                .and_then(|t| t.checked_add(2))
                                .is_some_and(|t| t <= self.max_body)
                        })
                        .ok_or_else(|| self.too_large())?;
                    self.state = State::ChunkData { left };
                }
                State::Trailers => {
                    let Some(end) = self.line_end()? else {
                        return Ok(None);
                    };
                    let line = &self.buf[self.pos..end];
                    let Some(field) = line.strip_suffix(b"\r\n") else {
                        return Err(refuse(400, "trailer line not ended by CRLF"));
                    };
                    // Trailers are read and dropped (nothing here uses
                    // them), but must look like header fields.
                    let blank = field.is_empty();
                    if !blank && !is_field_line(field) {
                        return Err(refuse(400, "malformed trailer field"));
                    }
                    self.consume(end - self.pos)?;
                    if blank {
                        return self.finish();
                    }
                }
                State::Done => return Err(refuse(0, "the request was already read")),
            }
        }
    }

    /// Parses the head once it may be complete: true when it was.
    fn parse_head(&mut self) -> Result<bool, Refusal> {
        let too_large = || refuse(431, format!("request head over {MAX_HEAD} bytes"));
        let limit = self.buf.len().min(MAX_HEAD);
        // A head ends with an empty line: parse only once "\n\n" or
        // "\n\r\n" is in the input (looking back over a split).
        let from = self.scanned.saturating_sub(2).min(limit);
        let window = &self.buf[from..limit];
        let ended =
            window.windows(2).any(|w| w == b"\n\n") || window.windows(3).any(|w| w == b"\n\r\n");
        self.scanned = limit;
        if !ended {
            return if self.buf.len() >= MAX_HEAD {
                Err(too_large())
            } else {
                Ok(false)
            };
        }
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut fields);
        let n = match parsed.parse(&self.buf[..limit]) {
            Ok(httparse::Status::Complete(n)) => n,
            // Only empty lines so far (skipped before a request line).
            Ok(httparse::Status::Partial) if self.buf.len() >= MAX_HEAD => {
                return Err(too_large());
            }
            Ok(httparse::Status::Partial) => return Ok(false),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(refuse(
                    431,
                    format!("more than {MAX_HEADERS} header fields"),
                ));
            }
            Err(httparse::Error::Version) => return Err(version_refusal(&self.buf[..limit])),
            Err(e) => return Err(refuse(400, format!("malformed request head: {e}"))),
        };
        let (Some(method), Some(target)) = (parsed.method, parsed.path) else {
            return Err(refuse(400, "malformed request line"));
        };
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(refuse(400, "malformed method"));
        }
        if !target.starts_with('/') {
            return Err(refuse(400, "the request target must be a path"));
        }
        let mut headers = Vec::with_capacity(parsed.headers.len());
        for field in parsed.headers.iter() {
            let value = std::str::from_utf8(field.value)
                .map_err(|_| refuse(400, "request head is not UTF-8"))?;
            headers.push((field.name.to_ascii_lowercase(), value.trim().to_string()));
        }
        let request = Request {
            method: method.to_string(),
            target: target.to_string(),
            headers,
            body: Vec::new(),
        };
        let (state, has_body) = self.framing(&request)?;
        self.send_continue = has_body
            && request
                .header("expect")
                .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"));
        if let State::Fixed { left } = state {
            self.body.reserve_exact(left);
        }
        self.head = Some(request);
        self.state = state;
        self.pos = n;
        self.scanned = n;
        Ok(true)
    }

    /// How the body is framed: the state after the head, and whether a
    /// body is to come.
    fn framing(&self, request: &Request) -> Result<(State, bool), Refusal> {
        let values = |name: &str| -> Vec<&str> {
            request
                .headers
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        let codings = values("transfer-encoding");
        let chunked = match codings
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>()
            .as_slice()
        {
            [] => false,
            [one] if one.eq_ignore_ascii_case("chunked") => true,
            _ => {
                return Err(refuse(
                    501,
                    format!("transfer coding `{}` not supported", codings.join(", ")),
                ));
            }
        };
        let lengths = values("content-length");
        match (chunked, lengths.as_slice()) {
            (true, []) => Ok((State::ChunkSize, true)),
            (true, _) => Err(refuse(400, "both Content-Length and chunked")),
            (false, []) => Ok((State::Fixed { left: 0 }, false)),
            (false, [first, rest @ ..]) if rest.iter().all(|v| v == first) => {
                if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(refuse(400, "malformed Content-Length"));
                }
                // Only digits: it fails only past u64, far over any limit.
                let length = first
                    .parse::<u64>()
                    .ok()
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|&n| n <= self.max_body)
                    .ok_or_else(|| self.too_large())?;
                Ok((State::Fixed { left: length }, length > 0))
            }
            (false, _) => Err(refuse(400, "conflicting Content-Length headers")),
        }
    }
}

/// 505 when the request line names another HTTP version, 400 otherwise.
fn version_refusal(head: &[u8]) -> Refusal {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let http = line
        .split(|&b| b == b' ')
        .nth(2)
        .is_some_and(|v| v.starts_with(b"HTTP/"));
    if http {
        refuse(505, "only HTTP/1.0 and HTTP/1.1 are served")
    } else {
        refuse(400, "malformed request line")
    }
}

/// `name: value` with a token for a name (a trailer field).
fn is_field_line(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return false;
    };
    colon > 0
        && line[..colon]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A connection with deadlines for reading the request.
pub struct Conn {
    stream: TcpStream,
    opened: Instant,
}

impl Conn {
    /// Wraps an accepted stream (back in blocking mode); the read deadlines
    /// start now.
    pub fn new(stream: TcpStream) -> io::Result<Conn> {
        Conn::opened_at(stream, Instant::now())
    }

    /// Wraps a stream whose request started arriving at `opened` (its head
    /// read elsewhere); the deadlines count from then.
    pub fn opened_at(stream: TcpStream, opened: Instant) -> io::Result<Conn> {
        stream.set_nonblocking(false)?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        Ok(Conn { stream, opened })
    }

    /// Reads the rest of one request into `parser` (a new one, or one that
    /// has its head already): the head by `head_deadline` (at most
    /// [`READ_DEADLINE`]), all of it by [`READ_DEADLINE`].
    pub fn read_request(
        &mut self,
        mut parser: Parser,
        head_deadline: Duration,
    ) -> Result<Request, Refusal> {
        let head_by = self.opened + head_deadline.min(READ_DEADLINE);
        let all_by = self.opened + READ_DEADLINE;
        let mut chunk = [0u8; READ_CHUNK];
        loop {
            if parser.take_continue() {
                let _ = self.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
            }
            let (by, what) = match parser.head() {
                None => (head_by, "request head"),
                Some(_) => (all_by, "request"),
            };
            let left = by.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(refuse(408, format!("{what} not received in time")));
            }
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| refuse(0, e.to_string()))?;
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(parser.eof()),
                Ok(n) => {
                    if let Progress::Done(request) = parser.feed(&chunk[..n])? {
                        return Ok(request);
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(refuse(408, format!("{what} not received in time")));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(refuse(0, e.to_string())),
            }
        }
    }

    /// Writes one response and closes the connection. `head_only` (HEAD)
    /// leaves out the body; `linger` drains unread input first (after a
    /// refusal), so the client sees the answer rather than a reset.
    pub fn respond(
        mut self,
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
        head_only: bool,
        linger: bool,
    ) {
        let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
        let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT");
        out.push_str(&format!(
            "Date: {date}\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        ));
        for (name, value) in headers {
            // Values are ours; refuse line breaks all the same.
            if !value.contains(['\r', '\n']) {
                out.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        if !head_only {
            bytes.extend_from_slice(body);
        }
        // The client may be gone; nothing to do about it.
        let _ = self
            .stream
            .write_all(&bytes)
            .and_then(|()| self.stream.flush());
        let _ = self.stream.shutdown(Shutdown::Write);
        if linger {
            let until = Instant::now() + LINGER;
            let (mut drained, mut scratch) = (0u64, [0u8; 8192]);
            while drained < LINGER_BYTES {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() || self.stream.set_read_timeout(Some(left)).is_err() {
                    break;
                }
                match self.stream.read(&mut scratch) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => drained += n as u64,
                }
            }
        }
    }
}

/// The reason phrase of the statuses this server sends.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 1 << 20;

    /// Feeds `input` in pieces of `step` bytes, checking the memory bound
    /// after each; then the end of input if the request is not complete.
    fn parse_split(input: &[u8], step: usize, max_body: usize) -> Result<Request, Refusal> {
        let mut parser = Parser::new(max_body);
        for piece in input.chunks(step.max(1)) {
            let progress = parser.feed(piece);
            assert!(parser.buffer_capacity() <= buffer_bound(max_body));
            assert!(parser.body_capacity() <= max_body);
            if let Progress::Done(request) = progress? {
                return Ok(request);
            }
        }
        Err(parser.eof())
    }

    fn parse(input: &[u8]) -> Result<Request, Refusal> {
        parse_split(input, input.len(), LIMIT)
    }

    fn status(input: &[u8]) -> u16 {
        match parse(input) {
            Ok(r) => panic!("expected a refusal, got {r:?}"),
            Err(refusal) => refusal.status,
        }
    }

    #[test]
    fn simple_requests() {
        let r = parse(b"GET /health?x=1 HTTP/1.1\r\nHost: a\r\nX-A:  b \r\n\r\n").unwrap();
        assert_eq!(
            (r.method.as_str(), r.target.as_str()),
            ("GET", "/health?x=1")
        );
        assert_eq!(r.path(), "/health");
        assert_eq!(r.header("x-a"), Some("b"));
        let r = parse(b"POST /tasks HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello, ignored").unwrap();
        assert_eq!(r.body, b"hello");
        let r = parse(b"GET / HTTP/1.1\n\n").unwrap();
        assert_eq!(r.target, "/");
    }

    #[test]
    fn chunked_bodies_with_extensions_and_trailers() {
        let input = b"POST /t HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n\
            3;name=\"v\"\r\nabc\r\nA \r\n0123456789\r\n0;last\r\nX-Sum: 1\r\n\r\n";
        let whole = parse(input).unwrap();
        assert_eq!(whole.body, b"abc0123456789");
        for step in [1, 2, 3, 7] {
            assert_eq!(parse_split(input, step, LIMIT).unwrap().body, whole.body);
        }
    }

    #[test]
    fn refusals() {
        let cases: &[(&[u8], u16)] = &[
            (b"NOT HTTP\r\n\r\n", 400),
            (b"get / HTTP/1.1\r\n\r\n", 400),
            (b"GET * HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/2.0\r\n\r\n", 505),
            (b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nX: \xff\r\n\r\n", 400),
            (
                b"GET / HTTP/1.1\r\nContent-Length: 100000000000000\r\n\r\n",
                413,
            ),
            (
                b"GET / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                413,
            ),
            (b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
            (
                b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                400,
            ),
            (
                b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                501,
            ),
            (
                b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
                400,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
                400,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                400,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\nx\r\n0\r\n\r\n",
                400,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy0\r\n\r\n",
                400,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nbad\r\n\r\n",
                400,
            ),
            (b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nab", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\n", 0),
        ];
        for (input, expected) in cases {
            assert_eq!(
                status(input),
                *expected,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        many.extend(b"A: b\r\n".repeat(MAX_HEADERS + 1));
        many.extend(b"\r\n");
        assert_eq!(status(&many), 431);
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.extend(vec![b'a'; MAX_HEAD]);
        assert_eq!(status(&long), 431, "refused before the head ends");
    }

    /// The review's attack: a 1-byte chunk, then one of u64::MAX bytes;
    /// also sizes past u64 and extensions or trailers past the limit.
    #[test]
    fn huge_chunks_extensions_and_trailers_are_413() {
        let head = b"POST /tasks HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        let with = |rest: &[u8]| [head.as_slice(), rest].concat();
        assert_eq!(status(&with(b"1\r\na\r\nffffffffffffffff\r\n")), 413);
        assert_eq!(status(&with(b"7fffffffffffffff\r\n")), 413);
        assert_eq!(status(&with(b"100000\r\n")), 413, "exactly 1 MiB + CRLF");
        assert_eq!(status(&with(b"10000000000000000\r\n")), 400, "past u64");
        let ext = with(&[b"1;".as_slice(), &vec![b'x'; LIMIT]].concat());
        assert_eq!(status(&ext), 413, "an extension counts, even unfinished");
        let trailer = with(&[b"0\r\nX: ".as_slice(), &vec![b'x'; LIMIT]].concat());
        assert_eq!(status(&trailer), 413, "a trailer counts");
        // Framing counts: 1 MiB of 1-byte chunks is far more than 1 MiB read.
        let tiny = with(&b"1\r\nx\r\n".repeat(LIMIT / 6 + 1));
        assert_eq!(status(&tiny), 413);
        // Just at the limit: data + framing = max_body.
        let body = vec![b'y'; 100];
        let exact = with(&[b"64\r\n".as_slice(), &body, b"\r\n0\r\n\r\n"].concat());
        let framing = 4 + 2 + 5;
        assert_eq!(parse_split(&exact, 9, 100 + framing).unwrap().body, body);
        assert_eq!(
            parse_split(&exact, 9, 100 + framing - 1)
                .unwrap_err()
                .status,
            413
        );
    }

    #[test]
    fn continue_is_asked_once_for_a_body() {
        let mut p = Parser::new(LIMIT);
        let head = b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
        assert!(matches!(p.feed(head), Ok(Progress::More)));
        assert!(p.take_continue() && !p.take_continue());
        assert!(matches!(p.feed(b"{}"), Ok(Progress::Done(_))));
        let mut p = Parser::new(LIMIT);
        let head = b"GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n";
        assert!(matches!(p.feed(head), Ok(Progress::Done(_))));
        assert!(!p.take_continue());
    }

    /// A small deterministic PRNG (splitmix64).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }

        fn one_in(&mut self, n: usize) -> bool {
            self.below(n) == 0
        }

        fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
            &items[self.below(items.len())]
        }
    }

    fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    /// A request that is valid, or nearly: mixed line endings, odd
    /// versions, huge or overflowing sizes, long extensions and trailers.
    fn request(rng: &mut Rng, max_body: usize) -> Vec<u8> {
        let eol: &[u8] = if rng.one_in(10) { b"\n" } else { b"\r\n" };
        let mut out = Vec::new();
        if rng.one_in(20) {
            out.extend(eol);
        }
        let odd = rng.one_in(5);
        let method = match odd {
            true => rng.pick(&["get", "M-SEARCH", "GET\t", ""]),
            false => rng.pick(&["GET", "POST", "HEAD", "PUT", "DELETE"]),
        };
        let target = match odd {
            true => rng.pick(&["*", "x", "http://a/", "/\x7f"]),
            false => rng.pick(&["/health", "/ready", "/tasks", "/t?a=1&b", "/%2F"]),
        };
        let version = match odd {
            true => rng.pick(&["HTTP/2.0", "HTTP/1", "HTTP/1.1 x", "http/1.1"]),
            false => rng.pick(&["HTTP/1.1", "HTTP/1.0"]),
        };
        out.extend(format!("{method} {target} {version}").as_bytes());
        out.extend(eol);
        let fields = if rng.one_in(30) {
            MAX_HEADERS + 5
        } else {
            rng.below(5)
        };
        for _ in 0..fields {
            let long = "v".repeat(if rng.one_in(30) {
                MAX_HEAD
            } else {
                rng.below(40)
            });
            let kinds = if rng.one_in(4) { 6 } else { 4 };
            let field = match rng.below(kinds) {
                0 => "Host: localhost".to_string(),
                1 => "Expect: 100-continue".to_string(),
                2 => format!("X-Long: {long}"),
                3 => "Authorization: Bearer t".to_string(),
                4 => format!("Content-Length: {}", rng.below(max_body + 2)),
                _ => "Transfer-Encoding: chunked".to_string(),
            };
            out.extend(field.as_bytes());
            out.extend(eol);
        }
        let chunked = match rng.below(4) {
            0 => false,
            1 => {
                let n = if rng.one_in(4) {
                    rng.pick(&["18446744073709551616", "100000000000000", "1"])
                        .to_string()
                } else {
                    rng.below(max_body.saturating_mul(2).max(2)).to_string()
                };
                out.extend(format!("Content-Length: {n}").as_bytes());
                out.extend(eol);
                out.extend(eol);
                let len = n.parse::<usize>().unwrap_or(0).min(2 * max_body + 100);
                out.extend((0..len).map(|i| b'a' + (i % 26) as u8));
                return out;
            }
            _ => {
                out.extend(b"Transfer-Encoding: chunked");
                out.extend(eol);
                true
            }
        };
        out.extend(eol);
        if !chunked {
            return out;
        }
        for _ in 0..rng.below(6) {
            let size = match rng.below(8) {
                0 => rng
                    .pick(&[
                        "ffffffffffffffff",
                        "FFFFFFFFFFFFFFFF",
                        "10000000000000000",
                        "7fffffffffffffff",
                    ])
                    .to_string(),
                1 => format!(
                    "{:x}",
                    max_body.saturating_add(rng.below(4)).saturating_sub(1)
                ),
                _ => format!("{:x}", rng.below(300)),
            };
            out.extend(size.as_bytes());
            match rng.below(5) {
                0 => out.extend(b";a=b;c=\"d e\""),
                1 if rng.one_in(4) => out.extend(vec![b'x'; rng.below(2 * max_body + 2)]),
                2 => out.push(b';'),
                _ => {}
            }
            out.extend(eol);
            let len = usize::from_str_radix(&size, 16).unwrap_or(usize::MAX);
            // Data as announced when small; a stream of bytes otherwise.
            let data = match len {
                0..=4096 => len,
                _ if rng.one_in(8) => rng.below(3 * LIMIT),
                _ => rng.below(2 * max_body + 100),
            };
            out.extend((0..data).map(|i| b'0' + (i % 10) as u8));
            out.extend(eol);
        }
        out.extend(b"0");
        out.extend(eol);
        for _ in 0..rng.below(3) {
            out.extend(if rng.one_in(10) {
                b"bad trailer".as_slice()
            } else {
                b"X-T: v"
            });
            out.extend(eol);
        }
        out.extend(eol);
        out
    }

    /// A few random edits: flip, insert, delete, duplicate, truncate.
    fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
        const NASTY: &[u8] = b"\r\n;: \t0fF\x00\xff";
        for _ in 0..=rng.below(4) {
            let at = rng.below(input.len() + 1);
            match rng.below(5) {
                0 if at < input.len() => input[at] = *rng.pick(NASTY),
                1 => input.insert(at, *rng.pick(NASTY)),
                2 if at < input.len() => {
                    input.remove(at);
                }
                3 if at < input.len() => {
                    let end = (at + rng.below(64)).min(input.len());
                    let copy = input[at..end].to_vec();
                    input.splice(at..at, copy);
                }
                _ => input.truncate(at),
            }
        }
    }

    /// Feeds `input` split at random points; the outcome, with the bound
    /// checked after every feed.
    fn feed_randomly(rng: &mut Rng, input: &[u8], max_body: usize) -> Result<Request, Refusal> {
        let mut parser = Parser::new(max_body);
        let mut rest = input;
        let small = input.len() < 1 << 16 && rng.one_in(3);
        while !rest.is_empty() {
            let n = if small {
                1 + rng.below(16)
            } else {
                1 + rng.below(3 * READ_CHUNK)
            };
            let (piece, after) = rest.split_at(n.min(rest.len()));
            rest = after;
            let progress = parser.feed(piece);
            assert!(
                parser.buffer_capacity() <= buffer_bound(max_body),
                "read buffer {} over {}",
                parser.buffer_capacity(),
                buffer_bound(max_body)
            );
            assert!(parser.body_capacity() <= max_body, "body over its limit");
            if let Progress::Done(request) = progress? {
                return Ok(request);
            }
        }
        Err(parser.eof())
    }

    /// Property test: whatever the bytes and however they are split, the
    /// parser returns a request or a refusal with a known status, never
    /// panics, keeps its buffers within bounds, and a request it accepts
    /// does not depend on where the input was split.
    /// `DISTSCHED_FUZZ_SEED`, `DISTSCHED_FUZZ_CASES` (default 20000) and
    /// `DISTSCHED_FUZZ_SECS` (default 3, whichever ends first) tune it.
    #[test]
    fn fuzz_parser() {
        let seed: u64 = env_or("DISTSCHED_FUZZ_SEED", 0x00d1_5757_c4ed);
        let cases: u64 = env_or("DISTSCHED_FUZZ_CASES", 20_000);
        let secs: f64 = env_or("DISTSCHED_FUZZ_SECS", 3.0);
        let until = Instant::now() + Duration::from_secs_f64(secs);
        let (mut done, mut accepted) = (0u64, 0u64);
        while done < cases && Instant::now() < until {
            let case = seed ^ done.wrapping_mul(0x2545_f491_4f6c_dd1d);
            let mut rng = Rng(case);
            let max_body = *rng.pick(&[0, 1, 16, 100, 4096, 65536, LIMIT]);
            let mut input = match rng.below(4) {
                0 => (0..rng.below(400)).map(|_| rng.next() as u8).collect(),
                _ => request(&mut rng, max_body),
            };
            if rng.one_in(3) {
                mutate(&mut rng, &mut input);
            }
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let split = feed_randomly(&mut rng, &input, max_body);
                let whole = parse_split(&input, input.len(), max_body);
                (split, whole)
            }));
            let (split, whole) = outcome.unwrap_or_else(|_| {
                panic!("case {done} (DISTSCHED_FUZZ_SEED={seed}, case seed {case:#x}) panicked")
            });
            match (&split, &whole) {
                (Ok(a), Ok(b)) => {
                    accepted += 1;
                    assert_eq!(
                        (&a.method, &a.target, &a.headers, &a.body),
                        (&b.method, &b.target, &b.headers, &b.body),
                        "case {done} (seed {seed}) depends on the split"
                    );
                    assert!(a.body.len() <= max_body);
                }
                (Err(a), Err(b)) => {
                    for r in [a, b] {
                        assert!(
                            matches!(r.status, 0 | 400 | 413 | 431 | 501 | 505),
                            "case {done} (seed {seed}): unexpected {r:?}"
                        );
                    }
                }
                _ => panic!(
                    "case {done} (seed {seed}): split {:?} but whole {:?}",
                    split.as_ref().map(|r| &r.target),
                    whole.as_ref().map(|r| &r.target)
                ),
            }
            done += 1;
        }
        eprintln!("fuzz_parser: seed {seed}, {done} cases, {accepted} requests accepted");
        assert!(done >= 100.min(cases), "too few cases ran: {done}");
    }
}
