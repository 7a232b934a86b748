//! The `canceller` thread: blocks on the node's cancel list and flags the
//! running tasks it names.

use super::IDLE_BLOCK;
use super::Shared;
use crate::component::StopSignal;

pub(super) fn cancel_loop(shared: &Shared, ctl: &str, stop: StopSignal) {
    let mut conn = shared.store.conn("canceller");
    let list = shared.store.keys.control(&shared.node, "cancel");
    while !stop.is_stopped() {
        let popped = conn.run_blocking(IDLE_BLOCK, |c| {
            redis::cmd("BLPOP")
                .arg(&list)
                .arg(ctl)
                .arg(IDLE_BLOCK.as_secs_f64())
                .query::<Option<(String, String)>>(c)
        });
        match popped {
            Ok(Some((key, _))) if key == ctl => return,
            Ok(Some((_, item))) => {
                let Some((id, attempt)) = item.rsplit_once('|') else {
                    continue;
                };
                let mut active = shared.active();
                if let Some((a, flag, by_user)) = active.get_mut(id)
                    && attempt.parse() == Ok(*a)
                {
                    *by_user = true;
                    flag.cancel();
                    log::info!("canceller: task {id} attempt {attempt} cancelled");
                }
            }
            Ok(None) => {}
            Err(_) => {
                if stop.wait(conn.backoff()) {
                    return;
                }
            }
        }
    }
}
