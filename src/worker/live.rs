//! The `live` thread: about once a second ([`LIVE_INTERVAL`]) it takes
//! what the attempts running on this worker's pool logged and reported
//! as progress since its last round (each pool thread's slot, see
//! `executor/live.rs`) and writes it all in one `LIVE` script call, so a
//! running task's output reaches its log, and its progress its record,
//! while it runs. An idle worker, or one whose tasks end within a round,
//! costs nothing here: the slots are empty and no call is made.
//!
//! When Redis is down the round's lines go back into their slots (to be
//! written next round, or reported with the attempt's result).

use std::time::Duration;

use super::Shared;
use crate::component::StopSignal;
use crate::executor::live::Flush;
use crate::store::{Conn, calls};

/// How often running attempts' output and progress are written.
pub const LIVE_INTERVAL: Duration = Duration::from_secs(1);

/// The thread's loop: a round per interval until stopped, then a last one.
pub(super) fn live_loop(shared: &Shared, stop: &StopSignal) {
    let mut conn = shared.store.quiet_conn("live");
    while !stop.wait(LIVE_INTERVAL) {
        round(shared, &mut conn);
    }
    round(shared, &mut conn);
}

/// Takes every slot's news and writes them in one call.
fn round(shared: &Shared, conn: &mut Conn) {
    let mut finals: Vec<Flush> = Vec::new();
    let mut running: Vec<(usize, Flush)> = Vec::new();
    for (n, slot) in shared.live.iter().enumerate() {
        let (ended, now) = slot.take();
        finals.extend(ended);
        if let Some(f) = now {
            running.push((n, f));
        }
    }
    if finals.is_empty() && running.is_empty() {
        return;
    }
    let keys = &shared.store.keys;
    let result = conn.run(|c| {
        calls::Live {
            node: &shared.node,
            attempts: finals
                .iter()
                .chain(running.iter().map(|(_, f)| f))
                .map(|f| calls::LiveAttempt {
                    task: &f.id,
                    attempt: f.attempt,
                    progress: f.progress.as_ref().map(|(p, t)| (*p, t.as_str())),
                    lines: &f.lines,
                })
                .collect(),
        }
        .invocation(keys)
        .invoke::<i64>(c)
    });
    let ok = match result {
        Ok(_) => true,
        Err(e) => {
            log::debug!("live: could not write running tasks' output: {e}");
            false
        }
    };
    for (n, f) in running {
        shared.live[n].landed(f, ok);
    }
}
