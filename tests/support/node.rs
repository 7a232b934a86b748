//! Real `distsched node` processes ([`NodeProc`]): started with a clean
//! environment, signalled, their logs printed when a test fails.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::*;

/// Removes every `DISTSCHED_*` variable and `RUST_LOG` from what `cmd`
/// inherits, so the developer's environment cannot change a test.
pub fn clean_env(cmd: &mut Command) {
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
