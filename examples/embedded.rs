//! A synchronous Rust program that embeds distsched: it starts a node
//! in-process with two Rust closure executors, submits tasks with a
//! `Client`, waits for their results, and shuts the node down cleanly.
//!
//! Run against a Redis of your own:
//!
//! ```text
//! DISTSCHED_REDIS_URL=redis://127.0.0.1:6390 cargo run --example embedded
//! ```

use std::process::ExitCode;
use std::time::Duration;

use distsched::{Client, Config, Node, Status, TaskSpec};
use serde_json::json;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("embedded: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> distsched::Result<()> {
    let mut config = Config::default();
    config.apply_env()?; // DISTSCHED_REDIS_URL, DISTSCHED_NAMESPACE, ...
    let sum = demo(config)?;
    println!("embedded example: ok (sum {sum})");
    Ok(())
}

/// Starts a node, runs the two tasks, shuts down; returns the sum.
/// (`tests/embedded_example.rs` runs this same function.)
pub fn demo(mut config: Config) -> distsched::Result<i64> {
    config.node_id = format!("embedded-{}", std::process::id());
    config.capacity = 4;

    // Two executors: one adds numbers, one fails on purpose.
    let node = Node::builder(config.clone())
        .function("add", |ctx| {
            let p = ctx.payload_json();
            let sum: i64 = p["numbers"]
                .as_array()
                .ok_or("payload needs `numbers`")?
                .iter()
                .filter_map(|n| n.as_i64())
                .sum();
            ctx.log(format!(
                "summed {} numbers",
                p["numbers"].as_array().map_or(0, |a| a.len())
            ));
            Ok(json!({ "sum": sum }))
        })
        .function("refuse", |_| Err("not today".to_string()))
        .start()?;

    let mut client = Client::open(&config.redis_url, &config.namespace)?;
    let add =
        client.submit(&TaskSpec::new("add").with_payload(&json!({"numbers": [1, 2, 3, 4]})))?;
    let refuse = client.submit(&TaskSpec::new("refuse").with_retries(0))?;

    let added = client
        .wait(&add.id, Duration::from_secs(30))?
        .ok_or_else(|| distsched::Error::NotFound("a result within 30 s".into()))?;
    let refused = client
        .wait(&refuse.id, Duration::from_secs(30))?
        .ok_or_else(|| distsched::Error::NotFound("a result within 30 s".into()))?;

    println!("add    → {} {}", added.status, json!(added.result));
    println!(
        "refuse → {} {}",
        refused.status,
        refused.error.unwrap_or_default()
    );
    println!("logs of add: {:?}", client.logs(&add.id)?);
    node.shutdown();

    let sum = added.result.as_ref().and_then(|r| r.data["sum"].as_i64());
    match sum {
        Some(sum) if added.status == Status::Success && refused.status == Status::Failed => Ok(sum),
        _ => Err(distsched::Error::Config(format!(
            "unexpected results: add {} {:?}, refuse {}",
            added.status, added.result, refused.status
        ))),
    }
}
