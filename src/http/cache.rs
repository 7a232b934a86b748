//! The refresh floor: the dashboard's costly reads (`/search`,
//! `/failures`, `/history`, `/joblist`) are answered from the node's memory
//! when the same request (path and query) was answered less than
//! [`REFRESH_FLOOR`] ago. However many pages refresh however often, each
//! distinct view costs Redis at most one read per floor per node. Shared
//! by the `http-N` handlers; bounded to [`MAX_ENTRIES`] replies.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Reply;

/// Shortest interval between two Redis reads of one dashboard view on
/// one node; the page's refresh interval cannot go below it either.
pub const REFRESH_FLOOR: Duration = Duration::from_secs(2);

/// Most replies kept; past it, expired ones go first, then the oldest.
pub const MAX_ENTRIES: usize = 64;

/// Recent replies by request target.
#[derive(Default)]
pub(crate) struct Cache {
    entries: Mutex<HashMap<String, (Instant, Reply)>>,
}

impl Cache {
    /// The reply for `target`: a copy of one made within the floor
    /// (`X-Cache: hit`), or a fresh one from `make` (`X-Cache: miss`), kept
    /// if it is a 200.
    pub(crate) fn get_or(&self, target: &str, make: impl FnOnce() -> Reply) -> Reply {
        let now = Instant::now();
        {
            let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, reply)) = entries.get(target)
                && now.duration_since(*at) < REFRESH_FLOOR
            {
                return reply.clone().with_header("X-Cache", "hit");
            }
        }
        let reply = make();
        if reply.status == 200 {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            entries.retain(|_, (at, _)| now.duration_since(*at) < REFRESH_FLOOR);
            while entries.len() >= MAX_ENTRIES {
                let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                entries.remove(&oldest);
            }
            entries.insert(target.to_string(), (now, reply.clone()));
        }
        reply.with_header("X-Cache", "miss")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_within_the_floor_are_served_from_memory() {
        let cache = Cache::default();
        let mut calls = 0;
        for _ in 0..3 {
            let r = cache.get_or("/x", || {
                calls += 1;
                Reply::json(200, &calls)
            });
            assert_eq!(r.status, 200);
        }
        assert_eq!(calls, 1);
        // Errors are not kept.
        let mut fails = 0;
        for _ in 0..2 {
            cache.get_or("/bad", || {
                fails += 1;
                Reply::error(503, "down")
            });
        }
        assert_eq!(fails, 2);
        for i in 0..MAX_ENTRIES * 2 {
            cache.get_or(&format!("/{i}"), || Reply::json(200, &i));
        }
        assert!(cache.entries.lock().unwrap().len() <= MAX_ENTRIES);
    }
}
