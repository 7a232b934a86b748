//! HTTP/1.1 on one accepted connection, for the `http-N` handler threads:
//! read one request with hard limits, write one response, close.
//!
//! Hand-written (about 250 lines) rather than `tiny_http`, which was tried
//! first: its 0.12 release, the latest, allocates a buffer of the whole
//! announced `Content-Length` when a request body was not read, so one
//! `GET /health` with `Content-Length: 100000000000000` aborted the node
//! (checked), and it sets no socket timeouts, so four silent clients
//! stalled every handler. Here every limit is explicit:
//!
//! - head (request line + headers) at most [`MAX_HEAD`] bytes → 431;
//! - body at most [`super::MAX_BODY`] → 413, refused from `Content-Length`
//!   before reading; chunked bodies are decoded and capped the same way;
//! - the whole request must arrive within [`READ_DEADLINE`] → 408, so a
//!   client trickling bytes cannot hold a thread;
//! - one request per connection (`Connection: close`), which every probe,
//!   scraper and HTTP client handles, and which leaves no idle connection
//!   holding a thread;
//! - after a refusal the unread input is drained for a bounded time before
//!   closing, so the client reads the answer instead of a reset.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

/// Largest request head accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// Time a client has to send its whole request.
pub const READ_DEADLINE: Duration = Duration::from_secs(10);
/// Time a response may take to be written.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long, and how much, unread input is drained before closing after a
/// refusal (a lingering close).
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: u64 = 8 << 20;

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

fn refuse(status: u16, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
    }
}

/// A connection with a deadline for reading the request.
pub struct Conn {
    stream: TcpStream,
    deadline: Instant,
    buf: Vec<u8>,
    pos: usize,
}

impl Conn {
    /// Wraps an accepted stream; the read deadline starts now.
    pub fn new(stream: TcpStream) -> io::Result<Conn> {
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        Ok(Conn {
            stream,
            deadline: Instant::now() + READ_DEADLINE,
            buf: Vec::with_capacity(1024),
            pos: 0,
        })
    }

    /// Reads more input into the buffer; false at end of stream.
    fn fill(&mut self) -> Result<bool, Refusal> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(refuse(408, "request not received in time"));
        }
        self.stream
            .set_read_timeout(Some(left))
            .map_err(|e| refuse(0, e.to_string()))?;
        let mut chunk = [0u8; 8192];
        match self.stream.read(&mut chunk) {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(refuse(408, "request not received in time"))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
            Err(e) => Err(refuse(0, e.to_string())),
        }
    }

    /// Takes `n` bytes of input (reading as needed), or fails at EOF.
    fn take(&mut self, n: usize) -> Result<Vec<u8>, Refusal> {
        while self.buf.len() - self.pos < n {
            if !self.fill()? {
                return Err(refuse(400, "connection closed before the body ended"));
            }
        }
        let out = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        Ok(out)
    }

    /// Takes one CRLF-terminated line (without the CRLF), at most `max` long.
    fn line(&mut self, max: usize) -> Result<String, Refusal> {
        loop {
            if let Some(i) = self.buf[self.pos..].windows(2).position(|w| w == b"\r\n") {
                if i > max {
                    return Err(refuse(431, "request head too large"));
                }
                let line = String::from_utf8(self.buf[self.pos..self.pos + i].to_vec())
                    .map_err(|_| refuse(400, "request head is not UTF-8"))?;
                self.pos += i + 2;
                return Ok(line);
            }
            if self.buf.len() - self.pos > max {
                return Err(refuse(431, "request head too large"));
            }
            if !self.fill()? {
                return Err(refuse(0, "connection closed"));
            }
        }
    }

    /// Reads one request.
    pub fn read_request(&mut self, max_body: usize) -> Result<Request, Refusal> {
        let start = self.pos;
        let request_line = self.line(MAX_HEAD)?;
        let mut parts = request_line.split(' ');
        let (Some(method), Some(target), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(refuse(400, "malformed request line"));
        };
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(refuse(400, "malformed method"));
        }
        if !target.starts_with('/') {
            return Err(refuse(400, "the request target must be a path"));
        }
        if version != "HTTP/1.1" && version != "HTTP/1.0" {
            return Err(refuse(505, "only HTTP/1.0 and HTTP/1.1 are served"));
        }
        let mut headers = Vec::new();
        loop {
            let used = self.pos - start;
            let line = self.line(MAX_HEAD.saturating_sub(used))?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .filter(|(n, _)| !n.is_empty() && !n.contains([' ', '\t']))
                .ok_or_else(|| refuse(400, "malformed header line"))?;
            headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
        }
        let mut request = Request {
            method: method.to_string(),
            target: target.to_string(),
            headers,
            body: Vec::new(),
        };
        request.body = self.read_body(&request, max_body)?;
        Ok(request)
    }

    fn read_body(&mut self, request: &Request, max_body: usize) -> Result<Vec<u8>, Refusal> {
        let too_large = || refuse(413, format!("request body over {max_body} bytes"));
        let chunked = match request.header("transfer-encoding") {
            None => false,
            Some(te) if te.eq_ignore_ascii_case("chunked") => true,
            Some(te) => return Err(refuse(501, format!("transfer coding `{te}` not supported"))),
        };
        let lengths: Vec<&str> = request
            .headers
            .iter()
            .filter(|(n, _)| n == "content-length")
            .map(|(_, v)| v.as_str())
            .collect();
        let length = match (chunked, lengths.as_slice()) {
            (true, []) => None,
            (true, _) => return Err(refuse(400, "both Content-Length and chunked")),
            (false, []) => Some(0),
            (false, [first, rest @ ..]) if rest.iter().all(|v| v == first) => Some(
                first
                    .parse::<u64>()
                    .ok()
                    .filter(|_| first.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| refuse(400, "malformed Content-Length"))?,
            ),
            (false, _) => return Err(refuse(400, "conflicting Content-Length headers")),
        };
        if length.is_some_and(|n| n > max_body as u64) {
            return Err(too_large());
        }
        if length != Some(0)
            && request
                .header("expect")
                .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
        {
            let _ = self.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        if let Some(n) = length {
            return self.take(n as usize);
        }
        let mut body = Vec::new();
        loop {
            let size_line = self.line(1024)?;
            let hex = size_line.split(';').next().unwrap_or("").trim();
            let size =
                usize::from_str_radix(hex, 16).map_err(|_| refuse(400, "malformed chunk size"))?;
            if size == 0 {
                // Trailers, up to the empty line.
                while !self.line(MAX_HEAD)?.is_empty() {}
                return Ok(body);
            }
            if body.len() + size > max_body {
                return Err(too_large());
            }
            body.extend(self.take(size)?);
            if !self.take(2)?.eq(b"\r\n") {
                return Err(refuse(400, "malformed chunk"));
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
