//! Test harness shared by the integration tests: a private `redis-server`
//! per test ([`RedisServer`]), real `distsched node` processes
//! ([`NodeProc`]), one-shot CLI runs ([`cli`], [`run_bin`]) and a polling
//! [`wait_until`].
//!
//! Nothing here talks to a shared Redis: every server gets a free port (never
//! 6379), its own directory, and is killed when its handle drops. Files go to
//! Cargo's per-target temp dir and are removed on success; when a test
//! panics they are kept, and node logs are printed, to debug the failure.
//!
//! One module per helper: `redis_server.rs`, `node.rs`, `cli.rs`, `probe.rs`,
//! `leader_log.rs`, `cluster.rs`, `stubs.rs`, `http.rs`, `browser.rs` (headless
//! Chromium over WebDriver); this file re-exports them
//! and holds the shared waits, ports, temp dirs and timings.
#![allow(dead_code)]

mod browser;
mod cli;
mod cluster;
mod http;
mod leader_log;
mod node;
mod probe;
mod redis_server;
pub mod sentinel;
mod stubs;

// Each test crate uses a part of the harness: re-exports it leaves
// unused are not a fault.
#[allow(unused_imports)]
pub use {
    browser::*, cli::*, cluster::*, http::*, leader_log::*, node::*, probe::*, redis_server::*,
    sentinel::*, stubs::*,
};

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_distsched");

/// Fast timings for cluster tests: lease 1 s renewed every 250 ms, heartbeat
/// every 250 ms with a 1.5 s timeout, recoverer tick every 200 ms.
pub const FAST: &[&str] = &[
    "--lease-ttl",
    "1s",
    "--renew-interval",
    "250ms",
    "--heartbeat-interval",
    "250ms",
    "--heartbeat-timeout",
    "1500ms",
    "--recover-interval",
    "200ms",
];
pub const LEASE_TTL: Duration = Duration::from_millis(1000);
pub const RENEW_INTERVAL: Duration = Duration::from_millis(250);
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(250);
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_millis(1500);
pub const RECOVER_INTERVAL: Duration = Duration::from_millis(200);

/// Polling period of [`wait_until`] and of the sampling loops.
pub const POLL: Duration = Duration::from_millis(20);

static COUNTER: AtomicU64 = AtomicU64::new(0);

pub fn unique_suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{:08x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// Prints a summary line (`chaos <name>: ...`) that shows in the test
/// output even when the test passes: it writes to the process's stderr
/// directly, past the harness's capture of `println!`/`eprintln!`.
pub fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// A namespace no other test uses: `<label>-<pid>-<n>-<nanos>`.
pub fn unique_ns(label: &str) -> String {
    format!("{label}-{}", unique_suffix())
}

/// Polls `cond` every [`POLL`] until it is true; panics with `what` when
/// `timeout` passes first. Returns how long it took.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if cond() {
            return start.elapsed();
        }
        if start.elapsed() >= timeout {
            panic!("timed out after {timeout:?} waiting until {what}");
        }
        std::thread::sleep(POLL);
    }
}

/// Like [`wait_until`] for a condition that yields a value.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let mut found = None;
    wait_until(timeout, what, || {
        found = f();
        found.is_some()
    });
    found.expect("set when the wait succeeded")
}

/// A directory under Cargo's target temp dir, removed on drop unless the
/// thread is panicking (then it is kept and its path printed).
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("distsched-tests")
            .join(format!("{label}-{}", unique_suffix()));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("(kept {} for inspection)", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A port nothing listens on right now (bound once by us, then freed).
/// Never 6379, the shared server's port.
pub fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        if port != 6379 {
            return port;
        }
    }
}

/// A port where a connection is refused at once (checked), for "Redis is
/// unreachable" tests.
pub fn closed_port() -> u16 {
    loop {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}").parse().expect("address");
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            return port;
        }
    }
}

/// The `q`-quantile (0..=1) of `values` by nearest rank; 0 when empty.
pub fn quantile(values: &[i64], q: f64) -> i64 {
    if values.is_empty() {
        return 0;
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

// ------------------------------------------------------------ task helpers

/// True when `pid` no longer runs: gone, or a zombie nobody reaped yet (in a
/// container, orphans go to a PID 1 that may never reap them).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            matches!(state, Some('Z' | 'X'))
        }
    }
}

/// Unix time now, ms (this host's clock, which the test Redis shares).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
