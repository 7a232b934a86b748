//! Hostile clients against a real `distsched node --http` process: bodies
//! built to exhaust memory, and idle connections built to exhaust the
//! handlers (slowloris). The node's memory stays bounded, `/health` and
//! `/ready` keep answering through the probe lane, and the API serves
//! again once the attack ends.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use distsched::internal::http::{BACKLOG, HANDLERS, PROBE_PENDING};
use support::{NodeProc, RedisServer, free_port, report, unique_ns, wait_until};

const TOKEN: &str = "h0stile-t0ken";
const WAIT: Duration = Duration::from_secs(20);
/// How long the memory attack streams.
const ATTACK: Duration = Duration::from_secs(3);
/// RSS the node must stay under during the memory attack.
const RSS_LIMIT: u64 = 64 << 20;
/// The most a probe may take while the handlers are held.
const PROBE_LIMIT: Duration = Duration::from_secs(1);

/// One request on its own connection: the status and the time to the
/// whole response.
fn request(port: u16, raw: &str) -> std::io::Result<(u16, Duration)> {
    let start = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    stream.write_all(raw.as_bytes())?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out)?;
    let took = start.elapsed();
    let text = String::from_utf8_lossy(&out);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad response {text:?}")))?;
    Ok((status, took))
}

fn get(port: u16, path: &str, token: Option<&str>) -> std::io::Result<(u16, Duration)> {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    request(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n"),
    )
}

/// The resident set size of `pid` (`VmRSS` in `/proc/PID/status`).
fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Open file descriptors of `pid` (its sockets among them).
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// The review's attacks on memory, before any token check: a chunk of
/// `ffffffffffffffff` bytes after a 1-byte one, an endless chunk
/// extension, an endless trailer. The stream that follows never ends.
const PREFIXES: [&str; 3] = [
    "1\r\na\r\nffffffffffffffff\r\n",
    "1;ext=",
    "0\r\nX-Trailer: ",
];

/// Streams attack `kind` as fast as the node takes it, reconnecting
/// whenever it closes, until `stop`; counts the bytes sent.
fn stream_attack(port: u16, kind: usize, stop: &AtomicBool, sent: &AtomicU64) {
    let block = vec![b'f'; 64 << 10];
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
            continue;
        };
        let _ = s.set_write_timeout(Some(Duration::from_millis(500)));
        let head = format!(
            "POST /tasks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{}",
            PREFIXES[kind % PREFIXES.len()]
        );
        if s.write_all(head.as_bytes()).is_err() {
            continue;
        }
        while !stop.load(Ordering::Relaxed) {
            match s.write(&block) {
                Ok(n) => {
                    sent.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(_) => break,
            }
        }
    }
}

/// Keeps `count` connections open that send at most a partial head, and
/// opens a new one whenever the node closes one, until `stop`.
fn slowloris(port: u16, count: usize, stop: &AtomicBool, opened: &AtomicU64) {
    let open = |i: usize| -> Option<TcpStream> {
        let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        // Half of them idle; half send the start of a probe, never its end.
        if i % 2 == 1 {
            let _ = s.write_all(b"GET /health HTTP/1.1\r\nX-Slow: ");
        }
        s.set_nonblocking(true).ok()?;
        opened.fetch_add(1, Ordering::Relaxed);
        Some(s)
    };
    let mut conns: Vec<Option<TcpStream>> = (0..count).map(open).collect();
    let mut scratch = [0u8; 1024];
    while !stop.load(Ordering::Relaxed) {
        for (i, slot) in conns.iter_mut().enumerate() {
            let closed = match slot {
                None => true,
                Some(s) => match s.read(&mut scratch) {
                    Ok(0) => true,
                    Ok(_) => false,
                    Err(e) => e.kind() != ErrorKind::WouldBlock,
                },
            };
            if closed {
                *slot = open(i);
            }
        }
        // The pace of a slowloris: look again every 50 ms.
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn hostile_clients_leave_the_node_bounded_and_probed() {
    let redis = RedisServer::start();
    let port = free_port();
    let port_text = port.to_string();
    let mut node = NodeProc::start(
        &redis.url(),
        &unique_ns("hostile"),
        "hostile",
        &["--http", &port_text, "--http-token", TOKEN],
    );
    let pid = node.pid();
    wait_until(WAIT, "/ready answers 200", || {
        get(port, "/ready", None).is_ok_and(|(s, _)| s == 200)
    });
    let rss_before = rss(pid).expect("read VmRSS");

    // (a) Memory: 6 clients stream bodies built to grow buffers, as fast
    // as the node reads them, while RSS is sampled every 50 ms.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let attackers: Vec<_> = (0..6)
        .map(|kind| {
            let (stop, sent) = (stop.clone(), sent.clone());
            thread::spawn(move || stream_attack(port, kind, &stop, &sent))
        })
        .collect();
    let (start, mut peak) = (Instant::now(), rss_before);
    while start.elapsed() < ATTACK {
        peak = peak.max(rss(pid).expect("the node is alive: VmRSS"));
        assert!(
            peak < RSS_LIMIT,
            "RSS {} MB over {} MB",
            peak >> 20,
            RSS_LIMIT >> 20
        );
        thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        a.join().expect("attacker thread");
    }
    let streamed = sent.load(Ordering::Relaxed);
    assert!(node.is_running(), "the node survived the memory attack");
    assert!(
        streamed > 10 << 20,
        "the attack streamed only {streamed} bytes"
    );

    // (b) Slowloris: more idle connections than the handlers and their
    // queue hold (HANDLERS + BACKLOG + some), kept open (reopened when the
    // node closes one). The node holds them all before the probes go.
    let idle = HANDLERS + BACKLOG + PROBE_PENDING / 4;
    let fds_before = fds(pid);
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicU64::new(0));
    let loris: Vec<_> = (0..4)
        .map(|_| {
            let (stop, opened) = (stop.clone(), opened.clone());
            thread::spawn(move || slowloris(port, idle / 4, &stop, &opened))
        })
        .collect();
    wait_until(WAIT, "the node holds the idle connections", || {
        fds(pid) >= fds_before + HANDLERS + PROBE_PENDING
    });
    let mut worst = Duration::ZERO;
    for round in 0..5 {
        for path in ["/health", "/ready"] {
            let (status, took) =
                get(port, path, None).unwrap_or_else(|e| panic!("{path} (round {round}): {e}"));
            assert_eq!(status, 200, "{path} under slowloris (round {round})");
            assert!(
                took < PROBE_LIMIT,
                "{path} took {took:?} under slowloris (round {round})"
            );
            worst = worst.max(took);
        }
    }
    // What the node held at the end of the attack, for the report.
    let held_fds = fds(pid);
    stop.store(true, Ordering::Relaxed);
    for l in loris {
        l.join().expect("slowloris thread");
    }

    // (c) Alive, and serving the API again once the attack ends.
    let recovered = wait_until(WAIT, "an authorized GET /stats answers 200", || {
        get(port, "/stats", Some(TOKEN)).is_ok_and(|(s, _)| s == 200)
    });
    assert!(node.is_running(), "the node is still running");
    assert_eq!(
        get(port, "/stats", None).unwrap().0,
        401,
        "the token still counts"
    );
    report(&format!(
        "http_hostile: peak RSS {:.1} MB (before {:.1} MB, {} MB streamed); \
         {} slowloris connections opened, node fds {held_fds}; worst probe {:.1} ms; \
         /stats again after {:.0} ms",
        peak as f64 / 1048576.0,
        rss_before as f64 / 1048576.0,
        streamed >> 20,
        opened.load(Ordering::Relaxed),
        worst.as_secs_f64() * 1000.0,
        recovered.as_secs_f64() * 1000.0,
    ));
}
