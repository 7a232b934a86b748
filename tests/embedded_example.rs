//! `examples/embedded.rs` runs to completion against a private Redis: a node
//! in-process with Rust closure executors, tasks submitted and awaited with
//! `Client`, and a clean shutdown.

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::RedisServer;

/// `target/<profile>/examples/embedded`, next to the binary under test
/// (`cargo test` builds examples along with the tests).
fn example_path() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_distsched"));
    bin.parent()
        .expect("target dir")
        .join("examples")
        .join("embedded")
}

#[test]
fn embedded_example_runs_to_completion() {
    let path = example_path();
    assert!(
        path.exists(),
        "{} not built; run `cargo test` (it builds examples)",
        path.display()
    );
    let redis = RedisServer::start();
    let out = Command::new(&path)
        .env("DISTSCHED_REDIS_URL", redis.url())
        .env("DISTSCHED_NAMESPACE", "embedded-example")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("embedded example: ok"), "{stdout}");
    assert!(stdout.contains(r#""sum":10"#), "{stdout}");
}
