//! A private Redis Sentinel deployment per test: one master, two replicas
//! and three sentinels (quorum 2), every process on a free port with its own
//! directory and log file, all killed (SIGKILL) on drop.
//!
//! [`SentinelSet::start`] returns only once replication is online and every
//! sentinel knows the master, both replicas and the two other sentinels, so
//! a test can kill the master at once and expect a failover
//! ([`SentinelSet::wait_failover`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::*;

const MASTER_NAME: &str = "mymaster";
/// How long [`SentinelSet::start`] waits for replication and discovery.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// Timeouts of the short-lived connections the polling loops open.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// Lines of each log shown when a wait fails.
const LOG_TAIL_LINES: usize = 15;

/// One `redis-server` process of a [`SentinelSet`]: a data server or a
/// sentinel. Killed (SIGKILL) on drop.
pub struct RedisNode {
    child: Mutex<Option<Child>>,
    pid: u32,
    port: u16,
    label: String,
    log: PathBuf,
    dir: TempDir,
}

impl RedisNode {
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id (still known after [`RedisNode::kill`]).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The last `lines` lines of the log, under a header naming the node.
    pub fn log_tail(&self, lines: usize) -> String {
        let text =
            std::fs::read_to_string(&self.log).unwrap_or_else(|e| format!("(unreadable: {e})"));
        let all: Vec<&str> = text.lines().collect();
        let tail = all[all.len().saturating_sub(lines)..].join("\n");
        format!(
            "--- {} (port {}, pid {}) {} ---\n{tail}",
            self.label,
            self.port,
            self.pid,
            self.log.display()
        )
    }

    /// A new connection (2 s timeouts).
    pub fn client(&self) -> redis::Connection {
        test_connection(&self.url())
    }

    /// Kills the process (SIGKILL, like a crash) and waits for it. Does
    /// nothing when it is already dead.
    pub fn kill(&self) {
        let mut child = self
            .child
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(mut c) = child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// True while the process runs (not killed, not exited).
    pub fn is_alive(&self) -> bool {
        let mut child = self
            .child
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The first element of `ROLE` (`master`, `slave`, `sentinel`), `None`
    /// when the node does not answer.
    pub fn role(&self) -> Option<String> {
        role_at(self.port)
    }
}

impl Drop for RedisNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One master, two replicas and three sentinels monitoring the master as
/// `mymaster` (quorum 2, down-after 1 s, failover-timeout 5 s), killed on
/// drop.
pub struct SentinelSet {
    servers: Vec<RedisNode>,
    sentinels: Vec<RedisNode>,
}

impl SentinelSet {
    /// Starts the set and waits (30 s at most, then panics with the state
    /// seen and the logs' tails) until both replicas are online on the
    /// master and every sentinel lists 2 replicas and 2 other sentinels.
    pub fn start() -> SentinelSet {
        let deadline = Instant::now() + START_DEADLINE;
        let master = start_node("master", |port, dir| data_server_cmd(port, dir, None));
        let master_port = master.port;
        let mut servers = vec![master];
        for i in 1..=2 {
            servers.push(start_node(&format!("replica-{i}"), |port, dir| {
                data_server_cmd(port, dir, Some(master_port))
            }));
        }

        let mut last = String::new();
        while !replication_online(master_port, &mut last) {
            if Instant::now() >= deadline {
                panic!(
                    "SentinelSet::start: replication not online after {START_DEADLINE:?} \
                     (master port {master_port}: {last})\n{}",
                    tails(&servers)
                );
            }
            std::thread::sleep(POLL);
        }

        let mut sentinels = Vec::new();
        for i in 0..3 {
            sentinels.push(start_node(&format!("sentinel-{i}"), |port, dir| {
                sentinel_cmd(port, dir, master_port)
            }));
        }

        loop {
            let pending: Vec<String> = sentinels
                .iter()
                .filter_map(|s| sentinel_discovery_pending(s.port))
                .collect();
            if pending.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                panic!(
                    "SentinelSet::start: sentinels did not discover each other and the \
                     replicas within {START_DEADLINE:?}: {}\n{}\n{}",
                    pending.join("; "),
                    tails(&servers),
                    tails(&sentinels)
                );
            }
            std::thread::sleep(POLL);
        }

        SentinelSet { servers, sentinels }
    }

    pub fn master_name(&self) -> &str {
        MASTER_NAME
    }

    /// `redis-sentinel://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3#mymaster`
    /// (every sentinel, dead ones included).
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("redis-sentinel://{}#{MASTER_NAME}", hosts.join(","))
    }

    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels.iter().map(|s| s.port).collect()
    }

    /// The 3 data servers; index 0 is the initial master.
    pub fn servers(&self) -> &[RedisNode] {
        &self.servers
    }

    /// The data server on `port`; panics when there is none.
    pub fn server_by_port(&self, port: u16) -> &RedisNode {
        self.servers
            .iter()
            .find(|s| s.port == port)
            .unwrap_or_else(|| panic!("no data server of this SentinelSet on port {port}"))
    }

    /// The master port the sentinels name (`SENTINEL
    /// get-master-addr-by-name`): the one most of the answering sentinels
    /// name. Panics when no sentinel answers.
    pub fn master_port(&self) -> u16 {
        let answers: Vec<u16> = self
            .sentinels
            .iter()
            .filter(|s| s.is_alive())
            .filter_map(|s| sentinel_master_port(s.port))
            .collect();
        let mut best: Option<(u16, usize)> = None;
        for &port in &answers {
            let votes = answers.iter().filter(|&&p| p == port).count();
            if best.is_none_or(|(_, v)| votes > v) {
                best = Some((port, votes));
            }
        }
        match best {
            Some((port, _)) => port,
            None => panic!(
                "no sentinel answered SENTINEL get-master-addr-by-name {MASTER_NAME} \
                 (ports {:?})",
                self.sentinel_ports()
            ),
        }
    }

    /// Polls until every live sentinel names the same master, not
    /// `old_port`, and that server answers `ROLE` with `master`; returns its
    /// port. Panics with the sentinels' answers and the logs' tails when
    /// `timeout` passes first.
    pub fn wait_failover(&self, old_port: u16, timeout: Duration) -> u16 {
        let start = Instant::now();
        loop {
            let live: Vec<&RedisNode> = self.sentinels.iter().filter(|s| s.is_alive()).collect();
            let named: Vec<Option<u16>> =
                live.iter().map(|s| sentinel_master_port(s.port)).collect();
            let mut seen: Vec<String> = live
                .iter()
                .zip(&named)
                .map(|(s, p)| format!("{}: {p:?}", s.label))
                .collect();
            if let Some(Some(port)) = named.first()
                && *port != old_port
                && named.iter().all(|p| *p == Some(*port))
            {
                let role = role_at(*port);
                if role.as_deref() == Some("master") {
                    return *port;
                }
                seen.push(format!("ROLE of {port}: {role:?}"));
            }
            if start.elapsed() >= timeout {
                panic!(
                    "no failover away from port {old_port} within {timeout:?}; sentinels name \
                     [{}]\n{}\n{}",
                    seen.join(", "),
                    tails(&self.servers),
                    tails(&self.sentinels)
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Kills sentinel `i` (SIGKILL) and waits for it.
    pub fn stop_sentinel(&mut self, i: usize) {
        self.sentinels[i].kill();
    }
}

impl Drop for SentinelSet {
    fn drop(&mut self) {
        // Sentinels first, so none reacts to the servers going away.
        for s in &self.sentinels {
            s.kill();
        }
        for s in &self.servers {
            s.kill();
        }
    }
}

// ---------------------------------------------------------------- spawning

fn data_server_cmd(port: u16, dir: &Path, replica_of: Option<u16>) -> Command {
    let mut cmd = Command::new("redis-server");
    cmd.arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args([
            "--repl-diskless-sync",
            "yes",
            "--repl-diskless-sync-delay",
            "0",
        ])
        .arg("--dir")
        .arg(dir);
    if let Some(master) = replica_of {
        cmd.args(["--replicaof", "127.0.0.1"])
            .arg(master.to_string());
    }
    cmd
}

fn sentinel_cmd(port: u16, dir: &Path, master_port: u16) -> Command {
    // A fresh file per attempt: sentinel rewrites it (ids, known peers).
    let conf = dir.join("sentinel.conf");
    let text = format!(
        "port {port}\n\
         bind 127.0.0.1\n\
         dir {}\n\
         sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
         sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
         sentinel failover-timeout {MASTER_NAME} 5000\n\
         sentinel parallel-syncs {MASTER_NAME} 2\n",
        dir.display()
    );
    std::fs::write(&conf, text).unwrap_or_else(|e| panic!("write {}: {e}", conf.display()));
    let mut cmd = Command::new("redis-server");
    cmd.arg(&conf).arg("--sentinel");
    cmd
}

/// Starts a node on a free port (retrying when another process takes the
/// port first) and waits until it answers PING as the spawned pid.
fn start_node(label: &str, mut make: impl FnMut(u16, &Path) -> Command) -> RedisNode {
    let dir = TempDir::new(label);
    let log = dir.join(&format!("{label}.log"));
    let mut last_error = String::new();
    for _ in 0..20 {
        let port = free_port();
        match spawn_checked(make(port, dir.path()), port, &log) {
            Ok(child) => {
                return RedisNode {
                    pid: child.id(),
                    child: Mutex::new(Some(child)),
                    port,
                    label: label.to_string(),
                    log,
                    dir,
                };
            }
            Err(e) => last_error = e,
        }
    }
    let tail = std::fs::read_to_string(&log).unwrap_or_default();
    panic!(
        "could not start {label}: {last_error}\n--- {} ---\n{tail}",
        log.display()
    );
}

// ----------------------------------------------------------------- probes

/// A short-lived connection (0.5 s timeouts), `None` when unreachable.
fn probe_conn(port: u16) -> Option<redis::Connection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
    let conn = client.get_connection_with_timeout(PROBE_TIMEOUT).ok()?;
    conn.set_read_timeout(Some(PROBE_TIMEOUT)).ok()?;
    conn.set_write_timeout(Some(PROBE_TIMEOUT)).ok()?;
    Some(conn)
}

fn role_at(port: u16) -> Option<String> {
    let mut conn = probe_conn(port)?;
    let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut conn).ok()?;
    redis::from_redis_value(role.into_iter().next()?).ok()
}

/// True when `INFO replication` on the master shows `connected_slaves:2`
/// and both replicas `state=online`; else `last` says what it showed.
fn replication_online(master_port: u16, last: &mut String) -> bool {
    let Some(mut conn) = probe_conn(master_port) else {
        *last = "unreachable".into();
        return false;
    };
    let info: String = match redis::cmd("INFO").arg("replication").query(&mut conn) {
        Ok(info) => info,
        Err(e) => {
            *last = format!("INFO failed: {e}");
            return false;
        }
    };
    let connected = info.lines().any(|l| l.trim() == "connected_slaves:2");
    let online = info
        .lines()
        .filter(|l| l.starts_with("slave") && l.contains("state=online"))
        .count();
    *last = info
        .lines()
        .filter(|l| l.starts_with("connected_slaves") || l.starts_with("slave"))
        .collect::<Vec<_>>()
        .join(" ");
    connected && online == 2
}

/// `None` when the sentinel on `port` lists 2 replicas and 2 other
/// sentinels for the master; else what is missing.
fn sentinel_discovery_pending(port: u16) -> Option<String> {
    let Some(mut conn) = probe_conn(port) else {
        return Some(format!("sentinel {port} unreachable"));
    };
    let count = |conn: &mut redis::Connection, what: &str| -> Result<usize, String> {
        redis::cmd("SENTINEL")
            .arg(what)
            .arg(MASTER_NAME)
            .query::<Vec<redis::Value>>(conn)
            .map(|v| v.len())
            .map_err(|e| e.to_string())
    };
    let replicas = count(&mut conn, "replicas");
    let sentinels = count(&mut conn, "sentinels");
    match (&replicas, &sentinels) {
        (Ok(2), Ok(2)) => None,
        _ => Some(format!(
            "sentinel {port} knows replicas {replicas:?}, sentinels {sentinels:?}"
        )),
    }
}

/// The master port the sentinel on `port` names, `None` when it does not
/// answer or does not know the master.
fn sentinel_master_port(port: u16) -> Option<u16> {
    let mut conn = probe_conn(port)?;
    let addr: Option<Vec<String>> = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(MASTER_NAME)
        .query(&mut conn)
        .ok()?;
    addr?.get(1)?.parse().ok()
}

fn tails(nodes: &[RedisNode]) -> String {
    nodes
        .iter()
        .map(|n| n.log_tail(LOG_TAIL_LINES))
        .collect::<Vec<_>>()
        .join("\n")
}
