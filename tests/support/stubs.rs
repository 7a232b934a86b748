//! Stub servers for executor tests and [`ReplyCutter`], the TCP proxy that
//! cuts a reply to lose it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// One HTTP/1.1 request read by a test's stub server.
pub struct StubRequest {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

/// Reads one request (request line, headers, a `Content-Length` body) from
/// `stream`, with a 5 s read timeout, for the tests' stub HTTP servers.
pub fn read_stub_request(stream: &TcpStream) -> std::io::Result<StubRequest> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(StubRequest {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A TCP proxy in front of a Redis port that, once, forwards a request
/// containing `needle` (after `skip` earlier ones) and then cuts that
/// connection without relaying the reply: a call that ran in Redis but
/// whose reply was lost, as a network fault can do. Every other byte is
/// relayed as is. Threads end with their connections; the acceptor ends
/// when the handle drops.
pub struct ReplyCutter {
    port: u16,
    cuts: std::sync::Arc<AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl ReplyCutter {
    pub fn start(upstream: u16, needle: &str, skip: u64) -> ReplyCutter {
        Self::start_with(upstream, needle, skip, None)
    }

    /// Like [`ReplyCutter::start`], but cuts the first reply to a request
    /// containing `needle` for which `cut_reply` holds (for `BLMPOP`: a
    /// reply with items, not the nil of a timeout); other replies to such
    /// requests pass.
    pub fn start_on_reply(
        upstream: u16,
        needle: &str,
        cut_reply: fn(&[u8]) -> bool,
    ) -> ReplyCutter {
        Self::start_with(upstream, needle, 0, Some(cut_reply))
    }

    fn start_with(
        upstream: u16,
        needle: &str,
        skip: u64,
        cut_reply: Option<fn(&[u8]) -> bool>,
    ) -> ReplyCutter {
        use std::sync::Arc;
        use std::sync::atomic::AtomicBool;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let cuts = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(AtomicU64::new(0));
        let needle = needle.as_bytes().to_vec();
        let (cuts2, stop2) = (cuts.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let cut = Arc::new(AtomicBool::new(false));
                let armed = Arc::new(AtomicBool::new(false));
                let (armed_a, armed_b) = (armed.clone(), armed.clone());
                let (prefix_a, prefix_b) = (cut_reply, cut_reply);
                let cuts_b = cuts2.clone();
                let (c_in, s_out) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                let (cut_a, needle, seen, cuts) =
                    (cut.clone(), needle.clone(), seen.clone(), cuts2.clone());
                // Client → server: watches for the request to cut after.
                std::thread::spawn(move || {
                    relay(c_in, s_out, |chunk| {
                        let hit = chunk.windows(needle.len()).any(|w| w == needle.as_slice());
                        if hit && prefix_a.is_some() {
                            if cuts.load(Ordering::SeqCst) == 0 {
                                armed_a.store(true, Ordering::SeqCst);
                            }
                            return Relay::Pass;
                        }
                        if hit && seen.fetch_add(1, Ordering::SeqCst) == skip {
                            cut_a.store(true, Ordering::SeqCst);
                            cuts.fetch_add(1, Ordering::SeqCst);
                            return Relay::Last;
                        }
                        Relay::Pass
                    })
                });
                // Server → client: relays replies unless the connection is cut.
                std::thread::spawn(move || {
                    relay(server, client, |chunk| {
                        if let Some(cut_reply) = prefix_b {
                            if armed_b.swap(false, Ordering::SeqCst) && cut_reply(chunk) {
                                cuts_b.fetch_add(1, Ordering::SeqCst);
                                return Relay::Drop;
                            }
                            return Relay::Pass;
                        }
                        if cut.load(Ordering::SeqCst) {
                            Relay::Drop
                        } else {
                            Relay::Pass
                        }
                    })
                });
            }
        });
        ReplyCutter { port, cuts, stop }
    }

    /// `redis://127.0.0.1:PORT` of the proxy.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// How many connections were cut (0 or 1).
    pub fn cuts(&self) -> u64 {
        self.cuts.load(Ordering::SeqCst)
    }
}

/// What [`relay`] does with a chunk.
enum Relay {
    Pass,
    /// Forward it, give the peer a moment to act on it, then cut.
    Last,
    /// Cut without forwarding it.
    Drop,
}

/// Copies `from` to `to` chunk by chunk as `decide` says, then shuts both
/// sockets down.
fn relay(mut from: TcpStream, mut to: TcpStream, mut decide: impl FnMut(&[u8]) -> Relay) {
    use std::io::Write;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        match decide(&buf[..n]) {
            Relay::Pass => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Relay::Last => {
                let _ = to.write_all(&buf[..n]);
                std::thread::sleep(Duration::from_millis(100));
                break;
            }
            Relay::Drop => break,
        }
    }
    let _ = from.shutdown(std::net::Shutdown::Both);
    let _ = to.shutdown(std::net::Shutdown::Both);
}

impl Drop for ReplyCutter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}
