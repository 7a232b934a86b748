//! One-shot runs of the binary (`cli`, `run_bin`, with stdin or a
//! timeout) and checks of what they print.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::*;

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
