//! A private `redis-server` per test on a free port, killed on drop, and the
//! `INFO commandstats` / SLOWLOG readers that count a stretch of its work.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

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
        test_connection(&self.url())
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

/// A new connection to the test server at `url`, with 2 s timeouts;
/// panics when it cannot connect.
pub fn test_connection(url: &str) -> redis::Connection {
    let client = redis::Client::open(url).expect("redis url");
    let conn = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("connect to the test redis-server {url}: {e}"));
    conn.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("read timeout");
    conn.set_write_timeout(Some(Duration::from_secs(2)))
        .expect("write timeout");
    conn
}

/// Spawns `redis-server` on `port` and waits until it answers PING. Checks
/// that the answering server is the one spawned (by pid), so a server of
/// another test that holds the port is never mistaken for ours.
pub fn spawn_redis(port: u16, dir: &Path, aof: bool) -> Result<Child, String> {
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
    spawn_checked(cmd, port, &dir.join("redis.log"))
}

/// Spawns a `redis-server` command (a data server or a sentinel) it with stdout/stderr
/// appended to `log`, then waits until the server on `port` answers PING
/// and `INFO server` names the spawned pid.
pub fn spawn_checked(mut cmd: Command, port: u16, log: &Path) -> Result<Child, String> {
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("log {}: {e}", log.display()))?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().map_err(|e| e.to_string())?)
        .stderr(out)
        .spawn()
        .map_err(|e| format!("spawn redis-server (is it installed?): {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let url = format!("redis://127.0.0.1:{port}");
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("process on port {port} exited: {status}"));
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
            return Err(format!("process on port {port} never answered PING"));
        }
        std::thread::sleep(POLL);
    }
}

/// The `process_id` of the server answering at `url`, if it answers.
pub fn redis_pid(url: &str) -> Option<u32> {
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
