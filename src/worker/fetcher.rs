//! The `fetcher` thread: claims queued items while pool slots are free
//! (`START`, or `BLMPOP` when idle) and adopts tasks a lost reply started.

use super::Claimed;
use super::IDLE_BLOCK;
use super::Shared;
use crate::component::StopSignal;
use crate::error::Result;
use crate::store::Conn;
use crate::store::calls;
use crossbeam_channel::Receiver;
use crossbeam_channel::Sender;
use std::sync::atomic::Ordering;

pub(super) type ClaimRow = (String, u32, String, String, u64, String, i64, i64);

/// Claims `pop` more items from the queue plus `items` already popped
/// (`reclaim`: those items may already have been started by a call whose
/// reply was lost).
pub(super) fn claim(
    shared: &Shared,
    conn: &mut Conn,
    items: &[String],
    pop: usize,
    reclaim: bool,
) -> Result<Vec<Claimed>> {
    let keys = &shared.store.keys;
    let rows: Vec<ClaimRow> = conn.run(|c| {
        calls::Start {
            node: &shared.node,
            instance: &shared.instance,
            pop,
            reclaim,
            items,
        }
        .invocation(keys)
        .invoke(c)
    })?;
    if !rows.is_empty() && shared.store.waits() {
        // With redis_wait_replicas: a start that a failover loses would let
        // the new master dispatch the attempt again while this one runs.
        // Best effort: the task runs either way (a worker that stalled its
        // tasks on a slow replica would turn a replica fault into an
        // outage).
        if let Err(e) = shared.store.wait_replicas(conn) {
            log::warn!(
                "fetcher: started {} task(s) not yet on the replicas: {e}",
                rows.len()
            );
        }
    }
    Ok(shared.register(rows, None))
}

/// Tasks held by this worker in Redis that no thread here knows of, as
/// queue items to re-claim: running ones a claim or refill whose reply was
/// lost started, and queued ones a `BLMPOP` whose reply was lost popped
/// (pending here, current attempt, yet no longer in the queue). Items in
/// `unclaimed` (popped, not claimed yet) are the caller's already.
/// Attempts that ended here and wait in a reporter are not orphans.
pub(super) fn orphans(
    shared: &Shared,
    conn: &mut Conn,
    unclaimed: &[String],
) -> Result<Vec<String>> {
    let keys = &shared.store.keys;
    // Held first, the queue after: the leader adds a task to both at once,
    // so a held task missing from the queue read after was popped.
    let (held, queued): (Vec<String>, Vec<String>) = conn.run(|c| {
        redis::pipe()
            .smembers(keys.held(&shared.node))
            .lrange(keys.queue(&shared.node), 0, -1)
            .query(c)
    })?;
    if held.is_empty() {
        return Ok(Vec::new());
    }
    let states: Vec<(Option<String>, Option<String>, Option<String>)> = conn.run(|c| {
        let mut pipe = redis::pipe();
        for id in &held {
            pipe.cmd("HMGET")
                .arg(keys.task(id))
                .arg("status")
                .arg("attempt")
                .arg("worker");
        }
        pipe.query(c)
    })?;
    let active = shared.active();
    let unreported = shared.unreported();
    Ok(held
        .into_iter()
        .zip(states)
        .filter_map(|(id, (status, attempt, worker))| {
            if worker.as_deref() != Some(shared.node.as_str()) || active.contains_key(&id) {
                return None;
            }
            let attempt = attempt.unwrap_or_default();
            let item = format!("{id}|{attempt}");
            let lost = match status.as_deref() {
                Some("running") => !attempt
                    .parse()
                    .is_ok_and(|a: u32| unreported.contains(&(id.clone(), a))),
                Some("pending") => !queued.contains(&item) && !unclaimed.contains(&item),
                _ => false,
            };
            lost.then_some(item)
        })
        .collect())
}

pub(super) fn fetch_loop(
    shared: &Shared,
    ctl: &str,
    slots: Receiver<()>,
    jobs: Sender<Claimed>,
    stop: StopSignal,
) {
    let mut conn = shared.store.conn("fetcher");
    let queue = shared.store.keys.queue(&shared.node);
    let adopt = shared.adopt_list();
    let mut tokens = 0usize;
    // Items this thread popped but could not claim, and whether a failed
    // claim may have started tasks whose reply was lost.
    let mut unclaimed: Vec<String> = Vec::new();
    let mut suspect = false;
    loop {
        if tokens == 0 {
            crossbeam_channel::select! {
                recv(slots) -> _ => tokens += 1,
                recv(stop.receiver()) -> _ => return,
            }
        }
        tokens += slots.try_iter().count();
        if stop.is_stopped() {
            return;
        }
        // A reporter call that started refilled tasks may have lost its
        // reply too.
        suspect |= shared.suspect.swap(false, Ordering::SeqCst);
        let attempt = if suspect {
            // No refill may start tasks meanwhile: they would look orphaned.
            let _refills = shared.refill_exclusive();
            orphans(shared, &mut conn, &unclaimed).and_then(|mut items| {
                if !items.is_empty() {
                    log::warn!(
                        "fetcher: adopting {} tasks popped or started by a call whose reply was lost",
                        items.len()
                    );
                }
                items.append(&mut unclaimed.clone());
                let pop = tokens.saturating_sub(items.len());
                claim(shared, &mut conn, &items, pop, true)
            })
        } else {
            claim(
                shared,
                &mut conn,
                &unclaimed,
                tokens.saturating_sub(unclaimed.len()),
                false,
            )
        };
        let mut claimed = match attempt {
            Ok(c) => {
                unclaimed.clear();
                suspect = false;
                c
            }
            Err(_) => {
                suspect = true;
                if stop.wait(conn.backoff()) {
                    return;
                }
                continue;
            }
        };
        if claimed.is_empty() {
            let popped = conn.run_blocking(IDLE_BLOCK, |c| {
                redis::cmd("BLMPOP")
                    .arg(IDLE_BLOCK.as_secs_f64())
                    .arg(3)
                    .arg(&queue)
                    .arg(ctl)
                    .arg(&adopt)
                    .arg("RIGHT")
                    .arg("COUNT")
                    .arg(tokens)
                    .query::<Option<(String, Vec<String>)>>(c)
            });
            match popped {
                Ok(Some((key, _))) if key == ctl => return,
                // A reporter's lost reply may have started tasks.
                Ok(Some((key, _))) if key == adopt => suspect = true,
                Ok(Some((_, items))) => match claim(shared, &mut conn, &items, 0, false) {
                    Ok(c) => claimed = c,
                    Err(_) => {
                        // Keep the items; claim them (or adopt what the
                        // failed call started) once Redis answers again.
                        unclaimed = items;
                        suspect = true;
                        continue;
                    }
                },
                Ok(None) => {}
                Err(_) => {
                    // The pop may have taken items whose reply was lost.
                    suspect = true;
                    if stop.wait(conn.backoff()) {
                        return;
                    }
                }
            }
        }
        for c in claimed {
            tokens = tokens.saturating_sub(1);
            if !shared.hand_to_pool(&jobs, c) {
                return;
            }
        }
    }
}
