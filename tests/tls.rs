//! `rediss://`: a node and the CLI talk to a TLS-only `redis-server`
//! (certificates made with `openssl` for the test), trusting a private CA
//! through `SSL_CERT_FILE`; without that trust the connection is refused
//! with one clear line, and `#insecure` skips verification on purpose.

mod support;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{TempDir, free_port, unique_ns, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_distsched");

/// Runs `openssl` with `args` in `dir`; panics with its stderr on failure.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (is it installed?)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`ca.pem`) and a server certificate for 127.0.0.1 and localhost
/// signed by it (`server.pem`, `server.key`).
fn make_certs(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=distsched test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("write san.ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ],
    );
}

/// A TLS-only redis-server (plain port disabled), killed on drop.
struct TlsRedis {
    child: Child,
    port: u16,
}

impl TlsRedis {
    fn start(dir: &Path) -> TlsRedis {
        let port = free_port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--tls-port", &port.to_string(), "--tls-auth-clients", "no"])
            .arg("--tls-cert-file")
            .arg(dir.join("server.pem"))
            .arg("--tls-key-file")
            .arg(dir.join("server.key"))
            .arg("--tls-ca-cert-file")
            .arg(dir.join("ca.pem"))
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        let mut server = TlsRedis { child, port };
        wait_until(
            Duration::from_secs(10),
            "the TLS redis-server answers",
            || {
                assert!(
                    server.child.try_wait().expect("try_wait").is_none(),
                    "redis-server exited"
                );
                cli(
                    &server.url(""),
                    &dir.join("ca.pem"),
                    &["leader", "--json"],
                    "tls-probe",
                )
                .status
                .code()
                    == Some(1) // reachable, nobody leads yet
            },
        );
        server
    }

    fn url(&self, fragment: &str) -> String {
        format!("rediss://127.0.0.1:{}{fragment}", self.port)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `distsched ARGS --redis URL --ns NS` trusting `ca` (an empty path: the
/// system roots only).
fn cli(url: &str, ca: &Path, args: &[&str], ns: &str) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .args(["--redis", url, "--ns", ns])
        .env_remove("RUST_LOG");
    if ca.as_os_str().is_empty() {
        cmd.env_remove("SSL_CERT_FILE");
    } else {
        cmd.env("SSL_CERT_FILE", ca);
    }
    support::run_with_timeout(cmd, Duration::from_secs(30))
}

/// A node on `url` trusting the test CA of `dir`, logging to `dir/node.log`.
fn start_node(dir: &Path, url: &str, ns: &str, id: &str) -> Child {
    let node_log = std::fs::File::create(dir.join("node.log")).expect("node log");
    Command::new(BIN)
        .args(["node", "--id", id, "--redis", url, "--ns", ns])
        .env("SSL_CERT_FILE", dir.join("ca.pem"))
        .env("RUST_LOG", "warn,distsched=info")
        .stdout(node_log.try_clone().expect("clone"))
        .stderr(node_log)
        .spawn()
        .expect("spawn node")
}

#[test]
fn rediss_with_a_private_ca_runs_tasks_and_refuses_an_untrusted_server() {
    let dir = TempDir::new("tls");
    make_certs(dir.path());
    let redis = TlsRedis::start(dir.path());
    let ca = dir.join("ca.pem");
    let ns = unique_ns("tls");

    let mut node = start_node(dir.path(), &redis.url(""), &ns, "t1");
    let started = Instant::now();
    let out = cli(
        &redis.url(""),
        &ca,
        &["task", "submit", "--exec", "noop", "--wait"],
        &ns,
    );
    let log = std::fs::read_to_string(dir.join("node.log")).unwrap_or_default();
    let _ = node.kill();
    let _ = node.wait();
    assert_eq!(
        out.status.code(),
        Some(0),
        "submit --wait over TLS after {:?}: {}\nnode log:\n{log}",
        started.elapsed(),
        String::from_utf8_lossy(&out.stderr)
    );

    // Without the CA the server's certificate is not trusted: one line,
    // exit 69 (Redis unreachable), no hang.
    let out = cli(&redis.url(""), Path::new(""), &["task", "list"], &ns);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");

    // `#insecure` skips verification deliberately.
    let out = cli(
        &redis.url("/#insecure"),
        Path::new(""),
        &["task", "list", "--json"],
        &ns,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `rediss-sentinel://`: a TLS-only sentinel (`tls-replication yes`, so it
/// talks TLS to the master too) names a TLS-only master; the CLI finds the
/// master through it and runs a task on a node that does the same.
#[test]
fn rediss_sentinel_finds_a_tls_master_through_a_tls_sentinel() {
    let dir = TempDir::new("tls-sentinel");
    make_certs(dir.path());
    let redis = TlsRedis::start(dir.path());
    let ca = dir.join("ca.pem");
    let sentinel_port = free_port();
    let conf = dir.join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port 0\nbind 127.0.0.1\ndir {dir}\ntls-port {sentinel_port}\ntls-auth-clients no\n\
             tls-replication yes\ntls-cert-file {dir}/server.pem\ntls-key-file {dir}/server.key\n\
             tls-ca-cert-file {dir}/ca.pem\nsentinel monitor mymaster 127.0.0.1 {} 1\n",
            redis.port,
            dir = dir.path().display()
        ),
    )
    .expect("write sentinel.conf");
    let mut sentinel = Command::new("redis-server")
        .arg(&conf)
        .arg("--sentinel")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sentinel");
    let url = format!("rediss-sentinel://127.0.0.1:{sentinel_port}#mymaster");
    let ns = unique_ns("tls-sentinel");
    // Reachable (exit 1: nobody leads) once the sentinel answers.
    wait_until(Duration::from_secs(10), "the TLS sentinel answers", || {
        cli(&url, &ca, &["leader"], &ns).status.code() == Some(1)
    });
    let mut node = start_node(dir.path(), &url, &ns, "s1");
    let out = cli(
        &url,
        &ca,
        &["task", "submit", "--exec", "noop", "--wait"],
        &ns,
    );
    let log = std::fs::read_to_string(dir.join("node.log")).unwrap_or_default();
    // Without the CA the sentinel's certificate is refused: one line, 69.
    let untrusted = cli(&url, Path::new(""), &["leader"], &ns);
    let _ = node.kill();
    let _ = node.wait();
    let _ = sentinel.kill();
    let _ = sentinel.wait();
    assert_eq!(out.status.code(), Some(0), "{out:?}\nnode log:\n{log}");
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert_eq!(untrusted.status.code(), Some(69), "{untrusted:?}");
    assert!(
        stderr.lines().count() == 1 && stderr.contains("certificate"),
        "{stderr}"
    );
}
