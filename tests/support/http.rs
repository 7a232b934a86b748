//! A minimal HTTP/1.1 client for a node's `--http` server ([`http_call`]):
//! one request per connection, the whole reply read.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A reply: status and body.
#[derive(Debug, Clone)]
pub struct HttpResp {
    pub status: u16,
    pub body: String,
}

impl HttpResp {
    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }
}

/// `METHOD PATH` on 127.0.0.1:`port` with an optional text body; `None`
/// when the connection fails (the node is not listening yet, or gone).
pub fn http_call(port: u16, method: &str, path: &str, body: Option<&str>) -> Option<HttpResp> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let body = body.unwrap_or("");
    let raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(raw.as_bytes()).ok()?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out).ok()?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some(HttpResp {
        status,
        body: body.to_string(),
    })
}
