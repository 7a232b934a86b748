//! Test harness shared by the integration tests: a private `redis-server`
//! per test ([`RedisServer`]), real `distsched node` processes
//! ([`NodeProc`]), one-shot CLI runs ([`cli`], [`run_bin`]) and a polling
//! [`wait_until`].
//!
//! Nothing here talks to a shared Redis: every server gets a free port (never
//! 6379), its own directory, and is killed when its handle drops. Files go to
//! Cargo's per-target temp dir and are removed on success; when a test
//! panics they are kept, and node logs are printed, to debug the failure.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use distsched::internal::Keys;

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

fn unique_suffix() -> String {
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

/// A private `redis-server` on a free port, killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    aof: bool,
    dir: TempDir,
}

impl RedisServer {
    /// A server without persistence (`--save "" --appendonly no`).
    pub fn start() -> RedisServer {
        RedisServer::launch(false)
    }

    /// A server with an append-only file synced on every write, so a
    /// restart keeps every acknowledged write.
    pub fn with_aof() -> RedisServer {
        RedisServer::launch(true)
    }

    fn launch(aof: bool) -> RedisServer {
        let dir = TempDir::new("redis");
        let mut last_error = String::new();
        for _ in 0..20 {
            let port = free_port();
            match spawn_redis(port, dir.path(), aof) {
                Ok(child) => {
                    return RedisServer {
                        child: Some(child),
                        port,
                        aof,
                        dir,
                    };
                }
                // Most likely another process took the port in between.
                Err(e) => last_error = e,
            }
        }
        panic!("could not start redis-server: {last_error}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("redis-server is running").id()
    }

    /// A new connection (2 s timeouts).
    pub fn client(&self) -> redis::Connection {
        let client = redis::Client::open(self.url()).expect("redis url");
        let conn = client
            .get_connection_with_timeout(Duration::from_secs(2))
            .expect("connect to the test redis-server");
        conn.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("read timeout");
        conn.set_write_timeout(Some(Duration::from_secs(2)))
            .expect("write timeout");
        conn
    }

    /// Kills the server (SIGKILL, like a crash) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match spawn_redis(self.port, self.dir.path(), self.aof) {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                Err(e) if Instant::now() >= deadline => {
                    panic!("could not restart redis-server on port {}: {e}", self.port)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Spawns `redis-server` on `port` and waits until it answers PING. Checks
/// that the answering server is the one spawned (by pid), so a server of
/// another test that holds the port is never mistaken for ours.
fn spawn_redis(port: u16, dir: &Path, aof: bool) -> Result<Child, String> {
    let log = File::options()
        .create(true)
        .append(true)
        .open(dir.join("redis.log"))
        .map_err(|e| format!("redis log: {e}"))?;
    let mut cmd = Command::new("redis-server");
    cmd.arg("--port")
        .arg(port.to_string())
        .arg("--bind")
        .arg("127.0.0.1")
        .arg("--save")
        .arg("")
        .arg("--dir")
        .arg(dir);
    if aof {
        cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
    } else {
        cmd.args(["--appendonly", "no"]);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("spawn redis-server (is it installed?): {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let url = format!("redis://127.0.0.1:{port}");
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("redis-server on port {port} exited: {status}"));
        }
        if let Some(pid) = redis_pid(&url) {
            if pid == child.id() {
                return Ok(child);
            }
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("port {port} is held by another redis-server"));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("redis-server on port {port} never answered PING"));
        }
        std::thread::sleep(POLL);
    }
}

/// The `process_id` of the server answering at `url`, if it answers.
fn redis_pid(url: &str) -> Option<u32> {
    let client = redis::Client::open(url).ok()?;
    let mut conn = client
        .get_connection_with_timeout(Duration::from_millis(500))
        .ok()?;
    conn.set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    let pong: String = redis::cmd("PING").query(&mut conn).ok()?;
    if pong != "PONG" {
        return None;
    }
    let info: String = redis::cmd("INFO").arg("server").query(&mut conn).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|p| p.trim().parse().ok())
}

/// Removes every `DISTSCHED_*` variable and `RUST_LOG` from what `cmd`
/// inherits, so the developer's environment cannot change a test.
fn clean_env(cmd: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("DISTSCHED_") {
            cmd.env_remove(name);
        }
    }
    cmd.env_remove("RUST_LOG");
}

/// Sends `signal` (`KILL`, `TERM`, `INT`, `STOP`, `CONT`) to `pid` with `kill(1)`.
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run kill(1)");
    assert!(status.success(), "kill -{signal} {pid} failed: {status}");
}

/// A running `distsched node` process; SIGCONTed and killed on drop.
pub struct NodeProc {
    child: Child,
    id: String,
    log_path: PathBuf,
    exit: Option<ExitStatus>,
    _dir: TempDir,
}

impl NodeProc {
    /// Starts `distsched node --id ID --redis URL --ns NS` with the [`FAST`]
    /// timings followed by `extra` (a later flag overrides an earlier one).
    pub fn start(url: &str, ns: &str, id: &str, extra: &[&str]) -> NodeProc {
        NodeProc::start_with_env(url, ns, id, extra, &[])
    }

    /// [`NodeProc::start`] with `env` added to the node's clean environment.
    pub fn start_with_env(
        url: &str,
        ns: &str,
        id: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> NodeProc {
        let dir = TempDir::new(&format!("node-{id}"));
        let log_path = dir.join("node.log");
        let log = File::create(&log_path).expect("create node log");
        let mut cmd = Command::new(BIN);
        clean_env(&mut cmd);
        let child = cmd
            .arg("node")
            .args(["--id", id, "--redis", url, "--ns", ns])
            .args(FAST)
            .args(extra)
            .env("RUST_LOG", "warn,distsched=info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn distsched node");
        NodeProc {
            child,
            id: id.to_string(),
            log_path,
            exit: None,
            _dir: dir,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill9(&self) {
        send_signal(self.pid(), "KILL");
    }

    /// Sends SIGSTOP and returns once every thread of the process is
    /// stopped: kill(1) returns when the signal is sent, and a thread
    /// running on another core may still act for a moment after that.
    pub fn sigstop(&self) {
        send_signal(self.pid(), "STOP");
        let tasks = format!("/proc/{}/task", self.pid());
        wait_until(Duration::from_secs(5), "every thread stopped", || {
            std::fs::read_dir(&tasks)
                .map(|dir| {
                    dir.flatten().all(|t| {
                        std::fs::read_to_string(t.path().join("stat"))
                            .ok()
                            .and_then(|stat| {
                                stat.rsplit_once(") ")
                                    .and_then(|(_, rest)| rest.chars().next())
                            })
                            .is_none_or(|state| matches!(state, 'T' | 't' | 'Z' | 'X'))
                    })
                })
                .unwrap_or(true)
        });
    }

    pub fn sigcont(&self) {
        send_signal(self.pid(), "CONT");
    }

    pub fn sigterm(&self) {
        send_signal(self.pid(), "TERM");
    }

    pub fn sigint(&self) {
        send_signal(self.pid(), "INT");
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().expect("try_wait");
        }
        self.exit.is_none()
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while self.is_running() {
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.exit
    }

    /// Everything the process wrote so far (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        if self.is_running() {
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(self.pid().to_string())
                .stderr(Stdio::null())
                .status();
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("----- log of node {} -----\n{}", self.id, self.log());
        }
    }
}

/// Runs the binary once with `args` (nothing else added), `env` on top of a
/// clean environment; kills it and panics if it runs longer than 20 s.
pub fn run_bin(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    clean_env(&mut cmd);
    cmd.args(args).envs(env.iter().copied());
    run_with_timeout(cmd, Duration::from_secs(20))
}

/// Runs `distsched ARGS --redis URL --ns NS` once, e.g. `leader --json`.
pub fn cli(url: &str, ns: &str, args: &[&str]) -> Output {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--redis", url, "--ns", ns]);
    run_bin(&all, &[])
}

/// Runs `cmd` with captured output; kills it and panics after `timeout`.
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn distsched");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still running after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// Stdout of a CLI run parsed as JSON; panics with the output otherwise.
pub fn json_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Asserts `out` failed with `code` and exactly one stderr line starting
/// `distsched: `, without a panic; returns that line.
pub fn assert_one_line_error(out: &Output, code: i32, context: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{context}: exit status {:?}, stderr: {stderr}",
        out.status
    );
    assert!(!stderr.contains("panicked"), "{context}: panic: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{context}: expected exactly one stderr line, got {}: {stderr:?}",
        lines.len()
    );
    assert!(
        lines[0].starts_with("distsched: "),
        "{context}: stderr line does not start with `distsched: `: {stderr:?}"
    );
    lines[0].to_string()
}

/// One Redis view of a namespace, with typed getters for the keys the tests
/// sample. Reconnects after an error (a restarted server, say).
pub struct Probe {
    url: String,
    pub keys: Keys,
    conn: Option<redis::Connection>,
}

impl Probe {
    pub fn new(url: &str, ns: &str) -> Probe {
        Probe {
            url: url.to_string(),
            keys: Keys::new(ns),
            conn: None,
        }
    }

    /// Runs `f` on the connection; `None` (and a reconnect next time) on
    /// any error.
    pub fn try_run<T>(
        &mut self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Option<T> {
        if self.conn.is_none() {
            let client = redis::Client::open(self.url.as_str()).ok()?;
            let conn = client
                .get_connection_with_timeout(Duration::from_secs(1))
                .ok()?;
            conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
            self.conn = Some(conn);
        }
        let result = f(self.conn.as_mut().expect("connected"));
        if result.is_err() {
            self.conn = None;
        }
        result.ok()
    }

    /// Like [`Probe::try_run`], retrying once on a new connection (the
    /// server may have been restarted since the last call); panics if that
    /// fails too. Only for idempotent calls.
    pub fn run<T>(
        &mut self,
        mut f: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> T {
        let mut error = None;
        for _ in 0..2 {
            let value = self.try_run(|c| {
                f(c).inspect_err(|e| {
                    error = Some(e.to_string());
                })
            });
            if let Some(value) = value {
                return value;
            }
        }
        panic!("redis call failed: {error:?}")
    }

    /// `{ns}:leader`: the lease holder.
    pub fn leader(&mut self) -> Option<String> {
        let key = self.keys.leader();
        self.run(|c| redis::cmd("GET").arg(&key).query(c))
    }

    /// `{ns}:epoch`: the fencing epoch.
    pub fn epoch(&mut self) -> Option<u64> {
        let key = self.keys.epoch();
        self.run(|c| redis::cmd("GET").arg(&key).query(c))
    }

    /// Leader, epoch and the `leader:status` hash, read atomically.
    pub fn snapshot(&mut self) -> Snapshot {
        let keys = self.keys.clone();
        let (leader, epoch, status, time): SnapshotReply = self.run(|c| {
            redis::pipe()
                .atomic()
                .get(keys.leader())
                .get(keys.epoch())
                .hgetall(keys.leader_status())
                .cmd("TIME")
                .query(c)
        });
        Snapshot {
            leader,
            epoch,
            status,
            now_ms: time.0 * 1000 + time.1 / 1000,
        }
    }

    /// `{ns}:fence:rejected`.
    pub fn fence_rejected(&mut self) -> u64 {
        let key = self.keys.fence_rejected();
        let v: Option<u64> = self.run(|c| redis::cmd("GET").arg(&key).query(c));
        v.unwrap_or(0)
    }

    /// Members of the `{ns}:nodes` index.
    pub fn indexed_nodes(&mut self) -> Vec<String> {
        let key = self.keys.nodes();
        self.run(|c| redis::cmd("ZRANGE").arg(&key).arg(0).arg(-1).query(c))
    }

    /// True if `{ns}:node:{id}` exists.
    pub fn node_entry_exists(&mut self, id: &str) -> bool {
        let key = self.keys.node(id);
        self.run(|c| redis::cmd("EXISTS").arg(&key).query::<i64>(c)) == 1
    }
}

type SnapshotReply = (
    Option<String>,
    Option<u64>,
    BTreeMap<String, String>,
    (u64, u64),
);

/// Leader state read in one MULTI.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub leader: Option<String>,
    pub epoch: Option<u64>,
    pub status: BTreeMap<String, String>,
    /// Redis `TIME`, ms.
    pub now_ms: u64,
}

impl Snapshot {
    fn num(&self, field: &str) -> Option<u64> {
        self.status.get(field).and_then(|v| v.parse().ok())
    }

    /// `(tick_node, tick_epoch)` of the last fenced leader write.
    pub fn tick(&self) -> Option<(String, u64)> {
        Some((
            self.status.get("tick_node")?.clone(),
            self.num("tick_epoch")?,
        ))
    }

    pub fn tick_ms(&self) -> Option<u64> {
        self.num("tick_ms")
    }

    /// `(node, epoch)` of the current term as recorded on election.
    pub fn term(&self) -> Option<(String, u64)> {
        Some((self.status.get("node")?.clone(), self.num("epoch")?))
    }
}

/// A leadership event parsed from a node log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaderEvent {
    /// `leader: became leader (node X epoch N)`
    Became { node: String, epoch: u64 },
    /// `leader: stepped down (node X epoch N): why`
    SteppedDown { node: String, epoch: u64 },
    /// `leader: released the lease (epoch N)`
    Released { epoch: u64 },
}

/// The leadership events of a node log, in order.
pub fn leader_events(log: &str) -> Vec<LeaderEvent> {
    fn node_epoch(rest: &str) -> Option<(String, u64)> {
        let inner = rest.strip_prefix("(node ")?;
        let (node, rest) = inner.split_once(" epoch ")?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        Some((node.to_string(), digits.parse().ok()?))
    }
    let mut events = Vec::new();
    for line in log.lines() {
        if let Some((_, rest)) = line.split_once("leader: became leader ") {
            if let Some((node, epoch)) = node_epoch(rest) {
                events.push(LeaderEvent::Became { node, epoch });
            }
        } else if let Some((_, rest)) = line.split_once("leader: stepped down ") {
            if let Some((node, epoch)) = node_epoch(rest) {
                events.push(LeaderEvent::SteppedDown { node, epoch });
            }
        } else if let Some((_, rest)) = line.split_once("leader: released the lease (epoch ") {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(epoch) = digits.parse() {
                events.push(LeaderEvent::Released { epoch });
            }
        }
    }
    events
}

/// Epochs at which a log's node claimed leadership.
pub fn claimed_epochs(log: &str) -> Vec<u64> {
    leader_events(log)
        .into_iter()
        .filter_map(|e| match e {
            LeaderEvent::Became { epoch, .. } => Some(epoch),
            _ => None,
        })
        .collect()
}

/// Asserts that no epoch is claimed by two nodes, and that each node's
/// claims are strictly increasing; returns epoch → node.
pub fn assert_claims_disjoint(nodes: &[&NodeProc]) -> BTreeMap<u64, String> {
    let mut owners: BTreeMap<u64, String> = BTreeMap::new();
    for node in nodes {
        let epochs = claimed_epochs(&node.log());
        assert!(
            epochs.windows(2).all(|w| w[0] < w[1]),
            "node {} claimed non-increasing epochs {epochs:?}",
            node.id()
        );
        for epoch in epochs {
            if let Some(other) = owners.insert(epoch, node.id().to_string()) {
                panic!(
                    "epoch {epoch} claimed by both {other} and {} (two leaders)",
                    node.id()
                );
            }
        }
    }
    owners
}

/// Waits until some node leads and has done a fenced write (a recoverer
/// tick) in its term; returns `(leader, epoch)`.
pub fn wait_for_leader(probe: &mut Probe, timeout: Duration) -> (String, u64) {
    wait_for(timeout, "a leader has been elected and ticked", || {
        let s = probe.snapshot();
        let leader = s.leader.clone()?;
        let epoch = s.epoch?;
        (s.tick() == Some((leader.clone(), epoch))).then_some((leader, epoch))
    })
}

// ----- Cron helpers (tests/cron.rs, tests/cron_chaos.rs) -----

/// One task of a job as stored in its `task:{id}` hash, read raw so that
/// fields the [`distsched::Task`] view leaves out (`slot_ms`) are seen too.
/// Times are Redis-clock Unix ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobTask {
    pub id: String,
    /// The firing's slot; `None` for a task made by `job trigger`.
    pub slot_ms: Option<i64>,
    pub status: String,
    pub created_ms: i64,
    pub started_ms: Option<i64>,
    pub ended_ms: Option<i64>,
    pub payload: String,
    pub worker: Option<String>,
}

impl JobTask {
    pub fn is_active(&self) -> bool {
        matches!(self.status.as_str(), "pending" | "running" | "retrying")
    }
}

/// Reads every listed task of one job in a single script run, so a sample
/// is one consistent instant of Redis (test-only Lua, not a distsched
/// script).
const JOB_TASKS_LUA: &str = r"
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local f = redis.call('HMGET', ARGV[1] .. id, 'job', 'slot_ms', 'status',
    'created_ms', 'started_ms', 'ended_ms', 'payload', 'worker')
  if f[1] == ARGV[2] then
    out[#out + 1] = {id, f[2] or '', f[3] or '', f[4] or '', f[5] or '',
      f[6] or '', f[7] or '', f[8] or ''}
  end
end
return out
";

impl Probe {
    /// Redis `TIME`, Unix ms (the clock every task time is taken from).
    pub fn time_ms(&mut self) -> i64 {
        let (s, us): (i64, i64) = self.run(|c| redis::cmd("TIME").query(c));
        s * 1000 + us / 1000
    }

    /// Every task of job `job` still in the listing index, read atomically,
    /// ordered by slot (triggered tasks, without a slot, first) then
    /// creation.
    pub fn job_tasks(&mut self, job: &str) -> Vec<JobTask> {
        let script = redis::Script::new(JOB_TASKS_LUA);
        let (index, prefix) = (self.keys.tasks(), self.keys.task_prefix());
        let rows: Vec<Vec<String>> =
            self.run(|c| script.key(&index).arg(&prefix).arg(job).invoke(c));
        let opt = |s: &str| s.parse::<i64>().ok();
        let mut tasks: Vec<JobTask> = rows
            .into_iter()
            .map(|r| JobTask {
                id: r[0].clone(),
                slot_ms: opt(&r[1]),
                status: r[2].clone(),
                created_ms: opt(&r[3]).unwrap_or(0),
                started_ms: opt(&r[4]),
                ended_ms: opt(&r[5]),
                payload: r[6].clone(),
                worker: (!r[7].is_empty()).then(|| r[7].clone()),
            })
            .collect();
        tasks.sort_by_key(|t| (t.slot_ms, t.created_ms));
        tasks
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

/// A node [`distsched::Config`] for an in-process node (`Node::builder`)
/// with the [`FAST`] timings and a 2 s shutdown grace.
pub fn fast_config(url: &str, ns: &str, id: &str) -> distsched::Config {
    distsched::Config {
        redis_url: url.to_string(),
        namespace: ns.to_string(),
        node_id: id.to_string(),
        lease_ttl: LEASE_TTL,
        renew_interval: RENEW_INTERVAL,
        heartbeat_interval: HEARTBEAT_INTERVAL,
        heartbeat_timeout: HEARTBEAT_TIMEOUT,
        recover_interval: RECOVER_INTERVAL,
        shutdown_grace: Duration::from_secs(2),
        ..distsched::Config::default()
    }
}

/// A library client for `ns` on `url`.
pub fn client(url: &str, ns: &str) -> distsched::Client {
    distsched::Client::open(url, ns).expect("open a client")
}

/// Waits until every node in `ids` is live in the registry and some node
/// leads and has ticked; returns the leader's id.
pub fn wait_for_cluster(url: &str, ns: &str, ids: &[&str], timeout: Duration) -> String {
    let mut probe = Probe::new(url, ns);
    let (leader, _) = wait_for_leader(&mut probe, timeout);
    let mut client = client(url, ns);
    wait_until(timeout, &format!("nodes {ids:?} are registered"), || {
        let live: Vec<String> = client
            .nodes()
            .map(|ns| ns.into_iter().map(|n| n.info.id).collect())
            .unwrap_or_default();
        ids.iter().all(|id| live.iter().any(|l| l == id))
    });
    leader
}

/// Waits until every task in `ids` has ended (success, failed or
/// cancelled) and returns them, in the order of `ids`. Polls the status
/// fields in one pipeline per round, so it suits thousands of tasks.
pub fn wait_ended(
    client: &mut distsched::Client,
    probe: &mut Probe,
    ids: &[String],
    timeout: Duration,
) -> Vec<distsched::Task> {
    let start = Instant::now();
    loop {
        let last = probe.statuses(ids);
        let open = last
            .iter()
            .filter(|s| !matches!(s.as_deref(), Some("success" | "failed" | "cancelled")))
            .count();
        if open == 0 {
            break;
        }
        if start.elapsed() >= timeout {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for s in &last {
                *counts
                    .entry(s.clone().unwrap_or_else(|| "<missing>".into()))
                    .or_default() += 1;
            }
            panic!(
                "timed out after {timeout:?} waiting for {} tasks to end; statuses: {counts:?}",
                ids.len()
            );
        }
        std::thread::sleep(POLL);
    }
    ids.iter()
        .map(|id| client.task(id).unwrap_or_else(|e| panic!("task {id}: {e}")))
        .collect()
}

/// Waits until task `id` satisfies `cond`; returns it.
pub fn wait_task(
    client: &mut distsched::Client,
    id: &str,
    timeout: Duration,
    what: &str,
    mut cond: impl FnMut(&distsched::Task) -> bool,
) -> distsched::Task {
    wait_for(timeout, &format!("task {id} {what}"), || {
        client.task(id).ok().filter(|t| cond(t))
    })
}

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

impl Probe {
    /// The `status` field of each task in `ids` (`None`: no such record),
    /// read in one pipeline.
    pub fn statuses(&mut self, ids: &[String]) -> Vec<Option<String>> {
        let keys = self.keys.clone();
        self.run(|c| {
            let mut pipe = redis::pipe();
            for id in ids {
                pipe.hget(keys.task(id), "status");
            }
            pipe.query(c)
        })
    }

    /// `ZCARD key`.
    pub fn zcard(&mut self, key: &str) -> u64 {
        self.run(|c| redis::cmd("ZCARD").arg(key).query(c))
    }

    /// `SCARD key`.
    pub fn scard(&mut self, key: &str) -> u64 {
        self.run(|c| redis::cmd("SCARD").arg(key).query(c))
    }

    /// `LLEN key`.
    pub fn llen(&mut self, key: &str) -> u64 {
        self.run(|c| redis::cmd("LLEN").arg(key).query(c))
    }

    /// Tasks waiting in `pending`.
    pub fn pending(&mut self) -> u64 {
        let key = self.keys.pending();
        self.zcard(&key)
    }

    /// Tasks dispatched and not ended (`running`: queued or running).
    pub fn in_flight(&mut self) -> u64 {
        let key = self.keys.running();
        self.zcard(&key)
    }

    /// Tasks worker `node` holds (queued + running).
    pub fn held(&mut self, node: &str) -> u64 {
        let key = self.keys.held(node);
        self.scard(&key)
    }

    /// Every task id in the listing index.
    pub fn task_count(&mut self) -> u64 {
        let key = self.keys.tasks();
        self.zcard(&key)
    }
}

/// Logs every command to SLOWLOG from now on (kept up to 100,000 entries)
/// and clears SLOWLOG and `INFO commandstats`, to count a stretch of work.
pub fn reset_command_stats(conn: &mut redis::Connection) {
    redis::pipe()
        .cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-log-slower-than")
        .arg(0)
        .ignore()
        .cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-max-len")
        .arg(100_000)
        .ignore()
        .cmd("SLOWLOG")
        .arg("RESET")
        .ignore()
        .cmd("CONFIG")
        .arg("RESETSTAT")
        .ignore()
        .query::<()>(conn)
        .expect("reset stats");
}

/// `INFO commandstats` calls and usec of command `name` (lower case,
/// commands run inside scripts included).
pub fn command_stats(conn: &mut redis::Connection, name: &str) -> (u64, u64) {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(conn)
        .expect("INFO");
    let prefix = format!("cmdstat_{name}:");
    let line = info
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or("");
    let field = |key: &str| {
        line.split(',')
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("calls"), field("usec"))
}

/// The script SHA and µs of every EVALSHA in SLOWLOG (see
/// [`reset_command_stats`]), oldest first.
pub fn slowlog_scripts(conn: &mut redis::Connection) -> Vec<(String, u64)> {
    let log: Vec<Vec<redis::Value>> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(-1)
        .query(conn)
        .expect("SLOWLOG GET");
    let mut scripts: Vec<(String, u64)> = log
        .into_iter()
        .filter_map(|entry| {
            let usec: u64 = redis::from_redis_value(entry.get(2)?.clone()).ok()?;
            let args: Vec<String> = redis::from_redis_value(entry.get(3)?.clone()).ok()?;
            let evalsha = args.first()?.eq_ignore_ascii_case("evalsha");
            evalsha.then(|| (args.get(1).cloned().unwrap_or_default(), usec))
        })
        .collect();
    scripts.reverse();
    scripts
}

/// Like [`cli`], with `input` on the command's stdin.
pub fn cli_with_stdin(url: &str, ns: &str, args: &[&str], input: &str) -> Output {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--redis", url, "--ns", ns]);
    run_bin_with_stdin(&all, input)
}

/// Like [`run_bin`] (no environment added), with `input` on stdin.
pub fn run_bin_with_stdin(args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(BIN);
    clean_env(&mut cmd);
    cmd.args(args);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn distsched");
    let mut stdin = child.stdin.take().expect("stdin");
    // The command may exit before reading it all: ignore a broken pipe.
    let _ = stdin.write_all(input.as_bytes());
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("distsched {args:?} still running after 20 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().expect("collect output")
}

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
                    relay(server, client, |_| {
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
