//! Fault edges that need injected faults (feature `failpoints`): a
//! `FINISH` batch that Redis refuses for what it carries (issue 15 item 8).

mod support;

use std::time::Duration;

use distsched::{Status, TaskSpec};
use serde_json::json;

use support::*;

const WAIT: Duration = Duration::from_secs(20);

/// One outcome Redis refuses must not hold up the others: the batch is
/// written one by one, the refused outcome is recorded as a failed attempt,
/// and the reporter goes on with later outcomes. Before, the reporter
/// retried the whole batch for ever and every outcome in it, and after it,
/// waited for the recoverer's deadline.
#[test]
fn a_refused_outcome_is_failed_and_the_rest_of_its_batch_written() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ns = unique_ns("refused-batch");
    let _node = NodeProc::start_with_env(
        &url,
        &ns,
        "r1",
        &[FAST, &["--allow-adhoc-shell", "--capacity", "5"]].concat(),
        &[("FAILPOINTS", "finish-refuse=return(bad-one)")],
    );
    wait_for_cluster(&url, &ns, &["r1"], WAIT);
    let mut client = client(&url, &ns);
    // Five tasks that end together, so their outcomes share a batch.
    let sh = || {
        TaskSpec::new("shell")
            .with_payload(&json!({ "argv": ["sleep", "0.3"] }))
            .with_retries(0)
    };
    let mut bad = sh();
    bad.id = Some("bad-one".into());
    let mut specs = vec![bad];
    specs.extend((0..4).map(|_| sh()));
    let ids: Vec<String> = client
        .submit_many(&specs)
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    let started = std::time::Instant::now();
    let mut ended = Vec::new();
    for id in &ids {
        ended.push(client.wait(id, WAIT).unwrap().expect("the task ended"));
    }
    let took = started.elapsed();
    assert_eq!(ended[0].status, Status::Failed, "{:?}", ended[0]);
    let error = ended[0].error.clone().unwrap_or_default();
    assert!(error.contains("could not be recorded"), "{error}");
    for t in &ended[1..] {
        assert_eq!(t.status, Status::Success, "{t:?}");
    }
    // The reporter is not stuck: a later task's outcome is written.
    let later = client.submit(&sh()).unwrap().id;
    let t = client
        .wait(&later, WAIT)
        .unwrap()
        .expect("the later task ended");
    assert_eq!(t.status, Status::Success, "{t:?}");
    report(&format!(
        "chaos refused-batch: 5 tasks, one outcome refused by Redis: it is recorded failed, the other 4 succeed, all ended {:.2}s after the submit; a later task succeeds",
        took.as_secs_f64()
    ));
}
