//! `examples/embedded.rs` runs to completion against a private Redis: a node
//! in-process with Rust closure executors, tasks submitted and awaited with
//! `Client`, and a clean shutdown.
//!
//! The example's source is compiled into this test (`cargo test
//! --all-targets` builds examples in test mode, so there is no example
//! binary to run), and the test calls the same `demo` function its `main`
//! does.

mod support;

#[path = "../examples/embedded.rs"]
#[allow(dead_code)] // its `main` is not called here
mod embedded;

use distsched::Config;
use support::RedisServer;

#[test]
fn embedded_example_runs_to_completion() {
    let redis = RedisServer::start();
    let config = Config {
        redis_url: redis.url(),
        namespace: "embedded-example".into(),
        ..Config::default()
    };
    let sum = embedded::demo(config).expect("the example succeeds");
    // `demo` returns only after `NodeHandle::shutdown` joined every thread.
    assert_eq!(sum, 10);
}
